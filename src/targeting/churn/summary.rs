//! Customer summaries from purchase instants.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

use super::Summary;

/// The time unit of a [`Summary`] (and so of the fitted `alpha` and of every horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum TimeUnit {
    /// Days of 24 hours.
    Days,
    /// Weeks of 7 days, as in the literature.
    Weeks,
}

impl TimeUnit {
    fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }
}

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// The end of a calibration period and how purchases are counted, for building [`Summary`]s.
///
/// - [`Calibration::exact`]: every purchase counts, and times are exact durations
///   (microseconds converted to the unit);
/// - [`Calibration::by_day`]: purchases on one local calendar day (in a UTC offset) count as
///   one, and times are whole days between local dates — how the CDNOW summary and most
///   published analyses are built (the offset decides which day a late-evening order falls on).
///
/// Purchases after the end belong to a later period and are ignored; a purchase exactly at the
/// end counts.
///
/// ```
/// use chrono::{FixedOffset, TimeZone, Utc};
/// use coupons::targeting::churn::{Calibration, TimeUnit};
///
/// let day = |m, d| Utc.with_ymd_and_hms(1997, m, d, 12, 0, 0).unwrap();
/// let end = Utc.with_ymd_and_hms(1997, 9, 30, 23, 59, 59).unwrap();
/// let calibration = Calibration::by_day(end, FixedOffset::east_opt(0).unwrap(), TimeUnit::Weeks);
/// // CDNOW customer 4: Jan 1, Jan 18 (twice), Aug 2, and Dec 12 (after the period).
/// let s = calibration
///     .summarize(&[day(1, 18), day(1, 1), day(1, 18), day(8, 2), day(12, 12)])
///     .expect("has purchases");
/// assert_eq!(s.frequency(), 2);
/// assert!((s.recency() - 213.0 / 7.0).abs() < 1e-12);
/// assert!((s.age() - 272.0 / 7.0).abs() < 1e-12);
/// // No purchase by the end: not a customer yet.
/// assert!(calibration.summarize(&[day(12, 12)]).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    end: DateTime<Utc>,
    unit: TimeUnit,
    days: Option<FixedOffset>,
}

impl Calibration {
    /// Every purchase counts; times are exact durations in `unit`.
    pub fn exact(end: DateTime<Utc>, unit: TimeUnit) -> Calibration {
        Calibration {
            end,
            unit,
            days: None,
        }
    }

    /// Purchases count once per local calendar day in `offset`; times are whole days in `unit`.
    pub fn by_day(end: DateTime<Utc>, offset: FixedOffset, unit: TimeUnit) -> Calibration {
        Calibration {
            end,
            unit,
            days: Some(offset),
        }
    }

    /// The end of the calibration period.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// The time unit of the summaries.
    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// The summary of one customer's purchases (in any order), or `None` when none falls on or
    /// before the end of the period. More than `u32::MAX` repeat purchases saturate.
    pub fn summarize(&self, purchases: &[DateTime<Utc>]) -> Option<Summary> {
        let per = self.unit.days();
        match self.days {
            None => {
                let mut first: Option<DateTime<Utc>> = None;
                let mut last: Option<DateTime<Utc>> = None;
                let mut count: u64 = 0;
                for &p in purchases.iter().filter(|&&p| p <= self.end) {
                    count += 1;
                    first = Some(first.map_or(p, |f| f.min(p)));
                    last = Some(last.map_or(p, |l| l.max(p)));
                }
                let (first, last) = (first?, last?);
                let span = |a: DateTime<Utc>, b: DateTime<Utc>| {
                    (b - a).num_microseconds().map_or(f64::MAX, |m| m as f64) / MICROS_PER_DAY / per
                };
                let x = u32::try_from(count - 1).unwrap_or(u32::MAX);
                let recency = if x == 0 { 0.0 } else { span(first, last) };
                Summary::new(x, recency, span(first, self.end)).ok()
            }
            Some(offset) => {
                let day = |t: DateTime<Utc>| {
                    i64::from(t.with_timezone(&offset).date_naive().num_days_from_ce())
                };
                let mut days: Vec<i64> = purchases
                    .iter()
                    .filter(|&&p| p <= self.end)
                    .map(|&p| day(p))
                    .collect();
                days.sort_unstable();
                days.dedup();
                let (&first, &last) = (days.first()?, days.last()?);
                let x = u32::try_from(days.len() - 1).unwrap_or(u32::MAX);
                let end = day(self.end);
                Summary::new(x, (last - first) as f64 / per, (end - first) as f64 / per).ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn exact_times_are_durations_in_the_unit() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let c = Calibration::exact(t0 + chrono::Duration::days(14), TimeUnit::Days);
        let s = c
            .summarize(&[
                t0 + chrono::Duration::hours(36),
                t0,
                t0 + chrono::Duration::days(30),
            ])
            .unwrap();
        assert_eq!(s.frequency(), 1);
        assert_eq!(s.recency(), 1.5);
        assert_eq!(s.age(), 14.0);
        let only = c.summarize(&[t0]).unwrap();
        assert_eq!(
            (only.frequency(), only.recency(), only.age()),
            (0, 0.0, 14.0)
        );
        assert!(c.summarize(&[]).is_none());
    }

    #[test]
    fn by_day_counts_a_local_day_once() {
        let end = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        // 23:30 UTC on Jan 1 is Jan 2 in UTC+8.
        let late = Utc.with_ymd_and_hms(2026, 1, 1, 23, 30, 0).unwrap();
        let next = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap();
        let utc = Calibration::by_day(end, FixedOffset::east_opt(0).unwrap(), TimeUnit::Days);
        let cst = Calibration::by_day(
            end,
            FixedOffset::east_opt(8 * 3600).unwrap(),
            TimeUnit::Days,
        );
        let s = utc.summarize(&[late, next]).unwrap();
        assert_eq!((s.frequency(), s.recency(), s.age()), (1, 1.0, 9.0));
        let s = cst.summarize(&[late, next]).unwrap();
        assert_eq!((s.frequency(), s.recency(), s.age()), (0, 0.0, 8.0));
    }
}
