//! An index of automatic promotions by SKU, category and shop, so a cart is matched against
//! tens of thousands of them without scanning them all.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use super::select::Fx;
use super::{Offer, OfferId};
use crate::cart::Cart;
use crate::id::{CategoryId, ShopId, Sku};
use crate::rule::{Template, Validity};

/// Automatic promotions, indexed by what their scope names.
///
/// A promotion whose scope lists SKUs or categories is filed under each of them; one that only
/// names shops, under each shop; one for everything (or with only exclusions), under
/// "everywhere". A cart's candidates are the promotions filed under its lines' SKUs,
/// categories and shops plus the "everywhere" ones — a superset of those in scope, which the
/// checkout then checks exactly. Looking up a cart costs a few hash look-ups per line, however
/// many promotions there are.
///
/// ```
/// use std::sync::Arc;
/// use coupons::checkout::PromotionIndex;
/// # use coupons::rule::*; use coupons::id::*; use coupons::money::*; use coupons::cart::*;
/// # use chrono::{TimeZone, Utc};
/// # let cny = Currency::CNY;
/// # let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
/// # let until = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
/// let tea_promo = TemplateSpec::new(
///     TemplateId::new("tea-5-off")?, "5 off tea", cny,
///     Benefit::instant(Money::from_minor(500, cny))?,
///     Validity::fixed(from, until)?,
/// )
/// .scope(Scope::try_from(ScopeSpec { categories: Some([CategoryId::new("tea")?].into()), ..Default::default() })?)
/// .distribution(Distribution::Automatic)
/// .build()?;
/// let index = PromotionIndex::new([Arc::new(tea_promo)]);
/// let cart = Cart::new(cny, vec![
///     CartLine::new(Sku::new("oolong")?, Money::from_minor(3000, cny), 1).in_category(CategoryId::new("tea")?),
/// ], Money::zero(cny))?;
/// assert_eq!(index.candidates(&cart).len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct PromotionIndex {
    offers: Vec<Offer>,
    // The merchant's own keys, looked up per cart line: a fast unkeyed hash (a cart's
    // strings can only miss or hit, never grow a bucket).
    by_sku: HashMap<Sku, Vec<u32>, BuildHasherDefault<Fx>>,
    by_category: HashMap<CategoryId, Vec<u32>, BuildHasherDefault<Fx>>,
    by_shop: HashMap<ShopId, Vec<u32>, BuildHasherDefault<Fx>>,
    everywhere: Vec<u32>,
}

impl PromotionIndex {
    /// Indexes promotions. Each becomes an [`Offer`] with id [`OfferId::Promotion`], valid in
    /// its template's fixed window (or until its relative validity's `not_after`).
    pub fn new(promotions: impl IntoIterator<Item = Arc<Template>>) -> PromotionIndex {
        let mut ix = PromotionIndex::default();
        for t in promotions {
            let n = ix.offers.len() as u32;
            let spec = t.scope().spec();
            if spec.skus.is_some() || spec.categories.is_some() {
                for s in spec.skus.iter().flatten() {
                    ix.by_sku.entry(s.clone()).or_default().push(n);
                }
                for c in spec.categories.iter().flatten() {
                    ix.by_category.entry(c.clone()).or_default().push(n);
                }
            } else if let Some(shops) = &spec.shops {
                for s in shops {
                    ix.by_shop.entry(s.clone()).or_default().push(n);
                }
            } else {
                ix.everywhere.push(n);
            }
            let (valid_from, valid_until) = match *t.validity() {
                Validity::Fixed { from, until } => (Some(from), Some(until)),
                Validity::Relative { not_after, .. } => (None, not_after),
            };
            ix.offers.push(Offer {
                id: OfferId::Promotion(t.id().clone()),
                template: t,
                valid_from,
                valid_until,
                blocked: None,
            });
        }
        ix
    }

    /// Number of promotions indexed.
    pub fn len(&self) -> usize {
        self.offers.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// The promotions that may apply to `cart` (a superset of those in scope), each once, in
    /// the order they were indexed.
    pub fn candidates(&self, cart: &Cart) -> Vec<&Offer> {
        let mut out = Vec::new();
        self.extend_candidates(cart, &mut out);
        out
    }

    /// [`candidates`](PromotionIndex::candidates), appended to `out`.
    pub(crate) fn extend_candidates<'a>(&'a self, cart: &Cart, out: &mut Vec<&'a Offer>) {
        // Room for the promotions filed everywhere and a few hits a line: one allocation on
        // a common cart.
        let mut hits: Vec<u32> = Vec::with_capacity(self.everywhere.len() + 4 * cart.lines().len());
        hits.extend_from_slice(&self.everywhere);
        for line in cart.lines() {
            if let Some(v) = self.by_sku.get(&line.sku) {
                hits.extend_from_slice(v);
            }
            for c in &line.categories {
                if let Some(v) = self.by_category.get(c) {
                    hits.extend_from_slice(v);
                }
            }
            if let Some(v) = line.shop.as_ref().and_then(|s| self.by_shop.get(s)) {
                hits.extend_from_slice(v);
            }
        }
        hits.sort_unstable();
        hits.dedup();
        out.reserve(hits.len());
        out.extend(hits.into_iter().filter_map(|i| self.offers.get(i as usize)));
    }
}
