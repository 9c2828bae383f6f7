//! Rates as exact counts: claim rate, usage rate, conversion rate.
//!
//! A [`Rate`] is a count of successes out of a count of trials — `claimed` out of `offered`,
//! `used` out of `claimed`, `orders with a coupon` out of `visitors` — kept as the two integers,
//! never as a rounded fraction. Rates from partitions of the data (days, shards, templates)
//! merge exactly by adding their counts, and the `f64` value exists only where a statistic
//! needs it.
//!
//! ```
//! use coupons::analytics::Rate;
//! let monday = Rate::new(12, 99)?;
//! let tuesday = Rate::new(5, 83)?;
//! let both = monday.checked_add(tuesday)?;
//! assert_eq!((both.num(), both.den()), (17, 182));
//! assert_eq!(both.to_string(), "17/182 (9.34%)");
//! assert!(Rate::new(3, 2).is_err()); // more successes than trials
//! assert_eq!(Rate::default().value(), None); // 0 out of 0: nothing observed yet
//! # Ok::<(), coupons::analytics::StatsError>(())
//! ```

use std::fmt;

use super::StatsError;

/// Successes out of trials, exactly: `num ≤ den`. `0/0` (the [`Default`]) means nothing was
/// observed yet; it is the identity of [`Rate::checked_add`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "RateRepr", into = "RateRepr")
)]
pub struct Rate {
    num: u64,
    den: u64,
}

impl Rate {
    /// `num` successes out of `den` trials.
    ///
    /// # Errors
    /// [`StatsError::RateAboveOne`] when `num > den`.
    pub fn new(num: u64, den: u64) -> Result<Rate, StatsError> {
        if num > den {
            return Err(StatsError::RateAboveOne { num, den });
        }
        Ok(Rate { num, den })
    }

    /// The successes.
    pub fn num(&self) -> u64 {
        self.num
    }

    /// The trials.
    pub fn den(&self) -> u64 {
        self.den
    }

    /// The trials that did not succeed, `den − num`.
    pub fn failures(&self) -> u64 {
        self.den - self.num
    }

    /// `num / den` as a float for statistics, or `None` when there were no trials.
    pub fn value(&self) -> Option<f64> {
        if self.den == 0 {
            None
        } else {
            Some(self.num as f64 / self.den as f64)
        }
    }

    /// Whether no trials were observed.
    pub fn is_empty(&self) -> bool {
        self.den == 0
    }

    /// Both rates' counts added: how rates of partitions of the data merge into the rate of
    /// the whole.
    ///
    /// # Errors
    /// [`StatsError::Overflow`] when a count passes `u64::MAX`.
    pub fn checked_add(self, other: Rate) -> Result<Rate, StatsError> {
        let num = self
            .num
            .checked_add(other.num)
            .ok_or(StatsError::Overflow {
                what: "rate numerator",
            })?;
        let den = self
            .den
            .checked_add(other.den)
            .ok_or(StatsError::Overflow {
                what: "rate denominator",
            })?;
        Ok(Rate { num, den })
    }
}

impl fmt::Display for Rate {
    /// `num/den (percent)`, the percentage with two decimals (`12/99 (12.12%)`), or `0/0` alone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Some(v) => write!(f, "{}/{} ({:.2}%)", self.num, self.den, v * 100.0),
            None => write!(f, "{}/{}", self.num, self.den),
        }
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct RateRepr {
    num: u64,
    den: u64,
}

#[cfg(feature = "serde")]
impl TryFrom<RateRepr> for Rate {
    type Error = StatsError;
    fn try_from(r: RateRepr) -> Result<Rate, StatsError> {
        Rate::new(r.num, r.den)
    }
}

#[cfg(feature = "serde")]
impl From<Rate> for RateRepr {
    fn from(r: Rate) -> RateRepr {
        RateRepr {
            num: r.num,
            den: r.den,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_checked_and_merge_exactly() {
        assert_eq!(
            Rate::new(3, 2),
            Err(StatsError::RateAboveOne { num: 3, den: 2 })
        );
        let r = Rate::new(2, 8).unwrap();
        assert_eq!(r.value(), Some(0.25));
        assert_eq!(r.failures(), 6);
        assert_eq!(r.checked_add(Rate::default()).unwrap(), r);
        assert!(
            Rate::new(0, u64::MAX)
                .unwrap()
                .checked_add(Rate::new(0, 1).unwrap())
                .is_err()
        );
        assert_eq!(Rate::new(0, 0).unwrap().to_string(), "0/0");
        assert_eq!(Rate::new(1, 3).unwrap().to_string(), "1/3 (33.33%)");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_goes_through_the_checks() {
        let r: Rate = serde_json::from_str(r#"{"num":5,"den":83}"#).unwrap();
        assert_eq!(r, Rate::new(5, 83).unwrap());
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"num":5,"den":83}"#);
        assert!(serde_json::from_str::<Rate>(r#"{"num":84,"den":83}"#).is_err());
    }
}
