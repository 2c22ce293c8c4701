//! Every SQL statement on `link_changes`, the transactional outbox of link changes.
//!
//! Rows are written by triggers on `links` (see the migrations), never from here: a
//! change row commits with its link or not at all. This module reads the unpublished
//! tail for the relay, marks rows published, and forgets them after retention.

use sqlx::{Any, AnyConnection, Executor, Row};

use super::StoreError;
use super::links::{LinkRecord, record_from_row};

/// What a change did to its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    fn parse(text: &str) -> Result<ChangeKind, StoreError> {
        match text {
            "created" => Ok(ChangeKind::Created),
            "updated" => Ok(ChangeKind::Updated),
            "deleted" => Ok(ChangeKind::Deleted),
            other => Err(StoreError::Corrupt(format!("change kind `{other}`"))),
        }
    }
}

/// An unpublished change, with its link as it is now (publishing the newest state is
/// always right: the relay goes in order, and a later change of the same code would
/// publish the same state again).
#[derive(Debug, Clone)]
pub struct PendingChange {
    pub seq: i64,
    pub kind: ChangeKind,
    /// When the change committed (Unix ms).
    pub created_at: i64,
    /// Its webhook messages are queued (`dispatched_at` is set).
    pub dispatched: bool,
    pub link: LinkRecord,
}

/// The link columns in [`LinkRecord::from_row`]'s order, qualified for the join.
macro_rules! link_columns {
    () => {
        "l.code, l.id, l.tenant_id, l.url, l.redirect_status, l.tags, l.max_visits, \
         l.expires_at, l.created_at, l.updated_at, l.disabled_at, l.deleted_at, l.domain, \
         l.routing"
    };
}

/// The oldest `limit` unpublished changes, in commit order per code.
pub async fn pending(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<PendingChange>, StoreError> {
    let sql = concat!(
        "SELECT ",
        link_columns!(),
        ", c.seq, c.kind, c.created_at, c.dispatched_at FROM link_changes c JOIN links l ON l.code = c.code \
         WHERE c.published_at IS NULL ORDER BY c.seq LIMIT $1"
    );
    let rows = sqlx::query(sql).bind(limit).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get(15)?;
            Ok(PendingChange {
                link: record_from_row(row)?,
                seq: row.try_get(14)?,
                kind: ChangeKind::parse(&kind)?,
                created_at: row.try_get(16)?,
                dispatched: row.try_get::<Option<i64>, _>(17)?.is_some(),
            })
        })
        .collect()
}

/// Marks the changes `seqs` published at `now`. By list, never by range: sequence
/// numbers are handed out before commit, so a lower one may commit after a higher one
/// was read, and must stay pending until it is read too.
pub async fn mark_published(
    conn: &mut AnyConnection,
    seqs: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    mark(conn, "published_at", seqs, now).await
}

/// Marks the changes `seqs` dispatched (their webhook messages queued) at `now`, in
/// the transaction that queued them.
pub async fn mark_dispatched(
    conn: &mut AnyConnection,
    seqs: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    mark(conn, "dispatched_at", seqs, now).await
}

/// Sets `column` (a name from this module, never input) to `now` on `seqs`.
async fn mark(
    conn: &mut AnyConnection,
    column: &'static str,
    seqs: &[i64],
    now: i64,
) -> Result<(), StoreError> {
    // Few shapes of statement: chunks of a fixed size, the last padded by repeating.
    const CHUNK: usize = 256;
    for chunk in seqs.chunks(CHUNK) {
        let width = chunk.len().next_power_of_two().min(CHUNK);
        // `$1` is the timestamp; the list follows it.
        let list: Vec<String> = (2..width + 2).map(|n| format!("${n}")).collect();
        let list = list.join(", ");
        let sql = format!(
            "UPDATE link_changes SET {column} = $1 WHERE {column} IS NULL AND seq IN ({list})"
        );
        // Only placeholders and a column name of this module were spliced in.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for i in 0..width {
            query = query.bind(chunk[i.min(chunk.len() - 1)]);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Forgets changes published before `before` (Unix ms) whose webhook messages are
/// queued; returns how many.
pub async fn purge_published<'c, E>(executor: E, before: i64) -> Result<u64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query(
        "DELETE FROM link_changes WHERE published_at IS NOT NULL AND published_at < $1 \
         AND dispatched_at IS NOT NULL",
    )
    .bind(before)
    .execute(executor)
    .await?;
    Ok(result.rows_affected())
}

/// Unpublished changes and the commit time of the oldest (0 when none).
pub async fn backlog<'c, E>(executor: E) -> Result<(i64, i64), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(MIN(created_at), 0) AS BIGINT) \
         FROM link_changes WHERE published_at IS NULL",
    )
    .fetch_one(executor)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
