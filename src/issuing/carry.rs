//! Carrying a decision out through the lifecycle [`Service`]: one claim per issue.
//!
//! Each [`Issue`] becomes a [`ClaimRequest`] for its template, through the channel
//! `auto:<rule id>`, in the rule's campaign, under an [`IdempotencyKey`] derived from the rule,
//! the user and the issue's [`DedupKey`](super::DedupKey) — the identity of the occurrence —
//! so carrying the same decision again, or replaying the stream that produced it, claims
//! nothing new: the service answers from its receipt.
//!
//! - [`Delivery::AutoClaim`]: claimed now ([`ClaimMode::Auto`]); the message goes out at
//!   [`Issue::deliver_at`].
//! - [`Delivery::NotifyToClaim`]: nothing is claimed now. The prepared request
//!   ([`ClaimMode::Click`]) is returned for the app to submit when the user clicks.
//!
//! **Where the caps hold.** The service's claim enforces the template's stock and per-user
//! claim limit exactly under concurrency. Frequency caps, cooldowns, de-duplication and
//! budgets are enforced by the engine, from the history and ledger it is given (see
//! [`Memory`](super::Memory)); the store does not count them yet.
//!
//! ```
//! use chrono::{FixedOffset, TimeZone, Utc};
//! use coupons::id::{TemplateId, UserId};
//! use coupons::issuing::*;
//! use coupons::money::{Currency, Money};
//! use coupons::repository::MemoryStore;
//! use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
//! use coupons::service::Service;
//!
//! let cny = Currency::CNY;
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
//! let service = Service::new(MemoryStore::new());
//! let t = TemplateId::new("welcome-10")?;
//! service.create_template(TemplateSpec::new(t.clone(), "10 off", cny,
//!     Benefit::instant(Money::from_minor(1000, cny))?, Validity::relative(Span::Days(7), None)?)
//!     .build()?, now)?;
//! for step in [Service::submit_template, Service::approve_template, Service::activate_template] {
//!     step(&service, &t, now)?;
//! }
//! let rule = RuleSpec::new(RuleId::new("welcome")?, Trigger::Registration,
//!     Offer::template(t, Money::from_minor(300, cny))).build()?;
//! let engine = Engine::new(Policy::new(cny), vec![rule])?;
//! let alice = Profile::new(UserId::new("alice")?, FixedOffset::east_opt(0).unwrap());
//! let d = engine.decide(&alice, &Occurrence::Registration, &UserHistory::new(), &Ledger::new(cny), now);
//! let first = carry(&service, &alice.user, &d, now);
//! let Ok(Carried::Claimed(c)) = &first[0].result else { panic!() };
//! assert_eq!(c.coupon.channel.as_str(), "auto:welcome");
//! // Carrying the same decision again claims nothing new.
//! let again = carry(&service, &alice.user, &d, now);
//! assert!(matches!(&again[0].result, Ok(Carried::Claimed(c)) if c.replayed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Utc};

use super::engine::{Decision, Issue};
use super::rule::{Delivery, Message};
use super::{IssuingError, RuleId};
use crate::analytics::siphash::siphash24;
use crate::id::{Channel, IdError, IdempotencyKey, UserId};
use crate::lifecycle::{ClaimMode, ClaimRequest};
use crate::repository::Repository;
use crate::service::{Claimed, Service, ServiceError};

const KEY_A: [u8; 16] = *b"coupons-issue-k1";
const KEY_B: [u8; 16] = *b"coupons-issue-k2";

fn put(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// The idempotency key of `issue` to `user`: `auto-` and 32 hexadecimal digits, two
/// SipHash-2-4 values of the rule id, the user id and the issue's de-duplication key (each
/// length-prefixed). The same rule, user and occurrence always give the same key.
pub fn idempotency_key(user: &UserId, issue: &Issue) -> IdempotencyKey {
    let mut msg = Vec::with_capacity(96);
    put(&mut msg, issue.rule.as_str());
    put(&mut msg, user.as_str());
    put(&mut msg, &issue.key.to_string());
    let (a, b) = (siphash24(KEY_A, &msg), siphash24(KEY_B, &msg));
    let text = format!("auto-{a:016x}{b:016x}");
    IdempotencyKey::new(&text).unwrap_or_else(|_| IdempotencyKey::trusted(&text))
}

/// The claim channel of a rule: `auto:<rule id>`.
///
/// # Errors
/// Never for a [`RuleId`] (at most 100 characters); [`IssuingError::Name`] otherwise.
pub fn channel(rule: &RuleId) -> Result<Channel, IssuingError> {
    Channel::new(format!("auto:{rule}")).map_err(|e: IdError| IssuingError::Name {
        field: "rule.id",
        value: e.value,
        reason: e.reason,
    })
}

/// The lifecycle claim for `issue` to `user`: auto-claim or click-to-claim by the rule's
/// delivery, through `auto:<rule id>`, in the rule's campaign, under
/// [`idempotency_key`].
///
/// # Errors
/// As [`channel`].
pub fn claim_request(user: &UserId, issue: &Issue) -> Result<ClaimRequest, IssuingError> {
    let mode = match issue.delivery {
        Delivery::AutoClaim => ClaimMode::Auto,
        Delivery::NotifyToClaim => ClaimMode::Click,
    };
    let req = ClaimRequest::new(
        issue.template.clone(),
        user.clone(),
        channel(&issue.rule)?,
        mode,
        idempotency_key(user, issue),
    );
    Ok(match &issue.campaign {
        Some(c) => req.in_campaign(c.clone()),
        None => req,
    })
}

/// What carrying one issue did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carried {
    /// Claimed into the wallet (or the first claim, replayed).
    Claimed(Claimed),
    /// Notify-to-claim: the message to send and the claim to submit on the user's click.
    Notify {
        /// The claim to submit when the user clicks.
        claim: ClaimRequest,
        /// The message hint.
        message: Option<Message>,
        /// When to send it.
        deliver_at: DateTime<Utc>,
    },
}

/// Why an issue was not carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarryError<E> {
    /// The service refused the claim or failed.
    #[error(transparent)]
    Service(#[from] ServiceError<E>),
    /// The claim could not be built (a rule id that makes no valid channel; not possible for
    /// a [`RuleId`], which is at most 100 characters).
    #[error(transparent)]
    Issuing(#[from] IssuingError),
}

/// One issue carried out, or why not.
#[derive(Debug)]
pub struct CarryOutcome<E> {
    /// The rule of the issue.
    pub rule: RuleId,
    /// What happened.
    pub result: Result<Carried, CarryError<E>>,
}

/// Carries out every issue of `decision` for `user` through `service` at `now`, in order. A
/// refused claim (out of stock, claim limit reached, template paused…) does not stop the
/// others.
///
/// # Panics
/// Never.
pub fn carry<R: Repository>(
    service: &Service<R>,
    user: &UserId,
    decision: &Decision,
    now: DateTime<Utc>,
) -> Vec<CarryOutcome<R::Error>> {
    decision
        .issues
        .iter()
        .map(|issue| {
            let result = match claim_request(user, issue) {
                Err(e) => Err(CarryError::Issuing(e)),
                Ok(claim) => match issue.delivery {
                    Delivery::AutoClaim => service
                        .claim(&claim, now)
                        .map(Carried::Claimed)
                        .map_err(CarryError::Service),
                    Delivery::NotifyToClaim => Ok(Carried::Notify {
                        claim,
                        message: issue.message,
                        deliver_at: issue.deliver_at,
                    }),
                },
            };
            CarryOutcome {
                rule: issue.rule.clone(),
                result,
            }
        })
        .collect()
}
