//! API keys: generation, hashing at rest, rotation, and resolving a bearer key to its
//! tenant and grant.
//!
//! A key is `sk_` followed by 43 random base62 characters (about 256 bits). Only its
//! SHA-256 is stored, so a copy of the database grants nothing. Resolved keys are
//! cached in process, so an authorised call costs no database query: the cache is
//! dropped whole when a key changes anywhere (an announcement on the bus), and entries
//! live at most [`KEY_CACHE_TTL`], which bounds how long a revoked key may still be
//! accepted by an instance that missed the announcement. Expiry is checked on every
//! call against the cached record, so an expired key fails on time.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use domain::access::Grant;
use domain::audit::Entry;
use domain::ids::{Clock, SystemClock};
use futures_util::future::BoxFuture;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit;
use crate::db::{Database, StoreError, keys};
use crate::deps::Deps;
use crate::events::{Event, Listener, Topic};
use crate::link::TenantId;
use crate::problem::Problem;

pub const KEY_PREFIX: &str = "sk_";
const SECRET_CHARS: usize = 43;

/// Upper bound on how long a revoked key keeps working on an instance that saw it and
/// missed the announcement of its revocation.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// How long a rotated key keeps working beside its successor unless the rotation
/// names a grace period.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace period a rotation may ask for.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Who is calling, once the bearer key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub key_id: i64,
    pub grant: Grant,
    /// The member the key belongs to, if any.
    pub member_id: Option<i64>,
    /// When the key stops working; keys it makes stop no later.
    pub expires_at: Option<i64>,
}

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub tenant_id: TenantId,
    pub label: String,
    /// The member's role, for a member's key.
    pub grant: Grant,
    pub expires_at: Option<i64>,
    pub member_id: Option<i64>,
    /// The member whose key makes this one.
    pub created_by_member: Option<i64>,
}

/// A freshly minted key: `secret` is shown once and then forgotten.
#[derive(Debug)]
pub struct NewKey {
    pub secret: String,
    pub record: keys::KeyRecord,
}

pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// True when `secret` has the shape of one of our keys (cheap check before hashing).
fn well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|s| s.len() == SECRET_CHARS && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A new secret and the record that stores its hash (not yet stored).
pub fn mint(spec: KeySpec, now_ms: i64) -> NewKey {
    let mut rng = rand::rng();
    let body: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(SECRET_CHARS)
        .map(char::from)
        .collect();
    let secret = format!("{KEY_PREFIX}{body}");
    let record = keys::KeyRecord {
        id: rng.random_range(1..i64::MAX),
        tenant_id: spec.tenant_id,
        key_hash: hash_key(&secret),
        label: spec.label,
        grant: spec.grant,
        created_at: now_ms,
        expires_at: spec.expires_at,
        revoked_at: None,
        rotated_from: None,
        member_id: spec.member_id,
        created_by_member: spec.created_by_member,
    };
    NewKey { secret, record }
}

/// Creates and stores a key of `grant` for the tenant named `tenant` (the CLI's
/// `keys create`).
pub async fn create_key(
    db: &Database,
    tenant: &str,
    label: &str,
    grant: Grant,
) -> anyhow::Result<NewKey> {
    let spec = KeySpec {
        tenant_id: TenantId::named(tenant)?,
        label: label.to_string(),
        grant,
        expires_at: None,
        member_id: None,
        created_by_member: None,
    };
    let key = mint(spec, crate::time::now_ms());
    let entry = audit::outside_request(
        &audit::operator(),
        key.record.tenant_id.as_str(),
        audit::AuditAction::KeyCreated,
        audit::target("key", key.record.id),
        audit::changes(None, Some(audit::key_state(&key.record))),
    );
    let mut tx = db.begin_write().await?;
    keys::insert(&mut *tx, &key.record).await?;
    crate::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok(key)
}

/// Revokes key `id` of any tenant (the CLI's `keys revoke`), with its audit row;
/// false when no such unrevoked key exists.
pub async fn revoke_by_operator(db: &Database, id: i64) -> Result<bool, StoreError> {
    let now = crate::time::now_ms();
    let mut tx = db.begin_write().await?;
    let Some(record) = keys::find(&mut *tx, id).await? else {
        return Ok(false);
    };
    if !keys::revoke(&mut *tx, id, now).await? {
        return Ok(false);
    }
    let after = keys::KeyRecord {
        revoked_at: Some(now),
        ..record.clone()
    };
    let entry = audit::outside_request(
        &audit::operator(),
        record.tenant_id.as_str(),
        audit::AuditAction::KeyRevoked,
        audit::target("key", id),
        audit::changes(
            Some(audit::key_state(&record)),
            Some(audit::key_state(&after)),
        ),
    );
    crate::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await?;
    Ok(true)
}

/// Replaces `old` with a new key of the same tenant, label, grant and expiry, in one
/// transaction with the audit row `audit` makes of (the old key as it is now, the
/// new key): the old key keeps working until `now + grace` (or its own expiry, if
/// sooner), so clients can switch without a gap. `None` when `old` is revoked or
/// expired.
pub async fn rotate(
    db: &Database,
    old: &keys::KeyRecord,
    grace: Duration,
    now_ms: i64,
    audit: impl FnOnce(&keys::KeyRecord, &keys::KeyRecord) -> Entry,
) -> Result<Option<NewKey>, StoreError> {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let mut tx = db.begin_write().await?;
    // Read again in the transaction: the successor takes the key as it is now.
    let Some(current) = keys::get(&mut *tx, &old.tenant_id, old.id).await? else {
        return Ok(None);
    };
    if !current.active_at(now_ms) {
        return Ok(None);
    }
    let mut key = mint(
        KeySpec {
            tenant_id: current.tenant_id.clone(),
            label: current.label.clone(),
            grant: current.grant.clone(),
            expires_at: current.expires_at,
            member_id: current.member_id,
            created_by_member: current.created_by_member,
        },
        now_ms,
    );
    key.record.rotated_from = Some(current.id);
    let until = now_ms.saturating_add(grace_ms);
    if !keys::expire_by(&mut *tx, old.id, until).await? && current.expires_at.is_none() {
        return Ok(None);
    }
    // A key is rotated once (a unique index): a second rotation, a retry, finds the
    // successor there.
    match keys::insert(&mut *tx, &key.record).await {
        Err(StoreError::Conflict(_)) => return Ok(None),
        other => other?,
    }
    let retiring = keys::KeyRecord {
        expires_at: Some(current.expires_at.map_or(until, |at| at.min(until))),
        ..current
    };
    crate::db::audit::insert(&mut *tx, &audit(&retiring, &key.record)).await?;
    tx.commit().await?;
    Ok(Some(key))
}

/// Resolves `Authorization: Bearer sk_…` headers.
#[derive(Clone)]
pub struct Authenticator {
    db: Database,
    clock: Arc<dyn Clock>,
    cache: moka::future::Cache<String, Option<keys::KeyRecord>>,
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Missing or invalid API key",
    )
    .detail(detail)
}

/// Drops every cached key when one changes anywhere, or when changes may have been
/// missed.
struct Forget(moka::future::Cache<String, Option<keys::KeyRecord>>);

impl Listener for Forget {
    fn event(&self, _event: Event) -> BoxFuture<'static, ()> {
        self.0.invalidate_all();
        Box::pin(std::future::ready(()))
    }

    fn missed(&self, _connected: bool) {
        self.0.invalidate_all();
    }
}

impl Authenticator {
    pub fn new(db: Database) -> Authenticator {
        Authenticator::with_clock(db, Arc::new(SystemClock))
    }

    /// An authenticator that reads expiry against `clock`.
    pub fn with_clock(db: Database, clock: Arc<dyn Clock>) -> Authenticator {
        Authenticator {
            db,
            clock,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
        }
    }

    /// Forgets cached keys on every key change announced on `deps.bus`, from a task
    /// of `deps.background`.
    pub fn follow_changes(&self, deps: &Deps) {
        deps.bus
            .subscription(Topic::Access)
            .start(Arc::new(Forget(self.cache.clone())), &deps.background);
    }

    /// Now, by this authenticator's clock (Unix ms).
    pub fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now_ms()).unwrap_or(i64::MAX)
    }

    /// `Ok(None)` when the request carries no `Authorization` header at all; a header
    /// that is present but wrong is always an error, never anonymous access.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Option<Principal>, Problem> {
        let Some(header) = req.headers().get(AUTHORIZATION) else {
            return Ok(None);
        };
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("use `Authorization: Bearer <key>`"))?;
        self.resolve(secret).await.map(Some)
    }

    /// The principal of bearer key `secret`, or the 401 that says why there is none.
    pub async fn resolve(&self, secret: &str) -> Result<Principal, Problem> {
        if !well_formed(secret) {
            return Err(unauthorized("the API key is not valid"));
        }
        let hash = hash_key(secret);
        let db = self.db.clone();
        let lookup_hash = hash.clone();
        let record = self
            .cache
            .try_get_with(hash, async move {
                let record = keys::find_by_hash(db.primary(), &lookup_hash).await?;
                // The index lookup already matched; the constant-time comparison
                // keeps the decision itself free of timing differences.
                Ok::<_, StoreError>(
                    record.filter(|r| r.key_hash.as_bytes().ct_eq(lookup_hash.as_bytes()).into()),
                )
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "API key lookup failed");
                Problem::unavailable("cannot check API keys right now")
            })?
            .ok_or_else(|| unauthorized("the API key is not valid"))?;
        if record.revoked_at.is_some() {
            return Err(unauthorized("the API key was revoked"));
        }
        if !record.active_at(self.now_ms()) {
            return Err(unauthorized("the API key has expired"));
        }
        Ok(Principal {
            tenant_id: record.tenant_id,
            key_id: record.id,
            grant: record.grant,
            member_id: record.member_id,
            expires_at: record.expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        assert!(well_formed(&format!("sk_{}", "a".repeat(43))));
        assert!(!well_formed("sk_short"));
        assert!(!well_formed(&format!("pk_{}", "a".repeat(43))));
        assert_eq!(hash_key("x").len(), 64);
    }
}
