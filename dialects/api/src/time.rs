//! Date-times on the wire.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

/// UTC to whole seconds with a `Z`, as Box and Json.NET write it:
/// `2020-07-22T11:26:08Z`. By hand: chrono's `format` parses its pattern on
/// every call, and this is on every create's path.
pub fn utc_seconds(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(20);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    out
}

/// `at + by`, held to the ends of `DateTime<Utc>`'s range (where a deadline
/// means "never"): a clock near the end of time plus an offset, or a
/// deadline from a huge `Duration`, must not panic every request that reads
/// it. The core's clock and job registry and the dialects all add this way.
pub fn saturating_add(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(if by < Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_strftime_form() {
        for text in [
            "2020-07-22T11:26:08.999Z",
            "0999-01-02T03:04:05Z",
            "2024-02-29T23:59:59Z",
        ] {
            let t = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(utc_seconds(t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }

    #[test]
    fn saturating_add_holds_to_the_ends_of_time() {
        let t = DateTime::<Utc>::MAX_UTC - Duration::days(1);
        assert_eq!(saturating_add(t, Duration::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            saturating_add(t, Duration::days(1)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            saturating_add(DateTime::<Utc>::MIN_UTC, Duration::MIN),
            DateTime::<Utc>::MIN_UTC
        );
        let start = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(
            saturating_add(start, Duration::seconds(5)),
            start + Duration::seconds(5)
        );
    }
}
