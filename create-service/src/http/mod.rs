//! The link API, one endpoint per file.

pub mod audit;
pub mod bulk;
pub mod create;
pub mod delete;
pub mod domains;
pub mod get;
pub mod keys;
pub mod list;
pub mod members;
pub mod openapi;
pub mod qr;
pub mod update;
pub mod webhooks;

use std::collections::HashMap;

use common::db::domains::DomainRecord;
use common::db::links::{LinkCode, LinkRecord, TenantId};
use common::domain::route::Routing;
use common::links::DomainName;
use common::time::now_ms;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::model::{LinkView, Password};
use crate::state::{Caller, CreateState};

/// The domain a link is addressed on, in the query of every call on one link.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OnDomain {
    /// The link's domain; absent: the default domain.
    #[param(example = "go.acme.com")]
    pub domain: Option<String>,
}

/// The caller's branded domain `name` (`None` for the default domain, or when no
/// name is given). A domain the caller does not hold is "not found", as if it did
/// not exist.
pub async fn caller_domain(
    state: &CreateState,
    tenant_id: &TenantId,
    name: Option<&DomainName>,
) -> Result<Option<DomainRecord>, ApiError> {
    let Some(name) = name.filter(|n| !state.default_domain.is(n.as_str())) else {
        return Ok(None);
    };
    match common::db::domains::get(state.deps.db.primary(), name).await? {
        Some(site) if &site.tenant_id == tenant_id && site.retired_at.is_none() => Ok(Some(site)),
        _ => Err(ApiError::DomainNotFound),
    }
}

/// Builds the record of a validated new link for `caller` on `site`.
pub(crate) async fn new_record(
    state: &CreateState,
    caller: &Caller,
    link: crate::model::ValidLink,
    site: Option<&DomainRecord>,
) -> Result<LinkRecord, ApiError> {
    record_for(state, caller.tenant_id(), link, site, None).await
}

/// Builds the record of a validated new link of `tenant_id` on `site` (`None`: the
/// default domain): a fresh Snowflake id under this instance's lease, and the alias
/// or the id's code as its code. The redirect status and query forwarding are the
/// link's own, else the domain's defaults. `created_at` is now unless given: `shortener links import`
/// keeps the time a link was created in the shortener it comes from.
pub async fn record_for(
    state: &CreateState,
    tenant_id: &TenantId,
    link: crate::model::ValidLink,
    site: Option<&DomainRecord>,
    created_at: Option<i64>,
) -> Result<LinkRecord, ApiError> {
    let (redirect_status, forward_query) =
        (link.redirect_status_on(site), link.forward_query_on(site));
    let password_hash = match link.password {
        Some(Password::Plain(password)) => Some(hash_password(password).await?),
        Some(Password::Hashed(hash)) => Some(hash),
        None => None,
    };
    let id = state.next_id().await?;
    let code = match &link.alias {
        Some(alias) => LinkCode::from(alias.clone()),
        None => LinkCode::from(state.codec.encode(id)),
    };
    let now = now_ms();
    Ok(LinkRecord {
        domain: site.map(|s| s.name.clone()),
        code,
        id: i64::try_from(id.as_u64()).map_err(|_| ApiError::IdsPaused("id overflow".into()))?,
        tenant_id: tenant_id.clone(),
        url: link.url.into_string(),
        redirect_status,
        tags: link.tags,
        max_visits: link.max_visits,
        expires_at: link.expires_at,
        created_at: created_at.unwrap_or(now),
        updated_at: now,
        disabled_at: None,
        deleted_at: None,
        routing: Routing {
            forward_query,
            rules: link.rules,
            variants: link.variants,
            password_hash,
        },
    })
}

/// The argon2id hash of a link's new password, worked out on a blocking thread (it
/// costs tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    actix_web::web::block(move || common::passwords::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))?
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
}

/// The owner's view of `record`, which is on `site`.
pub(crate) fn view(
    state: &CreateState,
    record: &LinkRecord,
    site: Option<&DomainRecord>,
) -> LinkView {
    LinkView::on(
        record,
        site,
        state.default_domain.name(),
        &state.base_url,
        now_ms(),
    )
}

/// Views of `records`, each with its domain's short URL (the tenant's domains are
/// read once, and only when some record is on one).
pub(crate) async fn views(
    state: &CreateState,
    tenant_id: &TenantId,
    records: &[LinkRecord],
) -> Result<Vec<LinkView>, ApiError> {
    let sites: HashMap<DomainName, DomainRecord> = if records.iter().any(|r| r.domain.is_some()) {
        common::db::domains::list_for_tenant(state.deps.db.primary(), tenant_id)
            .await?
            .into_iter()
            .map(|site| (site.name.clone(), site))
            .collect()
    } else {
        HashMap::new()
    };
    Ok(records
        .iter()
        .map(|r| view(state, r, r.domain.as_ref().and_then(|d| sites.get(d))))
        .collect())
}

/// The caller's live link `code` on the domain `on` names, with that domain. Another
/// tenant's link, or one on a domain the caller does not hold, is "not found", never
/// "forbidden": its existence is nobody else's business.
pub(crate) async fn owned_link(
    state: &CreateState,
    caller: &Caller,
    on: &OnDomain,
    code: &str,
) -> Result<(LinkRecord, Option<DomainRecord>), ApiError> {
    // Text no link or domain could have reaches no database.
    let code = LinkCode::parse(code).ok_or(ApiError::NotFound)?;
    let name = match &on.domain {
        Some(text) => Some(DomainName::parse(text).map_err(|_| ApiError::NotFound)?),
        None => None,
    };
    let site = match caller_domain(state, caller.tenant_id(), name.as_ref()).await {
        Err(ApiError::DomainNotFound) => return Err(ApiError::NotFound),
        other => other?,
    };
    let key = LinkRecord::key_of(site.as_ref().map(|s| &s.name), &code);
    // Management reads go to the primary: an owner who just created or edited a
    // link must see it as it is now.
    let record = common::db::links::get(state.deps.db.primary(), &key).await?;
    match record {
        Some(r) if &r.tenant_id == caller.tenant_id() && r.deleted_at.is_none() => Ok((r, site)),
        _ => Err(ApiError::NotFound),
    }
}
