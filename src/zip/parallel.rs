//! Deflate across cores, the way pigz does it: an entry is cut into fixed
//! blocks, each compressed on a shared worker pool with the previous block's
//! last 32 KiB as its dictionary and ended by a sync flush (the last by the
//! final block), so the blocks joined in order are one valid deflate stream.
//! The output depends only on the data and the level, never on timing.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Input bytes per block (pigz's default).
pub const BLOCK: usize = 128 * 1024;
/// What deflate can look back at: the dictionary a block inherits.
const WINDOW: usize = 32 * 1024;

type Task = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads, one per core, shared by every download.
struct Pool {
    queue: Mutex<VecDeque<Task>>,
    ready: Condvar,
    threads: usize,
}

impl Pool {
    fn global() -> &'static Pool {
        static POOL: OnceLock<&'static Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
            let pool: &'static Pool = Box::leak(Box::new(Pool {
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                threads,
            }));
            for index in 0..threads {
                let spawned = std::thread::Builder::new()
                    .name(format!("deflate-{index}"))
                    .spawn(move || pool.work());
                if let Err(error) = spawned {
                    tracing::warn!(%error, "cannot start a deflate worker");
                }
            }
            pool
        })
    }

    fn work(&self) {
        loop {
            let task = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    match queue.pop_front() {
                        Some(task) => break task,
                        None => {
                            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                }
            };
            task();
        }
    }

    fn submit(&self, task: Task) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(task);
        self.ready.notify_one();
    }
}

/// Which deflate implementation compresses entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeflateEngine {
    /// ISA-L at levels 1–3 when the build has it (each of its levels
    /// compresses at least as well as zlib's same level), zlib-rs otherwise.
    #[default]
    Fastest,
    /// zlib-rs at every level: the same bytes from every build.
    ZlibRs,
}

impl DeflateEngine {
    /// Whether this build links ISA-L (see build.rs).
    pub const ISAL_BUILT_IN: bool = cfg!(zipgate_isal);
}

/// A level and the implementation that compresses at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflater {
    level: u32,
    isal: bool,
}

impl Deflater {
    pub fn new(level: u32, engine: DeflateEngine) -> Deflater {
        let level = level.min(9);
        Deflater {
            level,
            isal: engine == DeflateEngine::Fastest && level >= 1 && level <= isal_max_level(),
        }
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether ISA-L deflates (else zlib-rs): the two give different bytes.
    pub fn isal(&self) -> bool {
        self.isal
    }

    /// The deflater another process chose, if this build can give the same
    /// bytes: ISA-L output needs ISA-L linked and the level within its range.
    pub fn resolved(level: u32, isal: bool) -> Option<Deflater> {
        let level = level.min(9);
        if isal && !(level >= 1 && level <= isal_max_level()) {
            return None;
        }
        Some(Deflater { level, isal })
    }

    /// What deflates and why, for the start-up line: `ISA-L (level 1)`,
    /// `zlib-rs (level 6; ISA-L is used at levels 1-3)`, `zlib-rs (level 1;
    /// this build has no ISA-L)`.
    pub fn describe(&self, engine: DeflateEngine) -> String {
        let level = self.level;
        let max = isal_max_level();
        match (self.isal, engine) {
            (true, _) => format!("ISA-L (level {level})"),
            (false, DeflateEngine::ZlibRs) => {
                format!("zlib-rs (level {level}; --deflate-engine zlib-rs)")
            }
            (false, DeflateEngine::Fastest) if max == 0 => {
                format!("zlib-rs (level {level}; this build has no ISA-L)")
            }
            (false, DeflateEngine::Fastest) => {
                format!("zlib-rs (level {level}; ISA-L is used at levels 1-{max})")
            }
        }
    }

    /// The name of the implementation, for logs.
    pub fn implementation(&self) -> &'static str {
        if self.isal {
            "ISA-L"
        } else {
            "zlib-rs"
        }
    }

    /// The most bytes `size` bytes of input can deflate to, which decides
    /// before the first byte whether an entry needs ZIP64 fields.
    pub fn max_output(&self, size: u64) -> u64 {
        // zlib-rs's level 1 codes every block with the fixed Huffman tables
        // (9 bits for half the literals) and never falls back to a stored
        // block; the others store what does not compress, 5 bytes a block.
        let growth = if self.level == 1 && !self.isal {
            size / 8
        } else {
            size / 3000
        };
        // Each of our blocks adds a sync flush and block headers.
        // Saturating: a bound past 2^64 only has to say "ZIP64".
        let framing = size.div_ceil(BLOCK as u64).saturating_mul(64) + 1024;
        size.saturating_add(growth).saturating_add(framing)
    }

    /// Raw deflate of one block; a sync flush ends it unless it is the last.
    pub fn compress_block(
        &self,
        dictionary: Option<&[u8]>,
        input: &[u8],
        last: bool,
    ) -> io::Result<Vec<u8>> {
        #[cfg(feature = "isal")]
        if self.isal {
            return super::isal::compress_block(self.level, dictionary, input, last);
        }
        zlib_compress_block(self.level, dictionary, input, last)
    }
}

#[cfg(feature = "isal")]
fn isal_max_level() -> u32 {
    super::isal::max_level()
}

#[cfg(not(feature = "isal"))]
fn isal_max_level() -> u32 {
    0
}

/// Raw deflate of one block with zlib-rs.
fn zlib_compress_block(
    level: u32,
    dictionary: Option<&[u8]>,
    input: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    // A fresh compressor per block: after `reset` the output can depend on the
    // block the worker compressed before (zlib-rs#459, zlib-ng#2100).
    let mut compress = Compress::new(Compression::new(level), false);
    if let Some(dictionary) = dictionary {
        compress
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    loop {
        let consumed = compress.total_in() as usize;
        let status = compress
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = compress.total_in() as usize == input.len();
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once it returns with room to spare.
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// Reads up to `want` bytes, fewer only at the end of the data.
fn read_block(reader: &mut dyn Read, want: usize) -> io::Result<Vec<u8>> {
    let mut block = Vec::with_capacity(want);
    (&mut *reader).take(want as u64).read_to_end(&mut block)?;
    Ok(block)
}

/// Deflates `size` bytes from `reader`, handing the compressed stream to
/// `emit` in order. Returns the CRC-32 of the input.
pub fn deflate(
    reader: &mut dyn Read,
    size: u64,
    deflater: Deflater,
    emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u32> {
    let ended_early = || io::Error::new(io::ErrorKind::UnexpectedEof, "entry body ended early");
    let mut hasher = crc32fast::Hasher::new();
    if size <= BLOCK as u64 {
        // One block: not worth a trip to the pool.
        let block = read_block(reader, size as usize)?;
        if block.len() as u64 != size {
            return Err(ended_early());
        }
        hasher.update(&block);
        emit(&deflater.compress_block(None, &block, true)?)?;
        return Ok(hasher.finalize());
    }
    let pool = Pool::global();
    // Blocks in flight for this entry: enough to keep every core busy, few
    // enough that memory per download stays near a megabyte.
    let in_flight = pool.threads + 1;
    let mut pending: VecDeque<Receiver<io::Result<Vec<u8>>>> = VecDeque::new();
    let mut dictionary: Option<Arc<[u8]>> = None;
    let mut read = 0u64;
    loop {
        while pending.len() < in_flight && read < size {
            let want = (size - read).min(BLOCK as u64) as usize;
            let block = read_block(reader, want)?;
            if block.len() != want {
                return Err(ended_early());
            }
            read += want as u64;
            hasher.update(&block);
            let last = read == size;
            let next: Arc<[u8]> = Arc::from(&block[block.len().saturating_sub(WINDOW)..]);
            let inherited = dictionary.replace(next);
            let (done, result) = sync_channel(1);
            pool.submit(Box::new(move || {
                let out = deflater.compress_block(inherited.as_deref(), &block, last);
                let _ = done.send(out);
            }));
            pending.push_back(result);
        }
        let Some(result) = pending.pop_front() else {
            break;
        };
        let compressed = result
            .recv()
            .map_err(|_| io::Error::other("a deflate worker stopped"))??;
        emit(&compressed)?;
    }
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn text(len: usize) -> Vec<u8> {
        let words = ["zip", "gate", "stream", "deflate", "block", "a", "the"];
        let mut out = Vec::with_capacity(len + 16);
        let mut i = 0usize;
        while out.len() < len {
            out.extend_from_slice(words[(i * 7 + i / 3) % words.len()].as_bytes());
            out.push(if i.is_multiple_of(11) { b'\n' } else { b' ' });
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Every implementation and a spread of levels.
    fn deflaters() -> Vec<Deflater> {
        let mut all: Vec<Deflater> = [1, 6, 9]
            .map(|level| Deflater::new(level, DeflateEngine::ZlibRs))
            .into();
        all.extend((1..=9).map(|level| Deflater::new(level, DeflateEngine::Fastest)));
        all
    }

    /// Bytes that do not compress, from a fixed-seed xorshift.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect()
    }

    fn run(data: &[u8], deflater: Deflater) -> (Vec<u8>, u32) {
        let mut out = Vec::new();
        let crc = deflate(
            &mut Cursor::new(data),
            data.len() as u64,
            deflater,
            &mut |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            },
        )
        .unwrap();
        (out, crc)
    }

    fn inflate(compressed: &[u8]) -> Vec<u8> {
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(compressed)
            .read_to_end(&mut inflated)
            .unwrap();
        inflated
    }

    #[test]
    fn blocks_join_into_one_stream_that_inflates_back() {
        for deflater in deflaters() {
            for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 5 * BLOCK + 77] {
                let data = text(len);
                let (compressed, crc) = run(&data, deflater);
                assert_eq!(inflate(&compressed), data, "{deflater:?}, {len} bytes");
                assert_eq!(crc, crc32fast::hash(&data));
                if len > 1000 {
                    assert!(
                        compressed.len() < len / 3,
                        "{deflater:?}, {len}: {}",
                        compressed.len()
                    );
                }
            }
        }
    }

    #[test]
    fn incompressible_data_stays_within_the_bound_the_zip64_choice_uses() {
        let data = noise(9 * BLOCK + 3);
        for deflater in deflaters() {
            let (compressed, _) = run(&data, deflater);
            assert_eq!(inflate(&compressed), data, "{deflater:?}");
            let bound = deflater.max_output(data.len() as u64);
            assert!(
                compressed.len() as u64 <= bound,
                "{deflater:?}: {}",
                compressed.len()
            );
        }
    }

    #[test]
    fn the_same_data_gives_the_same_bytes() {
        let data = text(7 * BLOCK + 5);
        for deflater in deflaters() {
            let first = run(&data, deflater);
            for _ in 0..3 {
                // Other data between runs: a worker's previous block must not matter.
                run(&noise(2 * BLOCK), deflater);
                assert_eq!(run(&data, deflater), first, "{deflater:?}");
            }
        }
    }

    #[test]
    fn the_fastest_engine_uses_isal_exactly_where_it_is_built_in() {
        let expected = if DeflateEngine::ISAL_BUILT_IN {
            "ISA-L"
        } else {
            "zlib-rs"
        };
        for level in 1..=3 {
            assert_eq!(
                Deflater::new(level, DeflateEngine::Fastest).implementation(),
                expected
            );
            assert_eq!(
                Deflater::new(level, DeflateEngine::ZlibRs).implementation(),
                "zlib-rs"
            );
        }
        for level in [0, 4, 6, 9] {
            assert_eq!(
                Deflater::new(level, DeflateEngine::Fastest).implementation(),
                "zlib-rs"
            );
        }
    }

    #[test]
    fn a_short_reader_is_an_error() {
        let data = text(3 * BLOCK);
        for deflater in deflaters() {
            let error = deflate(
                &mut Cursor::new(&data[..2 * BLOCK]),
                data.len() as u64,
                deflater,
                &mut |_| Ok(()),
            )
            .unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        }
    }
}
