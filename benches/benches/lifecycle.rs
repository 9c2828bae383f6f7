//! Lifecycle throughput through [`Service`]: claims (spread over many templates and users, and
//! a flash sale on one hot template), lock → redeem, on the in-memory store and on SQLite; and
//! the resident memory of 10 million coupons in the in-memory store.
//!
//! ```text
//! cargo bench --bench lifecycle                      # every throughput group
//! cargo bench --bench lifecycle -- claim_hot         # one workload
//! cargo bench --bench lifecycle -- memory            # 10 million coupons, resident memory only
//! cargo bench --bench lifecycle -- memory_kept       # the same without trimming the feed
//! ```
//!
//! Requests (ids, keys) are built before the clock starts: the figures are the engine's and the
//! store's, not `format!`'s. Each measurement starts from a fresh store for the hot and
//! lock → redeem workloads, and the in-memory spread workload claims into a store held between
//! 1 and 2 million coupons, so no figure drifts with how many iterations criterion ran.

use coupons::lifecycle::Actor;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{Channel, IdempotencyKey, OrderId, Sku, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest, LifecycleError};
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, MemoryStore, Repository, TrimEvents};
use coupons::rule::{Benefit, Limits, LimitsSpec, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service, ServiceError};
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};

use coupons_sqlite::SqliteStore;

/// Templates the spread workload claims from.
const SPREAD_TEMPLATES: usize = 1_000;
/// Users the spread workload claims for.
const SPREAD_USERS: usize = 100_000;
/// The in-memory spread workload claims into a store of 1 to 2 million coupons.
const SPREAD_MEMORY: Band = Band {
    prefill: 1_000_000,
    band: 1_000_000,
};
/// SQLite claims are slower: its store starts empty and grows by what is measured.
const SPREAD_SQLITE: Band = Band {
    prefill: 0,
    band: u64::MAX / 2,
};
/// Coupons issued by the memory measurement.
const MEMORY_COUPONS: usize = 10_000_000;
/// Users of the memory measurement (ten coupons each, of ten templates).
const MEMORY_USERS: usize = 1_000_000;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn cny(yuan: i64) -> Money {
    Money::from_minor(yuan * 100, Currency::CNY)
}

/// Creates and activates a "10 off" template.
fn active_template<R: Repository>(service: &Service<R>, id: &TemplateId, limits: Limits)
where
    R::Error: std::fmt::Debug,
{
    let spec = TemplateSpec::new(
        id.clone(),
        "10 off",
        Currency::CNY,
        Benefit::instant(cny(10)).expect("benefit"),
        Validity::relative(Span::Days(7), None).expect("validity"),
    )
    .limits(limits);
    service
        .create_template(spec.build().expect("template"), now())
        .expect("create");
    for step in [
        Service::submit_template,
        Service::approve_template,
        Service::activate_template,
    ] {
        step(service, id, now()).expect("activate");
    }
}

fn limits(total_stock: Option<u64>, per_user_claims: Option<u32>) -> Limits {
    Limits::try_from(LimitsSpec {
        total_stock,
        per_user_claims,
        ..LimitsSpec::default()
    })
    .expect("limits")
}

fn claim_request(template: &TemplateId, user: &UserId, key: &str) -> ClaimRequest {
    ClaimRequest::new(
        template.clone(),
        user.clone(),
        Channel::new("app").expect("channel"),
        ClaimMode::Click,
        IdempotencyKey::new(key).expect("key"),
    )
}

/// Runs `work(share)` on one thread per share (the last share on the calling thread, so one
/// share spawns nothing), and returns the wall time from the moment all are ready until the
/// last one is done (the shares are dropped after the clock stops).
fn timed_threads<T, W>(mut inputs: Vec<Vec<T>>, work: W) -> Duration
where
    T: Send,
    W: Fn(&[T]) + Sync,
{
    let own = inputs.pop().unwrap_or_default();
    let barrier = std::sync::Barrier::new(inputs.len() + 1);
    let (elapsed, _shares) = thread::scope(|s| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|share| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    barrier.wait();
                    work(&share);
                    share
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        work(&own);
        let shares: Vec<Vec<T>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (start.elapsed(), (shares, own))
    });
    elapsed
}

/// Splits `0..n` into `threads` contiguous shares.
fn shares(n: u64, threads: usize) -> Vec<std::ops::Range<u64>> {
    let t = threads as u64;
    (0..t).map(|i| (n * i / t)..(n * (i + 1) / t)).collect()
}

// ---------------------------------------------------------------------------------------------
// Claims spread over many templates and users

/// The size band of the spread workload's store: a claim's cost grows with the store (its
/// indexes outgrow the caches), so the workload claims into a store that holds between
/// `prefill` and `prefill + band` coupons, refilled outside the clock when it would outgrow
/// the band. Without a band the figure would depend on how many iterations criterion chose.
#[derive(Clone, Copy)]
struct Band {
    prefill: u64,
    band: u64,
}

struct Spread<R: Repository> {
    make: Box<dyn Fn() -> R>,
    size: Band,
    service: Arc<Service<R>>,
    templates: Vec<TemplateId>,
    users: Vec<UserId>,
    /// Claims made so far (keys stay unique across samples and refills).
    next: u64,
    /// Claims in the current store.
    held: u64,
}

impl<R: Repository> Spread<R>
where
    R::Error: std::fmt::Debug,
{
    fn new(make: Box<dyn Fn() -> R>, size: Band) -> Spread<R> {
        let templates: Vec<TemplateId> = (0..SPREAD_TEMPLATES)
            .map(|i| TemplateId::new(format!("spread-{i:04}")).expect("id"))
            .collect();
        let users = (0..SPREAD_USERS)
            .map(|i| UserId::new(format!("user-{i:06}")).expect("id"))
            .collect();
        let service = Arc::new(Service::new(make()));
        let mut spread = Spread {
            make,
            size,
            service,
            templates,
            users,
            next: 0,
            held: 0,
        };
        spread.refill();
        spread
    }

    /// A fresh store with the templates and `prefill` claims.
    fn refill(&mut self) {
        self.service = Arc::new(Service::new((self.make)()));
        for t in &self.templates {
            active_template(&self.service, t, limits(None, None));
        }
        self.held = 0;
        for _ in 0..self.size.prefill {
            let r = self.request(self.next);
            self.service.claim(&r, now()).expect("prefill claim");
            self.next += 1;
            self.held += 1;
        }
    }

    /// The `k`-th claim: user `k % users`, a template that moves on with every round of users.
    fn request(&self, k: u64) -> ClaimRequest {
        let u = (k % self.users.len() as u64) as usize;
        let round = k / self.users.len() as u64;
        let t = ((u as u64 * 7 + round) % self.templates.len() as u64) as usize;
        claim_request(&self.templates[t], &self.users[u], &format!("spread-{k}"))
    }

    fn run(&mut self, iters: u64, threads: usize) -> Duration {
        if self.held + iters > self.size.prefill + self.size.band {
            self.refill();
        }
        let base = self.next;
        self.next += iters;
        self.held += iters;
        let inputs: Vec<Vec<ClaimRequest>> = shares(iters, threads)
            .into_iter()
            .map(|r| r.map(|i| self.request(base + i)).collect())
            .collect();
        let service = &self.service;
        timed_threads(inputs, |reqs| {
            for r in reqs {
                let c = service.claim(r, now()).expect("claim");
                std::hint::black_box(c);
            }
        })
    }
}

fn claim_spread<R: Repository + 'static>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    make: impl Fn() -> R + Clone + 'static,
    size: Band,
    threads: &[usize],
) where
    R::Error: std::fmt::Debug,
{
    group.throughput(Throughput::Elements(1));
    for &n in threads {
        let mut spread = Spread::new(Box::new(make.clone()), size);
        group.bench_function(thread_label(n), |b| {
            b.iter_custom(|iters| spread.run(iters, n))
        });
    }
}

fn thread_label(n: usize) -> String {
    if n == 1 {
        "1_thread".into()
    } else {
        format!("{n}_threads")
    }
}

// ---------------------------------------------------------------------------------------------
// A flash sale: one hot template, stock for exactly the claims measured, more buyers than stock

fn flash_sale(iters: u64, threads: usize) -> Duration {
    let service = Service::new(MemoryStore::new());
    let hot = TemplateId::new("flash-sale").expect("id");
    active_template(&service, &hot, limits(Some(iters), Some(1)));
    // Each thread brings a tenth more buyers than its share of the stock.
    let extra = iters / 10 + 1;
    let inputs: Vec<Vec<ClaimRequest>> = shares(iters, threads)
        .into_iter()
        .enumerate()
        .map(|(t, r)| {
            (r.start..r.end + extra)
                .map(|i| {
                    let user = UserId::new(format!("buyer-{t}-{i}")).expect("id");
                    claim_request(&hot, &user, &format!("hot-{t}-{i}"))
                })
                .collect()
        })
        .collect();
    let won = std::sync::atomic::AtomicU64::new(0);
    let elapsed = timed_threads(inputs, |reqs| {
        for r in reqs {
            match service.claim(r, now()) {
                Ok(c) => {
                    std::hint::black_box(c);
                    won.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(ServiceError::Lifecycle(LifecycleError::OutOfStock { .. })) => break,
                Err(e) => panic!("flash sale claim failed: {e}"),
            }
        }
    });
    // Exact: every unit of stock issued once, none more.
    let store = service.repository();
    let issued = store
        .counter(&CounterKey::Issued(hot.clone()))
        .expect("counter");
    assert_eq!(won.into_inner(), iters, "claims won");
    assert_eq!(issued, iters, "issued counter");
    assert_eq!(store.coupon_count() as u64, iters, "coupons stored");
    elapsed
}

// ---------------------------------------------------------------------------------------------
// Lock → redeem: each buyer holds one coupon, checks out a cart with it and pays

struct Checkout {
    order: OrderId,
    cart: Cart,
    buyer: Buyer,
    lock: IdempotencyKey,
    pay: IdempotencyKey,
}

fn lock_redeem(iters: u64, threads: usize) -> Duration {
    let service = Service::new(MemoryStore::new());
    let t = TemplateId::new("ten-off").expect("id");
    active_template(&service, &t, limits(None, None));
    let app = Channel::new("app").expect("channel");
    let cart = Cart::new(
        Currency::CNY,
        vec![CartLine::new(Sku::new("tea").expect("sku"), cny(50), 1)],
        Money::zero(Currency::CNY),
    )
    .expect("cart");
    let inputs: Vec<Vec<Checkout>> = shares(iters, threads)
        .into_iter()
        .map(|r| {
            r.map(|i| {
                let user = UserId::new(format!("buyer-{i}")).expect("id");
                service
                    .claim(&claim_request(&t, &user, &format!("claim-{i}")), now())
                    .expect("claim");
                Checkout {
                    order: OrderId::new(format!("order-{i}")).expect("id"),
                    cart: cart.clone(),
                    buyer: Buyer::new(user, app.clone()),
                    lock: IdempotencyKey::new(format!("lock-{i}")).expect("key"),
                    pay: IdempotencyKey::new(format!("pay-{i}")).expect("key"),
                }
            })
            .collect()
        })
        .collect();
    let paid_at = now() + chrono::Duration::minutes(1);
    timed_threads(inputs, |orders| {
        for o in orders {
            let req = LockRequest::new(&o.order, &o.cart, &o.buyer, &o.lock);
            let locked = service.quote_and_lock(&req, now()).expect("lock");
            assert_eq!(locked.coupons.len(), 1);
            let paid = service
                .pay(&o.order, &Actor::System, &o.pay, paid_at)
                .expect("pay");
            std::hint::black_box(paid);
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Memory: 10 million coupons in the in-memory store

/// The process's resident set size in bytes, from `/proc/self/status` (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Claims between two trims of the feed in the memory measurement (a consumer reading it
/// as it grows), unless it keeps the feed.
const TRIM_EVERY: u64 = 100_000;

fn memory_10m(trim: bool) {
    println!(
        "lifecycle/memory/10m ({})",
        if trim {
            "feed trimmed every 100,000 claims"
        } else {
            "feed kept"
        }
    );
    let before = resident_bytes();
    let service = Service::new(MemoryStore::new());
    let templates: Vec<TemplateId> = (0..100)
        .map(|i| TemplateId::new(format!("memory-{i:03}")).expect("id"))
        .collect();
    for t in &templates {
        active_template(&service, t, limits(None, None));
    }
    let per_user = (MEMORY_COUPONS / MEMORY_USERS) as u64;
    let start = Instant::now();
    let mut lap = start;
    let mut user = UserId::new("u").expect("id");
    for k in 0..MEMORY_COUPONS as u64 {
        let u = k / per_user;
        if k % per_user == 0 {
            user = UserId::new(format!("user-{u:07}")).expect("id");
        }
        // Ten different templates per user.
        let t = &templates[((u * 10 + k % per_user) % templates.len() as u64) as usize];
        let req = claim_request(t, &user, &format!("claim-{k:08}"));
        service.claim(&req, now()).expect("claim");
        if trim && (k + 1) % TRIM_EVERY == 0 {
            // A consumer has read everything so far.
            service.repository().trim_events(u64::MAX).expect("trim");
        }
        if (k + 1) % 1_000_000 == 0 {
            let m = (k + 1) / 1_000_000;
            let rate = 1e6 / lap.elapsed().as_secs_f64();
            println!("  coupons {:>2}M..{:>2}M: {rate:.0} claims/s", m - 1, m);
            lap = Instant::now();
        }
    }
    let elapsed = start.elapsed();
    let after = resident_bytes();
    let coupons = service.repository().coupon_count();
    assert_eq!(coupons, MEMORY_COUPONS);
    println!("  events kept: {}", service.repository().event_backlog());
    println!(
        "  issued {coupons} coupons ({MEMORY_USERS} users, {} templates) in {:.1} s ({:.0} claims/s, ids built inline)",
        templates.len(),
        elapsed.as_secs_f64(),
        coupons as f64 / elapsed.as_secs_f64()
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "  VmRSS {:.2} GB = {:.2} GiB (before: {:.1} MiB); {:.0} bytes per coupon (with its claim receipt and counters)",
            a as f64 / 1e9,
            a as f64 / (1u64 << 30) as f64,
            b as f64 / (1u64 << 20) as f64,
            a.saturating_sub(b) as f64 / coupons as f64
        ),
        _ => println!("  VmRSS unavailable (no /proc/self/status)"),
    }
    std::hint::black_box(&service);
}

// ---------------------------------------------------------------------------------------------

fn throughput(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("lifecycle/claim_spread");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        claim_spread(&mut g, MemoryStore::new, SPREAD_MEMORY, &[1, 2]);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("lifecycle/claim_hot");
        g.throughput(Throughput::Elements(1))
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(30);
        for n in [1, 2] {
            g.bench_function(thread_label(n), |b| {
                b.iter_custom(|iters| flash_sale(iters, n))
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("lifecycle/lock_redeem");
        g.throughput(Throughput::Elements(1))
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .sample_size(30);
        for n in [1, 2] {
            g.bench_function(thread_label(n), |b| {
                b.iter_custom(|iters| lock_redeem(iters, n))
            });
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("lifecycle/sqlite_claim_spread");
        g.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .sample_size(20);
        claim_spread(
            &mut g,
            || SqliteStore::temporary().expect("sqlite store"),
            SPREAD_SQLITE,
            &[1, 2],
        );
        g.finish();
    }
}

/// One spread workload for an instruction count, outside criterion: `LIFECYCLE_RUN=spread`
/// prefills the store (1 million claims) and then claims `LIFECYCLE_CLAIMS` (default 100,000)
/// more inside [`cg_spread`] (on `LIFECYCLE_THREADS` threads, default 1), so that
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*cg_spread*'` counts only
/// those: divide the total by the claims.
fn callgrind_run() -> bool {
    if std::env::var("LIFECYCLE_RUN").as_deref() != Ok("spread") {
        return false;
    }
    let claims = std::env::var("LIFECYCLE_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let threads = std::env::var("LIFECYCLE_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut spread = Spread::new(Box::new(MemoryStore::new), SPREAD_MEMORY);
    let took = cg_spread(&mut spread, claims, threads);
    println!(
        "lifecycle/claim_spread/{}: {claims} claims in {took:?}",
        thread_label(threads)
    );
    true
}

#[inline(never)]
fn cg_spread(spread: &mut Spread<MemoryStore>, claims: u64, threads: usize) -> Duration {
    spread.run(claims, threads)
}

fn main() {
    if callgrind_run() {
        return;
    }
    // The memory measurement issues 10 million coupons: it runs only when asked for by name
    // (`cargo bench --bench lifecycle -- memory`), never under `cargo test`.
    let asked_for_memory = std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a.contains("memory"));
    if asked_for_memory {
        let kept = std::env::args().skip(1).any(|a| a.contains("memory_kept"));
        memory_10m(!kept);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
}
