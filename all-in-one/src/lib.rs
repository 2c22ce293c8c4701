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

use std::time::Duration;

use common::config::{ServiceKind, Settings};
use common::db::Engine;
use common::deps::Deps;
use common::domain::access::{Grant, Role, Scope};
use common::events::Bus;
use common::server::{Running, ServiceBuilder};
use create_service::CreateService;
use lookup_service::LookupService;
use secrecy::{ExposeSecret, SecretString};
use stats_service::StatsService;

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

/// Starts the all-in-one: create, lookup and stats on one port, sharing one set of
/// dependencies; link changes reach the in-process lookup cache over an in-process
/// bus instead of Redis. Stops in the order every service does (see
/// [`common::server`]): flush clicks → publish pending link changes → apply the
/// queued clicks and stop the appliers → release the worker-id lease.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let mut deps = connect(settings).await?;
    deps.bus = Bus::local();
    let create = CreateService::start(&deps).await?;
    let lookup = LookupService::start(&deps, create.state.codec.clone()).await?;
    let stats = StatsService::start(&deps)?;
    let builder = ServiceBuilder::new(&deps, create.readiness(&deps));
    let builder = lookup.mount(stats.mount(create.mount(builder, &deps.settings)));
    let (db, stats_settings) = (deps.db.clone(), deps.settings.stats.clone());
    builder
        .on_stop("flush clicks", lookup.flush_clicks())
        .on_stop("publish pending link changes", create.stop_relay())
        .on_stop("apply the queued clicks", async move {
            stats_service::consumer::apply_remaining(&db, &stats_settings, Duration::from_secs(10))
                .await
        })
        .on_stop("stop the click appliers", stats.stop_appliers())
        .on_stop("release the worker-id lease", create.release_lease())
        .start()
}

/// The grant `keys create` asks for: `--role` (owner when neither is given) or
/// `--scopes` (comma-separated).
pub fn parse_grant(role: Option<&str>, scopes: Option<&str>) -> anyhow::Result<Grant> {
    match (role, scopes) {
        (Some(_), Some(_)) => anyhow::bail!("give --role or --scopes, not both"),
        (None, Some(scopes)) => scopes
            .split(',')
            .map(|s| Scope::parse_or_explain(s.trim()).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Grant::scopes),
        (role, None) => Role::parse_or_explain(role.unwrap_or("owner"))
            .map(Grant::Role)
            .map_err(anyhow::Error::msg),
    }
}

/// `keys create`: mints a key; the caller prints it.
pub async fn create_key(
    settings: Settings,
    tenant: &str,
    label: &str,
    grant: Grant,
) -> anyhow::Result<String> {
    let deps = connect(settings).await?;
    let key = common::auth::create_key(&deps.db, tenant, label, grant).await?;
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
            let grant = match k.grant.to_stored() {
                (Some(role), _) => role.to_string(),
                (None, scopes) => scopes.unwrap_or_default().replace(' ', ","),
            };
            let state = k.state_at(common::time::now_ms()).as_str();
            format!("{}\t{}\t{grant}\t{state}\t{}", k.id, k.tenant_id, k.label)
        })
        .collect())
}

/// `keys revoke ID`.
pub async fn revoke_key(settings: Settings, id: i64) -> anyhow::Result<bool> {
    let deps = connect(settings).await?;
    let revoked = common::auth::revoke_by_operator(&deps.db, id).await?;
    // Running instances forget the key at once, or within the key cache's lifetime.
    common::held::announce(&deps.bus, common::events::Event::AccessChanged, revoked).await;
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
    let outcome = common::blocklist::block(&deps.db, &deps.bus, host, reason).await;
    deps.db.close().await;
    Ok(outcome?)
}

/// `hosts unblock HOST`.
pub async fn unblock_host(
    settings: Settings,
    host: &str,
) -> anyhow::Result<common::blocklist::Outcome> {
    let deps = connect_admin(settings).await?;
    let outcome = common::blocklist::unblock(&deps.db, &deps.bus, host).await;
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

/// `webhooks dead-letters --tenant T [--endpoint ID]`: the tenant's dead letters,
/// newest first, one a line (message, endpoint, type, link, when given up, attempts).
pub async fn dead_letters(
    settings: Settings,
    tenant: &str,
    endpoint: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let deps = connect_admin(settings).await?;
    let tenant = common::link::TenantId::from_stored(tenant.to_string());
    let endpoints = common::db::webhooks::list_endpoints(deps.db.primary(), &tenant).await;
    let mut lines = Vec::new();
    let mut failure = None;
    match endpoints {
        Ok(endpoints) => {
            for e in endpoints
                .iter()
                .filter(|e| endpoint.is_none_or(|id| id == e.id))
            {
                match common::db::webhooks::messages(
                    deps.db.primary(),
                    &e.id,
                    Some("dead"),
                    None,
                    10_000,
                )
                .await
                {
                    Ok(dead) => lines.extend(dead.iter().map(|m| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            m.id,
                            e.id,
                            m.event_type,
                            if m.link_key.is_empty() {
                                "-"
                            } else {
                                &m.link_key
                            },
                            m.finished_at
                                .map(|at| common::time::from_ms(at)
                                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                                .unwrap_or_default(),
                            m.attempts
                        )
                    })),
                    Err(e) => failure = Some(e),
                }
            }
        }
        Err(e) => failure = Some(e),
    }
    deps.db.close().await;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(lines),
    }
}

/// `webhooks replay --tenant T --endpoint ID [--message MSG]`: puts the endpoint's
/// dead letters (one, when named) back in line, with an audit row for the operator;
/// returns how many.
pub async fn replay_dead_letters(
    settings: Settings,
    tenant: &str,
    endpoint: &str,
    message: Option<&str>,
) -> anyhow::Result<u64> {
    let deps = connect_admin(settings).await?;
    let outcome = replay_on(&deps, tenant, endpoint, message).await;
    deps.db.close().await;
    outcome
}

async fn replay_on(
    deps: &Deps,
    tenant: &str,
    endpoint: &str,
    message: Option<&str>,
) -> anyhow::Result<u64> {
    let tenant_id = common::link::TenantId::from_stored(tenant.to_string());
    let Some(found) =
        common::db::webhooks::get_endpoint(deps.db.primary(), &tenant_id, endpoint).await?
    else {
        anyhow::bail!("tenant `{tenant}` has no webhook endpoint `{endpoint}`");
    };
    let mut tx = deps.db.begin_write().await?;
    let replayed =
        common::db::webhooks::replay(&mut tx, &found.id, message, common::time::now_ms()).await?;
    if replayed == 0 && message.is_some() {
        anyhow::bail!(
            "`{}` is no dead letter of `{endpoint}`",
            message.unwrap_or_default()
        );
    }
    let entry = common::audit::outside_request(
        &common::audit::operator(),
        tenant,
        common::audit::AuditAction::WebhookReplayed,
        common::audit::target("webhook", &found.id),
        serde_json::json!({"replayed": {"from": null, "to": replayed}}),
    );
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok(replayed)
}
