//! The neutral vocabulary shared by zipgate's core and its dialect adapters.
//!
//! Dialect crates depend on this crate only, never on the core, so the
//! compiler enforces that an adapter translates and nothing more. Nothing
//! here names a vendor.

pub mod dialect;
pub mod download;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod http;
pub mod ids;
pub mod job;
pub mod json;
pub mod jsonnet;
pub mod plan;
pub mod rng;
pub mod settings;
pub mod time;
pub mod xml;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use dialect::{
    mount, BodyError, Core, Cors, Credential, Dialect, DialectRequest, Download, Example, IdSpace,
    JobOp, Mounted, NameMatch, NodeInfo, PathRules, Randomness, Route, RouteHandler, Settings,
    SignedIn, UserInfo,
};
pub use job::{ArchiveLayout, CreateJob, CreatedJob, JobSnapshot, Pacing};

/// A node's id in the neutral store (fixture ids). Dialects map their own id
/// schemes onto it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(s.to_owned())
    }
}

/// A user's id in the neutral store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who is asking. `Anonymous` reads only what everyone may read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    Anonymous,
    User(UserId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Folder,
}

/// One item a client asked to have in an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedItem {
    pub id: NodeId,
    /// The kind the client claimed, when its API says; a mismatch is "not found".
    pub expected_kind: Option<NodeKind>,
    /// The name to pack the item under instead of its own (a file the
    /// vendor converts on the way, say); made safe like any name.
    pub name: Option<String>,
}

/// How an entry's bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Store,
    Deflate,
}

/// A limit the planner enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    FileCount,
    TotalBytes,
    /// Files and folders together (each folder's own entry counted).
    Entries,
    /// The largest single file.
    FileBytes,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitKind::FileCount => "file count",
            LimitKind::TotalBytes => "total bytes",
            LimitKind::Entries => "entry count",
            LimitKind::FileBytes => "file size",
        })
    }
}

/// Neutral failure kinds. Each dialect maps them to its vendor's status codes,
/// error codes and envelopes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no item with id {0:?}")]
    NotFound(String),
    #[error("not allowed to read {0:?}")]
    Forbidden(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{kind} limit of {limit} exceeded ({actual})")]
    LimitExceeded {
        kind: LimitKind,
        limit: u64,
        actual: u64,
    },
    #[error("missing or invalid credentials")]
    Unauthenticated,
    #[error("{0} is no longer available")]
    Gone(String),
    #[error("{0} is in a state that does not allow this")]
    Conflict(String),
    /// The caller holds as many jobs as one principal may; it must wait for
    /// some to finish or expire (each vendor's rate-limit or "too many" answer).
    #[error("too many jobs: at most {limit} per user")]
    TooManyJobs { limit: u64 },
    /// The job's owner has as many downloads streaming as one may (see
    /// [`Core::start_download`]).
    #[error("too many downloads at once: at most {limit} per user")]
    TooManyDownloads { limit: u64 },
    /// Where the files live cannot be reached (object storage down, a
    /// served directory gone): each vendor's 503.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The life of an archive job, shared by every dialect:
/// queued → running → ready → downloading → done, or failed / cancelled /
/// expired from any state before done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Where every job starts.
    #[default]
    Queued,
    Running,
    Ready,
    Downloading,
    Done,
    Failed,
    Cancelled,
    Expired,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled | JobState::Expired
        )
    }

    /// Neither ready nor ended: what a client's status poll moves on.
    pub fn is_in_progress(self) -> bool {
        !self.is_terminal() && self != JobState::Ready
    }
}
