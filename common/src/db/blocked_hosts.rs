//! Every SQL statement on the `blocked_hosts` table: the runtime host blocklist.

use sqlx::{AnyPool, Row};

use super::StoreError;

/// One blocked host, normalised as [`crate::links::HostEntry`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedHostRecord {
    pub host: String,
    pub reason: String,
    pub created_at: i64,
}

/// Blocks `record.host`; false when it was blocked already (the first reason and
/// time stay).
pub async fn insert<'c, E>(executor: E, record: &BlockedHostRecord) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let result = sqlx::query(
        "INSERT INTO blocked_hosts (host, reason, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (host) DO NOTHING",
    )
    .bind(record.host.clone())
    .bind(record.reason.clone())
    .bind(record.created_at)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Unblocks `host`; returns the reason it was blocked for, `None` when it was not.
pub async fn delete<'c, E>(executor: E, host: &str) -> Result<Option<String>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query("DELETE FROM blocked_hosts WHERE host = $1 RETURNING reason")
        .bind(host)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Every blocked host with its reason, by host.
pub async fn list(pool: &AnyPool) -> Result<Vec<BlockedHostRecord>, StoreError> {
    let rows = sqlx::query("SELECT host, reason, created_at FROM blocked_hosts ORDER BY host")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(BlockedHostRecord {
                host: row.try_get(0)?,
                reason: row.try_get(1)?,
                created_at: row.try_get(2)?,
            })
        })
        .collect()
}

/// The blocked hosts alone: what every instance reloads.
pub async fn hosts(pool: &AnyPool) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT host FROM blocked_hosts")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(StoreError::from))
        .collect()
}
