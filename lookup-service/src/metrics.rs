//! lookup-service metrics, registered in the service's registry beside the HTTP
//! latency histogram.

use common::breaker::BreakerState;
use common::metrics::{Metrics, register};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
};

/// A read tier of a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    L1,
    L2,
    Replica,
    Primary,
}

/// What a lookup in one tier came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    /// L1: loaded before events may have been missed, so reloaded.
    Stale,
    /// L1: such an entry served because no tier below could answer.
    StaleServed,
    Error,
    /// L2: not asked, the breaker being open.
    Skipped,
}

impl Tier {
    const ALL: [Tier; 4] = [Tier::L1, Tier::L2, Tier::Replica, Tier::Primary];

    pub fn name(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::L2 => "l2",
            Tier::Replica => "replica",
            Tier::Primary => "primary",
        }
    }

    /// The outcomes this tier has.
    fn outcomes(self) -> &'static [Outcome] {
        use Outcome::*;
        match self {
            Tier::L1 => &[Hit, Miss, Stale, StaleServed],
            Tier::L2 => &[Hit, Miss, Error, Skipped],
            Tier::Replica | Tier::Primary => &[Hit, Miss, Error],
        }
    }
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::StaleServed => "stale-served",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
        }
    }

    /// A hit or a miss, by whether something was found.
    pub fn found(found: bool) -> Outcome {
        if found { Outcome::Hit } else { Outcome::Miss }
    }
}

/// The series of one tier, resolved once: a lookup counts without a label lookup.
struct TierSeries {
    outcomes: Vec<(Outcome, IntCounter)>,
    /// Time to load from the tier (tiers below L1).
    load: Option<Histogram>,
    /// Database queries made in the tier (replica and primary).
    queries: Option<IntCounter>,
}

pub struct LookupMetrics {
    /// `tier{l1,hit}`, resolved once: it counts nearly every request.
    pub l1_hits: IntCounter,
    /// Per [`Tier`], in `Tier::ALL` order.
    tiers: Vec<TierSeries>,
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
        let load_seconds = register(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "lookup_load_duration_seconds",
                    "Time to load a link from a tier below L1.",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5,
                ]),
                &["tier"],
            ),
        );
        let db_queries = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "lookup_db_queries_total",
                    "Database queries made by lookups.",
                ),
                &["target"],
            ),
        );
        // Every series exists (at 0) from the start, so a hit ratio or an error rate
        // has a base from the first scrape rather than from the first miss or error.
        let tiers = Tier::ALL
            .iter()
            .map(|&t| TierSeries {
                outcomes: t
                    .outcomes()
                    .iter()
                    .map(|&o| (o, tier.with_label_values(&[t.name(), o.name()])))
                    .collect(),
                load: (t != Tier::L1).then(|| load_seconds.with_label_values(&[t.name()])),
                queries: matches!(t, Tier::Replica | Tier::Primary)
                    .then(|| db_queries.with_label_values(&[t.name()])),
            })
            .collect();
        let metrics = LookupMetrics {
            l1_hits: tier.with_label_values(&["l1", "hit"]),
            tiers,
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

    fn series(&self, tier: Tier) -> Option<&TierSeries> {
        self.tiers.get(Tier::ALL.iter().position(|&t| t == tier)?)
    }

    /// Counts one lookup in `tier` that came to `outcome`.
    pub fn count(&self, tier: Tier, outcome: Outcome) {
        if let Some(counter) = self
            .series(tier)
            .and_then(|s| s.outcomes.iter().find(|(o, _)| *o == outcome))
        {
            counter.1.inc();
        }
    }

    /// Records how long a load from `tier` took (tiers below L1).
    pub fn loaded(&self, tier: Tier, seconds: f64) {
        if let Some(load) = self.series(tier).and_then(|s| s.load.as_ref()) {
            load.observe(seconds);
        }
    }

    /// Counts one database query in `tier` (replica or primary).
    pub fn queried(&self, tier: Tier) {
        if let Some(queries) = self.series(tier).and_then(|s| s.queries.as_ref()) {
            queries.inc();
        }
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
        for tier in Tier::ALL {
            for outcome in tier.outcomes() {
                let series = format!(
                    "shortener_lookup_tier_total{{result=\"{}\",tier=\"{}\",service=\"lookup-service\"}} 0",
                    outcome.name(),
                    tier.name()
                );
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
        for tier in [Tier::L2, Tier::Replica, Tier::Primary] {
            let series = format!(
                "shortener_lookup_load_duration_seconds_count{{tier=\"{}\",service=\"lookup-service\"}} 0",
                tier.name()
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
