//! Read replicas: round robin over the healthy ones, with a background probe that
//! measures replication lag and brings failed replicas back.
//!
//! A replica is taken out of rotation on its first failed or timed-out read (the
//! request then reads the primary) and returns when a probe answers again. Lag is
//! "0 when everything received is replayed, else the age of the last replayed
//! transaction", which stays honest on an idle primary.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use super::{Database, Engine};
use sqlx::{AnyPool, Row};

const PROBE_EVERY: Duration = Duration::from_millis(500);
const PROBE_DEADLINE: Duration = Duration::from_millis(500);

const LAG_SQL: &str = "SELECT CAST(CASE \
    WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
    ELSE COALESCE(EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())) * 1000, 0) \
    END AS BIGINT)";

#[derive(Debug)]
pub struct Replica {
    pool: AnyPool,
    healthy: AtomicBool,
    lag_ms: AtomicI64,
}

impl Replica {
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Out of rotation until a probe succeeds.
    pub fn failed(&self) {
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!("replica taken out of rotation");
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Replicas {
    all: Arc<Vec<Arc<Replica>>>,
    next: Arc<AtomicUsize>,
}

impl Replicas {
    /// The database's replicas (PostgreSQL only; the embedded engine has none), all
    /// taken for healthy until [`Replicas::probes`] say otherwise.
    pub fn new(db: &Database) -> Replicas {
        if db.engine() != Engine::Postgres {
            return Replicas::default();
        }
        let all: Vec<Arc<Replica>> = db
            .replicas()
            .iter()
            .map(|pool| {
                Arc::new(Replica {
                    pool: pool.clone(),
                    healthy: AtomicBool::new(true),
                    lag_ms: AtomicI64::new(0),
                })
            })
            .collect();
        Replicas {
            all: Arc::new(all),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The tasks that keep each replica's health and lag current.
    pub fn probes(
        &self,
    ) -> impl Iterator<Item = impl std::future::Future<Output = ()> + Send + 'static> + '_ {
        self.all.iter().map(|replica| probe(replica.clone()))
    }

    /// The next healthy replica, round robin; `None` sends the read to the primary.
    pub fn pick(&self) -> Option<&Arc<Replica>> {
        let n = self.all.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if let Some(replica) = self.all.get(i)
                && replica.healthy.load(Ordering::Acquire)
            {
                return Some(replica);
            }
        }
        None
    }

    /// Largest lag among healthy replicas, in ms.
    pub fn max_lag_ms(&self) -> i64 {
        self.all
            .iter()
            .filter(|r| r.healthy.load(Ordering::Acquire))
            .map(|r| r.lag_ms.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    pub fn healthy_count(&self) -> usize {
        self.all
            .iter()
            .filter(|r| r.healthy.load(Ordering::Acquire))
            .count()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

async fn probe(replica: Arc<Replica>) {
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    loop {
        ticker.tick().await;
        // A pool busy with reads is not a failed replica: with every connection in use
        // (a load burst) this round is skipped rather than taking the replica out of
        // rotation and sending the whole load to the primary. A replica that does not
        // answer is taken out by the reads themselves (their deadline), and one out of
        // rotation has an idle pool, so the probe that brings it back always gets in.
        let Ok(Ok(mut conn)) = tokio::time::timeout(PROBE_DEADLINE, replica.pool.acquire()).await
        else {
            if !replica.healthy.load(Ordering::Acquire) {
                tracing::warn!("replica probe could not get a connection");
            }
            continue;
        };
        let result =
            tokio::time::timeout(PROBE_DEADLINE, sqlx::query(LAG_SQL).fetch_one(&mut *conn)).await;
        drop(conn);
        match result {
            Ok(Ok(row)) => {
                let lag: i64 = row.try_get(0).unwrap_or(0);
                replica.lag_ms.store(lag.max(0), Ordering::Relaxed);
                if !replica.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!(lag_ms = lag, "replica back in rotation");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "replica probe failed");
                replica.failed();
            }
            Err(_) => {
                tracing::warn!("replica probe timed out");
                replica.failed();
            }
        }
    }
}
