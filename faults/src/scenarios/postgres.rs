//! PostgreSQL faults: a frozen or lagging replica, the primary killed and its replica
//! promoted again and again under create load, the whole database down.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sqlx::Row;

use super::redis::{create_and_follow, fresh_figures};
use super::{click_figures, redirect_bounds, redirect_figures, shared};
use crate::Ctx;
use crate::load::{self, Bounds, Link};
use crate::procs::Kind;
use crate::report::{Outcome, seconds};
use crate::world::{L1_OFF, Spec, Stack, World, run_sql};

/// The replica SIGSTOPped (a hung host) while links are followed and created-then-
/// followed: readers must fall back to the primary, with no error and no miss.
pub async fn replica_frozen(ctx: &Ctx) -> Result<Outcome> {
    replica_fault(ctx, "replica-frozen", ReplicaFault::Frozen).await
}

/// The replica applying WAL 3 s late: a link followed right after its create is not
/// there yet, and the lookup must still find it (read-after-write).
pub async fn replica_delayed(ctx: &Ctx) -> Result<Outcome> {
    replica_fault(ctx, "replica-delayed", ReplicaFault::Delayed).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplicaFault {
    Frozen,
    Delayed,
}

async fn replica_fault(ctx: &Ctx, name: &str, fault: ReplicaFault) -> Result<Outcome> {
    let mut o = Outcome::new(name, "redirects, creates, clicks");
    // No Redis and no L1: every redirect reads the replica, so the replica's faults show.
    let mut world = World::start(&ctx.paths, Spec::POSTGRES).await?;
    let Stack {
        create,
        stats: _stats,
        lookup,
        links,
    } = world.stack(L1_OFF, "https://example.com/r", 300).await?;
    let time = ctx.pick(Duration::from_secs(10), Duration::from_secs(30));
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(time + Duration::from_secs(30)),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    match fault {
        ReplicaFault::Frozen => world.pg.freeze_replica()?,
        ReplicaFault::Delayed => {
            run_sql(
                &world.pg.replica_url("postgres"),
                "ALTER SYSTEM SET recovery_min_apply_delay = '3s'; SELECT pg_reload_conf()",
            )
            .await?;
            // Let the delay take hold before the first create-then-follow.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let fresh = create_and_follow(&world, &create, &lookup, "https://example.com/rf", time).await?;
    let lag = if fault == ReplicaFault::Delayed {
        Some(replica_lag(&world).await?)
    } else {
        None
    };
    let seen = run.finish(load::Redirects::merge).await;
    match fault {
        ReplicaFault::Frozen => world.pg.thaw_replica()?,
        ReplicaFault::Delayed => {
            run_sql(
                &world.pg.replica_url("postgres"),
                "ALTER SYSTEM RESET recovery_min_apply_delay; SELECT pg_reload_conf()",
            )
            .await?
        }
    }

    o.acknowledged += seen.ok;
    o.wrong += seen.wrong;
    o.figure(
        "redirects that failed",
        format!(
            "{} of {} ({})",
            seen.failed,
            seen.total(),
            seen.failure_kinds()
        ),
        "0",
        seen.failed == 0 && seen.total() > 0,
    );
    o.measured("slowest redirect", crate::report::millis(seen.max_latency));
    fresh_figures(&mut o, &fresh);
    if let Some(lag) = lag {
        o.figure(
            "replica behind the primary (while measured)",
            seconds(lag),
            "≥ 2.5 s (the fault is real)",
            lag >= Duration::from_millis(2500),
        );
    }
    let mut all = links.clone();
    all.extend(fresh.links.iter().cloned());
    click_figures(&mut o, &world, &all, seen.redirected() + fresh.followed, 0).await?;
    Ok(o)
}

/// How far the replica's replay is behind: the age of the last replayed transaction
/// while the primary keeps committing.
async fn replica_lag(world: &World) -> Result<Duration> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&world.pg.replica_url("postgres"))
        .await?;
    let row = sqlx::query(
        "SELECT CAST(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) * 1000 AS BIGINT)",
    )
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    let ms: Option<i64> = row.try_get(0)?;
    Ok(Duration::from_millis(ms.unwrap_or(0).max(0) as u64))
}

/// The primary killed (`pg_ctl stop -m immediate`) and its synchronous replica
/// promoted, 20 times (3 quick) under create load. The services reach the primary
/// through a forwarder that follows the promotion; on every second cycle it moves
/// *before* the promotion finishes, so pools meet a read-only server first and must
/// not get stuck on it. The old primary comes back as the new standby each time.
pub async fn primary_failover(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("primary-failover", "creates");
    let spec = Spec {
        synchronous_replica: true,
        proxy: true,
        ..Spec::POSTGRES
    };
    let mut world = World::start(&ctx.paths, spec).await?;
    let create = world.service(Kind::Create, &[]).await?;
    let cycles = ctx.pick(3, 20);
    let run = load::creates(
        &world.http,
        create.url(""),
        world.api_key.clone(),
        "https://example.com/f".into(),
        Bounds {
            concurrency: 8,
            max_requests: 10_000_000,
            max_time: Duration::from_secs(60 * 30),
            request_timeout: Duration::from_secs(10),
        },
        Duration::from_millis(5),
    );
    let mut kills = Vec::with_capacity(cycles);
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let early_switch = cycle % 2 == 1;
        world.pg.kill_primary().await?;
        // From the moment the primary is gone: a 201 before that may be in flight.
        let killed_at = Instant::now();
        let proxy = world.proxy.as_ref().context("no forwarder")?;
        if early_switch {
            proxy.switch(world.pg.replica_port());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        world.pg.promote_replica().await?;
        // Until a standby is back, the promoted server commits alone (else every
        // commit would wait for a standby that does not exist yet).
        run_sql(
            &world.pg.replica_url("postgres"),
            "ALTER SYSTEM SET synchronous_standby_names = ''; SELECT pg_reload_conf()",
        )
        .await?;
        proxy.switch(world.pg.replica_port());
        world.pg.rebuild_after_failover().await?;
        world.make_replica_synchronous().await?;
        kills.push(killed_at);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = run.finish(load::Creates::merge).await;

    // After the last cycle: creates one by one must all succeed (no pool left on a
    // dead or read-only server).
    let mut after = 0;
    for n in 0..200 {
        let r = world
            .http
            .post(create.url("/api/v1/links"))
            .bearer_auth(&world.api_key)
            .json(&serde_json::json!({ "url": format!("https://example.com/after/{n}") }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 201) {
            after += 1;
        }
    }

    let (lost, wrong) = verify_links(&world, &seen.acknowledged).await?;
    o.acknowledged = seen.acknowledged.len() as u64;
    o.lost = lost;
    o.wrong = wrong;
    o.measured("failovers", cycles.to_string());
    let resumes: Vec<Duration> = kills
        .iter()
        .map(|k| {
            seen.first_ack_after(*k)
                .map_or(Duration::from_secs(999), |a| a - *k)
        })
        .collect();
    let worst = resumes.iter().max().copied().unwrap_or_default();
    let mut sorted = resumes.clone();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    o.figure(
        "creates resume after a kill (median / worst)",
        format!("{} / {}", seconds(median), seconds(worst)),
        "worst ≤ 10 s",
        worst <= Duration::from_secs(10),
    );
    o.measured(
        "refused honestly (503 + Retry-After)",
        seen.unavailable.to_string(),
    );
    o.figure(
        "other failures (5xx, hangs > 10 s, resets)",
        format!("{} ({})", seen.error_count(), seen.error_kinds()),
        "0",
        seen.error_count() == 0,
    );
    o.measured("slowest create", crate::report::millis(seen.max_latency));
    o.figure(
        "creates after the last failover",
        format!("{after} / 200"),
        "200 / 200",
        after == 200,
    );
    Ok(o)
}

/// Acknowledged links missing from the (current) primary, and ones with another URL.
async fn verify_links(world: &World, links: &[Link]) -> Result<(u64, u64)> {
    let pool = world.primary_pool().await?;
    let codes: Vec<String> = links.iter().map(|l| l.code.clone()).collect();
    let rows = sqlx::query("SELECT code, url FROM links WHERE code = ANY($1)")
        .bind(&codes)
        .fetch_all(&pool)
        .await?;
    pool.close().await;
    let stored: std::collections::HashMap<String, String> = rows
        .iter()
        .filter_map(|r| Some((r.try_get("code").ok()?, r.try_get("url").ok()?)))
        .collect();
    let mut lost = 0;
    let mut wrong = 0;
    for link in links {
        match stored.get(&link.code) {
            None => lost += 1,
            Some(url) if *url != link.url => wrong += 1,
            Some(_) => {}
        }
    }
    Ok((lost, wrong))
}

/// Primary and replica both down for 30 s (8 s quick) with Redis up: cached links
/// keep redirecting, creates answer 503 with Retry-After at once instead of hanging,
/// clicks wait in memory and are all counted once the database is back.
pub async fn all_down(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("postgres-down", "redirects, creates, clicks");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let Stack {
        create,
        stats: _stats,
        lookup,
        links,
    } = world.stack(&[], "https://example.com/p", 300).await?;
    let outage = ctx.pick(Duration::from_secs(8), Duration::from_secs(30));
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(outage + Duration::from_secs(60)),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    world.pg.kill_primary().await?;
    world.pg.stop_replica().await?;
    let down_at = Instant::now();
    let creates = load::creates(
        &world.http,
        create.url(""),
        world.api_key.clone(),
        "https://example.com/pd".into(),
        Bounds {
            concurrency: 2,
            max_requests: 1_000_000,
            max_time: outage,
            request_timeout: Duration::from_secs(10),
        },
        Duration::from_millis(100),
    )
    .wait(load::Creates::merge)
    .await;
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    world.pg.start_primary().await?;
    world.pg.start_replica().await?;
    let back_at = Instant::now();
    world
        .pg
        .wait_replica_streaming(Duration::from_secs(30))
        .await?;
    let resumed = loop {
        let r = world
            .http
            .post(create.url("/api/v1/links"))
            .bearer_auth(&world.api_key)
            .json(&serde_json::json!({ "url": "https://example.com/back" }))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 201) {
            break back_at.elapsed();
        }
        if back_at.elapsed() > Duration::from_secs(60) {
            break Duration::from_secs(999);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = run.finish(load::Redirects::merge).await;

    o.measured("outage", seconds(outage));
    redirect_figures(&mut o, &seen, 99.9);
    o.figure(
        "creates during the outage: 503 + Retry-After",
        format!(
            "{} of {}",
            creates.unavailable,
            creates.unavailable + creates.error_count() + creates.acknowledged.len() as u64
        ),
        "all",
        creates.error_count() == 0 && creates.acknowledged.is_empty() && creates.unavailable > 0,
    );
    o.figure(
        "slowest refused create",
        crate::report::millis(creates.max_latency),
        "≤ 3 s (no hang; pool wait 2 s)",
        creates.max_latency <= Duration::from_secs(3),
    );
    o.figure(
        "creates resume after the database is back",
        seconds(resumed),
        "≤ 10 s",
        resumed <= Duration::from_secs(10),
    );
    click_figures(&mut o, &world, &links, seen.redirected(), 0).await?;
    Ok(o)
}
