//! The runtime host blocklist across instances. A host blocked through the admin
//! command's code path stops the redirects of links already cached in every lookup
//! instance (local cache and Redis) within a measured bound, subdomains included and
//! no other host; new links to it are refused; an unblock brings the redirects back;
//! an instance that cannot hear the announcement converges by its periodic reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use common::blocklist::{self, Announcement};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Answer, Harness};
use test_kit::{PgCluster, RedisCluster};

/// How long an announced change may take to show on every instance.
const ANNOUNCED_BOUND: Duration = Duration::from_secs(2);

/// Links of one scenario: two under the host to block, two that must stay.
struct Links {
    blocked: Vec<String>,
    kept: Vec<(String, String)>,
}

fn code(link: &Value) -> String {
    link["code"].as_str().unwrap().to_string()
}

async fn make_links(h: &Harness) -> Links {
    let phish = h
        .create_link(json!({"url": "https://phish.example/login"}))
        .await;
    let deep = h
        .create_link(json!({"url": "https://www.secure.phish.example/account?id=1"}))
        .await;
    let mut kept = Vec::new();
    for url in ["https://example.com/ok", "https://notphish.example/"] {
        kept.push((
            code(&h.create_link(json!({ "url": url })).await),
            url.to_string(),
        ));
    }
    Links {
        blocked: vec![code(&phish), code(&deep)],
        kept,
    }
}

async fn follow_on(h: &Harness, port: u16, code: &str) -> Answer {
    h.send(h.http.get(format!("http://127.0.0.1:{port}/{code}")))
        .await
}

fn assert_blocked(answer: &Answer) {
    answer.assert_problem(410, "link-blocked");
    assert_eq!(answer.header("location"), None, "no Location when blocked");
    assert_eq!(answer.header("cache-control"), Some("private, max-age=0"));
}

/// Follows `code` on `port` until it answers `status`; how long that took since
/// `since`. Panics once `bound` has passed.
async fn until(
    h: &Harness,
    port: u16,
    code: &str,
    status: u16,
    since: Instant,
    bound: Duration,
) -> Duration {
    loop {
        let answer = follow_on(h, port, code).await;
        if answer.status.as_u16() == status {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < bound,
            "{code} on {port} still answers {} after {:?} (bound {bound:?}): {}",
            answer.status,
            since.elapsed(),
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until metric `name` reads `value` on `port`.
async fn wait_metric(h: &Harness, port: u16, name: &str, value: f64) {
    for _ in 0..200 {
        if h.metric(port, name).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} on {port} never read {value}");
}

/// Waits until each lookup instance listens for blocklist and link announcements (a
/// link subscription coming up after the warm-up would make the warm entries stale).
async fn wait_subscribed(h: &Harness, ports: &[u16]) {
    for &port in ports {
        wait_metric(h, port, "shortener_blocklist_subscription_up", 1.0).await;
        wait_metric(
            h,
            port,
            "shortener_lookup_invalidation_subscription_up",
            1.0,
        )
        .await;
    }
}

/// Every link redirects on every instance, twice: the second answer comes from the
/// local cache.
async fn warm(h: &Harness, ports: &[u16], links: &Links) {
    for &port in ports {
        let hits = h
            .metric_where(
                port,
                "shortener_lookup_tier_total",
                "result=\"hit\",tier=\"l1\"",
            )
            .await;
        for code in links
            .blocked
            .iter()
            .chain(links.kept.iter().map(|(c, _)| c))
        {
            for _ in 0..2 {
                assert_eq!(follow_on(h, port, code).await.status, StatusCode::FOUND);
            }
        }
        let after = h
            .metric_where(
                port,
                "shortener_lookup_tier_total",
                "result=\"hit\",tier=\"l1\"",
            )
            .await;
        assert!(after - hits >= 4.0, "links cached locally on {port}");
    }
}

async fn create(h: &Harness, url: &str) -> Answer {
    h.api(
        Method::POST,
        "/api/v1/links",
        Some(&h.key),
        Some(json!({ "url": url })),
    )
    .await
}

/// Block, check every instance and the API, then unblock; `ports` are the lookup
/// instances, all warm.
async fn block_and_unblock(h: &Harness, ports: &[u16], links: &Links) {
    let blocked_before: Vec<f64> = futures_util::future::join_all(
        ports
            .iter()
            .map(|&port| h.metric(port, "shortener_lookup_blocked_redirects_total")),
    )
    .await;
    let bus = h.admin_bus();
    let started = Instant::now();
    let outcome = blocklist::block(&h.db, &bus, " Phish.EXAMPLE. ", "reported phishing")
        .await
        .unwrap();
    assert_eq!(outcome.host, "phish.example");
    assert!(outcome.changed);
    assert_eq!(outcome.announced, Announcement::Published);

    let mut slowest = Duration::ZERO;
    for &port in ports {
        for code in &links.blocked {
            let took = until(h, port, code, 410, started, ANNOUNCED_BOUND).await;
            slowest = slowest.max(took);
            assert_blocked(&follow_on(h, port, code).await);
            let head = h
                .send(h.http.head(format!("http://127.0.0.1:{port}/{code}")))
                .await;
            assert_eq!(head.status.as_u16(), 410);
            assert_eq!(head.header("location"), None);
        }
        for (code, url) in &links.kept {
            let answer = follow_on(h, port, code).await;
            assert_eq!(answer.status, StatusCode::FOUND, "{url} is not blocked");
            assert_eq!(answer.header("location"), Some(url.as_str()));
        }
    }
    eprintln!(
        "block seen on {} instance(s) after {slowest:?}",
        ports.len()
    );
    for (port, before) in ports.iter().zip(blocked_before) {
        let after = h
            .metric(*port, "shortener_lookup_blocked_redirects_total")
            .await;
        assert!(after - before >= 4.0, "blocked redirects counted on {port}");
    }

    // create-service hears the same announcement: new links are refused, with the
    // problem a configured blocked host gets.
    loop {
        let refused = create(h, "https://new.phish.example/").await;
        if refused.status.as_u16() == 422 {
            refused.assert_problem(422, "invalid-url");
            assert!(
                refused.body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("links to phish.example are blocked"),
                "{}",
                refused.text
            );
            break;
        }
        assert!(
            started.elapsed() < ANNOUNCED_BOUND,
            "create still accepts the blocked host: {}",
            refused.text
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        create(h, "https://phish.example.org/").await.status,
        StatusCode::CREATED
    );

    // Blocking again changes nothing; the list shows the first reason.
    let again = blocklist::block(&h.db, &bus, "phish.example", "again")
        .await
        .unwrap();
    assert!(!again.changed);
    assert_eq!(again.announced, Announcement::Unchanged);
    let listed = blocklist::list(&h.db).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].host, "phish.example");
    assert_eq!(listed[0].reason, "reported phishing");

    // A subdomain of a blocked host is not a block of its own.
    let sub = blocklist::unblock(&h.db, &bus, "www.secure.phish.example")
        .await
        .unwrap();
    assert!(!sub.changed);

    let started = Instant::now();
    let outcome = blocklist::unblock(&h.db, &bus, "PHISH.example")
        .await
        .unwrap();
    assert!(outcome.changed);
    assert_eq!(outcome.announced, Announcement::Published);
    for &port in ports {
        for code in &links.blocked {
            until(h, port, code, 302, started, ANNOUNCED_BOUND).await;
        }
    }
    eprintln!("unblock seen after {:?}", started.elapsed());
    assert!(blocklist::list(&h.db).await.unwrap().is_empty());
    loop {
        let created = create(h, "https://new.phish.example/").await;
        if created.status == StatusCode::CREATED {
            break;
        }
        assert!(started.elapsed() < ANNOUNCED_BOUND, "{}", created.text);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Split services on PostgreSQL and the Redis Cluster, two lookup instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_reaches_every_lookup_instance_through_redis() {
    let h = Harness::postgres(&[]).await;
    let (second, _second) = h.add_lookup().await;
    let ports = [h.lookup_port, second];
    wait_metric(
        &h,
        h.create_port,
        "shortener_blocklist_subscription_up",
        1.0,
    )
    .await;
    wait_subscribed(&h, &ports).await;
    let links = make_links(&h).await;
    warm(&h, &ports, &links).await;
    block_and_unblock(&h, &ports, &links).await;
    h.stop().await;
}

/// Embedded SQLite, announcements over the in-process bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_reaches_lookup_over_the_in_process_bus() {
    let h = Harness::sqlite(&[]).await;
    let links = make_links(&h).await;
    warm(&h, &[h.lookup_port], &links).await;
    block_and_unblock(&h, &[h.lookup_port], &links).await;
    h.stop().await;
}

/// With every Redis node frozen, subscriptions are lost and the announcement cannot
/// be published; each instance still applies the block, and the unblock, within its
/// reload period (1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_subscriptions_converge_by_the_periodic_reload() {
    let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
    let (pg, redis) = (pg.unwrap(), redis.unwrap());
    let period = Duration::from_secs(1);
    let h = Harness::on_servers(
        &pg,
        Some(&redis),
        &[("SHORTENER__LINKS__BLOCKLIST_RELOAD", "1s")],
    )
    .await;
    let (second, _second) = h.add_lookup().await;
    let ports = [h.lookup_port, second];
    wait_subscribed(&h, &ports).await;
    let links = make_links(&h).await;
    warm(&h, &ports, &links).await;

    redis.signal_all("STOP").unwrap();
    for port in ports {
        wait_metric(&h, port, "shortener_blocklist_subscription_up", 0.0).await;
    }
    // The bound: one period, plus a reload's query and a poll.
    let bound = period + Duration::from_millis(1500);
    let bus = h.admin_bus();
    let started = Instant::now();
    let outcome = blocklist::block(&h.db, &bus, "phish.example", "found while Redis was down")
        .await
        .unwrap();
    assert!(outcome.changed);
    assert!(
        matches!(outcome.announced, Announcement::Failed(_)),
        "{:?}",
        outcome.announced
    );
    let mut slowest = Duration::ZERO;
    for port in ports {
        for code in &links.blocked {
            slowest = slowest.max(until(&h, port, code, 410, started, bound).await);
        }
        for (code, _) in &links.kept {
            assert_eq!(follow_on(&h, port, code).await.status, StatusCode::FOUND);
        }
    }
    eprintln!("block seen without announcements after {slowest:?}");

    let started = Instant::now();
    blocklist::unblock(&h.db, &bus, "phish.example")
        .await
        .unwrap();
    for port in ports {
        for code in &links.blocked {
            until(&h, port, code, 302, started, bound).await;
        }
    }
    assert!(
        h.metric(
            h.lookup_port,
            "shortener_lookup_invalidation_subscription_up"
        )
        .await
            == 0.0,
        "the instance really was cut off"
    );
    redis.signal_all("CONT").unwrap();
    drop(h);
}
