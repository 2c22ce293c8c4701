//! Wall-clock helpers: storage keeps instants as Unix milliseconds (BIGINT on both
//! engines), the API speaks RFC 3339.

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch, now. Read on every redirect: straight from the
/// system clock, without a calendar conversion.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Converts stored milliseconds back into a timestamp for the API.
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_agrees_with_the_calendar_clock() {
        let before = Utc::now().timestamp_millis();
        let now = now_ms();
        assert!((before..before + 1000).contains(&now), "{before} {now}");
    }

    #[test]
    fn round_trips_milliseconds() {
        let ms = 1_767_225_600_123;
        assert_eq!(from_ms(ms).timestamp_millis(), ms);
    }
}
