//! `PATCH /api/v1/links/{code}`: change a link's destination, expiry, limits or state.
//! The change and its audit row commit together; a PATCH that changes nothing writes
//! nothing.

use actix_web::{HttpRequest, HttpResponse, web};
use common::audit::{self, AuditAction};
use common::db::{StoreError, links};
use common::domain::access::Action;
use common::problem::Problem;
use common::time::now_ms;

use crate::error::ApiError;
use crate::model::{LinkView, UpdateLinkRequest};
use crate::state::CreateState;

/// Optimistic updates retried this many times before answering 409.
const ATTEMPTS: usize = 3;

#[utoipa::path(
    patch,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "Generated code or alias"), super::OnDomain),
    request_body = UpdateLinkRequest,
    responses(
        (status = 200, description = "The updated link", body = LinkView),
        super::openapi::CallerProblems,
        super::openapi::BodyProblems,
        (status = 404, description = "No such link of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Edited concurrently", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid change", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn update_link(
    req: HttpRequest,
    state: web::Data<CreateState>,
    code: web::Path<String>,
    on: web::Query<super::OnDomain>,
    body: web::Json<UpdateLinkRequest>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::EditLink).await?;
    // A new password is hashed once, however many times the edit is retried.
    let mut new_hash = None;
    for _ in 0..ATTEMPTS {
        let (current, site) = super::owned_link(&state, &caller, &on, &code).await?;
        let mut next = body
            .apply(&current, &state.url_policy, now_ms())
            .map_err(|e| ApiError::Invalid(e.into_problem()))?;
        if let Some(Some(password)) = &body.password {
            if new_hash.is_none() {
                new_hash = Some(super::hash_password(password.clone()).await?);
            }
            next.routing.password_hash.clone_from(&new_hash);
        }
        let (before, after) = (audit::link_state(&current), audit::link_state(&next));
        if before == after {
            return Ok(HttpResponse::Ok().json(super::view(&state, &current, site.as_ref())));
        }
        let entry = caller.audit(
            AuditAction::LinkUpdated,
            audit::link_target(&current),
            audit::changes(Some(before), Some(after)),
        );
        let mut tx = state.deps.db.begin_write().await?;
        if links::update(&mut *tx, &next, current.updated_at).await? {
            common::db::audit::insert(&mut *tx, &entry).await?;
            tx.commit().await.map_err(StoreError::from)?;
            state.relay.wake();
            return Ok(HttpResponse::Ok().json(super::view(&state, &next, site.as_ref())));
        }
    }
    Err(ApiError::Conflict)
}
