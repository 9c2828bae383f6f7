//! Throughput of the coupon engine on PostgreSQL at 1, 4 and 16 connections, to set beside
//! `pgbench`'s TPC-B-like rate on the same machine.
//!
//! `COUPONS_POSTGRES_URL='host=127.0.0.1 user=postgres dbname=test' cargo run --release -p
//! coupons-postgres --bin pgbench_compare [-- SECONDS [CONNECTIONS…]]`
//!
//! For each connection count N, in a scratch schema: N threads share one store of N
//! connections and claim coupons for SECONDS (one per user, so every claim issues), then lock
//! and pay one order per claimed coupon for SECONDS (or until they run out). It prints
//! claims/s, orders/s (an order is its lock plus its pay) and the database round trips each
//! took, counted by a wrapper around the store: one per read, and per batch `BEGIN`, one
//! statement per op (two for a guard window), and `COMMIT` (which carries the events). It also
//! sums the time spent in reads and in commits (waiting for row locks included).

use coupons::lifecycle::Actor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{
    CampaignId, Channel, CouponId, IdempotencyKey, OrderId, Sku, TemplateId, UserId,
};
use coupons::lifecycle::{Campaign, ClaimMode, ClaimRequest, Coupon, TemplateRecord};
use coupons::money::{Currency, Money};
use coupons::repository::{
    Batch, Commit, CounterKey, Logged, Op, Receipt, ReceiptKey, Repository, Sequence, Versioned,
};
use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service};
use coupons_postgres::{PgStore, StoreError};
use std::sync::Arc;

/// Counts the round trips a store makes (see the module docs).
struct Counting {
    inner: PgStore,
    trips: AtomicU64,
    /// Nanoseconds spent in reads and in commits, summed over threads.
    read_nanos: AtomicU64,
    commit_nanos: AtomicU64,
}

impl Counting {
    fn read<T>(&self, f: impl FnOnce(&PgStore) -> T) -> T {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let out = f(&self.inner);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.read_nanos.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    fn totals(&self) -> [u64; 3] {
        [
            self.trips.load(Ordering::Relaxed),
            self.read_nanos.load(Ordering::Relaxed),
            self.commit_nanos.load(Ordering::Relaxed),
        ]
    }
}

impl Repository for Counting {
    type Error = StoreError;
    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, StoreError> {
        self.read(|s| s.template(id))
    }
    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, StoreError> {
        self.read(|s| s.templates())
    }
    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, StoreError> {
        self.read(|s| s.campaign(id))
    }
    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, StoreError> {
        self.read(|s| s.coupon(id))
    }
    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        self.read(|s| s.wallet(user))
    }
    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        self.read(|s| s.order_coupons(order))
    }
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        self.read(|s| s.due(now, limit))
    }
    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        self.read(|s| s.held(now, limit))
    }
    fn order(
        &self,
        id: &OrderId,
    ) -> Result<Option<Versioned<coupons::lifecycle::Order>>, StoreError> {
        self.read(|s| s.order(id))
    }
    fn counter(&self, key: &CounterKey) -> Result<u64, StoreError> {
        self.read(|s| s.counter(key))
    }
    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, StoreError> {
        self.read(|s| s.receipt(key))
    }
    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, StoreError> {
        self.read(|s| s.events(after, limit))
    }
    fn commit(&self, batch: &Batch) -> Result<Commit, StoreError> {
        let ops: u64 = batch
            .ops
            .iter()
            .map(|op| match op {
                Op::Emit { .. } => 0,
                Op::CountWindow { .. }
                | Op::Count {
                    key: CounterKey::Guard { .. },
                    ..
                } => 2,
                _ => 1,
            })
            .sum();
        // `BEGIN`, the ops, and `COMMIT` (which carries the events).
        self.trips.fetch_add(2 + ops, Ordering::Relaxed);
        let started = Instant::now();
        let out = self.inner.commit(batch);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
        out
    }
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

struct Point {
    connections: usize,
    claims: u64,
    claim_secs: f64,
    /// Round trips, nanoseconds in reads, nanoseconds in commits.
    claim_totals: [u64; 3],
    orders: u64,
    order_secs: f64,
    order_totals: [u64; 3],
}

fn run(url: &str, connections: usize, secs: u64) -> Result<Point, Box<dyn std::error::Error>> {
    let store = Counting {
        inner: PgStore::scratch(url, connections)?,
        trips: AtomicU64::new(0),
        read_nanos: AtomicU64::new(0),
        commit_nanos: AtomicU64::new(0),
    };
    let service = Service::new(store);
    let cny = Currency::CNY;
    let yuan = |n: i64| Money::from_minor(n * 100, cny);
    let t = TemplateId::new("bench")?;
    let spec = TemplateSpec::new(
        t.clone(),
        "10 off",
        cny,
        Benefit::instant(yuan(10))?,
        Validity::relative(Span::Days(7), None)?,
    )
    .build()?;
    service.create_template(spec, now())?;
    service.submit_template(&t, now())?;
    service.approve_template(&t, now())?;
    service.activate_template(&t, now())?;
    let app = Channel::new("app")?;
    let cart = Cart::new(
        cny,
        vec![CartLine::new(Sku::new("tea")?, yuan(100), 1)],
        Money::zero(cny),
    )?;
    let window = Duration::from_secs(secs);

    // Claims: one per user, every one issues.
    let before = service.repository().totals();
    let started = Instant::now();
    let claimed: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|th| {
                let (service, t, app) = (&service, &t, &app);
                s.spawn(move || -> Result<usize, String> {
                    let mut k = 0;
                    while started.elapsed() < window {
                        let user = UserId::new(format!("u-{th}-{k}")).map_err(|e| e.to_string())?;
                        let key = IdempotencyKey::new(format!("c-{th}-{k}"))
                            .map_err(|e| e.to_string())?;
                        let req =
                            ClaimRequest::new(t.clone(), user, app.clone(), ClaimMode::Click, key);
                        service.claim(&req, now()).map_err(|e| e.to_string())?;
                        k += 1;
                    }
                    Ok(k)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "a thread panicked".to_owned())
                    .and_then(|r| r)
            })
            .collect::<Result<_, _>>()
    })?;
    let claim_secs = started.elapsed().as_secs_f64();
    let claims: u64 = claimed.iter().map(|k| *k as u64).sum();
    let claim_totals = diff(service.repository().totals(), before);

    // Orders: lock and pay one order per claimed coupon.
    let before = service.repository().totals();
    let started = Instant::now();
    let paid: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = claimed
            .iter()
            .enumerate()
            .map(|(th, &n)| {
                let (service, app, cart) = (&service, &app, &cart);
                s.spawn(move || -> Result<usize, String> {
                    let mut k = 0;
                    while k < n && started.elapsed() < window {
                        let e = |e: coupons::id::IdError| e.to_string();
                        let user = UserId::new(format!("u-{th}-{k}")).map_err(e)?;
                        let order = OrderId::new(format!("o-{th}-{k}")).map_err(e)?;
                        let lock_key = IdempotencyKey::new(format!("l-{th}-{k}")).map_err(e)?;
                        let pay_key = IdempotencyKey::new(format!("p-{th}-{k}")).map_err(e)?;
                        let buyer = Buyer::new(user, app.clone());
                        let locked = service
                            .quote_and_lock(
                                &LockRequest::new(&order, cart, &buyer, &lock_key),
                                now(),
                            )
                            .map_err(|e| e.to_string())?;
                        if locked.coupons.len() != 1 {
                            return Err(format!(
                                "order {order} locked {} coupons",
                                locked.coupons.len()
                            ));
                        }
                        service
                            .pay(&order, &Actor::System, &pay_key, now())
                            .map_err(|e| e.to_string())?;
                        k += 1;
                    }
                    Ok(k)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "a thread panicked".to_owned())
                    .and_then(|r| r)
            })
            .collect::<Result<_, _>>()
    })?;
    let order_secs = started.elapsed().as_secs_f64();
    let orders: u64 = paid.iter().map(|k| *k as u64).sum();
    let order_totals = diff(service.repository().totals(), before);
    Ok(Point {
        connections,
        claims,
        claim_secs,
        claim_totals,
        orders,
        order_secs,
        order_totals,
    })
}

fn diff(a: [u64; 3], b: [u64; 3]) -> [u64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// `trips/op, ms in reads/op, ms in commits/op`.
fn per(totals: [u64; 3], ops: u64) -> String {
    let ops = ops.max(1) as f64;
    format!(
        "{:.1} | {:.2} | {:.2}",
        totals[0] as f64 / ops,
        totals[1] as f64 / 1e6 / ops,
        totals[2] as f64 / 1e6 / ops
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("COUPONS_POSTGRES_URL")
        .map_err(|_| "set COUPONS_POSTGRES_URL, e.g. host=127.0.0.1 user=postgres dbname=test")?;
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let counts: Vec<usize> = args.map(|s| s.parse()).collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() {
        vec![1, 4, 16]
    } else {
        counts
    };
    println!(
        "| connections | claims/s | round trips / claim | ms in reads / claim | ms in commit / claim \
         | lock-pay orders/s | round trips / order | ms in reads / order | ms in commits / order |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        let p = run(&url, n, secs)?;
        println!(
            "| {} | {:.0} | {} | {:.0} | {} |",
            p.connections,
            p.claims as f64 / p.claim_secs,
            per(p.claim_totals, p.claims),
            p.orders as f64 / p.order_secs,
            per(p.order_totals, p.orders),
        );
    }
    Ok(())
}
