//! Time from claim to use: a histogram for people, exact percentiles while they fit, and a
//! mergeable log-bucket sketch beyond.

use std::borrow::Cow;
use std::fmt;

/// How many distinct durations (in whole seconds) a group keeps exactly. Past this, the group's
/// percentiles come from the sketch (within [`SKETCH_RELATIVE_ERROR`]).
pub const EXACT_DISTINCT: usize = 1024;

/// The sketch's worst relative error of a percentile: 1/64 (about 1.6 %). Values below
/// 32 seconds are kept exactly.
pub const SKETCH_RELATIVE_ERROR: f64 = 1.0 / 64.0;

/// The upper bounds (exclusive, in seconds) of the histogram's bins: under an hour, 1–6 h,
/// 6–24 h, 1–3 days, 3–7 days, 7–30 days; the last bin holds 30 days and more.
pub const BIN_BOUNDS: [u64; 6] = [3_600, 21_600, 86_400, 259_200, 604_800, 2_592_000];

/// The labels of the histogram's bins, in order.
pub const BIN_LABELS: [&str; 7] = ["<1h", "1-6h", "6-24h", "1-3d", "3-7d", "7-30d", ">=30d"];

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;

/// The sketch bucket of a value: values below 32 have their own bucket; above, each power of
/// two is cut into 32 equal buckets.
fn bucket(v: u64) -> u16 {
    if v < SUB {
        return v as u16;
    }
    let e = 63 - v.leading_zeros(); // ≥ 5
    let m = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + m) as u16
}

/// The value a bucket stands for: the middle of its range (exact below 32).
fn representative(b: u16) -> u64 {
    let b = u64::from(b);
    if b < SUB {
        return b;
    }
    let e = (b - SUB) / SUB + u64::from(SUB_BITS);
    let m = (b - SUB) % SUB;
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let lower = (SUB + m) << (e - u64::from(SUB_BITS));
    lower + (width - 1) / 2
}

/// A percentile and whether it is exact or from the sketch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Percentile {
    /// The value, in seconds.
    pub secs: u64,
    /// Whether it is the exact order statistic (else within [`SKETCH_RELATIVE_ERROR`] of it).
    pub exact: bool,
}

impl fmt::Display for Percentile {
    /// As `3h12m`, `2d4h`, `45s`, with `~` in front when approximate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.exact {
            f.write_str("~")?;
        }
        f.write_str(&human(self.secs))
    }
}

/// Seconds for people: `45s`, `12m30s`, `3h12m`, `2d4h`.
pub fn human(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Durations from claim to use of a group's coupons, in whole seconds (a coupon used before
/// the recorded claim time counts as 0).
///
/// Kept three ways, all of which merge exactly: a fixed histogram ([`BIN_LABELS`]); the exact
/// multiset of values while it has at most [`EXACT_DISTINCT`] distinct values; and a sketch
/// that counts values in logarithmic buckets (32 per power of two), whose percentiles are
/// within [`SKETCH_RELATIVE_ERROR`] of the exact ones. Memory is bounded per group: at most
/// [`EXACT_DISTINCT`] exact entries and about 1,200 sketch buckets, whatever the number of
/// coupons.
///
/// Whether the exact values are kept depends only on the set of values, so merging
/// partitions gives the same result as one pass over all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "DurationsRepr", into = "DurationsRepr")
)]
pub struct Durations {
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
    bins: [u64; 7],
    exact: Option<Counts<u64>>,
    sketch: Counts<u16>,
}

/// Up to how many entries [`Counts::add`] scans rather than searches.
const SCAN: usize = 32;

/// Counts by value, sorted by value (a small sorted vector: a group holds at most
/// [`EXACT_DISTINCT`] exact values and about 1,200 sketch buckets, usually far fewer).
///
/// The sketch is kept only once the exact values no longer fit: until then it is made from
/// them when asked for (the same buckets), so a push updates one vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Counts<K>(Vec<(K, u64)>);

impl<K: Ord + Copy> Counts<K> {
    #[inline]
    fn add(&mut self, k: K, n: u64) {
        // A short vector (most groups') is scanned: the processor loads its lines together,
        // where each step of a binary search waits for the load before it — and a group's
        // vector is rarely in cache when one of its coupons is used.
        let i = if self.0.len() <= SCAN {
            self.0.iter().position(|e| e.0 >= k).unwrap_or(self.0.len())
        } else {
            self.0.partition_point(|e| e.0 < k)
        };
        match self.0.get_mut(i) {
            Some(e) if e.0 == k => e.1 = e.1.saturating_add(n),
            _ => self.0.insert(i, (k, n)),
        }
    }
    /// Adds every count of `other`.
    fn merge(&mut self, other: &Counts<K>) {
        if other.0.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (self.0.get(i).copied(), other.0.get(j).copied()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    i += 1;
                    j += 1;
                    (x.0, x.1.saturating_add(y.1))
                }
                (Some(x), Some(y)) if x.0 < y.0 => {
                    i += 1;
                    x
                }
                (_, Some(y)) => {
                    j += 1;
                    y
                }
                (Some(x), None) => {
                    i += 1;
                    x
                }
                (None, None) => break,
            };
            out.push(next);
        }
        self.0 = out;
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        self.0.iter().copied()
    }
    /// From pairs in any order; of pairs with the same value, the last is kept (as a map
    /// built from them would).
    #[cfg(feature = "serde")]
    fn from_pairs(mut v: Vec<(K, u64)>) -> Counts<K> {
        v.reverse();
        v.sort_by_key(|e| e.0);
        v.dedup_by(|later, first| later.0 == first.0);
        Counts(v)
    }
}

impl Default for Durations {
    fn default() -> Durations {
        Durations::new()
    }
}

impl Durations {
    /// No durations.
    pub fn new() -> Durations {
        Durations {
            count: 0,
            sum: 0,
            min: 0,
            max: 0,
            bins: [0; 7],
            exact: Some(Counts::default()),
            sketch: Counts::default(),
        }
    }

    /// Adds one duration.
    pub fn push(&mut self, secs: u64) {
        if self.count == 0 {
            self.min = secs;
            self.max = secs;
        } else {
            self.min = self.min.min(secs);
            self.max = self.max.max(secs);
        }
        self.count = self.count.saturating_add(1);
        self.sum = self.sum.saturating_add(u128::from(secs));
        let bin = BIN_BOUNDS.iter().take_while(|&&b| secs >= b).count();
        if let Some(b) = self.bins.get_mut(bin) {
            *b = b.saturating_add(1);
        }
        match &mut self.exact {
            Some(exact) => {
                if exact.0.is_empty() {
                    exact.0.reserve(8);
                }
                exact.add(secs, 1);
                if exact.len() > EXACT_DISTINCT {
                    self.overflow();
                }
            }
            None => self.sketch.add(bucket(secs), 1),
        }
    }

    /// The sketch of the exact values (kept only once they no longer fit).
    fn sketch_of(exact: &Counts<u64>) -> Counts<u16> {
        let mut sketch = Counts::default();
        for (v, n) in exact.iter() {
            sketch.add(bucket(v), n);
        }
        sketch
    }

    /// The exact values no longer fit: from now on, the sketch.
    #[cold]
    fn overflow(&mut self) {
        if let Some(exact) = self.exact.take() {
            let mut sketch = Durations::sketch_of(&exact);
            sketch.merge(&self.sketch);
            self.sketch = sketch;
        }
    }

    /// The sketch: kept once the values no longer fit, else made from the exact values.
    fn sketch(&self) -> Cow<'_, Counts<u16>> {
        match &self.exact {
            Some(exact) => Cow::Owned(Durations::sketch_of(exact)),
            None => Cow::Borrowed(&self.sketch),
        }
    }

    /// Adds another group's durations: the same as pushing them one by one.
    pub fn merge(&mut self, other: &Durations) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count = self.count.saturating_add(other.count);
        self.sum = self.sum.saturating_add(other.sum);
        for (a, b) in self.bins.iter_mut().zip(other.bins) {
            *a = a.saturating_add(b);
        }
        match (&mut self.exact, &other.exact) {
            (Some(a), Some(b)) => {
                a.merge(b);
                if a.len() > EXACT_DISTINCT {
                    self.overflow();
                }
            }
            _ => {
                self.overflow();
                self.sketch.merge(&other.sketch());
            }
        }
    }

    /// What a push reads after the durations themselves: the first of the values (the
    /// report's batch of pushes loads it ahead of the push).
    #[inline]
    pub(super) fn first_value(&self) -> u64 {
        match &self.exact {
            Some(exact) => exact.0.first().map_or(0, |e| e.1),
            None => self.sketch.0.first().map_or(0, |e| e.1),
        }
    }

    /// How many durations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean in seconds, if any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The histogram: counts per bin of [`BIN_LABELS`].
    pub fn bins(&self) -> [u64; 7] {
        self.bins
    }

    /// Whether percentiles are exact (the values still fit).
    pub fn is_exact(&self) -> bool {
        self.exact.is_some()
    }

    /// The `q`-th quantile (`0 ≤ q ≤ 1`) by nearest rank: the value at rank `⌈q·n⌉` (the
    /// smallest for `q = 0`), exact while the values fit, else the sketch's bucket value
    /// (clamped to the exact minimum and maximum). `None` when empty or `q` is outside `[0, 1]`.
    ///
    /// ```
    /// use coupons::analytics::report::Durations;
    /// let mut d = Durations::new();
    /// for s in [60, 120, 180, 240] { d.push(s); }
    /// assert_eq!(d.percentile(0.5).map(|p| p.secs), Some(120));
    /// assert_eq!(d.percentile(0.9).map(|p| p.to_string()), Some("4m0s".into()));
    /// ```
    pub fn percentile(&self, q: f64) -> Option<Percentile> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let pick = |pairs: &mut dyn Iterator<Item = (u64, u64)>| {
            let mut seen = 0u64;
            for (v, n) in pairs {
                seen += n;
                if seen >= rank {
                    return Some(v);
                }
            }
            None
        };
        match &self.exact {
            Some(exact) => pick(&mut exact.iter()).map(|secs| Percentile { secs, exact: true }),
            None => {
                pick(&mut self.sketch.iter().map(|(b, n)| (representative(b), n))).map(|secs| {
                    Percentile {
                        secs: secs.clamp(self.min, self.max),
                        exact: false,
                    }
                })
            }
        }
    }

    /// The percentile from the sketch alone, even while exact values are kept (to check its
    /// error).
    pub fn sketch_percentile(&self, q: f64) -> Option<u64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        for (b, n) in self.sketch().iter() {
            seen += n;
            if seen >= rank {
                return Some(representative(b).clamp(self.min, self.max));
            }
        }
        None
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct DurationsRepr {
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
    bins: [u64; 7],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<Vec<(u64, u64)>>,
    sketch: Vec<(u16, u64)>,
}

#[cfg(feature = "serde")]
impl From<Durations> for DurationsRepr {
    fn from(d: Durations) -> DurationsRepr {
        DurationsRepr {
            count: d.count,
            sum: d.sum,
            min: d.min,
            max: d.max,
            bins: d.bins,
            sketch: d.sketch().into_owned().0,
            exact: d.exact.map(|e| e.0),
        }
    }
}

#[cfg(feature = "serde")]
impl TryFrom<DurationsRepr> for Durations {
    type Error = String;
    fn try_from(r: DurationsRepr) -> Result<Durations, String> {
        let total = |it: &mut dyn Iterator<Item = u64>| it.fold(0u64, u64::saturating_add);
        if total(&mut r.bins.iter().copied()) != r.count
            || total(&mut r.sketch.iter().map(|p| p.1)) != r.count
            || r.exact
                .as_ref()
                .is_some_and(|e| total(&mut e.iter().map(|p| p.1)) != r.count)
        {
            return Err("durations: the histogram, sketch and exact counts disagree".into());
        }
        if r.exact.as_ref().is_some_and(|e| e.len() > EXACT_DISTINCT) {
            return Err(format!(
                "durations: more than {EXACT_DISTINCT} exact values"
            ));
        }
        Ok(Durations {
            count: r.count,
            sum: r.sum,
            min: r.min,
            max: r.max,
            bins: r.bins,
            // While the exact values are kept, the sketch is made from them.
            sketch: match r.exact {
                Some(_) => Counts::default(),
                None => Counts::from_pairs(r.sketch),
            },
            exact: r.exact.map(Counts::from_pairs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_the_relative_error() {
        for v in (0..200_000u64).chain([u64::MAX / 3, 1 << 40, (1 << 40) - 1]) {
            let r = representative(bucket(v));
            let err = (r as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= SKETCH_RELATIVE_ERROR, "{v} → {r}");
            if v < 32 {
                assert_eq!(r, v);
            }
        }
    }

    #[test]
    fn exact_until_too_many_distinct_values() {
        let mut d = Durations::new();
        for v in 0..EXACT_DISTINCT as u64 {
            d.push(v * 7);
        }
        assert!(d.is_exact());
        assert_eq!(
            d.percentile(1.0).unwrap().secs,
            (EXACT_DISTINCT as u64 - 1) * 7
        );
        d.push(1_000_000);
        assert!(!d.is_exact());
        let p = d.percentile(0.5).unwrap();
        assert!(!p.exact);
        assert_eq!(d.count(), EXACT_DISTINCT as u64 + 1);
        assert_eq!(human(93_784), "1d2h");
        assert_eq!(human(3_725), "1h2m");
        assert_eq!(d.percentile(1.5), None);
    }
}
