//! `--set oracle.KEY=VALUE` settings, each with a documented default.

use chrono::Duration;
use zipgate_api::plan::OnProblem;
use zipgate_api::settings::{Setting, MAX_DURATION_SECS};
use zipgate_api::{Pacing, Settings};

/// The status page's two examples disagree on types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Types {
    /// The captured example: every scalar a string, `links` an array (default).
    Captured,
    /// The schema example: native booleans and numbers, `links` an object.
    Schema,
}

#[derive(Clone, Debug)]
pub struct OracleSettings {
    pub types: Types,
    pub pacing: Pacing,
    /// How long a finished package can be fetched.
    pub package_ttl: Duration,
    /// Accept `Authorization: Basic` (login:password) besides Bearer.
    pub basic_auth: bool,
    /// What the status of a package past `package_ttl` reports.
    pub expired: Expired,
    /// Something the caller may not read inside a selected folder.
    pub unreadable_inside: OnProblem,
}

/// The vendor does not say what a job reports once its package is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expired {
    /// The job still reports that it succeeded (at 100%); fetching the
    /// package answers the not-found error (default).
    Succeeded,
    /// The job reports `FAILED`, still at 100%.
    Failed,
}

impl Default for OracleSettings {
    fn default() -> Self {
        OracleSettings {
            types: Types::Captured,
            pacing: Pacing::AfterPolls(2),
            package_ttl: Duration::hours(24),
            basic_auth: true,
            expired: Expired::Succeeded,
            unreadable_inside: OnProblem::Skip,
        }
    }
}

impl OracleSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = OracleSettings::default();
        for setting in Setting::each("oracle", settings) {
            match setting.key {
                "types" => {
                    out.types = setting
                        .choice(&[("captured", Types::Captured), ("schema", Types::Schema)])?
                }
                "pacing" => out.pacing = setting.pacing()?,
                "package_ttl" => out.package_ttl = setting.seconds(MAX_DURATION_SECS)?,
                "basic_auth" => out.basic_auth = setting.boolean()?,
                "unreadable_inside" => out.unreadable_inside = setting.unreadable_inside()?,
                "expired" => {
                    out.expired = setting.choice(&[
                        ("succeeded", Expired::Succeeded),
                        ("failed", Expired::Failed),
                    ])?
                }
                _ => {
                    return Err(setting.unknown(&[
                        "types",
                        "pacing",
                        "package_ttl",
                        "basic_auth",
                        "expired",
                        "unreadable_inside",
                    ]))
                }
            }
        }
        Ok(out)
    }
}
