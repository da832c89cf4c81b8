//! The archive job registry every dialect shares: the neutral state machine
//! (queued → running → ready → downloading → done, or failed / cancelled /
//! expired), deterministic pacing, progress counters, expiry and single-use
//! rules, all against an injectable clock. Settled jobs are reclaimed after
//! their retention, so a long run does not grow without bound.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use zipgate_api::{Error, JobSnapshot, JobState, Principal};

use crate::clock::Clock;
use crate::events::Events;
use crate::recheck::{Replacement, Sources};
use crate::zip::Archive;

mod backend;
mod job;
mod redis;
mod table;
mod ticket;
pub mod view;

pub use backend::{Claimed, ControlHook, JobBackend, JobCounts};
use job::Job;
pub use job::{Building, JobFault, JobSpec, StuckState};
pub use redis::{check_namespace, RedisJobs, TreeSource};
use table::{remove_key, Key, OwnerJobs, Table};
pub use ticket::DownloadTicket;

/// What a download must satisfy besides the job's own rules.
#[derive(Clone, Copy, Default)]
pub struct Admission<'a> {
    /// The job must belong to this dialect.
    pub owner_tag: Option<&'a str>,
    /// The job's owner may have at most this many of the dialect's
    /// downloads streaming.
    pub max_per_owner: Option<usize>,
}

/// What a download-time recheck reads from a job that keeps its sources.
pub struct RecheckInput {
    pub sources: Arc<Sources>,
    pub owner: Principal,
    pub fault: Option<JobFault>,
}

/// A download that has started.
pub struct Claim {
    pub archive: Arc<Archive>,
    pub ticket: DownloadTicket,
    /// Fires when the job is cancelled: the download is to be cut.
    pub stop: CancellationToken,
    /// The job as the claim left it.
    pub job: JobSnapshot,
    /// For a job that rechecks its items when a download starts.
    pub recheck: Option<RecheckInput>,
}

/// What a download would get, claiming nothing (a `HEAD` request).
pub struct Peek {
    pub archive: Arc<Archive>,
    pub job: JobSnapshot,
    pub recheck: Option<RecheckInput>,
}

#[derive(Clone)]
pub struct JobRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    jobs: Mutex<Table>,
    limits: JobLimits,
    /// The live feed: told of each change a request makes to a job
    /// (changes by time alone show at the next look).
    events: Events,
    /// Numbered sequences by `dialect.name` (`next_in_sequence`).
    sequences: Mutex<std::collections::HashMap<String, u64>>,
    /// Draw numbers leased so far, by generator (`lease`); kept by `clear`.
    leases: Mutex<std::collections::HashMap<String, u64>>,
}

/// How many jobs the registry keeps. The per-principal cap comes first, so
/// one user's flood is refused instead of evicting other users' pending
/// jobs; the global cap is the last resort against many principals at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobLimits {
    /// Jobs kept at most; past it the oldest settled (else oldest) jobs go.
    pub max_jobs: usize,
    /// Jobs one principal may hold over every dialect; past it its own
    /// settled jobs go first, else its create is refused (`TooManyJobs`).
    pub max_jobs_per_principal: usize,
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits {
            max_jobs: DEFAULT_MAX_JOBS,
            max_jobs_per_principal: DEFAULT_MAX_JOBS_PER_PRINCIPAL,
        }
    }
}

/// Jobs kept at most; past it the oldest settled (else oldest) jobs are
/// dropped, 1% at a time, so jobs that never expire cannot grow memory
/// without bound.
pub const DEFAULT_MAX_JOBS: usize = 10_000;

/// Jobs one principal may hold: a tenth of the global cap, so at least ten
/// users at once can fill the registry before anyone's pending job is evicted.
pub const DEFAULT_MAX_JOBS_PER_PRINCIPAL: usize = 1_000;

impl JobRegistry {
    #[cfg(test)]
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(clock, JobLimits::default())
    }

    /// A global cap only (no principal is ever refused).
    #[cfg(test)]
    pub fn with_capacity(clock: Arc<dyn Clock>, max_jobs: usize) -> Self {
        Self::with_limits(
            clock,
            JobLimits {
                max_jobs,
                max_jobs_per_principal: usize::MAX,
            },
        )
    }

    pub fn with_limits(clock: Arc<dyn Clock>, limits: JobLimits) -> Self {
        JobRegistry {
            inner: Arc::new(Inner {
                clock,
                jobs: Mutex::new(Table::default()),
                limits: JobLimits {
                    max_jobs: limits.max_jobs.max(1),
                    max_jobs_per_principal: limits.max_jobs_per_principal.max(1),
                },
                events: Events::default(),
                sequences: Default::default(),
                leases: Default::default(),
            }),
        }
    }

    /// The next number of `owner_tag`'s sequence `name`: 1 after a `clear`.
    pub fn next_in_sequence(&self, owner_tag: &str, name: &str) -> u64 {
        let mut sequences = self
            .inner
            .sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let next = sequences.entry(format!("{owner_tag}.{name}")).or_insert(0);
        *next += 1;
        *next
    }

    /// The first of `count` draw numbers of generator `name` no lease got.
    pub fn lease(&self, name: &str, count: u64) -> u64 {
        let mut leases = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
        let next = leases.entry(name.to_owned()).or_insert(0);
        let first = *next;
        // Past 2^64 draws a generator starts over; nothing lives that long.
        *next = next.wrapping_add(count);
        first
    }

    /// Reports job changes to `events` (before the registry is shared).
    pub fn with_events(mut self, events: Events) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.events = events;
        }
        self
    }

    /// Tells the live feed about a job; the JSON is built only if someone
    /// listens. Called under the registry's lock (the feed's is a leaf), so
    /// one job's events go out in the order its changes happened.
    fn announce(&self, job: &JobSnapshot) {
        self.inner.events.publish("job", || {
            serde_json::to_string(&view::job_view(job)).unwrap_or_default()
        });
    }

    fn recording(&self) -> bool {
        self.inner.events.recording()
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error> {
        let now = self.inner.clock.now();
        // Built before the lock: every worker thread creates jobs.
        let mut job = Job::new(spec, now);
        job.advance(now, false);
        let out = job.snapshot.clone();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        if jobs.order.len() > 2 * jobs.len() + 64 {
            // Removed jobs left their keys behind (a still clock delays sweeps).
            jobs.compact();
        }
        // A job past its retention is gone, swept yet or not: its id is free.
        if Self::live(&mut jobs, &out.id, now).is_some() {
            return Err(Error::Conflict(format!("job {}", out.id)));
        }
        let JobLimits {
            max_jobs,
            max_jobs_per_principal: per_principal,
        } = self.inner.limits;
        let mut evicted = Vec::new();
        // A per-principal cap at or above the global one adds nothing: the
        // global policy (oldest settled, then oldest) applies alone.
        let held = if per_principal < max_jobs {
            jobs.principal_len(&out.owner)
        } else {
            0
        };
        if held >= per_principal {
            // Its own settled jobs make room, 1% of its cap at once.
            let excess = held + 1 - per_principal;
            evicted = jobs.evict_settled_of(&out.owner, excess.max(per_principal / 100), now);
            if jobs.principal_len(&out.owner) >= per_principal {
                drop(jobs);
                drop(evicted);
                return Err(Error::TooManyJobs {
                    limit: per_principal as u64,
                });
            }
        }
        if jobs.len() >= max_jobs {
            // Down to 99% of the cap at once (at least one job).
            let excess = jobs.len() + 1 - max_jobs;
            evicted.extend(jobs.evict(excess.max(max_jobs / 100)));
        }
        jobs.insert(job);
        // Under the lock, so the job's events stay in order of its changes.
        self.announce(&out);
        // Freeing a hundred evicted jobs is not short: not under the lock.
        drop(jobs);
        drop(evicted);
        Ok(out)
    }

    /// The dialect that created the job, if there is one by this id.
    pub fn owner_tag(&self, id: &str) -> Option<&'static str> {
        self.jobs().get(id).map(|job| job.snapshot.owner_tag)
    }

    /// The job's archive, whatever its state (asked before a download is
    /// claimed; the claim makes every check).
    pub fn archive(&self, id: &str) -> Option<Arc<Archive>> {
        self.jobs().get(id).map(|job| job.spec.archive.clone())
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
        let before = (job.snapshot.state, job.snapshot.steps);
        job.advance(now, poll);
        if before != (job.snapshot.state, job.snapshot.steps) {
            self.announce(&job.snapshot);
        }
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

    /// Jobs held, by dialect and state (`/_zipgate/metrics`): counted, not
    /// copied, in order.
    pub fn counts(&self) -> JobCounts {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        for job in jobs.jobs_mut().filter(|job| !job.reclaimable(now)) {
            job.advance(now, false);
            let state = serde_json::to_value(job.snapshot.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *counts
                .entry((job.snapshot.owner_tag.to_owned(), state))
                .or_default() += 1;
        }
        counts.into_iter().collect()
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
            .jobs_mut()
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
        self.of_owner(owner_tag, owner, |o| o.order.iter().copied().collect())
    }

    /// Jobs with this tag and owner not yet acknowledged, oldest first.
    pub fn open_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.of_owner(owner_tag, owner, |o| o.open.iter().copied().collect())
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
        let keys: Vec<Key> = jobs
            .owner_jobs(owner_tag, owner)?
            .order
            .iter()
            .rev()
            .copied()
            .collect();
        keys.iter().find_map(|key| {
            jobs.snapshots(std::slice::from_ref(key), now)
                .pop()
                .filter(|job| wanted(job))
        })
    }

    fn of_owner(
        &self,
        owner_tag: &str,
        owner: &Principal,
        keys: impl FnOnce(&OwnerJobs) -> Vec<Key>,
    ) -> Vec<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        jobs.sweep_if_due(now);
        let keys = jobs
            .owner_jobs(owner_tag, owner)
            .map(keys)
            .unwrap_or_default();
        jobs.snapshots(&keys, now)
    }

    /// The job behind `id` if `admission` lets a download of it start now.
    /// Unknown jobs (and other dialects') are `NotFound` before the cap is
    /// looked at, so a guessed id learns nothing from it.
    fn admit<'t>(
        jobs: &'t mut Table,
        id: &str,
        admission: Admission<'_>,
        now: DateTime<Utc>,
    ) -> Result<&'t mut Job, Error> {
        let not_found = || Error::NotFound(id.to_owned());
        let job = Self::live(jobs, id, now).ok_or_else(not_found)?;
        if admission
            .owner_tag
            .is_some_and(|tag| tag != job.snapshot.owner_tag)
        {
            return Err(not_found());
        }
        if let Some(limit) = admission.max_per_owner {
            let owner = (job.snapshot.owner_tag, job.snapshot.owner.clone());
            let busy = jobs
                .owner_jobs(owner.0, &owner.1)
                .map_or(0, |o| o.downloading);
            if busy >= limit {
                return Err(Error::TooManyDownloads {
                    limit: limit as u64,
                });
            }
        }
        let job = jobs.get_mut(id).ok_or_else(not_found)?;
        job.may_download(id, now)?;
        Ok(job)
    }

    /// Swaps in the archive a download-time recheck cut, if the job still
    /// holds the one it was cut from, and counts what was left out. Taken
    /// only when a recheck lost something; the claim itself is one lock.
    pub fn cut_archive(&self, id: &str, cut: &Replacement) {
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        if !Arc::ptr_eq(&job.spec.archive, &cut.from) {
            return;
        }
        job.spec.archive = cut.archive.clone();
        job.spec.sources = Some(cut.sources.clone());
        job.entry_is_file = job::files_of(&cut.archive);
        let s = &mut job.snapshot;
        s.archive_len = cut.archive.len();
        s.entries_total = job.entry_is_file.len() as u64;
        s.files_skipped += cut.files;
        s.folders_skipped += cut.folders;
    }

    /// Ends the build of `id`'s archive, if the job still holds the archive
    /// the build started from: swaps in the built one (the job may now
    /// become ready), or fails the job with the reason. A job that was
    /// cancelled or forgotten meanwhile is left alone.
    pub fn finish_build(&self, id: &str, from: &Arc<Archive>, result: Result<Archive, String>) {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        if !Arc::ptr_eq(&job.spec.archive, from) || job.spec.building.is_none() {
            return;
        }
        job.spec.building = None;
        match result {
            Ok(built) => {
                let built = Arc::new(built);
                job.snapshot.archive_len = built.len();
                job.spec.archive = built;
                job.spec.built_at = Some(now);
            }
            Err(reason) => {
                job.advance(now, false);
                if !job.snapshot.state.is_terminal() {
                    let s = &mut job.snapshot;
                    s.state = JobState::Failed;
                    s.error = Some(reason);
                    s.finished_at = Some(now);
                    job.settled_at.get_or_insert(now);
                }
            }
        }
        self.announce(&job.snapshot);
    }

    /// Starts a download: the job must be ready (or, if reusable, already
    /// downloaded) and `admission` must let it in; checking and claiming
    /// happen under one lock. The ticket reports progress and the outcome.
    pub fn begin_download(&self, id: &str, admission: Admission<'_>) -> Result<Claim, Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::admit(&mut jobs, id, admission, now)?;
        let recheck = job.recheck_input();
        let single_use = job.spec.single_use;
        let s = &mut job.snapshot;
        s.downloads += 1;
        s.active_downloads += 1;
        s.download_started_at.get_or_insert(now);
        if single_use {
            s.state = JobState::Downloading;
            job.settled_at.get_or_insert(now);
        }
        let archive = job.spec.archive.clone();
        let stop = job
            .spec
            .downloads_stop
            .get_or_insert_with(CancellationToken::new)
            .clone();
        let snapshot = job.snapshot.clone();
        let owner = (snapshot.owner_tag, snapshot.owner.clone());
        let key = jobs.key_of(id).expect("the job was found by this id");
        jobs.owner_entry(owner.0, &owner.1).downloading += 1;
        self.announce(&snapshot);
        drop(jobs);
        Ok(Claim {
            archive,
            stop,
            job: snapshot,
            recheck,
            ticket: DownloadTicket {
                registry: self.clone(),
                key,
                owner,
                single_use,
                settled: AtomicBool::new(false),
                started: std::time::Instant::now(),
                announced_ms: std::sync::atomic::AtomicU64::new(0),
            },
        })
    }

    /// What [`JobRegistry::begin_download`] would answer, claiming nothing:
    /// the archive and the job when a download could start now (a `HEAD`
    /// request).
    pub fn peek_download(&self, id: &str, admission: Admission<'_>) -> Result<Peek, Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::admit(&mut jobs, id, admission, now)?;
        Ok(Peek {
            archive: job.spec.archive.clone(),
            job: job.snapshot.clone(),
            recheck: job.recheck_input(),
        })
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
            // A build nobody will download stops now.
            job.spec.building = None;
            // A cancelled job's downloads stop too, as if their clients had
            // gone; a failed job's (a dialect giving up on a create) are left.
            if state == JobState::Cancelled {
                if let Some(stop) = job.spec.downloads_stop.take() {
                    stop.cancel();
                }
            }
        }
        self.announce(&job.snapshot);
        Ok(job.snapshot.clone())
    }

    /// Forgets every job and restarts every sequence (the control plane's reset).
    pub fn clear(&self) {
        *self.jobs() = Table::default();
        self.inner
            .sequences
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn acknowledge(&self, id: &str) {
        let mut jobs = self.jobs();
        let Some(job) = jobs.get_mut(id) else {
            return;
        };
        job.snapshot.acknowledged = true;
        let (owner_tag, owner) = (job.snapshot.owner_tag, job.snapshot.owner.clone());
        let key = jobs.key_of(id).expect("the job was found by this id");
        if let Some(lists) = jobs.owner_jobs_mut(owner_tag, &owner) {
            remove_key(&mut lists.open, key);
        }
    }

    pub fn remove(&self, id: &str) -> Option<JobSnapshot> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        // One past its retention is gone already, swept or not.
        Self::live(&mut jobs, id, now)?;
        let removed = jobs.forget(id).map(|job| job.snapshot)?;
        self.inner.events.publish("job", || {
            serde_json::json!({"id": removed.id, "dialect": removed.owner_tag, "removed": true})
                .to_string()
        });
        drop(jobs);
        Some(removed)
    }

    /// Forgets every job whose retention has passed; returns how many.
    #[cfg(test)]
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

    /// Changes the job in slot `key`; with `announce`, the live feed is told.
    fn update(&self, key: Key, announce: bool, f: impl FnOnce(&mut Job, DateTime<Utc>)) {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let Some(job) = jobs.job_mut(key) else {
            return;
        };
        f(job, now);
        if announce {
            self.announce(&job.snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::zip::{DeflateEngine, Deflater};
    use crate::zip::{Progress, StreamObserver};
    use chrono::Duration;
    use chrono::TimeZone;
    use zipgate_api::Pacing;

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
            owner_tag: "test",
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
            sources: None,
            building: None,
        }
    }

    #[test]
    fn a_job_is_not_ready_before_its_archive_is_built() {
        use std::sync::atomic::Ordering;
        let (clock, jobs) = setup();
        let building_spec = |id: &str| {
            let mut spec = spec(id, Pacing::Immediate, false);
            let (building, cancelled) = Building::new();
            spec.building = Some(building);
            (spec.archive.clone(), spec, cancelled)
        };
        let (from, made, _) = building_spec("built");
        jobs.create(made).unwrap();
        clock.advance(Duration::seconds(5));
        assert_eq!(jobs.poll("built").unwrap().state, JobState::Running);
        assert!(jobs.begin_download("built", Admission::default()).is_err());
        // A build from some other archive (a later job under the id) is ignored.
        let stranger = Arc::new(Archive::new(
            Vec::new(),
            Deflater::new(6, DeflateEngine::Fastest),
        ));
        jobs.finish_build(
            "built",
            &stranger,
            Ok(Archive::new(
                Vec::new(),
                Deflater::new(6, DeflateEngine::Fastest),
            )),
        );
        assert_eq!(jobs.get("built").unwrap().state, JobState::Running);
        let built = Archive::new(Vec::new(), Deflater::new(6, DeflateEngine::Fastest));
        jobs.finish_build("built", &from, Ok(built));
        let ready = jobs.get("built").unwrap();
        assert_eq!(ready.state, JobState::Ready);
        // Ready when the build ended, not when the pacing alone said.
        assert_eq!(ready.ready_at, Some(clock.now()));
        assert!(ready.archive_len.is_some());

        let (from, made, cancelled) = building_spec("failing");
        jobs.create(made).unwrap();
        jobs.finish_build("failing", &from, Err("disk gone".into()));
        let failed = jobs.get("failing").unwrap();
        assert_eq!(
            (failed.state, failed.error.as_deref()),
            (JobState::Failed, Some("disk gone"))
        );
        assert!(
            cancelled.load(Ordering::Relaxed),
            "a settled job's build is not wanted"
        );

        let (from, made, cancelled) = building_spec("cancelled");
        jobs.create(made).unwrap();
        assert!(!cancelled.load(Ordering::Relaxed));
        jobs.cancel("cancelled").unwrap();
        assert!(
            cancelled.load(Ordering::Relaxed),
            "cancelling stops the build"
        );
        jobs.finish_build(
            "cancelled",
            &from,
            Ok(Archive::new(
                Vec::new(),
                Deflater::new(6, DeflateEngine::Fastest),
            )),
        );
        assert_eq!(jobs.get("cancelled").unwrap().state, JobState::Cancelled);

        let (_, made, cancelled) = building_spec("forgotten");
        jobs.create(made).unwrap();
        jobs.clear();
        assert!(cancelled.load(Ordering::Relaxed), "a reset stops the build");
    }

    #[test]
    fn the_owner_index_answers_open_newest_and_downloads() {
        let (_, jobs) = setup();
        let anon = Principal::Anonymous;
        for id in ["a", "b", "c"] {
            jobs.create(spec(id, Pacing::Immediate, false)).unwrap();
        }
        let mut other = spec("x", Pacing::Immediate, false);
        other.owner_tag = "other";
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

        let one = Admission {
            owner_tag: Some("test"),
            max_per_owner: Some(1),
        };
        let ticket = jobs.begin_download("a", one).unwrap().ticket;
        assert!(matches!(
            jobs.begin_download("c", one),
            Err(Error::TooManyDownloads { limit: 1 })
        ));
        assert!(matches!(
            jobs.peek_download("c", one),
            Err(Error::TooManyDownloads { .. })
        ));
        // An unknown id, or another dialect's job, is not found before the cap.
        assert!(matches!(
            jobs.begin_download("zz", one),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            jobs.begin_download("x", one),
            Err(Error::NotFound(_))
        ));
        // Removing the job mid-download still ends the count when the download ends.
        jobs.remove("a");
        drop(ticket);
        assert!(jobs.peek_download("c", one).is_ok());
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
        let owner = table.owner_jobs("test", &Principal::Anonymous).unwrap();
        assert_eq!(
            (table.len(), owner.order.len(), owner.open.len()),
            (9, 9, 9)
        );
        assert!(table.order.len() <= 2 * 9 + 65, "{}", table.order.len());
    }

    #[test]
    fn a_ticket_never_touches_a_later_job_under_the_same_id() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, false)).unwrap();
        let ticket = jobs
            .begin_download("j", Admission::default())
            .unwrap()
            .ticket;
        jobs.remove("j");
        // The new job takes the freed slot, under a new generation.
        jobs.create(spec("j", Pacing::Immediate, false)).unwrap();
        ticket.bytes_sent(7);
        ticket.entry_done(0);
        ticket.complete();
        let job = jobs.get("j").unwrap();
        assert_eq!(
            (
                job.bytes_sent,
                job.downloads,
                job.active_downloads,
                job.state
            ),
            (0, 0, 0, JobState::Ready)
        );
        // The stale ticket no longer counts against its owner.
        let one = Admission {
            owner_tag: None,
            max_per_owner: Some(1),
        };
        assert!(jobs.peek_download("j", one).is_ok());
        assert_eq!(jobs.len(), 1);
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
        assert!(matches!(
            jobs.begin_download("j", Admission::default()),
            Err(Error::Conflict(_))
        ));
        clock.advance(Duration::seconds(5));
        assert_eq!(jobs.get("j").unwrap().state, JobState::Ready);
        assert!(jobs.begin_download("j", Admission::default()).is_ok());
    }

    #[test]
    fn single_use_allows_one_download() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        let ticket = jobs
            .begin_download("j", Admission::default())
            .unwrap()
            .ticket;
        assert_eq!(jobs.get("j").unwrap().state, JobState::Downloading);
        assert_eq!(jobs.get("j").unwrap().active_downloads, 1);
        assert!(matches!(
            jobs.begin_download("j", Admission::default()),
            Err(Error::Gone(_))
        ));
        ticket.bytes_sent(100);
        ticket.entry_done(0);
        ticket.finished(true);
        drop(ticket);
        assert_eq!(jobs.get("j").unwrap().bytes_sent, 100);
        assert_eq!(jobs.get("j").unwrap().active_downloads, 0);
        assert_eq!(jobs.get("j").unwrap().state, JobState::Done);
        assert!(matches!(
            jobs.begin_download("j", Admission::default()),
            Err(Error::Gone(_))
        ));
    }

    #[test]
    fn peeking_at_a_download_claims_nothing() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        jobs.create(spec("q", Pacing::AfterPolls(5), true)).unwrap();
        for _ in 0..3 {
            assert!(jobs.peek_download("j", Admission::default()).is_ok());
        }
        let job = jobs.get("j").unwrap();
        assert_eq!(
            (job.state, job.downloads, job.active_downloads),
            (JobState::Ready, 0, 0)
        );
        assert!(matches!(
            jobs.peek_download("q", Admission::default()),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            jobs.peek_download("x", Admission::default()),
            Err(Error::NotFound(_))
        ));
        // After the one download, a peek answers as the download would.
        let ticket = jobs
            .begin_download("j", Admission::default())
            .unwrap()
            .ticket;
        ticket.complete();
        assert!(matches!(
            jobs.peek_download("j", Admission::default()),
            Err(Error::Gone(_))
        ));
    }

    #[test]
    fn an_interrupted_single_use_download_fails_the_job() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        drop(jobs.begin_download("j", Admission::default()).unwrap());
        let job = jobs.get("j").unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error.as_deref(), Some("download interrupted"));
    }

    #[test]
    fn reusable_jobs_serve_many_downloads() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, false)).unwrap();
        for _ in 0..3 {
            jobs.begin_download("j", Admission::default())
                .unwrap()
                .ticket
                .complete();
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
        assert!(matches!(
            jobs.begin_download("j", Admission::default()),
            Err(Error::Gone(_))
        ));
        clock.advance(Duration::hours(12));
        assert_eq!(jobs.sweep(), 1);
        assert!(jobs.get("j").is_none());
    }

    #[test]
    fn a_started_download_outlives_the_window_and_status_is_kept_for_retention() {
        let (clock, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        clock.advance(Duration::seconds(10));
        let ticket = jobs
            .begin_download("j", Admission::default())
            .unwrap()
            .ticket;
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

    /// The largest TTLs a setting allows (and chrono's largest `Duration`,
    /// which an in-process caller may pass) on a clock as far ahead as the
    /// control plane moves it, or at the end of time: every operation
    /// answers, none panics on a deadline past `DateTime<Utc>`'s range.
    #[test]
    fn the_largest_ttls_on_a_clock_at_its_limit_do_not_panic() {
        use crate::clock::AdjustableClock;
        use zipgate_api::settings::MAX_DURATION_SECS;
        let century = Duration::seconds(MAX_DURATION_SECS as i64);
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let far_ahead = Arc::new(AdjustableClock::new(Arc::new(ManualClock::new(start))));
        far_ahead.advance(Duration::MAX);
        let clocks: [(Arc<dyn Clock>, &str); 2] = [
            (far_ahead, "advanced ~292 years"),
            (
                Arc::new(ManualClock::new(DateTime::<Utc>::MAX_UTC)),
                "at the end of time",
            ),
        ];
        for (clock, what) in clocks {
            for ttl in [century, Duration::MAX] {
                let jobs = JobRegistry::new(clock.clone());
                let make = |id: &str, pacing: Pacing, single_use: bool| JobSpec {
                    download_window: Some(ttl),
                    retention: ttl,
                    ..spec(id, pacing, single_use)
                };
                jobs.create(make("now", Pacing::Immediate, true)).unwrap();
                jobs.create(make("later", Pacing::AfterDuration(ttl), false))
                    .unwrap();
                jobs.create(make("polled", Pacing::AfterPolls(1), false))
                    .unwrap();
                assert_eq!(jobs.poll("polled").unwrap().state, JobState::Ready);
                let later = jobs.poll("later").unwrap();
                // At the end of time a deadline saturates to now: ready, never expiring.
                if clock.now() < DateTime::<Utc>::MAX_UTC {
                    assert_eq!(later.state, JobState::Running, "{what}");
                }
                let ready = jobs.get("now").unwrap();
                assert_eq!(ready.state, JobState::Ready, "{what}");
                assert!(ready.expires_at.unwrap() >= ready.ready_at.unwrap());
                jobs.begin_download("now", Admission::default())
                    .unwrap()
                    .ticket
                    .complete();
                jobs.cancel("later").unwrap();
                assert_eq!(jobs.list().len(), 3, "{what}");
                // Retention never passes: nothing is reclaimed.
                assert_eq!(jobs.sweep(), 0, "{what}");
                assert_eq!(jobs.get("now").unwrap().state, JobState::Done);
            }
        }
    }

    #[test]
    fn cancel_settles_only_unfinished_jobs() {
        let (_, jobs) = setup();
        jobs.create(spec("a", Pacing::AfterPolls(5), false))
            .unwrap();
        assert_eq!(jobs.cancel("a").unwrap().state, JobState::Cancelled);
        assert!(matches!(
            jobs.begin_download("a", Admission::default()),
            Err(Error::Gone(_))
        ));
        jobs.create(spec("b", Pacing::Immediate, true)).unwrap();
        jobs.begin_download("b", Admission::default())
            .unwrap()
            .ticket
            .complete();
        assert_eq!(jobs.cancel("b").unwrap().state, JobState::Done);
        assert!(matches!(jobs.cancel("zzz"), Err(Error::NotFound(_))));
    }

    #[test]
    fn cancelling_a_job_stops_its_downloads_and_nothing_else_does() {
        let (_, jobs) = setup();
        // Reusable: two downloads in flight, both stopped by one cancel.
        jobs.create(spec("a", Pacing::Immediate, false)).unwrap();
        let first = jobs.begin_download("a", Admission::default()).unwrap();
        let second = jobs.begin_download("a", Admission::default()).unwrap();
        assert!(!first.stop.is_cancelled());
        jobs.cancel("a").unwrap();
        assert!(first.stop.is_cancelled() && second.stop.is_cancelled());

        // A job that fails (a dialect giving up) leaves its download alone.
        jobs.create(spec("b", Pacing::Immediate, false)).unwrap();
        let claim = jobs.begin_download("b", Admission::default()).unwrap();
        jobs.fail("b", "gave up").unwrap();
        assert!(!claim.stop.is_cancelled());

        // A finished job is not cancelled, so its reader is not cut; a
        // removed one (Dropbox forgets a job as its download starts) neither.
        jobs.create(spec("c", Pacing::Immediate, true)).unwrap();
        let claim = jobs.begin_download("c", Admission::default()).unwrap();
        let stop = claim.stop.clone();
        claim.ticket.complete();
        assert_eq!(jobs.cancel("c").unwrap().state, JobState::Done);
        assert!(!stop.is_cancelled());
        jobs.create(spec("d", Pacing::Immediate, true)).unwrap();
        let claim = jobs.begin_download("d", Admission::default()).unwrap();
        jobs.remove("d");
        assert!(!claim.stop.is_cancelled());
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

    fn user(name: &str) -> Principal {
        Principal::User(zipgate_api::UserId(name.into()))
    }

    #[test]
    fn one_principals_flood_is_refused_and_evicts_nobody_elses_jobs() {
        let (clock, _) = setup();
        let jobs = JobRegistry::with_limits(
            clock,
            JobLimits {
                max_jobs: 10,
                max_jobs_per_principal: 3,
            },
        );
        let of = |id: &str, who: &str| JobSpec {
            owner: user(who),
            ..spec(id, Pacing::AfterPolls(100), false)
        };
        jobs.create(of("alice-1", "alice")).unwrap();
        for i in 0..3 {
            jobs.create(of(&format!("bob-{i}"), "bob")).unwrap();
        }
        for i in 3..50 {
            let refused = jobs.create(of(&format!("bob-{i}"), "bob"));
            assert!(
                matches!(refused, Err(Error::TooManyJobs { limit: 3 })),
                "{refused:?}"
            );
        }
        assert_eq!(jobs.get("alice-1").unwrap().state, JobState::Queued);
        assert_eq!(jobs.len(), 4);
        // Bob's own settled job makes room for his next one.
        jobs.cancel("bob-1").unwrap();
        jobs.create(of("bob-next", "bob")).unwrap();
        assert!(jobs.get("bob-1").is_none());
        assert!(jobs.get("bob-0").is_some() && jobs.get("bob-2").is_some());
        // Alice is not affected by Bob's cap.
        jobs.create(of("alice-2", "alice")).unwrap();
    }

    #[test]
    fn jobs_that_expired_unobserved_make_room_under_the_principals_cap() {
        let (clock, _) = setup();
        let jobs = JobRegistry::with_limits(
            clock.clone(),
            JobLimits {
                max_jobs: 100,
                max_jobs_per_principal: 3,
            },
        );
        let of = |id: &str| JobSpec {
            owner: user("bob"),
            ..spec(id, Pacing::Immediate, true)
        };
        for i in 0..3 {
            jobs.create(of(&format!("old-{i}"))).unwrap();
        }
        assert!(matches!(
            jobs.create(of("refused")),
            Err(Error::TooManyJobs { .. })
        ));
        // Past their 30 s window, nobody having polled them.
        clock.advance(Duration::seconds(31));
        jobs.create(of("new")).unwrap();
        assert!(jobs.get("new").is_some());
    }

    #[test]
    fn a_per_principal_cap_at_the_global_one_leaves_the_global_policy_alone() {
        let (clock, _) = setup();
        let jobs = JobRegistry::with_limits(
            clock,
            JobLimits {
                max_jobs: 3,
                max_jobs_per_principal: 3,
            },
        );
        for i in 0..10 {
            jobs.create(spec(&format!("j{i}"), Pacing::Immediate, false))
                .unwrap();
        }
        assert_eq!(jobs.len(), 3);
        assert!(jobs.get("j9").is_some());
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
    fn a_sweep_empties_every_list_it_reclaims_from() {
        let (clock, jobs) = setup();
        for i in 0..50 {
            jobs.create(spec(&format!("j{i}"), Pacing::Immediate, true))
                .unwrap();
        }
        // Settled out of creation order, so the slots and the lists disagree.
        for i in (0..50).rev().step_by(2).chain((0..50).step_by(2)) {
            jobs.cancel(&format!("j{i}")).unwrap();
        }
        clock.advance(Duration::hours(13));
        assert_eq!(jobs.sweep(), 50);
        let table = jobs.jobs();
        assert!(table.owner_jobs("test", &Principal::Anonymous).is_none());
        assert!(table.order.is_empty() && table.owners.is_empty());
        assert_eq!(table.free.len(), 50);
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
