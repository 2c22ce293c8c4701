//! The web page: a form that shortens a link and a stats view per link, as static
//! files compiled into the binary and served with a strict Content-Security-Policy.
//!
//! The page is `/`; its files live under `/static/`, a path of two segments, which
//! the redirect never takes for a code (codes and aliases are one segment, and
//! `static` is a reserved alias besides). The page talks to the JSON API of its own
//! origin, so it works wherever `/api/` and `/` reach the same host: the all-in-one,
//! or the services behind the edge.
//!
//! The HTML refers to each file as `/static/NAME?v=VERSION`, VERSION being the file's
//! content hash: a request carrying the current version may be cached for a year,
//! because a changed file gets a new address; anything else is revalidated by ETag.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName, HeaderValue,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, guard, web};
use common::problem::Problem;

use crate::http::qr::{etag_of, not_modified};

pub use common::http::PAGE_CONTENT_SECURITY_POLICY as CONTENT_SECURITY_POLICY_VALUE;

/// Where the page's files are served.
pub const STATIC_PREFIX: &str = "/static/";

const INDEX_TEMPLATE: &str = include_str!("assets/index.html");

/// The files under [`STATIC_PREFIX`]: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
];

/// The page is small and changes with every release: always revalidated.
const REVALIDATE: &str = "no-cache";
/// A file asked for by its current content version never changes at that address.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file as served: its bytes, type, validator and version.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    /// Shared, so an answer clones a reference, not the bytes.
    body: Bytes,
    /// A strong ETag (quoted), from the bytes.
    etag: String,
    /// The ETag without quotes, as the `v` of the file's address.
    version: String,
}

impl Asset {
    fn new(name: &'static str, content_type: &'static str, body: Bytes) -> Asset {
        let etag = etag_of(&body);
        let version = etag.trim_matches('"').to_string();
        Asset {
            name,
            content_type,
            body,
            etag,
            version,
        }
    }
}

/// Every file of the page, built once.
#[derive(Debug)]
struct Site {
    index: Asset,
    files: Vec<Asset>,
}

impl Site {
    fn build() -> Site {
        let files: Vec<Asset> = FILES
            .iter()
            .map(|(name, content_type, body)| {
                Asset::new(name, content_type, Bytes::from_static(body))
            })
            .collect();
        // `{{NAME}}` in the HTML becomes the version of file NAME.
        let mut html = INDEX_TEMPLATE.to_string();
        for file in &files {
            html = html.replace(&format!("{{{{{}}}}}", file.name), &file.version);
        }
        Site {
            index: Asset::new("index.html", "text/html; charset=utf-8", Bytes::from(html)),
            files,
        }
    }

    fn file(&self, name: &str) -> Option<&Asset> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// The page and its files.
static SITE: LazyLock<Site> = LazyLock::new(Site::build);

/// Mounts `/` and `/static/{name}`, for GET and HEAD; other methods get a 405 problem.
pub fn routes(cfg: &mut web::ServiceConfig) {
    let read = || guard::Any(guard::Get()).or(guard::Head());
    cfg.service(
        web::resource("/")
            .route(web::route().guard(read()).to(index))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/static/{name}")
            .route(web::route().guard(read()).to(file))
            .default_service(web::to(method_not_allowed)),
    );
}

fn serve(req: &HttpRequest, asset: &Asset, cache_control: &'static str) -> HttpResponse {
    let unchanged = not_modified(req.headers(), &asset.etag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, asset.etag.clone()))
        .insert_header((CACHE_CONTROL, cache_control));
    let mut response = if unchanged {
        response.finish()
    } else {
        response
            .insert_header((CONTENT_TYPE, asset.content_type))
            .body(asset.body.clone())
    };
    secure(&mut response);
    response
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &SITE.index, REVALIDATE)
}

async fn file(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = SITE.file(&name) else {
        let mut response = Problem::not_found()
            .detail("no such file of the web page")
            .to_response();
        secure(&mut response);
        return response;
    };
    // Only the current version is immutable: an old page asking for an old version
    // gets today's file, which it must revalidate.
    let current = req
        .query_string()
        .split('&')
        .any(|pair| pair.strip_prefix("v=") == Some(asset.version.as_str()));
    serve(&req, asset, if current { IMMUTABLE } else { REVALIDATE })
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let mut response = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
    )
    .detail(format!(
        "{} is not allowed here; the page answers GET and HEAD",
        req.method()
    ))
    .to_response();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    secure(&mut response);
    response
}

/// The headers every answer of the page carries, problems included.
fn secure(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    let pairs: [(HeaderName, &'static str); 3] = [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled_and_every_file_is_referenced() {
        let html = std::str::from_utf8(&SITE.index.body).unwrap();
        assert!(!html.contains("{{"), "unfilled placeholder in index.html");
        for file in &SITE.files {
            let address = format!("{STATIC_PREFIX}{}?v={}", file.name, file.version);
            assert!(html.contains(&address), "index.html lacks {address}");
        }
    }

    #[test]
    fn versions_follow_content() {
        let a = Asset::new("a", "text/plain", Bytes::from_static(b"one"));
        let b = Asset::new("a", "text/plain", Bytes::from_static(b"two"));
        assert_ne!(a.etag, b.etag);
        assert_eq!(a.etag, format!("\"{}\"", a.version));
    }
}
