//! Model-based test of the lifecycle: random sequences of claims, locks, payments, cancels,
//! refunds (both kinds), voids, sweeps, time jumps and retries run against the `Service` on a
//! `MemoryStore` and against a small reference model written here from the rules, and the two
//! must never disagree — on outcomes (or error categories), coupon states and counters.

use coupons::lifecycle::{Actor, RefundRequest};
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::OfferId;
use coupons::id::*;
use coupons::lifecycle::*;
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, MemoryStore, MemoryStoreError, Repository};
use coupons::rule::*;
use coupons::service::{LockRequest, Service, ServiceError};
use proptest::prelude::*;

const USERS: usize = 3;
const ORDERS: usize = 4;
const HOLD_MINUTES: i64 = 15;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 8, 0, 0).unwrap()
}

/// The two templates of every run.
struct Tpl {
    id: &'static str,
    stock: Option<u64>,
    per_user_claims: u32,
    per_user_uses: Option<u32>,
    /// `None`: 2 days from the claim; `Some(d)`: fixed `[t0, t0 + d days)`.
    fixed_days: Option<i64>,
    refund: RefundPolicy,
}

const TEMPLATES: [Tpl; 2] = [
    Tpl {
        id: "t1",
        stock: Some(4),
        per_user_claims: 2,
        per_user_uses: Some(1),
        fixed_days: None,
        refund: RefundPolicy {
            merchant_refund_returns: true,
            buyer_refund_returns: false,
        },
    },
    Tpl {
        id: "t2",
        stock: None,
        per_user_claims: 3,
        per_user_uses: None,
        fixed_days: Some(3),
        refund: RefundPolicy {
            merchant_refund_returns: false,
            buyer_refund_returns: true,
        },
    },
];

#[derive(Clone, Debug)]
enum Action {
    Claim {
        t: usize,
        u: usize,
        key: u8,
    },
    Lock {
        o: usize,
        u: usize,
        pick: usize,
        key: u8,
    },
    Pay {
        o: usize,
        key: u8,
    },
    Cancel {
        o: usize,
        key: u8,
    },
    Refund {
        o: usize,
        buyer: bool,
        key: u8,
    },
    Void {
        pick: usize,
        key: u8,
    },
    Sweep,
    Advance(i64),
    RetryLast,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0..2usize, 0..USERS, 0..20u8).prop_map(|(t, u, key)| Action::Claim { t, u, key }),
        4 => (0..ORDERS, 0..USERS, 0..4usize, 0..2u8)
            .prop_map(|(o, u, pick, key)| Action::Lock { o, u, pick, key }),
        3 => (0..ORDERS, 0..4u8).prop_map(|(o, key)| Action::Pay { o, key }),
        2 => (0..ORDERS, 0..4u8).prop_map(|(o, key)| Action::Cancel { o, key }),
        2 => (0..ORDERS, any::<bool>(), 0..4u8).prop_map(|(o, buyer, key)| Action::Refund { o, buyer, key }),
        1 => (0..8usize, 0..3u8).prop_map(|(pick, key)| Action::Void { pick, key }),
        1 => Just(Action::Sweep),
        2 => prop_oneof![Just(1i64), Just(16), Just(6 * 60), Just(24 * 60), Just(48 * 60)].prop_map(Action::Advance),
        2 => Just(Action::RetryLast),
    ]
}

/// What an operation did, as a category both sides can produce.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Out {
    Fresh,
    Replay,
    Skipped,
    Swept {
        expired: BTreeSet<String>,
        released: BTreeSet<String>,
    },
    Err(&'static str),
}

type SvcErr = ServiceError<MemoryStoreError>;

fn category(e: &SvcErr) -> &'static str {
    match e {
        ServiceError::Lifecycle(l) => match l {
            LifecycleError::OutOfStock { .. } => "out of stock",
            LifecycleError::ClaimLimitReached { .. } => "claim limit",
            LifecycleError::ClaimedTooLate { .. } => "too late",
            LifecycleError::KeyReused { .. } => "key reused",
            LifecycleError::OrderAlreadyLocked { .. } => "order locked",
            LifecycleError::OrderPaid { .. } => "order paid",
            LifecycleError::OrderReleased { .. } => "order released",
            LifecycleError::OrderNotPaid { .. } => "order not paid",
            LifecycleError::OrderAlreadyRefunded { .. } => "already refunded",
            LifecycleError::HoldRanOut { .. } => "hold ran out",
            LifecycleError::IllegalCouponTransition { .. } => "illegal",
            _ => "other lifecycle error",
        },
        ServiceError::Checkout(_) => "checkout",
        ServiceError::NotFound { .. } => "not found",
        _ => "other",
    }
}

fn out<T>(r: &Result<T, SvcErr>, replayed: impl Fn(&T) -> bool) -> Out {
    match r {
        Ok(v) if replayed(v) => Out::Replay,
        Ok(_) => Out::Fresh,
        Err(e) => Out::Err(category(e)),
    }
}

// ------------------------------------------------------------------------------- the model

#[derive(Clone, Debug, PartialEq, Eq)]
enum MState {
    Available,
    Locked { order: usize, until: DateTime<Utc> },
    Used { order: usize, at: DateTime<Utc> },
    Expired { at: DateTime<Utc> },
    Voided { at: DateTime<Utc> },
}

#[derive(Clone, Debug)]
struct MCoupon {
    id: String,
    t: usize,
    u: usize,
    valid_until: DateTime<Utc>,
    state: MState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    Open,
    Paid,
    Released,
}

#[derive(Clone, Debug)]
struct MOrder {
    coupon: usize,
    settled: Settled,
    refunded: bool,
}

#[derive(Clone, Debug, Default)]
struct Model {
    coupons: Vec<MCoupon>,
    issued: [u64; 2],
    claims: BTreeMap<(usize, usize), u64>,
    uses: BTreeMap<(usize, usize), u64>,
    claim_keys: BTreeMap<u8, (usize, usize, usize)>,
    /// Lock keys (per order) and the buyer who locked.
    /// The request each lock key was first used for: its buyer and selected coupon.
    lock_keys: BTreeMap<(usize, u8), (usize, usize)>,
    orders: BTreeMap<usize, MOrder>,
    pay_keys: BTreeMap<u8, usize>,
    cancel_keys: BTreeMap<u8, usize>,
    /// The request each refund key was first used for: its order and whether the buyer asked.
    refund_keys: BTreeMap<u8, (usize, bool)>,
    void_keys: BTreeMap<u8, usize>,
}

impl Model {
    fn wallet(&self, u: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.coupons.len())
            .filter(|&i| self.coupons[i].u == u)
            .collect();
        v.sort_by(|&a, &b| self.coupons[a].id.cmp(&self.coupons[b].id));
        v
    }

    fn claim(&mut self, t: usize, u: usize, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&(kt, ku, _)) = self.claim_keys.get(&key) {
            return if (kt, ku) == (t, u) {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        let tpl = &TEMPLATES[t];
        let valid_until = match tpl.fixed_days {
            None => now + Duration::days(2),
            Some(d) => {
                let end = t0() + Duration::days(d);
                if now >= end {
                    return Out::Err("too late");
                }
                end
            }
        };
        if tpl.stock.is_some_and(|s| self.issued[t] >= s) {
            return Out::Err("out of stock");
        }
        let n = self.claims.get(&(t, u)).copied().unwrap_or(0);
        if n >= u64::from(tpl.per_user_claims) {
            return Out::Err("claim limit");
        }
        self.issued[t] += 1;
        self.claims.insert((t, u), n + 1);
        self.coupons.push(MCoupon {
            id: format!("{}/claim-{key}", tpl.id),
            t,
            u,
            valid_until,
            state: MState::Available,
        });
        self.claim_keys.insert(key, (t, u, self.coupons.len() - 1));
        Out::Fresh
    }

    /// Whether the service offers coupon `c` to its owner at `now` (not blocked, valid).
    fn usable(&self, c: usize, now: DateTime<Utc>) -> bool {
        let coupon = &self.coupons[c];
        if coupon.state != MState::Available || now >= coupon.valid_until {
            return false;
        }
        let Some(limit) = TEMPLATES[coupon.t].per_user_uses else {
            return true;
        };
        let used = self.uses.get(&(coupon.t, coupon.u)).copied().unwrap_or(0);
        let allowance = u64::from(limit).saturating_sub(used) as usize;
        // The service leaves the coupons expiring soonest usable, up to the allowance.
        let mut same: Vec<usize> = (0..self.coupons.len())
            .filter(|&i| {
                let o = &self.coupons[i];
                o.t == coupon.t && o.u == coupon.u && o.state == MState::Available
            })
            .collect();
        same.sort_by(|&a, &b| {
            (self.coupons[a].valid_until, &self.coupons[a].id)
                .cmp(&(self.coupons[b].valid_until, &self.coupons[b].id))
        });
        same.iter()
            .position(|&i| i == c)
            .is_some_and(|p| p < allowance)
    }

    fn lock(&mut self, o: usize, u: usize, c: usize, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&first) = self.lock_keys.get(&(o, key)) {
            // The same key with another buyer or selection is a reuse, never a replay.
            return if first == (u, c) {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        if !self.usable(c, now) {
            return Out::Err("checkout");
        }
        if self.orders.contains_key(&o) {
            return Out::Err("order locked");
        }
        let coupon = &mut self.coupons[c];
        coupon.state = MState::Locked {
            order: o,
            until: now + Duration::minutes(HOLD_MINUTES),
        };
        *self.uses.entry((coupon.t, coupon.u)).or_default() += 1;
        self.orders.insert(
            o,
            MOrder {
                coupon: c,
                settled: Settled::Open,
                refunded: false,
            },
        );
        self.lock_keys.insert((o, key), (u, c));
        Out::Fresh
    }

    fn pay(&mut self, o: usize, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&ko) = self.pay_keys.get(&key) {
            return if ko == o {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        let Some(order) = self.orders.get(&o).cloned() else {
            return Out::Err("not found");
        };
        match order.settled {
            Settled::Paid => return Out::Replay,
            Settled::Released => return Out::Err("order released"),
            Settled::Open => {}
        }
        let coupon = &mut self.coupons[order.coupon];
        let MState::Locked { until, .. } = coupon.state else {
            unreachable!("an open order's coupon is locked");
        };
        if now >= until && now >= coupon.valid_until {
            return Out::Err("hold ran out");
        }
        coupon.state = MState::Used { order: o, at: now };
        self.orders.get_mut(&o).unwrap().settled = Settled::Paid;
        self.pay_keys.insert(key, o);
        Out::Fresh
    }

    fn release(&mut self, o: usize, now: DateTime<Utc>) {
        let order = self.orders.get_mut(&o).unwrap();
        order.settled = Settled::Released;
        let coupon = &mut self.coupons[order.coupon];
        coupon.state = if now >= coupon.valid_until {
            MState::Expired { at: now }
        } else {
            MState::Available
        };
        *self.uses.get_mut(&(coupon.t, coupon.u)).unwrap() -= 1;
    }

    fn cancel(&mut self, o: usize, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&ko) = self.cancel_keys.get(&key) {
            return if ko == o {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        let Some(order) = self.orders.get(&o).cloned() else {
            return Out::Err("not found");
        };
        match order.settled {
            Settled::Released => return Out::Replay,
            Settled::Paid => return Out::Err("order paid"),
            Settled::Open => {}
        }
        self.release(o, now);
        self.cancel_keys.insert(key, o);
        Out::Fresh
    }

    fn refund(&mut self, o: usize, buyer: bool, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&first) = self.refund_keys.get(&key) {
            // The same key for a refund of another kind is a reuse, never a replay.
            return if first == (o, buyer) {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        let Some(order) = self.orders.get(&o).cloned() else {
            return Out::Err("not found");
        };
        if order.refunded {
            return Out::Err("already refunded");
        }
        if order.settled != Settled::Paid {
            return Out::Err("order not paid");
        }
        let coupon = &mut self.coupons[order.coupon];
        let policy = TEMPLATES[coupon.t].refund;
        let returns = if buyer {
            policy.buyer_refund_returns
        } else {
            policy.merchant_refund_returns
        };
        if returns {
            coupon.state = if now >= coupon.valid_until {
                MState::Expired { at: now }
            } else {
                MState::Available
            };
            *self.uses.get_mut(&(coupon.t, coupon.u)).unwrap() -= 1;
        } else {
            coupon.state = MState::Voided { at: now };
        }
        self.orders.get_mut(&o).unwrap().refunded = true;
        self.refund_keys.insert(key, (o, buyer));
        Out::Fresh
    }

    fn void(&mut self, c: usize, key: u8, now: DateTime<Utc>) -> Out {
        if let Some(&kc) = self.void_keys.get(&key) {
            return if kc == c {
                Out::Replay
            } else {
                Out::Err("key reused")
            };
        }
        if self.coupons[c].state != MState::Available {
            return Out::Err("illegal");
        }
        self.coupons[c].state = MState::Voided { at: now };
        self.void_keys.insert(key, c);
        Out::Fresh
    }

    fn sweep(&mut self, now: DateTime<Utc>) -> Out {
        let mut expired = BTreeSet::new();
        let mut released = BTreeSet::new();
        for i in 0..self.coupons.len() {
            match self.coupons[i].state.clone() {
                MState::Available if self.coupons[i].valid_until <= now => {
                    self.coupons[i].state = MState::Expired { at: now };
                    expired.insert(self.coupons[i].id.clone());
                }
                MState::Locked { order, until } if until <= now => {
                    self.release(order, now);
                    released.insert(format!("o{order}"));
                }
                _ => {}
            }
        }
        Out::Swept { expired, released }
    }
}

// ----------------------------------------------------------------------------- the system

struct System {
    svc: Service<MemoryStore>,
    templates: Vec<TemplateId>,
    cart: Cart,
}

fn user(u: usize) -> UserId {
    UserId::new(format!("user-{u}")).unwrap()
}

fn key(prefix: &str, k: impl std::fmt::Display) -> IdempotencyKey {
    IdempotencyKey::new(format!("{prefix}-{k}")).unwrap()
}

fn order(o: usize) -> OrderId {
    OrderId::new(format!("o{o}")).unwrap()
}

impl System {
    fn new() -> System {
        let svc = Service::new(MemoryStore::new());
        let cny = Currency::CNY;
        let mut templates = Vec::new();
        for t in &TEMPLATES {
            let validity = match t.fixed_days {
                None => Validity::relative(Span::Days(2), None).unwrap(),
                Some(d) => Validity::fixed(t0(), t0() + Duration::days(d)).unwrap(),
            };
            let limits = Limits::try_from(LimitsSpec {
                total_stock: t.stock,
                per_user_claims: Some(t.per_user_claims),
                per_user_uses: t.per_user_uses,
                ..Default::default()
            })
            .unwrap();
            let spec = TemplateSpec::new(
                TemplateId::new(t.id).unwrap(),
                "10 off",
                cny,
                Benefit::instant(Money::from_minor(1000, cny)).unwrap(),
                validity,
            )
            .limits(limits)
            .refund(t.refund);
            let id = spec.id.clone();
            svc.create_template(spec.build().unwrap(), t0()).unwrap();
            svc.submit_template(&id, t0()).unwrap();
            svc.approve_template(&id, t0()).unwrap();
            svc.activate_template(&id, t0()).unwrap();
            templates.push(id);
        }
        let cart = Cart::new(
            cny,
            vec![CartLine::new(
                Sku::new("tea").unwrap(),
                Money::from_minor(10_000, cny),
                1,
            )],
            Money::zero(cny),
        )
        .unwrap();
        System {
            svc,
            templates,
            cart,
        }
    }

    fn store(&self) -> &MemoryStore {
        self.svc.repository()
    }

    /// Every coupon and counter, for comparing states before and after a retry.
    fn snapshot(&self) -> (Vec<(Coupon, u64)>, Vec<u64>) {
        let mut coupons = Vec::new();
        for u in 0..USERS {
            for c in self.store().wallet(&user(u)).unwrap() {
                coupons.push((c.value, c.version));
            }
        }
        let mut counters = Vec::new();
        for t in &self.templates {
            counters.push(
                self.store()
                    .counter(&CounterKey::Issued(t.clone()))
                    .unwrap(),
            );
            for u in 0..USERS {
                counters.push(
                    self.store()
                        .counter(&CounterKey::UserClaims(t.clone(), user(u)))
                        .unwrap(),
                );
                counters.push(
                    self.store()
                        .counter(&CounterKey::UserUses(t.clone(), user(u)))
                        .unwrap(),
                );
            }
        }
        (coupons, counters)
    }
}

fn to_mstate(s: &CouponState) -> MState {
    let o = |id: &OrderId| id.as_str()[1..].parse::<usize>().unwrap();
    match s {
        CouponState::Available => MState::Available,
        CouponState::Locked { order, until } => MState::Locked {
            order: o(order),
            until: *until,
        },
        CouponState::Used { order, at } => MState::Used {
            order: o(order),
            at: *at,
        },
        CouponState::Expired { at } => MState::Expired { at: *at },
        CouponState::Voided { at } => MState::Voided { at: *at },
        other => panic!("unknown state {other:?}"),
    }
}

/// Runs one action on both sides; returns both outcomes.
fn step(
    model: &mut Model,
    sys: &System,
    a: &Action,
    now: DateTime<Utc>,
    refunds: &mut Vec<(String, Vec<CouponId>)>,
) -> (Out, Out) {
    let svc = &sys.svc;
    match *a {
        Action::Claim { t, u, key: k } => {
            let req = ClaimRequest::new(
                sys.templates[t].clone(),
                user(u),
                Channel::new("app").unwrap(),
                ClaimMode::Click,
                key("claim", k),
            );
            let r = svc.claim(&req, now);
            if let (Ok(c), Some(&(_, _, mi))) = (&r, model.claim_keys.get(&k)) {
                assert_eq!(
                    c.coupon.id.as_str(),
                    model.coupons[mi].id,
                    "a replayed claim returned another coupon"
                );
            }
            let real = out(&r, |c| c.replayed);
            let expected = model.claim(t, u, k, now);
            if let (Ok(c), Out::Fresh) = (&r, &expected) {
                assert_eq!(c.coupon.id.as_str(), model.coupons.last().unwrap().id);
            }
            (expected, real)
        }
        Action::Lock { o, u, pick, key: k } => {
            let wallet = model.wallet(u);
            if wallet.is_empty() {
                return (Out::Skipped, Out::Skipped);
            }
            let c = wallet[pick % wallet.len()];
            let id = CouponId::new(&model.coupons[c].id).unwrap();
            let sel = [OfferId::Coupon(id)];
            let (ord, b, lk) = (
                order(o),
                Buyer::new(user(u), Channel::new("app").unwrap()),
                key(&format!("lock-o{o}"), k),
            );
            let r = svc.quote_and_lock(
                &LockRequest::new(&ord, &sys.cart, &b, &lk).select(&sel),
                now,
            );
            let real = out(&r, |l| l.replayed);
            (model.lock(o, u, c, k, now), real)
        }
        Action::Pay { o, key: k } => {
            let r = svc.pay(&order(o), &Actor::System, &key("pay", k), now);
            (model.pay(o, k, now), out(&r, |s| s.replayed))
        }
        Action::Cancel { o, key: k } => {
            let r = svc.cancel(&order(o), &Actor::System, &key("cancel", k), now);
            (model.cancel(o, k, now), out(&r, |s| s.replayed))
        }
        Action::Refund { o, buyer, key: k } => {
            let kind = if buyer {
                RefundKind::Buyer
            } else {
                RefundKind::Merchant
            };
            let r = svc.refund(
                &order(o),
                &Actor::Merchant,
                &RefundRequest::whole(kind),
                &key("refund", k),
                now,
            );
            if let Ok(rf) = &r {
                if !rf.replayed {
                    refunds.push((rf.order.to_string(), rf.returned.clone()));
                }
            }
            (model.refund(o, buyer, k, now), out(&r, |s| s.replayed))
        }
        Action::Void { pick, key: k } => {
            if model.coupons.is_empty() {
                return (Out::Skipped, Out::Skipped);
            }
            let c = pick % model.coupons.len();
            let id = CouponId::new(&model.coupons[c].id).unwrap();
            let r = svc.void(&id, &Actor::Merchant, &key("void", k), now);
            let expected = model.void(c, k, now);
            // Void returns the coupon, not a replay flag: a repeat is Ok either way.
            let real = match (&r, &expected) {
                (Ok(_), Out::Replay) => Out::Replay,
                _ => out(&r, |_| false),
            };
            (expected, real)
        }
        Action::Sweep => {
            let s = svc.sweep(now, 1_000).unwrap();
            let real = Out::Swept {
                expired: s.expired.iter().map(ToString::to_string).collect(),
                released: s.released.iter().map(ToString::to_string).collect(),
            };
            (model.sweep(now), real)
        }
        Action::Advance(_) | Action::RetryLast => (Out::Skipped, Out::Skipped),
    }
}

fn check_states(model: &Model, sys: &System) {
    let store = sys.store();
    let mut total = 0;
    for u in 0..USERS {
        total += store.wallet(&user(u)).unwrap().len();
    }
    assert_eq!(total, model.coupons.len(), "number of coupons");
    for c in &model.coupons {
        let real = store
            .coupon(&CouponId::new(&c.id).unwrap())
            .unwrap()
            .expect("coupon stored");
        assert_eq!(to_mstate(&real.value.state), c.state, "state of {}", c.id);
        assert_eq!(
            real.value.valid_until, c.valid_until,
            "validity of {}",
            c.id
        );
    }
    for (t, id) in sys.templates.iter().enumerate() {
        assert_eq!(
            store.counter(&CounterKey::Issued(id.clone())).unwrap(),
            model.issued[t],
            "issued {id}"
        );
        if let Some(stock) = TEMPLATES[t].stock {
            assert!(model.issued[t] <= stock, "stock of {id} exceeded");
        }
        for u in 0..USERS {
            let claims = model.claims.get(&(t, u)).copied().unwrap_or(0);
            let uses = model.uses.get(&(t, u)).copied().unwrap_or(0);
            assert_eq!(
                store
                    .counter(&CounterKey::UserClaims(id.clone(), user(u)))
                    .unwrap(),
                claims,
                "claims {id} user-{u}"
            );
            assert_eq!(
                store
                    .counter(&CounterKey::UserUses(id.clone(), user(u)))
                    .unwrap(),
                uses,
                "uses {id} user-{u}"
            );
        }
    }
}

fn run(actions: &[Action]) {
    let sys = System::new();
    let mut model = Model::default();
    let mut now = t0();
    let mut last: Option<Action> = None;
    let mut refunds: Vec<(String, Vec<CouponId>)> = Vec::new();
    for a in actions {
        match a {
            Action::Advance(minutes) => {
                now += Duration::minutes(*minutes);
                continue;
            }
            Action::RetryLast => {
                let Some(prev) = last.clone() else { continue };
                let before = sys.snapshot();
                let (expected, real) = step(&mut model, &sys, &prev, now, &mut refunds);
                assert_eq!(real, expected, "retry of {prev:?}");
                if !matches!(prev, Action::Sweep) {
                    assert_eq!(
                        sys.snapshot(),
                        before,
                        "retrying {prev:?} changed the store"
                    );
                }
                check_states(&model, &sys);
                continue;
            }
            _ => {}
        }
        let (expected, real) = step(&mut model, &sys, a, now, &mut refunds);
        assert_eq!(
            real,
            expected,
            "{a:?} at +{} min",
            (now - t0()).num_minutes()
        );
        check_states(&model, &sys);
        last = Some(a.clone());
    }
    // A refund never returns a coupon twice.
    let mut returned = BTreeSet::new();
    for (o, coupons) in &refunds {
        for c in coupons {
            assert!(
                returned.insert((o.clone(), c.clone())),
                "{c} returned twice by {o}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn service_agrees_with_reference_model(actions in prop::collection::vec(action(), 1..80)) {
        run(&actions);
    }

    #[test]
    fn refund_never_returns_a_coupon_twice(
        kinds in prop::collection::vec((any::<bool>(), 0..3u8), 1..8),
    ) {
        let sys = System::new();
        let now = t0();
        let t = &sys.templates[0];
        let c = sys.svc.claim(&ClaimRequest::new(t.clone(), user(0), Channel::new("app").unwrap(), ClaimMode::Click, key("claim", 0)), now).unwrap().coupon;
        let b = Buyer::new(user(0), Channel::new("app").unwrap());
        let (o, lk) = (order(0), key("lock", 0));
        sys.svc.quote_and_lock(&LockRequest::new(&o, &sys.cart, &b, &lk), now).unwrap();
        sys.svc.pay(&o, &Actor::System, &key("pay", 0), now).unwrap();
        let mut fresh_returns = 0;
        for (buyer, k) in kinds {
            let kind = if buyer { RefundKind::Buyer } else { RefundKind::Merchant };
            if let Ok(r) = sys.svc.refund(&o, &Actor::Merchant, &RefundRequest::whole(kind), &key("refund", k), now) {
                if !r.replayed {
                    fresh_returns += r.returned.len();
                }
            }
        }
        prop_assert!(fresh_returns <= 1);
        let uses = sys.store().counter(&CounterKey::UserUses(t.clone(), user(0))).unwrap();
        let state = sys.store().coupon(&c.id).unwrap().unwrap().value.state;
        prop_assert_eq!(uses, u64::from(!matches!(state, CouponState::Available)));
    }

    #[test]
    fn stock_is_never_exceeded(
        claims in prop::collection::vec((0..6usize, 0..12u8), 1..40),
    ) {
        let sys = System::new();
        let t = &sys.templates[0];
        for (u, k) in claims {
            let u = u % USERS;
            let _ = sys.svc.claim(&ClaimRequest::new(t.clone(), user(u), Channel::new("app").unwrap(), ClaimMode::Auto, key("claim", k)), t0());
            let issued = sys.store().counter(&CounterKey::Issued(t.clone())).unwrap();
            prop_assert!(issued <= 4);
        }
        let mut total = 0;
        for u in 0..USERS {
            let wallet = sys.store().wallet(&user(u)).unwrap();
            prop_assert!(wallet.len() <= 2);
            total += wallet.len();
        }
        prop_assert_eq!(total as u64, sys.store().counter(&CounterKey::Issued(t.clone())).unwrap());
    }
}
