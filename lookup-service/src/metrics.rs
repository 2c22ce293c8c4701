//! lookup-service metrics, registered in the service's registry beside the HTTP
//! latency histogram.

use common::breaker::BreakerState;
use common::metrics::{Metrics, register};
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts};

/// Every (tier, result) that `Tiers` counts. Exported at 0 from the start, so a hit
/// ratio or an error rate has a base from the first scrape rather than from the
/// first miss, error or open breaker.
const TIER_RESULTS: &[(&str, &[&str])] = &[
    ("l1", &["hit", "miss", "stale", "stale-served"]),
    ("l2", &["hit", "miss", "error", "skipped"]),
    ("replica", &["hit", "miss", "error"]),
    ("primary", &["hit", "miss", "error"]),
];
/// The tiers below L1, timed by `load_seconds`; replica and primary are also the
/// targets of `db_queries`.
const LOADED_TIERS: &[&str] = &["l2", "replica", "primary"];
const DB_TARGETS: &[&str] = &["replica", "primary"];

pub struct LookupMetrics {
    /// By `tier` and `result`, the pairs of `TIER_RESULTS`.
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
    pub blocked_redirects: IntCounter,
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
        for (name, results) in TIER_RESULTS {
            for result in *results {
                tier.with_label_values(&[name, result]);
            }
        }
        let metrics = LookupMetrics {
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
            blocked_redirects: register(
                r,
                IntCounter::new(
                    "lookup_blocked_redirects_total",
                    "Redirects refused (410) because the target host is blocked.",
                ),
            ),
        };
        for tier in LOADED_TIERS {
            metrics.load_seconds.with_label_values(&[tier]);
        }
        for target in DB_TARGETS {
            metrics.db_queries.with_label_values(&[target]);
        }
        for state in [
            BreakerState::Closed,
            BreakerState::HalfOpen,
            BreakerState::Open,
        ] {
            metrics
                .breaker_transitions
                .with_label_values(&[state.name()]);
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_series_exist_before_any_lookup() {
        let metrics = Metrics::new("lookup-service");
        let _lookup = LookupMetrics::new(&metrics);
        let text = metrics.render();
        for (tier, results) in TIER_RESULTS {
            for result in *results {
                let series = format!(
                    "shortener_lookup_tier_total{{result=\"{result}\",tier=\"{tier}\",service=\"lookup-service\"}} 0"
                );
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
        for tier in LOADED_TIERS {
            let series = format!(
                "shortener_lookup_load_duration_seconds_count{{tier=\"{tier}\",service=\"lookup-service\"}} 0"
            );
            assert!(text.contains(&series), "{series} missing from\n{text}");
        }
        assert!(text.contains(
            "shortener_lookup_redis_breaker_transitions_total{to=\"open\",service=\"lookup-service\"} 0"
        ));
        assert!(text.contains(
            "shortener_lookup_db_queries_total{target=\"replica\",service=\"lookup-service\"} 0"
        ));
        assert!(
            text.contains("shortener_lookup_blocked_redirects_total{service=\"lookup-service\"} 0")
        );
    }
}
