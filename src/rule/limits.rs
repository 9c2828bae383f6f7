//! How many coupons of a template exist, and how many one user or one order may have.

use std::num::{NonZeroU32, NonZeroU64};

use super::error::RuleError;

/// The plain data of [`Limits`]. `None` means unlimited (or, for `per_order`, one).
///
/// In JSON an object with any of the four fields, each a non-negative integer or `null`; an
/// error names the field: `limits.total_stock: expected a non-negative integer, got -5`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LimitsSpec {
    /// Coupons that may ever be issued from the template.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub total_stock: Option<u64>,
    /// Coupons one user may claim.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub per_user_claims: Option<u32>,
    /// Coupons of the template one user may redeem.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub per_user_uses: Option<u32>,
    /// Coupons of the template in one order (default 1).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub per_order: Option<u32>,
}

/// Stock and per-user and per-order limits. Every set limit is at least one.
///
/// ```
/// use coupons::rule::{Limits, LimitsSpec};
/// let l = Limits::try_from(LimitsSpec { total_stock: Some(1000), per_user_claims: Some(1), ..Default::default() })?;
/// assert_eq!(l.per_order(), 1);
/// assert!(Limits::try_from(LimitsSpec { total_stock: Some(0), ..Default::default() }).is_err());
/// # Ok::<(), coupons::rule::RuleError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(into = "LimitsSpec")
)]
pub struct Limits {
    total_stock: Option<NonZeroU64>,
    per_user_claims: Option<NonZeroU32>,
    per_user_uses: Option<NonZeroU32>,
    per_order: Option<NonZeroU32>,
}

impl Limits {
    /// No limits; one coupon of the template per order.
    pub fn unlimited() -> Limits {
        Limits::default()
    }

    /// Total stock, if limited.
    pub fn total_stock(&self) -> Option<u64> {
        self.total_stock.map(NonZeroU64::get)
    }

    /// Claims per user, if limited.
    pub fn per_user_claims(&self) -> Option<u32> {
        self.per_user_claims.map(NonZeroU32::get)
    }

    /// Redemptions per user, if limited.
    pub fn per_user_uses(&self) -> Option<u32> {
        self.per_user_uses.map(NonZeroU32::get)
    }

    /// Coupons of the template in one order.
    pub fn per_order(&self) -> u32 {
        self.per_order.map_or(1, NonZeroU32::get)
    }
}

impl TryFrom<LimitsSpec> for Limits {
    type Error = RuleError;

    /// # Errors
    /// [`RuleError::Zero`] for any limit set to zero.
    fn try_from(s: LimitsSpec) -> Result<Self, RuleError> {
        fn nz32(field: &'static str, v: Option<u32>) -> Result<Option<NonZeroU32>, RuleError> {
            v.map(|x| NonZeroU32::new(x).ok_or(RuleError::Zero { field }))
                .transpose()
        }
        Ok(Limits {
            total_stock: s
                .total_stock
                .map(|x| {
                    NonZeroU64::new(x).ok_or(RuleError::Zero {
                        field: "limits.total_stock",
                    })
                })
                .transpose()?,
            per_user_claims: nz32("limits.per_user_claims", s.per_user_claims)?,
            per_user_uses: nz32("limits.per_user_uses", s.per_user_uses)?,
            per_order: nz32("limits.per_order", s.per_order)?,
        })
    }
}

impl From<Limits> for LimitsSpec {
    fn from(l: Limits) -> Self {
        LimitsSpec {
            total_stock: l.total_stock(),
            per_user_claims: l.per_user_claims(),
            per_user_uses: l.per_user_uses(),
            per_order: l.per_order.map(NonZeroU32::get),
        }
    }
}

#[cfg(feature = "serde")]
mod json {
    use serde::de::{Deserializer, MapAccess};

    use super::{Limits, LimitsSpec};
    use crate::de::{FromObject, Keys, Path, Read, object};

    const FIELDS: &[&str] = &[
        "total_stock",
        "per_user_claims",
        "per_user_uses",
        "per_order",
    ];

    impl<'de> serde::Deserialize<'de> for LimitsSpec {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LimitsSpec, D::Error> {
            object(Path::new("limits"), d)
        }
    }

    impl<'de> FromObject<'de> for LimitsSpec {
        const WHAT: &'static str = "an object of limits";

        fn from_object<A: MapAccess<'de>>(path: Path, mut map: A) -> Result<Self, A::Error> {
            let mut keys = Keys::new(Some(path), FIELDS);
            let mut s = LimitsSpec::default();
            while let Some(i) = keys.next(&mut map)? {
                match i {
                    0 => s.total_stock = map.next_value_seed(Read::at(TOTAL_STOCK))?,
                    1 => s.per_user_claims = map.next_value_seed(Read::at(PER_USER_CLAIMS))?,
                    2 => s.per_user_uses = map.next_value_seed(Read::at(PER_USER_USES))?,
                    _ => s.per_order = map.next_value_seed(Read::at(PER_ORDER))?,
                }
            }
            Ok(s)
        }
    }

    /// Reads the limits with each checked where it stands (a zero limit is refused at its
    /// value, with [`RuleError::Zero`](crate::rule::RuleError::Zero)'s message).
    impl<'de> serde::Deserialize<'de> for Limits {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Limits, D::Error> {
            object(Path::new("limits"), d)
        }
    }

    impl<'de> FromObject<'de> for Limits {
        const WHAT: &'static str = "an object of limits";

        fn from_object<A: MapAccess<'de>>(path: Path, mut map: A) -> Result<Self, A::Error> {
            let mut keys = Keys::new(Some(path), FIELDS);
            let mut l = Limits::default();
            while let Some(i) = keys.next(&mut map)? {
                match i {
                    0 => l.total_stock = map.next_value_seed(Read::at(TOTAL_STOCK))?,
                    1 => l.per_user_claims = map.next_value_seed(Read::at(PER_USER_CLAIMS))?,
                    2 => l.per_user_uses = map.next_value_seed(Read::at(PER_USER_USES))?,
                    _ => l.per_order = map.next_value_seed(Read::at(PER_ORDER))?,
                }
            }
            Ok(l)
        }
    }

    const TOTAL_STOCK: Path = Path::new("limits.total_stock");
    const PER_USER_CLAIMS: Path = Path::new("limits.per_user_claims");
    const PER_USER_USES: Path = Path::new("limits.per_user_uses");
    const PER_ORDER: Path = Path::new("limits.per_order");
}

#[cfg(test)]
#[cfg(feature = "serde")]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        serde_json::from_str::<Limits>(json)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            err(r#"{"total_stock": -5}"#),
            "limits.total_stock: expected a non-negative integer, got -5 at line 1 column 18"
        );
        assert_eq!(
            err(r#"{"per_order": 0}"#),
            "limits.per_order: must be at least 1 at line 1 column 15"
        );
        assert_eq!(
            err(r#"{"per_user_claims": 1, "stock": 5}"#),
            "limits: unknown field `stock`, expected one of `total_stock`, `per_user_claims`, \
             `per_user_uses`, `per_order` at line 1 column 30"
        );
        assert_eq!(
            err("[1]"),
            "limits: expected an object of limits, got a list at line 1 column 1"
        );
        let l: Limits = serde_json::from_str(r#"{"total_stock": null, "per_order": 2}"#).unwrap();
        assert_eq!((l.total_stock(), l.per_order()), (None, 2));
    }

    /// The field-path readers work from any module through `crate::de::field_paths!`.
    #[test]
    fn field_paths_from_another_module() {
        crate::de::field_paths! {
            fn stock_at -> Option<u64> = "limits.total_stock";
            fn limits_at -> nested Limits = "limits";
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Holder {
            #[serde(default, deserialize_with = "stock_at")]
            stock: Option<u64>,
            #[serde(default, deserialize_with = "limits_at")]
            limits: Limits,
        }
        let e = serde_json::from_str::<Holder>(r#"{"stock": true}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "limits.total_stock: expected a non-negative integer, got true at line 1 column 14"
        );
        // The limits' own path is already there: not repeated.
        let e = serde_json::from_str::<Holder>(r#"{"limits": {"per_order": 0}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "limits.per_order: must be at least 1 at line 1 column 28"
        );
    }
}
