//! Order records on SQLite (issue #8): `Op::PutOrder`'s conditions inside the batch's
//! transaction, `Repository::order`, the `orders` table added to a database made before it,
//! and an order's whole life (placed, paid, refunded in three parts; another cancelled) giving
//! exactly what the in-memory reference store gives: the same records and versions, receipts
//! and event feed.
//!
//! The whole-life scenario is the conformance kit's
//! (`coupons::testkit::an_orders_life_matches_the_reference_store`), shared with the other
//! stores' tests.

use chrono::{DateTime, Duration, Utc};
use coupons::events::{Event, EventKind, Logged};
use coupons::id::{IdempotencyKey, OrderId, UserId};
use coupons::lifecycle::Order;
use coupons::money::{Currency, Money};
use coupons::repository::{
    Batch, Commit, CounterKey, Expect, MemoryStore, Op, Receipt, ReceiptKey, Repository, Versioned,
};
use coupons::testkit;
use coupons_sqlite::SqliteStore;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn op_key(op: &'static str, k: &str) -> ReceiptKey {
    ReceiptKey::Operation(op, key(k))
}

/// The shared scenario of the conformance kit: the same records and versions, receipts and
/// event feed as the in-memory reference store.
#[test]
fn an_orders_life_reads_back_as_on_the_reference_store() {
    testkit::an_orders_life_matches_the_reference_store(SqliteStore::temporary().unwrap()).unwrap();
}

/// An order to write directly: order 1 of the conformance kit's scenario, under another id.
fn an_order(id: &str) -> Order {
    let mut order = testkit::order_life(MemoryStore::new()).unwrap().orders[0]
        .take()
        .unwrap()
        .value;
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
            coupons: Vec::new(),
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
