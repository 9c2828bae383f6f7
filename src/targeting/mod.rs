//! Targeting: who gets which coupon, computed from order history.
//!
//! Pure functions over orders; nothing here reads a clock or touches storage — `now` and the
//! cycle's UTC offset are always given. The pipeline of a new cycle's plan:
//!
//! 1. [`CycleStats`] — per user and cycle: orders, GMV, average order value, discount rate.
//!    Streamed (memory grows with users, not orders) and *mergeable*: partial statistics of any
//!    split of the orders merge into exactly the whole, and serialise to travel between
//!    threads or machines ([`stats`]).
//! 2. [`classify`] — each user's consumption type from last cycle's order count × average
//!    order value: four types split at the medians by default, a grid or fixed thresholds of
//!    your own, plus `new` and `inactive` ([`types`]).
//! 3. [`standard_rates`] — the standard discount rate of each type: its aggregate rate (total
//!    discount ÷ total gross, exact) or a documented alternative ([`standard`]).
//! 4. [`plan_cycle`] — each user's rate moved toward their type's standard within a step, a
//!    floor and a ceiling, a concrete coupon, and the expected cost per type and in total
//!    against last cycle's ([`plan`]), with coupon parameters from [`suggest`](fn@suggest) ([`suggest`
//!    module](mod@suggest)).
//! 5. [`lifecycle_segments`] and [`rfm_scores`] — new, active, high value, dormant and churn
//!    risk, and RFM quintiles with their named segments, ready for
//!    [`Buyer::segments`](crate::cart::Buyer) ([`segments`]). The churn-risk rule takes each
//!    user's probability of being alive from the caller, for example from [`churn`]'s BG/NBD
//!    model.
//!
//! **Exactness.** Money is summed in integer minor units and every rate of an order, a user or
//! a type is the exact fraction discount ÷ gross ([`DiscountRate`]). Quantile cut points are
//! observed values (nearest rank), so exact too. Planned rates are decimals with six places
//! (millionths); the only `f64` is the trimmed-mean alternative and the caller's churn
//! probabilities.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::*;
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let at = |m, d| Utc.with_ymd_and_hms(2026, m, d, 4, 0, 0).unwrap();
//! let mut stats = CycleStats::new(cycles, cny);
//! for (user, when, gross, discount) in [(1u64, at(2, 1), 100, 0), (2, at(2, 2), 100, 0),
//!                                        (1, at(3, 1), 100, 30), (2, at(3, 2), 100, 2), (3, at(3, 3), 80, 8)] {
//!     stats.add(&Order::new(user, when, yuan(gross), yuan(discount), yuan(gross - discount), discount > 0)?)?;
//! }
//! let march = cycles.index_of(at(3, 1));
//! let types = classify(&stats, march, &TypeGrid::medians())?;
//! let standards = standard_rates(&stats, &types, &StandardRule::default())?;
//! let plan = plan_cycle(&stats, &types, &standards, &PlanRules::default())?;
//! assert_eq!(plan.users().len(), 3);
//! assert_eq!(plan.user(&1).unwrap().change(), Move::Down); // 30 % off is well above standard
//! # Ok::<(), TargetingError>(())
//! ```

pub mod churn;
pub mod cycle;
mod error;
mod hash;
pub mod plan;
pub mod rate;
pub mod segments;
pub mod standard;
pub mod stats;
pub mod suggest;
pub mod types;

pub use cycle::{CycleIndex, Cycles};
pub use error::TargetingError;
pub use plan::{CostSummary, CyclePlan, InactivePolicy, Move, PlanRules, UserPlan, plan_cycle};
pub use rate::DiscountRate;
pub use segments::{
    Lifecycle, LifecycleRules, RfmScore, RfmSegment, Segments, lifecycle_segments, quintile_scores,
    rfm_scores,
};
pub use standard::{
    Adjustment, RateMethod, StandardRate, StandardRates, StandardRule, standard_rates,
};
pub use stats::{CycleStats, CycleTotals, KeyFrom, MinorOrder, Order, UserHistory, UserKey};
pub use suggest::{CouponSuggestion, PriceStep, SuggestRules, suggest};
pub use types::{Band, ConsumptionType, ConsumptionTypes, Cuts, TypeGrid, classify};
