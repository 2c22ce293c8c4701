//! Every SQL statement on the `idempotency_keys` table.

use sqlx::{AnyConnection, AnyPool, Row};

use super::StoreError;

/// The first response given for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub request_hash: String,
    pub status: u16,
    pub body: String,
}

pub async fn get(
    pool: &AnyPool,
    tenant_id: &str,
    key: &str,
) -> Result<Option<StoredResponse>, StoreError> {
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body FROM idempotency_keys \
         WHERE tenant_id = $1 AND idem_key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: i64 = row.try_get(1)?;
    Ok(Some(StoredResponse {
        request_hash: row.try_get(0)?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::Corrupt(format!("response_status {status}")))?,
        body: row.try_get(2)?,
    }))
}

/// Records the response inside the caller's transaction, so the link and its record
/// commit together. A concurrent twin with the same key fails with
/// [`StoreError::Conflict`] and rolls its own link back.
pub async fn insert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    key: &str,
    response: &StoredResponse,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO idempotency_keys \
         (tenant_id, idem_key, request_hash, response_status, response_body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(response.request_hash.clone())
    .bind(i64::from(response.status))
    .bind(response.body.clone())
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets records older than `cutoff_ms`; returns how many.
pub async fn purge_older_than(pool: &AnyPool, cutoff_ms: i64) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff_ms)
        .execute(pool)
        .await?;
    Ok(result.rows_affected())
}
