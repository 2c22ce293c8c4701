//! The link API, one endpoint per file.

pub mod bulk;
pub mod create;
pub mod delete;
pub mod domains;
pub mod get;
pub mod list;
pub mod openapi;
pub mod qr;
pub mod update;

use common::db::links::{LinkCode, LinkRecord, TenantId};
use common::time::now_ms;

use crate::error::ApiError;
use crate::model::LinkView;
use crate::state::{Caller, CreateState};

/// Builds the record of a validated new link for `caller`.
pub(crate) async fn new_record(
    state: &CreateState,
    caller: &Caller,
    link: crate::model::ValidLink,
) -> Result<LinkRecord, ApiError> {
    record_for(state, caller.tenant_id(), link, None).await
}

/// Builds the record of a validated new link of `tenant_id`: a fresh Snowflake id
/// under this instance's lease, and the alias or the id's code as its code.
/// `created_at` is now unless given: `shortener links import` keeps the time a link
/// was created in the shortener it comes from.
pub async fn record_for(
    state: &CreateState,
    tenant_id: &TenantId,
    link: crate::model::ValidLink,
    created_at: Option<i64>,
) -> Result<LinkRecord, ApiError> {
    let id = state.next_id().await?;
    let code = match &link.alias {
        Some(alias) => LinkCode::from(alias.clone()),
        None => LinkCode::from(state.codec.encode(id)),
    };
    let now = now_ms();
    Ok(LinkRecord {
        code,
        id: i64::try_from(id.as_u64()).map_err(|_| ApiError::IdsPaused("id overflow".into()))?,
        tenant_id: tenant_id.clone(),
        url: link.url.into_string(),
        redirect_status: link.redirect_status,
        tags: link.tags,
        max_visits: link.max_visits,
        expires_at: link.expires_at,
        created_at: created_at.unwrap_or(now),
        updated_at: now,
        disabled_at: None,
        deleted_at: None,
    })
}

pub(crate) fn view(state: &CreateState, record: &LinkRecord) -> LinkView {
    LinkView::from_record(record, state.short_url(record.code.as_str()), now_ms())
}

/// The caller's live link `code`. Another tenant's link is "not found", never
/// "forbidden": its existence is nobody else's business.
pub(crate) async fn owned_link(
    state: &CreateState,
    caller: &Caller,
    code: &str,
) -> Result<LinkRecord, ApiError> {
    // Text no link could have reaches no database.
    let code = LinkCode::parse(code).ok_or(ApiError::NotFound)?;
    // Management reads go to the primary: an owner who just created or edited a
    // link must see it as it is now.
    let record = common::db::links::get(state.deps.db.primary(), code.as_str()).await?;
    match record {
        Some(r) if &r.tenant_id == caller.tenant_id() && r.deleted_at.is_none() => Ok(r),
        _ => Err(ApiError::NotFound),
    }
}
