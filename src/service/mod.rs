//! The thin shell: one call per step a web handler makes, over any [`Repository`].
//!
//! Each call reads what it needs, decides with the pure [`lifecycle`](crate::lifecycle) and
//! [`checkout`](crate::checkout) functions, and writes the decision as **one**
//! [`Batch`] through [`Repository::commit`]: the records with their expected versions, the
//! counters with their limits, and the operation's receipt. When a condition fails because
//! another request got there first, the call re-reads and decides again, a bounded number of
//! times ([`ServiceConfig::max_attempts`]); a limit that is really reached becomes a typed
//! [`LifecycleError`].
//!
//! Every call takes `now`; the service never reads the clock. No call panics: every failure
//! is a [`ServiceError`].
//!
//! ## Idempotency
//! Every operation on coupons and orders carries an [`IdempotencyKey`]. Its receipt is inserted
//! in the same batch as its effect, with a fingerprint of the request (who acted, the cart,
//! the units refunded…), so repeating the request finds the receipt, changes nothing and
//! returns the first outcome (with `replayed: true`), read from the record itself — a retried
//! lock answers with the order as it was locked, never re-priced. The same key with a
//! different request is refused with [`LifecycleError::KeyReused`]. A retry whose order moved
//! on since (released, refunded) answers with the order's real state.
//!
//! ## Orders
//! [`quote_and_lock`](Service::quote_and_lock) prices the cart, holds the chosen coupons and
//! codes for [`ServiceConfig::hold`] (15 minutes by default) and stores an
//! [`Order`] record with the quote as locked. Then exactly one of
//! [`pay`](Service::pay) (redeems them) or [`cancel`](Service::cancel) /
//! [`sweep`](Service::sweep) once the hold ran out (gives them back, and the uses they
//! counted). A paid order may be [`complete`](Service::complete)d and
//! [`refund`](Service::refund)ed in part or in whole, any number of times until nothing is
//! left; the amounts are exact to the minor unit. A coupon is settled by the refund that
//! covers the last unit it discounted, and its template's
//! [`RefundPolicy`](crate::rule::RefundPolicy) says whether it comes back. Promo-code uses are
//! given back when an unpaid order is released, not on refund.
//!
//! Every step names its acting party ([`Actor`](crate::lifecycle::Actor)): a buyer acts only
//! on their own orders and never confirms a payment; the table is in
//! [`lifecycle::Actor::permits`](crate::lifecycle::Actor::permits). A step whose `now` is
//! earlier than the record's last change by more than [`ServiceConfig::clock_skew`] is
//! refused.
//!
//! ## Stock and uses given back
//! A released order gives back its coupons (Available, or Expired past their validity), their
//! per-user uses and its promo-code uses. A refund that returns a coupon gives back its use; a
//! voided coupon keeps it. Stock (coupons issued) is never given back: a returned coupon is the
//! same coupon, and a voided one stays issued.
//!
//! ## How an operation runs
//! Each operation reads, calls a pure plan (what to write and what each write's conflict
//! means), and hands it to one runner that commits, re-reads and re-plans on a conflict, and
//! answers a replay from its receipt. Reads that depend on each other, and every replay, are
//! pure read machines: they say what to read next, and one `fetch` reads it from the store.
//! The plans and machines live outside the service (the crate-private `plan` module, one file
//! per operation): an async twin of [`Repository`] reuses every one unchanged and rewrites
//! only `fetch`, the loop that drives a machine and the runner's loop.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use coupons::cart::{Buyer, Cart, CartLine};
//! use coupons::id::*;
//! use coupons::lifecycle::{Actor, ClaimMode, ClaimRequest, CouponState};
//! use coupons::money::{Currency, Money};
//! use coupons::repository::MemoryStore;
//! use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
//! use coupons::service::{LockRequest, Service};
//!
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
//! let cny = Currency::CNY;
//! let service = Service::new(MemoryStore::new());
//! let t = TemplateId::new("ten-off")?;
//! service.create_template(
//!     TemplateSpec::new(t.clone(), "10 off", cny,
//!         Benefit::instant(Money::from_minor(1000, cny))?,
//!         Validity::relative(Span::Days(7), None)?).build()?,
//!     now,
//! )?;
//! for step in [Service::submit_template, Service::approve_template, Service::activate_template] {
//!     step(&service, &t, now)?;
//! }
//! let alice = UserId::new("alice")?;
//! let claim = ClaimRequest::new(t.clone(), alice.clone(), Channel::new("app")?,
//!     ClaimMode::Click, IdempotencyKey::new("claim-1")?);
//! let coupon = service.claim(&claim, now)?.coupon;
//! assert!(service.claim(&claim, now)?.replayed); // same key: same coupon, nothing new
//!
//! let cart = Cart::new(cny, vec![CartLine::new(Sku::new("tea")?, Money::from_minor(5000, cny), 1)],
//!     Money::zero(cny))?;
//! let buyer = Buyer::new(alice, Channel::new("app")?);
//! let order = OrderId::new("o-1")?;
//! let key = IdempotencyKey::new("lock-o-1")?;
//! let locked = service.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &key), now)?;
//! assert_eq!(locked.quote.total_after, Money::from_minor(4000, cny));
//! service.pay(&order, &Actor::System, &IdempotencyKey::new("pay-o-1")?, now + Duration::minutes(2))?;
//! let used = coupons::repository::Repository::coupon(service.repository(), &coupon.id)?.unwrap();
//! assert!(matches!(used.value.state, CouponState::Used { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod codes;
mod config;
mod error;
mod orders;
mod runner;

pub use crate::plan::claim::Claimed;
pub use crate::plan::lock::{LockRequest, LockedOrder, Wallet};
pub use crate::plan::order::{Refunded, Settlement, Swept};
pub use config::{ConfigError, ServiceConfig};
pub use error::{ErrorKind, ServiceError};

use std::fmt::Display;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::attributes::Attributes;
use crate::cart::{Buyer, Cart};
use crate::checkout::{OfferId, PromotionIndex, Quote};
use crate::id::{CampaignId, Channel, CouponId, TemplateId, UserId};
use crate::lifecycle::{Campaign, ClaimRequest, Coupon, TemplateRecord};
use crate::plan::claim::{claim_replay, issued, plan_claim};
use crate::plan::lock::{GatherRead, Gathered, PromoCache, lock_replay, plan_lock, price, wallet};
use crate::plan::read::{Got, Next, Read, Reads, no_replay};
use crate::plan::template::{
    Move, existing_read, plan_create_campaign, plan_create_template, plan_offer, plan_switch,
    plan_transition,
};
use crate::plan::{OP_CLAIM, OP_LOCK, Step, op_key};
use crate::repository::{Batch, Commit, Receipt, ReceiptKey, Repository, Versioned};
use crate::rule::{PromoCode, Template};
use crate::time;
use runner::Ran;
#[cfg(doc)]
use {
    crate::events::EventKind,
    crate::id::IdempotencyKey,
    crate::lifecycle::{LifecycleError, Order},
};

/// Public template transitions, each one [`Move`] through `Service::transition`.
macro_rules! template_moves {
    ($($(#[$doc:meta])* $name:ident => $step:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self, id: &TemplateId, now: DateTime<Utc>) -> Res<Arc<TemplateRecord>, R> {
            self.transition(id, Move::$step, now)
        }
    )*};
}

/// The coupon engine over a [`Repository`]: one call per step of a web handler. See the
/// [module docs](self).
#[derive(Debug)]
pub struct Service<R> {
    repo: R,
    config: ServiceConfig,
    promotions: RwLock<Option<PromoCache>>,
}

type Res<T, R> = Result<T, ServiceError<<R as Repository>::Error>>;

/// A store's answer, its failure as the service's.
fn store<T, E>(read: Result<T, E>) -> Result<T, ServiceError<E>> {
    read.map_err(ServiceError::Repository)
}

/// A record read by id: [`ServiceError::NotFound`] when there is none.
fn found<T, E>(
    read: Result<Option<T>, E>,
    what: &'static str,
    id: &impl Display,
) -> Result<T, ServiceError<E>> {
    store(read)?.ok_or_else(|| ServiceError::NotFound {
        what,
        id: id.to_string(),
    })
}

impl<R: Repository> Service<R> {
    /// A service with the default [`ServiceConfig`].
    pub fn new(repo: R) -> Service<R> {
        Service {
            repo,
            config: ServiceConfig::default(),
            promotions: RwLock::new(None),
        }
    }

    /// A service with its settings, checked by [`ServiceConfig::validate`].
    ///
    /// # Errors
    /// The settings' first [`ConfigError`].
    pub fn with_config(repo: R, config: ServiceConfig) -> Result<Service<R>, ConfigError> {
        config.validate()?;
        Ok(Service {
            config,
            ..Service::new(repo)
        })
    }

    /// The store.
    pub fn repository(&self) -> &R {
        &self.repo
    }

    /// The settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn attempts(&self) -> u32 {
        self.config.max_attempts.max(1)
    }

    fn contention<T>(&self, operation: &'static str) -> Res<T, R> {
        Err(ServiceError::Contention {
            operation,
            attempts: self.attempts(),
        })
    }

    fn commit(&self, batch: &Batch) -> Res<Commit, R> {
        store(self.repo.commit(batch))
    }

    fn receipt(&self, key: &ReceiptKey) -> Res<Option<Receipt>, R> {
        store(self.repo.receipt(key))
    }

    fn template_record(&self, id: &TemplateId) -> Res<Versioned<Arc<TemplateRecord>>, R> {
        found(self.repo.template(id), "template", id)
    }

    fn coupon_record(&self, id: &CouponId) -> Res<Versioned<Coupon>, R> {
        found(self.repo.coupon(id), "coupon", id)
    }

    fn campaign_record(&self, id: &CampaignId) -> Res<Versioned<Campaign>, R> {
        found(self.repo.campaign(id), "campaign", id)
    }

    /// One read a pure read machine asked for, against the store.
    fn fetch(&self, read: Read) -> Res<Got, R> {
        Ok(match read {
            Read::Order(id) => Got::Order(Box::new(found(self.repo.order(&id), "order", &id)?)),
            Read::Coupons(ids) => {
                let read = store(self.repo.coupons(&ids))?.into_iter().zip(&ids);
                let found = read.map(|(c, id)| found(Ok(c), "coupon", id));
                Got::Coupons(found.collect::<Res<_, R>>()?)
            }
            Read::Template(id) => Got::Template(self.template_record(&id)?),
            Read::TemplateIfAny(id) => {
                Got::TemplateIfAny(id.clone(), store(self.repo.template(&id))?)
            }
            Read::LiveCoupons(user) => Got::Coupons(store(self.repo.live_coupons(&user))?),
            Read::Receipt(key) => Got::Receipt(key.clone(), self.receipt(&key)?),
            Read::Counter(key) => Got::Count(key.clone(), store(self.repo.counter(&key))?),
        })
    }

    /// Runs a pure read machine to its end, one [`fetch`](Self::fetch) a read.
    fn drive<M: Reads>(&self, mut machine: M) -> Res<M::Out, R> {
        let mut got = None;
        loop {
            match machine.next(got)? {
                Next::Read(read) => got = Some(self.fetch(read)?),
                Next::Ready(out) => return Ok(out),
            }
        }
    }

    // ---------------------------------------------------------------- templates

    /// Stores a new template as a Draft and, for a promo-code template, reserves its code
    /// (codes are unique across templates). Creating the same template again returns the
    /// stored record.
    ///
    /// # Errors
    /// [`LifecycleError::TemplateExists`] when the id holds other rules;
    /// [`LifecycleError::CodeTaken`] when another template owns the code; the store's failure.
    pub fn create_template(
        &self,
        template: Template,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        let template = Arc::new(template);
        self.run("create template", no_replay, |attempt| {
            let existing = attempt.retried(|| self.drive(existing_read(&template)))?;
            Ok(plan_create_template(&template, existing, now)?)
        })
    }

    /// One template transition, table-driven ([`Move`]).
    fn transition(
        &self,
        id: &TemplateId,
        step: Move<'_>,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.run(step.operation(), no_replay, |_| {
            Ok(plan_transition(&self.template_record(id)?, step, now)?)
        })
    }

    template_moves! {
        /// Draft → PendingApproval. Idempotent: a template already pending is returned as is.
        ///
        /// # Errors
        /// [`ServiceError::NotFound`]; [`LifecycleError::IllegalTemplateTransition`] from any other
        /// status; [`ServiceError::Contention`]; the store's failure.
        submit_template => Submit;

        /// PendingApproval → Approved (finance approval). Idempotent.
        ///
        /// # Errors
        /// As [`submit_template`](Self::submit_template).
        approve_template => Approve;

        /// Approved → Active: the template starts issuing. Idempotent.
        ///
        /// # Errors
        /// As [`submit_template`](Self::submit_template).
        activate_template => Activate;

        /// Active → Paused: issuing stops until resumed; issued coupons stay usable. Idempotent.
        ///
        /// # Errors
        /// As [`submit_template`](Self::submit_template).
        pause_template => Pause;

        /// Paused → Active. Idempotent.
        ///
        /// # Errors
        /// As [`submit_template`](Self::submit_template).
        resume_template => Resume;

        /// Approved, Active or Paused → Retired: issuing stops for good; issued coupons stay
        /// usable until their own validity ends. Idempotent.
        ///
        /// # Errors
        /// As [`submit_template`](Self::submit_template).
        retire_template => Retire;
    }

    /// PendingApproval → Rejected with a reason. Idempotent for the same reason.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn reject_template(
        &self,
        id: &TemplateId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        self.transition(id, Move::Reject(reason), now)
    }

    // ---------------------------------------------------------------- campaigns

    /// Stores a new campaign (checked as by [`Campaign::validate`]; every offered template must
    /// exist). Creating the same campaign again returns it.
    ///
    /// # Errors
    /// [`LifecycleError::InvalidCampaign`]; [`ServiceError::NotFound`] for an offered template
    /// that does not exist; [`LifecycleError::CampaignExists`] when the id holds another
    /// campaign; the store's failure.
    pub fn create_campaign(&self, campaign: Campaign, now: DateTime<Utc>) -> Res<Campaign, R> {
        let now = time::check("now", now)?;
        campaign.validate()?;
        for t in &campaign.templates {
            self.template_record(t)?;
        }
        self.run("create campaign", no_replay, |attempt| {
            let existing = attempt.retried(|| store(self.repo.campaign(&campaign.id)))?;
            Ok(plan_create_campaign(&campaign, existing, now)?)
        })
    }

    /// Switches a campaign online or offline (a no-op when already so).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Contention`]; the store's failure.
    pub fn set_campaign_online(
        &self,
        id: &CampaignId,
        online: bool,
        now: DateTime<Utc>,
    ) -> Res<Campaign, R> {
        let now = time::check("now", now)?;
        self.run("switch campaign", no_replay, |_| {
            Ok(plan_switch(&self.campaign_record(id)?, online, now))
        })
    }

    // ---------------------------------------------------------------- claiming

    /// Records that a template was shown to a user who may claim it (a campaign page, a push,
    /// a notify-to-claim message), as an [`EventKind::Offered`] event: the denominator of the
    /// claim rate. It changes no state.
    ///
    /// # Errors
    /// [`ServiceError::Time`]; the store's failure.
    pub fn record_offer(
        &self,
        template: &TemplateId,
        user: &UserId,
        channel: &Channel,
        campaign: Option<&CampaignId>,
        now: DateTime<Utc>,
    ) -> Res<(), R> {
        let none = Attributes::new();
        self.record_offer_with(template, user, channel, campaign, &none, now)
    }

    /// [`Service::record_offer`] with the offer's attributes — those a coupon claimed from it
    /// would carry, e.g. the user's experiment arm — so that offers count per arm.
    ///
    /// # Errors
    /// As [`Service::record_offer`].
    pub fn record_offer_with(
        &self,
        template: &TemplateId,
        user: &UserId,
        channel: &Channel,
        campaign: Option<&CampaignId>,
        attributes: &Attributes,
        now: DateTime<Utc>,
    ) -> Res<(), R> {
        let now = time::check("now", now)?;
        let offer = (template, user, channel, campaign, attributes);
        self.run("record offer", no_replay, |_| Ok(plan_offer(offer, now)))
    }

    /// Issues one coupon into `request.user`'s wallet, recording the channel, the claim mode
    /// and the campaign. Its validity is fixed now. Stock and the per-user claim limit hold
    /// exactly under concurrency: the batch that stores the coupon bumps both counters within
    /// their limits. Repeating the request with the same key returns the first coupon.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for the template or campaign; from [`Coupon::issue`]:
    /// [`LifecycleError::NotClaimable`], [`LifecycleError::NotIssuing`],
    /// [`LifecycleError::CampaignNotOngoing`], [`LifecycleError::NotOffered`],
    /// [`LifecycleError::ClaimedTooLate`]; [`LifecycleError::OutOfStock`];
    /// [`LifecycleError::ClaimLimitReached`]; [`LifecycleError::KeyReused`] when the key was
    /// used for another claim; [`ServiceError::Contention`]; the store's failure.
    pub fn claim(&self, request: &ClaimRequest, now: DateTime<Utc>) -> Res<Claimed, R> {
        let now = time::check("now", now)?;
        let key = op_key(OP_CLAIM, &request.key);
        let guards = &self.config.guards;
        let replay = || claim_replay(request, key.clone());
        let ran = self.run_plan(OP_CLAIM, replay, |attempt| {
            let record = self.template_record(&request.template)?;
            let campaign = request.campaign.as_ref().map(|c| self.campaign_record(c));
            let campaign = campaign.transpose()?.map(|c| c.value);
            let read = (&*record.value, campaign.as_ref());
            let plan = plan_claim(read, request, (guards, attempt.salt), now);
            Ok(Step::Commit(plan?))
        })?;
        match ran {
            Ran::Answered(claimed) => Ok(*claimed),
            Ran::Applied(plan) => issued(plan.batch).map_or_else(|| self.contention(OP_CLAIM), Ok),
        }
    }

    // ---------------------------------------------------------------- checkout

    /// The Active automatic promotions, indexed; rebuilt only when a template changed.
    fn promotions(&self) -> Res<Arc<PromotionIndex>, R> {
        let all = store(self.repo.templates())?;
        let stamp = PromoCache::stamp(&all);
        // A poisoned cache (never, as nothing here panics) is bypassed, not trusted.
        let cache = self.promotions.read().ok();
        if let Some(index) = cache.as_ref().and_then(|c| c.as_ref()?.fresh(&stamp)) {
            return Ok(index);
        }
        drop(cache);
        let fresh = PromoCache::new(stamp, &all);
        let index = Arc::clone(&fresh.index);
        if let Ok(mut cache) = self.promotions.write() {
            *cache = Some(fresh);
        }
        Ok(index)
    }

    /// The buyer's wallet and typed codes as offers, blocked per coupon state and counters.
    fn price(
        &self,
        (cart, buyer): (&Cart, &Buyer),
        codes: &[PromoCode],
        selection: Option<&[OfferId]>,
        now: DateTime<Utc>,
    ) -> Res<(Gathered, Quote), R> {
        let now = time::check("now", now)?;
        let g = self.drive(GatherRead::new(&buyer.user, codes))?;
        let read = (&g, &*self.promotions()?);
        let quote = price((cart, buyer), read, selection, &self.config, now)?;
        Ok((g, quote))
    }

    /// Prices a cart for a buyer: the best combination of the buyer's wallet coupons, the typed
    /// promo codes and the active automatic promotions, with every offer's evaluation. Holds
    /// nothing.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`]; the checkout's errors; the store's failure.
    pub fn quote(
        &self,
        cart: &Cart,
        buyer: &Buyer,
        codes: &[PromoCode],
        now: DateTime<Utc>,
    ) -> Res<Quote, R> {
        Ok(self.price((cart, buyer), codes, None, now)?.1)
    }

    /// The buyer's live coupons for `cart` (see [`Wallet`]): what a checkout page shows before
    /// the buyer picks. Holds nothing.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`]; the checkout's errors; the store's failure.
    pub fn wallet(
        &self,
        cart: &Cart,
        buyer: &Buyer,
        codes: &[PromoCode],
        now: DateTime<Utc>,
    ) -> Res<Wallet, R> {
        let (g, best) = self.price((cart, buyer), codes, None, now)?;
        Ok(wallet(&g, best))
    }

    /// Prices the buyer's own `selection` (wallet coupons, typed codes, promotions) without
    /// holding anything: what a checkout page shows while the buyer ticks coupons. The quote's
    /// evaluations say, for every other offer, whether it can still be added
    /// ([`Evaluation::addable`](crate::checkout::Evaluation::addable)) or why not. For the
    /// wallet view — usable coupons first with the best combination preselected, the rest with
    /// their reasons — call [`quote`](Self::quote).
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`]; the checkout's errors for a selection that cannot be
    /// used together; the store's failure.
    pub fn preview(
        &self,
        cart: &Cart,
        buyer: &Buyer,
        selection: &[OfferId],
        codes: &[PromoCode],
        now: DateTime<Utc>,
    ) -> Res<Quote, R> {
        Ok(self.price((cart, buyer), codes, Some(selection), now)?.1)
    }

    /// Prices the cart (the best combination, or the buyer's `selection`) and holds what it
    /// applies for the order until `now +` [`ServiceConfig::hold`]: each wallet coupon is
    /// Locked and counts a use of its template for the buyer (within
    /// [`per_user_uses`](crate::rule::Limits::per_user_uses)); each promo code counts a use
    /// (within its limits). All in one batch with the receipt; an order locks once.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`]; the checkout's errors for a selection that cannot be
    /// used; [`LifecycleError::OrderAlreadyLocked`] when the order was locked by another
    /// request; [`LifecycleError::UseLimitReached`], [`LifecycleError::CodeExhausted`] and
    /// [`LifecycleError::CodeUserLimitReached`] when concurrent orders keep taking the last
    /// use; [`LifecycleError::KeyReused`]; [`ServiceError::Contention`]; the store's failure.
    pub fn quote_and_lock(
        &self,
        request: &LockRequest<'_>,
        now: DateTime<Utc>,
    ) -> Res<LockedOrder, R> {
        let now = time::check("now", now)?;
        let key = op_key(OP_LOCK, request.key);
        // The coupons the first attempt chose: what a lost race took is reported.
        let mut chosen: Option<Vec<CouponId>> = None;
        self.run(
            OP_LOCK,
            || lock_replay(request, key.clone()),
            |_| {
                let order = (request.cart, request.buyer);
                let (g, quote) = self.price(order, request.codes, request.selection, now)?;
                let config = &self.config;
                Ok(plan_lock(
                    (&g, quote),
                    request,
                    &key,
                    config,
                    &mut chosen,
                    now,
                )?)
            },
        )
    }
}
