//! Durable creates under concurrency and outages: concurrent single creates share
//! commits yet each is answered for itself, racers for one alias get exactly one 201,
//! and while the primary is down a create answers 503 and nothing acknowledged is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::Harness;
use test_kit::PgCluster;

on_both_engines!(concurrent_creates_share_commits);

const COMMIT_ROWS: &str = "shortener_create_commit_rows";

async fn concurrent_creates_share_commits(h: &Harness) {
    // 190 distinct links and 10 racers for one alias, all in flight at once.
    let requests = (0..200).map(|i| {
        let body = if i % 20 == 0 {
            json!({"url": format!("https://example.com/race/{i}"), "alias": "hot-alias"})
        } else {
            json!({"url": format!("https://example.com/many/{i}")})
        };
        h.api(Method::POST, "/api/v1/links", Some(&h.key), Some(body))
    });
    let answers = futures_util::future::join_all(requests).await;

    let mut created = Vec::new();
    let mut alias_wins = 0;
    for (i, answer) in answers.iter().enumerate() {
        if i % 20 == 0 {
            match answer.status {
                StatusCode::CREATED => alias_wins += 1,
                StatusCode::CONFLICT => answer.assert_problem(409, "alias-taken"),
                other => panic!("alias racer got {other}: {}", answer.text),
            }
        } else {
            assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        }
        if answer.status == StatusCode::CREATED {
            created.push((i, answer.body.clone()));
        }
    }
    assert_eq!(alias_wins, 1, "exactly one racer owns the alias");
    assert_eq!(h.count_links().await, 191);
    let codes: HashSet<_> = created
        .iter()
        .map(|(_, body)| body["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 191);

    // Each answer describes its own link, and the link is there to follow.
    for (i, body) in &created {
        let code = body["code"].as_str().unwrap();
        let url = body["url"].as_str().unwrap();
        let expected = if i % 20 == 0 { "race" } else { "many" };
        assert_eq!(url, format!("https://example.com/{expected}/{i}"));
        let follow = h.follow(code).await;
        assert_eq!(follow.status, StatusCode::FOUND, "{code}");
        assert_eq!(follow.header("location"), Some(url));
    }

    // Every create went through the group commit, and they did share commits.
    let rows = h.metric(h.create_port, &format!("{COMMIT_ROWS}_sum")).await;
    let commits = h
        .metric(h.create_port, &format!("{COMMIT_ROWS}_count"))
        .await;
    assert_eq!(rows, 200.0);
    assert!(commits < rows, "{commits} commits for {rows} creates");
}

/// With the primary down a create answers 503 within the acquire timeout, changes
/// nothing, and creates work again once the primary is back; every link acknowledged
/// before the outage is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_outage_answers_503_and_loses_nothing() {
    let pg = PgCluster::start().await.unwrap();
    let h = Harness::on_servers(&pg, None, &[]).await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let link = h
            .create_link(json!({"url": format!("https://example.com/before/{i}")}))
            .await;
        acknowledged.push(link["code"].as_str().unwrap().to_string());
    }

    pg.kill_primary().await.unwrap();
    let started = Instant::now();
    let during = (0..8).map(|i| {
        h.api(
            Method::POST,
            "/api/v1/links",
            Some(&h.key),
            Some(json!({"url": format!("https://example.com/during/{i}")})),
        )
    });
    for answer in futures_util::future::join_all(during).await {
        answer.assert_problem(503, "unavailable");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} to refuse",
        started.elapsed()
    );

    pg.start_primary().await.unwrap();
    let mut recovered = None;
    for _ in 0..100 {
        let answer = h
            .api(
                Method::POST,
                "/api/v1/links",
                Some(&h.key),
                Some(json!({"url": "https://example.com/after"})),
            )
            .await;
        if answer.status == StatusCode::CREATED {
            recovered = Some(answer);
            break;
        }
        answer.assert_problem(503, "unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "creates never recovered");
    // The outage is visible to operators: failed database calls were counted.
    let metrics = h.send(h.http.get(h.create_url("/metrics"))).await;
    let unavailable: f64 = metrics
        .text
        .lines()
        .find(|l| l.starts_with("shortener_db_errors_total{kind=\"unavailable\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(unavailable >= 1.0, "{}", metrics.text);
    assert_eq!(h.count_links().await, 21);
    for code in &acknowledged {
        let stored = common::db::links::get(h.db.primary(), code).await.unwrap();
        assert!(stored.is_some(), "{code} was acknowledged and is gone");
    }
    drop(h);
}
