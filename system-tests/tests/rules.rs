//! Redirect rules, split tests and query forwarding switches, on SQLite and on
//! PostgreSQL: each visitor reaches the target their device, OS, language or country
//! picks, variants split visitors by weight and keep each on one, stats file every
//! click under what answered it, and bad lists are refused naming the element.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Answer, Harness};

on_both_engines!(
    each_visitor_reaches_the_target_their_rule_picks,
    variants_split_by_weight_and_keep_each_visitor,
    forwarding_is_switched_per_link_and_per_domain,
    bad_rules_and_variants_are_named_and_change_nothing,
);

const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const PIXEL: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const GALAXY_TAB: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

/// Follows `/{code}` with `headers`; the answer's `Location`.
async fn location(h: &Harness, code: &str, headers: &[(&str, &str)]) -> String {
    let answer = visit(h, &format!("/{code}"), headers).await;
    assert_eq!(answer.status, 302, "{}", answer.text);
    answer.header("location").unwrap().to_string()
}

async fn visit(h: &Harness, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = h.http.get(h.lookup_url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    h.send(request).await
}

/// The stats of `code` once `total` reaches `expected` (panics after 20 s).
async fn stats_when(h: &Harness, code: &str, expected: i64) -> Value {
    h.stats_when(code, expected, std::time::Duration::from_secs(20))
        .await
}

fn routes(stats: &Value) -> HashMap<String, i64> {
    stats["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().to_string(),
                c["clicks"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn each_visitor_reaches_the_target_their_rule_picks(h: &Harness) {
    let link = h
        .create_link(json!({
            "url": "https://example.com/default",
            "alias": "ruled",
            "rules": [
                {"when": {"device": "tablet"}, "url": "https://example.com/tablet"},
                {"when": {"os": ["android", "ios"]}, "url": "https://example.com/app"},
                {"when": {"language": "de"}, "url": "https://example.com/de"},
                {"when": {"country": ["fr", "BE"]}, "url": "https://example.com/fr"},
                {"when": {"device": "desktop", "language": "pt-BR"}, "url": "https://example.com/br"},
            ],
        }))
        .await;
    // Shown as stored: every `when` value a list, countries uppercase.
    assert_eq!(link["rules"][0]["when"], json!({"device": ["tablet"]}));
    assert_eq!(link["rules"][3]["when"], json!({"country": ["FR", "BE"]}));
    assert_eq!(link["variants"], json!([]));
    assert_eq!(link["forward_query"], true);
    let got = h.get_as(&h.key, "/api/v1/links/ruled").await;
    assert_eq!(got.body["rules"], link["rules"]);

    let cases: [(&[(&str, &str)], &str); 9] = [
        (&[("user-agent", IPAD)], "tablet"),
        // A tablet running Android: the first rule that matches wins.
        (&[("user-agent", GALAXY_TAB)], "tablet"),
        (&[("user-agent", PIXEL)], "app"),
        (
            &[
                ("user-agent", FIREFOX),
                ("accept-language", "de-AT,en;q=0.5"),
            ],
            "de",
        ),
        // Only the most preferred language counts.
        (
            &[("user-agent", FIREFOX), ("accept-language", "en, de;q=0.9")],
            "default",
        ),
        (&[("user-agent", FIREFOX), ("cf-ipcountry", "be")], "fr"),
        (
            &[("user-agent", FIREFOX), ("accept-language", "pt-BR")],
            "br",
        ),
        (
            &[("user-agent", FIREFOX), ("accept-language", "pt-PT")],
            "default",
        ),
        (&[], "default"),
    ];
    for (headers, target) in cases {
        assert_eq!(
            location(h, "ruled", headers).await,
            format!("https://example.com/{target}"),
            "{headers:?}"
        );
    }
    // A rule's target takes the visitor's query like the link's own URL.
    assert_eq!(
        location(h, "ruled?utm_source=x", &[("user-agent", PIXEL)]).await,
        "https://example.com/app?utm_source=x"
    );

    // Stats file each click under what answered it.
    let stats = stats_when(h, "ruled", 10).await;
    let routes = routes(&stats);
    assert_eq!(routes.get("rules[0]"), Some(&2), "{routes:?}");
    assert_eq!(routes.get("rules[1]"), Some(&2), "{routes:?}");
    assert_eq!(routes.get("rules[2]"), Some(&1), "{routes:?}");
    assert_eq!(routes.get("rules[3]"), Some(&1), "{routes:?}");
    assert_eq!(routes.get("rules[4]"), Some(&1), "{routes:?}");
    assert_eq!(routes.get("url"), Some(&3), "{routes:?}");

    // Rules replaced by an edit apply at once; `[]` removes them.
    let edit = h
        .patch_as(&h.key, "/api/v1/links/ruled", json!({"rules": []}))
        .await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert_eq!(edit.body["rules"], json!([]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while location(h, "ruled", &[("user-agent", IPAD)]).await != "https://example.com/default" {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn variants_split_by_weight_and_keep_each_visitor(h: &Harness) {
    let link = h
        .create_link(json!({
            "url": "https://example.com/control",
            "alias": "split",
            "rules": [{"when": {"device": "bot"}, "url": "https://example.com/bots"}],
            "variants": [
                {"url": "https://example.com/a", "weight": 50},
                {"url": "https://example.com/b", "weight": 30},
                {"url": "https://example.com/c", "weight": 20},
            ],
        }))
        .await;
    assert_eq!(
        link["variants"][1],
        json!({"url": "https://example.com/b", "weight": 30})
    );

    // 10,000 visitors (a visitor is an address and a user agent for the day).
    const VISITORS: usize = 10_000;
    let seen: Vec<String> = futures_util::stream::iter(0..VISITORS)
        .map(|i| async move {
            let agent = format!("Mozilla/5.0 (X11; Linux x86_64) visitor/{i}");
            location(h, "split", &[("user-agent", &agent)]).await
        })
        .buffered(32)
        .collect()
        .await;
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for target in &seen {
        *counts.entry(target.as_str()).or_default() += 1;
    }
    for (target, share) in [("a", 0.50), ("b", 0.30), ("c", 0.20)] {
        let got = counts[format!("https://example.com/{target}").as_str()] as f64;
        let expected = share * VISITORS as f64;
        assert!(
            (got - expected).abs() <= 0.03 * VISITORS as f64,
            "{target}: {got} of {VISITORS} ({counts:?})"
        );
    }
    // Each visitor keeps their variant.
    for (i, first) in seen.iter().enumerate().take(200) {
        let agent = format!("Mozilla/5.0 (X11; Linux x86_64) visitor/{i}");
        assert_eq!(
            &location(h, "split", &[("user-agent", &agent)]).await,
            first
        );
    }
    // Rules come before the split.
    assert_eq!(
        location(h, "split", &[("user-agent", "Googlebot/2.1")]).await,
        "https://example.com/bots"
    );

    // Stats count what each visitor was sent to, exactly.
    let total = (VISITORS + 200 + 1) as i64;
    let stats = stats_when(h, "split", total).await;
    let routes = routes(&stats);
    let mut expected: HashMap<String, i64> = HashMap::new();
    for (i, target) in seen.iter().enumerate() {
        let index = ["a", "b", "c"]
            .iter()
            .position(|v| target.ends_with(&format!("/{v}")))
            .unwrap();
        let repeats = if i < 200 { 2 } else { 1 };
        *expected.entry(format!("variants[{index}]")).or_default() += repeats;
    }
    expected.insert("rules[0]".into(), 1);
    assert_eq!(routes, expected);
    assert_eq!(stats["unique_visitors"], (VISITORS + 1) as i64);
}

async fn forwarding_is_switched_per_link_and_per_domain(h: &Harness) {
    h.create_link(json!({
        "url": "https://example.com/closed?src=qr",
        "alias": "closed",
        "forward_query": false,
    }))
    .await;
    assert_eq!(
        location(h, "closed?utm_source=mail", &[]).await,
        "https://example.com/closed?src=qr"
    );
    let edit = h
        .patch_as(
            &h.key,
            "/api/v1/links/closed",
            json!({"forward_query": true}),
        )
        .await;
    assert_eq!(edit.body["forward_query"], true, "{}", edit.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while location(h, "closed?utm_source=mail", &[]).await
        != "https://example.com/closed?src=qr&utm_source=mail"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // A domain whose links keep their query by default; a link may still ask.
    let domain = h
        .add_domain(
            &h.key,
            json!({"name": "go.fwd.example", "forward_query": false}),
        )
        .await;
    assert_eq!(domain.status, 201, "{}", domain.text);
    assert_eq!(domain.body["forward_query"], false);
    let quiet = h
        .create_link(
            json!({"url": "https://example.com/q", "alias": "quiet", "domain": "go.fwd.example"}),
        )
        .await;
    assert_eq!(quiet["forward_query"], false);
    let loud = h
        .create_link(json!({
            "url": "https://example.com/l", "alias": "loud", "domain": "go.fwd.example",
            "forward_query": true,
        }))
        .await;
    assert_eq!(loud["forward_query"], true);
    let quiet = h
        .follow_host_until("go.fwd.example", "/quiet?x=1", |a| a.status == 302)
        .await;
    assert_eq!(quiet.header("location"), Some("https://example.com/q"));
    let loud = h.follow_host("go.fwd.example", "/loud?x=1").await;
    assert_eq!(loud.header("location"), Some("https://example.com/l?x=1"));
    // The default domain's links still forward.
    let plain = h.create_link(json!({"url": "https://example.com/p"})).await;
    assert_eq!(plain["forward_query"], true);
}

async fn bad_rules_and_variants_are_named_and_change_nothing(h: &Harness) {
    let before = h.count_links().await;
    let create = |body: Value| async move {
        h.api(Method::POST, "/api/v1/links", Some(&h.key), Some(body))
            .await
    };
    let fields = |answer: &Answer| -> Vec<String> {
        answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_string())
            .collect()
    };
    let answer = create(json!({
        "url": "https://example.com/",
        "rules": [
            {"when": {"os": "ios"}, "url": "https://example.com/ok"},
            {"when": {"planet": "mars"}, "url": "https://example.com/"},
            {"when": {"language": "english"}, "url": "https://example.com/"},
            {"when": {"country": "XX"}, "url": "javascript:alert(1)"},
            {"when": {"device": "fridge"}, "url": "https://example.com/"},
        ],
    }))
    .await;
    answer.assert_problem(422, "invalid-rules");
    assert_eq!(
        fields(&answer),
        [
            "rules[1].when.planet",
            "rules[2].when.language",
            "rules[3].when.country",
            "rules[3].url",
            "rules[4].when.device",
        ]
    );
    let answer = create(json!({
        "url": "https://example.com/",
        "variants": [
            {"url": "https://example.com/a", "weight": 70},
            {"url": "https://example.com/b", "weight": 20},
        ],
    }))
    .await;
    answer.assert_problem(422, "invalid-variants");
    assert!(answer.text.contains("sum to 90"), "{}", answer.text);
    let answer = create(json!({
        "url": "https://example.com/",
        "variants": [{"url": "https://example.com/a", "weight": 101}],
    }))
    .await;
    assert_eq!(fields(&answer), ["variants[0].weight"]);
    let too_many = vec![json!({"when": {"os": "ios"}, "url": "https://example.com/"}); 21];
    let answer = create(json!({"url": "https://example.com/", "rules": too_many})).await;
    answer.assert_problem(422, "invalid-rules");
    let eleven = vec![json!({"url": "https://example.com/", "weight": 1}); 11];
    let answer = create(json!({"url": "https://example.com/", "variants": eleven})).await;
    answer.assert_problem(422, "invalid-variants");
    assert_eq!(h.count_links().await, before, "nothing was created");

    // A bad edit leaves the link as it was.
    h.create_link(json!({
        "url": "https://example.com/",
        "alias": "steady",
        "rules": [{"when": {"os": "ios"}, "url": "https://example.com/ios"}],
    }))
    .await;
    let answer = h
        .patch_as(
            &h.key,
            "/api/v1/links/steady",
            json!({"rules": [{"when": {}, "url": "https://example.com/"}], "forward_query": false}),
        )
        .await;
    answer.assert_problem(422, "invalid-rules");
    assert_eq!(fields(&answer), ["rules[0].when"]);
    let got = h.get_as(&h.key, "/api/v1/links/steady").await;
    assert_eq!(got.body["rules"][0]["url"], "https://example.com/ios");
    assert_eq!(got.body["forward_query"], true);
}
