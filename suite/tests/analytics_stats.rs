//! Significance tests, intervals and sample sizes: published worked examples, algebraic
//! properties, and simulated coverage.
//!
//! Reference values were computed with scipy 1.17.1 and statsmodels 0.15.0 (the calls are
//! given beside each value), and checked against the printed examples of R's documentation
//! and the NIST/SEMATECH e-Handbook where those exist.

use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
use coupons::analytics::significance::{
    Alpha, Alternative, Design, Power, goodness_of_fit, power_means, power_proportions,
    relative_uplift, relative_uplift_means, sample_ratio_mismatch, sample_size_means,
    sample_size_proportions, two_proportions_z_test, welch_t_test, welch_t_test_samples,
};
use coupons::analytics::{Rate, StatsError, Summary};
use proptest::prelude::*;

const TWO: Alternative = Alternative::TwoSided;
const A5: Alpha = Alpha::FIVE_PERCENT;

fn rate(num: u64, den: u64) -> Rate {
    Rate::new(num, den).unwrap()
}

#[track_caller]
fn close(got: f64, want: f64, rel: f64) {
    let tol = rel * want.abs().max(f64::MIN_POSITIVE);
    assert!(
        (got - want).abs() <= tol,
        "got {got:e}, want {want:e} (rel {rel:e})"
    );
}

// ---------------------------------------------------------------- published examples

#[test]
fn z_test_matches_statsmodels_on_5_of_83_vs_12_of_99() {
    // statsmodels.stats.proportion.proportions_ztest([5, 12], [83, 99])
    //   -> (-1.4078304151258787, 0.15918129181156992); printed as z −1.408, p 0.159.
    let t = two_proportions_z_test(rate(5, 83), rate(12, 99), TWO, A5).unwrap();
    close(t.z, -1.4078304151258787, 1e-13);
    close(t.p_value, 0.15918129181156992, 1e-12);
    assert_eq!(format!("{:.3} {:.3}", t.z, t.p_value), "-1.408 0.159");
    assert!(!t.is_significant());
    // confint_proportions_2indep(5, 83, 12, 99, method="wald", compare="diff")
    close(t.interval.lower, -0.14315020978794332, 1e-12);
    close(t.interval.upper, 0.021207895074544264, 1e-12);
    // ... alpha=0.01
    let t99 = two_proportions_z_test(rate(5, 83), rate(12, 99), TWO, Alpha::ONE_PERCENT).unwrap();
    close(t99.interval.lower, -0.1689727395592185, 1e-12);
    close(t99.interval.upper, 0.047030424845819443, 1e-12);
    // proportions_ztest(..., alternative="larger") and "smaller"
    let g = two_proportions_z_test(rate(5, 83), rate(12, 99), Alternative::Greater, A5).unwrap();
    let l = two_proportions_z_test(rate(5, 83), rate(12, 99), Alternative::Less, A5).unwrap();
    close(g.p_value, 0.9204093540942151, 1e-13);
    close(l.p_value, 0.07959064590578496, 1e-12);
}

#[test]
fn z_test_matches_statsmodels_on_144_vs_192_of_1200() {
    // proportions_ztest([144, 192], [1200, 1200]) -> (-2.8237248320100705, 0.004746911940511481);
    // printed as z −2.824, p 0.0047.
    let t = two_proportions_z_test(rate(144, 1200), rate(192, 1200), TWO, A5).unwrap();
    close(t.z, -2.8237248320100705, 1e-13);
    close(t.p_value, 0.004746911940511481, 1e-12);
    assert_eq!(format!("{:.3} {:.4}", t.z, t.p_value), "-2.824 0.0047");
    assert!(t.is_significant());
    // confint_proportions_2indep(144, 1200, 192, 1200, method="wald", compare="diff")
    close(t.interval.lower, -0.06771807648699357, 1e-12);
    close(t.interval.upper, -0.012281923513006446, 1e-12);
    // proportions_ztest([144, 192], [1200, 1200], alternative="smaller")
    let l =
        two_proportions_z_test(rate(144, 1200), rate(192, 1200), Alternative::Less, A5).unwrap();
    close(l.p_value, 0.0023734559702557403, 1e-12);
    assert_eq!(l.interval.lower, f64::NEG_INFINITY);
    assert!(l.interval.upper < 0.0);
}

fn sleep() -> (Vec<f64>, Vec<f64>) {
    // R's `sleep` data set (Student 1908): extra hours of sleep, groups 1 and 2.
    (
        vec![0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0],
        vec![1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4],
    )
}

#[test]
fn welch_matches_r_on_the_sleep_data() {
    // R: t.test(extra ~ group, data = sleep) (the example of ?t.test) prints
    //   t = -1.8608, df = 17.776, p-value = 0.07939
    //   95 percent confidence interval: -3.3654832  0.2054832
    // scipy.stats.ttest_ind(g1, g2, equal_var=False) gives the full digits below.
    let (g1, g2) = sleep();
    let t = welch_t_test_samples(&g1, &g2, TWO, A5).unwrap();
    assert_eq!(
        format!("{:.4} {:.3} {:.5}", t.t, t.df, t.p_value),
        "-1.8608 17.776 0.07939"
    );
    close(t.t, -1.8608134674868526, 1e-12);
    close(t.df, 17.776473516178488, 1e-12);
    close(t.p_value, 0.0793941401873583, 1e-10);
    close(t.interval.lower, -3.3654832307117104, 1e-11);
    close(t.interval.upper, 0.20548323071171137, 1e-10);
    close(t.difference, 0.75 - 2.33, 1e-12);
    // ttest_ind(..., alternative="less"): p 0.03969707009367915, CI (-inf, -0.10661850266839323)
    let l = welch_t_test_samples(&g1, &g2, Alternative::Less, A5).unwrap();
    close(l.p_value, 0.03969707009367915, 1e-10);
    assert_eq!(l.interval.lower, f64::NEG_INFINITY);
    close(l.interval.upper, -0.10661850266839323, 1e-10);
    // ... alternative="greater": p 0.9603029299063208, CI (-3.053381497331606, inf)
    let g = welch_t_test_samples(&g1, &g2, Alternative::Greater, A5).unwrap();
    close(g.p_value, 0.9603029299063208, 1e-12);
    close(g.interval.lower, -3.053381497331606, 1e-11);
}

#[test]
fn welch_from_summaries_matches_nist() {
    // NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.5.3 "Two-Sample t-Test for Equal
    // Means", AUTO83B data (miles per gallon, US vs Japanese cars): N1 = 249, mean 20.14458,
    // sd 6.41470; N2 = 79, mean 30.48101, sd 6.10771. Unequal variances: T = -12.94627,
    // ν = 136.8750. scipy.stats.ttest_ind_from_stats(20.14458, 6.41470, 249, 30.48101,
    // 6.10771, 79, equal_var=False) -> (-12.946267565658848, 1.5709046154648375e-25).
    let us = Summary::from_moments(249, 20.14458, 6.41470f64.powi(2)).unwrap();
    let jp = Summary::from_moments(79, 30.48101, 6.10771f64.powi(2)).unwrap();
    let t = welch_t_test(&us, &jp, TWO, A5).unwrap();
    assert_eq!(format!("{:.5} {:.4}", t.t, t.df), "-12.94627 136.8750");
    close(t.t, -12.946267565658848, 1e-12);
    close(t.p_value, 1.5709046154648375e-25, 1e-8);
}

#[test]
fn welch_from_summaries_matches_scipy() {
    // scipy.stats.ttest_ind_from_stats(mean1=15.0, std1=sqrt(87.5), nobs1=13, mean2=12.0,
    //   std2=sqrt(39.0), nobs2=11, equal_var=False) -> (0.9358461935556048, 0.35999818693244234)
    // (the summary-statistics example of scipy's documentation, with Welch's correction).
    let a = Summary::from_moments(13, 15.0, 87.5).unwrap();
    let b = Summary::from_moments(11, 12.0, 39.0).unwrap();
    let t = welch_t_test(&a, &b, TWO, A5).unwrap();
    close(t.t, 0.9358461935556048, 1e-13);
    close(t.p_value, 0.35999818693244234, 1e-11);
}

#[test]
fn sample_sizes_match_r_and_statsmodels() {
    let d90 = Design::new(A5, Power::NINETY_PERCENT);
    // R ?power.prop.test: power.prop.test(p1 = .50, p2 = .75, power = .90)  # => n = 76.7
    let n = sample_size_proportions(0.50, 0.75, &d90).unwrap();
    assert_eq!(format!("{:.1}", n.control_exact), "76.7");
    // statsmodels samplesize_proportions_2indep_onetail(diff=-0.25, prop2=0.75, power=0.9)
    close(n.control_exact, 76.70692845177747, 1e-12);
    assert_eq!((n.control, n.treatment, n.total()), (77, 77, 154));
    // R: power.prop.test(n = 50, p1 = .50, p2 = .75)  # => power = 0.7401659
    close(
        power_proportions(0.50, 0.75, 50, &Design::default()).unwrap(),
        0.7401659013313879,
        1e-12,
    );
    // samplesize_proportions_2indep_onetail(diff=-0.02, prop2=0.14, power=0.8) -> 4437.362370579444
    let n = sample_size_proportions(0.12, 0.14, &Design::default()).unwrap();
    close(n.control_exact, 4437.362370579444, 1e-12);
    // ... alternative="larger" -> 3495.1896266198514
    let one = Design::default().with_alternative(Alternative::Greater);
    let n = sample_size_proportions(0.12, 0.14, &one).unwrap();
    close(n.control_exact, 3495.1896266198514, 1e-12);
    // Unequal arms, treatment = ratio × control:
    // samplesize_proportions_2indep_onetail(diff=0.25, prop2=0.5, power=0.8, ratio=2) -> 43.767288562571494
    let n =
        sample_size_proportions(0.75, 0.5, &Design::default().with_ratio(2.0).unwrap()).unwrap();
    close(n.control_exact, 43.767288562571494, 1e-12);
    assert_eq!((n.control, n.treatment), (44, 88));
    // ... ratio=0.5 -> 84.5031118433526
    let n =
        sample_size_proportions(0.75, 0.5, &Design::default().with_ratio(0.5).unwrap()).unwrap();
    close(n.control_exact, 84.5031118433526, 1e-12);
    assert_eq!((n.control, n.treatment), (85, 43));

    // R ?power.t.test: power.t.test(n = 20, delta = 1)  # => power = 0.8689528
    close(
        power_means(1.0, 1.0, 20, &Design::default()).unwrap(),
        0.8689528016921271,
        1e-9,
    );
    // power.t.test(power = .90, delta = 1)  # => n = 22.02110
    let n = sample_size_means(1.0, 1.0, &d90).unwrap();
    assert_eq!(format!("{:.4}", n.control_exact), "22.0211");
    assert_eq!(n.control, 23);
    // power.t.test(power = .90, delta = 1, alternative = "one.sided")  # => n = 17.84713
    let n = sample_size_means(1.0, 1.0, &d90.with_alternative(Alternative::Greater)).unwrap();
    assert!(
        (n.control_exact - 17.84713).abs() < 2e-5,
        "{}",
        n.control_exact
    );
}

#[test]
fn t_test_sample_sizes_match_the_noncentral_t() {
    // The smallest n with scipy.stats.nct.sf(t.ppf(1 - a/sides, df), df, ncp) = power, where
    // df = n(1 + k) - 2 and ncp = d / sqrt(1/n + 1/(k n)) (R's power.t.test, strict = FALSE),
    // solved with scipy.optimize.brentq to 1e-13; beside it statsmodels'
    // TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=power, ratio=k), which also
    // counts the far tail and so asks for slightly fewer users.
    let cases = [
        // (d, k, sides, power, n, statsmodels)
        (1.0, 1.0, 2, 0.9, 22.02109557009691, 22.021088441446192),
        (1.0, 1.0, 1, 0.9, 17.847120626538352, 17.847120479185918),
        (0.5, 2.0, 2, 0.8, 47.742035487592716, 47.741920646056975),
        (0.5, 0.5, 2, 0.8, 95.48407097518538, 95.48384233774287),
        (0.2, 1.0, 2, 0.8, 393.40665622847797, 393.4056930002526),
        (0.05, 1.0, 2, 0.8, 6280.0642963070695, 6280.048916291407),
        (0.1, 3.0, 1, 0.9, 1142.1846656009334, 1142.1846656007156),
    ];
    for (d, k, sides, power, want, sm) in cases {
        let alt = if sides == 2 {
            Alternative::TwoSided
        } else {
            Alternative::Greater
        };
        let design = Design::new(A5, Power::new(power).unwrap())
            .with_alternative(alt)
            .with_ratio(k)
            .unwrap();
        let n = sample_size_means(d, 1.0, &design).unwrap();
        close(n.control_exact, want, 1e-9);
        // Far tail: the two definitions differ by a few users per million.
        close(n.control_exact, sm, 3e-6);
        // Scaling the difference and the deviation together changes nothing.
        let scaled = sample_size_means(d * 250.0, 250.0, &design).unwrap();
        close(scaled.control_exact, want, 1e-9);
    }
}

#[test]
fn sample_ratio_mismatch_matches_scipy() {
    let ab = Experiment::new(
        ExperimentId::new("srm").unwrap(),
        [
            Arm::control("a", 1).unwrap(),
            Arm::treatment("b", 1).unwrap(),
        ],
    )
    .unwrap();
    // scipy.stats.chisquare([50210, 49790]) -> (1.764, 0.1841263727849757)
    let ok = sample_ratio_mismatch(&ab, &[50_210, 49_790], Alpha::ONE_PER_MILLE).unwrap();
    close(ok.test.statistic, 1.764, 1e-12);
    close(ok.test.p_value, 0.1841263727849757, 1e-12);
    assert!(!ok.mismatch);
    // The sample ratio mismatch example of Kohavi, Tang & Xu, "Trustworthy Online Controlled
    // Experiments" (2020), ch. 3: 821,588 vs 815,482 users in a 50/50 experiment, p ≈ 1.8e-6.
    // scipy.stats.chisquare([821588, 815482]) -> (22.77436884189436, 1.8217928726191858e-06)
    let bad = sample_ratio_mismatch(&ab, &[821_588, 815_482], Alpha::ONE_PER_MILLE).unwrap();
    close(bad.test.statistic, 22.77436884189436, 1e-12);
    close(bad.test.p_value, 1.8217928726191858e-06, 1e-9);
    assert!(bad.mismatch);
    assert!(bad.to_string().contains("sample ratio mismatch"), "{bad}");
    // Three arms, 10/45/45:
    // scipy.stats.chisquare([1020, 4400, 4580], f_exp=[1000, 4500, 4500]) -> (4.0444…, 0.13236100245958896)
    let three = Experiment::new(
        ExperimentId::new("srm3").unwrap(),
        [
            Arm::holdout("h", 10).unwrap(),
            Arm::treatment("b", 45).unwrap(),
            Arm::treatment("c", 45).unwrap(),
        ],
    )
    .unwrap();
    let c = sample_ratio_mismatch(&three, &[1020, 4400, 4580], Alpha::ONE_PER_MILLE).unwrap();
    close(c.test.statistic, 4.044444444444444, 1e-12);
    close(c.test.p_value, 0.13236100245958896, 1e-11);
    assert_eq!(c.test.df, 2);
    // ... [1100, 4400, 4500] -> (12.222…, 0.002218084904320256): unusual, but not below 0.001.
    let c = sample_ratio_mismatch(&three, &[1100, 4400, 4500], Alpha::ONE_PER_MILLE).unwrap();
    close(c.test.p_value, 0.002218084904320256, 1e-11);
    assert!(!c.mismatch);
    let strict = sample_ratio_mismatch(&three, &[1100, 4400, 4500], Alpha::ONE_PERCENT).unwrap();
    assert!(strict.mismatch);
    assert!(matches!(
        sample_ratio_mismatch(&three, &[1, 2], Alpha::ONE_PER_MILLE),
        Err(StatsError::ArmCount {
            expected: 3,
            got: 2
        })
    ));
}

#[test]
fn uplift_matches_a_worked_delta_method_example() {
    // 192/1200 vs 144/1200: R = 0.16 / 0.12 = 4/3.
    // Var(p_t) = 0.16·0.84/1200 = 1.12e-4, Var(p_c) = 0.12·0.88/1200 = 8.8e-5,
    // Var(R) = (1.12e-4 + (16/9)·8.8e-5) / 0.0144 = 0.0186419753…, se = 0.1365356…
    let u = relative_uplift(rate(192, 1200), rate(144, 1200), A5).unwrap();
    close(u.relative, 1.0 / 3.0, 1e-13);
    let var: f64 = (1.12e-4 + 16.0 / 9.0 * 8.8e-5) / 0.0144;
    close(u.std_error, var.sqrt(), 1e-12);
    let z = 1.959963984540054;
    close(u.interval.lower, 1.0 / 3.0 - z * var.sqrt(), 1e-12);
    close(u.interval.upper, 1.0 / 3.0 + z * var.sqrt(), 1e-12);
    assert_eq!(u.to_string(), "+33.33% (95% CI [+6.57%, +60.09%])");
    // Means: 110 vs 100 with variances 400 and 300 over 50 and 60 observations.
    let t = Summary::from_moments(50, 110.0, 400.0).unwrap();
    let c = Summary::from_moments(60, 100.0, 300.0).unwrap();
    let m = relative_uplift_means(&t, &c, A5).unwrap();
    let var = (400.0 / 50.0 + 1.1f64.powi(2) * 300.0 / 60.0) / 100.0f64.powi(2);
    close(m.relative, 0.1, 1e-12);
    close(m.std_error, var.sqrt(), 1e-12);
}

// ---------------------------------------------------------------- properties

fn rate_strategy() -> impl Strategy<Value = Rate> {
    (1u64..5000).prop_flat_map(|den| (0..=den).prop_map(move |num| Rate::new(num, den).unwrap()))
}

fn samples(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<f64>> {
    // Order values in cents turned into units: small integers, many ties.
    proptest::collection::vec((0i64..50_000).prop_map(|c| c as f64 / 100.0), len)
}

/// Pearson's chi-square of the 2×2 table, computed from scratch.
fn pearson_2x2(a: Rate, b: Rate) -> f64 {
    let table = [
        [a.num() as f64, a.failures() as f64],
        [b.num() as f64, b.failures() as f64],
    ];
    let n = (a.den() + b.den()) as f64;
    let rows = [a.den() as f64, b.den() as f64];
    let cols = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
    let mut chi = 0.0;
    for r in 0..2 {
        for c in 0..2 {
            let e = rows[r] * cols[c] / n;
            chi += (table[r][c] - e).powi(2) / e;
        }
    }
    chi
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn z_test_is_antisymmetric(a in rate_strategy(), b in rate_strategy()) {
        let (Ok(ab), Ok(ba)) = (
            two_proportions_z_test(a, b, TWO, A5),
            two_proportions_z_test(b, a, TWO, A5),
        ) else {
            // Degenerate only when both rates are all-or-nothing alike.
            prop_assert!(a.num() + b.num() == 0 || a.failures() + b.failures() == 0);
            return Ok(());
        };
        prop_assert_eq!(ab.z, -ba.z);
        prop_assert_eq!(ab.p_value, ba.p_value);
        prop_assert!((ab.interval.lower + ba.interval.upper).abs() < 1e-12);
        prop_assert!((ab.interval.upper + ba.interval.lower).abs() < 1e-12);
    }

    #[test]
    fn z_squared_is_pearsons_chi_square(a in rate_strategy(), b in rate_strategy()) {
        if let Ok(t) = two_proportions_z_test(a, b, TWO, A5) {
            let chi = pearson_2x2(a, b);
            prop_assert!((t.z * t.z - chi).abs() <= 1e-9 * chi.max(1.0), "{} vs {}", t.z * t.z, chi);
        }
    }

    #[test]
    fn p_values_are_probabilities_and_tails_add_up(a in rate_strategy(), b in rate_strategy()) {
        if let Ok(two) = two_proportions_z_test(a, b, TWO, A5) {
            let g = two_proportions_z_test(a, b, Alternative::Greater, A5).unwrap();
            let l = two_proportions_z_test(a, b, Alternative::Less, A5).unwrap();
            for p in [two.p_value, g.p_value, l.p_value] {
                prop_assert!((0.0..=1.0).contains(&p));
            }
            prop_assert!((g.p_value + l.p_value - 1.0).abs() < 1e-12);
            prop_assert!((two.p_value - (2.0 * g.p_value.min(l.p_value)).min(1.0)).abs() < 1e-12);
            prop_assert!(two.interval.contains(two.difference));
            prop_assert!(two.interval.lower <= g.interval.lower && l.interval.upper <= two.interval.upper);
        }
    }

    #[test]
    fn four_times_the_counts_double_z_and_halve_the_interval(a in rate_strategy(), b in rate_strategy()) {
        let a4 = rate(a.num() * 4, a.den() * 4);
        let b4 = rate(b.num() * 4, b.den() * 4);
        if let (Ok(t), Ok(t4)) = (two_proportions_z_test(a, b, TWO, A5), two_proportions_z_test(a4, b4, TWO, A5)) {
            prop_assert!((t4.z - 2.0 * t.z).abs() <= 1e-9 * t.z.abs().max(1.0));
            let w = t.interval.upper - t.interval.lower;
            let w4 = t4.interval.upper - t4.interval.lower;
            prop_assert!((w - 2.0 * w4).abs() <= 1e-12 + 1e-9 * w);
        }
    }

    #[test]
    fn rates_of_partitions_merge_into_the_rate_of_the_whole(outcomes in proptest::collection::vec((any::<bool>(), 0usize..4), 0..400)) {
        let mut parts = [Rate::default(); 4];
        let mut whole = (0u64, 0u64);
        for (success, part) in outcomes {
            let p = parts[part];
            parts[part] = rate(p.num() + u64::from(success), p.den() + 1);
            whole = (whole.0 + u64::from(success), whole.1 + 1);
        }
        let merged = parts.iter().try_fold(Rate::default(), |acc, r| acc.checked_add(*r)).unwrap();
        prop_assert_eq!((merged.num(), merged.den()), whole);
    }

    #[test]
    fn summaries_of_partitions_merge_into_the_summary_of_the_whole(
        xs in samples(0..300),
        cuts in proptest::collection::vec(0usize..300, 0..6),
    ) {
        let whole = Summary::from_samples(&xs).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(xs.len())).collect();
        cuts.push(0);
        cuts.push(xs.len());
        cuts.sort_unstable();
        let merged = cuts
            .windows(2)
            .map(|w| Summary::from_samples(&xs[w[0]..w[1]]).unwrap())
            .try_fold(Summary::new(), |acc, s| acc.merge(&s))
            .unwrap();
        prop_assert_eq!(merged.n(), whole.n());
        if let (Some(a), Some(b)) = (merged.mean(), whole.mean()) {
            prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0));
        }
        if let (Some(a), Some(b)) = (merged.variance(), whole.variance()) {
            prop_assert!((a - b).abs() <= 1e-8 * b.max(1.0), "{} vs {}", a, b);
        }
    }

    #[test]
    fn welch_is_antisymmetric_and_shift_invariant(a in samples(2..60), b in samples(2..60), shift in -1000i32..1000) {
        let Ok(ab) = welch_t_test_samples(&a, &b, TWO, A5) else {
            // Only when both samples are constant.
            let sa = Summary::from_samples(&a).unwrap();
            let sb = Summary::from_samples(&b).unwrap();
            prop_assert_eq!(sa.variance(), Some(0.0));
            prop_assert_eq!(sb.variance(), Some(0.0));
            return Ok(());
        };
        let ba = welch_t_test_samples(&b, &a, TWO, A5).unwrap();
        prop_assert_eq!(ab.t, -ba.t);
        prop_assert_eq!(ab.df, ba.df);
        prop_assert!((ab.p_value - ba.p_value).abs() < 1e-14);
        let s = f64::from(shift);
        let a2: Vec<f64> = a.iter().map(|x| x + s).collect();
        let b2: Vec<f64> = b.iter().map(|x| x + s).collect();
        let shifted = welch_t_test_samples(&a2, &b2, TWO, A5).unwrap();
        prop_assert!((shifted.t - ab.t).abs() <= 1e-6 * ab.t.abs().max(1.0), "{} vs {}", shifted.t, ab.t);
        prop_assert!((shifted.df - ab.df).abs() <= 1e-6 * ab.df);
        prop_assert!((0.0..=1.0).contains(&ab.p_value));
        prop_assert!(ab.interval.contains(ab.difference));
    }

    #[test]
    fn welch_degrees_of_freedom_lie_between_the_classical_bounds(a in samples(2..80), b in samples(2..80)) {
        if let Ok(t) = welch_t_test_samples(&a, &b, TWO, A5) {
            let (na, nb) = (a.len() as f64, b.len() as f64);
            prop_assert!(t.df >= na.min(nb) - 1.0 - 1e-9, "{} < min", t.df);
            prop_assert!(t.df <= na + nb - 2.0 + 1e-9, "{} > max", t.df);
        }
    }

    #[test]
    fn welch_with_equal_sizes_and_variances_has_pooled_df(n in 2u64..10_000, var in 0.01f64..1e6, m1 in -100.0f64..100.0, m2 in -100.0f64..100.0) {
        let a = Summary::from_moments(n, m1, var).unwrap();
        let b = Summary::from_moments(n, m2, var).unwrap();
        let t = welch_t_test(&a, &b, TWO, A5).unwrap();
        prop_assert!((t.df - (2 * n - 2) as f64).abs() <= 1e-9 * t.df);
    }

    #[test]
    fn uplifts_of_swapped_arms_are_reciprocal(a in rate_strategy(), b in rate_strategy()) {
        if let (Ok(ab), Ok(ba)) = (relative_uplift(a, b, A5), relative_uplift(b, a, A5)) {
            prop_assert!(((1.0 + ab.relative) * (1.0 + ba.relative) - 1.0).abs() < 1e-9);
            prop_assert_eq!(ab.relative > 0.0, a.value() > b.value());
            prop_assert!(ab.interval.contains(ab.relative));
        }
    }

    #[test]
    fn the_proportion_sample_size_is_the_smallest_with_enough_power(
        base in 1u32..99, lift in -40i32..40, power in 50u32..99, ratio in 1u32..40,
    ) {
        let pc = f64::from(base) / 100.0;
        let pt = pc + f64::from(lift) / 200.0;
        prop_assume!(lift != 0 && (0.0..=1.0).contains(&pt));
        let design = Design::new(A5, Power::new(f64::from(power) / 100.0).unwrap())
            .with_ratio(f64::from(ratio) / 10.0)
            .unwrap();
        let n = sample_size_proportions(pc, pt, &design).unwrap();
        let target = design.power().value();
        prop_assert!(power_proportions(pc, pt, n.control, &design).unwrap() >= target - 1e-12);
        if n.control > 1 {
            prop_assert!(power_proportions(pc, pt, n.control - 1, &design).unwrap() < target + 1e-12);
        }
        // A larger effect never needs more users.
        let bigger = pc + 1.5 * (pt - pc);
        if (0.0..=1.0).contains(&bigger) {
            prop_assert!(sample_size_proportions(pc, bigger, &design).unwrap().control_exact <= n.control_exact);
        }
    }

    #[test]
    fn the_mean_sample_size_is_the_smallest_with_enough_power(
        effect in 5u32..300,
        // (power, its normal quantile: scipy.stats.norm.ppf(power))
        (power, zb) in prop::sample::select(vec![
            (0.8, 0.8416212335729143),
            (0.85, 1.0364333894937898),
            (0.9, 1.2815515655446004),
            (0.95, 1.6448536269514722),
            (0.99, 2.3263478740408408),
        ]),
        ratio in 3u32..40,
        one_sided in any::<bool>(),
    ) {
        let d = f64::from(effect) / 100.0;
        let alt = if one_sided { Alternative::Greater } else { Alternative::TwoSided };
        let design = Design::new(A5, Power::new(power).unwrap())
            .with_alternative(alt)
            .with_ratio(f64::from(ratio) / 10.0)
            .unwrap();
        let n = sample_size_means(d, 1.0, &design).unwrap();
        let target = design.power().value();
        prop_assert!(power_means(d, 1.0, n.control, &design).unwrap() >= target - 1e-9);
        let fewer = n.control - 1;
        if fewer >= 2 && (fewer as f64) * design.ratio() >= 2.0 {
            prop_assert!(power_means(d, 1.0, fewer, &design).unwrap() < target + 1e-9);
        }
        // The normal approximation asks for no more than the t-test needs.
        let za = if one_sided { 1.6448536269514722 } else { 1.959963984540054 };
        let k = design.ratio();
        let normal = (1.0 + 1.0 / k) * ((za + zb) / d).powi(2);
        prop_assert!(normal <= n.control_exact + 1e-9);
    }

    #[test]
    fn goodness_of_fit_is_a_probability_and_exact_proportions_fit_perfectly(
        weights in proptest::collection::vec(1u64..50, 2..6),
        scale in 1u64..1000,
        noise in proptest::collection::vec(0u64..100, 6),
    ) {
        let exact: Vec<u64> = weights.iter().map(|w| w * scale).collect();
        let wf: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
        let fit = goodness_of_fit(&exact, &wf).unwrap();
        prop_assert!(fit.statistic.abs() < 1e-9);
        prop_assert!(fit.p_value > 0.999_999);
        let noisy: Vec<u64> = exact.iter().zip(&noise).map(|(e, n)| e + n).collect();
        let fit = goodness_of_fit(&noisy, &wf).unwrap();
        prop_assert!((0.0..=1.0).contains(&fit.p_value));
        prop_assert_eq!(fit.df as usize, weights.len() - 1);
        let total: u64 = noisy.iter().sum();
        prop_assert!((fit.expected.iter().sum::<f64>() - total as f64).abs() < 1e-6 * total as f64);
    }
}

// ---------------------------------------------------------------- simulated coverage

/// SplitMix64: a small, fixed, seeded generator so the simulations are reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn binomial(&mut self, n: u64, p: f64) -> u64 {
        (0..n).map(|_| u64::from(self.uniform() < p)).sum()
    }
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }
}

/// With `reps` replicates, a 95 % interval's coverage should be within 4 standard errors.
#[track_caller]
fn assert_coverage(hits: u32, reps: u32, what: &str) {
    let c = f64::from(hits) / f64::from(reps);
    let se = (0.95 * 0.05 / f64::from(reps)).sqrt();
    assert!((c - 0.95).abs() < 4.0 * se, "{what}: coverage {c}");
}

#[test]
fn the_z_test_rejects_a_true_null_about_alpha_of_the_time() {
    let mut rng = SplitMix(1);
    let reps = 2000;
    let mut rejected = 0;
    for _ in 0..reps {
        let a = rate(rng.binomial(1000, 0.1), 1000);
        let b = rate(rng.binomial(1000, 0.1), 1000);
        rejected += u32::from(
            two_proportions_z_test(a, b, TWO, A5)
                .unwrap()
                .is_significant(),
        );
    }
    let r = f64::from(rejected) / f64::from(reps);
    let se = (0.05f64 * 0.95 / f64::from(reps)).sqrt();
    assert!((r - 0.05).abs() < 4.0 * se, "false positive rate {r}");
}

#[test]
fn the_wald_interval_covers_the_true_difference() {
    let mut rng = SplitMix(2);
    let reps = 2000;
    let (pa, pb, n) = (0.12, 0.10, 2000);
    let hits = (0..reps)
        .filter(|_| {
            let a = rate(rng.binomial(n, pa), n);
            let b = rate(rng.binomial(n, pb), n);
            two_proportions_z_test(a, b, TWO, A5)
                .unwrap()
                .interval
                .contains(pa - pb)
        })
        .count() as u32;
    assert_coverage(hits, reps, "Wald difference");
}

#[test]
fn the_delta_method_interval_covers_the_true_uplift() {
    let mut rng = SplitMix(3);
    let reps = 1000;
    let (pt, pc, n) = (0.12, 0.10, 4000);
    let hits = (0..reps)
        .filter(|_| {
            let t = rate(rng.binomial(n, pt), n);
            let c = rate(rng.binomial(n, pc), n);
            relative_uplift(t, c, A5)
                .unwrap()
                .interval
                .contains(pt / pc - 1.0)
        })
        .count() as u32;
    assert_coverage(hits, reps, "delta-method uplift of rates");
    // Order values: skewed (exponential), means 110 and 100.
    let hits = (0..reps)
        .filter(|_| {
            let t: Vec<f64> = (0..400).map(|_| rng.exponential(110.0)).collect();
            let c: Vec<f64> = (0..400).map(|_| rng.exponential(100.0)).collect();
            let u = relative_uplift_means(
                &Summary::from_samples(&t).unwrap(),
                &Summary::from_samples(&c).unwrap(),
                A5,
            )
            .unwrap();
            u.interval.contains(0.1)
        })
        .count() as u32;
    assert_coverage(hits, reps, "delta-method uplift of means");
}

#[test]
fn the_welch_interval_covers_the_true_difference_with_unequal_variances() {
    let mut rng = SplitMix(4);
    let reps = 2000;
    // Small, unequal groups with unequal spread: where a pooled t-test would miscover.
    let hits = (0..reps)
        .filter(|_| {
            let a: Vec<f64> = (0..12)
                .map(|_| 50.0 + 30.0 * (rng.uniform() - 0.5) * 3.46)
                .collect();
            let b: Vec<f64> = (0..40)
                .map(|_| 45.0 + 5.0 * (rng.uniform() - 0.5) * 3.46)
                .collect();
            welch_t_test_samples(&a, &b, TWO, A5)
                .unwrap()
                .interval
                .contains(5.0)
        })
        .count() as u32;
    assert_coverage(hits, reps, "Welch");
}
