//! Conformance checks for one-time codes and code-attempt guards.

use std::sync::Mutex;

use super::{Failure, THREADS, active, fail, ok, service_error, some, t0, template, uid};
use crate::events::{EventKind, Logged, Refusal, Sequence};
use crate::guard::presets::{self, By};
use crate::guard::{Context, Window};
use crate::id::{CampaignId, Channel, CouponId, DeviceId, OrderId, TemplateId, UserId};
use crate::lifecycle::{Campaign, Coupon, LifecycleError, TemplateRecord};
use crate::repository::{Batch, Commit, CounterKey, Receipt, ReceiptKey, Repository, Versioned};
use crate::rule::{LimitsSpec, PromoCode};
use crate::service::codes::{RedeemRequest, Redeemed};
use crate::service::{Service, ServiceConfig, ServiceError};

use chrono::{DateTime, Utc};
use std::sync::Arc;

fn code(check: &'static str, s: &str) -> Result<PromoCode, Failure> {
    ok(check, "promo code", PromoCode::new(s))
}

fn app(check: &'static str) -> Result<Channel, Failure> {
    ok(check, "channel", Channel::new("app"))
}

/// Sixteen one-time codes, each redeemed by eight accounts racing on eight threads (every
/// thread tries every code, starting at a different one): every code has exactly one owner,
/// whose wallet holds its coupon; every other account gets [`LifecycleError::UnknownCode`];
/// the owner redeeming again gets the same coupon back; the template's issued counter is 16.
///
/// # Errors
/// A [`Failure`] naming what went wrong.
pub fn one_time_codes_have_one_owner<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "one_time_codes_have_one_owner";
    const CODES: usize = 16;
    let now = t0(C)?;
    let service = Service::new(store);
    let t = active(C, &service, template(C, "gift", LimitsSpec::default())?)?;
    let codes: Vec<PromoCode> = (0..CODES)
        .map(|i| code(C, &format!("GIFT-{i:04}-X")))
        .collect::<Result<_, _>>()?;
    let reg = ok(
        C,
        "register codes",
        service.register_codes(&t, codes.clone(), now),
    )?;
    ensure!(C, reg.added == CODES, "registered {} of {CODES}", reg.added);
    let again = ok(
        C,
        "register again",
        service.register_codes(&t, codes.clone(), now),
    )?;
    ensure!(
        C,
        again.added == 0 && again.already == CODES,
        "registering again: {again:?}"
    );
    type Won = Vec<(usize, CouponId)>;
    let results: Vec<Result<Won, Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let (service, codes) = (&service, &codes);
                s.spawn(move || -> Result<Won, Failure> {
                    let user = uid(C, &format!("racer-{th}"))?;
                    let mut won = Vec::new();
                    for j in 0..CODES {
                        let i = (th * 5 + j) % CODES;
                        let Some(c) = codes.get(i) else { continue };
                        let req = RedeemRequest::new(c.clone(), user.clone(), app(C)?);
                        match service.redeem_code(&req, now) {
                            Ok(Redeemed::Coupon(claimed)) => {
                                if claimed.coupon.owner != user || claimed.replayed {
                                    return Err(fail(C, format!("{c}: {claimed:?}")));
                                }
                                won.push((i, claimed.coupon.id));
                            }
                            Err(ServiceError::Lifecycle(LifecycleError::UnknownCode { code }))
                                if &code == c => {}
                            Ok(other) => return Err(fail(C, format!("{c}: {other:?}"))),
                            Err(e) => {
                                return Err(fail(C, format!("{c}: {}", service_error(&e))));
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
    let mut owners: Vec<Vec<(usize, CouponId)>> = vec![Vec::new(); CODES];
    for (th, r) in results.into_iter().enumerate() {
        for (i, coupon) in r? {
            if let Some(o) = owners.get_mut(i) {
                o.push((th, coupon));
            }
        }
    }
    for (i, o) in owners.iter().enumerate() {
        ensure!(C, o.len() == 1, "code {i} has {} owners", o.len());
        let Some((th, coupon)) = o.first() else {
            continue;
        };
        let user = uid(C, &format!("racer-{th}"))?;
        let wallet = ok(C, "wallet", service.repository().wallet(&user))?;
        ensure!(
            C,
            wallet.iter().any(|c| &c.value.id == coupon),
            "{coupon} is not in its owner's wallet"
        );
        let c = some(C, "code", codes.get(i))?;
        let again = ok(
            C,
            "redeem again",
            service.redeem_code(&RedeemRequest::new(c.clone(), user, app(C)?), now),
        )?;
        ensure!(
            C,
            matches!(&again, Redeemed::Coupon(cl) if cl.replayed && &cl.coupon.id == coupon),
            "the owner redeeming {c} again got {again:?}"
        );
    }
    let issued = ok(
        C,
        "counter",
        service.repository().counter(&CounterKey::Issued(t.clone())),
    )?;
    ensure!(C, issued == CODES as u64, "issued counter {issued}");
    Ok(())
}

/// Eight threads on one device redeem unknown codes under a guard of 5 failed attempts per
/// device per hour: exactly 5 attempts are looked up (and fail), every other is refused with
/// [`LifecycleError::GuardHeld`] and a `refused` event naming the guard, and the guard's bucket
/// reads 5. On another device, an attempt that redeems a real code is given back.
///
/// # Errors
/// A [`Failure`] naming what went wrong.
pub fn code_attempts_are_limited<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "code_attempts_are_limited";
    const LIMIT: u64 = 5;
    const TRIES: usize = 6;
    let now = t0(C)?;
    let guard = ok(
        C,
        "guard",
        presets::code_attempts(By::Device, LIMIT, Window::Hour),
    )?;
    let name = guard.name().clone();
    let config = ServiceConfig {
        guards: vec![guard],
        ..Default::default()
    };
    let service = ok(C, "service", Service::with_config(store, config))?;
    let t = active(C, &service, template(C, "card", LimitsSpec::default())?)?;
    let results: Vec<Result<(u64, u64), Failure>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|th| {
                let (service, name) = (&service, &name);
                s.spawn(move || -> Result<(u64, u64), Failure> {
                    let (mut looked_up, mut held) = (0, 0);
                    for i in 0..TRIES {
                        let ctx = Context::new().device(ok(C, "device", DeviceId::new("farm"))?);
                        let req = RedeemRequest::new(
                            code(C, &format!("GUESS-{th}-{i}"))?,
                            uid(C, &format!("guesser-{th}"))?,
                            app(C)?,
                        )
                        .with_context(ctx);
                        match service.redeem_code(&req, now) {
                            Err(ServiceError::Lifecycle(LifecycleError::UnknownCode {
                                ..
                            })) => {
                                looked_up += 1;
                            }
                            Err(ServiceError::Lifecycle(LifecycleError::GuardHeld {
                                guard,
                                ..
                            })) if &guard == name => held += 1,
                            Ok(r) => return Err(fail(C, format!("a guess redeemed: {r:?}"))),
                            Err(e) => return Err(fail(C, service_error(&e))),
                        }
                    }
                    Ok((looked_up, held))
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
    let (mut looked_up, mut held) = (0, 0);
    for r in results {
        let (l, h) = r?;
        looked_up += l;
        held += h;
    }
    ensure!(
        C,
        looked_up == LIMIT,
        "{looked_up} guesses from one device were looked up, limit {LIMIT}"
    );
    ensure!(
        C,
        held == (THREADS * TRIES) as u64 - LIMIT,
        "{held} refusals"
    );
    let (bucket, _) = Window::Hour.bucket(now);
    let counted = ok(
        C,
        "counter",
        service.repository().counter(&CounterKey::Guard {
            guard: name.clone(),
            subject: "device=farm".into(),
            bucket,
        }),
    )?;
    ensure!(C, counted == LIMIT, "the guard's bucket reads {counted}");
    let events = ok(
        C,
        "events",
        service.repository().events(0 as Sequence, usize::MAX),
    )?;
    let refused = events
        .iter()
        .filter(|e: &&Logged| {
            matches!(&e.event.kind, EventKind::Refused {
                refusal: Refusal::Guard { guard }, ..
            } if guard == name.as_str())
        })
        .count() as u64;
    ensure!(
        C,
        refused == held,
        "{refused} refused events for {held} refusals"
    );
    // A real code redeemed on a fresh device: its attempt is given back.
    let real = code(C, "REAL-0001-Z")?;
    ok(
        C,
        "register",
        service.register_codes(&t, [real.clone()], now),
    )?;
    let ctx = Context::new().device(ok(C, "device", DeviceId::new("honest"))?);
    let req = RedeemRequest::new(real, uid(C, "honest")?, app(C)?).with_context(ctx);
    ok(C, "redeem", service.redeem_code(&req, now))?;
    ok(C, "redeem again", service.redeem_code(&req, now))?;
    let honest = ok(
        C,
        "counter",
        service.repository().counter(&CounterKey::Guard {
            guard: name,
            subject: "device=honest".into(),
            bucket,
        }),
    )?;
    ensure!(
        C,
        honest == 0,
        "redeeming (and replaying) a real code left {honest} attempts counted"
    );
    Ok(())
}

/// A store that records which reads it served, by method and key kind (never the key).
struct Recording<R> {
    inner: R,
    log: Mutex<Vec<String>>,
}

impl<R> Recording<R> {
    fn note(&self, what: String) {
        if let Ok(mut l) = self.log.lock() {
            l.push(what);
        }
    }

    fn take(&self) -> Vec<String> {
        self.log
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

impl<R: Repository> Repository for Recording<R> {
    type Error = R::Error;
    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, Self::Error> {
        self.note("template".into());
        self.inner.template(id)
    }
    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, Self::Error> {
        self.note("templates".into());
        self.inner.templates()
    }
    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, Self::Error> {
        self.note("campaign".into());
        self.inner.campaign(id)
    }
    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, Self::Error> {
        self.note("coupon".into());
        self.inner.coupon(id)
    }
    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.note("wallet".into());
        self.inner.wallet(user)
    }
    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.note("order_coupons".into());
        self.inner.order_coupons(order)
    }
    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
        self.note("due".into());
        self.inner.due(now, limit)
    }
    fn order(
        &self,
        id: &OrderId,
    ) -> Result<Option<Versioned<crate::lifecycle::Order>>, Self::Error> {
        self.note("order".into());
        self.inner.order(id)
    }
    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, Self::Error> {
        self.note("held".into());
        self.inner.held(now, limit)
    }
    fn counter(&self, key: &CounterKey) -> Result<u64, Self::Error> {
        self.note("counter".into());
        self.inner.counter(key)
    }
    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, Self::Error> {
        let kind = match key {
            ReceiptKey::Operation(op, _) => format!("receipt {op}"),
            ReceiptKey::Code(_) => "receipt code".to_string(),
        };
        self.note(kind);
        self.inner.receipt(key)
    }
    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, Self::Error> {
        self.note("events".into());
        self.inner.events(after, limit)
    }
    fn commit(&self, batch: &Batch) -> Result<Commit, Self::Error> {
        self.note(format!("commit of {} ops", batch.ops.len()));
        self.inner.commit(batch)
    }
}

/// A code that does not exist and a code another account redeemed answer alike: the same
/// [`LifecycleError::UnknownCode`] after the same store calls, in the same order.
///
/// # Errors
/// A [`Failure`] naming what went wrong.
pub fn unknown_and_taken_codes_look_alike<R: Repository>(store: R) -> Result<(), Failure> {
    const C: &str = "unknown_and_taken_codes_look_alike";
    let now = t0(C)?;
    let guard = ok(
        C,
        "guard",
        presets::code_attempts(By::Ip, 100, Window::Hour),
    )?;
    let config = ServiceConfig {
        guards: vec![guard],
        ..Default::default()
    };
    let service = ok(
        C,
        "service",
        Service::with_config(
            Recording {
                inner: store,
                log: Mutex::new(Vec::new()),
            },
            config,
        ),
    )?;
    let t = active(C, &service, template(C, "card", LimitsSpec::default())?)?;
    let taken = code(C, "TAKEN-0001-A")?;
    ok(
        C,
        "register",
        service.register_codes(&t, [taken.clone()], now),
    )?;
    let ctx = Context::new().ip(ok(C, "ip", "198.51.100.7".parse())?);
    let first =
        RedeemRequest::new(taken.clone(), uid(C, "first")?, app(C)?).with_context(ctx.clone());
    ok(C, "redeem", service.redeem_code(&first, now))?;
    let mut seen = Vec::new();
    for c in [taken, code(C, "NEVER-0001-B")?] {
        let req =
            RedeemRequest::new(c.clone(), uid(C, "second")?, app(C)?).with_context(ctx.clone());
        let _ = service.repository().take();
        let err = match service.redeem_code(&req, now) {
            Err(ServiceError::Lifecycle(e @ LifecycleError::UnknownCode { .. })) => e,
            other => return Err(fail(C, format!("{c}: {other:?}"))),
        };
        let expected = LifecycleError::UnknownCode { code: c.clone() };
        ensure!(C, err == expected, "{c}: {err}");
        seen.push(service.repository().take());
    }
    let (a, b) = (
        some(C, "calls", seen.first())?,
        some(C, "calls", seen.get(1))?,
    );
    ensure!(
        C,
        a == b,
        "someone else's code cost {a:?}, an unknown one {b:?}"
    );
    Ok(())
}
