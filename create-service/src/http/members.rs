//! `/api/v1/members`: the people of a tenant and their roles. Owners add, change and
//! remove members; whoever manages keys sees them (keys are made for members). A
//! member's keys act with the member's role of the moment, and go with the member.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::audit::{self, AuditAction};
use common::db::StoreError;
use common::db::keys;
use common::db::members::{self, MemberRecord};
use common::domain::access::{self as access, Action, Grant, Role};
use common::events::Event;
use common::held;
use common::problem::Problem;
use common::time::{from_ms, now_ms};
use serde::de::MapAccess;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::model::{FieldErrors, Fields, object_only};
use crate::state::{Caller, CreateState};

const MAX_EMAIL: usize = 254;
const MAX_NAME_CHARS: usize = 200;
/// Optimistic updates retried this many times before answering 409.
const ATTEMPTS: usize = 3;

/// A member's fields: in `POST` (`email` and `role` required) and `PATCH` (absent
/// fields stay; the address cannot change) alike.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct MemberFields {
    /// The member's address, one per member in a tenant (kept lowercase).
    #[serde(default)]
    #[schema(example = "ada@acme.com", max_length = 254)]
    pub email: Option<String>,
    #[serde(default)]
    #[schema(example = "Ada Lovelace", max_length = 200)]
    pub name: Option<String>,
    /// `owner`, `admin`, `editor` or `viewer`.
    #[serde(default)]
    #[schema(example = "editor")]
    pub role: Option<String>,
}

// `MemberFields::deserialize` here is the derive's inherent function (`remote = "Self"`).
impl<'de> Fields<'de> for MemberFields {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        MemberFields::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for MemberFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

/// An address of the usual shape: one `@`, something on each side, a dot in the
/// domain, no spaces or controls. Whether it receives mail is not this service's
/// business.
fn check_email(text: &str, errors: &mut FieldErrors) -> Option<String> {
    let email = text.trim().to_lowercase();
    let well_formed = email.len() <= MAX_EMAIL
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if well_formed {
        Some(email)
    } else {
        errors.push("email", "must be an address like `ada@acme.com`");
        None
    }
}

fn check_role(text: &str, errors: &mut FieldErrors) -> Option<Role> {
    Role::parse_or_explain(text)
        .map_err(|message| errors.push("role", message))
        .ok()
}

fn check_name(text: &str, errors: &mut FieldErrors) -> String {
    let name = text.trim().to_string();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        errors.push(
            "name",
            format!("at most {MAX_NAME_CHARS} characters, no control characters"),
        );
    }
    name
}

/// A member as the API shows them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// The member's id, as a string.
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&MemberRecord> for MemberView {
    fn from(m: &MemberRecord) -> MemberView {
        MemberView {
            id: m.id.to_string(),
            email: m.email.clone(),
            name: m.name.clone(),
            role: m.role.to_string(),
            created_at: from_ms(m.created_at),
            updated_at: from_ms(m.updated_at),
        }
    }
}

/// `GET /api/v1/members`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    /// Every member of the tenant, by address.
    pub items: Vec<MemberView>,
}

fn last_owner() -> ApiError {
    ApiError::Invalid(
        Problem::new(
            StatusCode::CONFLICT,
            "last-owner",
            "A tenant keeps an owner",
        )
        .detail("this is the tenant's last owner: make another member owner first"),
    )
}

/// Makes changes to one tenant's owners take turns, so two owners demoting each
/// other at once cannot both pass the last-owner check. SQLite's write transactions
/// take turns already (`BEGIN IMMEDIATE`).
async fn owners_in_turn(
    state: &CreateState,
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
) -> Result<(), StoreError> {
    if state.deps.db.engine() == common::db::Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('members:' || $1))")
            .bind(caller.tenant_id().as_str())
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The audit rows of `keys`, revoked.
fn revoked_rows(caller: &Caller, keys: &[i64]) -> Vec<common::domain::audit::Entry> {
    keys.iter()
        .map(|key| {
            caller.audit(
                AuditAction::KeyRevoked,
                audit::target("key", key),
                serde_json::json!({"revoked": {"from": false, "to": true}}),
            )
        })
        .collect()
}

/// Member `id` of the caller's tenant: text that is no id names no member.
pub(crate) async fn owned_member(
    state: &CreateState,
    caller: &Caller,
    id: &str,
) -> Result<Option<MemberRecord>, StoreError> {
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    members::get(state.deps.db.primary(), caller.tenant_id(), id).await
}

#[utoipa::path(
    post,
    path = "/api/v1/members",
    tag = "members",
    request_body = MemberFields,
    responses(
        (status = 201, description = "Added", body = MemberView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 409, description = "The tenant has a member of that address", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No address or a bad one, no role or an unknown one, a bad name", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn add_member(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<MemberFields>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageMembers).await?;
    let mut errors = FieldErrors::default();
    let email = match &body.email {
        Some(text) => check_email(text, &mut errors),
        None => {
            errors.push("email", "required");
            None
        }
    };
    let role = match &body.role {
        Some(text) => check_role(text, &mut errors),
        None => {
            errors.push("role", "required");
            None
        }
    };
    let name = check_name(body.name.as_deref().unwrap_or_default(), &mut errors);
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        return Err(ApiError::Invalid(
            errors.into_problem_titled("Invalid member"),
        ));
    };
    let now = now_ms();
    let id = state.next_id().await?.as_u64();
    let member = MemberRecord {
        id: i64::try_from(id).map_err(|_| ApiError::IdsPaused("id overflow".into()))?,
        tenant_id: caller.tenant_id().clone(),
        email,
        name,
        role,
        created_at: now,
        updated_at: now,
    };
    let entry = caller.audit(
        AuditAction::MemberAdded,
        audit::target("member", member.id),
        audit::changes(None, Some(audit::member_state(&member))),
    );
    let mut tx = state.deps.db.begin_write().await?;
    if !members::insert(&mut *tx, &member).await? {
        return Err(ApiError::Invalid(
            Problem::new(
                StatusCode::CONFLICT,
                "member-exists",
                "Member already added",
            )
            .detail(format!(
                "the tenant has a member `{}` already",
                member.email
            ))
            .field("email", "already a member"),
        ));
    }
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(HttpResponse::Created().json(MemberView::from(&member)))
}

#[utoipa::path(
    get,
    path = "/api/v1/members",
    tag = "members",
    responses(
        (status = 200, description = "The tenant's members", body = MemberList),
        super::openapi::CallerProblems,
    ),
    security(("api_key" = []))
)]
pub async fn list_members(
    req: HttpRequest,
    state: web::Data<CreateState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ReadMembers).await?;
    let records = members::list(state.deps.db.primary(), caller.tenant_id()).await?;
    let items = records.iter().map(MemberView::from).collect();
    Ok(HttpResponse::Ok().json(MemberList { items }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/members/{id}",
    tag = "members",
    params(("id" = String, Path, description = "The member's id")),
    request_body = MemberFields,
    responses(
        (status = 200, description = "The member as they now are; their keys act with the new role at once", body = MemberView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 404, description = "No such member of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot stop being one; or edited concurrently", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown role, a bad name, a new address", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_member(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
    body: web::Json<MemberFields>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageMembers).await?;
    for _ in 0..ATTEMPTS {
        let current = owned_member(&state, &caller, &id)
            .await?
            .ok_or(ApiError::MemberNotFound)?;
        let mut errors = FieldErrors::default();
        if body
            .email
            .as_deref()
            .is_some_and(|e| e.trim().to_lowercase() != current.email)
        {
            errors.push("email", "a member keeps their address: add the new one");
        }
        let role = body
            .role
            .as_deref()
            .and_then(|r| check_role(r, &mut errors));
        let name = body.name.as_deref().map(|n| check_name(n, &mut errors));
        if !errors.is_empty() {
            return Err(ApiError::Invalid(
                errors.into_problem_titled("Invalid member"),
            ));
        }
        let next = MemberRecord {
            role: role.unwrap_or(current.role),
            name: name.unwrap_or_else(|| current.name.clone()),
            updated_at: now_ms().max(current.updated_at + 1),
            ..current.clone()
        };
        let (before, after) = (audit::member_state(&current), audit::member_state(&next));
        if before == after {
            return Ok(HttpResponse::Ok().json(MemberView::from(&current)));
        }
        let entry = caller.audit(
            AuditAction::MemberUpdated,
            audit::target("member", current.id),
            audit::changes(Some(before), Some(after)),
        );
        let mut tx = state.deps.db.begin_write().await?;
        owners_in_turn(&state, &mut tx, &caller).await?;
        if current.role == Role::Owner
            && next.role != Role::Owner
            && members::owners(&mut *tx, caller.tenant_id()).await? <= 1
        {
            return Err(last_owner());
        }
        if members::update(&mut *tx, &next, current.updated_at).await? {
            // Keys the member made that their new role does not cover go: nobody
            // keeps through a key they made what they lost.
            let now = now_ms();
            let mut revoked = Vec::new();
            for key in keys::made_by_member(&mut *tx, caller.tenant_id(), current.id).await? {
                if !access::covers(&Grant::Role(next.role), &key.grant)
                    && keys::revoke(&mut *tx, key.id, now).await?
                {
                    revoked.push(key.id);
                }
            }
            let mut entries = vec![entry];
            entries.extend(revoked_rows(&caller, &revoked));
            common::db::audit::insert_many(&mut tx, &entries).await?;
            tx.commit().await.map_err(StoreError::from)?;
            // Every instance forgets the member's keys, which carry the old role.
            held::announce(&state.deps.bus, Event::AccessChanged, true).await;
            return Ok(HttpResponse::Ok().json(MemberView::from(&next)));
        }
    }
    Err(ApiError::Conflict)
}

#[utoipa::path(
    delete,
    path = "/api/v1/members/{id}",
    tag = "members",
    params(("id" = String, Path, description = "The member's id")),
    responses(
        (status = 204, description = "Removed, and every key of theirs revoked"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such member of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be removed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<CreateState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageMembers).await?;
    let Ok(id) = id.parse::<i64>() else {
        return Err(ApiError::MemberNotFound);
    };
    let now = now_ms();
    let mut tx = state.deps.db.begin_write().await?;
    owners_in_turn(&state, &mut tx, &caller).await?;
    // Read in the transaction: a promotion meanwhile counts.
    let member = members::get(&mut *tx, caller.tenant_id(), id)
        .await?
        .ok_or(ApiError::MemberNotFound)?;
    if member.role == Role::Owner && members::owners(&mut *tx, caller.tenant_id()).await? <= 1 {
        return Err(last_owner());
    }
    if !members::delete(&mut *tx, caller.tenant_id(), member.id).await? {
        return Err(ApiError::MemberNotFound);
    }
    // The member's row, and one for each key that went with them: theirs, and
    // those their keys made.
    let revoked = keys::revoke_member_keys(&mut *tx, caller.tenant_id(), member.id, now).await?;
    let mut entries = vec![caller.audit(
        AuditAction::MemberRemoved,
        audit::target("member", member.id),
        audit::changes(Some(audit::member_state(&member)), None),
    )];
    entries.extend(revoked_rows(&caller, &revoked));
    common::db::audit::insert_many(&mut tx, &entries).await?;
    tx.commit().await.map_err(StoreError::from)?;
    held::announce(&state.deps.bus, Event::AccessChanged, true).await;
    Ok(HttpResponse::NoContent().finish())
}
