//! stats-service as a server: the stats API and the appliers ([`StatsService`]),
//! mounted on the shared server builder alone ([`start`], [`run`]) or beside create and
//! lookup in the all-in-one.

use std::time::Duration;

use actix_web::web;
use common::background::TaskGroup;
use common::config::{ServiceKind, Settings};
use common::db::replicas::Replicas;
use common::deps::Deps;
use common::server::{Running, ServiceBuilder};

use crate::api::StatsState;

/// Mounts the stats API. Needs `web::Data<StatsState>` in the app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/links/{code}/stats",
        web::get().to(crate::api::link_stats),
    );
}

/// Deadline of one stats answer read on a replica: a few range queries, heavier than
/// a redirect's lookup, so longer than `lookup.replica_timeout`; past it the
/// primary answers and the replica leaves the rotation until its probe answers.
const REPLICA_READ_DEADLINE: Duration = Duration::from_secs(2);

/// How long appliers may take to finish their round at shutdown.
const APPLIER_STOP: Duration = Duration::from_secs(10);

/// The stats API's state with the appliers running.
pub struct StatsService {
    pub state: web::Data<StatsState>,
    appliers: TaskGroup,
}

impl StatsService {
    /// Builds the state and starts the appliers (and, when `webhooks.deliver` is on,
    /// the webhook deliveries) on `deps.background`.
    pub fn start(deps: &Deps) -> anyhow::Result<StatsService> {
        let metrics = crate::consumer::ConsumerMetrics::new(&deps.metrics);
        let appliers = deps.background.group();
        crate::consumer::start(
            &deps.db,
            &deps.settings.stats,
            metrics,
            &appliers,
            &deps.background,
        );
        if deps.settings.webhooks.deliver {
            let deliverer = crate::webhooks::Deliverer::new(
                deps.db.clone(),
                deps.settings.webhooks.clone(),
                &deps.metrics,
                crate::webhooks::system_clock(),
            )?;
            appliers.spawn_graceful(|stop| deliverer.run(stop));
        }
        let replicas = Replicas::new(&deps.db);
        for probe in replicas.probes() {
            deps.background.spawn(probe);
        }
        let auth = common::auth::Authenticator::new(deps.db.clone());
        auth.follow_changes(deps);
        let state = web::Data::new(StatsState {
            db: deps.db.clone(),
            replicas,
            replica_deadline: REPLICA_READ_DEADLINE,
            auth,
            anonymous_stats: deps.settings.links.anonymous_stats,
            reads: crate::api::Reads::new(&deps.metrics),
            default_domain: common::domains::DefaultDomain::from_settings(&deps.settings),
        });
        Ok(StatsService { state, appliers })
    }

    /// Adds the stats API's data and routes.
    pub fn mount(&self, builder: ServiceBuilder) -> ServiceBuilder {
        builder.data(self.state.clone()).routes(routes)
    }

    /// Shutdown step: no new round starts; the ones under way commit first, and
    /// webhook deliveries under way are recorded.
    pub fn stop_appliers(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let appliers = self.appliers.clone();
        async move {
            if !appliers.stop(APPLIER_STOP).await {
                tracing::warn!("click appliers did not stop in time");
            }
        }
    }
}

/// Serves stats-service on `deps` (port 0 picks a free one).
pub fn start(deps: Deps) -> anyhow::Result<Running> {
    serve(&deps, &StatsService::start(&deps)?)
}

/// Serves `service` (tests keep it, to stop and restart its appliers).
pub fn serve(deps: &Deps, service: &StatsService) -> anyhow::Result<Running> {
    let builder = ServiceBuilder::new(deps, deps.readiness());
    service
        .mount(builder)
        // Here and not in `routes`: the all-in-one serves create's document at this
        // path.
        .routes(|cfg| {
            cfg.route(
                "/api/v1/openapi.json",
                web::get().to(crate::openapi::openapi_json),
            );
        })
        .on_stop("stop the click appliers", service.stop_appliers())
        .start()
}

/// `main`: connects, serves until SIGTERM, stops in order.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let deps = Deps::connect(ServiceKind::Stats, settings).await?;
    start(deps)?.until_signal().await
}
