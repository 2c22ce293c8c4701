//! `/api/v1/domains`: the branded domains a tenant serves its links on. A domain is
//! held by one tenant; the default domain (`http.public_base_url`) is everyone's and
//! is not a resource.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::db::domains::{self, DomainRecord};
use common::events::Event;
use common::held;
use common::links::DomainName;
use common::problem::Problem;
use common::time::{from_ms, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::{Caller, CreateState};

/// `POST /api/v1/domains`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRequest {
    /// A host name of at least two labels; Unicode is accepted and kept as punycode.
    #[schema(example = "go.acme.com", max_length = 253)]
    pub name: String,
}

/// A domain as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainView {
    /// Lowercase, IDN as punycode.
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<&DomainRecord> for DomainView {
    fn from(record: &DomainRecord) -> DomainView {
        DomainView {
            name: record.name.to_string(),
            created_at: from_ms(record.created_at),
        }
    }
}

/// `GET /api/v1/domains`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    pub items: Vec<DomainView>,
}

/// The name a caller asked for, or a 422 naming what is wrong with it.
fn requested_name(state: &CreateState, text: &str) -> Result<DomainName, ApiError> {
    let invalid = |why: String| {
        ApiError::Invalid(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-domain",
                "Invalid domain",
            )
            .detail(why.clone())
            .field("name", why),
        )
    };
    let name = DomainName::parse(text).map_err(|e| invalid(e.to_string()))?;
    if state
        .url_policy
        .own_hosts
        .iter()
        .any(|own| own == name.as_str())
    {
        return Err(invalid(format!(
            "`{name}` is the shortener's own domain, which serves every tenant already"
        )));
    }
    Ok(name)
}

/// The caller, and the domain its path names: text that is no domain name names a
/// domain nobody holds.
async fn caller_and_name(
    req: &HttpRequest,
    state: &CreateState,
    text: &str,
) -> Result<(Caller, DomainName), ApiError> {
    let caller = state.caller(req, false).await?;
    let name = DomainName::parse(text).map_err(|_| ApiError::DomainNotFound)?;
    Ok((caller, name))
}

#[utoipa::path(
    post,
    path = "/api/v1/domains",
    tag = "domains",
    request_body = DomainRequest,
    responses(
        (status = 201, description = "Added", body = DomainView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 409, description = "Held by a tenant already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a domain name, or the default domain", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_domain(
    req: HttpRequest,
    state: web::Data<CreateState>,
    body: web::Json<DomainRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, false).await?;
    let record = DomainRecord {
        name: requested_name(&state, &body.name)?,
        tenant_id: caller.tenant_id().clone(),
        created_at: now_ms(),
    };
    let pool = state.deps.db.primary();
    if !domains::insert(pool, &record).await? {
        let holder = domains::get(pool, &record.name).await?;
        return Err(ApiError::DomainTaken {
            name: record.name.to_string(),
            yours: holder.is_some_and(|h| &h.tenant_id == caller.tenant_id()),
        });
    }
    // Lookup instances serve the domain once they hear of it (or at their next
    // periodic reload, when the announcement is lost).
    held::announce(&state.deps.bus, Event::DomainsChanged, true).await;
    Ok(HttpResponse::Created()
        .insert_header((LOCATION, format!("/api/v1/domains/{}", record.name)))
        .json(DomainView::from(&record)))
}

#[utoipa::path(
    get,
    path = "/api/v1/domains",
    tag = "domains",
    responses(
        (status = 200, description = "The caller's domains, by name", body = DomainList),
        super::openapi::CallerProblems,
    ),
    security(("api_key" = []))
)]
pub async fn list_domains(
    req: HttpRequest,
    state: web::Data<CreateState>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, false).await?;
    let records = domains::list_for_tenant(state.deps.db.primary(), caller.tenant_id()).await?;
    Ok(HttpResponse::Ok().json(DomainList {
        items: records.iter().map(DomainView::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/domains/{name}",
    tag = "domains",
    params(("name" = String, Path, description = "The domain's name")),
    responses(
        (status = 200, description = "The domain", body = DomainView),
        super::openapi::CallerProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_domain(
    req: HttpRequest,
    state: web::Data<CreateState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, name) = caller_and_name(&req, &state, &name).await?;
    match domains::get(state.deps.db.primary(), &name).await? {
        // Another tenant's domain is "not found": who holds what is nobody else's
        // business (a create still says "taken", or it could not be refused).
        Some(record) if &record.tenant_id == caller.tenant_id() => {
            Ok(HttpResponse::Ok().json(DomainView::from(&record)))
        }
        _ => Err(ApiError::DomainNotFound),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/domains/{name}",
    tag = "domains",
    params(("name" = String, Path, description = "The domain's name")),
    responses(
        (status = 204, description = "Removed"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_domain(
    req: HttpRequest,
    state: web::Data<CreateState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (caller, name) = caller_and_name(&req, &state, &name).await?;
    if domains::delete(state.deps.db.primary(), caller.tenant_id(), &name).await? {
        held::announce(&state.deps.bus, Event::DomainsChanged, true).await;
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::DomainNotFound)
    }
}
