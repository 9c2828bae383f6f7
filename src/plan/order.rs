//! Order steps: pay, cancel (release), complete, refund, and voiding a coupon.
//!
//! Each plan takes the order record and its coupons as read at one order version
//! ([`View`]), the acting party and `now`; the order's own transitions
//! ([`Order::pay`], [`Order::refund`]…) decide what is allowed.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::read::{Got, Next, Read, Reads, Steps, unexpected};
use super::{
    Denied, OP_CANCEL, OP_COMPLETE, OP_PAY, OP_REFUND, OP_VOID, On, Plan, Step, key_reused, op_key,
};
use crate::events::{CouponFacts, EventKind, OrderCoupon};
use crate::id::{CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{
    Actor, Coupon, CouponState, LifecycleError, Order, OrderAction, OrderRefund, OrderState,
    RefundRequest, ReleaseCause,
};
use crate::money::Money;
use crate::repository::{CounterKey, Expect, Op, Receipt, ReceiptKey, Versioned};
use crate::rule::RefundPolicy;

/// An order paid, cancelled or completed (or the first outcome of a repeated request).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Settlement {
    /// The order.
    pub order: OrderId,
    /// The coupons redeemed (pay), given back (cancel: Available, or Expired past their
    /// validity) or used (complete).
    pub coupons: Vec<CouponId>,
    /// The order's state now.
    pub state: OrderState,
    /// Whether the order was already where the request leads (this request's earlier
    /// attempt, or another request, got it there).
    pub replayed: bool,
}

/// A paid order refunded, in part or in whole.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Refunded {
    /// The order.
    pub order: OrderId,
    /// The refund as recorded in the order: the amounts paid back and the discount given back.
    pub refund: OrderRefund,
    /// Coupons this refund returned to the wallet (Available, or Expired past their validity).
    pub returned: Vec<CouponId>,
    /// Coupons this refund voided.
    pub voided: Vec<CouponId>,
    /// The order's state now (`refunded` once nothing is left).
    pub state: OrderState,
    /// Whether this repeated an earlier refund with the same key.
    pub replayed: bool,
}

/// What a [`sweep`](crate::service::Service::sweep) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Swept {
    /// Available coupons marked Expired.
    pub expired: Vec<CouponId>,
    /// Unpaid orders whose hold ran out, released.
    pub released: Vec<OrderId>,
}

impl Swept {
    /// Whether nothing was due.
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.released.is_empty()
    }
}

/// An order record and its coupons, as read.
pub(crate) struct View {
    pub(crate) order: Versioned<Order>,
    pub(crate) coupons: Vec<Versioned<Coupon>>,
}

impl View {
    /// The templates of the order's coupons, once each: whose refund policies a refund reads.
    pub(crate) fn templates(&self) -> Vec<&TemplateId> {
        let mut ids: Vec<&TemplateId> = self.coupons.iter().map(|c| &c.value.template).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// The order and its coupons as of one instant, as a read machine: the order is read again
/// after its coupons, and the pair is taken only if the order did not change in between.
/// Every write that moves an order's coupons also writes the order, so an unchanged order
/// version means the coupons read belong to that version (a cancel committed between the two
/// reads would otherwise show a pay an order still placed with its coupon already back). At
/// most `tries` reads of the coupons, then [`Denied::Inconsistent`].
pub(crate) struct ViewRead {
    id: OrderId,
    tries: u32,
    reads: u32,
    order: Option<Versioned<Order>>,
    coupons: Vec<Versioned<Coupon>>,
}

impl ViewRead {
    /// Reads order `id`'s view, reading its coupons at most `tries` times.
    pub(crate) fn new(id: &OrderId, tries: u32) -> ViewRead {
        let (id, order, coupons) = (id.clone(), None, Vec::new());
        ViewRead {
            id,
            tries,
            reads: 0,
            order,
            coupons,
        }
    }
}

impl Reads for ViewRead {
    type Out = View;

    fn next(&mut self, got: Option<Got>) -> Result<Next<View>, Denied> {
        let order = match got {
            None => return Ok(Next::Read(Read::Order(self.id.clone()))),
            Some(Got::Coupons(coupons)) => {
                self.coupons = coupons;
                return Ok(Next::Read(Read::Order(self.id.clone())));
            }
            Some(Got::Order(order)) => *order,
            Some(_) => return unexpected("read order"),
        };
        match self.order.take() {
            Some(first) if first.version == order.version => {
                let coupons = std::mem::take(&mut self.coupons);
                return Ok(Next::Ready(View {
                    order: first,
                    coupons,
                }));
            }
            _ if self.reads == self.tries => {
                return Err(Denied::Inconsistent("read order", self.reads));
            }
            _ if order.value.coupons.is_empty() => {
                let coupons = Vec::new();
                return Ok(Next::Ready(View { order, coupons }));
            }
            _ => {}
        }
        self.reads += 1;
        let ids = order.value.coupons.clone();
        self.order = Some(order);
        Ok(Next::Read(Read::Coupons(ids)))
    }
}

/// A refund's reads: the [`ViewRead`], then the refund policy of each of its coupons'
/// templates ([`View::templates`]), each read once.
pub(crate) struct RefundRead {
    view: ViewRead,
    read: Option<(View, Vec<TemplateId>)>,
    policies: HashMap<TemplateId, RefundPolicy>,
}

impl RefundRead {
    /// Reads order `id`'s view (see [`ViewRead::new`]) and its templates' refund policies.
    pub(crate) fn new(id: &OrderId, tries: u32) -> RefundRead {
        RefundRead {
            view: ViewRead::new(id, tries),
            read: None,
            policies: HashMap::new(),
        }
    }
}

impl Reads for RefundRead {
    type Out = (View, HashMap<TemplateId, RefundPolicy>);

    fn next(&mut self, got: Option<Got>) -> Result<Next<Self::Out>, Denied> {
        let Some((_, left)) = &mut self.read else {
            let view = match self.view.next(got)? {
                Next::Read(read) => return Ok(Next::Read(read)),
                Next::Ready(view) => view,
            };
            let mut left: Vec<TemplateId> = view.templates().into_iter().cloned().collect();
            left.reverse();
            self.read = Some((view, left));
            return self.next(None);
        };
        match got {
            None => {}
            Some(Got::Template(r)) => {
                let template = &r.value.template;
                self.policies
                    .insert(template.id().clone(), *template.refund());
            }
            Some(_) => return unexpected("read template"),
        }
        match left.pop() {
            Some(t) => Ok(Next::Read(Read::Template(t))),
            None => match self.read.take() {
                Some((view, _)) => Ok(Next::Ready((view, std::mem::take(&mut self.policies)))),
                None => unexpected("read template"),
            },
        }
    }
}

/// A fingerprint of an order step: who acted and what was asked, in the fixed text form of
/// [`text::step`](super::text::step).
pub(crate) fn fingerprint(step: &str, by: &Actor, refund: Option<&RefundRequest>) -> u64 {
    super::text::step(step, by, refund).fingerprint()
}

fn step_receipt(order: &OrderId, step: &str, fingerprint: u64, refund: Option<usize>) -> Receipt {
    Receipt::OrderStep {
        order: order.clone(),
        step: step.to_owned(),
        fingerprint,
        refund,
    }
}

/// The head of an order step's plan: its receipt (when it has a key) and the order record.
fn head<T>(answer: T, key: Option<(&ReceiptKey, Receipt)>, order: &Order, version: u64) -> Plan<T> {
    let mut plan = Plan::new(answer);
    if let Some((key, receipt)) = key {
        plan.push(
            Op::InsertReceipt {
                key: key.clone(),
                receipt,
            },
            On::Replay,
        );
    }
    plan.push(
        Op::PutOrder {
            order: Box::new(order.clone()),
            expect: Expect::Version(version),
        },
        On::Retry,
    );
    plan
}

/// Gives back the use a returned coupon counted.
fn give_back_uses<T>(plan: &mut Plan<T>, uses: BTreeMap<(TemplateId, UserId), i64>) {
    for ((t, u), delta) in uses {
        plan.push(
            Op::Count {
                key: CounterKey::UserUses(t, u),
                delta,
                limit: None,
            },
            On::Retry,
        );
    }
}

/// Pure: pay the order read in `view`.
pub(crate) fn plan_pay(
    view: &View,
    by: &Actor,
    key: &ReceiptKey,
    fp: u64,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Settlement>, LifecycleError> {
    let order = &view.order.value;
    by.check(OrderAction::Pay, &order.buyer, order.id.as_str())?;
    if order.is_paid() || matches!(order.state, OrderState::Refunded { .. }) {
        return Ok(Step::Done(settlement(order, true)));
    }
    let next = order.pay(by, now, tolerance)?;
    let at = next.updated_at;
    let receipt = step_receipt(&order.id, OP_PAY, fp, None);
    let mut plan = head(
        settlement(&next, false),
        Some((key, receipt)),
        &next,
        view.order.version,
    );
    plan.push(
        Op::Hold {
            order: order.id.clone(),
            until: None,
        },
        On::Retry,
    );
    for c in &view.coupons {
        let used = c.value.redeem(&order.id, at)?;
        let saving = order
            .quote
            .applied
            .iter()
            .find(|a| matches!(&a.offer, crate::checkout::OfferId::Coupon(id) if id == &used.id))
            .map_or_else(
                || crate::money::Money::zero(order.quote.currency),
                |a| a.saving,
            );
        plan.emit(
            at,
            EventKind::Redeemed {
                coupon: CouponFacts::of(&used),
                order: order.id.clone(),
                saving,
            },
        );
        plan.push(
            Op::PutCoupon {
                coupon: used,
                expect: Expect::Version(c.version),
            },
            On::Retry,
        );
    }
    plan.emit(
        at,
        EventKind::OrderPaid {
            order: order.id.clone(),
            user: order.buyer.clone(),
            gross: order.quote.total_before,
            discount: order.quote.saving,
            coupons: u32::try_from(order.coupons.len()).unwrap_or(u32::MAX),
        },
    );
    Ok(Step::Commit(plan))
}

/// Pure: release the unpaid order read in `view` (cancelled, or its hold ran out).
pub(crate) fn plan_release(
    view: &View,
    by: &Actor,
    cause: ReleaseCause,
    key: Option<(&ReceiptKey, u64)>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Settlement>, LifecycleError> {
    let order = &view.order.value;
    by.check(OrderAction::Cancel, &order.buyer, order.id.as_str())?;
    if matches!(order.state, OrderState::Released { .. }) {
        return Ok(Step::Done(settlement(order, true)));
    }
    let next = order.release(by, cause, now, tolerance)?;
    let at = next.updated_at;
    let key = key.map(|(k, fp)| (k, step_receipt(&order.id, OP_CANCEL, fp, None)));
    let mut plan = head(settlement(&next, false), key, &next, view.order.version);
    plan.push(
        Op::Hold {
            order: order.id.clone(),
            until: None,
        },
        On::Retry,
    );
    let mut uses = BTreeMap::new();
    for c in &view.coupons {
        let back = c.value.release(&order.id, at)?;
        *uses
            .entry((back.template.clone(), back.owner.clone()))
            .or_insert(0) -= 1;
        plan.emit(
            at,
            EventKind::Released {
                coupon: CouponFacts::of(&back),
                order: order.id.clone(),
            },
        );
        plan.push(
            Op::PutCoupon {
                coupon: back,
                expect: Expect::Version(c.version),
            },
            On::Retry,
        );
    }
    give_back_uses(&mut plan, uses);
    for t in &order.code_templates {
        for key in [
            CounterKey::CodeUses(t.clone()),
            CounterKey::CodeUserUses(t.clone(), order.buyer.clone()),
        ] {
            plan.push(
                Op::Count {
                    key,
                    delta: -1,
                    limit: None,
                },
                On::Retry,
            );
        }
    }
    plan.emit(
        at,
        EventKind::OrderReleased {
            order: order.id.clone(),
            user: order.buyer.clone(),
        },
    );
    Ok(Step::Commit(plan))
}

/// Pure: mark the paid order read in `view` completed.
pub(crate) fn plan_complete(
    view: &View,
    by: &Actor,
    key: &ReceiptKey,
    fp: u64,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Settlement>, LifecycleError> {
    let order = &view.order.value;
    by.check(OrderAction::Complete, &order.buyer, order.id.as_str())?;
    if matches!(order.state, OrderState::Completed { .. }) {
        return Ok(Step::Done(settlement(order, true)));
    }
    let next = order.complete(by, now, tolerance)?;
    let receipt = step_receipt(&order.id, OP_COMPLETE, fp, None);
    Ok(Step::Commit(head(
        settlement(&next, false),
        Some((key, receipt)),
        &next,
        view.order.version,
    )))
}

/// What coupon `id` saved in the order's quote, as locked.
fn saving_in(order: &Order, id: &CouponId) -> Option<Money> {
    order.quote.applied.iter().find_map(|a| match &a.offer {
        crate::checkout::OfferId::Coupon(c) if c == id => Some(a.saving),
        _ => None,
    })
}

/// Pure: refund what `request` names of the order read in `view`; `policies` holds the
/// refund policy of each of its coupons' templates.
pub(crate) fn plan_refund(
    view: &View,
    policies: &HashMap<TemplateId, RefundPolicy>,
    by: &Actor,
    request: &RefundRequest,
    (key, fp): (&ReceiptKey, u64),
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Refunded>, LifecycleError> {
    let order = &view.order.value;
    let coupons: HashMap<&CouponId, &Versioned<Coupon>> =
        view.coupons.iter().map(|c| (&c.value.id, c)).collect();
    let returns = |id: &CouponId| {
        coupons.get(id).is_some_and(|c| {
            let policy = policies.get(&c.value.template).copied().unwrap_or_default();
            request.kind.returns_coupon(&policy)
        })
    };
    let (next, refund) = order.refund(by, request, now, tolerance, &returns)?;
    let at = refund.at;
    let index = next.refunds.len().saturating_sub(1);
    let receipt = step_receipt(&order.id, OP_REFUND, fp, Some(index));
    let answer = Refunded {
        order: order.id.clone(),
        returned: refund.returned.clone(),
        voided: refund.voided.clone(),
        state: next.state.clone(),
        refund: refund.clone(),
        replayed: false,
    };
    let mut plan = head(answer, Some((key, receipt)), &next, view.order.version);
    let mut uses = BTreeMap::new();
    for id in refund.returned.iter().chain(&refund.voided) {
        let Some(c) = coupons.get(id) else { continue };
        let policy = policies.get(&c.value.template).copied().unwrap_or_default();
        let after = c.value.refund(&order.id, request.kind, &policy, at)?;
        let returned = !matches!(after.state, CouponState::Voided { .. });
        if returned {
            *uses
                .entry((after.template.clone(), after.owner.clone()))
                .or_insert(0) -= 1;
        }
        let saving = saving_in(order, id);
        plan.emit(
            at,
            EventKind::Refunded {
                coupon: CouponFacts::of(&after),
                order: order.id.clone(),
                returned,
                saving,
            },
        );
        plan.push(
            Op::PutCoupon {
                coupon: after,
                expect: Expect::Version(c.version),
            },
            On::Retry,
        );
    }
    give_back_uses(&mut plan, uses);
    let held = view
        .coupons
        .iter()
        .map(|c| OrderCoupon {
            coupon: CouponFacts::of(&c.value),
            saving: saving_in(order, &c.value.id)
                .unwrap_or_else(|| Money::zero(order.quote.currency)),
        })
        .collect();
    plan.emit(
        at,
        EventKind::OrderRefunded {
            order: order.id.clone(),
            user: order.buyer.clone(),
            by_merchant: matches!(request.kind, crate::lifecycle::RefundKind::Merchant),
            amount: refund.amount,
            discount: refund.discount,
            whole: matches!(next.state, OrderState::Refunded { .. }),
            coupons: held,
        },
    );
    Ok(Step::Commit(plan))
}

/// An order step whose answer is a [`Settlement`]: one row of the table behind the
/// service's `pay`, `cancel` and `complete`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settle {
    /// [`plan_pay`].
    Pay,
    /// [`plan_release`], cancelled by `by`.
    Cancel,
    /// [`plan_complete`].
    Complete,
}

impl Settle {
    /// The receipt operation.
    pub(crate) fn operation(self) -> &'static str {
        match self {
            Settle::Pay => OP_PAY,
            Settle::Cancel => OP_CANCEL,
            Settle::Complete => OP_COMPLETE,
        }
    }
}

/// Pure: the plan of `step` on the order read in `view`.
///
/// # Errors
/// The step's refusal.
pub(crate) fn plan_settle(
    step: Settle,
    view: &View,
    by: &Actor,
    (key, fp): (&ReceiptKey, u64),
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Settlement>, LifecycleError> {
    match step {
        Settle::Pay => plan_pay(view, by, key, fp, now, tolerance),
        Settle::Cancel => {
            let cause = ReleaseCause::Cancelled;
            plan_release(view, by, cause, Some((key, fp)), now, tolerance)
        }
        Settle::Complete => plan_complete(view, by, key, fp, now, tolerance),
    }
}

/// Pure: release the order read in `view` for the sweep when it is still placed and its
/// hold ran out by `now`; the answer says whether it was released.
///
/// # Errors
/// [`plan_release`]'s refusal.
pub(crate) fn plan_hold_ran_out(
    view: &View,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<bool>, LifecycleError> {
    let order = &view.order.value;
    let due = order.hold_until.is_some_and(|u| u <= now);
    if !due || order.state != OrderState::Placed {
        return Ok(Step::Done(false));
    }
    let cause = ReleaseCause::HoldRanOut;
    Ok(
        match plan_release(view, &Actor::System, cause, None, now, tolerance)? {
            Step::Commit(plan) => Step::Commit(plan.answer(true)),
            Step::Done(_) => Step::Done(false),
        },
    )
}

/// Pure: what a sweep found due — the Available coupons to expire, each with its plan, and
/// the orders (once each, in the order found) whose hold ran out: those holding coupons
/// locked until `now` or earlier, then those holding promo-code uses (`held`).
pub(crate) fn sweep_due(
    due: Vec<Versioned<Coupon>>,
    held: Vec<OrderId>,
    now: DateTime<Utc>,
) -> (Vec<(CouponId, Plan<()>)>, Vec<OrderId>) {
    let (mut expire, mut orders) = (Vec::new(), Vec::<OrderId>::new());
    for c in due {
        match &c.value.state {
            CouponState::Available => {
                if let Some(plan) = plan_expire(&c, now) {
                    expire.push((c.value.id.clone(), plan));
                }
            }
            CouponState::Locked { order, until } if *until <= now && !orders.contains(order) => {
                orders.push(order.clone());
            }
            _ => {}
        }
    }
    for order in held {
        if !orders.contains(&order) {
            orders.push(order);
        }
    }
    (expire, orders)
}

pub(crate) fn settlement(order: &Order, replayed: bool) -> Settlement {
    Settlement {
        order: order.id.clone(),
        coupons: order.coupons.clone(),
        state: order.state.clone(),
        replayed,
    }
}

/// An order step's replay as reads: the receipt under its key — this request's when it names
/// the same order, step and fingerprint `fp` — then the order as it is now, which
/// `replayed` turns into the answer (with the refund's index, for a refund).
///
/// # Errors
/// [`LifecycleError::KeyReused`] when the key was used for another request.
pub(crate) fn step_replay<'a, T>(
    (operation, key, order, fp): (&'static str, &'a IdempotencyKey, &'a OrderId, u64),
    replayed: impl Fn(&Order, Option<usize>) -> Option<T> + 'a,
) -> impl Reads<Out = Option<T>> + 'a {
    let mut index = None;
    Steps::new(Read::Receipt(op_key(operation, key)), move |got| {
        Ok(match got {
            Got::Receipt(_, None) => Next::Ready(None),
            Got::Receipt(
                _,
                Some(Receipt::OrderStep {
                    order: o,
                    step,
                    fingerprint,
                    refund,
                }),
            ) if &o == order && step == operation && fingerprint == fp => {
                index = refund;
                Next::Read(Read::Order(o))
            }
            Got::Receipt(..) => return Err(key_reused(key, operation).into()),
            Got::Order(o) => Next::Ready(replayed(&o.value, index)),
            _ => return unexpected("replay order step"),
        })
    })
}

/// A void's replay as reads: its receipt, which must name `coupon`, then the coupon as it is
/// now.
///
/// # Errors
/// [`LifecycleError::KeyReused`] when the key was used for another request.
pub(crate) fn void_replay<'a>(
    coupon: &'a CouponId,
    key: &'a IdempotencyKey,
) -> impl Reads<Out = Option<Coupon>> + 'a {
    Steps::new(Read::Receipt(op_key(OP_VOID, key)), move |got| {
        Ok(match got {
            Got::Receipt(_, None) => Next::Ready(None),
            Got::Receipt(_, Some(Receipt::Voided { coupon: c })) if &c == coupon => {
                Next::Read(Read::Coupons(vec![c]))
            }
            Got::Receipt(..) => return Err(key_reused(key, OP_VOID).into()),
            Got::Coupons(mut c) => Next::Ready(c.pop().map(|c| c.value)),
            _ => return unexpected("replay void"),
        })
    })
}

/// The answer to a replayed refund: refund `index` of the order as it is now.
pub(crate) fn refunded(order: &Order, index: usize) -> Option<Refunded> {
    let refund = order.refunds.get(index).cloned()?;
    Some(Refunded {
        order: order.id.clone(),
        returned: refund.returned.clone(),
        voided: refund.voided.clone(),
        refund,
        state: order.state.clone(),
        replayed: true,
    })
}

/// Pure: void the coupon read (`coupon` at `version`) for `by`.
///
/// # Errors
/// [`LifecycleError::NotPermitted`], [`LifecycleError::ClockBehind`],
/// [`LifecycleError::IllegalCouponTransition`].
pub(crate) fn plan_void(
    c: &Versioned<Coupon>,
    by: &Actor,
    key: &ReceiptKey,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<Step<Coupon>, LifecycleError> {
    let coupon = &c.value.id;
    by.check(OrderAction::Void, &c.value.owner, coupon.as_str())?;
    let at = crate::lifecycle::clock(coupon.as_str(), c.value.claimed_at, now, tolerance)?;
    let next = c.value.void(at)?;
    let mut plan = Plan::new(next.clone());
    plan.push(
        Op::InsertReceipt {
            key: key.clone(),
            receipt: Receipt::Voided {
                coupon: coupon.clone(),
            },
        },
        On::Replay,
    );
    plan.emit(
        at,
        EventKind::Voided {
            coupon: CouponFacts::of(&next),
        },
    );
    plan.push(
        Op::PutCoupon {
            coupon: next,
            expect: Expect::Version(c.version),
        },
        On::Retry,
    );
    Ok(Step::Commit(plan))
}

/// Pure: expire the Available coupon read, or `None` when it is not due.
pub(crate) fn plan_expire(c: &Versioned<Coupon>, now: DateTime<Utc>) -> Option<Plan<()>> {
    let next = c.value.expire(now).ok()?;
    let mut plan = Plan::new(());
    plan.emit(
        now,
        EventKind::Expired {
            coupon: CouponFacts::of(&next),
        },
    );
    plan.push(
        Op::PutCoupon {
            coupon: next,
            expect: Expect::Version(c.version),
        },
        On::Retry,
    );
    Some(plan)
}
