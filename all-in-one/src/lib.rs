//! The all-in-one server: create, lookup and stats in one process, on an embedded
//! SQLite file and in-process caches, for a laptop (`cargo run --release`).
//!
//! It mounts the very same routes and state as the three services; only the
//! dependencies differ (one SQLite pool, no Redis, one metrics registry).
//!
//! The admin subcommands live here too, so tests drive them as the binary does:
//! `keys` and `hosts` below, `links import|export` in [`transfer`].

pub mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::config::{ServiceKind, Settings};
use common::db::Engine;
use common::deps::Deps;
use common::events::{InvalidationSource, LinkEvents};
use common::ids::CodeCodec;
use create_service::CreateState;
use lookup_service::LookupState;
use secrecy::{ExposeSecret, SecretString};

/// Where the embedded default keeps its code key when `ids.code_key` is unset: next to
/// the SQLite file, so codes stay stable across restarts.
fn key_file(settings: &Settings) -> Option<PathBuf> {
    let url = settings.database.url.as_ref()?.expose_secret().to_string();
    if Engine::from_url(&url) != Some(Engine::Sqlite) {
        return None;
    }
    let path = common::db::sqlite_path(&url);
    let dir = Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Some(dir.join("code-key"))
}

/// Reads the code key file, creating it (owner-only) with 256 random bits if needed.
fn ensure_code_key(settings: &mut Settings) -> anyhow::Result<()> {
    if settings.ids.code_key.is_some() {
        return Ok(());
    }
    let Some(path) = key_file(settings) else {
        anyhow::bail!("configuration key `ids.code_key` is required with PostgreSQL");
    };
    if !path.exists() {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let key: [u8; 32] = rand::random();
        write_private(&path, &hex::encode(key))?;
    }
    let key = std::fs::read_to_string(&path)?.trim().to_string();
    if key.len() < 16 {
        anyhow::bail!("code key file {} is too short", path.display());
    }
    settings.ids.code_key = Some(SecretString::from(key));
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

/// Connects (migrating the embedded database) with the all-in-one's defaults.
pub async fn connect(mut settings: Settings) -> anyhow::Result<Deps> {
    ensure_code_key(&mut settings)?;
    Deps::connect(ServiceKind::AllInOne, settings).await
}

/// A bound, not yet running, all-in-one server.
pub struct AllInOne {
    port: u16,
    server: Server,
    create: web::Data<CreateState>,
    lookup: web::Data<LookupState>,
    consumers: stats_service::consumer::Consumers,
    stop: common::http::GracefulStop,
}

impl AllInOne {
    pub async fn build(settings: Settings) -> anyhow::Result<AllInOne> {
        let deps = connect(settings).await?;
        let settings = deps.settings.clone();
        // Edits reach the in-process lookup cache over a channel instead of Redis.
        let (bus, _) = tokio::sync::broadcast::channel(4096);
        let create =
            web::Data::new(CreateState::build(&deps, LinkEvents::Local(bus.clone())).await?);
        let codec: Arc<CodeCodec> = create.codec.clone();
        let lookup = web::Data::new(LookupState::build(
            &deps,
            codec,
            InvalidationSource::Local(bus),
        ));
        let (stats, consumers) = stats_service::app::start(&deps);
        let readiness = web::Data::new(create_service::state::with_lease_check(
            deps.readiness(),
            &create,
        ));
        let stop = common::http::GracefulStop::new(&readiness, &settings.http);
        let metrics = web::Data::from(deps.metrics.clone());
        let (listener, port) = common::http::bind(&settings.http.bind, settings.http.port)?;
        let app_create = create.clone();
        let app_lookup = lookup.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::metrics::track_requests))
                .wrap(common::telemetry::request_tracing())
                .app_data(app_create.clone())
                .app_data(app_lookup.clone())
                .app_data(stats.clone())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .app_data(common::http::query_config())
                .app_data(common::http::path_config())
                .configure(common::http::ops_routes)
                .configure(create_service::routes(&settings))
                .configure(stats_service::routes)
                // Every path no route above claims is a code (or a 404).
                .default_service(lookup_service::redirect_service())
        })
        .shutdown_timeout(deps.settings.http.shutdown_timeout_secs)
        .disable_signals()
        .listen(listener)?;
        if let Some(workers) = deps.settings.http.workers {
            server = server.workers(workers);
        }
        Ok(AllInOne {
            port,
            server: server.run(),
            create,
            lookup,
            consumers,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/Ctrl-C, drains (see [`common::http::GracefulStop`]),
    /// then flushes buffered clicks and releases the worker-id lease.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.stop.serve(self.server).await?;
        lookup_service::app::flush_clicks(&self.lookup).await;
        // Apply what was just flushed before stopping the appliers.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.consumers.stop().await;
        self.create.release_lease().await;
        Ok(())
    }
}

/// `keys create`: mints a key; the caller prints it.
pub async fn create_key(settings: Settings, tenant: &str, label: &str) -> anyhow::Result<String> {
    let deps = connect(settings).await?;
    let key = common::auth::create_key(&deps.db, tenant, label).await?;
    deps.db.close().await;
    Ok(key.secret)
}

/// `keys list`: one line per key (never the key itself, which is not stored).
pub async fn list_keys(settings: Settings, tenant: Option<&str>) -> anyhow::Result<Vec<String>> {
    let deps = connect(settings).await?;
    let keys = common::db::keys::list(deps.db.primary(), tenant).await?;
    deps.db.close().await;
    Ok(keys
        .iter()
        .map(|k| {
            format!(
                "{}\t{}\t{}\t{}",
                k.id,
                k.tenant_id,
                if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                },
                k.label
            )
        })
        .collect())
}

/// `keys revoke ID`.
pub async fn revoke_key(settings: Settings, id: i64) -> anyhow::Result<bool> {
    let deps = connect(settings).await?;
    let revoked = common::db::keys::revoke(deps.db.primary(), id, common::time::now_ms()).await?;
    deps.db.close().await;
    Ok(revoked)
}

/// Connects for a `hosts` command: the code key plays no part, so none is needed.
async fn connect_admin(settings: Settings) -> anyhow::Result<Deps> {
    Deps::connect(ServiceKind::AllInOne, settings).await
}

/// `hosts block HOST [--reason TEXT]`: blocks the host and its subdomains, and tells
/// running instances through Redis when the settings name one.
pub async fn block_host(
    settings: Settings,
    host: &str,
    reason: &str,
) -> anyhow::Result<common::blocklist::Outcome> {
    let deps = connect_admin(settings).await?;
    let bus = common::blocklist::admin_bus(&deps);
    let outcome = common::blocklist::block(&deps.db, &bus, host, reason).await;
    deps.db.close().await;
    Ok(outcome?)
}

/// `hosts unblock HOST`.
pub async fn unblock_host(
    settings: Settings,
    host: &str,
) -> anyhow::Result<common::blocklist::Outcome> {
    let deps = connect_admin(settings).await?;
    let bus = common::blocklist::admin_bus(&deps);
    let outcome = common::blocklist::unblock(&deps.db, &bus, host).await;
    deps.db.close().await;
    Ok(outcome?)
}

/// `hosts list`: one line per runtime block, `host<TAB>blocked at<TAB>reason`.
pub async fn list_blocked_hosts(settings: Settings) -> anyhow::Result<Vec<String>> {
    let deps = connect_admin(settings).await?;
    let blocked = common::blocklist::list(&deps.db).await;
    deps.db.close().await;
    Ok(blocked?
        .iter()
        .map(|b| {
            format!(
                "{}\t{}\t{}",
                b.host,
                common::time::from_ms(b.created_at)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                b.reason
            )
        })
        .collect())
}
