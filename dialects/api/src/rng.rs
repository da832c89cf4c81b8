//! Two kinds of randomness. Cosmetic values (request ids, conflict renames,
//! trace ids) come from a small seeded generator (SplitMix64): reproducible
//! with `--seed`, but its state can be recovered from a single output, so it
//! must never make anything that grants access. Secrets (download ids that
//! are the capability, archive keys, job ids that fetch a package) are drawn
//! with [`secret_append`] and [`secret_guid`] from [`Core::fill_secret`], the
//! server's cryptographic generator.

use crate::Core;

pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// A lower-case, hyphenated version 4 GUID (`Guid.NewGuid().ToString()`).
    pub fn guid(&mut self) -> String {
        let a = (self.next_u64() & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000;
        let b = (self.next_u64() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    /// `len` characters drawn uniformly enough from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        let mut out = String::with_capacity(len);
        self.append(&mut out, alphabet, len);
        out
    }

    /// As `string`, onto the end of `out` (one allocation for a composite id).
    pub fn append(&mut self, out: &mut String, alphabet: &[u8], len: usize) {
        out.extend(
            (0..len).map(|_| alphabet[(self.next_u64() % alphabet.len() as u64) as usize] as char),
        );
    }
}

/// Appends `len` characters drawn uniformly from `alphabet` (at most 256
/// symbols) with bytes from the server's cryptographic generator. Bytes past
/// the largest multiple of the alphabet's size are rejected, so no symbol is
/// likelier than another (a plain modulo would favour the first ones).
pub fn secret_append(core: &dyn Core, out: &mut String, alphabet: &[u8], len: usize) {
    secret_draw(core).append(out, alphabet, len);
}

/// Draws several secret strings from one buffer of the cryptographic
/// generator, so a composite id (Box's has three parts) takes its lock once.
pub struct SecretDraw<F: FnMut(&mut [u8])> {
    fill: F,
    buf: [u8; 128],
    used: usize,
}

/// A [`SecretDraw`] over the server's cryptographic generator.
pub fn secret_draw(core: &dyn Core) -> SecretDraw<impl FnMut(&mut [u8]) + '_> {
    SecretDraw::from_fill(move |buf: &mut [u8]| core.fill_secret(buf))
}

impl<F: FnMut(&mut [u8])> SecretDraw<F> {
    fn from_fill(fill: F) -> Self {
        SecretDraw {
            fill,
            buf: [0; 128],
            used: 128,
        }
    }

    /// Appends `len` symbols of `alphabet` (see [`secret_append`]).
    pub fn append(&mut self, out: &mut String, alphabet: &[u8], len: usize) {
        assert!(
            !alphabet.is_empty() && alphabet.len() <= 256,
            "alphabet of 1..=256 symbols"
        );
        let n = alphabet.len();
        let limit = 256 - 256 % n;
        let mut written = 0;
        out.reserve(len);
        while written < len {
            if self.used == self.buf.len() {
                (self.fill)(&mut self.buf);
                self.used = 0;
            }
            let byte = usize::from(self.buf[self.used]);
            self.used += 1;
            if byte < limit {
                out.push(alphabet[byte % n] as char);
                written += 1;
            }
        }
    }
}

/// A secret string of `len` characters from `alphabet` (see [`secret_append`]).
pub fn secret_string(core: &dyn Core, alphabet: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    secret_append(core, &mut out, alphabet, len);
    out
}

/// A lower-case, hyphenated version 4 GUID with 122 bits from the server's
/// cryptographic generator (what `Guid.NewGuid()` gives on .NET).
pub fn secret_guid(core: &dyn Core) -> String {
    let mut bytes = [0u8; 16];
    core.fill_secret(&mut bytes);
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let v = u128::from_be_bytes(bytes);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xFFFF,
        (v >> 64) & 0xFFFF,
        (v >> 48) & 0xFFFF,
        v & 0xFFFF_FFFF_FFFF
    )
}

pub const LOWER_ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// FNV-1a: a stable hash for deriving ids from names (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_symbols_are_unbiased() {
        // Bytes 200..=255 then 0..: a modulo would map 250..=255 onto the
        // digits 0-5 and stop short of 194..=199; rejection skips them, so
        // each digit is drawn 25 times.
        let mut next = 200u8;
        let fill = move |buf: &mut [u8]| {
            for b in buf {
                *b = next;
                next = next.wrapping_add(1);
            }
        };
        let mut out = String::new();
        SecretDraw::from_fill(fill).append(&mut out, b"0123456789", 250);
        for digit in '0'..='9' {
            assert_eq!(out.chars().filter(|c| *c == digit).count(), 25, "{digit}");
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        assert_eq!(a.string(LOWER_ALNUM, 6), b.string(LOWER_ALNUM, 6));
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
