//! Every SQL statement of `shortener links import` and `links export` beyond the links
//! table itself: the import ledger (`link_imports`), imported click totals, and the
//! pages an export reads.

use std::collections::HashSet;

use sqlx::{Any, AnyConnection, AnyPool, Row};

use super::{StoreError, placeholders};

/// Most ledger rows per INSERT: 4 parameters each, far below both engines' limits.
const LEDGER_CHUNK: usize = 1024;
/// Most keys per DELETE and click totals per INSERT.
const SMALL_CHUNK: usize = 512;

/// One source row as the ledger remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub import_key: String,
    pub code: String,
}

/// Records `entries` in `tenant_id`'s ledger inside the caller's transaction and
/// returns the keys that were not there yet: the rows to import. Keys already present
/// (an earlier run) are left alone. On PostgreSQL a key that a concurrent import has
/// claimed but not committed makes this wait for that import's commit, so two runs
/// of one file never both take a row.
pub async fn claim(
    conn: &mut AnyConnection,
    tenant_id: &str,
    entries: &[LedgerEntry],
    now_ms: i64,
) -> Result<HashSet<String>, StoreError> {
    let mut fresh = HashSet::with_capacity(entries.len());
    for chunk in entries.chunks(LEDGER_CHUNK) {
        // Rounded up to a power of two by repeating the last row (skipped by ON
        // CONFLICT like any known key), so a connection prepares a handful of
        // statement shapes instead of one per row count.
        let rows = chunk.len().next_power_of_two().min(LEDGER_CHUNK);
        // Only placeholders are spliced in.
        let sql = format!(
            "INSERT INTO link_imports (tenant_id, import_key, code, imported_at) VALUES {} \
             ON CONFLICT (tenant_id, import_key) DO NOTHING RETURNING import_key",
            placeholders(rows, 4)
        );
        let mut query = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
        for row in 0..rows {
            let entry = &chunk[row.min(chunk.len() - 1)];
            query = query
                .bind(tenant_id.to_string())
                .bind(entry.import_key.clone())
                .bind(entry.code.clone())
                .bind(now_ms);
        }
        for row in query.fetch_all(&mut *conn).await? {
            fresh.insert(row.try_get::<String, _>(0)?);
        }
    }
    Ok(fresh)
}

/// Takes back keys claimed in this transaction whose link could not be written (its
/// alias belongs to another link), so a rerun reports them again instead of skipping.
pub async fn unclaim(
    conn: &mut AnyConnection,
    tenant_id: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    for chunk in keys.chunks(SMALL_CHUNK) {
        let list: Vec<String> = (2..chunk.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "DELETE FROM link_imports WHERE tenant_id = $1 AND import_key IN ({})",
            list.join(", ")
        );
        let query = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql)).bind(tenant_id.to_string());
        let query = chunk.iter().fold(query, |q, key| q.bind(key.clone()));
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Adds imported all-time click counts (`code`, clicks) to the counters that live
/// clicks are added to, inside the caller's transaction. Codes must be distinct.
pub async fn add_click_totals(
    conn: &mut AnyConnection,
    totals: &[(String, i64)],
) -> Result<(), StoreError> {
    for chunk in totals.chunks(SMALL_CHUNK) {
        let sql = format!(
            "INSERT INTO click_totals (code, clicks, bots) VALUES {} \
             ON CONFLICT (code) DO UPDATE SET clicks = click_totals.clicks + excluded.clicks",
            placeholders(chunk.len(), 3)
        );
        let query = chunk.iter().fold(
            sqlx::query::<Any>(sqlx::AssertSqlSafe(sql)),
            |q, (code, n)| q.bind(code.clone()).bind(*n).bind(0i64),
        );
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Ledger rows of `tenant_id`, for operators and tests.
pub async fn ledger_count(pool: &AnyPool, tenant_id: &str) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM link_imports WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}

/// A link as an export writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedLink {
    pub id: i64,
    /// The link's key: its code, or `domain/code` on a branded domain.
    pub key: String,
    /// Empty for the default domain.
    pub domain: String,
    pub url: String,
    pub tags: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    /// All-time clicks (the counter `max_visits` is checked against).
    pub clicks: i64,
    pub routing: domain::route::Routing,
}

/// The condition every exported link meets: the tenant's, neither deleted nor
/// disabled (the file has no column for either state, and importing such a link
/// would bring it back to life). Expired links are exported: their expiry travels.
const EXPORTED: &str = "l.tenant_id = $1 AND l.deleted_at IS NULL AND l.disabled_at IS NULL";

/// Up to `limit` exported links of `tenant_id` with ids above `after_id`, by id: a
/// keyset walk that neither skips nor repeats a link however long the export takes.
pub async fn export_page(
    pool: &AnyPool,
    tenant_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<ExportedLink>, StoreError> {
    let sql = format!(
        "SELECT l.id, l.code, l.url, l.tags, l.expires_at, l.created_at, l.domain, l.routing \
         FROM links l \
         WHERE {EXPORTED} AND l.id > $2 ORDER BY l.id LIMIT $3"
    );
    // A compile-time constant was spliced in, nothing else.
    let rows = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id.to_string())
        .bind(after_id)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    let mut links = rows
        .iter()
        .map(|row| {
            let tags: String = row.try_get(3)?;
            Ok(ExportedLink {
                id: row.try_get(0)?,
                key: row.try_get(1)?,
                domain: row.try_get(6)?,
                url: row.try_get(2)?,
                tags: serde_json::from_str(&tags)
                    .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
                expires_at: row.try_get(4)?,
                created_at: row.try_get(5)?,
                clicks: 0,
                routing: match row.try_get::<Option<String>, _>(7)? {
                    Some(text) => serde_json::from_str(&text)
                        .map_err(|e| StoreError::Corrupt(format!("routing: {e}")))?,
                    None => domain::route::Routing::default(),
                },
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // The counters by code in a second statement rather than a join: with the
    // statistics of a table that was just bulk-loaded, PostgreSQL may plan the join
    // as a scan of every counter, once per page.
    let keys: Vec<&str> = links.iter().map(|l| l.key.as_str()).collect();
    let totals = click_totals(pool, &keys).await?;
    for link in &mut links {
        link.clicks = totals.get(&link.key).copied().unwrap_or(0);
    }
    Ok(links)
}

/// All-time clicks of each of `codes` that has any.
async fn click_totals(
    pool: &AnyPool,
    codes: &[&str],
) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let mut totals = std::collections::HashMap::with_capacity(codes.len());
    for chunk in codes.chunks(LEDGER_CHUNK) {
        let list: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT code, clicks FROM click_totals WHERE code IN ({})",
            list.join(", ")
        );
        // Only placeholders were spliced in.
        let query = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
        let query = chunk.iter().fold(query, |q, code| q.bind(code.to_string()));
        for row in query.fetch_all(pool).await? {
            totals.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(totals)
}

/// How many links an export of `tenant_id` writes right now (for its progress bar).
pub async fn export_count(pool: &AnyPool, tenant_id: &str) -> Result<i64, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM links l WHERE {EXPORTED}");
    let row = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id.to_string())
        .fetch_one(pool)
        .await?;
    Ok(row.try_get(0)?)
}
