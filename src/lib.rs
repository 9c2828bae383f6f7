//! # coupons
//!
//! An embeddable coupon engine (guide to be expanded).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cart;
pub mod checkout;
pub mod id;
pub mod lifecycle;
pub mod money;
pub mod repository;
pub mod rule;
pub mod service;
#[cfg(feature = "testkit")]
pub mod testkit;
