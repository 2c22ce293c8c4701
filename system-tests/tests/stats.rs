//! Click counting end to end: redirects through lookup, batches through the queue,
//! counters applied by stats-service, figures read back from the stats API — exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::Harness;

on_both_engines!(
    counts_are_exact_with_dimensions,
    stats_api_refuses_bad_requests,
    max_visits_answers_gone
);

async fn max_visits_answers_gone(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/limited", "max_visits": 5}))
        .await;
    let code = link["code"].as_str().unwrap();
    for _ in 0..5 {
        assert_eq!(h.follow(code).await.status, StatusCode::FOUND);
    }
    let gone = h.follow(code).await;
    gone.assert_problem(410, "link-gone");
    assert!(gone.text.contains("visit limit"), "{}", gone.text);
    let head = h
        .http
        .head(h.lookup_url(&format!("/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 410);
    // Once the visits are applied, an instance that never saw them refuses too,
    // as soon as its replica has replayed them (HEAD sees the limit without
    // spending a visit, so waiting for it changes nothing).
    stats_when(h, code, 5).await;
    let (port, _other) = h.add_lookup().await;
    let mut refused = false;
    for _ in 0..50 {
        let head = h
            .http
            .head(format!("http://127.0.0.1:{port}/{code}"))
            .send()
            .await
            .unwrap();
        if head.status() == 410 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a fresh instance never saw the applied visits");
    let fresh = h
        .http
        .get(format!("http://127.0.0.1:{port}/{code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 410);
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// The stats of `code` once `total` reaches `expected` (panics after 15 s).
async fn stats_when(h: &Harness, code: &str, expected: i64) -> Value {
    h.stats_when(code, expected, Duration::from_secs(15)).await
}

fn count(stats: &Value, dim: &str, value: &str) -> i64 {
    stats[dim]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == value)
        .map_or(0, |c| c["clicks"].as_i64().unwrap())
}

async fn counts_are_exact_with_dimensions(h: &Harness) {
    let link = h
        .create_link(json!({"url": "https://example.com/counted"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let other = h
        .create_link(json!({"url": "https://example.com/other"}))
        .await;
    let follow =
        |ua: &'static str, referer: Option<&'static str>, country: Option<&'static str>| {
            let mut request = h
                .http
                .get(h.lookup_url(&format!("/{code}")))
                .header("user-agent", ua);
            if let Some(referer) = referer {
                request = request.header("referer", referer);
            }
            if let Some(country) = country {
                request = request.header("cf-ipcountry", country);
            }
            async move {
                let answer = request.send().await.unwrap();
                assert_eq!(answer.status(), 302);
            }
        };
    for _ in 0..20 {
        follow(FIREFOX, Some("https://news.example.org/story"), Some("DE")).await;
    }
    for _ in 0..15 {
        follow(IPHONE, None, Some("fr")).await;
    }
    for _ in 0..5 {
        follow(GOOGLEBOT, Some("https://www.google.com/"), None).await;
    }
    // Not counted: HEAD requests, other links' clicks.
    for _ in 0..3 {
        let head = h
            .http
            .head(h.lookup_url(&format!("/{code}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 302);
    }
    h.follow(other["code"].as_str().unwrap()).await;

    let stats = stats_when(h, code, 40).await;
    assert_eq!(stats["bots"], 5);
    assert_eq!(count(&stats, "referrers", "news.example.org"), 20);
    assert_eq!(count(&stats, "referrers", "www.google.com"), 5);
    assert_eq!(count(&stats, "referrers", "(direct)"), 15);
    assert_eq!(count(&stats, "browsers", "Firefox"), 20);
    assert_eq!(count(&stats, "browsers", "Safari"), 15);
    assert_eq!(count(&stats, "os", "Linux"), 20);
    assert_eq!(count(&stats, "os", "iPhone"), 15);
    assert_eq!(count(&stats, "devices", "Desktop"), 20);
    assert_eq!(count(&stats, "devices", "Mobile"), 15);
    assert_eq!(count(&stats, "devices", "Bot"), 5);
    assert_eq!(count(&stats, "countries", "DE"), 20);
    assert_eq!(count(&stats, "countries", "FR"), 15);
    assert_eq!(count(&stats, "countries", "(unknown)"), 5);
    // One address, three user agents: three visitors today.
    assert_eq!(stats["unique_visitors"], 3);
    let series: i64 = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["clicks"].as_i64().unwrap())
        .sum();
    assert_eq!(series, 40);
    // Settled: nothing more arrives.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stats_when(h, code, 40).await["total"], 40);
    // Every applied batch reported how long it waited in the queue.
    let delay = "shortener_stats_batch_delay_seconds";
    let batches = h.metric(h.stats_port, &format!("{delay}_count")).await;
    let waited = h.metric(h.stats_port, &format!("{delay}_sum")).await;
    assert!(batches >= 1.0, "no batch delay observed");
    assert!(waited / batches < 10.0, "{waited} s over {batches} batches");

    let csv = h
        .send(
            h.http
                .get(h.stats_url(&format!("/api/v1/links/{code}/stats?granularity=day")))
                .bearer_auth(&h.key)
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.text.starts_with("timestamp,clicks\n"), "{}", csv.text);
    let csv_total: i64 = csv
        .text
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(csv_total, 40);
}

async fn stats_api_refuses_bad_requests(h: &Harness) {
    let link = h.create_link(json!({"url": "https://example.com/s"})).await;
    let code = link["code"].as_str().unwrap();
    let get = |path: String, key: Option<String>| {
        let mut request = h.http.request(Method::GET, h.stats_url(&path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        h.send(request)
    };
    let mine = Some(h.key.clone());
    get(format!("/api/v1/links/{code}/stats"), None)
        .await
        .assert_problem(401, "unauthorized");
    get(
        format!("/api/v1/links/{code}/stats"),
        Some(h.other_key.clone()),
    )
    .await
    .assert_problem(404, "not-found");
    get("/api/v1/links/no-such-link/stats".into(), mine.clone())
        .await
        .assert_problem(404, "not-found");
    for query in [
        "granularity=minute",
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&granularity=hour",
        "colour=red",
    ] {
        get(format!("/api/v1/links/{code}/stats?{query}"), mine.clone())
            .await
            .assert_problem(400, "invalid-query");
    }
    let ok = get(format!("/api/v1/links/{code}/stats"), mine).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["total"], 0);
    assert_eq!(ok.body["granularity"], "day");
}

/// stats-service down for 60 s under redirect load: the batches wait in the queue and,
/// once it is back, every click is counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_service_down_a_minute_loses_nothing() {
    let mut h = Harness::postgres(&[]).await;
    h.stats_service.stop_appliers().await;
    let link = h
        .create_link(json!({"url": "https://example.com/busy"}))
        .await;
    let code = link["code"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let http = h.http.clone();
            let url = h.lookup_url(&format!("/{code}"));
            tokio::spawn(async move {
                let mut ok = 0i64;
                while std::time::Instant::now() < deadline {
                    if http.get(&url).send().await.unwrap().status() == 302 {
                        ok += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(4)).await;
                }
                ok
            })
        })
        .collect();
    let mut answered = 0;
    for worker in workers {
        answered += worker.await.unwrap();
    }
    let (waiting, lag_ms) = common::db::clicks::backlog(h.db.primary(), common::time::now_ms())
        .await
        .unwrap();
    assert!(
        waiting > 30,
        "batches should pile up while stats is down: {waiting}"
    );
    assert!(lag_ms > 30_000, "oldest batch waited {lag_ms} ms");
    let settings = common::config::Settings::load_from(
        common::config::ServiceKind::Stats,
        None,
        h.env.clone(),
    )
    .unwrap();
    let metrics = common::metrics::Metrics::new("stats-restarted");
    let restarted = common::background::Background::new();
    stats_service::consumer::start(
        &h.db,
        &settings.stats,
        stats_service::consumer::ConsumerMetrics::new(&metrics),
        &restarted.group(),
        &restarted,
    );
    h.restarted_appliers = Some(restarted);
    eprintln!("{answered} clicks while stats-service was down; {waiting} batches waited");
    let stats = stats_when(&h, &code, answered).await;
    assert_eq!(stats["total"], answered);
    h.stop().await;
}
