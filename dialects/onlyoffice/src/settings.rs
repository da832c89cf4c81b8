//! `--set onlyoffice.KEY=VALUE` settings, each with a documented default.

use chrono::Duration;
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
    /// `store` by default: the vendor serves a stored file with a length and ranges.
    pub compression: Compression,
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
            compression: Compression::Store,
        }
    }
}

fn parse_pacing(value: &str) -> Result<Pacing, String> {
    Pacing::parse(value).ok_or_else(|| {
        format!("onlyoffice.pacing: expected immediate, polls:N or seconds:S, got {value:?}")
    })
}

impl OnlyofficeSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = OnlyofficeSettings::default();
        for (key, value) in settings {
            match key.as_str() {
                "flavour" | "flavor" => {
                    out.flavour = match value.as_str() {
                        "workspace" | "community" => Flavour::Workspace,
                        "docspace" => Flavour::DocSpace,
                        _ => return Err(format!("onlyoffice.flavour: expected workspace or docspace, got {value:?}")),
                    }
                }
                "style" => {
                    out.style = match value.as_str() {
                        "source" => Style::Source,
                        "docs" => Style::Docs,
                        _ => return Err(format!("onlyoffice.style: expected source or docs, got {value:?}")),
                    }
                }
                "pacing" => out.pacing = parse_pacing(value)?,
                "alias" => out.alias = value.to_lowercase(),
                "archive_ttl" => {
                    out.archive_ttl = Duration::seconds(
                        value
                            .parse()
                            .map_err(|_| format!("onlyoffice.archive_ttl: expected seconds, got {value:?}"))?,
                    )
                }
                "error_data" => {
                    out.error_data = value
                        .parse()
                        .map_err(|_| format!("onlyoffice.error_data: expected true or false, got {value:?}"))?
                }
                "compression" => {
                    out.compression = match value.as_str() {
                        "store" => Compression::Store,
                        "deflate" => Compression::Deflate,
                        _ => return Err(format!("onlyoffice.compression: expected store or deflate, got {value:?}")),
                    }
                }
                _ => {
                    return Err(format!(
                        "onlyoffice.{key}: unknown setting (known: flavour, style, pacing, alias, archive_ttl, \
                         error_data, compression)"
                    ))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_forms() {
        assert_eq!(parse_pacing("immediate").unwrap(), Pacing::Immediate);
        assert_eq!(parse_pacing("polls:3").unwrap(), Pacing::AfterPolls(3));
        assert_eq!(
            parse_pacing("seconds:5").unwrap(),
            Pacing::AfterDuration(Duration::seconds(5))
        );
        assert!(parse_pacing("soon").is_err());
    }
}
