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
        let mut hits = Hits::new(
            self.offers.len(),
            self.everywhere.len() + 4 * cart.lines().len(),
        );
        self.hits(cart, |v| hits.add(v));
        out.reserve(hits.len());
        hits.each(|i| out.extend(self.offers.get(i)));
    }

    /// Calls `each` with every list of offers filed under something of the cart.
    fn hits<'s>(&'s self, cart: &Cart, mut each: impl FnMut(&'s [u32])) {
        each(&self.everywhere);
        for line in cart.lines() {
            if let Some(v) = self.by_sku.get(&line.sku) {
                each(v);
            }
            for c in &line.categories {
                if let Some(v) = self.by_category.get(c) {
                    each(v);
                }
            }
            if let Some(v) = line.shop.as_ref().and_then(|s| self.by_shop.get(s)) {
                each(v);
            }
        }
    }
}

/// A cart's hits in the index, each offer once, in the index's order: a list sorted at the
/// end while the hits are few against the index, else one bit an offer (a word of 64 offers
/// costs about what sorting one hit does, so the bits win once there are more than one hit
/// for every 64 offers the index holds).
enum Hits {
    Few(Vec<u32>),
    Many { bits: Vec<u64>, count: usize },
}

impl Hits {
    /// For an index of `offers`, expecting about `expected` hits.
    fn new(offers: usize, expected: usize) -> Hits {
        if expected.saturating_mul(64) < offers {
            Hits::Few(Vec::with_capacity(expected))
        } else {
            Hits::Many {
                bits: vec![0; offers.div_ceil(64)],
                count: 0,
            }
        }
    }

    fn add(&mut self, v: &[u32]) {
        match self {
            Hits::Few(hits) => hits.extend_from_slice(v),
            Hits::Many { bits, count } => {
                for &i in v {
                    if let Some(w) = bits.get_mut(i as usize / 64) {
                        let bit = 1u64 << (i % 64);
                        *count += usize::from(*w & bit == 0);
                        *w |= bit;
                    }
                }
            }
        }
    }

    /// How many offers were hit, at most (repeats counted while the hits are few).
    fn len(&self) -> usize {
        match self {
            Hits::Few(hits) => hits.len(),
            Hits::Many { count, .. } => *count,
        }
    }

    /// Calls `emit` with each offer hit, once, in the index's order.
    fn each(self, mut emit: impl FnMut(usize)) {
        match self {
            Hits::Few(mut hits) => {
                hits.sort_unstable();
                hits.dedup();
                hits.into_iter().for_each(|i| emit(i as usize));
            }
            Hits::Many { bits, .. } => {
                for (w, &word) in bits.iter().enumerate() {
                    let mut b = word;
                    while b != 0 {
                        emit(w * 64 + b.trailing_zeros() as usize);
                        b &= b - 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Hits;
    use crate::checkout::engine::tests::next;
    use std::collections::BTreeSet;

    #[test]
    fn hits_come_out_once_each_in_order_whichever_way_they_are_kept() {
        let mut seed = 7;
        for case in 0..500 {
            let offers = 1 + (next(&mut seed) % 300) as usize;
            let lists: Vec<Vec<u32>> = (0..next(&mut seed) % 8)
                .map(|_| {
                    (0..next(&mut seed) % 40)
                        .map(|_| (next(&mut seed) % offers as u64) as u32)
                        .collect()
                })
                .collect();
            let want: Vec<usize> = lists
                .iter()
                .flatten()
                .map(|&i| i as usize)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for expected in [0, offers] {
                let mut hits = Hits::new(offers, expected);
                assert_eq!(
                    matches!(hits, Hits::Few(_)),
                    expected * 64 < offers,
                    "case {case}"
                );
                for v in &lists {
                    hits.add(v);
                }
                let room = hits.len();
                let mut got = Vec::new();
                hits.each(|i| got.push(i));
                assert_eq!(got, want, "case {case}, expecting {expected}");
                assert!(room >= got.len());
            }
        }
    }
}
