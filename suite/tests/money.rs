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
