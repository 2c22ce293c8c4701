//! Every service binary serves HTTP with exactly `http.workers` workers (counted as
//! the process's actix worker threads).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Not the default on any machine this runs on (one worker per CPU).
const WORKERS: usize = 5;

fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        // "actix-server worker N", cut to the kernel's 15 characters.
        .filter(|name| name.starts_with("actix-server wo"))
        .count()
}

struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_runs_the_configured_workers() {
    let http = test_kit::http_client().unwrap();
    for binary in ["create-service", "lookup-service", "stats-service"] {
        let dir = tempfile::tempdir().unwrap();
        let port = test_kit::free_port();
        let child = Command::new(test_kit::service_binary(binary))
            .env(
                "SHORTENER__DATABASE__URL",
                format!("sqlite://{}/w.db?mode=rwc", dir.path().display()),
            )
            .env("SHORTENER__DATABASE__MIGRATE_ON_START", "true")
            .env("SHORTENER__IDS__CODE_KEY", "workers-test-code-key-0123")
            .env("SHORTENER__HTTP__BIND", "127.0.0.1")
            .env("SHORTENER__HTTP__PORT", port.to_string())
            .env("SHORTENER__HTTP__WORKERS", WORKERS.to_string())
            .env("SHORTENER__TELEMETRY__FILTER", "error")
            .spawn()
            .unwrap();
        let child = Stopped(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "{binary} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(worker_threads(child.0.id()), WORKERS, "{binary}");
    }
}
