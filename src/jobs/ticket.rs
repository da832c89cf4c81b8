//! A download in progress and what it reports back to its job.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use zipgate_api::{JobState, Principal};

use super::table::Key;
use super::JobRegistry;
use crate::zip::{Progress, StreamObserver};

/// One download in progress; it is the stream's observer. Dropping it
/// unfinished records an interrupted download.
pub struct DownloadTicket {
    pub(super) registry: JobRegistry,
    /// The job's slot: a job made later under the same id is not this one.
    pub(super) key: Key,
    /// Whose download this is counted as, even if the job is removed meanwhile.
    pub(super) owner: (&'static str, Principal),
    pub(super) single_use: bool,
    pub(super) settled: AtomicBool,
    /// When the download started, and when (ms after) the live feed was
    /// last told of its progress: at most every [`PROGRESS_EVERY_MS`].
    pub(super) started: Instant,
    pub(super) announced_ms: AtomicU64,
}

/// How often a download's progress reaches the live feed.
const PROGRESS_EVERY_MS: u64 = 250;

impl DownloadTicket {
    #[cfg(test)]
    pub fn complete(self) {
        self.finish(true);
    }

    pub(super) fn finish(&self, complete: bool) {
        if self.settled.swap(true, Ordering::SeqCst) {
            return;
        }
        let single_use = self.single_use;
        {
            let mut jobs = self.registry.jobs();
            let (owner_tag, owner) = (self.owner.0, &self.owner.1);
            if let Some(lists) = jobs.owner_jobs_mut(owner_tag, owner) {
                lists.downloading = lists.downloading.saturating_sub(1);
            }
            jobs.drop_owner_if_idle(owner_tag, owner);
        }
        self.registry.update(self.key, true, |job, now| {
            let s = &mut job.snapshot;
            s.active_downloads = s.active_downloads.saturating_sub(1);
            if s.state.is_terminal() && s.state != JobState::Done {
                return;
            }
            if complete {
                // Every file the archive held (fewer than planned when a
                // download-time recheck left some out).
                let files = job.entry_is_file.iter().filter(|f| **f).count() as u64;
                s.files_done = files.min(s.file_count);
                s.entries_done = s.entries_total;
            }
            if single_use {
                s.state = if complete {
                    JobState::Done
                } else {
                    JobState::Failed
                };
                if !complete {
                    s.error = Some("download interrupted".into());
                }
                s.finished_at = Some(now);
            }
        });
    }
}

impl DownloadTicket {
    /// Whether to tell the live feed of this step: someone listens and the
    /// last report is old enough (a chunk is 128 KiB; thousands a second).
    fn progress_due(&self) -> bool {
        if !self.registry.recording() {
            return false;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.announced_ms.load(Ordering::Relaxed);
        now >= last + PROGRESS_EVERY_MS
            && self
                .announced_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl Progress for DownloadTicket {
    fn entry_done(&self, index: usize) {
        self.registry
            .update(self.key, self.progress_due(), |job, _| {
                let s = &mut job.snapshot;
                s.entries_done = s.entries_done.max(index as u64 + 1);
                if job.entry_is_file.get(index).copied().unwrap_or(false)
                    && s.files_done < s.file_count
                {
                    s.files_done += 1;
                }
            });
    }
}

impl StreamObserver for DownloadTicket {
    fn bytes_sent(&self, n: u64) {
        self.registry
            .update(self.key, self.progress_due(), |job, _| {
                job.snapshot.bytes_sent += n
            });
    }

    fn finished(&self, complete: bool) {
        self.finish(complete);
    }
}

impl Drop for DownloadTicket {
    fn drop(&mut self) {
        self.finish(false);
    }
}
