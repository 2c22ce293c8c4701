//! Wall-clock helpers: storage keeps instants as Unix milliseconds (BIGINT on both
//! engines), the API speaks RFC 3339.

use chrono::{DateTime, TimeZone, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
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
    fn round_trips_milliseconds() {
        let ms = 1_767_225_600_123;
        assert_eq!(from_ms(ms).timestamp_millis(), ms);
    }
}
