//! The quote: what a checkout decided, as data.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::OfferId;
use super::reason::Ineligible;
use crate::id::{ShopId, Sku, StackingGroup, TemplateId};
use crate::money::{Currency, Money};

/// One offer's part of a line's or the shipping fee's discount.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Share {
    /// The offer.
    pub offer: OfferId,
    /// Its part, above zero.
    pub amount: Money,
}

/// An offer applied to the order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Applied {
    /// The offer.
    pub offer: OfferId,
    /// Its template.
    pub template: TemplateId,
    /// The template's name (shared with the template: no copy per quote).
    pub name: Arc<str>,
    /// The benefit kind (`threshold`, `percent`…).
    pub kind: Cow<'static, str>,
    /// Its stacking group.
    pub group: StackingGroup,
    /// What it saved in this order.
    pub saving: Money,
    /// When the coupon expires, if it does.
    pub valid_until: Option<DateTime<Utc>>,
}

/// One cart line, before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct QuoteLine {
    /// The product.
    pub sku: Sku,
    /// Units.
    pub quantity: u32,
    /// Unit price × quantity.
    pub original: Money,
    /// What the buyer pays for the line: `original − Σ shares`, never below zero.
    pub final_amount: Money,
    /// Each offer's part of the line's discount; they sum exactly to `original − final_amount`.
    pub shares: Vec<Share>,
    /// Whether the line is a gift ([`Benefit::Gift`](crate::rule::Benefit::Gift)) added by
    /// its one share's offer: gift lines follow the cart's, worth the gift's value, final zero.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "std::ops::Not::not")
    )]
    pub gift: bool,
}

/// The shipping fee, before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShippingQuote {
    /// The fee (the sum of the shipping lines).
    pub original: Money,
    /// What the buyer pays.
    pub final_amount: Money,
    /// Each offer's part.
    pub shares: Vec<Share>,
    /// Each shipping line of a cart with several
    /// ([`Cart::with_shipping_lines`](crate::cart::Cart::with_shipping_lines)), in the cart's
    /// order; empty for a cart of one fee.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub lines: Vec<ShippingLineQuote>,
}

/// One shipping line, before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ShippingLineQuote {
    /// The shop that ships it, if any.
    pub shop: Option<ShopId>,
    /// The fee.
    pub original: Money,
    /// What the buyer pays for it.
    pub final_amount: Money,
    /// Each offer's part; they sum exactly to `original − final_amount`.
    pub shares: Vec<Share>,
}

/// How one offer fared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Evaluation {
    /// The offer.
    pub offer: OfferId,
    /// Its template.
    pub template: TemplateId,
    /// The template's name, for the page (no extra read needed; shared with the template).
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: Arc<str>,
    /// The benefit kind (`threshold`, `percent`…).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kind: Cow<'static, str>,
    /// Whether it could be used on this cart at all (alone).
    pub usable: bool,
    /// Whether it is applied in this quote.
    pub selected: bool,
    /// Its saving alone on this cart, when usable.
    pub saving_alone: Option<Money>,
    /// Why it is unusable, or why it cannot join the selection. Empty for a selected offer and
    /// for one the buyer can still add. Shared: every offer of a template that cannot be used
    /// holds the template's one list.
    pub reasons: Arc<[Ineligible]>,
}

impl Evaluation {
    /// Usable, not selected, and nothing stops the buyer from adding it.
    pub fn addable(&self) -> bool {
        self.usable && !self.selected && self.reasons.is_empty()
    }
}

/// The outcome of a checkout: the applied offers and their savings, every line's original and
/// final amount with each offer's share, the totals, and every offer's evaluation (selected
/// first, then the other usable ones, then the unusable ones with their reasons).
///
/// Shares sum exactly, to the minor unit, to each applied offer's saving, so a later partial
/// refund knows what each line paid.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Quote {
    /// The currency of every amount.
    pub currency: Currency,
    /// The applied offers, in the order they applied.
    pub applied: Vec<Applied>,
    /// The lines, in cart order.
    pub lines: Vec<QuoteLine>,
    /// The shipping fee.
    pub shipping: ShippingQuote,
    /// Sum of the lines' original amounts.
    pub items_before: Money,
    /// Sum of the lines' final amounts.
    pub items_after: Money,
    /// Items and shipping, before.
    pub total_before: Money,
    /// Items and shipping, after: what the buyer pays.
    pub total_after: Money,
    /// `total_before − total_after`.
    pub saving: Money,
    /// Whether the combination is proven the best (always, unless the checkout's
    /// [search budget](crate::checkout::Checkout::search_budget) ran out first; a buyer's own
    /// selection and [`apply_exactly`](crate::checkout::Checkout::apply_exactly) count as
    /// proven).
    pub proven_optimal: bool,
    /// How much more than [`saving`](Quote::saving) the best combination could save at most:
    /// zero when proven optimal.
    pub optimality_gap: Money,
    /// Every offer considered.
    pub offers: Vec<Evaluation>,
}

impl Quote {
    /// The applied offers' ids, in application order.
    pub fn applied_ids(&self) -> Vec<OfferId> {
        self.applied.iter().map(|a| a.offer.clone()).collect()
    }

    /// The evaluation of one offer.
    pub fn evaluation(&self, offer: &OfferId) -> Option<&Evaluation> {
        self.offers.iter().find(|e| &e.offer == offer)
    }
}
