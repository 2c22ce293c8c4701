//! The all-in-one server on embedded SQLite: one port serves the API, the redirects
//! and the operational routes; the `keys` subcommand mints working keys; links survive
//! a restart (the code key persists beside the database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use common::config::{ServiceKind, Settings};
use serde_json::json;

fn settings(dir: &Path) -> Settings {
    let env = vec![
        (
            "SHORTENER__DATABASE__URL".to_string(),
            format!("sqlite://{}/shortener.db?mode=rwc", dir.display()),
        ),
        ("SHORTENER__HTTP__PORT".into(), "0".into()),
        ("SHORTENER__HTTP__WORKERS".into(), "1".into()),
        ("SHORTENER__HTTP__SHUTDOWN_TIMEOUT".into(), "1s".into()),
        ("SHORTENER__TELEMETRY__FILTER".into(), "error".into()),
    ];
    Settings::load_from(ServiceKind::AllInOne, None, env).unwrap()
}

async fn start(dir: &Path) -> (u16, common::server::Running) {
    let server = shortener::start(settings(dir)).await.unwrap();
    (server.port(), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_create_follow_and_ops() {
    let dir = tempfile::tempdir().unwrap();
    let (port, server) = start(dir.path()).await;
    let http = test_kit::http_client().unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Anonymous creation is on in the embedded default.
    let created = test_kit::json_of(
        http.post(format!("{base}/api/v1/links"))
            .json(&json!({"url": "https://example.com/embedded"})),
    )
    .await;
    let code = created["code"].as_str().unwrap();
    assert_eq!(
        created["short_url"],
        format!("http://127.0.0.1:8080/{code}")
    );
    let follow = http.get(format!("{base}/{code}")).send().await.unwrap();
    assert_eq!(follow.status(), 302);
    assert_eq!(
        follow.headers()["location"].to_str().unwrap(),
        "https://example.com/embedded"
    );

    // Fixed paths are not shadowed by `/{code}`.
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/api/v1/openapi.json", 200),
        ("/api/v1/links", 401),
        ("/nosuchcode", 404),
    ] {
        let answer = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
    }
    // Links to the server itself are refused.
    let own = http
        .post(format!("{base}/api/v1/links"))
        .json(&json!({"url": "http://127.0.0.1:8080/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 422);
    server.stop().await.unwrap();

    // Restart on the same data directory: the link and its code still work.
    let (port, server) = start(dir.path()).await;
    let follow = http
        .get(format!("http://127.0.0.1:{port}/{code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(follow.status(), 302);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_prints_a_working_key_last() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shortener.db?mode=rwc", dir.path().display());
    let output = Command::new(env!("CARGO_BIN_EXE_shortener"))
        .args(["keys", "create", "--tenant", "demo"])
        .env("SHORTENER__DATABASE__URL", &db_url)
        .env("SHORTENER__TELEMETRY__FILTER", "error")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap().trim().to_string();
    assert!(
        key.starts_with("sk_") && key.len() == 46,
        "last line: {key}"
    );

    let list = Command::new(env!("CARGO_BIN_EXE_shortener"))
        .args(["keys", "list"])
        .env("SHORTENER__DATABASE__URL", &db_url)
        .env("SHORTENER__TELEMETRY__FILTER", "error")
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains("demo") && listed.contains("active"));
    assert!(!listed.contains(&key), "keys are never shown again");

    let (port, server) = start(dir.path()).await;
    let http = test_kit::http_client().unwrap();
    let created = http
        .post(format!("http://127.0.0.1:{port}/api/v1/links"))
        .bearer_auth(&key)
        .json(&json!({"url": "https://example.com/keyed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mine = test_kit::json_of(
        http.get(format!("http://127.0.0.1:{port}/api/v1/links"))
            .bearer_auth(&key),
    )
    .await;
    assert_eq!(mine["items"][0]["url"], "https://example.com/keyed");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_codes_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let key = shortener::create_key(
        settings(dir.path()),
        "demo",
        "qr",
        common::domain::access::Grant::Role(common::domain::access::Role::Owner),
    )
    .await
    .unwrap();
    let (port, server) = start(dir.path()).await;
    let http = test_kit::http_client().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let created = test_kit::json_of(
        http.post(format!("{base}/api/v1/links"))
            .bearer_auth(&key)
            .json(&json!({"url": "https://example.com/poster"})),
    )
    .await;
    let qr = format!(
        "{base}/api/v1/links/{}/qr",
        created["code"].as_str().unwrap()
    );

    let png = http.get(&qr).bearer_auth(&key).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));
    let svg = http
        .get(format!("{qr}?format=svg"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), 200);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    // Not a code for the redirect: the API answers. Without a key the caller reads
    // as anonymous (`links.anonymous_stats` is on here), and a keyed link is not theirs.
    let anonymous = http.get(&qr).send().await.unwrap();
    assert_eq!(anonymous.status(), 404);
    server.stop().await.unwrap();
}
