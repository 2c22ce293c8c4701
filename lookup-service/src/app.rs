//! lookup-service as a server: the redirect and its background work
//! ([`LookupService`]), mounted on the shared server builder alone ([`start`], [`run`])
//! or beside create and stats in the all-in-one.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use common::background::TaskGroup;
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::events::Topic;
use common::ids::CodeCodec;
use common::server::{Running, ServiceBuilder};

use crate::resolve::LookupState;
use crate::tiers::Evictor;

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

/// lookup-service's state with its background work running: the invalidation
/// subscription, the blocklist keeper, replica probes, the gauge reporter and the
/// click flusher.
pub struct LookupService {
    pub state: web::Data<LookupState>,
    clicks: TaskGroup,
}

/// How long the last click flush may take at shutdown.
const CLICK_DRAIN: Duration = Duration::from_secs(10);

impl LookupService {
    /// Builds the state and starts its work on `deps.background`; link changes are
    /// heard on `deps.bus`.
    pub async fn start(deps: &Deps, codec: Arc<CodeCodec>) -> anyhow::Result<LookupService> {
        let background = &deps.background;
        let subscription = deps.bus.subscription(Topic::Links);
        let state = web::Data::new(LookupState::build(deps, codec, &subscription)?);
        subscription.start(Arc::new(Evictor(state.tiers.clone())), background);
        common::blocklist::keep_current(deps).await;
        common::domains::keep_current(deps).await;
        for probe in state.replicas.probes() {
            background.spawn(probe);
        }
        let reporter = state.tiers.clone();
        background.spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                reporter.report().await;
            }
        });
        let clicks = background.group();
        if let Some(recorder) = state.clicks.clone() {
            clicks.spawn_graceful(|stop| recorder.run(stop, CLICK_DRAIN));
        }
        Ok(LookupService { state, clicks })
    }

    /// Adds the redirect's data; the redirect itself is the default service.
    pub fn mount(&self, builder: ServiceBuilder) -> ServiceBuilder {
        builder
            .data(self.state.clone())
            .default_service(redirect_service)
    }

    /// Shutdown step: flush every click answered so far.
    pub fn flush_clicks(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let clicks = self.clicks.clone();
        async move {
            if !clicks.stop(CLICK_DRAIN + Duration::from_secs(1)).await {
                tracing::warn!("click flusher did not stop in time");
            }
        }
    }
}

/// Serves lookup-service on `deps` (port 0 picks a free one).
pub async fn start(deps: Deps) -> anyhow::Result<Running> {
    let codec = Arc::new(deps.settings.code_codec()?);
    let service = LookupService::start(&deps, codec).await?;
    let builder = ServiceBuilder::new(&deps, readiness(&deps, &service.state));
    service
        .mount(builder)
        .on_stop("flush clicks", service.flush_clicks())
        .start()
}

/// `main`: connects, serves until SIGTERM, stops in order.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let deps = Deps::connect(ServiceKind::Lookup, settings).await?;
    start(deps).await?.until_signal().await
}
