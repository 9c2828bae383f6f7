//! The one error type of the targeting module.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::money::{Currency, Money, MoneyError};
use crate::rule::RuleError;

/// What went wrong while computing statistics, types, rates, plans or segments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetingError {
    /// An amount in another currency than the statistics, or than the other amounts of an order.
    #[error("{field}: {found} is not in {expected}")]
    CurrencyMismatch {
        /// Where the amount was given, e.g. `"order.discount"`.
        field: &'static str,
        /// The currency expected.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// An order amount that must not be negative was negative.
    #[error("{field}: {value} is negative")]
    Negative {
        /// Where, e.g. `"order.gross"`.
        field: &'static str,
        /// The amount given.
        value: Money,
    },
    /// An order whose discount exceeds its gross amount.
    #[error("order: discount {discount} exceeds the gross amount {gross}")]
    DiscountAboveGross {
        /// The gross amount.
        gross: Money,
        /// The discount.
        discount: Money,
    },
    /// An instant outside the range cycles are computed for (1970 to 9999).
    #[error("{field}: {value} is outside 1970-01-01 to 9999-12-31 UTC")]
    TimeOutOfRange {
        /// Where.
        field: &'static str,
        /// The instant.
        value: DateTime<Utc>,
    },
    /// A setting outside its allowed range.
    #[error("{field}: {value} is invalid: {reason}")]
    Invalid {
        /// The setting, e.g. `"plan.max_step"`.
        field: &'static str,
        /// The value as text.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// Two partial statistics computed with different cycles or currencies cannot be merged.
    #[error("cannot merge statistics: {reason}")]
    Incompatible {
        /// What differs.
        reason: &'static str,
    },
    /// A sum of amounts or counts does not fit (beyond 9.2 × 10^18 minor units).
    #[error("{what} overflowed")]
    Overflow {
        /// What was being summed.
        what: &'static str,
    },
    /// A rate outside `[0, 1]`.
    #[error("{field}: rate {value} is outside [0, 1]")]
    RateOutOfRange {
        /// Where.
        field: &'static str,
        /// The value given.
        value: Decimal,
    },
    /// A user id was refused.
    #[error(transparent)]
    User(#[from] crate::id::IdError),
    /// A money operation failed.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// A suggested coupon could not be built as a template.
    #[error(transparent)]
    Rule(#[from] RuleError),
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl ToString,
    reason: &'static str,
) -> TargetingError {
    TargetingError::Invalid {
        field,
        value: value.to_string(),
        reason,
    }
}
