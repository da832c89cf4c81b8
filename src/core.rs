//! The core as dialects see it: `ServerCore` implements `zipgate_api::Core`
//! over the store, planner, packer, job registry and zip engine.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use http::{header, HeaderMap};
use zipgate_api::{
    Core, CreateJob, CreatedJob, Download, Error, JobSnapshot, NodeId, NodeInfo, Principal, UserId,
    UserInfo,
};

use crate::jobs::JobSpec;
use crate::packing::{build_archive, single_file_archive};
use crate::planner;
use crate::server::stream::archive_body;
use crate::server::AppState;
use crate::store::{Node, NodeData, User};

pub struct ServerCore(pub Arc<AppState>);

fn node_info(node: &Node) -> NodeInfo {
    NodeInfo {
        id: node.id.clone(),
        name: node.name.clone(),
        kind: node.kind(),
        size: node.size(),
        mtime: node.mtime,
        parent: node.parent.clone(),
        owner: node.owner.clone(),
        dialect_ids: node.dialect_ids.clone(),
    }
}

fn user_info(user: &User) -> UserInfo {
    UserInfo {
        id: user.id.clone(),
        name: user.name.clone(),
        login: user.login.clone(),
        home: user.home.clone(),
        dialect_ids: user.dialect_ids.clone(),
    }
}

impl Core for ServerCore {
    fn now(&self) -> DateTime<Utc> {
        self.0.clock.now()
    }

    fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.0.store().authenticate(token).map(user_info)
    }

    fn log_in(&self, login: &str, password: &str) -> Option<(UserInfo, String)> {
        let store = self.0.store();
        let user = store.log_in(login, password)?;
        Some((user_info(user), user.token.clone()?))
    }

    fn user(&self, id: &UserId) -> Option<UserInfo> {
        self.0.store().user(id).map(user_info)
    }

    fn node(&self, id: &NodeId) -> Option<NodeInfo> {
        self.0.store().node(id).map(|n| node_info(n))
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.0.store().nodes().map(|n| node_info(n)).collect()
    }

    fn store_generation(&self) -> u64 {
        self.0.store_generation()
    }

    fn can_read(&self, principal: &Principal, id: &NodeId) -> bool {
        let store = self.0.store();
        store
            .node(id)
            .is_some_and(|node| store.can_read(principal, node))
    }

    fn create_job(&self, owner_tag: &str, request: CreateJob) -> Result<CreatedJob, Error> {
        let store = self.0.store();
        let mut options = request.plan;
        let plan = planner::plan(&store, &request.owner, &request.selection, &mut options)?;
        let mut policy = self.0.config.compression.clone();
        if let Some(method) = request.compression {
            policy.method = method;
        }
        let archive = match (&plan.entries[..], request.single_file_as_is) {
            ([entry], true) if !entry.is_dir() => Arc::new(single_file_archive(entry)),
            _ => Arc::new(build_archive(&plan, &policy)),
        };
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
        let job = self.0.jobs.create(JobSpec {
            id: request.id,
            name: request.name,
            context: request.context,
            owner_tag: owner_tag.to_owned(),
            owner: request.owner,
            archive,
            file_count: plan.file_count,
            files_skipped,
            folders_skipped,
            pacing: request.pacing,
            download_window: request.download_window,
            single_use: request.single_use,
            retention: request.retention,
        })?;
        Ok(CreatedJob {
            job,
            conflicts: plan.conflicts,
            skipped: plan.skipped,
            folder_count: plan.folder_count,
            total_bytes: plan.total_bytes,
            archive_len,
        })
    }

    fn job(&self, id: &str) -> Option<JobSnapshot> {
        self.0.jobs.get(id)
    }

    fn poll_job(&self, id: &str) -> Option<JobSnapshot> {
        self.0.jobs.poll(id)
    }

    fn cancel_job(&self, id: &str) -> Result<JobSnapshot, Error> {
        self.0.jobs.cancel(id)
    }

    fn fail_job(&self, id: &str, reason: &str) -> Result<JobSnapshot, Error> {
        self.0.jobs.fail(id, reason)
    }

    fn acknowledge_job(&self, id: &str) {
        self.0.jobs.acknowledge(id);
    }

    fn remove_job(&self, id: &str) -> Option<JobSnapshot> {
        self.0.jobs.remove(id)
    }

    fn jobs_of(&self, owner_tag: &str, owner: &Principal) -> Vec<JobSnapshot> {
        self.0.jobs.list_of(owner_tag, owner)
    }

    fn start_download(&self, id: &str) -> Result<Download, Error> {
        let (archive, ticket) = self.0.jobs.begin_download(id)?;
        let job = self
            .0
            .jobs
            .get(id)
            .ok_or_else(|| Error::NotFound(id.to_owned()))?;
        let len = archive.len();
        let single_file = archive.is_single_file();
        let streams = self.0.streams.clone();
        Ok(Download::new(
            job,
            len,
            single_file,
            Box::new(move |offset, len| {
                archive_body(archive, offset, len, streams, Arc::new(ticket))
            }),
        ))
    }

    fn origin(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.0.config.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost");
        format!("http://{host}")
    }

    fn random_u64(&self) -> u64 {
        self.0.random_u64()
    }
}
