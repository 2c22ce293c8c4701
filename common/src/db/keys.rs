//! Every SQL statement on the `api_keys` table.

use domain::access::Grant;
use sqlx::{Any, AnyPool, Executor, Row};

use super::StoreError;
use crate::link::TenantId;

macro_rules! columns {
    () => {
        "id, tenant_id, key_hash, label, created_at, revoked_at, role, scopes, expires_at, \
         rotated_from"
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: i64,
    pub tenant_id: TenantId,
    pub key_hash: String,
    pub label: String,
    /// What the key may do.
    pub grant: Grant,
    pub created_at: i64,
    /// When the key stops working (Unix ms); `None`: never.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key this one was rotated from.
    pub rotated_from: Option<i64>,
}

impl KeyRecord {
    /// Whether the key works at `now_ms`: not revoked, not past its expiry.
    pub fn active_at(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now_ms < at)
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<KeyRecord, StoreError> {
    let id: i64 = row.try_get(0)?;
    let role: Option<String> = row.try_get(6)?;
    let scopes: Option<String> = row.try_get(7)?;
    let grant = Grant::from_stored(role.as_deref(), scopes.as_deref())
        .ok_or_else(|| StoreError::Corrupt(format!("grant of key {id}")))?;
    Ok(KeyRecord {
        id,
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        key_hash: row.try_get(2)?,
        label: row.try_get(3)?,
        created_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
        grant,
        expires_at: row.try_get(8)?,
        rotated_from: row.try_get(9)?,
    })
}

pub async fn insert<'c, E>(executor: E, key: &KeyRecord) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let (role, scopes) = key.grant.to_stored();
    sqlx::query(concat!(
        "INSERT INTO api_keys (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(key.id)
    .bind(key.tenant_id.to_string())
    .bind(key.key_hash.clone())
    .bind(key.label.clone())
    .bind(key.created_at)
    .bind(key.revoked_at)
    .bind(role)
    .bind(scopes)
    .bind(key.expires_at)
    .bind(key.rotated_from)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn find_by_hash(pool: &AnyPool, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE key_hash = $1"
    ))
    .bind(key_hash)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Key `id` of `tenant_id`; `None` when the tenant has no such key.
pub async fn get<'c, E>(
    executor: E,
    tenant_id: &TenantId,
    id: i64,
) -> Result<Option<KeyRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id.to_string())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Key `id`, whichever tenant's.
pub async fn find<'c, E>(executor: E, id: i64) -> Result<Option<KeyRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every key, or those of `tenant_id`, oldest first.
pub async fn list(pool: &AnyPool, tenant_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM api_keys WHERE ($1 = '' OR tenant_id = $1) ORDER BY created_at, id"
    ))
    .bind(tenant_id.unwrap_or_default().to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes key `id`; false when no such unrevoked key exists.
pub async fn revoke<'c, E>(executor: E, id: i64, now_ms: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(id)
            .execute(executor)
            .await?;
    Ok(result.rows_affected() == 1)
}

/// Makes key `id` stop working at `at` unless it stops sooner already (rotation's
/// grace period); false when the key is revoked.
pub async fn expire_by<'c, E>(executor: E, id: i64, at: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query(
        "UPDATE api_keys SET expires_at = $1 \
         WHERE id = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)",
    )
    .bind(at)
    .bind(id)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}
