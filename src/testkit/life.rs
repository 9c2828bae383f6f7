//! An order's whole life through the service, read back through the store and compared with
//! what the in-memory reference store holds after the same calls.

use chrono::Duration;

use super::{Failure, active, claim_request, cny, fail, key, oid, ok, t0, tid, uid, yuan};
use crate::cart::{Buyer, Cart, CartLine};
use crate::events::{EventKind, Logged};
use crate::id::{OrderId, Sku};
use crate::lifecycle::{Actor, Order, OrderState, RefundKind, RefundRequest, RefundUnits};
use crate::money::Money;
use crate::repository::{CounterKey, MemoryStore, Receipt, ReceiptKey, Repository, Versioned};
use crate::rule::{Benefit, Limits, LimitsSpec, Span, TemplateSpec, Validity};
use crate::service::{LockRequest, LockedOrder, Service};

/// Everything [`order_life`] leaves in a store, read back through the [`Repository`] trait.
#[derive(Debug, PartialEq)]
pub struct OrderLife {
    /// `order-1`, `order-2` and `order-never` (never placed), as read.
    pub orders: Vec<Option<Versioned<Order>>>,
    /// The receipts of the steps, in order: lock, pay and three refunds of `order-1`, lock and
    /// cancel of `order-2`.
    pub receipts: Vec<Option<Receipt>>,
    /// The whole event feed.
    pub events: Vec<Logged>,
    /// The buyer's wallet: each coupon's id, version and state.
    pub wallet: Vec<String>,
    /// The buyer's uses of the template, as counted.
    pub uses: u64,
}

const RECEIPTS: [(&str, &str); 7] = [
    ("lock", "lock-1"),
    ("pay", "pay-1"),
    ("refund", "refund-1"),
    ("refund", "refund-2"),
    ("refund", "refund-3"),
    ("lock", "lock-2"),
    ("cancel", "cancel-2"),
];

/// An order's whole life on `store`, through the [`Service`]: the buyer claims two coupons
/// of "spend 100, save 10"; `order-1` is placed with one, paid (confirmed by the system), then
/// refunded by the merchant in part (one unit of line 0; the other two), then by the buyer in
/// whole (the rest, shipping included); every step is retried once with its key. `order-2`
/// is placed and cancelled by the buyer. Returns what the store then holds.
///
/// # Errors
/// A [`Failure`] naming the call that failed, or a retry that was not answered as a replay.
pub fn order_life<R: Repository>(store: R) -> Result<OrderLife, Failure> {
    const C: &str = "order_life";
    let service = Service::new(store);
    let limits = LimitsSpec {
        total_stock: Some(10),
        per_user_claims: Some(2),
        ..LimitsSpec::default()
    };
    let template = TemplateSpec::new(
        tid(C, "spend-100-save-10")?,
        "Spend 100, save 10",
        cny(),
        ok(C, "benefit", Benefit::threshold(yuan(100), yuan(10)))?,
        ok(C, "validity", Validity::relative(Span::Days(7), None))?,
    )
    .limits(ok(C, "limits", Limits::try_from(limits))?)
    .build();
    let t = active(C, &service, ok(C, "template", template)?)?;
    let now = t0(C)?;
    let alice = uid(C, "alice")?;
    for k in ["claim-1", "claim-2"] {
        ok(
            C,
            "claim",
            service.claim(&claim_request(C, &t, "alice", k)?, now),
        )?;
    }
    let line =
        |sku, price, quantity| Ok(CartLine::new(ok(C, "sku", Sku::new(sku))?, price, quantity));
    let lines = vec![line("tea", yuan(40), 3)?, line("cups", yuan(30), 1)?];
    let cart = ok(C, "cart", Cart::new(cny(), lines, yuan(8)))?;
    let buyer = Buyer::new(alice.clone(), super::channel(C)?);
    let (o1, o2) = (oid(C, "order-1")?, oid(C, "order-2")?);
    let at = |m: i64| now + Duration::minutes(m);

    let lock = |order: &OrderId, k: &str, m| -> Result<LockedOrder, Failure> {
        let k = key(C, k)?;
        let request = LockRequest::new(order, &cart, &buyer, &k);
        let locked = ok(C, "lock", service.quote_and_lock(&request, at(m)))?;
        let again = ok(C, "lock again", service.quote_and_lock(&request, at(m)))?;
        ensure!(
            C,
            again.replayed && again.quote == locked.quote,
            "a retried lock of {order} is not answered with the order as locked"
        );
        Ok(locked)
    };
    let locked = lock(&o1, "lock-1", 1)?;
    ensure!(
        C,
        !locked.quote.applied.is_empty(),
        "the coupon does not apply"
    );

    let by_alice = Actor::Buyer(alice.clone());
    // Payment is confirmed by the payment system, not the buyer.
    let pay = |k| ok(C, "pay", service.pay(&o1, &Actor::System, &k, at(2)));
    let paid = pay(key(C, "pay-1")?)?;
    let again = pay(key(C, "pay-1")?)?;
    ensure!(
        C,
        !paid.replayed && again.replayed,
        "a retried pay is not a replay"
    );

    let units = |quantity| RefundUnits { line: 0, quantity };
    let parts = [
        (
            "refund-1",
            Actor::Merchant,
            RefundRequest::units(RefundKind::Merchant, vec![units(1)]),
        ),
        (
            "refund-2",
            Actor::Merchant,
            RefundRequest::units(RefundKind::Merchant, vec![units(2)]),
        ),
        (
            "refund-3",
            by_alice.clone(),
            RefundRequest::whole(RefundKind::Buyer),
        ),
    ];
    for (m, (k, by, request)) in (3..).zip(&parts) {
        let k = key(C, k)?;
        let first = ok(C, "refund", service.refund(&o1, by, request, &k, at(m)))?;
        let again = ok(
            C,
            "refund again",
            service.refund(&o1, by, request, &k, at(m)),
        )?;
        ensure!(
            C,
            !first.replayed && again.replayed && first.refund == again.refund,
            "a retried refund is not answered with the refund as recorded"
        );
    }

    lock(&o2, "lock-2", 6)?;
    ok(
        C,
        "cancel",
        service.cancel(&o2, &by_alice, &key(C, "cancel-2")?, at(7)),
    )?;

    let repo = service.repository();
    let mut orders = Vec::new();
    for o in [o1, o2, oid(C, "order-never")?] {
        orders.push(ok(C, "read order", repo.order(&o))?);
    }
    let mut receipts = Vec::new();
    for (op, k) in RECEIPTS {
        let k = ReceiptKey::Operation(op, key(C, k)?);
        receipts.push(ok(C, "read receipt", repo.receipt(&k))?);
    }
    let wallet = ok(C, "read wallet", repo.wallet(&alice))?;
    Ok(OrderLife {
        orders,
        receipts,
        events: ok(C, "read events", repo.events(0, 10_000))?,
        wallet: wallet
            .into_iter()
            .map(|c| format!("{} v{} {}", c.value.id, c.version, c.value.state.name()))
            .collect(),
        uses: ok(
            C,
            "read uses",
            repo.counter(&CounterKey::UserUses(t, alice)),
        )?,
    })
}

/// [`order_life`] on `store` leaves exactly what it leaves on the in-memory reference store
/// ([`MemoryStore`]): the same order records and versions, receipts, event feed, wallet and
/// counted uses. And what both hold is right: `order-1` at version 5 (placed, paid, three
/// refunds) and refunded, its three refunds giving back the whole discount, one receipt per
/// step (the refunds numbered 0, 1, 2) and one `order_refunded` event per refund, none per
/// retry; `order-2` released at version 2; `order-never` absent.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn an_orders_life_matches_the_reference_store<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "an_orders_life_matches_the_reference_store";
    let reference = order_life(MemoryStore::new())?;
    let got = order_life(store)?;
    // Field by field first, for a readable failure.
    ensure!(
        C,
        got.orders == reference.orders,
        "orders {:?}, reference {:?}",
        got.orders,
        reference.orders
    );
    ensure!(
        C,
        got.receipts == reference.receipts,
        "receipts {:?}, reference {:?}",
        got.receipts,
        reference.receipts
    );
    ensure!(
        C,
        got.events == reference.events,
        "events {:?}, reference {:?}",
        got.events,
        reference.events
    );
    ensure!(C, got == reference, "{got:?}, reference {reference:?}");

    // What both hold, so that agreeing on something wrong shows too.
    let o1 = super::some(C, "order-1", reference.orders[0].as_ref())?;
    ensure!(
        C,
        o1.version == 5,
        "order-1 at version {}, not 5 (placed, paid, three refunds)",
        o1.version
    );
    ensure!(
        C,
        matches!(o1.value.state, OrderState::Refunded { .. }),
        "order-1 {:?}",
        o1.value.state
    );
    ensure!(
        C,
        o1.value.refunds.len() == 3,
        "{} refunds, not 3",
        o1.value.refunds.len()
    );
    let mut given_back = Money::zero(cny());
    for r in &o1.value.refunds {
        given_back = ok(C, "sum", given_back.checked_add(&r.discount))?;
    }
    let quote = &o1.value.quote;
    let discount = ok(
        C,
        "discount",
        quote.total_before.checked_sub(&quote.total_after),
    )?;
    ensure!(
        C,
        given_back == discount,
        "the partial refunds give back {given_back}, not the discount {discount}"
    );
    let o2 = super::some(C, "order-2", reference.orders[1].as_ref())?;
    ensure!(
        C,
        o2.version == 2 && matches!(o2.value.state, OrderState::Released { .. }),
        "order-2 at version {}: {:?}",
        o2.version,
        o2.value.state
    );
    ensure!(C, reference.orders[2].is_none(), "order-never is there");
    let steps: Vec<_> = reference.receipts[1..5]
        .iter()
        .map(|r| match r {
            Some(Receipt::OrderStep { step, refund, .. }) => Some((step.as_str(), *refund)),
            _ => None,
        })
        .collect();
    let expected = [
        ("pay", None),
        ("refund", Some(0)),
        ("refund", Some(1)),
        ("refund", Some(2)),
    ];
    ensure!(
        C,
        steps == expected.map(Some),
        "order steps' receipts {steps:?}"
    );
    let refunds: Vec<_> = reference
        .events
        .iter()
        .filter_map(|l| match &l.event.kind {
            EventKind::OrderRefunded {
                amount,
                discount,
                whole,
                by_merchant,
                ..
            } => Some((*amount, *discount, *whole, *by_merchant)),
            _ => None,
        })
        .collect();
    let kinds: Vec<_> = refunds.iter().map(|r| (r.2, r.3)).collect();
    ensure!(
        C,
        kinds == [(false, true), (false, true), (true, false)],
        "refund events (whole, by merchant) {kinds:?}: one per refund, none per retry"
    );
    for (r, e) in o1.value.refunds.iter().zip(&refunds) {
        ensure!(
            C,
            (r.amount, r.discount) == (e.0, e.1),
            "refund {:?} and its event {e:?} disagree",
            r
        );
    }
    Ok(())
}
