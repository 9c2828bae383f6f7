//! The counters most events add to, kept apart from the rest of a group's [`Metrics`]: a
//! dense array of one cache line a group, so that counting an event touches 64 bytes, not a
//! 400-byte [`Metrics`] among tens of thousands (which no cache holds). They are added into
//! the group's [`Metrics`] at the end of every call that counts events
//! ([`Report::extend`](super::Report::extend), [`Report::apply`](super::Report::apply),
//! [`Report::merge`](super::Report::merge)), for the groups that call touched: outside those
//! calls every [`Hot`] is empty and the [`Metrics`] are the whole count.
//!
//! The counts are exact: a `u32` count is added in before it can overflow (see
//! [`Hot::MAX_WRITES`]); money is summed in an `i64` while the sum fits and, on overflow (or
//! an amount past `i64`), spilled into the group's `i128` at once — in an order that gives
//! the same `i128`, bit for bit, as adding every amount to it one by one with saturation
//! (see [`Hot::add_money`]).

use super::metrics::Metrics;

/// Which of [`Hot::money`]: the three money sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sum {
    /// `discount_minor`.
    Discount = 0,
    /// `coupon_sales_minor`.
    CouponSales = 1,
    /// `plain_sales_minor`.
    PlainSales = 2,
}

impl Sum {
    const ALL: [Sum; 3] = [Sum::Discount, Sum::CouponSales, Sum::PlainSales];

    /// The group's exact sum of this amount.
    #[inline]
    fn of(self, m: &mut Metrics) -> &mut i128 {
        match self {
            Sum::Discount => &mut m.discount_minor,
            Sum::CouponSales => &mut m.coupon_sales_minor,
            Sum::PlainSales => &mut m.plain_sales_minor,
        }
    }

    /// Its bit in [`Hot::state`]: set while the group's `i128` is too close to saturating for
    /// an `i64` sum to be added in later (amounts then go to the `i128` directly).
    #[inline]
    fn edge_bit(self) -> u8 {
        EDGE << (self as u8)
    }
}

/// [`Hot::state`]: the group is in the dirty list.
const DIRTY: u8 = 1;
/// [`Hot::state`]: the first of the three edge bits ([`Sum::edge_bit`]).
const EDGE: u8 = 2;

/// How far from saturating an `i128` sum must be for an `i64` sum to be added in later: any
/// sum of the amounts seen since then is within `i64`, so adding them one by one would not
/// have saturated either.
const SAFE: u128 = (i128::MAX as u128) - (1u128 << 63);

/// Whether `v` is too close to saturating (see [`SAFE`]).
#[inline]
fn near_edge(v: i128) -> bool {
    v.unsigned_abs() > SAFE
}

/// A group's counters since the last fold (see [the module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Hot {
    pub(super) offered: u32,
    pub(super) claimed: u32,
    pub(super) claimed_new: u32,
    pub(super) claimed_known: u32,
    pub(super) used: u32,
    pub(super) coupon_orders: u32,
    pub(super) plain_orders: u32,
    pub(super) expired: u32,
    /// Sums of [`Sum`]s since the last fold or spill, exact.
    money: [i64; 3],
    /// [`DIRTY`] and the edge bits.
    state: u8,
}

impl Hot {
    /// How many writes ([`Hot::open`]) may come between two folds: each adds at most 1 to a
    /// count, so no `u32` count can overflow.
    pub(super) const MAX_WRITES: u32 = u32::MAX;

    /// Before a write: whether the group must join the dirty list (it does when this
    /// returns true). On the first write since a fold, reads the group's money sums to know
    /// which are near the edge.
    #[inline]
    pub(super) fn open(&mut self, m: &Metrics) -> bool {
        if self.state & DIRTY != 0 {
            return false;
        }
        let mut state = DIRTY;
        for k in Sum::ALL {
            let v = match k {
                Sum::Discount => m.discount_minor,
                Sum::CouponSales => m.coupon_sales_minor,
                Sum::PlainSales => m.plain_sales_minor,
            };
            if near_edge(v) {
                state |= k.edge_bit();
            }
        }
        self.state = state;
        true
    }

    /// Adds an amount: to the `i64` sum while it fits, else (spilling that sum first) to the
    /// group's `i128`, saturating.
    ///
    /// Why the result is the `i128` that adding every amount one by one would give: while an
    /// edge bit is clear, the group's `i128` is at most [`SAFE`] from zero and every partial
    /// sum of the `i64` is within `i64`, so no step of the one-by-one sum would have
    /// saturated: it equals the `i128` plus the `i64`, exactly. A spill does those additions
    /// (`i128 + sum`, then `+ v` saturating, as the one-by-one sum would); if the `i128` is then
    /// near the edge, the edge bit is set and the amounts after it go to the `i128` one by one.
    #[inline]
    pub(super) fn add_money(&mut self, m: &mut Metrics, k: Sum, v: i128) {
        if self.state & k.edge_bit() == 0
            && let Ok(v) = i64::try_from(v)
            && let Some(sum) = self.money.get_mut(k as usize)
            && let Some(s) = sum.checked_add(v)
        {
            *sum = s;
            return;
        }
        self.spill(m, k, v);
    }

    #[cold]
    #[inline(never)]
    fn spill(&mut self, m: &mut Metrics, k: Sum, v: i128) {
        let cold = k.of(m);
        if let Some(sum) = self.money.get_mut(k as usize) {
            *cold = cold.saturating_add(i128::from(*sum));
            *sum = 0;
        }
        *cold = cold.saturating_add(v);
        if near_edge(*cold) {
            self.state |= k.edge_bit();
        }
    }

    /// Adds these counters into the group's and empties them.
    #[inline]
    pub(super) fn fold_into(&mut self, m: &mut Metrics) {
        let h = std::mem::take(self);
        let add = |a: &mut u64, b: u32| *a = a.saturating_add(u64::from(b));
        add(&mut m.offered, h.offered);
        add(&mut m.claimed, h.claimed);
        add(&mut m.claimed_new, h.claimed_new);
        add(&mut m.claimed_known, h.claimed_known);
        add(&mut m.used, h.used);
        add(&mut m.coupon_orders, h.coupon_orders);
        add(&mut m.plain_orders, h.plain_orders);
        add(&mut m.expired, h.expired);
        for (k, s) in Sum::ALL.into_iter().zip(h.money) {
            let cold = k.of(m);
            *cold = cold.saturating_add(i128::from(s));
        }
    }

    /// Whether nothing is counted here (as outside a call that counts events).
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        *self == Hot::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What adding one by one gives.
    fn one_by_one(start: i128, vs: &[i128]) -> i128 {
        vs.iter().fold(start, |a, &v| a.saturating_add(v))
    }

    /// Through `Hot`, folding after every `every` amounts (as calls end).
    fn through_hot(start: i128, vs: &[i128], every: usize) -> i128 {
        let mut m = Metrics {
            coupon_sales_minor: start,
            ..Metrics::default()
        };
        let mut h = Hot::default();
        for chunk in vs.chunks(every.max(1)) {
            h.open(&m);
            for &v in chunk {
                h.add_money(&mut m, Sum::CouponSales, v);
            }
            h.fold_into(&mut m);
            assert!(h.is_empty());
        }
        m.coupon_sales_minor
    }

    #[test]
    fn money_sums_are_the_one_by_one_sums_at_every_edge() {
        let big = i128::from(i64::MAX);
        let cases: Vec<(i128, Vec<i128>)> = vec![
            (0, vec![1, 2, 3, -7]),
            (0, vec![big, 1, big, -big, -1, 5]),
            (0, vec![i128::from(i64::MIN), -1, i128::from(i64::MIN), 3]),
            (0, vec![big * 4, -big * 9, 7, big]),
            (i128::MAX - 10, vec![5, 10, -3, -20, 40, -1]),
            (i128::MAX - 10, vec![big, -big, -big, 2]),
            (i128::MIN + 10, vec![-5, -10, 3, 20, -40, 1]),
            (i128::MAX - big, vec![big, 1, -1, -big]),
            (i128::MAX - big - 1, vec![1, 1, -3, big, -big]),
            (i128::MAX, vec![i128::MIN, i128::MAX, 1, -1]),
            (i128::MAX / 2, vec![i128::MAX / 2, big, big, -big, 1, 1]),
        ];
        for (start, vs) in cases {
            for every in 1..=vs.len() {
                assert_eq!(
                    through_hot(start, &vs, every),
                    one_by_one(start, &vs),
                    "{start} {vs:?} every {every}"
                );
            }
        }
    }

    #[test]
    fn one_line_a_group() {
        assert_eq!(std::mem::size_of::<Hot>(), 64);
        assert_eq!(std::mem::align_of::<Hot>(), 64);
    }
}
