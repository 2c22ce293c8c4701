//! Lookup's in-memory click aggregate between two flushes: the redirect adds one to
//! a counter in a sharded map (no I/O, no parsing beyond slicing the Referer host);
//! every flush interval the map is swapped out and becomes one [`ClickBatch`] with a
//! unique id.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::clicks::{
    Click, ClickBatch, ClickCount, ClickKey, DAY_MS, HOUR_MS, MAX_HOST, Visitors, country_raw,
    referrer_host_raw, user_agent_kept,
};
use common::domain::route::Choice;

const SHARDS: usize = 16;

/// The dimensions of buffered clicks of one code, as stored.
#[derive(Debug)]
struct Dims {
    hour: i64,
    referrer: Option<String>,
    user_agent: Option<String>,
    country: Option<String>,
    route: Option<Choice>,
}

/// The dimensions of one click, borrowed from the request: a click that joins an
/// existing aggregate (nearly all of them) allocates nothing.
struct DimsRef<'a> {
    hour: i64,
    referrer: Option<&'a str>,
    user_agent: Option<&'a str>,
    country: Option<&'a str>,
    route: Option<Choice>,
}

impl Hash for DimsRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hour.hash(state);
        // Hashed as stored (referrer lowercase, country uppercase) without
        // allocating: a host fits a stack buffer.
        let mut host = [0u8; MAX_HOST];
        match self
            .referrer
            .and_then(|r| host.get_mut(..r.len()).map(|b| (r, b)))
        {
            Some((r, lower)) => {
                lower.copy_from_slice(r.as_bytes());
                lower.make_ascii_lowercase();
                state.write_u8(1);
                state.write(lower);
            }
            None => state.write_u8(0),
        }
        self.user_agent.hash(state);
        match self.country {
            Some(c) => {
                state.write_u8(1);
                for b in c.bytes() {
                    state.write_u8(b.to_ascii_uppercase());
                }
            }
            None => state.write_u8(0),
        }
        self.route.hash(state);
    }
}

impl Dims {
    fn matches(&self, click: &DimsRef<'_>) -> bool {
        fn same(stored: &Option<String>, seen: Option<&str>, fold: bool) -> bool {
            match (stored, seen) {
                (None, None) => true,
                (Some(a), Some(b)) if fold => a.eq_ignore_ascii_case(b),
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        self.hour == click.hour
            && same(&self.referrer, click.referrer, true)
            && same(&self.user_agent, click.user_agent, false)
            && same(&self.country, click.country, true)
            && self.route == click.route
    }

    fn own(click: &DimsRef<'_>) -> Dims {
        Dims {
            hour: click.hour,
            referrer: click.referrer.map(str::to_ascii_lowercase),
            user_agent: click.user_agent.map(str::to_string),
            country: click.country.map(str::to_ascii_uppercase),
            route: click.route,
        }
    }
}

/// A code, inline when short (every generated code and most aliases): a click
/// compares it without a load from elsewhere in memory.
#[derive(Debug)]
enum CodeKey {
    Inline(u8, [u8; INLINE_CODE]),
    Heap(Box<str>),
}

const INLINE_CODE: usize = 22;

impl CodeKey {
    fn new(code: &str) -> CodeKey {
        let mut bytes = [0u8; INLINE_CODE];
        match bytes.get_mut(..code.len()) {
            Some(inline) => {
                inline.copy_from_slice(code.as_bytes());
                CodeKey::Inline(code.len() as u8, bytes)
            }
            None => CodeKey::Heap(code.into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            CodeKey::Inline(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or_default(),
            CodeKey::Heap(code) => code.as_bytes(),
        }
    }

    fn is(&self, code: &str) -> bool {
        self.bytes() == code.as_bytes()
    }

    fn owned(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// One counter of the aggregate: a code with one set of dimensions.
#[derive(Debug)]
struct Slot {
    hash: u64,
    code: CodeKey,
    dims: Dims,
    clicks: u64,
}

/// One distinct visitor of a code on a day.
#[derive(Debug)]
struct VisitorSlot {
    hash: u64,
    code: CodeKey,
    day: i64,
    visitor: i64,
}

/// A lock's share of the aggregate. Flat tables, the entries stored in them: a
/// click that joins an existing counter touches one table group and one entry per
/// table, which matters once the aggregate no longer fits in the CPU caches.
#[derive(Default)]
struct Shard {
    counters: hashbrown::HashTable<Slot>,
    visitors: hashbrown::HashTable<VisitorSlot>,
    /// Seeded per process: the keys come from requests, so their hashes must not be
    /// predictable (colliding on purpose would only slow a shard down).
    hasher: foldhash::fast::RandomState,
}

/// The in-memory aggregate between two flushes, bounded by distinct keys.
pub struct ClickBuffer {
    shards: Vec<Mutex<Shard>>,
    keys: AtomicU64,
    max_keys: u64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for ClickBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickBuffer")
            .field("keys", &self.keys.load(Ordering::Relaxed))
            .finish()
    }
}

impl ClickBuffer {
    pub fn new(max_keys: u64) -> ClickBuffer {
        ClickBuffer {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            keys: AtomicU64::new(0),
            max_keys,
            dropped: AtomicU64::new(0),
        }
    }

    /// Clicks that could not be buffered because the bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Adds one click; `false` when it had to be dropped (bound reached).
    pub fn record(&self, click: &Click<'_>) -> bool {
        let dims = DimsRef {
            hour: click.at_ms - click.at_ms.rem_euclid(HOUR_MS),
            referrer: referrer_host_raw(click.referer),
            user_agent: user_agent_kept(click.user_agent),
            country: country_raw(click.country),
            route: click.route,
        };
        let day = click.at_ms - click.at_ms.rem_euclid(DAY_MS);
        // Only spreads codes over the locks: a fixed seed is enough.
        let shard = (foldhash::fast::FixedState::default().hash_one(click.code) as usize) % SHARDS;
        let Some(shard) = self.shards.get(shard) else {
            return false;
        };
        let Ok(mut shard) = shard.lock() else {
            return false;
        };
        let shard = &mut *shard;
        let hash = shard.hasher.hash_one((click.code, &dims));
        let known = shard.counters.find_mut(hash, |slot| {
            slot.hash == hash && slot.code.is(click.code) && slot.dims.matches(&dims)
        });
        if let Some(slot) = known {
            slot.clicks += 1;
        } else {
            if self.keys.load(Ordering::Relaxed) >= self.max_keys {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            self.keys.fetch_add(1, Ordering::Relaxed);
            let slot = Slot {
                hash,
                code: CodeKey::new(click.code),
                dims: Dims::own(&dims),
                clicks: 1,
            };
            shard.counters.insert_unique(hash, slot, |slot| slot.hash);
        }
        let hash = shard.hasher.hash_one((click.code, day, click.visitor));
        let seen = shard.visitors.find(hash, |v| {
            v.hash == hash && v.day == day && v.visitor == click.visitor && v.code.is(click.code)
        });
        if seen.is_none() {
            let visitor = VisitorSlot {
                hash,
                code: CodeKey::new(click.code),
                day,
                visitor: click.visitor,
            };
            shard.visitors.insert_unique(hash, visitor, |v| v.hash);
        }
        true
    }

    /// Takes everything buffered so far as one batch (`None` when empty).
    pub fn drain(&self, batch_id: String, now_ms: i64) -> Option<ClickBatch> {
        let mut counts = Vec::new();
        let mut visitors: HashMap<(String, i64), Vec<i64>> = HashMap::new();
        for shard in &self.shards {
            let (counters, seen) = match shard.lock() {
                Ok(mut shard) => (
                    std::mem::take(&mut shard.counters),
                    std::mem::take(&mut shard.visitors),
                ),
                Err(_) => continue,
            };
            counts.extend(counters.into_iter().map(|slot| ClickCount {
                key: ClickKey {
                    code: slot.code.owned(),
                    hour: slot.dims.hour,
                    referrer: slot.dims.referrer,
                    user_agent: slot.dims.user_agent,
                    country: slot.dims.country,
                    route: slot.dims.route.map(Choice::label),
                },
                clicks: slot.clicks,
            }));
            for v in seen {
                visitors
                    .entry((v.code.owned(), v.day))
                    .or_default()
                    .push(v.visitor);
            }
        }
        self.keys.store(0, Ordering::Relaxed);
        if counts.is_empty() {
            return None;
        }
        Some(ClickBatch {
            batch_id,
            created_at: now_ms,
            counts,
            visitors: visitors
                .into_iter()
                .map(|((code, day), hashes)| Visitors { code, day, hashes })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::clicks::{MAX_UA, PARTS, part_of};

    fn click<'a>(code: &'a str, at: i64, ua: Option<&'static str>) -> Click<'a> {
        Click {
            code,
            at_ms: at,
            referer: Some("https://News.Example.com:443/a?b"),
            user_agent: ua,
            country: Some("de"),
            visitor: 7,
            route: None,
        }
    }

    #[test]
    fn aggregates_and_drains_exactly() {
        let buffer = ClickBuffer::new(1000);
        for _ in 0..5 {
            assert!(buffer.record(&click("abc", HOUR_MS + 5, Some("x"))));
        }
        assert!(buffer.record(&click("abc", 2 * HOUR_MS, Some("x"))));
        assert!(buffer.record(&click("zzz", HOUR_MS, None)));
        let batch = buffer.drain("b1".into(), 1).expect("batch");
        assert_eq!(batch.clicks(), 7);
        assert_eq!(batch.counts.len(), 3);
        let first = batch
            .counts
            .iter()
            .find(|c| c.key.code == "abc" && c.key.hour == HOUR_MS)
            .expect("bucket");
        assert_eq!(first.clicks, 5);
        assert_eq!(first.key.referrer.as_deref(), Some("news.example.com"));
        assert_eq!(first.key.country.as_deref(), Some("DE"));
        assert!(buffer.drain("b2".into(), 2).is_none(), "drained");
        let json = serde_json::to_string(&batch).expect("json");
        assert_eq!(
            serde_json::from_str::<ClickBatch>(&json).expect("back"),
            batch
        );
    }

    #[test]
    fn spellings_of_one_referrer_and_country_share_a_counter() {
        let buffer = ClickBuffer::new(1000);
        let long_ua = "é".repeat(MAX_UA + 10);
        let spellings = [
            ("https://News.Example.com/x", "de", Some("x")),
            ("http://news.example.COM:8080/", " DE ", Some("x")),
            ("https://news.example.com", "dE", Some("x")),
            ("https://news.example.com", "de", Some(long_ua.as_str())),
            (
                "https://news.example.com",
                "de",
                Some(&long_ua[..2 * MAX_UA]),
            ),
        ];
        for (referer, country, ua) in spellings {
            assert!(buffer.record(&Click {
                code: "abc",
                at_ms: 0,
                referer: Some(referer),
                user_agent: ua,
                country: Some(country),
                visitor: 1,
                route: None,
            }));
        }
        let batch = buffer.drain("b".into(), 0).expect("batch");
        let mut counts: Vec<_> = batch.counts.iter().map(|c| c.clicks).collect();
        counts.sort_unstable();
        // Three spellings of one referrer and country; two user agents that are the
        // same once truncated.
        assert_eq!(counts, vec![2, 3], "{batch:?}");
        assert!(batch.counts.iter().all(|c| {
            c.key.referrer.as_deref() == Some("news.example.com")
                && c.key.country.as_deref() == Some("DE")
        }));
        assert_eq!(batch.visitors.len(), 1);
        assert_eq!(batch.visitors[0].hashes, vec![1]);
    }

    #[test]
    fn parts_cover_the_batch_once() {
        let buffer = ClickBuffer::new(1000);
        let codes: Vec<String> = (0..200).map(|i| format!("code{i}")).collect();
        for (i, code) in codes.iter().enumerate() {
            for _ in 0..=(i % 3) {
                assert!(buffer.record(&click(code, 0, Some("ua"))));
            }
        }
        let batch = buffer.drain("b".into(), 5).expect("batch");
        let parts = batch.parts();
        assert!(parts.len() > 1 && parts.len() <= PARTS as usize);
        let clicks: u64 = parts.iter().map(|(_, p)| p.clicks()).sum();
        assert_eq!(clicks, batch.clicks());
        let mut seen = std::collections::HashSet::new();
        for (n, part) in &parts {
            assert_eq!(part.batch_id, format!("b.{n}"));
            assert_eq!(part.created_at, 5);
            for count in &part.counts {
                assert_eq!(part_of(&count.key.code), *n);
                assert!(seen.insert(count.key.code.clone()), "one part per code");
            }
            assert!(part.visitors.iter().all(|v| part_of(&v.code) == *n));
        }
        assert_eq!(seen.len(), codes.len());
        assert_eq!(batch.parts(), parts, "a retry cuts the same parts");
    }

    #[test]
    fn bound_drops_new_keys_only() {
        let buffer = ClickBuffer::new(1);
        assert!(buffer.record(&click("a", 0, None)));
        assert!(
            buffer.record(&click("a", 0, None)),
            "existing key still counts"
        );
        assert!(!buffer.record(&click("b", 0, None)));
        assert_eq!(buffer.dropped(), 1);
    }
}
