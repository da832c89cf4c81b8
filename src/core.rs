//! The core as dialects see it: `ServerCore` implements `zipgate_api::Core`
//! over the store, planner, packer, job registry and zip engine.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use zipgate_api::{
    Core, CreateJob, CreatedJob, Credential, Download, Error, JobOp, JobSnapshot, Mounted,
    NameMatch, NodeId, NodeInfo, NodeKind, Principal, Randomness, SignedIn, UserInfo,
};

use crate::jobs::{Admission, Building, Claimed, JobFault, JobSpec, Peek, RecheckInput};
use crate::packing::{build_archive, single_file_archive};
use crate::planner;
use crate::recheck::{Replacement, Sources};
use crate::server::http::empty;
use crate::state::AppState;
use crate::store::{Node, NodeData, Tree, User};
use crate::stream::{archive_body, CutOnCancel};
use crate::zip::Archive;

pub struct ServerCore {
    state: Arc<AppState>,
    /// The tree in force when the request arrived: every answer to this
    /// request comes from the same one, whatever a reload does meanwhile.
    store: Arc<Tree>,
    /// The dialect this core is scoped to: its jobs, its ids.
    dialect: Arc<dyn Mounted>,
    /// Injected into every job this request creates.
    job_fault: Option<JobFault>,
    /// The request is a `HEAD`: it is answered like a `GET` but changes
    /// nothing, so a download is checked, not claimed, and a poll only looks.
    look_only: bool,
    /// Why the job store failed this request, if it did: the request is
    /// then answered with the vendor's 503 whatever the handler made of
    /// the error (a list read as empty, an ignored result).
    outage: OnceLock<String>,
}

impl ServerCore {
    pub fn new(state: Arc<AppState>, dialect: Arc<dyn Mounted>) -> Self {
        ServerCore {
            store: state.store(),
            state,
            dialect,
            job_fault: None,
            look_only: false,
            outage: OnceLock::new(),
        }
    }

    /// Why the job store could not serve this request, if it could not.
    pub fn outage(&self) -> Option<&str> {
        self.outage.get().map(String::as_str)
    }

    /// A job store answer, noting an outage on the way.
    fn store<T>(&self, answer: Result<T, Error>) -> Result<T, Error> {
        if let Err(Error::Unavailable(why)) = &answer {
            let _ = self.outage.set(why.clone());
        }
        answer
    }

    pub fn with_job_fault(mut self, fault: Option<JobFault>) -> Self {
        self.job_fault = fault;
        self
    }

    /// For a `HEAD` request (the router serves it with the `GET` handler):
    /// downloads, polls and acknowledgements leave every job as it was.
    pub fn look_only(mut self, on: bool) -> Self {
        self.look_only = on;
        self
    }

    fn tag(&self) -> &'static str {
        self.dialect.name()
    }

    /// For a job that rechecks its items when a download starts: `archive`
    /// without what its owner can no longer read in the tree in force now
    /// (or what the job's fault says is lost). `None` when nothing changed.
    fn recheck(&self, input: RecheckInput, archive: &Arc<Archive>) -> Option<Replacement> {
        let lost_ids: HashSet<NodeId> = input
            .fault
            .as_ref()
            .map(|fault| fault.lost_nodes())
            .unwrap_or_default()
            .iter()
            .filter_map(|name| {
                let neutral = NodeId::from(name.as_str());
                if self.store.node(&neutral).is_some() {
                    Some(neutral)
                } else {
                    self.resolve(name)
                }
            })
            .collect();
        let lost = input.sources.check(|id, kind| {
            !lost_ids.contains(id)
                && self.store.node(id).is_some_and(|node| {
                    node.kind() == kind && self.store.can_read(&input.owner, node)
                })
        })?;
        Some(Replacement::new(archive.clone(), &input.sources, lost))
    }

    /// `id`, if it names one of this dialect's jobs.
    fn own<'a>(&self, id: &'a str) -> Result<&'a str, Error> {
        if self.store(self.state.jobs.owner_tag(id))? == Some(self.tag()) {
            Ok(id)
        } else {
            Err(Error::NotFound(id.to_owned()))
        }
    }
}

fn node_info(node: &Node, dialect: &str) -> NodeInfo {
    NodeInfo {
        id: node.id.clone(),
        name: node.name.clone(),
        kind: node.kind(),
        size: node.size(),
        mtime: node.mtime,
        parent: node.parent.clone(),
        owner: node.owner.clone(),
        pinned_id: node.dialect_ids.get(dialect).cloned(),
    }
}

fn user_info(user: &User) -> Arc<UserInfo> {
    Arc::clone(&user.info)
}

impl Core for ServerCore {
    fn now(&self) -> DateTime<Utc> {
        self.state.clock.now()
    }

    fn sign_in(&self, credential: Credential<'_>) -> Option<SignedIn> {
        let user = match credential {
            Credential::Token(token) => self.store.authenticate(token)?,
            Credential::Password { login, password } => self.store.log_in(login, password)?,
        };
        Some(SignedIn {
            user: user_info(user),
            token: user.token.clone()?,
        })
    }

    // Overridden only to skip copying the token on every authenticated request.
    fn authenticate(&self, token: &str) -> Option<Arc<UserInfo>> {
        self.store.authenticate(token).map(user_info)
    }

    fn node(&self, id: &NodeId) -> Option<NodeInfo> {
        self.store.node(id).map(|n| node_info(n, self.tag()))
    }

    fn resolve(&self, dialect_id: &str) -> Option<NodeId> {
        let dialect = &self.dialect;
        self.store
            .resolve_dialect_id(self.tag(), &|id| dialect.derive_id(id), dialect_id, None)
    }

    // The index keeps a file and a folder per id, so a dialect whose kinds
    // are numbered apart gets the one it asked for.
    fn resolve_as(&self, dialect_id: &str, kind: NodeKind) -> Option<NodeId> {
        let dialect = &self.dialect;
        self.store.resolve_dialect_id(
            self.tag(),
            &|id| dialect.derive_id(id),
            dialect_id,
            Some(kind),
        )
    }

    fn node_by_path(
        &self,
        principal: &Principal,
        start: Option<&NodeId>,
        path: &str,
        names: NameMatch,
    ) -> Option<NodeId> {
        self.store
            .node_by_path(principal, start, path, names)
            .map(|node| node.id.clone())
    }

    fn create_job(&self, request: CreateJob) -> Result<CreatedJob, Error> {
        let owner_tag = self.tag();
        let store = &self.store;
        let mut options = request.plan;
        options.portable_names |= self.state.config.portable_names;
        let plan = planner::plan(store, &request.owner, &request.selection, &mut options)?;
        let sources = options
            .recheck_at_download
            .then(|| Arc::new(Sources::of(&plan)));
        let policy = &self.state.config.compression;
        let mut archive = match (&plan.entries[..], request.single_file_as_is) {
            ([entry], true) if !entry.is_dir() => single_file_archive(entry),
            _ => build_archive(&plan, policy, request.compression),
        };
        if request.layout.utf8_flag_on_every_name {
            archive = archive.with_utf8_flag_on_every_name();
        }
        let archive = Arc::new(archive);
        let (building, build_cancelled) = (request.layout.exact_length && archive.needs_build())
            .then(Building::new)
            .unzip();
        let archive_len = archive.len();
        let (mut files_skipped, mut folders_skipped) = (0, 0);
        for skipped in &plan.skipped {
            if skipped.reason == planner::SkipReason::Duplicate {
                continue;
            }
            match store.node(&skipped.id).map(|n| &n.data) {
                Some(NodeData::Folder(_)) => folders_skipped += 1,
                _ => files_skipped += 1,
            }
        }
        let job = self.store(self.state.jobs.create(JobSpec {
            id: request.id,
            name: request.name,
            context: request.context,
            owner_tag,
            owner: request.owner,
            archive: archive.clone(),
            // Files skipped while planning count too, so that a finished
            // job's done and skipped files add up to its count.
            file_count: plan.file_count + files_skipped,
            files_skipped,
            folders_skipped,
            pacing: request.pacing,
            download_window: request.download_window,
            single_use: request.single_use,
            retention: request.retention,
            fault: self.job_fault.clone(),
            sources,
            building,
        }))?;
        if let Some(cancelled) = build_cancelled {
            let (jobs, id, from) = (self.state.jobs.clone(), job.id.clone(), archive.clone());
            self.state.builder.build(archive, cancelled, move |result| {
                jobs.finish_build(&id, &from, result)
            });
        }
        Ok(CreatedJob {
            job,
            conflicts: plan.conflicts,
            skipped: plan.skipped,
            folder_count: plan.folder_count,
            total_bytes: plan.total_bytes,
            archive_len,
        })
    }

    fn job(&self, id: &str, op: JobOp<'_>) -> Result<JobSnapshot, Error> {
        let jobs = &self.state.jobs;
        let found = |answer: Result<Option<JobSnapshot>, Error>| {
            self.store(answer)?
                .ok_or_else(|| Error::NotFound(id.to_owned()))
        };
        // A look or a poll checks the owner in the same call (one round
        // trip to a shared store, not two: every status poll is one).
        let look = |poll| found(jobs.look_owned(self.tag(), id, poll));
        match op {
            JobOp::Look => return look(false),
            JobOp::Poll | JobOp::Acknowledge if self.look_only => return look(false),
            JobOp::Poll => return look(true),
            _ => {}
        }
        let id = self.own(id)?;
        match op {
            JobOp::Look | JobOp::Poll => unreachable!("answered above"),
            JobOp::Cancel => self.store(jobs.cancel(id)),
            JobOp::Fail(reason) => self.store(jobs.fail(id, reason)),
            JobOp::Acknowledge => {
                self.store(jobs.acknowledge(id))?;
                found(jobs.get(id))
            }
            JobOp::Remove => found(jobs.remove(id)),
        }
    }

    // An outage reads as no jobs here and the route wrapper answers 503.
    fn jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        self.store(self.state.jobs.list_of(self.tag(), owner))
            .unwrap_or_default()
    }

    // The registry keeps an index of open jobs per owner; no need to copy the rest.
    fn open_jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        self.store(self.state.jobs.open_of(self.tag(), owner))
            .unwrap_or_default()
    }

    fn poll_open_jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        if self.look_only {
            return self.open_jobs(owner);
        }
        self.store(self.state.jobs.open_of_polled(self.tag(), owner))
            .unwrap_or_default()
    }

    fn newest_job(
        &self,
        owner: &Principal,
        wanted: &dyn Fn(&JobSnapshot) -> bool,
    ) -> Option<JobSnapshot> {
        self.store(self.state.jobs.newest_of(self.tag(), owner, wanted))
            .ok()
            .flatten()
    }

    fn start_download(&self, id: &str, max_per_owner: Option<usize>) -> Result<Download, Error> {
        let admission = Admission {
            owner_tag: Some(self.tag()),
            max_per_owner,
        };
        if self.look_only {
            // The same checks and the same length, and a body that is never sent.
            let Peek {
                archive,
                job,
                recheck,
            } = self.store(self.state.jobs.peek_download(id, admission))?;
            let archive = match recheck.and_then(|input| self.recheck(input, &archive)) {
                Some(cut) => cut.archive,
                None => archive,
            };
            return Ok(Download::new(
                job,
                archive.len(),
                archive.is_single_file(),
                Box::new(|_, _| empty()),
            ));
        }
        // Before the claim, so a single-use job survives an outage.
        if let Some(archive) = self.store(self.state.jobs.archive(id))? {
            archive
                .preflight()
                .map_err(|e| Error::Unavailable(e.to_string()))?;
        }
        let Claimed {
            archive,
            ticket,
            stop,
            job,
            recheck,
        } = self.store(self.state.jobs.begin_download(id, admission))?;
        // The recheck runs outside the registry lock; the cut archive is
        // swapped in before the first byte, so progress counts its entries.
        let archive = match recheck.and_then(|input| self.recheck(input, &archive)) {
            Some(cut) => {
                self.state.jobs.cut_archive(id, &cut);
                ticket.archive_replaced(&cut.archive);
                cut.archive
            }
            None => archive,
        };
        let len = archive.len();
        let single_file = archive.is_single_file();
        let streams = self.state.streams.clone();
        let cut = CutOnCancel(stop.clone());
        Ok(Download::new(
            job,
            len,
            single_file,
            Box::new(move |offset, len| archive_body(archive, offset, len, streams, ticket, stop)),
        )
        .with_extension(cut))
    }

    fn next_in_sequence(&self, name: &str) -> Result<u64, Error> {
        self.store(self.state.jobs.next_in_sequence(self.tag(), name))
    }

    fn random(&self, kind: Randomness, out: &mut [u8]) {
        match kind {
            Randomness::Cosmetic => {
                for chunk in out.chunks_mut(8) {
                    let bytes = self.state.random_u64().to_le_bytes();
                    chunk.copy_from_slice(&bytes[..chunk.len()]);
                }
            }
            Randomness::Secret => self.state.fill_secret(out),
        }
    }

    // The seeded generator yields whole words; taking one directly keeps
    // `--seed` runs byte-identical to what they were.
    fn random_u64(&self) -> u64 {
        self.state.random_u64()
    }
}
