//! Folds a round of click batches into the counter rows they add up to: totals, hourly
//! buckets, daily dimensions and distinct visitors, each key once.

use std::collections::HashMap;

use common::clicks::{Agent, ClickBatch, DAY_MS};
use common::db::clicks::CounterDeltas;

/// The rows `batches` add, with user agents filed by `classify`.
pub fn merge(batches: &[ClickBatch], classify: fn(Option<&str>) -> Agent) -> CounterDeltas {
    let mut deltas = CounterDeltas::default();
    // A round carries thousands of keys but few distinct agents, and classifying one
    // is the costliest step of applying a click key.
    let mut agents: HashMap<Option<&str>, Agent> = HashMap::new();
    for batch in batches {
        for count in &batch.counts {
            let n = i64::try_from(count.clicks).unwrap_or(i64::MAX);
            let key = &count.key;
            let day = key.hour - key.hour.rem_euclid(DAY_MS);
            let agent = agents
                .entry(key.user_agent.as_deref())
                .or_insert_with(|| classify(key.user_agent.as_deref()));
            let total = deltas.totals.entry(key.code.clone()).or_default();
            total.0 += n;
            if agent.bot {
                total.1 += n;
            }
            *deltas
                .hours
                .entry((key.code.clone(), key.hour))
                .or_default() += n;
            let referrer = key.referrer.as_deref().unwrap_or("(direct)");
            let country = key.country.as_deref().unwrap_or("(unknown)");
            let bot = if agent.bot { "bot" } else { "human" };
            for (dim, value) in [
                ("referrer", referrer),
                ("browser", &agent.browser),
                ("os", &agent.os),
                ("device", &agent.device),
                ("country", country),
                ("bot", bot),
            ] {
                *deltas
                    .dims
                    .entry((key.code.clone(), day, dim, value.to_string()))
                    .or_default() += n;
            }
            if let Some(route) = &key.route {
                *deltas
                    .dims
                    .entry((key.code.clone(), day, "route", route.clone()))
                    .or_default() += n;
            }
        }
        for set in &batch.visitors {
            for hash in &set.hashes {
                deltas.visitors.insert((set.code.clone(), set.day, *hash));
            }
        }
    }
    deltas
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::clicks::{ClickCount, ClickKey, HOUR_MS, Visitors};

    fn count(code: &str, hour: i64, ua: Option<&str>, clicks: u64) -> ClickCount {
        ClickCount {
            key: ClickKey {
                code: code.into(),
                hour,
                referrer: None,
                user_agent: ua.map(str::to_string),
                country: Some("DE".into()),
                route: None,
            },
            clicks,
        }
    }

    fn batch(counts: Vec<ClickCount>, visitors: Vec<Visitors>) -> ClickBatch {
        ClickBatch {
            batch_id: "b".into(),
            created_at: 0,
            counts,
            visitors,
        }
    }

    #[test]
    fn batches_merge_into_one_row_per_key() {
        let day = 20 * DAY_MS;
        let bot = Some("Googlebot/2.1 (+http://www.google.com/bot.html)");
        let batches = [
            batch(
                vec![count("a", day + HOUR_MS, None, 2), count("a", day, bot, 1)],
                vec![Visitors {
                    code: "a".into(),
                    day,
                    hashes: vec![1, 2],
                }],
            ),
            batch(
                vec![count("a", day + HOUR_MS, None, 3)],
                vec![Visitors {
                    code: "a".into(),
                    day,
                    hashes: vec![2, 3],
                }],
            ),
        ];
        let d = merge(&batches, crate::agents::classify_agent);
        assert_eq!(d.totals["a"], (6, 1));
        assert_eq!(d.hours[&("a".to_string(), day + HOUR_MS)], 5);
        assert_eq!(d.hours[&("a".to_string(), day)], 1);
        let dim = |name: &'static str, value: &str| d.dims[&("a".into(), day, name, value.into())];
        assert_eq!(dim("referrer", "(direct)"), 6);
        assert_eq!(dim("country", "DE"), 6);
        assert_eq!(dim("bot", "bot"), 1);
        assert_eq!(dim("bot", "human"), 5);
        assert_eq!(d.visitors.len(), 3, "visitor 2 counted once");
    }

    #[test]
    fn each_distinct_agent_is_classified_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn counting(ua: Option<&str>) -> Agent {
            CALLS.fetch_add(1, Ordering::Relaxed);
            crate::agents::classify_agent(ua)
        }
        let counts = (0..100)
            .map(|i| {
                count(
                    &format!("c{i}"),
                    0,
                    Some(if i % 2 == 0 { "x" } else { "y" }),
                    1,
                )
            })
            .collect();
        merge(&[batch(counts, vec![])], counting);
        assert_eq!(CALLS.load(Ordering::Relaxed), 2);
    }
}
