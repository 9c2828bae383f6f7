//! Pricing a cart and holding what it applies for an order: the buyer's offers from what was
//! read, the lock's plan, its fingerprint and its replay.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::read::{Got, Next, Read, Reads, Steps, unexpected};
use super::template::code_of;
use super::text::Text;
use super::{Denied, On, Plan, Step};
use crate::cart::{Buyer, Cart};
use crate::checkout::{Blocked, Checkout, Offer, OfferId, PromotionIndex, Quote};
use crate::events::{CouponFacts, EventKind};
use crate::guard::{self, Action, Asking, Context};
use crate::id::{CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{Coupon, CouponState, LifecycleError, Order, OrderState, TemplateRecord};
use crate::money::Money;
use crate::repository::{CounterKey, Expect, Op, Receipt, ReceiptKey, Version, Versioned};
use crate::rule::PromoCode;
use crate::service::ServiceConfig;
use crate::time;

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

/// Pure: the wallet view of `best`, whose evaluations are already in the order a page lists
/// them (selected, usable, then unusable): each wallet coupon with its evaluation.
pub(crate) fn wallet(gathered: &Gathered, best: Quote) -> Wallet {
    let coupons = best
        .offers
        .iter()
        .filter_map(|e| match &e.offer {
            OfferId::Coupon(id) => gathered
                .wallet
                .get(id)
                .map(|c| (c.value.clone(), e.clone())),
            _ => None,
        })
        .collect();
    Wallet { coupons, best }
}

/// A buyer's wallet and typed codes as read, for [`offers`], in two stages: the records
/// first ([`WalletRead::new`], the wallet's templates, each typed code's template), then the
/// counters they need ([`WalletRead::counters`]).
#[derive(Debug)]
pub(crate) struct WalletRead {
    /// The buyer.
    user: UserId,
    /// The live coupons.
    wallet: Vec<Versioned<Coupon>>,
    /// Their templates.
    pub(crate) templates: HashMap<TemplateId, Arc<TemplateRecord>>,
    /// Each typed code (once) and its template.
    pub(crate) codes: Vec<(PromoCode, Arc<TemplateRecord>)>,
}

impl WalletRead {
    /// Pure: the live coupons read for `user`, and the templates to read next: each of the
    /// wallet's templates once.
    pub(crate) fn new(
        user: &UserId,
        wallet: Vec<Versioned<Coupon>>,
    ) -> (WalletRead, Vec<TemplateId>) {
        let mut ids: Vec<TemplateId> = wallet.iter().map(|c| c.value.template.clone()).collect();
        ids.sort();
        ids.dedup();
        let read = WalletRead {
            user: user.clone(),
            wallet,
            templates: HashMap::new(),
            codes: Vec::new(),
        };
        (read, ids)
    }

    /// Pure: the counters [`offers`] needs: the buyer's uses of each template with a per-user
    /// use limit; each typed code's uses, in all and by the buyer, when its template issues.
    pub(crate) fn counters(&self) -> Vec<CounterKey> {
        let user = &self.user;
        let mut keys: Vec<CounterKey> = (self.templates.iter())
            .filter(|(_, r)| r.template.limits().per_user_uses().is_some())
            .map(|(t, _)| CounterKey::UserUses(t.clone(), user.clone()))
            .collect();
        for (_, r) in &self.codes {
            if r.is_issuing() && code_of(&r.template).is_some() {
                keys.push(CounterKey::CodeUses(r.id().clone()));
                keys.push(CounterKey::CodeUserUses(r.id().clone(), user.clone()));
            }
        }
        keys
    }
}

/// A buyer's wallet read as a machine, in stages: the live coupons, each of their templates
/// (once each, sorted; a missing one is left out), each distinct typed code's receipt and
/// template, then the counters [`WalletRead::counters`] lists; ready as [`offers`].
pub(crate) struct GatherRead {
    user: UserId,
    codes: Vec<PromoCode>,
    read: Option<WalletRead>,
    todo: Vec<Read>,
    code: Option<PromoCode>,
    counts: Option<HashMap<CounterKey, u64>>,
}

impl GatherRead {
    /// Reads `user`'s wallet with the codes typed.
    pub(crate) fn new(user: &UserId, codes: &[PromoCode]) -> GatherRead {
        let mut codes: Vec<PromoCode> = distinct(codes).into_iter().cloned().collect();
        codes.reverse();
        let (user, read, code, counts) = (user.clone(), None, None, None);
        let todo = vec![Read::LiveCoupons(user.clone())];
        GatherRead {
            user,
            codes,
            read,
            todo,
            code,
            counts,
        }
    }
}

impl Reads for GatherRead {
    type Out = Gathered;

    fn next(&mut self, got: Option<Got>) -> Result<Next<Gathered>, Denied> {
        match (got, &mut self.read, &mut self.counts) {
            (None, _, _) => {}
            (Some(Got::Coupons(wallet)), None, _) => {
                let (read, ids) = WalletRead::new(&self.user, wallet);
                self.todo = ids.into_iter().rev().map(Read::TemplateIfAny).collect();
                self.read = Some(read);
            }
            (Some(Got::TemplateIfAny(t, r)), Some(read), _) => {
                if let Some(r) = r {
                    read.templates.insert(t, r.value);
                }
            }
            (Some(Got::Receipt(ReceiptKey::Code(code), r)), Some(_), _) => {
                self.todo.push(Read::Template(code_template(&code, r)?));
                self.code = Some(code);
            }
            (Some(Got::Template(r)), Some(read), _) => match self.code.take() {
                Some(code) => read.codes.push((code, r.value)),
                None => return unexpected("read wallet"),
            },
            (Some(Got::Count(key, n)), _, Some(counts)) => {
                counts.insert(key, n);
            }
            _ => return unexpected("read wallet"),
        }
        if let Some(next) = self.todo.pop() {
            return Ok(Next::Read(next));
        }
        if let Some(code) = self.codes.pop() {
            return Ok(Next::Read(Read::Receipt(ReceiptKey::Code(code))));
        }
        let (Some(read), counts) = (&self.read, &mut self.counts) else {
            return unexpected("read wallet");
        };
        if counts.is_none() {
            let mut keys = read.counters();
            keys.reverse();
            self.todo = keys.into_iter().map(Read::Counter).collect();
            *counts = Some(HashMap::new());
            return self.next(None);
        }
        match (self.read.take(), self.counts.take()) {
            (Some(read), Some(counts)) => Ok(Next::Ready(offers(read, &counts))),
            _ => unexpected("read wallet"),
        }
    }
}

/// The typed codes, once each, in the order typed.
pub(crate) fn distinct(codes: &[PromoCode]) -> Vec<&PromoCode> {
    let mut once: Vec<&PromoCode> = Vec::with_capacity(codes.len());
    for c in codes {
        if !once.contains(&c) {
            once.push(c);
        }
    }
    once
}

/// Promotions indexed for checkout, with the template versions they were built from.
#[derive(Debug)]
pub(crate) struct PromoCache {
    stamp: Vec<(TemplateId, Version)>,
    pub(crate) index: Arc<PromotionIndex>,
}

impl PromoCache {
    /// Pure: the versions of the Active automatic promotions among every template read.
    pub(crate) fn stamp(all: &[Versioned<Arc<TemplateRecord>>]) -> Vec<(TemplateId, Version)> {
        let live = all.iter().filter(|r| promotes(r));
        live.map(|r| (r.value.id().clone(), r.version)).collect()
    }

    /// The index, if it was built from the same template versions.
    pub(crate) fn fresh(&self, stamp: &[(TemplateId, Version)]) -> Option<Arc<PromotionIndex>> {
        (self.stamp == stamp).then(|| Arc::clone(&self.index))
    }

    /// Pure: the index of the Active automatic promotions among every template read.
    pub(crate) fn new(
        stamp: Vec<(TemplateId, Version)>,
        all: &[Versioned<Arc<TemplateRecord>>],
    ) -> PromoCache {
        let live = all.iter().filter(|r| promotes(r));
        let index = PromotionIndex::new(live.map(|r| Arc::clone(&r.value.template)));
        PromoCache {
            stamp,
            index: Arc::new(index),
        }
    }
}

fn promotes(r: &Versioned<Arc<TemplateRecord>>) -> bool {
    r.value.is_issuing() && r.value.template.is_automatic()
}

/// The wallet and codes of one buyer, as offers.
#[derive(Debug)]
pub(crate) struct Gathered {
    pub(crate) offers: Vec<Offer>,
    pub(crate) wallet: HashMap<CouponId, Versioned<Coupon>>,
    pub(crate) codes: HashMap<PromoCode, Arc<TemplateRecord>>,
    pub(crate) templates: HashMap<TemplateId, Arc<TemplateRecord>>,
}

/// The template a typed code's receipt names.
///
/// # Errors
/// [`LifecycleError::UnknownCode`] unless it is a shared promo code's.
pub(crate) fn code_template(
    code: &PromoCode,
    receipt: Option<Receipt>,
) -> Result<TemplateId, LifecycleError> {
    match receipt {
        Some(Receipt::Code { template }) => Ok(template),
        _ => Err(LifecycleError::UnknownCode { code: code.clone() }),
    }
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

/// Pure: the buyer's wallet and typed codes as offers, blocked per coupon state and the
/// `counts` of [`WalletRead::counters`] (a counter not read counts zero).
pub(crate) fn offers(read: WalletRead, counts: &HashMap<CounterKey, u64>) -> Gathered {
    let WalletRead {
        user,
        wallet,
        templates,
        codes,
    } = read;
    let count = |key: CounterKey| counts.get(&key).copied().unwrap_or(0);
    // Per-user use allowance: the coupons expiring soonest stay usable, up to what is left.
    let mut allowance: HashMap<TemplateId, u64> = HashMap::new();
    for (t, r) in &templates {
        if let Some(limit) = r.template.limits().per_user_uses() {
            let used = count(CounterKey::UserUses(t.clone(), user.clone()));
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
    for (code, r) in codes {
        let mut blocked = None;
        if !r.is_issuing() {
            blocked = Some(Blocked::Inactive);
        } else if let Some((_, max, per_user)) = code_of(&r.template) {
            let all = count(CounterKey::CodeUses(r.id().clone()));
            let mine = count(CounterKey::CodeUserUses(r.id().clone(), user.clone()));
            if max.is_some_and(|m| all >= m) || per_user.is_some_and(|m| mine >= u64::from(m)) {
                blocked = Some(Blocked::CodeExhausted);
            }
        }
        let mut offer = Offer::code(code.clone(), Arc::clone(&r.template));
        offer.blocked = blocked;
        offers.push(offer);
        code_records.insert(code, r);
    }
    Gathered {
        offers,
        wallet: wallet
            .into_iter()
            .map(|c| (c.value.id.clone(), c))
            .collect(),
        codes: code_records,
        templates,
    }
}

/// A fingerprint of a lock request: everything that decides its outcome (the order, the
/// buyer, the cart, the selection and the codes), hashed in the fixed text form of
/// [`text`](super::text), so that every process and version computes the same value for the
/// same request.
pub(crate) fn lock_fingerprint(request: &LockRequest<'_>) -> u64 {
    lock_text(request).fingerprint()
}

/// The text [`lock_fingerprint`] hashes.
fn lock_text(request: &LockRequest<'_>) -> Text {
    let mut t = Text::default();
    let buyer = request.buyer;
    t.raw("order=").show(request.order);
    t.raw("|user=").show(&buyer.user);
    t.raw("|channel=").show(&buyer.channel);
    t.raw("|kind=").customer(buyer.kind);
    t.raw("|member=")
        .optional(buyer.membership.as_ref().map(|m| m.as_str()))
        .raw("|");
    for s in &buyer.segments {
        t.raw("seg=").show(s).raw("|");
    }
    let cart = request.cart;
    t.raw("cur=").show(cart.currency());
    t.raw("|ship=").show(cart.shipping()).raw("|");
    // Parcels per shop, when the fee is split (a one-fee cart keeps its fingerprint).
    let parcels = cart.shipping_lines();
    let split = parcels.len() > 1 || parcels.iter().any(|l| l.shop.is_some());
    for l in parcels.iter().filter(|_| split) {
        let shop = l.shop.as_ref().map_or("", |s| s.as_str());
        t.raw("parcel=")
            .show(shop.len())
            .raw(":")
            .raw(shop)
            .raw("|");
        t.raw("fee=").show(l.fee).raw("|");
    }
    for l in cart.lines() {
        t.raw("line=").show(&l.sku).raw(":").show(l.unit_price);
        t.raw(":").show(l.quantity).raw(":");
        t.optional(l.shop.as_ref().map(|s| s.as_str()));
        t.raw(":").show(l.on_sale).raw(":");
        for c in &l.categories {
            t.show(c).raw(",");
        }
        t.raw("|");
    }
    match request.selection {
        None => {
            t.raw("best|");
        }
        Some(sel) => {
            for o in sel {
                t.raw("sel=").offer(o).raw("|");
            }
        }
    }
    for c in request.codes {
        t.raw("code=").show(c).raw("|");
    }
    t
}

/// A lock's replay as reads: its receipt (which must be this request's), the order it
/// names (as it was locked: never re-priced) and the order's coupons as they are now (given
/// back, if the order was released since).
///
/// # Errors
/// [`LifecycleError::KeyReused`] for a receipt of another request, or an order record of
/// another buyer or holding other coupons.
pub(crate) fn lock_replay<'a>(
    request: &'a LockRequest<'_>,
    key: ReceiptKey,
) -> impl Reads<Out = Option<LockedOrder>> + 'a {
    let reused = || Denied::from(super::key_reused(request.key, super::OP_LOCK));
    let (mut ids, mut locked): (Vec<CouponId>, Option<Order>) = (Vec::new(), None);
    Steps::new(Read::Receipt(key), move |got| {
        Ok(match got {
            Got::Receipt(_, None) => Next::Ready(None),
            Got::Receipt(
                _,
                Some(Receipt::Locked {
                    order: id,
                    coupons,
                    fingerprint,
                    ..
                }),
            ) if &id == request.order
                && fingerprint.is_none_or(|f| f == lock_fingerprint(request)) =>
            {
                ids = coupons;
                Next::Read(Read::Order(id))
            }
            Got::Receipt(..) => return Err(reused()),
            Got::Order(record) => {
                if record.value.buyer != request.buyer.user || record.value.coupons != ids {
                    return Err(reused());
                }
                locked = Some(record.value);
                Next::Read(Read::Coupons(std::mem::take(&mut ids)))
            }
            Got::Coupons(coupons) => match locked.take() {
                Some(record) => Next::Ready(Some(LockedOrder {
                    order: record.id,
                    quote: record.quote,
                    coupons: coupons.into_iter().map(|c| c.value).collect(),
                    codes: record.codes,
                    hold_until: record.hold_until,
                    state: record.state,
                    contended: Vec::new(),
                    replayed: true,
                })),
                None => return unexpected("replay lock"),
            },
            _ => return unexpected("replay lock"),
        })
    })
}

/// Pure: price `cart` for `buyer` over the offers gathered and the promotions: the best
/// combination, or the buyer's `selection`.
///
/// # Errors
/// The checkout's refusals.
pub(crate) fn price(
    (cart, buyer): (&Cart, &Buyer),
    (g, promotions): (&Gathered, &PromotionIndex),
    selection: Option<&[OfferId]>,
    config: &ServiceConfig,
    now: DateTime<Utc>,
) -> Result<Quote, crate::checkout::CheckoutError> {
    let checkout = Checkout::new(cart, buyer, now, &config.policy)
        .offers(&g.offers)
        .promotions(promotions);
    match selection {
        None => checkout.best(),
        Some(selection) => checkout.with_selection(selection),
    }
}

/// Pure: hold what `quote` (priced by [`price`] over `g`) applies: the order record, each
/// coupon Locked, the uses and code uses counted, the guards. `chosen` keeps the coupons the
/// first attempt chose, so that a later attempt reports those another order took
/// ([`LockedOrder::contended`]).
///
/// # Errors
/// A coupon's lock refusal ([`LifecycleError::ClockBehind`]…); a guard's missing context.
pub(crate) fn plan_lock(
    (g, quote): (&Gathered, Quote),
    request: &LockRequest<'_>,
    key: &ReceiptKey,
    config: &ServiceConfig,
    chosen: &mut Option<Vec<CouponId>>,
    now: DateTime<Utc>,
) -> Result<Step<LockedOrder>, Denied> {
    let order = request.order;
    let user = &request.buyer.user;
    let hold_until = time::add_saturating(now, config.hold);
    let mut locked: Vec<(Coupon, Version)> = Vec::new();
    let mut savings: Vec<Money> = Vec::new();
    let mut codes: Vec<(PromoCode, Arc<TemplateRecord>)> = Vec::new();
    for a in &quote.applied {
        match &a.offer {
            OfferId::Coupon(id) => {
                let Some(c) = g.wallet.get(id) else {
                    return Err(Denied::inconsistent("lock"));
                };
                crate::lifecycle::clock(id.as_str(), c.value.claimed_at, now, config.clock_skew)?;
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
    let contended: Vec<CouponId> = first.iter().filter(|c| !ids.contains(c)).cloned().collect();
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
        let (max, per_user) = code_of(&r.template).map_or((None, None), |(_, m, p)| (m, p));
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
        for g in guard::counts(&config.guards, Action::Lock, &asking, now)? {
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
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::cart::{CartLine, CustomerKind};
    use crate::id::{CategoryId, Channel, MembershipLevel, SegmentId, ShopId, Sku, UserId};
    use crate::money::Currency;

    /// The text as it was written with `Debug` before the fixed form: receipts stored then
    /// must keep matching.
    fn debug_text(request: &LockRequest<'_>) -> String {
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
        text
    }

    #[test]
    fn lock_text_is_pinned_and_equals_the_debug_form() {
        let cny = Currency::CNY;
        let mut line = CartLine::new(Sku::new("tea").unwrap(), Money::from_minor(1250, cny), 2);
        line.shop = Some(ShopId::new("shop \"a\"").unwrap());
        line.categories = vec![CategoryId::new("drinks").unwrap()];
        let plain = CartLine::new(Sku::new("cup").unwrap(), Money::from_minor(300, cny), 1);
        let cart = Cart::new(cny, vec![line, plain], Money::from_minor(500, cny)).unwrap();
        let mut buyer = Buyer::new(UserId::new("alice").unwrap(), Channel::new("app").unwrap());
        buyer.kind = CustomerKind::New;
        buyer.membership = Some(MembershipLevel::new("gold").unwrap());
        buyer.segments.insert(SegmentId::new("vip").unwrap());
        let order = OrderId::new("o-1").unwrap();
        let key = IdempotencyKey::new("k").unwrap();
        let codes = [PromoCode::new("SAVE-10").unwrap()];
        let sel = [
            OfferId::Coupon(CouponId::new("t/c").unwrap()),
            OfferId::Code(codes[0].clone()),
        ];
        let best = LockRequest::new(&order, &cart, &buyer, &key);
        let chosen = best.select(&sel).codes(&codes);
        for r in [best, chosen] {
            assert_eq!(lock_text(&r).0, debug_text(&r));
        }
        assert_eq!(
            lock_text(&chosen).0,
            "order=o-1|user=alice|channel=app|kind=New|member=Some(\"gold\")|seg=vip|\
             cur=CNY|ship=5.00 CNY|line=tea:12.50 CNY:2:Some(\"shop \\\"a\\\"\"):false:drinks,|\
             line=cup:3.00 CNY:1:None:false:|sel=Coupon(CouponId(\"t/c\"))|\
             sel=Code(PromoCode(\"SAVE-10\"))|code=SAVE-10|"
        );
        assert_eq!(lock_fingerprint(&chosen), FP_LOCK);
    }

    const FP_LOCK: u64 = 10_781_856_072_206_957_377;
}
