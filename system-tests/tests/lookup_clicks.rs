//! lookup-service as a real process under redirect load: SIGTERM fails readiness at
//! once, keeps serving through the drain delay and flushes every click it answered;
//! SIGKILL loses at most the clicks of one flush interval, and the test reports how
//! many.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::config::DatabaseSettings;
use common::db::Database;
use common::db::links::{LinkRecord, insert_one};
use common::ids::{CodeCodec, SnowflakeId};
use sqlx::Row;

const KEY: &str = "click-test-code-key-0123456789";
const FLUSH_MS: u64 = 500;

fn start(db_url: &str, port: u16) -> Child {
    start_with(db_url, port, &[])
}

fn start_with(db_url: &str, port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(test_kit::service_binary("lookup-service"))
        .envs(env.iter().copied())
        .env("SHORTENER__DATABASE__URL", db_url)
        .env("SHORTENER__HTTP__BIND", "127.0.0.1")
        .env("SHORTENER__HTTP__PORT", port.to_string())
        .env("SHORTENER__HTTP__WORKERS", "2")
        .env("SHORTENER__IDS__CODE_KEY", KEY)
        .env("SHORTENER__STATS__FLUSH_INTERVAL", format!("{FLUSH_MS}ms"))
        .env("SHORTENER__TELEMETRY__FILTER", "error")
        .spawn()
        .unwrap()
}

/// Stops `child` the way an orchestrator does.
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn queued(db: &Database) -> i64 {
    let row = sqlx::query("SELECT CAST(COALESCE(SUM(clicks), 0) AS BIGINT) FROM click_batches")
        .fetch_one(db.primary())
        .await
        .unwrap();
    row.try_get(0).unwrap()
}

/// Follows `codes` from 16 tasks until `stop`; returns the number of 302s received.
fn load(port: u16, codes: Arc<Vec<String>>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let http = test_kit::http_client().unwrap();
        let ok = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (http, codes, stop, ok) =
                    (http.clone(), codes.clone(), stop.clone(), ok.clone());
                tokio::spawn(async move {
                    let mut i = t;
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let code = &codes[i % codes.len()];
                        i += 1;
                        if let Ok(r) = http
                            .get(format!("http://127.0.0.1:{port}/{code}"))
                            .send()
                            .await
                            && r.status() == 302
                        {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        ok.load(Ordering::Relaxed)
    })
}

async fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "lookup-service did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connects to `url`, migrates, and stores 20 links an hour old; returns their codes.
async fn seed(url: &str) -> (Database, Arc<Vec<String>>) {
    let db = Database::connect(&DatabaseSettings::direct(url, 4)).unwrap();
    db.migrate().await.unwrap();
    let codec = CodeCodec::new(KEY.as_bytes());
    let now = common::time::now_ms();
    let mut codes = Vec::new();
    for i in 0..20u64 {
        let raw = ((now as u64 - common::ids::EPOCH_MS - 3_600_000) << 22) | i;
        let id = SnowflakeId::from_u64(raw).unwrap();
        let code = codec.encode(id).as_str().to_string();
        let record = LinkRecord {
            domain: None,
            code: common::link::LinkCode::from(codec.encode(id)),
            id: raw as i64,
            tenant_id: common::link::TenantId::named("t").expect("valid"),
            url: format!("https://example.com/{i}"),
            redirect_status: common::link::RedirectStatus::Found,
            tags: vec![],
            max_visits: None,
            expires_at: None,
            created_at: now - 3_600_000,
            updated_at: now - 3_600_000,
            disabled_at: None,
            deleted_at: None,
            routing: Default::default(),
        };
        assert!(insert_one(db.primary(), &record).await.unwrap());
        codes.push(code);
    }
    (db, Arc::new(codes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_every_click_and_sigkill_loses_at_most_one_interval() {
    let test_db = test_kit::bed().await.fresh_database().await;
    let (db, codes) = seed(&test_db.primary_url).await;

    // SIGTERM under load: every answered click is queued.
    let port = test_kit::free_port();
    let child = start(&test_db.primary_url, port);
    wait_ready(port).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = load(port, codes.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(2300)).await;
    sigterm(&child);
    let mut child = child;
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let answered = sent.await.unwrap();
    assert!(exit.success(), "lookup exited with {exit:?}");
    assert!(answered > 500, "load too small: {answered}");
    assert_eq!(
        queued(&db).await,
        answered as i64,
        "clicks queued after SIGTERM"
    );

    // SIGKILL under load: what was buffered since the last flush is lost, no more.
    let before = queued(&db).await;
    let port = test_kit::free_port();
    let mut child = start(&test_db.primary_url, port);
    wait_ready(port).await;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sent = load(port, codes.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(2700)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let answered = sent.await.unwrap();
    let kept = queued(&db).await - before;
    let lost = answered as i64 - kept;
    let rate = answered as f64 / elapsed.as_secs_f64();
    let one_interval = (rate * FLUSH_MS as f64 / 1000.0).ceil() as i64;
    eprintln!(
        "SIGKILL: {answered} clicks answered, {kept} queued, {lost} lost \
         (one {FLUSH_MS} ms flush interval at {rate:.0}/s is {one_interval})"
    );
    assert!(lost >= 0, "more clicks queued than answered");
    // One interval, plus the slack of a flush in flight when the kill landed.
    assert!(
        lost <= one_interval * 2,
        "lost {lost}, one interval is {one_interval}"
    );
    db.close().await;
}

/// SIGTERM with a drain delay: readiness answers 503 "draining" at once while
/// redirects are still served, then the process exits cleanly, clicks queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_then_drains() {
    let test_db = test_kit::bed().await.fresh_database().await;
    let (db, codes) = seed(&test_db.primary_url).await;
    let port = test_kit::free_port();
    let mut child = start_with(
        &test_db.primary_url,
        port,
        &[("SHORTENER__HTTP__DRAIN_DELAY", "1500ms")],
    );
    wait_ready(port).await;
    let http = test_kit::http_client().unwrap();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let ready = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    assert_eq!(
        http.get(url(&format!("/{}", codes[0])))
            .send()
            .await
            .unwrap()
            .status(),
        302
    );

    let signalled = Instant::now();
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let draining = http.get(url("/readyz")).send().await.unwrap();
    assert_eq!(draining.status(), 503);
    let body: serde_json::Value = draining.json().await.unwrap();
    assert_eq!(body["status"], "draining");
    // Still serving: load balancers that read readiness move away first.
    assert_eq!(
        http.get(url(&format!("/{}", codes[1])))
            .send()
            .await
            .unwrap()
            .status(),
        302
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "lookup exited with {exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "stopped before the drain delay ran out"
    );
    assert_eq!(queued(&db).await, 2, "both redirects counted");
    db.close().await;
}

/// The queue (the primary) down for three seconds under load: lookup keeps answering
/// from its cache, holds the batches, and queues every click once the primary is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_outage_loses_nothing() {
    let pg = test_kit::PgCluster::start().await.unwrap();
    let url = pg.primary_url("postgres");
    let (seeding, codes) = seed(&url).await;
    seeding.close().await;
    let port = test_kit::free_port();
    let mut child = start(&url, port);
    wait_ready(port).await;
    // Warm the cache so redirects need no database during the outage.
    let http = test_kit::http_client().unwrap();
    for code in codes.iter() {
        let r = http
            .get(format!("http://127.0.0.1:{port}/{code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = load(port, codes.clone(), stop.clone());
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.kill_primary().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_primary().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let answered = sent.await.unwrap() + codes.len() as u64;
    // Stop the way an orchestrator does, so the last buffer is flushed too.
    sigterm(&child);
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success());
    let db = Database::connect(&DatabaseSettings::direct(&url, 2)).unwrap();
    let kept = queued(&db).await;
    eprintln!("queue outage: {answered} clicks answered, {kept} queued");
    assert_eq!(kept, answered as i64);
    drop(pg);
}
