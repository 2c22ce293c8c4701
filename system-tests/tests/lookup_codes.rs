//! Strings that cannot be a code are answered 404 without touching storage.
//!
//! The lookup here points at a database that does not exist: anything that reaches
//! storage fails (503), so every 404 below proves no query was made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use common::config::{ServiceKind, Settings};
use common::deps::Deps;
use common::ids::{CodeCodec, SnowflakeId};

const KEY: &str = "lookup-test-code-key-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_canonical_codes_never_reach_storage() {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    let env = vec![
        (
            "SHORTENER__DATABASE__URL",
            "postgres://nobody@127.0.0.1:1/none",
        ),
        ("SHORTENER__DATABASE__ACQUIRE_TIMEOUT", "300ms"),
        ("SHORTENER__IDS__CODE_KEY", KEY),
        ("SHORTENER__HTTP__BIND", "127.0.0.1"),
        ("SHORTENER__HTTP__PORT", "0"),
        ("SHORTENER__TELEMETRY__FILTER", "error"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let settings = Settings::load_from(ServiceKind::Lookup, None, env).unwrap();
    let deps = Deps::connect(ServiceKind::Lookup, settings).await.unwrap();
    let codec = Arc::new(CodeCodec::new(KEY.as_bytes()));
    let lookup = lookup_service::start(deps).await.unwrap();
    let port = lookup.port();
    let http = test_kit::http_client().unwrap();
    let status = |path: String| {
        let http = http.clone();
        async move {
            let response = http
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let kind = response.headers().get("content-type").cloned();
            (status, kind)
        }
    };

    let valid = codec
        .encode(SnowflakeId::from_u64(119_052_232_363_606_016).unwrap())
        .as_str()
        .to_string();
    // A valid code with one character changed is non-canonical under this key (or,
    // rarely, canonical: then it must also go to storage). Collect clear cases.
    let mut non_canonical = vec![
        "zzzzzzzzzzz".to_string(), // above 2^64
        "ab".to_string(),          // too short for an alias, wrong length for a code
        "a.b".to_string(),
        "api".to_string(), // reserved word
        "x".repeat(65),
        "%E2%9C%93".to_string(),
    ];
    for i in 0..valid.len() {
        let mut chars: Vec<char> = valid.chars().collect();
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let candidate: String = chars.into_iter().collect();
        if codec.decode(&candidate).is_none() {
            non_canonical.push(candidate);
        }
    }
    assert!(non_canonical.len() > 6);
    for code in &non_canonical {
        let (code_status, kind) = status(format!("/{code}")).await;
        assert_eq!(code_status, 404, "`{code}` must be refused without storage");
        assert_eq!(
            kind.as_ref().and_then(|k| k.to_str().ok()),
            Some("application/problem+json")
        );
    }
    // Strings that can exist do go to storage, which is down here.
    for code in [valid.as_str(), "my-alias"] {
        assert_eq!(
            status(format!("/{code}")).await.0,
            503,
            "`{code}` must query storage"
        );
    }
    lookup.stop().await.unwrap();
}
