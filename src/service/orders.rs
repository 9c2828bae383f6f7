//! Paying, cancelling, completing and refunding orders; voiding coupons; the sweep: reads,
//! the pure plans of [`plan::order`](crate::plan::order), and the [runner](super::runner).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{Res, Service, ServiceError};
use crate::id::{CouponId, IdempotencyKey, OrderId};
use crate::lifecycle::{
    Actor, Coupon, CouponState, LifecycleError, Order, OrderState, RefundRequest, ReleaseCause,
};
use crate::plan::order::{
    Refunded, Settlement, Swept, View, fingerprint, plan_complete, plan_expire, plan_pay,
    plan_refund, plan_release, plan_void, refunded, replayed_step, settlement,
};
use crate::plan::{OP_CANCEL, OP_COMPLETE, OP_PAY, OP_REFUND, OP_VOID, Step, key_reused, op_key};
use crate::repository::{Receipt, ReceiptKey, Repository, Versioned};
#[cfg(doc)]
use crate::rule::RefundPolicy;
use crate::time;

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
        match replayed_step(self.receipt(key)?, request_key, operation, order, fp)? {
            None => Ok(None),
            Some(refund) => Ok(Some((self.order_record(order)?.value, refund))),
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
        let fp = fingerprint(op, by, None);
        self.run(
            op,
            || self.replay_settlement(&key_r, key, op, order, fp),
            |_| {
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
        let fp = fingerprint(OP_REFUND, by, Some(request));
        let replay = || -> Res<Option<Refunded>, R> {
            let Some((o, Some(i))) = self.replay_step(&key_r, key, OP_REFUND, order, fp)? else {
                return Ok(None);
            };
            Ok(refunded(&o, i))
        };
        self.run(OP_REFUND, replay, |_| {
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
                    let Some(plan) = plan_expire(&c, now) else {
                        continue;
                    };
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
                Some(_) => Err(key_reused(key, OP_VOID).into()),
                None => Ok(None),
            }
        };
        self.run(OP_VOID, replay, |_| {
            let c = self.coupon_record(coupon)?;
            Ok(plan_void(&c, by, &key_r, now, self.config.clock_skew)?)
        })
    }
}
