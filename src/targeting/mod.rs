//! Targeting: who gets which coupon, computed from order history.
//!
//! Pure functions over orders; nothing here reads a clock or touches storage.

pub mod churn;
