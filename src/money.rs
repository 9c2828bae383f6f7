//! Exact money: a [`Currency`] with its minor unit, an amount in it ([`Money`]), explicit
//! [`Rounding`], and [`apportion`] — splitting an amount across weighted parts so that the parts
//! sum exactly to it.
//!
//! Amounts are [`rust_decimal::Decimal`], never `f64`, and always carry exactly their
//! currency's number of decimal places: `12.5` yuan is held, shown and written as `12.50`.
//!
//! ```
//! use coupons::money::{Currency, Money, Rounding};
//! use rust_decimal::Decimal;
//!
//! let price = Money::new(Decimal::new(1999, 2), Currency::USD)?; // 19.99 USD
//! let three = price.checked_mul_int(3)?;
//! assert_eq!(three.to_string(), "59.97 USD");
//! // 15 % of 59.97 is 8.9955: rounded to the cent with the default (half-even) strategy.
//! let saving = three.mul_ratio(Decimal::new(15, 2), Rounding::default())?;
//! assert_eq!(saving.to_string(), "9.00 USD");
//! // Parsing brings an amount to the minor unit and refuses anything finer.
//! assert_eq!(Money::parse("12.5", Currency::CNY)?.to_string(), "12.50 CNY");
//! assert!(Money::parse("12.505", Currency::CNY).is_err());
//! # Ok::<(), coupons::money::MoneyError>(())
//! ```
//!
//! # Exact or an error
//!
//! Every operation returns the exact result at the currency's scale, or a [`MoneyError`] —
//! never a rounded, truncated or rescaled value, and nothing here panics. An amount holds up to
//! [`MAX_MINOR_UNITS`] minor units (2⁹⁶ − 1, the largest `Decimal` mantissa) on either side of
//! zero: about 7.9 × 10²⁶ yuan, or 7.9 × 10²⁸ yen. Sums, differences and products beyond that
//! are [`MoneyError::Overflow`]; the only operation that rounds is [`Money::mul_ratio`], and
//! only once, by the [`Rounding`] you pass, from the exact product.
//!
//! ```
//! use coupons::money::{Currency, Money, MoneyError};
//! let cny = Currency::CNY;
//! let half = Money::parse("500000000000000000000000000.01", cny)?;
//! // The exact sum has 30 digits, more than an amount holds: an error, not 1.0e27.
//! assert!(matches!(half.checked_add(&half), Err(MoneyError::Overflow { .. })));
//! assert_eq!(Money::zero(cny).checked_mul_int(3)?.to_string(), "0.00 CNY");
//! # Ok::<(), MoneyError>(())
//! ```
//!
//! # In JSON
//!
//! An amount is an object with its currency: `{"amount": "12.50", "currency": "CNY"}`. It is
//! always written that way, the amount a decimal string with exactly the currency's decimal
//! places. Reading is exact and strict:
//!
//! - `"amount"` as a **string** of decimal digits with an optional `-` and fraction
//!   (`"12.50"`, `"12.5"`, `"-3"`). Trailing zeros beyond the minor unit are fine (`"12.500"`);
//!   any other digit beyond it is [`MoneyError::TooPrecise`]. No exponents, no `+`, no `_`.
//! - `"amount"` as a JSON **integer** (`12`), read exactly.
//! - `"amount"` as a JSON number with a **fraction or an exponent** (`12.5`, `1e3`) is read
//!   exactly from its text when the deserializer keeps the text (`serde_json` with its
//!   `arbitrary_precision` feature). Otherwise the number has already been turned into a binary
//!   float, which may have lost digits (`20.000000000000001` arrives as `20`), so it is refused
//!   with an error asking for a string — never silently rounded.
//! - `"currency"`: a code as for [`Currency`] (`"CNY"`, `"XTS:2"`). No other fields.
//!
//! ```
//! # #[cfg(feature = "serde")] {
//! use coupons::money::{Currency, Money};
//! let m: Money = serde_json::from_str(r#"{"amount": "12.5", "currency": "CNY"}"#).unwrap();
//! assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"amount":"12.50","currency":"CNY"}"#);
//! let whole: Money = serde_json::from_str(r#"{"amount": 12, "currency": "CNY"}"#).unwrap();
//! assert_eq!(whole, m.checked_sub(&Money::parse("0.5", Currency::CNY).unwrap()).unwrap());
//! let e = serde_json::from_str::<Money>(r#"{"amount": 20.000000000000001, "currency": "CNY"}"#)
//!     .unwrap_err();
//! assert!(e.to_string().contains("send the amount as a decimal string"), "{e}");
//! # }
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// The most minor units an amount holds on either side of zero: 2⁹⁶ − 1
/// (79,228,162,514,264,337,593,543,950,335), the largest mantissa of a [`Decimal`].
pub const MAX_MINOR_UNITS: i128 = 79_228_162_514_264_337_593_543_950_335;

/// What went wrong in a money operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {left} with {right}: the currencies differ")]
    CurrencyMismatch {
        /// The currency of the left operand.
        left: Currency,
        /// The currency of the right operand.
        right: Currency,
    },
    /// The exact result is beyond [`MAX_MINOR_UNITS`] on either side of zero.
    #[error(
        "{operation} overflowed: the exact result is beyond the largest amount held \
         (79228162514264337593543950335 minor units either side of zero)"
    )]
    Overflow {
        /// The operation that overflowed, e.g. `"add"`.
        operation: &'static str,
    },
    /// An amount given (as a decimal or as text) that is beyond [`MAX_MINOR_UNITS`] once
    /// brought to its currency's minor unit.
    #[error(
        "{amount} {currency} is beyond the largest amount held \
         (79228162514264337593543950335 minor units either side of zero)"
    )]
    OutOfRange {
        /// The amount as given.
        amount: String,
        /// Its currency.
        currency: Currency,
    },
    /// An amount whose minor units do not fit in an `i64` was asked for them as one.
    #[error("{amount} is more minor units than an i64 holds")]
    MinorUnitsBeyondI64 {
        /// The amount.
        amount: Money,
    },
    /// An amount has more decimal places than its currency's minor unit allows.
    #[error("{amount} has more decimal places than {currency} allows ({exponent})")]
    TooPrecise {
        /// The amount as given.
        amount: String,
        /// Its currency.
        currency: Currency,
        /// The currency's number of decimal places.
        exponent: u8,
    },
    /// A currency code that is not three ASCII capital letters, or an exponent above 4.
    #[error("invalid currency {code:?}: {reason}")]
    InvalidCurrency {
        /// The code as given.
        code: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed currency code this crate does not know the minor unit of.
    #[error("unknown currency {code:?}: give its minor unit explicitly, e.g. \"{code}:2\"")]
    UnknownCurrency {
        /// The code as given.
        code: String,
    },
    /// An amount could not be parsed.
    #[error("invalid amount {input:?}: {reason}")]
    InvalidAmount {
        /// The text as given (cut to 60 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`apportion`] was asked to split more than the parts can hold, a negative amount, or over
    /// negative weights.
    #[error("cannot apportion {total} over parts worth {capacity}: {reason}")]
    Apportion {
        /// The amount to split.
        total: Decimal,
        /// The sum of the weights.
        capacity: Decimal,
        /// Why it cannot be split.
        reason: &'static str,
    },
}

/// An ISO 4217 currency: its three-letter code and the number of decimal places of its minor
/// unit (2 for cents, 0 for yen, 3 for fils).
///
/// The common currencies are constants; others are built with [`Currency::new`].
/// In JSON a currency is its code (`"CNY"`), or `"XYZ:2"` for one this crate does not list.
///
/// ```
/// use coupons::money::Currency;
/// assert_eq!(Currency::JPY.exponent(), 0);
/// assert_eq!("KWD".parse::<Currency>()?.exponent(), 3);
/// assert_eq!("XTS:2".parse::<Currency>()?.code(), "XTS");
/// # Ok::<(), coupons::money::MoneyError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

const KNOWN: &[(&str, u8)] = &[
    ("AED", 2),
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("IDR", 2),
    ("INR", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MOP", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

impl Currency {
    /// Chinese yuan renminbi, 2 decimals.
    pub const CNY: Currency = Currency::known(*b"CNY", 2);
    /// US dollar, 2 decimals.
    pub const USD: Currency = Currency::known(*b"USD", 2);
    /// Euro, 2 decimals.
    pub const EUR: Currency = Currency::known(*b"EUR", 2);
    /// Pound sterling, 2 decimals.
    pub const GBP: Currency = Currency::known(*b"GBP", 2);
    /// Hong Kong dollar, 2 decimals.
    pub const HKD: Currency = Currency::known(*b"HKD", 2);
    /// Japanese yen, no minor unit.
    pub const JPY: Currency = Currency::known(*b"JPY", 0);
    /// South Korean won, no minor unit.
    pub const KRW: Currency = Currency::known(*b"KRW", 0);
    /// Bahraini dinar, 3 decimals.
    pub const BHD: Currency = Currency::known(*b"BHD", 3);
    /// Kuwaiti dinar, 3 decimals.
    pub const KWD: Currency = Currency::known(*b"KWD", 3);

    const fn known(code: [u8; 3], exponent: u8) -> Currency {
        Currency { code, exponent }
    }

    /// A currency from its code and minor-unit exponent, for currencies not listed here.
    ///
    /// # Errors
    /// [`MoneyError::InvalidCurrency`] when the code is not three ASCII capital letters or the
    /// exponent is above 4.
    pub fn new(code: &str, exponent: u8) -> Result<Currency, MoneyError> {
        let bytes = code.as_bytes();
        let invalid = |reason| MoneyError::InvalidCurrency {
            code: code.to_owned(),
            reason,
        };
        let [a, b, c] = bytes else {
            return Err(invalid("a currency code has three letters"));
        };
        if ![a, b, c].iter().all(|x| x.is_ascii_uppercase()) {
            return Err(invalid("a currency code is three ASCII capital letters"));
        }
        if exponent > 4 {
            return Err(invalid("the minor-unit exponent is at most 4"));
        }
        Ok(Currency {
            code: [*a, *b, *c],
            exponent,
        })
    }

    /// A listed currency by its code.
    ///
    /// # Errors
    /// [`MoneyError::InvalidCurrency`] for a malformed code, [`MoneyError::UnknownCurrency`] for
    /// a well-formed one this crate does not list (use [`Currency::new`]).
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        Currency::new(code, 0)?;
        KNOWN
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, e)| Currency::known(c_bytes(c), *e))
            .ok_or_else(|| MoneyError::UnknownCurrency {
                code: code.to_owned(),
            })
    }

    /// The three-letter code, e.g. `"CNY"`.
    pub fn code(&self) -> &str {
        // The bytes are ASCII capitals by construction.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimal places of the minor unit.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// The minor unit as an amount: `0.01` for USD, `1` for JPY.
    pub fn minor_unit(&self) -> Decimal {
        Decimal::new(1, u32::from(self.exponent))
    }

    fn is_listed(&self) -> bool {
        KNOWN
            .iter()
            .any(|(c, e)| c.as_bytes() == self.code && *e == self.exponent)
    }
}

fn c_bytes(code: &str) -> [u8; 3] {
    let b = code.as_bytes();
    [b[0], b[1], b[2]]
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((code, exp)) => {
                let exponent = exp.parse::<u8>().map_err(|_| MoneyError::InvalidCurrency {
                    code: s.to_owned(),
                    reason: "the minor-unit exponent after ':' is a small whole number",
                })?;
                Currency::new(code, exponent)
            }
            None => Currency::from_code(s),
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        if c.is_listed() {
            c.code().to_owned()
        } else {
            format!("{}:{}", c.code(), c.exponent)
        }
    }
}

/// How an exact result is brought to the currency's minor unit.
///
/// The default is [`Rounding::HalfEven`] (banker's rounding): it is unbiased, so over many
/// orders the half-cent cases cancel out instead of always favouring the merchant or the buyer,
/// and it is the convention of accounting and of `rust_decimal` itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Rounding {
    /// Half to even: 0.125 → 0.12, 0.135 → 0.14.
    #[default]
    HalfEven,
    /// Half away from zero: 0.125 → 0.13.
    HalfUp,
    /// Toward zero (truncate): 0.129 → 0.12. Use it for savings that must never exceed the
    /// advertised rate.
    Down,
    /// Away from zero: 0.121 → 0.13.
    Up,
}

/// An amount of money in one [`Currency`], always at exactly its currency's number of decimal
/// places (`12.50` CNY, `1250` JPY, `1.250` KWD) and at most [`MAX_MINOR_UNITS`] minor units
/// either side of zero.
///
/// Ordering compares amounts of the same currency; amounts of different currencies are unordered
/// (`partial_cmp` returns `None`).
///
/// In JSON: `{"amount": "12.50", "currency": "CNY"}`; see [the module docs](self#in-json) for
/// what reading accepts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Invariant: `amount.scale() == currency.exponent` and the mantissa is the count of minor
    /// units.
    amount: Decimal,
    currency: Currency,
}

/// `10^n`, when it fits.
fn pow10(n: u64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(n).ok()?)
}

/// An exact decimal read from text: `±mantissa × 10^-scale`, trailing zeros of the fraction
/// removed. `mantissa` is `None` when it has more digits than a `u128` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exact {
    negative: bool,
    mantissa: Option<u128>,
    scale: u64,
}

impl Exact {
    /// A whole number.
    pub(crate) fn whole(negative: bool, magnitude: u128) -> Exact {
        Exact {
            negative: negative && magnitude != 0,
            mantissa: Some(magnitude),
            scale: 0,
        }
    }

    /// Reads `-?digits(.digits)?`, and with `exponent` also `([eE][+-]?digits)?` (a JSON
    /// number's own text); `None` for anything else.
    pub(crate) fn parse(text: &str, exponent: bool) -> Option<Exact> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (number, exp) = match rest.split_once(['e', 'E']) {
            Some((n, e)) if exponent => (n, Some(e)),
            Some(_) => return None,
            None => (rest, None),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || number.ends_with('.') {
            return None;
        }
        // The power of ten the exponent adds, saturated far beyond any amount.
        let exp10: i64 = match exp {
            None => 0,
            Some(e) => {
                let (sign, ds) = match e.as_bytes().first() {
                    Some(b'-') => (-1, e.get(1..).unwrap_or("")),
                    Some(b'+') => (1, e.get(1..).unwrap_or("")),
                    _ => (1, e),
                };
                if ds.is_empty() || !digits(ds) {
                    return None;
                }
                let magnitude = ds.bytes().fold(0i64, |acc, b| {
                    (acc * 10 + i64::from(b - b'0')).min(1_000_000_000_000)
                });
                sign * magnitude
            }
        };
        let all = || int.bytes().chain(frac.bytes());
        let len = int.len() + frac.len();
        let mut scale = i64::try_from(frac.len()).unwrap_or(i64::MAX) - exp10;
        // Trailing zeros of the fraction change nothing: drop them.
        let zeros = all().rev().take_while(|b| *b == b'0').count();
        let drop = zeros.min(usize::try_from(scale.max(0)).unwrap_or(usize::MAX));
        scale -= i64::try_from(drop).unwrap_or(0);
        let mut mantissa = Some(0u128);
        for b in all().take(len - drop).skip_while(|b| *b == b'0') {
            mantissa = mantissa
                .and_then(|m| m.checked_mul(10))
                .and_then(|m| m.checked_add(u128::from(b - b'0')));
        }
        if mantissa == Some(0) {
            return Some(Exact::whole(false, 0));
        }
        if scale < 0 {
            mantissa = mantissa
                .zip(pow10(scale.unsigned_abs()))
                .and_then(|(m, p)| m.checked_mul(p));
            scale = 0;
        }
        Some(Exact {
            negative,
            mantissa,
            scale: scale.unsigned_abs(),
        })
    }

    /// The count of minor units at `exponent` decimal places: exact, or the error naming `text`.
    fn to_minor(self, text: &str, currency: Currency) -> Result<i128, MoneyError> {
        let exponent = u64::from(currency.exponent);
        if self.scale > exponent {
            return Err(MoneyError::TooPrecise {
                amount: text.to_owned(),
                currency,
                exponent: currency.exponent,
            });
        }
        self.mantissa
            .zip(pow10(exponent - self.scale))
            .and_then(|(m, p)| m.checked_mul(p))
            .and_then(|m| i128::try_from(m).ok())
            .filter(|m| *m <= MAX_MINOR_UNITS)
            .map(|m| if self.negative { -m } else { m })
            .ok_or_else(|| MoneyError::OutOfRange {
                amount: text.to_owned(),
                currency,
            })
    }

    #[cfg(feature = "serde")]
    /// The value as a [`Decimal`], when it has at most 28 decimal places and 2⁹⁶ − 1 as its
    /// mantissa.
    pub(crate) fn to_decimal(self) -> Option<Decimal> {
        let m = i128::try_from(self.mantissa?).ok()?;
        let scale = u32::try_from(self.scale).ok()?;
        Decimal::try_from_i128_with_scale(if self.negative { -m } else { m }, scale).ok()
    }
}

/// `|a| × |b| / 10^scale` rounded by `rounding`, from the exact 192-bit product; `None` when the
/// quotient does not fit in a `u128`. The four strategies are symmetric, so rounding the
/// magnitude rounds the signed value.
fn mul_div_pow10(a: u128, b: u128, scale: u32, rounding: Rounding) -> Option<u128> {
    let product = mul_wide(a, b);
    // 10^scale for scale ≤ 28 is at most two u64 divisors.
    let (d1, d2) = if scale <= 19 {
        (10u64.checked_pow(scale)?, 1)
    } else {
        (10u64.pow(19), 10u64.checked_pow(scale - 19)?)
    };
    let (q1, r1) = div_wide(product, d1);
    let (q, r2) = div_wide(q1, d2);
    // product = q·d1·d2 + r2·d1 + r1, with the remainder below d1·d2 = 10^scale.
    let rem = u128::from(r2) * u128::from(d1) + u128::from(r1);
    let den = u128::from(d1) * u128::from(d2);
    let [l0, l1, l2, l3] = q;
    if l2 != 0 || l3 != 0 {
        return None;
    }
    let q = u128::from(l0) | (u128::from(l1) << 64);
    let up = match rounding {
        Rounding::Down => false,
        Rounding::Up => rem != 0,
        Rounding::HalfUp => rem != 0 && 2 * rem >= den,
        Rounding::HalfEven => 2 * rem > den || (2 * rem == den && q & 1 == 1),
    };
    q.checked_add(u128::from(up))
}

/// `a × b` as four 64-bit limbs, least significant first.
fn mul_wide(a: u128, b: u128) -> [u64; 4] {
    let lo = |x: u128| x & u128::from(u64::MAX);
    let (a0, a1) = (lo(a), a >> 64);
    let (b0, b1) = (lo(b), b >> 64);
    let (p00, p01, p10, p11) = (a0 * b0, a0 * b1, a1 * b0, a1 * b1);
    let mid = (p00 >> 64) + lo(p01) + lo(p10);
    let hi = (mid >> 64) + (p01 >> 64) + (p10 >> 64) + p11;
    [
        lo(p00) as u64,
        lo(mid) as u64,
        lo(hi) as u64,
        (hi >> 64) as u64,
    ]
}

/// `n / d` and `n % d` for a four-limb `n` and `d ≥ 1`.
fn div_wide(n: [u64; 4], d: u64) -> ([u64; 4], u64) {
    let d = u128::from(d.max(1));
    let mut q = [0u64; 4];
    let mut rem = 0u128;
    for (qi, ni) in q.iter_mut().rev().zip(n.iter().rev()) {
        let cur = (rem << 64) | u128::from(*ni);
        *qi = (cur / d) as u64;
        rem = cur % d;
    }
    (q, rem as u64)
}

impl Money {
    /// An amount from a count of minor units, if it is in range; `operation` names what
    /// computed it.
    fn of(minor: i128, currency: Currency, operation: &'static str) -> Result<Money, MoneyError> {
        if minor.unsigned_abs() > MAX_MINOR_UNITS.unsigned_abs() {
            return Err(MoneyError::Overflow { operation });
        }
        Decimal::try_from_i128_with_scale(minor, u32::from(currency.exponent))
            .map(|amount| Money { amount, currency })
            .map_err(|_| MoneyError::Overflow { operation })
    }

    /// An amount in a currency, brought to its minor unit (`12.5` CNY is `12.50` CNY). The
    /// amount may be negative (a refund, a difference); rule types that need a positive amount
    /// check that themselves.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when the amount has more decimal places than the currency's
    /// minor unit (`12.345` CNY; trailing zeros are fine, `12.500` CNY is `12.50` CNY);
    /// [`MoneyError::OutOfRange`] when it is more than [`MAX_MINOR_UNITS`] minor units (a
    /// `Decimal` near its maximum, in a currency with decimals).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let exponent = u32::from(currency.exponent);
        let (m, scale) = (amount.mantissa(), amount.scale());
        let minor = if scale > exponent {
            let div = 10i128.checked_pow(scale - exponent).unwrap_or(i128::MAX);
            if m % div != 0 {
                return Err(MoneyError::TooPrecise {
                    amount: amount.to_string(),
                    currency,
                    exponent: currency.exponent,
                });
            }
            Some(m / div)
        } else {
            10i128
                .checked_pow(exponent - scale)
                .and_then(|p| m.checked_mul(p))
        };
        minor
            .and_then(|minor| Money::of(minor, currency, "new").ok())
            .ok_or_else(|| MoneyError::OutOfRange {
                amount: amount.to_string(),
                currency,
            })
    }

    /// Parses a decimal string such as `"12.50"` (or `"12.5"`, `"-3"`, `" 12.50 "`: white space
    /// around it is ignored) in a currency, exactly.
    ///
    /// # Errors
    /// [`MoneyError::InvalidAmount`] when the text is not digits with an optional `-` and
    /// fraction (no exponent, `+` or `_`); [`MoneyError::TooPrecise`] when it has more decimal
    /// places than the currency allows (other than trailing zeros); [`MoneyError::OutOfRange`]
    /// beyond [`MAX_MINOR_UNITS`] minor units.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let text = amount.trim();
        let exact = Exact::parse(text, false).ok_or_else(|| MoneyError::InvalidAmount {
            input: amount.chars().take(60).collect(),
            reason: "an amount is digits with an optional '-' and fraction, e.g. \"12.50\"",
        })?;
        Money::from_exact(exact, text, currency)
    }

    fn from_exact(exact: Exact, text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let minor = exact.to_minor(text, currency)?;
        Money::of(minor, currency, "parse").map_err(|_| MoneyError::OutOfRange {
            amount: text.to_owned(),
            currency,
        })
    }

    /// Zero in a currency, at its minor unit (`0.00` CNY).
    pub fn zero(currency: Currency) -> Money {
        Money {
            amount: Decimal::from_parts(0, 0, 0, false, u32::from(currency.exponent)),
            currency,
        }
    }

    /// An amount from a whole number of minor units: `from_minor(1250, CNY)` is 12.50 CNY.
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: Decimal::new(minor, u32::from(currency.exponent)),
            currency,
        }
    }

    /// An amount from a whole number of minor units over the whole range.
    ///
    /// # Errors
    /// [`MoneyError::OutOfRange`] beyond [`MAX_MINOR_UNITS`] either side of zero.
    pub fn from_minor_i128(minor: i128, currency: Currency) -> Result<Money, MoneyError> {
        Money::of(minor, currency, "from_minor_i128").map_err(|_| MoneyError::OutOfRange {
            amount: minor_text(minor, currency.exponent),
            currency,
        })
    }

    /// The amount as a decimal, at the currency's scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount in whole minor units (cents for USD).
    ///
    /// # Errors
    /// [`MoneyError::MinorUnitsBeyondI64`] when it does not fit in an `i64` (use
    /// [`Money::to_minor_i128`]).
    pub fn to_minor(&self) -> Result<i64, MoneyError> {
        i64::try_from(self.to_minor_i128())
            .map_err(|_| MoneyError::MinorUnitsBeyondI64 { amount: *self })
    }

    /// The amount in whole minor units, over the whole range.
    pub fn to_minor_i128(&self) -> i128 {
        // The scale always equals the exponent, so the mantissa is the minor-unit count.
        self.amount.mantissa()
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.to_minor_i128() > 0
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.to_minor_i128() < 0
    }

    fn same(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other`, exactly.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`]; [`MoneyError::Overflow`] when the sum is beyond
    /// [`MAX_MINOR_UNITS`].
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        // Both are below 2^96 in magnitude: the i128 sum cannot overflow.
        Money::of(
            self.to_minor_i128() + other.to_minor_i128(),
            self.currency,
            "add",
        )
    }

    /// `self - other`, exactly.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`]; [`MoneyError::Overflow`] when the difference is beyond
    /// [`MAX_MINOR_UNITS`].
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        Money::of(
            self.to_minor_i128() - other.to_minor_i128(),
            self.currency,
            "subtract",
        )
    }

    /// `self × n`, exactly, e.g. a unit price times a quantity.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] when the product is beyond [`MAX_MINOR_UNITS`].
    pub fn checked_mul_int(&self, n: u64) -> Result<Money, MoneyError> {
        let product =
            self.to_minor_i128()
                .checked_mul(i128::from(n))
                .ok_or(MoneyError::Overflow {
                    operation: "multiply",
                })?;
        Money::of(product, self.currency, "multiply")
    }

    /// `self × ratio`, rounded once to the minor unit with `rounding` from the exact product:
    /// `100 × 0.15 = 15`. Any ratio a `Decimal` holds works (negative too), and the result is
    /// the exact product rounded, however many digits the product has.
    ///
    /// ```
    /// use coupons::money::{Currency, Money, Rounding};
    /// use rust_decimal::Decimal;
    /// let m = Money::from_minor(1, Currency::CNY); // 0.01
    /// // 0.01 × 0.5000000000000000000000000001 is just above half a fen: half-even rounds up.
    /// let r: Decimal = "0.5000000000000000000000000001".parse().unwrap();
    /// assert_eq!(m.mul_ratio(r, Rounding::HalfEven)?, m);
    /// # Ok::<(), coupons::money::MoneyError>(())
    /// ```
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] when the rounded product is beyond [`MAX_MINOR_UNITS`].
    pub fn mul_ratio(&self, ratio: Decimal, rounding: Rounding) -> Result<Money, MoneyError> {
        let m = self.to_minor_i128();
        let r = ratio.mantissa();
        let magnitude = mul_div_pow10(m.unsigned_abs(), r.unsigned_abs(), ratio.scale(), rounding)
            .and_then(|q| i128::try_from(q).ok())
            .ok_or(MoneyError::Overflow {
                operation: "multiply",
            })?;
        let signed = if (m < 0) != (r < 0) {
            -magnitude
        } else {
            magnitude
        };
        Money::of(signed, self.currency, "multiply")
    }

    /// The smaller of two amounts of one currency (`self` when they differ in currency).
    pub fn min(self, other: Money) -> Money {
        if self.currency == other.currency && other.amount < self.amount {
            other
        } else {
            self
        }
    }

    /// The larger of two amounts of one currency (`self` when they differ in currency).
    pub fn max(self, other: Money) -> Money {
        if self.currency == other.currency && other.amount > self.amount {
            other
        } else {
            self
        }
    }

    /// Zero if negative, else `self`.
    pub fn clamp_non_negative(self) -> Money {
        if self.is_negative() {
            Money::zero(self.currency)
        } else {
            self
        }
    }

    /// Sum of amounts in `currency`, exactly. Only the sum must be in range: the terms are added
    /// in 128 bits, so `[max, 1, -1]` sums to `max`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] when one is in another currency; [`MoneyError::Overflow`]
    /// when the sum is beyond [`MAX_MINOR_UNITS`].
    pub fn sum<'a, I>(currency: Currency, amounts: I) -> Result<Money, MoneyError>
    where
        I: IntoIterator<Item = &'a Money>,
    {
        let zero = Money::zero(currency);
        let mut total = 0i128;
        for m in amounts {
            zero.same(m)?;
            total = total
                .checked_add(m.to_minor_i128())
                .ok_or(MoneyError::Overflow { operation: "sum" })?;
        }
        Money::of(total, currency, "sum")
    }
}

/// `minor` minor units as decimal text at `exponent` places, for messages.
fn minor_text(minor: i128, exponent: u8) -> String {
    let digits = minor.unsigned_abs().to_string();
    let e = usize::from(exponent);
    let padded = format!("{digits:0>width$}", width = e + 1);
    let (int, frac) = padded.split_at(padded.len() - e);
    let sign = if minor < 0 { "-" } else { "" };
    if e == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.currency == other.currency {
            Some(self.amount.cmp(&other.amount))
        } else {
            None
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(feature = "serde")]
mod json {
    //! Money's JSON: written as `{"amount": "<decimal text>", "currency": "<code>"}`, read
    //! exactly (see the module docs).

    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::ser::{SerializeStruct, Serializer};

    use super::{Currency, Exact, Money};
    use crate::de::{Field, Keys, Path, Read, Scalar, error_at, exact_number, scalar_then};

    const FIELDS: &[&str] = &["amount", "currency"];
    const SHAPE: &str = "an amount as an object {\"amount\": \"12.50\", \"currency\": \"CNY\"}";

    impl serde::Serialize for Money {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            /// The amount as decimal text whatever `rust_decimal`'s serde features say.
            struct Text<'a>(&'a rust_decimal::Decimal);
            impl serde::Serialize for Text<'_> {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.collect_str(self.0)
                }
            }
            let mut st = s.serialize_struct("Money", 2)?;
            st.serialize_field("amount", &Text(&self.amount))?;
            st.serialize_field("currency", &self.currency)?;
            st.end()
        }
    }

    impl<'de> serde::Deserialize<'de> for Money {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
            read(None, d)
        }
    }

    impl<'de> Field<'de> for Money {
        fn read<D: Deserializer<'de>>(path: Path, d: D) -> Result<Money, D::Error> {
            read(Some(path), d)
        }
    }

    fn read<'de, D: Deserializer<'de>>(path: Option<Path>, d: D) -> Result<Money, D::Error> {
        let visitor = MoneyVisitor(path);
        if d.is_human_readable() {
            d.deserialize_any(visitor)
        } else {
            d.deserialize_struct("Money", FIELDS, visitor)
        }
    }

    /// The amount as it came: its exact value and its text (for messages).
    struct Amount {
        exact: Exact,
        text: String,
    }

    struct AmountSeed(Option<Path>);

    impl<'de> de::DeserializeSeed<'de> for AmountSeed {
        type Value = Amount;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Amount, D::Error> {
            if d.is_human_readable() {
                scalar_then(d, |got| amount(self.0, got))
            } else {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                amount(self.0, Scalar::Text(Cow::Owned(text))).map_err(de::Error::custom)
            }
        }
    }

    fn amount(path: Option<Path>, got: Scalar<'_>) -> Result<Amount, String> {
        let exact = exact_number(path, "the amount", &got)?;
        let text = match got {
            Scalar::Text(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        Ok(Amount { exact, text })
    }

    struct MoneyVisitor(Option<Path>);

    impl MoneyVisitor {
        fn finish<E: de::Error>(
            &self,
            amount: Option<Amount>,
            currency: Option<Currency>,
        ) -> Result<Money, E> {
            let keys = Keys::new(self.0, FIELDS);
            let amount = amount.ok_or_else(|| keys.missing("amount"))?;
            let currency = currency.ok_or_else(|| keys.missing("currency"))?;
            Money::from_exact(amount.exact, &amount.text, currency).map_err(|e| error_at(self.0, e))
        }

        fn refuse<E: de::Error>(&self, got: impl fmt::Display) -> E {
            error_at(self.0, format_args!("expected {SHAPE}, got {got}"))
        }
    }

    impl<'de> Visitor<'de> for MoneyVisitor {
        type Value = Money;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(SHAPE)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Money, A::Error> {
            let mut keys = Keys::new(self.0, FIELDS);
            let (mut amount, mut currency) = (None, None);
            while let Some(i) = keys.next(&mut map)? {
                if i == 0 {
                    amount = Some(map.next_value_seed(AmountSeed(self.0))?);
                } else {
                    let path = self.0.unwrap_or(Path::new("currency"));
                    currency = Some(map.next_value_seed(Read::<Currency>::at(path))?);
                }
            }
            self.finish(amount, currency)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Money, A::Error> {
            let amount = seq.next_element_seed(AmountSeed(self.0))?;
            let currency = seq.next_element::<Currency>()?;
            self.finish(amount, currency)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Money, E> {
            Err(self.refuse(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
            Err(self.refuse(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
            Err(self.refuse(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
            Err(self.refuse(Scalar::Float(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
            Err(self.refuse(Scalar::Text(Cow::Borrowed(v))))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Money, E> {
            Err(self.refuse("null"))
        }
        fn visit_none<E: de::Error>(self) -> Result<Money, E> {
            Err(self.refuse("null"))
        }
    }
}

/// Splits `total` across parts in proportion to `weights`, by the largest-remainder method in
/// minor units.
///
/// Guarantees, for every non-negative `total` not above the sum of the weights:
/// - the parts sum exactly to `total`;
/// - each part is within one minor unit of its exact share `total × weight / Σweights`;
/// - no part exceeds its own weight (a line never gives back more than it cost);
/// - a zero weight gets zero;
/// - ties in the remainders go to the earlier part, so the result is deterministic.
///
/// ```
/// use coupons::money::{apportion, Currency, Money};
/// let cny = Currency::CNY;
/// let lines = [Money::from_minor(3000, cny), Money::from_minor(7000, cny), Money::from_minor(0, cny)];
/// // 10.00 off an order of 30.00 + 70.00: 3.00 and 7.00.
/// let parts = apportion(Money::from_minor(1000, cny), &lines)?;
/// assert_eq!(parts, vec![Money::from_minor(300, cny), Money::from_minor(700, cny), Money::zero(cny)]);
/// // 0.10 over three equal lines: 0.04 + 0.03 + 0.03, the earlier line takes the tie.
/// let even = [Money::from_minor(100, cny); 3];
/// let parts = apportion(Money::from_minor(10, cny), &even)?;
/// assert_eq!(parts.iter().map(|m| m.to_minor().unwrap()).collect::<Vec<_>>(), vec![4, 3, 3]);
/// # Ok::<(), coupons::money::MoneyError>(())
/// ```
///
/// # Errors
/// [`MoneyError::CurrencyMismatch`] when a weight is in another currency;
/// [`MoneyError::Apportion`] when `total` or a weight is negative, or `total` exceeds the sum of
/// the weights; [`MoneyError::MinorUnitsBeyondI64`] for amounts beyond `i64` minor units.
pub fn apportion(total: Money, weights: &[Money]) -> Result<Vec<Money>, MoneyError> {
    let currency = total.currency;
    let t = i128::from(total.to_minor()?);
    let mut w = Vec::with_capacity(weights.len());
    for weight in weights {
        total.same(weight)?;
        w.push(i128::from(weight.to_minor()?));
    }
    let sum: i128 = w.iter().sum();
    let fail = |reason| MoneyError::Apportion {
        total: total.amount,
        capacity: Decimal::from_i128_with_scale(sum, u32::from(currency.exponent)),
        reason,
    };
    if t < 0 || w.iter().any(|x| *x < 0) {
        return Err(fail("amounts and weights must not be negative"));
    }
    if t > sum {
        return Err(fail("the amount exceeds the parts"));
    }
    let minor = apportion_minor(t, &w);
    Ok(minor
        .into_iter()
        .map(|m| Money {
            amount: Decimal::from_i128_with_scale(m, u32::from(currency.exponent)),
            currency,
        })
        .collect())
}

/// The largest-remainder split in whole units. Requires `0 ≤ total ≤ Σweights`, weights ≥ 0.
pub(crate) fn apportion_minor(total: i128, weights: &[i128]) -> Vec<i128> {
    let sum: i128 = weights.iter().sum();
    if sum == 0 || total == 0 {
        return vec![0; weights.len()];
    }
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = 0i128;
    for (i, w) in weights.iter().enumerate() {
        // total ≤ sum and both fit in i64, so the product fits in i128.
        let exact = total * w;
        let floor = exact / sum;
        parts.push(floor);
        given += floor;
        let rem = exact % sum;
        if rem > 0 {
            remainders.push((rem, i));
        }
    }
    let mut left = total - given;
    // Largest remainder first; equal remainders to the earlier part.
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in remainders {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Money {
        Money::from_minor(minor, Currency::CNY)
    }

    impl Money {
        fn neg_for_test(self) -> Money {
            Money::from_minor_i128(-self.to_minor_i128(), self.currency).unwrap()
        }
    }

    #[test]
    fn rejects_amounts_finer_than_the_minor_unit() {
        let err = Money::new(Decimal::new(12345, 3), Currency::CNY).unwrap_err();
        assert!(matches!(err, MoneyError::TooPrecise { exponent: 2, .. }));
        assert!(Money::new(Decimal::new(12500, 3), Currency::CNY).is_ok());
        assert!(Money::new(Decimal::new(15, 1), Currency::JPY).is_err());
        assert_eq!(
            Money::new(Decimal::new(1, 3), Currency::KWD)
                .unwrap()
                .to_string(),
            "0.001 KWD"
        );
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let e = cny(1)
            .checked_add(&Money::from_minor(1, Currency::USD))
            .unwrap_err();
        assert_eq!(
            e,
            MoneyError::CurrencyMismatch {
                left: Currency::CNY,
                right: Currency::USD
            }
        );
        assert_eq!(
            cny(1).partial_cmp(&Money::from_minor(1, Currency::USD)),
            None
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let big = Money::new(Decimal::MAX, Currency::JPY).unwrap();
        assert!(matches!(
            big.checked_add(&Money::from_minor(1, Currency::JPY)),
            Err(MoneyError::Overflow { .. })
        ));
        assert!(big.checked_mul_int(2).is_err());
        assert!(big.to_minor().is_err());
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!(Currency::new("cny", 2).is_err());
        assert!(Currency::new("CN", 2).is_err());
        assert!(Currency::new("CNY", 9).is_err());
        assert!(matches!(
            Currency::from_code("XTS"),
            Err(MoneyError::UnknownCurrency { .. })
        ));
        for (code, exp) in [("JPY", 0), ("KRW", 0), ("BHD", 3), ("KWD", 3), ("CNY", 2)] {
            assert_eq!(Currency::from_code(code).unwrap().exponent(), exp);
        }
    }

    #[test]
    fn rounding_strategies_differ_on_halves() {
        let m = cny(1); // 0.01 × 0.5 = 0.005
        let half = Decimal::new(5, 1);
        assert_eq!(m.mul_ratio(half, Rounding::HalfEven).unwrap(), cny(0));
        assert_eq!(m.mul_ratio(half, Rounding::HalfUp).unwrap(), cny(1));
        assert_eq!(m.mul_ratio(half, Rounding::Down).unwrap(), cny(0));
        assert_eq!(m.mul_ratio(half, Rounding::Up).unwrap(), cny(1));
    }

    #[test]
    fn apportion_rejects_more_than_the_parts() {
        assert!(apportion(cny(101), &[cny(50), cny(50)]).is_err());
        assert!(apportion(cny(-1), &[cny(50)]).is_err());
        assert!(apportion(cny(1), &[]).is_err());
        assert_eq!(apportion(cny(0), &[]).unwrap(), vec![]);
    }

    #[test]
    fn results_are_exact_or_an_error_never_rescaled() {
        let half = Money::parse("500000000000000000000000000.01", Currency::CNY).unwrap();
        assert_eq!(
            half.checked_add(&half),
            Err(MoneyError::Overflow { operation: "add" })
        );
        assert!(half.checked_sub(&half.checked_mul_int(0).unwrap()).is_ok());
        assert!(matches!(
            half.neg_for_test().checked_sub(&half),
            Err(MoneyError::Overflow { .. })
        ));
        assert!(half.checked_mul_int(2).is_err());
        assert!(half.mul_ratio(Decimal::new(2, 0), Rounding::Down).is_err());
        assert_eq!(
            Money::zero(Currency::CNY)
                .checked_mul_int(3)
                .unwrap()
                .to_string(),
            "0.00 CNY"
        );
        assert_eq!(Money::zero(Currency::KWD).to_string(), "0.000 KWD");
        // Only the sum must fit.
        let max = Money::from_minor_i128(MAX_MINOR_UNITS, Currency::JPY).unwrap();
        let one = Money::from_minor(1, Currency::JPY);
        let terms = [max, one, Money::from_minor(-1, Currency::JPY)];
        assert_eq!(Money::sum(Currency::JPY, &terms).unwrap(), max);
        assert!(Money::sum(Currency::JPY, &[max, one]).is_err());
        assert!(Money::from_minor_i128(MAX_MINOR_UNITS + 1, Currency::JPY).is_err());
        assert_eq!(
            max.to_minor(),
            Err(MoneyError::MinorUnitsBeyondI64 { amount: max })
        );
    }

    #[test]
    fn mul_ratio_rounds_once_from_the_exact_product() {
        let r = |s: &str| s.parse::<Decimal>().unwrap();
        // 0.01 × 0.5000000000000000000000000001: a hair above half a fen.
        let m = cny(1);
        assert_eq!(
            m.mul_ratio(r("0.5000000000000000000000000001"), Rounding::HalfEven)
                .unwrap(),
            cny(1)
        );
        assert_eq!(
            m.mul_ratio(r("0.4999999999999999999999999999"), Rounding::HalfUp)
                .unwrap(),
            cny(0)
        );
        assert_eq!(
            m.mul_ratio(r("0.0000000000000000000000000001"), Rounding::Up)
                .unwrap(),
            cny(1)
        );
        assert_eq!(
            cny(-3).mul_ratio(r("0.5"), Rounding::HalfEven).unwrap(),
            cny(-2)
        );
        assert_eq!(
            cny(-3).mul_ratio(r("0.5"), Rounding::Down).unwrap(),
            cny(-1)
        );
        // A 28-digit amount times a 28-digit ratio, exactly.
        let big = Money::from_minor_i128(MAX_MINOR_UNITS, Currency::JPY).unwrap();
        assert_eq!(big.mul_ratio(Decimal::ONE, Rounding::Down).unwrap(), big);
        assert_eq!(
            big.mul_ratio(r("0.0000000000000000000000000001"), Rounding::Down)
                .unwrap(),
            Money::from_minor(7, Currency::JPY)
        );
    }

    #[test]
    fn new_and_parse_bring_amounts_to_the_minor_unit() {
        let c = Currency::CNY;
        assert_eq!(Money::parse("12.5", c).unwrap().to_string(), "12.50 CNY");
        assert_eq!(Money::parse("12.500000", c).unwrap(), cny(1250));
        assert_eq!(Money::parse("-0.00", c).unwrap().to_string(), "0.00 CNY");
        assert_eq!(
            Money::new(Decimal::new(125, 1), c)
                .unwrap()
                .amount()
                .scale(),
            2
        );
        for bad in [
            "", "1e3", "+1", "1_000", ".5", "5.", "1.2.3", "--1", "12,50", "NaN",
        ] {
            assert!(
                matches!(Money::parse(bad, c), Err(MoneyError::InvalidAmount { .. })),
                "{bad:?}"
            );
        }
        // Precision beyond what a Decimal holds is refused, not rounded.
        assert!(matches!(
            Money::parse("12.000000000000000000000000000001", c),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert_eq!(
            Money::parse("12.000000000000000000000000000000", c).unwrap(),
            cny(1200)
        );
        assert!(matches!(
            Money::parse("792281625142643375935439503.36", c),
            Err(MoneyError::OutOfRange { .. })
        ));
        assert!(Money::parse("792281625142643375935439503.35", c).is_ok());
        assert!(matches!(
            Money::new(Decimal::MAX, c),
            Err(MoneyError::OutOfRange { .. })
        ));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_money_is_exact_or_refused() {
        let read = |s: &str| serde_json::from_str::<Money>(s).map_err(|e| e.to_string());
        assert_eq!(
            read(r#"{"amount": "12345678901234567.89", "currency": "CNY"}"#)
                .unwrap()
                .to_string(),
            "12345678901234567.89 CNY"
        );
        assert_eq!(
            read(r#"{"amount": 12, "currency": "CNY"}"#).unwrap(),
            cny(1200)
        );
        assert_eq!(
            read(r#"{"amount": -12, "currency": "JPY"}"#).unwrap(),
            Money::from_minor(-12, Currency::JPY)
        );
        for float in ["12345678901234567.89", "20.000000000000001", "12.5", "1e3"] {
            let e = read(&format!(r#"{{"amount": {float}, "currency": "CNY"}}"#)).unwrap_err();
            assert!(
                e.starts_with("the number arrived as the binary float"),
                "{e}"
            );
            assert!(
                e.contains("send the amount as a decimal string such as \"12.50\""),
                "{e}"
            );
        }
        assert_eq!(
            read(r#"{"amount": "20.005", "currency": "CNY"}"#).unwrap_err(),
            "20.005 has more decimal places than CNY allows (2) at line 1 column 39"
        );
        assert_eq!(
            read(r#"{"currency": "CNY", "amount": "1", "amount": "2"}"#).unwrap_err(),
            "duplicate field `amount` at line 1 column 43"
        );
        assert_eq!(
            read(r#"{"amount": "1"}"#).unwrap_err(),
            "missing field `currency` at line 1 column 15"
        );
        assert_eq!(
            read(r#""12.50""#).unwrap_err(),
            "expected an amount as an object {\"amount\": \"12.50\", \"currency\": \"CNY\"}, got the text \"12.50\" at line 1 column 7"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn money_json_is_readable_and_validated() {
        let m = cny(1250);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"12.50","currency":"CNY"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1.234","currency":"CNY"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"1","currency":"XXQ"}"#).is_err());
        let custom: Currency = serde_json::from_str(r#""XTS:3""#).unwrap();
        assert_eq!(serde_json::to_string(&custom).unwrap(), r#""XTS:3""#);
    }
}
