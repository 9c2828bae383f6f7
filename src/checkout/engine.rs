//! The arithmetic of checkout, in whole minor units: prepared offers, the residual cart, and how
//! one offer applies to it. Pure and allocation-light; the public types live in the parent.
//!
//! ## The state and the lemma the search rests on
//! A [`State`] is what is left to pay: every unit of every line (kept as runs of equal value),
//! every shipping line's fee, and the gifts not yet given (see [`CartCtx`]). States are ordered:
//! `σ' ≤ σ` when, line by line, the units of `σ'` sorted dearest first are each at most the
//! units of `σ` so sorted, and every fee of `σ'` is at most the same fee of `σ`.
//!
//! **Lemma.** For every offer `c` and states `σ' ≤ σ`: (1) applying `c` to `σ` leaves a state
//! `≤ σ`; (2) `c`'s saving on `σ'` is at most its saving on `σ` (zero when it does not apply).
//!
//! (1): every application only lowers units or fees — an amount comes off a line's dearest
//! units ([`State::take`]), a unit offer lowers the units it takes, a shipping offer the fees it
//! reaches — and lowering some entries of a multiset lowers its sorted vector pointwise.
//!
//! (2), kind by kind. The amount kinds depend on a line only through what is left of it (the
//! sum of its units), which `≤` lowers: thresholds and minimum spends are reached no more
//! often, and `min`, `⌊·⌋`, a rounded percentage and a largest-remainder share are
//! non-decreasing. Per line: the sum of `min(amount, r)` over the `k` dearest lines is
//! non-decreasing in the `r`. The unit kinds take the `k`-th cheapest (or dearest) unit of the
//! scope for `k = 1, 2, …`, and the `k`-th smallest entry of a multiset is non-decreasing under
//! `≤`; each unit then saves `f(v)` for a non-decreasing `f` — `v` (free), `round(v·p)` (a
//! percentage, rounded on the unit), `v − min(v, price)`, `min(amount, v)` — so the sum is
//! non-decreasing. Buy X get Y's cap on units in both sets rewards the `k` cheapest of the
//! reward-only units together with the `m` cheapest of the shared ones, again order
//! statistics. A fixed price saves `Σ_b max(0, V_b − price)` over bundles `V_b` of consecutive
//! dearest units, each `V_b` a sum of order statistics; the first bundle not worth its price
//! ends the bundling, and as the `V_b` only fall that is the same sum. The group and unit
//! counts (`MoreItems`) do not depend on the state. Shipping kinds take `min`, a rounded
//! percentage or `max(0, fee − price)` of the fees they reach, and a gift its own line, whole.
//!
//! So every member of a combination saves at most what it saves on any earlier state — alone,
//! at most its saving alone — which is the bound both searches use, whatever the order the
//! members apply in (see [`select`](super::select#why-the-search-is-exact)).

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use rust_decimal::Decimal;

use super::reason::{Excluded, Ineligible, Named};
use super::{
    Offer, OfferId, OpenOrder, PercentPlace, PromotionPlace, RoundingScope, StackingPolicy,
    ThresholdBase,
};
use crate::cart::{Buyer, Cart};
use crate::id::{ShopId, StackingGroup, TemplateId};
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
    /// A gift: the virtual line `line` of the context (see [`CartCtx::gifts`]), taken off
    /// whole.
    Gift {
        line: u32,
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
    fn from_benefit(b: &Benefit, cart: &Cart, ctx: &CartCtx, template: &TemplateId) -> Kind {
        match b {
            Benefit::Gift { .. } => Kind::Gift {
                line: ctx.gift_line(template).unwrap_or(u32::MAX),
            },
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
///
/// Gifts are lines too: after the cart's lines, one virtual line per gift template of the
/// checkout, worth the gift's value, which only that gift covers. A gift applied takes its
/// line off whole (the line shows in the quote, original its value, final zero); a gift not
/// applied leaves its line untouched and out of the quote. So a gift's saving is bounded by
/// what is left to pay, like every other, and the search's bound needs no special case.
#[derive(Clone, Debug)]
pub(crate) struct CartCtx {
    pub totals: Vec<i64>,
    pub qty: Vec<u64>,
    pub shipping: i64,
    /// The shipping lines: the shop of each (none: reached by every offer) and its fee.
    pub ships: Vec<(Option<ShopId>, i64)>,
    /// Each gift template, its virtual line's index and its benefit.
    pub gifts: Vec<(TemplateId, u32, Benefit)>,
    /// Every line by undiscounted unit value, cheapest first (ties by line index): a unit
    /// offer's own order is this one restricted to its lines. Sorted when first needed.
    by_value: std::cell::OnceCell<Arc<[u32]>>,
    /// The cart's lines (gift lines aside), shared by every template scoped to everything.
    everything: std::cell::OnceCell<Arc<[u32]>>,
    /// Every shipping line, shared by every template reaching them all.
    all_ships: std::cell::OnceCell<Arc<[u32]>>,
    /// The cart's lines' amount and units (gift lines aside), for every template scoped to
    /// everything.
    everything_sums: std::cell::OnceCell<(i64, u64)>,
    /// No lines, shared by every template that keeps no unit order.
    no_lines: std::cell::OnceCell<Arc<[u32]>>,
    /// The last reason list of a template whose only reason is how far the cart is from it,
    /// shared with the next template that misses the cart by as much (a large catalogue
    /// repeats its minimums).
    last_miss: std::cell::RefCell<Option<(Miss, Arc<[Ineligible]>)>>,
}

impl CartCtx {
    pub fn new(cart: &Cart) -> CartCtx {
        CartCtx::of(
            (0..cart.lines().len())
                .map(|i| cart.line_total(i).as_ref().map_or(0, minor))
                .collect(),
            cart.lines().iter().map(|l| u64::from(l.quantity)).collect(),
            minor(&cart.shipping()),
            cart.shipping_lines()
                .iter()
                .map(|s| (s.shop.clone(), minor(&s.fee)))
                .collect(),
        )
    }

    /// Lines of these amounts and units, and this shipping: no gifts yet, nothing computed.
    fn of(
        totals: Vec<i64>,
        qty: Vec<u64>,
        shipping: i64,
        ships: Vec<(Option<ShopId>, i64)>,
    ) -> CartCtx {
        CartCtx {
            totals,
            qty,
            shipping,
            ships,
            gifts: Vec::new(),
            by_value: std::cell::OnceCell::new(),
            everything: std::cell::OnceCell::new(),
            all_ships: std::cell::OnceCell::new(),
            everything_sums: std::cell::OnceCell::new(),
            no_lines: std::cell::OnceCell::new(),
            last_miss: std::cell::RefCell::default(),
        }
    }

    /// The amount and units of the lines `0..n` (the cart's own lines), summed once per
    /// checkout.
    fn everything_sums(&self, n: usize) -> (i64, u64) {
        *self.everything_sums.get_or_init(|| {
            (
                self.totals.iter().take(n).sum(),
                self.qty.iter().take(n).sum(),
            )
        })
    }

    /// The lines `0..n` (the cart's own lines), one allocation per checkout.
    fn everything(&self, n: usize) -> Arc<[u32]> {
        Arc::clone(self.everything.get_or_init(|| (0..n as u32).collect()))
    }

    /// No lines, one allocation per checkout.
    fn no_lines(&self) -> Arc<[u32]> {
        Arc::clone(self.no_lines.get_or_init(|| Arc::new([])))
    }

    /// Every shipping line, one allocation per checkout.
    fn all_ships(&self) -> Arc<[u32]> {
        Arc::clone(
            self.all_ships
                .get_or_init(|| (0..self.ships.len() as u32).collect()),
        )
    }

    /// Adds the virtual line of a gift template (once per template id).
    pub fn add_gift(&mut self, t: &Template) {
        let Benefit::Gift {
            value, quantity, ..
        } = t.benefit()
        else {
            return;
        };
        if self.gift_line(t.id()).is_some() {
            return;
        }
        let total = minor(value).saturating_mul(i64::from(*quantity));
        let line = self.totals.len() as u32;
        self.totals.push(total);
        self.qty.push(u64::from(*quantity));
        self.gifts.push((t.id().clone(), line, t.benefit().clone()));
    }

    /// The virtual line of a gift template.
    pub fn gift_line(&self, template: &TemplateId) -> Option<u32> {
        self.gifts.iter().find(|g| &g.0 == template).map(|g| g.1)
    }

    /// Every line by undiscounted unit value, cheapest first (ties by line index).
    pub fn by_value(&self) -> &Arc<[u32]> {
        self.by_value.get_or_init(|| {
            let mut all: Vec<u32> = (0..self.totals.len() as u32).collect();
            all.sort_unstable_by(|&a, &b| {
                let (ta, qa) = (self.totals[a as usize], self.qty[a as usize]);
                let (tb, qb) = (self.totals[b as usize], self.qty[b as usize]);
                (i128::from(ta) * i128::from(qb))
                    .cmp(&(i128::from(tb) * i128::from(qa)))
                    .then(a.cmp(&b))
            });
            all.into()
        })
    }

    pub fn fresh(&self) -> State {
        State {
            residual: self.totals.clone(),
            shipping: self.shipping,
            ships: if self.ships.len() > 1 {
                self.ships.iter().map(|s| s.1).collect()
            } else {
                Vec::new()
            },
            uneven: None,
        }
    }
}

/// What is left to pay after the offers applied so far.
///
/// Units are priced one by one: each line's units are runs of equal remaining value. A line
/// whose units are its *even split* (`r mod q` units worth `⌊r / q⌋ + 1` minor units, the
/// others `⌊r / q⌋`, for `r` left of `q` units) needs nothing but `residual`: a fresh line is
/// one run, and an amount taken off a line takes its dearest units first, which keeps an even
/// line even. Only a line a unit offer changed unevenly (a unit made free, a bundle priced) is
/// listed in `uneven`, with its runs dearest first; the form is canonical (a line is listed
/// exactly when its runs are not the even split), so equal states compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct State {
    pub residual: Vec<i64>,
    pub shipping: i64,
    /// What is left of each shipping line, when the cart has several (`shipping` is their
    /// sum); empty for one.
    pub ships: Vec<i64>,
    /// Lines not at their even split, by line: runs `(value, units)`, dearest first.
    ///
    /// Shared behind an `Arc` (`None` when empty): the search clones states far more often
    /// than an offer changes a line's runs, which copies them then.
    pub uneven: Option<Arc<Vec<(u32, Runs)>>>,
}

/// Why an offer does not apply to a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Miss {
    SpendMore(i64),
    MoreItems(u64),
    NoShippingFee,
    NothingToSave,
}

/// Everything about one usable template on this cart and buyer: shared by every offer of the
/// template (a wallet holds many copies of popular templates), computed once per checkout.
#[derive(Debug)]
pub(crate) struct Shared {
    pub template: TemplateId,
    /// The template's name, as reasons show it (shared with the template).
    pub name: Arc<str>,
    /// Shared by every template scoped to everything.
    pub lines: Arc<[u32]>,
    /// The shipping lines the offer reaches (see [`CartCtx::ships`]); shared when it reaches
    /// all of them.
    pub ships: Arc<[u32]>,
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
    /// The saving alone on the whole cart.
    pub alone: i64,
    /// For unit offers, the lines by undiscounted unit value, cheapest first (the common case
    /// of a unit offer applying to untouched lines needs no sort).
    pub cheapest_first: Arc<[u32]>,
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
    /// Behaviour class (equal exactly when the order keys are and
    /// [`Prepared::same_order_class_cmp`] says so), numbered in
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
            name: Arc::clone(&self.name),
        }
    }

    /// Orders offers by behaviour: equal exactly when they behave identically (the order
    /// key, then [`same_order_class_cmp`](Prepared::same_order_class_cmp)).
    #[cfg(test)]
    pub fn class_cmp(&self, other: &Prepared) -> Ordering {
        self.order
            .cmp(&other.order)
            .then_with(|| self.same_order_class_cmp(other))
    }

    /// Orders two offers of the same order key by behaviour: equal exactly when they behave
    /// identically (one template, or templates of one signature and group).
    pub fn same_order_class_cmp(&self, other: &Prepared) -> Ordering {
        if Arc::ptr_eq(&self.shared, &other.shared) {
            Ordering::Equal
        } else {
            self.sig
                .cmp(&other.sig)
                .then_with(|| self.group.cmp(&other.group))
        }
    }

    /// The canonical order in which stacked offers apply. Offers that behave identically sit
    /// next to each other, so swapping one for another never changes the order of the rest.
    pub fn apply_cmp(&self, other: &Prepared) -> Ordering {
        self.order
            .cmp(&other.order)
            .then_with(|| self.same_order_apply_cmp(other))
    }

    /// [`apply_cmp`](Prepared::apply_cmp) of two offers of the same order key.
    pub fn same_order_apply_cmp(&self, other: &Prepared) -> Ordering {
        self.same_order_class_cmp(other)
            .then_with(|| {
                // Offers of one template (a wallet's copies) need no look at its id.
                if Arc::ptr_eq(&self.shared, &other.shared) {
                    Ordering::Equal
                } else {
                    self.template.cmp(&other.template)
                }
            })
            .then_with(|| self.id.cmp(&other.id))
    }

    /// The order key as one integer, ordered as the key: sorting many offers compares it
    /// first.
    pub fn packed_order(&self) -> u128 {
        let (group, phase, source, priority, kind) = self.order;
        u128::from(group) << 88
            | u128::from(phase) << 80
            | u128::from(source) << 72
            | u128::from(priority as u64 ^ (1 << 63)) << 8
            | u128::from(kind)
    }
}

/// What a checkout knows of one template on this cart and buyer, shared by every offer of it:
/// its prepared facts when its offers can be used, else every reason they cannot (never
/// empty), shared too.
#[derive(Debug)]
pub(crate) enum Facts {
    Usable(Arc<Shared>),
    Unusable(Arc<[Ineligible]>),
}

/// Checks everything about a template that does not depend on the coupon instance (currency,
/// audience, channel, schedule, scope) and computes its saving alone.
///
/// The reasons, in order: currency, audience, channel, schedule, no item in scope, required
/// items, maximum subtotal, then why the offer alone does not apply to the cart. That last is
/// asked of [`apply`] only when the cheap checks cannot tell: applied alone to the fresh cart
/// an offer first checks its minimum quantity, then its minimum spend on its lines' amount
/// (what is left of them is all of them, whatever the [`ThresholdBase`]), and those two
/// checks are made here the same way, so a template out of reach (a minimum spend a cart does
/// not reach, the common case of a large catalogue) costs neither its benefit's prepared form
/// nor an application.
pub(crate) fn facts(
    t: &Template,
    cart: &Cart,
    ctx: &CartCtx,
    buyer: &Buyer,
    now: DateTime<Utc>,
    policy: &StackingPolicy,
) -> Facts {
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
    let lines: Arc<[u32]> = if scope.is_everything() {
        ctx.everything(cart.lines().len())
    } else {
        // Sized up front: one allocation for the list and one for its shared copy.
        let mut covered = Vec::with_capacity(cart.lines().len());
        covered.extend(
            cart.lines()
                .iter()
                .enumerate()
                .filter(|(_, l)| scope.covers(l))
                .map(|(i, _)| i as u32),
        );
        Arc::from(covered)
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
    let (orig_base, qty) = if scope.is_everything() {
        ctx.everything_sums(cart.lines().len())
    } else {
        (
            lines.iter().map(|&l| ctx.totals[l as usize]).sum(),
            lines.iter().map(|&l| ctx.qty[l as usize]).sum(),
        )
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
    if !currency_ok || lines.is_empty() {
        // Not applied: the reasons above say why.
        return Facts::Unusable(reasons.into());
    }
    let min_subtotal = c.min_subtotal().as_ref().map_or(0, minor);
    let min_qty = u64::from(c.min_quantity().unwrap_or(0));
    // The first two checks of `apply` on the fresh cart, made without it.
    if qty < min_qty {
        return unusable(reasons, Miss::MoreItems(min_qty - qty), cart, ctx);
    }
    if orig_base < min_subtotal {
        return unusable(
            reasons,
            Miss::SpendMore(min_subtotal - orig_base),
            cart,
            ctx,
        );
    }
    let kind = Kind::from_benefit(t.benefit(), cart, ctx, t.id());
    let stacking = t.stacking();
    let mut sh = Shared {
        template: t.id().clone(),
        name: Arc::clone(t.shared_name()),
        place: (
            u32::try_from(policy.group_position(&stacking.group)).unwrap_or(u32::MAX),
            kind.phase(),
            -i64::from(stacking.priority),
            match policy.percentages {
                PercentPlace::BeforeFixed => 1 - kind.rank(),
                _ => kind.rank(),
            },
        ),
        ships: {
            let reaches = |shop: &Option<ShopId>| {
                shop.is_none()
                    || lines.iter().any(|&l| {
                        cart.lines()
                            .get(l as usize)
                            .is_some_and(|cl| cl.shop == *shop)
                    })
            };
            if ctx.ships.iter().all(|(shop, _)| reaches(shop)) {
                ctx.all_ships()
            } else {
                ctx.ships
                    .iter()
                    .enumerate()
                    .filter(|(_, (shop, _))| reaches(shop))
                    .map(|(i, _)| i as u32)
                    .collect()
            }
        },
        lines,
        kind,
        min_subtotal,
        min_qty,
        orig_base,
        qty,
        group: stacking.group.clone(),
        exclusive: stacking.exclusive,
        with_promotions: stacking.with_promotions,
        per_order: t.limits().per_order(),
        sig: Vec::new(),
        alone: 0,
        cheapest_first: ctx.no_lines(),
    };
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
            Arc::clone(by_value)
        } else {
            by_value
                .iter()
                .copied()
                .filter(|l| sh.lines.binary_search(l).is_ok())
                .collect()
        };
    }
    match saving_alone(&sh, ctx, policy) {
        Ok(alone) if reasons.is_empty() => {
            sh.alone = alone;
            // Only usable offers are compared by behaviour.
            sh.sig = signature(&sh);
            Facts::Usable(Arc::new(sh))
        }
        Ok(_) => Facts::Unusable(reasons.into()),
        Err(m) => unusable(reasons, m, cart, ctx),
    }
}

/// The facts of a template whose offers cannot be used: `reasons`, then why it misses the
/// cart. When that is its only reason (the common case of a large catalogue) the list is
/// shared with the template before it if that one missed the cart by as much.
fn unusable(mut reasons: Vec<Ineligible>, miss: Miss, cart: &Cart, ctx: &CartCtx) -> Facts {
    if reasons.is_empty() {
        if let Ok(mut last) = ctx.last_miss.try_borrow_mut() {
            let list = match last.as_ref() {
                Some((m, list)) if *m == miss => Arc::clone(list),
                _ => {
                    let list: Arc<[Ineligible]> = Arc::new([miss_reason(miss, cart)]);
                    *last = Some((miss, Arc::clone(&list)));
                    list
                }
            };
            return Facts::Unusable(list);
        }
    }
    reasons.push(miss_reason(miss, cart));
    Facts::Unusable(reasons.into())
}

/// Prepares one offer: its instance checks (blocked, validity) plus its template's facts.
/// `Err` carries every reason it is not usable.
///
/// One reason per state: a blocked offer (used, held, voided…) gives only that reason, an
/// expired or not yet valid one only its validity (instants in the buyer's `offset`); only an
/// offer valid now gives the cart's reasons (its template's, shared).
pub(crate) fn prepare(
    index: usize,
    offer: &Offer,
    facts: &Facts,
    now: DateTime<Utc>,
    offset: FixedOffset,
    policy: &StackingPolicy,
) -> Result<Prepared, Arc<[Ineligible]>> {
    if let Some(b) = &offer.blocked {
        return Err(Arc::new([Ineligible::Unavailable { blocked: b.clone() }]));
    }
    let mut reasons = Vec::new();
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
        return Err(reasons.into());
    }
    let shared = match facts {
        Facts::Usable(shared) => shared,
        Facts::Unusable(reasons) => return Err(Arc::clone(reasons)),
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
        alone: shared.alone,
        rank: 0,
        class: 0,
    })
}

/// The behaviour signature of a template (see [`Shared::sig`]).
fn signature(p: &Shared) -> Vec<i64> {
    let clamp = |x: i128| i64::try_from(x).unwrap_or(i64::MAX);
    let sat = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    // Sized once: the benefit's few numbers, then the lines and shipping fees it reads.
    let mut v = Vec::with_capacity(24 + p.lines.len() + p.ships.len());
    match &p.kind {
        Kind::Instant(a) => v.extend([0, *a]),
        Kind::Threshold(tiers) => {
            v.extend([1, tiers.len() as i64]);
            v.extend(tiers.iter().flat_map(|(s, t)| [*s, *t]));
        }
        Kind::Every { every, save, max } => v.extend([2, *every, *save, *max]),
        Kind::Percent { num, den, max } => v.extend([3, clamp(*num), clamp(*den), *max]),
        Kind::Shipping { cap } => v.extend([4, *cap]),
        Kind::BuyGet { buy, get, max_free } => v.extend([5, sat(*buy), sat(*get), sat(*max_free)]),
        Kind::Fixed {
            quantity,
            price,
            max_bundles,
        } => v.extend([6, sat(*quantity), *price, sat(*max_bundles)]),
        Kind::PerUnit { amount, max_units } => v.extend([7, *amount, sat(*max_units)]),
        Kind::PerLine { amount, max_lines } => v.extend([8, *amount, sat(*max_lines)]),
        Kind::Once {
            dearest,
            amount,
            num,
            den,
        } => v.extend([9, i64::from(*dearest), *amount, clamp(*num), clamp(*den)]),
        Kind::TieredPercent { tiers, max } => {
            v.extend([10, tiers.len() as i64, *max]);
            v.extend(
                tiers
                    .iter()
                    .flat_map(|(s, n, d)| [*s, clamp(*n), clamp(*d)]),
            );
        }
        Kind::QuantityTiers { tiers, max } => {
            v.extend([11, tiers.len() as i64, *max]);
            v.extend(
                tiers
                    .iter()
                    .flat_map(|(u, n, d)| [sat(*u), clamp(*n), clamp(*d)]),
            );
        }
        Kind::ShippingPercent { num, den } => v.extend([12, clamp(*num), clamp(*den)]),
        Kind::ShippingPrice { price } => v.extend([13, *price]),
        Kind::ItemsAndShipping {
            amount,
            num,
            den,
            max,
        } => v.extend([15, *amount, clamp(*num), clamp(*den), *max]),
        Kind::BuyXGetY {
            buy,
            get,
            reward,
            max_units,
            in_buy,
        } => {
            v.extend([14, sat(*buy), sat(*get), sat(*max_units)]);
            v.extend(reward.sig());
            v.extend(in_buy.iter().map(|b| i64::from(*b)));
        }
        Kind::Gift { line } => v.extend([16, i64::from(*line)]),
    }
    v.extend([
        p.min_subtotal,
        sat(p.min_qty),
        i64::from(p.exclusive),
        i64::from(p.with_promotions),
        p.lines.len() as i64,
    ]);
    v.extend(p.lines.iter().map(|&l| i64::from(l)));
    v.push(p.ships.len() as i64);
    v.extend(p.ships.iter().map(|&i| i64::from(i)));
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

/// Most stacking groups of one group position whose order is left open
/// ([`OpenOrder::Groups`]); further groups of the position keep the documented order after
/// them (8! = 40,320 orders at most per position).
pub(crate) const MAX_OPEN_GROUPS: usize = 8;

/// Every order `members` may apply in under the policy, the documented (canonical) order
/// first. With [`OpenOrder::Closed`] that is the only one; with [`OpenOrder::Groups`] the
/// stacking groups that share a position in [`StackingPolicy::group_order`] (all groups, when
/// it is empty) may also apply in any order among themselves, each group's members together
/// and in the documented order; positions keep their order.
///
/// The documented order is listed even when it is none of the group orders: when members of
/// two groups interleave in it (key 5 puts every fixed reduction before every percentage, key
/// 1 alone does not keep a position's groups apart), keeping each group's members together
/// gives other orders only. Everything else counts on the documented order being allowed:
/// [`best_order`] breaks ties towards it, a selection is checked (and an offer that saves
/// nothing named) and priced in it when no better order is valid, and an open order must
/// accept every set the closed one accepts. Without it a set valid only in the documented
/// order was accepted by `apply_exactly` yet invalid to the search, which then missed it.
pub(crate) fn allowed_orders<'a>(
    members: &[&'a Prepared],
    policy: &StackingPolicy,
) -> Vec<Vec<&'a Prepared>> {
    let mut sorted: Vec<&'a Prepared> = members.to_vec();
    sorted.sort_unstable_by_key(|p| p.rank);
    if policy.open_order == OpenOrder::Closed || sorted.len() < 2 {
        return vec![sorted];
    }
    let documented = sorted.clone();
    // Blocks of one group position (contiguous: the position is the first key), each a list
    // of groups in canonical order of their first member, each group its members.
    let mut blocks: Vec<Vec<Vec<&'a Prepared>>> = Vec::new();
    let mut pos: Option<u32> = None;
    for p in sorted {
        if pos != Some(p.order.0) {
            blocks.push(Vec::new());
            pos = Some(p.order.0);
        }
        let Some(block) = blocks.last_mut() else {
            continue;
        };
        match block.iter_mut().find(|g| g[0].group == p.group) {
            Some(g) => g.push(p),
            None => block.push(vec![p]),
        }
    }
    let mut orders: Vec<Vec<&'a Prepared>> = vec![Vec::new()];
    for block in &blocks {
        let open = block.len().min(MAX_OPEN_GROUPS);
        let perms = permutations(open);
        let mut next = Vec::with_capacity(orders.len() * perms.len());
        for prefix in &orders {
            for perm in &perms {
                let mut o = prefix.clone();
                for &g in perm {
                    o.extend_from_slice(&block[g]);
                }
                for g in &block[open..] {
                    o.extend_from_slice(g);
                }
                next.push(o);
            }
        }
        orders = next;
    }
    // The identity permutation of every position is the documented order exactly when no two
    // groups of a position interleave in it; otherwise the documented order comes first.
    let same = |o: &[&Prepared]| {
        o.len() == documented.len() && o.iter().zip(&documented).all(|(a, b)| std::ptr::eq(*a, *b))
    };
    if !orders.first().is_some_and(|o| same(o)) {
        orders.insert(0, documented);
    }
    orders
}

/// The permutations of `0..n` in lexicographic order (the identity first).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut p: Vec<usize> = (0..n).collect();
    loop {
        out.push(p.clone());
        // Next permutation.
        let Some(i) = (1..p.len()).rev().find(|&i| p[i - 1] < p[i]) else {
            return out;
        };
        let Some(j) = (i..p.len()).rev().find(|&j| p[j] > p[i - 1]) else {
            return out;
        };
        p.swap(i - 1, j);
        p[i..].reverse();
    }
}

/// The best order `members` may apply in: the largest total saving over
/// [`allowed_orders`] (ties: the earlier order, so the documented order when it is among the
/// best), with the state it leaves; `None` when no allowed order has every member saving
/// something. `spent` counts the applications.
pub(crate) fn best_order<'a>(
    members: &[&'a Prepared],
    ctx: &CartCtx,
    policy: &StackingPolicy,
    spent: &mut u64,
) -> Option<(Vec<&'a Prepared>, State, i64)> {
    let mut best: Option<(Vec<&'a Prepared>, State, i64)> = None;
    'orders: for order in allowed_orders(members, policy) {
        let mut state = ctx.fresh();
        let mut total = 0i64;
        for p in &order {
            *spent = spent.saturating_add(1);
            match apply(p, ctx, &mut state, policy, None) {
                Ok(s) => total += s,
                Err(_) => continue 'orders,
            }
        }
        if best.as_ref().is_none_or(|b| total > b.2) {
            best = Some((order, state, total));
        }
    }
    best
}

/// Where an applied offer's saving went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Alloc {
    /// (line, amount) pairs, amounts above zero.
    pub lines: Vec<(u32, i64)>,
    pub shipping: i64,
    /// (shipping line, amount) pairs, amounts above zero; they sum to `shipping`.
    pub ships: Vec<(u32, i64)>,
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
    apply_to(p, ctx, state, policy, alloc, true)
}

/// The saving of `p` applied alone to the fresh cart, or why it does not apply: [`apply`] on
/// a fresh state that is then dropped, so an amount offer's saving is not spread over its
/// lines (the saving is known before it is spread, which changes nothing but the state).
fn saving_alone(p: &Shared, ctx: &CartCtx, policy: &StackingPolicy) -> Result<i64, Miss> {
    let mut state = ctx.fresh();
    apply_to(p, ctx, &mut state, policy, None, false)
}

/// [`apply`]; with `spread_amounts` false, an amount offer's saving is returned without
/// taking it off the state (for [`saving_alone`], whose state is dropped).
fn apply_to(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    spread_amounts: bool,
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
            let fee = state.ship_left(ctx, &p.ships);
            if fee == 0 {
                return Err(Miss::NoShippingFee);
            }
            return take_shipping(ctx, state, &p.ships, alloc, fee.min(*cap));
        }
        Kind::BuyGet { buy, get, max_free } => {
            if p.qty < buy + get {
                return Err(Miss::MoreItems(buy + get - p.qty));
            }
            return unit_saving(p, ctx, state, alloc, |units| {
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
            let mut lines = p.lines.to_vec();
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
            return commit_parts(ctx, state, alloc, parts);
        }
        Kind::ItemsAndShipping {
            amount,
            num,
            den,
            max,
        } => {
            let base = residual_base.saturating_add(state.ship_left(ctx, &p.ships));
            let s = if *num == 0 {
                *amount
            } else {
                let s = div_round(i128::from(base) * num, *den, policy.rounding);
                i64::try_from(s).unwrap_or(i64::MAX).min(*max)
            };
            return spread_with_shipping(s.min(base), p, ctx, state, alloc);
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
            return per_unit_saving(p, ctx, state, alloc, *amount, *max_units);
        }
        Kind::Once {
            dearest,
            amount,
            num,
            den,
        } => {
            return once_saving(p, ctx, state, policy, alloc, *dearest, *amount, *num, *den);
        }
        Kind::ShippingPercent { num, den } => {
            let fee = state.ship_left(ctx, &p.ships);
            if fee == 0 {
                return Err(Miss::NoShippingFee);
            }
            let s = div_round(i128::from(fee) * num, *den, policy.rounding);
            let s = i64::try_from(s).unwrap_or(fee).min(fee);
            return take_shipping(ctx, state, &p.ships, alloc, s);
        }
        Kind::ShippingPrice { price } => {
            if state.ship_left(ctx, &p.ships) == 0 {
                return Err(Miss::NoShippingFee);
            }
            // Each shipment reached costs at most `price`.
            let parts: Vec<(u32, i64)> = p
                .ships
                .iter()
                .map(|&i| (i, state.ship_fee(ctx, i).saturating_sub(*price).max(0)))
                .collect();
            return take_ship_parts(ctx, state, alloc, &parts);
        }
        Kind::Gift { line } => {
            let s = state.residual.get(*line as usize).copied().unwrap_or(0);
            return commit_parts(ctx, state, alloc, vec![(*line, s)]);
        }
        Kind::Fixed {
            quantity,
            price,
            max_bundles,
        } => {
            return bundle_saving(p, ctx, state, alloc, *quantity, *price, *max_bundles);
        }
    };
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    if spread_amounts {
        spread(saving, &p.lines, ctx, state, alloc);
    }
    Ok(saving)
}

/// A percentage rounded on each line ([`RoundingScope::PerLine`]) or unit
/// ([`RoundingScope::PerUnit`]: each run of equal units, each unit rounded on its own): each
/// line saves its own rounded share; when the sum passes the cap, the cap is apportioned
/// instead.
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
    let per_unit = policy.rounding_scope == RoundingScope::PerUnit;
    let mut parts = Vec::with_capacity(p.lines.len());
    let mut changes: Vec<Change> = Vec::new();
    let mut total = 0i64;
    for &l in p.lines.iter() {
        let r = state.residual[l as usize];
        let s = if per_unit {
            let mut s = 0i128;
            for (v, c) in state.runs(ctx, l) {
                let d = unit_percent(v, num, den, policy.rounding);
                s += i128::from(d) * i128::from(c);
                if d > 0 {
                    changes.push((l, v, c, [(v - d, c), (0, 0)]));
                }
            }
            s
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
        spread(max, &p.lines, ctx, state, alloc);
        return Ok(max);
    }
    if per_unit {
        return commit_units(ctx, state, alloc, changes);
    }
    commit_parts(ctx, state, alloc, parts)
}

/// Takes `s` off the shipping lines `ships` in proportion to what is left of each (the
/// largest-remainder split); nothing to save when `s` is zero.
fn take_shipping(
    ctx: &CartCtx,
    state: &mut State,
    ships: &[u32],
    alloc: Option<&mut Alloc>,
    s: i64,
) -> Result<i64, Miss> {
    if s <= 0 {
        return Err(Miss::NothingToSave);
    }
    if let [i] = ships {
        return take_ship_parts(ctx, state, alloc, &[(*i, s)]);
    }
    let weights: Vec<i128> = ships
        .iter()
        .map(|&i| i128::from(state.ship_fee(ctx, i)))
        .collect();
    let parts: Vec<(u32, i64)> = ships
        .iter()
        .zip(apportion_minor(i128::from(s), &weights))
        .map(|(&i, x)| (i, i64::try_from(x).unwrap_or(0)))
        .collect();
    take_ship_parts(ctx, state, alloc, &parts)
}

/// Takes each `(shipping line, amount)` off its line; nothing to save when they sum to zero.
fn take_ship_parts(
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    parts: &[(u32, i64)],
) -> Result<i64, Miss> {
    let s: i64 = parts.iter().map(|p| p.1).sum();
    if s <= 0 {
        return Err(Miss::NothingToSave);
    }
    for &(i, x) in parts {
        state.take_ship(ctx, i, x);
    }
    if let Some(a) = alloc {
        a.shipping = s;
        a.ships = parts.iter().copied().filter(|p| p.1 > 0).collect();
    }
    Ok(s)
}

/// Takes `saving` off the offer's lines and the shipping lines it reaches in proportion to
/// what is left of each (the largest-remainder split, the fees last). Requires
/// `0 ≤ saving ≤ Σ residual + shipping reached`.
fn spread_with_shipping(
    saving: i64,
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
) -> Result<i64, Miss> {
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    let lines = &p.lines;
    let mut weights: Vec<i128> = lines
        .iter()
        .map(|&l| i128::from(state.residual[l as usize]))
        .collect();
    weights.extend(p.ships.iter().map(|&i| i128::from(state.ship_fee(ctx, i))));
    let shares = apportion_minor(i128::from(saving), &weights);
    let mut parts = Vec::with_capacity(lines.len());
    for (&l, s) in lines.iter().zip(&shares) {
        let s = i64::try_from(*s).unwrap_or(0);
        if s > 0 {
            parts.push((l, s));
        }
    }
    let ship_parts: Vec<(u32, i64)> = p
        .ships
        .iter()
        .zip(&shares[lines.len()..])
        .map(|(&i, s)| (i, i64::try_from(*s).unwrap_or(0)))
        .collect();
    let ship: i64 = ship_parts.iter().map(|x| x.1).sum();
    for &(i, x) in &ship_parts {
        state.take_ship(ctx, i, x);
    }
    for &(l, s) in &parts {
        state.take(ctx, l, s);
    }
    if let Some(a) = alloc {
        a.lines.extend(parts);
        a.shipping = ship;
        a.ships = ship_parts.into_iter().filter(|x| x.1 > 0).collect();
    }
    Ok(saving)
}

impl State {
    /// What is left of shipping line `i`.
    fn ship_fee(&self, ctx: &CartCtx, i: u32) -> i64 {
        if ctx.ships.len() > 1 {
            self.ships.get(i as usize).copied().unwrap_or(0)
        } else {
            self.shipping
        }
    }

    /// What is left of the shipping lines `ships`, together.
    fn ship_left(&self, ctx: &CartCtx, ships: &[u32]) -> i64 {
        ships.iter().map(|&i| self.ship_fee(ctx, i)).sum()
    }

    /// Takes `s` off shipping line `i`.
    fn take_ship(&mut self, ctx: &CartCtx, i: u32, s: i64) {
        self.shipping -= s;
        if ctx.ships.len() > 1 {
            if let Some(f) = self.ships.get_mut(i as usize) {
                *f -= s;
            }
        }
    }
}

/// The even split of `r` minor units over `q` units, dearest first: `r mod q` units worth
/// `⌊r / q⌋ + 1`, the others `⌊r / q⌋` (runs of zero units left out by the callers).
fn even_runs(r: i64, q: u64) -> [(i64, u64); 2] {
    let Ok(qi) = i64::try_from(q) else {
        return [(0, 0), (0, 0)];
    };
    if qi == 0 {
        return [(0, 0), (0, 0)];
    }
    let (a, b) = (r / qi, (r % qi) as u64);
    [(a + 1, b), (a, q - b)]
}

/// [`even_runs`] as a list, without empty runs.
fn even(r: i64, q: u64) -> Vec<(i64, u64)> {
    even_runs(r, q).into_iter().filter(|x| x.1 > 0).collect()
}

/// Whether `runs` (normalised) are the even split of `r` over `q` units.
fn is_even(runs: &[(i64, u64)], r: i64, q: u64) -> bool {
    let mut want = even_runs(r, q).into_iter().filter(|x| x.1 > 0);
    runs.iter().all(|x| want.next() == Some(*x)) && want.next().is_none()
}

/// `total` minor units over `k` units as evenly as they go, dearest first (two runs at most;
/// a run may be empty).
fn even_pair(total: i128, k: u64) -> [(i64, u64); 2] {
    let kk = i128::from(k.max(1));
    let (a, b) = (total / kk, total % kk);
    let a = i64::try_from(a).unwrap_or(0);
    let b = u64::try_from(b).unwrap_or(0);
    [(a + 1, b), (a, k - b)]
}

/// Sorts runs dearest first, merges equal values, drops empty runs (in place).
fn normalize(runs: &mut Vec<(i64, u64)>) {
    let w = normalize_in(runs);
    runs.truncate(w);
}

/// [`normalize`] on a slice: the normalised runs come first; returns how many they are.
fn normalize_in(runs: &mut [(i64, u64)]) -> usize {
    let mut n = 0usize;
    for i in 0..runs.len() {
        if runs[i].1 > 0 {
            runs[n] = runs[i];
            n += 1;
        }
    }
    let runs = &mut runs[..n];
    runs.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
    let mut w = 0usize;
    for i in 0..runs.len() {
        if w > 0 && runs[w - 1].0 == runs[i].0 {
            runs[w - 1].1 += runs[i].1;
        } else {
            runs[w] = runs[i];
            w += 1;
        }
    }
    w
}

/// Takes `s` off runs (dearest first), the dearest units first: they are levelled down to
/// the next value, then together to the next, and what is left of `s` is spread evenly over
/// the levelled units. Requires `0 ≤ s ≤ Σ value × count`. In place: the levelled runs are
/// replaced by at most two.
fn level(runs: &mut Vec<(i64, u64)>, s: i64) {
    let mut rem = i128::from(s);
    let mut top = 0i128; // units levelled so far
    let mut at = runs.first().map_or(0, |r| i128::from(r.0));
    let mut k = 0usize;
    loop {
        while k < runs.len() && i128::from(runs[k].0) == at {
            top += i128::from(runs[k].1);
            k += 1;
        }
        let next = runs.get(k).map_or(0, |r| i128::from(r.0));
        let cost = top * (at - next);
        if rem <= cost || k == runs.len() {
            let total = (top * at - rem).max(0);
            let top_units = u64::try_from(top).unwrap_or(0);
            let [hi, lo] = even_pair(total, top_units);
            // `k ≥ 1` runs become `hi` and `lo` (either may be empty).
            runs[0] = hi;
            if k >= 2 {
                runs[1] = lo;
                runs.drain(2..k);
            } else {
                runs.insert(1, lo);
            }
            normalize(runs);
            return;
        }
        rem -= cost;
        at = next;
    }
}

impl State {
    /// The lines not at their even split.
    fn uneven(&self) -> &[(u32, Runs)] {
        self.uneven.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Where line `l` is in [`State::uneven`], or where it would go.
    fn find_uneven(&self, l: u32) -> Result<usize, usize> {
        self.uneven().binary_search_by_key(&l, |u| u.0)
    }

    /// The uneven lines, to change (copied if shared).
    fn uneven_mut(&mut self) -> &mut Vec<(u32, Runs)> {
        Arc::make_mut(self.uneven.get_or_insert_with(Default::default))
    }

    /// Keeps the form canonical: no uneven lines is `None`.
    fn tidy(&mut self) {
        if self.uneven.as_ref().is_some_and(|u| u.is_empty()) {
            self.uneven = None;
        }
    }

    /// The runs of line `l`, dearest first: its own when uneven, else the even split of what
    /// is left of it.
    pub fn runs(&self, ctx: &CartCtx, l: u32) -> Vec<(i64, u64)> {
        match self.find_uneven(l) {
            Ok(i) => self.uneven()[i].1.clone(),
            Err(_) => even(self.residual[l as usize], ctx.qty[l as usize]),
        }
    }

    /// Sets the runs of line `l` (and so what is left of it), keeping the canonical form: a
    /// line is listed in `uneven` exactly when its runs are not the even split.
    #[cfg(test)]
    fn set_runs(&mut self, ctx: &CartCtx, l: u32, mut runs: Vec<(i64, u64)>) {
        normalize(&mut runs);
        self.set_normal_runs(ctx, l, &runs);
    }

    /// [`set_runs`](State::set_runs) with runs already normalised: they are copied only when
    /// the line stays uneven.
    fn set_normal_runs(&mut self, ctx: &CartCtx, l: u32, runs: &[(i64, u64)]) {
        let total: i128 = runs
            .iter()
            .map(|&(v, c)| i128::from(v) * i128::from(c))
            .sum();
        let r = i64::try_from(total).unwrap_or(i64::MAX);
        self.residual[l as usize] = r;
        let is_even = is_even(runs, r, ctx.qty[l as usize]);
        match (self.find_uneven(l), is_even) {
            (Ok(i), true) => {
                self.uneven_mut().remove(i);
                self.tidy();
            }
            (Ok(i), false) => {
                let own = &mut self.uneven_mut()[i].1;
                own.clear();
                own.extend_from_slice(runs);
            }
            (Err(_), true) => {}
            (Err(i), false) => self.uneven_mut().insert(i, (l, runs.to_vec())),
        }
    }

    /// Takes the amount `s` off line `l`, its dearest units first (see [`level`]). An even
    /// line stays even, so only lines a unit offer touched carry runs.
    fn take(&mut self, ctx: &CartCtx, l: u32, s: i64) {
        if s == 0 {
            return;
        }
        match self.find_uneven(l) {
            Err(_) => self.residual[l as usize] -= s,
            Ok(i) => {
                let r = self.residual[l as usize] - s;
                self.residual[l as usize] = r;
                let q = ctx.qty[l as usize];
                let uneven = self.uneven_mut();
                level(&mut uneven[i].1, s);
                if is_even(&uneven[i].1, r, q) {
                    uneven.remove(i);
                    self.tidy();
                }
            }
        }
    }
}

/// A run of one line's units, as a unit offer walks them.
#[derive(Clone, Copy, Debug)]
struct Piece {
    line: u32,
    value: i64,
    count: u64,
}

/// The units of `p`'s lines as runs, cheapest first (ties: the earlier line); reversed, the
/// dearest first (ties: the later line).
fn pieces(p: &Shared, ctx: &CartCtx, state: &State) -> Vec<Piece> {
    if untouched(p, ctx, state) {
        // Untouched lines are one run each, already in order.
        return runs_of(&p.cheapest_first, ctx, state);
    }
    let mut out = runs_of(&p.lines, ctx, state);
    out.sort_by(|a, b| a.value.cmp(&b.value).then(a.line.cmp(&b.line)));
    out
}

/// Whether every line of `p` is as the cart has it and a cheapest-first order of them is at
/// hand (then [`runs_of`] over it is already in order).
fn untouched(p: &Shared, ctx: &CartCtx, state: &State) -> bool {
    !p.cheapest_first.is_empty()
        && p.lines.iter().all(|&l| {
            state.residual[l as usize] == ctx.totals[l as usize] && state.find_uneven(l).is_err()
        })
}

/// The non-empty runs of units of `lines`, line by line in the order given.
fn runs_of(lines: &[u32], ctx: &CartCtx, state: &State) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(lines.len() + 2);
    for &l in lines {
        let push = |(value, count): (i64, u64)| {
            if count > 0 {
                out.push(Piece {
                    line: l,
                    value,
                    count,
                });
            }
        };
        match state.find_uneven(l) {
            Ok(i) => state.uneven()[i].1.iter().copied().for_each(push),
            Err(_) => even_runs(state.residual[l as usize], ctx.qty[l as usize])
                .into_iter()
                .for_each(push),
        }
    }
    out
}

/// The first runs of [`pieces`] (cheapest first) or of its reverse (`dearest`), as many as a
/// walk taking at most `units` units needs: every run holds at least one unit, so a walk that
/// takes each run whole until it has `units` never reaches run `units + 1`. Exactly that
/// prefix of the full order (ties: the earlier line, reversed the later; runs of one line
/// have distinct values, so the order is strict), by partial selection instead of a sort of
/// every run. `units == 0` gives the full order.
fn pieces_first(p: &Shared, ctx: &CartCtx, state: &State, units: u64, dearest: bool) -> Vec<Piece> {
    let m = usize::try_from(units).unwrap_or(usize::MAX);
    if untouched(p, ctx, state) {
        // Already in order: the lines' runs from the cheapest end (or, reversed, from the
        // dearest), until the prefix is long enough.
        if units == 0 {
            let mut out = runs_of(&p.cheapest_first, ctx, state);
            if dearest {
                out.reverse();
            }
            return out;
        }
        let mut out: Vec<Piece> = Vec::with_capacity(m.min(p.cheapest_first.len() + 2));
        let mut line_runs: Vec<Piece> = Vec::new();
        let mut take = |l: u32, out: &mut Vec<Piece>| {
            line_runs.clear();
            for_runs(l, ctx, state, |pc| line_runs.push(pc));
            if dearest {
                out.extend(line_runs.iter().rev());
            } else {
                out.extend_from_slice(&line_runs);
            }
            out.len() >= m
        };
        if dearest {
            for &l in p.cheapest_first.iter().rev() {
                if take(l, &mut out) {
                    break;
                }
            }
        } else {
            for &l in p.cheapest_first.iter() {
                if take(l, &mut out) {
                    break;
                }
            }
        }
        out.truncate(m);
        return out;
    }
    let cmp = |a: &Piece, b: &Piece| {
        let o = a.value.cmp(&b.value).then(a.line.cmp(&b.line));
        if dearest { o.reverse() } else { o }
    };
    if units > 0 && m <= SMALL_PREFIX {
        // The first `m` in order, kept sorted while the runs go by: no list of every run. The
        // order is strict, so the kept runs do not depend on the order the lines are read in.
        let mut out: Vec<Piece> = Vec::with_capacity(m + 1);
        let keep = |out: &mut Vec<Piece>, pc: Piece| {
            if out.len() < m || out.last().is_some_and(|x| cmp(&pc, x).is_lt()) {
                let at = out.partition_point(|x| cmp(x, &pc).is_lt());
                out.insert(at, pc);
                out.truncate(m);
            }
        };
        if dearest && !p.cheapest_first.is_empty() {
            // The dearest runs: the uneven lines' runs as they are, then the even lines from
            // the dearest in the cart's order, stopping at the first whose units are all worth
            // less than the last run kept. An even line's units are worth at most
            // `⌈residual / qty⌉ ≤ ⌈total / qty⌉` (what is left of a line never grows), that
            // ceiling never rises along the order (it is by `total / qty`), and a run worth
            // less than the last of `m` kept runs comes after all of them; so no even line
            // from there on has a run among the first `m`.
            for (l, runs) in state.uneven() {
                if p.lines.binary_search(l).is_ok() {
                    for &(value, count) in runs {
                        if count > 0 {
                            keep(
                                &mut out,
                                Piece {
                                    line: *l,
                                    value,
                                    count,
                                },
                            );
                        }
                    }
                }
            }
            for &l in p.cheapest_first.iter().rev() {
                if state.find_uneven(l).is_ok() {
                    continue;
                }
                let (t, q) = (ctx.totals[l as usize], ctx.qty[l as usize]);
                let worth = match i64::try_from(q) {
                    Ok(qi) if qi > 0 && t >= 0 => Some(t / qi + i64::from(t % qi != 0)),
                    _ => None,
                };
                if let (Some(last), Some(worth)) = (out.get(m - 1), worth) {
                    if worth < last.value {
                        break;
                    }
                }
                for_runs(l, ctx, state, |pc| keep(&mut out, pc));
            }
            return out;
        }
        for &l in p.lines.iter() {
            for_runs(l, ctx, state, |pc| keep(&mut out, pc));
        }
        return out;
    }
    let mut out = runs_of(&p.lines, ctx, state);
    if units > 0 && m < out.len() {
        out.select_nth_unstable_by(m - 1, cmp);
        out.truncate(m);
    }
    out.sort_unstable_by(cmp);
    out
}

/// Prefixes of at most this many runs are selected by insertion (see [`pieces_first`]).
const SMALL_PREFIX: usize = 16;

/// Each non-empty run of line `l`, in the order [`runs_of`] lists them.
fn for_runs(l: u32, ctx: &CartCtx, state: &State, mut f: impl FnMut(Piece)) {
    let mut push = |(value, count): (i64, u64)| {
        if count > 0 {
            f(Piece {
                line: l,
                value,
                count,
            });
        }
    };
    match state.find_uneven(l) {
        Ok(i) => state.uneven()[i].1.iter().copied().for_each(&mut push),
        Err(_) => even_runs(state.residual[l as usize], ctx.qty[l as usize])
            .into_iter()
            .for_each(push),
    }
}

/// Runs of units `(value, units)`, dearest first.
type Runs = Vec<(i64, u64)>;

/// Units a unit offer changed: `count` units of `line` worth `value` each become `to`.
type Change = (u32, i64, u64, [(i64, u64); 2]);

/// Applies `changes` (nothing when they save nothing): each line's runs lose the units taken
/// and gain what they became; the saving of each line is what it lost. Every line's new runs
/// are built once, in one buffer, before anything is changed; only a line left uneven keeps
/// a list of its own.
fn commit_units(
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    mut changes: Vec<Change>,
) -> Result<i64, Miss> {
    changes.sort_by_key(|c| c.0);
    // The lines' new runs one after another, and per line: line, end in `buf`, saving.
    let mut buf: Vec<(i64, u64)> = Vec::with_capacity(4 * changes.len() + 4);
    let mut lines: Vec<(u32, usize, i64)> = Vec::with_capacity(changes.len());
    let mut total = 0i64;
    let mut i = 0;
    while i < changes.len() {
        let l = changes[i].0;
        let start = buf.len();
        for_runs(l, ctx, state, |pc| buf.push((pc.value, pc.count)));
        while i < changes.len() && changes[i].0 == l {
            let (_, value, count, to) = changes[i];
            if let Some(r) = buf[start..].iter_mut().find(|r| r.0 == value) {
                r.1 = r.1.saturating_sub(count);
            }
            buf.extend(to.iter().filter(|t| t.1 > 0));
            i += 1;
        }
        let end = start + normalize_in(&mut buf[start..]);
        buf.truncate(end);
        let after: i128 = buf[start..]
            .iter()
            .map(|&(v, c)| i128::from(v) * i128::from(c))
            .sum();
        let saved = i64::try_from(i128::from(state.residual[l as usize]) - after).unwrap_or(0);
        if saved > 0 {
            total = total.saturating_add(saved);
            lines.push((l, end, saved));
        } else {
            buf.truncate(start);
        }
    }
    if total <= 0 {
        return Err(Miss::NothingToSave);
    }
    let mut rec = alloc;
    let mut start = 0usize;
    for (l, end, saved) in lines {
        state.set_normal_runs(ctx, l, &buf[start..end]);
        start = end;
        if let Some(a) = rec.as_deref_mut() {
            a.lines.push((l, saved));
        }
    }
    Ok(total)
}

/// A percentage `num / den` of one unit worth `v`, rounded on its own, at most `v`.
fn unit_percent(v: i64, num: i128, den: i128, rounding: Rounding) -> i64 {
    i64::try_from(div_round(i128::from(v) * num, den, rounding))
        .unwrap_or(v)
        .min(v)
}

/// Buy X get Y: the groups the units allow, then the cheapest reward units get the reward,
/// each unit on its own. A unit in both sets counts once: as rewarded only as far as the
/// groups can still be bought.
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
    let mut changes = Vec::new();
    for pc in pieces(p, ctx, state) {
        if left == 0 {
            break;
        }
        let mut k = left.min(pc.count);
        if in_buy.get(pc.line as usize).copied().unwrap_or(false) {
            k = k.min(shared_left);
            shared_left -= k;
        }
        if k == 0 {
            continue;
        }
        left -= k;
        let to = match reward {
            RewardKind::Free => 0,
            RewardKind::Percent { num, den } => {
                pc.value - unit_percent(pc.value, num, den, policy.rounding)
            }
            RewardKind::Price(price) => pc.value.min(price),
        };
        changes.push((pc.line, pc.value, k, [(to, k), (0, 0)]));
    }
    commit_units(ctx, state, alloc, changes)
}

/// Per unit: `amount` off each unit (at most what is left of it), the dearest `max_units`.
fn per_unit_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    amount: i64,
    max_units: u64,
) -> Result<i64, Miss> {
    let mut left = max_units;
    let mut changes = Vec::new();
    for pc in pieces_first(p, ctx, state, max_units, true) {
        if left == 0 {
            break;
        }
        let k = left.min(pc.count);
        left -= k;
        let to = pc.value - amount.min(pc.value);
        changes.push((pc.line, pc.value, k, [(to, k), (0, 0)]));
    }
    commit_units(ctx, state, alloc, changes)
}

/// Apply once: an amount (`num == 0`) or a percentage off the cheapest unit, or the dearest.
#[allow(clippy::too_many_arguments)]
fn once_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    policy: &StackingPolicy,
    alloc: Option<&mut Alloc>,
    dearest: bool,
    amount: i64,
    num: i128,
    den: i128,
) -> Result<i64, Miss> {
    let order = pieces(p, ctx, state);
    let pick = if dearest { order.last() } else { order.first() };
    let Some(pc) = pick else {
        return Err(Miss::NothingToSave);
    };
    let off = if num == 0 {
        amount.min(pc.value)
    } else {
        unit_percent(pc.value, num, den, policy.rounding)
    };
    commit_units(
        ctx,
        state,
        alloc,
        vec![(pc.line, pc.value, 1, [(pc.value - off, 1), (0, 0)])],
    )
}

/// Takes `saving` off `lines` in proportion to what is left of them: the largest-remainder
/// split of [`apportion`](crate::money::apportion) (ties to the earlier line), done in place;
/// within a line, off its dearest units first ([`State::take`]). Requires
/// `0 ≤ saving ≤ Σ residual`.
fn spread(saving: i64, lines: &[u32], ctx: &CartCtx, state: &mut State, alloc: Option<&mut Alloc>) {
    if state.uneven.is_none() && alloc.is_none() {
        // The search's common case: the parts come straight off the lines.
        let mut off = OffLines {
            residual: &mut state.residual,
        };
        if split_fast(saving, lines, &mut off) {
            return;
        }
    }
    // A cart's few lines keep their parts on the stack.
    let mut small = [0i64; SMALL_SPREAD];
    let mut large = Vec::new();
    let parts = stack_or_heap(&mut small, &mut large, lines.len());
    let mut into = IntoParts {
        residual: &state.residual,
        parts,
    };
    if !split_fast(saving, lines, &mut into) {
        split_wide(saving, lines, &state.residual, into.parts);
    }
    let parts = into.parts;
    if state.uneven.is_none() {
        for (&l, &part) in lines.iter().zip(parts.iter()) {
            state.residual[l as usize] -= part;
        }
    } else {
        for (&l, &part) in lines.iter().zip(parts.iter()) {
            state.take(ctx, l, part);
        }
    }
    if let Some(a) = alloc {
        // At most one part a line: one allocation.
        a.lines.reserve(lines.len());
        a.lines.extend(
            lines
                .iter()
                .zip(parts.iter())
                .filter(|(_, part)| **part > 0)
                .map(|(&l, &part)| (l, part)),
        );
    }
}

/// The first `n` of `small` (zeroed) when they fit, else `large` made `n` zeros.
fn stack_or_heap<'a, T: Copy + Default, const N: usize>(
    small: &'a mut [T; N],
    large: &'a mut Vec<T>,
    n: usize,
) -> &'a mut [T] {
    match small.get_mut(..n) {
        Some(s) => s,
        None => {
            large.resize(n, T::default());
            large
        }
    }
}

/// Where [`split_fast`] reads each line's weight and hands its part.
trait Split {
    /// The weight of line `l`, before any part is handed to it.
    fn weight(&self, l: u32) -> i64;
    /// Hands `part` more to line `l`, the `k`th of the split (after its weight was read).
    fn give(&mut self, k: usize, l: u32, part: i64);
}

/// Parts taken straight off what is left of the lines.
struct OffLines<'a> {
    residual: &'a mut [i64],
}

impl Split for OffLines<'_> {
    fn weight(&self, l: u32) -> i64 {
        self.residual[l as usize]
    }
    fn give(&mut self, _: usize, l: u32, part: i64) {
        self.residual[l as usize] -= part;
    }
}

/// Parts written down, one per line (zeroed first), the lines untouched.
struct IntoParts<'r, 'p> {
    residual: &'r [i64],
    parts: &'p mut [i64],
}

impl Split for IntoParts<'_, '_> {
    fn weight(&self, l: u32) -> i64 {
        self.residual[l as usize]
    }
    fn give(&mut self, k: usize, _: u32, part: i64) {
        if let Some(p) = self.parts.get_mut(k) {
            *p += part;
        }
    }
}

/// The largest-remainder split of `saving` over `lines` in proportion to their weights
/// (ties to the earlier line), in `i64` when every product fits (the common case: no 128-bit
/// division); `false` (nothing handed out) otherwise.
fn split_fast(saving: i64, lines: &[u32], split: &mut impl Split) -> bool {
    let mut sum = 0i64;
    let mut top = 0i64;
    for &l in lines {
        let r = split.weight(l);
        let Some(s) = sum.checked_add(r) else {
            return false;
        };
        sum = s;
        top = top.max(r);
    }
    if sum <= 0 || saving <= 0 || saving.checked_mul(top).is_none() {
        return sum == 0 || saving == 0;
    }
    let given: i64 = lines.iter().map(|&l| saving * split.weight(l) / sum).sum();
    let left = (saving - given) as usize;
    if left == 0 {
        for (k, &l) in lines.iter().enumerate() {
            let part = saving * split.weight(l) / sum;
            split.give(k, l, part);
        }
        return true;
    }
    // Largest remainders first, ties to the earlier line: a strict order, so the first
    // `left` after selection are exactly those `apportion` picks. Each remainder and its
    // line's position are one key (remainder above, position reversed below), so the order
    // is one integer comparison; a cart's few lines keep their keys on the stack.
    let mut small = [0u128; SMALL_SPREAD];
    let mut large = Vec::new();
    let keys = stack_or_heap(&mut small, &mut large, lines.len());
    let mut m = 0;
    for (k, &l) in lines.iter().enumerate() {
        let exact = saving * split.weight(l);
        split.give(k, l, exact / sum);
        let rem = exact % sum;
        if rem > 0 {
            if let Some(slot) = keys.get_mut(m) {
                *slot = (rem as u128) << 64 | u128::from(u64::MAX - k as u64);
                m += 1;
            }
        }
    }
    let keys = keys.get_mut(..m).unwrap_or_default();
    if left < keys.len() {
        keys.select_nth_unstable_by(left - 1, |a, b| b.cmp(a));
    }
    for &key in keys.iter().take(left) {
        let k = (u64::MAX - key as u64) as usize;
        if let Some(&l) = lines.get(k) {
            split.give(k, l, 1);
        }
    }
    true
}

/// [`split_fast`] in 128-bit arithmetic ([`apportion_minor`]), for amounts whose products do
/// not fit in `i64`.
fn split_wide(saving: i64, lines: &[u32], residual: &[i64], parts: &mut [i64]) {
    let weights: Vec<i128> = lines
        .iter()
        .map(|&l| i128::from(residual[l as usize]))
        .collect();
    for (part, x) in parts
        .iter_mut()
        .zip(apportion_minor(i128::from(saving), &weights))
    {
        // A part is at most its line's residual, so it fits.
        *part = i64::try_from(x).unwrap_or(0);
    }
}

/// Lines whose parts and remainders [`spread`] keeps on the stack.
const SMALL_SPREAD: usize = 64;

/// Buy-get: the `free(units)` cheapest units are free (a unit already free counts as one of
/// the cheapest: it is never made free twice).
fn unit_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    free: impl Fn(u64) -> u64,
) -> Result<i64, Miss> {
    let mut left = free(p.qty);
    if left == 0 {
        return Err(Miss::MoreItems(1));
    }
    let mut changes = Vec::new();
    for pc in pieces_first(p, ctx, state, left, false) {
        if left == 0 {
            break;
        }
        let k = left.min(pc.count);
        left -= k;
        changes.push((pc.line, pc.value, k, [(0, k), (0, 0)]));
    }
    commit_units(ctx, state, alloc, changes)
}

/// Takes each `(line, amount)` of `parts` off its line (dearest units first); nothing when
/// they sum to zero.
fn commit_parts(
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    parts: Vec<(u32, i64)>,
) -> Result<i64, Miss> {
    let saving: i64 = parts.iter().map(|x| x.1).sum();
    if saving <= 0 {
        return Err(Miss::NothingToSave);
    }
    for &(l, s) in &parts {
        state.take(ctx, l, s);
    }
    if let Some(a) = alloc {
        a.lines.extend(parts.into_iter().filter(|x| x.1 > 0));
    }
    Ok(saving)
}

/// Fixed price: bundles of `quantity` units, dearest first, each for `price`, while a bundle's
/// units are worth more than the price (bundle values only fall, so the first that is not ends
/// the bundling), at most `max_bundles`.
///
/// In closed form over the runs: the bundles inside one run of `c` units worth `v` are
/// `⌊c / quantity⌋` at once, their units paying `n × price` evenly; only a bundle that spans
/// runs is apportioned over its pieces (largest remainder, by value). So the work follows the
/// number of runs, never the number of units: `u32::MAX` units of one line are one step.
#[allow(clippy::too_many_arguments)]
fn bundle_saving(
    p: &Shared,
    ctx: &CartCtx,
    state: &mut State,
    alloc: Option<&mut Alloc>,
    quantity: u64,
    price: i64,
    max_bundles: u64,
) -> Result<i64, Miss> {
    if p.qty < quantity {
        return Err(Miss::MoreItems(quantity - p.qty));
    }
    let q = i128::from(quantity);
    let price_i = i128::from(price);
    let mut changes: Vec<Change> = Vec::new();
    let mut bundles = 0u64;
    // The bundle being filled: its pieces (line, value, units), units and value.
    let mut open: Vec<(u32, i64, u64)> = Vec::new();
    let mut open_units = 0u64;
    let mut open_value = 0i128;
    // Whole bundles take at most `quantity × max_bundles` units, the dearest.
    let most = quantity.saturating_mul(max_bundles);
    'runs: for pc in pieces_first(p, ctx, state, most, true) {
        let mut avail = pc.count;
        while avail > 0 && bundles < max_bundles {
            if open_units == 0 && avail >= quantity {
                // Whole bundles inside this run.
                if q * i128::from(pc.value) <= price_i {
                    break 'runs;
                }
                let n = (avail / quantity).min(max_bundles - bundles);
                let units = n * quantity;
                let pay = i128::from(n) * price_i;
                changes.push((pc.line, pc.value, units, even_pair(pay, units)));
                bundles += n;
                avail -= units;
                continue;
            }
            let t = (quantity - open_units).min(avail);
            open.push((pc.line, pc.value, t));
            open_units += t;
            open_value += i128::from(pc.value) * i128::from(t);
            avail -= t;
            if open_units == quantity {
                if open_value <= price_i {
                    break 'runs;
                }
                let weights: Vec<i128> = open
                    .iter()
                    .map(|&(_, v, t)| i128::from(v) * i128::from(t))
                    .collect();
                let shares = apportion_minor(open_value - price_i, &weights);
                for (&(line, v, t), s) in open.iter().zip(shares) {
                    let keep = i128::from(v) * i128::from(t) - s;
                    changes.push((line, v, t, even_pair(keep, t)));
                }
                bundles += 1;
                open.clear();
                open_units = 0;
                open_value = 0;
            }
        }
        if bundles >= max_bundles {
            break;
        }
    }
    if bundles == 0 {
        return Err(Miss::NothingToSave);
    }
    commit_units(ctx, state, alloc, changes)
}

#[cfg(test)]
impl CartCtx {
    /// A cart of lines of these amounts and units, without shipping or gifts.
    pub(crate) fn of_lines(totals: Vec<i64>, qty: Vec<u64>) -> CartCtx {
        CartCtx::of(totals, qty, 0, Vec::new())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64), so these unit tests need no dependency
    /// (also the best-first search's).
    pub(in crate::checkout) fn next(seed: &mut u64) -> u64 {
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
                ships: Vec::new(),
                uneven: None,
            };
            let ctx = CartCtx::of_lines(residual.clone(), vec![1; residual.len()]);
            let mut recorded = state.clone();
            spread(saving, &lines, &ctx, &mut state, None);
            let weights: Vec<i128> = residual.iter().map(|r| i128::from(*r)).collect();
            let expect = apportion_minor(i128::from(saving), &weights);
            let got: Vec<i128> = residual
                .iter()
                .zip(&state.residual)
                .map(|(a, b)| i128::from(a - b))
                .collect();
            assert_eq!(got, expect, "residual {residual:?}, saving {saving}");
            // Recording where the saving went changes nothing, and records exactly the parts
            // above zero, in line order, after what the record held.
            let mut alloc = Alloc {
                lines: vec![(99, 1)],
                ..Alloc::default()
            };
            spread(saving, &lines, &ctx, &mut recorded, Some(&mut alloc));
            assert_eq!(recorded.residual, state.residual);
            let parts: Vec<(u32, i64)> = std::iter::once((99, 1))
                .chain(
                    (0u32..)
                        .zip(&expect)
                        .filter(|(_, x)| **x > 0)
                        .map(|(l, x)| (l, *x as i64)),
                )
                .collect();
            assert_eq!(alloc.lines, parts, "residual {residual:?}, saving {saving}");
        }
    }

    /// The `i64` split equals the 128-bit one whenever it answers, and both equal
    /// `apportion`; on carts of more lines than the stack holds, with amounts near `i64`'s
    /// limit (where the fast split must decline), and on lines a unit offer left uneven.
    #[test]
    fn split_fast_matches_split_wide_and_apportion() {
        let mut seed = 13u64;
        let (mut fast, mut uneven) = (0, 0);
        for round in 0..3_000 {
            let n = 1 + (next(&mut seed) % 80) as usize;
            let big = round % 7 == 0;
            let residual: Vec<i64> = (0..n)
                .map(|_| {
                    let r = next(&mut seed);
                    if big {
                        (r % (i64::MAX as u64 / 80)) as i64
                    } else {
                        (r % 100_000) as i64
                    }
                })
                .collect();
            let sum: i128 = residual.iter().map(|r| i128::from(*r)).sum();
            let saving = (sum * i128::from(next(&mut seed) % 1001) / 1000) as i64;
            let lines: Vec<u32> = (0..n as u32).collect();
            let weights: Vec<i128> = residual.iter().map(|r| i128::from(*r)).collect();
            let expect: Vec<i64> = apportion_minor(i128::from(saving), &weights)
                .into_iter()
                .map(|x| x as i64)
                .collect();
            let mut wide = vec![0; n];
            split_wide(saving, &lines, &residual, &mut wide);
            assert_eq!(wide, expect, "residual {residual:?}, saving {saving}");
            let mut parts = vec![0; n];
            let mut into = IntoParts {
                residual: &residual,
                parts: &mut parts,
            };
            if split_fast(saving, &lines, &mut into) {
                fast += 1;
                assert_eq!(parts, expect, "residual {residual:?}, saving {saving}");
                // Taken straight off the lines, the same parts come off.
                let mut left = residual.clone();
                let mut off = OffLines {
                    residual: &mut left,
                };
                assert!(split_fast(saving, &lines, &mut off));
                let off: Vec<i64> = residual.iter().zip(&left).map(|(a, b)| a - b).collect();
                assert_eq!(off, expect, "residual {residual:?}, saving {saving}");
            } else {
                assert!(big, "declined small amounts {residual:?}");
            }
            // Lines of two units, some with one unit made free: the same parts come off.
            let ctx = CartCtx::of_lines(residual.iter().map(|r| r * 2).collect(), vec![2; n]);
            let mut state = ctx.fresh();
            for (l, &r) in residual.iter().enumerate() {
                if r > 0 && next(&mut seed) % 3 == 0 {
                    state.set_runs(&ctx, l as u32, vec![(r, 1), (0, 1)]);
                } else {
                    state.residual[l] = r;
                }
            }
            uneven += usize::from(state.uneven.is_some());
            let before = state.residual.clone();
            spread(saving, &lines, &ctx, &mut state, None);
            let got: Vec<i64> = before
                .iter()
                .zip(&state.residual)
                .map(|(a, b)| a - b)
                .collect();
            assert_eq!(
                got, expect,
                "uneven: residual {residual:?}, saving {saving}"
            );
        }
        assert!(fast > 2_000, "the fast split answered {fast} times");
        assert!(uneven > 2_000, "{uneven} states had uneven lines");
    }

    /// `pieces_first` is exactly the first runs of the full order (cheapest first, or its
    /// reverse), on untouched, evenly reduced and uneven lines alike.
    #[test]
    fn pieces_first_is_a_prefix_of_the_full_order() {
        let mut seed = 11u64;
        for _ in 0..3_000 {
            let n = 1 + (next(&mut seed) % 8) as usize;
            let qty: Vec<u64> = (0..n).map(|_| 1 + next(&mut seed) % 4).collect();
            // Some lines' amounts not a multiple of their units (uneven even splits).
            let totals: Vec<i64> = qty
                .iter()
                .map(|&q| {
                    let odd = (next(&mut seed) % 2) as i64 * (next(&mut seed) % q) as i64;
                    q as i64 * (1 + (next(&mut seed) % 30) as i64) + odd
                })
                .collect();
            let ctx = CartCtx::of_lines(totals.clone(), qty.clone());
            let mut state = ctx.fresh();
            for l in 0..n {
                match next(&mut seed) % 3 {
                    0 => {}
                    1 => {
                        let cut = (next(&mut seed) % (totals[l] as u64 + 1)) as i64;
                        state.residual[l] -= cut;
                    }
                    _ => {
                        let q = qty[l];
                        let free = 1 + next(&mut seed) % q;
                        let unit = totals[l] / q as i64;
                        state.set_runs(&ctx, l as u32, vec![(unit, q - free), (0, free)]);
                    }
                }
            }
            let lines: Vec<u32> = (0..n as u32).filter(|_| next(&mut seed) % 4 != 0).collect();
            if lines.is_empty() {
                continue;
            }
            let cheapest_first: Vec<u32> = if next(&mut seed) % 2 == 0 {
                ctx.by_value()
                    .iter()
                    .copied()
                    .filter(|l| lines.binary_search(l).is_ok())
                    .collect()
            } else {
                Vec::new()
            };
            let sh = Shared {
                template: crate::id::TemplateId::new("t").unwrap(),
                name: Arc::from(""),
                lines: lines.into(),
                ships: Arc::from([]),
                kind: Kind::Instant(0),
                min_subtotal: 0,
                min_qty: 0,
                orig_base: 0,
                qty: 0,
                group: crate::id::StackingGroup::new("g").unwrap(),
                exclusive: false,
                with_promotions: true,
                per_order: 1,
                place: (0, 0, 0, 0),
                sig: Vec::new(),
                alone: 0,
                cheapest_first: cheapest_first.into(),
            };
            let full = pieces(&sh, &ctx, &state);
            let units = next(&mut seed) % 12;
            for dearest in [false, true] {
                let mut want = full.clone();
                if dearest {
                    want.reverse();
                }
                if units > 0 {
                    want.truncate(units as usize);
                }
                let got = pieces_first(&sh, &ctx, &state, units, dearest);
                let key = |v: &[Piece]| {
                    v.iter()
                        .map(|p| (p.line, p.value, p.count))
                        .collect::<Vec<_>>()
                };
                assert_eq!(key(&got), key(&want), "units {units}, dearest {dearest}");
            }
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
