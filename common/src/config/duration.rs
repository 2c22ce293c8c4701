//! Durations in configuration, written with their unit: `"300ms"`, `"20s"`, `"5m"`,
//! `"1h"`, `"1d"`, or parts of them together (`"1m30s"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, de};

const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn refuse(text: &str, why: &str) -> ParseError {
    ParseError(format!(
        "`{text}` is not a duration ({why}); write a number and a unit, such as \"300ms\", \"20s\", \"5m\", \"1h\" or \"1d\""
    ))
}

/// Parses `"1h"`, `"1m30s"`, `"250ms"`: whole numbers, each with a unit, largest first
/// or not. A bare number is refused: its unit would be a guess.
pub fn parse(text: &str) -> Result<Duration, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(refuse(text, "it is empty"));
    }
    let mut rest = trimmed;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(refuse(text, "each part starts with a whole number"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| refuse(text, "the number is too large"))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        if unit.is_empty() {
            return Err(refuse(text, "the unit is missing"));
        }
        let Some((_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(refuse(
                text,
                &format!("`{unit}` is not one of ms, s, m, h, d"),
            ));
        };
        total_ms = number
            .checked_mul(*scale)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| refuse(text, "it is too long"))?;
        rest = &rest[letters..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way [`parse`] reads it, in the largest unit that is exact.
pub fn format(duration: Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    let (name, scale) = UNITS
        .iter()
        .rev()
        .find(|(_, scale)| ms % scale == 0)
        .copied()
        .unwrap_or(("ms", 1));
    format!("{}{name}", ms / scale)
}

/// `#[serde(deserialize_with = "…")]` for a [`Duration`] field.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct Visitor;
    impl de::Visitor<'_> for Visitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration with its unit, such as \"300ms\" or \"5m\"")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            parse(text).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Err(E::custom(refuse(&n.to_string(), "the unit is missing")))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            Err(E::custom(refuse(&n.to_string(), "the unit is missing")))
        }
    }
    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_combinations() {
        let ms = |n| Duration::from_millis(n);
        for (text, want) in [
            ("300ms", ms(300)),
            ("20s", ms(20_000)),
            ("5m", ms(300_000)),
            ("1h", ms(3_600_000)),
            ("2d", ms(172_800_000)),
            ("1m30s", ms(90_000)),
            ("1h0m", ms(3_600_000)),
            (" 0s ", ms(0)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_it_would_have_to_guess() {
        for text in [
            "",
            "300",
            "5 m",
            "1.5s",
            "-1s",
            "5min",
            "s",
            "1h 30m",
            "99999999999999999999s",
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains("\"300ms\""), "{text}: {err}");
        }
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        for (ms, text) in [
            (0, "0s"),
            (150, "150ms"),
            (2000, "2s"),
            (90_000, "90s"),
            (300_000, "5m"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
        ] {
            assert_eq!(format(Duration::from_millis(ms)), text);
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)));
        }
    }
}
