//! Where a served tree comes from when it is not a fixture: a [`Store`]
//! (a directory, object storage) lists folders and opens files, and
//! [`scan`] reads one into the fixture document and file contents the rest
//! of the server already serves. The planner, packer, engine and dialects
//! see only the resulting [`super::Tree`]: they never learn which store is
//! behind it.
//!
//! Why a scan into a tree rather than a lookup per request: every dialect
//! but Dropbox addresses items by ids derived from their paths, and an id
//! cannot be turned back into a path without an index of the whole tree.
//! The scan is that index; rescans (and change notification where a store
//! has it) keep it current, and each file's listed version is checked again
//! when its bytes are read, so a change the index has not seen yet can cut
//! a download but never mix two versions of a file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use zipgate_api::NodeKind;

use super::crc_cache::CrcCache;

/// Entries (files and folders) one scan takes at most: a store larger than
/// this is refused rather than exhausting memory.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Folder levels below the top one scan descends at most.
pub const MAX_DEPTH: usize = 256;

/// One child of a folder, as the store lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: NodeKind,
    /// Bytes of a file; 0 for a folder.
    pub size: u64,
    pub mtime: DateTime<Utc>,
    /// Names this version of the file's bytes (a directory's device, inode,
    /// size and mtime; an object's ETag): reads are refused once it changes.
    pub version: String,
}

/// What a scan left out, for the log: nothing here is ever served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeftOut {
    pub symlinks: u64,
    /// Sockets, FIFOs and devices.
    pub special: u64,
    /// Names that are not UTF-8 (no fixture document, and no dialect, can name them).
    pub not_utf8: u64,
    /// Folders that could not be listed, entries that could not be read.
    pub unreadable: u64,
    /// Object keys with an empty, `.` or `..` segment: a file system could
    /// not hold them, and some clients would resolve them.
    pub unsafe_names: u64,
    /// Policy rules whose path names nothing in the store.
    pub rules_unmatched: u64,
    /// Id map entries whose path names nothing in the store.
    pub ids_unmatched: u64,
}

/// A tree of folders and files with bytes behind them.
pub trait Store: Send + Sync + fmt::Debug {
    /// What is served, for the log and `/_zipgate/health`
    /// (`directory /srv/files`, `s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// The children of `folder` (`""` is the top, else the names from the
    /// top joined by `/`), in any order; what cannot be served safely is
    /// left out and counted.
    fn list(&self, folder: &str, left_out: &mut LeftOut) -> io::Result<Vec<Entry>>;

    /// Every folder's children, keyed by folder path (`""` first). The
    /// default lists folder by folder; a store that lists a whole prefix at
    /// once (object storage) overrides it. At most [`MAX_ENTRIES`] entries
    /// and [`MAX_DEPTH`] levels, else an error.
    fn list_all(&self, left_out: &mut LeftOut) -> io::Result<BTreeMap<String, Vec<Entry>>> {
        let mut out = BTreeMap::new();
        let mut count = 0usize;
        let mut pending = vec![(String::new(), 0usize)];
        while let Some((folder, depth)) = pending.pop() {
            let entries = match self.list(&folder, left_out) {
                Ok(entries) => entries,
                // A sub-folder that cannot be listed is served empty.
                Err(error) if !folder.is_empty() => {
                    tracing::warn!(path = folder, %error, "cannot list a folder; it is served empty");
                    left_out.unreadable += 1;
                    Vec::new()
                }
                Err(error) => return Err(error),
            };
            count += entries.len();
            if count > MAX_ENTRIES {
                return Err(too_many());
            }
            for entry in &entries {
                if entry.kind == NodeKind::Folder {
                    if depth + 1 > MAX_DEPTH {
                        return Err(too_deep(&folder));
                    }
                    pending.push((join(&folder, &entry.name), depth + 1));
                }
            }
            out.insert(folder, entries);
        }
        Ok(out)
    }

    /// `len` bytes of `file` from `offset`, refused (an error, now or while
    /// reading) unless the file is still `version`. Blocking: the zip
    /// engine reads on its own threads, pulling as the socket drains.
    fn open_at(
        &self,
        file: &str,
        version: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<Box<dyn Read + Send>>;

    /// The file's CRC-32 when the store already holds it (object storage's
    /// full-object checksums), so it need not be read twice.
    fn stored_crc32(&self, _file: &str, _version: &str) -> io::Result<Option<u32>> {
        Ok(None)
    }

    /// Whether a read's first byte is a network round trip away (object
    /// storage): the engine then opens a file while the one before it
    /// streams. A local disk says no: opening early would only hold a
    /// descriptor longer.
    fn remote(&self) -> bool {
        false
    }

    /// Whether the store can be reached now: asked before a download
    /// starts. Cheap, and may answer from a recent success.
    fn check(&self) -> io::Result<()> {
        Ok(())
    }

    /// Calls `changed` (from any thread) soon after something in the store
    /// changes, for as long as the returned guard lives; `None` when the
    /// store cannot tell (it is then only scanned again periodically).
    fn watch(
        &self,
        _changed: Box<dyn Fn() + Send + Sync>,
    ) -> Option<Box<dyn std::any::Any + Send>> {
        None
    }
}

pub fn too_many() -> io::Error {
    io::Error::other(format!(
        "more than {MAX_ENTRIES} files and folders; serve a smaller tree"
    ))
}

pub fn too_deep(folder: &str) -> io::Error {
    io::Error::other(format!(
        "{folder}: deeper than {MAX_DEPTH} levels; serve a folder nearer the files"
    ))
}

/// `folder/name`, or `name` at the top.
pub fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// Who owns and reads what lies at a path (and below it, by inheritance,
/// unless a rule for a deeper path says otherwise): a policy file's
/// `rules`, `{"path": "docs/private", "owner": "carol", "readers": ["carol"]}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Relative to the top of the store, `/`-separated.
    pub path: String,
    pub owner: Option<String>,
    /// `"everyone"` or a list of user ids, as in fixtures.
    pub readers: Option<Value>,
}

/// Dialect ids pinned to paths (`--id-map FILE`, the output of a
/// migration): `{"ids": {"docs/a.txt": {"box": "12345", "oracle": "D…"}}}`.
/// Paths not named keep the ids each dialect derives from the path.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    pub ids: BTreeMap<String, BTreeMap<String, String>>,
}

impl IdMap {
    pub fn from_text(text: &str) -> Result<IdMap, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// A store read once: the fixture document (users from the policy, a node
/// per entry, the rules applied), the files' sizes and versions, and what
/// was left out. Two scans are equal when they would serve the same tree.
#[derive(Debug)]
pub struct Scanned {
    /// Shared with the fixture source it becomes (a large tree's document
    /// is its largest allocation, so it is held once).
    pub doc: Arc<Value>,
    pub files: Arc<StoredFiles>,
    pub left_out: LeftOut,
}

impl PartialEq for Scanned {
    fn eq(&self, other: &Self) -> bool {
        self.doc == other.doc && self.files.files == other.files.files
    }
}

/// The files of one scan: what a fixture's `content.path` names when the
/// tree came from a store (`super::ContentPaths::Stored`).
pub struct StoredFiles {
    pub store: Arc<dyn Store>,
    pub crcs: Arc<CrcCache>,
    /// Path → (size, version).
    files: HashMap<String, (u64, String)>,
}

impl fmt::Debug for StoredFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredFiles")
            .field("store", &self.store.describe())
            .field("files", &self.files.len())
            .finish()
    }
}

impl StoredFiles {
    /// The file at `path` as the scan saw it.
    pub fn file(&self, path: &str) -> Option<StoredFile> {
        let (size, version) = self.files.get(path)?;
        Some(StoredFile {
            store: self.store.clone(),
            crcs: self.crcs.clone(),
            path: path.to_owned(),
            size: *size,
            version: version.clone(),
        })
    }
}

/// One file's bytes in a store, pinned to the version the scan listed.
#[derive(Clone)]
pub struct StoredFile {
    pub store: Arc<dyn Store>,
    pub crcs: Arc<CrcCache>,
    pub path: String,
    pub size: u64,
    pub version: String,
}

impl fmt::Debug for StoredFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("version", &self.version)
            .finish()
    }
}

impl StoredFile {
    pub fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let offset = offset.min(self.size);
        self.store
            .open_at(&self.path, &self.version, offset, self.size - offset)
    }

    /// The CRC this version is known to have: remembered, or held by the store.
    pub fn known_crc32(&self) -> io::Result<Option<u32>> {
        if let Some(crc) = self.crcs.get(&self.path, &self.version) {
            return Ok(Some(crc));
        }
        let held = self.store.stored_crc32(&self.path, &self.version)?;
        if let Some(crc) = held {
            self.crcs.insert(&self.path, &self.version, crc);
        }
        Ok(held)
    }

    pub fn remember_crc32(&self, crc: u32) {
        self.crcs.insert(&self.path, &self.version, crc);
    }
}

/// Reads `store` into a fixture document with `users`, its folders and
/// files named as listed (sorted by name, so the same tree gives the same
/// archive every time), neutral ids the paths from the top, and `rules`
/// applied at their paths.
pub fn scan(
    store: &Arc<dyn Store>,
    crcs: &Arc<CrcCache>,
    users: Vec<Value>,
    rules: &[Rule],
    id_map: &IdMap,
) -> io::Result<Scanned> {
    let mut left_out = LeftOut::default();
    let mut listing = store.list_all(&mut left_out)?;
    let mut files = HashMap::new();
    let mut nodes = build(&mut listing, "", &mut files);
    for rule in rules {
        let found = apply(&mut nodes, rule.path.trim_matches('/'), &mut |node| {
            if let Some(owner) = &rule.owner {
                node["owner"] = json!(owner);
            }
            if let Some(readers) = &rule.readers {
                node["readers"] = readers.clone();
            }
        });
        if !found {
            left_out.rules_unmatched += 1;
        }
    }
    for (path, ids) in &id_map.ids {
        if !apply(&mut nodes, path.trim_matches('/'), &mut |node| {
            node["ids"] = json!(ids)
        }) {
            left_out.ids_unmatched += 1;
        }
    }
    Ok(Scanned {
        doc: Arc::new(json!({"users": users, "nodes": nodes})),
        files: Arc::new(StoredFiles {
            store: store.clone(),
            crcs: crcs.clone(),
            files,
        }),
        left_out,
    })
}

fn build(
    listing: &mut BTreeMap<String, Vec<Entry>>,
    folder: &str,
    files: &mut HashMap<String, (u64, String)>,
) -> Vec<Value> {
    let mut entries = listing.remove(folder).unwrap_or_default();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    // A store may list a name twice (an object and a folder marker of the
    // same name): the first kept, as a fixture may not repeat a path.
    entries.dedup_by(|b, a| a.name == b.name);
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let path = join(folder, &entry.name);
        let mut node = json!({
            "id": path,
            "name": entry.name,
            "mtime": entry.mtime.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        match entry.kind {
            NodeKind::Folder => node["children"] = json!(build(listing, &path, files)),
            NodeKind::File => {
                node["content"] = json!({ "path": path });
                files.insert(path, (entry.size, entry.version));
            }
        }
        out.push(node);
    }
    out
}

/// Changes the node at `path` with `change`; false when there is none.
fn apply(nodes: &mut [Value], path: &str, change: &mut dyn FnMut(&mut Value)) -> bool {
    let (first, rest) = match path.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (path, None),
    };
    let Some(node) = nodes.iter_mut().find(|n| n["name"] == first) else {
        return false;
    };
    match rest {
        Some(rest) => match node.get_mut("children").and_then(Value::as_array_mut) {
            Some(children) => apply(children, rest, change),
            None => false,
        },
        None => {
            change(node);
            true
        }
    }
}

/// A reader that fails unless it yields exactly `len` bytes: a file that
/// shrank under a download cuts it, never pads or shortens an entry.
pub struct Exactly<R> {
    pub inner: R,
    pub left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file is shorter than when it was listed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
