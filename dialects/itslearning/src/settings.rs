//! `--set itslearning.KEY=VALUE` settings. itslearning documents neither its
//! job statuses, nor its archive name, nor the download URL, nor what it does
//! with an empty request or unknown ids: each choice is a setting.

use chrono::Duration;
use zipgate_api::plan::OnProblem;
use zipgate_api::settings::{Setting, MAX_DURATION_SECS};
use zipgate_api::{Pacing, Settings};

#[derive(Clone, Debug)]
pub struct ItslearningSettings {
    pub pacing: Pacing,
    /// Status strings for queued, running, completed and failed jobs.
    pub statuses: [String; 4],
    pub zip_file_name: String,
    /// How long `DownloadUrl` works once the job completed.
    pub download_ttl: Duration,
    /// Unknown or unreadable ids: answer 404/403 at once (`error`), or start a job that ends failed (`fail`).
    pub fail_missing_in_job: bool,
    /// An empty request (no body, or no ids): 400 (`invalid`), or a job with an empty zip (`empty_zip`).
    pub empty_zip_for_empty_request: bool,
    /// `GET …/zip/{id}/v1` for an unknown job: `NotFound()`'s empty body, or a `{"Message":…}`.
    pub not_found_message: bool,
    /// Something the caller may not read inside a selected folder.
    pub unreadable_inside: OnProblem,
}

impl Default for ItslearningSettings {
    fn default() -> Self {
        ItslearningSettings {
            pacing: Pacing::AfterPolls(2),
            statuses: ["Pending", "InProgress", "Completed", "Failed"].map(String::from),
            zip_file_name: "files.zip".into(),
            download_ttl: Duration::minutes(5),
            fail_missing_in_job: false,
            empty_zip_for_empty_request: false,
            not_found_message: false,
            unreadable_inside: OnProblem::Skip,
        }
    }
}

/// Every `itslearning.*` key, for the refusal of an unknown one.
const KNOWN: &[&str] = &[
    "pacing",
    "statuses",
    "zip_file_name",
    "download_ttl",
    "missing_items",
    "empty_request",
    "not_found_body",
    "unreadable_inside",
];

impl ItslearningSettings {
    pub fn parse(settings: &Settings) -> Result<Self, String> {
        let mut out = ItslearningSettings::default();
        for setting in Setting::each("itslearning", settings) {
            match setting.key {
                "pacing" => out.pacing = setting.pacing()?,
                "statuses" => {
                    let parts: Vec<String> = setting
                        .value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .collect();
                    out.statuses = parts.try_into().map_err(|_| {
                        setting.expected("four names, e.g. Pending,InProgress,Completed,Failed")
                    })?;
                }
                "zip_file_name" => out.zip_file_name = setting.value.to_owned(),
                "download_ttl" => out.download_ttl = setting.seconds(MAX_DURATION_SECS)?,
                "missing_items" => {
                    out.fail_missing_in_job = setting.choice(&[("error", false), ("fail", true)])?
                }
                "empty_request" => {
                    out.empty_zip_for_empty_request =
                        setting.choice(&[("invalid", false), ("empty_zip", true)])?
                }
                "not_found_body" => {
                    out.not_found_message =
                        setting.choice(&[("empty", false), ("message", true)])?
                }
                "unreadable_inside" => out.unreadable_inside = setting.unreadable_inside()?,
                _ => return Err(setting.unknown(KNOWN)),
            }
        }
        Ok(out)
    }
}
