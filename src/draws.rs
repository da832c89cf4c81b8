//! The server's two generators with numbered draws, so that replicas
//! sharing a job store never draw the same value: each takes blocks of
//! draw numbers from the store ([`JobBackend::lease`]), and different
//! numbers give different values (always for the cosmetic generator; for
//! ChaCha20 words, with overwhelming probability).
//!
//! - Cosmetic: SplitMix64's n-th output is `splitmix64(seed + n·γ)` and
//!   `splitmix64` is a bijection, so disjoint numbers give distinct words
//!   (Dropbox job ids and request ids come from here).
//! - Secret, when a test pins its seed: ChaCha20 addressed by word
//!   position, leased in blocks. Unpinned secrets come from the OS-seeded
//!   ChaCha20 of each process as before: two replicas then share nothing,
//!   and a collision of 128-bit ids is out of reach.
//!
//! With one process the blocks follow each other, and both streams are
//! word for word what the plain generators gave (golden files depend on it).

use std::sync::Mutex;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zipgate_api::rng::splitmix64;

use crate::jobs::JobBackend;

/// SplitMix64's increment (γ).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// Draw numbers taken from the store at a time: one round trip per this
/// many draws once the store is remote.
const COSMETIC_BLOCK: u64 = 1024;
/// ChaCha20 words taken at a time (4 bytes each).
const SECRET_BLOCK: u64 = 4096;

/// A block of draw numbers: `next` up to `end`.
#[derive(Default)]
struct Block {
    next: u64,
    end: u64,
}

impl Block {
    /// `count` numbers in a row, leasing a new block of at least `block`
    /// from `jobs` when this one is short. A new block that starts where
    /// this one ends (one process) continues it without a gap.
    fn take(&mut self, count: u64, block: u64, name: &str, jobs: &dyn JobBackend) -> u64 {
        if self.end - self.next < count {
            let size = block.max(count);
            let start = jobs.lease(name, size);
            if start != self.end {
                self.next = start;
            }
            self.end = start + size;
        }
        let first = self.next;
        self.next += count;
        first
    }
}

pub struct Cosmetic {
    seed: u64,
    block: Mutex<Block>,
}

impl Cosmetic {
    pub fn new(seed: u64) -> Cosmetic {
        Cosmetic {
            seed,
            block: Mutex::new(Block::default()),
        }
    }

    pub fn next_u64(&self, jobs: &dyn JobBackend) -> u64 {
        let n = self.block.lock().unwrap_or_else(|e| e.into_inner()).take(
            1,
            COSMETIC_BLOCK,
            "cosmetic",
            jobs,
        );
        // SplitMix64 adds γ before mixing: draw 0 is splitmix64(seed + γ).
        splitmix64(
            self.seed
                .wrapping_add(GAMMA.wrapping_mul(n.wrapping_add(1))),
        )
    }
}

/// ChaCha20: its outputs do not reveal its key, so no number of observed
/// secrets predicts the next. Seeded from the OS unless a test pins it; a
/// pinned seed is expanded on its own stream, so it shares nothing with the
/// cosmetic SplitMix64 seeded by the same number.
pub struct Secret {
    rng: Mutex<(ChaCha20Rng, Block)>,
    pinned: bool,
}

impl Secret {
    pub fn new(seed: Option<u64>) -> Secret {
        let rng = match seed {
            Some(seed) => {
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                rng.set_stream(0x7365_6372_6574); // "secret"
                rng
            }
            None => ChaCha20Rng::from_os_rng(),
        };
        Secret {
            rng: Mutex::new((rng, Block::default())),
            pinned: seed.is_some(),
        }
    }

    pub fn fill(&self, out: &mut [u8], jobs: &dyn JobBackend) {
        let mut guard = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let (rng, block) = &mut *guard;
        if self.pinned {
            // ChaCha20 hands out whole 32-bit words: a draw of n bytes uses
            // ceil(n / 4) of them, the rest of the last one unused.
            let words = (out.len() as u64).div_ceil(4);
            let start = block.take(words, SECRET_BLOCK, "secret", jobs);
            if rng.get_word_pos() != u128::from(start) {
                rng.set_word_pos(u128::from(start));
            }
        }
        rng.fill_bytes(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::jobs::JobRegistry;
    use chrono::TimeZone;
    use std::sync::Arc;
    use zipgate_api::rng::SplitMix64;

    fn registry() -> JobRegistry {
        let clock = ManualClock::new(chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        JobRegistry::new(Arc::new(clock))
    }

    #[test]
    fn one_process_draws_what_the_plain_generators_drew() {
        let jobs = registry();
        let cosmetic = Cosmetic::new(7);
        let mut plain = SplitMix64::new(7);
        // Past a block boundary, so the next lease continues the stream.
        for _ in 0..3 * COSMETIC_BLOCK {
            assert_eq!(cosmetic.next_u64(&jobs), plain.next_u64());
        }
        let secret = Secret::new(Some(7));
        let mut plain = ChaCha20Rng::seed_from_u64(7);
        plain.set_stream(0x7365_6372_6574);
        // Odd sizes, so draws leave parts of words unused, across blocks.
        for size in (0..2_000).map(|i| 1 + i % 61) {
            let (mut ours, mut theirs) = (vec![0u8; size], vec![0u8; size]);
            secret.fill(&mut ours, &jobs);
            plain.fill_bytes(&mut theirs);
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn two_processes_on_one_store_never_draw_the_same_value() {
        let shared = registry();
        let (a, b) = (Cosmetic::new(0), Cosmetic::new(0));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2 * COSMETIC_BLOCK + 5 {
            assert!(seen.insert(a.next_u64(&shared)));
            assert!(seen.insert(b.next_u64(&shared)));
        }
        let (a, b) = (Secret::new(Some(1)), Secret::new(Some(1)));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3_000 {
            let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
            a.fill(&mut x, &shared);
            b.fill(&mut y, &shared);
            assert!(seen.insert(x) && seen.insert(y));
        }
        // Each with a store of its own (no sharing): the same values, as
        // the same seed always gave.
        let (one, other) = (registry(), registry());
        assert_eq!(
            Cosmetic::new(0).next_u64(&one),
            Cosmetic::new(0).next_u64(&other)
        );
    }

    #[test]
    fn a_draw_bigger_than_a_block_gets_a_block_its_size() {
        let jobs = registry();
        let secret = Secret::new(Some(3));
        let mut big = vec![0u8; (SECRET_BLOCK as usize) * 4 + 10];
        secret.fill(&mut big, &jobs);
        let mut plain = ChaCha20Rng::seed_from_u64(3);
        plain.set_stream(0x7365_6372_6574);
        let mut theirs = vec![0u8; big.len()];
        plain.fill_bytes(&mut theirs);
        assert_eq!(big, theirs);
        // Leased whole: the next lease starts past every word it used.
        let words = (big.len() as u64).div_ceil(4);
        assert!(jobs.lease("secret", 1) >= words);
    }

    #[test]
    fn the_secret_generator_is_not_the_cosmetic_one() {
        // Same seed: the ChaCha stream shares no output with SplitMix64's.
        let jobs = registry();
        let cosmetic = Cosmetic::new(7);
        let cosmetic: Vec<u64> = (0..64).map(|_| cosmetic.next_u64(&jobs)).collect();
        let secret = Secret::new(Some(7));
        let secret: Vec<u64> = (0..64)
            .map(|_| {
                let mut word = [0u8; 8];
                secret.fill(&mut word, &jobs);
                u64::from_le_bytes(word)
            })
            .collect();
        assert!(secret.iter().all(|s| !cosmetic.contains(s)));
    }

    #[test]
    fn a_reset_does_not_restart_the_draws() {
        let jobs = registry();
        let cosmetic = Cosmetic::new(0);
        let before: Vec<u64> = (0..COSMETIC_BLOCK + 1)
            .map(|_| cosmetic.next_u64(&jobs))
            .collect();
        jobs.clear();
        // A process started after the reset, on the same store.
        let later = Cosmetic::new(0);
        assert!(!before.contains(&later.next_u64(&jobs)));
    }

    #[test]
    fn unpinned_secrets_come_from_the_os_and_differ() {
        let jobs = registry();
        let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
        Secret::new(None).fill(&mut x, &jobs);
        Secret::new(None).fill(&mut y, &jobs);
        assert_ne!(x, y);
    }
}
