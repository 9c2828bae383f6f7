//! Lifecycle segments and RFM scores: who is new, active, high value, dormant or at risk of
//! churning, and the classic recency–frequency–monetary quintiles with their named segments —
//! ready for a coupon's audience rules ([`Buyer::segments`](crate::cart::Buyer)).
//!
//! # Lifecycle
//!
//! Each customer gets exactly one segment, the first rule that holds, in this order (defaults
//! of [`LifecycleRules`] in brackets; days are whole local days in the statistics' offset):
//!
//! 1. **new** (`new`): first order at most `new_days` (30) days ago;
//! 2. **dormant** (`dormant`): no order for at least `dormant_days` (90) days;
//! 3. **churn risk** (`churn-risk`): the caller's probability that the customer is still alive
//!    (for example from the BG/NBD model) is below `churn_below` (0.5);
//! 4. **high value** (`high-value`): lifetime GMV in the top `high_value_share` (20 %) of all
//!    customers — everyone tied with the cut value is in;
//! 5. **active** (`active`): everyone else.
//!
//! The order follows the coupon each tier is usually sent — a first-order coupon to new
//! customers, a come-back coupon to dormant ones, a care coupon to those at risk, a VIP coupon
//! to high-value ones: a high-value customer drifting away gets the care coupon, not the VIP one.
//!
//! # RFM
//!
//! Recency (days since the last order; more recent scores higher), frequency (lifetime orders)
//! and monetary value (lifetime GMV) are each scored 1 to 5 by quintile. Equal values always
//! get equal scores — ties never split across bins — and ties never collapse a bin: with at
//! least five distinct values every score 1–5 is used, the boundaries placed at the distinct
//! values nearest to the ideal fifths. With `k < 5` distinct values, `k` scores spread over 1–5
//! are used (two values score 1 and 5; a single value scores 3). Named segments come from
//! recency and `FM = ⌈(F + M) / 2⌉`:
//!
//! | R \ FM | 1 | 2 | 3 | 4 | 5 |
//! |---|---|---|---|---|---|
//! | 5 | new customers | potential loyalist | potential loyalist | champions | champions |
//! | 4 | promising | potential loyalist | potential loyalist | loyal | loyal |
//! | 3 | about to sleep | about to sleep | need attention | loyal | loyal |
//! | 2 | hibernating | hibernating | at risk | at risk | can't lose |
//! | 1 | lost | lost | at risk | at risk | can't lose |
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::cart::Buyer;
//! use coupons::id::{Channel, UserId};
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::*;
//!
//! let cny = Currency::CNY;
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let day = |m, d| Utc.with_ymd_and_hms(2026, m, d, 4, 0, 0).unwrap();
//! let mut stats = CycleStats::new(cycles, cny);
//! let orders = [("ann", day(1, 5), 900), ("ann", day(5, 20), 900), ("bob", day(1, 9), 50), ("cy", day(5, 28), 60)];
//! for (user, at, gross) in orders {
//!     let user = UserId::new(user)?;
//!     stats.add(&Order::new(user, at, Money::from_minor(gross * 100, cny), Money::zero(cny), Money::from_minor(gross * 100, cny), false)?)?;
//! }
//! let now = day(6, 1);
//! let p_alive = |u: &UserId| if u.as_str() == "ann" { Some(0.3) } else { None };
//! let life = lifecycle_segments(&stats, now, &LifecycleRules::default(), p_alive)?;
//! assert_eq!(life.get(&UserId::new("cy")?), Some(Lifecycle::New));
//! assert_eq!(life.get(&UserId::new("bob")?), Some(Lifecycle::Dormant));
//! assert_eq!(life.get(&UserId::new("ann")?), Some(Lifecycle::ChurnRisk));
//!
//! // Straight into the checkout's audience rules.
//! let mut buyer = Buyer::new(UserId::new("bob")?, Channel::new("app")?);
//! life.tag(&mut buyer);
//! rfm_scores(&stats, now)?.tag(&mut buyer);
//! assert!(buyer.segments.iter().any(|s| s.as_str() == "dormant"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::error::TargetingError;
use super::hash::FastMap;
use super::stats::{CycleStats, UserKey, instant};
use crate::cart::Buyer;
use crate::id::{SegmentId, UserId};

/// A lifecycle segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Lifecycle {
    /// First order recently.
    New,
    /// Ordering, nothing special.
    Active,
    /// Among the top spenders.
    HighValue,
    /// No order for a long time.
    Dormant,
    /// Likely to stop buying.
    ChurnRisk,
}

impl Lifecycle {
    /// Every segment.
    pub const ALL: [Lifecycle; 5] = [
        Lifecycle::New,
        Lifecycle::Active,
        Lifecycle::HighValue,
        Lifecycle::Dormant,
        Lifecycle::ChurnRisk,
    ];
    /// `new`, `active`, `high-value`, `dormant`, `churn-risk`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::HighValue => "high-value",
            Lifecycle::Dormant => "dormant",
            Lifecycle::ChurnRisk => "churn-risk",
        }
    }
    /// The segment id for audience rules.
    pub fn segment_id(&self) -> SegmentId {
        SegmentId::trusted(self.as_str())
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rules of [`lifecycle_segments`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct LifecycleRules {
    /// New: first order at most this many days ago. 30.
    pub new_days: u32,
    /// Dormant: no order for at least this many days. 90.
    pub dormant_days: u32,
    /// Churn risk: probability alive below this. 0.5.
    pub churn_below: f64,
    /// High value: the top share of customers by lifetime GMV. 0.2.
    pub high_value_share: Decimal,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        LifecycleRules {
            new_days: 30,
            dormant_days: 90,
            churn_below: 0.5,
            high_value_share: Decimal::new(2, 1),
        }
    }
}

/// Segments keyed by user; built by [`lifecycle_segments`] and [`rfm_scores`].
#[derive(Clone, Debug)]
pub struct Segments<K, S> {
    users: FastMap<K, S>,
}

impl<K: UserKey, S: Copy> Segments<K, S> {
    /// A user's segment.
    pub fn get(&self, user: &K) -> Option<S> {
        self.users.get(user).copied()
    }
    /// Every user, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.users.iter()
    }
    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl<K: UserKey, S: Copy + Eq + std::hash::Hash> Segments<K, S> {
    /// How many users are in each segment.
    pub fn counts(&self) -> HashMap<S, usize> {
        let mut m = HashMap::new();
        for s in self.users.values() {
            *m.entry(*s).or_insert(0) += 1;
        }
        m
    }
}

impl Segments<UserId, Lifecycle> {
    /// Adds the buyer's lifecycle segment to [`Buyer::segments`].
    pub fn tag(&self, buyer: &mut Buyer) {
        if let Some(s) = self.get(&buyer.user) {
            buyer.segments.insert(s.segment_id());
        }
    }
}

impl Segments<UserId, RfmScore> {
    /// Adds the buyer's RFM segment to [`Buyer::segments`].
    pub fn tag(&self, buyer: &mut Buyer) {
        if let Some(s) = self.get(&buyer.user) {
            buyer.segments.insert(s.segment.segment_id());
        }
    }
}

/// Lifecycle segments of every customer at `now`; `p_alive` gives a user's probability of
/// still being a customer (`None` when unknown: the churn rule is skipped for them).
///
/// # Errors
/// [`TargetingError::RateOutOfRange`] for a high-value share outside `[0, 1]`.
pub fn lifecycle_segments<K: UserKey, F: Fn(&K) -> Option<f64>>(
    stats: &CycleStats<K>,
    now: DateTime<Utc>,
    rules: &LifecycleRules,
    p_alive: F,
) -> Result<Segments<K, Lifecycle>, TargetingError> {
    let share = rules.high_value_share;
    if share < Decimal::ZERO || share > Decimal::ONE {
        return Err(TargetingError::RateOutOfRange {
            field: "lifecycle.high_value_share",
            value: share,
        });
    }
    let cycles = stats.cycles();
    let until = cycles.index_of(now).0;
    let mut gmv: Vec<i64> = stats
        .users
        .values()
        .map(|r| r.lifetime(until).gross)
        .collect();
    let n = gmv.len();
    let top = (share * Decimal::from(n as u64)).ceil();
    let top = u64::try_from(top)
        .map_or(0, |t| usize::try_from(t).unwrap_or(n))
        .min(n);
    // The cut: the smallest GMV among the top `top` customers.
    let cut = if top == 0 {
        None
    } else {
        let i = n - top;
        gmv.get_mut(..).map(|g| *g.select_nth_unstable(i).1)
    };
    drop(gmv);
    let mut users = FastMap::with_capacity_and_hasher(stats.users.len(), Default::default());
    for (k, r) in &stats.users {
        let since_first = cycles.days_between(instant(r.first), now);
        let since_last = cycles.days_between(instant(r.last), now);
        let s = if since_first <= i64::from(rules.new_days) {
            Lifecycle::New
        } else if since_last >= i64::from(rules.dormant_days) {
            Lifecycle::Dormant
        } else if p_alive(k).is_some_and(|p| p < rules.churn_below) {
            Lifecycle::ChurnRisk
        } else if cut.is_some_and(|c| r.lifetime(until).gross >= c) {
            Lifecycle::HighValue
        } else {
            Lifecycle::Active
        };
        users.insert(k.clone(), s);
    }
    Ok(Segments { users })
}

/// A named RFM segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum RfmSegment {
    /// Bought recently, buy often and spend the most.
    Champions,
    /// Buy regularly.
    Loyal,
    /// Recent, with some frequency.
    PotentialLoyalist,
    /// Bought recently, for the first time.
    NewCustomers,
    /// Recent, not much yet.
    Promising,
    /// Middling on everything.
    NeedAttention,
    /// Slipping, never bought much.
    AboutToSleep,
    /// Used to buy a lot, not lately.
    AtRisk,
    /// The best customers of the past, gone quiet.
    CantLose,
    /// Long ago, little.
    Hibernating,
    /// Longest ago, least.
    Lost,
}

impl RfmSegment {
    /// Every segment.
    pub const ALL: [RfmSegment; 11] = [
        RfmSegment::Champions,
        RfmSegment::Loyal,
        RfmSegment::PotentialLoyalist,
        RfmSegment::NewCustomers,
        RfmSegment::Promising,
        RfmSegment::NeedAttention,
        RfmSegment::AboutToSleep,
        RfmSegment::AtRisk,
        RfmSegment::CantLose,
        RfmSegment::Hibernating,
        RfmSegment::Lost,
    ];

    /// The segment of an (R, FM) pair, each 1–5 (see the [module docs](self)).
    pub fn of(r: u8, fm: u8) -> RfmSegment {
        match (r, fm) {
            (5, 1) => RfmSegment::NewCustomers,
            (5, 4..) | (5, 0) => RfmSegment::Champions,
            (4 | 5, 2 | 3) => RfmSegment::PotentialLoyalist,
            (4, 1) => RfmSegment::Promising,
            (3 | 4, 4..) => RfmSegment::Loyal,
            (3, 3) => RfmSegment::NeedAttention,
            (3, _) => RfmSegment::AboutToSleep,
            (4, _) => RfmSegment::Promising,
            (_, 5..) => RfmSegment::CantLose,
            (_, 3 | 4) => RfmSegment::AtRisk,
            (2, _) => RfmSegment::Hibernating,
            _ => RfmSegment::Lost,
        }
    }

    /// `champions`, `loyal`, `potential-loyalist`, `new-customers`, `promising`,
    /// `need-attention`, `about-to-sleep`, `at-risk`, `cant-lose`, `hibernating`, `lost`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RfmSegment::Champions => "champions",
            RfmSegment::Loyal => "loyal",
            RfmSegment::PotentialLoyalist => "potential-loyalist",
            RfmSegment::NewCustomers => "new-customers",
            RfmSegment::Promising => "promising",
            RfmSegment::NeedAttention => "need-attention",
            RfmSegment::AboutToSleep => "about-to-sleep",
            RfmSegment::AtRisk => "at-risk",
            RfmSegment::CantLose => "cant-lose",
            RfmSegment::Hibernating => "hibernating",
            RfmSegment::Lost => "lost",
        }
    }

    /// The segment id for audience rules.
    pub fn segment_id(&self) -> SegmentId {
        SegmentId::trusted(self.as_str())
    }
}

impl fmt::Display for RfmSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user's RFM scores and segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RfmScore {
    /// Recency score, 1–5 (5: most recent).
    pub r: u8,
    /// Frequency score, 1–5.
    pub f: u8,
    /// Monetary score, 1–5.
    pub m: u8,
    /// The named segment.
    pub segment: RfmSegment,
}

/// Scores 1–5 for `values` by quintile (see the [module docs](self)): equal values get equal
/// scores and, with at least five distinct values, every score is used.
///
/// Returns one score per value, in the input order.
pub fn quintile_scores(values: &[i64]) -> Vec<u8> {
    let n = values.len();
    if n == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<i64> = values.to_vec();
    sorted.sort_unstable();
    // Distinct values and the count of values up to each (cumulative).
    let mut distinct: Vec<(i64, usize)> = Vec::with_capacity(n.min(1 << 16));
    for (i, v) in sorted.iter().enumerate() {
        match distinct.last_mut() {
            Some(last) if last.0 == *v => last.1 = i + 1,
            _ => distinct.push((*v, i + 1)),
        }
    }
    let k = distinct.len();
    let groups = k.min(5);
    // ends[j]: index in `distinct` of the last value of group j.
    let mut ends = Vec::with_capacity(groups);
    let mut prev: Option<usize> = None;
    for j in 1..groups {
        let ideal = (j * n) as f64 / groups as f64;
        let lo = prev.map_or(0, |p| p + 1);
        // Leave at least one distinct value for each later group.
        let hi = k - (groups - j) - 1;
        // The cumulative count closest to the ideal, within [lo, hi].
        let pos = distinct.partition_point(|d| (d.1 as f64) < ideal);
        let mut best = pos.clamp(lo, hi);
        if pos > lo {
            let below = (pos - 1).clamp(lo, hi);
            let d = |i: usize| {
                distinct
                    .get(i)
                    .map_or(f64::MAX, |x| (x.1 as f64 - ideal).abs())
            };
            if d(below) <= d(best) {
                best = below;
            }
        }
        ends.push(best);
        prev = Some(best);
    }
    ends.push(k - 1);
    let score_of_group = |g: usize| -> u8 {
        if groups == 1 {
            3
        } else {
            (1 + (g * 4 + (groups - 1) / 2) / (groups - 1)) as u8
        }
    };
    drop(sorted);
    // Score per distinct value, then each value's score by binary search.
    let mut scores = Vec::with_capacity(k);
    let mut g = 0usize;
    for i in 0..k {
        while ends.get(g).is_some_and(|e| i > *e) {
            g += 1;
        }
        scores.push(score_of_group(g));
    }
    values
        .iter()
        .map(|v| {
            let i = distinct.partition_point(|d| d.0 < *v);
            scores.get(i).copied().unwrap_or(3)
        })
        .collect()
}

/// RFM scores of every customer at `now` (orders after `now` are not counted).
///
/// # Errors
/// Never at present; the `Result` leaves room for checks on future settings.
pub fn rfm_scores<K: UserKey>(
    stats: &CycleStats<K>,
    now: DateTime<Utc>,
) -> Result<Segments<K, RfmScore>, TargetingError> {
    let cycles = stats.cycles();
    let until = cycles.index_of(now).0;
    let now_us = now.timestamp_micros();
    let n = stats.users.len();
    let mut keys = Vec::with_capacity(n);
    let mut rec = Vec::with_capacity(n);
    let mut freq = Vec::with_capacity(n);
    let mut money = Vec::with_capacity(n);
    for (k, r) in &stats.users {
        let life = r.lifetime(until);
        keys.push(k);
        // Whole days since the last order: older is lower, so negate for "higher is better".
        let days = (now_us - r.last).max(0) / 86_400_000_000;
        rec.push(-days);
        freq.push(i64::from(life.orders));
        money.push(life.gross);
    }
    let (r, f, m) = (
        quintile_scores(&rec),
        quintile_scores(&freq),
        quintile_scores(&money),
    );
    let mut users = FastMap::with_capacity_and_hasher(n, Default::default());
    for (i, k) in keys.into_iter().enumerate() {
        let (r, f, m) = (
            r.get(i).copied().unwrap_or(3),
            f.get(i).copied().unwrap_or(3),
            m.get(i).copied().unwrap_or(3),
        );
        let fm = (f + m).div_ceil(2);
        users.insert(
            k.clone(),
            RfmScore {
                r,
                f,
                m,
                segment: RfmSegment::of(r, fm),
            },
        );
    }
    Ok(Segments { users })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintiles_of_distinct_values_are_even() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(quintile_scores(&v), vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    }

    #[test]
    fn ties_keep_one_score_and_never_collapse_a_bin() {
        // 60 % tie at 1: they share a score, and the other four values still use 2..5.
        let mut v = vec![1i64; 6];
        v.extend([2, 3, 4, 5]);
        let s = quintile_scores(&v);
        assert!(s[..6].iter().all(|x| *x == s[0]));
        let mut used: Vec<u8> = s.clone();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn small_populations_spread_their_scores() {
        assert_eq!(quintile_scores(&[]), Vec::<u8>::new());
        assert_eq!(quintile_scores(&[7]), vec![3]);
        assert_eq!(quintile_scores(&[7, 7, 7]), vec![3, 3, 3]);
        assert_eq!(quintile_scores(&[1, 2]), vec![1, 5]);
        assert_eq!(quintile_scores(&[1, 2, 3]), vec![1, 3, 5]);
        assert_eq!(quintile_scores(&[5, 1, 3, 2]), vec![5, 1, 4, 2]);
    }

    #[test]
    fn the_grid_names_every_cell() {
        assert_eq!(RfmSegment::of(5, 5), RfmSegment::Champions);
        assert_eq!(RfmSegment::of(5, 1), RfmSegment::NewCustomers);
        assert_eq!(RfmSegment::of(4, 1), RfmSegment::Promising);
        assert_eq!(RfmSegment::of(3, 3), RfmSegment::NeedAttention);
        assert_eq!(RfmSegment::of(3, 2), RfmSegment::AboutToSleep);
        assert_eq!(RfmSegment::of(4, 5), RfmSegment::Loyal);
        assert_eq!(RfmSegment::of(1, 5), RfmSegment::CantLose);
        assert_eq!(RfmSegment::of(2, 4), RfmSegment::AtRisk);
        assert_eq!(RfmSegment::of(2, 1), RfmSegment::Hibernating);
        assert_eq!(RfmSegment::of(1, 2), RfmSegment::Lost);
        let mut seen = std::collections::BTreeSet::new();
        for r in 1..=5 {
            for fm in 1..=5 {
                seen.insert(RfmSegment::of(r, fm));
            }
        }
        assert_eq!(seen.len(), 11);
    }
}
