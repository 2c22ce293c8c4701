//! Every SQL statement on the `api_keys` table.

use sqlx::{AnyPool, Row};

use super::StoreError;
use crate::link::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: i64,
    pub tenant_id: TenantId,
    pub key_hash: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: row.try_get(0)?,
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        key_hash: row.try_get(2)?,
        label: row.try_get(3)?,
        created_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
    })
}

pub async fn insert(pool: &AnyPool, key: &KeyRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, label, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id)
    .bind(key.tenant_id.to_string())
    .bind(key.key_hash.clone())
    .bind(key.label.clone())
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_by_hash(pool: &AnyPool, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, tenant_id, key_hash, label, created_at, revoked_at \
         FROM api_keys WHERE key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

pub async fn list(pool: &AnyPool, tenant_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, key_hash, label, created_at, revoked_at \
         FROM api_keys WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, id",
    )
    .bind(tenant_id.unwrap_or_default().to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes key `id`; false when no such unrevoked key exists.
pub async fn revoke(pool: &AnyPool, id: i64, now_ms: i64) -> Result<bool, StoreError> {
    let result =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(id)
            .execute(pool)
            .await?;
    Ok(result.rows_affected() == 1)
}
