//! The migration that gives keys a grant, on SQLite and on PostgreSQL: a key made
//! before roles existed could do everything its tenant could, and still can, as an
//! owner's key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::config::DatabaseSettings;
use common::db::Database;
use reqwest::StatusCode;
use serde_json::json;
use support::Harness;

/// The last migration before keys had a grant.
const BEFORE: i64 = 20261211000002;
const OLD_KEY: &str = "sk_0123456789abcdefghijABCDEFGHIJ0123456789abc";

/// Builds the schema as it was before the migration at `url`, with one key of tenant
/// `acme` in it.
async fn key_before_the_migration(url: &str) {
    let db = Database::connect(&DatabaseSettings::direct(url, 2)).unwrap();
    db.migrate_to(BEFORE).await.unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, label, created_at) \
         VALUES (42, 'acme', $1, 'from before', 1)",
    )
    .bind(common::auth::hash_key(OLD_KEY))
    .execute(db.primary())
    .await
    .unwrap();
    db.close().await;
}

/// What its holder checks after the upgrade: the key still does what it did,
/// managing keys included, and shows as an owner's.
async fn the_key_is_an_owners(h: &Harness) {
    let created = h
        .post_as(
            OLD_KEY,
            "/api/v1/links",
            json!({"url": "https://example.com/"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    h.make_key(OLD_KEY, json!({"role": "owner"})).await;
    let keys = h.get_as(OLD_KEY, "/api/v1/keys").await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.text);
    let old = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == "42")
        .cloned()
        .unwrap();
    assert_eq!(old["role"], "owner");
    assert_eq!(old["label"], "from before");
    assert_eq!(old["state"], "active");
    assert_eq!(old["expires_at"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
    key_before_the_migration(&url).await;
    let h = Harness::sqlite(&[("SHORTENER__DATABASE__URL", &url)]).await;
    the_key_is_an_owners(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let bed = test_kit::bed().await;
    let db = bed.empty_database().await;
    key_before_the_migration(&db.primary_url).await;
    let h = Harness::postgres(&[
        ("SHORTENER__DATABASE__URL", &db.primary_url),
        ("SHORTENER__DATABASE__REPLICA_URLS", &db.replica_url),
    ])
    .await;
    the_key_is_an_owners(&h).await;
    h.stop().await;
}
