//! Paying, cancelling, completing and refunding orders; voiding coupons; the sweep: reads,
//! the pure plans of [`plan::order`](crate::plan::order), and the [runner](super::runner).

use chrono::{DateTime, Duration, Utc};

use super::{Res, Service, ServiceError, found, store};
use crate::id::{CouponId, IdempotencyKey, OrderId};
use crate::lifecycle::{Actor, Coupon, LifecycleError, Order, RefundRequest};
use crate::plan::order::{
    RefundRead, Refunded, Settle, Settlement, Swept, ViewRead, fingerprint, plan_hold_ran_out,
    plan_refund, plan_settle, plan_void, refunded, settlement, step_replay, sweep_due, void_replay,
};
use crate::plan::read::{Reads, no_replay};
use crate::plan::{OP_REFUND, OP_VOID, Step, op_key};
use crate::repository::{Commit, ReceiptKey, Repository, Versioned};
#[cfg(doc)]
use crate::rule::RefundPolicy;
use crate::time;

/// The public settling steps, each one [`Settle`] through `Service::settle`.
macro_rules! settle_steps {
    ($($(#[$doc:meta])* $name:ident => $step:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(&self, order: &OrderId, by: &Actor, key: &IdempotencyKey, now: DateTime<Utc>)
            -> Res<Settlement, R> {
            self.settle(Settle::$step, order, by, key, now)
        }
    )*};
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
        found(self.repo.order(id), "order", id)
    }

    /// One order step (pay, cancel, complete, refund), table-driven: its key and fingerprint
    /// (of who acted and, for a refund, what was asked), the order read as of one version and
    /// its `plan`; the replay answers from the order the receipt names, as it is now (with the
    /// refund's index, for a refund).
    fn order_step<T, M: Reads>(
        &self,
        (op, order, by, refund): (&'static str, &OrderId, &Actor, Option<&RefundRequest>),
        key: &IdempotencyKey,
        (replayed, read): (impl Fn(&Order, Option<usize>) -> Option<T>, impl Fn() -> M),
        plan: impl Fn(M::Out, (&ReceiptKey, u64), Duration) -> Result<Step<T>, LifecycleError>,
    ) -> Res<T, R> {
        let (key_r, fp) = (op_key(op, key), fingerprint(op, by, refund));
        let replay = || step_replay((op, key, order, fp), &replayed);
        let skew = self.config.clock_skew;
        self.run(op, replay, |_| {
            Ok(plan(self.drive(read())?, (&key_r, fp), skew)?)
        })
    }

    /// [`order_step`](Self::order_step) for a step whose answer is a [`Settlement`], table-driven
    /// ([`Settle`]).
    fn settle(
        &self,
        step: Settle,
        order: &OrderId,
        by: &Actor,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Res<Settlement, R> {
        let now = time::check("now", now)?;
        let replayed = |o: &Order, _| Some(settlement(o, true));
        let read = || ViewRead::new(order, self.attempts());
        self.order_step(
            (step.operation(), order, by, None),
            key,
            (replayed, read),
            |v, k, skew| plan_settle(step, &v, by, k, now, skew),
        )
    }

    settle_steps! {
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
        pay => Pay;

        /// The unpaid order was cancelled: its held coupons go back to the wallet (Expired when
        /// their validity has passed), and the uses and promo-code uses it counted are given back.
        /// Cancelling a released order answers `replayed: true`.
        ///
        /// # Errors
        /// [`ServiceError::NotFound`] for an order that never locked;
        /// [`LifecycleError::NotPermitted`]; [`LifecycleError::ClockBehind`];
        /// [`LifecycleError::OrderPaid`] when it was paid first; [`LifecycleError::KeyReused`];
        /// [`ServiceError::Contention`]; the store's failure.
        cancel => Cancel;

        /// The paid order was completed (delivered, accepted). Its coupons stay used; refunds
        /// remain possible.
        ///
        /// # Errors
        /// [`ServiceError::NotFound`]; [`LifecycleError::NotPermitted`];
        /// [`LifecycleError::ClockBehind`]; [`LifecycleError::IllegalOrderTransition`] unless
        /// paid; [`LifecycleError::KeyReused`]; [`ServiceError::Contention`]; the store's failure.
        complete => Complete;
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
        let replayed = |o: &Order, index: Option<usize>| refunded(o, index?);
        let step = (OP_REFUND, order, by, Some(request));
        let read = || RefundRead::new(order, self.attempts());
        self.order_step(step, key, (replayed, read), |(view, policies), k, skew| {
            plan_refund(&view, &policies, by, request, k, now, skew)
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
        let due = store(self.repo.due(now, limit))?;
        let (expire, orders) = sweep_due(due, store(self.repo.held(now, limit))?, now);
        let mut out = Swept::default();
        for (coupon, plan) in expire {
            if self.commit(&plan.batch)? == Commit::Applied {
                out.expired.push(coupon);
            }
        }
        let (skew, tries) = (self.config.clock_skew, self.attempts());
        for order in orders {
            // One attempt: a conflict leaves the order for the next sweep.
            let released = self.run("sweep", no_replay, |attempt| match attempt.number {
                0 => {
                    let view = self.drive(ViewRead::new(&order, tries))?;
                    Ok(plan_hold_ran_out(&view, now, skew)?)
                }
                _ => Ok(Step::Done(false)),
            });
            match released {
                Ok(true) => out.released.push(order),
                Err(ServiceError::Repository(e)) => return Err(ServiceError::Repository(e)),
                Ok(false) | Err(_) => {}
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
        let replay = || void_replay(coupon, key);
        self.run(OP_VOID, replay, |_| {
            let c = self.coupon_record(coupon)?;
            Ok(plan_void(&c, by, &key_r, now, self.config.clock_skew)?)
        })
    }
}
