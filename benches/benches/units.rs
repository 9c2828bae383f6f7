//! Units priced one by one: a checkout's cost is independent of the quantities in the cart.
//!
//! - `units/fixed_price/{1,u32max}`: three lines of 1 or `u32::MAX` units each against a
//!   `fixed_price` template with `quantity: 1` and no `max_bundles` (the case that cost time
//!   linear in the units: about 20 minutes per application at `u32::MAX`), the best
//!   combination.
//! - `units/mixed/{1,u32max}`: the same lines against buy 3 get 1, any 1 for 0.05, 0.02 off
//!   each unit, 50 % off the dearest unit and 10 % off, each in its own group in a stated
//!   order: every unit offer on lines that several others split into runs.
//!
//! Run: `cargo bench -p coupons-benches --bench units` (or `-- fixed_price/u32max`).

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{Checkout, Offer, StackingPolicy};
use coupons::id::*;
use coupons::money::{Currency, Money};
use coupons::rule::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn cart(units: u32) -> Cart {
    let lines = [7, 3, 11]
        .iter()
        .enumerate()
        .map(|(i, &p)| CartLine::new(Sku::new(format!("s{i}")).unwrap(), m(p), units))
        .collect();
    Cart::new(CNY, lines, m(0)).unwrap()
}

fn offers(benefits: Vec<Benefit>) -> (Vec<Offer>, StackingPolicy) {
    let offers: Vec<Offer> = benefits
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let t = TemplateSpec::new(
                TemplateId::new(format!("t{i}")).unwrap(),
                format!("offer {i}"),
                CNY,
                b,
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
        group_order: (0..offers.len())
            .map(|i| StackingGroup::new(format!("g{i}")).unwrap())
            .collect(),
        ..StackingPolicy::default()
    };
    (offers, policy)
}

fn bench(c: &mut Criterion) {
    let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
    let fixed = || vec![Benefit::fixed_price(1, m(5), None).unwrap()];
    let mixed = || {
        vec![
            Benefit::buy_get(3, 1, None).unwrap(),
            Benefit::fixed_price(1, m(5), None).unwrap(),
            Benefit::per_unit(m(2), None).unwrap(),
            Benefit::apply_once(
                UnitPick::Dearest,
                UnitOff::Percent(Percent::new(50.into()).unwrap()),
            )
            .unwrap(),
            Benefit::percent(Percent::new(10.into()).unwrap(), None).unwrap(),
        ]
    };
    for (name, benefits) in [("fixed_price", fixed()), ("mixed", mixed())] {
        let (offers, policy) = offers(benefits);
        for (size, units) in [("1", 1u32), ("u32max", u32::MAX)] {
            let cart = cart(units);
            let checkout = Checkout::new(&cart, &buyer, now(), &policy).offers(&offers);
            let q = checkout.best().unwrap();
            assert!(q.proven_optimal && q.saving.is_positive());
            c.bench_function(&format!("units/{name}/{size}"), |b| {
                b.iter(|| black_box(checkout.best().unwrap()))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
