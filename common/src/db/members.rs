//! Every SQL statement on the `members` table: the people of a tenant and their roles.

use domain::access::Role;
use sqlx::{Any, AnyPool, Executor, Row};

use super::StoreError;
use crate::link::TenantId;

macro_rules! columns {
    () => {
        "id, tenant_id, email, name, role, created_at, updated_at"
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub id: i64,
    pub tenant_id: TenantId,
    /// Lowercase.
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    pub updated_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<MemberRecord, StoreError> {
    let id: i64 = row.try_get(0)?;
    let role: String = row.try_get(4)?;
    Ok(MemberRecord {
        id,
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        email: row.try_get(2)?,
        name: row.try_get(3)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("role of member {id}")))?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
    })
}

/// Adds the member; false when the tenant has a member of that address already.
pub async fn insert<'c, E>(executor: E, member: &MemberRecord) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query(concat!(
        "INSERT INTO members (",
        columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, email) DO NOTHING"
    ))
    .bind(member.id)
    .bind(member.tenant_id.to_string())
    .bind(member.email.clone())
    .bind(member.name.clone())
    .bind(member.role.as_str())
    .bind(member.created_at)
    .bind(member.updated_at)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Member `id` of `tenant_id`.
pub async fn get<'c, E>(
    executor: E,
    tenant_id: &TenantId,
    id: i64,
) -> Result<Option<MemberRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM members WHERE id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(tenant_id.as_str())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The tenant's members, by address.
pub async fn list(pool: &AnyPool, tenant_id: &TenantId) -> Result<Vec<MemberRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM members WHERE tenant_id = $1 ORDER BY email"
    ))
    .bind(tenant_id.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// How many owners the tenant has among its members.
pub async fn owners<'c, E>(executor: E, tenant_id: &TenantId) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let row = sqlx::query("SELECT COUNT(*) FROM members WHERE tenant_id = $1 AND role = 'owner'")
        .bind(tenant_id.as_str())
        .fetch_one(executor)
        .await?;
    Ok(row.try_get(0)?)
}

/// Writes the member's name and role if it still has `expected_updated_at`; false
/// when it changed meanwhile or is gone.
pub async fn update<'c, E>(
    executor: E,
    member: &MemberRecord,
    expected_updated_at: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query(
        "UPDATE members SET name = $1, role = $2, updated_at = $3 \
         WHERE id = $4 AND tenant_id = $5 AND updated_at = $6",
    )
    .bind(member.name.clone())
    .bind(member.role.as_str())
    .bind(member.updated_at)
    .bind(member.id)
    .bind(member.tenant_id.as_str())
    .bind(expected_updated_at)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Removes the member; false when it is gone already.
pub async fn delete<'c, E>(executor: E, tenant_id: &TenantId, id: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query("DELETE FROM members WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id.as_str())
        .execute(executor)
        .await?;
    Ok(result.rows_affected() == 1)
}
