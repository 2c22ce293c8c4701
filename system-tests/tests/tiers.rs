//! The lookup tiers under faults, on private servers that the tests stop, freeze and
//! kill: L1 alone keeps redirects working, Redis trouble never stalls a redirect, a
//! lagging or frozen replica never loses a fresh link, concurrent misses share one
//! load, and edits reach every lookup instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Harness;
use test_kit::{PgCluster, RedisCluster};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn psql(port: u16, sql: &str) {
    let status = std::process::Command::new(format!("{PG_BIN}/psql"))
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "psql: {sql}");
}

async fn create(h: &Harness, n: usize) -> Vec<String> {
    let mut codes = Vec::with_capacity(n);
    for i in 0..n {
        let link = h
            .create_link(json!({"url": format!("https://example.com/{i}")}))
            .await;
        codes.push(link["code"].as_str().unwrap().to_string());
    }
    codes
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// 256 concurrent requests for one uncached code make exactly one database query;
/// then, with Redis and PostgreSQL both gone, cached links still redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_load_per_code_and_l1_survives_everything_down() {
    let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
    let (pg, redis) = (pg.unwrap(), redis.unwrap());
    let h = Harness::on_servers(&pg, Some(&redis), &[]).await;
    let codes = create(&h, 20).await;
    // Make the code uncached everywhere: not in L1 (never followed), not in L2
    // (create writes through; remove it), and old enough to trust the replica.
    let code = &codes[0];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let key = format!("t:l:{code}");
    test_kit::redis::redis_cli(redis.ports()[0], &["-c", "DEL", &key])
        .await
        .unwrap();
    let before = h
        .metric(h.lookup_port, "shortener_lookup_db_queries_total")
        .await;
    let requests = (0..256).map(|_| h.follow(code));
    let answers = futures_util::future::join_all(requests).await;
    assert!(answers.iter().all(|a| a.status == 302));
    let after = h
        .metric(h.lookup_port, "shortener_lookup_db_queries_total")
        .await;
    assert_eq!(
        after - before,
        1.0,
        "256 concurrent misses must share one query"
    );

    // Warm L1 with a few more, then take every server away.
    for code in &codes[1..5] {
        assert_eq!(h.follow(code).await.status, 302);
    }
    redis.signal_all("KILL").unwrap();
    pg.kill_primary().await.unwrap();
    pg.stop_replica().await.unwrap();
    for code in &codes[..5] {
        let answer = h.follow(code).await;
        assert_eq!(answer.status, 302, "L1 hit with Redis and PostgreSQL down");
        assert_eq!(answer.header("cache-control"), Some("private, max-age=0"));
    }
    // An uncached code cannot be answered, and says so quickly instead of hanging.
    let started = Instant::now();
    h.follow(&codes[10])
        .await
        .assert_problem(503, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(h);
}

/// With every Redis node frozen (calls time out rather than fail fast) the breaker
/// opens after a few deadlines, and from then on redirects do not wait on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_redis_opens_the_breaker_and_stops_costing_time() {
    let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
    let (pg, redis) = (pg.unwrap(), redis.unwrap());
    let h = Harness::on_servers(
        &pg,
        Some(&redis),
        // A deadline far above a database read even on a loaded machine, and a
        // cool-down longer than the test, so no half-open probe lands among the
        // measured lookups: any of them that waited on Redis would take 400 ms.
        &[
            ("SHORTENER__REDIS__TIMEOUT", "400ms"),
            ("SHORTENER__LOOKUP__BREAKER_COOL_DOWN", "30000ms"),
        ],
    )
    .await;
    let codes = create(&h, 240).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.signal_all("STOP").unwrap();
    // The first few uncached lookups pay the Redis deadline until the breaker opens.
    for code in &codes[..10] {
        assert_eq!(h.follow(code).await.status, 302);
    }
    assert_eq!(
        h.metric(h.lookup_port, "shortener_lookup_redis_breaker_state")
            .await,
        2.0,
        "breaker open"
    );
    let mut latencies = Vec::new();
    for code in &codes[10..] {
        let started = Instant::now();
        let answer = h.follow(code).await;
        latencies.push(started.elapsed());
        assert_eq!(answer.status, 302);
    }
    let p99 = p99(latencies);
    // Each of these missed L1 and went to the database; none waited on Redis.
    assert!(
        p99 < Duration::from_millis(200),
        "p99 {p99:?} with the breaker open (a Redis wait costs 400 ms)"
    );
    let ready = h.send(h.http.get(h.lookup_url("/readyz"))).await;
    assert_eq!(
        ready.status, 200,
        "lookup stays ready without Redis: {}",
        ready.text
    );
    assert!(ready.text.contains("breaker open"), "{}", ready.text);
    redis.signal_all("CONT").unwrap();
    drop(h);
}

/// A Redis master killed under redirect load: at least 99.9% of redirects succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_master_killed_under_load() {
    let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
    let (pg, redis) = (pg.unwrap(), redis.unwrap());
    let h = Harness::on_servers(
        &pg,
        Some(&redis),
        &[
            ("SHORTENER__LOOKUP__L1_TTL", "1s"),
            ("SHORTENER__LOOKUP__L1_TTL_JITTER_PERCENT", "0"),
        ],
    )
    .await;
    let codes = std::sync::Arc::new(create(&h, 100).await);
    let deadline = Instant::now() + Duration::from_secs(6);
    let victim = redis.master_ports().await.unwrap()[0];
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let codes = codes.clone();
            let http = h.http.clone();
            let url = h.lookup_url("");
            tokio::spawn(async move {
                let (mut ok, mut total) = (0u64, 0u64);
                let mut i = w;
                while Instant::now() < deadline && total < 50_000 {
                    let code = &codes[i % codes.len()];
                    i += 7;
                    total += 1;
                    if let Ok(r) = http.get(format!("{url}/{code}")).send().await
                        && r.status() == 302
                    {
                        ok += 1;
                    }
                }
                (ok, total)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill_node(victim).await.unwrap();
    let mut ok = 0;
    let mut total = 0;
    for worker in workers {
        let (o, t) = worker.await.unwrap();
        ok += o;
        total += t;
    }
    let rate = ok as f64 / total as f64;
    eprintln!(
        "redirects during failover: {ok}/{total} ({:.4}%)",
        rate * 100.0
    );
    assert!(total > 1000, "load too small to judge: {total}");
    assert!(rate >= 0.999, "{ok}/{total} succeeded");
    drop(h);
}

/// A replica that applies WAL 3 s late never makes a fresh link unfollowable; a
/// frozen replica is routed around with zero errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_and_frozen_replica() {
    let pg = PgCluster::start().await.unwrap();
    let h = Harness::on_servers(&pg, None, &[]).await;
    psql(
        pg.replica_port(),
        "ALTER SYSTEM SET recovery_min_apply_delay = '3s'",
    );
    psql(pg.replica_port(), "SELECT pg_reload_conf()");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut misses = 0;
    for i in 0..200 {
        let link = h
            .create_link(json!({"url": format!("https://example.com/fresh/{i}")}))
            .await;
        let answer = h.follow(link["code"].as_str().unwrap()).await;
        if answer.status != 302 {
            misses += 1;
        }
    }
    assert_eq!(
        misses, 0,
        "read-after-write misses with a 3 s replica delay"
    );
    assert!(
        h.metric(h.lookup_port, "shortener_lookup_db_queries_total")
            .await
            >= 200.0,
        "the lookups did reach the database"
    );

    psql(
        pg.replica_port(),
        "ALTER SYSTEM RESET recovery_min_apply_delay",
    );
    psql(pg.replica_port(), "SELECT pg_reload_conf()");
    let codes = create(&h, 100).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.freeze_replica().unwrap();
    let mut errors = 0;
    let started = Instant::now();
    for code in &codes {
        if h.follow(code).await.status != 302 {
            errors += 1;
        }
    }
    let elapsed = started.elapsed();
    pg.thaw_replica().unwrap();
    assert_eq!(errors, 0, "errors with a frozen replica");
    // One replica deadline at most, then the replica is out of rotation.
    assert!(
        elapsed < Duration::from_secs(3),
        "{elapsed:?} for 100 lookups"
    );
    drop(h);
}

/// The stats API reads a replica, and the primary for a link the replica does not
/// have yet: a link's stats are readable the moment its create returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_read_replicas_and_the_primary_for_new_links() {
    let pg = PgCluster::start().await.unwrap();
    let h = Harness::on_servers(&pg, None, &[]).await;
    let reads = |pool: &'static str| {
        let h = &h;
        async move {
            h.metric_where(
                h.stats_port,
                "shortener_stats_reads_total",
                &format!("pool=\"{pool}\""),
            )
            .await
        }
    };
    psql(
        pg.replica_port(),
        "ALTER SYSTEM SET recovery_min_apply_delay = '3s'",
    );
    psql(pg.replica_port(), "SELECT pg_reload_conf()");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let link = h
        .create_link(json!({"url": "https://example.com/counted"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let stats_path = format!("/api/v1/links/{code}/stats");
    let stats = h
        .send(h.http.get(h.stats_url(&stats_path)).bearer_auth(&h.key))
        .await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.body["total"], 0);
    assert_eq!((reads("replica").await, reads("primary").await), (0.0, 1.0));

    psql(
        pg.replica_port(),
        "ALTER SYSTEM RESET recovery_min_apply_delay",
    );
    psql(pg.replica_port(), "SELECT pg_reload_conf()");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = h
            .send(h.http.get(h.stats_url(&stats_path)).bearer_auth(&h.key))
            .await;
        assert_eq!(stats.status, 200, "{}", stats.text);
        if reads("replica").await > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "stats never read the replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(h);
}

/// A frozen replica never stalls a redirect of a link with a visit limit: the read
/// of its applied total gives up at the replica deadline (150 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_replica_never_stalls_the_visit_limit() {
    let pg = PgCluster::start().await.unwrap();
    let h = Harness::on_servers(&pg, None, &[]).await;
    let link = h
        .create_link(json!({"url": "https://example.com/limited", "max_visits": 1000}))
        .await;
    let code = link["code"].as_str().unwrap();
    // Cached locally, and its applied total read once.
    assert_eq!(h.follow(code).await.status, 302);
    // The total is due to be read again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pg.freeze_replica().unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), h.follow(code)).await;
    let elapsed = started.elapsed();
    pg.thaw_replica().unwrap();
    let answer = answer.expect("the redirect hung on the frozen replica");
    assert_eq!(answer.status, 302, "{}", answer.text);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    drop(h);
}

/// An edit through create-service reaches every lookup instance within the bound;
/// a lost subscription clears the local cache and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_reach_every_instance_and_lost_subscriptions_reset() {
    let (pg, redis) = tokio::join!(PgCluster::start(), RedisCluster::start());
    let (pg, redis) = (pg.unwrap(), redis.unwrap());
    let h = Harness::on_servers(&pg, Some(&redis), &[]).await;
    let (second, _handle) = h.add_lookup().await;
    // Let both subscriptions come up.
    let wait_up = |port: u16| {
        let h = &h;
        async move {
            for _ in 0..100 {
                if h.metric(port, "shortener_lookup_invalidation_subscription_up")
                    .await
                    == 1.0
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("subscription on {port} never came up");
        }
    };
    wait_up(h.lookup_port).await;
    wait_up(second).await;

    let link = h
        .create_link(json!({"url": "https://example.com/before"}))
        .await;
    let code = link["code"].as_str().unwrap();
    let on = |port: u16| {
        let http = h.http.clone();
        let code = code.to_string();
        async move {
            http.get(format!("http://127.0.0.1:{port}/{code}"))
                .send()
                .await
                .unwrap()
        }
    };
    for port in [h.lookup_port, second] {
        assert_eq!(
            on(port).await.headers()["location"],
            "https://example.com/before"
        );
    }
    let edited_at = Instant::now();
    h.patch_as(
        &h.key,
        &format!("/api/v1/links/{code}"),
        json!({"url": "https://example.com/after"}),
    )
    .await;
    for port in [h.lookup_port, second] {
        loop {
            if on(port).await.headers()["location"] == "https://example.com/after" {
                break;
            }
            assert!(
                edited_at.elapsed() < Duration::from_secs(1),
                "edit not seen on {port} within 1 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    eprintln!(
        "edit visible on both instances after {:?}",
        edited_at.elapsed()
    );

    // Cut every pub/sub connection: each instance stops trusting its L1 (edits may
    // have been missed meanwhile) and resubscribes.
    assert_eq!(on(second).await.status(), 302);
    let stale_label = "result=\"stale\"";
    let stale = h
        .metric_where(second, "shortener_lookup_tier_total", stale_label)
        .await;
    let resets = h.metric(second, "shortener_lookup_l1_resets_total").await;
    for port in redis.ports() {
        let _ = test_kit::redis::redis_cli(port, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    }
    for _ in 0..100 {
        if h.metric(second, "shortener_lookup_l1_resets_total").await > resets {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(h.metric(second, "shortener_lookup_l1_resets_total").await > resets);
    wait_up(second).await;
    // The entry cached before the gap is not served as is: it is reloaded.
    assert_eq!(
        on(second).await.headers()["location"],
        "https://example.com/after"
    );
    assert!(
        h.metric_where(second, "shortener_lookup_tier_total", stale_label)
            .await
            > stale
    );
    drop(h);
}
