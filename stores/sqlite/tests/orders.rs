//! Order records on SQLite (issue #8): `Op::PutOrder`'s conditions inside the batch's
//! transaction, `Repository::order`, the `orders` table added to a database made before it,
//! and an order's whole life (placed, paid, refunded in three parts; another cancelled) giving
//! exactly what the in-memory reference store gives: the same records and versions, receipts
//! and event feed.

use chrono::{DateTime, Duration, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::events::{Event, EventKind, Logged};
use coupons::id::{Channel, IdempotencyKey, OrderId, Sku, TemplateId, UserId};
use coupons::lifecycle::{
    Actor, ClaimMode, ClaimRequest, Order, OrderState, RefundKind, RefundRequest, RefundUnits,
};
use coupons::money::{Currency, Money};
use coupons::repository::{
    Batch, Commit, CounterKey, Expect, MemoryStore, Op, Receipt, ReceiptKey, Repository, Versioned,
};
use coupons::rule::{Benefit, LimitsSpec, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service};
use coupons_sqlite::SqliteStore;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, Currency::CNY)
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn op_key(op: &'static str, k: &str) -> ReceiptKey {
    ReceiptKey::Operation(op, key(k))
}

/// Everything the scenario leaves in a store, read back through the trait.
#[derive(Debug, PartialEq)]
struct Outcome {
    orders: Vec<Option<Versioned<Order>>>,
    receipts: Vec<Option<Receipt>>,
    events: Vec<Logged>,
    wallet: Vec<String>,
    uses: u64,
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

/// Order 1 is placed with a coupon, paid (confirmed by the system), then refunded by the merchant in part
/// (one unit of line 0; the other two), then by the buyer in whole (the rest, shipping
/// included); every step is retried once with its key. Order 2 is placed and cancelled.
fn scenario<R: Repository>(store: R) -> Outcome
where
    R::Error: std::fmt::Debug,
{
    let service = Service::new(store);
    let tid = TemplateId::new("spend-100-save-10").unwrap();
    let template = TemplateSpec::new(
        tid.clone(),
        "Spend 100, save 10",
        Currency::CNY,
        Benefit::threshold(yuan(100), yuan(10)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
    .limits(
        LimitsSpec {
            total_stock: Some(10),
            per_user_claims: Some(2),
            ..LimitsSpec::default()
        }
        .try_into()
        .unwrap(),
    )
    .build()
    .unwrap();
    let now = t0();
    service.create_template(template, now).unwrap();
    service.submit_template(&tid, now).unwrap();
    service.approve_template(&tid, now).unwrap();
    service.activate_template(&tid, now).unwrap();
    let alice = UserId::new("alice").unwrap();
    let app = Channel::new("app").unwrap();
    for k in ["claim-1", "claim-2"] {
        let claim = ClaimRequest::new(
            tid.clone(),
            alice.clone(),
            app.clone(),
            ClaimMode::Click,
            key(k),
        );
        service.claim(&claim, now).unwrap();
    }
    let cart = Cart::new(
        Currency::CNY,
        vec![
            CartLine::new(Sku::new("tea").unwrap(), yuan(40), 3),
            CartLine::new(Sku::new("cups").unwrap(), yuan(30), 1),
        ],
        yuan(8),
    )
    .unwrap();
    let buyer = Buyer::new(alice.clone(), app);
    let (o1, o2) = (
        OrderId::new("order-1").unwrap(),
        OrderId::new("order-2").unwrap(),
    );
    let at = |m: i64| now + Duration::minutes(m);

    let lock = |order: &OrderId, k: &str, m| {
        let locked = service
            .quote_and_lock(&LockRequest::new(order, &cart, &buyer, &key(k)), at(m))
            .unwrap();
        let again = service
            .quote_and_lock(&LockRequest::new(order, &cart, &buyer, &key(k)), at(m))
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.quote, locked.quote);
        locked
    };
    let locked = lock(&o1, "lock-1", 1);
    assert!(!locked.quote.applied.is_empty(), "the coupon applies");

    let by_alice = Actor::Buyer(alice.clone());
    // Payment is confirmed by the payment system, not the buyer.
    let paid = service
        .pay(&o1, &Actor::System, &key("pay-1"), at(2))
        .unwrap();
    assert!(!paid.replayed);
    let again = service
        .pay(&o1, &Actor::System, &key("pay-1"), at(2))
        .unwrap();
    assert!(again.replayed);

    let parts = [
        (
            "refund-1",
            Actor::Merchant,
            RefundRequest::units(
                RefundKind::Merchant,
                vec![RefundUnits {
                    line: 0,
                    quantity: 1,
                }],
            ),
        ),
        (
            "refund-2",
            Actor::Merchant,
            RefundRequest::units(
                RefundKind::Merchant,
                vec![RefundUnits {
                    line: 0,
                    quantity: 2,
                }],
            ),
        ),
        (
            "refund-3",
            by_alice.clone(),
            RefundRequest::whole(RefundKind::Buyer),
        ),
    ];
    for (i, (k, by, request)) in parts.iter().enumerate() {
        let m = 3 + i64::try_from(i).unwrap();
        let first = service.refund(&o1, by, request, &key(k), at(m)).unwrap();
        let again = service.refund(&o1, by, request, &key(k), at(m)).unwrap();
        assert!(!first.replayed && again.replayed);
        assert_eq!(first.refund, again.refund);
    }

    lock(&o2, "lock-2", 6);
    service
        .cancel(&o2, &by_alice, &key("cancel-2"), at(7))
        .unwrap();

    let repo = service.repository();
    let missing = OrderId::new("order-never").unwrap();
    Outcome {
        orders: [&o1, &o2, &missing]
            .into_iter()
            .map(|o| repo.order(o).unwrap())
            .collect(),
        receipts: RECEIPTS
            .iter()
            .map(|(op, k)| repo.receipt(&op_key(op, k)).unwrap())
            .collect(),
        events: repo.events(0, 10_000).unwrap(),
        wallet: repo
            .wallet(&alice)
            .unwrap()
            .into_iter()
            .map(|c| format!("{} v{} {}", c.value.id, c.version, c.value.state.name()))
            .collect(),
        uses: repo
            .counter(&CounterKey::UserUses(tid.clone(), alice.clone()))
            .unwrap(),
    }
}

#[test]
fn an_orders_life_reads_back_as_on_the_reference_store() {
    let reference = scenario(MemoryStore::new());
    let sqlite = scenario(SqliteStore::temporary().unwrap());
    // Field by field first, for a readable failure.
    assert_eq!(sqlite.orders, reference.orders);
    assert_eq!(sqlite.receipts, reference.receipts);
    assert_eq!(sqlite.events, reference.events);
    assert_eq!(sqlite, reference);

    // What both hold, so that agreeing on something wrong shows too.
    let o1 = reference.orders[0].as_ref().unwrap();
    assert_eq!(o1.version, 5, "placed, paid, three refunds");
    assert!(matches!(o1.value.state, OrderState::Refunded { .. }));
    assert_eq!(o1.value.refunds.len(), 3);
    let given_back = o1
        .value
        .refunds
        .iter()
        .try_fold(Money::zero(Currency::CNY), |s, r| {
            s.checked_add(&r.discount)
        })
        .unwrap();
    let discount = o1
        .value
        .quote
        .total_before
        .checked_sub(&o1.value.quote.total_after)
        .unwrap();
    assert_eq!(
        given_back, discount,
        "the partial refunds give the whole discount back"
    );
    let o2 = reference.orders[1].as_ref().unwrap();
    assert_eq!(o2.version, 2);
    assert!(matches!(o2.value.state, OrderState::Released { .. }));
    assert_eq!(reference.orders[2], None);
    let steps: Vec<_> = reference.receipts[1..5]
        .iter()
        .map(|r| match r {
            Some(Receipt::OrderStep { step, refund, .. }) => (step.as_str(), *refund),
            other => panic!("not an order step: {other:?}"),
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("pay", None),
            ("refund", Some(0)),
            ("refund", Some(1)),
            ("refund", Some(2))
        ]
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
    assert_eq!(refunds.len(), 3, "one event per refund, none per retry");
    assert_eq!(
        refunds.iter().map(|r| (r.2, r.3)).collect::<Vec<_>>(),
        [(false, true), (false, true), (true, false)]
    );
    for (r, e) in o1.value.refunds.iter().zip(&refunds) {
        assert_eq!((r.amount, r.discount), (e.0, e.1));
    }
}

/// An order to write directly: order 1 of the scenario, under another id.
fn an_order(id: &str) -> Order {
    let mut order = scenario(MemoryStore::new()).orders[0].take().unwrap().value;
    order.id = OrderId::new(id).unwrap();
    order
}

fn one(op: Op) -> Batch {
    Batch { ops: vec![op] }
}

#[test]
fn put_order_inserts_once_then_updates_at_its_version() {
    let s = SqliteStore::temporary().unwrap();
    let order = an_order("o");
    let put = |order: &Order, expect| {
        s.commit(&one(Op::PutOrder {
            order: Box::new(order.clone()),
            expect,
        }))
        .unwrap()
    };
    let conflict = Commit::Conflict { index: 0 };
    assert_eq!(s.order(&order.id).unwrap(), None);
    assert_eq!(
        put(&order, Expect::Version(1)),
        conflict,
        "no record to update"
    );
    assert_eq!(put(&order, Expect::Absent), Commit::Applied);
    assert_eq!(put(&order, Expect::Absent), conflict);
    assert_eq!(
        s.order(&order.id).unwrap(),
        Some(Versioned {
            value: order.clone(),
            version: 1
        })
    );
    let mut later = order.clone();
    later.updated_at += Duration::seconds(1);
    later.shipping_refunded = !later.shipping_refunded;
    for stale in [0, 2, u64::MAX] {
        assert_eq!(put(&later, Expect::Version(stale)), conflict);
    }
    assert_eq!(put(&later, Expect::Version(1)), Commit::Applied);
    assert_eq!(put(&later, Expect::Version(1)), conflict);
    assert_eq!(put(&order, Expect::Version(2)), Commit::Applied);
    assert_eq!(
        s.order(&order.id).unwrap(),
        Some(Versioned {
            value: order,
            version: 3
        })
    );
}

#[test]
fn a_failed_order_condition_writes_nothing_and_names_its_op() {
    let s = SqliteStore::temporary().unwrap();
    let order = an_order("o");
    let other = an_order("p");
    let receipt_key = op_key("pay", "k");
    let receipt = Receipt::OrderStep {
        order: order.id.clone(),
        step: "pay".into(),
        fingerprint: u64::MAX,
        refund: None,
    };
    let full = CounterKey::Custom("full".into());
    let setup = Batch {
        ops: vec![
            Op::PutOrder {
                order: Box::new(order.clone()),
                expect: Expect::Absent,
            },
            Op::Count {
                key: full.clone(),
                delta: 1,
                limit: Some(1),
            },
        ],
    };
    assert_eq!(s.commit(&setup).unwrap(), Commit::Applied);

    // A stale order write after a receipt and a new order: nothing of the batch lands.
    let stale = Batch {
        ops: vec![
            Op::InsertReceipt {
                key: receipt_key.clone(),
                receipt: receipt.clone(),
            },
            Op::PutOrder {
                order: Box::new(other.clone()),
                expect: Expect::Absent,
            },
            Op::PutOrder {
                order: Box::new(order.clone()),
                expect: Expect::Version(7),
            },
        ],
    };
    assert_eq!(s.commit(&stale).unwrap(), Commit::Conflict { index: 2 });
    assert_eq!(s.receipt(&receipt_key).unwrap(), None);
    assert_eq!(s.order(&other.id).unwrap(), None);
    assert_eq!(s.order(&order.id).unwrap().unwrap().version, 1);

    // An order write before a counter that is full: rolled back with it.
    let over = |first_counter: bool| {
        let mut ops = vec![
            Op::PutOrder {
                order: Box::new(other.clone()),
                expect: Expect::Absent,
            },
            Op::Count {
                key: full.clone(),
                delta: 1,
                limit: Some(1),
            },
        ];
        if first_counter {
            ops.reverse();
        }
        Batch { ops }
    };
    assert_eq!(
        s.commit(&over(false)).unwrap(),
        Commit::Conflict { index: 1 }
    );
    assert_eq!(
        s.commit(&over(true)).unwrap(),
        Commit::Conflict { index: 0 }
    );
    assert_eq!(s.order(&other.id).unwrap(), None);

    // The receipt and both order writes together apply; the receipt reads back exactly.
    let good = Batch {
        ops: vec![
            Op::InsertReceipt {
                key: receipt_key.clone(),
                receipt: receipt.clone(),
            },
            Op::PutOrder {
                order: Box::new(other.clone()),
                expect: Expect::Absent,
            },
            Op::PutOrder {
                order: Box::new(order.clone()),
                expect: Expect::Version(1),
            },
        ],
    };
    assert_eq!(s.commit(&good).unwrap(), Commit::Applied);
    assert_eq!(s.receipt(&receipt_key).unwrap(), Some(receipt));
    assert_eq!(s.order(&other.id).unwrap().unwrap().version, 1);
    assert_eq!(s.order(&order.id).unwrap().unwrap().version, 2);
}

#[test]
fn order_steps_and_refund_events_round_trip() {
    let s = SqliteStore::temporary().unwrap();
    let order = OrderId::new("o/'\"\\").unwrap();
    let receipts = [
        Receipt::OrderStep {
            order: order.clone(),
            step: "refund".into(),
            fingerprint: u64::MAX,
            refund: Some(usize::MAX),
        },
        Receipt::OrderStep {
            order: order.clone(),
            step: "cancel".into(),
            fingerprint: 0,
            refund: None,
        },
    ];
    for (i, r) in receipts.iter().enumerate() {
        let k = op_key("refund", &format!("k{i}"));
        let put = one(Op::InsertReceipt {
            key: k.clone(),
            receipt: r.clone(),
        });
        assert_eq!(s.commit(&put).unwrap(), Commit::Applied);
        assert_eq!(s.receipt(&k).unwrap().as_ref(), Some(r));
    }
    let event = Event::new(
        t0(),
        EventKind::OrderRefunded {
            order,
            user: UserId::new("alice").unwrap(),
            by_merchant: false,
            amount: Money::from_minor(12_345, Currency::CNY),
            discount: Money::from_minor(250, Currency::CNY),
            whole: true,
        },
    );
    let emit = one(Op::Emit {
        event: event.clone(),
    });
    assert_eq!(s.commit(&emit).unwrap(), Commit::Applied);
    let feed = s.events(0, 10).unwrap();
    assert_eq!(feed, [Logged { seq: 1, event }]);
}

/// A database made before orders were records gains the `orders` table when opened.
#[test]
fn opening_an_older_database_adds_the_orders_table() {
    let s = SqliteStore::temporary().unwrap();
    let k = CounterKey::Custom("kept".into());
    let bump = one(Op::Count {
        key: k.clone(),
        delta: 3,
        limit: None,
    });
    assert_eq!(s.commit(&bump).unwrap(), Commit::Applied);
    {
        let conn = rusqlite_connection(s.path());
        conn.execute_batch("DROP TABLE orders").unwrap();
    }
    let order = an_order("o");
    let reopened = SqliteStore::open(s.path()).unwrap();
    assert_eq!(reopened.counter(&k).unwrap(), 3);
    assert_eq!(reopened.order(&order.id).unwrap(), None);
    let put = one(Op::PutOrder {
        order: Box::new(order.clone()),
        expect: Expect::Absent,
    });
    assert_eq!(reopened.commit(&put).unwrap(), Commit::Applied);
    assert_eq!(reopened.order(&order.id).unwrap().unwrap().value, order);
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
