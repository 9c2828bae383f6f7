//! The guards every rule shares: frequency caps, quiet hours and campaign budgets.
//!
//! ## Frequency caps
//!
//! A [`FrequencyCap`] limits the coupons issued to one user across **all** rules and triggers
//! — `FrequencyCap::new(2, Window::Rolling { days: 7 }, Some(Message::Push))` is "at most 2
//! coupon pushes in 7 days". A cap with a message counts and limits only issues with that
//! message hint; without one, every issue. Issues of [transactional](super::RuleSpec::transactional)
//! rules neither count nor are limited. An issue counts at the instant it was decided, even
//! when quiet hours defer its message.
//!
//! [`Window`] says what "7 days" means:
//! - [`Window::Rolling`] — the last `days × 24` hours: an issue stops counting exactly `days`
//!   days after it was decided.
//! - [`Window::Calendar`] — today and the `days − 1` calendar days before it, in the user's
//!   time zone (their UTC offset): everything counts until the local midnight that ends its
//!   `days`-th day, so `Calendar { days: 1 }` is "per local day".
//!
//! ## Quiet hours
//!
//! [`QuietHours`] in the user's local time (`22:00–08:00` wraps midnight). A push or SMS
//! decided inside them is not dropped: the issue carries `deliver_at`, the end of the quiet
//! hours. In-app messages and silent issues are delivered at once.

use std::fmt;

use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};

use super::rule::Message;
use super::{BudgetId, IssuingError, invalid, local, shift};
use crate::money::{Currency, Money};

/// The period a [`FrequencyCap`] counts over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)
)]
pub enum Window {
    /// The last `days × 24` hours.
    Rolling {
        /// Days, 1 to 366.
        days: u16,
    },
    /// Today and the `days − 1` local calendar days before it.
    Calendar {
        /// Days, 1 to 366.
        days: u16,
    },
}

impl Window {
    fn days(self) -> u16 {
        match self {
            Window::Rolling { days } | Window::Calendar { days } => days,
        }
    }

    /// The earliest instant that still counts at `now` for a user at `offset` (inclusive).
    pub fn start(self, now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
        match self {
            Window::Rolling { days } => shift(
                now,
                Duration::microseconds(1) - Duration::days(i64::from(days)),
            ),
            Window::Calendar { days } => {
                let local = local(now, offset);
                let since_midnight = i64::from(local.num_seconds_from_midnight());
                let nanos = i64::from(local.nanosecond() % 1_000_000_000);
                shift(
                    now,
                    -(Duration::seconds(since_midnight)
                        + Duration::nanoseconds(nanos)
                        + Duration::days(i64::from(days) - 1)),
                )
            }
        }
    }

    /// The longest it looks back.
    pub fn span(self) -> Duration {
        Duration::days(i64::from(self.days()) + 1)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Rolling { days: 1 } => f.write_str("in the last 24 hours"),
            Window::Rolling { days } => write!(f, "in the last {days} days"),
            Window::Calendar { days: 1 } => f.write_str("today"),
            Window::Calendar { days } => write!(f, "in the last {days} calendar days"),
        }
    }
}

/// At most `max` issues to one user per [`Window`], of one message kind or of all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "CapRepr", into = "CapRepr")
)]
pub struct FrequencyCap {
    max: u32,
    window: Window,
    message: Option<Message>,
}

#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
struct CapRepr {
    max: u32,
    window: Window,
    #[cfg_attr(feature = "serde", serde(default))]
    message: Option<Message>,
}

impl FrequencyCap {
    /// A cap.
    ///
    /// # Errors
    /// [`IssuingError::Invalid`]: `policy.caps.max` of 0, `policy.caps.window.days` outside
    /// 1 to 366.
    pub fn new(
        max: u32,
        window: Window,
        message: Option<Message>,
    ) -> Result<FrequencyCap, IssuingError> {
        if max == 0 {
            return Err(invalid(
                "policy.caps.max",
                max,
                "a cap allows at least 1 issue",
            ));
        }
        if !(1..=366).contains(&window.days()) {
            return Err(invalid(
                "policy.caps.window.days",
                window.days(),
                "a window lasts 1 to 366 days",
            ));
        }
        Ok(FrequencyCap {
            max,
            window,
            message,
        })
    }
    /// The most issues per window.
    pub fn max(&self) -> u32 {
        self.max
    }
    /// The window.
    pub fn window(&self) -> Window {
        self.window
    }
    /// The message it counts, or `None` for every issue.
    pub fn message(&self) -> Option<Message> {
        self.message
    }
    /// Whether an issue with `message` counts toward this cap.
    pub fn applies_to(&self, message: Option<Message>) -> bool {
        self.message.is_none() || self.message == message
    }
}

impl TryFrom<CapRepr> for FrequencyCap {
    type Error = IssuingError;
    fn try_from(r: CapRepr) -> Result<FrequencyCap, IssuingError> {
        FrequencyCap::new(r.max, r.window, r.message)
    }
}

impl From<FrequencyCap> for CapRepr {
    fn from(c: FrequencyCap) -> CapRepr {
        CapRepr {
            max: c.max,
            window: c.window,
            message: c.message,
        }
    }
}

/// Local hours in which pushes and SMS wait: from `start` to `end`, in minutes after local
/// midnight; `start > end` wraps midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "QuietRepr", into = "QuietRepr")
)]
pub struct QuietHours {
    start: u16,
    end: u16,
}

#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
struct QuietRepr {
    start_minute: u16,
    end_minute: u16,
}

const DAY_MINUTES: u16 = 24 * 60;

impl QuietHours {
    /// Quiet from `start_minute` to `end_minute` local (e.g. `22 * 60` to `8 * 60`).
    ///
    /// # Errors
    /// [`IssuingError::Invalid`]: `policy.quiet.start_minute` or `end_minute` of 1440 or more,
    /// or the two equal.
    pub fn new(start_minute: u16, end_minute: u16) -> Result<QuietHours, IssuingError> {
        for (field, m) in [
            ("policy.quiet.start_minute", start_minute),
            ("policy.quiet.end_minute", end_minute),
        ] {
            if m >= DAY_MINUTES {
                return Err(invalid(field, m, "a minute of the day is below 1440"));
            }
        }
        if start_minute == end_minute {
            return Err(invalid(
                "policy.quiet.end_minute",
                end_minute,
                "quiet hours end at another minute than they start",
            ));
        }
        Ok(QuietHours {
            start: start_minute,
            end: end_minute,
        })
    }

    /// The first minute (local) of quiet.
    pub fn start_minute(&self) -> u16 {
        self.start
    }
    /// The first minute (local) after quiet.
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// When a message decided at `now` may go out to a user at `offset`: `now` outside the
    /// quiet hours, their end inside them.
    pub fn deliver_at(&self, now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
        let local = local(now, offset);
        let secs = i64::from(local.num_seconds_from_midnight());
        let nanos = i64::from(local.nanosecond() % 1_000_000_000);
        let (start, end) = (i64::from(self.start) * 60, i64::from(self.end) * 60);
        let quiet = if start < end {
            start <= secs && secs < end
        } else {
            secs >= start || secs < end
        };
        if !quiet {
            return now;
        }
        let to_end = Duration::seconds(end - secs) - Duration::nanoseconds(nanos);
        if to_end > Duration::zero() {
            shift(now, to_end)
        } else {
            shift(now, to_end + Duration::days(1))
        }
    }
}

impl TryFrom<QuietRepr> for QuietHours {
    type Error = IssuingError;
    fn try_from(r: QuietRepr) -> Result<QuietHours, IssuingError> {
        QuietHours::new(r.start_minute, r.end_minute)
    }
}

impl From<QuietHours> for QuietRepr {
    fn from(q: QuietHours) -> QuietRepr {
        QuietRepr {
            start_minute: q.start,
            end_minute: q.end,
        }
    }
}

/// A campaign budget: the most money (in expected cost) and the most issues its rules may
/// spend, over all users.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "BudgetRepr", into = "BudgetRepr")
)]
pub struct Budget {
    id: BudgetId,
    money: Option<Money>,
    count: Option<u64>,
}

#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
struct BudgetRepr {
    id: BudgetId,
    #[cfg_attr(feature = "serde", serde(default))]
    money: Option<Money>,
    #[cfg_attr(feature = "serde", serde(default))]
    count: Option<u64>,
}

impl Budget {
    /// A budget of at most `money` and at most `count` issues (at least one of them set).
    ///
    /// # Errors
    /// [`IssuingError::Invalid`]: `policy.budgets.money` negative, or neither limit set
    /// (`policy.budgets`).
    pub fn new(
        id: BudgetId,
        money: Option<Money>,
        count: Option<u64>,
    ) -> Result<Budget, IssuingError> {
        if let Some(m) = money {
            if m.is_negative() {
                return Err(invalid(
                    "policy.budgets.money",
                    m,
                    "a budget is zero or more",
                ));
            }
        }
        if money.is_none() && count.is_none() {
            return Err(invalid(
                "policy.budgets",
                id,
                "a budget limits money, issues or both",
            ));
        }
        Ok(Budget { id, money, count })
    }
    /// Its id.
    pub fn id(&self) -> &BudgetId {
        &self.id
    }
    /// The most money.
    pub fn money(&self) -> Option<Money> {
        self.money
    }
    /// The most issues.
    pub fn count(&self) -> Option<u64> {
        self.count
    }
}

impl TryFrom<BudgetRepr> for Budget {
    type Error = IssuingError;
    fn try_from(r: BudgetRepr) -> Result<Budget, IssuingError> {
        Budget::new(r.id, r.money, r.count)
    }
}

impl From<Budget> for BudgetRepr {
    fn from(b: Budget) -> BudgetRepr {
        BudgetRepr {
            id: b.id,
            money: b.money,
            count: b.count,
        }
    }
}

/// The guards every rule shares. Costs and budgets are in `currency`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Policy {
    /// The currency of every cost and budget.
    pub currency: Currency,
    /// Frequency caps per user, all of which must hold.
    #[cfg_attr(feature = "serde", serde(default))]
    pub caps: Vec<FrequencyCap>,
    /// Quiet hours, in each user's local time.
    #[cfg_attr(feature = "serde", serde(default))]
    pub quiet: Option<QuietHours>,
    /// Campaign budgets, by id.
    #[cfg_attr(feature = "serde", serde(default))]
    pub budgets: Vec<Budget>,
}

impl Policy {
    /// No caps, no quiet hours, no budgets.
    pub fn new(currency: Currency) -> Policy {
        Policy {
            currency,
            caps: Vec::new(),
            quiet: None,
            budgets: Vec::new(),
        }
    }
    /// Adds a frequency cap.
    pub fn cap(mut self, cap: FrequencyCap) -> Policy {
        self.caps.push(cap);
        self
    }
    /// Sets the quiet hours.
    pub fn quiet(mut self, quiet: QuietHours) -> Policy {
        self.quiet = Some(quiet);
        self
    }
    /// Adds a budget.
    pub fn budget(mut self, budget: Budget) -> Policy {
        self.budgets.push(budget);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn quiet_hours_defer_to_their_local_end() {
        let q = QuietHours::new(22 * 60, 8 * 60).unwrap();
        let bj = FixedOffset::east_opt(8 * 3600).unwrap();
        // 23:30 Beijing → 08:00 next day Beijing = 00:00 UTC.
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 15, 30, 0).unwrap();
        assert_eq!(
            q.deliver_at(t, bj),
            Utc.with_ymd_and_hms(2026, 6, 2, 0, 0, 0).unwrap()
        );
        // 07:59 Beijing → 08:00 the same day.
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 23, 59, 0).unwrap();
        assert_eq!(
            q.deliver_at(t, bj),
            Utc.with_ymd_and_hms(2026, 6, 2, 0, 0, 0).unwrap()
        );
        // 08:00 Beijing: not quiet.
        let t = Utc.with_ymd_and_hms(2026, 6, 2, 0, 0, 0).unwrap();
        assert_eq!(q.deliver_at(t, bj), t);
        let day = QuietHours::new(12 * 60, 14 * 60).unwrap();
        let utc = FixedOffset::east_opt(0).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 13, 0, 0).unwrap();
        assert_eq!(
            day.deliver_at(t, utc),
            Utc.with_ymd_and_hms(2026, 6, 1, 14, 0, 0).unwrap()
        );
        assert!(QuietHours::new(5, 5).is_err());
        assert!(QuietHours::new(1440, 5).is_err());
    }

    #[test]
    fn calendar_windows_start_at_local_midnight() {
        let bj = FixedOffset::east_opt(8 * 3600).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 6, 10, 1, 0, 0).unwrap(); // 09:00 on the 10th
        assert_eq!(
            Window::Calendar { days: 1 }.start(now, bj),
            Utc.with_ymd_and_hms(2026, 6, 9, 16, 0, 0).unwrap()
        );
        assert_eq!(
            Window::Calendar { days: 7 }.start(now, bj),
            Utc.with_ymd_and_hms(2026, 6, 3, 16, 0, 0).unwrap()
        );
        assert_eq!(
            Window::Rolling { days: 7 }.start(now, bj),
            Utc.with_ymd_and_hms(2026, 6, 3, 1, 0, 0).unwrap() + Duration::microseconds(1)
        );
    }
}
