//! Link changes that must not be lost: an edit acknowledged while Redis is paused and
//! create-service then SIGKILLed; a Redis master killed right after the relay wrote an
//! edit; a thousand edits across a create-service kill. Every time, L2 and every
//! lookup instance end on the newest URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use test_kit::redis::redis_cli;

use super::redis::{failover_window, replica_of};
use crate::Ctx;
use crate::procs::{Kind, Service};
use crate::report::{Outcome, seconds};
use crate::world::{Spec, World};

/// The Redis key prefix the services run with (the shipped default).
const PREFIX: &str = "shortener:";

/// Creates one link through the API; returns its code and URL.
async fn create_link(world: &World, create: &Service, prefix: &str) -> Result<(String, String)> {
    let link = world
        .create_links(create, prefix, 1)
        .await?
        .pop()
        .context("create answered no link")?;
    Ok((link.code, link.url))
}

/// Points `code` at `url`; `Ok(false)` when the edit was not acknowledged.
async fn edit(world: &World, create: &Service, code: &str, url: &str) -> bool {
    let answer = world
        .http
        .patch(create.url(&format!("/api/v1/links/{code}")))
        .bearer_auth(&world.api_key)
        .json(&json!({ "url": url }))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    matches!(answer, Ok(r) if r.status() == 200)
}

/// Where `lookup` sends `code` (None unless a redirect).
async fn location(world: &World, lookup: &Service, code: &str) -> Option<String> {
    let answer = world
        .http
        .get(lookup.url(&format!("/{code}")))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !answer.status().is_redirection() {
        return None;
    }
    answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The URL L2 holds for `code` (None when absent or not a link).
async fn l2_url(world: &World, code: &str) -> Option<String> {
    let redis = world.redis.as_ref()?;
    for port in redis.ports() {
        let Ok(value) = redis_cli(port, &["-c", "GET", &format!("{PREFIX}l:{code}")]).await else {
            continue;
        };
        let entry: serde_json::Value = serde_json::from_str(&value).ok()?;
        return entry["u"].as_str().map(str::to_string);
    }
    None
}

/// The master that holds `code`'s L2 key now.
async fn owner_of(world: &World, code: &str) -> Result<u16> {
    let redis = world.redis.as_ref().context("no redis")?;
    let port = *redis.ports().first().context("no node")?;
    let key = format!("{PREFIX}l:{code}");
    let answer = redis_cli(port, &["GET", &key])
        .await
        .unwrap_or_else(|e| format!("{e:#}"));
    // A node that does not serve the slot answers `MOVED <slot> <host>:<port>`.
    match answer
        .split_whitespace()
        .skip_while(|w| *w != "MOVED")
        .nth(2)
    {
        Some(address) => address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("unreadable MOVED answer"),
        None => Ok(port),
    }
}

/// Waits until the outbox has nothing unpublished; returns how long that took.
async fn outbox_drained(world: &World, within: Duration) -> Result<Duration> {
    let pool = world.primary_pool().await?;
    let started = Instant::now();
    loop {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM link_changes WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await?;
        if pending == 0 {
            pool.close().await;
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            pool.close().await;
            bail!("{pending} link changes still unpublished after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every Redis node paused, an edit acknowledged meanwhile (it reaches only the
/// database), create-service SIGKILLed, Redis resumed, create-service restarted:
/// both lookups and L2 must answer the new URL within 2 s.
pub async fn create_killed_redis_paused(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("change-create-killed", "edits");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let mut create = world.service(Kind::Create, &[]).await?;
    let lookups = [
        world.service(Kind::Lookup, &[]).await?,
        world.service(Kind::Lookup, &[]).await?,
    ];
    let new = "https://example.com/after";
    let (code, old) = create_link(&world, &create, "https://example.com/before").await?;
    let old = old.as_str();
    outbox_drained(&world, Duration::from_secs(10)).await?;
    for lookup in &lookups {
        if location(&world, lookup, &code).await.as_deref() != Some(old) {
            bail!("the new link does not redirect before the fault");
        }
    }

    let redis = world.redis.as_ref().context("no redis")?;
    redis.signal_all("STOP")?;
    let acknowledged = edit(&world, &create, &code, new).await;
    create.kill().await?;
    redis.signal_all("CONT")?;
    let resumed = Instant::now();
    create.restart().await?;
    let restarted = resumed.elapsed();
    let deadline = resumed + Duration::from_secs(10);
    let converged = loop {
        let mut all = l2_url(&world, &code).await.as_deref() == Some(new);
        for lookup in &lookups {
            all &= location(&world, lookup, &code).await.as_deref() == Some(new);
        }
        if all {
            break Some(resumed.elapsed());
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    o.acknowledged = u64::from(acknowledged);
    o.lost = u64::from(acknowledged && converged.is_none());
    o.yes(
        "edit acknowledged while Redis was paused",
        acknowledged,
        "yes",
    );
    o.measured("create-service ready again after", seconds(restarted));
    o.figure(
        "Redis resumed → L2 and both lookups answer the new URL",
        converged.map_or_else(|| "never (10 s)".into(), seconds),
        "≤ 2 s",
        converged.is_some_and(|t| t <= Duration::from_secs(2)),
    );
    Ok(o)
}

/// The master holding a link's L2 key SIGKILLed right after the relay wrote an edit
/// there, before its replica had it (the replica is paused and its replication link
/// cut for the moment of the write): once the replica has taken over, a lookup
/// started afterwards must answer the new URL, not the one the replica held.
pub async fn master_killed_after_write(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("change-master-killed", "edits");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let create = world.service(Kind::Create, &[]).await?;
    let new = "https://example.com/only-on-the-master";
    let (code, old) = create_link(&world, &create, "https://example.com/replicated").await?;
    let old = old.as_str();
    outbox_drained(&world, Duration::from_secs(10)).await?;
    let redis = world.redis.as_ref().context("no redis")?;
    redis.wait_healthy(Duration::from_secs(30)).await?;
    if l2_url(&world, &code).await.as_deref() != Some(old) {
        bail!("the create was not written through to L2");
    }

    let master = owner_of(&world, &code).await?;
    let replica = replica_of(redis, master).await?;
    let replica_pid = redis.pid(replica)?;
    // Paused, the replica would still receive what the master sends (the kernel
    // buffers it); cut the link too, and it cannot reconnect while paused.
    crate::procs::signal(replica_pid, "STOP")?;
    redis_cli(master, &["CLIENT", "KILL", "TYPE", "replica"]).await?;
    let acknowledged = edit(&world, &create, &code, new).await;
    // The relay writes the edit to the master, whose replica cannot take it.
    let key = format!("{PREFIX}l:{code}");
    let written = Instant::now();
    let on_master = loop {
        let value = redis_cli(master, &["GET", &key]).await.unwrap_or_default();
        if value.contains(new) {
            break true;
        }
        if written.elapsed() > Duration::from_millis(800) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let killed_at = Instant::now();
    redis.kill_node(master).await?;
    crate::procs::signal(replica_pid, "CONT")?;
    let window = failover_window(replica, master, killed_at).await?;
    let drained = outbox_drained(&world, Duration::from_secs(30)).await;
    let fresh = world.service(Kind::Lookup, &[]).await?;
    let followed = location(&world, &fresh, &code).await;
    let in_l2 = l2_url(&world, &code).await;
    let unreplicated = world
        .metric(&create, "shortener_link_changes_unreplicated_total", "")
        .await
        .unwrap_or(0.0);

    o.acknowledged = u64::from(acknowledged);
    let right = followed.as_deref() == Some(new) && in_l2.as_deref() == Some(new);
    o.lost = u64::from(acknowledged && !right);
    o.yes(
        "edit on the master, not on its paused replica, when the master died",
        on_master,
        "yes (the fault is real)",
    );
    o.measured("failover (kill → replica serving)", seconds(window));
    o.figure(
        "outbox published after the failover",
        match &drained {
            Ok(t) => format!("yes, {} after the failover", seconds(*t)),
            Err(e) => format!("no: {e:#}"),
        },
        "yes",
        drained.is_ok(),
    );
    o.figure(
        "a lookup started afterwards answers",
        followed.unwrap_or_else(|| "no redirect".into()),
        new,
        o.lost == 0,
    );
    o.figure(
        "L2 holds",
        in_l2.unwrap_or_else(|| "nothing".into()),
        new,
        o.lost == 0,
    );
    o.measured(
        "changes published on a master alone (no live replica)",
        format!("{unreplicated}"),
    );
    Ok(o)
}

/// 100 links edited 10 times each from 10 clients; create-service SIGKILLed halfway
/// and restarted; edits not acknowledged are made again. Afterwards L2 holds every
/// link's last URL, and every link's audit trail is whole: its rows chain from the
/// URL it was created with to the URL it has, one row per version (an edit re-sent
/// after a lost answer changes nothing, so it leaves no row).
pub async fn edits_across_kill(ctx: &Ctx) -> Result<Outcome> {
    const LINKS: usize = 100;
    const EDITS: usize = 10;
    let mut o = Outcome::new("change-edits-across-kill", "edits");
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let mut create = world.service(Kind::Create, &[]).await?;
    let codes: Vec<String> = world
        .create_links(&create, "https://example.com/e", LINKS)
        .await?
        .into_iter()
        .map(|link| link.code)
        .collect();
    let world = Arc::new(world);
    // A restart keeps the port.
    let port = create.port;
    let done = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = codes
        .chunks(LINKS / 10)
        .enumerate()
        .map(|(chunk, chunk_codes)| {
            let (world, done, retried) = (world.clone(), done.clone(), retried.clone());
            let chunk_codes = chunk_codes.to_vec();
            tokio::spawn(async move {
                for version in 1..=EDITS {
                    for (j, code) in chunk_codes.iter().enumerate() {
                        let i = chunk * (LINKS / 10) + j;
                        let url = format!("https://example.com/e{i}/v{version}");
                        let body = json!({ "url": url });
                        loop {
                            let answer = world
                                .http
                                .patch(format!("http://127.0.0.1:{port}/api/v1/links/{code}"))
                                .bearer_auth(&world.api_key)
                                .json(&body)
                                .timeout(Duration::from_secs(5))
                                .send()
                                .await;
                            if matches!(&answer, Ok(r) if r.status() == 200) {
                                break;
                            }
                            retried.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    while done.load(Ordering::Relaxed) < LINKS * EDITS / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    create.kill().await?;
    let killed_after = done.load(Ordering::Relaxed);
    create.restart().await?;
    for client in clients {
        client.await?;
    }
    let drained = outbox_drained(&world, Duration::from_secs(30)).await;
    let mut stale = 0u64;
    for (i, code) in codes.iter().enumerate() {
        let want = format!("https://example.com/e{i}/v{EDITS}");
        if l2_url(&world, code).await.as_deref() != Some(want.as_str()) {
            stale += 1;
        }
    }
    let pool = world.primary_pool().await?;
    let unpublished: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM link_changes WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await?;
    let mut broken = 0u64;
    let mut audited = 0usize;
    for code in &codes {
        let (rows, whole) = audit_trail_is_whole(&pool, code, EDITS).await?;
        audited += rows;
        if !whole {
            broken += 1;
        }
    }
    pool.close().await;

    o.acknowledged = (LINKS * EDITS) as u64;
    o.wrong = stale;
    o.measured(
        "edits acknowledged before the SIGKILL",
        killed_after.to_string(),
    );
    o.measured(
        "edits made again (not acknowledged while create-service was down)",
        retried.load(Ordering::Relaxed).to_string(),
    );
    o.figure(
        "outbox drained",
        match &drained {
            Ok(t) => seconds(*t),
            Err(e) => format!("no: {e:#}"),
        },
        "yes",
        drained.is_ok() && unpublished == 0,
    );
    o.figure(
        "links whose L2 entry is not their last URL",
        format!("{stale} of {LINKS}"),
        "0",
        stale == 0,
    );
    o.figure(
        "links whose audit trail has a change without its row or a row without its change",
        format!("{broken} of {LINKS} ({audited} edit rows)"),
        format!("0 ({} edit rows)", LINKS * EDITS),
        broken == 0 && audited == LINKS * EDITS,
    );
    Ok(o)
}

/// Whether the audit rows of link `code` chain from the URL it was created with,
/// edit by edit, to the URL it has now, with exactly `edits` edit rows; and how many
/// edit rows it has.
async fn audit_trail_is_whole(
    pool: &sqlx::PgPool,
    code: &str,
    edits: usize,
) -> Result<(usize, bool)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT action, changes FROM audit_log WHERE target = $1 ORDER BY id")
            .bind(format!("link:{code}"))
            .fetch_all(pool)
            .await?;
    let current: String = sqlx::query_scalar("SELECT url FROM links WHERE code = $1")
        .bind(code)
        .fetch_one(pool)
        .await?;
    let mut url: Option<String> = None;
    let mut whole = true;
    let mut edit_rows = 0;
    for (action, changes) in &rows {
        let changes: serde_json::Value = serde_json::from_str(changes)?;
        let (from, to) = (&changes["url"]["from"], &changes["url"]["to"]);
        match action.as_str() {
            "link.created" => whole &= url.is_none() && from.is_null(),
            "link.updated" => {
                edit_rows += 1;
                whole &= url.is_some() && from.as_str() == url.as_deref();
            }
            _ => whole = false,
        }
        url = to.as_str().map(str::to_string);
    }
    whole &= url.as_deref() == Some(current.as_str()) && edit_rows == edits;
    Ok((edit_rows, whole))
}
