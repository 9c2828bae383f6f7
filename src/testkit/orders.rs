//! Order records: conditional writes, and partial refunds, acting parties and clocks through
//! the service.

use chrono::Duration;

use super::{
    Failure, LimitsSpec, THREADS, active, channel, count, fail, key, oid, ok, some, t0, template,
    uid,
};
use crate::cart::{Buyer, Cart, CartLine};
use crate::checkout::{Checkout, StackingPolicy};
use crate::id::Sku;
use crate::lifecycle::{
    Actor, ClaimMode, ClaimRequest, CouponState, LifecycleError, Order, OrderState, RefundKind,
    RefundRequest, RefundUnits,
};
use crate::money::{Currency, Money};
use crate::repository::{Batch, Commit, CounterKey, Expect, Op, Repository};
use crate::service::{LockRequest, Service, ServiceError};

fn odd_cart(check: &'static str) -> Result<Cart, Failure> {
    ok(
        check,
        "cart",
        Cart::new(
            Currency::CNY,
            vec![
                CartLine::new(
                    ok(check, "sku", Sku::new("tea"))?,
                    Money::from_minor(3333, Currency::CNY),
                    3,
                ),
                CartLine::new(
                    ok(check, "sku", Sku::new("cup"))?,
                    Money::from_minor(1001, Currency::CNY),
                    1,
                ),
            ],
            Money::from_minor(600, Currency::CNY),
        ),
    )
}

/// [`Op::PutOrder`]: [`Expect::Absent`] inserts at version 1 and refuses an existing order;
/// [`Expect::Version`] replaces only at that version and adds one; a batch whose other op
/// fails leaves the order as it was; [`Repository::order`] returns exactly what was written
/// (the quote with its shares, the state, the refunds).
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn order_records_are_conditional<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "order_records_are_conditional";
    let now = t0(C)?;
    let buyer = Buyer::new(uid(C, "alice")?, channel(C)?);
    let cart = odd_cart(C)?;
    let quote = ok(
        C,
        "quote",
        Checkout::new(&cart, &buyer, now, &StackingPolicy::default()).best(),
    )?;
    let id = oid(C, "o-1")?;
    let placed = Order::place(id.clone(), &buyer, quote, Vec::new(), Vec::new(), None, now);
    let put = |order: &Order, expect| Op::PutOrder {
        order: Box::new(order.clone()),
        expect,
    };
    let commit = |ops: Vec<Op>| ok(C, "commit", store.commit(&Batch { ops }));
    let read = || ok(C, "read order", store.order(&id));
    if read()?.is_some() {
        return Err(fail(C, "an order never written reads back as present"));
    }
    if commit(vec![put(&placed, Expect::Absent)])? != Commit::Applied {
        return Err(fail(C, "inserting a new order conflicted"));
    }
    let v1 = some(C, "order after insert", read()?)?;
    if v1.version != 1 || v1.value != placed {
        return Err(fail(
            C,
            format!(
                "after insert: version {} (want 1), same record: {}",
                v1.version,
                v1.value == placed
            ),
        ));
    }
    if commit(vec![put(&placed, Expect::Absent)])? != (Commit::Conflict { index: 0 }) {
        return Err(fail(
            C,
            "a second insert of one order id did not conflict at op 0",
        ));
    }
    let paid = ok(
        C,
        "pay",
        placed.pay(&Actor::System, now + Duration::minutes(1), Duration::zero()),
    )?;
    if commit(vec![put(&paid, Expect::Version(1))])? != Commit::Applied {
        return Err(fail(C, "replacing an order at its version conflicted"));
    }
    let v2 = some(C, "order after update", read()?)?;
    if v2.version != 2 || v2.value != paid {
        return Err(fail(
            C,
            format!("after update: version {} (want 2)", v2.version),
        ));
    }
    if commit(vec![put(&placed, Expect::Version(1))])? != (Commit::Conflict { index: 0 }) {
        return Err(fail(
            C,
            "replacing an order at a stale version did not conflict",
        ));
    }
    // A refund recorded in the order, in a batch that fails on its counter: nothing changes.
    let (refunded, _) = ok(
        C,
        "refund",
        paid.refund(
            &Actor::Merchant,
            &RefundRequest::units(
                RefundKind::Merchant,
                vec![RefundUnits {
                    line: 0,
                    quantity: 1,
                }],
            ),
            now + Duration::minutes(2),
            Duration::zero(),
            &|_| true,
        ),
    )?;
    let over = count(CounterKey::Custom("order-check".into()), 2, Some(1));
    if commit(vec![put(&refunded, Expect::Version(2)), over])? != (Commit::Conflict { index: 1 }) {
        return Err(fail(
            C,
            "a batch with a counter over its limit did not conflict at op 1",
        ));
    }
    if some(C, "order", read()?)?.value != paid {
        return Err(fail(C, "a refused batch changed the order record"));
    }
    if commit(vec![put(&refunded, Expect::Version(2))])? != Commit::Applied {
        return Err(fail(C, "recording a refund conflicted"));
    }
    let v3 = some(C, "order after refund", read()?)?;
    if v3.value != refunded || v3.value.refunds.len() != 1 {
        return Err(fail(C, "the refund did not read back as written"));
    }
    Ok(())
}

/// Through the [`Service`]: an order refunded unit by unit pays back exactly what was paid
/// and gives back exactly the discount, over successive partial refunds; a retried refund
/// returns the same refund and a key reused for other units is refused; a buyer may not pay,
/// nor refund another buyer's order; a `now` far behind the order's last change is refused;
/// 8 threads refunding the last unit with different keys refund it once.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn orders_refund_in_part_and_refuse_the_wrong_party<R: Repository>(
    store: R,
) -> Result<(), Failure> {
    const C: &str = "orders_refund_in_part_and_refuse_the_wrong_party";
    let now = t0(C)?;
    let service = Service::new(store);
    let t = active(C, &service, template(C, "t", LimitsSpec::default())?)?;
    let alice = uid(C, "alice")?;
    let claim = ClaimRequest::new(
        t.clone(),
        alice.clone(),
        channel(C)?,
        ClaimMode::Click,
        key(C, "claim")?,
    );
    let coupon = ok(C, "claim", service.claim(&claim, now))?.coupon;
    let buyer = Buyer::new(alice.clone(), channel(C)?);
    let cart = odd_cart(C)?;
    let order = oid(C, "o-1")?;
    let lk = key(C, "lock")?;
    let locked = ok(
        C,
        "lock",
        service.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lk), now),
    )?;
    if locked.coupons.len() != 1 {
        return Err(fail(C, "the lock did not hold the coupon"));
    }
    let at = |m: i64| now + Duration::minutes(m);
    let denied = |r: Result<_, ServiceError<R::Error>>, what: &str| -> Result<(), Failure> {
        match r {
            Err(ServiceError::Lifecycle(LifecycleError::NotPermitted { .. })) => Ok(()),
            Err(e) => Err(fail(
                C,
                format!("{what}: refused with {e}, not NotPermitted"),
            )),
            Ok(_) => Err(fail(C, format!("{what}: accepted"))),
        }
    };
    denied(
        service
            .pay(
                &order,
                &Actor::Buyer(alice.clone()),
                &key(C, "pay-by-buyer")?,
                at(1),
            )
            .map(|_| ()),
        "a buyer confirming payment",
    )?;
    // A clock an hour behind the order's last change.
    match service.pay(
        &order,
        &Actor::System,
        &key(C, "pay-early")?,
        now - Duration::hours(1),
    ) {
        Err(ServiceError::Lifecycle(LifecycleError::ClockBehind { .. })) => {}
        other => return Err(fail(C, format!("a pay an hour before the lock: {other:?}"))),
    }
    ok(
        C,
        "pay",
        service.pay(&order, &Actor::System, &key(C, "pay")?, at(1)),
    )?;
    let bob = Actor::Buyer(uid(C, "bob")?);
    denied(
        service
            .refund(
                &order,
                &bob,
                &RefundRequest::whole(RefundKind::Buyer),
                &key(C, "r-bob")?,
                at(2),
            )
            .map(|_| ()),
        "another buyer refunding",
    )?;
    denied(
        service
            .refund(
                &order,
                &Actor::Buyer(alice.clone()),
                &RefundRequest::whole(RefundKind::Merchant),
                &key(C, "r-alice-merchant")?,
                at(2),
            )
            .map(|_| ()),
        "a buyer refunding for the merchant's reason",
    )?;
    let me = Actor::Buyer(alice.clone());
    let one =
        |line| RefundRequest::units(RefundKind::Buyer, vec![RefundUnits { line, quantity: 1 }]);
    let r1 = ok(
        C,
        "refund 1",
        service.refund(&order, &me, &one(0), &key(C, "r1")?, at(3)),
    )?;
    let again = ok(
        C,
        "refund 1 again",
        service.refund(&order, &me, &one(0), &key(C, "r1")?, at(4)),
    )?;
    if !again.replayed || again.refund != r1.refund {
        return Err(fail(C, "a retried partial refund was not the same refund"));
    }
    match service.refund(&order, &me, &one(1), &key(C, "r1")?, at(4)) {
        Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. })) => {}
        other => {
            return Err(fail(
                C,
                format!("a refund key reused for other units: {other:?}"),
            ));
        }
    }
    if !matches!(
        ok(C, "coupon", service.repository().coupon(&coupon.id))?.map(|c| c.value.state),
        Some(CouponState::Used { .. })
    ) {
        return Err(fail(C, "a partial refund settled the coupon"));
    }
    let r2 = ok(
        C,
        "refund 2",
        service.refund(&order, &me, &one(0), &key(C, "r2")?, at(5)),
    )?;
    // The last tea unit, from 8 threads with different keys: refunded once.
    let last: Vec<Result<bool, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|i| {
                let (service, me) = (&service, &me);
                s.spawn(move || -> Result<bool, Failure> {
                    let k = key(C, &format!("r3-{i}"))?;
                    match service.refund(
                        &order_id(C)?,
                        me,
                        &RefundRequest::units(
                            RefundKind::Buyer,
                            vec![RefundUnits {
                                line: 0,
                                quantity: 1,
                            }],
                        ),
                        &k,
                        now + Duration::minutes(6),
                    ) {
                        Ok(r) => Ok(!r.replayed),
                        Err(ServiceError::Lifecycle(LifecycleError::InvalidRefund { .. })) => {
                            Ok(false)
                        }
                        Err(e) => Err(fail(C, format!("a concurrent refund failed: {e}"))),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let mut winners = 0;
    for r in last {
        winners += usize::from(r?);
    }
    if winners != 1 {
        return Err(fail(
            C,
            format!("the last unit was refunded {winners} times"),
        ));
    }
    let rest = ok(
        C,
        "refund the rest",
        service.refund(
            &order,
            &me,
            &RefundRequest::whole(RefundKind::Buyer),
            &key(C, "r4")?,
            at(7),
        ),
    )?;
    if !matches!(rest.state, OrderState::Refunded { .. }) || rest.voided != vec![coupon.id.clone()]
    {
        return Err(fail(
            C,
            format!(
                "after the last refund: state {}, voided {:?}",
                rest.state, rest.voided
            ),
        ));
    }
    let record = ok(C, "order", service.order(&order))?;
    let cur = Currency::CNY;
    let mut paid_back = Money::zero(cur);
    let mut discount = Money::zero(cur);
    for r in &record.refunds {
        paid_back = ok(C, "sum", paid_back.checked_add(&r.amount))?;
        discount = ok(C, "sum", discount.checked_add(&r.discount))?;
    }
    if paid_back != locked.quote.total_after || discount != locked.quote.saving {
        return Err(fail(
            C,
            format!(
                "refunds paid back {paid_back} of {} and gave back {discount} of {} discount",
                locked.quote.total_after, locked.quote.saving
            ),
        ));
    }
    if r1.refund.amount.is_zero() || r2.refund.amount.is_zero() {
        return Err(fail(C, "a partial refund paid back nothing"));
    }
    match service.refund(
        &order,
        &me,
        &RefundRequest::whole(RefundKind::Buyer),
        &key(C, "r5")?,
        at(8),
    ) {
        Err(ServiceError::Lifecycle(LifecycleError::OrderAlreadyRefunded { .. })) => Ok(()),
        other => Err(fail(
            C,
            format!("refunding a wholly refunded order: {other:?}"),
        )),
    }
}

fn order_id(check: &'static str) -> Result<crate::id::OrderId, Failure> {
    oid(check, "o-1")
}
