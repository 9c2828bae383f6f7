//! Experiment benchmarks: assignment and the significance calculations.
//!
//! - `analytics/assign/{2,3,64}-arms`: assigning one user (ids `user-0000000`…, 24 bytes of
//!   hashed message with the experiment id and salt) to an arm; the figure is per user.
//! - `analytics/z-test`, `analytics/welch`: one test from counts / sample summaries.
//! - `analytics/sample-size/{proportions,means}`: one sample size (the means one solves the
//!   non-central t by bisection).
//! - `analytics/srm/3-arms`: one sample-ratio-mismatch check.
//!
//! Run: `cargo bench -p coupons-benches --bench analytics` (or `-- assign`).

use std::hint::black_box;

use coupons::analytics::experiment::{Arm, Experiment, ExperimentId, Role};
use coupons::analytics::significance::{
    Alpha, Alternative, Design, sample_ratio_mismatch, sample_size_means, sample_size_proportions,
    two_proportions_z_test, welch_t_test,
};
use coupons::analytics::{Rate, Summary};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn experiment(arms: usize) -> Experiment {
    let arms = (0..arms).map(|i| {
        let role = if i == 0 {
            Role::Control
        } else {
            Role::Treatment
        };
        Arm::new(format!("arm-{i}"), role, (i % 7 + 1) as i64).unwrap()
    });
    Experiment::new(ExperimentId::new("spend-200-face-value").unwrap(), arms)
        .unwrap()
        .with_salt("2026-05")
        .unwrap()
}

fn assign(c: &mut Criterion) {
    let users: Vec<String> = (0..4096).map(|i| format!("user-{i:07}")).collect();
    let mut g = c.benchmark_group("analytics/assign");
    g.throughput(Throughput::Elements(1));
    for arms in [2usize, 3, 64] {
        let e = experiment(arms);
        let mut i = 0usize;
        g.bench_function(format!("{arms}-arms"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(e.assign_unit(black_box(&users[i])).index())
            })
        });
    }
    g.finish();
}

fn tests(c: &mut Criterion) {
    let mut g = c.benchmark_group("analytics");
    let (a, b) = (Rate::new(192, 1200).unwrap(), Rate::new(144, 1200).unwrap());
    g.bench_function("z-test", |bch| {
        bch.iter(|| {
            two_proportions_z_test(
                black_box(a),
                black_box(b),
                Alternative::TwoSided,
                Alpha::FIVE_PERCENT,
            )
            .unwrap()
        })
    });
    let (sa, sb) = (
        Summary::from_moments(249, 20.14458, 41.148).unwrap(),
        Summary::from_moments(79, 30.48101, 37.304).unwrap(),
    );
    g.bench_function("welch", |bch| {
        bch.iter(|| {
            welch_t_test(
                black_box(&sa),
                black_box(&sb),
                Alternative::TwoSided,
                Alpha::FIVE_PERCENT,
            )
            .unwrap()
        })
    });
    let design = Design::default();
    g.bench_function("sample-size/proportions", |bch| {
        bch.iter(|| sample_size_proportions(black_box(0.12), black_box(0.14), &design).unwrap())
    });
    g.bench_function("sample-size/means", |bch| {
        bch.iter(|| sample_size_means(black_box(5.0), black_box(80.0), &design).unwrap())
    });
    let three = experiment(3);
    g.bench_function("srm/3-arms", |bch| {
        bch.iter(|| {
            sample_ratio_mismatch(
                &three,
                black_box(&[10_210, 19_790, 30_001]),
                Alpha::ONE_PER_MILLE,
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, assign, tests);
criterion_main!(benches);
