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

use futures_util::future::BoxFuture;
use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::Notify;

use crate::db::blocked_hosts::{self, BlockedHostRecord};
use crate::db::{Database, StoreError};
use crate::deps::Deps;
use crate::events::{Bus, Event, Listener, Topic};
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
    bus: &Bus,
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
pub async fn unblock(db: &Database, bus: &Bus, host: &str) -> Result<Outcome, BlocklistError> {
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

async fn announce(bus: &Bus, changed: bool) -> Announcement {
    if !changed {
        return Announcement::Unchanged;
    }
    match publish_with_retries(bus).await {
        Ok(true) => Announcement::Published,
        Ok(false) => Announcement::NoBus,
        Err(e) => {
            tracing::warn!(error = %e, "blocklist change not announced; instances apply it at their next reload");
            Announcement::Failed(e.to_string())
        }
    }
}

/// Publishing an announcement: attempts, each under the Redis call deadline, with a
/// short pause between them.
const ANNOUNCE_ATTEMPTS: u32 = 3;
const ANNOUNCE_PAUSE: Duration = Duration::from_millis(100);

async fn publish_with_retries(bus: &Bus) -> Result<bool, crate::redis::RedisError> {
    let mut attempt = 1;
    loop {
        match bus.publish(&Event::BlocklistChanged).await {
            Err(e) if attempt < ANNOUNCE_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, "blocklist announcement failed; retrying");
                attempt += 1;
                tokio::time::sleep(ANNOUNCE_PAUSE).await;
            }
            done => return done,
        }
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

impl Listener for Wake {
    fn event(&self, _event: Event) -> BoxFuture<'static, ()> {
        // Stores a permit when the keeper is busy reloading, so a change announced
        // during a reload is followed by one more.
        self.0.notify_one();
        Box::pin(std::future::ready(()))
    }

    fn missed(&self, connected: bool) {
        // Reload once the subscription is back; while it is lost, the periodic
        // reload is all there is, and a reload per reconnect attempt would only load
        // the database.
        if connected {
            self.0.notify_one();
        }
    }
}

/// Keeps `deps.blocklist` equal to the table: loads it now (returning once the first
/// load is done or failed), then reloads, from a task of `deps.background`, on every
/// announcement on `deps.bus` and at least every `links.blocklist_reload_secs`. A
/// blocklist already kept by another service of this process is left to it.
pub async fn keep_current(deps: &Deps) {
    let blocklist = deps.blocklist.clone();
    if !blocklist.claim_keeper() {
        return;
    }
    let subscription = deps.bus.subscription(Topic::Blocklist);
    let metrics = KeeperMetrics::new(&deps.metrics, subscription.flag());
    let period = deps.settings.blocklist_reload_period();
    let db = deps.db.clone();
    let wake = Arc::new(Notify::new());
    subscription.start(Arc::new(Wake(wake.clone())), &deps.background);
    reload(&blocklist, &db, &metrics).await;
    deps.background.spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(early(period)) => {}
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
