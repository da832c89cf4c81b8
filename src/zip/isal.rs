//! ISA-L's igzip through the C shim in `isal_shim.c` (linked by build.rs when
//! the library is installed): raw deflate of one block, as zlib-rs does it
//! in `parallel.rs`, about 2.5x faster per core at levels 1–3.

use std::cell::RefCell;
use std::io;
use std::ptr::NonNull;

#[repr(C)]
struct Shim {
    _private: [u8; 0],
}

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

/// One compressor per worker thread (about 400 KiB): `begin` starts every
/// block afresh, so what a worker compressed before cannot leak into it.
struct Compressor(NonNull<Shim>);

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

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
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
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let shim = match slot.as_ref() {
            Some(compressor) => compressor.0.as_ptr(),
            None => slot.insert(Compressor::new()?).0.as_ptr(),
        };
        // SAFETY: shim is live for this thread; the dictionary slice outlives the call.
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
