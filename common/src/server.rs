//! The one way every service (create, lookup, stats and the all-in-one) is built and
//! run: routes, app data and readiness go in, a [`Running`] server comes out, the same
//! for `main` and for tests.
//!
//! Stopping is a feature, in one order for every service:
//! 1. readiness fails, so load balancers stop sending new requests;
//! 2. requests are still served for `http.drain_delay`, then the listener closes and
//!    in-flight requests finish (up to `http.shutdown_timeout`);
//! 3. the stop steps run, in the order the service registered them: flush buffered
//!    clicks → publish pending link changes → stop the stats appliers → release the
//!    worker-id lease (each service registers the ones it has);
//! 4. every other background task is cancelled and awaited.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use futures_util::future::BoxFuture;

use crate::background::Background;
use crate::deps::Deps;
use crate::health::{Draining, Readiness};

type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;
type StopStep = (&'static str, BoxFuture<'static, ()>);

/// How long background tasks may take to end once cancelled.
const BACKGROUND_GRACE: Duration = Duration::from_secs(5);

/// Binds `bind:port` (port 0 picks a free one) and reports the port actually bound.
pub fn bind(bind: &str, port: u16) -> anyhow::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((bind, port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}:{port}: {e}"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// A service being assembled.
pub struct ServiceBuilder {
    deps: Deps,
    readiness: Readiness,
    configure: Vec<Configure>,
    default_service: fn() -> actix_web::Route,
    stop_steps: Vec<StopStep>,
}

impl ServiceBuilder {
    /// A service on `deps` (its settings, metrics and background work), answering
    /// `/readyz` with `readiness`. The operational routes are always mounted.
    pub fn new(deps: &Deps, readiness: Readiness) -> ServiceBuilder {
        ServiceBuilder {
            deps: deps.clone(),
            readiness,
            configure: Vec::new(),
            default_service: || web::to(crate::http::not_found),
            stop_steps: Vec::new(),
        }
    }

    /// Makes `data` available to handlers.
    pub fn data<T: Send + Sync + 'static>(mut self, data: web::Data<T>) -> ServiceBuilder {
        self.configure
            .push(Arc::new(move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(data.clone());
            }));
        self
    }

    /// Mounts routes (called once per worker thread).
    pub fn routes<F>(mut self, routes: F) -> ServiceBuilder
    where
        F: Fn(&mut web::ServiceConfig) + Send + Sync + 'static,
    {
        self.configure.push(Arc::new(routes));
        self
    }

    /// What answers a path no route claims (a 404 problem unless set).
    pub fn default_service(mut self, service: fn() -> actix_web::Route) -> ServiceBuilder {
        self.default_service = service;
        self
    }

    /// A step of the shutdown, run after HTTP has drained, in registration order
    /// (the future starts only then).
    pub fn on_stop<F>(mut self, name: &'static str, step: F) -> ServiceBuilder
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.stop_steps.push((name, Box::pin(step)));
        self
    }

    /// Binds `http.bind:http.port` (0: any free port) and starts serving.
    pub fn start(self) -> anyhow::Result<Running> {
        let settings = self.deps.settings.clone();
        let http = &settings.http;
        let (listener, port) = bind(&http.bind, http.port)?;
        let draining = self.readiness.draining();
        let readiness = web::Data::new(self.readiness);
        let metrics = web::Data::from(self.deps.metrics.clone());
        let configure = self.configure;
        let default_service = self.default_service;
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .wrap(from_fn(crate::metrics::track_requests))
                .wrap(crate::telemetry::request_tracing())
                .app_data(readiness.clone())
                .app_data(metrics.clone())
                .app_data(crate::http::query_config())
                .app_data(crate::http::path_config())
                .configure(crate::http::ops_routes);
            for routes in &configure {
                app = app.configure(|cfg| routes(cfg));
            }
            app.default_service(default_service())
        })
        .shutdown_timeout(http.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)?;
        if let Some(workers) = http.workers {
            server = server.workers(workers);
        }
        let server = server.run();
        let handle = server.handle();
        tracing::info!(service = self.deps.kind.name(), port, "listening");
        Ok(Running {
            port,
            handle,
            server: tokio::spawn(server),
            draining,
            drain_delay: http.drain_delay,
            shutdown_timeout: http.shutdown_timeout,
            stop_steps: self.stop_steps,
            background: self.deps.background.clone(),
        })
    }
}

/// A service serving in the background.
pub struct Running {
    port: u16,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    draining: Draining,
    drain_delay: Duration,
    shutdown_timeout: Duration,
    stop_steps: Vec<StopStep>,
    background: Background,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("port", &self.port).finish()
    }
}

impl Running {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C, then stops as [`Running::stop`] does.
    pub async fn until_signal(mut self) -> anyhow::Result<()> {
        tokio::select! {
            _ = shutdown_signal() => {}
            ended = &mut self.server => {
                // The server ended on its own: nothing left to drain, but the steps
                // still flush what the process holds.
                tracing::error!(?ended, "HTTP server ended unexpectedly");
                self.run_stop_steps().await;
                ended??;
                anyhow::bail!("HTTP server ended unexpectedly");
            }
        }
        self.stop().await
    }

    /// Stops in the documented order (see the module doc).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.draining.start();
        tracing::info!(
            drain_delay_ms = self.drain_delay.as_millis() as u64,
            "shutting down: readiness fails, in-flight requests finish"
        );
        tokio::time::sleep(self.drain_delay).await;
        self.handle.stop(true).await;
        // The handle returns once the workers stopped; the task only reports how.
        let grace = self.shutdown_timeout + Duration::from_secs(1);
        match tokio::time::timeout(grace, &mut self.server).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP server did not stop in time"),
            Ok(Ok(Ok(()))) => {}
        }
        self.run_stop_steps().await;
        self.background.shutdown(BACKGROUND_GRACE).await;
        tracing::info!("stopped");
        Ok(())
    }

    async fn run_stop_steps(&mut self) {
        for (name, step) in std::mem::take(&mut self.stop_steps) {
            tracing::debug!(step = name, "shutdown step");
            step.await;
        }
    }
}

/// Resolves when the process receives SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
