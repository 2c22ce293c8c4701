//! Countries from a GeoIP database, on SQLite and on PostgreSQL: with
//! `geoip.database` set, a client address the edge sent no country for is looked up
//! in it, for country rules and for click stats; the edge's header still wins. The
//! database is a tiny one built here: no real GeoIP data ships with the project.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde_json::json;
use support::Harness;

/// A GeoIP2-Country-shaped database: two documentation ranges with their countries,
/// one known only by where it is registered.
fn write_database(path: &Path) {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V4;
    db.metadata.binary_format_major_version = 2;
    db.metadata.database_type = "Test-Country".into();
    let france = db
        .insert_value(HashMap::from([(
            "country",
            HashMap::from([("iso_code", "FR")]),
        )]))
        .unwrap();
    let japan = db
        .insert_value(HashMap::from([(
            "country",
            HashMap::from([("iso_code", "JP")]),
        )]))
        .unwrap();
    let registered = db
        .insert_value(HashMap::from([(
            "registered_country",
            HashMap::from([("iso_code", "BR")]),
        )]))
        .unwrap();
    db.insert_node("198.51.100.0/24".parse::<IpAddrWithMask>().unwrap(), france);
    db.insert_node("203.0.113.0/24".parse::<IpAddrWithMask>().unwrap(), japan);
    db.insert_node(
        "192.0.2.0/24".parse::<IpAddrWithMask>().unwrap(),
        registered,
    );
    let file = std::fs::File::create(path).unwrap();
    db.write_to(std::io::BufWriter::new(file)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    with_database(|overrides| async move { Harness::sqlite(&overrides).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    with_database(|overrides| async move { Harness::postgres(&overrides).await }).await;
}

async fn with_database<F, Fut>(start: F)
where
    F: FnOnce(Vec<(&'static str, &'static str)>) -> Fut,
    Fut: std::future::Future<Output = Harness>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countries.mmdb");
    write_database(&path);
    let path: &'static str = Box::leak(path.display().to_string().into_boxed_str());
    let h = start(vec![
        ("SHORTENER__GEOIP__DATABASE", path),
        ("SHORTENER__HTTP__CLIENT_IP_HEADER", "X-Real-IP"),
    ])
    .await;
    countries_come_from_the_database(&h).await;
    h.stop().await;
}

async fn countries_come_from_the_database(h: &Harness) {
    h.create_link(json!({
        "url": "https://example.com/world",
        "alias": "geo",
        "rules": [
            {"when": {"country": "FR"}, "url": "https://example.com/fr"},
            {"when": {"country": ["JP", "BR"]}, "url": "https://example.com/far"},
        ],
    }))
    .await;
    let follow = |address: &'static str, country: Option<&'static str>| async move {
        let mut request = h
            .http
            .get(h.lookup_url("/geo"))
            .header("x-real-ip", address);
        if let Some(country) = country {
            request = request.header("cf-ipcountry", country);
        }
        let answer = h.send(request).await;
        assert_eq!(answer.status, 302, "{}", answer.text);
        answer.header("location").unwrap().to_string()
    };
    assert_eq!(follow("198.51.100.7", None).await, "https://example.com/fr");
    assert_eq!(follow("203.0.113.9", None).await, "https://example.com/far");
    // Known only by where the block is registered.
    assert_eq!(follow("192.0.2.1", None).await, "https://example.com/far");
    // Not in the database: no country, no country rule.
    assert_eq!(
        follow("233.252.0.1", None).await,
        "https://example.com/world"
    );
    // The edge's header wins over the database.
    assert_eq!(
        follow("203.0.113.9", Some("FR")).await,
        "https://example.com/fr"
    );

    // Stats count the same countries.
    let stats = h
        .stats_when("geo", 5, std::time::Duration::from_secs(15))
        .await;
    let countries: HashMap<String, i64> = stats["countries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["value"].as_str().unwrap().into(),
                c["clicks"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        countries,
        HashMap::from([
            ("FR".into(), 2),
            ("JP".into(), 1),
            ("BR".into(), 1),
            ("(unknown)".into(), 1)
        ]),
        "{stats}"
    );
}
