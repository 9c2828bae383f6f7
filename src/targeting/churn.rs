//! Churn probability: the BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the
//! easy way").
//!
//! A customer buys at a steady personal rate while "alive" and, after each purchase, may quietly
//! leave for good. Nobody tells you when they leave, so the model reads it from the pattern of
//! their purchases: someone who used to buy every week and has not bought for three months has
//! probably gone; someone who buys twice a year and bought last month has not.
//!
//! What the model needs of each customer is a [`Summary`] of their history over a calibration
//! period: the number of **repeat** purchases `x` (the first purchase does not count), the time
//! of the last purchase measured from the first, `t_x`, and the customer's age at the end of the
//! period, `T`, all in one time unit of your choice (the literature uses weeks).
//! [`Calibration::summarize`] builds one from a customer's purchase instants.
//!
//! [`BgNbd::fit`] estimates the four population parameters by maximum likelihood:
//! purchase rates are Gamma(`r`, `alpha`) across customers and the drop-out probability after
//! each purchase is Beta(`a`, `b`). The fitted model then answers, per customer:
//!
//! - [`BgNbd::probability_alive`] — the probability the customer is still active;
//! - [`BgNbd::expected_purchases`] — how many purchases to expect in the next `t`;
//! - [`BgNbd::probability_of_purchases`] — the probability of exactly `n` purchases in the
//!   next `t`;
//!
//! and [`at_risk`] selects the customers whose probability of being alive has fallen below a
//! threshold — the churn-risk audience for a win-back coupon.
//!
//! ```
//! use coupons::targeting::churn::{BgNbd, Summary};
//!
//! // Parameters fitted on the CDNOW sample (weeks), as published by Fader, Hardie & Lee.
//! let model = BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4)?;
//! // Two repeat purchases, the last one 30.43 weeks after the first; 38.86 weeks old.
//! let customer = Summary::new(2, 30.43, 38.86)?;
//! let alive = model.probability_alive(&customer);
//! let next_39_weeks = model.expected_purchases(&customer, 39.0)?;
//! assert!((alive - 0.7266).abs() < 1e-4);
//! assert!((next_39_weeks - 1.2259).abs() < 1e-4);
//!
//! // The same customer, silent since week 2: probably gone.
//! let quiet = Summary::new(2, 2.0, 38.86)?;
//! assert!(model.probability_alive(&quiet) < 0.1);
//! # Ok::<(), coupons::targeting::churn::ChurnError>(())
//! ```
//!
//! ## Fitting
//!
//! ```
//! use coupons::targeting::churn::{BgNbd, Summary};
//!
//! // Sixteen customers of the CDNOW sample: (repeat purchases, recency, age) in weeks.
//! let rows = [
//!     (0, 0.0, 36.0), (0, 0.0, 36.0), (0, 0.0, 36.0), (0, 0.0, 35.86), (2, 14.29, 35.86),
//!     (0, 0.0, 35.86), (2, 31.0, 35.86), (0, 0.0, 35.86), (18, 35.14, 35.86), (0, 0.0, 35.86),
//!     (1, 5.29, 35.86), (0, 0.0, 35.86), (1, 7.86, 35.86), (0, 0.0, 35.86), (0, 0.0, 35.86),
//!     (0, 0.0, 35.86),
//! ];
//! let customers = rows
//!     .iter()
//!     .map(|&(x, recency, age)| Summary::new(x, recency, age))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let fit = BgNbd::fit(&customers)?;
//! // The fitted parameters are a maximum: the log-likelihood at them beats nearby values.
//! let m = fit.model;
//! let nudged = BgNbd::new(m.r() * 1.05, m.alpha(), m.a(), m.b())?;
//! assert!(fit.log_likelihood >= nudged.total_log_likelihood(&customers));
//! # Ok::<(), coupons::targeting::churn::ChurnError>(())
//! ```
//!
//! The log-likelihood is computed in log-sum-exp form, so it stays finite for customers with
//! thousands of purchases; the fit groups customers by frequency and by distinct ages and
//! recencies, so its cost per iteration grows with the number of distinct histories.
//! The optimiser is BFGS on the logarithms of the parameters (which keeps them positive) with
//! the analytic gradient and a backtracking line search. It stops when every component of the
//! gradient of the mean log-likelihood per customer is at most the tolerance (default `1e-7`),
//! or when successive iterations no longer change the likelihood beyond floating-point rounding
//! while the gradient is already below `1e-4`. Before it answers `Ok` it checks that the point
//! is a maximum: the Hessian (forward differences of the gradient) is negative definite and the
//! Newton step from it moves no log-parameter by more than 0.01. A point that fails the check
//! is a plateau still rising towards infinity — reported as [`ChurnError::Unbounded`] when a
//! parameter is past `1e4` or below `1e-4`, else as [`ChurnError::NotConverged`]. After the
//! iteration limit (default 200) it returns [`ChurnError::NotConverged`] with the estimate
//! reached. It never loops without bound.
//!
//! ## Numbers
//!
//! Times, rates and probabilities are `f64`: they are statistical estimates, not money. The
//! conditional expectation needs the Gauss hypergeometric function ₂F₁; it is evaluated after
//! Euler's transformation, in a form whose parameters do not grow with the customer's
//! frequency, and summed until the tail is below one part in 10¹⁶. That takes a few hundred
//! terms for horizons comparable to the customer's age and up to a million (the limit) when the
//! horizon is tens of thousands of times the age; past it the call returns
//! [`ChurnError::SeriesNotConverged`] rather than an inaccurate number.

use std::borrow::Borrow;
use std::collections::BTreeMap;

mod fit;
mod special;
mod summary;

pub use fit::{Fit, FitOptions};
pub use summary::{Calibration, TimeUnit};

use special::{ln_beta, ln_gamma, sigmoid, softplus};

/// What went wrong in the churn model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChurnError {
    /// A customer summary that cannot describe a purchase history.
    #[error("customer summary: {field} = {value} {reason}")]
    InvalidSummary {
        /// `"recency"` or `"age"`.
        field: &'static str,
        /// The value as given.
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A model parameter that is not a finite positive number.
    #[error("BG/NBD parameter {name} = {value} must be finite and positive")]
    InvalidParameter {
        /// `"r"`, `"alpha"`, `"a"` or `"b"`.
        name: &'static str,
        /// The value as given.
        value: f64,
    },
    /// An argument outside its range: a negative horizon, a threshold outside `[0, 1]`…
    #[error("{name} = {value} {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// The value as given.
        value: f64,
        /// What it must be.
        reason: &'static str,
    },
    /// A series did not reach full precision within its term limit (a horizon tens of
    /// thousands of times longer than the customer's age, or `n` in the tens of millions).
    #[error("{function} did not converge within {terms} terms")]
    SeriesNotConverged {
        /// Which series.
        function: &'static str,
        /// How many terms were summed.
        terms: u32,
    },
    /// The data cannot identify the model: it needs at least one customer with a repeat
    /// purchase (otherwise nothing tells drop-out apart from a low purchase rate).
    #[error("cannot fit BG/NBD on {customers} customers of whom {repeat_buyers} bought again")]
    NotEnoughData {
        /// Customers given.
        customers: usize,
        /// Customers with at least one repeat purchase.
        repeat_buyers: usize,
    },
    /// The optimiser reached its iteration limit before the convergence test held (this also
    /// happens when the maximum lies at infinity and the search creeps towards it, for example
    /// `a` and `b` growing together: every customer with the same drop-out probability).
    #[error(
        "BG/NBD fit did not converge in {iterations} iterations (gradient {gradient:e}); last estimate {estimate:?}"
    )]
    NotConverged {
        /// Iterations run.
        iterations: u32,
        /// The largest gradient component at the last estimate.
        gradient: f64,
        /// The last estimate.
        estimate: BgNbd,
    },
    /// The likelihood keeps improving as a parameter runs off (beyond 1e8 or below 1e-8, or
    /// stalled past 1e4 or below 1e-4 on a plateau that does not curve down): the
    /// data has no interior maximum — for example, nobody in it ever drops out (`b` grows
    /// without bound), or everyone buys at the same rate (`r` and `alpha` grow together). The
    /// estimate is the model's limit and still usable for predictions.
    #[error(
        "BG/NBD fit: no maximum, {parameter} runs off to {value:e}; last estimate {estimate:?}"
    )]
    Unbounded {
        /// The parameter that ran off.
        parameter: &'static str,
        /// Its value when the fit stopped.
        value: f64,
        /// The last estimate.
        estimate: BgNbd,
    },
}

/// One customer's purchase history over the calibration period, as the model reads it.
///
/// - `frequency` (`x`): the number of **repeat** purchases — purchases after the first;
/// - `recency` (`t_x`): the time of the last purchase, measured from the first (0 when
///   `frequency` is 0);
/// - `age` (`T`): the time from the first purchase to the end of the calibration period.
///
/// Times are in one unit of your choosing (weeks in the literature) — the same for every
/// customer of a fit, and the unit of the fitted `alpha` and of every horizon you ask about.
///
/// # Errors
/// [`ChurnError::InvalidSummary`] when `recency` or `age` is negative or not finite, when
/// `recency` exceeds `age`, or when `frequency` is 0 and `recency` is not.
///
/// ```
/// use coupons::targeting::churn::Summary;
/// let s = Summary::new(2, 30.43, 38.86)?;
/// assert_eq!(s.frequency(), 2);
/// assert!(Summary::new(0, 3.0, 10.0).is_err()); // no repeat purchase, yet a recency
/// assert!(Summary::new(1, 12.0, 10.0).is_err()); // last purchase after the period's end
/// # Ok::<(), coupons::targeting::churn::ChurnError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "SummaryRepr", into = "SummaryRepr")
)]
pub struct Summary {
    frequency: u32,
    recency: f64,
    age: f64,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryRepr {
    frequency: u32,
    recency: f64,
    age: f64,
}

#[cfg(feature = "serde")]
impl TryFrom<SummaryRepr> for Summary {
    type Error = ChurnError;
    fn try_from(s: SummaryRepr) -> Result<Self, ChurnError> {
        Summary::new(s.frequency, s.recency, s.age)
    }
}

#[cfg(feature = "serde")]
impl From<Summary> for SummaryRepr {
    fn from(s: Summary) -> Self {
        SummaryRepr {
            frequency: s.frequency,
            recency: s.recency,
            age: s.age,
        }
    }
}

impl Summary {
    /// A summary of `frequency` repeat purchases, the last at `recency`, for a customer of
    /// `age` (see the type's docs).
    ///
    /// # Errors
    /// [`ChurnError::InvalidSummary`], as listed on the type.
    pub fn new(frequency: u32, recency: f64, age: f64) -> Result<Summary, ChurnError> {
        let bad = |field, value, reason| ChurnError::InvalidSummary {
            field,
            value,
            reason,
        };
        if !age.is_finite() || age < 0.0 {
            return Err(bad("age", age, "is not a finite non-negative time"));
        }
        if !recency.is_finite() || recency < 0.0 {
            return Err(bad("recency", recency, "is not a finite non-negative time"));
        }
        if recency > age {
            return Err(bad(
                "recency",
                recency,
                "is after the end of the period (age)",
            ));
        }
        if frequency == 0 && recency != 0.0 {
            return Err(bad(
                "recency",
                recency,
                "must be 0 without repeat purchases",
            ));
        }
        Ok(Summary {
            frequency,
            recency,
            age,
        })
    }

    /// The number of repeat purchases, `x`.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// The time of the last purchase since the first, `t_x`.
    pub fn recency(&self) -> f64 {
        self.recency
    }

    /// The time from the first purchase to the end of the period, `T`.
    pub fn age(&self) -> f64 {
        self.age
    }
}

/// The BG/NBD model: purchase rates `λ ~ Gamma(r, alpha)` (shape `r`, rate `alpha`, in the
/// summaries' time unit) and drop-out probabilities after each purchase `p ~ Beta(a, b)`.
///
/// Build it from known parameters with [`BgNbd::new`] or estimate them with [`BgNbd::fit`].
///
/// # Errors
/// [`ChurnError::InvalidParameter`] when a parameter is not finite and positive.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "BgNbdRepr", into = "BgNbdRepr")
)]
pub struct BgNbd {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BgNbdRepr {
    r: f64,
    alpha: f64,
    a: f64,
    b: f64,
}

#[cfg(feature = "serde")]
impl TryFrom<BgNbdRepr> for BgNbd {
    type Error = ChurnError;
    fn try_from(p: BgNbdRepr) -> Result<Self, ChurnError> {
        BgNbd::new(p.r, p.alpha, p.a, p.b)
    }
}

#[cfg(feature = "serde")]
impl From<BgNbd> for BgNbdRepr {
    fn from(m: BgNbd) -> Self {
        BgNbdRepr {
            r: m.r,
            alpha: m.alpha,
            a: m.a,
            b: m.b,
        }
    }
}

fn check_horizon(t: f64) -> Result<f64, ChurnError> {
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(ChurnError::InvalidArgument {
            name: "horizon",
            value: t,
            reason: "must be a finite non-negative time",
        })
    }
}

impl BgNbd {
    /// A model with the given parameters.
    ///
    /// # Errors
    /// [`ChurnError::InvalidParameter`] naming the first parameter that is not finite and
    /// positive.
    pub fn new(r: f64, alpha: f64, a: f64, b: f64) -> Result<BgNbd, ChurnError> {
        for (name, value) in [("r", r), ("alpha", alpha), ("a", a), ("b", b)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ChurnError::InvalidParameter { name, value });
            }
        }
        Ok(BgNbd { r, alpha, a, b })
    }

    /// The shape of the purchase-rate distribution.
    pub fn r(&self) -> f64 {
        self.r
    }

    /// The rate (inverse scale) of the purchase-rate distribution, in the summaries' time unit.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The first shape of the drop-out distribution.
    pub fn a(&self) -> f64 {
        self.a
    }

    /// The second shape of the drop-out distribution.
    pub fn b(&self) -> f64 {
        self.b
    }

    /// Fits the model by maximum likelihood with the default [`FitOptions`].
    ///
    /// # Errors
    /// As [`BgNbd::fit_with`].
    pub fn fit(customers: &[Summary]) -> Result<Fit, ChurnError> {
        BgNbd::fit_with(customers, &FitOptions::default())
    }

    /// Fits the model by maximum likelihood (see the module docs for the method and its
    /// stopping rule).
    ///
    /// # Errors
    /// - [`ChurnError::NotEnoughData`] when no customer has a repeat purchase;
    /// - [`ChurnError::NotConverged`] after the iteration limit;
    /// - [`ChurnError::Unbounded`] when a parameter runs past 1e8 or below 1e-8, or the search
    ///   stalls with a parameter past 1e4 or below 1e-4 where the likelihood does not curve
    ///   down (the data has no interior maximum; the error carries the limit estimate).
    pub fn fit_with(customers: &[Summary], options: &FitOptions) -> Result<Fit, ChurnError> {
        fit::fit(customers, options)
    }

    /// The log-likelihood of one customer's history (a log density: it may be positive).
    ///
    /// ```
    /// use coupons::targeting::churn::{BgNbd, Summary};
    /// let m = BgNbd::new(0.25, 4.0, 0.8, 2.5)?;
    /// let ll = m.log_likelihood(&Summary::new(200, 38.0, 40.0)?);
    /// assert!((ll - 100.795_693).abs() < 1e-6);
    /// # Ok::<(), coupons::targeting::churn::ChurnError>(())
    /// ```
    pub fn log_likelihood(&self, customer: &Summary) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(customer.frequency);
        let a3 = -(r + x) * (alpha + customer.age).ln();
        let base = r * alpha.ln() + a3;
        if customer.frequency == 0 {
            return base;
        }
        let a1 = ln_gamma(r + x) - ln_gamma(r);
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a4 = a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + customer.recency).ln();
        a1 + a2 + base + softplus(a4 - a3)
    }

    /// The sum of [`log_likelihood`](BgNbd::log_likelihood) over customers.
    pub fn total_log_likelihood(&self, customers: &[Summary]) -> f64 {
        customers.iter().map(|c| self.log_likelihood(c)).sum()
    }

    /// The log of the odds that the customer has dropped out, given their history.
    fn log_odds_dead(&self, c: &Summary) -> Option<f64> {
        if c.frequency == 0 {
            return None;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(c.frequency);
        // ln(a / (b + x - 1)) + (r + x) ln((alpha + T) / (alpha + t_x))
        let gap = ((c.age - c.recency) / (alpha + c.recency)).ln_1p();
        Some(a.ln() - (b + x - 1.0).ln() + (r + x) * gap)
    }

    /// The probability that the customer is still active at the end of the calibration period.
    ///
    /// Exactly 1 for a customer without repeat purchases (the model lets customers drop out
    /// only right after a purchase); it tends to 0, without overflow, for a frequent buyer who
    /// went silent long ago.
    ///
    /// ```
    /// use coupons::targeting::churn::{BgNbd, Summary};
    /// let m = BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4)?;
    /// assert_eq!(m.probability_alive(&Summary::new(0, 0.0, 1.0)?), 1.0);
    /// assert_eq!(m.probability_alive(&Summary::new(1000, 10.0, 100.0)?), 0.0);
    /// # Ok::<(), coupons::targeting::churn::ChurnError>(())
    /// ```
    pub fn probability_alive(&self, customer: &Summary) -> f64 {
        match self.log_odds_dead(customer) {
            None => 1.0,
            Some(lo) => sigmoid(-lo),
        }
    }

    /// The expected number of purchases in the `horizon` after the calibration period, given
    /// the customer's history (`E[X(T, T + t) | x, t_x, T]`, equation 10 of the paper).
    ///
    /// # Errors
    /// [`ChurnError::InvalidArgument`] for a negative or non-finite horizon;
    /// [`ChurnError::SeriesNotConverged`] for a horizon tens of thousands of times longer than
    /// `alpha + age`.
    pub fn expected_purchases(&self, customer: &Summary, horizon: f64) -> Result<f64, ChurnError> {
        let t = check_horizon(horizon)?;
        let alive = self.probability_alive(customer);
        if t == 0.0 || alive == 0.0 {
            return Ok(0.0);
        }
        Ok(alive * self.expected_if_alive(f64::from(customer.frequency), customer.age, t)?)
    }

    /// The expected number of purchases of a newly acquired customer in their first `horizon`
    /// (`E[X(t)]`, equation 7 of the paper; the first purchase is not counted).
    ///
    /// # Errors
    /// As [`expected_purchases`](BgNbd::expected_purchases).
    pub fn expected_purchases_of_new(&self, horizon: f64) -> Result<f64, ChurnError> {
        let t = check_horizon(horizon)?;
        if t == 0.0 {
            return Ok(0.0);
        }
        self.expected_if_alive(0.0, 0.0, t)
    }

    /// `E[X(T, T+t)] / P(alive)`: `(a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x;
    /// a+b+x-1; z)]` with `z = t/(α+T+t)`. After Euler's transformation the bracket is
    /// `1 - (1-z)^(a-1) ₂F₁(a+b-1-r, a-1; a+b+x-1; z)`, whose parameters do not grow with `x`,
    /// and the reduced series keeps the limits `a -> 1` and `a + b + x -> 1` finite.
    fn expected_if_alive(&self, x: f64, age: f64, t: f64) -> Result<f64, ChurnError> {
        let BgNbd { r, alpha, a, b } = *self;
        let c = a + b + x - 1.0;
        let z = t / (alpha + age + t);
        let ln_1mz = -(t / (alpha + age)).ln_1p();
        let bp = a - 1.0;
        let u = special::hyp2f1_reduced(a + b - 1.0 - r, bp, c, z).map_err(|e| {
            ChurnError::SeriesNotConverged {
                function: "hypergeometric 2F1",
                terms: e.terms,
            }
        })?;
        let y = bp * ln_1mz;
        // expm1(y) / bp, continuous at bp = 0.
        let e1 = if y == 0.0 {
            ln_1mz
        } else {
            ln_1mz * (y.exp_m1() / y)
        };
        Ok(-c * e1 - y.exp() * u)
    }

    /// The probability of exactly `n` purchases in the `horizon` after the calibration period,
    /// given the customer's history (`P(X(T, T + t) = n | x, t_x, T)`).
    ///
    /// ```
    /// use coupons::targeting::churn::{BgNbd, Summary};
    /// let m = BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4)?;
    /// let c = Summary::new(2, 30.43, 38.86)?;
    /// let total: f64 = (0..200).map(|n| m.probability_of_purchases(&c, n, 39.0).unwrap()).sum();
    /// assert!((total - 1.0).abs() < 1e-9);
    /// # Ok::<(), coupons::targeting::churn::ChurnError>(())
    /// ```
    ///
    /// # Errors
    /// [`ChurnError::InvalidArgument`] for a negative or non-finite horizon;
    /// [`ChurnError::SeriesNotConverged`] when `n` or the horizon is extreme (a sum of more
    /// than a million terms).
    pub fn probability_of_purchases(
        &self,
        customer: &Summary,
        n: u32,
        horizon: f64,
    ) -> Result<f64, ChurnError> {
        let t = check_horizon(horizon)?;
        let alive = self.probability_alive(customer);
        let if_alive = self.pmf_if_alive(f64::from(customer.frequency), customer.age, n, t)?;
        let dead = if n == 0 { 1.0 - alive } else { 0.0 };
        Ok(alive * if_alive + dead)
    }

    /// The probability that a newly acquired customer makes exactly `n` repeat purchases in
    /// their first `horizon` (`P(X(t) = n)`, equation 8 of the paper).
    ///
    /// # Errors
    /// As [`probability_of_purchases`](BgNbd::probability_of_purchases).
    pub fn probability_of_purchases_of_new(&self, n: u32, horizon: f64) -> Result<f64, ChurnError> {
        let t = check_horizon(horizon)?;
        self.pmf_if_alive(0.0, 0.0, n, t)
    }

    /// `P(n purchases in (T, T+t] | alive at T, x)`: with `λ | · ~ Gamma(r+x, α+T)` and
    /// `p | · ~ Beta(a, b+x)`, the customer either survives all `n` purchases and makes no
    /// further one, or drops out right after the `n`-th:
    /// `B(a, b+x+n)/B(a, b+x) · NB(n) + [n>0] B(a+1, b+x+n-1)/B(a, b+x) · P(NB >= n)`,
    /// where `NB` is the negative binomial count of purchases at the posterior rates.
    fn pmf_if_alive(&self, x: f64, age: f64, n: u32, t: f64) -> Result<f64, ChurnError> {
        if t == 0.0 {
            return Ok(if n == 0 { 1.0 } else { 0.0 });
        }
        let BgNbd { r, alpha, a, b } = *self;
        let nb = NegBinomial::new(r + x, t / (alpha + age));
        let nf = f64::from(n);
        let base = ln_beta(a, b + x);
        let survive = (ln_beta(a, b + x + nf) - base + nb.ln_pmf(nf)).exp();
        if n == 0 {
            return Ok(survive);
        }
        let drop_out = (ln_beta(a + 1.0, b + x + nf - 1.0) - base).exp() * nb.tail(n)?;
        Ok(survive + drop_out)
    }
}

/// The negative binomial count `P(N = j) = Γ(s+j)/(Γ(s) j!) (1-z)^s z^j`, with
/// `z = o / (1 + o)` for the odds `o = t / (α + T)`.
struct NegBinomial {
    s: f64,
    ln_z: f64,
    ln_1mz: f64,
    z: f64,
    odds: f64,
}

impl NegBinomial {
    fn new(s: f64, odds: f64) -> NegBinomial {
        let ln_1mz = -odds.ln_1p();
        NegBinomial {
            s,
            ln_z: odds.ln() + ln_1mz,
            ln_1mz,
            z: odds / (1.0 + odds),
            odds,
        }
    }

    fn ln_pmf(&self, j: f64) -> f64 {
        ln_gamma(self.s + j) - ln_gamma(self.s) - ln_gamma(j + 1.0)
            + self.s * self.ln_1mz
            + j * self.ln_z
    }

    /// `P(N >= n)` for `n >= 1`: below the mode, one minus the head; above it, the tail summed
    /// directly (its terms fall geometrically).
    fn tail(&self, n: u32) -> Result<f64, ChurnError> {
        let not_converged = |terms| ChurnError::SeriesNotConverged {
            function: "negative binomial tail",
            terms,
        };
        let mode = ((self.s - 1.0) * self.odds).max(0.0);
        if f64::from(n) <= mode {
            if n > special::MAX_TERMS {
                return Err(not_converged(n));
            }
            // ln Σ_{j<n} pmf(j), accumulated in log space.
            let mut l = self.s * self.ln_1mz;
            let (mut max, mut sum) = (l, 1.0);
            for j in 1..n {
                let jf = f64::from(j);
                l += ((self.s + jf - 1.0) / jf).ln() + self.ln_z;
                if l > max {
                    sum = sum * (max - l).exp() + 1.0;
                    max = l;
                } else {
                    sum += (l - max).exp();
                }
            }
            let head = max + sum.ln();
            return Ok((-head.exp_m1()).max(0.0));
        }
        // Summed relative to pmf(n), so that a tail far out (pmf(n) near the underflow
        // threshold) still converges.
        let first = self.ln_pmf(f64::from(n));
        let mut term = 1.0;
        let mut sum = 1.0;
        let mut j = n;
        loop {
            let jf = f64::from(j);
            let ratio = (self.s + jf) / (jf + 1.0) * self.z;
            let q = ratio.max(self.z);
            if term < 1e-300 || (q < 1.0 && term * q <= 1e-17 * (1.0 - q) * sum) {
                return Ok((first + sum.ln()).exp().min(1.0));
            }
            if j - n >= special::MAX_TERMS {
                return Err(not_converged(j - n));
            }
            term *= ratio;
            sum += term;
            j += 1;
        }
    }
}

/// The customers whose probability of being alive is **below** `threshold`, each with that
/// probability: the churn-risk audience.
///
/// Customers are given with a key of your choosing (a [`UserId`](crate::id::UserId), an index…).
/// The lifecycle segments take these probabilities as their input; this is the plain selection.
///
/// ```
/// use coupons::targeting::churn::{at_risk, BgNbd, Summary};
/// let m = BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4)?;
/// let customers = [
///     ("ann", Summary::new(2, 30.43, 38.86)?), // bought recently
///     ("bob", Summary::new(6, 5.0, 38.86)?),   // bought often, then stopped
///     ("cy", Summary::new(0, 0.0, 38.86)?),    // never came back, but never showed a habit
/// ];
/// let risk = at_risk(&m, 0.3, customers)?;
/// assert_eq!(risk.keys().copied().collect::<Vec<_>>(), ["bob"]);
/// # Ok::<(), coupons::targeting::churn::ChurnError>(())
/// ```
///
/// # Errors
/// [`ChurnError::InvalidArgument`] when `threshold` is not in `[0, 1]`.
pub fn at_risk<K, S, I>(
    model: &BgNbd,
    threshold: f64,
    customers: I,
) -> Result<BTreeMap<K, f64>, ChurnError>
where
    K: Ord,
    S: Borrow<Summary>,
    I: IntoIterator<Item = (K, S)>,
{
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ChurnError::InvalidArgument {
            name: "threshold",
            value: threshold,
            reason: "must be a probability in [0, 1]",
        });
    }
    Ok(customers
        .into_iter()
        .filter_map(|(k, s)| {
            let p = model.probability_alive(s.borrow());
            (p < threshold).then_some((k, p))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdnow() -> BgNbd {
        BgNbd::new(0.242_592_9, 4.413_531_6, 0.792_886_1, 2.425_753_4).unwrap()
    }

    #[test]
    fn log_likelihood_matches_published_spot_values() {
        let m = BgNbd::new(0.25, 4.0, 0.8, 2.5).unwrap();
        let zero = m.log_likelihood(&Summary::new(0, 0.0, 40.0).unwrap());
        assert!((zero - -0.599_473_818_199_592_6).abs() < 1e-12, "{zero}");
        let many = m.log_likelihood(&Summary::new(200, 38.0, 40.0).unwrap());
        assert!((many - 100.795_693_092_706_39).abs() < 1e-9, "{many}");
    }

    #[test]
    fn log_likelihood_stays_finite_for_thousands_of_purchases() {
        let m = cdnow();
        for x in [1_000, 5_000, 100_000, u32::MAX] {
            for (tx, t) in [(0.0, 0.0), (1.0, 100.0), (99.0, 100.0)] {
                let ll = m.log_likelihood(&Summary::new(x, tx, t).unwrap());
                assert!(ll.is_finite(), "x = {x}: {ll}");
            }
        }
    }

    #[test]
    fn probability_alive_matches_published_values_and_extremes() {
        let m = cdnow();
        let p = m.probability_alive(&Summary::new(2, 30.43, 38.86).unwrap());
        assert!((p - 0.726_609_161_891_800_5).abs() < 1e-12, "{p}");
        assert_eq!(
            m.probability_alive(&Summary::new(0, 0.0, 1.0).unwrap()),
            1.0
        );
        assert_eq!(
            m.probability_alive(&Summary::new(1000, 10.0, 100.0).unwrap()),
            0.0
        );
        // A purchase at the very end of the period: alive with probability 1 - a/(b+x-1)·1.
        let p = m.probability_alive(&Summary::new(1, 10.0, 10.0).unwrap());
        assert!((p - 1.0 / (1.0 + 0.792_886_1 / 2.425_753_4)).abs() < 1e-15);
    }

    #[test]
    fn expected_purchases_matches_published_value() {
        let e = cdnow()
            .expected_purchases(&Summary::new(2, 30.43, 38.86).unwrap(), 39.0)
            .unwrap();
        // mpmath at 40 digits with the same parameters: 1.2259104749794063.
        assert!((e - 1.225_910_474_979_406_3).abs() < 1e-12, "{e}");
    }

    #[test]
    fn expectation_is_continuous_through_a_equal_one() {
        let c = Summary::new(3, 20.0, 30.0).unwrap();
        let at = |a: f64| {
            BgNbd::new(0.5, 3.0, a, 2.0)
                .unwrap()
                .expected_purchases(&c, 25.0)
                .unwrap()
        };
        let (below, exact, above) = (at(1.0 - 1e-7), at(1.0), at(1.0 + 1e-7));
        assert!(exact.is_finite() && exact > 0.0);
        assert!((below - exact).abs() < 1e-6 && (above - exact).abs() < 1e-6);
    }

    #[test]
    fn expectation_of_new_customer_is_the_mean_of_its_pmf() {
        let m = cdnow();
        for t in [1.0, 13.0, 52.0] {
            let e = m.expected_purchases_of_new(t).unwrap();
            let mean: f64 = (0..2000u32)
                .map(|n| f64::from(n) * m.probability_of_purchases_of_new(n, t).unwrap())
                .sum();
            assert!((e - mean).abs() < 1e-8, "t = {t}: {e} vs {mean}");
        }
    }

    #[test]
    fn conditional_pmf_sums_to_one_and_has_the_expected_mean() {
        let m = cdnow();
        for c in [
            Summary::new(0, 0.0, 20.0).unwrap(),
            Summary::new(2, 30.43, 38.86).unwrap(),
            Summary::new(40, 38.0, 39.0).unwrap(),
        ] {
            let ps: Vec<f64> = (0..3000u32)
                .map(|n| m.probability_of_purchases(&c, n, 39.0).unwrap())
                .collect();
            let total: f64 = ps.iter().sum();
            let mean: f64 = ps.iter().enumerate().map(|(n, p)| n as f64 * p).sum();
            assert!((total - 1.0).abs() < 1e-10, "{c:?}: {total}");
            let e = m.expected_purchases(&c, 39.0).unwrap();
            assert!((mean - e).abs() < 1e-8 * (1.0 + e), "{c:?}: {mean} vs {e}");
        }
    }

    #[test]
    fn pmf_at_zero_horizon_is_a_point_mass() {
        let m = cdnow();
        let c = Summary::new(2, 30.43, 38.86).unwrap();
        assert_eq!(m.probability_of_purchases(&c, 0, 0.0).unwrap(), 1.0);
        assert_eq!(m.probability_of_purchases(&c, 3, 0.0).unwrap(), 0.0);
        assert_eq!(m.expected_purchases(&c, 0.0).unwrap(), 0.0);
    }

    #[test]
    fn bad_arguments_are_typed_errors() {
        let m = cdnow();
        let c = Summary::new(1, 1.0, 2.0).unwrap();
        assert!(matches!(
            m.expected_purchases(&c, -1.0),
            Err(ChurnError::InvalidArgument { .. })
        ));
        assert!(matches!(
            m.expected_purchases(&c, f64::NAN),
            Err(ChurnError::InvalidArgument { .. })
        ));
        assert!(matches!(
            BgNbd::new(0.0, 1.0, 1.0, 1.0),
            Err(ChurnError::InvalidParameter { name: "r", .. })
        ));
        assert!(matches!(
            BgNbd::new(1.0, 1.0, f64::INFINITY, 1.0),
            Err(ChurnError::InvalidParameter { name: "a", .. })
        ));
        assert!(Summary::new(1, f64::NAN, 2.0).is_err());
        assert!(Summary::new(1, 1.0, -2.0).is_err());
        assert!(at_risk(&m, 1.5, [(1, c)]).is_err());
        // A horizon of ten million ages: the series refuses instead of looping.
        assert!(matches!(
            m.expected_purchases(&Summary::new(0, 0.0, 0.0).unwrap(), 1e9),
            Err(ChurnError::SeriesNotConverged { .. })
        ));
    }
}
