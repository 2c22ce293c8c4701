//! Link previews (`/{code}+`), on SQLite and on PostgreSQL: where a link goes, when it
//! was made and whether a password guards it, without following it, counting it, or
//! showing a protected target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Answer, Harness};

on_both_engines!(a_preview_shows_the_link_without_following_it);

async fn preview(h: &Harness, code: &str) -> Answer {
    h.send(h.http.get(h.lookup_url(&format!("/{code}+")))).await
}

fn assert_page(answer: &Answer) {
    answer.assert_page(200, common::http::PAGE_CONTENT_SECURITY_POLICY);
}

async fn a_preview_shows_the_link_without_following_it(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/a?b=1&c=<2>", "alias": "peek"}))
        .await;
    let made: chrono::DateTime<chrono::Utc> = link["created_at"].as_str().unwrap().parse().unwrap();
    let page = preview(h, "peek").await;
    assert_page(&page);
    // The target as the link stores it, escaped for HTML.
    assert!(
        page.text
            .contains("https://example.com/a?b=1&amp;c=%3C2%3E"),
        "{}",
        page.text
    );
    assert!(
        page.text
            .contains(&made.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        "{}",
        page.text
    );
    assert!(page.text.contains("href=\"/peek\""));

    // A protected link keeps its target to itself.
    h.create_link(json!({"url": "https://example.com/secret", "alias": "peek-locked", "password": "open sesame"}))
        .await;
    let locked = preview(h, "peek-locked").await;
    assert_page(&locked);
    assert!(
        locked.text.contains("protected by a password"),
        "{}",
        locked.text
    );
    assert!(
        !locked.text.contains("example.com/secret"),
        "{}",
        locked.text
    );

    // Rules and variants are mentioned, the link's own URL shown.
    h.create_link(json!({
        "url": "https://example.com/main", "alias": "peek-ruled",
        "rules": [{"when": {"os": "ios"}, "url": "https://example.com/ios"}],
    }))
    .await;
    let ruled = preview(h, "peek-ruled").await;
    assert!(
        ruled.text.contains("1 rule(s) and 0 variant(s)"),
        "{}",
        ruled.text
    );

    // Unknown, deleted, and other methods answer as a follow would.
    preview(h, "nobody-has-this")
        .await
        .assert_problem(404, "not-found");
    h.delete_as(&h.key, "/api/v1/links/peek-ruled").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while preview(h, "peek-ruled").await.status != 410 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delete never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    h.send(h.http.post(h.lookup_url("/peek+")))
        .await
        .assert_problem(405, "method-not-allowed");

    // A preview is not a click: one follow, three previews, one click.
    assert_eq!(h.follow("peek").await.status, 302);
    preview(h, "peek").await;
    h.stats_when("peek", 1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.stats_when("peek", 1, Duration::ZERO).await;
}
