//! The archive job registry every dialect shares: the neutral state machine
//! (queued → running → ready → downloading → done, or failed / cancelled /
//! expired), deterministic pacing, progress counters, expiry and single-use
//! rules, all against an injectable clock. Settled jobs are reclaimed after
//! their retention, so a long run does not grow without bound.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use zipgate_api::{Error, JobSnapshot, JobState, Pacing, Principal};

use crate::clock::{saturating_add, Clock};
use crate::zip::{Archive, Progress, StreamObserver};

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

/// What a job keeps of its spec beyond what its snapshot shows.
struct JobRules {
    archive: Arc<Archive>,
    pacing: Pacing,
    download_window: Option<Duration>,
    single_use: bool,
    retention: Duration,
    fault: Option<JobFault>,
}

struct Job {
    spec: JobRules,
    snapshot: JobSnapshot,
    /// Whether each archive entry is a file, to count files as they finish.
    entry_is_file: Vec<bool>,
    /// When the record's retention started.
    settled_at: Option<DateTime<Utc>>,
}

impl Job {
    fn new(spec: JobSpec, now: DateTime<Utc>) -> Self {
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
            id: spec.id,
            name: spec.name,
            context: spec.context,
            archive_len: spec.archive.len(),
            owner_tag: spec.owner_tag,
            owner: spec.owner,
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
        Job {
            spec: JobRules {
                archive: spec.archive,
                pacing: spec.pacing,
                download_window: spec.download_window,
                single_use: spec.single_use,
                retention: spec.retention,
                fault: spec.fault,
            },
            snapshot,
            entry_is_file,
            settled_at: None,
        }
    }

    /// Applies pacing (when `poll` is true) and expiry as of `now`.
    /// Whether a download may start now (advancing the job on the clock
    /// first, as anyone looking would): ready, or reusable and downloaded.
    fn may_download(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.advance(now, false);
        match self.snapshot.state {
            JobState::Ready => Ok(()),
            JobState::Downloading | JobState::Done if !self.spec.single_use => Ok(()),
            JobState::Downloading
            | JobState::Done
            | JobState::Expired
            | JobState::Failed
            | JobState::Cancelled => Err(Error::Gone(id.to_owned())),
            JobState::Queued | JobState::Running => Err(Error::Conflict(id.to_owned())),
        }
    }

    /// Deadlines are `saturating_add`s: settings are capped at a century,
    /// but the clock can be ~292 years ahead and in-process callers may pass
    /// any `Duration`; a panic here would fail every request that touches
    /// the job, and a deadline past the end of time honestly means "never".
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
                Pacing::AfterDuration(d) => {
                    let at = saturating_add(s.created_at, d);
                    (now >= at).then_some(at)
                }
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

    fn reclaimable(&self, now: DateTime<Utc>) -> bool {
        match self.settled_at {
            Some(at) => {
                self.snapshot.state.is_terminal() && now > saturating_add(at, self.spec.retention)
            }
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
    limits: JobLimits,
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

/// The jobs in slots, found by id, with their creation order so the cap and
/// the retention sweep cost O(1) per create instead of a scan of every job,
/// and an index by owner so a dialect's questions about one user's jobs do
/// not scan everyone's. Lists hold slot keys, not ids: a create copies its
/// id once, and the cap looks through the oldest jobs without hashing.
#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_id: HashMap<Box<str>, Key>,
    /// Keys oldest first; may hold keys of removed jobs (skipped, compacted on sweeps).
    order: VecDeque<Key>,
    /// By principal, then by owner tag (a handful of dialects).
    owners: HashMap<Principal, Vec<(&'static str, OwnerJobs)>>,
    swept_at: Option<DateTime<Utc>>,
}

/// A job's slot and the slot's generation at the time, so a key left
/// behind in a list never finds the slot's next job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    slot: u32,
    generation: u32,
}

#[derive(Default)]
struct Slot {
    generation: u32,
    job: Option<Job>,
}

/// Removes `key` from an oldest-first list: O(1) when it is the oldest, the
/// usual case (the cap drops the oldest job).
fn remove_key(keys: &mut VecDeque<Key>, key: Key) {
    if keys.front() == Some(&key) {
        keys.pop_front();
    } else if let Some(at) = keys.iter().position(|other| *other == key) {
        keys.remove(at);
    }
}

#[derive(Default)]
struct OwnerJobs {
    /// Keys oldest first; may hold keys of removed jobs (compacted on sweeps).
    order: VecDeque<Key>,
    /// Keys of jobs not yet acknowledged, oldest first.
    open: VecDeque<Key>,
    /// Downloads of these jobs in progress.
    downloading: usize,
}

/// Creation-order entries the cap looks through, per job it drops, for
/// settled jobs to drop first.
const EVICTION_WINDOW_PER_JOB: usize = 4;

impl Table {
    fn len(&self) -> usize {
        self.by_id.len()
    }

    fn job(&self, key: Key) -> Option<&Job> {
        let slot = self.slots.get(key.slot as usize)?;
        (slot.generation == key.generation).then_some(slot.job.as_ref())?
    }

    fn job_mut(&mut self, key: Key) -> Option<&mut Job> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        (slot.generation == key.generation).then_some(slot.job.as_mut())?
    }

    fn key_of(&self, id: &str) -> Option<Key> {
        self.by_id.get(id).copied()
    }

    fn get(&self, id: &str) -> Option<&Job> {
        self.job(self.key_of(id)?)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.job_mut(self.key_of(id)?)
    }

    fn jobs_mut(&mut self) -> impl Iterator<Item = &mut Job> {
        self.slots.iter_mut().filter_map(|slot| slot.job.as_mut())
    }

    fn owner_jobs(&self, owner_tag: &str, owner: &Principal) -> Option<&OwnerJobs> {
        let tags = self.owners.get(owner)?;
        tags.iter()
            .find(|(tag, _)| *tag == owner_tag)
            .map(|(_, jobs)| jobs)
    }

    fn owner_jobs_mut(&mut self, owner_tag: &str, owner: &Principal) -> Option<&mut OwnerJobs> {
        let tags = self.owners.get_mut(owner)?;
        tags.iter_mut()
            .find(|(tag, _)| *tag == owner_tag)
            .map(|(_, jobs)| jobs)
    }

    /// The owner's entry, made when missing (the principal is copied only then).
    fn owner_entry(&mut self, owner_tag: &'static str, owner: &Principal) -> &mut OwnerJobs {
        if !self.owners.contains_key(owner) {
            self.owners.insert(owner.clone(), Vec::new());
        }
        let tags = self.owners.get_mut(owner).expect("inserted above");
        let at = match tags.iter().position(|(tag, _)| *tag == owner_tag) {
            Some(at) => at,
            None => {
                tags.push((owner_tag, OwnerJobs::default()));
                tags.len() - 1
            }
        };
        &mut tags[at].1
    }

    /// Forgets the owner's entry once it has no jobs and no downloads.
    fn drop_owner_if_idle(&mut self, owner_tag: &str, owner: &Principal) {
        if let Some(tags) = self.owners.get_mut(owner) {
            tags.retain(|(tag, jobs)| {
                *tag != owner_tag || !jobs.order.is_empty() || jobs.downloading > 0
            });
            if tags.is_empty() {
                self.owners.remove(owner);
            }
        }
    }

    /// Files a new job under its id, in creation order and in its owner's lists.
    fn insert(&mut self, job: Job) -> Key {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 jobs")
            }
        };
        let key = Key {
            slot,
            generation: self.slots[slot as usize].generation,
        };
        let (owner_tag, owner) = (job.snapshot.owner_tag, job.snapshot.owner.clone());
        self.by_id.insert(job.snapshot.id.as_str().into(), key);
        self.slots[slot as usize].job = Some(job);
        self.order.push_back(key);
        let lists = self.owner_entry(owner_tag, &owner);
        lists.order.push_back(key);
        lists.open.push_back(key);
        key
    }

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
        let reclaimable: Vec<Key> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.job.as_ref().is_some_and(|job| job.reclaimable(now)))
            .map(|(at, slot)| Key {
                slot: at as u32,
                generation: slot.generation,
            })
            .collect();
        // Their keys leave the lists in one pass (compact), not one scan each.
        for key in reclaimable {
            self.take(key);
        }
        self.compact();
        self.swept_at = Some(now);
    }

    /// Drops keys of removed jobs from every list.
    fn compact(&mut self) {
        let slots = &self.slots;
        let live = |key: &Key| {
            slots
                .get(key.slot as usize)
                .is_some_and(|slot| slot.generation == key.generation && slot.job.is_some())
        };
        self.order.retain(live);
        self.owners.retain(|_, tags| {
            tags.retain_mut(|(_, jobs)| {
                jobs.order.retain(live);
                jobs.open.retain(live);
                !jobs.order.is_empty() || jobs.downloading > 0
            });
            !tags.is_empty()
        });
    }

    /// Snapshots of the live jobs among `keys`, in that order, advanced to `now`.
    fn snapshots(&mut self, keys: &[Key], now: DateTime<Utc>) -> Vec<JobSnapshot> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(job) = self.job_mut(*key).filter(|job| !job.reclaimable(now)) {
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
        let settled: Vec<Key> = self
            .order
            .iter()
            .take(count * EVICTION_WINDOW_PER_JOB)
            .filter(|key| self.job(**key).is_some_and(|j| j.settled_at.is_some()))
            .take(count)
            .copied()
            .collect();
        let mut evicted: Vec<Job> = settled
            .into_iter()
            .filter_map(|key| self.forget_key(key))
            .collect();
        while evicted.len() < count {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            evicted.extend(self.forget_key(key));
        }
        evicted
    }

    /// Live jobs of one principal, over every owner tag.
    fn principal_len(&self, owner: &Principal) -> usize {
        self.owners.get(owner).map_or(0, |tags| {
            tags.iter().map(|(_, jobs)| jobs.order.len()).sum()
        })
    }

    /// Drops up to `count` of one principal's settled jobs among its oldest
    /// (a bounded window per owner tag, so a refused create costs the same
    /// however many jobs the principal holds); its pending jobs stay.
    fn evict_settled_of(
        &mut self,
        owner: &Principal,
        count: usize,
        now: DateTime<Utc>,
    ) -> Vec<Job> {
        let window = count.saturating_mul(EVICTION_WINDOW_PER_JOB).max(64);
        let candidates: Vec<Key> = self.owners.get(owner).map_or_else(Vec::new, |tags| {
            tags.iter()
                .flat_map(|(_, jobs)| jobs.order.iter().take(window))
                .copied()
                .collect()
        });
        let mut settled = Vec::with_capacity(count);
        for key in candidates {
            if let Some(job) = self.job_mut(key) {
                // A job past its download window has expired whether or not
                // anyone looked at it since: bring it up to `now` first.
                job.advance(now, false);
                if job.settled_at.is_some() {
                    settled.push(key);
                    if settled.len() == count {
                        break;
                    }
                }
            }
        }
        settled
            .into_iter()
            .filter_map(|key| self.forget_key(key))
            .collect()
    }

    fn forget(&mut self, id: &str) -> Option<Job> {
        self.forget_key(self.key_of(id)?)
    }

    /// Removes a job from its slot and the id map; its keys stay in the
    /// lists until they are compacted.
    fn take(&mut self, key: Key) -> Option<Job> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let job = slot.job.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.by_id.remove(job.snapshot.id.as_str());
        Some(job)
    }

    /// Removes a job and its place in its owner's index (the global order is
    /// compacted lazily).
    fn forget_key(&mut self, key: Key) -> Option<Job> {
        let job = self.take(key)?;
        let (owner_tag, owner) = (job.snapshot.owner_tag, &job.snapshot.owner);
        if let Some(lists) = self.owner_jobs_mut(owner_tag, owner) {
            remove_key(&mut lists.order, key);
            remove_key(&mut lists.open, key);
        }
        self.drop_owner_if_idle(owner_tag, owner);
        Some(job)
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
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(clock, JobLimits::default())
    }

    /// A global cap only (no principal is ever refused).
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
            }),
        }
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
        if jobs.key_of(&out.id).is_some() {
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
        // Freeing a hundred evicted jobs is not short: not under the lock.
        drop(jobs);
        drop(evicted);
        Ok(out)
    }

    /// The dialect that created the job, if there is one by this id.
    pub fn owner_tag(&self, id: &str) -> Option<&'static str> {
        self.jobs().get(id).map(|job| job.snapshot.owner_tag)
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

    /// Downloads in progress of jobs with this tag and owner.
    pub fn downloads_of(&self, owner_tag: &str, owner: &Principal) -> usize {
        self.jobs()
            .owner_jobs(owner_tag, owner)
            .map_or(0, |o| o.downloading)
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

    /// Starts a download: the job must be ready (or, if reusable, already
    /// downloaded). The ticket reports progress and the outcome.
    pub fn begin_download(&self, id: &str) -> Result<(Arc<Archive>, DownloadTicket), Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::live(&mut jobs, id, now).ok_or_else(|| Error::NotFound(id.to_owned()))?;
        job.may_download(id, now)?;
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
        let owner = (job.snapshot.owner_tag, job.snapshot.owner.clone());
        let key = jobs.key_of(id).expect("the job was found by this id");
        jobs.owner_entry(owner.0, &owner.1).downloading += 1;
        Ok((
            archive,
            DownloadTicket {
                registry: self.clone(),
                id: id.to_owned(),
                key,
                owner,
                single_use,
                settled: AtomicBool::new(false),
            },
        ))
    }

    /// What [`JobRegistry::begin_download`] would answer, claiming nothing:
    /// the archive when a download could start now (a `HEAD` request).
    pub fn peek_download(&self, id: &str) -> Result<Arc<Archive>, Error> {
        let now = self.inner.clock.now();
        let mut jobs = self.jobs();
        let job = Self::live(&mut jobs, id, now).ok_or_else(|| Error::NotFound(id.to_owned()))?;
        job.may_download(id, now)?;
        Ok(job.spec.archive.clone())
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
        let (owner_tag, owner) = (job.snapshot.owner_tag, job.snapshot.owner.clone());
        let key = jobs.key_of(id).expect("the job was found by this id");
        if let Some(lists) = jobs.owner_jobs_mut(owner_tag, &owner) {
            remove_key(&mut lists.open, key);
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

    fn update(&self, key: Key, f: impl FnOnce(&mut Job, DateTime<Utc>)) {
        let now = self.inner.clock.now();
        if let Some(job) = self.jobs().job_mut(key) {
            f(job, now);
        }
    }
}

/// One download in progress; it is the stream's observer. Dropping it
/// unfinished records an interrupted download.
pub struct DownloadTicket {
    registry: JobRegistry,
    id: String,
    /// The job's slot: a job made later under the same id is not this one.
    key: Key,
    /// Whose download this is counted as, even if the job is removed meanwhile.
    owner: (&'static str, Principal),
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
        {
            let mut jobs = self.registry.jobs();
            let (owner_tag, owner) = (self.owner.0, &self.owner.1);
            if let Some(lists) = jobs.owner_jobs_mut(owner_tag, owner) {
                lists.downloading = lists.downloading.saturating_sub(1);
            }
            jobs.drop_owner_if_idle(owner_tag, owner);
        }
        self.registry.update(self.key, |job, now| {
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
        self.registry.update(self.key, |job, _| {
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
            .update(self.key, |job, _| job.snapshot.bytes_sent += n);
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
        let (_, ticket) = jobs.begin_download("j").unwrap();
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
        assert_eq!(jobs.downloads_of("test", &Principal::Anonymous), 0);
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
    fn peeking_at_a_download_claims_nothing() {
        let (_, jobs) = setup();
        jobs.create(spec("j", Pacing::Immediate, true)).unwrap();
        jobs.create(spec("q", Pacing::AfterPolls(5), true)).unwrap();
        for _ in 0..3 {
            assert!(jobs.peek_download("j").is_ok());
        }
        let job = jobs.get("j").unwrap();
        assert_eq!(
            (job.state, job.downloads, job.active_downloads),
            (JobState::Ready, 0, 0)
        );
        assert!(matches!(jobs.peek_download("q"), Err(Error::Conflict(_))));
        assert!(matches!(jobs.peek_download("x"), Err(Error::NotFound(_))));
        // After the one download, a peek answers as the download would.
        let (_, ticket) = jobs.begin_download("j").unwrap();
        ticket.complete();
        assert!(matches!(jobs.peek_download("j"), Err(Error::Gone(_))));
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
                jobs.begin_download("now").unwrap().1.complete();
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
