//! A batch's commit: every op's condition checked in order (each check remembering what it
//! found: a hash, a slot, a guard pair), then every op applied from what its check found.
//!
//! Ops are handled one by one, whatever the batch's shape and whatever its ids spell: the
//! store recognises no sequence of ops and parses no id. What makes a claim cheap is generic:
//! names are interned with a one-entry memo (a batch names its template and user several
//! times, by the same shared text), each key is hashed once, and a [`Receipt::Claimed`] is
//! stored with the coupon it names (applied after the batch's other ops, so a coupon put by
//! the same batch is found).

use chrono::{DateTime, Utc};

use super::feed::Entry;
use super::guards::PairAt;
use super::reads::{CounterAt, counter_at, same_op};
use super::tables::{
    CLAIM_APART, LOGGED, MAX_TEMPLATES, NONE, S_AVAILABLE, S_EXPIRED, S_LOCKED, S_USED, S_VOIDED,
    Slot, add, hash32, user_counter_key,
};
use super::{Inner, MemoryStoreError, Records};
use crate::events::{Event, EventKind};
use crate::id::CouponId;
use crate::lifecycle::{Coupon, CouponState};
use crate::repository::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Version, oldest_bucket,
};

/// What an op's check found, for its write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Prep {
    /// Nothing worth keeping.
    Nothing,
    /// A coupon's slot (`NONE` when absent) and its id's hash.
    Coupon { slot: u32, hash: u32 },
    /// The hash of a receipt's idempotency key.
    Receipt { hash: u32 },
    /// A guard pair.
    Pair(PairAt),
}

/// Whether two texts are equal (at the same address, or spelled the same).
fn same_text(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

/// Whether `a` is the same shared id as `b` (the same text at the same address).
fn same_id(a: &CouponId, b: &CouponId) -> bool {
    let (a, b) = (a.as_str(), b.as_str());
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

/// Guard pairs a batch adds that are told apart by hash; past them, each is looked up again.
const ADDED: usize = 8;

fn version_ok(current: Option<Version>, expect: Expect) -> bool {
    match expect {
        Expect::Absent => current.is_none(),
        Expect::Version(v) => current == Some(v),
    }
}

impl Inner {
    /// Clears the tables' memos: the names they point at belong to the last batch.
    pub(super) fn forget(&mut self) {
        self.templates.forget();
        self.users.forget();
        self.channels.forget();
        self.campaign_ids.forget();
        self.orders.forget();
    }

    /// Commits a batch: `records` holds the template records, write-locked when the batch
    /// writes one.
    pub(super) fn commit(
        &mut self,
        batch: &Batch,
        records: Option<&mut Records>,
    ) -> Result<Commit, MemoryStoreError> {
        self.forget();
        self.capacity_ok(batch)?;
        let mut preps = std::mem::take(&mut self.preps);
        preps.clear();
        let mut conflict = None;
        for (index, op) in batch.ops.iter().enumerate() {
            let prep = match (op, records.as_deref()) {
                (Op::PutTemplate { record, expect }, Some(r)) => {
                    version_ok(r.get(record.id()).map(|r| r.version), *expect)
                        .then_some(Prep::Nothing)
                }
                _ => match self.check(op) {
                    Ok(p) => p,
                    Err(e) => {
                        self.preps = preps;
                        return Err(e);
                    }
                },
            };
            match prep {
                Some(p) => preps.push(p),
                None => {
                    conflict = Some(index);
                    break;
                }
            }
        }
        if let Some(index) = conflict {
            self.preps = preps;
            return Ok(Commit::Conflict { index });
        }
        if let Some(r) = records {
            for op in &batch.ops {
                if let Op::PutTemplate { record, .. } = op {
                    let version = r
                        .get(record.id())
                        .map_or(1, |v| v.version.saturating_add(1));
                    r.insert(
                        record.id().clone(),
                        crate::repository::Versioned {
                            value: std::sync::Arc::clone(record),
                            version,
                        },
                    );
                }
            }
        }
        // The hashes of the guard pairs this batch adds (the first `ADDED`).
        let mut new_pairs = [0u32; ADDED];
        let mut added = 0usize;
        // The last coupon put, and its slot.
        let mut put: Option<(&Coupon, u32)> = None;
        let mut puts = 0u32;
        let mut claimed = false;
        for (op, &prep) in batch.ops.iter().zip(&preps) {
            match op {
                Op::PutCoupon { coupon, .. } => {
                    let (slot, hash) = match prep {
                        Prep::Coupon { slot, hash } => (slot, hash),
                        _ => (NONE, hash32(coupon.id.as_str())),
                    };
                    // An earlier put of this batch may have stored the same id.
                    let slot = match (slot, puts) {
                        (NONE, 0) => NONE,
                        (NONE, _) => self.coupon_slot_hashed(&coupon.id, hash).unwrap_or(NONE),
                        (s, _) => s,
                    };
                    let ix = self.put_coupon(coupon, slot, hash);
                    puts += 1;
                    put = Some((coupon, ix));
                }
                Op::InsertReceipt {
                    receipt: Receipt::Claimed { .. },
                    key: ReceiptKey::Operation(..),
                } => claimed = true,
                Op::CountWindow {
                    guard,
                    subject,
                    bucket,
                    span,
                    delta,
                    ..
                } => {
                    let at = match prep {
                        Prep::Pair(at) => at,
                        _ => PairAt::Absent {
                            hash: 0,
                            guard: NONE,
                            vacant: NONE,
                            size: 0,
                        },
                    };
                    // A pair added by this batch under the same hash may be this one.
                    let fresh = match at {
                        PairAt::Found(_) => true,
                        PairAt::Absent { hash, .. } => {
                            matches!(prep, Prep::Pair(_))
                                && added <= ADDED
                                && !new_pairs.get(..added).is_some_and(|a| a.contains(&hash))
                        }
                    };
                    if let PairAt::Absent { hash, .. } = at {
                        if let Some(a) = new_pairs.get_mut(added) {
                            *a = hash;
                        }
                        added += 1;
                    }
                    let oldest = oldest_bucket(*bucket, *span);
                    self.guards.count(
                        guard,
                        subject.as_bytes(),
                        at,
                        fresh,
                        *bucket,
                        *delta,
                        oldest,
                    );
                }
                Op::Emit { event } => self.emit(event, put),
                _ => self.apply(op),
            }
        }
        // Claim receipts last: the coupon they name may be put by the batch.
        if claimed {
            for (op, &prep) in batch.ops.iter().zip(&preps) {
                if let Op::InsertReceipt {
                    key: key @ ReceiptKey::Operation(name, k),
                    receipt: receipt @ Receipt::Claimed { coupon },
                } = op
                {
                    let hash = match prep {
                        Prep::Receipt { hash } => hash,
                        _ => hash32(k.as_str()),
                    };
                    let slot = match put {
                        Some((c, ix)) if same_id(&c.id, coupon) => Some(ix),
                        _ => self.coupon_slot(coupon),
                    };
                    if !slot.is_some_and(|ix| self.attach(ix, name, k, hash)) {
                        self.insert_receipt(key, receipt);
                    }
                }
            }
        }
        self.preps = preps;
        Ok(Commit::Applied)
    }

    /// Stores a claim receipt with slot `ix`, if the slot holds none yet.
    fn attach(
        &mut self,
        ix: u32,
        op: &'static str,
        key: &crate::id::IdempotencyKey,
        hash: u32,
    ) -> bool {
        let op = match self.claim_op(op) {
            Some(o) => o,
            None => match u8::try_from(self.claim_ops.len()) {
                Ok(o) if o < LOGGED => {
                    self.claim_ops.push(op);
                    o
                }
                _ => return false,
            },
        };
        let Some(slot) = self.coupons.get_mut(ix) else {
            return false;
        };
        if slot.claim != 0 {
            return false;
        }
        let k = key.as_str();
        let suffix = u8::try_from(k.len())
            .ok()
            .filter(|&n| n != 0 && n != CLAIM_APART && slot.id.as_str().ends_with(k));
        slot.claim_op = (slot.claim_op & LOGGED) | op;
        match suffix {
            Some(n) => slot.claim = n,
            None => {
                slot.claim = CLAIM_APART;
                self.claim_keys.insert(ix, key.clone());
            }
        }
        self.claims.insert(hash, ix);
        true
    }

    fn insert_receipt(&mut self, key: &ReceiptKey, receipt: &Receipt) {
        if let ReceiptKey::Operation(op, _) = key {
            if !self.general_ops.iter().any(|g| same_op(g, op)) {
                self.general_ops.push(op);
            }
        }
        self.receipts.insert(key.clone(), receipt.clone());
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
            ("guard counters", self.guards.len()),
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

    /// An op's condition: `None` when it does not hold, else what the check found; an error
    /// when applying it would overflow the store's compact fields.
    fn check(&mut self, op: &Op) -> Result<Option<Prep>, MemoryStoreError> {
        let yes = |p: Prep, holds: bool| Ok(holds.then_some(p));
        match op {
            // Checked against the records by `commit`.
            Op::PutTemplate { .. } => yes(Prep::Nothing, true),
            Op::PutCampaign { campaign, expect } => yes(
                Prep::Nothing,
                version_ok(self.campaigns.get(&campaign.id).map(|c| c.version), *expect),
            ),
            Op::PutCoupon { coupon, expect } => {
                let hash = hash32(coupon.id.as_str());
                let slot = self.coupon_slot_hashed(&coupon.id, hash);
                let current = slot.and_then(|i| self.coupons.get(i)).map(|s| s.version);
                if current == Some(u32::MAX) {
                    return Err(MemoryStoreError::Full {
                        what: "coupon versions",
                    });
                }
                yes(
                    Prep::Coupon {
                        slot: slot.unwrap_or(NONE),
                        hash,
                    },
                    version_ok(current.map(u64::from), *expect),
                )
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
                yes(Prep::Nothing, fits)
            }
            Op::InsertReceipt { key, .. } => {
                let hash = match key {
                    ReceiptKey::Operation(_, k) => hash32(k.as_str()),
                    ReceiptKey::Code(_) => 0,
                };
                yes(Prep::Receipt { hash }, !self.receipt_exists(key, hash))
            }
            Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                delta,
                limit,
            } => {
                let at = self.guards.locate(guard, subject.as_bytes());
                let from = oldest_bucket(*bucket, *span);
                let (current, sum) = self.guards.at(at).map_or((0, 0), |b| b.sums(from, *bucket));
                let next = i128::from(sum) + i128::from(*delta);
                yes(
                    Prep::Pair(at),
                    i128::from(current) + i128::from(*delta) >= 0 && next <= i128::from(*limit),
                )
            }
            Op::PutOrder { order, expect } => yes(
                Prep::Nothing,
                version_ok(
                    self.order_records.get(&order.id).map(|o| o.version),
                    *expect,
                ),
            ),
            Op::Hold { .. } | Op::Emit { .. } => yes(Prep::Nothing, true),
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
            _ => self.counter(key),
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
                let at = self.guards.locate(g, subject);
                self.guards
                    .count(g, subject, at, false, bucket, delta, i64::MIN);
            }
        }
    }

    /// Applies an op that [`commit`](Self::commit) does not handle itself.
    fn apply(&mut self, op: &Op) {
        match op {
            // The record is written by `commit`; its counters live here.
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
                    crate::repository::Versioned {
                        value: campaign.clone(),
                        version,
                    },
                );
            }
            Op::Count { key, delta, .. } => self.bump(key, *delta),
            Op::InsertReceipt { key, receipt } => self.insert_receipt(key, receipt),
            Op::Hold { order, until } => {
                if let Some(old) = self.holds.remove(order) {
                    self.hold_due.remove(&(old, order.clone()));
                }
                if let Some(at) = until {
                    self.holds.insert(order.clone(), *at);
                    self.hold_due.insert((*at, order.clone()));
                }
            }
            Op::PutOrder { order, .. } => {
                let version = self
                    .order_records
                    .get(&order.id)
                    .map_or(1, |o| o.version.saturating_add(1));
                self.order_records.insert(
                    order.id.clone(),
                    crate::repository::Versioned {
                        value: order.as_ref().clone(),
                        version,
                    },
                );
            }
            Op::Emit { event } => self.emit(event, None),
            Op::PutCoupon { coupon, .. } => {
                let hash = hash32(coupon.id.as_str());
                let slot = self.coupon_slot_hashed(&coupon.id, hash).unwrap_or(NONE);
                self.put_coupon(coupon, slot, hash);
            }
            Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                delta,
                ..
            } => {
                let at = self.guards.locate(guard, subject.as_bytes());
                let oldest = oldest_bucket(*bucket, *span);
                self.guards.count(
                    guard,
                    subject.as_bytes(),
                    at,
                    false,
                    *bucket,
                    *delta,
                    oldest,
                );
            }
        }
    }

    /// Appends an event with the next sequence: an `issued` event whose facts are those of
    /// `put` (the batch's last coupon, just stored in its slot) as that slot.
    fn emit(&mut self, event: &Event, put: Option<(&Coupon, u32)>) {
        if let (EventKind::Issued { coupon: f, mode }, Some((c, ix))) = (&event.kind, put) {
            // The event's facts are usually the coupon's own shared names: compare addresses
            // first.
            let same = same_text(f.id.as_str(), c.id.as_str())
                && same_text(f.template.as_str(), c.template.as_str())
                && same_text(f.user.as_str(), c.owner.as_str())
                && same_text(f.channel.as_str(), c.channel.as_str())
                && match (&f.campaign, &c.campaign) {
                    (None, None) => true,
                    (Some(a), Some(b)) => same_text(a.as_str(), b.as_str()),
                    _ => false,
                }
                && f.claimed_at == c.claimed_at
                && ((f.attributes.is_empty() && c.attributes.is_empty())
                    || f.attributes == c.attributes);
            if let Some(slot) = self.coupons.get_mut(ix).filter(|_| same) {
                slot.claim_op |= LOGGED;
                self.events.push(Entry::Issued {
                    at: event.at,
                    slot: ix,
                    mode: *mode,
                });
                return;
            }
        }
        self.events.push(Entry::Event(Box::new(event.clone())));
    }

    /// Turns the feed's compact entries of slot `ix` into whole events, as its facts are now
    /// (before a write changes them).
    fn materialize(&mut self, ix: u32) {
        let Some(facts) = self.facts(ix) else {
            return;
        };
        for e in self.events.entries_mut() {
            if let Entry::Issued { at, slot, mode } = *e {
                if slot == ix {
                    let kind = EventKind::Issued {
                        coupon: facts.clone(),
                        mode,
                    };
                    *e = Entry::Event(Box::new(Event::new(at, kind)));
                }
            }
        }
        if let Some(s) = self.coupons.get_mut(ix) {
            s.claim_op &= !LOGGED;
        }
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

    fn push_due(&mut self, at: DateTime<Utc>, ix: u32) {
        self.due.entry(at.timestamp()).or_default().push_back(ix);
    }

    /// Stores a coupon in slot `existing` (`NONE`: a new slot, its id hashing to `hash`);
    /// returns its slot.
    fn put_coupon(&mut self, c: &Coupon, existing: u32, hash: u32) -> u32 {
        let template = self.templates.intern(&c.template);
        let channel = self.channels.intern(&c.channel);
        let campaign = c
            .campaign
            .as_ref()
            .map_or(NONE, |id| self.campaign_ids.intern(id));
        let owner = self.users.intern(&c.owner);
        let (state, order, at) = self.encode(&c.state, c.claimed_at);
        let changes_facts = self.coupons.get(existing).is_some_and(|s| {
            s.claim_op & LOGGED != 0
                && (s.owner != owner
                    || s.template != template
                    || s.channel != channel
                    || s.campaign != campaign
                    || s.claimed_at != c.claimed_at
                    || self
                        .attributes
                        .get(&existing)
                        .map_or(!c.attributes.is_empty(), |a| *a != c.attributes))
        });
        if changes_facts {
            self.materialize(existing);
        }
        if let Some(slot) = self.coupons.get_mut(existing) {
            let ix = existing;
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
            return ix;
        }
        let slot = Slot {
            id: c.id.clone(),
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
            claim: 0,
            claim_op: 0,
        };
        let due = slot.due_at();
        let ix = self.coupons.push(slot);
        if !c.attributes.is_empty() {
            self.attributes.insert(ix, c.attributes.clone());
        }
        self.coupon_ix.insert(hash, ix);
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
