//! Small validated attributes a coupon carries — its experiment arm, the rule that issued it,
//! per-user terms — which travel with it into quotes and events.
//!
//! An [`Attributes`] map holds at most [`MAX_ATTRIBUTES`] entries. A key ([`AttrKey`]) is 1 to
//! 32 characters of lower-case ASCII letters, digits, `_`, `-` and `.`, starting with a letter;
//! a value ([`AttrValue`]) is at most 256 characters with no control characters. Both are cheap
//! to clone.
//!
//! ```
//! use coupons::attributes::{AttrKey, AttrValue, Attributes};
//! let mut a = Attributes::new();
//! a.insert(AttrKey::new("arm")?, AttrValue::new("b")?)?;
//! assert_eq!(a.get("arm").map(AttrValue::as_str), Some("b"));
//! assert!(AttrKey::new("Arm").is_err());
//! # Ok::<(), coupons::attributes::AttrError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The most entries an [`Attributes`] map holds.
pub const MAX_ATTRIBUTES: usize = 16;

/// An attribute key, value or map broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttrError {
    /// A key that is empty, too long, or holds a character keys may not.
    #[error("attribute key {key:?}: {reason}")]
    Key {
        /// The key as given (cut to 40 characters).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value that is too long or holds a control character.
    #[error("attribute {key}: value {reason}")]
    Value {
        /// The key, when known (empty otherwise).
        key: String,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// More entries than [`MAX_ATTRIBUTES`].
    #[error("at most {max} attributes, got {got}")]
    TooMany {
        /// The limit.
        max: usize,
        /// How many were given.
        got: usize,
    },
}

/// An attribute key, e.g. `arm` or `rule`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct AttrKey(Arc<str>);

impl AttrKey {
    /// Validates a key.
    ///
    /// # Errors
    /// [`AttrError::Key`] unless it is 1 to 32 characters of `a-z`, `0-9`, `_`, `-`, `.`,
    /// starting with a letter.
    pub fn new(s: impl AsRef<str>) -> Result<AttrKey, AttrError> {
        let s = s.as_ref();
        let bad = |reason| AttrError::Key {
            key: s.chars().take(40).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.len() > 32 {
            return Err(bad("it is longer than 32 characters"));
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(bad("it must start with a lower-case letter"));
        }
        if !s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        }) {
            return Err(bad("only a-z, 0-9, '_', '-' and '.' are allowed"));
        }
        Ok(AttrKey(Arc::from(s)))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An attribute value: at most 256 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct AttrValue(Arc<str>);

impl AttrValue {
    /// Validates a value.
    ///
    /// # Errors
    /// [`AttrError::Value`] when it is longer than 256 characters or holds a control character.
    pub fn new(s: impl AsRef<str>) -> Result<AttrValue, AttrError> {
        let s = s.as_ref();
        let bad = |reason| AttrError::Value {
            key: String::new(),
            reason,
        };
        if s.chars().count() > 256 {
            return Err(bad("is longer than 256 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("contains a control character"));
        }
        Ok(AttrValue(Arc::from(s)))
    }

    /// The value as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! text_impls {
    ($t:ident) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $t {
            type Error = AttrError;
            fn try_from(s: String) -> Result<Self, AttrError> {
                $t::new(s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0.to_string()
            }
        }
    };
}
text_impls!(AttrKey);
text_impls!(AttrValue);

/// A coupon's attributes: at most [`MAX_ATTRIBUTES`] keys, each with one value, ordered by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(
        try_from = "BTreeMap<AttrKey, AttrValue>",
        into = "BTreeMap<AttrKey, AttrValue>"
    )
)]
pub struct Attributes(BTreeMap<AttrKey, AttrValue>);

impl Attributes {
    /// No attributes.
    pub fn new() -> Attributes {
        Attributes::default()
    }

    /// Sets `key` to `value`, replacing an earlier value.
    ///
    /// # Errors
    /// [`AttrError::TooMany`] when a new key would make more than [`MAX_ATTRIBUTES`].
    pub fn insert(&mut self, key: AttrKey, value: AttrValue) -> Result<(), AttrError> {
        if !self.0.contains_key(&key) && self.0.len() >= MAX_ATTRIBUTES {
            return Err(AttrError::TooMany {
                max: MAX_ATTRIBUTES,
                got: self.0.len() + 1,
            });
        }
        self.0.insert(key, value);
        Ok(())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The entries, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&AttrKey, &AttrValue)> {
        self.0.iter()
    }
}

impl TryFrom<BTreeMap<AttrKey, AttrValue>> for Attributes {
    type Error = AttrError;
    fn try_from(m: BTreeMap<AttrKey, AttrValue>) -> Result<Self, AttrError> {
        if m.len() > MAX_ATTRIBUTES {
            return Err(AttrError::TooMany {
                max: MAX_ATTRIBUTES,
                got: m.len(),
            });
        }
        Ok(Attributes(m))
    }
}

impl From<Attributes> for BTreeMap<AttrKey, AttrValue> {
    fn from(a: Attributes) -> Self {
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_size_are_checked() {
        assert!(AttrKey::new("experiment.arm").is_ok());
        for bad in ["", "1arm", "Arm", "a b", &"a".repeat(33)] {
            assert!(AttrKey::new(bad).is_err(), "{bad:?}");
        }
        assert!(AttrValue::new("x\ny").is_err());
        assert!(AttrValue::new("x".repeat(257)).is_err());
        let mut a = Attributes::new();
        for i in 0..MAX_ATTRIBUTES {
            a.insert(
                AttrKey::new(format!("k{i}")).unwrap(),
                AttrValue::new("v").unwrap(),
            )
            .unwrap();
        }
        assert!(matches!(
            a.insert(
                AttrKey::new("one-more").unwrap(),
                AttrValue::new("v").unwrap()
            ),
            Err(AttrError::TooMany { .. })
        ));
        a.insert(AttrKey::new("k0").unwrap(), AttrValue::new("w").unwrap())
            .unwrap();
        assert_eq!(a.get("k0").unwrap().as_str(), "w");
    }
}
