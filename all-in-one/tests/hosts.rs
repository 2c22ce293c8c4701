//! `shortener hosts block|unblock|list` through the binary, against a running
//! all-in-one server on the same embedded SQLite file: the command cannot reach the
//! server's in-process events, so the server applies each change at its periodic
//! reload, and the test measures that bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod command;

use std::path::Path;
use std::time::{Duration, Instant};

use command::{db_url, shortener, stderr, stdout};
use common::config::{ServiceKind, Settings};
use serde_json::{Value, json};

/// `links.blocklist_reload` of the server under test, in seconds.
const RELOAD_SECS: u64 = 1;

fn settings(dir: &Path) -> Settings {
    let env = vec![
        ("SHORTENER__DATABASE__URL".to_string(), db_url(dir)),
        ("SHORTENER__HTTP__PORT".into(), "0".into()),
        ("SHORTENER__HTTP__WORKERS".into(), "1".into()),
        ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT".into(), "1s".into()),
        ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
        (
            "SHORTENER__LINKS__BLOCKLIST_RELOAD".into(),
            format!("{RELOAD_SECS}s"),
        ),
    ];
    Settings::load_from(ServiceKind::AllInOne, None, env).unwrap()
}

struct Server {
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn create(&self, url: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/links", self.base))
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap()
    }

    async fn link(&self, url: &str) -> String {
        let created = self.create(url).await;
        assert_eq!(created.status(), 201);
        let body: Value = created.json().await.unwrap();
        body["code"].as_str().unwrap().to_string()
    }

    async fn status(&self, code: &str) -> u16 {
        self.http
            .get(format!("{}/{code}", self.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Polls until `code` answers `status`; how long it took since `since`.
    async fn until(&self, code: &str, status: u16, since: Instant) -> Duration {
        // One reload period, plus the reload's query and a poll.
        let bound = Duration::from_secs(RELOAD_SECS) + Duration::from_millis(1500);
        loop {
            let now = self.status(code).await;
            if now == status {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < bound,
                "{code} still answers {now} after {:?}",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_commands_reach_a_running_server_by_its_reload() {
    let dir = tempfile::tempdir().unwrap();
    let server = shortener::start(settings(dir.path())).await.unwrap();
    let port = server.port();
    let s = Server {
        base: format!("http://127.0.0.1:{port}"),
        http: test_kit::http_client().unwrap(),
    };
    let phish = s.link("https://phish.example/login").await;
    let sub = s.link("https://m.phish.example/").await;
    let other = s.link("https://example.com/").await;
    for code in [&phish, &sub, &other] {
        assert_eq!(s.status(code).await, 302);
    }

    let started = Instant::now();
    let blocked = shortener(
        dir.path(),
        &[
            "hosts",
            "block",
            "PHISH.example",
            "--reason",
            "reported phishing",
        ],
    );
    assert!(blocked.status.success(), "{blocked:?}");
    assert_eq!(stdout(&blocked).trim(), "blocked phish.example");
    assert!(
        stderr(&blocked).contains("links.blocklist_reload"),
        "{}",
        stderr(&blocked)
    );

    let listed = shortener(dir.path(), &["hosts", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    let listed = stdout(&listed);
    let fields: Vec<&str> = listed.trim().split('\t').collect();
    assert_eq!(fields.len(), 3, "{listed}");
    assert_eq!(fields[0], "phish.example");
    assert!(fields[1].ends_with('Z'), "{listed}");
    assert_eq!(fields[2], "reported phishing");

    let took = s.until(&phish, 410, started).await;
    s.until(&sub, 410, started).await;
    eprintln!("block applied by the server after {took:?}");
    let blocked_answer = s
        .http
        .get(format!("{}/{phish}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked_answer.status(), 410);
    assert!(blocked_answer.headers().get("location").is_none());
    let problem: Value = blocked_answer.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/link-blocked");
    assert_eq!(s.status(&other).await, 302);
    let refused = s.create("https://new.phish.example/").await;
    assert_eq!(refused.status(), 422);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["type"], "/problems/invalid-url");

    // Idempotent, and refuses what is not a host.
    let again = shortener(dir.path(), &["hosts", "block", "phish.example"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(stdout(&again).trim(), "phish.example was already blocked");
    for bad in ["https://phish.example/login", "*.phish.example", ""] {
        let refused = shortener(dir.path(), &["hosts", "block", bad]);
        assert!(!refused.status.success(), "{bad:?} must be refused");
        assert!(!stderr(&refused).is_empty());
    }

    let started = Instant::now();
    let unblocked = shortener(dir.path(), &["hosts", "unblock", "phish.example"]);
    assert!(unblocked.status.success(), "{unblocked:?}");
    assert_eq!(stdout(&unblocked).trim(), "unblocked phish.example");
    s.until(&phish, 302, started).await;
    s.until(&sub, 302, started).await;
    let twice = shortener(dir.path(), &["hosts", "unblock", "phish.example"]);
    assert!(!twice.status.success());
    assert!(
        stderr(&twice).contains("phish.example is not blocked"),
        "{}",
        stderr(&twice)
    );
    let empty = shortener(dir.path(), &["hosts", "list"]);
    assert!(empty.status.success());
    assert_eq!(stdout(&empty), "");

    server.stop().await.unwrap();
}
