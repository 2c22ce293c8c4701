//! `DELETE /api/v1/links/{code}`: the code answers 410 from now on and is never reused.

use actix_web::{HttpRequest, HttpResponse, web};
use common::audit::{self, AuditAction};
use common::db::{StoreError, links};
use common::domain::access::Action;
use common::problem::Problem;

use crate::error::ApiError;
use crate::state::CreateState;

#[utoipa::path(
    delete,
    path = "/api/v1/links/{code}",
    tag = "links",
    params(("code" = String, Path, description = "Generated code or alias"), super::OnDomain),
    responses(
        (status = 204, description = "Deleted"),
        super::openapi::CallerProblems,
        super::openapi::QueryProblems,
        (status = 404, description = "No such link of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn delete_link(
    req: HttpRequest,
    state: web::Data<CreateState>,
    code: web::Path<String>,
    on: web::Query<super::OnDomain>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.caller(&req, Action::DeleteLink).await?;
    let (record, _) = super::owned_link(&state, &caller, &on, &code).await?;
    let mut tx = state.deps.db.begin_write().await?;
    let Some(deleted) = links::soft_delete(&mut *tx, caller.tenant_id(), &record.key()).await?
    else {
        return Err(ApiError::NotFound);
    };
    let entry = caller.audit(
        AuditAction::LinkDeleted,
        audit::link_target(&deleted),
        audit::changes(
            Some(audit::link_state(&record)),
            Some(audit::link_state(&deleted)),
        ),
    );
    common::db::audit::insert(&mut *tx, &entry).await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.relay.wake();
    Ok(HttpResponse::NoContent().finish())
}
