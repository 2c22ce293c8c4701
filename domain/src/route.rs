//! Redirect rules: which target one follow of a link gets. A link may hold ordered
//! rules (when the visitor's device, OS, preferred language or country match, the
//! rule's URL; the first match wins) and weighted variants (a split test, sticky per
//! visitor for the day); otherwise its own URL. The choice is made from the cached
//! entry and the request alone: choosing reads no storage.
//!
//! The rules for input live here too ([`parse_rules`], [`parse_variants`]): every
//! error names the element it is about (`rules[2].when.country`), so an API caller
//! fixes a list of twenty in one round trip.

use std::cell::OnceCell;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::{Agent, agent_of};
use crate::links::{LongUrl, UrlPolicy};

pub const MAX_RULES: usize = 20;
pub const MAX_VARIANTS: usize = 10;
/// Most values one `when` key lists.
pub const MAX_VALUES: usize = 20;

/// A visitor's kind of device, as their user agent tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Mobile,
    Tablet,
    Desktop,
    Bot,
}

/// A visitor's operating system, as their user agent tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Ios,
    Android,
    Windows,
    Macos,
    Linux,
    Chromeos,
}

const DEVICES: [(&str, Device); 4] = [
    ("mobile", Device::Mobile),
    ("tablet", Device::Tablet),
    ("desktop", Device::Desktop),
    ("bot", Device::Bot),
];

const SYSTEMS: [(&str, Os); 6] = [
    ("ios", Os::Ios),
    ("android", Os::Android),
    ("windows", Os::Windows),
    ("macos", Os::Macos),
    ("linux", Os::Linux),
    ("chromeos", Os::Chromeos),
];

/// What a rule tests. Each key present must match (one of its values); a rule tests
/// at least one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct When {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device: Vec<Device>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<Os>,
    /// Language tags (`de`, `pt-BR`), matched against the visitor's most preferred
    /// language: `de` matches `de` and `de-AT`, `pt-BR` only `pt-BR`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(example = json!(["de", "pt-BR"])))]
    pub language: Vec<String>,
    /// ISO 3166-1 alpha-2 country codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(example = json!(["DE", "AT"])))]
    pub country: Vec<String>,
}

/// Send visitors matching `when` to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub when: When,
    #[cfg_attr(feature = "openapi", schema(max_length = 2048))]
    pub url: String,
}

/// One arm of a split: `weight` percent of visitors go to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Variant {
    #[cfg_attr(feature = "openapi", schema(max_length = 2048))]
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub weight: u8,
}

/// How a link picks its target, beside its URL: stored with the link and carried in
/// its cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    /// Whether the visitor's query string is added to the target
    /// ([`crate::forward`]).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub forward_query: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The argon2id hash (PHC string) of the link's password; never the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_yes(value: &bool) -> bool {
    *value
}

impl Default for Routing {
    fn default() -> Routing {
        Routing {
            forward_query: true,
            rules: Vec::new(),
            variants: Vec::new(),
            password_hash: None,
        }
    }
}

impl Routing {
    /// Nothing beyond the link's URL with the query forwarded: what every link was
    /// before rules, stored as no value at all.
    pub fn is_plain(&self) -> bool {
        self == &Routing::default()
    }

    /// Approximate heap footprint, for the byte-bounded local cache.
    pub fn weight(&self) -> usize {
        let rules: usize = self
            .rules
            .iter()
            .map(|r| {
                std::mem::size_of::<Rule>()
                    + r.url.len()
                    + r.when.device.len()
                    + r.when.os.len()
                    + r.when.language.iter().map(|l| 24 + l.len()).sum::<usize>()
                    + r.when.country.len() * 26
            })
            .sum();
        let variants: usize = self
            .variants
            .iter()
            .map(|v| std::mem::size_of::<Variant>() + v.url.len())
            .sum();
        std::mem::size_of::<Routing>()
            + rules
            + variants
            + self.password_hash.as_ref().map_or(0, String::len)
    }

    /// Whether choosing needs more than the link's URL.
    pub fn chooses(&self) -> bool {
        !self.rules.is_empty() || !self.variants.is_empty()
    }

    /// The target for `visitor` of the link with id `link_id` (see [`Chooser::choose`]).
    pub fn choose(&self, link_id: i64, visitor: &Visitor<'_>) -> Choice {
        self.chooser().choose(link_id, visitor)
    }

    /// The rules and variants in the form a redirect tests them: every `when` as bit
    /// sets and spans of text, all rules in one allocation however many there are
    /// (a cached link's rules are read on every follow, and each scattered small
    /// allocation costs a cache miss).
    pub fn chooser(&self) -> Chooser {
        let rules = self.rules.len().min(MAX_RULES);
        let mut text = Vec::new();
        let tests: Vec<Test> = self
            .rules
            .iter()
            .take(rules)
            .map(|rule| {
                let when = &rule.when;
                let first_code = text.len();
                for code in &when.country {
                    if let [a, b] = code.as_bytes() {
                        text.extend([a.to_ascii_uppercase(), b.to_ascii_uppercase()]);
                    }
                }
                let countries = span(first_code, text.len());
                let first_tag = text.len();
                for tag in &when.language {
                    // A tag too long for its length byte is kept as an empty one,
                    // which no visitor's language matches, as none could match it.
                    match u8::try_from(tag.len()) {
                        Ok(len) => {
                            text.push(len);
                            text.extend_from_slice(tag.as_bytes());
                        }
                        Err(_) => text.push(0),
                    }
                }
                Test {
                    devices: when.device.iter().fold(0, |m, d| m | (1 << *d as u8)),
                    systems: when.os.iter().fold(0, |m, o| m | (1 << *o as u8)),
                    countries,
                    languages: span(first_tag, text.len()),
                }
            })
            .collect();
        let mut compiled = Vec::with_capacity(tests.len() * Test::BYTES + text.len());
        for test in &tests {
            test.write(&mut compiled);
        }
        compiled.extend_from_slice(&text);
        let mut weights = [0; MAX_VARIANTS];
        for (slot, variant) in weights.iter_mut().zip(&self.variants) {
            *slot = variant.weight;
        }
        Chooser {
            compiled: compiled.into_boxed_slice(),
            rules: rules as u8,
            variants: self.variants.len().min(MAX_VARIANTS) as u8,
            weights,
            asks_language: tests.iter().any(|t| t.languages.0 < t.languages.1),
            asks_country: tests.iter().any(|t| t.countries.0 < t.countries.1),
        }
    }
}

fn span(from: usize, to: usize) -> (u16, u16) {
    (
        u16::try_from(from).unwrap_or(u16::MAX),
        u16::try_from(to).unwrap_or(u16::MAX),
    )
}

/// One rule's `when`, compiled: a key left out is an empty set, which tests nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Test {
    /// Bit `1 << Device as u8` per device listed.
    devices: u8,
    /// Bit `1 << Os as u8` per system listed.
    systems: u8,
    /// The rule's countries in the chooser's text: two uppercase letters each.
    countries: (u16, u16),
    /// The rule's language tags in the chooser's text: each after a byte of its
    /// length.
    languages: (u16, u16),
}

impl Test {
    /// Its size in [`Chooser::compiled`].
    const BYTES: usize = 10;

    fn write(&self, out: &mut Vec<u8>) {
        out.extend([self.devices, self.systems]);
        for at in [
            self.countries.0,
            self.countries.1,
            self.languages.0,
            self.languages.1,
        ] {
            out.extend(at.to_le_bytes());
        }
    }

    fn read(bytes: &[u8]) -> Option<Test> {
        let &[devices, systems, c0, c1, c2, c3, l0, l1, l2, l3] = bytes else {
            return None;
        };
        let at = |lo, hi| u16::from_le_bytes([lo, hi]);
        Some(Test {
            devices,
            systems,
            countries: (at(c0, c1), at(c2, c3)),
            languages: (at(l0, l1), at(l2, l3)),
        })
    }
}

/// A routing's rules and variants as a redirect tests them ([`Routing::chooser`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chooser {
    /// The rules' tests ([`Test::BYTES`] each), then the countries and language
    /// tags they name: one allocation, usually one or two cache lines.
    compiled: Box<[u8]>,
    rules: u8,
    variants: u8,
    /// The variants' weights, the first `variants` of them.
    weights: [u8; MAX_VARIANTS],
    asks_language: bool,
    asks_country: bool,
}

impl Chooser {
    /// How many rules come before the variants (a variant's target index follows
    /// them).
    pub fn rules(&self) -> usize {
        usize::from(self.rules)
    }

    pub fn variants(&self) -> usize {
        usize::from(self.variants)
    }

    /// Approximate heap footprint, for the byte-bounded local cache.
    pub fn weight(&self) -> usize {
        self.compiled.len()
    }

    /// Whether some rule tests the visitor's preferred language (worth reading
    /// `Accept-Language`).
    pub fn asks_language(&self) -> bool {
        self.asks_language
    }

    /// Whether some rule tests the visitor's country (worth a GeoIP lookup).
    pub fn asks_country(&self) -> bool {
        self.asks_country
    }

    /// The target for `visitor` of the link with id `link_id`: the first rule that
    /// matches, else a variant (the same one for the same visitor all day, each
    /// link splitting on its own), else the link's URL.
    pub fn choose(&self, link_id: i64, visitor: &Visitor<'_>) -> Choice {
        let (tests, text) = self
            .compiled
            .split_at_checked(self.rules() * Test::BYTES)
            .unwrap_or_default();
        let seen = Seen::default();
        for (i, test) in tests.chunks_exact(Test::BYTES).enumerate() {
            if Test::read(test).is_some_and(|test| matches(&test, text, visitor, &seen)) {
                return Choice::Rule(i as u8);
            }
        }
        let weights = self.weights.get(..self.variants()).unwrap_or_default();
        if weights.is_empty() {
            return Choice::Url;
        }
        let bucket = (mix(visitor.sticky ^ link_id as u64) % 100) as u32;
        let mut upto = 0u32;
        for (i, weight) in weights.iter().enumerate() {
            upto += u32::from(*weight);
            if bucket < upto {
                return Choice::Variant(i as u8);
            }
        }
        Choice::Url
    }
}

/// Whether `visitor` passes `test`, whose countries and tags are in `text`.
fn matches<'a>(test: &Test, text: &[u8], visitor: &Visitor<'a>, seen: &Seen<'a>) -> bool {
    let agent = || *seen.agent.get_or_init(|| agent_of(visitor.user_agent));
    // A set bit per value listed; a visitor the agent names none of misses.
    let listed = |set: u8, bit: Option<u8>| bit.is_some_and(|b| set & (1 << b) != 0);
    if test.devices != 0 && !listed(test.devices, agent().0.map(|d| d as u8)) {
        return false;
    }
    if test.systems != 0 && !listed(test.systems, agent().1.map(|o| o as u8)) {
        return false;
    }
    let part = |(from, to): (u16, u16)| {
        text.get(usize::from(from)..usize::from(to))
            .unwrap_or_default()
    };
    let tags = part(test.languages);
    if !tags.is_empty() {
        let preferred = *seen
            .language
            .get_or_init(|| preferred_language(visitor.accept_language));
        if !preferred.is_some_and(|p| each_tag(tags).any(|tag| language_matches(tag, p))) {
            return false;
        }
    }
    let codes = part(test.countries);
    if !codes.is_empty() {
        let asked = visitor.country.map(str::as_bytes);
        let matched = asked.is_some_and(|c| {
            c.len() == 2
                && codes
                    .chunks_exact(2)
                    .any(|code| code.eq_ignore_ascii_case(c))
        });
        if !matched {
            return false;
        }
    }
    true
}

/// The tags of a [`Test::languages`] span, each stored after a byte of its length.
fn each_tag(mut tags: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (&len, rest) = tags.split_first()?;
        let (tag, rest) = rest.split_at_checked(usize::from(len))?;
        tags = rest;
        Some(tag)
    })
}

/// A 64-bit finaliser (SplitMix64's): spreads a visitor hash evenly over buckets.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// What answered a follow: the link's URL, a rule or a variant (by index). Stats
/// file clicks under [`Choice::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    Url,
    Rule(u8),
    Variant(u8),
}

impl Choice {
    /// `url`, `rules[i]` or `variants[i]`: the names the API gives them.
    pub fn label(self) -> String {
        self.to_string()
    }

    /// Reads a [`Choice::label`] back.
    pub fn parse(label: &str) -> Option<Choice> {
        if label == "url" {
            return Some(Choice::Url);
        }
        let index = |rest: &str| rest.strip_suffix(']')?.parse::<u8>().ok();
        if let Some(rest) = label.strip_prefix("rules[") {
            return index(rest).map(Choice::Rule);
        }
        label
            .strip_prefix("variants[")
            .and_then(index)
            .map(Choice::Variant)
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Choice::Url => f.write_str("url"),
            Choice::Rule(i) => write!(f, "rules[{i}]"),
            Choice::Variant(i) => write!(f, "variants[{i}]"),
        }
    }
}

/// What the redirect knows of a visitor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Visitor<'a> {
    pub user_agent: &'a str,
    /// The `Accept-Language` header as sent.
    pub accept_language: &'a str,
    /// Two uppercase letters, from the edge's header or the GeoIP database.
    pub country: Option<&'a str>,
    /// The same for the same visitor all day (the daily visitor hash).
    pub sticky: u64,
}

/// What one choice has worked out about the visitor so far: each is worked out at
/// most once, and only when some rule asks.
#[derive(Default)]
struct Seen<'a> {
    agent: OnceCell<Agent>,
    language: OnceCell<Option<&'a str>>,
}

/// `tag` (as a rule holds it) matches the visitor's `preferred` language: the same
/// tag, or `preferred` is a narrower form of it (`de` matches `de-AT`).
fn language_matches(tag: &[u8], preferred: &str) -> bool {
    let preferred = preferred.as_bytes();
    match preferred.get(..tag.len()) {
        Some(head) if head.eq_ignore_ascii_case(tag) => {
            preferred.get(tag.len()).is_none_or(|b| *b == b'-')
        }
        _ => false,
    }
}

/// The visitor's most preferred language in an `Accept-Language` header: the tag of
/// the highest weight, the first of equal weights; `*` and weight 0 never count.
pub fn preferred_language(header: &str) -> Option<&str> {
    let mut best: Option<(&str, u16)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        if tag.is_empty() || tag == "*" || !is_language_tag(tag) {
            continue;
        }
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), quality);
        let Some(weight) = weight.filter(|w| *w > 0) else {
            continue;
        };
        // Nothing weighs more than 1: the first tag of full weight is the answer
        // (what browsers send first), and the rest need not be read.
        if weight == 1000 {
            return Some(tag);
        }
        if best.is_none_or(|(_, w)| weight > w) {
            best = Some((tag, weight));
        }
    }
    best.map(|(tag, _)| tag)
}

/// A `q` value in thousandths (`0.8` → 800); `None` when it is not one.
fn quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// Longest language tag taken: what RFC 5646 asks every implementation to hold.
const MAX_TAG: usize = 35;

/// A language tag as rules take them: a 2–3 letter language, then subtags of 1–8
/// letters or digits (`de`, `pt-BR`, `zh-Hant-TW`), at most [`MAX_TAG`] in all.
fn is_language_tag(tag: &str) -> bool {
    if tag.len() > MAX_TAG {
        return false;
    }
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or_default();
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The ISO 3166-1 alpha-2 codes assigned to countries and territories.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI \
BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ \
GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN \
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS \
MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT \
PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF \
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Whether `code` (two letters, any case) is an assigned ISO 3166-1 alpha-2 code.
pub fn is_country(code: &str) -> bool {
    code.len() == 2
        && code.bytes().all(|b| b.is_ascii_alphabetic())
        && COUNTRIES.split(' ').any(|c| c.eq_ignore_ascii_case(code))
}

/// Errors found in a list, each with the path of the element it is about
/// (`rules[2].when.os`).
pub type ListErrors = Vec<(String, String)>;

fn check_target(input: &Value, at: &str, policy: &UrlPolicy, errors: &mut ListErrors) -> String {
    match input.as_str().map(|url| LongUrl::parse(url, policy)) {
        Some(Ok(url)) => url.into_string(),
        Some(Err(e)) => {
            errors.push((at.to_string(), e.to_string()));
            String::new()
        }
        None => {
            errors.push((at.to_string(), "must be a URL (a string)".into()));
            String::new()
        }
    }
}

/// The fields of an element object, or an error for anything else.
fn fields<'v>(
    value: &'v Value,
    at: &str,
    known: &[&str],
    errors: &mut ListErrors,
) -> Option<&'v serde_json::Map<String, Value>> {
    let Some(object) = value.as_object() else {
        errors.push((at.to_string(), "must be an object".into()));
        return None;
    };
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push((
            format!("{at}.{key}"),
            format!("unknown key; expected {}", known.join(", ")),
        ));
    }
    Some(object)
}

/// The values of one `when` key: one string or a list of them.
fn strings<'v>(value: &'v Value, at: &str, errors: &mut ListErrors) -> Vec<&'v str> {
    let list: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if list.is_empty() || list.len() > MAX_VALUES {
        errors.push((at.to_string(), format!("list 1–{MAX_VALUES} values")));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        match item.as_str() {
            Some(text) => out.push(text),
            None => {
                errors.push((at.to_string(), "values are strings".into()));
                return Vec::new();
            }
        }
    }
    out
}

fn named<T: Copy + PartialEq>(
    value: &Value,
    at: &str,
    names: &[(&str, T)],
    errors: &mut ListErrors,
) -> Vec<T> {
    let mut out = Vec::new();
    for text in strings(value, at, errors) {
        match names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
        {
            Some((_, value)) if !out.contains(value) => out.push(*value),
            Some(_) => {}
            None => {
                let expected: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                errors.push((
                    at.to_string(),
                    format!("`{text}` is not one of {}", expected.join(", ")),
                ));
            }
        }
    }
    out
}

fn parse_when(value: &Value, at: &str, errors: &mut ListErrors) -> When {
    let mut when = When::default();
    let Some(object) = fields(value, at, &["device", "os", "language", "country"], errors) else {
        return when;
    };
    if object.is_empty() {
        errors.push((
            at.to_string(),
            "test at least one of device, os, language, country".into(),
        ));
    }
    if let Some(v) = object.get("device") {
        when.device = named(v, &format!("{at}.device"), &DEVICES, errors);
    }
    if let Some(v) = object.get("os") {
        when.os = named(v, &format!("{at}.os"), &SYSTEMS, errors);
    }
    if let Some(v) = object.get("language") {
        when.language = codes(
            v,
            &format!("{at}.language"),
            errors,
            (is_language_tag, str::to_string),
            "a language tag like `de` or `pt-BR` (at most 35 characters)",
        );
    }
    if let Some(v) = object.get("country") {
        when.country = codes(
            v,
            &format!("{at}.country"),
            errors,
            (is_country, str::to_ascii_uppercase),
            "an ISO 3166-1 alpha-2 country code",
        );
    }
    when
}

/// Whether a `when` value is well formed, and how it is kept when it is.
type CodeRule = (fn(&str) -> bool, fn(&str) -> String);

/// The values of one `when` key that `rule.0` accepts, spelt by `rule.1`; each other
/// value is an error saying it is not `what`.
fn codes(
    value: &Value,
    at: &str,
    errors: &mut ListErrors,
    rule: CodeRule,
    what: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for text in strings(value, at, errors) {
        if rule.0(text) {
            out.push(rule.1(text));
        } else {
            errors.push((at.to_string(), format!("`{text}` is not {what}")));
        }
    }
    out
}

/// Reads a `rules` list: at most [`MAX_RULES`], each `{"when": {...}, "url": "..."}`
/// with a target that passes `policy` like a link's `url`.
pub fn parse_rules(items: &[Value], policy: &UrlPolicy) -> Result<Vec<Rule>, ListErrors> {
    let mut errors = ListErrors::new();
    if items.len() > MAX_RULES {
        errors.push(("rules".into(), format!("at most {MAX_RULES} rules")));
        return Err(errors);
    }
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("rules[{i}]");
        let Some(object) = fields(item, &at, &["when", "url"], &mut errors) else {
            continue;
        };
        let when = match object.get("when") {
            Some(when) => parse_when(when, &format!("{at}.when"), &mut errors),
            None => {
                errors.push((format!("{at}.when"), "required".into()));
                When::default()
            }
        };
        let url = check_target(
            object.get("url").unwrap_or(&Value::Null),
            &format!("{at}.url"),
            policy,
            &mut errors,
        );
        rules.push(Rule { when, url });
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Reads a `variants` list: at most [`MAX_VARIANTS`], each `{"url": "...",
/// "weight": 1..=100}`, the weights summing to 100.
pub fn parse_variants(items: &[Value], policy: &UrlPolicy) -> Result<Vec<Variant>, ListErrors> {
    let mut errors = ListErrors::new();
    if items.len() > MAX_VARIANTS {
        errors.push((
            "variants".into(),
            format!("at most {MAX_VARIANTS} variants"),
        ));
        return Err(errors);
    }
    let mut variants = Vec::with_capacity(items.len());
    let mut total = 0u32;
    for (i, item) in items.iter().enumerate() {
        let at = format!("variants[{i}]");
        let Some(object) = fields(item, &at, &["url", "weight"], &mut errors) else {
            continue;
        };
        let url = check_target(
            object.get("url").unwrap_or(&Value::Null),
            &format!("{at}.url"),
            policy,
            &mut errors,
        );
        let weight = object
            .get("weight")
            .and_then(Value::as_u64)
            .filter(|w| (1..=100).contains(w))
            .and_then(|w| u8::try_from(w).ok());
        match weight {
            Some(weight) => {
                total += u32::from(weight);
                variants.push(Variant { url, weight });
            }
            None => errors.push((
                format!("{at}.weight"),
                "must be a whole number from 1 to 100".into(),
            )),
        }
    }
    if errors.is_empty() && !variants.is_empty() && total != 100 {
        errors.push((
            "variants".into(),
            format!("weights sum to {total}; they must sum to 100"),
        ));
    }
    if errors.is_empty() {
        Ok(variants)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tests::{GOOGLEBOT, IPHONE, MAC, PIXEL};
    use serde_json::json;

    #[test]
    fn the_most_preferred_language_is_the_heaviest_first() {
        assert_eq!(preferred_language("da, en-gb;q=0.8, en;q=0.7"), Some("da"));
        assert_eq!(preferred_language("en;q=0.5, de-AT;q=0.9"), Some("de-AT"));
        assert_eq!(preferred_language("fr;q=0, *, it"), Some("it"));
        assert_eq!(preferred_language("en;q=0.8, fr;q=0.8"), Some("en"));
        assert_eq!(preferred_language(""), None);
        assert_eq!(preferred_language("*;q=1, 12;q=0.3"), None);
        assert!(language_matches(b"de", "de-AT"));
        assert!(language_matches(b"de", "DE"));
        assert!(language_matches(b"pt-BR", "pt-br"));
        assert!(!language_matches(b"pt-BR", "pt"));
        assert!(!language_matches(b"de", "dea"));
    }

    fn policy() -> UrlPolicy {
        UrlPolicy {
            own_hosts: vec!["sho.rt".into()],
            ..UrlPolicy::default()
        }
    }

    fn routing(rules: Value, variants: Value) -> Routing {
        Routing {
            rules: parse_rules(rules.as_array().expect("list"), &policy()).expect("rules"),
            variants: parse_variants(variants.as_array().expect("list"), &policy())
                .expect("variants"),
            ..Routing::default()
        }
    }

    #[test]
    fn the_first_matching_rule_wins_then_variants_then_the_url() {
        let routing = routing(
            json!([
                {"when": {"device": "bot"}, "url": "https://example.com/bots"},
                {"when": {"os": ["ios"], "language": "de"}, "url": "https://example.com/ios-de"},
                {"when": {"os": ["ios", "android"]}, "url": "https://example.com/app"},
                {"when": {"country": ["at", "CH"]}, "url": "https://example.com/alps"},
            ]),
            json!([]),
        );
        let visitor = |ua, lang, country| Visitor {
            user_agent: ua,
            accept_language: lang,
            country,
            sticky: 0,
        };
        assert_eq!(
            routing.choose(1, &visitor(GOOGLEBOT, "de", None)),
            Choice::Rule(0)
        );
        assert_eq!(
            routing.choose(1, &visitor(IPHONE, "de-DE,en;q=0.5", None)),
            Choice::Rule(1)
        );
        assert_eq!(
            routing.choose(1, &visitor(IPHONE, "en, de", None)),
            Choice::Rule(2)
        );
        assert_eq!(
            routing.choose(1, &visitor(PIXEL, "", None)),
            Choice::Rule(2)
        );
        assert_eq!(
            routing.choose(1, &visitor(MAC, "", Some("AT"))),
            Choice::Rule(3)
        );
        assert_eq!(
            routing.choose(1, &visitor(MAC, "", Some("DE"))),
            Choice::Url
        );
        assert_eq!(routing.choose(1, &visitor("", "", None)), Choice::Url);
        assert_eq!(routing.rules[2].url, "https://example.com/app");
        assert!(routing.chooser().asks_country());
    }

    #[test]
    fn a_tag_longer_than_any_language_matches_no_visitor() {
        // Refused as input (`MAX_TAG`), but a stored rule is read as it is.
        let long = format!("en{}", "-abcdefgh".repeat(30));
        assert!(!is_language_tag(&long));
        let routing = Routing {
            rules: vec![Rule {
                when: When {
                    language: vec![long],
                    ..When::default()
                },
                url: "https://example.com/long".into(),
            }],
            ..Routing::default()
        };
        let visitor = Visitor {
            accept_language: "en",
            ..Visitor::default()
        };
        assert_eq!(routing.choose(1, &visitor), Choice::Url);
        assert!(routing.chooser().asks_language());
    }

    #[test]
    fn variants_split_by_weight_and_stick_to_a_visitor() {
        let routing = routing(
            json!([]),
            json!([
                {"url": "https://example.com/a", "weight": 70},
                {"url": "https://example.com/b", "weight": 20},
                {"url": "https://example.com/c", "weight": 10},
            ]),
        );
        let mut counts = [0u32; 3];
        for visitor in 0..10_000u64 {
            let v = Visitor {
                sticky: crate::clicks::visitor_hash(&[7; 16], 0, None, &visitor.to_string()) as u64,
                ..Visitor::default()
            };
            let choice = routing.choose(42, &v);
            assert_eq!(routing.choose(42, &v), choice, "sticky");
            match choice {
                Choice::Variant(i) => counts[usize::from(i)] += 1,
                other => panic!("{other:?}"),
            }
        }
        for (count, share) in counts.iter().zip([7_000, 2_000, 1_000]) {
            assert!(count.abs_diff(share) <= 300, "{counts:?}");
        }
    }

    #[test]
    fn bad_elements_are_named_by_index() {
        let errors = parse_rules(
            &[
                json!({"when": {"device": "mobile"}, "url": "https://example.com/"}),
                json!({"when": {"planet": "mars"}, "url": "https://example.com/"}),
                json!({"when": {"language": "english", "country": "XX"}, "url": "ftp://x"}),
                json!({"when": {}, "url": "https://sho.rt/abc"}),
                json!("https://example.com/"),
            ],
            &policy(),
        )
        .expect_err("bad");
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "rules[1].when.planet",
                "rules[2].when.language",
                "rules[2].when.country",
                "rules[2].url",
                "rules[3].when",
                "rules[3].url",
                "rules[4]",
            ]
        );
        let too_many = vec![json!({"when": {"os": "ios"}, "url": "https://e.com/"}); 21];
        assert_eq!(
            parse_rules(&too_many, &policy()).expect_err("21")[0].0,
            "rules"
        );

        let errors = parse_variants(
            &[
                json!({"url": "https://example.com/a", "weight": 0}),
                json!({"url": "https://example.com/b", "weight": 50, "sticky": true}),
            ],
            &policy(),
        )
        .expect_err("bad");
        let paths: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["variants[0].weight", "variants[1].sticky"]);
        let errors = parse_variants(
            &[
                json!({"url": "https://example.com/a", "weight": 60}),
                json!({"url": "https://example.com/b", "weight": 30}),
            ],
            &policy(),
        )
        .expect_err("90");
        assert_eq!(errors[0].0, "variants");
        assert!(errors[0].1.contains("sum to 90"), "{errors:?}");
    }

    #[test]
    fn routing_reads_back_and_labels_round_trip() {
        let routing = routing(
            json!([{"when": {"device": ["mobile", "tablet"]}, "url": "https://example.com/m"}]),
            json!([{"url": "https://example.com/a", "weight": 100}]),
        );
        let text = serde_json::to_string(&routing).expect("json");
        assert_eq!(
            serde_json::from_str::<Routing>(&text).expect("back"),
            routing
        );
        assert_eq!(
            serde_json::to_string(&Routing::default()).expect("json"),
            "{}"
        );
        assert!(Routing::default().is_plain());
        for choice in [Choice::Url, Choice::Rule(19), Choice::Variant(3)] {
            assert_eq!(Choice::parse(&choice.label()), Some(choice));
        }
        assert_eq!(Choice::parse("rules[x]"), None);
        assert!(is_country("de") && !is_country("XX") && !is_country("DEU"));
    }
}
