//! The PostgreSQL store's own properties, beyond the conformance suite: migrations run once
//! however many servers start together, a reader following the feed never sees a later
//! sequence before an earlier one, the queries search their indexes, and instants keep their
//! nanoseconds.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use coupons::events::{Event, EventKind};
use coupons::id::{CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use coupons::repository::{
    Batch, Commit, CounterKey, Op, Receipt, ReceiptKey, Repository, TrimEvents,
};
use coupons_postgres::{MIGRATIONS, Options, PgStore, migrate};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn refused(i: usize) -> Op {
    Op::Emit {
        event: Event::new(
            t0(),
            EventKind::OrderReleased {
                order: OrderId::new(format!("o-{i}")).unwrap(),
                user: UserId::new("u").unwrap(),
            },
        ),
    }
}

#[test]
fn migrations_apply_once_even_when_servers_start_together() {
    let Some(url) = common::url("migrations_apply_once_even_when_servers_start_together") else {
        return;
    };
    // A scratch store is migrated already: migrating again changes nothing.
    let store = PgStore::scratch(&url, 8).unwrap();
    assert_eq!(store.migrate().unwrap(), Vec::<u32>::new());
    // A fresh schema, migrated by eight servers at once: each migration runs exactly once.
    let schema = format!("{}_m", store.schema().unwrap());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .unwrap();
    let applied: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (url, schema) = (&url, &schema);
                s.spawn(move || {
                    let store = PgStore::connect(
                        url,
                        Options {
                            schema: Some(schema.clone()),
                            ..Options::default()
                        },
                    )
                    .unwrap();
                    store.migrate().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(
        applied.iter().filter(|a| **a == all).count(),
        1,
        "{applied:?}"
    );
    assert_eq!(
        applied.iter().filter(|a| a.is_empty()).count(),
        7,
        "{applied:?}"
    );
    // `migrate` on a plain client in that schema agrees.
    admin
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    assert!(migrate(&mut admin).unwrap().is_empty());
    admin
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .unwrap();
}

/// Writers append 1–3 events per batch from eight threads while a reader follows the feed:
/// every page the reader gets continues exactly where the previous one stopped. Had a later
/// sequence committed before an earlier one, the reader would once see a page starting past
/// the next sequence, and would never read the skipped event.
#[test]
fn a_reader_never_sees_a_later_sequence_before_an_earlier_one() {
    let Some(url) = common::url("a_reader_never_sees_a_later_sequence_before_an_earlier_one")
    else {
        return;
    };
    const WRITERS: usize = 8;
    const BATCHES: usize = 40;
    let store = PgStore::scratch(&url, WRITERS + 1).unwrap();
    let done = AtomicBool::new(false);
    let (total, seen) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last = 0;
            let mut pages = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store.events(last, 1_000).unwrap();
                for l in &page {
                    assert_eq!(l.seq, last + 1, "the feed jumped from {last} to {}", l.seq);
                    last = l.seq;
                }
                pages += usize::from(!page.is_empty());
                if finished && page.is_empty() {
                    return (last, pages);
                }
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = &store;
                s.spawn(move || {
                    let mut written = 0;
                    for b in 0..BATCHES {
                        let n = 1 + (w + b) % 3;
                        let mut batch = Batch::new();
                        // The writer's own counter: batches share no row but the feed's (a
                        // shared row would order them by itself).
                        batch.push(Op::Count {
                            key: CounterKey::Custom(format!("appends-{w}")),
                            delta: 1,
                            limit: None,
                        });
                        for i in 0..n {
                            batch.push(refused(w * 1_000 + b * 10 + i));
                        }
                        assert_eq!(store.commit(&batch).unwrap(), Commit::Applied);
                        written += n;
                    }
                    written
                })
            })
            .collect();
        let total: usize = writers.into_iter().map(|h| h.join().unwrap()).sum();
        done.store(true, Ordering::SeqCst);
        let (seen, pages) = reader.join().unwrap();
        assert!(pages > 1, "the reader never read while writers wrote");
        (total as u64, seen)
    });
    assert_eq!(seen, total);
    for w in 0..WRITERS {
        let key = CounterKey::Custom(format!("appends-{w}"));
        assert_eq!(store.counter(&key).unwrap(), BATCHES as u64);
    }
}

#[test]
fn a_conflicting_batch_gives_its_sequences_back_and_trimming_keeps_counting() {
    let Some(url) =
        common::url("a_conflicting_batch_gives_its_sequences_back_and_trimming_keeps_counting")
    else {
        return;
    };
    let store = PgStore::scratch(&url, 2).unwrap();
    let key = CounterKey::Issued(TemplateId::new("t").unwrap());
    let mut batch = Batch::new();
    batch.push(refused(1)).push(refused(2)).push(Op::Count {
        key: key.clone(),
        delta: 2,
        limit: Some(1),
    });
    assert_eq!(store.commit(&batch).unwrap(), Commit::Conflict { index: 2 });
    let mut ok = Batch::new();
    ok.push(refused(3)).push(refused(4));
    assert_eq!(store.commit(&ok).unwrap(), Commit::Applied);
    let seqs: Vec<u64> = store.events(0, 10).unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(store.trim_events(2).unwrap(), 2);
    assert_eq!(store.commit(&ok).unwrap(), Commit::Applied);
    let seqs: Vec<u64> = store.events(0, 10).unwrap().iter().map(|l| l.seq).collect();
    assert_eq!(seqs, [3, 4]);
}

#[test]
fn events_keep_quotes_and_backslashes() {
    let Some(url) = common::url("events_keep_quotes_and_backslashes") else {
        return;
    };
    let store = PgStore::scratch(&url, 1).unwrap();
    let tricky = [
        r"o'brien",
        r"back\slash",
        r"\'; DROP TABLE events; --",
        "\"quoted\" $$ é",
    ];
    let mut batch = Batch::new();
    let events: Vec<Event> = tricky
        .iter()
        .map(|id| {
            Event::new(
                t0(),
                EventKind::OrderReleased {
                    order: OrderId::new(*id).unwrap(),
                    user: UserId::new(*id).unwrap(),
                },
            )
        })
        .collect();
    for e in &events {
        batch.push(Op::Emit { event: e.clone() });
    }
    assert_eq!(store.commit(&batch).unwrap(), Commit::Applied);
    let read: Vec<Event> = store
        .events(0, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.event)
        .collect();
    assert_eq!(read, events);
}

#[test]
fn holds_order_to_the_nanosecond() {
    let Some(url) = common::url("holds_order_to_the_nanosecond") else {
        return;
    };
    let store = PgStore::scratch(&url, 2).unwrap();
    let at = t0() + Duration::nanoseconds(1_500);
    let mut batch = Batch::new();
    for (id, t) in [
        ("b", at),
        ("a", at + Duration::nanoseconds(1)),
        ("c", at - Duration::nanoseconds(1)),
    ] {
        batch.push(Op::Hold {
            order: OrderId::new(id).unwrap(),
            until: Some(t),
        });
    }
    assert_eq!(store.commit(&batch).unwrap(), Commit::Applied);
    let held = |t| -> Vec<String> {
        store
            .held(t, 10)
            .unwrap()
            .into_iter()
            .map(|o| o.to_string())
            .collect()
    };
    assert_eq!(held(at - Duration::nanoseconds(2)), Vec::<String>::new());
    assert_eq!(held(at - Duration::nanoseconds(1)), ["c"]);
    assert_eq!(held(at), ["c", "b"]);
    assert_eq!(held(at + Duration::microseconds(1)), ["c", "b", "a"]);
}

#[test]
fn queries_search_their_indexes() {
    let Some(url) = common::url("queries_search_their_indexes") else {
        return;
    };
    let store = PgStore::scratch(&url, 1).unwrap();
    // Tables as a busy shop has them (rows never read back, so bodies may be empty): a
    // million-coupon table would be read whole without its indexes.
    let plans = {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let schema = store.schema().unwrap();
        client
            .batch_execute(&format!(
                "SET search_path TO \"{schema}\";
                 INSERT INTO coupons (id, template, owner, order_id, state, valid_until, \
                     hold_until, due_at, due_at_nanos, version, body) \
                 SELECT 'c' || g, 't', 'u' || (g % 20000), \
                     CASE WHEN g % 3 = 0 THEN 'o' || g END, 'used', now(), NULL, \
                     CASE WHEN g % 500 = 0 THEN now() + g * interval '1 s' END, \
                     CASE WHEN g % 500 = 0 THEN 0 END, 1, '{{}}' \
                 FROM generate_series(1, 100000) g;
                 INSERT INTO holds (order_id, at, at_nanos) \
                 SELECT 'o' || g, now() + g * interval '1 s', 0 FROM generate_series(1, 100000) g;
                 ANALYZE coupons; ANALYZE holds;"
            ))
            .unwrap();
        store.query_plans().unwrap()
    };
    for (name, plan) in &plans {
        let index = match *name {
            "wallet" => "coupons_by_owner",
            "order" => "coupons_by_order",
            "due" => "coupons_by_due",
            "held" => "holds_by_time",
            other => panic!("unexpected query {other}"),
        };
        assert!(plan.contains(index), "{name} does not use {index}:\n{plan}");
    }
}

/// Batches that change the same two counters in opposite orders deadlock now and then;
/// PostgreSQL rolls one back, and the store tries it again: every batch applies once.
#[test]
fn deadlocked_batches_are_tried_again_and_apply_once() {
    let Some(url) = common::url("deadlocked_batches_are_tried_again_and_apply_once") else {
        return;
    };
    const THREADS: usize = 4;
    const BATCHES: usize = 25;
    // Deadlocks are found after `deadlock_timeout` (1 s by default): look sooner.
    let store = PgStore::scratch_with(
        &url,
        Options {
            max_connections: THREADS,
            settings: vec![("deadlock_timeout".into(), "20ms".into())],
            // Four threads taking two rows in opposite orders, on purpose: on a loaded machine
            // one batch can lose more than the default eight times in a row. What this test
            // proves is that a retried batch applies once, not how often it loses.
            retries: 64,
            ..Options::default()
        },
    )
    .unwrap();
    let (a, b) = (
        CounterKey::Custom("a".into()),
        CounterKey::Custom("b".into()),
    );
    std::thread::scope(|s| {
        for th in 0..THREADS {
            let (store, a, b) = (&store, &a, &b);
            s.spawn(move || {
                for i in 0..BATCHES {
                    let (first, second) = if (th + i) % 2 == 0 { (a, b) } else { (b, a) };
                    let mut batch = Batch::new();
                    for key in [first, second] {
                        batch.push(Op::Count {
                            key: key.clone(),
                            delta: 1,
                            limit: None,
                        });
                    }
                    assert_eq!(store.commit(&batch).unwrap(), Commit::Applied);
                }
            });
        }
    });
    let n = (THREADS * BATCHES) as u64;
    assert_eq!(store.counter(&a).unwrap(), n);
    assert_eq!(store.counter(&b).unwrap(), n);
}

/// Counters are written after the batch's other ops, yet a conflict names the first failing op
/// in the batch's order, and nothing of a conflicting batch stays.
#[test]
fn counters_written_last_still_report_the_first_conflict_in_batch_order() {
    let Some(url) =
        common::url("counters_written_last_still_report_the_first_conflict_in_batch_order")
    else {
        return;
    };
    let store = PgStore::scratch(&url, 1).unwrap();
    let taken = || Op::InsertReceipt {
        key: ReceiptKey::Operation("claim", IdempotencyKey::new("k").unwrap()),
        receipt: Receipt::Voided {
            coupon: CouponId::new("c").unwrap(),
        },
    };
    let key = CounterKey::Custom("n".into());
    let count = |delta| Op::Count {
        key: key.clone(),
        delta,
        limit: Some(1),
    };
    let batch = |ops: Vec<Op>| Batch { ops };
    assert_eq!(
        store.commit(&batch(vec![taken()])).unwrap(),
        Commit::Applied
    );
    for (ops, index) in [
        (vec![count(2), taken()], 0),
        (vec![taken(), count(2)], 0),
        (vec![count(1), taken()], 1),
        (
            vec![
                refused(1),
                count(1),
                Op::Count {
                    key: CounterKey::Custom("m".into()),
                    delta: 2,
                    limit: Some(1),
                },
            ],
            2,
        ),
    ] {
        let ops = batch(ops);
        assert_eq!(
            store.commit(&ops).unwrap(),
            Commit::Conflict { index },
            "{ops:?}"
        );
    }
    assert_eq!(store.counter(&key).unwrap(), 0);
    assert!(store.events(0, 10).unwrap().is_empty());
}
