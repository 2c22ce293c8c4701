//! Every SQL statement on the `links` table.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};

use super::{AnyQuery, StoreError, placeholders};
use crate::time::now_ms;

/// Columns in the order [`record_from_row`] reads them (a macro so statements
/// stay compile-time constants).
macro_rules! columns {
    () => {
        "code, id, tenant_id, url, redirect_status, tags, max_visits, \
         expires_at, created_at, updated_at, disabled_at, deleted_at, domain, routing"
    };
}

/// Most rows per multi-row INSERT: 12 parameters each stays far below both engines'
/// parameter limits (PostgreSQL 65535, SQLite 32766).
pub const INSERT_CHUNK: usize = 512;

pub use domain::link::{LinkCode, LinkRecord, LinkState, RedirectStatus, TenantId};
use domain::links::DomainName;
use domain::route::Routing;

/// A link from a row of the link columns (in the order of `columns!`).
pub(crate) fn record_from_row(row: &AnyRow) -> Result<LinkRecord, StoreError> {
    let tags: String = row.try_get(5)?;
    let status: i64 = row.try_get(4)?;
    let key: String = row.try_get(0)?;
    let domain: String = row.try_get(12)?;
    // The `code` column holds the link's key: `<domain>/<code>` on a branded domain.
    let (domain, code) = if domain.is_empty() {
        (None, key)
    } else {
        let code = key
            .strip_prefix(domain.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| StoreError::Corrupt(format!("link key {key} outside {domain}")))?
            .to_string();
        (Some(DomainName::from_stored(domain)), code)
    };
    Ok(LinkRecord {
        domain,
        code: LinkCode::from_stored(code),
        id: row.try_get(1)?,
        tenant_id: TenantId::from_stored(row.try_get(2)?),
        url: row.try_get(3)?,
        redirect_status: u16::try_from(status)
            .ok()
            .and_then(RedirectStatus::from_code)
            .ok_or_else(|| StoreError::Corrupt(format!("redirect_status {status}")))?,
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
        max_visits: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        created_at: row.try_get(8)?,
        updated_at: row.try_get(9)?,
        disabled_at: row.try_get(10)?,
        deleted_at: row.try_get(11)?,
        routing: match row.try_get::<Option<String>, _>(13)? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("routing: {e}")))?,
            None => Routing::default(),
        },
    })
}

fn tags_json(link: &LinkRecord) -> String {
    serde_json::to_string(&link.tags).unwrap_or_else(|_| "[]".to_string())
}

/// The stored `routing` column: `NULL` for a plain link (most of them).
fn routing_json(link: &LinkRecord) -> Result<Option<String>, StoreError> {
    if link.routing.is_plain() {
        return Ok(None);
    }
    serde_json::to_string(&link.routing)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("routing: {e}")))
}

/// Binds the twelve inserted columns of `link`, in the order of every INSERT below.
fn bind_insert<'q>(
    query: AnyQuery<'q>,
    link: &LinkRecord,
    routing: Option<String>,
) -> AnyQuery<'q> {
    query
        .bind(link.key())
        .bind(link.id)
        .bind(link.tenant_id.to_string())
        .bind(link.url.clone())
        .bind(i64::from(link.redirect_status.code()))
        .bind(tags_json(link))
        .bind(link.max_visits)
        .bind(link.expires_at)
        .bind(link.created_at)
        .bind(link.updated_at)
        .bind(
            link.domain
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )
        .bind(routing)
}

/// Inserts one link; `false` when its key is taken. A single plain INSERT (no
/// RETURNING, no explicit transaction when `conn` is a pool connection) is the cheapest
/// durable write there is: one round trip, one commit.
pub async fn insert_one<'c, E>(executor: E, link: &LinkRecord) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let query = sqlx::query(
        "INSERT INTO links (code, id, tenant_id, url, redirect_status, tags, max_visits, \
         expires_at, created_at, updated_at, domain, routing) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    );
    let result = bind_insert(query, link, routing_json(link)?)
        .execute(executor)
        .await;
    match result.map_err(StoreError::from) {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Inserts `links`; returns, in input order, whether each row was inserted (`false`
/// means its key was already taken). Keys must be distinct: the caller settles
/// duplicates within one request or batch. Takes a connection so a create can share a
/// transaction with its idempotency record.
pub async fn insert_many(
    conn: &mut AnyConnection,
    links: &[LinkRecord],
) -> Result<Vec<bool>, StoreError> {
    let mut inserted = std::collections::HashSet::new();
    for chunk in links.chunks(INSERT_CHUNK) {
        // Every row count would be a statement of its own shape, prepared and cached
        // per connection. Rounding up to a power of two by repeating the last row
        // keeps ten shapes at most; the repeats are skipped by ON CONFLICT like any
        // taken code, and RETURNING names each inserted code once.
        let rows = chunk.len().next_power_of_two().min(INSERT_CHUNK);
        // sqlx's QueryBuilder writes `?` placeholders for the Any driver, which
        // PostgreSQL rejects; spell out `$n`, which both engines accept.
        let mut sql = String::from(
            "INSERT INTO links (code, id, tenant_id, url, redirect_status, tags, max_visits, \
             expires_at, created_at, updated_at, domain, routing) VALUES ",
        );
        sql.push_str(&placeholders(rows, 12));
        // A taken code is an expected outcome (alias conflict), not an error that
        // should abort the rest of a bulk request.
        sql.push_str(" ON CONFLICT (code) DO NOTHING RETURNING code");
        // Only placeholders were spliced in: nothing from the request.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in 0..rows {
            let link = &chunk[row.min(chunk.len() - 1)];
            query = bind_insert(query, link, routing_json(link)?);
        }
        let rows = query.fetch_all(&mut *conn).await?;
        for row in rows {
            let code: String = row.try_get(0)?;
            inserted.insert(code);
        }
    }
    Ok(links.iter().map(|l| inserted.contains(&l.key())).collect())
}

/// The link stored under `key` (see [`LinkRecord::key`]), whoever owns it.
pub async fn get<'c, E>(executor: E, key: &str) -> Result<Option<LinkRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let sql = concat!("SELECT ", columns!(), " FROM links WHERE code = $1");
    let row = sqlx::query(sql).bind(key).fetch_optional(executor).await?;
    row.as_ref().map(record_from_row).transpose()
}

/// The tenant's newest live, enabled links to `url` on `domain` (`None`: the default
/// domain), at most `limit`: the candidates a create with `reuse` may answer with.
pub async fn live_to_url(
    pool: &AnyPool,
    tenant_id: &TenantId,
    domain: Option<&DomainName>,
    url: &str,
    limit: u32,
) -> Result<Vec<LinkRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM links WHERE url = $1 AND tenant_id = $2 AND domain = $3 \
         AND deleted_at IS NULL AND disabled_at IS NULL ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(sql)
        .bind(url)
        .bind(tenant_id.as_str())
        .bind(domain.map(DomainName::as_str).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// Which of a tenant's domains a listing covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainFilter {
    Every,
    /// `None`: the default domain.
    Only(Option<DomainName>),
}

/// One page of a tenant's live links, newest first, strictly older than `before_id`.
pub async fn list_for_tenant(
    pool: &AnyPool,
    tenant_id: &TenantId,
    domain: &DomainFilter,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<LinkRecord>, StoreError> {
    const EVERY: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM links WHERE tenant_id = $1 AND deleted_at IS NULL AND id < $2 \
         ORDER BY id DESC LIMIT $3"
    );
    const ONE: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM links WHERE tenant_id = $1 AND deleted_at IS NULL AND id < $2 \
         AND domain = $4 ORDER BY id DESC LIMIT $3"
    );
    let query = |sql| {
        sqlx::query(sql)
            .bind(tenant_id.as_str())
            .bind(before_id.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
    };
    let rows = match domain {
        DomainFilter::Every => query(EVERY).fetch_all(pool).await?,
        DomainFilter::Only(name) => {
            let name = name.as_ref().map(DomainName::to_string).unwrap_or_default();
            query(ONE).bind(name).fetch_all(pool).await?
        }
    };
    rows.iter().map(record_from_row).collect()
}

/// Marks every live link of the tenant on `domain` deleted, in one statement (the
/// outbox trigger records each, so every cache hears of each); returns them as they
/// now are.
pub async fn delete_on_domain(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    domain: &DomainName,
) -> Result<Vec<LinkRecord>, StoreError> {
    let now = now_ms();
    let sql = concat!(
        "UPDATE links SET deleted_at = $1, updated_at = $1 \
         WHERE tenant_id = $2 AND domain = $3 AND deleted_at IS NULL RETURNING ",
        columns!()
    );
    let rows = sqlx::query(sql)
        .bind(now)
        .bind(tenant_id.as_str())
        .bind(domain.as_str())
        .fetch_all(conn)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// Whether the tenant has a live link on `domain`.
pub async fn any_on_domain(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    domain: &DomainName,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 FROM links WHERE tenant_id = $1 AND domain = $2 AND deleted_at IS NULL LIMIT 1",
    )
    .bind(tenant_id.as_str())
    .bind(domain.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Writes the mutable fields of `link` if the row still has `expected_updated_at`
/// (optimistic concurrency: two concurrent edits never silently overwrite each
/// other). Returns false when the row changed meanwhile or is gone.
pub async fn update<'c, E>(
    executor: E,
    link: &LinkRecord,
    expected_updated_at: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let result = sqlx::query(
        "UPDATE links SET url = $1, redirect_status = $2, tags = $3, max_visits = $4, \
         expires_at = $5, disabled_at = $6, updated_at = $7, routing = $11 \
         WHERE code = $8 AND tenant_id = $9 AND deleted_at IS NULL AND updated_at = $10",
    )
    .bind(link.url.clone())
    .bind(i64::from(link.redirect_status.code()))
    .bind(tags_json(link))
    .bind(link.max_visits)
    .bind(link.expires_at)
    .bind(link.disabled_at)
    .bind(link.updated_at)
    .bind(link.key())
    .bind(link.tenant_id.to_string())
    .bind(expected_updated_at)
    .bind(routing_json(link)?)
    .execute(executor)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks the tenant's link deleted; returns it as it now is, or `None` if there was
/// no live link to delete.
pub async fn soft_delete<'c, E>(
    executor: E,
    tenant_id: &TenantId,
    key: &str,
) -> Result<Option<LinkRecord>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let now = now_ms();
    let sql = concat!(
        "UPDATE links SET deleted_at = $1, updated_at = $1 \
         WHERE code = $2 AND tenant_id = $3 AND deleted_at IS NULL RETURNING ",
        columns!()
    );
    let row = sqlx::query(sql)
        .bind(now)
        .bind(key)
        .bind(tenant_id.as_str())
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(record_from_row).transpose()
}

/// Number of rows, for tests and operators.
pub async fn count(pool: &AnyPool) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM links")
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}
