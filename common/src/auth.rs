//! API keys: generation, hashing at rest, and resolving a bearer key to its tenant.
//!
//! A key is `sk_` followed by 43 random base62 characters (about 256 bits). Only its
//! SHA-256 is stored, so a copy of the database grants nothing. Resolved keys are
//! cached briefly (see [`KEY_CACHE_TTL`]), which is also how long a revoked key may
//! still be accepted by a running instance.

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::{Database, StoreError, keys};
use crate::link::TenantId;
use crate::problem::Problem;
use crate::time::now_ms;

pub const KEY_PREFIX: &str = "sk_";
const SECRET_CHARS: usize = 43;

/// Upper bound on how long a revoked key keeps working on an instance that saw it.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Who is calling, once the bearer key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub key_id: i64,
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

/// Creates and stores a key for the tenant named `tenant`.
pub async fn create_key(db: &Database, tenant: &str, label: &str) -> anyhow::Result<NewKey> {
    let tenant = TenantId::named(tenant)?;
    let mut rng = rand::rng();
    let body: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(SECRET_CHARS)
        .map(char::from)
        .collect();
    let secret = format!("{KEY_PREFIX}{body}");
    let record = keys::KeyRecord {
        id: rng.random_range(1..i64::MAX),
        tenant_id: tenant,
        key_hash: hash_key(&secret),
        label: label.to_string(),
        created_at: now_ms(),
        revoked_at: None,
    };
    keys::insert(db.primary(), &record).await?;
    Ok(NewKey { secret, record })
}

/// Resolves `Authorization: Bearer sk_…` headers.
#[derive(Clone)]
pub struct Authenticator {
    db: Database,
    cache: moka::future::Cache<String, Option<Principal>>,
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Missing or invalid API key",
    )
    .detail(detail)
}

impl Authenticator {
    pub fn new(db: Database) -> Authenticator {
        Authenticator {
            db,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
        }
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
        if !well_formed(secret) {
            return Err(unauthorized("the API key is not valid"));
        }
        let hash = hash_key(secret);
        let db = self.db.clone();
        let lookup_hash = hash.clone();
        let principal = self
            .cache
            .try_get_with(hash.clone(), async move {
                let record = keys::find_by_hash(db.primary(), &lookup_hash).await?;
                Ok::<_, StoreError>(record.and_then(|r| {
                    // The index lookup already matched; the constant-time comparison
                    // keeps the decision itself free of timing differences.
                    let same: bool = r.key_hash.as_bytes().ct_eq(lookup_hash.as_bytes()).into();
                    (same && r.revoked_at.is_none()).then_some(Principal {
                        tenant_id: r.tenant_id,
                        key_id: r.id,
                    })
                }))
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "API key lookup failed");
                Problem::unavailable("cannot check API keys right now")
            })?;
        principal
            .map(Some)
            .ok_or_else(|| unauthorized("the API key is not valid"))
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
