//! A job as the control plane and the live feed show it, in neutral terms.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use zipgate_api::{JobSnapshot, JobState, Principal};

/// The control plane's time format: RFC 3339, milliseconds, `Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A job in neutral terms, serialised straight to JSON (no `Value` tree).
#[derive(Serialize)]
pub struct JobView<'a> {
    id: &'a str,
    dialect: &'a str,
    owner: Option<&'a str>,
    state: JobState,
    name: &'a str,
    entries: u64,
    files: u64,
    progress: Progress,
    archive_bytes: Option<u64>,
    created: String,
    ready: Option<String>,
    expires: Option<String>,
    downloads: u32,
    bytes_sent: u64,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct Progress {
    done: u32,
    of: u32,
}

pub fn job_view(job: &JobSnapshot) -> JobView<'_> {
    JobView {
        id: &job.id,
        dialect: job.owner_tag,
        owner: match &job.owner {
            Principal::User(u) => Some(&u.0),
            Principal::Anonymous => None,
        },
        state: job.state,
        name: &job.name,
        entries: job.entries_total,
        files: job.file_count,
        progress: Progress {
            done: job.steps.0,
            of: job.steps.1,
        },
        archive_bytes: job.archive_len,
        created: time(job.created_at),
        ready: job.ready_at.map(time),
        expires: job.expires_at.map(time),
        downloads: job.downloads,
        bytes_sent: job.bytes_sent,
        error: job.error.as_deref(),
    }
}
