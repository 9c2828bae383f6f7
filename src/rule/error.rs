use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::id::IdError;
use crate::money::{Currency, Money, MoneyError};
use crate::time::TimeError;

/// A coupon rule was given a value it cannot hold. Each variant names the field (a dotted path
/// such as `benefit.tiers`) and the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// An amount that must be above zero was zero or negative.
    #[error("{field}: {value} must be above zero")]
    NotPositive {
        /// Where.
        field: &'static str,
        /// The amount given.
        value: Money,
    },
    /// A percentage outside `(0, 100]`.
    #[error("{field}: percentage {value} is outside (0, 100]")]
    PercentOutOfRange {
        /// Where.
        field: &'static str,
        /// The value given.
        value: Decimal,
    },
    /// A count that must be at least one was zero.
    #[error("{field}: must be at least 1")]
    Zero {
        /// Where.
        field: &'static str,
    },
    /// A list that must have at least one entry was empty.
    #[error("{field}: must not be empty")]
    Empty {
        /// Where.
        field: &'static str,
    },
    /// A text field is longer than allowed.
    #[error("{field}: has more than {max} characters")]
    TooLong {
        /// Where.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Threshold tiers whose thresholds do not strictly increase.
    #[error("{field}: tier {index} threshold {threshold} is not above the previous tier's")]
    TiersNotIncreasing {
        /// Where.
        field: &'static str,
        /// The offending tier, counted from 0.
        index: usize,
        /// Its threshold.
        threshold: Money,
    },
    /// A higher tier that saves less than a lower one.
    #[error("{field}: tier {index} saves {saving}, less than the tier below it")]
    TierSavingDecreases {
        /// Where.
        field: &'static str,
        /// The offending tier, counted from 0.
        index: usize,
        /// Its saving.
        saving: Money,
    },
    /// A saving that is not below the spend it rewards ("spend 100 save 100").
    #[error("{field}: saving {saving} is not below its threshold {threshold}")]
    SavingNotBelowThreshold {
        /// Where.
        field: &'static str,
        /// The threshold.
        threshold: Money,
        /// The saving.
        saving: Money,
    },
    /// An amount in another currency than the template's.
    #[error("{field}: {found} is not the template's currency {expected}")]
    CurrencyMismatch {
        /// Where.
        field: &'static str,
        /// The template's currency.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// A time window that ends at or before it starts.
    #[error("{field}: the window ends ({until}) at or before it starts ({from})")]
    WindowEndsBeforeStart {
        /// Where.
        field: &'static str,
        /// Start.
        from: DateTime<Utc>,
        /// End.
        until: DateTime<Utc>,
    },
    /// An instant outside what records hold (1970-01-01 to 9999-12-31 UTC; see
    /// [`crate::time`]). The [`TimeError`] names the field.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// Something both included and excluded, or otherwise contradictory.
    #[error("{field}: {reason}")]
    Conflict {
        /// Where.
        field: &'static str,
        /// What contradicts what.
        reason: String,
    },
    /// A malformed value (a time of day, a UTC offset…).
    #[error("{field}: invalid value {value:?}: {reason}")]
    Invalid {
        /// Where.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An invalid identifier.
    #[error("{field}: {source}")]
    Id {
        /// Where.
        field: &'static str,
        /// The identifier's own error.
        source: IdError,
    },
    /// An invalid amount.
    #[error("{field}: {source}")]
    Money {
        /// Where.
        field: &'static str,
        /// The money error.
        source: MoneyError,
    },
}

/// Checks that an amount is above zero and in `currency`.
pub(crate) fn positive_in(
    field: &'static str,
    value: Money,
    currency: Currency,
) -> Result<Money, RuleError> {
    same_currency(field, value, currency)?;
    if !value.is_positive() {
        return Err(RuleError::NotPositive { field, value });
    }
    Ok(value)
}

/// Checks that an amount is in `currency`.
pub(crate) fn same_currency(
    field: &'static str,
    value: Money,
    currency: Currency,
) -> Result<(), RuleError> {
    if value.currency() != currency {
        return Err(RuleError::CurrencyMismatch {
            field,
            expected: currency,
            found: value.currency(),
        });
    }
    Ok(())
}
