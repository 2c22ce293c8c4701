//! `GET /api/v1/links`: the caller's links, newest first, with cursor pagination.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use common::db::links::{self, DomainFilter};
use common::domain::access::Action;
use common::links::DomainName;
use common::problem::Problem;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::model::LinkPage;
use crate::state::CreateState;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–1000 (default 50).
    #[param(minimum = 1, maximum = 1000, default = 50)]
    pub limit: Option<u32>,
    /// Only the links on this domain (the default domain's host for links without
    /// a branded one); absent: every domain.
    #[param(example = "go.acme.com")]
    pub domain: Option<String>,
}

/// 400 for query parameters that parse but make no sense.
pub(crate) fn bad_query(detail: &str) -> ApiError {
    ApiError::Invalid(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameters",
        )
        .detail(detail),
    )
}

/// A page's size (`limit`, 1–1000, else `default`) and where it starts (`cursor`:
/// the id of the last row of the previous page, as this API handed it out).
pub(crate) fn page_bounds(
    limit: Option<u32>,
    default: u32,
    cursor: Option<&str>,
) -> Result<(u32, Option<i64>), ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_query("limit must be between 1 and 1000"));
    }
    let before = match cursor {
        Some(cursor) => Some(
            cursor
                .parse::<i64>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad_query("cursor is not one this API handed out"))?,
        ),
        None => None,
    };
    Ok((limit, before))
}

#[utoipa::path(
    get,
    path = "/api/v1/links",
    tag = "links",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of links", body = LinkPage),
        (status = 400, description = "Bad cursor, limit or domain", body = Problem, content_type = "application/problem+json"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such domain of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn list_links(
    req: HttpRequest,
    state: web::Data<CreateState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ReadLinks).await?;
    let (limit, before) = page_bounds(query.limit, DEFAULT_PAGE, query.cursor.as_deref())?;
    let filter = match &query.domain {
        None => DomainFilter::Every,
        Some(text) => {
            let name = DomainName::parse(text).map_err(|e| bad_query(&format!("domain: {e}")))?;
            let site = super::caller_domain(&state, caller.tenant_id(), Some(&name)).await?;
            DomainFilter::Only(site.map(|s| s.name))
        }
    };
    // Listing reads the primary: an owner expects to see the link just created.
    let records = links::list_for_tenant(
        state.deps.db.primary(),
        caller.tenant_id(),
        &filter,
        before,
        limit,
    )
    .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    let items = super::views(&state, caller.tenant_id(), &records).await?;
    Ok(HttpResponse::Ok().json(LinkPage { items, next_cursor }))
}
