//! The in-memory store: records in 16 shards, each under its own `RwLock` (template records and
//! the event feed under locks of their own), with compact records and the indexes the service
//! needs (wallet by user, coupons by order, coupons by due time).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use super::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, TrimEvents, Version,
    Versioned,
};
use crate::attributes::Attributes;
use crate::events::{CouponFacts, Event, EventKind, Logged, Sequence};
use crate::id::{
    CampaignId, Channel, CouponId, GuardName, IdempotencyKey, OrderId, TemplateId, UserId,
};
use crate::lifecycle::{Campaign, ClaimMode, Coupon, CouponState, Order, TemplateRecord};

/// FxHash (as in rustc) with a final avalanche: a fast, non-keyed hash for short keys. The store is in-process and its
/// keys are identifiers, so speed matters more than resistance to crafted collisions; see
/// [`MemoryStore`].
#[derive(Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The tail as a little-endian word, byte by byte (no call to `memcpy`).
            let w = rest
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b));
            self.add(w ^ ((rest.len() as u64) << 59));
        }
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

type Map<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A guard's buckets for one subject, ordered by bucket: usually one (a fixed window sums only
/// its current bucket, and older ones are dropped as it moves), kept inline; a rolling window's
/// few buckets spill to a sorted vector.
#[derive(Debug, Default, Clone)]
enum Buckets {
    #[default]
    Empty,
    One(i64, u64),
    Many(Vec<(i64, u64)>),
}

impl Buckets {
    /// The value of bucket `at` and the sum of the buckets `from..=at`.
    fn sums(&self, from: i64, at: i64) -> (u64, u64) {
        let fold = |(current, sum): (u64, u64), &(b, n): &(i64, u64)| {
            if (from..=at).contains(&b) {
                (if b == at { n } else { current }, sum.saturating_add(n))
            } else {
                (current, sum)
            }
        };
        match self {
            Buckets::Empty => (0, 0),
            Buckets::One(b, n) => fold((0, 0), &(*b, *n)),
            Buckets::Many(v) => v.iter().fold((0, 0), fold),
        }
    }

    /// Adds `delta` to bucket `at` (created at zero).
    fn add(&mut self, at: i64, delta: i64) {
        match self {
            Buckets::Empty => *self = Buckets::One(at, add(0, delta)),
            Buckets::One(b, n) if *b == at => *n = add(*n, delta),
            Buckets::One(b, n) => {
                let (b, n) = (*b, *n);
                let mine = (at, add(0, delta));
                *self = Buckets::Many(if b < at {
                    vec![(b, n), mine]
                } else {
                    vec![mine, (b, n)]
                });
            }
            Buckets::Many(v) => {
                let i = match v.binary_search_by_key(&at, |&(b, _)| b) {
                    Ok(i) => i,
                    Err(i) => {
                        v.insert(i, (at, 0));
                        i
                    }
                };
                if let Some((_, n)) = v.get_mut(i) {
                    *n = add(*n, delta);
                }
            }
        }
    }

    /// Drops the buckets before `oldest`.
    fn drop_before(&mut self, oldest: i64) {
        match self {
            Buckets::Empty => {}
            Buckets::One(b, _) => {
                if *b < oldest {
                    *self = Buckets::Empty;
                }
            }
            Buckets::Many(v) => {
                let keep = v.partition_point(|&(b, _)| b < oldest);
                if keep > 0 {
                    v.drain(..keep);
                }
            }
        }
    }

    #[cfg(test)]
    fn to_vec(&self) -> Vec<(i64, u64)> {
        match self {
            Buckets::Empty => Vec::new(),
            Buckets::One(b, n) => vec![(*b, *n)],
            Buckets::Many(v) => v.clone(),
        }
    }
}

/// Guards' windowed counters: each (guard, subject) pair interned once, with its buckets, so a
/// guard count hashes its subject once and finds its entry with one probe, for the check and
/// again for the write.
#[derive(Debug, Default)]
struct GuardTable {
    index: SlotIndex,
    entries: Vec<GuardEntry>,
}

#[derive(Debug)]
struct GuardEntry {
    guard: GuardName,
    /// The subject inline when short (most are: `device=…`, `ip=…`), else in `long`.
    short: Short,
    long: Option<Box<str>>,
    buckets: Buckets,
}

impl GuardEntry {
    fn is(&self, guard: &GuardName, subject: &str, query: &Short) -> bool {
        let subject_is = match (&self.long, self.short.same(query)) {
            (None, Some(is)) => is,
            (Some(long), None) => &**long == subject,
            _ => false,
        };
        subject_is && same(self.guard.as_str(), guard.as_str())
    }
}

/// A guard's current bucket and the sum of the window's buckets `bucket - span + 1 ..= bucket`.
fn guard_window(buckets: Option<&Buckets>, bucket: i64, span: u32) -> (u64, u64) {
    let from = bucket.saturating_sub(i64::from(span.max(1)) - 1);
    buckets.map_or((0, 0), |b| b.sums(from, bucket))
}

/// A text's 64-bit hash.
fn hash64(s: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// The shard of a (guard, subject) pair (its subject's, see [`route`]) and the pair's hash,
/// hashing the subject once.
fn guard_key(guard: &GuardName, subject: &str) -> (usize, u32) {
    let of_subject = hash64(subject);
    let mut h = FxHasher::default();
    h.write(guard.as_str().as_bytes());
    h.write_u64(of_subject);
    (
        (of_subject as usize) & (SHARDS - 1),
        (h.finish() >> 32) as u32,
    )
}

/// The hash of a (guard, subject) pair.
fn guard_hash(guard: &GuardName, subject: &str) -> u32 {
    guard_key(guard, subject).1
}

impl GuardTable {
    fn find(&self, hash: u32, guard: &GuardName, subject: &str) -> Option<u32> {
        let query = Short::new(subject);
        self.index.find(hash, |ix| {
            self.entries
                .get(ix as usize)
                .is_some_and(|e| e.is(guard, subject, &query))
        })
    }

    fn buckets(&self, ix: Option<u32>) -> Option<&Buckets> {
        ix.and_then(|i| self.entries.get(i as usize))
            .map(|e| &e.buckets)
    }

    /// The entry of a pair, made empty when new (`at`: its index if known).
    fn entry(
        &mut self,
        hash: u32,
        at: Option<u32>,
        guard: &GuardName,
        subject: &str,
    ) -> Option<&mut Buckets> {
        let ix = match at.or_else(|| self.find(hash, guard, subject)) {
            Some(ix) => ix,
            None => {
                let ix = u32::try_from(self.entries.len()).unwrap_or(NONE);
                let short = Short::new(subject);
                self.entries.push(GuardEntry {
                    guard: guard.clone(),
                    long: (short.len == u8::MAX).then(|| subject.into()),
                    short,
                    buckets: Buckets::Empty,
                });
                self.index.insert(hash, ix);
                ix
            }
        };
        self.entries.get_mut(ix as usize).map(|e| &mut e.buckets)
    }
}

/// A 32-bit hash of an id's text, stored beside it in the big indexes so that growing them
/// never re-reads the ids.
fn hash32(s: &str) -> u32 {
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    (h.finish() >> 32) as u32
}

/// The in-memory store ran out of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// The store holds 4,294,967,295 records of one kind; nothing was written.
    #[error("the in-memory store is full ({what})")]
    Full {
        /// Which kind of record.
        what: &'static str,
    },
    /// A commit reached a shard it had not locked: a defect of the store (every shard a batch
    /// names is locked before it is read), never seen in its tests.
    #[error("the in-memory store's commit reached shard {shard} without its lock")]
    Unlocked {
        /// The shard.
        shard: usize,
    },
}

/// An open-addressing hash index of slot numbers, 8 bytes an entry: the keys themselves live
/// in the slots, so the index stays small (and cache-friendly) however long the ids are.
/// Linear probing, at most 3/4 full; entries are never removed.
#[derive(Debug, Default)]
struct SlotIndex {
    /// `(hash, slot)`; `slot == NONE` marks an empty entry.
    entries: Vec<(u32, u32)>,
    len: usize,
}

impl SlotIndex {
    fn find(&self, hash: u32, is: impl Fn(u32) -> bool) -> Option<u32> {
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

    fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        if want.saturating_mul(4) <= self.entries.len().saturating_mul(3) {
            return;
        }
        let cap = (want.saturating_mul(4) / 3 + 1).next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.entries, vec![(0, NONE); cap]);
        self.len = 0;
        for (h, ix) in old {
            if ix != NONE {
                self.put(h, ix);
            }
        }
    }

    fn insert(&mut self, hash: u32, ix: u32) {
        self.reserve(1);
        self.put(hash, ix);
    }

    fn put(&mut self, hash: u32, ix: u32) {
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

const NONE: u32 = u32::MAX;

/// Identifiers backed by a shared `Arc<str>`: two values pointing at the same text are equal,
/// which lets the store skip hashing ids it has just seen.
trait Ident: Clone + Eq + Hash {
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
ident!(TemplateId, UserId, Channel, CampaignId, OrderId);

/// Ids this long or shorter are kept inline beside their data, so comparing one needs no
/// pointer chase to its shared text.
const SHORT: usize = 23;

/// An id's text inline (`len == u8::MAX` when too long to keep).
#[derive(Debug, Clone, Copy)]
struct Short {
    len: u8,
    bytes: [u8; SHORT],
}

impl Short {
    fn new(s: &str) -> Short {
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
    fn same(&self, query: &Short) -> Option<bool> {
        (query.len != u8::MAX).then(|| self.len == query.len && self.bytes == query.bytes)
    }
}

/// A name prepared for look-ups, from one hash of its text: the text, its hash in the shards'
/// indexes, its shard, and its text inline.
#[derive(Clone, Copy)]
struct Name<'a> {
    text: &'a str,
    hash: u32,
    shard: usize,
    short: Short,
}

impl<'a> Name<'a> {
    /// A name only hashed (its inline text left empty), for look-ups that compare the text
    /// themselves.
    fn hashed(text: &'a str) -> Name<'a> {
        let h = hash64(text);
        Name {
            text,
            hash: (h >> 32) as u32,
            shard: (h as usize) & (SHARDS - 1),
            short: Short {
                len: u8::MAX,
                bytes: [0; SHORT],
            },
        }
    }

    fn of(text: &'a str) -> Name<'a> {
        let h = hash64(text);
        Name {
            text,
            hash: (h >> 32) as u32,
            shard: (h as usize) & (SHARDS - 1),
            short: Short::new(text),
        }
    }
}

/// The names a coupon's slot interns.
struct CouponNames<'a> {
    template: Name<'a>,
    channel: Name<'a>,
    owner: Name<'a>,
}

impl<'a> CouponNames<'a> {
    fn of(c: &'a Coupon) -> CouponNames<'a> {
        CouponNames {
            template: Name::of(c.template.as_str()),
            channel: Name::of(c.channel.as_str()),
            owner: Name::of(c.owner.as_str()),
        }
    }
}

/// Names interned to `u32`, each with its data (and its text inline when short).
#[derive(Debug)]
struct Table<T, D> {
    names: Vec<T>,
    data: Vec<(Short, D)>,
    index: SlotIndex,
    /// The address and length of the last name looked up in the current commit, and its
    /// index. The batch being committed owns that name, so the address cannot be freed and
    /// reused before [`Table::forget`] clears the memo at the start of the next commit.
    memo: Option<(usize, usize, u32)>,
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
    fn memo_hit(&self, id: &T) -> Option<u32> {
        let &(ptr, len, i) = self.memo.as_ref()?;
        let text = id.text();
        (text.as_ptr() as usize == ptr && text.len() == len).then_some(i)
    }

    fn remember(&mut self, id: &T, i: u32) {
        let text = id.text();
        self.memo = Some((text.as_ptr() as usize, text.len(), i));
    }

    /// Clears the memo (its name may be freed once the commit that looked it up is over).
    fn forget(&mut self) {
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

    fn probe(&self, text: &str) -> Option<u32> {
        let query = Short::new(text);
        self.index
            .find(hash32(text), |ix| self.is_at(ix, text, &query))
    }

    /// The index of a name (read path: the memo is the committing batch's).
    fn get(&self, id: &T) -> Option<u32> {
        self.probe(id.text())
    }

    /// The index of a name, remembered for the next look-up.
    fn find(&mut self, id: &T) -> Option<u32> {
        if let Some(i) = self.memo_hit(id) {
            return Some(i);
        }
        self.find_name(id, &Name::of(id.text()))
    }

    /// [`find`](Self::find) with the name's hash and inline text already made.
    fn find_name(&mut self, id: &T, name: &Name<'_>) -> Option<u32> {
        if let Some(i) = self.memo_hit(id) {
            return Some(i);
        }
        let i = self
            .index
            .find(name.hash, |ix| self.is_at(ix, name.text, &name.short))?;
        self.remember(id, i);
        Some(i)
    }

    /// The index of a name, added if new.
    fn intern(&mut self, id: &T) -> u32 {
        if let Some(i) = self.memo_hit(id) {
            return i;
        }
        self.intern_name(id, &Name::of(id.text()))
    }

    /// [`intern`](Self::intern) with the name's hash and inline text already made.
    fn intern_name(&mut self, id: &T, name: &Name<'_>) -> u32 {
        if let Some(i) = self.find_name(id, name) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(NONE);
        self.names.push(id.clone());
        self.data.push((name.short, D::default()));
        self.index.insert(name.hash, i);
        self.remember(id, i);
        i
    }

    fn name(&self, i: u32) -> Option<&T> {
        self.names.get(i as usize)
    }

    fn at(&self, i: u32) -> Option<&D> {
        self.data.get(i as usize).map(|(_, d)| d)
    }

    fn at_mut(&mut self, i: u32) -> Option<&mut D> {
        self.data.get_mut(i as usize).map(|(_, d)| d)
    }

    fn lookup(&self, id: &T) -> Option<&D> {
        self.get(id).and_then(|i| self.at(i))
    }

    fn entry(&mut self, id: &T) -> Option<&mut D> {
        let i = self.intern(id);
        self.at_mut(i)
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// Per-template counters (the records themselves are in [`MemoryStore::records`]).
#[derive(Debug, Default)]
struct TemplateSlot {
    issued: u64,
    code_uses: u64,
}

const K_CLAIMS: u32 = 0;
const K_USES: u32 = 1;
const K_CODE_USES: u32 = 2;

/// What a shard keeps per user: the head of the wallet (a list threaded through the shard's
/// slots). A user's coupons spread over the shards, so most users have an entry in several:
/// it is kept to 4 bytes, and the per-user counters live apart ([`Counters`]), in the one
/// shard the user routes to.
#[derive(Debug)]
struct UserEntry {
    head: u32,
}

impl Default for UserEntry {
    fn default() -> Self {
        UserEntry { head: NONE }
    }
}

/// A user's counters as `(template << 2 | kind, value)`, sorted.
#[derive(Debug, Default)]
struct Counters(Vec<(u32, u32)>);

/// Templates that fit in a per-user counter key.
const MAX_TEMPLATES: usize = 1 << 30;

fn user_counter_key(template: u32, kind: u32) -> u32 {
    (template << 2) | kind
}

impl Counters {
    fn counter(&self, key: u32) -> u64 {
        self.0
            .binary_search_by_key(&key, |c| c.0)
            .ok()
            .and_then(|i| self.0.get(i))
            .map_or(0, |c| u64::from(c.1))
    }

    /// Adds `delta` to a counter (one search, whether it exists or not).
    fn add(&mut self, key: u32, delta: i64) {
        let to = |value: u32| u32::try_from(add(u64::from(value), delta)).unwrap_or(u32::MAX);
        match self.0.binary_search_by_key(&key, |c| c.0) {
            Ok(i) => {
                if let Some(c) = self.0.get_mut(i) {
                    c.1 = to(c.1);
                }
            }
            Err(i) => self.0.insert(i, (key, to(0))),
        }
    }
}

fn add(value: u64, delta: i64) -> u64 {
    u64::try_from(i128::from(value) + i128::from(delta)).unwrap_or(0)
}

const S_AVAILABLE: u8 = 0;
const S_LOCKED: u8 = 1;
const S_USED: u8 = 2;
const S_EXPIRED: u8 = 3;
const S_VOIDED: u8 = 4;

/// A coupon as stored, 80 bytes: template, channel, campaign, owner and order interned, the
/// state as a tag with its order and instant, and the link to the owner's next coupon.
#[derive(Debug, Clone)]
struct Slot {
    id: CouponId,
    owner: u32,
    template: u32,
    channel: u32,
    campaign: u32,
    /// The owner's next coupon (the wallet list), or `NONE`.
    next: u32,
    /// The order holding (Locked) or having used (Used) it, else `NONE`.
    order: u32,
    version: u32,
    claimed_at: Micros,
    valid_from: Micros,
    valid_until: Micros,
    /// The hold's end (Locked), or when it was used, expired or voided.
    at: Micros,
    mode: ClaimMode,
    state: u8,
    /// Whether the key of the `claim` receipt that issued it is its id's suffix (see
    /// [`keyed_suffix`]); other claim keys are in [`Inner::claim_keys`].
    keyed: bool,
    /// Whether an instant has a fraction finer than a microsecond: then the exact instants
    /// are in [`Inner::fine`].
    fine: bool,
}

/// An instant in microseconds since 1970, 8 bytes: instants reach a store at microsecond
/// precision (see [`Repository`]); a slot with a finer one keeps its instants exactly
/// beside it ([`Slot::fine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Micros(i64);

impl Micros {
    fn of(t: DateTime<Utc>) -> Micros {
        Micros(t.timestamp_micros())
    }

    fn get(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }
}

impl Slot {
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            S_AVAILABLE => Some(self.valid_until.get()),
            S_LOCKED => Some(self.at.get()),
            _ => None,
        }
    }
}

const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Coupon slots in fixed-size chunks: growing never copies the slots already stored.
#[derive(Debug, Default)]
struct Slots {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

impl Slots {
    fn get(&self, i: u32) -> Option<&Slot> {
        self.chunks
            .get((i >> CHUNK_BITS) as usize)?
            .get(i as usize & (CHUNK - 1))
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut Slot> {
        self.chunks
            .get_mut((i >> CHUNK_BITS) as usize)?
            .get_mut(i as usize & (CHUNK - 1))
    }

    fn push(&mut self, slot: Slot) -> u32 {
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

/// Events per chunk of the feed: appending never moves the events already stored.
const FEED_CHUNK: usize = 4096;

/// An event as the feed keeps it: an `issued` event whose facts are those of a stored coupon
/// is its coupon's slot (shard and index), instant and claim mode, 24 bytes; the public
/// [`Event`] is built when the feed is read. Any other event is kept whole.
#[derive(Debug)]
enum Entry {
    Issued {
        at: DateTime<Utc>,
        slot: u32,
        shard: u8,
        mode: ClaimMode,
    },
    Full(Box<Event>),
}

/// The event feed in chunks of [`FEED_CHUNK`], oldest first; sequences are consecutive, so an
/// entry's sequence is its position after the first's.
#[derive(Debug, Default)]
struct Feed {
    chunks: VecDeque<Vec<Entry>>,
    len: usize,
    /// The last sequence assigned (0 before the first event).
    last_seq: Sequence,
}

impl Feed {
    fn push(&mut self, e: Entry) {
        self.last_seq = self.last_seq.saturating_add(1);
        match self.chunks.back_mut() {
            Some(c) if c.len() < FEED_CHUNK => c.push(e),
            _ => {
                let mut c = Vec::with_capacity(FEED_CHUNK);
                c.push(e);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    /// The sequence of the first entry kept (one past the last when empty).
    fn first_seq(&self) -> Sequence {
        self.last_seq
            .saturating_add(1)
            .saturating_sub(self.len as u64)
    }

    /// Up to `limit` entries with a sequence above `after`, with their sequences.
    fn after(&self, after: Sequence, limit: usize) -> Vec<(Sequence, &Entry)> {
        let first = self.first_seq();
        let skip =
            usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(self.len.saturating_sub(skip)));
        let mut pos = 0usize;
        for c in &self.chunks {
            if out.len() >= limit {
                break;
            }
            if pos + c.len() <= skip {
                pos += c.len();
                continue;
            }
            let from = skip.saturating_sub(pos);
            let take = limit - out.len();
            let base = first + pos as u64;
            out.extend(
                c.iter()
                    .enumerate()
                    .skip(from)
                    .take(take)
                    .map(|(i, e)| (base + i as u64, e)),
            );
            pos += c.len();
        }
        out
    }

    /// Drops the entries with a sequence at or below `through`.
    fn trim(&mut self, through: Sequence) -> u64 {
        let first = self.first_seq();
        let mut cut = usize::try_from(through.saturating_add(1).saturating_sub(first))
            .unwrap_or(usize::MAX)
            .min(self.len);
        let n = cut as u64;
        while cut > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            if c.len() <= cut {
                cut -= c.len();
                self.len -= c.len();
                self.chunks.pop_front();
            } else {
                c.drain(..cut);
                self.len -= cut;
                cut = 0;
            }
        }
        n
    }

    /// The entries that stand for slot `slot` of shard `shard`.
    fn of_slot(&mut self, shard: u8, slot: u32) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten().filter(move |e| {
            matches!(e, Entry::Issued { slot: s, shard: h, .. } if *s == slot && *h == shard)
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    templates: Table<TemplateId, TemplateSlot>,
    users: Table<UserId, UserEntry>,
    /// The counters of the users that route to this shard, by their index in `users`.
    user_counters: Map<u32, Counters>,
    channels: Table<Channel, ()>,
    campaign_ids: Table<CampaignId, ()>,
    campaigns: Map<CampaignId, Versioned<Campaign>>,
    coupons: Slots,
    coupon_ix: SlotIndex,
    /// Orders interned, each with the slots it holds or used.
    orders: Table<OrderId, Vec<u32>>,
    /// Coupons by the second their due time falls in. Entries are added when a coupon enters
    /// a state with a due time and dropped lazily once stale.
    due: BTreeMap<i64, VecDeque<u32>>,
    custom: Map<String, u64>,
    /// `claim` receipts of stored coupons, kept compactly: the key is in the coupon's slot.
    claims: SlotIndex,
    receipts: Map<ReceiptKey, Receipt>,
    /// The claim keys of slots whose key is not their id's suffix.
    claim_keys: Map<u32, IdempotencyKey>,
    /// Orders' hold deadlines ([`Op::Hold`]), and the same ordered by deadline.
    holds: Map<OrderId, DateTime<Utc>>,
    /// Order records ([`Op::PutOrder`]).
    order_records: Map<OrderId, Versioned<Order>>,
    hold_due: BTreeSet<(DateTime<Utc>, OrderId)>,
    /// Whether `receipts` holds a `claim` key (one whose receipt is not `Claimed`).
    claim_keys_in_receipts: bool,
    /// The exact instants (claimed, valid from, valid until, state's) of the slots with one
    /// finer than a microsecond.
    fine: Map<u32, [DateTime<Utc>; 4]>,
    /// The attributes of the slots that have any (most coupons carry none).
    attributes: Map<u32, Attributes>,
    /// Guards' windowed counters: by guard and subject, by bucket.
    guards: GuardTable,
}

const CLAIM: &str = "claim";

/// What follows the first `/` of a coupon id: the claim key, for the ids the service issues.
fn keyed_suffix(id: &str) -> Option<&str> {
    // A plain loop: ids are short, and `memchr`'s set-up costs more than the scan.
    let at = id.bytes().position(|b| b == b'/')?;
    id.get(at + 1..)
}

fn claim_key(key: &ReceiptKey) -> Option<&IdempotencyKey> {
    match key {
        ReceiptKey::Operation(op, k) if *op == CLAIM => Some(k),
        _ => None,
    }
}

/// Where a counter lives.
enum CounterAt<'a> {
    Issued(&'a TemplateId),
    CodeUses(&'a TemplateId),
    User(&'a TemplateId, &'a UserId, u32),
    Custom(&'a String),
    Guard(&'a GuardName, &'a str, i64),
}

fn counter_at(key: &CounterKey) -> CounterAt<'_> {
    match key {
        CounterKey::Issued(t) => CounterAt::Issued(t),
        CounterKey::CodeUses(t) => CounterAt::CodeUses(t),
        CounterKey::UserClaims(t, u) => CounterAt::User(t, u, K_CLAIMS),
        CounterKey::UserUses(t, u) => CounterAt::User(t, u, K_USES),
        CounterKey::CodeUserUses(t, u) => CounterAt::User(t, u, K_CODE_USES),
        CounterKey::Custom(s) => CounterAt::Custom(s),
        CounterKey::Guard {
            guard,
            subject,
            bucket,
        } => CounterAt::Guard(guard, subject, *bucket),
    }
}

impl Inner {
    /// Clears the tables' memos: the names they point at belong to the last batch.
    fn forget(&mut self) {
        self.templates.forget();
        self.users.forget();
        self.channels.forget();
        self.campaign_ids.forget();
        self.orders.forget();
    }

    /// Slot `ix`'s instants, exactly: claimed, valid from, valid until, the state's.
    fn exact(&self, ix: u32, s: &Slot) -> [DateTime<Utc>; 4] {
        let coarse = || {
            [
                s.claimed_at.get(),
                s.valid_from.get(),
                s.valid_until.get(),
                s.at.get(),
            ]
        };
        if s.fine {
            self.fine.get(&ix).copied().unwrap_or_else(coarse)
        } else {
            coarse()
        }
    }

    /// When slot `ix` falls due, exactly.
    fn exact_due(&self, ix: u32, s: &Slot) -> Option<DateTime<Utc>> {
        let [_, _, until, at] = self.exact(ix, s);
        match s.state {
            S_AVAILABLE => Some(until),
            S_LOCKED => Some(at),
            _ => None,
        }
    }

    fn state_of(&self, s: &Slot, at: DateTime<Utc>) -> Option<CouponState> {
        let order = || self.orders.name(s.order).cloned();
        Some(match s.state {
            S_AVAILABLE => CouponState::Available,
            S_LOCKED => CouponState::Locked {
                order: order()?,
                until: at,
            },
            S_USED => CouponState::Used {
                order: order()?,
                at,
            },
            S_EXPIRED => CouponState::Expired { at },
            _ => CouponState::Voided { at },
        })
    }

    /// The tag, order and instant a state is stored as (interning its order).
    fn encode(
        &mut self,
        state: &CouponState,
        default_at: DateTime<Utc>,
    ) -> (u8, u32, DateTime<Utc>) {
        match state {
            CouponState::Available => (S_AVAILABLE, NONE, default_at),
            CouponState::Locked { order, until } => (S_LOCKED, self.orders.intern(order), *until),
            CouponState::Used { order, at } => (S_USED, self.orders.intern(order), *at),
            CouponState::Expired { at } => (S_EXPIRED, NONE, *at),
            CouponState::Voided { at } => (S_VOIDED, NONE, *at),
        }
    }

    /// The coupon in slot `ix`.
    fn to_coupon(&self, ix: u32) -> Option<Versioned<Coupon>> {
        let s = self.coupons.get(ix)?;
        let [claimed_at, valid_from, valid_until, at] = self.exact(ix, s);
        Some(Versioned {
            value: Coupon {
                id: s.id.clone(),
                template: self.templates.name(s.template)?.clone(),
                owner: self.users.name(s.owner)?.clone(),
                channel: self.channels.name(s.channel)?.clone(),
                campaign: if s.campaign == NONE {
                    None
                } else {
                    Some(self.campaign_ids.name(s.campaign)?.clone())
                },
                mode: s.mode,
                claimed_at,
                valid_from,
                valid_until,
                state: self.state_of(s, at)?,
                attributes: self.attributes.get(&ix).cloned().unwrap_or_default(),
            },
            version: u64::from(s.version),
        })
    }

    /// The slots of a user's wallet.
    fn wallet_slots(&self, user: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.users.at(user).map_or(NONE, |e| e.head);
        while at != NONE && out.len() <= self.coupons.len {
            out.push(at);
            at = self.coupons.get(at).map_or(NONE, |s| s.next);
        }
        out
    }

    /// Removes slot `ix` from `owner`'s wallet list.
    fn unlink(&mut self, owner: u32, ix: u32) {
        let next_of_ix = self.coupons.get(ix).map_or(NONE, |s| s.next);
        let Some(e) = self.users.at_mut(owner) else {
            return;
        };
        if e.head == ix {
            e.head = next_of_ix;
            return;
        }
        let mut at = e.head;
        let mut steps = 0;
        while at != NONE && steps <= self.coupons.len {
            let Some(s) = self.coupons.get_mut(at) else {
                return;
            };
            if s.next == ix {
                s.next = next_of_ix;
                return;
            }
            at = s.next;
            steps += 1;
        }
    }

    /// Puts slot `ix` at the head of `owner`'s wallet list.
    fn link(&mut self, owner: u32, ix: u32) {
        let Some(e) = self.users.at_mut(owner) else {
            return;
        };
        let head = std::mem::replace(&mut e.head, ix);
        if let Some(s) = self.coupons.get_mut(ix) {
            s.next = head;
        }
    }

    fn coupons_at(&self, ixs: &[u32]) -> Vec<Versioned<Coupon>> {
        let mut out: Vec<Versioned<Coupon>> =
            ixs.iter().filter_map(|&i| self.to_coupon(i)).collect();
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        out
    }

    /// A counter's value (read path: remembers nothing).
    fn counter(&self, key: &CounterKey) -> u64 {
        match counter_at(key) {
            CounterAt::Issued(t) => self.templates.lookup(t).map_or(0, |s| s.issued),
            CounterAt::CodeUses(t) => self.templates.lookup(t).map_or(0, |s| s.code_uses),
            CounterAt::User(t, u, kind) => match (self.templates.get(t), self.users.get(u)) {
                (Some(ti), Some(ui)) => self
                    .user_counters
                    .get(&ui)
                    .map_or(0, |c| c.counter(user_counter_key(ti, kind))),
                _ => 0,
            },
            CounterAt::Custom(s) => self.custom.get(s).copied().unwrap_or(0),
            CounterAt::Guard(g, subject, bucket) => self.guard_sum(g, subject, bucket, 1),
        }
    }

    /// The sum of a guard's buckets `bucket - span + 1 ..= bucket`.
    fn guard_sum(&self, guard: &GuardName, subject: &str, bucket: i64, span: u32) -> u64 {
        let hash = guard_hash(guard, subject);
        let at = self.guards.find(hash, guard, subject);
        guard_window(self.guards.buckets(at), bucket, span).1
    }

    /// Adds `delta` to a guard's bucket and drops the buckets the window no longer sums
    /// (`at`: the pair's entry if known).
    #[allow(clippy::too_many_arguments)]
    fn guard_add(
        &mut self,
        hash: u32,
        at: Option<u32>,
        guard: &GuardName,
        subject: &str,
        bucket: i64,
        span: u32,
        delta: i64,
    ) {
        if let Some(buckets) = self.guards.entry(hash, at, guard, subject) {
            buckets.add(bucket, delta);
            buckets.drop_before(bucket.saturating_sub(i64::from(span.max(1)) - 1));
        }
    }

    /// A counter's value (commit path: remembers the ids it looked up).
    fn counter_mut(&mut self, key: &CounterKey) -> u64 {
        match counter_at(key) {
            CounterAt::Issued(t) => self
                .templates
                .find(t)
                .and_then(|i| self.templates.at(i))
                .map_or(0, |s| s.issued),
            CounterAt::CodeUses(t) => self
                .templates
                .find(t)
                .and_then(|i| self.templates.at(i))
                .map_or(0, |s| s.code_uses),
            CounterAt::User(t, u, kind) => match (self.templates.find(t), self.users.find(u)) {
                (Some(ti), Some(ui)) => self
                    .user_counters
                    .get(&ui)
                    .map_or(0, |c| c.counter(user_counter_key(ti, kind))),
                _ => 0,
            },
            CounterAt::Custom(s) => self.custom.get(s).copied().unwrap_or(0),
            CounterAt::Guard(g, subject, bucket) => self.guard_sum(g, subject, bucket, 1),
        }
    }

    fn bump(&mut self, key: &CounterKey, delta: i64) {
        match counter_at(key) {
            CounterAt::Issued(t) => {
                if let Some(s) = self.templates.entry(t) {
                    s.issued = add(s.issued, delta);
                }
            }
            CounterAt::CodeUses(t) => {
                if let Some(s) = self.templates.entry(t) {
                    s.code_uses = add(s.code_uses, delta);
                }
            }
            CounterAt::User(t, u, kind) => {
                let ti = self.templates.intern(t);
                let ui = self.users.intern(u);
                self.user_counters
                    .entry(ui)
                    .or_default()
                    .add(user_counter_key(ti, kind), delta);
            }
            CounterAt::Custom(s) => {
                let v = self.custom.entry(s.clone()).or_default();
                *v = add(*v, delta);
            }
            CounterAt::Guard(g, subject, bucket) => {
                if let Some(b) = self.guards.entry(guard_hash(g, subject), None, g, subject) {
                    b.add(bucket, delta);
                }
            }
        }
    }

    fn receipt_exists(&self, key: &ReceiptKey) -> bool {
        match claim_key(key) {
            Some(k) => {
                self.claim_slot(k).is_some()
                    || (self.claim_keys_in_receipts && self.receipts.contains_key(key))
            }
            None => self.receipts.contains_key(key),
        }
    }

    fn receipt(&self, key: &ReceiptKey) -> Option<Receipt> {
        if let Some(ix) = claim_key(key).and_then(|k| self.claim_slot(k)) {
            if let Some(slot) = self.coupons.get(ix) {
                return Some(Receipt::Claimed {
                    coupon: slot.id.clone(),
                });
            }
        }
        self.receipts.get(key).cloned()
    }

    fn version_ok(current: Option<Version>, expect: Expect) -> bool {
        match expect {
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current == Some(v),
        }
    }

    /// Whether an op's condition holds; an error when applying it would overflow the store's
    /// compact fields.
    fn holds(&mut self, op: &Op) -> Result<bool, MemoryStoreError> {
        Ok(match op {
            // Checked against the records by `MemoryStore::commit`.
            Op::PutTemplate { .. } => true,
            Op::PutCampaign { campaign, expect } => {
                Self::version_ok(self.campaigns.get(&campaign.id).map(|c| c.version), *expect)
            }
            Op::PutCoupon { coupon, expect } => {
                let current = self
                    .coupon_slot(&coupon.id)
                    .and_then(|i| self.coupons.get(i))
                    .map(|s| s.version);
                if current == Some(u32::MAX) {
                    return Err(MemoryStoreError::Full {
                        what: "coupon versions",
                    });
                }
                Self::version_ok(current.map(u64::from), *expect)
            }
            Op::Count { key, delta, limit } => {
                let next = i128::from(self.counter_mut(key)) + i128::from(*delta);
                let fits = next >= 0 && limit.is_none_or(|l| next <= i128::from(l));
                if fits
                    && matches!(counter_at(key), CounterAt::User(..))
                    && next > i128::from(u32::MAX)
                {
                    return Err(MemoryStoreError::Full {
                        what: "per-user counter",
                    });
                }
                fits
            }
            Op::InsertReceipt { key, .. } => !self.receipt_exists(key),
            Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                delta,
                limit,
            } => {
                let at = self.guards.find(guard_hash(guard, subject), guard, subject);
                let (current, sum) = guard_window(self.guards.buckets(at), *bucket, *span);
                let next = i128::from(sum) + i128::from(*delta);
                i128::from(current) + i128::from(*delta) >= 0 && next <= i128::from(*limit)
            }
            Op::PutOrder { order, expect } => Self::version_ok(
                self.order_records.get(&order.id).map(|o| o.version),
                *expect,
            ),
            Op::Hold { .. } | Op::Emit { .. } => true,
        })
    }

    fn capacity_ok(&self, batch: &Batch) -> Result<(), MemoryStoreError> {
        let n = batch.ops.len();
        let max = NONE as usize;
        for (what, len) in [
            ("coupons", self.coupons.len),
            ("users", self.users.len()),
            ("channels", self.channels.len()),
            ("campaigns", self.campaign_ids.len()),
            ("orders", self.orders.len()),
        ] {
            if len.saturating_add(n) >= max {
                return Err(MemoryStoreError::Full { what });
            }
        }
        if self.templates.len().saturating_add(n) >= MAX_TEMPLATES {
            return Err(MemoryStoreError::Full { what: "templates" });
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            // The record is written by `MemoryStore::commit`; its counters live here.
            Op::PutTemplate { record, .. } => {
                self.templates.intern(record.id());
            }
            Op::PutCampaign { campaign, .. } => {
                self.campaign_ids.intern(&campaign.id);
                let version = self
                    .campaigns
                    .get(&campaign.id)
                    .map_or(1, |c| c.version.saturating_add(1));
                self.campaigns.insert(
                    campaign.id.clone(),
                    Versioned {
                        value: campaign.clone(),
                        version,
                    },
                );
            }
            Op::PutCoupon { coupon, .. } => {
                self.put_coupon(coupon, None, false);
            }
            Op::Count { key, delta, .. } => self.bump(key, *delta),
            Op::InsertReceipt { key, receipt } => {
                if let (Some(k), Receipt::Claimed { coupon }) = (claim_key(key), receipt) {
                    // Applied after the batch's coupons, so a coupon issued in the same batch is
                    // found.
                    if let Some(ix) = self.coupon_slot(coupon) {
                        match self.claim_of(ix) {
                            Some(c) if c == k.as_str() => return, // stored with its coupon
                            Some(_) => {}
                            None => {
                                self.claim_keys.insert(ix, k.clone());
                                self.claims.insert(hash32(k.as_str()), ix);
                                return;
                            }
                        }
                    }
                }
                self.claim_keys_in_receipts |= claim_key(key).is_some();
                self.receipts.insert(key.clone(), receipt.clone());
            }
            Op::Hold { order, until } => {
                if let Some(old) = self.holds.remove(order) {
                    self.hold_due.remove(&(old, order.clone()));
                }
                if let Some(at) = until {
                    self.holds.insert(order.clone(), *at);
                    self.hold_due.insert((*at, order.clone()));
                }
            }
            Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                delta,
                ..
            } => self.guard_add(
                guard_hash(guard, subject),
                None,
                guard,
                subject,
                *bucket,
                *span,
                *delta,
            ),
            // Appended to the feed by `MemoryStore::commit`.
            Op::Emit { .. } => {}
            Op::PutOrder { order, .. } => {
                let version = self
                    .order_records
                    .get(&order.id)
                    .map_or(1, |o| o.version.saturating_add(1));
                self.order_records.insert(
                    order.id.clone(),
                    Versioned {
                        value: order.as_ref().clone(),
                        version,
                    },
                );
            }
        }
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Vec<(DateTime<Utc>, OrderId)> {
        self.hold_due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The facts of the coupon in slot `ix`, as an event carries them.
    fn facts(&self, ix: u32) -> Option<CouponFacts> {
        let s = self.coupons.get(ix)?;
        Some(CouponFacts {
            id: s.id.clone(),
            template: self.templates.name(s.template)?.clone(),
            user: self.users.name(s.owner)?.clone(),
            channel: self.channels.name(s.channel)?.clone(),
            campaign: if s.campaign == NONE {
                None
            } else {
                Some(self.campaign_ids.name(s.campaign)?.clone())
            },
            claimed_at: self.exact(ix, s)[0],
            attributes: self.attributes.get(&ix).cloned().unwrap_or_default(),
        })
    }

    /// Whether slot `ix` holds exactly these facts.
    fn has_facts(&self, ix: u32, f: &CouponFacts) -> bool {
        let Some(s) = self.coupons.get(ix) else {
            return false;
        };
        let named = |t: Option<&TemplateId>| t == Some(&f.template);
        s.id == f.id
            && self.exact(ix, s)[0] == f.claimed_at
            && named(self.templates.name(s.template))
            && self.users.name(s.owner) == Some(&f.user)
            && self.channels.name(s.channel) == Some(&f.channel)
            && match &f.campaign {
                None => s.campaign == NONE,
                Some(c) => s.campaign != NONE && self.campaign_ids.name(s.campaign) == Some(c),
            }
            && match self.attributes.get(&ix) {
                None => f.attributes.is_empty(),
                Some(a) => *a == f.attributes,
            }
    }

    /// Whether writing `c` over slot `ix` would change the facts its events carry.
    fn changes_facts(&self, ix: u32, c: &Coupon) -> bool {
        let Some(s) = self.coupons.get(ix) else {
            return false;
        };
        self.exact(ix, s)[0] != c.claimed_at
            || self.templates.name(s.template) != Some(&c.template)
            || self.users.name(s.owner) != Some(&c.owner)
            || self.channels.name(s.channel) != Some(&c.channel)
            || match &c.campaign {
                None => s.campaign != NONE,
                Some(id) => s.campaign == NONE || self.campaign_ids.name(s.campaign) != Some(id),
            }
            || match self.attributes.get(&ix) {
                None => !c.attributes.is_empty(),
                Some(a) => *a != c.attributes,
            }
    }

    /// The slot of a coupon: under its claim key when its id is `<prefix>/<claim key>` (the
    /// service's ids: the claim's receipt check and the id's absence check then read one
    /// index entry), else in the index of ids.
    fn coupon_slot(&self, id: &CouponId) -> Option<u32> {
        let is = |ix: u32| self.coupons.get(ix).is_some_and(|s| &s.id == id);
        keyed_suffix(id.as_str())
            .and_then(|k| self.claims.find(hash32(k), is))
            .or_else(|| match self.coupon_ix.len {
                0 => None,
                _ => self.coupon_ix.find(hash32(id.as_str()), is),
            })
    }

    fn claim_slot(&self, key: &IdempotencyKey) -> Option<u32> {
        self.claim_slot_hashed(key, hash32(key.as_str()))
    }

    fn claim_slot_hashed(&self, key: &IdempotencyKey, hash: u32) -> Option<u32> {
        self.claims
            .find(hash, |ix| self.claim_of(ix) == Some(key.as_str()))
    }

    /// The key of the `claim` receipt stored with slot `ix`.
    fn claim_of(&self, ix: u32) -> Option<&str> {
        let slot = self.coupons.get(ix)?;
        if slot.keyed {
            keyed_suffix(slot.id.as_str())
        } else {
            self.claim_keys.get(&ix).map(IdempotencyKey::as_str)
        }
    }

    fn push_due(&mut self, at: DateTime<Utc>, ix: u32) {
        self.due.entry(at.timestamp()).or_default().push_back(ix);
    }

    /// Stores a coupon; `claim` is the key of the claim receipt the same batch stores for it,
    /// and `fresh` says it is known to be absent.
    fn put_coupon(&mut self, c: &Coupon, claim: Option<&IdempotencyKey>, fresh: bool) -> u32 {
        self.put_coupon_named(c, &CouponNames::of(c), claim, fresh)
    }

    /// [`put_coupon`](Self::put_coupon) with the coupon's names prepared.
    fn put_coupon_named(
        &mut self,
        c: &Coupon,
        names: &CouponNames<'_>,
        claim: Option<&IdempotencyKey>,
        fresh: bool,
    ) -> u32 {
        let template = self.templates.intern_name(&c.template, &names.template);
        let channel = self.channels.intern_name(&c.channel, &names.channel);
        let campaign = c
            .campaign
            .as_ref()
            .map_or(NONE, |id| self.campaign_ids.intern(id));
        let owner = self.users.intern_name(&c.owner, &names.owner);
        let (state, order, at) = self.encode(&c.state, c.claimed_at);
        let exact = [c.claimed_at, c.valid_from, c.valid_until, at];
        let fine = exact
            .iter()
            // A fraction below a microsecond, or a leap second's.
            .any(|t| {
                let n = t.timestamp_subsec_nanos();
                n % 1_000 != 0 || n >= 1_000_000_000
            })
            .then_some(exact);
        let existing = if fresh { None } else { self.coupon_slot(&c.id) };
        match existing.and_then(|i| self.coupons.get_mut(i).map(|s| (i, s))) {
            Some((ix, slot)) => {
                let (old_owner, old_order, old_due) = (slot.owner, slot.order, slot.due_at());
                slot.owner = owner;
                slot.template = template;
                slot.channel = channel;
                slot.campaign = campaign;
                slot.order = order;
                slot.version = slot.version.saturating_add(1);
                slot.claimed_at = Micros::of(c.claimed_at);
                slot.valid_from = Micros::of(c.valid_from);
                slot.valid_until = Micros::of(c.valid_until);
                slot.at = Micros::of(at);
                slot.fine = fine.is_some();
                slot.mode = c.mode;
                slot.state = state;
                let new_due = slot.due_at();
                match fine {
                    Some(exact) => {
                        self.fine.insert(ix, exact);
                    }
                    None => {
                        if !self.fine.is_empty() {
                            self.fine.remove(&ix);
                        }
                    }
                }
                if c.attributes.is_empty() {
                    self.attributes.remove(&ix);
                } else {
                    self.attributes.insert(ix, c.attributes.clone());
                }
                if old_owner != owner {
                    self.unlink(old_owner, ix);
                    self.link(owner, ix);
                }
                if old_order != order {
                    if let Some(v) = self.orders.at_mut(old_order) {
                        v.retain(|&i| i != ix);
                    }
                    if let Some(v) = self.orders.at_mut(order) {
                        v.push(ix);
                    }
                }
                if let Some(at) = new_due {
                    if old_due != Some(at) {
                        self.push_due(at, ix);
                    }
                }
                ix
            }
            None => {
                let keyed = claim.is_some_and(|k| keyed_suffix(c.id.as_str()) == Some(k.as_str()));
                let slot = Slot {
                    id: c.id.clone(),
                    keyed,
                    owner,
                    template,
                    channel,
                    campaign,
                    next: NONE,
                    order,
                    version: 1,
                    claimed_at: Micros::of(c.claimed_at),
                    valid_from: Micros::of(c.valid_from),
                    valid_until: Micros::of(c.valid_until),
                    at: Micros::of(at),
                    mode: c.mode,
                    state,
                    fine: fine.is_some(),
                };
                let due = slot.due_at();
                let ix = self.coupons.push(slot);
                if let Some(exact) = fine {
                    self.fine.insert(ix, exact);
                }
                if !c.attributes.is_empty() {
                    self.attributes.insert(ix, c.attributes.clone());
                }
                if let Some(k) = claim {
                    self.claims.insert(hash32(k.as_str()), ix);
                    if !keyed {
                        self.claim_keys.insert(ix, k.clone());
                    }
                }
                if !keyed {
                    self.coupon_ix.insert(hash32(c.id.as_str()), ix);
                }
                self.link(owner, ix);
                if let Some(v) = self.orders.at_mut(order) {
                    v.push(ix);
                }
                if let Some(at) = due {
                    self.push_due(at, ix);
                }
                ix
            }
        }
    }

    /// Whether the entry of coupon `ix` in the due bucket `second` is stale (the coupon's due
    /// time is no longer in that second).
    fn stale(&self, ix: u32, second: i64) -> bool {
        self.coupons
            .get(ix)
            .and_then(Slot::due_at)
            .is_none_or(|t| t.timestamp() != second)
    }

    /// Up to `limit` slots due at `now`, earliest second first, with their second.
    fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<(i64, u32)> {
        let mut found: Vec<(i64, u32)> = Vec::new();
        if limit == 0 {
            return Vec::new();
        }
        let mut seen: HashSet<u32, BuildHasherDefault<FxHasher>> = HashSet::default();
        let mut emptied = Vec::new();
        let seconds: Vec<i64> = self
            .due
            .range(..=now.timestamp())
            .map(|(k, _)| *k)
            .collect();
        'outer: for second in seconds {
            // Drop stale entries at the front of the bucket.
            loop {
                let front = self.due.get(&second).and_then(|q| q.front().copied());
                match front {
                    Some(ix) if self.stale(ix, second) => {
                        if let Some(q) = self.due.get_mut(&second) {
                            q.pop_front();
                        }
                    }
                    _ => break,
                }
            }
            let Some(q) = self.due.get(&second) else {
                continue;
            };
            if q.is_empty() {
                emptied.push(second);
                continue;
            }
            for &ix in q {
                let is_due = self
                    .coupons
                    .get(ix)
                    .and_then(|s| self.exact_due(ix, s))
                    .is_some_and(|t| t.timestamp() == second && t <= now);
                if is_due && seen.insert(ix) {
                    found.push((second, ix));
                    if found.len() >= limit {
                        break 'outer;
                    }
                }
            }
        }
        for s in emptied {
            self.due.remove(&s);
        }
        found
    }
}

/// A claim as [`Service`](crate::service::Service) writes it: the claim's receipt, the
/// template's issued counter, the user's claim counter, and the new coupon, whose id is
/// usually `<template>/<claim key>`, followed by guard counts ([`Op::CountWindow`]) and events.
/// The store commits it on a path of its own that looks each name up once; the effect is the
/// general path's, op for op.
struct ClaimBatch<'a> {
    /// The receipt's op, its key and the claim key.
    receipt_op: &'a Op,
    receipt: &'a ReceiptKey,
    key: &'a IdempotencyKey,
    issued: Option<u64>,
    per_user: Option<u64>,
    coupon: &'a Coupon,
    /// The guard counts and events that follow the four ops.
    tail: &'a [Op],
}

impl<'a> ClaimBatch<'a> {
    fn of(batch: &'a Batch) -> Option<ClaimBatch<'a>> {
        let [
            Op::InsertReceipt {
                key: receipt,
                receipt: Receipt::Claimed { coupon: id },
            },
            Op::Count {
                key: CounterKey::Issued(t1),
                delta: 1,
                limit: issued,
            },
            Op::Count {
                key: CounterKey::UserClaims(t2, user),
                delta: 1,
                limit: per_user,
            },
            Op::PutCoupon {
                coupon,
                expect: Expect::Absent,
            },
            tail @ ..,
        ] = batch.ops.as_slice()
        else {
            return None;
        };
        if !tail
            .iter()
            .all(|op| matches!(op, Op::Emit { .. } | Op::CountWindow { .. }))
        {
            return None;
        }
        let key = claim_key(receipt)?;
        let fits = *id == coupon.id
            && *t1 == coupon.template
            && *t2 == coupon.template
            && *user == coupon.owner;
        fits.then_some(ClaimBatch {
            receipt_op: batch.ops.first()?,
            receipt,
            key,
            issued: *issued,
            per_user: *per_user,
            coupon,
            tail,
        })
    }
}

/// How many shards a store spreads its records over: a power of two, at most 32.
const SHARDS: usize = 16;

/// The shard a key's text routes to. It takes the hash's low bits; the shards' own indexes
/// take the high half ([`hash32`]), so a shard's keys still spread over its index.
fn route(text: &str) -> usize {
    (hash64(text) as usize) & (SHARDS - 1)
}

/// A coupon's shard: by the claim key its id ends in when it has one (see [`keyed_suffix`]), so
/// that a claimed coupon and its claim receipt share a shard, else by its id.
fn coupon_shard(id: &CouponId) -> usize {
    route(keyed_suffix(id.as_str()).unwrap_or(id.as_str()))
}

fn receipt_shard(key: &ReceiptKey) -> usize {
    match key {
        ReceiptKey::Operation(_, k) => route(k.as_str()),
        ReceiptKey::Code(c) => route(c.as_str()),
    }
}

fn counter_shard(key: &CounterKey) -> usize {
    match key {
        CounterKey::Issued(t) | CounterKey::CodeUses(t) => route(t.as_str()),
        CounterKey::UserClaims(_, u)
        | CounterKey::UserUses(_, u)
        | CounterKey::CodeUserUses(_, u) => route(u.as_str()),
        CounterKey::Custom(s) => route(s),
        CounterKey::Guard { subject, .. } => route(subject),
    }
}

/// The shard an op writes in (`None`: template records and events live apart from the shards).
fn op_shard(op: &Op) -> Option<usize> {
    match op {
        Op::PutTemplate { .. } | Op::Emit { .. } => None,
        Op::PutCampaign { campaign, .. } => Some(route(campaign.id.as_str())),
        Op::PutCoupon { coupon, .. } => Some(coupon_shard(&coupon.id)),
        Op::Count { key, .. } => Some(counter_shard(key)),
        Op::InsertReceipt { key, .. } => Some(receipt_shard(key)),
        Op::Hold { order, .. } => Some(route(order.as_str())),
        Op::PutOrder { order, .. } => Some(route(order.id.as_str())),
        Op::CountWindow { subject, .. } => Some(route(subject)),
    }
}

/// The write locks a commit holds: the shards it touches, taken in ascending order.
struct Held<'a> {
    shards: [Option<RwLockWriteGuard<'a, Inner>>; SHARDS],
}

impl Held<'_> {
    /// Shard `s`, which the commit locked.
    fn at(&mut self, s: usize) -> Result<&mut Inner, MemoryStoreError> {
        self.shards
            .get_mut(s)
            .and_then(|g| g.as_deref_mut())
            .ok_or(MemoryStoreError::Unlocked { shard: s })
    }

    /// Shard `s` if the commit locked it.
    fn get(&self, s: usize) -> Option<&Inner> {
        self.shards.get(s).and_then(|g| g.as_deref())
    }

    fn each(&mut self) -> impl Iterator<Item = &mut Inner> {
        self.shards.iter_mut().filter_map(|g| g.as_deref_mut())
    }

    /// The feed entry of an event, compact when it is an `issued` event of a coupon this commit
    /// holds the shard of and the coupon still carries its facts.
    fn entry(&self, event: &Event) -> Entry {
        if let EventKind::Issued { coupon: f, mode } = &event.kind {
            let s = coupon_shard(&f.id);
            if let Some(g) = self.get(s) {
                if let Some(ix) = g.coupon_slot(&f.id).filter(|&ix| g.has_facts(ix, f)) {
                    return Entry::Issued {
                        at: event.at,
                        slot: ix,
                        shard: u8::try_from(s).unwrap_or(u8::MAX),
                        mode: *mode,
                    };
                }
            }
        }
        Entry::Full(Box::new(event.clone()))
    }
}

/// Whether two texts are equal, without reading them when they are the same shared text
/// (`Arc<str>`'s `==` always compares the bytes).
fn same(a: &str, b: &str) -> bool {
    (std::ptr::eq(a.as_ptr(), b.as_ptr()) && a.len() == b.len()) || a == b
}

/// Whether a coupon carries exactly these facts.
fn has_facts(c: &Coupon, f: &CouponFacts) -> bool {
    same(c.id.as_str(), f.id.as_str())
        && same(c.template.as_str(), f.template.as_str())
        && same(c.owner.as_str(), f.user.as_str())
        && same(c.channel.as_str(), f.channel.as_str())
        && match (&c.campaign, &f.campaign) {
            (None, None) => true,
            (Some(a), Some(b)) => same(a.as_str(), b.as_str()),
            _ => false,
        }
        && c.claimed_at == f.claimed_at
        && c.attributes == f.attributes
}

/// The bit of shard `s` in a set of shards.
fn bit(s: usize) -> u32 {
    1u32 << (s & (SHARDS - 1))
}

/// Guard counts whose entry the claim path remembers between its check and its write.
const REMEMBERED: usize = 8;

/// A thread-safe in-memory [`Repository`], sharded.
///
/// Records are spread over 16 shards, each under its own `RwLock`, by a hash of their key: a
/// coupon by its id (by the claim key its id ends in, when it has one, so a claim's receipt
/// and coupon share a shard), a counter by its template (stock), user (per-user counters) or
/// subject (guards), a receipt by its key, a campaign or an order's hold by its id.
/// [`commit`](Repository::commit) takes the write locks of every shard its batch touches in
/// ascending order (so two commits never wait on each other in a cycle), checks every
/// condition, applies all of it, and appends its events to the feed under one more lock taken
/// last; a batch is atomic and its conditions exact under any number of threads, and commits on
/// different shards run side by side. Reads of one record lock its shard; reads that span
/// shards (a wallet, an order's coupons, due coupons, the feed) hold every shard's read lock at
/// once, so they see each commit whole or not at all. Template records sit under a lock of
/// their own, so reading a template never waits for a claim.
///
/// Coupons are stored compactly (template, channel and campaign interned; ids shared with the
/// caller's `Arc<str>`), with a wallet index by user, an index by order, and a due-time index
/// for [`due`](Repository::due), in each shard. A coupon stored with its `claim` receipt whose
/// id is `<anything>/<claim key>` (the ids [`Service`](crate::service::Service) gives) is
/// indexed once, under the claim key: the receipt's check and the id's check read the same
/// entry. The service's claim batch (receipt, issued counter, user's claim counter, new coupon,
/// guard counts, events) is committed on a path that looks each name up once, with the same
/// effect as the general path.
///
/// The event feed keeps an `issued` event as its coupon's slot, instant and claim mode (24
/// bytes; the [`Event`] is built when [`events`](Repository::events) reads it), and any other
/// event whole. [`TrimEvents::trim_events`] frees what consumers have read.
///
/// Its hash maps use a fast non-keyed hash (FxHash): it is meant for tests, benchmarks and
/// single-process embedding, not for keys chosen by an adversary to collide.
///
/// A poisoned lock (a panic while holding it, which the store's own code never causes) is
/// recovered: the data is consistent because conditions are checked before anything is
/// written.
///
/// ```
/// use coupons::repository::{Batch, Commit, CounterKey, MemoryStore, Op, Repository};
/// let store = MemoryStore::new();
/// let key = CounterKey::Custom("signups".into());
/// let bump = Batch { ops: vec![Op::Count { key: key.clone(), delta: 1, limit: Some(1) }] };
/// assert_eq!(store.commit(&bump)?, Commit::Applied);
/// assert_eq!(store.commit(&bump)?, Commit::Conflict { index: 0 }); // would pass the limit
/// assert_eq!(store.counter(&key)?, 1);
/// # Ok::<(), coupons::repository::MemoryStoreError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    shards: [RwLock<Inner>; SHARDS],
    /// The event feed, locked after the shards.
    feed: Mutex<Feed>,
    /// The template records, under a lock of their own: reading a template (every claim and
    /// checkout does) never waits for a commit that does not write one. A commit that writes
    /// templates takes this lock after the shards', and holds it to its end.
    records: RwLock<Map<TemplateId, Versioned<Arc<TemplateRecord>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store with room for `coupons` coupons and their claim receipts, so that
    /// issuing them never grows (and re-hashes) the indexes.
    pub fn with_capacity(coupons: usize) -> MemoryStore {
        let store = MemoryStore::default();
        // Claimed coupons are indexed by their claim key alone (see `coupon_slot`); a shard
        // gets its share and an eighth more.
        let share = coupons / SHARDS + coupons / SHARDS / 8 + 16;
        for s in &store.shards {
            let mut g = s.write().unwrap_or_else(PoisonError::into_inner);
            g.claims.reserve(share);
            g.coupons.chunks.reserve(share.div_ceil(CHUNK));
        }
        store
    }

    /// Number of coupons stored.
    pub fn coupon_count(&self) -> usize {
        self.read_all().iter().map(|g| g.coupons.len).sum()
    }

    /// Events stored and not yet trimmed.
    pub fn event_backlog(&self) -> usize {
        self.feed().len
    }

    fn read(&self, s: usize) -> Option<RwLockReadGuard<'_, Inner>> {
        self.shards
            .get(s)
            .map(|l| l.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every shard's read lock, in ascending order.
    fn read_all(&self) -> Vec<RwLockReadGuard<'_, Inner>> {
        self.shards
            .iter()
            .map(|l| l.read().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    /// The write locks of the shards in `set`, in ascending order.
    fn lock(&self, set: u32) -> Held<'_> {
        let mut held = Held {
            shards: std::array::from_fn(|_| None),
        };
        let mut rest = set;
        while rest != 0 {
            let s = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let (Some(slot), Some(lock)) = (held.shards.get_mut(s), self.shards.get(s)) {
                *slot = Some(lock.write().unwrap_or_else(PoisonError::into_inner));
            }
        }
        held
    }

    fn feed(&self) -> MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn records(&self) -> RwLockReadGuard<'_, Map<TemplateId, Versioned<Arc<TemplateRecord>>>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits a [`ClaimBatch`]: the checks of ops 0 to 3 and of the guard counts after them
    /// in order, then the writes.
    fn claim(&self, batch: &Batch, c: &ClaimBatch<'_>) -> Result<Commit, MemoryStoreError> {
        let conflict = |index| Ok(Commit::Conflict { index });
        // Every name hashed once, before any lock is taken.
        let keyed = keyed_suffix(c.coupon.id.as_str()) == Some(c.key.as_str());
        let key = Name::hashed(c.key.as_str());
        let names = CouponNames::of(c.coupon);
        let sr = key.shard;
        let sc = if keyed {
            sr
        } else {
            coupon_shard(&c.coupon.id)
        };
        let (st, su) = (names.template.shard, names.owner.shard);
        let mut set = bit(sr) | bit(sc) | bit(st) | bit(su);
        // Each guard count's shard, hash and entry, found once for the check and the write.
        let mut found = [(0usize, 0u32, None::<u32>); REMEMBERED];
        for (i, op) in c.tail.iter().enumerate() {
            if let Op::CountWindow { guard, subject, .. } = op {
                let (s, hash) = guard_key(guard, subject);
                set |= bit(s);
                if let Some(f) = found.get_mut(i) {
                    *f = (s, hash, None);
                }
            }
        }
        let mut held = self.lock(set);
        for g in held.each() {
            g.forget();
            g.capacity_ok(batch)?;
        }
        let g = held.at(sr)?;
        if g.claim_slot_hashed(c.key, key.hash).is_some()
            || (g.claim_keys_in_receipts && g.receipts.contains_key(c.receipt))
        {
            return conflict(0);
        }
        let g = held.at(st)?;
        let issued = g
            .templates
            .find_name(&c.coupon.template, &names.template)
            .and_then(|i| g.templates.at(i))
            .map_or(0, |s| s.issued);
        if c.issued.is_some_and(|l| issued >= l) {
            return conflict(1);
        }
        let g = held.at(su)?;
        let claims = match (
            g.templates.find_name(&c.coupon.template, &names.template),
            g.users.find_name(&c.coupon.owner, &names.owner),
        ) {
            (Some(ti), Some(ui)) => g
                .user_counters
                .get(&ui)
                .map_or(0, |c| c.counter(user_counter_key(ti, K_CLAIMS))),
            _ => 0,
        };
        if c.per_user.is_some_and(|l| claims >= l) {
            return conflict(2);
        }
        if claims >= u64::from(u32::MAX) {
            return Err(MemoryStoreError::Full {
                what: "per-user counter",
            });
        }
        let g = held.at(sc)?;
        // With the receipt absent, an id spelled `<template>/<key>` can only be among the ids
        // indexed by themselves (one under this key would carry the receipt; both are in the
        // key's shard).
        let taken = if keyed {
            match g.coupon_ix.len {
                0 => None,
                _ => g.coupon_ix.find(hash32(c.coupon.id.as_str()), |ix| {
                    g.coupons.get(ix).is_some_and(|s| s.id == c.coupon.id)
                }),
            }
        } else {
            g.coupon_slot(&c.coupon.id)
        };
        if let Some(slot) = taken.and_then(|i| g.coupons.get(i)) {
            if slot.version == u32::MAX {
                return Err(MemoryStoreError::Full {
                    what: "coupon versions",
                });
            }
            return conflict(3);
        }
        for (i, op) in c.tail.iter().enumerate() {
            if let Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                delta,
                limit,
            } = op
            {
                let (s, hash) = match found.get(i) {
                    Some(&(s, hash, _)) => (s, hash),
                    None => guard_key(guard, subject),
                };
                let g = held.at(s)?;
                let at = g.guards.find(hash, guard, subject);
                let (current, sum) = guard_window(g.guards.buckets(at), *bucket, *span);
                let next = i128::from(sum) + i128::from(*delta);
                if i128::from(current) + i128::from(*delta) < 0 || next > i128::from(*limit) {
                    return conflict(4 + i);
                }
                if let Some(f) = found.get_mut(i) {
                    *f = (s, hash, at);
                }
            }
        }
        let g = held.at(st)?;
        let ti = g.templates.intern_name(&c.coupon.template, &names.template);
        if let Some(s) = g.templates.at_mut(ti) {
            s.issued = add(s.issued, 1);
        }
        let g = held.at(su)?;
        let ti = g.templates.intern_name(&c.coupon.template, &names.template);
        let ui = g.users.intern_name(&c.coupon.owner, &names.owner);
        g.user_counters
            .entry(ui)
            .or_default()
            .add(user_counter_key(ti, K_CLAIMS), 1);
        let claim = (sc == sr).then_some(c.key);
        let ix = held.at(sc)?.put_coupon_named(c.coupon, &names, claim, true);
        if sc != sr {
            held.at(sr)?.apply(c.receipt_op);
        }
        let mut events = false;
        for (i, op) in c.tail.iter().enumerate() {
            match op {
                Op::CountWindow {
                    guard,
                    subject,
                    bucket,
                    span,
                    delta,
                    ..
                } => {
                    let (s, hash, at) = match found.get(i) {
                        Some(&f) => f,
                        None => {
                            let (s, hash) = guard_key(guard, subject);
                            (s, hash, None)
                        }
                    };
                    held.at(s)?
                        .guard_add(hash, at, guard, subject, *bucket, *span, *delta);
                }
                _ => events = true,
            }
        }
        if events {
            let mut feed = self.feed();
            for op in c.tail {
                if let Op::Emit { event } = op {
                    // The coupon just stored carries the facts its `issued` event names.
                    let entry = match &event.kind {
                        EventKind::Issued { coupon: f, mode } if has_facts(c.coupon, f) => {
                            Entry::Issued {
                                at: event.at,
                                slot: ix,
                                shard: u8::try_from(sc).unwrap_or(u8::MAX),
                                mode: *mode,
                            }
                        }
                        _ => held.entry(event),
                    };
                    feed.push(entry);
                }
            }
        }
        Ok(Commit::Applied)
    }

    /// Commits any batch: the shards it touches locked, every condition checked in order, then
    /// every write.
    fn commit_any(&self, batch: &Batch) -> Result<Commit, MemoryStoreError> {
        let routes: Vec<Option<usize>> = batch.ops.iter().map(op_shard).collect();
        let mut set = routes.iter().flatten().fold(0, |set, &s| set | bit(s));
        // An `issued` event is kept compact when its coupon's shard is held.
        for op in &batch.ops {
            if let Op::Emit { event } = op {
                if let EventKind::Issued { coupon, .. } = &event.kind {
                    set |= bit(coupon_shard(&coupon.id));
                }
            }
        }
        let mut held = self.lock(set);
        for g in held.each() {
            g.forget();
            g.capacity_ok(batch)?;
        }
        let mut records = batch
            .ops
            .iter()
            .any(|op| matches!(op, Op::PutTemplate { .. }))
            .then(|| self.records.write().unwrap_or_else(PoisonError::into_inner));
        // Coupons whose events in the feed carry facts this batch changes.
        let mut changed: Vec<(usize, u32)> = Vec::new();
        for (index, (op, route)) in batch.ops.iter().zip(&routes).enumerate() {
            let holds = match (op, records.as_deref(), route) {
                (Op::PutTemplate { record, expect }, Some(r), _) => {
                    Inner::version_ok(r.get(record.id()).map(|r| r.version), *expect)
                }
                (_, _, Some(s)) => {
                    let g = held.at(*s)?;
                    let holds = g.holds(op)?;
                    if let Op::PutCoupon { coupon, .. } = op {
                        if let Some(ix) = g
                            .coupon_slot(&coupon.id)
                            .filter(|&ix| g.changes_facts(ix, coupon))
                        {
                            changed.push((*s, ix));
                        }
                    }
                    holds
                }
                _ => true,
            };
            if !holds {
                return Ok(Commit::Conflict { index });
            }
        }
        let has_events = batch.ops.iter().any(|op| matches!(op, Op::Emit { .. }));
        let mut feed = (has_events || !changed.is_empty()).then(|| self.feed());
        if let Some(feed) = feed.as_deref_mut() {
            // Their compact entries become whole events with the facts they had.
            for &(s, ix) in &changed {
                let Some(facts) = held.get(s).and_then(|g| g.facts(ix)) else {
                    continue;
                };
                let shard = u8::try_from(s).unwrap_or(u8::MAX);
                for e in feed.of_slot(shard, ix) {
                    if let Entry::Issued { at, mode, .. } = *e {
                        let kind = EventKind::Issued {
                            coupon: facts.clone(),
                            mode,
                        };
                        *e = Entry::Full(Box::new(Event::new(at, kind)));
                    }
                }
            }
        }
        if let Some(r) = records.as_deref_mut() {
            for op in &batch.ops {
                if let Op::PutTemplate { record, .. } = op {
                    let version = r
                        .get(record.id())
                        .map_or(1, |v| v.version.saturating_add(1));
                    r.insert(
                        record.id().clone(),
                        Versioned {
                            value: Arc::clone(record),
                            version,
                        },
                    );
                }
            }
        }
        // A claim's receipt is stored with the coupon it names, so the coupon goes first; a
        // receipt whose coupon is new in this batch (in the receipt's shard) is stored by
        // `put_coupon` itself.
        let late = |op: &Op| {
            matches!(op, Op::InsertReceipt { key, receipt: Receipt::Claimed { .. } }
                if claim_key(key).is_some())
        };
        let mut attached: Option<(&CouponId, &IdempotencyKey)> = None;
        for (i, (op, route)) in batch.ops.iter().zip(&routes).enumerate() {
            let Some(s) = *route else { continue };
            if late(op) {
                continue;
            }
            match op {
                Op::PutCoupon { coupon, expect } => {
                    // Checked absent above, and not written earlier in this batch.
                    let fresh = *expect == Expect::Absent
                        && !batch.ops.iter().take(i).any(
                            |o| matches!(o, Op::PutCoupon { coupon: c, .. } if c.id == coupon.id),
                        );
                    let claim = match (expect, attached) {
                        (Expect::Absent, None) => {
                            batch.ops.iter().zip(&routes).find_map(|(o, r)| match o {
                                Op::InsertReceipt {
                                    key,
                                    receipt: Receipt::Claimed { coupon: c },
                                } if c == &coupon.id && *r == Some(s) => claim_key(key),
                                _ => None,
                            })
                        }
                        _ => None,
                    };
                    if let Some(k) = claim {
                        attached = Some((&coupon.id, k));
                    }
                    held.at(s)?.put_coupon(coupon, claim, fresh);
                }
                _ => held.at(s)?.apply(op),
            }
        }
        for (op, route) in batch.ops.iter().zip(&routes) {
            let Some(s) = *route else { continue };
            if !late(op) {
                continue;
            }
            let done = match (op, attached) {
                (
                    Op::InsertReceipt {
                        key,
                        receipt: Receipt::Claimed { coupon },
                    },
                    Some((c, k)),
                ) => c == coupon && claim_key(key) == Some(k),
                _ => false,
            };
            if !done {
                held.at(s)?.apply(op);
            }
        }
        if let Some(feed) = feed.as_deref_mut() {
            for op in &batch.ops {
                if let Op::Emit { event } = op {
                    feed.push(held.entry(event));
                }
            }
        }
        Ok(Commit::Applied)
    }
}

impl TrimEvents for MemoryStore {
    fn trim_events(&self, through: Sequence) -> Result<u64, MemoryStoreError> {
        Ok(self.feed().trim(through))
    }
}

impl Repository for MemoryStore {
    type Error = MemoryStoreError;

    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, MemoryStoreError> {
        Ok(self.records().get(id).cloned())
    }

    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, MemoryStoreError> {
        let mut v: Vec<_> = self.records().values().cloned().collect();
        v.sort_unstable_by(|a, b| a.value.id().cmp(b.value.id()));
        Ok(v)
    }

    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, MemoryStoreError> {
        Ok(self
            .read(route(id.as_str()))
            .and_then(|g| g.campaigns.get(id).cloned()))
    }

    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, MemoryStoreError> {
        Ok(self
            .read(coupon_shard(id))
            .and_then(|g| g.coupon_slot(id).and_then(|i| g.to_coupon(i))))
    }

    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let all = self.read_all();
        let mut out: Vec<Versioned<Coupon>> = Vec::new();
        for g in &all {
            if let Some(u) = g.users.get(user) {
                out.extend(g.coupons_at(&g.wallet_slots(u)));
            }
        }
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(out)
    }

    fn live_coupons(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let all = self.read_all();
        let mut out: Vec<Versioned<Coupon>> = Vec::new();
        for g in &all {
            let Some(u) = g.users.get(user) else {
                continue;
            };
            let mut live = g.wallet_slots(u);
            live.retain(|&ix| {
                g.coupons
                    .get(ix)
                    .is_some_and(|s| s.state == S_AVAILABLE || s.state == S_LOCKED)
            });
            out.extend(g.coupons_at(&live));
        }
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(out)
    }

    fn coupons(
        &self,
        ids: &[CouponId],
    ) -> Result<Vec<Option<Versioned<Coupon>>>, MemoryStoreError> {
        ids.iter().map(|id| self.coupon(id)).collect()
    }

    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let all = self.read_all();
        let mut out: Vec<Versioned<Coupon>> = Vec::new();
        for g in &all {
            if let Some(ixs) = g.orders.lookup(order) {
                out.extend(g.coupons_at(ixs));
            }
        }
        out.retain(|c| c.value.state.order() == Some(order));
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(out)
    }

    fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let mut held = self.lock(u32::MAX);
        let mut found: Vec<(i64, usize, u32)> = Vec::new();
        for s in 0..SHARDS {
            let g = held.at(s)?;
            found.extend(g.due(now, limit).into_iter().map(|(at, ix)| (at, s, ix)));
        }
        // The earliest due to the second, across shards.
        found.sort_by_key(|&(at, _, _)| at);
        found.truncate(limit);
        let mut out: Vec<Versioned<Coupon>> = found
            .into_iter()
            .filter_map(|(_, s, ix)| held.get(s).and_then(|g| g.to_coupon(ix)))
            .collect();
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(out)
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, MemoryStoreError> {
        let all = self.read_all();
        let mut out: Vec<(DateTime<Utc>, OrderId)> =
            all.iter().flat_map(|g| g.held(now, limit)).collect();
        out.sort_unstable();
        Ok(out.into_iter().take(limit).map(|(_, o)| o).collect())
    }

    fn order(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, MemoryStoreError> {
        Ok(self
            .read(route(id.as_str()))
            .and_then(|g| g.order_records.get(id).cloned()))
    }

    fn counter(&self, key: &CounterKey) -> Result<u64, MemoryStoreError> {
        Ok(self.read(counter_shard(key)).map_or(0, |g| g.counter(key)))
    }

    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, MemoryStoreError> {
        Ok(self.read(receipt_shard(key)).and_then(|g| g.receipt(key)))
    }

    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, MemoryStoreError> {
        // The shards first (the order commits take them in), then the feed.
        let all = self.read_all();
        let feed = self.feed();
        Ok(feed
            .after(after, limit)
            .into_iter()
            .filter_map(|(seq, e)| {
                let event = match e {
                    Entry::Full(event) => Event::clone(event),
                    Entry::Issued {
                        at,
                        slot,
                        shard,
                        mode,
                    } => {
                        let coupon = all.get(usize::from(*shard))?.facts(*slot)?;
                        Event::new(
                            *at,
                            EventKind::Issued {
                                coupon,
                                mode: *mode,
                            },
                        )
                    }
                };
                Some(Logged { seq, event })
            })
            .collect())
    }

    fn commit(&self, batch: &Batch) -> Result<Commit, MemoryStoreError> {
        match ClaimBatch::of(batch) {
            Some(claim) => self.claim(batch, &claim),
            None => self.commit_any(batch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_pages_and_trims_across_chunks() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let ev = Event::new(
            at,
            crate::events::EventKind::OrderReleased {
                order: OrderId::trusted("o"),
                user: UserId::trusted("u"),
            },
        );
        let mut f = Feed::default();
        let total = FEED_CHUNK as u64 * 2 + 17;
        for seq in 1..=total {
            f.push(Entry::Full(Box::new(ev.clone())));
            assert_eq!(f.last_seq, seq);
        }
        let seqs = |v: Vec<(Sequence, &Entry)>| v.into_iter().map(|l| l.0).collect::<Vec<_>>();
        for (after, limit) in [
            (0, 3),
            (4094, 5),
            (4095, 1),
            (8190, 10),
            (total - 1, 9),
            (total, 4),
        ] {
            let want: Vec<u64> = (after + 1..=total).take(limit).collect();
            assert_eq!(
                seqs(f.after(after, limit)),
                want,
                "after {after}, limit {limit}"
            );
        }
        for through in [3, 4096, 4097, 9000, total] {
            let before = f.len;
            let n = f.trim(through);
            assert_eq!(f.len, before - n as usize);
            let rest = seqs(f.after(0, usize::MAX));
            assert_eq!(f.first_seq(), through.min(total) + 1);
            assert_eq!(
                rest,
                (through + 1..=total).collect::<Vec<_>>(),
                "trim {through}"
            );
        }
        assert_eq!(f.trim(total), 0);
        assert!(f.after(0, 10).is_empty());
    }

    #[test]
    fn records_are_compact() {
        assert_eq!(std::mem::size_of::<Slot>(), 80);
        assert_eq!(std::mem::size_of::<UserEntry>(), 4);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert_eq!(std::mem::size_of::<(u32, u32)>(), 8);
    }

    #[test]
    fn slot_index_finds_what_it_holds_across_growth() {
        let mut ix = SlotIndex::default();
        let keys: Vec<String> = (0..10_000).map(|i| format!("coupon-{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            ix.insert(hash32(k), i as u32);
        }
        for (i, k) in keys.iter().enumerate() {
            let found = ix.find(hash32(k), |slot| keys.get(slot as usize) == Some(k));
            assert_eq!(found, Some(i as u32));
        }
        assert_eq!(
            ix.find(hash32("absent"), |slot| keys
                .get(slot as usize)
                .is_some_and(|k| k == "absent")),
            None
        );
        assert!(ix.entries.len() * 3 >= ix.len * 4);
    }

    fn coupon(id: &str) -> Coupon {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        Coupon {
            id: CouponId::trusted(id),
            template: TemplateId::trusted("t"),
            owner: UserId::trusted("u"),
            channel: Channel::trusted("app"),
            campaign: None,
            mode: ClaimMode::Auto,
            claimed_at: t,
            valid_from: t,
            valid_until: t + chrono::TimeDelta::days(1),
            state: CouponState::Available,
            attributes: Attributes::new(),
        }
    }

    fn claim(key: &str, id: &str) -> Op {
        Op::InsertReceipt {
            key: ReceiptKey::Operation(CLAIM, IdempotencyKey::trusted(key)),
            receipt: Receipt::Claimed {
                coupon: CouponId::trusted(id),
            },
        }
    }

    fn put(id: &str, expect: Expect) -> Op {
        Op::PutCoupon {
            coupon: coupon(id),
            expect,
        }
    }

    fn found(store: &MemoryStore, id: &str) -> bool {
        matches!(store.coupon(&CouponId::trusted(id)), Ok(Some(c)) if c.value.id.as_str() == id)
    }

    fn receipt_of(store: &MemoryStore, key: &str) -> Option<String> {
        let key = ReceiptKey::Operation(CLAIM, IdempotencyKey::trusted(key));
        match store.receipt(&key) {
            Ok(Some(Receipt::Claimed { coupon })) => Some(coupon.as_str().to_owned()),
            _ => None,
        }
    }

    #[test]
    fn claims_are_found_by_key_and_id_whatever_the_id_spells() -> Result<(), MemoryStoreError> {
        let store = MemoryStore::new();
        // The service's shape (`<template>/<key>`), a key with a slash, and ids that do not
        // end in their claim key.
        for (key, id) in [
            ("k1", "t/k1"),
            ("a/b", "t/a/b"),
            ("k3", "k3"),
            ("k4", "t/k4.1"),
            ("k5", "t/other"),
        ] {
            let batch = Batch {
                ops: vec![claim(key, id), put(id, Expect::Absent)],
            };
            assert_eq!(store.commit(&batch)?, Commit::Applied, "{id}");
            assert!(found(&store, id), "{id}");
            assert_eq!(receipt_of(&store, key).as_deref(), Some(id));
            // Neither the key nor the id can be used again.
            assert_eq!(
                store.commit(&Batch {
                    ops: vec![claim(key, "fresh/x")]
                })?,
                Commit::Conflict { index: 0 }
            );
            assert_eq!(
                store.commit(&Batch {
                    ops: vec![put(id, Expect::Absent)]
                })?,
                Commit::Conflict { index: 0 }
            );
        }
        // An id whose suffix is someone else's claim key is its own coupon.
        assert_eq!(
            store.commit(&Batch {
                ops: vec![put("u/k1", Expect::Absent)],
            })?,
            Commit::Applied
        );
        assert!(found(&store, "u/k1") && found(&store, "t/k1"));
        assert_eq!(receipt_of(&store, "k1").as_deref(), Some("t/k1"));
        assert!(!found(&store, "v/k1"));
        Ok(())
    }

    #[test]
    fn a_claim_receipt_can_name_a_coupon_stored_earlier() -> Result<(), MemoryStoreError> {
        let store = MemoryStore::new();
        assert_eq!(
            store.commit(&Batch {
                ops: vec![put("t/k", Expect::Absent)],
            })?,
            Commit::Applied
        );
        assert_eq!(receipt_of(&store, "k"), None);
        assert_eq!(
            store.commit(&Batch {
                ops: vec![claim("k", "t/k")],
            })?,
            Commit::Applied
        );
        assert_eq!(receipt_of(&store, "k").as_deref(), Some("t/k"));
        assert!(found(&store, "t/k"));
        // Updating the coupon keeps both look-ups.
        assert_eq!(
            store.commit(&Batch {
                ops: vec![put("t/k", Expect::Version(1))],
            })?,
            Commit::Applied
        );
        assert!(found(&store, "t/k"));
        assert_eq!(receipt_of(&store, "k").as_deref(), Some("t/k"));
        Ok(())
    }

    #[test]
    fn two_claims_of_one_coupon_in_a_batch_both_keep_their_receipts() -> Result<(), MemoryStoreError>
    {
        let store = MemoryStore::new();
        let batch = Batch {
            ops: vec![
                claim("k1", "t/k1"),
                claim("k2", "t/k1"),
                put("t/k1", Expect::Absent),
                put("t/k1", Expect::Absent),
            ],
        };
        assert_eq!(store.commit(&batch)?, Commit::Applied);
        assert_eq!(store.coupon_count(), 1);
        assert_eq!(receipt_of(&store, "k1").as_deref(), Some("t/k1"));
        assert_eq!(receipt_of(&store, "k2").as_deref(), Some("t/k1"));
        Ok(())
    }

    /// A claim batch as the service writes it.
    fn claim_batch(
        key: &str,
        id: &str,
        template: &str,
        user: &str,
        limits: [Option<u64>; 2],
    ) -> Batch {
        let mut c = coupon(id);
        c.template = TemplateId::trusted(template);
        c.owner = UserId::trusted(user);
        Batch {
            ops: vec![
                claim(key, id),
                Op::Count {
                    key: CounterKey::Issued(c.template.clone()),
                    delta: 1,
                    limit: limits[0],
                },
                Op::Count {
                    key: CounterKey::UserClaims(c.template.clone(), c.owner.clone()),
                    delta: 1,
                    limit: limits[1],
                },
                Op::PutCoupon {
                    coupon: c,
                    expect: Expect::Absent,
                },
            ],
        }
    }

    #[test]
    fn the_claim_path_and_the_general_path_agree() -> Result<(), MemoryStoreError> {
        let (fast, general) = (MemoryStore::new(), MemoryStore::new());
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut outcomes = Vec::new();
        // An id spelled `<prefix>/<key>` taken by another key's claim, then claimed by that key.
        for (key, id, expected) in [
            ("k8", "other/k7", Commit::Applied),
            ("k7", "other/k7", Commit::Conflict { index: 3 }),
        ] {
            let batch = claim_batch(key, id, "t1", "u1", [None, None]);
            let mut slow = batch.clone();
            slow.ops.push(Op::Count {
                key: CounterKey::Custom("noop".into()),
                delta: 0,
                limit: None,
            });
            assert_eq!(fast.commit(&batch)?, expected);
            assert_eq!(general.commit(&slow)?, expected);
        }
        for _ in 0..2_000 {
            let (k, t, u) = (next(300), next(4), next(6));
            // Keys repeat (receipt conflicts), ids sometimes do not end in their key, and one
            // template has a stock and a per-user limit.
            let id = match next(5) {
                0 => format!("t{t}/x{k}"),
                1 => format!("other/k{}", next(300)),
                _ => format!("t{t}/k{k}"),
            };
            let limits = if t == 0 {
                [Some(15), Some(3)]
            } else {
                [None, None]
            };
            let batch = claim_batch(
                &format!("k{k}"),
                &id,
                &format!("t{t}"),
                &format!("u{u}"),
                limits,
            );
            assert!(ClaimBatch::of(&batch).is_some());
            let mut slow = batch.clone();
            // A no-op that keeps the batch off the claim path.
            slow.ops.push(Op::Count {
                key: CounterKey::Custom("noop".into()),
                delta: 0,
                limit: None,
            });
            assert!(ClaimBatch::of(&slow).is_none());
            let (a, b) = (fast.commit(&batch)?, general.commit(&slow)?);
            assert_eq!(a, b, "{id}");
            outcomes.push(a);
        }
        // Both stores hold the same thing.
        assert_eq!(fast.coupon_count(), general.coupon_count());
        for t in 0..4 {
            let t = TemplateId::trusted(&format!("t{t}"));
            assert_eq!(
                fast.counter(&CounterKey::Issued(t.clone()))?,
                general.counter(&CounterKey::Issued(t.clone()))?
            );
            for u in 0..6 {
                let key = CounterKey::UserClaims(t.clone(), UserId::trusted(&format!("u{u}")));
                assert_eq!(fast.counter(&key)?, general.counter(&key)?);
            }
        }
        for k in 0..300 {
            assert_eq!(
                receipt_of(&fast, &format!("k{k}")),
                receipt_of(&general, &format!("k{k}"))
            );
        }
        for u in 0..6 {
            let u = UserId::trusted(&format!("u{u}"));
            let ids = |s: &MemoryStore| -> Result<Vec<String>, MemoryStoreError> {
                Ok(s.wallet(&u)?
                    .into_iter()
                    .map(|c| c.value.id.as_str().to_owned())
                    .collect())
            };
            assert_eq!(ids(&fast)?, ids(&general)?);
        }
        // Every kind of outcome happened.
        for index in 0..4 {
            assert!(
                outcomes.contains(&Commit::Conflict { index }),
                "no conflict at {index}"
            );
        }
        assert!(outcomes.contains(&Commit::Applied));
        Ok(())
    }

    #[test]
    fn the_claim_path_with_guard_counts_agrees_with_the_general_path()
    -> Result<(), MemoryStoreError> {
        let (fast, general) = (MemoryStore::new(), MemoryStore::new());
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let guard = |g: u64| GuardName::trusted(&format!("g{g}"));
        let at = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
        let mut outcomes = Vec::new();
        for i in 0..2_000 {
            let (k, t, u, d) = (next(400), next(3), next(8), next(3));
            let mut batch = claim_batch(
                &format!("k{k}"),
                &format!("t{t}/k{k}"),
                &format!("t{t}"),
                &format!("u{u}"),
                [Some(40), Some(6)],
            );
            // Up to three guards: by device, by user (limits 1 to 12), by user and device (1 or 2).
            for g in 0..next(4) {
                let subject = match g {
                    0 => format!("device=d{d}"),
                    1 => format!("user=u{u}"),
                    _ => format!("user=u{u}|device=d{d}"),
                };
                batch.push(Op::CountWindow {
                    guard: guard(g),
                    subject,
                    bucket: i64::from(i / 500),
                    span: u32::try_from(1 + g).unwrap_or(1),
                    delta: 1,
                    limit: 1 + next(if g == 2 { 2 } else { 12 }),
                });
            }
            batch.push(Op::Emit {
                event: Event::new(
                    at,
                    EventKind::Voided {
                        coupon: CouponFacts::of(&coupon("x/y")),
                    },
                ),
            });
            assert!(ClaimBatch::of(&batch).is_some());
            let mut slow = batch.clone();
            slow.ops.push(Op::Count {
                key: CounterKey::Custom("noop".into()),
                delta: 0,
                limit: None,
            });
            assert!(ClaimBatch::of(&slow).is_none());
            let (a, b) = (fast.commit(&batch)?, general.commit(&slow)?);
            assert_eq!(a, b, "batch {i}");
            outcomes.push(a);
        }
        assert_eq!(fast.coupon_count(), general.coupon_count());
        for g in 0..3 {
            for bucket in 0..4 {
                for subject in (0..3)
                    .map(|d| format!("device=d{d}"))
                    .chain((0..8).map(|u| format!("user=u{u}")))
                    .chain((0..24).map(|x| format!("user=u{}|device=d{}", x / 3, x % 3)))
                {
                    let key = CounterKey::Guard {
                        guard: guard(g),
                        subject,
                        bucket,
                    };
                    assert_eq!(fast.counter(&key)?, general.counter(&key)?, "{key}");
                }
            }
        }
        let events = |s: &MemoryStore| s.events(0, usize::MAX).map(|e| e.len());
        assert_eq!(events(&fast)?, events(&general)?);
        for index in 0..7 {
            assert!(
                index == 3 || outcomes.contains(&Commit::Conflict { index }),
                "no conflict at {index}"
            );
        }
        assert!(outcomes.contains(&Commit::Applied));
        Ok(())
    }

    /// Names `prefix0`, `prefix1`… that route to `n` different shards, one each.
    fn one_per_shard(prefix: &str, n: usize) -> Vec<String> {
        let mut seen = 0u32;
        let mut out = Vec::new();
        for i in 0.. {
            let name = format!("{prefix}{i}");
            let s = route(&name);
            if seen & bit(s) == 0 {
                seen |= bit(s);
                out.push(name);
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn a_batch_over_every_shard_applies_whole_or_not_at_all_under_threads()
    -> Result<(), MemoryStoreError> {
        // Each batch counts one counter in every shard and then a gate that only `GATE`
        // batches pass: a conflict at the gate must leave every other shard untouched.
        const GATE: u64 = 300;
        let store = MemoryStore::new();
        let counters: Vec<CounterKey> = one_per_shard("c", SHARDS)
            .into_iter()
            .map(CounterKey::Custom)
            .collect();
        let applied = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for t in 0..8u64 {
                let (store, counters, applied) = (&store, &counters, &applied);
                scope.spawn(move || {
                    for i in 0..100u64 {
                        let mut ops: Vec<Op> = counters
                            .iter()
                            .map(|key| Op::Count {
                                key: key.clone(),
                                delta: 1,
                                limit: None,
                            })
                            .collect();
                        // Each thread names the shards in its own order.
                        ops.rotate_left(((t * 5 + i) % SHARDS as u64) as usize);
                        ops.push(Op::Count {
                            key: CounterKey::Custom("gate".into()),
                            delta: 1,
                            limit: Some(GATE),
                        });
                        if store.commit(&Batch { ops }) == Ok(Commit::Applied) {
                            applied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(applied.into_inner(), GATE);
        assert_eq!(store.counter(&CounterKey::Custom("gate".into()))?, GATE);
        for key in &counters {
            assert_eq!(store.counter(key)?, GATE, "{key}");
        }
        Ok(())
    }

    #[test]
    fn reads_across_shards_see_a_commit_whole() -> Result<(), MemoryStoreError> {
        // Each batch issues a pair of coupons to one user in two shards, with their events; a
        // reader never sees half a pair in the wallet or in the feed.
        let store = MemoryStore::new();
        let user = UserId::trusted("pairs");
        let ids = one_per_shard("w", SHARDS);
        let done = std::sync::atomic::AtomicBool::new(false);
        let at = DateTime::<Utc>::UNIX_EPOCH;
        std::thread::scope(|scope| -> Result<(), MemoryStoreError> {
            let (store, user, done) = (&store, &user, &done);
            let reader = scope.spawn(move || -> Result<usize, MemoryStoreError> {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(store.wallet(user)?.len() % 2, 0);
                    assert_eq!(store.events(0, usize::MAX)?.len() % 2, 0);
                    reads += 1;
                }
                Ok(reads)
            });
            let writers: Vec<_> = (0..2usize)
                .map(|t| {
                    let ids = &ids;
                    scope.spawn(move || -> Result<(), MemoryStoreError> {
                        for round in 0..200usize {
                            let mut ops = Vec::new();
                            for k in 0..2 {
                                let shard = ids
                                    .get((round * 2 + k + t * 7) % SHARDS)
                                    .cloned()
                                    .unwrap_or_default();
                                let mut c = coupon(&format!("{shard}.{t}.{round}"));
                                c.owner = user.clone();
                                ops.push(Op::Emit {
                                    event: Event::new(
                                        at,
                                        EventKind::Issued {
                                            coupon: CouponFacts::of(&c),
                                            mode: ClaimMode::Auto,
                                        },
                                    ),
                                });
                                ops.push(Op::PutCoupon {
                                    coupon: c,
                                    expect: Expect::Absent,
                                });
                            }
                            assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))?;
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            let reads = reader
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e))?;
            assert!(reads > 0);
            Ok(())
        })?;
        assert_eq!(store.wallet(&user)?.len(), 800);
        let events = store.events(0, usize::MAX)?;
        assert_eq!(events.len(), 800);
        // Kept compact (each coupon's shard was held) and read back as written.
        for e in &events {
            let EventKind::Issued { coupon, .. } = &e.event.kind else {
                panic!("not an issued event");
            };
            assert_eq!(coupon.user, user);
            assert!(store.coupon(&coupon.id)?.is_some());
        }
        Ok(())
    }

    #[test]
    fn an_issued_event_keeps_the_facts_it_was_written_with() -> Result<(), MemoryStoreError> {
        let store = MemoryStore::new();
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let c = coupon("t/k");
        let issued = |c: &Coupon| Op::Emit {
            event: Event::new(
                at,
                EventKind::Issued {
                    coupon: CouponFacts::of(c),
                    mode: ClaimMode::Click,
                },
            ),
        };
        let ops = vec![claim("k", "t/k"), put("t/k", Expect::Absent), issued(&c)];
        assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
        assert!(matches!(
            store.feed().chunks.front().and_then(|c| c.first()),
            Some(Entry::Issued { .. })
        ));
        // An event whose facts are not the coupon's is kept whole.
        let mut other = c.clone();
        other.channel = Channel::trusted("web");
        assert_eq!(
            store.commit(&Batch {
                ops: vec![issued(&other)]
            })?,
            Commit::Applied
        );
        // Changing the coupon's facts later leaves the first event as written.
        let mut moved = c.clone();
        moved.owner = UserId::trusted("someone-else");
        let ops = vec![Op::PutCoupon {
            coupon: moved,
            expect: Expect::Version(1),
        }];
        assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
        let events = store.events(0, 10)?;
        let facts: Vec<&CouponFacts> = events
            .iter()
            .filter_map(|e| match &e.event.kind {
                EventKind::Issued { coupon, .. } => Some(coupon),
                _ => None,
            })
            .collect();
        assert_eq!(facts, vec![&CouponFacts::of(&c), &CouponFacts::of(&other)]);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        Ok(())
    }

    #[test]
    fn instants_round_trip_to_the_nanosecond() -> Result<(), MemoryStoreError> {
        let store = MemoryStore::new();
        let mut c = coupon("t/fine");
        c.valid_until += chrono::TimeDelta::nanoseconds(1);
        c.claimed_at += chrono::TimeDelta::microseconds(3);
        let ops = vec![Op::PutCoupon {
            coupon: c.clone(),
            expect: Expect::Absent,
        }];
        assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
        assert_eq!(store.coupon(&c.id)?.map(|v| v.value), Some(c.clone()));
        let just_before = c.valid_until - chrono::TimeDelta::nanoseconds(1);
        assert!(store.due(just_before, 10)?.is_empty());
        assert_eq!(store.due(c.valid_until, 10)?.len(), 1);
        Ok(())
    }

    #[test]
    fn guard_buckets_behave_as_an_ordered_map() {
        let (mut b, mut model) = (Buckets::default(), BTreeMap::<i64, u64>::new());
        let mut x = 0x1234_5678_9abc_def1_u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x % 40) as i64 - 5;
            match x % 7 {
                0 => {
                    b.drop_before(at);
                    model.retain(|k, _| *k >= at);
                }
                1..=4 => {
                    b.add(at, 1);
                    *model.entry(at).or_default() += 1;
                }
                _ => {
                    let from = at - (x % 9) as i64;
                    let sum = model.range(from..=at).map(|(_, n)| *n).sum::<u64>();
                    let current = model.get(&at).copied().unwrap_or(0);
                    assert_eq!(b.sums(from, at), (current, sum));
                }
            }
        }
        assert_eq!(b.to_vec(), model.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn hash_spreads_sequential_ids() {
        let mut low: HashSet<u32> = HashSet::new();
        for i in 0..4096 {
            low.insert(hash32(&format!("k-{i}")) & 0xfff);
        }
        assert!(
            low.len() > 2000,
            "only {} distinct low-bit buckets",
            low.len()
        );
    }
}
