//! Every SQL statement on the `worker_leases` table.

use sqlx::{AnyPool, Row};

use super::StoreError;

/// A lease row as read before taking it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub acquired_at: i64,
    pub expires_at: i64,
    pub issued_until: i64,
}

pub async fn get(pool: &AnyPool, worker_id: u16) -> Result<Option<LeaseRow>, StoreError> {
    let row = sqlx::query(
        "SELECT holder, acquired_at, expires_at, issued_until FROM worker_leases \
         WHERE worker_id = $1",
    )
    .bind(i64::from(worker_id))
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(LeaseRow {
            holder: row.try_get(0)?,
            acquired_at: row.try_get(1)?,
            expires_at: row.try_get(2)?,
            issued_until: row.try_get(3)?,
        })
    })
    .transpose()
}

/// Takes `worker_id` for `holder` until `expires_at` if the row is still as the
/// caller saw it (`seen`: compare-and-set on its acquisition time) and is free,
/// expired, or already `holder`'s. Returns whether the lease is now held. One
/// statement, so two processes racing for the same id cannot both win, and a
/// takeover that happened between the caller's read and this write is detected.
pub async fn try_acquire(
    pool: &AnyPool,
    worker_id: u16,
    holder: &str,
    seen: Option<&LeaseRow>,
    now_ms: i64,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "INSERT INTO worker_leases (worker_id, holder, acquired_at, expires_at, issued_until) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (worker_id) DO UPDATE SET holder = excluded.holder, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at, \
             issued_until = CASE WHEN worker_leases.issued_until > excluded.issued_until \
                 THEN worker_leases.issued_until ELSE excluded.issued_until END \
         WHERE (worker_leases.expires_at < $3 OR worker_leases.holder = excluded.holder) \
             AND worker_leases.acquired_at = $5 \
         RETURNING holder",
    )
    .bind(i64::from(worker_id))
    .bind(holder)
    .bind(now_ms)
    .bind(expires_at)
    // No row seen: any row found now was inserted meanwhile, and -1 matches none.
    .bind(seen.map_or(-1, |s| s.acquired_at))
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Extends `holder`'s lease (and with it the bound on issued ids); false means the
/// row is no longer `holder`'s.
pub async fn renew(
    pool: &AnyPool,
    worker_id: u16,
    holder: &str,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE worker_leases SET expires_at = $1, \
             issued_until = CASE WHEN issued_until > $1 THEN issued_until ELSE $1 END \
         WHERE worker_id = $2 AND holder = $3",
    )
    .bind(expires_at)
    .bind(i64::from(worker_id))
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Frees the lease at once, recording the newest id timestamp actually issued so a
/// successor can start right away without reusing it.
pub async fn release(
    pool: &AnyPool,
    worker_id: u16,
    holder: &str,
    last_issued_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE worker_leases SET expires_at = 0, issued_until = $1 \
         WHERE worker_id = $2 AND holder = $3",
    )
    .bind(last_issued_ms)
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
