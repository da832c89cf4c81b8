//! One job: what it was made from (`JobSpec`), the rules it keeps, and the
//! state machine that advances it against the clock.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use zipgate_api::{Error, JobSnapshot, JobState, Pacing, Principal};

use crate::clock::saturating_add;
use crate::recheck::Sources;
use crate::zip::Archive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct JobSpec {
    pub id: String,
    /// The archive's file name.
    pub name: String,
    /// The creator's own data, returned with every snapshot.
    pub context: String,
    /// Opaque tag of whoever created the job (a dialect's name); the registry
    /// never interprets it.
    pub owner_tag: &'static str,
    pub owner: Principal,
    pub archive: Arc<Archive>,
    pub file_count: u64,
    pub files_skipped: u64,
    pub folders_skipped: u64,
    pub pacing: Pacing,
    /// A download must start before this long after the job is ready.
    pub download_window: Option<Duration>,
    /// A second download is refused.
    pub single_use: bool,
    /// How long the record is kept once settled (download started or ended).
    pub retention: Duration,
    /// A fault injected into this job, if any.
    pub fault: Option<JobFault>,
    /// Where each archive entry came from, when a download rechecks them.
    pub sources: Option<Arc<Sources>>,
    /// The archive is still being built ([`Archive::build`]): the job is not
    /// ready before [`super::JobRegistry::finish_build`] swaps the built one in.
    pub building: Option<Building>,
}

/// Held by a job whose archive is being built; dropping it (the job was
/// cancelled, failed, evicted or forgotten) tells the build to stop.
pub struct Building(Arc<AtomicBool>);

impl Building {
    /// The job's side and the builder's: the flag turns true once the build
    /// is no longer wanted.
    pub fn new() -> (Building, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Building(flag.clone()), flag)
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A job made to go wrong on purpose (fault injection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobFault {
    /// Fails with this message when it would have become ready.
    Fail(String),
    /// Never becomes ready; stays queued or running.
    Stuck(StuckState),
    /// These nodes (fixture ids, or the dialect's own ids) are unreadable
    /// to the job's owner from the moment a download starts, for dialects
    /// whose jobs recheck then (`PlanOptions::recheck_at_download`).
    Unreadable(Vec<String>),
    /// These nodes are gone from the moment a download starts, as above.
    Deleted(Vec<String>),
}

impl JobFault {
    /// The nodes a download must treat as lost.
    pub fn lost_nodes(&self) -> &[String] {
        match self {
            JobFault::Unreadable(ids) | JobFault::Deleted(ids) => ids,
            JobFault::Fail(_) | JobFault::Stuck(_) => &[],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckState {
    Queued,
    Running,
}

/// What a job keeps of its spec beyond what its snapshot shows.
pub(super) struct JobRules {
    pub(super) archive: Arc<Archive>,
    pub(super) pacing: Pacing,
    pub(super) download_window: Option<Duration>,
    pub(super) single_use: bool,
    pub(super) retention: Duration,
    pub(super) fault: Option<JobFault>,
    pub(super) sources: Option<Arc<Sources>>,
    pub(super) building: Option<Building>,
    /// When the archive's build finished (on the clock), for a job built ahead.
    pub(super) built_at: Option<DateTime<Utc>>,
    /// Fired when the job is cancelled: every download of it in flight is
    /// cut. Made by the first download, so a job never downloaded costs
    /// nothing.
    pub(super) downloads_stop: Option<CancellationToken>,
}

pub(super) struct Job {
    pub(super) spec: JobRules,
    pub(super) snapshot: JobSnapshot,
    /// Whether each archive entry is a file, to count files as they finish.
    pub(super) entry_is_file: Vec<bool>,
    /// When the record's retention started.
    pub(super) settled_at: Option<DateTime<Utc>>,
}

/// Whether each archive entry is a file, to count files as they finish.
pub(super) fn files_of(archive: &Archive) -> Vec<bool> {
    archive
        .entries()
        .iter()
        .map(|e| matches!(e.body, crate::zip::EntryBody::File { .. }))
        .collect()
}

/// A download refused because the job is past it: the client sees only
/// the vendor's 404 or 410, so the log says why, for whoever wonders what
/// their test did wrong.
pub(super) fn refused(id: &str, state: JobState, expires_at: Option<DateTime<Utc>>) -> Error {
    let why = match state {
        JobState::Expired => "it expired",
        JobState::Failed => "its job failed",
        JobState::Cancelled => "its job was cancelled",
        _ => "it is single-use and was used already",
    };
    tracing::info!(
        target: "zipgate::jobs",
        job = id,
        expires_at = ?expires_at,
        "download refused: {why}"
    );
    Error::Gone(id.to_owned())
}

impl Job {
    /// What a download-time recheck needs, for a job that keeps its sources.
    pub(super) fn recheck_input(&self) -> Option<super::RecheckInput> {
        Some(super::RecheckInput {
            sources: self.spec.sources.clone()?,
            owner: self.snapshot.owner.clone(),
            fault: self.spec.fault.clone(),
        })
    }

    pub(super) fn new(spec: JobSpec, now: DateTime<Utc>) -> Self {
        let entry_is_file = files_of(&spec.archive);
        let steps = match spec.pacing {
            Pacing::AfterPolls(n) => (0, n),
            _ => (0, 1),
        };
        let snapshot = JobSnapshot {
            name: spec.name,
            context: spec.context,
            archive_len: spec.archive.len(),
            steps,
            entries_total: entry_is_file.len() as u64,
            file_count: spec.file_count,
            files_skipped: spec.files_skipped,
            folders_skipped: spec.folders_skipped,
            ..JobSnapshot::new(spec.id, spec.owner_tag, spec.owner, now)
        };
        Job {
            spec: JobRules {
                archive: spec.archive,
                pacing: spec.pacing,
                download_window: spec.download_window,
                single_use: spec.single_use,
                retention: spec.retention,
                fault: spec.fault,
                sources: spec.sources,
                building: spec.building,
                built_at: None,
                downloads_stop: None,
            },
            snapshot,
            entry_is_file,
            settled_at: None,
        }
    }

    /// Applies pacing (when `poll` is true) and expiry as of `now`.
    /// Whether a download may start now (advancing the job on the clock
    /// first, as anyone looking would): ready, or reusable and downloaded.
    pub(super) fn may_download(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.advance(now, false);
        match self.snapshot.state {
            JobState::Ready => Ok(()),
            JobState::Downloading | JobState::Done if !self.spec.single_use => Ok(()),
            state @ (JobState::Downloading
            | JobState::Done
            | JobState::Expired
            | JobState::Failed
            | JobState::Cancelled) => Err(refused(id, state, self.snapshot.expires_at)),
            JobState::Queued | JobState::Running => Err(Error::Conflict(id.to_owned())),
        }
    }

    /// Deadlines are `saturating_add`s: settings are capped at a century,
    /// but the clock can be ~292 years ahead and in-process callers may pass
    /// any `Duration`; a panic here would fail every request that touches
    /// the job, and a deadline past the end of time honestly means "never".
    pub(super) fn advance(&mut self, now: DateTime<Utc>, poll: bool) {
        let s = &mut self.snapshot;
        if poll {
            s.polls = s.polls.saturating_add(1);
        }
        if matches!(s.state, JobState::Queued | JobState::Running) {
            // When it became ready: on the clock for time pacing, not when someone looked.
            let ready_at = match self.spec.pacing {
                Pacing::Immediate => Some(s.created_at),
                Pacing::AfterPolls(n) => {
                    s.steps = (s.polls.min(n), n);
                    (s.polls >= n).then_some(now)
                }
                Pacing::AfterDuration(d) => {
                    let at = saturating_add(s.created_at, d);
                    (now >= at).then_some(at)
                }
            };
            // Never ready before the archive exists.
            let ready_at = match (ready_at, self.spec.built_at) {
                _ if self.spec.building.is_some() => {
                    s.steps.0 = s.steps.0.min(s.steps.1.saturating_sub(1));
                    None
                }
                (Some(at), Some(built)) => Some(at.max(built)),
                (ready_at, _) => ready_at,
            };
            match (&self.spec.fault, ready_at) {
                (Some(JobFault::Stuck(StuckState::Queued)), _) => {
                    s.state = JobState::Queued;
                    s.steps.0 = 0;
                    return;
                }
                (Some(JobFault::Stuck(StuckState::Running)), _) => {
                    s.state = JobState::Running;
                    // Progress never reaches the end.
                    s.steps.0 = s.steps.0.min(s.steps.1.saturating_sub(1));
                    return;
                }
                (Some(JobFault::Fail(message)), Some(at)) => {
                    s.state = JobState::Failed;
                    s.error = Some(message.clone());
                    s.finished_at = Some(at);
                    self.settled_at.get_or_insert(at);
                    return;
                }
                _ => {}
            }
            if let Some(ready_at) = ready_at {
                s.state = JobState::Ready;
                s.ready_at = Some(ready_at);
                s.steps = (s.steps.1, s.steps.1);
                s.expires_at = self
                    .spec
                    .download_window
                    .map(|w| saturating_add(ready_at, w));
            } else if s.state == JobState::Queued && (s.polls > 0 || now > s.created_at) {
                s.state = JobState::Running;
            }
        }
        if s.state == JobState::Ready {
            if let Some(expires) = s.expires_at {
                let unused = s.downloads == 0 || !self.spec.single_use;
                if now > expires && unused {
                    s.state = JobState::Expired;
                    s.finished_at = Some(expires);
                    self.settled_at.get_or_insert(expires);
                }
            }
        }
    }

    pub(super) fn reclaimable(&self, now: DateTime<Utc>) -> bool {
        match self.settled_at {
            Some(at) => {
                self.snapshot.state.is_terminal() && now > saturating_add(at, self.spec.retention)
            }
            None => false,
        }
    }
}
