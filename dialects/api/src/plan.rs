//! How a selection becomes archive entries, in neutral terms: what to do
//! with missing or unreadable items, which folders get entries, limits, and
//! the conflict policy a dialect may supply.

use crate::{NodeId, NodeKind};

/// What to do with an item that cannot be included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnProblem {
    Fail,
    Skip,
}

/// Which folders get their own directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirEntries {
    /// Every folder (what most zip writers do).
    All,
    /// Only folders with nothing in them; the others exist through their files.
    EmptyOnly,
}

/// One of several siblings that would land on the same archive path.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    pub name: &'a str,
    pub kind: NodeKind,
}

/// Settles name conflicts. Given every member of one group of siblings that
/// share a name, returns one new name per member, in order. `taken` says
/// whether a name is already used in that folder.
pub trait ConflictPolicy: Send {
    fn resolve(&mut self, group: &[Member<'_>], taken: &dyn Fn(&str) -> bool) -> Vec<String>;
}

/// The first keeps its name; the others become `name (1).ext`, `name (2).ext`…
pub struct NumberSuffix;

impl ConflictPolicy for NumberSuffix {
    fn resolve(&mut self, group: &[Member<'_>], taken: &dyn Fn(&str) -> bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(group.len());
        out.push(group[0].name.to_owned());
        let mut n = 1;
        for member in &group[1..] {
            loop {
                let candidate = numbered(member.name, member.kind, n);
                n += 1;
                if !taken(&candidate) && !out.contains(&candidate) {
                    out.push(candidate);
                    break;
                }
            }
        }
        out
    }
}

/// `a.docx` → `a (n).docx`; folders and names without a dot get the suffix at the end.
pub fn numbered(name: &str, kind: NodeKind, n: usize) -> String {
    match name.rfind('.') {
        Some(dot) if kind == NodeKind::File && dot > 0 => {
            format!("{} ({n}){}", &name[..dot], &name[dot..])
        }
        _ => format!("{name} ({n})"),
    }
}

/// Makes one path component safe to extract anywhere: no separators, no
/// control characters, never `.` or `..`, never empty. Archive entry names
/// and the archive's own file name (a download's `Content-Disposition`) alike.
pub fn safe_component(name: &str) -> String {
    let mut cleaned = String::with_capacity(name.len());
    // `:` would make `C:` a drive letter or `a:b` an NTFS stream.
    cleaned.extend(name.chars().map(|c| {
        if c == '/' || c == '\\' || c == ':' || c.is_control() {
            '_'
        } else {
            c
        }
    }));
    // Windows drops trailing dots and spaces, so `.. ` would act as `..`.
    if cleaned.chars().all(|c| c == '.' || c == ' ') {
        return "_".repeat(cleaned.chars().count().max(1));
    }
    cleaned
}

pub struct PlanOptions {
    pub missing: OnProblem,
    /// A selected item the caller may not read.
    pub unreadable: OnProblem,
    /// Something the caller may not read inside a selected folder: a skip
    /// (the default) leaves it out as if it were not there
    /// ([`SkipReason::ForbiddenInside`]).
    pub unreadable_inside: OnProblem,
    pub dir_entries: DirEntries,
    /// One folder selected alone: put its contents at the archive root.
    pub flatten_single_folder: bool,
    pub max_files: Option<u64>,
    pub max_bytes: Option<u64>,
    /// Files and folders together, each folder's own entry counted (written
    /// to the archive or not).
    pub max_entries: Option<u64>,
    /// The largest single file.
    pub max_file_bytes: Option<u64>,
    pub conflicts: Box<dyn ConflictPolicy>,
    /// What happens to an item selected more than once, or selected inside
    /// a folder that is selected too.
    pub repeats: Repeats,
    /// How siblings that share a name are told apart.
    pub keying: Keying,
    /// When a download starts, items the job's owner can no longer read, or
    /// that are gone, are left out of it and counted as skipped (the
    /// snapshot's `files_skipped` / `folders_skipped`). Otherwise the archive
    /// is what the create saw.
    pub recheck_at_download: bool,
    /// Sibling names that differ only by case conflict (Box's names are
    /// unique without regard to case within a folder).
    pub fold_case: bool,
    /// Names that extract the same everywhere: siblings that differ only by
    /// case or Unicode normalisation count as a conflict, and Windows'
    /// reserved names, characters it cannot store, trailing dots and spaces
    /// and components over 255 bytes are renamed. Off unless the server is
    /// started with `--portable-names` (no vendor is known to do it).
    pub portable_names: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            missing: OnProblem::Fail,
            unreadable: OnProblem::Fail,
            unreadable_inside: OnProblem::Skip,
            dir_entries: DirEntries::All,
            flatten_single_folder: false,
            max_files: None,
            max_bytes: None,
            max_entries: None,
            max_file_bytes: None,
            conflicts: Box::new(NumberSuffix),
            repeats: Repeats::Once,
            keying: Keying::Names,
            recheck_at_download: false,
            fold_case: false,
            portable_names: false,
        }
    }
}

/// How siblings that would share an archive path are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// Each folder level settles its clashes through `conflicts`.
    Names,
    /// Entries are keyed by their whole archive path, as a writer that
    /// collects `path → items` does: folders of one name become one folder
    /// (their contents together), and the n-th file of one path gets
    /// ` (n)` before the last `.` of the *whole path* (appended when the
    /// path has no `.` past its first character), so `v1.0/README` becomes
    /// `v1 (1).0/README`. `long_paths` optionally shortens long keys first.
    Paths { long_paths: Option<LongPaths> },
}

/// Paths longer than `over` UTF-16 units that hold a `/` past their first
/// character become `LONG_FOLDER_NAME/<last component>` (and then clash
/// like any others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongPaths {
    pub over: usize,
}

/// Items selected more than once, or inside another selected folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeats {
    /// Packed once: a repeat and an item inside another selected folder are
    /// skipped as [`SkipReason::Duplicate`].
    Once,
    /// An item inside a selected folder is packed there and again at the
    /// top, where it was selected (its name may then conflict); an id listed
    /// twice is still packed once.
    AtEachPlace,
    /// As `AtEachPlace`, and an id listed twice is packed twice (the copies
    /// share a name, so they conflict and are renamed).
    Every,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renamed {
    pub id: NodeId,
    pub kind: NodeKind,
    pub original: String,
    pub renamed: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    NotFound,
    /// A selected item the caller may not read.
    Forbidden,
    /// Something the caller may not read inside a selected folder.
    ForbiddenInside,
    /// Already in the archive through an earlier selection or a selected ancestor.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub id: NodeId,
    pub reason: SkipReason,
}
