//! A download-time recheck: which of a job's archive entries the owner can
//! still read when the download starts. A job made with
//! `PlanOptions::recheck_at_download` keeps where each entry came from; what
//! is gone (or unreadable) since the create is left out of the download and
//! counted as skipped, with everything the archive held below it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use zipgate_api::{NodeId, NodeKind};

use crate::planner::Plan;
use crate::zip::Archive;

/// Where one archive entry, or one folder the walk went through, came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Source {
    node: NodeId,
    kind: NodeKind,
    /// The folder visit it sits in (for a folder entry: its own visit).
    folder: Option<u32>,
}

/// The origin of each entry of a job's archive, aligned with its entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    entries: Vec<Source>,
    /// Every folder the plan walked, parents before children; `folder` is
    /// the parent visit here.
    folders: Vec<Source>,
}

/// What a recheck left out.
pub struct Lost {
    /// One flag per archive entry: still there.
    pub keep: Vec<bool>,
    pub files: u64,
    pub folders: u64,
}

impl Sources {
    pub fn of(plan: &Plan) -> Self {
        Sources {
            entries: plan
                .entries
                .iter()
                .map(|entry| Source {
                    node: entry.node.id.clone(),
                    kind: entry.node.kind(),
                    folder: entry.folder,
                })
                .collect(),
            folders: plan
                .folders
                .iter()
                .map(|visit| Source {
                    node: visit.node.id.clone(),
                    kind: NodeKind::Folder,
                    folder: visit.parent,
                })
                .collect(),
        }
    }

    /// Which entries survive, given whether a node is still there and
    /// readable; `None` when nothing was lost.
    pub fn check(&self, readable: impl Fn(&NodeId, NodeKind) -> bool) -> Option<Lost> {
        let mut folder_ok: Vec<bool> = Vec::with_capacity(self.folders.len());
        for visit in &self.folders {
            // Parents come first, so the parent's answer is already known.
            let parent_ok = visit
                .folder
                .is_none_or(|p| folder_ok.get(p as usize).copied().unwrap_or(false));
            folder_ok.push(parent_ok && readable(&visit.node, visit.kind));
        }
        let within = |folder: Option<u32>| {
            folder.is_none_or(|i| folder_ok.get(i as usize).copied().unwrap_or(false))
        };
        let mut lost_files = 0;
        let keep: Vec<bool> = self
            .entries
            .iter()
            .map(|entry| {
                let ok = match entry.kind {
                    // A folder entry's visit already answers for it and its parents.
                    NodeKind::Folder => within(entry.folder),
                    NodeKind::File => within(entry.folder) && readable(&entry.node, entry.kind),
                };
                if !ok && entry.kind == NodeKind::File {
                    lost_files += 1;
                }
                ok
            })
            .collect();
        let lost_folders = folder_ok.iter().filter(|ok| !**ok).count() as u64;
        (lost_files > 0 || lost_folders > 0).then_some(Lost {
            keep,
            files: lost_files,
            folders: lost_folders,
        })
    }

    /// The sources of the entries `keep` marks, for an archive cut the same way.
    pub fn retain(&self, keep: &[bool]) -> Sources {
        Sources {
            entries: self
                .entries
                .iter()
                .zip(keep)
                .filter(|(_, keep)| **keep)
                .map(|(source, _)| source.clone())
                .collect(),
            folders: self.folders.clone(),
        }
    }
}

/// A job's archive with what a recheck lost taken out, to be swapped in when
/// the download is claimed, if the job still holds `from`.
pub struct Replacement {
    pub from: Arc<Archive>,
    pub archive: Arc<Archive>,
    pub sources: Arc<Sources>,
    pub files: u64,
    pub folders: u64,
}

impl Replacement {
    pub fn new(from: Arc<Archive>, sources: &Sources, lost: Lost) -> Self {
        Replacement {
            archive: Arc::new(from.retain(&lost.keep)),
            sources: Arc::new(sources.retain(&lost.keep)),
            from,
            files: lost.files,
            folders: lost.folders,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn source(node: &str, kind: NodeKind, folder: Option<u32>) -> Source {
        Source {
            node: node.into(),
            kind,
            folder,
        }
    }

    /// `top/` (visit 0) holds `a` and `sub/` (visit 1), which holds `b`;
    /// `c` sits at the top, and `b` was also selected there.
    fn sources() -> Sources {
        Sources {
            folders: vec![
                source("top", NodeKind::Folder, None),
                source("sub", NodeKind::Folder, Some(0)),
            ],
            entries: vec![
                source("top", NodeKind::Folder, Some(0)),
                source("a", NodeKind::File, Some(0)),
                source("sub", NodeKind::Folder, Some(1)),
                source("b", NodeKind::File, Some(1)),
                source("c", NodeKind::File, None),
                source("b", NodeKind::File, None),
            ],
        }
    }

    fn without(gone: &[&str]) -> Option<Lost> {
        let gone: HashSet<NodeId> = gone.iter().map(|&g| g.into()).collect();
        sources().check(|id, _| !gone.contains(id))
    }

    #[test]
    fn nothing_lost_is_none() {
        assert!(without(&[]).is_none());
    }

    #[test]
    fn a_lost_folder_takes_what_it_holds_and_nothing_else() {
        let lost = without(&["sub"]).unwrap();
        assert_eq!(lost.keep, [true, true, false, false, true, true]);
        assert_eq!((lost.files, lost.folders), (1, 1));
        let lost = without(&["top"]).unwrap();
        assert_eq!(lost.keep, [false, false, false, false, true, true]);
        assert_eq!((lost.files, lost.folders), (2, 2));
    }

    #[test]
    fn a_lost_file_goes_from_every_place_it_was_packed() {
        let lost = without(&["b"]).unwrap();
        assert_eq!(lost.keep, [true, true, true, false, true, false]);
        assert_eq!((lost.files, lost.folders), (2, 0));
        let kept = sources().retain(&lost.keep);
        assert_eq!(kept.entries.len(), 4);
        assert_eq!(kept.folders.len(), 2);
    }
}
