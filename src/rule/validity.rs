//! When an issued coupon may be used: a fixed window, or a span from the moment it is claimed.

use chrono::{DateTime, Duration, Utc};

use super::error::RuleError;

/// How long a coupon is valid once claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Span {
    /// Whole days of 24 hours.
    Days(u32),
    /// Hours.
    Hours(u32),
}

impl Span {
    fn duration(self) -> Duration {
        match self {
            Span::Days(d) => Duration::days(i64::from(d)),
            Span::Hours(h) => Duration::hours(i64::from(h)),
        }
    }

    fn is_zero(self) -> bool {
        matches!(self, Span::Days(0) | Span::Hours(0))
    }
}

/// The validity rule of a template. All instants are UTC (`DateTime<Utc>`); JSON accepts any
/// RFC 3339 offset and stores UTC, so no instant is ever ambiguous.
///
/// - `Fixed { from, until }`: usable in `[from, until)` whenever it was claimed.
/// - `Relative { span, not_after }`: usable from the claim for `span`, but never at or after
///   `not_after` if set ("7 days from claiming, and at the latest on 31 December").
///
/// ```
/// use coupons::rule::{Span, Validity};
/// use chrono::{TimeZone, Utc};
/// let claimed = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
/// let end = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
/// let v = Validity::relative(Span::Days(7), Some(end))?;
/// let (from, until) = v.window_for(claimed).unwrap();
/// assert_eq!((from, until), (claimed, end)); // capped by not_after
/// # Ok::<(), coupons::rule::RuleError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ValidityRepr", into = "ValidityRepr")
)]
pub enum Validity {
    /// A fixed window `[from, until)`.
    #[non_exhaustive]
    Fixed {
        /// Start, inclusive.
        from: DateTime<Utc>,
        /// End, exclusive.
        until: DateTime<Utc>,
    },
    /// From the moment of claiming, for `span`, capped by `not_after`.
    #[non_exhaustive]
    Relative {
        /// How long.
        span: Span,
        /// The latest end, if any.
        not_after: Option<DateTime<Utc>>,
    },
}

impl Validity {
    /// A fixed window `[from, until)`.
    ///
    /// # Errors
    /// [`RuleError::WindowEndsBeforeStart`] when `until <= from`.
    pub fn fixed(from: DateTime<Utc>, until: DateTime<Utc>) -> Result<Validity, RuleError> {
        if until <= from {
            return Err(RuleError::WindowEndsBeforeStart {
                field: "validity",
                from,
                until,
            });
        }
        Ok(Validity::Fixed { from, until })
    }

    /// `span` from the claim, never at or after `not_after`.
    ///
    /// # Errors
    /// [`RuleError::Zero`] for a zero span.
    pub fn relative(span: Span, not_after: Option<DateTime<Utc>>) -> Result<Validity, RuleError> {
        if span.is_zero() {
            return Err(RuleError::Zero {
                field: "validity.span",
            });
        }
        Ok(Validity::Relative { span, not_after })
    }

    /// The window `[from, until)` of a coupon claimed at `claimed_at`, or `None` when it would
    /// be empty (claimed at or after the end).
    pub fn window_for(&self, claimed_at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (from, until) = match *self {
            Validity::Fixed { from, until } => (from, until),
            Validity::Relative { span, not_after } => {
                let end = claimed_at
                    .checked_add_signed(span.duration())
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                (claimed_at, not_after.map_or(end, |n| end.min(n)))
            }
        };
        (claimed_at < until && from < until).then_some((from, until))
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum ValidityRepr {
    Fixed {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    Relative {
        #[serde(flatten)]
        span: Span,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after: Option<DateTime<Utc>>,
    },
}

#[cfg(feature = "serde")]
impl TryFrom<ValidityRepr> for Validity {
    type Error = RuleError;
    fn try_from(r: ValidityRepr) -> Result<Self, RuleError> {
        match r {
            ValidityRepr::Fixed { from, until } => Validity::fixed(from, until),
            ValidityRepr::Relative { span, not_after } => Validity::relative(span, not_after),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Validity> for ValidityRepr {
    fn from(v: Validity) -> Self {
        match v {
            Validity::Fixed { from, until } => ValidityRepr::Fixed { from, until },
            Validity::Relative { span, not_after } => ValidityRepr::Relative { span, not_after },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fixed_window_must_not_end_before_it_starts() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(Validity::fixed(t, t).is_err());
        assert!(Validity::fixed(t, t - Duration::seconds(1)).is_err());
        assert!(Validity::relative(Span::Hours(0), None).is_err());
    }

    #[test]
    fn claiming_after_the_end_gives_no_window() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let v = Validity::relative(Span::Hours(48), Some(t)).unwrap();
        assert_eq!(v.window_for(t), None);
        let f = Validity::fixed(t, t + Duration::days(1)).unwrap();
        assert_eq!(
            f.window_for(t - Duration::days(3)),
            Some((t, t + Duration::days(1)))
        );
        assert_eq!(f.window_for(t + Duration::days(1)), None);
    }
}
