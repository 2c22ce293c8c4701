//! Building and running stats-service: its routes (shared with the all-in-one) and a
//! server bound to a port, which tests start on port 0.

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::config::{ServiceKind, Settings};

use crate::api::StatsState;
use crate::consumer::Consumers;
use common::deps::Deps;

/// Mounts the stats API. Needs `web::Data<StatsState>` in the app.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/links/{code}/stats",
        web::get().to(crate::api::link_stats),
    );
}

/// The stats API's state, and the consumers started for it.
pub fn start(deps: &Deps) -> (web::Data<StatsState>, Consumers) {
    let metrics = crate::consumer::ConsumerMetrics::new(&deps.metrics);
    let consumers = crate::consumer::start(deps.db.clone(), deps.settings.stats.clone(), metrics);
    let state = web::Data::new(StatsState {
        db: deps.db.clone(),
        auth: common::auth::Authenticator::new(deps.db.clone()),
        anonymous_stats: deps.settings.links.anonymous_stats,
    });
    (state, consumers)
}

pub struct Application {
    port: u16,
    server: Server,
    consumers: Consumers,
    stop: common::http::GracefulStop,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let deps = Deps::connect(ServiceKind::Stats, settings).await?;
        Self::build_with(deps)
    }

    pub fn build_with(deps: Deps) -> anyhow::Result<Application> {
        let settings = deps.settings.clone();
        let (state, consumers) = start(&deps);
        let readiness = web::Data::new(deps.readiness());
        let stop = common::http::GracefulStop::new(&readiness, &settings.http);
        let metrics = web::Data::from(deps.metrics.clone());
        let (listener, port) = common::http::bind(&settings.http.bind, settings.http.port)?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::metrics::track_requests))
                .wrap(common::telemetry::request_tracing())
                .app_data(state.clone())
                .app_data(common::http::query_config())
                .app_data(common::http::path_config())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .configure(common::http::ops_routes)
                // Here and not in `routes`: the all-in-one serves create's document
                // at this path.
                .route(
                    "/api/v1/openapi.json",
                    web::get().to(crate::openapi::openapi_json),
                )
                .configure(routes)
                .default_service(web::to(common::http::not_found))
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            consumers,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// For tests: serve in the background; the handle stops the server, the
    /// consumers stop separately.
    pub fn spawn(self) -> (u16, actix_web::dev::ServerHandle, Consumers) {
        let handle = self.server.handle();
        tokio::spawn(self.server);
        (self.port, handle, self.consumers)
    }

    /// Serves until SIGTERM/Ctrl-C, drains (see [`common::http::GracefulStop`]),
    /// then lets the appliers finish their rounds.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.stop.serve(self.server).await?;
        self.consumers.stop().await;
        Ok(())
    }
}
