//! Sample summaries — count, mean and variance — for metrics such as order value.
//!
//! A [`Summary`] is built one observation at a time (Welford's update, numerically stable for
//! long streams) or from published figures, and summaries of partitions merge into the summary
//! of the whole (Chan, Golub & LeVeque's pairwise formula), so a report can be computed per
//! shard or per day and combined. Values are `f64`: a summary is a statistic, not money.
//!
//! ```
//! use coupons::analytics::Summary;
//! let a = Summary::from_samples(&[10.0, 12.0, 14.0])?;
//! let b = Summary::from_samples(&[20.0, 22.0])?;
//! let all = a.merge(&b)?;
//! assert_eq!(all.n(), 5);
//! assert_eq!(all.mean(), Some(15.6));
//! let direct = Summary::from_samples(&[10.0, 12.0, 14.0, 20.0, 22.0])?;
//! assert!((all.variance().unwrap() - direct.variance().unwrap()).abs() < 1e-12);
//! # Ok::<(), coupons::analytics::StatsError>(())
//! ```

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::StatsError;

/// Count, mean and sum of squared deviations of a sample.
///
/// The sample variance (denominator `n − 1`) exists from two observations on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "SummaryRepr", into = "SummaryRepr")
)]
pub struct Summary {
    n: u64,
    mean: f64,
    /// Sum of squared deviations from the mean.
    m2: f64,
}

fn finite(what: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::NonFinite { what, value })
    }
}

impl Summary {
    /// The summary of no observations.
    pub const fn new() -> Summary {
        Summary {
            n: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// The summary of `samples`.
    ///
    /// # Errors
    /// [`StatsError::NonFinite`] when a sample (or the running mean or variance) is not
    /// finite.
    pub fn from_samples(samples: &[f64]) -> Result<Summary, StatsError> {
        let mut s = Summary::new();
        for &x in samples {
            s.push(x)?;
        }
        Ok(s)
    }

    /// A summary from published figures: `n` observations with this `mean` and sample
    /// `variance` (denominator `n − 1`).
    ///
    /// ```
    /// use coupons::analytics::Summary;
    /// let s = Summary::from_moments(40, 118.5, 2_304.0)?;
    /// assert_eq!(s.std_dev(), Some(48.0));
    /// # Ok::<(), coupons::analytics::StatsError>(())
    /// ```
    ///
    /// # Errors
    /// - [`StatsError::NonFinite`] when the mean or variance is not finite;
    /// - [`StatsError::OutOfRange`] when the variance is negative, when `n < 2` and the
    ///   variance is not 0 (one observation has no variance), or when `n = 0` and the mean is
    ///   not 0;
    /// - [`StatsError::Overflow`] when the sum of squares is not finite.
    pub fn from_moments(n: u64, mean: f64, variance: f64) -> Result<Summary, StatsError> {
        finite("mean", mean)?;
        finite("variance", variance)?;
        if variance < 0.0 {
            return Err(StatsError::OutOfRange {
                what: "variance",
                value: variance,
                range: "[0, ∞)",
            });
        }
        if n < 2 && variance != 0.0 {
            return Err(StatsError::OutOfRange {
                what: "variance of fewer than two observations",
                value: variance,
                range: "{0}",
            });
        }
        if n == 0 && mean != 0.0 {
            return Err(StatsError::OutOfRange {
                what: "mean of no observations",
                value: mean,
                range: "{0}",
            });
        }
        let m2 = variance * (n.saturating_sub(1)) as f64;
        if !m2.is_finite() {
            return Err(StatsError::Overflow {
                what: "sum of squared deviations",
            });
        }
        Ok(Summary { n, mean, m2 })
    }

    /// Adds one observation. On error the summary is unchanged.
    ///
    /// # Errors
    /// [`StatsError::NonFinite`] when `x`, or the updated mean or variance, is not finite;
    /// [`StatsError::Overflow`] past `u64::MAX` observations.
    pub fn push(&mut self, x: f64) -> Result<(), StatsError> {
        finite("observation", x)?;
        let n = self.n.checked_add(1).ok_or(StatsError::Overflow {
            what: "observation count",
        })?;
        let delta = finite("deviation from the mean", x - self.mean)?;
        let mean = finite("mean", self.mean + delta / n as f64)?;
        let m2 = finite("sum of squared deviations", self.m2 + delta * (x - mean))?;
        *self = Summary { n, mean, m2 };
        Ok(())
    }

    /// Adds one exact amount (an order value, say) as an observation.
    ///
    /// # Errors
    /// As [`Summary::push`].
    pub fn push_decimal(&mut self, x: Decimal) -> Result<(), StatsError> {
        // Every Decimal is within f64's range; `to_f64` rounds to the nearest.
        self.push(x.to_f64().unwrap_or(f64::NAN))
    }

    /// The summary of both samples together.
    ///
    /// # Errors
    /// [`StatsError::Overflow`] past `u64::MAX` observations; [`StatsError::NonFinite`] when
    /// the merged mean or variance is not finite.
    pub fn merge(&self, other: &Summary) -> Result<Summary, StatsError> {
        if other.n == 0 {
            return Ok(*self);
        }
        if self.n == 0 {
            return Ok(*other);
        }
        let n = self.n.checked_add(other.n).ok_or(StatsError::Overflow {
            what: "observation count",
        })?;
        let (na, nb, nn) = (self.n as f64, other.n as f64, n as f64);
        let delta = finite("difference of means", other.mean - self.mean)?;
        let mean = finite("mean", self.mean + delta * (nb / nn))?;
        let m2 = finite(
            "sum of squared deviations",
            self.m2 + other.m2 + delta * delta * (na / nn) * nb,
        )?;
        Ok(Summary { n, mean, m2 })
    }

    /// How many observations.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// The mean, or `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean)
    }

    /// The sample variance (denominator `n − 1`), or `None` with fewer than two observations.
    pub fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| self.m2 / (self.n - 1) as f64)
    }

    /// The sample standard deviation, or `None` with fewer than two observations.
    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    /// The variance of the mean, `variance / n`, or `None` with fewer than two observations.
    pub fn variance_of_mean(&self) -> Option<f64> {
        self.variance().map(|v| v / self.n as f64)
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct SummaryRepr {
    n: u64,
    mean: f64,
    variance: f64,
}

#[cfg(feature = "serde")]
impl TryFrom<SummaryRepr> for Summary {
    type Error = StatsError;
    fn try_from(r: SummaryRepr) -> Result<Summary, StatsError> {
        Summary::from_moments(r.n, r.mean, r.variance)
    }
}

#[cfg(feature = "serde")]
impl From<Summary> for SummaryRepr {
    fn from(s: Summary) -> SummaryRepr {
        SummaryRepr {
            n: s.n,
            mean: s.mean,
            variance: s.variance().unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_the_two_pass_formula() {
        let xs = [4.0, 7.0, 13.0, 16.0];
        let s = Summary::from_samples(&xs).unwrap();
        assert_eq!(s.n(), 4);
        assert_eq!(s.mean(), Some(10.0));
        // Σ(x − 10)² = 36 + 9 + 9 + 36 = 90, over n − 1 = 3.
        assert_eq!(s.variance(), Some(30.0));
    }

    #[test]
    fn large_offsets_keep_their_precision() {
        // The naive Σx² − n·mean² formula loses every digit here.
        let xs = [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0];
        let s = Summary::from_samples(&xs).unwrap();
        assert!((s.variance().unwrap() - 30.0).abs() < 1e-6);
    }

    #[test]
    fn bad_input_is_refused_and_leaves_the_summary_alone() {
        let mut s = Summary::from_samples(&[1.0, 2.0]).unwrap();
        let before = s;
        assert!(matches!(
            s.push(f64::NAN),
            Err(StatsError::NonFinite { .. })
        ));
        assert!(s.push(f64::INFINITY).is_err());
        s.push(1e150).unwrap();
        // The sum of squared deviations would pass f64::MAX.
        assert!(s.push(-1e200).is_err());
        assert_eq!(s.n(), 3);
        assert_ne!(s, before);
        assert!(Summary::from_moments(1, 3.0, 1.0).is_err());
        assert!(Summary::from_moments(5, 3.0, -1.0).is_err());
        assert!(Summary::from_moments(0, 3.0, 0.0).is_err());
        assert!(Summary::from_moments(5, f64::NAN, 1.0).is_err());
        assert_eq!(Summary::new().mean(), None);
        assert_eq!(Summary::from_samples(&[3.0]).unwrap().variance(), None);
    }

    #[test]
    fn decimals_enter_as_their_nearest_float() {
        let mut s = Summary::new();
        s.push_decimal(Decimal::new(1999, 2)).unwrap();
        s.push_decimal(Decimal::new(2001, 2)).unwrap();
        assert!((s.mean().unwrap() - 20.0).abs() < 1e-12);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trips_through_the_checks() {
        let s = Summary::from_moments(10, 0.75, 3.2005).unwrap();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"n":10,"mean":0.75,"variance":3.2005}"#);
        let back: Summary = serde_json::from_str(&j).unwrap();
        assert!((back.variance().unwrap() - 3.2005).abs() < 1e-12);
        assert!(serde_json::from_str::<Summary>(r#"{"n":10,"mean":0.75,"variance":-1}"#).is_err());
    }
}
