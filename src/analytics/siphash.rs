//! SipHash-2-4, the keyed 64-bit hash behind experiment assignment.
//!
//! Written from the specification (Aumasson & Bernstein, "SipHash: a fast short-input PRF",
//! INDOCRYPT 2012, <https://eprint.iacr.org/2012/351>) rather than taken from `std`, whose
//! `DefaultHasher` is explicitly allowed to change between Rust releases. The output for a given
//! key and message is fixed by the paper: the 64 reference vectors of the authors'
//! implementation (key `00 01 … 0f`, messages `[]`, `[00]`, `[00 01]`, … `[00 … 3e]`) are checked
//! in this module's tests, so the assignment of a user to an arm is the same on every platform,
//! in every process and in every version of this crate.
//!
//! ```
//! use coupons::analytics::siphash::{siphash24, REFERENCE_KEY};
//! // The paper's Appendix A: key 00..0f, message 00..0e (15 bytes).
//! let msg: Vec<u8> = (0u8..15).collect();
//! assert_eq!(siphash24(REFERENCE_KEY, &msg), 0xa129_ca61_49be_45e5);
//! ```

/// The key of the paper's test vectors, bytes `00 01 02 … 0f`; experiment assignment uses it
/// (the experiment's salt, not the key, is what makes two experiments independent).
pub const REFERENCE_KEY: [u8; 16] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
];

/// SipHash-2-4 of `message` under the 128-bit `key` (read as two little-endian 64-bit words,
/// as in the specification).
///
/// ```
/// use coupons::analytics::siphash::{siphash24, REFERENCE_KEY};
/// assert_eq!(siphash24(REFERENCE_KEY, b""), 0x726f_db47_dd0e_0e31);
/// ```
///
/// # Panics
/// Never.
pub fn siphash24(key: [u8; 16], message: &[u8]) -> u64 {
    let mut h = Sip24::new(key);
    h.write(message);
    h.finish()
}

/// Streaming SipHash-2-4: bytes may arrive in any number of pieces; the result depends only on
/// their concatenation. Cloning a state that has absorbed a common prefix lets the prefix be
/// hashed once.
#[derive(Clone, Debug)]
pub(crate) struct Sip24 {
    v: [u64; 4],
    /// Bytes not yet compressed (fewer than 8), packed little-endian in the low bytes.
    tail: u64,
    /// How many bytes are in `tail`.
    ntail: u32,
    /// Total message length in bytes (only its low 8 bits enter the hash, as specified).
    len: u64,
}

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

fn word(bytes: [u8; 8]) -> u64 {
    u64::from_le_bytes(bytes)
}

/// Up to 8 bytes as a little-endian word, zero-padded.
#[inline(always)]
fn partial_word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    if let Some(dst) = w.get_mut(..bytes.len()) {
        dst.copy_from_slice(bytes);
    }
    word(w)
}

impl Sip24 {
    pub(crate) fn new(key: [u8; 16]) -> Sip24 {
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            b0,
            b1,
            b2,
            b3,
            b4,
            b5,
            b6,
            b7,
        ] = key;
        let k0 = word([a0, a1, a2, a3, a4, a5, a6, a7]);
        let k1 = word([b0, b1, b2, b3, b4, b5, b6, b7]);
        Sip24 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        round(&mut self.v);
        round(&mut self.v);
        self.v[0] ^= m;
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.len = self.len.wrapping_add(bytes.len() as u64);
        let mut rest = bytes;
        if self.ntail != 0 {
            // Top up the partial word first.
            let take = (8 - self.ntail as usize).min(rest.len());
            let (head, after) = rest.split_at(take);
            self.tail |= partial_word(head) << (8 * self.ntail);
            self.ntail += take as u32;
            rest = after;
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut chunks = rest.chunks_exact(8);
        for c in &mut chunks {
            self.compress(partial_word(c));
        }
        let remainder = chunks.remainder();
        self.tail = partial_word(remainder);
        self.ntail = remainder.len() as u32;
    }

    pub(crate) fn finish(&self) -> u64 {
        let mut s = self.clone();
        let b = ((s.len & 0xff) << 56) | s.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..4 {
            round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vectors_sip64` of the reference implementation (github.com/veorq/SipHash, vectors.h),
    /// each read as a little-endian u64: SipHash-2-4 under key 00..0f of the message
    /// `00 01 … (i-1)` for i = 0..63.
    pub(crate) const REFERENCE_VECTORS: [u64; 64] = [
        0x726fdb47dd0e0e31,
        0x74f839c593dc67fd,
        0x0d6c8009d9a94f5a,
        0x85676696d7fb7e2d,
        0xcf2794e0277187b7,
        0x18765564cd99a68d,
        0xcbc9466e58fee3ce,
        0xab0200f58b01d137,
        0x93f5f5799a932462,
        0x9e0082df0ba9e4b0,
        0x7a5dbbc594ddb9f3,
        0xf4b32f46226bada7,
        0x751e8fbc860ee5fb,
        0x14ea5627c0843d90,
        0xf723ca908e7af2ee,
        0xa129ca6149be45e5,
        0x3f2acc7f57c29bdb,
        0x699ae9f52cbe4794,
        0x4bc1b3f0968dd39c,
        0xbb6dc91da77961bd,
        0xbed65cf21aa2ee98,
        0xd0f2cbb02e3b67c7,
        0x93536795e3a33e88,
        0xa80c038ccd5ccec8,
        0xb8ad50c6f649af94,
        0xbce192de8a85b8ea,
        0x17d835b85bbb15f3,
        0x2f2e6163076bcfad,
        0xde4daaaca71dc9a5,
        0xa6a2506687956571,
        0xad87a3535c49ef28,
        0x32d892fad841c342,
        0x7127512f72f27cce,
        0xa7f32346f95978e3,
        0x12e0b01abb051238,
        0x15e034d40fa197ae,
        0x314dffbe0815a3b4,
        0x027990f029623981,
        0xcadcd4e59ef40c4d,
        0x9abfd8766a33735c,
        0x0e3ea96b5304a7d0,
        0xad0c42d6fc585992,
        0x187306c89bc215a9,
        0xd4a60abcf3792b95,
        0xf935451de4f21df2,
        0xa9538f0419755787,
        0xdb9acddff56ca510,
        0xd06c98cd5c0975eb,
        0xe612a3cb9ecba951,
        0xc766e62cfcadaf96,
        0xee64435a9752fe72,
        0xa192d576b245165a,
        0x0a8787bf8ecb74b2,
        0x81b3e73d20b49b6f,
        0x7fa8220ba3b2ecea,
        0x245731c13ca42499,
        0xb78dbfaf3a8d83bd,
        0xea1ad565322a1a0b,
        0x60e61c23a3795013,
        0x6606d7e446282b93,
        0x6ca4ecb15c5f91e1,
        0x9f626da15c9625f3,
        0xe51b38608ef25f57,
        0x958a324ceb064572,
    ];

    #[test]
    fn matches_the_reference_vectors() {
        let msg: Vec<u8> = (0u8..64).collect();
        for (i, want) in REFERENCE_VECTORS.iter().enumerate() {
            assert_eq!(siphash24(REFERENCE_KEY, &msg[..i]), *want, "length {i}");
        }
    }

    #[test]
    fn streaming_in_pieces_equals_one_shot() {
        let msg: Vec<u8> = (0u8..64).collect();
        for len in 0..64 {
            for cut1 in 0..=len {
                for cut2 in cut1..=len {
                    let mut h = Sip24::new(REFERENCE_KEY);
                    h.write(&msg[..cut1]);
                    h.write(&msg[cut1..cut2]);
                    h.write(&msg[cut2..len]);
                    assert_eq!(h.finish(), REFERENCE_VECTORS[len], "{len} {cut1} {cut2}");
                }
            }
        }
    }

    #[test]
    fn another_key_gives_other_values() {
        let mut key = REFERENCE_KEY;
        key[0] = 0xff;
        assert_ne!(siphash24(key, b""), REFERENCE_VECTORS[0]);
    }
}
