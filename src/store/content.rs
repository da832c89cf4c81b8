//! Where a file's bytes come from: memory, a path on disk, or a deterministic
//! generator that produces any byte range on demand and never holds the body.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use zipgate_api::rng::splitmix64;

use super::backend::StoredFile;
use super::root::ContentRoot;
use crate::zip::EntryData;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GeneratedKind {
    /// Incompressible bytes (like media or already-compressed files).
    #[default]
    Random,
    /// Compressible ASCII prose (like documents and logs).
    Text,
}

#[derive(Clone, Debug)]
pub enum Content {
    Bytes(Arc<[u8]>),
    /// A file on the host. `modified` is the file's mtime when the fixture
    /// was loaded: a file changed since then would no longer match its
    /// cached CRC or size.
    File {
        file: HostFile,
        size: u64,
        modified: Option<SystemTime>,
    },
    Generated {
        size: u64,
        seed: u64,
        kind: GeneratedKind,
    },
    /// A file of a [`super::backend::Store`], pinned to the version listed.
    Stored(Arc<StoredFile>),
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File { size, .. } => *size,
            Content::Generated { size, .. } => *size,
            Content::Stored(file) => file.size,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A reader over the bytes from `offset` to the end.
    pub fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let offset = offset.min(self.len());
        Ok(match self {
            Content::Stored(file) => file.open_at(offset)?,
            Content::Bytes(bytes) => Box::new(SliceReader {
                bytes: bytes.clone(),
                pos: offset as usize,
            }),
            Content::File {
                file: host,
                size,
                modified,
            } => {
                let (mut file, meta) = host.open()?;
                if meta.len() != *size || meta.modified().ok() != *modified {
                    return Err(io::Error::other(format!(
                        "{:?} changed on disk since the fixtures were loaded",
                        host.written
                    )));
                }
                file.seek(SeekFrom::Start(offset))?;
                // The fixture promised `size` bytes; never serve more than the layout counted.
                Box::new(file.take(size - offset))
            }
            Content::Generated { size, seed, kind } => match kind {
                GeneratedKind::Random => Box::new(RandomReader {
                    seed: *seed,
                    pos: offset,
                    end: *size,
                }),
                GeneratedKind::Text => Box::new(TextReader {
                    seed: *seed,
                    pos: offset,
                    end: *size,
                    block_index: u64::MAX,
                    block: Box::new([0; TEXT_BLOCK]),
                }),
            },
        })
    }
}

/// A host file a fixture names: opened beneath its root each time, so the
/// confinement holds at download time too (`super::root`).
#[derive(Clone, Debug)]
pub struct HostFile {
    /// `None` only when the user opted out of confinement
    /// (`--fixture-paths-anywhere`); `path` is then used as it is.
    pub root: Option<Arc<ContentRoot>>,
    /// Relative to `root` when there is one.
    pub path: PathBuf,
    /// The path as the fixture wrote it: the only one error messages show,
    /// so they never tell which host paths exist.
    pub written: Arc<str>,
}

impl HostFile {
    /// The open file and its metadata; any failure (missing, not a regular
    /// file, outside the root, unreadable) is the same error, naming the
    /// path as written.
    pub fn open(&self) -> io::Result<(File, std::fs::Metadata)> {
        let opened = match &self.root {
            Some(root) => root.open(&self.path),
            // Checked first: opening a FIFO would wait for a writer.
            None => std::fs::metadata(&self.path).and_then(|meta| {
                if meta.is_file() {
                    File::open(&self.path)
                } else {
                    Err(io::ErrorKind::InvalidInput.into())
                }
            }),
        };
        opened
            .and_then(|file| {
                let meta = file.metadata()?;
                if meta.is_file() {
                    Ok((file, meta))
                } else {
                    Err(io::ErrorKind::InvalidInput.into())
                }
            })
            .map_err(|_| io::Error::new(io::ErrorKind::NotFound, self.unavailable()))
    }

    /// The one message for a file that cannot be served.
    pub fn unavailable(&self) -> String {
        match self.root {
            Some(_) => format!(
                "{:?}: no readable regular file by that path beneath the content root",
                self.written
            ),
            None => format!("{:?}: no readable regular file by that path", self.written),
        }
    }
}

/// A file's content plus its CRC-32, computed once on first need and then
/// remembered (stored zip entries need it before their first byte).
#[derive(Debug)]
pub struct FileBody {
    pub content: Content,
    crc: OnceLock<u32>,
    /// Held by the one pass computing the CRC: a second asker (the engine
    /// behind a pass started ahead of it) waits for it instead of reading
    /// the file again.
    computing: std::sync::Mutex<()>,
}

impl FileBody {
    pub fn new(content: Content) -> Self {
        FileBody {
            content,
            crc: OnceLock::new(),
            computing: std::sync::Mutex::new(()),
        }
    }
}

impl EntryData for FileBody {
    fn len(&self) -> u64 {
        self.content.len()
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        self.content.open_at(offset)
    }

    fn crc32_pending(&self) -> bool {
        self.crc.get().is_none()
    }

    fn preflight(&self) -> io::Result<()> {
        match &self.content {
            Content::Stored(file) => file.store.check(),
            _ => Ok(()),
        }
    }

    fn open_early(&self) -> bool {
        matches!(&self.content, Content::Stored(file) if file.store.remote())
    }

    fn crc32(&self, cancelled: &dyn Fn() -> bool) -> io::Result<u32> {
        if let Some(crc) = self.crc.get() {
            return Ok(*crc);
        }
        let _computing = self.computing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(crc) = self.crc.get() {
            return Ok(*crc);
        }
        if let Content::Stored(file) = &self.content {
            if let Some(crc) = file.known_crc32()? {
                return Ok(*self.crc.get_or_init(|| crc));
            }
        }
        let mut reader = self.content.open_at(0)?;
        let mut hasher = crc32fast::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            // One atomic load per 256 KiB: a 64 GiB pass stops within a block.
            if cancelled() {
                return Err(io::Error::other("the CRC pass was cancelled"));
            }
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            hasher.update(&buf[..n]);
        }
        if total != self.content.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("content is {total} bytes, expected {}", self.content.len()),
            ));
        }
        let crc = hasher.finalize();
        if let Content::Stored(file) = &self.content {
            file.remember_crc32(crc);
        }
        Ok(*self.crc.get_or_init(|| crc))
    }
}

impl FileBody {
    /// Worth computing ahead of any download: the bytes are local and
    /// cheap to read (not an object store's, which would download them).
    pub fn warm_ahead(&self) -> bool {
        !matches!(self.content, Content::Stored(_))
    }
}

struct SliceReader {
    bytes: Arc<[u8]>,
    pos: usize,
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.bytes[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// Word `i` of a random body depends only on (seed, i), so any offset can be
/// served without producing the bytes before it.
fn random_word(seed: u64, index: u64) -> [u8; 8] {
    splitmix64(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes()
}

struct RandomReader {
    seed: u64,
    pos: u64,
    end: u64,
}

impl Read for RandomReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.end - self.pos) as usize);
        let mut out = &mut buf[..n];
        let mut pos = self.pos;
        // Unaligned head: part of one word.
        let skip = (pos % 8) as usize;
        if skip != 0 && !out.is_empty() {
            let word = random_word(self.seed, pos / 8);
            let take = (8 - skip).min(out.len());
            out[..take].copy_from_slice(&word[skip..skip + take]);
            out = &mut out[take..];
            pos += take as u64;
        }
        let mut index = pos / 8;
        let mut chunks = out.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&random_word(self.seed, index));
            index += 1;
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let len = tail.len();
            tail.copy_from_slice(&random_word(self.seed, index)[..len]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

const TEXT_BLOCK: usize = 4096;

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "archive",
    "file",
    "folder",
    "zip",
    "download",
    "request",
    "server",
    "client",
    "stream",
    "bytes",
    "entry",
    "header",
    "central",
    "directory",
    "record",
    "quarterly",
    "report",
    "budget",
    "meeting",
    "notes",
    "draft",
    "final",
    "review",
    "project",
    "team",
    "schedule",
    "invoice",
    "contract",
    "customer",
    "order",
    "shipment",
    "warehouse",
    "a",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "that",
    "be",
    "are",
    "was",
    "it",
    "an",
    "or",
    "which",
    "will",
    "can",
    "has",
    "have",
    "not",
    "all",
    "each",
    "data",
    "value",
    "system",
    "process",
    "result",
    "table",
    "figure",
    "section",
    "page",
    "summary",
    "appendix",
    "north",
    "south",
    "east",
    "west",
    "sales",
    "growth",
    "revenue",
];

/// Fills one block of prose. Each block depends only on (seed, block index).
fn text_block(seed: u64, block_index: u64, out: &mut [u8; TEXT_BLOCK]) {
    let mut state = seed ^ block_index.wrapping_mul(0xA076_1D64_78BD_642F);
    let mut pos = 0;
    let mut line = 0;
    while pos < TEXT_BLOCK {
        state = splitmix64(state);
        let word = WORDS[(state % WORDS.len() as u64) as usize].as_bytes();
        if pos + word.len() + 1 > TEXT_BLOCK {
            out[pos..TEXT_BLOCK - 1].fill(b' ');
            out[TEXT_BLOCK - 1] = b'\n';
            break;
        }
        out[pos..pos + word.len()].copy_from_slice(word);
        pos += word.len();
        line += word.len() + 1;
        out[pos] = if line > 72 {
            line = 0;
            b'\n'
        } else if state >> 60 == 0 {
            b','
        } else {
            b' '
        };
        pos += 1;
    }
}

struct TextReader {
    seed: u64,
    pos: u64,
    end: u64,
    block_index: u64,
    block: Box<[u8; TEXT_BLOCK]>,
}

impl Read for TextReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        let mut done = 0;
        while done < want {
            let index = self.pos / TEXT_BLOCK as u64;
            if index != self.block_index {
                text_block(self.seed, index, &mut self.block);
                self.block_index = index;
            }
            let within = (self.pos % TEXT_BLOCK as u64) as usize;
            let take = (TEXT_BLOCK - within).min(want - done);
            buf[done..done + take].copy_from_slice(&self.block[within..within + take]);
            done += take;
            self.pos += take as u64;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(content: &Content, offset: u64) -> Vec<u8> {
        let mut out = Vec::new();
        content
            .open_at(offset)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn generated_bodies_are_deterministic_and_seekable() {
        for kind in [GeneratedKind::Random, GeneratedKind::Text] {
            let content = Content::Generated {
                size: 3 * TEXT_BLOCK as u64 + 13,
                seed: 42,
                kind,
            };
            let full = read_all(&content, 0);
            assert_eq!(full.len() as u64, content.len());
            assert_eq!(full, read_all(&content, 0));
            for offset in [1, 7, 8, 9, 4095, 4096, 4097, 12000, full.len() as u64] {
                assert_eq!(
                    read_all(&content, offset),
                    full[offset as usize..],
                    "{kind:?} @{offset}"
                );
            }
        }
    }

    #[test]
    fn odd_sized_reads_match_one_big_read() {
        let content = Content::Generated {
            size: 1000,
            seed: 7,
            kind: GeneratedKind::Random,
        };
        let full = read_all(&content, 0);
        let mut reader = content.open_at(3).unwrap();
        let mut pieced = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieced.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieced, full[3..]);
    }

    #[test]
    fn text_compresses_and_random_does_not_repeat() {
        let text = read_all(
            &Content::Generated {
                size: 8192,
                seed: 1,
                kind: GeneratedKind::Text,
            },
            0,
        );
        assert!(text.iter().all(|b| b.is_ascii()));
        let a = read_all(
            &Content::Generated {
                size: 64,
                seed: 1,
                kind: GeneratedKind::Random,
            },
            0,
        );
        let b = read_all(
            &Content::Generated {
                size: 64,
                seed: 2,
                kind: GeneratedKind::Random,
            },
            0,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn crc_is_computed_once_and_matches() {
        let body = FileBody::new(Content::Bytes(Arc::from(&b"hello world"[..])));
        assert_eq!(
            body.crc32(&|| false).unwrap(),
            crc32fast::hash(b"hello world")
        );
        assert_eq!(
            body.crc32(&|| false).unwrap(),
            crc32fast::hash(b"hello world")
        );
    }
}
