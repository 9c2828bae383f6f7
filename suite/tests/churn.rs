//! The BG/NBD churn model against published values (Fader, Hardie & Lee 2005, on the CDNOW
//! sample copied into `data/`), and its invariants as properties.

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDate, TimeZone, Utc};
use coupons::targeting::churn::{
    BgNbd, Calibration, ChurnError, FitOptions, Summary, TimeUnit, at_risk,
};
use proptest::prelude::*;

const SUMMARY: &str = include_str!("data/cdnow_customers_summary.csv");
const TRANSACTIONS: &str = include_str!("data/CDNOW_sample.txt");

/// `ID,frequency,recency,T` in weeks.
fn cdnow() -> Vec<(u32, Summary)> {
    SUMMARY
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let s = Summary::new(
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
            .unwrap();
            (f[0].parse().unwrap(), s)
        })
        .collect()
}

fn published() -> BgNbd {
    // The maximum-likelihood estimates to eight digits (the paper prints 0.243, 4.414, 0.793,
    // 2.426).
    BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4).unwrap()
}

fn within(got: f64, want: f64, rel: f64) -> bool {
    (got / want - 1.0).abs() <= rel
}

#[test]
fn cdnow_fit_matches_published_estimates() {
    let customers: Vec<Summary> = cdnow().into_iter().map(|(_, s)| s).collect();
    assert_eq!(customers.len(), 2357);
    let fit = BgNbd::fit(&customers).unwrap();
    let m = fit.model;
    for (name, got, want) in [
        ("r", m.r(), 0.2426),
        ("alpha", m.alpha(), 4.4135),
        ("a", m.a(), 0.7929),
        ("b", m.b(), 2.4258),
    ] {
        assert!(within(got, want, 1e-3), "{name}: {got} vs {want}");
    }
    assert!(
        (fit.log_likelihood - -9582.43).abs() < 0.005,
        "{}",
        fit.log_likelihood
    );
    assert!(fit.gradient <= 1e-7, "{fit:?}");
    // The reported likelihood is the model's own at the estimate.
    let direct = m.total_log_likelihood(&customers);
    assert!((direct - fit.log_likelihood).abs() < 1e-8, "{direct}");
}

#[test]
fn cdnow_fit_is_the_same_from_another_start() {
    let customers: Vec<Summary> = cdnow().into_iter().map(|(_, s)| s).collect();
    let start = BgNbd::new(2.0, 0.5, 5.0, 0.3).unwrap();
    let options = FitOptions::default().start(start);
    let fit = BgNbd::fit_with(&customers, &options).unwrap();
    let m = fit.model;
    let p = published();
    assert!(within(m.r(), p.r(), 1e-5), "{m:?}");
    assert!(within(m.alpha(), p.alpha(), 1e-5), "{m:?}");
    assert!(within(m.a(), p.a(), 1e-5), "{m:?}");
    assert!(within(m.b(), p.b(), 1e-5), "{m:?}");
}

#[test]
fn published_customer_alive_probability_and_expectation() {
    // Customer 1 of the sample: x = 2, t_x = 30.43, T = 38.86.
    let fitted = BgNbd::fit(&cdnow().into_iter().map(|(_, s)| s).collect::<Vec<_>>())
        .unwrap()
        .model;
    let c = Summary::new(2, 30.43, 38.86).unwrap();
    for m in [published(), fitted] {
        let p = m.probability_alive(&c);
        assert!((p - 0.7266).abs() < 1.5e-4, "{p}");
        let e = m.expected_purchases(&c, 39.0).unwrap();
        assert!((e - 1.226).abs() < 5e-4, "{e}");
    }
}

#[test]
fn published_per_customer_log_likelihoods() {
    let m = BgNbd::new(0.25, 4.0, 0.80, 2.50).unwrap();
    let zero = m.log_likelihood(&Summary::new(0, 0.0, 40.0).unwrap());
    assert!((zero - -0.599_473_82).abs() < 1e-8, "{zero}");
    let many = m.log_likelihood(&Summary::new(200, 38.0, 40.0).unwrap());
    assert!((many - 100.7957).abs() < 1e-4, "{many}");
}

#[test]
fn alive_probability_extremes_are_exact() {
    let m = published();
    assert_eq!(
        m.probability_alive(&Summary::new(0, 1.0 - 1.0, 1.0).unwrap()),
        1.0
    );
    let gone = m.probability_alive(&Summary::new(1000, 10.0, 100.0).unwrap());
    assert_eq!(gone, 0.0);
    assert!(!gone.is_nan());
    let e = m
        .expected_purchases(&Summary::new(1000, 10.0, 100.0).unwrap(), 52.0)
        .unwrap();
    assert_eq!(e, 0.0);
}

#[test]
fn summaries_from_the_raw_transactions_match_the_published_summary() {
    // Calibration: the first 39 weeks of 1997; T counts whole days to 1997-09-30.
    let end = Utc.with_ymd_and_hms(1997, 9, 30, 12, 0, 0).unwrap();
    let calibration = Calibration::by_day(end, FixedOffset::east_opt(0).unwrap(), TimeUnit::Weeks);
    let mut purchases: BTreeMap<u32, Vec<chrono::DateTime<Utc>>> = BTreeMap::new();
    for line in TRANSACTIONS.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let id: u32 = f[1].parse().unwrap();
        let date = NaiveDate::parse_from_str(f[2], "%Y%m%d").unwrap();
        let at = Utc.from_utc_datetime(&date.and_hms_opt(10, 0, 0).unwrap());
        purchases.entry(id).or_default().push(at);
    }
    let published = cdnow();
    assert_eq!(purchases.len(), published.len());
    for (id, want) in published {
        let got = calibration.summarize(&purchases[&id]).unwrap();
        assert_eq!(got.frequency(), want.frequency(), "customer {id}");
        assert!(
            (got.recency() - want.recency()).abs() <= 0.005 + 1e-9,
            "customer {id}"
        );
        assert!(
            (got.age() - want.age()).abs() <= 0.005 + 1e-9,
            "customer {id}"
        );
    }
}

#[test]
fn churn_risk_is_exactly_the_customers_below_the_threshold() {
    let m = published();
    let customers = cdnow();
    let risk = at_risk(&m, 0.2, customers.iter().map(|(id, s)| (*id, s))).unwrap();
    assert!(!risk.is_empty());
    for (id, s) in &customers {
        let p = m.probability_alive(s);
        assert_eq!(
            risk.get(id).copied(),
            (p < 0.2).then_some(p),
            "customer {id}"
        );
    }
    assert!(
        at_risk(&m, 0.0, customers.iter().map(|(id, s)| (*id, s)))
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        at_risk(&m, f64::NAN, customers.iter().map(|(id, s)| (*id, s))),
        Err(ChurnError::InvalidArgument { .. })
    ));
}

#[test]
fn fit_refuses_data_without_repeat_purchases() {
    let cs = vec![Summary::new(0, 0.0, 10.0).unwrap(); 50];
    assert!(matches!(
        BgNbd::fit(&cs),
        Err(ChurnError::NotEnoughData {
            customers: 50,
            repeat_buyers: 0
        })
    ));
}

#[test]
fn serde_goes_through_the_same_checks() {
    let s = Summary::new(2, 30.43, 38.86).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Summary>(&json).unwrap(), s);
    assert!(serde_json::from_str::<Summary>(r#"{"frequency":1,"recency":5.0,"age":4.0}"#).is_err());
    let m = published();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<BgNbd>(&json).unwrap(), m);
    assert!(serde_json::from_str::<BgNbd>(r#"{"r":-1.0,"alpha":1.0,"a":1.0,"b":1.0}"#).is_err());
}

fn model() -> impl Strategy<Value = BgNbd> {
    (0.05f64..5.0, 0.1f64..50.0, 0.05f64..5.0, 0.05f64..10.0)
        .prop_map(|(r, alpha, a, b)| BgNbd::new(r, alpha, a, b).unwrap())
}

fn customer() -> impl Strategy<Value = Summary> {
    (0u32..5000, 0.0f64..1.0, 0.0f64..200.0).prop_map(|(x, share, age)| {
        let recency = if x == 0 { 0.0 } else { share * age };
        Summary::new(x, recency, age).unwrap()
    })
}

proptest! {
    #[test]
    fn probabilities_are_probabilities_and_likelihoods_finite(m in model(), c in customer()) {
        let p = m.probability_alive(&c);
        prop_assert!((0.0..=1.0).contains(&p));
        prop_assert!(m.log_likelihood(&c).is_finite());
        let e = m.expected_purchases(&c, 52.0).unwrap();
        prop_assert!(e.is_finite() && e >= 0.0, "{e}");
    }

    #[test]
    fn a_more_recent_last_purchase_means_more_likely_alive(
        m in model(), x in 1u32..500, age in 1.0f64..200.0, s1 in 0.0f64..1.0, s2 in 0.0f64..1.0,
    ) {
        let (lo, hi) = if s1 <= s2 { (s1, s2) } else { (s2, s1) };
        let early = Summary::new(x, lo * age, age).unwrap();
        let late = Summary::new(x, hi * age, age).unwrap();
        prop_assert!(m.probability_alive(&early) <= m.probability_alive(&late));
    }

    #[test]
    fn expected_purchases_grow_with_the_horizon(
        m in model(), c in customer(), t1 in 0.0f64..300.0, t2 in 0.0f64..300.0,
    ) {
        let (lo, hi) = if t1 <= t2 { (t1, t2) } else { (t2, t1) };
        let a = m.expected_purchases(&c, lo).unwrap();
        let b = m.expected_purchases(&c, hi).unwrap();
        prop_assert!(a <= b * (1.0 + 1e-12) + 1e-300, "{a} > {b}");
    }

    #[test]
    fn the_purchase_count_distribution_sums_to_one(m in model(), x in 0u32..30, share in 0.0f64..1.0, age in 1.0f64..60.0) {
        let c = Summary::new(x, if x == 0 { 0.0 } else { share * age }, age).unwrap();
        let e = m.expected_purchases(&c, 10.0).unwrap();
        let mut total = 0.0;
        let mut mean = 0.0;
        let mut n = 0u32;
        // Sum far enough into the tail (the count has mean e and a heavier-than-Poisson tail).
        while n < 400 + (50.0 * e) as u32 {
            let p = m.probability_of_purchases(&c, n, 10.0).unwrap();
            prop_assert!((0.0..=1.0).contains(&p), "{p}");
            total += p;
            mean += f64::from(n) * p;
            n += 1;
        }
        prop_assert!((total - 1.0).abs() < 1e-6, "{total}");
        prop_assert!((mean - e).abs() < 1e-4 * (1.0 + e), "{mean} vs {e}");
    }
}

#[test]
fn fit_stays_finite_with_customers_buying_thousands_of_times() {
    let mut customers: Vec<Summary> = cdnow().into_iter().map(|(_, s)| s).collect();
    for x in [1_000, 2_500, 5_000] {
        customers.push(Summary::new(x, 38.5, 38.86).unwrap());
    }
    let fit = BgNbd::fit(&customers).unwrap();
    assert!(fit.log_likelihood.is_finite());
    assert!(fit.gradient <= 1e-4, "{fit:?}");
    let direct = fit.model.total_log_likelihood(&customers);
    assert!((direct - fit.log_likelihood).abs() < 1e-6 * direct.abs());
}

#[test]
fn a_plateau_rising_towards_infinity_is_unbounded_not_a_maximum() {
    // One customer: the likelihood keeps creeping up as r and alpha grow together and a and
    // b run apart, but the gradient vanishes in floating point long before any parameter
    // reaches 1e8. The fit once returned this plateau as a maximum that a 10% nudge beat.
    let one = [Summary::new(2, 45.954_046_827_300_35, 56.631_119_850_205_025).unwrap()];
    match BgNbd::fit(&one) {
        Err(ChurnError::Unbounded { estimate, .. }) => {
            assert!(estimate.total_log_likelihood(&one).is_finite());
        }
        other => panic!("expected Unbounded, got {other:?}"),
    }
}

fn history() -> impl Strategy<Value = Vec<Summary>> {
    prop::collection::vec(
        (0u32..40, 0.0f64..1.0, 0.5f64..60.0).prop_map(|(x, share, age)| {
            Summary::new(x, if x == 0 { 0.0 } else { share * age }, age).unwrap()
        }),
        1..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fit_returns_a_maximum_or_a_typed_error(customers in history()) {
        match BgNbd::fit(&customers) {
            Ok(fit) => {
                prop_assert!(fit.log_likelihood.is_finite());
                prop_assert!(fit.gradient <= 1e-4, "{fit:?}");
                let m = fit.model;
                for f in [0.9, 1.1] {
                    for nudged in [
                        BgNbd::new(m.r() * f, m.alpha(), m.a(), m.b()).unwrap(),
                        BgNbd::new(m.r(), m.alpha() * f, m.a(), m.b()).unwrap(),
                        BgNbd::new(m.r(), m.alpha(), m.a() * f, m.b()).unwrap(),
                        BgNbd::new(m.r(), m.alpha(), m.a(), m.b() * f).unwrap(),
                    ] {
                        let other = nudged.total_log_likelihood(&customers);
                        prop_assert!(fit.log_likelihood >= other - 1e-9 * other.abs(), "{nudged:?}");
                    }
                }
            }
            Err(ChurnError::NotEnoughData { repeat_buyers, .. }) => prop_assert_eq!(repeat_buyers, 0),
            Err(ChurnError::Unbounded { .. } | ChurnError::NotConverged { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e:?}"),
        }
    }
}
