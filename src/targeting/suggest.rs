//! Coupon parameters for one user: a threshold a little above what they usually spend, a face
//! value bounded by the margin and by what the user is worth, and a validity of one to two
//! weeks — returned as a valid coupon template.
//!
//! - **Threshold** (使用门槛): the user's average order value raised by [`SuggestRules::lift`]
//!   (10 % by default) — and always at least one minor unit above it — then rounded *up* to
//!   the next nice price of [`SuggestRules::price_step`]: 9, 19, 29… by default
//!   ([`PriceStep::Charm`]), or multiples of 10 or 50 ([`PriceStep::Multiple`]).
//! - **Face value** (面额): the planned rate × the threshold, but at most
//!   [`SuggestRules::margin`] × the threshold (never give away more than the margin of the
//!   order it asks for) and at most [`SuggestRules::value_share`] × the user's value (their GMV,
//!   or a lifetime value of your own); rounded *down* to [`SuggestRules::face_step`]. When that
//!   leaves nothing, there is no coupon.
//! - **Validity** (有效期): the user's typical days between orders, kept within
//!   [`SuggestRules::validity_days`] (7 to 14 days by default): long enough to be used, short
//!   enough to be urgent.
//!
//! ```
//! use coupons::id::TemplateId;
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::{suggest, SuggestRules};
//! use rust_decimal::Decimal;
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! // AOV 83.50, planned rate 8 %, worth 600 a cycle, orders every 5 days.
//! let s = suggest(Money::from_minor(8350, cny), Decimal::new(8, 2), yuan(600), Some(5), &SuggestRules::default())?
//!     .expect("a coupon");
//! // 83.50 × 1.1 = 91.85 → the next price ending in 9 is 99; 8 % of 99 is 7.92 → 7.
//! assert_eq!((s.threshold, s.save, s.validity_days), (yuan(99), yuan(7), 7));
//! let template = s.template_spec(TemplateId::new("spend-99-save-7")?, "Spend 99, save 7")?.build()?;
//! assert_eq!(template.benefit().kind(), "threshold");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rust_decimal::Decimal;

use super::error::{TargetingError, invalid};
use crate::id::TemplateId;
use crate::money::{Currency, Money};
use crate::rule::{Benefit, Span, TemplateSpec, Validity};

/// The nice prices a threshold is rounded up to, in the currency's major unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum PriceStep {
    /// Multiples of `step`: `10` gives 10, 20, 30…; `50` gives 50, 100, 150…
    Multiple(Decimal),
    /// Charm prices, `below` under each multiple of `step`: step 10, below 1 gives 9, 19, 29…
    Charm {
        /// The step.
        step: Decimal,
        /// How far below each multiple, less than `step`.
        below: Decimal,
    },
}

/// The rules [`suggest`](fn@suggest) follows. Amounts are in the currency's major unit (yuan, dollars).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct SuggestRules {
    /// How far above the average order value the threshold starts, as a share: `0.1`.
    pub lift: Decimal,
    /// The nice prices thresholds are rounded up to: charm prices 9, 19, 29…
    pub price_step: PriceStep,
    /// Face values are whole multiples of this: `1`.
    pub face_step: Decimal,
    /// The most of the threshold a coupon may give, as a share — your margin: `0.3`.
    pub margin: Decimal,
    /// The most of the user's value a coupon may give, as a share: `0.1`.
    pub value_share: Decimal,
    /// The shortest and longest validity in days: 7 and 14.
    pub validity_days: (u32, u32),
}

impl Default for SuggestRules {
    fn default() -> Self {
        SuggestRules {
            lift: Decimal::new(1, 1),
            price_step: PriceStep::Charm {
                step: Decimal::TEN,
                below: Decimal::ONE,
            },
            face_step: Decimal::ONE,
            margin: Decimal::new(3, 1),
            value_share: Decimal::new(1, 1),
            validity_days: (7, 14),
        }
    }
}

/// The rules in minor units of one currency, checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MinorRules {
    lift_micros: i64,
    step: i64,
    below: i64,
    face_step: i64,
    margin_micros: i64,
    value_micros: i64,
    validity: (u32, u32),
}

fn minor_of(field: &'static str, v: Decimal, currency: Currency) -> Result<i64, TargetingError> {
    let m = Money::new(v, currency)
        .map_err(|_| invalid(field, v, "an amount in whole minor units of the currency"))?;
    Ok(m.to_minor()?)
}

fn share_micros(field: &'static str, v: Decimal, max: Decimal) -> Result<i64, TargetingError> {
    if v < Decimal::ZERO || v > max {
        return Err(TargetingError::RateOutOfRange { field, value: v });
    }
    let m = v * Decimal::from(1_000_000);
    if m.fract() != Decimal::ZERO {
        return Err(invalid(field, v, "shares have at most six decimal places"));
    }
    i64::try_from(m).map_err(|_| invalid(field, v, "too large"))
}

impl SuggestRules {
    pub(crate) fn minor(&self, currency: Currency) -> Result<MinorRules, TargetingError> {
        let (step, below) = match self.price_step {
            PriceStep::Multiple(s) => (minor_of("suggest.price_step", s, currency)?, 0),
            PriceStep::Charm { step, below } => (
                minor_of("suggest.price_step", step, currency)?,
                minor_of("suggest.price_step.below", below, currency)?,
            ),
        };
        if step <= 0 || below < 0 || below >= step {
            return Err(invalid(
                "suggest.price_step",
                format!("{:?}", self.price_step),
                "a step above zero, and below it less than the step",
            ));
        }
        let face_step = minor_of("suggest.face_step", self.face_step, currency)?;
        if face_step <= 0 {
            return Err(invalid("suggest.face_step", self.face_step, "above zero"));
        }
        let (lo, hi) = self.validity_days;
        if lo == 0 || lo > hi || hi > 366 {
            return Err(invalid(
                "suggest.validity_days",
                format!("{lo}..{hi}"),
                "1 ≤ shortest ≤ longest ≤ 366 days",
            ));
        }
        Ok(MinorRules {
            lift_micros: share_micros("suggest.lift", self.lift, Decimal::TEN)?,
            step,
            below,
            face_step,
            margin_micros: share_micros("suggest.margin", self.margin, Decimal::ONE)?,
            value_micros: share_micros("suggest.value_share", self.value_share, Decimal::ONE)?,
            validity: (lo, hi),
        })
    }
}

/// A suggested coupon: spend `threshold`, save `save`, valid `validity_days` from claiming.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CouponSuggestion {
    /// The minimum spend (满).
    pub threshold: Money,
    /// The saving (减), above zero and below the threshold.
    pub save: Money,
    /// Days of validity from claiming.
    pub validity_days: u32,
}

impl CouponSuggestion {
    /// The coupon as a template: a threshold reduction valid `validity_days` from claiming,
    /// everything else at its default. Adjust the returned spec (scope, limits…) before
    /// building it.
    ///
    /// # Errors
    /// [`TargetingError::Rule`] if the benefit or validity were refused (they are not, for a
    /// suggestion made by [`suggest`](fn@suggest)).
    pub fn template_spec(
        &self,
        id: TemplateId,
        name: impl Into<String>,
    ) -> Result<TemplateSpec, TargetingError> {
        Ok(TemplateSpec::new(
            id,
            name,
            self.threshold.currency(),
            Benefit::threshold(self.threshold, self.save)?,
            Validity::relative(Span::Days(self.validity_days), None)?,
        ))
    }
}

/// The coupon for one user; see the [module docs](self).
///
/// `aov` is the user's average order value, `rate` the discount rate planned for them (in
/// `[0, 1]`), `user_value` what the user is worth (their GMV last cycle, or a lifetime value),
/// `gap_days` their typical days between orders if known. `None` when the caps leave less than
/// one face step.
///
/// # Errors
/// [`TargetingError::RateOutOfRange`] or [`TargetingError::Invalid`] for rules or a rate out of
/// range; [`TargetingError::CurrencyMismatch`] when `user_value` is in another currency than
/// `aov`; [`TargetingError::Negative`] for a negative amount.
pub fn suggest(
    aov: Money,
    rate: Decimal,
    user_value: Money,
    gap_days: Option<u32>,
    rules: &SuggestRules,
) -> Result<Option<CouponSuggestion>, TargetingError> {
    let currency = aov.currency();
    if user_value.currency() != currency {
        return Err(TargetingError::CurrencyMismatch {
            field: "suggest.user_value",
            expected: currency,
            found: user_value.currency(),
        });
    }
    for (field, value) in [("suggest.aov", aov), ("suggest.user_value", user_value)] {
        if value.is_negative() {
            return Err(TargetingError::Negative { field, value });
        }
    }
    let rate = super::rate::micros_of("suggest.rate", rate.round_dp(6))?;
    let m = rules.minor(currency)?;
    Ok(
        suggest_minor(aov.to_minor()?, rate, user_value.to_minor()?, gap_days, &m).map(
            |(t, s, v)| CouponSuggestion {
                threshold: Money::from_minor(t, currency),
                save: Money::from_minor(s, currency),
                validity_days: v,
            },
        ),
    )
}

/// The same in minor units: `(threshold, save, validity)`.
#[inline]
pub(crate) fn suggest_minor(
    aov: i64,
    rate_micros: i64,
    value: i64,
    gap_days: Option<u32>,
    m: &MinorRules,
) -> Option<(i64, i64, u32)> {
    // Everyday amounts (below 2^40 minor units) fit 64-bit arithmetic with room to spare;
    // larger ones take the 128-bit path. Both compute the same.
    const SMALL: i64 = 1 << 40;
    let (threshold, save) = if aov < SMALL && value < SMALL && m.step < SMALL {
        threshold_and_save::<i64>(aov, rate_micros, value, m)?
    } else {
        threshold_and_save::<i128>(aov, rate_micros, value, m)?
    };
    if save <= 0 {
        return None;
    }
    let validity = gap_days
        .unwrap_or(m.validity.1)
        .clamp(m.validity.0, m.validity.1);
    Some((threshold, save, validity))
}

trait Int:
    Copy
    + Ord
    + From<i64>
    + TryInto<i64>
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    fn div_euclid_(self, d: Self) -> Self;
    fn checked_mul_(self, d: Self) -> Option<Self>;
}
impl Int for i64 {
    fn div_euclid_(self, d: Self) -> Self {
        self.div_euclid(d)
    }
    fn checked_mul_(self, d: Self) -> Option<Self> {
        self.checked_mul(d)
    }
}
impl Int for i128 {
    fn div_euclid_(self, d: Self) -> Self {
        self.div_euclid(d)
    }
    fn checked_mul_(self, d: Self) -> Option<Self> {
        self.checked_mul(d)
    }
}

#[inline]
fn threshold_and_save<T: Int>(
    aov: i64,
    rate_micros: i64,
    value: i64,
    m: &MinorRules,
) -> Option<(i64, i64)> {
    let c = |v: i64| T::from(v);
    let mm = c(1_000_000);
    let one = c(1);
    let ceil = |n: T, d: T| (n + d - one).div_euclid_(d);
    let aov = c(aov.max(0));
    let target = ceil(aov * (mm + c(m.lift_micros)), mm).max(aov + one);
    let (step, below) = (c(m.step), c(m.below));
    let k = ceil(target + below, step).max(one);
    let threshold = k.checked_mul_(step)? - below;
    let by_rate = threshold * c(rate_micros) / mm;
    let by_margin = threshold * c(m.margin_micros) / mm;
    let by_value = c(value.max(0)) * c(m.value_micros) / mm;
    let raw = by_rate.min(by_margin).min(by_value).min(threshold - one);
    let fs = c(m.face_step);
    let save = raw.div_euclid_(fs) * fs;
    Some((threshold.try_into().ok()?, save.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yuan(n: i64) -> Money {
        Money::from_minor(n * 100, Currency::CNY)
    }

    #[test]
    fn thresholds_are_nice_prices_above_the_aov() {
        let r = SuggestRules::default();
        let s = |aov, rules: &SuggestRules| {
            suggest(aov, Decimal::new(1, 1), yuan(10_000), None, rules)
                .unwrap()
                .unwrap()
        };
        assert_eq!(s(yuan(100), &r).threshold, yuan(119)); // 110 → 119
        assert_eq!(s(yuan(90), &r).threshold, yuan(99)); // 99 → 99
        assert_eq!(
            s(Money::from_minor(8182, Currency::CNY), &r).threshold,
            yuan(99)
        ); // 90.002 → 99
        let tens = SuggestRules {
            price_step: PriceStep::Multiple(Decimal::TEN),
            lift: Decimal::ZERO,
            ..SuggestRules::default()
        };
        assert_eq!(s(yuan(100), &tens).threshold, yuan(110)); // strictly above
        assert_eq!(s(yuan(101), &tens).threshold, yuan(110));
        let fifties = SuggestRules {
            price_step: PriceStep::Multiple(Decimal::from(50)),
            ..SuggestRules::default()
        };
        assert_eq!(s(yuan(140), &fifties).threshold, yuan(200)); // 154 → 200
    }

    #[test]
    fn face_value_is_capped_by_margin_and_value() {
        let r = SuggestRules::default();
        // Rate 50 %: capped by the 30 % margin of 119 = 35.70 → 35.
        let s = suggest(yuan(100), Decimal::new(5, 1), yuan(10_000), None, &r)
            .unwrap()
            .unwrap();
        assert_eq!(s.save, yuan(35));
        // Worth only 40: at most 4.
        let s = suggest(yuan(100), Decimal::new(5, 1), yuan(40), Some(30), &r)
            .unwrap()
            .unwrap();
        assert_eq!((s.save, s.validity_days), (yuan(4), 14));
        // Worth 5: 0.50 is below one face step: no coupon.
        assert_eq!(
            suggest(yuan(100), Decimal::new(5, 1), yuan(5), None, &r).unwrap(),
            None
        );
        assert_eq!(
            suggest(yuan(100), Decimal::ZERO, yuan(500), None, &r).unwrap(),
            None
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        let r = SuggestRules {
            validity_days: (15, 7),
            ..SuggestRules::default()
        };
        assert!(suggest(yuan(1), Decimal::ONE, yuan(1), None, &r).is_err());
        let r = SuggestRules {
            face_step: Decimal::new(1, 3),
            ..SuggestRules::default()
        };
        assert!(suggest(yuan(1), Decimal::ONE, yuan(1), None, &r).is_err());
        assert!(
            suggest(
                yuan(1),
                Decimal::TWO,
                yuan(1),
                None,
                &SuggestRules::default()
            )
            .is_err()
        );
    }
}
