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
///
/// In JSON: `{"kind": "private"}`, `{"kind": "automatic"}`, or
/// `{"kind": "promo_code", "code": "SAVE10", "max_redemptions": 1000, "per_user": 1}` (the
/// limits optional). Reading runs [`Distribution::promo_code`]'s checks and names the field of
/// any error (`distribution.per_user: must be at least 1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(into = "DistributionRepr")
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

/// The JSON shape of a [`Distribution`], for writing. The unit kinds are empty struct variants
/// so that they are written as `{"kind": "private"}`.
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum DistributionRepr {
    Private {},
    PromoCode {
        code: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        max_redemptions: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        per_user: Option<u32>,
    },
    Automatic {},
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
/// The default is the usual marketplace rule: a merchant refund before the order completes returns the coupon;
/// a buyer's refund after payment does not (the coupon is voided).
///
/// In JSON an object with either flag (`true` or `false`); a missing one takes its default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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

#[cfg(feature = "serde")]
mod json {
    use serde::de::{Deserializer, MapAccess};

    use super::{Distribution, PromoCode, RefundPolicy};
    use crate::de::{FromObject, Keys, Leaf, Path, Read, Scalar, object, text, text_then};

    const PATH: Path = Path::new("distribution");
    const FIELDS: &[&str] = &["kind", "code", "max_redemptions", "per_user"];
    const KIND: Path = Path::new("distribution.kind");
    const CODE: Path = Path::new("distribution.code");
    const MAX_REDEMPTIONS: Path = Path::new("distribution.max_redemptions");
    const PER_USER: Path = Path::new("distribution.per_user");

    impl<'de> serde::Deserialize<'de> for Distribution {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Distribution, D::Error> {
            object(PATH, d)
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Private,
        PromoCode,
        Automatic,
    }

    /// The `kind`, checked where it stands.
    struct KindSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for KindSeed {
        type Value = Kind;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
            const WHAT: &str = "`private`, `promo_code` or `automatic`";
            text_then(KIND, WHAT, d, |s| match s {
                "private" => Ok(Kind::Private),
                "promo_code" => Ok(Kind::PromoCode),
                "automatic" => Ok(Kind::Automatic),
                other => {
                    let cut: String = other.chars().take(60).collect();
                    Err(format!("{KIND}: expected {WHAT}, got the text {cut:?}"))
                }
            })
        }
    }

    /// A promo code is checked where it stands; [`PromoCode::new`]'s error names the field.
    impl Leaf for PromoCode {
        fn from_scalar(path: Path, got: Scalar<'_>) -> Result<PromoCode, String> {
            let s = text(path, "the promo code as text", got)?;
            PromoCode::new(&s).map_err(|e| e.to_string())
        }
    }

    impl<'de> FromObject<'de> for Distribution {
        const WHAT: &'static str =
            "a distribution object such as {\"kind\": \"promo_code\", \"code\": \"SAVE10\"}";

        fn from_object<A: MapAccess<'de>>(path: Path, mut map: A) -> Result<Self, A::Error> {
            let mut keys = Keys::new(Some(path), FIELDS);
            let mut kind = None;
            let mut code: Option<PromoCode> = None;
            let (mut max_redemptions, mut per_user) = (None, None);
            // Which fields came, in `FIELDS` order after `kind`.
            let mut came = [false; 3];
            while let Some(i) = keys.next(&mut map)? {
                match i {
                    0 => kind = Some(map.next_value_seed(KindSeed)?),
                    1 => code = Some(map.next_value_seed(Read::at(CODE))?),
                    2 => max_redemptions = map.next_value_seed(Read::at(MAX_REDEMPTIONS))?,
                    _ => per_user = map.next_value_seed(Read::at(PER_USER))?,
                }
                if let Some(c) = i.checked_sub(1).and_then(|j| came.get_mut(j)) {
                    *c = true;
                }
                // A field a unit kind does not have is told where it stands.
                let name = match kind {
                    Some(Kind::Private) => "private",
                    Some(Kind::Automatic) => "automatic",
                    _ => continue,
                };
                if let Some((f, _)) = FIELDS.iter().skip(1).zip(came).find(|(_, c)| *c) {
                    return Err(path.error(format_args!(
                        "unknown field `{f}`: a {name} distribution has only `kind`"
                    )));
                }
            }
            match kind {
                None => Err(keys.missing("kind")),
                Some(Kind::Private) => Ok(Distribution::Private),
                Some(Kind::Automatic) => Ok(Distribution::Automatic),
                Some(Kind::PromoCode) => Ok(Distribution::PromoCode {
                    code: code.ok_or_else(|| keys.missing("code"))?,
                    max_redemptions,
                    per_user,
                }),
            }
        }
    }

    const REFUND: Path = Path::new("refund");
    const REFUND_FIELDS: &[&str] = &["merchant_refund_returns", "buyer_refund_returns"];
    const MERCHANT: Path = Path::new("refund.merchant_refund_returns");
    const BUYER: Path = Path::new("refund.buyer_refund_returns");

    impl<'de> serde::Deserialize<'de> for RefundPolicy {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RefundPolicy, D::Error> {
            object(REFUND, d)
        }
    }

    impl<'de> FromObject<'de> for RefundPolicy {
        const WHAT: &'static str =
            "a refund policy object such as {\"buyer_refund_returns\": true}";

        fn from_object<A: MapAccess<'de>>(path: Path, mut map: A) -> Result<Self, A::Error> {
            let mut keys = Keys::new(Some(path), REFUND_FIELDS);
            let mut policy = RefundPolicy::default();
            while let Some(i) = keys.next(&mut map)? {
                if i == 0 {
                    policy.merchant_refund_returns = map.next_value_seed(Read::at(MERCHANT))?;
                } else {
                    policy.buyer_refund_returns = map.next_value_seed(Read::at(BUYER))?;
                }
            }
            Ok(policy)
        }
    }
}

#[cfg(test)]
#[cfg(feature = "serde")]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_field() {
        let d = |json: &str| {
            serde_json::from_str::<Distribution>(json)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            d(r#"{"kind": "private", "code": "SAVE10"}"#),
            "distribution: unknown field `code`: a private distribution has only `kind` at line 1 column 37"
        );
        assert_eq!(
            d(r#"{"kind": "promo_code", "code": "SAVE10", "per_user": -1}"#),
            "distribution.per_user: expected a non-negative integer, got -1 at line 1 column 55"
        );
        assert_eq!(
            d(r#"{"kind": "promo_code", "code": "SAVE10", "per_user": 0}"#),
            "distribution.per_user: must be at least 1 at line 1 column 54"
        );
        assert_eq!(
            d(r#"{"kind": "promo_code"}"#),
            "distribution: missing field `code` at line 1 column 22"
        );
        assert_eq!(
            d(r#"{"kind": "promo_code", "code": 10}"#),
            "distribution.code: expected the promo code as text, got 10 at line 1 column 33"
        );
        assert_eq!(
            d(r#"{"kind": "coupon"}"#),
            "distribution.kind: expected `private`, `promo_code` or `automatic`, got the text \"coupon\" at line 1 column 17"
        );
        let r = serde_json::from_str::<RefundPolicy>(r#"{"buyer_refund_returns": "yes"}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            r,
            "refund.buyer_refund_returns: expected true or false, got the text \"yes\" at line 1 column 30"
        );
        let p: RefundPolicy = serde_json::from_str(r#"{"buyer_refund_returns": true}"#).unwrap();
        assert!(p.merchant_refund_returns && p.buyer_refund_returns);
        let code: Distribution =
            serde_json::from_str(r#"{"code": "save10", "kind": "promo_code", "per_user": null}"#)
                .unwrap();
        assert_eq!(
            code,
            Distribution::promo_code("SAVE10", None, None).unwrap()
        );
    }
}
