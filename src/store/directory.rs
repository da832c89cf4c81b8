//! `serve --root DIR`: a real directory as a [`Store`], for teams moving a
//! client off a vendor onto their own files.
//!
//! Folders are listed and files opened through file descriptors beneath
//! `DIR` only ([`ContentRoot`]: `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, else `O_NOFOLLOW` one component at a time), so no
//! name, and no symlink swapped in between a listing and a read, leads
//! outside. A listing never follows a symlink (`fstatat` with
//! `AT_SYMLINK_NOFOLLOW`; a link is left out and counted), and leaves out
//! sockets, FIFOs and devices, and names that are not UTF-8 (no fixture
//! document, and no dialect's JSON, can name them; counted).
//!
//! A file's version is its device, inode, size and modification time to
//! the nanosecond: a read checks it on the opened file, so a file replaced
//! or rewritten since the listing is refused rather than served mixed.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use zipgate_api::NodeKind;

use super::backend::{Entry, Exactly, LeftOut, Store};
use super::ContentRoot;

#[derive(Debug)]
pub struct DirectoryStore {
    root: Arc<ContentRoot>,
}

impl DirectoryStore {
    /// `dir` must be a directory; it is held open from now on, and
    /// symlinks beneath it are never followed.
    pub fn new(dir: &Path) -> io::Result<DirectoryStore> {
        let root = ContentRoot::new(dir)?.without_symlinks();
        Ok(DirectoryStore {
            root: Arc::new(root),
        })
    }

    pub fn dir(&self) -> &Path {
        self.root.dir()
    }
}

/// The version of a file as `fstat` describes it.
fn version(stat: &rustix::fs::Stat) -> String {
    format!(
        "{}:{}:{}:{}.{:09}",
        stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime, stat.st_mtime_nsec
    )
}

fn mtime(stat: &rustix::fs::Stat) -> DateTime<Utc> {
    let nanos = u32::try_from(stat.st_mtime_nsec).unwrap_or(0);
    // `time_t` is narrower than i64 on some targets.
    #[allow(clippy::unnecessary_cast)]
    let secs = stat.st_mtime as i64;
    DateTime::from_timestamp(secs, nanos).unwrap_or_default()
}

impl Store for DirectoryStore {
    fn describe(&self) -> String {
        format!("directory {}", self.root.dir().display())
    }

    fn list(&self, folder: &str, left_out: &mut LeftOut) -> io::Result<Vec<Entry>> {
        use rustix::fs::{AtFlags, FileType};
        let dir = self.root.open_dir(Path::new(folder))?;
        let mut entries = Vec::new();
        for item in rustix::fs::Dir::read_from(&dir)? {
            let item = item?;
            let raw = item.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                left_out.not_utf8 += 1;
                continue;
            };
            let stat = match rustix::fs::statat(&dir, item.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                // Gone since the listing, or not ours to see.
                Err(_) => {
                    left_out.unreadable += 1;
                    continue;
                }
            };
            let kind = match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => NodeKind::Folder,
                FileType::RegularFile => NodeKind::File,
                FileType::Symlink => {
                    left_out.symlinks += 1;
                    continue;
                }
                _ => {
                    left_out.special += 1;
                    continue;
                }
            };
            entries.push(Entry {
                name: name.to_owned(),
                kind,
                size: match kind {
                    NodeKind::File => u64::try_from(stat.st_size).unwrap_or(0),
                    NodeKind::Folder => 0,
                },
                mtime: mtime(&stat),
                version: version(&stat),
            });
        }
        Ok(entries)
    }

    fn watch(&self, changed: Box<dyn Fn() + Send + Sync>) -> Option<Box<dyn std::any::Any + Send>> {
        use notify::Watcher;
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // An error (a queue overflow) may hide a change: scan anyway.
            if event.map_or(true, |e| !e.kind.is_access()) {
                changed();
            }
        })
        .map_err(|error| tracing::warn!(%error, "cannot watch the served directory; it is scanned periodically"))
        .ok()?;
        // Recursive: one inotify watch per folder, added as folders appear.
        // Past the system's watch limit the periodic rescan still sees all.
        if let Err(error) = watcher.watch(self.root.dir(), notify::RecursiveMode::Recursive) {
            tracing::warn!(%error, "cannot watch the served directory; it is scanned periodically");
            return None;
        }
        Some(Box::new(watcher))
    }

    /// The served directory still opens (a removed or unmounted one does not).
    fn check(&self) -> io::Result<()> {
        self.root.open_dir(Path::new("")).map(drop)
    }

    fn open_at(
        &self,
        file: &str,
        listed: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<Box<dyn Read + Send>> {
        let mut opened = self.root.open(Path::new(file))?;
        let stat = rustix::fs::fstat(&opened)?;
        if version(&stat) != listed {
            return Err(io::Error::other(format!(
                "{file:?} changed on disk since it was listed"
            )));
        }
        opened.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(Checked {
            file: Exactly {
                inner: opened,
                left: len,
            },
            listed: Some(listed.to_owned()),
        }))
    }
}

/// A file read to its listed length, then checked once more: a file
/// rewritten in place while it streamed has a new mtime by then, and the
/// download is cut rather than ending with bytes of two versions.
struct Checked {
    file: Exactly<std::fs::File>,
    /// Taken by the check at the end.
    listed: Option<String>,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if self.file.left == 0 {
            if let Some(listed) = self.listed.take() {
                if version(&rustix::fs::fstat(&self.file.inner)?) != listed {
                    return Err(io::Error::other(
                        "the file changed on disk while it was read",
                    ));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::Rule;
    use super::*;
    use serde_json::json;
    use std::fs;

    #[test]
    fn a_directory_becomes_a_sorted_tree_without_links_or_specials() {
        let dir = std::env::temp_dir().join(format!("zipgate-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("b/inner")).unwrap();
        fs::write(dir.join("b/inner/x.txt"), "x").unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
            std::os::unix::fs::symlink("b", dir.join("dirlink")).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                dir.join("fifo"),
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
                0,
            )
            .unwrap();
        }
        let rules = [
            Rule {
                path: "b/inner".into(),
                owner: Some("carol".into()),
                readers: Some(json!(["carol"])),
            },
            Rule {
                path: "nowhere".into(),
                owner: None,
                readers: None,
            },
        ];
        let store: Arc<dyn Store> = Arc::new(DirectoryStore::new(&dir).unwrap());
        let crcs = Arc::new(super::super::crc_cache::CrcCache::in_memory());
        let scanned = super::super::backend::scan(
            &store,
            &crcs,
            Vec::new(),
            &rules,
            &super::super::backend::IdMap::default(),
        )
        .unwrap();
        let (doc, skipped) = (scanned.doc.as_ref(), scanned.left_out);
        assert_eq!(skipped.rules_unmatched, 1);
        assert_eq!(doc["nodes"][1]["children"][0]["owner"], "carol");
        assert_eq!(doc["nodes"][1]["children"][0]["readers"], json!(["carol"]));
        let nodes = doc["nodes"].as_array().unwrap();
        let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.txt", "b"]);
        assert_eq!(nodes[0]["content"]["path"], "a.txt");
        let inner = &nodes[1]["children"][0];
        assert_eq!(inner["id"], "b/inner");
        assert_eq!(inner["children"][0]["content"]["path"], "b/inner/x.txt");
        #[cfg(unix)]
        assert_eq!((skipped.symlinks, skipped.special), (2, 1));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_read_is_refused_once_the_file_changed_and_cut_if_it_changes_midway() {
        let dir = std::env::temp_dir().join(format!("zipgate-dirstore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a.txt"), "first version").unwrap();
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::ffi::OsStrExt;
            fs::write(dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")), "x").unwrap();
        }
        let store = DirectoryStore::new(&dir).unwrap();
        let mut left_out = LeftOut::default();
        let listed = store.list("", &mut left_out).unwrap();
        #[cfg(target_os = "linux")]
        assert_eq!(left_out.not_utf8, 1);
        let listed_a = || {
            let mut listed = store.list("", &mut LeftOut::default()).unwrap();
            listed.retain(|e| e.name == "a.txt");
            listed.pop().unwrap()
        };
        assert!(listed.iter().any(|e| e.name == "a.txt"));
        let a = listed_a();
        assert_eq!((a.kind, a.size), (NodeKind::File, 13));
        let read = |offset: u64, len: u64| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            store
                .open_at("a.txt", &a.version, offset, len)?
                .read_to_end(&mut out)?;
            Ok(out)
        };
        assert_eq!(read(6, 7).unwrap(), b"version");
        // Rewritten: the listed version no longer opens.
        fs::write(dir.join("a.txt"), "other version").unwrap();
        assert!(read(0, 13).is_err());
        // Changed while a reader is open: the end of the read says so.
        let a = listed_a();
        let mut reader = store.open_at("a.txt", &a.version, 0, 13).unwrap();
        let mut head = [0u8; 4];
        reader.read_exact(&mut head).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join("a.txt"))
            .and_then(|mut f| io::Write::write_all(&mut f, b"OTHER"))
            .unwrap();
        let mut rest = Vec::new();
        assert!(reader.read_to_end(&mut rest).is_err());
        // Truncated while read: never a short entry.
        let a = listed_a();
        let mut reader = store.open_at("a.txt", &a.version, 0, 13).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(dir.join("a.txt"))
            .and_then(|f| f.set_len(3))
            .unwrap();
        let mut all = Vec::new();
        assert!(reader.read_to_end(&mut all).is_err());
        // Names from a caller cannot climb out.
        assert!(store.open_at("../x", &a.version, 0, 1).is_err());
        assert!(store.list("..", &mut LeftOut::default()).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
