//! The coupon-id scheme and the hash behind fingerprints and long ids.

use std::fmt::Write as _;

use crate::id::{CouponId, IdempotencyKey, MAX_ID_LEN, TemplateId};
use crate::rule::PromoCode;

/// 64-bit FNV-1a over `parts`, each followed by a `0xff` byte (which no UTF-8 text holds), so
/// that `["ab", "c"]` and `["a", "bc"]` differ. The same bytes give the same value in every
/// process and version.
pub(crate) fn fnv(parts: &[&str], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn push_decimal(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for &b in buf.get(i..).unwrap_or_default() {
        s.push(char::from(b));
    }
}

/// The id of the coupon a claim issues: `<template>/<claim key>` (plus `.<salt>` after an id
/// collision), or a hash of them when that would be longer than an id may be. A claim's key is
/// unique among claims (its receipt is inserted in the same batch), so the id is too, without
/// reading anything first.
pub(crate) fn coupon_id(template: &TemplateId, key: &IdempotencyKey, salt: u32) -> CouponId {
    let (t, k) = (template.as_str(), key.as_str());
    // The common case, `template/key` short enough to spell out: built on the stack.
    if salt == 0 && t.len() + 1 + k.len() <= MAX_ID_LEN {
        let mut buf = [0u8; MAX_ID_LEN];
        let n = t.len() + 1 + k.len();
        if let Some((head, tail)) = buf
            .get_mut(..n)
            .and_then(|o| o.split_at_mut_checked(t.len()))
        {
            head.copy_from_slice(t.as_bytes());
            if let Some((slash, rest)) = tail.split_first_mut() {
                *slash = b'/';
                rest.copy_from_slice(k.as_bytes());
            }
        }
        if let Some(Ok(s)) = buf.get(..n).map(std::str::from_utf8) {
            return CouponId::trusted(s);
        }
    }
    let mut s = String::with_capacity(t.len() + k.len() + 12);
    s.push_str(t);
    s.push('/');
    s.push_str(k);
    if salt > 0 {
        s.push('.');
        push_decimal(&mut s, u64::from(salt));
    }
    if s.len() > MAX_ID_LEN && s.chars().count() > MAX_ID_LEN {
        s.clear();
        let salt_s = salt.to_string();
        let a = fnv(&[t, k, &salt_s], 0);
        let b = fnv(&[t, k, &salt_s], 0x9e37_79b9_7f4a_7c15);
        let _ = write!(s, "c-{a:016x}{b:016x}");
    }
    CouponId::trusted(&s)
}

/// The claim key of a one-time code's coupon: `code:<code>`, the same for every account.
pub(crate) fn code_key(code: &PromoCode) -> IdempotencyKey {
    // A promo code is 3 to 32 ASCII letters, digits, `-` and `_`: a valid key.
    IdempotencyKey::trusted(&format!("code:{code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coupon_ids_are_readable_or_hashed_when_long() {
        let t = TemplateId::new("t1").unwrap();
        let k = IdempotencyKey::new("claim-3").unwrap();
        assert_eq!(coupon_id(&t, &k, 0).as_str(), "t1/claim-3");
        assert_eq!(coupon_id(&t, &k, 2).as_str(), "t1/claim-3.2");
        let long = TemplateId::new("x".repeat(100)).unwrap();
        let a = coupon_id(&long, &k, 0);
        assert!(a.as_str().len() <= MAX_ID_LEN);
        assert!(CouponId::new(a.as_str()).is_ok());
        assert_ne!(
            a,
            coupon_id(&long, &IdempotencyKey::new("claim-4").unwrap(), 0)
        );
        assert_ne!(a, coupon_id(&long, &k, 1));
    }

    #[test]
    fn fnv_is_pinned() {
        // FNV-1a of "a" then the 0xff separator, with the standard offset basis and prime.
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        for b in [b'a', 0xff] {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(fnv(&["a"], 0), h);
        assert_ne!(fnv(&["ab", "c"], 0), fnv(&["a", "bc"], 0));
    }
}
