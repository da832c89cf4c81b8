//! `FakeCore`: a [`Core`] in memory, so a dialect's handlers can be unit
//! tested without a server or a socket. It keeps the contract's rules that a
//! handler relies on (scoping to one dialect's jobs, single use, polls that
//! advance a paced job, the per-owner job cap) and stands in for the rest:
//! no planner (a folder counts its files, nothing is renamed) and an archive
//! body of fixed bytes instead of a zip.

use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

use crate::dialect::{
    Core, Credential, Download, JobOp, NameMatch, NodeInfo, Randomness, SignedIn, UserInfo,
};
use crate::http::full;
use crate::job::{CreateJob, CreatedJob, JobSnapshot, Pacing};
use crate::rng::SplitMix64;
use crate::{Error, JobState, NodeId, NodeKind, Principal, UserId};

/// The bytes every fake download serves.
pub const FAKE_ARCHIVE: &[u8] = b"PK\x05\x06fake archive";

struct FakeUser {
    info: Arc<UserInfo>,
    token: String,
    password: String,
}

struct State {
    jobs: Vec<JobSnapshot>,
    rng: SplitMix64,
    sequences: std::collections::HashMap<String, u64>,
}

/// An in-memory core for one dialect: `FakeCore::new("box", derive)`, then
/// [`FakeCore::user`], [`FakeCore::folder`] and [`FakeCore::file`].
pub struct FakeCore {
    dialect: &'static str,
    derive: Box<dyn Fn(&NodeId) -> String + Send + Sync>,
    now: DateTime<Utc>,
    users: Vec<FakeUser>,
    nodes: Vec<NodeInfo>,
    /// Jobs one owner may hold (`Error::TooManyJobs` past it).
    pub max_jobs_per_owner: usize,
    state: Mutex<State>,
}

impl FakeCore {
    /// A core scoped to `dialect`, whose ids `derive` makes from neutral ones
    /// (pass the dialect's own [`crate::Dialect::derive_id`]).
    pub fn new(
        dialect: &'static str,
        derive: impl Fn(&NodeId) -> String + Send + Sync + 'static,
    ) -> Self {
        FakeCore {
            dialect,
            derive: Box::new(derive),
            now: Utc
                .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                .single()
                .unwrap_or_default(),
            users: Vec::new(),
            nodes: Vec::new(),
            max_jobs_per_owner: 1000,
            state: Mutex::new(State {
                jobs: Vec::new(),
                rng: SplitMix64::new(0),
                sequences: Default::default(),
            }),
        }
    }

    /// A user `id` whose token is `<id>-token` and password `<id>-password`.
    pub fn user(mut self, id: &str, home: Option<&str>) -> Self {
        self.users.push(FakeUser {
            info: Arc::new(UserInfo {
                id: UserId(id.to_owned()),
                name: id.to_owned(),
                login: id.to_owned(),
                home: home.map(NodeId::from),
                dialect_ids: Default::default(),
            }),
            token: format!("{id}-token"),
            password: format!("{id}-password"),
        });
        self
    }

    pub fn folder(self, id: &str, name: &str, parent: Option<&str>) -> Self {
        self.node(id, name, NodeKind::Folder, 0, parent)
    }

    pub fn file(self, id: &str, name: &str, size: u64, parent: Option<&str>) -> Self {
        self.node(id, name, NodeKind::File, size, parent)
    }

    fn node(
        mut self,
        id: &str,
        name: &str,
        kind: NodeKind,
        size: u64,
        parent: Option<&str>,
    ) -> Self {
        self.nodes.push(NodeInfo {
            id: NodeId::from(id),
            name: name.to_owned(),
            kind,
            size,
            mtime: self.now,
            parent: parent.map(NodeId::from),
            owner: None,
            pinned_id: None,
        });
        self
    }

    /// Every job the fake holds, this dialect's or not, oldest first.
    pub fn jobs(&self) -> Vec<JobSnapshot> {
        self.lock().jobs.clone()
    }

    /// Adds a job as another dialect's, to check a handler cannot see it.
    pub fn foreign_job(&self, id: &str, owner: Principal) {
        let mut job = snapshot(id, "other", owner, self.now);
        job.state = JobState::Ready;
        self.lock().jobs.push(job);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn files_under(&self, id: &NodeId) -> (u64, u64) {
        match self.nodes.iter().find(|n| &n.id == id) {
            Some(node) if node.kind == NodeKind::File => (1, node.size),
            Some(_) => self
                .nodes
                .iter()
                .filter(|n| n.parent.as_ref() == Some(id))
                .map(|n| self.files_under(&n.id))
                .fold((0, 0), |(f, b), (f2, b2)| (f + f2, b + b2)),
            None => (0, 0),
        }
    }
}

/// A queued job record with every count at zero, for tests that need one.
pub fn job(id: &str) -> JobSnapshot {
    snapshot(id, "fake", Principal::Anonymous, DateTime::UNIX_EPOCH)
}

fn snapshot(id: &str, tag: &'static str, owner: Principal, now: DateTime<Utc>) -> JobSnapshot {
    JobSnapshot {
        archive_len: Some(FAKE_ARCHIVE.len() as u64),
        ..JobSnapshot::new(id.to_owned(), tag, owner, now)
    }
}

impl Core for FakeCore {
    fn now(&self) -> DateTime<Utc> {
        self.now
    }

    fn sign_in(&self, credential: Credential<'_>) -> Option<SignedIn> {
        self.users
            .iter()
            .find(|u| match credential {
                Credential::Token(token) => u.token == token,
                Credential::Password { login, password } => {
                    u.info.login.eq_ignore_ascii_case(login) && u.password == password
                }
            })
            .map(|u| SignedIn {
                user: u.info.clone(),
                token: u.token.clone(),
            })
    }

    fn node(&self, id: &NodeId) -> Option<NodeInfo> {
        self.nodes.iter().find(|n| &n.id == id).cloned()
    }

    fn resolve(&self, dialect_id: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|n| n.pinned_id.clone().unwrap_or_else(|| (self.derive)(&n.id)) == dialect_id)
            .map(|n| n.id.clone())
    }

    fn node_by_path(
        &self,
        principal: &Principal,
        start: Option<&NodeId>,
        path: &str,
        names: NameMatch,
    ) -> Option<NodeId> {
        let home = match (start, principal) {
            (Some(start), _) => Some(start.clone()),
            (None, Principal::User(user)) => self
                .users
                .iter()
                .find(|u| &u.info.id == user)
                .and_then(|u| u.info.home.clone()),
            (None, Principal::Anonymous) => None,
        };
        let mut current = home;
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let same = |n: &NodeInfo| match names {
                NameMatch::Exact => n.name == name,
                NameMatch::IgnoreCase => n.name.to_lowercase() == name.to_lowercase(),
            };
            let found = self.nodes.iter().find(|n| n.parent == current && same(n))?;
            current = Some(found.id.clone());
        }
        current
    }

    fn create_job(&self, request: CreateJob) -> Result<CreatedJob, Error> {
        let (mut files, mut bytes) = (0, 0);
        for item in &request.selection {
            let node = self
                .node(&item.id)
                .filter(|n| item.expected_kind.is_none_or(|k| k == n.kind))
                .ok_or_else(|| Error::NotFound(item.id.0.clone()))?;
            let (f, b) = self.files_under(&node.id);
            files += f;
            bytes += b;
        }
        let mut state = self.lock();
        let held = state
            .jobs
            .iter()
            .filter(|j| j.owner == request.owner)
            .count();
        if held >= self.max_jobs_per_owner {
            return Err(Error::TooManyJobs {
                limit: self.max_jobs_per_owner as u64,
            });
        }
        if state.jobs.iter().any(|j| j.id == request.id) {
            return Err(Error::Conflict(format!("job {}", request.id)));
        }
        let mut job = snapshot(&request.id, self.dialect, request.owner, self.now);
        job.name = request.name;
        job.context = request.context;
        job.file_count = files;
        let steps = match request.pacing {
            Pacing::AfterPolls(n) => n,
            _ => 0,
        };
        job.steps = (0, steps);
        if steps == 0 {
            job.state = JobState::Ready;
            job.ready_at = Some(self.now);
        }
        job.expires_at = request
            .download_window
            .map(|w| crate::time::saturating_add(self.now, w));
        state.jobs.push(job.clone());
        Ok(CreatedJob {
            job,
            conflicts: Vec::new(),
            skipped: Vec::new(),
            folder_count: 0,
            total_bytes: bytes,
            archive_len: Some(FAKE_ARCHIVE.len() as u64),
        })
    }

    fn job(&self, id: &str, op: JobOp<'_>) -> Result<JobSnapshot, Error> {
        let mut state = self.lock();
        let index = state
            .jobs
            .iter()
            .position(|j| j.id == id && j.owner_tag == self.dialect)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        let now = self.now;
        let job = &mut state.jobs[index];
        match op {
            JobOp::Look => {}
            JobOp::Poll => {
                job.polls += 1;
                if job.state == JobState::Queued {
                    job.steps.0 += 1;
                    if job.steps.0 >= job.steps.1 {
                        job.state = JobState::Ready;
                        job.ready_at = Some(now);
                    }
                }
            }
            JobOp::Cancel | JobOp::Fail(_) if !job.state.is_terminal() => {
                job.state = match op {
                    JobOp::Cancel => JobState::Cancelled,
                    _ => JobState::Failed,
                };
                if let JobOp::Fail(reason) = op {
                    job.error = Some(reason.to_owned());
                }
                job.finished_at = Some(now);
            }
            JobOp::Cancel | JobOp::Fail(_) => {}
            JobOp::Acknowledge => job.acknowledged = true,
            JobOp::Remove => return Ok(state.jobs.remove(index)),
        }
        Ok(state.jobs[index].clone())
    }

    fn jobs(&self, owner: &Principal) -> Vec<JobSnapshot> {
        self.lock()
            .jobs
            .iter()
            .filter(|j| j.owner_tag == self.dialect && &j.owner == owner)
            .cloned()
            .collect()
    }

    fn start_download(&self, id: &str, max_per_owner: Option<usize>) -> Result<Download, Error> {
        let mut state = self.lock();
        let owner = state
            .jobs
            .iter()
            .find(|j| j.id == id && j.owner_tag == self.dialect)
            .map(|j| j.owner.clone())
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if let Some(limit) = max_per_owner {
            let busy: u32 = state
                .jobs
                .iter()
                .filter(|j| j.owner_tag == self.dialect && j.owner == owner)
                .map(|j| j.active_downloads)
                .sum();
            if busy as usize >= limit {
                return Err(Error::TooManyDownloads {
                    limit: limit as u64,
                });
            }
        }
        let job = state
            .jobs
            .iter_mut()
            .find(|j| j.id == id && j.owner_tag == self.dialect)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        if job.state != JobState::Ready {
            return Err(Error::Gone(id.to_owned()));
        }
        job.state = JobState::Done;
        job.downloads += 1;
        let snapshot = job.clone();
        let len = FAKE_ARCHIVE.len() as u64;
        Ok(Download::new(
            snapshot,
            Some(len),
            false,
            Box::new(|offset, len| {
                let start = (offset as usize).min(FAKE_ARCHIVE.len());
                let end = len.map_or(FAKE_ARCHIVE.len(), |l| {
                    (start + l as usize).min(FAKE_ARCHIVE.len())
                });
                full(&FAKE_ARCHIVE[start..end])
            }),
        ))
    }

    fn next_in_sequence(&self, name: &str) -> Result<u64, Error> {
        let mut state = self.lock();
        let next = state.sequences.entry(name.to_owned()).or_insert(0);
        *next += 1;
        Ok(*next)
    }

    fn random(&self, _kind: Randomness, out: &mut [u8]) {
        // One deterministic generator for both kinds: a fake has no secrets.
        let mut state = self.lock();
        for chunk in out.chunks_mut(8) {
            let bytes = state.rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The whole body of a response a handler built in memory (an error
/// envelope, or a fake download): its frames are all ready at once, so no
/// runtime is needed. Panics on a body that would have to wait.
pub fn body_bytes(response: http::Response<crate::http::Body>) -> bytes::Bytes {
    use http_body_util::BodyExt;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut collect = std::pin::pin!(response.into_body().collect());
    match collect.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        std::task::Poll::Ready(Err(e)) => panic!("the body failed: {e}"),
        std::task::Poll::Pending => panic!("the body is not in memory"),
    }
}

/// [`body_bytes`] as JSON.
pub fn body_json(response: http::Response<crate::http::Body>) -> serde_json::Value {
    let bytes = body_bytes(response);
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::SelectedItem;

    fn create(core: &FakeCore, id: &str, pacing: Pacing) -> Result<CreatedJob, Error> {
        core.create_job(CreateJob {
            id: id.into(),
            name: "a.zip".into(),
            context: String::new(),
            owner: Principal::User(UserId("u".into())),
            selection: vec![SelectedItem {
                id: NodeId::from("d"),
                expected_kind: Some(NodeKind::Folder),
                name: None,
            }],
            plan: PlanOptions::default(),
            compression: None,
            single_file_as_is: false,
            layout: Default::default(),
            pacing,
            download_window: None,
            single_use: true,
            retention: chrono::Duration::hours(1),
        })
    }

    #[test]
    fn the_fake_keeps_the_rules_a_handler_relies_on() {
        let core = FakeCore::new("x", |id| format!("x{id}"))
            .user("u", None)
            .folder("d", "D", None)
            .file("f", "a.txt", 5, Some("d"));
        assert_eq!(core.resolve("xf"), Some(NodeId::from("f")));
        assert_eq!(core.authenticate("u-token").unwrap().id.0, "u");
        let created = create(&core, "j1", Pacing::AfterPolls(2)).unwrap();
        assert_eq!((created.job.file_count, created.total_bytes), (1, 5));
        assert!(core.start_download("j1", None).is_err(), "not ready yet");
        core.job("j1", JobOp::Poll).unwrap();
        assert_eq!(core.job("j1", JobOp::Poll).unwrap().state, JobState::Ready);
        assert!(core.start_download("j1", None).is_ok());
        assert!(core.start_download("j1", None).is_err(), "single use");
        // Another dialect's job is invisible.
        core.foreign_job("j2", Principal::Anonymous);
        assert!(core.job("j2", JobOp::Look).is_err());
        assert!(core.start_download("j2", None).is_err());
    }
}
