//! A code as it is printed, stored and compared.

use crate::rule::{PromoCode, RuleError};

/// A code of some [`CodeFormat`](super::CodeFormat), in its canonical form: upper-case, the
/// format's separators in place, the check character matching. Only a format makes one —
/// by [generating](super::CodeFormat::generate) it or by [reading](super::CodeFormat::parse)
/// what a buyer typed — so two readings of one code are equal strings, and the canonical form
/// is what a store keys on.
///
/// A code becomes the crate's [`PromoCode`] with `PromoCode::try_from(code)`. The format's
/// own checks (3 to 32 characters, only ASCII letters, digits, `-` and `_`) are
/// [`PromoCode::new`]'s, so the conversion never fails for a code; it keeps `PromoCode`'s
/// `Result` because `PromoCode` has no other way in.
///
/// ```
/// use coupons::codes::CodeFormat;
/// use coupons::rule::PromoCode;
/// let f = CodeFormat::from_pattern("SALE-###-###-###")?;
/// let code = f.parse("sale 7k2 q9m 4x2")?;
/// assert_eq!(code.as_str(), "SALE-7K2-Q9M-4X2");
/// let promo = PromoCode::try_from(&code)?;
/// assert_eq!(promo.as_str(), "SALE-7K2-Q9M-4X2");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(transparent))]
pub struct Code(String);

impl Code {
    /// A code the format has checked.
    pub(crate) fn from_checked(s: String) -> Code {
        Code(s)
    }

    /// The code as printed: upper-case, with the format's separators.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Code> for String {
    fn from(c: Code) -> String {
        c.0
    }
}

impl TryFrom<&Code> for PromoCode {
    type Error = RuleError;
    /// # Errors
    /// Never for a code of a [`CodeFormat`](super::CodeFormat) (its checks include
    /// [`PromoCode::new`]'s); the error is `PromoCode`'s own [`RuleError::Invalid`].
    fn try_from(c: &Code) -> Result<PromoCode, RuleError> {
        PromoCode::new(&c.0)
    }
}

impl TryFrom<Code> for PromoCode {
    type Error = RuleError;
    /// # Errors
    /// As for `&Code`: never for a code of a format.
    fn try_from(c: Code) -> Result<PromoCode, RuleError> {
        PromoCode::new(&c.0)
    }
}
