//! What the core and the control plane ask of the job store, as a trait:
//! today's in-memory [`JobRegistry`] is one implementation, and a store
//! shared by several replicas (Redis, docs/design/scaleout.md) is to be the
//! next. Synchronous, like the dialect handlers that call it, and
//! object-safe, so `AppState` holds any of them as `Arc<dyn JobBackend>`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use zipgate_api::{Error, JobSnapshot, Principal};

use super::{Admission, Claim, JobRegistry, JobSpec, Peek, RecheckInput};
use crate::recheck::Replacement;
use crate::zip::{Archive, StreamObserver};

/// Applies a change of the control plane that some replica shared
/// ([`JobBackend::broadcast`]); given the change as that replica wrote it.
pub type ControlHook = Box<dyn Fn(&str) + Send + Sync>;

/// How many jobs each dialect holds in each state: ((dialect, state), count).
pub type JobCounts = Vec<((String, String), u64)>;

/// A download that has started, as any backend hands it out: the ticket
/// follows the stream and reports its progress and end to the backend.
pub struct Claimed {
    pub archive: Arc<Archive>,
    pub ticket: Arc<dyn StreamObserver>,
    /// Fires when the job is cancelled, on this replica or (a shared store
    /// tells every replica) another: cut the download.
    pub stop: CancellationToken,
    /// The job as the claim left it.
    pub job: JobSnapshot,
    /// For a job that rechecks its items when a download starts.
    pub recheck: Option<RecheckInput>,
}

/// The jobs every dialect shares: the neutral state machine (see
/// [`JobRegistry`] for its rules), behind whatever holds it.
///
/// Every call that reads the store answers `Err(Error::Unavailable)` when
/// a shared store cannot be reached, never "no such job" or an empty list:
/// the request then gets the vendor's 503 (`ServerCore`), so a client is
/// not told a job it made is gone while the store is only away.
pub trait JobBackend: Send + Sync {
    /// The dialect that created the job, if there is one by this id.
    fn owner_tag(&self, id: &str) -> Result<Option<&'static str>, Error>;
    fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error>;
    /// Ends the build of `id`'s archive if the job still holds `from`.
    fn finish_build(&self, id: &str, from: &Arc<Archive>, result: Result<Archive, String>);
    /// Current state without counting as a poll.
    fn get(&self, id: &str) -> Result<Option<JobSnapshot>, Error>;
    /// A client's status poll: advances poll-paced jobs.
    fn poll(&self, id: &str) -> Result<Option<JobSnapshot>, Error>;
    /// [`JobBackend::get`] (or with `poll`, [`JobBackend::poll`]) of a job
    /// `owner_tag` made; `None` for another dialect's, which is left as it was.
    fn look_owned(
        &self,
        owner_tag: &str,
        id: &str,
        poll: bool,
    ) -> Result<Option<JobSnapshot>, Error> {
        if self.owner_tag(id)? != Some(owner_tag) {
            return Ok(None);
        }
        if poll {
            self.poll(id)
        } else {
            self.get(id)
        }
    }
    fn cancel(&self, id: &str) -> Result<JobSnapshot, Error>;
    fn fail(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error>;
    fn acknowledge(&self, id: &str) -> Result<(), Error>;
    fn remove(&self, id: &str) -> Result<Option<JobSnapshot>, Error>;
    /// Every job, oldest first (the control plane).
    fn list(&self) -> Result<Vec<JobSnapshot>, Error>;
    /// Jobs with this tag and owner, oldest first.
    fn list_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error>;
    /// Jobs with this tag and owner not yet acknowledged, oldest first.
    fn open_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error>;
    /// [`JobBackend::open_of`], each job still in progress (neither ready
    /// nor ended) polled on the way (`Core::poll_open_jobs`).
    fn open_of_polled(
        &self,
        owner_tag: &str,
        owner: &Principal,
    ) -> Result<Vec<JobSnapshot>, Error> {
        let mut out = Vec::new();
        for job in self.open_of(owner_tag, owner)? {
            if job.state.is_in_progress() {
                let id = job.id.clone();
                out.push(self.look_owned(owner_tag, &id, true)?.unwrap_or(job));
            } else {
                out.push(job);
            }
        }
        Ok(out)
    }
    /// The newest job with this tag and owner that `wanted` accepts.
    fn newest_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Result<Option<JobSnapshot>, Error>;
    /// The job's archive, whatever its state (asked before a claim).
    fn archive(&self, id: &str) -> Result<Option<Arc<Archive>>, Error>;
    /// What a download would get, claiming nothing (a `HEAD`).
    fn peek_download(&self, id: &str, admission: Admission<'_>) -> Result<Peek, Error>;
    /// Starts a download: checks and claims in one step.
    fn begin_download(&self, id: &str, admission: Admission<'_>) -> Result<Claimed, Error>;
    /// Swaps in the archive a download-time recheck cut.
    fn cut_archive(&self, id: &str, cut: &Replacement);
    /// Jobs held, by dialect and state (`/_zipgate/metrics`).
    fn counts(&self) -> Result<JobCounts, Error>;
    /// Forgets every job and restarts every sequence (the control plane's reset).
    fn clear(&self) -> Result<(), Error>;
    fn len(&self) -> Result<usize, Error>;
    /// The next number (1, 2, 3…) of `owner_tag`'s sequence `name`
    /// (`Core::next_in_sequence`): kept with the jobs, so a shared store
    /// hands each number out once across replicas.
    fn next_in_sequence(&self, owner_tag: &str, name: &str) -> Result<u64, Error>;
    /// The first of `count` draw numbers of generator `name` that no other
    /// lease got (`crate::draws`). Never restarted, not even by a reset:
    /// values drawn before it must not come again.
    fn lease(&self, name: &str, count: u64) -> u64;
    /// What holds the jobs, for `/_zipgate/health` (`memory`, or a shared
    /// store's address without its password).
    fn describe(&self) -> String;
    /// Drops what this process holds for jobs a reset on another replica
    /// cleared from a shared store (builds, cached archives); nothing for a
    /// store of this process alone, whose `clear` did it all.
    fn forget_local(&self) {}
    /// Where changes shared by [`JobBackend::broadcast`] are applied (on
    /// every replica, the one that made the change too).
    fn on_control(&self, apply: ControlHook) {
        let _ = apply;
    }
    /// Has every replica sharing this store apply `change` (through its
    /// [`JobBackend::on_control`] hook), and returns once they have, or
    /// `false` when the store is this process's alone: the caller applies
    /// the change itself.
    fn broadcast(&self, change: &str) -> Result<bool, Error> {
        let _ = change;
        Ok(false)
    }
}

impl JobBackend for JobRegistry {
    fn owner_tag(&self, id: &str) -> Result<Option<&'static str>, Error> {
        Ok(JobRegistry::owner_tag(self, id))
    }
    fn create(&self, spec: JobSpec) -> Result<JobSnapshot, Error> {
        JobRegistry::create(self, spec)
    }
    fn finish_build(&self, id: &str, from: &Arc<Archive>, result: Result<Archive, String>) {
        JobRegistry::finish_build(self, id, from, result)
    }
    fn get(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        Ok(JobRegistry::get(self, id))
    }
    fn poll(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        Ok(JobRegistry::poll(self, id))
    }
    fn cancel(&self, id: &str) -> Result<JobSnapshot, Error> {
        JobRegistry::cancel(self, id)
    }
    fn fail(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error> {
        JobRegistry::fail(self, id, reason)
    }
    fn acknowledge(&self, id: &str) -> Result<(), Error> {
        JobRegistry::acknowledge(self, id);
        Ok(())
    }
    fn remove(&self, id: &str) -> Result<Option<JobSnapshot>, Error> {
        Ok(JobRegistry::remove(self, id))
    }
    fn list(&self) -> Result<Vec<JobSnapshot>, Error> {
        Ok(JobRegistry::list(self))
    }
    fn list_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error> {
        Ok(JobRegistry::list_of(self, owner_tag, owner))
    }
    fn open_of(&self, owner_tag: &str, owner: &Principal) -> Result<Vec<JobSnapshot>, Error> {
        Ok(JobRegistry::open_of(self, owner_tag, owner))
    }
    fn newest_of(
        &self,
        owner_tag: &str,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Result<Option<JobSnapshot>, Error> {
        Ok(JobRegistry::newest_of(self, owner_tag, owner, wanted))
    }
    fn archive(&self, id: &str) -> Result<Option<Arc<Archive>>, Error> {
        Ok(JobRegistry::archive(self, id))
    }
    fn peek_download(&self, id: &str, admission: Admission<'_>) -> Result<Peek, Error> {
        JobRegistry::peek_download(self, id, admission)
    }
    fn begin_download(&self, id: &str, admission: Admission<'_>) -> Result<Claimed, Error> {
        let Claim {
            archive,
            ticket,
            stop,
            job,
            recheck,
        } = JobRegistry::begin_download(self, id, admission)?;
        Ok(Claimed {
            archive,
            ticket: Arc::new(ticket),
            stop,
            job,
            recheck,
        })
    }
    fn cut_archive(&self, id: &str, cut: &Replacement) {
        JobRegistry::cut_archive(self, id, cut)
    }
    fn counts(&self) -> Result<JobCounts, Error> {
        Ok(JobRegistry::counts(self))
    }
    fn clear(&self) -> Result<(), Error> {
        JobRegistry::clear(self);
        Ok(())
    }
    fn len(&self) -> Result<usize, Error> {
        Ok(JobRegistry::len(self))
    }
    fn next_in_sequence(&self, owner_tag: &str, name: &str) -> Result<u64, Error> {
        Ok(JobRegistry::next_in_sequence(self, owner_tag, name))
    }
    fn lease(&self, name: &str, count: u64) -> u64 {
        JobRegistry::lease(self, name, count)
    }
    fn describe(&self) -> String {
        "memory".to_owned()
    }
}
