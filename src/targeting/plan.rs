//! The new cycle's plan: for each user, a discount rate moved toward their type's standard, a
//! concrete coupon, and what it is expected to cost against last cycle.
//!
//! For a user of type `T` whose rate last cycle was `r` (their discount ÷ their gross), with
//! `s` the standard of `T` (see [`standard_rates`](super::standard_rates)):
//!
//! - `r > s`, **over-subsidised**: the rate moves *down* toward `s` by at most
//!   [`PlanRules::max_step`] — `max(s, r − step)` — saving cost;
//! - `r < s`, **under-subsidised**: it moves *up*, `min(s, r + step)` — retention and
//!   activation;
//! - `r = s`: it stays.
//!
//! The result is then kept within `[floor, ceiling]`. New users are compared with the standard of
//! the `new` type; users of a type without a standard, with the population's. Inactive users
//! get an activation coupon at the population standard ([`InactivePolicy`]). The direction is
//! decided exactly (the user's exact rate against the standard); the arithmetic runs in
//! millionths, the unit of every planned rate.
//!
//! **Expected cost.** A user who ordered last cycle is expected to spend as much again: their
//! expected cost is the planned rate × last cycle's gross, rounded half-even to the minor unit,
//! against last cycle's discount. An inactive user's coupon is counted at its face value (used
//! once). Sums are kept per type and in total.
//!
//! **The coupon** comes from [`suggest`](fn@super::suggest) with the user's average order value,
//! the planned rate, last cycle's gross as the user's value (lifetime gross for inactive users)
//! and the cycle's days ÷ orders as the gap between orders.
//!
//! # A worked example
//!
//! March, one type (a fixed grid puts everyone in `occasional-low-spend`), steps of 5 points:
//!
//! | user | March orders | gross | discount | rate | move | planned | expected cost | coupon |
//! |---|---|---|---|---|---|---|---|---|
//! | A | 2 × 100 | 200 | 40 | 20 % | down 5 | 15 % | 30.00 | spend 119 save 17 |
//! | B | 300 | 300 | 15 | 5 % | up 5 | 10 % | 30.00 | spend 339 save 30 |
//! | C | 500 | 500 | 45 | 9 % | up 1 | 10 % | 50.00 | spend 559 save 50 |
//! | D | none (80 in February) | — | — | — | activate | 10 % | 8.00 | spend 89 save 8 |
//!
//! The standard is the type's aggregate rate, (40 + 15 + 45) ÷ (200 + 300 + 500) = 10 %. A is
//! over-subsidised and comes down one full step; B and C go up, C only to the standard. D gets
//! the population's 10 %, capped at a tenth of their 80 of value. Last cycle cost 100.00; the plan
//! is expected to cost 110.00 for the active type and 118.00 in all.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::*;
//! use rust_decimal::Decimal;
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let at = |m, d| Utc.with_ymd_and_hms(2026, m, d, 4, 0, 0).unwrap();
//! let mut stats = CycleStats::new(cycles, cny);
//! for (user, at, gross, discount) in [
//!     ("A", at(2, 3), 50, 0), // all four were customers before March
//!     ("B", at(2, 5), 50, 0),
//!     ("C", at(2, 9), 50, 0),
//!     ("D", at(2, 9), 80, 0),
//!     ("A", at(3, 2), 100, 20),
//!     ("A", at(3, 9), 100, 20),
//!     ("B", at(3, 4), 300, 15),
//!     ("C", at(3, 5), 500, 45),
//! ] {
//!     stats.add(&Order::new(user.to_string(), at, yuan(gross), yuan(discount), yuan(gross - discount), discount > 0)?)?;
//! }
//! let march = cycles.index_of(at(3, 1));
//! let grid = TypeGrid::new(Cuts::Fixed(vec![100]), Cuts::Fixed(vec![yuan(10_000)]))?;
//! let types = classify(&stats, march, &grid)?;
//! let standards = standard_rates(&stats, &types, &StandardRule::default())?;
//! let rules = PlanRules { max_step: Decimal::new(5, 2), ..PlanRules::default() };
//! let plan = plan_cycle(&stats, &types, &standards, &rules)?;
//!
//! let a = plan.user(&"A".to_string()).unwrap();
//! assert_eq!((a.rate(), a.change()), (Decimal::new(15, 2), Move::Down));
//! assert_eq!(a.expected_cost(), yuan(30));
//! let coupon = a.coupon().unwrap();
//! assert_eq!((coupon.threshold, coupon.save), (yuan(119), yuan(17)));
//! let d = plan.user(&"D".to_string()).unwrap();
//! assert_eq!((d.change(), d.expected_cost()), (Move::Activate, yuan(8)));
//!
//! let active = plan.by_type().get(&types.get(&"A".to_string()).copied().unwrap()).unwrap();
//! assert_eq!((active.last_cost, active.expected_cost), (yuan(100), yuan(110)));
//! assert_eq!((plan.total().last_cost, plan.total().expected_cost), (yuan(100), yuan(118)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::cycle::CycleIndex;
use super::error::{TargetingError, invalid};
use super::rate::{DiscountRate, decimal_of_micros, div_round_half_even, micros_of};
use super::standard::StandardRates;
use super::stats::{CycleStats, UserKey};
use super::suggest::{CouponSuggestion, SuggestRules, suggest_minor};
use super::types::{ConsumptionType, ConsumptionTypes, with_records};
use crate::money::{Currency, Money};

/// What inactive users (no order last cycle) get.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum InactivePolicy {
    /// An activation coupon at the population's standard rate. The default.
    #[default]
    PopulationStandard,
    /// An activation coupon at this rate.
    Rate(Decimal),
    /// Nothing: inactive users are left out of the plan.
    Skip,
}

/// The rules of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct PlanRules {
    /// The most a user's rate moves in one cycle: `0.02` (two percentage points).
    pub max_step: Decimal,
    /// The lowest planned rate: `0`.
    pub floor: Decimal,
    /// The highest planned rate: `0.3`.
    pub ceiling: Decimal,
    /// What inactive users get.
    pub inactive: InactivePolicy,
    /// How the coupon is shaped.
    pub coupon: SuggestRules,
}

impl Default for PlanRules {
    fn default() -> Self {
        PlanRules {
            max_step: Decimal::new(2, 2),
            floor: Decimal::ZERO,
            ceiling: Decimal::new(3, 1),
            inactive: InactivePolicy::default(),
            coupon: SuggestRules::default(),
        }
    }
}

/// Which way a user's rate moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Move {
    /// Down: the user was over-subsidised (or above the ceiling).
    Down,
    /// Up: the user was under-subsidised (or below the floor).
    Up,
    /// Unchanged.
    Hold,
    /// An inactive user's activation coupon.
    Activate,
}

impl Move {
    /// `down`, `up`, `hold`, `activate`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Move::Down => "down",
            Move::Up => "up",
            Move::Hold => "hold",
            Move::Activate => "activate",
        }
    }
}

/// One user's plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPlan<K> {
    user: K,
    consumption: ConsumptionType,
    last_rate: Option<DiscountRate>,
    standard: i64,
    rate: i64,
    change: Move,
    coupon: Option<(i64, i64, u32)>,
    last_cost: i64,
    expected_cost: i64,
    currency: Currency,
}

impl<K> UserPlan<K> {
    /// The user.
    pub fn user(&self) -> &K {
        &self.user
    }
    /// Their consumption type last cycle.
    pub fn consumption(&self) -> ConsumptionType {
        self.consumption
    }
    /// Their exact rate last cycle, `None` for inactive users (or nothing bought).
    pub fn last_rate(&self) -> Option<DiscountRate> {
        self.last_rate
    }
    /// The standard they were compared with.
    pub fn standard(&self) -> Decimal {
        decimal_of_micros(self.standard)
    }
    /// The planned rate for the new cycle.
    pub fn rate(&self) -> Decimal {
        decimal_of_micros(self.rate)
    }
    /// The planned rate in millionths.
    pub fn rate_micros(&self) -> i64 {
        self.rate
    }
    /// Which way the rate moved.
    pub fn change(&self) -> Move {
        self.change
    }
    /// The coupon, `None` when the caps leave nothing to give.
    pub fn coupon(&self) -> Option<CouponSuggestion> {
        self.coupon.map(|(t, s, v)| CouponSuggestion {
            threshold: Money::from_minor(t, self.currency),
            save: Money::from_minor(s, self.currency),
            validity_days: v,
        })
    }
    /// What they received last cycle.
    pub fn last_cost(&self) -> Money {
        Money::from_minor(self.last_cost, self.currency)
    }
    /// What the plan is expected to give them.
    pub fn expected_cost(&self) -> Money {
        Money::from_minor(self.expected_cost, self.currency)
    }
}

/// Cost sums over a group of users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CostSummary {
    /// Users planned.
    pub users: u64,
    /// Of them, with a coupon.
    pub coupons: u64,
    /// Rates moved down, up, held.
    pub down: u64,
    /// Rates moved up (activations included).
    pub up: u64,
    /// Last cycle's discounts.
    pub last_cost: Money,
    /// The plan's expected discounts.
    pub expected_cost: Money,
}

impl CostSummary {
    fn zero(c: Currency) -> CostSummary {
        CostSummary {
            users: 0,
            coupons: 0,
            down: 0,
            up: 0,
            last_cost: Money::zero(c),
            expected_cost: Money::zero(c),
        }
    }

    /// `last_cost − expected_cost`: what the plan saves (negative when it spends more).
    ///
    /// # Errors
    /// [`TargetingError::Money`] on overflow.
    pub fn saving(&self) -> Result<Money, TargetingError> {
        Ok(self.last_cost.checked_sub(&self.expected_cost)?)
    }
}

/// The plan of a new cycle. Users are sorted by key.
#[derive(Clone, Debug)]
pub struct CyclePlan<K> {
    cycle: CycleIndex,
    users: Vec<UserPlan<K>>,
    by_type: BTreeMap<ConsumptionType, CostSummary>,
    total: CostSummary,
}

impl<K: UserKey> CyclePlan<K> {
    /// The cycle planned for (the one after the cycle the statistics describe).
    pub fn cycle(&self) -> CycleIndex {
        self.cycle
    }
    /// Every user's plan, sorted by user.
    pub fn users(&self) -> &[UserPlan<K>] {
        &self.users
    }
    /// One user's plan.
    pub fn user(&self, user: &K) -> Option<&UserPlan<K>> {
        self.users
            .binary_search_by(|p| p.user.cmp(user))
            .ok()
            .and_then(|i| self.users.get(i))
    }
    /// Costs per type.
    pub fn by_type(&self) -> &BTreeMap<ConsumptionType, CostSummary> {
        &self.by_type
    }
    /// Costs of the whole plan.
    pub fn total(&self) -> &CostSummary {
        &self.total
    }
}

struct Checked {
    step: i64,
    floor: i64,
    ceiling: i64,
}

fn check_rules(r: &PlanRules) -> Result<Checked, TargetingError> {
    let step = micros_of("plan.max_step", r.max_step)?;
    let floor = micros_of("plan.floor", r.floor)?;
    let ceiling = micros_of("plan.ceiling", r.ceiling)?;
    if floor > ceiling {
        return Err(invalid(
            "plan.floor",
            r.floor,
            "the floor is not above the ceiling",
        ));
    }
    Ok(Checked {
        step,
        floor,
        ceiling,
    })
}

/// The new cycle's plan; see the [module docs](self).
///
/// # Errors
/// [`TargetingError::RateOutOfRange`] / [`TargetingError::Invalid`] for rules out of range
/// (a step, floor or ceiling outside `[0, 1]` or with more than six decimals, a floor above the
/// ceiling, bad coupon rules); [`TargetingError::Incompatible`] when the standards were computed
/// for another cycle than the types; [`TargetingError::Overflow`].
pub fn plan_cycle<K: UserKey>(
    stats: &CycleStats<K>,
    types: &ConsumptionTypes<K>,
    standards: &StandardRates,
    rules: &PlanRules,
) -> Result<CyclePlan<K>, TargetingError> {
    if standards.cycle() != types.cycle() {
        return Err(TargetingError::Incompatible {
            reason: "the standards and the types are of different cycles",
        });
    }
    let c = check_rules(rules)?;
    let currency = stats.currency();
    let coupon_rules = rules.coupon.minor(currency)?;
    let cycle = types.cycle();
    let cycle_days = i64::from(stats.cycles().length_days(cycle));
    let population = standards.population().map(|s| s.micros);
    let inactive_rate = match &rules.inactive {
        InactivePolicy::PopulationStandard => Some(population.unwrap_or(c.floor)),
        InactivePolicy::Rate(r) => Some(micros_of("plan.inactive", *r)?),
        InactivePolicy::Skip => None,
    };
    let all = types.all_types();
    // Standards in millionths, by the slot of `all`.
    let std_of: Vec<Option<i64>> = all
        .iter()
        .map(|t| standards.get(t).map(|s| s.micros))
        .collect();
    let slot = slot_fn(&all);
    let mut sums: Vec<CostSummary> = all.iter().map(|_| CostSummary::zero(currency)).collect();
    let mut minor: Vec<(i64, i64)> = vec![(0, 0); all.len()];
    let mut users = Vec::with_capacity(types.len());
    let clamp = |m: i64| m.clamp(c.floor, c.ceiling);
    for (k, t, record) in with_records(stats, types) {
        let Some(record) = record else {
            continue;
        };
        let s = slot(t);
        let plan = match (t, record.get(cycle.0)) {
            (ConsumptionType::Inactive, _) | (_, None) => {
                let Some(rate) = inactive_rate.map(clamp) else {
                    continue;
                };
                let life = record.lifetime(cycle.0);
                let aov = life.aov_minor().unwrap_or(0);
                let coupon = suggest_minor(aov, rate, life.gross, None, &coupon_rules);
                UserPlan {
                    user: k.clone(),
                    consumption: *t,
                    last_rate: None,
                    standard: population.unwrap_or(rate),
                    rate,
                    change: Move::Activate,
                    coupon,
                    last_cost: 0,
                    expected_cost: coupon.map_or(0, |x| x.1),
                    currency,
                }
            }
            (_, Some(tot)) => {
                let standard = s
                    .and_then(|i| std_of.get(i).copied().flatten())
                    .or(population);
                let last = tot.rate();
                let last_micros = last.map_or(0, |r| r.to_micros());
                let target = match (standard, last) {
                    (Some(std), Some(l)) => match l.cmp_micros(std) {
                        std::cmp::Ordering::Greater => std.max(last_micros - c.step),
                        std::cmp::Ordering::Less => std.min(last_micros + c.step),
                        std::cmp::Ordering::Equal => std,
                    },
                    (Some(std), None) => std.min(c.step),
                    (None, _) => last_micros,
                };
                let rate = clamp(target);
                let change = match rate.cmp(&last_micros) {
                    std::cmp::Ordering::Less => Move::Down,
                    std::cmp::Ordering::Greater => Move::Up,
                    std::cmp::Ordering::Equal => Move::Hold,
                };
                let gap = (cycle_days / i64::from(tot.orders.max(1))).max(1);
                let coupon = suggest_minor(
                    tot.aov_minor().unwrap_or(0),
                    rate,
                    tot.gross,
                    u32::try_from(gap).ok(),
                    &coupon_rules,
                );
                UserPlan {
                    user: k.clone(),
                    consumption: *t,
                    last_rate: last,
                    standard: standard.unwrap_or(last_micros),
                    rate,
                    change,
                    coupon,
                    last_cost: tot.discount,
                    expected_cost: rate_of(tot.gross, rate),
                    currency,
                }
            }
        };
        if let Some(i) = s {
            if let (Some(sum), Some(m)) = (sums.get_mut(i), minor.get_mut(i)) {
                sum.users += 1;
                sum.coupons += u64::from(plan.coupon.is_some());
                sum.down += u64::from(plan.change == Move::Down);
                sum.up += u64::from(matches!(plan.change, Move::Up | Move::Activate));
                m.0 =
                    m.0.checked_add(plan.last_cost)
                        .ok_or(TargetingError::Overflow { what: "plan costs" })?;
                m.1 =
                    m.1.checked_add(plan.expected_cost)
                        .ok_or(TargetingError::Overflow { what: "plan costs" })?;
            }
        }
        users.push(plan);
    }
    // By key, moving each plan once: the keys are sorted beside their positions, then the
    // plans are put in place (users are distinct, so the order is the same as any sort's).
    users.sort_by_cached_key(|p| p.user.clone());
    let mut total = CostSummary::zero(currency);
    let (mut last_total, mut expected_total) = (0i64, 0i64);
    let mut by_type = BTreeMap::new();
    for ((t, mut sum), (l, e)) in all.iter().zip(sums).zip(minor) {
        sum.last_cost = Money::from_minor(l, currency);
        sum.expected_cost = Money::from_minor(e, currency);
        total.users += sum.users;
        total.coupons += sum.coupons;
        total.down += sum.down;
        total.up += sum.up;
        last_total = last_total
            .checked_add(l)
            .ok_or(TargetingError::Overflow { what: "plan costs" })?;
        expected_total = expected_total
            .checked_add(e)
            .ok_or(TargetingError::Overflow { what: "plan costs" })?;
        by_type.insert(*t, sum);
    }
    total.last_cost = Money::from_minor(last_total, currency);
    total.expected_cost = Money::from_minor(expected_total, currency);
    Ok(CyclePlan {
        cycle: cycle.next(),
        users,
        by_type,
        total,
    })
}

/// `amount × micros / 10^6`, rounded half-even; 64-bit for everyday amounts.
#[inline]
fn rate_of(amount: i64, micros: i64) -> i64 {
    if amount.unsigned_abs() < (1 << 40) {
        let n = amount * micros;
        let (q, r) = (n.div_euclid(1_000_000), n.rem_euclid(1_000_000));
        match (2 * r).cmp(&1_000_000) {
            std::cmp::Ordering::Less => q,
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q & 1),
        }
    } else {
        div_round_half_even(i128::from(amount) * i128::from(micros), 1_000_000)
    }
}

/// The position of a type in [`ConsumptionTypes::all_types`], without searching.
pub(crate) fn slot_fn(all: &[ConsumptionType]) -> impl Fn(&ConsumptionType) -> Option<usize> + '_ {
    let n = all.len().saturating_sub(2);
    move |t| match t {
        ConsumptionType::Active { frequency, spend } => {
            let i = usize::from(frequency.of - 1 - frequency.index) * usize::from(spend.of)
                + usize::from(spend.of - 1 - spend.index);
            (i < n).then_some(i)
        }
        ConsumptionType::New => Some(n),
        ConsumptionType::Inactive => Some(n + 1),
    }
}
