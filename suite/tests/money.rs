//! Properties of exact money: apportioning, arithmetic, rounding, parsing.

use coupons::money::{Currency, Money, Rounding, apportion};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn cny(minor: i64) -> Money {
    Money::from_minor(minor, Currency::CNY)
}

proptest! {
    #[test]
    fn apportion_parts_sum_exactly_and_stay_within_one_unit(
        weights in proptest::collection::vec(0i64..1_000_000, 0..20),
        frac in 0u32..=1000,
    ) {
        let sum: i64 = weights.iter().sum();
        let total = (i128::from(sum) * i128::from(frac) / 1000) as i64;
        let ws: Vec<Money> = weights.iter().map(|w| cny(*w)).collect();
        let parts = apportion(cny(total), &ws).unwrap();
        let got: Vec<i64> = parts.iter().map(|p| p.to_minor().unwrap()).collect();
        prop_assert_eq!(got.iter().sum::<i64>(), total);
        for (p, w) in got.iter().zip(&weights) {
            prop_assert!(*p <= *w, "part {} exceeds weight {}", p, w);
            prop_assert!(*p >= 0);
            if *w == 0 { prop_assert_eq!(*p, 0); }
            // |p - total*w/sum| < 1  ⇔  |p*sum - total*w| < sum
            let diff = (i128::from(*p) * i128::from(sum) - i128::from(total) * i128::from(*w)).abs();
            prop_assert!(diff < i128::from(sum.max(1)));
        }
    }

    #[test]
    fn apportion_is_deterministic(weights in proptest::collection::vec(0i64..1000, 1..10), total in 0i64..100) {
        let ws: Vec<Money> = weights.iter().map(|w| cny(*w)).collect();
        let sum: i64 = weights.iter().sum();
        let t = total.min(sum);
        prop_assert_eq!(apportion(cny(t), &ws).unwrap(), apportion(cny(t), &ws).unwrap());
    }

    #[test]
    fn add_then_sub_round_trips(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
        let (x, y) = (cny(a), cny(b));
        prop_assert_eq!(x.checked_add(&y).unwrap().checked_sub(&y).unwrap(), x);
        prop_assert_eq!(x.checked_add(&y).unwrap().to_minor().unwrap(), a + b);
    }

    #[test]
    fn mul_ratio_is_within_half_a_unit(a in 0i64..10_000_000, pct in 1i64..=100) {
        let r = Decimal::new(pct, 2);
        let got = cny(a).mul_ratio(r, Rounding::HalfEven).unwrap().to_minor().unwrap();
        // exact = a*pct/100 minor units
        let diff = (i128::from(got) * 100 - i128::from(a) * i128::from(pct)).abs();
        prop_assert!(diff <= 50);
        let down = cny(a).mul_ratio(r, Rounding::Down).unwrap().to_minor().unwrap();
        prop_assert!(i128::from(down) * 100 <= i128::from(a) * i128::from(pct));
    }

    #[test]
    fn arbitrary_currency_text_never_panics(s in "\\PC{0,8}") {
        let _ = s.parse::<Currency>();
    }
}

// ---------------------------------------------------------------------------------------------
// Exact or an error, at rust_decimal's limits: every operation against big-integer arithmetic
// on minor units.
// ---------------------------------------------------------------------------------------------

use coupons::money::{MAX_MINOR_UNITS, MoneyError};
use num_bigint::BigInt;

/// A currency of each exponent 0–4 (known and made-up ones).
fn any_currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        Just(Currency::JPY),
        Just(Currency::new("XTA", 1).unwrap()),
        Just(Currency::CNY),
        Just(Currency::KWD),
        Just(Currency::new("XTB", 4).unwrap()),
    ]
}

/// Minor units over the whole range, weighted toward its edges: near ±(2^96 − 1), near powers
/// of two and ten, small, and uniform over 96 bits.
fn minor_units() -> impl Strategy<Value = i128> {
    let magnitude = prop_oneof![
        2 => (0u128..1_000).prop_map(|d| MAX_MINOR_UNITS as u128 - d),
        2 => (40u32..=96, 0u128..1_000).prop_map(|(b, d)| (1u128 << b).saturating_sub(d).min(MAX_MINOR_UNITS as u128)),
        2 => (18u32..=28, 0u128..1_000).prop_map(|(k, d)| 10u128.pow(k) - d.min(10u128.pow(k))),
        1 => 0u128..1_000_000,
        3 => (any::<u64>(), any::<u32>()).prop_map(|(lo, hi)| (u128::from(hi) << 64) | u128::from(lo)),
    ];
    (magnitude, any::<bool>()).prop_map(|(m, neg)| {
        let m = m.min(MAX_MINOR_UNITS as u128) as i128;
        if neg { -m } else { m }
    })
}

/// A multiplier: small, near 2^32 and 2^64, or any u64.
fn factor() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10,
        (0u64..1000).prop_map(|d| (1u64 << 32) - d),
        (0u64..1000).prop_map(|d| u64::MAX - d),
        any::<u64>(),
    ]
}

/// Any decimal a `Decimal` holds: mantissa up to 2^96 − 1, scale 0–28, either sign.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    (minor_units(), 0u32..=28).prop_map(|(m, s)| Decimal::from_i128_with_scale(m, s))
}

fn rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![
        Just(Rounding::HalfEven),
        Just(Rounding::HalfUp),
        Just(Rounding::Down),
        Just(Rounding::Up),
    ]
}

fn big(x: i128) -> BigInt {
    BigInt::from(x)
}

fn pow10(n: u32) -> BigInt {
    BigInt::from(10u8).pow(n)
}

/// What an exact result must give: the amount when it is within range, else an overflow.
fn check_exact(
    got: Result<Money, MoneyError>,
    exact: &BigInt,
    c: Currency,
) -> Result<(), TestCaseError> {
    if exact.magnitude() <= BigInt::from(MAX_MINOR_UNITS).magnitude() {
        let m = got.map_err(|e| TestCaseError::fail(format!("{exact} in range, got {e}")))?;
        prop_assert_eq!(big(m.to_minor_i128()), exact.clone());
        prop_assert_eq!(m.amount().scale(), u32::from(c.exponent()));
        prop_assert_eq!(m.currency(), c);
    } else {
        prop_assert!(
            matches!(got, Err(MoneyError::Overflow { .. })),
            "{} out of range, got {:?}",
            exact,
            got
        );
    }
    Ok(())
}

/// `a × b / 10^s` rounded like `rounding`, on big integers.
fn reference_mul_ratio(a: i128, ratio: Decimal, rounding: Rounding) -> BigInt {
    let p = big(a) * big(ratio.mantissa());
    let d = pow10(ratio.scale());
    let negative = p < BigInt::from(0);
    let mag = if negative { -p } else { p };
    let (q, r) = (&mag / &d, &mag % &d);
    let twice = &r * 2;
    let up = match rounding {
        Rounding::Down => false,
        Rounding::Up => r != BigInt::from(0),
        Rounding::HalfUp => r != BigInt::from(0) && twice >= d,
        Rounding::HalfEven => twice > d || (twice == d && (&q % 2) == BigInt::from(1)),
        _ => unreachable!(),
    };
    let q = if up { q + 1 } else { q };
    if negative { -q } else { q }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn add_sub_mul_sum_are_exact_or_overflow(
        c in any_currency(),
        a in minor_units(),
        b in minor_units(),
        n in factor(),
        terms in proptest::collection::vec(minor_units(), 0..6),
    ) {
        let (x, y) = (Money::from_minor_i128(a, c).unwrap(), Money::from_minor_i128(b, c).unwrap());
        check_exact(x.checked_add(&y), &(big(a) + big(b)), c)?;
        check_exact(x.checked_sub(&y), &(big(a) - big(b)), c)?;
        check_exact(x.checked_mul_int(n), &(big(a) * BigInt::from(n)), c)?;
        let ms: Vec<Money> = terms.iter().map(|t| Money::from_minor_i128(*t, c).unwrap()).collect();
        let exact: BigInt = terms.iter().map(|t| big(*t)).sum();
        check_exact(Money::sum(c, &ms), &exact, c)?;
    }

    #[test]
    fn mul_ratio_is_the_exact_product_rounded_once(
        c in any_currency(),
        a in minor_units(),
        ratio in prop_oneof![
            any_decimal(),
            (0i64..=100_000, 0u32..=6).prop_map(|(m, s)| Decimal::new(m, s)),
        ],
        r in rounding(),
    ) {
        let x = Money::from_minor_i128(a, c).unwrap();
        check_exact(x.mul_ratio(ratio, r), &reference_mul_ratio(a, ratio, r), c)?;
    }

    #[test]
    fn new_is_exact_at_the_minor_unit_or_refuses(c in any_currency(), d in any_decimal()) {
        let e = u32::from(c.exponent());
        // d = m / 10^s; in minor units m × 10^e / 10^s, which must be whole and in range.
        let scaled = big(d.mantissa()) * pow10(e);
        let den = pow10(d.scale());
        match Money::new(d, c) {
            Ok(m) => {
                prop_assert_eq!(&scaled % &den, BigInt::from(0));
                prop_assert_eq!(big(m.to_minor_i128()), &scaled / &den);
                prop_assert_eq!(m.amount().scale(), e);
                prop_assert_eq!(m.amount(), d);
            }
            Err(MoneyError::TooPrecise { .. }) => prop_assert_ne!(&scaled % &den, BigInt::from(0)),
            Err(MoneyError::OutOfRange { .. }) => {
                prop_assert_eq!(&scaled % &den, BigInt::from(0));
                prop_assert!((&scaled / &den).magnitude() > BigInt::from(MAX_MINOR_UNITS).magnitude());
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    #[test]
    fn parse_is_exact_at_the_minor_unit_or_refuses(
        c in any_currency(),
        neg in any::<bool>(),
        int in "[0-9]{1,32}",
        frac in proptest::option::of("[0-9]{1,34}"),
    ) {
        let text = format!("{}{int}{}", if neg { "-" } else { "" }, frac.as_ref().map_or(String::new(), |f| format!(".{f}")));
        let e = u32::from(c.exponent());
        let f = frac.clone().unwrap_or_default();
        let digits: BigInt = format!("{int}{f}").parse().unwrap();
        let digits = if neg { -digits } else { digits };
        let scaled = digits * pow10(e);
        let den = pow10(f.len() as u32);
        match Money::parse(&text, c) {
            Ok(m) => {
                prop_assert_eq!(&scaled % &den, BigInt::from(0));
                prop_assert_eq!(big(m.to_minor_i128()), &scaled / &den);
                prop_assert_eq!(m.amount().scale(), e);
            }
            Err(MoneyError::TooPrecise { .. }) => prop_assert_ne!(&scaled % &den, BigInt::from(0), "{}", text),
            Err(MoneyError::OutOfRange { .. }) => {
                prop_assert_eq!(&scaled % &den, BigInt::from(0));
                prop_assert!((&scaled / &den).magnitude() > BigInt::from(MAX_MINOR_UNITS).magnitude());
            }
            Err(other) => prop_assert!(false, "{text}: {other}"),
        }
    }

    #[test]
    fn json_round_trips_every_amount_exactly(c in any_currency(), a in minor_units()) {
        let m = Money::from_minor_i128(a, c).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let amount = v["amount"].as_str().unwrap();
        prop_assert_eq!(amount.split_once('.').map_or(0, |(_, f)| f.len()), usize::from(c.exponent()));
        prop_assert_eq!(serde_json::from_str::<Money>(&text).unwrap(), m);
    }

    #[test]
    fn json_integers_are_exact(c in any_currency(), n in any::<i64>()) {
        let text = format!(r#"{{"amount": {n}, "currency": "{}"}}"#, String::from(c));
        let m: Money = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(big(m.to_minor_i128()), BigInt::from(n) * pow10(u32::from(c.exponent())));
    }

    #[test]
    fn json_numbers_with_a_fraction_are_refused_not_rounded(
        int in 0u64..1_000_000_000_000_000,
        frac in "[0-9]{1,6}",
    ) {
        let text = format!(r#"{{"amount": {int}.{frac}, "currency": "CNY"}}"#);
        let e = serde_json::from_str::<Money>(&text).unwrap_err().to_string();
        prop_assert!(e.contains("send the amount as a decimal string"), "{}", e);
    }
}
