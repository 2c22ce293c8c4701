//! Every SQL statement on the `domains` table: the branded domains tenants hold.

use sqlx::{AnyPool, Row};

use super::StoreError;
use crate::link::TenantId;
use crate::links::DomainName;

/// A branded domain and the tenant that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub name: DomainName,
    pub tenant_id: TenantId,
    pub created_at: i64,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<DomainRecord, StoreError> {
    Ok(DomainRecord {
        name: DomainName::from_stored(row.try_get(0)?),
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        created_at: row.try_get(2)?,
    })
}

/// Records the domain; false when some tenant (maybe this one) holds it already.
pub async fn insert(pool: &AnyPool, record: &DomainRecord) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "INSERT INTO domains (name, tenant_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(record.name.to_string())
    .bind(record.tenant_id.to_string())
    .bind(record.created_at)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn get(pool: &AnyPool, name: &DomainName) -> Result<Option<DomainRecord>, StoreError> {
    let row = sqlx::query("SELECT name, tenant_id, created_at FROM domains WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every held domain's name: what each lookup instance reloads.
pub async fn names(pool: &AnyPool) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT name FROM domains")
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// The tenant's domains, by name.
pub async fn list_for_tenant(
    pool: &AnyPool,
    tenant_id: &TenantId,
) -> Result<Vec<DomainRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, tenant_id, created_at FROM domains WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Removes the tenant's domain; false when the tenant does not hold it.
pub async fn delete(
    pool: &AnyPool,
    tenant_id: &TenantId,
    name: &DomainName,
) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM domains WHERE name = $1 AND tenant_id = $2")
        .bind(name.as_str())
        .bind(tenant_id.as_str())
        .execute(pool)
        .await?;
    Ok(result.rows_affected() == 1)
}
