//! Prometheus metrics shared by every service: the registry, the request-latency
//! histogram (per route pattern, method and status) and the middleware that fills it.
//!
//! Routes are labelled by their pattern (`/{code}`), never by the concrete path, so a
//! scanner cannot blow up the label cardinality.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Buckets tuned for a redirect service: most answers take well under a millisecond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

pub struct Metrics {
    registry: Registry,
    pub http_request_duration: HistogramVec,
    pub db_errors: IntCounterVec,
    pub redis_errors: IntCounterVec,
    pub id_waits: IntCounterVec,
    pub links_created: IntCounterVec,
    pub ratelimited: IntCounterVec,
    pub worker_id: IntGauge,
}

pub fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<T>,
) -> T {
    // Names are constants of this module, so a failure is a programming error that the
    // unit test below catches at build time; at run time it can only happen at start-up.
    match metric {
        Ok(m) => {
            if let Err(e) = registry.register(Box::new(m.clone())) {
                tracing::error!(error = %e, "metric registration failed");
            }
            m
        }
        Err(e) => {
            panic!("invalid metric definition: {e}")
        }
    }
}

impl Metrics {
    /// A fresh registry whose series all carry `service="<name>"`.
    pub fn new(service: &str) -> Arc<Metrics> {
        let labels = std::iter::once(("service".to_string(), service.to_string())).collect();
        let registry = Registry::new_custom(Some("shortener".into()), Some(labels))
            .unwrap_or_else(|_| Registry::new());
        let http_request_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "Time to answer an HTTP request, by route pattern, method and status.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "method", "status"],
            ),
        );
        let db_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new("db_errors_total", "Database calls that failed, by role."),
                &["role"],
            ),
        );
        let redis_errors = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "redis_errors_total",
                    "Redis calls that failed or timed out.",
                ),
                &["operation"],
            ),
        );
        let id_waits = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "id_generator_waits_total",
                    "Times the Snowflake generator waited, by reason.",
                ),
                &["reason"],
            ),
        );
        let links_created = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "links_created_total",
                    "Links created, by how they were named.",
                ),
                &["kind"],
            ),
        );
        let ratelimited = register(
            &registry,
            IntCounterVec::new(
                Opts::new("rate_limited_total", "Requests refused with 429, by limit."),
                &["limit"],
            ),
        );
        let worker_id = register(
            &registry,
            IntGauge::new("snowflake_worker_id", "Worker id leased by this process."),
        );
        Arc::new(Metrics {
            registry,
            http_request_duration,
            db_errors,
            redis_errors,
            id_waits,
            links_created,
            ratelimited,
            worker_id,
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// `GET /metrics`.
pub async fn metrics_handler(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}

/// Middleware (`actix_web::middleware::from_fn`) that times every request.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    // The route is read after the call: before it, the pattern would cost a second
    // routing of the path. A resource named after its pattern (the redirect) is
    // labelled by its name, without building the pattern string.
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (status, route) = match &result {
            Ok(res) => (
                res.status(),
                match res.request().match_name() {
                    Some(name) => std::borrow::Cow::Borrowed(name),
                    None => res
                        .request()
                        .match_pattern()
                        .map_or(std::borrow::Cow::Borrowed("unmatched"), Into::into),
                },
            ),
            Err(e) => (
                e.as_response_error().status_code(),
                std::borrow::Cow::Borrowed("unmatched"),
            ),
        };
        metrics
            .http_request_duration
            .with_label_values(&[route.as_ref(), method.as_str(), status.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders() {
        let m = Metrics::new("test");
        m.db_errors.with_label_values(&["primary"]).inc();
        m.http_request_duration
            .with_label_values(&["/{code}", "GET", "302"])
            .observe(0.0002);
        let text = m.render();
        assert!(text.contains("shortener_db_errors_total{role=\"primary\",service=\"test\"} 1"));
        assert!(text.contains("shortener_http_request_duration_seconds_bucket"));
    }
}
