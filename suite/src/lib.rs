//! The property, model and scenario suites of the `coupons` crate live in `tests/`: this
//! package exists so that their heavy dependencies (proptest) stay out of the root crate's
//! build. `cargo test` at the repository root runs them.
#![forbid(unsafe_code)]
