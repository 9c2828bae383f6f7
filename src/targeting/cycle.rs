//! Cycles: the periods a plan is made for — calendar months, or runs of N days — in an explicit
//! UTC offset, so "March" means the same instants on every machine.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, TimeZone, Utc};

use super::error::{TargetingError, invalid};

/// A cycle, counted from a fixed origin: consecutive cycles have consecutive indices.
///
/// For [`Cycles::monthly`] the index is `year × 12 + month − 1` (March 1997 is `23_954`); for
/// [`Cycles::days`] cycle `0` is the one ending on the anchor date, `-1` the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct CycleIndex(pub i64);

impl CycleIndex {
    /// The cycle before this one.
    pub fn prev(self) -> CycleIndex {
        CycleIndex(self.0.saturating_sub(1))
    }
    /// The cycle after this one.
    pub fn next(self) -> CycleIndex {
        CycleIndex(self.0.saturating_add(1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Monthly,
    Days { days: u32, first_day: i64 },
}

/// How time is cut into cycles: calendar months or runs of `N` days, with days starting at
/// midnight in a fixed UTC offset.
///
/// ```
/// use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
/// use coupons::targeting::Cycles;
///
/// let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
/// let months = Cycles::monthly(beijing);
/// // 31 March 1997 20:00 UTC is already 1 April in Beijing.
/// let t = Utc.with_ymd_and_hms(1997, 3, 31, 20, 0, 0).unwrap();
/// assert_eq!(months.label(months.index_of(t)), "1997-04");
/// let (start, end) = months.bounds(months.index_of(t))?;
/// assert_eq!(start, Utc.with_ymd_and_hms(1997, 3, 31, 16, 0, 0).unwrap());
/// assert_eq!(end, Utc.with_ymd_and_hms(1997, 4, 30, 16, 0, 0).unwrap());
///
/// // Four-week cycles, cycle 0 ending on Sunday 30 March 1997 (UTC days).
/// let weeks = Cycles::days(28, NaiveDate::from_ymd_opt(1997, 3, 30).unwrap(), FixedOffset::east_opt(0).unwrap())?;
/// assert_eq!(weeks.index_of(Utc.with_ymd_and_hms(1997, 3, 3, 0, 0, 0).unwrap()).0, 0);
/// assert_eq!(weeks.index_of(Utc.with_ymd_and_hms(1997, 3, 2, 23, 59, 59).unwrap()).0, -1);
/// # Ok::<(), coupons::targeting::TargetingError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "CyclesRepr", into = "CyclesRepr")
)]
pub struct Cycles {
    kind: Kind,
    offset_secs: i32,
}

const DAY_US: i64 = 86_400_000_000;
/// Days from 0001-01-01 (day 1 in chrono's count) to 1970-01-01.
const CE_TO_UNIX_DAYS: i64 = 719_163;

impl Cycles {
    /// Calendar months in `offset` (`+08:00` for China).
    pub fn monthly(offset: FixedOffset) -> Cycles {
        Cycles {
            kind: Kind::Monthly,
            offset_secs: offset.local_minus_utc(),
        }
    }

    /// Runs of `days` days, the cycle with index 0 ending on `last_day` (inclusive), days
    /// starting at midnight in `offset`.
    ///
    /// # Errors
    /// [`TargetingError::Invalid`] when `days` is 0 or above 3,660.
    pub fn days(
        days: u32,
        last_day: NaiveDate,
        offset: FixedOffset,
    ) -> Result<Cycles, TargetingError> {
        if days == 0 || days > 3_660 {
            return Err(invalid(
                "cycles.days",
                days,
                "a cycle lasts 1 to 3,660 days",
            ));
        }
        let last = i64::from(last_day.num_days_from_ce()) - CE_TO_UNIX_DAYS;
        Ok(Cycles {
            kind: Kind::Days {
                days,
                first_day: last - i64::from(days) + 1,
            },
            offset_secs: offset.local_minus_utc(),
        })
    }

    /// The UTC offset local days start in.
    pub fn offset(&self) -> FixedOffset {
        FixedOffset::east_opt(self.offset_secs).unwrap_or_else(|| Utc.fix())
    }

    /// The cycle containing `t`.
    pub fn index_of(&self, t: DateTime<Utc>) -> CycleIndex {
        self.index_of_micros(t.timestamp_micros())
    }

    pub(crate) fn index_of_micros(&self, micros: i64) -> CycleIndex {
        let local_day = (micros + i64::from(self.offset_secs) * 1_000_000).div_euclid(DAY_US);
        match self.kind {
            Kind::Monthly => {
                let (y, m) = civil_from_days(local_day);
                CycleIndex(y * 12 + (m - 1))
            }
            Kind::Days { days, first_day } => {
                CycleIndex((local_day - first_day).div_euclid(i64::from(days)))
            }
        }
    }

    /// The cycle's first and last local day as days since 1970-01-01 (local).
    fn local_days(&self, c: CycleIndex) -> Option<(i64, i64)> {
        match self.kind {
            Kind::Monthly => {
                let y = c.0.div_euclid(12);
                let m = c.0.rem_euclid(12) + 1;
                let start = days_from_civil(y, m)?;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                Some((start, days_from_civil(ny, nm)?))
            }
            Kind::Days { days, first_day } => {
                let start = first_day.checked_add(c.0.checked_mul(i64::from(days))?)?;
                Some((start, start.checked_add(i64::from(days))?))
            }
        }
    }

    /// The cycle's instants `[start, end)` in UTC, in microseconds since the epoch.
    pub(crate) fn bounds_micros(&self, c: CycleIndex) -> Option<(i64, i64)> {
        let (a, b) = self.local_days(c)?;
        let off = i64::from(self.offset_secs) * 1_000_000;
        Some((a.checked_mul(DAY_US)? - off, b.checked_mul(DAY_US)? - off))
    }

    /// The cycle's instants `[start, end)`.
    ///
    /// # Errors
    /// [`TargetingError::TimeOutOfRange`] for a cycle beyond the dates chrono represents.
    pub fn bounds(&self, c: CycleIndex) -> Result<(DateTime<Utc>, DateTime<Utc>), TargetingError> {
        let out = || TargetingError::TimeOutOfRange {
            field: "cycle",
            value: DateTime::<Utc>::MAX_UTC,
        };
        let (a, b) = self.bounds_micros(c).ok_or_else(out)?;
        let a = DateTime::from_timestamp_micros(a).ok_or_else(out)?;
        let b = DateTime::from_timestamp_micros(b).ok_or_else(out)?;
        Ok((a, b))
    }

    /// How many days the cycle lasts (28 to 31 for months).
    pub fn length_days(&self, c: CycleIndex) -> u32 {
        self.local_days(c)
            .and_then(|(a, b)| u32::try_from(b - a).ok())
            .unwrap_or(0)
    }

    /// A label: `1997-04` for a month, `1997-03-03..1997-03-30` for a run of days.
    pub fn label(&self, c: CycleIndex) -> String {
        match (self.kind, self.local_days(c)) {
            (Kind::Monthly, _) => {
                format!("{:04}-{:02}", c.0.div_euclid(12), c.0.rem_euclid(12) + 1)
            }
            (Kind::Days { .. }, Some((a, b))) => format!("{}..{}", day_label(a), day_label(b - 1)),
            (Kind::Days { .. }, None) => format!("cycle {}", c.0),
        }
    }

    /// The local date `t` falls on.
    pub(crate) fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.offset().from_utc_datetime(&t.naive_utc()).date_naive()
    }

    /// The whole local days between two instants, `later − earlier`, at least 0.
    pub(crate) fn days_between(&self, earlier: DateTime<Utc>, later: DateTime<Utc>) -> i64 {
        (self.local_date(later) - self.local_date(earlier))
            .num_days()
            .max(0)
    }
}

fn day_label(d: i64) -> String {
    i32::try_from(d + CE_TO_UNIX_DAYS)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map_or_else(|| format!("day {d}"), |n| n.to_string())
}

/// (year, month) of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m)
}

/// Days from 1970-01-01 to the first of `month` in `year`.
fn days_from_civil(y: i64, m: i64) -> Option<i64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.checked_mul(146_097)?.checked_add(doe - 719_468)
}

impl fmt::Display for CycleIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cycle {}", self.0)
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum CyclesRepr {
    Monthly {
        utc_offset_seconds: i32,
    },
    Days {
        days: u32,
        last_day: NaiveDate,
        utc_offset_seconds: i32,
    },
}

#[cfg(feature = "serde")]
impl TryFrom<CyclesRepr> for Cycles {
    type Error = TargetingError;
    fn try_from(r: CyclesRepr) -> Result<Self, TargetingError> {
        let off = |s: i32| {
            FixedOffset::east_opt(s).ok_or_else(|| {
                invalid(
                    "cycles.utc_offset_seconds",
                    s,
                    "an offset is within ±24 hours",
                )
            })
        };
        match r {
            CyclesRepr::Monthly { utc_offset_seconds } => {
                Ok(Cycles::monthly(off(utc_offset_seconds)?))
            }
            CyclesRepr::Days {
                days,
                last_day,
                utc_offset_seconds,
            } => Cycles::days(days, last_day, off(utc_offset_seconds)?),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Cycles> for CyclesRepr {
    fn from(c: Cycles) -> Self {
        match c.kind {
            Kind::Monthly => CyclesRepr::Monthly {
                utc_offset_seconds: c.offset_secs,
            },
            Kind::Days { days, first_day } => CyclesRepr::Days {
                days,
                last_day: i32::try_from(first_day + i64::from(days) - 1 + CE_TO_UNIX_DAYS)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .unwrap_or(NaiveDate::MIN),
                utc_offset_seconds: c.offset_secs,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn civil_round_trips_over_centuries() {
        for d in (-800_000..800_000).step_by(97) {
            let (y, m) = civil_from_days(d);
            let first = days_from_civil(y, m).unwrap();
            assert!(first <= d && d - first < 31, "{d}");
            let date = NaiveDate::from_num_days_from_ce_opt((d + CE_TO_UNIX_DAYS) as i32).unwrap();
            assert_eq!((y, m), (i64::from(date.year()), i64::from(date.month())));
        }
    }

    #[test]
    fn months_follow_the_offset() {
        let c = Cycles::monthly(FixedOffset::west_opt(5 * 3600).unwrap());
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap();
        assert_eq!(c.label(c.index_of(t)), "2025-12");
        let i = c.index_of(t);
        let (a, b) = c.bounds(i).unwrap();
        assert_eq!(a, Utc.with_ymd_and_hms(2025, 12, 1, 5, 0, 0).unwrap());
        assert_eq!(b, Utc.with_ymd_and_hms(2026, 1, 1, 5, 0, 0).unwrap());
        assert_eq!(c.index_of(b), i.next());
        assert_eq!(c.index_of(b - Duration::microseconds(1)), i);
        assert_eq!(
            c.length_days(c.index_of(Utc.with_ymd_and_hms(2024, 2, 10, 0, 0, 0).unwrap())),
            29
        );
    }

    #[test]
    fn day_runs_are_anchored_on_their_last_day() {
        let c = Cycles::days(
            7,
            NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(),
            FixedOffset::east_opt(0).unwrap(),
        )
        .unwrap();
        let at = |d| Utc.with_ymd_and_hms(2026, 3, d, 12, 0, 0).unwrap();
        assert_eq!(c.index_of(at(2)).0, 0);
        assert_eq!(c.index_of(at(8)).0, 0);
        assert_eq!(c.index_of(at(1)).0, -1);
        assert_eq!(c.index_of(at(9)).0, 1);
        assert_eq!(c.label(CycleIndex(0)), "2026-03-02..2026-03-08");
        assert!(Cycles::days(0, NaiveDate::MIN, FixedOffset::east_opt(0).unwrap()).is_err());
    }
}
