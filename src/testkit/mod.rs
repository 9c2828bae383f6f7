//! The repository conformance suite: run it from your own tests against your [`Repository`]
//! implementation, so the engine's guarantees (exact stock, exactly-once redemption, idempotent
//! retries) hold on your store too. Enabled by the `testkit` cargo feature.
//!
//! [`run_all`] runs every check; each check is also a public function. A check receives a
//! **fresh, empty** store built by your `make` closure, uses it (the concurrent checks share it
//! across scoped threads as `&Service<R>`, so a store that hands each thread its own connection
//! works), and returns a [`Failure`] naming the check and what went wrong instead of
//! panicking.
//!
//! - Sequential behaviour of every [`Op`] and condition: [`records_and_versions`],
//!   [`counters_and_limits`], [`receipts_insert_once`], [`batches_are_all_or_nothing`],
//!   [`wallet_and_order_indexes`], [`due_coupons`], [`order_holds`],
//!   [`events_commit_with_their_change`], [`guard_windows`], [`live_coupons_and_history`].
//! - Concurrent stress through the [`Service`]: [`concurrent_claims_are_exact`],
//!   [`concurrent_guards_are_exact`], [`concurrent_locks_have_one_winner`], [`concurrent_pay_and_cancel_settle_once`], and
//!   [`retries_change_nothing`].
//! - Codes through the [`Service`]: [`one_time_codes_have_one_owner`] (8 threads racing for
//!   each code), [`code_attempts_are_limited`] (8 threads guessing from one device) and
//!   [`unknown_and_taken_codes_look_alike`].
//! - Orders: [`order_records_are_conditional`], [`orders_refund_in_part_and_refuse_the_wrong_party`]
//!   and [`an_orders_life_matches_the_reference_store`] (an order placed, paid, refunded in
//!   three parts and another cancelled, [`order_life`], giving what
//!   [`MemoryStore`](crate::repository::MemoryStore) gives).
//!
//! ```
//! use coupons::repository::MemoryStore;
//! use coupons::testkit;
//!
//! // In your crate: `testkit::run_all(|| MyStore::open_fresh())`.
//! testkit::run_all(MemoryStore::new)?;
//! // Or one check at a time:
//! testkit::counters_and_limits(MemoryStore::new())?;
//! # Ok::<(), testkit::Failure>(())
//! ```
//!
//! Together the checks take well under a second on the in-memory store in a debug build; the
//! concurrent ones use 8 threads and a few hundred requests.

use std::fmt::Display;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::attributes::{AttrKey, AttrValue, Attributes};
use crate::cart::{Buyer, Cart, CartLine};
use crate::checkout::OfferId;
use crate::events::{CouponFacts, Event, EventKind, Logged, Refusal};
use crate::guard::{Action, Context, Guard, Subject, Window};
use crate::id::{
    CampaignId, Channel, CouponId, DeviceId, GuardName, IdempotencyKey, OrderId, Sku, TemplateId,
    UserId,
};
use crate::lifecycle::{
    Actor, Campaign, ClaimMode, ClaimRequest, Coupon, CouponState, LifecycleError, RefundKind,
    RefundRequest, TemplateRecord, TemplateStatus,
};
use crate::money::{Currency, Money};
use crate::repository::{
    Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository, Versioned,
};
use crate::rule::{Benefit, Limits, LimitsSpec, PromoCode, Span, Template, TemplateSpec, Validity};
use crate::service::{LockRequest, Service, ServiceError};

/// A conformance check failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {message}")]
pub struct Failure {
    /// The check, e.g. `counters_and_limits`.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

fn fail(check: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        check,
        message: message.into(),
    }
}

/// `Err(Failure)` unless `cond`.
macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(fail($check, format!($($fmt)+)));
        }
    };
}

mod codes;
mod life;
mod orders;
pub use codes::{
    code_attempts_are_limited, one_time_codes_have_one_owner, unknown_and_taken_codes_look_alike,
};
pub use life::{OrderLife, an_orders_life_matches_the_reference_store, order_life};
pub use orders::{order_records_are_conditional, orders_refund_in_part_and_refuse_the_wrong_party};

/// Maps any error (the store's, an id's…) to a failure of `check`.
fn ok<T, E: Display>(check: &'static str, what: &str, r: Result<T, E>) -> Result<T, Failure> {
    r.map_err(|e| fail(check, format!("{what}: {e}")))
}

fn some<T>(check: &'static str, what: &str, o: Option<T>) -> Result<T, Failure> {
    o.ok_or_else(|| fail(check, format!("{what}: missing")))
}

/// Runs every check, each on a fresh store from `make`, and stops at the first failure.
///
/// # Errors
/// The first [`Failure`].
pub fn run_all<R: Repository>(make: impl Fn() -> R) -> Result<(), Failure> {
    records_and_versions(make())?;
    counters_and_limits(make())?;
    receipts_insert_once(make())?;
    batches_are_all_or_nothing(make())?;
    wallet_and_order_indexes(make())?;
    due_coupons(make())?;
    order_holds(make())?;
    events_commit_with_their_change(make())?;
    guard_windows(make())?;
    live_coupons_and_history(make())?;
    concurrent_claims_are_exact(make())?;
    concurrent_guards_are_exact(make())?;
    concurrent_locks_have_one_winner(make())?;
    concurrent_pay_and_cancel_settle_once(make())?;
    retries_change_nothing(make())?;
    one_time_codes_have_one_owner(make())?;
    code_attempts_are_limited(make())?;
    unknown_and_taken_codes_look_alike(make())?;
    order_records_are_conditional(make())?;
    orders_refund_in_part_and_refuse_the_wrong_party(make())?;
    an_orders_life_matches_the_reference_store(make())?;
    Ok(())
}

// ------------------------------------------------------------------------------- fixtures

fn t0(check: &'static str) -> Result<DateTime<Utc>, Failure> {
    some(check, "time", DateTime::from_timestamp(1_780_000_000, 0))
}

fn cny() -> Currency {
    Currency::CNY
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, cny())
}

fn tid(check: &'static str, s: &str) -> Result<TemplateId, Failure> {
    ok(check, "template id", TemplateId::new(s))
}

fn uid(check: &'static str, s: &str) -> Result<UserId, Failure> {
    ok(check, "user id", UserId::new(s))
}

fn cid(check: &'static str, s: &str) -> Result<CouponId, Failure> {
    ok(check, "coupon id", CouponId::new(s))
}

fn oid(check: &'static str, s: &str) -> Result<OrderId, Failure> {
    ok(check, "order id", OrderId::new(s))
}

fn key(check: &'static str, s: &str) -> Result<IdempotencyKey, Failure> {
    ok(check, "idempotency key", IdempotencyKey::new(s))
}

fn channel(check: &'static str) -> Result<Channel, Failure> {
    ok(check, "channel", Channel::new("app"))
}

/// "10 off", valid 7 days from claiming, with the given limits.
fn template(check: &'static str, id: &str, limits: LimitsSpec) -> Result<Template, Failure> {
    let benefit = ok(check, "benefit", Benefit::instant(yuan(10)))?;
    let validity = ok(check, "validity", Validity::relative(Span::Days(7), None))?;
    let limits = ok(check, "limits", Limits::try_from(limits))?;
    ok(
        check,
        "template",
        TemplateSpec::new(tid(check, id)?, "10 off", cny(), benefit, validity)
            .limits(limits)
            .build(),
    )
}

fn record(check: &'static str, id: &str) -> Result<Arc<TemplateRecord>, Failure> {
    Ok(Arc::new(TemplateRecord::draft(Arc::new(template(
        check,
        id,
        LimitsSpec::default(),
    )?))))
}

fn coupon(
    check: &'static str,
    id: &str,
    owner: &str,
    state: CouponState,
    valid_until: DateTime<Utc>,
) -> Result<Coupon, Failure> {
    let now = t0(check)?;
    Ok(Coupon {
        id: cid(check, id)?,
        template: tid(check, "t")?,
        owner: uid(check, owner)?,
        channel: channel(check)?,
        campaign: None,
        mode: ClaimMode::Click,
        claimed_at: now - Duration::days(1),
        valid_from: now - Duration::days(1),
        valid_until,
        state,
        attributes: Attributes::new(),
    })
}

fn commit<R: Repository>(check: &'static str, store: &R, ops: Vec<Op>) -> Result<Commit, Failure> {
    ok(check, "commit", store.commit(&Batch { ops }))
}

fn put(coupon: Coupon, expect: Expect) -> Op {
    Op::PutCoupon { coupon, expect }
}

fn count(key: CounterKey, delta: i64, limit: Option<u64>) -> Op {
    Op::Count { key, delta, limit }
}

/// An Active template in `service`.
fn active<R: Repository>(
    check: &'static str,
    service: &Service<R>,
    template: Template,
) -> Result<TemplateId, Failure> {
    let now = t0(check)?;
    let id = template.id().clone();
    ok(
        check,
        "create template",
        service.create_template(template, now),
    )?;
    ok(check, "submit", service.submit_template(&id, now))?;
    ok(check, "approve", service.approve_template(&id, now))?;
    ok(check, "activate", service.activate_template(&id, now))?;
    Ok(id)
}

fn claim_request(
    check: &'static str,
    template: &TemplateId,
    user: &str,
    k: &str,
) -> Result<ClaimRequest, Failure> {
    Ok(ClaimRequest::new(
        template.clone(),
        uid(check, user)?,
        channel(check)?,
        ClaimMode::Click,
        key(check, k)?,
    ))
}

fn cart(check: &'static str) -> Result<Cart, Failure> {
    ok(
        check,
        "cart",
        Cart::new(
            cny(),
            vec![CartLine::new(
                ok(check, "sku", Sku::new("tea"))?,
                yuan(100),
                1,
            )],
            Money::zero(cny()),
        ),
    )
}

fn state_of<R: Repository>(
    check: &'static str,
    store: &R,
    id: &CouponId,
) -> Result<Versioned<Coupon>, Failure> {
    some(check, "coupon", ok(check, "read coupon", store.coupon(id))?)
}

// ------------------------------------------------------------------------------ sequential

/// Templates, campaigns and coupons: [`Expect::Absent`] inserts at version 1 and refuses an
/// existing record; [`Expect::Version`] replaces only at that version and adds one; reads return
/// what was written.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn records_and_versions<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "records_and_versions";
    let now = t0(C)?;
    let t = tid(C, "t")?;
    ensure!(
        C,
        ok(C, "read", store.template(&t))?.is_none(),
        "a fresh store has a template"
    );

    let draft = record(C, "t")?;
    let insert = || Op::PutTemplate {
        record: Arc::clone(&draft),
        expect: Expect::Absent,
    };
    ensure!(
        C,
        commit(C, &store, vec![insert()])? == Commit::Applied,
        "template insert conflicted"
    );
    let read = some(C, "template", ok(C, "read", store.template(&t))?)?;
    ensure!(
        C,
        read.version == 1,
        "an inserted template has version {}, not 1",
        read.version
    );
    ensure!(C, read.value == draft, "the template read back differs");
    ensure!(
        C,
        commit(C, &store, vec![insert()])? == Commit::Conflict { index: 0 },
        "inserting an existing template did not conflict"
    );
    let submitted = Arc::new(ok(C, "submit", draft.submit())?);
    let cas = |v| Op::PutTemplate {
        record: Arc::clone(&submitted),
        expect: Expect::Version(v),
    };
    ensure!(
        C,
        commit(C, &store, vec![cas(2)])? == Commit::Conflict { index: 0 },
        "a write at a wrong version was applied"
    );
    ensure!(
        C,
        commit(C, &store, vec![cas(1)])? == Commit::Applied,
        "a write at the read version conflicted"
    );
    let read = some(C, "template", ok(C, "read", store.template(&t))?)?;
    ensure!(
        C,
        read.version == 2,
        "a replaced template has version {}, not 2",
        read.version
    );
    ensure!(
        C,
        read.value.status == TemplateStatus::PendingApproval,
        "the new status was not stored"
    );
    ensure!(
        C,
        commit(C, &store, vec![cas(1)])? == Commit::Conflict { index: 0 },
        "a stale version was accepted"
    );
    let u = tid(C, "u")?;
    let other = record(C, "u")?;
    ensure!(
        C,
        commit(
            C,
            &store,
            vec![Op::PutTemplate {
                record: other,
                expect: Expect::Version(1)
            }]
        )? == Commit::Conflict { index: 0 },
        "a version write to a missing template was applied"
    );
    ensure!(
        C,
        ok(C, "read", store.template(&u))?.is_none(),
        "a conflicting write left a template"
    );
    let all = ok(C, "templates", store.templates())?;
    ensure!(
        C,
        all.len() == 1 && all.iter().all(|r| r.value.id() == &t),
        "templates() returned {} records",
        all.len()
    );

    // Campaigns.
    let camp = ok(
        C,
        "campaign",
        Campaign::new(
            ok(C, "campaign id", CampaignId::new("spring"))?,
            "Spring",
            "",
            now,
            now + Duration::days(3),
            vec![t.clone()],
        ),
    )?;
    let put_c = |c: &Campaign, expect| Op::PutCampaign {
        campaign: c.clone(),
        expect,
    };
    ensure!(
        C,
        commit(C, &store, vec![put_c(&camp, Expect::Absent)])? == Commit::Applied,
        "campaign insert conflicted"
    );
    ensure!(
        C,
        commit(C, &store, vec![put_c(&camp, Expect::Absent)])? == Commit::Conflict { index: 0 },
        "inserting an existing campaign did not conflict"
    );
    let online = camp.switch(true);
    ensure!(
        C,
        commit(C, &store, vec![put_c(&online, Expect::Version(1))])? == Commit::Applied,
        "campaign update conflicted"
    );
    let read = some(C, "campaign", ok(C, "read", store.campaign(&camp.id))?)?;
    ensure!(
        C,
        read.version == 2 && read.value == online,
        "campaign read back: version {}",
        read.version
    );

    // Coupons.
    let c = coupon(
        C,
        "c1",
        "alice",
        CouponState::Available,
        now + Duration::days(1),
    )?;
    ensure!(
        C,
        commit(C, &store, vec![put(c.clone(), Expect::Absent)])? == Commit::Applied,
        "coupon insert conflicted"
    );
    ensure!(
        C,
        commit(C, &store, vec![put(c.clone(), Expect::Absent)])? == Commit::Conflict { index: 0 },
        "inserting an existing coupon did not conflict"
    );
    let read = state_of(C, &store, &c.id)?;
    ensure!(
        C,
        read.version == 1 && read.value == c,
        "coupon read back differs (version {})",
        read.version
    );
    let voided = Coupon {
        state: CouponState::Voided { at: now },
        ..c.clone()
    };
    ensure!(
        C,
        commit(C, &store, vec![put(voided.clone(), Expect::Version(1))])? == Commit::Applied,
        "coupon update conflicted"
    );
    ensure!(
        C,
        commit(C, &store, vec![put(voided.clone(), Expect::Version(1))])?
            == Commit::Conflict { index: 0 },
        "a stale coupon version was accepted"
    );
    let read = state_of(C, &store, &c.id)?;
    ensure!(
        C,
        read.version == 2 && read.value == voided,
        "coupon update read back differs (version {})",
        read.version
    );
    ensure!(
        C,
        ok(C, "read", store.coupon(&cid(C, "nope")?))?.is_none(),
        "a missing coupon was found"
    );
    Ok(())
}

/// Counters start at zero, move by `delta` only while the result stays in `0..=limit`, never
/// go below zero, and are independent of one another.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn counters_and_limits<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "counters_and_limits";
    let t = tid(C, "t")?;
    let alice = uid(C, "alice")?;
    let keys = [
        CounterKey::Issued(t.clone()),
        CounterKey::UserClaims(t.clone(), alice.clone()),
        CounterKey::UserUses(t.clone(), alice.clone()),
        CounterKey::CodeUses(t.clone()),
        CounterKey::CodeUserUses(t.clone(), alice.clone()),
        CounterKey::Custom("guard/alice".into()),
    ];
    for k in &keys {
        ensure!(
            C,
            ok(C, "counter", store.counter(k))? == 0,
            "{k} does not start at zero"
        );
    }
    for (i, k) in keys.iter().enumerate() {
        let limit = i as u64 + 2;
        for step in 0..limit {
            ensure!(
                C,
                commit(C, &store, vec![count(k.clone(), 1, Some(limit))])? == Commit::Applied,
                "{k}: increment {step} under limit {limit} conflicted"
            );
        }
        ensure!(
            C,
            commit(C, &store, vec![count(k.clone(), 1, Some(limit))])?
                == Commit::Conflict { index: 0 },
            "{k}: went past its limit {limit}"
        );
        ensure!(
            C,
            ok(C, "counter", store.counter(k))? == limit,
            "{k}: a refused increment changed it"
        );
    }
    for (i, k) in keys.iter().enumerate() {
        ensure!(
            C,
            ok(C, "counter", store.counter(k))? == i as u64 + 2,
            "{k}: changed by another counter"
        );
    }
    let k = &keys[0];
    ensure!(
        C,
        commit(C, &store, vec![count(k.clone(), -3, None)])? == Commit::Conflict { index: 0 },
        "{k}: went below zero"
    );
    ensure!(
        C,
        commit(C, &store, vec![count(k.clone(), -2, None)])? == Commit::Applied,
        "{k}: decrement to zero conflicted"
    );
    ensure!(
        C,
        ok(C, "counter", store.counter(k))? == 0,
        "{k}: not zero after decrement"
    );
    ensure!(
        C,
        commit(C, &store, vec![count(k.clone(), 1_000, None)])? == Commit::Applied,
        "an unlimited increment conflicted"
    );
    ensure!(
        C,
        commit(C, &store, vec![count(k.clone(), 5, Some(1_004))])? == Commit::Conflict { index: 0 },
        "a jump past the limit was applied"
    );
    ensure!(
        C,
        commit(C, &store, vec![count(k.clone(), 4, Some(1_004))])? == Commit::Applied,
        "a jump to the limit conflicted"
    );
    ensure!(
        C,
        ok(C, "counter", store.counter(k))? == 1_004,
        "a counter holds the wrong value"
    );
    let other_user = CounterKey::UserClaims(t.clone(), uid(C, "bob")?);
    let other_tpl = CounterKey::UserClaims(tid(C, "u")?, alice);
    ensure!(
        C,
        ok(C, "counter", store.counter(&other_user))? == 0
            && ok(C, "counter", store.counter(&other_tpl))? == 0,
        "per-user counters leak between users or templates"
    );
    Ok(())
}

/// A receipt is inserted once under its key; a second insert conflicts and keeps the first;
/// operation names, keys and promo codes are distinct keys.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn receipts_insert_once<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "receipts_insert_once";
    let now = t0(C)?;
    let k1 = key(C, "k1")?;
    let claim_key = ReceiptKey::Operation("claim", k1.clone());
    ensure!(
        C,
        ok(C, "receipt", store.receipt(&claim_key))?.is_none(),
        "a fresh store has a receipt"
    );
    // A claim receipt with its coupon, as the service writes it.
    let c = coupon(
        C,
        "c1",
        "alice",
        CouponState::Available,
        now + Duration::days(1),
    )?;
    let first = Receipt::Claimed {
        coupon: c.id.clone(),
    };
    let ops = vec![
        Op::InsertReceipt {
            key: claim_key.clone(),
            receipt: first.clone(),
        },
        put(c, Expect::Absent),
    ];
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "the first claim receipt conflicted"
    );
    let second = Receipt::Claimed {
        coupon: cid(C, "c2")?,
    };
    ensure!(
        C,
        commit(
            C,
            &store,
            vec![Op::InsertReceipt {
                key: claim_key.clone(),
                receipt: second
            }]
        )? == Commit::Conflict { index: 0 },
        "a second receipt under the same key was inserted"
    );
    ensure!(
        C,
        ok(C, "receipt", store.receipt(&claim_key))? == Some(first),
        "the first receipt was not kept"
    );

    // Same key, other operation: independent. A receipt with no coupon stored is kept too.
    let lock_key = ReceiptKey::Operation("lock", k1.clone());
    let locked = Receipt::Locked {
        fingerprint: None,
        totals: None,
        order: oid(C, "o1")?,
        coupons: vec![cid(C, "c9")?],
    };
    ensure!(
        C,
        commit(
            C,
            &store,
            vec![Op::InsertReceipt {
                key: lock_key.clone(),
                receipt: locked.clone()
            }]
        )? == Commit::Applied,
        "the same key under another operation conflicted"
    );
    ensure!(
        C,
        ok(C, "receipt", store.receipt(&lock_key))? == Some(locked),
        "a lock receipt read back differs"
    );
    let lone = ReceiptKey::Operation("claim", key(C, "k2")?);
    let dangling = Receipt::Claimed {
        coupon: cid(C, "not-stored")?,
    };
    ensure!(
        C,
        commit(
            C,
            &store,
            vec![Op::InsertReceipt {
                key: lone.clone(),
                receipt: dangling.clone()
            }]
        )? == Commit::Applied,
        "a receipt naming an unknown coupon conflicted"
    );
    ensure!(
        C,
        ok(C, "receipt", store.receipt(&lone))? == Some(dangling),
        "a receipt naming an unknown coupon was lost"
    );

    // Promo-code reservations.
    let code = ok(C, "code", PromoCode::new("SPRING10"))?;
    let reserve = |t: &str| -> Result<Op, Failure> {
        Ok(Op::InsertReceipt {
            key: ReceiptKey::Code(code.clone()),
            receipt: Receipt::Code {
                template: tid(C, t)?,
            },
        })
    };
    ensure!(
        C,
        commit(C, &store, vec![reserve("t1")?])? == Commit::Applied,
        "reserving a free code conflicted"
    );
    ensure!(
        C,
        commit(C, &store, vec![reserve("t2")?])? == Commit::Conflict { index: 0 },
        "a code was reserved twice"
    );
    ensure!(
        C,
        ok(C, "receipt", store.receipt(&ReceiptKey::Code(code.clone())))?
            == Some(Receipt::Code {
                template: tid(C, "t1")?
            }),
        "the code's first owner was not kept"
    );
    Ok(())
}

/// A batch whose later op's condition fails writes nothing at all — no record, counter or
/// receipt of its earlier ops — and reports the index of the first failing op.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn batches_are_all_or_nothing<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "batches_are_all_or_nothing";
    let now = t0(C)?;
    let t = tid(C, "t")?;
    let full = CounterKey::Custom("full".into());
    ensure!(
        C,
        commit(C, &store, vec![count(full.clone(), 1, Some(1))])? == Commit::Applied,
        "setup conflicted"
    );
    let c = coupon(
        C,
        "c1",
        "alice",
        CouponState::Available,
        now + Duration::days(1),
    )?;
    let rk = ReceiptKey::Operation("claim", key(C, "k")?);
    let issued = CounterKey::Issued(t.clone());
    let failing = |tail: Op| -> Result<Vec<Op>, Failure> {
        Ok(vec![
            Op::InsertReceipt {
                key: rk.clone(),
                receipt: Receipt::Claimed {
                    coupon: c.id.clone(),
                },
            },
            count(issued.clone(), 1, Some(10)),
            put(c.clone(), Expect::Absent),
            Op::PutTemplate {
                record: Arc::clone(&record(C, "t")?),
                expect: Expect::Absent,
            },
            tail,
        ])
    };
    let tails = [
        count(full.clone(), 1, Some(1)),
        count(CounterKey::Custom("zero".into()), -1, None),
        Op::PutCoupon {
            coupon: coupon(C, "ghost", "bob", CouponState::Available, now)?,
            expect: Expect::Version(3),
        },
        Op::InsertReceipt {
            key: ReceiptKey::Code(ok(C, "code", PromoCode::new("TAKEN"))?),
            receipt: Receipt::Code {
                template: t.clone(),
            },
        },
    ];
    // Make the receipt tail fail too.
    ensure!(
        C,
        commit(
            C,
            &store,
            vec![Op::InsertReceipt {
                key: ReceiptKey::Code(ok(C, "code", PromoCode::new("TAKEN"))?),
                receipt: Receipt::Code {
                    template: tid(C, "x")?
                }
            }]
        )? == Commit::Applied,
        "setup conflicted"
    );
    for (i, tail) in tails.into_iter().enumerate() {
        let ops = failing(tail)?;
        let result = commit(C, &store, ops)?;
        ensure!(
            C,
            result == Commit::Conflict { index: 4 },
            "case {i}: expected a conflict at op 4, got {result:?}"
        );
        ensure!(
            C,
            ok(C, "receipt", store.receipt(&rk))?.is_none(),
            "case {i}: a failed batch left its receipt"
        );
        ensure!(
            C,
            ok(C, "counter", store.counter(&issued))? == 0,
            "case {i}: a failed batch moved a counter"
        );
        ensure!(
            C,
            ok(C, "coupon", store.coupon(&c.id))?.is_none(),
            "case {i}: a failed batch left its coupon"
        );
        ensure!(
            C,
            ok(C, "template", store.template(&t))?.is_none(),
            "case {i}: a failed batch left its template"
        );
        ensure!(
            C,
            ok(C, "wallet", store.wallet(&c.owner))?.is_empty(),
            "case {i}: a failed batch left a wallet entry"
        );
    }
    // The first failing condition is reported, even when a later one fails too.
    let ops = vec![
        count(issued.clone(), 1, Some(10)),
        count(full.clone(), 1, Some(1)),
        count(CounterKey::Custom("zero".into()), -1, None),
    ];
    let r = commit(C, &store, ops)?;
    ensure!(
        C,
        r == Commit::Conflict { index: 1 },
        "expected the first failing op (1), got {r:?}"
    );
    ensure!(
        C,
        commit(C, &store, failing(count(full.clone(), -1, None))?)? == Commit::Applied,
        "a valid batch conflicted"
    );
    ensure!(
        C,
        ok(C, "counter", store.counter(&issued))? == 1
            && ok(C, "counter", store.counter(&full))? == 0,
        "an applied batch did not apply every op"
    );
    Ok(())
}

/// [`Repository::wallet`] returns every coupon of a user in any state, ordered by id;
/// [`Repository::order_coupons`] those locked or used by an order, ordered by id, and follows
/// coupons as they leave the order.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn wallet_and_order_indexes<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "wallet_and_order_indexes";
    let now = t0(C)?;
    let until = now + Duration::days(1);
    let o1 = oid(C, "o1")?;
    let o2 = oid(C, "o2")?;
    let locked = |o: &OrderId| CouponState::Locked {
        order: o.clone(),
        until: now + Duration::minutes(15),
    };
    let coupons = [
        coupon(C, "c3", "alice", locked(&o1), until)?,
        coupon(C, "c1", "alice", CouponState::Available, until)?,
        coupon(
            C,
            "c2",
            "alice",
            CouponState::Used {
                order: o1.clone(),
                at: now,
            },
            until,
        )?,
        coupon(C, "c4", "alice", CouponState::Expired { at: now }, until)?,
        coupon(C, "c0", "bob", locked(&o2), until)?,
        coupon(C, "c5", "alice", CouponState::Voided { at: now }, until)?,
    ];
    let ops = coupons
        .iter()
        .cloned()
        .map(|c| put(c, Expect::Absent))
        .collect();
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "inserting coupons conflicted"
    );
    let ids = |v: Vec<Versioned<Coupon>>| {
        v.into_iter()
            .map(|c| c.value.id.to_string())
            .collect::<Vec<_>>()
    };
    let alice = ids(ok(C, "wallet", store.wallet(&uid(C, "alice")?))?);
    ensure!(
        C,
        alice == ["c1", "c2", "c3", "c4", "c5"],
        "alice's wallet is {alice:?}"
    );
    let bob = ids(ok(C, "wallet", store.wallet(&uid(C, "bob")?))?);
    ensure!(C, bob == ["c0"], "bob's wallet is {bob:?}");
    ensure!(
        C,
        ok(C, "wallet", store.wallet(&uid(C, "carol")?))?.is_empty(),
        "an unknown user has coupons"
    );
    let by_o1 = ids(ok(C, "order coupons", store.order_coupons(&o1))?);
    ensure!(C, by_o1 == ["c2", "c3"], "order o1 holds {by_o1:?}");
    // c3 is released: it leaves o1 and stays in the wallet.
    let c3 = state_of(C, &store, &cid(C, "c3")?)?;
    let released = Coupon {
        state: CouponState::Available,
        ..c3.value
    };
    ensure!(
        C,
        commit(C, &store, vec![put(released, Expect::Version(c3.version))])? == Commit::Applied,
        "release conflicted"
    );
    let by_o1 = ids(ok(C, "order coupons", store.order_coupons(&o1))?);
    ensure!(
        C,
        by_o1 == ["c2"],
        "after release, order o1 holds {by_o1:?}"
    );
    // c1 is locked by o2.
    let c1 = state_of(C, &store, &cid(C, "c1")?)?;
    let moved = Coupon {
        state: locked(&o2),
        ..c1.value
    };
    ensure!(
        C,
        commit(C, &store, vec![put(moved, Expect::Version(c1.version))])? == Commit::Applied,
        "lock conflicted"
    );
    let by_o2 = ids(ok(C, "order coupons", store.order_coupons(&o2))?);
    ensure!(C, by_o2 == ["c0", "c1"], "order o2 holds {by_o2:?}");
    ensure!(
        C,
        ok(C, "order coupons", store.order_coupons(&oid(C, "o3")?))?.is_empty(),
        "an unknown order holds coupons"
    );
    let alice = ids(ok(C, "wallet", store.wallet(&uid(C, "alice")?))?);
    ensure!(
        C,
        alice == ["c1", "c2", "c3", "c4", "c5"],
        "after updates alice's wallet is {alice:?}"
    );
    Ok(())
}

/// [`Repository::due`] returns Available coupons whose validity ended at or before `now` and
/// Locked coupons whose hold ended at or before `now` — nothing else — ordered by id, at most
/// `limit`.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn due_coupons<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "due_coupons";
    let now = t0(C)?;
    let o = oid(C, "o1")?;
    let lock_until = |d: Duration| CouponState::Locked {
        order: o.clone(),
        until: now + d,
    };
    let later = now + Duration::days(3);
    let coupons = [
        coupon(
            C,
            "a-expired",
            "alice",
            CouponState::Available,
            now - Duration::seconds(1),
        )?,
        coupon(C, "b-at-now", "alice", CouponState::Available, now)?,
        coupon(
            C,
            "c-valid",
            "alice",
            CouponState::Available,
            now + Duration::nanoseconds(1),
        )?,
        coupon(
            C,
            "d-hold-over",
            "bob",
            lock_until(Duration::minutes(-1)),
            later,
        )?,
        coupon(
            C,
            "e-hold-on",
            "bob",
            lock_until(Duration::minutes(1)),
            later,
        )?,
        coupon(
            C,
            "f-used",
            "bob",
            CouponState::Used {
                order: o.clone(),
                at: now,
            },
            now - Duration::days(1),
        )?,
        coupon(
            C,
            "g-expired",
            "bob",
            CouponState::Expired { at: now },
            now - Duration::days(1),
        )?,
        coupon(
            C,
            "h-voided",
            "bob",
            CouponState::Voided { at: now },
            now - Duration::days(1),
        )?,
        coupon(
            C,
            "i-old",
            "carol",
            CouponState::Available,
            now - Duration::days(30),
        )?,
    ];
    let ops = coupons
        .iter()
        .cloned()
        .map(|c| put(c, Expect::Absent))
        .collect();
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "inserting coupons conflicted"
    );
    let ids = |v: Vec<Versioned<Coupon>>| {
        v.into_iter()
            .map(|c| c.value.id.to_string())
            .collect::<Vec<_>>()
    };
    let due = ids(ok(C, "due", store.due(now, 100))?);
    ensure!(
        C,
        due == ["a-expired", "b-at-now", "d-hold-over", "i-old"],
        "due at now: {due:?}"
    );
    let some_due = ids(ok(C, "due", store.due(now, 2))?);
    ensure!(
        C,
        some_due.len() == 2,
        "due with limit 2 returned {} coupons",
        some_due.len()
    );
    ensure!(
        C,
        some_due.is_sorted(),
        "due is not ordered by id: {some_due:?}"
    );
    ensure!(
        C,
        some_due.iter().all(|id| due.contains(id)),
        "due with a limit returned {some_due:?}"
    );
    ensure!(
        C,
        ok(C, "due", store.due(now, 0))?.is_empty(),
        "due with limit 0 returned coupons"
    );
    let early = ids(ok(C, "due", store.due(now - Duration::days(10), 100))?);
    ensure!(C, early == ["i-old"], "due ten days earlier: {early:?}");
    // Transitions move coupons in and out of `due`.
    let a = state_of(C, &store, &cid(C, "a-expired")?)?;
    let expired = Coupon {
        state: CouponState::Expired { at: now },
        ..a.value
    };
    let e = state_of(C, &store, &cid(C, "e-hold-on")?)?;
    let e_over = Coupon {
        state: lock_until(Duration::minutes(-5)),
        ..e.value
    };
    let c = state_of(C, &store, &cid(C, "c-valid")?)?;
    let c_locked = Coupon {
        state: lock_until(Duration::minutes(10)),
        ..c.value
    };
    let ops = vec![
        put(expired, Expect::Version(a.version)),
        put(e_over, Expect::Version(e.version)),
        put(c_locked, Expect::Version(c.version)),
    ];
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "updates conflicted"
    );
    let due = ids(ok(C, "due", store.due(now, 100))?);
    ensure!(
        C,
        due == ["b-at-now", "d-hold-over", "e-hold-on", "i-old"],
        "due after updates: {due:?}"
    );
    let due = ids(ok(C, "due", store.due(now + Duration::minutes(10), 100))?);
    ensure!(
        C,
        due == ["b-at-now", "c-valid", "d-hold-over", "e-hold-on", "i-old"],
        "due ten minutes later: {due:?}"
    );
    Ok(())
}

/// [`Op::Hold`] sets, moves and clears an order's hold deadline, never conflicts, and is
/// written only with its batch; [`Repository::held`] returns the orders whose deadline is at
/// or before `now`, earliest first (ties by order id), at most `limit`.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn order_holds<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "order_holds";
    let now = t0(C)?;
    let hold = |order: &str, until: Option<Duration>| -> Result<Op, Failure> {
        Ok(Op::Hold {
            order: oid(C, order)?,
            until: until.map(|d| now + d),
        })
    };
    let held = |at: Duration, limit: usize| -> Result<Vec<String>, Failure> {
        Ok(ok(C, "held", store.held(now + at, limit))?
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect())
    };
    ensure!(
        C,
        held(Duration::days(9), 10)?.is_empty(),
        "a fresh store holds orders"
    );
    let ops = vec![
        hold("o-late", Some(Duration::minutes(15)))?,
        hold("o-b", Some(Duration::minutes(5)))?,
        hold("o-a", Some(Duration::minutes(5)))?,
        // Clearing an order that holds nothing is no conflict.
        hold("o-none", None)?,
    ];
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "hold writes conflicted"
    );
    let h = held(Duration::minutes(4), 10)?;
    ensure!(C, h.is_empty(), "held before any deadline: {h:?}");
    let h = held(Duration::minutes(5), 10)?;
    ensure!(C, h == ["o-a", "o-b"], "held at the first deadline: {h:?}");
    let h = held(Duration::minutes(15), 2)?;
    ensure!(C, h == ["o-a", "o-b"], "held with a limit of 2: {h:?}");
    let h = held(Duration::hours(1), 10)?;
    ensure!(
        C,
        h == ["o-a", "o-b", "o-late"],
        "held an hour later: {h:?}"
    );
    // Moving a deadline and clearing one.
    let ops = vec![
        hold("o-a", Some(Duration::minutes(30)))?,
        hold("o-b", None)?,
    ];
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Applied,
        "moving and clearing holds conflicted"
    );
    let h = held(Duration::minutes(20), 10)?;
    ensure!(
        C,
        h == ["o-late"],
        "held after moving o-a and clearing o-b: {h:?}"
    );
    let h = held(Duration::hours(1), 10)?;
    ensure!(C, h == ["o-late", "o-a"], "held an hour later: {h:?}");
    // A batch that fails writes no hold.
    let ops = vec![
        hold("o-c", Some(Duration::minutes(1)))?,
        hold("o-late", None)?,
        count(CounterKey::Custom("never-negative".into()), -1, None),
    ];
    ensure!(
        C,
        commit(C, &store, ops)? == Commit::Conflict { index: 2 },
        "a batch whose last op fails was applied"
    );
    let h = held(Duration::hours(1), 10)?;
    ensure!(
        C,
        h == ["o-late", "o-a"],
        "a failed batch changed the holds: {h:?}"
    );
    Ok(())
}

// ------------------------------------------------------------------------------ concurrent

/// The whole event feed, read in pages of 7 (a page size that splits batches' events), checked
/// to have no gap and no duplicate.
fn feed<R: Repository>(check: &'static str, store: &R) -> Result<Vec<Logged>, Failure> {
    let mut all: Vec<Logged> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.seq);
        let page = ok(check, "events", store.events(after, 7))?;
        ensure!(
            check,
            page.len() <= 7,
            "events returned {} for a limit of 7",
            page.len()
        );
        if page.is_empty() {
            break;
        }
        for e in page {
            ensure!(
                check,
                e.seq == after_of(&all) + 1,
                "event {} follows event {}: the feed has a gap or a duplicate",
                e.seq,
                after_of(&all)
            );
            all.push(e);
        }
    }
    Ok(all)
}

fn after_of(all: &[Logged]) -> u64 {
    all.last().map_or(0, |e| e.seq)
}

/// Events commit with their batch: an applied batch appends its events, in order, under the
/// next sequences; a batch that conflicts appends none; an event-only batch applies; paging by
/// `after` and `limit` returns exactly the events after the position. A coupon's attributes
/// round-trip.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn events_commit_with_their_change<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "events_commit_with_their_change";
    let now = t0(C)?;
    ensure!(
        C,
        ok(C, "events", store.events(0, 10))?.is_empty(),
        "a fresh store has events"
    );
    let key = CounterKey::Custom("signups".into());
    let ev = |n: &str| -> Result<Event, Failure> {
        let c = coupon(C, n, "u", CouponState::Available, now + Duration::days(1))?;
        Ok(Event::new(
            now,
            EventKind::Voided {
                coupon: CouponFacts::of(&c),
            },
        ))
    };
    let applied = commit(
        C,
        &store,
        vec![
            Op::Emit { event: ev("a")? },
            count(key.clone(), 1, Some(1)),
            Op::Emit { event: ev("b")? },
        ],
    )?;
    ensure!(
        C,
        applied == Commit::Applied,
        "a valid batch was refused: {applied:?}"
    );
    let refused = commit(
        C,
        &store,
        vec![
            Op::Emit { event: ev("lost")? },
            count(key.clone(), 1, Some(1)),
        ],
    )?;
    ensure!(
        C,
        refused == Commit::Conflict { index: 1 },
        "a batch past a counter's limit was not refused at its index: {refused:?}"
    );
    let alone = commit(C, &store, vec![Op::Emit { event: ev("c")? }])?;
    ensure!(
        C,
        alone == Commit::Applied,
        "an event-only batch was refused"
    );
    let all = feed(C, &store)?;
    let names: Vec<String> = all
        .iter()
        .map(|l| match &l.event.kind {
            EventKind::Voided { coupon } => coupon.id.to_string(),
            other => other.name().to_string(),
        })
        .collect();
    ensure!(
        C,
        names == ["a", "b", "c"],
        "the feed holds {names:?}, expected [a, b, c] (the refused batch's event must not appear)"
    );
    ensure!(
        C,
        all.iter().map(|l| l.seq).collect::<Vec<_>>() == [1, 2, 3],
        "sequences start at 1 and step by 1"
    );
    let first = ev("a")?;
    ensure!(
        C,
        all.first().map(|l| &l.event) == Some(&first),
        "an event came back changed"
    );
    let page = ok(C, "events", store.events(1, 1))?;
    ensure!(
        C,
        page.len() == 1 && page.first().map(|l| l.seq) == Some(2),
        "events(1, 1) returned {:?}",
        page.iter().map(|l| l.seq).collect::<Vec<_>>()
    );
    ensure!(
        C,
        ok(C, "events", store.events(3, 5))?.is_empty(),
        "events after the last one"
    );
    // Attributes travel with the coupon.
    let mut attrs = Attributes::new();
    let arm = (
        ok(C, "key", AttrKey::new("arm"))?,
        ok(C, "value", AttrValue::new("b"))?,
    );
    ok(C, "attributes", attrs.insert(arm.0, arm.1))?;
    let mut c = coupon(
        C,
        "with-attrs",
        "u",
        CouponState::Available,
        now + Duration::days(1),
    )?;
    c.attributes = attrs.clone();
    let put_ok = commit(C, &store, vec![put(c.clone(), Expect::Absent)])?;
    ensure!(C, put_ok == Commit::Applied, "storing a coupon failed");
    let back = some(C, "coupon", ok(C, "coupon", store.coupon(&c.id))?)?;
    ensure!(
        C,
        back.value.attributes == attrs,
        "a coupon's attributes did not round-trip: {:?}",
        back.value.attributes
    );
    let plain = coupon(
        C,
        "plain",
        "u",
        CouponState::Available,
        now + Duration::days(1),
    )?;
    let put_ok = commit(C, &store, vec![put(plain.clone(), Expect::Absent)])?;
    ensure!(C, put_ok == Commit::Applied, "storing a coupon failed");
    let back = some(C, "coupon", ok(C, "coupon", store.coupon(&plain.id))?)?;
    ensure!(
        C,
        back.value.attributes.is_empty(),
        "a coupon without attributes came back with some"
    );
    Ok(())
}

/// A user's live coupons are the Available and Locked ones; the history pages through all of
/// them by id; a batch read answers in the order asked, `None` for a missing id.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn live_coupons_and_history<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "live_coupons_and_history";
    let now = t0(C)?;
    let later = now + Duration::days(1);
    let o = oid(C, "o1")?;
    let states = [
        ("a-1", CouponState::Available),
        (
            "a-2",
            CouponState::Used {
                order: o.clone(),
                at: now,
            },
        ),
        (
            "a-3",
            CouponState::Locked {
                order: o.clone(),
                until: later,
            },
        ),
        ("a-4", CouponState::Expired { at: now }),
        ("a-5", CouponState::Voided { at: now }),
    ];
    for (id, state) in &states {
        let c = coupon(C, id, "alice", state.clone(), later)?;
        let r = commit(C, &store, vec![put(c, Expect::Absent)])?;
        ensure!(C, r == Commit::Applied, "storing {id} failed");
    }
    let ids = |v: Vec<Versioned<Coupon>>| -> Vec<String> {
        v.into_iter().map(|c| c.value.id.to_string()).collect()
    };
    let alice = uid(C, "alice")?;
    let live = ids(ok(C, "live coupons", store.live_coupons(&alice))?);
    ensure!(
        C,
        live == ["a-1", "a-3"],
        "live coupons {live:?}, expected [a-1, a-3]"
    );
    let first = ids(ok(C, "history", store.history(&alice, None, 2))?);
    ensure!(C, first == ["a-1", "a-2"], "first history page {first:?}");
    let after = cid(C, "a-2")?;
    let rest = ids(ok(C, "history", store.history(&alice, Some(&after), 10))?);
    ensure!(
        C,
        rest == ["a-3", "a-4", "a-5"],
        "second history page {rest:?}"
    );
    let ask = [cid(C, "a-4")?, cid(C, "missing")?, cid(C, "a-1")?];
    let got: Vec<Option<String>> = ok(C, "coupons", store.coupons(&ask))?
        .into_iter()
        .map(|c| c.map(|c| c.value.id.to_string()))
        .collect();
    ensure!(
        C,
        got == [Some("a-4".to_string()), None, Some("a-1".to_string())],
        "batch read {got:?}"
    );
    Ok(())
}

fn window_op(guard: &GuardName, bucket: i64, span: u32, delta: i64, limit: u64) -> Op {
    Op::CountWindow {
        guard: guard.clone(),
        subject: "device=d|ip=203.0.113.0/24".into(),
        bucket,
        span,
        delta,
        limit,
    }
}

/// Windowed guard counters: a window sums exactly its buckets, a change past the limit or
/// below zero is refused (and nothing of its batch applies), old buckets stop counting, and a
/// bucket reads back through [`CounterKey::Guard`].
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn guard_windows<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "guard_windows";
    let g = ok(C, "guard name", GuardName::new("per-device"))?;
    let other = ok(C, "guard name", GuardName::new("other"))?;
    let step = |bucket: i64, delta: i64, expect: Commit| -> Result<(), Failure> {
        let got = commit(C, &store, vec![window_op(&g, bucket, 3, delta, 3)])?;
        ensure!(
            C,
            got == expect,
            "bucket {bucket} {delta:+} (3 buckets, limit 3): {got:?}, expected {expect:?}"
        );
        Ok(())
    };
    let refused = Commit::Conflict { index: 0 };
    step(10, 1, Commit::Applied)?;
    step(11, 1, Commit::Applied)?;
    step(12, 1, Commit::Applied)?;
    step(12, 1, refused)?; // 10..=12 holds 3
    step(13, 1, Commit::Applied)?; // 11..=13 holds 2 before
    step(13, 1, refused)?;
    step(15, 2, Commit::Applied)?; // 13..=15 holds 1 before
    step(15, -3, refused)?; // below zero in its own bucket
    step(15, -2, Commit::Applied)?;
    // Another guard with the same subject counts apart.
    let got = commit(C, &store, vec![window_op(&other, 15, 1, 1, 1)])?;
    ensure!(
        C,
        got == Commit::Applied,
        "a second guard's count was refused"
    );
    // A refused window op takes its batch with it.
    let key = CounterKey::Custom("side".into());
    let got = commit(
        C,
        &store,
        vec![count(key.clone(), 1, None), window_op(&other, 15, 1, 1, 1)],
    )?;
    ensure!(
        C,
        got == Commit::Conflict { index: 1 },
        "a full window was not refused: {got:?}"
    );
    ensure!(
        C,
        ok(C, "counter", store.counter(&key))? == 0,
        "a refused batch applied its other ops"
    );
    let read = |guard: &GuardName, bucket| {
        ok(
            C,
            "counter",
            store.counter(&CounterKey::Guard {
                guard: guard.clone(),
                subject: "device=d|ip=203.0.113.0/24".into(),
                bucket,
            }),
        )
    };
    ensure!(C, read(&g, 13)? == 1, "bucket 13 reads {}", read(&g, 13)?);
    ensure!(C, read(&g, 15)? == 0, "bucket 15 reads {}", read(&g, 15)?);
    ensure!(
        C,
        read(&other, 15)? == 1,
        "the other guard's bucket reads {}",
        read(&other, 15)?
    );
    Ok(())
}

const THREADS: usize = 8;

/// Colluding accounts on one device race to claim: a guard of 5 claims per device per day lets
/// exactly 5 through across 8 threads, every other claim is refused naming the guard, each
/// refusal is a `refused` event, and the guard's bucket reads 5.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn concurrent_guards_are_exact<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "concurrent_guards_are_exact";
    const LIMIT: u64 = 5;
    const TRIES: usize = 12;
    let now = t0(C)?;
    let name = ok(C, "guard name", GuardName::new("claims-per-device"))?;
    let device = ok(
        C,
        "guard",
        Guard::new(
            name.clone(),
            Action::Claim,
            vec![Subject::Device],
            LIMIT,
            Window::Day,
        ),
    )?;
    let subnet = ok(
        C,
        "guard",
        Guard::new(
            ok(C, "guard name", GuardName::new("claims-per-subnet"))?,
            Action::Claim,
            vec![Subject::SUBNET],
            1_000,
            Window::rolling_days(7, 480).map_err(|e| fail(C, e.to_string()))?,
        ),
    )?;
    let config = crate::service::ServiceConfig {
        guards: vec![subnet, device],
        ..Default::default()
    };
    let service = ok(C, "config", Service::with_config(store, config))?;
    let t = active(C, &service, template(C, "guarded", LimitsSpec::default())?)?;
    let results: Vec<Result<(usize, usize), Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let (service, t, name) = (&service, &t, &name);
                s.spawn(move || -> Result<(usize, usize), Failure> {
                    let (mut won, mut held) = (0, 0);
                    for i in 0..TRIES {
                        let ip = format!("203.0.113.{}", th * TRIES + i);
                        let context = Context::new()
                            .device(ok(C, "device", DeviceId::new("shared-phone"))?)
                            .ip(ok(C, "ip", ip.parse())?);
                        let req =
                            claim_request(C, t, &format!("acct-{th}-{i}"), &format!("k-{th}-{i}"))?
                                .with_context(context);
                        match service.claim(&req, now) {
                            Ok(_) => won += 1,
                            Err(ServiceError::Lifecycle(LifecycleError::GuardHeld {
                                guard,
                                ..
                            })) if &guard == name => held += 1,
                            Err(e) => {
                                return Err(fail(
                                    C,
                                    format!("claim failed: {}", service_error(&e)),
                                ));
                            }
                        }
                    }
                    Ok((won, held))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let (mut won, mut held) = (0, 0);
    for r in results {
        let (w, h) = r?;
        won += w;
        held += h;
    }
    ensure!(
        C,
        won as u64 == LIMIT,
        "{won} claims from one device got past a limit of {LIMIT}"
    );
    let store = service.repository();
    let (bucket, _) = Window::Day.bucket(now);
    let counted = ok(
        C,
        "counter",
        store.counter(&CounterKey::Guard {
            guard: name.clone(),
            subject: "device=shared-phone".into(),
            bucket,
        }),
    )?;
    ensure!(
        C,
        counted == LIMIT,
        "the guard's bucket reads {counted}, expected {LIMIT}"
    );
    let refusals = feed(C, store)?
        .iter()
        .filter(|l| matches!(&l.event.kind, EventKind::Refused { refusal: Refusal::Guard { guard }, .. } if guard == name.as_str()))
        .count();
    ensure!(
        C,
        refusals == held,
        "{held} claims refused by the guard, {refusals} refused events"
    );
    Ok(())
}

fn service_error<E: Display>(e: &ServiceError<E>) -> String {
    e.to_string()
}

/// Eight threads claim one template whose stock is far below demand, each user several times
/// against a per-user limit, retrying some requests with the same key: exactly `stock` coupons
/// are issued, no user holds more than its limit, the counters agree with the coupons, and
/// every retry returns the first coupon.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn concurrent_claims_are_exact<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "concurrent_claims_are_exact";
    const STOCK: u64 = 60;
    const PER_USER: u32 = 2;
    const USERS: usize = 40;
    const TRIES: usize = 30;
    let now = t0(C)?;
    let service = Service::new(store);
    let spec = LimitsSpec {
        total_stock: Some(STOCK),
        per_user_claims: Some(PER_USER),
        ..Default::default()
    };
    let t = active(C, &service, template(C, "hot", spec)?)?;
    let results: Vec<Result<Vec<(String, CouponId)>, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let service = &service;
                let t = &t;
                s.spawn(move || -> Result<Vec<(String, CouponId)>, Failure> {
                    let mut won = Vec::new();
                    for i in 0..TRIES {
                        let user = format!("user-{}", (th * TRIES + i) % USERS);
                        let k = format!("claim-{th}-{i}");
                        let req = claim_request(C, t, &user, &k)?;
                        match service.claim(&req, now) {
                            Ok(c) => {
                                ensure!(C, !c.replayed, "a first claim was reported as a replay");
                                // Retry the same request: same coupon, nothing new.
                                let again = ok(C, "retry", service.claim(&req, now))?;
                                ensure!(
                                    C,
                                    again.replayed && again.coupon.id == c.coupon.id,
                                    "a retried claim returned another coupon"
                                );
                                won.push((user, c.coupon.id));
                            }
                            Err(ServiceError::Lifecycle(
                                LifecycleError::OutOfStock { .. }
                                | LifecycleError::ClaimLimitReached { .. },
                            )) => {}
                            Err(e) => {
                                return Err(fail(
                                    C,
                                    format!("claim failed: {}", service_error(&e)),
                                ));
                            }
                        }
                    }
                    Ok(won)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let mut won = Vec::new();
    for r in results {
        won.extend(r?);
    }
    ensure!(
        C,
        won.len() as u64 == STOCK,
        "{} coupons issued from a stock of {STOCK}",
        won.len()
    );
    let store = service.repository();
    ensure!(
        C,
        ok(C, "counter", store.counter(&CounterKey::Issued(t.clone())))? == STOCK,
        "the issued counter disagrees with the coupons"
    );
    let mut ids: Vec<&CouponId> = won.iter().map(|(_, c)| c).collect();
    ids.sort();
    ids.dedup();
    ensure!(
        C,
        ids.len() == won.len(),
        "two claims returned the same coupon"
    );
    for u in 0..USERS {
        let user = uid(C, &format!("user-{u}"))?;
        let wallet = ok(C, "wallet", store.wallet(&user))?;
        ensure!(
            C,
            wallet.len() as u32 <= PER_USER,
            "{user} holds {} coupons, limit {PER_USER}",
            wallet.len()
        );
        let counted = ok(
            C,
            "counter",
            store.counter(&CounterKey::UserClaims(t.clone(), user.clone())),
        )?;
        ensure!(
            C,
            counted == wallet.len() as u64,
            "{user}: claim counter {counted}, wallet {}",
            wallet.len()
        );
        let expected = won.iter().filter(|(u2, _)| u2 == user.as_str()).count();
        ensure!(
            C,
            expected == wallet.len(),
            "{user}: {expected} claims won, wallet holds {}",
            wallet.len()
        );
    }
    // The feed: one `issued` per coupon won and none for any other, no gap, no duplicate.
    let mut issued: Vec<CouponId> = feed(C, store)?
        .into_iter()
        .filter_map(|l| match l.event.kind {
            EventKind::Issued { coupon, .. } => Some(coupon.id),
            _ => None,
        })
        .collect();
    issued.sort();
    let mut won_ids: Vec<CouponId> = won.iter().map(|(_, c)| c.clone()).collect();
    won_ids.sort();
    ensure!(
        C,
        issued == won_ids,
        "{} issued events for {} coupons won (each coupon exactly once)",
        issued.len(),
        won_ids.len()
    );
    Ok(())
}

/// Eight orders race to lock the same coupon: exactly one wins; the losers' pay finds nothing
/// to pay; the winner's coupon is used exactly once, by the winner.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn concurrent_locks_have_one_winner<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "concurrent_locks_have_one_winner";
    const ROUNDS: usize = 3;
    let now = t0(C)?;
    let service = Service::new(store);
    let t = active(C, &service, template(C, "t", LimitsSpec::default())?)?;
    let cart = cart(C)?;
    for round in 0..ROUNDS {
        let user = format!("buyer-{round}");
        let claimed = ok(
            C,
            "claim",
            service.claim(&claim_request(C, &t, &user, &format!("c-{round}"))?, now),
        )?;
        let coupon = claimed.coupon.id;
        let buyer = Buyer::new(uid(C, &user)?, channel(C)?);
        let selection = [OfferId::Coupon(coupon.clone())];
        let outcomes: Vec<Result<Option<OrderId>, Failure>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|th| {
                    let (service, cart, buyer, selection) = (&service, &cart, &buyer, &selection);
                    s.spawn(move || -> Result<Option<OrderId>, Failure> {
                        let order = oid(C, &format!("o-{round}-{th}"))?;
                        let k = key(C, &format!("lock-{round}-{th}"))?;
                        let req = LockRequest::new(&order, cart, buyer, &k).select(selection);
                        match service.quote_and_lock(&req, now) {
                            Ok(l) => {
                                ensure!(
                                    C,
                                    l.coupons.len() == 1,
                                    "a lock held {} coupons",
                                    l.coupons.len()
                                );
                                let pay = ok(
                                    C,
                                    "pay",
                                    service.pay(
                                        &order,
                                        &Actor::System,
                                        &key(C, &format!("pay-{round}-{th}"))?,
                                        now,
                                    ),
                                )?;
                                let held: Vec<CouponId> =
                                    l.coupons.iter().map(|c| c.id.clone()).collect();
                                ensure!(C, pay.coupons == held, "pay redeemed {:?}", pay.coupons);
                                Ok(Some(order))
                            }
                            Err(ServiceError::Checkout(_) | ServiceError::Lifecycle(_)) => {
                                let paid = service.pay(
                                    &order,
                                    &Actor::System,
                                    &key(C, &format!("pay-{round}-{th}"))?,
                                    now,
                                );
                                ensure!(C, paid.is_err(), "an order that locked nothing was paid");
                                Ok(None)
                            }
                            Err(e) => Err(fail(C, format!("lock failed: {}", service_error(&e)))),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
                })
                .collect()
        });
        let mut winners = Vec::new();
        for o in outcomes {
            if let Some(order) = o? {
                winners.push(order);
            }
        }
        ensure!(
            C,
            winners.len() == 1,
            "round {round}: {} orders locked the same coupon",
            winners.len()
        );
        let winner = some(C, "winner", winners.first())?;
        let c = state_of(C, service.repository(), &coupon)?;
        ensure!(
            C,
            matches!(&c.value.state, CouponState::Used { order, .. } if order == winner),
            "round {round}: the coupon is {:?}, not used by the winner",
            c.value.state
        );
        let used = ok(
            C,
            "counter",
            service
                .repository()
                .counter(&CounterKey::UserUses(t.clone(), uid(C, &user)?)),
        )?;
        ensure!(
            C,
            used == 1,
            "round {round}: the use counter is {used}, not 1"
        );
    }
    Ok(())
}

/// Threads race to pay and to cancel the same locked order, and a sweep runs after its hold:
/// the order is settled exactly once, and the coupon ends Used (if paid) or Available (if
/// released) — never both, never counted twice.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn concurrent_pay_and_cancel_settle_once<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "concurrent_pay_and_cancel_settle_once";
    const ROUNDS: usize = 4;
    let now = t0(C)?;
    let service = Service::new(store);
    let spec = LimitsSpec {
        per_user_uses: Some(5),
        ..Default::default()
    };
    let t = active(C, &service, template(C, "t", spec)?)?;
    let cart = cart(C)?;
    for round in 0..ROUNDS {
        let user = format!("buyer-{round}");
        let claimed = ok(
            C,
            "claim",
            service.claim(&claim_request(C, &t, &user, &format!("c-{round}"))?, now),
        )?;
        let buyer = Buyer::new(uid(C, &user)?, channel(C)?);
        let order = oid(C, &format!("o-{round}"))?;
        let lk = key(C, &format!("lock-{round}"))?;
        let locked = ok(
            C,
            "lock",
            service.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lk), now),
        )?;
        ensure!(
            C,
            locked.coupons.len() == 1,
            "the lock held {} coupons",
            locked.coupons.len()
        );
        // Odd rounds race after the hold ran out, with a sweep joining in.
        let at = if round % 2 == 1 {
            now + Duration::minutes(20)
        } else {
            now + Duration::minutes(1)
        };
        let outcomes: Vec<Result<(bool, bool), Failure>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|th| {
                    let (service, order) = (&service, &order);
                    s.spawn(move || -> Result<(bool, bool), Failure> {
                        let k = key(C, &format!("settle-{round}-{th}"))?;
                        if th == THREADS - 1 && round % 2 == 1 {
                            let swept = ok(C, "sweep", service.sweep(at, 100))?;
                            return Ok((false, swept.released.contains(order)));
                        }
                        let r = if th % 2 == 0 {
                            service.pay(order, &Actor::System, &k, at)
                        } else {
                            service.cancel(order, &Actor::System, &k, at)
                        };
                        match r {
                            Ok(s) => Ok((th % 2 == 0, !s.replayed)),
                            Err(ServiceError::Lifecycle(
                                LifecycleError::OrderPaid { .. }
                                | LifecycleError::OrderReleased { .. },
                            )) => Ok((th % 2 == 0, false)),
                            Err(e) => Err(fail(C, format!("settle failed: {}", service_error(&e)))),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
                })
                .collect()
        });
        let mut firsts = Vec::new();
        for o in outcomes {
            let (is_pay, first) = o?;
            if first {
                firsts.push(is_pay);
            }
        }
        ensure!(
            C,
            firsts.len() == 1,
            "round {round}: the order was settled {} times",
            firsts.len()
        );
        let c = state_of(C, service.repository(), &claimed.coupon.id)?;
        let uses = ok(
            C,
            "counter",
            service
                .repository()
                .counter(&CounterKey::UserUses(t.clone(), uid(C, &user)?)),
        )?;
        if firsts.first() == Some(&true) {
            ensure!(
                C,
                matches!(c.value.state, CouponState::Used { .. }),
                "round {round}: paid, but the coupon is {:?}",
                c.value.state
            );
            ensure!(C, uses == 1, "round {round}: paid, use counter {uses}");
        } else {
            ensure!(
                C,
                c.value.state == CouponState::Available,
                "round {round}: released, but the coupon is {:?}",
                c.value.state
            );
            ensure!(C, uses == 0, "round {round}: released, use counter {uses}");
        }
    }
    Ok(())
}

/// Every operation repeated with its key returns the first outcome and changes nothing:
/// claim, lock, pay, refund, cancel and void, sequentially and from eight threads at once.
///
/// # Errors
/// A [`Failure`] describing the first deviation.
pub fn retries_change_nothing<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "retries_change_nothing";
    let now = t0(C)?;
    let service = Service::new(store);
    let spec = LimitsSpec {
        total_stock: Some(100),
        per_user_uses: Some(3),
        ..Default::default()
    };
    let t = active(C, &service, template(C, "t", spec)?)?;
    let cart = cart(C)?;
    let alice = uid(C, "alice")?;
    let buyer = Buyer::new(alice.clone(), channel(C)?);
    let store = service.repository();
    let counters = |t: &TemplateId| -> Result<(u64, u64, u64), Failure> {
        Ok((
            ok(C, "counter", store.counter(&CounterKey::Issued(t.clone())))?,
            ok(
                C,
                "counter",
                store.counter(&CounterKey::UserClaims(t.clone(), alice.clone())),
            )?,
            ok(
                C,
                "counter",
                store.counter(&CounterKey::UserUses(t.clone(), alice.clone())),
            )?,
        ))
    };
    // Claim, from 8 threads with one key.
    let req = claim_request(C, &t, "alice", "claim-1")?;
    let claims: Vec<Result<CouponId, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (service, req) = (&service, &req);
                s.spawn(move || ok(C, "claim", service.claim(req, now)).map(|c| c.coupon.id))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let mut ids = Vec::new();
    for c in claims {
        ids.push(c?);
    }
    let coupon = some(C, "claimed coupon", ids.first())?.clone();
    ensure!(
        C,
        ids.iter().all(|c| c == &coupon),
        "one claim key issued several coupons: {ids:?}"
    );
    ensure!(
        C,
        counters(&t)? == (1, 1, 0),
        "after a claim retried 8 times: {:?}",
        counters(&t)?
    );

    // Lock, retried.
    let order = oid(C, "o1")?;
    let lk = key(C, "lock-1")?;
    let req = LockRequest::new(&order, &cart, &buyer, &lk);
    let first = ok(C, "lock", service.quote_and_lock(&req, now))?;
    ensure!(
        C,
        !first.replayed && first.coupons.len() == 1,
        "the first lock held {} coupons",
        first.coupons.len()
    );
    let again = ok(
        C,
        "lock retry",
        service.quote_and_lock(&req, now + Duration::minutes(1)),
    )?;
    ensure!(C, again.replayed, "a retried lock was not a replay");
    ensure!(
        C,
        again.quote.total_after == first.quote.total_after,
        "a retried lock priced the order differently"
    );
    ensure!(
        C,
        counters(&t)?.2 == 1,
        "a retried lock counted another use"
    );
    let other_order = oid(C, "o-other")?;
    let reuse = service.quote_and_lock(&LockRequest::new(&other_order, &cart, &buyer, &lk), now);
    ensure!(
        C,
        matches!(
            reuse,
            Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. }))
        ),
        "a lock key reused for another order was not refused"
    );
    // The same key, the same order, another cart: a reuse, not a replay re-priced on it.
    let bigger = ok(
        C,
        "cart",
        Cart::new(
            cny(),
            vec![CartLine::new(ok(C, "sku", Sku::new("tea"))?, yuan(100), 2)],
            Money::zero(cny()),
        ),
    )?;
    let reuse = service.quote_and_lock(&LockRequest::new(&order, &bigger, &buyer, &lk), now);
    ensure!(
        C,
        matches!(
            reuse,
            Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. }))
        ),
        "a lock key reused with another cart was not refused: {:?}",
        reuse.map(|r| r.quote.total_after)
    );
    // The same claim key through another channel: a reuse.
    let mut other_channel = claim_request(C, &t, "alice", "claim-1")?;
    other_channel.channel = ok(C, "channel", Channel::new("push"))?;
    ensure!(
        C,
        matches!(
            service.claim(&other_channel, now),
            Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. }))
        ),
        "a claim key reused through another channel was not refused"
    );

    // Pay, retried from 8 threads.
    let pk = key(C, "pay-1")?;
    let pays: Vec<Result<bool, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (service, order, pk) = (&service, &order, &pk);
                s.spawn(move || {
                    ok(C, "pay", service.pay(order, &Actor::System, pk, now)).map(|p| p.replayed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let mut fresh = 0;
    for p in pays {
        if !p? {
            fresh += 1;
        }
    }
    ensure!(C, fresh == 1, "{fresh} pays of one order were not replays");
    let v_paid = state_of(C, store, &coupon)?;
    ensure!(
        C,
        matches!(v_paid.value.state, CouponState::Used { .. }),
        "after pay the coupon is {:?}",
        v_paid.value.state
    );
    let cancel = service.cancel(&order, &Actor::System, &key(C, "cancel-late")?, now);
    ensure!(
        C,
        matches!(
            cancel,
            Err(ServiceError::Lifecycle(LifecycleError::OrderPaid { .. }))
        ),
        "a paid order was cancelled"
    );

    // Merchant refund, retried from 8 threads: the coupon returns once.
    let rk = key(C, "refund-1")?;
    let refunds: Vec<Result<(bool, usize), Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (service, order, rk) = (&service, &order, &rk);
                s.spawn(move || {
                    ok(
                        C,
                        "refund",
                        service.refund(
                            order,
                            &Actor::Merchant,
                            &RefundRequest::whole(RefundKind::Merchant),
                            rk,
                            now,
                        ),
                    )
                    .map(|r| (r.replayed, r.returned.len()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail(C, "a thread panicked")))
            })
            .collect()
    });
    let mut fresh = 0;
    for r in refunds {
        let (replayed, returned) = r?;
        ensure!(
            C,
            returned == 1,
            "a refund reported {returned} returned coupons"
        );
        if !replayed {
            fresh += 1;
        }
    }
    ensure!(
        C,
        fresh == 1,
        "{fresh} refunds of one order were not replays"
    );
    // The refund's key again, as a buyer refund: a reuse, not the merchant refund's outcome.
    ensure!(
        C,
        matches!(
            service.refund(
                &order,
                &Actor::Merchant,
                &RefundRequest::whole(RefundKind::Buyer),
                &rk,
                now
            ),
            Err(ServiceError::Lifecycle(LifecycleError::KeyReused { .. }))
        ),
        "a merchant refund's key reused for a buyer refund was not refused"
    );
    let after = state_of(C, store, &coupon)?;
    ensure!(
        C,
        after.value.state == CouponState::Available,
        "after a merchant refund the coupon is {:?}",
        after.value.state
    );
    ensure!(
        C,
        after.version == v_paid.version + 1,
        "a retried refund wrote the coupon again"
    );
    ensure!(
        C,
        counters(&t)? == (1, 1, 0),
        "after refund: {:?}",
        counters(&t)?
    );
    let buyer_refund = service.refund(
        &order,
        &Actor::Merchant,
        &RefundRequest::whole(RefundKind::Buyer),
        &key(C, "refund-2")?,
        now,
    );
    ensure!(
        C,
        matches!(
            buyer_refund,
            Err(ServiceError::Lifecycle(
                LifecycleError::OrderAlreadyRefunded { .. }
            ))
        ),
        "an order was refunded twice"
    );

    // Lock again and cancel, retried.
    let order2 = oid(C, "o2")?;
    let lk2 = key(C, "lock-2")?;
    ok(
        C,
        "lock",
        service.quote_and_lock(&LockRequest::new(&order2, &cart, &buyer, &lk2), now),
    )?;
    let ck = key(C, "cancel-2")?;
    let c1 = ok(
        C,
        "cancel",
        service.cancel(&order2, &Actor::System, &ck, now),
    )?;
    let c2 = ok(
        C,
        "cancel retry",
        service.cancel(&order2, &Actor::System, &ck, now),
    )?;
    ensure!(
        C,
        !c1.replayed && c2.replayed && c1.coupons == c2.coupons,
        "a retried cancel was not a replay"
    );
    ensure!(
        C,
        counters(&t)?.2 == 0,
        "a retried cancel gave a use back twice"
    );
    let late_pay = service.pay(&order2, &Actor::System, &key(C, "pay-2")?, now);
    ensure!(
        C,
        matches!(
            late_pay,
            Err(ServiceError::Lifecycle(
                LifecycleError::OrderReleased { .. }
            ))
        ),
        "a released order was paid"
    );

    // Void, retried.
    let vk = key(C, "void-1")?;
    let v1 = ok(C, "void", service.void(&coupon, &Actor::Merchant, &vk, now))?;
    let v2 = ok(
        C,
        "void retry",
        service.void(&coupon, &Actor::Merchant, &vk, now),
    )?;
    ensure!(
        C,
        v1 == v2 && matches!(v2.state, CouponState::Voided { .. }),
        "a retried void differs"
    );
    ensure!(
        C,
        state_of(C, store, &coupon)?.version == after.version + 3,
        "a retried void wrote the coupon again"
    );
    Ok(())
}
