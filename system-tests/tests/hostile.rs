//! Hostile input in bulk: generated bodies, headers and paths thrown at the real
//! services. No answer may be a 5xx, and only a 201 may add a row.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::Harness;

on_both_engines!(hostile_input_never_answers_5xx);

/// A small deterministic generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NASTY: &[&str] = &[
    "",
    " ",
    "\u{0000}",
    "\r\n",
    "https://example.com/\r\nLocation: https://evil.example/",
    "https://example.com/%0d%0aSet-Cookie:x",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "https://ex\u{0430}mple.com/",
    "https://xn--80ak6aa92e.com/",
    "http://[::1]:80/",
    "http://0x7f.1/",
    "https://example.com/\u{202e}gnp.exe",
    "https://example.com/🦀",
    "//example.com/",
    "https:example.com",
    "https://sho.rt/x",
    "https://a.b/<script>alert(1)</script>",
    "abcdefghijk",
    "api",
    "../../etc/passwd",
    "%00",
    "\u{FEFF}https://example.com/",
    "9999999999999999999999999",
    "-1",
];

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0),
        4 => json!(rng.pick(NASTY)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        6 => json!({ "url": random_value(rng, depth + 1) }),
        _ => json!("x".repeat(rng.below(3000))),
    }
}

fn random_body(rng: &mut Rng) -> Value {
    let mut body = serde_json::Map::new();
    // A third of the bodies start valid, so mutations of good requests are covered.
    if rng.below(3) == 0 {
        body.insert(
            "url".into(),
            json!(format!("https://example.com/{}", rng.below(1000))),
        );
        if rng.below(2) == 0 {
            return Value::Object(body);
        }
    }
    let fields = [
        "url",
        "alias",
        "expires_at",
        "max_visits",
        "redirect_status",
        "tags",
        "disabled",
        "items",
        "extra",
    ];
    for _ in 0..rng.below(3) {
        let field = *rng.pick(&fields);
        let value = match field {
            "url" if rng.below(2) == 0 => json!(rng.pick(NASTY)),
            "redirect_status" => json!(rng.pick(&[0, 200, 301, 302, 303, 307, 308, 65536, -1])),
            "expires_at" => json!(rng.pick(&[
                "2999-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "2026-13-45T99:99:99Z",
                "+275760-09-13T00:00:00Z",
                "now"
            ])),
            _ => random_value(rng, 0),
        };
        body.insert(field.to_string(), value);
    }
    Value::Object(body)
}

async fn hostile_input_never_answers_5xx(h: &Harness) {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let mut created = 0;
    let mut codes = vec!["abcdefghijk".to_string()];
    for round in 0..300 {
        let before = h.count_links().await;
        let body = random_body(&mut rng);
        let (method, path) = match rng.below(5) {
            0 | 1 => (Method::POST, "/api/v1/links".to_string()),
            2 => (Method::POST, "/api/v1/links/bulk".to_string()),
            3 => (Method::PATCH, format!("/api/v1/links/{}", rng.pick(&codes))),
            _ => (
                Method::GET,
                format!("/api/v1/links?limit={}", rng.pick(NASTY)),
            ),
        };
        let key = match rng.below(4) {
            0 => None,
            1 => Some(h.other_key.as_str()),
            _ => Some(h.key.as_str()),
        };
        let mut request = h.http.request(method.clone(), h.create_url(&path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if rng.below(5) == 0 {
            // Only what an HTTP client can put in a header at all.
            let key = rng.pick(NASTY);
            if !key.chars().any(char::is_control) {
                request = request.header("Idempotency-Key", *key);
            }
        }
        let answer = if rng.below(6) == 0 {
            let raw: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            h.send(request.header("content-type", "application/json").body(raw))
                .await
        } else {
            h.send(request.json(&body)).await
        };
        assert!(
            answer.status.as_u16() < 500,
            "round {round}: {method} {path} {body} answered {}: {}",
            answer.status,
            answer.text
        );
        let after = h.count_links().await;
        if answer.status.as_u16() == 201 {
            created += 1;
            codes.push(answer.body["code"].as_str().unwrap().to_string());
            assert_eq!(after, before + 1);
        } else if path.ends_with("/bulk") && answer.status.as_u16() == 200 {
            assert_eq!(after, before + answer.body["created"].as_i64().unwrap());
        } else {
            assert_eq!(
                after, before,
                "round {round}: {method} {path} {body} added rows"
            );
        }
        // Every stored link still redirects to a clean http(s) Location.
        if answer.status.as_u16() == 201 {
            let code = answer.body["code"].as_str().unwrap();
            let follow = h.follow(code).await;
            let location = follow.header("location").unwrap();
            assert!(location.starts_with("http://") || location.starts_with("https://"));
            assert!(!location.chars().any(|c| c.is_control() || c == ' '));
        }
    }
    // Paths thrown at lookup.
    for _ in 0..200 {
        let len = rng.below(80);
        let segment: String = (0..len)
            .map(|_| *rng.pick(&['a', 'Z', '0', '-', '_', '.', '%', '2', 'F', '~', '!', '*']))
            .collect();
        let answer = h.follow(&segment).await;
        assert!(
            answer.status.as_u16() < 500,
            "/{segment}: {}",
            answer.status
        );
    }
    assert!(
        created > 0,
        "the generator should produce some valid links too"
    );
}
