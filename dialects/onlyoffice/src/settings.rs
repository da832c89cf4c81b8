//! `--set onlyoffice.KEY=VALUE` settings, each with a documented default.

use chrono::Duration;
use zipgate_api::settings::{Setting, MAX_DURATION_SECS};
use zipgate_api::{Compression, Pacing, Settings};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Workspace / Community Server (ASP.NET, JSON and XML).
    Workspace,
    /// DocSpace (ASP.NET Core, JSON only).
    DocSpace,
}

/// Where the vendor's server source and its documentation page disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// What the server source writes (the default).
    Source,
    /// What the documentation page shows: no `count`/`statusCode`, `error: ""`, XML `True`/`False`.
    Docs,
}

#[derive(Clone, Debug)]
pub struct OnlyofficeSettings {
    pub flavour: Flavour,
    pub style: Style,
    /// How an operation advances: at once, over N polls of `fileops`, or over a duration.
    pub pacing: Pacing,
    /// Tenant alias in `<alias>-download-<yyyy-MM-dd>.zip`.
    pub alias: String,
    /// How long a finished archive can be fetched.
    pub archive_ttl: Duration,
    /// Error bodies carry `"data":{}` as release builds of the server write them.
    pub error_data: bool,
    /// `deflate` by default, as SharpZipLib's `ZipEntry` defaults to; the
    /// archive is built before it is ready, so it still has a length and ranges.
    pub compression: Compression,
    /// `filehandler.ashx?action=bulk` without `filename` (the link of v11
    /// builds): the newest archive, as v11 stored it under `download.zip`;
    /// off by default, as v12 stores no such file and answers 404.
    pub bulk_link_v11: bool,
}

impl Default for OnlyofficeSettings {
    fn default() -> Self {
        OnlyofficeSettings {
            flavour: Flavour::Workspace,
            style: Style::Source,
            pacing: Pacing::AfterPolls(2),
            alias: "portal".into(),
            archive_ttl: Duration::hours(24),
            error_data: true,
            compression: Compression::Deflate,
            bulk_link_v11: false,
        }
    }
}

/// Every `onlyoffice.*` key, for the refusal of an unknown one.
const KNOWN: &[&str] = &[
    "flavour",
    "style",
    "pacing",
    "alias",
    "archive_ttl",
    "error_data",
    "compression",
    "bulk_link_v11",
];

impl OnlyofficeSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = OnlyofficeSettings::default();
        for setting in Setting::each("onlyoffice", settings) {
            match setting.key {
                "flavour" | "flavor" => {
                    out.flavour = setting.choice(&[
                        ("workspace", Flavour::Workspace),
                        ("community", Flavour::Workspace),
                        ("docspace", Flavour::DocSpace),
                    ])?
                }
                "style" => {
                    out.style =
                        setting.choice(&[("source", Style::Source), ("docs", Style::Docs)])?
                }
                "pacing" => out.pacing = setting.pacing()?,
                "alias" => out.alias = setting.value.to_lowercase(),
                "archive_ttl" => out.archive_ttl = setting.seconds(MAX_DURATION_SECS)?,
                "error_data" => out.error_data = setting.boolean()?,
                "compression" => out.compression = setting.compression()?,
                "bulk_link_v11" => out.bulk_link_v11 = setting.boolean()?,
                _ => return Err(setting.unknown(KNOWN)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_pacing(value: &str) -> Result<Pacing, String> {
        let mut settings = Settings::new();
        settings.insert("pacing".into(), value.into());
        OnlyofficeSettings::parse(&settings).map(|s| s.pacing)
    }

    #[test]
    fn pacing_forms() {
        assert_eq!(parse_pacing("immediate").unwrap(), Pacing::Immediate);
        assert_eq!(parse_pacing("polls:3").unwrap(), Pacing::AfterPolls(3));
        assert_eq!(
            parse_pacing("seconds:5").unwrap(),
            Pacing::AfterDuration(Duration::seconds(5))
        );
        assert!(parse_pacing("soon")
            .unwrap_err()
            .starts_with("onlyoffice.pacing: "));
    }

    #[test]
    fn a_ttl_past_a_century_is_refused_not_a_panic() {
        let mut settings = Settings::new();
        settings.insert("archive_ttl".into(), "10000000000000000".into());
        let message = OnlyofficeSettings::parse(&settings).unwrap_err();
        assert!(
            message
                .starts_with("onlyoffice.archive_ttl: expected whole seconds from 0 to 3155760000"),
            "{message}"
        );
    }
}
