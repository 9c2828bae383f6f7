//! Orders as records: the authority table cell by cell, partial refunds exact to the minor unit
//! (proptest against a reference sum), clocks that disagree, retries that find the order moved
//! on, and a lock that loses a race for its best combination.

use std::sync::Mutex;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{OfferId, Quote, QuoteLine, Share, ShippingQuote};
use coupons::id::*;
use coupons::lifecycle::*;
use coupons::money::{Currency, Money};
use coupons::repository::*;
use coupons::rule::*;
use coupons::service::{LockRequest, Service, ServiceError};
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
}

fn k(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, CNY)
}

fn service_with_coupon() -> (Service<MemoryStore>, CouponId) {
    let svc = Service::new(MemoryStore::new());
    let t = TemplateId::new("ten-off").unwrap();
    let spec = TemplateSpec::new(
        t.clone(),
        "10 off",
        CNY,
        Benefit::instant(yuan(10)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
    .build()
    .unwrap();
    svc.create_template(spec, t0()).unwrap();
    svc.submit_template(&t, t0()).unwrap();
    svc.approve_template(&t, t0()).unwrap();
    svc.activate_template(&t, t0()).unwrap();
    let claim = ClaimRequest::new(
        t,
        user("alice"),
        Channel::new("app").unwrap(),
        ClaimMode::Click,
        k("claim"),
    );
    let c = svc.claim(&claim, t0()).unwrap().coupon.id;
    (svc, c)
}

fn cart() -> Cart {
    Cart::new(
        CNY,
        vec![CartLine::new(Sku::new("tea").unwrap(), yuan(50), 2)],
        yuan(6),
    )
    .unwrap()
}

fn lock(svc: &Service<MemoryStore>, order: &str) -> OrderId {
    let o = OrderId::new(order).unwrap();
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let cart = cart();
    let key = k(&format!("lock-{order}"));
    svc.quote_and_lock(&LockRequest::new(&o, &cart, &buyer, &key), t0())
        .unwrap();
    o
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    OtherBuyer,
    Merchant,
    System,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Pay,
    Cancel,
    Complete,
    RefundBuyer,
    RefundMerchant,
    Void,
}

/// The documented table, written out independently of the code.
const TABLE: [(Act, [bool; 4]); 6] = [
    //                        owner  other  merchant system
    (Act::Pay, [false, false, true, true]),
    (Act::Cancel, [true, false, true, true]),
    (Act::Complete, [true, false, true, true]),
    (Act::RefundBuyer, [true, false, true, false]),
    (Act::RefundMerchant, [false, false, true, true]),
    (Act::Void, [false, false, true, true]),
];

fn actor(who: Who) -> Actor {
    match who {
        Who::Owner => Actor::Buyer(user("alice")),
        Who::OtherBuyer => Actor::Buyer(user("bob")),
        Who::Merchant => Actor::Merchant,
        Who::System => Actor::System,
    }
}

/// Every cell of the table, through the service, on an order (or coupon) in the state the
/// action needs: allowed cells succeed, the others are refused with `NotPermitted` and change
/// nothing.
#[test]
fn authority_table_holds_cell_by_cell() {
    for (act, row) in TABLE {
        for (who, allowed) in [Who::Owner, Who::OtherBuyer, Who::Merchant, Who::System]
            .into_iter()
            .zip(row)
        {
            let (svc, coupon) = service_with_coupon();
            let by = actor(who);
            let now = t0() + Duration::minutes(1);
            let result: Result<(), ServiceError<MemoryStoreError>> = match act {
                Act::Void => svc.void(&coupon, &by, &k("act"), now).map(|_| ()),
                _ => {
                    let o = lock(&svc, "o-1");
                    if matches!(act, Act::Complete | Act::RefundBuyer | Act::RefundMerchant) {
                        svc.pay(&o, &Actor::System, &k("pay"), now).unwrap();
                    }
                    match act {
                        Act::Pay => svc.pay(&o, &by, &k("act"), now).map(|_| ()),
                        Act::Cancel => svc.cancel(&o, &by, &k("act"), now).map(|_| ()),
                        Act::Complete => svc.complete(&o, &by, &k("act"), now).map(|_| ()),
                        Act::RefundBuyer | Act::RefundMerchant => {
                            let kind = if act == Act::RefundBuyer {
                                RefundKind::Buyer
                            } else {
                                RefundKind::Merchant
                            };
                            svc.refund(&o, &by, &RefundRequest::whole(kind), &k("act"), now)
                                .map(|_| ())
                        }
                        Act::Void => unreachable!(),
                    }
                }
            };
            let before = svc.repository().events(0, 10_000).unwrap().len();
            match (allowed, &result) {
                (true, Ok(())) => {}
                (false, Err(ServiceError::Lifecycle(LifecycleError::NotPermitted { .. }))) => {
                    // Nothing changed: a refused request writes nothing, not even a receipt.
                    assert_eq!(svc.repository().events(0, 10_000).unwrap().len(), before);
                    assert_eq!(
                        svc.repository()
                            .receipt(&ReceiptKey::Operation(
                                match act {
                                    Act::Pay => "pay",
                                    Act::Cancel => "cancel",
                                    Act::Complete => "complete",
                                    Act::Void => "void",
                                    _ => "refund",
                                },
                                k("act")
                            ))
                            .unwrap(),
                        None,
                        "{act:?} by {who:?} left a receipt"
                    );
                }
                _ => panic!("{act:?} by {who:?}: allowed {allowed}, got {result:?}"),
            }
            // The pure table agrees with the service.
            let action = match act {
                Act::Pay => OrderAction::Pay,
                Act::Cancel => OrderAction::Cancel,
                Act::Complete => OrderAction::Complete,
                Act::RefundBuyer => OrderAction::Refund(RefundKind::Buyer),
                Act::RefundMerchant => OrderAction::Refund(RefundKind::Merchant),
                Act::Void => OrderAction::Void,
            };
            assert_eq!(
                by.permits(action, &user("alice")),
                allowed,
                "{act:?} {who:?}"
            );
        }
    }
}

#[test]
fn clocks_within_the_tolerance_are_recorded_at_the_last_change_and_beyond_it_refused() {
    let (svc, coupon) = service_with_coupon();
    // Using the coupon before it was claimed: refused, and no order is placed.
    let o = OrderId::new("o-early").unwrap();
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let cart = cart();
    let key = k("lock-early");
    let selection = [OfferId::Coupon(coupon.clone())];
    let early = svc.quote_and_lock(
        &LockRequest::new(&o, &cart, &buyer, &key).select(&selection),
        t0() - Duration::minutes(5),
    );
    assert!(early.is_err(), "{early:?}");
    assert!(matches!(svc.order(&o), Err(ServiceError::NotFound { .. })));
    let o = lock(&svc, "o-1");
    // One second behind the lock: accepted, recorded at the lock's instant.
    let paid = svc
        .pay(&o, &Actor::System, &k("pay"), t0() - Duration::seconds(1))
        .unwrap();
    assert_eq!(paid.state, OrderState::Paid { at: t0() });
    // A refund an hour behind the payment: refused, nothing refunded.
    let late = svc.refund(
        &o,
        &Actor::Merchant,
        &RefundRequest::whole(RefundKind::Merchant),
        &k("refund"),
        t0() - Duration::hours(1),
    );
    assert!(
        matches!(
            late,
            Err(ServiceError::Lifecycle(LifecycleError::ClockBehind { .. }))
        ),
        "{late:?}"
    );
    assert!(svc.order(&o).unwrap().refunds.is_empty());
    let used = svc.repository().coupon(&coupon).unwrap().unwrap().value;
    assert!(matches!(used.state, CouponState::Used { .. }));
}

#[test]
fn a_retried_lock_after_release_answers_with_the_order_as_it_is() {
    let (svc, coupon) = service_with_coupon();
    let o = lock(&svc, "o-1");
    svc.cancel(&o, &Actor::Buyer(user("alice")), &k("cancel"), t0())
        .unwrap();
    // The coupon goes to another order.
    let o2 = lock(&svc, "o-2");
    assert_eq!(svc.order(&o2).unwrap().coupons, vec![coupon.clone()]);
    // The first lock retried: the first order, released, listing its own coupon as it is now.
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let cart = cart();
    let key = k("lock-o-1");
    let again = svc
        .quote_and_lock(&LockRequest::new(&o, &cart, &buyer, &key), t0())
        .unwrap();
    assert!(again.replayed);
    assert!(matches!(again.state, OrderState::Released { .. }));
    assert_eq!(again.coupons.len(), 1);
    assert!(matches!(
        &again.coupons[0].state,
        CouponState::Locked { order, .. } if order == &o2
    ));
    // A different cart under the same key is a reuse.
    let other = Cart::new(
        CNY,
        vec![CartLine::new(Sku::new("cup").unwrap(), yuan(80), 1)],
        yuan(0),
    )
    .unwrap();
    let reused = svc.quote_and_lock(&LockRequest::new(&o, &other, &buyer, &key), t0());
    assert!(matches!(
        reused,
        Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. }))
    ));
}

#[test]
fn keys_reused_for_another_order_step_are_refused() {
    let (svc, _) = service_with_coupon();
    let o1 = lock(&svc, "o-1");
    let o2 = lock(&svc, "o-2");
    svc.pay(&o1, &Actor::System, &k("pay"), t0()).unwrap();
    // The same pay key for another order.
    let e = svc.pay(&o2, &Actor::System, &k("pay"), t0()).unwrap_err();
    assert!(matches!(
        e,
        ServiceError::Lifecycle(LifecycleError::KeyReused { .. })
    ));
    // The same pay key by another party.
    let e = svc.pay(&o1, &Actor::Merchant, &k("pay"), t0()).unwrap_err();
    assert!(matches!(
        e,
        ServiceError::Lifecycle(LifecycleError::KeyReused { .. })
    ));
    // The same cancel key after a successful cancel, for another order.
    svc.cancel(&o2, &Actor::System, &k("cancel"), t0()).unwrap();
    let e = svc
        .cancel(&o1, &Actor::System, &k("cancel"), t0())
        .unwrap_err();
    assert!(matches!(
        e,
        ServiceError::Lifecycle(LifecycleError::KeyReused { .. })
    ));
}

/// A store that, before the first commit that locks a coupon, lets another order of the same
/// buyer lock it: the request loses the race for its best combination.
struct Racing {
    inner: MemoryStore,
    armed: Mutex<bool>,
}

impl Racing {
    fn steal(&self, batch: &Batch) {
        let Ok(mut armed) = self.armed.lock() else {
            return;
        };
        if !*armed {
            return;
        }
        for op in &batch.ops {
            if let Op::PutCoupon { coupon, .. } = op {
                let current = self.inner.coupon(&coupon.id).unwrap().unwrap();
                let thief = OrderId::new("thief").unwrap();
                let taken = current
                    .value
                    .lock(&user("alice"), &thief, t0() + Duration::minutes(15), t0())
                    .unwrap();
                let b = Batch {
                    ops: vec![Op::PutCoupon {
                        coupon: taken,
                        expect: Expect::Version(current.version),
                    }],
                };
                assert_eq!(self.inner.commit(&b).unwrap(), Commit::Applied);
                *armed = false;
                return;
            }
        }
    }
}

impl Repository for Racing {
    type Error = MemoryStoreError;
    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<std::sync::Arc<TemplateRecord>>>, Self::Error> {
        self.inner.template(id)
    }
    fn templates(&self) -> Result<Vec<Versioned<std::sync::Arc<TemplateRecord>>>, Self::Error> {
        self.inner.templates()
    }
    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, Self::Error> {
        self.inner.campaign(id)
    }
    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, Self::Error> {
        self.inner.coupon(id)
    }
    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.inner.wallet(user)
    }
    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.inner.order_coupons(order)
    }
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.inner.due(now, limit)
    }
    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, Self::Error> {
        self.inner.held(now, limit)
    }
    fn order(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, Self::Error> {
        self.inner.order(id)
    }
    fn counter(&self, key: &CounterKey) -> Result<u64, Self::Error> {
        self.inner.counter(key)
    }
    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, Self::Error> {
        self.inner.receipt(key)
    }
    fn events(&self, after: u64, limit: usize) -> Result<Vec<Logged>, Self::Error> {
        self.inner.events(after, limit)
    }
    fn commit(&self, batch: &Batch) -> Result<Commit, Self::Error> {
        self.steal(batch);
        self.inner.commit(batch)
    }
}

#[test]
fn a_lock_that_loses_the_race_for_its_coupon_re_plans_and_says_so() {
    let (svc, coupon) = service_with_coupon();
    // Move the store's state into a racing store: replay the template and claim.
    let store = Racing {
        inner: MemoryStore::new(),
        armed: Mutex::new(false),
    };
    let racing = Service::new(store);
    let t = TemplateId::new("ten-off").unwrap();
    let record = svc.repository().template(&t).unwrap().unwrap().value;
    racing
        .create_template(record.template.as_ref().clone(), t0())
        .unwrap();
    racing.submit_template(&t, t0()).unwrap();
    racing.approve_template(&t, t0()).unwrap();
    racing.activate_template(&t, t0()).unwrap();
    let claim = ClaimRequest::new(
        t,
        user("alice"),
        Channel::new("app").unwrap(),
        ClaimMode::Click,
        k("claim"),
    );
    let c = racing.claim(&claim, t0()).unwrap().coupon.id;
    assert_eq!(c, coupon);
    *racing.repository().armed.lock().unwrap() = true;
    let o = OrderId::new("o-1").unwrap();
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let cart = cart();
    let key = k("lock");
    let locked = racing
        .quote_and_lock(&LockRequest::new(&o, &cart, &buyer, &key), t0())
        .unwrap();
    // The coupon was taken between reading and committing: the order was priced again without
    // it, and the answer names what was lost.
    assert!(locked.coupons.is_empty());
    assert_eq!(locked.contended, vec![coupon]);
    assert_eq!(locked.quote.total_after, locked.quote.total_before);
}

// ---------------------------------------------------------------- partial refunds, pure

/// A quote with the given lines: each has units, a unit price and two offers' shares.
fn quote_of(lines: &[(u32, i64, i64, i64)], shipping: (i64, i64)) -> Quote {
    let a = OfferId::Coupon(CouponId::new("c-a").unwrap());
    let b = OfferId::Coupon(CouponId::new("c-b").unwrap());
    let ship = OfferId::Coupon(CouponId::new("c-ship").unwrap());
    let m = |n: i64| Money::from_minor(n, CNY);
    let mut qlines = Vec::new();
    let (mut before, mut after) = (0i64, 0i64);
    for (i, &(q, unit, sa, sb)) in lines.iter().enumerate() {
        let original = unit * i64::from(q);
        let sa = sa.min(original);
        let sb = sb.min(original - sa);
        let mut shares = Vec::new();
        if sa > 0 {
            shares.push(Share {
                offer: a.clone(),
                amount: m(sa),
            });
        }
        if sb > 0 {
            shares.push(Share {
                offer: b.clone(),
                amount: m(sb),
            });
        }
        before += original;
        after += original - sa - sb;
        qlines.push(QuoteLine {
            sku: Sku::new(format!("sku-{i}")).unwrap(),
            quantity: q,
            original: m(original),
            final_amount: m(original - sa - sb),
            shares,
            gift: false,
        });
    }
    let (fee, off) = shipping;
    let off = off.min(fee);
    Quote {
        currency: CNY,
        applied: Vec::new(),
        lines: qlines,
        shipping: ShippingQuote {
            original: m(fee),
            final_amount: m(fee - off),
            shares: if off > 0 {
                vec![Share {
                    offer: ship,
                    amount: m(off),
                }]
            } else {
                Vec::new()
            },
            lines: Vec::new(),
        },
        items_before: m(before),
        items_after: m(after),
        total_before: m(before + fee),
        total_after: m(after + fee - off),
        saving: m(before - after + off),
        proven_optimal: true,
        optimality_gap: m(0),
        offers: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Refunding an order piece by piece, in any order and any sizes, pays back exactly what
    /// was paid and gives back exactly the discount, per line and per offer; no refund is
    /// negative; each coupon is settled once, by the refund that covers the last unit it
    /// discounted.
    #[test]
    fn partial_refunds_sum_to_the_whole(
        lines in prop::collection::vec((1u32..7, 1i64..100_000, 0i64..50_000, 0i64..50_000), 1..5),
        shipping in (0i64..2_000, 0i64..2_000),
        cuts in prop::collection::vec((0usize..5, 1u32..7, any::<bool>()), 0..12),
    ) {
        let quote = quote_of(&lines, shipping);
        let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
        let coupons: Vec<CouponId> = ["c-a", "c-b", "c-ship"].iter().map(|c| CouponId::new(*c).unwrap()).collect();
        let mut order = Order::place(OrderId::new("o").unwrap(), &buyer, quote.clone(), coupons.clone(), Vec::new(), None, t0())
            .pay(&Actor::System, t0(), Duration::zero()).unwrap();
        let mut now = t0();
        let mut settled: Vec<CouponId> = Vec::new();
        for (line, q, ship) in cuts {
            now += Duration::minutes(1);
            let line = line % quote.lines.len();
            let left = quote.lines[line].quantity - order.refunded_units[line];
            let mut request = RefundRequest::units(RefundKind::Buyer, vec![RefundUnits { line, quantity: q }]);
            if ship && !order.shipping_refunded {
                request = request.with_shipping();
            }
            match order.refund(&Actor::Merchant, &request, now, Duration::zero(), &|_| false) {
                Ok((next, refund)) => {
                    prop_assert!(q <= left);
                    prop_assert!(!refund.amount.is_negative() && !refund.discount.is_negative());
                    settled.extend(refund.voided.iter().cloned());
                    order = next;
                }
                Err(LifecycleError::InvalidRefund { .. }) => prop_assert!(q > left),
                Err(LifecycleError::OrderAlreadyRefunded { .. }) => prop_assert_eq!(left, 0),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
        if !matches!(order.state, OrderState::Refunded { .. }) {
            let (next, refund) = order
                .refund(&Actor::Merchant, &RefundRequest::whole(RefundKind::Buyer), now + Duration::minutes(1), Duration::zero(), &|_| false)
                .unwrap();
            settled.extend(refund.voided.iter().cloned());
            order = next;
        }
        let whole = matches!(order.state, OrderState::Refunded { .. });
        prop_assert!(whole, "not wholly refunded");
        let sum = |f: &dyn Fn(&OrderRefund) -> Money| {
            Money::sum(CNY, order.refunds.iter().map(f).collect::<Vec<_>>().iter()).unwrap()
        };
        prop_assert_eq!(sum(&|r| r.amount), quote.total_after);
        prop_assert_eq!(sum(&|r| r.discount), quote.saving);
        // Per line and per offer.
        for (i, line) in quote.lines.iter().enumerate() {
            let paid: Vec<Money> = order.refunds.iter().flat_map(|r| r.lines.iter().filter(|l| l.line == i).map(|l| l.amount)).collect();
            prop_assert_eq!(Money::sum(CNY, paid.iter()).unwrap(), line.final_amount);
            for s in &line.shares {
                let back: Vec<Money> = order.refunds.iter().flat_map(|r| r.lines.iter().filter(|l| l.line == i))
                    .flat_map(|l| l.shares.iter().filter(|x| x.offer == s.offer).map(|x| x.amount)).collect();
                prop_assert_eq!(Money::sum(CNY, back.iter()).unwrap(), s.amount);
            }
        }
        // Each coupon settled exactly once.
        let mut sorted = settled.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), settled.len());
        prop_assert_eq!(sorted, { let mut c = coupons.clone(); c.sort(); c });
    }
}

#[test]
fn evaluations_carry_their_templates_name_and_kind() {
    let (svc, coupon) = service_with_coupon();
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let quote = svc.quote(&cart(), &buyer, &[], t0()).unwrap();
    let e = quote
        .offers
        .iter()
        .find(|e| e.offer == OfferId::Coupon(coupon.clone()))
        .unwrap();
    assert_eq!((&*e.name, &*e.kind), ("10 off", "instant"));
    // An unusable one too: too early for the coupon.
    let early = svc
        .quote(&cart(), &buyer, &[], t0() - Duration::days(1))
        .unwrap();
    let e = early.offers.iter().find(|e| !e.usable).unwrap();
    assert_eq!((&*e.name, &*e.kind), ("10 off", "instant"));
}

#[test]
fn the_wallet_lists_the_best_combination_first_and_the_rest_with_reasons() {
    let (svc, coupon) = service_with_coupon();
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let w = svc.wallet(&cart(), &buyer, &[], t0()).unwrap();
    assert_eq!(w.coupons.len(), 1);
    let (c, e) = &w.coupons[0];
    assert_eq!(c.id, coupon);
    assert!(e.selected && e.usable);
    assert_eq!(w.best.saving, yuan(10));
    // Too early: listed, not usable, with its reason.
    let early = svc
        .wallet(&cart(), &buyer, &[], t0() - Duration::days(1))
        .unwrap();
    let (_, e) = &early.coupons[0];
    assert!(!e.usable && !e.reasons.is_empty());
}

/// A stranger's order: `u32::MAX` units at a price near the money limit, refunded one unit,
/// then a third, then the rest — exact, no overflow, summing to the whole.
#[test]
fn partial_refunds_of_huge_quantities_stay_exact() {
    let unit = 2_000_000_000i64; // × u32::MAX ≈ 8.6 × 10^18 minor units, near i64::MAX
    let q = u32::MAX;
    let original = unit * i64::from(q);
    let quote = quote_of(&[(q, unit, original / 3, 7)], (0, 0));
    let buyer = Buyer::new(user("alice"), Channel::new("app").unwrap());
    let mut order = Order::place(
        OrderId::new("o").unwrap(),
        &buyer,
        quote.clone(),
        Vec::new(),
        Vec::new(),
        None,
        t0(),
    )
    .pay(&Actor::System, t0(), Duration::zero())
    .unwrap();
    let mut back = Vec::new();
    for quantity in [1, q / 3] {
        let request =
            RefundRequest::units(RefundKind::Buyer, vec![RefundUnits { line: 0, quantity }]);
        let (next, r) = order
            .refund(&Actor::Merchant, &request, t0(), Duration::zero(), &|_| {
                true
            })
            .unwrap();
        back.push(r);
        order = next;
    }
    let (order, last) = order
        .refund(
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Buyer),
            t0(),
            Duration::zero(),
            &|_| true,
        )
        .unwrap();
    back.push(last);
    assert!(matches!(order.state, OrderState::Refunded { .. }));
    let amounts: Vec<Money> = back.iter().map(|r| r.amount).collect();
    let discounts: Vec<Money> = back.iter().map(|r| r.discount).collect();
    assert_eq!(Money::sum(CNY, amounts.iter()).unwrap(), quote.total_after);
    assert_eq!(Money::sum(CNY, discounts.iter()).unwrap(), quote.saving);
    // One unit of ~2 × 10^9 minor units pays back its own share, floor-rounded.
    assert_eq!(
        back[0].amount.to_minor_i128(),
        (original - original / 3 - 7) as i128 / i128::from(q)
    );
}
