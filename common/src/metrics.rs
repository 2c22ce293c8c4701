//! Prometheus metrics shared by every service: the registry, the request-latency
//! histogram (per route pattern, method and status) and the middleware that fills it.
//!
//! Routes are labelled by their pattern (`/{code}`), never by the concrete path, so a
//! scanner cannot blow up the label cardinality.

use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets tuned for a redirect service: most answers take well under a millisecond.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Database and Redis failures, counted where every call passes (the conversion of
/// each sqlx error, `RedisCluster::call`), below any one service's state: one tally
/// per process, registered in each registry.
static DB_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    constant(IntCounterVec::new(
        Opts::new(
            "db_errors_total",
            "Database calls that failed, by kind (unavailable: connection, pool or \
             failover, worth a retry; other: a bug or a schema mismatch).",
        ),
        &["kind"],
    ))
});
static REDIS_ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    constant(IntCounterVec::new(
        Opts::new(
            "redis_errors_total",
            "Redis calls that failed, by kind (timeout, pool, command).",
        ),
        &["kind"],
    ))
});

/// Every `kind` the call sites count, exported at 0 from the start: a series that
/// appears only with the first failure gives `rate()` no base, and a dashboard
/// nothing to draw, until the outage is under way.
const DB_ERROR_KINDS: &[&str] = &["unavailable", "other"];
const REDIS_ERROR_KINDS: &[&str] = &["timeout", "pool", "command"];

/// A metric defined by constants (names, help, labels): failing is a programming error
/// that the unit tests catch; at run time it can only happen at start-up.
fn constant<T>(metric: prometheus::Result<T>) -> T {
    match metric {
        Ok(m) => m,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

/// Counts one failed database call.
pub fn count_db_error(kind: &'static str) {
    debug_assert!(DB_ERROR_KINDS.contains(&kind), "unlisted kind {kind}");
    DB_ERRORS.with_label_values(&[kind]).inc();
}

/// Counts one failed Redis call.
pub fn count_redis_error(kind: &'static str) {
    debug_assert!(REDIS_ERROR_KINDS.contains(&kind), "unlisted kind {kind}");
    REDIS_ERRORS.with_label_values(&[kind]).inc();
}

/// The values of one metric label, fixed at compile time: call sites name a variant,
/// so none can mistype a value, and [`Counters`] resolves each series once.
pub trait Label: Copy + Eq + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

/// Declares a fieldless enum of label values and its [`Label`] impl.
#[macro_export]
macro_rules! label_values {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident => $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($variant),+ }

        impl $crate::metrics::Label for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn name(self) -> &'static str {
                match self { $($name::$variant => $value),+ }
            }
        }
    };
}

/// One counter of `vec` per value of `L`, each resolved once (and so exported at 0
/// before its first event: `rate()` has a base from the first scrape).
pub struct Counters<L: Label> {
    series: Vec<(L, IntCounter)>,
    /// Never registered; answers only a value missing from `ALL`, which the macro
    /// rules out.
    unlisted: IntCounter,
}

impl<L: Label> Counters<L> {
    pub fn new(vec: &IntCounterVec) -> Counters<L> {
        Counters {
            series: L::ALL
                .iter()
                .map(|&label| (label, vec.with_label_values(&[label.name()])))
                .collect(),
            unlisted: constant(IntCounter::new("unlisted", "A value no label lists.")),
        }
    }

    /// The series of `label`: a scan over a handful of values, cheaper than hashing.
    pub fn get(&self, label: L) -> &IntCounter {
        self.series
            .iter()
            .find(|(l, _)| *l == label)
            .map_or(&self.unlisted, |(_, counter)| counter)
    }
}

type ScrapeHook = Box<dyn Fn() + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub http_request_duration: HistogramVec,
    /// Connections of each pool (`role` primary | replica) by `state` in_use | idle |
    /// max, read when scraped.
    pub db_pool_connections: IntGaugeVec,
    pub worker_id: IntGauge,
    /// The route label of one-segment paths answered by the app's default service,
    /// where that service is the redirect.
    default_route: OnceLock<&'static str>,
    /// The series of the most frequent answer (a redirect's GET 302), resolved once:
    /// a labelled lookup hashes three strings under a lock on every request.
    redirect_found: OnceLock<Histogram>,
    /// Run before each scrape, for figures read rather than counted (pool sizes).
    scrape_hooks: Mutex<Vec<ScrapeHook>>,
}

pub fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<T>,
) -> T {
    let m = constant(metric);
    if let Err(e) = registry.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
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
        register(&registry, Ok(DB_ERRORS.clone()));
        register(&registry, Ok(REDIS_ERRORS.clone()));
        for kind in DB_ERROR_KINDS {
            DB_ERRORS.with_label_values(&[kind]);
        }
        for kind in REDIS_ERROR_KINDS {
            REDIS_ERRORS.with_label_values(&[kind]);
        }
        let db_pool_connections = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "db_pool_connections",
                    "Database pool connections by pool role and state (in_use, idle, max).",
                ),
                &["role", "state"],
            ),
        );
        let worker_id = register(
            &registry,
            IntGauge::new("snowflake_worker_id", "Worker id leased by this process."),
        );
        Arc::new(Metrics {
            registry,
            http_request_duration,
            db_pool_connections,
            worker_id,
            default_route: OnceLock::new(),
            redirect_found: OnceLock::new(),
            scrape_hooks: Mutex::new(Vec::new()),
        })
    }

    /// Runs `hook` before every scrape, to refresh figures that are read, not counted.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.scrape_hooks.lock() {
            hooks.push(Box::new(hook));
        }
    }

    /// Labels requests for one-segment paths that no route matched with `label`: for
    /// an app whose default service is the redirect.
    pub fn label_default_route(&self, label: &'static str) {
        let _ = self.default_route.set(label);
    }

    fn observe(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        if status == StatusCode::FOUND
            && method == Method::GET
            && self.default_route.get().is_some_and(|r| *r == route)
        {
            self.redirect_found
                .get_or_init(|| {
                    self.http_request_duration
                        .with_label_values(&[route, "GET", "302"])
                })
                .observe(seconds);
        } else {
            self.http_request_duration
                .with_label_values(&[route, method.as_str(), status.as_str()])
                .observe(seconds);
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        if let Ok(hooks) = self.scrape_hooks.lock() {
            for hook in hooks.iter() {
                hook();
            }
        }
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

/// The route pattern a request matched. Read after routing: a matched resource is
/// found by its recorded position, and a resource named after its pattern gives the
/// label without building the pattern string. A one-segment path that nothing matched
/// (nothing of it was consumed by routing) went to the default service.
fn route_label<'a>(metrics: &Metrics, req: &'a HttpRequest) -> std::borrow::Cow<'a, str> {
    if let Some(label) = metrics.default_route.get()
        && !req.match_info().unprocessed().is_empty()
        && req.path().rfind('/') == Some(0)
    {
        return std::borrow::Cow::Borrowed(label);
    }
    match req.match_name() {
        Some(name) => std::borrow::Cow::Borrowed(name),
        None => req
            .match_pattern()
            .map_or(std::borrow::Cow::Borrowed("unmatched"), Into::into),
    }
}

/// Middleware (`actix_web::middleware::from_fn`) that times every request.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().clone();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (status, route) = match &result {
            Ok(res) => (res.status(), route_label(&metrics, res.request())),
            Err(e) => (
                e.as_response_error().status_code(),
                std::borrow::Cow::Borrowed("unmatched"),
            ),
        };
        metrics.observe(&route, &method, status, started.elapsed().as_secs_f64());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::label_values! {
        enum Colour {
            Red => "red",
            Green => "green",
        }
    }

    /// Every value of a label is exported at 0 from the start, and each call site's
    /// variant counts on its own series.
    #[test]
    fn label_values_resolve_once_each() {
        let registry = Registry::new();
        let vec = register(
            &registry,
            IntCounterVec::new(Opts::new("paint_total", "Paint."), &["colour"]),
        );
        let counters = Counters::<Colour>::new(&vec);
        counters.get(Colour::Green).inc_by(2);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .expect("encode");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(text.contains("paint_total{colour=\"red\"} 0"), "{text}");
        assert!(text.contains("paint_total{colour=\"green\"} 2"), "{text}");
    }

    #[test]
    fn every_metric_registers_and_renders() {
        let m = Metrics::new("test");
        count_db_error("unavailable");
        count_redis_error("timeout");
        m.db_pool_connections
            .with_label_values(&["primary", "idle"])
            .set(3);
        m.http_request_duration
            .with_label_values(&["/{code}", "GET", "302"])
            .observe(0.0002);
        let text = m.render();
        // Process-wide: other tests in this binary may have counted too.
        assert!(text.contains("shortener_db_errors_total{kind=\"unavailable\",service=\"test\"}"));
        assert!(text.contains("shortener_redis_errors_total{kind=\"timeout\",service=\"test\"}"));
        assert!(text.contains(
            "shortener_db_pool_connections{role=\"primary\",state=\"idle\",service=\"test\"} 3"
        ));
        assert!(text.contains("shortener_http_request_duration_seconds_bucket"));
    }

    #[test]
    fn error_series_exist_before_any_error() {
        let text = Metrics::new("fresh").render();
        for kind in DB_ERROR_KINDS {
            let series = format!("shortener_db_errors_total{{kind=\"{kind}\",service=\"fresh\"}}");
            assert!(text.contains(&series), "{series} missing from\n{text}");
        }
        for kind in REDIS_ERROR_KINDS {
            let series =
                format!("shortener_redis_errors_total{{kind=\"{kind}\",service=\"fresh\"}}");
            assert!(text.contains(&series), "{series} missing from\n{text}");
        }
    }
}
