//! The all-in-one on SQLite writes through one path: every write transaction takes
//! the write lock at its start, so the README's first steps and a burst of concurrent
//! creates and follows (creates, click batches, the stats appliers and the change
//! relay writing at once) meet no "database is locked" failure and no retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use common::config::{ServiceKind, Settings};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lock_failures_under_the_readme_flow_and_200_concurrent_creates_and_follows() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "SHORTENER__DATABASE__URL".to_string(),
            format!("sqlite://{}/shortener.db?mode=rwc", dir.path().display()),
        ),
        ("SHORTENER__HTTP__PORT".into(), "0".into()),
        ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT".into(), "1s".into()),
        ("SHORTENER__STATS__FLUSH_INTERVAL".into(), "100ms".into()),
        ("SHORTENER__STATS__POLL_INTERVAL".into(), "10ms".into()),
        // The burst comes from one address; limits are not what this is about.
        ("SHORTENER__RATE_LIMIT__ENABLED".into(), "false".into()),
        ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
    ];
    let settings = Settings::load_from(ServiceKind::AllInOne, None, env).unwrap();
    let server = shortener::start(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", server.port());
    let http = test_kit::http_client().unwrap();

    // The README's first steps: create, follow twice, read the stats.
    let created = test_kit::json_of(
        http.post(format!("{base}/api/v1/links"))
            .json(&json!({"url": "https://example.com/"})),
    )
    .await;
    let code = created["code"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let follow = http.get(format!("{base}/{code}")).send().await.unwrap();
        assert_eq!(follow.status(), 302);
    }
    let total = |code: String| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let stats =
                test_kit::json_of(http.get(format!("{base}/api/v1/links/{code}/stats"))).await;
            stats["total"].as_i64().unwrap_or(-1)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while total(code.clone()).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the two follows were not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 200 clients at once, each creating a link and following it.
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let created = http
                    .post(format!("{base}/api/v1/links"))
                    .json(&json!({"url": format!("https://example.com/burst/{i}")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(created.status(), 201);
                let created: Value = created.json().await.unwrap();
                let code = created["code"].as_str().unwrap().to_string();
                let follow = http.get(format!("{base}/{code}")).send().await.unwrap();
                assert_eq!(follow.status(), 302);
                code
            })
        })
        .collect();
    let mut codes = Vec::new();
    for client in clients {
        codes.push(client.await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for code in codes {
        while total(code.clone()).await != 1 {
            assert!(Instant::now() < deadline, "a burst follow was not counted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A lock refusal is an "unavailable" database error wherever it happens.
    assert_eq!(
        test_kit::metric_sum(&text, "shortener_db_errors_total", "kind=\"unavailable\""),
        0.0,
        "database calls refused (locked)"
    );
    assert_eq!(
        test_kit::metric_sum(&text, "shortener_stats_apply_failures_total", ""),
        0.0,
        "apply rounds retried"
    );
    assert_eq!(
        test_kit::metric_sum(&text, "shortener_link_change_relay_errors_total", ""),
        0.0,
        "relay rounds retried"
    );
    server.stop().await.unwrap();
}
