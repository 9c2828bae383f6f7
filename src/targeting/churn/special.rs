//! The special functions the BG/NBD model needs, for positive real arguments: `ln Γ`, the
//! digamma function `ψ`, and the Gauss hypergeometric series in the reduced form the model's
//! conditional expectation uses.
//!
//! Written here rather than taken from a crate so that the churn model works without optional
//! features; each function is checked against reference values in the tests below.

/// Below this, `ln Γ` and `ψ` shift their argument up by the recurrence before the asymptotic
/// series (whose error at 16 is below 1e-17).
const SHIFT_TO: f64 = 16.0;

/// `ln(2π) / 2`.
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// `ln Γ(x)` for finite `x > 0`, with an absolute error of a few units in 1e-15 for arguments
/// up to the thousands (Stirling's series after shifting the argument to at least 16).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    let mut x = x;
    let mut product = 1.0;
    while x < SHIFT_TO {
        product *= x;
        x += 1.0;
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    // Bernoulli terms B_2k / (2k (2k - 1) x^(2k-1)), k = 1..7.
    let series = inv
        * (1.0 / 12.0
            + inv2
                * (-1.0 / 360.0
                    + inv2
                        * (1.0 / 1260.0
                            + inv2
                                * (-1.0 / 1680.0
                                    + inv2
                                        * (1.0 / 1188.0
                                            + inv2 * (-691.0 / 360_360.0 + inv2 / 156.0))))));
    (x - 0.5) * x.ln() - x + HALF_LN_2PI + series - product.ln()
}

/// `ψ(x) = d/dx ln Γ(x)` for finite `x > 0` (asymptotic series after the same shift).
pub(crate) fn digamma(x: f64) -> f64 {
    let mut x = x;
    let mut acc = 0.0;
    while x < SHIFT_TO {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let inv2 = 1.0 / (x * x);
    // B_2k / (2k x^2k), k = 1..7.
    let series = inv2
        * (1.0 / 12.0
            + inv2
                * (-1.0 / 120.0
                    + inv2
                        * (1.0 / 252.0
                            + inv2
                                * (-1.0 / 240.0
                                    + inv2
                                        * (1.0 / 132.0
                                            + inv2 * (-691.0 / 32_760.0 + inv2 / 12.0))))));
    acc + x.ln() - 0.5 / x - series
}

/// `ln B(p, q) = ln Γ(p) + ln Γ(q) - ln Γ(p + q)`.
pub(crate) fn ln_beta(p: f64, q: f64) -> f64 {
    ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q)
}

/// `ln(1 + e^d)` without overflow.
pub(crate) fn softplus(d: f64) -> f64 {
    d.max(0.0) + (-d.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-d)` without overflow: exactly 0 or 1 far out, never NaN.
pub(crate) fn sigmoid(d: f64) -> f64 {
    let e = (-d.abs()).exp();
    if d >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// A series that did not reach full precision within its term limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NotConverged {
    /// How many terms were summed.
    pub terms: u32,
}

/// The most terms a series sums before giving up (enough for `z` up to about `1 - 4e-5`).
pub(crate) const MAX_TERMS: u32 = 1_000_000;

/// `c · (₂F₁(a, b; c; z) - 1) / b`, for `0 <= z < 1` and `c > -1`, summed term by term.
///
/// This reduced form is what the BG/NBD conditional expectation needs (with `b = a_model - 1`,
/// which may be zero, and `c = a + b + x - 1`, which may be in `(-1, 0]`): it is finite and
/// well-conditioned where the plain series divides by zero, and `₂F₁ = 1 + b/c · U` otherwise.
/// The sum stops when the next terms cannot move it by more than one part in 1e16 (a geometric
/// bound on the tail from the term ratio, which tends to `z`).
///
/// # Errors
/// [`NotConverged`] after [`MAX_TERMS`] terms (only for `z` very close to 1).
pub(crate) fn hyp2f1_reduced(a: f64, b: f64, c: f64, z: f64) -> Result<f64, NotConverged> {
    // u_1 = a z (the c of (c)_1 cancels); u_{k+1} = u_k (a+k)(b+k) z / ((c+k)(k+1)).
    let mut term = a * z;
    let mut sum = term;
    let mut k = 1u32;
    loop {
        if term.abs() < 1e-300 {
            // Zero (a terminating series) or negligible beside any sum the model uses.
            return Ok(sum);
        }
        let kf = f64::from(k);
        let ratio = (a + kf) * (b + kf) * z / ((c + kf) * (kf + 1.0));
        let q = ratio.abs().max(z);
        if k >= 2 && q < 1.0 && (term * q).abs() <= 1e-17 * (1.0 - q) * sum.abs() {
            return Ok(sum);
        }
        if k >= MAX_TERMS || !sum.is_finite() {
            return Err(NotConverged { terms: k });
        }
        term *= ratio;
        sum += term;
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: f64, y: f64, tol: f64) -> bool {
        (x - y).abs() <= tol * (1.0 + y.abs())
    }

    /// ₂F₁ from the reduced form, for tests against closed forms.
    fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
        1.0 + b / c * hyp2f1_reduced(a, b, c, z).unwrap()
    }

    #[test]
    fn ln_gamma_matches_reference_values() {
        // ln Γ(1/2) = ln √π; ln Γ(n) = ln (n-1)!; others from mpmath at 40 digits.
        assert!(close(ln_gamma(0.5), 0.572_364_942_924_700_1, 1e-15));
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-15));
        assert!(close(ln_gamma(100.0), 359.134_205_369_575_4, 1e-15));
        assert!(close(ln_gamma(1e-3), 6.907_178_885_383_854, 2e-15));
        assert!(close(ln_gamma(0.242_594), 1.319_811_625_589_484_4, 1e-14));
        assert!(close(ln_gamma(2.5), 0.284_682_870_472_919_2, 1e-14));
        assert!(close(ln_gamma(5000.5), 37_586.884_887_281_06, 1e-15));
    }

    #[test]
    fn digamma_matches_reference_values() {
        let euler = 0.577_215_664_901_532_9;
        assert!(close(digamma(1.0), -euler, 1e-15));
        assert!(close(digamma(0.5), -euler - 2.0 * 2f64.ln(), 1e-15));
        assert!(close(digamma(10.0), 2.251_752_589_066_721, 1e-15));
        assert!(close(digamma(1e-3), -1_000.575_571_931_810_3, 1e-14));
        assert!(close(digamma(3000.25), 8.006_284_235_474_9, 1e-15));
    }

    #[test]
    fn digamma_is_the_derivative_of_ln_gamma() {
        for &x in &[0.05, 0.7, 3.3, 15.9, 16.1, 250.0] {
            let h = 1e-5 * x;
            let numeric = (ln_gamma(x + h) - ln_gamma(x - h)) / (2.0 * h);
            assert!(close(digamma(x), numeric, 1e-7), "x = {x}");
        }
    }

    #[test]
    fn hypergeometric_matches_closed_forms() {
        for &z in &[0.0f64, 0.1, 0.5, 0.9, 0.99, 0.999] {
            // ₂F₁(1, 1; 2; z) = -ln(1 - z) / z
            let want = if z == 0.0 { 1.0 } else { -(-z).ln_1p() / z };
            assert!(close(hyp2f1(1.0, 1.0, 2.0, z), want, 1e-13), "z = {z}");
            // ₂F₁(a, b; b; z) = (1 - z)^-a
            assert!(close(hyp2f1(0.3, 2.5, 2.5, z), (1.0 - z).powf(-0.3), 1e-13));
            // ₂F₁(1/2, 1/2; 3/2; s²) = asin(s) / s
            let s = z.sqrt();
            let want = if s == 0.0 { 1.0 } else { s.asin() / s };
            assert!(close(hyp2f1(0.5, 0.5, 1.5, z), want, 1e-12), "z = {z}");
        }
        // A terminating series: ₂F₁(-2, b; c; z) = 1 - 2bz/c + b(b+1)z²/(c(c+1)).
        let (b, c, z) = (1.5, 3.25, 0.7);
        let want = 1.0 - 2.0 * b * z / c + b * (b + 1.0) * z * z / (c * (c + 1.0));
        assert!(close(hyp2f1(-2.0, b, c, z), want, 1e-15));
        // mpmath: hyp2f1(2.242594, 4.425896, 5.219117, 39/(4.41359+38.86+39)).
        let z = 39.0 / (4.413_59 + 38.86 + 39.0);
        assert!(close(
            hyp2f1(2.242_594, 4.425_896, 5.219_117, z),
            3.297_338_395_696_378_5,
            1e-12
        ));
    }

    #[test]
    fn reduced_form_is_finite_where_the_plain_series_divides_by_zero() {
        // c = 0: c (F - 1)/b at c -> 0 is a z F(a+1, b+1; 2; z).
        let (a, b, z) = (0.4, 0.7, 0.6);
        let got = hyp2f1_reduced(a, b, 0.0, z).unwrap();
        let want = a * z * hyp2f1(a + 1.0, b + 1.0, 2.0, z);
        assert!(close(got, want, 1e-13));
        // b = 0: the limit is a finite sum as well.
        assert!(hyp2f1_reduced(0.5, 0.0, 1.2, 0.8).unwrap().is_finite());
    }

    #[test]
    fn series_reports_non_convergence_instead_of_looping() {
        let e = hyp2f1_reduced(1.0, 1.0, 2.0, 1.0 - 1e-9).unwrap_err();
        assert_eq!(e.terms, MAX_TERMS);
    }

    #[test]
    fn softplus_and_sigmoid_never_overflow() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!(close(softplus(0.0), 2f64.ln(), 1e-16));
    }
}
