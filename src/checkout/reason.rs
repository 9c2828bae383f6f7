//! Why an offer cannot be used, or cannot be added to the selection — as values a checkout page
//! can show (each has a `Display` for people; apps may render their own words from the value).
//!
//! The English texts name other offers by their template's name (never an id or a stacking
//! group), give instants in the buyer's UTC offset ([`Buyer::utc_offset`](crate::cart::Buyer)),
//! say what left each line out of scope, and give one reason per state (a used coupon says it
//! is used, nothing else). `examples/reasons_zh.rs` renders every reason in Chinese from its
//! fields:
//!
//! ```text
//! coupon c-ten    使用后将失去包邮券「满99包邮」（门槛还差 ¥9.00）
//!                 would lose the shipping offer "满99包邮", whose minimum spend would then be 9.00 short
//! coupon c-liquor 购物车商品均不可用：baijiu-500ml 属于不参与的类目 liquor
//!                 not for the items in the cart: baijiu-500ml is in the excluded category liquor
//! coupon c-big    已于 2026年11月11日 10:00 过期
//!                 expired at 2026-11-11 10:00 (UTC+08:00)
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use super::OfferId;
use crate::id::{CategoryId, Channel, Sku, StackingGroup, TemplateId};
use crate::money::{Currency, Money};
use crate::rule::{AudienceMiss, Requirement};

/// Why a wallet coupon or code is unavailable regardless of the cart, as the caller's storage
/// knows it (the [`service`](crate::service) fills this from the coupon's state and counters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Blocked {
    /// Held by another unpaid order.
    Locked,
    /// Already used.
    Used,
    /// Expired.
    Expired,
    /// Voided.
    Voided,
    /// The buyer has used this template as often as allowed.
    UseLimitReached,
    /// The buyer's uses of this template are taken by coupons held by unpaid orders (they come
    /// back if those orders are cancelled or lapse).
    UsesHeld,
    /// The promo code has no uses left (in all, or for this buyer).
    CodeExhausted,
    /// The template is not issuing or applying now (paused, retired, not approved).
    Inactive,
}

/// Another offer, as a reason names it: its id (for the app) and its template's name (for the
/// buyer; [`Display`](fmt::Display) shows only the name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Named {
    /// The offer.
    pub offer: OfferId,
    /// The name buyers see (shared with the template).
    pub name: Arc<str>,
}

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.name)
    }
}

/// Why a cart line is outside a coupon's scope: the rule of the scope that leaves it out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum ExcludedBy {
    /// Its SKU is excluded.
    Sku,
    /// It is in an excluded category.
    Category {
        /// The category.
        category: CategoryId,
    },
    /// It is from a shop the coupon is not for (or from no shop).
    Shop,
    /// It is already on sale, and the coupon is not for sale items.
    SaleItem,
    /// It is neither among the SKUs nor in the categories the coupon is for.
    NotIncluded,
}

/// A cart line outside a coupon's scope, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Excluded {
    /// The line's product.
    pub sku: Sku,
    /// What leaves it out.
    pub by: ExcludedBy,
}

impl fmt::Display for Excluded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sku = &self.sku;
        match &self.by {
            ExcludedBy::Sku => write!(f, "{sku} is excluded"),
            ExcludedBy::Category { category } => {
                write!(f, "{sku} is in the excluded category {category}")
            }
            ExcludedBy::Shop => write!(f, "{sku} is from another shop"),
            ExcludedBy::SaleItem => write!(f, "{sku} is already on sale"),
            ExcludedBy::NotIncluded => write!(f, "{sku} is not among the eligible items"),
        }
    }
}

/// One reason an offer is not usable, or cannot join the chosen combination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "reason", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Ineligible {
    /// Unavailable whatever the cart (locked, used, voided…).
    Unavailable {
        /// Why.
        blocked: Blocked,
    },
    /// Not valid yet.
    NotYetValid {
        /// When it becomes valid, in the buyer's UTC offset.
        from: DateTime<FixedOffset>,
    },
    /// Validity has ended.
    Expired {
        /// When it ended, in the buyer's UTC offset.
        at: DateTime<FixedOffset>,
    },
    /// The coupon is in another currency than the cart.
    CurrencyMismatch {
        /// The cart's currency.
        cart: Currency,
        /// The coupon's.
        coupon: Currency,
    },
    /// The buyer is not in the coupon's audience.
    Audience {
        /// Which audience rule.
        miss: AudienceMiss,
    },
    /// Not usable on this channel.
    Channel {
        /// The checkout's channel.
        channel: Channel,
    },
    /// Not usable at this day or time.
    OutsideSchedule,
    /// No item in the cart is in the coupon's scope.
    NoItemInScope {
        /// Each line of the cart and what leaves it out (empty for an empty cart).
        excluded: Vec<Excluded>,
    },
    /// The eligible items do not reach the minimum spend.
    SpendMore {
        /// How much more is needed on eligible items.
        missing: Money,
    },
    /// The eligible items do not reach the minimum quantity.
    MoreItems {
        /// How many more units are needed.
        missing: u32,
    },
    /// The eligible items, before any discount, are above the coupon's maximum subtotal.
    AboveMaxSubtotal {
        /// The maximum.
        max: Money,
        /// By how much the eligible items exceed it.
        over: Money,
    },
    /// The cart lacks items the coupon requires (apart from its scope).
    RequiresItems {
        /// The requirement not met (boxed: it is larger than the other reasons).
        requirement: Box<Requirement>,
        /// How many more matching units are needed.
        missing: u32,
    },
    /// A shipping coupon, but the order has no shipping fee left.
    NoShippingFee,
    /// Applies, but would save nothing here.
    NothingToSave,
    /// Its stacking group already holds as many selected offers as allowed.
    GroupFull {
        /// The group.
        group: StackingGroup,
        /// The selected offers in it.
        with: Vec<Named>,
    },
    /// An exclusive offer is selected.
    ExclusiveSelected {
        /// The exclusive offer.
        with: Named,
    },
    /// This offer is exclusive and others are selected.
    ExclusiveNeedsAlone,
    /// This offer does not combine with automatic promotions, and one is selected.
    RefusesPromotions {
        /// The promotion.
        promotion: Named,
    },
    /// This is an automatic promotion, and a selected offer refuses promotions.
    RefusedBy {
        /// The offer that refuses it.
        offer: Named,
    },
    /// The order already holds the maximum number of coupons.
    MaxCoupons {
        /// The maximum.
        max: u32,
    },
    /// The order already holds as many coupons of this template as allowed.
    PerOrderLimit {
        /// The template.
        template: TemplateId,
        /// The limit.
        max: u32,
    },
    /// It fits the stacking rules but adds no saving on top of the selection (its threshold is
    /// no longer met after the selected discounts, or nothing is left to discount).
    NoExtraSaving,
    /// Adding it would cost another offer its threshold (measured after earlier discounts):
    /// typically free shipping from a minimum spend.
    LosesThreshold {
        /// The offer that would lose its threshold.
        offer: Named,
        /// Whether that offer reduces shipping.
        shipping: bool,
        /// How much more the buyer would then need to spend to keep it.
        missing: Money,
    },
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::Unavailable { blocked } => match blocked {
                Blocked::Locked => f.write_str("held by another unpaid order"),
                Blocked::Used => f.write_str("already used"),
                Blocked::Expired => f.write_str("expired"),
                Blocked::Voided => f.write_str("voided"),
                Blocked::UseLimitReached => {
                    f.write_str("you have used this offer as often as allowed")
                }
                Blocked::UsesHeld => f.write_str(
                    "your other coupons of this offer are held by unpaid orders; they come back \
                     if those orders are cancelled",
                ),
                Blocked::CodeExhausted => f.write_str("this code has no uses left"),
                Blocked::Inactive => f.write_str("this offer is not active"),
            },
            Ineligible::NotYetValid { from } => {
                write!(f, "valid from {}", from.format("%Y-%m-%d %H:%M (UTC%:z)"))
            }
            Ineligible::Expired { at } => {
                write!(f, "expired at {}", at.format("%Y-%m-%d %H:%M (UTC%:z)"))
            }
            Ineligible::CurrencyMismatch { cart, coupon } => {
                write!(f, "for {coupon} orders, this order is in {cart}")
            }
            Ineligible::Audience { miss } => match miss {
                AudienceMiss::NewUsersOnly => f.write_str("for new users only"),
                AudienceMiss::ReturningUsersOnly => f.write_str("for returning users only"),
                AudienceMiss::MembershipLevel => f.write_str("for certain membership levels only"),
                AudienceMiss::Segment => f.write_str("for selected customers only"),
                AudienceMiss::NamedUsers => f.write_str("not issued for this account"),
            },
            Ineligible::Channel { channel } => write!(f, "not on this channel ({channel})"),
            Ineligible::OutsideSchedule => f.write_str("not usable at this time"),
            Ineligible::NoItemInScope { excluded } => {
                if excluded.is_empty() {
                    return f.write_str("no item in the cart is eligible");
                }
                f.write_str("not for the items in the cart: ")?;
                const SHOWN: usize = 3;
                for (i, e) in excluded.iter().take(SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                match excluded.len().saturating_sub(SHOWN) {
                    0 => Ok(()),
                    1 => f.write_str("; and 1 more item"),
                    n => write!(f, "; and {n} more items"),
                }
            }
            Ineligible::SpendMore { missing } => {
                write!(f, "spend {} more on eligible items", missing.amount())
            }
            Ineligible::MoreItems { missing } => {
                let items = if *missing == 1 { "item" } else { "items" };
                write!(f, "add {missing} more eligible {items}")
            }
            Ineligible::AboveMaxSubtotal { max, over } => write!(
                f,
                "for eligible items of at most {} ({} over)",
                max.amount(),
                over.amount()
            ),
            Ineligible::RequiresItems {
                requirement,
                missing,
            } => {
                let unit = if *missing == 1 { "item" } else { "items" };
                write!(f, "add {missing} more {unit}")?;
                required(f, requirement)
            }
            Ineligible::NoShippingFee => f.write_str("no shipping fee to reduce"),
            Ineligible::NothingToSave => f.write_str("saves nothing on this order"),
            Ineligible::GroupFull { with, .. } => {
                write!(f, "cannot combine with ")?;
                list(f, with)?;
                f.write_str(if with.len() == 1 {
                    ", which is selected"
                } else {
                    ", which are selected"
                })
            }
            Ineligible::ExclusiveSelected { with } => {
                write!(f, "cannot combine with {with}, which is selected")
            }
            Ineligible::ExclusiveNeedsAlone => f.write_str("can only be used alone"),
            Ineligible::RefusesPromotions { promotion } => {
                write!(
                    f,
                    "cannot combine with the promotion {promotion}, which applies"
                )
            }
            Ineligible::RefusedBy { offer } => {
                write!(f, "cannot combine with {offer}, which is selected")
            }
            Ineligible::MaxCoupons { max } => {
                let coupons = if *max == 1 { "coupon" } else { "coupons" };
                write!(f, "at most {max} {coupons} per order")
            }
            Ineligible::PerOrderLimit { max, .. } => {
                write!(f, "at most {max} of this coupon per order")
            }
            Ineligible::NoExtraSaving => f.write_str("adds no saving to the selected coupons"),
            Ineligible::LosesThreshold {
                offer,
                shipping,
                missing,
            } => {
                if *shipping {
                    write!(f, "would lose the shipping offer {offer}")?;
                } else {
                    write!(f, "would lose the offer {offer}")?;
                }
                write!(
                    f,
                    ", whose minimum spend would then be {} short",
                    missing.amount()
                )
            }
        }
    }
}

/// ` of SKU a or b, or category c, from shop s` for a requirement.
fn required(f: &mut fmt::Formatter<'_>, r: &Requirement) -> fmt::Result {
    fn names<T: fmt::Display>(
        f: &mut fmt::Formatter<'_>,
        what: &str,
        set: &std::collections::BTreeSet<T>,
    ) -> fmt::Result {
        write!(f, "{what} ")?;
        for (i, x) in set.iter().enumerate() {
            if i > 0 {
                f.write_str(if i + 1 == set.len() { " or " } else { ", " })?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
    if r.skus.is_some() || r.categories.is_some() {
        f.write_str(" of ")?;
    }
    if let Some(skus) = &r.skus {
        names(f, if skus.len() == 1 { "SKU" } else { "SKUs" }, skus)?;
    }
    if let Some(cats) = &r.categories {
        if r.skus.is_some() {
            f.write_str(", or ")?;
        }
        names(
            f,
            if cats.len() == 1 {
                "category"
            } else {
                "categories"
            },
            cats,
        )?;
    }
    if let Some(shops) = &r.shops {
        f.write_str(" from ")?;
        names(f, if shops.len() == 1 { "shop" } else { "shops" }, shops)?;
    }
    Ok(())
}

fn list(f: &mut fmt::Formatter<'_>, named: &[Named]) -> fmt::Result {
    for (i, n) in named.iter().enumerate() {
        if i > 0 {
            f.write_str(if i + 1 == named.len() { " and " } else { ", " })?;
        }
        write!(f, "{n}")?;
    }
    Ok(())
}
