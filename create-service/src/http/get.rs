//! `GET /api/v1/links/{code}`: the owner's view of one link.

use actix_web::{HttpRequest, HttpResponse, web};
use common::domain::access::Action;
use common::problem::Problem;

use crate::error::ApiError;
use crate::model::LinkView;
use crate::state::CreateState;

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "Generated code or alias"), super::OnDomain),
    responses(
        (status = 200, description = "The link", body = LinkView),
        super::openapi::CallerProblems,
        super::openapi::QueryProblems,
        (status = 404, description = "No such link of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_link(
    req: HttpRequest,
    state: web::Data<CreateState>,
    code: web::Path<String>,
    on: web::Query<super::OnDomain>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::ReadLinks).await?;
    let (record, site) = super::owned_link(&state, &caller, &on, &code).await?;
    Ok(HttpResponse::Ok().json(super::view(&state, &record, site.as_ref())))
}
