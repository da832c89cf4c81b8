//! Dropbox's ids: `id:` and 22 URL-safe characters for files and folders
//! (pinned in the fixture as `ids.dropbox`, else derived from the neutral
//! id), 32 lower-case hex digits for `X-Dropbox-Request-Id`.

use zipgate_api::rng::{fnv1a, SplitMix64};
use zipgate_api::{Core, NodeId};

pub const DIALECT: &str = "dropbox";

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const HEX: &[u8] = b"0123456789abcdef";

/// `id:a4ayc_80_OEAAAAAAAAAXw`-shaped, the same for the same node every run.
pub fn derive(id: &NodeId) -> String {
    let mut rng = SplitMix64::new(fnv1a(format!("dropbox:{}", id.as_str()).as_bytes()));
    format!("id:{}", rng.string(ID_CHARS, 22))
}

/// `X-Dropbox-Request-Id`: cosmetic (it grants nothing), so from the seeded generator.
pub fn request_id(core: &dyn Core) -> String {
    SplitMix64::new(core.random_u64()).string(HEX, 32)
}

/// A job's id: never shown to a client (the archive is in the same answer).
pub fn job_id(core: &dyn Core) -> String {
    format!("dbx-{}", request_id(core))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_dropboxs() {
        let id = derive(&NodeId::from("folder-documents"));
        assert_eq!(id.len(), 25);
        assert!(id.starts_with("id:"));
        assert_eq!(id, derive(&NodeId::from("folder-documents")));
    }
}
