//! Standard discount rates: for each consumption type, the rate the type as a whole received
//! last cycle — the yardstick each user's own rate is compared with.
//!
//! The default, [`RateMethod::Aggregate`], is the type's *aggregate* rate: total discount ÷
//! total gross over the type's users in the cycle. It is exact (a fraction of two sums of minor
//! units) and weighs users by what they spent, so the standard is what the type's money
//! actually received. Alternatives:
//!
//! - [`RateMethod::MedianOfUsers`]: the median of the users' own rates (nearest rank, exact) —
//!   every user counts once, so a few big spenders cannot move it;
//! - [`RateMethod::TrimmedMean`]: the mean of the users' rates after dropping a share at each
//!   end, computed in `f64` and rounded to six decimal places.
//!
//! Any of them may then be moved by an [`Adjustment`] — scaled (`0.9` to spend a tenth less), or
//! pulled toward a target rate.
//!
//! Standards are reported to six decimal places (millionths), the unit plans compute in;
//! [`StandardRate::exact`] keeps the exact fraction of the aggregate method.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::cycle::CycleIndex;
use super::error::{TargetingError, invalid};
use super::rate::{DiscountRate, decimal_of_micros, micros_of};
use super::stats::{CycleStats, Totals, UserKey};
use super::types::{ConsumptionType, ConsumptionTypes, quantiles, with_records};
use crate::money::Money;

/// How a type's standard rate is computed from its users' last cycle.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum RateMethod {
    /// Total discount ÷ total gross (exact). The default.
    #[default]
    Aggregate,
    /// The median of the users' own rates (nearest rank: the value at rank `⌈n/2⌉`).
    MedianOfUsers,
    /// The mean of the users' rates after dropping `trim` (a share in `[0, 0.5)`) of them at
    /// each end (`⌊trim · n⌋` users each side).
    TrimmedMean {
        /// The share dropped at each end.
        trim: Decimal,
    },
}

/// A change applied to every computed standard.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Adjustment {
    /// Multiply by a factor (`0.9`: a tenth less), then cap at 1.
    Scale(Decimal),
    /// Move `weight` (in `[0, 1]`) of the way toward `target`: `s + weight × (target − s)`.
    Toward {
        /// The rate aimed at, in `[0, 1]`.
        target: Decimal,
        /// How far to go, in `[0, 1]`.
        weight: Decimal,
    },
}

/// How standards are computed: a method and an optional adjustment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StandardRule {
    /// The method.
    pub method: RateMethod,
    /// Applied after the method.
    #[cfg_attr(feature = "serde", serde(default))]
    pub adjustment: Option<Adjustment>,
}

/// The standard rate of one type, with what it was computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StandardRate {
    /// The standard, in `[0, 1]`, six decimal places at most.
    pub rate: Decimal,
    /// The exact aggregate rate (total discount ÷ total gross) of the type, before any
    /// adjustment, whatever the method.
    pub exact: DiscountRate,
    /// Users in the type who bought something.
    pub users: u64,
    /// Their total gross.
    pub gross: Money,
    /// Their total discount.
    pub discount: Money,
    pub(crate) micros: i64,
}

/// The standard rate of every type that bought something in the cycle, and of the whole active
/// population (all users who ordered in it).
#[derive(Clone, Debug, PartialEq)]
pub struct StandardRates {
    cycle: CycleIndex,
    by_type: BTreeMap<ConsumptionType, StandardRate>,
    population: Option<StandardRate>,
}

impl StandardRates {
    /// The cycle the rates were computed from.
    pub fn cycle(&self) -> CycleIndex {
        self.cycle
    }
    /// A type's standard, `None` when nobody of that type bought anything (and always for
    /// inactive users).
    pub fn get(&self, t: &ConsumptionType) -> Option<&StandardRate> {
        self.by_type.get(t)
    }
    /// Every type's standard.
    pub fn iter(&self) -> impl Iterator<Item = (&ConsumptionType, &StandardRate)> {
        self.by_type.iter()
    }
    /// The standard of everyone who ordered in the cycle, `None` when nobody did.
    pub fn population(&self) -> Option<&StandardRate> {
        self.population.as_ref()
    }
}

fn adjust(micros: i64, adj: &Option<Adjustment>) -> Result<i64, TargetingError> {
    let Some(a) = adj else { return Ok(micros) };
    let s = decimal_of_micros(micros);
    let v = match a {
        Adjustment::Scale(f) => {
            if *f < Decimal::ZERO {
                return Err(invalid(
                    "standard.adjustment.scale",
                    f,
                    "a factor is not negative",
                ));
            }
            (s * f).min(Decimal::ONE)
        }
        Adjustment::Toward { target, weight } => {
            micros_of("standard.adjustment.target", *target)?;
            if *weight < Decimal::ZERO || *weight > Decimal::ONE {
                return Err(TargetingError::RateOutOfRange {
                    field: "standard.adjustment.weight",
                    value: *weight,
                });
            }
            s + *weight * (*target - s)
        }
    };
    micros_of(
        "standard",
        v.round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointNearestEven),
    )
}

/// The standard rate of each type in `types` (computed from `stats` for the same cycle).
///
/// # Errors
/// [`TargetingError::Invalid`] / [`TargetingError::RateOutOfRange`] for a trim share outside
/// `[0, 0.5)` or an adjustment out of range; [`TargetingError::Overflow`].
pub fn standard_rates<K: UserKey>(
    stats: &CycleStats<K>,
    types: &ConsumptionTypes<K>,
    rule: &StandardRule,
) -> Result<StandardRates, TargetingError> {
    if let RateMethod::TrimmedMean { trim } = &rule.method {
        if *trim < Decimal::ZERO || *trim >= Decimal::new(5, 1) {
            return Err(invalid(
                "standard.trim",
                trim,
                "the trimmed share is in [0, 0.5)",
            ));
        }
    }
    let cycle = types.cycle();
    let currency = stats.currency();
    let all = types.all_types();
    let slot = |t: &ConsumptionType| all.iter().position(|x| x == t);
    let mut sums: Vec<(u64, Totals)> = vec![(0, Totals::default()); all.len()];
    let mut pop = (0u64, Totals::default());
    let keep_rates = !matches!(rule.method, RateMethod::Aggregate);
    let mut rates: Vec<Vec<DiscountRate>> =
        vec![Vec::new(); if keep_rates { all.len() + 1 } else { 0 }];
    let overflow = || TargetingError::Overflow {
        what: "standard rates",
    };
    for (_, t, record) in with_records(stats, types) {
        let Some(tot) = record.and_then(|r| r.get(cycle.0)) else {
            continue;
        };
        let Some(i) = slot(t) else { continue };
        for (n, s) in [&mut sums[i], &mut pop] {
            *n += 1;
            s.gross = s.gross.checked_add(tot.gross).ok_or_else(overflow)?;
            s.discount = s.discount.checked_add(tot.discount).ok_or_else(overflow)?;
        }
        if keep_rates {
            if let Some(r) = tot.rate() {
                if let Some(v) = rates.get_mut(i) {
                    v.push(r);
                }
                if let Some(v) = rates.last_mut() {
                    v.push(r);
                }
            }
        }
    }
    let make = |n: u64,
                s: &Totals,
                user_rates: Option<&mut Vec<DiscountRate>>|
     -> Result<Option<StandardRate>, TargetingError> {
        let Some(exact) = s.rate() else {
            return Ok(None);
        };
        let base = match (&rule.method, user_rates) {
            (RateMethod::MedianOfUsers, Some(v)) if !v.is_empty() => quantiles(v, &[0.5])
                .first()
                .map_or(exact.to_micros(), |r| r.to_micros()),
            (RateMethod::TrimmedMean { trim }, Some(v)) if !v.is_empty() => {
                v.sort_unstable();
                let trim_f = trim.to_string().parse::<f64>().unwrap_or(0.0);
                let cut = (trim_f * v.len() as f64).floor() as usize;
                let kept = v.get(cut..v.len() - cut).unwrap_or(&[]);
                if kept.is_empty() {
                    exact.to_micros()
                } else {
                    let mean = kept.iter().map(|r| r.to_f64()).sum::<f64>() / kept.len() as f64;
                    (mean * 1e6).round().clamp(0.0, 1e6) as i64
                }
            }
            _ => exact.to_micros(),
        };
        let micros = adjust(base, &rule.adjustment)?;
        Ok(Some(StandardRate {
            rate: decimal_of_micros(micros),
            exact,
            users: n,
            gross: Money::from_minor(s.gross, currency),
            discount: Money::from_minor(s.discount, currency),
            micros,
        }))
    };
    let mut by_type = BTreeMap::new();
    for (i, t) in all.iter().enumerate() {
        let (n, s) = &sums[i];
        if let Some(r) = make(*n, s, rates.get_mut(i))? {
            by_type.insert(*t, r);
        }
    }
    let last = rates.len().checked_sub(1);
    let population = make(pop.0, &pop.1, last.and_then(|l| rates.get_mut(l)))?;
    Ok(StandardRates {
        cycle,
        by_type,
        population,
    })
}
