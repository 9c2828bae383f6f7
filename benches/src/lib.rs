//! Benchmarks live in `benches/`; run them with `cargo bench -p coupons-benches`.
#![forbid(unsafe_code)]
