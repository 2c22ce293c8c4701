//! Blocked hosts: the entries an operator may block, the set that matches a host and
//! all its subdomains, and the shared [`Blocklist`] that every redirect reads while
//! a reload swaps its contents.
//!
//! Entries and hosts are compared in the form the `url` crate serialises hosts in
//! (lowercase, IDN as punycode, IPv6 in brackets, no port, no trailing dot), so a
//! redirect checks a host with hash lookups on slices of the stored URL and never
//! allocates.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use thiserror::Error;

use super::url::{normalize_entry, parse_entry};

/// Longest host name DNS can carry.
const MAX_HOST_LEN: usize = 253;

/// A host an operator asked to block, in normalised form. [`HostEntry::parse`] is the
/// only way in, so what reaches the `blocked_hosts` table always matches something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry(String);

/// Why a host given to block or unblock was refused; the messages are for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostEntryError {
    #[error("the host is empty")]
    Empty,
    #[error("`{0}` is a URL; give its host alone, e.g. `evil.example`")]
    Url(String),
    #[error("`{0}`: a wildcard is not needed, a block covers every subdomain of its host")]
    Wildcard(String),
    #[error("`{0}` is not a host name or IP address")]
    Invalid(String),
}

impl HostEntry {
    /// Reads `input` as a host (a port and a trailing dot are dropped, Unicode becomes
    /// punycode); anything that could never match a link's host is refused.
    pub fn parse(input: &str) -> Result<HostEntry, HostEntryError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(HostEntryError::Empty);
        }
        if trimmed.contains("://") || trimmed.contains('/') {
            return Err(HostEntryError::Url(trimmed.to_string()));
        }
        if trimmed.starts_with("*.") || trimmed.starts_with('.') {
            return Err(HostEntryError::Wildcard(trimmed.to_string()));
        }
        let invalid = || HostEntryError::Invalid(trimmed.to_string());
        let (_, parsed) = parse_entry(trimmed);
        let host = parsed.ok_or_else(invalid)?;
        // The `url` crate accepts characters no real host name has (`*`, `!`, …) and
        // empty labels; a link's host would never equal such an entry.
        let is_ip = host.starts_with('[') || is_ipv4(&host);
        let plain = host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
        if host.is_empty() || host.len() > MAX_HOST_LEN || !(is_ip || plain) {
            return Err(invalid());
        }
        Ok(HostEntry(host))
    }
}

crate::text_type!(HostEntry);

/// A serialised IPv4 address: its last label is numeric (the URL parser reads every
/// such host as an address, or refuses it).
fn is_ipv4(host: &str) -> bool {
    host.rsplit('.')
        .next()
        .is_some_and(|last| !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// Blocked entries, each matching its host and every subdomain of it.
#[derive(Debug, Default)]
pub struct HostSet {
    hosts: HashSet<Box<str>, foldhash::fast::RandomState>,
}

impl HostSet {
    /// Normalises every entry the way [`super::UrlPolicy`] does; entries that are not
    /// hosts are kept as written (lowercase) and simply never match.
    pub fn new<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> HostSet {
        let hosts = entries
            .into_iter()
            .map(|entry| normalize_entry(entry.as_ref()))
            .filter(|entry| !entry.is_empty())
            .map(String::into_boxed_str)
            .collect();
        HostSet { hosts }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The entry that blocks `host` (serialised form, as [`super::LongUrl::host`]
    /// gives it), if any: `host` itself or one of its parent domains. One hash lookup
    /// per label, no allocation.
    pub fn matching(&self, host: &str) -> Option<&str> {
        if self.hosts.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if let Some(hit) = self.hosts.get(host) {
            return Some(hit);
        }
        // An address has no parent domains: `0.0.1` is not a "parent" of `10.0.0.1`.
        if host.starts_with('[') || is_ipv4(host) {
            return None;
        }
        let mut rest = host;
        while let Some((_, parent)) = rest.split_once('.') {
            if let Some(hit) = self.hosts.get(parent) {
                return Some(hit);
            }
            rest = parent;
        }
        None
    }
}

/// The blocklist in effect: the configured `links.blocked_hosts` plus the runtime
/// entries last loaded from the database. Clones share one list; a reload replaces
/// it for every clone at once.
///
/// Readers take a read lock only while hashing a few labels, and not even that while
/// nothing is blocked (one atomic load), so the redirect pays next to nothing.
#[derive(Clone)]
pub struct Blocklist {
    shared: Arc<Shared>,
}

struct Shared {
    /// `links.blocked_hosts`, kept in every replacement.
    configured: Vec<String>,
    current: RwLock<Arc<HostSet>>,
    /// True while `current` is empty: the common case skips the lock.
    empty: AtomicBool,
    /// Set by the first task that keeps this list current, so that services sharing
    /// it (the all-in-one) do not each reload it.
    kept: AtomicBool,
}

impl Blocklist {
    /// A list of the configured entries alone, until the first reload.
    pub fn new<S: AsRef<str>>(configured: impl IntoIterator<Item = S>) -> Blocklist {
        let configured: Vec<String> = configured
            .into_iter()
            .map(|entry| entry.as_ref().to_string())
            .collect();
        let set = HostSet::new(&configured);
        Blocklist {
            shared: Arc::new(Shared {
                empty: AtomicBool::new(set.is_empty()),
                current: RwLock::new(Arc::new(set)),
                configured,
                kept: AtomicBool::new(false),
            }),
        }
    }

    /// Replaces the runtime entries (the configured ones stay); returns how many
    /// entries are in effect now.
    pub fn replace_runtime<S: AsRef<str>>(&self, runtime: impl IntoIterator<Item = S>) -> usize {
        let configured = self.shared.configured.iter().map(String::as_str);
        let runtime: Vec<S> = runtime.into_iter().collect();
        let set = HostSet::new(configured.chain(runtime.iter().map(|s| s.as_ref())));
        let len = set.len();
        let set = Arc::new(set);
        match self.shared.current.write() {
            Ok(mut current) => *current = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        self.shared.empty.store(len == 0, Ordering::Release);
        len
    }

    /// Whether a link to `host` must not be followed (the redirect's check).
    pub fn blocks(&self, host: &str) -> bool {
        if self.shared.empty.load(Ordering::Acquire) {
            return false;
        }
        self.with_set(|set| set.matching(host).is_some())
    }

    /// The entry that blocks `host`, for an error message.
    pub fn matching(&self, host: &str) -> Option<String> {
        if self.shared.empty.load(Ordering::Acquire) {
            return None;
        }
        self.with_set(|set| set.matching(host).map(str::to_string))
    }

    /// Entries in effect (configured and runtime).
    pub fn len(&self) -> usize {
        self.with_set(HostSet::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for the first caller only: that one keeps the list current.
    pub fn claim_keeper(&self) -> bool {
        !self.shared.kept.swap(true, Ordering::AcqRel)
    }

    fn with_set<T>(&self, f: impl FnOnce(&HostSet) -> T) -> T {
        match self.shared.current.read() {
            Ok(set) => f(&set),
            // A writer only swaps an `Arc`; the value behind a poisoned lock is whole.
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }
}

impl Default for Blocklist {
    fn default() -> Blocklist {
        Blocklist::new(Vec::<String>::new())
    }
}

impl fmt::Debug for Blocklist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocklist")
            .field("configured", &self.shared.configured)
            .field("entries", &self.len())
            .finish()
    }
}

/// Two handles are equal when they share one list (policies compare by identity).
impl PartialEq for Blocklist {
    fn eq(&self, other: &Blocklist) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Blocklist {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(entries: &[&str]) -> HostSet {
        HostSet::new(entries.iter().copied())
    }

    #[test]
    fn matches_the_host_and_every_subdomain() {
        let s = set(&["evil.example", "bad.test"]);
        for host in [
            "evil.example",
            "www.evil.example",
            "a.b.c.evil.example",
            "evil.example.",
            "x.bad.test",
        ] {
            assert!(s.matching(host).is_some(), "{host}");
        }
        assert_eq!(s.matching("login.evil.example"), Some("evil.example"));
        for host in [
            "notevil.example",
            "evil.example.org",
            "example",
            "evilexample",
            "evil-example",
            "",
            ".",
        ] {
            assert_eq!(s.matching(host), None, "{host}");
        }
    }

    #[test]
    fn entries_are_normalised() {
        let s = set(&[
            "Evil.EXAMPLE",
            "bücher.example",
            "trailing.example.",
            "ported.example:8443",
            " spaced.example ",
            "[2001:DB8::1]:443",
            "10.0.0.1",
        ]);
        for host in [
            "evil.example",
            "shop.xn--bcher-kva.example",
            "trailing.example",
            "ported.example",
            "spaced.example",
            "[2001:db8::1]",
            "10.0.0.1",
        ] {
            assert!(s.matching(host).is_some(), "{host}");
        }
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn addresses_match_exactly() {
        let s = set(&["0.0.0.1", "[::1]", "1"]);
        assert!(s.matching("0.0.0.1").is_some());
        assert_eq!(s.matching("10.0.0.1"), None);
        assert_eq!(s.matching("10.0.0.0.1"), None);
        assert!(s.matching("[::1]").is_some());
        assert_eq!(s.matching("[::2]"), None);
    }

    #[test]
    fn a_top_level_entry_covers_its_domains() {
        let s = set(&["zip"]);
        assert_eq!(s.matching("files.download.zip"), Some("zip"));
        assert_eq!(s.matching("zip.example"), None);
    }

    #[test]
    fn empty_set_matches_nothing() {
        let s = HostSet::default();
        assert!(s.is_empty());
        assert_eq!(s.matching("evil.example"), None);
    }

    #[test]
    fn entries_to_block_are_parsed() {
        let ok = [
            ("evil.example", "evil.example"),
            ("  EVIL.Example.  ", "evil.example"),
            ("evil.example:8080", "evil.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("10.0.0.1", "10.0.0.1"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("localhost", "localhost"),
            ("under_score.example", "under_score.example"),
        ];
        for (input, entry) in ok {
            assert_eq!(
                HostEntry::parse(input).map(HostEntry::into_string),
                Ok(entry.to_string()),
                "{input}"
            );
        }
        let refused = [
            ("", HostEntryError::Empty),
            ("   ", HostEntryError::Empty),
            (
                "https://evil.example/",
                HostEntryError::Url("https://evil.example/".into()),
            ),
            (
                "evil.example/login",
                HostEntryError::Url("evil.example/login".into()),
            ),
            (
                "*.evil.example",
                HostEntryError::Wildcard("*.evil.example".into()),
            ),
            (
                ".evil.example",
                HostEntryError::Wildcard(".evil.example".into()),
            ),
        ];
        for (input, error) in refused {
            assert_eq!(HostEntry::parse(input), Err(error), "{input:?}");
        }
        for input in [
            "evil..example",
            "ev!l.example",
            "a b",
            "exa%mple",
            "[::1",
            "a@b",
        ] {
            assert!(
                matches!(HostEntry::parse(input), Err(HostEntryError::Invalid(_))),
                "{input:?}: {:?}",
                HostEntry::parse(input)
            );
        }
        let long = format!("{}.example", "a.".repeat(130));
        assert!(HostEntry::parse(&long).is_err());
    }

    #[test]
    fn blocklist_keeps_configured_entries_across_reloads() {
        let list = Blocklist::new(["static.example"]);
        let reader = list.clone();
        assert!(reader.blocks("www.static.example"));
        assert!(!reader.blocks("runtime.example"));
        assert_eq!(list.replace_runtime(["runtime.example"]), 2);
        assert!(reader.blocks("a.runtime.example"));
        assert!(reader.blocks("static.example"));
        assert_eq!(
            reader.matching("a.runtime.example").as_deref(),
            Some("runtime.example")
        );
        assert_eq!(list.replace_runtime(Vec::<String>::new()), 1);
        assert!(!reader.blocks("runtime.example"));
        assert!(reader.blocks("static.example"));
    }

    #[test]
    fn an_empty_blocklist_blocks_nothing() {
        let list = Blocklist::default();
        assert!(list.is_empty());
        assert!(!list.blocks("evil.example"));
        list.replace_runtime(["evil.example"]);
        assert!(list.blocks("evil.example"));
        list.replace_runtime(Vec::<&str>::new());
        assert!(!list.blocks("evil.example"));
        assert!(list.is_empty());
    }

    #[test]
    fn one_keeper_per_list() {
        let list = Blocklist::default();
        let clone = list.clone();
        assert!(list.claim_keeper());
        assert!(!clone.claim_keeper());
        assert!(Blocklist::default().claim_keeper());
        assert_eq!(list, clone);
        assert_ne!(list, Blocklist::default());
    }

    proptest! {
        /// The set agrees with the rule the static policy applies entry by entry:
        /// same host, or a subdomain of it.
        #[test]
        fn agrees_with_the_suffix_rule(
            entries in proptest::collection::vec("[a-c]{1,2}(\\.[a-c]{1,2}){0,2}", 0..6),
            host in "[a-c]{1,2}(\\.[a-c]{1,2}){0,4}",
        ) {
            let s = HostSet::new(&entries);
            let expected = entries.iter().any(|e| {
                host == *e || host.strip_suffix(e.as_str()).is_some_and(|rest| rest.ends_with('.'))
            });
            prop_assert_eq!(s.matching(&host).is_some(), expected);
        }
    }
}
