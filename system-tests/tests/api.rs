//! Black-box tests of the link API and the redirect, on SQLite and on PostgreSQL
//! (primary + streaming replica, Redis Cluster): every call goes over HTTP to the
//! real services, and every refused input is checked to have changed nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(
    create_then_follow,
    refused_urls_change_nothing,
    refused_aliases_change_nothing,
    refused_bodies_change_nothing,
    authentication_and_ownership,
    idempotent_retries,
    bulk_reports_each_item,
    edit_disable_delete,
    cursor_pagination,
    expiry_answers_gone,
    openapi_and_ops_endpoints,
);

async fn create_then_follow(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/a?b=c#d", "tags": ["x", "y"]}))
        .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(code.len(), 11, "generated codes have a fixed length");
    assert!(link["id"].is_string(), "ids travel as strings");
    assert_eq!(
        link["short_url"],
        format!("{}/{code}", support::PUBLIC_BASE)
    );
    assert_eq!(link["url"], "https://example.com/a?b=c#d");
    assert_eq!(link["redirect_status"], 302);
    assert_eq!(link["state"], "active");
    assert_eq!(link["tags"], json!(["x", "y"]));

    // Followable the moment the create returned (read-after-write through the replica).
    let follow = h.follow(code).await;
    assert_eq!(follow.status, StatusCode::FOUND, "{}", follow.text);
    assert_eq!(
        follow.header("location"),
        Some("https://example.com/a?b=c#d")
    );
    assert_eq!(follow.header("cache-control"), Some("private, max-age=0"));
    let head = h.send(h.http.head(h.lookup_url(&format!("/{code}")))).await;
    assert_eq!(head.status, StatusCode::FOUND);
    assert!(head.text.is_empty());

    // Aliases, IDN hosts, and the owner's chosen status.
    let alias = h
        .create_link(json!({"url": "https://bücher.example/straße", "alias": "my-Books_1", "redirect_status": 301}))
        .await;
    assert_eq!(alias["code"], "my-Books_1");
    assert_eq!(alias["url"], "https://xn--bcher-kva.example/stra%C3%9Fe");
    let follow = h.follow("my-Books_1").await;
    assert_eq!(follow.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        follow.header("location"),
        Some("https://xn--bcher-kva.example/stra%C3%9Fe")
    );
    assert_eq!(follow.header("cache-control"), Some("public, max-age=3600"));
    // As long as a generated code, yet an alias: its `-` says so.
    let eleven = h
        .create_link(json!({"url": "https://example.com/sale", "alias": "spring-sale"}))
        .await;
    assert_eq!(eleven["code"], "spring-sale");
    let follow = h.follow("spring-sale").await;
    assert_eq!(follow.status, StatusCode::FOUND, "{}", follow.text);
    assert_eq!(follow.header("location"), Some("https://example.com/sale"));

    // Two creates of the same URL are two links.
    let again = h
        .create_link(json!({"url": "https://example.com/a?b=c#d"}))
        .await;
    assert_ne!(again["code"], link["code"]);
    assert_eq!(h.count_links().await, 4);
}

/// Posts `body` and expects a 422 problem naming `field`; no row may appear.
async fn assert_refused(
    h: &Harness,
    body: Value,
    status: u16,
    kind: &str,
    field: Option<&str>,
) -> Answer {
    let before = h.count_links().await;
    let answer = h
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&h.key),
            Some(body.clone()),
        )
        .await;
    answer.assert_problem(status, kind);
    if let Some(field) = field {
        assert!(
            answer.body["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == field)),
            "problem must name `{field}`: {}",
            answer.text
        );
    }
    assert_eq!(
        h.count_links().await,
        before,
        "refused {body} changed the database"
    );
    answer
}

async fn refused_urls_change_nothing(h: &Harness) {
    for url in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "https://example.com/a\r\nSet-Cookie: x=1",
        "https://example.com/\u{0007}bell",
        "https://example.com/\ttab",
        " https://example.com/",
        "https://user:pw@example.com/",
        "http://",
        "not a url",
        "",
        "http://sho.rt/abc",
        "https://SHO.RT./loop",
    ] {
        assert_refused(h, json!({ "url": url }), 422, "invalid-url", Some("url")).await;
    }
    let long = format!("https://example.com/{}", "a".repeat(2049 - 20));
    assert!(long.len() > 2048);
    let answer = assert_refused(h, json!({ "url": long }), 422, "invalid-url", Some("url")).await;
    assert!(answer.text.contains("2048"), "{}", answer.text);
    let fits = format!("https://example.com/{}", "a".repeat(2048 - 20));
    assert_eq!(fits.len(), 2048);
    h.create_link(json!({ "url": fits })).await;
}

async fn refused_aliases_change_nothing(h: &Harness) {
    for alias in [
        "ab",
        &"a".repeat(65),
        "has space",
        "slash/es",
        "dot.ted",
        "ünï",
        "api",
        "ADMIN",
        "healthz",
        "metrics",
        "static",
        // Eleven base62 characters: the shape of generated codes.
        "abcdefghijk",
    ] {
        assert_refused(
            h,
            json!({"url": "https://example.com/", "alias": alias}),
            422,
            "invalid-alias",
            Some("alias"),
        )
        .await;
    }
    h.create_link(json!({"url": "https://example.com/", "alias": "promo-2026"}))
        .await;
    let answer = assert_refused(
        h,
        json!({"url": "https://example.org/", "alias": "promo-2026"}),
        409,
        "alias-taken",
        Some("alias"),
    )
    .await;
    assert!(answer.text.contains("promo-2026"));
    // The first owner's link is untouched.
    assert_eq!(
        h.follow("promo-2026").await.header("location"),
        Some("https://example.com/")
    );
}

async fn refused_bodies_change_nothing(h: &Harness) {
    let post_raw = |body: &'static str, content_type: &'static str| {
        h.http
            .post(h.create_url("/api/v1/links"))
            .bearer_auth(&h.key)
            .header("content-type", content_type)
            .body(body)
    };
    let before = h.count_links().await;
    h.send(post_raw("{\"url\": ", "application/json"))
        .await
        .assert_problem(400, "malformed-json");
    h.send(post_raw("[1,2]", "application/json"))
        .await
        .assert_problem(422, "invalid-body");
    h.send(post_raw("{\"url\":\"https://example.com/\"}", "text/plain"))
        .await
        .assert_problem(415, "unsupported-media-type");
    let unknown = h
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&h.key),
            Some(json!({"url": "https://example.com/", "expires": "2099-01-01T00:00:00Z"})),
        )
        .await;
    unknown.assert_problem(422, "invalid-body");
    assert!(unknown.text.contains("expires"), "{}", unknown.text);
    let huge = json!({"url": "https://example.com/", "tags": ["x".repeat(70_000)]});
    h.api(Method::POST, "/api/v1/links", Some(&h.key), Some(huge))
        .await
        .assert_problem(413, "body-too-large");
    for (body, field) in [
        (
            json!({"url": "https://example.com/", "redirect_status": 303}),
            "redirect_status",
        ),
        (
            json!({"url": "https://example.com/", "redirect_status": 200}),
            "redirect_status",
        ),
        (
            json!({"url": "https://example.com/", "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"url": "https://example.com/", "max_visits": 0}),
            "max_visits",
        ),
        (json!({"url": "https://example.com/", "tags": [""]}), "tags"),
    ] {
        let kind = format!("invalid-{}", field.replace('_', "-"));
        assert_refused(h, body, 422, &kind, Some(field)).await;
    }
    let bad_date = h
        .api(
            Method::POST,
            "/api/v1/links",
            Some(&h.key),
            Some(json!({"url": "https://example.com/", "expires_at": "tomorrow"})),
        )
        .await;
    bad_date.assert_problem(422, "invalid-body");

    let items: Vec<Value> = (0..1001)
        .map(|i| json!({"url": format!("https://example.com/{i}")}))
        .collect();
    h.api(
        Method::POST,
        "/api/v1/links/bulk",
        Some(&h.key),
        Some(json!({ "items": items })),
    )
    .await
    .assert_problem(422, "invalid-bulk-size");
    assert_eq!(h.count_links().await, before);
}

async fn authentication_and_ownership(h: &Harness) {
    let before = h.count_links().await;
    let body = json!({"url": "https://example.com/"});
    // Anonymous creation is off on a service.
    h.api(Method::POST, "/api/v1/links", None, Some(body.clone()))
        .await
        .assert_problem(401, "unauthorized");
    let forged = format!("sk_{}", "A".repeat(43));
    h.api(
        Method::POST,
        "/api/v1/links",
        Some(&forged),
        Some(body.clone()),
    )
    .await
    .assert_problem(401, "unauthorized");
    h.api(
        Method::POST,
        "/api/v1/links",
        Some("garbage"),
        Some(body.clone()),
    )
    .await
    .assert_problem(401, "unauthorized");
    let basic = h
        .send(
            h.http
                .post(h.create_url("/api/v1/links"))
                .basic_auth("user", Some("pw"))
                .json(&body),
        )
        .await;
    basic.assert_problem(401, "unauthorized");
    assert_eq!(h.count_links().await, before);

    let link = h
        .create_link(json!({"url": "https://example.com/mine"}))
        .await;
    let path = format!("/api/v1/links/{}", link["code"].as_str().unwrap());
    // The owner sees it; the other tenant cannot tell it exists.
    let own = h.get_as(&h.key, &path).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["url"], "https://example.com/mine");
    h.get_as(&h.other_key, &path)
        .await
        .assert_problem(404, "not-found");
    h.patch_as(&h.other_key, &path, json!({"url": "https://evil.example/"}))
        .await
        .assert_problem(404, "not-found");
    h.delete_as(&h.other_key, &path)
        .await
        .assert_problem(404, "not-found");
    h.api(Method::GET, &path, None, None)
        .await
        .assert_problem(401, "unauthorized");
    let list = h.get_as(&h.other_key, "/api/v1/links").await;
    assert_eq!(list.body["items"], json!([]));
    // Still intact.
    assert_eq!(
        h.follow(link["code"].as_str().unwrap())
            .await
            .header("location"),
        Some("https://example.com/mine")
    );
}

async fn idempotent_retries(h: &Harness) {
    let body = json!({"url": "https://example.com/once"});
    let post = |key: &'static str, body: Value| {
        h.http
            .post(h.create_url("/api/v1/links"))
            .bearer_auth(&h.key)
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let first = h.send(post("order-42", body.clone())).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = h.send(post("order-42", body.clone())).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(
        retry.body, first.body,
        "a retry returns the original response"
    );
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(h.count_links().await, 1);

    h.send(post(
        "order-42",
        json!({"url": "https://example.com/other"}),
    ))
    .await
    .assert_problem(422, "idempotency-key-reused");
    assert_eq!(h.count_links().await, 1);

    // Concurrent retries of one request create one link.
    let racers =
        (0..8).map(|_| h.send(post("order-43", json!({"url": "https://example.com/race"}))));
    let answers = futures_util::future::join_all(racers).await;
    let codes: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
            a.body["code"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(codes.len(), 1);
    assert_eq!(h.count_links().await, 2);

    // Keys are scoped per tenant.
    let other = h
        .send(
            h.http
                .post(h.create_url("/api/v1/links"))
                .bearer_auth(&h.other_key)
                .header("Idempotency-Key", "order-42")
                .json(&json!({"url": "https://example.com/globex"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_eq!(h.count_links().await, 3);

    let bad_key = h
        .send(
            h.http
                .post(h.create_url("/api/v1/links"))
                .bearer_auth(&h.key)
                .header("Idempotency-Key", "x".repeat(300))
                .json(&body),
        )
        .await;
    bad_key.assert_problem(400, "invalid-idempotency-key");
    assert_eq!(h.count_links().await, 3);
}

async fn bulk_reports_each_item(h: &Harness) {
    h.create_link(json!({"url": "https://example.com/", "alias": "taken-one"}))
        .await;
    let mut items: Vec<Value> = (0..300)
        .map(|i| json!({"url": format!("https://example.com/item/{i}")}))
        .collect();
    items.push(json!({"url": "javascript:alert(1)"}));
    items.push(json!({"url": "https://example.com/", "alias": "taken-one"}));
    items.push(json!({"url": "https://example.com/", "alias": "bulk-alias"}));
    items.push(json!({"url": "https://example.com/", "alias": "bulk-alias"}));
    let answer = h
        .api(
            Method::POST,
            "/api/v1/links/bulk",
            Some(&h.key),
            Some(json!({ "items": items })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["created"], 301);
    assert_eq!(answer.body["failed"], 3);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 304);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "results come in input order");
    }
    assert_eq!(results[300]["status"], 422);
    assert_eq!(results[300]["error"]["type"], "/problems/invalid-url");
    assert_eq!(results[301]["status"], 409);
    assert_eq!(results[302]["status"], 201);
    assert_eq!(results[302]["link"]["code"], "bulk-alias");
    assert_eq!(results[303]["status"], 409);
    assert_eq!(h.count_links().await, 302);
    let code = results[7]["link"]["code"].as_str().unwrap();
    assert_eq!(
        h.follow(code).await.header("location"),
        Some("https://example.com/item/7")
    );
}

async fn edit_disable_delete(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/v1", "max_visits": 5}))
        .await;
    let code = link["code"].as_str().unwrap();
    let path = format!("/api/v1/links/{code}");

    let edited = h.patch_as(&h.key, &path, json!({"url": "https://example.com/v2", "redirect_status": 307, "max_visits": null, "tags": ["t"]})).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(edited.body["url"], "https://example.com/v2");
    assert_eq!(edited.body["max_visits"], Value::Null);
    assert_eq!(edited.body["tags"], json!(["t"]));
    let follow = h.follow_until(code, 307).await;
    assert_eq!(follow.header("location"), Some("https://example.com/v2"));

    // A refused edit changes nothing.
    h.patch_as(&h.key, &path, json!({"url": "javascript:x"}))
        .await
        .assert_problem(422, "invalid-url");
    h.patch_as(&h.key, &path, json!({"alias": "rename"}))
        .await
        .assert_problem(422, "invalid-body");
    assert_eq!(
        h.get_as(&h.key, &path).await.body["url"],
        "https://example.com/v2"
    );

    let disabled = h.patch_as(&h.key, &path, json!({"disabled": true})).await;
    assert_eq!(disabled.body["state"], "disabled");
    h.follow_until(code, 410)
        .await
        .assert_problem(410, "link-gone");
    let enabled = h.patch_as(&h.key, &path, json!({"disabled": false})).await;
    assert_eq!(enabled.body["state"], "active");
    h.follow_until(code, 307).await;

    let deleted = h.delete_as(&h.key, &path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    h.follow_until(code, 410)
        .await
        .assert_problem(410, "link-gone");
    h.get_as(&h.key, &path)
        .await
        .assert_problem(404, "not-found");
    h.delete_as(&h.key, &path)
        .await
        .assert_problem(404, "not-found");
    // The row stays, so the code is never handed out again.
    assert_eq!(h.count_links().await, 1);
}

async fn cursor_pagination(h: &Harness) {
    let mut created = Vec::new();
    for i in 0..7 {
        let link = h
            .create_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        created.push(link["code"].as_str().unwrap().to_string());
    }
    h.api(
        Method::POST,
        "/api/v1/links",
        Some(&h.other_key),
        Some(json!({"url": "https://example.com/x"})),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/links?limit=3&cursor={c}"),
            None => "/api/v1/links?limit=3".to_string(),
        };
        let page = h.get_as(&h.key, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["code"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10);
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each link exactly once");
    for bad in [
        "limit=0",
        "limit=1001",
        "cursor=abc",
        "limit=x",
        "colour=red",
    ] {
        h.get_as(&h.key, &format!("/api/v1/links?{bad}"))
            .await
            .assert_problem(400, "invalid-query");
    }
}

async fn expiry_answers_gone(h: &Harness) {
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let link = h
        .create_link(json!({"url": "https://example.com/soon", "expires_at": soon.to_rfc3339()}))
        .await;
    let code = link["code"].as_str().unwrap();
    assert_eq!(h.follow(code).await.status, StatusCode::FOUND);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let gone = h.follow(code).await;
    gone.assert_problem(410, "link-gone");
    assert!(gone.text.contains("expired"));
    // The owner can extend it again.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let path = format!("/api/v1/links/{code}");
    let extended = h
        .patch_as(&h.key, &path, json!({"expires_at": later.to_rfc3339()}))
        .await;
    assert_eq!(extended.body["state"], "active", "{}", extended.text);
    h.follow_until(code, 302).await;
}

async fn openapi_and_ops_endpoints(h: &Harness) {
    let doc = h
        .send(h.http.get(h.create_url("/api/v1/openapi.json")))
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/links",
        "/api/v1/links/bulk",
        "/api/v1/links/{code}",
    ] {
        assert!(doc.body["paths"][path].is_object(), "missing {path}");
    }
    for url in [h.create_url("/healthz"), h.lookup_url("/healthz")] {
        let health = h.send(h.http.get(url)).await;
        assert_eq!(health.status, StatusCode::OK);
        assert_eq!(health.body["status"], "ok");
    }
    let ready = h.send(h.http.get(h.create_url("/readyz"))).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
    h.create_link(json!({"url": "https://example.com/"})).await;
    let metrics = h.send(h.http.get(h.create_url("/metrics"))).await;
    assert!(metrics.text.contains(
        "shortener_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/links\",status=\"201\",service=\"create-service\"}"
    ), "{}", metrics.text);
    assert!(metrics.text.contains(
        "shortener_links_created_total{kind=\"generated\",service=\"create-service\"} 1"
    ));
    // Pool use, read at the scrape: the configured maximum and what is open now.
    let pool = |state: &str| -> i64 {
        let prefix = format!(
            "shortener_db_pool_connections{{role=\"primary\",state=\"{state}\",service=\"create-service\"}} "
        );
        metrics
            .text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {state} pool gauge in\n{}", metrics.text))
    };
    assert!(pool("max") >= 1);
    assert!(pool("idle") + pool("in_use") <= pool("max"));
    h.send(h.http.get(h.create_url("/no/such/route")))
        .await
        .assert_problem(404, "not-found");

    // Lookup: every path no fixed route claims goes to the redirect, which answers
    // only one-segment paths and only GET and HEAD.
    let link = h.create_link(json!({"url": "https://example.com/"})).await;
    let code = link["code"].as_str().unwrap();
    h.follow_until(code, 302).await;
    for path in [
        "/no/such/route".to_string(),
        format!("/{code}/"),
        "/".to_string(),
    ] {
        h.send(h.http.get(h.lookup_url(&path)))
            .await
            .assert_problem(404, "not-found");
    }
    let posted = h.send(h.http.post(h.lookup_url(&format!("/{code}")))).await;
    posted.assert_problem(405, "method-not-allowed");
    assert_eq!(posted.header("allow"), Some("GET, HEAD"));
    let metrics = h.send(h.http.get(h.lookup_url("/metrics"))).await;
    let series = |route: &str, method: &str, status: u16| {
        metrics.text.lines().any(|line| {
            line.starts_with(&format!(
                "shortener_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{status}\""
            ))
        })
    };
    assert!(series("/{code}", "GET", 302), "{}", metrics.text);
    assert!(series("/{code}", "POST", 405), "{}", metrics.text);
    assert!(series("/healthz", "GET", 200), "{}", metrics.text);
    assert!(series("unmatched", "GET", 404), "{}", metrics.text);
}
