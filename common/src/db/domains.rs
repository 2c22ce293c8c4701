//! Every SQL statement on the `domains` table: the branded domains tenants hold.

use sqlx::{AnyConnection, AnyPool, Row};

use super::StoreError;
use crate::link::{RedirectStatus, TenantId};
use crate::links::DomainName;
use crate::site::{Scheme, SiteSettings};

/// A branded domain, the tenant that holds it, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub name: DomainName,
    pub tenant_id: TenantId,
    pub created_at: i64,
    pub updated_at: i64,
    pub settings: SiteSettings,
    /// Removed with its links: still served (they answer 410), no longer listed.
    pub retired_at: Option<i64>,
}

/// Columns in the order [`from_row`] reads them.
macro_rules! columns {
    () => {
        "name, tenant_id, created_at, updated_at, root_url, not_found_url, gone_url, \
         scheme, https_only, redirect_status, retired_at, forward_query"
    };
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<DomainRecord, StoreError> {
    let scheme: String = row.try_get(7)?;
    let https_only: i64 = row.try_get(8)?;
    let status: i64 = row.try_get(9)?;
    Ok(DomainRecord {
        name: DomainName::from_stored(row.try_get(0)?),
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        created_at: row.try_get(2)?,
        updated_at: row.try_get(3)?,
        settings: SiteSettings {
            root_url: row.try_get(4)?,
            not_found_url: row.try_get(5)?,
            gone_url: row.try_get(6)?,
            scheme: Scheme::parse(&scheme)
                .ok_or_else(|| StoreError::Corrupt(format!("domain scheme {scheme}")))?,
            https_only: https_only != 0,
            redirect_status: u16::try_from(status)
                .ok()
                .and_then(RedirectStatus::from_code)
                .ok_or_else(|| StoreError::Corrupt(format!("domain redirect_status {status}")))?,
            forward_query: row.try_get::<i64, _>(11)? != 0,
        },
        retired_at: row.try_get(10)?,
    })
}

/// Records the domain; false when some tenant (maybe this one) holds it already. A
/// domain its own tenant retired is taken up again, settings and all: the name never
/// left that tenant.
pub async fn insert(conn: &mut AnyConnection, record: &DomainRecord) -> Result<bool, StoreError> {
    let s = &record.settings;
    let result = sqlx::query(
        "INSERT INTO domains (name, tenant_id, created_at, updated_at, root_url, \
         not_found_url, gone_url, scheme, https_only, redirect_status, forward_query) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at, \
         updated_at = excluded.updated_at, root_url = excluded.root_url, \
         not_found_url = excluded.not_found_url, gone_url = excluded.gone_url, \
         scheme = excluded.scheme, https_only = excluded.https_only, \
         redirect_status = excluded.redirect_status, \
         forward_query = excluded.forward_query, retired_at = NULL \
         WHERE domains.tenant_id = excluded.tenant_id AND domains.retired_at IS NOT NULL",
    )
    .bind(record.name.to_string())
    .bind(record.tenant_id.to_string())
    .bind(record.created_at)
    .bind(record.updated_at)
    .bind(s.root_url.clone())
    .bind(s.not_found_url.clone())
    .bind(s.gone_url.clone())
    .bind(s.scheme.as_str())
    .bind(i64::from(s.https_only))
    .bind(i64::from(s.redirect_status.code()))
    .bind(i64::from(s.forward_query))
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The domain `name`, retired or not, whoever holds it.
pub async fn get(pool: &AnyPool, name: &DomainName) -> Result<Option<DomainRecord>, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM domains WHERE name = $1");
    let row = sqlx::query(sql)
        .bind(name.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every domain a lookup instance serves, retired ones included (their links answer
/// 410): what each instance reloads.
pub async fn served(pool: &AnyPool) -> Result<Vec<DomainRecord>, StoreError> {
    let sql = concat!("SELECT ", columns!(), " FROM domains");
    let rows = sqlx::query(sql).fetch_all(pool).await?;
    rows.iter().map(from_row).collect()
}

/// The tenant's domains, by name (retired ones are gone from the API).
pub async fn list_for_tenant(
    pool: &AnyPool,
    tenant_id: &TenantId,
) -> Result<Vec<DomainRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM domains WHERE tenant_id = $1 AND retired_at IS NULL ORDER BY name"
    );
    let rows = sqlx::query(sql)
        .bind(tenant_id.as_str())
        .fetch_all(pool)
        .await?;
    rows.iter().map(from_row).collect()
}

/// Writes the settings of the tenant's domain if it still has `expected_updated_at`;
/// false when it changed meanwhile or is not the tenant's.
pub async fn update(
    conn: &mut AnyConnection,
    record: &DomainRecord,
    expected_updated_at: i64,
) -> Result<bool, StoreError> {
    let s = &record.settings;
    let result = sqlx::query(
        "UPDATE domains SET root_url = $1, not_found_url = $2, gone_url = $3, scheme = $4, \
         https_only = $5, redirect_status = $6, updated_at = $7, forward_query = $11 \
         WHERE name = $8 AND tenant_id = $9 AND retired_at IS NULL AND updated_at = $10",
    )
    .bind(s.root_url.clone())
    .bind(s.not_found_url.clone())
    .bind(s.gone_url.clone())
    .bind(s.scheme.as_str())
    .bind(i64::from(s.https_only))
    .bind(i64::from(s.redirect_status.code()))
    .bind(record.updated_at)
    .bind(record.name.as_str())
    .bind(record.tenant_id.as_str())
    .bind(expected_updated_at)
    .bind(i64::from(s.forward_query))
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Removes the tenant's domain; false when the tenant does not hold it.
pub async fn delete(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    name: &DomainName,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "DELETE FROM domains WHERE name = $1 AND tenant_id = $2 AND retired_at IS NULL",
    )
    .bind(name.as_str())
    .bind(tenant_id.as_str())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks the tenant's domain retired at `now`; false when the tenant does not hold it.
pub async fn retire(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    name: &DomainName,
    now: i64,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE domains SET retired_at = $1, updated_at = $1, root_url = NULL, \
         not_found_url = NULL, gone_url = NULL \
         WHERE name = $2 AND tenant_id = $3 AND retired_at IS NULL",
    )
    .bind(now)
    .bind(name.as_str())
    .bind(tenant_id.as_str())
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
