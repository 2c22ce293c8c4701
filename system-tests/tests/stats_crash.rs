//! stats-service killed with SIGKILL again and again while applying batches: every
//! queued click is counted exactly once in the end.
//!
//! Applying a batch and deleting it from the queue commit in one transaction, so a
//! kill before the commit leaves the batch for the next run and a kill after it
//! ("after commit, before acknowledge") leaves nothing to apply twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::clicks::{ClickBatch, ClickCount, ClickKey, HOUR_MS};
use common::config::DatabaseSettings;
use common::db::{Database, clicks};
use sqlx::Row;

fn start(db_url: &str) -> Child {
    Command::new(test_kit::service_binary("stats-service"))
        .env("SHORTENER__DATABASE__URL", db_url)
        .env("SHORTENER__HTTP__BIND", "127.0.0.1")
        .env("SHORTENER__HTTP__PORT", "0")
        .env("SHORTENER__STATS__APPLY_BATCH", "3")
        .env("SHORTENER__STATS__POLL_INTERVAL", "20ms")
        .env("SHORTENER__TELEMETRY__FILTER", "error")
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_apply_never_loses_or_doubles() {
    let test_db = test_kit::bed().await.fresh_database().await;
    let settings = DatabaseSettings::direct(&test_db.primary_url, 4);
    let db = Database::connect(&settings).unwrap();
    db.migrate().await.unwrap();
    // 1500 batches over 12 codes, with uneven counts.
    let mut expected: HashMap<String, i64> = HashMap::new();
    let mut batches = Vec::new();
    for b in 0..1500u64 {
        let counts = (0..4)
            .map(|i| {
                let code = format!("code-{}", (b + i) % 12);
                let clicks = 1 + (b * 7 + i * 3) % 11;
                *expected.entry(code.clone()).or_default() += clicks as i64;
                ClickCount {
                    key: ClickKey {
                        code,
                        hour: HOUR_MS * (b as i64 % 5),
                        referrer: None,
                        user_agent: Some(format!("agent {}", b % 3)),
                        country: None,
                        route: None,
                    },
                    clicks,
                }
            })
            .collect();
        let batch = ClickBatch {
            batch_id: format!("test-{b}"),
            created_at: b as i64,
            counts,
            visitors: vec![],
        };
        clicks::enqueue(db.primary(), &batch).await.unwrap();
        batches.push(batch);
    }
    let total: i64 = expected.values().sum();

    let mut kills = 0;
    let mut waits = [180u64, 90, 250, 60, 140, 300, 75, 200, 110, 160].into_iter();
    while kills < 10 {
        let mut child = start(&test_db.primary_url);
        tokio::time::sleep(Duration::from_millis(waits.next().unwrap_or(100))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    let (left, _) = clicks::backlog(db.primary(), 0).await.unwrap();
    assert!(left > 0, "the kills should land before the queue is empty");

    let mut child = start(&test_db.primary_url);
    let deadline = Instant::now() + Duration::from_secs(60);
    while clicks::backlog(db.primary(), 0).await.unwrap().0 > 0 {
        assert!(Instant::now() < deadline, "queue never drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let rows = sqlx::query("SELECT code, clicks FROM click_totals")
        .fetch_all(db.primary())
        .await
        .unwrap();
    let counted: HashMap<String, i64> = rows
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect();
    assert_eq!(counted, expected, "per-code totals after {kills} kills");
    assert_eq!(counted.values().sum::<i64>(), total);
    let hours = sqlx::query("SELECT CAST(SUM(clicks) AS BIGINT) FROM click_hours")
        .fetch_one(db.primary())
        .await
        .unwrap();
    assert_eq!(hours.try_get::<i64, _>(0).unwrap(), total);
    assert_eq!(clicks::dead_count(db.primary()).await.unwrap(), 0);

    // Every batch sent a second time, as a lookup instance does when an insert
    // committed but its answer was lost: nothing is counted again.
    for batch in &batches {
        clicks::enqueue(db.primary(), batch).await.unwrap();
    }
    let (again, _) = clicks::backlog(db.primary(), 0).await.unwrap();
    assert_eq!(again, 0, "re-sent batches must not queue again");
    let mut child = start(&test_db.primary_url);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let recounted = sqlx::query("SELECT CAST(SUM(clicks) AS BIGINT) FROM click_totals")
        .fetch_one(db.primary())
        .await
        .unwrap();
    assert_eq!(recounted.try_get::<i64, _>(0).unwrap(), total);
    db.close().await;
}
