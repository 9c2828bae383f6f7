//! Maximum-likelihood estimation of the BG/NBD parameters: BFGS on log-parameters with the
//! analytic gradient, over customers grouped by frequency, age and recency.

use super::special::{digamma, ln_gamma};
use super::{BgNbd, ChurnError, Summary};

/// How [`BgNbd::fit_with`] searches.
///
/// ```
/// use coupons::targeting::churn::FitOptions;
/// let options = FitOptions::default().max_iterations(500).tolerance(1e-9)?;
/// assert_eq!(options.iterations(), 500);
/// # Ok::<(), coupons::targeting::churn::ChurnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    max_iterations: u32,
    tolerance: f64,
    start: Option<BgNbd>,
}

impl Default for FitOptions {
    /// 200 iterations, tolerance `1e-7`, the starting point chosen from the data.
    fn default() -> Self {
        FitOptions {
            max_iterations: 200,
            tolerance: 1e-7,
            start: None,
        }
    }
}

impl FitOptions {
    /// At most this many BFGS iterations (at least 1).
    pub fn max_iterations(mut self, n: u32) -> FitOptions {
        self.max_iterations = n.max(1);
        self
    }

    /// The iteration limit.
    pub fn iterations(&self) -> u32 {
        self.max_iterations
    }

    /// Stop once every component of the gradient of the mean log-likelihood per customer, with
    /// respect to the logarithms of the parameters, is at most `tolerance`.
    ///
    /// # Errors
    /// [`ChurnError::InvalidArgument`] unless `tolerance` is finite and positive.
    pub fn tolerance(mut self, tolerance: f64) -> Result<FitOptions, ChurnError> {
        if !(tolerance.is_finite() && tolerance > 0.0) {
            return Err(ChurnError::InvalidArgument {
                name: "tolerance",
                value: tolerance,
                reason: "must be finite and positive",
            });
        }
        self.tolerance = tolerance;
        Ok(self)
    }

    /// Start the search from these parameters (for example last month's fit) instead of the
    /// default `r = a = b = 1` with `alpha` matching the data's mean purchase rate.
    pub fn start(mut self, start: BgNbd) -> FitOptions {
        self.start = Some(start);
        self
    }
}

/// A fitted model and how the fit went.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Fit {
    /// The maximum-likelihood parameters.
    pub model: BgNbd,
    /// The total log-likelihood of the customers at [`Fit::model`].
    pub log_likelihood: f64,
    /// BFGS iterations run.
    pub iterations: u32,
    /// The largest component of the gradient of the mean log-likelihood per customer, with
    /// respect to the log-parameters, at the end.
    pub gradient: f64,
}

/// Customers grouped for the likelihood: by frequency, and by distinct ages and recencies.
struct Data {
    n: f64,
    /// Distinct frequencies above zero and how many customers have each.
    freq: Vec<(f64, f64)>,
    ages: Vec<f64>,
    recencies: Vec<f64>,
    /// Customers without repeat purchases, counted by age index.
    zero: Vec<(u32, f64)>,
    /// Distinct (frequency index, recency index, age index) with their counts.
    rows: Vec<(u32, u32, u32, f64)>,
}

fn distinct(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_unstable_by(f64::total_cmp);
    v.dedup();
    v
}

fn index_of(table: &[f64], v: f64) -> u32 {
    let i = table.partition_point(|&t| t < v);
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn prepare(customers: &[Summary]) -> Data {
    let mut freqs: Vec<u32> = customers
        .iter()
        .map(|c| c.frequency)
        .filter(|&x| x > 0)
        .collect();
    freqs.sort_unstable();
    let mut freq: Vec<(f64, f64)> = Vec::new();
    let mut keys: Vec<u32> = Vec::new();
    for x in freqs {
        match freq.last_mut() {
            Some(last) if keys.last() == Some(&x) => last.1 += 1.0,
            _ => {
                freq.push((f64::from(x), 1.0));
                keys.push(x);
            }
        }
    }
    let ages = distinct(customers.iter().map(|c| c.age).collect());
    let recencies = distinct(
        customers
            .iter()
            .filter(|c| c.frequency > 0)
            .map(|c| c.recency)
            .collect(),
    );
    let mut zero_counts = vec![0.0; ages.len()];
    let mut rows: Vec<(u32, u32, u32)> = Vec::new();
    for c in customers {
        let ti = index_of(&ages, c.age);
        if c.frequency == 0 {
            if let Some(slot) = zero_counts.get_mut(ti as usize) {
                *slot += 1.0;
            }
        } else {
            let xi = u32::try_from(keys.partition_point(|&k| k < c.frequency)).unwrap_or(u32::MAX);
            rows.push((xi, index_of(&recencies, c.recency), ti));
        }
    }
    rows.sort_unstable();
    let mut grouped: Vec<(u32, u32, u32, f64)> = Vec::with_capacity(rows.len());
    for (x, s, t) in rows {
        match grouped.last_mut() {
            Some(last) if (last.0, last.1, last.2) == (x, s, t) => last.3 += 1.0,
            _ => grouped.push((x, s, t, 1.0)),
        }
    }
    let zero = zero_counts
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0.0)
        .map(|(i, w)| (u32::try_from(i).unwrap_or(u32::MAX), *w))
        .collect();
    Data {
        n: customers.len() as f64,
        freq,
        ages,
        recencies,
        zero,
        rows: grouped,
    }
}

/// Scratch space reused across evaluations.
struct Scratch {
    ln_age: Vec<f64>,
    inv_age: Vec<f64>,
    ln_rec: Vec<f64>,
    inv_rec: Vec<f64>,
    /// Per frequency: r + x, ln a - ln(b + x - 1), and Σ weight · P(dropped out | ·).
    per_x: Vec<(f64, f64, f64)>,
}

impl Data {
    /// The total log-likelihood and its gradient in (r, alpha, a, b).
    fn evaluate(&self, p: [f64; 4], s: &mut Scratch) -> (f64, [f64; 4]) {
        let [r, alpha, a, b] = p;
        let ln_alpha = alpha.ln();
        let mut ll = self.n * r * ln_alpha;
        let (mut gr, mut gal, mut ga, mut gb) = (self.n * ln_alpha, self.n * r / alpha, 0.0, 0.0);

        let (lg_r, dg_r) = (ln_gamma(r), digamma(r));
        let (lg_b, dg_b) = (ln_gamma(b), digamma(b));
        let (lg_ab, dg_ab) = (ln_gamma(a + b), digamma(a + b));
        let ln_a = a.ln();
        s.per_x.clear();
        for &(x, w) in &self.freq {
            let dg_abx = digamma(a + b + x);
            ll +=
                w * (ln_gamma(r + x) - lg_r + lg_ab - lg_b + ln_gamma(b + x) - ln_gamma(a + b + x));
            gr += w * (digamma(r + x) - dg_r);
            ga += w * (dg_ab - dg_abx);
            gb += w * (dg_ab - dg_b + digamma(b + x) - dg_abx);
            s.per_x.push((r + x, ln_a - (b + x - 1.0).ln(), 0.0));
        }

        s.ln_age.clear();
        s.inv_age.clear();
        for &t in &self.ages {
            s.ln_age.push((alpha + t).ln());
            s.inv_age.push(1.0 / (alpha + t));
        }
        s.ln_rec.clear();
        s.inv_rec.clear();
        for &t in &self.recencies {
            s.ln_rec.push((alpha + t).ln());
            s.inv_rec.push(1.0 / (alpha + t));
        }

        // No repeat purchase: ln L = r ln alpha - r ln(alpha + T) (the first part is above).
        let (mut zl, mut zi) = (0.0, 0.0);
        for &(ti, w) in &self.zero {
            let i = ti as usize;
            zl += w * s.ln_age.get(i).copied().unwrap_or(0.0);
            zi += w * s.inv_age.get(i).copied().unwrap_or(0.0);
        }
        ll -= r * zl;
        gr -= zl;
        gal -= r * zi;

        // Repeat buyers: ln L = … + ln(e^A3 + e^A4), A3 = -(r+x) ln(α+T),
        // A4 = ln a - ln(b+x-1) - (r+x) ln(α+t_x): A3 + softplus(A4 - A3).
        let (mut rl, mut rg_r, mut rg_al) = (0.0, 0.0, 0.0);
        for &(xi, si, ti, w) in &self.rows {
            let (Some(px), Some(&lt), Some(&it), Some(&ls), Some(&is)) = (
                s.per_x.get_mut(xi as usize),
                s.ln_age.get(ti as usize),
                s.inv_age.get(ti as usize),
                s.ln_rec.get(si as usize),
                s.inv_rec.get(si as usize),
            ) else {
                continue;
            };
            let (rx, kx) = (px.0, px.1);
            let d = kx - rx * (ls - lt);
            let e = (-d.abs()).exp();
            let sp = d.max(0.0) + e.ln_1p();
            let dead = if d >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            rl += w * (sp - rx * lt);
            rg_r -= w * (lt + dead * (ls - lt));
            rg_al -= w * rx * (it + dead * (is - it));
            px.2 += w * dead;
        }
        ll += rl;
        gr += rg_r;
        gal += rg_al;
        for (&(x, _), &(_, _, wd)) in self.freq.iter().zip(&s.per_x) {
            ga += wd / a;
            gb -= wd / (b + x - 1.0);
        }
        (ll, [gr, gal, ga, gb])
    }
}

const NAMES: [&str; 4] = ["r", "alpha", "a", "b"];

/// Parameters beyond 1e8 or below 1e-8 are treated as running off to infinity or 0: no
/// interior maximum (in any time unit from minutes to years, real data stays far inside).
const LOG_BOUND: f64 = 18.420_680_743_952_367; // ln 1e8

fn model(phi: [f64; 4]) -> BgNbd {
    BgNbd {
        r: phi[0].exp(),
        alpha: phi[1].exp(),
        a: phi[2].exp(),
        b: phi[3].exp(),
    }
}

fn dot(x: &[f64; 4], y: &[f64; 4]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

fn max_abs(x: &[f64; 4]) -> f64 {
    x.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// The mean negative log-likelihood and its gradient in log-parameters.
fn objective(data: &Data, phi: [f64; 4], s: &mut Scratch) -> (f64, [f64; 4]) {
    let p = [phi[0].exp(), phi[1].exp(), phi[2].exp(), phi[3].exp()];
    let (ll, g) = data.evaluate(p, s);
    let mut out = [0.0; 4];
    for i in 0..4 {
        out[i] = -g[i] * p[i] / data.n;
    }
    (-ll / data.n, out)
}

/// `ln 1e4`: a parameter past `1e4` or below `1e-4` at a point where the likelihood no longer
/// curves down has run off rather than stalled.
const FAR_OUT: f64 = 9.210_340_371_976_184;

/// Whether `phi`, where the gradient `g` is already small, is a maximum of the likelihood:
/// the Hessian of the mean negative log-likelihood (forward differences of the analytic
/// gradient, step `1e-4`) is positive definite and the Newton step from `phi` moves no
/// log-parameter by more than `0.01`. On a plateau that keeps rising towards infinity (one customer, or nobody
/// dropping out) the gradient vanishes in floating point long before a parameter reaches
/// [`LOG_BOUND`]; this is what tells such a point from a maximum.
fn check_maximum(
    data: &Data,
    phi: [f64; 4],
    g: &[f64; 4],
    iterations: u32,
    s: &mut Scratch,
) -> Result<(), ChurnError> {
    const H: f64 = 1e-4;
    let mut hess = [[0.0; 4]; 4];
    for i in 0..4 {
        let mut up = phi;
        up[i] += H;
        let (fu, gu) = objective(data, up, s);
        if !fu.is_finite() {
            return Err(off_maximum(phi, g, iterations));
        }
        for j in 0..4 {
            hess[j][i] = (gu[j] - g[j]) / H;
        }
    }
    // Symmetrise, then Cholesky: `hess = L Lᵀ`.
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum =
                0.5 * (hess[i][j] + hess[j][i]) - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if !(sum > 0.0 && sum.is_finite()) {
                    return Err(off_maximum(phi, g, iterations));
                }
                l[i][i] = sum.sqrt();
            } else {
                l[i][j] = sum / l[j][j];
            }
        }
    }
    // Newton step: solve L y = -g, then Lᵀ δ = y.
    let mut y = [0.0; 4];
    for i in 0..4 {
        let sum = -g[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>();
        y[i] = sum / l[i][i];
    }
    let mut delta = [0.0; 4];
    for i in (0..4).rev() {
        let sum = y[i] - (i + 1..4).map(|k| l[k][i] * delta[k]).sum::<f64>();
        delta[i] = sum / l[i][i];
    }
    if max_abs(&delta) <= 0.01 {
        Ok(())
    } else {
        Err(off_maximum(phi, g, iterations))
    }
}

/// The error for a point with a small gradient that is not a maximum: [`ChurnError::Unbounded`]
/// naming the parameter furthest out when one is past [`FAR_OUT`], else
/// [`ChurnError::NotConverged`].
fn off_maximum(phi: [f64; 4], g: &[f64; 4], iterations: u32) -> ChurnError {
    let far = (1..4).fold(0, |far, i| {
        if phi[i].abs() > phi[far].abs() {
            i
        } else {
            far
        }
    });
    if phi[far].abs() > FAR_OUT {
        unbounded(phi, far)
    } else {
        ChurnError::NotConverged {
            iterations,
            gradient: max_abs(g),
            estimate: model(phi),
        }
    }
}

/// [`ChurnError::Unbounded`]: parameter `i` of the estimate `phi` ran off.
fn unbounded(phi: [f64; 4], i: usize) -> ChurnError {
    let m = model(phi);
    ChurnError::Unbounded {
        parameter: NAMES[i],
        value: [m.r, m.alpha, m.a, m.b][i],
        estimate: m,
    }
}

pub(super) fn fit(customers: &[Summary], options: &FitOptions) -> Result<Fit, ChurnError> {
    let repeat_buyers = customers.iter().filter(|c| c.frequency > 0).count();
    if repeat_buyers == 0 {
        return Err(ChurnError::NotEnoughData {
            customers: customers.len(),
            repeat_buyers,
        });
    }
    let data = prepare(customers);
    let mut scratch = Scratch {
        ln_age: Vec::with_capacity(data.ages.len()),
        inv_age: Vec::with_capacity(data.ages.len()),
        ln_rec: Vec::with_capacity(data.recencies.len()),
        inv_rec: Vec::with_capacity(data.recencies.len()),
        per_x: Vec::with_capacity(data.freq.len()),
    };
    let start = options.start.unwrap_or_else(|| {
        let purchases: f64 = customers.iter().map(|c| f64::from(c.frequency)).sum();
        let time: f64 = customers.iter().map(|c| c.age).sum();
        let alpha = if time > 0.0 { time / purchases } else { 1.0 };
        BgNbd {
            r: 1.0,
            alpha: alpha.clamp(1e-6, 1e6),
            a: 1.0,
            b: 1.0,
        }
    });
    let mut phi = [start.r.ln(), start.alpha.ln(), start.a.ln(), start.b.ln()];
    let (mut f, mut g) = objective(&data, phi, &mut scratch);
    if !f.is_finite() {
        return Err(ChurnError::NotConverged {
            iterations: 0,
            gradient: f64::NAN,
            estimate: start,
        });
    }
    // Inverse Hessian approximation.
    let identity = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let mut h = identity;
    let mut first_update = true;
    let mut stalls = 0;
    let finish = |phi: [f64; 4], f: f64, g: &[f64; 4], iterations, s: &mut Scratch| {
        check_maximum(&data, phi, g, iterations, s)?;
        Ok(Fit {
            model: model(phi),
            log_likelihood: -f * data.n,
            iterations,
            gradient: max_abs(g),
        })
    };
    for iteration in 1..=options.max_iterations {
        if max_abs(&g) <= options.tolerance {
            return finish(phi, f, &g, iteration - 1, &mut scratch);
        }
        let mut p = [0.0; 4];
        for (i, pi) in p.iter_mut().enumerate() {
            *pi = -dot(&h[i], &g);
        }
        if dot(&p, &g) >= 0.0 {
            h = identity;
            first_update = true;
            p = g.map(|v| -v);
        }
        // At most a factor e on any parameter per step.
        let longest = max_abs(&p);
        if longest > 1.0 {
            p = p.map(|v| v / longest);
        }
        let slope = dot(&p, &g);
        let noise = 8.0 * f64::EPSILON * f.abs();
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..60 {
            let trial = [
                phi[0] + step * p[0],
                phi[1] + step * p[1],
                phi[2] + step * p[2],
                phi[3] + step * p[3],
            ];
            let (ft, gt) = objective(&data, trial, &mut scratch);
            if ft.is_finite()
                && gt.iter().all(|v| v.is_finite())
                && ft <= f + 1e-4 * step * slope + noise
            {
                accepted = Some((trial, ft, gt));
                break;
            }
            step *= 0.5;
        }
        let Some((next, fnext, gnext)) = accepted else {
            // No decrease along a descent direction: the limit of floating-point precision.
            if max_abs(&g) <= 1e-4 {
                return finish(phi, f, &g, iteration, &mut scratch);
            }
            return Err(ChurnError::NotConverged {
                iterations: iteration,
                gradient: max_abs(&g),
                estimate: model(phi),
            });
        };
        let sv = [
            next[0] - phi[0],
            next[1] - phi[1],
            next[2] - phi[2],
            next[3] - phi[3],
        ];
        let yv = [
            gnext[0] - g[0],
            gnext[1] - g[1],
            gnext[2] - g[2],
            gnext[3] - g[3],
        ];
        let sy = dot(&sv, &yv);
        if sy > 1e-300 && sy.is_finite() {
            if first_update {
                let scale = sy / dot(&yv, &yv);
                for (i, row) in h.iter_mut().enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = if i == j { scale } else { 0.0 };
                    }
                }
                first_update = false;
            }
            // H' = (I - ρ s yᵀ) H (I - ρ y sᵀ) + ρ s sᵀ
            let rho = 1.0 / sy;
            let mut hy = [0.0; 4];
            for (i, v) in hy.iter_mut().enumerate() {
                *v = dot(&h[i], &yv);
            }
            let yhy = dot(&yv, &hy);
            for i in 0..4 {
                for j in 0..4 {
                    h[i][j] += -rho * (hy[i] * sv[j] + sv[i] * hy[j])
                        + (rho * rho * yhy + rho) * sv[i] * sv[j];
                }
            }
        }
        let change = f - fnext;
        phi = next;
        f = fnext;
        g = gnext;
        if let Some(i) = (0..4).find(|&i| phi[i].abs() > LOG_BOUND) {
            return Err(unbounded(phi, i));
        }
        if change.abs() <= 1e-15 * (1.0 + f.abs()) {
            stalls += 1;
            if stalls >= 2 && max_abs(&g) <= 1e-4 {
                return finish(phi, f, &g, iteration, &mut scratch);
            }
        } else {
            stalls = 0;
        }
    }
    if max_abs(&g) <= options.tolerance {
        return finish(phi, f, &g, options.max_iterations, &mut scratch);
    }
    Err(ChurnError::NotConverged {
        iterations: options.max_iterations,
        gradient: max_abs(&g),
        estimate: model(phi),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic random source (splitmix64).
    pub(crate) struct Rng(u64);

    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed)
        }
        pub(crate) fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
        /// Gamma(shape, 1) by Marsaglia and Tsang.
        fn gamma(&mut self, shape: f64) -> f64 {
            if shape < 1.0 {
                return self.gamma(shape + 1.0) * self.uniform().powf(1.0 / shape);
            }
            let d = shape - 1.0 / 3.0;
            let c = 1.0 / (9.0 * d).sqrt();
            loop {
                let z = self.normal();
                let v = (1.0 + c * z).powi(3);
                if v > 0.0 && self.uniform().ln() < 0.5 * z * z + d - d * v + d * v.ln() {
                    return d * v;
                }
            }
        }
    }

    /// Customers drawn from the model, with ages uniform in `[age_min, age_max]`.
    pub(crate) fn simulate(m: &BgNbd, n: usize, ages: (f64, f64), seed: u64) -> Vec<Summary> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let lambda = rng.gamma(m.r) / m.alpha;
                let ga = rng.gamma(m.a);
                let p = ga / (ga + rng.gamma(m.b));
                let age = ages.0 + (ages.1 - ages.0) * rng.uniform();
                let (mut t, mut x, mut tx) = (0.0, 0u32, 0.0);
                loop {
                    t += -rng.uniform().ln() / lambda;
                    if t > age {
                        break;
                    }
                    x += 1;
                    tx = t;
                    if rng.uniform() < p {
                        break;
                    }
                }
                Summary::new(x, tx, age).unwrap()
            })
            .collect()
    }

    fn sample() -> Vec<Summary> {
        let m = BgNbd::new(0.25, 4.0, 0.8, 2.5).unwrap();
        simulate(&m, 300, (20.0, 40.0), 7)
    }

    #[test]
    fn grouped_likelihood_equals_the_per_customer_sum() {
        let cs = sample();
        let data = prepare(&cs);
        let m = BgNbd::new(0.4, 6.0, 0.9, 2.1).unwrap();
        let mut s = Scratch {
            ln_age: vec![],
            inv_age: vec![],
            ln_rec: vec![],
            inv_rec: vec![],
            per_x: vec![],
        };
        let (ll, _) = data.evaluate([m.r, m.alpha, m.a, m.b], &mut s);
        let direct = m.total_log_likelihood(&cs);
        assert!(
            (ll - direct).abs() < 1e-9 * direct.abs(),
            "{ll} vs {direct}"
        );
    }

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let cs = sample();
        let data = prepare(&cs);
        let mut s = Scratch {
            ln_age: vec![],
            inv_age: vec![],
            ln_rec: vec![],
            inv_rec: vec![],
            per_x: vec![],
        };
        let phi = [0.4f64.ln(), 6.0f64.ln(), 0.9f64.ln(), 2.1f64.ln()];
        let (_, g) = objective(&data, phi, &mut s);
        for i in 0..4 {
            let h = 1e-6;
            let (mut up, mut down) = (phi, phi);
            up[i] += h;
            down[i] -= h;
            let numeric =
                (objective(&data, up, &mut s).0 - objective(&data, down, &mut s).0) / (2.0 * h);
            assert!((g[i] - numeric).abs() < 1e-7, "{i}: {} vs {numeric}", g[i]);
        }
    }

    #[test]
    fn fit_finds_a_stationary_maximum() {
        let cs = sample();
        let fit = BgNbd::fit(&cs).unwrap();
        assert!(fit.gradient <= 1e-4, "{fit:?}");
        let m = fit.model;
        for (i, f) in [0.98, 1.02].iter().enumerate() {
            let nudged = [
                BgNbd::new(m.r * f, m.alpha, m.a, m.b).unwrap(),
                BgNbd::new(m.r, m.alpha * f, m.a, m.b).unwrap(),
                BgNbd::new(m.r, m.alpha, m.a * f, m.b).unwrap(),
                BgNbd::new(m.r, m.alpha, m.a, m.b * f).unwrap(),
            ];
            for n in nudged {
                assert!(
                    fit.log_likelihood > n.total_log_likelihood(&cs),
                    "{i} {n:?}"
                );
            }
        }
    }

    #[test]
    fn fit_recovers_the_parameters_of_simulated_customers() {
        let truth = BgNbd::new(0.25, 4.0, 0.8, 2.5).unwrap();
        let cs = simulate(&truth, 20_000, (26.0, 52.0), 11);
        let fit = BgNbd::fit(&cs).unwrap();
        let m = fit.model;
        for (got, want) in [
            (m.r, truth.r),
            (m.alpha, truth.alpha),
            (m.a, truth.a),
            (m.b, truth.b),
        ] {
            assert!((got / want - 1.0).abs() < 0.25, "{m:?}");
        }
        // The truth is a worse explanation of the sample than the estimate.
        assert!(fit.log_likelihood >= truth.total_log_likelihood(&cs));
    }

    #[test]
    fn no_repeat_buyers_is_not_enough_data() {
        let cs = [
            Summary::new(0, 0.0, 5.0).unwrap(),
            Summary::new(0, 0.0, 9.0).unwrap(),
        ];
        assert_eq!(
            BgNbd::fit(&cs).unwrap_err(),
            ChurnError::NotEnoughData {
                customers: 2,
                repeat_buyers: 0
            }
        );
        assert!(BgNbd::fit(&[]).is_err());
    }

    #[test]
    fn iteration_limit_is_a_typed_error() {
        let cs = sample();
        let e = BgNbd::fit_with(&cs, &FitOptions::default().max_iterations(1)).unwrap_err();
        assert!(
            matches!(e, ChurnError::NotConverged { iterations: 1, .. }),
            "{e:?}"
        );
    }
}
