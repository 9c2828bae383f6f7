//! Dry runs: replay a stream of events over a period, before a rule is switched on, and see
//! what would have been issued, to whom, at what expected cost, and how often each guard held
//! back.
//!
//! The replay keeps the state a live decider would ([`Memory`]) and the timers of delayed
//! triggers: a timer comes due in the replay at its instant, before any event at the same or
//! a later instant, and fires when its due instant is inside the period. Scheduling a timer
//! again under the same user and key replaces it, as the live scheduler must. Events outside
//! `[from, until)` are skipped; the stream must be in time order.
//!
//! ```
//! use std::collections::HashMap;
//! use chrono::{Duration, FixedOffset, TimeZone, Utc};
//! use coupons::id::{TemplateId, UserId};
//! use coupons::issuing::*;
//! use coupons::money::{Currency, Money};
//!
//! let cny = Currency::CNY;
//! let rule = RuleSpec::new(RuleId::new("cart-rescue")?, Trigger::cart_abandoned(),
//!     Offer::template(TemplateId::new("cart-5")?, Money::from_minor(250, cny))).build()?;
//! let engine = Engine::new(Policy::new(cny), vec![rule])?;
//! let alice = UserId::new("alice")?;
//! let profiles = HashMap::from([(alice.clone(), Profile::new(alice.clone(), FixedOffset::east_opt(0).unwrap()))]);
//! let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
//! let changed = |at| Event { at, user: alice.clone(),
//!     occurrence: Occurrence::CartChanged { cart: CartId::new("c1").unwrap() } };
//! // Changed at 9:00 and 9:20: abandoned once, at 9:50.
//! let events = [changed(t0), changed(t0 + Duration::minutes(20))];
//! let report = DryRun::new(&engine, t0, t0 + Duration::days(1))?.run(&events, &profiles)?;
//! assert_eq!(report.issued.len(), 1);
//! assert_eq!(report.issued[0].at, t0 + Duration::minutes(50));
//! assert_eq!(report.cost, Money::from_minor(250, cny));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::engine::{Decision, Engine, GuardKind, Memory, Profile};
use super::rule::Delivery;
use super::trigger::{Event, Occurrence, TimerKey};
use super::{IssuingError, RuleId};
use crate::id::{TemplateId, UserId};
use crate::money::Money;

/// A dry run could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DryRunError {
    /// The period is empty.
    #[error("dry run: the period from {from} until {until} is empty")]
    Period {
        /// Its start.
        from: DateTime<Utc>,
        /// Its end.
        until: DateTime<Utc>,
    },
    /// An event earlier than the one before it.
    #[error("dry run: event {index} at {at} comes before the previous one at {previous}")]
    Unsorted {
        /// Its position in the stream.
        index: usize,
        /// Its instant.
        at: DateTime<Utc>,
        /// The previous event's.
        previous: DateTime<Utc>,
    },
    /// Recording a decision failed.
    #[error(transparent)]
    Issuing(#[from] IssuingError),
}

/// One coupon the dry run would have issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WouldIssue {
    /// When it would have been decided.
    pub at: DateTime<Utc>,
    /// To whom.
    pub user: UserId,
    /// By which rule.
    pub rule: RuleId,
    /// From which template.
    pub template: TemplateId,
    /// Auto-claim or notify-to-claim.
    pub delivery: Delivery,
    /// Its expected cost.
    pub cost: Money,
    /// When its message would have gone out.
    pub deliver_at: DateTime<Utc>,
}

/// What one rule would have done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTally {
    /// Coupons issued.
    pub issued: u64,
    /// Their expected cost.
    pub cost: Money,
    /// Messages deferred by quiet hours.
    pub deferred: u64,
    /// How often each guard held it back.
    pub held: BTreeMap<GuardKind, u64>,
}

/// What a dry run found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Events replayed (inside the period).
    pub events: u64,
    /// Timers that came due and fired.
    pub timers: u64,
    /// Events of users without a profile, skipped.
    pub unknown_users: u64,
    /// Every issue, in order.
    pub issued: Vec<WouldIssue>,
    /// Distinct users issued to.
    pub users: usize,
    /// The total expected cost.
    pub cost: Money,
    /// Per rule (every rule of the engine, even those that never matched).
    pub rules: BTreeMap<RuleId, RuleTally>,
    /// How often each guard held a rule back, over all rules.
    pub held: BTreeMap<GuardKind, u64>,
}

/// A replay of a stream over `[from, until)`.
#[derive(Clone, Copy, Debug)]
pub struct DryRun<'a> {
    engine: &'a Engine,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl<'a> DryRun<'a> {
    /// A dry run of `engine` over `[from, until)`.
    ///
    /// # Errors
    /// [`DryRunError::Period`] when `until` is not after `from`.
    pub fn new(
        engine: &'a Engine,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<DryRun<'a>, DryRunError> {
        if until <= from {
            return Err(DryRunError::Period { from, until });
        }
        Ok(DryRun {
            engine,
            from,
            until,
        })
    }

    /// Replays `events` (in time order) from a blank state, each user's profile taken from
    /// `profiles`.
    ///
    /// # Errors
    /// [`DryRunError::Unsorted`]; [`DryRunError::Issuing`] when a budget's sum overflows.
    pub fn run(
        &self,
        events: &[Event],
        profiles: &HashMap<UserId, Profile>,
    ) -> Result<Report, DryRunError> {
        let mut memory = Memory::new(self.engine.policy().currency);
        self.run_with(&mut memory, events, profiles)
    }

    /// Replays `events` from the state in `memory`, which is left as the replay ends.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_with(
        &self,
        memory: &mut Memory,
        events: &[Event],
        profiles: &HashMap<UserId, Profile>,
    ) -> Result<Report, DryRunError> {
        let currency = self.engine.policy().currency;
        let mut report = Report {
            events: 0,
            timers: 0,
            unknown_users: 0,
            issued: Vec::new(),
            users: 0,
            cost: Money::zero(currency),
            rules: self
                .engine
                .rules()
                .iter()
                .map(|r| {
                    (
                        r.id().clone(),
                        RuleTally {
                            issued: 0,
                            cost: Money::zero(currency),
                            deferred: 0,
                            held: BTreeMap::new(),
                        },
                    )
                })
                .collect(),
            held: BTreeMap::new(),
        };
        let mut timers = Timers::default();
        let mut users = BTreeSet::new();
        let mut previous: Option<DateTime<Utc>> = None;
        for (index, e) in events.iter().enumerate() {
            if let Some(p) = previous {
                if e.at < p {
                    return Err(DryRunError::Unsorted {
                        index,
                        at: e.at,
                        previous: p,
                    });
                }
            }
            previous = Some(e.at);
            while let Some((due, user, occurrence)) = timers.pop_due(e.at, self.until) {
                report.timers += 1;
                self.step(
                    memory,
                    &mut timers,
                    &mut report,
                    &mut users,
                    profiles,
                    &user,
                    &occurrence,
                    due,
                )?;
            }
            if e.at < self.from || e.at >= self.until {
                continue;
            }
            report.events += 1;
            self.step(
                memory,
                &mut timers,
                &mut report,
                &mut users,
                profiles,
                &e.user,
                &e.occurrence,
                e.at,
            )?;
        }
        while let Some((due, user, occurrence)) = timers.pop_before(self.until) {
            report.timers += 1;
            self.step(
                memory,
                &mut timers,
                &mut report,
                &mut users,
                profiles,
                &user,
                &occurrence,
                due,
            )?;
        }
        report.users = users.len();
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        memory: &mut Memory,
        timers: &mut Timers,
        report: &mut Report,
        users: &mut BTreeSet<UserId>,
        profiles: &HashMap<UserId, Profile>,
        user: &UserId,
        occurrence: &Occurrence,
        at: DateTime<Utc>,
    ) -> Result<(), DryRunError> {
        let Some(profile) = profiles.get(user) else {
            report.unknown_users += 1;
            return Ok(());
        };
        let d = memory.apply(self.engine, profile, occurrence, at)?;
        self.tally(report, users, user, &d)?;
        for k in &d.cancel {
            timers.cancel(user, k);
        }
        for t in d.timers {
            timers.schedule(user.clone(), t.key, t.due, t.then);
        }
        Ok(())
    }

    fn tally(
        &self,
        report: &mut Report,
        users: &mut BTreeSet<UserId>,
        user: &UserId,
        d: &Decision,
    ) -> Result<(), DryRunError> {
        let add = |a: Money, b: Money| {
            a.checked_add(&b).map_err(|source| IssuingError::Money {
                field: "dry_run.cost",
                source,
            })
        };
        for i in &d.issues {
            report.cost = add(report.cost, i.cost)?;
            if let Some(t) = report.rules.get_mut(&i.rule) {
                t.issued += 1;
                t.cost = add(t.cost, i.cost)?;
                t.deferred += u64::from(i.deferred());
            }
            users.insert(user.clone());
            report.issued.push(WouldIssue {
                at: d.at,
                user: user.clone(),
                rule: i.rule.clone(),
                template: i.template.clone(),
                delivery: i.delivery,
                cost: i.cost,
                deliver_at: i.deliver_at,
            });
        }
        for h in &d.held {
            let k = h.guard.kind();
            *report.held.entry(k).or_default() += 1;
            if let Some(t) = report.rules.get_mut(&h.rule) {
                *t.held.entry(k).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// Pending timers: by due instant (then scheduling order), and by user and key to replace.
#[derive(Default)]
struct Timers {
    seq: u64,
    queue: BTreeMap<(DateTime<Utc>, u64), (UserId, TimerKey, Occurrence)>,
    by_key: HashMap<(UserId, TimerKey), (DateTime<Utc>, u64)>,
}

impl Timers {
    fn schedule(&mut self, user: UserId, key: TimerKey, due: DateTime<Utc>, then: Occurrence) {
        self.cancel(&user, &key);
        self.seq += 1;
        self.queue
            .insert((due, self.seq), (user.clone(), key.clone(), then));
        self.by_key.insert((user, key), (due, self.seq));
    }

    fn cancel(&mut self, user: &UserId, key: &TimerKey) {
        if let Some(slot) = self.by_key.remove(&(user.clone(), key.clone())) {
            self.queue.remove(&slot);
        }
    }

    fn pop_if(
        &mut self,
        ok: impl Fn(DateTime<Utc>) -> bool,
    ) -> Option<(DateTime<Utc>, UserId, Occurrence)> {
        let (&slot, _) = self.queue.first_key_value()?;
        if !ok(slot.0) {
            return None;
        }
        let (user, key, then) = self.queue.remove(&slot)?;
        self.by_key.remove(&(user.clone(), key));
        Some((slot.0, user, then))
    }

    /// The earliest timer due at or before `t` and before `until`.
    fn pop_due(
        &mut self,
        t: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, UserId, Occurrence)> {
        self.pop_if(|due| due <= t && due < until)
    }

    /// The earliest timer due strictly before `t`.
    fn pop_before(&mut self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, UserId, Occurrence)> {
        self.pop_if(|due| due < t)
    }
}
