//! Claiming a coupon, and redeeming typed codes (one-time codes and shared promo codes).
//!
//! A claim's batch is, in this order: its receipt, the stock counter, the per-user claim
//! counter, the new coupon, the claim guards' counters, (for a code: the code's redemption
//! receipt and the attempt given back,) and the `issued` event. What a conflict on each means
//! is [`ClaimMeaning`], computed only when a conflict happens: the claim's hot path builds no
//! list of meanings.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use super::ids::{code_key, coupon_id};
use super::read::{Got, Next, Read, Reads, Steps, unexpected};
use super::{Denied, Meaning, OP_CLAIM, On, Plan, emit, op_key};
use crate::attributes::Attributes;
use crate::events::{CouponFacts, Event, EventKind, Refusal};
use crate::guard::{self, Action, Asking, Context, Counted, Guard, Window};
use crate::id::{Channel, CouponId, GuardName, TemplateId, UserId};
use crate::lifecycle::{Campaign, ClaimMode, ClaimRequest, Coupon, LifecycleError, TemplateRecord};
use crate::repository::{Batch, CounterKey, Expect, Op, Receipt, ReceiptKey};
use crate::rule::PromoCode;

/// The receipt operation under which a redeemed one-time code records its owner.
pub(crate) const OP_CODE_REDEEM: &str = "code-redeem";

/// The template id that `refused` events carry when a code redemption was refused before the
/// code was looked up (an attempt guard held): `code-entry`.
pub const CODE_ENTRY: &str = "code-entry";

/// A coupon claimed (or the first outcome of a repeated claim).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Claimed {
    /// The coupon (as it is now, for a repeated claim).
    pub coupon: Coupon,
    /// Whether this repeated an earlier claim with the same key.
    pub replayed: bool,
}

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
    /// ([`LockRequest::codes`](crate::service::LockRequest::codes)), where its limits are counted.
    PromoCode {
        /// The code.
        code: PromoCode,
        /// Its template.
        template: TemplateId,
    },
}

/// What [`Service::register_codes`](crate::service::Service::register_codes) stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Registered {
    /// Codes newly registered.
    pub added: usize,
    /// Codes already registered for the same template (a repeated registration).
    pub already: usize,
}

/// What a conflict on each op of a claim's batch means.
#[derive(Debug)]
pub(crate) struct ClaimMeaning<'a> {
    template: Cow<'a, TemplateId>,
    user: Cow<'a, UserId>,
    at: DateTime<Utc>,
    stock: Option<u64>,
    per_user: Option<u32>,
    /// The claim guards, whose ops follow the coupon's.
    guards: ClaimGuards<'a>,
    /// Whether a conflict on the receipt answers from it (a claim) or reads again (a code:
    /// another account's redemption won).
    replays: bool,
}

/// The guards whose ops follow a claim's coupon, as a refusal names them.
#[derive(Debug)]
enum ClaimGuards<'a> {
    /// Found again in the configured guards only when a conflict has to be read (the claim's
    /// hot path lists nothing): the `i`-th of [`guard::counting`] for the request.
    Config {
        guards: &'a [Guard],
        request: &'a ClaimRequest,
    },
    /// Listed: (name, limit, window) of each.
    Listed(Vec<(GuardName, u64, Window)>),
}

impl ClaimGuards<'_> {
    /// The `i`-th guard's name, limit and window.
    fn get(&self, i: usize) -> Option<(GuardName, u64, Window)> {
        match self {
            ClaimGuards::Config { guards, request } => {
                let g = guard::counting(guards, Action::Claim, &asking(request)).nth(i)?;
                Some((g.name().clone(), g.limit(), g.window()))
            }
            ClaimGuards::Listed(v) => v.get(i).cloned(),
        }
    }

    /// The same guards, listed.
    fn listed(self) -> ClaimGuards<'static> {
        match self {
            ClaimGuards::Config { guards, request } => ClaimGuards::Listed(
                guard::counting(guards, Action::Claim, &asking(request))
                    .map(|g| (g.name().clone(), g.limit(), g.window()))
                    .collect(),
            ),
            ClaimGuards::Listed(v) => ClaimGuards::Listed(v),
        }
    }
}

impl ClaimMeaning<'_> {
    /// The same meaning, owning the ids it names.
    fn owned(self) -> ClaimMeaning<'static> {
        ClaimMeaning {
            template: Cow::Owned(self.template.into_owned()),
            user: Cow::Owned(self.user.into_owned()),
            at: self.at,
            stock: self.stock,
            per_user: self.per_user,
            guards: self.guards.listed(),
            replays: self.replays,
        }
    }

    fn record(&self, error: LifecycleError, refusal: Refusal) -> On {
        let kind = EventKind::Refused {
            user: self.user.clone().into_owned(),
            template: self.template.clone().into_owned(),
            refusal,
        };
        On::Record(error, Box::new(Event::new(self.at, kind)))
    }
}

impl Meaning for ClaimMeaning<'_> {
    fn on(&self, index: usize) -> On {
        match (index, self.stock, self.per_user) {
            (0, _, _) if self.replays => On::Replay,
            (1, Some(stock), _) => self.record(
                LifecycleError::OutOfStock {
                    template: self.template.clone().into_owned(),
                    stock,
                },
                Refusal::OutOfStock,
            ),
            (2, _, Some(limit)) => self.record(
                LifecycleError::ClaimLimitReached {
                    template: self.template.clone().into_owned(),
                    user: self.user.clone().into_owned(),
                    limit,
                },
                Refusal::ClaimLimit,
            ),
            (3, _, _) => On::Collision,
            _ => match index.checked_sub(4).and_then(|i| self.guards.get(i)) {
                Some((guard, limit, window)) => {
                    let refusal = Refusal::Guard {
                        guard: guard.to_string(),
                    };
                    self.record(
                        LifecycleError::GuardHeld {
                            guard,
                            limit,
                            window,
                        },
                        refusal,
                    )
                }
                None => On::Retry,
            },
        }
    }
}

/// What the claim guards read from `request`.
fn asking(request: &ClaimRequest) -> Asking<'_> {
    Asking {
        user: &request.user,
        channel: &request.channel,
        templates: std::slice::from_ref(&request.template),
        context: &request.context,
    }
}

/// The head of a claim's batch (receipt, stock, per-user claims, coupon, the claim guards'
/// counts) and what a conflict on it means; the caller adds its own ops and the `issued` event.
///
/// # Errors
/// A guard's missing context.
#[inline(always)]
fn claim_batch<'a>(
    record: &TemplateRecord,
    request: &'a ClaimRequest,
    coupon: Coupon,
    guards: &'a [Guard],
    extra: usize,
    now: DateTime<Utc>,
) -> Result<(Batch, ClaimMeaning<'a>), Denied> {
    let limits = *record.template.limits();
    // Pushed onto the ops directly: each op is built in place (the claim's hot path).
    let mut ops = Vec::with_capacity(5 + extra + guards.len());
    ops.push(Op::InsertReceipt {
        key: op_key(OP_CLAIM, &request.key),
        receipt: Receipt::Claimed {
            coupon: coupon.id.clone(),
        },
    });
    ops.push(Op::Count {
        key: CounterKey::Issued(request.template.clone()),
        delta: 1,
        limit: limits.total_stock(),
    });
    ops.push(Op::Count {
        key: CounterKey::UserClaims(request.template.clone(), request.user.clone()),
        delta: 1,
        limit: limits.per_user_claims().map(u64::from),
    });
    ops.push(Op::PutCoupon {
        coupon,
        expect: Expect::Absent,
    });
    if !guards.is_empty() {
        guard::push_counts(guards, Action::Claim, &asking(request), now, &mut ops)?;
    }
    let meaning = ClaimMeaning {
        template: Cow::Borrowed(&request.template),
        user: Cow::Borrowed(&request.user),
        at: now,
        stock: limits.total_stock(),
        per_user: limits.per_user_claims(),
        guards: ClaimGuards::Config { guards, request },
        replays: true,
    };
    Ok((Batch { ops }, meaning))
}

/// Pure: issue one coupon of `record` (in `campaign`) for `request`, its id salted by `salt`.
/// The plan's batch holds the coupon; [`issued`] takes it back once applied.
///
/// # Errors
/// [`Coupon::issue`]'s refusals; a guard's missing context.
#[inline(always)]
pub(crate) fn plan_claim<'a>(
    (record, campaign): (&TemplateRecord, Option<&Campaign>),
    request: &'a ClaimRequest,
    (guards, salt): (&'a [Guard], u32),
    now: DateTime<Utc>,
) -> Result<Plan<(), ClaimMeaning<'a>>, Denied> {
    let id = coupon_id(&request.template, &request.key, salt);
    let coupon = Coupon::issue(record, campaign, request, id, now)?;
    let issued = EventKind::Issued {
        coupon: CouponFacts::of(&coupon),
        mode: coupon.mode,
    };
    let (mut batch, meaning) = claim_batch(record, request, coupon, guards, 0, now)?;
    batch.ops.push(Op::Emit {
        event: Event::new(now, issued),
    });
    Ok(Plan {
        batch,
        meaning,
        answer: (),
    })
}

/// The coupon an applied claim's batch stored.
#[inline(always)]
pub(crate) fn issued(mut batch: Batch) -> Option<Claimed> {
    batch.ops.truncate(4);
    match batch.ops.pop() {
        Some(Op::PutCoupon { coupon, .. }) => Some(Claimed {
            coupon,
            replayed: false,
        }),
        _ => None,
    }
}

/// Whether the coupon a claim's receipt names answers `request`: the stored coupon records
/// the request that issued it, so the same key with another user, template, channel,
/// campaign, mode or attributes is a reuse.
pub(crate) fn same_claim(coupon: &Coupon, request: &ClaimRequest) -> bool {
    coupon.owner == request.user
        && coupon.template == request.template
        && coupon.channel == request.channel
        && coupon.campaign == request.campaign
        && coupon.mode == request.mode
        && coupon.attributes == request.attributes
}

/// A claim's replay as reads: its receipt, then the coupon it names, which must answer
/// `request` ([`same_claim`]). Boxed: the claim's hot path moves only its plan, never a
/// [`Claimed`].
///
/// # Errors
/// [`LifecycleError::KeyReused`] when the key was used for another claim.
pub(crate) fn claim_replay(
    request: &ClaimRequest,
    key: ReceiptKey,
) -> impl Reads<Out = Option<Box<Claimed>>> + '_ {
    let reused = || Denied::from(super::key_reused(&request.key, OP_CLAIM));
    Steps::new(Read::Receipt(key), move |got| {
        Ok(match got {
            Got::Receipt(_, None) => Next::Ready(None),
            Got::Receipt(_, Some(Receipt::Claimed { coupon })) => {
                Next::Read(Read::Coupons(vec![coupon]))
            }
            Got::Receipt(..) => return Err(reused()),
            Got::Coupons(mut c) => match c.pop() {
                Some(c) if same_claim(&c.value, request) => Next::Ready(Some(Box::new(Claimed {
                    coupon: c.value,
                    replayed: true,
                }))),
                _ => return Err(reused()),
            },
            _ => return unexpected("replay claim"),
        })
    })
}

/// The claim a one-time code's redemption makes: the code's key, for every account.
pub(crate) fn code_claim(template: TemplateId, request: &RedeemRequest) -> ClaimRequest {
    ClaimRequest::new(
        template,
        request.user.clone(),
        request.channel.clone(),
        ClaimMode::Click,
        code_key(&request.code),
    )
    .with_attributes(request.attributes.clone())
    .with_context(request.context.clone())
}

/// The receipt keys a code's lookup reads: its redemption, then the code itself — both,
/// always, so an unknown code and another account's code cost the same reads.
pub(crate) fn lookup_keys(code: &PromoCode) -> [ReceiptKey; 2] {
    [
        op_key(OP_CODE_REDEEM, &code_key(code)),
        ReceiptKey::Code(code.clone()),
    ]
}

/// What a code's lookup found.
pub(crate) enum Found {
    /// This account redeemed it: its coupon.
    Mine(CouponId),
    /// A shared promo code, for the checkout.
    Shared(TemplateId),
    /// A one-time code nobody redeemed yet, of this template.
    Free(TemplateId),
}

/// Pure: what the two receipts of [`lookup_keys`] say about `request`'s code.
///
/// # Errors
/// [`LifecycleError::UnknownCode`] when the code does not exist or another account redeemed
/// it.
pub(crate) fn found(
    request: &RedeemRequest,
    redeemed: Option<Receipt>,
    registered: Option<Receipt>,
) -> Result<Found, LifecycleError> {
    match redeemed {
        Some(Receipt::CodeRedeemed { user, coupon, .. }) if user == request.user => {
            return Ok(Found::Mine(coupon));
        }
        Some(_) => return Err(unknown(&request.code)),
        None => {}
    }
    match registered {
        Some(Receipt::OneTimeCode { template }) => Ok(Found::Free(template)),
        Some(Receipt::Code { template }) => Ok(Found::Shared(template)),
        _ => Err(unknown(&request.code)),
    }
}

/// The refusal for a code that does not exist, or is another account's.
pub(crate) fn unknown(code: &PromoCode) -> LifecycleError {
    LifecycleError::UnknownCode { code: code.clone() }
}

/// Pure: redeem a free one-time code of `record` for `request` as the claim `claim` (see
/// [`code_claim`]), giving back the counted `attempts` in the same batch.
///
/// # Errors
/// As [`plan_claim`].
pub(crate) fn plan_redeem(
    record: &TemplateRecord,
    claim: &ClaimRequest,
    attempts: &[Counted],
    guards: &[Guard],
    salt: u32,
    now: DateTime<Utc>,
) -> Result<Plan<Redeemed, ClaimMeaning<'static>>, Denied> {
    let template = claim.template.clone();
    let id = coupon_id(&template, &claim.key, salt);
    let coupon = Coupon::issue(record, None, claim, id, now)?;
    let issued = EventKind::Issued {
        coupon: CouponFacts::of(&coupon),
        mode: coupon.mode,
    };
    let receipt = Receipt::CodeRedeemed {
        template,
        user: claim.user.clone(),
        coupon: coupon.id.clone(),
    };
    let answer = Redeemed::Coupon(Claimed {
        coupon: coupon.clone(),
        replayed: false,
    });
    let extra = 2 + attempts.len();
    let (mut batch, meaning) = claim_batch(record, claim, coupon, guards, extra, now)?;
    let mut meaning = meaning.owned();
    // Another redemption of the code won (its claim receipt or this one): read who owns it.
    meaning.replays = false;
    batch.push(Op::InsertReceipt {
        key: op_key(OP_CODE_REDEEM, &claim.key),
        receipt,
    });
    for op in give_back_ops(attempts) {
        batch.push(op);
    }
    emit(&mut batch, now, issued);
    Ok(Plan {
        batch,
        meaning,
        answer,
    })
}

/// The [`Action::CodeAttempt`] guards' counts for `request`'s attempt.
///
/// # Errors
/// [`GuardError`](crate::guard::GuardError) for a guard that needs context the request lacks.
pub(crate) fn attempt_counts(
    guards: &[Guard],
    request: &RedeemRequest,
    now: DateTime<Utc>,
) -> Result<Vec<Counted>, crate::guard::GuardError> {
    let asking = Asking {
        user: &request.user,
        channel: &request.channel,
        templates: &[],
        context: &request.context,
    };
    guard::counts(guards, Action::CodeAttempt, &asking, now)
}

/// Pure: count one code attempt against every attempt guard, refusing (and recording the
/// refusal) when one holds its limit; nothing to write without attempt guards.
pub(crate) fn plan_attempt(
    request: &RedeemRequest,
    attempts: &[Counted],
    now: DateTime<Utc>,
) -> super::Step<()> {
    if attempts.is_empty() {
        return super::Step::Done(());
    }
    let mut plan = Plan::new(());
    for g in attempts {
        let kind = EventKind::Refused {
            user: request.user.clone(),
            template: TemplateId::trusted(CODE_ENTRY),
            refusal: Refusal::Guard {
                guard: g.guard.to_string(),
            },
        };
        let error = LifecycleError::GuardHeld {
            guard: g.guard.clone(),
            limit: g.limit,
            window: g.window,
        };
        plan.push(
            g.op.clone(),
            On::Record(error, Box::new(Event::new(now, kind))),
        );
    }
    super::Step::Commit(plan)
}

/// The ops that give an attempt back: the same buckets, minus one.
pub(crate) fn give_back_ops(attempts: &[Counted]) -> impl Iterator<Item = Op> + '_ {
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

/// Pure: the batch that gives the code attempt back once a redemption ended with `outcome`
/// (`Err(None)` for a failure outside the lifecycle's): `None` when no attempt was counted,
/// when the code was not there to redeem (the attempt stays counted), or when a new coupon's
/// own batch gave it back.
pub(crate) fn give_back(
    attempts: &[Counted],
    outcome: Result<&Redeemed, Option<&LifecycleError>>,
) -> Option<Batch> {
    let settled = match outcome {
        Err(Some(LifecycleError::UnknownCode { .. })) => true,
        Ok(Redeemed::Coupon(claimed)) => !claimed.replayed,
        Ok(Redeemed::PromoCode { .. }) | Err(_) => false,
    };
    if settled || attempts.is_empty() {
        return None;
    }
    Some(Batch {
        ops: give_back_ops(attempts).collect(),
    })
}

/// Pure: the batch registering `codes` as one-time codes of `template` (nothing to do for
/// none); every conflict reads again ([`FreeCodes`]).
pub(crate) fn plan_register(template: &TemplateId, codes: &[PromoCode]) -> super::Step<usize> {
    if codes.is_empty() {
        return super::Step::Done(0);
    }
    let mut plan = Plan::new(codes.len());
    for c in codes {
        plan.push(
            Op::InsertReceipt {
                key: ReceiptKey::Code(c.clone()),
                receipt: Receipt::OneTimeCode {
                    template: template.clone(),
                },
            },
            On::Retry,
        );
    }
    super::Step::Commit(plan)
}

/// After a registration conflicted, the codes still free as reads: each code's receipt;
/// those already registered for `template` are counted (the second part of the answer).
///
/// # Errors
/// [`LifecycleError::CodeTaken`] for a code another template owns;
/// [`Denied::Inconsistent`] for a code key holding another kind of receipt.
pub(crate) struct FreeCodes<'a> {
    template: &'a TemplateId,
    codes: std::vec::IntoIter<PromoCode>,
    free: Vec<PromoCode>,
    already: usize,
}

impl FreeCodes<'_> {
    /// Reads the receipts of `codes`, in order.
    pub(crate) fn new(template: &TemplateId, codes: Vec<PromoCode>) -> FreeCodes<'_> {
        let free = Vec::with_capacity(codes.len());
        let (codes, already) = (codes.into_iter(), 0);
        FreeCodes {
            template,
            codes,
            free,
            already,
        }
    }
}

impl Reads for FreeCodes<'_> {
    type Out = (Vec<PromoCode>, usize);

    fn next(&mut self, got: Option<Got>) -> Result<Next<Self::Out>, Denied> {
        match got {
            None => {}
            Some(Got::Receipt(ReceiptKey::Code(code), receipt)) => match receipt {
                None => self.free.push(code),
                Some(Receipt::OneTimeCode { template }) if &template == self.template => {
                    self.already += 1;
                }
                Some(Receipt::OneTimeCode { template } | Receipt::Code { template }) => {
                    return Err(LifecycleError::CodeTaken { code, template }.into());
                }
                Some(_) => return Err(Denied::inconsistent("register codes")),
            },
            Some(_) => return unexpected("register codes"),
        }
        Ok(match self.codes.next() {
            Some(code) => Next::Read(Read::Receipt(ReceiptKey::Code(code))),
            None => Next::Ready((std::mem::take(&mut self.free), self.already)),
        })
    }
}
