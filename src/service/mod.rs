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
//! answers a replay from its receipt (see the `runner` module's docs: an async twin of
//! [`Repository`] reuses every plan and rewrites only the read and that loop).
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

pub use config::{ConfigError, ServiceConfig};
pub use error::{ErrorKind, ServiceError};
pub use orders::{Refunded, Settlement, Swept};
use runner::{On, Plan, Step};

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};

use crate::cart::{Buyer, Cart};
use crate::checkout::{Blocked, Checkout, Offer, OfferId, PromotionIndex, Quote};
use crate::events::{CouponFacts, Event, EventKind, Refusal};
use crate::guard::{self, Action, Asking, Context};
use crate::id::{CampaignId, CouponId, GuardName, IdempotencyKey, MAX_ID_LEN, OrderId, TemplateId};
use crate::lifecycle::{
    Campaign, ClaimRequest, Coupon, CouponState, LifecycleError, Order, OrderState, TemplateRecord,
    TemplateStatus,
};
use crate::money::Money;
use crate::repository::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, Version, Versioned,
};
use crate::rule::{Distribution, PromoCode, Template};
use crate::time;

/// A coupon claimed (or the first outcome of a repeated claim).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Claimed {
    /// The coupon (as it is now, for a repeated claim).
    pub coupon: Coupon,
    /// Whether this repeated an earlier claim with the same key.
    pub replayed: bool,
}

/// A request to price a cart and hold the chosen offers for an order.
#[derive(Clone, Copy, Debug)]
pub struct LockRequest<'a> {
    /// The order.
    pub order: &'a OrderId,
    /// The cart.
    pub cart: &'a Cart,
    /// The buyer.
    pub buyer: &'a Buyer,
    /// The offers the buyer chose, or `None` for the best combination.
    pub selection: Option<&'a [OfferId]>,
    /// Promo codes the buyer typed.
    pub codes: &'a [PromoCode],
    /// The idempotency key.
    pub key: &'a IdempotencyKey,
    /// Who is asking beyond the account, for guards.
    pub context: Option<&'a Context>,
}

impl<'a> LockRequest<'a> {
    /// The best combination, no codes.
    pub fn new(
        order: &'a OrderId,
        cart: &'a Cart,
        buyer: &'a Buyer,
        key: &'a IdempotencyKey,
    ) -> LockRequest<'a> {
        LockRequest {
            order,
            cart,
            buyer,
            selection: None,
            codes: &[],
            key,
            context: None,
        }
    }

    /// Who is asking (device, IP, payment account), for guards.
    pub fn context(mut self, context: &'a Context) -> LockRequest<'a> {
        self.context = Some(context);
        self
    }

    /// The buyer's own choice of offers.
    pub fn select(mut self, selection: &'a [OfferId]) -> LockRequest<'a> {
        self.selection = Some(selection);
        self
    }

    /// Typed promo codes.
    pub fn codes(mut self, codes: &'a [PromoCode]) -> LockRequest<'a> {
        self.codes = codes;
        self
    }
}

/// An order's price and the offers held for it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LockedOrder {
    /// The order.
    pub order: OrderId,
    /// The price. For a repeated request, re-priced with the same offers as of the lock.
    pub quote: Quote,
    /// The coupons held (their state now, for a repeated request).
    pub coupons: Vec<Coupon>,
    /// The promo codes whose uses were counted.
    pub codes: Vec<PromoCode>,
    /// When the hold runs out, if coupons or promo-code uses are held.
    pub hold_until: Option<DateTime<Utc>>,
    /// The order's state now: `placed`, unless a repeated request finds it paid, released or
    /// refunded since.
    pub state: OrderState,
    /// Coupons the best combination chose at first that a concurrent order of the same buyer
    /// took before this one could lock them: the combination was chosen again without them.
    /// Empty when nothing was lost.
    pub contended: Vec<CouponId>,
    /// Whether this repeated an earlier request with the same key.
    pub replayed: bool,
}

/// A buyer's live coupons for a cart, as a checkout page lists them: the coupons of the best
/// combination first (preselected), then the other usable ones, then the unusable ones with
/// their reasons; and the quote of the best combination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Wallet {
    /// Each live coupon with its evaluation on this cart, in the order above.
    pub coupons: Vec<(Coupon, crate::checkout::Evaluation)>,
    /// The best combination (wallet coupons, typed codes and automatic promotions).
    pub best: Quote,
}

/// Promotions indexed for checkout, with the template versions they were built from.
#[derive(Debug)]
struct PromoCache {
    stamp: Vec<(TemplateId, Version)>,
    index: Arc<PromotionIndex>,
}

/// The wallet and codes of one buyer, as offers.
struct Gathered {
    offers: Vec<Offer>,
    wallet: HashMap<CouponId, Versioned<Coupon>>,
    codes: HashMap<PromoCode, Arc<TemplateRecord>>,
    templates: HashMap<TemplateId, Arc<TemplateRecord>>,
}

const OP_CLAIM: &str = "claim";
const OP_LOCK: &str = "lock";

/// A fingerprint of a lock request: everything that decides its outcome (the order, the
/// buyer, the cart, the selection and the codes), hashed in a fixed text form with FNV-1a, so
/// that every process and version computes the same value for the same request.
fn lock_fingerprint(request: &LockRequest<'_>) -> u64 {
    let mut text = String::new();
    let buyer = request.buyer;
    let _ = write!(
        text,
        "order={}|user={}|channel={}|kind={:?}|member={:?}|",
        request.order,
        buyer.user,
        buyer.channel,
        buyer.kind,
        buyer.membership.as_ref().map(|m| m.as_str())
    );
    for s in &buyer.segments {
        let _ = write!(text, "seg={s}|");
    }
    let cart = request.cart;
    let _ = write!(text, "cur={}|ship={}|", cart.currency(), cart.shipping());
    // Parcels per shop, when the fee is split (a one-fee cart keeps its fingerprint).
    let parcels = cart.shipping_lines();
    let split = parcels.len() > 1 || parcels.iter().any(|l| l.shop.is_some());
    for l in parcels.iter().filter(|_| split) {
        let shop = l.shop.as_ref().map_or("", |s| s.as_str());
        let _ = write!(text, "parcel={}:{}|", shop.len(), shop);
        let _ = write!(text, "fee={}|", l.fee);
    }
    for l in cart.lines() {
        let _ = write!(
            text,
            "line={}:{}:{}:{:?}:{}:",
            l.sku,
            l.unit_price,
            l.quantity,
            l.shop.as_ref().map(|s| s.as_str()),
            l.on_sale
        );
        for c in &l.categories {
            let _ = write!(text, "{c},");
        }
        text.push('|');
    }
    match request.selection {
        None => text.push_str("best|"),
        Some(sel) => {
            for o in sel {
                let _ = write!(text, "sel={o:?}|");
            }
        }
    }
    for c in request.codes {
        let _ = write!(text, "code={c}|");
    }
    fnv(&[&text], 0)
}

/// Appends an event to a batch: it commits with the change or not at all.
fn emit(batch: &mut Batch, at: DateTime<Utc>, kind: EventKind) {
    batch.push(Op::Emit {
        event: Event::new(at, kind),
    });
}

fn op_key(op: &'static str, key: &IdempotencyKey) -> ReceiptKey {
    ReceiptKey::Operation(op, key.clone())
}

/// 64-bit FNV-1a, for coupon ids too long to spell out.
fn fnv(parts: &[&str], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn push_decimal(s: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for &b in buf.get(i..).unwrap_or_default() {
        s.push(char::from(b));
    }
}

/// The id of the coupon a claim issues: `<template>/<claim key>` (plus `.<salt>` after an id
/// collision), or a hash of them when that would be longer than an id may be. A claim's key is
/// unique among claims (its receipt is inserted in the same batch), so the id is too, without
/// reading anything first.
fn coupon_id(template: &TemplateId, key: &IdempotencyKey, salt: u32) -> CouponId {
    let (t, k) = (template.as_str(), key.as_str());
    // The common case, `template/key` short enough to spell out: built on the stack.
    if salt == 0 && t.len() + 1 + k.len() <= MAX_ID_LEN {
        let mut buf = [0u8; MAX_ID_LEN];
        let n = t.len() + 1 + k.len();
        if let Some((head, tail)) = buf
            .get_mut(..n)
            .and_then(|o| o.split_at_mut_checked(t.len()))
        {
            head.copy_from_slice(t.as_bytes());
            if let Some((slash, rest)) = tail.split_first_mut() {
                *slash = b'/';
                rest.copy_from_slice(k.as_bytes());
            }
        }
        if let Some(Ok(s)) = buf.get(..n).map(std::str::from_utf8) {
            return CouponId::trusted(s);
        }
    }
    let mut s = String::with_capacity(t.len() + k.len() + 12);
    s.push_str(t);
    s.push('/');
    s.push_str(k);
    if salt > 0 {
        s.push('.');
        push_decimal(&mut s, u64::from(salt));
    }
    if s.len() > MAX_ID_LEN && s.chars().count() > MAX_ID_LEN {
        s.clear();
        let salt_s = salt.to_string();
        let a = fnv(&[t, k, &salt_s], 0);
        let b = fnv(&[t, k, &salt_s], 0x9e37_79b9_7f4a_7c15);
        let _ = write!(s, "c-{a:016x}{b:016x}");
    }
    CouponId::trusted(&s)
}

fn hold_end(now: DateTime<Utc>, hold: Duration) -> DateTime<Utc> {
    time::add_saturating(now, hold)
}

fn blocked_by_state(state: &CouponState) -> Option<Blocked> {
    match state {
        CouponState::Available => None,
        CouponState::Locked { .. } => Some(Blocked::Locked),
        CouponState::Used { .. } => Some(Blocked::Used),
        CouponState::Expired { .. } => Some(Blocked::Expired),
        CouponState::Voided { .. } => Some(Blocked::Voided),
    }
}

fn code_of(template: &Template) -> Option<(&PromoCode, Option<u64>, Option<u32>)> {
    match template.distribution() {
        Distribution::PromoCode {
            code,
            max_redemptions,
            per_user,
        } => Some((
            code,
            max_redemptions.map(|n| n.get()),
            per_user.map(|n| n.get()),
        )),
        _ => None,
    }
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
            repo,
            config,
            promotions: RwLock::new(None),
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
        self.repo.commit(batch).map_err(ServiceError::Repository)
    }

    fn receipt(&self, key: &ReceiptKey) -> Res<Option<Receipt>, R> {
        self.repo.receipt(key).map_err(ServiceError::Repository)
    }

    fn template_record(&self, id: &TemplateId) -> Res<Versioned<Arc<TemplateRecord>>, R> {
        self.repo
            .template(id)
            .map_err(ServiceError::Repository)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "template",
                id: id.to_string(),
            })
    }

    fn coupon_record(&self, id: &CouponId) -> Res<Versioned<Coupon>, R> {
        self.repo
            .coupon(id)
            .map_err(ServiceError::Repository)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "coupon",
                id: id.to_string(),
            })
    }

    fn counter(&self, key: &CounterKey) -> Res<u64, R> {
        self.repo.counter(key).map_err(ServiceError::Repository)
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
        let id = template.id().clone();
        let code = code_of(&template).map(|(c, _, _)| c.clone());
        let record = Arc::new(TemplateRecord::draft(Arc::new(template)));
        let mut batch = Batch::new();
        batch.push(Op::PutTemplate {
            record: Arc::clone(&record),
            expect: Expect::Absent,
        });
        if let Some(code) = &code {
            batch.push(Op::InsertReceipt {
                key: ReceiptKey::Code(code.clone()),
                receipt: Receipt::Code {
                    template: id.clone(),
                },
            });
        }
        emit(
            &mut batch,
            now,
            EventKind::TemplateChanged {
                template: id.clone(),
                status: record.status.clone(),
            },
        );
        match self.commit(&batch)? {
            Commit::Applied => Ok(record),
            Commit::Conflict { index: 0 } => {
                let existing = self.template_record(&id)?;
                if existing.value.template == record.template {
                    Ok(existing.value)
                } else {
                    Err(LifecycleError::TemplateExists { template: id }.into())
                }
            }
            Commit::Conflict { .. } => {
                let owner = match (
                    code.as_ref(),
                    code.as_ref().map(|c| ReceiptKey::Code(c.clone())),
                ) {
                    (Some(c), Some(k)) => match self.receipt(&k)? {
                        Some(
                            Receipt::Code { template } | Receipt::OneTimeCode { template, .. },
                        ) => (c.clone(), template),
                        _ => return self.contention("create template"),
                    },
                    _ => return self.contention("create template"),
                };
                Err(LifecycleError::CodeTaken {
                    code: owner.0,
                    template: owner.1,
                }
                .into())
            }
        }
    }

    fn transition(
        &self,
        id: &TemplateId,
        operation: &'static str,
        now: DateTime<Utc>,
        done: impl Fn(&TemplateStatus) -> bool,
        step: impl Fn(&TemplateRecord) -> Result<TemplateRecord, LifecycleError>,
    ) -> Res<Arc<TemplateRecord>, R> {
        for _ in 0..self.attempts() {
            let current = self.template_record(id)?;
            if done(&current.value.status) {
                return Ok(current.value);
            }
            let next = Arc::new(step(&current.value)?);
            let mut batch = Batch {
                ops: vec![Op::PutTemplate {
                    record: Arc::clone(&next),
                    expect: Expect::Version(current.version),
                }],
            };
            emit(
                &mut batch,
                now,
                EventKind::TemplateChanged {
                    template: id.clone(),
                    status: next.status.clone(),
                },
            );
            if self.commit(&batch)? == Commit::Applied {
                return Ok(next);
            }
        }
        self.contention(operation)
    }

    /// Draft → PendingApproval. Idempotent: a template already pending is returned as is.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`LifecycleError::IllegalTemplateTransition`] from any other
    /// status; [`ServiceError::Contention`]; the store's failure.
    pub fn submit_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "submit template",
            now,
            |s| *s == TemplateStatus::PendingApproval,
            TemplateRecord::submit,
        )
    }

    /// PendingApproval → Approved (finance approval). Idempotent.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn approve_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "approve template",
            now,
            |s| *s == TemplateStatus::Approved,
            TemplateRecord::approve,
        )
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
        let now = time::check("now", now)?;
        self.transition(
            id,
            "reject template",
            now,
            |s| matches!(s, TemplateStatus::Rejected { reason: r } if r == reason),
            |r| r.reject(reason),
        )
    }

    /// Approved → Active: the template starts issuing. Idempotent.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn activate_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "activate template",
            now,
            |s| *s == TemplateStatus::Active,
            TemplateRecord::activate,
        )
    }

    /// Active → Paused: issuing stops until resumed; issued coupons stay usable. Idempotent.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn pause_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "pause template",
            now,
            |s| *s == TemplateStatus::Paused,
            TemplateRecord::pause,
        )
    }

    /// Paused → Active. Idempotent.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn resume_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "resume template",
            now,
            |s| *s == TemplateStatus::Active,
            TemplateRecord::resume,
        )
    }

    /// Approved, Active or Paused → Retired: issuing stops for good; issued coupons stay
    /// usable until their own validity ends. Idempotent.
    ///
    /// # Errors
    /// As [`submit_template`](Self::submit_template).
    pub fn retire_template(
        &self,
        id: &TemplateId,
        now: DateTime<Utc>,
    ) -> Res<Arc<TemplateRecord>, R> {
        let now = time::check("now", now)?;
        self.transition(
            id,
            "retire template",
            now,
            |s| *s == TemplateStatus::Retired,
            TemplateRecord::retire,
        )
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
        let mut batch = Batch {
            ops: vec![Op::PutCampaign {
                campaign: campaign.clone(),
                expect: Expect::Absent,
            }],
        };
        emit(
            &mut batch,
            now,
            EventKind::CampaignChanged {
                campaign: campaign.id.clone(),
                online: campaign.online,
            },
        );
        match self.commit(&batch)? {
            Commit::Applied => Ok(campaign),
            Commit::Conflict { .. } => match self.repo.campaign(&campaign.id) {
                Ok(Some(existing)) if existing.value == campaign => Ok(existing.value),
                Ok(_) => Err(LifecycleError::CampaignExists {
                    campaign: campaign.id,
                }
                .into()),
                Err(e) => Err(ServiceError::Repository(e)),
            },
        }
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
        for _ in 0..self.attempts() {
            let current = self
                .repo
                .campaign(id)
                .map_err(ServiceError::Repository)?
                .ok_or_else(|| ServiceError::NotFound {
                    what: "campaign",
                    id: id.to_string(),
                })?;
            if current.value.online == online {
                return Ok(current.value);
            }
            let next = current.value.switch(online);
            let mut batch = Batch {
                ops: vec![Op::PutCampaign {
                    campaign: next.clone(),
                    expect: Expect::Version(current.version),
                }],
            };
            emit(
                &mut batch,
                now,
                EventKind::CampaignChanged {
                    campaign: id.clone(),
                    online,
                },
            );
            if self.commit(&batch)? == Commit::Applied {
                return Ok(next);
            }
        }
        self.contention("switch campaign")
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
        user: &crate::id::UserId,
        channel: &crate::id::Channel,
        campaign: Option<&CampaignId>,
        now: DateTime<Utc>,
    ) -> Res<(), R> {
        let none = crate::attributes::Attributes::new();
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
        user: &crate::id::UserId,
        channel: &crate::id::Channel,
        campaign: Option<&CampaignId>,
        attributes: &crate::attributes::Attributes,
        now: DateTime<Utc>,
    ) -> Res<(), R> {
        let now = time::check("now", now)?;
        let mut batch = Batch::new();
        emit(
            &mut batch,
            now,
            EventKind::Offered {
                template: template.clone(),
                user: user.clone(),
                channel: channel.clone(),
                campaign: campaign.cloned(),
                attributes: attributes.clone(),
            },
        );
        self.commit(&batch).map(|_| ())
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
        let mut salt = 0u32;
        for _ in 0..self.attempts() {
            let record = match self.template_record(&request.template) {
                Ok(r) => r,
                Err(e) => return self.replay_claim_or(request, &key, e),
            };
            let campaign = match &request.campaign {
                None => None,
                Some(c) => match self.repo.campaign(c).map_err(ServiceError::Repository)? {
                    Some(c) => Some(c.value),
                    None => {
                        let e = ServiceError::NotFound {
                            what: "campaign",
                            id: c.to_string(),
                        };
                        return self.replay_claim_or(request, &key, e);
                    }
                },
            };
            let user_claims =
                CounterKey::UserClaims(request.template.clone(), request.user.clone());
            let id = coupon_id(&request.template, &request.key, salt);
            let coupon = match Coupon::issue(&record.value, campaign.as_ref(), request, id, now) {
                Ok(c) => c,
                Err(e) => return self.replay_claim_or(request, &key, e.into()),
            };
            let limits = *record.value.template.limits();
            let issued = EventKind::Issued {
                coupon: CouponFacts::of(&coupon),
                mode: coupon.mode,
            };
            let guards = if self.config.guards.is_empty() {
                Vec::new()
            } else {
                let templates = [request.template.clone()];
                let asking = Asking {
                    user: &request.user,
                    channel: &request.channel,
                    templates: &templates,
                    context: &request.context,
                };
                guard::counts(&self.config.guards, Action::Claim, &asking, now)?
            };
            let mut batch = Batch {
                ops: Vec::with_capacity(5 + guards.len()),
            };
            batch
                .push(Op::InsertReceipt {
                    key: key.clone(),
                    receipt: Receipt::Claimed {
                        coupon: coupon.id.clone(),
                    },
                })
                .push(Op::Count {
                    key: CounterKey::Issued(request.template.clone()),
                    delta: 1,
                    limit: limits.total_stock(),
                })
                .push(Op::Count {
                    key: user_claims,
                    delta: 1,
                    limit: limits.per_user_claims().map(u64::from),
                })
                .push(Op::PutCoupon {
                    coupon,
                    expect: Expect::Absent,
                });
            // The ops go into the batch; what a refusal reports stays behind.
            let guards: Vec<(GuardName, u64, guard::Window)> = guards
                .into_iter()
                .map(|g| {
                    batch.push(g.op);
                    (g.guard, g.limit, g.window)
                })
                .collect();
            emit(&mut batch, now, issued);
            match self.commit(&batch)? {
                Commit::Applied => {
                    batch.ops.truncate(4);
                    return match batch.ops.pop() {
                        Some(Op::PutCoupon { coupon, .. }) => Ok(Claimed {
                            coupon,
                            replayed: false,
                        }),
                        _ => self.contention("claim"),
                    };
                }
                Commit::Conflict { index: 0 } => {
                    return match self.replay_claim(request, &key)? {
                        Some(c) => Ok(c),
                        None => continue,
                    };
                }
                Commit::Conflict { index: 1 } => {
                    if let Some(stock) = limits.total_stock() {
                        self.refused(request, Refusal::OutOfStock, now);
                        return Err(LifecycleError::OutOfStock {
                            template: request.template.clone(),
                            stock,
                        }
                        .into());
                    }
                }
                Commit::Conflict { index: 2 } => {
                    if let Some(limit) = limits.per_user_claims() {
                        self.refused(request, Refusal::ClaimLimit, now);
                        return Err(LifecycleError::ClaimLimitReached {
                            template: request.template.clone(),
                            user: request.user.clone(),
                            limit,
                        }
                        .into());
                    }
                }
                Commit::Conflict { index } if index >= 4 => {
                    if let Some((guard, limit, window)) = guards.get(index - 4) {
                        let refusal = Refusal::Guard {
                            guard: guard.to_string(),
                        };
                        self.refused(request, refusal, now);
                        return Err(LifecycleError::GuardHeld {
                            guard: guard.clone(),
                            limit: *limit,
                            window: *window,
                        }
                        .into());
                    }
                }
                // The coupon id is taken (a hash collision, or a coupon written by other means):
                // try the next salt.
                Commit::Conflict { .. } => salt = salt.saturating_add(1),
            }
        }
        self.contention("claim")
    }

    /// Records a refused claim in the event feed. The refusal is the answer whatever happens
    /// here: the event is committed on its own, and a store failure while writing it is not
    /// reported (the claim changed nothing, so nothing is lost but the count).
    fn refused(&self, request: &ClaimRequest, refusal: Refusal, now: DateTime<Utc>) {
        let mut batch = Batch::new();
        emit(
            &mut batch,
            now,
            EventKind::Refused {
                user: request.user.clone(),
                template: request.template.clone(),
                refusal,
            },
        );
        let _ignored = self.repo.commit(&batch);
    }

    fn replay_claim_or(
        &self,
        request: &ClaimRequest,
        key: &ReceiptKey,
        error: ServiceError<R::Error>,
    ) -> Res<Claimed, R> {
        match self.replay_claim(request, key)? {
            Some(c) => Ok(c),
            None => Err(error),
        }
    }

    fn replay_claim(&self, request: &ClaimRequest, key: &ReceiptKey) -> Res<Option<Claimed>, R> {
        match self.receipt(key)? {
            None => Ok(None),
            Some(Receipt::Claimed { coupon }) => {
                let c = self.coupon_record(&coupon)?.value;
                // The stored coupon records the request that issued it: the same key with
                // another user, template, channel, campaign, mode or attributes is a reuse.
                let same = c.owner == request.user
                    && c.template == request.template
                    && c.channel == request.channel
                    && c.campaign == request.campaign
                    && c.mode == request.mode
                    && c.attributes == request.attributes;
                if same {
                    Ok(Some(Claimed {
                        coupon: c,
                        replayed: true,
                    }))
                } else {
                    Err(self.key_reused(&request.key, OP_CLAIM))
                }
            }
            Some(_) => Err(self.key_reused(&request.key, OP_CLAIM)),
        }
    }

    fn key_reused(&self, key: &IdempotencyKey, operation: &'static str) -> ServiceError<R::Error> {
        LifecycleError::KeyReused {
            key: key.clone(),
            operation,
        }
        .into()
    }

    // ---------------------------------------------------------------- checkout

    /// The Active automatic promotions, indexed; rebuilt only when a template changed.
    fn promotions(&self) -> Res<Arc<PromotionIndex>, R> {
        let all = self.repo.templates().map_err(ServiceError::Repository)?;
        let live: Vec<&Versioned<Arc<TemplateRecord>>> = all
            .iter()
            .filter(|r| r.value.is_issuing() && r.value.template.is_automatic())
            .collect();
        let stamp: Vec<(TemplateId, Version)> = live
            .iter()
            .map(|r| (r.value.id().clone(), r.version))
            .collect();
        {
            let cache = self
                .promotions
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cache.as_ref().filter(|c| c.stamp == stamp) {
                return Ok(Arc::clone(&c.index));
            }
        }
        let index = Arc::new(PromotionIndex::new(
            live.iter().map(|r| Arc::clone(&r.value.template)),
        ));
        let mut cache = self
            .promotions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *cache = Some(PromoCache {
            stamp,
            index: Arc::clone(&index),
        });
        Ok(index)
    }

    /// The buyer's wallet and typed codes as offers, blocked per coupon state and counters.
    /// Offers named in `unblock` are left unblocked (re-pricing a locked order).
    fn gather(&self, buyer: &Buyer, codes: &[PromoCode], unblock: &[OfferId]) -> Res<Gathered, R> {
        let user = &buyer.user;
        let wallet = self
            .repo
            .live_coupons(user)
            .map_err(ServiceError::Repository)?;
        let mut templates: HashMap<TemplateId, Arc<TemplateRecord>> = HashMap::new();
        for c in &wallet {
            if !templates.contains_key(&c.value.template) {
                if let Some(r) = self
                    .repo
                    .template(&c.value.template)
                    .map_err(ServiceError::Repository)?
                {
                    templates.insert(c.value.template.clone(), r.value);
                }
            }
        }
        // Per-user use allowance: the coupons expiring soonest stay usable, up to what is left.
        let mut allowance: HashMap<TemplateId, u64> = HashMap::new();
        for (t, r) in &templates {
            if let Some(limit) = r.template.limits().per_user_uses() {
                let used = self.counter(&CounterKey::UserUses(t.clone(), user.clone()))?;
                allowance.insert(t.clone(), u64::from(limit).saturating_sub(used));
            }
        }
        let mut order: Vec<&Versioned<Coupon>> = wallet.iter().collect();
        order.sort_by(|a, b| {
            (a.value.valid_until, &a.value.id).cmp(&(b.value.valid_until, &b.value.id))
        });
        let mut offers = Vec::with_capacity(wallet.len() + codes.len());
        for c in order {
            let Some(r) = templates.get(&c.value.template) else {
                continue;
            };
            let id = OfferId::Coupon(c.value.id.clone());
            let mut blocked = blocked_by_state(&c.value.state);
            if blocked.is_none() {
                if let Some(left) = allowance.get_mut(&c.value.template) {
                    if *left == 0 {
                        // Uses counted for coupons only held by unpaid orders come back if
                        // those orders lapse: say so rather than "used".
                        let held = wallet.iter().any(|o| {
                            o.value.template == c.value.template
                                && matches!(o.value.state, CouponState::Locked { .. })
                        });
                        blocked = Some(if held {
                            Blocked::UsesHeld
                        } else {
                            Blocked::UseLimitReached
                        });
                    } else {
                        *left -= 1;
                    }
                }
            }
            if unblock.contains(&id) {
                blocked = None;
            }
            let mut offer = Offer::coupon(
                c.value.id.clone(),
                Arc::clone(&r.template),
                c.value.valid_from,
                c.value.valid_until,
            );
            offer.blocked = blocked;
            offers.push(offer);
        }
        let mut code_records = HashMap::new();
        for code in codes {
            if code_records.contains_key(code) {
                continue;
            }
            let template = match self.receipt(&ReceiptKey::Code(code.clone()))? {
                Some(Receipt::Code { template }) => template,
                _ => return Err(LifecycleError::UnknownCode { code: code.clone() }.into()),
            };
            let r = self.template_record(&template)?.value;
            let mut blocked = None;
            if !r.is_issuing() {
                blocked = Some(Blocked::Inactive);
            } else if let Some((_, max, per_user)) = code_of(&r.template) {
                let all = self.counter(&CounterKey::CodeUses(template.clone()))?;
                let mine =
                    self.counter(&CounterKey::CodeUserUses(template.clone(), user.clone()))?;
                if max.is_some_and(|m| all >= m) || per_user.is_some_and(|m| mine >= u64::from(m)) {
                    blocked = Some(Blocked::CodeExhausted);
                }
            }
            let mut offer = Offer::code(code.clone(), Arc::clone(&r.template));
            if !unblock.contains(&offer.id) {
                offer.blocked = blocked;
            }
            offers.push(offer);
            code_records.insert(code.clone(), r);
        }
        Ok(Gathered {
            offers,
            wallet: wallet
                .into_iter()
                .map(|c| (c.value.id.clone(), c))
                .collect(),
            codes: code_records,
            templates,
        })
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
        let now = time::check("now", now)?;
        let g = self.gather(buyer, codes, &[])?;
        let promotions = self.promotions()?;
        Ok(Checkout::new(cart, buyer, now, &self.config.policy)
            .offers(&g.offers)
            .promotions(&promotions)
            .best()?)
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
        let now = time::check("now", now)?;
        let g = self.gather(buyer, codes, &[])?;
        let promotions = self.promotions()?;
        let best = Checkout::new(cart, buyer, now, &self.config.policy)
            .offers(&g.offers)
            .promotions(&promotions)
            .best()?;
        // The quote's evaluations are already selected, usable, then unusable.
        let coupons = best
            .offers
            .iter()
            .filter_map(|e| match &e.offer {
                OfferId::Coupon(id) => g.wallet.get(id).map(|c| (c.value.clone(), e.clone())),
                _ => None,
            })
            .collect();
        Ok(Wallet { coupons, best })
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
        let now = time::check("now", now)?;
        let g = self.gather(buyer, codes, &[])?;
        let promotions = self.promotions()?;
        Ok(Checkout::new(cart, buyer, now, &self.config.policy)
            .offers(&g.offers)
            .promotions(&promotions)
            .with_selection(selection)?)
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
        let order = request.order;
        let user = &request.buyer.user;
        // The coupons the first attempt chose: what a lost race took is reported.
        let mut chosen: Option<Vec<CouponId>> = None;
        self.run(
            OP_LOCK,
            || self.replay_lock(request, &key),
            || {
                let g = self.gather(request.buyer, request.codes, &[])?;
                let promotions = self.promotions()?;
                let checkout = Checkout::new(request.cart, request.buyer, now, &self.config.policy)
                    .offers(&g.offers)
                    .promotions(&promotions);
                let quote = match request.selection {
                    Some(sel) => checkout.with_selection(sel)?,
                    None => checkout.best()?,
                };
                let hold_until = hold_end(now, self.config.hold);
                let mut locked: Vec<(Coupon, Version)> = Vec::new();
                let mut savings: Vec<Money> = Vec::new();
                let mut codes: Vec<(PromoCode, Arc<TemplateRecord>)> = Vec::new();
                for a in &quote.applied {
                    match &a.offer {
                        OfferId::Coupon(id) => {
                            let Some(c) = g.wallet.get(id) else {
                                return self.contention("lock");
                            };
                            crate::lifecycle::clock(
                                id.as_str(),
                                c.value.claimed_at,
                                now,
                                self.config.clock_skew,
                            )?;
                            locked.push((c.value.lock(user, order, hold_until, now)?, c.version));
                            savings.push(a.saving);
                        }
                        OfferId::Code(code) => {
                            if let Some(r) = g.codes.get(code) {
                                codes.push((code.clone(), Arc::clone(r)));
                            }
                        }
                        OfferId::Promotion(_) => {}
                    }
                }
                let ids: Vec<CouponId> = locked.iter().map(|(c, _)| c.id.clone()).collect();
                let held = !locked.is_empty() || !codes.is_empty();
                let first = chosen.get_or_insert_with(|| ids.clone());
                let contended: Vec<CouponId> =
                    first.iter().filter(|c| !ids.contains(c)).cloned().collect();
                let record = Order::place(
                    order.clone(),
                    request.buyer,
                    quote.clone(),
                    ids.clone(),
                    codes
                        .iter()
                        .map(|(c, r)| (c.clone(), r.id().clone()))
                        .collect(),
                    held.then_some(hold_until),
                    now,
                );
                let mut plan = Plan::new(());
                plan.push(
                    Op::InsertReceipt {
                        key: key.clone(),
                        receipt: Receipt::Locked {
                            order: order.clone(),
                            coupons: ids.clone(),
                            totals: None,
                            fingerprint: Some(lock_fingerprint(request)),
                        },
                    },
                    On::Replay,
                );
                plan.push(
                    Op::PutOrder {
                        order: Box::new(record),
                        expect: Expect::Absent,
                    },
                    On::Refuse(LifecycleError::OrderAlreadyLocked {
                        order: order.clone(),
                    }),
                );
                let mut uses: BTreeMap<TemplateId, i64> = BTreeMap::new();
                for (c, version) in &locked {
                    *uses.entry(c.template.clone()).or_default() += 1;
                    plan.push(
                        Op::PutCoupon {
                            coupon: c.clone(),
                            expect: Expect::Version(*version),
                        },
                        On::Retry,
                    );
                }
                for (t, n) in uses {
                    let limit = g
                        .templates
                        .get(&t)
                        .and_then(|r| r.template.limits().per_user_uses());
                    plan.push(
                        Op::Count {
                            key: CounterKey::UserUses(t.clone(), user.clone()),
                            delta: n,
                            limit: limit.map(u64::from),
                        },
                        match limit {
                            Some(limit) => On::Limit(LifecycleError::UseLimitReached {
                                template: t.clone(),
                                user: user.clone(),
                                limit,
                            }),
                            None => On::Retry,
                        },
                    );
                }
                if !codes.is_empty() {
                    // The codes' uses are counted now: `sweep` gives them back if the hold runs out.
                    plan.push(
                        Op::Hold {
                            order: order.clone(),
                            until: Some(hold_until),
                        },
                        On::Retry,
                    );
                }
                for (code, r) in &codes {
                    let (max, per_user) =
                        code_of(&r.template).map_or((None, None), |(_, m, p)| (m, p));
                    plan.push(
                        Op::Count {
                            key: CounterKey::CodeUses(r.id().clone()),
                            delta: 1,
                            limit: max,
                        },
                        match max {
                            Some(limit) => On::Limit(LifecycleError::CodeExhausted {
                                code: code.clone(),
                                limit,
                            }),
                            None => On::Retry,
                        },
                    );
                    plan.push(
                        Op::Count {
                            key: CounterKey::CodeUserUses(r.id().clone(), user.clone()),
                            delta: 1,
                            limit: per_user.map(u64::from),
                        },
                        match per_user {
                            Some(limit) => On::Limit(LifecycleError::CodeUserLimitReached {
                                code: code.clone(),
                                user: user.clone(),
                                limit,
                            }),
                            None => On::Retry,
                        },
                    );
                }
                if !locked.is_empty() || !codes.is_empty() {
                    let mut templates: Vec<TemplateId> =
                        locked.iter().map(|(c, _)| c.template.clone()).collect();
                    templates.extend(codes.iter().map(|(_, r)| r.id().clone()));
                    templates.sort();
                    templates.dedup();
                    let none = Context::new();
                    let asking = Asking {
                        user,
                        channel: &request.buyer.channel,
                        templates: &templates,
                        context: request.context.unwrap_or(&none),
                    };
                    for g in guard::counts(&self.config.guards, Action::Lock, &asking, now)? {
                        plan.push(
                            g.op,
                            On::Refuse(LifecycleError::GuardHeld {
                                guard: g.guard,
                                limit: g.limit,
                                window: g.window,
                            }),
                        );
                    }
                }
                for ((c, _), saving) in locked.iter().zip(&savings) {
                    plan.emit(
                        now,
                        EventKind::Locked {
                            coupon: CouponFacts::of(c),
                            order: order.clone(),
                            saving: *saving,
                        },
                    );
                }
                plan.emit(
                    now,
                    EventKind::OrderPlaced {
                        order: order.clone(),
                        user: user.clone(),
                        gross: quote.total_before,
                        discount: quote.saving,
                        coupons: u32::try_from(locked.len()).unwrap_or(u32::MAX),
                    },
                );
                Ok(Step::Commit(plan.answer(LockedOrder {
                    order: order.clone(),
                    quote,
                    hold_until: held.then_some(hold_until),
                    coupons: locked.into_iter().map(|(c, _)| c).collect(),
                    codes: codes.into_iter().map(|(c, _)| c).collect(),
                    state: OrderState::Placed,
                    contended,
                    replayed: false,
                })))
            },
        )
    }

    /// The first outcome of a lock request: the order as it was locked.
    fn replay_lock(
        &self,
        request: &LockRequest<'_>,
        key: &ReceiptKey,
    ) -> Res<Option<LockedOrder>, R> {
        let ids = match self.receipt(key)? {
            None => return Ok(None),
            Some(Receipt::Locked {
                order,
                coupons,
                fingerprint,
                ..
            }) if &order == request.order
                && fingerprint.is_none_or(|f| f == lock_fingerprint(request)) =>
            {
                coupons
            }
            Some(_) => return Err(self.key_reused(request.key, OP_LOCK)),
        };
        // The order as it was locked, from its record: never re-priced. Its coupons are
        // listed as they are now (given back, if the order was released since).
        let Some(record) = self
            .repo
            .order(request.order)
            .map_err(ServiceError::Repository)?
        else {
            return Ok(None);
        };
        let record = record.value;
        if record.buyer != request.buyer.user || record.coupons != ids {
            return Err(self.key_reused(request.key, OP_LOCK));
        }
        let coupons = self
            .repo
            .coupons(&record.coupons)
            .map_err(ServiceError::Repository)?
            .into_iter()
            .flatten()
            .map(|c| c.value)
            .collect();
        Ok(Some(LockedOrder {
            order: record.id,
            quote: record.quote,
            coupons,
            codes: record.codes,
            hold_until: record.hold_until,
            state: record.state,
            contended: Vec::new(),
            replayed: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::Guard;

    #[test]
    fn configs_are_checked() {
        let bad =
            |c: ServiceConfig| Service::with_config(crate::repository::MemoryStore::new(), c).err();
        assert!(
            bad(ServiceConfig {
                clock_skew: Duration::seconds(-1),
                ..ServiceConfig::default()
            })
            .is_some()
        );
        assert!(
            bad(ServiceConfig {
                clock_skew: Duration::minutes(2),
                ..ServiceConfig::default()
            })
            .is_some()
        );
        let hold = |h| ServiceConfig {
            hold: h,
            ..Default::default()
        };
        assert!(matches!(
            bad(hold(Duration::minutes(-5))),
            Some(ConfigError::Hold { .. })
        ));
        assert!(matches!(
            bad(hold(Duration::zero())),
            Some(ConfigError::Hold { .. })
        ));
        assert!(bad(hold(Duration::minutes(30))).is_none());
        let none = ServiceConfig {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(bad(none), Some(ConfigError::Attempts));
        let g = Guard::new(
            GuardName::new("g").unwrap(),
            Action::Claim,
            vec![guard::Subject::User],
            1,
            guard::Window::Day,
        )
        .unwrap();
        let twice = ServiceConfig {
            guards: vec![g.clone(), g],
            ..Default::default()
        };
        assert!(matches!(
            bad(twice),
            Some(ConfigError::DuplicateGuard { .. })
        ));
    }

    #[test]
    fn error_kinds_map_to_statuses() {
        type E = ServiceError<std::io::Error>;
        let t = TemplateId::new("t").unwrap();
        let out: E = LifecycleError::OutOfStock {
            template: t.clone(),
            stock: 1,
        }
        .into();
        assert_eq!(
            (out.kind(), out.kind().http_status()),
            (ErrorKind::Refused, 422)
        );
        assert!(!out.is_retryable());
        let reused: E = LifecycleError::KeyReused {
            key: IdempotencyKey::new("k").unwrap(),
            operation: "claim",
        }
        .into();
        assert_eq!(reused.kind().http_status(), 409);
        let missing: E = ServiceError::NotFound {
            what: "coupon",
            id: "c".into(),
        };
        assert_eq!(missing.kind().http_status(), 404);
        let forbidden: E = LifecycleError::NotPermitted {
            actor: crate::lifecycle::Actor::Buyer(crate::id::UserId::new("bob").unwrap()),
            action: crate::lifecycle::OrderAction::Pay,
            record: "o-1".into(),
        }
        .into();
        assert_eq!(
            (forbidden.kind(), forbidden.kind().http_status()),
            (ErrorKind::Forbidden, 403)
        );
        let behind: E = LifecycleError::ClockBehind {
            record: "o-1".into(),
            last: chrono::DateTime::UNIX_EPOCH,
            now: chrono::DateTime::UNIX_EPOCH,
            tolerance_ms: 2000,
        }
        .into();
        assert_eq!(behind.kind().http_status(), 409);
        let busy: E = ServiceError::Contention {
            operation: "claim",
            attempts: 3,
        };
        assert!(busy.is_retryable());
        let down: E = ServiceError::Repository(std::io::Error::other("down"));
        assert_eq!(
            (down.kind(), down.is_retryable()),
            (ErrorKind::Unavailable, true)
        );
    }

    #[test]
    fn coupon_ids_are_readable_or_hashed_when_long() {
        let t = TemplateId::new("t1").unwrap();
        let k = IdempotencyKey::new("claim-3").unwrap();
        assert_eq!(coupon_id(&t, &k, 0).as_str(), "t1/claim-3");
        assert_eq!(coupon_id(&t, &k, 2).as_str(), "t1/claim-3.2");
        let long = TemplateId::new("x".repeat(100)).unwrap();
        let a = coupon_id(&long, &k, 0);
        assert!(a.as_str().len() <= MAX_ID_LEN);
        assert!(CouponId::new(a.as_str()).is_ok());
        assert_ne!(
            a,
            coupon_id(&long, &IdempotencyKey::new("claim-4").unwrap(), 0)
        );
        assert_ne!(a, coupon_id(&long, &k, 1));
    }

    #[test]
    fn service_error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ServiceError<crate::repository::MemoryStoreError>>();
    }
}
