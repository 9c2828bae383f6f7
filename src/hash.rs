//! A fast hasher for the crate's in-memory tables whose keys are short (ids, packed integers):
//! the multiply-rotate hash in the manner of the Rust compiler's FxHash, with a final avalanche
//! and a per-table seed drawn from the standard library's random state. Used by `targeting`'s
//! per-user tables, `issuing`'s user histories (hashed once or twice per event, where SipHash
//! would take a third of a decision's time) and `analytics::report`'s interned dimensions and groups.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Seeds a [`FastHasher`]; each table draws its seed from `std`'s random state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastBuild(u64);

impl Default for FastBuild {
    fn default() -> Self {
        FastBuild(std::collections::hash_map::RandomState::new().hash_one(0x9e37_79b9_u64) | 1)
    }
}

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// Feeds `bytes` to `add` as little-endian words: every whole eight-byte chunk, then a
/// partial tail as one more word marked with its length (so texts of different lengths
/// differ) — the last eight bytes, overlapping the last chunk, when the text has that many;
/// else the tail's bytes folded into a word (no call to `memcpy`). The word loop of every
/// multiply-rotate hasher in the crate (this module's and the in-memory store's).
#[inline]
pub(crate) fn for_words(bytes: &[u8], mut add: impl FnMut(u64)) {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        add(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() && bytes.len() >= 8 {
        let mut w = [0u8; 8];
        if let Some(last) = bytes.get(bytes.len() - 8..) {
            w.copy_from_slice(last);
        }
        add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
    } else if !rest.is_empty() {
        let w = rest
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b));
        add(w ^ ((rest.len() as u64) << 59));
    }
}

/// A multiply-rotate hasher (in the manner of FxHash) with a final avalanche.
pub(crate) struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for_words(bytes, |w| self.mix(w));
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    /// The running value, avalanched: the multiply-rotate steps leave the low bits, which pick
    /// the bucket, depending on few input bits.
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29)
    }
}

/// A `HashMap` with the fast hasher.
pub(crate) type FastMap<K, V> = HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn packed_keys_spread_over_buckets() {
        // Small integers in every word (as interned ids are) still reach many buckets by their
        // low bits.
        let b = FastBuild::default();
        let mut low = HashSet::new();
        for day in 0..30u64 {
            for t in 0..50u64 {
                let mut h = b.build_hasher();
                h.write_u64(day | (t << 32));
                h.write_u64(1);
                low.insert(h.finish() & 0xfff);
            }
        }
        assert!(low.len() > 1_000, "{}", low.len());
    }

    #[test]
    fn text_of_different_lengths_differs() {
        let b = FastBuild::default();
        assert_ne!(b.hash_one("a"), b.hash_one("a\0"));
        assert_eq!(b.hash_one("template-01"), b.hash_one("template-01"));
    }
}
