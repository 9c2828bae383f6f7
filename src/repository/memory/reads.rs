//! Reads: coupons rebuilt from their slots, wallets, orders' coupons, due coupons, held
//! orders, counters and receipts.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use chrono::{DateTime, Utc};

use super::Inner;
use super::feed::Entry;
use super::tables::{
    CLAIM_APART, FxHasher, K_CLAIMS, K_CODE_USES, K_USES, LOGGED, NONE, S_AVAILABLE, S_EXPIRED,
    S_LOCKED, S_USED, Slot, hash32, user_counter_key,
};
use crate::events::{CouponFacts, Event, EventKind, Logged, Sequence};
use crate::id::{CouponId, GuardName, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{Coupon, CouponState};
use crate::repository::{CounterKey, Receipt, ReceiptKey, Versioned};

/// Where a counter lives.
pub(super) enum CounterAt<'a> {
    Issued(&'a TemplateId),
    CodeUses(&'a TemplateId),
    User(&'a TemplateId, &'a UserId, u32),
    Custom(&'a String),
    Guard(&'a GuardName, &'a [u8], i64),
}

pub(super) fn counter_at(key: &CounterKey) -> CounterAt<'_> {
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
        } => CounterAt::Guard(guard, subject.as_bytes(), *bucket),
    }
}

/// Whether two operation names are the same (the same `'static` text, or equal texts).
pub(super) fn same_op(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

impl Inner {
    pub(super) fn state_of(&self, s: &Slot) -> Option<CouponState> {
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

    /// The coupon in slot `ix`.
    pub(super) fn to_coupon(&self, ix: u32) -> Option<Versioned<Coupon>> {
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

    /// What every event says about the coupon in slot `ix`.
    pub(super) fn facts(&self, ix: u32) -> Option<CouponFacts> {
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
            claimed_at: s.claimed_at,
            attributes: self.attributes.get(&ix).cloned().unwrap_or_default(),
        })
    }

    /// The event an entry of the feed stands for.
    pub(super) fn event_of(&self, e: &Entry) -> Option<Event> {
        match e {
            Entry::Issued { at, slot, mode } => Some(Event::new(
                *at,
                EventKind::Issued {
                    coupon: self.facts(*slot)?,
                    mode: *mode,
                },
            )),
            Entry::Event(event) => Some(event.as_ref().clone()),
        }
    }

    /// Up to `limit` events with a sequence above `after`.
    pub(super) fn events(&self, after: Sequence, limit: usize) -> Vec<Logged> {
        self.events.after(after, limit, |e| self.event_of(e))
    }

    /// The slots of a user's wallet.
    pub(super) fn wallet_slots(&self, user: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.users.at(user).map_or(NONE, |e| e.head);
        while at != NONE && out.len() <= self.coupons.len {
            out.push(at);
            at = self.coupons.get(at).map_or(NONE, |s| s.next);
        }
        out
    }

    pub(super) fn coupons_at(&self, ixs: &[u32]) -> Vec<Versioned<Coupon>> {
        let mut out: Vec<Versioned<Coupon>> =
            ixs.iter().filter_map(|&i| self.to_coupon(i)).collect();
        out.sort_unstable_by(|a, b| a.value.id.cmp(&b.value.id));
        out
    }

    /// A counter's value (read path: remembers nothing).
    pub(super) fn counter(&self, key: &CounterKey) -> u64 {
        match counter_at(key) {
            CounterAt::Issued(t) => self.templates.lookup(t).map_or(0, |s| s.issued),
            CounterAt::CodeUses(t) => self.templates.lookup(t).map_or(0, |s| s.code_uses),
            CounterAt::User(t, u, kind) => match (self.templates.get(t), self.users.lookup(u)) {
                (Some(ti), Some(e)) => e.counter(user_counter_key(ti, kind)),
                _ => 0,
            },
            CounterAt::Custom(s) => self.custom.get(s).copied().unwrap_or(0),
            CounterAt::Guard(g, subject, bucket) => self
                .guards
                .buckets(g, subject)
                .map_or(0, |b| b.sums(bucket, bucket).1),
        }
    }

    /// The slot of a coupon, by its id.
    pub(super) fn coupon_slot(&self, id: &CouponId) -> Option<u32> {
        self.coupon_slot_hashed(id, hash32(id.as_str()))
    }

    /// The slot of a coupon whose id hashes to `hash`.
    pub(super) fn coupon_slot_hashed(&self, id: &CouponId, hash: u32) -> Option<u32> {
        self.coupon_ix
            .find(hash, |ix| self.coupons.get(ix).is_some_and(|s| &s.id == id))
    }

    /// The number of an operation name that compact receipts are stored under.
    pub(super) fn claim_op(&self, op: &str) -> Option<u8> {
        self.claim_ops
            .iter()
            .position(|o| same_op(o, op))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// The slot whose compact receipt is stored under `op` and `key` (which hashes to `hash`).
    pub(super) fn claim_slot(&self, op: u8, key: &IdempotencyKey, hash: u32) -> Option<u32> {
        self.claims.find(hash, |ix| {
            self.claim_of(ix)
                .is_some_and(|(o, k)| o == op && k == key.as_str())
        })
    }

    /// The operation number and key of the compact receipt stored with slot `ix`.
    pub(super) fn claim_of(&self, ix: u32) -> Option<(u8, &str)> {
        let slot = self.coupons.get(ix)?;
        let key = match slot.claim {
            0 => return None,
            CLAIM_APART => self.claim_keys.get(&ix).map(IdempotencyKey::as_str)?,
            n => {
                let id = slot.id.as_str();
                id.get(id.len().checked_sub(usize::from(n))?..)?
            }
        };
        Some((slot.claim_op & !LOGGED, key))
    }

    /// Whether a receipt exists under `key`; `hash` is its idempotency key's hash (for an
    /// operation key).
    pub(super) fn receipt_exists(&self, key: &ReceiptKey, hash: u32) -> bool {
        match key {
            ReceiptKey::Operation(op, k) => {
                let compact = self
                    .claim_op(op)
                    .is_some_and(|o| self.claim_slot(o, k, hash).is_some());
                compact
                    || (self.general_ops.iter().any(|g| same_op(g, op))
                        && self.receipts.contains_key(key))
            }
            ReceiptKey::Code(_) => self.receipts.contains_key(key),
        }
    }

    pub(super) fn receipt(&self, key: &ReceiptKey) -> Option<Receipt> {
        if let ReceiptKey::Operation(op, k) = key {
            let slot = self
                .claim_op(op)
                .and_then(|o| self.claim_slot(o, k, hash32(k.as_str())))
                .and_then(|ix| self.coupons.get(ix));
            if let Some(slot) = slot {
                return Some(Receipt::Claimed {
                    coupon: slot.id.clone(),
                });
            }
        }
        self.receipts.get(key).cloned()
    }

    pub(super) fn held(&self, now: DateTime<Utc>, limit: usize) -> Vec<OrderId> {
        self.hold_due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, order)| order.clone())
            .collect()
    }

    /// Whether the entry of coupon `ix` in the due bucket `second` is stale (the coupon's due
    /// time is no longer in that second).
    fn stale(&self, ix: u32, second: i64) -> bool {
        self.coupons
            .get(ix)
            .and_then(Slot::due_at)
            .is_none_or(|t| t.timestamp() != second)
    }

    /// Up to `limit` coupons due at `now`, earliest second first (drops stale index entries
    /// on the way).
    pub(super) fn due(&mut self, now: DateTime<Utc>, limit: usize) -> Vec<Versioned<Coupon>> {
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
