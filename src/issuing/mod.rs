//! Automated issuing: which coupons to give whom, when, through which message — or why not.
//!
//! A pure decision engine. Given one [`Occurrence`] in a user's life (registration, an abandoned
//! cart, a birthday, a drop in the probability of still being a customer…), the user's
//! [`Profile`] (segments, membership level, new or returning, lifecycle and RFM segment, UTC
//! offset), the user's [`UserHistory`] of earlier issues, the campaign [`Ledger`] and `now`,
//! [`Engine::decide`] returns a [`Decision`]: the coupons to issue ([`Issue`]: the rule that
//! fired, the template, auto-claim or notify-to-claim, the message hint, when to deliver), the
//! rules held back and by which [`Guard`] with its numbers ("2 of 2 push messages in the last
//! 7 days"), and the [`Timer`]s to schedule. The engine keeps no clock, no threads and no
//! state: the same inputs give the same decision, so a stream of events replays exactly
//! ([`DryRun`]).
//!
//! - [`trigger`] — what can happen ([`Occurrence`], [`Trigger`]) and the timers of delayed
//!   triggers (an abandoned cart, a product viewed for minutes).
//! - [`rule`] — an issuing [`Rule`]: trigger → [`Audience`] → [`Offer`] (one template, or a
//!   choice by lifecycle segment) → [`Delivery`] and [`Message`]; validated data with a JSON
//!   form.
//! - [`policy`] — the guards every rule shares: [`FrequencyCap`]s, [`QuietHours`],
//!   [`Budget`]s.
//! - [`engine`] — [`Engine::decide`], the history it reads and [`Memory`], an in-memory state
//!   for replays.
//! - [`dry_run`] — [`DryRun`]: replay a stream over a period and report what would have been
//!   issued, to whom, at what expected cost, and how often each guard held back.
//! - [`carry`](mod@carry) — turn a decision into the lifecycle service's claims, idempotently.
//!
//! ## A decision
//!
//! ```
//! use std::collections::BTreeSet;
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::cart::CustomerKind;
//! use coupons::id::{TemplateId, UserId};
//! use coupons::issuing::*;
//! use coupons::money::{Currency, Money};
//!
//! let cny = Currency::CNY;
//! let welcome = RuleSpec::new(RuleId::new("welcome")?, Trigger::Registration,
//!     Offer::template(TemplateId::new("first-order-10")?, Money::from_minor(1000, cny)))
//!     .message(Message::Push)
//!     .build()?;
//! let policy = Policy::new(cny)
//!     .cap(FrequencyCap::new(2, Window::Rolling { days: 7 }, Some(Message::Push))?)
//!     .quiet(QuietHours::new(22 * 60, 8 * 60)?);
//! let engine = Engine::new(policy, vec![welcome])?;
//!
//! let beijing = FixedOffset::east_opt(8 * 3600).unwrap();
//! let alice = Profile::new(UserId::new("alice")?, beijing).kind(CustomerKind::New);
//! // 23:30 in Beijing: issued now, the push waits for 08:00.
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 15, 30, 0).unwrap();
//! let d = engine.decide(&alice, &Occurrence::Registration, &UserHistory::new(), &Ledger::new(cny), now);
//! assert_eq!(d.issues.len(), 1);
//! assert_eq!(d.issues[0].rule.as_str(), "welcome");
//! assert_eq!(d.issues[0].deliver_at, Utc.with_ymd_and_hms(2026, 6, 2, 0, 0, 0).unwrap());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Where the guards hold
//!
//! Frequency caps, de-duplication, cooldowns and budgets are enforced by the engine from the
//! history and ledger it is given: exact for one decider per user (and one per budget) that
//! records each decision before the next. The store does not count them yet, so two deciders
//! racing on the same user may both issue; [`carry()`] makes each issue idempotent, so a replay
//! never issues twice.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, NaiveDateTime, Utc};

pub mod carry;
pub mod dry_run;
pub mod engine;
pub mod policy;
pub mod rule;
pub mod trigger;

pub use carry::{Carried, CarryError, CarryOutcome, carry, claim_request, idempotency_key};
pub use dry_run::{DryRun, DryRunError, Report, RuleTally, WouldIssue};
pub use engine::{
    Decision, Engine, Guard, GuardKind, Held, Issue, Ledger, Memory, Past, Profile, UserHistory,
};
pub use policy::{Budget, FrequencyCap, Policy, QuietHours, Window};
pub use rule::{Audience, AudienceMiss, Choice, Delivery, Message, Offer, Rule, RuleSpec};
pub use trigger::{DedupKey, Event, Occurrence, Timer, TimerKey, Trigger, TriggerKind};

use crate::money::{Currency, MoneyError};

/// What is wrong with a rule, a policy or an engine's set of rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuingError {
    /// A name (rule, budget, cart, occasion) that is empty, too long, has a control character
    /// or white space at either end.
    #[error("{field}: invalid name {value:?}: {reason}")]
    Name {
        /// Where, e.g. `"rule.id"`.
        field: &'static str,
        /// The text as given (cut to 140 characters).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setting outside its allowed range.
    #[error("{field}: {value} is invalid: {reason}")]
    Invalid {
        /// Where, e.g. `"rule.trigger.after_minutes"`.
        field: &'static str,
        /// The value as text.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// An amount in another currency than the policy's.
    #[error("{field}: {found} is not the policy's currency {expected}")]
    Currency {
        /// Where, e.g. `"rule.offer.cost"`.
        field: &'static str,
        /// The policy's currency.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// Two rules, two budgets or two choices with the same key.
    #[error("{field}: {value} appears twice")]
    Duplicate {
        /// Where, e.g. `"engine.rules"`.
        field: &'static str,
        /// The repeated key.
        value: String,
    },
    /// A rule names a budget the policy does not define.
    #[error("rule {rule}: budget {budget} is not defined by the policy")]
    UnknownBudget {
        /// The rule.
        rule: RuleId,
        /// The budget it names.
        budget: BudgetId,
    },
    /// Money arithmetic overflowed.
    #[error("{field}: {source}")]
    Money {
        /// Where.
        field: &'static str,
        /// The arithmetic error.
        #[source]
        source: MoneyError,
    },
}

/// `t + d`, saturating at the ends of the instants chrono represents (never panics).
pub(crate) fn shift(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d > Duration::zero() {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
}

/// The local date and time of `t` at `offset`; at the very ends of the instants chrono
/// represents, where the local time would fall outside them, the UTC date and time (never
/// panics).
pub(crate) fn local(t: DateTime<Utc>, offset: FixedOffset) -> NaiveDateTime {
    t.naive_utc()
        .checked_add_offset(offset)
        .unwrap_or_else(|| t.naive_utc())
}

pub(crate) fn invalid(
    field: &'static str,
    value: impl fmt::Display,
    reason: &'static str,
) -> IssuingError {
    IssuingError::Invalid {
        field,
        value: value.to_string(),
        reason,
    }
}

/// The longest name accepted, in characters: short enough that `auto:<rule id>` is a valid
/// [`Channel`](crate::id::Channel).
pub const MAX_NAME_LEN: usize = 100;

fn check_name(field: &'static str, s: &str) -> Result<(), IssuingError> {
    match crate::id::text_fault(s, MAX_NAME_LEN, "it is longer than 100 characters") {
        None => Ok(()),
        Some(reason) => Err(IssuingError::Name {
            field,
            value: s.chars().take(140).collect(),
            reason,
        }),
    }
}

macro_rules! name {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        crate::id::text_type!($(#[$doc])* $name, IssuingError);

        impl $name {
            /// Validates and wraps a name.
            ///
            /// # Errors
            /// [`IssuingError::Name`] when the text is empty, longer than
            /// [`MAX_NAME_LEN`] characters, contains a control character, or has leading or
            /// trailing white space.
            pub fn new(s: impl AsRef<str>) -> Result<Self, IssuingError> {
                let s = s.as_ref();
                check_name($field, s)?;
                Ok($name(Arc::from(s)))
            }

            /// Whether two names are equal, comparing the allocation first.
            #[allow(dead_code)]
            pub(crate) fn same(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
            }
        }
    };
}

name!(
    /// An issuing rule's id; its coupons are claimed through the channel `auto:<id>`.
    RuleId,
    "rule.id"
);
name!(
    /// A campaign budget's id.
    BudgetId,
    "budget.id"
);
name!(
    /// A shopping cart, as the shop identifies it.
    CartId,
    "cart"
);
name!(
    /// A holiday or campaign date (`singles-day`, `spring-festival`…), as rules name it.
    Occasion,
    "occasion"
);
