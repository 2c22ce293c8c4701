//! Building and running create-service: the routes (shared with the all-in-one) and a
//! server bound to a port, which tests start on port 0.

use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::events::LinkEvents;

use crate::http;
use crate::state::CreateState;

/// Mounts the link API and the web page (`/`, `/static/…`), which uses it. Needs
/// `web::Data<CreateState>` in the app.
pub fn routes(settings: &Settings) -> impl FnOnce(&mut web::ServiceConfig) {
    let json_limit = settings.http.json_body_limit_bytes;
    let bulk_limit = settings.http.bulk_body_limit_bytes;
    move |cfg: &mut web::ServiceConfig| {
        cfg.route(
            "/api/v1/openapi.json",
            web::get().to(http::openapi::openapi_json),
        )
        .service(
            web::resource("/api/v1/links/bulk")
                .app_data(common::http::json_config(bulk_limit))
                .route(web::post().to(http::bulk::create_bulk)),
        )
        .service(
            web::resource("/api/v1/links")
                .app_data(common::http::json_config(json_limit))
                .route(web::post().to(http::create::create_link))
                .route(web::get().to(http::list::list_links)),
        )
        .service(
            web::resource("/api/v1/links/{code}")
                .app_data(common::http::json_config(json_limit))
                .route(web::get().to(http::get::get_link))
                .route(web::patch().to(http::update::update_link))
                .route(web::delete().to(http::delete::delete_link)),
        )
        .route("/api/v1/links/{code}/qr", web::get().to(http::qr::link_qr))
        .configure(crate::web::routes);
    }
}

/// A running create-service.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<CreateState>,
    stop: common::http::GracefulStop,
}

impl Application {
    /// Connects, leases a worker id and binds `http.bind:http.port` (0 = any free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let deps = Deps::connect(ServiceKind::Create, settings).await?;
        Self::build_with(deps).await
    }

    pub async fn build_with(deps: Deps) -> anyhow::Result<Application> {
        let events = crate::state::default_events(&deps);
        Self::build_with_events(deps, events).await
    }

    /// Like [`Application::build_with`], with link changes sent to `events`.
    pub async fn build_with_events(deps: Deps, events: LinkEvents) -> anyhow::Result<Application> {
        let settings = deps.settings.clone();
        let state = web::Data::new(CreateState::build(&deps, events).await?);
        let readiness = web::Data::new(crate::state::with_lease_check(deps.readiness(), &state));
        let stop = common::http::GracefulStop::new(&readiness, &settings.http);
        let metrics = web::Data::from(deps.metrics.clone());
        let (listener, port) = common::http::bind(&settings.http.bind, settings.http.port)?;
        let app_state = state.clone();
        let app_settings = settings.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(common::metrics::track_requests))
                .wrap(common::telemetry::request_tracing())
                .app_data(app_state.clone())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .app_data(common::http::query_config())
                .app_data(common::http::path_config())
                .configure(common::http::ops_routes)
                .configure(routes(&app_settings))
                .default_service(web::to(common::http::not_found))
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
    /// then releases the worker-id lease so a replacement can take it at once.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.stop.serve(self.server).await?;
        release(self.state).await;
        Ok(())
    }

    /// For tests: serve in the background, return a handle that stops the server.
    pub fn spawn(self) -> Running {
        let handle = self.server.handle();
        let state = self.state.clone();
        let task = tokio::spawn(self.server);
        Running {
            port: self.port,
            handle,
            task,
            state,
        }
    }
}

/// A server running in the background.
pub struct Running {
    pub port: u16,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    state: web::Data<CreateState>,
}

impl Running {
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        release(self.state).await;
    }
}

async fn release(state: web::Data<CreateState>) {
    state.release_lease().await;
}
