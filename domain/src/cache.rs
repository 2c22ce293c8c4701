//! The shared-cache protocol between create-service and lookup-service: what a cached
//! link looks like, how it is spelled in Redis, and the invalidation events.
//!
//! The change relay (create-service) writes the new state of a link through to Redis
//! and then publishes its code on the invalidation channel; readers (every lookup
//! instance) evict the code from their local cache on each event. In the all-in-one
//! the same events travel over an in-process channel instead.

use serde::{Deserialize, Serialize};

use crate::link::{LinkRecord, LinkState};

/// What lookup needs to answer a redirect, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEntry {
    #[serde(rename = "u")]
    pub url: String,
    #[serde(rename = "s")]
    pub redirect_status: u16,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<i64>,
    #[serde(rename = "i")]
    pub id: i64,
    #[serde(rename = "v")]
    pub updated_at: i64,
    /// Disabled or deleted: answers 410 whatever the time.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<Gone>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gone {
    Disabled,
    Deleted,
}

impl LinkEntry {
    pub fn from_record(record: &LinkRecord) -> LinkEntry {
        let gone = if record.deleted_at.is_some() {
            Some(Gone::Deleted)
        } else if record.disabled_at.is_some() {
            Some(Gone::Disabled)
        } else {
            None
        };
        LinkEntry {
            url: record.url.clone(),
            redirect_status: record.redirect_status,
            expires_at: record.expires_at,
            max_visits: record.max_visits,
            id: record.id,
            updated_at: record.updated_at,
            gone,
        }
    }

    /// Same rule as [`LinkRecord::state_at`]: expiry is evaluated per request, so an
    /// expired link answers 410 on time even from a cache, with no event needed.
    pub fn state_at(&self, now_ms: i64) -> LinkState {
        match self.gone {
            Some(Gone::Deleted) => LinkState::Deleted,
            Some(Gone::Disabled) => LinkState::Disabled,
            None if self.expires_at.is_some_and(|at| at <= now_ms) => LinkState::Expired,
            None => LinkState::Active,
        }
    }

    /// Approximate heap footprint, for the byte-bounded local cache.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<LinkEntry>() + self.url.len()
    }
}

/// Marker stored in Redis for "no such code" (negative caching).
const MISSING: &str = "-";

/// The Redis key of a code, under the deployment's prefix.
pub fn l2_key(prefix: &str, code: &str) -> String {
    format!("{prefix}l:{code}")
}

/// The channel every lookup instance listens on.
pub fn invalidation_channel(prefix: &str) -> String {
    format!("{prefix}invalidate")
}

/// The channel of blocklist announcements, which lookup and create instances hear.
pub fn blocklist_channel(prefix: &str) -> String {
    format!("{prefix}blocklist")
}

/// Serialises a cache value for Redis: `None` is the negative marker. A link that
/// cannot be encoded is an error, never the marker: written as "no such code" a real
/// link would answer 404.
pub fn encode(entry: Option<&LinkEntry>) -> Result<String, serde_json::Error> {
    match entry {
        Some(entry) => serde_json::to_string(entry),
        None => Ok(MISSING.to_string()),
    }
}

/// Reads a Redis value back: `Some(None)` is a cached "no such code"; `None` means the
/// value is unreadable (treated as a miss, never as an error).
pub fn decode(value: &str) -> Option<Option<LinkEntry>> {
    if value == MISSING {
        return Some(None);
    }
    serde_json::from_str(value).ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LinkRecord {
        LinkRecord {
            code: "promo".into(),
            id: 42,
            tenant_id: "acme".into(),
            url: "https://example.com/".into(),
            redirect_status: 307,
            tags: vec!["a".into()],
            max_visits: Some(3),
            expires_at: Some(2_000),
            created_at: 1_000,
            updated_at: 1_500,
            disabled_at: None,
            deleted_at: None,
        }
    }

    #[test]
    fn round_trips_and_keeps_state_rules() {
        let entry = LinkEntry::from_record(&record());
        let text = encode(Some(&entry)).expect("encodes");
        assert_eq!(decode(&text), Some(Some(entry.clone())));
        assert_eq!(entry.state_at(1_999), LinkState::Active);
        assert_eq!(entry.state_at(2_000), LinkState::Expired);
        let mut deleted = record();
        deleted.deleted_at = Some(1_600);
        assert_eq!(
            LinkEntry::from_record(&deleted).state_at(0),
            LinkState::Deleted
        );
        assert_eq!(decode(&encode(None).expect("encodes")), Some(None));
        assert_eq!(decode("{garbage"), None);
    }

    proptest::proptest! {
        /// Whatever a link holds, its entry reads back as that link: never as the
        /// "no such code" marker, never as unreadable.
        #[test]
        fn every_link_reads_back_as_itself(
            url in ".{0,200}",
            status in proptest::sample::select(vec![301u16, 302, 307, 308]),
            expires_at in proptest::option::of(proptest::num::i64::ANY),
            max_visits in proptest::option::of(1i64..),
            id in proptest::num::i64::ANY,
            updated_at in proptest::num::i64::ANY,
            gone in proptest::option::of(proptest::sample::select(vec![Gone::Disabled, Gone::Deleted])),
        ) {
            let entry = LinkEntry { url, redirect_status: status, expires_at, max_visits, id, updated_at, gone };
            let text = encode(Some(&entry)).expect("a link always encodes");
            proptest::prop_assert_ne!(text.as_str(), MISSING);
            proptest::prop_assert_eq!(decode(&text), Some(Some(entry)));
        }
    }
}
