//! itslearning's id schemes: integer ids for files and folders (pinned as
//! `ids.itslearning`, else seven derived digits), `JobId` counting from 1 per
//! server, and `FileRepoId`, a GUID from the cryptographic generator.

use std::sync::atomic::{AtomicU64, Ordering};

use zipgate_api::ids::derived_number;
use zipgate_api::rng::secret_guid;
use zipgate_api::{Core, NodeId};

pub(crate) const DIALECT: &str = "itslearning";

pub(crate) fn derive(id: &NodeId) -> String {
    derived_number("itslearning", id, 7)
}

/// `JobId`: counts from 1 per server, and from 1 again after a reset.
pub(crate) struct JobIds(AtomicU64);

impl JobIds {
    pub(crate) fn new() -> Self {
        JobIds(AtomicU64::new(1))
    }

    pub(crate) fn next(&self) -> String {
        self.0.fetch_add(1, Ordering::SeqCst).to_string()
    }

    pub(crate) fn reset(&self) {
        self.0.store(1, Ordering::SeqCst);
    }
}

/// The FileRepoId in the download URL is its only secret.
pub(crate) fn file_repo_id(core: &dyn Core) -> String {
    secret_guid(core)
}
