//! Who may use a coupon, where and when, and the minimum cart it needs.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Timelike, Utc, Weekday};

use super::error::RuleError;
use crate::cart::{Buyer, CartLine, CustomerKind};
use crate::id::{CategoryId, Channel, MembershipLevel, SegmentId, ShopId, Sku, UserId};
use crate::money::Money;

#[cfg(feature = "serde")]
crate::de::field_paths! {
    fn customer_at -> nested Option<CustomerKind> = "conditions.audience.customer";
    fn levels_at -> Option<BTreeSet<MembershipLevel>> = "conditions.audience.membership_levels";
    fn segments_at -> Option<BTreeSet<SegmentId>> = "conditions.audience.segments";
    fn users_at -> Option<BTreeSet<UserId>> = "conditions.audience.users";
    fn utc_offset_at -> String = "conditions.schedule.utc_offset";
    fn days_at -> nested_list Weekday = "conditions.schedule.days";
    fn windows_at -> nested_list TimeWindow = "conditions.schedule.windows";
    fn min_subtotal_at -> Option<Money> = "conditions.min_subtotal";
    fn min_quantity_at -> Option<u32> = "conditions.min_quantity";
    fn audience_at -> nested AudienceSpec = "conditions.audience";
    fn channels_at -> Option<BTreeSet<Channel>> = "conditions.channels";
    fn schedule_at -> nested Option<ScheduleSpec> = "conditions.schedule";
    fn max_subtotal_at -> Option<Money> = "conditions.max_subtotal";
    fn requires_at -> nested_list Requirement = "conditions.requires";
    fn req_skus_at -> Option<BTreeSet<Sku>> = "conditions.requires.skus";
    fn req_categories_at -> Option<BTreeSet<CategoryId>> = "conditions.requires.categories";
    fn req_shops_at -> Option<BTreeSet<ShopId>> = "conditions.requires.shops";
    fn req_quantity_at -> u32 = "conditions.requires.min_quantity";
}

/// Items the cart must contain for a coupon to apply, apart from its scope: "the order
/// contains SKU X", "at least 2 items of category Y", "an item from shop Z". A line matches when
/// its shop is in `shops` (if set) and its SKU is in `skus` or one of its categories is in
/// `categories` (when either is set); the matching lines must hold `min_quantity` units.
///
/// The scope decides what is discounted and the requirement only whether the coupon applies:
/// "10 % off tea when the order contains a teapot".
///
/// ```
/// use coupons::rule::Requirement;
/// use coupons::id::Sku;
/// let teapot = Requirement::skus([Sku::new("teapot")?], 1)?;
/// assert_eq!(teapot.min_quantity, 1);
/// assert!(Requirement::skus([], 1).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Requirement {
    /// These SKUs (or the `categories`), if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "req_skus_at"
        )
    )]
    pub skus: Option<BTreeSet<Sku>>,
    /// These categories (or the `skus`), if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "req_categories_at"
        )
    )]
    pub categories: Option<BTreeSet<CategoryId>>,
    /// Only these shops' items, if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "req_shops_at"
        )
    )]
    pub shops: Option<BTreeSet<ShopId>>,
    /// Units of matching lines needed, at least 1 (default 1).
    #[cfg_attr(
        feature = "serde",
        serde(default = "one", deserialize_with = "req_quantity_at")
    )]
    pub min_quantity: u32,
}

#[cfg(feature = "serde")]
fn one() -> u32 {
    1
}

impl Requirement {
    /// At least `min_quantity` units of these SKUs.
    ///
    /// # Errors
    /// As [`Requirement::check`].
    pub fn skus(
        skus: impl IntoIterator<Item = Sku>,
        min_quantity: u32,
    ) -> Result<Requirement, RuleError> {
        let r = Requirement {
            skus: Some(skus.into_iter().collect()),
            categories: None,
            shops: None,
            min_quantity,
        };
        r.check()?;
        Ok(r)
    }

    /// At least `min_quantity` units in these categories.
    ///
    /// # Errors
    /// As [`Requirement::check`].
    pub fn categories(
        categories: impl IntoIterator<Item = CategoryId>,
        min_quantity: u32,
    ) -> Result<Requirement, RuleError> {
        let r = Requirement {
            skus: None,
            categories: Some(categories.into_iter().collect()),
            shops: None,
            min_quantity,
        };
        r.check()?;
        Ok(r)
    }

    /// Checks the requirement (the conditions run this for each).
    ///
    /// # Errors
    /// [`RuleError::Conflict`] when no SKU, category or shop is named; [`RuleError::Empty`]
    /// when a list is empty;
    /// [`RuleError::Zero`] for a zero quantity.
    pub fn check(&self) -> Result<(), RuleError> {
        if self.skus.is_none() && self.categories.is_none() && self.shops.is_none() {
            return Err(RuleError::Conflict {
                field: "conditions.requires",
                reason: "a requirement names `skus`, `categories` or `shops`".into(),
            });
        }
        for (field, empty) in [
            (
                "conditions.requires.skus",
                self.skus.as_ref().is_some_and(BTreeSet::is_empty),
            ),
            (
                "conditions.requires.categories",
                self.categories.as_ref().is_some_and(BTreeSet::is_empty),
            ),
            (
                "conditions.requires.shops",
                self.shops.as_ref().is_some_and(BTreeSet::is_empty),
            ),
        ] {
            if empty {
                return Err(RuleError::Empty { field });
            }
        }
        if self.min_quantity == 0 {
            return Err(RuleError::Zero {
                field: "conditions.requires.min_quantity",
            });
        }
        Ok(())
    }

    /// Whether a line counts toward the requirement.
    pub fn matches(&self, line: &CartLine) -> bool {
        if let Some(shops) = &self.shops {
            if !line.shop.as_ref().is_some_and(|s| shops.contains(s)) {
                return false;
            }
        }
        if self.skus.is_none() && self.categories.is_none() {
            return true;
        }
        self.skus.as_ref().is_some_and(|k| k.contains(&line.sku))
            || self
                .categories
                .as_ref()
                .is_some_and(|c| line.categories.iter().any(|x| c.contains(x)))
    }

    /// How many more matching units `lines` need (zero when the requirement holds).
    pub fn missing(&self, lines: &[CartLine]) -> u32 {
        let have: u64 = lines
            .iter()
            .filter(|l| self.matches(l))
            .map(|l| u64::from(l.quantity))
            .sum();
        let need = u64::from(self.min_quantity);
        u32::try_from(need.saturating_sub(have)).unwrap_or(u32::MAX)
    }
}

/// Which buyers may use a coupon. Every field that is set must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct AudienceSpec {
    /// Only new, or only returning, buyers.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "customer_at"
        )
    )]
    pub customer: Option<CustomerKind>,
    /// Only these membership levels.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "levels_at"
        )
    )]
    pub membership_levels: Option<BTreeSet<MembershipLevel>>,
    /// Only buyers in at least one of these segments.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "segments_at"
        )
    )]
    pub segments: Option<BTreeSet<SegmentId>>,
    /// Only these named users.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", deserialize_with = "users_at")
    )]
    pub users: Option<BTreeSet<UserId>>,
}

/// A daily time-of-day window `[start, end)` in the schedule's offset. A window whose end is
/// before its start runs past midnight (`22:00`–`02:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct TimeWindow {
    /// Start, inclusive.
    pub start: NaiveTime,
    /// End, exclusive.
    pub end: NaiveTime,
}

impl TimeWindow {
    fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// When in the week a coupon may be used, in an explicit UTC offset: the days of the week and,
/// optionally, time-of-day windows ("weekdays 11:00–14:00, UTC+08:00").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ScheduleSpec {
    /// The offset local days and times are read in, e.g. `"+08:00"`.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "utc_offset_at"))]
    pub utc_offset: String,
    /// Days of the week (`"Mon"`…); empty means every day.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "days_at"))]
    pub days: Vec<Weekday>,
    /// Windows of the day; empty means all day.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "windows_at"))]
    pub windows: Vec<TimeWindow>,
}

/// A checked [`ScheduleSpec`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Schedule {
    offset: FixedOffset,
    days: u8,
    windows: Vec<TimeWindow>,
    spec: ScheduleSpec,
}

pub(crate) fn parse_offset(s: &str) -> Result<FixedOffset, RuleError> {
    let bad = |reason| RuleError::Invalid {
        field: "conditions.schedule.utc_offset",
        value: s.to_owned(),
        reason,
    };
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad("an offset starts with + or -, e.g. +08:00")),
    };
    let (h, m) = rest
        .split_once(':')
        .ok_or(bad("an offset is ±HH:MM, e.g. +08:00"))?;
    // Two ASCII digits each: `str::parse` alone would take "+8" or "+05" as numbers.
    let two_digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad("an offset is ±HH:MM, e.g. +08:00"));
    }
    let h: i32 = h.parse().map_err(|_| bad("hours are a number"))?;
    let m: i32 = m.parse().map_err(|_| bad("minutes are a number"))?;
    if h * 60 + m > 14 * 60 || !(0..60).contains(&m) {
        return Err(bad("an offset is between -14:00 and +14:00"));
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or(bad("offset out of range"))
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = RuleError;
    fn try_from(spec: ScheduleSpec) -> Result<Self, RuleError> {
        let offset = parse_offset(&spec.utc_offset)?;
        let days = if spec.days.is_empty() {
            0x7f
        } else {
            spec.days
                .iter()
                .fold(0u8, |acc, d| acc | (1 << d.num_days_from_monday()))
        };
        for w in &spec.windows {
            if w.start == w.end {
                return Err(RuleError::Invalid {
                    field: "conditions.schedule.windows",
                    value: format!("{}-{}", w.start, w.end),
                    reason: "a window's start and end must differ",
                });
            }
        }
        Ok(Schedule {
            offset,
            days,
            windows: spec.windows.clone(),
            spec,
        })
    }
}

impl Schedule {
    /// Whether `now` falls on an allowed day and inside an allowed window.
    pub fn allows(&self, now: DateTime<Utc>) -> bool {
        let local = now.with_timezone(&self.offset);
        let t = local.time();
        // A window past midnight belongs to the day it started on.
        let day_of = |w: &TimeWindow| {
            if w.start > w.end && t < w.end {
                local.weekday().pred()
            } else {
                local.weekday()
            }
        };
        let day_ok = |d: Weekday| self.days & (1 << d.num_days_from_monday()) != 0;
        if self.windows.is_empty() {
            return day_ok(local.weekday());
        }
        self.windows
            .iter()
            .any(|w| w.contains(t) && day_ok(day_of(w)))
    }

    /// The plain data.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// Seconds since local midnight of `now` (for reasons shown to buyers).
    pub fn local_time(&self, now: DateTime<Utc>) -> NaiveTime {
        let l = now.with_timezone(&self.offset);
        NaiveTime::from_num_seconds_from_midnight_opt(l.num_seconds_from_midnight(), 0)
            .unwrap_or(NaiveTime::MIN)
    }
}

/// The plain data of [`Conditions`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ConditionsSpec {
    /// The eligible subtotal (lines in scope) must reach this.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "min_subtotal_at"
        )
    )]
    pub min_subtotal: Option<Money>,
    /// The eligible quantity (units in scope) must reach this.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "min_quantity_at"
        )
    )]
    pub min_quantity: Option<u32>,
    /// Who may use it.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "audience_at"))]
    pub audience: AudienceSpec,
    /// Only on these channels, if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "channels_at"
        )
    )]
    pub channels: Option<BTreeSet<Channel>>,
    /// The undiscounted subtotal of the lines in scope must not exceed this (measured before
    /// any discount, whatever the policy's threshold base, so that a discount never makes a
    /// coupon usable).
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_subtotal_at"
        )
    )]
    pub max_subtotal: Option<Money>,
    /// Items the cart must contain, apart from the scope; every requirement must hold.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Vec::is_empty",
            deserialize_with = "requires_at"
        )
    )]
    pub requires: Vec<Requirement>,
    /// Only at these days and times, if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "schedule_at"
        )
    )]
    pub schedule: Option<ScheduleSpec>,
}

/// When a coupon may be used: minimum cart, audience, channels and schedule. Valid by
/// construction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ConditionsSpec", into = "ConditionsSpec")
)]
pub struct Conditions {
    spec: ConditionsSpec,
    schedule: Option<Schedule>,
}

/// Why a buyer is not in a coupon's audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum AudienceMiss {
    /// New buyers only.
    NewUsersOnly,
    /// Returning buyers only.
    ReturningUsersOnly,
    /// Certain membership levels only.
    MembershipLevel,
    /// Certain segments only.
    Segment,
    /// Certain named users only.
    NamedUsers,
}

impl Conditions {
    /// No conditions.
    pub fn none() -> Conditions {
        Conditions::default()
    }

    /// The plain data.
    pub fn spec(&self) -> &ConditionsSpec {
        &self.spec
    }

    /// The minimum eligible subtotal, if any.
    pub fn min_subtotal(&self) -> Option<Money> {
        self.spec.min_subtotal
    }

    /// The maximum undiscounted subtotal of the lines in scope, if any.
    pub fn max_subtotal(&self) -> Option<Money> {
        self.spec.max_subtotal
    }

    /// The items the cart must contain.
    pub fn requires(&self) -> &[Requirement] {
        &self.spec.requires
    }

    /// The minimum eligible quantity, if any.
    pub fn min_quantity(&self) -> Option<u32> {
        self.spec.min_quantity
    }

    /// The schedule, if any.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// Every audience rule the buyer misses (empty when the buyer is in the audience).
    pub fn audience_misses(&self, buyer: &Buyer) -> Vec<AudienceMiss> {
        let a = &self.spec.audience;
        let mut v = Vec::new();
        match a.customer {
            Some(CustomerKind::New) if buyer.kind != CustomerKind::New => {
                v.push(AudienceMiss::NewUsersOnly)
            }
            Some(CustomerKind::Returning) if buyer.kind != CustomerKind::Returning => {
                v.push(AudienceMiss::ReturningUsersOnly)
            }
            _ => {}
        }
        if let Some(levels) = &a.membership_levels {
            if !buyer
                .membership
                .as_ref()
                .is_some_and(|m| levels.contains(m))
            {
                v.push(AudienceMiss::MembershipLevel);
            }
        }
        if let Some(segs) = &a.segments {
            if !buyer.segments.iter().any(|s| segs.contains(s)) {
                v.push(AudienceMiss::Segment);
            }
        }
        if let Some(users) = &a.users {
            if !users.contains(&buyer.user) {
                v.push(AudienceMiss::NamedUsers);
            }
        }
        v
    }

    /// Whether the channel is allowed.
    pub fn allows_channel(&self, channel: &Channel) -> bool {
        self.spec
            .channels
            .as_ref()
            .is_none_or(|c| c.contains(channel))
    }
}

impl TryFrom<ConditionsSpec> for Conditions {
    type Error = RuleError;

    /// # Errors
    /// [`RuleError::NotPositive`] for a minimum subtotal not above zero, [`RuleError::Zero`] for
    /// a zero minimum quantity, [`RuleError::Empty`] for an empty audience or channel list, and
    /// the schedule's errors.
    fn try_from(spec: ConditionsSpec) -> Result<Self, RuleError> {
        if let Some(m) = spec.min_subtotal {
            if !m.is_positive() {
                return Err(RuleError::NotPositive {
                    field: "conditions.min_subtotal",
                    value: m,
                });
            }
        }
        if let Some(max) = spec.max_subtotal {
            if !max.is_positive() {
                return Err(RuleError::NotPositive {
                    field: "conditions.max_subtotal",
                    value: max,
                });
            }
            if let Some(min) = spec.min_subtotal {
                if min.currency() == max.currency() && max < min {
                    return Err(RuleError::Conflict {
                        field: "conditions.max_subtotal",
                        reason: format!("{max} is below the minimum subtotal {min}"),
                    });
                }
            }
        }
        for r in &spec.requires {
            r.check()?;
        }
        if spec.min_quantity == Some(0) {
            return Err(RuleError::Zero {
                field: "conditions.min_quantity",
            });
        }
        let a = &spec.audience;
        if a.membership_levels.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "conditions.audience.membership_levels",
            });
        }
        if a.segments.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "conditions.audience.segments",
            });
        }
        if a.users.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "conditions.audience.users",
            });
        }
        if spec.channels.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "conditions.channels",
            });
        }
        let schedule = spec.schedule.clone().map(Schedule::try_from).transpose()?;
        Ok(Conditions { spec, schedule })
    }
}

impl From<Conditions> for ConditionsSpec {
    fn from(c: Conditions) -> Self {
        c.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sched(days: Vec<Weekday>, windows: Vec<(u32, u32)>) -> Schedule {
        Schedule::try_from(ScheduleSpec {
            utc_offset: "+08:00".into(),
            days,
            windows: windows
                .into_iter()
                .map(|(s, e)| TimeWindow {
                    start: NaiveTime::from_hms_opt(s, 0, 0).unwrap(),
                    end: NaiveTime::from_hms_opt(e, 0, 0).unwrap(),
                })
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn schedule_reads_local_days_and_windows() {
        // 2026-11-23 is a Monday; 03:30 UTC is 11:30 at +08:00.
        let mon_1130 = Utc.with_ymd_and_hms(2026, 11, 23, 3, 30, 0).unwrap();
        let s = sched(vec![Weekday::Mon], vec![(11, 14)]);
        assert!(s.allows(mon_1130));
        assert!(!s.allows(mon_1130 + chrono::Duration::hours(3)));
        assert!(!s.allows(mon_1130 + chrono::Duration::days(1)));
        // 22:00–02:00 on Mondays: Tuesday 01:00 local still counts as Monday's window.
        let late = sched(vec![Weekday::Mon], vec![(22, 2)]);
        let tue_0100 = Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap();
        assert!(late.allows(tue_0100));
        assert!(!late.allows(tue_0100 + chrono::Duration::days(1)));
    }

    #[test]
    fn bad_offsets_are_rejected() {
        for bad in [
            "8",
            "+8",
            "+15:00",
            "+08:61",
            "UTC",
            "++8:00",
            "+08:+5",
            "+8:00",
            "+14:30",
            "+08:00:00",
        ] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_offset("-05:30").unwrap().local_minus_utc(),
            -(5 * 3600 + 1800)
        );
    }
}
