//! The error of rates, sample summaries and significance tests.

/// A rate, sample summary or statistical test got input it cannot use.
///
/// Every statistic either comes back finite and meaningful or as one of these: no `NaN` is ever
/// returned in its place.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// A rate with more successes than trials.
    #[error("{num} out of {den}: a rate cannot count more successes than trials")]
    RateAboveOne {
        /// The numerator as given.
        num: u64,
        /// The denominator as given.
        den: u64,
    },
    /// A count or sum grew past what its type holds.
    #[error("{what} overflowed")]
    Overflow {
        /// What overflowed, e.g. `"rate denominator"`.
        what: &'static str,
    },
    /// A rate with no trials, where a test needs some.
    #[error("{which}: no trials (the denominator is 0)")]
    EmptyRate {
        /// Which input, e.g. `"a"` or `"control"`.
        which: &'static str,
    },
    /// Every trial of both groups succeeded, or none did: the pooled variance is 0 and the
    /// test statistic is undefined.
    #[error("{what}: every trial succeeded or none did, so there is no variation to test")]
    NoVariation {
        /// What has no variation.
        what: &'static str,
    },
    /// Fewer observations than a statistic needs.
    #[error("{which}: {n} observations, at least {min} are needed")]
    TooFewSamples {
        /// Which input.
        which: &'static str,
        /// How many there are.
        n: u64,
        /// How many are needed.
        min: u64,
    },
    /// An input or an intermediate result that is infinite or not a number.
    #[error("{what} is not a finite number ({value})")]
    NonFinite {
        /// What was not finite.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A value outside the range it must lie in.
    #[error("{what} is {value}, outside {range}")]
    OutOfRange {
        /// Which value, e.g. `"alpha"`.
        what: &'static str,
        /// The value as given.
        value: f64,
        /// The allowed range, e.g. `"(0, 1)"`.
        range: &'static str,
    },
    /// Both samples are constant: the standard error of the difference is 0.
    #[error("{what}: both samples have zero variance")]
    ZeroVariance {
        /// What has no variance.
        what: &'static str,
    },
    /// A relative change against a baseline of 0.
    #[error("{which} is 0: a relative change against it is undefined")]
    ZeroBaseline {
        /// Which baseline.
        which: &'static str,
    },
    /// A sample size asked for an effect of 0, which no sample size can detect.
    #[error("the expected value equals the baseline: there is no effect to detect")]
    NoEffect,
    /// A one-sided design whose effect points the other way.
    #[error("the expected effect points against the one-sided alternative")]
    EffectAgainstAlternative,
    /// A sample size beyond `u64`, or an effect too small to ever detect in practice.
    #[error("the sample size needed ({value:e} per arm) is beyond any experiment")]
    SampleSizeTooLarge {
        /// The exact size per arm.
        value: f64,
    },
    /// Observed counts for a different number of arms than the experiment has.
    #[error("{got} observed counts for an experiment with {expected} arms")]
    ArmCount {
        /// How many arms the experiment has.
        expected: usize,
        /// How many counts were given.
        got: usize,
    },
    /// A goodness-of-fit check over no observations.
    #[error("no observations to check")]
    NoObservations,
}
