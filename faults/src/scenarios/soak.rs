//! The soak: mixed traffic (follows through two lookup instances, creates, stats
//! reads) for a long time; memory must level off after warm-up and nothing may fail.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{click_figures, shared};
use crate::Ctx;
use crate::load::{self, Bounds};
use crate::procs::Kind;
use crate::report::{Outcome, seconds};
use crate::world::{Spec, Stack, World};

pub async fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut o = Outcome::new("soak", "redirects, creates, clicks");
    let total = ctx.soak.unwrap_or(Duration::from_secs(60));
    // Caches fill and pools open during the first sixth (at most five minutes).
    let warm_up = (total / 6).min(Duration::from_secs(300));
    let mut world = World::start(&ctx.paths, Spec::WITH_REDIS).await?;
    let Stack {
        create,
        stats,
        lookup,
        links,
    } = world.stack(&[], "https://example.com/soak", 20_000).await?;
    let lookups = [lookup, world.service(Kind::Lookup, &[]).await?];

    let redirects = load::redirects(
        &world.http,
        lookups.iter().map(|l| l.url("")).collect(),
        shared(&links),
        Bounds {
            concurrency: 16,
            max_requests: u64::MAX / 2,
            max_time: total,
            request_timeout: Duration::from_secs(2),
        },
    );
    let creates = load::creates(
        &world.http,
        create.url(""),
        world.api_key.clone(),
        "https://example.com/soak-new".into(),
        Bounds {
            concurrency: 2,
            max_requests: u64::MAX / 2,
            max_time: total,
            request_timeout: Duration::from_secs(5),
        },
        Duration::from_millis(20),
    );

    let started = Instant::now();
    let services = [&create, &stats, &lookups[0], &lookups[1]];
    let mut baseline: Option<Vec<u64>> = None;
    let mut peak = vec![0u64; services.len()];
    let mut stats_reads = 0u64;
    let mut stats_failures = 0u64;
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (i, s) in services.iter().enumerate() {
            peak[i] = peak[i].max(s.rss_kib().unwrap_or(0));
        }
        if baseline.is_none() && started.elapsed() >= warm_up {
            baseline = Some(services.iter().map(|s| s.rss_kib().unwrap_or(0)).collect());
        }
        let code = &links[stats_reads as usize % links.len()].code;
        let r = world
            .http
            .get(stats.url(&format!("/api/v1/links/{code}/stats")))
            .bearer_auth(&world.api_key)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        stats_reads += 1;
        let failure = match r {
            Ok(r) if r.status() == 200 => None,
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                Some(format!(
                    "{status} {}",
                    body.chars().take(200).collect::<String>()
                ))
            }
            Err(e) if e.is_timeout() => Some("no answer within 5 s".to_string()),
            Err(e) => Some(format!("{e:#}")),
        };
        if let Some(failure) = failure {
            stats_failures += 1;
            // The first few, with when they happened: enough to tell a pattern.
            if stats_failures <= 5 {
                o.note(format!(
                    "stats read of {code} at {} failed: {failure}",
                    seconds(started.elapsed())
                ));
            }
        }
    }
    let end: Vec<u64> = services.iter().map(|s| s.rss_kib().unwrap_or(0)).collect();
    let seen = redirects.finish(load::Redirects::merge).await;
    let made = creates.finish(load::Creates::merge).await;

    o.measured(
        "duration (warm-up)",
        format!("{} ({})", seconds(total), seconds(warm_up)),
    );
    o.acknowledged = seen.ok + made.acknowledged.len() as u64;
    o.wrong = seen.wrong;
    o.figure(
        "redirects / creates / stats reads that failed",
        format!(
            "{} of {} / {} of {} / {stats_failures} of {stats_reads}",
            seen.failed,
            seen.total(),
            made.error_count() + made.unavailable,
            made.acknowledged.len() as u64 + made.error_count() + made.unavailable
        ),
        "0 / 0 / 0",
        seen.failed == 0 && made.error_count() == 0 && made.unavailable == 0 && stats_failures == 0,
    );
    let baseline = baseline.unwrap_or_else(|| end.clone());
    for (i, s) in services.iter().enumerate() {
        let growth = if baseline[i] == 0 {
            0.0
        } else {
            (end[i] as f64 - baseline[i] as f64) * 100.0 / baseline[i] as f64
        };
        o.figure(
            &format!("{} RSS after warm-up → end", s.name),
            format!(
                "{:.1} → {:.1} MiB ({growth:+.1}%, peak {:.1})",
                baseline[i] as f64 / 1024.0,
                end[i] as f64 / 1024.0,
                peak[i] as f64 / 1024.0
            ),
            "< +5%",
            growth < 5.0,
        );
    }
    click_figures(&mut o, &world, &links, seen.redirected(), 0).await?;
    Ok(o)
}
