//! Cycle statistics: per user and per cycle, the orders, GMV, average order value and discount
//! rate — streamed, and mergeable from any partition of the orders.
//!
//! [`CycleStats`] is an accumulator: feed it orders one at a time with [`CycleStats::add`]. Its
//! memory grows with the number of users (and the cycles each was active in), never with the
//! number of orders. Two accumulators fed disjoint parts of the orders — split by user, by time,
//! at random, on two threads or two machines — [`merge`](CycleStats::merge) into exactly the
//! accumulator of all the orders: every figure is an integer sum, a count, a minimum or a
//! maximum, so the result does not depend on the split or the order of arrival. With the
//! `serde` feature an accumulator serialises (users sorted, so equal statistics give equal
//! JSON) and deserialising checks every invariant.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::{CycleStats, Cycles, Order};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let day = |d| Utc.with_ymd_and_hms(2026, 3, d, 4, 0, 0).unwrap();
//! let orders = [
//!     Order::new(1u64, day(2), yuan(100), yuan(10), yuan(90), true)?,
//!     Order::new(1u64, day(9), yuan(60), yuan(0), yuan(60), false)?,
//!     Order::new(2u64, day(9), yuan(80), yuan(8), yuan(72), true)?,
//! ];
//!
//! // Two workers, each with part of the orders, merged: the same as one pass over all.
//! let mut a = CycleStats::new(cycles, cny);
//! let mut b = CycleStats::new(cycles, cny);
//! a.add(&orders[0])?;
//! b.add(&orders[1])?;
//! b.add(&orders[2])?;
//! a.merge(b)?;
//! let mut all = CycleStats::new(cycles, cny);
//! for o in &orders { all.add(o)?; }
//! assert_eq!(a, all);
//!
//! let march = cycles.index_of(day(2));
//! let t = all.cycle_totals(&1, march).unwrap();
//! assert_eq!((t.orders, t.gross, t.discount), (2, yuan(160), yuan(10)));
//! assert_eq!(t.aov(), Some(yuan(80)));
//! assert_eq!(t.discount_rate().unwrap().to_decimal(4).to_string(), "0.0625");
//! # Ok::<(), coupons::targeting::TargetingError>(())
//! ```

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::Hash;

use chrono::{DateTime, Utc};

use super::cycle::{CycleIndex, Cycles};
use super::error::TargetingError;
use super::hash::{SHARDS, Sharded};
use super::rate::{DiscountRate, div_round_half_even};
use crate::id::UserId;
use crate::money::{Currency, Money};

/// What identifies a user in the statistics: [`UserId`] by default, or any cheap key of the
/// caller's (`u64` account numbers are fastest).
pub trait UserKey: Clone + Eq + Hash + Ord + fmt::Debug {}
impl<T: Clone + Eq + Hash + Ord + fmt::Debug> UserKey for T {}

/// Builds an owned user key from a borrowed one, the first time a user is seen by
/// [`CycleStats::add_parts`]: a [`UserId`] from a `&str` (checked), a `String` from a `&str`,
/// any `Clone` key from a reference to itself.
pub trait KeyFrom<Q: ?Sized>: Sized {
    /// The owned key.
    ///
    /// # Errors
    /// [`TargetingError::User`] when the text is not a valid identifier.
    fn key_from(q: &Q) -> Result<Self, TargetingError>;
}

impl<T: Clone> KeyFrom<T> for T {
    fn key_from(q: &T) -> Result<T, TargetingError> {
        Ok(q.clone())
    }
}

impl KeyFrom<str> for UserId {
    fn key_from(q: &str) -> Result<UserId, TargetingError> {
        Ok(UserId::new(q)?)
    }
}

impl KeyFrom<str> for String {
    fn key_from(q: &str) -> Result<String, TargetingError> {
        Ok(q.to_owned())
    }
}

/// One order as the statistics see it: who, when, the gross amount before discounts, the
/// discount, what was paid, and whether a coupon was used.
///
/// Valid by construction: all amounts in one currency, none negative, the discount not above
/// the gross amount. `paid` is taken as given (it may include shipping or be reduced by store
/// credit), so it is not required to equal `gross − discount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order<K = UserId> {
    user: K,
    at: DateTime<Utc>,
    gross: Money,
    discount: Money,
    paid: Money,
    coupon_used: bool,
}

fn check_amounts(gross: Money, discount: Money, paid: Money) -> Result<(), TargetingError> {
    let currency = gross.currency();
    for (field, value) in [("order.discount", discount), ("order.paid", paid)] {
        if value.currency() != currency {
            return Err(TargetingError::CurrencyMismatch {
                field,
                expected: currency,
                found: value.currency(),
            });
        }
    }
    for (field, value) in [
        ("order.gross", gross),
        ("order.discount", discount),
        ("order.paid", paid),
    ] {
        if value.is_negative() {
            return Err(TargetingError::Negative { field, value });
        }
    }
    if discount > gross {
        return Err(TargetingError::DiscountAboveGross { gross, discount });
    }
    Ok(())
}

fn check_time(at: DateTime<Utc>) -> Result<i64, TargetingError> {
    if at < crate::time::EARLIEST || at > crate::time::LATEST {
        return Err(TargetingError::TimeOutOfRange {
            field: "order.at",
            value: at,
        });
    }
    Ok(at.timestamp_micros())
}

impl<K> Order<K> {
    /// An order.
    ///
    /// # Errors
    /// [`TargetingError::CurrencyMismatch`] when the amounts differ in currency,
    /// [`TargetingError::Negative`] for a negative amount,
    /// [`TargetingError::DiscountAboveGross`], and [`TargetingError::TimeOutOfRange`] for an
    /// instant before 1970 or after 9999.
    pub fn new(
        user: K,
        at: DateTime<Utc>,
        gross: Money,
        discount: Money,
        paid: Money,
        coupon_used: bool,
    ) -> Result<Order<K>, TargetingError> {
        check_amounts(gross, discount, paid)?;
        check_time(at)?;
        Ok(Order {
            user,
            at,
            gross,
            discount,
            paid,
            coupon_used,
        })
    }
    /// The buyer.
    pub fn user(&self) -> &K {
        &self.user
    }
    /// When it was placed.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }
    /// The amount before discounts.
    pub fn gross(&self) -> Money {
        self.gross
    }
    /// The discount given.
    pub fn discount(&self) -> Money {
        self.discount
    }
    /// What was paid.
    pub fn paid(&self) -> Money {
        self.paid
    }
    /// Whether a coupon was used.
    pub fn coupon_used(&self) -> bool {
        self.coupon_used
    }
}

/// One order for [`CycleStats::extend_minor`]: amounts in minor units of the statistics'
/// currency, the instant in microseconds since 1970-01-01 UTC. Checked when added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinorOrder<K> {
    /// The buyer.
    pub user: K,
    /// When, in microseconds since the epoch.
    pub at_micros: i64,
    /// Gross amount before discounts, in minor units.
    pub gross: i64,
    /// Discount, in minor units.
    pub discount: i64,
    /// Amount paid, in minor units.
    pub paid: i64,
    /// Whether a coupon was used.
    pub coupon_used: bool,
}

/// Sums for one user in one cycle, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) orders: u32,
    pub(crate) coupon_orders: u32,
    pub(crate) gross: i64,
    pub(crate) discount: i64,
    pub(crate) paid: i64,
}

#[cold]
fn overflow() -> TargetingError {
    OVERFLOW
}

const OVERFLOW: TargetingError = TargetingError::Overflow {
    what: "cycle statistics",
};

impl Totals {
    #[inline]
    fn add(&mut self, o: &Totals) -> Result<(), TargetingError> {
        // All or nothing: a sum that overflows leaves the totals as they were.
        *self = Totals {
            orders: self.orders.checked_add(o.orders).ok_or_else(overflow)?,
            coupon_orders: self
                .coupon_orders
                .checked_add(o.coupon_orders)
                .ok_or_else(overflow)?,
            gross: self.gross.checked_add(o.gross).ok_or_else(overflow)?,
            discount: self.discount.checked_add(o.discount).ok_or_else(overflow)?,
            paid: self.paid.checked_add(o.paid).ok_or_else(overflow)?,
        };
        Ok(())
    }

    /// [`Totals::add`] when no sum overflows (`true`); else nothing changes (`false`).
    #[inline(always)]
    fn add_in_place(&mut self, o: &Totals) -> bool {
        match (
            self.orders.checked_add(o.orders),
            self.coupon_orders.checked_add(o.coupon_orders),
            self.gross.checked_add(o.gross),
            self.discount.checked_add(o.discount),
            self.paid.checked_add(o.paid),
        ) {
            (Some(orders), Some(coupon_orders), Some(gross), Some(discount), Some(paid)) => {
                *self = Totals {
                    orders,
                    coupon_orders,
                    gross,
                    discount,
                    paid,
                };
                true
            }
            _ => false,
        }
    }

    /// Average order value in minor units, rounded half-even.
    pub(crate) fn aov_minor(&self) -> Option<i64> {
        (self.orders > 0)
            .then(|| div_round_half_even(i128::from(self.gross), i128::from(self.orders)))
    }

    pub(crate) fn rate(&self) -> Option<DiscountRate> {
        DiscountRate::from_minor(self.discount, self.gross)
    }
}

/// One user's history: first and last order (microseconds since the epoch) and the totals of
/// each cycle they ordered in. Canonical: `latest` is the highest cycle, `earlier` the others in
/// increasing order, so equal histories are equal values whatever the order of arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) latest_cycle: i64,
    pub(crate) latest: Totals,
    pub(crate) earlier: Vec<(i64, Totals)>,
}

impl Record {
    fn new(at: i64, cycle: i64, t: Totals) -> Record {
        Record {
            first: at,
            last: at,
            latest_cycle: cycle,
            latest: t,
            earlier: Vec::new(),
        }
    }

    #[inline]
    fn add(&mut self, cycle: i64, t: &Totals) -> Result<(), TargetingError> {
        if cycle == self.latest_cycle {
            return self.latest.add(t);
        }
        if cycle > self.latest_cycle {
            self.earlier.push((self.latest_cycle, self.latest));
            self.latest_cycle = cycle;
            self.latest = *t;
            return Ok(());
        }
        match self.earlier.binary_search_by_key(&cycle, |e| e.0) {
            Ok(i) => match self.earlier.get_mut(i) {
                Some(e) => e.1.add(t),
                None => Ok(()),
            },
            Err(i) => {
                self.earlier.insert(i, (cycle, *t));
                Ok(())
            }
        }
    }

    fn merge(&mut self, other: Record) -> Result<(), TargetingError> {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        self.add(other.latest_cycle, &other.latest)?;
        for (c, t) in other.earlier {
            self.add(c, &t)?;
        }
        Ok(())
    }

    /// The totals of one cycle.
    pub(crate) fn get(&self, cycle: i64) -> Option<&Totals> {
        if cycle == self.latest_cycle {
            return Some(&self.latest);
        }
        self.earlier
            .binary_search_by_key(&cycle, |e| e.0)
            .ok()
            .and_then(|i| self.earlier.get(i))
            .map(|e| &e.1)
    }

    /// All cycles, increasing.
    pub(crate) fn cycles(&self) -> impl Iterator<Item = (i64, &Totals)> {
        self.earlier
            .iter()
            .map(|(c, t)| (*c, t))
            .chain(std::iter::once((self.latest_cycle, &self.latest)))
    }

    /// Sums over every cycle up to and including `until`.
    pub(crate) fn lifetime(&self, until: i64) -> Totals {
        let mut sum = Totals::default();
        for (c, t) in self.cycles() {
            if c <= until {
                // Lifetime sums of a valid record never exceed what its cycles already held.
                let _ = sum.add(t);
            }
        }
        sum
    }
}

/// The totals of one user (or a population) in one cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CycleTotals {
    /// Orders placed.
    pub orders: u64,
    /// Orders that used a coupon.
    pub coupon_orders: u64,
    /// GMV: the gross amount before discounts.
    pub gross: Money,
    /// Discounts given.
    pub discount: Money,
    /// Amount paid.
    pub paid: Money,
}

impl CycleTotals {
    fn of(t: &Totals, currency: Currency) -> CycleTotals {
        CycleTotals {
            orders: u64::from(t.orders),
            coupon_orders: u64::from(t.coupon_orders),
            gross: Money::from_minor(t.gross, currency),
            discount: Money::from_minor(t.discount, currency),
            paid: Money::from_minor(t.paid, currency),
        }
    }

    /// Average order value (客单价): GMV ÷ orders, rounded half-even to the minor unit; `None`
    /// without orders.
    pub fn aov(&self) -> Option<Money> {
        let gross = i128::from(self.gross.to_minor().ok()?);
        let orders = i128::from(self.orders);
        (orders > 0)
            .then(|| Money::from_minor(div_round_half_even(gross, orders), self.gross.currency()))
    }

    /// Discount ÷ gross, exact; `None` when nothing was bought.
    pub fn discount_rate(&self) -> Option<DiscountRate> {
        DiscountRate::from_minor(self.discount.to_minor().ok()?, self.gross.to_minor().ok()?)
    }
}

/// One user's history in the statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserHistory {
    /// Their first order.
    pub first_order: DateTime<Utc>,
    /// Their latest order.
    pub last_order: DateTime<Utc>,
    /// Each cycle they ordered in, increasing.
    pub cycles: Vec<(CycleIndex, CycleTotals)>,
}

const EARLIEST_US: i64 = 0;
const LATEST_US: i64 = 253_402_300_799_999_999;

pub(crate) fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(crate::time::LATEST)
}

/// Streaming, mergeable statistics of orders per user and per cycle. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct CycleStats<K = UserId> {
    cycles: Cycles,
    currency: Currency,
    orders: u64,
    pub(crate) users: Sharded<K, Record>,
    /// The last cycle looked up: `[start, end)` in microseconds and its index.
    cache: (i64, i64, i64),
}

impl<K: UserKey> PartialEq for CycleStats<K> {
    fn eq(&self, other: &Self) -> bool {
        self.cycles == other.cycles
            && self.currency == other.currency
            && self.orders == other.orders
            && self.users == other.users
    }
}

impl<K: UserKey> CycleStats<K> {
    /// Empty statistics for orders in `currency`, cut into `cycles`.
    pub fn new(cycles: Cycles, currency: Currency) -> CycleStats<K> {
        CycleStats {
            cycles,
            currency,
            orders: 0,
            users: Sharded::default(),
            cache: (0, 0, 0),
        }
    }

    /// The cycles.
    pub fn cycles(&self) -> Cycles {
        self.cycles
    }

    /// The currency of every amount.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// How many orders were added.
    pub fn order_count(&self) -> u64 {
        self.orders
    }

    /// How many distinct users ordered.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Adds one order.
    ///
    /// # Errors
    /// [`TargetingError::CurrencyMismatch`] when the order is in another currency, and
    /// [`TargetingError::Overflow`] when a sum no longer fits (nothing is added then).
    pub fn add(&mut self, order: &Order<K>) -> Result<(), TargetingError> {
        self.add_checked(
            &order.user,
            order.at.timestamp_micros(),
            order.gross,
            order.discount,
            order.paid,
            order.coupon_used,
        )
    }

    /// Adds one order given by its parts, looking the user up by a borrowed key (`&str` for
    /// [`UserId`]), so a reader need not build a key per row.
    ///
    /// # Errors
    /// As [`Order::new`] and [`CycleStats::add`], and [`TargetingError::User`] when a new
    /// user's key is refused.
    pub fn add_parts<Q>(
        &mut self,
        user: &Q,
        at: DateTime<Utc>,
        gross: Money,
        discount: Money,
        paid: Money,
        coupon_used: bool,
    ) -> Result<(), TargetingError>
    where
        K: Borrow<Q> + KeyFrom<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.add_checked(
            user,
            at.timestamp_micros(),
            gross,
            discount,
            paid,
            coupon_used,
        )
    }

    /// Adds one order given in whole minor units of the statistics' currency (cents for USD)
    /// at `at_micros` microseconds since 1970-01-01 UTC — the fast path for input that is
    /// already parsed, such as columnar data. The same checks as [`Order::new`] apply.
    ///
    /// # Errors
    /// [`TargetingError::Negative`], [`TargetingError::DiscountAboveGross`],
    /// [`TargetingError::TimeOutOfRange`], [`TargetingError::User`] when a new user's key is
    /// refused, and [`TargetingError::Overflow`] (nothing is added then).
    #[inline]
    pub fn add_minor<Q>(
        &mut self,
        user: &Q,
        at_micros: i64,
        gross: i64,
        discount: i64,
        paid: i64,
        coupon_used: bool,
    ) -> Result<(), TargetingError>
    where
        K: Borrow<Q> + KeyFrom<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if gross < 0
            || discount < 0
            || paid < 0
            || discount > gross
            || !(EARLIEST_US..=LATEST_US).contains(&at_micros)
        {
            return Err(self.explain(at_micros, gross, discount, paid));
        }
        let t = Totals {
            orders: 1,
            coupon_orders: u32::from(coupon_used),
            gross,
            discount,
            paid,
        };
        let cycle = self.cycle_of(at_micros);
        let orders = self.orders.checked_add(1).ok_or_else(overflow)?;
        match self.users.get_mut(user) {
            Some(r) => {
                r.add(cycle, &t)?;
                r.first = r.first.min(at_micros);
                r.last = r.last.max(at_micros);
            }
            None => {
                self.users
                    .insert(K::key_from(user)?, Record::new(at_micros, cycle, t));
            }
        }
        self.orders = orders;
        Ok(())
    }

    /// Adds many orders at once, in minor units and microseconds as for
    /// [`CycleStats::add_minor`] — the fastest way in for large inputs: the orders are first
    /// dealt into batches by the part of the table their user lives in, then each part is
    /// updated from its batch while it sits in the CPU cache. The result is the same as adding
    /// them one by one.
    ///
    /// # Errors
    /// The position of the first invalid order and its error (as for
    /// [`CycleStats::add_minor`]); every order before it is added, none after it.
    pub fn extend_minor<I>(&mut self, orders: I) -> Result<(), (usize, TargetingError)>
    where
        I: IntoIterator<Item = MinorOrder<K>>,
    {
        const CHUNK: usize = 1 << 21;
        // The orders alone are dealt (their cycles are found when they are added: a shard's
        // orders arrive in input order, so the cycle cache hits there as well).
        let mut parts: Vec<Vec<MinorOrder<K>>> = (0..SHARDS).map(|_| Vec::new()).collect();
        let mut pending = 0usize;
        let mut seen = 0usize;
        let mut failure = None;
        for o in orders {
            if o.gross < 0
                || o.discount < 0
                || o.paid < 0
                || o.discount > o.gross
                || !(EARLIEST_US..=LATEST_US).contains(&o.at_micros)
            {
                failure = Some((seen, self.explain(o.at_micros, o.gross, o.discount, o.paid)));
                break;
            }
            let s = self.users.shard_of(&o.user);
            if let Some(p) = parts.get_mut(s) {
                if p.capacity() == 0 {
                    p.reserve(CHUNK / SHARDS * 5 / 4);
                }
                p.push(o);
            }
            seen += 1;
            pending += 1;
            if pending == CHUNK {
                self.apply_parts(&mut parts, seen - pending)?;
                pending = 0;
            }
        }
        self.apply_parts(&mut parts, seen - pending)?;
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    /// Adds the dealt batches, shard by shard, and empties them.
    fn apply_parts(
        &mut self,
        parts: &mut [Vec<MinorOrder<K>>],
        first: usize,
    ) -> Result<(), (usize, TargetingError)> {
        for (s, part) in parts.iter_mut().enumerate() {
            let Some((map, len)) = self.users.shard_mut(s) else {
                continue;
            };
            for o in part.drain(..) {
                let cycle = cycle_in(self.cycles, &mut self.cache, o.at_micros);
                let t = Totals {
                    orders: 1,
                    coupon_orders: u32::from(o.coupon_used),
                    gross: o.gross,
                    discount: o.discount,
                    paid: o.paid,
                };
                let at = o.at_micros;
                // One probe of the table per order, found or not.
                match map.entry(o.user) {
                    Entry::Occupied(mut e) => {
                        let r = e.get_mut();
                        // The usual case, another order in the user's latest cycle, inline;
                        // anything else (and an overflow, reported) through `Record::add`.
                        if cycle != r.latest_cycle || !r.latest.add_in_place(&t) {
                            r.add(cycle, &t).map_err(|e| (first, e))?;
                        }
                        r.first = r.first.min(at);
                        r.last = r.last.max(at);
                    }
                    Entry::Vacant(e) => {
                        e.insert(Record::new(at, cycle, t));
                        *len += 1;
                    }
                }
                self.orders += 1;
            }
        }
        Ok(())
    }

    #[cold]
    fn explain(&self, at: i64, gross: i64, discount: i64, paid: i64) -> TargetingError {
        let m = |v| Money::from_minor(v, self.currency);
        if let Err(e) = check_amounts(m(gross), m(discount), m(paid)) {
            return e;
        }
        TargetingError::TimeOutOfRange {
            field: "order.at",
            value: DateTime::from_timestamp_micros(at).unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    #[inline]
    fn add_checked<Q>(
        &mut self,
        user: &Q,
        at: i64,
        gross: Money,
        discount: Money,
        paid: Money,
        coupon_used: bool,
    ) -> Result<(), TargetingError>
    where
        K: Borrow<Q> + KeyFrom<Q>,
        Q: Hash + Eq + ?Sized,
    {
        for (field, m) in [
            ("order.gross", gross),
            ("order.discount", discount),
            ("order.paid", paid),
        ] {
            if m.currency() != self.currency {
                return Err(TargetingError::CurrencyMismatch {
                    field,
                    expected: self.currency,
                    found: m.currency(),
                });
            }
        }
        self.add_minor(
            user,
            at,
            gross.to_minor()?,
            discount.to_minor()?,
            paid.to_minor()?,
            coupon_used,
        )
    }

    #[inline]
    fn cycle_of(&mut self, at: i64) -> i64 {
        cycle_in(self.cycles, &mut self.cache, at)
    }

    /// Adds everything `other` holds: afterwards `self` is exactly the statistics of both sets of
    /// orders together.
    ///
    /// # Errors
    /// [`TargetingError::Incompatible`] when the two were computed with different cycles or
    /// currencies; [`TargetingError::Overflow`].
    pub fn merge(&mut self, other: CycleStats<K>) -> Result<(), TargetingError> {
        if self.cycles != other.cycles {
            return Err(TargetingError::Incompatible {
                reason: "the cycles differ",
            });
        }
        if self.currency != other.currency {
            return Err(TargetingError::Incompatible {
                reason: "the currencies differ",
            });
        }
        self.orders = self.orders.checked_add(other.orders).ok_or_else(overflow)?;
        let other_users = if self.users.len() < other.users.len() {
            std::mem::replace(&mut self.users, other.users)
        } else {
            other.users
        };
        for (k, r) in other_users.into_iter() {
            merge_into(&mut self.users, k, r)?;
        }
        Ok(())
    }

    /// One user's history, or `None` if they never ordered.
    pub fn user(&self, user: &K) -> Option<UserHistory> {
        let r = self.users.get(user)?;
        Some(UserHistory {
            first_order: instant(r.first),
            last_order: instant(r.last),
            cycles: r
                .cycles()
                .map(|(c, t)| (CycleIndex(c), CycleTotals::of(t, self.currency)))
                .collect(),
        })
    }

    /// One user's totals in one cycle, or `None` if they did not order in it.
    pub fn cycle_totals(&self, user: &K, cycle: CycleIndex) -> Option<CycleTotals> {
        let t = self.users.get(user)?.get(cycle.0)?;
        Some(CycleTotals::of(t, self.currency))
    }

    /// Every user, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &K> {
        self.users.keys()
    }

    /// The totals of every user in one cycle together.
    ///
    /// # Errors
    /// [`TargetingError::Overflow`].
    pub fn population_totals(&self, cycle: CycleIndex) -> Result<CycleTotals, TargetingError> {
        let (mut orders, mut coupon_orders) = (0u64, 0u64);
        let (mut gross, mut discount, mut paid) = (0i64, 0i64, 0i64);
        for t in self.users.values().filter_map(|r| r.get(cycle.0)) {
            orders += u64::from(t.orders);
            coupon_orders += u64::from(t.coupon_orders);
            gross = gross.checked_add(t.gross).ok_or_else(overflow)?;
            discount = discount.checked_add(t.discount).ok_or_else(overflow)?;
            paid = paid.checked_add(t.paid).ok_or_else(overflow)?;
        }
        Ok(CycleTotals {
            orders,
            coupon_orders,
            gross: Money::from_minor(gross, self.currency),
            discount: Money::from_minor(discount, self.currency),
            paid: Money::from_minor(paid, self.currency),
        })
    }

    /// The latest order of anyone, if any.
    pub fn last_order(&self) -> Option<DateTime<Utc>> {
        self.users.values().map(|r| r.last).max().map(instant)
    }
}

/// The cycle of `at` (microseconds), through a cache of the last cycle found: `[start, end)`
/// in microseconds and its index.
#[inline]
fn cycle_in(cycles: Cycles, cache: &mut (i64, i64, i64), at: i64) -> i64 {
    let (start, end, idx) = *cache;
    if at >= start && at < end {
        return idx;
    }
    let c = cycles.index_of_micros(at);
    if let Some((s, e)) = cycles.bounds_micros(c) {
        *cache = (s, e, c.0);
    }
    c.0
}

fn merge_into<K: UserKey>(
    map: &mut Sharded<K, Record>,
    k: K,
    r: Record,
) -> Result<(), TargetingError> {
    match map.get_mut(&k) {
        Some(mine) => mine.merge(r),
        None => {
            map.insert(k, r);
            Ok(())
        }
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    use super::*;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CycleRepr {
        cycle: i64,
        orders: u32,
        coupon_orders: u32,
        gross_minor: i64,
        discount_minor: i64,
        paid_minor: i64,
    }

    #[derive(Serialize)]
    struct UserRef<'a, K> {
        user: &'a K,
        first_order: DateTime<Utc>,
        last_order: DateTime<Utc>,
        cycles: Vec<CycleRepr>,
    }

    #[derive(Serialize)]
    struct StatsRef<'a, K> {
        cycles: Cycles,
        currency: Currency,
        orders: u64,
        users: Vec<UserRef<'a, K>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct UserOwned<K> {
        user: K,
        first_order: DateTime<Utc>,
        last_order: DateTime<Utc>,
        cycles: Vec<CycleRepr>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StatsOwned<K> {
        cycles: Cycles,
        currency: Currency,
        orders: u64,
        users: Vec<UserOwned<K>>,
    }

    impl<K: UserKey + Serialize> Serialize for CycleStats<K> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut users: Vec<(&K, &Record)> = self.users.iter().collect();
            users.sort_unstable_by(|a, b| a.0.cmp(b.0));
            StatsRef {
                cycles: self.cycles,
                currency: self.currency,
                orders: self.orders,
                users: users
                    .into_iter()
                    .map(|(user, r)| UserRef {
                        user,
                        first_order: instant(r.first),
                        last_order: instant(r.last),
                        cycles: r
                            .cycles()
                            .map(|(cycle, t)| CycleRepr {
                                cycle,
                                orders: t.orders,
                                coupon_orders: t.coupon_orders,
                                gross_minor: t.gross,
                                discount_minor: t.discount,
                                paid_minor: t.paid,
                            })
                            .collect(),
                    })
                    .collect(),
            }
            .serialize(s)
        }
    }

    fn bad(reason: &'static str) -> TargetingError {
        super::super::error::invalid("cycle statistics", "a serialised partial", reason)
    }

    impl<'de, K: UserKey + Deserialize<'de>> Deserialize<'de> for CycleStats<K> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let repr = StatsOwned::<K>::deserialize(d)?;
            from_repr(repr).map_err(serde::de::Error::custom)
        }
    }

    fn from_repr<K: UserKey>(repr: StatsOwned<K>) -> Result<CycleStats<K>, TargetingError> {
        let mut stats = CycleStats::new(repr.cycles, repr.currency);
        let mut orders = 0u64;
        for u in repr.users {
            let first = check_time(u.first_order)?;
            let last = check_time(u.last_order)?;
            if first > last {
                return Err(bad("a user's first order is after their last"));
            }
            let mut record: Option<Record> = None;
            let mut prev: Option<i64> = None;
            for c in u.cycles {
                if prev.is_some_and(|p| p >= c.cycle) {
                    return Err(bad("a user's cycles are not strictly increasing"));
                }
                prev = Some(c.cycle);
                if c.orders == 0 || c.coupon_orders > c.orders {
                    return Err(bad(
                        "a cycle has no orders, or more coupon orders than orders",
                    ));
                }
                if c.gross_minor < 0
                    || c.discount_minor < 0
                    || c.paid_minor < 0
                    || c.discount_minor > c.gross_minor
                {
                    return Err(bad(
                        "negative amounts, or a discount above the gross amount",
                    ));
                }
                orders = orders
                    .checked_add(u64::from(c.orders))
                    .ok_or_else(overflow)?;
                let t = Totals {
                    orders: c.orders,
                    coupon_orders: c.coupon_orders,
                    gross: c.gross_minor,
                    discount: c.discount_minor,
                    paid: c.paid_minor,
                };
                match record.as_mut() {
                    Some(r) => r.add(c.cycle, &t)?,
                    None => record = Some(Record::new(first, c.cycle, t)),
                }
            }
            let Some(mut r) = record else {
                return Err(bad("a user without cycles"));
            };
            r.first = first;
            r.last = last;
            let lo = r.cycles().next().map(|c| c.0);
            if lo != Some(repr.cycles.index_of_micros(first).0)
                || r.latest_cycle != repr.cycles.index_of_micros(last).0
            {
                return Err(bad(
                    "first or last order outside the user's first or last cycle",
                ));
            }
            if stats.users.insert(u.user, r).is_some() {
                return Err(bad("a user appears twice"));
            }
        }
        if orders != repr.orders {
            return Err(bad("the order count does not match the cycles"));
        }
        stats.orders = orders;
        Ok(stats)
    }
}
