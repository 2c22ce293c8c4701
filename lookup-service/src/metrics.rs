//! lookup-service metrics, registered in the service's registry beside the HTTP
//! latency histogram.

use common::metrics::{Metrics, register};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

pub struct LookupMetrics {
    /// `tier` l1 | l2 | replica | primary, `result` hit | miss | error | skipped.
    pub tier: IntCounterVec,
    /// `tier{l1,hit}`, resolved once: it counts nearly every request.
    pub l1_hits: IntCounter,
    pub load_seconds: HistogramVec,
    pub db_queries: IntCounterVec,
    pub breaker_state: IntGauge,
    pub breaker_transitions: IntCounterVec,
    pub invalidations: IntCounter,
    pub l1_resets: IntCounter,
    pub subscription_up: IntGauge,
    pub l1_entries: IntGauge,
    pub l1_bytes: IntGauge,
    pub replica_lag_ms: IntGauge,
    pub not_found_limited: IntCounter,
}

impl LookupMetrics {
    pub fn new(metrics: &Metrics) -> LookupMetrics {
        let r = metrics.registry();
        let tier = register(
            r,
            IntCounterVec::new(
                Opts::new("lookup_tier_total", "Lookups per cache tier and outcome."),
                &["tier", "result"],
            ),
        );
        LookupMetrics {
            l1_hits: tier.with_label_values(&["l1", "hit"]),
            tier,
            load_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "lookup_load_duration_seconds",
                        "Time to load a link from a tier below L1.",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5,
                    ]),
                    &["tier"],
                ),
            ),
            db_queries: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "lookup_db_queries_total",
                        "Database queries made by lookups.",
                    ),
                    &["target"],
                ),
            ),
            breaker_state: register(
                r,
                IntGauge::new(
                    "lookup_redis_breaker_state",
                    "Redis circuit breaker: 0 closed, 1 half-open, 2 open.",
                ),
            ),
            breaker_transitions: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "lookup_redis_breaker_transitions_total",
                        "Redis circuit breaker transitions, by new state.",
                    ),
                    &["to"],
                ),
            ),
            invalidations: register(
                r,
                IntCounter::new(
                    "lookup_invalidations_total",
                    "Invalidation events received.",
                ),
            ),
            l1_resets: register(
                r,
                IntCounter::new(
                    "lookup_l1_resets_total",
                    "Times the local cache was cleared because events may have been missed.",
                ),
            ),
            subscription_up: register(
                r,
                IntGauge::new(
                    "lookup_invalidation_subscription_up",
                    "1 while the invalidation subscription is healthy.",
                ),
            ),
            l1_entries: register(
                r,
                IntGauge::new("lookup_l1_entries", "Entries in the local cache."),
            ),
            l1_bytes: register(
                r,
                IntGauge::new(
                    "lookup_l1_weighted_bytes",
                    "Approximate bytes held by the local cache.",
                ),
            ),
            replica_lag_ms: register(
                r,
                IntGauge::new(
                    "lookup_replica_lag_milliseconds",
                    "Largest replication lag measured on a healthy replica.",
                ),
            ),
            not_found_limited: register(
                r,
                IntCounter::new(
                    "lookup_not_found_limited_total",
                    "Requests answered 429 because their address had too many 404s.",
                ),
            ),
        }
    }
}
