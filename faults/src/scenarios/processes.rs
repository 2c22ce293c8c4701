//! Service processes killed: stats-service SIGKILLed while applying, lookup-service
//! SIGKILLed and SIGTERMed under redirect load. Clicks are counted exactly once,
//! except that a SIGKILLed lookup may lose what it had not flushed yet.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{click_figures, redirect_bounds, shared};
use crate::Ctx;
use crate::load;
use crate::report::{Outcome, seconds};
use crate::world::{Spec, Stack, World};

/// How often lookup flushes its click counts in these scenarios (the world's setting).
const FLUSH: Duration = Duration::from_millis(500);

/// stats-service SIGKILLed every few seconds under redirect load (restarted after
/// each), then stopped with SIGTERM: every click counted exactly once.
pub async fn stats_killed(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("stats-killed", "redirects, clicks");
    let mut world = World::start(&ctx.paths, Spec::POSTGRES).await?;
    let Stack {
        create: _create,
        mut stats,
        lookup,
        links,
    } = world.stack(&[], "https://example.com/s", 200).await?;
    let kills = ctx.pick(3, 10);
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&links),
        redirect_bounds(Duration::from_secs(600)),
    );
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        stats.kill().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stats.restart().await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (took, clean) = stats.terminate(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.restart().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = run.finish(load::Redirects::merge).await;

    o.acknowledged = seen.ok;
    o.wrong = seen.wrong;
    o.measured("SIGKILLs of stats-service", kills.to_string());
    o.figure(
        "SIGTERM: clean exit",
        format!("{} in {}", if clean { "yes" } else { "no" }, seconds(took)),
        "yes",
        clean,
    );
    o.figure(
        "redirects that failed",
        seen.failed.to_string(),
        "0 (stats is off the redirect path)",
        seen.failed == 0,
    );
    click_figures(&mut o, &world, &links, seen.redirected(), 0).await?;
    Ok(o)
}

/// lookup-service SIGKILLed under load (may lose at most what it had not flushed:
/// one flush interval, plus one flush in flight), then a fresh instance SIGTERMed
/// under load (loses nothing).
pub async fn lookup_killed(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("lookup-killed", "redirects, clicks");
    let mut world = World::start(&ctx.paths, Spec::POSTGRES).await?;
    let Stack {
        create,
        stats: _stats,
        mut lookup,
        links: killed,
    } = world.stack(&[], "https://example.com/k", 200).await?;
    let time = ctx.pick(Duration::from_secs(5), Duration::from_secs(20));

    // SIGKILL while answering.
    let started = Instant::now();
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&killed),
        redirect_bounds(time + Duration::from_secs(5)),
    );
    tokio::time::sleep(time).await;
    lookup.kill().await?;
    let elapsed = started.elapsed();
    let seen = run.finish(load::Redirects::merge).await;
    let rate = seen.redirected() as f64 / elapsed.as_secs_f64();
    let one_interval = (rate * FLUSH.as_secs_f64()).ceil() as u64;
    o.acknowledged += seen.ok;
    o.wrong += seen.wrong;
    o.measured(
        "redirect rate before SIGKILL",
        format!(
            "{rate:.0}/s (one {} ms flush = {one_interval} clicks)",
            FLUSH.as_millis()
        ),
    );
    click_figures(&mut o, &world, &killed, seen.redirected(), one_interval * 2).await?;
    if let Some(f) = o.figures.last_mut() {
        f.label = "SIGKILL: clicks counted / redirects answered".into();
    }

    // SIGTERM while answering: drains and flushes everything it answered.
    lookup.restart().await?;
    let termed = world
        .create_links(&create, "https://example.com/t", 200)
        .await?;
    let run = load::redirects(
        &world.http,
        vec![lookup.url("")],
        shared(&termed),
        redirect_bounds(time + Duration::from_secs(30)),
    );
    tokio::time::sleep(time).await;
    let (took, clean) = lookup.terminate(Duration::from_secs(30)).await?;
    let seen = run.finish(load::Redirects::merge).await;
    o.acknowledged += seen.ok;
    o.wrong += seen.wrong;
    o.figure(
        "SIGTERM: clean exit",
        format!("{} in {}", if clean { "yes" } else { "no" }, seconds(took)),
        "yes",
        clean,
    );
    click_figures(&mut o, &world, &termed, seen.redirected(), 0).await?;
    if let Some(f) = o.figures.last_mut() {
        f.label = "SIGTERM: clicks counted / redirects answered".into();
    }
    Ok(o)
}
