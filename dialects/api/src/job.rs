//! Archive jobs in neutral terms: how a dialect asks for one and what it
//! sees of it afterwards.

use chrono::{DateTime, Duration, Utc};

use crate::plan::{PlanOptions, Renamed, Skipped};
use crate::{Compression, JobState, Principal, SelectedItem};

/// How a new job becomes ready, so a client's polling loop can be exercised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    Immediate,
    /// Ready on the n-th status poll.
    AfterPolls(u32),
    /// Ready once this much time has passed on the clock.
    AfterDuration(Duration),
}

impl Pacing {
    /// `immediate`, `polls:N` or `seconds:S`, the form every dialect's
    /// `pacing` setting takes; `None` for anything else, including S past
    /// [`crate::settings::MAX_DURATION_SECS`] or negative (a job would be
    /// ready before it was made).
    pub fn parse(value: &str) -> Option<Pacing> {
        match value.split_once(':') {
            None if value == "immediate" => Some(Pacing::Immediate),
            Some(("polls", n)) => match n.parse::<u32>().ok()? {
                0 => Some(Pacing::Immediate),
                n => Some(Pacing::AfterPolls(n)),
            },
            Some(("seconds", s)) => crate::settings::seconds(s, crate::settings::MAX_DURATION_SECS)
                .map(Pacing::AfterDuration),
            _ => None,
        }
    }
}

/// A dialect's request for an archive job.
pub struct CreateJob {
    /// The job's id in the dialect's own scheme; must be unique.
    pub id: String,
    /// The archive's file name, as the dialect will present it.
    pub name: String,
    /// Anything the dialect wants back with the job (e.g. the folder it was made from).
    pub context: String,
    pub owner: Principal,
    pub selection: Vec<SelectedItem>,
    pub plan: PlanOptions,
    /// `None` uses the server's default.
    pub compression: Option<Compression>,
    /// When the selection comes down to one file, serve that file as itself instead of a zip.
    pub single_file_as_is: bool,
    /// How the archive is laid out beyond what it holds.
    pub layout: ArchiveLayout,
    pub pacing: Pacing,
    /// A download must start within this long of the job becoming ready.
    pub download_window: Option<Duration>,
    /// A second download is refused.
    pub single_use: bool,
    /// How long the record is kept once settled (download started or ended).
    pub retention: Duration,
}

/// Archive traits some servers have and others do not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiveLayout {
    /// The archive is built whole before it can be downloaded, as a server
    /// that writes it to storage and then serves that file: its length is
    /// exact and `Range` works even when entries are deflated. The job is
    /// not ready until the build (one compression pass) has finished.
    pub exact_length: bool,
    /// Every entry name carries the UTF-8 flag, ASCII names too.
    pub utf8_flag_on_every_name: bool,
}

/// What the planner made of a new job's selection.
#[derive(Clone, Debug)]
pub struct CreatedJob {
    pub job: JobSnapshot,
    pub conflicts: Vec<Vec<Renamed>>,
    pub skipped: Vec<Skipped>,
    pub folder_count: u64,
    pub total_bytes: u64,
    /// Exact archive length, known when every entry is stored.
    pub archive_len: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct JobSnapshot {
    pub id: String,
    /// The archive's file name.
    pub name: String,
    /// The dialect's own data, as given at creation.
    pub context: String,
    /// Exact archive length, known when every entry is stored.
    pub archive_len: Option<u64>,
    /// The dialect that created the job (its name).
    pub owner_tag: &'static str,
    pub owner: Principal,
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub download_started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub polls: u32,
    /// Pacing steps done and needed (equal once ready).
    pub steps: (u32, u32),
    pub entries_total: u64,
    pub entries_done: u64,
    /// Files the job covers: those in the archive and those skipped.
    pub file_count: u64,
    pub files_done: u64,
    /// Files and folders the planner left out (skip policies).
    pub files_skipped: u64,
    pub folders_skipped: u64,
    pub bytes_sent: u64,
    pub downloads: u32,
    /// Downloads of this job still streaming.
    pub active_downloads: u32,
    /// The client has been shown the final state (for APIs that list a
    /// finished job once, then no more).
    pub acknowledged: bool,
    pub error: Option<String>,
}

impl JobSnapshot {
    /// A job just made: queued, every count at zero, nothing else known.
    pub fn new(id: String, owner_tag: &'static str, owner: Principal, now: DateTime<Utc>) -> Self {
        JobSnapshot {
            id,
            name: String::new(),
            context: String::new(),
            archive_len: None,
            owner_tag,
            owner,
            state: JobState::Queued,
            created_at: now,
            ready_at: None,
            expires_at: None,
            download_started_at: None,
            finished_at: None,
            polls: 0,
            steps: (0, 0),
            entries_total: 0,
            entries_done: 0,
            file_count: 0,
            files_done: 0,
            files_skipped: 0,
            folders_skipped: 0,
            bytes_sent: 0,
            downloads: 0,
            active_downloads: 0,
            acknowledged: false,
            error: None,
        }
    }
}
