//! The multi-server proof: four processes, each with its own `PgStore` (its own connections)
//! and two threads, claim, lock, pay and refund through the service against one database,
//! with stock far below demand. Then: no coupon over stock, no coupon redeemed twice without a
//! refund in between, the counters equal to the coupons, and a feed without gap or duplicate
//! that agrees with what every process reported.
//!
//! The processes are this test binary run again with `COUPONS_PG_WORKER` set, which makes
//! `worker_process_entry` the worker instead of a no-op.

mod common;

use coupons::lifecycle::{Actor, RefundRequest};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::events::EventKind;
use coupons::id::{Channel, CouponId, IdempotencyKey, OrderId, Sku, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest, LifecycleError, RefundKind};
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, Repository};
use coupons::rule::{Benefit, LimitsSpec, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service, ServiceError};
use coupons_postgres::{Options, PgStore};

const PROCESSES: usize = 4;
const THREADS: usize = 2;
const TRIES: usize = 60;
const USERS: usize = 80;
const STOCK: u64 = 120;
const PER_USER: u32 = 2;
const TEMPLATE: &str = "hot";
/// The worker's variables: the schema, and the worker's number.
const WORKER_SCHEMA: &str = "COUPONS_PG_WORKER";
const WORKER_ID: &str = "COUPONS_PG_WORKER_ID";

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, Currency::CNY)
}

fn user(i: usize) -> UserId {
    UserId::new(format!("user-{}", i % USERS)).unwrap()
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

/// What one worker thread did, one line per success: `claimed C`, `paid O C…`,
/// `refunded O returned C… voided C…`, `contention what`.
fn work(service: &Service<PgStore>, w: usize, th: usize) -> Vec<String> {
    let t = TemplateId::new(TEMPLATE).unwrap();
    let app = Channel::new("app").unwrap();
    let cart = Cart::new(
        Currency::CNY,
        vec![CartLine::new(Sku::new("tea").unwrap(), yuan(100), 1)],
        Money::zero(Currency::CNY),
    )
    .unwrap();
    let mut out = Vec::new();
    for i in 0..TRIES {
        // Users are shared by every process and thread: their wallets are contended.
        let u = user(w * 37 + th * 11 + i);
        let tag = format!("{w}-{th}-{i}");
        let claim = ClaimRequest::new(
            t.clone(),
            u.clone(),
            app.clone(),
            ClaimMode::Click,
            key(&format!("claim-{tag}")),
        );
        match service.claim(&claim, now()) {
            Ok(c) => out.push(format!("claimed {}", c.coupon.id)),
            Err(ServiceError::Lifecycle(LifecycleError::OutOfStock { .. })) => {
                out.push(format!("refused stock {tag}"));
            }
            Err(ServiceError::Lifecycle(LifecycleError::ClaimLimitReached { .. })) => {
                out.push(format!("refused limit {u}"));
            }
            Err(ServiceError::Contention { .. }) => out.push("contention claim".into()),
            Err(e) => panic!("claim {tag}: {e}"),
        }
        // Check out with whatever the user's wallet holds (another process may be using it).
        let order = OrderId::new(format!("order-{tag}")).unwrap();
        let buyer = Buyer::new(u.clone(), app.clone());
        let lock_key = key(&format!("lock-{tag}"));
        let locked = match service
            .quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lock_key), now())
        {
            Ok(l) => l,
            Err(ServiceError::Contention { .. }) => {
                out.push("contention lock".into());
                continue;
            }
            Err(ServiceError::Lifecycle(_)) => continue,
            Err(e) => panic!("lock {tag}: {e}"),
        };
        if locked.coupons.is_empty() {
            continue;
        }
        let paid = match service.pay(&order, &Actor::System, &key(&format!("pay-{tag}")), now()) {
            Ok(s) => s,
            Err(ServiceError::Contention { .. }) => {
                out.push("contention pay".into());
                continue;
            }
            Err(e) => panic!("pay {tag}: {e}"),
        };
        let ids: Vec<&str> = paid.coupons.iter().map(CouponId::as_str).collect();
        out.push(format!("paid {order} {}", ids.join(" ")));
        let kind = match i % 4 {
            0 => RefundKind::Merchant, // the coupon goes back to the wallet, to be used again
            1 => RefundKind::Buyer,    // the coupon is voided
            _ => continue,
        };
        match service.refund(
            &order,
            &Actor::Merchant,
            &RefundRequest::whole(kind),
            &key(&format!("refund-{tag}")),
            now(),
        ) {
            Ok(r) => {
                let list =
                    |v: &[CouponId]| v.iter().map(CouponId::as_str).collect::<Vec<_>>().join(",");
                out.push(format!(
                    "refunded {order} returned {} voided {}",
                    list(&r.returned),
                    list(&r.voided)
                ));
            }
            Err(ServiceError::Contention { .. }) => out.push("contention refund".into()),
            Err(e) => panic!("refund {tag}: {e}"),
        }
    }
    out
}

/// The worker, when this binary runs as one of the processes of
/// `four_processes_share_one_database`; otherwise it has nothing to do.
#[test]
fn worker_process_entry() {
    let (Ok(schema), Ok(id)) = (std::env::var(WORKER_SCHEMA), std::env::var(WORKER_ID)) else {
        println!("worker_process_entry: runs only as a child of four_processes_share_one_database");
        return;
    };
    let url = std::env::var(common::URL_VAR).unwrap();
    let w: usize = id.parse().unwrap();
    let store = PgStore::connect(
        &url,
        Options {
            schema: Some(schema),
            max_connections: THREADS,
            ..Options::default()
        },
    )
    .unwrap();
    let service = Service::new(store);
    let lines: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let service = &service;
                s.spawn(move || work(service, w, th))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for line in lines {
        println!("REPORT {line}");
    }
}

#[test]
fn four_processes_share_one_database() {
    let Some(url) = common::url("four_processes_share_one_database") else {
        return;
    };
    let store = PgStore::scratch(&url, 2).unwrap();
    let schema = store.schema().unwrap().to_owned();
    let service = Service::new(store);
    let t = TemplateId::new(TEMPLATE).unwrap();
    let template = TemplateSpec::new(
        t.clone(),
        "10 off",
        Currency::CNY,
        Benefit::instant(yuan(10)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
    .limits(
        LimitsSpec {
            total_stock: Some(STOCK),
            per_user_claims: Some(PER_USER),
            ..LimitsSpec::default()
        }
        .try_into()
        .unwrap(),
    )
    .build()
    .unwrap();
    service.create_template(template, now()).unwrap();
    service.submit_template(&t, now()).unwrap();
    service.approve_template(&t, now()).unwrap();
    service.activate_template(&t, now()).unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", "worker_process_entry", "--nocapture"])
                .args(["--test-threads", "1"])
                .env(WORKER_SCHEMA, &schema)
                .env(WORKER_ID, w.to_string())
                .env(common::URL_VAR, &url)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut reports = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a worker process failed");
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<String> = text
            .lines()
            // The first report shares its line with the harness's `test … ... `.
            .filter_map(|l| l.find("REPORT ").map(|at| l[at + 7..].to_owned()))
            .collect();
        assert!(!lines.is_empty(), "a worker reported nothing");
        reports.extend(lines);
    }
    let store = service.repository();
    // Stock: exactly STOCK coupons, each claimed once, and the counter says so.
    let claimed: Vec<&str> = reports
        .iter()
        .filter_map(|l| l.strip_prefix("claimed "))
        .collect();
    let distinct: BTreeSet<&str> = claimed.iter().copied().collect();
    assert_eq!(
        claimed.len() as u64,
        STOCK,
        "coupons issued from a stock of {STOCK}"
    );
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "two claims returned one coupon"
    );
    assert_eq!(
        store.counter(&CounterKey::Issued(t.clone())).unwrap(),
        STOCK
    );
    let mut in_wallets = BTreeSet::new();
    for u in 0..USERS {
        let wallet = store.wallet(&user(u)).unwrap();
        assert!(
            wallet.len() as u32 <= PER_USER,
            "{} holds {}",
            user(u),
            wallet.len()
        );
        let counted = store
            .counter(&CounterKey::UserClaims(t.clone(), user(u)))
            .unwrap();
        assert_eq!(counted, wallet.len() as u64, "{}'s claim counter", user(u));
        in_wallets.extend(wallet.into_iter().map(|c| c.value.id.to_string()));
    }
    assert_eq!(
        in_wallets,
        distinct.iter().map(|s| (*s).to_owned()).collect(),
        "the wallets hold exactly the coupons claimed"
    );

    // The feed: sequences 1..=n without gap or duplicate.
    let mut feed = Vec::new();
    loop {
        let after = feed.last().map_or(0, |l: &coupons::events::Logged| l.seq);
        let page = store.events(after, 500).unwrap();
        if page.is_empty() {
            break;
        }
        feed.extend(page);
    }
    for (i, l) in feed.iter().enumerate() {
        assert_eq!(l.seq, i as u64 + 1, "the feed skips or repeats a sequence");
    }

    // Each coupon's life in the feed: issued once; locked only while available; redeemed
    // only by the order holding it; used again only after a refund returned it.
    #[derive(Debug, PartialEq)]
    enum S {
        Available,
        Locked(OrderId),
        Used(OrderId),
        Voided,
    }
    let mut life: BTreeMap<String, S> = BTreeMap::new();
    let mut redeemed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut issued = 0;
    for l in &feed {
        match &l.event.kind {
            EventKind::Issued { coupon, .. } => {
                issued += 1;
                assert!(
                    life.insert(coupon.id.to_string(), S::Available).is_none(),
                    "{} issued twice",
                    coupon.id
                );
            }
            EventKind::Locked { coupon, order, .. } => {
                let s = life.get_mut(coupon.id.as_str()).unwrap();
                assert_eq!(*s, S::Available, "{} locked while not available", coupon.id);
                *s = S::Locked(order.clone());
            }
            EventKind::Released { coupon, order } => {
                let s = life.get_mut(coupon.id.as_str()).unwrap();
                assert_eq!(*s, S::Locked(order.clone()));
                *s = S::Available;
            }
            EventKind::Redeemed { coupon, order, .. } => {
                let s = life.get_mut(coupon.id.as_str()).unwrap();
                assert_eq!(
                    *s,
                    S::Locked(order.clone()),
                    "{} redeemed without being held by {order}",
                    coupon.id
                );
                *s = S::Used(order.clone());
                redeemed
                    .entry(order.to_string())
                    .or_default()
                    .push(coupon.id.to_string());
            }
            EventKind::Refunded {
                coupon,
                order,
                returned,
                ..
            } => {
                let s = life.get_mut(coupon.id.as_str()).unwrap();
                assert_eq!(*s, S::Used(order.clone()), "{} refunded twice", coupon.id);
                *s = if *returned { S::Available } else { S::Voided };
            }
            _ => {}
        }
    }
    assert_eq!(issued, STOCK, "issued events");
    // What the processes paid is what the feed redeemed, order by order.
    let mut paid: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &reports {
        if let Some(rest) = l.strip_prefix("paid ") {
            let mut parts = rest.split(' ');
            let order = parts.next().unwrap().to_owned();
            let mut ids: Vec<String> = parts.map(str::to_owned).collect();
            ids.sort();
            assert!(paid.insert(order, ids).is_none(), "an order paid twice");
        }
    }
    for ids in redeemed.values_mut() {
        ids.sort();
    }
    assert_eq!(paid, redeemed, "the orders paid and the feed's redemptions");
    // The stored coupons end as the feed says.
    for (id, s) in &life {
        let c = store.coupon(&CouponId::new(id).unwrap()).unwrap().unwrap();
        let name = c.value.state.name();
        let expected = match s {
            S::Available => "available",
            S::Locked(_) => "locked",
            S::Used(_) => "used",
            S::Voided => "voided",
        };
        assert_eq!(name, expected, "{id}");
    }
    let refunds = reports
        .iter()
        .filter(|l| l.starts_with("refunded "))
        .count();
    let contention = reports
        .iter()
        .filter(|l| l.starts_with("contention "))
        .count();
    // Coupons used by two orders, legitimately: a merchant's refund returned them in between.
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for ids in redeemed.values() {
        for id in ids {
            *uses.entry(id.as_str()).or_default() += 1;
        }
    }
    let reused = uses.values().filter(|n| **n > 1).count();
    println!(
        "four processes: {} coupons issued of {} claims tried, {} orders paid, {refunds} refunded, \
         {} events, {contention} requests gave up on contention, {reused} coupons used again after a refund returned them",
        claimed.len(),
        PROCESSES * THREADS * TRIES,
        paid.len(),
        feed.len()
    );
    assert!(
        paid.len() > 20,
        "too few orders to prove anything: {}",
        paid.len()
    );
}
