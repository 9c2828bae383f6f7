//! [`SubjectKey`]: who a guard counts, as the text its counter is stored under.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Keys this long or shorter are kept inline, without an allocation: room for a device or
/// payment token of 40 characters with its `device=` label, an IPv6 /64 network, or two short
/// values joined.
const INLINE: usize = 62;

/// Who a guard counts: the request's values for the guard's subjects, joined with `|`
/// (`device=d-1`, `net=203.0.113.0/24`, `user=u-1|device=d-1`; where a key joins several
/// values, or lists templates, `%`, `|`, `=` and `,` in them are written `%25`, `%7C`, `%3D`,
/// `%2C`) — the text a store keeps the guard's counter under
/// ([`Op::CountWindow`](crate::repository::Op::CountWindow),
/// [`CounterKey::Guard`](crate::repository::CounterKey::Guard)).
///
/// It reads as a `&str` (it dereferences to one) and compares, orders and hashes as its text.
/// A key of up to 62 bytes is held inline, so counting a request allocates nothing.
///
/// ```
/// use coupons::guard::SubjectKey;
/// let key = SubjectKey::from("device=d-1");
/// assert_eq!(key, "device=d-1");
/// assert_eq!(key.len(), 10);
/// assert_eq!(key.to_string(), "device=d-1");
/// let long = SubjectKey::from("user=".to_owned() + &"u".repeat(100));
/// assert_eq!(long.len(), 105);
/// ```
#[derive(Clone)]
pub struct SubjectKey(Repr);

#[derive(Clone)]
enum Repr {
    /// The text's bytes: always whole UTF-8 (only `&str` pieces are ever written).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Heap(Box<str>),
}

impl SubjectKey {
    /// The key's text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only whole `&str`s are written inline, so this never fails.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Heap(h) => h,
        }
    }

    /// The key's text as bytes (no UTF-8 check: what a store hashes and compares).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Repr::Heap(h) => h.as_bytes(),
        }
    }
}

impl Default for SubjectKey {
    fn default() -> SubjectKey {
        SubjectKey(Repr::Inline {
            len: 0,
            bytes: [0; INLINE],
        })
    }
}

/// Writes a key piece by piece, inline until it outgrows the inline room.
pub(super) struct KeyWriter {
    len: usize,
    bytes: [u8; INLINE],
    heap: Option<String>,
}

impl KeyWriter {
    #[inline(always)]
    pub(super) fn new() -> KeyWriter {
        KeyWriter {
            len: 0,
            bytes: [0; INLINE],
            heap: None,
        }
    }

    /// Appends a text.
    #[inline(always)]
    pub(super) fn push_str(&mut self, s: &str) {
        self.push_utf8(s.as_bytes());
    }

    /// Appends bytes that are whole UTF-8 (a `&str`'s, or ASCII).
    #[inline(always)]
    fn push_utf8(&mut self, s: &[u8]) {
        if let Some(h) = &mut self.heap {
            h.push_str(std::str::from_utf8(s).unwrap_or_default());
            return;
        }
        let end = self.len + s.len();
        match self.bytes.get_mut(self.len..end) {
            Some(b) => {
                b.copy_from_slice(s);
                self.len = end;
            }
            None => self.spill(std::str::from_utf8(s).unwrap_or_default()),
        }
    }

    /// Appends an ASCII character (`c` must be ASCII: a key stays whole UTF-8).
    #[inline(always)]
    pub(super) fn push_ascii(&mut self, c: u8) {
        let c = if c.is_ascii() { c } else { b'?' };
        if let Some(h) = &mut self.heap {
            h.push(char::from(c));
            return;
        }
        match self.bytes.get_mut(self.len) {
            Some(b) => {
                *b = c;
                self.len += 1;
            }
            None => {
                let mut one = [0u8; 4];
                self.spill(char::from(c).encode_utf8(&mut one));
            }
        }
    }

    /// Appends an address's text, which the address writer makes from ASCII digits and
    /// punctuation alone: appended as it is, with no check byte by byte (the writer's tests
    /// compare every shape with `Display`).
    #[inline(always)]
    pub(super) fn push_ascii_text(&mut self, s: &[u8]) {
        self.push_utf8(s);
    }

    /// Moves the text to the heap, then appends `s`.
    #[cold]
    fn spill(&mut self, s: &str) {
        let written = self.bytes.get(..self.len).unwrap_or_default();
        let mut h = String::with_capacity(2 * INLINE + s.len());
        h.push_str(std::str::from_utf8(written).unwrap_or_default());
        h.push_str(s);
        self.heap = Some(h);
    }

    /// The key.
    #[inline(always)]
    pub(super) fn finish(self) -> SubjectKey {
        match (self.heap, u8::try_from(self.len)) {
            (Some(h), _) => SubjectKey(Repr::Heap(h.into_boxed_str())),
            (None, Ok(len)) => SubjectKey(Repr::Inline {
                len,
                bytes: self.bytes,
            }),
            (None, Err(_)) => SubjectKey::default(),
        }
    }
}

impl fmt::Write for KeyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl From<&str> for SubjectKey {
    fn from(s: &str) -> SubjectKey {
        let mut w = KeyWriter::new();
        w.push_str(s);
        w.finish()
    }
}

impl From<String> for SubjectKey {
    fn from(s: String) -> SubjectKey {
        if s.len() <= INLINE {
            SubjectKey::from(s.as_str())
        } else {
            SubjectKey(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<SubjectKey> for String {
    fn from(k: SubjectKey) -> String {
        match k.0 {
            Repr::Heap(h) => h.into(),
            Repr::Inline { .. } => k.as_str().to_owned(),
        }
    }
}

impl Deref for SubjectKey {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SubjectKey {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SubjectKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SubjectKey {
    #[inline]
    fn eq(&self, other: &SubjectKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SubjectKey {}

impl PartialEq<str> for SubjectKey {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for SubjectKey {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<String> for SubjectKey {
    fn eq(&self, other: &String) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for SubjectKey {
    fn partial_cmp(&self, other: &SubjectKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SubjectKey {
    /// As their texts order (UTF-8 bytes order as the characters do).
    fn cmp(&self, other: &SubjectKey) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for SubjectKey {
    /// As its text hashes (so a map keyed by keys can be searched by `&str`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(pieces: &[&str]) -> SubjectKey {
        let mut w = KeyWriter::new();
        for p in pieces {
            w.push_str(p);
        }
        w.finish()
    }

    #[test]
    fn a_key_reads_back_what_was_written_at_every_length_across_the_inline_room() {
        for n in 0..3 * INLINE {
            // Multi-byte characters land across the spill point too.
            let pieces: Vec<String> = (0..n)
                .map(|i| if i % 3 == 0 { "é".into() } else { "a".into() })
                .collect();
            let text: String = pieces.concat();
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let key = written(&refs);
            assert_eq!(key.as_str(), text);
            assert_eq!(key.as_bytes(), text.as_bytes());
            assert_eq!(SubjectKey::from(text.as_str()), key);
            assert_eq!(SubjectKey::from(text.clone()), key);
            assert_eq!(String::from(key.clone()), text);
            let mut ascii = KeyWriter::new();
            for _ in 0..n {
                ascii.push_ascii(b'x');
            }
            assert_eq!(ascii.finish().as_str(), "x".repeat(n));
        }
    }

    #[test]
    fn ascii_runs_are_written_whole_also_where_they_reach_past_the_inline_room() {
        for before in 0..=INLINE + 2 {
            for run in ["", "7", "10.0.0.0/24", "255.255.255.255/32"] {
                let mut w = KeyWriter::new();
                w.push_str(&"p".repeat(before));
                w.push_ascii_text(run.as_bytes());
                w.push_ascii(b'|');
                w.push_ascii_text(run.as_bytes());
                assert_eq!(
                    w.finish().as_str(),
                    format!("{}{run}|{run}", "p".repeat(before))
                );
            }
        }
        // A byte that is not ASCII is written as `?`.
        let mut w = KeyWriter::new();
        w.push_ascii(0xff);
        assert_eq!(w.finish().as_str(), "?");
    }

    #[test]
    fn keys_compare_order_and_hash_as_their_texts() {
        use std::collections::hash_map::DefaultHasher;
        let texts = [
            "",
            "a",
            "ab",
            "b",
            &"z".repeat(INLINE + 5),
            "é",
            "device=d-1",
        ];
        let hash = |h: &dyn Fn(&mut DefaultHasher)| {
            let mut s = DefaultHasher::new();
            h(&mut s);
            s.finish()
        };
        for a in texts {
            for b in texts {
                let (ka, kb) = (SubjectKey::from(a), SubjectKey::from(b));
                assert_eq!(ka == kb, a == b);
                assert_eq!(ka.cmp(&kb), a.cmp(b));
            }
            let k = SubjectKey::from(a);
            assert_eq!(hash(&|s| k.hash(s)), hash(&|s| a.hash(s)));
            assert_eq!(format!("{k:?}"), format!("{a:?}"));
        }
    }
}
