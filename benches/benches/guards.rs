//! A claim with three abuse guards attached (claims per device, per /24-/64 subnet and per
//! payment account) beside a plain claim, through [`Service`] on the in-memory store, one
//! thread; and a one-time code redeemed with an attempt guard.
//!
//! ```text
//! cargo bench -p coupons-benches --bench guards
//! cargo bench -p coupons-benches --bench guards -- guards/claim
//! ```
//!
//! Requests (ids, keys, contexts) are built before the clock starts, and every measurement
//! claims into a fresh store, so the rows do the same work but the guards' counts. Each request
//! comes from its own account; in `three_guards` also from its own device, address and card
//! (every guard inserts a new subject), in `three_guards_shared` four accounts share them. The
//! limits are high: the guards count and never hold.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use coupons::guard::presets::{self, By};
use coupons::guard::{Context, Guard, Window};
use coupons::id::{Channel, DeviceId, IdempotencyKey, PaymentAccount, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest};
use coupons::money::{Currency, Money};
use coupons::repository::MemoryStore;
use coupons::rule::{Benefit, PromoCode, Span, TemplateSpec, Validity};
use coupons::service::codes::RedeemRequest;
use coupons::service::{Service, ServiceConfig};
use criterion::Criterion;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn service(guards: Vec<Guard>) -> (Service<MemoryStore>, TemplateId) {
    let service = Service::with_config(
        MemoryStore::new(),
        ServiceConfig {
            guards,
            ..Default::default()
        },
    )
    .expect("config");
    let id = TemplateId::new("ten-off").expect("id");
    let spec = TemplateSpec::new(
        id.clone(),
        "10 off",
        Currency::CNY,
        Benefit::instant(Money::from_minor(1000, Currency::CNY)).expect("benefit"),
        Validity::relative(Span::Days(7), None).expect("validity"),
    );
    service
        .create_template(spec.build().expect("template"), now())
        .expect("create");
    for step in [
        Service::submit_template,
        Service::approve_template,
        Service::activate_template,
    ] {
        step(&service, &id, now()).expect("activate");
    }
    (service, id)
}

fn three_guards() -> Vec<Guard> {
    vec![
        presets::claims(By::Device, 1_000_000, Window::Day).expect("guard"),
        presets::claims(By::Subnet, 1_000_000, Window::Hour).expect("guard"),
        presets::claims(
            By::Payment,
            1_000_000,
            Window::rolling_days(7, 480).expect("window"),
        )
        .expect("guard"),
    ]
}

/// What the requests' ids and addresses look like.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Short ids (`u-1`, `dev-1`) and IPv4 addresses.
    Short,
    /// Ids as apps and payment providers send them (account ids, request keys, device UUIDs,
    /// card tokens), IPv4 addresses.
    Long,
    /// Those ids from IPv6 clients (a mobile network's /64 with a random interface id).
    LongV6,
}

/// The context of the `i`-th subject: short ids, or (`Long`) ids as apps and payment providers
/// send them — a 36-character device UUID and a 28-character card token — and (`LongV6`) an
/// IPv6 address.
fn context(i: u64, shape: Shape) -> Context {
    let long = shape != Shape::Short;
    let b = i.to_be_bytes();
    let (device, card) = if long {
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xffff,
                (h >> 4) & 0xfff,
                i & 0xfff,
                i
            ),
            format!("tok_{:024x}", u128::from(h) << 32 | u128::from(i)),
        )
    } else {
        (format!("dev-{i}"), format!("card-{i}"))
    };
    Context::new()
        .device(DeviceId::new(device).expect("device"))
        .ip(if shape == Shape::LongV6 {
            let h = i.wrapping_mul(0x2545_f491_4f6c_dd1d);
            IpAddr::V6(Ipv6Addr::new(
                0x2a02,
                0x8109,
                u16::from_be_bytes([b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]]),
                (h >> 48) as u16,
                (h >> 32) as u16,
                (h >> 16) as u16,
                h as u16,
            ))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, b[5], b[6], b[7]))
        })
        .payment(PaymentAccount::new(card).expect("card"))
}

/// The `i`-th id: `short-i`, or (`long`) `long-` and 32 hexadecimal digits of `i` scrambled
/// by `mul`.
fn id(long: bool, long_prefix: &str, short: &str, i: u64, mul: u128) -> String {
    if long {
        format!("{long_prefix}-{:032x}", u128::from(i).wrapping_mul(mul))
    } else {
        format!("{short}-{i}")
    }
}

/// `n` claims, `share` accounts to a device, address and card (`Long`, `LongV6`: account ids
/// and request keys of 37 and 36 characters, and the long ids of [`context`]).
fn requests(t: &TemplateId, n: u64, share: u64, shape: Shape) -> Vec<ClaimRequest> {
    let long = shape != Shape::Short;
    let channel = Channel::new("app").expect("channel");
    (0..n)
        .map(|i| {
            ClaimRequest::new(
                t.clone(),
                UserId::new(id(long, "user", "u", i, 0x9e37_79b9_7f4a_7c15)).expect("user"),
                channel.clone(),
                ClaimMode::Click,
                IdempotencyKey::new(id(long, "req", "k", i, 0x2545_f491_4f6c_dd1d)).expect("key"),
            )
            .with_context(context(i / share, shape))
        })
        .collect()
}

fn claims(iters: u64, guards: Vec<Guard>, share: u64, shape: Shape) -> Duration {
    let (service, t) = service(guards);
    let reqs = requests(&t, iters, share, shape);
    let start = Instant::now();
    for r in &reqs {
        service.claim(r, now()).expect("claim");
    }
    let took = start.elapsed();
    drop(reqs);
    took
}

fn redeems(iters: u64) -> Duration {
    let (service, t) = service(vec![
        presets::code_attempts(By::Ip, 10, Window::Hour).expect("guard"),
    ]);
    let codes: Vec<PromoCode> = (0..iters)
        .map(|i| PromoCode::new(&format!("CARD-{i:012}")).expect("code"))
        .collect();
    service
        .register_codes(&t, codes.iter().cloned(), now())
        .expect("register");
    let channel = Channel::new("app").expect("channel");
    let reqs: Vec<RedeemRequest> = codes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            RedeemRequest::new(
                c,
                UserId::new(format!("u-{i}")).expect("user"),
                channel.clone(),
            )
            .with_context(context(i as u64, Shape::Short))
        })
        .collect();
    let start = Instant::now();
    for r in &reqs {
        service.redeem_code(r, now()).expect("redeem");
    }
    start.elapsed()
}

/// One workload for an instruction count, outside criterion: `GUARDS_RUN=plain`,
/// `three_guards`, `plain_long_ids`, `three_guards_long_ids`, `plain_ipv6`, `three_guards_ipv6`
/// or `three_guards_shared` claims
/// `GUARDS_CLAIMS`
/// (default 20,000) into a fresh store inside [`cg_claims`], so that
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*cg_claims*'` counts only
/// those: divide the total by the claims.
fn callgrind_run() -> bool {
    let Ok(run) = std::env::var("GUARDS_RUN") else {
        return false;
    };
    let n = std::env::var("GUARDS_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let (guards, share, shape) = match run.as_str() {
        "plain" => (vec![], 1, Shape::Short),
        "three_guards" => (three_guards(), 1, Shape::Short),
        "plain_long_ids" => (vec![], 1, Shape::Long),
        "three_guards_long_ids" => (three_guards(), 1, Shape::Long),
        "plain_ipv6" => (vec![], 1, Shape::LongV6),
        "three_guards_ipv6" => (three_guards(), 1, Shape::LongV6),
        _ => (three_guards(), 4, Shape::Short),
    };
    let (service, t) = service(guards);
    let reqs = requests(&t, n, share, shape);
    let took = cg_claims(&service, &reqs);
    println!("guards/claim/{run}: {n} claims in {took:?}");
    true
}

#[inline(never)]
fn cg_claims(service: &Service<MemoryStore>, reqs: &[ClaimRequest]) -> Duration {
    let start = Instant::now();
    for r in reqs {
        service.claim(r, now()).expect("claim");
    }
    start.elapsed()
}

fn main() {
    if callgrind_run() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("guards");
    g.bench_function("claim/plain", |b| {
        b.iter_custom(|n| claims(n, vec![], 1, Shape::Short))
    });
    g.bench_function("claim/three_guards", |b| {
        b.iter_custom(|n| claims(n, three_guards(), 1, Shape::Short))
    });
    // Account ids, request keys, device UUIDs and card tokens of the lengths apps and payment
    // providers send.
    g.bench_function("claim/plain_long_ids", |b| {
        b.iter_custom(|n| claims(n, vec![], 1, Shape::Long))
    });
    g.bench_function("claim/three_guards_long_ids", |b| {
        b.iter_custom(|n| claims(n, three_guards(), 1, Shape::Long))
    });
    // The same from IPv6 clients.
    g.bench_function("claim/plain_ipv6", |b| {
        b.iter_custom(|n| claims(n, vec![], 1, Shape::LongV6))
    });
    g.bench_function("claim/three_guards_ipv6", |b| {
        b.iter_custom(|n| claims(n, three_guards(), 1, Shape::LongV6))
    });
    // Four accounts to a device and card: three of four claims count existing subjects.
    g.bench_function("claim/three_guards_shared", |b| {
        b.iter_custom(|n| claims(n, three_guards(), 4, Shape::Short))
    });
    g.bench_function("redeem_code/attempt_guard", |b| b.iter_custom(redeems));
    g.finish();
    c.final_summary();
}
