//! Redeeming typed codes: one-time codes without an owner, and shared promo codes.
//!
//! Three kinds of code reach a buyer, all through the [`Service`]:
//!
//! - **Shared promo codes** (`SUMMER-10`): one code of a template with
//!   [`Distribution::PromoCode`], typed by many buyers,
//!   with total and per-user limits, counted when an order locks
//!   ([`LockRequest::codes`](super::LockRequest::codes)).
//! - **One-time codes without an owner**, printed on a card or sent in a batch: a batch made by
//!   [`CodeFormat::generate`](crate::codes::CodeFormat::generate) is registered for a private
//!   template ([`Service::register_codes`]); the first account to redeem one
//!   ([`Service::redeem_code`]) owns it — a coupon of the template in its wallet — exactly once,
//!   however many accounts race for it. The coupon's claim key is derived from the code, so
//!   two redemptions of one code write the same receipt and only one batch can commit.
//! - **Private coupons** bound to one account from the start ([`Service::claim`]).
//!
//! A failed redemption reveals nothing about codes that belong to someone else: a code that
//! does not exist and a code another account redeemed give the same
//! [`LifecycleError::UnknownCode`] after the same two store reads.
//!
//! Failed attempts are rate-limited by [`Action::CodeAttempt`] guards
//! ([`presets::code_attempts`](crate::guard::presets::code_attempts)): each attempt is counted
//! before the code is looked up, and given back when it redeems; once a device's or IP's
//! window holds the limit, attempts are refused with [`LifecycleError::GuardHeld`] and a
//! `refused` event, without any lookup.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coupons::id::*;
//! use coupons::lifecycle::LifecycleError;
//! use coupons::money::{Currency, Money};
//! use coupons::repository::MemoryStore;
//! use coupons::rule::{Benefit, PromoCode, Span, TemplateSpec, Validity};
//! use coupons::service::codes::{RedeemRequest, Redeemed};
//! use coupons::service::{Service, ServiceError};
//!
//! let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
//! let service = Service::new(MemoryStore::new());
//! let t = TemplateId::new("gift-card-20")?;
//! service.create_template(
//!     TemplateSpec::new(t.clone(), "20 off", Currency::CNY,
//!         Benefit::instant(Money::from_minor(2000, Currency::CNY))?,
//!         Validity::relative(Span::Days(30), None)?).build()?,
//!     now,
//! )?;
//! for step in [Service::submit_template, Service::approve_template, Service::activate_template] {
//!     step(&service, &t, now)?;
//! }
//! let code = PromoCode::new("7K2Q-9M4X-2ABC")?;
//! service.register_codes(&t, [code.clone()], now)?;
//!
//! let app = Channel::new("app")?;
//! let alice = RedeemRequest::new(code.clone(), UserId::new("alice")?, app.clone());
//! let Redeemed::Coupon(claimed) = service.redeem_code(&alice, now)? else { unreachable!() };
//! assert_eq!(claimed.coupon.owner.as_str(), "alice");
//! // Bob gets the same answer as for a code that never existed.
//! let bob = RedeemRequest::new(code, UserId::new("bob")?, app);
//! assert!(matches!(
//!     service.redeem_code(&bob, now),
//!     Err(ServiceError::Lifecycle(LifecycleError::UnknownCode { .. }))
//! ));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use chrono::{DateTime, Utc};

use super::{Claimed, OP_CLAIM, Res, Service, ServiceError, coupon_id, emit, op_key};
use crate::attributes::Attributes;
use crate::events::{CouponFacts, EventKind, Refusal};
use crate::guard::{self, Action, Asking, Context, Counted};
use crate::id::{Channel, IdempotencyKey, TemplateId, UserId};
use crate::lifecycle::{ClaimMode, ClaimRequest, Coupon, LifecycleError};
use crate::repository::{Batch, Commit, CounterKey, Expect, Op, Receipt, ReceiptKey, Repository};
use crate::rule::{Distribution, PromoCode};
use crate::time;

/// The receipt operation under which a redeemed one-time code records its owner.
const OP_CODE_REDEEM: &str = "code-redeem";

/// One-time codes registered per batch written to the store.
const REGISTER_CHUNK: usize = 1_000;

/// The template id that `refused` events carry when a code redemption was refused before the
/// code was looked up (an attempt guard held): `code-entry`.
pub const CODE_ENTRY: &str = "code-entry";

/// A request to redeem a typed code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RedeemRequest {
    /// The code, in canonical form (read what the buyer typed with
    /// [`CodeFormat::parse`](crate::codes::CodeFormat::parse) first).
    pub code: PromoCode,
    /// The account.
    pub user: UserId,
    /// The channel the coupon is issued through.
    pub channel: Channel,
    /// Attributes the coupon carries.
    #[cfg_attr(feature = "serde", serde(default))]
    pub attributes: Attributes,
    /// Who is asking beyond the account, for guards.
    #[cfg_attr(feature = "serde", serde(default))]
    pub context: Context,
}

impl RedeemRequest {
    /// A request without context or attributes.
    pub fn new(code: PromoCode, user: UserId, channel: Channel) -> RedeemRequest {
        RedeemRequest {
            code,
            user,
            channel,
            attributes: Attributes::new(),
            context: Context::new(),
        }
    }

    /// Who is asking (device, IP, payment account), for guards.
    pub fn with_context(mut self, context: Context) -> RedeemRequest {
        self.context = context;
        self
    }

    /// Attributes the coupon carries.
    pub fn with_attributes(mut self, attributes: Attributes) -> RedeemRequest {
        self.attributes = attributes;
        self
    }
}

/// What a redeemed code gave.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
pub enum Redeemed {
    /// A one-time code: its coupon, now in the account's wallet (`replayed` when the same
    /// account redeemed it before).
    Coupon(Claimed),
    /// A shared promo code: nothing is stored for the account; apply the code at checkout
    /// ([`LockRequest::codes`](super::LockRequest::codes)), where its limits are counted.
    PromoCode {
        /// The code.
        code: PromoCode,
        /// Its template.
        template: TemplateId,
    },
}

/// What [`Service::register_codes`] stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Registered {
    /// Codes newly registered.
    pub added: usize,
    /// Codes already registered for the same template (a repeated registration).
    pub already: usize,
}

/// The claim key of a one-time code's coupon: `code:<code>`, the same for every account.
fn code_key(code: &PromoCode) -> IdempotencyKey {
    // A promo code is 3 to 32 ASCII letters, digits, `-` and `_`: a valid key.
    IdempotencyKey::trusted(&format!("code:{code}"))
}

impl<R: Repository> Service<R> {
    /// Registers one-time codes for a private template: each code, once redeemed, becomes a
    /// coupon of `template` in the wallet of the first account that redeems it. Codes share
    /// the promo codes' namespace: a code is registered once, for one template. Registering
    /// the same codes again for the same template changes nothing (they are counted in
    /// [`Registered::already`]). Codes are written in batches of a thousand; a batch is
    /// all or nothing.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for the template; [`LifecycleError::NotClaimable`] for a
    /// template whose coupons do not go into wallets; [`LifecycleError::CodeTaken`] when a
    /// code belongs to another template or is a shared promo code (the codes before its
    /// batch are registered); [`ServiceError::Contention`]; the store's failure.
    pub fn register_codes(
        &self,
        template: &TemplateId,
        codes: impl IntoIterator<Item = PromoCode>,
        now: DateTime<Utc>,
    ) -> Res<Registered, R> {
        let _now = time::check("now", now)?;
        let record = self.template_record(template)?;
        let distribution = match record.value.template.distribution() {
            Distribution::Private => None,
            Distribution::PromoCode { .. } => Some("promo_code"),
            Distribution::Automatic => Some("automatic"),
        };
        if let Some(distribution) = distribution {
            return Err(LifecycleError::NotClaimable {
                template: template.clone(),
                distribution,
            }
            .into());
        }
        let mut out = Registered::default();
        let mut chunk = Vec::with_capacity(REGISTER_CHUNK);
        let mut codes = codes.into_iter().peekable();
        while codes.peek().is_some() {
            chunk.clear();
            chunk.extend(codes.by_ref().take(REGISTER_CHUNK));
            chunk.sort();
            chunk.dedup();
            self.register_chunk(template, &mut chunk, &mut out)?;
        }
        Ok(out)
    }

    fn register_chunk(
        &self,
        template: &TemplateId,
        chunk: &mut Vec<PromoCode>,
        out: &mut Registered,
    ) -> Res<(), R> {
        for _ in 0..self.attempts() {
            if chunk.is_empty() {
                return Ok(());
            }
            let batch = Batch {
                ops: chunk
                    .iter()
                    .map(|c| Op::InsertReceipt {
                        key: ReceiptKey::Code(c.clone()),
                        receipt: Receipt::OneTimeCode {
                            template: template.clone(),
                        },
                    })
                    .collect(),
            };
            match self.commit(&batch)? {
                Commit::Applied => {
                    out.added += chunk.len();
                    return Ok(());
                }
                Commit::Conflict { .. } => {
                    // Some codes are taken: keep those free, count those already ours.
                    let mut free = Vec::with_capacity(chunk.len());
                    for code in chunk.drain(..) {
                        match self.receipt(&ReceiptKey::Code(code.clone()))? {
                            None => free.push(code),
                            Some(Receipt::OneTimeCode { template: t }) if &t == template => {
                                out.already += 1;
                            }
                            Some(Receipt::OneTimeCode { template: owner })
                            | Some(Receipt::Code { template: owner }) => {
                                return Err(LifecycleError::CodeTaken {
                                    code,
                                    template: owner,
                                }
                                .into());
                            }
                            Some(_) => return self.contention("register codes"),
                        }
                    }
                    *chunk = free;
                }
            }
        }
        self.contention("register codes")
    }

    /// Redeems a typed code for `request.user`.
    ///
    /// First the [`Action::CodeAttempt`] guards: each counts this attempt (all or nothing) and
    /// refuses it when its window already holds the limit — before the code is looked up. An
    /// attempt that redeems, replays or finds a shared promo code is given back; one that
    /// fails stays counted.
    ///
    /// Then the code: a registered one-time code nobody redeemed yet becomes a coupon of its
    /// template in the account's wallet, through the same checks, counters and claim guards
    /// as [`Service::claim`] (stock, per-user claims, [`Action::Claim`] guards), exactly
    /// once under concurrency; the same account redeeming it again gets the same coupon
    /// (`replayed`). A shared promo code is returned as [`Redeemed::PromoCode`], for the
    /// checkout.
    ///
    /// # Errors
    /// [`LifecycleError::UnknownCode`] when the code does not exist **or** belongs to another
    /// account (the same error after the same reads); [`LifecycleError::GuardHeld`] when an
    /// attempt or claim guard holds (and a `refused` event, carrying the template
    /// [`CODE_ENTRY`] for attempt guards); the claim's errors
    /// ([`LifecycleError::NotIssuing`], [`LifecycleError::OutOfStock`],
    /// [`LifecycleError::ClaimLimitReached`]…); [`ServiceError::Guard`] for a guard that
    /// requires context the request lacks; [`ServiceError::Contention`]; the store's failure.
    pub fn redeem_code(&self, request: &RedeemRequest, now: DateTime<Utc>) -> Res<Redeemed, R> {
        let now = time::check("now", now)?;
        let asking = Asking {
            user: &request.user,
            channel: &request.channel,
            templates: &[],
            context: &request.context,
        };
        let attempts = guard::counts(&self.config.guards, Action::CodeAttempt, &asking, now)?;
        self.count_attempt(request, &attempts, now)?;
        let outcome = self.redeem_counted(request, &attempts, now);
        // The attempt stays counted only when the code was not there to redeem.
        let failed = matches!(
            outcome,
            Err(ServiceError::Lifecycle(LifecycleError::UnknownCode { .. }))
        );
        let settled_in_batch = matches!(
            outcome,
            Ok(Redeemed::Coupon(Claimed {
                replayed: false,
                ..
            }))
        );
        if !failed && !settled_in_batch {
            self.give_back(&attempts);
        }
        outcome
    }

    /// Counts one attempt against every attempt guard, or refuses it.
    fn count_attempt(
        &self,
        request: &RedeemRequest,
        attempts: &[Counted],
        now: DateTime<Utc>,
    ) -> Res<(), R> {
        if attempts.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            ops: attempts.iter().map(|g| g.op.clone()).collect(),
        };
        match self.commit(&batch)? {
            Commit::Applied => Ok(()),
            Commit::Conflict { index } => {
                let Some(g) = attempts.get(index) else {
                    return self.contention("redeem code");
                };
                let claim = ClaimRequest::new(
                    TemplateId::trusted(CODE_ENTRY),
                    request.user.clone(),
                    request.channel.clone(),
                    ClaimMode::Click,
                    code_key(&request.code),
                );
                self.refused(
                    &claim,
                    Refusal::Guard {
                        guard: g.guard.to_string(),
                    },
                    now,
                );
                Err(LifecycleError::GuardHeld {
                    guard: g.guard.clone(),
                    limit: g.limit,
                    window: g.window,
                }
                .into())
            }
        }
    }

    /// The ops that give an attempt back: the same buckets, minus one.
    fn give_back_ops(attempts: &[Counted]) -> impl Iterator<Item = Op> + '_ {
        attempts.iter().filter_map(|g| match &g.op {
            Op::CountWindow {
                guard,
                subject,
                bucket,
                span,
                limit,
                ..
            } => Some(Op::CountWindow {
                guard: guard.clone(),
                subject: subject.clone(),
                bucket: *bucket,
                span: *span,
                delta: -1,
                limit: *limit,
            }),
            _ => None,
        })
    }

    /// Gives an attempt back on its own; a failure only leaves it counted.
    fn give_back(&self, attempts: &[Counted]) {
        if attempts.is_empty() {
            return;
        }
        let batch = Batch {
            ops: Self::give_back_ops(attempts).collect(),
        };
        let _ignored = self.repo.commit(&batch);
    }

    /// The reads of a lookup: the code's redemption, then the code itself — both, always, so
    /// an unknown code and another account's code cost the same reads.
    fn look_up(&self, code: &PromoCode) -> Res<(Option<Receipt>, Option<Receipt>), R> {
        let redeemed = self.receipt(&op_key(OP_CODE_REDEEM, &code_key(code)))?;
        let registered = self.receipt(&ReceiptKey::Code(code.clone()))?;
        Ok((redeemed, registered))
    }

    /// The answer to a code already redeemed: the owner's coupon, or unknown to anyone else.
    fn redeemed_by(
        &self,
        request: &RedeemRequest,
        redeemed: Option<Receipt>,
    ) -> Res<Option<Redeemed>, R> {
        match redeemed {
            None => Ok(None),
            Some(Receipt::CodeRedeemed { user, coupon, .. }) if user == request.user => {
                let coupon = self.coupon_record(&coupon)?.value;
                Ok(Some(Redeemed::Coupon(Claimed {
                    coupon,
                    replayed: true,
                })))
            }
            Some(_) => Err(unknown(&request.code)),
        }
    }

    fn redeem_counted(
        &self,
        request: &RedeemRequest,
        attempts: &[Counted],
        now: DateTime<Utc>,
    ) -> Res<Redeemed, R> {
        let key = code_key(&request.code);
        let mut salt = 0u32;
        for _ in 0..self.attempts() {
            let (redeemed, registered) = self.look_up(&request.code)?;
            if let Some(r) = self.redeemed_by(request, redeemed)? {
                return Ok(r);
            }
            let template = match registered {
                Some(Receipt::OneTimeCode { template }) => template,
                Some(Receipt::Code { template }) => {
                    return Ok(Redeemed::PromoCode {
                        code: request.code.clone(),
                        template,
                    });
                }
                _ => return Err(unknown(&request.code)),
            };
            let record = self.template_record(&template)?;
            let claim = ClaimRequest::new(
                template.clone(),
                request.user.clone(),
                request.channel.clone(),
                ClaimMode::Click,
                key.clone(),
            )
            .with_attributes(request.attributes.clone())
            .with_context(request.context.clone());
            let id = coupon_id(&template, &key, salt);
            let coupon = Coupon::issue(&record.value, None, &claim, id, now)?;
            let limits = *record.value.template.limits();
            let templates = [template.clone()];
            let asking = Asking {
                user: &request.user,
                channel: &request.channel,
                templates: &templates,
                context: &request.context,
            };
            let guards = guard::counts(&self.config.guards, Action::Claim, &asking, now)?;
            let issued = EventKind::Issued {
                coupon: CouponFacts::of(&coupon),
                mode: coupon.mode,
            };
            let mut batch = Batch {
                ops: Vec::with_capacity(7 + guards.len() + attempts.len()),
            };
            batch
                .push(Op::InsertReceipt {
                    key: op_key(OP_CLAIM, &key),
                    receipt: Receipt::Claimed {
                        coupon: coupon.id.clone(),
                    },
                })
                .push(Op::Count {
                    key: CounterKey::Issued(template.clone()),
                    delta: 1,
                    limit: limits.total_stock(),
                })
                .push(Op::Count {
                    key: CounterKey::UserClaims(template.clone(), request.user.clone()),
                    delta: 1,
                    limit: limits.per_user_claims().map(u64::from),
                })
                .push(Op::PutCoupon {
                    coupon: coupon.clone(),
                    expect: Expect::Absent,
                });
            for g in &guards {
                batch.push(g.op.clone());
            }
            let redeem_at = batch.ops.len();
            batch.push(Op::InsertReceipt {
                key: op_key(OP_CODE_REDEEM, &key),
                receipt: Receipt::CodeRedeemed {
                    template: template.clone(),
                    user: request.user.clone(),
                    coupon: coupon.id.clone(),
                },
            });
            for op in Self::give_back_ops(attempts) {
                batch.push(op);
            }
            emit(&mut batch, now, issued);
            match self.commit(&batch)? {
                Commit::Applied => {
                    return Ok(Redeemed::Coupon(Claimed {
                        coupon,
                        replayed: false,
                    }));
                }
                // Another redemption of the code won: read who owns it now.
                Commit::Conflict { index } if index == 0 || index == redeem_at => {}
                Commit::Conflict { index: 1 } if limits.total_stock().is_some() => {
                    self.refused(&claim, Refusal::OutOfStock, now);
                    return Err(LifecycleError::OutOfStock {
                        template,
                        stock: limits.total_stock().unwrap_or_default(),
                    }
                    .into());
                }
                Commit::Conflict { index: 2 } if limits.per_user_claims().is_some() => {
                    self.refused(&claim, Refusal::ClaimLimit, now);
                    return Err(LifecycleError::ClaimLimitReached {
                        template,
                        user: request.user.clone(),
                        limit: limits.per_user_claims().unwrap_or_default(),
                    }
                    .into());
                }
                Commit::Conflict { index: 3 } => salt = salt.saturating_add(1),
                Commit::Conflict { index } => {
                    if let Some(g) = index.checked_sub(4).and_then(|i| guards.get(i)) {
                        self.refused(
                            &claim,
                            Refusal::Guard {
                                guard: g.guard.to_string(),
                            },
                            now,
                        );
                        return Err(LifecycleError::GuardHeld {
                            guard: g.guard.clone(),
                            limit: g.limit,
                            window: g.window,
                        }
                        .into());
                    }
                }
            }
        }
        self.contention("redeem code")
    }
}

fn unknown<E>(code: &PromoCode) -> ServiceError<E> {
    LifecycleError::UnknownCode { code: code.clone() }.into()
}
