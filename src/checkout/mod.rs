//! Checkout: every offer evaluated with reasons, and the provably best combination chosen.
//!
//! A [`Checkout`] takes a [`Cart`], the [`Buyer`], `now`, the buyer's [`Offer`]s (wallet
//! coupons and typed promo codes), the automatic promotions ([`PromotionIndex`]) and a
//! [`StackingPolicy`], and answers with a [`Quote`]:
//!
//! - [`Checkout::best`] — the default choice: the valid combination with the largest total
//!   saving; among equal savings the one whose coupons expire soonest; then the smallest ids.
//!   It is the exact optimum (branch and bound, see below), not a greedy pick.
//! - [`Checkout::with_selection`] — the buyer picked coupons: the engine validates them, adds
//!   the best automatic promotions compatible with them, and says for every other offer whether
//!   it can still be added and, if not, why.
//! - [`Checkout::apply_exactly`] — price exactly the given offers (to re-price a locked order).
//!
//! ## Stacking policy: order and bases
//! Stacked offers apply one after another in a fixed, documented order, each to what the
//! earlier ones left. Offers are compared key by key, the first difference deciding:
//! 1. **Group**: the position of the offer's stacking group in
//!    [`StackingPolicy::group_order`] (groups not listed after every listed one; with no group
//!    order this key never differs). The order of the large Chinese marketplaces is
//!    `["shop:*", "platform", "shipping"]`: shop coupons, then cross-shop platform coupons
//!    measured after them, then shipping.
//! 2. **Phase**: unit offers ([`BuyGet`](crate::rule::Benefit::BuyGet),
//!    [`FixedPrice`](crate::rule::Benefit::FixedPrice),
//!    [`PerUnit`](crate::rule::Benefit::PerUnit),
//!    [`ApplyOnce`](crate::rule::Benefit::ApplyOnce),
//!    [`BuyXGetY`](crate::rule::Benefit::BuyXGetY)) first, then amount offers (instant,
//!    threshold, every-threshold, percent, per line, tiered percent, quantity tiers, items and
//!    shipping), then shipping offers (shipping, shipping percent, shipping price).
//! 3. **Source**: automatic promotions, then promo codes, then wallet coupons; with
//!    [`PromotionPlace::Last`], promo codes, wallet coupons, then promotions.
//! 4. **Priority**: higher [`Stacking::priority`](crate::rule::Stacking::priority) first.
//! 5. **Kind**: fixed reductions before percentages (percent, tiered percent, quantity tiers,
//!    a percentage over items and shipping), so a percentage is measured on what the buyer
//!    actually pays; [`PercentPlace::BeforeFixed`] puts percentages first.
//! 6. **Behaviour**: the benefit's kind and amounts, the minimum spend and the lines it
//!    covers, compared as numbers (so offers that behave identically sit together), then the
//!    stacking group's name.
//! 7. Template id, then offer id.
//!
//! With [`OpenOrder::Groups`] the policy leaves the order of the stacking groups that share a
//! position in key 1 open (every group, with no group order): a combination saves the best
//! over the order above and every order of those groups (each group's members together, in
//! the order above), the best combination is the best over those orders, and a buyer's
//! selection that is valid in one of them is accepted and priced in the best one.
//!
//! With the marketplace order, a buyer's shop 满200减30 and platform 满100减15 on a 210.00 cart
//! both apply — 210 − 30 = 180 still reaches 100 — where without a group order the platform
//! coupon (the lower threshold, key 6) would apply first and leave 195, short of 200:
//!
//! ```
//! use std::sync::Arc;
//! use coupons::cart::{Buyer, Cart, CartLine};
//! use coupons::checkout::{Checkout, Offer, OpenOrder, StackingPolicy};
//! use coupons::id::*;
//! use coupons::money::{Currency, Money};
//! use coupons::rule::*;
//! use chrono::{TimeZone, Utc};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let now = Utc.with_ymd_and_hms(2026, 11, 11, 12, 0, 0).unwrap();
//! let week = Validity::relative(Span::Days(7), None)?;
//! let coupon = |id: &str, b: Benefit, group: &str| -> Result<Offer, Box<dyn std::error::Error>> {
//!     let t = TemplateSpec::new(TemplateId::new(id)?, id, cny, b, week)
//!         .stacking(Stacking::in_group(StackingGroup::new(group)?))
//!         .build()?;
//!     Ok(Offer::coupon(CouponId::new(id)?, Arc::new(t), now, now + chrono::Duration::days(7)))
//! };
//! let wallet = vec![
//!     coupon("shop-200-30", Benefit::threshold(yuan(200), yuan(30))?, "shop:6021")?,
//!     coupon("plat-100-15", Benefit::threshold(yuan(100), yuan(15))?, "platform")?,
//! ];
//! let cart = Cart::new(cny, vec![CartLine::new(Sku::new("tea")?, yuan(210), 1)], yuan(0))?;
//! let buyer = Buyer::new(UserId::new("u1")?, Channel::new("app")?);
//! let ids: Vec<_> = wallet.iter().map(|o| o.id.clone()).collect();
//!
//! let marketplace = StackingPolicy {
//!     group_order: vec![
//!         StackingGroup::new("shop:*")?,
//!         StackingGroup::new("platform")?,
//!         StackingGroup::new("shipping")?,
//!     ],
//!     ..StackingPolicy::default()
//! };
//! let q = Checkout::new(&cart, &buyer, now, &marketplace).offers(&wallet).with_selection(&ids)?;
//! assert_eq!(q.saving, yuan(45));
//!
//! let unordered = StackingPolicy::default();
//! assert!(Checkout::new(&cart, &buyer, now, &unordered).offers(&wallet).with_selection(&ids).is_err());
//!
//! // Left open, the order that makes the pair valid is taken.
//! let open = StackingPolicy { open_order: OpenOrder::Groups, ..StackingPolicy::default() };
//! let q = Checkout::new(&cart, &buyer, now, &open).offers(&wallet).with_selection(&ids)?;
//! assert_eq!(q.saving, yuan(45));
//! assert_eq!(&*q.applied[0].name, "shop-200-30");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A percentage is always measured on what is left of its lines, so two 50 % coupons give
//! 75 % off, never a free order. Thresholds and minimum spends are measured per
//! [`ThresholdBase`]: by default on what is left after earlier offers (a platform coupon's
//! "spend 100" means 100 actually paid after the shop's discount); `Original` measures them on
//! the undiscounted eligible subtotal. Every saving is capped by what is left of its lines (or
//! of the shipping fee), so no line goes below zero and a shipping offer only reduces shipping.
//!
//! Percentages are rounded once on the coupon's base and apportioned to its lines, or, with
//! [`RoundingScope::PerLine`] or [`RoundingScope::PerUnit`], on each line or unit so that the
//! prices a catalogue shows add up (12.5 % off three lines of 1.00 saves 0.38 per order, 0.36
//! per line; off one line of 3 × 1.00, 0.38 per order or line and 0.36 per unit).
//!
//! Automatic promotions are optimised together with coupons by default
//! ([`PromotionMode::Optimised`]: the buyer gets the lowest total the rules allow, even when a
//! coupon that refuses promotions beats them); with [`PromotionMode::AlwaysApply`] the best
//! combination of the eligible promotions alone always applies and coupons are optimised on top
//! of it (a coupon that refuses promotions then cannot be used while one applies).
//!
//! At most [`StackingPolicy::group_limit`] offers of one stacking group (one by default),
//! exclusive offers alone, offers that refuse automatic promotions never with one, at most
//! [`StackingPolicy::max_coupons`] coupons and codes per order, and at most
//! [`Limits::per_order`](crate::rule::Limits::per_order) coupons of one template.
//!
//! ## Optimality
//! The search is exact: see [`select`](self#why-the-search-is-exact) — every offer's saving
//! inside a combination is at most its saving alone, which bounds every branch; only branches
//! that cannot reach the best found are cut, ties included.
//!
//! ```
//! use std::sync::Arc;
//! use coupons::cart::{Buyer, Cart, CartLine};
//! use coupons::checkout::{Checkout, Offer, OfferId, StackingPolicy};
//! use coupons::id::*;
//! use coupons::money::{Currency, Money};
//! use coupons::rule::*;
//! use chrono::{TimeZone, Utc};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
//! let week = Validity::relative(Span::Days(7), None)?;
//! let t10 = Arc::new(TemplateSpec::new(TemplateId::new("100-10")?, "Spend 100 save 10", cny,
//!     Benefit::threshold(yuan(100), yuan(10))?, week).build()?);
//! let t25 = Arc::new(TemplateSpec::new(TemplateId::new("200-25")?, "Spend 200 save 25", cny,
//!     Benefit::threshold(yuan(200), yuan(25))?, week).build()?);
//! let wallet = vec![
//!     Offer::coupon(CouponId::new("c1")?, t10, now, now + chrono::Duration::days(7)),
//!     Offer::coupon(CouponId::new("c2")?, t25, now, now + chrono::Duration::days(7)),
//! ];
//! let cart = Cart::new(cny, vec![CartLine::new(Sku::new("tea")?, yuan(60), 2)], yuan(0))?;
//! let buyer = Buyer::new(UserId::new("u1")?, Channel::new("app")?);
//! let policy = StackingPolicy::default();
//! let quote = Checkout::new(&cart, &buyer, now, &policy).offers(&wallet).best()?;
//! // 120 reaches only the first threshold; both are in the `platform` group, one per order.
//! assert_eq!(quote.saving, yuan(10));
//! let greyed = quote.evaluation(&OfferId::Coupon(CouponId::new("c2")?)).unwrap();
//! assert_eq!(greyed.reasons[0].to_string(), "spend 80.00 more on eligible items");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod classic;
mod engine;
mod index;
mod prune;
mod quote;
mod reason;
mod select;

pub use index::PromotionIndex;
pub use quote::{Applied, Evaluation, Quote, QuoteLine, Share, ShippingLineQuote, ShippingQuote};
pub use reason::{Blocked, Excluded, ExcludedBy, Ineligible, Named};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cart::{Buyer, Cart};
use crate::hash::FastMap;
use crate::id::{CouponId, StackingGroup, TemplateId};
use crate::money::{Money, Rounding};
use crate::rule::{PromoCode, Template};
use engine::{Alloc, CartCtx, Facts, Prepared, apply, facts, prepare};

/// An amount of the cart in minor units (every cart amount fits).
fn minor_of(m: &Money) -> i64 {
    m.to_minor().unwrap_or(0)
}

/// Which offer: a wallet coupon, a typed promo code, or an automatic promotion.
///
/// Ordered promotions < codes < coupons, then by id (used only to break ties).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", content = "id", rename_all = "snake_case")
)]
pub enum OfferId {
    /// An automatic promotion, by its template.
    Promotion(TemplateId),
    /// A promo code the buyer typed.
    Code(PromoCode),
    /// A coupon in the buyer's wallet.
    Coupon(CouponId),
}

impl fmt::Display for OfferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferId::Promotion(t) => write!(f, "promotion {t}"),
            OfferId::Code(c) => write!(f, "code {c}"),
            OfferId::Coupon(c) => write!(f, "coupon {c}"),
        }
    }
}

/// A discount the checkout may apply: its id, its template, its validity window and whether the
/// caller's storage says it is unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Which offer.
    pub id: OfferId,
    /// Its rules.
    pub template: Arc<Template>,
    /// Usable from (inclusive), if bounded.
    pub valid_from: Option<DateTime<Utc>>,
    /// Usable until (exclusive), if bounded.
    pub valid_until: Option<DateTime<Utc>>,
    /// Unavailable whatever the cart, and why.
    pub blocked: Option<Blocked>,
}

impl Offer {
    /// A wallet coupon valid in `[valid_from, valid_until)`.
    pub fn coupon(
        id: CouponId,
        template: Arc<Template>,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
    ) -> Offer {
        Offer {
            id: OfferId::Coupon(id),
            template,
            valid_from: Some(valid_from),
            valid_until: Some(valid_until),
            blocked: None,
        }
    }

    /// A typed promo code; its validity is the template's fixed window, if it has one.
    pub fn code(code: PromoCode, template: Arc<Template>) -> Offer {
        let (valid_from, valid_until) = match *template.validity() {
            crate::rule::Validity::Fixed { from, until } => (Some(from), Some(until)),
            crate::rule::Validity::Relative { not_after, .. } => (None, not_after),
        };
        Offer {
            id: OfferId::Code(code),
            template,
            valid_from,
            valid_until,
            blocked: None,
        }
    }

    /// Marks the offer unavailable.
    pub fn with_blocked(mut self, blocked: Blocked) -> Offer {
        self.blocked = Some(blocked);
        self
    }
}

/// What thresholds and minimum spends are measured on when offers stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ThresholdBase {
    /// What is left of the eligible lines after the offers applied before (the default).
    #[default]
    AfterEarlierDiscounts,
    /// The eligible lines' undiscounted amount.
    Original,
}

/// Where automatic promotions stand in the choice of the best combination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum PromotionMode {
    /// Promotions and coupons are optimised together: a promotion may be left out to make room
    /// for a coupon that saves more (the default: the buyer always gets the lowest total the
    /// rules allow, and a coupon is never worth less because a promotion happens to apply).
    #[default]
    Optimised,
    /// The best combination of the eligible promotions alone always applies, and coupons are
    /// optimised on top of it (Solidus's lanes): a coupon that does not combine with those
    /// promotions cannot be used.
    AlwaysApply,
}

/// How percentages are rounded to the minor unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum RoundingScope {
    /// The percentage of the coupon's whole base is rounded once and apportioned to the lines
    /// (the default: the order's saving is the exact percentage, rounded once).
    #[default]
    PerOrder,
    /// The percentage of each line is rounded on its own and the lines' savings add up, so the
    /// discounted prices a catalogue shows per line add up to the order (Saleor's way). A cap
    /// that binds is then apportioned as in `PerOrder`.
    ///
    /// Worked, 12.5 % off three lines of 1.00, half-even: per order 0.375 rounds to 0.38
    /// (0.13 + 0.13 + 0.12); per line each 0.125 rounds to 0.12, 0.36 in all, every line 0.88.
    PerLine,
    /// The percentage of each unit is rounded on its own, so a unit price shown in a catalogue
    /// times the quantity is the line's price. Units are priced one by one (see
    /// [`rule::Benefit`](crate::rule::Benefit#units-priced-one-by-one)): a line whose remaining amount `r` an
    /// earlier amount left uneven over its `q` units counts as `r mod q` units worth
    /// `⌊r / q⌋ + 1` minor units and the others worth `⌊r / q⌋`; a unit a unit offer changed
    /// counts at what is left of it.
    ///
    /// Worked, 12.5 % off one line of 3 × 1.00: per unit each 0.125 rounds to 0.12, 0.36 off
    /// (3 × 0.88); per line 0.375 rounds to 0.38.
    PerUnit,
}

/// Where percentages stand among the amount offers of one place in the order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum PercentPlace {
    /// Fixed reductions first, so a percentage is measured on what the buyer pays (default).
    #[default]
    AfterFixed,
    /// Percentages first, then fixed reductions.
    BeforeFixed,
}

/// Where automatic promotions stand among the offers of one place in the order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum PromotionPlace {
    /// Promotions first, then promo codes, then wallet coupons (default).
    #[default]
    First,
    /// Promo codes, then wallet coupons, then promotions.
    Last,
}

/// Whether the policy leaves part of the order of application open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum OpenOrder {
    /// Offers apply in the documented order, key by key (the default).
    #[default]
    Closed,
    /// Stacking groups that share a position in [`StackingPolicy::group_order`] (every group,
    /// when it is empty; the groups one `shop:*` entry names) may apply in any order among
    /// themselves — each group's members together, in the documented order — and a set saves
    /// the best over those orders and the documented order itself (which, when a position's
    /// groups interleave in it, is none of them: an open order accepts every set a closed one
    /// does). Positions keep their order. At most eight groups of one position are permuted;
    /// any further ones apply after them in the documented order.
    ///
    /// Worked: shop 满200减30 and platform 满100减15 on a 210.00 cart, no group order: closed,
    /// the platform coupon applies first (lower threshold) and leaves 195.00, short of 200, so
    /// the pair is refused; open, the shop-first order saves 45.00 and the pair is accepted.
    Groups,
}

/// How offers combine in one order. See the [module docs](self) for the order of application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct StackingPolicy {
    /// Most coupons and codes in one order (automatic promotions do not count). Default 5.
    pub max_coupons: u32,
    /// Most offers of one stacking group in one order, unless `group_limits` says otherwise.
    /// Default 1.
    pub default_group_limit: u32,
    /// Per-group limits.
    pub group_limits: BTreeMap<StackingGroup, u32>,
    /// What thresholds are measured on.
    pub threshold_base: ThresholdBase,
    /// How percentages and unit prices round to the minor unit.
    pub rounding: Rounding,
    /// Whether percentages round on the order or on each line. Default per order.
    pub rounding_scope: RoundingScope,
    /// Whether eligible automatic promotions always apply. Default: optimised with coupons.
    pub promotions: PromotionMode,
    /// The order in which stacking groups apply, first to last: `["shop:*", "platform",
    /// "shipping"]` applies shop coupons, then platform coupons measured after them, then
    /// shipping. An entry ending in `*` names every group starting with what comes before it;
    /// groups not listed apply after the listed ones. Default: empty (no group order).
    pub group_order: Vec<StackingGroup>,
    /// Where percentages stand. Default: after fixed reductions.
    pub percentages: PercentPlace,
    /// Where automatic promotions stand. Default: first.
    pub promotion_place: PromotionPlace,
    /// Whether the order of groups that share a position is left open. Default: closed.
    pub open_order: OpenOrder,
}

impl Default for StackingPolicy {
    fn default() -> Self {
        StackingPolicy {
            max_coupons: 5,
            default_group_limit: 1,
            group_limits: BTreeMap::new(),
            threshold_base: ThresholdBase::default(),
            rounding: Rounding::default(),
            rounding_scope: RoundingScope::default(),
            promotions: PromotionMode::default(),
            group_order: Vec::new(),
            percentages: PercentPlace::default(),
            promotion_place: PromotionPlace::default(),
            open_order: OpenOrder::default(),
        }
    }
}

impl StackingPolicy {
    /// The position of `group` in [`group_order`](Self::group_order): the first entry that
    /// names it, or the number of entries when none does.
    pub fn group_position(&self, group: &StackingGroup) -> usize {
        self.group_order
            .iter()
            .position(|g| match g.as_str().strip_suffix('*') {
                Some(prefix) => group.as_str().starts_with(prefix),
                None => g == group,
            })
            .unwrap_or(self.group_order.len())
    }

    /// The limit for a group.
    pub fn group_limit(&self, group: &StackingGroup) -> u32 {
        self.group_limits
            .get(group)
            .copied()
            .unwrap_or(self.default_group_limit)
    }
}

/// A checkout request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckoutError {
    /// A selected offer is not among the offers given.
    #[error("{offer} is not among the offers")]
    UnknownOffer {
        /// The offer.
        offer: OfferId,
    },
    /// An offer was selected twice.
    #[error("{offer} is selected twice")]
    Duplicate {
        /// The offer.
        offer: OfferId,
    },
    /// A selected offer cannot be used on this cart.
    #[error("{offer} cannot be used: {}", reasons.first().map(ToString::to_string).unwrap_or_default())]
    NotUsable {
        /// The offer.
        offer: OfferId,
        /// Every reason.
        reasons: Vec<Ineligible>,
    },
    /// The selected offers cannot be combined.
    #[error("{offer} cannot be combined: {reason}")]
    Incompatible {
        /// The offer that does not fit.
        offer: OfferId,
        /// Why.
        reason: Ineligible,
    },
}

/// One checkout: the cart, the buyer, the time, the offers and the policy. Build it with
/// [`Checkout::new`] and the setters, then ask for [`best`](Checkout::best),
/// [`with_selection`](Checkout::with_selection) or [`apply_exactly`](Checkout::apply_exactly).
#[derive(Clone, Copy, Debug)]
pub struct Checkout<'a> {
    /// The cart.
    pub cart: &'a Cart,
    /// The buyer.
    pub buyer: &'a Buyer,
    /// The moment of checkout.
    pub now: DateTime<Utc>,
    /// Wallet coupons and typed codes.
    pub offers: &'a [Offer],
    /// Automatic promotions, if any.
    pub promotions: Option<&'a PromotionIndex>,
    /// The stacking policy.
    pub policy: &'a StackingPolicy,
    /// Work units the best-combination search may spend (one per combination examined and one
    /// per application of an offer to a cart state) before it answers with the best found so
    /// far, marked [`Quote::proven_optimal`]` == false`. Default
    /// [`Checkout::DEFAULT_SEARCH_BUDGET`].
    pub search_budget: u64,
}

/// The prepared form of a checkout: each offer usable (with its prepared form) or not (with its
/// reasons).
struct Prep<'a> {
    all: Vec<&'a Offer>,
    usable: Vec<Prepared>,
    /// Offers that cannot be used, with every reason (a template's reasons shared by its
    /// offers).
    unusable: Vec<(usize, Arc<[Ineligible]>)>,
    ctx: CartCtx,
}

impl<'a> Checkout<'a> {
    /// A checkout with no offers and no promotions.
    pub fn new(
        cart: &'a Cart,
        buyer: &'a Buyer,
        now: DateTime<Utc>,
        policy: &'a StackingPolicy,
    ) -> Checkout<'a> {
        Checkout {
            cart,
            buyer,
            now,
            offers: &[],
            promotions: None,
            policy,
            search_budget: Checkout::DEFAULT_SEARCH_BUDGET,
        }
    }

    /// The default [`search_budget`](Checkout::search_budget): 250,000 work units, well above
    /// what a wallet of a thousand coupons or a catalogue of twenty thousand promotions needs,
    /// and a fraction of a second at worst.
    pub const DEFAULT_SEARCH_BUDGET: u64 = select::DEFAULT_BUDGET;

    /// Sets the search budget in work units (see [`Checkout::search_budget`]). Whatever the
    /// budget, the answer is a valid combination (at worst none) and says whether it is proven
    /// optimal.
    pub fn search_budget(mut self, units: u64) -> Checkout<'a> {
        self.search_budget = units;
        self
    }

    /// Sets the wallet coupons and typed codes.
    pub fn offers(mut self, offers: &'a [Offer]) -> Checkout<'a> {
        self.offers = offers;
        self
    }

    /// Sets the automatic promotions.
    pub fn promotions(mut self, promotions: &'a PromotionIndex) -> Checkout<'a> {
        self.promotions = Some(promotions);
        self
    }

    fn prepare(&self) -> Prep<'a> {
        let mut all: Vec<&'a Offer> = self.offers.iter().collect();
        if let Some(ix) = self.promotions {
            ix.extend_candidates(self.cart, &mut all);
        }
        let mut ctx = CartCtx::new(self.cart);
        for o in &all {
            ctx.add_gift(&o.template);
        }
        let mut known: FastMap<*const Template, Facts> =
            FastMap::with_capacity_and_hasher(all.len(), Default::default());
        let mut usable = Vec::with_capacity(all.len());
        let mut unusable = Vec::new();
        for (i, o) in all.iter().enumerate() {
            let f = known.entry(Arc::as_ptr(&o.template)).or_insert_with(|| {
                facts(
                    &o.template,
                    self.cart,
                    &ctx,
                    self.buyer,
                    self.now,
                    self.policy,
                )
            });
            match prepare(i, o, f, self.now, self.buyer.offset(), self.policy) {
                Ok(p) => usable.push(p),
                Err(r) => unusable.push((i, r)),
            }
        }
        // One sort in canonical order numbers the offers and their behaviour classes; every
        // later ordering compares these numbers.
        let mut ranked: Vec<(u128, usize)> =
            usable.iter().map(Prepared::packed_order).zip(0..).collect();
        ranked.sort_unstable_by(|&(oa, a), &(ob, b)| {
            oa.cmp(&ob)
                .then_with(|| usable[a].same_order_apply_cmp(&usable[b]))
        });
        let mut class = 0u32;
        let mut before: Option<(u128, usize)> = None;
        for (rank, &(order, k)) in ranked.iter().enumerate() {
            if before.is_some_and(|(o, j)| {
                o != order || usable[j].same_order_class_cmp(&usable[k]).is_ne()
            }) {
                class += 1;
            }
            before = Some((order, k));
            usable[k].rank = rank as u32;
            usable[k].class = class;
        }
        Prep {
            all,
            usable,
            unusable,
            ctx,
        }
    }

    /// Why adding `p` to `selected` leaves some member saving nothing: another member that then
    /// misses its minimum spend ([`Ineligible::LosesThreshold`]), else
    /// [`Ineligible::NoExtraSaving`].
    fn why_nothing_more(
        &self,
        selected: &[&Prepared],
        p: &Prepared,
        ctx: &CartCtx,
        currency: crate::money::Currency,
    ) -> Ineligible {
        let mut with: Vec<&Prepared> = selected.to_vec();
        with.push(p);
        with.sort_unstable_by_key(|x| x.rank);
        let mut state = ctx.fresh();
        for x in with {
            if let Err(engine::Miss::SpendMore(missing)) =
                apply(x, ctx, &mut state, self.policy, None)
            {
                if !std::ptr::eq(x, p) {
                    return Ineligible::LosesThreshold {
                        offer: x.named(),
                        shipping: x.place.1 == 2,
                        missing: Money::from_minor(missing, currency),
                    };
                }
                break;
            }
        }
        Ineligible::NoExtraSaving
    }

    /// The best combination: the largest total saving, then the coupons expiring soonest, then
    /// the smallest ids.
    ///
    /// # Errors
    /// Never for valid input today; the `Result` leaves room for future checks.
    pub fn best(&self) -> Result<Quote, CheckoutError> {
        let prep = self.prepare();
        let promotions = self.standing_promotions(&prep);
        let (cands, forced) = if promotions.is_empty() {
            // Everything is optimised together: prune the interchangeable offers first.
            let cands = prune::prune(self.policy, prep.usable.clone());
            let forced = vec![false; cands.len()];
            (cands, forced)
        } else {
            // Standing promotions apply whatever the coupons; the pruning's argument does not
            // see them between otherwise identical offers, so only exact duplicates collapse.
            let mut cands: Vec<Prepared> = prep
                .usable
                .iter()
                .filter(|p| promotions.contains(&p.offer))
                .cloned()
                .collect();
            let mut forced = vec![true; cands.len()];
            let rest: Vec<Prepared> = prep
                .usable
                .iter()
                .filter(|p| self.policy.promotions == PromotionMode::Optimised || !p.is_promotion)
                .cloned()
                .collect();
            for p in select::dedup(self.policy, rest) {
                cands.push(p);
                forced.push(false);
            }
            (cands, forced)
        };
        let outcome = select::best(&cands, &forced, &prep.ctx, self.policy, self.search_budget);
        let chosen: Vec<usize> = outcome
            .found
            .as_ref()
            .map(|(set, _)| set.iter().map(|&i| cands[i].offer).collect())
            .unwrap_or(promotions);
        Ok(self.build(&prep, &chosen, (outcome.proven_optimal, outcome.gap())))
    }

    /// The promotions that apply whatever the coupons (indices into `prep.all`): under
    /// [`PromotionMode::AlwaysApply`] the best combination of the eligible promotions alone,
    /// else none.
    fn standing_promotions(&self, prep: &Prep<'_>) -> Vec<usize> {
        if self.policy.promotions != PromotionMode::AlwaysApply {
            return Vec::new();
        }
        let promos: Vec<Prepared> = prep
            .usable
            .iter()
            .filter(|p| p.is_promotion)
            .cloned()
            .collect();
        let cands = prune::prune(self.policy, promos);
        let forced = vec![false; cands.len()];
        select::best(&cands, &forced, &prep.ctx, self.policy, self.search_budget)
            .found
            .map(|(set, _)| set.iter().map(|&i| cands[i].offer).collect())
            .unwrap_or_default()
    }

    fn resolve(&self, prep: &Prep<'_>, ids: &[OfferId]) -> Result<Vec<usize>, CheckoutError> {
        let mut out: Vec<usize> = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(i) = prep.all.iter().position(|o| &o.id == id) else {
                return Err(CheckoutError::UnknownOffer { offer: id.clone() });
            };
            if out.contains(&i) {
                return Err(CheckoutError::Duplicate { offer: id.clone() });
            }
            if let Some((_, reasons)) = prep.unusable.iter().find(|(u, _)| *u == i) {
                return Err(CheckoutError::NotUsable {
                    offer: id.clone(),
                    reasons: reasons.to_vec(),
                });
            }
            out.push(i);
        }
        Ok(out)
    }

    /// Checks that `members` combine and, if `saving` is asked, that each saves something; the
    /// first offer that does not.
    fn check_set(
        &self,
        prep: &Prep<'_>,
        members: &[usize],
        saving: bool,
    ) -> Result<(), CheckoutError> {
        let mut chosen: Vec<&Prepared> = Vec::new();
        for &i in members {
            let Some(p) = prep.usable.iter().find(|p| p.offer == i) else {
                continue;
            };
            if let Err(reason) = select::compatible(self.policy, &chosen, p) {
                return Err(CheckoutError::Incompatible {
                    offer: p.id.clone(),
                    reason,
                });
            }
            chosen.push(p);
        }
        if saving && select::evaluate(&chosen, &prep.ctx, self.policy).is_none() {
            // Name the offer that saves nothing in the canonical order.
            let mut order = chosen.clone();
            order.sort_by(|a, b| a.apply_cmp(b));
            let mut state = prep.ctx.fresh();
            for p in order {
                if apply(p, &prep.ctx, &mut state, self.policy, None).is_err() {
                    return Err(CheckoutError::Incompatible {
                        offer: p.id.clone(),
                        reason: Ineligible::NoExtraSaving,
                    });
                }
            }
        }
        Ok(())
    }

    /// The buyer's choice of coupons and codes, plus the best automatic promotions compatible
    /// with it. Every other offer's evaluation says whether it can still be added and, if not,
    /// why.
    ///
    /// # Errors
    /// [`CheckoutError::UnknownOffer`], [`CheckoutError::Duplicate`],
    /// [`CheckoutError::NotUsable`] with the offer's reasons, and
    /// [`CheckoutError::Incompatible`] when the chosen offers cannot be combined.
    pub fn with_selection(&self, chosen: &[OfferId]) -> Result<Quote, CheckoutError> {
        let prep = self.prepare();
        let chosen_members = self.resolve(&prep, chosen)?;
        // Standing promotions (under `AlwaysApply`) come first with the choice, as if chosen:
        // a chosen coupon that does not combine with them is the one refused.
        let promotions = self.standing_promotions(&prep);
        let mut members = promotions.clone();
        members.extend(chosen_members.iter().filter(|i| !promotions.contains(i)));
        self.check_set(&prep, &members, false)?;
        // The chosen offers are forced; promotions are free to join (unless they stand).
        let mut cands: Vec<Prepared> = Vec::new();
        let mut forced = Vec::new();
        let promotions_join = promotions.is_empty();
        for p in &prep.usable {
            let is_chosen = members.contains(&p.offer);
            if is_chosen || (p.is_promotion && promotions_join) {
                cands.push(p.clone());
                forced.push(is_chosen);
            }
        }
        let outcome = select::best(&cands, &forced, &prep.ctx, self.policy, self.search_budget);
        let set: Vec<usize> = match &outcome.found {
            Some((set, _)) => set.iter().map(|&i| cands[i].offer).collect(),
            None => {
                // No promotions make the choice valid: name the offer that saves nothing.
                self.check_set(&prep, &members, true)?;
                members
            }
        };
        Ok(self.build(&prep, &set, (outcome.proven_optimal, outcome.gap())))
    }

    /// Prices exactly these offers, nothing added (e.g. to re-price an order whose coupons
    /// are locked).
    ///
    /// # Errors
    /// As [`Checkout::with_selection`].
    pub fn apply_exactly(&self, offers: &[OfferId]) -> Result<Quote, CheckoutError> {
        let prep = self.prepare();
        let members = self.resolve(&prep, offers)?;
        self.check_set(&prep, &members, true)?;
        Ok(self.build(&prep, &members, (true, 0)))
    }

    /// Builds the quote for the chosen offers (indices into `prep.all`).
    fn build(&self, prep: &Prep<'_>, chosen: &[usize], (proven, gap): (bool, i64)) -> Quote {
        let cart = self.cart;
        let cur = cart.currency();
        let money = |m: i64| Money::from_minor(m, cur);
        let members: Vec<&Prepared> = prep
            .usable
            .iter()
            .filter(|p| chosen.contains(&p.offer))
            .collect();
        // The order they apply in: the documented one, or the best the policy allows.
        let open = self.policy.open_order != OpenOrder::Closed;
        let best = open
            .then(|| engine::best_order(&members, &prep.ctx, self.policy, &mut 0))
            .flatten();
        let order: Vec<&Prepared> = match best {
            Some((order, _, _)) => order,
            None => {
                let mut order = members;
                order.sort_unstable_by_key(|p| p.rank);
                order
            }
        };
        let mut state = prep.ctx.fresh();
        let allocs: Vec<(i64, Alloc)> = order
            .iter()
            .map(|p| {
                let mut alloc = Alloc::default();
                let saving =
                    apply(p, &prep.ctx, &mut state, self.policy, Some(&mut alloc)).unwrap_or(0);
                (saving, alloc)
            })
            .collect();
        // Each line's shares allocated once, at their number.
        let mut line_shares: Vec<Vec<Share>> = {
            let mut counts = vec![0usize; prep.ctx.totals.len()];
            for (l, _) in allocs.iter().flat_map(|(_, a)| &a.lines) {
                if let Some(c) = counts.get_mut(*l as usize) {
                    *c += 1;
                }
            }
            counts.into_iter().map(Vec::with_capacity).collect()
        };
        let mut ship_shares = Vec::new();
        let mut ship_line_shares: Vec<Vec<Share>> = vec![Vec::new(); prep.ctx.ships.len()];
        let mut applied = Vec::with_capacity(order.len());
        for (p, (saving, alloc)) in order.iter().zip(allocs) {
            for (l, amount) in alloc.lines {
                if let Some(v) = line_shares.get_mut(l as usize) {
                    v.push(Share {
                        offer: p.id.clone(),
                        amount: money(amount),
                    });
                }
            }
            for (i, amount) in alloc.ships {
                if let Some(v) = ship_line_shares.get_mut(i as usize) {
                    v.push(Share {
                        offer: p.id.clone(),
                        amount: money(amount),
                    });
                }
            }
            if alloc.shipping > 0 {
                ship_shares.push(Share {
                    offer: p.id.clone(),
                    amount: money(alloc.shipping),
                });
            }
            let t = &prep.all[p.offer].template;
            applied.push(Applied {
                offer: p.id.clone(),
                template: t.id().clone(),
                name: Arc::clone(t.shared_name()),
                kind: Cow::Borrowed(t.benefit().kind()),
                group: p.group.clone(),
                saving: money(saving),
                valid_until: p.valid_until,
            });
        }
        let mut line_shares = line_shares.into_iter();
        let mut lines: Vec<QuoteLine> = cart
            .lines()
            .iter()
            .enumerate()
            .zip(line_shares.by_ref())
            .map(|((i, l), shares)| QuoteLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                original: money(prep.ctx.totals[i]),
                final_amount: money(state.residual[i]),
                shares,
                gift: false,
            })
            .collect();
        // Gifts applied: their virtual lines, after the cart's.
        for ((_, line, benefit), shares) in prep.ctx.gifts.iter().zip(line_shares) {
            if shares.is_empty() {
                continue;
            }
            if let crate::rule::Benefit::Gift { sku, quantity, .. } = benefit {
                let i = *line as usize;
                lines.push(QuoteLine {
                    sku: sku.clone(),
                    quantity: *quantity,
                    original: money(prep.ctx.totals[i]),
                    final_amount: money(state.residual[i]),
                    shares,
                    gift: true,
                });
            }
        }
        let items_before: i64 = lines.iter().map(|l| minor_of(&l.original)).sum();
        let items_after: i64 = lines.iter().map(|l| minor_of(&l.final_amount)).sum();
        let total_before = items_before + prep.ctx.shipping;
        let total_after = items_after + state.shipping;

        // Evaluations: selected, then usable, then unusable.
        let selected: &[&Prepared] = &order;
        let current = total_before - total_after;
        let mut evals = Vec::with_capacity(prep.all.len());
        // One empty list shared by every offer without a reason.
        let no_reasons: Arc<[Ineligible]> = Arc::new([]);
        for p in selected {
            let t = &prep.all[p.offer].template;
            evals.push(Evaluation {
                offer: p.id.clone(),
                template: p.template.clone(),
                name: Arc::clone(t.shared_name()),
                kind: Cow::Borrowed(t.benefit().kind()),
                usable: true,
                selected: true,
                saving_alone: Some(money(p.alone)),
                reasons: Arc::clone(&no_reasons),
            });
        }
        let mut with: Vec<&Prepared> = Vec::with_capacity(selected.len() + 1);
        for p in prep.usable.iter().filter(|p| !chosen.contains(&p.offer)) {
            let reasons: Arc<[Ineligible]> = match select::compatible(self.policy, selected, p) {
                Err(r) => Arc::new([r]),
                Ok(()) => {
                    with.clear();
                    with.extend_from_slice(selected);
                    with.push(p);
                    match select::evaluate(&with, &prep.ctx, self.policy) {
                        Some(s) if s > current => Arc::clone(&no_reasons),
                        Some(_) => Arc::new([Ineligible::NoExtraSaving]),
                        None => Arc::new([self.why_nothing_more(selected, p, &prep.ctx, cur)]),
                    }
                }
            };
            let t = &prep.all[p.offer].template;
            evals.push(Evaluation {
                offer: p.id.clone(),
                template: p.template.clone(),
                name: Arc::clone(t.shared_name()),
                kind: Cow::Borrowed(t.benefit().kind()),
                usable: true,
                selected: false,
                saving_alone: Some(money(p.alone)),
                reasons,
            });
        }
        for (i, reasons) in &prep.unusable {
            let o = prep.all[*i];
            evals.push(Evaluation {
                offer: o.id.clone(),
                template: o.template.id().clone(),
                name: Arc::clone(o.template.shared_name()),
                kind: Cow::Borrowed(o.template.benefit().kind()),
                usable: false,
                selected: false,
                saving_alone: None,
                reasons: Arc::clone(reasons),
            });
        }
        Quote {
            currency: cur,
            applied,
            lines,
            shipping: ShippingQuote {
                original: money(prep.ctx.shipping),
                final_amount: money(state.shipping),
                shares: ship_shares,
                lines: if cart.has_one_fee() {
                    Vec::new()
                } else {
                    cart.shipping_lines()
                        .iter()
                        .zip(ship_line_shares)
                        .map(|(s, shares)| {
                            let paid: i64 = shares.iter().map(|x| minor_of(&x.amount)).sum();
                            ShippingLineQuote {
                                shop: s.shop.clone(),
                                original: s.fee,
                                final_amount: money(minor_of(&s.fee) - paid),
                                shares,
                            }
                        })
                        .collect()
                },
            },
            items_before: money(items_before),
            items_after: money(items_after),
            total_before: money(total_before),
            total_after: money(total_after),
            saving: money(total_before - total_after),
            proven_optimal: proven,
            optimality_gap: money(gap),
            offers: evals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::engine::tests::next;
    use super::{Checkout, Offer, StackingPolicy};
    use crate::cart::{Buyer, Cart, CartLine};
    use crate::id::{Channel, CouponId, Sku, StackingGroup, TemplateId, UserId};
    use crate::money::{Currency, Money};
    use crate::rule::{Benefit, Stacking, TemplateSpec, Validity};
    use chrono::{Duration, TimeZone, Utc};
    use std::sync::Arc;

    /// The canonical sort gives every offer the rank [`Prepared::apply_cmp`] gives it and the
    /// same class exactly when [`Prepared::class_cmp`] says they behave alike: on wallets of
    /// many copies of a few templates, distinct templates of identical rules (equal
    /// signatures), ids out of order, several groups and priorities. Dropping interchangeable
    /// offers keeps the same ones on wallets above and below the size it sorts as keys.
    #[test]
    fn canonical_ranks_classes_and_dedup_follow_the_comparisons() {
        let cny = Currency::CNY;
        let m = |minor: u64| Money::from_minor(minor as i64, cny);
        let now = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
        let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
        let policy = StackingPolicy::default();
        let cart = Cart::new(
            cny,
            vec![
                CartLine::new(Sku::new("a").unwrap(), m(12_000), 3),
                CartLine::new(Sku::new("b").unwrap(), m(4_000), 1),
            ],
            m(1_000),
        )
        .unwrap();
        let mut seed = 17u64;
        let (mut shared_classes, mut many) = (0, 0);
        for _ in 0..200 {
            let s = &mut seed;
            let templates: Vec<Arc<crate::rule::Template>> = (0..2 + next(s) % 6)
                .map(|t| {
                    let benefit = match next(s) % 3 {
                        0 => Benefit::instant(m(100 * (1 + next(s) % 3))),
                        1 => Benefit::buy_get(2, 1, None),
                        _ => Benefit::shipping(None),
                    };
                    let spec = TemplateSpec::new(
                        TemplateId::new(format!("t{}", next(s) % 50 + 100 * t)).unwrap(),
                        "generated",
                        cny,
                        benefit.unwrap(),
                        Validity::fixed(now - Duration::days(1), now + Duration::days(30)).unwrap(),
                    )
                    .stacking(Stacking {
                        group: StackingGroup::new(["g1", "g2"][(next(s) % 2) as usize]).unwrap(),
                        exclusive: false,
                        with_promotions: true,
                        priority: (next(s) % 2) as i32,
                    });
                    Arc::new(spec.build().unwrap())
                })
                .collect();
            let wallet: Vec<Offer> = (0..3 + next(s) % 60)
                .map(|i| {
                    let t = &templates[(next(s) % templates.len() as u64) as usize];
                    let id = CouponId::new(format!("c{}-{i}", next(s) % 1000)).unwrap();
                    let expiry = now + Duration::days(1 + (next(s) % 3) as i64);
                    Offer::coupon(id, Arc::clone(t), now - Duration::days(1), expiry)
                })
                .collect();
            let checkout = Checkout::new(&cart, &buyer, now, &policy).offers(&wallet);
            let prep = checkout.prepare();
            // Dropping interchangeable offers keeps the same ones whether they are sorted
            // where they lie or as keys.
            let mut in_place = prep.usable.clone();
            in_place.sort_unstable_by(|a, b| {
                (a.class, a.valid_until.is_none(), a.valid_until, &a.id).cmp(&(
                    b.class,
                    b.valid_until.is_none(),
                    b.valid_until,
                    &b.id,
                ))
            });
            let n = in_place.len();
            let ids =
                |v: Vec<super::engine::Prepared>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
            assert_eq!(
                ids(super::select::dedup(&policy, prep.usable.clone())),
                ids(super::select::keep(&policy, in_place, n))
            );
            many += usize::from(n > super::select::SMALL_DEDUP);
            for a in &prep.usable {
                for b in &prep.usable {
                    assert_eq!(a.rank.cmp(&b.rank), a.apply_cmp(b), "{:?} {:?}", a.id, b.id);
                    assert_eq!(a.class == b.class, a.class_cmp(b).is_eq());
                    if a.class == b.class && !Arc::ptr_eq(&a.shared, &b.shared) {
                        shared_classes += 1;
                    }
                }
            }
        }
        // Distinct templates of identical rules met often enough to test their classes.
        assert!(shared_classes > 100, "{shared_classes}");
        assert!(many > 50, "{many} wallets above the small dedup");
    }
}
