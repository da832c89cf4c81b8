//! Reading `--set DIALECT.KEY=VALUE` values, the same way in every dialect:
//! each value is range-checked when the server starts, and a refusal names
//! the setting, what it takes and what it got. Before this, each dialect
//! turned numbers into durations itself, unchecked: a TTL too large for
//! chrono's `Duration` panicked at start, and one that fit but pushed an
//! expiry past `DateTime<Utc>`'s range panicked on every create.

use chrono::Duration;

use crate::{Compression, Pacing, Settings};

/// The longest duration any setting takes (TTLs, retention, time pacing):
/// 100 years of 365.25 days. Why this bound: the server's clock is the wall
/// clock plus at most about 292 years (the control plane's advance saturates
/// at `i64::MAX` nanoseconds), so the latest expiry the server can compute
/// is around the year 2420, far inside `DateTime<Utc>`'s range (year
/// 262,143), and a century is "never" for any test run.
pub const MAX_DURATION_SECS: u64 = 3_155_760_000;

/// The largest byte size a setting takes: 2^62, the most content a fixture
/// may hold, so a larger limit could never be reached and is a typo.
pub const MAX_SIZE_BYTES: u64 = 1 << 62;

/// The largest count a setting takes (files, concurrent downloads), as the
/// server's own caps (`--max-jobs`) allow.
pub const MAX_COUNT: u64 = u32::MAX as u64;

/// One `DIALECT.KEY=VALUE` setting being read.
#[derive(Clone, Copy, Debug)]
pub struct Setting<'a> {
    pub dialect: &'a str,
    pub key: &'a str,
    pub value: &'a str,
}

impl<'a> Setting<'a> {
    /// The settings given to `dialect`, one by one.
    pub fn each(dialect: &'a str, settings: &'a Settings) -> impl Iterator<Item = Setting<'a>> {
        settings.iter().map(move |(key, value)| Setting {
            dialect,
            key,
            value,
        })
    }

    /// `DIALECT.KEY: expected WHAT, got "VALUE"`.
    pub fn expected(&self, what: &str) -> String {
        format!(
            "{}.{}: expected {what}, got {:?}",
            self.dialect, self.key, self.value
        )
    }

    /// `DIALECT.KEY: unknown setting (known: …)`.
    pub fn unknown(&self, known: &[&str]) -> String {
        format!(
            "{}.{}: unknown setting (known: {})",
            self.dialect,
            self.key,
            known.join(", ")
        )
    }

    /// Whole seconds from 0 to `max_secs` (at most [`MAX_DURATION_SECS`]).
    pub fn seconds(&self, max_secs: u64) -> Result<Duration, String> {
        seconds(self.value, max_secs).ok_or_else(|| self.expected(&seconds_range(max_secs)))
    }

    /// A whole number from 0 to `max` (a size or a count).
    pub fn number(&self, max: u64) -> Result<u64, String> {
        match self.value.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.expected(&format!("a whole number from 0 to {max}"))),
        }
    }

    pub fn boolean(&self) -> Result<bool, String> {
        self.value
            .parse()
            .map_err(|_| self.expected("true or false"))
    }

    /// One of `choices` (names, with their meaning); aliases are allowed.
    pub fn choice<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, String> {
        match choices.iter().find(|(name, _)| *name == self.value) {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                let (last, rest) = names.split_last().unwrap_or((&"", &[]));
                Err(self.expected(&if rest.is_empty() {
                    (*last).to_owned()
                } else {
                    format!("{} or {last}", rest.join(", "))
                }))
            }
        }
    }

    /// `skip` or `refuse`: what to do with something the caller may not
    /// read inside a selected folder (the vendors that document it skip).
    pub fn unreadable_inside(&self) -> Result<crate::plan::OnProblem, String> {
        use crate::plan::OnProblem;
        self.choice(&[("skip", OnProblem::Skip), ("refuse", OnProblem::Fail)])
    }

    /// `immediate`, `polls:N` or `seconds:S` (S at most [`MAX_DURATION_SECS`]).
    pub fn pacing(&self) -> Result<Pacing, String> {
        Pacing::parse(self.value).ok_or_else(|| {
            self.expected(&format!(
                "immediate, polls:N (N up to {}) or seconds:S (S from 0 to {MAX_DURATION_SECS}, 100 years)",
                u32::MAX,
            ))
        })
    }

    pub fn compression(&self) -> Result<Compression, String> {
        self.choice(&[
            ("store", Compression::Store),
            ("deflate", Compression::Deflate),
        ])
    }
}

/// Whole seconds from 0 to `max_secs`, which is itself held to
/// [`MAX_DURATION_SECS`] so no caller can ask for more than that is safe.
pub(crate) fn seconds(text: &str, max_secs: u64) -> Option<Duration> {
    let secs = text.parse::<u64>().ok()?;
    if secs > max_secs.min(MAX_DURATION_SECS) {
        return None;
    }
    // Cannot fail: at most 100 years, far inside chrono's range.
    Duration::try_seconds(i64::try_from(secs).ok()?)
}

/// "whole seconds from 0 to N (Y years)", as a refusal says it.
fn seconds_range(max_secs: u64) -> String {
    let max_secs = max_secs.min(MAX_DURATION_SECS);
    const YEAR: u64 = 31_557_600;
    if max_secs.is_multiple_of(YEAR) {
        format!(
            "whole seconds from 0 to {max_secs} ({} years)",
            max_secs / YEAR
        )
    } else {
        format!("whole seconds from 0 to {max_secs}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(value: &str) -> Setting<'_> {
        Setting {
            dialect: "d",
            key: "k",
            value,
        }
    }

    #[test]
    fn durations_are_whole_seconds_up_to_a_century() {
        assert_eq!(setting("0").seconds(60), Ok(Duration::zero()));
        assert_eq!(setting("60").seconds(60), Ok(Duration::seconds(60)));
        assert_eq!(
            setting("3155760000").seconds(MAX_DURATION_SECS),
            Ok(Duration::seconds(3_155_760_000))
        );
        // A caller's larger maximum is still held to a century.
        assert!(setting("3155760001").seconds(u64::MAX).is_err());
        for bad in [
            "61",
            "-1",
            "1.5",
            "",
            " 5",
            "NaN",
            "9000000000000",
            "10000000000000000",
            "99999999999999999999999",
        ] {
            let message = setting(bad).seconds(60).unwrap_err();
            assert!(
                message.starts_with("d.k: expected whole seconds from 0 to 60, got "),
                "{message}"
            );
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
        assert_eq!(
            setting("-1").seconds(MAX_DURATION_SECS).unwrap_err(),
            "d.k: expected whole seconds from 0 to 3155760000 (100 years), got \"-1\""
        );
    }

    #[test]
    fn numbers_choices_and_pacing() {
        assert_eq!(setting("7").number(7), Ok(7));
        assert_eq!(
            setting("8").number(7).unwrap_err(),
            "d.k: expected a whole number from 0 to 7, got \"8\""
        );
        assert_eq!(setting("deflate").compression(), Ok(Compression::Deflate));
        assert_eq!(
            setting("zstd").compression().unwrap_err(),
            "d.k: expected store or deflate, got \"zstd\""
        );
        assert_eq!(
            setting("x")
                .choice(&[("a", 1), ("b", 2), ("c", 2)])
                .unwrap_err(),
            "d.k: expected a, b or c, got \"x\""
        );
        assert_eq!(setting("true").boolean(), Ok(true));
        assert!(setting("yes").boolean().is_err());
        assert_eq!(
            setting("seconds:3155760000").pacing(),
            Ok(Pacing::AfterDuration(Duration::seconds(3_155_760_000)))
        );
        for bad in [
            "seconds:3155760001",
            "seconds:-5",
            "seconds:10000000000000000",
        ] {
            let message = setting(bad).pacing().unwrap_err();
            assert!(message.contains("3155760000, 100 years"), "{message}");
        }
        assert_eq!(
            setting("x").unknown(&["a", "b"]),
            "d.k: unknown setting (known: a, b)"
        );
    }
}
