//! itslearning's id schemes: integer ids for files and folders (pinned as
//! `ids.itslearning`, else seven derived digits), `JobId` counting from 1 per
//! server, and `FileRepoId`, a GUID from the cryptographic generator.

use zipgate_api::ids::derived_number;
use zipgate_api::rng::secret_guid;
use zipgate_api::{Core, NodeId};

pub(crate) const DIALECT: &str = "itslearning";

pub(crate) fn derive(id: &NodeId) -> String {
    derived_number("itslearning", id, 7)
}

/// `JobId`: counts from 1 per server (per set of replicas sharing their
/// jobs), and from 1 again after a reset; the core keeps the count.
pub(crate) fn next_job_id(core: &dyn Core) -> Result<String, zipgate_api::Error> {
    Ok(core.next_in_sequence("job_id")?.to_string())
}

/// The FileRepoId in the download URL is its only secret.
pub(crate) fn file_repo_id(core: &dyn Core) -> String {
    secret_guid(core)
}
