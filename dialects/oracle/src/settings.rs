//! `--set oracle.KEY=VALUE` settings, each with a documented default.

use chrono::Duration;
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
}

impl Default for OracleSettings {
    fn default() -> Self {
        OracleSettings {
            types: Types::Captured,
            pacing: Pacing::AfterPolls(2),
            package_ttl: Duration::hours(24),
            basic_auth: true,
        }
    }
}

impl OracleSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = OracleSettings::default();
        for (key, value) in settings {
            let bad = |what: &str| format!("oracle.{key}: expected {what}, got {value:?}");
            match key.as_str() {
                "types" => {
                    out.types = match value.as_str() {
                        "captured" => Types::Captured,
                        "schema" => Types::Schema,
                        _ => return Err(bad("captured or schema")),
                    }
                }
                "pacing" => {
                    out.pacing = Pacing::parse(value)
                        .ok_or_else(|| bad("immediate, polls:N or seconds:S"))?
                }
                "package_ttl" => {
                    out.package_ttl = Duration::seconds(value.parse().map_err(|_| bad("seconds"))?)
                }
                "basic_auth" => out.basic_auth = value.parse().map_err(|_| bad("true or false"))?,
                _ => {
                    return Err(format!(
                    "oracle.{key}: unknown setting (known: types, pacing, package_ttl, basic_auth)"
                ))
                }
            }
        }
        Ok(out)
    }
}
