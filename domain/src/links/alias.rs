//! Custom aliases: the user-chosen short paths, checked so they cannot shadow routes or codes.

use thiserror::Error;

use crate::ids::looks_like_generated_code;

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 64;

/// Words an alias may not be, in any letter case, because they are (or may
/// become) paths of the service itself or of the edge in front of it.
pub const RESERVED_WORDS: &[&str] = &[
    "api",
    "admin",
    "assets",
    "docs",
    "favicon",
    "health",
    "healthz",
    "readyz",
    "livez",
    "metrics",
    "static",
    "stats",
    "login",
    "logout",
    "signup",
    "openapi",
    "swagger",
    "www",
    "robots",
    "sitemap",
    "well-known",
    "status",
    "help",
    "about",
    "terms",
    "privacy",
    "new",
    "links",
    "shortener",
];

/// Why a requested alias was refused; the messages are meant for the API caller.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AliasError {
    #[error("alias is too short: it needs at least {MIN_LEN} characters")]
    TooShort,
    #[error("alias is too long: it may have at most {MAX_LEN} characters")]
    TooLong,
    #[error(
        "alias contains the character {ch:?} at index {position}; only A-Z, a-z, 0-9, '_' and '-' are allowed"
    )]
    InvalidCharacter { ch: char, position: usize },
    #[error("alias {0:?} is a reserved word")]
    Reserved(&'static str),
    #[error(
        "aliases of exactly 11 letters and digits are reserved for generated codes; add a '-' or '_', or change the length"
    )]
    ReservedShape,
}

/// A validated custom alias.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Alias(String);

impl Alias {
    /// Checks, in order: length (3–64 characters), characters
    /// (`[A-Za-z0-9_-]`, first offender reported by 0-based index), reserved
    /// words (case-insensitive), and the generated-code shape.
    pub fn parse(input: &str) -> Result<Self, AliasError> {
        // Counting at most one past the limit keeps a huge input cheap.
        let len = input.chars().take(MAX_LEN + 1).count();
        if len < MIN_LEN {
            return Err(AliasError::TooShort);
        }
        if len > MAX_LEN {
            return Err(AliasError::TooLong);
        }
        if let Some((position, ch)) = input
            .chars()
            .enumerate()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(AliasError::InvalidCharacter { ch, position });
        }
        if let Some(word) = RESERVED_WORDS
            .iter()
            .find(|w| w.eq_ignore_ascii_case(input))
        {
            return Err(AliasError::Reserved(word));
        }
        if looks_like_generated_code(input) {
            return Err(AliasError::ReservedShape);
        }
        Ok(Self(input.to_owned()))
    }
}

crate::text_type!(Alias);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid_aliases() {
        for ok in [
            "abc",
            "my-link",
            "My_Link_2026",
            "a-b",
            "___",
            "---",
            "0123456789",
            "abcdefghij-",
            "abcdefghij_",
            "abcdefghijkl",
            "api2",
            "apis",
            "my-api",
            "well_known",
            &"x".repeat(64),
        ] {
            let alias = Alias::parse(ok).unwrap();
            assert_eq!(alias.as_str(), ok);
            assert_eq!(alias.to_string(), ok);
        }
    }

    #[test]
    fn length_limits() {
        assert_eq!(Alias::parse(""), Err(AliasError::TooShort));
        assert_eq!(Alias::parse("ab"), Err(AliasError::TooShort));
        assert_eq!(Alias::parse(&"x".repeat(65)), Err(AliasError::TooLong));
        assert_eq!(Alias::parse(&"x".repeat(100_000)), Err(AliasError::TooLong));
        // Length is counted in characters, so a short non-ASCII alias is
        // reported for its character, not its byte count.
        assert_eq!(Alias::parse("éé"), Err(AliasError::TooShort),);
        assert_eq!(
            Alias::parse("ééé"),
            Err(AliasError::InvalidCharacter {
                ch: 'é',
                position: 0
            })
        );
    }

    #[test]
    fn invalid_characters_are_located() {
        let cases = [
            ("my link", ' ', 2),
            ("a/b/c", '/', 1),
            ("abc.", '.', 3),
            ("abc\n", '\n', 3),
            ("ab\0c", '\0', 2),
            ("ab%2F", '%', 2),
            ("über", 'ü', 0),
            ("abc?x=1", '?', 3),
            ("..%2e", '.', 0),
        ];
        for (input, ch, position) in cases {
            assert_eq!(
                Alias::parse(input),
                Err(AliasError::InvalidCharacter { ch, position }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn reserved_words_in_any_case() {
        for word in RESERVED_WORDS {
            assert_eq!(Alias::parse(word), Err(AliasError::Reserved(word)));
            let upper = word.to_ascii_uppercase();
            assert_eq!(Alias::parse(&upper), Err(AliasError::Reserved(word)));
        }
        assert_eq!(
            Alias::parse("HeAlThZ"),
            Err(AliasError::Reserved("healthz"))
        );
        assert_eq!(
            Alias::parse("Well-Known"),
            Err(AliasError::Reserved("well-known"))
        );
    }

    #[test]
    fn generated_code_shape_is_refused() {
        assert_eq!(Alias::parse("AbCdEfGhIjK"), Err(AliasError::ReservedShape));
        assert_eq!(Alias::parse("00000000000"), Err(AliasError::ReservedShape));
        assert!(Alias::parse("AbCdE-GhIjK").is_ok());
        assert!(Alias::parse("AbCdEfGhIj").is_ok());
    }

    #[test]
    fn messages_are_readable() {
        assert_eq!(
            AliasError::InvalidCharacter {
                ch: ' ',
                position: 2
            }
            .to_string(),
            "alias contains the character ' ' at index 2; only A-Z, a-z, 0-9, '_' and '-' are allowed"
        );
        assert_eq!(
            AliasError::Reserved("api").to_string(),
            "alias \"api\" is a reserved word"
        );
        assert_eq!(
            AliasError::TooShort.to_string(),
            "alias is too short: it needs at least 3 characters"
        );
    }

    #[test]
    fn serializes_as_string() {
        let alias = Alias::parse("my-link").unwrap();
        assert_eq!(serde_json::to_string(&alias).unwrap(), "\"my-link\"");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_accepted_aliases_obey_the_rules(s in any::<String>()) {
            if let Ok(alias) = Alias::parse(&s) {
                let a = alias.as_str();
                prop_assert_eq!(a, s.as_str());
                prop_assert!((MIN_LEN..=MAX_LEN).contains(&a.len()));
                prop_assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
                prop_assert!(!looks_like_generated_code(a));
            }
        }

        #[test]
        fn well_formed_aliases_are_accepted_unless_reserved(s in "[A-Za-z0-9_-]{3,64}") {
            let reserved = RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(&s));
            match Alias::parse(&s) {
                Ok(alias) => prop_assert_eq!(alias.as_str(), s.as_str()),
                Err(AliasError::Reserved(_)) => prop_assert!(reserved),
                Err(AliasError::ReservedShape) => prop_assert!(looks_like_generated_code(&s)),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
