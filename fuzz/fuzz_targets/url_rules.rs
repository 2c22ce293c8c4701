//! Fuzzes the destination-URL rules (`LongUrl::parse` and `LongUrl::from_stored`):
//! whatever they accept must be safe to put in a `Location` header and must be
//! its own stored form.
#![no_main]

use domain::links::{Blocklist, LongUrl, UrlPolicy};
use libfuzzer_sys::fuzz_target;
use url::Url;

const OWN: &str = "sho.rt";
const BLOCKED: &str = "evil.example";
/// Blocked at run time (the `blocked_hosts` table), not in the configuration.
const RUNTIME_BLOCKED: &str = "phish.example";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let blocklist = Blocklist::new(Vec::<String>::new());
    blocklist.replace_runtime([RUNTIME_BLOCKED, "10.0.0.1"]);
    // The default limit, and a small one that percent-encoding and punycode can
    // push an accepted-looking input past.
    for max_len in [domain::links::url::DEFAULT_MAX_LEN, 64] {
        let policy = UrlPolicy {
            own_hosts: vec![OWN.into(), "Links.Example.COM:8443".into()],
            blocked_hosts: vec![BLOCKED.into(), "[::1]".into()],
            blocklist: blocklist.clone(),
            max_len,
        };
        if let Ok(url) = LongUrl::parse(input, &policy) {
            check_stored(url.as_str(), max_len);
            check_host_allowed(url.as_str());
            check_host_slice(&url);
            // The redirect-time check, on the host slice, agrees with the create.
            assert!(!blocklist.blocks(url.host()), "{:?}", url.as_str());
            // The stored form is a fixed point: storing it again changes nothing.
            let again = LongUrl::parse(url.as_str(), &policy);
            assert_eq!(
                again.as_ref().map(LongUrl::as_str),
                Ok(url.as_str()),
                "{input:?}"
            );
        }
    }
    if let Ok(url) = LongUrl::from_stored(input) {
        check_stored(url.as_str(), usize::MAX);
        check_host_slice(&url);
        if blocklist.blocks(url.host()) {
            // What the redirect refuses to follow, a create refuses to store.
            let policy = UrlPolicy {
                blocklist: blocklist.clone(),
                ..UrlPolicy::default()
            };
            assert!(LongUrl::parse(url.as_str(), &policy).is_err(), "{input:?}");
        }
        let again = LongUrl::from_stored(url.as_str());
        assert_eq!(
            again.as_ref().map(LongUrl::as_str),
            Ok(url.as_str()),
            "{input:?}"
        );
    }
});

/// What a redirect needs of a stored URL: http(s), nothing that can split or bend
/// a header line, within the limit, and accepted by the redirect-time check as is.
fn check_stored(stored: &str, max_len: usize) {
    assert!(
        stored.starts_with("http://") || stored.starts_with("https://"),
        "{stored:?}"
    );
    assert!(
        !stored.chars().any(|c| c.is_control() || c.is_whitespace()),
        "{stored:?}"
    );
    assert!(
        stored.len() <= max_len,
        "{} > {max_len}: {stored:?}",
        stored.len()
    );
    let reread = LongUrl::from_stored(stored);
    assert_eq!(reread.as_ref().map(LongUrl::as_str), Ok(stored));
    let parsed = Url::parse(stored).ok();
    let parsed = parsed.as_ref();
    assert!(parsed.is_some_and(|u| u.username().is_empty() && u.password().is_none()));
}

/// `LongUrl::host` finds, without parsing, the host the `url` crate reads from the
/// stored form (one trailing dot dropped): the host rules at redirect time look
/// at that slice, so a mismatch would let a blocked host through.
fn check_host_slice(url: &LongUrl) {
    let parsed = Url::parse(url.as_str()).ok();
    let expected = parsed
        .as_ref()
        .and_then(Url::host_str)
        .map(|h| h.strip_suffix('.').unwrap_or(h));
    assert_eq!(Some(url.host()), expected, "{:?}", url.as_str());
}

/// The host, read back from the stored form with one trailing dot dropped (the
/// same name to DNS), is neither the shortener itself nor under a blocked domain.
fn check_host_allowed(stored: &str) {
    let host = Url::parse(stored).ok().and_then(|u| {
        u.host_str()
            .map(|h| h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase())
    });
    let Some(host) = host else {
        panic!("accepted URL without a host: {stored:?}");
    };
    assert!(!host.is_empty(), "{stored:?}");
    assert!(host != OWN && host != format!("www.{OWN}"), "{stored:?}");
    assert!(host != "links.example.com", "{stored:?}");
    assert!(
        host != BLOCKED && !host.ends_with(&format!(".{BLOCKED}")),
        "{stored:?}"
    );
    assert!(host != "[::1]", "{stored:?}");
    assert!(
        host != RUNTIME_BLOCKED && !host.ends_with(&format!(".{RUNTIME_BLOCKED}")),
        "{stored:?}"
    );
    assert!(host != "10.0.0.1", "{stored:?}");
}
