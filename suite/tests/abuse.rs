//! Kinds of code and abuse guards through the service: shared promo codes, one-time codes
//! without an owner, private coupons; claim, use, code-attempt and first-order guards by user,
//! device, IP, subnet and payment account; colluding accounts on threads.

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::codes::{CodeFormat, RandomError, RandomSource};
use coupons::events::{EventKind, Refusal};
use coupons::guard::presets::{self, By};
use coupons::guard::{Context, Guard, GuardError, Window};
use coupons::id::*;
use coupons::lifecycle::*;
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, MemoryStore, Repository};
use coupons::rule::*;
use coupons::service::codes::{CODE_ENTRY, RedeemRequest, Redeemed};
use coupons::service::{LockRequest, Service, ServiceConfig, ServiceError};
use coupons::testkit;
use proptest::prelude::*;

type Svc = Service<MemoryStore>;
type Res<T> = Result<T, ServiceError<coupons::repository::MemoryStoreError>>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 10, 0, 0).unwrap()
}

fn cny() -> Currency {
    Currency::CNY
}

fn service(guards: Vec<Guard>) -> Svc {
    Service::with_config(
        MemoryStore::new(),
        ServiceConfig {
            guards,
            ..Default::default()
        },
    )
    .unwrap()
}

fn spec(id: &str) -> TemplateSpec {
    TemplateSpec::new(
        TemplateId::new(id).unwrap(),
        "10 off",
        cny(),
        Benefit::instant(Money::from_minor(1000, cny())).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
}

fn active(s: &Svc, template: Template) -> TemplateId {
    let id = template.id().clone();
    s.create_template(template, now()).unwrap();
    s.submit_template(&id, now()).unwrap();
    s.approve_template(&id, now()).unwrap();
    s.activate_template(&id, now()).unwrap();
    id
}

fn private(s: &Svc, id: &str) -> TemplateId {
    active(s, spec(id).build().unwrap())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn claim(s: &Svc, t: &TemplateId, user: &str, ctx: Context) -> Res<Coupon> {
    let req = ClaimRequest::new(
        t.clone(),
        UserId::new(user).unwrap(),
        Channel::new("app").unwrap(),
        ClaimMode::Click,
        IdempotencyKey::new(format!("claim-{t}-{user}")).unwrap(),
    )
    .with_context(ctx);
    s.claim(&req, now()).map(|c| c.coupon)
}

fn held_by(r: &Res<impl std::fmt::Debug>, name: &str) -> bool {
    matches!(r, Err(ServiceError::Lifecycle(LifecycleError::GuardHeld { guard, .. })) if guard.as_str() == name)
}

fn refused_events(s: &Svc, name: &str) -> usize {
    s.repository()
        .events(0, usize::MAX)
        .unwrap()
        .iter()
        .filter(|e| {
            matches!(&e.event.kind, EventKind::Refused { refusal: Refusal::Guard { guard }, .. }
                if guard == name)
        })
        .count()
}

fn redeem(s: &Svc, code: &str, user: &str, ctx: Context) -> Res<Redeemed> {
    let req = RedeemRequest::new(
        PromoCode::new(code).unwrap(),
        UserId::new(user).unwrap(),
        Channel::new("app").unwrap(),
    )
    .with_context(ctx);
    s.redeem_code(&req, now())
}

fn unknown(r: &Res<Redeemed>) -> bool {
    matches!(
        r,
        Err(ServiceError::Lifecycle(LifecycleError::UnknownCode { .. }))
    )
}

/// A seeded source, for reproducible codes in tests only.
struct SplitMix(u64);

impl RandomSource for SplitMix {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ conformance checks

#[test]
fn memory_store_passes_the_code_checks() {
    testkit::one_time_codes_have_one_owner(MemoryStore::new()).unwrap();
    testkit::code_attempts_are_limited(MemoryStore::new()).unwrap();
    testkit::unknown_and_taken_codes_look_alike(MemoryStore::new()).unwrap();
}

// ------------------------------------------------------------------ kinds of code

#[test]
fn one_time_codes_from_a_generated_batch_redeem_once_each() {
    let s = service(vec![]);
    let t = private(&s, "gift-card");
    let format = CodeFormat::default();
    let codes = format.generate(500, SplitMix(7)).unwrap();
    let promo: Vec<PromoCode> = codes
        .iter()
        .map(|c| PromoCode::try_from(c).unwrap())
        .collect();
    let reg = s.register_codes(&t, promo.clone(), now()).unwrap();
    assert_eq!((reg.added, reg.already), (500, 0));
    // What a buyer types is read first, then redeemed.
    let typed = codes[3].as_str().to_lowercase().replace('-', " ");
    let read = PromoCode::try_from(&format.parse(&typed).unwrap()).unwrap();
    let got = redeem(&s, read.as_str(), "alice", Context::new()).unwrap();
    let Redeemed::Coupon(c) = got else {
        panic!("{got:?}")
    };
    assert_eq!(c.coupon.owner.as_str(), "alice");
    assert_eq!(c.coupon.template, t);
    assert!(!c.replayed);
    // Alice again: the same coupon; Bob: as if the code never existed.
    let again = redeem(&s, read.as_str(), "alice", Context::new()).unwrap();
    assert!(matches!(&again, Redeemed::Coupon(a) if a.replayed && a.coupon.id == c.coupon.id));
    assert!(unknown(&redeem(&s, read.as_str(), "bob", Context::new())));
    assert!(unknown(&redeem(
        &s,
        "NOPE-NOPE-NOPE",
        "bob",
        Context::new()
    )));
    // Bob redeems another card.
    assert!(matches!(
        redeem(&s, promo[4].as_str(), "bob", Context::new()),
        Ok(Redeemed::Coupon(_))
    ));
    assert_eq!(
        s.repository()
            .wallet(&UserId::new("bob").unwrap())
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.repository().counter(&CounterKey::Issued(t)).unwrap(), 2);
}

#[test]
fn registering_codes_refuses_clashes_and_non_private_templates() {
    let s = service(vec![]);
    let t = private(&s, "card");
    let other = private(&s, "other-card");
    let promo = active(
        &s,
        spec("summer")
            .distribution(Distribution::promo_code("SUMMER-10", None, None).unwrap())
            .build()
            .unwrap(),
    );
    let code = |c: &str| PromoCode::new(c).unwrap();
    assert!(matches!(
        s.register_codes(&promo, [code("CARD-1")], now()),
        Err(ServiceError::Lifecycle(LifecycleError::NotClaimable {
            distribution: "promo_code",
            ..
        }))
    ));
    assert!(matches!(
        s.register_codes(&t, [code("CARD-1"), code("SUMMER-10")], now()),
        Err(ServiceError::Lifecycle(LifecycleError::CodeTaken { template, .. })) if template == promo
    ));
    // All or nothing per batch: CARD-1 was not registered either.
    assert!(unknown(&redeem(&s, "CARD-1", "u", Context::new())));
    s.register_codes(&t, [code("CARD-1"), code("CARD-2")], now())
        .unwrap();
    let again = s
        .register_codes(&t, [code("CARD-2"), code("CARD-3")], now())
        .unwrap();
    assert_eq!((again.added, again.already), (1, 1));
    assert!(matches!(
        s.register_codes(&other, [code("CARD-3")], now()),
        Err(ServiceError::Lifecycle(LifecycleError::CodeTaken { template, .. })) if template == t
    ));
    assert!(matches!(
        s.register_codes(&TemplateId::new("missing").unwrap(), [code("X-1-X")], now()),
        Err(ServiceError::NotFound {
            what: "template",
            ..
        })
    ));
}

#[test]
fn a_shared_promo_code_is_returned_for_the_checkout_and_private_coupons_stay_private() {
    let s = service(vec![]);
    let promo = active(
        &s,
        spec("summer")
            .distribution(Distribution::promo_code("SUMMER-10", Some(100), Some(1)).unwrap())
            .build()
            .unwrap(),
    );
    let got = redeem(&s, "SUMMER-10", "alice", Context::new()).unwrap();
    assert_eq!(
        got,
        Redeemed::PromoCode {
            code: PromoCode::new("SUMMER-10").unwrap(),
            template: promo
        }
    );
    // Nothing was stored for alice; the code is used at checkout.
    assert!(
        s.repository()
            .wallet(&UserId::new("alice").unwrap())
            .unwrap()
            .is_empty()
    );
    let code = [PromoCode::new("SUMMER-10").unwrap()];
    let (order, cart, buyer, key) = order_parts("o-1", "alice");
    let locked = s
        .quote_and_lock(
            &LockRequest::new(&order, &cart, &buyer, &key).codes(&code),
            now(),
        )
        .unwrap();
    assert_eq!(locked.codes, code);
    // A private coupon: alice's only.
    let t = private(&s, "mine");
    let c = claim(&s, &t, "alice", Context::new()).unwrap();
    assert_eq!(c.owner.as_str(), "alice");
}

fn order_parts(order: &str, user: &str) -> (OrderId, Cart, Buyer, IdempotencyKey) {
    let cart = Cart::new(
        cny(),
        vec![CartLine::new(
            Sku::new("tea").unwrap(),
            Money::from_minor(5000, cny()),
            1,
        )],
        Money::zero(cny()),
    )
    .unwrap();
    (
        OrderId::new(order).unwrap(),
        cart,
        Buyer::new(UserId::new(user).unwrap(), Channel::new("app").unwrap()),
        IdempotencyKey::new(format!("lock-{order}")).unwrap(),
    )
}

// ------------------------------------------------------------------ guards

/// A context in which every subject is shared except the one under test, varied per request.
fn ctx_sharing(by: By, i: usize) -> Context {
    let base = Context::new();
    match by {
        By::User => base,
        By::Device => base.device(DeviceId::new("shared").unwrap()),
        By::Ip => base.ip(ip("203.0.113.9")),
        By::Subnet => base.ip(ip(&format!("203.0.113.{}", 10 + i))),
        By::Payment => base.payment(PaymentAccount::new("card-4242").unwrap()),
    }
}

const ALL: [By; 5] = [By::User, By::Device, By::Ip, By::Subnet, By::Payment];

#[test]
fn claim_guards_hold_by_every_subject() {
    for by in ALL {
        let g = presets::claims(by, 3, Window::Day).unwrap();
        let name = g.name().to_string();
        assert_eq!(name, format!("claims-per-{}", by.as_str()));
        let s = service(vec![g]);
        // Per user: one account over four templates; else four accounts.
        let ts: Vec<TemplateId> = (0..4).map(|i| private(&s, &format!("t{i}"))).collect();
        let mut results = Vec::new();
        for i in 0..4 {
            let (t, user) = match by {
                By::User => (&ts[i], "solo".to_string()),
                _ => (&ts[0], format!("acct-{i}")),
            };
            results.push(claim(&s, t, &user, ctx_sharing(by, i)));
        }
        assert!(
            results[..3].iter().all(Result::is_ok),
            "{by:?}: {results:?}"
        );
        assert!(held_by(&results[3], &name), "{by:?}: {:?}", results[3]);
        assert_eq!(refused_events(&s, &name), 1, "{by:?}");
        // Someone else entirely is not held.
        let fresh = Context::new()
            .device(DeviceId::new("other").unwrap())
            .ip(ip("198.51.100.1"))
            .payment(PaymentAccount::new("card-1111").unwrap());
        assert!(claim(&s, &ts[1], "stranger", fresh).is_ok(), "{by:?}");
    }
}

#[test]
fn subnet_guards_group_ipv4_by_24_and_ipv6_by_64() {
    let g = presets::claims(By::Subnet, 2, Window::Hour).unwrap();
    let s = service(vec![g]);
    let t = private(&s, "t");
    let c = |u: &str, a: &str| claim(&s, &t, u, Context::new().ip(ip(a)));
    assert!(c("a", "2001:db8:1:2::1").is_ok());
    assert!(c("b", "2001:db8:1:2:ffff::9").is_ok());
    assert!(held_by(
        &c("c", "2001:db8:1:2:abcd::1"),
        "claims-per-subnet"
    ));
    assert!(c("d", "2001:db8:1:3::1").is_ok(), "another /64");
    assert!(c("e", "192.0.2.1").is_ok());
    assert!(c("f", "192.0.2.254").is_ok());
    assert!(held_by(&c("g", "192.0.2.77"), "claims-per-subnet"));
    assert!(c("h", "192.0.3.1").is_ok(), "another /24");
}

#[test]
fn use_guards_hold_by_every_subject() {
    for by in ALL {
        let g = presets::uses(by, 2, Window::Day).unwrap();
        let name = g.name().to_string();
        let s = service(vec![g]);
        active(
            &s,
            spec("summer")
                .distribution(Distribution::promo_code("SUMMER-10", None, None).unwrap())
                .build()
                .unwrap(),
        );
        let code = [PromoCode::new("SUMMER-10").unwrap()];
        let mut results = Vec::new();
        for i in 0..3 {
            let user = match by {
                By::User => "solo".to_string(),
                _ => format!("acct-{i}"),
            };
            let (order, cart, buyer, key) = order_parts(&format!("o-{i}"), &user);
            let ctx = ctx_sharing(by, i);
            let req = LockRequest::new(&order, &cart, &buyer, &key)
                .codes(&code)
                .context(&ctx);
            results.push(s.quote_and_lock(&req, now()).map(|l| l.order));
        }
        assert!(
            results[..2].iter().all(Result::is_ok),
            "{by:?}: {results:?}"
        );
        assert!(held_by(&results[2], &name), "{by:?}: {:?}", results[2]);
    }
}

#[test]
fn failed_code_attempts_are_refused_before_any_lookup() {
    for by in [By::Device, By::Ip, By::Subnet] {
        let g = presets::code_attempts(by, 3, Window::Hour).unwrap();
        let name = g.name().to_string();
        let s = service(vec![g]);
        let t = private(&s, "card");
        s.register_codes(&t, [PromoCode::new("REAL-CODE-1").unwrap()], now())
            .unwrap();
        let ctx = |i| ctx_sharing(by, i);
        // A real redemption is given back: it does not use the allowance.
        assert!(matches!(
            redeem(&s, "REAL-CODE-1", "honest", ctx(0)),
            Ok(Redeemed::Coupon(_))
        ));
        for i in 0..3 {
            assert!(
                unknown(&redeem(&s, &format!("GUESS-{i}"), &format!("g{i}"), ctx(i))),
                "{by:?}"
            );
        }
        // Now even the real code (a replay for its owner) is refused, unread.
        let r = redeem(&s, "REAL-CODE-1", "honest", ctx(3));
        assert!(held_by(&r, &name), "{by:?}: {r:?}");
        assert!(held_by(&redeem(&s, "GUESS-9", "g9", ctx(4)), &name));
        let events = s.repository().events(0, usize::MAX).unwrap();
        let refused: Vec<_> = events
            .iter()
            .filter_map(|e| match &e.event.kind {
                EventKind::Refused {
                    template,
                    refusal: Refusal::Guard { guard },
                    ..
                } => Some((template.as_str().to_owned(), guard.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(refused, vec![(CODE_ENTRY.to_string(), name.clone()); 2]);
        // The next hour starts again.
        let later = now() + chrono::Duration::hours(1);
        let req = RedeemRequest::new(
            PromoCode::new("GUESS-X").unwrap(),
            UserId::new("g").unwrap(),
            Channel::new("app").unwrap(),
        )
        .with_context(ctx(5));
        assert!(unknown(&s.redeem_code(&req, later)));
    }
}

#[test]
fn many_new_accounts_on_one_device_or_card_get_the_first_order_coupon_a_bounded_number_of_times() {
    for by in [By::Device, By::Payment] {
        let welcome = TemplateId::new("welcome").unwrap();
        let g = presets::first_order_claims(
            by,
            vec![welcome.clone()],
            2,
            Window::rolling_days(30, 480).unwrap(),
        )
        .unwrap();
        let name = g.name().to_string();
        assert_eq!(name, format!("first-order-claims-per-{}", by.as_str()));
        let s = service(vec![g]);
        private(&s, "welcome");
        let regular = private(&s, "regular");
        let r: Vec<_> = (0..4)
            .map(|i| claim(&s, &welcome, &format!("new-{i}"), ctx_sharing(by, i)))
            .collect();
        assert!(r[0].is_ok() && r[1].is_ok(), "{by:?}: {r:?}");
        assert!(
            held_by(&r[2], &name) && held_by(&r[3], &name),
            "{by:?}: {r:?}"
        );
        // Other templates are not counted.
        for i in 0..4 {
            assert!(claim(&s, &regular, &format!("new-{i}"), ctx_sharing(by, i)).is_ok());
        }
        assert_eq!(refused_events(&s, &name), 2);
    }
    assert!(matches!(
        presets::first_order_claims(By::Device, vec![], 1, Window::Forever),
        Err(GuardError::NoTemplates { .. })
    ));
}

#[test]
fn the_standard_set_is_valid_and_named() {
    let names: Vec<String> = presets::standard(&[TemplateId::new("welcome").unwrap()])
        .unwrap()
        .iter()
        .map(|g| g.name().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "claims-per-device",
            "claims-per-subnet",
            "code-attempts-per-device",
            "code-attempts-per-ip",
            "code-attempts-per-subnet",
            "first-order-claims-per-device",
            "first-order-claims-per-payment"
        ]
    );
    assert_eq!(presets::standard(&[]).unwrap().len(), 5);
    assert!(presets::claims(By::Ip, 0, Window::Day).is_err());
}

// ------------------------------------------------------------------ collusion on threads

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Colluding accounts on several threads share a device, an IP or a payment account
    /// (each with its own guard) and claim in any interleaving the scheduler picks: no more
    /// claims get through than the tightest limit that applies, and exactly that many when
    /// demand exceeds it.
    #[test]
    fn colluding_accounts_never_get_past_the_limit(
        shared in 0usize..3,
        limit in 1u64..8,
        threads in 2usize..8,
        per_thread in 1usize..6,
        retries in proptest::bool::ANY,
    ) {
        let by = [By::Device, By::Ip, By::Payment][shared];
        let g = presets::claims(by, limit, Window::Day).unwrap();
        let name = g.name().to_string();
        let s = service(vec![
            g,
            presets::claims(By::Subnet, 1_000, Window::Hour).unwrap(),
        ]);
        let t = private(&s, "t");
        let ctx = match by {
            By::Device => Context::new().device(DeviceId::new("farm").unwrap()),
            By::Ip => Context::new().ip(ip("203.0.113.50")),
            _ => Context::new().payment(PaymentAccount::new("card-9").unwrap()),
        };
        let (won, held): (usize, usize) = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|th| {
                    let (s, t, ctx, name) = (&s, &t, &ctx, &name);
                    sc.spawn(move || {
                        let (mut won, mut held) = (0, 0);
                        for i in 0..per_thread {
                            let user = format!("acct-{th}-{i}");
                            let first = claim(s, t, &user, ctx.clone());
                            // A retry with the same key replays, never counts twice.
                            let again = retries.then(|| claim(s, t, &user, ctx.clone()));
                            match first {
                                Ok(c) => {
                                    won += 1;
                                    if let Some(a) = again {
                                        assert_eq!(a.unwrap().id, c.id);
                                    }
                                }
                                Err(e) => {
                                    assert!(held_by(&Err::<(), _>(e), name));
                                    held += 1;
                                    if let Some(a) = again {
                                        assert!(held_by(&a, name), "{a:?}");
                                        held += 1;
                                    }
                                }
                            }
                        }
                        (won, held)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
        });
        let demand = (threads * per_thread) as u64;
        prop_assert_eq!(won as u64, demand.min(limit));
        let subject = match by {
            By::Device => "device=farm",
            By::Ip => "ip=203.0.113.50",
            _ => "payment=card-9",
        };
        let counted = s
            .repository()
            .counter(&CounterKey::Guard {
                guard: GuardName::new(&name).unwrap(),
                subject: subject.into(),
                bucket: Window::Day.bucket(now()).0,
            })
            .unwrap();
        prop_assert_eq!(counted, won as u64);
        prop_assert_eq!(refused_events(&s, &name), held);
    }

    /// Accounts racing on threads for a handful of one-time codes: each code has exactly one
    /// owner whatever the interleaving.
    #[test]
    fn racing_accounts_own_each_one_time_code_once(
        codes in 1usize..6,
        threads in 2usize..9,
    ) {
        let s = service(vec![]);
        let t = private(&s, "card");
        let list: Vec<PromoCode> = (0..codes).map(|i| PromoCode::new(&format!("CARD-{i}-Z")).unwrap()).collect();
        s.register_codes(&t, list.clone(), now()).unwrap();
        let wins: Vec<Vec<usize>> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|th| {
                    let (s, list) = (&s, &list);
                    sc.spawn(move || {
                        let mut mine = Vec::new();
                        for j in 0..list.len() {
                            let i = (j + th) % list.len();
                            match redeem(s, list[i].as_str(), &format!("r{th}"), Context::new()) {
                                Ok(Redeemed::Coupon(_)) => mine.push(i),
                                r => assert!(unknown(&r), "{r:?}"),
                            }
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut owners = vec![0; codes];
        for w in wins.iter().flatten() {
            owners[*w] += 1;
        }
        prop_assert!(owners.iter().all(|&n| n == 1), "{:?}", owners);
    }
}
