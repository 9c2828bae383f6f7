//! Churn-model benchmarks (BG/NBD).
//!
//! - `churn/fit/100k_days`: fit on 100,000 customers drawn from the model with CDNOW-like
//!   parameters, acquired over 12 weeks and observed to week 39, times in whole days expressed
//!   in weeks (how real summaries are built: many customers share a history).
//! - `churn/fit/100k_exact`: the same customers with exact (continuous) times, so nearly every
//!   customer's (recency, age) is distinct — the grouping cannot help.
//! - `churn/score/100k`: P(alive) and the expected purchases in the next 39 weeks for each of
//!   the 100,000 customers.
//!
//! Each fit workload first prints the CPU time of one fit (from `/proc/thread-self/schedstat`:
//! not inflated by other processes) and the estimate.
//!
//! Run: `cargo bench -p coupons-benches --bench churn` (or `-- fit/100k_days`).

use std::hint::black_box;
use std::time::Duration;

use coupons::targeting::churn::{BgNbd, Summary};
use criterion::{Criterion, criterion_group, criterion_main};

/// splitmix64, uniform in (0, 1).
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let z = self.normal();
            let v = (1.0 + c * z).powi(3);
            if v > 0.0 && self.uniform().ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }
}

/// Customers drawn from the model; `days` rounds every time to whole days.
fn customers(n: usize, days: bool) -> Vec<Summary> {
    let (r, alpha, a, b) = (0.24, 4.4, 0.79, 2.43);
    let mut rng = Rng(2026);
    let round = |t: f64| if days { (t * 7.0).floor() / 7.0 } else { t };
    (0..n)
        .map(|_| {
            let lambda = rng.gamma(r) / alpha;
            let ga = rng.gamma(a);
            let p = ga / (ga + rng.gamma(b));
            let age = 39.0 - 12.0 * rng.uniform();
            let (mut t, mut x, mut tx) = (0.0, 0u32, 0.0);
            loop {
                t += -rng.uniform().ln() / lambda;
                if t > age {
                    break;
                }
                x += 1;
                tx = t;
                if rng.uniform() < p {
                    break;
                }
            }
            let age = round(age);
            Summary::new(x, round(tx).min(age), age).unwrap()
        })
        .collect()
}

/// CPU time this thread has run, in nanoseconds (Linux), to report a figure that does not
/// depend on how busy the machine is.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn bench_fit(c: &mut Criterion) {
    let mut g = c.benchmark_group("churn/fit");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (label, days) in [("100k_days", true), ("100k_exact", false)] {
        let cs = customers(100_000, days);
        let before = cpu_ns();
        let fit = BgNbd::fit(&cs).unwrap();
        let cpu = cpu_ns().zip(before).map_or("?".to_owned(), |(a, b)| {
            format!("{:.0}", (a - b) as f64 / 1e6)
        });
        eprintln!(
            "{label}: {cpu} ms of CPU (first call), {} iterations, gradient {:.1e}, {:?}",
            fit.iterations, fit.gradient, fit.model
        );
        g.bench_function(label, |bench| {
            bench.iter(|| black_box(BgNbd::fit(black_box(&cs)).unwrap()))
        });
    }
    g.finish();
}

fn bench_score(c: &mut Criterion) {
    let cs = customers(100_000, true);
    let m = BgNbd::fit(&cs).unwrap().model;
    let mut g = c.benchmark_group("churn/score");
    g.sample_size(10);
    g.bench_function("100k", |bench| {
        bench.iter(|| {
            let mut total = 0.0;
            for c in &cs {
                total += m.probability_alive(c) + m.expected_purchases(c, 39.0).unwrap();
            }
            black_box(total)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_fit, bench_score);
criterion_main!(benches);
