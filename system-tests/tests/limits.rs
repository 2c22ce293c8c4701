//! Rate limits answer 429 with `Retry-After` and change nothing: per client address
//! for anonymous callers, per API key otherwise. On PostgreSQL the harness also runs
//! Redis Cluster, so the limit state lives there (GCRA script); on SQLite it is
//! in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Harness;

const LIMITS: &[(&str, &str)] = &[
    ("SHORTENER__LINKS__ANONYMOUS_CREATE", "true"),
    ("SHORTENER__RATE_LIMIT__PER_IP_PER_MINUTE", "6"),
    ("SHORTENER__RATE_LIMIT__PER_IP_BURST", "3"),
    ("SHORTENER__RATE_LIMIT__PER_KEY_PER_MINUTE", "6"),
    ("SHORTENER__RATE_LIMIT__PER_KEY_BURST", "2"),
];

async fn limits_answer_429(h: &Harness) {
    let body = json!({"url": "https://example.com/"});
    for _ in 0..3 {
        let answer = h
            .api(Method::POST, "/api/v1/links", None, Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    let limited = h
        .api(Method::POST, "/api/v1/links", None, Some(body.clone()))
        .await;
    limited.assert_problem(429, "rate-limited");
    // Six a minute: the next slot opens ten seconds later.
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert_eq!(h.count_links().await, 3);

    // Keys have their own budget, independent of the address's.
    for _ in 0..2 {
        let answer = h
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&h.key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    h.api(
        Method::POST,
        "/api/v1/links",
        Some(&h.key),
        Some(body.clone()),
    )
    .await
    .assert_problem(429, "rate-limited");
    let other = h
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&h.other_key),
            Some(body.clone()),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_eq!(h.count_links().await, 6);

    let metrics = h.send(h.http.get(h.create_url("/metrics"))).await;
    assert!(
        metrics
            .text
            .contains("shortener_rate_limited_total{limit=\"per-address\"")
    );
    assert!(
        metrics
            .text
            .contains("shortener_rate_limited_total{limit=\"per-key\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_sqlite_in_process() {
    let h = Harness::sqlite(LIMITS).await;
    limits_answer_429(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_postgres_in_redis() {
    let h = Harness::postgres(LIMITS).await;
    limits_answer_429(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_keys_is_throttled_per_address() {
    let h = Harness::sqlite(LIMITS).await;
    let forged = format!("sk_{}", "B".repeat(43));
    for _ in 0..3 {
        h.get_as(&forged, "/api/v1/links")
            .await
            .assert_problem(401, "unauthorized");
    }
    h.get_as(&forged, "/api/v1/links")
        .await
        .assert_problem(429, "rate-limited");
    h.stop().await;
}

/// A scanner collecting 404s from lookup gets 429 once its budget is spent; real
/// links keep redirecting for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanners_get_429_from_lookup() {
    let h = Harness::sqlite(&[
        ("SHORTENER__LOOKUP__NOT_FOUND_PER_IP_PER_MINUTE", "6"),
        ("SHORTENER__LOOKUP__NOT_FOUND_BURST", "3"),
    ])
    .await;
    let link = h
        .create_link(json!({"url": "https://example.com/real"}))
        .await;
    for probe in ["nope-1", "nope-2", "abcdefghijk"] {
        h.follow(probe).await.assert_problem(404, "not-found");
    }
    let limited = h.follow("nope-4").await;
    limited.assert_problem(429, "rate-limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        h.follow(link["code"].as_str().unwrap()).await.status,
        StatusCode::FOUND
    );
    h.stop().await;
}
