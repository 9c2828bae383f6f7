//! The decision: [`Engine::decide`], what it reads ([`Profile`], [`UserHistory`], [`Ledger`])
//! and what it returns ([`Decision`]).
//!
//! ## The order of the checks
//!
//! For each rule whose trigger matches, in the order the rules were given: the trigger's own
//! precondition (an abandoned cart with no order since it changed), the [`Audience`], the
//! offer's choice for the user's lifecycle segment, then the guards — de-duplication, the
//! rule's cooldown, the policy's frequency caps (unless the rule is transactional), the
//! budget's count, the budget's money. The first that fails holds the rule back and is
//! reported as a [`Held`] with its numbers. Every rule that passes issues; the issues of one
//! decision count toward the caps and budgets of the rules after them.
//!
//! [`Audience`]: super::Audience

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, FixedOffset, Utc};

use super::policy::{Budget, Policy, Window};
use super::rule::{AudienceMiss, Delivery, Message, Rule};
use super::trigger::{DedupKey, Occurrence, Timer, TimerKey, Trigger, TriggerKind};
use super::{BudgetId, IssuingError, RuleId, shift};
use crate::cart::CustomerKind;
use crate::hash::FastMap;
use crate::id::{CampaignId, MembershipLevel, SegmentId, TemplateId, UserId};
use crate::money::{Currency, Money};
use crate::targeting::{Lifecycle, RfmSegment};

/// What the engine knows of a user when deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The account.
    pub user: UserId,
    /// The user's UTC offset: local days, years and quiet hours are counted in it.
    pub offset: FixedOffset,
    /// New or returning.
    pub kind: CustomerKind,
    /// Membership level, if any.
    pub level: Option<MembershipLevel>,
    /// Segments (from [`targeting`](crate::targeting) or a CRM).
    pub segments: BTreeSet<SegmentId>,
    /// The lifecycle segment, from [`lifecycle_segments`](crate::targeting::lifecycle_segments).
    pub lifecycle: Option<Lifecycle>,
    /// The RFM segment, from [`rfm_scores`](crate::targeting::rfm_scores).
    pub rfm: Option<RfmSegment>,
    /// When the user last placed an order.
    pub last_order_at: Option<DateTime<Utc>>,
}

impl Profile {
    /// A returning user at `offset` with no level or segments.
    pub fn new(user: UserId, offset: FixedOffset) -> Profile {
        Profile {
            user,
            offset,
            kind: CustomerKind::Returning,
            level: None,
            segments: BTreeSet::new(),
            lifecycle: None,
            rfm: None,
            last_order_at: None,
        }
    }
    /// New or returning.
    pub fn kind(mut self, kind: CustomerKind) -> Profile {
        self.kind = kind;
        self
    }
    /// The membership level.
    pub fn level(mut self, level: MembershipLevel) -> Profile {
        self.level = Some(level);
        self
    }
    /// Adds a segment.
    pub fn segment(mut self, segment: SegmentId) -> Profile {
        self.segments.insert(segment);
        self
    }
    /// The lifecycle segment (also added to [`segments`](Self::segments)).
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Profile {
        self.segments.insert(interned_lifecycle(lifecycle));
        self.lifecycle = Some(lifecycle);
        self
    }
    /// The RFM segment (also added to [`segments`](Self::segments)).
    pub fn rfm(mut self, rfm: RfmSegment) -> Profile {
        self.segments.insert(interned_rfm(rfm));
        self.rfm = Some(rfm);
        self
    }
    /// When the user last ordered.
    pub fn last_order_at(mut self, at: DateTime<Utc>) -> Profile {
        self.last_order_at = Some(at);
        self
    }
}

/// The segment id of a lifecycle segment, one allocation shared by every profile.
fn interned_lifecycle(l: Lifecycle) -> SegmentId {
    static IDS: OnceLock<Vec<SegmentId>> = OnceLock::new();
    let ids = IDS.get_or_init(|| Lifecycle::ALL.iter().map(Lifecycle::segment_id).collect());
    Lifecycle::ALL
        .iter()
        .position(|x| *x == l)
        .and_then(|i| ids.get(i))
        .cloned()
        .unwrap_or_else(|| l.segment_id())
}

/// The segment id of an RFM segment, one allocation shared by every profile.
fn interned_rfm(r: RfmSegment) -> SegmentId {
    static IDS: OnceLock<Vec<SegmentId>> = OnceLock::new();
    let ids = IDS.get_or_init(|| RfmSegment::ALL.iter().map(RfmSegment::segment_id).collect());
    RfmSegment::ALL
        .iter()
        .position(|x| *x == r)
        .and_then(|i| ids.get(i))
        .cloned()
        .unwrap_or_else(|| r.segment_id())
}

/// One earlier issue, as the guards need it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Past {
    /// The rule that issued.
    pub rule: RuleId,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// Its message hint.
    pub message: Option<Message>,
    /// Whether the rule was transactional (such issues do not count toward caps).
    pub transactional: bool,
    /// Its de-duplication key.
    pub key: DedupKey,
}

/// A user's earlier issues, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UserHistory {
    past: Vec<Past>,
}

impl UserHistory {
    /// No issues yet.
    pub const fn new() -> UserHistory {
        UserHistory { past: Vec::new() }
    }
    /// Records an issue.
    pub fn record(&mut self, past: Past) {
        self.past.push(past);
    }
    /// The issues, in the order recorded.
    pub fn iter(&self) -> impl Iterator<Item = &Past> {
        self.past.iter()
    }
    /// How many.
    pub fn len(&self) -> usize {
        self.past.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.past.is_empty()
    }
}

impl FromIterator<Past> for UserHistory {
    fn from_iter<I: IntoIterator<Item = Past>>(iter: I) -> UserHistory {
        UserHistory {
            past: iter.into_iter().collect(),
        }
    }
}

/// What each campaign budget has spent: money (expected cost) and issues.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Ledger {
    currency: Currency,
    spent: BTreeMap<BudgetId, (Money, u64)>,
}

impl Ledger {
    /// Nothing spent, in `currency`.
    pub fn new(currency: Currency) -> Ledger {
        Ledger {
            currency,
            spent: BTreeMap::new(),
        }
    }
    /// The money and issues `budget` has spent.
    pub fn spent(&self, budget: &BudgetId) -> (Money, u64) {
        self.spent
            .get(budget)
            .copied()
            .unwrap_or((Money::zero(self.currency), 0))
    }
    /// Charges one issue of `cost` to `budget`.
    ///
    /// # Errors
    /// [`IssuingError::Money`] when the sum overflows or `cost` is in another currency.
    pub fn charge(&mut self, budget: &BudgetId, cost: Money) -> Result<(), IssuingError> {
        let (m, n) = self.spent(budget);
        let m = m.checked_add(&cost).map_err(|source| IssuingError::Money {
            field: "ledger",
            source,
        })?;
        self.spent.insert(budget.clone(), (m, n.saturating_add(1)));
        Ok(())
    }
}

/// One coupon to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The rule that fired.
    pub rule: RuleId,
    /// The template to issue from.
    pub template: TemplateId,
    /// Auto-claim or notify-to-claim.
    pub delivery: Delivery,
    /// The message hint.
    pub message: Option<Message>,
    /// When it was decided (`now`).
    pub decided_at: DateTime<Utc>,
    /// When to deliver the message: `decided_at`, or the end of the user's quiet hours.
    pub deliver_at: DateTime<Utc>,
    /// The expected cost charged to the budget.
    pub cost: Money,
    /// The budget charged.
    pub budget: Option<BudgetId>,
    /// The campaign to claim in.
    pub campaign: Option<CampaignId>,
    /// Whether the rule is transactional.
    pub transactional: bool,
    /// What makes it the same as another issue of the rule to the user.
    pub key: DedupKey,
}

impl Issue {
    /// Whether quiet hours deferred its message.
    pub fn deferred(&self) -> bool {
        self.deliver_at > self.decided_at
    }
    /// The record the guards read later.
    pub fn past(&self) -> Past {
        Past {
            rule: self.rule.clone(),
            at: self.decided_at,
            message: self.message,
            transactional: self.transactional,
            key: self.key.clone(),
        }
    }
}

/// Why a rule whose trigger matched did not issue, with its numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Guard {
    /// The user is not in the rule's audience.
    Audience(AudienceMiss),
    /// A choice by segment has nothing for the user's segment.
    NoChoice {
        /// The user's lifecycle segment.
        lifecycle: Option<Lifecycle>,
    },
    /// The user ordered after the cart last changed: not abandoned.
    OrderedSince {
        /// When the cart changed.
        changed_at: DateTime<Utc>,
        /// When the user ordered.
        ordered_at: DateTime<Utc>,
    },
    /// The rule already issued to the user for the same key.
    Duplicate {
        /// The key.
        key: DedupKey,
        /// When it issued.
        at: DateTime<Utc>,
    },
    /// The rule issued to the user too recently.
    Cooldown {
        /// Its last issue.
        last: DateTime<Utc>,
        /// When it may issue again.
        until: DateTime<Utc>,
    },
    /// A frequency cap is reached.
    Frequency {
        /// Issues counted in the window.
        issued: u32,
        /// The cap.
        max: u32,
        /// The window.
        window: Window,
        /// The message the cap counts, or `None` for all.
        message: Option<Message>,
    },
    /// The budget's issues are spent.
    BudgetCount {
        /// The budget.
        budget: BudgetId,
        /// Issues spent.
        issued: u64,
        /// Its limit.
        max: u64,
    },
    /// The budget's money would be exceeded.
    BudgetMoney {
        /// The budget.
        budget: BudgetId,
        /// Money spent.
        spent: Money,
        /// This issue's cost.
        cost: Money,
        /// Its limit.
        max: Money,
    },
}

/// The kind of a [`Guard`], for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
#[allow(missing_docs)] // Each is the guard of the same name.
pub enum GuardKind {
    Audience,
    NoChoice,
    OrderedSince,
    Duplicate,
    Cooldown,
    Frequency,
    BudgetCount,
    BudgetMoney,
}

impl Guard {
    /// Its kind.
    pub fn kind(&self) -> GuardKind {
        match self {
            Guard::Audience(_) => GuardKind::Audience,
            Guard::NoChoice { .. } => GuardKind::NoChoice,
            Guard::OrderedSince { .. } => GuardKind::OrderedSince,
            Guard::Duplicate { .. } => GuardKind::Duplicate,
            Guard::Cooldown { .. } => GuardKind::Cooldown,
            Guard::Frequency { .. } => GuardKind::Frequency,
            Guard::BudgetCount { .. } => GuardKind::BudgetCount,
            Guard::BudgetMoney { .. } => GuardKind::BudgetMoney,
        }
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guard::Audience(miss) => write!(f, "not in the audience: {miss}"),
            Guard::NoChoice { lifecycle: None } => {
                f.write_str("no template for users without a lifecycle segment")
            }
            Guard::NoChoice { lifecycle: Some(l) } => {
                write!(f, "no template for lifecycle segment {l}")
            }
            Guard::OrderedSince {
                changed_at,
                ordered_at,
            } => write!(
                f,
                "not abandoned: ordered at {} after the cart changed at {}",
                ordered_at.to_rfc3339(),
                changed_at.to_rfc3339()
            ),
            Guard::Duplicate { key, at } => {
                write!(f, "already issued for {key} at {}", at.to_rfc3339())
            }
            Guard::Cooldown { last, until } => write!(
                f,
                "cooling down: last issued at {}, again from {}",
                last.to_rfc3339(),
                until.to_rfc3339()
            ),
            Guard::Frequency {
                issued,
                max,
                window,
                message,
            } => {
                let what = match (message, *max) {
                    (Some(m), 1) => format!("{m} message"),
                    (Some(m), _) => format!("{m} messages"),
                    (None, 1) => "coupon".to_owned(),
                    (None, _) => "coupons".to_owned(),
                };
                write!(f, "{issued} of {max} {what} {window}")
            }
            Guard::BudgetCount {
                budget,
                issued,
                max,
            } => write!(f, "budget {budget}: {issued} of {max} issues spent"),
            Guard::BudgetMoney {
                budget,
                spent,
                cost,
                max,
            } => write!(
                f,
                "budget {budget}: {spent} of {max} spent, {cost} more would exceed it"
            ),
        }
    }
}

/// A rule held back, and by what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The rule.
    pub rule: RuleId,
    /// The guard.
    pub guard: Guard,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: {}", self.rule, self.guard)
    }
}

/// What to do about one occurrence of one user (the caller knows which: the decision does not
/// repeat the user's id).
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// The coupons to issue, in rule order.
    pub issues: Vec<Issue>,
    /// The rules whose trigger matched but that did not issue, in rule order.
    pub held: Vec<Held>,
    /// Timers to schedule (replacing any with the same key).
    pub timers: Vec<Timer>,
    /// Timers to cancel.
    pub cancel: Vec<TimerKey>,
}

impl Decision {
    fn new(at: DateTime<Utc>) -> Decision {
        Decision {
            at,
            issues: Vec::new(),
            held: Vec::new(),
            timers: Vec::new(),
            cancel: Vec::new(),
        }
    }

    /// Whether it issues nothing and schedules nothing.
    pub fn is_empty(&self) -> bool {
        self.issues.is_empty() && self.timers.is_empty() && self.cancel.is_empty()
    }

    /// Records the issues into the user's history and charges their budgets.
    ///
    /// # Errors
    /// [`IssuingError::Money`] when a budget's sum overflows; issues before it are recorded.
    pub fn record(
        &self,
        history: &mut UserHistory,
        ledger: &mut Ledger,
    ) -> Result<(), IssuingError> {
        for issue in &self.issues {
            history.record(issue.past());
            if let Some(b) = &issue.budget {
                ledger.charge(b, issue.cost)?;
            }
        }
        Ok(())
    }
}

/// The rules and the policy, checked together; decides one occurrence at a time.
#[derive(Clone, Debug)]
pub struct Engine {
    policy: Policy,
    rules: Vec<Rule>,
    by_kind: Vec<Vec<usize>>,
    budgets: HashMap<BudgetId, usize>,
    cart_delays: Vec<u32>,
    view_delays: Vec<u32>,
}

impl Engine {
    /// Checks the rules against the policy and indexes them by trigger.
    ///
    /// # Errors
    /// [`IssuingError::Duplicate`] for two rules with one id (`engine.rules`) or two budgets
    /// with one id (`policy.budgets`); [`IssuingError::Currency`] for a cost
    /// (`rule.offer.cost`), spend level (`rule.trigger.level`) or budget
    /// (`policy.budgets.money`) in another currency than the policy's;
    /// [`IssuingError::UnknownBudget`] for a rule charged to a budget the policy lacks.
    pub fn new(policy: Policy, rules: Vec<Rule>) -> Result<Engine, IssuingError> {
        let currency = policy.currency;
        let check = |field, m: Money| {
            if m.currency() == currency {
                Ok(())
            } else {
                Err(IssuingError::Currency {
                    field,
                    expected: currency,
                    found: m.currency(),
                })
            }
        };
        let mut budgets = HashMap::new();
        for (i, b) in policy.budgets.iter().enumerate() {
            if let Some(m) = b.money() {
                check("policy.budgets.money", m)?;
            }
            if budgets.insert(b.id().clone(), i).is_some() {
                return Err(IssuingError::Duplicate {
                    field: "policy.budgets",
                    value: b.id().to_string(),
                });
            }
        }
        let mut ids = BTreeSet::new();
        let mut by_kind = vec![Vec::new(); TriggerKind::ALL.len()];
        let (mut cart_delays, mut view_delays) = (BTreeSet::new(), BTreeSet::new());
        for (i, r) in rules.iter().enumerate() {
            if !ids.insert(r.id().clone()) {
                return Err(IssuingError::Duplicate {
                    field: "engine.rules",
                    value: r.id().to_string(),
                });
            }
            for c in r.offer().choices() {
                check("rule.offer.cost", c.cost)?;
            }
            match r.trigger() {
                Trigger::SpendReached { level } => check("rule.trigger.level", *level)?,
                Trigger::CartAbandoned { after_minutes } => {
                    cart_delays.insert(*after_minutes);
                }
                Trigger::ProductViewed { minutes } => {
                    view_delays.insert(*minutes);
                }
                _ => {}
            }
            if let Some(b) = r.budget() {
                if !budgets.contains_key(b) {
                    return Err(IssuingError::UnknownBudget {
                        rule: r.id().clone(),
                        budget: b.clone(),
                    });
                }
            }
            if let Some(list) = by_kind.get_mut(r.trigger().kind().index()) {
                list.push(i);
            }
        }
        Ok(Engine {
            policy,
            rules,
            by_kind,
            budgets,
            cart_delays: cart_delays.into_iter().collect(),
            view_delays: view_delays.into_iter().collect(),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with `id`.
    pub fn rule(&self, id: &RuleId) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id() == id)
    }

    fn budget(&self, id: &BudgetId) -> Option<&Budget> {
        self.budgets
            .get(id)
            .and_then(|i| self.policy.budgets.get(*i))
    }

    /// Decides what to do about `occurrence` for `profile`'s user at `now`, given the user's
    /// `history` and the budgets' `ledger`. Pure: the same inputs give the same decision.
    /// Record the decision ([`Decision::record`]) before deciding the user's next
    /// occurrence.
    ///
    /// # Panics
    /// Never.
    pub fn decide(
        &self,
        profile: &Profile,
        occurrence: &Occurrence,
        history: &UserHistory,
        ledger: &Ledger,
        now: DateTime<Utc>,
    ) -> Decision {
        let mut d = Decision::new(now);
        match occurrence {
            Occurrence::CartChanged { cart } => {
                for &after_minutes in &self.cart_delays {
                    d.timers.push(Timer {
                        due: shift(now, Duration::minutes(i64::from(after_minutes))),
                        key: TimerKey::CartIdle {
                            cart: cart.clone(),
                            after_minutes,
                        },
                        then: Occurrence::CartAbandoned {
                            cart: cart.clone(),
                            changed_at: now,
                            after_minutes,
                        },
                    });
                }
                return d;
            }
            Occurrence::ViewStarted { product } => {
                for &minutes in &self.view_delays {
                    d.timers.push(Timer {
                        due: shift(now, Duration::minutes(i64::from(minutes))),
                        key: TimerKey::Viewing {
                            product: product.clone(),
                            minutes,
                        },
                        then: Occurrence::ProductViewed {
                            product: product.clone(),
                            started_at: now,
                            minutes,
                        },
                    });
                }
                return d;
            }
            Occurrence::ViewEnded { product } => {
                for &minutes in &self.view_delays {
                    d.cancel.push(TimerKey::Viewing {
                        product: product.clone(),
                        minutes,
                    });
                }
                return d;
            }
            _ => {}
        }
        let Some(kind) = occurrence.kind() else {
            return d;
        };
        let Some(candidates) = self.by_kind.get(kind.index()) else {
            return d;
        };
        let mut key: Option<DedupKey> = None;
        let mut starts = Starts::default();
        for &i in candidates {
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            if !rule.trigger().matches(occurrence) {
                continue;
            }
            let key = key.get_or_insert_with(|| occurrence.dedup_key(profile.offset, now));
            let found = self.check(
                rule,
                profile,
                occurrence,
                (history, ledger, &d.issues),
                (key, &mut starts),
                now,
            );
            match found {
                Ok(issue) => d.issues.push(issue),
                Err(guard) => d.held.push(Held {
                    rule: rule.id().clone(),
                    guard,
                }),
            }
        }
        d
    }

    fn check(
        &self,
        rule: &Rule,
        profile: &Profile,
        occurrence: &Occurrence,
        (history, ledger, pending): (&UserHistory, &Ledger, &[Issue]),
        (key, starts): (&DedupKey, &mut Starts),
        now: DateTime<Utc>,
    ) -> Result<Issue, Guard> {
        if let (Occurrence::CartAbandoned { changed_at, .. }, Some(ordered_at)) =
            (occurrence, profile.last_order_at)
        {
            if ordered_at >= *changed_at {
                return Err(Guard::OrderedSince {
                    changed_at: *changed_at,
                    ordered_at,
                });
            }
        }
        rule.audience().admits(profile).map_err(Guard::Audience)?;
        let choice = rule
            .offer()
            .choose(profile.lifecycle)
            .ok_or(Guard::NoChoice {
                lifecycle: profile.lifecycle,
            })?;
        let id = rule.id();
        if let Some(p) = history.iter().find(|p| p.rule.same(id) && p.key == *key) {
            return Err(Guard::Duplicate {
                key: key.clone(),
                at: p.at,
            });
        }
        if let Some(cooldown) = rule.cooldown() {
            let last = history
                .iter()
                .filter(|p| p.rule.same(id))
                .map(|p| p.at)
                .max();
            if let Some(last) = last {
                let until = shift(last, cooldown);
                if now < until {
                    return Err(Guard::Cooldown { last, until });
                }
            }
        }
        let message = rule.message();
        if !rule.transactional() {
            for (ci, cap) in self.policy.caps.iter().enumerate() {
                if !cap.applies_to(message) {
                    continue;
                }
                let start = starts.start(ci, cap.window(), now, profile.offset);
                let counts = |at: DateTime<Utc>, m: Option<Message>, t: bool| {
                    !t && at >= start && cap.applies_to(m)
                };
                let issued = history
                    .iter()
                    .filter(|p| counts(p.at, p.message, p.transactional))
                    .count()
                    + pending
                        .iter()
                        .filter(|p| counts(p.decided_at, p.message, p.transactional))
                        .count();
                let issued = u32::try_from(issued).unwrap_or(u32::MAX);
                if issued >= cap.max() {
                    return Err(Guard::Frequency {
                        issued,
                        max: cap.max(),
                        window: cap.window(),
                        message: cap.message(),
                    });
                }
            }
        }
        if let Some(b) = rule.budget() {
            if let Some(budget) = self.budget(b) {
                let (mut spent, mut issued) = ledger.spent(b);
                // An overflowing sum (beyond any representable budget) never fits.
                let mut overflow = false;
                for p in pending.iter().filter(|p| p.budget.as_ref() == Some(b)) {
                    match spent.checked_add(&p.cost) {
                        Ok(sum) => spent = sum,
                        Err(_) => overflow = true,
                    }
                    issued = issued.saturating_add(1);
                }
                if let Some(max) = budget.count() {
                    if issued >= max {
                        return Err(Guard::BudgetCount {
                            budget: b.clone(),
                            issued,
                            max,
                        });
                    }
                }
                if let Some(max) = budget.money() {
                    let fits = !overflow
                        && spent
                            .checked_add(&choice.cost)
                            .is_ok_and(|after| after <= max);
                    if !fits {
                        return Err(Guard::BudgetMoney {
                            budget: b.clone(),
                            spent,
                            cost: choice.cost,
                            max,
                        });
                    }
                }
            }
        }
        let deliver_at = match (message, self.policy.quiet) {
            (Some(m), Some(q)) if m.interrupts() => q.deliver_at(now, profile.offset),
            _ => now,
        };
        Ok(Issue {
            rule: id.clone(),
            template: choice.template.clone(),
            delivery: rule.delivery(),
            message,
            decided_at: now,
            deliver_at,
            cost: choice.cost,
            budget: rule.budget().cloned(),
            campaign: rule.campaign().cloned(),
            transactional: rule.transactional(),
            key: key.clone(),
        })
    }
}

static EMPTY: UserHistory = UserHistory::new();

/// The start of each cap's window, computed once per decision (for the first eight caps).
#[derive(Default)]
struct Starts([Option<DateTime<Utc>>; 8]);

impl Starts {
    fn start(
        &mut self,
        cap: usize,
        window: Window,
        now: DateTime<Utc>,
        offset: FixedOffset,
    ) -> DateTime<Utc> {
        match self.0.get_mut(cap) {
            Some(Some(t)) => *t,
            Some(slot) => *slot.insert(window.start(now, offset)),
            None => window.start(now, offset),
        }
    }
}

/// Histories and a ledger in memory: the state a replay (or a single-process decider) keeps.
#[derive(Clone, Debug)]
pub struct Memory {
    histories: FastMap<UserId, UserHistory>,
    ledger: Ledger,
}

impl PartialEq for Memory {
    fn eq(&self, other: &Memory) -> bool {
        self.ledger == other.ledger && self.histories == other.histories
    }
}

impl Eq for Memory {}

impl Memory {
    /// Nothing issued yet, budgets in `currency`.
    pub fn new(currency: Currency) -> Memory {
        Memory {
            histories: FastMap::default(),
            ledger: Ledger::new(currency),
        }
    }
    /// A user's history (empty for a user never issued to).
    pub fn history(&self, user: &UserId) -> &UserHistory {
        self.histories.get(user).unwrap_or(&EMPTY)
    }
    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    /// Decides with this state.
    pub fn decide(
        &self,
        engine: &Engine,
        profile: &Profile,
        occurrence: &Occurrence,
        now: DateTime<Utc>,
    ) -> Decision {
        engine.decide(
            profile,
            occurrence,
            self.history(&profile.user),
            &self.ledger,
            now,
        )
    }
    /// Records the issues of a decision for `user`.
    ///
    /// # Errors
    /// As [`Decision::record`].
    pub fn record(&mut self, user: &UserId, decision: &Decision) -> Result<(), IssuingError> {
        if decision.issues.is_empty() {
            return Ok(());
        }
        let history = self.histories.entry(user.clone()).or_default();
        decision.record(history, &mut self.ledger)
    }
    /// Decides and records (looking the user up once).
    ///
    /// # Errors
    /// As [`Decision::record`].
    pub fn apply(
        &mut self,
        engine: &Engine,
        profile: &Profile,
        occurrence: &Occurrence,
        now: DateTime<Utc>,
    ) -> Result<Decision, IssuingError> {
        let Memory { histories, ledger } = self;
        if let Some(history) = histories.get_mut(&profile.user) {
            let d = engine.decide(profile, occurrence, history, ledger, now);
            d.record(history, ledger)?;
            return Ok(d);
        }
        let d = engine.decide(profile, occurrence, &EMPTY, ledger, now);
        if !d.issues.is_empty() {
            let mut history = UserHistory::new();
            let recorded = d.record(&mut history, ledger);
            histories.insert(profile.user.clone(), history);
            recorded?;
        }
        Ok(d)
    }
}
