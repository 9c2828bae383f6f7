//! The arithmetic of checkout, in whole minor units: prepared offers, the residual cart, and how
//! one offer applies to it. Pure and allocation-light; the public types live in the parent.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;

use super::reason::{Excluded, Ineligible, Named};
use super::{
    Offer, OfferId, PercentPlace, PromotionPlace, RoundingScope, StackingPolicy, ThresholdBase,
};
use crate::cart::{Buyer, Cart};
use crate::id::{StackingGroup, TemplateId};
use crate::money::{Money, Rounding, apportion_minor};
use crate::rule::{Benefit, Percent, Reward, Template, UnitOff, UnitPick};

/// `n / d` rounded with `rounding`; `n ≥ 0`, `d > 0`.
pub(crate) fn div_round(n: i128, d: i128, rounding: Rounding) -> i128 {
    let q = n / d;
    let r = n % d;
    let up = match rounding {
        Rounding::Down => false,
        Rounding::Up => r > 0,
        Rounding::HalfUp => 2 * r >= d && r > 0,
        Rounding::HalfEven => 2 * r > d || (2 * r == d && r > 0 && q % 2 == 1),
    };
    q + i128::from(up)
}

/// A money amount in minor units, saturating at `i64::MAX`. Every cart amount is below
/// `i64::MAX` (the cart checks it), so a saturated threshold is unreachable and a saturated cap
/// never binds: the meaning of the rule is kept exactly.
fn minor(m: &Money) -> i64 {
    m.to_minor().unwrap_or(i64::MAX)
}

/// A benefit in minor units.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Instant(i64),
    Threshold(Vec<(i64, i64)>),
    Every {
        every: i64,
        save: i64,
        max: i64,
    },
    Percent {
        num: i128,
        den: i128,
        max: i64,
    },
    Shipping {
        cap: i64,
    },
    BuyGet {
        buy: u64,
        get: u64,
        max_free: u64,
    },
    Fixed {
        quantity: u64,
        price: i64,
        max_bundles: u64,
    },
    PerUnit {
        amount: i64,
        max_units: u64,
    },
    PerLine {
        amount: i64,
        max_lines: u64,
    },
    /// One unit: the dearest when `dearest`, else the cheapest; an amount (`num == 0`) or a
    /// percentage `num / den`.
    Once {
        dearest: bool,
        amount: i64,
        num: i128,
        den: i128,
    },
    /// (spend, num, den) tiers.
    TieredPercent {
        tiers: Vec<(i64, i128, i128)>,
        max: i64,
    },
    /// (units, num, den) tiers.
    QuantityTiers {
        tiers: Vec<(u64, i128, i128)>,
        max: i64,
    },
    ShippingPercent {
        num: i128,
        den: i128,
    },
    ShippingPrice {
        price: i64,
    },
    /// Over the lines and shipping together: an amount (`num == 0`) or `num / den`.
    ItemsAndShipping {
        amount: i64,
        num: i128,
        den: i128,
        max: i64,
    },
    /// Buy X get Y over separate sets; `in_buy[l]`: whether cart line `l` counts toward `buy`.
    BuyXGetY {
        buy: u64,
        get: u64,
        reward: RewardKind,
        max_units: u64,
        in_buy: Vec<bool>,
    },
}

/// What each reward unit of a buy-X-get-Y gets, in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RewardKind {
    Free,
    Percent { num: i128, den: i128 },
    Price(i64),
}

impl RewardKind {
    /// The saving on `k` reward units worth `value` together.
    fn saving(self, value: i64, k: u64, rounding: Rounding) -> i64 {
        match self {
            RewardKind::Free => value,
            RewardKind::Percent { num, den } => {
                let s = div_round(i128::from(value) * num, den, rounding);
                i64::try_from(s).unwrap_or(value).min(value)
            }
            RewardKind::Price(price) => {
                let pay = i64::try_from(k).unwrap_or(i64::MAX).saturating_mul(price);
                value.saturating_sub(pay).max(0)
            }
        }
    }

    fn sig(self) -> [i64; 3] {
        let clamp = |x: i128| i64::try_from(x).unwrap_or(i64::MAX);
        match self {
            RewardKind::Free => [0, 0, 0],
            RewardKind::Percent { num, den } => [1, clamp(num), clamp(den)],
            RewardKind::Price(p) => [2, p, 0],
        }
    }
}

/// A percentage as an exact fraction `num / den` of what it applies to.
fn fraction(p: &Percent) -> (i128, i128) {
    let v: Decimal = p.value();
    (v.mantissa(), 100 * 10i128.pow(v.scale()))
}

impl Kind {
    fn from_benefit(b: &Benefit, cart: &Cart) -> Kind {
        match b {
            Benefit::Instant { amount } => Kind::Instant(minor(amount)),
            Benefit::Threshold { tiers } => Kind::Threshold(
                tiers
                    .iter()
                    .map(|t| (minor(&t.spend), minor(&t.save)))
                    .collect(),
            ),
            Benefit::EveryThreshold {
                every,
                save,
                max_saving,
            } => Kind::Every {
                every: minor(every),
                save: minor(save),
                max: max_saving.as_ref().map_or(i64::MAX, minor),
            },
            Benefit::Percent {
                percent,
                max_saving,
            } => {
                let (num, den) = fraction(percent);
                Kind::Percent {
                    num,
                    den,
                    max: max_saving.as_ref().map_or(i64::MAX, minor),
                }
            }
            Benefit::Shipping { cap } => Kind::Shipping {
                cap: cap.as_ref().map_or(i64::MAX, minor),
            },
            Benefit::BuyGet {
                buy,
                get,
                max_free_units,
            } => Kind::BuyGet {
                buy: u64::from(*buy),
                get: u64::from(*get),
                max_free: max_free_units.map_or(u64::MAX, u64::from),
            },
            Benefit::FixedPrice {
                quantity,
                price,
                max_bundles,
            } => Kind::Fixed {
                quantity: u64::from(*quantity),
                price: minor(price),
                max_bundles: max_bundles.map_or(u64::MAX, u64::from),
            },
            Benefit::PerUnit { amount, max_units } => Kind::PerUnit {
                amount: minor(amount),
                max_units: max_units.map_or(u64::MAX, u64::from),
            },
            Benefit::PerLine { amount, max_lines } => Kind::PerLine {
                amount: minor(amount),
                max_lines: max_lines.map_or(u64::MAX, u64::from),
            },
            Benefit::ApplyOnce { pick, off } => {
                let dearest = *pick == UnitPick::Dearest;
                match off {
                    UnitOff::Amount(m) => Kind::Once {
                        dearest,
                        amount: minor(m),
                        num: 0,
                        den: 1,
                    },
                    UnitOff::Percent(p) => {
                        let (num, den) = fraction(p);
                        Kind::Once {
                            dearest,
                            amount: 0,
                            num,
                            den,
                        }
                    }
                }
            }
            Benefit::TieredPercent { tiers, max_saving } => Kind::TieredPercent {
                tiers: tiers
                    .iter()
                    .map(|t| {
                        let (n, d) = fraction(&t.percent);
                        (minor(&t.spend), n, d)
                    })
                    .collect(),
                max: max_saving.as_ref().map_or(i64::MAX, minor),
            },
            Benefit::QuantityTiers { tiers, max_saving } => Kind::QuantityTiers {
                tiers: tiers
                    .iter()
                    .map(|t| {
                        let (n, d) = fraction(&t.percent);
                        (u64::from(t.units), n, d)
                    })
                    .collect(),
                max: max_saving.as_ref().map_or(i64::MAX, minor),
            },
            Benefit::ShippingPercent { percent } => {
                let (num, den) = fraction(percent);
                Kind::ShippingPercent { num, den }
            }
            Benefit::ShippingPrice { price } => Kind::ShippingPrice {
                price: minor(price),
            },
            Benefit::ItemsAndShipping { off, max_saving } => {
                let max = max_saving.as_ref().map_or(i64::MAX, minor);
                match off {
                    UnitOff::Amount(m) => Kind::ItemsAndShipping {
                        amount: minor(m),
                        num: 0,
                        den: 1,
                        max,
                    },
                    UnitOff::Percent(p) => {
                        let (num, den) = fraction(p);
                        Kind::ItemsAndShipping {
                            amount: 0,
                            num,
                            den,
                            max,
                        }
                    }
                }
            }
            Benefit::BuyXGetY {
                buy,
                buy_scope,
                get,
                reward,
                max_units,
            } => Kind::BuyXGetY {
                buy: u64::from(*buy),
                get: u64::from(*get),
                reward: match reward {
                    Reward::Free => RewardKind::Free,
                    Reward::Percent { percent } => {
                        let (num, den) = fraction(percent);
                        RewardKind::Percent { num, den }
                    }
                    Reward::Price { price } => RewardKind::Price(minor(price)),
                },
                max_units: max_units.map_or(u64::MAX, u64::from),
                in_buy: cart.lines().iter().map(|l| buy_scope.covers(l)).collect(),
            },
        }
    }

    /// 0: unit-priced, 1: amount-based, 2: shipping.
    fn phase(&self) -> u8 {
        match self {
            Kind::BuyGet { .. }
            | Kind::Fixed { .. }
            | Kind::PerUnit { .. }
            | Kind::Once { .. }
            | Kind::BuyXGetY { .. } => 0,
            Kind::Shipping { .. } | Kind::ShippingPercent { .. } | Kind::ShippingPrice { .. } => 2,
            _ => 1,
        }
    }

    /// Within the amount phase, fixed reductions before percentages.
    fn rank(&self) -> u8 {
        u8::from(match self {
            Kind::Percent { .. } | Kind::TieredPercent { .. } | Kind::QuantityTiers { .. } => true,
            Kind::ItemsAndShipping { num, .. } => *num != 0,
            _ => false,
        })
    }
}

/// The cart in minor units.
#[derive(Clone, Debug)]
pub(crate) struct CartCtx {
    pub totals: Vec<i64>,
    pub qty: Vec<u64>,
    pub shipping: i64,
    /// Every line by undiscounted unit value, cheapest first (ties by line index): a unit
    /// offer's own order is this one restricted to its lines. Sorted when first needed.
    by_value: std::cell::OnceCell<Vec<u32>>,
}

impl CartCtx {
    pub fn new(cart: &Cart) -> CartCtx {
        CartCtx {
            totals: (0..cart.lines().len())
                .map(|i| cart.line_total(i).as_ref().map_or(0, minor))
                .collect(),
            qty: cart.lines().iter().map(|l| u64::from(l.quantity)).collect(),
            shipping: minor(&cart.shipping()),
            by_value: std::cell::OnceCell::new(),
        }
    }

    /// Every line by undiscounted unit value, cheapest first (ties by line index).
    pub fn by_value(&self) -> &[u32] {
        self.by_value.get_or_init(|| {
            let all: Vec<u32> = (0..self.totals.len() as u32).collect();
            sort_by_unit_value(all, self, &self.fresh())
        })
    }

    pub fn fresh(&self) -> State {
        State {
            residual: self.totals.clone(),
            shipping: self.shipping,
        }
    }
}

/// What is left to pay after the offers applied so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub residual: Vec<i64>,
    pub shipping: i64,
}

/// Why an offer does not apply to a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    SpendMore(i64),
    MoreItems(u64),
    NoShippingFee,
    NothingToSave,
}

/// Everything about one template on this cart and buyer: shared by every offer of the template
/// (a wallet holds many copies of popular templates), computed once per checkout.
#[derive(Debug)]
pub(crate) struct Shared {
    pub template: TemplateId,
    /// The template's name, as reasons show it.
    pub name: String,
    pub lines: Vec<u32>,
    pub kind: Kind,
    pub min_subtotal: i64,
    pub min_qty: u64,
    pub orig_base: i64,
    pub qty: u64,
    pub group: StackingGroup,
    pub exclusive: bool,
    pub with_promotions: bool,
    pub per_order: u32,
    /// Group position, phase, negated priority, kind rank.
    pub place: (u32, u8, i64, u8),
    /// Everything that decides how an offer of the template applies, but the template's id:
    /// templates with the same signature (and group) behave identically. Empty when no offer
    /// of the template can be used (only usable offers are compared by behaviour).
    pub sig: Vec<i64>,
    /// The saving alone on the whole cart, or why it does not apply.
    pub alone: Result<i64, Miss>,
    /// For unit offers, the lines by undiscounted unit value, cheapest first (the common case
    /// of a unit offer applying to untouched lines needs no sort).
    pub cheapest_first: Vec<u32>,
    /// Why no offer of the template can be used here (currency, audience, channel, schedule,
    /// scope, minimum spend…).
    pub reasons: Vec<Ineligible>,
}

/// An offer checked against the cart and buyer, ready to apply.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    /// Index into the offers given to the checkout.
    pub offer: usize,
    pub id: OfferId,
    pub shared: Arc<Shared>,
    pub is_promotion: bool,
    /// Canonical application order key: (group position, phase, source, -priority, kind
    /// rank).
    pub order: (u32, u8, u8, i64, u8),
    pub valid_until: Option<DateTime<Utc>>,
    /// Saving when applied alone to the whole cart.
    pub alone: i64,
    /// Position in the canonical order among the checkout's usable offers (see
    /// [`Prepared::apply_cmp`]), set once all are prepared.
    pub rank: u32,
    /// Behaviour class (equal exactly when [`Prepared::class_cmp`] says so), numbered in
    /// canonical order, set once all are prepared.
    pub class: u32,
}

impl std::ops::Deref for Prepared {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl Prepared {
    /// The offer as a reason names it.
    pub fn named(&self) -> Named {
        Named {
            offer: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// Orders offers by behaviour: equal exactly when they behave identically.
    pub fn class_cmp(&self, other: &Prepared) -> Ordering {
        self.order.cmp(&other.order).then_with(|| {
            if Arc::ptr_eq(&self.shared, &other.shared) {
                Ordering::Equal
            } else {
                self.sig
                    .cmp(&other.sig)
                    .then_with(|| self.group.cmp(&other.group))
            }
        })
    }

    /// The canonical order in which stacked offers apply. Offers that behave identically sit
    /// next to each other, so swapping one for another never changes the order of the rest.
    pub fn apply_cmp(&self, other: &Prepared) -> Ordering {
        self.class_cmp(other)
            .then_with(|| self.template.cmp(&other.template))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// Checks everything about a template that does not depend on the coupon instance (currency,
/// audience, channel, schedule, scope) and computes its saving alone.
pub(crate) fn shared(
    t: &Template,
    cart: &Cart,
    ctx: &CartCtx,
    buyer: &Buyer,
    now: DateTime<Utc>,
    policy: &StackingPolicy,
) -> Shared {
    let mut reasons = Vec::new();
    let currency_ok = t.currency() == cart.currency();
    if !currency_ok {
        reasons.push(Ineligible::CurrencyMismatch {
            cart: cart.currency(),
            coupon: t.currency(),
        });
    }
    let c = t.conditions();
    reasons.extend(
        c.audience_misses(buyer)
            .into_iter()
            .map(|miss| Ineligible::Audience { miss }),
    );
    if !c.allows_channel(&buyer.channel) {
        reasons.push(Ineligible::Channel {
            channel: buyer.channel.clone(),
        });
    }
    if c.schedule().is_some_and(|s| !s.allows(now)) {
        reasons.push(Ineligible::OutsideSchedule);
    }
    let scope = t.scope();
    let lines: Vec<u32> = if scope.is_everything() {
        (0..cart.lines().len() as u32).collect()
    } else {
        cart.lines()
            .iter()
            .enumerate()
            .filter(|(_, l)| scope.covers(l))
            .map(|(i, _)| i as u32)
            .collect()
    };
    if lines.is_empty() {
        reasons.push(Ineligible::NoItemInScope {
            excluded: cart
                .lines()
                .iter()
                .filter_map(|l| {
                    scope.exclusion(l).map(|by| Excluded {
                        sku: l.sku.clone(),
                        by,
                    })
                })
                .collect(),
        });
    }
    for requirement in c.requires() {
        let missing = requirement.missing(cart.lines());
        if missing > 0 {
            reasons.push(Ineligible::RequiresItems {
                requirement: Box::new(requirement.clone()),
                missing,
            });
        }
    }
    let kind = Kind::from_benefit(t.benefit(), cart);
    let stacking = t.stacking();
    let orig_base: i64 = lines.iter().map(|&l| ctx.totals[l as usize]).sum();
    let qty: u64 = lines.iter().map(|&l| ctx.qty[l as usize]).sum();
    let mut sh = Shared {
        template: t.id().clone(),
        name: t.name().to_owned(),
        place: (
            u32::try_from(policy.group_position(&stacking.group)).unwrap_or(u32::MAX),
            kind.phase(),
            -i64::from(stacking.priority),
            match policy.percentages {
                PercentPlace::BeforeFixed => 1 - kind.rank(),
                _ => kind.rank(),
            },
        ),
        lines,
        kind,
        min_subtotal: t.conditions().min_subtotal().as_ref().map_or(0, minor),
        min_qty: u64::from(t.conditions().min_quantity().unwrap_or(0)),
        orig_base,
        qty,
        group: stacking.group.clone(),
        exclusive: stacking.exclusive,
        with_promotions: stacking.with_promotions,
        per_order: t.limits().per_order(),
        sig: Vec::new(),
        alone: Err(Miss::NothingToSave),
        cheapest_first: Vec::new(),
        reasons: Vec::new(),
    };
    if let Some(max) = c.max_subtotal() {
        let max = minor(&max);
        if orig_base > max {
            reasons.push(Ineligible::AboveMaxSubtotal {
                max: Money::from_minor(max, cart.currency()),
                over: Money::from_minor(orig_base - max, cart.currency()),
            });
        }
    }
    if matches!(
        sh.kind,
        Kind::BuyGet { .. }
            | Kind::Fixed { .. }
            | Kind::PerUnit { .. }
            | Kind::Once { .. }
            | Kind::BuyXGetY { .. }
    ) {
        // The cart's order restricted to the offer's lines (ascending, so a binary search
        // tells membership): the same order as sorting them, the comparison being total.
        let by_value = ctx.by_value();
        sh.cheapest_first = if sh.lines.len() == by_value.len() {
            by_value.to_vec()
        } else {
            by_value
                .iter()
                .copied()
                .filter(|l| sh.lines.binary_search(l).is_ok())
                .collect()
        };
    }
    if currency_ok && !sh.lines.is_empty() {
        let mut state = ctx.fresh();
        sh.alone = apply(&sh, ctx, &mut state, policy, None);
        if let Err(m) = sh.alone {
            reasons.push(miss_reason(m, cart));
        }
    }
    if reasons.is_empty() && sh.alone.is_ok() {
        // Only usable offers are compared by behaviour.
        sh.sig = signature(&sh);
    }
    sh.reasons = reasons;
    sh
}

/// Prepares one offer: its instance checks (blocked, validity) plus its template's facts.
/// `Err` carries every reason it is not usable.
///
/// One reason per state: a blocked offer (used, held, voided…) gives only that reason, an
/// expired or not yet valid one only its validity (instants in the buyer's `offset`); only an
/// offer valid now gives the cart's reasons.
pub(crate) fn prepare(
    index: usize,
    offer: &Offer,
    shared: &Arc<Shared>,
    now: DateTime<Utc>,
    offset: FixedOffset,
    policy: &StackingPolicy,
) -> Result<Prepared, Vec<Ineligible>> {
    let mut reasons = Vec::new();
    if let Some(b) = &offer.blocked {
        return Err(vec![Ineligible::Unavailable { blocked: b.clone() }]);
    }
    if let Some(from) = offer.valid_from {
        if now < from {
            reasons.push(Ineligible::NotYetValid {
                from: from.with_timezone(&offset),
            });
        }
    }
    if let Some(until) = offer.valid_until {
        if now >= until {
            reasons.push(Ineligible::Expired {
                at: until.with_timezone(&offset),
            });
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    reasons.extend(shared.reasons.iter().cloned());
    let alone = match shared.alone {
        Ok(a) if reasons.is_empty() => a,
        _ => return Err(reasons),
    };
    let source = match offer.id {
        OfferId::Promotion(_) => 0,
        OfferId::Code(_) => 1,
        OfferId::Coupon(_) => 2,
    };
    let (group, phase, priority, rank) = shared.place;
    let is_promotion = source == 0;
    let source = match policy.promotion_place {
        PromotionPlace::Last => (source + 2) % 3,
        _ => source,
    };
    Ok(Prepared {
        offer: index,
        id: offer.id.clone(),
        shared: Arc::clone(shared),
        is_promotion,
        order: (group, phase, source, priority, rank),
        valid_until: offer.valid_until,
        alone,
        rank: 0,
        class: 0,
    })
}

/// The behaviour signature of a template (see [`Shared::sig`]).
fn signature(p: &Shared) -> Vec<i64> {
    let clamp = |x: i128| i64::try_from(x).unwrap_or(i64::MAX);
    let sat = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    let mut v = match &p.kind {
        Kind::Instant(a) => vec![0, *a],
        Kind::Threshold(tiers) => {
            let mut v = vec![1, tiers.len() as i64];
            v.extend(tiers.iter().flat_map(|(s, t)| [*s, *t]));
            v
        }
        Kind::Every { every, save, max } => vec![2, *every, *save, *max],
        Kind::Percent { num, den, max } => vec![3, clamp(*num), clamp(*den), *max],
        Kind::Shipping { cap } => vec![4, *cap],
        Kind::BuyGet { buy, get, max_free } => vec![5, sat(*buy), sat(*get), sat(*max_free)],
        Kind::Fixed {
            quantity,
            price,
            max_bundles,
        } => vec![6, sat(*quantity), *price, sat(*max_bundles)],
        Kind::PerUnit { amount, max_units } => vec![7, *amount, sat(*max_units)],
        Kind::PerLine { amount, max_lines } => vec![8, *amount, sat(*max_lines)],
        Kind::Once {
            dearest,
            amount,
            num,
            den,
        } => vec![9, i64::from(*dearest), *amount, clamp(*num), clamp(*den)],
        Kind::TieredPercent { tiers, max } => {
            let mut v = vec![10, tiers.len() as i64, *max];
            v.extend(
                tiers
                    .iter()
                    .flat_map(|(s, n, d)| [*s, clamp(*n), clamp(*d)]),
            );
            v
        }
        Kind::QuantityTiers { tiers, max } => {
            let mut v = vec![11, tiers.len() as i64, *max];
            v.extend(
                tiers
                    .iter()
                    .flat_map(|(u, n, d)| [sat(*u), clamp(*n), clamp(*d)]),
            );
            v
        }
        Kind::ShippingPercent { num, den } => vec![12, clamp(*num), clamp(*den)],
        Kind::ShippingPrice { price } => vec![13, *price],
        Kind::ItemsAndShipping {
            amount,
            num,
            den,
            max,
        } => vec![15, *amount, clamp(*num), clamp(*den), *max],
        Kind::BuyXGetY {
            buy,
            get,
            reward,
            max_units,
            in_buy,
        } => {
            let mut v = vec![14, sat(*buy), sat(*get), sat(*max_units)];
            v.extend(reward.sig());
            v.extend(in_buy.iter().map(|b| i64::from(*b)));
            v
        }
    };
    v.reserve(5 + p.lines.len());
    v.extend([
        p.min_subtotal,
        sat(p.min_qty),
        i64::from(p.exclusive),
        i64::from(p.with_promotions),
        p.lines.len() as i64,
    ]);
    v.extend(p.lines.iter().map(|&l| i64::from(l)));
    v
}

pub(crate) fn miss_reason(m: Miss, cart: &Cart) -> Ineligible {
    match m {
        Miss::SpendMore(x) => Ineligible::SpendMore {
            missing: Money::from_minor(x, cart.currency()),
        },
        Miss::MoreItems(n) => Ineligible::MoreItems {
            missing: u32::try_from(n).unwrap_or(u32::MAX),
        },
        Miss::NoShippingFee => Ineligible::NoShippingFee,
        Miss::NothingToSave => Ineligible::NothingToSave,
    }
}

/// Where an applied offer's saving went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Alloc {
    /// (line, amount) pairs, amounts above zero.
    pub lines: Vec<(u32, i64)>,
    pub shipping: i64,
}

/// Applies `p` to `state` (mutating it) and returns the saving, or why it does not apply.
/// When `alloc` is given, records where the saving went. On `Err` the state is unchanged.
pub(crate) fn apply(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
) -> Result<i64, Miss> {
    if p.qty < p.min_qty {
        return Err(Miss::MoreItems(p.min_qty - p.qty));
    }
    let residual_base: i64 = p.lines.iter().map(|&l| state.residual[l as usize]).sum();
    let threshold_base = match policy.threshold_base {
        ThresholdBase::Original => p.orig_base,
        ThresholdBase::AfterEarlierDiscounts => residual_base,
    };
    if threshold_base < p.min_subtotal {
        return Err(Miss::SpendMore(p.min_subtotal - threshold_base));
    }
    let amount = |s: i64| s.min(residual_base);
    let saving = match &p.kind {
        Kind::Instant(a) => amount(*a),
        Kind::Threshold(tiers) => {
            match tiers
                .iter()
                .rev()
                .find(|(spend, _)| *spend <= threshold_base)
            {
                Some((_, save)) => amount(*save),
                None => {
                    let first = tiers.first().map_or(0, |t| t.0);
                    return Err(Miss::SpendMore(first - threshold_base));
                }
            }
        }
        Kind::Every { every, save, max } => {
            let n = threshold_base / every;
            if n == 0 {
                return Err(Miss::SpendMore(every - threshold_base));
            }
            amount(n.saturating_mul(*save).min(*max))
        }
        Kind::Percent { num, den, max } => {
            if policy.rounding_scope != RoundingScope::PerOrder {
                return per_line_percent(p, ctx, state, policy, alloc, *num, *den, *max);
            }
            let s = div_round(i128::from(residual_base) * num, *den, policy.rounding);
            amount(i64::try_from(s).unwrap_or(i64::MAX).min(*max))
        }
        Kind::Shipping { cap } => {
            if state.shipping == 0 {
                return Err(Miss::NoShippingFee);
            }
            let s = state.shipping.min(*cap);
            state.shipping -= s;
            if let Some(a) = alloc {
                a.shipping = s;
            }
            return Ok(s);
        }
        Kind::BuyGet { buy, get, max_free } => {
            if p.qty < buy + get {
                return Err(Miss::MoreItems(buy + get - p.qty));
            }
            return unit_saving(p, ctx, state, policy, alloc, |units| {
                (units / (buy + get)).saturating_mul(*get).min(*max_free)
            });
        }
        Kind::TieredPercent { tiers, max } => {
            match tiers
                .iter()
                .rev()
                .find(|(spend, _, _)| *spend <= threshold_base)
            {
                Some((_, num, den)) => {
                    if policy.rounding_scope != RoundingScope::PerOrder {
                        return per_line_percent(p, ctx, state, policy, alloc, *num, *den, *max);
                    }
                    let s = div_round(i128::from(residual_base) * num, *den, policy.rounding);
                    amount(i64::try_from(s).unwrap_or(i64::MAX).min(*max))
                }
                None => {
                    let first = tiers.first().map_or(0, |t| t.0);
                    return Err(Miss::SpendMore(first - threshold_base));
                }
            }
        }
        Kind::QuantityTiers { tiers, max } => {
            match tiers.iter().rev().find(|(units, _, _)| *units <= p.qty) {
                Some((_, num, den)) => {
                    if policy.rounding_scope != RoundingScope::PerOrder {
                        return per_line_percent(p, ctx, state, policy, alloc, *num, *den, *max);
                    }
                    let s = div_round(i128::from(residual_base) * num, *den, policy.rounding);
                    amount(i64::try_from(s).unwrap_or(i64::MAX).min(*max))
                }
                None => {
                    let first = tiers.first().map_or(0, |t| t.0);
                    return Err(Miss::MoreItems(first.saturating_sub(p.qty)));
                }
            }
        }
        Kind::PerLine { amount, max_lines } => {
            // The dearest lines first (ties: the earlier line).
            let mut lines = p.lines.clone();
            lines.sort_by(|&a, &b| {
                state.residual[b as usize]
                    .cmp(&state.residual[a as usize])
                    .then(a.cmp(&b))
            });
            let parts: Vec<(u32, i64)> = lines
                .iter()
                .take(usize::try_from(*max_lines).unwrap_or(usize::MAX))
                .map(|&l| (l, (*amount).min(state.residual[l as usize])))
                .filter(|x| x.1 > 0)
                .collect();
            return commit_parts(state, alloc, parts);
        }
        Kind::ItemsAndShipping {
            amount,
            num,
            den,
            max,
        } => {
            let base = residual_base.saturating_add(state.shipping);
            let s = if *num == 0 {
                *amount
            } else {
                let s = div_round(i128::from(base) * num, *den, policy.rounding);
                i64::try_from(s).unwrap_or(i64::MAX).min(*max)
            };
            return spread_with_shipping(s.min(base), &p.lines, state, alloc);
        }
        Kind::BuyXGetY {
            buy,
            get,
            reward,
            max_units,
            in_buy,
        } => {
            return buy_x_get_y_saving(
                p, ctx, state, policy, alloc, *buy, *get, *reward, *max_units, in_buy,
            );
        }
        Kind::PerUnit { amount, max_units } => {
            return per_unit_saving(p, ctx, state, policy, alloc, *amount, *max_units);
        }
        Kind::Once {
            dearest,
            amount,
            num,
            den,
        } => {
            let order = by_unit_value(p, ctx, state);
            let pick = if *dearest {
                order.last()
            } else {
                order.first()
            };
            let Some(&l) = pick else {
                return Err(Miss::NothingToSave);
            };
            let unit = cum(
                state.residual[l as usize],
                1,
                ctx.qty[l as usize],
                policy.rounding,
            );
            let s = if *num == 0 {
                (*amount).min(unit)
            } else {
                let s = div_round(i128::from(unit) * num, *den, policy.rounding);
                i64::try_from(s).unwrap_or(unit).min(unit)
            };
            return commit_parts(state, alloc, vec![(l, s)]);
        }
        Kind::ShippingPercent { num, den } => {
            if state.shipping == 0 {
                return Err(Miss::NoShippingFee);
            }
            let s = div_round(i128::from(state.shipping) * num, *den, policy.rounding);
            let s = i64::try_from(s)
                .unwrap_or(state.shipping)
                .min(state.shipping);
            return take_shipping(state, alloc, s);
        }
        Kind::ShippingPrice { price } => {
            if state.shipping == 0 {
                return Err(Miss::NoShippingFee);
            }
            let s = state.shipping.saturating_sub(*price).max(0);
            return take_shipping(state, alloc, s);
        }
        Kind::Fixed {
            quantity,
            price,
            max_bundles,
        } => {
            return bundle_saving(
                p,
                ctx,
                state,
                policy,
                alloc,
                *quantity,
                *price,
                *max_bundles,
            );
        }
    };
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    spread(saving, &p.lines, state, alloc);
    Ok(saving)
}

/// A percentage rounded on each line ([`RoundingScope::PerLine`]) or unit
/// ([`RoundingScope::PerUnit`], for a line of equal units): each line saves its own rounded
/// share; when the sum passes the cap, the cap is apportioned instead.
#[allow(clippy::too_many_arguments)]
fn per_line_percent(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    num: i128,
    den: i128,
    max: i64,
) -> Result<i64, Miss> {
    let mut parts = Vec::with_capacity(p.lines.len());
    let mut total = 0i64;
    for &l in &p.lines {
        let r = state.residual[l as usize];
        let q = i128::from(ctx.qty[l as usize]);
        let s = if policy.rounding_scope == RoundingScope::PerUnit {
            // `r = q·a + b`: b units worth a + 1, the others a (each rounded on its own; the
            // saving grows with `r`, one unit at a time).
            let (a, b) = (i128::from(r) / q, i128::from(r) % q);
            b * div_round((a + 1) * num, den, policy.rounding)
                + (q - b) * div_round(a * num, den, policy.rounding)
        } else {
            div_round(i128::from(r) * num, den, policy.rounding)
        };
        let s = i64::try_from(s).unwrap_or(r).min(r);
        total = total.saturating_add(s);
        if s > 0 {
            parts.push((l, s));
        }
    }
    if total > max {
        spread(max, &p.lines, state, alloc);
        return Ok(max);
    }
    commit_parts(state, alloc, parts)
}

/// Takes `s` off the shipping fee; nothing to save when `s` is zero.
fn take_shipping(state: &mut State, alloc: Option<&mut Alloc>, s: i64) -> Result<i64, Miss> {
    if s <= 0 {
        return Err(Miss::NothingToSave);
    }
    state.shipping -= s;
    if let Some(a) = alloc {
        a.shipping = s;
    }
    Ok(s)
}

/// Takes `saving` off `lines` and the shipping fee in proportion to what is left of each (the
/// largest-remainder split, the fee last). Requires `0 ≤ saving ≤ Σ residual + shipping`.
fn spread_with_shipping(
    saving: i64,
    lines: &[u32],
    state: &mut State,
    alloc: Option<&mut Alloc>,
) -> Result<i64, Miss> {
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    let mut weights: Vec<i128> = lines
        .iter()
        .map(|&l| i128::from(state.residual[l as usize]))
        .collect();
    weights.push(i128::from(state.shipping));
    let shares = apportion_minor(i128::from(saving), &weights);
    let mut parts = Vec::with_capacity(lines.len());
    for (&l, s) in lines.iter().zip(&shares) {
        let s = i64::try_from(*s).unwrap_or(0);
        if s > 0 {
            parts.push((l, s));
        }
    }
    let ship = shares.last().map_or(0, |s| i64::try_from(*s).unwrap_or(0));
    state.shipping -= ship;
    for &(l, s) in &parts {
        state.residual[l as usize] -= s;
    }
    if let Some(a) = alloc {
        a.lines.extend(parts);
        a.shipping = ship;
    }
    Ok(saving)
}

/// Buy X get Y: the groups the units allow, then the cheapest reward units get the reward. A
/// unit in both sets counts once: as rewarded only as far as the groups can still be bought.
#[allow(clippy::too_many_arguments)]
fn buy_x_get_y_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    buy: u64,
    get: u64,
    reward: RewardKind,
    max_units: u64,
    in_buy: &[bool],
) -> Result<i64, Miss> {
    let in_reward = |l: usize| p.lines.binary_search(&(l as u32)).is_ok();
    // Units bought only, in both sets, rewarded only.
    let (mut bought, mut both, mut rewarded) = (0u64, 0u64, 0u64);
    for (l, &q) in ctx.qty.iter().enumerate() {
        match (in_buy.get(l).copied().unwrap_or(false), in_reward(l)) {
            (true, false) => bought += q,
            (true, true) => both += q,
            (false, true) => rewarded += q,
            (false, false) => {}
        }
    }
    let groups = ((bought + both) / buy)
        .min((rewarded + both) / get)
        .min((bought + both + rewarded) / (buy + get));
    if groups == 0 {
        // Units short for the first group, counting every unit once.
        let short = buy.saturating_sub(bought + both) + get.saturating_sub(rewarded);
        return Err(Miss::MoreItems(short.max(1)));
    }
    let mut left = groups.saturating_mul(get).min(max_units);
    // Units of both sets that can be rewarded while the groups are still bought.
    let mut shared_left = both.saturating_sub(groups.saturating_mul(buy).saturating_sub(bought));
    let mut parts = Vec::new();
    for l in by_unit_value(p, ctx, state) {
        if left == 0 {
            break;
        }
        let q = ctx.qty[l as usize];
        let mut k = left.min(q);
        if in_buy.get(l as usize).copied().unwrap_or(false) {
            k = k.min(shared_left);
            shared_left -= k;
        }
        if k == 0 {
            continue;
        }
        left -= k;
        let value = cum(state.residual[l as usize], k, q, policy.rounding);
        let s = reward.saving(value, k, policy.rounding);
        if s > 0 {
            parts.push((l, s));
        }
    }
    commit_parts(state, alloc, parts)
}

/// Per unit: `amount` off each unit (at most what is left of it), the dearest `max_units`.
fn per_unit_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    amount: i64,
    max_units: u64,
) -> Result<i64, Miss> {
    let mut left = max_units;
    let mut parts = Vec::new();
    for l in by_unit_value(p, ctx, state).into_iter().rev() {
        if left == 0 {
            break;
        }
        let q = ctx.qty[l as usize];
        let k = left.min(q);
        left -= k;
        let value = cum(state.residual[l as usize], k, q, policy.rounding);
        let each = i64::try_from(k).unwrap_or(i64::MAX).saturating_mul(amount);
        let s = each.min(value);
        if s > 0 {
            parts.push((l, s));
        }
    }
    commit_parts(state, alloc, parts)
}

/// Takes `saving` off `lines` in proportion to what is left of them: the largest-remainder
/// split of [`apportion`](crate::money::apportion) (ties to the earlier line), done in place.
/// Requires `0 ≤ saving ≤ Σ residual`.
fn spread(saving: i64, lines: &[u32], state: &mut State, alloc: Option<&mut Alloc>) {
    if alloc.is_none() && spread_fast(saving, lines, state) {
        return;
    }
    let sum: i128 = lines
        .iter()
        .map(|&l| i128::from(state.residual[l as usize]))
        .sum();
    if sum == 0 || saving == 0 {
        return;
    }
    let total = i128::from(saving);
    let mut given = 0i128;
    let mut rems: Vec<(i128, usize)> = Vec::with_capacity(lines.len());
    let mut parts: Vec<i64> = Vec::with_capacity(lines.len());
    for (k, &l) in lines.iter().enumerate() {
        let exact = total * i128::from(state.residual[l as usize]);
        let floor = exact / sum;
        given += floor;
        // floor ≤ residual, so it fits.
        parts.push(i64::try_from(floor).unwrap_or(0));
        let rem = exact % sum;
        if rem > 0 {
            rems.push((rem, k));
        }
    }
    let left = usize::try_from(total - given).unwrap_or(0);
    if left > 0 {
        rems.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for &(_, k) in rems.iter().take(left) {
            parts[k] += 1;
        }
    }
    let mut rec = alloc;
    for (&l, part) in lines.iter().zip(parts) {
        state.residual[l as usize] -= part;
        if let Some(a) = rec.as_deref_mut() {
            if part > 0 {
                a.lines.push((l, part));
            }
        }
    }
}

/// [`spread`] in `i64` when every product fits (the common case: no 128-bit division), with
/// no allocation unless some remainder is handed out; `false` (state untouched) otherwise.
fn spread_fast(saving: i64, lines: &[u32], state: &mut State) -> bool {
    let mut sum = 0i64;
    let mut top = 0i64;
    for &l in lines {
        let r = state.residual[l as usize];
        let Some(s) = sum.checked_add(r) else {
            return false;
        };
        sum = s;
        top = top.max(r);
    }
    if sum <= 0 || saving <= 0 || saving.checked_mul(top).is_none() {
        return sum == 0 || saving == 0;
    }
    let given: i64 = lines
        .iter()
        .map(|&l| saving * state.residual[l as usize] / sum)
        .sum();
    let left = (saving - given) as usize;
    if left == 0 {
        for &l in lines {
            let r = &mut state.residual[l as usize];
            *r -= saving * *r / sum;
        }
        return true;
    }
    // Largest remainders first, ties to the earlier line: a strict order, so the first
    // `left` after selection are exactly those `apportion` picks.
    let mut rems: Vec<(i64, usize)> = Vec::with_capacity(lines.len());
    for (k, &l) in lines.iter().enumerate() {
        let r = &mut state.residual[l as usize];
        let exact = saving * *r;
        *r -= exact / sum;
        let rem = exact % sum;
        if rem > 0 {
            rems.push((rem, k));
        }
    }
    let cmp = |a: &(i64, usize), b: &(i64, usize)| b.0.cmp(&a.0).then(a.1.cmp(&b.1));
    if left < rems.len() {
        rems.select_nth_unstable_by(left - 1, cmp);
    }
    for &(_, k) in rems.iter().take(left) {
        state.residual[lines[k] as usize] -= 1;
    }
    true
}

/// Value of the first `j` of a line's `q` units whose residual is `r`.
fn cum(r: i64, j: u64, q: u64, rounding: Rounding) -> i64 {
    if j >= q {
        return r;
    }
    i64::try_from(div_round(
        i128::from(r) * i128::from(j),
        i128::from(q),
        rounding,
    ))
    .unwrap_or(r)
}

/// Lines of `p` by residual unit value, cheapest first (ties by line index).
fn by_unit_value(p: &Shared, ctx: &CartCtx, state: &State) -> Vec<u32> {
    let untouched = p
        .lines
        .iter()
        .all(|&l| state.residual[l as usize] == ctx.totals[l as usize]);
    if untouched && !p.cheapest_first.is_empty() {
        return p.cheapest_first.clone();
    }
    // Earlier offers move few lines: the fresh order is nearly sorted, which the stable
    // (run-adaptive) sort handles in about linear time.
    let mut lines = if p.cheapest_first.is_empty() {
        p.lines.clone()
    } else {
        p.cheapest_first.clone()
    };
    lines.sort_by(|&a, &b| unit_value_cmp(a, b, ctx, state));
    lines
}

fn unit_value_cmp(a: u32, b: u32, ctx: &CartCtx, state: &State) -> Ordering {
    let (ra, qa) = (state.residual[a as usize], ctx.qty[a as usize]);
    let (rb, qb) = (state.residual[b as usize], ctx.qty[b as usize]);
    (i128::from(ra) * i128::from(qb))
        .cmp(&(i128::from(rb) * i128::from(qa)))
        .then(a.cmp(&b))
}

fn sort_by_unit_value(mut lines: Vec<u32>, ctx: &CartCtx, state: &State) -> Vec<u32> {
    lines.sort_unstable_by(|&a, &b| unit_value_cmp(a, b, ctx, state));
    lines
}

/// Buy-get: the `free(units)` cheapest units are free.
fn unit_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    free: impl Fn(u64) -> u64,
) -> Result<i64, Miss> {
    let mut left = free(p.qty);
    if left == 0 {
        return Err(Miss::MoreItems(1));
    }
    let mut parts = Vec::new();
    for l in by_unit_value(p, ctx, state) {
        if left == 0 {
            break;
        }
        let q = ctx.qty[l as usize];
        let k = left.min(q);
        left -= k;
        let s = cum(state.residual[l as usize], k, q, policy.rounding);
        if s > 0 {
            parts.push((l, s));
        }
    }
    commit_parts(state, alloc, parts)
}

fn commit_parts(
    state: &mut State,
    alloc: Option<&mut Alloc>,
    parts: Vec<(u32, i64)>,
) -> Result<i64, Miss> {
    let saving: i64 = parts.iter().map(|x| x.1).sum();
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    for &(l, s) in &parts {
        state.residual[l as usize] -= s;
    }
    if let Some(a) = alloc {
        a.lines.extend(parts);
    }
    Ok(saving)
}

/// Fixed price: bundles of `quantity` units, most expensive first, each for `price`.
#[allow(clippy::too_many_arguments)]
fn bundle_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    quantity: u64,
    price: i64,
    max_bundles: u64,
) -> Result<i64, Miss> {
    if p.qty < quantity {
        return Err(Miss::MoreItems(quantity - p.qty));
    }
    let mut order = by_unit_value(p, ctx, state);
    order.reverse();
    // Units taken so far from each line, by position in `order`.
    let mut taken = vec![0u64; order.len()];
    let mut pos = 0usize;
    let mut totals: Vec<(u32, i64)> = Vec::new();
    let mut bundles = 0u64;
    while bundles < max_bundles {
        let mut contrib: Vec<(u32, i64)> = Vec::new();
        let mut need = quantity;
        let mut cursor = pos;
        let mut took = taken.clone();
        while need > 0 && cursor < order.len() {
            let l = order[cursor];
            let q = ctx.qty[l as usize];
            let k = need.min(q - took[cursor]);
            let r = state.residual[l as usize];
            let v = cum(r, took[cursor] + k, q, policy.rounding)
                - cum(r, took[cursor], q, policy.rounding);
            took[cursor] += k;
            need -= k;
            contrib.push((l, v));
            if took[cursor] == q {
                cursor += 1;
            }
        }
        if need > 0 {
            break;
        }
        let value: i64 = contrib.iter().map(|c| c.1).sum();
        if value <= price {
            break;
        }
        let weights: Vec<i128> = contrib.iter().map(|c| i128::from(c.1)).collect();
        let shares = apportion_minor(i128::from(value - price), &weights);
        for ((l, _), s) in contrib.iter().zip(shares) {
            let s = i64::try_from(s).unwrap_or(0);
            if s > 0 {
                match totals.iter_mut().find(|t| t.0 == *l) {
                    Some(t) => t.1 += s,
                    None => totals.push((*l, s)),
                }
            }
        }
        taken = took;
        pos = cursor;
        bundles += 1;
    }
    if bundles == 0 {
        return Err(Miss::NothingToSave);
    }
    commit_parts(state, alloc, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64), so this unit test needs no dependency.
    fn next(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn spread_matches_apportion() {
        let mut seed = 7u64;
        for _ in 0..2_000 {
            let n = 1 + (next(&mut seed) % 11) as usize;
            let residual: Vec<i64> = (0..n).map(|_| (next(&mut seed) % 100_000) as i64).collect();
            let frac = next(&mut seed) % 1001;
            let sum: i64 = residual.iter().sum();
            let saving = (i128::from(sum) * i128::from(frac) / 1000) as i64;
            let lines: Vec<u32> = (0..residual.len() as u32).collect();
            let mut state = State {
                residual: residual.clone(),
                shipping: 0,
            };
            spread(saving, &lines, &mut state, None);
            let weights: Vec<i128> = residual.iter().map(|r| i128::from(*r)).collect();
            let expect = apportion_minor(i128::from(saving), &weights);
            let got: Vec<i128> = residual
                .iter()
                .zip(&state.residual)
                .map(|(a, b)| i128::from(a - b))
                .collect();
            assert_eq!(got, expect, "residual {residual:?}, saving {saving}");
        }
    }

    #[test]
    fn div_round_follows_each_strategy() {
        assert_eq!(div_round(5, 10, Rounding::HalfEven), 0);
        assert_eq!(div_round(15, 10, Rounding::HalfEven), 2);
        assert_eq!(div_round(25, 10, Rounding::HalfEven), 2);
        assert_eq!(div_round(25, 10, Rounding::HalfUp), 3);
        assert_eq!(div_round(21, 10, Rounding::Up), 3);
        assert_eq!(div_round(29, 10, Rounding::Down), 2);
        assert_eq!(div_round(0, 10, Rounding::Up), 0);
        assert_eq!(div_round(20, 10, Rounding::Up), 2);
    }
}
