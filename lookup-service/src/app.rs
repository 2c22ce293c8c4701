//! Building and running lookup-service: the redirect route (shared with the
//! all-in-one) and a server bound to a port, which tests start on port 0.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::events::InvalidationSource;
use common::ids::CodeCodec;

use crate::resolve::LookupState;

/// The label that request metrics give redirects.
pub const REDIRECT_ROUTE: &str = "/{code}";

/// The redirect, mounted as the app's default service: it answers every path that no
/// fixed route claims. As a routed `/{code}` resource each request would pay a regex
/// capture to find the code, a measurable share of a redirect's CPU; here the code is
/// the path itself. Needs `web::Data<LookupState>` in the app.
pub fn redirect_service() -> actix_web::Route {
    web::to(crate::redirect::follow)
}

/// Readiness of a lookup instance. The database is reported but not required: with
/// it down, cached links still redirect, and taking every instance out of rotation
/// at once would turn a partial outage into a full one.
pub fn readiness(deps: &Deps, state: &web::Data<LookupState>) -> common::health::Readiness {
    let db = deps.db.clone();
    let mut readiness = common::health::Readiness::default().with(common::health::Check::new(
        "database-primary",
        false,
        move || {
            let db = db.clone();
            async move { db.ping_primary().await.map_err(|e| e.to_string()) }
        },
    ));
    if !state.replicas.is_empty() {
        let replicas = state.replicas.clone();
        readiness = readiness.with(common::health::Check::new("replicas", false, move || {
            let healthy = replicas.healthy_count();
            let all = replicas.len();
            async move {
                if healthy > 0 {
                    Ok(())
                } else {
                    Err(format!("0 of {all} replicas healthy; reading the primary"))
                }
            }
        }));
    }
    if deps.redis.is_some() {
        let tiers = state.tiers.clone();
        readiness = readiness.with(common::health::Check::new(
            "redis-breaker",
            false,
            move || {
                let breaker = tiers.breaker_state();
                async move {
                    match breaker {
                        common::breaker::BreakerState::Closed => Ok(()),
                        other => Err(format!("breaker {}; skipping L2", other.name())),
                    }
                }
            },
        ));
        let tiers = state.tiers.clone();
        readiness = readiness.with(common::health::Check::new(
            "invalidation-subscription",
            false,
            move || {
                let up = tiers.subscribed();
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("lost; local cache kept short".to_string())
                    }
                }
            },
        ));
    }
    readiness
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<LookupState>,
    stop: common::http::GracefulStop,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let deps = Deps::connect(ServiceKind::Lookup, settings).await?;
        let key = deps.settings.ids.code_key.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "configuration key `ids.code_key` is required (set SHORTENER__IDS__CODE_KEY)"
            )
        })?;
        let codec = Arc::new(CodeCodec::new(
            secrecy::ExposeSecret::expose_secret(key).as_bytes(),
        ));
        Self::build_with(deps, codec)
    }

    pub fn build_with(deps: Deps, codec: Arc<CodeCodec>) -> anyhow::Result<Application> {
        let source = match &deps.redis {
            Some(redis) => InvalidationSource::Redis(redis.clone()),
            None => InvalidationSource::None,
        };
        Self::build_with_source(deps, codec, source)
    }

    /// Like [`Application::build_with`], hearing about link changes from `source`.
    pub fn build_with_source(
        deps: Deps,
        codec: Arc<CodeCodec>,
        source: InvalidationSource,
    ) -> anyhow::Result<Application> {
        let settings = deps.settings.clone();
        let state = web::Data::new(LookupState::build(&deps, codec, source));
        let readiness = web::Data::new(readiness(&deps, &state));
        let stop = common::http::GracefulStop::new(&readiness, &settings.http);
        let metrics = web::Data::from(deps.metrics.clone());
        let (listener, port) = common::http::bind(&settings.http.bind, settings.http.port)?;
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::metrics::track_requests))
                .wrap(common::telemetry::request_tracing())
                .app_data(app_state.clone())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .app_data(common::http::path_config())
                .configure(common::http::ops_routes)
                .default_service(redirect_service())
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .disable_signals()
        .listen(listener)?;
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            state,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/Ctrl-C, drains (see [`common::http::GracefulStop`]),
    /// then flushes the clicks still buffered.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.stop.serve(self.server).await?;
        flush_clicks(&self.state).await;
        Ok(())
    }

    /// For tests: serve in the background; the handle stops the server.
    pub fn spawn(self) -> (u16, Stopper) {
        let handle = self.server.handle();
        tokio::spawn(self.server);
        (
            self.port,
            Stopper {
                handle,
                state: self.state,
            },
        )
    }
}

/// Stops a spawned server the way SIGTERM would.
pub struct Stopper {
    handle: actix_web::dev::ServerHandle,
    state: web::Data<LookupState>,
}

/// Stops a spawned server, draining in-flight requests, then flushes clicks.
pub async fn stop(stopper: Stopper) {
    let _ = tokio::time::timeout(Duration::from_secs(5), stopper.handle.stop(true)).await;
    flush_clicks(&stopper.state).await;
}

pub async fn flush_clicks(state: &LookupState) {
    if let Some(clicks) = &state.clicks {
        clicks.drain(Duration::from_secs(10)).await;
    }
}
