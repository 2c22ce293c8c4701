//! The web page as create-service serves it: security headers on every answer,
//! content types and caching of its files, problems for what does not exist, markup
//! without inline script or style; and the switch that lets anyone read the stats and
//! QR code of links created without a key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{Answer, Harness};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn assert_secured(answer: &Answer, what: &str) {
    assert_eq!(
        answer.header("content-security-policy"),
        Some(CSP),
        "{what}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
}

/// Every `<…>` tag of `html`, as written.
fn tags(html: &str) -> Vec<&str> {
    let mut tags = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else {
            break;
        };
        tags.push(&rest[start..start + len + 1]);
        rest = &rest[start + len + 1..];
    }
    tags
}

/// The attribute names of one tag (`<a href="x" hidden>`: `href`, `hidden`), values
/// quoted or not skipped over.
fn attribute_names(tag: &str) -> Vec<String> {
    let inner = tag.trim_start_matches('<').trim_end_matches('>');
    let mut chars = inner.chars().peekable();
    fn skip_while(chars: &mut std::iter::Peekable<std::str::Chars>, f: fn(char) -> bool) {
        while chars.peek().is_some_and(|c| f(*c)) {
            chars.next();
        }
    }
    skip_while(&mut chars, |c| !c.is_whitespace());
    let mut names = Vec::new();
    while chars.peek().is_some() {
        skip_while(&mut chars, |c| c.is_whitespace() || c == '/');
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == '/' {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        if !name.is_empty() {
            names.push(name);
        }
        skip_while(&mut chars, char::is_whitespace);
        if chars.peek() == Some(&'=') {
            chars.next();
            skip_while(&mut chars, char::is_whitespace);
            match chars.peek().copied() {
                Some(quote @ ('"' | '\'')) => {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == quote {
                            break;
                        }
                    }
                }
                _ => skip_while(&mut chars, |c| !c.is_whitespace()),
            }
        }
    }
    names
}

#[test]
fn attribute_names_skip_quoted_values() {
    assert_eq!(
        attribute_names(r#"<a href="x y=z" data-a = 'q' hidden>"#),
        ["href", "data-a", "hidden"]
    );
    assert_eq!(
        attribute_names("<script src=/a.js defer>"),
        ["src", "defer"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_files_are_served_with_strict_headers() {
    let h = Harness::sqlite(&[]).await;

    let page = h.send(h.http.get(h.create_url("/"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_secured(&page, "/");
    let etag = page.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );

    // No inline script, style or event handler anywhere in the markup.
    let html = page.text.as_str();
    assert!(html.starts_with("<!doctype html>"));
    let mut scripts = 0;
    for tag in tags(html) {
        let lower = tag.to_ascii_lowercase();
        assert!(!lower.starts_with("<style"), "inline stylesheet: {tag}");
        let names = attribute_names(tag);
        if lower.starts_with("<script") {
            scripts += 1;
            assert!(names.iter().any(|n| n == "src"), "inline script: {tag}");
        }
        assert!(
            !names.iter().any(|n| n == "style"),
            "style attribute: {tag}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with("on")),
            "event handler attribute: {tag}"
        );
        assert!(!lower.contains("javascript:"), "javascript: URL: {tag}");
    }
    assert_eq!(scripts, 1);

    // The files the page names, each with its type, cached for good at its version.
    for (name, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let prefix = format!("/static/{name}?v=");
        let start = html
            .find(&prefix)
            .unwrap_or_else(|| panic!("{name} not linked"));
        let address = &html[start..];
        let address = &address[..address.find('"').unwrap()];
        let file = h.send(h.http.get(h.create_url(address))).await;
        assert_eq!(file.status, StatusCode::OK, "{address}");
        assert_eq!(file.header("content-type"), Some(content_type), "{address}");
        assert_eq!(
            file.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{address}"
        );
        assert_secured(&file, address);
        // Any other spelling of the address is revalidated, and answers 304 when
        // nothing changed.
        let plain = h
            .send(h.http.get(h.create_url(&format!("/static/{name}"))))
            .await;
        assert_eq!(plain.header("cache-control"), Some("no-cache"));
        let tag = plain.header("etag").unwrap().to_string();
        let again = h
            .send(
                h.http
                    .get(h.create_url(&format!("/static/{name}?v=old")))
                    .header("if-none-match", &tag),
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{name}");
        assert!(again.text.is_empty());
    }
    let unchanged = h
        .send(h.http.get(h.create_url("/")).header("if-none-match", &etag))
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert_secured(&unchanged, "/ (304)");
    let head = h.send(h.http.head(h.create_url("/"))).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty());

    // What does not exist is a problem, with the same headers.
    for path in [
        "/static/nope.js",
        "/static/app.js.map",
        "/static/..%2Fapp.js",
    ] {
        let missing = h.send(h.http.get(h.create_url(path))).await;
        missing.assert_problem(404, "not-found");
        assert_secured(&missing, path);
    }
    for (method, path) in [(Method::POST, "/"), (Method::DELETE, "/static/app.js")] {
        let refused = h.send(h.http.request(method, h.create_url(path))).await;
        refused.assert_problem(405, "method-not-allowed");
        assert_eq!(refused.header("allow"), Some("GET, HEAD"));
        assert_secured(&refused, path);
    }
    // The API keeps its own answers, and the redirect never sees the page's paths.
    h.api(Method::GET, "/api/v1/links", None, None)
        .await
        .assert_problem(401, "unauthorized");
    h.send(h.http.get(h.lookup_url("/static/app.js")))
        .await
        .assert_problem(404, "not-found");
    h.stop().await;
}

/// Creates a link without a key and reads its stats and QR code without one.
async fn anonymous_reads(h: &Harness) -> (u16, u16, u16) {
    let created = h
        .api(
            Method::POST,
            "/api/v1/links",
            None,
            Some(json!({"url": "https://example.com/anonymous"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let code = created.body["code"].as_str().unwrap();
    let stats = h
        .send(
            h.http
                .get(h.stats_url(&format!("/api/v1/links/{code}/stats"))),
        )
        .await;
    let qr = h
        .send(
            h.http
                .get(h.create_url(&format!("/api/v1/links/{code}/qr"))),
        )
        .await;
    // A keyed link stays its owner's, switch or not.
    let keyed = h
        .create_link(json!({"url": "https://example.com/keyed"}))
        .await;
    let keyed_code = keyed["code"].as_str().unwrap();
    let keyed_stats = h
        .send(
            h.http
                .get(h.stats_url(&format!("/api/v1/links/{keyed_code}/stats"))),
        )
        .await;
    (
        stats.status.as_u16(),
        qr.status.as_u16(),
        keyed_stats.status.as_u16(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_links_are_readable_only_when_switched_on() {
    let on = Harness::sqlite(&[
        ("SHORTENER__LINKS__ANONYMOUS_CREATE", "true"),
        ("SHORTENER__LINKS__ANONYMOUS_STATS", "true"),
    ])
    .await;
    assert_eq!(anonymous_reads(&on).await, (200, 200, 404));
    on.stop().await;

    let off = Harness::sqlite(&[("SHORTENER__LINKS__ANONYMOUS_CREATE", "true")]).await;
    assert_eq!(anonymous_reads(&off).await, (401, 401, 401));
    off.stop().await;
}
