//! Date-times on the wire.

use std::fmt::Write;

use chrono::{DateTime, Datelike, Timelike, Utc};

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
}
