//! `/api/v1/keys`: a tenant's API keys, made, listed, rotated and revoked over the
//! API. A key is shown once, when it is made; only its hash is stored. No key can
//! hand out, rotate or revoke a key that may do more than it may itself
//! ([`access::covers`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::audit::{self, AuditAction};
use common::auth::{self, DEFAULT_ROTATION_GRACE, KeySpec, MAX_ROTATION_GRACE, Principal};
use common::db::StoreError;
use common::db::keys::{self, KeyRecord, KeyState};
use common::db::members;
use common::domain::access::{self, Action, Grant, Role, Scope};
use common::events::Event;
use common::held;
use common::problem::Problem;
use common::time::from_ms;
use serde::de::MapAccess;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::model::{FieldErrors, Fields, object_only};
use crate::state::{Caller, CreateState};

const MAX_LABEL_CHARS: usize = 200;

/// `POST /api/v1/keys`: a role, a service key's scopes, or the member it is for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct KeyFields {
    /// `owner`, `admin`, `editor` or `viewer`; not with `scopes` or `member`.
    #[serde(default)]
    #[schema(example = "viewer")]
    pub role: Option<String>,
    /// The id of the member the key is for: it acts with the member's role of the
    /// moment, and is revoked when the member is removed.
    #[serde(default)]
    #[schema(example = "6337641584147015712")]
    pub member: Option<String>,
    /// A service key's permissions, instead of a role: `links:read`, `links:write`,
    /// `stats:read`, `domains:manage`, `keys:manage`, `audit:read`.
    #[serde(default)]
    #[schema(example = json!(["links:read", "stats:read"]))]
    pub scopes: Option<Vec<String>>,
    /// What the key is for, at most 200 characters.
    #[serde(default)]
    #[schema(example = "billing export", max_length = 200)]
    pub label: Option<String>,
    /// When the key stops working; must be in the future. Absent: never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

// `KeyFields::deserialize` here is the derive's inherent function (`remote = "Self"`).
impl<'de> Fields<'de> for KeyFields {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        KeyFields::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for KeyFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

impl KeyFields {
    /// The key these fields ask for, for `tenant`; every bad field is named. A
    /// member's key comes back with the member's id and no grant yet: the handler
    /// looks the member up.
    fn validate(&self, principal: &Principal, now_ms: i64) -> Result<KeySpec, Problem> {
        let mut errors = FieldErrors::default();
        let given = [
            self.role.is_some(),
            self.scopes.is_some(),
            self.member.is_some(),
        ];
        let mut member_id = None;
        let grant = match (&self.role, &self.scopes, &self.member) {
            _ if given.iter().filter(|g| **g).count() > 1 => {
                errors.push("scopes", "give one of `role`, `scopes` and `member`");
                None
            }
            (None, None, None) => {
                errors.push(
                    "role",
                    "give a `role`, `scopes` for a service key, or the `member` it is for",
                );
                None
            }
            (None, None, Some(member)) => match member.parse::<i64>() {
                Ok(id) => {
                    member_id = Some(id);
                    Some(Grant::Scopes(Vec::new()))
                }
                Err(_) => {
                    errors.push("member", "no such member of yours");
                    None
                }
            },
            (Some(role), _, _) => match Role::parse_or_explain(role) {
                Ok(role) => Some(Grant::Role(role)),
                Err(message) => {
                    errors.push("role", message);
                    None
                }
            },
            (None, Some(scopes), _) => {
                let mut parsed = Vec::new();
                for scope in scopes {
                    match Scope::parse_or_explain(scope) {
                        Ok(scope) => parsed.push(scope),
                        Err(message) => errors.push("scopes", message),
                    }
                }
                if scopes.is_empty() {
                    errors.push("scopes", "a service key needs at least one scope");
                }
                Some(Grant::scopes(parsed))
            }
        };
        let label = self.label.clone().unwrap_or_default();
        if label.chars().count() > MAX_LABEL_CHARS {
            errors.push("label", format!("at most {MAX_LABEL_CHARS} characters"));
        }
        let expires_at = self.expires_at.map(|at| at.timestamp_millis());
        if expires_at.is_some_and(|at| at <= now_ms) {
            errors.push("expires_at", "must be in the future");
        }
        match grant {
            Some(grant) if errors.is_empty() => Ok(KeySpec {
                tenant_id: principal.tenant_id.clone(),
                label,
                grant,
                // No key makes one that outlives it.
                expires_at: match (expires_at, principal.expires_at) {
                    (Some(asked), Some(own)) => Some(asked.min(own)),
                    (asked, own) => asked.or(own),
                },
                member_id,
                created_by_member: principal.member_id,
            }),
            _ => Err(errors.into_problem_titled("Invalid key")),
        }
    }
}

/// A key as its tenant sees it; `key` only in the answer that made it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// The key's id, as a string (it does not fit a JSON double).
    pub id: String,
    /// The key itself: shown once, in the answer that made it, and never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "sk_…")]
    pub key: Option<String>,
    pub label: String,
    /// The key's role (a member's key: the member's role of the moment); absent on
    /// a service key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The member the key belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// A service key's scopes; absent on a key with a role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    pub state: KeyState,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key this one replaced, when it was made by a rotation.
    pub rotated_from: Option<String>,
}

impl KeyView {
    fn of(record: &KeyRecord, secret: Option<String>, now_ms: i64) -> KeyView {
        let (role, scopes) = match &record.grant {
            Grant::Role(role) => (Some(role.to_string()), None),
            Grant::Scopes(scopes) => (None, Some(scopes.iter().map(|s| s.to_string()).collect())),
        };
        let state = record.state_at(now_ms);
        KeyView {
            id: record.id.to_string(),
            key: secret,
            label: record.label.clone(),
            role,
            scopes,
            member: record.member_id.map(|id| id.to_string()),
            state,
            created_at: from_ms(record.created_at),
            expires_at: record.expires_at.map(from_ms),
            revoked_at: record.revoked_at.map(from_ms),
            rotated_from: record.rotated_from.map(|id| id.to_string()),
        }
    }
}

/// `GET /api/v1/keys`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// Every key of the tenant, oldest first, revoked and expired ones included.
    pub items: Vec<KeyView>,
}

/// `POST /api/v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Rotation {
    /// How long the old key keeps working beside the new one, in seconds (0 to
    /// 2592000, 30 days); absent: 86400, a day.
    #[param(minimum = 0, maximum = 2592000)]
    pub grace_seconds: Option<u64>,
}

/// The caller, when it may manage keys, and its principal (anonymous callers never
/// get here: managing keys needs a key).
async fn manager(state: &CreateState, req: &HttpRequest) -> Result<(Caller, Principal), ApiError> {
    let caller = state.caller(req, Action::ManageKeys).await?;
    let principal = caller
        .principal
        .clone()
        .ok_or(ApiError::Forbidden(Action::ManageKeys))?;
    Ok((caller, principal))
}

/// Refuses handing out or managing `grant` unless `holder` may do all it may.
fn within(holder: &Principal, grant: &Grant) -> Result<(), ApiError> {
    match access::first_missing(&holder.grant, grant) {
        None => Ok(()),
        Some(action) => Err(ApiError::Forbidden(action)),
    }
}

/// A member's key is theirs: only the member, or an owner (who manages members), may
/// make or rotate one, so nobody else holds a secret that acts as them.
fn for_member(holder: &Principal, member_id: Option<i64>) -> Result<(), ApiError> {
    match member_id {
        Some(member)
            if holder.member_id != Some(member)
                && !access::permits(&holder.grant, Action::ManageMembers) =>
        {
            Err(ApiError::Forbidden(Action::ManageMembers))
        }
        _ => Ok(()),
    }
}

/// Key `id` of the caller's tenant: text that is no id names no key.
async fn owned_key(
    state: &CreateState,
    principal: &Principal,
    id: &str,
) -> Result<KeyRecord, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::KeyNotFound)?;
    keys::get(state.deps.db.primary(), &principal.tenant_id, id)
        .await?
        .ok_or(ApiError::KeyNotFound)
}

#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = KeyFields,
    responses(
        (status = 201, description = "Made; `key` is shown this once", body = KeyView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 422, description = "No such role, scope or member, more than one or none of them, a past `expires_at`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_key(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<KeyFields>,
) -> Result<HttpResponse, ApiError> {
    let (caller, principal) = manager(&state, &req).await?;
    let now = state.auth.now_ms();
    let mut spec = body.validate(&principal, now).map_err(ApiError::Invalid)?;
    if let Some(id) = spec.member_id {
        let member = members::get(state.deps.db.primary(), &principal.tenant_id, id)
            .await?
            .ok_or_else(|| {
                let mut errors = FieldErrors::default();
                errors.push("member", "no such member of yours");
                ApiError::Invalid(errors.into_problem_titled("Invalid key"))
            })?;
        spec.grant = Grant::Role(member.role);
    }
    for_member(&principal, spec.member_id)?;
    within(&principal, &spec.grant)?;
    let key = auth::mint(spec, now);
    let entry = caller.audit(
        AuditAction::KeyCreated,
        audit::target("key", key.record.id),
        audit::changes(None, Some(audit::key_state(&key.record))),
    );
    let mut tx = state.deps.db.begin_write().await?;
    keys::insert(&mut *tx, &key.record).await?;
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::Created().json(KeyView::of(&key.record, Some(key.secret), now)))
}

#[utoipa::path(
    get,
    path = "/api/v1/keys",
    tag = "keys",
    responses(
        (status = 200, description = "The tenant's keys, never the keys themselves", body = KeyList),
        super::openapi::CallerProblems,
    ),
    security(("api_key" = []))
)]
pub async fn list_keys(
    req: HttpRequest,
    state: web::Data<CreateState>,
) -> Result<HttpResponse, ApiError> {
    let (_, principal) = manager(&state, &req).await?;
    let now = state.auth.now_ms();
    let records = keys::list(state.deps.db.primary(), Some(principal.tenant_id.as_str())).await?;
    let items = records.iter().map(|r| KeyView::of(r, None, now)).collect();
    Ok(HttpResponse::Ok().json(KeyList { items }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked: the key answers 401 from now on (revoking a revoked key changes nothing)"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such key of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_key(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, principal) = manager(&state, &req).await?;
    let record = owned_key(&state, &principal, &id).await?;
    within(&principal, &record.grant)?;
    let now = state.auth.now_ms();
    let mut tx = state.deps.db.begin_write().await?;
    let revoked = keys::revoke(&mut *tx, record.id, now).await?;
    if revoked {
        let after = KeyRecord {
            revoked_at: Some(now),
            ..record.clone()
        };
        let entry = caller.audit(
            AuditAction::KeyRevoked,
            audit::target("key", record.id),
            audit::changes(
                Some(audit::key_state(&record)),
                Some(audit::key_state(&after)),
            ),
        );
        common::db::audit::insert(&mut *tx, &entry).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    held::announce(&state.deps.bus, Event::AccessChanged, revoked).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/api/v1/keys/{id}/rotate",
    tag = "keys",
    params(("id" = String, Path, description = "The key to replace"), Rotation),
    responses(
        (status = 201, description = "The new key (`key` shown this once); the old one works until the grace period ends", body = KeyView),
        super::openapi::CallerProblems,
        super::openapi::QueryProblems,
        (status = 404, description = "No such key of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked, expired or rotated already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`grace_seconds` beyond 30 days", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn rotate_key(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
    rotation: web::Query<Rotation>,
) -> Result<HttpResponse, ApiError> {
    let (caller, principal) = manager(&state, &req).await?;
    let grace = rotation
        .grace_seconds
        .map_or(DEFAULT_ROTATION_GRACE, std::time::Duration::from_secs);
    if grace > MAX_ROTATION_GRACE {
        return Err(ApiError::Invalid(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-grace-seconds",
                "Invalid rotation",
            )
            .detail(format!(
                "grace_seconds: at most {}",
                MAX_ROTATION_GRACE.as_secs()
            ))
            .field("grace_seconds", "at most 30 days"),
        ));
    }
    let record = owned_key(&state, &principal, &id).await?;
    for_member(&principal, record.member_id)?;
    within(&principal, &record.grant)?;
    let now = state.auth.now_ms();
    let audit_rotation = |old: &KeyRecord, new: &KeyRecord| {
        let mut after = audit::key_state(old);
        after["successor"] = new.id.to_string().into();
        caller.audit(
            AuditAction::KeyRotated,
            audit::target("key", old.id),
            audit::changes(Some(audit::key_state(&record)), Some(after)),
        )
    };
    let key = auth::rotate(&state.deps.db, &record, grace, now, audit_rotation)
        .await?
        .ok_or(ApiError::KeyInactive)?;
    held::announce(&state.deps.bus, Event::AccessChanged, true).await;
    Ok(HttpResponse::Created().json(KeyView::of(&key.record, Some(key.secret), now)))
}
