//! The `max_visits` check on the redirect path: a link with a visit limit answers 410
//! once the larger of its applied click total and this instance's own count reaches
//! the limit.
//!
//! The applied total is re-read at most once a second per link, from a replica when
//! one is healthy, under the replica deadline (`lookup.replica_timeout`): a replica
//! or primary that does not answer in time costs the redirect that long once, and the
//! check then goes on with the count it has. A replica that timed out leaves the
//! rotation, as after any failed read.
//!
//! Bound: a link with `max_visits = N` redirects at most N times plus the visits other
//! instances answered in the last flush interval + apply delay + one second (their
//! clicks are not yet in the applied total), plus requests racing the last visit.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::db::replicas::Replica;
use common::db::{Database, clicks};

/// How often a link's applied total is read again.
const APPLIED_REREAD_MS: i64 = 1000;

#[derive(Debug, Default)]
struct Visits {
    local: AtomicI64,
    applied: AtomicI64,
    read_at: AtomicI64,
}

pub struct VisitLimiter {
    visits: moka::future::Cache<String, Arc<Visits>>,
    db: Database,
    deadline: Duration,
}

impl std::fmt::Debug for VisitLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitLimiter").finish()
    }
}

impl VisitLimiter {
    /// Reads of the applied total give up after `deadline`.
    pub fn new(db: Database, deadline: Duration) -> VisitLimiter {
        VisitLimiter {
            visits: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            db,
            deadline,
        }
    }

    /// Whether `code` is still under `max_visits`; if so and `count`, counts one
    /// visit. False means the limit is reached (the redirect answers 410).
    pub async fn admit(
        &self,
        code: &str,
        max_visits: i64,
        count: bool,
        replica: Option<&Arc<Replica>>,
    ) -> bool {
        let visits = self
            .visits
            .get_with_by_ref(code, async { Arc::new(Visits::default()) })
            .await;
        let now = common::time::now_ms();
        if now - visits.read_at.load(Ordering::Relaxed) >= APPLIED_REREAD_MS {
            visits.read_at.store(now, Ordering::Relaxed);
            let pool = replica.map_or(self.db.primary(), |r| r.pool());
            match tokio::time::timeout(self.deadline, clicks::total(pool, code)).await {
                Ok(Ok(total)) => visits.applied.store(total, Ordering::Relaxed),
                Ok(Err(e)) => {
                    if let Some(replica) = replica {
                        replica.failed();
                    }
                    tracing::warn!(error = %e, "visit total unavailable; using the local count");
                }
                Err(_) => {
                    if let Some(replica) = replica {
                        replica.failed();
                    }
                    tracing::warn!(deadline = ?self.deadline, "visit total timed out; using the local count");
                }
            }
        }
        let local = visits.local.load(Ordering::Relaxed);
        if local.max(visits.applied.load(Ordering::Relaxed)) >= max_visits {
            return false;
        }
        if count {
            visits.local.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}
