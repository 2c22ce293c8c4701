//! Redis Cluster faults: a master killed, the whole cluster down, memory full with
//! `noeviction`. Redirects must keep working and no click may be lost.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use test_kit::redis::{NODE_TIMEOUT_MS, redis_cli};

use super::{click_figures, redirect_bounds, redirect_figures, shared};
use crate::Ctx;
use crate::load::{self, Link};
use crate::report::{Outcome, seconds};
use crate::world::{L1_OFF, Spec, Stack, World};

/// A master SIGKILLed under redirect load with L1 off, so every redirect asks Redis.
pub async fn master_killed(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("redis-master-killed", "redirects, clicks");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let Stack {
        create: _create,
        stats: _stats,
        lookup,
        links,
    } = world.stack(L1_OFF, "https://example.com/m", 500).await?;

    let before = ctx.pick(Duration::from_secs(3), Duration::from_secs(10));
    let after = ctx.pick(Duration::from_secs(10), Duration::from_secs(30));
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(before + after + Duration::from_secs(30)),
    );
    tokio::time::sleep(before).await;

    let redis = world.redis.as_ref().context("no redis")?;
    let victim = *redis
        .master_ports()
        .await?
        .first()
        .context("no master to kill")?;
    let replica = replica_of(redis, victim).await?;
    let killed_at = Instant::now();
    redis.kill_node(victim).await?;
    let window = failover_window(replica, victim, killed_at).await?;
    // When redirects are served from Redis again: the first rise of L2 hits after
    // the failover.
    let base = l2_hits(&world, &lookup).await;
    let mut l2_back = None;
    while killed_at.elapsed() < after {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if l2_back.is_none() && l2_hits(&world, &lookup).await > base {
            l2_back = Some(killed_at.elapsed());
        }
    }
    let seen = run.finish(load::Redirects::merge).await;

    redirect_figures(&mut o, &seen, 99.9);
    let bound = Duration::from_millis(NODE_TIMEOUT_MS) + Duration::from_secs(3);
    o.figure(
        "failover window (kill → cluster_state:ok)",
        seconds(window),
        format!("≤ {} (node timeout + 3 s)", seconds(bound)),
        window <= bound,
    );
    if let (Some(first), Some(last)) = (seen.first_failure, seen.last_failure) {
        o.measured(
            "failed redirects between",
            format!(
                "{:+.2}…{:+.2} s",
                signed_secs(first, killed_at),
                signed_secs(last, killed_at)
            ),
        );
    }
    o.figure(
        "redirects served from Redis again after the kill",
        l2_back.map_or_else(|| "never".into(), seconds),
        // The failover, then at most one of the breaker's longest cool-downs (5 s,
        // jittered) before the next probe finds Redis healthy.
        "≤ 12 s",
        l2_back.is_some_and(|t| t <= Duration::from_secs(12)),
    );
    click_figures(&mut o, &world, &links, seen.redirected(), 0).await?;
    Ok(o)
}

/// Every node down for a minute (10 s quick), then back: redirects from L1 and the
/// database meanwhile, links created during the outage followable at once.
pub async fn all_down(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("redis-down", "redirects, creates, clicks");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let Stack {
        create,
        stats: _stats,
        lookup,
        links,
    } = world.stack(&[], "https://example.com/d", 500).await?;

    let outage = ctx.pick(Duration::from_secs(10), Duration::from_secs(60));
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(outage + Duration::from_secs(90)),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let redis = world.redis.as_ref().context("no redis")?;
    let ports = redis.ports();
    for port in &ports {
        redis.kill_node(*port).await?;
    }
    let down_at = Instant::now();
    // Links made while Redis is gone: created (no write-through possible) and
    // followed right away, so the redirect has to find them in the database.
    let fresh = create_and_follow(
        &world,
        &create,
        &lookup,
        "https://example.com/fresh",
        outage,
    )
    .await?;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    for port in &ports {
        redis.restart_node(*port).await?;
    }
    let restarted = Instant::now();
    redis.wait_healthy(Duration::from_secs(60)).await?;
    let healthy_after = restarted.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = run.finish(load::Redirects::merge).await;

    o.measured("outage", seconds(outage));
    redirect_figures(&mut o, &seen, 99.9);
    fresh_figures(&mut o, &fresh);
    o.measured("cluster healthy after restart", seconds(healthy_after));
    let mut all = links.clone();
    all.extend(fresh.links.iter().cloned());
    click_figures(&mut o, &world, &all, seen.redirected() + fresh.followed, 0).await?;
    Ok(o)
}

/// Every node at `maxmemory` with `noeviction`: Redis refuses all writes (write-through,
/// fills, negative entries), reads still answer. Redirects and clicks must not care.
pub async fn noeviction(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("redis-noeviction", "redirects, creates, clicks");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let redis = world.redis.as_ref().context("no redis")?;
    for port in redis.ports() {
        redis_cli(port, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await?;
        // Below what an empty node already uses: every write that needs memory fails.
        redis_cli(port, &["CONFIG", "SET", "maxmemory", "1mb"]).await?;
    }
    let probe = redis_cli(redis.ports()[0], &["-c", "SET", "faults:probe", "x"])
        .await
        .unwrap_or_else(|e| format!("{e:#}"));
    o.figure(
        "Redis refuses writes",
        if probe.contains("OOM") {
            "yes (OOM)"
        } else {
            "no"
        },
        "yes",
        probe.contains("OOM"),
    );

    let Stack {
        create,
        stats: _stats,
        lookup,
        links,
    } = world.stack(L1_OFF, "https://example.com/n", 300).await?;
    let time = ctx.pick(Duration::from_secs(8), Duration::from_secs(30));
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(time),
    );
    let fresh = create_and_follow(&world, &create, &lookup, "https://example.com/nf", time).await?;
    let seen = run.wait(load::Redirects::merge).await;
    // Clean up so the servers stop normally.
    let redis = world.redis.as_ref().context("no redis")?;
    for port in redis.ports() {
        let _ = redis_cli(port, &["CONFIG", "SET", "maxmemory", "0"]).await;
    }

    redirect_figures(&mut o, &seen, 99.9);
    fresh_figures(&mut o, &fresh);
    let mut all = links.clone();
    all.extend(fresh.links.iter().cloned());
    click_figures(&mut o, &world, &all, seen.redirected() + fresh.followed, 0).await?;
    Ok(o)
}

/// Links created one after another and each followed at once.
#[derive(Debug, Default)]
pub struct Fresh {
    pub links: Vec<Link>,
    /// Creates that did not answer 201.
    pub create_failures: u64,
    /// Follows that answered 302 to the right URL.
    pub followed: u64,
    /// Follows of a just-created link that missed it or went elsewhere.
    pub misses: u64,
    /// Follows that failed outright (5xx, timeout).
    pub follow_failures: u64,
}

/// Creates a link and follows it immediately, every 50 ms, for `time`.
pub async fn create_and_follow(
    world: &World,
    create: &crate::procs::Service,
    lookup: &crate::procs::Service,
    prefix: &str,
    time: Duration,
) -> Result<Fresh> {
    let mut fresh = Fresh::default();
    let deadline = Instant::now() + time;
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let url = format!("{prefix}/{n}");
        let answer = world
            .http
            .post(create.url("/api/v1/links"))
            .bearer_auth(&world.api_key)
            .json(&serde_json::json!({ "url": url }))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let code = match answer {
            Ok(r) if r.status() == 201 => {
                let body: serde_json::Value = r.json().await?;
                body["code"].as_str().map(str::to_string)
            }
            _ => None,
        };
        let Some(code) = code else {
            fresh.create_failures += 1;
            continue;
        };
        let followed = world
            .http
            .get(lookup.url(&format!("/{code}")))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match followed {
            Ok(r) if r.status() == 302 => {
                let location = r
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if location == url {
                    fresh.followed += 1;
                } else {
                    fresh.misses += 1;
                }
            }
            Ok(r) if r.status().is_client_error() => fresh.misses += 1,
            _ => fresh.follow_failures += 1,
        }
        fresh.links.push(load::Link { code, url });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(fresh)
}

pub fn fresh_figures(o: &mut Outcome, fresh: &Fresh) {
    o.acknowledged += fresh.links.len() as u64;
    o.wrong += fresh.misses;
    o.figure(
        "creates during the fault that failed",
        fresh.create_failures.to_string(),
        "0",
        fresh.create_failures == 0,
    );
    o.figure(
        "just-created links followed at once",
        format!(
            "{} ok, {} missed, {} failed",
            fresh.followed, fresh.misses, fresh.follow_failures
        ),
        "0 missed, 0 failed",
        fresh.misses == 0 && fresh.follow_failures == 0 && !fresh.links.is_empty(),
    );
}

/// Time from the kill until the victim's replica is a master and reports
/// `cluster_state:ok` (all slots served again).
pub(crate) async fn failover_window(
    replica: u16,
    victim: u16,
    killed_at: Instant,
) -> Result<Duration> {
    let deadline = killed_at + Duration::from_secs(30);
    loop {
        let role = redis_cli(replica, &["ROLE"]).await.unwrap_or_default();
        if role.lines().next() == Some("master") {
            let info = redis_cli(replica, &["CLUSTER", "INFO"])
                .await
                .unwrap_or_default();
            if info.contains("cluster_state:ok") {
                return Ok(killed_at.elapsed());
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("no failover within 30 s of killing master {victim}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Redirects the lookup has served from Redis so far.
async fn l2_hits(world: &World, lookup: &crate::procs::Service) -> f64 {
    world
        .metric(
            lookup,
            "shortener_lookup_tier_total",
            "tier=\"l2\",result=\"hit\"",
        )
        .await
        .unwrap_or(0.0)
}

/// The node that replicates the master on `port`.
pub(crate) async fn replica_of(redis: &test_kit::RedisCluster, port: u16) -> Result<u16> {
    for node in redis.ports() {
        let info = redis_cli(node, &["INFO", "replication"]).await?;
        if info.contains("role:slave") && info.contains(&format!("master_port:{port}")) {
            return Ok(node);
        }
    }
    anyhow::bail!("no replica of master {port}")
}

fn signed_secs(t: Instant, origin: Instant) -> f64 {
    if t >= origin {
        (t - origin).as_secs_f64()
    } else {
        -(origin - t).as_secs_f64()
    }
}
