//! The in-memory store: every [`Repository`] method under one `RwLock`, with compact records
//! and the indexes the service needs (wallet by user, coupons by order, coupons by due time).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use super::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, Version, Versioned,
};
use crate::id::{CampaignId, Channel, CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{Campaign, ClaimMode, Coupon, CouponState, TemplateRecord};

/// FxHash (as in rustc): a fast, non-keyed hash for short keys. The store is in-process and its
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
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
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
        self.hash
    }
}

type Map<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// No coupon, template, channel or campaign index fits in `u32` any more.
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

const NONE: u32 = u32::MAX;

/// An interned identifier table: ids stored once, referred to by `u32`.
#[derive(Debug)]
struct Interner<T> {
    ids: Vec<T>,
    index: Map<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: Vec::new(),
            index: Map::default(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn get(&self, id: &T) -> Option<u32> {
        self.index.get(id).copied()
    }

    fn intern(&mut self, id: &T) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = u32::try_from(self.ids.len()).unwrap_or(NONE);
        self.ids.push(id.clone());
        self.index.insert(id.clone(), i);
        i
    }

    fn resolve(&self, i: u32) -> Option<&T> {
        self.ids.get(i as usize)
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Per-template data: the record and the template-wide counters.
#[derive(Debug, Default)]
struct TemplateSlot {
    record: Option<Versioned<Arc<TemplateRecord>>>,
    issued: u64,
    code_uses: u64,
}

const K_CLAIMS: u8 = 0;
const K_USES: u8 = 1;
const K_CODE_USES: u8 = 2;

/// A per-user counter of one template.
#[derive(Debug, Clone, Copy)]
struct UserCounter {
    template: u32,
    kind: u8,
    value: u64,
}

/// Everything kept per user: the wallet index and the per-user counters.
#[derive(Debug, Default)]
struct UserEntry {
    coupons: Vec<u32>,
    counters: Vec<UserCounter>,
}

impl UserEntry {
    fn counter(&self, template: u32, kind: u8) -> u64 {
        self.counters
            .iter()
            .find(|c| c.template == template && c.kind == kind)
            .map_or(0, |c| c.value)
    }

    fn set_counter(&mut self, template: u32, kind: u8, value: u64) {
        match self
            .counters
            .iter_mut()
            .find(|c| c.template == template && c.kind == kind)
        {
            Some(c) => c.value = value,
            None => self.counters.push(UserCounter {
                template,
                kind,
                value,
            }),
        }
    }
}

/// A coupon as stored: template, channel and campaign interned.
#[derive(Debug, Clone)]
struct Slot {
    id: CouponId,
    owner: UserId,
    template: u32,
    channel: u32,
    campaign: u32,
    mode: ClaimMode,
    claimed_at: DateTime<Utc>,
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
    state: CouponState,
    version: Version,
}

impl Slot {
    fn due_at(&self) -> Option<DateTime<Utc>> {
        match &self.state {
            CouponState::Available => Some(self.valid_until),
            CouponState::Locked { until, .. } => Some(*until),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    templates: Vec<TemplateSlot>,
    template_ids: Interner<TemplateId>,
    channels: Interner<Channel>,
    campaign_ids: Interner<CampaignId>,
    campaigns: Map<CampaignId, Versioned<Campaign>>,
    coupons: Vec<Slot>,
    coupon_ix: Map<CouponId, u32>,
    users: Map<UserId, UserEntry>,
    orders: Map<OrderId, Vec<u32>>,
    /// Coupons by the second their due time falls in. Entries are added when a coupon enters
    /// a state with a due time and dropped lazily once stale.
    due: BTreeMap<i64, VecDeque<u32>>,
    custom: Map<String, u64>,
    /// `claim` receipts, kept compactly: key → coupon.
    claims: Map<IdempotencyKey, CouponId>,
    receipts: Map<ReceiptKey, Receipt>,
}

const CLAIM: &str = "claim";

fn claim_key(key: &ReceiptKey) -> Option<&IdempotencyKey> {
    match key {
        ReceiptKey::Operation(op, k) if *op == CLAIM => Some(k),
        _ => None,
    }
}

impl Inner {
    fn template_ix(&self, id: &TemplateId) -> Option<u32> {
        self.template_ids.get(id)
    }

    fn template_slot_mut(&mut self, id: &TemplateId) -> Option<&mut TemplateSlot> {
        let i = self.template_ids.intern(id) as usize;
        if self.templates.len() <= i {
            self.templates.resize_with(i + 1, TemplateSlot::default);
        }
        self.templates.get_mut(i)
    }

    fn to_coupon(&self, s: &Slot) -> Option<Versioned<Coupon>> {
        Some(Versioned {
            value: Coupon {
                id: s.id.clone(),
                template: self.template_ids.resolve(s.template)?.clone(),
                owner: s.owner.clone(),
                channel: self.channels.resolve(s.channel)?.clone(),
                campaign: if s.campaign == NONE {
                    None
                } else {
                    Some(self.campaign_ids.resolve(s.campaign)?.clone())
                },
                mode: s.mode,
                claimed_at: s.claimed_at,
                valid_from: s.valid_from,
                valid_until: s.valid_until,
                state: s.state.clone(),
            },
            version: s.version,
        })
    }

    fn coupons_at(&self, ixs: &[u32]) -> Vec<Versioned<Coupon>> {
        let mut out: Vec<Versioned<Coupon>> = ixs
            .iter()
            .filter_map(|&i| self.coupons.get(i as usize))
            .filter_map(|s| self.to_coupon(s))
            .collect();
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        out
    }

    fn counter(&self, key: &CounterKey) -> u64 {
        let user = |t: &TemplateId, u: &UserId, kind| match (self.template_ix(t), self.users.get(u))
        {
            (Some(ti), Some(e)) => e.counter(ti, kind),
            _ => 0,
        };
        let tpl = |t: &TemplateId| {
            self.template_ix(t)
                .and_then(|i| self.templates.get(i as usize))
        };
        match key {
            CounterKey::Issued(t) => tpl(t).map_or(0, |s| s.issued),
            CounterKey::CodeUses(t) => tpl(t).map_or(0, |s| s.code_uses),
            CounterKey::UserClaims(t, u) => user(t, u, K_CLAIMS),
            CounterKey::UserUses(t, u) => user(t, u, K_USES),
            CounterKey::CodeUserUses(t, u) => user(t, u, K_CODE_USES),
            CounterKey::Custom(s) => self.custom.get(s).copied().unwrap_or(0),
        }
    }

    fn set_counter(&mut self, key: &CounterKey, value: u64) {
        let user_kind = match key {
            CounterKey::Issued(t) => {
                if let Some(s) = self.template_slot_mut(t) {
                    s.issued = value;
                }
                return;
            }
            CounterKey::CodeUses(t) => {
                if let Some(s) = self.template_slot_mut(t) {
                    s.code_uses = value;
                }
                return;
            }
            CounterKey::Custom(s) => {
                self.custom.insert(s.clone(), value);
                return;
            }
            CounterKey::UserClaims(t, u) => (t, u, K_CLAIMS),
            CounterKey::UserUses(t, u) => (t, u, K_USES),
            CounterKey::CodeUserUses(t, u) => (t, u, K_CODE_USES),
        };
        let (t, u, kind) = user_kind;
        let ti = self.template_ids.intern(t);
        if self.templates.len() <= ti as usize {
            self.templates
                .resize_with(ti as usize + 1, TemplateSlot::default);
        }
        self.user_entry(u).set_counter(ti, kind, value);
    }

    fn user_entry(&mut self, u: &UserId) -> &mut UserEntry {
        self.users.entry(u.clone()).or_default()
    }

    fn receipt_exists(&self, key: &ReceiptKey) -> bool {
        claim_key(key).is_some_and(|k| self.claims.contains_key(k))
            || self.receipts.contains_key(key)
    }

    fn receipt(&self, key: &ReceiptKey) -> Option<Receipt> {
        if let Some(c) = claim_key(key).and_then(|k| self.claims.get(k)) {
            return Some(Receipt::Claimed { coupon: c.clone() });
        }
        self.receipts.get(key).cloned()
    }

    fn version_ok<T>(current: Option<&Versioned<T>>, expect: Expect) -> bool {
        match expect {
            Expect::Absent => current.is_none(),
            Expect::Version(v) => current.is_some_and(|c| c.version == v),
        }
    }

    fn holds(&self, op: &Op) -> bool {
        match op {
            Op::PutTemplate { record, expect } => {
                let current = self
                    .template_ix(record.id())
                    .and_then(|i| self.templates.get(i as usize))
                    .and_then(|s| s.record.as_ref());
                Self::version_ok(current, *expect)
            }
            Op::PutCampaign { campaign, expect } => {
                Self::version_ok(self.campaigns.get(&campaign.id), *expect)
            }
            Op::PutCoupon { coupon, expect } => {
                let current = self
                    .coupon_ix
                    .get(&coupon.id)
                    .and_then(|&i| self.coupons.get(i as usize));
                match expect {
                    Expect::Absent => current.is_none(),
                    Expect::Version(v) => current.is_some_and(|s| s.version == *v),
                }
            }
            Op::Count { key, delta, limit } => {
                let next = i128::from(self.counter(key)) + i128::from(*delta);
                next >= 0 && limit.is_none_or(|l| next <= i128::from(l))
            }
            Op::InsertReceipt { key, .. } => !self.receipt_exists(key),
        }
    }

    fn capacity_ok(&self, batch: &Batch) -> Result<(), MemoryStoreError> {
        let n = batch.ops.len();
        let max = NONE as usize;
        for (what, len) in [
            ("coupons", self.coupons.len()),
            ("templates", self.template_ids.len()),
            ("channels", self.channels.len()),
            ("campaigns", self.campaign_ids.len()),
        ] {
            if len.saturating_add(n) >= max {
                return Err(MemoryStoreError::Full { what });
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::PutTemplate { record, .. } => {
                if let Some(slot) = self.template_slot_mut(record.id()) {
                    let version = slot.record.as_ref().map_or(1, |r| r.version + 1);
                    slot.record = Some(Versioned {
                        value: Arc::clone(record),
                        version,
                    });
                }
            }
            Op::PutCampaign { campaign, .. } => {
                self.campaign_ids.intern(&campaign.id);
                let version = self
                    .campaigns
                    .get(&campaign.id)
                    .map_or(1, |c| c.version + 1);
                self.campaigns.insert(
                    campaign.id.clone(),
                    Versioned {
                        value: campaign.clone(),
                        version,
                    },
                );
            }
            Op::PutCoupon { coupon, .. } => self.put_coupon(coupon),
            Op::Count { key, delta, .. } => {
                let next = i128::from(self.counter(key)) + i128::from(*delta);
                self.set_counter(key, u64::try_from(next).unwrap_or(0));
            }
            Op::InsertReceipt { key, receipt } => match (claim_key(key), receipt) {
                (Some(k), Receipt::Claimed { coupon }) => {
                    self.claims.insert(k.clone(), coupon.clone());
                }
                _ => {
                    self.receipts.insert(key.clone(), receipt.clone());
                }
            },
        }
    }

    fn push_due(&mut self, at: DateTime<Utc>, ix: u32) {
        self.due.entry(at.timestamp()).or_default().push_back(ix);
    }

    fn put_coupon(&mut self, c: &Coupon) {
        let template = self.template_ids.intern(&c.template);
        if self.templates.len() <= template as usize {
            self.templates
                .resize_with(template as usize + 1, TemplateSlot::default);
        }
        let channel = self.channels.intern(&c.channel);
        let campaign = c
            .campaign
            .as_ref()
            .map_or(NONE, |id| self.campaign_ids.intern(id));
        let existing = self.coupon_ix.get(&c.id).copied();
        match existing.and_then(|i| self.coupons.get_mut(i as usize).map(|s| (i, s))) {
            Some((ix, slot)) => {
                let old_owner = slot.owner.clone();
                let old_order = slot.state.order().cloned();
                let old_due = slot.due_at();
                *slot = Slot {
                    id: slot.id.clone(),
                    owner: c.owner.clone(),
                    template,
                    channel,
                    campaign,
                    mode: c.mode,
                    claimed_at: c.claimed_at,
                    valid_from: c.valid_from,
                    valid_until: c.valid_until,
                    state: c.state.clone(),
                    version: slot.version + 1,
                };
                let new_due = slot.due_at();
                if old_owner != c.owner {
                    if let Some(e) = self.users.get_mut(&old_owner) {
                        e.coupons.retain(|&i| i != ix);
                    }
                    self.user_entry(&c.owner).coupons.push(ix);
                }
                let new_order = c.state.order();
                if old_order.as_ref() != new_order {
                    if let Some(o) = old_order {
                        if let Some(v) = self.orders.get_mut(&o) {
                            v.retain(|&i| i != ix);
                            if v.is_empty() {
                                self.orders.remove(&o);
                            }
                        }
                    }
                    if let Some(o) = new_order {
                        self.orders.entry(o.clone()).or_default().push(ix);
                    }
                }
                if let Some(at) = new_due {
                    if old_due != Some(at) {
                        self.push_due(at, ix);
                    }
                }
            }
            None => {
                let ix = u32::try_from(self.coupons.len()).unwrap_or(NONE);
                let slot = Slot {
                    id: c.id.clone(),
                    owner: c.owner.clone(),
                    template,
                    channel,
                    campaign,
                    mode: c.mode,
                    claimed_at: c.claimed_at,
                    valid_from: c.valid_from,
                    valid_until: c.valid_until,
                    state: c.state.clone(),
                    version: 1,
                };
                let due = slot.due_at();
                self.coupons.push(slot);
                self.coupon_ix.insert(c.id.clone(), ix);
                match self.users.get_mut(&c.owner) {
                    Some(e) => e.coupons.push(ix),
                    None => self.user_entry(&c.owner).coupons.push(ix),
                }
                if let Some(o) = c.state.order() {
                    self.orders.entry(o.clone()).or_default().push(ix);
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
            .get(ix as usize)
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
                    .get(ix as usize)
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

/// A thread-safe in-memory [`Repository`].
///
/// Every method takes one `RwLock`: reads share it, [`commit`](Repository::commit) holds it
/// exclusively while it checks every condition of the batch and then applies all of it, so a
/// batch is atomic and its conditions are exact under any number of threads. The critical
/// section of a claim is a handful of hash-map operations.
///
/// Coupons are stored compactly (template, channel and campaign interned; ids shared with the
/// caller's `Arc<str>`), with a wallet index by user, an index by order, and a due-time index
/// for [`due`](Repository::due). Its hash maps use a fast non-keyed hash (FxHash): it is meant
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
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Number of coupons stored.
    pub fn coupon_count(&self) -> usize {
        self.read().coupons.len()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Repository for MemoryStore {
    type Error = MemoryStoreError;

    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, MemoryStoreError> {
        let g = self.read();
        Ok(g.template_ix(id)
            .and_then(|i| g.templates.get(i as usize))
            .and_then(|s| s.record.clone()))
    }

    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, MemoryStoreError> {
        let g = self.read();
        let mut v: Vec<_> = g
            .templates
            .iter()
            .filter_map(|s| s.record.clone())
            .collect();
        v.sort_unstable_by(|a, b| a.value.id().cmp(b.value.id()));
        Ok(v)
    }

    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, MemoryStoreError> {
        Ok(self.read().campaigns.get(id).cloned())
    }

    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        Ok(g.coupon_ix
            .get(id)
            .and_then(|&i| g.coupons.get(i as usize))
            .and_then(|s| g.to_coupon(s)))
    }

    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        Ok(g.users
            .get(user)
            .map(|e| g.coupons_at(&e.coupons))
            .unwrap_or_default())
    }

    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, MemoryStoreError> {
        let g = self.read();
        let mut v = g
            .orders
            .get(order)
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

    fn counter(&self, key: &CounterKey) -> Result<u64, MemoryStoreError> {
        Ok(self.read().counter(key))
    }

    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, MemoryStoreError> {
        Ok(self.read().receipt(key))
    }

    fn commit(&self, batch: &Batch) -> Result<Commit, MemoryStoreError> {
        let mut g = self.write();
        g.capacity_ok(batch)?;
        if let Some(index) = batch.ops.iter().position(|op| !g.holds(op)) {
            return Ok(Commit::Conflict { index });
        }
        for op in &batch.ops {
            g.apply(op);
        }
        Ok(Commit::Applied)
    }
}
