//! `GET|HEAD /{code}`: the redirect.
//!
//! - 302 by default, or the link's own 301/302/307/308.
//! - `Location` comes only from the stored URL re-parsed as http(s), never from the
//!   request.
//! - 302/307 carry `Cache-Control: private, max-age=0` so every follow reaches us
//!   (edits apply at once, clicks are counted); 301/308, which the owner chose to be
//!   permanent, may be kept for `lookup.permanent_max_age_secs`.
//! - 404 for codes that do not exist, 410 for expired, disabled or deleted links.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, LOCATION};
use actix_web::{HttpResponse, web};
use common::db::links::LinkState;
use common::links::LongUrl;
use common::problem::Problem;
use common::time::now_ms;

use crate::resolve::{LookupState, Segment};

fn gone(state: LinkState) -> HttpResponse {
    let why = match state {
        LinkState::Expired => "this link has expired",
        LinkState::Disabled => "this link has been disabled by its owner",
        _ => "this link has been deleted",
    };
    Problem::new(StatusCode::GONE, "link-gone", "Link no longer available")
        .detail(why)
        .to_response()
}

fn not_found() -> HttpResponse {
    Problem::not_found()
        .detail("no link has this code")
        .to_response()
}

pub async fn follow(
    state: web::Data<LookupState>,
    code: web::Path<String>,
    settings: web::Data<common::config::LookupSettings>,
) -> HttpResponse {
    let code = code.into_inner();
    if state.classify(&code) == Segment::Impossible {
        return not_found();
    }
    let record = match state.load(&code).await {
        Ok(Some(record)) => record,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "link lookup failed");
            return Problem::unavailable("cannot look links up right now").to_response();
        }
    };
    match record.state_at(now_ms()) {
        LinkState::Active => {}
        other => return gone(other),
    }
    let Ok(target) = LongUrl::from_stored(&record.url) else {
        tracing::error!(code = %record.code, "stored URL failed re-validation; not redirecting");
        return gone(LinkState::Disabled);
    };
    let status = StatusCode::from_u16(record.redirect_status).unwrap_or(StatusCode::FOUND);
    let cache_control = match status {
        StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT => {
            format!("public, max-age={}", settings.permanent_max_age_secs)
        }
        _ => "private, max-age=0".to_string(),
    };
    HttpResponse::build(status)
        .insert_header((LOCATION, target.as_str()))
        .insert_header((CACHE_CONTROL, cache_control))
        .finish()
}
