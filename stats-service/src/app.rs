//! Building and running stats-service: its routes (shared with the all-in-one) and a
//! server bound to a port, which tests start on port 0.

use actix_web::dev::Server;
use actix_web::middleware::{Compat, from_fn};
use actix_web::{App, HttpServer, web};
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use tracing_actix_web::TracingLogger;

/// Mounts the stats API (none yet beyond the operational routes).
pub fn routes(_settings: &Settings) -> impl FnOnce(&mut web::ServiceConfig) {
    |_cfg: &mut web::ServiceConfig| {}
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let deps = Deps::connect(ServiceKind::Stats, settings).await?;
        let settings = deps.settings.clone();
        let readiness = web::Data::new(deps.readiness());
        let metrics = web::Data::from(deps.metrics.clone());
        let (listener, port) = common::http::bind(&settings.http.bind, settings.http.port)?;
        let app_settings = settings.clone();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::metrics::track_requests))
                .wrap(Compat::new(TracingLogger::default()))
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .configure(common::http::ops_routes)
                .configure(routes(&app_settings))
                .default_service(web::to(common::http::not_found))
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await?;
        Ok(())
    }
}
