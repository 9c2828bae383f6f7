//! Units priced one by one: the engine against a unit-by-unit reference model, and the cost of
//! a checkout independent of the quantities (closed forms per run of equal units, checked with
//! quantities up to `u32::MAX`).

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{Checkout, Offer, OfferId, StackingPolicy};
use coupons::id::*;
use coupons::money::{Currency, Money};
use coupons::rule::*;
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn pct(p: i64) -> Percent {
    Percent::new(p.into()).unwrap()
}

/// The offers the reference models.
#[derive(Clone, Debug)]
enum Op {
    Instant(i64),
    Percent(i64),
    BuyGet(u32, u32, Option<u32>),
    Fixed(u32, i64, Option<u32>),
    PerUnit(i64, Option<u32>),
    Once(bool, Result<i64, i64>),
}

impl Op {
    fn benefit(&self) -> Benefit {
        match *self {
            Op::Instant(a) => Benefit::instant(m(a)).unwrap(),
            Op::Percent(p) => Benefit::percent(pct(p), None).unwrap(),
            Op::BuyGet(b, g, mx) => Benefit::buy_get(b, g, mx).unwrap(),
            Op::Fixed(q, p, mx) => Benefit::fixed_price(q, m(p), mx).unwrap(),
            Op::PerUnit(a, mx) => Benefit::per_unit(m(a), mx).unwrap(),
            Op::Once(dearest, off) => Benefit::apply_once(
                if dearest {
                    UnitPick::Dearest
                } else {
                    UnitPick::Cheapest
                },
                match off {
                    Ok(a) => UnitOff::Amount(m(a)),
                    Err(p) => UnitOff::Percent(pct(p)),
                },
            )
            .unwrap(),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..200).prop_map(Op::Instant),
        (1i64..=100).prop_map(Op::Percent),
        (1u32..3, 1u32..3, proptest::option::of(1u32..4)).prop_map(|(b, g, x)| Op::BuyGet(b, g, x)),
        (1u32..4, 1i64..150, proptest::option::of(1u32..4))
            .prop_map(|(q, p, x)| Op::Fixed(q, p, x)),
        (1i64..40, proptest::option::of(1u32..6)).prop_map(|(a, x)| Op::PerUnit(a, x)),
        (
            proptest::bool::ANY,
            prop_oneof![(1i64..60).prop_map(Ok), (1i64..=100).prop_map(Err)]
        )
            .prop_map(|(d, off)| Op::Once(d, off)),
    ]
}

/// `n / d` rounded half-even (`n ≥ 0`, `d > 0`), the default rounding.
fn half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    q + i128::from(2 * r > d || (2 * r == d && q % 2 == 1))
}

/// Largest-remainder split of `total` by `weights`, ties to the earlier.
fn apportion(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let mut parts: Vec<i64> = weights.iter().map(|w| total * w / sum).collect();
    let mut rems: Vec<(i64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (total * w % sum, i))
        .collect();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = total - parts.iter().sum::<i64>();
    for &(_, i) in rems.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts
}

/// `total` over `k` units as evenly as it goes.
fn even(total: i64, k: usize) -> Vec<i64> {
    let k = k as i64;
    (0..k)
        .map(|i| total / k + i64::from(i < total % k))
        .collect()
}

/// The reference: every unit of every line on its own.
struct Units(Vec<Vec<i64>>);

impl Units {
    fn left(&self) -> Vec<i64> {
        self.0.iter().map(|l| l.iter().sum()).collect()
    }

    /// Every unit as (line, index), cheapest first (ties: the earlier line), or dearest first
    /// (ties: the later line).
    fn order(&self, dearest: bool) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = (0..self.0.len())
            .flat_map(|l| (0..self.0[l].len()).map(move |i| (l, i)))
            .collect();
        v.sort_by(|a, b| {
            let k = |x: &(usize, usize)| (self.0[x.0][x.1], x.0);
            k(a).cmp(&k(b))
        });
        if dearest {
            v.reverse();
        }
        v
    }

    /// Takes `s` off line `l` one minor unit at a time, always off a dearest unit.
    fn take(&mut self, l: usize, s: i64) {
        for _ in 0..s {
            let i = (0..self.0[l].len()).max_by_key(|&i| self.0[l][i]).unwrap();
            self.0[l][i] -= 1;
        }
    }

    fn spread(&mut self, s: i64) {
        let parts = apportion(s, &self.left());
        for (l, p) in parts.into_iter().enumerate() {
            self.take(l, p);
        }
    }

    /// Applies `op`; its saving (zero: it does not apply).
    fn apply(&mut self, op: &Op) -> i64 {
        let before: i64 = self.left().iter().sum();
        let qty: usize = self.0.iter().map(Vec::len).sum();
        match *op {
            Op::Instant(a) => self.spread(a.min(before)),
            Op::Percent(p) => {
                self.spread(half_even(i128::from(before) * i128::from(p), 100) as i64)
            }
            Op::BuyGet(b, g, mx) => {
                let free = (qty / (b + g) as usize * g as usize)
                    .min(mx.map_or(usize::MAX, |x| x as usize));
                for (l, i) in self.order(false).into_iter().take(free) {
                    self.0[l][i] = 0;
                }
            }
            Op::PerUnit(a, mx) => {
                let k = mx.map_or(usize::MAX, |x| x as usize);
                for (l, i) in self.order(true).into_iter().take(k) {
                    self.0[l][i] -= a.min(self.0[l][i]);
                }
            }
            Op::Once(dearest, off) => {
                let (l, i) = self.order(dearest)[0];
                let v = self.0[l][i];
                self.0[l][i] -= match off {
                    Ok(a) => a.min(v),
                    Err(p) => (half_even(i128::from(v) * i128::from(p), 100) as i64).min(v),
                };
            }
            Op::Fixed(q, price, mx) => {
                let order = self.order(true);
                let max = mx.map_or(usize::MAX, |x| x as usize);
                for bundle in order.chunks(q as usize).take(max) {
                    if bundle.len() < q as usize {
                        break;
                    }
                    let value: i64 = bundle.iter().map(|&(l, i)| self.0[l][i]).sum();
                    if value <= price {
                        break;
                    }
                    // Pieces: consecutive units of one line and one value.
                    let mut pieces: Vec<Vec<(usize, usize)>> = Vec::new();
                    for &u in bundle {
                        match pieces.last_mut() {
                            Some(p)
                                if p[0].0 == u.0 && self.0[p[0].0][p[0].1] == self.0[u.0][u.1] =>
                            {
                                p.push(u)
                            }
                            _ => pieces.push(vec![u]),
                        }
                    }
                    let weights: Vec<i64> = pieces
                        .iter()
                        .map(|p| p.iter().map(|&(l, i)| self.0[l][i]).sum())
                        .collect();
                    let shares = apportion(value - price, &weights);
                    for ((p, w), s) in pieces.iter().zip(&weights).zip(shares) {
                        for (&(l, i), v) in p.iter().zip(even(w - s, p.len())) {
                            self.0[l][i] = v;
                        }
                    }
                }
            }
        }
        before - self.left().iter().sum::<i64>()
    }
}

fn checkout_of(lines: &[(i64, u32)], ops: &[Op]) -> (Cart, Vec<Offer>, StackingPolicy) {
    let cart = Cart::new(
        CNY,
        lines
            .iter()
            .enumerate()
            .map(|(i, &(p, q))| CartLine::new(Sku::new(format!("s{i}")).unwrap(), m(p), q))
            .collect(),
        m(0),
    )
    .unwrap();
    // One group per offer, in the order given: the offers apply in exactly that order.
    let offers: Vec<Offer> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let t = TemplateSpec::new(
                TemplateId::new(format!("t{i}")).unwrap(),
                format!("offer {i}"),
                CNY,
                op.benefit(),
                Validity::relative(Span::Days(7), None).unwrap(),
            )
            .stacking(Stacking::in_group(
                StackingGroup::new(format!("g{i}")).unwrap(),
            ))
            .build()
            .unwrap();
            Offer::coupon(
                CouponId::new(format!("c{i}")).unwrap(),
                Arc::new(t),
                now() - Duration::hours(1),
                now() + Duration::days(3),
            )
        })
        .collect();
    let policy = StackingPolicy {
        max_coupons: 10,
        group_order: (0..ops.len())
            .map(|i| StackingGroup::new(format!("g{i}")).unwrap())
            .collect(),
        ..StackingPolicy::default()
    };
    (cart, offers, policy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    /// Several unit offers (and amounts) on lines of several units, in a stated order: each
    /// offer's saving and each line's final amount equal the reference that prices every unit
    /// on its own; a combination in which some offer saves nothing is refused.
    #[test]
    fn unit_offers_equal_a_unit_by_unit_reference(
        lines in proptest::collection::vec((1i64..60, 1u32..6), 1..4),
        ops in proptest::collection::vec(op(), 1..5),
    ) {
        let (cart, offers, policy) = checkout_of(&lines, &ops);
        let mut reference = Units(lines.iter().map(|&(p, q)| vec![p; q as usize]).collect());
        let savings: Vec<i64> = ops.iter().map(|op| reference.apply(op)).collect();
        let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
        let ids: Vec<OfferId> = offers.iter().map(|o| o.id.clone()).collect();
        let got = Checkout::new(&cart, &buyer, now(), &policy)
            .offers(&offers)
            .apply_exactly(&ids);
        if savings.contains(&0) {
            prop_assert!(got.is_err(), "saves nothing in the reference: {savings:?}");
            return Ok(());
        }
        let q = got.map_err(|e| TestCaseError::fail(format!("{e}; reference {savings:?}")))?;
        let engine: Vec<i64> = q.applied.iter().map(|a| a.saving.to_minor().unwrap()).collect();
        prop_assert_eq!(&engine, &savings);
        let finals: Vec<i64> = q.lines.iter().map(|l| l.final_amount.to_minor().unwrap()).collect();
        prop_assert_eq!(finals, reference.left());
        for l in &q.lines {
            let shares: i64 = l.shares.iter().map(|s| s.amount.to_minor().unwrap()).sum();
            prop_assert_eq!(l.original.to_minor().unwrap() - shares, l.final_amount.to_minor().unwrap());
        }
    }

    /// Quantities up to `u32::MAX`: unit offers price in closed form (a loop over units or
    /// bundles would not finish), exactly as the formulas say, and the best combination is
    /// found with its shares summing exactly.
    #[test]
    fn huge_quantities_price_in_closed_form(
        price in 1i64..2_000_000,
        units in prop_oneof![Just(u32::MAX), (u32::MAX - 1000)..=u32::MAX, 1u32..=u32::MAX],
        bundle in 1u32..5,
        pay in 1i64..4_000_000,
        max in proptest::option::of(1u32..=u32::MAX),
    ) {
        let u = u64::from(units);
        let v = i128::from(price);
        let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
        let one = |op: Op| {
            let (cart, offers, policy) = checkout_of(&[(price, units)], &[op]);
            let q = Checkout::new(&cart, &buyer, now(), &policy).offers(&offers).best().unwrap();
            q.saving.to_minor().unwrap() as i128
        };
        let cap = max.map_or(u64::MAX, u64::from);
        // Any `bundle` for `pay`.
        let n = (u / u64::from(bundle)).min(cap);
        let per = i128::from(bundle) * v - i128::from(pay);
        let expect = if per > 0 { i128::from(n) * per } else { 0 };
        prop_assert_eq!(one(Op::Fixed(bundle, pay, max)), expect);
        // Buy 1 get 1 free.
        let free = (u / 2).min(cap);
        prop_assert_eq!(one(Op::BuyGet(1, 1, max)), i128::from(free) * v);
        // 1.00 off each unit.
        let each = i128::from(100.min(price));
        prop_assert_eq!(one(Op::PerUnit(100, max)), i128::from(u.min(cap)) * each);
    }
}

#[test]
fn a_unit_made_free_is_never_discounted_again() {
    // The case: 4 units at 30, buy 2 get 1, then any 2 for 40. One by one: 30 free,
    // then 30 + 30 for 40 saves 20 (the next pair, 30 + 0, is not worth a bundle): 50 in all,
    // where a line average (22.50 a unit) gave 30 + 10.
    let (cart, offers, policy) = checkout_of(
        &[(3000, 4)],
        &[Op::BuyGet(2, 1, None), Op::Fixed(2, 4000, None)],
    );
    let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
    let ids: Vec<OfferId> = offers.iter().map(|o| o.id.clone()).collect();
    let q = Checkout::new(&cart, &buyer, now(), &policy)
        .offers(&offers)
        .apply_exactly(&ids)
        .unwrap();
    let savings: Vec<Money> = q.applied.iter().map(|a| a.saving).collect();
    assert_eq!(savings, vec![m(3000), m(2000)]);
    // A second buy-get finds the free unit cheapest: it saves nothing and is refused.
    let (cart, offers, policy) = checkout_of(
        &[(3000, 3)],
        &[Op::BuyGet(2, 1, None), Op::BuyGet(2, 1, None)],
    );
    let ids: Vec<OfferId> = offers.iter().map(|o| o.id.clone()).collect();
    assert!(
        Checkout::new(&cart, &buyer, now(), &policy)
            .offers(&offers)
            .apply_exactly(&ids)
            .is_err()
    );
}

#[test]
fn a_line_of_u32_max_units_with_several_unit_offers_prices_at_once() {
    // Three lines of u32::MAX units, four unit offers and a percentage: the answer comes in
    // closed form and every share sums exactly.
    let lines = [(7, u32::MAX), (3, u32::MAX), (11, u32::MAX)];
    let ops = [
        Op::BuyGet(3, 1, None),
        Op::Fixed(1, 5, None),
        Op::PerUnit(2, None),
        Op::Once(true, Err(50)),
        Op::Percent(10),
    ];
    let (cart, offers, policy) = checkout_of(&lines, &ops);
    let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
    let q = Checkout::new(&cart, &buyer, now(), &policy)
        .offers(&offers)
        .best()
        .unwrap();
    assert!(q.proven_optimal);
    let shares: i64 = q
        .lines
        .iter()
        .flat_map(|l| &l.shares)
        .map(|s| s.amount.to_minor().unwrap())
        .sum();
    assert_eq!(shares, q.saving.to_minor().unwrap());
    for l in &q.lines {
        assert!(!l.final_amount.is_negative());
    }
    assert!(q.saving.is_positive());
}
