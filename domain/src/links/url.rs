//! Destination URLs: what a short link may point at, and the one stored spelling of it.
//!
//! The stored form is the `url` crate's serialisation, so everything that
//! later builds a `Location` header works from a parsed, normalised value
//! (punycode host, percent-encoded path) instead of raw user input.

use std::fmt;
use std::ops::Range;

use ::url::{Host, Url};
use serde::{Serialize, Serializer};
use thiserror::Error;

use super::hosts::Blocklist;

/// Default for [`UrlPolicy::max_len`], in bytes.
pub const DEFAULT_MAX_LEN: usize = 2048;

/// Which destinations are acceptable.
///
/// Host entries are compared case-insensitively with any trailing dot and
/// `:port` removed; Unicode entries are converted to punycode. Write IPv6
/// addresses in brackets (`[::1]`).
/// - `own_hosts`: the shortener's public hostnames. A link to one of them, or
///   to its `www.` form, is refused (a short link to a short link builds
///   redirect chains and loops). Other subdomains are allowed, because they
///   are usually different services of the same organisation.
/// - `blocked_hosts`: refused together with all their subdomains.
/// - `blocklist`: the runtime blocklist (the `blocked_hosts` table, which the
///   services keep in memory), refused by the same rule and with the same error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPolicy {
    pub own_hosts: Vec<String>,
    pub blocked_hosts: Vec<String>,
    pub blocklist: Blocklist,
    pub max_len: usize,
}

impl Default for UrlPolicy {
    fn default() -> Self {
        Self {
            own_hosts: Vec::new(),
            blocked_hosts: Vec::new(),
            blocklist: Blocklist::default(),
            max_len: DEFAULT_MAX_LEN,
        }
    }
}

/// Why a destination URL was refused; the messages are meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UrlError {
    #[error("url is empty")]
    Empty,
    #[error("url is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("url contains a control character at byte {position}")]
    ControlCharacter { position: usize },
    #[error("url starts or ends with whitespace")]
    Whitespace,
    #[error("url is not valid: {0}")]
    Invalid(String),
    #[error("url scheme {0:?} is not allowed; only http and https are")]
    SchemeNotAllowed(String),
    #[error("url has no host")]
    MissingHost,
    #[error("url contains a user name or password, which is not allowed")]
    Credentials,
    #[error("url points at this shortener ({0}); links to short links are not allowed")]
    OwnHost(String),
    #[error("links to {0} are blocked")]
    BlockedHost(String),
}

/// A validated destination URL in its stored (serialised) form.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct LongUrl(String);

impl LongUrl {
    /// Validates user input against `policy` and normalises it.
    pub fn parse(input: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.len() > policy.max_len {
            return Err(UrlError::TooLong {
                len: input.len(),
                max: policy.max_len,
            });
        }
        // The WHATWG parser silently drops tabs and newlines and trims C0 and
        // spaces at both ends, so these checks must see the raw input: a URL
        // that only looks clean after the parser has tidied it is refused.
        check_control_characters(input)?;
        if input.starts_with(char::is_whitespace) || input.ends_with(char::is_whitespace) {
            return Err(UrlError::Whitespace);
        }

        let url = parse_http(input)?;
        let host = host_of(&url)?;
        if let Some(own) = policy
            .own_hosts
            .iter()
            .find(|entry| is_own_host(host, entry))
        {
            return Err(UrlError::OwnHost(normalize_entry(own)));
        }
        if let Some(blocked) = policy
            .blocked_hosts
            .iter()
            .find(|entry| is_same_or_subdomain(host, entry))
        {
            return Err(UrlError::BlockedHost(normalize_entry(blocked)));
        }
        if let Some(blocked) = policy.blocklist.matching(host) {
            return Err(UrlError::BlockedHost(blocked));
        }

        // Percent-encoding and punycode can lengthen the input.
        let stored = String::from(url);
        if stored.len() > policy.max_len {
            return Err(UrlError::TooLong {
                len: stored.len(),
                max: policy.max_len,
            });
        }
        Ok(Self(stored))
    }

    /// Re-checks a value read back from storage before it goes into a
    /// redirect, without the policy (which may have changed since): http(s)
    /// only, parses, has a host, no control characters, no credentials. The
    /// result is the parsed serialisation, never the raw stored bytes.
    pub fn from_stored(s: &str) -> Result<Self, UrlError> {
        if s.is_empty() {
            return Err(UrlError::Empty);
        }
        check_control_characters(s)?;
        let url = parse_http(s)?;
        host_of(&url)?;
        Ok(Self(String::from(url)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host as the host rules see it: lowercase, punycode, IPv6 in brackets,
    /// without port or trailing dot.
    pub fn host(&self) -> &str {
        self.0.get(self.host_range()).unwrap_or_default()
    }

    /// Where [`LongUrl::host`] sits in [`LongUrl::as_str`], so a holder of the string
    /// can find the host again without parsing it.
    pub fn host_range(&self) -> Range<usize> {
        // The stored form is `scheme://host[:port]/…`: credentials are refused, and
        // the serialiser writes the host the way `host_of` reads it.
        let s = self.0.as_str();
        let start = s.find("://").map_or(0, |i| i + 3);
        let rest = s.get(start..).unwrap_or_default();
        let mut len = if rest.starts_with('[') {
            rest.find(']').map_or(rest.len(), |i| i + 1)
        } else {
            rest.find([':', '/', '?', '#']).unwrap_or(rest.len())
        };
        if len > 1 && rest.as_bytes().get(len - 1) == Some(&b'.') {
            len -= 1;
        }
        start..start + len
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for LongUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for LongUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for LongUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Any C0 control (TAB, CR and LF included), DEL, or C1 control.
fn check_control_characters(s: &str) -> Result<(), UrlError> {
    match s.char_indices().find(|(_, c)| c.is_control()) {
        Some((position, _)) => Err(UrlError::ControlCharacter { position }),
        None => Ok(()),
    }
}

/// Parses and enforces the scheme and the absence of credentials.
fn parse_http(s: &str) -> Result<Url, UrlError> {
    let url = Url::parse(s).map_err(|e| UrlError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::SchemeNotAllowed(url.scheme().to_owned()));
    }
    // `https://bank.example@evil.example/` reads as the bank to a person.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

/// The serialised host without a trailing dot; `example.com.` is the same
/// site as `example.com` and must not slip past the host rules.
fn host_of(url: &Url) -> Result<&str, UrlError> {
    match url.host_str() {
        Some(host) => {
            let trimmed = host.strip_suffix('.').unwrap_or(host);
            if trimmed.is_empty() {
                Err(UrlError::MissingHost)
            } else {
                Ok(trimmed)
            }
        }
        None => Err(UrlError::MissingHost),
    }
}

/// A policy entry in the form hosts are serialised in: lowercase, punycode,
/// no port, no trailing dot. Entries the `url` crate cannot read as a host
/// are kept lowercase as written, so they simply never match.
pub(crate) fn normalize_entry(entry: &str) -> String {
    let (bare, parsed) = parse_entry(entry);
    parsed.unwrap_or_else(|| bare.to_ascii_lowercase())
}

/// An entry without surrounding space, port and trailing dot, and its serialised
/// host when the `url` crate can read it as one.
pub(crate) fn parse_entry(entry: &str) -> (&str, Option<String>) {
    let entry = entry.trim();
    let without_port = match entry.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => entry,
    };
    let bare = without_port.strip_suffix('.').unwrap_or(without_port);
    (bare, Host::parse(bare).ok().map(|host| host.to_string()))
}

/// Compares against an entry, skipping the allocation of normalising it when
/// it is already plain lowercase ASCII without port or trailing dot.
fn entry_matches(host: &str, entry: &str, matches: impl Fn(&str, &str) -> bool) -> bool {
    let plain = !entry.is_empty()
        && entry
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !entry.ends_with('.');
    if plain {
        matches(host, entry)
    } else {
        let normalized = normalize_entry(entry);
        !normalized.is_empty() && matches(host, &normalized)
    }
}

fn is_own_host(host: &str, entry: &str) -> bool {
    entry_matches(host, entry, |host, own| {
        host == own || host.strip_prefix("www.") == Some(own)
    })
}

fn is_same_or_subdomain(host: &str, entry: &str) -> bool {
    entry_matches(host, entry, |host, blocked| {
        host == blocked
            || host
                .strip_suffix(blocked)
                .is_some_and(|rest| rest.ends_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> UrlPolicy {
        UrlPolicy {
            own_hosts: vec!["sho.rt".into(), "Links.Example.COM".into()],
            blocked_hosts: vec!["evil.example".into(), "bad.test.".into()],
            ..UrlPolicy::default()
        }
    }

    fn parse(s: &str) -> Result<String, UrlError> {
        LongUrl::parse(s, &policy()).map(LongUrl::into_string)
    }

    #[test]
    fn accepts_and_normalises_http_urls() {
        let cases = [
            ("https://example.com", "https://example.com/"),
            (
                "http://example.com/a/b?c=d#e",
                "http://example.com/a/b?c=d#e",
            ),
            ("HTTPS://EXAMPLE.com/Path", "https://example.com/Path"),
            ("https://example.com:443/", "https://example.com/"),
            ("https://example.com:8443/x", "https://example.com:8443/x"),
            ("https://example.com/a b", "https://example.com/a%20b"),
            ("https://example.com/ü", "https://example.com/%C3%BC"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
            ("https://BÜCHER.example/", "https://xn--bcher-kva.example/"),
            ("https://93.184.216.34/", "https://93.184.216.34/"),
            ("https://[2001:db8::1]/", "https://[2001:db8::1]/"),
            ("https://sub.sho.rt/", "https://sub.sho.rt/"),
            ("https://notsho.rt/", "https://notsho.rt/"),
            ("https://evil.example.org/", "https://evil.example.org/"),
            ("https://notevil.example/", "https://notevil.example/"),
        ];
        for (input, stored) in cases {
            assert_eq!(parse(input).as_deref(), Ok(stored), "{input}");
        }
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(parse(""), Err(UrlError::Empty));
        assert_eq!(LongUrl::from_stored(""), Err(UrlError::Empty));
    }

    #[test]
    fn rejects_too_long_input() {
        let base = "https://example.com/";
        let exact = format!("{base}{}", "a".repeat(DEFAULT_MAX_LEN - base.len()));
        assert!(parse(&exact).is_ok());
        let over = format!("{exact}a");
        assert_eq!(
            parse(&over),
            Err(UrlError::TooLong {
                len: 2049,
                max: 2048
            })
        );
    }

    #[test]
    fn rejects_input_that_grows_too_long_when_serialised() {
        // Each space becomes "%20": short raw input, long stored form.
        let input = format!("https://example.com/{}x", " ".repeat(1000));
        assert!(input.len() <= DEFAULT_MAX_LEN);
        match parse(&input) {
            Err(UrlError::TooLong { len, max: 2048 }) => assert!(len > 2048),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_control_characters_anywhere() {
        let cases = [
            ("https://example.com/\r\nSet-Cookie: x", 20),
            ("https://example.com/a\tb", 21),
            ("https://exa\nmple.com/", 11),
            ("\thttps://example.com/", 0),
            ("https://example.com/\n", 20),
            ("https://example.com/\0", 20),
            ("https://example.com/\x7f", 20),
            ("https://example.com/\u{85}", 20),
            ("https://example.com/\u{9b}", 20),
            ("https://example.com/é\u{1b}", 22),
            ("java\nscript:alert(1)", 4),
        ];
        for (input, position) in cases {
            assert_eq!(
                parse(input),
                Err(UrlError::ControlCharacter { position }),
                "{input:?}"
            );
            assert_eq!(
                LongUrl::from_stored(input),
                Err(UrlError::ControlCharacter { position }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn rejects_surrounding_whitespace() {
        for input in [
            " https://example.com/",
            "https://example.com/ ",
            "\u{a0}https://example.com/",
            "https://example.com/\u{2028}",
            "\u{3000}https://example.com/",
        ] {
            assert_eq!(parse(input), Err(UrlError::Whitespace), "{input:?}");
        }
    }

    #[test]
    fn rejects_other_schemes_by_name() {
        let cases = [
            ("javascript:alert(1)", "javascript"),
            ("JavaScript:alert(1)", "javascript"),
            ("data:text/html,<script>alert(1)</script>", "data"),
            ("file:///etc/passwd", "file"),
            ("ftp://example.com/", "ftp"),
            ("mailto:someone@example.com", "mailto"),
            ("ws://example.com/", "ws"),
            ("vbscript:msgbox", "vbscript"),
        ];
        for (input, scheme) in cases {
            assert_eq!(
                parse(input),
                Err(UrlError::SchemeNotAllowed(scheme.into())),
                "{input}"
            );
            assert_eq!(
                LongUrl::from_stored(input),
                Err(UrlError::SchemeNotAllowed(scheme.into())),
                "{input}"
            );
        }
        assert_eq!(
            UrlError::SchemeNotAllowed("javascript".into()).to_string(),
            "url scheme \"javascript\" is not allowed; only http and https are"
        );
    }

    #[test]
    fn rejects_unparsable_and_hostless() {
        for input in [
            "example.com",
            "/relative",
            "//example.com/",
            "https://",
            "http://[::1/",
            "https://exa mple.com/",
        ] {
            assert!(
                matches!(parse(input), Err(UrlError::Invalid(_))),
                "{input}: {:?}",
                parse(input)
            );
        }
        assert!(matches!(parse("https:///"), Err(UrlError::Invalid(_))));
        assert_eq!(parse("https://./"), Err(UrlError::MissingHost));
    }

    #[test]
    fn rejects_credentials() {
        for input in [
            "https://user:pass@example.com/",
            "https://user@example.com/",
            "https://:pass@example.com/",
            "https://sho.rt@evil.example/",
        ] {
            assert_eq!(parse(input), Err(UrlError::Credentials), "{input}");
            assert_eq!(
                LongUrl::from_stored(input),
                Err(UrlError::Credentials),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_own_hosts() {
        for input in [
            "https://sho.rt/abc",
            "http://sho.rt:8080/abc",
            "https://SHO.RT/abc",
            "https://sho.rt./abc",
            "https://www.sho.rt/abc",
            "https://%73ho.rt/abc",
        ] {
            assert_eq!(
                parse(input),
                Err(UrlError::OwnHost("sho.rt".into())),
                "{input}"
            );
        }
        assert_eq!(
            parse("https://links.example.com/x"),
            Err(UrlError::OwnHost("links.example.com".into()))
        );
    }

    #[test]
    fn rejects_blocked_hosts_and_subdomains() {
        for input in [
            "https://evil.example/",
            "https://EVIL.example:444/",
            "https://a.b.evil.example/",
            "https://evil.example./",
        ] {
            assert_eq!(
                parse(input),
                Err(UrlError::BlockedHost("evil.example".into())),
                "{input}"
            );
        }
        assert_eq!(
            parse("https://x.bad.test/"),
            Err(UrlError::BlockedHost("bad.test".into()))
        );
    }

    #[test]
    fn policy_entries_are_normalised() {
        let policy = UrlPolicy {
            own_hosts: vec!["Localhost:8080".into(), "[::1]:8080".into()],
            blocked_hosts: vec!["BÜCHER.example".into(), " 10.0.0.1 ".into()],
            max_len: 100,
            ..UrlPolicy::default()
        };
        let check = |s: &str| LongUrl::parse(s, &policy);
        assert_eq!(
            check("http://localhost/"),
            Err(UrlError::OwnHost("localhost".into()))
        );
        assert_eq!(
            check("http://[::1]:9/"),
            Err(UrlError::OwnHost("[::1]".into()))
        );
        assert_eq!(
            check("https://shop.bücher.example/"),
            Err(UrlError::BlockedHost("xn--bcher-kva.example".into()))
        );
        assert_eq!(
            check("http://10.0.0.1/"),
            Err(UrlError::BlockedHost("10.0.0.1".into()))
        );
        assert!(check("http://127.0.0.1/").is_ok());
    }

    #[test]
    fn runtime_blocklist_refuses_like_the_static_list() {
        let blocklist = Blocklist::default();
        let policy = UrlPolicy {
            blocklist: blocklist.clone(),
            ..UrlPolicy::default()
        };
        let check = |s: &str| LongUrl::parse(s, &policy).map(LongUrl::into_string);
        assert!(check("https://shop.phish.example/login").is_ok());
        blocklist.replace_runtime(["Phish.Example"]);
        for input in [
            "https://phish.example/",
            "https://shop.phish.example/login",
            "https://PHISH.example.:8443/",
        ] {
            assert_eq!(
                check(input),
                Err(UrlError::BlockedHost("phish.example".into())),
                "{input}"
            );
        }
        assert!(check("https://notphish.example/").is_ok());
        blocklist.replace_runtime(Vec::<String>::new());
        assert!(check("https://phish.example/").is_ok());
    }

    #[test]
    fn host_is_found_in_the_stored_form() {
        let cases = [
            ("https://Example.COM/a", "example.com"),
            ("https://example.com:8443/x", "example.com"),
            ("https://example.com./x", "example.com"),
            ("https://example.com?q=1", "example.com"),
            ("https://example.com#top", "example.com"),
            ("https://bücher.example/", "xn--bcher-kva.example"),
            ("http://[2001:DB8::1]:8080/", "[2001:db8::1]"),
            ("http://0x7f.1/", "127.0.0.1"),
        ];
        for (input, host) in cases {
            let url = LongUrl::parse(input, &UrlPolicy::default()).unwrap();
            assert_eq!(url.host(), host, "{input}");
            assert_eq!(&url.as_str()[url.host_range()], host, "{input}");
            let stored = LongUrl::from_stored(url.as_str()).unwrap();
            assert_eq!(stored.host(), host, "{input}");
        }
    }

    #[test]
    fn from_stored_ignores_policy_but_revalidates() {
        assert_eq!(
            LongUrl::from_stored("https://sho.rt/x").map(LongUrl::into_string),
            Ok("https://sho.rt/x".into())
        );
        assert_eq!(
            LongUrl::from_stored("https://bücher.example").map(LongUrl::into_string),
            Ok("https://xn--bcher-kva.example/".into())
        );
        assert!(matches!(
            LongUrl::from_stored("nonsense"),
            Err(UrlError::Invalid(_))
        ));
    }

    #[test]
    fn serializes_as_string() {
        let url = LongUrl::parse("https://example.com/a", &UrlPolicy::default()).unwrap();
        assert_eq!(
            serde_json::to_string(&url).unwrap(),
            "\"https://example.com/a\""
        );
        assert_eq!(url.to_string(), "https://example.com/a");
        assert_eq!(url.as_ref(), "https://example.com/a");
    }

    fn check_stored(stored: &str, max: usize) -> Result<(), TestCaseError> {
        prop_assert!(stored.starts_with("http://") || stored.starts_with("https://"));
        prop_assert!(stored.len() <= max);
        prop_assert!(!stored.chars().any(|c| c.is_control() || c.is_whitespace()));
        // What was stored passes the redirect-time check and is stable under it.
        let again = LongUrl::from_stored(stored);
        prop_assert_eq!(again.as_ref().map(LongUrl::as_str), Ok(stored));
        // The host found in the string is the one the host rules checked.
        let parsed = Url::parse(stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = host_of(&parsed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(again) = again {
            prop_assert_eq!(again.host(), expected);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let p = policy();
            if let Ok(url) = LongUrl::parse(&s, &p) {
                check_stored(url.as_str(), p.max_len)?;
            }
            // What the redirect re-checks before building `Location` from a stored
            // value: whatever it accepts is a clean http(s) URL too.
            if let Ok(url) = LongUrl::from_stored(&s) {
                check_stored(url.as_str(), usize::MAX)?;
            }
        }

        #[test]
        fn url_like_strings_store_clean_values(
            scheme in prop_oneof![4 => "(?i:https?)", 1 => "(?i:javascript|data|file|ftp)"],
            host in prop_oneof![
                4 => "[a-zA-Z0-9ü-]{1,12}(\\.[a-zA-Z]{2,6}){1,2}",
                1 => "[a-zA-Z0-9.\\-ü@:%\\[\\]]{0,20}",
            ],
            rest in prop_oneof![4 => "\\PC{0,60}", 1 => ".{0,60}", 1 => "[\\x00-\\x7f]{0,60}"],
        ) {
            let p = UrlPolicy { max_len: 128, ..policy() };
            let s = format!("{scheme}://{host}/{rest}");
            if let Ok(url) = LongUrl::parse(&s, &p) {
                check_stored(url.as_str(), p.max_len)?;
            }
        }
    }
}
