//! The archive job registry every dialect shares: the neutral state machine
//! (queued → running → ready → downloading → done, or failed / cancelled /
//! expired), deterministic pacing, progress counters, expiry and single-use
//! rules, all against an injectable clock. Settled jobs are reclaimed after
//! their retention, so a long run does not grow without bound.

use std::collections::{HashMap, VecDeque};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use zipgate_api::{Error, JobSnapshot, JobState, Pacing, Principal};

use crate::clock::Clock;
use crate::zip::{Archive, Progress, StreamObserver};

pub struct JobSpec {
    pub id: String,
    /// The archive's file name.
    pub name: String,
    /// The creator's own data, returned with every snapshot.
    pub context: String,
    /// Opaque tag of whoever created the job (a dialect's name); the registry
    /// never interprets it.
    pub owner_tag: String,
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
}

/// A job made to go wrong on purpose (fault injection).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobFault {
    /// Fails with this message when it would have become ready.
    Fail(String),
    /// Never becomes ready; stays queued or running.
    Stuck(StuckState),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckState {
    Queued,
    Running,
}

struct Job {
    spec: JobSpec,
    snapshot: JobSnapshot,
    /// Whether each archive entry is a file, to count files as they finish.
    entry_is_file: Vec<bool>,
    /// When the record's retention started.
    settled_at: Option<DateTime<Utc>>,
}

impl Job {
    /// Applies pacing (when `poll` is true) and expiry as of `now`.
    fn advance(&mut self, now: DateTime<Utc>, poll: bool) {
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
                Pacing::AfterDuration(d) => (now >= s.created_at + d).then_some(s.created_at + d),
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
                s.expires_at = self.spec.download_window.map(|w| ready_at + w);
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

    fn reclaimable(&self, now: DateTime<Utc>) -> bool {
        match self.settled_at {
            Some(at) => self.snapshot.state.is_terminal() && now > at + self.spec.retention,
            None => false,
        }
    }
}

#[derive(Clone)]
pub struct JobRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    jobs: Mutex<Table>,
    max_jobs: usize,
}

/// The jobs by id, with their creation order so the cap and the retention
/// sweep cost O(1) per create instead of a scan of every job, and an index
/// by owner so a dialect's questions about one user's jobs do not scan
/// everyone's.
#[derive(Default)]
struct Table {
    map: HashMap<String, Job>,
    /// Ids oldest first; may hold ids already removed (skipped, compacted on sweeps).
    order: VecDeque<String>,
    owners: HashMap<OwnerKey, OwnerJobs>,
    swept_at: Option<DateTime<Utc>>,
}

/// Removes `id` from an oldest-first list: O(1) when it is the oldest, the
/// usual case (the cap drops the oldest job).
fn remove_id(ids: &mut VecDeque<String>, id: &str) {
    if ids.front().is_some_and(|front| front == id) {
        ids.pop_front();
    } else if let Some(at) = ids.iter().position(|other| other == id) {
        ids.remove(at);
    }
}

/// A job's owner tag (dialect) and principal.
type OwnerKey = (String, Principal);

#[derive(Default)]
struct OwnerJobs {
    /// Ids oldest first; may hold ids already removed (compacted on sweeps).
    order: VecDeque<String>,
    /// Ids not yet acknowledged, oldest first.
    open: VecDeque<String>,
    /// Downloads of these jobs in progress.
    downloading: usize,
}

/// Creation-order entries the cap looks through, per job it drops, for
/// settled jobs to drop first.
const EVICTION_WINDOW_PER_JOB: usize = 4;

impl Table {
    /// Forgets jobs past their retention, at most once per clock second.
    fn sweep_if_due(&mut self, now: DateTime<Utc>) {
        let due = self
            .swept_at
            .is_none_or(|at| now < at || now - at >= Duration::seconds(1));
        if due {
            self.sweep(now);
        }
    }

    fn sweep(&mut self, now: DateTime<Utc>) {
        self.map.retain(|_, job| !job.reclaimable(now));
        let map = &self.map;
        self.order.retain(|id| map.contains_key(id));
        self.owners.retain(|_, owner| {
            owner.order.retain(|id| map.contains_key(id));
            owner.open.retain(|id| map.contains_key(id));
            !owner.order.is_empty() || owner.downloading > 0
        });
        self.swept_at = Some(now);
    }

    /// Snapshots of one owner's live jobs among `ids`, in that order, advanced to `now`.
    fn snapshots(&mut self, ids: &[String], now: DateTime<Utc>) -> Vec<JobSnapshot> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.map.get_mut(id).filter(|job| !job.reclaimable(now)) {
                job.advance(now, false);
                out.push(job.snapshot.clone());
            }
        }
        out
    }

    /// Drops `count` jobs: settled ones among the oldest first, then the
    /// oldest. Done in batches so the look through the oldest jobs is paid
    /// once per batch, not on every create at the cap.
    /// Removes `count` jobs and hands them back, to be dropped after the lock.
    fn evict(&mut self, count: usize) -> Vec<Job> {
        let map = &self.map;
        let settled: Vec<String> = self
            .order
            .iter()
            .take(count * EVICTION_WINDOW_PER_JOB)
            .filter(|id| map.get(*id).is_some_and(|j| j.settled_at.is_some()))
            .take(count)
            .cloned()
            .collect();
        let mut evicted: Vec<Job> = settled.iter().filter_map(|id| self.forget(id)).collect();
        while evicted.len() < count {
            let Some(id) = self.order.pop_front() else {
                break;
            };
            evicted.extend(self.forget(&id));
        }
        evicted
    }

    /// Removes a job and its place in its owner's index (the global order is
    /// compacted lazily).
    fn forget(&mut self, id: &str) -> Option<Job> {
        let job = self.map.remove(id)?;
        let key = (job.spec.owner_tag.clone(), job.spec.owner.clone());
        if let Some(owner) = self.owners.get_mut(&key) {
            remove_id(&mut owner.order, id);
            remove_id(&mut owner.open, id);
            if owner.order.is_empty() && owner.downloading == 0 {
                self.owners.remove(&key);
            }
        }
        Some(job)
    }
}

impl Deref for Table {
    type Target = HashMap<String, Job>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl DerefMut for Table {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

/// Jobs kept at most; past it the oldest settled (else oldest) jobs are
/// dropped, 1% at a time, so jobs that never expire cannot grow memory
/// without bound.
pub const DEFAULT_MAX_JOBS: usize = 10_000;

impl JobRegistry {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, DEFAULT_MAX_JOBS)
    }

    pub fn with_capacity(clock: Arc<dyn Clock>, max_jobs: usize) -> Self {
        JobRegistry {
            inner: Arc::new(Inner {
                clock,
                jobs: Mutex::new(Table::default()),
                max_jobs: max_jobs.max(1),
            }),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        if jobs.order.len() > 2 * jobs.map.len() + 64 {
            // Removed jobs left their ids behind (a still clock delays sweeps).
            let map = &jobs.map;
            let live: VecDeque<String> = jobs
                .order
                .iter()
                .filter(|id| map.contains_key(*id))
                .cloned()
                .collect();
            jobs.order = live;
        }
        if jobs.contains_key(&spec.id) {
            return Err(Error::Conflict(format!("job {}", spec.id)));
        }
        let evicted = if jobs.len() >= self.inner.max_jobs {
            // Down to 99% of the cap at once (at least one job).
            let excess = jobs.len() + 1 - self.inner.max_jobs;
            jobs.evict(excess.max(self.inner.max_jobs / 100))
        } else {
            Vec::new()
        };
        let entry_is_file: Vec<bool> = spec
            .archive
            .entries()
            .iter()
            .map(|e| matches!(e.body, crate::zip::EntryBody::File { .. }))
            .collect();
        let steps = match spec.pacing {
            Pacing::AfterPolls(n) => (0, n),
            _ => (0, 1),
        };
        let snapshot = JobSnapshot {
            id: spec.id.clone(),
            name: spec.name.clone(),
            context: spec.context.clone(),
            archive_len: spec.archive.len(),
            owner_tag: spec.owner_tag.clone(),
            owner: spec.owner.clone(),
            state: JobState::Queued,
            created_at: now,
            ready_at: None,
            expires_at: None,
            download_started_at: None,
            finished_at: None,
            polls: 0,
            steps,
            entries_total: entry_is_file.len() as u64,
            entries_done: 0,
            file_count: spec.file_count,
            files_done: 0,
            files_skipped: spec.files_skipped,
            folders_skipped: spec.folders_skipped,
            active_downloads: 0,
            acknowledged: false,
            bytes_sent: 0,
            downloads: 0,
            error: None,
        };
        let mut job = Job {
            spec,
            snapshot,
            entry_is_file,
            settled_at: None,
        };
        job.advance(now, false);
        let out = job.snapshot.clone();
        jobs.order.push_back(out.id.clone());
        let owner = jobs
            .owners
            .entry((out.owner_tag.clone(), out.owner.clone()))
            .or_default();
        owner.order.push_back(out.id.clone());
        owner.open.push_back(out.id.clone());
        jobs.insert(out.id.clone(), job);
        // Freeing a hundred evicted jobs is not short: not under the lock.
        drop(jobs);
        drop(evicted);
        Ok(out)
    }

    /// Current state without counting as a poll.
    pub fn get(&self, id: &str) -> Option<JobSnapshot> {
        self.observe(id, false)
    }

    /// A client's status poll: advances poll-paced jobs.
    pub fn poll(&self, id: &str) -> Option<JobSnapshot> {
        self.observe(id, true)
    }

    fn observe(&self, id: &str, poll: bool) -> Option<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::live(&mut jobs, id, now)?;
        job.advance(now, poll);
        Some(job.snapshot.clone())
    }

    /// The job, unless its retention has passed (then it is forgotten now).
    fn live<'a>(jobs: &'a mut Table, id: &str, now: DateTime<Utc>) -> Option<&'a mut Job> {
        if jobs.get(id)?.reclaimable(now) {
            jobs.forget(id);
            return None;
        }
        jobs.get_mut(id)
    }

    pub fn list(&self) -> Vec<JobSnapshot> {
        self.list_where(|_| true)
    }

    /// Jobs `keep` accepts, oldest first; only those are advanced and copied.
    fn list_where(&self, keep: impl Fn(&Job) -> bool) -> Vec<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        let mut out: Vec<JobSnapshot> = jobs
            .values_mut()
            .filter(|job| !job.reclaimable(now) && keep(job))
            .map(|job| {
                job.advance(now, false);
                job.snapshot.clone()
            })
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Jobs with this tag and owner, oldest first.
    pub fn list_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.of_owner(owner_tag, owner, |o| o.order.iter().cloned().collect())
    }

    /// Jobs with this tag and owner not yet acknowledged, oldest first.
    pub fn open_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.of_owner(owner_tag, owner, |o| o.open.iter().cloned().collect())
    }

    /// The newest job with this tag and owner that `wanted` accepts.
    pub fn newest_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        wanted: impl Fn(&JobSnapshot) -> bool,
    ) -> Option<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let key = (owner_tag.to_owned(), owner.clone());
        let ids: Vec<String> = jobs.owners.get(&key)?.order.iter().rev().cloned().collect();
        ids.iter().find_map(|id| {
            jobs.snapshots(std::slice::from_ref(id), now)
                .pop()
                .filter(|job| wanted(job))
        })
    }

    /// Downloads in progress of jobs with this tag and owner.
    pub fn downloads_of(&self, owner_tag: &str, owner: &Principal) -> usize {
        let key = (owner_tag.to_owned(), owner.clone());
        self.jobs().owners.get(&key).map_or(0, |o| o.downloading)
    }

    fn of_owner(
        &self,
        owner_tag: &str,
        owner: &Principal,
        ids: impl FnOnce(&OwnerJobs) -> Vec<String>,
    ) -> Vec<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        let key = (owner_tag.to_owned(), owner.clone());
        let ids = jobs.owners.get(&key).map(ids).unwrap_or_default();
        jobs.snapshots(&ids, now)
    }

    /// Starts a download: the job must be ready (or, if reusable, already
    /// downloaded). The ticket reports progress and the outcome.
    pub fn begin_download(&self, id: &str) -> Result<(Arc<Archive>, DownloadTicket), Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::live(&mut jobs, id, now).ok_or_else(|| Error::NotFound(id.to_owned()))?;
        job.advance(now, false);
        let single_use = job.spec.single_use;
        let s = &mut job.snapshot;
        match s.state {
            JobState::Ready => {}
            JobState::Downloading | JobState::Done if !single_use => {}
            JobState::Downloading | JobState::Done | JobState::Expired => {
                return Err(Error::Gone(id.to_owned()))
            }
            JobState::Failed | JobState::Cancelled => return Err(Error::Gone(id.to_owned())),
            JobState::Queued | JobState::Running => return Err(Error::Conflict(id.to_owned())),
        }
        s.downloads += 1;
        s.active_downloads += 1;
        s.download_started_at.get_or_insert(now);
        if single_use {
            s.state = JobState::Downloading;
            job.settled_at.get_or_insert(now);
        }
        let archive = job.spec.archive.clone();
        let owner = (job.spec.owner_tag.clone(), job.spec.owner.clone());
        jobs.owners.entry(owner.clone()).or_default().downloading += 1;
        Ok((
            archive,
            DownloadTicket {
                registry: self.clone(),
                id: id.to_owned(),
                owner,
                single_use,
                settled: AtomicBool::new(false),
            },
        ))
    }

    /// Cancels a job that has not finished; a finished one is left as it is.
    pub fn cancel(&self, id: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Cancelled, None)
    }

    pub fn fail(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error> {
        self.settle(id, JobState::Failed, Some(reason.to_owned()))
    }

    fn settle(
        &self,
        id: &str,
        state: JobState,
        error: Option<String>,
    ) -> Result<JobSnapshot, Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::live(&mut jobs, id, now).ok_or_else(|| Error::NotFound(id.to_owned()))?;
        job.advance(now, false);
        if !job.snapshot.state.is_terminal() {
            job.snapshot.state = state;
            job.snapshot.error = error;
            job.snapshot.finished_at = Some(now);
            job.settled_at.get_or_insert(now);
        }
        Ok(job.snapshot.clone())
    }

    /// Forgets every job (the control plane's reset).
    pub fn clear(&self) {
        *self.jobs() = Table::default();
    }

    pub fn acknowledge(&self, id: &str) {
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        job.snapshot.acknowledged = true;
        let key = (job.spec.owner_tag.clone(), job.spec.owner.clone());
        if let Some(owner) = jobs.owners.get_mut(&key) {
            remove_id(&mut owner.open, id);
        }
    }

    pub fn remove(&self, id: &str) -> Option<JobSnapshot> {
        self.jobs().forget(id).map(|job| job.snapshot)
    }

    /// Forgets every job whose retention has passed; returns how many.
    pub fn sweep(&self) -> usize {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let before = jobs.len();
        jobs.sweep(now);
        before - jobs.len()
    }

    pub fn len(&self) -> usize {
        self.jobs().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Job, DateTime<Utc>)) {
        let now = self.inner.clock.now();
        if let Some(job) = self.jobs().get_mut(id) {
            f(job, now);
        }
    }
}

/// One download in progress; it is the stream's observer. Dropping it
/// unfinished records an interrupted download.
pub struct DownloadTicket {
    registry: JobRegistry,
    id: String,
    /// Whose download this is counted as, even if the job is removed meanwhile.
    owner: OwnerKey,
    single_use: bool,
    settled: AtomicBool,
}

impl DownloadTicket {
    pub fn job_id(&self) -> &str {
        &self.id
    }

    pub fn complete(self) {
        self.finish(true);
    }

    fn finish(&self, complete: bool) {
        if self.settled.swap(true, Ordering::SeqCst) {
            return;
        }
        let single_use = self.single_use;
        if let Some(owner) = self.registry.jobs().owners.get_mut(&self.owner) {
            owner.downloading = owner.downloading.saturating_sub(1);
        }
        self.registry.update(&self.id, |job, now| {
            let s = &mut job.snapshot;
            s.active_downloads = s.active_downloads.saturating_sub(1);
            if s.state.is_terminal() && s.state != JobState::Done {
                return;
            }
            if complete {
                s.files_done = s.file_count;
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

impl Progress for DownloadTicket {
    fn entry_done(&self, index: usize) {
        self.registry.update(&self.id, |job, _| {
            let s = &mut job.snapshot;
            s.entries_done = s.entries_done.max(index as u64 + 1);
            if job.entry_is_file.get(index).copied().unwrap_or(false) && s.files_done < s.file_count
            {
                s.files_done += 1;
            }
        });
    }
}

impl StreamObserver for DownloadTicket {
    fn bytes_sent(&self, n: u64) {
        self.registry
            .update(&self.id, |job, _| job.snapshot.bytes_sent += n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::zip::{DeflateEngine, Deflater};
    use chrono::TimeZone;

    fn setup() -> (Arc<ManualClock>, JobRegistry) {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        ));
        (clock.clone(), JobRegistry::new(clock))
    }

    fn spec(id: &str, pacing: Pacing, single_use: bool) -> JobSpec {
        JobSpec {
            id: id.into(),
            name: "test.zip".into(),
            context: String::new(),
            owner_tag: "test".into(),
            owner: Principal::Anonymous,
            archive: Arc::new(Archive::new(
                Vec::new(),
                Deflater::new(6, DeflateEngine::Fastest),
            )),
            file_count: 0,
            files_skipped: 0,
            folders_skipped: 0,
            pacing,
            download_window: Some(Duration::seconds(30)),
            single_use,
            retention: Duration::hours(12),
            fault: None,
        }
    }

    #[test]
    fn the_owner_index_answers_open_newest_and_downloads() {
        let (_, jobs) = setup();
        let anon = Principal::Anonymous;
        for id in ["a", "b", "c"] {
            jobs.create(spec(id, Pacing::Immediate, false)).unwrap();
        }
        let mut other = spec("x", Pacing::Immediate, false);
        other.owner_tag = "other".into();
        jobs.create(other).unwrap();
        jobs.acknowledge("b");
        let open: Vec<String> = jobs
            .open_of("test", &anon)
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(open, ["a", "c"]);
        assert_eq!(jobs.newest_of("test", &anon, |_| true).unwrap().id, "c");
        assert_eq!(
            jobs.newest_of("test", &anon, |j| j.id != "c").unwrap().id,
            "b"
        );
        assert!(jobs.newest_of("nobody", &anon, |_| true).is_none());

        let (_, ticket) = jobs.begin_download("a").unwrap();
        assert_eq!(jobs.downloads_of("test", &anon), 1);
        // Removing the job mid-download still ends the count when the download ends.
        jobs.remove("a");
        drop(ticket);
        assert_eq!(jobs.downloads_of("test", &anon), 0);
        assert_eq!(jobs.list_of("test", &anon).len(), 2);
    }

    #[test]
    fn the_owner_index_does_not_grow_past_the_cap_on_a_still_clock() {
        let (_, jobs) = setup();
        let jobs = JobRegistry::with_capacity(jobs.inner.clock.clone(), 10);
        for i in 0..1000 {
            jobs.create(spec(&format!("j{i}"), Pacing::Immediate, false))
                .unwrap();
        }
        for i in 0..1000 {
            let id = format!("r{i}");
            jobs.create(spec(&id, Pacing::Immediate, false)).unwrap();
            jobs.remove(&id);
        }
        let table = jobs.jobs();
        let owner = &table.owners[&("test".to_owned(), Principal::Anonymous)];
        assert_eq!(
            (table.map.len(), owner.order.len(), owner.open.len()),
            (9, 9, 9)
        );
        assert!(table.order.len() <= 2 * 9 + 65, "{}", table.order.len());
    }

    #[test]
    fn poll_pacing_walks_the_states() {
        let (_, jobs) = setup();
        let job = jobs
            .create(spec("j", Pacing::AfterPolls(3), false))
            .unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(jobs.poll("j").unwrap().state, JobState::Running);
        assert_eq!(jobs.poll("j").unwrap().steps, (2, 3));
        let ready = jobs.poll("j").unwrap();
        assert_eq!((ready.state, ready.steps), (JobState::Ready, (3, 3)));
        assert!(matches!(
            jobs.create(spec("j", Pacing::Immediate, false)),
            Err(Error::Conflict(_))
        ));
    }

    #[test]
    fn downloads_before_ready_are_refused() {
        let (clock, jobs) = setup();
        jobs.create(spec(
            "j",
            Pacing::AfterDuration(Duration::seconds(5)),
            false,
        ))
        .unwrap();
        assert!(matches!(jobs.begin_download("j"), Err(Error::Conflict(_))));
        clock.advance(Duration::seconds(5));
        assert_eq!(jobs.get("j").unwrap().state, JobState::Ready);
        assert!(jobs.begin_download("j").is_ok());
    }

    #[test]
    fn single_use_allows_one_download() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        let (_, ticket) = jobs.begin_download("j").unwrap();
        assert_eq!(jobs.get("j").unwrap().state, JobState::Downloading);
        assert_eq!(jobs.get("j").unwrap().active_downloads, 1);
        assert!(matches!(jobs.begin_download("j"), Err(Error::Gone(_))));
        ticket.bytes_sent(100);
        ticket.entry_done(0);
        ticket.finished(true);
        drop(ticket);
        assert_eq!(jobs.get("j").unwrap().bytes_sent, 100);
        assert_eq!(jobs.get("j").unwrap().active_downloads, 0);
        assert_eq!(jobs.get("j").unwrap().state, JobState::Done);
        assert!(matches!(jobs.begin_download("j"), Err(Error::Gone(_))));
    }

    #[test]
    fn an_interrupted_single_use_download_fails_the_job() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        drop(jobs.begin_download("j").unwrap());
        let job = jobs.get("j").unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_deref(), Some("download interrupted"));
    }

    #[test]
    fn reusable_jobs_serve_many_downloads() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, false)).unwrap();
        for _ in 0..3 {
            jobs.begin_download("j").unwrap().1.complete();
        }
        let job = jobs.get("j").unwrap();
        assert_eq!((job.state, job.downloads), (JobState::Ready, 3));
    }

    #[test]
    fn unstarted_jobs_expire_and_are_reclaimed() {
        let (clock, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        clock.advance(Duration::seconds(31));
        assert_eq!(jobs.get("j").unwrap().state, JobState::Expired);
        assert!(matches!(jobs.begin_download("j"), Err(Error::Gone(_))));
        clock.advance(Duration::hours(12));
        assert_eq!(jobs.sweep(), 1);
        assert!(jobs.get("j").is_none());
    }

    #[test]
    fn a_started_download_outlives_the_window_and_status_is_kept_for_retention() {
        let (clock, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        clock.advance(Duration::seconds(10));
        let (_, ticket) = jobs.begin_download("j").unwrap();
        clock.advance(Duration::minutes(10));
        assert_eq!(jobs.get("j").unwrap().state, JobState::Downloading);
        ticket.complete();
        clock.advance(Duration::hours(11));
        assert_eq!(jobs.sweep(), 0);
        assert_eq!(jobs.get("j").unwrap().state, JobState::Done);
        clock.advance(Duration::hours(2));
        assert!(jobs.get("j").is_none(), "gone once its retention passed");
        assert_eq!(jobs.len(), 0);
    }

    #[test]
    fn cancel_settles_only_unfinished_jobs() {
        let (_, jobs) = setup();
        jobs.create(spec("a", Pacing::AfterPolls(5), false))
            .unwrap();
        assert_eq!(jobs.cancel("a").unwrap().state, JobState::Cancelled);
        assert!(matches!(jobs.begin_download("a"), Err(Error::Gone(_))));
        jobs.create(spec("b", Pacing::Immediate, true)).unwrap();
        jobs.begin_download("b").unwrap().1.complete();
        assert_eq!(jobs.cancel("b").unwrap().state, JobState::Done);
        assert!(matches!(jobs.cancel("zzz"), Err(Error::NotFound(_))));
    }

    #[test]
    fn time_paced_jobs_are_ready_and_expire_on_the_clock_not_when_observed() {
        let (clock, jobs) = setup();
        jobs.create(spec("j", Pacing::AfterDuration(Duration::seconds(5)), true))
            .unwrap();
        let created = jobs.get("j").unwrap().created_at;
        // Nobody looks until well after ready (5 s) + window (30 s).
        clock.advance(Duration::seconds(60));
        let job = jobs.get("j").unwrap();
        assert_eq!(job.ready_at, Some(created + Duration::seconds(5)));
        assert_eq!(job.state, JobState::Expired);
    }

    #[test]
    fn the_registry_is_capped() {
        let (_, jobs) = setup();
        let jobs = JobRegistry::with_capacity(jobs.inner.clock.clone(), 3);
        for i in 0..5 {
            let mut s = spec(&format!("j{i}"), Pacing::Immediate, false);
            s.download_window = None;
            jobs.create(s).unwrap();
        }
        assert_eq!(jobs.len(), 3);
        assert!(jobs.get("j4").is_some());
    }

    #[test]
    fn the_cap_drops_a_settled_job_before_an_older_live_one() {
        let (_, jobs) = setup();
        let jobs = JobRegistry::with_capacity(jobs.inner.clock.clone(), 3);
        for i in 0..3 {
            let mut s = spec(&format!("j{i}"), Pacing::Immediate, false);
            s.download_window = None;
            jobs.create(s).unwrap();
        }
        jobs.cancel("j1").unwrap();
        jobs.remove("j2");
        for i in 3..5 {
            jobs.create(spec(&format!("j{i}"), Pacing::Immediate, false))
                .unwrap();
        }
        let ids: Vec<String> = jobs.list().into_iter().map(|j| j.id).collect();
        // j2 was removed, j1 (settled) went next, then j0 (the oldest live one).
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(&"j1".to_owned()), "{ids:?}");
        assert!(ids.contains(&"j4".to_owned()) && ids.contains(&"j3".to_owned()));
    }

    #[test]
    fn many_settled_jobs_do_not_accumulate() {
        let (clock, jobs) = setup();
        for i in 0..1000 {
            jobs.create(spec(&format!("j{i}"), Pacing::Immediate, true))
                .unwrap();
            jobs.cancel(&format!("j{i}")).unwrap();
            clock.advance(Duration::minutes(1));
        }
        // Each create reclaims what passed its 12 h retention: about 720 remain.
        assert!(jobs.len() <= 722, "{}", jobs.len());
    }
}
