//! The repository's nginx configuration in front of the real services: routing (the
//! web page included), internal endpoints hidden, oversized requests refused at the
//! edge as problem+json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Harness;

/// The repo's `nginx/shortener.conf`, with loopback upstreams and a test port.
fn edge_config(h: &Harness) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../nginx");
    let site = std::fs::read_to_string(format!("{dir}/shortener.conf")).unwrap();
    let upstreams = format!(
        "upstream lookup_backend {{ server 127.0.0.1:{lookup}; keepalive 8; }}\n\
         upstream create_backend {{ server 127.0.0.1:{create}; keepalive 8; }}\n\
         upstream stats_backend {{ server 127.0.0.1:1; }}\n",
        lookup = h.lookup_port,
        create = h.create_port,
    );
    assert!(site.contains("include upstreams.conf;") && site.contains("listen 80 reuseport;"));
    let site = site
        .replace("include upstreams.conf;", &upstreams)
        .replace("listen 80 reuseport;", "listen 127.0.0.1:{{port}};");
    format!("worker_processes 1;\nevents {{ worker_connections 256; }}\nhttp {{\n{site}\n}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_routes_and_guards() {
    let h = Harness::postgres(&[("SHORTENER__HTTP__CLIENT_IP_HEADER", "X-Real-IP")]).await;
    let nginx = test_kit::Nginx::start(&edge_config(&h)).await;
    let edge = |path: &str| format!("{}{path}", nginx.url());

    let created = h
        .send(
            h.http
                .post(edge("/api/v1/links"))
                .bearer_auth(&h.key)
                .json(&json!({"url": "https://example.com/through-nginx"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let code = created.body["code"].as_str().unwrap();
    let follow = h.send(h.http.get(edge(&format!("/{code}")))).await;
    assert_eq!(follow.status, StatusCode::FOUND);
    assert_eq!(
        follow.header("location"),
        Some("https://example.com/through-nginx")
    );
    let listed = h
        .send(h.http.get(edge("/api/v1/links")).bearer_auth(&h.key))
        .await;
    assert_eq!(listed.body["items"][0]["code"], code);

    // Internal endpoints are not reachable from outside.
    for path in [
        "/metrics",
        "/readyz",
        "/healthz",
        "/a/b",
        "/static",
        "/static/a/b",
    ] {
        h.send(h.http.get(edge(path)))
            .await
            .assert_problem(404, "not-found");
    }
    // The web page and its files come from create-service, whose problems pass through.
    let page = h.send(h.http.get(edge("/"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.header("content-security-policy").is_some());
    let script = h.send(h.http.get(edge("/static/app.js"))).await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    h.send(h.http.get(edge("/static/none.js")))
        .await
        .assert_problem(404, "not-found");
    // Oversized requests never reach a backend, and never answer 5xx.
    let before = h.count_links().await;
    let big = "x".repeat(5 * 1024 * 1024);
    h.send(
        h.http
            .post(edge("/api/v1/links/bulk"))
            .bearer_auth(&h.key)
            .header("content-type", "application/json")
            .body(big),
    )
    .await
    .assert_problem(413, "body-too-large");
    let long_uri = format!("/{}", "a".repeat(10_000));
    h.send(h.http.get(edge(&long_uri)))
        .await
        .assert_problem(414, "uri-too-long");
    assert_eq!(h.count_links().await, before);
    // A protected link's form posts through the edge; its preview passes too.
    h.send(
        h.http
            .post(edge("/api/v1/links"))
            .bearer_auth(&h.key)
            .json(&json!({"url": "https://example.com/locked", "alias": "edge-locked", "password": "open sesame"})),
    )
    .await;
    let form = h.send(h.http.get(edge("/edge-locked"))).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let post = |body: String| {
        h.http
            .post(edge("/edge-locked"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let opened = h.send(post("password=open+sesame".into())).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.text);
    assert_eq!(
        opened.header("location"),
        Some("https://example.com/locked")
    );
    assert!(opened.header("set-cookie").is_some());
    h.send(post(format!("password={}", "x".repeat(16 * 1024))))
        .await
        .assert_problem(413, "body-too-large");
    let preview = h.send(h.http.get(edge(&format!("/{code}+")))).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert!(preview.text.contains("https://example.com/through-nginx"));
    // Unknown codes still get the service's own problem.
    h.send(h.http.get(edge("/no-such-alias")))
        .await
        .assert_problem(404, "not-found");
    drop(nginx);
    h.stop().await;
}
