//! Order records on PostgreSQL (issue #8): `Op::PutOrder`'s conditions inside the batch's
//! transaction (record writes run before the counters, so the conflict reported must still be
//! the first in the batch's order), `Repository::order`, migration 2 applied to a database at
//! migration 1, and an order's whole life (placed, paid, refunded in three parts; another
//! cancelled) giving exactly what the in-memory reference store gives: the same records and
//! versions, receipts (`u64` fingerprints through `jsonb`) and event feed.
//!
//! The whole-life scenario is the conformance kit's
//! (`coupons::testkit::an_orders_life_matches_the_reference_store`), shared with the other
//! stores' tests.

mod common;

use chrono::{DateTime, Duration, Utc};
use coupons::events::{Event, EventKind, Logged};
use coupons::id::{IdempotencyKey, OrderId, UserId};
use coupons::lifecycle::Order;
use coupons::money::{Currency, Money};
use coupons::repository::{
    Batch, Commit, CounterKey, Expect, MemoryStore, Op, Receipt, ReceiptKey, Repository, Versioned,
};
use coupons::testkit;
use coupons_postgres::{MIGRATIONS, Options, PgStore};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn op_key(op: &'static str, k: &str) -> ReceiptKey {
    ReceiptKey::Operation(op, key(k))
}

/// The shared scenario of the conformance kit: the same records and versions, receipts
/// (`u64` fingerprints through `jsonb`) and event feed as the in-memory reference store.
#[test]
fn an_orders_life_reads_back_as_on_the_reference_store() {
    let Some(pg) = store("an_orders_life_reads_back_as_on_the_reference_store") else {
        return;
    };
    testkit::an_orders_life_matches_the_reference_store(pg).unwrap();
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

/// A scratch store, or `None` (the test is skipped) without a database.
fn store(test: &str) -> Option<PgStore> {
    let url = common::url(test)?;
    Some(PgStore::scratch(&url, 4).unwrap())
}

fn one(op: Op) -> Batch {
    Batch { ops: vec![op] }
}

#[test]
fn put_order_inserts_once_then_updates_at_its_version() {
    let Some(s) = store("put_order_inserts_once_then_updates_at_its_version") else {
        return;
    };
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
    let Some(s) = store("a_failed_order_condition_writes_nothing_and_names_its_op") else {
        return;
    };
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
    let Some(s) = store("order_steps_and_refund_events_round_trip") else {
        return;
    };
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

/// A database at migration 1 (made before orders were records) keeps its data and gains the
/// `orders` table from migration 2.
#[test]
fn migration_2_adds_the_orders_table_to_an_older_database() {
    let Some(url) = common::url("migration_2_adds_the_orders_table_to_an_older_database") else {
        return;
    };
    // A scratch schema, emptied and migrated to 1 only (as the previous build left it).
    let scratch = PgStore::scratch(&url, 2).unwrap();
    let schema = scratch.schema().unwrap().to_owned();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let quoted = format!("\"{schema}\"");
    admin
        .batch_execute(&format!(
            "DROP SCHEMA {quoted} CASCADE; CREATE SCHEMA {quoted}; SET search_path TO {quoted}; \
             CREATE TABLE coupons_migrations (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now()); {} \
             INSERT INTO coupons_migrations (version, name) VALUES (1, 'schema'); \
             INSERT INTO counters (key, value) VALUES ('custom/kept', 3);",
            MIGRATIONS[0].2
        ))
        .unwrap();
    let old = PgStore::connect(
        &url,
        Options {
            schema: Some(schema),
            ..Options::default()
        },
    )
    .unwrap();
    let k = CounterKey::Custom("kept".into());
    assert_eq!(old.counter(&k).unwrap(), 3);
    assert!(
        old.order(&OrderId::new("o").unwrap()).is_err(),
        "no orders table yet"
    );
    assert_eq!(old.migrate().unwrap(), [2]);
    assert_eq!(old.migrate().unwrap(), Vec::<u32>::new());
    assert_eq!(old.counter(&k).unwrap(), 3);
    let order = an_order("o");
    assert_eq!(old.order(&order.id).unwrap(), None);
    let put = one(Op::PutOrder {
        order: Box::new(order.clone()),
        expect: Expect::Absent,
    });
    assert_eq!(old.commit(&put).unwrap(), Commit::Applied);
    assert_eq!(old.order(&order.id).unwrap().unwrap().value, order);
    drop(old);
    drop(scratch); // drops the schema
}
