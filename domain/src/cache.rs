//! The shared-cache protocol between create-service and lookup-service: what a cached
//! link looks like, how it is spelled in Redis, and the invalidation events.
//!
//! The change relay (create-service) writes the new state of a link through to Redis
//! and then publishes its code on the invalidation channel; readers (every lookup
//! instance) evict the code from their local cache on each event. In the all-in-one
//! the same events travel over an in-process channel instead.

use serde::{Deserialize, Serialize};

use crate::link::{LinkRecord, LinkState, RedirectStatus};
use crate::route::Routing;

/// What lookup needs to answer a redirect, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEntry {
    #[serde(rename = "u")]
    pub url: String,
    #[serde(rename = "s")]
    pub redirect_status: RedirectStatus,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_visits: Option<i64>,
    #[serde(rename = "i")]
    pub id: i64,
    #[serde(rename = "v")]
    pub updated_at: i64,
    /// When the link was made (its preview shows it); `None` in entries cached
    /// before it was kept, whose id tells it to the millisecond unless imported.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Disabled or deleted: answers 410 whatever the time.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub gone: Option<Gone>,
    /// Rules, variants, password hash, query forwarding: a follow picks its target
    /// from the entry alone. `None` for a plain link (most of them), which then
    /// costs a cached entry one pointer.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Box<Routing>>,
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
            created_at: Some(record.created_at),
            gone,
            routing: (!record.routing.is_plain()).then(|| Box::new(record.routing.clone())),
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
        std::mem::size_of::<LinkEntry>()
            + self.url.len()
            + self.routing.as_ref().map_or(0, |r| r.weight())
    }

    /// When the link was made: as stored, else as its id tells.
    pub fn created_at(&self) -> i64 {
        self.created_at.unwrap_or_else(|| {
            crate::ids::SnowflakeId::from_u64(self.id as u64)
                .map_or(0, |id| id.timestamp_ms() as i64)
        })
    }

    /// The entry's routing, plain when it has none.
    pub fn routing(&self) -> &Routing {
        static PLAIN: std::sync::LazyLock<Routing> = std::sync::LazyLock::new(Routing::default);
        self.routing.as_deref().unwrap_or(&PLAIN)
    }
}

/// Longest key a link can have: a domain, `/`, and the longest code.
pub const MAX_KEY: usize = crate::links::domain_name::MAX_LEN + 1 + crate::links::alias::MAX_LEN;

/// The key a link is stored, cached, invalidated and counted under: its code on the
/// default domain, `domain/code` on a branded one. Neither codes nor domain names
/// contain `/`, so no two (domain, code) pairs share a key. Built in `buf`, not in a
/// fresh allocation, for the redirect path; `None` only for parts longer than any
/// checked domain or code.
pub fn link_key<'a>(
    domain: Option<&str>,
    code: &'a str,
    buf: &'a mut [u8; MAX_KEY],
) -> Option<&'a str> {
    let Some(domain) = domain else {
        return Some(code);
    };
    let len = domain.len() + 1 + code.len();
    let key = buf.get_mut(..len)?;
    key[..domain.len()].copy_from_slice(domain.as_bytes());
    key[domain.len()] = b'/';
    key[domain.len() + 1..].copy_from_slice(code.as_bytes());
    std::str::from_utf8(key).ok()
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

/// The channel of announcements that the set of branded domains changed.
pub fn domains_channel(prefix: &str) -> String {
    format!("{prefix}domains")
}

/// The channel of announcements that a key (or a member's role) changed: every
/// instance forgets the keys it resolved.
pub fn access_channel(prefix: &str) -> String {
    format!("{prefix}access")
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
    use crate::link::{LinkCode, TenantId};
    use crate::links::DomainName;

    fn record() -> LinkRecord {
        LinkRecord {
            domain: None,
            code: LinkCode::parse("promo").expect("valid"),
            id: 42,
            tenant_id: TenantId::named("acme").expect("valid"),
            url: "https://example.com/".into(),
            redirect_status: RedirectStatus::TemporaryRedirect,
            tags: vec!["a".into()],
            max_visits: Some(3),
            expires_at: Some(2_000),
            created_at: 1_000,
            updated_at: 1_500,
            disabled_at: None,
            deleted_at: None,
            routing: Routing::default(),
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
        /// No two (domain, code) pairs share a key, so no tier can answer one link
        /// for another: the default domain's `spring` and `go.acme.com`'s `spring` are
        /// two keys, and so are a code on one domain and the same code on another.
        #[test]
        fn no_two_links_share_a_key(
            a_domain in proptest::option::of("[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){1,3}"),
            b_domain in proptest::option::of("[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){1,3}"),
            a_code in "[A-Za-z0-9_-]{3,64}",
            b_code in "[A-Za-z0-9_-]{3,64}",
        ) {
            let (mut a_buf, mut b_buf) = ([0u8; MAX_KEY], [0u8; MAX_KEY]);
            let a = link_key(a_domain.as_deref(), &a_code, &mut a_buf).expect("fits");
            let b = link_key(b_domain.as_deref(), &b_code, &mut b_buf).expect("fits");
            proptest::prop_assert_eq!(a == b, a_domain == b_domain && a_code == b_code);
        }

        /// The key a link is stored under (create-service) is the key a redirect
        /// builds from the request (lookup), so every tier finds what was written.
        #[test]
        fn stored_and_followed_keys_agree(
            domain in proptest::option::of("[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,20}){1,3}"),
            code in "[A-Za-z0-9_-]{3,64}",
        ) {
            let name = domain.as_deref().map(DomainName::parse).transpose();
            // Only names a tenant could hold (labels may not start or end with `-`).
            proptest::prop_assume!(name.is_ok());
            let name = name.unwrap_or_default();
            let code = LinkCode::parse(&code).expect("a code");
            let mut buf = [0u8; MAX_KEY];
            let followed = link_key(name.as_ref().map(DomainName::as_str), code.as_str(), &mut buf)
                .expect("fits");
            proptest::prop_assert_eq!(LinkRecord::key_of(name.as_ref(), &code), followed);
        }
    }

    #[test]
    fn keys_spell_domain_slash_code() {
        let mut buf = [0u8; MAX_KEY];
        assert_eq!(link_key(None, "spring", &mut buf), Some("spring"));
        assert_eq!(
            link_key(Some("go.acme.com"), "spring", &mut buf),
            Some("go.acme.com/spring")
        );
        let long = "a".repeat(MAX_KEY);
        assert_eq!(link_key(Some(&long), "spring", &mut buf), None);
    }

    proptest::proptest! {
        /// Whatever a link holds, its entry reads back as that link: never as the
        /// "no such code" marker, never as unreadable.
        #[test]
        fn every_link_reads_back_as_itself(
            url in ".{0,200}",
            status in proptest::sample::select(RedirectStatus::ALL.to_vec()),
            expires_at in proptest::option::of(proptest::num::i64::ANY),
            max_visits in proptest::option::of(1i64..),
            id in proptest::num::i64::ANY,
            updated_at in proptest::num::i64::ANY,
            gone in proptest::option::of(proptest::sample::select(vec![Gone::Disabled, Gone::Deleted])),
        ) {
            let entry = LinkEntry { url, redirect_status: status, expires_at, max_visits, id, updated_at, created_at: None, gone, routing: None };
            let text = encode(Some(&entry)).expect("a link always encodes");
            proptest::prop_assert_ne!(text.as_str(), MISSING);
            proptest::prop_assert_eq!(decode(&text), Some(Some(entry)));
        }
    }
}
