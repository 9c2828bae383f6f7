//! Redeeming typed codes: one-time codes without an owner, and shared promo codes.
//!
//! Three kinds of code reach a buyer, all through the [`Service`]:
//!
//! - **Shared promo codes** (`SUMMER-10`): one code of a template with
//!   [`Distribution::PromoCode`], typed by many buyers,
//!   with total and per-user limits, counted when an order locks
//!   ([`LockRequest::codes`](super::LockRequest::codes)).
//! - **One-time codes without an owner**, printed on a card or sent in a batch: a batch made by
//!   [`CodeFormat::generate`](crate::codes::CodeFormat::generate) is registered for a private
//!   template ([`Service::register_codes`]); the first account to redeem one
//!   ([`Service::redeem_code`]) owns it — a coupon of the template in its wallet — exactly once,
//!   however many accounts race for it. The coupon's claim key is derived from the code, so
//!   two redemptions of one code write the same receipt and only one batch can commit.
//! - **Private coupons** bound to one account from the start ([`Service::claim`]).
//!
//! A failed redemption reveals nothing about codes that belong to someone else: a code that
//! does not exist and a code another account redeemed give the same
//! [`LifecycleError::UnknownCode`] after the same two store reads.
//!
//! Failed attempts are rate-limited by [`Action::CodeAttempt`] guards
//! ([`presets::code_attempts`](crate::guard::presets::code_attempts)): each attempt is counted
//! before the code is looked up, and given back when it redeems; once a device's or IP's
//! window holds the limit, attempts are refused with [`LifecycleError::GuardHeld`] and a
//! `refused` event, without any lookup.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coupons::id::*;
//! use coupons::lifecycle::LifecycleError;
//! use coupons::money::{Currency, Money};
//! use coupons::repository::MemoryStore;
//! use coupons::rule::{Benefit, PromoCode, Span, TemplateSpec, Validity};
//! use coupons::service::codes::{RedeemRequest, Redeemed};
//! use coupons::service::{Service, ServiceError};
//!
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
//! let service = Service::new(MemoryStore::new());
//! let t = TemplateId::new("gift-card-20")?;
//! service.create_template(
//!     TemplateSpec::new(t.clone(), "20 off", Currency::CNY,
//!         Benefit::instant(Money::from_minor(2000, Currency::CNY))?,
//!         Validity::relative(Span::Days(30), None)?).build()?,
//!     now,
//! )?;
//! for step in [Service::submit_template, Service::approve_template, Service::activate_template] {
//!     step(&service, &t, now)?;
//! }
//! let code = PromoCode::new("7K2Q-9M4X-2ABC")?;
//! service.register_codes(&t, [code.clone()], now)?;
//!
//! let app = Channel::new("app")?;
//! let alice = RedeemRequest::new(code.clone(), UserId::new("alice")?, app.clone());
//! let Redeemed::Coupon(claimed) = service.redeem_code(&alice, now)? else { unreachable!() };
//! assert_eq!(claimed.coupon.owner.as_str(), "alice");
//! // Bob gets the same answer as for a code that never existed.
//! let bob = RedeemRequest::new(code, UserId::new("bob")?, app);
//! assert!(matches!(
//!     service.redeem_code(&bob, now),
//!     Err(ServiceError::Lifecycle(LifecycleError::UnknownCode { .. }))
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Utc};

use super::{Res, Service, ServiceError};
use crate::id::TemplateId;
use crate::plan::Step;
pub use crate::plan::claim::{CODE_ENTRY, RedeemRequest, Redeemed, Registered};
use crate::plan::claim::{
    FreeCodes, attempt_counts, code_claim, give_back, plan_attempt, plan_redeem, plan_register,
};
use crate::plan::read::{CodeRead, Looked, no_replay};
use crate::plan::template::registrable;
use crate::repository::Repository;
use crate::rule::PromoCode;
use crate::time;
#[cfg(doc)]
use {crate::guard::Action, crate::lifecycle::LifecycleError, crate::rule::Distribution};

/// One-time codes registered per batch written to the store.
const REGISTER_CHUNK: usize = 1_000;

impl<R: Repository> Service<R> {
    /// Registers one-time codes for a private template: each code, once redeemed, becomes a
    /// coupon of `template` in the wallet of the first account that redeems it. Codes share
    /// the promo codes' namespace: a code is registered once, for one template. Registering
    /// the same codes again for the same template changes nothing (they are counted in
    /// [`Registered::already`]). Codes are written in batches of a thousand; a batch is
    /// all or nothing.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for the template; [`LifecycleError::NotClaimable`] for a
    /// template whose coupons do not go into wallets; [`LifecycleError::CodeTaken`] when a
    /// code belongs to another template or is a shared promo code (the codes before its
    /// batch are registered); [`ServiceError::Contention`]; the store's failure.
    pub fn register_codes(
        &self,
        template: &TemplateId,
        codes: impl IntoIterator<Item = PromoCode>,
        now: DateTime<Utc>,
    ) -> Res<Registered, R> {
        let _now = time::check("now", now)?;
        registrable(&self.template_record(template)?.value.template)?;
        let mut out = Registered::default();
        let mut codes = codes.into_iter().peekable();
        while codes.peek().is_some() {
            let mut chunk: Vec<_> = codes.by_ref().take(REGISTER_CHUNK).collect();
            chunk.sort();
            chunk.dedup();
            let added = self.run("register codes", no_replay, |attempt| {
                if attempt.number > 0 {
                    // Some codes are taken: keep those free, count those already ours.
                    let read = FreeCodes::new(template, std::mem::take(&mut chunk));
                    let (free, already) = self.drive(read)?;
                    (chunk, out.already) = (free, out.already + already);
                }
                Ok(plan_register(template, &chunk))
            })?;
            out.added += added;
        }
        Ok(out)
    }

    /// Redeems a typed code for `request.user`.
    ///
    /// First the [`Action::CodeAttempt`] guards: each counts this attempt (all or nothing) and
    /// refuses it when its window already holds the limit — before the code is looked up. An
    /// attempt that redeems, replays or finds a shared promo code is given back; one that
    /// fails stays counted.
    ///
    /// Then the code: a registered one-time code nobody redeemed yet becomes a coupon of its
    /// template in the account's wallet, through the same checks, counters and claim guards
    /// as [`Service::claim`] (stock, per-user claims, [`Action::Claim`] guards), exactly
    /// once under concurrency; the same account redeeming it again gets the same coupon
    /// (`replayed`). A shared promo code is returned as [`Redeemed::PromoCode`], for the
    /// checkout.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`] when the code does not exist **or** belongs to another
    /// account (the same error after the same reads); [`LifecycleError::GuardHeld`] when an
    /// attempt or claim guard holds (and a `refused` event, carrying the template
    /// [`CODE_ENTRY`] for attempt guards); the claim's errors
    /// ([`LifecycleError::NotIssuing`], [`LifecycleError::OutOfStock`],
    /// [`LifecycleError::ClaimLimitReached`]…); [`ServiceError::Guard`] for a guard that
    /// requires context the request lacks; [`ServiceError::Contention`]; the store's failure.
    pub fn redeem_code(&self, request: &RedeemRequest, now: DateTime<Utc>) -> Res<Redeemed, R> {
        let now = time::check("now", now)?;
        let guards = &self.config.guards;
        let attempts = attempt_counts(guards, request, now)?;
        self.run("redeem code", no_replay, |_| {
            Ok(plan_attempt(request, &attempts, now))
        })?;
        let outcome = self.run("redeem code", no_replay, |attempt| {
            let (template, record) = match self.drive(CodeRead::new(request))? {
                Looked::Answer(redeemed) => return Ok(Step::Done(redeemed)),
                Looked::Free(template, record) => (template, record),
            };
            let claim = code_claim(template, request);
            let plan = plan_redeem(&record, &claim, &attempts, guards, attempt.salt, now);
            Ok(Step::Commit(plan?))
        });
        let ended = outcome.as_ref().map_err(ServiceError::lifecycle);
        if let Some(batch) = give_back(&attempts, ended) {
            // On its own; a failure only leaves the attempt counted.
            let _ignored = self.repo.commit(&batch);
        }
        outcome
    }
}
