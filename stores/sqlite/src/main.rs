//! The coupon engine on SQLite: a `store::SqliteStore` implementing
//! [`coupons::repository::Repository`].
//!
//! `cargo run -p coupons-sqlite [-- PATH]` runs a short demo (in a temporary database,
//! or in the file at `PATH`, opened with full durability); `cargo test -p coupons-sqlite`
//! runs the crate's repository conformance suite against SQLite, plus this store's own tests.

use coupons::lifecycle::Actor;
use coupons_sqlite as store;

use std::error::Error;

use chrono::{Duration, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{Channel, IdempotencyKey, OrderId, Sku, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest};
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, Repository};
use coupons::rule::{Benefit, LimitsSpec, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service};

use store::SqliteStore;

fn main() -> Result<(), Box<dyn Error>> {
    let store = match std::env::args_os().nth(1) {
        Some(path) => SqliteStore::open_with(
            path,
            store::Options {
                durability: store::Durability::Full,
                ..store::Options::default()
            },
        )?,
        None => SqliteStore::temporary()?,
    };
    println!("database: {}", store.path().display());
    let service = Service::new(store);
    let now = Utc::now();

    // A template: spend 100, save 10; 1,000 coupons, one per user.
    let cny = Currency::CNY;
    let yuan = |n: i64| Money::from_minor(n * 100, cny);
    let id = TemplateId::new("spend-100-save-10")?;
    let template = TemplateSpec::new(
        id.clone(),
        "Spend 100, save 10",
        cny,
        Benefit::threshold(yuan(100), yuan(10))?,
        Validity::relative(Span::Days(7), None)?,
    )
    .limits(
        LimitsSpec {
            total_stock: Some(1_000),
            per_user_claims: Some(1),
            ..LimitsSpec::default()
        }
        .try_into()?,
    )
    .build()?;
    service.create_template(template, now)?;
    for step in [
        Service::submit_template,
        Service::approve_template,
        Service::activate_template,
    ] {
        step(&service, &id, now)?;
    }

    // Alice claims it (twice with the same key: one coupon).
    let alice = UserId::new("alice")?;
    let app = Channel::new("app")?;
    let claim = ClaimRequest::new(
        id.clone(),
        alice.clone(),
        app.clone(),
        ClaimMode::Click,
        IdempotencyKey::new("claim-alice-1")?,
    );
    let coupon = service.claim(&claim, now)?.coupon;
    let again = service.claim(&claim, now)?;
    println!(
        "claimed {} (valid until {}); repeated claim replayed: {}",
        coupon.id, coupon.valid_until, again.replayed
    );

    // She checks out a cart of 120 and pays.
    let cart = Cart::new(
        cny,
        vec![CartLine::new(Sku::new("tea-gift-box")?, yuan(120), 1)],
        Money::zero(cny),
    )?;
    let buyer = Buyer::new(alice.clone(), app);
    let order = OrderId::new("order-1")?;
    let lock_key = IdempotencyKey::new("lock-order-1")?;
    let locked =
        service.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lock_key), now)?;
    println!(
        "order {}: {} → {}",
        order, locked.quote.total_before, locked.quote.total_after
    );
    service.pay(
        &order,
        &Actor::System,
        &IdempotencyKey::new("pay-order-1")?,
        now + Duration::minutes(1),
    )?;

    let store = service.repository();
    for c in store.wallet(&alice)? {
        println!(
            "{alice}'s wallet: {} v{} {:?}",
            c.value.id, c.version, c.value.state
        );
    }
    println!("issued: {}", store.counter(&CounterKey::Issued(id))?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};
    use coupons::id::{CampaignId, CouponId};
    use coupons::lifecycle::{Campaign, Coupon, CouponState, TemplateRecord, TemplateStatus};
    use coupons::repository::{Batch, Commit, Expect, Op, Receipt, ReceiptKey, Versioned};
    use std::sync::Arc;
    use std::thread;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap()
    }

    fn record(id: &str) -> Arc<TemplateRecord> {
        let cny = Currency::CNY;
        let t = TemplateSpec::new(
            TemplateId::new(id).unwrap(),
            "Ten off",
            cny,
            Benefit::instant(Money::from_minor(1_000, cny)).unwrap(),
            Validity::relative(Span::Days(7), None).unwrap(),
        )
        .build()
        .unwrap();
        Arc::new(TemplateRecord {
            template: Arc::new(t),
            status: TemplateStatus::Active,
        })
    }

    fn coupon(id: &str, owner: &str, state: CouponState, valid_until: DateTime<Utc>) -> Coupon {
        Coupon {
            id: CouponId::new(id).unwrap(),
            template: TemplateId::new("t").unwrap(),
            owner: UserId::new(owner).unwrap(),
            channel: Channel::new("app").unwrap(),
            campaign: None,
            mode: ClaimMode::Auto,
            claimed_at: t0(),
            valid_from: t0(),
            valid_until,
            state,
            attributes: Default::default(),
        }
    }

    fn campaign(id: &str, name: &str) -> Campaign {
        Campaign {
            id: CampaignId::new(id).unwrap(),
            name: name.into(),
            rules: String::new(),
            from: t0(),
            until: t0() + Duration::days(1),
            online: true,
            templates: vec![],
        }
    }

    fn one(op: Op) -> Batch {
        Batch { ops: vec![op] }
    }

    fn ids(cs: &[Versioned<Coupon>]) -> Vec<&str> {
        cs.iter().map(|c| c.value.id.as_str()).collect()
    }

    /// The crate's repository conformance suite — the same checks the in-memory store passes:
    /// every op and condition, then concurrent claims, locks, pay/cancel races and retries
    /// through the service, with threads sharing the store (each call on its own connection).
    #[test]
    fn conformance_suite_passes_on_sqlite() {
        let started = std::time::Instant::now();
        if let Err(failure) = coupons::testkit::run_all(|| SqliteStore::temporary().unwrap()) {
            panic!("{failure}");
        }
        eprintln!("conformance suite on SQLite: {:?}", started.elapsed());
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<SqliteStore>();
        check::<store::StoreError>();
    }

    #[test]
    fn put_checks_absence_then_version() {
        let s = SqliteStore::temporary().unwrap();
        let r = record("t");
        let put = |expect| {
            one(Op::PutTemplate {
                record: r.clone(),
                expect,
            })
        };
        let id = TemplateId::new("t").unwrap();
        assert_eq!(s.template(&id).unwrap(), None);
        assert_eq!(s.commit(&put(Expect::Absent)).unwrap(), Commit::Applied);
        assert_eq!(
            s.commit(&put(Expect::Absent)).unwrap(),
            Commit::Conflict { index: 0 }
        );
        let got = s.template(&id).unwrap().unwrap();
        assert_eq!((got.version, &got.value), (1, &r));
        assert_eq!(
            s.commit(&put(Expect::Version(2))).unwrap(),
            Commit::Conflict { index: 0 }
        );
        assert_eq!(s.commit(&put(Expect::Version(1))).unwrap(), Commit::Applied);
        assert_eq!(s.template(&id).unwrap().unwrap().version, 2);
        // A changed record is read back, not the decoded copy of the old version.
        let paused = Arc::new(TemplateRecord {
            template: r.template.clone(),
            status: TemplateStatus::Paused,
        });
        let pause = one(Op::PutTemplate {
            record: paused.clone(),
            expect: Expect::Version(2),
        });
        assert_eq!(s.commit(&pause).unwrap(), Commit::Applied);
        let all = s.templates().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].version, &all[0].value), (3, &paused));
        assert_eq!(s.template(&id).unwrap().unwrap().value, paused);
        assert_eq!(
            s.commit(&put(Expect::Version(u64::MAX))).unwrap(),
            Commit::Conflict { index: 0 }
        );

        let c = campaign("c", "Singles' Day");
        let cid = c.id.clone();
        let putc = |campaign: Campaign, expect| one(Op::PutCampaign { campaign, expect });
        assert_eq!(
            s.commit(&putc(c.clone(), Expect::Version(1))).unwrap(),
            Commit::Conflict { index: 0 }
        );
        assert_eq!(
            s.commit(&putc(c.clone(), Expect::Absent)).unwrap(),
            Commit::Applied
        );
        let renamed = campaign("c", "Double 11");
        assert_eq!(
            s.commit(&putc(renamed.clone(), Expect::Version(1)))
                .unwrap(),
            Commit::Applied
        );
        assert_eq!(
            s.campaign(&cid).unwrap(),
            Some(Versioned {
                value: renamed,
                version: 2
            })
        );
    }

    #[test]
    fn a_failed_condition_writes_nothing_and_names_its_op() {
        let s = SqliteStore::temporary().unwrap();
        let receipt_key = ReceiptKey::Operation("claim", IdempotencyKey::new("k1").unwrap());
        let stock = CounterKey::Issued(TemplateId::new("t").unwrap());
        let c = coupon("c1", "u", CouponState::Available, t0() + Duration::days(1));
        let batch = |limit| Batch {
            ops: vec![
                Op::InsertReceipt {
                    key: receipt_key.clone(),
                    receipt: Receipt::Claimed {
                        coupon: c.id.clone(),
                    },
                },
                Op::PutCoupon {
                    coupon: c.clone(),
                    expect: Expect::Absent,
                },
                Op::Count {
                    key: stock.clone(),
                    delta: 1,
                    limit: Some(limit),
                },
            ],
        };
        // Prime the counter at its limit of 1.
        let prime = one(Op::Count {
            key: stock.clone(),
            delta: 1,
            limit: Some(1),
        });
        assert_eq!(s.commit(&prime).unwrap(), Commit::Applied);
        assert_eq!(s.commit(&batch(1)).unwrap(), Commit::Conflict { index: 2 });
        assert_eq!(s.receipt(&receipt_key).unwrap(), None);
        assert_eq!(s.coupon(&c.id).unwrap(), None);
        assert_eq!(s.counter(&stock).unwrap(), 1);
        // With room, all three apply; a retry then fails on the receipt.
        assert_eq!(s.commit(&batch(2)).unwrap(), Commit::Applied);
        assert_eq!(s.commit(&batch(3)).unwrap(), Commit::Conflict { index: 0 });
        assert_eq!(s.counter(&stock).unwrap(), 2);
        assert_eq!(
            s.receipt(&receipt_key).unwrap(),
            Some(Receipt::Claimed {
                coupon: c.id.clone()
            })
        );
        assert_eq!(s.coupon(&c.id).unwrap().unwrap().version, 1);
        assert_eq!(s.commit(&Batch::new()).unwrap(), Commit::Applied);
    }

    #[test]
    fn counters_stay_within_zero_and_limit() {
        let s = SqliteStore::temporary().unwrap();
        let k = CounterKey::Custom("guard".into());
        let count = |delta, limit| {
            s.commit(&one(Op::Count {
                key: k.clone(),
                delta,
                limit,
            }))
            .unwrap()
        };
        let conflict = Commit::Conflict { index: 0 };
        assert_eq!(count(-1, None), conflict); // new counter would go below zero
        assert_eq!(count(3, Some(2)), conflict); // new counter over its limit
        assert_eq!(count(0, Some(5)), Commit::Applied);
        assert_eq!(s.counter(&k).unwrap(), 0);
        assert_eq!(count(2, Some(2)), Commit::Applied);
        assert_eq!(count(1, Some(2)), conflict);
        assert_eq!(count(0, Some(1)), conflict); // a guard: already above 1
        assert_eq!(count(-3, None), conflict);
        assert_eq!(count(-2, None), Commit::Applied);
        assert_eq!(s.counter(&k).unwrap(), 0);
        assert_eq!(count(i64::MAX, None), Commit::Applied);
        assert_eq!(count(1, None), conflict); // no overflow
        assert_eq!(count(i64::MIN, Some(u64::MAX)), conflict);
        assert_eq!(count(-i64::MAX, Some(u64::MAX)), Commit::Applied);
        assert_eq!(s.counter(&k).unwrap(), 0);
    }

    /// Ids may contain `/`; the store's keys must keep these two counters apart (and the
    /// crate's display form, which escapes `/` inside ids, does too).
    #[test]
    fn counters_of_ids_containing_slashes_do_not_collide() {
        let s = SqliteStore::temporary().unwrap();
        let t = |id: &str| TemplateId::new(id).unwrap();
        let u = |id: &str| UserId::new(id).unwrap();
        let a = CounterKey::UserClaims(t("a/b"), u("c"));
        let b = CounterKey::UserClaims(t("a"), u("b/c"));
        assert_ne!(a.to_string(), b.to_string());
        let bump = |key: &CounterKey| {
            s.commit(&one(Op::Count {
                key: key.clone(),
                delta: 1,
                limit: Some(1),
            }))
            .unwrap()
        };
        assert_eq!(bump(&a), Commit::Applied);
        assert_eq!(bump(&b), Commit::Applied);
        assert_eq!((s.counter(&a).unwrap(), s.counter(&b).unwrap()), (1, 1));
        let k = |op, key: &str| ReceiptKey::Operation(op, IdempotencyKey::new(key).unwrap());
        let receipt = Receipt::Claimed {
            coupon: CouponId::new("c").unwrap(),
        };
        for key in [k("claim", "x/y"), k("claim/x", "y")] {
            let put = one(Op::InsertReceipt {
                key,
                receipt: receipt.clone(),
            });
            assert_eq!(s.commit(&put).unwrap(), Commit::Applied);
        }
    }

    #[test]
    fn wallet_order_and_due_queries_use_the_indexed_columns() {
        let s = SqliteStore::temporary().unwrap();
        let order = OrderId::new("o1").unwrap();
        let end = t0() + Duration::days(7);
        let hold = t0() + Duration::minutes(15);
        let nano = Duration::nanoseconds(1);
        let coupons = [
            coupon("a-avail", "ann", CouponState::Available, end),
            coupon(
                "b-locked",
                "ann",
                CouponState::Locked {
                    order: order.clone(),
                    until: hold,
                },
                end,
            ),
            coupon(
                "c-used",
                "bob",
                CouponState::Used {
                    order: order.clone(),
                    at: t0(),
                },
                end,
            ),
            coupon("d-expired", "bob", CouponState::Expired { at: t0() }, t0()),
            coupon("e-avail-late", "ann", CouponState::Available, end + nano),
            coupon(
                "f-forever",
                "ann",
                CouponState::Available,
                DateTime::<Utc>::MAX_UTC,
            ),
        ];
        let batch = Batch {
            ops: coupons
                .iter()
                .map(|c| Op::PutCoupon {
                    coupon: c.clone(),
                    expect: Expect::Absent,
                })
                .collect(),
        };
        assert_eq!(s.commit(&batch).unwrap(), Commit::Applied);

        let ann = UserId::new("ann").unwrap();
        assert_eq!(
            ids(&s.wallet(&ann).unwrap()),
            ["a-avail", "b-locked", "e-avail-late", "f-forever"]
        );
        assert_eq!(
            ids(&s.order_coupons(&order).unwrap()),
            ["b-locked", "c-used"]
        );
        assert_eq!(ids(&s.due(t0(), 10).unwrap()), Vec::<&str>::new());
        assert_eq!(ids(&s.due(hold - nano, 10).unwrap()), Vec::<&str>::new());
        assert_eq!(ids(&s.due(hold, 10).unwrap()), ["b-locked"]);
        assert_eq!(ids(&s.due(end, 10).unwrap()), ["a-avail", "b-locked"]);
        assert_eq!(
            ids(&s.due(end + nano, 10).unwrap()),
            ["a-avail", "b-locked", "e-avail-late"]
        );
        assert_eq!(ids(&s.due(end + nano, 2).unwrap()), ["a-avail", "b-locked"]);

        // Releasing the lock takes the coupon out of the order; it is due again at its validity end.
        let mut released = s
            .coupon(&CouponId::new("b-locked").unwrap())
            .unwrap()
            .unwrap();
        released.value.state = CouponState::Available;
        let put = one(Op::PutCoupon {
            coupon: released.value.clone(),
            expect: Expect::Version(released.version),
        });
        assert_eq!(s.commit(&put).unwrap(), Commit::Applied);
        assert_eq!(s.commit(&put).unwrap(), Commit::Conflict { index: 0 });
        assert_eq!(ids(&s.order_coupons(&order).unwrap()), ["c-used"]);
        assert_eq!(ids(&s.due(hold, 10).unwrap()), Vec::<&str>::new());
        let got = s.coupon(&released.value.id).unwrap().unwrap();
        assert_eq!((got.version, got.value), (2, released.value));
    }

    #[test]
    fn queries_search_their_indexes() {
        let s = SqliteStore::temporary().unwrap();
        for (name, plan) in s.query_plans().unwrap() {
            let wanted: &[&str] = match name {
                "wallet" => &["INDEX coupons_by_owner"],
                "order" => &["INDEX coupons_by_order"],
                "held" => &["SEARCH holds USING COVERING INDEX holds_by_time"],
                _ => &["INDEX coupons_by_due", "USING PRIMARY KEY (id=?)"],
            };
            for w in wanted {
                assert!(plan.contains(w), "{name}: {w} not in\n{plan}");
            }
            assert!(!plan.contains("SCAN"), "{name} scans:\n{plan}");
        }
    }

    #[test]
    fn data_survives_reopening_the_file() {
        let s = SqliteStore::temporary().unwrap();
        let full = store::Options {
            durability: store::Durability::Full,
            ..store::Options::default()
        };
        let k = CounterKey::Custom("x".into());
        let bump = one(Op::Count {
            key: k.clone(),
            delta: 5,
            limit: None,
        });
        assert_eq!(s.commit(&bump).unwrap(), Commit::Applied);
        let again = SqliteStore::open_with(s.path(), full).unwrap();
        assert_eq!(again.counter(&k).unwrap(), 5);
    }

    /// Threads race to claim from a stock of 40, half through a second store on the same file
    /// (as a second process would): SQLite's own locking keeps the count exact.
    #[test]
    fn concurrent_claims_never_exceed_stock() {
        let a = Arc::new(SqliteStore::temporary().unwrap());
        let b = Arc::new(SqliteStore::open(a.path()).unwrap());
        let stock = CounterKey::Issued(TemplateId::new("t").unwrap());
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let s = if n % 2 == 0 { a.clone() } else { b.clone() };
                let stock = stock.clone();
                thread::spawn(move || {
                    let mut won = 0;
                    for i in 0..25 {
                        let c = coupon(
                            &format!("c-{n}-{i}"),
                            &format!("u{n}"),
                            CouponState::Available,
                            t0() + Duration::days(1),
                        );
                        let batch = Batch {
                            ops: vec![
                                Op::Count {
                                    key: stock.clone(),
                                    delta: 1,
                                    limit: Some(40),
                                },
                                Op::PutCoupon {
                                    coupon: c,
                                    expect: Expect::Absent,
                                },
                            ],
                        };
                        match s.commit(&batch).unwrap() {
                            Commit::Applied => won += 1,
                            Commit::Conflict { index } => assert_eq!(index, 0),
                        }
                    }
                    won
                })
            })
            .collect();
        let won: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(won, 40);
        assert_eq!(a.counter(&stock).unwrap(), 40);
        let issued: usize = (0..4)
            .map(|n| {
                b.wallet(&UserId::new(format!("u{n}")).unwrap())
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(issued, 40);
    }

    /// Read-modify-write with retries on version conflicts loses no update.
    #[test]
    fn concurrent_compare_and_swap_loses_no_update() {
        let s = Arc::new(SqliteStore::temporary().unwrap());
        let start = campaign("c", "0");
        let id = start.id.clone();
        let put = one(Op::PutCampaign {
            campaign: start,
            expect: Expect::Absent,
        });
        assert_eq!(s.commit(&put).unwrap(), Commit::Applied);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                let id = id.clone();
                thread::spawn(move || {
                    for _ in 0..20 {
                        loop {
                            let cur = s.campaign(&id).unwrap().unwrap();
                            let mut next = cur.value.clone();
                            next.name = (next.name.parse::<u32>().unwrap() + 1).to_string();
                            let b = one(Op::PutCampaign {
                                campaign: next,
                                expect: Expect::Version(cur.version),
                            });
                            if s.commit(&b).unwrap() == Commit::Applied {
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let end = s.campaign(&id).unwrap().unwrap();
        assert_eq!((end.value.name.as_str(), end.version), ("80", 81));
    }
}
