//! What a coupon gives: the seventeen benefit kinds and exactly how each computes.
//!
//! Every kind computes on the coupon's *base*: the amount of the cart lines in its
//! [`Scope`](super::Scope) (for the shipping kinds, the shipping fee; for
//! [`Benefit::ItemsAndShipping`], both), as left by the coupons applied before it (see
//! [`StackingPolicy`](crate::checkout::StackingPolicy)). A saving never exceeds its base, and is
//! rounded to the currency's minor unit with the policy's [`Rounding`](crate::money::Rounding)
//! (and, for percentages, its [`RoundingScope`](crate::checkout::RoundingScope)).
//!
//! Unit offers take units as follows: [`BuyGet`](Benefit::BuyGet) and
//! [`BuyXGetY`](Benefit::BuyXGetY) reward the cheapest units, [`FixedPrice`](Benefit::FixedPrice)
//! and [`PerUnit`](Benefit::PerUnit) take the dearest first, [`ApplyOnce`](Benefit::ApplyOnce)
//! the one its `pick` names (ties: the cheapest from the earliest line, the dearest from the
//! latest). See [`Benefit`] for how units are priced one by one.

use rust_decimal::Decimal;

use super::Scope;
use super::error::{RuleError, positive_in, same_currency};
use crate::id::Sku;
use crate::money::{Currency, Money};

/// A percentage in `(0, 100]` with at most four decimal places, e.g. `15` for "15 % off".
///
/// ```
/// use coupons::rule::Percent;
/// use rust_decimal::Decimal;
/// let p = Percent::new(Decimal::new(15, 0))?;
/// assert_eq!(p.to_string(), "15%");
/// assert!(Percent::new(Decimal::ZERO).is_err());
/// assert!(Percent::new(Decimal::new(1001, 1)).is_err());
/// # Ok::<(), coupons::rule::RuleError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "Decimal", into = "Decimal")
)]
pub struct Percent(Decimal);

impl Percent {
    /// A percentage.
    ///
    /// # Errors
    /// [`RuleError::PercentOutOfRange`] when the value is not in `(0, 100]`;
    /// [`RuleError::Invalid`] when it has more than four decimal places.
    pub fn new(value: Decimal) -> Result<Percent, RuleError> {
        if value <= Decimal::ZERO || value > Decimal::ONE_HUNDRED {
            return Err(RuleError::PercentOutOfRange {
                field: "percent",
                value,
            });
        }
        let value = value.normalize();
        if value.scale() > 4 {
            return Err(RuleError::Invalid {
                field: "percent",
                value: value.to_string(),
                reason: "a percentage has at most four decimal places",
            });
        }
        Ok(Percent(value))
    }

    /// [`Percent::new`] with errors naming `field` (e.g. `benefit.tiers.percent`).
    #[cfg(feature = "serde")]
    pub(crate) fn at(field: &'static str, value: Decimal) -> Result<Percent, RuleError> {
        Percent::new(value).map_err(|e| match e {
            RuleError::PercentOutOfRange { value, .. } => {
                RuleError::PercentOutOfRange { field, value }
            }
            RuleError::Invalid { value, reason, .. } => RuleError::Invalid {
                field,
                value,
                reason,
            },
            other => other,
        })
    }

    /// The value, e.g. `15`.
    pub fn value(&self) -> Decimal {
        self.0
    }

    /// The fraction, e.g. `0.15`.
    pub fn ratio(&self) -> Decimal {
        self.0 / Decimal::ONE_HUNDRED
    }
}

impl TryFrom<Decimal> for Percent {
    type Error = RuleError;
    fn try_from(value: Decimal) -> Result<Self, RuleError> {
        Percent::new(value)
    }
}

impl From<Percent> for Decimal {
    fn from(p: Percent) -> Decimal {
        p.0
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// One tier of a threshold reduction: spend at least `spend`, save `save`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Tier {
    /// The threshold: the base must reach it.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "tier_spend_at"))]
    pub spend: Money,
    /// The saving when it does.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "tier_save_at"))]
    pub save: Money,
}

/// One tier of a tiered percentage: when the base reaches `spend`, `percent` off (满额打折).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct PercentTier {
    /// The threshold the base must reach; zero for an unconditional base tier (first tier only).
    #[cfg_attr(feature = "serde", serde(deserialize_with = "ptier_spend_at"))]
    pub spend: Money,
    /// The percentage off the whole base when it does.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "ptier_percent_at"))]
    pub percent: Percent,
}

/// One tier of a quantity tier: with at least `units` units in scope, `percent` off (多件多折).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct QuantityTier {
    /// The units in scope needed, at least 1.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "qtier_units_at"))]
    pub units: u32,
    /// The percentage off the whole base when they are there.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "qtier_percent_at"))]
    pub percent: Percent,
}

/// Which single unit an [`ApplyOnce`](Benefit::ApplyOnce) benefit takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum UnitPick {
    /// The unit with the least left to pay (ties: the earliest line).
    Cheapest,
    /// The unit with the most left to pay (ties: the latest line).
    Dearest,
}

/// What an [`ApplyOnce`](Benefit::ApplyOnce) benefit takes off its one unit (or an
/// [`ItemsAndShipping`](Benefit::ItemsAndShipping) benefit off the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitOff {
    /// An amount, at most what is left of the unit.
    Amount(Money),
    /// A percentage of what is left of the unit.
    Percent(Percent),
}

/// What each reward unit of a [`BuyXGetY`](Benefit::BuyXGetY) gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)
)]
pub enum Reward {
    /// Free.
    Free,
    /// A percentage off.
    Percent {
        /// The percentage, in `(0, 100]`.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "reward_percent_at"))]
        percent: Percent,
    },
    /// Sold at a fixed price (a unit already at or below it is left as it is).
    Price {
        /// The price of one reward unit, zero or above.
        #[cfg_attr(feature = "serde", serde(deserialize_with = "reward_price_at"))]
        price: Money,
    },
}

/// The benefit of a coupon. Build one with the constructors, which check every invariant; the
/// same checks run when deserialising.
///
/// | kind | 中文 | saving on a base `B` |
/// |---|---|---|
/// | [`Instant`](Benefit::Instant) | 立减 | `min(amount, B)` |
/// | [`Threshold`](Benefit::Threshold) | 满减 | the `save` of the highest tier with `spend ≤ B`, else not applicable |
/// | [`EveryThreshold`](Benefit::EveryThreshold) | 每满减 | `⌊B / every⌋ × save`, at most `max_saving` |
/// | [`Percent`](Benefit::Percent) | 折扣券 | `round(B × percent / 100)`, at most `max_saving` |
/// | [`Shipping`](Benefit::Shipping) | 免运费 | `min(shipping fee, cap)` off the shipping fee |
/// | [`BuyGet`](Benefit::BuyGet) | 买N送M | per `buy + get` units in scope, the `get` cheapest are free |
/// | [`FixedPrice`](Benefit::FixedPrice) | N件X元 | each bundle of `quantity` units costs `price` |
/// | [`PerUnit`](Benefit::PerUnit) | 每件立减 | `min(amount, unit)` off each unit, dearest first, at most `max_units` |
/// | [`PerLine`](Benefit::PerLine) | 每行立减 | `min(amount, line)` off each line, dearest first, at most `max_lines` |
/// | [`ApplyOnce`](Benefit::ApplyOnce) | 单件优惠 | an amount or percentage off the cheapest (or dearest) unit |
/// | [`TieredPercent`](Benefit::TieredPercent) | 满额打折 | the `percent` of the highest tier with `spend ≤ B`, off `B` |
/// | [`QuantityTiers`](Benefit::QuantityTiers) | 多件多折 | the `percent` of the highest tier with `units ≤` units in scope, off `B` |
/// | [`ShippingPercent`](Benefit::ShippingPercent) | 运费折扣 | `round(fee × percent / 100)` off the shipping fee |
/// | [`ShippingPrice`](Benefit::ShippingPrice) | 运费一口价 | shipping costs `price`: `max(fee − price, 0)` off |
/// | [`ItemsAndShipping`](Benefit::ItemsAndShipping) | 全单立减 | an amount or percentage off `B` plus the shipping fee together |
/// | [`BuyXGetY`](Benefit::BuyXGetY) | 买A赠B | per `buy` units of `buy_scope`, `get` units of the scope get the reward, cheapest first |
/// | [`Gift`](Benefit::Gift) | 满赠 | `quantity` units of `sku` added free: `value × quantity`, its own line in the quote |
///
/// A percentage coupon's threshold ("10 % off orders over 200") and any other minimum spend is
/// [`Conditions::min_subtotal`](super::Conditions::min_subtotal), measured on the same base.
///
/// # Units priced one by one
/// Units are priced one by one: a unit's value is what is left of it after the offers applied
/// before, never a line average. A unit made free is worth zero from then on, so it is never
/// discounted again (a second buy-get finds it among the cheapest). An amount taken off a line
/// (the share of a threshold, instant or percentage) comes off its dearest units first,
/// levelling them, so a line no unit offer touched stays as even as its amount allows (`r mod q`
/// units worth one minor unit more than the rest). A percentage a unit offer gives (an
/// [`ApplyOnce`](Benefit::ApplyOnce) or a buy-X-get-Y reward) is rounded on each unit. A line's
/// units are kept as runs of equal value, so the cost follows the number of distinct values,
/// never the quantity: a line of `u32::MAX` units prices as fast as a line of one.
///
/// Worked, 4 units at 30.00, buy 2 get 1 then any 2 for 40.00: one unit is free (30.00), the
/// two dearest left make a bundle, 60.00 for 40.00 (20.00); the next pair, 30.00 + 0.00, is not
/// worth a bundle. 50.00 in all.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "BenefitRepr", into = "BenefitRepr")
)]
#[non_exhaustive]
pub enum Benefit {
    /// 立减 — an instant reduction with no threshold.
    ///
    /// Saving: `min(amount, B)`. Worked: 20 off on a base of 58.00 saves 20.00; on a base of
    /// 15.00 it saves 15.00 (never more than the base).
    #[non_exhaustive]
    Instant {
        /// The reduction, above zero.
        amount: Money,
    },
    /// 满减 — "spend X save Y", with one or more tiers; the highest tier reached applies.
    ///
    /// Worked, with tiers spend 100 save 10 and spend 200 save 25: a base of 99.99 is not
    /// applicable (the reason says 0.01 more is needed); 150.00 saves 10.00; 200.00 and 350.00
    /// save 25.00.
    #[non_exhaustive]
    Threshold {
        /// Tiers in strictly increasing `spend`, each `save` below its `spend` and not below the
        /// previous tier's.
        tiers: Vec<Tier>,
    },
    /// 每满减 — "save Y for every X spent", optionally capped.
    ///
    /// Saving: `⌊B / every⌋ × save`, at most `max_saving`; not applicable below `every`.
    /// Worked, every 100 save 15 capped at 40: a base of 250.00 saves 30.00; 380.00 saves 40.00
    /// (45.00 capped); 99.00 is not applicable.
    #[non_exhaustive]
    EveryThreshold {
        /// The step, above zero.
        every: Money,
        /// The saving per step, above zero and below `every`.
        save: Money,
        /// The cap on the whole saving, if any.
        max_saving: Option<Money>,
    },
    /// 折扣券 — a percentage off, optionally capped.
    ///
    /// Saving: `B × percent / 100` rounded to the minor unit, at most `max_saving`.
    /// Worked, 15 % off capped at 30: a base of 59.97 saves 9.00 (8.9955 rounded half-even);
    /// 400.00 saves 30.00 (60.00 capped).
    #[non_exhaustive]
    Percent {
        /// The percentage, in `(0, 100]`.
        percent: Percent,
        /// The cap on the saving, if any.
        max_saving: Option<Money>,
    },
    /// Free or reduced shipping: takes up to `cap` off the shipping fee (all of it when `cap` is
    /// `None`). It reduces shipping only, never the items; its scope and minimum spend decide
    /// whether the order qualifies.
    ///
    /// Worked: free shipping on a fee of 12.00 saves 12.00; "up to 8 off shipping" saves 8.00 of
    /// 12.00 and 5.00 of 5.00.
    ///
    /// Every shipping kind takes off the shipping lines it reaches: those of the shops its
    /// scope reaches, and a line with no shop (see
    /// [`ShippingLine`](crate::cart::ShippingLine)); a cap or a percentage applies to them
    /// together and is apportioned by fee. Worked, up to 10.00 off on parcels of 8.00 and
    /// 12.00: 4.00 and 6.00.
    #[non_exhaustive]
    Shipping {
        /// The most it takes off the fee; `None` for free shipping.
        cap: Option<Money>,
    },
    /// 买N送M — buy `buy`, get `get` free: in every `buy + get` units in scope, the `get`
    /// cheapest are free; repeating, optionally capped at `max_free_units`.
    ///
    /// Worked, buy 2 get 1 on units priced 30, 20, 20, 10, 10, 5 (6 units → 2 groups → 2 free
    /// units): the two cheapest, 5 and 10, are free — saving 15.00.
    #[non_exhaustive]
    BuyGet {
        /// Units to pay for in each group, at least 1.
        buy: u32,
        /// Units free in each group, at least 1.
        get: u32,
        /// Cap on the free units in one order, if any.
        max_free_units: Option<u32>,
    },
    /// N件X元 — any `quantity` units in scope for `price`, repeating, optionally capped at
    /// `max_bundles`. The most expensive units form the bundles (best for the buyer); a bundle
    /// that would cost more than its units is not formed.
    ///
    /// Worked, any 3 for 99 on units priced 50, 40, 30, 20 (4 units → 1 bundle): the bundle is
    /// 50 + 40 + 30 = 120 for 99 — saving 21.00; the 20 unit pays full price.
    ///
    /// A bundle of equal units pays the price evenly (99 over 3 units of 40: 33 each); a bundle
    /// of units of different values gives up its saving in proportion to them. Bundles of equal
    /// units are priced together in closed form, so `u32::MAX` units cost one step.
    #[non_exhaustive]
    FixedPrice {
        /// Units in a bundle, at least 1.
        quantity: u32,
        /// The price of one bundle, above zero.
        price: Money,
        /// Cap on bundles in one order, if any.
        max_bundles: Option<u32>,
    },
    /// 每件立减 — `amount` off each unit in scope, at most what is left of the unit; with
    /// `max_units`, only that many units, the dearest first (best for the buyer).
    ///
    /// Worked, 5 off each, at most 3 units, on 2 units at 30.00 and 2 at 4.00: the two 30.00
    /// units and one 4.00 unit are taken — 5 + 5 + 4 = 14.00 saved.
    #[non_exhaustive]
    PerUnit {
        /// The reduction per unit, above zero.
        amount: Money,
        /// The most units reduced in one order, if capped.
        max_units: Option<u32>,
    },
    /// 每行立减 — `amount` off each line in scope (whatever its quantity), at most what is left
    /// of the line; with `max_lines`, only that many lines, the dearest first.
    ///
    /// Worked, 10 off each line, at most 2 lines, on lines of 3 × 20.00, 1 × 8.00 and 1 × 15.00:
    /// the 60.00 and 15.00 lines are taken — 10 + 10 = 20.00 saved.
    #[non_exhaustive]
    PerLine {
        /// The reduction per line, above zero.
        amount: Money,
        /// The most lines reduced in one order, if capped.
        max_lines: Option<u32>,
    },
    /// 单件优惠 — once per order: an amount or a percentage off one unit in scope, the cheapest
    /// or the dearest as left by earlier offers (a cheapest unit already free leaves nothing to
    /// save).
    ///
    /// Worked, 50 % off the dearest unit of 80.00, 45.00 and 45.00 saves 40.00; 20 off the
    /// cheapest saves 20.00 of a 45.00 unit (the earlier line's).
    #[non_exhaustive]
    ApplyOnce {
        /// Which unit.
        pick: UnitPick,
        /// What it takes off.
        off: UnitOff,
    },
    /// 满额打折 — a percentage off the base, the higher the base the higher the percentage: the
    /// tier with the highest `spend` not above the base applies; a first tier with `spend` zero
    /// applies to any base.
    ///
    /// Worked, tiers 0 → 5 %, 200 → 10 %, 500 → 15 %, capped at 60: a base of 150.00 saves 7.50;
    /// 300.00 saves 30.00; 600.00 saves 60.00 (90.00 capped).
    #[non_exhaustive]
    TieredPercent {
        /// Tiers in strictly increasing `spend` and non-decreasing `percent`.
        tiers: Vec<PercentTier>,
        /// The cap on the saving, if any.
        max_saving: Option<Money>,
    },
    /// 多件多折 — a percentage off the base, by the number of units in scope: the tier with the
    /// highest `units` not above that number applies.
    ///
    /// Worked, 2 units → 10 %, 3 units → 20 %: 2 units of 50.00 save 10.00; 4 units of 50.00 save
    /// 40.00; 1 unit is not applicable (1 more unit is needed).
    #[non_exhaustive]
    QuantityTiers {
        /// Tiers in strictly increasing `units` and non-decreasing `percent`.
        tiers: Vec<QuantityTier>,
        /// The cap on the saving, if any.
        max_saving: Option<Money>,
    },
    /// 运费折扣 — a percentage off the shipping fee (never the items), rounded to the minor unit.
    ///
    /// Worked, 50 % off shipping on a fee of 12.00 saves 6.00; on 9.99 it saves 5.00 (4.995
    /// rounded half-even).
    #[non_exhaustive]
    ShippingPercent {
        /// The percentage, in `(0, 100]`.
        percent: Percent,
    },
    /// 买A赠B — buy X get Y over separate sets: for every `buy` units in `buy_scope`, `get`
    /// units of the template's scope (the reward set) get the `reward` (free, a percentage off,
    /// or a fixed price), repeating, at most `max_units` reward units. The reward units are the
    /// cheapest of the reward set; a unit in both sets counts once, either as bought or as
    /// rewarded (the groups are as many as the units allow either way).
    ///
    /// Worked, buy 2 shirts get 1 hat at 50 % off, on 3 shirts at 100.00 and 2 hats at 40.00
    /// and 1 hat at 30.00: 3 shirts make 1 group, so the cheapest hat, 30.00, is half price —
    /// 15.00 saved. With 4 shirts, 2 groups: 30.00 and 40.00 at half price — 35.00 saved.
    #[non_exhaustive]
    BuyXGetY {
        /// Units of `buy_scope` per group, at least 1.
        buy: u32,
        /// What counts toward `buy`.
        buy_scope: Scope,
        /// Reward units per group, at least 1.
        get: u32,
        /// What each reward unit gets.
        reward: Reward,
        /// Cap on the reward units in one order, if any.
        max_units: Option<u32>,
    },
    /// 全单立减 — one discount over the items in scope and the shipping fee together: an amount
    /// (at most their sum) or a percentage of their sum (at most `max_saving`), shared between
    /// the lines and the fee in proportion to what is left of each. The minimum spend is still
    /// measured on the items.
    ///
    /// Worked, 10 % off items and shipping on items of 90.00 and a fee of 10.00 saves 10.00:
    /// 9.00 from the items and 1.00 from shipping. 30 off on items of 20.00 and a fee of 5.00
    /// saves 25.00 (everything).
    #[non_exhaustive]
    ItemsAndShipping {
        /// An amount or a percentage.
        off: UnitOff,
        /// The cap on a percentage's saving, if any.
        max_saving: Option<Money>,
    },
    /// 运费一口价 — shipping at a fixed price: a fee above `price` is reduced to it, a fee at or
    /// below it is left as it is (nothing to save). With shipping lines, each parcel it reaches
    /// costs at most `price`.
    ///
    /// Worked, shipping for 5.00: a fee of 12.00 saves 7.00; a fee of 5.00 saves nothing;
    /// parcels of 12.00 and 4.00 save 7.00.
    #[non_exhaustive]
    ShippingPrice {
        /// What shipping costs with the coupon, zero or above.
        price: Money,
    },
    /// 满赠 — a gift: `quantity` units of `sku` are added to the order free when the coupon's
    /// conditions hold (its minimum spend on the lines in scope, its requirements). The quote
    /// shows the gift as its own line, after the cart's, priced `value × quantity` and fully
    /// discounted by the offer, so the saving counts the gift's value and what the buyer pays
    /// is unchanged. A gift competes with discounts by that value; it stands with the amount
    /// offers, as a fixed reduction, and its threshold is measured like theirs.
    ///
    /// Worked, spend 199 get a mug worth 25.00: on 210.00 of items the quote has a line
    /// `mug × 1`, original 25.00, final 0.00; the saving is 25.00 and the buyer pays 210.00.
    /// Against an exclusive 20.00 off, the gift is chosen (25.00 > 20.00).
    #[non_exhaustive]
    Gift {
        /// The product given.
        sku: Sku,
        /// The value of one unit, above zero (what the quote shows it at).
        value: Money,
        /// Units given, at least 1.
        quantity: u32,
    },
}

impl Benefit {
    /// 立减: `amount` off, no threshold.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] when `amount` is not above zero.
    pub fn instant(amount: Money) -> Result<Benefit, RuleError> {
        positive_in("benefit.amount", amount, amount.currency())?;
        Ok(Benefit::Instant { amount })
    }

    /// 满减 with a single tier: spend `spend`, save `save`.
    ///
    /// # Errors
    /// As [`Benefit::tiered`].
    pub fn threshold(spend: Money, save: Money) -> Result<Benefit, RuleError> {
        Benefit::tiered(vec![Tier { spend, save }])
    }

    /// 满减 with tiers; the highest tier reached applies.
    ///
    /// # Errors
    /// [`RuleError::Empty`] for no tiers; [`RuleError::NotPositive`] for a non-positive amount;
    /// [`RuleError::CurrencyMismatch`] when tiers differ in currency;
    /// [`RuleError::SavingNotBelowThreshold`] when a saving is not below its spend;
    /// [`RuleError::TiersNotIncreasing`] when spends do not strictly increase;
    /// [`RuleError::TierSavingDecreases`] when a higher tier saves less.
    pub fn tiered(tiers: Vec<Tier>) -> Result<Benefit, RuleError> {
        const F: &str = "benefit.tiers";
        let Some(first) = tiers.first() else {
            return Err(RuleError::Empty { field: F });
        };
        let currency = first.spend.currency();
        for (index, tier) in tiers.iter().enumerate() {
            positive_in("benefit.tiers.spend", tier.spend, currency)?;
            positive_in("benefit.tiers.save", tier.save, currency)?;
            if tier.save >= tier.spend {
                return Err(RuleError::SavingNotBelowThreshold {
                    field: F,
                    threshold: tier.spend,
                    saving: tier.save,
                });
            }
            if index > 0 {
                let prev = tiers[index - 1];
                if tier.spend <= prev.spend {
                    return Err(RuleError::TiersNotIncreasing {
                        field: F,
                        index,
                        threshold: tier.spend,
                    });
                }
                if tier.save < prev.save {
                    return Err(RuleError::TierSavingDecreases {
                        field: F,
                        index,
                        saving: tier.save,
                    });
                }
            }
        }
        Ok(Benefit::Threshold { tiers })
    }

    /// 每满减: save `save` for every `every` spent, at most `max_saving`.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`], [`RuleError::CurrencyMismatch`],
    /// [`RuleError::SavingNotBelowThreshold`] when `save ≥ every`.
    pub fn every(
        every: Money,
        save: Money,
        max_saving: Option<Money>,
    ) -> Result<Benefit, RuleError> {
        let c = every.currency();
        positive_in("benefit.every", every, c)?;
        positive_in("benefit.save", save, c)?;
        if let Some(m) = max_saving {
            positive_in("benefit.max_saving", m, c)?;
        }
        if save >= every {
            return Err(RuleError::SavingNotBelowThreshold {
                field: "benefit.save",
                threshold: every,
                saving: save,
            });
        }
        Ok(Benefit::EveryThreshold {
            every,
            save,
            max_saving,
        })
    }

    /// 折扣券: `percent` off, at most `max_saving`.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] for a non-positive cap.
    pub fn percent(percent: Percent, max_saving: Option<Money>) -> Result<Benefit, RuleError> {
        if let Some(m) = max_saving {
            positive_in("benefit.max_saving", m, m.currency())?;
        }
        Ok(Benefit::Percent {
            percent,
            max_saving,
        })
    }

    /// Free shipping (`cap: None`) or up to `cap` off shipping.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] for a non-positive cap.
    pub fn shipping(cap: Option<Money>) -> Result<Benefit, RuleError> {
        if let Some(m) = cap {
            positive_in("benefit.cap", m, m.currency())?;
        }
        Ok(Benefit::Shipping { cap })
    }

    /// 买N送M: buy `buy`, get `get` free, at most `max_free_units` free units.
    ///
    /// # Errors
    /// [`RuleError::Zero`] when `buy`, `get` or the cap is zero.
    pub fn buy_get(buy: u32, get: u32, max_free_units: Option<u32>) -> Result<Benefit, RuleError> {
        if buy == 0 {
            return Err(RuleError::Zero {
                field: "benefit.buy",
            });
        }
        if get == 0 {
            return Err(RuleError::Zero {
                field: "benefit.get",
            });
        }
        if max_free_units == Some(0) {
            return Err(RuleError::Zero {
                field: "benefit.max_free_units",
            });
        }
        Ok(Benefit::BuyGet {
            buy,
            get,
            max_free_units,
        })
    }

    /// N件X元: any `quantity` units for `price`, at most `max_bundles` bundles.
    ///
    /// # Errors
    /// [`RuleError::Zero`] when `quantity` or the cap is zero; [`RuleError::NotPositive`] when
    /// `price` is not above zero.
    pub fn fixed_price(
        quantity: u32,
        price: Money,
        max_bundles: Option<u32>,
    ) -> Result<Benefit, RuleError> {
        if quantity == 0 {
            return Err(RuleError::Zero {
                field: "benefit.quantity",
            });
        }
        if max_bundles == Some(0) {
            return Err(RuleError::Zero {
                field: "benefit.max_bundles",
            });
        }
        positive_in("benefit.price", price, price.currency())?;
        Ok(Benefit::FixedPrice {
            quantity,
            price,
            max_bundles,
        })
    }

    /// 每件立减: `amount` off each unit, at most `max_units` units (the dearest).
    ///
    /// ```
    /// use coupons::rule::Benefit;
    /// use coupons::money::{Currency, Money};
    /// let b = Benefit::per_unit(Money::from_minor(500, Currency::CNY), Some(3))?;
    /// assert_eq!(b.kind(), "per_unit");
    /// assert!(Benefit::per_unit(Money::from_minor(500, Currency::CNY), Some(0)).is_err());
    /// # Ok::<(), coupons::rule::RuleError>(())
    /// ```
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] when `amount` is not above zero; [`RuleError::Zero`] for a
    /// zero cap.
    pub fn per_unit(amount: Money, max_units: Option<u32>) -> Result<Benefit, RuleError> {
        positive_in("benefit.amount", amount, amount.currency())?;
        if max_units == Some(0) {
            return Err(RuleError::Zero {
                field: "benefit.max_units",
            });
        }
        Ok(Benefit::PerUnit { amount, max_units })
    }

    /// 每行立减: `amount` off each line, at most `max_lines` lines (the dearest).
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] when `amount` is not above zero; [`RuleError::Zero`] for a
    /// zero cap.
    pub fn per_line(amount: Money, max_lines: Option<u32>) -> Result<Benefit, RuleError> {
        positive_in("benefit.amount", amount, amount.currency())?;
        if max_lines == Some(0) {
            return Err(RuleError::Zero {
                field: "benefit.max_lines",
            });
        }
        Ok(Benefit::PerLine { amount, max_lines })
    }

    /// 单件优惠: `off` the cheapest or dearest unit, once per order.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] for an amount not above zero.
    pub fn apply_once(pick: UnitPick, off: UnitOff) -> Result<Benefit, RuleError> {
        if let UnitOff::Amount(m) = off {
            positive_in("benefit.amount", m, m.currency())?;
        }
        Ok(Benefit::ApplyOnce { pick, off })
    }

    /// 满额打折: the percentage of the highest tier reached, at most `max_saving`.
    ///
    /// # Errors
    /// [`RuleError::Empty`] for no tiers; [`RuleError::NotPositive`] for a spend not above zero
    /// (but the first, which may be zero) or a cap not above zero;
    /// [`RuleError::CurrencyMismatch`] when amounts differ in currency;
    /// [`RuleError::TiersNotIncreasing`] when spends do not strictly increase;
    /// [`RuleError::Conflict`] when a higher tier has a lower percentage.
    pub fn tiered_percent(
        tiers: Vec<PercentTier>,
        max_saving: Option<Money>,
    ) -> Result<Benefit, RuleError> {
        const F: &str = "benefit.tiers";
        let Some(first) = tiers.first() else {
            return Err(RuleError::Empty { field: F });
        };
        let currency = first.spend.currency();
        for (index, tier) in tiers.iter().enumerate() {
            if index == 0 {
                same_currency("benefit.tiers.spend", tier.spend, currency)?;
                if tier.spend.is_negative() {
                    return Err(RuleError::NotPositive {
                        field: "benefit.tiers.spend",
                        value: tier.spend,
                    });
                }
            } else {
                positive_in("benefit.tiers.spend", tier.spend, currency)?;
                let prev = tiers[index - 1];
                if tier.spend <= prev.spend {
                    return Err(RuleError::TiersNotIncreasing {
                        field: F,
                        index,
                        threshold: tier.spend,
                    });
                }
                if tier.percent < prev.percent {
                    return Err(RuleError::Conflict {
                        field: F,
                        reason: format!(
                            "tier {index} takes {}, less than the tier below it",
                            tier.percent
                        ),
                    });
                }
            }
        }
        if let Some(m) = max_saving {
            positive_in("benefit.max_saving", m, currency)?;
        }
        Ok(Benefit::TieredPercent { tiers, max_saving })
    }

    /// 多件多折: the percentage of the highest quantity tier reached, at most `max_saving`.
    ///
    /// # Errors
    /// [`RuleError::Empty`] for no tiers; [`RuleError::Zero`] for a tier of zero units;
    /// [`RuleError::Conflict`] when units do not strictly increase or a higher tier has a lower
    /// percentage; [`RuleError::NotPositive`] for a cap not above zero.
    pub fn quantity_tiers(
        tiers: Vec<QuantityTier>,
        max_saving: Option<Money>,
    ) -> Result<Benefit, RuleError> {
        const F: &str = "benefit.tiers";
        if tiers.is_empty() {
            return Err(RuleError::Empty { field: F });
        }
        for (index, tier) in tiers.iter().enumerate() {
            if tier.units == 0 {
                return Err(RuleError::Zero {
                    field: "benefit.tiers.units",
                });
            }
            if index > 0 {
                let prev = tiers[index - 1];
                if tier.units <= prev.units {
                    return Err(RuleError::Conflict {
                        field: F,
                        reason: format!(
                            "tier {index} needs {} units, not more than the tier below it",
                            tier.units
                        ),
                    });
                }
                if tier.percent < prev.percent {
                    return Err(RuleError::Conflict {
                        field: F,
                        reason: format!(
                            "tier {index} takes {}, less than the tier below it",
                            tier.percent
                        ),
                    });
                }
            }
        }
        if let Some(m) = max_saving {
            positive_in("benefit.max_saving", m, m.currency())?;
        }
        Ok(Benefit::QuantityTiers { tiers, max_saving })
    }

    /// 运费折扣: `percent` off the shipping fee.
    ///
    /// # Errors
    /// Never today; the `Result` keeps the constructors alike.
    pub fn shipping_percent(percent: Percent) -> Result<Benefit, RuleError> {
        Ok(Benefit::ShippingPercent { percent })
    }

    /// 运费一口价: shipping costs `price`.
    ///
    /// # Errors
    /// [`RuleError::Invalid`] for a negative price (zero is free shipping and allowed).
    pub fn shipping_price(price: Money) -> Result<Benefit, RuleError> {
        if price.is_negative() {
            return Err(RuleError::Invalid {
                field: "benefit.price",
                value: price.to_string(),
                reason: "a shipping price is zero or above",
            });
        }
        Ok(Benefit::ShippingPrice { price })
    }

    /// 买A赠B: per `buy` units of `buy_scope`, `get` reward units (the template's scope) get
    /// `reward`, at most `max_units` reward units.
    ///
    /// ```
    /// use coupons::rule::{Benefit, Percent, Reward, Scope, ScopeSpec};
    /// use coupons::id::CategoryId;
    /// let shirts = Scope::try_from(ScopeSpec {
    ///     categories: Some([CategoryId::new("shirts")?].into()),
    ///     ..ScopeSpec::default()
    /// })?;
    /// let half = Reward::Percent { percent: Percent::new(50.into())? };
    /// let b = Benefit::buy_x_get_y(2, shirts, 1, half, None)?;
    /// assert_eq!(b.kind(), "buy_x_get_y");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RuleError::Zero`] when `buy`, `get` or the cap is zero; [`RuleError::Invalid`] for a
    /// negative reward price.
    pub fn buy_x_get_y(
        buy: u32,
        buy_scope: Scope,
        get: u32,
        reward: Reward,
        max_units: Option<u32>,
    ) -> Result<Benefit, RuleError> {
        if buy == 0 {
            return Err(RuleError::Zero {
                field: "benefit.buy",
            });
        }
        if get == 0 {
            return Err(RuleError::Zero {
                field: "benefit.get",
            });
        }
        if max_units == Some(0) {
            return Err(RuleError::Zero {
                field: "benefit.max_units",
            });
        }
        if let Reward::Price { price } = reward {
            if price.is_negative() {
                return Err(RuleError::Invalid {
                    field: "benefit.reward.price",
                    value: price.to_string(),
                    reason: "a reward price is zero or above",
                });
            }
        }
        Ok(Benefit::BuyXGetY {
            buy,
            buy_scope,
            get,
            reward,
            max_units,
        })
    }

    /// 满赠: `quantity` units of `sku`, each worth `value`, given free.
    ///
    /// ```
    /// use coupons::rule::Benefit;
    /// use coupons::id::Sku;
    /// use coupons::money::{Currency, Money};
    /// let b = Benefit::gift(Sku::new("mug")?, Money::from_minor(2500, Currency::CNY), 1)?;
    /// assert_eq!(b.kind(), "gift");
    /// assert!(Benefit::gift(Sku::new("mug")?, Money::from_minor(2500, Currency::CNY), 0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] when `value` is not above zero; [`RuleError::Zero`] when
    /// `quantity` is zero; [`RuleError::Invalid`] when `value × quantity` does not fit an
    /// amount.
    pub fn gift(sku: Sku, value: Money, quantity: u32) -> Result<Benefit, RuleError> {
        positive_in("benefit.value", value, value.currency())?;
        if quantity == 0 {
            return Err(RuleError::Zero {
                field: "benefit.quantity",
            });
        }
        if value
            .checked_mul_int(u64::from(quantity))
            .and_then(|t| t.to_minor())
            .is_err()
        {
            return Err(RuleError::Invalid {
                field: "benefit.value",
                value: value.to_string(),
                reason: "the gift's value times its quantity does not fit an amount",
            });
        }
        Ok(Benefit::Gift {
            sku,
            value,
            quantity,
        })
    }

    /// 全单立减: `off` the items in scope and the shipping fee together.
    ///
    /// # Errors
    /// [`RuleError::NotPositive`] for an amount or cap not above zero;
    /// [`RuleError::Conflict`] for a cap on an amount (the amount is its own cap).
    pub fn items_and_shipping(
        off: UnitOff,
        max_saving: Option<Money>,
    ) -> Result<Benefit, RuleError> {
        if let UnitOff::Amount(m) = off {
            positive_in("benefit.amount", m, m.currency())?;
            if max_saving.is_some() {
                return Err(RuleError::Conflict {
                    field: "benefit.max_saving",
                    reason: "an amount off needs no cap; `max_saving` caps a percentage".into(),
                });
            }
        }
        if let Some(m) = max_saving {
            positive_in("benefit.max_saving", m, m.currency())?;
        }
        Ok(Benefit::ItemsAndShipping { off, max_saving })
    }

    /// The kind as a short stable name: `instant`, `threshold`, `every_threshold`, `percent`,
    /// `shipping`, `buy_get`, `fixed_price`, `per_unit`, `per_line`, `apply_once`,
    /// `tiered_percent`, `quantity_tiers`, `shipping_percent`, `shipping_price`, `buy_x_get_y`,
    /// `items_and_shipping`, `gift`.
    pub fn kind(&self) -> &'static str {
        match self {
            Benefit::Instant { .. } => "instant",
            Benefit::Threshold { .. } => "threshold",
            Benefit::EveryThreshold { .. } => "every_threshold",
            Benefit::Percent { .. } => "percent",
            Benefit::Shipping { .. } => "shipping",
            Benefit::BuyGet { .. } => "buy_get",
            Benefit::FixedPrice { .. } => "fixed_price",
            Benefit::PerUnit { .. } => "per_unit",
            Benefit::PerLine { .. } => "per_line",
            Benefit::ApplyOnce { .. } => "apply_once",
            Benefit::TieredPercent { .. } => "tiered_percent",
            Benefit::QuantityTiers { .. } => "quantity_tiers",
            Benefit::ShippingPercent { .. } => "shipping_percent",
            Benefit::ShippingPrice { .. } => "shipping_price",
            Benefit::BuyXGetY { .. } => "buy_x_get_y",
            Benefit::ItemsAndShipping { .. } => "items_and_shipping",
            Benefit::Gift { .. } => "gift",
        }
    }

    /// Every amount the benefit names, for currency checks.
    pub(crate) fn amounts(&self) -> Vec<(&'static str, Money)> {
        let mut v = Vec::new();
        match self {
            Benefit::Instant { amount } => v.push(("benefit.amount", *amount)),
            Benefit::Threshold { tiers } => {
                for t in tiers {
                    v.push(("benefit.tiers.spend", t.spend));
                    v.push(("benefit.tiers.save", t.save));
                }
            }
            Benefit::EveryThreshold {
                every,
                save,
                max_saving,
            } => {
                v.push(("benefit.every", *every));
                v.push(("benefit.save", *save));
                v.extend(max_saving.map(|m| ("benefit.max_saving", m)));
            }
            Benefit::Percent { max_saving, .. } => {
                v.extend(max_saving.map(|m| ("benefit.max_saving", m)));
            }
            Benefit::Shipping { cap } => v.extend(cap.map(|m| ("benefit.cap", m))),
            Benefit::BuyGet { .. } => {}
            Benefit::FixedPrice { price, .. } => v.push(("benefit.price", *price)),
            Benefit::PerUnit { amount, .. } | Benefit::PerLine { amount, .. } => {
                v.push(("benefit.amount", *amount));
            }
            Benefit::ApplyOnce { off, .. } => {
                if let UnitOff::Amount(m) = off {
                    v.push(("benefit.amount", *m));
                }
            }
            Benefit::TieredPercent { tiers, max_saving } => {
                v.extend(tiers.iter().map(|t| ("benefit.tiers.spend", t.spend)));
                v.extend(max_saving.map(|m| ("benefit.max_saving", m)));
            }
            Benefit::QuantityTiers { max_saving, .. } => {
                v.extend(max_saving.map(|m| ("benefit.max_saving", m)));
            }
            Benefit::ShippingPercent { .. } => {}
            Benefit::ShippingPrice { price } => v.push(("benefit.price", *price)),
            Benefit::BuyXGetY { reward, .. } => {
                if let Reward::Price { price } = reward {
                    v.push(("benefit.reward.price", *price));
                }
            }
            Benefit::ItemsAndShipping { off, max_saving } => {
                if let UnitOff::Amount(m) = off {
                    v.push(("benefit.amount", *m));
                }
                v.extend(max_saving.map(|m| ("benefit.max_saving", m)));
            }
            Benefit::Gift { value, .. } => v.push(("benefit.value", *value)),
        }
        v
    }

    /// Whether the benefit reduces shipping rather than items.
    pub fn is_shipping(&self) -> bool {
        matches!(
            self,
            Benefit::Shipping { .. }
                | Benefit::ShippingPercent { .. }
                | Benefit::ShippingPrice { .. }
        )
    }

    /// Whether it prices individual units (buy-get, fixed price, per unit, apply-once) rather
    /// than an amount.
    pub fn is_unit_based(&self) -> bool {
        matches!(
            self,
            Benefit::BuyGet { .. }
                | Benefit::FixedPrice { .. }
                | Benefit::PerUnit { .. }
                | Benefit::ApplyOnce { .. }
                | Benefit::BuyXGetY { .. }
        )
    }

    /// The currency of the amounts it names, if it names any.
    pub fn currency(&self) -> Option<Currency> {
        self.amounts().first().map(|(_, m)| m.currency())
    }
}

#[cfg(feature = "serde")]
crate::de::field_paths! {
    fn amount_at -> Money = "benefit.amount";
    fn tiers_at -> nested_list Tier = "benefit.tiers";
    fn tier_spend_at -> Money = "benefit.tiers.spend";
    fn tier_save_at -> Money = "benefit.tiers.save";
    fn every_at -> Money = "benefit.every";
    fn save_at -> Money = "benefit.save";
    fn max_saving_at -> Option<Money> = "benefit.max_saving";
    fn percent_at -> Decimal = "benefit.percent";
    fn cap_at -> Option<Money> = "benefit.cap";
    fn buy_at -> u32 = "benefit.buy";
    fn get_at -> u32 = "benefit.get";
    fn max_free_units_at -> Option<u32> = "benefit.max_free_units";
    fn quantity_at -> u32 = "benefit.quantity";
    fn price_at -> Money = "benefit.price";
    fn max_bundles_at -> Option<u32> = "benefit.max_bundles";
    fn max_units_at -> Option<u32> = "benefit.max_units";
    fn max_lines_at -> Option<u32> = "benefit.max_lines";
    fn pick_at -> nested UnitPick = "benefit.pick";
    fn once_amount_at -> Option<Money> = "benefit.amount";
    fn once_percent_at -> Option<Decimal> = "benefit.percent";
    fn ptiers_at -> nested_list PercentTier = "benefit.tiers";
    fn ptier_spend_at -> Money = "benefit.tiers.spend";
    fn qtiers_at -> nested_list QuantityTier = "benefit.tiers";
    fn qtier_units_at -> u32 = "benefit.tiers.units";
    fn ship_price_at -> Money = "benefit.price";
    fn buy_scope_at -> nested Scope = "benefit.buy_scope";
    fn reward_price_at -> Money = "benefit.reward.price";
    fn gift_sku_at -> Sku = "benefit.sku";
    fn gift_value_at -> Money = "benefit.value";
    fn gift_quantity_at -> Option<u32> = "benefit.quantity";
}

#[cfg(feature = "serde")]
fn reward_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Reward, D::Error> {
    crate::de::nested_tagged("benefit.reward", "benefit.reward.kind", d)
}

#[cfg(feature = "serde")]
fn reward_percent_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
    percent_field("benefit.reward.percent", d)
}

/// Reads a percentage at `path`, refused with [`Percent::new`]'s reasons naming the path.
#[cfg(feature = "serde")]
fn percent_field<'de, D: serde::Deserializer<'de>>(
    path: &'static str,
    d: D,
) -> Result<Percent, D::Error> {
    let v = <Decimal as crate::de::Field<'de>>::read(crate::de::Path::new(path), d)?;
    Percent::at(path, v).map_err(serde::de::Error::custom)
}

#[cfg(feature = "serde")]
fn ptier_percent_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
    percent_field("benefit.tiers.percent", d)
}

#[cfg(feature = "serde")]
fn qtier_percent_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
    percent_field("benefit.tiers.percent", d)
}

#[cfg(feature = "serde")]
fn ship_percent_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Percent, D::Error> {
    percent_field("benefit.percent", d)
}

/// The JSON shape of a [`Benefit`]; converting it runs the constructors' checks. Every field is
/// read at its path (`benefit.tiers[1].save: …`).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum BenefitRepr {
    Instant {
        #[serde(deserialize_with = "amount_at")]
        amount: Money,
    },
    Threshold {
        #[serde(deserialize_with = "tiers_at")]
        tiers: Vec<Tier>,
    },
    EveryThreshold {
        #[serde(deserialize_with = "every_at")]
        every: Money,
        #[serde(deserialize_with = "save_at")]
        save: Money,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_saving_at"
        )]
        max_saving: Option<Money>,
    },
    Percent {
        #[serde(deserialize_with = "percent_at")]
        percent: Decimal,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_saving_at"
        )]
        max_saving: Option<Money>,
    },
    Shipping {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "cap_at"
        )]
        cap: Option<Money>,
    },
    BuyGet {
        #[serde(deserialize_with = "buy_at")]
        buy: u32,
        #[serde(deserialize_with = "get_at")]
        get: u32,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_free_units_at"
        )]
        max_free_units: Option<u32>,
    },
    FixedPrice {
        #[serde(deserialize_with = "quantity_at")]
        quantity: u32,
        #[serde(deserialize_with = "price_at")]
        price: Money,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_bundles_at"
        )]
        max_bundles: Option<u32>,
    },
    PerUnit {
        #[serde(deserialize_with = "amount_at")]
        amount: Money,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_units_at"
        )]
        max_units: Option<u32>,
    },
    PerLine {
        #[serde(deserialize_with = "amount_at")]
        amount: Money,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_lines_at"
        )]
        max_lines: Option<u32>,
    },
    /// Exactly one of `amount` and `percent`.
    ApplyOnce {
        #[serde(deserialize_with = "pick_at")]
        pick: UnitPick,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "once_amount_at"
        )]
        amount: Option<Money>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "once_percent_at"
        )]
        percent: Option<Decimal>,
    },
    TieredPercent {
        #[serde(deserialize_with = "ptiers_at")]
        tiers: Vec<PercentTier>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_saving_at"
        )]
        max_saving: Option<Money>,
    },
    QuantityTiers {
        #[serde(deserialize_with = "qtiers_at")]
        tiers: Vec<QuantityTier>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_saving_at"
        )]
        max_saving: Option<Money>,
    },
    ShippingPercent {
        #[serde(deserialize_with = "ship_percent_at")]
        percent: Percent,
    },
    ShippingPrice {
        #[serde(deserialize_with = "ship_price_at")]
        price: Money,
    },
    /// Exactly one of `amount` and `percent`.
    ItemsAndShipping {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "once_amount_at"
        )]
        amount: Option<Money>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "once_percent_at"
        )]
        percent: Option<Decimal>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_saving_at"
        )]
        max_saving: Option<Money>,
    },
    BuyXGetY {
        #[serde(deserialize_with = "buy_at")]
        buy: u32,
        #[serde(deserialize_with = "buy_scope_at")]
        buy_scope: Scope,
        #[serde(deserialize_with = "get_at")]
        get: u32,
        #[serde(deserialize_with = "reward_at")]
        reward: Reward,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "max_units_at"
        )]
        max_units: Option<u32>,
    },
    /// `quantity` defaults to 1.
    Gift {
        #[serde(deserialize_with = "gift_sku_at")]
        sku: Sku,
        #[serde(deserialize_with = "gift_value_at")]
        value: Money,
        #[serde(default, deserialize_with = "gift_quantity_at")]
        quantity: Option<u32>,
    },
}

/// Exactly one of an amount and a percentage, as JSON gives them.
#[cfg(feature = "serde")]
fn off(amount: Option<Money>, percent: Option<Decimal>, kind: &str) -> Result<UnitOff, RuleError> {
    match (amount, percent) {
        (Some(m), None) => Ok(UnitOff::Amount(m)),
        (None, Some(p)) => Ok(UnitOff::Percent(Percent::at("benefit.percent", p)?)),
        (Some(_), Some(_)) => Err(RuleError::Conflict {
            field: "benefit",
            reason: "give `amount` or `percent`, not both".into(),
        }),
        (None, None) => Err(RuleError::Conflict {
            field: "benefit",
            reason: format!("{kind} needs `amount` or `percent`"),
        }),
    }
}

#[cfg(feature = "serde")]
impl TryFrom<BenefitRepr> for Benefit {
    type Error = RuleError;
    fn try_from(r: BenefitRepr) -> Result<Self, RuleError> {
        match r {
            BenefitRepr::Instant { amount } => Benefit::instant(amount),
            BenefitRepr::Threshold { tiers } => Benefit::tiered(tiers),
            BenefitRepr::EveryThreshold {
                every,
                save,
                max_saving,
            } => Benefit::every(every, save, max_saving),
            BenefitRepr::Percent {
                percent,
                max_saving,
            } => Benefit::percent(
                Percent::new(percent).map_err(|e| match e {
                    RuleError::PercentOutOfRange { value, .. } => RuleError::PercentOutOfRange {
                        field: "benefit.percent",
                        value,
                    },
                    RuleError::Invalid { value, reason, .. } => RuleError::Invalid {
                        field: "benefit.percent",
                        value,
                        reason,
                    },
                    other => other,
                })?,
                max_saving,
            ),
            BenefitRepr::Shipping { cap } => Benefit::shipping(cap),
            BenefitRepr::BuyGet {
                buy,
                get,
                max_free_units,
            } => Benefit::buy_get(buy, get, max_free_units),
            BenefitRepr::FixedPrice {
                quantity,
                price,
                max_bundles,
            } => Benefit::fixed_price(quantity, price, max_bundles),
            BenefitRepr::PerUnit { amount, max_units } => Benefit::per_unit(amount, max_units),
            BenefitRepr::PerLine { amount, max_lines } => Benefit::per_line(amount, max_lines),
            BenefitRepr::ApplyOnce {
                pick,
                amount,
                percent,
            } => Benefit::apply_once(pick, off(amount, percent, "apply_once")?),
            BenefitRepr::ItemsAndShipping {
                amount,
                percent,
                max_saving,
            } => {
                Benefit::items_and_shipping(off(amount, percent, "items_and_shipping")?, max_saving)
            }
            BenefitRepr::TieredPercent { tiers, max_saving } => {
                Benefit::tiered_percent(tiers, max_saving)
            }
            BenefitRepr::QuantityTiers { tiers, max_saving } => {
                Benefit::quantity_tiers(tiers, max_saving)
            }
            BenefitRepr::ShippingPercent { percent } => Benefit::shipping_percent(percent),
            BenefitRepr::ShippingPrice { price } => Benefit::shipping_price(price),
            BenefitRepr::BuyXGetY {
                buy,
                buy_scope,
                get,
                reward,
                max_units,
            } => Benefit::buy_x_get_y(buy, buy_scope, get, reward, max_units),
            BenefitRepr::Gift {
                sku,
                value,
                quantity,
            } => Benefit::gift(sku, value, quantity.unwrap_or(1)),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Benefit> for BenefitRepr {
    fn from(b: Benefit) -> Self {
        match b {
            Benefit::Instant { amount } => BenefitRepr::Instant { amount },
            Benefit::Threshold { tiers } => BenefitRepr::Threshold { tiers },
            Benefit::EveryThreshold {
                every,
                save,
                max_saving,
            } => BenefitRepr::EveryThreshold {
                every,
                save,
                max_saving,
            },
            Benefit::Percent {
                percent,
                max_saving,
            } => BenefitRepr::Percent {
                percent: percent.value(),
                max_saving,
            },
            Benefit::Shipping { cap } => BenefitRepr::Shipping { cap },
            Benefit::BuyGet {
                buy,
                get,
                max_free_units,
            } => BenefitRepr::BuyGet {
                buy,
                get,
                max_free_units,
            },
            Benefit::FixedPrice {
                quantity,
                price,
                max_bundles,
            } => BenefitRepr::FixedPrice {
                quantity,
                price,
                max_bundles,
            },
            Benefit::PerUnit { amount, max_units } => BenefitRepr::PerUnit { amount, max_units },
            Benefit::PerLine { amount, max_lines } => BenefitRepr::PerLine { amount, max_lines },
            Benefit::ApplyOnce { pick, off } => {
                let (amount, percent) = match off {
                    UnitOff::Amount(m) => (Some(m), None),
                    UnitOff::Percent(p) => (None, Some(p.value())),
                };
                BenefitRepr::ApplyOnce {
                    pick,
                    amount,
                    percent,
                }
            }
            Benefit::TieredPercent { tiers, max_saving } => {
                BenefitRepr::TieredPercent { tiers, max_saving }
            }
            Benefit::QuantityTiers { tiers, max_saving } => {
                BenefitRepr::QuantityTiers { tiers, max_saving }
            }
            Benefit::ShippingPercent { percent } => BenefitRepr::ShippingPercent { percent },
            Benefit::ShippingPrice { price } => BenefitRepr::ShippingPrice { price },
            Benefit::ItemsAndShipping { off, max_saving } => {
                let (amount, percent) = match off {
                    UnitOff::Amount(m) => (Some(m), None),
                    UnitOff::Percent(p) => (None, Some(p.value())),
                };
                BenefitRepr::ItemsAndShipping {
                    amount,
                    percent,
                    max_saving,
                }
            }
            Benefit::BuyXGetY {
                buy,
                buy_scope,
                get,
                reward,
                max_units,
            } => BenefitRepr::BuyXGetY {
                buy,
                buy_scope,
                get,
                reward,
                max_units,
            },
            Benefit::Gift {
                sku,
                value,
                quantity,
            } => BenefitRepr::Gift {
                sku,
                value,
                quantity: Some(quantity),
            },
        }
    }
}
