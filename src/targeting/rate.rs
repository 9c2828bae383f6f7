//! Discount rates: discount ÷ gross, kept as the exact fraction of two amounts.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use rust_decimal::{Decimal, RoundingStrategy};

use super::error::TargetingError;
use crate::money::Money;

/// A discount rate, `discount ÷ gross`, held as the exact fraction of the two amounts in minor
/// units: `3.00` off `9.00` is exactly one third, compared and ordered exactly (by cross
/// multiplication), never through a rounded decimal. [`DiscountRate::to_decimal`] rounds only
/// when a decimal is asked for.
///
/// Rates are in `[0, 1]`: a discount is never negative nor above its gross amount.
///
/// ```
/// use coupons::money::{Currency, Money};
/// use coupons::targeting::DiscountRate;
/// let cny = Currency::CNY;
/// let third = DiscountRate::new(Money::from_minor(300, cny), Money::from_minor(900, cny))?.unwrap();
/// let also = DiscountRate::new(Money::from_minor(1, cny), Money::from_minor(3, cny))?.unwrap();
/// assert_eq!(third, also);
/// assert_eq!(third.to_decimal(4).to_string(), "0.3333");
/// // No gross, no rate.
/// assert_eq!(DiscountRate::new(Money::zero(cny), Money::zero(cny))?, None);
/// # Ok::<(), coupons::targeting::TargetingError>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "RateRepr", into = "RateRepr")
)]
pub struct DiscountRate {
    discount: i64,
    gross: i64,
}

impl DiscountRate {
    /// `discount ÷ gross`, or `None` when `gross` is zero.
    ///
    /// # Errors
    /// [`TargetingError::CurrencyMismatch`] when the currencies differ,
    /// [`TargetingError::Negative`] for a negative amount,
    /// [`TargetingError::DiscountAboveGross`], and [`TargetingError::Money`] for amounts beyond
    /// `i64` minor units.
    pub fn new(discount: Money, gross: Money) -> Result<Option<DiscountRate>, TargetingError> {
        if discount.currency() != gross.currency() {
            return Err(TargetingError::CurrencyMismatch {
                field: "rate.discount",
                expected: gross.currency(),
                found: discount.currency(),
            });
        }
        for (field, value) in [("rate.discount", discount), ("rate.gross", gross)] {
            if value.is_negative() {
                return Err(TargetingError::Negative { field, value });
            }
        }
        if discount > gross {
            return Err(TargetingError::DiscountAboveGross { gross, discount });
        }
        Ok(DiscountRate::from_minor(
            discount.to_minor()?,
            gross.to_minor()?,
        ))
    }

    /// From minor units; callers guarantee `0 ≤ discount ≤ gross`.
    pub(crate) fn from_minor(discount: i64, gross: i64) -> Option<DiscountRate> {
        (gross > 0 && discount >= 0 && discount <= gross)
            .then_some(DiscountRate { discount, gross })
    }

    /// The numerator, in minor units.
    pub fn discount_minor(&self) -> i64 {
        self.discount
    }

    /// The denominator, in minor units (above zero).
    pub fn gross_minor(&self) -> i64 {
        self.gross
    }

    /// The rate as a decimal rounded half-even to `dp` decimal places (at most 20).
    pub fn to_decimal(self, dp: u32) -> Decimal {
        let dp = dp.min(20);
        // 28 significant digits, then the requested rounding.
        let exact = Decimal::from(self.discount) / Decimal::from(self.gross);
        exact.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven)
    }

    /// The rate in millionths, rounded half-even (the unit plans compute in).
    pub(crate) fn to_micros(self) -> i64 {
        div_round_half_even(
            i128::from(self.discount) * 1_000_000,
            i128::from(self.gross),
        )
    }

    /// The rate as an `f64` (for statistics such as a trimmed mean).
    pub fn to_f64(self) -> f64 {
        self.discount as f64 / self.gross as f64
    }

    /// Compares with a rate in millionths, exactly.
    pub(crate) fn cmp_micros(&self, micros: i64) -> Ordering {
        (i128::from(self.discount) * 1_000_000).cmp(&(i128::from(micros) * i128::from(self.gross)))
    }
}

/// `n / d` rounded half to even, `d > 0`.
pub(crate) fn div_round_half_even(n: i128, d: i128) -> i64 {
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = 2 * r;
    let q = match twice.cmp(&d) {
        Ordering::Less => q,
        Ordering::Greater => q + 1,
        Ordering::Equal => q + (q & 1),
    };
    i64::try_from(q).unwrap_or(if q > 0 { i64::MAX } else { i64::MIN })
}

impl Default for DiscountRate {
    /// A rate of zero.
    fn default() -> Self {
        DiscountRate {
            discount: 0,
            gross: 1,
        }
    }
}

impl PartialEq for DiscountRate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DiscountRate {}

impl PartialOrd for DiscountRate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for DiscountRate {
    fn cmp(&self, other: &Self) -> Ordering {
        (i128::from(self.discount) * i128::from(other.gross))
            .cmp(&(i128::from(other.discount) * i128::from(self.gross)))
    }
}

impl Hash for DiscountRate {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let g = gcd(self.discount.unsigned_abs(), self.gross.unsigned_abs()).max(1);
        (self.discount.unsigned_abs() / g).hash(state);
        (self.gross.unsigned_abs() / g).hash(state);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl fmt::Display for DiscountRate {
    /// As a percentage with two decimals: `33.33%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}%",
            (self.to_decimal(4) * Decimal::ONE_HUNDRED).round_dp(2)
        )
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RateRepr {
    discount_minor: i64,
    gross_minor: i64,
}

#[cfg(feature = "serde")]
impl TryFrom<RateRepr> for DiscountRate {
    type Error = TargetingError;
    fn try_from(r: RateRepr) -> Result<Self, TargetingError> {
        DiscountRate::from_minor(r.discount_minor, r.gross_minor).ok_or_else(|| {
            super::error::invalid(
                "rate",
                format!("{}/{}", r.discount_minor, r.gross_minor),
                "a rate is discount/gross with 0 ≤ discount ≤ gross and gross > 0",
            )
        })
    }
}

#[cfg(feature = "serde")]
impl From<DiscountRate> for RateRepr {
    fn from(r: DiscountRate) -> Self {
        RateRepr {
            discount_minor: r.discount,
            gross_minor: r.gross,
        }
    }
}

/// A rate in `[0, 1]` given by a caller (a floor, a ceiling, a step), as millionths.
///
/// # Errors
/// [`TargetingError::RateOutOfRange`] outside `[0, 1]`; [`TargetingError::Invalid`] with more
/// than six decimal places.
pub(crate) fn micros_of(field: &'static str, r: Decimal) -> Result<i64, TargetingError> {
    if r < Decimal::ZERO || r > Decimal::ONE {
        return Err(TargetingError::RateOutOfRange { field, value: r });
    }
    let m = r * Decimal::from(1_000_000);
    if m.fract() != Decimal::ZERO {
        return Err(super::error::invalid(
            field,
            r,
            "rates have at most six decimal places",
        ));
    }
    i64::try_from(m).map_err(|_| TargetingError::RateOutOfRange { field, value: r })
}

/// Millionths as a decimal with six places.
pub(crate) fn decimal_of_micros(m: i64) -> Decimal {
    Decimal::new(m, 6).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_compare_exactly() {
        let a = DiscountRate::from_minor(1, 3).unwrap();
        let b = DiscountRate::from_minor(333_333, 1_000_000).unwrap();
        assert!(a > b);
        assert_eq!(a.to_micros(), 333_333);
        assert_eq!(a.cmp_micros(333_333), Ordering::Greater);
        assert_eq!(
            DiscountRate::from_minor(1, 2).unwrap().cmp_micros(500_000),
            Ordering::Equal
        );
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(-5, 2), -2);
        assert!(DiscountRate::from_minor(2, 1).is_none());
        assert_eq!(a.to_string(), "33.33%");
    }

    #[test]
    fn caller_rates_have_six_places() {
        assert_eq!(micros_of("x", Decimal::new(25, 3)).unwrap(), 25_000);
        assert!(micros_of("x", Decimal::new(1, 7)).is_err());
        assert!(micros_of("x", Decimal::new(11, 1)).is_err());
        assert_eq!(decimal_of_micros(25_000).to_string(), "0.025");
    }
}
