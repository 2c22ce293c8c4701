//! The migration that gives links a domain, on SQLite and on PostgreSQL: links and
//! counts written by the schema before it keep their code, short URL and clicks, and
//! land on the default domain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use common::config::DatabaseSettings;
use common::db::Database;
use common::ids::{CodeCodec, SnowflakeId};
use reqwest::StatusCode;
use support::Harness;

/// The last migration before links had a domain.
const BEFORE: i64 = 20261211000001;

/// Builds the schema as it was before the migration at `url`, and writes two links
/// of tenant `acme` (an alias and a generated code) with their clicks in it; returns
/// the generated code.
async fn links_before_the_migration(url: &str) -> String {
    let db = Database::connect(&DatabaseSettings::direct(url, 2)).unwrap();
    db.migrate_to(BEFORE).await.unwrap();
    let (generated_id, generated) = generated_code();
    for (code, id, target, clicks) in [
        ("spring-sale", 1_i64, "https://example.com/spring", 5_i64),
        (&generated, generated_id, "https://example.com/generated", 3),
    ] {
        sqlx::query(
            "INSERT INTO links (code, id, tenant_id, url, redirect_status, tags, \
             created_at, updated_at) VALUES ($1, $2, 'acme', $3, 302, '[]', 1, 1)",
        )
        .bind(code)
        .bind(id)
        .bind(target)
        .execute(db.primary())
        .await
        .unwrap();
        sqlx::query("INSERT INTO click_totals (code, clicks, bots) VALUES ($1, $2, 0)")
            .bind(code)
            .bind(clicks)
            .execute(db.primary())
            .await
            .unwrap();
        sqlx::query("INSERT INTO click_hours (code, hour, clicks) VALUES ($1, $2, $3)")
            .bind(code)
            .bind(common::time::now_ms() / 3_600_000 * 3_600_000)
            .bind(clicks)
            .execute(db.primary())
            .await
            .unwrap();
    }
    db.close().await;
    generated
}

/// A generated code as create-service would have minted it an hour ago, with its id.
fn generated_code() -> (i64, String) {
    let codec = CodeCodec::new(support::CODE_KEY.as_bytes());
    let now = common::time::now_ms() as u64;
    let raw = (now - common::ids::EPOCH_MS - 3_600_000) << 22;
    let id = SnowflakeId::from_u64(raw).unwrap();
    (raw as i64, codec.encode(id).as_str().to_string())
}

/// What a user checks after the upgrade: each link reads, redirects and counts as
/// before, on the default domain.
async fn links_are_as_they_were(h: &Harness, generated: &str) {
    for (code, target, clicks) in [
        ("spring-sale", "https://example.com/spring", 5),
        (generated, "https://example.com/generated", 3),
    ] {
        let link = h.get_as(&h.key, &format!("/api/v1/links/{code}")).await;
        assert_eq!(link.status, StatusCode::OK, "{}", link.text);
        assert_eq!(link.body["code"], code);
        assert_eq!(link.body["domain"], "sho.rt");
        assert_eq!(link.body["short_url"], format!("http://sho.rt/{code}"));
        let stats = h
            .send(
                h.http
                    .get(h.stats_url(&format!("/api/v1/links/{code}/stats")))
                    .bearer_auth(&h.key),
            )
            .await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        assert_eq!(stats.body["total"], clicks, "{code}");
        assert_eq!(stats.body["domain"], "sho.rt");
        let followed = h.follow(code).await;
        assert_eq!(followed.status, StatusCode::FOUND, "{}", followed.text);
        assert_eq!(followed.header("location"), Some(target));
    }
    let listed = h.get_as(&h.key, "/api/v1/links?domain=sho.rt").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
    let generated = links_before_the_migration(&url).await;
    let h = Harness::sqlite(&[("SHORTENER__DATABASE__URL", &url)]).await;
    links_are_as_they_were(&h, &generated).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let bed = test_kit::bed().await;
    let db = bed.empty_database().await;
    let generated = links_before_the_migration(&db.primary_url).await;
    let h = Harness::postgres(&[
        ("SHORTENER__DATABASE__URL", &db.primary_url),
        ("SHORTENER__DATABASE__REPLICA_URLS", &db.replica_url),
    ])
    .await;
    links_are_as_they_were(&h, &generated).await;
    h.stop().await;
}
