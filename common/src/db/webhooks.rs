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

/// A message a worker may deliver, with where and how it is signed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: i64,
    pub id: String,
    pub endpoint_id: String,
    pub payload: String,
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: i64,
    /// Where the retry budget runs from: the message's creation, or its replay.
    pub retry_from: i64,
    pub url: String,
    pub secret: String,
}

/// Due messages at the head of their link's line (no older message of the same link
/// is still owed to the same endpoint), of endpoints that are on, and held by no
/// worker: the longest due first, up to `limit`, and at most `per_endpoint` of any
/// one endpoint, so an endpoint with a backlog cannot fill the page.
pub async fn due(
    pool: &AnyPool,
    now: i64,
    limit: i64,
    per_endpoint: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, id, endpoint_id, payload, created_at, attempts, retry_from, url, secret \
         FROM (SELECT m.seq, m.id, m.endpoint_id, m.payload, m.created_at, m.attempts, \
         COALESCE(m.retry_from, m.created_at) AS retry_from, e.url, e.secret, \
         m.next_attempt_at, ROW_NUMBER() OVER (PARTITION BY m.endpoint_id \
         ORDER BY m.next_attempt_at, m.seq) AS place \
         FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id \
         WHERE m.state = 'pending' AND m.next_attempt_at <= $1 \
         AND (m.locked_until IS NULL OR m.locked_until < $1) AND e.enabled = 1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_messages o WHERE o.endpoint_id = m.endpoint_id \
         AND o.link_key = m.link_key AND o.state = 'pending' AND o.seq < m.seq)) due \
         WHERE place <= $3 ORDER BY next_attempt_at, seq LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .bind(per_endpoint)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Delivery {
                seq: row.try_get(0)?,
                id: row.try_get(1)?,
                endpoint_id: row.try_get(2)?,
                payload: row.try_get(3)?,
                created_at: row.try_get(4)?,
                attempts: row.try_get(5)?,
                retry_from: row.try_get(6)?,
                url: row.try_get(7)?,
                secret: row.try_get(8)?,
            })
        })
        .collect()
}

/// Holds message `seq` for this worker until `until`; false when another worker
/// holds it, or it is no longer pending.
pub async fn claim(pool: &AnyPool, seq: i64, now: i64, until: i64) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE webhook_messages SET locked_until = $1 WHERE seq = $2 AND state = 'pending' \
         AND (locked_until IS NULL OR locked_until < $3)",
    )
    .bind(until)
    .bind(seq)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// What one attempt met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: i64,
    /// The answer's status; `None` when none came.
    pub status: Option<u16>,
    pub latency_ms: i64,
    /// Why it failed, when no status says it.
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response: Option<String>,
}

/// What becomes of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Tried again at this time (Unix ms).
    RetryAt(i64),
    /// Out of retries: a dead letter until someone replays it.
    Dead,
}

/// Records an attempt at `delivery` and what follows it, in one transaction: the
/// delivery log's row, the message's state, and whether its endpoint is failing.
pub async fn record(
    conn: &mut AnyConnection,
    delivery: &Delivery,
    attempt: &Attempt,
    next: Next,
) -> Result<(), StoreError> {
    // A second worker that took the message after a lost lease logs its attempt
    // under the same number at worst: the first row stands.
    sqlx::query(
        "INSERT INTO webhook_attempts (message_seq, attempt, endpoint_id, at, status, \
         latency_ms, error, response) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (message_seq, attempt) DO NOTHING",
    )
    .bind(delivery.seq)
    .bind(delivery.attempts + 1)
    .bind(delivery.endpoint_id.clone())
    .bind(attempt.at)
    .bind(attempt.status.map(i64::from))
    .bind(attempt.latency_ms)
    .bind(attempt.error.clone())
    .bind(attempt.response.clone())
    .execute(&mut *conn)
    .await?;
    let (state, next_at, finished) = match next {
        Next::Delivered => ("delivered", attempt.at, Some(attempt.at)),
        Next::RetryAt(at) => ("pending", at, None),
        Next::Dead => ("dead", attempt.at, Some(attempt.at)),
    };
    sqlx::query(
        "UPDATE webhook_messages SET state = $1, attempts = attempts + 1, next_attempt_at = $2, \
         finished_at = $3, locked_until = NULL WHERE seq = $4",
    )
    .bind(state)
    .bind(next_at)
    .bind(finished)
    .bind(delivery.seq)
    .execute(&mut *conn)
    .await?;
    let failing = if next == Next::Delivered {
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = NULL \
             WHERE id = $1 AND failing_since IS NOT NULL",
        )
        .bind(delivery.endpoint_id.clone())
    } else {
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1 AND failing_since IS NULL",
        )
        .bind(delivery.endpoint_id.clone())
        .bind(attempt.at)
    };
    failing.execute(&mut *conn).await?;
    Ok(())
}

/// A message as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub seq: i64,
    pub id: String,
    pub event_type: String,
    pub link_key: String,
    pub payload: String,
    pub created_at: i64,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub finished_at: Option<i64>,
}

/// The endpoint's messages in `state` (any when `None`), newest first, older than
/// `before` (a `seq`) when given.
pub async fn messages(
    pool: &AnyPool,
    endpoint_id: &str,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<MessageRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, id, event_type, link_key, payload, created_at, state, attempts, \
         next_attempt_at, finished_at FROM webhook_messages \
         WHERE endpoint_id = $1 AND ($2 = '' OR state = $2) AND seq < $3 \
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(endpoint_id)
    .bind(state.unwrap_or_default())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MessageRecord {
                seq: row.try_get(0)?,
                id: row.try_get(1)?,
                event_type: row.try_get(2)?,
                link_key: row.try_get(3)?,
                payload: row.try_get(4)?,
                created_at: row.try_get(5)?,
                state: row.try_get(6)?,
                attempts: row.try_get(7)?,
                next_attempt_at: row.try_get(8)?,
                finished_at: row.try_get(9)?,
            })
        })
        .collect()
}

/// Puts the endpoint's dead letters (only `message_id`, when given) back in line,
/// due at `now` with a fresh retry budget; returns how many.
pub async fn replay(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    message_id: Option<&str>,
    now: i64,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE webhook_messages SET state = 'pending', next_attempt_at = $1, retry_from = $1, \
         finished_at = NULL, locked_until = NULL \
         WHERE endpoint_id = $2 AND state = 'dead' AND ($3 = '' OR id = $3)",
    )
    .bind(now)
    .bind(endpoint_id)
    .bind(message_id.unwrap_or_default())
    .execute(conn)
    .await?;
    Ok(result.rows_affected())
}

/// One row of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub message_seq: i64,
    pub message_id: String,
    pub event_type: String,
    pub attempt: i64,
    pub at: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}

impl AttemptRecord {
    /// Where the page after this row starts (see [`AttemptCursor`]).
    pub fn cursor(&self) -> AttemptCursor {
        AttemptCursor {
            at: self.at,
            message_seq: self.message_seq,
            attempt: self.attempt,
        }
    }
}

/// A place in a delivery log, which is ordered by time, then message, then attempt
/// (several attempts may share a millisecond). Written `at.seq.attempt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCursor {
    pub at: i64,
    pub message_seq: i64,
    pub attempt: i64,
}

impl AttemptCursor {
    pub fn parse(text: &str) -> Option<AttemptCursor> {
        let mut parts = text.split('.').map(|p| p.parse::<i64>().ok());
        let cursor = AttemptCursor {
            at: parts.next()??,
            message_seq: parts.next()??,
            attempt: parts.next()??,
        };
        parts.next().is_none().then_some(cursor)
    }
}

impl std::fmt::Display for AttemptCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.at, self.message_seq, self.attempt)
    }
}

/// The endpoint's delivery log, newest first, after `after` when given.
pub async fn attempts(
    pool: &AnyPool,
    endpoint_id: &str,
    after: Option<AttemptCursor>,
    limit: i64,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let after = after.unwrap_or(AttemptCursor {
        at: i64::MAX,
        message_seq: i64::MAX,
        attempt: i64::MAX,
    });
    let rows = sqlx::query(
        "SELECT a.message_seq, m.id, m.event_type, a.attempt, a.at, a.status, a.latency_ms, \
         a.error, a.response \
         FROM webhook_attempts a JOIN webhook_messages m ON m.seq = a.message_seq \
         WHERE a.endpoint_id = $1 AND (a.at < $2 OR (a.at = $2 AND (a.message_seq < $3 \
         OR (a.message_seq = $3 AND a.attempt < $4)))) \
         ORDER BY a.at DESC, a.message_seq DESC, a.attempt DESC LIMIT $5",
    )
    .bind(endpoint_id)
    .bind(after.at)
    .bind(after.message_seq)
    .bind(after.attempt)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AttemptRecord {
                message_seq: row.try_get(0)?,
                message_id: row.try_get(1)?,
                event_type: row.try_get(2)?,
                attempt: row.try_get(3)?,
                at: row.try_get(4)?,
                status: row.try_get(5)?,
                latency_ms: row.try_get(6)?,
                error: row.try_get(7)?,
                response: row.try_get(8)?,
            })
        })
        .collect()
}

/// Forgets messages delivered or given up on before `before` (Unix ms), with their
/// delivery log; returns how many messages.
pub async fn purge_finished(pool: &AnyPool, before: i64) -> Result<u64, StoreError> {
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE message_seq IN (SELECT seq FROM webhook_messages \
         WHERE finished_at IS NOT NULL AND finished_at < $1)",
    )
    .bind(before)
    .execute(pool)
    .await?;
    let result = sqlx::query(
        "DELETE FROM webhook_messages WHERE finished_at IS NOT NULL AND finished_at < $1",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Pending messages and the due time of the oldest due one (0 when none is due), for
/// the delivery lag.
pub async fn backlog(pool: &AnyPool, now: i64) -> Result<(i64, i64), StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(COALESCE(MIN(CASE WHEN next_attempt_at <= $1 \
         THEN next_attempt_at END), 0) AS BIGINT) FROM webhook_messages WHERE state = 'pending'",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The endpoints of `tenant_id` that are on, oldest first.
pub async fn enabled_endpoints(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
) -> Result<Vec<EndpointRecord>, StoreError> {
    let sql = concat!(
        "SELECT ",
        endpoint_columns!(),
        " FROM webhook_endpoints WHERE tenant_id = $1 AND enabled = 1 ORDER BY created_at, id"
    );
    let rows = sqlx::query(sql)
        .bind(tenant_id.as_str())
        .fetch_all(conn)
        .await?;
    rows.iter().map(endpoint_from_row).collect()
}
