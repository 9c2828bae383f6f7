//! Paying, cancelling, completing and refunding orders; voiding coupons; the sweep.
//!
//! Each operation reads the order record and its coupons, calls a pure plan below, and hands
//! it to the [runner](super::runner). The plans take the acting party and `now`; the order's
//! own transitions ([`Order::pay`], [`Order::refund`]…) decide what is allowed.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};

use super::runner::{On, Plan, Step};
use super::{Res, Service, ServiceError, fnv, op_key};
use crate::events::{CouponFacts, EventKind};
use crate::id::{CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{
    Actor, Coupon, CouponState, LifecycleError, Order, OrderAction, OrderRefund, OrderState,
    RefundRequest, ReleaseCause,
};
use crate::repository::{CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, Versioned};
use crate::rule::RefundPolicy;
use crate::time;

const OP_PAY: &str = "pay";
const OP_CANCEL: &str = "cancel";
const OP_COMPLETE: &str = "complete";
const OP_REFUND: &str = "refund";
const OP_VOID: &str = "void";

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

/// What a [`sweep`](Service::sweep) did.
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
struct View {
    order: Versioned<Order>,
    coupons: Vec<Versioned<Coupon>>,
}

/// A fingerprint of an order step: who acted and what was asked, in a fixed text form.
fn fingerprint(step: &str, by: &Actor, detail: &str) -> u64 {
    let mut text = String::new();
    let _ = write!(text, "step={step}|by={by:?}|{detail}");
    fnv(&[&text], 0)
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
fn plan_pay(
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
fn plan_release(
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
fn plan_complete(
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

/// Pure: refund what `request` names of the order read in `view`; `policies` holds the
/// refund policy of each of its coupons' templates.
fn plan_refund(
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
        let saving = order.quote.applied.iter().find_map(|a| match &a.offer {
            crate::checkout::OfferId::Coupon(c) if c == id => Some(a.saving),
            _ => None,
        });
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
    plan.emit(
        at,
        EventKind::OrderRefunded {
            order: order.id.clone(),
            user: order.buyer.clone(),
            by_merchant: matches!(request.kind, crate::lifecycle::RefundKind::Merchant),
            amount: refund.amount,
            discount: refund.discount,
            whole: matches!(next.state, OrderState::Refunded { .. }),
        },
    );
    Ok(Step::Commit(plan))
}

fn settlement(order: &Order, replayed: bool) -> Settlement {
    Settlement {
        order: order.id.clone(),
        coupons: order.coupons.clone(),
        state: order.state.clone(),
        replayed,
    }
}

impl<R: Repository> Service<R> {
    /// An order record: its quote as locked, its coupons and codes, its state and refunds.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; the store's failure.
    pub fn order(&self, id: &OrderId) -> Res<Order, R> {
        Ok(self.order_record(id)?.value)
    }

    fn order_record(&self, id: &OrderId) -> Res<Versioned<Order>, R> {
        self.repo
            .order(id)
            .map_err(ServiceError::Repository)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "order",
                id: id.to_string(),
            })
    }

    /// The order and its coupons as of one instant: the order is read again after its
    /// coupons, and the pair is taken only if the order did not change in between. Every write
    /// that moves an order's coupons also writes the order, so an unchanged order version
    /// means the coupons read belong to that version (a cancel committed between the two
    /// reads would otherwise show a pay an order still placed with its coupon already back).
    fn view(&self, id: &OrderId) -> Res<View, R> {
        let mut order = self.order_record(id)?;
        for _ in 0..self.attempts() {
            let found = self
                .repo
                .coupons(&order.value.coupons)
                .map_err(ServiceError::Repository)?;
            let mut coupons = Vec::with_capacity(found.len());
            for (c, id) in found.into_iter().zip(&order.value.coupons) {
                coupons.push(c.ok_or_else(|| ServiceError::NotFound {
                    what: "coupon",
                    id: id.to_string(),
                })?);
            }
            if order.value.coupons.is_empty() {
                return Ok(View { order, coupons });
            }
            let again = self.order_record(id)?;
            if again.version == order.version {
                return Ok(View { order, coupons });
            }
            order = again;
        }
        self.contention("read order")
    }

    /// The first outcome of an order step under `key`, read from the order it names.
    fn replay_step(
        &self,
        key: &ReceiptKey,
        request_key: &IdempotencyKey,
        operation: &'static str,
        order: &OrderId,
        fp: u64,
    ) -> Res<Option<(Order, Option<usize>)>, R> {
        match self.receipt(key)? {
            None => Ok(None),
            Some(Receipt::OrderStep {
                order: o,
                step,
                fingerprint,
                refund,
            }) if &o == order && step == operation && fingerprint == fp => {
                Ok(Some((self.order_record(order)?.value, refund)))
            }
            Some(_) => Err(self.key_reused(request_key, operation)),
        }
    }

    fn replay_settlement(
        &self,
        key: &ReceiptKey,
        request_key: &IdempotencyKey,
        operation: &'static str,
        order: &OrderId,
        fp: u64,
    ) -> Res<Option<Settlement>, R> {
        Ok(self
            .replay_step(key, request_key, operation, order, fp)?
            .map(|(o, _)| settlement(&o, true)))
    }

    /// One order step whose answer is a [`Settlement`] (pay, cancel, complete): its key and
    /// fingerprint, the order read as of one version, `plan`, and the replay from its receipt.
    fn settle_step(
        &self,
        op: &'static str,
        order: &OrderId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        plan: impl Fn(
            &View,
            &ReceiptKey,
            u64,
            DateTime<Utc>,
            Duration,
        ) -> Result<Step<Settlement>, LifecycleError>,
    ) -> Res<Settlement, R> {
        let now = time::check("now", now)?;
        let key_r = op_key(op, key);
        let fp = fingerprint(op, by, "");
        self.run(
            op,
            || self.replay_settlement(&key_r, key, op, order, fp),
            || {
                Ok(plan(
                    &self.view(order)?,
                    &key_r,
                    fp,
                    now,
                    self.config.clock_skew,
                )?)
            },
        )
    }

    /// The order was paid: its held coupons become Used. Only the merchant or the system
    /// confirms payment (see [`Actor::permits`]). Paying after the hold ran out but before a
    /// sweep released the order works while the coupons are still inside their validity (see
    /// [`Coupon::redeem`]). Paying a paid order answers `replayed: true` and redeems nothing
    /// twice.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an order that never locked;
    /// [`LifecycleError::NotPermitted`]; [`LifecycleError::ClockBehind`];
    /// [`LifecycleError::OrderReleased`] when it was cancelled or swept first;
    /// [`LifecycleError::HoldRanOut`]; [`LifecycleError::KeyReused`];
    /// [`ServiceError::Contention`]; the store's failure.
    pub fn pay(
        &self,
        order: &OrderId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Settlement, R> {
        self.settle_step(OP_PAY, order, by, key, now, |view, key_r, fp, now, skew| {
            plan_pay(view, by, key_r, fp, now, skew)
        })
    }

    /// The unpaid order was cancelled: its held coupons go back to the wallet (Expired when
    /// their validity has passed), and the uses and promo-code uses it counted are given back.
    /// Cancelling a released order answers `replayed: true`.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an order that never locked;
    /// [`LifecycleError::NotPermitted`]; [`LifecycleError::ClockBehind`];
    /// [`LifecycleError::OrderPaid`] when it was paid first; [`LifecycleError::KeyReused`];
    /// [`ServiceError::Contention`]; the store's failure.
    pub fn cancel(
        &self,
        order: &OrderId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Settlement, R> {
        self.settle_step(
            OP_CANCEL,
            order,
            by,
            key,
            now,
            |view, key_r, fp, now, skew| {
                plan_release(
                    view,
                    by,
                    ReleaseCause::Cancelled,
                    Some((key_r, fp)),
                    now,
                    skew,
                )
            },
        )
    }

    /// The paid order was completed (delivered, accepted). Its coupons stay used; refunds
    /// remain possible.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`LifecycleError::NotPermitted`];
    /// [`LifecycleError::ClockBehind`]; [`LifecycleError::IllegalOrderTransition`] unless
    /// paid; [`LifecycleError::KeyReused`]; [`ServiceError::Contention`]; the store's failure.
    pub fn complete(
        &self,
        order: &OrderId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Settlement, R> {
        self.settle_step(
            OP_COMPLETE,
            order,
            by,
            key,
            now,
            |view, key_r, fp, now, skew| plan_complete(view, by, key_r, fp, now, skew),
        )
    }

    /// A paid order is refunded, in part or in whole ([`RefundRequest`]). The amounts are
    /// exact to the minor unit and successive partial refunds sum to the order's amounts (see
    /// [`Order::refund`]). A coupon is settled by the refund that refunds the last unit it
    /// discounted: it then returns to the wallet (its use given back) or is voided, as its
    /// template's [`RefundPolicy`] says for the request's
    /// [`RefundKind`](crate::lifecycle::RefundKind). Repeating a refund with the same key
    /// returns it as recorded and refunds nothing twice.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`LifecycleError::NotPermitted`];
    /// [`LifecycleError::ClockBehind`]; [`LifecycleError::OrderNotPaid`];
    /// [`LifecycleError::OrderAlreadyRefunded`] when nothing is left;
    /// [`LifecycleError::InvalidRefund`]; [`LifecycleError::KeyReused`];
    /// [`ServiceError::Contention`]; the store's failure.
    pub fn refund(
        &self,
        order: &OrderId,
        by: &Actor,
        request: &RefundRequest,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Refunded, R> {
        let now = time::check("now", now)?;
        let key_r = op_key(OP_REFUND, key);
        let fp = fingerprint(OP_REFUND, by, &format!("{request:?}"));
        let replay = || -> Res<Option<Refunded>, R> {
            let Some((o, Some(i))) = self.replay_step(&key_r, key, OP_REFUND, order, fp)? else {
                return Ok(None);
            };
            let Some(refund) = o.refunds.get(i).cloned() else {
                return Ok(None);
            };
            Ok(Some(Refunded {
                order: o.id.clone(),
                returned: refund.returned.clone(),
                voided: refund.voided.clone(),
                refund,
                state: o.state.clone(),
                replayed: true,
            }))
        };
        self.run(OP_REFUND, replay, || {
            let view = self.view(order)?;
            let mut policies = HashMap::new();
            for c in &view.coupons {
                if !policies.contains_key(&c.value.template) {
                    let record = self.template_record(&c.value.template)?;
                    policies.insert(c.value.template.clone(), *record.value.template.refund());
                }
            }
            Ok(plan_refund(
                &view,
                &policies,
                by,
                request,
                (&key_r, fp),
                now,
                self.config.clock_skew,
            )?)
        })
    }

    /// Applies up to `limit` time-driven transitions due at `now`: Available coupons past their
    /// validity become Expired, and unpaid orders whose hold ran out are released by the
    /// system (as by [`cancel`](Self::cancel): coupons back to the wallet, coupon and
    /// promo-code uses given back), whether they hold coupons, promo codes or both. `limit`
    /// bounds the coupons and the orders found, each. A coupon or order changed concurrently is
    /// left for the next sweep. Run it periodically until it returns an empty [`Swept`].
    ///
    /// # Errors
    /// The store's failure.
    pub fn sweep(&self, now: DateTime<Utc>, limit: usize) -> Res<Swept, R> {
        let now = time::check("now", now)?;
        let due = self
            .repo
            .due(now, limit)
            .map_err(ServiceError::Repository)?;
        let mut out = Swept::default();
        let mut orders: Vec<OrderId> = Vec::new();
        for c in due {
            match &c.value.state {
                CouponState::Available => {
                    let Ok(next) = c.value.expire(now) else {
                        continue;
                    };
                    let mut plan = Plan::new(());
                    plan.emit(
                        now,
                        EventKind::Expired {
                            coupon: CouponFacts::of(&next),
                        },
                    );
                    plan.batch.push(Op::PutCoupon {
                        coupon: next,
                        expect: Expect::Version(c.version),
                    });
                    if self.commit(&plan.batch)? == crate::repository::Commit::Applied {
                        out.expired.push(c.value.id.clone());
                    }
                }
                CouponState::Locked { order, until }
                    if *until <= now && !orders.contains(order) =>
                {
                    orders.push(order.clone());
                }
                _ => {}
            }
        }
        // Orders holding promo-code uses, with or without coupons.
        for order in self
            .repo
            .held(now, limit)
            .map_err(ServiceError::Repository)?
        {
            if !orders.contains(&order) {
                orders.push(order);
            }
        }
        for order in orders {
            let released = (|| -> Res<bool, R> {
                let view = self.view(&order)?;
                let held = view.order.value.hold_until.is_some_and(|u| u <= now);
                if !held || view.order.value.state != OrderState::Placed {
                    return Ok(false);
                }
                let step = plan_release(
                    &view,
                    &Actor::System,
                    ReleaseCause::HoldRanOut,
                    None,
                    now,
                    self.config.clock_skew,
                )?;
                Ok(match step {
                    Step::Commit(plan) => {
                        self.commit(&plan.batch)? == crate::repository::Commit::Applied
                    }
                    Step::Done(_) => false,
                })
            })();
            match released {
                Ok(true) => out.released.push(order),
                Ok(false) => {}
                Err(ServiceError::Repository(e)) => return Err(ServiceError::Repository(e)),
                Err(_) => {}
            }
        }
        Ok(out)
    }

    /// Voids an Available coupon: the merchant or the system (see [`Actor::permits`]).
    /// Repeating it with the same key returns the coupon.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`LifecycleError::NotPermitted`];
    /// [`LifecycleError::ClockBehind`] for a `now` before the coupon was issued;
    /// [`LifecycleError::IllegalCouponTransition`] unless Available;
    /// [`LifecycleError::KeyReused`]; [`ServiceError::Contention`]; the store's failure.
    pub fn void(
        &self,
        coupon: &CouponId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Coupon, R> {
        let now = time::check("now", now)?;
        let key_r = op_key(OP_VOID, key);
        let replay = || -> Res<Option<Coupon>, R> {
            match self.receipt(&key_r)? {
                Some(Receipt::Voided { coupon: c }) if &c == coupon => {
                    Ok(Some(self.coupon_record(coupon)?.value))
                }
                Some(_) => Err(self.key_reused(key, OP_VOID)),
                None => Ok(None),
            }
        };
        self.run(OP_VOID, replay, || {
            let c = self.coupon_record(coupon)?;
            by.check(OrderAction::Void, &c.value.owner, coupon.as_str())?;
            let at = crate::lifecycle::clock(
                coupon.as_str(),
                c.value.claimed_at,
                now,
                self.config.clock_skew,
            )?;
            let next = c.value.void(at)?;
            let mut plan = Plan::new(next.clone());
            plan.push(
                Op::InsertReceipt {
                    key: key_r.clone(),
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
        })
    }
}
