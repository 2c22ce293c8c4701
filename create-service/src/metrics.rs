//! create-service's counters, each label a closed set of values resolved once.

use common::label_values;
use common::metrics::{Counters, Metrics, register};
use prometheus::{IntCounter, IntCounterVec, Opts};

label_values! {
    /// How a created link was named.
    pub enum Created {
        Generated => "generated",
        Alias => "alias",
        Bulk => "bulk",
    }
}

label_values! {
    /// The rate limit that refused a request.
    pub enum Limit {
        PerKey => "per-key",
        PerAddress => "per-address",
    }
}

label_values! {
    /// Why the Snowflake generator waited.
    pub enum IdWait {
        SequenceExhausted => "sequence_exhausted",
        ClockBackwards => "clock_backwards",
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(common::metrics::Label::name(*self))
    }
}

pub struct CreateMetrics {
    pub created: Counters<Created>,
    /// Creates with `reuse` answered with an existing link.
    pub reused: IntCounter,
    pub rate_limited: Counters<Limit>,
    pub id_waits: Counters<IdWait>,
}

impl CreateMetrics {
    pub fn new(metrics: &Metrics) -> CreateMetrics {
        let r = metrics.registry();
        let vec = |name: &str, help: &str, label: &str| {
            register(r, IntCounterVec::new(Opts::new(name, help), &[label]))
        };
        CreateMetrics {
            created: Counters::new(&vec(
                "links_created_total",
                "Links created, by how they were named.",
                "kind",
            )),
            reused: register(
                r,
                IntCounter::new(
                    "links_reused_total",
                    "Creates with `reuse` answered with an existing link.",
                ),
            ),
            rate_limited: Counters::new(&vec(
                "rate_limited_total",
                "Requests refused with 429, by limit.",
                "limit",
            )),
            id_waits: Counters::new(&vec(
                "id_generator_waits_total",
                "Times the Snowflake generator waited, by reason.",
                "reason",
            )),
        }
    }
}
