//! `POST /api/v1/links`: create one link, idempotently when asked to.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_LOCATION, CONTENT_TYPE, LOCATION};
use actix_web::{HttpRequest, HttpResponse, web};
use common::audit::{self, AuditAction};
use common::db::{StoreError, idempotency, links};
use common::domain::access::Action;
use common::problem::Problem;
use common::time::now_ms;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::metrics::Created;
use common::db::domains::DomainRecord;

use crate::model::{CreateLinkRequest, LinkView, ValidLink};
use crate::state::{Caller, CreateState};

pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header, if present and well formed.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().filter(|k| {
        (1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
    });
    key.map(|k| Some(k.to_string())).ok_or_else(|| {
        ApiError::Invalid(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
            )
            .detail(format!(
                "the key must be 1–{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            )),
        )
    })
}

fn replay(stored: &idempotency::StoredResponse) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED))
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header(("Idempotent-Replayed", "true"))
        .body(stored.body.clone())
}

/// Where the API serves a new link.
fn location(record: &links::LinkRecord) -> String {
    match &record.domain {
        None => format!("/api/v1/links/{}", record.code),
        Some(domain) => format!("/api/v1/links/{}?domain={domain}", record.code),
    }
}

/// Most live links to one URL a `reuse` looks through for one with the same options.
const REUSE_CANDIDATES: u32 = 50;

/// The caller's newest live link to the same URL on the same domain with every
/// option `valid` would give a new one (its defaults filled in as a create would
/// fill them), and the alias if one is asked for; never a protected link, nor one
/// for a request with a password (a password is a link of its own).
pub(crate) async fn reusable(
    state: &CreateState,
    caller: &Caller,
    valid: &ValidLink,
    site: Option<&DomainRecord>,
) -> Result<Option<links::LinkRecord>, ApiError> {
    if valid.password.is_some() {
        return Ok(None);
    }
    let candidates = links::live_to_url(
        state.deps.db.primary(),
        caller.tenant_id(),
        valid.domain.as_ref().filter(|_| site.is_some()),
        valid.url.as_str(),
        REUSE_CANDIDATES,
    )
    .await?;
    let now = now_ms();
    let redirect_status = valid.redirect_status_on(site);
    let forward_query = valid.forward_query_on(site);
    Ok(candidates.into_iter().find(|link| {
        link.state_at(now) == links::LinkState::Active
            && valid
                .alias
                .as_ref()
                .is_none_or(|alias| link.code.as_str() == alias.as_str())
            && link.redirect_status == redirect_status
            && link.tags == valid.tags
            && link.max_visits == valid.max_visits
            && link.expires_at == valid.expires_at
            && link.routing.password_hash.is_none()
            && link.routing.forward_query == forward_query
            && link.routing.rules == valid.rules
            && link.routing.variants == valid.variants
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/links",
    tag = "links",
    request_body = CreateLinkRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key return the first response")),
    responses(
        (status = 201, description = "Created", body = LinkView),
        (status = 200, description = "`reuse`: the caller's live link with the same URL and options", body = LinkView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Alias taken on the domain", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid link", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
pub async fn create_link(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<CreateLinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::CreateLink).await?;
    let idem_key = idempotency_key(&req)?;
    let request = body.into_inner();
    let tenant = caller.tenant_id().to_string();
    let pool = state.deps.db.primary();
    // The request's fingerprint matters only to tell a retry from a different request
    // under the same key.
    let request_hash = idem_key.as_ref().map(|_| {
        hex::encode(Sha256::digest(
            serde_json::to_vec(&request).unwrap_or_default(),
        ))
    });

    if let (Some(key), Some(hash)) = (&idem_key, &request_hash)
        && let Some(stored) = idempotency::get(pool, &tenant, key).await?
    {
        return if &stored.request_hash == hash {
            Ok(replay(&stored))
        } else {
            Err(ApiError::IdempotencyMismatch)
        };
    }

    let valid = request
        .validate(&state.url_policy, now_ms())
        .map_err(|e| ApiError::Invalid(e.into_problem()))?;
    let is_alias = valid.alias.is_some();
    let site = super::caller_domain(&state, caller.tenant_id(), valid.domain.as_ref()).await?;
    if request.reuse == Some(true)
        && let Some(existing) = reusable(&state, &caller, &valid, site.as_ref()).await?
    {
        state.metrics.reused.inc();
        return Ok(HttpResponse::Ok()
            .insert_header((CONTENT_LOCATION, location(&existing)))
            .json(super::view(&state, &existing, site.as_ref())));
    }
    let record = super::new_record(&state, &caller, valid, site.as_ref()).await?;
    let view = super::view(&state, &record, site.as_ref());
    let body = serde_json::to_string(&view)
        .map_err(|_| ApiError::Store(StoreError::Corrupt("view".into())))?;
    let entry = caller.audit(
        AuditAction::LinkCreated,
        audit::link_target(&record),
        audit::changes(None, Some(audit::link_state(&record))),
    );

    match (&idem_key, &request_hash) {
        (Some(key), Some(hash)) => {
            // The link, its audit row and its stored response commit together, or
            // none does.
            let mut tx = state.deps.db.begin_write().await?;
            if !links::insert_one(&mut *tx, &record).await? {
                drop(tx);
                // A concurrent retry of this very request may have taken the alias.
                if let Some(stored) = idempotency::get(pool, &tenant, key).await?
                    && &stored.request_hash == hash
                {
                    return Ok(replay(&stored));
                }
                return Err(ApiError::AliasTaken(record.code.into_string()));
            }
            common::db::audit::insert(&mut *tx, &entry).await?;
            let stored = idempotency::StoredResponse {
                request_hash: hash.clone(),
                status: 201,
                body: body.clone(),
            };
            match idempotency::insert(&mut tx, &tenant, key, &stored, now_ms()).await {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => {
                    // A concurrent twin committed first: drop our link, answer with theirs.
                    drop(tx);
                    let stored = idempotency::get(pool, &tenant, key)
                        .await?
                        .ok_or(ApiError::Conflict)?;
                    return if &stored.request_hash == hash {
                        Ok(replay(&stored))
                    } else {
                        Err(ApiError::IdempotencyMismatch)
                    };
                }
                Err(e) => return Err(e.into()),
            }
            tx.commit().await.map_err(StoreError::from)?;
        }
        _ => {
            let inserted = match &state.group_commit {
                Some(group) => group.insert(record.clone(), entry).await?,
                None => {
                    audit::insert_links(&state.deps.db, std::slice::from_ref(&record), &[entry])
                        .await?
                        .first()
                        .copied()
                        .unwrap_or(false)
                }
            };
            if !inserted {
                return Err(ApiError::AliasTaken(record.code.into_string()));
            }
        }
    }
    state.relay.wake();

    let kind = if is_alias {
        Created::Alias
    } else {
        Created::Generated
    };
    state.metrics.created.get(kind).inc();
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, location(&record)))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body))
}
