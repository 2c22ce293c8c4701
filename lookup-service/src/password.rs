//! Password-protected links: the form a visitor answers, the check of what they
//! send, and the signed grant that lets them follow the link again without it for a
//! while.
//!
//! - `GET /{code}` of a protected link answers 200 with a small form (no script, the
//!   web page's Content-Security-Policy but for `form-action`, never cached) unless the request carries a
//!   valid grant for the link, which redirects as usual.
//! - The form posts `password` to the same path. Attempts are limited per link and
//!   client address (429 with `Retry-After`); a wrong password answers the form again
//!   with 401; the right one answers the redirect (303: a browser must not post the
//!   password on to the target) with a grant cookie scoped to the link's path.
//! - A grant is `<expiry ms>.<HMAC-SHA-256>` over the link's key, the expiry and a
//!   digest of the password hash: a new password ends every grant given before it.
//! - The password is checked with argon2id on a blocking thread
//!   ([`common::passwords::verify`]), and is never logged, cached, or kept beyond the
//!   check.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, RETRY_AFTER};
use common::ratelimit::{Decision, Quota, RateLimiter};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::pages;

/// The grant cookie; its path makes it one per link.
pub const GRANT_COOKIE: &str = "shortener_grant";
/// Longest form body read: a 128-character password, escaped, fits many times over.
pub const MAX_FORM_BYTES: usize = 4096;

/// Checks passwords and signs grants for one lookup instance.
pub struct Gate {
    key: [u8; 32],
    grant_ttl: Duration,
    limiter: RateLimiter,
    quota: Quota,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("grant_ttl", &self.grant_ttl)
            .finish()
    }
}

/// What the form says above the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    First,
    Wrong,
    TooMany(u32),
}

impl Gate {
    /// `code_key` is the deployment's secret; the grant key is derived from it (so a
    /// deployment has one secret less to manage) and reveals nothing about it.
    pub fn new(code_key: &[u8], grant_ttl: Duration, quota: Quota) -> Gate {
        Gate {
            key: crate::clicks::derived_key("grant", code_key),
            grant_ttl,
            limiter: RateLimiter::new(None),
            quota,
        }
    }

    fn mac(&self, link: &str, password_hash: &str, expires_ms: i64) -> Option<[u8; 32]> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(link.as_bytes());
        mac.update(b"\0");
        mac.update(&Sha256::digest(password_hash.as_bytes()));
        mac.update(&expires_ms.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; 32];
        out.copy_from_slice(&tag);
        Some(out)
    }

    /// A grant for the link `link` (its key) behind `password_hash`, valid from
    /// `now_ms` for the grant lifetime, as the `Set-Cookie` value for `path`.
    pub fn grant_cookie(
        &self,
        link: &str,
        password_hash: &str,
        now_ms: i64,
        path: &str,
        secure: bool,
    ) -> Option<HeaderValue> {
        let ttl_ms = i64::try_from(self.grant_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires_ms = now_ms.saturating_add(ttl_ms);
        let tag = self.mac(link, password_hash, expires_ms)?;
        let cookie = format!(
            "{GRANT_COOKIE}={expires_ms}.{}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{}",
            hex::encode(tag),
            self.grant_ttl.as_secs(),
            if secure { "; Secure" } else { "" },
        );
        HeaderValue::from_str(&cookie).ok()
    }

    /// Whether the `Cookie` headers hold a grant for `link` behind `password_hash`
    /// that has not expired at `now_ms`.
    pub fn granted<'a>(
        &self,
        cookies: impl Iterator<Item = &'a HeaderValue>,
        link: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> bool {
        let values = cookies
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(GRANT_COOKIE)?.strip_prefix('='));
        for value in values {
            let Some((expiry, tag)) = value.split_once('.') else {
                continue;
            };
            let (Ok(expires_ms), Ok(tag)) = (expiry.parse::<i64>(), hex::decode(tag)) else {
                continue;
            };
            if expires_ms <= now_ms {
                continue;
            }
            if let Some(expected) = self.mac(link, password_hash, expires_ms)
                && bool::from(expected.as_slice().ct_eq(&tag))
            {
                return true;
            }
        }
        false
    }

    /// Takes one attempt at `link` from `address`: `Err(seconds)` when it has
    /// used up its attempts.
    pub async fn attempt(&self, link: &str, address: &str) -> Result<(), u32> {
        let key = format!("{link}\0{address}");
        match self.limiter.check(&key, self.quota).await {
            Decision::Allow => Ok(()),
            Decision::Deny(retry_after) => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Err(u32::try_from(seconds.max(1)).unwrap_or(u32::MAX))
            }
        }
    }
}

/// The `password` field of a form body; `None` when absent or not a form.
pub fn password_field(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "password")
        .map(|(_, value)| value.into_owned())
}

/// The form page with `status`; what it says above the field follows `prompt`.
pub fn page(status: StatusCode, prompt: Prompt) -> HttpResponse {
    let message = match prompt {
        Prompt::First => "Enter its password to continue.".to_string(),
        Prompt::Wrong => "That password is not right. Try again.".to_string(),
        Prompt::TooMany(seconds) => {
            format!("Too many attempts. Try again in {seconds} seconds.")
        }
    };
    let form = format!(
        "<p role=\"status\">{message}</p>\n<form method=\"post\">\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" required autofocus \
         autocomplete=\"current-password\" minlength=\"8\" maxlength=\"128\">\n\
         <button type=\"submit\">Continue</button>\n</form>\n"
    );
    let mut response = pages::page_with(
        status,
        "This link is protected",
        &form,
        pages::FORM_CONTENT_SECURITY_POLICY,
    );
    if let Prompt::TooMany(seconds) = prompt
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::NO_STORE;

    fn gate() -> Gate {
        Gate::new(
            b"key",
            Duration::from_secs(60),
            Quota {
                per_minute: 5,
                burst: 5,
            },
        )
    }

    fn cookie_value(set_cookie: &HeaderValue) -> HeaderValue {
        let text = set_cookie.to_str().unwrap_or_default();
        HeaderValue::from_str(text.split(';').next().unwrap_or_default()).unwrap_or(NO_STORE)
    }

    #[test]
    fn a_grant_opens_its_link_until_it_expires_or_the_password_changes() {
        let gate = gate();
        let set = gate
            .grant_cookie("promo", "$argon2id$one", 1_000, "/promo", true)
            .unwrap_or(NO_STORE);
        let text = set.to_str().unwrap_or_default();
        assert!(text.contains("Path=/promo; Max-Age=60; HttpOnly; SameSite=Lax; Secure"));
        let cookie = cookie_value(&set);
        let granted = |link, hash, now| gate.granted(std::iter::once(&cookie), link, hash, now);
        assert!(granted("promo", "$argon2id$one", 2_000));
        assert!(!granted("promo", "$argon2id$one", 61_000), "expired");
        assert!(!granted("other", "$argon2id$one", 2_000), "another link");
        assert!(!granted("promo", "$argon2id$two", 2_000), "a new password");
        // A forged expiry breaks the signature.
        let forged = HeaderValue::from_str(
            &cookie
                .to_str()
                .unwrap_or_default()
                .replace("=61000.", "=99999999.")
                .replace("shortener_grant=61000", "shortener_grant=99999999"),
        )
        .unwrap_or(NO_STORE);
        assert!(!gate.granted(std::iter::once(&forged), "promo", "$argon2id$one", 70_000));
        let other_gate = Gate::new(b"other key", Duration::from_secs(60), gate.quota);
        assert!(!other_gate.granted(std::iter::once(&cookie), "promo", "$argon2id$one", 2_000));
    }

    #[test]
    fn the_password_is_read_from_the_form() {
        assert_eq!(
            password_field(b"password=s3cret%20words&x=1").as_deref(),
            Some("s3cret words")
        );
        assert_eq!(password_field(b"pass=1"), None);
    }
}
