//! Every SQL statement on the `audit_log` table: rows are added in the transaction of
//! the change they record, read a page at a time, and leave only by retention.

use domain::audit::{Actor, AuditAction, Entry};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use super::{AnyQuery, Engine, StoreError, placeholders};

/// Parameters per row.
const PARAMS: usize = 9;
/// Rows per multi-row INSERT (4,500 parameters, well under every engine's limit).
const CHUNK: usize = 500;

macro_rules! columns {
    () => {
        "tenant_id, at, actor_kind, actor, action, target, changes, request_id, actor_member"
    };
}

/// A stored row: its id (the cursor order) and the entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: i64,
    pub entry: Entry,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Stored, StoreError> {
    let id: i64 = row.try_get(0)?;
    let kind: String = row.try_get(3)?;
    let actor: String = row.try_get(4)?;
    let action: String = row.try_get(5)?;
    let changes: String = row.try_get(7)?;
    let member: Option<i64> = row.try_get(9)?;
    Ok(Stored {
        id,
        entry: Entry {
            tenant_id: row.try_get(1)?,
            at: row.try_get(2)?,
            actor: Actor::from_stored(&kind, &actor, member)
                .ok_or_else(|| StoreError::Corrupt(format!("actor of audit row {id}")))?,
            action: AuditAction::parse(&action)
                .ok_or_else(|| StoreError::Corrupt(format!("action of audit row {id}")))?,
            target: row.try_get(6)?,
            changes: serde_json::from_str(&changes)
                .map_err(|e| StoreError::Corrupt(format!("changes of audit row {id}: {e}")))?,
            request_id: row.try_get(8)?,
        },
    })
}

/// Binds `entry`'s values, in the order of `columns!()`.
fn bind<'q>(query: AnyQuery<'q>, entry: &Entry) -> AnyQuery<'q> {
    query
        .bind(entry.tenant_id.clone())
        .bind(entry.at)
        .bind(entry.actor.kind())
        .bind(entry.actor.id())
        .bind(entry.action.as_str())
        .bind(entry.target.clone())
        .bind(entry.changes.to_string())
        .bind(entry.request_id.clone())
        .bind(entry.actor.member())
}

/// Adds one row, in the caller's transaction.
pub async fn insert<'c, E>(executor: E, entry: &Entry) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let query = sqlx::query(concat!(
        "INSERT INTO audit_log (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ));
    bind(query, entry).execute(executor).await?;
    Ok(())
}

/// Adds `entries`, in the caller's transaction, a few statements for many rows.
pub async fn insert_many(conn: &mut AnyConnection, entries: &[Entry]) -> Result<(), StoreError> {
    for chunk in entries.chunks(CHUNK) {
        // Only placeholders and the fixed statement parts are spliced in.
        let sql = format!(
            concat!("INSERT INTO audit_log (", columns!(), ") VALUES {}"),
            placeholders(chunk.len(), PARAMS)
        );
        let query = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
        chunk.iter().fold(query, bind).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Which rows of a tenant's log to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant_id: String,
    pub target: Option<String>,
    /// `kind:id` split: the actor's kind and id.
    pub actor: Option<(String, String)>,
    /// Rows written with any key of this member.
    pub member: Option<i64>,
    pub action: Option<AuditAction>,
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
    /// Rows older than this id (the cursor).
    pub before_id: Option<i64>,
}

/// Up to `limit` rows matching `filter`, newest first.
pub async fn page(pool: &AnyPool, filter: &Filter, limit: i64) -> Result<Vec<Stored>, StoreError> {
    let (kind, actor) = filter.actor.clone().unwrap_or_default();
    let rows = sqlx::query(concat!(
        "SELECT id, ",
        columns!(),
        " FROM audit_log WHERE tenant_id = $1 \
         AND ($2 = '' OR target = $2) \
         AND ($3 = '' OR (actor_kind = $3 AND actor = $4)) \
         AND ($5 = '' OR action = $5) \
         AND at >= $6 AND at < $7 AND id < $8 \
         AND ($10 = 0 OR (actor_member IS NOT NULL AND actor_member = $10)) \
         ORDER BY id DESC LIMIT $9"
    ))
    .bind(filter.tenant_id.clone())
    .bind(filter.target.clone().unwrap_or_default())
    .bind(kind)
    .bind(actor)
    .bind(filter.action.map(|a| a.as_str()).unwrap_or_default())
    .bind(filter.from.unwrap_or(i64::MIN))
    .bind(filter.to.unwrap_or(i64::MAX))
    .bind(filter.before_id.unwrap_or(i64::MAX))
    .bind(limit)
    .bind(filter.member.unwrap_or(0))
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every row of `target` of `tenant_id`, oldest first (tests and operators).
pub async fn of_target(
    pool: &AnyPool,
    tenant_id: &str,
    target: &str,
) -> Result<Vec<Stored>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT id, ",
        columns!(),
        " FROM audit_log WHERE tenant_id = $1 AND target = $2 ORDER BY id"
    ))
    .bind(tenant_id)
    .bind(target)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Number of rows, for tests and operators.
pub async fn count(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM audit_log")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// Deletes rows older than `cutoff` (Unix ms), never those of the last day; returns
/// how many left. On PostgreSQL through `audit_log_purge`, the one way the services'
/// role can delete audit rows.
pub async fn purge_older_than(
    pool: &AnyPool,
    engine: Engine,
    cutoff: i64,
) -> Result<u64, StoreError> {
    match engine {
        Engine::Postgres => {
            let row = sqlx::query("SELECT audit_log_purge($1)")
                .bind(cutoff)
                .fetch_one(pool)
                .await?;
            let purged: i64 = row.try_get(0)?;
            Ok(u64::try_from(purged).unwrap_or(0))
        }
        Engine::Sqlite => {
            // A minute short of the trigger's bound, so clocks read a little apart never
            // make the whole statement abort.
            let newest_purgeable = crate::time::now_ms() - 86_400_000 - 60_000;
            let result = sqlx::query("DELETE FROM audit_log WHERE at < $1")
                .bind(cutoff.min(newest_purgeable))
                .execute(pool)
                .await?;
            Ok(result.rows_affected())
        }
    }
}
