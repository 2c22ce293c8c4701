//! Click recording in lookup: the redirect adds to an in-memory aggregate; a background
//! task flushes it every `stats.flush_interval` as one batch into the durable queue
//! (the `click_batches` outbox on the primary).
//!
//! The redirect never waits: recording is a map update under one of sixteen shard
//! locks. While the queue is unreachable, flushed batches wait in memory (at most
//! `stats.max_pending_batches`; past that the oldest is dropped, counted and logged)
//! and are retried in order with backoff. A batch's id is fixed when it is cut, so a
//! retry after a lost answer cannot count it twice. On shutdown everything buffered is
//! flushed; a crash loses at most what was buffered since the last flush.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::background::CancellationToken;
use common::backoff::Backoff;
use common::clicks::{Click, ClickBatch};

use crate::buffer::ClickBuffer;
use common::config::StatsSettings;
use common::db::{Database, clicks};
use common::metrics::{Metrics, register};
use prometheus::{IntCounter, IntGauge};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

pub struct ClickMetrics {
    pub recorded: IntCounter,
    pub dropped: IntCounter,
    pub flushed_batches: IntCounter,
    pub flushed_clicks: IntCounter,
    pub flush_errors: IntCounter,
    pub pending: IntGauge,
}

impl ClickMetrics {
    fn new(metrics: &Metrics) -> ClickMetrics {
        let r = metrics.registry();
        let counter = |name: &str, help: &str| register(r, IntCounter::new(name, help));
        ClickMetrics {
            recorded: counter(
                "clicks_recorded_total",
                "Clicks added to the in-memory aggregate.",
            ),
            dropped: counter(
                "clicks_dropped_total",
                "Clicks lost because a memory bound was reached (buffer keys or pending batches).",
            ),
            flushed_batches: counter(
                "click_batches_flushed_total",
                "Batches written to the queue.",
            ),
            flushed_clicks: counter(
                "click_batch_clicks_total",
                "Clicks in batches written to the queue.",
            ),
            flush_errors: counter(
                "click_flush_errors_total",
                "Failed attempts to write a batch.",
            ),
            pending: register(
                r,
                IntGauge::new(
                    "click_batches_pending",
                    "Batches waiting for the queue to accept them.",
                ),
            ),
        }
    }
}

pub struct ClickRecorder {
    buffer: ClickBuffer,
    pending: Mutex<VecDeque<ClickBatch>>,
    db: Database,
    settings: StatsSettings,
    instance: String,
    sequence: AtomicU64,
    pub metrics: ClickMetrics,
}

impl std::fmt::Debug for ClickRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickRecorder")
            .field("instance", &self.instance)
            .finish()
    }
}

/// A key for `purpose` derived from the code key, so a deployment has one secret
/// less to manage per purpose (domain-separated: it reveals nothing about the code
/// key, nor about the key of another purpose).
pub fn derived_key(purpose: &str, code_key: &[u8]) -> [u8; 32] {
    let digest = Sha256::new()
        .chain_update(format!("shortener {purpose} key v1\0").as_bytes())
        .chain_update(code_key)
        .finalize();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    key
}

/// The visitor-hash key (see [`derived_key`]).
pub fn visitor_key(code_key: &[u8]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&derived_key("visitor", code_key)[..16]);
    key
}

impl ClickRecorder {
    /// The recorder; [`ClickRecorder::run`] is its flusher.
    pub fn new(db: Database, settings: StatsSettings, metrics: &Metrics) -> Arc<ClickRecorder> {
        Arc::new(ClickRecorder {
            buffer: ClickBuffer::new(settings.max_buffered_keys),
            pending: Mutex::new(VecDeque::new()),
            db,
            instance: format!("{:016x}", rand::random::<u64>()),
            sequence: AtomicU64::new(0),
            metrics: ClickMetrics::new(metrics),
            settings,
        })
    }

    /// Flushes every `stats.flush_interval` (backing off while the queue refuses)
    /// until `stop` fires, then flushes what is left, for up to `drain`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken, drain: Duration) {
        let mut ticker = tokio::time::interval(self.settings.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        let mut failing = false;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.cancelled() => break,
            }
            if failing {
                tokio::select! {
                    _ = backoff.wait() => {}
                    _ = stop.cancelled() => break,
                }
            }
            failing = !self.flush().await;
            if !failing {
                backoff.reset();
            }
        }
        self.drain(drain).await;
    }

    /// Hot path: one map update.
    pub fn record(&self, click: &Click<'_>) {
        if self.buffer.record(click) {
            self.metrics.recorded.inc();
        } else {
            self.metrics.dropped.inc();
        }
    }

    /// Cuts a batch from the buffer and writes every pending batch, oldest first.
    /// Returns false when the queue refused (pending batches stay for the next try).
    pub async fn flush(&self) -> bool {
        let mut pending = self.pending.lock().await;
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{seq}", self.instance);
        if let Some(batch) = self.buffer.drain(id, common::time::now_ms()) {
            pending.push_back(batch);
        }
        // Past the dedupe window a copy that did reach the queue may be forgotten
        // there, so re-sending could count it twice: drop it instead, counted.
        let oldest_allowed =
            common::time::now_ms().saturating_sub(self.settings.dedupe_window_ms());
        while pending.len() > self.settings.max_pending_batches
            || pending
                .front()
                .is_some_and(|b| b.created_at < oldest_allowed)
        {
            if let Some(lost) = pending.pop_front() {
                self.metrics.dropped.inc_by(lost.clicks());
                tracing::error!(
                    clicks = lost.clicks(),
                    "click batch dropped: queue unreachable too long"
                );
            }
        }
        while let Some(batch) = pending.front() {
            match clicks::enqueue(self.db.primary(), batch).await {
                Ok(()) => {
                    self.metrics.flushed_batches.inc();
                    self.metrics.flushed_clicks.inc_by(batch.clicks());
                    pending.pop_front();
                }
                Err(e) => {
                    self.metrics.flush_errors.inc();
                    tracing::warn!(error = %e, pending = pending.len(), "click batch not queued yet; retrying");
                    self.metrics.pending.set(pending.len() as i64);
                    return false;
                }
            }
        }
        self.metrics.pending.set(0);
        true
    }

    /// On shutdown: flush until everything is queued or `deadline` passes.
    pub async fn drain(&self, deadline: Duration) {
        let until = tokio::time::Instant::now() + deadline;
        while !self.flush().await {
            if tokio::time::Instant::now() >= until {
                let left = self
                    .pending
                    .lock()
                    .await
                    .iter()
                    .map(ClickBatch::clicks)
                    .sum::<u64>();
                tracing::error!(clicks = left, "shutting down with click batches not queued");
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
