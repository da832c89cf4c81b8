//! An archive written down as data ([`ArchivePlan`]), so that another
//! process serving the same store rebuilds it byte for byte: what a job
//! store shared by replicas keeps in place of the in-memory [`Archive`]
//! (docs/design/scaleout.md §2).
//!
//! The bytes of an archive depend only on its entries (name, mtime, method,
//! a built entry's CRC and compressed size, the body's bytes), the deflater
//! (level, and ISA-L or zlib-rs: the two give different streams) and two
//! flags. A generated body is written down whole; any other body by the
//! tree node it was planned from and a fingerprint of its content then, so
//! a rebuild that finds the node changed (or gone) refuses rather than send
//! other bytes under a length already announced.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zipgate_api::NodeId;

use crate::store::{Content, FileBody, GeneratedKind, NodeData, Tree};
use crate::zip::{Archive, ArchiveEntry, Built, Deflater, EntryBody, EntryData, Method};

/// Bumped when the layout changes; a plan of another version is refused.
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivePlan {
    pub v: u32,
    /// A lone file served as itself.
    pub raw: bool,
    pub utf8_every_name: bool,
    pub level: u32,
    /// ISA-L deflates (else zlib-rs).
    pub isal: bool,
    /// The length the archive had, checked after a rebuild.
    pub len: Option<u64>,
    pub entries: Vec<PlannedEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedEntry {
    pub name: String,
    pub mtime: DateTime<Utc>,
    /// `None` for a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PlannedFile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedFile {
    pub deflate: bool,
    /// A built deflated entry's CRC-32 and compressed size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built: Option<(u32, u64)>,
    pub content: ContentRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentRef {
    /// Self-contained: generated again anywhere.
    Generated {
        size: u64,
        seed: u64,
        generator: GeneratedKind,
    },
    /// The body of this tree node, as `fingerprint` describes it.
    Node {
        node: NodeId,
        size: u64,
        fingerprint: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("plan version {0} is not {PLAN_VERSION}")]
    Version(u32),
    #[error("entry {0:?} has a body that cannot be written down")]
    Unplannable(String),
    #[error("entry {0:?}: its file changed or is gone since the archive was planned")]
    Changed(String),
    #[error("entry {0:?} was deflated by ISA-L, which this build cannot reproduce")]
    Deflater(String),
    #[error("the rebuilt archive is {rebuilt:?} bytes, the plan says {planned:?}")]
    Length {
        planned: Option<u64>,
        rebuilt: Option<u64>,
    },
}

/// What identifies a body's bytes across processes sharing a store: an
/// inline body by its length and SHA-256, a host file by its path, size and
/// mtime, a store's file by its path and version.
fn fingerprint(content: &Content) -> String {
    match content {
        Content::Bytes(bytes) => {
            // SHA-256, not the CRC: two fixtures must not pass for one by
            // sharing a length and a (linear, 32-bit) CRC.
            let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            format!("bytes:{}:{hex}", bytes.len())
        }
        Content::File {
            file,
            size,
            modified,
        } => {
            let modified = modified
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(-1, |d| d.as_nanos() as i128);
            format!("file:{}:{size}:{modified}", file.written)
        }
        Content::Generated { size, seed, kind } => format!("generated:{size}:{seed}:{kind:?}"),
        Content::Stored(file) => format!("stored:{}:{}:{}", file.path, file.size, file.version),
    }
}

fn content_of(data: &Arc<dyn EntryData>) -> Option<&Content> {
    let any = data.as_any()?;
    any.downcast_ref::<FileBody>().map(|body| &body.content)
}

impl ArchivePlan {
    /// `archive` written down; fails for a body that came from no tree node.
    pub fn of(archive: &Archive) -> Result<ArchivePlan, PlanError> {
        let deflater = archive.deflater();
        let entries = archive
            .entries()
            .iter()
            .map(|entry| {
                let file = match &entry.body {
                    EntryBody::Dir => None,
                    EntryBody::File {
                        data,
                        method,
                        built,
                    } => {
                        let unplannable = || PlanError::Unplannable(entry.name.clone());
                        let content = content_of(data).ok_or_else(unplannable)?;
                        let content = match (content, &entry.origin) {
                            (Content::Generated { size, seed, kind }, _) => ContentRef::Generated {
                                size: *size,
                                seed: *seed,
                                generator: *kind,
                            },
                            (content, Some(node)) => ContentRef::Node {
                                node: node.clone(),
                                size: content.len(),
                                fingerprint: fingerprint(content),
                            },
                            (_, None) => return Err(unplannable()),
                        };
                        Some(PlannedFile {
                            deflate: *method == Method::Deflate,
                            built: built.map(|b| (b.crc, b.compressed)),
                            content,
                        })
                    }
                };
                Ok(PlannedEntry {
                    name: entry.name.clone(),
                    mtime: entry.mtime,
                    file,
                })
            })
            .collect::<Result<_, PlanError>>()?;
        Ok(ArchivePlan {
            v: PLAN_VERSION,
            raw: archive.is_single_file(),
            utf8_every_name: archive.utf8_on_every_name(),
            level: deflater.level(),
            isal: deflater.isal(),
            len: archive.len(),
            entries,
        })
    }

    /// The archive again, its bodies found in `tree`: the same bytes as the
    /// one written down, or an error saying why that is not possible.
    pub fn rebuild(&self, tree: &Tree) -> Result<Archive, PlanError> {
        if self.v != PLAN_VERSION {
            return Err(PlanError::Version(self.v));
        }
        let deflater = Deflater::resolved(self.level, self.isal);
        let entries = self
            .entries
            .iter()
            .map(|entry| {
                let body = match &entry.file {
                    None => EntryBody::Dir,
                    Some(file) => {
                        let method = if file.deflate {
                            Method::Deflate
                        } else {
                            Method::Store
                        };
                        if method == Method::Deflate && deflater.is_none() {
                            return Err(PlanError::Deflater(entry.name.clone()));
                        }
                        EntryBody::File {
                            data: body_of(&entry.name, &file.content, tree)?,
                            method,
                            built: file
                                .built
                                .map(|(crc, compressed)| Built { crc, compressed }),
                        }
                    }
                };
                Ok(ArchiveEntry {
                    name: entry.name.clone(),
                    mtime: entry.mtime,
                    body,
                    origin: match &entry.file {
                        Some(PlannedFile {
                            content: ContentRef::Node { node, .. },
                            ..
                        }) => Some(node.clone()),
                        _ => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        // No deflated entry: the deflater is never used, whichever it was.
        let deflater = deflater.unwrap_or_else(|| {
            Deflater::resolved(self.level, false).expect("zlib-rs takes any level")
        });
        let archive = Archive::from_parts(entries, deflater, self.raw, self.utf8_every_name);
        if archive.len() != self.len {
            return Err(PlanError::Length {
                planned: self.len,
                rebuilt: archive.len(),
            });
        }
        Ok(archive)
    }
}

fn body_of(name: &str, content: &ContentRef, tree: &Tree) -> Result<Arc<dyn EntryData>, PlanError> {
    match content {
        ContentRef::Generated {
            size,
            seed,
            generator,
        } => Ok(Arc::new(FileBody::new(Content::Generated {
            size: *size,
            seed: *seed,
            kind: *generator,
        }))),
        ContentRef::Node {
            node,
            size,
            fingerprint: expected,
        } => match tree.node(node).map(|n| &n.data) {
            // The tree's own body: its CRC, once known, is shared.
            Some(NodeData::File(body))
                if body.content.len() == *size && fingerprint(&body.content) == *expected =>
            {
                Ok(Arc::clone(body) as Arc<dyn EntryData>)
            }
            _ => Err(PlanError::Changed(name.to_owned())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packing::{build_archive, single_file_archive, CompressionPolicy};
    use crate::planner::{self, PlanOptions};
    use crate::zip::{Cancelled, ChunkSink, DeflateEngine, NoProgress};
    use bytes::Bytes;
    use zipgate_api::{Compression, Principal, SelectedItem};

    struct Collect(Vec<u8>);
    impl ChunkSink for Collect {
        fn send(&mut self, chunk: Bytes) -> Result<(), Cancelled> {
            self.0.extend_from_slice(&chunk);
            Ok(())
        }
    }

    struct TempDir(std::path::PathBuf);
    impl TempDir {
        fn new(test: u32) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("zipgate-plan-{}-{test}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn bytes(archive: &Archive) -> Vec<u8> {
        let mut sink = Collect(Vec::new());
        archive.stream(0, &mut sink, &NoProgress).unwrap();
        sink.0
    }

    /// A tree with every kind of body a fixture can give: inline text and
    /// base64, generated random and text, and a host file.
    fn tree(dir: &std::path::Path) -> Tree {
        let fixture = serde_json::json!({
            "nodes": [{"id": "root", "name": "Root", "children": [
                {"id": "inline", "name": "notes.txt", "content": {"text": "hello, plan\n"}},
                {"id": "b64", "name": "tiny.bin", "content": {"base64": "AAECAwQF"}},
                {"id": "gen", "name": "random.dat", "content": {"generate": {"size": 300000, "seed": 9}}},
                {"id": "prose", "name": "prose.txt", "content": {"generate": {"size": 200000, "seed": 3, "kind": "text"}}},
                {"id": "host", "name": "host.bin", "content": {"path": "host.bin"}},
                {"id": "sub", "name": "Ünïcode ✓", "children": [
                    {"id": "deep", "name": "deep.txt", "content": {"text": "below"}}
                ]}
            ]}]
        });
        crate::store::fixture::parse(&fixture.to_string(), Some(dir)).unwrap()
    }

    fn item(id: NodeId) -> SelectedItem {
        SelectedItem {
            id,
            expected_kind: None,
            name: None,
        }
    }

    fn plan(tree: &Tree) -> planner::Plan {
        planner::plan(
            tree,
            &Principal::Anonymous,
            &[item(NodeId::from("root"))],
            &mut PlanOptions::default(),
        )
        .unwrap()
    }

    /// Written down, through JSON, rebuilt in `other`: the same length and bytes.
    fn round_trip(archive: &Archive, other: &Tree) -> ArchivePlan {
        let written = ArchivePlan::of(archive).unwrap();
        let json = serde_json::to_string(&written).unwrap();
        let read: ArchivePlan = serde_json::from_str(&json).unwrap();
        assert_eq!(read, written);
        let rebuilt = read.rebuild(other).unwrap();
        assert_eq!(rebuilt.len(), archive.len());
        assert_eq!(rebuilt.is_single_file(), archive.is_single_file());
        assert!(bytes(&rebuilt) == bytes(archive), "the bytes differ");
        written
    }

    #[test]
    fn every_kind_of_archive_is_rebuilt_byte_for_byte_in_another_tree() {
        let dir = TempDir::new(line!());
        std::fs::write(dir.0.join("host.bin"), "on the host\n").unwrap();
        let here = tree(&dir.0);
        // Another process: the same fixture parsed again.
        let there = tree(&dir.0);
        let plan = plan(&here);
        for engine in [DeflateEngine::ZlibRs, DeflateEngine::Fastest] {
            for (method, level) in [
                (Compression::Store, 6),
                (Compression::Deflate, 1),
                (Compression::Deflate, 6),
            ] {
                let policy = CompressionPolicy {
                    level,
                    engine,
                    ..CompressionPolicy::default()
                };
                let archive = build_archive(&plan, &policy, Some(method));
                round_trip(&archive, &there);
                round_trip(&archive.with_utf8_flag_on_every_name(), &there);
                let archive = build_archive(&plan, &policy, Some(method));
                if archive.needs_build() {
                    // Built ahead: an exact length, CRCs in the plan.
                    let built = archive.build(&|| false, &NoProgress).unwrap();
                    let written = round_trip(&built, &there);
                    assert!(written.len.is_some());
                    assert!(written
                        .entries
                        .iter()
                        .any(|e| e.file.as_ref().is_some_and(|f| f.built.is_some())));
                }
                // A download-time recheck's cut.
                let keep: Vec<bool> = (0..archive.entries().len()).map(|i| i % 2 == 0).collect();
                round_trip(&archive.retain(&keep), &there);
            }
        }
        let host = plan
            .entries
            .iter()
            .find(|e| e.path == "Root/host.bin")
            .unwrap();
        let raw = round_trip(&single_file_archive(host), &there);
        assert!(raw.raw);
    }

    #[test]
    fn a_changed_or_missing_body_is_refused_not_sent() {
        let dir = TempDir::new(line!());
        std::fs::write(dir.0.join("host.bin"), "on the host\n").unwrap();
        let here = tree(&dir.0);
        let archive = build_archive(&plan(&here), &CompressionPolicy::default(), None);
        let written = ArchivePlan::of(&archive).unwrap();
        // The host file changed size (a new tree reads it again).
        std::fs::write(dir.0.join("host.bin"), "on the host, longer now\n").unwrap();
        let changed = tree(&dir.0);
        assert_eq!(
            written.rebuild(&changed).err(),
            Some(PlanError::Changed("Root/host.bin".into()))
        );
        // A node that is gone.
        let mut gone = written.clone();
        if let Some(PlannedFile {
            content: ContentRef::Node { node, .. },
            ..
        }) = gone.entries.iter_mut().find_map(|e| e.file.as_mut())
        {
            *node = NodeId::from("nobody");
        }
        assert!(matches!(gone.rebuild(&here), Err(PlanError::Changed(_))));
        // A length that does not add up, and a plan of another version.
        let mut wrong = written.clone();
        wrong.len = wrong.len.map(|n| n + 1);
        assert!(matches!(
            wrong.rebuild(&here),
            Err(PlanError::Length { .. })
        ));
        let mut later = written;
        later.v = PLAN_VERSION + 1;
        assert_eq!(
            later.rebuild(&here).err(),
            Some(PlanError::Version(PLAN_VERSION + 1))
        );
    }

    #[test]
    fn a_directory_stores_files_are_rebuilt_until_they_change() {
        use crate::store::backend::Store;
        use crate::store::crc_cache::CrcCache;
        use crate::store::directory::DirectoryStore;
        use crate::store::served::{Policy, Served};
        let dir = TempDir::new(line!());
        std::fs::create_dir_all(dir.0.join("Reports")).unwrap();
        std::fs::write(dir.0.join("Reports/q1.txt"), "first quarter").unwrap();
        std::fs::write(dir.0.join("a.bin"), vec![7u8; 100_000]).unwrap();
        let scan = || {
            let store: Arc<dyn Store> = Arc::new(DirectoryStore::new(&dir.0).unwrap());
            let served = Served::new(
                store,
                Arc::new(CrcCache::in_memory()),
                Policy::from_text("{}").unwrap(),
            );
            Served::source(&served.scan().unwrap()).parse().unwrap()
        };
        let here = scan();
        let selection: Vec<SelectedItem> = here.roots().map(|node| item(node.id.clone())).collect();
        let plan = planner::plan(
            &here,
            &Principal::Anonymous,
            &selection,
            &mut PlanOptions::default(),
        )
        .unwrap();
        let archive = build_archive(&plan, &CompressionPolicy::default(), None);
        assert!(archive.entries().len() >= 3);
        // Another process scanning the same directory.
        let written = round_trip(&archive, &scan());
        assert!(written
            .entries
            .iter()
            .any(|e| matches!(&e.file, Some(PlannedFile { content: ContentRef::Node { fingerprint, .. }, .. }) if fingerprint.starts_with("stored:"))));
        // Rewritten (another size): the plan no longer rebuilds.
        std::fs::write(dir.0.join("Reports/q1.txt"), "first quarter, restated").unwrap();
        assert!(matches!(
            written.rebuild(&scan()),
            Err(PlanError::Changed(_))
        ));
    }

    #[test]
    fn isal_output_is_rebuilt_only_where_isal_is() {
        let dir = TempDir::new(line!());
        std::fs::write(dir.0.join("host.bin"), "x").unwrap();
        let here = tree(&dir.0);
        let policy = CompressionPolicy {
            level: 1,
            engine: DeflateEngine::Fastest,
            ..CompressionPolicy::default()
        };
        let archive = build_archive(&plan(&here), &policy, Some(Compression::Deflate));
        let mut written = ArchivePlan::of(&archive).unwrap();
        written.isal = true;
        // Level 1 ISA-L output: rebuilt where ISA-L is linked, refused elsewhere.
        assert_eq!(
            written.rebuild(&here).is_ok(),
            DeflateEngine::ISAL_BUILT_IN,
            "{:?}",
            written.rebuild(&here).err()
        );
        // Level 9 is past ISA-L's range in every build: refused.
        written.level = 9;
        assert!(matches!(
            written.rebuild(&here),
            Err(PlanError::Deflater(_))
        ));
    }

    #[test]
    fn a_plan_with_unknown_fields_is_refused() {
        let json = r#"{"v":1,"raw":false,"utf8_every_name":false,"level":6,"isal":false,"len":22,"entries":[],"extra":1}"#;
        assert!(serde_json::from_str::<ArchivePlan>(json).is_err());
        let ok = r#"{"v":1,"raw":false,"utf8_every_name":false,"level":6,"isal":false,"len":22,"entries":[]}"#;
        let plan: ArchivePlan = serde_json::from_str(ok).unwrap();
        assert_eq!(
            plan.rebuild(&Tree::embedded_default().unwrap())
                .unwrap()
                .len(),
            Some(22)
        );
    }
}
