//! Password-protected links, on SQLite and on PostgreSQL: the form, the wrong and the
//! right password, the grant that opens the link again, attempts limited per link
//! and address, clicks counted only for redirects, and a password never shown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::{Answer, Harness};

on_both_engines!(
    the_right_password_opens_the_link_and_a_grant_keeps_it_open,
    attempts_are_limited_per_link_and_address,
    passwords_are_checked_and_never_shown,
);

const PASSWORD: &str = "correct horse battery";

async fn post_password(h: &Harness, code: &str, password: &str) -> Answer {
    h.send(
        h.http
            .post(h.lookup_url(&format!("/{code}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("password={}", password.replace(' ', "+"))),
    )
    .await
}

async fn get_with_cookie(h: &Harness, code: &str, cookie: &str) -> Answer {
    h.send(
        h.http
            .get(h.lookup_url(&format!("/{code}")))
            .header("cookie", cookie),
    )
    .await
}

fn assert_form(answer: &Answer, status: u16) {
    answer.assert_page(status, lookup_service::pages::FORM_CONTENT_SECURITY_POLICY);
    assert!(
        answer.text.contains("<form method=\"post\">"),
        "{}",
        answer.text
    );
}

/// The stats total of `code` once it reaches `expected`, then a moment more to show
/// it stays there.
async fn clicks_settle_at(h: &Harness, code: &str, expected: i64) {
    h.stats_when(code, expected, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    h.stats_when(code, expected, Duration::ZERO).await;
}

async fn the_right_password_opens_the_link_and_a_grant_keeps_it_open(h: &Harness) {
    let link = h
        .create_link(json!({
            "url": "https://example.com/secret?x=1",
            "alias": "locked",
            "password": PASSWORD,
            "redirect_status": 308,
        }))
        .await;
    assert_eq!(link["password_protected"], true);

    assert_form(&h.follow("locked").await, 200);
    let wrong = post_password(h, "locked", "not the password").await;
    assert_form(&wrong, 401);
    assert!(wrong.text.contains("not right"), "{}", wrong.text);

    let right = post_password(h, "locked", PASSWORD).await;
    // 303 whatever the link's status: the browser must not post the password on.
    assert_eq!(right.status, 303, "{}", right.text);
    assert_eq!(
        right.header("location"),
        Some("https://example.com/secret?x=1")
    );
    assert_eq!(right.header("cache-control"), Some("no-store"));
    let set_cookie = right.header("set-cookie").unwrap().to_string();
    assert!(set_cookie.starts_with("shortener_grant="), "{set_cookie}");
    assert!(
        set_cookie.contains("; Path=/locked; Max-Age=1800; HttpOnly; SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // The grant opens the link at once, uncached, the link's own status kept.
    let again = get_with_cookie(h, "locked", &cookie).await;
    assert_eq!(again.status, 308);
    assert_eq!(
        again.header("location"),
        Some("https://example.com/secret?x=1")
    );
    assert_eq!(again.header("cache-control"), Some("no-store"));
    // A grant is for its link only, and a tampered one is no grant.
    h.create_link(
        json!({"url": "https://example.com/other", "alias": "locked2", "password": PASSWORD}),
    )
    .await;
    assert_form(&get_with_cookie(h, "locked2", &cookie).await, 200);
    let last = if cookie.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &cookie[..cookie.len() - 1]);
    assert_form(&get_with_cookie(h, "locked", &tampered).await, 200);
    // HEAD sees the form too, and counts nothing.
    let head = h.send(h.http.head(h.lookup_url("/locked"))).await;
    assert_eq!(head.status, 200);

    // Clicks: the right POST and the granted GET; never a form.
    clicks_settle_at(h, "locked", 2).await;

    // A new password ends the grants given for the old one.
    let edit = h
        .patch_as(
            &h.key,
            "/api/v1/links/locked",
            json!({"password": "a new secret"}),
        )
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while get_with_cookie(h, "locked", &cookie).await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the old grant still opens"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(post_password(h, "locked", "a new secret").await.status, 303);

    // Removing the password opens the link to everyone.
    let open = h
        .patch_as(&h.key, "/api/v1/links/locked", json!({"password": null}))
        .await;
    assert_eq!(open.body["password_protected"], false, "{}", open.text);
    h.follow_until("locked", 308).await;
    // An open link takes no POST.
    post_password(h, "locked", PASSWORD)
        .await
        .assert_problem(405, "method-not-allowed");
}

async fn attempts_are_limited_per_link_and_address(h: &Harness) {
    for alias in ["guarded", "neighbour"] {
        h.create_link(
            json!({"url": "https://example.com/g", "alias": alias, "password": PASSWORD}),
        )
        .await;
    }
    // The default allowance is a burst of 5.
    for _ in 0..5 {
        assert_form(&post_password(h, "guarded", "guess guess").await, 401);
    }
    let limited = post_password(h, "guarded", PASSWORD).await;
    assert_form(&limited, 429);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Another link from the same address is not held back.
    assert_eq!(post_password(h, "neighbour", PASSWORD).await.status, 303);
}

async fn passwords_are_checked_and_never_shown(h: &Harness) {
    let before = h.count_links().await;
    for bad in ["short", &"x".repeat(129)] {
        let answer = h
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&h.key),
                Some(json!({"url": "https://example.com/", "password": bad})),
            )
            .await;
        answer.assert_problem(422, "invalid-password");
    }
    assert_eq!(h.count_links().await, before);

    let created = h
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&h.key),
            Some(json!({"url": "https://example.com/", "alias": "hush", "password": PASSWORD})),
        )
        .await;
    let edited = h
        .patch_as(
            &h.key,
            "/api/v1/links/hush",
            json!({"password": "another secret"}),
        )
        .await;
    let bad_edit = h
        .patch_as(&h.key, "/api/v1/links/hush", json!({"password": "short"}))
        .await;
    bad_edit.assert_problem(422, "invalid-password");
    let shown = h.get_as(&h.key, "/api/v1/links/hush").await;
    let audit = h.get_as(&h.key, "/api/v1/audit?target=link:hush").await;
    for answer in [&created, &edited, &shown, &audit] {
        for secret in [PASSWORD, "another secret", "argon2"] {
            assert!(!answer.text.contains(secret), "{secret} in {}", answer.text);
        }
    }
    assert_eq!(shown.body["password_protected"], true);
    // The audit log tells the password changed, without anything of it.
    let changes = &audit.body["items"][0]["changes"];
    assert!(changes["password"]["from"].is_string(), "{}", audit.text);
    assert_ne!(changes["password"]["from"], changes["password"]["to"]);
}
