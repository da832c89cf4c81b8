//! ISA-L's igzip through the C shim in `isal_shim.c` (linked by build.rs when
//! the library is installed): raw deflate of one block, as zlib-rs does it
//! in `parallel.rs`, about 2.5x faster per core at levels 1–3.
//!
//! Compiled with the `isal` feature whether or not the library was found,
//! so it is checked and linted on every machine; without the library the
//! shim's functions are stand-ins that offer no level, and nothing calls
//! the rest.

use std::io;
use std::ptr::NonNull;
use std::sync::Mutex;

#[repr(C)]
struct Shim {
    _private: [u8; 0],
}

#[cfg(zipgate_isal)]
extern "C" {
    fn zipgate_isal_new() -> *mut Shim;
    fn zipgate_isal_free(shim: *mut Shim);
    fn zipgate_isal_max_level() -> u32;
    fn zipgate_isal_begin(
        shim: *mut Shim,
        level: u32,
        dict: *const u8,
        dict_len: u32,
        last: i32,
    ) -> i32;
    fn zipgate_isal_run(
        shim: *mut Shim,
        input: *const u8,
        input_len: u32,
        out: *mut u8,
        out_capacity: u32,
        consumed: *mut u32,
        produced: *mut u32,
        finished: *mut i32,
    ) -> i32;
}

/// The shim's functions in a build without the library: no level is
/// offered (`max_level` 0), so `Deflater` never picks ISA-L and the others
/// are never called; they fail safely if they were.
#[cfg(not(zipgate_isal))]
mod absent {
    #![allow(clippy::missing_safety_doc)]
    use super::Shim;

    pub unsafe fn zipgate_isal_new() -> *mut Shim {
        std::ptr::null_mut()
    }
    pub unsafe fn zipgate_isal_free(_: *mut Shim) {}
    pub unsafe fn zipgate_isal_max_level() -> u32 {
        0
    }
    pub unsafe fn zipgate_isal_begin(_: *mut Shim, _: u32, _: *const u8, _: u32, _: i32) -> i32 {
        -1
    }
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn zipgate_isal_run(
        _: *mut Shim,
        _: *const u8,
        _: u32,
        _: *mut u8,
        _: u32,
        _: *mut u32,
        _: *mut u32,
        _: *mut i32,
    ) -> i32 {
        -1
    }
}
#[cfg(not(zipgate_isal))]
use absent::*;

/// ISA-L's stream state and level buffer (about 400 KiB). `begin` starts
/// every block afresh, so what it compressed before cannot leak into a block.
struct Compressor(NonNull<Shim>);

// SAFETY: the state is plain memory owned by this value, not tied to a thread.
unsafe impl Send for Compressor {}

impl Compressor {
    fn new() -> io::Result<Compressor> {
        // SAFETY: returns a malloc'd block or null; nothing else is assumed.
        NonNull::new(unsafe { zipgate_isal_new() })
            .map(Compressor)
            .ok_or_else(|| io::Error::other("out of memory for an ISA-L compressor"))
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from zipgate_isal_new and is freed once.
        unsafe { zipgate_isal_free(self.0.as_ptr()) }
    }
}

/// Compressors between blocks: reused, because a fresh one costs page
/// faults, and shared rather than per thread, because every download thread
/// that deflates a small entry would otherwise keep one.
static IDLE: Mutex<Vec<Compressor>> = Mutex::new(Vec::new());
/// Enough for the deflate pool and a few small entries at once.
const MAX_IDLE: usize = 16;

fn with_compressor<T>(work: impl FnOnce(*mut Shim) -> io::Result<T>) -> io::Result<T> {
    let idle = IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let compressor = match idle {
        Some(compressor) => compressor,
        None => Compressor::new()?,
    };
    let result = work(compressor.0.as_ptr());
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    if idle.len() < MAX_IDLE {
        idle.push(compressor);
    }
    result
}

/// The highest level ISA-L offers (3); higher levels go to zlib-rs.
pub fn max_level() -> u32 {
    // SAFETY: a constant from the library's header.
    unsafe { zipgate_isal_max_level() }
}

fn check(code: i32, what: &str) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ISA-L {what} failed with code {code}"
        )))
    }
}

/// Raw deflate of one block at `level` (1–3); a sync flush ends it unless it
/// is the last.
pub fn compress_block(
    level: u32,
    dictionary: Option<&[u8]>,
    input: &[u8],
    last: bool,
) -> io::Result<Vec<u8>> {
    let too_big = || io::Error::other("a deflate block over 4 GiB");
    let input_len = u32::try_from(input.len()).map_err(|_| too_big())?;
    let dictionary = dictionary.unwrap_or_default();
    let dictionary_len = u32::try_from(dictionary.len()).map_err(|_| too_big())?;
    with_compressor(|shim| {
        // SAFETY: shim is ours until the closure returns; the dictionary outlives the call.
        let begun = unsafe {
            zipgate_isal_begin(
                shim,
                level,
                dictionary.as_ptr(),
                dictionary_len,
                i32::from(last),
            )
        };
        check(begun, "set-up")?;
        // Stored blocks bound the growth: 5 bytes per 64 KiB, plus headers.
        let mut out: Vec<u8> = Vec::with_capacity(input.len() + input.len() / 1024 + 1024);
        let mut offset = 0usize;
        loop {
            let spare = out.spare_capacity_mut();
            let spare_len = u32::try_from(spare.len()).unwrap_or(u32::MAX);
            let (mut consumed, mut produced, mut finished) = (0u32, 0u32, 0i32);
            // SAFETY: input[offset..] and the spare capacity are valid for the
            // lengths given; the shim writes at most spare_len bytes.
            let code = unsafe {
                zipgate_isal_run(
                    shim,
                    input[offset..].as_ptr(),
                    input_len - offset as u32,
                    spare.as_mut_ptr().cast::<u8>(),
                    spare_len,
                    &mut consumed,
                    &mut produced,
                    &mut finished,
                )
            };
            check(code, "deflate")?;
            offset += consumed as usize;
            // SAFETY: the shim initialised `produced` bytes of the spare capacity.
            unsafe { out.set_len(out.len() + produced as usize) };
            if finished != 0 {
                return Ok(out);
            }
            out.reserve(out.capacity().max(4096));
        }
    })
}
