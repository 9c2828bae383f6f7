//! The store's compact tables: a fast hasher, an open-addressing index of slot numbers, names
//! interned to `u32` with short texts inline, and the coupon slots.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use chrono::{DateTime, Utc};

use crate::id::{CampaignId, Channel, CouponId, GuardName, OrderId, TemplateId, UserId};
use crate::lifecycle::ClaimMode;

/// FxHash (as in rustc) with a final avalanche: a fast, non-keyed hash for short keys (its
/// word loop is the crate's [`for_words`](crate::hash::for_words)). The store is in-process and its
/// keys are identifiers, so speed matters more than resistance to crafted collisions; see
/// [`MemoryStore`].
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    pub(super) hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    pub(super) fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        crate::hash::for_words(bytes, |w| self.add(w));
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Fx leaves the low bits (which pick the bucket) depending on the low bytes only;
        // a final avalanche spreads every input bit.
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub(super) type Map<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A 32-bit hash of an id's text, stored beside it in the big indexes so that growing them
/// never re-reads the ids.
pub(super) fn hash32(s: &str) -> u32 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    (h.finish() >> 32) as u32
}

/// An open-addressing hash index of slot numbers, 8 bytes an entry: the keys themselves live
/// in the slots, so the index stays small (and cache-friendly) however long the ids are.
/// Linear probing, at most 3/4 full (or half full, [`sparse`](Self::sparse)); entries are
/// never removed.
#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    /// `(hash, slot)`; `slot == NONE` marks an empty entry.
    pub(super) entries: Vec<(u32, u32)>,
    pub(super) len: usize,
    /// At most half full.
    half: bool,
}

impl SlotIndex {
    /// An index kept at most half full: for one asked mostly for keys it lacks (a guard's
    /// subjects are new on most requests), where a miss probes on to a vacant entry — about
    /// 2.5 entries at half full against 8.5 at 3/4 full. It costs half again the memory: 2 to 4
    /// entries of 8 bytes a key, against 1⅓ to 2⅔.
    pub(super) fn sparse() -> SlotIndex {
        SlotIndex {
            half: true,
            ..SlotIndex::default()
        }
    }

    /// Whether `len` entries fit in `size` at this index's load.
    #[inline(always)]
    fn fits(&self, len: usize, size: usize) -> bool {
        if self.half {
            len.saturating_mul(2) <= size
        } else {
            len.saturating_mul(4) <= size.saturating_mul(3)
        }
    }

    pub(super) fn find(&self, hash: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.entries.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let &(h, ix) = self.entries.get(i)?;
            if ix == NONE {
                return None;
            }
            if h == hash && is(ix) {
                return Some(ix);
            }
            i = (i + 1) & mask;
        }
    }

    /// [`find`](Self::find), with an absent key's answer the vacant entry its probe ended
    /// at and the index's size then (`(NONE, 0)` when empty), for [`insert_at`](Self::insert_at).
    pub(super) fn find_or_vacant(
        &self,
        hash: u32,
        is: impl Fn(u32) -> bool,
    ) -> Result<u32, (u32, u32)> {
        let size = u32::try_from(self.entries.len()).unwrap_or(0);
        if size == 0 {
            return Err((NONE, 0));
        }
        let mask = self.entries.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let Some(&(h, ix)) = self.entries.get(i) else {
                return Err((NONE, 0));
            };
            if ix == NONE {
                return Err((u32::try_from(i).unwrap_or(NONE), size));
            }
            if h == hash && is(ix) {
                return Ok(ix);
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `(hash, ix)` at `vacant`, where [`find_or_vacant`](Self::find_or_vacant)'s
    /// probe for `hash` ended when the index had `size` entries: still the place if the index
    /// has not grown since (its size only ever doubles) and the entry is still vacant (an
    /// entry filled since lay outside that probe's run, which held no vacancy before it).
    /// Else, or when this insert must grow the index, an ordinary [`insert`](Self::insert).
    pub(super) fn insert_at(&mut self, vacant: u32, size: u32, hash: u32, ix: u32) {
        let n = self.entries.len();
        if n == size as usize && self.fits(self.len.saturating_add(1), n) {
            if let Some(e) = self
                .entries
                .get_mut(vacant as usize)
                .filter(|e| e.1 == NONE)
            {
                *e = (hash, ix);
                self.len += 1;
                return;
            }
        }
        self.insert(hash, ix);
    }

    pub(super) fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        if self.fits(want, self.entries.len()) {
            return;
        }
        // Doubled until `want` fits at this index's load.
        let mut cap = self.entries.len().max(16);
        while !self.fits(want, cap) {
            cap = cap.saturating_mul(2);
        }
        let old = std::mem::replace(&mut self.entries, vec![(0, NONE); cap]);
        self.len = 0;
        for (h, ix) in old {
            if ix != NONE {
                self.put(h, ix);
            }
        }
    }

    pub(super) fn insert(&mut self, hash: u32, ix: u32) {
        self.reserve(1);
        self.put(hash, ix);
    }

    pub(super) fn put(&mut self, hash: u32, ix: u32) {
        let mask = self.entries.len().wrapping_sub(1);
        let mut i = hash as usize & mask;
        while let Some(e) = self.entries.get_mut(i) {
            if e.1 == NONE {
                *e = (hash, ix);
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

pub(super) const NONE: u32 = u32::MAX;

/// Identifiers backed by a shared `Arc<str>`: two values pointing at the same text are equal,
/// which lets the store skip hashing ids it has just seen.
pub(super) trait Ident: Clone + Eq + Hash {
    fn text(&self) -> &str;
}

macro_rules! ident {
    ($($t:ty),*) => {$(
        impl Ident for $t {
            fn text(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}
ident!(TemplateId, UserId, Channel, CampaignId, OrderId, GuardName);

/// Ids this long or shorter are kept inline beside their data, so comparing one needs no
/// pointer chase to its shared text.
pub(super) const SHORT: usize = 23;

/// An id's text inline (`len == u8::MAX` when too long to keep).
#[derive(Debug, Clone, Copy)]
pub(super) struct Short {
    pub(super) len: u8,
    pub(super) bytes: [u8; SHORT],
}

impl Short {
    pub(super) fn new(s: &str) -> Short {
        let mut bytes = [0u8; SHORT];
        match bytes.get_mut(..s.len()) {
            Some(b) => {
                b.copy_from_slice(s.as_bytes());
                Short {
                    len: u8::try_from(s.len()).unwrap_or(u8::MAX),
                    bytes,
                }
            }
            None => Short {
                len: u8::MAX,
                bytes,
            },
        }
    }

    /// Whether both spell the same short text (fixed-size compare, no call); `None` when
    /// the query was too long to keep inline.
    pub(super) fn same(&self, query: &Short) -> Option<bool> {
        (query.len != u8::MAX).then(|| self.len == query.len && self.bytes == query.bytes)
    }
}

/// Names interned to `u32`, each with its data (and its text inline when short).
#[derive(Debug)]
pub(super) struct Table<T, D> {
    pub(super) names: Vec<T>,
    pub(super) data: Vec<(Short, D)>,
    pub(super) index: SlotIndex,
    /// The address and length of the last name looked up in the current commit, its index
    /// ([`NONE`]: absent when looked up; only [`Table::intern`] adds it, and remembers that)
    /// and its hash. The batch being committed owns that name, so the address cannot be freed
    /// and reused before [`Table::forget`] clears the memo at the start of the next commit.
    pub(super) memo: Option<(usize, usize, u32, u32)>,
}

impl<T, D> Default for Table<T, D> {
    fn default() -> Self {
        Table {
            names: Vec::new(),
            data: Vec::new(),
            index: SlotIndex::default(),
            memo: None,
        }
    }
}

impl<T: Ident, D: Default> Table<T, D> {
    /// The memo's index and hash, if it is about this name.
    fn memo_hit(&self, id: &T) -> Option<(u32, u32)> {
        let &(ptr, len, i, hash) = self.memo.as_ref()?;
        let text = id.text();
        (text.as_ptr() as usize == ptr && text.len() == len).then_some((i, hash))
    }

    fn remember(&mut self, id: &T, i: u32, hash: u32) {
        let text = id.text();
        self.memo = Some((text.as_ptr() as usize, text.len(), i, hash));
    }

    /// Clears the memo (its name may be freed once the commit that looked it up is over).
    pub(super) fn forget(&mut self) {
        self.memo = None;
    }

    /// Whether name `ix` spells `text` (`query`: `text` inline, compared inline when short).
    fn is_at(&self, ix: u32, text: &str, query: &Short) -> bool {
        match self.data.get(ix as usize).and_then(|(k, _)| k.same(query)) {
            Some(is) => is,
            None => self
                .names
                .get(ix as usize)
                .is_some_and(|n| n.text() == text),
        }
    }

    fn probe_hashed(&self, text: &str, hash: u32) -> Option<u32> {
        let query = Short::new(text);
        self.index.find(hash, |ix| self.is_at(ix, text, &query))
    }

    /// The index of a name (read path: the memo is the committing batch's).
    pub(super) fn get(&self, id: &T) -> Option<u32> {
        let text = id.text();
        self.probe_hashed(text, hash32(text))
    }

    /// The index of a name, remembered (found or not) for the next look-up.
    pub(super) fn find(&mut self, id: &T) -> Option<u32> {
        if let Some((i, _)) = self.memo_hit(id) {
            return (i != NONE).then_some(i);
        }
        let text = id.text();
        let hash = hash32(text);
        let i = self.probe_hashed(text, hash);
        self.remember(id, i.unwrap_or(NONE), hash);
        i
    }

    /// The index of a name, added if new.
    pub(super) fn intern(&mut self, id: &T) -> u32 {
        let hash = match self.memo_hit(id) {
            Some((i, _)) if i != NONE => return i,
            Some((_, hash)) => hash,
            None => {
                let text = id.text();
                let hash = hash32(text);
                if let Some(i) = self.probe_hashed(text, hash) {
                    self.remember(id, i, hash);
                    return i;
                }
                hash
            }
        };
        let i = u32::try_from(self.names.len()).unwrap_or(NONE);
        self.names.push(id.clone());
        self.data.push((Short::new(id.text()), D::default()));
        self.index.insert(hash, i);
        self.remember(id, i, hash);
        i
    }

    pub(super) fn name(&self, i: u32) -> Option<&T> {
        self.names.get(i as usize)
    }

    pub(super) fn at(&self, i: u32) -> Option<&D> {
        self.data.get(i as usize).map(|(_, d)| d)
    }

    pub(super) fn at_mut(&mut self, i: u32) -> Option<&mut D> {
        self.data.get_mut(i as usize).map(|(_, d)| d)
    }

    pub(super) fn lookup(&self, id: &T) -> Option<&D> {
        self.get(id).and_then(|i| self.at(i))
    }

    pub(super) fn entry(&mut self, id: &T) -> Option<&mut D> {
        let i = self.intern(id);
        self.at_mut(i)
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }
}

/// Per-template counters (the records themselves are in [`MemoryStore::records`]).
#[derive(Debug, Default)]
pub(super) struct TemplateSlot {
    pub(super) issued: u64,
    pub(super) code_uses: u64,
}

pub(super) const K_CLAIMS: u32 = 0;
pub(super) const K_USES: u32 = 1;
pub(super) const K_CODE_USES: u32 = 2;

/// Everything kept per user: the head of the wallet (a list threaded through the slots) and
/// the per-user counters as `(template << 2 | kind, value)`, sorted.
#[derive(Debug)]
pub(super) struct UserEntry {
    pub(super) head: u32,
    pub(super) counters: Vec<(u32, u32)>,
}

impl Default for UserEntry {
    fn default() -> Self {
        UserEntry {
            head: NONE,
            counters: Vec::new(),
        }
    }
}

/// Templates that fit in a per-user counter key.
pub(super) const MAX_TEMPLATES: usize = 1 << 30;

pub(super) fn user_counter_key(template: u32, kind: u32) -> u32 {
    (template << 2) | kind
}

impl UserEntry {
    pub(super) fn counter(&self, key: u32) -> u64 {
        self.counters
            .binary_search_by_key(&key, |c| c.0)
            .ok()
            .and_then(|i| self.counters.get(i))
            .map_or(0, |c| u64::from(c.1))
    }

    /// Adds `delta` to a counter (one search, whether it exists or not).
    pub(super) fn add(&mut self, key: u32, delta: i64) {
        let to = |value: u32| u32::try_from(add(u64::from(value), delta)).unwrap_or(u32::MAX);
        match self.counters.binary_search_by_key(&key, |c| c.0) {
            Ok(i) => {
                if let Some(c) = self.counters.get_mut(i) {
                    c.1 = to(c.1);
                }
            }
            Err(i) => self.counters.insert(i, (key, to(0))),
        }
    }
}

pub(super) fn add(value: u64, delta: i64) -> u64 {
    u64::try_from(i128::from(value) + i128::from(delta)).unwrap_or(0)
}

pub(super) const S_AVAILABLE: u8 = 0;
pub(super) const S_LOCKED: u8 = 1;
pub(super) const S_USED: u8 = 2;
pub(super) const S_EXPIRED: u8 = 3;
pub(super) const S_VOIDED: u8 = 4;

/// A coupon as stored, 96 bytes: template, channel, campaign, owner and order interned, the
/// state as a tag with its order and instant, and the link to the owner's next coupon.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) id: CouponId,
    pub(super) owner: u32,
    pub(super) template: u32,
    pub(super) channel: u32,
    pub(super) campaign: u32,
    /// The owner's next coupon (the wallet list), or `NONE`.
    pub(super) next: u32,
    /// The order holding (Locked) or having used (Used) it, else `NONE`.
    pub(super) order: u32,
    pub(super) version: u32,
    pub(super) claimed_at: DateTime<Utc>,
    pub(super) valid_from: DateTime<Utc>,
    pub(super) valid_until: DateTime<Utc>,
    /// The hold's end (Locked), or when it was used, expired or voided.
    pub(super) at: DateTime<Utc>,
    pub(super) mode: ClaimMode,
    pub(super) state: u8,
    /// The compact receipt stored with the coupon, if any ([`Receipt::Claimed`] naming it):
    /// `0` none; `1..=254` its key is the last that many bytes of the id (the text is shared,
    /// whatever the id scheme); [`CLAIM_APART`] its key is in `Inner::claim_keys`.
    ///
    /// [`Receipt::Claimed`]: crate::repository::Receipt::Claimed
    pub(super) claim: u8,
    /// Which operation name the compact receipt is stored under (an index into
    /// `Inner::claim_ops`), and [`LOGGED`].
    pub(super) claim_op: u8,
}

/// In [`Slot::claim_op`]: the feed may hold compact entries of this slot (`feed::Entry::Issued`).
pub(super) const LOGGED: u8 = 0x80;

/// [`Slot::claim`]: the compact receipt's key is kept apart from the id.
pub(super) const CLAIM_APART: u8 = u8::MAX;

impl Slot {
    pub(super) fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            S_AVAILABLE => Some(self.valid_until),
            S_LOCKED => Some(self.at),
            _ => None,
        }
    }
}

pub(super) const CHUNK_BITS: u32 = 16;
pub(super) const CHUNK: usize = 1 << CHUNK_BITS;

/// Coupon slots in fixed-size chunks: growing never copies the slots already stored.
#[derive(Debug, Default)]
pub(super) struct Slots {
    pub(super) chunks: Vec<Vec<Slot>>,
    pub(super) len: usize,
}

impl Slots {
    pub(super) fn get(&self, i: u32) -> Option<&Slot> {
        self.chunks
            .get((i >> CHUNK_BITS) as usize)?
            .get(i as usize & (CHUNK - 1))
    }

    pub(super) fn get_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((i >> CHUNK_BITS) as usize)?
            .get_mut(i as usize & (CHUNK - 1))
    }

    pub(super) fn push(&mut self, slot: Slot) -> u32 {
        let i = u32::try_from(self.len).unwrap_or(NONE);
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(slot),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(slot);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        i
    }
}
