//! Budget-allocation benchmarks (multiple-choice knapsack: at most one coupon per user).
//!
//! A campaign of 1,000,000 users with 5 options each: a free option (double points, no money)
//! and coupons of 5, 10, 20 and 50 yuan whose cost is face value × redemption rate and whose
//! value has diminishing, sometimes negative returns (the big coupons are often dominated).
//! Users come from 40 customer types, so most users share their options with many others
//! (ties at the price), and 3 in 4 belong to one of three segments.
//!
//! - `budget/allocate/1m_x5_segments`: a total budget plus budgets for two segments, all
//!   binding;
//! - `budget/allocate/1m_x5_total`: the total budget only;
//! - `budget/allocate/1m_x5_identical`: every user has the same five options (one giant tie),
//!   total budget only.
//!
//! Each run also checks that the plan is within 1 % of its dual bound, and prints the CPU time
//! of one call (from `/proc/thread-self/schedstat`: not inflated by other processes).
//!
//! Run: `cargo bench -p coupons-benches --bench budget` (or `-- 1m_x5_segments`).

use std::hint::black_box;
use std::time::Duration;

use coupons::budget::{Budget, Candidates, Choice, allocate};
use coupons::id::{SegmentId, UserId};
use coupons::money::{Currency, Money};
use criterion::{Criterion, criterion_group, criterion_main};

const CNY: Currency = Currency::CNY;
const USERS: usize = 1_000_000;

fn fen(n: i64) -> Money {
    Money::from_minor(n, CNY)
}

fn segments() -> [SegmentId; 3] {
    [
        SegmentId::new("new").unwrap(),
        SegmentId::new("active").unwrap(),
        SegmentId::new("churn-risk").unwrap(),
    ]
}

fn campaign(users: usize, kinds: u64) -> Candidates {
    let mut c = Candidates::with_capacity(CNY, users, users * 5);
    let segments = segments();
    let mut state: u64 = 42;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let faces = [500i64, 1000, 2000, 5000];
    let mut choices = Vec::with_capacity(5);
    for u in 0..users {
        choices.clear();
        let kind = next() % kinds;
        let propensity = 0.02 + 0.01 * (kind % 10) as f64;
        let basket = 8_000 + 2_000 * (kind / 10) as i64;
        choices.push(Choice::new(0.2 * propensity * basket as f64 / 100.0, fen(0)).unwrap());
        for (j, &face) in faces.iter().enumerate() {
            let redeem = (propensity * (1.0 + j as f64)).min(0.9);
            let cost = (face as f64 * redeem).round() as i64;
            let uplift = redeem * basket as f64 * 0.3 / 100.0 - 0.4 * j as f64;
            choices.push(Choice::new(uplift, fen(cost)).unwrap());
        }
        let seg = match next() % 4 {
            0 => None,
            s => Some(&segments[(s - 1) as usize]),
        };
        c.push(UserId::new(format!("user-{u}")).unwrap(), seg, &choices)
            .unwrap();
    }
    c
}

/// CPU time this thread has run, in nanoseconds (Linux), to report a figure that does not
/// depend on how busy the machine is.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn bench_allocate(c: &mut Criterion) {
    let yuan = |n: i64| fen(n * 100);
    let [new, _, risk] = segments();
    let total = Budget::total(yuan(USERS as i64 / 2)).unwrap();
    let with_segments = total
        .clone()
        .with_segment(new, yuan(USERS as i64 / 20))
        .unwrap()
        .with_segment(risk, yuan(USERS as i64 / 10))
        .unwrap();
    let mixed = campaign(USERS, 40);
    let identical = campaign(USERS, 1);
    let mut g = c.benchmark_group("budget/allocate");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (label, cands, budget) in [
        ("1m_x5_segments", &mixed, &with_segments),
        ("1m_x5_total", &mixed, &total),
        ("1m_x5_identical", &identical, &total),
    ] {
        let before = cpu_ns();
        let plan = allocate(cands, budget).unwrap();
        let cpu = cpu_ns().zip(before).map_or("?".to_owned(), |(a, b)| {
            format!("{:.0}", (a - b) as f64 / 1e6)
        });
        assert!(
            plan.relative_gap() <= 0.01,
            "{label}: gap {}",
            plan.relative_gap()
        );
        eprintln!(
            "{label}: {cpu} ms of CPU (first call); value {:.2}, bound {:.2}, gap {:.2e}, {} users served, cost {}",
            plan.value,
            plan.bound,
            plan.relative_gap(),
            plan.count(),
            plan.cost
        );
        g.bench_function(label, |b| {
            b.iter(|| black_box(allocate(black_box(cands), black_box(budget)).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_allocate);
criterion_main!(benches);
