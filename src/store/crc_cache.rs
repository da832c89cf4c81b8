//! CRC-32s of stored files, remembered by path and version so a stored zip
//! entry's CRC (needed before its first byte) is read once per version of
//! a file, not once per tree reload, and not again after a restart.
//!
//! Kept in a sidecar file of JSON lines, one `{"path","version","crc32"}`
//! per computed CRC, appended as they are learnt. Why not SQLite: one
//! process writes a cache, its records are tiny and never updated in place,
//! and appending needs no C library in the build; a torn last line (a crash
//! mid-write) is skipped at load, and the file is rewritten compacted when
//! most of its lines are stale. Only the newest version per path is kept,
//! so the cache is bounded by the paths the store has held.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Lines one cache file may hold before it is refused as not ours.
const MAX_LINES: usize = 8_000_000;

#[derive(Serialize, Deserialize)]
struct Line<'a> {
    path: std::borrow::Cow<'a, str>,
    version: std::borrow::Cow<'a, str>,
    crc32: u32,
}

#[derive(Debug, Default)]
pub struct CrcCache {
    /// Path → (version, CRC).
    known: Mutex<HashMap<String, (String, u32)>>,
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
}

impl CrcCache {
    /// Remembered for the life of the process only.
    pub fn in_memory() -> Self {
        CrcCache::default()
    }

    /// Loads `path` (created if missing) and appends to it from now on.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut known = HashMap::new();
        let mut lines = 0usize;
        match File::open(path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line?;
                    lines += 1;
                    if lines > MAX_LINES {
                        return Err(io::Error::other(format!(
                            "{}: more than {MAX_LINES} lines; not a CRC cache of ours",
                            path.display()
                        )));
                    }
                    // A torn or foreign line is skipped, not fatal.
                    if let Ok(record) = serde_json::from_slice::<Line>(&line) {
                        known.insert(
                            record.path.into_owned(),
                            (record.version.into_owned(), record.crc32),
                        );
                    }
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        if lines > 1024 && lines > 2 * known.len() {
            rewrite(path, &known)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        // After a torn last line, the next record starts on a line of its own.
        if ends_torn(&mut file)? {
            file.write_all(b"\n")?;
        }
        Ok(CrcCache {
            known: Mutex::new(known),
            file: Some(Mutex::new(file)),
            path: Some(path.to_owned()),
        })
    }

    /// Where the cache is kept, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, path: &str, version: &str) -> Option<u32> {
        match self.lock().get(path) {
            Some((known, crc)) if known == version => Some(*crc),
            _ => None,
        }
    }

    pub fn insert(&self, path: &str, version: &str, crc: u32) {
        {
            let mut known = self.lock();
            if known
                .get(path)
                .is_some_and(|(v, c)| v == version && *c == crc)
            {
                return;
            }
            known.insert(path.to_owned(), (version.to_owned(), crc));
        }
        if let Some(file) = &self.file {
            let mut line = serde_json::to_vec(&Line {
                path: path.into(),
                version: version.into(),
                crc32: crc,
            })
            .unwrap_or_default();
            line.push(b'\n');
            // One write per line (O_APPEND): lines from two writers do not
            // interleave. A failure costs a CRC pass after the next restart.
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = file.write_all(&line) {
                tracing::warn!(%error, "cannot append to the CRC cache");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u32)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ends_torn(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// Writes the live records to a new file and renames it over `path`.
fn rewrite(path: &Path, known: &HashMap<String, (String, u32)>) -> io::Result<()> {
    let fresh = path.with_extension("compacting");
    {
        let mut out = io::BufWriter::new(File::create(&fresh)?);
        for (file, (version, crc)) in known {
            serde_json::to_writer(
                &mut out,
                &Line {
                    path: file.into(),
                    version: version.into(),
                    crc32: *crc,
                },
            )?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(fresh, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_reopen_torn_lines_are_skipped_and_stale_ones_compacted() {
        let dir = std::env::temp_dir().join(format!("zipgate-crc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("sub/crc.jsonl");
        let cache = CrcCache::open(&path).unwrap();
        cache.insert("a.txt", "v1", 1);
        cache.insert("a.txt", "v2", 2);
        cache.insert("dir/b\n\"odd\".txt", "v1", 3);
        assert_eq!(cache.get("a.txt", "v1"), None, "only the newest version");
        drop(cache);
        // A crash mid-write leaves a torn line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"path\":\"c\",\"vers").unwrap();
        drop(file);
        let cache = CrcCache::open(&path).unwrap();
        cache.insert("after-the-tear", "v1", 4);
        drop(cache);
        let cache = CrcCache::open(&path).unwrap();
        assert_eq!(cache.get("after-the-tear", "v1"), Some(4));
        assert_eq!(cache.get("a.txt", "v2"), Some(2));
        assert_eq!(cache.get("dir/b\n\"odd\".txt", "v1"), Some(3));
        assert_eq!(cache.len(), 3);
        // Many stale versions of one path: compacted at the next load.
        for n in 0..3000u32 {
            cache.insert("a.txt", &format!("v{n}"), n);
        }
        drop(cache);
        let cache = CrcCache::open(&path).unwrap();
        assert_eq!(cache.get("a.txt", "v2999"), Some(2999));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 3, "rewritten with the live records only");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
