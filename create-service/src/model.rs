//! Request and response bodies of the link API, and their validation into records.
//!
//! Bodies deny unknown fields: a misspelt `expires_at` must be an error, not a link
//! that never expires. They are JSON objects only (see [`object_only`]). Validation
//! collects every field error before answering, so a client fixes its request in one
//! round trip.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};
use common::db::domains::DomainRecord;
use common::db::links::{LinkRecord, LinkState, RedirectStatus};
use common::domain::route::{ListErrors, Rule, Variant, parse_rules, parse_variants};
use common::links::{Alias, DomainName, LongUrl, UrlPolicy};
use common::problem::Problem;
use common::time::from_ms;
use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use utoipa::ToSchema;

pub const MAX_TAGS: usize = 20;
pub const MAX_TAG_LEN: usize = 64;

/// `POST /api/v1/links`, and each item of a bulk request.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct CreateLinkRequest {
    /// Destination: an http(s) URL of at most 2048 bytes.
    #[schema(
        example = "https://example.com/a/long/path?q=1",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?:",
        max_length = 2048
    )]
    pub url: String,
    /// Custom code: 3–64 characters of `[A-Za-z0-9_-]`, not a reserved word, and not
    /// 11 letters and digits (the shape of generated codes).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$")]
    pub alias: Option<String>,
    /// When the link stops redirecting (answers 410). Must be in the future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Redirect at most this many times, then answer 410.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_visits: Option<u64>,
    /// 301, 302 (default), 307 or 308.
    #[serde(default)]
    #[schema(minimum = 301, maximum = 308)]
    pub redirect_status: Option<u16>,
    /// At most 20 tags of 1–64 characters each.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
    /// The domain the link is served on: one of the caller's domains, or the default
    /// domain (the host of the service's public URL), which is also what an absent
    /// `domain` means.
    #[serde(default)]
    #[schema(example = "go.acme.com", max_length = 253)]
    pub domain: Option<String>,
    /// Whether the visitor's query string is added to the target (the target's own
    /// parameters win); absent: the domain's default, which is `true` unless its
    /// owner changed it.
    #[serde(default)]
    pub forward_query: Option<bool>,
    /// At most 20 rules, tried in order on every follow: the first whose `when`
    /// matches the visitor sends them to its `url`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Rule>>, max_items = 20)]
    pub rules: Option<Vec<Value>>,
    /// At most 10 targets splitting the visitors no rule matched, by weights that
    /// sum to 100; a visitor keeps their variant all day.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Variant>>, max_items = 10)]
    pub variants: Option<Vec<Value>>,
    /// Ask visitors for this password (8–128 characters) before redirecting them.
    /// Stored as an argon2id hash; never shown again.
    // Left out of the idempotency fingerprint, which is a plain digest of the body: a
    // fast hash of the password must not sit beside its argon2id one.
    #[serde(default, skip_serializing)]
    #[schema(write_only, min_length = 8, max_length = 128)]
    pub password: Option<String>,
    /// `true`: answer with the caller's live link to the same `url` with the same
    /// options (200) if there is one, instead of making a new one (201). A link with
    /// a password is never reused.
    #[serde(default)]
    pub reuse: Option<bool>,
}

/// `PATCH /api/v1/links/{code}`: absent fields stay as they are; `null` clears
/// `expires_at` and `max_visits`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, remote = "Self")]
pub struct UpdateLinkRequest {
    #[serde(default)]
    #[schema(pattern = "^[Hh][Tt][Tt][Pp][Ss]?:", max_length = 2048)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub max_visits: Option<Option<u64>>,
    #[serde(default)]
    #[schema(minimum = 301, maximum = 308)]
    pub redirect_status: Option<u16>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
    /// `true` stops the link redirecting (410) without deleting it.
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub forward_query: Option<bool>,
    /// The new rules, replacing the old; `[]` removes them all.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Rule>>, max_items = 20)]
    pub rules: Option<Vec<Value>>,
    /// The new variants, replacing the old; `[]` ends the split.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Variant>>, max_items = 10)]
    pub variants: Option<Vec<Value>>,
    /// A new password (8–128 characters); `null` removes the protection.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, write_only, min_length = 8, max_length = 128)]
    pub password: Option<Option<String>>,
}

/// A request body read by its derived `Deserialize`, which `#[serde(remote = "Self")]`
/// turns into an inherent function so that [`object_only`] can wrap it.
pub(crate) trait Fields<'de>: Sized {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Reads a body that must be a JSON object. The derived `Deserialize` of a struct also
/// takes an array of its fields in declaration order, so `["https://…"]` would pass
/// for `{"url": "https://…"}` and `[]` for an empty edit: no client means that, and
/// the OpenAPI document allows objects only.
pub(crate) fn object_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Fields<'de>,
{
    struct ObjectOnly<T>(PhantomData<T>);

    impl<'de, T: Fields<'de>> Visitor<'de> for ObjectOnly<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::from_fields(map)
        }
    }

    deserializer.deserialize_map(ObjectOnly(PhantomData))
}

// In these impls, `Type::deserialize` and `Type::serialize` name the inherent
// functions that the derives generate under `remote = "Self"`, not the trait methods.
impl<'de> Fields<'de> for CreateLinkRequest {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        CreateLinkRequest::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for CreateLinkRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

impl Serialize for CreateLinkRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        CreateLinkRequest::serialize(self, serializer)
    }
}

impl<'de> Fields<'de> for UpdateLinkRequest {
    fn from_fields<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        UpdateLinkRequest::deserialize(MapAccessDeserializer::new(map))
    }
}

impl<'de> Deserialize<'de> for UpdateLinkRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        object_only(deserializer)
    }
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`).
pub(crate) fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A link as the API shows it to its owner.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkView {
    /// Snowflake id, as a string (it does not fit a JSON double).
    pub id: String,
    /// The host the link is served on (the default domain's, for links without a
    /// branded domain).
    pub domain: String,
    pub code: String,
    pub short_url: String,
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub max_visits: Option<i64>,
    #[schema(value_type = u16, minimum = 301, maximum = 308)]
    pub redirect_status: RedirectStatus,
    pub tags: Vec<String>,
    pub state: LinkState,
    pub forward_query: bool,
    pub rules: Vec<Rule>,
    pub variants: Vec<Variant>,
    /// Whether visitors are asked for a password (which is never shown).
    pub password_protected: bool,
}

/// The short URL of `code` on `site`, or (`None`) on the default domain served at
/// `base_url`.
pub fn short_url(base_url: &str, site: Option<&DomainRecord>, code: &str) -> String {
    match site {
        None => format!("{base_url}/{code}"),
        Some(site) => site.settings.short_url(site.name.as_str(), code),
    }
}

impl LinkView {
    /// The owner's view of `record`, which is on `site`; links without a branded
    /// domain are on `default_domain`, served at `base_url`.
    pub fn on(
        record: &LinkRecord,
        site: Option<&DomainRecord>,
        default_domain: &str,
        base_url: &str,
        now_ms: i64,
    ) -> LinkView {
        let domain = match &record.domain {
            Some(name) => name.to_string(),
            None => default_domain.to_string(),
        };
        let short_url = short_url(base_url, site, record.code.as_str());
        LinkView::from_record(record, domain, short_url, now_ms)
    }

    pub fn from_record(
        record: &LinkRecord,
        domain: String,
        short_url: String,
        now_ms: i64,
    ) -> LinkView {
        LinkView {
            id: record.id.to_string(),
            domain,
            code: record.code.to_string(),
            short_url,
            url: record.url.clone(),
            created_at: from_ms(record.created_at),
            updated_at: from_ms(record.updated_at),
            expires_at: record.expires_at.map(from_ms),
            max_visits: record.max_visits,
            redirect_status: record.redirect_status,
            tags: record.tags.clone(),
            state: record.state_at(now_ms),
            forward_query: record.routing.forward_query,
            rules: record.routing.rules.clone(),
            variants: record.routing.variants.clone(),
            password_protected: record.routing.password_hash.is_some(),
        }
    }
}

/// One page of `GET /api/v1/links`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkPage {
    pub items: Vec<LinkView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The validated fields of a new link, ready for an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidLink {
    pub url: LongUrl,
    pub alias: Option<Alias>,
    /// The domain named, as written well; whether the caller holds it is the
    /// handler's question (`None`: the default domain).
    pub domain: Option<DomainName>,
    pub expires_at: Option<i64>,
    pub max_visits: Option<i64>,
    /// `None`: the domain's default.
    pub redirect_status: Option<RedirectStatus>,
    pub tags: Vec<String>,
    /// `None`: the domain's default.
    pub forward_query: Option<bool>,
    pub rules: Vec<Rule>,
    pub variants: Vec<Variant>,
    pub password: Option<Password>,
}

impl ValidLink {
    /// The redirect status the link gets on `site`: its own, else the domain's.
    pub fn redirect_status_on(&self, site: Option<&DomainRecord>) -> RedirectStatus {
        self.redirect_status
            .or(site.map(|s| s.settings.redirect_status))
            .unwrap_or_default()
    }

    /// Whether the link forwards the visitor's query on `site`: its own say, else the
    /// domain's.
    pub fn forward_query_on(&self, site: Option<&DomainRecord>) -> bool {
        self.forward_query
            .or(site.map(|s| s.settings.forward_query))
            .unwrap_or(true)
    }
}

/// A new link's password: as the API takes it, or already hashed (an import of an
/// export).
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    Plain(String),
    Hashed(String),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

fn check_password(password: &str, errors: &mut FieldErrors) -> Option<Password> {
    match common::passwords::check(password) {
        Ok(()) => Some(Password::Plain(password.to_string())),
        Err(message) => {
            errors.push("password", message);
            None
        }
    }
}

/// Field errors collected while validating one body, each naming its field, or the
/// element of a list (`rules[2].when.os`).
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<(Cow<'static, str>, String)>);

impl FieldErrors {
    pub(crate) fn push(&mut self, field: impl Into<Cow<'static, str>>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    /// The errors of a list's elements, by their paths.
    pub(crate) fn extend(&mut self, errors: ListErrors) {
        self.0.extend(
            errors
                .into_iter()
                .map(|(at, message)| (Cow::Owned(at), message)),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One problem naming every bad field; its type names the first.
    pub fn into_problem(self) -> Problem {
        self.into_problem_titled("Invalid link")
    }

    /// [`FieldErrors::into_problem`] under another title.
    pub fn into_problem_titled(self, title: &'static str) -> Problem {
        // The slug names the field, not the element: `rules[2].url` is
        // `invalid-rules`.
        let first = self
            .0
            .first()
            .and_then(|(f, _)| f.split(['[', '.']).next())
            .unwrap_or("body");
        let detail = self
            .0
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        let slug = format!("invalid-{}", first.replace('_', "-"));
        let mut problem =
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, &slug, title).detail(detail);
        for (field, message) in self.0 {
            problem = problem.field(field, message);
        }
        problem
    }
}

pub(crate) fn check_url(
    input: &str,
    policy: &UrlPolicy,
    errors: &mut FieldErrors,
) -> Option<LongUrl> {
    LongUrl::parse(input, policy)
        .map_err(|e| errors.push("url", e.to_string()))
        .ok()
}

fn check_expiry(at: DateTime<Utc>, now_ms: i64, errors: &mut FieldErrors) -> Option<i64> {
    let ms = at.timestamp_millis();
    if ms <= now_ms {
        errors.push("expires_at", "must be in the future");
        None
    } else {
        Some(ms)
    }
}

fn check_max_visits(n: u64, errors: &mut FieldErrors) -> Option<i64> {
    match i64::try_from(n) {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            errors.push("max_visits", format!("must be between 1 and {}", i64::MAX));
            None
        }
    }
}

pub(crate) fn check_status(status: u16, errors: &mut FieldErrors) -> Option<RedirectStatus> {
    let status = RedirectStatus::from_code(status);
    if status.is_none() {
        errors.push("redirect_status", "must be one of 301, 302, 307, 308");
    }
    status
}

fn check_tags(tags: &[String], errors: &mut FieldErrors) -> Option<Vec<String>> {
    if tags.len() > MAX_TAGS {
        errors.push("tags", format!("at most {MAX_TAGS} tags"));
        return None;
    }
    let mut clean: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let len = tag.chars().count();
        if len == 0 || len > MAX_TAG_LEN || tag.chars().any(char::is_control) {
            errors.push(
                "tags",
                format!("each tag is 1–{MAX_TAG_LEN} characters without control characters"),
            );
            return None;
        }
        if !clean.contains(tag) {
            clean.push(tag.clone());
        }
    }
    Some(clean)
}

/// A `rules` or `variants` list read by `parse`, its errors added to `errors`.
fn check_list<T>(
    items: Option<&[Value]>,
    policy: &UrlPolicy,
    parse: fn(&[Value], &UrlPolicy) -> Result<Vec<T>, ListErrors>,
    errors: &mut FieldErrors,
) -> Option<Vec<T>> {
    match parse(items?, policy) {
        Ok(list) => Some(list),
        Err(list_errors) => {
            errors.extend(list_errors);
            None
        }
    }
}

impl CreateLinkRequest {
    /// Checks every field; `Err` lists each broken rule.
    pub fn validate(&self, policy: &UrlPolicy, now_ms: i64) -> Result<ValidLink, FieldErrors> {
        let mut errors = FieldErrors::default();
        let url = check_url(&self.url, policy, &mut errors);
        let alias = match &self.alias {
            Some(a) => match Alias::parse(a) {
                Ok(alias) => Some(alias),
                Err(e) => {
                    errors.push("alias", e.to_string());
                    None
                }
            },
            None => None,
        };
        let expires_at = self
            .expires_at
            .and_then(|at| check_expiry(at, now_ms, &mut errors));
        let max_visits = self
            .max_visits
            .and_then(|n| check_max_visits(n, &mut errors));
        let redirect_status = self
            .redirect_status
            .map(|status| check_status(status, &mut errors));
        let tags = check_tags(self.tags.as_deref().unwrap_or_default(), &mut errors);
        let domain = match &self.domain {
            Some(name) => match DomainName::parse(name) {
                Ok(name) => Some(name),
                Err(e) => {
                    errors.push("domain", e.to_string());
                    None
                }
            },
            None => None,
        };
        let rules = check_list(self.rules.as_deref(), policy, parse_rules, &mut errors);
        let variants = check_list(
            self.variants.as_deref(),
            policy,
            parse_variants,
            &mut errors,
        );
        let password = self
            .password
            .as_deref()
            .and_then(|p| check_password(p, &mut errors));
        match (url, redirect_status, tags) {
            (Some(url), None | Some(Some(_)), Some(tags)) if errors.is_empty() => Ok(ValidLink {
                url,
                alias,
                domain,
                expires_at,
                max_visits,
                redirect_status: redirect_status.flatten(),
                tags,
                forward_query: self.forward_query,
                rules: rules.unwrap_or_default(),
                variants: variants.unwrap_or_default(),
                password,
            }),
            _ => Err(errors),
        }
    }
}

impl UpdateLinkRequest {
    /// Applies the request to `record` (validated field by field).
    pub fn apply(
        &self,
        record: &LinkRecord,
        policy: &UrlPolicy,
        now_ms: i64,
    ) -> Result<LinkRecord, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut next = record.clone();
        if let Some(url) = &self.url
            && let Some(url) = check_url(url, policy, &mut errors)
        {
            next.url = url.into_string();
        }
        match self.expires_at {
            Some(Some(at)) => next.expires_at = check_expiry(at, now_ms, &mut errors),
            Some(None) => next.expires_at = None,
            None => {}
        }
        match self.max_visits {
            Some(Some(n)) => next.max_visits = check_max_visits(n, &mut errors),
            Some(None) => next.max_visits = None,
            None => {}
        }
        if let Some(status) = self.redirect_status
            && let Some(status) = check_status(status, &mut errors)
        {
            next.redirect_status = status;
        }
        if let Some(tags) = &self.tags
            && let Some(tags) = check_tags(tags, &mut errors)
        {
            next.tags = tags;
        }
        match self.disabled {
            Some(true) if next.disabled_at.is_none() => next.disabled_at = Some(now_ms),
            Some(false) => next.disabled_at = None,
            _ => {}
        }
        if let Some(forward) = self.forward_query {
            next.routing.forward_query = forward;
        }
        if let Some(rules) = check_list(self.rules.as_deref(), policy, parse_rules, &mut errors) {
            next.routing.rules = rules;
        }
        if let Some(variants) = check_list(
            self.variants.as_deref(),
            policy,
            parse_variants,
            &mut errors,
        ) {
            next.routing.variants = variants;
        }
        // A new password is checked here and hashed by the caller, off the async
        // workers; `null` removes the protection.
        match &self.password {
            Some(Some(password)) => {
                check_password(password, &mut errors);
            }
            Some(None) => next.routing.password_hash = None,
            None => {}
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Strictly later than the version it replaces, even within one millisecond,
        // so the optimistic check in the store can tell versions apart.
        next.updated_at = now_ms.max(record.updated_at + 1);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> UrlPolicy {
        UrlPolicy {
            own_hosts: vec!["sho.rt".into()],
            ..UrlPolicy::default()
        }
    }

    fn request(url: &str) -> CreateLinkRequest {
        CreateLinkRequest {
            url: url.into(),
            alias: None,
            expires_at: None,
            max_visits: None,
            redirect_status: None,
            tags: None,
            domain: None,
            forward_query: None,
            rules: None,
            variants: None,
            password: None,
            reuse: None,
        }
    }

    #[test]
    fn collects_every_field_error() {
        let mut r = request("javascript:alert(1)");
        r.alias = Some("a".into());
        r.redirect_status = Some(303);
        r.max_visits = Some(0);
        let errors = r.validate(&policy(), 0).expect_err("invalid");
        let problem = errors.into_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.kind, "/problems/invalid-url");
        let fields: Vec<_> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "alias", "max_visits", "redirect_status"]);
    }

    #[test]
    fn defaults_and_tag_dedup() {
        let mut r = request("https://example.com/x");
        r.tags = Some(vec!["a".into(), "b".into(), "a".into()]);
        let valid = r.validate(&policy(), 0).expect("valid");
        assert_eq!(
            valid.redirect_status, None,
            "the domain's default, decided later"
        );
        assert_eq!(valid.tags, ["a", "b"]);
    }

    #[test]
    fn bodies_are_objects_only() {
        let create: CreateLinkRequest =
            serde_json::from_str(r#"{"url": "https://example.com/", "tags": ["a"]}"#)
                .expect("object");
        assert_eq!(create.url, "https://example.com/");
        assert_eq!(create.tags.as_deref(), Some(&["a".to_string()][..]));
        // What the derive alone would take: the fields in declaration order.
        for array in [r#"["https://example.com/"]"#, "[]"] {
            let err = serde_json::from_str::<CreateLinkRequest>(array).expect_err(array);
            assert!(err.is_data(), "{array}: {err}");
            assert!(err.to_string().contains("expected a JSON object"), "{err}");
            let err = serde_json::from_str::<UpdateLinkRequest>(array).expect_err(array);
            assert!(err.is_data(), "{array}: {err}");
        }
        // Unknown fields are still refused, through the wrapper.
        let err = serde_json::from_str::<CreateLinkRequest>(r#"{"url": "x", "urll": "y"}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `urll`"), "{err}");
        // The idempotency fingerprint is the same object form.
        let json = serde_json::to_value(&create).expect("serialises");
        assert_eq!(json["url"], "https://example.com/");
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let absent: UpdateLinkRequest = serde_json::from_str("{}").expect("json");
        assert_eq!(absent.expires_at, None);
        let null: UpdateLinkRequest =
            serde_json::from_str(r#"{"expires_at": null}"#).expect("json");
        assert_eq!(null.expires_at, Some(None));
    }
}
