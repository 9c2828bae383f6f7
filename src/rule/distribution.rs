//! How coupons of a template reach buyers, and what a refund does to them.

use std::num::{NonZeroU32, NonZeroU64};

use super::error::RuleError;

/// A shared promo code (优惠码): 3 to 32 ASCII letters, digits, `-` or `_`, compared without
/// regard to case (stored upper-case).
///
/// ```
/// use coupons::rule::PromoCode;
/// assert_eq!(PromoCode::new("spring-10")?.as_str(), "SPRING-10");
/// assert!(PromoCode::new("no spaces").is_err());
/// # Ok::<(), coupons::rule::RuleError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct PromoCode(String);

impl PromoCode {
    /// Checks and normalises a code.
    ///
    /// # Errors
    /// [`RuleError::Invalid`] when the code is shorter than 3 or longer than 32 characters, or
    /// has a character other than ASCII letters, digits, `-` and `_`.
    pub fn new(code: &str) -> Result<PromoCode, RuleError> {
        let bad = |reason| RuleError::Invalid {
            field: "distribution.code",
            value: code.chars().take(40).collect(),
            reason,
        };
        if !(3..=32).contains(&code.len()) {
            return Err(bad("a promo code has 3 to 32 characters"));
        }
        if !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("a promo code has only letters, digits, - and _"));
        }
        Ok(PromoCode(code.to_ascii_uppercase()))
    }

    /// The code, upper-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PromoCode {
    type Error = RuleError;
    fn try_from(s: String) -> Result<Self, RuleError> {
        PromoCode::new(&s)
    }
}

impl From<PromoCode> for String {
    fn from(c: PromoCode) -> String {
        c.0
    }
}

impl std::fmt::Display for PromoCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a template's benefit reaches buyers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "DistributionRepr", into = "DistributionRepr")
)]
#[non_exhaustive]
pub enum Distribution {
    /// 券 — private coupons, each issued into one account.
    #[default]
    Private,
    /// 优惠码 — one shared code that many buyers type, with its own limits.
    PromoCode {
        /// The code.
        code: PromoCode,
        /// Orders that may use the code in all, if limited.
        max_redemptions: Option<NonZeroU64>,
        /// Orders one buyer may use it on, if limited.
        per_user: Option<NonZeroU32>,
    },
    /// An automatic promotion: applies to every matching cart, no coupon needed.
    Automatic,
}

impl Distribution {
    /// A promo code with optional limits.
    ///
    /// # Errors
    /// [`RuleError::Zero`] for a limit of zero; [`RuleError::Invalid`] for a malformed code.
    pub fn promo_code(
        code: &str,
        max_redemptions: Option<u64>,
        per_user: Option<u32>,
    ) -> Result<Distribution, RuleError> {
        Ok(Distribution::PromoCode {
            code: PromoCode::new(code)?,
            max_redemptions: max_redemptions
                .map(|m| {
                    NonZeroU64::new(m).ok_or(RuleError::Zero {
                        field: "distribution.max_redemptions",
                    })
                })
                .transpose()?,
            per_user: per_user
                .map(|m| {
                    NonZeroU32::new(m).ok_or(RuleError::Zero {
                        field: "distribution.per_user",
                    })
                })
                .transpose()?,
        })
    }
}

/// The JSON shape of a [`Distribution`]; converting it runs [`Distribution::promo_code`]'s
/// checks, so a zero limit is the same [`RuleError::Zero`] as through the constructor. The unit
/// kinds are empty struct variants so that unknown fields are refused for them too.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum DistributionRepr {
    Private {},
    PromoCode {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_redemptions: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        per_user: Option<u32>,
    },
    Automatic {},
}

#[cfg(feature = "serde")]
impl TryFrom<DistributionRepr> for Distribution {
    type Error = RuleError;
    fn try_from(r: DistributionRepr) -> Result<Self, RuleError> {
        match r {
            DistributionRepr::Private {} => Ok(Distribution::Private),
            DistributionRepr::PromoCode {
                code,
                max_redemptions,
                per_user,
            } => Distribution::promo_code(&code, max_redemptions, per_user),
            DistributionRepr::Automatic {} => Ok(Distribution::Automatic),
        }
    }
}

#[cfg(feature = "serde")]
impl From<Distribution> for DistributionRepr {
    fn from(d: Distribution) -> Self {
        match d {
            Distribution::Private => DistributionRepr::Private {},
            Distribution::PromoCode {
                code,
                max_redemptions,
                per_user,
            } => DistributionRepr::PromoCode {
                code: code.into(),
                max_redemptions: max_redemptions.map(NonZeroU64::get),
                per_user: per_user.map(NonZeroU32::get),
            },
            Distribution::Automatic => DistributionRepr::Automatic {},
        }
    }
}

/// What happens to a redeemed coupon when its order is refunded. An unpaid order that is
/// cancelled, or whose hold runs out, always gives its coupons back.
///
/// The default is seed 001's: a merchant refund before the order completes returns the coupon;
/// a buyer's refund after payment does not (the coupon is voided).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RefundPolicy {
    /// Return the coupon when the merchant refunds before the order completes. Default true.
    pub merchant_refund_returns: bool,
    /// Return the coupon when the buyer asks for a refund after paying. Default false.
    pub buyer_refund_returns: bool,
}

impl Default for RefundPolicy {
    fn default() -> Self {
        RefundPolicy {
            merchant_refund_returns: true,
            buyer_refund_returns: false,
        }
    }
}
