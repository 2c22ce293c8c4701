//! Link previews (`/{code}+`), on SQLite and on PostgreSQL: where a link goes, when it
//! was made and whether a password guards it, without following it, counting it, or
//! showing a protected target.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{Answer, Harness};

on_both_engines!(a_preview_shows_the_link_without_following_it);

async fn preview(h: &Harness, code: &str) -> Answer {
    h.send(h.http.get(h.lookup_url(&format!("/{code}+")))).await
}

fn assert_page(answer: &Answer) {
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(
        answer.header("content-security-policy"),
        Some(common::http::PAGE_CONTENT_SECURITY_POLICY)
    );
    assert_eq!(answer.header("location"), None);
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
    assert!(!page.text.contains("<script"));

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
    let path = "/api/v1/links/peek/stats";
    let total = || async {
        h.send(h.http.get(h.stats_url(path)).bearer_auth(&h.key))
            .await
            .body["total"]
            .as_i64()
            .unwrap()
    };
    for _ in 0..150 {
        if total().await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(total().await, 1);
}
