//! Campaign reports: the event feed folded into counters per group, mergeable and incremental.
//!
//! A [`Report`] reads [`Logged`] events one by one ([`Report::apply`]) and counts, per
//! [`GroupKey`] — day (in a UTC offset), template, campaign, channel, the user's segment and the
//! experiment arm — offers, claims, uses, discounts, coupon-driven sales, orders without a
//! coupon, time from claim to use, expiries, voids, refunded coupons and orders, and
//! repurchases ([`Metrics`]).
//! Views add the groups up along one dimension ([`Report::by`]) into a [`Breakdown`]: claim
//! and usage rates, ROI, average order value with and without a coupon and the lift, the share
//! of new users among claimers, percentiles of time to use, the repurchase rate. A breakdown
//! renders as a plain-text table and serialises with serde; so does the report itself.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::analytics::report::{Dimension, NoLookup, Report, ReportConfig};
//! use coupons::events::{CouponFacts, Event, EventKind, Logged};
//! use coupons::id::*;
//! use coupons::lifecycle::ClaimMode;
//! use coupons::money::{Currency, Money};
//!
//! let at = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
//! let facts = CouponFacts {
//!     id: CouponId::new("c-1")?, template: TemplateId::new("save-25")?,
//!     user: UserId::new("alice")?, channel: Channel::new("app")?, campaign: None,
//!     claimed_at: at, attributes: Default::default(),
//! };
//! let yuan = |n: i64| Money::from_minor(n * 100, Currency::CNY);
//! let order = OrderId::new("o-1")?;
//! let feed = [
//!     EventKind::Offered { template: facts.template.clone(), user: facts.user.clone(),
//!                          channel: facts.channel.clone(), campaign: None,
//!                          attributes: Default::default() },
//!     EventKind::Issued { coupon: facts.clone(), mode: ClaimMode::Click },
//!     EventKind::Redeemed { coupon: facts.clone(), order: order.clone(), saving: yuan(25) },
//!     EventKind::OrderPaid { order, user: facts.user.clone(), gross: yuan(230),
//!                            discount: yuan(25), coupons: 1 },
//! ];
//! let east8 = FixedOffset::east_opt(8 * 3600).unwrap();
//! let mut report = Report::new(ReportConfig::new(Currency::CNY, east8));
//! for (i, kind) in feed.into_iter().enumerate() {
//!     let logged = Logged { seq: i as u64 + 1, event: Event::new(at, kind) };
//!     report.apply(&logged, &NoLookup)?;
//! }
//! let total = report.total();
//! assert_eq!((total.offered, total.claimed, total.used), (1, 1, 1));
//! assert_eq!(total.coupon_sales_minor, 20_500);
//! let by_day = report.by(Dimension::Day);
//! assert_eq!(by_day.rows[0].group, "2026-11-12"); // 20:00 UTC is the next morning at +08:00
//! assert_eq!(by_day.rows[0].roi.map(|r| r.to_string()), Some("8.2".into())); // 205 ÷ 25
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Merging and advancing
//!
//! A report is a fold, and every part of it merges: reports of partitions of the feed — by
//! time, by template, by shard — [`merge`](Report::merge) into the report of the whole, in any
//! order, counter for counter (with the repurchase window on, see below: time parts merge
//! adjacent ones, e.g. left to right). A report remembers the last sequence it read and
//! [`advance`](Report::advance)s from there with newer events from a
//! [`Repository`]; saved (serialised) and restored, it carries on where it stopped.
//!
//! Joins across events are kept as small open state that merging completes:
//! - an order's coupons (`Redeemed`) and its payment (`OrderPaid`) are joined by order id. In
//!   the feed they share one commit, so folding the feed in order holds at most the order
//!   being read; a partition that holds only one side keeps it open until the merge meets the
//!   other side (its size is bounded by the orders cut by the partitioning).
//! - the repurchase window (when [`ReportConfig::repurchase_within_days`] is set) keeps, per
//!   buyer, their first and latest paid order in what was read: memory grows with the number
//!   of buyers, not of events. A coupon order counts as repurchased when the buyer's next paid
//!   order in the feed comes within the window, and as not repurchased when it comes later or
//!   when [`settle`](Report::settle) finds the window closed. Merging joins the latest order
//!   of one part with the first of the other, which is exact when each part holds a buyer's
//!   orders as one run of the feed — partitions by time (merged adjacent part to adjacent
//!   part) or by user shard (in any order). Parts whose runs of
//!   one buyer interleave (a random split of orders) cannot be joined exactly; the merge
//!   counts them in [`Report::unmerged_buyers`] instead of guessing.
//!
//! Everything else is counters and bounded sketches per group: memory is bounded by the number
//! of groups, not of events.
//!
//! # Attribution and definitions
//! - Events count on the day they happened (claims on the claim day, uses on the use day), in
//!   the report's offset.
//! - An order with coupons counts once, in the group of the coupon that saved the most (ties:
//!   the smallest coupon id); its sales are what it paid, gross − discount. The group's
//!   discount is the savings of its own redeemed coupons. ROI is sales ÷ discount.
//! - "New" users are the caller's to define ([`Lookup::is_new`]: e.g. no paid order before the
//!   claim, or the account's age); the new-user rate counts claims whose owner was new, of
//!   the claims whose owner the lookup knew.
//! - An offer's arm is the `arm` attribute it was recorded with
//!   ([`Service::record_offer_with`](crate::service::Service::record_offer_with)); for
//!   offers recorded without one, the caller's ([`Lookup::offer_arm`], e.g. the experiment's
//!   deterministic assignment of the user).
//! - A refund (`OrderRefunded`, each partial or whole refund once) counts on its own day where
//!   the order's sales counted: in the group of the order's lead coupon (the event lists the
//!   order's coupons and what each saved), or with the orders without a coupon. Its amount is
//!   what it paid back; a breakdown's net coupon sales are the sales less that.
//! - Expired and voided coupons are counted and summed at their template's face value, when
//!   the caller gives it ([`Lookup::face_value`]; `expired_valued` and `voided_valued` say
//!   how many were valued). Refunded coupons are summed at what they had saved in their order
//!   (the `Refunded` event's `saving`; `refunded_valued` counts the events that carry it).

mod durations;
mod hot;
mod intern;
mod metrics;
mod table;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};

use crate::analytics::experiment::ARM_ATTRIBUTE;
use crate::attributes::{AttrValue, Attributes};
use crate::events::{CouponFacts, EventKind, Logged, OrderCoupon, Sequence};
use crate::hash::FastMap;
use crate::id::{CouponId, OrderId, TemplateId, UserId};
use crate::money::{Currency, Money};
use crate::repository::Repository;

use hot::{Hot, Sum};
use intern::{Caches, Dims, Rest, Slot};

pub use durations::{
    BIN_BOUNDS, BIN_LABELS, Durations, EXACT_DISTINCT, Percentile, SKETCH_RELATIVE_ERROR, human,
};
pub use metrics::{GroupKey, Metrics};
pub use table::{Breakdown, Dimension, Row};

/// What the feed does not say about a user or an offer, supplied by the caller. Every method
/// has a default that says "unknown".
pub trait Lookup {
    /// The user's segment (e.g. from `targeting`'s lifecycle segments), if any.
    fn segment(&self, user: &UserId) -> Option<Arc<str>> {
        let _ = user;
        None
    }
    /// The user's segment, lent when the lookup holds it: the report asks this, not
    /// [`Lookup::segment`]. By default it is `segment`'s answer, owned. A lookup that keeps
    /// its segments (a table of `Arc<str>`) should lend them (`Cow::Borrowed`): no reference
    /// count is touched per event — an atomic operation on a cache line that every thread
    /// folding with the same lookup shares. Must say what `segment` says.
    fn segment_ref<'a>(&'a self, user: &UserId) -> Option<Cow<'a, Arc<str>>> {
        self.segment(user).map(Cow::Owned)
    }
    /// Whether the user was new when claiming at `at`, if known.
    fn is_new(&self, user: &UserId, at: DateTime<Utc>) -> Option<bool> {
        let _ = (user, at);
        None
    }
    /// The experiment arm an offer of `template` to `user` belongs to, if any: asked only for
    /// offers recorded without an `arm` attribute (see [`Service::record_offer_with`](crate::service::Service::record_offer_with)).
    fn offer_arm(&self, template: &TemplateId, user: &UserId) -> Option<AttrValue> {
        let _ = (template, user);
        None
    }
    /// The face value of a template's coupons — what one takes off at most, e.g. 25 yuan for
    /// "spend 200, save 25", the cap of a percentage — if the caller values it: expired and
    /// voided coupons are summed at it. Asked once per expired or voided coupon (keep it a
    /// table lookup). An amount in another currency than the report's is refused.
    fn face_value(&self, template: &TemplateId) -> Option<Money> {
        let _ = template;
        None
    }
}

/// The lookup that knows nothing: no segments, newness unknown, offers in no arm.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLookup;

impl Lookup for NoLookup {}

/// A lookup from closures, for the common case.
///
/// ```
/// use std::sync::Arc;
/// use coupons::analytics::report::{Lookup, Lookups};
/// use coupons::id::UserId;
/// let vip: Arc<str> = Arc::from("vip");
/// let lookup = Lookups::new().with_segment(move |u: &UserId| (u.as_str() == "alice").then(|| vip.clone()));
/// assert_eq!(lookup.segment(&UserId::new("alice")?).as_deref(), Some("vip"));
/// assert_eq!(lookup.segment(&UserId::new("bob")?), None);
/// # Ok::<(), coupons::id::IdError>(())
/// ```
#[derive(Default)]
#[allow(clippy::type_complexity)]
pub struct Lookups<'a> {
    segment: Option<Box<dyn Fn(&UserId) -> Option<Arc<str>> + 'a>>,
    is_new: Option<Box<dyn Fn(&UserId, DateTime<Utc>) -> Option<bool> + 'a>>,
    offer_arm: Option<Box<dyn Fn(&TemplateId, &UserId) -> Option<AttrValue> + 'a>>,
    face_value: Option<Box<dyn Fn(&TemplateId) -> Option<Money> + 'a>>,
}

impl<'a> Lookups<'a> {
    /// A lookup that knows nothing yet.
    pub fn new() -> Lookups<'a> {
        Lookups::default()
    }
    /// Users' segments from `f`.
    pub fn with_segment(mut self, f: impl Fn(&UserId) -> Option<Arc<str>> + 'a) -> Self {
        self.segment = Some(Box::new(f));
        self
    }
    /// Whether a user was new at a time, from `f`.
    pub fn with_new_user(
        mut self,
        f: impl Fn(&UserId, DateTime<Utc>) -> Option<bool> + 'a,
    ) -> Self {
        self.is_new = Some(Box::new(f));
        self
    }
    /// Offers' arms from `f`.
    pub fn with_offer_arm(
        mut self,
        f: impl Fn(&TemplateId, &UserId) -> Option<AttrValue> + 'a,
    ) -> Self {
        self.offer_arm = Some(Box::new(f));
        self
    }
    /// Templates' face values from `f`.
    pub fn with_face_value(mut self, f: impl Fn(&TemplateId) -> Option<Money> + 'a) -> Self {
        self.face_value = Some(Box::new(f));
        self
    }
}

impl Lookup for Lookups<'_> {
    fn segment(&self, user: &UserId) -> Option<Arc<str>> {
        self.segment.as_ref().and_then(|f| f(user))
    }
    fn is_new(&self, user: &UserId, at: DateTime<Utc>) -> Option<bool> {
        self.is_new.as_ref().and_then(|f| f(user, at))
    }
    fn offer_arm(&self, template: &TemplateId, user: &UserId) -> Option<AttrValue> {
        self.offer_arm.as_ref().and_then(|f| f(template, user))
    }
    fn face_value(&self, template: &TemplateId) -> Option<Money> {
        self.face_value.as_ref().and_then(|f| f(template))
    }
}

/// A report could not read an event or merge another report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// An amount in another currency than the report's.
    #[error("event #{seq}: {what} is in {got}, the report counts {expected}")]
    Currency {
        /// The event's sequence.
        seq: Sequence,
        /// Which amount.
        what: &'static str,
        /// The report's currency.
        expected: Currency,
        /// The amount's currency.
        got: Currency,
    },
    /// Two reports with different settings cannot merge.
    #[error("cannot merge reports with different settings: {what}")]
    ConfigMismatch {
        /// The setting that differs.
        what: &'static str,
    },
    /// A UTC offset outside ±24 hours.
    #[error("UTC offset of {minutes} minutes is outside ±24 hours")]
    Offset {
        /// The offset as given.
        minutes: i32,
    },
}

/// A report failed while advancing through a store's feed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdvanceError<E> {
    /// The store failed to read the feed.
    #[error("reading the event feed after #{after}: {source}")]
    Store {
        /// Where the read started.
        after: Sequence,
        /// The store's error.
        source: E,
    },
    /// An event could not be counted.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// How a report groups and what it joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ConfigRepr", into = "ConfigRepr")
)]
pub struct ReportConfig {
    currency: Currency,
    offset: FixedOffset,
    repurchase_days: Option<u32>,
}

impl ReportConfig {
    /// Counts amounts in `currency` and days in `offset` (e.g. `+08:00` for China); no
    /// repurchase window.
    pub fn new(currency: Currency, offset: FixedOffset) -> ReportConfig {
        ReportConfig {
            currency,
            offset,
            repurchase_days: None,
        }
    }

    /// Also counts, for every coupon order, whether the buyer paid again within `days` days
    /// (keeps a small record per buyer; see [the module docs](self#merging-and-advancing)).
    pub fn repurchase_within_days(mut self, days: u32) -> ReportConfig {
        self.repurchase_days = Some(days);
        self
    }

    /// The currency amounts are counted in.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The offset days are counted in.
    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// The repurchase window in days, if counted.
    pub fn repurchase_days(&self) -> Option<u32> {
        self.repurchase_days
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ConfigRepr {
    currency: Currency,
    utc_offset_minutes: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repurchase_days: Option<u32>,
}

#[cfg(feature = "serde")]
impl TryFrom<ConfigRepr> for ReportConfig {
    type Error = ReportError;
    fn try_from(r: ConfigRepr) -> Result<ReportConfig, ReportError> {
        let offset = r
            .utc_offset_minutes
            .checked_mul(60)
            .and_then(FixedOffset::east_opt)
            .ok_or(ReportError::Offset {
                minutes: r.utc_offset_minutes,
            })?;
        Ok(ReportConfig {
            currency: r.currency,
            offset,
            repurchase_days: r.repurchase_days,
        })
    }
}

#[cfg(feature = "serde")]
impl From<ReportConfig> for ConfigRepr {
    fn from(c: ReportConfig) -> ConfigRepr {
        ConfigRepr {
            currency: c.currency,
            utc_offset_minutes: c.offset.local_minus_utc() / 60,
            repurchase_days: c.repurchase_days,
        }
    }
}

/// A coupon an order redeemed, waiting for (or joined with) the order's payment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UsedCoupon {
    coupon: CouponId,
    saving: i128,
    /// Its group (an index of the report's groups).
    group: u32,
}

/// One side or both of an order's join.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OpenOrder {
    /// Sorted by coupon id, so that merges in any order give the same value.
    coupons: Vec<UsedCoupon>,
    /// What it paid, how many coupons it redeemed, and its buyer.
    paid: Option<(i128, u32, UserId)>,
    /// Whether its buyer bought again in the window, when decided before the join.
    repurchased: Option<bool>,
}

/// A coupon of the order being joined, borrowed from the events of one call.
#[derive(Clone, Copy, Debug)]
struct LentCoupon<'e> {
    coupon: &'e CouponId,
    saving: i128,
    group: u32,
}

/// The order being joined while one call counts events: in a feed read in order, an order's
/// coupons and payment come together, so the usual join happens here, on ids borrowed from
/// the events — no hash lookup, no id cloned (no reference count touched). It goes to the
/// open map, owned, only when another order starts or the call ends, so everything else
/// (merge, serde, equality, [`Report::open_orders`]) sees every open order there.
#[derive(Debug, Default)]
struct Pending<'e> {
    /// The order, or `None` when no order is being joined (the other fields are then empty).
    order: Option<&'e OrderId>,
    /// Sorted by coupon id, as [`OpenOrder::coupons`].
    coupons: Vec<LentCoupon<'e>>,
    paid: Option<(i128, u32, &'e UserId)>,
    repurchased: Option<bool>,
}

impl Pending<'_> {
    /// Whether `order` is the one being joined.
    #[inline]
    fn is(&self, order: &OrderId) -> bool {
        // The same text (one `Arc` cloned into the order's events) is the same id; else compare.
        self.order
            .is_some_and(|o| std::ptr::eq(o.as_str(), order.as_str()) || o == order)
    }
}

/// A paid order as a buyer's trail remembers it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PaidRef {
    seq: Sequence,
    /// Unix seconds.
    at: i64,
    order: OrderId,
    /// Whether it used a coupon (and so waits for the buyer's next order).
    coupon: bool,
    /// Its group once the join is done.
    group: Option<u32>,
    /// Whether its repurchase was already decided.
    decided: bool,
}

/// A buyer's first and latest paid order in what a report read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Trail {
    first_seq: Sequence,
    first_at: i64,
    last: PaidRef,
}

/// The groups of a report: the interned dimensions, each group's slot, key and counters.
/// Group `i` is `keys[i]` with `metrics[i]` (plus `hot[i]` during a call that counts);
/// ids never change once given.
#[derive(Clone, Debug, Default)]
struct Groups {
    dims: Dims,
    /// Day by day (indexed by day id), the groups of the day by their other five ids: the
    /// groups a stretch of the feed counts in (its day and the next few) stay in small
    /// tables that the processor's cache holds.
    slots: Vec<FastMap<Rest, u32>>,
    keys: Vec<GroupKey>,
    metrics: Vec<Metrics>,
    /// The counters most events add to, since the last [`Groups::fold`] (see [`hot`]):
    /// all empty outside the calls that count.
    hot: Vec<Hot>,
    /// The groups whose `hot` counters are not empty.
    dirty: Vec<u32>,
    /// Writes to `hot` since the last fold (see [`Hot::MAX_WRITES`]).
    writes: u32,
    /// A fold after this many writes (0: [`Hot::MAX_WRITES`]); tests set it low.
    fold_every: u32,
    /// Times to use of redeemed coupons, as (group, seconds), waiting to be pushed into
    /// their groups' [`Durations`] (see [`Groups::push_uses`]).
    uses: Vec<(u32, u64)>,
}

/// How many times to use [`Groups::uses`] holds before they are pushed.
const USES: usize = 1024;

/// How many pushes ahead [`Groups::push_uses`] loads a group's durations.
const USES_AHEAD: usize = 8;

impl Groups {
    /// The group of a slot, made (empty) the first time.
    #[inline]
    fn of(&mut self, slot: Slot) -> u32 {
        match self.get_slot(slot) {
            Some(g) => g,
            None => self.make(slot),
        }
    }

    #[cold]
    fn make(&mut self, slot: Slot) -> u32 {
        let Some(key) = self.dims.key(slot) else {
            // Unreachable: every id of a slot comes from `dims`. Count in the first group
            // rather than fail.
            return 0;
        };
        self.push(slot, key)
    }

    fn push(&mut self, slot: Slot, key: GroupKey) -> u32 {
        self.push_with(slot, key, Metrics::default())
    }

    fn push_with(&mut self, slot: Slot, key: GroupKey, metrics: Metrics) -> u32 {
        let g = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        let (day, rest) = slot.split();
        let day = usize::try_from(day).unwrap_or(usize::MAX);
        if self.slots.len() <= day {
            self.slots
                .resize_with(day.saturating_add(1), FastMap::default);
        }
        if let Some(m) = self.slots.get_mut(day) {
            m.insert(rest, g);
        }
        self.keys.push(key);
        self.metrics.push(metrics);
        self.hot.push(Hot::default());
        g
    }

    /// The hot counters of group `g` and its [`Metrics`] (for the sums' spills), for one
    /// write: each write adds at most 1 to any count.
    #[inline]
    fn hot(&mut self, g: u32) -> Option<(&mut Hot, &mut Metrics)> {
        let limit = match self.fold_every {
            0 => Hot::MAX_WRITES,
            n => n,
        };
        if self.writes >= limit {
            self.fold();
        }
        self.writes += 1;
        let i = usize::try_from(g).ok()?;
        let h = self.hot.get_mut(i)?;
        let m = self.metrics.get_mut(i)?;
        if h.open(m) {
            self.dirty.push(g);
        }
        Some((h, m))
    }

    /// Adds the hot counters of the groups written since the last fold into their
    /// [`Metrics`]: after it, `metrics` is the whole count. Called at the end of every call
    /// that counts.
    fn fold(&mut self) {
        self.push_uses();
        self.dirty.sort_unstable();
        for &g in &self.dirty {
            let Ok(i) = usize::try_from(g) else { continue };
            if let (Some(h), Some(m)) = (self.hot.get_mut(i), self.metrics.get_mut(i)) {
                h.fold_into(m);
            }
        }
        self.dirty.clear();
        self.writes = 0;
    }

    /// Adds another report's groups to these; returns, for each of its group indices, the
    /// index here. Its ids are translated table by table (one lookup per distinct value, not
    /// per group), and its groups new here are moved, not added to empty ones.
    fn absorb(&mut self, other: Groups) -> Vec<u32> {
        let Groups {
            dims,
            slots,
            keys,
            metrics,
            ..
        } = other;
        let tr = self.dims.translate(&dims);
        // Each of its groups' slot here, by its index (from its day tables), so that its keys
        // and counters are then consumed in order, each moved once.
        let mut at: Vec<Option<Slot>> = vec![None; keys.len()];
        for (day, map) in slots.iter().enumerate() {
            let day = u32::try_from(day).unwrap_or(u32::MAX);
            for (&rest, &g) in map {
                if let Some(e) = usize::try_from(g).ok().and_then(|i| at.get_mut(i)) {
                    *e = tr.slot(day, rest);
                }
            }
        }
        drop(slots);
        self.keys.reserve(keys.len());
        self.metrics.reserve(metrics.len());
        self.hot.reserve(metrics.len());
        let mut renumber: Vec<u32> = Vec::with_capacity(keys.len());
        for ((key, m), slot) in keys.into_iter().zip(metrics).zip(at) {
            let slot = match slot {
                Some(slot) => slot,
                // Unreachable: every group has a slot, every id of a slot comes from its
                // report's tables.
                None => self.dims.slot(&key),
            };
            let mine = match self.get_slot(slot) {
                Some(mine) => {
                    if let Some(here) = self.get_mut(mine) {
                        here.merge(&m);
                    }
                    mine
                }
                None => self.push_with(slot, key, m),
            };
            renumber.push(mine);
        }
        renumber
    }

    /// The group of a key, made (empty) the first time.
    #[cfg(feature = "serde")]
    fn of_key(&mut self, key: &GroupKey) -> u32 {
        let slot = self.dims.slot(key);
        match self.get_slot(slot) {
            Some(g) => g,
            None => self.push(slot, key.clone()),
        }
    }

    /// The group of a key, if the report has it.
    fn find(&self, key: &GroupKey) -> Option<u32> {
        self.get_slot(self.dims.find(key)?)
    }

    /// The group of a slot, if made.
    #[inline]
    fn get_slot(&self, slot: Slot) -> Option<u32> {
        let (day, rest) = slot.split();
        self.slots
            .get(usize::try_from(day).ok()?)?
            .get(&rest)
            .copied()
    }

    #[inline]
    fn get_mut(&mut self, g: u32) -> Option<&mut Metrics> {
        self.metrics.get_mut(usize::try_from(g).ok()?)
    }

    /// A redeemed coupon's time to use, counted in group `g` (pushed with the next batch).
    #[inline]
    fn time_to_use(&mut self, g: u32, secs: u64) {
        self.uses.push((g, secs));
        if self.uses.len() >= USES {
            self.push_uses();
        }
    }

    /// Pushes the waiting times to use into their groups' [`Durations`]: the same
    /// durations as pushing each when its coupon was counted, since a [`Durations`] does
    /// not depend on the order of its pushes. Done in a batch, so that the groups'
    /// durations (rarely in cache, and each with its values on the heap) are loaded a few
    /// pushes ahead — the group's durations [`USES_AHEAD`] pushes ahead, its values half as
    /// far — and their loads overlap.
    fn push_uses(&mut self) {
        let mut uses = std::mem::take(&mut self.uses);
        let at = |g: u32| usize::try_from(g).unwrap_or(usize::MAX);
        for (i, &(g, secs)) in uses.iter().enumerate() {
            if let Some(&(ahead, _)) = uses.get(i + USES_AHEAD)
                && let Some(m) = self.metrics.get(at(ahead))
            {
                std::hint::black_box(m.time_to_use.count());
            }
            if let Some(&(ahead, _)) = uses.get(i + USES_AHEAD / 2)
                && let Some(m) = self.metrics.get(at(ahead))
            {
                std::hint::black_box(m.time_to_use.first_value());
            }
            if let Some(m) = self.metrics.get_mut(at(g)) {
                m.time_to_use.push(secs);
            }
        }
        uses.clear();
        self.uses = uses;
    }

    /// Reads the counter an event will add to in group `g`: [`Report::extend`] locates a
    /// run of events before counting them, so the groups' counters (rarely in cache: there
    /// are tens of thousands) are loaded together, while the run is located, rather than one
    /// at a time as each event is counted.
    #[inline]
    fn touch(&self, g: u32, kind: &EventKind) {
        let Ok(i) = usize::try_from(g) else { return };
        let Some(h) = self.hot.get(i) else { return };
        let v = match kind {
            EventKind::Offered { .. } => u64::from(h.offered),
            EventKind::Issued { .. } => u64::from(h.claimed),
            EventKind::Redeemed { .. } => u64::from(h.used),
            EventKind::OrderPaid { .. } => u64::from(h.plain_orders),
            EventKind::Expired { .. } => u64::from(h.expired),
            _ => return,
        };
        std::hint::black_box(v);
    }

    fn get(&self, g: u32) -> Option<&Metrics> {
        self.metrics.get(usize::try_from(g).ok()?)
    }

    fn key(&self, g: u32) -> Option<&GroupKey> {
        self.keys.get(usize::try_from(g).ok()?)
    }
}

/// What the lookup and the coupon said of an event's group: the ids of its segment and arm.
#[derive(Clone, Copy, Debug, Default)]
struct Looked {
    segment: u32,
    arm: u32,
}

/// The coupon a refunded order's sales counted under: the one that saved the most in it (ties:
/// the smallest coupon id), as for its payment ([`Report::lead`]).
fn lead_coupon(coupons: &[OrderCoupon]) -> Option<&CouponFacts> {
    let mut lead: Option<&OrderCoupon> = None;
    for c in coupons {
        let better = lead.is_none_or(|l| {
            let (a, b) = (c.saving.to_minor_i128(), l.saving.to_minor_i128());
            a > b || (a == b && c.coupon.id < l.coupon.id)
        });
        if better {
            lead = Some(c);
        }
    }
    lead.map(|c| &c.coupon)
}

/// The `arm` attribute, if any (most offers and many coupons have no attributes at all).
/// The keys are compared inline (no call to `memcmp` for a three-byte key).
#[inline]
fn arm_of(attributes: &Attributes) -> Option<&AttrValue> {
    if attributes.is_empty() {
        return None;
    }
    let arm = ARM_ATTRIBUTE.as_bytes();
    attributes
        .iter()
        .find(|(k, _)| {
            let k = k.as_str().as_bytes();
            k.len() == arm.len() && k.iter().zip(arm).all(|(a, b)| a == b)
        })
        .map(|(_, v)| v)
}

/// What the caller's lookup and the coupon say of an event's group — the ids of its user's
/// segment and of its experiment arm: the reads of a fold that miss the processor's caches
/// most (the user's id, the coupon's attributes), done for a run of events at once by
/// [`Report::extend`] so that they overlap. Values are interned through the call's caches
/// when given (see [`Caches`]).
#[inline]
fn look<'e, L: Lookup + ?Sized>(
    dims: &mut Dims,
    caches: Option<&mut Caches<'e>>,
    logged: &'e Logged,
    lookup: &'e L,
) -> Looked {
    let (segment, arm): (Option<Cow<'e, Arc<str>>>, Option<Cow<'e, AttrValue>>) =
        match &logged.event.kind {
            EventKind::Offered {
                template,
                user,
                attributes,
                ..
            } => (
                lookup.segment_ref(user),
                match arm_of(attributes) {
                    Some(arm) => Some(Cow::Borrowed(arm)),
                    None => lookup.offer_arm(template, user).map(Cow::Owned),
                },
            ),
            EventKind::Issued { coupon, .. }
            | EventKind::Redeemed { coupon, .. }
            | EventKind::Released { coupon, .. }
            | EventKind::Expired { coupon }
            | EventKind::Voided { coupon }
            | EventKind::Refunded { coupon, .. } => (
                lookup.segment_ref(&coupon.user),
                arm_of(&coupon.attributes).map(Cow::Borrowed),
            ),
            EventKind::OrderPaid {
                user, coupons: 0, ..
            }
            | EventKind::Refused { user, .. } => (lookup.segment_ref(user), None),
            EventKind::OrderRefunded { user, coupons, .. } => match lead_coupon(coupons) {
                Some(c) => (
                    lookup.segment_ref(&c.user),
                    arm_of(&c.attributes).map(Cow::Borrowed),
                ),
                None => (lookup.segment_ref(user), None),
            },
            _ => return Looked::default(),
        };
    match caches {
        Some(k) => Looked {
            segment: match segment {
                None => 0,
                Some(Cow::Borrowed(s)) => dims.segments.id_by_addr(&mut k.lent_segments, Some(s)),
                Some(Cow::Owned(s)) => dims.segments.id_held(&mut k.segments, Some(s)),
            },
            arm: match arm {
                None => 0,
                Some(Cow::Borrowed(a)) => dims.arms.id_by_addr(&mut k.arms, Some(a)),
                Some(Cow::Owned(a)) => dims.arms.id_held(&mut k.offer_arms, Some(a)),
            },
        },
        None => Looked {
            segment: dims.segments.id(segment.as_deref()),
            arm: match arm {
                None => 0,
                Some(Cow::Borrowed(a)) => dims.arms.id(Some(a)),
                Some(Cow::Owned(a)) => dims.arms.id_owned(Some(a)),
            },
        },
    }
}

/// Where an event counts, found before it is counted.
#[derive(Clone, Copy, Debug)]
enum Located {
    /// In an existing group.
    Group(u32),
    /// In a group not made yet.
    New(Slot),
    /// In no group (an event the report does not count, or an order joined later).
    Nowhere,
}

/// A coupon order's repurchase, decided: counted in its group, or kept with the open order
/// until the join tells the group.
fn decide(
    days: Option<u32>,
    groups: &mut Groups,
    open: &mut FastMap<OrderId, OpenOrder>,
    pending: &mut Pending<'_>,
    last: &PaidRef,
    next_at: i64,
) {
    let Some(days) = days else {
        return;
    };
    if !last.coupon || last.decided {
        return;
    }
    let within = next_at - last.at <= i64::from(days) * DAY;
    match last.group {
        Some(group) => {
            if let Some(g) = groups.get_mut(group) {
                if within {
                    g.repurchased += 1;
                } else {
                    g.not_repurchased += 1;
                }
            }
        }
        None => {
            if pending.is(&last.order) {
                pending.repurchased = Some(within);
            } else {
                open.entry(last.order.clone()).or_default().repurchased = Some(within);
            }
        }
    }
}

/// The feed folded into counters per group; see [the module docs](self).
///
/// Inside, every dimension's values are interned to dense integers once, and a group is found
/// by its six ids (one small hash lookup per event, no string compared or cloned).
#[derive(Clone, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(from = "ReportRepr", into = "ReportRepr")
)]
pub struct Report {
    config: ReportConfig,
    last_seq: Sequence,
    events: u64,
    groups: Groups,
    open: FastMap<OrderId, OpenOrder>,
    trails: HashMap<UserId, Trail>,
    unmerged_buyers: u64,
    /// Days recently read, as (UTC date, the days from it to the day in the offset, that
    /// day's id), at the offset's day of the year modulo [`DAY_CACHE`]: a stretch of the feed
    /// counts in its day and the next few (uses and expiries of earlier claims), all of which
    /// stay here. Keyed by what a time holds (its UTC date and seconds), so a hit does no
    /// calendar arithmetic.
    day_cache: [(NaiveDate, i32, u32); DAY_CACHE],
}

/// Whole seconds from `from` to `to`, 0 when `to` is earlier — `(to - from).num_seconds()`
/// floored at 0 — without calendar arithmetic when both times are in one UTC year (as a
/// coupon's claim and use nearly always are): the days between them are then the difference
/// of their days of the year. Leap-second times (a nanosecond field past 10⁹) take chrono's
/// way.
#[inline]
fn secs_since(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    const NANOS: u32 = 1_000_000_000;
    let (a, b) = (to.naive_utc(), from.naive_utc());
    let (na, nb) = (a.nanosecond(), b.nanosecond());
    if a.year() == b.year() && na < NANOS && nb < NANOS {
        let days = i64::from(a.ordinal()) - i64::from(b.ordinal());
        let secs =
            i64::from(a.num_seconds_from_midnight()) - i64::from(b.num_seconds_from_midnight());
        // Floored: a fraction of a second short of a whole second is the second before it
        // (below zero, `num_seconds`' rounding toward zero floors at 0 all the same).
        let whole = days * DAY + secs - i64::from(na < nb);
        return u64::try_from(whole).unwrap_or(0);
    }
    u64::try_from((to - from).num_seconds()).unwrap_or(0)
}

/// How many days the day cache holds.
const DAY_CACHE: usize = 16;

const DAY: i64 = 86_400;

/// An open order with its coupons' groups as keys: comparable across reports.
type OpenByKey<'a> = (
    Vec<(&'a CouponId, i128, Option<&'a GroupKey>)>,
    &'a Option<(i128, u32, UserId)>,
    Option<bool>,
);

impl Report {
    fn open_by_key<'a>(&'a self, o: &'a OpenOrder) -> OpenByKey<'a> {
        (
            o.coupons
                .iter()
                .map(|c| (&c.coupon, c.saving, self.groups.key(c.group)))
                .collect(),
            &o.paid,
            o.repurchased,
        )
    }

    fn trail_by_key(&self, t: &Trail) -> (Sequence, i64, PaidRef, Option<GroupKey>) {
        let key = t.last.group.and_then(|g| self.groups.key(g)).cloned();
        let mut last = t.last.clone();
        last.group = None;
        (t.first_seq, t.first_at, last, key)
    }
}

impl PartialEq for Report {
    /// Equal counts and open state, group by group (however each report numbered its
    /// groups inside).
    fn eq(&self, o: &Report) -> bool {
        self.config == o.config
            && self.last_seq == o.last_seq
            && self.events == o.events
            && self.unmerged_buyers == o.unmerged_buyers
            && self.groups.keys.len() == o.groups.keys.len()
            && self.groups().all(|(k, m)| {
                o.groups
                    .find(k)
                    .and_then(|g| o.groups.get(g))
                    .is_some_and(|om| om == m)
            })
            && self.open.len() == o.open.len()
            && self.open.iter().all(|(id, a)| {
                o.open
                    .get(id)
                    .is_some_and(|b| self.open_by_key(a) == o.open_by_key(b))
            })
            && self.trails.len() == o.trails.len()
            && self.trails.iter().all(|(u, a)| {
                o.trails
                    .get(u)
                    .is_some_and(|b| self.trail_by_key(a) == o.trail_by_key(b))
            })
    }
}

/// A coupon an order redeemed, in JSON.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct UsedCouponRepr {
    coupon: CouponId,
    saving: i128,
    key: GroupKey,
}

/// An open order in JSON.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct OpenOrderRepr {
    coupons: Vec<UsedCouponRepr>,
    paid: Option<(i128, u32, UserId)>,
    #[serde(default)]
    repurchased: Option<bool>,
}

/// A paid order of a trail in JSON.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct PaidRefRepr {
    seq: Sequence,
    at: i64,
    order: OrderId,
    coupon: bool,
    key: Option<GroupKey>,
    decided: bool,
}

/// A trail in JSON.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct TrailRepr {
    first_seq: Sequence,
    first_at: i64,
    last: PaidRefRepr,
}

/// A report in JSON: groups, open orders and trails as sorted lists.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ReportRepr {
    config: ReportConfig,
    last_seq: Sequence,
    events: u64,
    groups: Vec<(GroupKey, Metrics)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    open: Vec<(OrderId, OpenOrderRepr)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    trails: Vec<(UserId, TrailRepr)>,
    #[serde(default)]
    unmerged_buyers: u64,
}

#[cfg(feature = "serde")]
impl From<Report> for ReportRepr {
    fn from(r: Report) -> ReportRepr {
        let key = |g: u32| r.groups.key(g).cloned();
        let mut open: Vec<(OrderId, OpenOrderRepr)> = r
            .open
            .iter()
            .map(|(id, o)| {
                let coupons = o
                    .coupons
                    .iter()
                    .filter_map(|c| {
                        Some(UsedCouponRepr {
                            coupon: c.coupon.clone(),
                            saving: c.saving,
                            key: key(c.group)?,
                        })
                    })
                    .collect();
                (
                    id.clone(),
                    OpenOrderRepr {
                        coupons,
                        paid: o.paid.clone(),
                        repurchased: o.repurchased,
                    },
                )
            })
            .collect();
        open.sort_by(|a, b| a.0.cmp(&b.0));
        let mut trails: Vec<(UserId, TrailRepr)> = r
            .trails
            .iter()
            .map(|(u, t)| {
                let l = &t.last;
                (
                    u.clone(),
                    TrailRepr {
                        first_seq: t.first_seq,
                        first_at: t.first_at,
                        last: PaidRefRepr {
                            seq: l.seq,
                            at: l.at,
                            order: l.order.clone(),
                            coupon: l.coupon,
                            key: l.group.and_then(key),
                            decided: l.decided,
                        },
                    },
                )
            })
            .collect();
        trails.sort_by(|a, b| a.0.cmp(&b.0));
        let mut groups: Vec<(GroupKey, Metrics)> =
            r.groups.keys.into_iter().zip(r.groups.metrics).collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        ReportRepr {
            config: r.config,
            last_seq: r.last_seq,
            events: r.events,
            groups,
            open,
            trails,
            unmerged_buyers: r.unmerged_buyers,
        }
    }
}

#[cfg(feature = "serde")]
impl From<ReportRepr> for Report {
    fn from(r: ReportRepr) -> Report {
        let mut report = Report::new(r.config);
        report.last_seq = r.last_seq;
        report.events = r.events;
        for (k, m) in r.groups {
            let g = report.groups.of_key(&k);
            if let Some(mine) = report.groups.get_mut(g) {
                mine.merge(&m);
            }
        }
        for (id, o) in r.open {
            let coupons = o
                .coupons
                .into_iter()
                .map(|c| UsedCoupon {
                    coupon: c.coupon,
                    saving: c.saving,
                    group: report.groups.of_key(&c.key),
                })
                .collect();
            let open = OpenOrder {
                coupons,
                paid: o.paid,
                repurchased: o.repurchased,
            };
            report.open.insert(id, open);
        }
        for (u, t) in r.trails {
            let l = t.last;
            let last = PaidRef {
                seq: l.seq,
                at: l.at,
                order: l.order,
                coupon: l.coupon,
                group: l.key.map(|k| report.groups.of_key(&k)),
                decided: l.decided,
            };
            report.trails.insert(
                u,
                Trail {
                    first_seq: t.first_seq,
                    first_at: t.first_at,
                    last,
                },
            );
        }
        report.unmerged_buyers = r.unmerged_buyers;
        report
    }
}

impl Report {
    /// An empty report.
    pub fn new(config: ReportConfig) -> Report {
        Report {
            config,
            last_seq: 0,
            events: 0,
            groups: Groups::default(),
            open: FastMap::default(),
            trails: HashMap::new(),
            unmerged_buyers: 0,
            day_cache: [(NaiveDate::MIN, i32::MIN, 0); DAY_CACHE],
        }
    }

    /// Its settings.
    pub fn config(&self) -> &ReportConfig {
        &self.config
    }

    /// The highest sequence read (0 before the first event): where [`Report::advance`] goes on.
    pub fn last_seq(&self) -> Sequence {
        self.last_seq
    }

    /// How many events were read.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The groups and their counters, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = (&GroupKey, &Metrics)> {
        self.groups.keys.iter().zip(&self.groups.metrics)
    }

    /// Orders seen on one side of their join only (coupons without the payment or the other
    /// way round): 0 after folding a whole feed in order.
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// Buyers whose paid orders two merged reports both held, interleaved in the feed: their
    /// repurchases across the two parts were not counted.
    pub fn unmerged_buyers(&self) -> u64 {
        self.unmerged_buyers
    }

    /// Buyers the repurchase window follows (one small record each).
    pub fn buyers_followed(&self) -> usize {
        self.trails.len()
    }

    /// Every group added up.
    pub fn total(&self) -> Metrics {
        let mut m = Metrics::default();
        for g in &self.groups.metrics {
            m.merge(g);
        }
        m
    }

    /// Folds the hot counters after every `n` writes (0: only as calls end), to exercise
    /// folds in the middle of a call.
    #[cfg(test)]
    fn fold_hot_every(&mut self, n: u32) {
        self.groups.fold_every = n;
    }

    /// Whether the hot counters are all folded (as they must be outside the calls that count).
    #[cfg(test)]
    fn hot_is_folded(&self) -> bool {
        self.groups.dirty.is_empty()
            && self.groups.uses.is_empty()
            && self.groups.writes == 0
            && self.groups.hot.len() == self.groups.metrics.len()
            && self.groups.hot.iter().all(Hot::is_empty)
    }

    /// The id of the day of `at` in the report's offset.
    #[inline]
    fn day(&mut self, at: DateTime<Utc>) -> u32 {
        let utc = at.naive_utc();
        let date = utc.date();
        // Seconds from the UTC midnight to the time in the offset: -1, 0 or 1 day away.
        let secs =
            utc.time().num_seconds_from_midnight() as i32 + self.config.offset.local_minus_utc();
        let shift = secs.div_euclid(DAY as i32);
        let i = ((date.ordinal() as i32 + shift) & (DAY_CACHE as i32 - 1)) as usize;
        match self.day_cache.get(i) {
            Some(&(d, s, id)) if d == date && s == shift => id,
            _ => self.day_slow(at, date, shift, i),
        }
    }

    #[cold]
    fn day_slow(&mut self, at: DateTime<Utc>, utc: NaiveDate, shift: i32, i: usize) -> u32 {
        let date = at.with_timezone(&self.config.offset).date_naive();
        let id = self.groups.dims.days.id(date);
        if let Some(e) = self.day_cache.get_mut(i) {
            *e = (utc, shift, id);
        }
        id
    }

    /// The face value of a template from the lookup, in minor units, if it values it.
    fn face_value<L: Lookup + ?Sized>(
        &self,
        seq: Sequence,
        lookup: &L,
        template: &TemplateId,
    ) -> Result<Option<i128>, ReportError> {
        match lookup.face_value(template) {
            Some(v) => self.minor(seq, "a face value", &v).map(Some),
            None => Ok(None),
        }
    }

    #[inline]
    fn minor(&self, seq: Sequence, what: &'static str, m: &Money) -> Result<i128, ReportError> {
        if m.currency() != self.config.currency {
            return Err(ReportError::Currency {
                seq,
                what,
                expected: self.config.currency,
                got: m.currency(),
            });
        }
        Ok(m.to_minor_i128())
    }

    /// The first half of counting an event: the group it counts in, as its slot and (when the
    /// group exists already) its index. Only interns values; makes no group and counts
    /// nothing, so [`Report::extend`] can locate a run of events before counting them.
    #[inline]
    fn locate<'e>(
        &mut self,
        logged: &'e Logged,
        looked: Looked,
        caches: Option<&mut Caches<'e>>,
    ) -> Located {
        let at = logged.event.at;
        let (template, campaign, channel) = match &logged.event.kind {
            EventKind::Offered {
                template,
                channel,
                campaign,
                ..
            } => (Some(template), campaign.as_ref(), Some(channel)),
            EventKind::Issued { coupon: c, .. }
            | EventKind::Redeemed { coupon: c, .. }
            | EventKind::Released { coupon: c, .. }
            | EventKind::Expired { coupon: c }
            | EventKind::Voided { coupon: c }
            | EventKind::Refunded { coupon: c, .. } => {
                (Some(&c.template), c.campaign.as_ref(), Some(&c.channel))
            }
            EventKind::OrderPaid { coupons: 0, .. } => (None, None, None),
            EventKind::OrderRefunded { coupons, .. } => match lead_coupon(coupons) {
                Some(c) => (Some(&c.template), c.campaign.as_ref(), Some(&c.channel)),
                None => (None, None, None),
            },
            EventKind::Refused { template, .. } => (Some(template), None, None),
            _ => return Located::Nowhere,
        };
        let day = self.day(at);
        let d = &mut self.groups.dims;
        let [t, c, ch] = match caches {
            Some(k) => [
                d.templates.id_by_addr(&mut k.templates, template),
                d.campaigns.id_by_addr(&mut k.campaigns, campaign),
                d.channels.id_by_addr(&mut k.channels, channel),
            ],
            None => [
                d.templates.id(template),
                d.campaigns.id(campaign),
                d.channels.id(channel),
            ],
        };
        let slot = Slot([day, t, c, ch, looked.segment, looked.arm]);
        match self.groups.get_slot(slot) {
            Some(g) => {
                self.groups.touch(g, &logged.event.kind);
                Located::Group(g)
            }
            None => Located::New(slot),
        }
    }

    /// The group of a located event, made now if it is new.
    #[inline]
    fn group_at(&mut self, at: Located) -> Option<u32> {
        match at {
            Located::Group(g) => Some(g),
            Located::New(slot) => Some(self.groups.of(slot)),
            Located::Nowhere => None,
        }
    }

    /// The counters of a located event.
    #[inline]
    fn metrics_at(&mut self, at: Located) -> Option<&mut Metrics> {
        let g = self.group_at(at)?;
        self.groups.get_mut(g)
    }

    /// The hot counters of a located event (and its [`Metrics`]), for one write.
    #[inline]
    fn hot_at(&mut self, at: Located) -> Option<(&mut Hot, &mut Metrics)> {
        let g = self.group_at(at)?;
        self.groups.hot(g)
    }

    /// Counts one event. Events are read in feed order within one report; several reports over
    /// parts of the feed [`merge`](Report::merge).
    ///
    /// # Errors
    /// [`ReportError::Currency`] for an amount in another currency (nothing is counted).
    pub fn apply<L: Lookup + ?Sized>(
        &mut self,
        logged: &Logged,
        lookup: &L,
    ) -> Result<(), ReportError> {
        let looked = look(&mut self.groups.dims, None, logged, lookup);
        let at = self.locate(logged, looked, None);
        let mut pending = Pending::default();
        let counted = self.count(logged, lookup, at, &mut pending);
        self.flush(&mut pending);
        self.groups.fold();
        counted
    }

    /// The second half of counting an event, in feed order: its counters, joins and trails.
    fn count<'e, L: Lookup + ?Sized>(
        &mut self,
        logged: &'e Logged,
        lookup: &L,
        located: Located,
        pending: &mut Pending<'e>,
    ) -> Result<(), ReportError> {
        let seq = logged.seq;
        let at = logged.event.at;
        match &logged.event.kind {
            EventKind::TemplateChanged { .. } | EventKind::CampaignChanged { .. } => {}
            EventKind::OrderPlaced { .. } | EventKind::Locked { .. } => {}
            EventKind::OrderReleased { .. } => {}
            EventKind::OrderRefunded {
                amount, coupons, ..
            } => {
                let amount = self.minor(seq, "a refunded amount", amount)?;
                if let Some((_, m)) = self.hot_at(located) {
                    if coupons.is_empty() {
                        m.plain_refunds = m.plain_refunds.saturating_add(1);
                        m.plain_refunded_minor = m.plain_refunded_minor.saturating_add(amount);
                    } else {
                        m.coupon_refunds = m.coupon_refunds.saturating_add(1);
                        m.coupon_refunded_minor = m.coupon_refunded_minor.saturating_add(amount);
                    }
                }
            }
            EventKind::Offered { .. } => {
                if let Some((h, _)) = self.hot_at(located) {
                    h.offered += 1;
                }
            }
            EventKind::Issued { coupon, .. } => {
                let new = lookup.is_new(&coupon.user, at);
                if let Some((h, _)) = self.hot_at(located) {
                    h.claimed += 1;
                    if let Some(new) = new {
                        h.claimed_known += 1;
                        h.claimed_new += u32::from(new);
                    }
                }
            }
            EventKind::Redeemed {
                coupon,
                order,
                saving,
            } => {
                let saving = self.minor(seq, "a saving", saving)?;
                let Some(group) = self.group_at(located) else {
                    return Ok(());
                };
                let secs = secs_since(coupon.claimed_at, at);
                if let Some((h, m)) = self.groups.hot(group) {
                    h.used += 1;
                    h.add_money(m, Sum::Discount, saving);
                }
                self.groups.time_to_use(group, secs);
                if pending.is(order) {
                    let i = pending.coupons.partition_point(|c| c.coupon < &coupon.id);
                    let used = LentCoupon {
                        coupon: &coupon.id,
                        saving,
                        group,
                    };
                    pending.coupons.insert(i, used);
                    self.try_join(order, pending);
                } else if let Some(open) = self.open.get_mut(order) {
                    let i = open.coupons.partition_point(|c| c.coupon < coupon.id);
                    let used = UsedCoupon {
                        coupon: coupon.id.clone(),
                        saving,
                        group,
                    };
                    open.coupons.insert(i, used);
                    self.try_join(order, pending);
                } else {
                    // The usual case: the order's first coupon; its payment follows.
                    self.flush(pending);
                    pending.order = Some(order);
                    pending.coupons.push(LentCoupon {
                        coupon: &coupon.id,
                        saving,
                        group,
                    });
                }
            }
            EventKind::OrderPaid {
                order,
                user,
                gross,
                discount,
                coupons,
            } => {
                let paid = self
                    .minor(seq, "an order's gross", gross)?
                    .saturating_sub(self.minor(seq, "an order's discount", discount)?);
                if *coupons == 0 {
                    let Some(group) = self.group_at(located) else {
                        return Ok(());
                    };
                    if let Some((h, m)) = self.groups.hot(group) {
                        h.plain_orders += 1;
                        h.add_money(m, Sum::PlainSales, paid);
                    }
                    self.follow(user, seq, at, order, false, Some(group), pending);
                } else {
                    let seen = if pending.is(order) {
                        pending.paid = Some((paid, *coupons, user));
                        true
                    } else if let Some(open) = self.open.get_mut(order) {
                        open.paid = Some((paid, *coupons, user.clone()));
                        true
                    } else {
                        self.flush(pending);
                        pending.order = Some(order);
                        pending.paid = Some((paid, *coupons, user));
                        false
                    };
                    self.follow(user, seq, at, order, true, None, pending);
                    if seen {
                        // (An order first seen here has none of its coupons yet.)
                        self.try_join(order, pending);
                    }
                }
            }
            EventKind::Released { .. } => {
                if let Some(g) = self.metrics_at(located) {
                    g.released += 1;
                }
            }
            EventKind::Expired { coupon } => {
                let value = self.face_value(seq, lookup, &coupon.template)?;
                if let Some((h, g)) = self.hot_at(located) {
                    h.expired += 1;
                    if let Some(v) = value {
                        g.expired_valued += 1;
                        g.expired_value_minor = g.expired_value_minor.saturating_add(v);
                    }
                }
            }
            EventKind::Voided { coupon } => {
                let value = self.face_value(seq, lookup, &coupon.template)?;
                if let Some(g) = self.metrics_at(located) {
                    g.voided += 1;
                    if let Some(v) = value {
                        g.voided_valued += 1;
                        g.voided_value_minor = g.voided_value_minor.saturating_add(v);
                    }
                }
            }
            EventKind::Refunded {
                returned, saving, ..
            } => {
                let saving = match saving {
                    Some(s) => Some(self.minor(seq, "a refunded saving", s)?),
                    None => None,
                };
                if let Some(g) = self.metrics_at(located) {
                    g.refunded += 1;
                    g.refunded_returned += u64::from(*returned);
                    if let Some(s) = saving {
                        g.refunded_valued += 1;
                        g.refunded_saving_minor = g.refunded_saving_minor.saturating_add(s);
                    }
                }
            }
            EventKind::Refused { .. } => {
                if let Some(g) = self.metrics_at(located) {
                    g.refused += 1;
                }
            }
        }
        self.last_seq = self.last_seq.max(seq);
        self.events += 1;
        Ok(())
    }

    /// Counts events in order, the same as [`Report::apply`] on each. Events are taken in runs
    /// of a few dozen: the run's groups are located first, then its events counted in order.
    ///
    /// # Errors
    /// As [`Report::apply`]; the events before the failing one stay counted.
    pub fn extend<'e, L: Lookup + ?Sized>(
        &mut self,
        events: impl IntoIterator<Item = &'e Logged>,
        lookup: &L,
    ) -> Result<(), ReportError> {
        const RUN: usize = 32;
        let mut events = events.into_iter();
        let mut run: Vec<&Logged> = Vec::with_capacity(RUN);
        let mut looked: Vec<Looked> = Vec::with_capacity(RUN);
        let mut located: Vec<Located> = Vec::with_capacity(RUN);
        let mut caches = Caches::new();
        let mut pending = Pending::default();
        loop {
            run.clear();
            run.extend(events.by_ref().take(RUN));
            if run.is_empty() {
                self.flush(&mut pending);
                self.groups.fold();
                return Ok(());
            }
            looked.clear();
            for e in &run {
                looked.push(look(&mut self.groups.dims, Some(&mut caches), e, lookup));
            }
            located.clear();
            for (e, &l) in run.iter().zip(&looked) {
                let at = self.locate(e, l, Some(&mut caches));
                located.push(at);
            }
            for (e, &at) in run.iter().zip(&located) {
                if let Err(e) = self.count(e, lookup, at, &mut pending) {
                    self.flush(&mut pending);
                    self.groups.fold();
                    return Err(e);
                }
            }
        }
    }

    /// Reads the store's feed after [`Report::last_seq`], `page` events at a time, until it is
    /// exhausted; returns how many events were read.
    ///
    /// # Errors
    /// [`AdvanceError::Store`] when the store fails; [`AdvanceError::Report`] when an event
    /// cannot be counted (the report stays at the event before it).
    pub fn advance<R: Repository, L: Lookup + ?Sized>(
        &mut self,
        repo: &R,
        lookup: &L,
        page: usize,
    ) -> Result<u64, AdvanceError<R::Error>> {
        let mut read = 0u64;
        loop {
            let after = self.last_seq;
            let events = repo
                .events(after, page.max(1))
                .map_err(|source| AdvanceError::Store { after, source })?;
            if events.is_empty() {
                return Ok(read);
            }
            let fresh = events.iter().filter(|e| e.seq > after);
            read += fresh.clone().count() as u64;
            self.extend(fresh, lookup)?;
        }
    }

    /// A coupon order's repurchase, decided: counted in its group, or kept with the open
    /// order until the join tells the group.
    /// (Outside a call that counts events: no order is being joined.)
    fn decide(&mut self, last: &PaidRef, next_at: i64) {
        decide(
            self.config.repurchase_days,
            &mut self.groups,
            &mut self.open,
            &mut Pending::default(),
            last,
            next_at,
        );
    }

    /// Follows a buyer's paid orders for the repurchase window.
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &mut self,
        user: &UserId,
        seq: Sequence,
        at: DateTime<Utc>,
        order: &OrderId,
        coupon: bool,
        group: Option<u32>,
        pending: &mut Pending<'_>,
    ) {
        if self.config.repurchase_days.is_none() {
            return;
        }
        let at = at.timestamp();
        let now = PaidRef {
            seq,
            at,
            order: order.clone(),
            coupon,
            group,
            decided: false,
        };
        let single = Trail {
            first_seq: seq,
            first_at: at,
            last: now,
        };
        match self.trails.get_mut(user) {
            None => {
                self.trails.insert(user.clone(), single);
            }
            Some(t) if t.last.seq < seq => {
                // The usual case, reading in feed order: this order follows the trail's last.
                let last = std::mem::replace(&mut t.last, single.last);
                decide(
                    self.config.repurchase_days,
                    &mut self.groups,
                    &mut self.open,
                    pending,
                    &last,
                    at,
                );
            }
            Some(_) => {
                if let Some(t) = self.trails.remove(user) {
                    let merged = self.join_trails(t, single);
                    self.trails.insert(user.clone(), merged);
                }
            }
        }
    }

    /// One buyer's trails from two parts of the feed, joined.
    fn join_trails(&mut self, a: Trail, b: Trail) -> Trail {
        let (early, late) = if a.last.seq < b.first_seq {
            (a, b)
        } else if b.last.seq < a.first_seq {
            (b, a)
        } else {
            self.unmerged_buyers += 1;
            let first = if a.first_seq <= b.first_seq { &a } else { &b };
            let (first_seq, first_at) = (first.first_seq, first.first_at);
            let last = if a.last.seq >= b.last.seq {
                a.last
            } else {
                b.last
            };
            return Trail {
                first_seq,
                first_at,
                last,
            };
        };
        self.decide(&early.last, late.first_at);
        Trail {
            first_seq: early.first_seq,
            first_at: early.first_at,
            last: late.last,
        }
    }

    /// Counts an order once both its payment and all its coupons are in.
    fn try_join(&mut self, order: &OrderId, pending: &mut Pending<'_>) {
        if pending.is(order) {
            let Some((paid, n, user)) = pending.paid else {
                return;
            };
            if (pending.coupons.len() as u64) < u64::from(n) {
                return;
            }
            let lead = Report::lead(pending.coupons.iter().map(|c| (c.saving, c.group)));
            self.join(order, lead, paid, user, pending.repurchased);
            pending.order = None;
            pending.coupons.clear();
            pending.paid = None;
            pending.repurchased = None;
            return;
        }
        let ready = self
            .open
            .get(order)
            .and_then(|o| {
                o.paid
                    .as_ref()
                    .map(|(_, n, _)| o.coupons.len() as u64 >= u64::from(*n))
            })
            .unwrap_or(false);
        if !ready {
            return;
        }
        let Some(open) = self.open.remove(order) else {
            return;
        };
        if let Some((paid, _, user)) = &open.paid {
            let lead = Report::lead(open.coupons.iter().map(|c| (c.saving, c.group)));
            self.join(order, lead, *paid, user, open.repurchased);
        }
    }

    /// The order being joined, if any, goes to the open map, owned (at the end of every call
    /// that counts events, so that the rest of the report sees every open order there).
    fn flush(&mut self, pending: &mut Pending<'_>) {
        let Some(order) = pending.order.take() else {
            return;
        };
        let here = self.open.entry(order.clone()).or_default();
        for c in pending.coupons.drain(..) {
            let i = here.coupons.partition_point(|x| x.coupon < *c.coupon);
            let c = UsedCoupon {
                coupon: c.coupon.clone(),
                saving: c.saving,
                group: c.group,
            };
            here.coupons.insert(i, c);
        }
        if let Some((paid, n, user)) = pending.paid.take()
            && here.paid.is_none()
        {
            here.paid = Some((paid, n, user.clone()));
        }
        if here.repurchased.is_none() {
            here.repurchased = pending.repurchased;
        }
        pending.repurchased = None;
    }

    /// The group of an order's coupon that saved the most, of its coupons' (saving, group) in
    /// coupon id order: ties go to the smallest id.
    #[inline]
    fn lead(coupons: impl Iterator<Item = (i128, u32)>) -> Option<u32> {
        let mut lead: Option<(i128, u32)> = None;
        for c in coupons {
            if lead.is_none_or(|l| c.0 > l.0) {
                lead = Some(c);
            }
        }
        lead.map(|l| l.1)
    }

    /// Counts a joined order: once, in the group of its lead coupon ([`Report::lead`]).
    fn join(
        &mut self,
        order: &OrderId,
        lead: Option<u32>,
        paid: i128,
        user: &UserId,
        repurchased: Option<bool>,
    ) {
        let Some(group) = lead else { return };
        if let Some((h, g)) = self.groups.hot(group) {
            h.coupon_orders += 1;
            h.add_money(g, Sum::CouponSales, paid);
            match repurchased {
                Some(true) => g.repurchased += 1,
                Some(false) => g.not_repurchased += 1,
                None => {}
            }
        }
        if repurchased.is_none()
            && let Some(t) = self.trails.get_mut(user)
            && t.last.coupon
            && &t.last.order == order
        {
            t.last.group = Some(group);
        }
    }

    /// Decides every coupon order whose window has closed by `as_of` with no later order:
    /// not repurchased. Call it when the feed up to `as_of` has been read (in every part that
    /// will be merged), e.g. before rendering a report.
    pub fn settle(&mut self, as_of: DateTime<Utc>) {
        let Some(days) = self.config.repurchase_days else {
            return;
        };
        let cutoff = as_of.timestamp() - i64::from(days) * DAY;
        let due: Vec<PaidRef> = self
            .trails
            .values_mut()
            .filter(|t| t.last.coupon && !t.last.decided && t.last.at < cutoff)
            .map(|t| {
                let r = t.last.clone();
                t.last.decided = true;
                r
            })
            .collect();
        for r in due {
            self.decide(&r, i64::MAX);
        }
    }

    /// Adds another report, of another part of the feed, to this one: afterwards this is the
    /// report of both parts (see [the module docs](self#merging-and-advancing)).
    ///
    /// # Errors
    /// [`ReportError::ConfigMismatch`] when the reports' settings differ (nothing changes).
    pub fn merge(&mut self, other: Report) -> Result<(), ReportError> {
        if self.config.currency != other.config.currency {
            return Err(ReportError::ConfigMismatch { what: "currency" });
        }
        if self.config.offset != other.config.offset {
            return Err(ReportError::ConfigMismatch { what: "UTC offset" });
        }
        if self.config.repurchase_days != other.config.repurchase_days {
            return Err(ReportError::ConfigMismatch {
                what: "repurchase window",
            });
        }
        self.last_seq = self.last_seq.max(other.last_seq);
        self.events = self.events.saturating_add(other.events);
        self.unmerged_buyers = self.unmerged_buyers.saturating_add(other.unmerged_buyers);
        // Other's groups, renumbered as this report's.
        let renumber = self.groups.absorb(other.groups);
        let mine = |g: u32| {
            usize::try_from(g)
                .ok()
                .and_then(|i| renumber.get(i))
                .copied()
                .unwrap_or(g)
        };
        // Open orders first (so that repurchases decided by the trails find their order), then
        // the trails, then the joins the merge completed.
        let mut touched: Vec<OrderId> = Vec::new();
        for (id, o) in other.open {
            touched.push(id.clone());
            let here = self.open.entry(id).or_default();
            for mut c in o.coupons {
                c.group = mine(c.group);
                let i = here.coupons.partition_point(|x| x.coupon < c.coupon);
                here.coupons.insert(i, c);
            }
            if here.paid.is_none() {
                here.paid = o.paid;
            }
            if here.repurchased.is_none() {
                here.repurchased = o.repurchased;
            }
        }
        for (user, mut t) in other.trails {
            t.last.group = t.last.group.map(mine);
            let t = match self.trails.remove(&user) {
                Some(mine) => self.join_trails(mine, t),
                None => t,
            };
            self.trails.insert(user, t);
        }
        touched.sort();
        touched.dedup();
        let mut none = Pending::default();
        for id in touched {
            self.try_join(&id, &mut none);
        }
        self.groups.fold();
        Ok(())
    }
}
