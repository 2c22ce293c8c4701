//! Which domain a request is for, on SQLite and on PostgreSQL: the host picks it (in
//! any case, with a port or a trailing dot), an IP address is the default domain, a
//! host nobody holds answers 404 without a lookup, a branded domain is served from the
//! moment its announcement arrives until it is given up, and only a trusted header
//! may name another host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{Answer, Harness};

on_both_engines!(the_host_picks_the_domain);

const UNKNOWN_HOST: &str = "no links are served on this host";
const UNKNOWN_CODE: &str = "no link has this code";

async fn follow_on(h: &Harness, code: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = h.http.get(h.lookup_url(&format!("/{code}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    h.send(request).await
}

/// Follows until the answer's detail is `detail` (an announcement takes a moment to
/// arrive).
async fn until_detail(h: &Harness, code: &str, host: &str, detail: &str) -> Answer {
    let answer = h
        .follow_host_until(host, &format!("/{code}"), |a| a.body["detail"] == detail)
        .await;
    answer.assert_problem(404, "not-found");
    answer
}

async fn the_host_picks_the_domain(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/home"}))
        .await;
    let code = link["code"].as_str().unwrap();
    for host in [
        "sho.rt",
        "SHO.RT",
        "sho.rt.",
        "Sho.Rt.:8443",
        "localhost:8082",
        "[::1]:8082",
        "192.0.2.7",
    ] {
        let answer = follow_on(h, code, &[("host", host)]).await;
        assert_eq!(
            answer.status,
            StatusCode::FOUND,
            "Host {host}: {}",
            answer.text
        );
        assert_eq!(answer.header("location"), Some("https://example.com/home"));
    }

    // A host nobody holds: 404, and no tier is asked.
    let tiers_before = h.metric(h.lookup_port, "shortener_lookup_tier_total").await;
    for host in [
        "evil.example",
        "go.acme.com",
        "sho.rt.evil.example",
        "b\u{fc}cher.example",
        "sho.rt:https",
    ] {
        let answer = follow_on(h, code, &[("host", host)]).await;
        answer.assert_problem(404, "not-found");
        assert_eq!(answer.body["detail"], UNKNOWN_HOST, "Host {host}");
    }
    let tiers_after = h.metric(h.lookup_port, "shortener_lookup_tier_total").await;
    assert_eq!(tiers_before, tiers_after, "an unknown host reached a tier");
    // Without a trusted header configured, a forwarded host is only a header.
    let answer = follow_on(
        h,
        code,
        &[("host", "sho.rt"), ("x-forwarded-host", "evil.example")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);

    // A branded domain is served as soon as its announcement arrives; the default
    // domain's links are not links of it.
    let added = h.add_domain(&h.key, json!({"name": "go.acme.com"})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    until_detail(h, code, "go.acme.com", UNKNOWN_CODE).await;
    until_detail(h, code, "GO.Acme.com.:443", UNKNOWN_CODE).await;
    until_detail(h, "spring-sale", "go.acme.com", UNKNOWN_CODE).await;
    // Given up, it is a host nobody holds again.
    let deleted = h.delete_as(&h.key, "/api/v1/domains/go.acme.com").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    until_detail(h, code, "go.acme.com", UNKNOWN_HOST).await;
}

/// With `http.forwarded_host_header` set, the proxy's header names the host and
/// `Host` (the proxy's own hop) is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_forwarded_host_picks_the_domain() {
    let h = Harness::sqlite(&[
        ("SHORTENER__HTTP__FORWARDED_HOST_HEADER", "X-Forwarded-Host"),
        // An own host written in another spelling still names the default domain.
        ("SHORTENER__LINKS__OWN_HOSTS", "WWW.Sho.RT."),
    ])
    .await;
    let link = h
        .create_link(json!({"url": "https://example.com/home"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let answer = follow_on(
        &h,
        code,
        &[("host", "evil.example"), ("x-forwarded-host", "SHO.RT")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
    let answer = follow_on(&h, code, &[("x-forwarded-host", "www.sho.rt:443")]).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.text);
    let answer = follow_on(
        &h,
        code,
        &[("host", "sho.rt"), ("x-forwarded-host", "evil.example")],
    )
    .await;
    answer.assert_problem(404, "not-found");
    assert_eq!(answer.body["detail"], UNKNOWN_HOST);
    h.stop().await;
}
