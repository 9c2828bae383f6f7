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
//!
//! Campaign metrics — by template, campaign, channel, segment, arm and day — come from folding
//! the event feed into a [`report::Report`]: offers, claims and uses with their rates, the
//! discount given, coupon-driven sales and ROI, order values with and without a coupon, new
//! users among claimers, time from claim to use, expiries, voids, refunds and repurchases.
//! Reports of parts of the feed merge exactly, and a saved report advances with newer events.
//!
//! ```
//! # #[cfg(feature = "stats")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
//! use coupons::analytics::significance::{two_proportions_z_test, relative_uplift, Alpha, Alternative};
//! use coupons::analytics::Rate;
//! use coupons::attributes::Attributes;
//! use coupons::id::UserId;
//!
//! let exp = Experiment::new(ExperimentId::new("spend-200-face-value")?, [
//!     Arm::holdout("holdout", 10)?,   // 10 %: no coupon — measures what a coupon adds at all
//!     Arm::treatment("save-20", 45)?, // 45 %: spend 200, save 20
//!     Arm::treatment("save-25", 45)?, // 45 %: spend 200, save 25
//! ])?
//! .with_total(100)?;
//!
//! let alice = exp.assign(&UserId::new("alice")?);
//! let mut attrs = Attributes::new();
//! alice.record(&mut attrs)?; // experiment = spend-200-face-value, arm = save-25
//! assert_eq!(alice.name().as_str(), "save-25");
//!
//! // Later, from the counts per arm (usage rate: used of claimed):
//! let (treatment, control) = (Rate::new(192, 1200)?, Rate::new(144, 1200)?);
//! let test = two_proportions_z_test(treatment, control, Alternative::TwoSided, Alpha::FIVE_PERCENT)?;
//! let uplift = relative_uplift(treatment, control, Alpha::FIVE_PERCENT)?;
//! assert_eq!(test.to_string(), "difference +0.0400 (95% CI [0.0123, 0.0677]), z = 2.824, p = 0.0047");
//! assert_eq!(uplift.to_string(), "+33.33% (95% CI [+6.57%, +60.09%])");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "stats"))]
//! # fn main() {}
//! ```

mod error;
pub mod experiment;
pub mod rate;
pub mod report;
#[cfg(feature = "stats")]
pub mod significance;
pub mod siphash;
pub mod summary;

pub use error::StatsError;
pub use rate::Rate;
pub use summary::Summary;
