//! Checkout benchmarks: full evaluation + best combination.
//!
//! - `checkout/wallet/{10,100,1000}`: a 20-line cart against a wallet of N coupons from
//!   `20 + N / 10` templates (mixed kinds, scopes, priorities and stacking groups: platform,
//!   five shops, shipping; 10 % locked or used, a quarter with a minimum spend, some out of
//!   scope); one coupon per group, at most 5 per order.
//! - `checkout/promotions/20000`: a 50-line cart against 20,000 automatic promotions, through
//!   the [`PromotionIndex`].
//!
//! Run: `cargo bench --bench checkout` (or `-- wallet/100`).
//!
//! Instruction counts: `CHECKOUT_RUN=wallet/distinct/1000 valgrind --tool=callgrind
//! --collect-atstart=no --toggle-collect='coupons::checkout::Checkout::best'
//! target/release/deps/checkout-*` runs that wallet's checkout `CHECKOUT_CALLS` times
//! (default 1) after one untimed call, outside criterion (`wallet/{10,100,1000}`,
//! `wallet/distinct/{100,1000}`).

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{Blocked, Checkout, Offer, PromotionIndex, StackingPolicy};
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

fn benefit(r: &mut Lcg) -> Benefit {
    match r.below(7) {
        0 => Benefit::instant(m(500 + 100 * r.below(20) as i64)),
        1 => {
            let spend = 5000 + 1000 * r.below(30) as i64;
            Benefit::tiered(vec![
                Tier {
                    spend: m(spend),
                    save: m(spend / 10),
                },
                Tier {
                    spend: m(spend * 2),
                    save: m(spend / 4),
                },
            ])
        }
        2 => Benefit::every(m(10000), m(1000 + 100 * r.below(5) as i64), Some(m(5000))),
        3 => Benefit::percent(
            Percent::new((5 + r.below(25)).into()).unwrap(),
            Some(m(3000 + 100 * r.below(50) as i64)),
        ),
        4 => Benefit::shipping(if r.below(2) == 0 { None } else { Some(m(800)) }),
        5 => Benefit::buy_get(2, 1, Some(2)),
        _ => Benefit::fixed_price(3, m(9900 + 3000 * r.below(10) as i64), Some(1)),
    }
    .unwrap()
}

fn group_for(b: &Benefit, r: &mut Lcg) -> String {
    if b.is_shipping() {
        "shipping".into()
    } else if r.below(3) == 0 {
        format!("shop:{}", r.below(5))
    } else {
        "platform".into()
    }
}

fn scope(r: &mut Lcg) -> Scope {
    let spec = match r.below(10) {
        0..=5 => ScopeSpec::default(),
        6 | 7 => ScopeSpec {
            categories: Some([CategoryId::new(format!("cat{}", r.below(8))).unwrap()].into()),
            ..Default::default()
        },
        8 => ScopeSpec {
            shops: Some([ShopId::new(format!("shop{}", r.below(5))).unwrap()].into()),
            ..Default::default()
        },
        _ => ScopeSpec {
            skus: Some(
                (0..5)
                    .map(|_| Sku::new(format!("sku{}", r.below(40))).unwrap())
                    .collect(),
            ),
            ..Default::default()
        },
    };
    Scope::try_from(spec).unwrap()
}

fn template(id: String, r: &mut Lcg, automatic: bool) -> Arc<Template> {
    let b = benefit(r);
    let group = group_for(&b, r);
    let mut spec = TemplateSpec::new(
        TemplateId::new(id).unwrap(),
        "bench",
        CNY,
        b,
        Validity::fixed(now() - Duration::days(10), now() + Duration::days(30)).unwrap(),
    )
    .scope(scope(r))
    .stacking(Stacking {
        priority: r.below(3) as i32,
        ..Stacking::in_group(StackingGroup::new(group).unwrap())
    });
    if r.below(4) == 0 {
        spec = spec.conditions(
            Conditions::try_from(ConditionsSpec {
                min_subtotal: Some(m(10000 * (1 + r.below(40) as i64))),
                ..Default::default()
            })
            .unwrap(),
        );
    }
    if automatic {
        spec = spec.distribution(Distribution::Automatic);
    }
    Arc::new(spec.build().unwrap())
}

fn cart(lines: usize, r: &mut Lcg) -> Cart {
    let lines = (0..lines)
        .map(|i| {
            CartLine::new(
                Sku::new(format!("sku{i}")).unwrap(),
                m(500 + 100 * r.below(200) as i64),
                1 + r.below(3) as u32,
            )
            .in_category(CategoryId::new(format!("cat{}", r.below(8))).unwrap())
            .from_shop(ShopId::new(format!("shop{}", r.below(5))).unwrap())
        })
        .collect();
    Cart::new(CNY, lines, m(1200)).unwrap()
}

/// A wallet of `n` coupons from `20 + n / 10` templates, popular ones recurring (a buyer who
/// collected many coupons got most of them from a few campaigns): a uniform draw below a
/// uniform bound, so template `i` comes up with weight about `1 / (i + 1)`.
fn wallet(n: usize, r: &mut Lcg) -> Vec<Offer> {
    wallet_of(n, 20 + n / 10, r)
}

/// A wallet of `n` coupons from `templates` templates.
fn wallet_of(n: usize, templates: usize, r: &mut Lcg) -> Vec<Offer> {
    let templates: Vec<Arc<Template>> = (0..templates)
        .map(|i| template(format!("t{i}"), r, false))
        .collect();
    (0..n)
        .map(|i| {
            let bound = 1 + r.below(templates.len() as u64);
            let t = templates[r.below(bound) as usize].clone();
            let until = now() + Duration::days(1 + r.below(14) as i64);
            let o = Offer::coupon(
                CouponId::new(format!("c{i}")).unwrap(),
                t,
                now() - Duration::days(1),
                until,
            );
            match r.below(20) {
                0 => o.with_blocked(Blocked::Locked),
                1 => o.with_blocked(Blocked::Used),
                _ => o,
            }
        })
        .collect()
}

fn bench_wallets(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkout/wallet");
    let policy = StackingPolicy::default();
    let buyer = Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap());
    for n in [10usize, 100, 1000] {
        let mut r = Lcg(42 + n as u64);
        let cart = cart(20, &mut r);
        let wallet = wallet(n, &mut r);
        g.throughput(Throughput::Elements(n as u64));
        let q = Checkout::new(&cart, &buyer, now(), &policy)
            .offers(&wallet)
            .best()
            .unwrap();
        assert!(
            q.proven_optimal,
            "wallet/{n}: the default search budget ran out"
        );
        g.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                let q = Checkout::new(&cart, &buyer, now(), &policy)
                    .offers(black_box(&wallet))
                    .best();
                black_box(q)
            })
        });
    }
    // The hard case: every coupon from its own template (distinct rules, nothing to collapse).
    for n in [100usize, 1000] {
        let mut r = Lcg(4242 + n as u64);
        let cart = cart(20, &mut r);
        let wallet = wallet_of(n, n, &mut r);
        g.throughput(Throughput::Elements(n as u64));
        let q = Checkout::new(&cart, &buyer, now(), &policy)
            .offers(&wallet)
            .best()
            .unwrap();
        assert!(
            q.proven_optimal,
            "distinct/{n}: the default search budget ran out"
        );
        g.bench_function(format!("distinct/{n}"), |b| {
            b.iter(|| {
                let q = Checkout::new(&cart, &buyer, now(), &policy)
                    .offers(black_box(&wallet))
                    .best();
                black_box(q)
            })
        });
    }
    g.finish();
}

fn bench_promotions(c: &mut Criterion) {
    let mut g = c.benchmark_group("checkout/promotions");
    g.sample_size(30);
    let policy = StackingPolicy::default();
    let buyer = Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap());
    let mut r = Lcg(7);
    // 20,000 promotions over a catalogue of 20,000 SKUs, 2,000 categories and 500 shops:
    // 70 % name a SKU, 20 % a category, 9.9 % a shop, 0.1 % everything.
    let promos: Vec<Arc<Template>> = (0..20_000)
        .map(|i| {
            let mut t = (*template(format!("p{i}"), &mut r, true)).clone();
            let roll = r.below(1000);
            let spec = if roll < 700 {
                ScopeSpec {
                    skus: Some([Sku::new(format!("sku{}", r.below(20_000))).unwrap()].into()),
                    ..Default::default()
                }
            } else if roll < 900 {
                ScopeSpec {
                    categories: Some(
                        [CategoryId::new(format!("cat{}", r.below(2_000))).unwrap()].into(),
                    ),
                    ..Default::default()
                }
            } else if roll < 999 {
                ScopeSpec {
                    shops: Some([ShopId::new(format!("shop{}", r.below(500))).unwrap()].into()),
                    ..Default::default()
                }
            } else {
                ScopeSpec::default()
            };
            let mut s = TemplateSpec::from(t.clone());
            s.scope = Scope::try_from(spec).unwrap();
            t = s.build().unwrap();
            Arc::new(t)
        })
        .collect();
    let index = PromotionIndex::new(promos);
    let lines = (0..50)
        .map(|_| {
            CartLine::new(
                Sku::new(format!("sku{}", r.below(20_000))).unwrap(),
                m(500 + 100 * r.below(200) as i64),
                1 + r.below(3) as u32,
            )
            .in_category(CategoryId::new(format!("cat{}", r.below(2_000))).unwrap())
            .from_shop(ShopId::new(format!("shop{}", r.below(10))).unwrap())
        })
        .collect();
    let cart = Cart::new(CNY, lines, m(1200)).unwrap();
    eprintln!(
        "promotions: {} candidates for the 50-line cart",
        index.candidates(&cart).len()
    );
    g.throughput(Throughput::Elements(20_000));
    let q = Checkout::new(&cart, &buyer, now(), &policy)
        .promotions(&index)
        .best()
        .unwrap();
    assert!(
        q.proven_optimal,
        "promotions/20000: the default search budget ran out"
    );
    g.bench_function("20000", |b| {
        b.iter(|| {
            let q = Checkout::new(&cart, &buyer, now(), &policy)
                .promotions(black_box(&index))
                .best();
            black_box(q)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_wallets, bench_promotions);

/// The cart and wallet of a named wallet workload, as the benchmarks build them.
fn wallet_workload(name: &str) -> Option<(Cart, Vec<Offer>)> {
    let (n, distinct) = match name {
        "wallet/10" => (10, false),
        "wallet/100" => (100, false),
        "wallet/1000" => (1000, false),
        "wallet/distinct/100" => (100, true),
        "wallet/distinct/1000" => (1000, true),
        _ => return None,
    };
    if distinct {
        let mut r = Lcg(4242 + n as u64);
        let cart = cart(20, &mut r);
        let wallet = wallet_of(n, n, &mut r);
        Some((cart, wallet))
    } else {
        let mut r = Lcg(42 + n as u64);
        let cart = cart(20, &mut r);
        let wallet = wallet(n, &mut r);
        Some((cart, wallet))
    }
}

/// `CHECKOUT_RUN=<wallet workload>` runs its checkout without criterion (one call first, then
/// `CHECKOUT_CALLS`), for instruction counts under callgrind; otherwise the benchmarks run.
fn main() {
    if let Ok(name) = std::env::var("CHECKOUT_RUN") {
        let calls: usize = std::env::var("CHECKOUT_CALLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let (cart, wallet) = wallet_workload(&name).expect("unknown workload");
        let policy = StackingPolicy::default();
        let buyer = Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap());
        let checkout = Checkout::new(&cart, &buyer, now(), &policy).offers(&wallet);
        let first = checkout.best().unwrap();
        let usable = first.offers.iter().filter(|e| e.usable).count();
        let mut last = None;
        for _ in 0..calls {
            last = Some(black_box(checkout.best().unwrap()));
        }
        let q = last.expect("at least one call");
        println!(
            "{name}: {usable} usable, saving {}, proven optimal {}, applied {:?}",
            q.saving,
            q.proven_optimal,
            q.applied_ids()
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
