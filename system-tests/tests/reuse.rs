//! `reuse: true` on create, on SQLite and on PostgreSQL: the caller's newest live link
//! to the same URL with the same options answers (200) instead of a new one (201);
//! anything different, another tenant's link, a dead link or a password makes a new
//! one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(reuse_answers_with_the_same_link_or_makes_one);

async fn create(h: &Harness, key: &str, body: Value) -> Answer {
    h.api(Method::POST, "/api/v1/links", Some(key), Some(body))
        .await
}

async fn reuse_answers_with_the_same_link_or_makes_one(h: &Harness) {
    let url = "https://example.com/reused?x=1";
    let asked = json!({"url": url, "tags": ["a"], "reuse": true});
    let first = create(h, &h.key, asked.clone()).await;
    assert_eq!(first.status, 201, "nothing to reuse yet: {}", first.text);
    let code = first.body["code"].as_str().unwrap().to_string();
    let again = create(h, &h.key, asked.clone()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["code"], code.as_str());
    assert_eq!(
        again.header("content-location"),
        Some(format!("/api/v1/links/{code}").as_str())
    );
    let links = h.count_links().await;

    // Anything different is another link.
    for other in [
        json!({"url": url, "tags": ["b"], "reuse": true}),
        json!({"url": url, "tags": ["a"], "redirect_status": 301, "reuse": true}),
        json!({"url": url, "tags": ["a"], "forward_query": false, "reuse": true}),
        json!({"url": url, "tags": ["a"], "password": "open sesame", "reuse": true}),
        json!({"url": url, "tags": ["a"]}),
    ] {
        let answer = create(h, &h.key, other.clone()).await;
        assert_eq!(answer.status, 201, "{other}: {}", answer.text);
        assert_ne!(answer.body["code"], code.as_str());
    }
    // Another tenant never gets acme's link.
    let theirs = create(h, &h.other_key, asked.clone()).await;
    assert_eq!(theirs.status, 201);
    assert_eq!(h.count_links().await, links + 6);

    // The newest match answers; a disabled or deleted link is no match.
    let newest = create(h, &h.key, json!({"url": url, "tags": ["a"]})).await;
    let newest = newest.body["code"].as_str().unwrap().to_string();
    assert_eq!(
        create(h, &h.key, asked.clone()).await.body["code"],
        newest.as_str()
    );
    let disable = h
        .patch_as(
            &h.key,
            &format!("/api/v1/links/{newest}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(disable.status, 200);
    let answer = create(h, &h.key, asked.clone()).await;
    assert_eq!(answer.status, 200);
    let survivor = answer.body["code"].as_str().unwrap().to_string();
    assert_ne!(survivor, newest);

    // An alias asks for that link: it answers when its options match.
    let aliased = json!({"url": "https://example.com/al", "alias": "same-one", "reuse": true});
    assert_eq!(create(h, &h.key, aliased.clone()).await.status, 201);
    let answer = create(h, &h.key, aliased).await;
    assert_eq!(
        (answer.status.as_u16(), answer.body["code"].clone()),
        (200, json!("same-one"))
    );
    create(
        h,
        &h.key,
        json!({"url": "https://example.com/al", "alias": "same-one", "tags": ["x"], "reuse": true}),
    )
    .await
    .assert_problem(409, "alias-taken");

    // Bulk items may ask too: 200 for the reused, 201 for the made.
    let bulk = h
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(&h.key),
            Some(json!({"items": [asked, {"url": "https://example.com/new-one", "reuse": true}]})),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text);
    assert_eq!(bulk.body["results"][0]["status"], 200);
    assert_eq!(bulk.body["results"][0]["link"]["code"], survivor.as_str());
    assert_eq!(bulk.body["results"][1]["status"], 201);
    assert_eq!(
        (bulk.body["created"].clone(), bulk.body["failed"].clone()),
        (json!(1), json!(0))
    );
}
