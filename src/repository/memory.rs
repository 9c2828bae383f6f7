//! The in-memory store: every [`Repository`] method under one `RwLock` (template records under a
//! second), with compact records and the indexes the service needs (wallet by user, coupons by
//! order, coupons by due time).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use super::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, TrimEvents, Version,
    Versioned,
};
use crate::attributes::Attributes;
use crate::events::{Event, Logged, Sequence};
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

/// A guard's buckets for one subject, ordered by bucket: usually one or a few (a window sums
/// the last `span`, and older ones are dropped as it moves), so a sorted vector beats a tree.
#[derive(Debug, Default)]
struct Buckets(Vec<(i64, u64)>);

impl Buckets {
    /// The value of bucket `at` and the sum of the buckets `from..=at`.
    fn sums(&self, from: i64, at: i64) -> (u64, u64) {
        self.0
            .iter()
            .filter(|(b, _)| (from..=at).contains(b))
            .fold((0, 0), |(current, sum), &(b, n)| {
                (if b == at { n } else { current }, sum.saturating_add(n))
            })
    }

    /// Adds `delta` to bucket `at` (created at zero).
    fn add(&mut self, at: i64, delta: i64) {
        let i = match self.0.binary_search_by_key(&at, |&(b, _)| b) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (at, 0));
                i
            }
        };
        if let Some((_, n)) = self.0.get_mut(i) {
            *n = add(*n, delta);
        }
    }

    /// Drops the buckets before `oldest`.
    fn drop_before(&mut self, oldest: i64) {
        let keep = self.0.partition_point(|&(b, _)| b < oldest);
        if keep > 0 {
            self.0.drain(..keep);
        }
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
        let i = self.probe(id.text())?;
        self.remember(id, i);
        Some(i)
    }

    /// The index of a name, added if new.
    fn intern(&mut self, id: &T) -> u32 {
        if let Some(i) = self.find(id) {
            return i;
        }
        let i = u32::try_from(self.names.len()).unwrap_or(NONE);
        self.names.push(id.clone());
        self.data.push((Short::new(id.text()), D::default()));
        self.index.insert(hash32(id.text()), i);
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

/// Everything kept per user: the head of the wallet (a list threaded through the slots) and
/// the per-user counters as `(template << 2 | kind, value)`, sorted.
#[derive(Debug)]
struct UserEntry {
    head: u32,
    counters: Vec<(u32, u32)>,
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
const MAX_TEMPLATES: usize = 1 << 30;

fn user_counter_key(template: u32, kind: u32) -> u32 {
    (template << 2) | kind
}

impl UserEntry {
    fn counter(&self, key: u32) -> u64 {
        self.counters
            .binary_search_by_key(&key, |c| c.0)
            .ok()
            .and_then(|i| self.counters.get(i))
            .map_or(0, |c| u64::from(c.1))
    }

    /// Adds `delta` to a counter (one search, whether it exists or not).
    fn add(&mut self, key: u32, delta: i64) {
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

fn add(value: u64, delta: i64) -> u64 {
    u64::try_from(i128::from(value) + i128::from(delta)).unwrap_or(0)
}

const S_AVAILABLE: u8 = 0;
const S_LOCKED: u8 = 1;
const S_USED: u8 = 2;
const S_EXPIRED: u8 = 3;
const S_VOIDED: u8 = 4;

/// A coupon as stored, 96 bytes: template, channel, campaign, owner and order interned, the
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
    claimed_at: DateTime<Utc>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    /// The hold's end (Locked), or when it was used, expired or voided.
    at: DateTime<Utc>,
    mode: ClaimMode,
    state: u8,
    /// Whether the key of the `claim` receipt that issued it is its id's suffix (see
    /// [`keyed_suffix`]); other claim keys are in [`Inner::claim_keys`].
    keyed: bool,
}

impl Slot {
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            S_AVAILABLE => Some(self.valid_until),
            S_LOCKED => Some(self.at),
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

/// The event feed in chunks of [`FEED_CHUNK`], oldest first; sequences are consecutive.
#[derive(Debug, Default)]
struct Feed {
    chunks: VecDeque<Vec<Logged>>,
    len: usize,
}

impl Feed {
    fn push(&mut self, e: Logged) {
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

    fn first_seq(&self) -> Option<Sequence> {
        self.chunks.front().and_then(|c| c.first()).map(|e| e.seq)
    }

    /// Up to `limit` events with a sequence above `after`.
    fn after(&self, after: Sequence, limit: usize) -> Vec<Logged> {
        let Some(first) = self.first_seq() else {
            return Vec::new();
        };
        // Sequences are consecutive: the wanted event's position is its distance from the
        // first one.
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
            out.extend(c.iter().skip(from).take(take).cloned());
            pos += c.len();
        }
        out
    }

    /// Drops the events with a sequence at or below `through`.
    fn trim(&mut self, through: Sequence) -> u64 {
        let mut n = 0u64;
        while let Some(c) = self.chunks.front_mut() {
            if c.last().is_some_and(|e| e.seq <= through) {
                n += c.len() as u64;
                self.len -= c.len();
                self.chunks.pop_front();
                continue;
            }
            let cut = c.iter().take_while(|e| e.seq <= through).count();
            c.drain(..cut);
            n += cut as u64;
            self.len -= cut;
            break;
        }
        n
    }
}

#[derive(Debug, Default)]
struct Inner {
    templates: Table<TemplateId, TemplateSlot>,
    users: Table<UserId, UserEntry>,
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
    /// The attributes of the slots that have any (most coupons carry none).
    attributes: Map<u32, Attributes>,
    /// Guards' windowed counters: by guard, by subject, by bucket.
    guards: Map<GuardName, Map<String, Buckets>>,
    /// The event feed not yet trimmed, in sequence order.
    events: Feed,
    /// The last sequence assigned (0 before the first event).
    last_seq: Sequence,
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

    fn state_of(&self, s: &Slot) -> Option<CouponState> {
        let order = || self.orders.name(s.order).cloned();
        Some(match s.state {
            S_AVAILABLE => CouponState::Available,
            S_LOCKED => CouponState::Locked {
                order: order()?,
                until: s.at,
            },
            S_USED => CouponState::Used {
                order: order()?,
                at: s.at,
            },
            S_EXPIRED => CouponState::Expired { at: s.at },
            _ => CouponState::Voided { at: s.at },
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
                claimed_at: s.claimed_at,
                valid_from: s.valid_from,
                valid_until: s.valid_until,
                state: self.state_of(s)?,
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
            CounterAt::User(t, u, kind) => match (self.templates.get(t), self.users.lookup(u)) {
                (Some(ti), Some(e)) => e.counter(user_counter_key(ti, kind)),
                _ => 0,
            },
            CounterAt::Custom(s) => self.custom.get(s).copied().unwrap_or(0),
            CounterAt::Guard(g, subject, bucket) => self.guard_sum(g, subject, bucket, 1),
        }
    }

    /// The sum of a guard's buckets `bucket - span + 1 ..= bucket`.
    fn guard_sum(&self, guard: &GuardName, subject: &str, bucket: i64, span: u32) -> u64 {
        self.guard_sums(guard, subject, bucket, span).1
    }

    /// A guard's current bucket and the sum of the window's buckets, in one look-up.
    fn guard_sums(&self, guard: &GuardName, subject: &str, bucket: i64, span: u32) -> (u64, u64) {
        let Some(buckets) = self.guards.get(guard).and_then(|m| m.get(subject)) else {
            return (0, 0);
        };
        let from = bucket.saturating_sub(i64::from(span.max(1)) - 1);
        buckets.sums(from, bucket)
    }

    /// A guard's buckets for a subject, made empty when new (the subject's text is copied
    /// only then).
    fn guard_buckets(&mut self, guard: &GuardName, subject: &str) -> Option<&mut Buckets> {
        let subjects = self.guards.entry(guard.clone()).or_default();
        if !subjects.contains_key(subject) {
            subjects.insert(subject.to_owned(), Buckets::default());
        }
        subjects.get_mut(subject)
    }

    /// Adds `delta` to a guard's bucket and drops the buckets the window no longer sums.
    fn guard_add(&mut self, guard: &GuardName, subject: &str, bucket: i64, span: u32, delta: i64) {
        if let Some(buckets) = self.guard_buckets(guard, subject) {
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
                    .users
                    .at(ui)
                    .map_or(0, |e| e.counter(user_counter_key(ti, kind))),
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
                if let Some(e) = self.users.entry(u) {
                    e.add(user_counter_key(ti, kind), delta);
                }
            }
            CounterAt::Custom(s) => {
                let v = self.custom.entry(s.clone()).or_default();
                *v = add(*v, delta);
            }
            CounterAt::Guard(g, subject, bucket) => {
                if let Some(b) = self.guard_buckets(g, subject) {
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
                let (current, sum) = self.guard_sums(guard, subject, *bucket, *span);
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
            Op::PutCoupon { coupon, .. } => self.put_coupon(coupon, None, false),
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
            } => self.guard_add(guard, subject, *bucket, *span, *delta),
            Op::Emit { event } => self.emit(event),
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

    /// Appends an event with the next sequence.
    fn emit(&mut self, event: &Event) {
        self.last_seq = self.last_seq.saturating_add(1);
        self.events.push(Logged {
            seq: self.last_seq,
            event: event.clone(),
        });
    }

    fn events(&self, after: Sequence, limit: usize) -> Vec<Logged> {
        self.events.after(after, limit)
    }

    fn trim_events(&mut self, through: Sequence) -> u64 {
        self.events.trim(through)
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Vec<OrderId> {
        self.hold_due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, order)| order.clone())
            .collect()
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
        self.claims.find(hash32(key.as_str()), |ix| {
            self.claim_of(ix) == Some(key.as_str())
        })
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
    fn put_coupon(&mut self, c: &Coupon, claim: Option<&IdempotencyKey>, fresh: bool) {
        let template = self.templates.intern(&c.template);
        let channel = self.channels.intern(&c.channel);
        let campaign = c
            .campaign
            .as_ref()
            .map_or(NONE, |id| self.campaign_ids.intern(id));
        let owner = self.users.intern(&c.owner);
        let (state, order, at) = self.encode(&c.state, c.claimed_at);
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
                slot.claimed_at = c.claimed_at;
                slot.valid_from = c.valid_from;
                slot.valid_until = c.valid_until;
                slot.at = at;
                slot.mode = c.mode;
                slot.state = state;
                let new_due = slot.due_at();
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
                    claimed_at: c.claimed_at,
                    valid_from: c.valid_from,
                    valid_until: c.valid_until,
                    at,
                    mode: c.mode,
                    state,
                };
                let due = slot.due_at();
                let ix = self.coupons.push(slot);
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

    fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<Versioned<Coupon>> {
        let mut found: Vec<u32> = Vec::new();
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
                    .and_then(Slot::due_at)
                    .is_some_and(|t| t.timestamp() == second && t <= now);
                if is_due && seen.insert(ix) {
                    found.push(ix);
                    if found.len() >= limit {
                        break 'outer;
                    }
                }
            }
        }
        for s in emptied {
            self.due.remove(&s);
        }
        self.coupons_at(&found)
    }
}

/// A claim as [`Service`](crate::service::Service) writes it: the claim's receipt, the
/// template's issued counter, the user's claim counter, and the new coupon, whose id is
/// `<template>/<claim key>`, followed by guard counts ([`Op::CountWindow`]) and events. The
/// store commits it on a path of its own that looks each name up once; the effect is the
/// general path's, op for op.
struct ClaimBatch<'a> {
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
            receipt,
            key,
            issued: *issued,
            per_user: *per_user,
            coupon,
            tail,
        })
    }
}

impl Inner {
    /// Commits a [`ClaimBatch`]: the checks of ops 0 to 3 and of the guard counts after them
    /// in order, then the writes.
    fn claim(&mut self, c: &ClaimBatch<'_>) -> Result<Commit, MemoryStoreError> {
        let conflict = |index| Ok(Commit::Conflict { index });
        if self.receipt_exists(c.receipt) {
            return conflict(0);
        }
        let template = self.templates.find(&c.coupon.template);
        let issued = template
            .and_then(|i| self.templates.at(i))
            .map_or(0, |s| s.issued);
        if c.issued.is_some_and(|l| issued >= l) {
            return conflict(1);
        }
        let user = self.users.find(&c.coupon.owner);
        let claims = match (template, user) {
            (Some(ti), Some(ui)) => self
                .users
                .at(ui)
                .map_or(0, |e| e.counter(user_counter_key(ti, K_CLAIMS))),
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
        // With the receipt absent, an id spelled `<template>/<key>` can only be among the ids
        // indexed by themselves (one under this key would carry the receipt).
        let taken = if keyed_suffix(c.coupon.id.as_str()) == Some(c.key.as_str()) {
            match self.coupon_ix.len {
                0 => None,
                _ => self.coupon_ix.find(hash32(c.coupon.id.as_str()), |ix| {
                    self.coupons.get(ix).is_some_and(|s| s.id == c.coupon.id)
                }),
            }
        } else {
            self.coupon_slot(&c.coupon.id)
        };
        if let Some(slot) = taken.and_then(|i| self.coupons.get(i)) {
            if slot.version == u32::MAX {
                return Err(MemoryStoreError::Full {
                    what: "coupon versions",
                });
            }
            return conflict(3);
        }
        for (i, op) in c.tail.iter().enumerate() {
            if matches!(op, Op::CountWindow { .. }) && !self.holds(op)? {
                return conflict(4 + i);
            }
        }
        let ti = match template {
            Some(ti) => ti,
            None => self.templates.intern(&c.coupon.template),
        };
        if let Some(s) = self.templates.at_mut(ti) {
            s.issued = add(s.issued, 1);
        }
        if let Some(e) = self.users.entry(&c.coupon.owner) {
            e.add(user_counter_key(ti, K_CLAIMS), 1);
        }
        self.put_coupon(c.coupon, Some(c.key), true);
        for op in c.tail {
            self.apply(op);
        }
        Ok(Commit::Applied)
    }
}

/// A thread-safe in-memory [`Repository`].
///
/// Every method takes one `RwLock`: reads share it, [`commit`](Repository::commit) holds it
/// exclusively while it checks every condition of the batch and then applies all of it, so a
/// batch is atomic and its conditions are exact under any number of threads. The critical
/// section of a claim is a handful of hash-map operations. Template records sit under a second
/// lock, taken by a commit that writes one (after the first, and held to the commit's end), so
/// reading a template never waits for a claim.
///
/// Coupons are stored compactly (template, channel and campaign interned; ids shared with the
/// caller's `Arc<str>`), with a wallet index by user, an index by order, and a due-time index
/// for [`due`](Repository::due). A coupon stored with its `claim` receipt whose id is
/// `<anything>/<claim key>` (the ids [`Service`](crate::service::Service) gives) is indexed once,
/// under the claim key: the receipt's check and the id's check read the same entry. The
/// service's claim batch (receipt, issued counter, user's claim counter, new coupon) is
/// committed on a path that looks each name up once, with the same effect as the general path. Its hash maps use a fast non-keyed hash (FxHash): it is meant
/// for tests, benchmarks and single-process embedding, not for keys chosen by an adversary to
/// collide.
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
    inner: RwLock<Inner>,
    /// The template records, under a lock of their own: reading a template (every claim and
    /// checkout does) never waits for a commit that does not write one. A commit that writes
    /// templates takes this lock after `inner`'s, and holds both to its end.
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
        let mut inner = Inner::default();
        // Claimed coupons are indexed by their claim key alone (see `coupon_slot`).
        inner.claims.reserve(coupons);
        inner.coupons.chunks.reserve(coupons.div_ceil(CHUNK));
        MemoryStore {
            inner: RwLock::new(inner),
            records: RwLock::default(),
        }
    }

    /// Number of coupons stored.
    pub fn coupon_count(&self) -> usize {
        self.read().coupons.len
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn records(&self) -> RwLockReadGuard<'_, Map<TemplateId, Versioned<Arc<TemplateRecord>>>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TrimEvents for MemoryStore {
    fn trim_events(&self, through: Sequence) -> Result<u64, MemoryStoreError> {
        Ok(self.write().trim_events(through))
    }
}

impl MemoryStore {
    /// Events stored and not yet trimmed.
    pub fn event_backlog(&self) -> usize {
        self.read().events.len
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
        Ok(self.read().campaigns.get(id).cloned())
    }

    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        Ok(g.coupon_slot(id).and_then(|i| g.to_coupon(i)))
    }

    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        Ok(g.users
            .get(user)
            .map(|u| g.coupons_at(&g.wallet_slots(u)))
            .unwrap_or_default())
    }

    fn live_coupons(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        let Some(u) = g.users.get(user) else {
            return Ok(Vec::new());
        };
        let mut live = g.wallet_slots(u);
        live.retain(|&ix| {
            g.coupons
                .get(ix)
                .is_some_and(|s| s.state == S_AVAILABLE || s.state == S_LOCKED)
        });
        Ok(g.coupons_at(&live))
    }

    fn coupons(
        &self,
        ids: &[CouponId],
    ) -> Result<Vec<Option<Versioned<Coupon>>>, MemoryStoreError> {
        let g = self.read();
        Ok(ids
            .iter()
            .map(|id| g.coupon_slot(id).and_then(|i| g.to_coupon(i)))
            .collect())
    }

    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        let mut v = g
            .orders
            .lookup(order)
            .map(|ixs| g.coupons_at(ixs))
            .unwrap_or_default();
        v.retain(|c| c.value.state.order() == Some(order));
        Ok(v)
    }

    fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        Ok(self.write().due(now, limit))
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, MemoryStoreError> {
        Ok(self.read().held(now, limit))
    }

    fn order(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, MemoryStoreError> {
        Ok(self.read().order_records.get(id).cloned())
    }

    fn counter(&self, key: &CounterKey) -> Result<u64, MemoryStoreError> {
        Ok(self.read().counter(key))
    }

    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, MemoryStoreError> {
        Ok(self.read().receipt(key))
    }

    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, MemoryStoreError> {
        Ok(self.read().events(after, limit))
    }

    fn commit(&self, batch: &Batch) -> Result<Commit, MemoryStoreError> {
        let mut g = self.write();
        g.forget();
        g.capacity_ok(batch)?;
        if let Some(claim) = ClaimBatch::of(batch) {
            return g.claim(&claim);
        }
        let mut records = batch
            .ops
            .iter()
            .any(|op| matches!(op, Op::PutTemplate { .. }))
            .then(|| self.records.write().unwrap_or_else(PoisonError::into_inner));
        for (index, op) in batch.ops.iter().enumerate() {
            let holds = match (op, records.as_deref()) {
                (Op::PutTemplate { record, expect }, Some(r)) => {
                    Inner::version_ok(r.get(record.id()).map(|r| r.version), *expect)
                }
                _ => g.holds(op)?,
            };
            if !holds {
                return Ok(Commit::Conflict { index });
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
        // receipt whose coupon is new in this batch is stored by `put_coupon` itself.
        let late = |op: &Op| {
            matches!(op, Op::InsertReceipt { key, receipt: Receipt::Claimed { .. } }
                if claim_key(key).is_some())
        };
        let mut attached: Option<(&CouponId, &IdempotencyKey)> = None;
        for (i, op) in batch.ops.iter().enumerate().filter(|(_, op)| !late(op)) {
            match op {
                Op::PutCoupon { coupon, expect } => {
                    // Checked absent above, and not written earlier in this batch.
                    let fresh = *expect == Expect::Absent
                        && !batch.ops.iter().take(i).any(
                            |o| matches!(o, Op::PutCoupon { coupon: c, .. } if c.id == coupon.id),
                        );
                    let claim = match (expect, attached) {
                        (Expect::Absent, None) => batch.ops.iter().find_map(|o| match o {
                            Op::InsertReceipt {
                                key,
                                receipt: Receipt::Claimed { coupon: c },
                            } if c == &coupon.id => claim_key(key),
                            _ => None,
                        }),
                        _ => None,
                    };
                    if let Some(k) = claim {
                        attached = Some((&coupon.id, k));
                    }
                    g.put_coupon(coupon, claim, fresh);
                }
                _ => g.apply(op),
            }
        }
        for op in batch.ops.iter().filter(|op| late(op)) {
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
                g.apply(op);
            }
        }
        Ok(Commit::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{CouponFacts, EventKind};

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
            f.push(Logged {
                seq,
                event: ev.clone(),
            });
        }
        let seqs = |v: Vec<Logged>| v.into_iter().map(|l| l.seq).collect::<Vec<_>>();
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
        assert_eq!(std::mem::size_of::<Slot>(), 96);
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
        assert_eq!(b.0, model.into_iter().collect::<Vec<_>>());
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
