//! Box's id schemes: numeric strings for files and folders (pinned in the
//! fixture as `ids.box`, else derived from the neutral id), opaque
//! base64-like zip download ids, request ids, and conflict renaming.

use std::collections::HashMap;
use std::sync::Mutex;

use zipgate_api::plan::{ConflictPolicy, Member};
use zipgate_api::rng::{fnv1a, SplitMix64, LOWER_ALNUM};
use zipgate_api::{Core, NodeId, NodeInfo, NodeKind};

pub const DIALECT: &str = "box";

/// A node's Box id: pinned, or 12 digits derived from its neutral id.
pub fn box_id(node: &NodeInfo) -> String {
    match node.dialect_ids.get(DIALECT) {
        Some(pinned) => pinned.clone(),
        None => derived_id(&node.id),
    }
}

pub fn derived_id(id: &NodeId) -> String {
    let hash = fnv1a(format!("box:{}", id.as_str()).as_bytes());
    (100_000_000_000 + hash % 900_000_000_000).to_string()
}

/// Box id → neutral id, rebuilt whenever the store changes.
#[derive(Default)]
pub struct IdIndex {
    cache: Mutex<Option<(u64, HashMap<String, NodeId>)>>,
}

impl IdIndex {
    pub fn resolve(&self, core: &dyn Core, box_id_value: &str) -> Option<NodeId> {
        let generation = core.store_generation();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.as_ref().is_none_or(|(g, _)| *g != generation) {
            let index = core
                .nodes()
                .iter()
                .map(|node| (box_id(node), node.id.clone()))
                .collect();
            *cache = Some((generation, index));
        }
        cache
            .as_ref()
            .and_then(|(_, index)| index.get(box_id_value).cloned())
    }
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Shaped like Box's: `29l00nfxDyHOt7RphI9zT_w==nDnZEDjY2S8iEWWCHEEiptFxwoWojjlibZjJ6geuE5xnXENDTPxzgbks_yY=`.
pub fn zip_download_id(core: &dyn Core) -> String {
    let mut rng = SplitMix64::new(core.random_u64());
    format!(
        "{}{}=={}=",
        rng.string(b"0123456789", 2),
        rng.string(BASE64URL, 21),
        rng.string(BASE64URL, 54)
    )
}

/// Like `BOX-REQUEST-ID: 0g81ogj572gd15m289a3m0ovs66`.
pub fn request_id(core: &dyn Core) -> String {
    SplitMix64::new(core.random_u64()).string(LOWER_ALNUM, 27)
}

/// Box renames every member of a conflict: files to six random characters
/// plus the extension (`3aa6a7.pdf`), folders to six characters, `_` and the
/// name (`3d366a_employees`). Seeded, so a run with `--seed` is reproducible.
pub struct BoxRenamer(pub SplitMix64);

impl ConflictPolicy for BoxRenamer {
    fn resolve(&mut self, group: &[Member<'_>], taken: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(group.len());
        for member in group {
            loop {
                let random = self.0.string(LOWER_ALNUM, 6);
                let name = match (member.kind, member.name.rsplit_once('.')) {
                    (NodeKind::Folder, _) => format!("{random}_{}", member.name),
                    (NodeKind::File, Some((stem, ext))) if !stem.is_empty() => {
                        format!("{random}.{ext}")
                    }
                    (NodeKind::File, _) => random,
                };
                if !taken(&name) && !out.contains(&name) {
                    out.push(name);
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_follow_boxs_examples() {
        let mut renamer = BoxRenamer(SplitMix64::new(1));
        let files = [
            Member {
                name: "Report.pdf",
                kind: NodeKind::File,
            },
            Member {
                name: "Report.pdf",
                kind: NodeKind::File,
            },
        ];
        let names = renamer.resolve(&files, &|_| false);
        assert_eq!(names.len(), 2);
        for name in &names {
            let (stem, ext) = name.split_once('.').unwrap();
            assert_eq!(ext, "pdf");
            assert_eq!(stem.len(), 6);
            assert!(stem.bytes().all(|b| LOWER_ALNUM.contains(&b)));
        }
        assert_ne!(names[0], names[1]);
        let folders = [
            Member {
                name: "employees",
                kind: NodeKind::Folder,
            },
            Member {
                name: "employees",
                kind: NodeKind::Folder,
            },
        ];
        for name in renamer.resolve(&folders, &|_| false) {
            assert_eq!(&name[6..], "_employees");
        }
        let plain = [
            Member {
                name: "Makefile",
                kind: NodeKind::File,
            },
            Member {
                name: ".env",
                kind: NodeKind::File,
            },
        ];
        for name in renamer.resolve(&plain, &|_| false) {
            assert_eq!(name.len(), 6);
        }
    }

    #[test]
    fn derived_ids_are_numeric_and_stable() {
        let id = derived_id(&NodeId::from("file-notes"));
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(id, derived_id(&NodeId::from("file-notes")));
        assert_ne!(id, derived_id(&NodeId::from("file-photo")));
    }
}
