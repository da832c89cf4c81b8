//! `--set box.KEY=VALUE` settings, each with a documented default.

use chrono::Duration;
use zipgate_api::plan::{OnProblem, Repeats};
use zipgate_api::settings::{Setting, MAX_COUNT, MAX_DURATION_SECS, MAX_SIZE_BYTES};
use zipgate_api::{Compression, Settings};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusBeforeDownload {
    /// The status endpoint's own text: "can only be accessed once the download has started".
    NotFound,
    /// What the `status_url` field's text implies: valid until `expires_at`.
    InProgress,
}

/// What a `401` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthorizedBody {
    /// Nothing, and no `Content-Type`: what Box's gateway sends.
    Empty,
    /// Box's `ClientError`, as its OpenAPI declares.
    Json,
}

#[derive(Clone, Debug)]
pub struct BoxSettings {
    /// How long `download_url` and `status_url` stay valid before a download starts.
    pub url_ttl: Duration,
    /// How long `status_url` answers after a download started (Box: 12 hours).
    pub status_retention: Duration,
    pub max_files: u64,
    pub max_bytes: u64,
    pub max_concurrent_downloads: usize,
    /// Archive name when `download_file_name` is absent (`.zip` is added).
    pub default_name: String,
    pub content_type: String,
    pub status_before_download: StatusBeforeDownload,
    /// `None` uses the server's `--compression`.
    pub compression: Option<Compression>,
    pub unauthorized_body: UnauthorizedBody,
    /// An id listed twice in one request: packed once, or twice (renamed).
    pub repeated_items: Repeats,
    /// `salary.pdf` and `Salary.PDF` in one folder of the archive conflict.
    pub ignore_case_in_names: bool,
    /// Something the caller may not read inside a selected folder.
    pub unreadable_inside: OnProblem,
}

impl Default for BoxSettings {
    fn default() -> Self {
        BoxSettings {
            url_ttl: Duration::seconds(60),
            status_retention: Duration::hours(12),
            max_files: 10_000,
            max_bytes: 32 << 30,
            max_concurrent_downloads: 5,
            default_name: "download".into(),
            content_type: "application/octet-stream".into(),
            status_before_download: StatusBeforeDownload::NotFound,
            compression: None,
            unauthorized_body: UnauthorizedBody::Empty,
            repeated_items: Repeats::AtEachPlace,
            ignore_case_in_names: true,
            unreadable_inside: OnProblem::Skip,
        }
    }
}

/// Every `box.*` key, for the refusal of an unknown one.
const KNOWN: &[&str] = &[
    "url_ttl",
    "status_retention",
    "max_files",
    "max_bytes",
    "max_concurrent_downloads",
    "default_name",
    "content_type",
    "status_before_download",
    "compression",
    "unauthorized_body",
    "repeated_items",
    "ignore_case_in_names",
    "unreadable_inside",
];

impl BoxSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = BoxSettings::default();
        for setting in Setting::each("box", settings) {
            match setting.key {
                "url_ttl" => out.url_ttl = setting.seconds(MAX_DURATION_SECS)?,
                "status_retention" => out.status_retention = setting.seconds(MAX_DURATION_SECS)?,
                "max_files" => out.max_files = setting.number(MAX_COUNT)?,
                "max_bytes" => out.max_bytes = setting.number(MAX_SIZE_BYTES)?,
                "max_concurrent_downloads" => {
                    out.max_concurrent_downloads = usize::try_from(setting.number(MAX_COUNT)?)
                        .map_err(|_| setting.expected("a smaller number"))?
                }
                "default_name" => out.default_name = setting.value.to_owned(),
                "content_type" => out.content_type = setting.value.to_owned(),
                "status_before_download" => {
                    out.status_before_download = setting.choice(&[
                        ("404", StatusBeforeDownload::NotFound),
                        ("not_found", StatusBeforeDownload::NotFound),
                        ("in_progress", StatusBeforeDownload::InProgress),
                    ])?
                }
                "compression" => out.compression = Some(setting.compression()?),
                "repeated_items" => {
                    out.repeated_items = setting
                        .choice(&[("once", Repeats::AtEachPlace), ("each", Repeats::Every)])?
                }
                "ignore_case_in_names" => out.ignore_case_in_names = setting.boolean()?,
                "unreadable_inside" => out.unreadable_inside = setting.unreadable_inside()?,
                "unauthorized_body" => {
                    out.unauthorized_body = setting.choice(&[
                        ("empty", UnauthorizedBody::Empty),
                        ("json", UnauthorizedBody::Json),
                    ])?
                }
                _ => return Err(setting.unknown(KNOWN)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_refuse_unknown_keys() {
        let mut settings = Settings::new();
        settings.insert("url_ttl".into(), "5".into());
        settings.insert("status_before_download".into(), "in_progress".into());
        let parsed = BoxSettings::parse(&settings).unwrap();
        assert_eq!(parsed.url_ttl, Duration::seconds(5));
        assert_eq!(
            parsed.status_before_download,
            StatusBeforeDownload::InProgress
        );
        settings.insert("colour".into(), "red".into());
        assert!(BoxSettings::parse(&settings)
            .unwrap_err()
            .contains("box.colour"));
    }
}
