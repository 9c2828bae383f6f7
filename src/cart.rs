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
    /// A shipping line's fee is in another currency than the cart.
    #[error("shipping_lines[{index}].fee: {found} is not the cart's currency {expected}")]
    ShippingCurrencyMismatch {
        /// The shipping line's index.
        index: usize,
        /// The cart's currency.
        expected: Currency,
        /// The currency found.
        found: Currency,
    },
    /// A shipping line's fee is negative.
    #[error("shipping_lines[{index}].fee: {value} is negative")]
    ShippingNegative {
        /// The shipping line's index.
        index: usize,
        /// The fee.
        value: Money,
    },
    /// Two shipping lines name the same shop (or both none).
    #[error("shipping_lines[{index}].shop: a second shipping line for the same shop")]
    ShippingShopTwice {
        /// The index of the second line.
        index: usize,
    },
    /// Cart JSON gave both `shipping` and `shipping_lines`, or neither.
    #[error("shipping: give `shipping` (one fee) or `shipping_lines`, exactly one of them")]
    ShippingForm,
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
    fn shipping_at -> Option<Money> = "shipping";
    fn ship_shop_at -> Option<ShopId> = "shipping_lines.shop";
    fn ship_fee_at -> Money = "shipping_lines.fee";
}

#[cfg(feature = "serde")]
fn shipping_lines_at<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<ShippingLine>>, D::Error> {
    crate::de::nested_list("shipping_lines", d).map(Some)
}

/// One shipment's fee: the shop that ships it, on a marketplace where each shop ships its own
/// parcel, or none for the order's one fee ([`Cart::new`]).
///
/// A shipping offer reaches the shipping lines of the shops its scope reaches (a line of shop
/// `s` in scope reaches the shipping line of `s`); a shipping line with no shop is reached by
/// every offer. In JSON `{"shop": "6021", "fee": {"amount": "8.00", "currency": "CNY"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct ShippingLine {
    /// The shop that ships, if the order has one fee per shop.
    #[cfg_attr(
        feature = "serde",
        serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "ship_shop_at"
        )
    )]
    pub shop: Option<ShopId>,
    /// The fee, not negative.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "ship_fee_at"))]
    pub fee: Money,
}

impl ShippingLine {
    /// The shipping fee of `shop`'s parcel.
    pub fn of_shop(shop: ShopId, fee: Money) -> ShippingLine {
        ShippingLine {
            shop: Some(shop),
            fee,
        }
    }
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
    /// The shipments; one line with no shop for a cart of one fee.
    shipping_lines: Vec<ShippingLine>,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CartRepr {
    #[serde(deserialize_with = "currency_at")]
    currency: Currency,
    #[serde(deserialize_with = "lines_at")]
    lines: Vec<CartLine>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "shipping_at"
    )]
    shipping: Option<Money>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "shipping_lines_at"
    )]
    shipping_lines: Option<Vec<ShippingLine>>,
}

#[cfg(feature = "serde")]
impl TryFrom<CartRepr> for Cart {
    type Error = CartError;
    fn try_from(r: CartRepr) -> Result<Self, CartError> {
        match (r.shipping, r.shipping_lines) {
            (Some(fee), None) => Cart::new(r.currency, r.lines, fee),
            (None, Some(ships)) => Cart::with_shipping_lines(r.currency, r.lines, ships),
            _ => Err(CartError::ShippingForm),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Cart> for CartRepr {
    fn from(c: Cart) -> Self {
        let one_fee = c.has_one_fee();
        CartRepr {
            currency: c.currency,
            lines: c.lines,
            shipping: one_fee.then_some(c.shipping),
            shipping_lines: (!one_fee).then_some(c.shipping_lines),
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
            shipping_lines: vec![ShippingLine {
                shop: None,
                fee: shipping,
            }],
        })
    }

    /// Checks and builds a cart whose shipping is a set of shipments, each with its own fee
    /// (one per shop on a marketplace); [`Cart::shipping`] is their sum.
    ///
    /// ```
    /// use coupons::cart::{Cart, CartLine, ShippingLine};
    /// use coupons::id::{ShopId, Sku};
    /// use coupons::money::{Currency, Money};
    /// let cny = Currency::CNY;
    /// let (a, b) = (ShopId::new("6021")?, ShopId::new("7788")?);
    /// let cart = Cart::with_shipping_lines(
    ///     cny,
    ///     vec![
    ///         CartLine::new(Sku::new("tea")?, Money::from_minor(4500, cny), 2).from_shop(a.clone()),
    ///         CartLine::new(Sku::new("cup")?, Money::from_minor(1200, cny), 1).from_shop(b.clone()),
    ///     ],
    ///     vec![
    ///         ShippingLine::of_shop(a, Money::from_minor(800, cny)),
    ///         ShippingLine::of_shop(b, Money::from_minor(600, cny)),
    ///     ],
    /// )?;
    /// assert_eq!(cart.shipping().to_string(), "14.00 CNY");
    /// assert_eq!(cart.shipping_lines().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Cart::new`] for the lines; [`CartError::ShippingCurrencyMismatch`],
    /// [`CartError::ShippingNegative`] for a fee, [`CartError::ShippingShopTwice`] when two
    /// shipping lines name the same shop (or both none), [`CartError::Money`] when the fees
    /// or the total overflow.
    pub fn with_shipping_lines(
        currency: Currency,
        lines: Vec<CartLine>,
        shipping_lines: Vec<ShippingLine>,
    ) -> Result<Cart, CartError> {
        let mut total = Money::zero(currency);
        for (index, s) in shipping_lines.iter().enumerate() {
            if s.fee.currency() != currency {
                return Err(CartError::ShippingCurrencyMismatch {
                    index,
                    expected: currency,
                    found: s.fee.currency(),
                });
            }
            if s.fee.is_negative() {
                return Err(CartError::ShippingNegative {
                    index,
                    value: s.fee,
                });
            }
            if shipping_lines[..index].iter().any(|o| o.shop == s.shop) {
                return Err(CartError::ShippingShopTwice { index });
            }
            total = total.checked_add(&s.fee)?;
        }
        let mut cart = Cart::new(currency, lines, total)?;
        cart.shipping_lines = shipping_lines;
        Ok(cart)
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

    /// The shipping fee: the sum of the shipping lines.
    pub fn shipping(&self) -> Money {
        self.shipping
    }

    /// The shipments, each with its fee: one line with no shop for a cart built by
    /// [`Cart::new`].
    pub fn shipping_lines(&self) -> &[ShippingLine] {
        &self.shipping_lines
    }

    /// Whether the cart has one shipping fee, not per shop: one shipping line with no shop.
    pub fn has_one_fee(&self) -> bool {
        matches!(
            self.shipping_lines.as_slice(),
            [ShippingLine { shop: None, .. }]
        )
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
