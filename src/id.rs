//! Identifiers: one newtype per concept, so a [`Sku`] can never be passed where a [`UserId`] is
//! expected.
//!
//! Every identifier is a non-empty string of at most 128 characters with no control characters
//! and no leading or trailing white space. They are cheap to clone (a shared `Arc<str>`), so
//! coupons and quotes can carry them freely.
//!
//! ```
//! use coupons::id::{Sku, IdError};
//! let sku = Sku::new("tea-250g")?;
//! assert_eq!(sku.as_str(), "tea-250g");
//! assert!(Sku::new("").is_err());
//! # Ok::<(), IdError>(())
//! ```

use std::borrow::Borrow;
use std::sync::Arc;

/// An identifier was empty, too long, or held a control character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    /// Which kind of identifier, e.g. `"sku"`.
    pub kind: &'static str,
    /// The text as given (cut to 140 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The longest identifier accepted, in characters.
pub const MAX_ID_LEN: usize = 128;

fn check(kind: &'static str, s: &str) -> Result<(), IdError> {
    match text_fault(s, MAX_ID_LEN, "it is longer than 128 characters") {
        None => Ok(()),
        Some(reason) => Err(IdError {
            kind,
            value: s.chars().take(140).collect(),
            reason,
        }),
    }
}

/// What is wrong with `s` as a short text of at most `max` characters (an id, a rule's or an
/// experiment's name), if anything: empty, longer than `max` (then `too_long` is the reason),
/// a control character, leading or trailing white space.
pub(crate) fn text_fault(s: &str, max: usize, too_long: &'static str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if s.chars().count() > max {
        Some(too_long)
    } else if s.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if s.trim() != s {
        Some("it starts or ends with white space")
    } else {
        None
    }
}

/// A validated short text held as a shared `Arc<str>`: the struct and what every such type
/// has (`as_str`, `Debug`, `Display`, `AsRef<str>`, conversion from and into `String`, serde
/// as a string checked by `new`). The caller writes `new` with its own checks and error `$err`.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $err:ty) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(try_from = "String", into = "String")
        )]
        pub struct $name(::std::sync::Arc<str>);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, $err> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use text_type;

macro_rules! ident {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        text_type!($(#[$doc])* $name, IdError);

        impl $name {
            /// Validates and wraps an identifier.
            ///
            /// # Errors
            /// [`IdError`] when the text is empty, longer than 128 characters, contains a
            /// control character, or has leading or trailing white space.
            pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                check($kind, s)?;
                Ok($name(Arc::from(s)))
            }

            /// For literals known to be valid; skips the checks.
            #[allow(dead_code)]
            pub(crate) fn trusted(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        #[cfg(feature = "serde")]
        impl crate::de::Leaf for $name {
            fn from_scalar(
                path: crate::de::Path,
                got: crate::de::Scalar<'_>,
            ) -> Result<Self, String> {
                let s = crate::de::text(path, concat!("the ", $kind, " as text"), got)?;
                $name::new(&*s).map_err(|e| format!("{path}: {e}"))
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

ident!(
    /// A coupon template: what a merchant defines and issues coupons from.
    TemplateId,
    "template id"
);
ident!(
    /// One issued coupon.
    CouponId,
    "coupon id"
);
ident!(
    /// A campaign (活动).
    CampaignId,
    "campaign id"
);
ident!(
    /// A buyer's account.
    UserId,
    "user id"
);
ident!(
    /// A product (stock-keeping unit).
    Sku,
    "sku"
);
ident!(
    /// A product category.
    CategoryId,
    "category id"
);
ident!(
    /// A shop or seller on a marketplace.
    ShopId,
    "shop id"
);
ident!(
    /// A sales or issuing channel: `app`, `web`, `mini-program`, `store`, `registration`… An
    /// open set: any valid identifier names a channel.
    Channel,
    "channel"
);
ident!(
    /// A user segment computed elsewhere (by targeting, a CRM…).
    SegmentId,
    "segment id"
);
ident!(
    /// A membership level: `gold`, `plus`…
    MembershipLevel,
    "membership level"
);
ident!(
    /// A stacking group: at most a configured number of coupons of one group apply to an order.
    /// An open set: `platform`, `shop:<id>`, `shipping`…
    StackingGroup,
    "stacking group"
);
ident!(
    /// An order in the caller's system.
    OrderId,
    "order id"
);
ident!(
    /// A key that makes a request idempotent: repeating a request with the same key returns the
    /// first outcome and changes nothing.
    IdempotencyKey,
    "idempotency key"
);
ident!(
    /// A device the request came from (an app install id, a browser fingerprint…).
    DeviceId,
    "device id"
);
ident!(
    /// A payment account (a card fingerprint, a wallet account…), as the caller identifies it.
    PaymentAccount,
    "payment account"
);
ident!(
    /// A guard's name: `claims-per-device`, `auto-push-cap`…
    GuardName,
    "guard name"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_long_and_control_text() {
        assert!(Sku::new("").is_err());
        assert!(Sku::new("a\nb").is_err());
        assert!(Sku::new(" a").is_err());
        assert!(Sku::new("x".repeat(129)).is_err());
        assert!(Sku::new("x".repeat(128)).is_ok());
        let e = UserId::new("").unwrap_err();
        assert_eq!(e.kind, "user id");
    }
}
