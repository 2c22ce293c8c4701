//! Applies queued click batches to the counters, exactly once each (claimed and
//! retired by `common::db::clicks::apply_pending`, added up by [`crate::deltas`]), and
//! exports the queue's lag.

use std::sync::Arc;
use std::time::Duration;

use common::background::{Background, CancellationToken, TaskGroup};
use common::backoff::Backoff;
use common::config::StatsSettings;
use common::db::{Database, clicks};
use common::metrics::{Metrics, register};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge};

pub struct ConsumerMetrics {
    pub batches: IntCounter,
    pub clicks: IntCounter,
    pub dead: IntCounter,
    pub failures: IntCounter,
    pub backlog: IntGauge,
    pub lag_ms: IntGauge,
    pub delay: Histogram,
}

impl ConsumerMetrics {
    pub fn new(metrics: &Metrics) -> Arc<ConsumerMetrics> {
        let r = metrics.registry();
        Arc::new(ConsumerMetrics {
            batches: register(
                r,
                IntCounter::new("stats_batches_applied_total", "Click batches applied."),
            ),
            clicks: register(
                r,
                IntCounter::new("stats_clicks_applied_total", "Clicks applied."),
            ),
            dead: register(
                r,
                IntCounter::new(
                    "stats_batches_dead_total",
                    "Batches moved to the dead letters.",
                ),
            ),
            failures: register(
                r,
                IntCounter::new(
                    "stats_apply_failures_total",
                    "Rounds that failed and were retried.",
                ),
            ),
            backlog: register(
                r,
                IntGauge::new("stats_queue_batches", "Batches waiting in the queue."),
            ),
            lag_ms: register(
                r,
                IntGauge::new(
                    "stats_queue_lag_milliseconds",
                    "Age of the oldest waiting batch.",
                ),
            ),
            delay: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "stats_batch_delay_seconds",
                        "From a batch being cut in lookup to its clicks being applied.",
                    )
                    .buckets(vec![
                        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
                        10.0, 30.0, 60.0,
                    ]),
                ),
            ),
        })
    }
}

/// Starts `settings.consumers` appliers in `appliers` (stopping the group lets each
/// finish its round) and the backlog reporter and tombstone purge on `background`.
pub fn start(
    db: &Database,
    settings: &StatsSettings,
    metrics: Arc<ConsumerMetrics>,
    appliers: &TaskGroup,
    background: &Background,
) {
    for _ in 0..settings.consumers.max(1) {
        let (db, settings, metrics) = (db.clone(), settings.clone(), metrics.clone());
        appliers.spawn_graceful(|stop| run(db, settings, metrics, stop));
    }
    let window_ms = settings.dedupe_window_ms();
    let db = db.clone();
    background.spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            ticker.tick().await;
            let now = common::time::now_ms();
            if let Ok((count, lag)) = clicks::backlog(db.primary(), now).await {
                metrics.backlog.set(count);
                metrics.lag_ms.set(lag);
            }
            // Tombstones past the dedupe window, once a minute: each consumer round
            // retires its batches, nothing else removes them.
            if ticks.is_multiple_of(60) {
                match clicks::purge_retired(db.primary(), now.saturating_sub(window_ms)).await {
                    Ok(purged) if purged > 0 => {
                        tracing::debug!(purged, "click batch tombstones purged")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging click batch tombstones failed"),
                }
            }
            ticks += 1;
        }
    });
}

/// Applies rounds until `stop` fires; a round under way commits (or rolls back) first.
async fn run(
    db: Database,
    settings: StatsSettings,
    metrics: Arc<ConsumerMetrics>,
    stop: CancellationToken,
) {
    let idle = settings.poll_interval;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    while !stop.is_cancelled() {
        match clicks::apply_pending(&db, settings.apply_batch, settings.max_attempts, merge).await {
            Ok(applied) => {
                backoff.reset();
                metrics.batches.inc_by(applied.batches);
                metrics.clicks.inc_by(applied.clicks);
                metrics.dead.inc_by(applied.dead);
                let now = common::time::now_ms();
                for cut_at in &applied.cut_at {
                    metrics.delay.observe((now - cut_at).max(0) as f64 / 1000.0);
                }
                if applied.batches == 0 && applied.dead == 0 {
                    let _ = tokio::time::timeout(idle, stop.cancelled()).await;
                }
            }
            Err(e) => {
                metrics.failures.inc();
                tracing::warn!(error = %e, "applying click batches failed; retrying");
                if !e.is_unavailable()
                    && let Ok(dead) =
                        clicks::record_failure(&db, settings.max_attempts, &e.to_string()).await
                {
                    metrics.dead.inc_by(dead);
                }
                tokio::select! {
                    _ = backoff.wait() => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
    }
}

/// stats-service's way of adding up a round: user agents filed by its classifier.
fn merge(batches: &[common::clicks::ClickBatch]) -> clicks::CounterDeltas {
    crate::deltas::merge(batches, crate::agents::classify_agent)
}

/// Applies what is queued until the queue is empty or `deadline` passes: the
/// all-in-one's last step before its appliers stop, so that clicks flushed at
/// shutdown are counted before the process ends.
pub async fn apply_remaining(db: &Database, settings: &StatsSettings, deadline: Duration) {
    let until = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < until {
        match clicks::apply_pending(db, settings.apply_batch, settings.max_attempts, merge).await {
            Ok(applied) if applied.batches == 0 && applied.dead == 0 => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "applying the last click batches failed");
                return;
            }
        }
    }
    tracing::warn!("stopping with click batches still queued; they are applied at the next start");
}
