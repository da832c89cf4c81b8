//! Byte layouts of the zip records we write (APPNOTE 6.3.x). Each builder is
//! used both to measure an archive and to write it, so the two cannot drift.

use chrono::{DateTime, Datelike, Timelike, Utc};

pub const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
pub const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
pub const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
pub const EOCD_SIG: u32 = 0x0605_4b50;
pub const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
pub const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;

pub const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
pub const FLAG_UTF8: u16 = 1 << 11;
pub const METHOD_STORE: u16 = 0;
pub const METHOD_DEFLATE: u16 = 8;

const MAX32: u64 = 0xFFFF_FFFF;
const MAX16: u64 = 0xFFFF;
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// Made by Unix, so readers honour the permission bits in the external attributes.
const MADE_BY_UNIX: u16 = 3 << 8;

/// Entry names are stored with a 16-bit length.
pub const MAX_NAME_BYTES: usize = u16::MAX as usize;

/// Everything about one entry that its headers record.
#[derive(Clone, Debug)]
pub struct EntryRecord<'a> {
    pub name: &'a str,
    /// The UTF-8 flag even on an ASCII name.
    pub utf8: bool,
    pub is_dir: bool,
    pub method: u16,
    pub mtime: DateTime<Utc>,
    pub crc: u32,
    pub compressed: u64,
    pub uncompressed: u64,
    pub local_offset: u64,
    /// Sizes follow the data in a descriptor (streamed deflate).
    pub descriptor: bool,
    /// Sizes may pass 4 GiB: ZIP64 extra in the local header and 8-byte descriptor sizes.
    pub zip64: bool,
}

impl EntryRecord<'_> {
    fn flags(&self) -> u16 {
        let mut flags = 0;
        if self.utf8 || !self.name.is_ascii() {
            flags |= FLAG_UTF8;
        }
        if self.descriptor {
            flags |= FLAG_DATA_DESCRIPTOR;
        }
        flags
    }

    fn version_needed(&self, zip64: bool) -> u16 {
        if zip64 {
            VERSION_ZIP64
        } else {
            VERSION_DEFAULT
        }
    }

    fn external_attributes(&self) -> u32 {
        if self.is_dir {
            (0o040755 << 16) | 0x10
        } else {
            0o100644 << 16
        }
    }
}

/// MS-DOS date and time, clamped to the range the format can hold.
pub fn dos_datetime(t: DateTime<Utc>) -> (u16, u16) {
    if t.year() < 1980 {
        return (0, (1 << 5) | 1);
    }
    if t.year() > 2107 {
        return ((23 << 11) | (59 << 5) | 29, (127 << 9) | (12 << 5) | 31);
    }
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | ((t.second() as u16) / 2);
    let date = (((t.year() - 1980) as u16) << 9) | ((t.month() as u16) << 5) | (t.day() as u16);
    (time, date)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn clamp32(v: u64) -> u32 {
    v.min(MAX32) as u32
}

pub fn local_header(e: &EntryRecord, out: &mut Vec<u8>) {
    let (time, date) = dos_datetime(e.mtime);
    put32(out, LOCAL_HEADER_SIG);
    put16(out, e.version_needed(e.zip64));
    put16(out, e.flags());
    put16(out, e.method);
    put16(out, time);
    put16(out, date);
    if e.descriptor {
        // CRC and sizes follow the data.
        put32(out, 0);
        put32(out, if e.zip64 { u32::MAX } else { 0 });
        put32(out, if e.zip64 { u32::MAX } else { 0 });
    } else {
        put32(out, e.crc);
        put32(
            out,
            if e.zip64 {
                u32::MAX
            } else {
                e.compressed as u32
            },
        );
        put32(
            out,
            if e.zip64 {
                u32::MAX
            } else {
                e.uncompressed as u32
            },
        );
    }
    put16(out, e.name.len() as u16);
    put16(out, if e.zip64 { 20 } else { 0 });
    out.extend_from_slice(e.name.as_bytes());
    if e.zip64 {
        put16(out, 0x0001);
        put16(out, 16);
        let known = !e.descriptor;
        put64(out, if known { e.uncompressed } else { 0 });
        put64(out, if known { e.compressed } else { 0 });
    }
}

pub fn data_descriptor(e: &EntryRecord, out: &mut Vec<u8>) {
    put32(out, DATA_DESCRIPTOR_SIG);
    put32(out, e.crc);
    if e.zip64 {
        put64(out, e.compressed);
        put64(out, e.uncompressed);
    } else {
        put32(out, e.compressed as u32);
        put32(out, e.uncompressed as u32);
    }
}

pub fn central_header(e: &EntryRecord, out: &mut Vec<u8>) {
    let (time, date) = dos_datetime(e.mtime);
    let offset_overflows = e.local_offset >= MAX32;
    let sizes_overflow = e.uncompressed >= MAX32 || e.compressed >= MAX32;
    // Whenever a ZIP64 extra is needed, it carries both sizes: Info-ZIP
    // misreads an extra that holds only the offset (or only one size) after
    // an earlier ZIP64 entry, and the spec allows the fuller form.
    let mut extra = Vec::new();
    if sizes_overflow || offset_overflows {
        put64(&mut extra, e.uncompressed);
        put64(&mut extra, e.compressed);
        if offset_overflows {
            put64(&mut extra, e.local_offset);
        }
    }
    let zip64 = !extra.is_empty() || e.zip64;
    put32(out, CENTRAL_HEADER_SIG);
    put16(out, MADE_BY_UNIX | e.version_needed(zip64));
    put16(out, e.version_needed(zip64));
    put16(out, e.flags());
    put16(out, e.method);
    put16(out, time);
    put16(out, date);
    put32(out, e.crc);
    let (compressed, uncompressed) = if extra.is_empty() {
        (e.compressed as u32, e.uncompressed as u32)
    } else {
        (u32::MAX, u32::MAX)
    };
    put32(out, compressed);
    put32(out, uncompressed);
    put16(out, e.name.len() as u16);
    put16(
        out,
        if extra.is_empty() {
            0
        } else {
            4 + extra.len() as u16
        },
    );
    put16(out, 0); // comment
    put16(out, 0); // disk
    put16(out, 0); // internal attributes
    put32(out, e.external_attributes());
    put32(out, clamp32(e.local_offset));
    out.extend_from_slice(e.name.as_bytes());
    if !extra.is_empty() {
        put16(out, 0x0001);
        put16(out, extra.len() as u16);
        out.extend_from_slice(&extra);
    }
}

/// End of central directory, with the ZIP64 record and locator in front when
/// any count or offset overflows the classic fields.
pub fn end_records(entries: u64, cd_offset: u64, cd_size: u64, out: &mut Vec<u8>) {
    let zip64 = entries >= MAX16 || cd_offset >= MAX32 || cd_size >= MAX32;
    if zip64 {
        // The emitter keeps positions below 2^64; saturating keeps this so.
        let record_offset = cd_offset.saturating_add(cd_size);
        put32(out, ZIP64_EOCD_SIG);
        put64(out, 44);
        put16(out, MADE_BY_UNIX | VERSION_ZIP64);
        put16(out, VERSION_ZIP64);
        put32(out, 0);
        put32(out, 0);
        put64(out, entries);
        put64(out, entries);
        put64(out, cd_size);
        put64(out, cd_offset);
        put32(out, ZIP64_LOCATOR_SIG);
        put32(out, 0);
        put64(out, record_offset);
        put32(out, 1);
    }
    put32(out, EOCD_SIG);
    put16(out, 0);
    put16(out, 0);
    put16(out, entries.min(MAX16) as u16);
    put16(out, entries.min(MAX16) as u16);
    put32(out, clamp32(cd_size));
    put32(out, clamp32(cd_offset));
    put16(out, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dos_time_encodes_and_clamps() {
        let t = Utc.with_ymd_and_hms(2024, 4, 2, 8, 30, 11).unwrap();
        assert_eq!(
            dos_datetime(t),
            ((8 << 11) | (30 << 5) | 5, (44 << 9) | (4 << 5) | 2)
        );
        let old = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(dos_datetime(old), (0, 33));
    }

    #[test]
    fn zip64_end_records_only_when_needed() {
        let mut small = Vec::new();
        end_records(3, 100, 50, &mut small);
        assert_eq!(small.len(), 22);
        let mut many = Vec::new();
        end_records(70_000, 100, 50, &mut many);
        assert_eq!(many.len(), 22 + 56 + 20);
    }
}
