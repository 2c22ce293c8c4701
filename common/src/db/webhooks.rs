//! Every SQL statement on the webhook tables: the endpoints tenants register
//! (`webhook_endpoints`), the messages owed to them (`webhook_messages`) and the log of
//! attempts to deliver them (`webhook_attempts`).

use sqlx::{AnyConnection, AnyPool, Row};

use super::StoreError;
use crate::link::TenantId;
use domain::webhooks::EventType;

/// An endpoint: where a tenant's events go, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRecord {
    pub id: String,
    pub tenant_id: TenantId,
    pub url: String,
    pub events: Vec<EventType>,
    /// `whsec_…`: shown once, when the endpoint is made, and used to sign.
    pub secret: String,
    pub description: String,
    pub enabled: bool,
    /// Why the worker turned it off (failing for days); `None` when it did not.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last success.
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Columns in the order [`endpoint_from_row`] reads them.
macro_rules! endpoint_columns {
    () => {
        "id, tenant_id, url, events, secret, description, enabled, disabled_reason, \
         failing_since, created_at, updated_at"
    };
}

fn endpoint_from_row(row: &sqlx::any::AnyRow) -> Result<EndpointRecord, StoreError> {
    let events: String = row.try_get(3)?;
    Ok(EndpointRecord {
        id: row.try_get(0)?,
        tenant_id: TenantId::from_stored(row.try_get(1)?),
        url: row.try_get(2)?,
        events: EventType::from_stored(&events),
        secret: row.try_get(4)?,
        description: row.try_get(5)?,
        enabled: row.try_get::<i64, _>(6)? != 0,
        disabled_reason: row.try_get(7)?,
        failing_since: row.try_get(8)?,
        created_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
    })
}

pub async fn insert_endpoint(
    conn: &mut AnyConnection,
    record: &EndpointRecord,
) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO webhook_endpoints (",
        endpoint_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ))
    .bind(record.id.clone())
    .bind(record.tenant_id.to_string())
    .bind(record.url.clone())
    .bind(EventType::to_stored(&record.events))
    .bind(record.secret.clone())
    .bind(record.description.clone())
    .bind(i64::from(record.enabled))
    .bind(record.disabled_reason.clone())
    .bind(record.failing_since)
    .bind(record.created_at)
    .bind(record.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's endpoint `id`; another tenant's is none.
pub async fn get_endpoint(
    pool: &AnyPool,
    tenant_id: &TenantId,
    id: &str,
) -> Result<Option<EndpointRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2"
    );
    let row = sqlx::query(sql)
        .bind(id)
        .bind(tenant_id.as_str())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(endpoint_from_row).transpose()
}

/// The tenant's endpoints, oldest first.
pub async fn list_endpoints(
    pool: &AnyPool,
    tenant_id: &TenantId,
) -> Result<Vec<EndpointRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
    );
    let rows = sqlx::query(sql)
        .bind(tenant_id.as_str())
        .fetch_all(pool)
        .await?;
    rows.iter().map(endpoint_from_row).collect()
}

/// How many endpoints the tenant has (the API caps them).
pub async fn count_endpoints(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = $1")
        .bind(tenant_id.as_str())
        .fetch_one(conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// Writes `record`'s settings if the endpoint is still at version `expected`
/// (`updated_at`); false when it changed meanwhile or is gone.
pub async fn update_endpoint(
    conn: &mut AnyConnection,
    record: &EndpointRecord,
    expected: i64,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE webhook_endpoints SET url = $1, events = $2, description = $3, enabled = $4, \
         disabled_reason = $5, failing_since = $6, updated_at = $7 \
         WHERE id = $8 AND tenant_id = $9 AND updated_at = $10",
    )
    .bind(record.url.clone())
    .bind(EventType::to_stored(&record.events))
    .bind(record.description.clone())
    .bind(i64::from(record.enabled))
    .bind(record.disabled_reason.clone())
    .bind(record.failing_since)
    .bind(record.updated_at)
    .bind(record.id.clone())
    .bind(record.tenant_id.to_string())
    .bind(expected)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Removes the endpoint and what it was still owed; false when the tenant has no
/// such endpoint. Its delivery log goes with it.
pub async fn delete_endpoint(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    id: &str,
) -> Result<bool, StoreError> {
    let result = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant_id.as_str())
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM webhook_messages WHERE endpoint_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM webhook_attempts WHERE endpoint_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// A message as its writer decides it, before any attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: String,
    pub endpoint_id: String,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    /// The link it is about (empty: none), whose messages keep their order.
    pub link_key: String,
    pub payload: String,
    pub created_at: i64,
}

/// Queues `messages`, due at once, in the caller's transaction.
pub async fn insert_messages(
    conn: &mut AnyConnection,
    messages: &[NewMessage],
) -> Result<(), StoreError> {
    for message in messages {
        sqlx::query(
            "INSERT INTO webhook_messages (id, endpoint_id, tenant_id, event_type, link_key, \
             payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(message.id.clone())
        .bind(message.endpoint_id.clone())
        .bind(message.tenant_id.to_string())
        .bind(message.event_type.as_str())
        .bind(message.link_key.clone())
        .bind(message.payload.clone())
        .bind(message.created_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
