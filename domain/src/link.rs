//! A link as stored, who owns it, how it redirects, and what a follower of it gets at
//! a given instant.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::ids::{Code, looks_like_generated_code};
use crate::links::DomainName;
use crate::links::alias::{self, Alias};
use crate::route::Routing;

/// A link as stored. Built only from validated input (create-service) or from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRecord {
    /// The branded domain the link is served on; `None` for the default domain.
    pub domain: Option<DomainName>,
    pub code: LinkCode,
    pub id: i64,
    pub tenant_id: TenantId,
    pub url: String,
    pub redirect_status: RedirectStatus,
    pub tags: Vec<String>,
    pub max_visits: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    pub deleted_at: Option<i64>,
    /// Query forwarding, rules, variants and password: how a follow picks its target.
    pub routing: Routing,
}

/// What a follower of the link gets, derived from the record at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    Active,
    Disabled,
    Expired,
    Deleted,
}

impl LinkRecord {
    /// The key the link is stored, cached, invalidated and counted under (see
    /// [`crate::cache::link_key`]).
    pub fn key(&self) -> String {
        LinkRecord::key_of(self.domain.as_ref(), &self.code)
    }

    /// The key of the link `code` on `domain` (`None`: the default domain).
    pub fn key_of(domain: Option<&DomainName>, code: &LinkCode) -> String {
        match domain {
            None => code.to_string(),
            Some(domain) => format!("{domain}/{code}"),
        }
    }

    pub fn state_at(&self, now_ms: i64) -> LinkState {
        if self.deleted_at.is_some() {
            LinkState::Deleted
        } else if self.disabled_at.is_some() {
            LinkState::Disabled
        } else if self.expires_at.is_some_and(|at| at <= now_ms) {
            LinkState::Expired
        } else {
            LinkState::Active
        }
    }
}

/// The code a link is followed by: a generated [`Code`] or a custom [`Alias`], or a
/// code read back from storage, which holds only those. Text from a request becomes
/// one through [`LinkCode::parse`], which refuses what could never be a code, so
/// such text reaches no storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkCode(String);

crate::text_type!(LinkCode);

impl LinkCode {
    /// Text shaped like a generated code or an alias: 3–64 of `[A-Za-z0-9_-]`. The
    /// reserved words and shapes are the create path's concern ([`Alias::parse`]);
    /// here the question is only whether a link could have this code.
    pub fn parse(text: &str) -> Option<LinkCode> {
        let shaped = (alias::MIN_LEN..=alias::MAX_LEN).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        shaped.then(|| LinkCode(text.to_string()))
    }

    /// A code as storage holds it, written only from a [`Code`] or an [`Alias`].
    pub fn from_stored(code: String) -> LinkCode {
        LinkCode(code)
    }

    /// True for a code the codec generated (the shape aliases may not take).
    pub fn is_generated(&self) -> bool {
        looks_like_generated_code(&self.0)
    }
}

impl From<Code> for LinkCode {
    fn from(code: Code) -> LinkCode {
        LinkCode(code.as_str().to_string())
    }
}

impl From<Alias> for LinkCode {
    fn from(alias: Alias) -> LinkCode {
        LinkCode(alias.into_string())
    }
}

impl std::borrow::Borrow<str> for LinkCode {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for LinkCode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for LinkCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// How a short link redirects: one of the four statuses that carry a `Location`.
/// 302 unless the owner chose otherwise; 301 and 308 are permanent, so browsers and
/// proxies may keep them. Serialised as the number, as the API and the cache entry
/// have always spelled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RedirectStatus {
    MovedPermanently,
    #[default]
    Found,
    TemporaryRedirect,
    PermanentRedirect,
}

impl RedirectStatus {
    pub const ALL: [RedirectStatus; 4] = [
        RedirectStatus::MovedPermanently,
        RedirectStatus::Found,
        RedirectStatus::TemporaryRedirect,
        RedirectStatus::PermanentRedirect,
    ];

    pub fn from_code(code: u16) -> Option<RedirectStatus> {
        RedirectStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn code(self) -> u16 {
        match self {
            RedirectStatus::MovedPermanently => 301,
            RedirectStatus::Found => 302,
            RedirectStatus::TemporaryRedirect => 307,
            RedirectStatus::PermanentRedirect => 308,
        }
    }

    /// 301 and 308: clients may keep the answer, so it is cacheable.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            RedirectStatus::MovedPermanently | RedirectStatus::PermanentRedirect
        )
    }
}

impl fmt::Display for RedirectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl Serialize for RedirectStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for RedirectStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RedirectStatus, D::Error> {
        let code = u16::deserialize(deserializer)?;
        RedirectStatus::from_code(code)
            .ok_or_else(|| de::Error::custom(format!("{code} is not one of 301, 302, 307, 308")))
    }
}

/// Who owns a link: a tenant an operator named (1–64 of `[A-Za-z0-9._-]`), or the
/// owner of links created without an API key, whose name no key can have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

crate::text_type!(TenantId);

/// Why a tenant name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant names are 1–64 characters of [A-Za-z0-9._-] (or ~anonymous, for tools)")]
pub struct TenantNameError;

impl TenantId {
    const ANONYMOUS: &'static str = "~anonymous";

    /// A tenant named by an operator.
    pub fn named(name: &str) -> Result<TenantId, TenantNameError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if valid {
            Ok(TenantId(name.to_string()))
        } else {
            Err(TenantNameError)
        }
    }

    /// The owner of links created without an API key. `~` is not allowed in tenant
    /// names, so no key can belong to it and its links are never edited or deleted.
    pub fn anonymous() -> TenantId {
        TenantId(TenantId::ANONYMOUS.to_string())
    }

    /// A tenant as an operator names it to a tool (`--tenant`): a tenant's name, or
    /// the anonymous owner's (`~anonymous`), whose links only tools can move.
    pub fn parse(text: &str) -> Result<TenantId, TenantNameError> {
        if text == TenantId::ANONYMOUS {
            Ok(TenantId::anonymous())
        } else {
            TenantId::named(text)
        }
    }

    /// A tenant as storage holds it, written only through [`TenantId::named`] or
    /// [`TenantId::anonymous`].
    pub fn from_stored(name: String) -> TenantId {
        TenantId(name)
    }

    pub fn is_anonymous(&self) -> bool {
        self.0 == TenantId::ANONYMOUS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_statuses_round_trip_as_numbers() {
        for status in RedirectStatus::ALL {
            let json = serde_json::to_string(&status).expect("serialise");
            assert_eq!(json, status.code().to_string());
            assert_eq!(
                serde_json::from_str::<RedirectStatus>(&json).ok(),
                Some(status)
            );
        }
        for refused in ["200", "303", "304", "404", "\"302\""] {
            assert!(
                serde_json::from_str::<RedirectStatus>(refused).is_err(),
                "{refused}"
            );
        }
        assert_eq!(RedirectStatus::default().code(), 302);
        let permanent: Vec<u16> = RedirectStatus::ALL
            .into_iter()
            .filter(|s| s.is_permanent())
            .map(RedirectStatus::code)
            .collect();
        assert_eq!(permanent, [301, 308]);
    }

    #[test]
    fn link_codes_take_only_what_a_link_could_have() {
        for code in ["abc", "spring-sale", "A1b2C3d4E5f", "x_y", &"a".repeat(64)] {
            assert_eq!(
                LinkCode::parse(code).map(|c| c.into_string()).as_deref(),
                Some(code)
            );
        }
        for text in [
            "",
            "ab",
            "a/b",
            "a b",
            "caf\u{e9}",
            "a%2Fb",
            "a.b",
            &"a".repeat(65),
        ] {
            assert_eq!(LinkCode::parse(text), None, "{text:?}");
        }
        assert!(LinkCode::parse("A1b2C3d4E5f").is_some_and(|c| c.is_generated()));
        assert!(LinkCode::parse("spring-sale").is_some_and(|c| !c.is_generated()));
    }

    #[test]
    fn tenant_names() {
        assert!(TenantId::named("acme-corp_1.eu").is_ok());
        for refused in ["", "a b", "~anonymous", "x/y", &"a".repeat(65)] {
            assert_eq!(
                TenantId::named(refused),
                Err(TenantNameError),
                "{refused:?}"
            );
        }
        assert!(TenantId::anonymous().is_anonymous());
        assert_eq!(TenantId::parse("~anonymous"), Ok(TenantId::anonymous()));
        assert_eq!(TenantId::parse("~other"), Err(TenantNameError));
        assert!(!TenantId::named("anonymous").expect("valid").is_anonymous());
    }
}
