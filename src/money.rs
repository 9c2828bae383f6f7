//! Exact money: a [`Currency`] with its minor unit, an amount in it ([`Money`]), explicit
//! [`Rounding`], and [`apportion`] — splitting an amount across weighted parts so that the parts
//! sum exactly to it.
//!
//! Amounts are [`rust_decimal::Decimal`], never `f64`. Every operation that can overflow or mix
//! currencies is checked and returns a [`MoneyError`]; nothing here panics.
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
//! # Ok::<(), coupons::money::MoneyError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

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
    /// The result does not fit in the representable range.
    #[error("{operation} overflowed")]
    Overflow {
        /// The operation that overflowed, e.g. `"add"`.
        operation: &'static str,
    },
    /// An amount has more decimal places than its currency's minor unit allows.
    #[error("{amount} has more decimal places than {currency} allows ({exponent})")]
    TooPrecise {
        /// The amount as given.
        amount: Decimal,
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
    #[error("invalid amount {input:?}")]
    InvalidAmount {
        /// The text as given.
        input: String,
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

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::Down => RoundingStrategy::ToZero,
            Rounding::Up => RoundingStrategy::AwayFromZero,
        }
    }
}

/// An amount of money in one [`Currency`], never more precise than its minor unit.
///
/// Ordering compares amounts of the same currency; amounts of different currencies are unordered
/// (`partial_cmp` returns `None`).
///
/// In JSON: `{"amount": "12.50", "currency": "CNY"}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "MoneyRepr", into = "MoneyRepr")
)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyRepr {
    amount: Decimal,
    currency: Currency,
}

#[cfg(feature = "serde")]
impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;
    fn try_from(r: MoneyRepr) -> Result<Self, Self::Error> {
        Money::new(r.amount, r.currency)
    }
}

#[cfg(feature = "serde")]
impl From<Money> for MoneyRepr {
    fn from(m: Money) -> Self {
        MoneyRepr {
            amount: m.amount,
            currency: m.currency,
        }
    }
}

impl Money {
    /// An amount in a currency. The amount may be negative (a refund, a difference); rule types
    /// that need a positive amount check that themselves.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when the amount has more decimal places than the currency's
    /// minor unit (`12.345` CNY). Trailing zeros are fine (`12.500` CNY is `12.50` CNY).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let normal = amount.normalize();
        if normal.scale() > u32::from(currency.exponent) {
            return Err(MoneyError::TooPrecise {
                amount,
                currency,
                exponent: currency.exponent,
            });
        }
        let mut amount = normal;
        amount.rescale(u32::from(currency.exponent));
        if amount.scale() != u32::from(currency.exponent) {
            // Too many digits to carry the minor unit: outside the representable range.
            return Err(MoneyError::Overflow {
                operation: "scale to the minor unit",
            });
        }
        Ok(Money { amount, currency })
    }

    /// Parses a decimal string such as `"12.50"` in a currency.
    ///
    /// # Errors
    /// [`MoneyError::InvalidAmount`] when the text is not a decimal number, and the errors of
    /// [`Money::new`].
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let d = Decimal::from_str(amount.trim()).map_err(|_| MoneyError::InvalidAmount {
            input: amount.to_owned(),
        })?;
        Money::new(d, currency)
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(u32::from(currency.exponent));
        Money { amount, currency }
    }

    /// An amount from a whole number of minor units: `from_minor(1250, CNY)` is 12.50 CNY.
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money {
            amount: Decimal::new(minor, u32::from(currency.exponent)),
            currency,
        }
    }

    /// The amount as a decimal.
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
    /// [`MoneyError::Overflow`] when it does not fit in an `i64`.
    pub fn to_minor(&self) -> Result<i64, MoneyError> {
        let m = self.amount.mantissa();
        // The scale always equals the exponent, so the mantissa is the minor-unit count.
        i64::try_from(m).map_err(|_| MoneyError::Overflow {
            operation: "to_minor",
        })
    }

    /// Whether the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// Whether the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.amount > Decimal::ZERO
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount < Decimal::ZERO
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

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow { operation: "add" })?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`], [`MoneyError::Overflow`].
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow {
                operation: "subtract",
            })?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    /// `self × n`, e.g. a unit price times a quantity.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_mul_int(&self, n: u64) -> Result<Money, MoneyError> {
        let amount = self
            .amount
            .checked_mul(Decimal::from(n))
            .ok_or(MoneyError::Overflow {
                operation: "multiply",
            })?;
        Ok(Money {
            amount,
            currency: self.currency,
        })
    }

    /// `self × ratio`, rounded to the minor unit with `rounding`: `100 × 0.15 = 15`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn mul_ratio(&self, ratio: Decimal, rounding: Rounding) -> Result<Money, MoneyError> {
        let exact = self.amount.checked_mul(ratio).ok_or(MoneyError::Overflow {
            operation: "multiply",
        })?;
        let mut amount =
            exact.round_dp_with_strategy(u32::from(self.currency.exponent), rounding.strategy());
        amount.rescale(u32::from(self.currency.exponent));
        Ok(Money {
            amount,
            currency: self.currency,
        })
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

    /// Sum of amounts in `currency`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] when one is in another currency, [`MoneyError::Overflow`].
    pub fn sum<'a, I>(currency: Currency, amounts: I) -> Result<Money, MoneyError>
    where
        I: IntoIterator<Item = &'a Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
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
/// the weights; [`MoneyError::Overflow`] for amounts beyond `i64` minor units.
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
