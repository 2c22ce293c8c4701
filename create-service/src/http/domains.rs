//! `/api/v1/domains`: the branded domains a tenant serves its links on, and their
//! settings. A domain is
//! held by one tenant; the default domain (`http.public_base_url`) is everyone's and
//! is not a resource.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use common::audit::{self, AuditAction};
use common::db::domains::{self, DomainRecord};
use common::db::{StoreError, links};
use common::domain::access::Action;
use common::events::Event;
use common::held;
use common::link::RedirectStatus;
use common::links::{DomainName, LongUrl, UrlPolicy};
use common::problem::Problem;
use common::site::{Scheme, SiteSettings};
use common::time::{from_ms, now_ms};
use serde::de::MapAccess;
use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::model::{FieldErrors, Fields, check_status, object_only, present};
use crate::state::{Caller, CreateState};

/// A domain's name and what it does besides serving links: in `POST` (`name` is
/// required; absent settings take their defaults) and `PATCH` (absent fields stay;
/// `null` clears a URL; the name cannot change) alike.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct DomainFields {
    /// A host name of at least two labels; Unicode is accepted and kept as punycode.
    #[serde(default)]
    #[schema(example = "go.acme.com", max_length = 253)]
    pub name: Option<String>,
    /// Where the domain's root (`/`) redirects; `null`: the 404 problem.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "https://acme.com/")]
    pub root_url: Option<Option<String>>,
    /// Where a code nobody holds on the domain redirects; `null`: the 404 problem.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub not_found_url: Option<Option<String>>,
    /// Where an expired, disabled or deleted link redirects; `null`: the 410 problem.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub gone_url: Option<Option<String>>,
    /// The scheme of the domain's short URLs: `https` (default) or `http`.
    #[serde(default)]
    #[schema(value_type = Option<Scheme>)]
    pub scheme: Option<String>,
    /// Send plain-http requests to https and answer with HSTS (needs `https`).
    #[serde(default)]
    pub https_only: Option<bool>,
    /// The status of new links on the domain that name none: 301, 302 (default),
    /// 307 or 308.
    #[serde(default)]
    #[schema(minimum = 301, maximum = 308)]
    pub redirect_status: Option<u16>,
    /// Whether new links on the domain that do not say forward the visitor's query
    /// string to their target (default `true`).
    #[serde(default)]
    pub forward_query: Option<bool>,
}

// `DomainFields::deserialize` here is the derive's inherent function (`remote = "Self"`).
impl<'de> Fields<'de> for DomainFields {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        DomainFields::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for DomainFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

impl DomainFields {
    /// `current` with these fields applied; every bad field is named.
    fn apply(&self, current: &SiteSettings, policy: &UrlPolicy) -> Result<SiteSettings, Problem> {
        let mut errors = FieldErrors::default();
        let mut next = current.clone();
        let url = |field: &'static str,
                   value: &Option<Option<String>>,
                   slot: &mut Option<String>,
                   errors: &mut FieldErrors| {
            match value {
                Some(Some(text)) => match LongUrl::parse(text, policy) {
                    Ok(url) => *slot = Some(url.into_string()),
                    Err(e) => errors.push(field, e.to_string()),
                },
                Some(None) => *slot = None,
                None => {}
            }
        };
        url("root_url", &self.root_url, &mut next.root_url, &mut errors);
        url(
            "not_found_url",
            &self.not_found_url,
            &mut next.not_found_url,
            &mut errors,
        );
        url("gone_url", &self.gone_url, &mut next.gone_url, &mut errors);
        if let Some(text) = &self.scheme {
            match Scheme::parse(text) {
                Some(scheme) => next.scheme = scheme,
                None => errors.push("scheme", "must be `https` or `http`"),
            }
        }
        if let Some(https_only) = self.https_only {
            next.https_only = https_only;
        }
        if next.https_only && next.scheme != Scheme::Https {
            errors.push("https_only", "needs the `https` scheme");
        }
        if let Some(status) = self.redirect_status
            && let Some(status) = check_status(status, &mut errors)
        {
            next.redirect_status = status;
        }
        if let Some(forward) = self.forward_query {
            next.forward_query = forward;
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors.into_problem_titled("Invalid domain"))
        }
    }
}

/// A domain as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainView {
    /// Lowercase, IDN as punycode.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub root_url: Option<String>,
    pub not_found_url: Option<String>,
    pub gone_url: Option<String>,
    pub scheme: Scheme,
    pub https_only: bool,
    #[schema(value_type = u16, minimum = 301, maximum = 308)]
    pub redirect_status: RedirectStatus,
    pub forward_query: bool,
}

impl From<&DomainRecord> for DomainView {
    fn from(record: &DomainRecord) -> DomainView {
        let s = &record.settings;
        DomainView {
            name: record.name.to_string(),
            created_at: from_ms(record.created_at),
            updated_at: from_ms(record.updated_at),
            root_url: s.root_url.clone(),
            not_found_url: s.not_found_url.clone(),
            gone_url: s.gone_url.clone(),
            scheme: s.scheme,
            https_only: s.https_only,
            redirect_status: s.redirect_status,
            forward_query: s.forward_query,
        }
    }
}

/// `GET /api/v1/domains`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    pub items: Vec<DomainView>,
}

/// `DELETE /api/v1/domains/{name}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true`: delete the domain's links with it (they answer 410 from then on).
    /// Without it, a domain that still has links is not deleted (409).
    #[serde(default)]
    pub retire_links: bool,
}

fn invalid_name(why: String) -> ApiError {
    ApiError::Invalid(
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-domain",
            "Invalid domain",
        )
        .detail(why.clone())
        .field("name", why),
    )
}

/// The name a caller asked for, or a 422 naming what is wrong with it.
fn requested_name(state: &CreateState, text: Option<&str>) -> Result<DomainName, ApiError> {
    let text = text.ok_or_else(|| invalid_name("a domain needs a `name`".into()))?;
    let name = DomainName::parse(text).map_err(|e| invalid_name(e.to_string()))?;
    if state.default_domain.is(name.as_str()) {
        return Err(invalid_name(format!(
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
    action: Action,
) -> Result<(Caller, DomainName), ApiError> {
    let caller = state.caller(req, action).await?;
    let name = DomainName::parse(text).map_err(|_| ApiError::DomainNotFound)?;
    Ok((caller, name))
}

#[utoipa::path(
    post,
    path = "/api/v1/domains",
    tag = "domains",
    request_body = DomainFields,
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
    body: web::Json<DomainFields>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ManageDomains).await?;
    let now = now_ms();
    let record = DomainRecord {
        name: requested_name(&state, body.name.as_deref())?,
        tenant_id: caller.tenant_id().clone(),
        created_at: now,
        updated_at: now,
        settings: body
            .apply(&SiteSettings::default(), &state.url_policy)
            .map_err(ApiError::Invalid)?,
        retired_at: None,
    };
    let mut tx = state.deps.db.begin_write().await?;
    if !domains::insert(&mut tx, &record).await? {
        drop(tx);
        let holder = domains::get(state.deps.db.primary(), &record.name).await?;
        return Err(ApiError::DomainTaken {
            name: record.name.to_string(),
            yours: holder.is_some_and(|h| &h.tenant_id == caller.tenant_id()),
        });
    }
    let entry = caller.audit(
        AuditAction::DomainAdded,
        audit::target("domain", &record.name),
        audit::changes(None, Some(audit::domain_state(&record))),
    );
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
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
    let caller = state.caller(&req, Action::ReadDomains).await?;
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
    let (caller, name) = caller_and_name(&req, &state, &name, Action::ReadDomains).await?;
    let record = owned(&state, &caller, &name).await?;
    Ok(HttpResponse::Ok().json(DomainView::from(&record)))
}

/// The caller's live domain `name`. Another tenant's domain is "not found": who holds
/// what is nobody else's business (a create still says "taken", or it could not be
/// refused).
async fn owned(
    state: &CreateState,
    caller: &Caller,
    name: &DomainName,
) -> Result<DomainRecord, ApiError> {
    match domains::get(state.deps.db.primary(), name).await? {
        Some(record) if &record.tenant_id == caller.tenant_id() && record.retired_at.is_none() => {
            Ok(record)
        }
        _ => Err(ApiError::DomainNotFound),
    }
}

/// Optimistic updates retried this many times before answering 409.
const ATTEMPTS: usize = 3;

#[utoipa::path(
    patch,
    path = "/api/v1/domains/{name}",
    tag = "domains",
    params(("name" = String, Path, description = "The domain's name")),
    request_body = DomainFields,
    responses(
        (status = 200, description = "The domain as it now is", body = DomainView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Edited concurrently", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_domain(
    req: HttpRequest,
    state: web::Data<CreateState>,
    name: web::Path<String>,
    body: web::Json<DomainFields>,
) -> Result<HttpResponse, ApiError> {
    let (caller, name) = caller_and_name(&req, &state, &name, Action::ManageDomains).await?;
    if body
        .name
        .as_deref()
        .is_some_and(|n| DomainName::parse(n).as_ref() != Ok(&name))
    {
        return Err(invalid_name(
            "a domain keeps its name: add the new one and create its links there".into(),
        ));
    }
    for _ in 0..ATTEMPTS {
        let current = owned(&state, &caller, &name).await?;
        let next = DomainRecord {
            settings: body
                .apply(&current.settings, &state.url_policy)
                .map_err(ApiError::Invalid)?,
            // Strictly later, even within one millisecond, so versions differ.
            updated_at: now_ms().max(current.updated_at + 1),
            ..current.clone()
        };
        let (before, after) = (audit::domain_state(&current), audit::domain_state(&next));
        if before == after {
            return Ok(HttpResponse::Ok().json(DomainView::from(&current)));
        }
        let entry = caller.audit(
            AuditAction::DomainUpdated,
            audit::target("domain", &name),
            audit::changes(Some(before), Some(after)),
        );
        let mut tx = state.deps.db.begin_write().await?;
        if domains::update(&mut tx, &next, current.updated_at).await? {
            common::db::audit::insert(&mut *tx, &entry).await?;
            tx.commit().await.map_err(StoreError::from)?;
            held::announce(&state.deps.bus, Event::DomainsChanged, true).await;
            return Ok(HttpResponse::Ok().json(DomainView::from(&next)));
        }
    }
    Err(ApiError::Conflict)
}

#[utoipa::path(
    delete,
    path = "/api/v1/domains/{name}",
    tag = "domains",
    params(("name" = String, Path, description = "The domain's name"), DeleteQuery),
    responses(
        (status = 204, description = "Removed (with its links, when asked)"),
        super::openapi::CallerProblems,
        super::openapi::QueryProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The domain still has links", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_domain(
    req: HttpRequest,
    state: web::Data<CreateState>,
    name: web::Path<String>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    let (caller, name) = caller_and_name(&req, &state, &name, Action::ManageDomains).await?;
    let tenant = caller.tenant_id();
    let current = owned(&state, &caller, &name).await?;
    let removed = caller.audit(
        AuditAction::DomainRemoved,
        audit::target("domain", &name),
        audit::changes(Some(audit::domain_state(&current)), None),
    );
    let mut tx = state.deps.db.begin_write().await?;
    if query.retire_links {
        if !domains::retire(&mut tx, tenant, &name, now_ms()).await? {
            return Err(ApiError::DomainNotFound);
        }
        // The domain's row, and one for each link it took with it.
        let retired = links::delete_on_domain(&mut tx, tenant, &name).await?;
        let mut entries = vec![removed];
        entries.extend(retired.iter().map(|link| {
            let mut before = link.clone();
            before.deleted_at = None;
            caller.audit(
                AuditAction::LinkDeleted,
                audit::link_target(link),
                audit::changes(
                    Some(audit::link_state(&before)),
                    Some(audit::link_state(link)),
                ),
            )
        }));
        common::db::audit::insert_many(&mut tx, &entries).await?;
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(domain = %name, links = retired.len(), "domain retired with its links");
        // Each link's deletion reaches the caches through the outbox.
        state.relay.wake();
    } else {
        if links::any_on_domain(&mut tx, tenant, &name).await? {
            return Err(ApiError::DomainHasLinks(name.to_string()));
        }
        if !domains::delete(&mut tx, tenant, &name).await? {
            return Err(ApiError::DomainNotFound);
        }
        common::db::audit::insert(&mut *tx, &removed).await?;
        tx.commit().await.map_err(StoreError::from)?;
    }
    held::announce(&state.deps.bus, Event::DomainsChanged, true).await;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_bodies_are_objects_only() {
        let fields: DomainFields =
            serde_json::from_str(r#"{"root_url": null, "https_only": true}"#).expect("object");
        assert_eq!(fields.root_url, Some(None));
        assert_eq!(fields.https_only, Some(true));
        for body in ["[null, null]", "[]", r#"["go.acme.com"]"#] {
            let err = serde_json::from_str::<DomainFields>(body).expect_err(body);
            assert!(err.to_string().contains("expected a JSON object"), "{err}");
        }
        let err = serde_json::from_str::<DomainFields>(r#"{"nmae": "go.acme.com"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `nmae`"), "{err}");
    }
}
