//! Addresses and networks written into a subject key exactly as `Display` writes them
//! (`203.0.113.7`, `2001:db8::1`, `::ffff:192.0.2.1`, `2001:db8:abcd:12::/64`): by hand, into a
//! small buffer appended at once, with no allocation and no formatter.

use std::net::{IpAddr, Ipv6Addr};

use super::subject::KeyWriter;

/// Appends an address as `Display` writes it.
pub(super) fn push_ip(out: &mut KeyWriter, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => push_ipv4(out, a.octets(), None),
        IpAddr::V6(a) => push_ipv6(out, a, None),
    }
}

/// A small buffer an address is written into, eight bytes at a time: a write puts a word and
/// keeps its first `count` bytes (the rest are overwritten by what follows or lie past the
/// text). Eight groups of `:ffff` and `/128` take 44 bytes.
struct Text {
    bytes: [u8; 56],
    len: usize,
}

impl Text {
    #[inline(always)]
    fn new() -> Text {
        Text {
            bytes: [0; 56],
            len: 0,
        }
    }

    /// Writes `word`'s bytes (first byte first) and keeps the first `count`.
    #[inline(always)]
    fn put(&mut self, word: u64, count: usize) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + 8) {
            dst.copy_from_slice(&word.to_be_bytes());
            self.len += count;
        }
    }

    /// A `:`.
    #[inline(always)]
    fn colon(&mut self) {
        self.put(u64::from(b':') << 56, 1);
    }

    /// A group: `:` and its lowercase hexadecimal digits without leading zeros.
    #[inline(always)]
    fn group(&mut self, g: u16) {
        let [hi, lo] = g.to_be_bytes();
        let [a, b] = HEX.get(usize::from(hi)).copied().unwrap_or_default();
        let [c, d] = HEX.get(usize::from(lo)).copied().unwrap_or_default();
        // 1 to 4 digits: `g | 1` has at most 15 leading zeros.
        let digits = (19 - (g | 1).leading_zeros()) / 4;
        let word = u64::from(u32::from_be_bytes([a, b, c, d]) << (8 * (4 - digits)));
        self.put(u64::from(b':') << 56 | word << 24, 1 + digits as usize);
    }

    /// `/len`.
    #[inline(always)]
    fn prefix(&mut self, len: u8) {
        let (d, count) = decimal(len);
        self.put(
            u64::from_be_bytes([b'/', d[0], d[1], d[2], 0, 0, 0, 0]),
            1 + count,
        );
    }

    /// Appends the text from its second byte on: every group is written with a `:` before
    /// it, so the first byte is a placeholder.
    #[inline(always)]
    fn append_to(&self, out: &mut KeyWriter) {
        out.push_ascii_text(self.bytes.get(1..self.len).unwrap_or_default());
    }
}

/// Every byte's two lowercase hexadecimal digits.
const HEX: [[u8; 2]; 256] = {
    let digits = *b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut n = 0usize;
    while n < 256 {
        t[n] = [digits[n >> 4], digits[n & 0xf]];
        n += 1;
    }
    t
};

/// Appends an IPv6 address as `Display` writes it, then `/len` when given: an IPv4-mapped
/// address as `::ffff:` and its IPv4 form; else lowercase hexadecimal groups without leading
/// zeros, the longest run of two or more zero groups (the first of equal runs) written `::`.
fn push_ipv6(out: &mut KeyWriter, a: Ipv6Addr, len: Option<u8>) {
    if let Some(v4) = a.to_ipv4_mapped() {
        out.push_str("::ffff:");
        push_ipv4(out, v4.octets(), len);
        return;
    }
    let seg = a.segments();
    // The zero groups as bits (bit i: group i); `m &= m >> 1` keeps the bits that start a
    // run one longer each time, so the last nonzero `m` marks where the longest runs start
    // (its lowest bit the first of them) and the number of steps is their length.
    let mut m = seg
        .iter()
        .enumerate()
        .fold(0u32, |z, (i, &g)| z | u32::from(g == 0) << i);
    let (mut zeros_at, mut zeros) = (0usize, 0usize);
    while m != 0 {
        zeros_at = m.trailing_zeros() as usize;
        zeros += 1;
        m &= m >> 1;
    }
    // `::` is one more `:` after the groups before it (two at the start, three for `::`
    // alone).
    let mut t = Text::new();
    if zeros > 1 {
        let (before, after) = (
            seg.get(..zeros_at).unwrap_or_default(),
            seg.get(zeros_at + zeros..).unwrap_or_default(),
        );
        if before.is_empty() {
            t.colon();
        }
        for &g in before {
            t.group(g);
        }
        t.colon();
        if after.is_empty() {
            t.colon();
        }
        for &g in after {
            t.group(g);
        }
    } else {
        for &g in &seg {
            t.group(g);
        }
    }
    if let Some(len) = len {
        t.prefix(len);
    }
    t.append_to(out);
}

/// Appends an IPv6 network of at most 64 bits (`/64`, `/56`, `/48`: the subnets guards count
/// by), `first` its first 64 bits and the rest zero, as `Display` writes it. The zero groups
/// after the last nonzero one are four or more, longer than any run before it, so they are
/// the `::`; no IPv4-mapped address has its last 64 bits zero.
fn push_ipv6_net64(out: &mut KeyWriter, first: u64, len: u8) {
    let groups = if first == 0 {
        0
    } else {
        4 - first.trailing_zeros() / 16
    };
    let mut t = Text::new();
    if groups == 0 {
        t.colon();
    }
    for i in 0..groups {
        t.group((first >> (48 - 16 * i)) as u16);
    }
    t.colon();
    t.colon();
    t.prefix(len);
    t.append_to(out);
}

/// Appends an IPv4 address in dotted decimal, then `/len` when given: written into a small
/// buffer and appended at once (one append, not one per digit).
#[inline]
fn push_ipv4(out: &mut KeyWriter, octets: [u8; 4], len: Option<u8>) {
    // "255.255.255.255/32" is 18 bytes; each number writes three bytes (the unused ones are
    // overwritten by what follows or lie past the end).
    let mut buf = [0u8; 24];
    let mut n = 0;
    let put = |buf: &mut [u8; 24], n: &mut usize, sep: u8, v: u8| {
        let (digits, count) = decimal(v);
        if let Some(b) = buf.get_mut(*n..*n + 4) {
            b.copy_from_slice(&[sep, digits[0], digits[1], digits[2]]);
            *n += 1 + count;
        }
    };
    for (i, o) in octets.into_iter().enumerate() {
        put(&mut buf, &mut n, if i == 0 { 0 } else { b'.' }, o);
    }
    if let Some(len) = len {
        put(&mut buf, &mut n, b'/', len);
    }
    // The first separator slot is a placeholder.
    out.push_ascii_text(buf.get(1..n).unwrap_or_default());
}

/// The decimal digits of `n` (the first `count` of the three) and their count.
#[inline(always)]
fn decimal(n: u8) -> ([u8; 3], usize) {
    let [a, b, c, count] = DECIMAL.get(usize::from(n)).copied().unwrap_or_default();
    ([a, b, c], usize::from(count))
}

/// Every byte's decimal digits (left-aligned in three slots) and their count.
const DECIMAL: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut n = 0usize;
    while n < 256 {
        let v = n as u8;
        t[n] = if v >= 100 {
            [b'0' + v / 100, b'0' + (v / 10) % 10, b'0' + v % 10, 3]
        } else if v >= 10 {
            [b'0' + v / 10, b'0' + v % 10, 0, 2]
        } else {
            [b'0' + v, 0, 0, 1]
        };
        n += 1;
    }
    t
};

/// Appends [`network`]`(ip, v4, v6)`.
pub(super) fn push_network(out: &mut KeyWriter, ip: IpAddr, v4: u8, v6: u8) {
    match (ip, v6) {
        // The first 64 bits, masked in one word.
        (IpAddr::V6(a), len @ 0..=64) => {
            let mask = u64::MAX.checked_shl(64 - u32::from(len)).unwrap_or(0);
            push_ipv6_net64(out, (u128::from(a) >> 64) as u64 & mask, len);
        }
        _ => match masked(ip, v4, v6) {
            (IpAddr::V4(a), len) => push_ipv4(out, a.octets(), Some(len)),
            (IpAddr::V6(a), len) => push_ipv6(out, a, Some(len)),
        },
    }
}

/// The network of `ip`: its first `v4` or `v6` bits, as `address/length`.
pub fn network(ip: IpAddr, v4: u8, v6: u8) -> String {
    let (net, len) = masked(ip, v4, v6);
    format!("{net}/{len}")
}

/// `ip` with the bits past its network's prefix cleared, and the prefix's length: the first
/// `v4` bits of an IPv4 address (at most 32), the first `v6` of an IPv6 one (at most 128).
fn masked(ip: IpAddr, v4: u8, v6: u8) -> (IpAddr, u8) {
    match ip {
        IpAddr::V4(a) => {
            let len = v4.min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            (IpAddr::V4((u32::from(a) & mask).into()), len)
        }
        IpAddr::V6(a) => {
            let len = v6.min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            (IpAddr::V6((u128::from(a) & mask).into()), len)
        }
    }
}
