//! Consumption types: users classified by their last cycle's order count and average order
//! value, plus *new* and *inactive* users.
//!
//! The classification of one cycle `P` (the last complete one):
//!
//! - **new**: the user's first order ever falls in `P`;
//! - **inactive**: the user ordered before `P` but not in it;
//! - otherwise the user is **active** and lands in a cell of a grid: a *frequency* band from
//!   their order count in `P` and a *spend* band from their average order value (AOV, 客单价) in
//!   `P`. With the default [`TypeGrid::medians`] there are four: `frequent-high-spend`,
//!   `frequent-low-spend`, `occasional-high-spend` and `occasional-low-spend`.
//!
//! Users whose first order comes after `P` are not yet customers at the end of `P` and are not
//! classified.
//!
//! **Cut points.** By default a cut point is a population quantile of the active users, by the
//! nearest-rank rule: the `p`-quantile of `n` sorted values is the value at rank `⌈p·n⌉` —
//! always an observed value, computed exactly (order counts are integers; AOVs are amounts
//! rounded half-even to the minor unit). [`Cuts::Fixed`] gives the thresholds instead.
//!
//! **Ties.** A value equal to a cut point belongs to the band *below* it. Order counts tie a
//! lot: when the median order count is 1, one-order users are `occasional` and every user with
//! two or more orders is `frequent` — the usual reading of "more than the typical user". Cut
//! points may coincide when many users tie (the 1/3 and 2/3 quantiles both 1); the band between
//! them is then empty.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::{classify, ConsumptionType, CycleStats, Cycles, Order, TypeGrid};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let feb = |d| Utc.with_ymd_and_hms(2026, 2, d, 4, 0, 0).unwrap();
//! let mar = |d| Utc.with_ymd_and_hms(2026, 3, d, 4, 0, 0).unwrap();
//! let mut stats = CycleStats::new(cycles, cny);
//! for (user, at, gross) in [(1u64, mar(1), 50), (1, mar(5), 70), (2, mar(3), 300), (3, mar(8), 40),
//!                           (1, feb(1), 10), (2, feb(1), 10), (3, feb(1), 10), (4, feb(2), 20)] {
//!     stats.add(&Order::new(user, at, yuan(gross), yuan(0), yuan(gross), false)?)?;
//! }
//! let march = cycles.index_of(mar(1));
//! let types = classify(&stats, march, &TypeGrid::medians())?;
//! // Order counts 2, 1, 1: median 1. AOVs 60, 300, 40: median 60.
//! assert_eq!(types.frequency_cuts(), &[1]);
//! assert_eq!(types.spend_cuts(), &[yuan(60)]);
//! assert_eq!(types.get(&1).unwrap().to_string(), "frequent-low-spend"); // 60 is not above 60
//! assert_eq!(types.get(&2).unwrap().to_string(), "occasional-high-spend");
//! assert_eq!(types.get(&4), Some(&ConsumptionType::Inactive));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use super::cycle::CycleIndex;
use super::error::{TargetingError, invalid};
use super::hash::FastMap;
use super::stats::{CycleStats, Record, UserKey};
use crate::id::SegmentId;
use crate::money::Money;

/// A band of one axis of the grid: `index` counted from 0 (the lowest) of `of` bands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Band {
    /// Which band, 0 for the lowest.
    pub index: u8,
    /// How many bands the axis has.
    pub of: u8,
}

/// A user's consumption type for one cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ConsumptionType {
    /// Ordered in the cycle, in a cell of the grid.
    Active {
        /// Band of the order count.
        frequency: Band,
        /// Band of the average order value.
        spend: Band,
    },
    /// First order ever in the cycle.
    New,
    /// Ordered before the cycle but not in it.
    Inactive,
}

fn band_name(axis: &str, b: Band, names2: [&str; 2], names3: [&str; 3]) -> String {
    match b.of {
        2 => names2
            .get(usize::from(b.index))
            .map_or_else(String::new, |s| (*s).to_owned()),
        3 => names3
            .get(usize::from(b.index))
            .map_or_else(String::new, |s| (*s).to_owned()),
        _ => format!("{axis}-{}-of-{}", b.index + 1, b.of),
    }
}

impl ConsumptionType {
    /// The plain name: `frequent-high-spend`, `new`, `inactive`; with three bands
    /// `regular-mid-spend`; with more, `frequency-2-of-4-spend-3-of-4`.
    pub fn name(&self) -> String {
        match *self {
            ConsumptionType::New => "new".to_owned(),
            ConsumptionType::Inactive => "inactive".to_owned(),
            ConsumptionType::Active { frequency, spend } => {
                let f = band_name(
                    "frequency",
                    frequency,
                    ["occasional", "frequent"],
                    ["occasional", "regular", "frequent"],
                );
                let s = band_name(
                    "spend",
                    spend,
                    ["low-spend", "high-spend"],
                    ["low-spend", "mid-spend", "high-spend"],
                );
                format!("{f}-{s}")
            }
        }
    }

    /// The name as a segment for audience rules (`Buyer::segments`), prefixed so it never
    /// collides with a lifecycle or RFM segment: `consumption:frequent-high-spend`.
    pub fn segment_id(&self) -> SegmentId {
        SegmentId::trusted(&format!("consumption:{}", self.name()))
    }
}

impl fmt::Display for ConsumptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// How the cut points of one axis are found.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Cuts<T> {
    /// Population quantiles of the active users, each in `(0, 1)`, increasing: `[0.5]` for
    /// the median, `[1/3, 2/3]` for terciles.
    Quantiles(Vec<f64>),
    /// Fixed thresholds, increasing.
    Fixed(Vec<T>),
}

/// The grid of active types: cut points for the order count and for the average order value.
/// At most 8 cut points (9 bands) per axis.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "GridRepr", into = "GridRepr")
)]
pub struct TypeGrid {
    frequency: Cuts<u32>,
    spend: Cuts<Money>,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GridRepr {
    frequency: Cuts<u32>,
    spend: Cuts<Money>,
}

#[cfg(feature = "serde")]
impl TryFrom<GridRepr> for TypeGrid {
    type Error = TargetingError;
    fn try_from(r: GridRepr) -> Result<Self, TargetingError> {
        TypeGrid::new(r.frequency, r.spend)
    }
}

#[cfg(feature = "serde")]
impl From<TypeGrid> for GridRepr {
    fn from(g: TypeGrid) -> Self {
        GridRepr {
            frequency: g.frequency,
            spend: g.spend,
        }
    }
}

impl Default for TypeGrid {
    fn default() -> Self {
        TypeGrid::medians()
    }
}

fn check_cuts<T: PartialOrd>(field: &'static str, c: &Cuts<T>) -> Result<(), TargetingError> {
    let n = match c {
        Cuts::Quantiles(q) => {
            for p in q {
                if !(*p > 0.0 && *p < 1.0) {
                    return Err(invalid(field, p, "a quantile is strictly between 0 and 1"));
                }
            }
            if q.windows(2).any(|w| w[0] >= w[1]) {
                return Err(invalid(field, format!("{q:?}"), "quantiles must increase"));
            }
            q.len()
        }
        Cuts::Fixed(v) => {
            if v.windows(2)
                .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
            {
                return Err(invalid(field, "the thresholds", "thresholds must increase"));
            }
            v.len()
        }
    };
    if n == 0 || n > 8 {
        return Err(invalid(field, n, "an axis has 1 to 8 cut points"));
    }
    Ok(())
}

impl TypeGrid {
    /// Medians on both axes: four active types.
    pub fn medians() -> TypeGrid {
        TypeGrid {
            frequency: Cuts::Quantiles(vec![0.5]),
            spend: Cuts::Quantiles(vec![0.5]),
        }
    }

    /// A grid of your own.
    ///
    /// # Errors
    /// [`TargetingError::Invalid`] for an axis with no or more than 8 cut points, quantiles
    /// outside `(0, 1)`, or cut points that do not increase; [`TargetingError::CurrencyMismatch`]
    /// when fixed spend thresholds differ in currency.
    pub fn new(frequency: Cuts<u32>, spend: Cuts<Money>) -> Result<TypeGrid, TargetingError> {
        check_cuts("types.frequency", &frequency)?;
        check_cuts("types.spend", &spend)?;
        if let Cuts::Fixed(v) = &spend {
            if let Some(first) = v.first() {
                if let Some(m) = v.iter().find(|m| m.currency() != first.currency()) {
                    return Err(TargetingError::CurrencyMismatch {
                        field: "types.spend",
                        expected: first.currency(),
                        found: m.currency(),
                    });
                }
            }
        }
        Ok(TypeGrid { frequency, spend })
    }

    /// The order-count axis.
    pub fn frequency(&self) -> &Cuts<u32> {
        &self.frequency
    }

    /// The average-order-value axis.
    pub fn spend(&self) -> &Cuts<Money> {
        &self.spend
    }
}

/// The nearest-rank quantiles of `values` (reordered in place), `0` when empty.
pub(crate) fn quantiles<T: Ord + Copy + Default>(values: &mut [T], ps: &[f64]) -> Vec<T> {
    let n = values.len();
    let mut out = Vec::with_capacity(ps.len());
    let mut lo = 0usize;
    for p in ps {
        if n == 0 {
            out.push(T::default());
            continue;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
        let rank = rank.max(lo);
        let v = match values.get_mut(lo..) {
            Some(rest) if rank - lo < rest.len() => *rest.select_nth_unstable(rank - lo).1,
            _ => T::default(),
        };
        out.push(v);
        lo = rank;
    }
    out
}

/// The band of `v`: how many cut points lie strictly below it.
#[inline]
pub(crate) fn band_of<T: PartialOrd>(v: &T, cuts: &[T]) -> u8 {
    cuts.iter().take_while(|c| *c < v).count() as u8
}

/// The consumption type of every customer for one cycle. Built by [`classify`].
#[derive(Clone, Debug)]
pub struct ConsumptionTypes<K> {
    cycle: CycleIndex,
    frequency_cuts: Vec<u32>,
    spend_cuts: Vec<Money>,
    /// In the iteration order of the statistics' table, so passes over both walk them side
    /// by side instead of looking every user up.
    pub(crate) users: Vec<(K, ConsumptionType)>,
    index: OnceLock<FastMap<K, usize>>,
}

impl<K: UserKey> ConsumptionTypes<K> {
    /// The cycle classified.
    pub fn cycle(&self) -> CycleIndex {
        self.cycle
    }
    /// The order-count cut points used.
    pub fn frequency_cuts(&self) -> &[u32] {
        &self.frequency_cuts
    }
    /// The average-order-value cut points used.
    pub fn spend_cuts(&self) -> &[Money] {
        &self.spend_cuts
    }
    /// A user's type, `None` for someone who was not yet a customer.
    pub fn get(&self, user: &K) -> Option<&ConsumptionType> {
        let index = self.index.get_or_init(|| {
            let mut m = FastMap::with_capacity_and_hasher(self.users.len(), Default::default());
            for (i, (k, _)) in self.users.iter().enumerate() {
                m.insert(k.clone(), i);
            }
            m
        });
        index
            .get(user)
            .and_then(|i| self.users.get(*i))
            .map(|(_, t)| t)
    }
    /// Every classified user, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &ConsumptionType)> {
        self.users.iter().map(|(k, t)| (k, t))
    }
    /// How many users were classified.
    pub fn len(&self) -> usize {
        self.users.len()
    }
    /// Whether nobody was classified.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
    /// Every type of the grid (empty ones included), then new and inactive.
    pub fn all_types(&self) -> Vec<ConsumptionType> {
        let (nf, ns) = (
            self.frequency_cuts.len() as u8 + 1,
            self.spend_cuts.len() as u8 + 1,
        );
        let mut v = Vec::new();
        for f in (0..nf).rev() {
            for s in (0..ns).rev() {
                v.push(ConsumptionType::Active {
                    frequency: Band { index: f, of: nf },
                    spend: Band { index: s, of: ns },
                });
            }
        }
        v.push(ConsumptionType::New);
        v.push(ConsumptionType::Inactive);
        v
    }
    /// How many users have each type (every type listed, with 0 for empty ones).
    pub fn counts(&self) -> BTreeMap<ConsumptionType, usize> {
        let mut m: BTreeMap<ConsumptionType, usize> =
            self.all_types().into_iter().map(|t| (t, 0)).collect();
        for (_, t) in &self.users {
            *m.entry(*t).or_insert(0) += 1;
        }
        m
    }
}

/// Every classified user with their type and their record in `stats`, walking the table and
/// the types side by side (they share an order when the types were classified from these
/// statistics), looking users up only when they do not.
pub(crate) fn with_records<'a, K: UserKey>(
    stats: &'a CycleStats<K>,
    types: &'a ConsumptionTypes<K>,
) -> impl Iterator<Item = (&'a K, &'a ConsumptionType, Option<&'a Record>)> + 'a {
    let mut table = stats.users.iter();
    types.users.iter().map(move |(k, t)| {
        // Skip the table's users that were not classified (not yet customers); a table that
        // runs out (types from other statistics) falls back to looking users up.
        loop {
            match table.next() {
                Some((tk, r)) if tk == k => return (k, t, Some(r)),
                Some(_) => continue,
                None => break,
            }
        }
        (k, t, stats.users.get(k))
    })
}

/// Classifies every customer by their consumption in `cycle` (see the [module docs](self)).
///
/// # Errors
/// [`TargetingError::CurrencyMismatch`] when fixed spend thresholds are in another currency
/// than the statistics; [`TargetingError::Invalid`] when a cycle's bounds are out of range.
pub fn classify<K: UserKey>(
    stats: &CycleStats<K>,
    cycle: CycleIndex,
    grid: &TypeGrid,
) -> Result<ConsumptionTypes<K>, TargetingError> {
    let currency = stats.currency();
    let (start, end) = stats
        .cycles()
        .bounds_micros(cycle)
        .ok_or_else(|| invalid("types.cycle", cycle.0, "the cycle is out of range"))?;
    // Active users' (orders, AOV) for the quantiles.
    let mut counts = Vec::new();
    let mut aovs = Vec::new();
    let need_f = matches!(grid.frequency, Cuts::Quantiles(_));
    let need_s = matches!(grid.spend, Cuts::Quantiles(_));
    if need_f || need_s {
        for r in stats.users.values() {
            if r.first >= start {
                continue;
            }
            if let Some(t) = r.get(cycle.0) {
                if need_f {
                    counts.push(t.orders);
                }
                if need_s {
                    aovs.push(t.aov_minor().unwrap_or(0));
                }
            }
        }
    }
    let frequency_cuts = match &grid.frequency {
        Cuts::Quantiles(ps) => quantiles(&mut counts, ps),
        Cuts::Fixed(v) => v.clone(),
    };
    let spend_minor: Vec<i64> = match &grid.spend {
        Cuts::Quantiles(ps) => quantiles(&mut aovs, ps),
        Cuts::Fixed(v) => {
            let mut out = Vec::with_capacity(v.len());
            for m in v {
                if m.currency() != currency {
                    return Err(TargetingError::CurrencyMismatch {
                        field: "types.spend",
                        expected: currency,
                        found: m.currency(),
                    });
                }
                out.push(m.to_minor()?);
            }
            out
        }
    };
    drop(counts);
    drop(aovs);
    let nf = frequency_cuts.len() as u8 + 1;
    let ns = spend_minor.len() as u8 + 1;
    let mut users = Vec::with_capacity(stats.users.len());
    for (k, r) in &stats.users {
        if r.first >= end {
            continue;
        }
        let t = if r.first >= start {
            ConsumptionType::New
        } else {
            match r.get(cycle.0) {
                None => ConsumptionType::Inactive,
                Some(t) => ConsumptionType::Active {
                    frequency: Band {
                        index: band_of(&t.orders, &frequency_cuts),
                        of: nf,
                    },
                    spend: Band {
                        index: band_of(&t.aov_minor().unwrap_or(0), &spend_minor),
                        of: ns,
                    },
                },
            }
        };
        users.push((k.clone(), t));
    }
    Ok(ConsumptionTypes {
        cycle,
        frequency_cuts,
        spend_cuts: spend_minor
            .into_iter()
            .map(|m| Money::from_minor(m, currency))
            .collect(),
        users,
        index: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut v = vec![4, 1, 3, 2];
        assert_eq!(quantiles(&mut v, &[0.5]), vec![2]);
        let mut v = vec![1, 1, 2, 3];
        assert_eq!(quantiles(&mut v, &[0.5]), vec![1]);
        let mut v: Vec<u32> = (1..=10).collect();
        assert_eq!(
            quantiles(&mut v, &[0.1, 0.25, 0.5, 0.9, 0.99]),
            vec![1, 3, 5, 9, 10]
        );
        let mut e: Vec<u32> = vec![];
        assert_eq!(quantiles(&mut e, &[0.5]), vec![0]);
        let mut one = vec![7u32];
        assert_eq!(quantiles(&mut one, &[0.2, 0.8]), vec![7, 7]);
    }

    #[test]
    fn ties_go_to_the_band_below() {
        assert_eq!(band_of(&1, &[1]), 0);
        assert_eq!(band_of(&2, &[1]), 1);
        assert_eq!(band_of(&1, &[1, 1]), 0);
        assert_eq!(band_of(&2, &[1, 1]), 2);
        assert_eq!(band_of(&5, &[1, 5, 9]), 1);
    }

    #[test]
    fn grids_are_checked() {
        assert!(TypeGrid::new(Cuts::Quantiles(vec![]), Cuts::Quantiles(vec![0.5])).is_err());
        assert!(
            TypeGrid::new(Cuts::Quantiles(vec![0.6, 0.4]), Cuts::Quantiles(vec![0.5])).is_err()
        );
        assert!(TypeGrid::new(Cuts::Quantiles(vec![1.0]), Cuts::Quantiles(vec![0.5])).is_err());
        assert!(TypeGrid::new(Cuts::Fixed(vec![2, 2]), Cuts::Quantiles(vec![0.5])).is_err());
        assert!(
            TypeGrid::new(
                Cuts::Fixed(vec![1, 3]),
                Cuts::Quantiles(vec![0.25, 0.5, 0.75])
            )
            .is_ok()
        );
    }

    #[test]
    fn names_are_plain() {
        let b = |index, of| Band { index, of };
        let t = |f, s| ConsumptionType::Active {
            frequency: f,
            spend: s,
        };
        assert_eq!(t(b(1, 2), b(0, 2)).name(), "frequent-low-spend");
        assert_eq!(t(b(1, 3), b(1, 3)).name(), "regular-mid-spend");
        assert_eq!(t(b(1, 4), b(3, 4)).name(), "frequency-2-of-4-spend-4-of-4");
        assert_eq!(
            ConsumptionType::New.segment_id().as_str(),
            "consumption:new"
        );
    }
}
