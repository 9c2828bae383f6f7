//! Lifecycle scenarios through the service, and the repository conformance suite on the
//! in-memory store.

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{Blocked, CheckoutError, Ineligible, OfferId};
use coupons::id::*;
use coupons::lifecycle::*;
use coupons::lifecycle::{Actor, RefundRequest};
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, MemoryStore, Repository};
use coupons::rule::*;
use coupons::service::{LockRequest, Service, ServiceError};
use coupons::testkit;

#[test]
fn memory_store_passes_conformance_suite() {
    testkit::run_all(MemoryStore::new).unwrap();
}

mod broken {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use coupons::id::{CampaignId, CouponId, OrderId, TemplateId, UserId};
    use coupons::lifecycle::{Campaign, Coupon, TemplateRecord};
    use coupons::repository::*;

    /// A store that forgets counter limits, or applies batches op by op.
    pub struct Broken {
        pub inner: MemoryStore,
        pub ignore_limits: bool,
        pub not_atomic: bool,
        /// Writes a refused batch's events anyway.
        pub leaky_events: bool,
    }

    impl Repository for Broken {
        type Error = MemoryStoreError;
        fn template(
            &self,
            id: &TemplateId,
        ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, Self::Error> {
            self.inner.template(id)
        }
        fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, Self::Error> {
            self.inner.templates()
        }
        fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, Self::Error> {
            self.inner.campaign(id)
        }
        fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, Self::Error> {
            self.inner.coupon(id)
        }
        fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.wallet(user)
        }
        fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.order_coupons(order)
        }
        fn due(
            &self,
            now: DateTime<Utc>,
            limit: usize,
        ) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.due(now, limit)
        }
        fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, Self::Error> {
            self.inner.held(now, limit)
        }
        fn order(
            &self,
            id: &OrderId,
        ) -> Result<Option<Versioned<coupons::lifecycle::Order>>, Self::Error> {
            self.inner.order(id)
        }
        fn counter(&self, key: &CounterKey) -> Result<u64, Self::Error> {
            self.inner.counter(key)
        }
        fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, Self::Error> {
            self.inner.receipt(key)
        }
        fn events(&self, after: u64, limit: usize) -> Result<Vec<Logged>, Self::Error> {
            self.inner.events(after, limit)
        }
        fn commit(&self, batch: &Batch) -> Result<Commit, Self::Error> {
            let mut batch = batch.clone();
            if self.ignore_limits {
                for op in &mut batch.ops {
                    if let Op::Count { limit, .. } = op {
                        *limit = None;
                    }
                }
            }
            if self.not_atomic {
                for (index, op) in batch.ops.iter().enumerate() {
                    let one = Batch {
                        ops: vec![op.clone()],
                    };
                    if self.inner.commit(&one)? != Commit::Applied {
                        return Ok(Commit::Conflict { index });
                    }
                }
                return Ok(Commit::Applied);
            }
            let done = self.inner.commit(&batch)?;
            if self.leaky_events && done != Commit::Applied {
                let events = Batch {
                    ops: batch
                        .ops
                        .iter()
                        .filter(|op| matches!(op, Op::Emit { .. }))
                        .cloned()
                        .collect(),
                };
                let _ = self.inner.commit(&events)?;
            }
            Ok(done)
        }
    }
}

#[test]
fn conformance_suite_catches_a_store_that_keeps_a_refused_batchs_events() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: false,
        not_atomic: false,
        leaky_events: true,
    };
    let e = testkit::events_commit_with_their_change(make()).unwrap_err();
    assert_eq!(e.check, "events_commit_with_their_change", "{e}");
}

#[test]
fn conformance_suite_catches_a_store_whose_order_writes_are_not_atomic() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: false,
        not_atomic: true,
        leaky_events: false,
    };
    let e = testkit::order_records_are_conditional(make()).unwrap_err();
    assert_eq!(e.check, "order_records_are_conditional", "{e}");
}

#[test]
fn conformance_suite_catches_a_store_that_ignores_limits() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: true,
        not_atomic: false,
        leaky_events: false,
    };
    let e = testkit::counters_and_limits(make()).unwrap_err();
    assert_eq!(e.check, "counters_and_limits");
    let e = testkit::concurrent_claims_are_exact(make()).unwrap_err();
    assert_eq!(e.check, "concurrent_claims_are_exact", "{e}");
    assert!(testkit::run_all(make).is_err());
}

#[test]
fn conformance_suite_catches_a_store_that_is_not_atomic() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: false,
        not_atomic: true,
        leaky_events: false,
    };
    let e = testkit::batches_are_all_or_nothing(make()).unwrap_err();
    assert_eq!(e.check, "batches_are_all_or_nothing", "{e}");
    println!("{e}");
}

// ------------------------------------------------------------------------------- scenarios

type Svc = Service<MemoryStore>;
type Err = ServiceError<coupons::repository::MemoryStoreError>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 10, 0, 0).unwrap()
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, Currency::CNY)
}

fn spec(id: &str) -> TemplateSpec {
    TemplateSpec::new(
        TemplateId::new(id).unwrap(),
        "10 off",
        Currency::CNY,
        Benefit::instant(yuan(10)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
}

fn limits(stock: Option<u64>, per_user_claims: Option<u32>, per_user_uses: Option<u32>) -> Limits {
    Limits::try_from(LimitsSpec {
        total_stock: stock,
        per_user_claims,
        per_user_uses,
        ..Default::default()
    })
    .unwrap()
}

fn activate(svc: &Svc, spec: TemplateSpec) -> TemplateId {
    let id = spec.id.clone();
    svc.create_template(spec.build().unwrap(), t0()).unwrap();
    svc.submit_template(&id, t0()).unwrap();
    svc.approve_template(&id, t0()).unwrap();
    svc.activate_template(&id, t0()).unwrap();
    id
}

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn k(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(s).unwrap()
}

fn order(s: &str) -> OrderId {
    OrderId::new(s).unwrap()
}

fn claim_req(t: &TemplateId, u: &str, key: &str) -> ClaimRequest {
    ClaimRequest::new(
        t.clone(),
        user(u),
        Channel::new("app").unwrap(),
        ClaimMode::Click,
        k(key),
    )
}

fn claim(svc: &Svc, t: &TemplateId, u: &str, key: &str, now: DateTime<Utc>) -> Coupon {
    svc.claim(&claim_req(t, u, key), now).unwrap().coupon
}

fn cart() -> Cart {
    Cart::new(
        Currency::CNY,
        vec![CartLine::new(Sku::new("tea").unwrap(), yuan(100), 1)],
        Money::zero(Currency::CNY),
    )
    .unwrap()
}

fn buyer(u: &str) -> Buyer {
    Buyer::new(user(u), Channel::new("app").unwrap())
}

fn lock(
    svc: &Svc,
    o: &str,
    u: &str,
    now: DateTime<Utc>,
) -> Result<coupons::service::LockedOrder, Err> {
    let (o, c, b, key) = (order(o), cart(), buyer(u), k(&format!("lock-{o}")));
    svc.quote_and_lock(&LockRequest::new(&o, &c, &b, &key), now)
}

fn state(svc: &Svc, c: &CouponId) -> CouponState {
    svc.repository().coupon(c).unwrap().unwrap().value.state
}

fn uses(svc: &Svc, t: &TemplateId, u: &str) -> u64 {
    svc.repository()
        .counter(&CounterKey::UserUses(t.clone(), user(u)))
        .unwrap()
}

fn lifecycle_err<T: std::fmt::Debug>(r: Result<T, Err>) -> LifecycleError {
    match r {
        Err(ServiceError::Lifecycle(e)) => e,
        other => panic!("expected a lifecycle error, got {other:?}"),
    }
}

#[test]
fn only_active_templates_issue() {
    let svc = Service::new(MemoryStore::new());
    let id = TemplateId::new("t").unwrap();
    svc.create_template(spec("t").build().unwrap(), t0())
        .unwrap();
    let try_claim = |n: &str| svc.claim(&claim_req(&id, "alice", n), t0());
    type Step = fn(&Svc, &TemplateId, DateTime<Utc>) -> Result<std::sync::Arc<TemplateRecord>, Err>;
    let steps: [(&str, Step); 3] = [
        ("draft", Svc::submit_template),
        ("pending", Svc::approve_template),
        ("approved", Svc::activate_template),
    ];
    for (name, step) in steps {
        assert!(
            matches!(
                lifecycle_err(try_claim(name)),
                LifecycleError::NotIssuing { .. }
            ),
            "{name}"
        );
        step(&svc, &id, t0()).unwrap();
    }
    try_claim("active").unwrap();
    svc.pause_template(&id, t0()).unwrap();
    assert!(matches!(
        lifecycle_err(try_claim("paused")),
        LifecycleError::NotIssuing {
            status: TemplateStatus::Paused,
            ..
        }
    ));
    svc.resume_template(&id, t0()).unwrap();
    try_claim("resumed").unwrap();
    svc.retire_template(&id, t0()).unwrap();
    assert!(matches!(
        lifecycle_err(try_claim("retired")),
        LifecycleError::NotIssuing {
            status: TemplateStatus::Retired,
            ..
        }
    ));
    // A retry of a claim made while active still returns its coupon.
    assert!(try_claim("active").unwrap().replayed);
}

#[test]
fn template_transitions_are_checked_and_idempotent() {
    let svc = Service::new(MemoryStore::new());
    let id = TemplateId::new("t").unwrap();
    svc.create_template(spec("t").build().unwrap(), t0())
        .unwrap();
    // The same template again is fine; other rules under the same id are not.
    svc.create_template(spec("t").build().unwrap(), t0())
        .unwrap();
    let other = spec("t").terms("other").build().unwrap();
    assert!(matches!(
        lifecycle_err(svc.create_template(other, t0())),
        LifecycleError::TemplateExists { .. }
    ));
    assert!(matches!(
        lifecycle_err(svc.activate_template(&id, t0())),
        LifecycleError::IllegalTemplateTransition {
            status: TemplateStatus::Draft,
            action: TemplateAction::Activate,
            ..
        }
    ));
    svc.submit_template(&id, t0()).unwrap();
    svc.submit_template(&id, t0()).unwrap();
    let r = svc.reject_template(&id, "over budget", t0()).unwrap();
    assert_eq!(
        r.status,
        TemplateStatus::Rejected {
            reason: "over budget".into()
        }
    );
    assert!(svc.approve_template(&id, t0()).is_err());
    assert!(matches!(
        svc.submit_template(&TemplateId::new("missing").unwrap(), t0()),
        Err(ServiceError::NotFound {
            what: "template",
            ..
        })
    ));
}

#[test]
fn retired_template_leaves_issued_coupons_usable() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    svc.retire_template(&t, t0()).unwrap();
    let l = lock(&svc, "o1", "alice", t0() + Duration::hours(1)).unwrap();
    assert_eq!(l.coupons.len(), 1);
    assert_eq!(l.quote.total_after, yuan(90));
    svc.pay(
        &order("o1"),
        &Actor::System,
        &k("pay-o1"),
        t0() + Duration::hours(1),
    )
    .unwrap();
    assert!(matches!(state(&svc, &c.id), CouponState::Used { .. }));
}

#[test]
fn claim_records_channel_mode_campaign_and_validity() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let camp = Campaign::new(
        CampaignId::new("spring").unwrap(),
        "Spring sale",
        "One per person",
        t0(),
        t0() + Duration::days(2),
        vec![t.clone()],
    )
    .unwrap();
    svc.create_campaign(camp.clone(), t0()).unwrap();
    svc.set_campaign_online(&camp.id, true, t0()).unwrap();
    let now = t0() + Duration::hours(3);
    let req = ClaimRequest::new(
        t.clone(),
        user("alice"),
        Channel::new("push").unwrap(),
        ClaimMode::Auto,
        k("c1"),
    )
    .in_campaign(camp.id.clone());
    let c = svc.claim(&req, now).unwrap().coupon;
    assert_eq!(c.channel.as_str(), "push");
    assert_eq!(c.mode, ClaimMode::Auto);
    assert_eq!(c.campaign.as_ref(), Some(&camp.id));
    assert_eq!(
        (c.claimed_at, c.valid_from, c.valid_until),
        (now, now, now + Duration::days(7))
    );
    assert_eq!(svc.repository().coupon(&c.id).unwrap().unwrap().value, c);
}

#[test]
fn campaign_coupon_usable_after_campaign_ends() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let other = activate(&svc, spec("other"));
    let camp = Campaign::new(
        CampaignId::new("flash").unwrap(),
        "Flash sale",
        "",
        t0(),
        t0() + Duration::hours(2),
        vec![t.clone()],
    )
    .unwrap();
    svc.create_campaign(camp.clone(), t0()).unwrap();
    let req =
        |tpl: &TemplateId, key: &str| claim_req(tpl, "alice", key).in_campaign(camp.id.clone());
    assert!(matches!(
        lifecycle_err(svc.claim(&req(&t, "offline"), t0())),
        LifecycleError::CampaignNotOngoing {
            state: CampaignState::Offline,
            ..
        }
    ));
    svc.set_campaign_online(&camp.id, true, t0()).unwrap();
    assert!(matches!(
        lifecycle_err(svc.claim(&req(&t, "early"), t0() - Duration::minutes(1))),
        LifecycleError::CampaignNotOngoing {
            state: CampaignState::NotStarted,
            ..
        }
    ));
    assert!(matches!(
        lifecycle_err(svc.claim(&req(&other, "not-offered"), t0())),
        LifecycleError::NotOffered { .. }
    ));
    let c = svc
        .claim(&req(&t, "ok"), t0() + Duration::hours(1))
        .unwrap()
        .coupon;
    let after = t0() + Duration::days(3);
    assert!(matches!(
        lifecycle_err(svc.claim(&req(&t, "late"), after)),
        LifecycleError::CampaignNotOngoing {
            state: CampaignState::Ended,
            ..
        }
    ));
    // The campaign is over; the coupon is valid for 7 days from its claim.
    lock(&svc, "o1", "alice", after).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), after)
        .unwrap();
    assert!(matches!(state(&svc, &c.id), CouponState::Used { .. }));
}

#[test]
fn claimed_too_late_is_refused() {
    let svc = Service::new(MemoryStore::new());
    let fixed = spec("fixed").validity_fixed();
    let t = activate(&svc, fixed);
    assert!(matches!(
        lifecycle_err(svc.claim(&claim_req(&t, "alice", "late"), t0() + Duration::days(2))),
        LifecycleError::ClaimedTooLate { .. }
    ));
    let c = claim(&svc, &t, "alice", "early", t0() - Duration::days(5));
    assert_eq!(
        (c.valid_from, c.valid_until),
        (t0(), t0() + Duration::days(1))
    );
}

trait FixedValidity {
    fn validity_fixed(self) -> TemplateSpec;
}

impl FixedValidity for TemplateSpec {
    fn validity_fixed(mut self) -> TemplateSpec {
        self.validity = Validity::fixed(t0(), t0() + Duration::days(1)).unwrap();
        self
    }
}

#[test]
fn stock_and_per_user_claim_limits_are_exact() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(Some(3), Some(2), None)));
    claim(&svc, &t, "alice", "a1", t0());
    claim(&svc, &t, "alice", "a2", t0());
    assert!(matches!(
        lifecycle_err(svc.claim(&claim_req(&t, "alice", "a3"), t0())),
        LifecycleError::ClaimLimitReached { limit: 2, .. }
    ));
    claim(&svc, &t, "bob", "b1", t0());
    assert!(matches!(
        lifecycle_err(svc.claim(&claim_req(&t, "carol", "c1"), t0())),
        LifecycleError::OutOfStock { stock: 3, .. }
    ));
    assert_eq!(
        svc.repository()
            .counter(&CounterKey::Issued(t.clone()))
            .unwrap(),
        3
    );
    // Retries after the stock ran out still return their coupon.
    assert!(
        svc.claim(&claim_req(&t, "alice", "a1"), t0())
            .unwrap()
            .replayed
    );
    // A key reused by another user is refused.
    assert!(matches!(
        lifecycle_err(svc.claim(&claim_req(&t, "mallory", "a1"), t0())),
        LifecycleError::KeyReused { .. }
    ));
}

#[test]
fn automatic_and_promo_code_templates_are_not_claimed() {
    let svc = Service::new(MemoryStore::new());
    let auto = activate(&svc, spec("auto").distribution(Distribution::Automatic));
    let code = activate(
        &svc,
        spec("code").distribution(Distribution::promo_code("SPRING", None, None).unwrap()),
    );
    for (t, kind) in [(auto, "automatic"), (code, "promo_code")] {
        match lifecycle_err(svc.claim(&claim_req(&t, "alice", kind), t0())) {
            LifecycleError::NotClaimable { distribution, .. } => assert_eq!(distribution, kind),
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn refund_after_payment_voids_coupon() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    let r = svc
        .refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Buyer),
            &k("refund"),
            t0() + Duration::days(1),
        )
        .unwrap();
    assert_eq!((r.returned.len(), r.voided), (0, vec![c.id.clone()]));
    assert!(matches!(state(&svc, &c.id), CouponState::Voided { .. }));
    assert_eq!(
        uses(&svc, &t, "alice"),
        1,
        "a voided coupon's use stays counted"
    );
}

#[test]
fn merchant_refund_before_completion_returns_coupon() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(1))));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    assert_eq!(uses(&svc, &t, "alice"), 1);
    let r = svc
        .refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("refund"),
            t0() + Duration::hours(1),
        )
        .unwrap();
    assert_eq!(r.returned, vec![c.id.clone()]);
    assert_eq!(state(&svc, &c.id), CouponState::Available);
    assert_eq!(uses(&svc, &t, "alice"), 0, "the use is given back");
    // The returned coupon can be used again.
    let again = lock(&svc, "o2", "alice", t0() + Duration::hours(2)).unwrap();
    assert_eq!(again.coupons[0].id, c.id);
}

#[test]
fn merchant_refund_past_validity_expires_coupon() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    let late = t0() + Duration::days(8);
    let r = svc
        .refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("refund"),
            late,
        )
        .unwrap();
    assert_eq!(r.returned, vec![c.id.clone()]);
    assert_eq!(state(&svc, &c.id), CouponState::Expired { at: late });
}

#[test]
fn per_template_refund_policy_changes_the_outcome() {
    let svc = Service::new(MemoryStore::new());
    let generous = RefundPolicy {
        merchant_refund_returns: false,
        buyer_refund_returns: true,
    };
    let t = activate(&svc, spec("t").refund(generous));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    svc.refund(
        &order("o1"),
        &Actor::Merchant,
        &RefundRequest::whole(RefundKind::Buyer),
        &k("refund"),
        t0(),
    )
    .unwrap();
    assert_eq!(state(&svc, &c.id), CouponState::Available);
    lock(&svc, "o2", "alice", t0()).unwrap();
    svc.pay(&order("o2"), &Actor::System, &k("pay2"), t0())
        .unwrap();
    svc.refund(
        &order("o2"),
        &Actor::Merchant,
        &RefundRequest::whole(RefundKind::Merchant),
        &k("refund2"),
        t0(),
    )
    .unwrap();
    assert!(matches!(state(&svc, &c.id), CouponState::Voided { .. }));
}

#[test]
fn retried_pay_counts_once() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(2))));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    let first = svc
        .pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    let version = svc.repository().coupon(&c.id).unwrap().unwrap().version;
    for i in 0..3 {
        let again = svc
            .pay(
                &order("o1"),
                &Actor::System,
                &k("pay"),
                t0() + Duration::minutes(i),
            )
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.coupons, first.coupons);
    }
    // Another key for the same order: the order is paid once.
    assert!(
        svc.pay(&order("o1"), &Actor::System, &k("pay-again"), t0())
            .unwrap()
            .replayed
    );
    assert_eq!(
        svc.repository().coupon(&c.id).unwrap().unwrap().version,
        version
    );
    assert_eq!(uses(&svc, &t, "alice"), 1);
}

#[test]
fn retried_refund_returns_once() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(3))));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())
        .unwrap();
    let first = svc
        .refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("r"),
            t0(),
        )
        .unwrap();
    let second = svc
        .refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("r"),
            t0(),
        )
        .unwrap();
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.returned, second.returned);
    assert_eq!(uses(&svc, &t, "alice"), 0, "the use came back once");
    assert!(matches!(
        lifecycle_err(svc.refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("r2"),
            t0()
        )),
        LifecycleError::OrderAlreadyRefunded { .. }
    ));
    assert_eq!(state(&svc, &c.id), CouponState::Available);
}

#[test]
fn refund_needs_a_paid_order() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    assert!(matches!(
        lifecycle_err(svc.refund(
            &order("o1"),
            &Actor::Merchant,
            &RefundRequest::whole(RefundKind::Merchant),
            &k("r"),
            t0()
        )),
        LifecycleError::OrderNotPaid { .. }
    ));
}

#[test]
fn cancel_releases_coupon_and_gives_use_back() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(1))));
    let c = claim(&svc, &t, "alice", "c1", t0());
    let l = lock(&svc, "o1", "alice", t0()).unwrap();
    assert_eq!(l.hold_until, Some(t0() + Duration::minutes(15)));
    assert_eq!(
        state(&svc, &c.id),
        CouponState::Locked {
            order: order("o1"),
            until: t0() + Duration::minutes(15)
        }
    );
    assert_eq!(uses(&svc, &t, "alice"), 1);
    let s = svc
        .cancel(&order("o1"), &Actor::System, &k("cancel"), t0())
        .unwrap();
    assert_eq!(s.coupons, vec![c.id.clone()]);
    assert_eq!(state(&svc, &c.id), CouponState::Available);
    assert_eq!(uses(&svc, &t, "alice"), 0);
    assert!(matches!(
        lifecycle_err(svc.pay(&order("o1"), &Actor::System, &k("pay"), t0())),
        LifecycleError::OrderReleased { .. }
    ));
}

#[test]
fn release_after_validity_expires_coupon() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    let near_end = c.valid_until - Duration::minutes(5);
    lock(&svc, "o1", "alice", near_end).unwrap();
    let after = c.valid_until + Duration::minutes(1);
    svc.cancel(&order("o1"), &Actor::System, &k("cancel"), after)
        .unwrap();
    assert_eq!(state(&svc, &c.id), CouponState::Expired { at: after });
}

#[test]
fn sweep_expires_available_coupons_past_validity() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c1 = claim(&svc, &t, "alice", "c1", t0());
    let c2 = claim(&svc, &t, "bob", "c2", t0() + Duration::days(1));
    assert!(svc.sweep(t0() + Duration::days(6), 10).unwrap().is_empty());
    let at = t0() + Duration::days(7);
    let swept = svc.sweep(at, 10).unwrap();
    assert_eq!(swept.expired, vec![c1.id.clone()]);
    assert_eq!(state(&svc, &c1.id), CouponState::Expired { at });
    assert_eq!(state(&svc, &c2.id), CouponState::Available);
    assert!(svc.sweep(at, 10).unwrap().is_empty());
}

#[test]
fn sweep_releases_orders_whose_hold_ran_out() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(1))));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    assert!(
        svc.sweep(t0() + Duration::minutes(14), 10)
            .unwrap()
            .is_empty()
    );
    let swept = svc.sweep(t0() + Duration::minutes(15), 10).unwrap();
    assert_eq!(swept.released, vec![order("o1")]);
    assert_eq!(state(&svc, &c.id), CouponState::Available);
    assert_eq!(uses(&svc, &t, "alice"), 0);
    assert!(matches!(
        lifecycle_err(svc.pay(
            &order("o1"),
            &Actor::System,
            &k("pay"),
            t0() + Duration::minutes(16)
        )),
        LifecycleError::OrderReleased { .. }
    ));
}

#[test]
fn paying_after_the_hold_before_a_sweep_works_within_validity() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    svc.pay(
        &order("o1"),
        &Actor::System,
        &k("pay"),
        t0() + Duration::hours(2),
    )
    .unwrap();
    assert!(matches!(state(&svc, &c.id), CouponState::Used { .. }));
    assert!(svc.sweep(t0() + Duration::hours(3), 10).unwrap().is_empty());
}

#[test]
fn paying_after_hold_and_validity_is_refused() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let c = claim(&svc, &t, "alice", "c1", t0());
    lock(&svc, "o1", "alice", c.valid_until - Duration::minutes(1)).unwrap();
    // Within the hold, past validity: the hold is honoured.
    svc.pay(
        &order("o1"),
        &Actor::System,
        &k("pay"),
        c.valid_until + Duration::minutes(5),
    )
    .unwrap();
    let c2 = claim(&svc, &t, "alice", "c2", t0());
    lock(&svc, "o2", "alice", c2.valid_until - Duration::minutes(1)).unwrap();
    assert!(matches!(
        lifecycle_err(svc.pay(
            &order("o2"),
            &Actor::System,
            &k("pay2"),
            c2.valid_until + Duration::minutes(30)
        )),
        LifecycleError::HoldRanOut { .. }
    ));
    assert!(matches!(state(&svc, &c2.id), CouponState::Locked { .. }));
}

#[test]
fn per_user_use_limit_blocks_extra_coupons() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t").limits(limits(None, None, Some(1))));
    let a = claim(&svc, &t, "alice", "c1", t0());
    let b = claim(&svc, &t, "alice", "c2", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    let q = svc.quote(&cart(), &buyer("alice"), &[], t0()).unwrap();
    assert!(
        q.applied.is_empty(),
        "the second coupon must not apply: {:?}",
        q.applied
    );
    let other = if state(&svc, &a.id) == CouponState::Available {
        &a
    } else {
        &b
    };
    let ev = q.evaluation(&OfferId::Coupon(other.id.clone())).unwrap();
    // The sibling is only held: the use comes back if its order lapses, and the reason says so.
    assert_eq!(
        *ev.reasons,
        [Ineligible::Unavailable {
            blocked: Blocked::UsesHeld
        }]
    );
    svc.cancel(&order("o1"), &Actor::System, &k("cancel"), t0())
        .unwrap();
    let q = svc.quote(&cart(), &buyer("alice"), &[], t0()).unwrap();
    assert_eq!(q.applied.len(), 1);
    // Once a sibling is used, the limit is reached.
    lock(&svc, "o2", "alice", t0()).unwrap();
    svc.pay(&order("o2"), &Actor::System, &k("pay-o2"), t0())
        .unwrap();
    let q = svc.quote(&cart(), &buyer("alice"), &[], t0()).unwrap();
    assert!(q.applied.is_empty());
    let left = [&a, &b]
        .into_iter()
        .find(|c| state(&svc, &c.id) == CouponState::Available)
        .unwrap();
    let ev = q.evaluation(&OfferId::Coupon(left.id.clone())).unwrap();
    assert_eq!(
        *ev.reasons,
        [Ineligible::Unavailable {
            blocked: Blocked::UseLimitReached
        }]
    );
}

#[test]
fn promo_code_limits_hold_and_are_released_on_cancel() {
    let svc = Service::new(MemoryStore::new());
    let code = PromoCode::new("spring").unwrap();
    let t = activate(
        &svc,
        spec("code").distribution(Distribution::promo_code("spring", Some(1), None).unwrap()),
    );
    assert!(matches!(
        lifecycle_err(
            svc.create_template(
                spec("copy")
                    .distribution(Distribution::promo_code("SPRING", None, None).unwrap())
                    .build()
                    .unwrap(),
                t0(),
            )
        ),
        LifecycleError::CodeTaken { .. }
    ));
    let codes = [code.clone()];
    let lock_with_code = |o: &str, u: &str| {
        let (o, c, b, key) = (order(o), cart(), buyer(u), k(&format!("lock-{o}")));
        svc.quote_and_lock(&LockRequest::new(&o, &c, &b, &key).codes(&codes), t0())
    };
    let l = lock_with_code("o1", "alice").unwrap();
    assert_eq!(l.codes, vec![code.clone()]);
    assert_eq!(l.quote.total_after, yuan(90));
    assert_eq!(
        svc.repository()
            .counter(&CounterKey::CodeUses(t.clone()))
            .unwrap(),
        1
    );
    // Used up: bob's quote shows it blocked, and his lock does not use it.
    let l2 = lock_with_code("o2", "bob").unwrap();
    assert!(l2.codes.is_empty());
    let ev = l2.quote.evaluation(&OfferId::Code(code.clone())).unwrap();
    assert_eq!(
        *ev.reasons,
        [Ineligible::Unavailable {
            blocked: Blocked::CodeExhausted
        }]
    );
    // Choosing it explicitly is refused.
    let (o3, c3, b3, k3) = (order("o3"), cart(), buyer("bob"), k("lock-o3"));
    let sel = [OfferId::Code(code.clone())];
    assert!(matches!(
        svc.quote_and_lock(
            &LockRequest::new(&o3, &c3, &b3, &k3)
                .codes(&codes)
                .select(&sel),
            t0()
        ),
        Err(ServiceError::Checkout(CheckoutError::NotUsable { .. }))
    ));
    // Alice cancels: the use comes back, and carol can use the code.
    svc.cancel(&order("o1"), &Actor::System, &k("cancel"), t0())
        .unwrap();
    assert_eq!(
        svc.repository()
            .counter(&CounterKey::CodeUses(t.clone()))
            .unwrap(),
        0
    );
    let l4 = lock_with_code("o4", "carol").unwrap();
    assert_eq!(l4.codes, vec![code.clone()]);
    // An unknown code is an error.
    let unknown = [PromoCode::new("NOPE").unwrap()];
    assert!(matches!(
        lifecycle_err(svc.quote(&cart(), &buyer("dave"), &unknown, t0())),
        LifecycleError::UnknownCode { .. }
    ));
}

#[test]
fn sweep_gives_back_the_promo_code_uses_of_an_abandoned_order() {
    let svc = Service::new(MemoryStore::new());
    let code = PromoCode::new("spring").unwrap();
    let t = activate(
        &svc,
        spec("code").distribution(Distribution::promo_code("spring", Some(2), None).unwrap()),
    );
    let codes = [code.clone()];
    let lock = |o: &str, u: &str| {
        let (o, c, b, key) = (order(o), cart(), buyer(u), k(&format!("lock-{o}")));
        svc.quote_and_lock(&LockRequest::new(&o, &c, &b, &key).codes(&codes), t0())
            .unwrap()
    };
    let uses = || {
        svc.repository()
            .counter(&CounterKey::CodeUses(t.clone()))
            .unwrap()
    };
    // Two orders use the code and hold no coupon; one is paid, the other abandoned.
    let abandoned = lock("o1", "alice");
    assert_eq!(abandoned.codes, vec![code.clone()]);
    assert!(abandoned.coupons.is_empty());
    let until = abandoned.hold_until.expect("a code-only order is held");
    assert_eq!(until, t0() + Duration::minutes(15));
    lock("o2", "bob");
    svc.pay(&order("o2"), &Actor::System, &k("pay-o2"), t0())
        .unwrap();
    assert_eq!(uses(), 2);
    // A replayed lock reports the same hold.
    let (o1, c1, b1, k1) = (order("o1"), cart(), buyer("alice"), k("lock-o1"));
    let again = svc
        .quote_and_lock(&LockRequest::new(&o1, &c1, &b1, &k1).codes(&codes), t0())
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.hold_until, Some(until));
    // Before the hold runs out nothing is swept; after, the abandoned order is released and
    // its use given back; the paid one stays.
    assert!(
        svc.sweep(until - Duration::seconds(1), 10)
            .unwrap()
            .released
            .is_empty()
    );
    let swept = svc.sweep(until, 10).unwrap();
    assert_eq!(swept.released, vec![order("o1")]);
    assert_eq!(uses(), 1);
    assert!(
        svc.sweep(until + Duration::days(1), 10)
            .unwrap()
            .released
            .is_empty()
    );
    assert_eq!(uses(), 1);
    // The released order cannot be paid any more; cancelling it again changes nothing.
    assert!(
        svc.pay(&order("o1"), &Actor::System, &k("pay-o1"), until)
            .is_err()
    );
    svc.cancel(&order("o1"), &Actor::System, &k("cancel-o1"), until)
        .unwrap();
    assert_eq!(uses(), 1);
    // The use is free again for someone else.
    assert_eq!(lock("o3", "carol").codes, vec![code.clone()]);
    assert_eq!(uses(), 2);
}

#[test]
fn quote_applies_active_automatic_promotions() {
    let svc = Service::new(MemoryStore::new());
    let mut promo = spec("promo").distribution(Distribution::Automatic);
    promo.benefit = Benefit::instant(yuan(5)).unwrap();
    promo.stacking = Stacking::in_group(StackingGroup::new("promotions").unwrap());
    let p = promo.id.clone();
    svc.create_template(promo.build().unwrap(), t0()).unwrap();
    let q = svc.quote(&cart(), &buyer("alice"), &[], t0()).unwrap();
    assert!(q.applied.is_empty(), "a draft promotion applied");
    svc.submit_template(&p, t0()).unwrap();
    svc.approve_template(&p, t0()).unwrap();
    svc.activate_template(&p, t0()).unwrap();
    let q = svc.quote(&cart(), &buyer("alice"), &[], t0()).unwrap();
    assert_eq!(q.applied_ids(), vec![OfferId::Promotion(p.clone())]);
    assert_eq!(q.total_after, yuan(95));
    svc.pause_template(&p, t0()).unwrap();
    assert!(
        svc.quote(&cart(), &buyer("alice"), &[], t0())
            .unwrap()
            .applied
            .is_empty()
    );
}

#[test]
fn an_order_locks_once_and_keys_are_not_reused() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    claim(&svc, &t, "alice", "c1", t0());
    claim(&svc, &t, "alice", "c2", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    let (o, c, b) = (order("o1"), cart(), buyer("alice"));
    assert!(matches!(
        lifecycle_err(svc.quote_and_lock(&LockRequest::new(&o, &c, &b, &k("another-key")), t0())),
        LifecycleError::OrderAlreadyLocked { .. }
    ));
    let replay = svc
        .quote_and_lock(
            &LockRequest::new(&o, &c, &b, &k("lock-o1")),
            t0() + Duration::minutes(3),
        )
        .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.hold_until, Some(t0() + Duration::minutes(15)));
    assert_eq!(replay.quote.total_after, yuan(90));
}

#[test]
fn admin_void_only_for_available_coupons() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    let a = claim(&svc, &t, "alice", "c1", t0());
    let v = svc
        .void(&a.id, &Actor::Merchant, &k("void-1"), t0())
        .unwrap();
    assert!(matches!(v.state, CouponState::Voided { .. }));
    assert_eq!(
        svc.void(&a.id, &Actor::Merchant, &k("void-1"), t0())
            .unwrap(),
        v
    );
    assert!(matches!(
        lifecycle_err(svc.void(&a.id, &Actor::Merchant, &k("void-2"), t0())),
        LifecycleError::IllegalCouponTransition {
            action: CouponAction::Void,
            ..
        }
    ));
    let b = claim(&svc, &t, "alice", "c2", t0());
    lock(&svc, "o1", "alice", t0()).unwrap();
    assert!(matches!(
        lifecycle_err(svc.void(&b.id, &Actor::Merchant, &k("void-3"), t0())),
        LifecycleError::IllegalCouponTransition {
            action: CouponAction::Void,
            ..
        }
    ));
    assert!(matches!(
        svc.void(
            &CouponId::new("nope").unwrap(),
            &Actor::Merchant,
            &k("v"),
            t0()
        ),
        Err(ServiceError::NotFound { .. })
    ));
}

#[test]
fn concurrent_lock_of_one_coupon_by_two_orders_has_one_winner() {
    let svc = Service::new(MemoryStore::new());
    let t = activate(&svc, spec("t"));
    for round in 0..20 {
        let c = claim(&svc, &t, "alice", &format!("c{round}"), t0());
        let sel = [OfferId::Coupon(c.id.clone())];
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|i| {
                    let (svc, sel) = (&svc, &sel);
                    s.spawn(move || {
                        let (o, ct, b, key) = (
                            order(&format!("o{round}-{i}")),
                            cart(),
                            buyer("alice"),
                            k(&format!("l{round}-{i}")),
                        );
                        svc.quote_and_lock(&LockRequest::new(&o, &ct, &b, &key).select(sel), t0())
                            .is_ok() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1, "round {round}");
    }
}

/// Promo-code orders under random locks, payments, cancels, sweeps and time jumps, against a
/// small model: the code's use counter always equals the orders holding a use (locked or
/// paid), never passes the code's limit, and a sweep releases exactly the unpaid orders whose
/// hold has run out.
mod code_holds {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Lock(usize),
        Pay(usize),
        Cancel(usize),
        Sweep,
        Advance(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3usize).prop_map(Step::Lock),
            2 => (0..8usize).prop_map(Step::Pay),
            2 => (0..8usize).prop_map(Step::Cancel),
            2 => Just(Step::Sweep),
            2 => prop_oneof![Just(1i64), Just(10), Just(15), Just(60)].prop_map(Step::Advance),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum State {
        Open,
        Paid,
        Released,
    }

    struct MOrder {
        id: OrderId,
        code: bool,
        until: Option<DateTime<Utc>>,
        state: State,
    }

    const MAX_USES: u64 = 3;

    proptest! {
        #[test]
        fn code_uses_follow_the_orders(steps in proptest::collection::vec(step(), 1..40)) {
            let svc = Service::new(MemoryStore::new());
            let t = activate(
                &svc,
                spec("code").distribution(
                    Distribution::promo_code("spring", Some(MAX_USES), None).unwrap(),
                ),
            );
            let codes = [PromoCode::new("spring").unwrap()];
            let mut now = t0();
            let mut orders: Vec<MOrder> = Vec::new();
            let mut keys = 0u32;
            let mut key = || {
                keys += 1;
                k(&format!("k-{keys}"))
            };
            for s in steps {
                match s {
                    Step::Lock(u) => {
                        let id = order(&format!("o-{}", orders.len()));
                        let (c, b, kk) = (cart(), buyer(&format!("user-{u}")), key());
                        let l = svc
                            .quote_and_lock(&LockRequest::new(&id, &c, &b, &kk).codes(&codes), now)
                            .unwrap();
                        let held = orders
                            .iter()
                            .filter(|o| o.code && o.state != State::Released)
                            .count() as u64;
                        let code = !l.codes.is_empty();
                        prop_assert_eq!(code, held < MAX_USES, "code granted with {} held", held);
                        prop_assert_eq!(l.hold_until, code.then(|| now + Duration::minutes(15)));
                        orders.push(MOrder { id, code, until: l.hold_until, state: State::Open });
                    }
                    Step::Pay(i) => {
                        let Some(o) = orders.get_mut(i) else { continue };
                        let r = svc.pay(&o.id, &Actor::System, &key(), now);
                        match o.state {
                            State::Released => prop_assert!(r.is_err()),
                            State::Open | State::Paid => {
                                prop_assert!(r.is_ok(), "{:?}", r);
                                o.state = State::Paid;
                            }
                        }
                    }
                    Step::Cancel(i) => {
                        let Some(o) = orders.get_mut(i) else { continue };
                        let r = svc.cancel(&o.id, &Actor::System, &key(), now);
                        match o.state {
                            State::Paid => prop_assert!(r.is_err()),
                            State::Open | State::Released => {
                                prop_assert!(r.is_ok(), "{:?}", r);
                                o.state = State::Released;
                            }
                        }
                    }
                    Step::Sweep => {
                        let swept = svc.sweep(now, 100).unwrap();
                        let mut got: Vec<String> =
                            swept.released.iter().map(|o| o.to_string()).collect();
                        got.sort();
                        let mut want = Vec::new();
                        for o in orders.iter_mut() {
                            if o.state == State::Open && o.until.is_some_and(|u| u <= now) {
                                o.state = State::Released;
                                want.push(o.id.to_string());
                            }
                        }
                        want.sort();
                        prop_assert_eq!(got, want);
                    }
                    Step::Advance(m) => now += Duration::minutes(m),
                }
                let uses = svc
                    .repository()
                    .counter(&CounterKey::CodeUses(t.clone()))
                    .unwrap();
                let held = orders
                    .iter()
                    .filter(|o| o.code && o.state != State::Released)
                    .count() as u64;
                prop_assert_eq!(uses, held);
                prop_assert!(uses <= MAX_USES);
            }
        }
    }
}

#[test]
fn preview_prices_a_selection_and_holds_nothing() {
    let svc = Svc::new(MemoryStore::new());
    let ten = activate(&svc, spec("ten-off"));
    let mut twenty = spec("twenty-off");
    twenty.benefit = Benefit::instant(yuan(20)).unwrap();
    let twenty = activate(&svc, twenty);
    let a = claim(&svc, &ten, "ann", "c1", t0());
    let b = claim(&svc, &twenty, "ann", "c2", t0());
    let sel = [OfferId::Coupon(a.id.clone())];
    let q = svc
        .preview(&cart(), &buyer("ann"), &sel, &[], t0())
        .unwrap();
    assert_eq!(
        q.saving,
        yuan(10),
        "the buyer's own choice, not the best one"
    );
    let other = q.evaluation(&OfferId::Coupon(b.id.clone())).unwrap();
    assert!(!other.selected && other.usable);
    // Nothing is held: both coupons stay available and no use is counted.
    assert_eq!(state(&svc, &a.id), CouponState::Available);
    assert_eq!(uses(&svc, &ten, "ann"), 0);
    // The wallet view is the best combination with every offer's evaluation.
    let best = svc.quote(&cart(), &buyer("ann"), &[], t0()).unwrap();
    assert!(best.saving >= yuan(20));
    assert!(best.offers.first().is_some_and(|e| e.selected));
}

#[test]
fn a_now_outside_the_record_range_is_refused() {
    let svc = Svc::new(MemoryStore::new());
    let t = activate(&svc, spec("ten-off"));
    let before_1970 = Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap();
    let r = svc.claim(&claim_req(&t, "ann", "c1"), before_1970);
    assert!(matches!(r, Err(ServiceError::Time(_))), "{r:?}");
    assert_eq!(r.unwrap_err().kind().http_status(), 400);
}
