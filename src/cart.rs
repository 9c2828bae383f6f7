//! The cart and the buyer at checkout: what is being bought, by whom, through which channel.

use std::collections::BTreeSet;

use chrono::{FixedOffset, Offset};

use crate::id::{CategoryId, Channel, MembershipLevel, SegmentId, ShopId, Sku, UserId};
use crate::money::{Currency, Money, MoneyError};

/// Where in a cart an amount stands: `lines[2].unit_price` or `shipping` (the same path the
/// cart's JSON has).
struct At(Option<usize>);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(i) => write!(f, "lines[{i}].unit_price"),
            None => f.write_str("shipping"),
        }
    }
}

/// A cart could not be built. Each message starts with the path of the value, as in the cart's
/// JSON: `lines[0].unit_price: 5.00 USD is not the cart's currency CNY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CartError {
    /// A line or the shipping fee is in another currency than the cart.
    #[error("{}: {found} is not the cart's currency {expected}", At(*line))]
    CurrencyMismatch {
        /// The line index, or `None` for the shipping fee.
        line: Option<usize>,
        /// The cart's currency.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// A negative unit price or shipping fee.
    #[error("{}: {value} is negative", At(*line))]
    Negative {
        /// The line index, or `None` for the shipping fee.
        line: Option<usize>,
        /// The amount.
        value: Money,
    },
    /// A line with quantity zero.
    #[error("lines[{line}].quantity: must be at least 1")]
    ZeroQuantity {
        /// The line index.
        line: usize,
    },
    /// A line total or the cart total does not fit.
    #[error("cart total: {0}")]
    Money(#[from] MoneyError),
}

#[cfg(feature = "serde")]
crate::de::field_paths! {
    fn sku_at -> Sku = "lines.sku";
    fn categories_at -> Vec<CategoryId> = "lines.categories";
    fn shop_at -> Option<ShopId> = "lines.shop";
    fn unit_price_at -> Money = "lines.unit_price";
    fn quantity_at -> u32 = "lines.quantity";
    fn on_sale_at -> bool = "lines.on_sale";
    fn currency_at -> Currency = "currency";
    fn lines_at -> nested_list CartLine = "lines";
    fn shipping_at -> Money = "shipping";
}

/// One line of a cart: a SKU, its categories and shop, unit price and quantity.
///
/// In JSON an object with exactly these fields (an unknown one is refused, so a client's
/// `subtotal` is never silently ignored); errors name the line: `lines[1].quantity: expected a
/// non-negative integer, got -2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct CartLine {
    /// The product.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "sku_at"))]
    pub sku: Sku,
    /// Its categories (a product may sit in several).
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "categories_at"))]
    pub categories: Vec<CategoryId>,
    /// The shop or seller, on a marketplace.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "shop_at"))]
    pub shop: Option<ShopId>,
    /// Price of one unit, not negative.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "unit_price_at"))]
    pub unit_price: Money,
    /// Number of units, at least 1.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "quantity_at"))]
    pub quantity: u32,
    /// Whether the item is already on sale.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "on_sale_at"))]
    pub on_sale: bool,
}

impl CartLine {
    /// A line with no categories, no shop, not on sale.
    pub fn new(sku: Sku, unit_price: Money, quantity: u32) -> CartLine {
        CartLine {
            sku,
            categories: Vec::new(),
            shop: None,
            unit_price,
            quantity,
            on_sale: false,
        }
    }

    /// Adds a category.
    pub fn in_category(mut self, category: CategoryId) -> CartLine {
        self.categories.push(category);
        self
    }

    /// Sets the shop.
    pub fn from_shop(mut self, shop: ShopId) -> CartLine {
        self.shop = Some(shop);
        self
    }

    /// Marks the line as already on sale.
    pub fn on_sale(mut self) -> CartLine {
        self.on_sale = true;
        self
    }
}

/// A checked cart: every amount in one currency, no negative price, no empty line, totals that
/// fit.
///
/// ```
/// use coupons::cart::{Cart, CartLine};
/// use coupons::id::Sku;
/// use coupons::money::{Currency, Money};
/// let cny = Currency::CNY;
/// let cart = Cart::new(
///     cny,
///     vec![CartLine::new(Sku::new("tea")?, Money::from_minor(4500, cny), 2)],
///     Money::from_minor(800, cny),
/// )?;
/// assert_eq!(cart.items_total().to_string(), "90.00 CNY");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "CartRepr", into = "CartRepr")
)]
pub struct Cart {
    currency: Currency,
    lines: Vec<CartLine>,
    line_totals: Vec<Money>,
    items_total: Money,
    shipping: Money,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CartRepr {
    #[serde(deserialize_with = "currency_at")]
    currency: Currency,
    #[serde(deserialize_with = "lines_at")]
    lines: Vec<CartLine>,
    #[serde(deserialize_with = "shipping_at")]
    shipping: Money,
}

#[cfg(feature = "serde")]
impl TryFrom<CartRepr> for Cart {
    type Error = CartError;
    fn try_from(r: CartRepr) -> Result<Self, CartError> {
        Cart::new(r.currency, r.lines, r.shipping)
    }
}

#[cfg(feature = "serde")]
impl From<Cart> for CartRepr {
    fn from(c: Cart) -> Self {
        CartRepr {
            currency: c.currency,
            lines: c.lines,
            shipping: c.shipping,
        }
    }
}

impl Cart {
    /// Checks and builds a cart.
    ///
    /// # Errors
    /// [`CartError::CurrencyMismatch`], [`CartError::Negative`], [`CartError::ZeroQuantity`],
    /// and [`CartError::Money`] when a total overflows.
    pub fn new(
        currency: Currency,
        lines: Vec<CartLine>,
        shipping: Money,
    ) -> Result<Cart, CartError> {
        let check = |line: Option<usize>, m: Money| -> Result<(), CartError> {
            if m.currency() != currency {
                return Err(CartError::CurrencyMismatch {
                    line,
                    expected: currency,
                    found: m.currency(),
                });
            }
            if m.is_negative() {
                return Err(CartError::Negative { line, value: m });
            }
            Ok(())
        };
        check(None, shipping)?;
        let mut line_totals = Vec::with_capacity(lines.len());
        let mut items_total = Money::zero(currency);
        for (i, l) in lines.iter().enumerate() {
            check(Some(i), l.unit_price)?;
            if l.quantity == 0 {
                return Err(CartError::ZeroQuantity { line: i });
            }
            let t = l.unit_price.checked_mul_int(u64::from(l.quantity))?;
            t.to_minor()?;
            items_total = items_total.checked_add(&t)?;
            line_totals.push(t);
        }
        items_total.checked_add(&shipping)?.to_minor()?;
        Ok(Cart {
            currency,
            lines,
            line_totals,
            items_total,
            shipping,
        })
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The lines.
    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }

    /// Unit price × quantity of line `i`, or `None` past the end.
    pub fn line_total(&self, i: usize) -> Option<Money> {
        self.line_totals.get(i).copied()
    }

    /// The sum of the lines.
    pub fn items_total(&self) -> Money {
        self.items_total
    }

    /// The shipping fee.
    pub fn shipping(&self) -> Money {
        self.shipping
    }
}

/// Whether a buyer has ordered before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum CustomerKind {
    /// No completed order yet.
    New,
    /// Has ordered before.
    #[default]
    Returning,
}

/// Who is checking out, and through which channel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Buyer {
    /// The account.
    pub user: UserId,
    /// New or returning.
    #[cfg_attr(feature = "serde", serde(default))]
    pub kind: CustomerKind,
    /// Membership level, if any.
    #[cfg_attr(feature = "serde", serde(default))]
    pub membership: Option<MembershipLevel>,
    /// Segments the buyer belongs to.
    #[cfg_attr(feature = "serde", serde(default))]
    pub segments: BTreeSet<SegmentId>,
    /// The channel of this checkout (`app`, `web`, `store`…).
    pub channel: Channel,
    /// The buyer's UTC offset, in which reasons give instants ("valid from 2026-11-11 00:00
    /// (UTC+08:00)"); `None` for UTC. In JSON `"+08:00"`.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none", with = "offset_json")
    )]
    pub utc_offset: Option<FixedOffset>,
}

/// A UTC offset as `"+08:00"` in JSON.
#[cfg(feature = "serde")]
mod offset_json {
    use chrono::FixedOffset;
    use serde::{Deserializer, Serializer};

    use crate::de::{Path, text_then};

    pub(super) fn serialize<S: Serializer>(
        o: &Option<FixedOffset>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match o {
            Some(o) => s.collect_str(o),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<FixedOffset>, D::Error> {
        const PATH: Path = Path::new("buyer.utc_offset");
        text_then(PATH, "an offset such as \"+08:00\"", d, |t| {
            crate::rule::parse_offset(t)
                .map(Some)
                .map_err(|e| format!("{PATH}: {e}"))
        })
    }
}

impl Buyer {
    /// Sets the buyer's UTC offset, in which reasons give instants.
    pub fn in_offset(mut self, offset: FixedOffset) -> Buyer {
        self.utc_offset = Some(offset);
        self
    }

    /// The offset reasons show instants in: the buyer's, or UTC.
    pub fn offset(&self) -> FixedOffset {
        self.utc_offset.unwrap_or_else(|| chrono::Utc.fix())
    }

    /// A returning buyer with no membership or segments.
    pub fn new(user: UserId, channel: Channel) -> Buyer {
        Buyer {
            user,
            kind: CustomerKind::Returning,
            membership: None,
            segments: BTreeSet::new(),
            channel,
            utc_offset: None,
        }
    }
}
