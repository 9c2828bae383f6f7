//! Storage behind one small trait: versioned reads and one atomic, conditional batch write.
//!
//! The engine decides in pure code; a [`Repository`] only stores what was decided. It needs
//! two primitives any transactional store has: reads that return a version, and
//! [`Repository::commit`], which applies a [`Batch`] of writes **all or nothing** and only if
//! every condition in it still holds (a record still at the version that was read, a record or
//! key still absent, a counter still within its limit). There is no begin/commit state in the
//! trait: a batch is one atomic step. SQL implements it as one transaction with conditional
//! `UPDATE … WHERE version = ?`, `INSERT` under unique keys and guarded counter updates;
//! the in-memory [`MemoryStore`] implements it under a lock.
//!
//! Counters ([`CounterKey`]) hold stock, per-user claims and uses, promo-code uses, and any
//! guard a caller adds ([`CounterKey::Custom`]); they are how limits hold exactly under
//! concurrency: the batch that issues a coupon also bumps its counters, and fails whole when one
//! would pass its limit. Receipts ([`Receipt`]) make every operation idempotent: the batch
//! that performs an operation also inserts its receipt under the caller's key, so a retry finds
//! the receipt and changes nothing.

mod memory;

pub use crate::events::{Event, EventKind, Logged, Sequence};

use crate::checkout::Quote;
pub use memory::{MemoryStore, MemoryStoreError};

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::guard::SubjectKey;
use crate::id::{CampaignId, CouponId, GuardName, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{Campaign, Coupon, CouponState, Order, TemplateRecord};
use crate::money::Money;
use crate::rule::PromoCode;

/// The version of a stored record: 1 when inserted, +1 at every write.
pub type Version = u64;

/// A record read together with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The record.
    pub value: T,
    /// Its version when read.
    pub version: Version,
}

/// The condition a record write depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The record must not exist yet (insert).
    Absent,
    /// The record must still be at this version (compare-and-swap).
    Version(Version),
}

/// A named counter. Stored counters start at zero and never go below zero.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKey {
    /// Coupons issued from a template.
    Issued(TemplateId),
    /// Coupons of a template claimed by a user.
    UserClaims(TemplateId, UserId),
    /// Coupons of a template redeemed by a user (locked or used; released uses are given back).
    UserUses(TemplateId, UserId),
    /// Orders using a promo-code template.
    CodeUses(TemplateId),
    /// Orders of a user using a promo-code template.
    CodeUserUses(TemplateId, UserId),
    /// Any other counter the caller keeps.
    Custom(String),
    /// One bucket of a guard's windowed counter ([`Op::CountWindow`]).
    Guard {
        /// The guard.
        guard: GuardName,
        /// Who it counts (the guard's subject values, escaped and joined).
        subject: SubjectKey,
        /// The bucket (the window's minute, hour or day number; 0 for ever).
        bucket: i64,
    },
}

/// Writes an identifier with `%` and `/` escaped (`%25`, `%2F`), so `/` separates parts.
struct Part<'a>(&'a str);

impl fmt::Display for Part<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '%' => f.write_str("%25")?,
                '/' => f.write_str("%2F")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for CounterKey {
    /// A stable text form, usable as a primary key: distinct keys give distinct texts (the
    /// parts are separated by `/`, and `%` and `/` inside a part are escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterKey::Issued(t) => write!(f, "issued/{}", Part(t.as_str())),
            CounterKey::UserClaims(t, u) => {
                write!(f, "user-claims/{}/{}", Part(t.as_str()), Part(u.as_str()))
            }
            CounterKey::UserUses(t, u) => {
                write!(f, "user-uses/{}/{}", Part(t.as_str()), Part(u.as_str()))
            }
            CounterKey::CodeUses(t) => write!(f, "code-uses/{}", Part(t.as_str())),
            CounterKey::CodeUserUses(t, u) => {
                write!(
                    f,
                    "code-user-uses/{}/{}",
                    Part(t.as_str()),
                    Part(u.as_str())
                )
            }
            CounterKey::Custom(s) => write!(f, "custom/{}", Part(s)),
            CounterKey::Guard {
                guard,
                subject,
                bucket,
            } => write!(
                f,
                "guard/{}/{}/{bucket}",
                Part(guard.as_str()),
                Part(subject)
            ),
        }
    }
}

/// The key a [`Receipt`] is stored under: the operation and the caller's idempotency key, or a
/// promo code's reservation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReceiptKey {
    /// An idempotent operation: its name (`claim`, `lock`, `pay`…) and the caller's key.
    Operation(&'static str, IdempotencyKey),
    /// A promo code, reserved for one template (codes are unique).
    Code(PromoCode),
}

impl fmt::Display for ReceiptKey {
    /// A stable text form, usable as a primary key: distinct keys give distinct texts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptKey::Operation(op, k) => write!(f, "op/{}/{}", Part(op), Part(k.as_str())),
            ReceiptKey::Code(c) => write!(f, "code/{c}"),
        }
    }
}

/// The stored first outcome of an operation, returned again to any retry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
pub enum Receipt {
    /// A coupon was issued.
    Claimed {
        /// The coupon.
        coupon: CouponId,
    },
    /// An order locked coupons.
    Locked {
        /// The order.
        order: OrderId,
        /// The coupons it holds.
        coupons: Vec<CouponId>,
        /// The order as locked: kept in the order's own receipt (absent under the caller's
        /// key, and in receipts written before it was kept).
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        totals: Option<LockedTotals>,
        /// A fingerprint of the request (under the caller's key): a retry with the same key
        /// and a different request is refused as a reuse of the key.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        fingerprint: Option<u64>,
    },
    /// An order was paid and its coupons redeemed.
    Redeemed {
        /// The order.
        order: OrderId,
        /// The coupons redeemed.
        coupons: Vec<CouponId>,
    },
    /// An unpaid order was cancelled (or its hold ran out) and its coupons released.
    Released {
        /// The order.
        order: OrderId,
        /// The coupons given back (Available) and those that had expired meanwhile.
        coupons: Vec<CouponId>,
    },
    /// A paid order was refunded.
    Refunded {
        /// The order.
        order: OrderId,
        /// Coupons returned to the wallet.
        returned: Vec<CouponId>,
        /// Coupons voided.
        voided: Vec<CouponId>,
        /// Whether the merchant refunded (else the buyer); absent in receipts written before
        /// it was kept.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        by_merchant: Option<bool>,
    },
    /// A coupon was voided by an admin.
    Voided {
        /// The coupon.
        coupon: CouponId,
    },
    /// A promo code belongs to this template.
    Code {
        /// The template.
        template: TemplateId,
    },
    /// A one-time code of this template, not yet redeemed: stored under
    /// [`ReceiptKey::Code`], so one-time codes and shared promo codes never clash.
    OneTimeCode {
        /// The template its coupon is issued from.
        template: TemplateId,
    },
    /// A one-time code was redeemed: the first account to redeem it owns its coupon.
    CodeRedeemed {
        /// The template.
        template: TemplateId,
        /// The account that owns it.
        user: UserId,
        /// The coupon issued.
        coupon: CouponId,
    },
    /// An order counted uses of these promo-code templates when it locked; they are given back
    /// if the order is released unpaid.
    CodesUsed {
        /// The order.
        order: OrderId,
        /// The buyer.
        user: UserId,
        /// The promo-code templates.
        templates: Vec<TemplateId>,
        /// When the order's hold runs out (see [`Op::Hold`]).
        until: DateTime<Utc>,
    },
    /// A step taken on an order record ([`Op::PutOrder`]): paid, cancelled, completed or
    /// refunded. The answer to a retry is read from the order itself.
    OrderStep {
        /// The order.
        order: OrderId,
        /// The step: `pay`, `cancel`, `complete`, `refund`.
        step: String,
        /// A fingerprint of the request (who acted, what was asked), so that the same key
        /// with a different request is told apart.
        fingerprint: u64,
        /// For a refund, its position in [`Order::refunds`].
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        refund: Option<usize>,
    },
}

/// An order as it was locked: its quote, so that a retried lock answers with the order as it
/// was (never re-priced), and what each coupon saved, so that paying reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LockedTotals {
    /// The quote as locked.
    pub quote: Box<Quote>,
    /// When the hold runs out, if coupons or promo-code uses are held.
    pub hold_until: Option<DateTime<Utc>>,
    /// The promo codes whose uses were counted.
    pub codes: Vec<PromoCode>,
    /// The buyer.
    pub user: UserId,
    /// Goods and shipping before discounts.
    pub gross: Money,
    /// Everything the discounts take off.
    pub discount: Money,
    /// What each locked coupon saves, in the order of the receipt's `coupons`.
    pub savings: Vec<Money>,
}

/// One write in a [`Batch`].
///
/// The enums of the seam ([`Op`], [`CounterKey`], [`ReceiptKey`], [`Receipt`]) are exhaustive
/// on purpose: a new variant breaks an outside store at compile time, never at run time.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Insert or replace a template record.
    PutTemplate {
        /// The record (its id is the key).
        record: Arc<TemplateRecord>,
        /// The condition.
        expect: Expect,
    },
    /// Insert or replace a campaign.
    PutCampaign {
        /// The campaign (its id is the key).
        campaign: Campaign,
        /// The condition.
        expect: Expect,
    },
    /// Insert or replace a coupon.
    PutCoupon {
        /// The coupon (its id is the key).
        coupon: Coupon,
        /// The condition.
        expect: Expect,
    },
    /// Add `delta` to a counter; the condition is that the result stays in `0..=limit`
    /// (`0..` when `limit` is `None`).
    Count {
        /// The counter.
        key: CounterKey,
        /// The change.
        delta: i64,
        /// The highest value allowed after the change.
        limit: Option<u64>,
    },
    /// Insert a receipt; the condition is that none exists under the key.
    InsertReceipt {
        /// The key.
        key: ReceiptKey,
        /// The receipt.
        receipt: Receipt,
    },
    /// Write an order record, if it is still at `expect`.
    PutOrder {
        /// The record.
        order: Box<Order>,
        /// Its expected version.
        expect: Expect,
    },
    /// Set (`Some`) or clear (`None`) the hold deadline of an unpaid order, so that
    /// [`Repository::held`] lists it once the deadline has passed. It has no condition: it
    /// never conflicts, and clearing an order without a hold changes nothing.
    ///
    /// The service holds an order that uses promo codes (their uses are counted at lock
    /// time): a coupon's own hold is in its state, but a code has no record to carry one.
    Hold {
        /// The order.
        order: OrderId,
        /// Its new deadline, or `None` once it is paid or released.
        until: Option<DateTime<Utc>>,
    },
    /// Add `delta` to the current bucket of a guard's windowed counter; the condition is that
    /// the sum of the buckets [`oldest_bucket`]`(bucket, span) ..= bucket` after the change is at most
    /// `limit`, and the current bucket stays at or above zero. Buckets older than the window
    /// may be dropped by the store (they are never summed again by the same guard).
    CountWindow {
        /// The guard.
        guard: GuardName,
        /// Who it counts: the guard's subject values, escaped and joined.
        subject: SubjectKey,
        /// The current bucket.
        bucket: i64,
        /// How many buckets the window sums, at least 1.
        span: u32,
        /// The change.
        delta: i64,
        /// The most the window may hold after the change.
        limit: u64,
    },
    /// Append an event to the feed. It has no condition: the store gives it the next
    /// [`Sequence`] when the batch applies, and drops it with the batch when it does not.
    Emit {
        /// The event.
        event: Event,
    },
}

/// The oldest bucket an [`Op::CountWindow`] sums: `bucket - span + 1`, the window being the
/// `span` buckets `oldest ..= bucket` (a `span` of 0 is read as 1; saturating at
/// [`i64::MIN`]). A store sums the buckets from it to `bucket`, and may drop those before it.
///
/// ```
/// use coupons::repository::oldest_bucket;
/// assert_eq!(oldest_bucket(20_403, 7), 20_397); // the last 7 days: today and the 6 before
/// assert_eq!(oldest_bucket(20_403, 1), 20_403); // a fixed window: its own bucket only
/// assert_eq!(oldest_bucket(20_403, 0), 20_403);
/// assert_eq!(oldest_bucket(i64::MIN, 366), i64::MIN);
/// ```
#[inline]
pub fn oldest_bucket(bucket: i64, span: u32) -> i64 {
    bucket.saturating_sub(i64::from(span.max(1)) - 1)
}

/// Writes applied together, all or nothing, only if every condition holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The writes, in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Appends a write.
    pub fn push(&mut self, op: Op) -> &mut Batch {
        self.ops.push(op);
        self
    }
}

/// What a [`Repository::commit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Commit {
    /// Every write was applied.
    Applied,
    /// Nothing was written: the condition of `ops[index]` did not hold.
    Conflict {
        /// The index in [`Batch::ops`] of the first condition that failed.
        index: usize,
    },
}

/// The caller's storage. Every method is one atomic step against the store; implementations
/// must be safe to call from many threads at once.
///
/// Instants reach the store at **microsecond** precision, between 1970 and 9999 (the service
/// passes every `now` through [`crate::time::check`], and rules' instants are checked when
/// built), so PostgreSQL `timestamptz`, MySQL `DATETIME(6)` or one 64-bit microsecond column
/// hold them exactly; a store must round-trip them unchanged. `stores/sqlite` (crate
/// `coupons-sqlite`) shows a complete implementation on SQLite, and the `testkit` feature's
/// conformance suite checks one.
///
/// Every batch that changes state carries its [`Op::Emit`] events; the store appends them with
/// the batch or not at all, numbering them with one increasing [`Sequence`] (see
/// [`crate::events`]).
///
/// Reads may be served from a snapshot or a replica only if `commit` still checks every
/// condition against the latest state: correctness comes from `commit`'s conditions, never from
/// the reads.
pub trait Repository: Send + Sync {
    /// The store's own failure (I/O, connection…). Conflicts are not errors: they are
    /// [`Commit::Conflict`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// A template record and its version.
    ///
    /// # Errors
    /// The store's failure.
    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, Self::Error>;

    /// Every template record (for building the checkout index of automatic promotions).
    ///
    /// # Errors
    /// The store's failure.
    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, Self::Error>;

    /// A campaign and its version.
    ///
    /// # Errors
    /// The store's failure.
    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, Self::Error>;

    /// A coupon and its version.
    ///
    /// # Errors
    /// The store's failure.
    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, Self::Error>;

    /// Every coupon owned by a user, in any state, ordered by id.
    ///
    /// # Errors
    /// The store's failure.
    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error>;

    /// A user's live coupons — Available or Locked — ordered by id: what a checkout reads.
    /// Used, expired and voided coupons stay out of it however long the history grows.
    ///
    /// The provided method filters [`wallet`](Self::wallet); a store with an index on the
    /// owner and state should answer from it.
    ///
    /// # Errors
    /// The store's failure.
    fn live_coupons(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        let mut all = self.wallet(user)?;
        all.retain(|c| {
            matches!(
                c.value.state,
                CouponState::Available | CouponState::Locked { .. }
            )
        });
        Ok(all)
    }

    /// A page of a user's coupons in any state, ordered by id: up to `limit` with an id above
    /// `after` (from the start when `None`).
    ///
    /// # Errors
    /// The store's failure.
    fn history(
        &self,
        user: &UserId,
        after: Option<&CouponId>,
        limit: usize,
    ) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        let mut all = self.wallet(user)?;
        all.retain(|c| after.is_none_or(|a| &c.value.id > a));
        all.truncate(limit);
        Ok(all)
    }

    /// Several coupons at once, in the order asked, `None` for a missing one.
    ///
    /// # Errors
    /// The store's failure.
    fn coupons(&self, ids: &[CouponId]) -> Result<Vec<Option<Versioned<Coupon>>>, Self::Error> {
        ids.iter().map(|id| self.coupon(id)).collect()
    }

    /// Every coupon locked or used by an order, ordered by id.
    ///
    /// # Errors
    /// The store's failure.
    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, Self::Error>;

    /// Up to `limit` coupons needing a time-driven transition at `now`: Available with
    /// `valid_until <= now`, or Locked with a hold ending at or before `now`. Ordered by id.
    /// When more are due than `limit`, which ones is the store's choice; the earliest due is a
    /// good one, and lets an index on the due time stop after `limit` entries (both stores
    /// shipped here choose so, the in-memory one to the second).
    ///
    /// # Errors
    /// The store's failure.
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, Self::Error>;

    /// Up to `limit` orders whose hold deadline ([`Op::Hold`]) is at or before `now`, earliest
    /// deadline first, ties by order id.
    ///
    /// # Errors
    /// The store's failure.
    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, Self::Error>;

    /// An order record.
    ///
    /// # Errors
    /// The store's failure.
    fn order(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, Self::Error>;

    /// A counter's value (zero if never written).
    ///
    /// # Errors
    /// The store's failure.
    fn counter(&self, key: &CounterKey) -> Result<u64, Self::Error>;

    /// A receipt, if one was stored under the key.
    ///
    /// # Errors
    /// The store's failure.
    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, Self::Error>;

    /// Up to `limit` events of the feed with a sequence above `after`, in sequence order
    /// (`after = 0` reads from the start). Sequences have no gaps: a reader that saved the last
    /// sequence it handled resumes exactly where it stopped, unless the store trimmed the feed
    /// past it (see [`TrimEvents`]); then the first event returned has a sequence above
    /// `after + 1`.
    ///
    /// # Errors
    /// The store's failure.
    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, Self::Error>;

    /// Applies every op of `batch` atomically if all their conditions hold, else none.
    ///
    /// Conditions: `PutTemplate`/`PutCampaign`/`PutCoupon` with [`Expect::Absent`] need the
    /// record to be missing, with [`Expect::Version`] need it at that version (the write stores
    /// version + 1; an insert stores version 1); `Count` needs the new value within
    /// `0..=limit`; `InsertReceipt` needs the key to be free. Callers name each record, counter and
    /// receipt key at most once in a batch.
    ///
    /// # Errors
    /// The store's failure; then nothing may have been applied.
    fn commit(&self, batch: &Batch) -> Result<Commit, Self::Error>;
}

/// A store whose event feed can be trimmed once its consumers have read it.
///
/// A capability apart from [`Repository`]: a store that keeps its feed for ever (or leaves
/// trimming to a database job) need not implement it.
pub trait TrimEvents: Repository {
    /// Drops every event with a sequence at or below `through`; later events keep their
    /// sequences, and the next appended event continues the numbering. Returns how many were
    /// dropped.
    ///
    /// # Errors
    /// The store's failure.
    fn trim_events(&self, through: Sequence) -> Result<u64, Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_keys_are_unique_even_with_slashes_in_ids() {
        let t = |s: &str| TemplateId::new(s).unwrap();
        let u = |s: &str| UserId::new(s).unwrap();
        let a = CounterKey::UserClaims(t("a/b"), u("c"));
        let b = CounterKey::UserClaims(t("a"), u("b/c"));
        assert_ne!(a.to_string(), b.to_string());
        assert_eq!(a.to_string(), "user-claims/a%2Fb/c");
        assert_eq!(
            CounterKey::Custom("50%/x".into()).to_string(),
            "custom/50%25%2Fx"
        );
        let k = |s: &str| IdempotencyKey::new(s).unwrap();
        assert_ne!(
            ReceiptKey::Operation("claim", k("x/y")).to_string(),
            ReceiptKey::Operation("claim/x", k("y")).to_string()
        );
    }
}
