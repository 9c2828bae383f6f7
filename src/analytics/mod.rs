//! Campaign analytics and A/B experiments.
//!
//! An experiment answers "does this coupon work better than that one — or better than none?".
//! This module gives the pieces, each a pure function:
//!
//! 1. **Assign** every user to an arm with [`experiment::Experiment`]: a documented hash of
//!    the experiment and the user, so the same user gets the same arm in every process, on
//!    every machine and in every release, with nothing stored. A holdout arm receives no
//!    coupon and measures what the coupon itself adds.
//! 2. **Record** the arm on the coupon ([`experiment::Assignment::record`] writes the
//!    attributes `experiment` and `arm`), so every later event of the coupon can be counted
//!    per arm.
//! 3. **Count** exactly: a [`Rate`] is successes out of trials kept as two integers (claimed of
//!    offered, used of claimed), a [`Summary`] is the count, mean and variance of a metric such
//!    as order value; both merge across partitions of the data.
//! 4. **Decide** with `significance` (feature `stats`): the two-proportion z-test, Welch's
//!    t-test, the relative uplift with its interval, the sample size an experiment needs, and
//!    the sample-ratio-mismatch check that warns when the arms' sizes betray a broken
//!    assignment.
//!
//! ```
//! use coupons::analytics::Rate;
//! use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
//! use coupons::id::UserId;
//!
//! let exp = Experiment::new(ExperimentId::new("new-user-gift")?, [
//!     Arm::control("save-10", 50)?,
//!     Arm::treatment("save-15", 50)?,
//! ])?;
//! let mut claimed = [0u64; 2];
//! let mut offered = [0u64; 2];
//! for i in 0..1000 {
//!     let user = UserId::new(format!("user-{i}"))?;
//!     let arm = exp.assign(&user).index();
//!     offered[arm] += 1;
//!     if i % 3 == 0 { claimed[arm] += 1; } // whatever the users did
//! }
//! let control = Rate::new(claimed[0], offered[0])?;
//! let treatment = Rate::new(claimed[1], offered[1])?;
//! assert_eq!(control.den() + treatment.den(), 1000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the `stats` feature, the `significance` module turns those counts into decisions.

mod error;
pub mod experiment;
pub mod rate;
#[cfg(feature = "stats")]
pub mod significance;
pub mod siphash;
pub mod summary;

pub use error::StatsError;
pub use rate::Rate;
pub use summary::Summary;
