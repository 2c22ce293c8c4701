//! `GET /api/v1/links/{code}/qr`: the QR code of a link's short URL, as PNG or SVG.
//!
//! It is read under the same rules as `GET /api/v1/links/{code}`: only the owner sees
//! it, and anyone else gets the same 404 as for a code that does not exist. Links
//! created without a key have no owner: with `links.anonymous_stats` anyone may see
//! theirs (as the web page does on the all-in-one). The code holds exactly the
//! `short_url` that endpoint reports.

use actix_web::http::StatusCode;
use actix_web::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, IF_NONE_MATCH, VARY,
};
use actix_web::{HttpRequest, HttpResponse, web};
use common::problem::Problem;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::qr::{self, Format};
use crate::state::CreateState;

/// A code's short URL, and so its image, never changes; the hour bounds how long the
/// image of a deleted link lingers in the owner's cache, and `private` keeps shared
/// caches from handing one tenant's image to anyone else.
const CACHE_CONTROL_VALUE: &str = "private, max-age=3600";

/// Both parameters arrive as text so that a bad value is answered with a problem
/// that names it, rather than with the query parser's generic message.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `png` (default) or `svg`. Without it, `Accept: image/svg+xml` asks for SVG.
    #[param(value_type = Option<Format>, inline)]
    pub format: Option<String>,
    /// Pixels per module, 1–32 (default 8). The image is that many pixels for each
    /// module of the code plus a quiet zone of 4 modules on every side.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 32, default = 8)]
    pub size: Option<String>,
    /// The link's domain; absent: the default domain.
    #[param(example = "go.acme.com")]
    pub domain: Option<String>,
}

fn bad_parameter(name: &str, message: String) -> ApiError {
    ApiError::Invalid(
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-query",
            "Invalid query parameters",
        )
        .detail(format!("`{name}` {message}"))
        .field(name, message),
    )
}

impl QrQuery {
    /// The format asked for: the parameter wins, then an `Accept` of exactly SVG.
    fn format(&self, headers: &HeaderMap) -> Result<Format, ApiError> {
        match &self.format {
            Some(value) => Format::parse(value)
                .ok_or_else(|| bad_parameter("format", "must be `png` or `svg`".into())),
            None => {
                let wants_svg = headers
                    .get(ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case(Format::Svg.content_type()));
                Ok(if wants_svg { Format::Svg } else { Format::Png })
            }
        }
    }

    fn module_px(&self) -> Result<u32, ApiError> {
        let Some(value) = &self.size else {
            return Ok(qr::DEFAULT_MODULE_PX);
        };
        value
            .parse::<u32>()
            .ok()
            .filter(|px| qr::MODULE_PX.contains(px))
            .ok_or_else(|| {
                bad_parameter(
                    "size",
                    format!(
                        "must be a whole number of pixels per module from {} to {}",
                        qr::MODULE_PX.start(),
                        qr::MODULE_PX.end()
                    ),
                )
            })
    }
}

/// A strong validator from the bytes themselves, so it changes exactly when they do.
pub(crate) fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// `If-None-Match` against `etag` with the weak comparison RFC 9110 asks for here.
pub(crate) fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    headers
        .get_all(IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/qr",
    tag = "links",
    params(
        ("code" = String, Path, description = "Generated code or alias"),
        QrQuery,
        ("Accept" = Option<String>, Header, description = "`image/svg+xml` asks for SVG when `format` is absent"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The QR code of the link's `short_url`",
            content(
                ("image/png"),
                (String = "image/svg+xml"),
            ),
            headers(
                ("ETag" = String, description = "Changes when the image does"),
                ("Cache-Control" = String, description = "`private, max-age=3600`"),
                ("Vary" = String, description = "`Accept`"),
            )
        ),
        (status = 304, description = "The image named by `If-None-Match` is still current"),
        (status = 400, description = "Bad `format` or `size`", body = Problem, content_type = "application/problem+json"),
        super::openapi::CallerProblems,
        (status = 404, description = "No such link of yours", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("api_key" = []))
)]
pub async fn link_qr(
    req: HttpRequest,
    state: web::Data<CreateState>,
    code: web::Path<String>,
    query: web::Query<QrQuery>,
) -> Result<HttpResponse, ApiError> {
    let caller = state.reader(&req).await?;
    let format = query.format(req.headers())?;
    let module_px = query.module_px()?;
    let on = super::OnDomain {
        domain: query.domain.clone(),
    };
    let (record, site) = super::owned_link(&state, &caller, &on, &code).await?;
    let short_url = state.short_url(site.as_ref(), record.code.as_str());

    // Drawing is CPU work that grows with the square of `size`: off the actix worker.
    let body = web::block(move || qr::render(&short_url, format, module_px))
        .await
        .map_err(|e| ApiError::Internal(format!("QR rendering: {e}")))?
        .map_err(|e| ApiError::Internal(format!("QR rendering: {e}")))?;
    let etag = etag_of(&body);

    let unchanged = not_modified(req.headers(), &etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, etag))
        .insert_header((CACHE_CONTROL, CACHE_CONTROL_VALUE))
        // The answer depends on `Accept` whenever `format` is absent.
        .insert_header((VARY, "Accept"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response
        .insert_header((CONTENT_TYPE, format.content_type()))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                actix_web::http::header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn query(format: Option<&str>, size: Option<&str>) -> QrQuery {
        QrQuery {
            format: format.map(str::to_string),
            size: size.map(str::to_string),
            domain: None,
        }
    }

    #[test]
    fn format_parameter_wins_over_accept() {
        let svg = headers(&[("accept", "image/svg+xml")]);
        assert_eq!(query(None, None).format(&svg).unwrap(), Format::Svg);
        assert_eq!(query(Some("png"), None).format(&svg).unwrap(), Format::Png);
        assert_eq!(
            query(None, None).format(&HeaderMap::new()).unwrap(),
            Format::Png
        );
        // Only an Accept of exactly SVG asks for it; lists and wildcards get PNG.
        for accept in ["image/svg+xml, image/png", "image/*", "*/*", "text/html"] {
            let h = headers(&[("accept", accept)]);
            assert_eq!(
                query(None, None).format(&h).unwrap(),
                Format::Png,
                "{accept}"
            );
        }
        let err = query(Some("gif"), None).format(&svg).unwrap_err();
        assert_eq!(err.problem().errors[0].field, "format");
    }

    #[test]
    fn size_is_bounded_and_named_when_wrong() {
        assert_eq!(
            query(None, None).module_px().unwrap(),
            qr::DEFAULT_MODULE_PX
        );
        assert_eq!(query(None, Some("1")).module_px().unwrap(), 1);
        assert_eq!(query(None, Some("32")).module_px().unwrap(), 32);
        for bad in ["0", "33", "-1", "8.5", "", "big", "99999999999"] {
            let err = query(None, Some(bad)).module_px().unwrap_err();
            let problem = err.problem();
            assert_eq!(problem.status, 400, "{bad}");
            assert_eq!(problem.errors[0].field, "size", "{bad}");
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let etag = "\"abc\"";
        assert!(not_modified(
            &headers(&[("if-none-match", "\"abc\"")]),
            etag
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "W/\"abc\"")]),
            etag
        ));
        assert!(not_modified(
            &headers(&[("if-none-match", "\"x\", \"abc\"")]),
            etag
        ));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), etag));
        assert!(!not_modified(
            &headers(&[("if-none-match", "\"abd\"")]),
            etag
        ));
        assert!(!not_modified(&HeaderMap::new(), etag));
    }
}
