//! Every SQL statement on the click tables: the batch outbox, the counters, and the
//! stats queries.

use std::collections::{HashMap, HashSet};

use sqlx::{Any, AnyConnection, AnyPool, Row};

use super::{AnyQuery, Database, Engine, StoreError, placeholders};
use crate::clicks::ClickBatch;

/// Rows per multi-row upsert (5 parameters each at most).
const CHUNK: usize = 1000;

/// Queues a batch for stats-service, cut by partition of the code space (see
/// [`ClickBatch::parts`]), all parts in one statement: a flush is queued whole or not
/// at all. Idempotent: re-sending a batch whose earlier attempt did reach the
/// database (the answer was lost) inserts nothing, also once that first copy was
/// applied, as long as its tombstone is kept (`stats.dedupe_window`).
pub async fn enqueue(pool: &AnyPool, batch: &ClickBatch) -> Result<(), StoreError> {
    let parts = batch.parts();
    if parts.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO click_batches (batch_id, created_at, clicks, payload, part) VALUES {} \
         ON CONFLICT (batch_id) DO NOTHING",
        placeholders(parts.len(), 5)
    );
    let mut query = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
    for (part, batch) in &parts {
        let payload =
            serde_json::to_string(batch).map_err(|e| StoreError::Corrupt(format!("batch: {e}")))?;
        query = query
            .bind(batch.batch_id.clone())
            .bind(batch.created_at)
            .bind(i64::try_from(batch.clicks()).unwrap_or(i64::MAX))
            .bind(payload)
            .bind(*part);
    }
    query.execute(pool).await?;
    Ok(())
}

/// The counter rows a round of batches adds up to, merged by key so that a multi-row
/// upsert never touches one row twice. stats-service does the merging
/// (`stats_service::deltas`); this module only writes the result.
#[derive(Debug, Default)]
pub struct CounterDeltas {
    /// code → (clicks, of which bots)
    pub totals: HashMap<String, (i64, i64)>,
    /// (code, hour start) → clicks
    pub hours: HashMap<(String, i64), i64>,
    /// (code, day start, dimension, value) → clicks
    pub dims: HashMap<(String, i64, &'static str, String), i64>,
    /// (code, day start, visitor hash)
    pub visitors: HashSet<(String, i64, i64)>,
}

/// Rows go in key order: two consumers whose rounds share counter rows then lock them
/// in the same order, so one waits for the other instead of deadlocking.
async fn apply_deltas(conn: &mut AnyConnection, deltas: &CounterDeltas) -> Result<(), StoreError> {
    write_rows(
        conn,
        deltas.totals.iter().collect(),
        "INSERT INTO click_totals (code, clicks, bots)",
        3,
        "ON CONFLICT (code) DO UPDATE SET clicks = click_totals.clicks + excluded.clicks, \
         bots = click_totals.bots + excluded.bots",
        |q, (code, (clicks, bots))| q.bind((*code).clone()).bind(*clicks).bind(*bots),
    )
    .await?;
    write_rows(
        conn,
        deltas.hours.iter().collect(),
        "INSERT INTO click_hours (code, hour, clicks)",
        3,
        "ON CONFLICT (code, hour) DO UPDATE SET clicks = click_hours.clicks + excluded.clicks",
        |q, ((code, hour), clicks)| q.bind(code.clone()).bind(*hour).bind(**clicks),
    )
    .await?;
    write_rows(
        conn,
        deltas.dims.iter().collect(),
        "INSERT INTO click_dimensions (code, day, dim, value, clicks)",
        5,
        "ON CONFLICT (code, day, dim, value) DO UPDATE \
         SET clicks = click_dimensions.clicks + excluded.clicks",
        |q, ((code, day, dim, value), clicks)| {
            q.bind(code.clone())
                .bind(*day)
                .bind(dim.to_string())
                .bind(value.clone())
                .bind(**clicks)
        },
    )
    .await?;
    write_rows(
        conn,
        deltas.visitors.iter().collect(),
        "INSERT INTO click_visitors (code, day, visitor)",
        3,
        "ON CONFLICT (code, day, visitor) DO NOTHING",
        |q, (code, day, visitor)| q.bind(code.clone()).bind(*day).bind(*visitor),
    )
    .await
}

/// Writes `rows` in key order with multi-row `INSERT`s of at most [`CHUNK`] rows:
/// `head VALUES (…), (…) tail`, each row bound by `bind`.
async fn write_rows<T: Ord>(
    conn: &mut AnyConnection,
    mut rows: Vec<T>,
    head: &str,
    width: usize,
    tail: &str,
    bind: impl Fn(AnyQuery<'static>, &T) -> AnyQuery<'static>,
) -> Result<(), StoreError> {
    rows.sort_unstable();
    for chunk in rows.chunks(CHUNK) {
        // Only placeholders and the fixed statement parts are spliced in.
        let sql = format!("{head} VALUES {} {tail}", placeholders(chunk.len(), width));
        let query = chunk
            .iter()
            .fold(sqlx::query::<Any>(sqlx::AssertSqlSafe(sql)), &bind);
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// What one round of applying did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub batches: u64,
    pub clicks: u64,
    pub dead: u64,
    /// When each applied batch was cut (Unix ms), for the queue-delay figures.
    pub cut_at: Vec<i64>,
}

/// Applies up to `limit` queued batches in one transaction: counters updated and
/// batch rows retired together, so each batch counts exactly once whatever crashes
/// when. Batches claimed by another consumer are skipped (PostgreSQL `SKIP LOCKED`).
/// A batch that cannot be applied `max_attempts` times moves to the dead letters.
/// `merge` folds the round's batches into the counter rows they add up to.
pub async fn apply_pending(
    db: &Database,
    limit: i64,
    max_attempts: i64,
    merge: impl FnOnce(&[ClickBatch]) -> CounterDeltas,
) -> Result<Applied, StoreError> {
    let claim = match db.engine() {
        // The partition of the oldest batch nobody holds, then that partition's
        // batches: a concurrent round takes another partition, so the two never wait
        // on each other's counter rows.
        Engine::Postgres => {
            "SELECT batch_id, payload FROM click_batches \
             WHERE done_at IS NULL AND attempts < $1 AND part = \
             (SELECT part FROM click_batches WHERE done_at IS NULL AND attempts < $1 \
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        }
        // One consumer per embedded database, and its transaction holds the write
        // lock from its start (`Database::begin_write`).
        Engine::Sqlite => {
            "SELECT batch_id, payload FROM click_batches WHERE done_at IS NULL AND attempts < $1 \
             ORDER BY created_at LIMIT $2"
        }
    };
    let mut tx = db.begin_write().await?;
    let rows = sqlx::query(claim)
        .bind(max_attempts)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        return Ok(Applied::default());
    }
    let mut batches = Vec::with_capacity(rows.len());
    let mut applied = Applied::default();
    let mut ids = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in &rows {
        let id: String = row.try_get(0)?;
        let payload: String = row.try_get(1)?;
        match serde_json::from_str::<ClickBatch>(&payload) {
            Ok(batch) => {
                applied.batches += 1;
                applied.clicks += batch.clicks();
                applied.cut_at.push(batch.created_at);
                ids.push(id);
                batches.push(batch);
            }
            Err(e) => unreadable.push((id, e.to_string())),
        }
    }
    apply_deltas(&mut tx, &merge(&batches)).await?;
    let now = crate::time::now_ms();
    for id in &ids {
        retire(&mut tx, id, now).await?;
    }
    for (id, error) in &unreadable {
        bury(&mut tx, id, error).await?;
        applied.dead += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// Moves a batch to the dead letters (inside the caller's transaction).
async fn bury(conn: &mut AnyConnection, batch_id: &str, error: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO dead_click_batches (batch_id, created_at, failed_at, clicks, error, payload) \
         SELECT batch_id, created_at, $2, clicks, $3, payload FROM click_batches WHERE batch_id = $1 \
         ON CONFLICT (batch_id) DO NOTHING",
    )
    .bind(batch_id)
    .bind(crate::time::now_ms())
    .bind(error)
    .execute(&mut *conn)
    .await?;
    retire(conn, batch_id, crate::time::now_ms()).await
}

/// Leaves a tombstone of a batch that was applied or buried (inside the caller's
/// transaction): a late copy of it then conflicts with the row and is ignored.
async fn retire(conn: &mut AnyConnection, batch_id: &str, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE click_batches SET done_at = $1, payload = '' WHERE batch_id = $2")
        .bind(now_ms)
        .bind(batch_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes tombstones retired before `before_ms` (the end of the dedupe window).
pub async fn purge_retired(pool: &AnyPool, before_ms: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM click_batches WHERE done_at IS NOT NULL AND done_at < $1")
        .bind(before_ms)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// After a failed round: count an attempt against every waiting batch that is not
/// being applied elsewhere, and bury those out of attempts.
pub async fn record_failure(
    db: &Database,
    max_attempts: i64,
    error: &str,
) -> Result<u64, StoreError> {
    let pool = db.primary();
    sqlx::query(
        "UPDATE click_batches SET attempts = attempts + 1 WHERE done_at IS NULL AND attempts < $1",
    )
    .bind(max_attempts)
    .execute(pool)
    .await?;
    let dead: Vec<String> =
        sqlx::query("SELECT batch_id FROM click_batches WHERE done_at IS NULL AND attempts >= $1")
            .bind(max_attempts)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
    let mut tx = db.begin_write().await?;
    for id in &dead {
        bury(&mut tx, id, error).await?;
    }
    tx.commit().await?;
    Ok(dead.len() as u64)
}

/// Batches waiting, and the age of the oldest (ms), for the queue-lag metric.
pub async fn backlog(pool: &AnyPool, now_ms: i64) -> Result<(i64, i64), StoreError> {
    let row =
        sqlx::query("SELECT COUNT(*), MIN(created_at) FROM click_batches WHERE done_at IS NULL")
            .fetch_one(pool)
            .await?;
    let count: i64 = row.try_get(0)?;
    let oldest: Option<i64> = row.try_get(1)?;
    Ok((count, oldest.map_or(0, |at| (now_ms - at).max(0))))
}

pub async fn dead_count(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM dead_click_batches")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// All-time clicks of a code (for `max_visits`).
pub async fn total(pool: &AnyPool, code: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT clicks FROM click_totals WHERE code = $1")
        .bind(code)
        .fetch_optional(pool)
        .await?;
    Ok(match row {
        Some(row) => row.try_get(0)?,
        None => 0,
    })
}

/// Hourly buckets of `code` in `[from, to)`.
pub async fn hours(
    pool: &AnyPool,
    code: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT hour, clicks FROM click_hours WHERE code = $1 AND hour >= $2 AND hour < $3 \
         ORDER BY hour",
    )
    .bind(code)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Clicks per dimension value of `code` over the days in `[from, to)`, largest first.
pub async fn dimensions(
    pool: &AnyPool,
    code: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT dim, value, CAST(SUM(clicks) AS BIGINT) FROM click_dimensions \
         WHERE code = $1 AND day >= $2 AND day < $3 GROUP BY dim, value \
         ORDER BY SUM(clicks) DESC, value",
    )
    .bind(code)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Sum over the days in `[from, to)` of each day's distinct visitors.
pub async fn unique_visitors(
    pool: &AnyPool,
    code: &str,
    from: i64,
    to: i64,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM click_visitors WHERE code = $1 AND day >= $2 AND day < $3",
    )
    .bind(code)
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await?;
    Ok(row.try_get(0)?)
}
