//! Group commit of single creates: concurrent `POST /api/v1/links` share one
//! transaction (a multi-row INSERT of the links, one of their audit rows), so one
//! commit (one WAL flush) acknowledges many links.
//!
//! Nothing waits for a batch to fill. A writer takes the first queued create and
//! whatever else queued while earlier commits were in flight, so a lone create
//! commits at once and batches grow only with load. A create is answered only after
//! its row is durable; a failure is reported to exactly the creates it concerns.

use std::collections::HashSet;
use std::sync::Arc;

use common::audit::insert_links;
use common::db::links::LinkRecord;
use common::db::{Database, StoreError};
use common::domain::audit::Entry;
use prometheus::{Histogram, HistogramOpts};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Creates that may queue before callers wait for room (backpressure, not loss).
const QUEUE: usize = 8192;

struct Pending {
    record: LinkRecord,
    entry: Entry,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue in front of the writers. Dropping it lets the writers finish what is
/// queued and stop.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Pending>,
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_rows: usize,
    rows: Histogram,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish()
    }
}

impl GroupCommit {
    /// The queue; [`GroupCommit::writer`] makes the tasks that empty it, each
    /// committing at most `max_rows` creates at a time.
    pub fn new(max_rows: usize, registry: &prometheus::Registry) -> GroupCommit {
        let rows = common::metrics::register(
            registry,
            Histogram::with_opts(
                HistogramOpts::new("create_commit_rows", "Creates carried by one group commit.")
                    .buckets(vec![
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
                    ]),
            ),
        );
        let (tx, rx) = mpsc::channel(QUEUE);
        GroupCommit {
            tx,
            rx: Arc::new(Mutex::new(rx)),
            max_rows,
            rows,
        }
    }

    /// One writer on `db`'s primary: runs until the queue is dropped.
    pub fn writer(&self, db: Database) -> impl std::future::Future<Output = ()> + Send + 'static {
        writer(self.rx.clone(), db, self.max_rows, self.rows.clone())
    }

    /// Inserts `record` and its audit row `entry` with the next commit; `false` when
    /// its code is taken (and then no audit row is written).
    pub async fn insert(&self, record: LinkRecord, entry: Entry) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                record,
                entry,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Only while the service shuts down: the writers are gone.
fn stopped() -> StoreError {
    StoreError::Unavailable(sqlx::Error::PoolClosed)
}

async fn writer(
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    db: Database,
    max_rows: usize,
    rows: Histogram,
) {
    loop {
        let mut batch = Vec::with_capacity(max_rows);
        {
            // One writer at a time collects; the others are committing meanwhile.
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => return,
            }
            while batch.len() < max_rows {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
        }
        rows.observe(batch.len() as f64);
        commit(&db, batch).await;
    }
}

async fn commit(db: &Database, batch: Vec<Pending>) {
    // Two creates of one alias in one batch: the first in queue order is the one
    // that reaches the database; the second has lost already.
    let mut seen = HashSet::with_capacity(batch.len());
    let mut records = Vec::with_capacity(batch.len());
    let mut entries = Vec::with_capacity(batch.len());
    let mut replies: Vec<oneshot::Sender<_>> = Vec::with_capacity(batch.len());
    for pending in batch {
        if seen.insert(pending.record.key()) {
            records.push(pending.record);
            entries.push(pending.entry);
            replies.push(pending.reply);
        } else {
            // The caller may have given up waiting; nothing to do then.
            let _ = pending.reply.send(Ok(false));
        }
    }
    let result = insert_links(db, &records, &entries).await;
    match result {
        Ok(inserted) => {
            for (reply, inserted) in replies.into_iter().zip(inserted) {
                let _ = reply.send(Ok(inserted));
            }
        }
        Err(e) if replies.len() == 1 => {
            if let Some(reply) = replies.pop() {
                let _ = reply.send(Err(e));
            }
        }
        Err(StoreError::Unavailable(e)) => {
            // The outage concerns every create alike; each gets it, as itself.
            let why = e.to_string();
            for reply in replies {
                let error =
                    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(why.clone())));
                let _ = reply.send(Err(error));
            }
        }
        Err(e) => {
            // Nothing of the batch was written (one transaction). So that one bad
            // row cannot fail its neighbours, each is tried on its own.
            tracing::warn!(error = %e, rows = records.len(), "group commit failed; inserting one by one");
            for ((record, entry), reply) in records.iter().zip(entries).zip(replies) {
                let one = insert_links(db, std::slice::from_ref(record), &[entry]).await;
                let _ = reply.send(one.map(|inserted| inserted.first().copied().unwrap_or(false)));
            }
        }
    }
}
