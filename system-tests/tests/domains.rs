//! Black-box tests of `/api/v1/domains` on SQLite and on PostgreSQL: a branded domain
//! is held by one tenant, names take one spelling, and refused input is problem+json
//! that changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Harness;

on_both_engines!(
    a_domain_is_held_by_one_tenant,
    refused_domains_change_nothing
);

async fn names(h: &Harness, key: &str) -> Vec<String> {
    let list = h.get_as(key, "/api/v1/domains").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

async fn add(h: &Harness, key: &str, name: &str) -> support::Answer {
    h.add_domain(key, json!({ "name": name })).await
}

async fn a_domain_is_held_by_one_tenant(h: &Harness) {
    let added = add(h, &h.key, "Go.Acme.COM.").await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body["name"], "go.acme.com");
    assert!(added.body["created_at"].is_string());
    assert_eq!(
        added.header("location"),
        Some("/api/v1/domains/go.acme.com")
    );

    let unicode = add(h, &h.key, "Bücher.example").await;
    assert_eq!(unicode.status, StatusCode::CREATED, "{}", unicode.text);
    assert_eq!(unicode.body["name"], "xn--bcher-kva.example");
    assert_eq!(
        names(h, &h.key).await,
        ["go.acme.com", "xn--bcher-kva.example"]
    );

    // Held: by another tenant, or by the caller already; neither changes the holder.
    let theirs = add(h, &h.other_key, "go.acme.com").await;
    theirs.assert_problem(409, "domain-taken");
    assert!(
        theirs.body["detail"]
            .as_str()
            .unwrap()
            .contains("another tenant")
    );
    let again = add(h, &h.key, "GO.acme.com").await;
    again.assert_problem(409, "domain-taken");
    assert!(again.body["detail"].as_str().unwrap().contains("you hold"));
    assert!(names(h, &h.other_key).await.is_empty());

    let one = h.get_as(&h.key, "/api/v1/domains/go.acme.com").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.body["name"], "go.acme.com");
    // Another tenant's domain does not exist for the caller, to read or to delete.
    for method in [Method::GET, Method::DELETE] {
        h.api(
            method,
            "/api/v1/domains/go.acme.com",
            Some(&h.other_key),
            None,
        )
        .await
        .assert_problem(404, "not-found");
    }

    let deleted = h.delete_as(&h.key, "/api/v1/domains/go.acme.com").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    h.get_as(&h.key, "/api/v1/domains/go.acme.com")
        .await
        .assert_problem(404, "not-found");
    assert_eq!(names(h, &h.key).await, ["xn--bcher-kva.example"]);
    // Released, it can be added by anyone.
    let taken_over = add(h, &h.other_key, "go.acme.com").await;
    assert_eq!(
        taken_over.status,
        StatusCode::CREATED,
        "{}",
        taken_over.text
    );
    assert_eq!(names(h, &h.other_key).await, ["go.acme.com"]);
}

async fn refused_domains_change_nothing(h: &Harness) {
    let default_host = support::PUBLIC_BASE
        .strip_prefix("http://")
        .unwrap()
        .to_string();
    for bad in [
        json!(""),
        json!("https://go.acme.com"),
        json!("go.acme.com/path"),
        json!("go.acme.com:8443"),
        json!("*.acme.com"),
        json!("203.0.113.7"),
        json!("[2001:db8::1]"),
        json!("localhost"),
        json!("-go.acme.com"),
        json!("go_links.acme.com"),
        json!(format!("{}.example", "a".repeat(64))),
        json!(default_host),
        json!(default_host.to_uppercase()),
    ] {
        let answer = add(h, &h.key, bad.as_str().unwrap()).await;
        answer.assert_problem(422, "invalid-domain");
        assert_eq!(answer.body["errors"][0]["field"], "name", "{bad}");
    }
    for body in [
        json!({}),
        json!({ "name": 7 }),
        json!({ "name": "go.acme.com", "owner": "x" }),
    ] {
        let answer = h
            .api(
                Method::POST,
                "/api/v1/domains",
                Some(&h.key),
                Some(body.clone()),
            )
            .await;
        assert!(answer.status.is_client_error(), "{body}: {}", answer.text);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
    }
    // Domains belong to tenants: without a key there is no one to hold one.
    add(h, "", "go.acme.com")
        .await
        .assert_problem(401, "unauthorized");
    let anonymous = h
        .send(
            h.http
                .post(h.create_url("/api/v1/domains"))
                .json(&json!({"name": "go.acme.com"})),
        )
        .await;
    anonymous.assert_problem(401, "unauthorized");
    // A path that is no domain name names no domain.
    h.get_as(&h.key, "/api/v1/domains/not a domain")
        .await
        .assert_problem(404, "not-found");
    assert!(names(h, &h.key).await.is_empty());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains")
        .fetch_one(h.db.primary())
        .await
        .unwrap();
    assert_eq!(rows, 0);
}
