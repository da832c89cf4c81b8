//! Plan → archive: decides which entries are deflated and which are stored.

use std::sync::Arc;

use zipgate_api::Compression;

use crate::planner::{Plan, PlanEntry};
use crate::store::NodeData;
use crate::zip::{Archive, ArchiveEntry, DeflateEngine, Deflater, EntryBody, Method};

/// Types that are already compressed: deflating them costs CPU and saves nothing.
pub const DEFAULT_STORED_EXTENSIONS: &[&str] = &[
    "7z", "aac", "apk", "avi", "bz2", "docx", "epub", "flac", "gif", "gz", "heic", "jar", "jpeg",
    "jpg", "m4a", "m4v", "mkv", "mov", "mp3", "mp4", "odp", "ods", "odt", "ogg", "png", "pptx",
    "rar", "tgz", "webm", "webp", "xlsx", "xz", "zip", "zst",
];

#[derive(Clone, Debug)]
pub struct CompressionPolicy {
    pub method: Compression,
    /// zlib level 0–9 for deflated entries.
    pub level: u32,
    /// Which implementation deflates at that level.
    pub engine: DeflateEngine,
    /// Extensions always stored, even in a deflate archive (compared without case).
    pub stored_extensions: Vec<String>,
}

impl Default for CompressionPolicy {
    fn default() -> Self {
        CompressionPolicy {
            method: Compression::Store,
            level: 6,
            engine: DeflateEngine::default(),
            stored_extensions: DEFAULT_STORED_EXTENSIONS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

impl CompressionPolicy {
    pub fn method_for(&self, path: &str, size: u64) -> Method {
        self.method_with(self.method, path, size)
    }

    /// As `method_for`, with a request's own choice of store or deflate.
    fn method_with(&self, method: Compression, path: &str, size: u64) -> Method {
        if method == Compression::Store || size == 0 {
            return Method::Store;
        }
        let extension = path.rsplit_once('.').map(|(_, ext)| ext);
        match extension {
            Some(ext)
                if self
                    .stored_extensions
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(ext)) =>
            {
                Method::Store
            }
            _ => Method::Deflate,
        }
    }
}

fn archive_entry(entry: &PlanEntry, method_of: impl Fn(&str, u64) -> Method) -> ArchiveEntry {
    ArchiveEntry {
        name: entry.path.clone(),
        mtime: entry.node.mtime,
        origin: Some(entry.node.id.clone()),
        body: match &entry.node.data {
            NodeData::Folder(_) => EntryBody::Dir,
            NodeData::File(body) => EntryBody::File {
                method: method_of(&entry.path, body.content.len()),
                built: None,
                data: Arc::clone(body) as Arc<dyn crate::zip::EntryData>,
            },
        },
    }
}

/// The plan's archive under `policy`, deflating or not as `method` says when
/// the request chose (the policy is borrowed: its extension list is not copied
/// per request).
pub fn build_archive(
    plan: &Plan,
    policy: &CompressionPolicy,
    method: Option<Compression>,
) -> Archive {
    let method = method.unwrap_or(policy.method);
    let entries = plan
        .entries
        .iter()
        .map(|entry| archive_entry(entry, |path, size| policy.method_with(method, path, size)))
        .collect();
    Archive::new(entries, Deflater::new(policy.level, policy.engine))
}

/// The file itself, for APIs that serve a lone file unzipped.
pub fn single_file_archive(entry: &PlanEntry) -> Archive {
    Archive::single_file(archive_entry(entry, |_, _| Method::Store))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_types_and_empty_files_are_stored() {
        let policy = CompressionPolicy {
            method: Compression::Deflate,
            ..CompressionPolicy::default()
        };
        assert_eq!(policy.method_for("a/photo.JPG", 10), Method::Store);
        assert_eq!(policy.method_for("report.xlsx", 10), Method::Store);
        assert_eq!(policy.method_for("notes.txt", 10), Method::Deflate);
        assert_eq!(policy.method_for("notes.txt", 0), Method::Store);
        assert_eq!(policy.method_for("Makefile", 10), Method::Deflate);
        assert_eq!(
            CompressionPolicy::default().method_for("notes.txt", 10),
            Method::Store
        );
    }
}
