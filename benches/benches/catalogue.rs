//! Catalogue benchmarks: a cart against many automatic promotions of a few kinds whose rules
//! are identical but for priority and id (what real catalogues hold), each kind in its own
//! stacking group, so the best-combination search meets many near-ties.
//!
//! - `catalogue/promotions/{10,100,1000}`: a 20-line cart against N automatic promotions of
//!   five kinds (percent with an optional cap, fixed amount, amount tiers, buy 2 get 1, free
//!   shipping), one stacking group per kind, priorities 0–99, 2 % exclusive; about 10 % can
//!   apply (the rest name SKUs not in the cart, or ask for a minimum spend the cart does not
//!   reach).
//! - `catalogue/index/20000`: a 50-line cart against 20,000 such promotions scoped mostly to
//!   SKUs and categories not in the cart (about 1.3 % can apply), through the
//!   [`PromotionIndex`].
//!
//! Run: `cargo bench -p coupons-benches --bench catalogue` (or `-- promotions/1000`).
//!
//! Instruction counts: `CATALOGUE_RUN=promotions/1000 valgrind --tool=callgrind
//! --collect-atstart=no --toggle-collect='coupons::checkout::Checkout::best'
//! target/release/deps/catalogue-*` runs the workload's checkout `CATALOGUE_CALLS` times
//! (default 1) outside criterion, and prints the saving and whether it is proven optimal
//! (`CATALOGUE_BUDGET=<units>` sets the search budget).

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{Checkout, PromotionIndex, StackingPolicy};
use coupons::id::*;
use coupons::money::{Currency, Money};
use coupons::rule::*;
use criterion::{Criterion, Throughput, criterion_group};

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

/// A small deterministic generator (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The five kinds, each with the few rule variants a catalogue repeats.
fn benefit(kind: u64, r: &mut Lcg) -> Benefit {
    match kind {
        0 => Benefit::percent(
            Percent::new(if r.below(2) == 0 { 10 } else { 15 }.into()).unwrap(),
            if r.below(2) == 0 { None } else { Some(m(3000)) },
        ),
        1 => Benefit::instant(m(1000)),
        2 => Benefit::tiered(vec![
            Tier {
                spend: m(10000),
                save: m(1000),
            },
            Tier {
                spend: m(20000),
                save: m(2500),
            },
        ]),
        3 => Benefit::buy_get(2, 1, None),
        _ => Benefit::shipping(None),
    }
    .unwrap()
}

const GROUPS: [&str; 5] = ["percent", "fixed", "tiers", "buy2get1", "shipping"];

/// One automatic promotion of `kind`: applicable (scope everything or a category of the cart)
/// when `applies`, otherwise scoped to a SKU or category absent from the cart, or asking for a
/// minimum spend out of reach.
fn promotion(i: usize, kind: u64, applies: bool, r: &mut Lcg) -> Arc<Template> {
    let b = benefit(kind, r);
    let (scope, min_spend) = if applies {
        let spec = if r.below(3) == 0 {
            ScopeSpec {
                categories: Some([CategoryId::new(format!("cat{}", r.below(4))).unwrap()].into()),
                ..Default::default()
            }
        } else {
            ScopeSpec::default()
        };
        (Scope::try_from(spec).unwrap(), None)
    } else {
        match r.below(10) {
            0..=4 => (
                Scope::try_from(ScopeSpec {
                    skus: Some([Sku::new(format!("gone{}", r.below(100_000))).unwrap()].into()),
                    ..Default::default()
                })
                .unwrap(),
                None,
            ),
            5..=8 => (
                Scope::try_from(ScopeSpec {
                    categories: Some(
                        [CategoryId::new(format!("gone{}", r.below(5_000))).unwrap()].into(),
                    ),
                    ..Default::default()
                })
                .unwrap(),
                None,
            ),
            _ => (Scope::everything(), Some(m(10_000_000))),
        }
    };
    let mut spec = TemplateSpec::new(
        TemplateId::new(format!("p{i:05}")).unwrap(),
        "catalogue",
        CNY,
        b,
        Validity::fixed(
            now() - Duration::days(10),
            now() + Duration::days(20 + r.below(20) as i64),
        )
        .unwrap(),
    )
    .scope(scope)
    .stacking(Stacking {
        priority: r.below(100) as i32,
        exclusive: r.below(50) == 0,
        ..Stacking::in_group(StackingGroup::new(GROUPS[kind as usize]).unwrap())
    })
    .distribution(Distribution::Automatic);
    if let Some(ms) = min_spend {
        spec = spec.conditions(
            Conditions::try_from(ConditionsSpec {
                min_subtotal: Some(ms),
                ..Default::default()
            })
            .unwrap(),
        );
    }
    Arc::new(spec.build().unwrap())
}

/// A cart of `lines` lines (SKUs `sku0…`, categories `cat0…cat7`), shipping 9.99.
fn cart(lines: usize, r: &mut Lcg) -> Cart {
    let lines = (0..lines)
        .map(|i| {
            CartLine::new(
                Sku::new(format!("sku{i}")).unwrap(),
                m(500 + 100 * r.below(200) as i64),
                1 + r.below(3) as u32,
            )
            .in_category(CategoryId::new(format!("cat{}", r.below(8))).unwrap())
        })
        .collect();
    Cart::new(CNY, lines, m(999)).unwrap()
}

/// `n` promotions, kinds in turn, each able to apply with probability `per_mille / 1000` (of
/// ten, the first two: ten draws could leave none).
fn catalogue(n: usize, per_mille: u64, r: &mut Lcg) -> PromotionIndex {
    PromotionIndex::new((0..n).map(|i| {
        let applies = if n <= 10 {
            i < 2
        } else {
            r.below(1000) < per_mille
        };
        promotion(i, (i % 5) as u64, applies, r)
    }))
}

/// A named workload: the cart and its promotions.
fn workload(name: &str) -> Option<(Cart, PromotionIndex)> {
    let (lines, n, per_mille) = match name {
        "promotions/10" => (20, 10, 100),
        "promotions/100" => (20, 100, 100),
        "promotions/1000" => (20, 1000, 100),
        "index/20000" => (50, 20_000, 13),
        _ => return None,
    };
    let mut r = Lcg(11 + n as u64);
    let cart = cart(lines, &mut r);
    let index = catalogue(n, per_mille, &mut r);
    Some((cart, index))
}

const NAMES: [&str; 4] = [
    "promotions/10",
    "promotions/100",
    "promotions/1000",
    "index/20000",
];

fn bench_catalogue(c: &mut Criterion) {
    let mut g = c.benchmark_group("catalogue");
    let policy = StackingPolicy::default();
    let buyer = Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap());
    for name in NAMES {
        let Some((cart, index)) = workload(name) else {
            continue;
        };
        let n = index.len() as u64;
        g.throughput(Throughput::Elements(n));
        let q = Checkout::new(&cart, &buyer, now(), &policy)
            .promotions(&index)
            .best()
            .unwrap();
        assert!(
            q.proven_optimal,
            "{name}: the default search budget ran out"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                let q = Checkout::new(&cart, &buyer, now(), &policy)
                    .promotions(black_box(&index))
                    .best();
                black_box(q)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_catalogue);

/// `CATALOGUE_RUN=<workload>` runs that workload's checkout `CATALOGUE_CALLS` times (default
/// 1) without criterion, for instruction counts under callgrind; otherwise the benchmarks run.
fn main() {
    if let Ok(name) = std::env::var("CATALOGUE_RUN") {
        let calls: usize = std::env::var("CATALOGUE_CALLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let (cart, index) = workload(&name).expect("unknown workload");
        let policy = StackingPolicy::default();
        let buyer = Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap());
        let mut checkout = Checkout::new(&cart, &buyer, now(), &policy).promotions(&index);
        if let Some(units) = std::env::var("CATALOGUE_BUDGET")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            checkout = checkout.search_budget(units);
        }
        let usable = checkout.best().unwrap();
        let usable = usable.offers.iter().filter(|e| e.usable).count();
        let candidates = index.candidates(&cart).len();
        let mut last = None;
        for _ in 0..calls {
            last = Some(black_box(checkout.best().unwrap()));
        }
        let q = last.expect("at least one call");
        println!(
            "{name}: {candidates} candidates, {usable} usable, saving {}, proven optimal {} \
             (gap {}), applied {:?}",
            q.saving,
            q.proven_optimal,
            q.optimality_gap,
            q.applied_ids()
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
