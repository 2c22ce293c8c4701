//! Query forwarding on the redirect, on SQLite and on PostgreSQL: the visitor's query
//! string reaches the target, whose own parameters and fragment are kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::Harness;

on_both_engines!(the_query_reaches_the_target);

async fn the_query_reaches_the_target(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/p?ref=partner#top", "alias": "fwd"}))
        .await;
    assert_eq!(link["code"], "fwd");
    let follow = |path: &'static str| async move { h.send(h.http.get(h.lookup_url(path))).await };
    let plain = follow("/fwd").await;
    assert_eq!(plain.status, 302);
    assert_eq!(
        plain.header("location"),
        Some("https://example.com/p?ref=partner#top")
    );
    let tagged = follow("/fwd?utm_source=mail&ref=me&utm_medium=email").await;
    assert_eq!(tagged.status, 302);
    assert_eq!(
        tagged.header("location"),
        Some("https://example.com/p?ref=partner&utm_source=mail&utm_medium=email#top"),
        "the target's `ref` wins; the rest is added before the fragment"
    );
    // Repeated names: every pair the target does not name travels, in order.
    let repeated = follow("/fwd?tag=a&ref=x&tag=b&ref=y").await;
    assert_eq!(
        repeated.header("location"),
        Some("https://example.com/p?ref=partner&tag=a&tag=b#top")
    );
    // The cached entry is not changed by a forwarded follow.
    let again = follow("/fwd").await;
    assert_eq!(
        again.header("location"),
        Some("https://example.com/p?ref=partner#top")
    );
}
