//! Every SQL statement on the `worker_leases` table.

use sqlx::{AnyPool, Row};

use super::StoreError;

/// Takes `worker_id` for `holder` until `expires_at`, if it is free, expired, or
/// already `holder`'s. Returns whether the lease is now held. One statement, so two
/// processes racing for the same id cannot both win.
pub async fn try_acquire(
    pool: &AnyPool,
    worker_id: u16,
    holder: &str,
    now_ms: i64,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "INSERT INTO worker_leases (worker_id, holder, acquired_at, expires_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (worker_id) DO UPDATE SET holder = excluded.holder, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
         WHERE worker_leases.expires_at < $3 OR worker_leases.holder = excluded.holder \
         RETURNING holder",
    )
    .bind(i64::from(worker_id))
    .bind(holder)
    .bind(now_ms)
    .bind(expires_at)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Extends `holder`'s lease; false means it was lost (taken over after expiring).
pub async fn renew(
    pool: &AnyPool,
    worker_id: u16,
    holder: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE worker_leases SET expires_at = $1 WHERE worker_id = $2 AND holder = $3",
    )
    .bind(expires_at)
    .bind(i64::from(worker_id))
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn release(pool: &AnyPool, worker_id: u16, holder: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM worker_leases WHERE worker_id = $1 AND holder = $2")
        .bind(i64::from(worker_id))
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// Worker ids whose lease has not expired at `now_ms`, with their holders.
pub async fn live(pool: &AnyPool, now_ms: i64) -> Result<Vec<(u16, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT worker_id, holder FROM worker_leases WHERE expires_at >= $1 ORDER BY worker_id",
    )
    .bind(now_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get(0)?;
            let id = u16::try_from(id).map_err(|_| StoreError::Corrupt(format!("worker {id}")))?;
            Ok((id, row.try_get(1)?))
        })
        .collect()
}
