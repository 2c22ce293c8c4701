//! Small tables every instance holds whole in memory (the runtime blocklist, the
//! branded domains): how a change to one is announced, and how each instance keeps
//! its copy current.
//!
//! An instance loads the table when it starts, then reloads it whole on each
//! announcement and at least once a period (a little sooner, so that instances
//! started together spread their reloads). The announcement makes a change apply
//! within a round trip; the period bounds how long an instance that missed it (Redis
//! down, subscription lost, or an admin command in another process) keeps the old
//! copy. Reloads read the primary: a replica may not yet have the change an
//! announcement is about.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use prometheus::{IntCounterVec, IntGauge, Opts};
use tokio::sync::Notify;

use crate::db::StoreError;
use crate::deps::Deps;
use crate::events::{Bus, Event, Listener, Topic};
use crate::metrics::{Counters, Metrics, register};

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

/// Publishing an announcement: attempts, each under the Redis call deadline, with a
/// short pause between them.
const ANNOUNCE_ATTEMPTS: u32 = 3;
const ANNOUNCE_PAUSE: Duration = Duration::from_millis(100);

/// Announces `event` when `changed`, retrying a failed publish a few times.
pub async fn announce(bus: &Bus, event: Event, changed: bool) -> Announcement {
    if !changed {
        return Announcement::Unchanged;
    }
    let mut attempt = 1;
    let published = loop {
        match bus.publish(&event).await {
            Err(e) if attempt < ANNOUNCE_ATTEMPTS => {
                tracing::debug!(error = %e, attempt, ?event, "announcement failed; retrying");
                attempt += 1;
                tokio::time::sleep(ANNOUNCE_PAUSE).await;
            }
            done => break done,
        }
    };
    match published {
        Ok(true) => Announcement::Published,
        Ok(false) => Announcement::NoBus,
        Err(e) => {
            tracing::warn!(error = %e, ?event, "change not announced; instances apply it at their next reload");
            Announcement::Failed(e.to_string())
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

/// Keeps one held table current: runs `reload` now (returning once it is done), then
/// from a task of `deps.background` on every announcement on `topic` and at least
/// every `links.blocklist_reload`. Each reload reports the entries it left in effect,
/// exported with its outcome and the subscription's health under `names`.
pub async fn keep_current<F, Fut>(deps: &Deps, topic: Topic, names: KeeperNames, reload: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<usize, StoreError>> + Send,
{
    let subscription = deps.bus.subscription(topic);
    let metrics = KeeperMetrics::new(&deps.metrics, &names, subscription.flag());
    let period = deps.settings.blocklist_reload_period();
    let wake = Arc::new(Notify::new());
    subscription.start(Arc::new(Wake(wake.clone())), &deps.background);
    metrics.reloaded(names.what, reload().await);
    deps.background.spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(early(period)) => {}
            }
            metrics.reloaded(names.what, reload().await);
        }
    });
}

crate::label_values! {
    /// How a reload ended.
    enum Reload {
        Ok => "ok",
        Error => "error",
    }
}

/// What a held table is called in logs, and the names and help texts of its keeper's
/// three series: `(name, help)` each.
pub struct KeeperNames {
    pub what: &'static str,
    /// Entries in effect.
    pub size: (&'static str, &'static str),
    /// Reloads, by result (ok, error).
    pub reloads: (&'static str, &'static str),
    /// 1 while announcements can reach this instance.
    pub subscription_up: (&'static str, &'static str),
}

/// What a keeper exports: the entries in effect, its reloads by result, and whether
/// announcements can reach the instance (read from `subscribed` at each scrape).
struct KeeperMetrics {
    size: IntGauge,
    reloads: Counters<Reload>,
}

impl KeeperMetrics {
    fn new(metrics: &Metrics, names: &KeeperNames, subscribed: Arc<AtomicBool>) -> KeeperMetrics {
        let r = metrics.registry();
        let reloads = register(
            r,
            IntCounterVec::new(Opts::new(names.reloads.0, names.reloads.1), &["result"]),
        );
        let subscription_up = register(
            r,
            IntGauge::new(names.subscription_up.0, names.subscription_up.1),
        );
        metrics.on_scrape(move || {
            subscription_up.set(i64::from(subscribed.load(Ordering::Acquire)));
        });
        KeeperMetrics {
            size: register(r, IntGauge::new(names.size.0, names.size.1)),
            reloads: Counters::new(&reloads),
        }
    }

    /// Counts one reload: the entries it left in effect, or its failure.
    fn reloaded(&self, what: &str, result: Result<usize, StoreError>) {
        match result {
            Ok(entries) => {
                self.size.set(i64::try_from(entries).unwrap_or(i64::MAX));
                self.reloads.get(Reload::Ok).inc();
            }
            Err(e) => {
                self.reloads.get(Reload::Error).inc();
                tracing::warn!(error = %e, "{what} reload failed; keeping the copy in effect");
            }
        }
    }
}

/// Between 75% and 100% of `period`: never later than the documented bound.
fn early(period: Duration) -> Duration {
    period.mul_f64(0.75 + rand::random::<f64>() * 0.25)
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
