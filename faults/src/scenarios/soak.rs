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
    // (seconds since start, RSS KiB of each service) every 5 s.
    let mut samples: Vec<(f64, Vec<u64>)> = Vec::new();
    let mut stats_reads = 0u64;
    let mut stats_failures = 0u64;
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(5)).await;
        samples.push((
            started.elapsed().as_secs_f64(),
            services.iter().map(|s| s.rss_kib().unwrap_or(0)).collect(),
        ));
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
    let csv = ctx.paths.log_dir.join("rss.csv");
    write_samples(&csv, &services, &samples)?;
    o.note(format!("RSS every 5 s: {}", csv.display()));
    for (i, s) in services.iter().enumerate() {
        let series: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(t, _)| *t >= warm_up.as_secs_f64())
            .map(|(t, rss)| (*t, rss[i] as f64 / 1024.0))
            .collect();
        let Some(m) = Memory::of(&series) else {
            o.figure(
                &format!("{} RSS after warm-up", s.name),
                "no samples",
                "< +5%",
                false,
            );
            continue;
        };
        o.figure(
            &format!("{} RSS peak, first → last quarter after warm-up", s.name),
            format!(
                "{:.1} → {:.1} MiB ({:+.1}%; first and last sample {:.1} → {:.1}, trend {:+.1} MiB/h)",
                m.first_peak, m.last_peak, m.growth_percent, m.first, m.last, m.mib_per_hour
            ),
            "< +5%",
            m.growth_percent < 5.0,
        );
    }
    click_figures(&mut o, &world, &links, seen.redirected(), 0).await?;
    Ok(o)
}

/// Memory of one service after warm-up, from its RSS samples (seconds, MiB). RSS
/// moves in a band as batches are allocated and freed, so one sample against another
/// measures where in the band each fell; a leak shows as the band itself rising: the
/// peak of the last quarter above the peak of the first.
#[derive(Debug)]
struct Memory {
    first: f64,
    last: f64,
    first_peak: f64,
    last_peak: f64,
    growth_percent: f64,
    /// Least-squares slope over every sample.
    mib_per_hour: f64,
}

impl Memory {
    fn of(series: &[(f64, f64)]) -> Option<Memory> {
        let (&(t0, first), &(t1, last)) = (series.first()?, series.last()?);
        let quarter = (t1 - t0) / 4.0;
        let peak = |keep: &dyn Fn(f64) -> bool| {
            series
                .iter()
                .filter(|(t, _)| keep(*t))
                .map(|(_, v)| *v)
                .fold(0.0, f64::max)
        };
        let first_peak = peak(&|t| t <= t0 + quarter);
        let last_peak = peak(&|t| t >= t1 - quarter);
        let n = series.len() as f64;
        let (mean_t, mean_v) = (
            series.iter().map(|(t, _)| t).sum::<f64>() / n,
            series.iter().map(|(_, v)| v).sum::<f64>() / n,
        );
        let (mut cov, mut var) = (0.0, 0.0);
        for (t, v) in series {
            cov += (t - mean_t) * (v - mean_v);
            var += (t - mean_t) * (t - mean_t);
        }
        let slope = if var > 0.0 { cov / var } else { 0.0 };
        Some(Memory {
            first,
            last,
            first_peak,
            last_peak,
            growth_percent: if first_peak > 0.0 {
                (last_peak - first_peak) * 100.0 / first_peak
            } else {
                0.0
            },
            mib_per_hour: slope * 3600.0,
        })
    }
}

/// The samples as CSV (`seconds,<service>,…`, KiB), for plotting.
fn write_samples(
    path: &std::path::Path,
    services: &[&crate::procs::Service],
    samples: &[(f64, Vec<u64>)],
) -> Result<()> {
    let mut csv = String::from("seconds");
    for s in services {
        csv.push(',');
        csv.push_str(&s.name);
    }
    csv.push('\n');
    for (t, rss) in samples {
        csv.push_str(&format!("{t:.1}"));
        for v in rss {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    std::fs::write(path, csv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_that_does_not_rise_is_no_growth() {
        // A sawtooth between 60 and 90 MiB, sampled low at the start, high at the end.
        let series: Vec<(f64, f64)> = (0..=100)
            .map(|i| {
                (
                    i as f64 * 5.0,
                    if i % 7 == 3 {
                        90.0
                    } else {
                        60.0 + (i % 7) as f64
                    },
                )
            })
            .collect();
        let m = Memory::of(&series).unwrap();
        assert_eq!((m.first_peak, m.last_peak), (90.0, 90.0));
        assert!(m.growth_percent.abs() < 1e-9);
    }

    #[test]
    fn a_rising_band_is_growth() {
        // 100 MiB plus 1 MiB a minute for an hour: peaks 115 → 160, and 60 MiB/h.
        let series: Vec<(f64, f64)> = (0..=720)
            .map(|i| (i as f64 * 5.0, 100.0 + i as f64 * 5.0 / 60.0))
            .collect();
        let m = Memory::of(&series).unwrap();
        assert!(m.growth_percent > 30.0, "{m:?}");
        assert!((m.mib_per_hour - 60.0).abs() < 1e-6, "{m:?}");
        assert!(Memory::of(&[]).is_none());
    }
}
