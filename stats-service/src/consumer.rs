//! Applies queued click batches to the counters, exactly once each (see
//! `common::db::clicks::apply_pending`), and exports the queue's lag.

use std::sync::Arc;
use std::time::Duration;

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

/// Running appliers; [`Consumers::stop`] lets each finish its round, then ends them.
pub struct Consumers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumers")
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

impl Consumers {
    /// Drains: no new round starts, the current ones commit (or roll back) first.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// Starts `settings.consumers` appliers and a lag reporter.
pub fn start(db: Database, settings: StatsSettings, metrics: Arc<ConsumerMetrics>) -> Consumers {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = (0..settings.consumers.max(1))
        .map(|_| {
            tokio::spawn(run(
                db.clone(),
                settings.clone(),
                metrics.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    let window_ms = settings.dedupe_window_ms();
    tokio::spawn(async move {
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
    Consumers { stop, tasks }
}

async fn run(
    db: Database,
    settings: StatsSettings,
    metrics: Arc<ConsumerMetrics>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let idle = Duration::from_millis(settings.poll_ms);
    let mut backoff = Duration::from_millis(100);
    while !*stopped.borrow() {
        match clicks::apply_pending(&db, settings.apply_batch, settings.max_attempts).await {
            Ok(applied) => {
                backoff = Duration::from_millis(100);
                metrics.batches.inc_by(applied.batches);
                metrics.clicks.inc_by(applied.clicks);
                metrics.dead.inc_by(applied.dead);
                let now = common::time::now_ms();
                for cut_at in &applied.cut_at {
                    metrics.delay.observe((now - cut_at).max(0) as f64 / 1000.0);
                }
                if applied.batches == 0 && applied.dead == 0 {
                    let _ = tokio::time::timeout(idle, stopped.changed()).await;
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
                tokio::time::sleep(common::events::jittered(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}
