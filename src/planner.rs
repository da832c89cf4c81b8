//! Selection → ordered archive entries: folders expanded depth-first, names
//! made safe, conflicts settled by a pluggable policy, limits enforced.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use zipgate_api::{Error, LimitKind, NodeId, NodeKind, Principal, SelectedItem};

use unicode_normalization::UnicodeNormalization;

use crate::store::{Node, NodeData, Tree};
use crate::zip::format::MAX_NAME_BYTES;

pub use zipgate_api::plan::{
    numbered, safe_component, ConflictPolicy, DirEntries, Keying, LongPaths, Member, NumberSuffix,
    OnProblem, PlanOptions, Renamed, Repeats, SkipReason, Skipped,
};

#[derive(Clone, Debug)]
pub struct PlanEntry {
    /// Archive path; folders end with `/`.
    pub path: String,
    pub node: Arc<Node>,
    /// The folder this entry stands in ([`Plan::folders`]): a file's parent
    /// in the archive, a folder entry's own visit. `None` at the top.
    pub folder: Option<u32>,
}

/// A folder the walk went through, whether it got an entry or not, so the
/// entries below it can be dropped with it (a download-time recheck).
#[derive(Clone, Debug)]
pub struct FolderVisit {
    pub node: Arc<Node>,
    /// The visit it sits in; parents come before their children.
    pub parent: Option<u32>,
}

impl PlanEntry {
    pub fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    /// Every folder walked, parents first.
    pub folders: Vec<FolderVisit>,
    /// One inner list per group of siblings that shared an archive path.
    pub conflicts: Vec<Vec<Renamed>>,
    pub skipped: Vec<Skipped>,
    pub file_count: u64,
    pub folder_count: u64,
    pub total_bytes: u64,
    /// The size of the largest file.
    pub largest_file: u64,
}

/// Longest path component most file systems take (NTFS, ext4, APFS count
/// 255 units; bytes is the strictest reading).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// A trailing `.…` longer than this is part of the name, not an extension
/// to keep when the name is shortened.
const MAX_EXTENSION_BYTES: usize = 32;

/// Device names Windows reserves in every folder, with or without an
/// extension (`nul.txt` too), and the superscript digits it also accepts.
const RESERVED_NAMES: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "COM¹", "COM²", "COM³", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8",
    "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// Whether Windows would take `name` for a device: the part before the
/// first dot, trailing spaces dropped, is a reserved name in any case.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    // The superscripts are the same bytes in either case.
    RESERVED_NAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(stem))
}

/// `name` cut to at most `max` bytes on a character boundary, a file's
/// extension (a short trailing `.…`) kept.
fn truncate_keeping_extension(name: &str, kind: NodeKind, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let extension = match name.rfind('.') {
        Some(dot)
            if kind == NodeKind::File && dot > 0 && name.len() - dot <= MAX_EXTENSION_BYTES =>
        {
            &name[dot..]
        }
        _ => "",
    };
    let stem = &name[..name.len() - extension.len()];
    let mut end = max.saturating_sub(extension.len()).min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    [&stem[..end], extension].concat()
}

/// A safe component (see [`safe_component`]) made portable: characters
/// Windows cannot store (`<>"|?*`) become `_`, a reserved device name gets
/// a leading `_` (`_CON.txt`), the component is cut to 255 bytes keeping
/// its extension, and trailing dots and spaces (which Windows drops, so
/// `a.` would be `a`) become `_`.
pub fn portable_component(name: &str, kind: NodeKind) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if matches!(c, '<' | '>' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if is_reserved(&out) {
        out.insert(0, '_');
    }
    let mut out = truncate_keeping_extension(&out, kind, MAX_COMPONENT_BYTES);
    let kept = out.trim_end_matches(['.', ' ']).len();
    let trailing = out.len() - kept;
    out.truncate(kept);
    out.extend(std::iter::repeat_n('_', trailing));
    out
}

/// What two sibling names must differ in to be two entries once extracted
/// on a case-insensitive, normalising file system (NTFS, APFS, HFS+): their
/// NFC form, lower-cased.
pub fn portable_key(name: &str) -> String {
    let lower = name.nfc().collect::<String>().to_lowercase();
    lower.nfc().collect()
}

/// One component as it goes into the archive.
fn clean(name: &str, kind: NodeKind, portable: bool) -> String {
    let safe = safe_component(name);
    if portable {
        portable_component(&safe, kind)
    } else {
        safe
    }
}

/// `numbered`, shortening the name first when portable names must stay
/// within 255 bytes, so the number is never the part cut off.
fn numbered_within(base: &str, n: usize, portable: bool) -> String {
    let candidate = numbered(base, NodeKind::File, n);
    if !portable || candidate.len() <= MAX_COMPONENT_BYTES {
        return candidate;
    }
    let over = candidate.len() - MAX_COMPONENT_BYTES;
    let shorter = truncate_keeping_extension(base, NodeKind::File, base.len().saturating_sub(over));
    numbered(&shorter, NodeKind::File, n)
}

pub fn plan(
    store: &Tree,
    principal: &Principal,
    selection: &[SelectedItem],
    options: &mut PlanOptions,
) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    let mut top: Vec<Arc<Node>> = Vec::new();
    for item in selection {
        let node = match store.node(&item.id) {
            Some(node) if item.expected_kind.is_none_or(|kind| kind == node.kind()) => node,
            _ => {
                match options.missing {
                    OnProblem::Fail => return Err(Error::NotFound(item.id.0.clone())),
                    OnProblem::Skip => plan.skipped.push(Skipped {
                        id: item.id.clone(),
                        reason: SkipReason::NotFound,
                    }),
                }
                continue;
            }
        };
        if !store.can_read(principal, node) {
            match options.unreadable {
                OnProblem::Fail => return Err(Error::Forbidden(item.id.0.clone())),
                OnProblem::Skip => plan.skipped.push(Skipped {
                    id: item.id.clone(),
                    reason: SkipReason::Forbidden,
                }),
            }
            continue;
        }
        top.push(match &item.name {
            Some(name) => Arc::new(renamed(node, name)),
            None => node.clone(),
        });
    }

    // Drop repeats, and (packing once) items already inside another
    // selected folder; a lone item can be neither.
    let unique = if top.len() < 2 {
        top
    } else {
        let selected: HashSet<&NodeId> = top.iter().map(|n| &n.id).collect();
        let mut seen = HashSet::new();
        let mut unique = Vec::with_capacity(top.len());
        for node in &top {
            let inside_selected = options.repeats == Repeats::Once
                && ancestors(store, node).any(|a| selected.contains(&a.id));
            let repeated = !seen.insert(&node.id) && options.repeats != Repeats::Every;
            if inside_selected || repeated {
                plan.skipped.push(Skipped {
                    id: node.id.clone(),
                    reason: SkipReason::Duplicate,
                });
            } else {
                unique.push(node.clone());
            }
        }
        unique
    };

    let mut walker = Walker {
        store,
        principal,
        options,
        plan: &mut plan,
        paths: HashSet::new(),
    };
    match unique.as_slice() {
        [only] if walker.options.flatten_single_folder && only.kind() == NodeKind::Folder => {
            let children: Vec<Arc<Node>> = walker.readable_children(only)?;
            let visit = walker.visit(only, None);
            walker.walk("", children, Some(visit))?;
        }
        _ => walker.walk("", unique, None)?,
    }

    if let Some(limit) = options.max_files {
        if plan.file_count > limit {
            return Err(Error::LimitExceeded {
                kind: LimitKind::FileCount,
                limit,
                actual: plan.file_count,
            });
        }
    }
    let entries = plan.file_count.saturating_add(plan.folder_count);
    // In this order: a dialect whose vendor checks otherwise sets one limit only.
    for (kind, limit, actual) in [
        (LimitKind::Entries, options.max_entries, entries),
        (LimitKind::TotalBytes, options.max_bytes, plan.total_bytes),
        (
            LimitKind::FileBytes,
            options.max_file_bytes,
            plan.largest_file,
        ),
    ] {
        if let Some(limit) = limit.filter(|&limit| actual > limit) {
            return Err(Error::LimitExceeded {
                kind,
                limit,
                actual,
            });
        }
    }
    Ok(plan)
}

/// `node` under another name, as a selection asked; the same id, bytes
/// and rights.
fn renamed(node: &Node, name: &str) -> Node {
    Node {
        id: node.id.clone(),
        name: name.to_owned(),
        parent: node.parent.clone(),
        mtime: node.mtime,
        owner: node.owner.clone(),
        readers: node.readers.clone(),
        dialect_ids: node.dialect_ids.clone(),
        data: match &node.data {
            NodeData::Folder(children) => NodeData::Folder(children.clone()),
            NodeData::File(body) => NodeData::File(Arc::clone(body)),
        },
    }
}

fn ancestors<'a>(store: &'a Tree, node: &'a Node) -> impl Iterator<Item = &'a Arc<Node>> + 'a {
    std::iter::successors(node.parent.as_ref().and_then(|p| store.node(p)), move |n| {
        n.parent.as_ref().and_then(|p| store.node(p))
    })
}

struct Walker<'a> {
    store: &'a Tree,
    principal: &'a Principal,
    options: &'a mut PlanOptions,
    plan: &'a mut Plan,
    /// With `Keying::Paths`: every archive path taken so far.
    paths: HashSet<String>,
}

/// One sibling of a path-keyed level: a file, or the folders of one name.
enum Keyed {
    File(Arc<Node>, Option<u32>, String),
    Folders(String, Vec<(Arc<Node>, Option<u32>)>),
}

/// What two names (or paths) must differ in: themselves, unless portable or
/// folding case. Borrowed then, so a level without clashes allocates no keys.
fn key_of(portable: bool, fold_case: bool, name: &str) -> std::borrow::Cow<'_, str> {
    if portable {
        std::borrow::Cow::Owned(portable_key(name))
    } else if fold_case {
        std::borrow::Cow::Owned(name.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// ` (n)` before the last `.` of the whole path, or at its end when the
/// path has no `.` past its first character (`FileDownloadOperation`).
fn path_suffixed(path: &str, n: usize) -> String {
    let suffix = format!(" ({n})");
    match (path.find('.'), path.rfind('.')) {
        (Some(first), Some(last)) if first > 0 => {
            [&path[..last], suffix.as_str(), &path[last..]].concat()
        }
        _ => [path, suffix.as_str()].concat(),
    }
}

/// `LONG_FOLDER_NAME/<last component>` for a path the rule covers.
fn shortened(path: &str, long: Option<LongPaths>) -> Option<String> {
    let long = long?;
    let slash = path.rfind('/')?;
    let units = path.encode_utf16().count();
    (units > long.over && path.find('/').is_some_and(|first| first > 0))
        .then(|| ["LONG_FOLDER_NAME", &path[slash..]].concat())
}

impl Walker<'_> {
    fn readable_children(&mut self, folder: &Node) -> Result<Vec<Arc<Node>>, Error> {
        let mut out = Vec::new();
        for child in self.store.children(folder) {
            if self.store.can_read(self.principal, child) {
                out.push(child.clone());
            } else {
                match self.options.unreadable_inside {
                    OnProblem::Fail => return Err(Error::Forbidden(child.id.0.clone())),
                    OnProblem::Skip => self.plan.skipped.push(Skipped {
                        id: child.id.clone(),
                        reason: SkipReason::ForbiddenInside,
                    }),
                }
            }
        }
        Ok(out)
    }

    fn visit(&mut self, node: &Arc<Node>, parent: Option<u32>) -> u32 {
        // A plan has far fewer folders than u32::MAX (entries are capped by
        // the zip format and the dialects' limits long before).
        let index = u32::try_from(self.plan.folders.len()).unwrap_or(u32::MAX);
        self.plan.folders.push(FolderVisit {
            node: node.clone(),
            parent,
        });
        index
    }

    /// Emits one level and everything below it, as the options key entries.
    fn walk(
        &mut self,
        prefix: &str,
        nodes: Vec<Arc<Node>>,
        folder: Option<u32>,
    ) -> Result<(), Error> {
        match self.options.keying {
            Keying::Names => self.level(prefix, nodes, folder),
            Keying::Paths { .. } => {
                self.level_by_path(prefix, nodes.into_iter().map(|n| (n, folder)).collect())
            }
        }
    }

    fn check_length(node: &Node, path: &str) -> Result<(), Error> {
        if path.len() > MAX_NAME_BYTES {
            return Err(Error::invalid(
                node.id.as_str(),
                format!(
                    "its archive path would be {} bytes; zip allows {MAX_NAME_BYTES}",
                    path.len()
                ),
            ));
        }
        Ok(())
    }

    fn add_file(&mut self, node: Arc<Node>, path: String, folder: Option<u32>) {
        self.plan.file_count += 1;
        // Saturating: a sum past 2^64 still passes every byte limit.
        self.plan.total_bytes = self.plan.total_bytes.saturating_add(node.size());
        self.plan.largest_file = self.plan.largest_file.max(node.size());
        self.plan.entries.push(PlanEntry { path, node, folder });
    }

    /// A level keyed by archive path (`Keying::Paths`): each node with the
    /// folder visit it sits in, since merged folders bring their children
    /// from several places.
    fn level_by_path(
        &mut self,
        prefix: &str,
        nodes: Vec<(Arc<Node>, Option<u32>)>,
    ) -> Result<(), Error> {
        let Keying::Paths { long_paths } = self.options.keying else {
            unreachable!("walk() sends only path-keyed levels here");
        };
        let (portable, fold_case) = (self.options.portable_names, self.options.fold_case);
        let key = |name: &str| key_of(portable, fold_case, name).into_owned();
        let mut siblings: Vec<Keyed> = Vec::with_capacity(nodes.len());
        for (node, folder) in nodes {
            let name = clean(&node.name, node.kind(), portable);
            if node.kind() == NodeKind::File {
                siblings.push(Keyed::File(node, folder, name));
                continue;
            }
            let own = key(&name);
            let same = siblings.iter_mut().find_map(|s| match s {
                Keyed::Folders(n, members) if key(n) == own => Some(members),
                _ => None,
            });
            match same {
                Some(members) => members.push((node, folder)),
                None => siblings.push(Keyed::Folders(name, vec![(node, folder)])),
            }
        }
        for sibling in siblings {
            match sibling {
                Keyed::File(node, folder, name) => {
                    let mut base = [prefix, &name].concat();
                    if let Some(short) = shortened(&base, long_paths) {
                        base = short;
                    }
                    let mut path = base.clone();
                    let mut n = 0;
                    while self
                        .paths
                        .contains(key_of(portable, fold_case, &path).as_ref())
                    {
                        n += 1;
                        path = path_suffixed(&base, n);
                    }
                    Self::check_length(&node, &path)?;
                    if n > 0 {
                        let renamed = path.rsplit('/').next().unwrap_or(&path).to_owned();
                        self.plan.conflicts.push(vec![Renamed {
                            id: node.id.clone(),
                            kind: NodeKind::File,
                            original: node.name.clone(),
                            renamed,
                        }]);
                    }
                    self.paths.insert(key(&path));
                    self.add_file(node, path, folder);
                }
                Keyed::Folders(name, members) => {
                    // Children are keyed from the folder's own path; only
                    // its entry's key is shortened.
                    let path = format!("{prefix}{name}/");
                    let entry_path = shortened(&path, long_paths).unwrap_or_else(|| path.clone());
                    Self::check_length(&members[0].0, &path)?;
                    let mut children = Vec::new();
                    let mut first_visit = None;
                    for (member, folder) in &members {
                        self.plan.folder_count += 1;
                        let visit = self.visit(member, *folder);
                        first_visit.get_or_insert(visit);
                        for child in self.readable_children(member)? {
                            children.push((child, Some(visit)));
                        }
                    }
                    // One entry per path: a folder met again (merged, or an
                    // empty one twice) is written once.
                    let wants_entry =
                        self.options.dir_entries == DirEntries::All || children.is_empty();
                    if wants_entry && self.paths.insert(key(&entry_path)) {
                        self.plan.entries.push(PlanEntry {
                            path: entry_path,
                            node: members[0].0.clone(),
                            folder: first_visit,
                        });
                    }
                    self.level_by_path(&path, children)?;
                }
            }
        }
        Ok(())
    }

    /// Emits one folder level (or the archive root) and everything below it.
    fn level(
        &mut self,
        prefix: &str,
        nodes: Vec<Arc<Node>>,
        folder: Option<u32>,
    ) -> Result<(), Error> {
        let names = self.settle_names(&nodes);
        for (node, name) in nodes.into_iter().zip(names) {
            match &node.data {
                NodeData::File(_) => {
                    let path = if prefix.is_empty() {
                        name
                    } else {
                        [prefix, &name].concat()
                    };
                    Self::check_length(&node, &path)?;
                    self.add_file(node, path, folder);
                }
                NodeData::Folder(_) => {
                    self.plan.folder_count += 1;
                    let path = format!("{prefix}{name}/");
                    Self::check_length(&node, &path)?;
                    let children = self.readable_children(&node)?;
                    let visit = self.visit(&node, folder);
                    if self.options.dir_entries == DirEntries::All || children.is_empty() {
                        self.plan.entries.push(PlanEntry {
                            path: path.clone(),
                            node,
                            folder: Some(visit),
                        });
                    }
                    self.level(&path, children, Some(visit))?;
                }
            }
        }
        Ok(())
    }

    /// Safe, unique names for one level's nodes, in order. With portable
    /// names, "unique" is after case folding and NFC (see [`portable_key`]),
    /// so such look-alikes go to the conflict policy like equal names.
    fn settle_names(&mut self, nodes: &[Arc<Node>]) -> Vec<String> {
        let portable = self.options.portable_names;
        let fold_case = self.options.fold_case;
        let mut names: Vec<String> = nodes
            .iter()
            .map(|n| clean(&n.name, n.kind(), portable))
            .collect();
        if names.len() < 2 {
            return names;
        }
        let keys: Vec<std::borrow::Cow<str>> = names
            .iter()
            .map(|name| key_of(portable, fold_case, name))
            .collect();
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, name) in keys.iter().enumerate() {
            let group = groups.entry(name.as_ref()).or_default();
            if group.len() == 1 {
                order.push(name.to_string());
            }
            group.push(i);
        }
        if order.is_empty() {
            return names;
        }
        let mut taken: HashSet<String> = groups
            .iter()
            .filter(|(_, members)| members.len() == 1)
            .map(|(name, _)| (*name).to_owned())
            .collect();
        // Another group's shared name stays reserved for that group's first member.
        let contested: HashSet<String> = order.iter().cloned().collect();
        let groups: Vec<Vec<usize>> = order
            .iter()
            .map(|name| groups[name.as_str()].clone())
            .collect();
        for (group, own) in groups.into_iter().zip(order) {
            let unavailable = |taken: &HashSet<String>, n: &str| {
                let n = key_of(portable, fold_case, n);
                taken.contains(n.as_ref()) || (n != own.as_str() && contested.contains(n.as_ref()))
            };
            let members: Vec<Member> = group
                .iter()
                .map(|&i| Member {
                    name: &names[i],
                    kind: nodes[i].kind(),
                })
                .collect();
            let mut renamed = self
                .options
                .conflicts
                .resolve(&members, &|n| unavailable(&taken, n));
            // A policy that breaks its contract must still not produce a broken archive.
            renamed.resize(group.len(), names[group[0]].clone());
            for (name, &i) in renamed.iter_mut().zip(&group) {
                *name = clean(name, nodes[i].kind(), portable);
                let base = name.clone();
                let mut n = 1;
                while unavailable(&taken, name) {
                    *name = numbered_within(&base, n, portable);
                    n += 1;
                }
                taken.insert(key_of(portable, fold_case, name).into_owned());
            }
            let record = group
                .iter()
                .zip(&renamed)
                .map(|(&i, new)| Renamed {
                    id: nodes[i].id.clone(),
                    kind: nodes[i].kind(),
                    original: nodes[i].name.clone(),
                    renamed: new.clone(),
                })
                .collect();
            self.plan.conflicts.push(record);
            for (&i, new) in group.iter().zip(renamed) {
                names[i] = new;
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixture;
    use zipgate_api::UserId;

    fn store() -> Tree {
        fixture::parse(
            r#"{"users":[{"id":"alice","token":"ta"},{"id":"bob","token":"tb"}],
                "nodes":[
                  {"id":"d1","name":"Docs","owner":"alice","children":[
                     {"id":"a1","name":"a.txt","content":{"text":"one"}},
                     {"id":"sub","name":"Sub","children":[{"id":"deep","name":"deep.txt","content":{"text":"deep"}}]},
                     {"id":"empty","name":"Empty","type":"folder"},
                     {"id":"secret","name":"secret.txt","readers":["alice"],"content":{"text":"s"}}]},
                  {"id":"d2","name":"Other","children":[
                     {"id":"a2","name":"a.txt","content":{"text":"two"}},
                     {"id":"a3","name":"a (1).txt","content":{"text":"three"}}]},
                  {"id":"evil","name":"../../etc/passwd","content":{"text":"x"}},
                  {"id":"dots","name":"..","content":{"text":"x"}},
                  {"id":"docs2","name":"Docs","type":"folder"}
                ]}"#,
            None,
        )
        .unwrap()
    }

    fn sel(ids: &[&str]) -> Vec<SelectedItem> {
        ids.iter()
            .map(|id| SelectedItem {
                id: NodeId::from(*id),
                expected_kind: None,
                name: None,
            })
            .collect()
    }

    fn alice() -> Principal {
        Principal::User(UserId("alice".into()))
    }

    fn bob() -> Principal {
        Principal::User(UserId("bob".into()))
    }

    fn paths(plan: &Plan) -> Vec<&str> {
        plan.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn folders_expand_depth_first_with_empty_folders_kept() {
        let plan = plan(
            &store(),
            &alice(),
            &sel(&["d1"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                "Docs/",
                "Docs/a.txt",
                "Docs/Sub/",
                "Docs/Sub/deep.txt",
                "Docs/Empty/",
                "Docs/secret.txt"
            ]
        );
        assert_eq!(
            (plan.file_count, plan.folder_count, plan.total_bytes),
            (3, 3, 8)
        );
    }

    #[test]
    fn empty_only_dir_entries_and_flattening() {
        let mut options = PlanOptions {
            dir_entries: DirEntries::EmptyOnly,
            flatten_single_folder: true,
            ..PlanOptions::default()
        };
        let plan = plan(&store(), &alice(), &sel(&["d1"]), &mut options).unwrap();
        assert_eq!(
            paths(&plan),
            ["a.txt", "Sub/deep.txt", "Empty/", "secret.txt"]
        );
    }

    #[test]
    fn drive_letters_and_dot_names_are_neutralised() {
        assert_eq!(safe_component("C:"), "C_");
        assert_eq!(safe_component("a:b"), "a_b");
        assert_eq!(safe_component(".. "), "___");
        assert_eq!(safe_component(". ."), "___");
        assert_eq!(safe_component(""), "_");
        assert_eq!(safe_component("a\\b"), "a_b");
        assert_eq!(safe_component("nul\0byte"), "nul_byte");
        assert_eq!(safe_component("report. v2.txt"), "report. v2.txt");
    }

    #[test]
    fn paths_too_long_for_a_zip_header_are_refused() {
        let long = "x".repeat(40_000);
        let json = format!(
            r#"{{"nodes":[{{"id":"a","name":"{long}","children":[{{"id":"b","name":"{long}","content":{{"text":"x"}}}}]}}]}}"#
        );
        let store = fixture::parse(&json, None).unwrap();
        let err = plan(
            &store,
            &Principal::Anonymous,
            &sel(&["a"]),
            &mut PlanOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "b"),
            "{err:?}"
        );
    }

    #[test]
    fn an_existing_name_is_not_taken_by_another_groups_rename() {
        let store = fixture::parse(
            r#"{"nodes":[{"id":"d","name":"d","children":[
                {"id":"1","name":"a.txt","type":"file"},{"id":"2","name":"a.txt","type":"file"},
                {"id":"3","name":"a (1).txt","type":"file"},{"id":"4","name":"a (1).txt","type":"file"}]}]}"#,
            None,
        )
        .unwrap();
        let plan = plan(
            &store,
            &Principal::Anonymous,
            &sel(&["d"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                "d/",
                "d/a.txt",
                "d/a (2).txt",
                "d/a (1).txt",
                "d/a (1) (1).txt"
            ]
        );
    }

    struct TooFew;
    impl ConflictPolicy for TooFew {
        fn resolve(&mut self, _: &[Member<'_>], _: &dyn Fn(&str) -> bool) -> Vec<String> {
            Vec::new()
        }
    }

    #[test]
    fn a_policy_that_returns_too_few_names_still_gives_unique_paths() {
        let mut options = PlanOptions {
            conflicts: Box::new(TooFew),
            ..PlanOptions::default()
        };
        let plan = plan(&store(), &alice(), &sel(&["a1", "a2"]), &mut options).unwrap();
        assert_eq!(paths(&plan), ["a.txt", "a (1).txt"]);
    }

    #[test]
    fn unsafe_names_cannot_escape() {
        let plan = plan(
            &store(),
            &alice(),
            &sel(&["evil", "dots"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(paths(&plan), [".._.._etc_passwd", "__"]);
        for path in paths(&plan) {
            assert!(!path.starts_with('/') && !path.split('/').any(|c| c == ".."));
        }
    }

    /// A store whose one folder holds `names` (files), each with its own text.
    fn folder_of(names: &[&str]) -> Tree {
        let children: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                serde_json::json!({"id": format!("n{i}"), "name": name, "content": {"text": i.to_string()}})
            })
            .collect();
        let doc = serde_json::json!({"nodes": [{"id": "f", "name": "F", "children": children}]});
        fixture::parse(&doc.to_string(), None).unwrap()
    }

    fn portable_paths(names: &[&str], portable: bool) -> Vec<String> {
        let mut options = PlanOptions {
            portable_names: portable,
            dir_entries: DirEntries::EmptyOnly,
            ..PlanOptions::default()
        };
        let plan = plan(
            &folder_of(names),
            &Principal::Anonymous,
            &sel(&["f"]),
            &mut options,
        )
        .unwrap();
        plan.entries.iter().map(|e| e.path.clone()).collect()
    }

    #[test]
    fn portable_names_settle_case_and_normalisation_look_alikes() {
        let names = [
            "Report.txt",
            "report.TXT",
            "Caf\u{e9}.txt",
            "Cafe\u{301}.txt",
            "report (1).txt",
        ];
        // Off: five different byte strings, five names as they are.
        assert_eq!(
            portable_paths(&names, false),
            names.iter().map(|n| format!("F/{n}")).collect::<Vec<_>>()
        );
        // On: the look-alikes are conflicts, numbered around the name taken.
        assert_eq!(
            portable_paths(&names, true),
            [
                "F/Report.txt",
                "F/report (2).TXT",
                "F/Caf\u{e9}.txt",
                "F/Cafe\u{301} (1).txt",
                "F/report (1).txt"
            ]
        );
    }

    #[test]
    fn portable_names_avoid_what_windows_refuses() {
        assert_eq!(
            portable_paths(
                &[
                    "CON",
                    "nul.txt",
                    "Com1 .log",
                    "lpt\u{b9}",
                    "CONSOLE.txt",
                    "a. .",
                    "b ",
                    "x<y>|?*\"z"
                ],
                true
            ),
            [
                "F/_CON",
                "F/_nul.txt",
                "F/_Com1 .log",
                "F/_lpt\u{b9}",
                "F/CONSOLE.txt",
                "F/a___",
                "F/b_",
                "F/x_y_____z"
            ]
        );
        // Untouched without the policy (they are safe, just not portable).
        assert_eq!(portable_paths(&["CON", "b "], false), ["F/CON", "F/b "]);
    }

    #[test]
    fn portable_names_fit_255_bytes_on_a_char_boundary() {
        let long = format!("{}.docx", "\u{e9}".repeat(200));
        let folder = "\u{e9}".repeat(200);
        let paths = portable_paths(&[&long, &long.to_uppercase(), &folder], true);
        let components: Vec<&str> = paths
            .iter()
            .map(|p| p.strip_prefix("F/").unwrap())
            .collect();
        for c in &components {
            assert!(c.len() <= MAX_COMPONENT_BYTES, "{} bytes", c.len());
        }
        // The extension survives; 2-byte characters are never split.
        assert_eq!(components[0], format!("{}.docx", "\u{e9}".repeat(125)));
        // The look-alike is numbered, and the number is not what gets cut.
        assert_eq!(components[1], format!("{} (1).DOCX", "\u{c9}".repeat(123)));
        assert_eq!(components[2], "\u{e9}".repeat(127));
        assert_eq!(portable_key("STRASSE"), portable_key("strasse"));
    }

    #[test]
    fn conflicts_are_numbered_around_existing_names() {
        // a.txt (d1/a1) + a.txt (d2/a2) + "a (1).txt" already taken → second becomes "a (2).txt".
        let plan = plan(
            &store(),
            &alice(),
            &sel(&["a1", "a2", "a3"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(paths(&plan), ["a.txt", "a (2).txt", "a (1).txt"]);
        assert_eq!(plan.conflicts.len(), 1);
        assert_eq!(plan.conflicts[0][1].renamed, "a (2).txt");
        // Folders with the same name get the suffix at the end.
        let plan = super::plan(
            &store(),
            &alice(),
            &sel(&["d1", "docs2"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert!(paths(&plan).contains(&"Docs (1)/"));
    }

    struct RenameAll;
    impl ConflictPolicy for RenameAll {
        fn resolve(&mut self, group: &[Member<'_>], _: &dyn Fn(&str) -> bool) -> Vec<String> {
            group.iter().map(|m| format!("x_{}", m.name)).collect()
        }
    }

    #[test]
    fn a_policy_may_rename_every_member_and_is_kept_unique() {
        let mut options = PlanOptions {
            conflicts: Box::new(RenameAll),
            ..PlanOptions::default()
        };
        let plan = plan(&store(), &alice(), &sel(&["a1", "a2"]), &mut options).unwrap();
        assert_eq!(paths(&plan), ["x_a.txt", "x_a (1).txt"]);
        assert_eq!(plan.conflicts[0].len(), 2);
    }

    #[test]
    fn missing_and_unreadable_fail_or_skip() {
        let err = plan(
            &store(),
            &alice(),
            &sel(&["nope"]),
            &mut PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err, Error::NotFound("nope".into()));
        let err = plan(
            &store(),
            &bob(),
            &sel(&["secret"]),
            &mut PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(err, Error::Forbidden("secret".into()));
        // Skipping unreadable selections can still refuse what is hidden inside one.
        let mut options = PlanOptions {
            missing: OnProblem::Skip,
            unreadable: OnProblem::Skip,
            unreadable_inside: OnProblem::Fail,
            ..PlanOptions::default()
        };
        let err = plan(&store(), &bob(), &sel(&["d1", "nope"]), &mut options).unwrap_err();
        assert_eq!(err, Error::Forbidden("secret".into()));
        options.unreadable_inside = OnProblem::Skip;
        let plan = plan(&store(), &bob(), &sel(&["d1", "nope"]), &mut options).unwrap();
        assert!(!paths(&plan).contains(&"Docs/secret.txt"));
        let reasons: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| (s.id.0.as_str(), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("nope", SkipReason::NotFound),
                ("secret", SkipReason::ForbiddenInside)
            ]
        );
        let kinds = sel(&["a1"])
            .into_iter()
            .map(|mut s| {
                s.expected_kind = Some(NodeKind::Folder);
                s
            })
            .collect::<Vec<_>>();
        let err = super::plan(&store(), &alice(), &kinds, &mut PlanOptions::default()).unwrap_err();
        assert_eq!(err, Error::NotFound("a1".into()));
    }

    #[test]
    fn repeats_and_nested_selections_are_included_once() {
        let plan = plan(
            &store(),
            &alice(),
            &sel(&["d1", "a1", "d1", "deep"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        assert_eq!(plan.file_count, 3);
        assert_eq!(
            plan.skipped
                .iter()
                .filter(|s| s.reason == SkipReason::Duplicate)
                .count(),
            3
        );
    }

    #[test]
    fn at_each_place_packs_a_nested_item_again_at_the_top() {
        let mut options = PlanOptions {
            repeats: Repeats::AtEachPlace,
            ..PlanOptions::default()
        };
        let once = plan(
            &store(),
            &alice(),
            &sel(&["d1", "deep", "deep"]),
            &mut options,
        )
        .unwrap();
        assert!(paths(&once).contains(&"Docs/Sub/deep.txt"));
        assert!(paths(&once).contains(&"deep.txt"));
        // The id listed twice is still packed once at the top.
        assert_eq!(paths(&once).iter().filter(|p| **p == "deep.txt").count(), 1);
        assert_eq!(once.file_count, 4);

        let mut options = PlanOptions {
            repeats: Repeats::Every,
            ..PlanOptions::default()
        };
        let every = plan(&store(), &alice(), &sel(&["a1", "a1"]), &mut options).unwrap();
        assert_eq!(paths(&every), ["a.txt", "a (1).txt"]);
        assert_eq!(every.conflicts.len(), 1);
    }

    #[test]
    fn folding_case_makes_case_variants_conflict() {
        let store = folder_of(&["Report.txt", "report.TXT", "other.txt"]);
        let selection = sel(&["f"]);
        let mut options = PlanOptions {
            fold_case: true,
            flatten_single_folder: true,
            ..PlanOptions::default()
        };
        let folded = plan(&store, &alice(), &selection, &mut options).unwrap();
        assert_eq!(folded.conflicts.len(), 1);
        assert_eq!(
            paths(&folded),
            ["Report.txt", "report (1).TXT", "other.txt"]
        );
        let mut options = PlanOptions {
            flatten_single_folder: true,
            ..PlanOptions::default()
        };
        let exact = plan(&store, &alice(), &selection, &mut options).unwrap();
        assert!(exact.conflicts.is_empty());
    }

    #[test]
    fn path_keying_merges_folders_and_numbers_the_whole_path() {
        let store = fixture::parse(
            r#"{"nodes":[
              {"id":"r1","name":"Reports","children":[
                 {"id":"a1","name":"README","content":{"text":"1"}},
                 {"id":"e1","name":".env","content":{"text":"1"}},
                 {"id":"t1","name":"a.tar.gz","content":{"text":"1"}},
                 {"id":"x1","name":"Empty","type":"folder"}]},
              {"id":"r2","name":"Reports","children":[
                 {"id":"a2","name":"README","content":{"text":"2"}},
                 {"id":"e2","name":".env","content":{"text":"2"}},
                 {"id":"t2","name":"a.tar.gz","content":{"text":"2"}},
                 {"id":"x2","name":"Empty","type":"folder"}]},
              {"id":"v1","name":"v1.0","children":[{"id":"b1","name":"README","content":{"text":"1"}}]},
              {"id":"v2","name":"v1.0","children":[{"id":"b2","name":"README","content":{"text":"2"}}]}
            ]}"#,
            None,
        )
        .unwrap();
        let mut options = PlanOptions {
            keying: Keying::Paths { long_paths: None },
            dir_entries: DirEntries::EmptyOnly,
            ..PlanOptions::default()
        };
        let plan = plan(
            &store,
            &Principal::Anonymous,
            &sel(&["r1", "r2", "v1", "v2"]),
            &mut options,
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                "Reports/README",
                "Reports/.env",
                "Reports/a.tar.gz",
                "Reports/Empty/",
                "Reports/README (1)",
                "Reports/ (1).env",
                "Reports/a.tar (1).gz",
                "v1.0/README",
                "v1 (1).0/README",
            ]
        );
        assert_eq!(path_suffixed(".env", 1), ".env (1)");
    }

    #[test]
    fn long_paths_become_long_folder_name() {
        let long = LongPaths { over: 10 };
        assert_eq!(
            shortened("Documents/Reports/q1.txt", Some(long)).as_deref(),
            Some("LONG_FOLDER_NAME/q1.txt")
        );
        assert_eq!(
            shortened("Documents/Reports/", Some(long)).as_deref(),
            Some("LONG_FOLDER_NAME/")
        );
        // At the root, or short enough: kept.
        assert_eq!(shortened("a-very-long-file-name.txt", Some(long)), None);
        assert_eq!(shortened("a/b.txt", Some(long)), None);
        assert_eq!(shortened("Documents/Reports/q1.txt", None), None);
    }

    #[test]
    fn limits_are_neutral_errors() {
        let mut options = PlanOptions {
            max_files: Some(2),
            ..PlanOptions::default()
        };
        let err = plan(&store(), &alice(), &sel(&["d1"]), &mut options).unwrap_err();
        assert_eq!(
            err,
            Error::LimitExceeded {
                kind: LimitKind::FileCount,
                limit: 2,
                actual: 3
            }
        );
        let mut options = PlanOptions {
            max_bytes: Some(7),
            ..PlanOptions::default()
        };
        let err = plan(&store(), &alice(), &sel(&["d1"]), &mut options).unwrap_err();
        assert!(matches!(
            err,
            Error::LimitExceeded {
                kind: LimitKind::TotalBytes,
                ..
            }
        ));
        // Entries count folders too: d1 and what is under it.
        let whole = plan(
            &store(),
            &alice(),
            &sel(&["d1"]),
            &mut PlanOptions::default(),
        )
        .unwrap();
        let entries = whole.file_count + whole.folder_count;
        for (limit, fails) in [(entries, false), (entries - 1, true)] {
            let mut options = PlanOptions {
                max_entries: Some(limit),
                ..PlanOptions::default()
            };
            let planned = plan(&store(), &alice(), &sel(&["d1"]), &mut options);
            assert_eq!(planned.is_err(), fails, "{limit}");
        }
        for (limit, fails) in [(whole.largest_file, false), (whole.largest_file - 1, true)] {
            let mut options = PlanOptions {
                max_file_bytes: Some(limit),
                ..PlanOptions::default()
            };
            match plan(&store(), &alice(), &sel(&["d1"]), &mut options) {
                Err(Error::LimitExceeded {
                    kind: LimitKind::FileBytes,
                    actual,
                    ..
                }) => assert!(fails && actual == whole.largest_file),
                Ok(_) => assert!(!fails),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
