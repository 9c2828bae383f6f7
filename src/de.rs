//! Reading JSON (and any other self-describing format) with the field's path in every error.
//!
//! Derived `Deserialize` impls say *what* is wrong ("invalid value: integer `-5`, expected
//! u64") but not *where*. The readers here say both, as one sentence that starts with the
//! field's path, the same dotted path a [`RuleError`](crate::rule::RuleError) names:
//!
//! ```text
//! limits.total_stock: expected a non-negative integer, got -5 at line 1 column 212
//! benefit.amount: 12.345 has more decimal places than CNY allows (2) at line 1 column 80
//! scope.skus[2]: invalid sku "": it is empty at line 3 column 17
//! ```
//!
//! (`serde_json` adds the position as the error leaves the enclosing object.)
//!
//! # How a type uses it
//!
//! - A leaf field (a count, a flag, text, a decimal, an amount, a currency, an instant, an
//!   identifier, or an `Option`, `Vec` or `BTreeSet` of those) implements [`Field`]: its reader
//!   builds the whole message from the path it is given. Put a path on a derived struct's field
//!   with [`field_paths!`](crate::de::field_paths):
//!
//!   ```ignore
//!   crate::de::field_paths! {
//!       fn amount_at -> Money = "benefit.amount";
//!       fn cap_at -> Option<Money> = "benefit.cap";
//!   }
//!   #[serde(deserialize_with = "amount_at")]
//!   amount: Money,
//!   #[serde(default, deserialize_with = "cap_at")]
//!   cap: Option<Money>,
//!   ```
//!
//! - A field holding a derived struct or enum (whose own unknown-field or unknown-variant
//!   errors carry no path) is read with [`nested`], and a list of them with [`nested_list`]
//!   (the index goes into the path: `benefit.tiers[1].save`). Both keep an error that already
//!   names a path inside the field as it is, so the most specific path wins.
//! - A hand-written struct reader walks its keys with [`Keys`], which refuses unknown and
//!   duplicate fields naming the struct's path, and reads each value with [`Read`].
//!
//! Paths are static and absolute from the template (or cart) root, like
//! [`RuleError`](crate::rule::RuleError)'s `field`; a list adds the item's index.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::num::{NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::money::{Currency, Exact};

/// Implements the `visit_*` methods of a visitor for every value that is neither a list nor an
/// object, refusing each with `"<path>: expected <what>, got <value>"`. The visitor's first
/// tuple field is its [`Path`].
macro_rules! refuse_scalars {
    ($what:expr) => {
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!(
                "expected {}, got {}",
                $what,
                $crate::de::Scalar::Bool(v)
            )))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!("expected {}, got {v}", $what)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!("expected {}, got {v}", $what)))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!(
                "expected {}, got {}",
                $what,
                $crate::de::Scalar::Float(v)
            )))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!(
                "expected {}, got {}",
                $what,
                $crate::de::Scalar::Text(std::borrow::Cow::Borrowed(v))
            )))
        }
        fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!("expected {}, got bytes", $what)))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!("expected {}, got null", $what)))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Err(self.0.error(format_args!("expected {}, got null", $what)))
        }
    };
}

/// Where a value sits: a static dotted path, and the index when it is an item of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Path {
    field: &'static str,
    index: Option<usize>,
}

impl Path {
    /// The path of a field, e.g. `"limits.total_stock"`.
    pub(crate) const fn new(field: &'static str) -> Path {
        Path { field, index: None }
    }

    /// The path of item `index` of this list.
    pub(crate) const fn item(self, index: usize) -> Path {
        Path {
            field: self.field,
            index: Some(index),
        }
    }

    /// The static part, without the index.
    pub(crate) const fn field(self) -> &'static str {
        self.field
    }

    /// An error whose message is `"<path>: <reason>"`.
    pub(crate) fn error<E: de::Error>(self, reason: impl fmt::Display) -> E {
        E::custom(format_args!("{self}: {reason}"))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            None => f.write_str(self.field),
            Some(i) => write!(f, "{}[{i}]", self.field),
        }
    }
}

/// An error message prefixed with `path`, when there is one.
pub(crate) fn error_at<E: de::Error>(path: Option<Path>, reason: impl fmt::Display) -> E {
    match path {
        Some(p) => p.error(reason),
        None => E::custom(reason),
    }
}

/// The key `serde_json` uses, with its `arbitrary_precision` feature, to hand a number over as
/// its text: a one-entry map `{"$serde_json::private::Number": "<text>"}`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// Any one value as it came, with enough of it kept to read it exactly or to say what it was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar<'de> {
    /// `null` (or a unit, or an absent option).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number below zero.
    Int(i128),
    /// A whole number, zero or above.
    UInt(u128),
    /// A number the deserializer has already turned into a binary float.
    Float(f64),
    /// A number handed over as its own text (by `serde_json` with `arbitrary_precision`).
    Number(String),
    /// A string.
    Text(Cow<'de, str>),
    /// A list (its items were skipped).
    List,
    /// An object (its entries were skipped).
    Object,
    /// Bytes.
    Bytes,
}

impl fmt::Display for Scalar<'_> {
    /// What a value was, for "expected …, got <this>".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Null => f.write_str("null"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::UInt(u) => write!(f, "{u}"),
            Scalar::Float(x) => write!(f, "the number {x}"),
            Scalar::Number(text) => f.write_str(text),
            Scalar::Text(s) => {
                let cut: String = s.chars().take(60).collect();
                if cut.len() < s.len() {
                    write!(f, "the text {cut:?}…")
                } else {
                    write!(f, "the text {cut:?}")
                }
            }
            Scalar::List => f.write_str("a list"),
            Scalar::Object => f.write_str("an object"),
            Scalar::Bytes => f.write_str("bytes"),
        }
    }
}

/// Reads any one value and hands it, as a [`Scalar`], to `then`, whose error is the whole
/// message. `then` runs inside the deserializer, so that `serde_json` gives its error the
/// position of the value itself.
pub(crate) fn scalar_then<'de, D, T, F>(d: D, then: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(Scalar<'de>) -> Result<T, String>,
{
    d.deserialize_any(ScalarVisitor(then, PhantomData))
}

struct ScalarVisitor<'de, F>(F, PhantomData<&'de ()>);

impl<'de, T, F: FnOnce(Scalar<'de>) -> Result<T, String>> ScalarVisitor<'de, F> {
    fn then<E: de::Error>(self, got: Scalar<'de>) -> Result<T, E> {
        (self.0)(got).map_err(E::custom)
    }
}

impl<'de, T, F: FnOnce(Scalar<'de>) -> Result<T, String>> Visitor<'de> for ScalarVisitor<'de, F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        self.then(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_i128(i128::from(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        self.then(match u128::try_from(v) {
            Ok(u) => Scalar::UInt(u),
            Err(_) => Scalar::Int(v),
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.then(Scalar::UInt(u128::from(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        self.then(Scalar::UInt(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.then(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.then(Scalar::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        self.then(Scalar::Text(Cow::Borrowed(v)))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        self.then(Scalar::Text(Cow::Owned(v)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<T, E> {
        self.then(Scalar::Bytes)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.then(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.then(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        scalar_then(d, self.0)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        scalar_then(d, self.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.then(Scalar::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let first = map.next_key::<MaybeNumberToken>()?;
        let got = match first {
            Some(MaybeNumberToken(true)) => Scalar::Number(map.next_value::<String>()?),
            Some(MaybeNumberToken(false)) => {
                map.next_value::<IgnoredAny>()?;
                Scalar::Object
            }
            None => Scalar::Object,
        };
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.then(got)
    }
}

/// A map key, and whether it is `serde_json`'s number token.
struct MaybeNumberToken(bool);

impl<'de> de::Deserialize<'de> for MaybeNumberToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_then(d, |got| {
            Ok(MaybeNumberToken(
                matches!(got, Scalar::Text(s) if s == NUMBER_TOKEN),
            ))
        })
    }
}

/// A value that knows how to read itself at a path, with errors that name the path.
pub(crate) trait Field<'de>: Sized {
    /// Reads the value at `path`.
    fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<Self, D::Error>;
}

/// A value read from one [`Scalar`] (a number, a string, a flag); every `Leaf` is a [`Field`].
pub(crate) trait Leaf: Sized {
    /// The value, or the whole error message, path included.
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<Self, String>;
}

impl<'de, T: Leaf> Field<'de> for T {
    fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<T, D::Error> {
        scalar_then(d, |got| T::from_scalar(path, got))
    }
}

/// A [`DeserializeSeed`] reading a [`Field`] at a path (for hand-written visitors).
pub(crate) struct Read<T>(pub(crate) Path, PhantomData<T>);

impl<T> Read<T> {
    /// Reads a `T` at `path`.
    pub(crate) const fn at(path: Path) -> Read<T> {
        Read(path, PhantomData)
    }
}

impl<'de, T: Field<'de>> DeserializeSeed<'de> for Read<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::read(self.0, d)
    }
}

/// A whole number of at most `max`, or the message for what came instead.
fn count(path: Path, got: Scalar<'_>, max: u64) -> Result<u64, String> {
    match got {
        Scalar::UInt(u) => u64::try_from(u)
            .ok()
            .filter(|x| *x <= max)
            .ok_or_else(|| format!("{path}: expected an integer of at most {max}, got {u}")),
        got => Err(format!(
            "{path}: expected a non-negative integer, got {got}"
        )),
    }
}

macro_rules! counts {
    ($($t:ty => $nz:ty),*) => {$(
        impl Leaf for $t {
            fn from_scalar(path: Path, got: Scalar<'_>) -> Result<$t, String> {
                count(path, got, u64::from(<$t>::MAX))
                    .map(|x| <$t>::try_from(x).unwrap_or(<$t>::MAX))
            }
        }

        /// At least one: zero is `"<path>: must be at least 1"`, as
        /// [`RuleError::Zero`](crate::rule::RuleError::Zero) says it.
        impl Leaf for $nz {
            fn from_scalar(path: Path, got: Scalar<'_>) -> Result<$nz, String> {
                let x = <$t>::from_scalar(path, got)?;
                <$nz>::new(x).ok_or_else(|| format!("{path}: must be at least 1"))
            }
        }
    )*};
}
counts!(u8 => NonZeroU8, u16 => NonZeroU16, u32 => NonZeroU32, u64 => NonZeroU64);

impl Leaf for bool {
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<bool, String> {
        match got {
            Scalar::Bool(b) => Ok(b),
            got => Err(format!("{path}: expected true or false, got {got}")),
        }
    }
}

impl Leaf for String {
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<String, String> {
        text(path, "text", got).map(Cow::into_owned)
    }
}

/// The text of a string, or `"<path>: expected <what>, got …"`.
pub(crate) fn text<'a>(path: Path, what: &str, got: Scalar<'a>) -> Result<Cow<'a, str>, String> {
    match got {
        Scalar::Text(s) => Ok(s),
        got => Err(format!("{path}: expected {what}, got {got}")),
    }
}

/// Reads a string at `path` and hands it to `then`; `what` names it in the error for a value
/// that is not a string.
pub(crate) fn text_then<'de, D, T>(
    path: Path,
    what: &'static str,
    d: D,
    then: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    scalar_then(d, |got| then(&text(path, what, got)?))
}

/// Exact decimals: a decimal string (`"12.5"`), a JSON integer, or a JSON number kept as its
/// text; a number already turned into a binary float is refused, never rounded.
impl Leaf for Decimal {
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<Decimal, String> {
        // Decimal text keeps its scale as written ("12.50" stays 12.50), as the rule errors
        // print it; anything else goes through the exact reader.
        if let Scalar::Text(s) = &got {
            let s = s.trim();
            if s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            {
                if let Ok(d) = Decimal::from_str_exact(s) {
                    return Ok(d);
                }
            }
        }
        let exact = exact_number(Some(path), "the value", &got)?;
        exact.to_decimal().ok_or_else(|| {
            format!(
                "{path}: {got} has more digits than a decimal holds (28 decimal places, 2^96 - 1 at most)"
            )
        })
    }
}

/// The exact value of a number given as decimal text, an integer or a number's own text; the
/// message for a binary float or any other value names `what` was expected ("the amount").
pub(crate) fn exact_number(
    path: Option<Path>,
    what: &str,
    got: &Scalar<'_>,
) -> Result<Exact, String> {
    let at = |reason: fmt::Arguments<'_>| match path {
        Some(p) => format!("{p}: {reason}"),
        None => reason.to_string(),
    };
    let exact = match got {
        Scalar::Text(s) => Exact::parse(s.trim(), false),
        Scalar::Number(s) => Exact::parse(s, true),
        Scalar::UInt(u) => Some(Exact::whole(false, *u)),
        Scalar::Int(i) => Some(Exact::whole(*i < 0, i.unsigned_abs())),
        Scalar::Float(x) => {
            return Err(at(format_args!(
                "the number arrived as the binary float {x}, which may have lost digits; \
                 send {what} as a decimal string such as \"12.50\""
            )));
        }
        _ => None,
    };
    exact.ok_or_else(|| {
        at(format_args!(
            "expected {what} as a decimal string such as \"12.50\" (digits, an optional '-' \
             and fraction), got {got}"
        ))
    })
}

impl Leaf for Currency {
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<Currency, String> {
        let code = text(path, "a currency code such as \"CNY\"", got)?;
        code.parse().map_err(|e| format!("{path}: {e}"))
    }
}

/// Instants: RFC 3339 text with any offset, kept in UTC at microsecond precision and refused
/// outside 1970..=9999 (see [`crate::time::check`]).
impl Leaf for DateTime<Utc> {
    fn from_scalar(path: Path, got: Scalar<'_>) -> Result<DateTime<Utc>, String> {
        const WHAT: &str = "an RFC 3339 instant such as \"2026-11-11T00:00:00+08:00\"";
        let s = text(path, WHAT, got)?;
        let t: DateTime<Utc> = s.parse().map_err(|e| {
            let cut: String = s.chars().take(60).collect();
            format!("{path}: expected {WHAT}, got {cut:?} ({e})")
        })?;
        crate::time::check(path.field(), t).map_err(|e| e.to_string())
    }
}

impl<'de, T: Field<'de>> Field<'de> for Option<T> {
    fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<Option<T>, D::Error> {
        struct OptionVisitor<T>(Path, PhantomData<T>);
        impl<'de, T: Field<'de>> Visitor<'de> for OptionVisitor<T> {
            type Value = Option<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}: a value or null", self.0)
            }
            fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
                T::read(self.0, d).map(Some)
            }
        }
        d.deserialize_option(OptionVisitor(path, PhantomData))
    }
}

/// Reads a list whose items are [`Field`]s, item `i` at `path[i]`.
fn list<'de, D, T, C>(path: Path, d: D) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    T: Field<'de>,
    C: Default + Extend<T>,
{
    struct ListVisitor<T, C>(Path, PhantomData<(T, C)>);
    impl<'de, T: Field<'de>, C: Default + Extend<T>> Visitor<'de> for ListVisitor<T, C> {
        type Value = C;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
            let mut out = C::default();
            let mut i = 0;
            while let Some(x) = seq.next_element_seed(Read::<T>::at(self.0.item(i)))? {
                out.extend(Some(x));
                i += 1;
            }
            Ok(out)
        }
        refuse_scalars!("a list");
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<C, A::Error> {
            Err(self.0.error("expected a list, got an object"))
        }
    }
    if !d.is_human_readable() {
        return d.deserialize_seq(ListVisitor(path, PhantomData));
    }
    d.deserialize_any(ListVisitor(path, PhantomData))
}

impl<'de, T: Field<'de>> Field<'de> for Vec<T> {
    fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<Vec<T>, D::Error> {
        list(path, d)
    }
}

impl<'de, T: Field<'de> + Ord> Field<'de> for BTreeSet<T> {
    fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<BTreeSet<T>, D::Error> {
        list(path, d)
    }
}

/// A type read from an object by hand (with [`Keys`] and [`Read`]), through [`object`].
pub(crate) trait FromObject<'de>: Sized {
    /// What the object is, for "expected <what>, got …", e.g. `"an object of limits"`.
    const WHAT: &'static str;

    /// Reads the object at `path` from its entries.
    fn from_object<A: MapAccess<'de>>(path: Path, map: A) -> Result<Self, A::Error>;
}

/// Reads a [`FromObject`] at `path`; any value other than an object is refused with
/// `"<path>: expected <what>, got <value>"`.
pub(crate) fn object<'de, D, T>(path: Path, d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromObject<'de>,
{
    struct ObjectVisitor<T>(Path, PhantomData<T>);
    impl<'de, T: FromObject<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::WHAT)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::from_object(self.0, map)
        }
        refuse_scalars!(T::WHAT);
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<T, A::Error> {
            Err(self
                .0
                .error(format_args!("expected {}, got a list", T::WHAT)))
        }
    }
    if d.is_human_readable() {
        d.deserialize_any(ObjectVisitor(path, PhantomData))
    } else {
        d.deserialize_map(ObjectVisitor(path, PhantomData))
    }
}

/// Walks the keys of an object, refusing unknown and repeated ones with the object's path.
pub(crate) struct Keys {
    path: Option<Path>,
    names: &'static [&'static str],
    seen: u64,
}

impl Keys {
    /// Keys of the object at `path` (none for a value read on its own), which has the fields
    /// `names` (at most 64).
    pub(crate) const fn new(path: Option<Path>, names: &'static [&'static str]) -> Keys {
        Keys {
            path,
            names,
            seen: 0,
        }
    }

    /// The index in `names` of the next key, or `None` at the end of the object.
    ///
    /// # Errors
    /// An unknown field or a field given twice.
    pub(crate) fn next<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
    ) -> Result<Option<usize>, A::Error> {
        let Some(key) = map.next_key::<KeyName<'de>>()? else {
            return Ok(None);
        };
        let name = key.0;
        let Some(i) = self.names.iter().position(|n| *n == name) else {
            return Err(error_at(
                self.path,
                format_args!(
                    "unknown field `{}`, expected {}",
                    name.chars().take(60).collect::<String>(),
                    OneOf(self.names)
                ),
            ));
        };
        let bit = 1u64
            .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
            .unwrap_or(0);
        if self.seen & bit != 0 {
            return Err(error_at(
                self.path,
                format_args!("duplicate field `{name}`"),
            ));
        }
        self.seen |= bit;
        Ok(Some(i))
    }

    /// The error for a required field that never came.
    pub(crate) fn missing<E: de::Error>(&self, name: &str) -> E {
        error_at(self.path, format_args!("missing field `{name}`"))
    }
}

/// A map key as text.
struct KeyName<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(Cow::Owned(v.to_owned())))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(Cow::Borrowed(v)))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<KeyName<'de>, E> {
                Ok(KeyName(Cow::Owned(v)))
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
struct OneOf(&'static [&'static str]);

impl fmt::Display for OneOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("no fields"),
            [a] => write!(f, "`{a}`"),
            [a, b] => write!(f, "`{a}` or `{b}`"),
            names => {
                f.write_str("one of ")?;
                for (i, n) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{n}`")?;
                }
                Ok(())
            }
        }
    }
}

/// `msg` without the ` at line L column C` that `serde_json` appends; it appends the position
/// again as the rewritten error leaves the enclosing object.
fn without_position(msg: &str) -> &str {
    let Some((head, tail)) = msg.rsplit_once(" at line ") else {
        return msg;
    };
    let Some((line, column)) = tail.split_once(" column ") else {
        return msg;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(line) && digits(column) {
        head
    } else {
        msg
    }
}

/// Whether `msg` already starts with `path` or a path inside it (`path.x`, `path[2]`).
fn names_path_within(msg: &str, path: &str) -> bool {
    msg.strip_prefix(path)
        .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('.') || rest.starts_with('['))
}

/// An error of the value at `path`, as `"<path>: <message>"` unless it already names a path
/// within it.
fn rewrite<E: de::Error>(path: Path, inner: impl fmt::Display) -> E {
    let full = inner.to_string();
    let msg = without_position(&full);
    let at = path.to_string();
    if names_path_within(msg, &at) {
        E::custom(msg)
    } else if let Some(rest) = path
        .index
        .and_then(|_| msg.strip_prefix(path.field))
        .filter(|rest| rest.starts_with(':') || rest.starts_with('.'))
    {
        // An item's error that names the list's path: put the index in.
        E::custom(format_args!("{at}{rest}"))
    } else {
        E::custom(format_args!("{at}: {msg}"))
    }
}

/// Reads a value of any `Deserialize` type at `path`, prefixing the path to its errors (unless
/// an error already names a path within it, which is more precise).
///
/// # Errors
/// The value's own, with the path.
pub(crate) fn nested<'de, D, T>(path: &'static str, d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    T::deserialize(d).map_err(|e| rewrite(Path::new(path), e))
}

/// Like [`nested`], for an internally tagged enum whose tag is at `tag`: an unknown variant is
/// told at the tag's path (`benefit.kind: unknown variant `lottery`, expected …`).
///
/// # Errors
/// The value's own, with the path.
pub(crate) fn nested_tagged<'de, D, T>(
    path: &'static str,
    tag: &'static str,
    d: D,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    T::deserialize(d).map_err(|e| {
        let full = e.to_string();
        let msg = without_position(&full);
        if msg.starts_with("unknown variant") {
            de::Error::custom(format_args!("{tag}: {msg}"))
        } else {
            rewrite(Path::new(path), e)
        }
    })
}

/// Reads a list of any `Deserialize` type at `path`, item `i`'s errors at `path[i]`.
///
/// # Errors
/// An item's own, with the path and index; a value that is not a list.
pub(crate) fn nested_list<'de, D, T>(path: &'static str, d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    struct Item<T>(Path, PhantomData<T>);
    impl<'de, T: de::Deserialize<'de>> DeserializeSeed<'de> for Item<T> {
        type Value = T;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            T::deserialize(d).map_err(|e| rewrite(self.0, e))
        }
    }
    struct NestedList<T>(Path, PhantomData<T>);
    impl<'de, T: de::Deserialize<'de>> Visitor<'de> for NestedList<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(x) = seq.next_element_seed(Item(self.0.item(out.len()), PhantomData))? {
                out.push(x);
            }
            Ok(out)
        }
        refuse_scalars!("a list");
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<T>, A::Error> {
            Err(self.0.error("expected a list, got an object"))
        }
    }
    let path = Path::new(path);
    if !d.is_human_readable() {
        return d.deserialize_seq(NestedList(path, PhantomData));
    }
    d.deserialize_any(NestedList(path, PhantomData))
}

/// Defines `deserialize_with` functions that read a [`Field`] at a path, or (with `nested`,
/// `nested_list`) any `Deserialize` type through [`nested`] and [`nested_list`]:
///
/// ```ignore
/// crate::de::field_paths! {
///     fn amount_at -> Money = "benefit.amount";
///     fn tiers_at -> nested_list Tier = "benefit.tiers";
///     fn scope_at -> nested Scope = "scope";
/// }
/// ```
macro_rules! field_paths {
    () => {};
    ($(#[$m:meta])* $vis:vis fn $name:ident -> nested_list $ty:ty = $path:literal; $($rest:tt)*) => {
        $(#[$m])*
        $vis fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<$ty>, D::Error> {
            $crate::de::nested_list($path, d)
        }
        $crate::de::field_paths! { $($rest)* }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident -> nested $ty:ty = $path:literal; $($rest:tt)*) => {
        $(#[$m])*
        $vis fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            $crate::de::nested($path, d)
        }
        $crate::de::field_paths! { $($rest)* }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident -> $ty:ty = $path:literal; $($rest:tt)*) => {
        $(#[$m])*
        $vis fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
            <$ty as $crate::de::Field<'de>>::read($crate::de::Path::new($path), d)
        }
        $crate::de::field_paths! { $($rest)* }
    };
}

pub(crate) use field_paths;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Sku;
    use crate::money::Money;
    use serde::Deserialize;

    field_paths! {
        fn count_at -> Option<u32> = "limits.per_order";
        fn amount_at -> Money = "benefit.amount";
        fn skus_at -> BTreeSet<Sku> = "scope.skus";
        fn inner_at -> nested Option<Inner> = "benefit";
        fn inners_at -> nested_list Tier = "benefit.tiers";
        fn tier_amount_at -> Money = "benefit.tiers.amount";
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Tier {
        #[serde(deserialize_with = "tier_amount_at")]
        amount: Money,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(deserialize_with = "amount_at")]
        amount: Money,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default, deserialize_with = "count_at")]
        count: Option<u32>,
        #[serde(default, deserialize_with = "skus_at")]
        skus: BTreeSet<Sku>,
        #[serde(default, deserialize_with = "inner_at")]
        inner: Option<Inner>,
        #[serde(default, deserialize_with = "inners_at")]
        inners: Vec<Tier>,
    }

    fn err(json: &str) -> String {
        let e = serde_json::from_str::<Outer>(json).unwrap_err();
        // The message, without serde_json's position.
        without_position(&e.to_string()).to_owned()
    }

    #[test]
    fn leaf_errors_name_the_path_and_what_came() {
        assert_eq!(
            err(r#"{"count": -5}"#),
            "limits.per_order: expected a non-negative integer, got -5"
        );
        assert_eq!(
            err(r#"{"count": 4294967296}"#),
            "limits.per_order: expected an integer of at most 4294967295, got 4294967296"
        );
        assert_eq!(
            err(r#"{"count": 2.5}"#),
            "limits.per_order: expected a non-negative integer, got the number 2.5"
        );
        assert_eq!(
            err(r#"{"count": "5"}"#),
            "limits.per_order: expected a non-negative integer, got the text \"5\""
        );
        assert_eq!(
            err(r#"{"skus": ["a", ""]}"#),
            "scope.skus[1]: invalid sku \"\": it is empty"
        );
        assert_eq!(
            err(r#"{"skus": "a"}"#),
            "scope.skus: expected a list, got the text \"a\""
        );
        let o: Outer = serde_json::from_str(r#"{"count": null, "skus": ["b", "a"]}"#).unwrap();
        assert_eq!(o.count, None);
        assert_eq!(o.skus.len(), 2);
    }

    #[test]
    fn nested_values_keep_the_most_precise_path() {
        assert_eq!(
            err(r#"{"inner": {"amount": {"amount": "1.234", "currency": "CNY"}}}"#),
            "benefit.amount: 1.234 has more decimal places than CNY allows (2)"
        );
        assert_eq!(
            err(r#"{"inner": {"amount": {"amount": "1", "currency": "CNY"}, "x": 1}}"#),
            "benefit: unknown field `x`, expected `amount`"
        );
        assert_eq!(
            err(r#"{"inners": [{"amount": {"amount": "1", "currency": "CNY"}}, {"amount": 5}]}"#),
            "benefit.tiers[1].amount: expected an amount as an object \
             {\"amount\": \"12.50\", \"currency\": \"CNY\"}, got 5"
        );
        assert_eq!(
            err(r#"{"inners": [{"y": 1}]}"#),
            "benefit.tiers[0]: unknown field `y`, expected `amount`"
        );
    }

    #[test]
    fn the_position_is_given_once() {
        let e = serde_json::from_str::<Outer>(r#"{"inner": {"x": 1}}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e.matches(" at line ").count(), 1, "{e}");
        assert_eq!(
            without_position("a at line 1 column x"),
            "a at line 1 column x"
        );
        assert_eq!(without_position("a at line 12 column 3"), "a");
    }

    #[test]
    fn a_zero_count_reads_like_the_rule_error() {
        let got = NonZeroU32::from_scalar(Path::new("limits.per_order"), Scalar::UInt(0));
        let rule = crate::rule::RuleError::Zero {
            field: "limits.per_order",
        };
        assert_eq!(got, Err(rule.to_string()));
    }

    #[test]
    fn keys_refuse_unknown_and_repeated_fields() {
        assert_eq!(
            err(r#"{"count": 1, "count": 2}"#),
            "duplicate field `count`"
        );
        assert_eq!(OneOf(&["a", "b", "c"]).to_string(), "one of `a`, `b`, `c`");
    }

    #[test]
    fn number_text_from_arbitrary_precision_is_read_exactly() {
        use serde::de::value::{Error, MapDeserializer};
        // What serde_json hands over for `12345678901234567.89` with `arbitrary_precision`.
        let d = MapDeserializer::<_, Error>::new(std::iter::once((
            NUMBER_TOKEN,
            "12345678901234567.89",
        )));
        let got = scalar_then(d, |s| Ok(s.to_string())).unwrap();
        assert_eq!(got, "12345678901234567.89");
        let exact = exact_number(None, "an amount", &Scalar::Number(got)).unwrap();
        assert_eq!(
            exact.to_decimal().unwrap().to_string(),
            "12345678901234567.89"
        );
        let d = MapDeserializer::<_, Error>::new(std::iter::once((NUMBER_TOKEN, "1.5e3")));
        let d = Decimal::read(Path::new("p"), d).unwrap();
        assert_eq!(d, Decimal::new(1500, 0));
    }
}
