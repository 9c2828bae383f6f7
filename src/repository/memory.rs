//! The in-memory store: every [`Repository`] method under one `RwLock` (template records under a
//! second), with compact records and the indexes the service needs (wallet by user, coupons by
//! order, coupons by due time).
//!
//! By concern: [`tables`] (the hasher, the index of slot numbers, interned names, coupon
//! slots), [`commit`] (a batch checked op by op, then applied), [`guards`] (windowed guard
//! counters), [`feed`] (the event feed) and [`reads`].

mod commit;
mod feed;
mod guards;
mod reads;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{
    Arc, LockResult, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError,
    TryLockResult,
};

use chrono::{DateTime, Utc};

use super::{Batch, Commit, CounterKey, Receipt, ReceiptKey, Repository, TrimEvents, Versioned};
use crate::attributes::Attributes;
use crate::events::{Logged, Sequence};
use crate::id::{CampaignId, Channel, CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{Campaign, Coupon, Order, TemplateRecord};
use commit::Prep;
use feed::Feed;
use guards::Guards;
use tables::{CHUNK, Map, S_AVAILABLE, S_LOCKED, SlotIndex, Slots, Table, TemplateSlot, UserEntry};

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

/// The template records.
type Records = Map<TemplateId, Versioned<Arc<TemplateRecord>>>;

#[derive(Debug, Default)]
struct Inner {
    templates: Table<TemplateId, TemplateSlot>,
    users: Table<UserId, UserEntry>,
    channels: Table<Channel, ()>,
    campaign_ids: Table<CampaignId, ()>,
    campaigns: Map<CampaignId, Versioned<Campaign>>,
    coupons: Slots,
    /// Every coupon by its id.
    coupon_ix: SlotIndex,
    /// Orders interned, each with the slots it holds or used.
    orders: Table<OrderId, Vec<u32>>,
    /// Coupons by the second their due time falls in. Entries are added when a coupon enters
    /// a state with a due time and dropped lazily once stale.
    due: BTreeMap<i64, VecDeque<u32>>,
    custom: Map<String, u64>,
    /// Compact receipts: a [`Receipt::Claimed`] stored with the coupon it names, by the hash
    /// of its idempotency key (see [`tables::Slot::claim`]).
    claims: SlotIndex,
    /// The operation names compact receipts are stored under (`claim`, in practice).
    claim_ops: Vec<&'static str>,
    /// The keys of compact receipts that are not their coupon id's tail.
    claim_keys: Map<u32, IdempotencyKey>,
    /// Every other receipt.
    receipts: Map<ReceiptKey, Receipt>,
    /// The operation names with a receipt in `receipts` (a look-up of another is skipped).
    general_ops: Vec<&'static str>,
    /// Orders' hold deadlines ([`Op::Hold`](super::Op::Hold)), and the same ordered by deadline.
    holds: Map<OrderId, DateTime<Utc>>,
    hold_due: BTreeSet<(DateTime<Utc>, OrderId)>,
    /// Order records ([`Op::PutOrder`](super::Op::PutOrder)).
    order_records: Map<OrderId, Versioned<Order>>,
    /// The attributes of the slots that have any (most coupons carry none).
    attributes: Map<u32, Attributes>,
    /// Guards' windowed counters.
    guards: Guards,
    /// The event feed not yet trimmed, in sequence order.
    events: Feed,
    /// What the checks of the batch being committed found (kept to reuse its allocation).
    preps: Vec<Prep>,
}

/// A thread-safe in-memory [`Repository`].
///
/// How a thread waits for the store's lock before it sleeps on it: spinning, twice as long
/// each round, then giving its core away a few times. A batch holds the lock for about a
/// microsecond, shorter than a sleep and a wake-up: sleeping at once (what `RwLock` does
/// after a brief spin) made two threads claim slower than one.
#[derive(Default)]
struct Wait {
    round: u32,
}

impl Wait {
    /// Spin rounds (1, 2, 4 … 512 spins: about a thousand in all), then yields.
    const SPIN_ROUNDS: u32 = 10;
    const YIELDS: u32 = 4;

    /// A lock's guard: `try_lock` until it succeeds or the wait is over, then `lock` (which
    /// sleeps until the lock is free). A poisoned lock is taken as it is: nothing in the store
    /// panics while holding it.
    fn for_lock<G>(
        try_lock: impl Fn() -> TryLockResult<G>,
        lock: impl FnOnce() -> LockResult<G>,
    ) -> G {
        let mut wait = Wait::default();
        loop {
            match try_lock() {
                Ok(g) => return g,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) if wait.again() => {}
                Err(TryLockError::WouldBlock) => {
                    return lock().unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Waits once more; `false` when the thread should sleep on the lock instead.
    fn again(&mut self) -> bool {
        self.round = self.round.saturating_add(1);
        if self.round <= Self::SPIN_ROUNDS {
            for _ in 0..1u32 << (self.round - 1) {
                std::hint::spin_loop();
            }
            true
        } else if self.round <= Self::SPIN_ROUNDS + Self::YIELDS {
            std::thread::yield_now();
            true
        } else {
            false
        }
    }
}

/// Every method takes one `RwLock`: reads share it, [`commit`](Repository::commit) holds it
/// exclusively while it checks every condition of the batch and then applies all of it, so a
/// batch is atomic and its conditions are exact under any number of threads. The critical
/// section of a claim is a handful of hash-index operations. Template records sit under a
/// second lock, taken by a commit that writes one (after the first, and held to the commit's
/// end), so reading a template never waits for a claim. A thread that finds the store's lock
/// taken spins briefly and yields before it sleeps on it: the lock is held for about a
/// microsecond, less than a sleep and a wake-up cost.
///
/// Every op is handled on its own, whatever the batch's shape; the store parses no id.
/// Coupons are stored compactly (template, channel and campaign interned; ids shared with the
/// caller's `Arc<str>`), with a wallet index by user, an index by order, and a due-time index
/// for [`due`](Repository::due). A [`Receipt::Claimed`] is kept in the slot of the coupon it
/// names (its key shares the id's text when it is the id's tail), so a claim's receipt costs
/// one index entry. Guard counters are interned per (guard, subject) with their buckets
/// inline. Its indexes use a fast non-keyed hash (FxHash): it is meant for tests, benchmarks
/// and single-process embedding, not for keys chosen by an adversary to collide.
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
    records: RwLock<Records>,
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
        inner.claims.reserve(coupons);
        inner.coupon_ix.reserve(coupons);
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

    /// Events stored and not yet trimmed.
    pub fn event_backlog(&self) -> usize {
        self.read().events.len
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        Wait::for_lock(|| self.inner.try_read(), || self.inner.read())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        Wait::for_lock(|| self.inner.try_write(), || self.inner.write())
    }

    fn records(&self) -> RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TrimEvents for MemoryStore {
    fn trim_events(&self, through: Sequence) -> Result<u64, MemoryStoreError> {
        Ok(self.write().events.trim(through))
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
        let writes_templates = batch
            .ops
            .iter()
            .any(|op| matches!(op, super::Op::PutTemplate { .. }));
        let mut records =
            writes_templates.then(|| self.records.write().unwrap_or_else(PoisonError::into_inner));
        g.commit(batch, records.as_deref_mut())
    }
}
