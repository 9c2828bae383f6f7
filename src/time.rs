//! Instants as the crate keeps them: UTC, at **microsecond** precision, between the years 1970
//! and 9999.
//!
//! Every instant that reaches a record (a coupon's validity, an order's hold, an event's time)
//! goes through [`check`] on the way in: it is truncated to whole microseconds and refused
//! outside [`EARLIEST`]`..=`[`LATEST`]. That is what SQL columns hold exactly — PostgreSQL
//! `timestamptz` and MySQL `DATETIME(6)` keep microseconds, and `DATETIME(6)` ends in the year
//! 9999 — so any store round-trips every instant the engine writes. [`LATEST`] also stands for
//! "never" where a deadline is unbounded.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coupons::time;
//! let t = Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap();
//! assert_eq!(time::check("now", t)?.timestamp_subsec_nanos(), 123_456_000);
//! assert!(time::check("now", Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap()).is_err());
//! # Ok::<(), coupons::time::TimeError>(())
//! ```

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// The earliest instant a record may hold: 1970-01-01T00:00:00Z.
pub const EARLIEST: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// The latest instant a record may hold, 9999-12-31T23:59:59.999999Z; also "never".
pub const LATEST: DateTime<Utc> = match DateTime::from_timestamp_micros(253_402_300_799_999_999) {
    Some(t) => t,
    None => DateTime::UNIX_EPOCH,
};

/// An instant outside the range records hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value} is outside the instants a record holds (1970-01-01 to 9999-12-31 UTC)")]
pub struct TimeError {
    /// Where the instant was given, e.g. `"now"` or `"validity.from"`.
    pub field: &'static str,
    /// The instant as given.
    pub value: DateTime<Utc>,
}

/// `t` truncated to whole microseconds (toward the past).
pub fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

/// `t` truncated to whole microseconds, if it lies in [`EARLIEST`]`..=`[`LATEST`].
///
/// # Errors
/// [`TimeError`] naming `field` when it does not.
pub fn check(field: &'static str, t: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    let t = truncate(t);
    if t < EARLIEST || t > LATEST {
        return Err(TimeError { field, value: t });
    }
    Ok(t)
}

/// `t + d`, at most [`LATEST`] (and at least [`EARLIEST`]), truncated to microseconds.
pub fn add_saturating(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    match t.checked_add_signed(d) {
        Some(x) if x > LATEST => LATEST,
        Some(x) if x < EARLIEST => EARLIEST,
        Some(x) => truncate(x),
        None if d > TimeDelta::zero() => LATEST,
        None => EARLIEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn truncates_and_bounds() {
        assert_eq!(LATEST.to_rfc3339(), "9999-12-31T23:59:59.999999+00:00");
        let t = Utc.timestamp_opt(10, 999_999_999).unwrap();
        assert_eq!(
            check("t", t).unwrap(),
            Utc.timestamp_opt(10, 999_999_000).unwrap()
        );
        assert!(check("t", DateTime::<Utc>::MAX_UTC).is_err());
        assert_eq!(check("t", LATEST).unwrap(), LATEST);
        assert_eq!(add_saturating(LATEST, TimeDelta::days(1)), LATEST);
        assert_eq!(add_saturating(EARLIEST, TimeDelta::days(-1)), EARLIEST);
    }
}
