use std::io::{Cursor, Read};

use chrono::TimeZone;

use super::*;
use crate::store::{Content, FileBody, GeneratedKind};

struct Collect(Vec<u8>);
impl ChunkSink for Collect {
    fn send(&mut self, chunk: Bytes) -> Result<(), Cancelled> {
        assert!(chunk.len() <= CHUNK_SIZE);
        self.0.extend_from_slice(&chunk);
        Ok(())
    }
}

fn file(name: &str, content: Content, method: Method) -> ArchiveEntry {
    ArchiveEntry {
        origin: None,
        name: name.to_owned(),
        mtime: Utc.with_ymd_and_hms(2024, 4, 2, 8, 30, 10).unwrap(),
        body: EntryBody::File {
            data: Arc::new(FileBody::new(content)),
            method,
            built: None,
        },
    }
}

fn dir(name: &str) -> ArchiveEntry {
    ArchiveEntry {
        origin: None,
        name: name.to_owned(),
        mtime: Utc.with_ymd_and_hms(2024, 4, 2, 8, 0, 0).unwrap(),
        body: EntryBody::Dir,
    }
}

fn text(s: &str) -> Content {
    Content::Bytes(Arc::from(s.as_bytes()))
}

fn sample(method: Method) -> Vec<ArchiveEntry> {
    vec![
        dir("Docs/"),
        file("Docs/a.txt", text("hello\n"), method),
        dir("Docs/Empty/"),
        file("Docs/Überblick – 日本語.txt", text("Grüße\n"), method),
        file("empty.bin", text(""), method),
        file(
            "big.log",
            Content::Generated {
                size: 300_000,
                seed: 3,
                kind: GeneratedKind::Text,
            },
            method,
        ),
        file(
            "noise.bin",
            Content::Generated {
                size: 200_001,
                seed: 4,
                kind: GeneratedKind::Random,
            },
            method,
        ),
    ]
}

fn bytes_of(archive: &Archive, offset: u64) -> Vec<u8> {
    let mut sink = Collect(Vec::new());
    archive.stream(offset, &mut sink, &NoProgress).unwrap();
    sink.0
}

fn expected_content(entry: &ArchiveEntry) -> Vec<u8> {
    match &entry.body {
        EntryBody::Dir => Vec::new(),
        EntryBody::File { data, .. } => {
            let mut out = Vec::new();
            data.open_at(0).unwrap().read_to_end(&mut out).unwrap();
            out
        }
    }
}

/// Reads the archive back with the `zip` crate, a second implementation.
fn check_with_zip_crate(bytes: &[u8], entries: &[ArchiveEntry]) {
    let mut reader = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip crate opens the archive");
    assert_eq!(reader.len(), entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let mut found = reader.by_index(i).unwrap();
        assert_eq!(found.name().unwrap(), entry.name.as_str());
        assert_eq!(found.is_dir(), matches!(entry.body, EntryBody::Dir));
        let mut content = Vec::new();
        found.read_to_end(&mut content).unwrap();
        assert_eq!(content, expected_content(entry), "{}", entry.name);
    }
}

#[test]
fn stored_and_deflated_archives_read_back() {
    for method in [Method::Store, Method::Deflate] {
        let archive = Archive::new(sample(method), Deflater::new(6, DeflateEngine::Fastest));
        let bytes = bytes_of(&archive, 0);
        check_with_zip_crate(&bytes, archive.entries());
        if method == Method::Deflate {
            assert!(archive.len().is_none());
            assert!((bytes.len() as u64) < 300_000 + 200_001, "text compresses");
        }
    }
}

#[test]
fn same_entries_give_the_same_bytes() {
    for method in [Method::Store, Method::Deflate] {
        let a = bytes_of(
            &Archive::new(sample(method), Deflater::new(6, DeflateEngine::Fastest)),
            0,
        );
        let b = bytes_of(
            &Archive::new(sample(method), Deflater::new(6, DeflateEngine::Fastest)),
            0,
        );
        assert_eq!(a, b);
    }
}

#[test]
fn stored_length_is_exact_and_every_offset_gives_the_suffix() {
    let archive = Archive::new(
        sample(Method::Store),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    let full = bytes_of(&archive, 0);
    assert_eq!(archive.len(), Some(full.len() as u64));

    // Every offset inside headers and around entry boundaries, then a stride through bodies.
    let mut offsets: Vec<u64> = (0..200).collect();
    let mut pos = 0usize;
    while let Some(found) = find(&full[pos..], b"PK") {
        let at = (pos + found) as u64;
        offsets.extend(at.saturating_sub(2)..at + 48);
        pos += found + 2;
    }
    offsets.extend((0..full.len() as u64).step_by(997));
    offsets.extend(full.len() as u64 - 120..=full.len() as u64);
    for k in offsets {
        if k > full.len() as u64 {
            continue;
        }
        assert_eq!(bytes_of(&archive, k), &full[k as usize..], "offset {k}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn offsets_are_refused_when_the_length_is_unknown() {
    let archive = Archive::new(
        sample(Method::Deflate),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    let mut sink = Collect(Vec::new());
    assert!(matches!(
        archive.stream(10, &mut sink, &NoProgress),
        Err(StreamError::Unseekable(10))
    ));
    let stored = Archive::new(
        sample(Method::Store),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    let past_end = stored.len().unwrap() + 1;
    assert!(stored.stream(past_end, &mut sink, &NoProgress).is_err());
}

#[test]
fn a_refusing_sink_stops_the_stream() {
    struct Refuse(usize);
    impl ChunkSink for Refuse {
        fn send(&mut self, _: Bytes) -> Result<(), Cancelled> {
            self.0 += 1;
            Err(Cancelled)
        }
    }
    let archive = Archive::new(
        sample(Method::Store),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    let mut sink = Refuse(0);
    assert!(matches!(
        archive.stream(0, &mut sink, &NoProgress),
        Err(StreamError::Cancelled)
    ));
    assert_eq!(sink.0, 1);
}

/// A body of zeros whose CRC is known without reading it, so a 5 GiB entry
/// costs nothing unless its bytes are actually sent.
struct Zeros(u64);
impl EntryData for Zeros {
    fn len(&self) -> u64 {
        self.0
    }
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::repeat(0).take(self.0 - offset)))
    }
    fn crc32(&self, _: &dyn Fn() -> bool) -> io::Result<u32> {
        Ok(0xDEAD_BEEF)
    }
}

#[test]
fn entries_past_4_gib_get_zip64_records() {
    let size = 5u64 << 30;
    let entries = vec![
        ArchiveEntry {
            origin: None,
            name: "huge.bin".into(),
            mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            body: EntryBody::File {
                data: Arc::new(Zeros(size)),
                method: Method::Store,
                built: None,
            },
        },
        file("after.txt", text("tail"), Method::Store),
    ];
    let archive = Archive::new(entries, Deflater::new(6, DeflateEngine::Fastest));
    let len = archive.len().unwrap();
    // Only the tail is produced: the second entry, the central directory and end records.
    let tail_from = 30 + 8 + 20 + size;
    let tail = bytes_of(&archive, tail_from);
    assert_eq!(tail.len() as u64, len - tail_from);
    // Second local header sits past 4 GiB, so its central record carries a ZIP64 offset.
    assert_eq!(&tail[..4], &format::LOCAL_HEADER_SIG.to_le_bytes());
    let end = &tail[tail.len() - 22..];
    assert_eq!(&end[..4], &format::EOCD_SIG.to_le_bytes());
    assert_eq!(
        &end[16..20],
        &u32::MAX.to_le_bytes(),
        "cd offset overflows to the zip64 record"
    );
    // Central record of the entry past 4 GiB: both sizes move to the extra with
    // the offset (Info-ZIP misreads an offset-only extra after a ZIP64 entry).
    let local_name = find(&tail, b"after.txt").unwrap();
    let central_name = local_name + 9 + find(&tail[local_name + 9..], b"after.txt").unwrap();
    let record = &tail[central_name - 46..central_name + 9 + 28];
    assert_eq!(&record[..4], &format::CENTRAL_HEADER_SIG.to_le_bytes());
    assert_eq!(&record[20..28], &[0xFF; 8]);
    assert_eq!(u16::from_le_bytes([record[30], record[31]]), 28);
    assert_eq!(&record[42..46], &[0xFF; 4]);
    let extra = &record[46 + 9..];
    assert_eq!(&extra[..4], &[1, 0, 24, 0]);
    assert_eq!(u64::from_le_bytes(extra[4..12].try_into().unwrap()), 4);
    assert_eq!(u64::from_le_bytes(extra[12..20].try_into().unwrap()), 4);
    assert_eq!(
        u64::from_le_bytes(extra[20..28].try_into().unwrap()),
        tail_from
    );
    let locator = &tail[tail.len() - 42..tail.len() - 22];
    assert_eq!(&locator[..4], &format::ZIP64_LOCATOR_SIG.to_le_bytes());
    // The first entry's header and its ZIP64 extra.
    struct Head(Vec<u8>);
    impl ChunkSink for Head {
        fn send(&mut self, chunk: Bytes) -> Result<(), Cancelled> {
            self.0.extend_from_slice(&chunk);
            Err(Cancelled)
        }
    }
    let mut sink = Head(Vec::new());
    assert!(archive.stream(0, &mut sink, &NoProgress).is_err());
    let head = &sink.0[..58];
    assert_eq!(
        &head[18..26],
        &[0xFF; 8],
        "sizes deferred to the zip64 extra"
    );
    assert_eq!(&head[38..42], &[1, 0, 16, 0]);
    assert_eq!(u64::from_le_bytes(head[42..50].try_into().unwrap()), size);
}

#[test]
fn more_than_65535_entries_use_zip64_end_records() {
    let entries: Vec<ArchiveEntry> = (0..70_000)
        .map(|i| file(&format!("f{i}.txt"), text("x"), Method::Store))
        .collect();
    let archive = Archive::new(entries, Deflater::new(6, DeflateEngine::Fastest));
    let bytes = bytes_of(&archive, 0);
    assert_eq!(archive.len(), Some(bytes.len() as u64));
    let reader = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
    assert_eq!(reader.len(), 70_000);
}

#[test]
fn progress_reports_each_entry() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Count(AtomicUsize);
    impl Progress for Count {
        fn entry_done(&self, _: usize) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let archive = Archive::new(
        sample(Method::Deflate),
        Deflater::new(1, DeflateEngine::Fastest),
    );
    let count = Count(AtomicUsize::new(0));
    archive.stream(0, &mut Collect(Vec::new()), &count).unwrap();
    assert_eq!(count.0.load(Ordering::Relaxed), archive.entries().len());
}

#[test]
fn a_single_file_archive_is_the_file_itself() {
    let archive = Archive::single_file(file("a.txt", text("hello world"), Method::Store));
    assert_eq!(archive.len(), Some(11));
    assert_eq!(bytes_of(&archive, 0), b"hello world");
    assert_eq!(bytes_of(&archive, 6), b"world");
}

#[test]
fn an_archive_past_2_pow_64_bytes_has_no_length_rather_than_a_wrapped_one() {
    // Fixture loading refuses such contents; the engine must not wrap anyway
    // (2^63 + 2^63 + headers once announced a length of a few hundred bytes).
    let huge = |name: &str| ArchiveEntry {
        origin: None,
        name: name.into(),
        mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        body: EntryBody::File {
            data: Arc::new(Zeros(1 << 63)),
            method: Method::Store,
            built: None,
        },
    };
    let archive = Archive::new(
        vec![huge("a"), huge("b")],
        Deflater::new(6, DeflateEngine::ZlibRs),
    );
    assert_eq!(archive.len(), None);
    let mut sink = Collect(Vec::new());
    assert!(matches!(
        archive.stream(1, &mut sink, &NoProgress),
        Err(StreamError::Unseekable(1))
    ));
    // The deflate bound saturates instead of wrapping to a small size.
    for level in [1, 6] {
        let deflater = Deflater::new(level, DeflateEngine::ZlibRs);
        assert_eq!(deflater.max_output(u64::MAX), u64::MAX);
        assert!(deflater.max_output(1 << 63) >= 1 << 63);
    }
}

#[test]
fn a_built_deflate_archive_has_an_exact_length_and_every_offset_gives_the_suffix() {
    let streamed = Archive::new(
        sample(Method::Deflate),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    assert!(streamed.needs_build());
    let built = streamed.build(&|| false, &NoProgress).unwrap();
    assert!(!built.needs_build());
    let full = bytes_of(&built, 0);
    assert_eq!(built.len(), Some(full.len() as u64));
    check_with_zip_crate(&full, built.entries());
    // Sizes sit in the local headers: no entry has a data descriptor.
    assert!(find(&full, &format::DATA_DESCRIPTOR_SIG.to_le_bytes()).is_none());
    // Smaller than stored, though built (the text compresses).
    assert!((full.len() as u64) < 300_000 + 200_001);
    let mut offsets: Vec<u64> = (0..120).collect();
    offsets.extend((0..full.len() as u64).step_by(4999));
    offsets.extend(full.len() as u64 - 100..=full.len() as u64);
    for k in offsets {
        assert_eq!(bytes_of(&built, k), &full[k as usize..], "offset {k}");
    }
}

#[test]
fn building_stops_when_told_to() {
    let archive = Archive::new(
        sample(Method::Deflate),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    assert!(matches!(
        archive.build(&|| true, &NoProgress),
        Err(StreamError::Cancelled)
    ));
}

/// A body that reads differently the second time, as a file changed on disk
/// between the build and the download would.
struct Changing {
    reads: std::sync::atomic::AtomicU32,
}
impl EntryData for Changing {
    fn len(&self) -> u64 {
        1000
    }
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let byte = if n == 0 { b'a' } else { b'z' };
        Ok(Box::new(io::repeat(byte).take(1000 - offset)))
    }
    fn crc32(&self, _: &dyn Fn() -> bool) -> io::Result<u32> {
        Ok(0)
    }
}

#[test]
fn a_built_entry_that_deflates_differently_cuts_the_stream() {
    let entries = vec![ArchiveEntry {
        origin: None,
        name: "moving.txt".into(),
        mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        body: EntryBody::File {
            data: Arc::new(Changing { reads: 0.into() }),
            method: Method::Deflate,
            built: None,
        },
    }];
    let built = Archive::new(entries, Deflater::new(6, DeflateEngine::Fastest))
        .build(&|| false, &NoProgress)
        .unwrap();
    let mut sink = Collect(Vec::new());
    let result = built.stream(0, &mut sink, &NoProgress);
    assert!(matches!(result, Err(StreamError::Io(_))), "{result:?}");
    assert!((sink.0.len() as u64) < built.len().unwrap());
}

#[test]
fn every_name_can_carry_the_utf8_flag() {
    let plain = Archive::new(
        sample(Method::Store),
        Deflater::new(6, DeflateEngine::Fastest),
    );
    let flagged = Archive::new(
        sample(Method::Store),
        Deflater::new(6, DeflateEngine::Fastest),
    )
    .with_utf8_flag_on_every_name();
    let flag = |bytes: &[u8]| {
        // The first local header: "Docs/", an ASCII name.
        u16::from_le_bytes([bytes[6], bytes[7]]) & format::FLAG_UTF8
    };
    assert_eq!(flag(&bytes_of(&plain, 0)), 0);
    assert_eq!(flag(&bytes_of(&flagged, 0)), format::FLAG_UTF8);
    assert_eq!(plain.len(), flagged.len());
    check_with_zip_crate(&bytes_of(&flagged, 0), flagged.entries());
}

/// A body whose CRC pass records the thread it ran on; the pass of `waits_for`'s
/// entry does not finish before another entry's pass has started elsewhere.
struct Cold {
    bytes: &'static [u8],
    crc: std::sync::Mutex<Option<(u32, std::thread::ThreadId)>>,
    /// Set once this entry's pass has started.
    started: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Wait for this other entry's pass to start before finishing (at most 10 s).
    waits_for: Option<Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>>,
}

impl EntryData for Cold {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Cursor::new(&self.bytes[offset as usize..])))
    }
    fn crc32_pending(&self) -> bool {
        self.crc.lock().unwrap().is_none()
    }
    fn crc32(&self, _: &dyn Fn() -> bool) -> io::Result<u32> {
        let mut crc = self.crc.lock().unwrap();
        if let Some((known, _)) = *crc {
            return Ok(known);
        }
        *self.started.0.lock().unwrap() = true;
        self.started.1.notify_all();
        if let Some(other) = &self.waits_for {
            let started = other.0.lock().unwrap();
            let (started, _) = other
                .1
                .wait_timeout_while(started, std::time::Duration::from_secs(10), |s| !*s)
                .unwrap();
            assert!(*started, "the next entry's CRC pass never started ahead");
        }
        let value = crc32fast::hash(self.bytes);
        *crc = Some((value, std::thread::current().id()));
        Ok(value)
    }
}

#[test]
fn a_cold_entrys_crc_is_computed_ahead_while_the_one_before_streams() {
    let flags: Vec<_> = (0..3)
        .map(|_| Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new())))
        .collect();
    let bodies: Vec<Arc<Cold>> = [&b"first"[..], b"second", b"third"]
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            Arc::new(Cold {
                bytes,
                crc: Default::default(),
                started: flags[i].clone(),
                // Entry 0's pass (on the engine's thread) finishes only once
                // entry 1's has started on another.
                waits_for: (i == 0).then(|| flags[1].clone()),
            })
        })
        .collect();
    let entries = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| ArchiveEntry {
            origin: None,
            name: format!("{i}.txt"),
            mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            body: EntryBody::File {
                data: body.clone(),
                method: Method::Store,
                built: None,
            },
        })
        .collect();
    let archive = Archive::new(entries, Deflater::new(6, DeflateEngine::Fastest));
    let mut sink = Collect(Vec::new());
    archive.stream(0, &mut sink, &NoProgress).unwrap();
    let engine = std::thread::current().id();
    let ran_on = |i: usize| bodies[i].crc.lock().unwrap().unwrap().1;
    assert_eq!(ran_on(0), engine);
    assert_ne!(ran_on(1), engine, "entry 1 was computed ahead");
    // Every reader takes the archive: the CRCs computed ahead are right.
    let mut zip = ::zip::ZipArchive::new(Cursor::new(sink.0)).unwrap();
    for (i, body) in bodies.iter().enumerate() {
        let mut text = Vec::new();
        zip.by_index(i).unwrap().read_to_end(&mut text).unwrap();
        assert_eq!(text, body.bytes);
    }
}

#[test]
fn a_written_chunks_buffer_is_filled_again() {
    // Discard drops each chunk at once, as hyper does once it is written.
    let mut sink = Discard;
    let mut out = Emitter::new(&mut sink, 0);
    let pooled = |out: &Emitter| out.pool.lock().unwrap().len();
    out.put(&[7; CHUNK_SIZE]).unwrap();
    assert_eq!(pooled(&out), 1, "the sent chunk's buffer came back");
    let first = out.pool.lock().unwrap()[0].as_ptr();
    out.put(b"next").unwrap();
    assert_eq!(pooled(&out), 0, "and was taken for the next chunk");
    assert_eq!(out.buf.as_ptr(), first);
    out.flush().unwrap();
    assert_eq!(pooled(&out), 1);
}

/// What happened to the bodies of [`Remote`] entries, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Open(usize, u64),
    Read(usize),
}

type Events = Arc<Mutex<Vec<Event>>>;

/// A body that logs when it is opened and when its reader is first read.
struct Remote {
    index: usize,
    bytes: Vec<u8>,
    early: bool,
    events: Events,
}

struct LoggedReader {
    index: usize,
    inner: Cursor<Vec<u8>>,
    events: Events,
    read: bool,
}

impl Read for LoggedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !std::mem::replace(&mut self.read, true) {
            self.events.lock().unwrap().push(Event::Read(self.index));
        }
        self.inner.read(buf)
    }
}

impl EntryData for Remote {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        self.events
            .lock()
            .unwrap()
            .push(Event::Open(self.index, offset));
        Ok(Box::new(LoggedReader {
            index: self.index,
            inner: Cursor::new(self.bytes[offset as usize..].to_vec()),
            events: self.events.clone(),
            read: false,
        }))
    }
    fn crc32(&self, _: &dyn Fn() -> bool) -> io::Result<u32> {
        Ok(crc32fast::hash(&self.bytes))
    }
    fn open_early(&self) -> bool {
        self.early
    }
}

#[test]
fn a_remote_body_is_opened_while_the_entry_before_it_streams() {
    let events = Events::default();
    // Stored, deflated, a folder between, stored; the last body is local.
    let methods = [Method::Store, Method::Deflate, Method::Store, Method::Store];
    let mut entries: Vec<ArchiveEntry> = methods
        .iter()
        .enumerate()
        .map(|(i, method)| ArchiveEntry {
            origin: None,
            name: format!("{i}.bin"),
            mtime: Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
            body: EntryBody::File {
                data: Arc::new(Remote {
                    index: i,
                    bytes: (0..100_000u32).map(|n| (n * 7 + i as u32) as u8).collect(),
                    early: i < 3,
                    events: events.clone(),
                }),
                method: *method,
                built: None,
            },
        })
        .collect();
    entries.insert(2, dir("between/"));
    let archive = Archive::new(entries.clone(), Deflater::new(6, DeflateEngine::Fastest));
    let mut sink = Collect(Vec::new());
    archive.stream(0, &mut sink, &NoProgress).unwrap();
    let log = events.lock().unwrap().clone();
    // (Reading it back opens every body again: after the log is taken.)
    check_with_zip_crate(&sink.0, &entries);
    let at = |event: Event| log.iter().position(|e| *e == event).unwrap();
    let opens = log.iter().filter(|e| matches!(e, Event::Open(..))).count();
    assert_eq!(opens, 4, "each body opened once: {log:?}");
    assert!(at(Event::Open(1, 0)) < at(Event::Read(0)), "{log:?}");
    // Past the folder, and across a deflated entry.
    assert!(at(Event::Open(2, 0)) < at(Event::Read(1)), "{log:?}");
    // A body that does not ask is opened when its turn comes.
    assert!(at(Event::Open(3, 0)) > at(Event::Read(2)), "{log:?}");

    // From an offset inside entry 1 of a stored archive: entry 0 is never
    // opened, entry 1 is opened at that offset, entry 2 early at its start.
    let stored: Vec<ArchiveEntry> = entries
        .iter()
        .cloned()
        .map(|mut entry| {
            if let EntryBody::File { method, .. } = &mut entry.body {
                *method = Method::Store;
            }
            entry
        })
        .collect();
    let archive = Archive::new(stored, Deflater::new(6, DeflateEngine::Fastest));
    let offset = 100_000 + 2 * 100 + 123;
    events.lock().unwrap().clear();
    let bytes = bytes_of(&archive, offset);
    let log = events.lock().unwrap().clone();
    assert_eq!(bytes, bytes_of(&archive, 0)[offset as usize..]);
    let at = |event: Event| log.iter().position(|e| *e == event).unwrap();
    assert!(
        !log.iter().any(|e| matches!(e, Event::Open(0, _))),
        "{log:?}"
    );
    let from = log
        .iter()
        .find_map(|e| match e {
            Event::Open(1, from) => Some(*from),
            _ => None,
        })
        .unwrap();
    assert!(from > 0, "{log:?}");
    assert!(at(Event::Open(2, 0)) < at(Event::Read(1)), "{log:?}");
}
