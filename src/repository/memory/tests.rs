//! The store's own tests: its tables, the commit against a brute-force model, guards under
//! threads. The conformance suite (`testkit`) runs on it too, from `suite/`.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::MemoryStore;
use super::MemoryStoreError;
use super::feed::{Entry, FEED_CHUNK, Feed};
use super::guards::Buckets;
use super::tables::{NONE, Slot, SlotIndex, add, hash32};
use crate::attributes::Attributes;
use crate::events::{CouponFacts, Event, EventKind, Logged};
use crate::id::{Channel, CouponId, GuardName, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::lifecycle::{ClaimMode, Coupon, CouponState};
use crate::repository::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, Versioned,
};

const CLAIM: &str = "claim";

#[test]
fn the_feed_pages_and_trims_across_chunks() {
    let at = DateTime::<Utc>::UNIX_EPOCH;
    let ev = Event::new(
        at,
        crate::events::EventKind::OrderReleased {
            order: OrderId::trusted("o"),
            user: UserId::trusted("u"),
        },
    );
    let mut f = Feed::default();
    let total = FEED_CHUNK as u64 * 2 + 17;
    for seq in 1..=total {
        assert_eq!(f.push(Entry::Event(Box::new(ev.clone()))), seq);
    }
    let read = |e: &Entry| match e {
        Entry::Event(e) => Some(e.as_ref().clone()),
        Entry::Issued { .. } => None,
    };
    let seqs = |v: Vec<Logged>| v.into_iter().map(|l| l.seq).collect::<Vec<_>>();
    for (after, limit) in [
        (0, 3),
        (4094, 5),
        (4095, 1),
        (8190, 10),
        (total - 1, 9),
        (total, 4),
    ] {
        let want: Vec<u64> = (after + 1..=total).take(limit).collect();
        assert_eq!(
            seqs(f.after(after, limit, read)),
            want,
            "after {after}, limit {limit}"
        );
    }
    for through in [3, 4096, 4097, 9000, total] {
        let before = f.len;
        let n = f.trim(through);
        assert_eq!(f.len, before - n as usize);
        let rest = seqs(f.after(0, usize::MAX, read));
        assert_eq!(
            rest,
            (through + 1..=total).collect::<Vec<_>>(),
            "trim {through}"
        );
    }
    assert_eq!(f.trim(total), 0);
    assert!(f.after(0, 10, read).is_empty());
    // Numbering goes on after the feed was emptied.
    assert_eq!(f.push(Entry::Event(Box::new(ev))), total + 1);
    assert_eq!(seqs(f.after(0, 10, read)), vec![total + 1]);
}

#[test]
fn records_are_compact() {
    assert_eq!(std::mem::size_of::<Slot>(), 96);
    assert!(std::mem::size_of::<Buckets>() <= 32);
    assert_eq!(std::mem::size_of::<Entry>(), 24);
    assert_eq!(std::mem::size_of::<(u32, u32)>(), 8);
}

#[test]
fn slot_index_finds_what_it_holds_across_growth() {
    let keys: Vec<String> = (0..10_000).map(|i| format!("coupon-{i}")).collect();
    fn is<'a>(keys: &'a [String], k: &'a str) -> impl Fn(u32) -> bool + 'a {
        move |slot| keys.get(slot as usize).is_some_and(|x| x == k)
    }
    for sparse in [false, true] {
        let mut ix = if sparse {
            SlotIndex::sparse()
        } else {
            SlotIndex::default()
        };
        for (i, k) in keys.iter().enumerate() {
            // Half the keys through a miss's vacant entry, as a guard's new pair is added.
            if i % 2 == 0 {
                ix.insert(hash32(k), i as u32);
            } else {
                let (vacant, size) = ix
                    .find_or_vacant(hash32(k), is(&keys, k))
                    .err()
                    .unwrap_or((NONE, 0));
                ix.insert_at(vacant, size, hash32(k), i as u32);
            }
            // The load stays at its bound after every insert.
            if sparse {
                assert!(
                    ix.len * 2 <= ix.entries.len(),
                    "{} in {}",
                    ix.len,
                    ix.entries.len()
                );
            } else {
                assert!(ix.len * 4 <= ix.entries.len() * 3);
            }
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(ix.find(hash32(k), is(&keys, k)), Some(i as u32));
            assert_eq!(ix.find_or_vacant(hash32(k), is(&keys, k)), Ok(i as u32));
        }
        assert_eq!(ix.find(hash32("absent"), is(&keys, "absent")), None);
        assert_eq!(ix.len, keys.len());
    }
}

fn coupon(id: &str) -> Coupon {
    let t = DateTime::<Utc>::UNIX_EPOCH;
    Coupon {
        id: CouponId::trusted(id),
        template: TemplateId::trusted("t"),
        owner: UserId::trusted("u"),
        channel: Channel::trusted("app"),
        campaign: None,
        mode: ClaimMode::Auto,
        claimed_at: t,
        valid_from: t,
        valid_until: t + chrono::TimeDelta::days(1),
        state: CouponState::Available,
        attributes: Attributes::new(),
    }
}

fn claim(key: &str, id: &str) -> Op {
    Op::InsertReceipt {
        key: ReceiptKey::Operation(CLAIM, IdempotencyKey::trusted(key)),
        receipt: Receipt::Claimed {
            coupon: CouponId::trusted(id),
        },
    }
}

fn put(id: &str, expect: Expect) -> Op {
    Op::PutCoupon {
        coupon: coupon(id),
        expect,
    }
}

fn found(store: &MemoryStore, id: &str) -> bool {
    matches!(store.coupon(&CouponId::trusted(id)), Ok(Some(c)) if c.value.id.as_str() == id)
}

fn receipt_of(store: &MemoryStore, key: &str) -> Option<String> {
    let key = ReceiptKey::Operation(CLAIM, IdempotencyKey::trusted(key));
    match store.receipt(&key) {
        Ok(Some(Receipt::Claimed { coupon })) => Some(coupon.as_str().to_owned()),
        _ => None,
    }
}

#[test]
fn claims_are_found_by_key_and_id_whatever_the_id_spells() -> Result<(), MemoryStoreError> {
    let store = MemoryStore::new();
    // The service's shape (`<template>/<key>`), a key with a slash, and ids that do not
    // end in their claim key.
    for (key, id) in [
        ("k1", "t/k1"),
        ("a/b", "t/a/b"),
        ("k3", "k3"),
        ("k4", "t/k4.1"),
        ("k5", "t/other"),
    ] {
        let batch = Batch {
            ops: vec![claim(key, id), put(id, Expect::Absent)],
        };
        assert_eq!(store.commit(&batch)?, Commit::Applied, "{id}");
        assert!(found(&store, id), "{id}");
        assert_eq!(receipt_of(&store, key).as_deref(), Some(id));
        // Neither the key nor the id can be used again.
        assert_eq!(
            store.commit(&Batch {
                ops: vec![claim(key, "fresh/x")]
            })?,
            Commit::Conflict { index: 0 }
        );
        assert_eq!(
            store.commit(&Batch {
                ops: vec![put(id, Expect::Absent)]
            })?,
            Commit::Conflict { index: 0 }
        );
    }
    // An id whose suffix is someone else's claim key is its own coupon.
    assert_eq!(
        store.commit(&Batch {
            ops: vec![put("u/k1", Expect::Absent)],
        })?,
        Commit::Applied
    );
    assert!(found(&store, "u/k1") && found(&store, "t/k1"));
    assert_eq!(receipt_of(&store, "k1").as_deref(), Some("t/k1"));
    assert!(!found(&store, "v/k1"));
    Ok(())
}

#[test]
fn a_claim_receipt_can_name_a_coupon_stored_earlier() -> Result<(), MemoryStoreError> {
    let store = MemoryStore::new();
    assert_eq!(
        store.commit(&Batch {
            ops: vec![put("t/k", Expect::Absent)],
        })?,
        Commit::Applied
    );
    assert_eq!(receipt_of(&store, "k"), None);
    assert_eq!(
        store.commit(&Batch {
            ops: vec![claim("k", "t/k")],
        })?,
        Commit::Applied
    );
    assert_eq!(receipt_of(&store, "k").as_deref(), Some("t/k"));
    assert!(found(&store, "t/k"));
    // Updating the coupon keeps both look-ups.
    assert_eq!(
        store.commit(&Batch {
            ops: vec![put("t/k", Expect::Version(1))],
        })?,
        Commit::Applied
    );
    assert!(found(&store, "t/k"));
    assert_eq!(receipt_of(&store, "k").as_deref(), Some("t/k"));
    Ok(())
}

#[test]
fn two_claims_of_one_coupon_in_a_batch_both_keep_their_receipts() -> Result<(), MemoryStoreError> {
    let store = MemoryStore::new();
    let batch = Batch {
        ops: vec![
            claim("k1", "t/k1"),
            claim("k2", "t/k1"),
            put("t/k1", Expect::Absent),
            put("t/k1", Expect::Absent),
        ],
    };
    assert_eq!(store.commit(&batch)?, Commit::Applied);
    assert_eq!(store.coupon_count(), 1);
    assert_eq!(receipt_of(&store, "k1").as_deref(), Some("t/k1"));
    assert_eq!(receipt_of(&store, "k2").as_deref(), Some("t/k1"));
    Ok(())
}

/// A claim batch as a service might write it: the receipt, the template's and the user's
/// counters, the coupon, guard counts and an event.
fn claim_batch(key: &str, id: &str, template: &str, user: &str, limits: [Option<u64>; 2]) -> Batch {
    let mut c = coupon(id);
    c.template = TemplateId::trusted(template);
    c.owner = UserId::trusted(user);
    Batch {
        ops: vec![
            claim(key, id),
            Op::Count {
                key: CounterKey::Issued(c.template.clone()),
                delta: 1,
                limit: limits[0],
            },
            Op::Count {
                key: CounterKey::UserClaims(c.template.clone(), c.owner.clone()),
                delta: 1,
                limit: limits[1],
            },
            Op::PutCoupon {
                coupon: c,
                expect: Expect::Absent,
            },
        ],
    }
}

/// The meaning of a batch, brute force: every condition checked against the state before the
/// batch, in op order, then every write applied; receipts, coupons and counters in ordered maps.
#[derive(Default)]
struct Model {
    receipts: BTreeMap<String, Receipt>,
    coupons: BTreeMap<String, (Coupon, u64)>,
    counters: BTreeMap<String, u64>,
    buckets: BTreeMap<(String, String, i64), u64>,
    events: usize,
}

impl Model {
    fn window(&self, g: &GuardName, s: &str, from: i64, to: i64) -> (u64, u64) {
        let key = |b| (g.as_str().to_owned(), s.to_owned(), b);
        let sum = (from..=to)
            .map(|b| self.buckets.get(&key(b)).copied().unwrap_or(0))
            .sum();
        (self.buckets.get(&key(to)).copied().unwrap_or(0), sum)
    }

    fn commit(&mut self, batch: &Batch) -> Commit {
        for (index, op) in batch.ops.iter().enumerate() {
            let holds = match op {
                Op::InsertReceipt { key, .. } => !self.receipts.contains_key(&key.to_string()),
                Op::Count { key, delta, limit } => {
                    let next =
                        i128::from(self.counters.get(&key.to_string()).copied().unwrap_or(0))
                            + i128::from(*delta);
                    next >= 0 && limit.is_none_or(|l| next <= i128::from(l))
                }
                Op::PutCoupon { coupon, expect } => {
                    let v = self.coupons.get(coupon.id.as_str()).map(|c| c.1);
                    match expect {
                        Expect::Absent => v.is_none(),
                        Expect::Version(e) => v == Some(*e),
                    }
                }
                Op::CountWindow {
                    guard,
                    subject,
                    bucket,
                    span,
                    delta,
                    limit,
                } => {
                    let from = bucket - i64::from(*span) + 1;
                    let (current, sum) = self.window(guard, subject, from, *bucket);
                    i128::from(current) + i128::from(*delta) >= 0
                        && i128::from(sum) + i128::from(*delta) <= i128::from(*limit)
                }
                _ => true,
            };
            if !holds {
                return Commit::Conflict { index };
            }
        }
        for op in &batch.ops {
            match op {
                Op::InsertReceipt { key, receipt } => {
                    self.receipts.insert(key.to_string(), receipt.clone());
                }
                Op::Count { key, delta, .. } => {
                    let v = self.counters.entry(key.to_string()).or_default();
                    *v = add(*v, *delta);
                }
                Op::PutCoupon { coupon, .. } => {
                    let v = self.coupons.get(coupon.id.as_str()).map_or(0, |c| c.1);
                    self.coupons
                        .insert(coupon.id.as_str().to_owned(), (coupon.clone(), v + 1));
                }
                Op::CountWindow {
                    guard,
                    subject,
                    bucket,
                    delta,
                    ..
                } => {
                    let v = self
                        .buckets
                        .entry((guard.as_str().to_owned(), subject.to_string(), *bucket))
                        .or_default();
                    *v = add(*v, *delta);
                }
                Op::Emit { .. } => self.events += 1,
                _ => {}
            }
        }
        Commit::Applied
    }
}

fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut s = seed;
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s % n
    }
}

#[test]
fn claim_batches_agree_with_a_brute_force_model() -> Result<(), MemoryStoreError> {
    let (store, mut model) = (MemoryStore::new(), Model::default());
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let guard = |g: u64| GuardName::trusted(&format!("g{g}"));
    let at = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    let mut outcomes = Vec::new();
    for i in 0..3_000 {
        let (k, t, u, d) = (next(400), next(4), next(6), next(3));
        // Keys repeat (receipt conflicts); ids end in their key, or not, or are another
        // claim's; template 0 has a stock and a per-user limit.
        let id = match next(6) {
            0 => format!("t{t}/x{k}"),
            1 => format!("other/k{}", next(400)),
            2 => format!("k{k}"),
            _ => format!("t{t}/k{k}"),
        };
        let limits = if t == 0 {
            [Some(25), Some(5)]
        } else {
            [None, None]
        };
        let mut batch = claim_batch(
            &format!("k{k}"),
            &id,
            &format!("t{t}"),
            &format!("u{u}"),
            limits,
        );
        // Up to three guards (by device, by user, by both), fixed and rolling windows.
        for g in 0..next(4) {
            let subject = match g {
                0 => format!("device=d{d}"),
                1 => format!("user=u{u}"),
                _ => format!("user=u{u}|device=d{d}-with-a-long-tail-past-the-inline-text"),
            };
            batch.push(Op::CountWindow {
                guard: guard(g),
                subject: subject.into(),
                bucket: i64::from(i / 500),
                span: u32::try_from(1 + g).unwrap_or(1),
                delta: 1,
                limit: 1 + next(if g == 2 { 3 } else { 14 }),
            });
        }
        batch.push(Op::Emit {
            event: Event::new(
                at,
                EventKind::Voided {
                    coupon: CouponFacts::of(&coupon("x/y")),
                },
            ),
        });
        // Sometimes the ops come in another order (the coupon before its receipt).
        if next(4) == 0 {
            batch.ops.swap(0, 3);
        }
        let (a, b) = (store.commit(&batch)?, model.commit(&batch));
        assert_eq!(a, b, "batch {i}");
        outcomes.push(a);
    }
    assert_eq!(store.coupon_count(), model.coupons.len());
    for (id, (c, v)) in &model.coupons {
        let got = store.coupon(&CouponId::trusted(id))?;
        assert_eq!(
            got,
            Some(Versioned {
                value: c.clone(),
                version: *v
            }),
            "{id}"
        );
    }
    for k in 0..400 {
        let key = ReceiptKey::Operation(CLAIM, IdempotencyKey::trusted(&format!("k{k}")));
        assert_eq!(
            store.receipt(&key)?,
            model.receipts.get(&key.to_string()).cloned(),
            "{key}"
        );
    }
    for t in 0..4 {
        let t = TemplateId::trusted(&format!("t{t}"));
        let keys = std::iter::once(CounterKey::Issued(t.clone())).chain(
            (0..6).map(|u| CounterKey::UserClaims(t.clone(), UserId::trusted(&format!("u{u}")))),
        );
        for key in keys {
            let want = model.counters.get(&key.to_string()).copied().unwrap_or(0);
            assert_eq!(store.counter(&key)?, want, "{key}");
        }
    }
    // Buckets the windows still sum (older ones may be dropped).
    for ((g, subject, bucket), n) in &model.buckets {
        let span = if g == "g0" {
            1
        } else if g == "g1" {
            2
        } else {
            3
        };
        if *bucket < 2_999 / 500 - span + 1 {
            continue;
        }
        let key = CounterKey::Guard {
            guard: GuardName::trusted(g),
            subject: subject.as_str().into(),
            bucket: *bucket,
        };
        assert_eq!(store.counter(&key)?, *n, "{key}");
    }
    for u in 0..6 {
        let u = UserId::trusted(&format!("u{u}"));
        let mut want: Vec<&str> = model
            .coupons
            .iter()
            .filter(|(_, (c, _))| c.owner == u)
            .map(|(id, _)| id.as_str())
            .collect();
        want.sort_unstable();
        let got: Vec<String> = store
            .wallet(&u)?
            .into_iter()
            .map(|c| c.value.id.as_str().to_owned())
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(store.event_backlog(), model.events);
    // Every kind of outcome happened.
    for index in 0..7 {
        assert!(
            outcomes.contains(&Commit::Conflict { index }),
            "no conflict at {index}"
        );
    }
    assert!(outcomes.contains(&Commit::Applied));
    Ok(())
}

#[test]
fn a_guard_limit_holds_under_threads() -> Result<(), MemoryStoreError> {
    let store = std::sync::Arc::new(MemoryStore::new());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || -> Result<usize, MemoryStoreError> {
                let mut applied = 0;
                for i in 0..200 {
                    let key = format!("k{t}-{i}");
                    let mut batch = claim_batch(
                        &key,
                        &format!("t/{key}"),
                        "t",
                        &format!("u{t}"),
                        [None, None],
                    );
                    batch.push(Op::CountWindow {
                        guard: GuardName::trusted("per-device"),
                        subject: "device=shared".into(),
                        bucket: 7,
                        span: 3,
                        delta: 1,
                        limit: 300,
                    });
                    if store.commit(&batch)? == Commit::Applied {
                        applied += 1;
                    }
                }
                Ok(applied)
            })
        })
        .collect();
    let mut applied = 0;
    for t in threads {
        applied += t
            .join()
            .map_err(|_| MemoryStoreError::Full { what: "thread" })??;
    }
    assert_eq!(applied, 300);
    assert_eq!(store.coupon_count(), 300);
    let key = CounterKey::Guard {
        guard: GuardName::trusted("per-device"),
        subject: "device=shared".into(),
        bucket: 7,
    };
    assert_eq!(store.counter(&key)?, 300);
    assert_eq!(
        store.counter(&CounterKey::Issued(TemplateId::trusted("t")))?,
        300
    );
    Ok(())
}
#[test]
fn guard_buckets_behave_as_an_ordered_map() {
    let (mut b, mut model) = (Buckets::default(), BTreeMap::<i64, u64>::new());
    let mut next = xorshift(0x1234_5678_9abc_def1);
    let list = |b: &Buckets| match b {
        Buckets::Empty => Vec::new(),
        Buckets::One(at, n) => vec![(*at, *n)],
        Buckets::Many(v) => v.clone(),
    };
    for _ in 0..20_000 {
        let at = next(40) as i64 - 5;
        if next(3) == 0 {
            let from = at - next(9) as i64;
            let sum = model.range(from..=at).map(|(_, n)| *n).sum::<u64>();
            let current = model.get(&at).copied().unwrap_or(0);
            assert_eq!(b.sums(from, at), (current, sum));
        } else {
            // A window of 1 to 8 buckets, or none dropped.
            let oldest = match next(5) {
                0 => i64::MIN,
                w => at - w as i64 * 2 + 1,
            };
            b.add(at, 1, oldest);
            *model.entry(at).or_default() += 1;
            model.retain(|k, _| *k >= oldest);
            assert_eq!(
                list(&b),
                model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
            );
        }
    }
    // A fixed window keeps one bucket inline.
    let mut fixed = Buckets::default();
    for at in 0..100 {
        fixed.add(at / 10, 1, at / 10);
        assert_eq!(fixed, Buckets::One(at / 10, 1 + (at % 10) as u64));
    }
}

#[test]
fn hash_spreads_sequential_ids() {
    let mut low: HashSet<u32> = HashSet::new();
    for i in 0..4096 {
        low.insert(hash32(&format!("k-{i}")) & 0xfff);
    }
    assert!(
        low.len() > 2000,
        "only {} distinct low-bit buckets",
        low.len()
    );
}

#[test]
fn an_issued_event_reads_as_it_was_written_whatever_the_coupon_becomes()
-> Result<(), MemoryStoreError> {
    let store = MemoryStore::new();
    let at = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
    let issued = |c: &Coupon| Op::Emit {
        event: Event::new(
            at,
            EventKind::Issued {
                coupon: CouponFacts::of(c),
                mode: c.mode,
            },
        ),
    };
    let mut a = coupon("t/a");
    a.attributes = Attributes::new();
    let b = coupon("t/b");
    // Compact: the facts are the coupon's. Whole: the event says something else (another
    // owner), or comes before its coupon.
    let mut other = CouponFacts::of(&b);
    other.user = UserId::trusted("someone-else");
    let batches = [
        vec![put("t/a", Expect::Absent), issued(&a)],
        vec![
            issued(&b),
            Op::PutCoupon {
                coupon: b.clone(),
                expect: Expect::Absent,
            },
            Op::Emit {
                event: Event::new(
                    at,
                    EventKind::Issued {
                        coupon: other,
                        mode: ClaimMode::Auto,
                    },
                ),
            },
        ],
    ];
    for ops in batches {
        assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
    }
    let before = store.events(0, 10)?;
    assert_eq!(before.len(), 3);
    // The lifecycle changes a coupon's state (facts unchanged); an admin might change its
    // owner, template, channel, campaign, claim time or attributes.
    let mut a2 = a.clone();
    a2.state = CouponState::Voided { at };
    let mut b2 = b.clone();
    b2.owner = UserId::trusted("new-owner");
    b2.channel = Channel::trusted("web");
    for (c, v) in [(a2, 1), (b2, 1)] {
        let ops = vec![Op::PutCoupon {
            coupon: c,
            expect: Expect::Version(v),
        }];
        assert_eq!(store.commit(&Batch { ops })?, Commit::Applied);
    }
    assert_eq!(store.events(0, 10)?, before);
    assert_eq!(
        store
            .coupon(&CouponId::trusted("t/b"))?
            .map(|c| c.value.owner),
        Some(UserId::trusted("new-owner"))
    );
    Ok(())
}

#[test]
fn a_waiting_thread_spins_then_yields_then_gives_up_to_sleep() {
    let mut wait = super::Wait::default();
    let rounds = std::iter::from_fn(|| Some(wait.again()))
        .take(100)
        .take_while(|&again| again)
        .count();
    assert_eq!(
        rounds,
        (super::Wait::SPIN_ROUNDS + super::Wait::YIELDS) as usize
    );
    assert!(!wait.again(), "once given up, it keeps saying sleep");
}

#[test]
fn readers_and_writers_waiting_on_the_lock_all_get_it() {
    // Four writers and four readers on two cores: every writer's batches land, and the readers
    // (who wait for the writers as the writers wait for each other) see counts only grow.
    let store = std::sync::Arc::new(MemoryStore::new());
    let key = CounterKey::Custom("waits".into());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (store, key) = (&store, &key);
            s.spawn(move || {
                for _ in 0..2_000 {
                    let mut b = Batch::new();
                    b.push(Op::Count {
                        key: key.clone(),
                        delta: 1,
                        limit: None,
                    });
                    assert_eq!(store.commit(&b).ok(), Some(Commit::Applied));
                }
            });
        }
        for _ in 0..4 {
            let (store, key) = (&store, &key);
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..2_000 {
                    let now = store.counter(key).unwrap_or_default();
                    assert!(now >= last);
                    last = now;
                }
            });
        }
    });
    assert_eq!(store.counter(&key).ok(), Some(8_000));
}
