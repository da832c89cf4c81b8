//! The zip engine: turns ordered entries into archive bytes, pushed chunk by
//! chunk into a sink that may refuse more (the client went away).
//!
//! We write our own records instead of using the `zip` crate's writer: it
//! needs `Seek` or writes data descriptors for every entry, and it can
//! neither tell an archive's exact length before the first byte nor start
//! at an arbitrary offset, which `Range` requests need. The `zip` crate reads
//! our output in the tests.

pub mod format;
#[cfg(feature = "isal")]
mod isal;
mod parallel;

pub use parallel::{DeflateEngine, Deflater};

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use zipgate_api::NodeId;

use format::EntryRecord;

/// The bytes of one file entry.
pub trait EntryData: Send + Sync {
    fn len(&self) -> u64;
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>>;
    /// CRC-32 of the whole body; implementations should remember it. A pass
    /// over a big body asks `cancelled` between blocks and gives up (with an
    /// error) once it says yes, so a client that left or a tree that was
    /// replaced does not keep a thread reading for minutes.
    fn crc32(&self, cancelled: &dyn Fn() -> bool) -> io::Result<u32>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The implementation itself, for code that writes an archive down as
    /// data and must know where each body comes from (`crate::archive_plan`).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// The CRC is not known yet and a pass would read the body: worth
    /// starting while the entry before it streams ([`CrcAhead`]). Such an
    /// implementation must let a second `crc32` call wait for a pass under
    /// way rather than start another.
    fn crc32_pending(&self) -> bool {
        false
    }
    /// Whether the body can be read at all right now (its store reachable),
    /// asked before a download starts so an outage gets an answer, not a
    /// cut connection.
    fn preflight(&self) -> io::Result<()> {
        Ok(())
    }
    /// The body's first byte is a round trip away (object storage): worth
    /// opening while the entry before it streams ([`OpenAhead`]). The
    /// reader must then hold at most a few chunks until it is read.
    fn open_early(&self) -> bool {
        false
    }
}

/// The next file entry's reader, opened as the one before it starts
/// streaming when its data asks for that ([`EntryData::open_early`]), so a
/// store's time to first byte overlaps the send instead of stalling it
/// once per entry (measured from S3-compatible storage: about 60 ms of a
/// 64 MiB object's 100). One entry ahead at most: memory stays what two
/// readers hold. Dropped with the stream, it drops the reader (which stops
/// its request).
struct OpenAhead {
    next: Option<(usize, Box<dyn Read + Send>)>,
}

impl OpenAhead {
    fn new() -> Self {
        OpenAhead { next: None }
    }

    /// The reader of entry `index` from `from`, opened early if it was;
    /// then opens the next file entry after it, if that one asks.
    fn open(
        &mut self,
        entries: &[ArchiveEntry],
        index: usize,
        data: &dyn EntryData,
        from: u64,
    ) -> io::Result<Box<dyn Read + Send>> {
        let reader = match self.next.take() {
            Some((at, reader)) if at == index && from == 0 => reader,
            _ => data.open_at(from)?,
        };
        let next = entries
            .iter()
            .enumerate()
            .skip(index + 1)
            .find_map(|(at, entry)| match &entry.body {
                EntryBody::File { data, .. } if !data.is_empty() => Some((at, data)),
                _ => None,
            });
        if let Some((at, data)) = next.filter(|(_, data)| data.open_early()) {
            // A failure shows again when the engine gets there and opens it.
            self.next = data.open_at(0).ok().map(|reader| (at, reader));
        }
        Ok(reader)
    }
}

/// Computes the CRC of the next stored entry whose CRC is pending on a
/// thread of its own while the entry before it streams, so a cold file's
/// extra read pass overlaps the send instead of stalling it. One entry
/// ahead at most: the engine asks for the next one only once it has the
/// CRC it asked for before. Dropped with the stream, it stops the pass
/// under way (between blocks) and the thread ends.
struct CrcAhead {
    queue: Option<std::sync::mpsc::SyncSender<Arc<dyn EntryData>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Index of the last entry asked for.
    asked: Option<usize>,
}

impl CrcAhead {
    fn new() -> Self {
        CrcAhead {
            queue: None,
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            asked: None,
        }
    }

    /// Asks for the CRC of the first stored entry after `index` that needs one.
    fn after(&mut self, entries: &[ArchiveEntry], index: usize) {
        let next = entries
            .iter()
            .enumerate()
            .skip(index + 1)
            .find_map(|(at, entry)| match &entry.body {
                EntryBody::File {
                    data,
                    method: Method::Store,
                    ..
                } if data.crc32_pending() => Some((at, data)),
                _ => None,
            });
        let Some((at, data)) = next else { return };
        if self.asked.is_some_and(|asked| asked >= at) {
            return;
        }
        if self.queue.is_none() {
            let (queue, jobs) = std::sync::mpsc::sync_channel::<Arc<dyn EntryData>>(1);
            let stop = self.stop.clone();
            let spawned = std::thread::Builder::new()
                .name("zipgate-crc-ahead".into())
                .spawn(move || {
                    for data in jobs {
                        // A failure shows again when the engine asks itself.
                        let _ = data.crc32(&|| stop.load(std::sync::atomic::Ordering::Relaxed));
                    }
                });
            if spawned.is_err() {
                // No thread: the engine computes each CRC itself, as before.
                return;
            }
            self.queue = Some(queue);
        }
        if let Some(queue) = &self.queue {
            // Never blocks the stream: a full queue only means no overlap.
            if queue.try_send(data.clone()).is_ok() {
                self.asked = Some(at);
            }
        }
    }
}

impl Drop for CrcAhead {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Store,
    Deflate,
}

#[derive(Clone)]
pub enum EntryBody {
    Dir,
    File {
        data: Arc<dyn EntryData>,
        method: Method,
        /// Known for a deflated entry of a built archive ([`Archive::build`]).
        built: Option<Built>,
    },
}

/// A deflated entry's CRC-32 and compressed size, measured by deflating it
/// once ahead of any download. Deflate here gives the same bytes every
/// time, so the local header can carry them (no data descriptor, as a
/// writer on a seekable file patches them in) and the archive's length is
/// exact, with `Range` working as for a stored archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    pub crc: u32,
    pub compressed: u64,
}

#[derive(Clone)]
pub struct ArchiveEntry {
    /// Archive path, already safe; folders end with `/`.
    pub name: String,
    pub mtime: DateTime<Utc>,
    pub body: EntryBody,
    /// The tree node it was planned from: lets the archive be written down
    /// as data and rebuilt by another process (`crate::archive_plan`).
    pub origin: Option<NodeId>,
}

/// Where the stream goes. `send` fails once nobody wants more bytes.
pub trait ChunkSink {
    fn send(&mut self, chunk: Bytes) -> Result<(), Cancelled>;
    /// True once `send` would fail: checked by work that sends nothing for a
    /// long time (a stored entry's CRC pass before its header).
    fn cancelled(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Told as entries finish, so jobs can report progress.
pub trait Progress: Send + Sync {
    fn entry_done(&self, _index: usize) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// Follows a download as the client receives it: entries as the engine
/// finishes them, bytes as they are handed to the connection, and the end:
/// `finished(true)` once every byte went out, `finished(false)` otherwise.
pub trait StreamObserver: Progress {
    fn bytes_sent(&self, _n: u64) {}
    fn finished(&self, _complete: bool) {}
    /// The download streams `archive` instead of the one it was claimed
    /// with (a recheck cut it), so entries are counted against it.
    fn archive_replaced(&self, _archive: &Archive) {}
}

impl StreamObserver for NoProgress {}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the receiver went away")]
    Cancelled,
    #[error("reading an entry failed: {0}")]
    Io(#[from] io::Error),
    #[error("offset {0} is only possible for an archive whose length is known")]
    Unseekable(u64),
}

pub const CHUNK_SIZE: usize = 128 * 1024;

pub struct Archive {
    entries: Vec<ArchiveEntry>,
    deflater: Deflater,
    len: Option<u64>,
    /// A single file served as itself, not zipped.
    raw: bool,
    /// Every name carries the UTF-8 flag, ASCII ones too (writers that set
    /// it per entry unconditionally); otherwise only names that need it.
    utf8_every_name: bool,
}

impl Archive {
    pub fn new(entries: Vec<ArchiveEntry>, deflater: Deflater) -> Archive {
        let mut archive = Archive {
            entries,
            deflater,
            len: None,
            raw: false,
            utf8_every_name: false,
        };
        archive.len = archive.measure();
        archive
    }

    /// The same archive with the UTF-8 flag on every name.
    pub fn with_utf8_flag_on_every_name(mut self) -> Archive {
        self.utf8_every_name = true;
        self
    }

    /// Whether some entry is deflated without being built: its length is
    /// unknown until it has been streamed.
    pub fn needs_build(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(
                e.body,
                EntryBody::File {
                    method: Method::Deflate,
                    built: None,
                    ..
                }
            )
        })
    }

    /// The archive with every deflated entry measured ([`Built`]), so its
    /// length is exact: deflates each such entry once into nothing, asking
    /// `cancelled` between blocks. `progress` hears of each entry as it is
    /// measured. Costs one compression pass; memory stays one block per core.
    pub fn build(
        &self,
        cancelled: &dyn Fn() -> bool,
        progress: &dyn Progress,
    ) -> Result<Archive, StreamError> {
        let mut entries = self.entries.clone();
        for (index, entry) in entries.iter_mut().enumerate() {
            if let EntryBody::File {
                data,
                method: Method::Deflate,
                built: built @ None,
            } = &mut entry.body
            {
                let mut compressed = 0u64;
                let mut reader = data.open_at(0)?;
                let mut stopped = false;
                let crc = parallel::deflate(&mut reader, data.len(), self.deflater, &mut |chunk| {
                    if cancelled() {
                        stopped = true;
                        return Err(io::Error::other("cancelled"));
                    }
                    compressed += chunk.len() as u64;
                    Ok(())
                });
                if stopped {
                    return Err(StreamError::Cancelled);
                }
                *built = Some(Built {
                    crc: crc?,
                    compressed,
                });
            }
            progress.entry_done(index);
        }
        if cancelled() {
            return Err(StreamError::Cancelled);
        }
        let mut archive = Archive::new(entries, self.deflater);
        archive.utf8_every_name = self.utf8_every_name;
        Ok(archive)
    }

    /// One file's bytes as they are, for APIs that do not zip a lone file.
    pub fn single_file(entry: ArchiveEntry) -> Archive {
        let len = match &entry.body {
            EntryBody::File { data, .. } => data.len(),
            EntryBody::Dir => 0,
        };
        Archive {
            entries: vec![entry],
            deflater: Deflater::new(0, DeflateEngine::ZlibRs),
            len: Some(len),
            raw: true,
            utf8_every_name: false,
        }
    }

    /// Served as a plain file rather than a zip.
    pub fn is_single_file(&self) -> bool {
        self.raw
    }

    /// Whether every name carries the UTF-8 flag.
    pub fn utf8_on_every_name(&self) -> bool {
        self.utf8_every_name
    }

    pub fn deflater(&self) -> Deflater {
        self.deflater
    }

    /// An archive from its parts, as [`Archive::new`] and the flags would
    /// make it (a lone raw file, UTF-8 on every name): how a written-down
    /// archive is rebuilt.
    pub fn from_parts(
        entries: Vec<ArchiveEntry>,
        deflater: Deflater,
        raw: bool,
        utf8_every_name: bool,
    ) -> Archive {
        if raw && entries.len() == 1 {
            let entry = entries.into_iter().next().expect("one entry");
            return Archive::single_file(entry);
        }
        let mut archive = Archive::new(entries, deflater);
        archive.utf8_every_name = utf8_every_name;
        archive
    }

    pub fn entries(&self) -> &[ArchiveEntry] {
        &self.entries
    }

    /// The same archive with only the entries `keep` marks (one flag per
    /// entry, in order): offsets, the central directory and the length
    /// follow. A lone raw file that is dropped leaves an empty zip.
    pub fn retain(&self, keep: &[bool]) -> Archive {
        let mut entries: Vec<ArchiveEntry> = self
            .entries
            .iter()
            .zip(keep)
            .filter(|(_, keep)| **keep)
            .map(|(entry, _)| entry.clone())
            .collect();
        if let (Some(_), true) = (entries.last(), self.raw) {
            return Archive::single_file(entries.pop().expect("just seen"));
        }
        let mut archive = Archive::new(entries, self.deflater);
        archive.utf8_every_name = self.utf8_every_name;
        archive
    }

    /// The exact byte length, known when no entry is deflated.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn measure(&self) -> Option<u64> {
        if self.needs_build() {
            return None;
        }
        let mut sink = Discard;
        let mut emitter = Emitter::new(&mut sink, u64::MAX);
        // An archive past 2^64 bytes (refused at fixture load, so only
        // reachable by building one directly) has no length to announce:
        // it fails when streaming reaches that point.
        self.write_records(&mut emitter, &NoProgress, true).ok()?;
        Some(emitter.pos)
    }

    /// Asks the first file body whether it can be read (see
    /// [`EntryData::preflight`]); an archive has one store behind it.
    pub fn preflight(&self) -> io::Result<()> {
        match self.entries.iter().find_map(|entry| match &entry.body {
            EntryBody::File { data, .. } => Some(data),
            EntryBody::Dir => None,
        }) {
            Some(data) => data.preflight(),
            None => Ok(()),
        }
    }

    /// Streams the archive from byte `offset` (0 for all of it) into `sink`.
    pub fn stream(
        &self,
        offset: u64,
        sink: &mut dyn ChunkSink,
        progress: &dyn Progress,
    ) -> Result<(), StreamError> {
        if offset > 0 && self.len.is_none_or(|len| offset > len) {
            return Err(StreamError::Unseekable(offset));
        }
        let mut emitter = Emitter::new(sink, offset);
        match (&self.entries[..], self.raw) {
            (
                [ArchiveEntry {
                    body: EntryBody::File { data, .. },
                    ..
                }],
                true,
            ) => {
                emitter.copy_body(data.len(), |from| data.open_at(from))?;
                progress.entry_done(0);
            }
            _ => self.write_records(&mut emitter, progress, false)?,
        }
        emitter.flush()
    }

    /// Writes every record in order. In `measuring` mode no byte is wanted,
    /// so CRCs are not computed and stored bodies are not read.
    fn write_records(
        &self,
        out: &mut Emitter,
        progress: &dyn Progress,
        measuring: bool,
    ) -> Result<(), StreamError> {
        let mut written: Vec<Written> = Vec::with_capacity(self.entries.len());
        let mut header = Vec::with_capacity(512);
        let mut ahead = CrcAhead::new();
        let mut opener = OpenAhead::new();
        for (index, entry) in self.entries.iter().enumerate() {
            if entry.name.len() > format::MAX_NAME_BYTES {
                // The planner refuses such paths; this guard keeps the format intact regardless.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "entry name of {} bytes does not fit a zip header",
                        entry.name.len()
                    ),
                )
                .into());
            }
            let local_offset = out.pos;
            let mut record = EntryRecord {
                name: &entry.name,
                utf8: self.utf8_every_name,
                is_dir: matches!(entry.body, EntryBody::Dir),
                method: format::METHOD_STORE,
                mtime: entry.mtime,
                crc: 0,
                compressed: 0,
                uncompressed: 0,
                local_offset,
                descriptor: false,
                zip64: false,
            };
            match &entry.body {
                EntryBody::Dir => {
                    header.clear();
                    format::local_header(&record, &mut header);
                    out.put(&header)?;
                }
                EntryBody::File {
                    data,
                    method: Method::Store,
                    ..
                } => {
                    let size = data.len();
                    record.uncompressed = size;
                    record.compressed = size;
                    record.zip64 = size >= 0xFFFF_FFFF;
                    record.crc = if measuring {
                        0
                    } else {
                        ahead.after(&self.entries, index);
                        let sink = &*out.sink;
                        data.crc32(&|| sink.cancelled()).map_err(|error| {
                            if sink.cancelled() {
                                StreamError::Cancelled
                            } else {
                                error.into()
                            }
                        })?
                    };
                    header.clear();
                    format::local_header(&record, &mut header);
                    out.put(&header)?;
                    out.copy_body(size, |from| {
                        opener.open(&self.entries, index, data.as_ref(), from)
                    })?;
                }
                EntryBody::File {
                    data,
                    method: Method::Deflate,
                    built: Some(built),
                } => {
                    let size = data.len();
                    record.method = format::METHOD_DEFLATE;
                    record.crc = built.crc;
                    record.compressed = built.compressed;
                    record.uncompressed = size;
                    record.zip64 = size.max(built.compressed) >= 0xFFFF_FFFF;
                    header.clear();
                    format::local_header(&record, &mut header);
                    out.put(&header)?;
                    let end = out.end_of(built.compressed)?;
                    if measuring || end <= out.skip_to {
                        out.pos = end;
                    } else {
                        let reader = opener.open(&self.entries, index, data.as_ref(), 0)?;
                        deflate_built(out, reader, data.len(), self.deflater, *built)?;
                    }
                }
                EntryBody::File {
                    data,
                    method: Method::Deflate,
                    built: None,
                } => {
                    let size = data.len();
                    record.method = format::METHOD_DEFLATE;
                    record.descriptor = true;
                    record.zip64 = self.deflater.max_output(size) >= u64::from(u32::MAX);
                    header.clear();
                    format::local_header(&record, &mut header);
                    out.put(&header)?;
                    let start = out.pos;
                    let reader = opener.open(&self.entries, index, data.as_ref(), 0)?;
                    let crc = deflate_into(out, reader, size, self.deflater)?;
                    record.crc = crc;
                    record.uncompressed = size;
                    record.compressed = out.pos - start;
                    header.clear();
                    format::data_descriptor(&record, &mut header);
                    out.put(&header)?;
                }
            }
            written.push(Written {
                crc: record.crc,
                compressed: record.compressed,
                uncompressed: record.uncompressed,
                local_offset,
                descriptor: record.descriptor,
                zip64: record.zip64,
            });
            // An entry wholly before the start offset was never sent.
            if !measuring && out.pos > out.skip_to {
                progress.entry_done(index);
            }
        }

        let cd_offset = out.pos;
        let mut directory = Vec::with_capacity(64 * 1024);
        for (entry, w) in self.entries.iter().zip(&written) {
            let record = EntryRecord {
                name: &entry.name,
                utf8: self.utf8_every_name,
                is_dir: matches!(entry.body, EntryBody::Dir),
                method: match entry.body {
                    EntryBody::File {
                        method: Method::Deflate,
                        ..
                    } => format::METHOD_DEFLATE,
                    _ => format::METHOD_STORE,
                },
                mtime: entry.mtime,
                crc: w.crc,
                compressed: w.compressed,
                uncompressed: w.uncompressed,
                local_offset: w.local_offset,
                descriptor: w.descriptor,
                zip64: w.zip64,
            };
            format::central_header(&record, &mut directory);
            if directory.len() >= CHUNK_SIZE {
                out.put(&directory)?;
                directory.clear();
            }
        }
        out.put(&directory)?;
        let cd_size = out.pos - cd_offset;
        directory.clear();
        format::end_records(written.len() as u64, cd_offset, cd_size, &mut directory);
        out.put(&directory)?;
        Ok(())
    }
}

/// What the central directory needs to know about an entry already written.
struct Written {
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
    descriptor: bool,
    zip64: bool,
}

struct Discard;
impl ChunkSink for Discard {
    fn send(&mut self, _: Bytes) -> Result<(), Cancelled> {
        Ok(())
    }
}

/// Chunk buffers a stream has sent and the socket has written, kept for
/// its next chunks: a stored body is read straight into memory that is
/// already initialised and mapped, instead of a fresh allocation zeroed for
/// every 128 KiB (a tenth of the stream's CPU when the files are in the
/// page cache, measured with perf).
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// Buffers a stream keeps: as many as can be in flight (the channel, the
/// one hyper writes, the one being filled).
const POOLED: usize = 4;

/// A sent chunk's buffer; back to its pool when the `Bytes` is dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    pool: Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Tracks the archive position and sends only the bytes at or past `skip_to`.
struct Emitter<'a> {
    sink: &'a mut dyn ChunkSink,
    pos: u64,
    skip_to: u64,
    /// `CHUNK_SIZE` initialised bytes once in use, of which `filled` are
    /// the next chunk's; empty between chunks.
    buf: Vec<u8>,
    filled: usize,
    pool: Pool,
}

impl<'a> Emitter<'a> {
    fn new(sink: &'a mut dyn ChunkSink, skip_to: u64) -> Self {
        Emitter {
            sink,
            pos: 0,
            skip_to,
            buf: Vec::new(),
            filled: 0,
            pool: Pool::default(),
        }
    }

    /// The buffer being filled, taken from the pool or made.
    fn buffer(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            self.buf = pooled.unwrap_or_else(|| vec![0; CHUNK_SIZE]);
        }
        &mut self.buf[self.filled..]
    }

    /// The position after `len` more bytes; an archive cannot pass 2^64
    /// bytes, so a sum that would wrap is an error, never a small offset.
    fn end_of(&self, len: u64) -> Result<u64, StreamError> {
        self.pos.checked_add(len).ok_or_else(|| {
            StreamError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the archive would pass 2^64 bytes",
            ))
        })
    }

    fn put(&mut self, mut data: &[u8]) -> Result<(), StreamError> {
        let end = self.end_of(data.len() as u64)?;
        if end <= self.skip_to {
            self.pos = end;
            return Ok(());
        }
        if self.pos < self.skip_to {
            data = &data[(self.skip_to - self.pos) as usize..];
        }
        self.pos = end;
        while !data.is_empty() {
            let room = self.buffer();
            let take = room.len().min(data.len());
            room[..take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled == CHUNK_SIZE {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Copies a stored body of `size` bytes, reading (with `open`, given
    /// the offset into the body) only the part at or past `skip_to`.
    fn copy_body(
        &mut self,
        size: u64,
        open: impl FnOnce(u64) -> io::Result<Box<dyn Read + Send>>,
    ) -> Result<(), StreamError> {
        let end = self.end_of(size)?;
        if end <= self.skip_to {
            self.pos = end;
            return Ok(());
        }
        let from = self.skip_to.saturating_sub(self.pos);
        self.pos += from;
        let mut reader = open(from)?;
        let mut remaining = size - from;
        while remaining > 0 {
            if self.filled == CHUNK_SIZE {
                self.flush()?;
            }
            let room = self.buffer();
            let want = room
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let room = &mut room[..want];
            let read = reader.read(room);
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 && want > 0 {
                return Err(
                    io::Error::new(io::ErrorKind::UnexpectedEof, "entry body ended early").into(),
                );
            }
            self.filled += n;
            remaining -= n as u64;
            self.pos += n as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        if self.filled == 0 {
            return Ok(());
        }
        let chunk = Bytes::from_owner(Pooled {
            buf: std::mem::take(&mut self.buf),
            len: std::mem::take(&mut self.filled),
            pool: self.pool.clone(),
        });
        self.sink
            .send(chunk)
            .map_err(|Cancelled| StreamError::Cancelled)
    }
}

/// Deflates a built entry's body into the emitter again, holding it to
/// what the build measured: a body that changed since (or a deflater that
/// no longer gives the same bytes) is an error before a byte past the
/// measured size is sent, so the announced length is never exceeded and a
/// mismatch cuts the download instead of corrupting it.
fn deflate_built(
    out: &mut Emitter,
    mut reader: Box<dyn Read + Send>,
    size: u64,
    deflater: Deflater,
    built: Built,
) -> Result<(), StreamError> {
    let changed = || {
        StreamError::Io(io::Error::other(
            "an entry deflated differently than when the archive was built",
        ))
    };
    let mut produced = 0u64;
    let mut stopped: Option<StreamError> = None;
    let result = parallel::deflate(&mut reader, size, deflater, &mut |chunk| {
        produced += chunk.len() as u64;
        let error = if produced > built.compressed {
            changed()
        } else {
            match out.put(chunk) {
                Ok(()) => return Ok(()),
                Err(error) => error,
            }
        };
        stopped = Some(error);
        Err(io::Error::other("stopped"))
    });
    if let Some(error) = stopped {
        return Err(error);
    }
    if result? != built.crc || produced != built.compressed {
        return Err(changed());
    }
    Ok(())
}

/// Deflates an entry's body into the emitter (across cores for large
/// bodies); returns the CRC-32 of the input.
fn deflate_into(
    out: &mut Emitter,
    mut reader: Box<dyn Read + Send>,
    size: u64,
    deflater: Deflater,
) -> Result<u32, StreamError> {
    let mut stopped: Option<StreamError> = None;
    let result = parallel::deflate(&mut reader, size, deflater, &mut |chunk| {
        out.put(chunk).map_err(|e| {
            stopped = Some(e);
            io::Error::other("sink closed")
        })
    });
    if let Some(error) = stopped {
        return Err(error);
    }
    Ok(result?)
}

#[cfg(test)]
mod tests;
