//! `GET|HEAD /{code}`: the redirect.
//!
//! - Served as the default service: a path of one segment is a code; other paths
//!   answer 404 and other methods 405, both as problem+json.
//! - 302 by default, or the link's own 301/302/307/308.
//! - `Location` comes only from the stored URL re-parsed as http(s), never from the
//!   request.
//! - 302/307 carry `Cache-Control: private, max-age=0` so every follow reaches us
//!   (edits apply at once, clicks are counted); 301/308, which the owner chose to be
//!   permanent, may be kept for `lookup.permanent_max_age_secs`.
//! - 404 for codes that do not exist, 410 for expired, disabled or deleted links,
//!   429 for an address that collects too many 404s (a scanner).
//! - 410 `/problems/link-blocked`, without `Location`, for a link whose target host
//!   is blocked (`links.blocked_hosts` or `shortener hosts block`), checked on every
//!   redirect: a cached link is blocked the moment its host is.

use actix_web::http::header::{
    ALLOW, CACHE_CONTROL, HeaderName, HeaderValue, LOCATION, REFERER, USER_AGENT,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use common::clicks::{Click, visitor_hash};
use common::db::links::LinkState;
use common::problem::Problem;
use common::ratelimit::{Decision, Quota};
use common::time::now_ms;

use crate::clicks::ClickRecorder;
use crate::resolve::{LookupState, Segment};
use crate::tiers::Age;

const NO_STORE: HeaderValue = HeaderValue::from_static("private, max-age=0");

fn gone(state: LinkState) -> HttpResponse {
    let why = match state {
        LinkState::Expired => "this link has expired",
        LinkState::Disabled => "this link has been disabled",
        _ => "this link has been deleted",
    };
    Problem::new(StatusCode::GONE, "link-gone", "Link no longer available")
        .detail(why)
        .to_response()
}

/// The target host is blocked. Not cacheable: an unblock must bring the redirect back.
fn blocked() -> HttpResponse {
    let mut response = Problem::new(StatusCode::GONE, "link-blocked", "Link blocked")
        .detail("this link leads to a host that is blocked (for example for phishing or malware)")
        .to_response();
    response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    response
}

async fn not_found(req: &HttpRequest, state: &LookupState) -> HttpResponse {
    let settings = &state.deps.settings;
    let ip = common::http::client_ip(req, settings.http.client_ip_header.as_deref())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let quota = Quota {
        per_minute: settings.lookup.not_found_per_ip_per_minute,
        burst: settings.lookup.not_found_burst,
    };
    if let Decision::Deny(wait) = state.not_found_limiter.check(&ip, quota).await {
        state.metrics.not_found_limited.inc();
        return Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .detail("too many unknown codes from this address")
        .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64)
        .to_response();
    }
    Problem::not_found()
        .detail("no link has this code")
        .to_response()
}

/// Every path that no fixed route claims: one segment is a code, anything else 404.
pub async fn follow(req: HttpRequest, state: web::Data<LookupState>) -> HttpResponse {
    // The path as sent (percent-escapes intact): a canonical code needs none, so an
    // escaped one is not a code and answers 404 below without a lookup.
    let Some(code) = req
        .path()
        .strip_prefix('/')
        .filter(|code| !code.is_empty() && !code.contains('/'))
    else {
        return Problem::not_found().to_response();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
        )
        .detail("short links answer GET and HEAD")
        .to_response();
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let age = match state.classify(code) {
        Segment::Impossible => return not_found(&req, &state).await,
        Segment::Generated(age) => age,
        Segment::Alias => Age::Unknown,
    };
    let cached = match state.tiers.get(code, age).await {
        Ok(cached) => cached,
        Err(e) => {
            tracing::error!(error = %e, "link lookup failed in every tier");
            return Problem::unavailable("cannot look links up right now").to_response();
        }
    };
    let Some(resolved) = &cached.link else {
        return not_found(&req, &state).await;
    };
    let now = now_ms();
    match resolved.entry.state_at(now) {
        LinkState::Active => {}
        other => return gone(other),
    }
    let Some(location) = resolved.location.clone() else {
        return gone(LinkState::Disabled);
    };
    if resolved
        .host()
        .is_some_and(|host| state.blocklist.blocks(host))
    {
        state.metrics.blocked_redirects.inc();
        return blocked();
    }
    // A HEAD sees the limit but does not count as a visit.
    let is_get = req.method() == Method::GET;
    if let Some(max) = resolved.entry.max_visits
        && !state
            .visit_limiter
            .admit(code, max, is_get, state.replicas.pick())
            .await
    {
        return Problem::new(StatusCode::GONE, "link-gone", "Link no longer available")
            .detail("this link has reached its visit limit")
            .to_response();
    }
    let status = StatusCode::from_u16(resolved.entry.redirect_status).unwrap_or(StatusCode::FOUND);
    let cache_control = match status {
        StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT => {
            state.permanent_cache_control.clone()
        }
        _ => NO_STORE,
    };
    // A HEAD is a link checker asking, not a person following.
    if is_get && let Some(recorder) = &state.clicks {
        record_click(&req, &state, recorder, code, now);
    }
    HttpResponse::build(status)
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, cache_control))
        .finish()
}

fn record_click(
    req: &HttpRequest,
    state: &LookupState,
    recorder: &ClickRecorder,
    code: &str,
    now: i64,
) {
    let headers = req.headers();
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let user_agent = text(&USER_AGENT);
    let country = recorder.country_header().and_then(text);
    let address =
        common::http::client_ip(req, state.deps.settings.http.client_ip_header.as_deref());
    let day = now - now.rem_euclid(common::clicks::DAY_MS);
    recorder.record(&Click {
        code,
        at_ms: now,
        referer: text(&REFERER),
        user_agent,
        country,
        visitor: visitor_hash(
            recorder.visitor_key(),
            day,
            address,
            user_agent.unwrap_or(""),
        ),
    });
}
