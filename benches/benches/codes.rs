//! Code benchmarks: generating batches and reading typed codes.
//!
//! - `codes/generate/1000000`: one million unique codes of the default format
//!   (`####-####-####`, Crockford base 32, 11 random characters and a check character) from a
//!   seeded SplitMix64 source — drawing, uniqueness table, check character and the strings.
//! - `codes/generate_batch/1000000`: the same into one compact `CodeBatch` (one string).
//! - `codes/generate_os/1000000`: `Vec<Code>` from the operating system's source (`OsRandom`).
//! - `codes/parse/{canonical,typed,fullwidth,typo}`: normalising and verifying one code of
//!   `SALE-####-####-####`: as printed; lower case with spaces; typed on a Chinese keyboard
//!   (full-width letters, ideographic space, `——`); and with two neighbours swapped (refused
//!   by the check character). Each iteration reads one of 1,024 distinct codes, so the
//!   figure is not one string's branch history.
//!
//! Run: `cargo bench -p coupons-benches --bench codes` (or `-- codes/parse`).

use std::hint::black_box;
use std::time::Duration;

use coupons::codes::{Code, CodeFormat, OsRandom, RandomError, RandomSource};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// SplitMix64: reproducible, fast; for benchmarks and tests only.
struct SplitMix(u64);

impl RandomSource for SplitMix {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

fn generate(c: &mut Criterion) {
    let format = CodeFormat::default();
    let mut group = c.benchmark_group("codes");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1_000_000));
    let mut seed = 0;
    group.bench_function("generate/1000000", |b| {
        b.iter(|| {
            seed += 1;
            let codes = format.generate(1_000_000, SplitMix(seed)).unwrap();
            black_box(codes.len())
        })
    });
    group.bench_function("generate_batch/1000000", |b| {
        b.iter(|| {
            seed += 1;
            let batch = format.generate_batch(1_000_000, SplitMix(seed)).unwrap();
            black_box(batch.len())
        })
    });
    group.bench_function("generate_os/1000000", |b| {
        b.iter(|| {
            let codes = format.generate(1_000_000, OsRandom).unwrap();
            black_box(codes.len())
        })
    });
    group.finish();
}

/// The code as a buyer types it on a Chinese keyboard: full-width, ideographic space, `——`.
fn full_width(code: &Code) -> String {
    code.as_str()
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '-' if i % 2 == 0 => "\u{3000}".to_owned(),
            '-' => "——".to_owned(),
            c => char::from_u32(c as u32 + 0xFEE0).unwrap().to_string(),
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let format = CodeFormat::from_pattern("SALE-####-####-####").unwrap();
    let codes = format.generate(1024, SplitMix(7)).unwrap();
    let canonical: Vec<String> = codes.iter().map(|c| c.to_string()).collect();
    let typed: Vec<String> = codes
        .iter()
        .map(|c| format!(" {} ", c.as_str().to_lowercase().replace('-', " ")))
        .collect();
    let wide: Vec<String> = codes.iter().map(full_width).collect();
    let typo: Vec<String> = codes
        .iter()
        .map(|c| {
            let mut s: Vec<char> = c.as_str().chars().collect();
            // Swap the first two different neighbours of the random part.
            let i = (5..s.len() - 1)
                .find(|&i| s[i] != s[i + 1] && s[i] != '-' && s[i + 1] != '-')
                .unwrap();
            s.swap(i, i + 1);
            s.into_iter().collect()
        })
        .collect();
    assert!(typo.iter().all(|t| format.parse(t).is_err()));
    assert!(
        wide.iter()
            .zip(&codes)
            .all(|(w, c)| &format.parse(w).unwrap() == c)
    );

    let mut group = c.benchmark_group("codes/parse");
    group.throughput(Throughput::Elements(1));
    for (name, inputs) in [
        ("canonical", &canonical),
        ("typed", &typed),
        ("fullwidth", &wide),
        ("typo", &typo),
    ] {
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(format.parse(black_box(&inputs[i]))).is_ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, generate, parse);
criterion_main!(benches);
