//! Significance tests, intervals and sample sizes for experiments (feature `stats`).
//!
//! Everything here is a pure function of counts ([`Rate`]) or sample summaries ([`Summary`]);
//! every result is finite or a typed [`StatsError`], never `NaN`.
//!
//! The special functions come from `statrs` (the incomplete beta and gamma functions behind
//! Student's t and chi-square, the inverse error function), which is why this module needs
//! the `stats` feature; rates, summaries and assignment do not. Where `statrs` is not precise
//! enough for results that must agree with statsmodels, R and scipy, this module computes
//! itself, each with its published algorithm: the normal tail by Cody's rational
//! approximations of `erfc` (1969), Student's t quantile by the Cornish–Fisher expansion
//! (Abramowitz & Stegun 26.7.5) or a safeguarded Newton iteration, and the non-central t
//! distribution of the t-test's power by Lenth's AS 243 (1989). The test suite checks each
//! against scipy.
//!
//! | Question | Function | Method |
//! |---|---|---|
//! | Did the claim / usage / conversion rate change? | [`two_proportions_z_test`] | pooled two-proportion z-test, unpooled Wald interval for the difference |
//! | Did the order value change? | [`welch_t_test`] | Welch's t-test, Welch–Satterthwaite degrees of freedom |
//! | By how many percent? | [`relative_uplift`], [`relative_uplift_means`] | delta method on the ratio |
//! | How many users do I need? | [`sample_size_proportions`], [`sample_size_means`] | Fleiss' formula; non-central t |
//! | Is the assignment broken? | [`sample_ratio_mismatch`] | chi-square goodness of fit |
//!
//! ```
//! use coupons::analytics::Rate;
//! use coupons::analytics::significance::{two_proportions_z_test, relative_uplift, Alpha, Alternative};
//!
//! // Usage rate: 192 of 1200 coupons used in the treatment, 144 of 1200 in the control.
//! let treatment = Rate::new(192, 1200)?;
//! let control = Rate::new(144, 1200)?;
//! let test = two_proportions_z_test(treatment, control, Alternative::TwoSided, Alpha::FIVE_PERCENT)?;
//! assert!((test.z - 2.824).abs() < 1e-3);
//! assert!((test.p_value - 0.0047).abs() < 1e-4);
//! assert!(test.is_significant());
//! let uplift = relative_uplift(treatment, control, Alpha::FIVE_PERCENT)?;
//! assert!((uplift.relative - 1.0 / 3.0).abs() < 1e-12); // +33 %
//! assert!(uplift.interval.lower > 0.0);
//! # Ok::<(), coupons::analytics::StatsError>(())
//! ```

use std::f64::consts::{PI, SQRT_2};
use std::fmt;

use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, StudentsT};
use statrs::function::beta::beta_reg;
use statrs::function::erf::erfc_inv;
use statrs::function::gamma::ln_gamma;

use super::experiment::Experiment;
use super::{Rate, StatsError, Summary};

fn finite(what: &'static str, value: f64) -> Result<f64, StatsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(StatsError::NonFinite { what, value })
    }
}

macro_rules! level {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(try_from = "f64", into = "f64")
        )]
        pub struct $name(f64);

        impl $name {
            #[doc = concat!("A ", $what, " strictly between 0 and 1.")]
            ///
            /// # Errors
            #[doc = concat!("[`StatsError::OutOfRange`] unless the ", $what, " is in `(0, 1)`.")]
            pub fn new(value: f64) -> Result<$name, StatsError> {
                if value > 0.0 && value < 1.0 {
                    Ok($name(value))
                } else {
                    Err(StatsError::OutOfRange {
                        what: $what,
                        value,
                        range: "(0, 1)",
                    })
                }
            }

            /// The value.
            pub fn value(self) -> f64 {
                self.0
            }
        }

        impl TryFrom<f64> for $name {
            type Error = StatsError;
            fn try_from(v: f64) -> Result<$name, StatsError> {
                $name::new(v)
            }
        }

        impl From<$name> for f64 {
            fn from(v: $name) -> f64 {
                v.0
            }
        }
    };
}

level!(
    /// A significance level α: the probability of calling a difference real when there is
    /// none. Intervals have confidence `1 − α`.
    Alpha,
    "significance level"
);
level!(
    /// The power `1 − β` a sample size is chosen for: the probability of detecting the effect
    /// when it is real.
    Power,
    "power"
);

impl Alpha {
    /// α = 0.05 (95 % confidence).
    pub const FIVE_PERCENT: Alpha = Alpha(0.05);
    /// α = 0.01 (99 % confidence).
    pub const ONE_PERCENT: Alpha = Alpha(0.01);
    /// α = 0.001, the default threshold of [`sample_ratio_mismatch`]: a broken assignment is
    /// worth a loud warning, a false alarm is expensive.
    pub const ONE_PER_MILLE: Alpha = Alpha(0.001);

    /// The confidence of intervals at this level, `1 − α`.
    pub fn confidence(self) -> f64 {
        1.0 - self.0
    }
}

impl Default for Alpha {
    fn default() -> Alpha {
        Alpha::FIVE_PERCENT
    }
}

impl Power {
    /// 80 %, the usual choice.
    pub const EIGHTY_PERCENT: Power = Power(0.8);
    /// 90 %.
    pub const NINETY_PERCENT: Power = Power(0.9);
}

impl Default for Power {
    fn default() -> Power {
        Power::EIGHTY_PERCENT
    }
}

/// The alternative hypothesis, about the first argument (`a`, the treatment) against the
/// second (`b`, the control).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Alternative {
    /// `a ≠ b`.
    #[default]
    TwoSided,
    /// `a > b` (statsmodels' `"larger"`, R's `"greater"`).
    Greater,
    /// `a < b` (statsmodels' `"smaller"`, R's `"less"`).
    Less,
}

/// A confidence interval. One-sided alternatives give one-sided intervals, with an infinite
/// bound on the open side (as R's `t.test` does; JSON, which has no infinity, shows it as
/// `null`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Interval {
    /// The lower bound (`-∞` for [`Alternative::Less`]).
    pub lower: f64,
    /// The upper bound (`+∞` for [`Alternative::Greater`]).
    pub upper: f64,
    /// The confidence, `1 − α`.
    pub confidence: f64,
}

impl Interval {
    /// Whether `x` lies in the interval (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(4);
        write!(
            f,
            "{:.0}% CI [{:.p$}, {:.p$}]",
            self.confidence * 100.0,
            self.lower,
            self.upper
        )
    }
}

/// The complementary error function by W. J. Cody's rational Chebyshev approximations
/// ("Rational Chebyshev approximations for the error function", Mathematics of Computation 23
/// (1969) 631–637; the coefficients of his netlib `specfun` routine CALERF), accurate to about
/// 10⁻¹⁶ relative over the whole line. (`statrs`' `erfc` is off by up to 10⁻¹⁰ relative,
/// which would show in p-values compared with statsmodels'.)
fn erfc(x: f64) -> f64 {
    const A: [f64; 5] = [
        3.1611237438705655,
        113.86415415105016,
        377.485237685302,
        3209.3775891384694,
        0.18577770618460315,
    ];
    const B: [f64; 4] = [
        23.601290952344122,
        244.02463793444417,
        1282.6165260773723,
        2844.236833439171,
    ];
    const C: [f64; 9] = [
        0.5641884969886701,
        8.883149794388377,
        66.11919063714163,
        298.6351381974001,
        881.952221241769,
        1712.0476126340707,
        2051.0783778260716,
        1230.3393547979972,
        2.1531153547440383e-08,
    ];
    const D: [f64; 8] = [
        15.744926110709835,
        117.6939508913125,
        537.1811018620099,
        1621.3895745666903,
        3290.7992357334597,
        4362.619090143247,
        3439.3676741437216,
        1230.3393548037495,
    ];
    const P: [f64; 6] = [
        0.30532663496123236,
        0.36034489994980445,
        0.12578172611122926,
        0.016083785148742275,
        0.0006587491615298378,
        0.016315387137302097,
    ];
    const Q: [f64; 5] = [
        2.568520192289822,
        1.8729528499234604,
        0.5279051029514285,
        0.06051834131244132,
        0.0023352049762686918,
    ];
    const ONE_OVER_SQRT_PI: f64 = 0.564_189_583_547_756_3;
    if x.is_nan() {
        return x;
    }
    let y = x.abs();
    // exp(−y²) without the rounding of forming y² directly: y = ⌊16y⌋/16 + rest.
    let gauss = |y: f64| {
        let ysq = (y * 16.0).trunc() / 16.0;
        let del = (y - ysq) * (y + ysq);
        (-ysq * ysq).exp() * (-del).exp()
    };
    if y <= 0.468_75 {
        let ysq = if y > 1.11e-16 { y * y } else { 0.0 };
        let mut num = A[4] * ysq;
        let mut den = ysq;
        for i in 0..3 {
            num = (num + A[i]) * ysq;
            den = (den + B[i]) * ysq;
        }
        return 1.0 - x * (num + A[3]) / (den + B[3]);
    }
    let upper = if y <= 4.0 {
        let mut num = C[8] * y;
        let mut den = y;
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        gauss(y) * (num + C[7]) / (den + D[7])
    } else if y >= 26.543 {
        0.0
    } else {
        let ysq = 1.0 / (y * y);
        let mut num = P[5] * ysq;
        let mut den = ysq;
        for i in 0..4 {
            num = (num + P[i]) * ysq;
            den = (den + Q[i]) * ysq;
        }
        let r = ysq * (num + P[4]) / (den + Q[4]);
        gauss(y) * (ONE_OVER_SQRT_PI - r) / y
    };
    if x < 0.0 { 2.0 - upper } else { upper }
}

fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / SQRT_2)
}

fn norm_sf(x: f64) -> f64 {
    0.5 * erfc(x / SQRT_2)
}

/// The standard normal quantile; `p` must be in `(0, 1)` (every caller passes a level derived
/// from an [`Alpha`] or [`Power`]).
fn norm_quantile(p: f64) -> f64 {
    -SQRT_2 * erfc_inv(2.0 * p)
}

/// The `x` with `P(Z > x) = tail`, for `tail` in `(0, 1)`, without forming `1 − tail`.
fn norm_upper_quantile(tail: f64) -> f64 {
    SQRT_2 * erfc_inv(2.0 * tail)
}

/// The `x` with `P(T > x) = tail` for Student's t with `df` degrees of freedom, `tail` in
/// `(0, 1)`.
///
/// From 1000 degrees of freedom on, the Cornish–Fisher expansion of Abramowitz & Stegun
/// (26.7.5) to the fourth order, whose error there is below 10⁻¹¹ relative even at
/// `tail = 10⁻⁸`; below, Newton's method on the distribution function, kept inside a bracket
/// that bisection shrinks whenever a step would leave it. (`statrs`' own inverse loses digits
/// and can fail to terminate for very large `df`.)
fn t_upper_quantile(tail: f64, df: f64) -> Result<f64, StatsError> {
    if tail > 0.5 {
        // A one-sided level above ½: the quantile is below the median.
        return t_upper_quantile(1.0 - tail, df).map(|x| -x);
    }
    let z = norm_upper_quantile(tail);
    let n = df;
    let (z2, z3) = (z * z, z * z * z);
    let g1 = (z3 + z) / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z3 + 3.0 * z) / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z3 - 15.0 * z) / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z3 - 945.0 * z) / 92160.0;
    let expansion = z + (g1 + (g2 + (g3 + g4 / n) / n) / n) / n;
    if df >= 1000.0 {
        return finite("t quantile", expansion);
    }
    let dist = students_t(df)?;
    // The root lies in (lo, hi); hi is unknown (infinite) until a point above it is seen.
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let mut x = if expansion > 0.0 && expansion.is_finite() {
        expansion
    } else {
        z.max(1.0)
    };
    for _ in 0..400 {
        let f = dist.sf(x) - tail; // decreasing in x
        if f == 0.0 {
            break;
        }
        if f > 0.0 {
            lo = x;
        } else {
            hi = x;
        }
        let newton = x + f / dist.pdf(x);
        let next = if newton > lo && newton < hi {
            newton
        } else if hi.is_infinite() {
            2.0 * x
        } else {
            0.5 * (lo + hi)
        };
        let moved = (next - x).abs();
        x = next;
        // The distribution function itself is good to about 1e-15.
        let bracketed = hi.is_finite() && hi - lo <= 1e-14 * hi;
        if moved <= 1e-14 * x.abs() || bracketed || !x.is_finite() {
            break;
        }
    }
    finite("t quantile", x)
}

fn p_value(
    stat: f64,
    alternative: Alternative,
    cdf: impl Fn(f64) -> f64,
    sf: impl Fn(f64) -> f64,
) -> f64 {
    let p = match alternative {
        Alternative::TwoSided => 2.0 * sf(stat.abs()),
        Alternative::Greater => sf(stat),
        Alternative::Less => cdf(stat),
    };
    p.clamp(0.0, 1.0)
}

fn interval(
    estimate: f64,
    se: f64,
    alternative: Alternative,
    alpha: Alpha,
    upper_quantile: impl Fn(f64) -> Result<f64, StatsError>,
) -> Result<Interval, StatsError> {
    let a = alpha.value();
    let (lower, upper) = match alternative {
        Alternative::TwoSided => {
            let q = upper_quantile(a / 2.0)?;
            (estimate - q * se, estimate + q * se)
        }
        Alternative::Greater => (estimate - upper_quantile(a)? * se, f64::INFINITY),
        Alternative::Less => (f64::NEG_INFINITY, estimate + upper_quantile(a)? * se),
    };
    if lower.is_nan() || upper.is_nan() {
        return Err(StatsError::NonFinite {
            what: "interval bound",
            value: f64::NAN,
        });
    }
    Ok(Interval {
        lower,
        upper,
        confidence: alpha.confidence(),
    })
}

fn trials(which: &'static str, r: Rate) -> Result<(f64, f64), StatsError> {
    match r.value() {
        Some(p) => Ok((p, r.den() as f64)),
        None => Err(StatsError::EmptyRate { which }),
    }
}

/// The result of [`two_proportions_z_test`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ProportionTest {
    /// `p_a − p_b`.
    pub difference: f64,
    /// The z statistic, with the pooled standard error.
    pub z: f64,
    /// The p-value for the alternative.
    pub p_value: f64,
    /// The unpooled Wald interval for `p_a − p_b`.
    pub interval: Interval,
    /// The alternative tested.
    pub alternative: Alternative,
    /// The significance level.
    pub alpha: Alpha,
}

impl ProportionTest {
    /// Whether `p < α`.
    pub fn is_significant(&self) -> bool {
        self.p_value < self.alpha.value()
    }
}

impl fmt::Display for ProportionTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "difference {:+.4} ({}), z = {:.3}, p = {:.4}",
            self.difference, self.interval, self.z, self.p_value
        )
    }
}

/// The two-proportion z-test of `a` against `b`, as statsmodels' `proportions_ztest` with its
/// defaults (pooled variance under the null): `z = (p_a − p_b) / √(p̂(1 − p̂)(1/n_a + 1/n_b))`
/// with `p̂` the pooled proportion. The interval is the unpooled Wald interval for the
/// difference, `p_a − p_b ± z_{1−α/2} · √(p_a(1 − p_a)/n_a + p_b(1 − p_b)/n_b)` (statsmodels'
/// `confint_proportions_2indep(method="wald")`); like every Wald interval it is too narrow
/// when a rate is near 0 or 1 with few trials.
///
/// Use it for claim rate (claimed of offered), usage rate (used of claimed) and conversion
/// (buyers of visitors) alike.
///
/// ```
/// use coupons::analytics::Rate;
/// use coupons::analytics::significance::{two_proportions_z_test, Alpha, Alternative};
/// let t = two_proportions_z_test(Rate::new(5, 83)?, Rate::new(12, 99)?, Alternative::TwoSided, Alpha::FIVE_PERCENT)?;
/// assert_eq!(format!("{:.3}", t.z), "-1.408");
/// assert_eq!(format!("{:.3}", t.p_value), "0.159");
/// assert!(t.interval.contains(0.0));
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// [`StatsError::EmptyRate`] when a rate has no trials; [`StatsError::NoVariation`] when all
/// trials of both succeeded or none did.
pub fn two_proportions_z_test(
    a: Rate,
    b: Rate,
    alternative: Alternative,
    alpha: Alpha,
) -> Result<ProportionTest, StatsError> {
    let (pa, na) = trials("a", a)?;
    let (pb, nb) = trials("b", b)?;
    let pooled = (a.num() as f64 + b.num() as f64) / (na + nb);
    let var = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
    if var.is_nan() || var <= 0.0 {
        return Err(StatsError::NoVariation {
            what: "the two rates",
        });
    }
    let difference = pa - pb;
    let z = finite("z statistic", difference / var.sqrt())?;
    let se = (pa * (1.0 - pa) / na + pb * (1.0 - pb) / nb).sqrt();
    Ok(ProportionTest {
        difference,
        z,
        p_value: p_value(z, alternative, norm_cdf, norm_sf),
        interval: interval(difference, se, alternative, alpha, |t| {
            Ok(norm_upper_quantile(t))
        })?,
        alternative,
        alpha,
    })
}

/// The result of [`welch_t_test`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MeanTest {
    /// `mean_a − mean_b`.
    pub difference: f64,
    /// The t statistic.
    pub t: f64,
    /// The Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// The p-value for the alternative.
    pub p_value: f64,
    /// The interval for `mean_a − mean_b`, with the t quantile at `df`.
    pub interval: Interval,
    /// The alternative tested.
    pub alternative: Alternative,
    /// The significance level.
    pub alpha: Alpha,
}

impl MeanTest {
    /// Whether `p < α`.
    pub fn is_significant(&self) -> bool {
        self.p_value < self.alpha.value()
    }
}

impl fmt::Display for MeanTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "difference {:+.4} ({}), t = {:.3}, df = {:.1}, p = {:.4}",
            self.difference, self.interval, self.t, self.df, self.p_value
        )
    }
}

fn two_or_more(which: &'static str, s: &Summary) -> Result<(f64, f64, f64), StatsError> {
    match (s.mean(), s.variance()) {
        (Some(m), Some(v)) => Ok((m, v, s.n() as f64)),
        _ => Err(StatsError::TooFewSamples {
            which,
            n: s.n(),
            min: 2,
        }),
    }
}

fn students_t(df: f64) -> Result<StudentsT, StatsError> {
    StudentsT::new(0.0, 1.0, df).map_err(|_| StatsError::OutOfRange {
        what: "degrees of freedom",
        value: df,
        range: "(0, ∞)",
    })
}

/// Welch's t-test of the mean of `a` against the mean of `b`, not assuming equal variances:
/// `t = (m_a − m_b) / √(s_a²/n_a + s_b²/n_b)` on the Welch–Satterthwaite degrees of freedom
/// `(s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1))`, as R's
/// `t.test(a, b)` and scipy's `ttest_ind(a, b, equal_var=False)`.
///
/// ```
/// use coupons::analytics::Summary;
/// use coupons::analytics::significance::{welch_t_test, Alpha, Alternative};
/// // R's `t.test(extra ~ group, data = sleep)`: t = -1.8608, df = 17.776, p-value = 0.07939.
/// let g1 = Summary::from_samples(&[0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])?;
/// let g2 = Summary::from_samples(&[1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])?;
/// let t = welch_t_test(&g1, &g2, Alternative::TwoSided, Alpha::FIVE_PERCENT)?;
/// assert_eq!(format!("{:.4} {:.3} {:.5}", t.t, t.df, t.p_value), "-1.8608 17.776 0.07939");
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// [`StatsError::TooFewSamples`] when a sample has fewer than 2 observations;
/// [`StatsError::ZeroVariance`] when both samples are constant; [`StatsError::NonFinite`]
/// when the statistic overflows.
pub fn welch_t_test(
    a: &Summary,
    b: &Summary,
    alternative: Alternative,
    alpha: Alpha,
) -> Result<MeanTest, StatsError> {
    let (ma, va, na) = two_or_more("a", a)?;
    let (mb, vb, nb) = two_or_more("b", b)?;
    let (ea, eb) = (va / na, vb / nb);
    let se2 = ea + eb;
    if se2.is_nan() || se2 <= 0.0 {
        return Err(StatsError::ZeroVariance { what: "a and b" });
    }
    let difference = finite("difference of means", ma - mb)?;
    let se = finite("standard error", se2.sqrt())?;
    let t = finite("t statistic", difference / se)?;
    // Scale-free form of the Welch–Satterthwaite formula: no underflow for tiny variances.
    let m = ea.max(eb);
    let (ra, rb) = (ea / m, eb / m);
    let df = finite(
        "degrees of freedom",
        (ra + rb) * (ra + rb) / (ra * ra / (na - 1.0) + rb * rb / (nb - 1.0)),
    )?;
    let dist = students_t(df)?;
    Ok(MeanTest {
        difference,
        t,
        df,
        p_value: p_value(t, alternative, |x| dist.cdf(x), |x| dist.sf(x)),
        interval: interval(difference, se, alternative, alpha, |t| {
            t_upper_quantile(t, df)
        })?,
        alternative,
        alpha,
    })
}

/// [`welch_t_test`] on raw samples.
///
/// # Errors
/// As [`Summary::from_samples`] and [`welch_t_test`].
pub fn welch_t_test_samples(
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
    alpha: Alpha,
) -> Result<MeanTest, StatsError> {
    welch_t_test(
        &Summary::from_samples(a)?,
        &Summary::from_samples(b)?,
        alternative,
        alpha,
    )
}

/// A relative change, `a / b − 1`, with its interval.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Uplift {
    /// `a / b − 1`: `0.25` is +25 %.
    pub relative: f64,
    /// Its standard error by the delta method.
    pub std_error: f64,
    /// The two-sided interval `relative ± z_{1−α/2} · std_error`.
    pub interval: Interval,
}

impl fmt::Display for Uplift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:+.2}% ({:.0}% CI [{:+.2}%, {:+.2}%])",
            self.relative * 100.0,
            self.interval.confidence * 100.0,
            self.interval.lower * 100.0,
            self.interval.upper * 100.0
        )
    }
}

/// The uplift `R − 1` of `R = x_a / x_b`, where `va`, `vb` are the variances of the two
/// estimates: first-order delta method, `Var(R) ≈ (va + R²·vb) / x_b²`.
fn delta_uplift(xa: f64, va: f64, xb: f64, vb: f64, alpha: Alpha) -> Result<Uplift, StatsError> {
    let r = finite("ratio", xa / xb)?;
    let se = finite(
        "standard error of the ratio",
        ((va + r * r * vb) / (xb * xb)).sqrt(),
    )?;
    let relative = r - 1.0;
    Ok(Uplift {
        relative,
        std_error: se,
        interval: interval(relative, se, Alternative::TwoSided, alpha, |t| {
            Ok(norm_upper_quantile(t))
        })?,
    })
}

/// The relative uplift of rate `treatment` over rate `control`, `p_t / p_c − 1`, with a
/// two-sided interval from the delta method on the ratio (first order, normal quantile; as in
/// Kohavi, Tang & Xu, *Trustworthy Online Controlled Experiments*, 2020, and Deng, Knoblich
/// & Lu, "Applying the Delta Method in Metric Analytics", KDD 2018):
/// `Var(p_t/p_c) ≈ Var(p_t)/p_c² + p_t²·Var(p_c)/p_c⁴` with `Var(p) = p(1 − p)/n`.
/// The interval is symmetric; for rates of a few events it is less accurate than the interval
/// on the log scale.
///
/// # Errors
/// [`StatsError::EmptyRate`] when a rate has no trials; [`StatsError::ZeroBaseline`] when the
/// control rate is 0.
pub fn relative_uplift(treatment: Rate, control: Rate, alpha: Alpha) -> Result<Uplift, StatsError> {
    let (pt, nt) = trials("treatment", treatment)?;
    let (pc, nc) = trials("control", control)?;
    if pc == 0.0 {
        return Err(StatsError::ZeroBaseline {
            which: "the control rate",
        });
    }
    delta_uplift(pt, pt * (1.0 - pt) / nt, pc, pc * (1.0 - pc) / nc, alpha)
}

/// The relative uplift of the mean of `treatment` over the mean of `control` (average order
/// value, say), `m_t / m_c − 1`, with the delta-method interval of [`relative_uplift`] and
/// `Var(m) = s²/n`.
///
/// # Errors
/// [`StatsError::TooFewSamples`] with fewer than 2 observations in a sample;
/// [`StatsError::ZeroBaseline`] when the control mean is 0.
pub fn relative_uplift_means(
    treatment: &Summary,
    control: &Summary,
    alpha: Alpha,
) -> Result<Uplift, StatsError> {
    let (mt, vt, nt) = two_or_more("treatment", treatment)?;
    let (mc, vc, nc) = two_or_more("control", control)?;
    if mc == 0.0 {
        return Err(StatsError::ZeroBaseline {
            which: "the control mean",
        });
    }
    delta_uplift(mt, vt / nt, mc, vc / nc, alpha)
}

/// What a sample size is computed for: the significance level, the power, the alternative and
/// the allocation ratio `n_treatment / n_control`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Design {
    alpha: Alpha,
    power: Power,
    alternative: Alternative,
    ratio: f64,
}

impl Default for Design {
    /// α = 5 %, power 80 %, two-sided, equal arms.
    fn default() -> Design {
        Design::new(Alpha::FIVE_PERCENT, Power::EIGHTY_PERCENT)
    }
}

impl Design {
    /// Two-sided, with equal arms.
    pub fn new(alpha: Alpha, power: Power) -> Design {
        Design {
            alpha,
            power,
            alternative: Alternative::TwoSided,
            ratio: 1.0,
        }
    }

    /// The same design with another alternative.
    pub fn with_alternative(self, alternative: Alternative) -> Design {
        Design {
            alternative,
            ..self
        }
    }

    /// The same design with `ratio` treatment users per control user.
    ///
    /// # Errors
    /// [`StatsError::OutOfRange`] unless `ratio` is in `[0.001, 1000]`.
    pub fn with_ratio(self, ratio: f64) -> Result<Design, StatsError> {
        if !(0.001..=1000.0).contains(&ratio) {
            return Err(StatsError::OutOfRange {
                what: "allocation ratio",
                value: ratio,
                range: "[0.001, 1000]",
            });
        }
        Ok(Design { ratio, ..self })
    }

    /// The significance level.
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// The power.
    pub fn power(&self) -> Power {
        self.power
    }

    /// The alternative.
    pub fn alternative(&self) -> Alternative {
        self.alternative
    }

    /// Treatment users per control user.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The tail probability of the critical value: `α/2` two-sided, `α` one-sided.
    fn tail(&self) -> f64 {
        match self.alternative {
            Alternative::TwoSided => self.alpha.value() / 2.0,
            _ => self.alpha.value(),
        }
    }

    fn z_alpha(&self) -> f64 {
        norm_upper_quantile(self.tail())
    }

    fn check_direction(&self, effect: f64) -> Result<(), StatsError> {
        match self.alternative {
            _ if effect == 0.0 => Err(StatsError::NoEffect),
            Alternative::Greater if effect < 0.0 => Err(StatsError::EffectAgainstAlternative),
            Alternative::Less if effect > 0.0 => Err(StatsError::EffectAgainstAlternative),
            _ => Ok(()),
        }
    }
}

/// How many users each arm needs.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SampleSize {
    /// Users in the control arm (rounded up).
    pub control: u64,
    /// Users in the treatment arm (rounded up).
    pub treatment: u64,
    /// The exact, unrounded control size (R's `n`).
    pub control_exact: f64,
}

impl SampleSize {
    fn from_exact(n: f64, ratio: f64) -> Result<SampleSize, StatsError> {
        // 2^53: beyond it `ceil` is meaningless and no experiment has that many users.
        const LIMIT: f64 = 9_007_199_254_740_992.0;
        let nt = n * ratio;
        if !(n.is_finite() && nt.is_finite()) || n > LIMIT || nt > LIMIT {
            return Err(StatsError::SampleSizeTooLarge { value: n });
        }
        Ok(SampleSize {
            control: n.ceil() as u64,
            treatment: nt.ceil() as u64,
            control_exact: n,
        })
    }

    /// Both arms together.
    pub fn total(&self) -> u64 {
        self.control.saturating_add(self.treatment)
    }
}

fn proportion(what: &'static str, p: f64) -> Result<f64, StatsError> {
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(StatsError::OutOfRange {
            what,
            value: p,
            range: "[0, 1]",
        })
    }
}

/// `(null sd, alternative sd)` per unit of √n_control for Fleiss' formula.
fn proportion_sds(pc: f64, pt: f64, k: f64) -> (f64, f64) {
    let pooled = (pc + k * pt) / (1.0 + k);
    let s0 = (pooled * (1.0 - pooled) * (1.0 + 1.0 / k)).sqrt();
    let s1 = (pc * (1.0 - pc) + pt * (1.0 - pt) / k).sqrt();
    (s0, s1)
}

/// The users per arm needed to detect a change of a rate from `baseline` (the control's) to
/// `expected` (the treatment's) with the pooled z-test of [`two_proportions_z_test`]:
///
/// `n_c = (z_α·√(p̄(1 − p̄)(1 + 1/k)) + z_β·√(p_c(1 − p_c) + p_t(1 − p_t)/k))² / (p_t − p_c)²`,
/// `n_t = k·n_c`, `p̄ = (p_c + k·p_t)/(1 + k)`
///
/// (Fleiss, Levin & Paik, *Statistical Methods for Rates and Proportions*, 3rd ed., 2003,
/// §4.2, without continuity correction; with `k = 1` it is R's `power.prop.test`, and for any
/// `k` statsmodels' `samplesize_proportions_2indep_onetail`). `z_α` is `z_{1−α/2}` for a
/// two-sided design, `z_{1−α}` for a one-sided one.
///
/// ```
/// use coupons::analytics::significance::{sample_size_proportions, Alpha, Design, Power};
/// // R: power.prop.test(p1 = .50, p2 = .75, power = .90) gives n = 76.7 per group.
/// let n = sample_size_proportions(0.50, 0.75, &Design::new(Alpha::FIVE_PERCENT, Power::NINETY_PERCENT))?;
/// assert_eq!((n.control, n.treatment), (77, 77));
/// // A 12 % usage rate, hoping for 14 %: 4,438 users per arm at 80 % power.
/// let n = sample_size_proportions(0.12, 0.14, &Design::default())?;
/// assert_eq!(n.control, 4_438);
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// [`StatsError::OutOfRange`] for a rate outside `[0, 1]`, or a power too low for the level;
/// [`StatsError::NoEffect`] when the two rates are equal; [`StatsError::EffectAgainstAlternative`]
/// for a one-sided design pointing the other way; [`StatsError::SampleSizeTooLarge`].
pub fn sample_size_proportions(
    baseline: f64,
    expected: f64,
    design: &Design,
) -> Result<SampleSize, StatsError> {
    let pc = proportion("baseline rate", baseline)?;
    let pt = proportion("expected rate", expected)?;
    let effect = pt - pc;
    design.check_direction(effect)?;
    let (s0, s1) = proportion_sds(pc, pt, design.ratio);
    let zb = norm_quantile(design.power.value());
    let top = design.z_alpha() * s0 + zb * s1;
    if top.is_nan() || top <= 0.0 {
        return Err(StatsError::OutOfRange {
            what: "power",
            value: design.power.value(),
            range: "above what the significance level gives for free",
        });
    }
    SampleSize::from_exact((top / effect) * (top / effect), design.ratio)
}

/// The power of [`two_proportions_z_test`] with `control` users in the control arm (and
/// `ratio × control` in the treatment) to detect a change from `baseline` to `expected`: the
/// inverse of [`sample_size_proportions`], and R's `power.prop.test` for equal arms. Only the
/// tail in the effect's direction counts (R's default `strict = FALSE`), as in the formula the
/// sample size inverts.
///
/// ```
/// use coupons::analytics::significance::{power_proportions, Design};
/// // R: power.prop.test(n = 50, p1 = .50, p2 = .75) gives power = 0.7401659.
/// let p = power_proportions(0.50, 0.75, 50, &Design::default())?;
/// assert!((p - 0.7401659).abs() < 1e-7);
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// As [`sample_size_proportions`], and [`StatsError::TooFewSamples`] for 0 users.
pub fn power_proportions(
    baseline: f64,
    expected: f64,
    control: u64,
    design: &Design,
) -> Result<f64, StatsError> {
    let pc = proportion("baseline rate", baseline)?;
    let pt = proportion("expected rate", expected)?;
    let effect = pt - pc;
    design.check_direction(effect)?;
    if control == 0 {
        return Err(StatsError::TooFewSamples {
            which: "control",
            n: 0,
            min: 1,
        });
    }
    let (s0, s1) = proportion_sds(pc, pt, design.ratio);
    let x = (effect.abs() * (control as f64).sqrt() - design.z_alpha() * s0) / s1;
    Ok(norm_cdf(finite("power", x)?))
}

/// `ln Γ(b + ½) − ln Γ(b)`, without the cancellation of two huge logarithms when `b` is large.
fn ln_gamma_half_step(b: f64) -> f64 {
    if b < 100.0 {
        return ln_gamma(b + 0.5) - ln_gamma(b);
    }
    // Stirling: ln Γ(x) = (x − ½)ln x − x + ½ln 2π + 1/(12x) − 1/(360x³) + O(x⁻⁵).
    // The difference of the leading terms is b·ln(1 + 1/(2b)) + ½ ln b − ½.
    let c = |x: f64| 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x * x);
    b * (0.5 / b).ln_1p() + 0.5 * b.ln() - 0.5 + c(b + 0.5) - c(b)
}

/// The CDF of the non-central t distribution, `P(T ≤ t)` with `df` degrees of freedom and
/// non-centrality `delta`: Lenth, "Algorithm AS 243: Cumulative distribution function of the
/// non-central t distribution", Applied Statistics 38 (1989) 185–189.
fn noncentral_t_cdf(t: f64, df: f64, delta: f64) -> f64 {
    const ERRMAX: f64 = 1e-14;
    const ITRMAX: u32 = 2000;
    let (tt, del, negdel) = if t < 0.0 {
        (-t, -delta, true)
    } else {
        (t, delta, false)
    };
    let x = tt * tt / (tt * tt + df);
    let mut tnc = 0.0;
    if x > 0.0 {
        let lambda = del * del;
        let mut p = 0.5 * (-0.5 * lambda).exp();
        let mut q = (2.0 / PI).sqrt() * p * del;
        let mut s = 0.5 - p;
        let mut a = 0.5;
        let b = 0.5 * df;
        let rxb = (1.0 - x).powf(b);
        // ln B(½, b) = ln Γ(½) − (ln Γ(b + ½) − ln Γ(b)).
        let albeta = 0.5 * PI.ln() - ln_gamma_half_step(b);
        let mut xodd = beta_reg(a, b, x);
        let mut godd = 2.0 * rxb * (a * x.ln() - albeta).exp();
        let mut xeven = 1.0 - rxb;
        let mut geven = b * x * rxb;
        tnc = p * xodd + q * xeven;
        let mut en = 1.0;
        for _ in 0..ITRMAX {
            a += 1.0;
            xodd -= godd;
            xeven -= geven;
            godd *= x * (a + b - 1.0) / a;
            geven *= x * (a + b - 0.5) / (a + 0.5);
            p *= lambda / (2.0 * en);
            q *= lambda / (2.0 * en + 1.0);
            s -= p;
            en += 1.0;
            tnc += p * xodd + q * xeven;
            let errbd = 2.0 * s * (xodd - godd);
            if errbd.abs() <= ERRMAX {
                break;
            }
        }
    }
    tnc += norm_sf(del);
    let tnc = if negdel { 1.0 - tnc } else { tnc };
    tnc.clamp(0.0, 1.0)
}

/// Power of the equal-variance two-sample t-test with `n` control users (real-valued), the
/// tail in the effect's direction (R's `power.t.test`, `strict = FALSE`).
fn t_power(n: f64, d: f64, design: &Design) -> Result<f64, StatsError> {
    let k = design.ratio;
    let df = n * (1.0 + k) - 2.0;
    let ncp = d / (1.0 / n + 1.0 / (k * n)).sqrt();
    let crit = t_upper_quantile(design.tail(), df)?;
    Ok(1.0 - noncentral_t_cdf(crit, df, ncp))
}

fn effect_size(difference: f64, std_dev: f64, design: &Design) -> Result<f64, StatsError> {
    finite("difference", difference)?;
    finite("standard deviation", std_dev)?;
    if std_dev <= 0.0 {
        return Err(StatsError::OutOfRange {
            what: "standard deviation",
            value: std_dev,
            range: "(0, ∞)",
        });
    }
    design.check_direction(difference)?;
    finite("effect size", difference.abs() / std_dev)
}

/// The users per arm needed to detect a difference of means (order value, say) of
/// `difference` when each observation has standard deviation `std_dev`, with a two-sample
/// t-test: the smallest real `n_c` at which the t-test's power, from the non-central t
/// distribution, reaches the design's — R's `power.t.test` (and statsmodels'
/// `TTestIndPower.solve_power`, which also counts the far tail; the two agree to 10⁻⁵ users).
/// Computed by bisection from the normal approximation
/// `(1 + 1/k)(z_α + z_β)²σ²/δ² + z_α²/(2(1 + k))` (Guenther 1981 for `k = 1`), which is
/// already within a few hundredths of a user. At least 2 users per arm.
///
/// ```
/// use coupons::analytics::significance::{sample_size_means, Alpha, Design, Power};
/// // R: power.t.test(power = .90, delta = 1) gives n = 22.02110.
/// let n = sample_size_means(1.0, 1.0, &Design::new(Alpha::FIVE_PERCENT, Power::NINETY_PERCENT))?;
/// assert!((n.control_exact - 22.02110).abs() < 1e-4);
/// assert_eq!(n.control, 23);
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// [`StatsError::NonFinite`] or [`StatsError::OutOfRange`] for a bad difference or standard
/// deviation; [`StatsError::NoEffect`], [`StatsError::EffectAgainstAlternative`],
/// [`StatsError::SampleSizeTooLarge`].
pub fn sample_size_means(
    difference: f64,
    std_dev: f64,
    design: &Design,
) -> Result<SampleSize, StatsError> {
    let d = effect_size(difference, std_dev, design)?;
    let k = design.ratio;
    let target = design.power.value();
    let za = design.z_alpha();
    let zb = norm_quantile(target);
    let approx = (1.0 + 1.0 / k) * ((za + zb) / d).powi(2) + za * za / (2.0 * (1.0 + k));
    let approx = finite("sample size", approx)?;
    if approx > 1e15 {
        return Err(StatsError::SampleSizeTooLarge { value: approx });
    }
    // Both arms need two users for a t-test.
    let floor = 2.0f64.max(2.0 / k);
    let gap = |n: f64| t_power(n, d, design).map(|p| p - target);
    if gap(floor)? >= 0.0 {
        return SampleSize::from_exact(floor, k);
    }
    // The approximation is within a fraction of a user: bracket the root tightly around it.
    let mut lo = floor.max(approx - 1.0);
    let mut f_lo = gap(lo)?;
    if f_lo >= 0.0 {
        lo = floor;
        f_lo = gap(lo)?;
    }
    let mut hi = (approx + 1.0).max(lo + 1.0);
    let mut f_hi = gap(hi)?;
    let mut grow = 0;
    while f_hi < 0.0 {
        (lo, f_lo) = (hi, f_hi);
        hi *= 2.0;
        f_hi = gap(hi)?;
        grow += 1;
        if grow > 64 {
            return Err(StatsError::SampleSizeTooLarge { value: hi });
        }
    }
    // The Illinois variant of regula falsi: superlinear, and the bracket always shrinks.
    let mut side = 0i8;
    for _ in 0..200 {
        let x = hi - f_hi * (hi - lo) / (f_hi - f_lo);
        let x = if x > lo && x < hi { x } else { 0.5 * (lo + hi) };
        let f = gap(x)?;
        if f < 0.0 {
            (lo, f_lo) = (x, f);
            if side == -1 {
                f_hi *= 0.5;
            }
            side = -1;
        } else {
            (hi, f_hi) = (x, f);
            if side == 1 {
                f_lo *= 0.5;
            }
            side = 1;
        }
        if hi - lo <= 1e-12 * hi || f == 0.0 {
            break;
        }
    }
    SampleSize::from_exact(hi, k)
}

/// The power of the two-sample t-test with `control` users in the control arm (and
/// `ratio × control` in the treatment) to detect `difference` at standard deviation
/// `std_dev`: the inverse of [`sample_size_means`].
///
/// ```
/// use coupons::analytics::significance::{power_means, Design};
/// // R: power.t.test(n = 20, delta = 1) gives power = 0.8689528.
/// let p = power_means(1.0, 1.0, 20, &Design::default())?;
/// assert!((p - 0.8689528).abs() < 1e-7);
/// # Ok::<(), coupons::analytics::StatsError>(())
/// ```
///
/// # Errors
/// As [`sample_size_means`], and [`StatsError::TooFewSamples`] when an arm would have fewer
/// than 2 users.
pub fn power_means(
    difference: f64,
    std_dev: f64,
    control: u64,
    design: &Design,
) -> Result<f64, StatsError> {
    let d = effect_size(difference, std_dev, design)?;
    let n = control as f64;
    if n < 2.0 || n * design.ratio < 2.0 {
        return Err(StatsError::TooFewSamples {
            which: "an arm",
            n: control,
            min: 2,
        });
    }
    t_power(n, d, design)
}

/// A chi-square goodness-of-fit test.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GoodnessOfFit {
    /// Pearson's statistic, `Σ (observed − expected)² / expected`.
    pub statistic: f64,
    /// Degrees of freedom, categories − 1.
    pub df: u32,
    /// `P(χ²_df ≥ statistic)`.
    pub p_value: f64,
    /// The expected count of each category.
    pub expected: Vec<f64>,
}

/// Pearson's chi-square test of `observed` counts against the proportions `weights` (any
/// positive scale), as scipy's `chisquare(observed, f_exp)` with `f_exp` the weights scaled to
/// the observed total.
///
/// # Errors
/// [`StatsError::ArmCount`] when the two lengths differ or there are fewer than 2
/// categories; [`StatsError::OutOfRange`] for a weight that is not positive and finite;
/// [`StatsError::NoObservations`] when every count is 0; [`StatsError::Overflow`].
pub fn goodness_of_fit(observed: &[u64], weights: &[f64]) -> Result<GoodnessOfFit, StatsError> {
    if observed.len() != weights.len() || weights.len() < 2 {
        return Err(StatsError::ArmCount {
            expected: weights.len(),
            got: observed.len(),
        });
    }
    for &w in weights {
        if !(w > 0.0 && w.is_finite()) {
            return Err(StatsError::OutOfRange {
                what: "weight",
                value: w,
                range: "(0, ∞)",
            });
        }
    }
    let total = observed
        .iter()
        .try_fold(0u64, |s, &o| s.checked_add(o))
        .ok_or(StatsError::Overflow {
            what: "observed total",
        })?;
    if total == 0 {
        return Err(StatsError::NoObservations);
    }
    let wsum: f64 = weights.iter().sum();
    let n = total as f64;
    let expected: Vec<f64> = weights.iter().map(|w| n * (w / wsum)).collect();
    let statistic = observed
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| (o as f64 - e).powi(2) / e)
        .sum::<f64>();
    let statistic = finite("chi-square statistic", statistic)?;
    let df = u32::try_from(weights.len() - 1).unwrap_or(u32::MAX);
    let dist = ChiSquared::new(f64::from(df)).map_err(|_| StatsError::OutOfRange {
        what: "degrees of freedom",
        value: f64::from(df),
        range: "(0, ∞)",
    })?;
    let p_value = dist.sf(statistic).clamp(0.0, 1.0);
    Ok(GoodnessOfFit {
        statistic,
        df,
        p_value,
        expected,
    })
}

/// The result of [`sample_ratio_mismatch`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SampleRatioCheck {
    /// The goodness-of-fit test of the observed arm sizes against the weights.
    pub test: GoodnessOfFit,
    /// The observed users per arm.
    pub observed: Vec<u64>,
    /// The threshold: a p-value below it is a mismatch.
    pub threshold: Alpha,
    /// Whether `p < threshold`: the arms' sizes are too far from their weights to be chance,
    /// so assignment, exposure logging or filtering is probably broken and the experiment's
    /// results should not be trusted until it is explained.
    pub mismatch: bool,
}

impl fmt::Display for SampleRatioCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self
            .observed
            .iter()
            .zip(&self.test.expected)
            .map(|(o, e)| format!("{o} (expected {e:.0})"))
            .collect::<Vec<_>>()
            .join(", ");
        if self.mismatch {
            write!(
                f,
                "sample ratio mismatch: {counts}; chi-square {:.2} on {} df, p = {:.3e} < {}: \
                 assignment or logging looks broken, do not trust this experiment's results",
                self.test.statistic,
                self.test.df,
                self.test.p_value,
                self.threshold.value()
            )
        } else {
            write!(
                f,
                "arm sizes match their weights: {counts}; p = {:.4}",
                self.test.p_value
            )
        }
    }
}

/// The sample-ratio-mismatch check: are the users counted per arm (`observed`, in the order of
/// [`Experiment::arms`]) consistent with the arms' weights? A chi-square goodness-of-fit test
/// against the exact weight shares; a p-value below `threshold` ([`Alpha::ONE_PER_MILLE`] is
/// the usual choice) sets [`SampleRatioCheck::mismatch`].
///
/// ```
/// use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
/// use coupons::analytics::significance::{sample_ratio_mismatch, Alpha};
/// let exp = Experiment::new(ExperimentId::new("e")?, [Arm::control("a", 1)?, Arm::treatment("b", 1)?])?;
/// let ok = sample_ratio_mismatch(&exp, &[50_210, 49_790], Alpha::ONE_PER_MILLE)?;
/// assert!(!ok.mismatch);
/// let broken = sample_ratio_mismatch(&exp, &[50_900, 49_100], Alpha::ONE_PER_MILLE)?;
/// assert!(broken.mismatch);
/// assert!(broken.to_string().starts_with("sample ratio mismatch"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`StatsError::ArmCount`] when `observed` does not have one count per arm;
/// [`StatsError::NoObservations`] when every count is 0.
pub fn sample_ratio_mismatch(
    experiment: &Experiment,
    observed: &[u64],
    threshold: Alpha,
) -> Result<SampleRatioCheck, StatsError> {
    let (scaled, _) = experiment.scaled_weights();
    if observed.len() != scaled.len() {
        return Err(StatsError::ArmCount {
            expected: scaled.len(),
            got: observed.len(),
        });
    }
    let weights: Vec<f64> = scaled.iter().map(|&w| w as f64).collect();
    let test = goodness_of_fit(observed, &weights)?;
    let mismatch = test.p_value < threshold.value();
    Ok(SampleRatioCheck {
        test,
        observed: observed.to_vec(),
        threshold,
        mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_scipy() {
        // scipy.special.erfc(x)
        let cases = [
            (-3.0, 1.9999779095030015),
            (-0.5, 1.5204998778130465),
            (0.0, 1.0),
            (1e-20, 1.0),
            (0.1, 0.8875370839817152),
            (0.46875, 0.507386526782062),
            (0.47, 0.5062549491139179),
            (1.0, 0.15729920705028516),
            (2.5, 0.00040695201744495886),
            (3.9, 3.479224859723178e-08),
            (4.0, 1.541725790028002e-08),
            (4.1, 6.7000276540849075e-09),
            (10.0, 2.0884875837625446e-45),
            (26.0, 5.663192408856145e-296),
            (27.0, 0.0),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            // Far in the tail (p-values below 1e-30) the last digits of exp(−x²) differ.
            let tol = if x < 6.0 { 3e-15 } else { 1e-13 };
            assert!(close(got, want, tol), "erfc({x}) = {got:e}, want {want:e}");
        }
    }

    #[test]
    fn erfc_matches_scipy_on_a_grid() {
        // scipy.special.erfc on an irregular grid over [-6, 27)
        let grid = [
            (-6.0, 2.0),
            (-5.269, 1.9999999999999076),
            (-4.538, 1.9999999998616524),
            (-3.807, 1.9999999271154612),
            (-3.076, 1.9999863937517484),
            (-2.345, 1.9990879220321647),
            (-1.614, 1.9775425619523765),
            (-0.883, 1.7882436837346998),
            (-0.152, 1.170201854907825),
            (0.0, 1.0),
            (0.1234, 0.861461565643527),
            (0.2468, 0.7270683585377415),
            (0.3702, 0.6005972282355316),
            (0.4936, 0.48514228945768545),
            (0.617, 0.3828976248514476),
            (0.7404, 0.295060966423098),
            (0.8638, 0.22185980823412443),
            (0.9872, 0.16268088252986845),
            (1.1106, 0.11626964408890157),
            (1.234, 0.0809605830423316),
            (1.3574, 0.054901682784845626),
            (1.4808, 0.03624506686267705),
            (1.6042, 0.023287707702054402),
            (1.7276, 0.014557854820598811),
            (1.851, 0.008852218123702352),
            (1.9744, 0.005234722422035696),
            (2.0978, 0.0030097808735429538),
            (2.2212, 0.0016822769509461759),
            (2.3446, 0.000913926071150249),
            (2.468, 0.00048251638568322505),
            (2.5914, 0.0002475386847673482),
            (2.7148, 0.0001233820850660089),
            (2.8382, 5.9743676983506526e-05),
            (2.9616, 2.8100864614598286e-05),
            (3.085, 1.2837965004159573e-05),
            (3.2084, 5.696206660229676e-06),
            (3.3318, 2.45445821448039e-06),
            (3.4552, 1.0270129893632269e-06),
            (3.5786, 4.1727185541953524e-07),
            (3.702, 1.6461135331078904e-07),
            (3.8254, 6.30484868094342e-08),
            (3.9488, 2.3444565234461664e-08),
            (4.0722, 8.463351811194238e-09),
            (4.1956, 2.965902226543722e-09),
            (4.319, 1.0089469982959875e-09),
            (4.4424, 3.331662774501193e-10),
            (4.5658, 1.067874117430365e-10),
            (4.6892, 3.322244662062347e-11),
            (4.8126, 1.0031890925166498e-11),
            (4.936, 2.9400964790773517e-12),
            (5.0, 1.5374597944280347e-12),
            (6.37, 2.0881707090976764e-19),
            (7.74, 6.943716580220483e-28),
            (9.11, 5.575931366083018e-38),
            (10.48, 1.0724375551995896e-49),
            (11.85, 4.914246906197032e-63),
            (13.22, 5.345743978833638e-78),
            (14.59, 1.3769380083878538e-94),
            (15.96, 8.382209864646325e-113),
            (17.33, 1.2042660089087236e-132),
            (18.7, 4.078752132851784e-154),
            (20.07, 3.2538304005650155e-177),
            (21.44, 6.109718618266575e-202),
            (22.81, 2.698722546331181e-228),
            (24.18, 2.802858135605175e-256),
            (25.55, 6.841930094495658e-286),
            (26.92, 0.0),
        ];
        for (x, want) in grid {
            let got = erfc(x);
            // Far in the tail (p-values below 1e-30) the last digits of exp(−x²) differ.
            let tol = if x < 6.0 { 3e-15 } else { 1e-13 };
            assert!(close(got, want, tol), "erfc({x}) = {got:e}, want {want:e}");
        }
    }

    #[test]
    fn normal_quantile_and_tails_agree() {
        for &p in &[1e-12, 0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.999_999] {
            let x = norm_quantile(p);
            assert!(close(norm_cdf(x), p, 1e-12), "{p}");
        }
        assert!(close(norm_quantile(0.975), 1.959_963_984_540_054, 1e-14));
        // Far tails keep their relative precision (scipy.stats.norm.sf(10) = 7.61985302416047e-24).
        assert!(close(norm_sf(10.0), 7.619_853_024_160_47e-24, 1e-12));
    }

    #[test]
    fn t_quantiles_match_scipy() {
        // (tail, df, scipy.stats.t.isf(tail, df))
        let cases = [
            (0.25, 1.0, 1.0000000000000002),
            (0.025, 1.0, 12.706204736174705),
            (1e-06, 1.0, 318309.8861827435),
            (0.25, 2.5, 0.7850136829922992),
            (0.025, 2.5, 3.5746548420036834),
            (1e-06, 2.5, 220.17342917823686),
            (0.25, 17.776473516178488, 0.6885413600788486),
            (0.025, 17.776473516178488, 2.1028172415698028),
            (1e-06, 17.776473516178488, 6.90402188323181),
            (0.25, 999.0, 0.6747354103467192),
            (0.025, 999.0, 1.9623414611334498),
            (1e-06, 999.0, 4.781636978830079),
            (0.25, 1000.0, 0.6747351646070093),
            (0.025, 1000.0, 1.9623390808264085),
            (1e-06, 1000.0, 4.781608620458351),
            (0.25, 20000000.0, 0.6744897624628283),
            (0.025, 20000000.0, 1.9599641031536226),
            (1e-06, 20000000.0, 4.753425710788877),
        ];
        for (tail, df, want) in cases {
            let got = t_upper_quantile(tail, df).unwrap();
            assert!(close(got, want, 1e-11), "{tail} {df}: {got} vs {want}");
            let below = t_upper_quantile(1.0 - tail, df).unwrap();
            // 1 − (1 − tail) is not exactly tail: a looser bound.
            assert!(close(below, -want, 1e-9), "{tail} {df}: {below} vs -{want}");
        }
    }

    #[test]
    fn noncentral_t_matches_scipy() {
        // scipy.stats.nct.cdf(t, df, nc)
        let cases = [
            (2.0, 10.0, 1.0, 0.807_611_562_530_375_2),
            (
                2.024394164,
                38.0,
                3.162277660168379,
                0.131_047_198_326_516_82,
            ),
            (-1.0, 5.0, 0.5, 0.082_444_091_056_723_37),
            (1.96, 1e6, 2.8, 0.200_454_282_055_179_43),
        ];
        for (t, df, nc, want) in cases {
            let got = noncentral_t_cdf(t, df, nc);
            assert!(close(got, want, 1e-9), "{t} {df} {nc}: {got} vs {want}");
        }
    }

    #[test]
    fn half_step_log_gamma_is_continuous_at_the_switch() {
        let direct = ln_gamma(100.5) - ln_gamma(100.0);
        assert!((ln_gamma_half_step(100.0) - direct).abs() < 1e-12);
        // ln(Γ(b + ½)/Γ(b)) → ½ ln b − 1/(8b).
        let b = 1e9;
        assert!((ln_gamma_half_step(b) - (0.5 * b.ln() - 1.0 / (8.0 * b))).abs() < 1e-15);
    }

    #[test]
    fn levels_are_checked() {
        assert!(Alpha::new(0.0).is_err());
        assert!(Alpha::new(1.0).is_err());
        assert!(Alpha::new(f64::NAN).is_err());
        assert!(Power::new(0.8).is_ok());
        assert!(Design::default().with_ratio(0.0).is_err());
        assert!(Design::default().with_ratio(f64::NAN).is_err());
    }

    #[test]
    fn degenerate_inputs_are_typed_errors() {
        let a5 = Alpha::FIVE_PERCENT;
        let two = Alternative::TwoSided;
        let r = |n, d| Rate::new(n, d).unwrap();
        assert!(matches!(
            two_proportions_z_test(r(0, 0), r(1, 2), two, a5),
            Err(StatsError::EmptyRate { which: "a" })
        ));
        assert!(matches!(
            two_proportions_z_test(r(0, 10), r(0, 20), two, a5),
            Err(StatsError::NoVariation { .. })
        ));
        assert!(matches!(
            two_proportions_z_test(r(10, 10), r(20, 20), two, a5),
            Err(StatsError::NoVariation { .. })
        ));
        assert!(matches!(
            relative_uplift(r(1, 10), r(0, 10), a5),
            Err(StatsError::ZeroBaseline { .. })
        ));
        let one = Summary::from_samples(&[1.0]).unwrap();
        let flat = Summary::from_samples(&[2.0, 2.0, 2.0]).unwrap();
        assert!(matches!(
            welch_t_test(&one, &flat, two, a5),
            Err(StatsError::TooFewSamples { n: 1, .. })
        ));
        assert!(matches!(
            welch_t_test(&flat, &flat, two, a5),
            Err(StatsError::ZeroVariance { .. })
        ));
        assert!(matches!(
            sample_size_proportions(0.1, 0.1, &Design::default()),
            Err(StatsError::NoEffect)
        ));
        assert!(matches!(
            sample_size_proportions(
                0.1,
                0.08,
                &Design::default().with_alternative(Alternative::Greater)
            ),
            Err(StatsError::EffectAgainstAlternative)
        ));
        assert!(matches!(
            sample_size_proportions(0.1, 1.2, &Design::default()),
            Err(StatsError::OutOfRange { .. })
        ));
        assert!(matches!(
            sample_size_proportions(0.1, 0.1 + 1e-12, &Design::default()),
            Err(StatsError::SampleSizeTooLarge { .. })
        ));
        assert!(matches!(
            sample_size_means(1.0, 0.0, &Design::default()),
            Err(StatsError::OutOfRange { .. })
        ));
        assert!(matches!(
            sample_size_means(f64::NAN, 1.0, &Design::default()),
            Err(StatsError::NonFinite { .. })
        ));
        assert!(matches!(
            sample_size_means(1e-12, 1.0, &Design::default()),
            Err(StatsError::SampleSizeTooLarge { .. })
        ));
        assert!(matches!(
            goodness_of_fit(&[0, 0], &[1.0, 1.0]),
            Err(StatsError::NoObservations)
        ));
        assert!(matches!(
            goodness_of_fit(&[1, 2, 3], &[1.0, 1.0]),
            Err(StatsError::ArmCount { .. })
        ));
        assert!(goodness_of_fit(&[1, 2], &[1.0, -1.0]).is_err());
    }

    #[test]
    fn one_sided_intervals_are_half_open() {
        let t = two_proportions_z_test(
            Rate::new(192, 1200).unwrap(),
            Rate::new(144, 1200).unwrap(),
            Alternative::Greater,
            Alpha::FIVE_PERCENT,
        )
        .unwrap();
        assert_eq!(t.interval.upper, f64::INFINITY);
        assert!(t.interval.lower > 0.0);
        // statsmodels: proportions_ztest([192, 144], [1200, 1200], alternative="larger")
        assert!(close(t.p_value, 0.002_373_455_970_255_740_3, 1e-9));
    }

    #[test]
    fn huge_degrees_of_freedom_approach_the_normal() {
        let a = Summary::from_moments(10_000_000, 1.0, 4.0).unwrap();
        let b = Summary::from_moments(10_000_000, 0.998, 4.0).unwrap();
        let t = welch_t_test(&a, &b, Alternative::TwoSided, Alpha::FIVE_PERCENT).unwrap();
        let z = 0.002 / (8.0f64 / 1e7).sqrt();
        assert!(close(t.t, z, 1e-9));
        assert!(close(t.p_value, 2.0 * norm_sf(z), 1e-6), "{}", t.p_value);
        let half = t.interval.upper - t.difference;
        assert!(close(half, 1.959_964 * (8.0f64 / 1e7).sqrt(), 1e-5));
    }
}
