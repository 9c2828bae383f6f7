//! Budget-optimal coupon plans: at most one coupon per user, the most value within a budget.
//!
//! Each user has a few candidate coupons, each with an expected **value** (incremental profit,
//! or conversions — whatever you maximise) and an expected **cost** in money. [`allocate`]
//! picks at most one coupon per user so that the total value is as large as possible while the
//! total cost stays within a [`Budget`]: an overall amount, an amount per segment, or both.
//! This is the multiple-choice knapsack problem, which is NP-hard; the plan comes with a
//! certificate of how far from optimal it can be.
//!
//! ```
//! use coupons::budget::{allocate, Budget, Candidates, Choice};
//! use coupons::id::UserId;
//! use coupons::money::{Currency, Money};
//!
//! let yuan = |n: i64| Money::from_minor(n * 100, Currency::CNY);
//! let mut users = Candidates::new(Currency::CNY);
//! // Coupon options per user: (expected extra profit, expected cost).
//! users.push(UserId::new("ann")?, None, &[
//!     Choice::new(30.0, yuan(10))?, // 10 off
//!     Choice::new(45.0, yuan(20))?, // 20 off
//! ])?;
//! users.push(UserId::new("bob")?, None, &[Choice::new(12.0, yuan(10))?])?;
//! users.push(UserId::new("cy")?, None, &[Choice::new(25.0, yuan(20))?])?;
//!
//! let plan = allocate(&users, &Budget::total(yuan(30))?)?;
//! // Best within 30 yuan: ann gets 20 off (45), bob 10 off (12); cy's 25 for 20 yuan loses.
//! assert_eq!(plan.pick(0), Some(1));
//! assert_eq!(plan.pick(1), Some(0));
//! assert_eq!(plan.pick(2), None);
//! assert_eq!(plan.value, 57.0);
//! assert_eq!(plan.cost, yuan(30));
//! // The price of budget is 1.25 per yuan (cy's option, the first that does not fit), and
//! // no plan within 30 yuan is worth more than 1.25 × 30 + (45 - 1.25 × 20) = 57.5.
//! assert!((plan.price - 1.25).abs() < 1e-12);
//! assert!((plan.bound - 57.5).abs() < 1e-9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The method, and what the bound means
//!
//! Put a price `λ` on each unit of budget. At a given price every user simply takes the coupon
//! with the largest `value − λ · cost` (or none, if all are negative), and
//! `λ · budget + Σ_users max(0, max_coupon (value − λ · cost))` is an upper bound on the value of
//! **any** plan within the budget (Lagrangian duality). [`allocate`] finds the price that makes
//! this bound smallest — a bisection on the price over the points where users change their
//! choice, with the users' options first reduced to their efficient frontier (the upper convex
//! hull of cost against value, so dominated coupons never enter) — then takes every choice
//! that is strictly worth its price, fills the budget with the tied ones in user order, and
//! finally repairs greedily: with what is left it upgrades users in order of extra value per
//! extra cost (or makes the single most valuable upgrade that fits, if that is worth more).
//!
//! The result reports [`Allocation::bound`], so `bound − value` bounds the loss against the
//! true optimum. The theory guarantees the gap is at most the value of one user's upgrade per
//! binding budget (one for the total, one per binding segment), so on many users it is a tiny
//! fraction of the total, and it is **zero** — the plan is optimal — when the budget is not
//! binding, or when the choices at the optimal price exactly spend it.
//!
//! With segment budgets (`Budget::with_segment`), each segment gets its own price, never below
//! the overall one: a user in a segment faces the overall price plus the segment's.
//!
//! ## Numbers
//!
//! Costs are [`Money`]: they are summed exactly in minor units, and the plan never spends a
//! minor unit more than any budget allows. Values are `f64` (they are estimates, and may be
//! in any unit: profit, conversions, points); they must be finite, and a choice with a value
//! of zero or less is never taken (no coupon is better). Prices are in value per unit of the
//! budget's currency.

use std::collections::{BTreeMap, HashMap};

use crate::id::{SegmentId, UserId};
use crate::money::{Currency, Money, MoneyError};

/// What went wrong building or solving a budget problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A value that is NaN or infinite.
    #[error("choice value {value} is not a finite number")]
    InvalidValue {
        /// The value as given.
        value: f64,
    },
    /// A negative cost (a coupon that pays you is not a cost; model it as value).
    #[error("choice cost {cost} is negative")]
    NegativeCost {
        /// The cost as given.
        cost: Money,
    },
    /// A negative budget.
    #[error("budget {amount} for {scope} is negative")]
    NegativeBudget {
        /// `"the total"` or the segment's name.
        scope: String,
        /// The amount as given.
        amount: Money,
    },
    /// An amount in another currency than the problem's.
    #[error("{what} is in {found}, but the problem is in {expected}")]
    CurrencyMismatch {
        /// Which amount.
        what: &'static str,
        /// The problem's currency.
        expected: Currency,
        /// The amount's currency.
        found: Currency,
    },
    /// An amount, or a sum, beyond what minor units in an `i64` can hold.
    #[error("{what}: {source}")]
    Money {
        /// Which amount.
        what: &'static str,
        /// The money error.
        source: MoneyError,
    },
    /// More than `u32::MAX` users or choices.
    #[error("too many {what} (at most {limit})")]
    TooMany {
        /// `"users"` or `"choices"`.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
}

/// One coupon a user could get: its expected value and its expected cost.
///
/// # Errors
/// [`BudgetError::InvalidValue`] for a NaN or infinite value; [`BudgetError::NegativeCost`]
/// for a cost below zero.
///
/// ```
/// use coupons::budget::Choice;
/// use coupons::money::{Currency, Money};
/// let c = Choice::new(12.5, Money::from_minor(500, Currency::CNY))?;
/// assert_eq!(c.value(), 12.5);
/// assert!(Choice::new(f64::NAN, Money::zero(Currency::CNY)).is_err());
/// assert!(Choice::new(1.0, Money::from_minor(-1, Currency::CNY)).is_err());
/// # Ok::<(), coupons::budget::BudgetError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    value: f64,
    cost: Money,
}

impl Choice {
    /// A choice worth `value` that costs `cost`.
    ///
    /// # Errors
    /// As listed on the type.
    pub fn new(value: f64, cost: Money) -> Result<Choice, BudgetError> {
        if !value.is_finite() {
            return Err(BudgetError::InvalidValue { value });
        }
        if cost.is_negative() {
            return Err(BudgetError::NegativeCost { cost });
        }
        Ok(Choice { value, cost })
    }

    /// The expected value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The expected cost.
    pub fn cost(&self) -> Money {
        self.cost
    }
}

const NONE: u32 = u32::MAX;

/// The users and their choices, stored flat (a million users with five choices each take about
/// 100 MB).
///
/// Users are numbered in the order they are pushed (that number is what [`Allocation::pick`]
/// takes) and choices in the order given for the user.
#[derive(Debug, Clone)]
pub struct Candidates {
    currency: Currency,
    users: Vec<UserId>,
    segment: Vec<u32>,
    start: Vec<u32>,
    values: Vec<f64>,
    costs: Vec<i64>,
    segments: Vec<SegmentId>,
    segment_index: HashMap<SegmentId, u32>,
}

impl Candidates {
    /// No users yet; every cost will be in `currency`.
    pub fn new(currency: Currency) -> Candidates {
        Candidates {
            currency,
            users: Vec::new(),
            segment: Vec::new(),
            start: vec![0],
            values: Vec::new(),
            costs: Vec::new(),
            segments: Vec::new(),
            segment_index: HashMap::new(),
        }
    }

    /// Room for `users` users with `choices` choices in all.
    pub fn with_capacity(currency: Currency, users: usize, choices: usize) -> Candidates {
        let mut c = Candidates::new(currency);
        c.users.reserve(users);
        c.segment.reserve(users);
        c.start.reserve(users);
        c.values.reserve(choices);
        c.costs.reserve(choices);
        c
    }

    /// Adds a user, in `segment` if given (for per-segment budgets), with their choices; returns
    /// the user's number. A user with no choices is allowed (they get nothing).
    ///
    /// # Errors
    /// [`BudgetError::CurrencyMismatch`] for a cost in another currency,
    /// [`BudgetError::Money`] for a cost beyond `i64` minor units, [`BudgetError::TooMany`]
    /// past `u32::MAX - 1` users or choices. On error nothing is added.
    pub fn push(
        &mut self,
        user: UserId,
        segment: Option<&SegmentId>,
        choices: &[Choice],
    ) -> Result<usize, BudgetError> {
        let too_many = |what| BudgetError::TooMany {
            what,
            limit: u64::from(NONE - 1),
        };
        if self.users.len() >= (NONE - 1) as usize {
            return Err(too_many("users"));
        }
        let end = u32::try_from(self.values.len() + choices.len())
            .ok()
            .filter(|&e| e < NONE)
            .ok_or_else(|| too_many("choices"))?;
        let mark = self.costs.len();
        for c in choices {
            let minor = if c.cost.currency() != self.currency {
                Err(BudgetError::CurrencyMismatch {
                    what: "a choice's cost",
                    expected: self.currency,
                    found: c.cost.currency(),
                })
            } else {
                c.cost.to_minor().map_err(|source| BudgetError::Money {
                    what: "a choice's cost",
                    source,
                })
            };
            match minor {
                Ok(m) => self.costs.push(m),
                Err(e) => {
                    self.costs.truncate(mark);
                    return Err(e);
                }
            }
        }
        let seg = match segment {
            None => NONE,
            Some(id) => match self.segment_index.get(id) {
                Some(&i) => i,
                None => {
                    let Ok(i) = u32::try_from(self.segments.len()) else {
                        self.costs.truncate(mark);
                        return Err(too_many("segments"));
                    };
                    self.segments.push(id.clone());
                    self.segment_index.insert(id.clone(), i);
                    i
                }
            },
        };
        self.values.extend(choices.iter().map(|c| c.value));
        self.start.push(end);
        self.segment.push(seg);
        self.users.push(user);
        Ok(self.users.len() - 1)
    }

    /// The currency of every cost.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// User number `index`, if there is one.
    pub fn user(&self, index: usize) -> Option<&UserId> {
        self.users.get(index)
    }

    /// User number `index`'s segment, if any.
    pub fn segment_of(&self, index: usize) -> Option<&SegmentId> {
        let s = *self.segment.get(index)?;
        self.segments.get(s as usize)
    }

    /// User number `index`'s choices (empty if there is no such user).
    pub fn choices(&self, index: usize) -> Vec<Choice> {
        let range = self.range(index);
        range
            .filter_map(|j| {
                Some(Choice {
                    value: *self.values.get(j)?,
                    cost: Money::from_minor(*self.costs.get(j)?, self.currency),
                })
            })
            .collect()
    }

    fn range(&self, user: usize) -> std::ops::Range<usize> {
        let lo = self.start.get(user).copied().unwrap_or(0) as usize;
        let hi = self.start.get(user + 1).copied().map_or(lo, |h| h as usize);
        lo..hi
    }
}

/// How much may be spent: in total, per segment, or both.
///
/// ```
/// use coupons::budget::Budget;
/// use coupons::id::SegmentId;
/// use coupons::money::{Currency, Money};
/// let yuan = |n: i64| Money::from_minor(n * 100, Currency::CNY);
/// let budget = Budget::total(yuan(50_000))?
///     .with_segment(SegmentId::new("churn-risk")?, yuan(20_000))?
///     .with_segment(SegmentId::new("new")?, yuan(10_000))?;
/// assert_eq!(budget.total_amount(), Some(yuan(50_000)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    total: Option<Money>,
    segments: BTreeMap<SegmentId, Money>,
}

fn non_negative(scope: &str, amount: Money) -> Result<Money, BudgetError> {
    if amount.is_negative() {
        return Err(BudgetError::NegativeBudget {
            scope: scope.to_owned(),
            amount,
        });
    }
    Ok(amount)
}

impl Budget {
    /// At most `amount` in total.
    ///
    /// # Errors
    /// [`BudgetError::NegativeBudget`] for a negative amount.
    pub fn total(amount: Money) -> Result<Budget, BudgetError> {
        Ok(Budget {
            total: Some(non_negative("the total", amount)?),
            segments: BTreeMap::new(),
        })
    }

    /// No limit yet (add segment budgets with [`Budget::with_segment`]); on its own, every user
    /// gets their most valuable choice.
    pub fn unlimited() -> Budget {
        Budget {
            total: None,
            segments: BTreeMap::new(),
        }
    }

    /// Also at most `amount` on the users of `segment` (replacing an earlier amount for it).
    ///
    /// # Errors
    /// [`BudgetError::NegativeBudget`] for a negative amount.
    pub fn with_segment(
        mut self,
        segment: SegmentId,
        amount: Money,
    ) -> Result<Budget, BudgetError> {
        let amount = non_negative(segment.as_str(), amount)?;
        self.segments.insert(segment, amount);
        Ok(self)
    }

    /// The total limit, if any.
    pub fn total_amount(&self) -> Option<Money> {
        self.total
    }

    /// The per-segment limits.
    pub fn segments(&self) -> &BTreeMap<SegmentId, Money> {
        &self.segments
    }
}

/// How one segment's budget was used.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SegmentSpend {
    /// The segment.
    pub segment: SegmentId,
    /// Its budget.
    pub budget: Money,
    /// What the plan spends on its users.
    pub spent: Money,
    /// The value the plan gets from its users.
    pub value: f64,
    /// The segment's own price on budget, on top of the overall one (value per unit of
    /// currency; zero when the segment's budget does not bind).
    pub price: f64,
}

/// A plan: at most one choice per user, within the budget, with its dual bound.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Allocation {
    picks: Vec<u32>,
    /// The plan's total value.
    pub value: f64,
    /// The plan's total cost, exact.
    pub cost: Money,
    /// An upper bound on the value of any plan within the budget (the Lagrangian dual bound):
    /// the plan is at most `bound - value` from optimal.
    pub bound: f64,
    /// The overall price on budget at the bound (value per unit of currency; zero when the
    /// total does not bind or is not limited).
    pub price: f64,
    /// Per-segment budgets, in segment order.
    pub segments: Vec<SegmentSpend>,
}

impl Allocation {
    /// User number `user`'s chosen choice (its position among the user's choices), or `None`.
    pub fn pick(&self, user: usize) -> Option<usize> {
        match self.picks.get(user) {
            Some(&p) if p != NONE => Some(p as usize),
            _ => None,
        }
    }

    /// `(user, choice)` for every user who gets a coupon, in user order.
    pub fn chosen(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.picks
            .iter()
            .enumerate()
            .filter(|(_, p)| **p != NONE)
            .map(|(u, p)| (u, *p as usize))
    }

    /// How many users get a coupon.
    pub fn count(&self) -> usize {
        self.picks.iter().filter(|p| **p != NONE).count()
    }

    /// `bound - value`: how much more any plan within the budget could be worth (never
    /// negative beyond floating-point rounding).
    pub fn gap(&self) -> f64 {
        self.bound - self.value
    }

    /// [`gap`](Allocation::gap) as a share of the bound (0 when the bound is 0).
    pub fn relative_gap(&self) -> f64 {
        if self.bound > 0.0 {
            self.gap() / self.bound
        } else {
            0.0
        }
    }
}

/// A point of a user's efficient frontier: a global choice index (or [`NONE`] for nothing).
#[derive(Clone, Copy)]
struct Vertex {
    value: f64,
    cost: i64,
    choice: u32,
}

const NOTHING: Vertex = Vertex {
    value: 0.0,
    cost: 0,
    choice: NONE,
};

/// Extra value per extra minor unit from `p` to `q` (`q.cost > p.cost`).
fn efficiency(p: &Vertex, q: &Vertex) -> f64 {
    (q.value - p.value) / (q.cost - p.cost) as f64
}

/// The user's choices reduced to the upper convex hull of (cost, value) from the best free
/// choice (or nothing): costs and values strictly increase, efficiencies never increase.
fn frontier(
    values: &[f64],
    costs: &[i64],
    first: usize,
    order: &mut Vec<Vertex>,
    out: &mut Vec<Vertex>,
) {
    out.clear();
    order.clear();
    let mut base = NOTHING;
    for (k, (&value, &cost)) in values.iter().zip(costs).enumerate() {
        if value <= 0.0 {
            continue;
        }
        let v = Vertex {
            value,
            cost,
            choice: (first + k) as u32,
        };
        if cost == 0 {
            if value > base.value {
                base = v;
            }
        } else {
            order.push(v);
        }
    }
    // By cost, then value descending (small slices sort by insertion).
    order.sort_unstable_by(|a, b| a.cost.cmp(&b.cost).then(b.value.total_cmp(&a.value)));
    out.push(base);
    for q in order.iter() {
        let Some(last) = out.last() else { continue };
        if q.value <= last.value {
            continue; // dominated: costs at least as much, worth no more
        }
        while let [.., p, m] = out.as_slice() {
            if efficiency(m, q) > efficiency(p, m) {
                out.pop(); // m lies below the segment from p to q
            } else {
                break;
            }
        }
        out.push(*q);
    }
}

/// The critical efficiency for `budget`: the largest `e` such that the items strictly more
/// efficient than `e` fit and those at least as efficient do not. Returns `(e, cost of the items
/// above e)`, or `(0, total)` when everything fits.
///
/// A bisection on the price over the items' efficiencies, sixteen bits at a time: positive
/// `f64`s order like their bit patterns, so a histogram of costs over the top 16 bits finds the
/// bucket where the budget runs out, and only that bucket's items go on to the next 16 bits.
/// Four rounds reach the exact efficiency; the work is one pass over the items plus passes over
/// ever smaller buckets.
fn critical(items: &[(f64, i64)], budget: i128) -> (f64, i128) {
    let total: i128 = items.iter().map(|x| i128::from(x.1)).sum();
    if total <= budget {
        return (0.0, total);
    }
    const BUCKETS: usize = 1 << 16;
    let mut hist = vec![0i128; BUCKETS];
    let mut taken: i128 = 0;
    let mut set: Vec<(u64, i64)> = Vec::new();
    for level in 0..4u32 {
        let shift = 48 - 16 * level;
        let bucket = |bits: u64| ((bits >> shift) & 0xFFFF) as usize;
        hist.fill(0);
        if level == 0 {
            for &(e, c) in items {
                if let Some(h) = hist.get_mut(bucket(e.to_bits())) {
                    *h += i128::from(c);
                }
            }
        } else {
            for &(bits, c) in &set {
                if let Some(h) = hist.get_mut(bucket(bits)) {
                    *h += i128::from(c);
                }
            }
        }
        // From the most efficient bucket down: the first that does not fit.
        let mut critical_bucket = 0;
        for (b, &h) in hist.iter().enumerate().rev() {
            if taken + h > budget {
                critical_bucket = b;
                break;
            }
            taken += h;
        }
        if level == 0 {
            set = items
                .iter()
                .map(|&(e, c)| (e.to_bits(), c))
                .filter(|&(bits, _)| bucket(bits) == critical_bucket)
                .collect();
        } else {
            set.retain(|&(bits, _)| bucket(bits) == critical_bucket);
        }
    }
    // Every item left has the same bits: the critical efficiency.
    let price = set.first().map_or(0.0, |&(bits, _)| f64::from_bits(bits));
    (price, taken)
}

/// A constraint's price and the budget left for choices tied at it, spent in user order.
#[derive(Clone, Copy)]
struct Threshold {
    price: f64,
    /// Budget for tied items (`None` when nothing ties: no constraint or everything fits).
    tie_left: Option<i128>,
}

impl Threshold {
    const FREE: Threshold = Threshold {
        price: 0.0,
        tie_left: None,
    };

    fn new(items: &[(f64, i64)], budget: i128) -> Threshold {
        let (price, above) = critical(items, budget);
        if price > 0.0 {
            Threshold {
                price,
                tie_left: Some(budget - above),
            }
        } else {
            Threshold::FREE
        }
    }

    /// Whether an increment of efficiency `e` and cost `dc` passes, spending tie budget.
    fn admit(&mut self, e: f64, dc: i64) -> bool {
        if e > self.price {
            return true;
        }
        if e < self.price {
            return false;
        }
        match &mut self.tie_left {
            Some(left) if i128::from(dc) <= *left => {
                *left -= i128::from(dc);
                true
            }
            _ => false,
        }
    }
}

/// Chooses at most one of each user's choices to maximise the total value within the budget
/// (see the module docs for the method and the guarantees).
///
/// # Errors
/// [`BudgetError::CurrencyMismatch`] when a budget is in another currency than the candidates;
/// [`BudgetError::Money`] when a budget does not fit in `i64` minor units.
pub fn allocate(candidates: &Candidates, budget: &Budget) -> Result<Allocation, BudgetError> {
    let currency = candidates.currency;
    let minor = |m: &Money| -> Result<i128, BudgetError> {
        if m.currency() != currency {
            return Err(BudgetError::CurrencyMismatch {
                what: "a budget",
                expected: currency,
                found: m.currency(),
            });
        }
        m.to_minor()
            .map(i128::from)
            .map_err(|source| BudgetError::Money {
                what: "a budget",
                source,
            })
    };
    let total = budget.total.as_ref().map(&minor).transpose()?;
    // Segment budgets by the candidates' segment numbers.
    let nseg = candidates.segments.len();
    let mut seg_budget: Vec<Option<i128>> = vec![None; nseg];
    for (id, amount) in &budget.segments {
        let b = minor(amount)?;
        if let Some(&i) = candidates.segment_index.get(id) {
            if let Some(slot) = seg_budget.get_mut(i as usize) {
                *slot = Some(b);
            }
        }
    }
    let n = candidates.users.len();
    let (values, costs) = (&candidates.values, &candidates.costs);
    let seg_of = |u: usize| -> Option<usize> {
        let s = *candidates.segment.get(u)?;
        (s != NONE).then_some(s as usize)
    };

    let seg_budgeted = |u: usize| -> Option<usize> {
        seg_of(u).filter(|&s| seg_budget.get(s).copied().flatten().is_some())
    };

    // 1. Each user's efficient frontier, stored flat: the choice numbers (NONE: nothing) and,
    //    per vertex after the first, the efficiency of the edge into it. Its edges go to the
    //    user's segment's items (if the segment has a budget) or straight to the total's.
    let mut hull: Vec<u32> = Vec::with_capacity(n * 3);
    let mut hull_eff: Vec<f64> = Vec::with_capacity(n * 3);
    let mut hull_start: Vec<u32> = Vec::with_capacity(n + 1);
    let mut seg_items: Vec<Vec<(f64, i64)>> = vec![Vec::new(); nseg];
    let mut items: Vec<(f64, i64)> = if total.is_some() {
        Vec::with_capacity(n * 2)
    } else {
        Vec::new()
    };
    let (mut order, mut scratch) = (Vec::new(), Vec::new());
    for u in 0..n {
        hull_start.push(hull.len() as u32);
        let r = candidates.range(u);
        let (Some(vs), Some(cs)) = (values.get(r.clone()), costs.get(r.clone())) else {
            continue;
        };
        frontier(vs, cs, r.start, &mut order, &mut scratch);
        let target = match seg_budgeted(u) {
            Some(s) => seg_items.get_mut(s),
            None if total.is_some() => Some(&mut items),
            None => None,
        };
        let mut prev: Option<&Vertex> = None;
        match target {
            Some(list) => {
                for q in &scratch {
                    let e = prev.map_or(0.0, |p| efficiency(p, q));
                    if let Some(p) = prev {
                        list.push((e, q.cost - p.cost));
                    }
                    hull.push(q.choice);
                    hull_eff.push(e);
                    prev = Some(q);
                }
            }
            None => {
                for q in &scratch {
                    hull.push(q.choice);
                    hull_eff.push(prev.map_or(0.0, |p| efficiency(p, q)));
                    prev = Some(q);
                }
            }
        }
    }
    hull_start.push(hull.len() as u32);
    let cost_of = |choice: u32| -> i64 { costs.get(choice as usize).copied().unwrap_or(0) };
    let vertex = |choice: u32| -> Vertex {
        let i = choice as usize;
        match (values.get(i), costs.get(i)) {
            (Some(&value), Some(&cost)) => Vertex {
                value,
                cost,
                choice,
            },
            _ => NOTHING,
        }
    };
    // User u's frontier: (choice, efficiency of the edge into it) from the base.
    let chain = |u: usize| -> (&[u32], &[f64]) {
        let lo = hull_start.get(u).copied().unwrap_or(0) as usize;
        let hi = hull_start.get(u + 1).copied().unwrap_or(0) as usize;
        (
            hull.get(lo..hi).unwrap_or(&[]),
            hull_eff.get(lo..hi).unwrap_or(&[]),
        )
    };

    // 2. Each budgeted segment's own price.
    let mut seg_threshold: Vec<Threshold> = vec![Threshold::FREE; nseg];
    for (s, list) in seg_items.iter_mut().enumerate() {
        if let (Some(Some(b)), Some(t)) = (seg_budget.get(s), seg_threshold.get_mut(s)) {
            *t = Threshold::new(list, *b);
        }
    }
    drop(seg_items);

    // Walks user u's frontier through the segment threshold, then `global`; returns the
    // vertex reached (the last admitted).
    let walk = |u: usize, seg: &mut [Threshold], mut global: Option<&mut Threshold>| -> u32 {
        let (ids, effs) = chain(u);
        let Some((&first, rest)) = ids.split_first() else {
            return NONE;
        };
        let mut at = first;
        let mut s = seg_budgeted(u).and_then(|s| seg.get_mut(s));
        for (&q, &e) in rest.iter().zip(effs.get(1..).unwrap_or(&[])) {
            let dc = cost_of(q) - cost_of(at);
            if let Some(t) = s.as_deref_mut() {
                if !t.admit(e, dc) {
                    break;
                }
            }
            if let Some(g) = global.as_deref_mut() {
                if !g.admit(e, dc) {
                    break;
                }
            }
            at = q;
        }
        at
    };

    // 3. The overall price, over the edges of users without a segment budget and those the
    //    segment prices admit.
    let mut global = Threshold::FREE;
    if let Some(b) = total {
        if seg_budget.iter().any(Option::is_some) {
            let mut seg = seg_threshold.clone();
            for u in 0..n {
                let Some(t) = seg_budgeted(u).and_then(|s| seg.get_mut(s)) else {
                    continue;
                };
                let (ids, effs) = chain(u);
                for (w, &e) in ids.windows(2).zip(effs.get(1..).unwrap_or(&[])) {
                    let [p, q] = w else { break };
                    let dc = cost_of(*q) - cost_of(*p);
                    if !t.admit(e, dc) {
                        break;
                    }
                    items.push((e, dc));
                }
            }
        }
        global = Threshold::new(&items, b);
    }
    drop(items);
    let global_price = global.price;
    let seg_extra: Vec<f64> = seg_threshold
        .iter()
        .map(|t| (t.price - global_price).max(0.0))
        .collect();

    // 4. The plan at those prices, what it spends, and the dual bound.
    let mut at: Vec<Vertex> = Vec::with_capacity(n);
    let mut bound = global_price * total.map_or(0.0, |b| b as f64);
    for (s, b) in seg_budget.iter().enumerate() {
        if let (Some(b), Some(mu)) = (b, seg_extra.get(s)) {
            bound += mu * *b as f64;
        }
    }
    let mut spent_seg: Vec<i128> = vec![0; nseg];
    let mut spent: i128 = 0;
    {
        let mut seg = seg_threshold.clone();
        for u in 0..n {
            let v = vertex(walk(u, &mut seg, total.map(|_| &mut global)));
            spent += i128::from(v.cost);
            let su = seg_of(u);
            if let Some(slot) = su.and_then(|s| spent_seg.get_mut(s)) {
                *slot += i128::from(v.cost);
            }
            at.push(v);
            let theta = global_price + su.and_then(|s| seg_extra.get(s)).copied().unwrap_or(0.0);
            let r = candidates.range(u);
            let mut best = 0.0f64;
            if let (Some(vs), Some(cs)) = (values.get(r.clone()), costs.get(r)) {
                for (&v, &c) in vs.iter().zip(cs) {
                    best = best.max(v - theta * c as f64);
                }
            }
            bound += best;
        }
    }

    // 5. Greedy repair with what is left.
    let left_total = total.map(|b| b - spent);
    let left_seg: Vec<Option<i128>> = seg_budget
        .iter()
        .zip(&spent_seg)
        .map(|(b, s)| b.map(|b| b - s))
        .collect();
    let room = |u: usize, lt: Option<i128>, ls: &[Option<i128>]| -> Option<i128> {
        let s = seg_of(u).and_then(|s| ls.get(s).copied().flatten());
        match (lt, s) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a),
            (Some(a), Some(b)) => Some(a.min(b)),
        }
    };
    // (efficiency, extra value, extra cost, user, choice)
    let mut ups: Vec<(f64, f64, i64, u32, u32)> = Vec::new();
    for u in 0..n {
        let Some(limit) = room(u, left_total, &left_seg) else {
            continue; // unconstrained: already at its most valuable choice
        };
        let Some(cur) = at.get(u) else { continue };
        let r = candidates.range(u);
        let start = r.start;
        let (Some(vs), Some(cs)) = (values.get(r.clone()), costs.get(r)) else {
            continue;
        };
        for (k, (&v, &c)) in vs.iter().zip(cs).enumerate() {
            let (dv, dc) = (v - cur.value, c - cur.cost);
            if dv > 0.0 && i128::from(dc) <= limit {
                let e = if dc <= 0 {
                    f64::INFINITY
                } else {
                    dv / dc as f64
                };
                ups.push((e, dv, dc, u as u32, (start + k) as u32));
            }
        }
    }
    if !ups.is_empty() {
        // The single most valuable upgrade, for the comparison below.
        let single = ups
            .iter()
            .max_by(|x, y| x.1.total_cmp(&y.1).then(y.3.cmp(&x.3)))
            .copied();
        // Greedy in order of efficiency (then value, user, choice: a total order), taken in
        // chunks: the best `chunk` are selected in linear time and sorted, and what no longer
        // fits is dropped before the next, larger chunk.
        let order = |x: &(f64, f64, i64, u32, u32), y: &(f64, f64, i64, u32, u32)| {
            y.0.total_cmp(&x.0)
                .then(y.1.total_cmp(&x.1))
                .then(x.3.cmp(&y.3))
                .then(x.4.cmp(&y.4))
        };
        let mut greedy: Vec<(u32, u32)> = Vec::new();
        let mut gain = 0.0;
        let (mut lt, mut ls) = (left_total, left_seg.clone());
        let mut touched: Vec<bool> = vec![false; n];
        let mut rest: Vec<(f64, f64, i64, u32, u32)> = ups;
        let mut chunk = 1024usize;
        while !rest.is_empty() {
            let take = chunk.min(rest.len());
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, order);
            }
            let tail = rest.split_off(take);
            rest.sort_unstable_by(order);
            for &(_, dv, dc, u, choice) in &rest {
                let ui = u as usize;
                if touched.get(ui).copied().unwrap_or(true) {
                    continue;
                }
                let Some(limit) = room(ui, lt, &ls) else {
                    continue;
                };
                if i128::from(dc) > limit {
                    continue;
                }
                if let Some(t) = lt.as_mut() {
                    *t -= i128::from(dc);
                }
                if let Some(Some(t)) = seg_of(ui).and_then(|s| ls.get_mut(s)) {
                    *t -= i128::from(dc);
                }
                if let Some(t) = touched.get_mut(ui) {
                    *t = true;
                }
                gain += dv;
                greedy.push((u, choice));
            }
            rest = tail;
            rest.retain(|&(_, _, dc, u, _)| {
                let ui = u as usize;
                !touched.get(ui).copied().unwrap_or(true)
                    && room(ui, lt, &ls).is_some_and(|limit| i128::from(dc) <= limit)
            });
            chunk = chunk.saturating_mul(2);
        }
        // The single most valuable upgrade, if it beats the greedy set.
        let chosen: Vec<(u32, u32)> = match single {
            Some((_, dv, _, u, choice)) if dv > gain => vec![(u, choice)],
            _ => greedy,
        };
        for (u, choice) in chosen {
            if let Some(slot) = at.get_mut(u as usize) {
                let c = choice as usize;
                *slot = Vertex {
                    value: values.get(c).copied().unwrap_or(0.0),
                    cost: costs.get(c).copied().unwrap_or(0),
                    choice,
                };
            }
        }
    }

    // 6. The outcome.
    let mut picks: Vec<u32> = Vec::with_capacity(n);
    let mut value = 0.0;
    let mut spent: i128 = 0;
    let mut seg_value = vec![0.0; nseg];
    let mut seg_spent = vec![0i128; nseg];
    for (u, v) in at.iter().enumerate() {
        let start = candidates.range(u).start;
        picks.push(if v.choice == NONE {
            NONE
        } else {
            v.choice - start as u32
        });
        value += v.value;
        spent += i128::from(v.cost);
        if let Some(s) = seg_of(u) {
            if let (Some(a), Some(b)) = (seg_value.get_mut(s), seg_spent.get_mut(s)) {
                *a += v.value;
                *b += i128::from(v.cost);
            }
        }
    }
    let money = |m: i128| -> Result<Money, BudgetError> {
        i64::try_from(m)
            .map(|m| Money::from_minor(m, currency))
            .map_err(|_| BudgetError::Money {
                what: "the plan's cost",
                source: MoneyError::Overflow {
                    operation: "sum of costs",
                },
            })
    };
    let per_unit = 10f64.powi(i32::from(currency.exponent()));
    let mut segments = Vec::new();
    for (id, amount) in &budget.segments {
        let i = candidates.segment_index.get(id).map(|&i| i as usize);
        let (v, s, mu) = match i {
            Some(i) => (
                seg_value.get(i).copied().unwrap_or(0.0),
                seg_spent.get(i).copied().unwrap_or(0),
                seg_extra.get(i).copied().unwrap_or(0.0),
            ),
            None => (0.0, 0, 0.0),
        };
        segments.push(SegmentSpend {
            segment: id.clone(),
            budget: *amount,
            spent: money(s)?,
            value: v,
            price: mu * per_unit,
        });
    }
    Ok(Allocation {
        picks,
        value,
        cost: money(spent)?,
        bound: bound.max(value),
        price: global_price * per_unit,
        segments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CNY: Currency = Currency::CNY;

    fn m(minor: i64) -> Money {
        Money::from_minor(minor, CNY)
    }

    fn problem(users: &[&[(f64, i64)]]) -> Candidates {
        let mut c = Candidates::new(CNY);
        for (i, opts) in users.iter().enumerate() {
            let choices: Vec<Choice> = opts
                .iter()
                .map(|&(v, cost)| Choice::new(v, m(cost)).unwrap())
                .collect();
            c.push(UserId::new(format!("u{i}")).unwrap(), None, &choices)
                .unwrap();
        }
        c
    }

    #[test]
    fn frontier_drops_dominated_and_concave_breaking_choices() {
        // (value, cost): (1, 10) is dominated by (5, 5); (6, 20) lies below the hull through
        // (5, 5) and (12, 25); (0.0, 3) is worthless; (2, 0) is the free base.
        let values = [1.0, 5.0, 6.0, 12.0, 0.0, 2.0];
        let costs = [10, 5, 20, 25, 3, 0];
        let (mut order, mut out) = (Vec::new(), Vec::new());
        frontier(&values, &costs, 0, &mut order, &mut out);
        let ids: Vec<u32> = out.iter().map(|v| v.choice).collect();
        assert_eq!(ids, [5, 1, 3]);
        for w in out.windows(3) {
            assert!(efficiency(&w[0], &w[1]) >= efficiency(&w[1], &w[2]));
        }
    }

    #[test]
    fn critical_price_agrees_with_sorting() {
        // Pseudo-random efficiencies with many ties, against a sort.
        let mut state = 7u64;
        let mut items = Vec::new();
        for _ in 0..5000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let e = ((state >> 40) % 300) as f64 / 7.0 + 1e-3;
            items.push((e, 1 + ((state >> 20) % 50) as i64));
        }
        let mut sorted = items.clone();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
        for budget in [0i128, 1, 77, 5_000, 40_000, 200_000] {
            let (price, above) = critical(&items, budget);
            let over: i128 = sorted
                .iter()
                .filter(|x| x.0 > price)
                .map(|x| i128::from(x.1))
                .sum();
            let at_least: i128 = sorted
                .iter()
                .filter(|x| x.0 >= price)
                .map(|x| i128::from(x.1))
                .sum();
            if price > 0.0 {
                assert_eq!(above, over);
                assert!(over <= budget && at_least > budget, "{budget}");
            } else {
                assert!(over <= budget);
            }
        }
    }

    #[test]
    fn critical_price_splits_the_items_at_the_budget() {
        let items = vec![(5.0, 10), (1.0, 10), (3.0, 10), (3.0, 5), (4.0, 10)];
        // 5 and 4 fit (20); the 3s (15 more) do not fit in 30.
        assert_eq!(critical(&items, 30), (3.0, 20));
        assert_eq!(critical(&items, 35), (1.0, 35));
        assert_eq!(critical(&items, 45), (0.0, 45));
        assert_eq!(critical(&items, 0), (5.0, 0));
        assert_eq!(critical(&[], 10), (0.0, 0));
        // Efficiencies one ulp apart are told apart.
        let e = 0.1f64;
        let next = f64::from_bits(e.to_bits() + 1);
        assert_eq!(critical(&[(e, 1), (next, 1)], 1), (e, 1));
    }

    #[test]
    fn unconstrained_users_get_their_best_choice_and_the_bound_is_tight() {
        let c = problem(&[&[(3.0, 100), (5.0, 300)], &[(-1.0, 0)], &[]]);
        let plan = allocate(&c, &Budget::total(m(1_000)).unwrap()).unwrap();
        assert_eq!(plan.pick(0), Some(1));
        assert_eq!(plan.pick(1), None);
        assert_eq!(plan.pick(2), None);
        assert_eq!(plan.value, 5.0);
        assert_eq!(plan.bound, 5.0);
        assert_eq!(plan.price, 0.0);
        let free = allocate(&c, &Budget::unlimited()).unwrap();
        assert_eq!(free.value, 5.0);
    }

    #[test]
    fn zero_budget_takes_only_free_choices() {
        let c = problem(&[&[(3.0, 100), (1.0, 0)], &[(4.0, 50)]]);
        let plan = allocate(&c, &Budget::total(m(0)).unwrap()).unwrap();
        assert_eq!(plan.pick(0), Some(1));
        assert_eq!(plan.pick(1), None);
        assert_eq!(plan.cost, m(0));
        assert!((plan.bound - 1.0).abs() < 1e-12);
    }

    #[test]
    fn repair_fills_the_budget_left_by_the_price() {
        // Efficiencies: user 0 10/10 = 1, user 1 9/10 = 0.9, user 2 4/5 = 0.8. Budget 15:
        // at the critical price 0.9 only user 0 is taken (10), then user 2 fits (5).
        let c = problem(&[&[(10.0, 10)], &[(9.0, 10)], &[(4.0, 5)]]);
        let plan = allocate(&c, &Budget::total(m(15)).unwrap()).unwrap();
        assert_eq!(plan.chosen().collect::<Vec<_>>(), [(0, 0), (2, 0)]);
        assert_eq!(plan.value, 14.0);
        assert_eq!(plan.cost, m(15));
        // λ = 0.9 per fen: 0.9·15 + (10 - 9) + 0 + max(0, 4 - 4.5) = 14.5.
        assert!((plan.bound - 14.5).abs() < 1e-12);
        assert!((plan.price - 90.0).abs() < 1e-9);
    }

    #[test]
    fn segment_budgets_cap_their_users() {
        let mut c = Candidates::new(CNY);
        let vip = SegmentId::new("vip").unwrap();
        for i in 0..4 {
            let seg = (i % 2 == 0).then_some(&vip);
            c.push(
                UserId::new(format!("u{i}")).unwrap(),
                seg,
                &[Choice::new(10.0, m(10)).unwrap()],
            )
            .unwrap();
        }
        let budget = Budget::total(m(30))
            .unwrap()
            .with_segment(vip.clone(), m(10))
            .unwrap();
        let plan = allocate(&c, &budget).unwrap();
        assert_eq!(plan.cost, m(30));
        assert_eq!(plan.segments[0].spent, m(10));
        assert_eq!(plan.count(), 3);
        assert!((plan.bound - 30.0).abs() < 1e-9);
    }

    #[test]
    fn mismatched_currency_and_negative_amounts_are_refused() {
        let mut c = Candidates::new(CNY);
        let usd = Money::from_minor(5, Currency::USD);
        assert!(matches!(
            c.push(
                UserId::new("a").unwrap(),
                None,
                &[Choice::new(1.0, usd).unwrap()]
            ),
            Err(BudgetError::CurrencyMismatch { .. })
        ));
        assert!(c.is_empty());
        // A refused user leaves nothing behind: the next one's choices are its own.
        let ok = Choice::new(2.0, m(7)).unwrap();
        let bad = Choice::new(1.0, usd).unwrap();
        assert!(c.push(UserId::new("b").unwrap(), None, &[ok, bad]).is_err());
        assert_eq!(c.push(UserId::new("c").unwrap(), None, &[ok]).unwrap(), 0);
        assert_eq!(c.choices(0), vec![ok]);
        c = Candidates::new(CNY);
        assert!(matches!(
            allocate(&c, &Budget::total(usd).unwrap()),
            Err(BudgetError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            Budget::total(m(-1)),
            Err(BudgetError::NegativeBudget { .. })
        ));
    }
}
