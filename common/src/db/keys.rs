//! Every SQL statement on the `api_keys` table.

use domain::access::Grant;
use sqlx::{Any, AnyPool, Executor, Row};

use super::StoreError;
use crate::link::TenantId;

/// The columns a key is written with.
macro_rules! columns {
    () => {
        "id, tenant_id, key_hash, label, created_at, revoked_at, role, scopes, expires_at, \
         rotated_from, member_id, created_by_member"
    };
}

/// What a key is read with: its columns, and its member's role of the moment.
macro_rules! select {
    () => {
        "SELECT k.id, k.tenant_id, k.key_hash, k.label, k.created_at, k.revoked_at, k.role, \
         k.scopes, k.expires_at, k.rotated_from, k.member_id, m.role, k.created_by_member \
         FROM api_keys k LEFT JOIN members m ON m.id = k.member_id AND m.tenant_id = k.tenant_id"
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
    /// The member the key belongs to; its grant is then the member's role.
    pub member_id: Option<i64>,
    /// The member whose key made this one.
    pub created_by_member: Option<i64>,
}

/// Whether a key is in use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Active,
    Expired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

impl KeyRecord {
    /// Whether the key works at `now_ms`: not revoked, not past its expiry.
    pub fn active_at(&self, now_ms: i64) -> bool {
        self.state_at(now_ms) == KeyState::Active
    }

    /// The key's state at `now_ms`.
    pub fn state_at(&self, now_ms: i64) -> KeyState {
        if self.revoked_at.is_some() {
            KeyState::Revoked
        } else if self.expires_at.is_some_and(|at| now_ms >= at) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<KeyRecord, StoreError> {
    let id: i64 = row.try_get(0)?;
    let role: Option<String> = row.try_get(6)?;
    let scopes: Option<String> = row.try_get(7)?;
    let member_id: Option<i64> = row.try_get(10)?;
    let member_role: Option<String> = row.try_get(11)?;
    let grant = match member_id {
        // A member's key acts with the member's role; once the member is gone (its
        // keys are revoked with it), with nothing.
        Some(_) => member_role
            .as_deref()
            .map_or(Some(Grant::Scopes(Vec::new())), |role| {
                Grant::from_stored(Some(role), None)
            }),
        None => Grant::from_stored(role.as_deref(), scopes.as_deref()),
    }
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
        member_id,
        created_by_member: row.try_get(12)?,
    })
}

pub async fn insert<'c, E>(executor: E, key: &KeyRecord) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    // A member's key holds no grant of its own: it has the member's.
    let (role, scopes) = match key.member_id {
        Some(_) => (None, None),
        None => key.grant.to_stored(),
    };
    sqlx::query(concat!(
        "INSERT INTO api_keys (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
    .bind(key.member_id)
    .bind(key.created_by_member)
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn find_by_hash(pool: &AnyPool, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
    let row = sqlx::query(concat!(select!(), " WHERE k.key_hash = $1"))
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
    let row = sqlx::query(concat!(select!(), " WHERE k.id = $1 AND k.tenant_id = $2"))
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
    let row = sqlx::query(concat!(select!(), " WHERE k.id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every key, or those of `tenant_id`, oldest first.
pub async fn list(pool: &AnyPool, tenant_id: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        select!(),
        " WHERE ($1 = '' OR k.tenant_id = $1) ORDER BY k.created_at, k.id"
    ))
    .bind(tenant_id.unwrap_or_default().to_string())
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes every live key of member `member_id` of `tenant_id`, and every key one of
/// their keys made; returns their ids.
pub async fn revoke_member_keys<'c, E>(
    executor: E,
    tenant_id: &TenantId,
    member_id: i64,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 \
         WHERE tenant_id = $2 AND (member_id = $3 OR created_by_member = $3) \
         AND revoked_at IS NULL RETURNING id",
    )
    .bind(now_ms)
    .bind(tenant_id.as_str())
    .bind(member_id)
    .fetch_all(executor)
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The live keys of `tenant_id` that a key of member `member_id` made.
pub async fn made_by_member<'c, E>(
    executor: E,
    tenant_id: &TenantId,
    member_id: i64,
) -> Result<Vec<KeyRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(concat!(
        select!(),
        " WHERE k.tenant_id = $1 AND k.created_by_member = $2 AND k.revoked_at IS NULL"
    ))
    .bind(tenant_id.as_str())
    .bind(member_id)
    .fetch_all(executor)
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
