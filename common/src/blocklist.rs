//! The runtime host blocklist: the `blocked_hosts` table, held in memory by every
//! lookup and create instance, and the admin operations that change it.
//!
//! An instance loads the table when it starts, then reloads it whole on each
//! blocklist-changed announcement and at least every `links.blocklist_reload_secs`
//! (a little sooner, so that instances started together spread their reloads). The
//! announcement makes a change apply within a round trip; the timer bounds how long
//! an instance that missed it (Redis down, subscription lost, or the all-in-one,
//! whose admin commands run in another process) keeps the old list: one period after
//! the change is committed. A failed reload keeps the list it has.
//!
//! Reloads read the primary: a replica may not yet have the change an announcement
//! is about.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::Notify;

use crate::db::blocked_hosts::{self, BlockedHostRecord};
use crate::db::{Database, StoreError};
use crate::deps::Deps;
use crate::events::{BlocklistHandler, InvalidationSource, subscribe_blocklist};
use crate::links::{Blocklist, HostEntry, HostEntryError};
use crate::metrics::{Metrics, register};

/// Longest reason kept with a block.
pub const MAX_REASON_CHARS: usize = 500;

/// Why an admin operation on the blocklist failed.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    #[error(transparent)]
    Host(#[from] HostEntryError),
    #[error("the reason must be at most {MAX_REASON_CHARS} characters, without control characters")]
    Reason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether running instances were told about a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement {
    /// Published: instances listening reload at once.
    Published,
    /// No Redis (and no in-process bus): instances see the change at their next
    /// periodic reload.
    NoBus,
    /// Publishing failed (the cause, for the operator); the periodic reload applies
    /// the change instead.
    Failed(String),
    /// Nothing changed, so nothing was announced.
    Unchanged,
}

/// The result of a block or an unblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The normalised host the operation was about.
    pub host: String,
    /// False when the host was blocked already (block) or was not blocked (unblock).
    pub changed: bool,
    pub announced: Announcement,
}

/// Blocks `host` and its subdomains, then announces the change on `bus`.
pub async fn block(
    db: &Database,
    bus: &InvalidationSource,
    host: &str,
    reason: &str,
) -> Result<Outcome, BlocklistError> {
    let entry = HostEntry::parse(host)?;
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(BlocklistError::Reason);
    }
    let record = BlockedHostRecord {
        host: entry.into_string(),
        reason: reason.to_string(),
        created_at: crate::time::now_ms(),
    };
    let changed = blocked_hosts::insert(db.primary(), &record).await?;
    Ok(Outcome {
        announced: announce(bus, changed).await,
        host: record.host,
        changed,
    })
}

/// Unblocks `host` (exactly as it was blocked: a subdomain of a blocked host cannot
/// be unblocked on its own), then announces the change on `bus`.
pub async fn unblock(
    db: &Database,
    bus: &InvalidationSource,
    host: &str,
) -> Result<Outcome, BlocklistError> {
    let entry = HostEntry::parse(host)?;
    let changed = blocked_hosts::delete(db.primary(), entry.as_str()).await?;
    Ok(Outcome {
        announced: announce(bus, changed).await,
        host: entry.into_string(),
        changed,
    })
}

/// Every runtime block, by host (the configured `links.blocked_hosts` are not in it).
pub async fn list(db: &Database) -> Result<Vec<BlockedHostRecord>, StoreError> {
    blocked_hosts::list(db.primary()).await
}

async fn announce(bus: &InvalidationSource, changed: bool) -> Announcement {
    if !changed {
        return Announcement::Unchanged;
    }
    match crate::events::publish_blocklist_changed(bus).await {
        Ok(true) => Announcement::Published,
        Ok(false) => Announcement::NoBus,
        Err(e) => {
            tracing::warn!(error = %e, "blocklist change not announced; instances apply it at their next reload");
            Announcement::Failed(e.to_string())
        }
    }
}

/// The bus an admin command announces on: Redis when the settings name one.
pub fn admin_bus(deps: &Deps) -> InvalidationSource {
    match &deps.redis {
        Some(redis) => InvalidationSource::Redis(redis.clone()),
        None => InvalidationSource::None,
    }
}

struct KeeperMetrics {
    hosts: IntGauge,
    reloads: IntCounterVec,
}

impl KeeperMetrics {
    fn new(metrics: &Metrics, subscribed: Arc<AtomicBool>) -> KeeperMetrics {
        let r = metrics.registry();
        let reloads = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "blocklist_reloads_total",
                    "Reloads of the runtime host blocklist, by result (ok, error).",
                ),
                &["result"],
            ),
        );
        for result in ["ok", "error"] {
            reloads.with_label_values(&[result]);
        }
        let subscription_up = register(
            r,
            IntGauge::new(
                "blocklist_subscription_up",
                "1 while blocklist announcements can reach this instance.",
            ),
        );
        metrics.on_scrape(move || {
            subscription_up.set(i64::from(subscribed.load(Ordering::Acquire)));
        });
        KeeperMetrics {
            hosts: register(
                r,
                IntGauge::new(
                    "blocklist_hosts",
                    "Blocked host entries in effect (configured and runtime).",
                ),
            ),
            reloads,
        }
    }
}

/// Wakes the keeper on an announcement.
struct Wake(Arc<Notify>);

impl BlocklistHandler for Wake {
    fn changed(&self) {
        // Stores a permit when the keeper is busy reloading, so a change announced
        // during a reload is followed by one more.
        self.0.notify_one();
    }
}

/// Keeps `deps.blocklist` equal to the table: loads it now (returning once the first
/// load is done or failed), then reloads on every announcement from `source` and at
/// least every `links.blocklist_reload_secs`, until the database pool is closed. A
/// blocklist already kept by another service of this process is left to it.
pub async fn keep_current(deps: Deps, source: InvalidationSource) {
    let blocklist = deps.blocklist.clone();
    if !blocklist.claim_keeper() {
        return;
    }
    let subscribed = Arc::new(AtomicBool::new(false));
    let metrics = KeeperMetrics::new(&deps.metrics, subscribed.clone());
    let period = deps.settings.blocklist_reload_period();
    let db = deps.db.clone();
    let wake = Arc::new(Notify::new());
    if matches!(source, InvalidationSource::None) {
        // Nobody announces changes, so none can be missed: the timer is the design.
        subscribed.store(true, Ordering::Release);
    }
    subscribe_blocklist(source, Arc::new(Wake(wake.clone())), subscribed);
    reload(&blocklist, &db, &metrics).await;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(early(period)) => {}
            }
            if db.primary().is_closed() {
                return;
            }
            reload(&blocklist, &db, &metrics).await;
        }
    });
}

/// Between 75% and 100% of `period`: never later than the documented bound.
fn early(period: Duration) -> Duration {
    period.mul_f64(0.75 + rand::random::<f64>() * 0.25)
}

async fn reload(blocklist: &Blocklist, db: &Database, metrics: &KeeperMetrics) {
    match blocked_hosts::hosts(db.primary()).await {
        Ok(hosts) => {
            let entries = blocklist.replace_runtime(&hosts);
            metrics
                .hosts
                .set(i64::try_from(entries).unwrap_or(i64::MAX));
            metrics.reloads.with_label_values(&["ok"]).inc();
        }
        Err(e) => {
            metrics.reloads.with_label_values(&["error"]).inc();
            tracing::warn!(error = %e, "blocklist reload failed; keeping the list in effect");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_come_early_never_late() {
        let period = Duration::from_secs(15);
        for _ in 0..1000 {
            let d = early(period);
            assert!(d >= period.mul_f64(0.75) && d <= period, "{d:?}");
        }
    }
}
