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
//! earlier ones left:
//! 1. **Phase**: unit offers ([`BuyGet`](crate::rule::Benefit::BuyGet),
//!    [`FixedPrice`](crate::rule::Benefit::FixedPrice)) first, then amount offers (instant,
//!    threshold, every-threshold, percent), then shipping offers.
//! 2. **Source**: automatic promotions, then promo codes, then wallet coupons.
//! 3. **Priority**: higher [`Stacking::priority`](crate::rule::Stacking::priority) first.
//! 4. **Kind**: fixed reductions before percentages, so a percentage is measured on what the
//!    buyer actually pays.
//! 5. Template id, then offer id.
//!
//! A percentage is always measured on what is left of its lines, so two 50 % coupons give
//! 75 % off, never a free order. Thresholds and minimum spends are measured per
//! [`ThresholdBase`]: by default on what is left after earlier offers (a platform coupon's
//! "spend 100" means 100 actually paid after the shop's discount); `Original` measures them on
//! the undiscounted eligible subtotal. Every saving is capped by what is left of its lines (or
//! of the shipping fee), so no line goes below zero and a shipping offer only reduces shipping.
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
pub use quote::{Applied, Evaluation, Quote, QuoteLine, Share, ShippingQuote};
pub use reason::{Blocked, Ineligible};

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::cart::{Buyer, Cart};
use crate::id::{CouponId, StackingGroup, TemplateId};
use crate::money::{Money, Rounding};
use crate::rule::{PromoCode, Template};
use engine::{Alloc, CartCtx, Prepared, Shared, apply, prepare, shared};

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
}

impl Default for StackingPolicy {
    fn default() -> Self {
        StackingPolicy {
            max_coupons: 5,
            default_group_limit: 1,
            group_limits: BTreeMap::new(),
            threshold_base: ThresholdBase::default(),
            rounding: Rounding::default(),
        }
    }
}

impl StackingPolicy {
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
    unusable: Vec<(usize, Vec<Ineligible>)>,
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
            all.extend(ix.candidates(self.cart));
        }
        let ctx = CartCtx::new(self.cart);
        let mut facts: HashMap<*const Template, Arc<Shared>> = HashMap::new();
        let mut usable = Vec::with_capacity(all.len());
        let mut unusable = Vec::new();
        for (i, o) in all.iter().enumerate() {
            let f = facts.entry(Arc::as_ptr(&o.template)).or_insert_with(|| {
                Arc::new(shared(
                    &o.template,
                    self.cart,
                    &ctx,
                    self.buyer,
                    self.now,
                    self.policy,
                ))
            });
            match prepare(i, o, f, self.now) {
                Ok(p) => usable.push(p),
                Err(r) => unusable.push((i, r)),
            }
        }
        // One sort in canonical order numbers the offers and their behaviour classes; every
        // later ordering compares these numbers.
        let mut ranked: Vec<usize> = (0..usable.len()).collect();
        ranked.sort_unstable_by(|&a, &b| usable[a].apply_cmp(&usable[b]));
        let mut class = 0u32;
        for (rank, k) in ranked.iter().enumerate() {
            if rank > 0 && usable[ranked[rank - 1]].class_cmp(&usable[*k]).is_ne() {
                class += 1;
            }
            usable[*k].rank = rank as u32;
            usable[*k].class = class;
        }
        Prep {
            all,
            usable,
            unusable,
            ctx,
        }
    }

    /// The best combination: the largest total saving, then the coupons expiring soonest, then
    /// the smallest ids.
    ///
    /// # Errors
    /// Never for valid input today; the `Result` leaves room for future checks.
    pub fn best(&self) -> Result<Quote, CheckoutError> {
        let prep = self.prepare();
        let cands = prune::prune(self.policy, prep.usable.clone());
        let forced = vec![false; cands.len()];
        let outcome = select::best(&cands, &forced, &prep.ctx, self.policy, self.search_budget);
        let chosen: Vec<usize> = outcome
            .found
            .as_ref()
            .map(|(set, _)| set.iter().map(|&i| cands[i].offer).collect())
            .unwrap_or_default();
        Ok(self.build(&prep, &chosen, (outcome.proven_optimal, outcome.gap())))
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
                    reasons: reasons.clone(),
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
        let members = self.resolve(&prep, chosen)?;
        self.check_set(&prep, &members, false)?;
        // The chosen offers are forced; promotions are free to join.
        let mut cands: Vec<Prepared> = Vec::new();
        let mut forced = Vec::new();
        for p in &prep.usable {
            let is_chosen = members.contains(&p.offer);
            if is_chosen || p.is_promotion {
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
        let mut order: Vec<&Prepared> = prep
            .usable
            .iter()
            .filter(|p| chosen.contains(&p.offer))
            .collect();
        order.sort_unstable_by_key(|p| p.rank);
        let mut state = prep.ctx.fresh();
        let mut line_shares: Vec<Vec<Share>> = vec![Vec::new(); cart.lines().len()];
        let mut ship_shares = Vec::new();
        let mut applied = Vec::with_capacity(order.len());
        for p in &order {
            let mut alloc = Alloc::default();
            let saving =
                apply(p, &prep.ctx, &mut state, self.policy, Some(&mut alloc)).unwrap_or(0);
            for (l, amount) in alloc.lines {
                if let Some(v) = line_shares.get_mut(l as usize) {
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
                name: t.name().to_owned(),
                kind: t.benefit().kind().to_owned(),
                group: p.group.clone(),
                saving: money(saving),
                valid_until: p.valid_until,
            });
        }
        let lines: Vec<QuoteLine> = cart
            .lines()
            .iter()
            .enumerate()
            .zip(line_shares)
            .map(|((i, l), shares)| QuoteLine {
                sku: l.sku.clone(),
                quantity: l.quantity,
                original: money(prep.ctx.totals[i]),
                final_amount: money(state.residual[i]),
                shares,
            })
            .collect();
        let items_before: i64 = prep.ctx.totals.iter().sum();
        let items_after: i64 = state.residual.iter().sum();
        let total_before = items_before + prep.ctx.shipping;
        let total_after = items_after + state.shipping;

        // Evaluations: selected, then usable, then unusable.
        let selected: Vec<&Prepared> = order.clone();
        let current = total_before - total_after;
        let mut evals = Vec::with_capacity(prep.all.len());
        for p in &order {
            evals.push(Evaluation {
                offer: p.id.clone(),
                template: p.template.clone(),
                usable: true,
                selected: true,
                saving_alone: Some(money(p.alone)),
                reasons: Vec::new(),
            });
        }
        for p in prep.usable.iter().filter(|p| !chosen.contains(&p.offer)) {
            let reasons = match select::compatible(self.policy, &selected, p) {
                Err(r) => vec![r],
                Ok(()) => {
                    let mut with = selected.clone();
                    with.push(p);
                    match select::evaluate(&with, &prep.ctx, self.policy) {
                        Some(s) if s > current => Vec::new(),
                        _ => vec![Ineligible::NoExtraSaving],
                    }
                }
            };
            evals.push(Evaluation {
                offer: p.id.clone(),
                template: p.template.clone(),
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
                usable: false,
                selected: false,
                saving_alone: None,
                reasons: reasons.clone(),
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
