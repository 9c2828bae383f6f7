//! Targeting benchmarks: the cycle plan in memory, and RFM scoring.
//!
//! - `targeting/plan/10M`: 10 million orders of 1 million users over three months (every user
//!   orders once, the rest skewed: a few heavy buyers, many one-order users; some orders discounted, with ties on amounts) →
//!   cycle statistics → consumption types → standard rates → the plan for April, on one core.
//! - `targeting/stats/10M`: the statistics alone, through [`CycleStats::extend_minor`];
//!   `targeting/stats-one-by-one/10M` through [`CycleStats::add_minor`].
//! - `targeting/rfm/1M`: RFM quintile scores of the same 1 million users.
//!
//! The orders are generated before the clock starts (32 bytes each, not committed) and fed in
//! minor units and microseconds, as a columnar source holds them (turning them into
//! [`MinorOrder`]s is inside the clock).
//!
//! Run: `cargo bench -p coupons-benches --bench targeting` (or `-- rfm`);
//! `TARGETING_ONCE=5 cargo bench -p coupons-benches --bench targeting` runs the plan five times
//! and prints each stage's CPU time instead.

use std::hint::black_box;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};
use coupons::money::Currency;
use coupons::targeting::*;
use criterion::{Criterion, criterion_group, criterion_main};

const CNY: Currency = Currency::CNY;

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

/// (user, micros, gross minor, discount minor), in time order.
fn orders(n: usize, users: u64) -> Vec<(u64, i64, i64, i64)> {
    let mut r = Lcg(42);
    let start = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    let span = 90 * 86_400_000_000i64;
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        // Every user orders once (in a scattered order), then skewed: squaring a uniform draw
        // makes low ids heavy buyers.
        let user = if (i as u64) < users {
            (i as u64 * 7_919) % users
        } else {
            let u = r.below(1 << 20) as f64 / (1u64 << 20) as f64;
            ((u * u) * users as f64) as u64
        };
        let at = start + (i as i64) * (span / n as i64);
        // Prices on a few price points (ties), discounts on a third of the orders.
        let gross =
            [1990, 2990, 4990, 9900, 12800, 19900][r.below(6) as usize] * (1 + r.below(3) as i64);
        let discount = if r.below(3) == 0 {
            [500, 1000, 2000][r.below(3) as usize].min(gross / 2)
        } else {
            0
        };
        v.push((user, at, gross, discount));
    }
    v
}

fn stats_of(orders: &[(u64, i64, i64, i64)]) -> CycleStats<u64> {
    let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
    let mut s = CycleStats::new(cycles, CNY);
    s.extend_minor(
        orders
            .iter()
            .map(|&(user, at_micros, gross, discount)| MinorOrder {
                user,
                at_micros,
                gross,
                discount,
                paid: gross - discount,
                coupon_used: discount > 0,
            }),
    )
    .unwrap();
    s
}

/// The same, one order at a time.
fn stats_one_by_one(orders: &[(u64, i64, i64, i64)]) -> CycleStats<u64> {
    let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
    let mut s = CycleStats::new(cycles, CNY);
    for &(u, at, g, d) in orders {
        s.add_minor(&u, at, g, d, g - d, d > 0).unwrap();
    }
    s
}

/// The calling thread's CPU time so far (Linux), or zero elsewhere.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// `TARGETING_ONCE=5`: the plan five times, each stage's CPU time of this thread printed (a
/// shared machine's wall time is mostly waiting; CPU time is what the plan costs).
fn once(data: &[(u64, i64, i64, i64)], march: CycleIndex, runs: usize) {
    for _ in 0..runs {
        let t0 = thread_cpu();
        let stats = stats_of(data);
        let t1 = thread_cpu();
        let types = classify(&stats, march, &TypeGrid::medians()).unwrap();
        let t2 = thread_cpu();
        let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
        let t3 = thread_cpu();
        let plan = plan_cycle(&stats, &types, &standards, &PlanRules::default()).unwrap();
        let t4 = thread_cpu();
        eprintln!(
            "plan/10M CPU: {:?} (stats {:?}, types {:?}, standards {:?}, plan {:?}); cost {}",
            t4 - t0,
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t4 - t3,
            plan.total().expected_cost
        );
    }
}

fn bench(c: &mut Criterion) {
    let data = orders(10_000_000, 1_000_000);
    let march = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap())
        .index_of(Utc.with_ymd_and_hms(2026, 3, 15, 0, 0, 0).unwrap());
    if let Some(runs) = std::env::var("TARGETING_ONCE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        once(&data, march, runs);
        return;
    }
    let mut g = c.benchmark_group("targeting");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // The routine ends with the plan in hand: the statistics, types, rates and plan it built
    // are returned and freed outside the measurement (`iter_with_large_drop`), as a caller
    // keeps them to use the plan. Freeing them takes about 0.08 s more.
    g.bench_function("plan/10M", |b| {
        b.iter_with_large_drop(|| {
            let stats = stats_of(black_box(&data));
            let types = classify(&stats, march, &TypeGrid::medians()).unwrap();
            let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
            let plan = plan_cycle(&stats, &types, &standards, &PlanRules::default()).unwrap();
            black_box(plan.total().expected_cost);
            (stats, types, standards, plan)
        })
    });
    g.bench_function("stats/10M", |b| {
        b.iter(|| black_box(stats_of(black_box(&data)).user_count()))
    });
    g.bench_function("stats-one-by-one/10M", |b| {
        b.iter(|| black_box(stats_one_by_one(black_box(&data)).user_count()))
    });
    let stats = stats_of(&data);
    drop(data);
    let now = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
    g.bench_function("rfm/1M", |b| {
        b.iter(|| black_box(rfm_scores(&stats, now).unwrap().len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
