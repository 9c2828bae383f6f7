//! What a coupon applies to, and so what counts toward its threshold.

use std::collections::BTreeSet;

use super::error::RuleError;
use crate::cart::CartLine;
use crate::checkout::ExcludedBy;
use crate::id::{CategoryId, ShopId, Sku};

#[cfg(feature = "serde")]
crate::de::field_paths! {
    fn shops_at -> Option<BTreeSet<ShopId>> = "scope.shops";
    fn skus_at -> Option<BTreeSet<Sku>> = "scope.skus";
    fn categories_at -> Option<BTreeSet<CategoryId>> = "scope.categories";
    fn exclude_skus_at -> BTreeSet<Sku> = "scope.exclude_skus";
    fn exclude_categories_at -> BTreeSet<CategoryId> = "scope.exclude_categories";
    fn sale_items_at -> bool = "scope.sale_items";
}

/// The plain data of a [`Scope`]; [`Scope::try_from`] checks it.
///
/// A line is in scope when **all** of these hold:
/// - `shops` is `None` or names the line's shop;
/// - `skus` and `categories` are both `None` (everything), or the line's SKU is in `skus`, or
///   one of its categories is in `categories`;
/// - its SKU is not in `exclude_skus` and none of its categories is in `exclude_categories`;
/// - `sale_items` is true, or the line is not on sale.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct ScopeSpec {
    /// Only these shops' items, if set.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", deserialize_with = "shops_at")
    )]
    pub shops: Option<BTreeSet<ShopId>>,
    /// Only these SKUs (or the `categories`), if set.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", deserialize_with = "skus_at")
    )]
    pub skus: Option<BTreeSet<Sku>>,
    /// Only these categories (or the `skus`), if set.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "Option::is_none",
            deserialize_with = "categories_at"
        )
    )]
    pub categories: Option<BTreeSet<CategoryId>>,
    /// Never these SKUs.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "BTreeSet::is_empty",
            deserialize_with = "exclude_skus_at"
        )
    )]
    pub exclude_skus: BTreeSet<Sku>,
    /// Never these categories.
    #[cfg_attr(
        feature = "serde",
        serde(
            skip_serializing_if = "BTreeSet::is_empty",
            deserialize_with = "exclude_categories_at"
        )
    )]
    pub exclude_categories: BTreeSet<CategoryId>,
    /// Whether items already on sale count. Default true.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "sale_items_at"))]
    pub sale_items: bool,
}

impl Default for ScopeSpec {
    fn default() -> Self {
        ScopeSpec {
            shops: None,
            skus: None,
            categories: None,
            exclude_skus: BTreeSet::new(),
            exclude_categories: BTreeSet::new(),
            sale_items: true,
        }
    }
}

/// What a coupon applies to: everything, or items chosen by shop, SKU and category, less
/// exclusions. Valid by construction (see [`ScopeSpec`] for the matching rule).
///
/// ```
/// use coupons::rule::{Scope, ScopeSpec};
/// use coupons::id::{CategoryId, Sku};
/// let tea = Scope::try_from(ScopeSpec {
///     categories: Some([CategoryId::new("tea")?].into()),
///     exclude_skus: [Sku::new("gift-card")?].into(),
///     ..ScopeSpec::default()
/// })?;
/// assert!(!tea.is_everything());
/// // An include list that is present but empty is a mistake, not "everything":
/// assert!(Scope::try_from(ScopeSpec { skus: Some(Default::default()), ..ScopeSpec::default() }).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ScopeSpec", into = "ScopeSpec")
)]
pub struct Scope(ScopeSpec);

impl Default for Scope {
    fn default() -> Self {
        Scope::everything()
    }
}

impl Scope {
    /// Every item, sale items included.
    pub fn everything() -> Scope {
        Scope(ScopeSpec::default())
    }

    /// Whether it covers every line of every cart.
    pub fn is_everything(&self) -> bool {
        let s = &self.0;
        s.shops.is_none()
            && s.skus.is_none()
            && s.categories.is_none()
            && s.exclude_skus.is_empty()
            && s.exclude_categories.is_empty()
            && s.sale_items
    }

    /// The plain data.
    pub fn spec(&self) -> &ScopeSpec {
        &self.0
    }

    /// What leaves a cart line out of scope, or `None` when it is in scope. The first rule that
    /// leaves it out, in this order: sale item, shop, not included, excluded SKU, excluded
    /// category.
    pub fn exclusion(&self, line: &CartLine) -> Option<ExcludedBy> {
        let s = &self.0;
        if !s.sale_items && line.on_sale {
            return Some(ExcludedBy::SaleItem);
        }
        if let Some(shops) = &s.shops {
            if !line.shop.as_ref().is_some_and(|shop| shops.contains(shop)) {
                return Some(ExcludedBy::Shop);
            }
        }
        if s.skus.is_some() || s.categories.is_some() {
            let by_sku = s.skus.as_ref().is_some_and(|k| k.contains(&line.sku));
            let by_cat = s
                .categories
                .as_ref()
                .is_some_and(|c| line.categories.iter().any(|x| c.contains(x)));
            if !by_sku && !by_cat {
                return Some(ExcludedBy::NotIncluded);
            }
        }
        if s.exclude_skus.contains(&line.sku) {
            return Some(ExcludedBy::Sku);
        }
        line.categories
            .iter()
            .find(|c| s.exclude_categories.contains(*c))
            .map(|c| ExcludedBy::Category {
                category: c.clone(),
            })
    }

    /// Whether a cart line is in scope.
    pub fn covers(&self, line: &CartLine) -> bool {
        let s = &self.0;
        if !s.sale_items && line.on_sale {
            return false;
        }
        if let Some(shops) = &s.shops {
            match &line.shop {
                Some(shop) if shops.contains(shop) => {}
                _ => return false,
            }
        }
        if s.skus.is_some() || s.categories.is_some() {
            let by_sku = s.skus.as_ref().is_some_and(|k| k.contains(&line.sku));
            let by_cat = s
                .categories
                .as_ref()
                .is_some_and(|c| line.categories.iter().any(|x| c.contains(x)));
            if !by_sku && !by_cat {
                return false;
            }
        }
        !(s.exclude_skus.contains(&line.sku)
            || line
                .categories
                .iter()
                .any(|c| s.exclude_categories.contains(c)))
    }
}

impl TryFrom<ScopeSpec> for Scope {
    type Error = RuleError;

    /// # Errors
    /// [`RuleError::Empty`] for an include list that is present but empty;
    /// [`RuleError::Conflict`] for a SKU or category both included and excluded.
    fn try_from(s: ScopeSpec) -> Result<Self, RuleError> {
        if s.shops.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "scope.shops",
            });
        }
        if s.skus.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "scope.skus",
            });
        }
        if s.categories.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(RuleError::Empty {
                field: "scope.categories",
            });
        }
        if let Some(sku) = s
            .skus
            .iter()
            .flatten()
            .find(|k| s.exclude_skus.contains(*k))
        {
            return Err(RuleError::Conflict {
                field: "scope.exclude_skus",
                reason: format!("sku {sku} is both included and excluded"),
            });
        }
        if let Some(cat) = s
            .categories
            .iter()
            .flatten()
            .find(|c| s.exclude_categories.contains(*c))
        {
            return Err(RuleError::Conflict {
                field: "scope.exclude_categories",
                reason: format!("category {cat} is both included and excluded"),
            });
        }
        Ok(Scope(s))
    }
}

impl From<Scope> for ScopeSpec {
    fn from(s: Scope) -> Self {
        s.0
    }
}
