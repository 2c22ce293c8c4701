//! `GET|HEAD /{code}`: the redirect (and `POST /{code}`: a protected link's password
//! form, see [`crate::password`]).
//!
//! - Served as the default service: a path of one segment is a code; other paths
//!   answer 404 and other methods 405, both as problem+json.
//! - The host picks the domain the code is looked up on: the default domain (its own
//!   hosts, or an IP address), or a branded domain a tenant holds; any other host
//!   answers 404 without a lookup.
//! - A branded domain may send its root, its unknown codes and its dead links (410)
//!   to URLs its owner set (302, not cached), and may be HTTPS only: plain http is
//!   sent to https (308) and every answer carries HSTS.
//! - 302 by default, or the link's own 301/302/307/308.
//! - `Location` comes only from the stored URLs re-parsed as http(s), never from the
//!   request: the link's own, or the rule's or variant's that picked it
//!   ([`common::domain::route`]), with the visitor's query added unless the link says
//!   not to.
//! - 302/307 carry `Cache-Control: private, max-age=0` so every follow reaches us
//!   (edits apply at once, clicks are counted); 301/308, which the owner chose to be
//!   permanent, may be kept for `lookup.permanent_max_age`.
//! - 404 for codes that do not exist, 410 for expired, disabled or deleted links,
//!   429 for an address that collects too many 404s (a scanner).
//! - 410 `/problems/link-blocked`, without `Location`, for a link whose target host
//!   is blocked (`links.blocked_hosts` or `shortener hosts block`), checked on every
//!   redirect: a cached link is blocked the moment its host is.

use actix_web::http::header::{
    ACCEPT_LANGUAGE, CACHE_CONTROL, COOKIE, HeaderName, HeaderValue, LOCATION, REFERER, SET_COOKIE,
    STRICT_TRANSPORT_SECURITY, USER_AGENT,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use common::cache::{MAX_KEY, link_key};
use common::clicks::{Click, visitor_hash};
use common::db::links::LinkState;
use common::domain::route::{Choice, Visitor};
use common::links::domain_name::MAX_LEN;
use common::ratelimit::{Decision, Quota};
use common::time::now_ms;

use crate::error::{FollowError, NO_STORE};
use crate::pages;
use crate::password::{self, Prompt};
use crate::resolve::{LookupState, Segment, Site};
use crate::tiers::{Age, Cached};

/// The answer to a code nobody has: 404, or 429 for an address that collects too
/// many of them (a scanner).
async fn unknown_code(req: &HttpRequest, state: &LookupState) -> FollowError {
    let settings = &state.deps.settings;
    let ip = common::http::client_ip(req, settings.http.client_ip_header.as_ref())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let quota = Quota {
        per_minute: settings.lookup.not_found_per_ip_per_minute,
        burst: settings.lookup.not_found_burst,
    };
    match state.not_found_limiter.check(&ip, quota).await {
        Decision::Deny(retry_after) => {
            state.metrics.not_found_limited.inc();
            FollowError::Scanning { retry_after }
        }
        Decision::Allow => FollowError::UnknownCode,
    }
}

/// Every path that no fixed route claims: one segment is a code, anything else 404.
/// The body is read only by the password form's POST.
pub async fn follow(
    req: HttpRequest,
    state: web::Data<LookupState>,
    body: web::Payload,
) -> HttpResponse {
    // Answered here rather than by actix's `Result` responder, which would wrap every
    // redirect's body in one more layer on the hot path.
    answer(&req, &state, body)
        .await
        .unwrap_or_else(|error| error.error_response())
}

async fn answer(
    req: &HttpRequest,
    state: &LookupState,
    body: web::Payload,
) -> Result<HttpResponse, FollowError> {
    // The path as sent (percent-escapes intact): a canonical code needs none, so an
    // escaped one is not a code and answers 404 below without a lookup. The empty
    // segment is the root, which only a branded domain may send somewhere.
    let Some(code) = req
        .path()
        .strip_prefix('/')
        .filter(|code| !code.contains('/'))
    else {
        return Err(FollowError::NoSuchPath);
    };
    // POST is the password form's, which only a protected link takes.
    if ![Method::GET, Method::HEAD, Method::POST].contains(req.method()) {
        return Err(FollowError::MethodNotAllowed);
    }
    let mut host = [0u8; MAX_LEN];
    // `/{code}+`: where the link goes, without going there.
    if let Some(code) = code.strip_suffix('+') {
        let site = state.site(req, &mut host)?;
        return Box::pin(preview(req, state, site.as_ref().map(|s| s.name), code)).await;
    }
    match state.site(req, &mut host)? {
        None if code.is_empty() => Err(FollowError::NoSuchPath),
        None => follow_code(req, state, None, code, body).await,
        // Boxed: the branded path's future (which holds a follow of its own) stays
        // out of the default domain's, which every hot redirect allocates.
        Some(site) => Ok(Box::pin(on_site(req, state, &site, code, body)).await),
    }
}

/// HSTS for an HTTPS-only domain: a year, as browsers' preload rules ask.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// A request on a branded domain: its settings decide what the root, plain http, an
/// unknown code and a dead link answer.
async fn on_site(
    req: &HttpRequest,
    state: &LookupState,
    site: &Site<'_>,
    code: &str,
    body: web::Payload,
) -> HttpResponse {
    let settings = &site.settings;
    // Whether the client reached the edge over TLS, as the proxy in front says. A
    // client that lies about it only sends itself to https, or gets an HSTS header
    // over plain http, which browsers ignore.
    let https = req.connection_info().scheme() == "https";
    if settings.https_only && !https {
        let target = format!(
            "https://{}{}",
            site.name,
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        );
        return match HeaderValue::from_str(&target) {
            Ok(location) => HttpResponse::PermanentRedirect()
                .insert_header((LOCATION, location))
                .finish(),
            Err(_) => FollowError::NoSuchPath.error_response(),
        };
    }
    // The owner's fallback pages are for browsers following links; a form post to a
    // code that is not a protected link's answers as the service does.
    let posted = req.method() == Method::POST;
    let answer = if code.is_empty() {
        if posted {
            Err(FollowError::MethodNotAllowed)
        } else {
            settings
                .root_url
                .as_deref()
                .and_then(elsewhere)
                .ok_or(FollowError::NoSuchPath)
        }
    } else {
        match follow_code(req, state, Some(site.name), code, body).await {
            Err(e) if posted => Err(e),
            Err(FollowError::UnknownCode) if settings.not_found_url.is_some() => {
                elsewhere_or(settings.not_found_url.as_deref(), FollowError::UnknownCode)
            }
            Err(e @ (FollowError::Gone(_) | FollowError::VisitLimitReached))
                if settings.gone_url.is_some() =>
            {
                elsewhere_or(settings.gone_url.as_deref(), e)
            }
            other => other,
        }
    };
    let mut response = answer.unwrap_or_else(|error| error.error_response());
    if settings.https_only {
        response
            .headers_mut()
            .insert(STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}

/// A 302 to a URL a domain's owner set (checked as a link destination when it was
/// set), not cached: the owner may change it.
fn elsewhere(url: &str) -> Option<HttpResponse> {
    let location = HeaderValue::from_str(url).ok()?;
    Some(
        HttpResponse::Found()
            .insert_header((LOCATION, location))
            .insert_header((CACHE_CONTROL, NO_STORE))
            .finish(),
    )
}

fn elsewhere_or(url: Option<&str>, error: FollowError) -> Result<HttpResponse, FollowError> {
    url.and_then(elsewhere).ok_or(error)
}

/// The link `code` under `key` (its key on its domain) when it redirects at `now`
/// (then `link` is always there): 404, or 429 for a scanner, when there is none; 410
/// when it no longer redirects.
async fn active_link(
    req: &HttpRequest,
    state: &LookupState,
    code: &str,
    key: &str,
    now: i64,
) -> Result<Cached, FollowError> {
    let age = match state.classify(code) {
        Segment::Impossible => return Err(unknown_code(req, state).await),
        Segment::Generated(age) => age,
        Segment::Alias => Age::Unknown,
    };
    let cached = state.tiers.get(key, age).await.map_err(|e| {
        tracing::error!(error = %e, "link lookup failed in every tier");
        FollowError::Unavailable
    })?;
    let Some(resolved) = &cached.link else {
        return Err(unknown_code(req, state).await);
    };
    match resolved.entry.state_at(now) {
        LinkState::Active => Ok(cached),
        other => Err(FollowError::Gone(other)),
    }
}

/// The preview of `code` on `site`: its target (unless a password guards it), when it
/// was made, whether it is protected; nothing is followed or fetched, and nothing is
/// counted.
async fn preview(
    req: &HttpRequest,
    state: &LookupState,
    site: Option<&str>,
    code: &str,
) -> Result<HttpResponse, FollowError> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Err(FollowError::MethodNotAllowed);
    }
    let mut key_buf = [0u8; MAX_KEY];
    let key = link_key(site, code, &mut key_buf).ok_or(FollowError::UnknownCode)?;
    let cached = active_link(req, state, code, key, now_ms()).await?;
    let Some(resolved) = &cached.link else {
        return Err(FollowError::UnknownCode);
    };
    if resolved
        .host()
        .is_some_and(|host| state.blocklist.blocks(host))
    {
        return Err(FollowError::Blocked);
    }
    let routing = resolved.entry.routing();
    let created = common::time::from_ms(resolved.entry.created_at());
    let mut main = String::new();
    match (&routing.password_hash, resolved.location.as_ref()) {
        (Some(_), _) => main.push_str(
            "<p>This link is protected by a password: where it goes is shown only to \
             those who give it.</p>\n",
        ),
        (None, Some(location)) => {
            let url = pages::escape(location.to_str().unwrap_or_default());
            main.push_str(&format!(
                "<p>It goes to <a href=\"{url}\" rel=\"nofollow noopener noreferrer\">{url}</a></p>\n"
            ));
            if let Some(routes) = resolved.routes() {
                main.push_str(&format!(
                    "<p>Some visitors are sent elsewhere: it has {} rule(s) and {} \
                     variant(s) that choose by device, system, language or country.</p>\n",
                    routes.chooser.rules(),
                    routes.chooser.variants()
                ));
            }
        }
        (None, None) => return Err(FollowError::Gone(LinkState::Disabled)),
    }
    main.push_str(&format!(
        "<p>Made on <time datetime=\"{}\">{}</time>.</p>\n\
         <p><a href=\"/{}\">Follow the link</a></p>\n",
        created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        created.format("%-d %B %Y, %H:%M UTC"),
        pages::escape(code),
    ));
    Ok(pages::page(StatusCode::OK, "Where this link goes", &main))
}

/// Follows `code` on `site` (`None`: the default domain).
async fn follow_code(
    req: &HttpRequest,
    state: &LookupState,
    site: Option<&str>,
    code: &str,
    body: web::Payload,
) -> Result<HttpResponse, FollowError> {
    // The link's key on its domain: every tier, event and click count goes by it.
    let mut key_buf = [0u8; MAX_KEY];
    let key = link_key(site, code, &mut key_buf).ok_or(FollowError::UnknownCode)?;
    let now = now_ms();
    let cached = active_link(req, state, code, key, now).await?;
    let Some(resolved) = &cached.link else {
        return Err(FollowError::UnknownCode);
    };
    let routing = resolved.entry.routing();
    // A protected link answers its form until the visitor holds a grant or sends the
    // right password; the grant earned is set with the redirect.
    let grant = match &routing.password_hash {
        Some(hash) => match unlock(req, state, key, hash, now, body).await {
            Unlock::Open(grant) => Some(grant),
            Unlock::Form(page) => return Ok(page),
        },
        None if req.method() == Method::POST => return Err(FollowError::MethodNotAllowed),
        None => None,
    };
    let headers = req.headers();
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let user_agent = text(&USER_AGENT);
    // A HEAD sees the limit but does not count as a visit; it is a link checker
    // asking, not a person following (a POST is a person with a password).
    let is_visit = req.method() != Method::HEAD;
    let counted = is_visit.then_some(state.clicks.as_ref()).flatten();
    // The daily visitor hash, worked out once: it keeps a visitor on one variant
    // and counts them once in stats.
    let chooser = resolved.routes().map(|r| &r.chooser);
    let address = (counted.is_some() || chooser.is_some())
        .then(|| common::http::client_ip(req, state.deps.settings.http.client_ip_header.as_ref()))
        .flatten();
    let splits = chooser.is_some_and(|c| c.variants() > 0);
    let visitor = (counted.is_some() || splits).then(|| {
        let day = now - now.rem_euclid(common::clicks::DAY_MS);
        visitor_hash(&state.visitor_key, day, address, user_agent.unwrap_or(""))
    });
    // Looked up once, and only when a rule or the click asks (a GeoIP lookup costs).
    let known_country = std::cell::OnceCell::new();
    let country = || *known_country.get_or_init(|| state.countries.of(req, address));
    let choice = chooser.map(|chooser| {
        chooser.choose(
            resolved.entry.id,
            &Visitor {
                user_agent: user_agent.unwrap_or(""),
                accept_language: if chooser.asks_language() {
                    text(&ACCEPT_LANGUAGE).unwrap_or("")
                } else {
                    ""
                },
                country: if chooser.asks_country() {
                    country()
                } else {
                    None
                },
                sticky: visitor.unwrap_or_default() as u64,
            },
        )
    });
    let (location, host) = resolved.target(choice.unwrap_or(Choice::Url));
    let Some(location) = location.cloned() else {
        return Err(FollowError::Gone(LinkState::Disabled));
    };
    if host.is_some_and(|host| state.blocklist.blocks(host)) {
        state.metrics.blocked_redirects.inc();
        return Err(FollowError::Blocked);
    }
    if let Some(max) = resolved.entry.max_visits
        && !state
            .visit_limiter
            .admit(key, max, is_visit, state.replicas.pick())
            .await
    {
        return Err(FollowError::VisitLimitReached);
    }
    let redirect = resolved.entry.redirect_status;
    let status = match req.method() {
        // After the form: a 307 or 308 would have the browser post the password on
        // to the target.
        &Method::POST => StatusCode::SEE_OTHER,
        _ => StatusCode::from_u16(redirect.code()).unwrap_or(StatusCode::FOUND),
    };
    let cache_control = if grant.is_some() {
        // Kept by no cache: the next visitor must be asked again.
        crate::pages::NO_STORE
    } else if redirect.is_permanent() {
        state.permanent_cache_control.clone()
    } else {
        NO_STORE
    };
    if let Some(recorder) = counted {
        recorder.record(&Click {
            code: key,
            at_ms: now,
            referer: text(&REFERER),
            user_agent,
            country: country(),
            visitor: visitor.unwrap_or_default(),
            route: choice,
        });
    }
    // The visitor's query string reaches the target, the target's own parameters
    // winning (`domain::forward`), unless the link says not to; without one the
    // cached header goes out as it is.
    let location = match req.query_string() {
        "" => location,
        _ if !routing.forward_query => location,
        query => {
            let forwarded = location
                .to_str()
                .ok()
                .map(|target| common::domain::forward::forward_query(target, query))
                .and_then(|url| HeaderValue::from_str(&url).ok());
            forwarded.unwrap_or(location)
        }
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((LOCATION, location))
        .insert_header((CACHE_CONTROL, cache_control));
    if let Some(Some(cookie)) = grant {
        response.insert_header((SET_COOKIE, cookie));
    }
    Ok(response.finish())
}

/// What a protected link answers before its redirect.
enum Unlock {
    /// Go on to the redirect, setting this grant (`None`: the visitor holds one).
    Open(Option<HeaderValue>),
    /// The form: first asked, wrong password (401), or too many attempts (429).
    Form(HttpResponse),
}

/// Asks a visitor of the protected link `key` for its password, or checks the one
/// they post.
async fn unlock(
    req: &HttpRequest,
    state: &LookupState,
    key: &str,
    hash: &str,
    now: i64,
    body: web::Payload,
) -> Unlock {
    let gate = &state.gate;
    if req.method() != Method::POST {
        return if gate.granted(req.headers().get_all(COOKIE), key, hash, now) {
            Unlock::Open(None)
        } else {
            Unlock::Form(password::page(StatusCode::OK, Prompt::First))
        };
    }
    let address = common::http::client_ip(req, state.deps.settings.http.client_ip_header.as_ref())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    if let Err(retry_after) = gate.attempt(key, &address).await {
        return Unlock::Form(password::page(
            StatusCode::TOO_MANY_REQUESTS,
            Prompt::TooMany(retry_after),
        ));
    }
    let sent = body
        .to_bytes_limited(password::MAX_FORM_BYTES)
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|bytes| password::password_field(&bytes));
    let right = match sent {
        Some(sent) => {
            let hash = hash.to_string();
            web::block(move || common::passwords::verify(&sent, &hash))
                .await
                .unwrap_or(false)
        }
        None => false,
    };
    if !right {
        return Unlock::Form(password::page(StatusCode::UNAUTHORIZED, Prompt::Wrong));
    }
    let secure = req.connection_info().scheme() == "https";
    Unlock::Open(gate.grant_cookie(key, hash, now, req.path(), secure))
}
