//! Clicks on the wire: what a redirect records ([`Click`]), the batch that carries a
//! lookup instance's aggregate to stats-service ([`ClickBatch`]), how each dimension is
//! normalised, and what a user agent is filed as ([`Agent`]).
//!
//! User agents travel raw (truncated) and are classified by stats-service, off the hot
//! path; lookup's in-memory aggregate lives in lookup-service.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;

use crate::route::Choice;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// Longest user agent kept; the rest never changes a classification.
pub const MAX_UA: usize = 256;
/// Longest Referer host kept (the DNS limit).
pub const MAX_HOST: usize = 253;

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
    /// What answered, for a link with rules or variants ([`Choice::label`]).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
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

/// Partitions of the code space a flush is queued in.
pub const PARTS: u64 = 8;

/// The partition of `code`: the same in every instance running this build.
pub fn part_of(code: &str) -> i64 {
    (foldhash::fast::FixedState::default().hash_one(code) % PARTS) as i64
}

impl ClickBatch {
    pub fn clicks(&self) -> u64 {
        self.counts.iter().map(|c| c.clicks).sum()
    }

    /// This batch cut by partition of the code space: one batch per partition that
    /// has clicks, each with the id `<batch id>.<partition>`, so that a retried flush
    /// cuts the same batches under the same ids.
    pub fn parts(&self) -> Vec<(i64, ClickBatch)> {
        fn part<'a>(
            parts: &'a mut HashMap<i64, ClickBatch>,
            whole: &ClickBatch,
            code: &str,
        ) -> &'a mut ClickBatch {
            let n = part_of(code);
            parts.entry(n).or_insert_with(|| ClickBatch {
                batch_id: format!("{}.{n}", whole.batch_id),
                created_at: whole.created_at,
                counts: Vec::new(),
                visitors: Vec::new(),
            })
        }
        let mut parts = HashMap::new();
        for count in &self.counts {
            part(&mut parts, self, &count.key.code)
                .counts
                .push(count.clone());
        }
        for visitors in &self.visitors {
            part(&mut parts, self, &visitors.code)
                .visitors
                .push(visitors.clone());
        }
        let mut parts: Vec<_> = parts.into_iter().collect();
        parts.sort_unstable_by_key(|(n, _)| *n);
        parts
    }
}

/// The host of a Referer header as it was sent (the caller lowercases); `None` for
/// none or an unparsable one.
pub fn referrer_host_raw(referer: Option<&str>) -> Option<&str> {
    let referer = referer?;
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()
        && host.len() <= MAX_HOST
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
    .then_some(host)
}

/// The host of a Referer header, lowercased; `None` for none or an unparsable one.
pub fn referrer_host(referer: Option<&str>) -> Option<String> {
    referrer_host_raw(referer).map(str::to_ascii_lowercase)
}

/// Two letters from the trusted edge header, as sent (the caller uppercases).
pub fn country_raw(value: Option<&str>) -> Option<&str> {
    let value = value?.trim();
    (value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic())).then_some(value)
}

/// Two uppercase letters from the trusted edge header, else `None`.
pub fn country(value: Option<&str>) -> Option<String> {
    country_raw(value).map(str::to_ascii_uppercase)
}

/// The user agent as kept: its first [`MAX_UA`] characters, `None` when empty.
pub fn user_agent_kept(user_agent: Option<&str>) -> Option<&str> {
    let ua = user_agent?;
    // No more bytes than the limit means no more characters either: skip the walk.
    let ua = match (ua.len() > MAX_UA)
        .then(|| ua.char_indices().nth(MAX_UA))
        .flatten()
    {
        Some((end, _)) => &ua[..end],
        None => ua,
    };
    (!ua.is_empty()).then_some(ua)
}

/// A visitor's hash for one day: keyed by the deployment's secret and the day, so it
/// cannot be linked across days or reversed without the key.
pub fn visitor_hash(key: &[u8; 16], day: i64, address: Option<IpAddr>, user_agent: &str) -> i64 {
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

/// One click as the redirect hands it over.
#[derive(Debug, Clone)]
pub struct Click<'a> {
    pub code: &'a str,
    pub at_ms: i64,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub country: Option<&'a str>,
    pub visitor: i64,
    /// What answered, for a link with rules or variants.
    pub route: Option<Choice>,
}

/// How stats-service files a user agent (its classifier lives there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    pub device: String,
    pub bot: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions() {
        assert_eq!(referrer_host(Some("android-app://x")), None);
        assert_eq!(
            referrer_host(Some("http://u:p@Host.io/")),
            Some("host.io".into())
        );
        assert_eq!(country(Some("XX1")), None);
        let key = [1u8; 16];
        assert_ne!(
            visitor_hash(&key, 0, "1.2.3.4".parse().ok(), "ua"),
            visitor_hash(&key, DAY_MS, "1.2.3.4".parse().ok(), "ua"),
            "a new day, a new hash"
        );
    }
}
