//! The local production stack (`scripts/stack`): every service as its own process
//! behind the repo's nginx. Requests reach the right service, the edge refuses what it
//! must without a 5xx, and a rolling restart of both lookup instances under load fails
//! no request and loses no click.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stack")
}

/// A stack in a temp dir, on free ports, with the debug binaries of this checkout.
/// Dropping it runs `scripts/stack down`, panics included.
struct Stack {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Stack {
    fn command(dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(script());
        command
            .args(args)
            .env("SHORTENER_STACK_DIR", dir.join("stack"))
            .env("STACK_PORTS", "auto")
            .env("STACK_PROFILE", "debug");
        command
    }

    fn run(dir: &Path, args: &[&str]) -> String {
        let out = Self::command(dir, args).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/stack {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn up() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let mut stack = Stack {
            dir,
            env: HashMap::new(),
        };
        Self::run(stack.dir.path(), &["up"]);
        stack.env = Self::run(stack.dir.path(), &["env"])
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        stack
    }

    fn port(&self, name: &str) -> u16 {
        self.env[name].parse().unwrap()
    }

    fn url(&self, name: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(name))
    }

    fn edge(&self, path: &str) -> String {
        self.url("PORT_NGINX", path)
    }

    fn stack(&self, args: &[&str]) -> String {
        Self::run(self.dir.path(), args)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Self::command(self.dir.path(), &["down"]).output();
    }
}

async fn metrics(http: &reqwest::Client, url: String) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// The request-latency count of one series, 0 when absent.
fn served(metrics: &str, route: &str, method: &str, status: u16) -> u64 {
    let prefix = format!(
        "shortener_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{status}\""
    );
    metrics
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Creates a link through the edge; the answer must be 201.
async fn create(http: &reqwest::Client, stack: &Stack, key: &str, url: &str) -> Value {
    let created = http
        .post(stack.edge("/api/v1/links"))
        .bearer_auth(key)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json().await.unwrap()
}

async fn total_when(
    http: &reqwest::Client,
    stack: &Stack,
    key: &str,
    code: &str,
    expected: i64,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats = test_kit::json_of(
            http.get(stack.edge(&format!("/api/v1/links/{code}/stats")))
                .bearer_auth(key),
        )
        .await;
        let total = stats["total"].as_i64().unwrap_or(-1);
        if total == expected || Instant::now() > deadline {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_routes_guards_and_rolls_without_errors() {
    let stack = Stack::up();
    let status = stack.stack(&["status"]);
    for name in ["create", "lookup-1", "lookup-2", "stats"] {
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(name) && l.ends_with("ready")),
            "{status}"
        );
    }
    let key = stack
        .stack(&["keys", "create", "--tenant", "stack-test"])
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let http = test_kit::http_client().unwrap();

    // Create, follow and stats through nginx, each answered by its own service.
    let created = create(&http, &stack, &key, "https://example.com/through-the-stack").await;
    let code = created["code"].as_str().unwrap().to_string();
    assert_eq!(
        created["short_url"],
        stack.edge(&format!("/{code}")),
        "short links point at the edge"
    );
    let follow = http
        .get(stack.edge(&format!("/{code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), StatusCode::FOUND);
    assert_eq!(
        follow.headers()["location"],
        "https://example.com/through-the-stack"
    );
    assert_eq!(total_when(&http, &stack, &key, &code, 1).await, 1);
    let create_metrics = metrics(&http, stack.url("PORT_CREATE", "/metrics")).await;
    assert_eq!(served(&create_metrics, "/api/v1/links", "POST", 201), 1);
    assert_eq!(served(&create_metrics, "/{code}", "GET", 302), 0);
    let mut redirects = 0;
    for lookup in ["PORT_LOOKUP_1", "PORT_LOOKUP_2"] {
        let m = metrics(&http, stack.url(lookup, "/metrics")).await;
        redirects += served(&m, "/{code}", "GET", 302);
        assert_eq!(served(&m, "/api/v1/links", "POST", 201), 0);
    }
    assert_eq!(redirects, 1);
    let stats_metrics = metrics(&http, stack.url("PORT_STATS", "/metrics")).await;
    assert!(served(&stats_metrics, "/api/v1/links/{code}/stats", "GET", 200) >= 1);

    // Two tenants, each with its own domain and the same alias: nginx passes the host
    // through, and each host follows to its own target.
    let other_key = stack
        .stack(&["keys", "create", "--tenant", "stack-other"])
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    for (key, domain) in [(&key, "go.acme.test"), (&other_key, "links.globex.test")] {
        let added = http
            .post(stack.edge("/api/v1/domains"))
            .bearer_auth(key)
            .json(&json!({ "name": domain, "scheme": "http" }))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), StatusCode::CREATED);
        let link = http
            .post(stack.edge("/api/v1/links"))
            .bearer_auth(key)
            .json(&json!({ "url": format!("https://{domain}.example/spring"),
                           "alias": "spring", "domain": domain }))
            .send()
            .await
            .unwrap();
        assert_eq!(link.status(), StatusCode::CREATED);
        let link: Value = link.json().await.unwrap();
        assert_eq!(link["short_url"], format!("http://{domain}/spring"));
    }
    for domain in ["go.acme.test", "links.globex.test"] {
        // Both lookup instances hear of the domains; any of them may answer.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut followed = 0;
        while followed < 4 {
            let answer = http
                .get(stack.edge("/spring"))
                .header("host", domain.to_uppercase())
                .send()
                .await
                .unwrap();
            if answer.status() == StatusCode::FOUND {
                assert_eq!(
                    answer.headers()["location"],
                    format!("https://{domain}.example/spring").as_str()
                );
                followed += 1;
            } else {
                assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{domain}");
                assert!(Instant::now() < deadline, "{domain} never served");
                followed = 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // The edge: oversized requests refused as problem+json, bursts limited, no 5xx.
    let long_uri = stack.edge(&format!("/{}", "a".repeat(20 * 1024)));
    let answer = http.get(long_uri).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::URI_TOO_LONG);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let answer = http
        .post(stack.edge("/api/v1/links"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let burst = futures_util::future::join_all((0..600).map(|_| {
        let http = http.clone();
        let url = stack.edge(&format!("/{code}"));
        async move { http.get(url).send().await.map(|r| r.status().as_u16()) }
    }))
    .await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for outcome in burst {
        *by_status.entry(outcome.unwrap()).or_default() += 1;
    }
    assert!(
        by_status.get(&429).copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&302).copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    assert!(by_status.keys().all(|s| *s < 500), "{by_status:?}");

    // Rolling restart of both lookup instances, one at a time, under load: a steady
    // 50 redirects/s (below the edge's per-address limit) for a fresh link.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rolled = create(&http, &stack, &key, "https://example.com/rolled").await;
    let rolled = rolled["code"].as_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let http = http.clone();
        let url = stack.edge(&format!("/{rolled}"));
        let stop = stop.clone();
        async move {
            let mut ok = 0i64;
            let mut failed = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                match http.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::FOUND => ok += 1,
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(format!("error {e}")),
                }
            }
            (ok, failed)
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for instance in ["lookup-1", "lookup-2"] {
        let dir = stack.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || Stack::run(&dir, &["restart", instance]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = load.await.unwrap();
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert!(ok > 100, "only {ok} redirects under load");
    assert_eq!(total_when(&http, &stack, &key, &rolled, ok).await, ok);
    let status = stack.stack(&["status"]);
    assert!(
        status
            .lines()
            .filter(|l| l.starts_with("lookup-") && l.ends_with("ready"))
            .count()
            == 2,
        "{status}"
    );
}
