//! `/healthz` (the process is alive) and `/readyz` (its dependencies answer).
//!
//! Liveness never looks at dependencies: restarting a pod because its database is down
//! cures nothing. Readiness runs every registered check under one deadline and answers
//! 503 with the failing checks named, so a load balancer stops sending traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde::Serialize;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// A readiness probe. `required = false` checks are reported but never fail readiness
/// (e.g. Redis, which every service can run without).
#[derive(Clone)]
pub struct Check {
    pub name: &'static str,
    pub required: bool,
    run: CheckFn,
}

impl Check {
    pub fn new<F, Fut>(name: &'static str, required: bool, run: F) -> Check
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Check {
            name,
            required,
            run: Arc::new(move || Box::pin(run())),
        }
    }
}

/// Set once the process starts shutting down: from then on readiness fails, so load
/// balancers stop sending new requests while the ones in flight finish.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The readiness checks of one service.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Check>,
    draining: Draining,
}

#[derive(Debug, Serialize)]
struct CheckReport {
    name: &'static str,
    ok: bool,
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

const CHECK_DEADLINE: Duration = Duration::from_secs(2);

impl Readiness {
    pub fn with(mut self, check: Check) -> Readiness {
        self.checks.push(check);
        self
    }

    /// The flag that fails this readiness when shutdown starts.
    pub fn draining(&self) -> Draining {
        self.draining.clone()
    }

    async fn run(&self) -> (bool, Vec<CheckReport>) {
        let runs = self.checks.iter().map(|check| async move {
            let outcome = tokio::time::timeout(CHECK_DEADLINE, (check.run)())
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {CHECK_DEADLINE:?}")));
            CheckReport {
                name: check.name,
                ok: outcome.is_ok(),
                required: check.required,
                error: outcome.err(),
            }
        });
        let reports = futures_util::future::join_all(runs).await;
        let ready = reports.iter().all(|r| r.ok || !r.required);
        (ready, reports)
    }
}

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`.
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    if readiness.draining.is_started() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "draining", "checks": [] }));
    }
    let (ready, checks) = readiness.run().await;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": checks,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
