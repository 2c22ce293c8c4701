//! The Snowflake worker-id lease: a row in the primary database that a process renews
//! while it generates ids, so two live processes never share a worker id.
//!
//! A process takes its configured id (explicit, or the ordinal of its StatefulSet pod
//! name) and refuses to start when another live process holds it; without either it
//! takes the lowest free id. The lease is renewed every third of its TTL. If renewal
//! fails for two thirds of a TTL (database unreachable) the lease is reported invalid
//! until a renewal succeeds again; if the row was taken over, for good. The caller
//! stops issuing ids meanwhile: a partitioned process cannot know whether somebody
//! else now owns its id.
//!
//! The row also bounds the timestamps of ids issued under the worker id
//! (`issued_until`): renewals raise it to the lease expiry, a clean release lowers it
//! to the newest id actually issued. A new holder starts its generator above it, so
//! ids stay unique across restarts even when clocks disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::background::{Background, TaskGroup};
use crate::config::IdSettings;
use crate::db::{Database, StoreError, leases};
use crate::ids::WorkerId;
use crate::time::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "Snowflake worker id {worker} is held by another live process ({holder}); \
         two processes must never share a worker id, so this one refuses to start"
    )]
    Taken { worker: u16, holder: String },
    #[error("all 1024 Snowflake worker ids are leased by live processes")]
    Exhausted,
    #[error("worker-id lease: {0}")]
    Store(#[from] StoreError),
    #[error("invalid worker id: {0}")]
    Invalid(String),
}

/// A held lease; renewed in the background until [`WorkerLease::release`].
pub struct WorkerLease {
    worker: WorkerId,
    holder: String,
    floor_ms: u64,
    valid: Arc<AtomicBool>,
    renewed_at: Arc<AtomicI64>,
    db: Database,
    /// The renewal task; stopped by [`WorkerLease::release`].
    renewal: TaskGroup,
}

impl std::fmt::Debug for WorkerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLease")
            .field("worker", &self.worker.get())
            .field("holder", &self.holder)
            .finish()
    }
}

/// Identifies this process in the lease table (shown in the refusal message).
fn holder_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    let nonce: u32 = rand::random();
    format!("{host}/pid-{}/{nonce:08x}", std::process::id())
}

impl WorkerLease {
    /// Takes the configured worker id, or the lowest free one, and renews it from a
    /// task of `background` until released.
    pub async fn acquire(
        db: &Database,
        settings: &IdSettings,
        background: &Background,
    ) -> Result<WorkerLease, LeaseError> {
        let ttl_ms = i64::try_from(settings.lease_ttl.as_millis()).unwrap_or(30_000);
        let holder = holder_name();
        let wanted = match (settings.worker_id, &settings.pod_name) {
            (Some(id), _) => {
                Some(WorkerId::new(id).map_err(|e| LeaseError::Invalid(e.to_string()))?)
            }
            (None, Some(pod)) => Some(
                WorkerId::from_pod_name(pod)
                    .ok_or_else(|| LeaseError::Invalid(format!("pod name `{pod}`")))?,
            ),
            (None, None) => None,
        };
        let (worker, floor_ms) = match wanted {
            Some(worker) => {
                // Retried only when the row changed between our read and our write.
                let mut outcome = None;
                for _ in 0..8 {
                    match Self::try_take(db, worker, &holder, ttl_ms).await? {
                        Take::Taken(floor) => {
                            outcome = Some(floor);
                            break;
                        }
                        Take::Held(by) => {
                            return Err(LeaseError::Taken {
                                worker: worker.get(),
                                holder: by,
                            });
                        }
                        Take::Raced => {}
                    }
                }
                let floor = outcome.ok_or(LeaseError::Taken {
                    worker: worker.get(),
                    holder: "a process that keeps taking it".into(),
                })?;
                (worker, floor)
            }
            None => Self::acquire_lowest_free(db, &holder, ttl_ms).await?,
        };
        tracing::info!(worker = worker.get(), %holder, floor_ms, "Snowflake worker id leased");
        let valid = Arc::new(AtomicBool::new(true));
        let renewed_at = Arc::new(AtomicI64::new(now_ms()));
        let renewal = background.group();
        renewal.spawn(renew_loop(
            db.clone(),
            worker,
            holder.clone(),
            ttl_ms,
            valid.clone(),
            renewed_at.clone(),
        ));
        Ok(WorkerLease {
            worker,
            holder,
            floor_ms,
            valid,
            renewed_at,
            db: db.clone(),
            renewal,
        })
    }

    /// One attempt at `worker`: read the row, then compare-and-set it.
    async fn try_take(
        db: &Database,
        worker: WorkerId,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Take, LeaseError> {
        let pool = db.primary();
        let now = now_ms();
        let seen = leases::get(pool, worker.get()).await?;
        if let Some(row) = &seen
            && row.expires_at >= now
            && row.holder != holder
        {
            return Ok(Take::Held(row.holder.clone()));
        }
        if leases::try_acquire(pool, worker.get(), holder, seen.as_ref(), now, now + ttl_ms).await?
        {
            Ok(Take::Taken(
                seen.map_or(0, |row| row.issued_until.max(0) as u64),
            ))
        } else {
            Ok(Take::Raced)
        }
    }

    async fn acquire_lowest_free(
        db: &Database,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<(WorkerId, u64), LeaseError> {
        // Another process may win the id we picked between the read and the write:
        // look again a bounded number of times.
        for _ in 0..64 {
            let live = leases::live(db.primary(), now_ms()).await?;
            let Some(candidate) = (0..1024u16).find(|id| !live.iter().any(|(l, _)| l == id)) else {
                return Err(LeaseError::Exhausted);
            };
            let worker =
                WorkerId::new(candidate).map_err(|e| LeaseError::Invalid(e.to_string()))?;
            if let Take::Taken(floor) = Self::try_take(db, worker, holder, ttl_ms).await? {
                return Ok((worker, floor));
            }
        }
        Err(LeaseError::Exhausted)
    }

    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    /// Unix ms up to which earlier holders of this worker id may have issued ids:
    /// the generator must start above it.
    pub fn floor_ms(&self) -> u64 {
        self.floor_ms
    }

    /// False once the lease may belong to someone else: stop issuing ids.
    pub fn is_valid(&self) -> bool {
        self.valid.load(Ordering::Acquire)
    }

    /// Unix ms of the last successful renewal.
    pub fn renewed_at(&self) -> i64 {
        self.renewed_at.load(Ordering::Relaxed)
    }

    /// Stops renewing and frees the row, recording the newest id timestamp issued, so
    /// a restart can take the id at once.
    pub async fn release(&self, last_issued_ms: u64) {
        self.renewal.stop(Duration::from_secs(1)).await;
        self.valid.store(false, Ordering::Release);
        let last = i64::try_from(last_issued_ms).unwrap_or(i64::MAX);
        if let Err(e) =
            leases::release(self.db.primary(), self.worker.get(), &self.holder, last).await
        {
            tracing::warn!(error = %e, "worker-id lease not released; it expires by itself");
        }
    }
}

enum Take {
    /// Ours now; carries the floor for the generator.
    Taken(u64),
    /// A live process holds it.
    Held(String),
    /// The row changed between read and write: look again.
    Raced,
}

async fn renew_loop(
    db: Database,
    worker: WorkerId,
    holder: String,
    ttl_ms: i64,
    valid: Arc<AtomicBool>,
    renewed_at: Arc<AtomicI64>,
) {
    let period = Duration::from_millis(u64::try_from(ttl_ms / 3).unwrap_or(10_000));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let now = now_ms();
        match leases::renew(db.primary(), worker.get(), &holder, now + ttl_ms).await {
            Ok(true) => {
                renewed_at.store(now, Ordering::Relaxed);
                // Still our row: nobody took the id while renewals failed.
                if !valid.swap(true, Ordering::AcqRel) {
                    tracing::info!(worker = worker.get(), "worker-id lease renewed again");
                }
            }
            Ok(false) => {
                // Our row expired and was taken over: ids issued from now on could
                // collide with the new holder's. Stay paused for good; readiness fails
                // and the orchestrator replaces this process.
                valid.store(false, Ordering::Release);
                tracing::error!(worker = worker.get(), "worker-id lease lost; ids stopped");
                return;
            }
            Err(e) => {
                // Keep the lease only while our last renewal is younger than the TTL,
                // with one renewal period of margin for clock differences.
                if now - renewed_at.load(Ordering::Relaxed) > ttl_ms - ttl_ms / 3 {
                    valid.store(false, Ordering::Release);
                    tracing::error!(error = %e, worker = worker.get(), "worker-id lease unrenewable; ids paused");
                } else {
                    tracing::warn!(error = %e, worker = worker.get(), "worker-id lease renewal failed");
                }
            }
        }
    }
}
