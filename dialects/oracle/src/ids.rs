//! Oracle's id schemes: 44-character item GUIDs (`F` + 43 upper-hex for
//! folders, `D` + 43 for files; pinned as `ids.oracle`, else derived), the
//! `fFolderGUID:`/`fFileGUID:` references, and job ids (32 upper-hex and the
//! 13-digit epoch milliseconds of creation).

use chrono::{DateTime, Utc};
use zipgate_api::rng::{fnv1a, secret_string, SplitMix64};
use zipgate_api::{Core, NodeId, NodeKind};

pub const DIALECT: &str = "oracle";
const HEX: &[u8] = b"0123456789ABCDEF";

/// Derived ids carry no kind, so both letters are tried on lookup; the letter
/// is added where the kind is known (see `item_id`).
pub fn derive(id: &NodeId) -> String {
    SplitMix64::new(fnv1a(format!("oracle:{}", id.as_str()).as_bytes())).string(HEX, 43)
}

/// The item's 44-character GUID.
pub fn item_id(node: &zipgate_api::NodeInfo) -> String {
    if let Some(pinned) = &node.pinned_id {
        pinned.clone()
    } else {
        let raw = derive(&node.id);
        let letter = if node.kind == zipgate_api::NodeKind::Folder {
            'F'
        } else {
            'D'
        };
        format!("{letter}{raw}")
    }
}

/// Neutral id of a 44-character GUID: pinned as written, or derived, where
/// the letter must name the node's kind (`F` a folder, `D` a file): a
/// derived id with the other letter, or with none, is no item.
pub fn resolve(core: &dyn Core, guid: &str) -> Option<NodeId> {
    let pinned = core.resolve(guid).filter(|id| {
        core.node(id)
            .is_some_and(|n| n.pinned_id.as_deref() == Some(guid))
    });
    pinned.or_else(|| {
        let (kind, rest) = match guid.split_at_checked(1)? {
            ("F", rest) => (NodeKind::Folder, rest),
            ("D", rest) => (NodeKind::File, rest),
            _ => return None,
        };
        core.resolve_as(rest, kind)
            .filter(|id| core.node(id).is_some_and(|n| n.pinned_id.is_none()))
    })
}

/// `fFolderGUID:` for folder GUIDs, `fFileGUID:` for the rest (by the first letter, as the server classifies them).
pub fn reference(guid: &str) -> String {
    if guid.starts_with('F') {
        format!("fFolderGUID:{guid}")
    } else {
        format!("fFileGUID:{guid}")
    }
}

/// 32 hex digits and the creation time in milliseconds. The id names the
/// package to fetch, so its random part comes from the cryptographic generator.
pub fn job_id(core: &dyn Core, now: DateTime<Utc>) -> String {
    format!(
        "{}{:013}",
        secret_string(core, HEX, 32),
        now.timestamp_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_by_first_letter() {
        assert_eq!(reference("FABC"), "fFolderGUID:FABC");
        assert_eq!(reference("DABC"), "fFileGUID:DABC");
    }
}
