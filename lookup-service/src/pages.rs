//! The small HTML pages the redirect answers instead of a redirect: a protected link's
//! password form and a link's preview (`/{code}+`). No script, no style of their own,
//! the web page's Content-Security-Policy, never cached.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};

/// `Cache-Control` of every page, and of every answer about a protected link.
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The password form's policy: the web page's, but for `form-action`, which browsers
/// also check against every redirect the post leads to: the right password is
/// answered with a redirect to the link's target, wherever that is.
pub const FORM_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self' http: https:; frame-ancestors 'none'";

/// `text` with the characters HTML gives a meaning escaped, for text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page titled `title` (plain text) around `main` (HTML the caller escaped), under
/// the web page's Content-Security-Policy.
pub fn page(status: StatusCode, title: &str, main: &str) -> HttpResponse {
    page_with(
        status,
        title,
        main,
        common::http::PAGE_CONTENT_SECURITY_POLICY,
    )
}

/// [`page`] under the Content-Security-Policy `policy`.
pub fn page_with(
    status: StatusCode,
    title: &str,
    main: &str,
    policy: &'static str,
) -> HttpResponse {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex\">\n<title>{title}</title>\n</head>\n\
         <body>\n<main>\n<h1>{title}</h1>\n{main}</main>\n</body>\n</html>\n",
        title = escape(title),
    );
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, NO_STORE))
        .insert_header((CONTENT_SECURITY_POLICY, policy))
        .insert_header((X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_only_text() {
        assert_eq!(
            escape(r#"https://e.com/?a=1&b="<x>'"#),
            "https://e.com/?a=1&amp;b=&quot;&lt;x&gt;&#39;"
        );
    }
}
