//! What a branded domain does besides serving its links: where its root and its dead
//! ends go, whether it is HTTPS only, and how its new links redirect by default.

use crate::link::RedirectStatus;

/// The scheme of a domain's short URLs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Https,
    Http,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }

    pub fn parse(text: &str) -> Option<Scheme> {
        match text {
            "https" => Some(Scheme::Https),
            "http" => Some(Scheme::Http),
            _ => None,
        }
    }
}

/// A domain's settings. Every URL in here was checked as a link destination is, when
/// its owner set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSettings {
    /// Where the domain's root (`/`) redirects; `None`: the 404 problem.
    pub root_url: Option<String>,
    /// Where a code nobody holds on the domain redirects; `None`: the 404 problem.
    pub not_found_url: Option<String>,
    /// Where an expired, disabled or deleted link redirects; `None`: the 410 problem.
    pub gone_url: Option<String>,
    pub scheme: Scheme,
    /// Plain-http requests are redirected to https, and answers carry HSTS.
    pub https_only: bool,
    /// The status of the domain's new links that name none.
    pub redirect_status: RedirectStatus,
    /// Whether the domain's new links that do not say forward the visitor's query.
    pub forward_query: bool,
}

impl Default for SiteSettings {
    fn default() -> SiteSettings {
        SiteSettings {
            root_url: None,
            not_found_url: None,
            gone_url: None,
            scheme: Scheme::default(),
            https_only: false,
            redirect_status: RedirectStatus::default(),
            forward_query: true,
        }
    }
}

impl SiteSettings {
    /// The short URL of `code` on the domain `name`.
    pub fn short_url(&self, name: &str, code: &str) -> String {
        format!("{}://{name}/{code}", self.scheme.as_str())
    }
}
