//! Clicks: what a redirect records, how lookup aggregates it in memory, and the batch
//! that carries the aggregate to stats-service.
//!
//! The redirect only adds one to a counter in a sharded in-memory map (no I/O, no
//! parsing beyond slicing the Referer host). Every flush interval the map is swapped out
//! and becomes one [`ClickBatch`] with a unique id. User agents travel raw (truncated)
//! and are classified by stats-service, off the hot path.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Longest user agent kept; the rest never changes a classification.
const MAX_UA: usize = 256;
const SHARDS: usize = 16;

/// The dimensions of one click, as lookup sees them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClickKey {
    #[serde(rename = "c")]
    pub code: String,
    /// Start of the hour (Unix ms).
    #[serde(rename = "h")]
    pub hour: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickCount {
    #[serde(flatten)]
    pub key: ClickKey,
    #[serde(rename = "n")]
    pub clicks: u64,
}

/// Distinct visitor hashes of one link on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitors {
    #[serde(rename = "c")]
    pub code: String,
    #[serde(rename = "d")]
    pub day: i64,
    #[serde(rename = "v")]
    pub hashes: Vec<i64>,
}

/// One flush of one lookup instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickBatch {
    pub batch_id: String,
    pub created_at: i64,
    pub counts: Vec<ClickCount>,
    pub visitors: Vec<Visitors>,
}

impl ClickBatch {
    pub fn clicks(&self) -> u64 {
        self.counts.iter().map(|c| c.clicks).sum()
    }
}

/// The host of a Referer header, lowercased; `None` for none or an unparsable one.
pub fn referrer_host(referer: Option<&str>) -> Option<String> {
    let referer = referer?;
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    .then(|| host.to_ascii_lowercase())
}

/// Two uppercase letters from the trusted edge header, else `None`.
pub fn country(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    (value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| value.to_ascii_uppercase())
}

/// A visitor's hash for one day: keyed by the deployment's secret and the day, so it
/// cannot be linked across days or reversed without the key.
pub fn visitor_hash(key: &[u8; 16], day: i64, address: &str, user_agent: &str) -> i64 {
    let mut k0 = [0u8; 8];
    let mut k1 = [0u8; 8];
    k0.copy_from_slice(&key[..8]);
    k1.copy_from_slice(&key[8..]);
    let mut hasher = SipHasher13::new_with_keys(u64::from_le_bytes(k0), u64::from_le_bytes(k1));
    day.hash(&mut hasher);
    address.hash(&mut hasher);
    user_agent.hash(&mut hasher);
    hasher.finish() as i64
}

#[derive(Default)]
struct Shard {
    counts: HashMap<ClickKey, u64>,
    visitors: HashMap<(String, i64), HashSet<i64>>,
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

/// One click as the redirect hands it over.
#[derive(Debug, Clone)]
pub struct Click<'a> {
    pub code: &'a str,
    pub at_ms: i64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub country: Option<&'a str>,
    pub visitor: i64,
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
        let key = ClickKey {
            code: click.code.to_string(),
            hour: click.at_ms - click.at_ms.rem_euclid(HOUR_MS),
            referrer: referrer_host(click.referer),
            user_agent: click
                .user_agent
                .map(|ua| ua.chars().take(MAX_UA).collect::<String>())
                .filter(|ua| !ua.is_empty()),
            country: country(click.country),
        };
        let day = click.at_ms - click.at_ms.rem_euclid(DAY_MS);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        click.code.hash(&mut hasher);
        let shard = (hasher.finish() as usize) % SHARDS;
        let Some(shard) = self.shards.get(shard) else {
            return false;
        };
        let Ok(mut shard) = shard.lock() else {
            return false;
        };
        if let Some(n) = shard.counts.get_mut(&key) {
            *n += 1;
        } else {
            if self.keys.load(Ordering::Relaxed) >= self.max_keys {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            self.keys.fetch_add(1, Ordering::Relaxed);
            shard.counts.insert(key, 1);
        }
        shard
            .visitors
            .entry((click.code.to_string(), day))
            .or_default()
            .insert(click.visitor);
        true
    }

    /// Takes everything buffered so far as one batch (`None` when empty).
    pub fn drain(&self, batch_id: String, now_ms: i64) -> Option<ClickBatch> {
        let mut counts = Vec::new();
        let mut visitors = Vec::new();
        for shard in &self.shards {
            let taken = match shard.lock() {
                Ok(mut shard) => std::mem::take(&mut *shard),
                Err(_) => continue,
            };
            counts.extend(
                taken
                    .counts
                    .into_iter()
                    .map(|(key, clicks)| ClickCount { key, clicks }),
            );
            visitors.extend(
                taken
                    .visitors
                    .into_iter()
                    .map(|((code, day), set)| Visitors {
                        code,
                        day,
                        hashes: set.into_iter().collect(),
                    }),
            );
        }
        self.keys.store(0, Ordering::Relaxed);
        if counts.is_empty() {
            return None;
        }
        Some(ClickBatch {
            batch_id,
            created_at: now_ms,
            counts,
            visitors,
        })
    }
}

/// How stats-service files a user agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    pub device: String,
    pub bot: bool,
}

/// Classifies a user agent (woothee's rules: browser, OS, device category, crawler).
pub fn classify_agent(user_agent: Option<&str>) -> Agent {
    let unknown = || "Other".to_string();
    let Some(ua) = user_agent else {
        return Agent {
            browser: unknown(),
            os: unknown(),
            device: unknown(),
            bot: false,
        };
    };
    match woothee::parser::Parser::new().parse(ua) {
        Some(result) => {
            let bot = result.category == "crawler";
            let device = match result.category {
                "pc" => "Desktop",
                "smartphone" | "mobilephone" => "Mobile",
                "crawler" => "Bot",
                "appliance" => "Appliance",
                _ => "Other",
            };
            let name = |s: &str| {
                if s.is_empty() || s == "UNKNOWN" {
                    unknown()
                } else {
                    s.to_string()
                }
            };
            Agent {
                browser: name(result.name),
                os: name(result.os),
                device: device.to_string(),
                bot,
            }
        }
        None => Agent {
            browser: unknown(),
            os: unknown(),
            device: unknown(),
            bot: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn click<'a>(code: &'a str, at: i64, ua: Option<&'static str>) -> Click<'a> {
        Click {
            code,
            at_ms: at,
            referer: Some("https://News.Example.com:443/a?b"),
            user_agent: ua,
            country: Some("de"),
            visitor: 7,
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

    #[test]
    fn dimensions() {
        assert_eq!(referrer_host(Some("android-app://x")), None);
        assert_eq!(
            referrer_host(Some("http://u:p@Host.io/")),
            Some("host.io".into())
        );
        assert_eq!(country(Some("XX1")), None);
        let bot = classify_agent(Some(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ));
        assert!(bot.bot);
        let firefox = classify_agent(Some(
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ));
        assert_eq!(firefox.browser, "Firefox");
        assert_eq!(firefox.os, "Linux");
        assert_eq!(firefox.device, "Desktop");
        assert!(!firefox.bot);
        let key = [1u8; 16];
        assert_ne!(
            visitor_hash(&key, 0, "1.2.3.4", "ua"),
            visitor_hash(&key, DAY_MS, "1.2.3.4", "ua"),
            "a new day, a new hash"
        );
    }
}
