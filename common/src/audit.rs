//! What the audit log records of each kind of resource, in one place for every writer
//! (the API, the bulk create, the import, the admin commands), and the write that puts
//! new links and their audit rows in one transaction.

use std::time::Duration;

use domain::audit::{Actor, Entry, diff};
use serde_json::{Value, json};

use crate::db::domains::DomainRecord;
use crate::db::keys::KeyRecord;
use crate::db::links::{self, LinkRecord};
use crate::db::webhooks::EndpointRecord;
use crate::db::{Database, StoreError};
use crate::time::from_ms;

pub use domain::audit::{AuditAction, target};

fn instant(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| {
        Value::String(from_ms(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// A link's fields as the log compares them.
pub fn link_state(record: &LinkRecord) -> Value {
    json!({
        "url": record.url,
        "redirect_status": record.redirect_status.code(),
        "tags": record.tags,
        "max_visits": record.max_visits,
        "expires_at": instant(record.expires_at),
        "disabled": record.disabled_at.is_some(),
        "deleted": record.deleted_at.is_some(),
        "forward_query": record.routing.forward_query,
        // None is left out of a diff like every other absent value.
        "rules": (!record.routing.rules.is_empty()).then_some(&record.routing.rules),
        "variants": (!record.routing.variants.is_empty()).then_some(&record.routing.variants),
        // Whether a password is set, and when it changes; never the hash itself.
        "password": record.routing.password_hash.as_deref().map(crate::passwords::fingerprint),
    })
}

/// `link:<key>`: the code, or `domain/code` on a branded domain.
pub fn link_target(record: &LinkRecord) -> String {
    target("link", record.key())
}

/// A webhook endpoint's settings as the log compares them (never its secret).
pub fn webhook_state(record: &EndpointRecord) -> Value {
    json!({
        "url": record.url,
        "events": record.events.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        "description": record.description,
        "enabled": record.enabled,
    })
}

/// A branded domain's settings as the log compares them.
pub fn domain_state(record: &DomainRecord) -> Value {
    let s = &record.settings;
    json!({
        "root_url": s.root_url,
        "not_found_url": s.not_found_url,
        "gone_url": s.gone_url,
        "scheme": s.scheme.as_str(),
        "https_only": s.https_only,
        "redirect_status": s.redirect_status.code(),
        "forward_query": s.forward_query,
    })
}

/// A key as the log shows it (never its secret, nor its hash).
pub fn key_state(record: &KeyRecord) -> Value {
    let (role, scopes) = record.grant.to_stored();
    let (role, scopes) = match record.member_id {
        Some(_) => (None, None),
        None => (role, scopes),
    };
    json!({
        "label": record.label,
        "member": record.member_id.map(|id| id.to_string()),
        "role": role,
        "scopes": scopes,
        "expires_at": instant(record.expires_at),
        "revoked": record.revoked_at.is_some(),
    })
}

/// A member as the log shows them.
pub fn member_state(record: &crate::db::members::MemberRecord) -> Value {
    json!({
        "email": record.email,
        "name": record.name,
        "role": record.role.as_str(),
    })
}

/// The change between two states of a resource (`None`: it did not exist).
pub fn changes(before: Option<Value>, after: Option<Value>) -> Value {
    diff(before, after)
}

/// Whoever runs an admin command, by the operating-system user: its name when the
/// environment gives it, else its uid (a container often has no `USER`).
pub fn operator() -> Actor {
    let name = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(uid);
    Actor::Operator(name)
}

/// The audit row of a change made by `actor` outside any request (an admin command;
/// see [`operator`]), now.
pub fn outside_request(
    actor: &Actor,
    tenant_id: &str,
    action: AuditAction,
    target: String,
    changes: Value,
) -> Entry {
    Entry {
        tenant_id: tenant_id.to_string(),
        actor: actor.clone(),
        action,
        target,
        changes,
        request_id: String::new(),
        at: crate::time::now_ms(),
    }
}

#[cfg(unix)]
fn uid() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map_or_else(|_| "unknown".to_string(), |m| format!("uid {}", m.uid()))
}

#[cfg(not(unix))]
fn uid() -> String {
    "unknown".to_string()
}

/// Inserts `records`, and for each one inserted its entry of `entries` (same order),
/// in one transaction; returns whether each was inserted (`false`: its key was
/// taken, and it left no audit row).
pub async fn insert_links(
    db: &Database,
    records: &[LinkRecord],
    entries: &[Entry],
) -> Result<Vec<bool>, StoreError> {
    let mut tx = db.begin_write().await?;
    let inserted = links::insert_many(&mut tx, records).await?;
    if inserted.iter().all(|ok| *ok) {
        crate::db::audit::insert_many(&mut tx, entries).await?;
    } else {
        let audited: Vec<Entry> = entries
            .iter()
            .zip(&inserted)
            .filter(|(_, ok)| **ok)
            .map(|(entry, _)| entry.clone())
            .collect();
        crate::db::audit::insert_many(&mut tx, &audited).await?;
    }
    tx.commit().await?;
    Ok(inserted)
}

/// Deletes audit rows older than `retention`, hourly, on one instance at a time or
/// several (the delete is idempotent); rows of the last day never go.
pub async fn purge_expired(db: Database, retention: Duration) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = crate::time::now_ms().saturating_sub(retention_ms);
        match crate::db::audit::purge_older_than(db.primary(), db.engine(), cutoff).await {
            Ok(n) if n > 0 => tracing::info!(purged = n, "audit rows past retention purged"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit purge failed"),
        }
    }
}
