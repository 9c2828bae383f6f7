//! Views of a report along one dimension, as rows of derived figures and a plain-text table.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

use super::durations::Percentile;
use super::{GroupKey, Metrics, Report};
use crate::analytics::Rate;
use crate::money::{Currency, Money};

/// A dimension to add a report's groups up along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Dimension {
    /// By template.
    Template,
    /// By campaign.
    Campaign,
    /// By the channel coupons were issued through.
    Channel,
    /// By the users' segment.
    Segment,
    /// By experiment arm.
    Arm,
    /// By day, in the report's offset.
    Day,
    /// Everything in one row.
    Total,
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dimension::Template => "template",
            Dimension::Campaign => "campaign",
            Dimension::Channel => "channel",
            Dimension::Segment => "segment",
            Dimension::Arm => "arm",
            Dimension::Day => "day",
            Dimension::Total => "total",
        })
    }
}

/// The label of the group a key falls in along a dimension; `(none)` where the key has none.
fn label(key: &GroupKey, d: Dimension) -> String {
    let none = || "(none)".to_owned();
    match d {
        Dimension::Template => key.template.as_ref().map_or_else(none, |t| t.to_string()),
        Dimension::Campaign => key.campaign.as_ref().map_or_else(none, |t| t.to_string()),
        Dimension::Channel => key.channel.as_ref().map_or_else(none, |t| t.to_string()),
        Dimension::Segment => key.segment.as_ref().map_or_else(none, |t| t.to_string()),
        Dimension::Arm => key
            .arm
            .as_ref()
            .map_or_else(none, |t| t.as_str().to_owned()),
        Dimension::Day => key.day.to_string(),
        Dimension::Total => "total".to_owned(),
    }
}

/// `sum / n` in minor units, rounded half to even.
fn mean_minor(sum: i128, n: u64) -> Option<i128> {
    if n == 0 {
        return None;
    }
    let n = i128::from(n);
    let (q, r) = (sum.div_euclid(n), sum.rem_euclid(n));
    let twice = r * 2;
    Some(if twice > n || (twice == n && q % 2 != 0) {
        q + 1
    } else {
        q
    })
}

/// `a / b` rounded half to even to 4 decimals, when defined.
fn ratio(a: i128, b: i128) -> Option<Decimal> {
    let a = Decimal::try_from_i128_with_scale(a, 0).ok()?;
    let b = Decimal::try_from_i128_with_scale(b, 0).ok()?;
    a.checked_div(b)
        .map(|q| q.round_dp_with_strategy(4, RoundingStrategy::MidpointNearestEven))
        .map(|q| q.normalize())
}

/// One group of a [`Breakdown`]: its counters and the figures derived from them. Money is
/// exact (averages rounded half to even to the minor unit); ratios are rounded to 4 decimals.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Row {
    /// The group's label (`(none)` for events without one).
    pub group: String,
    /// Claimed of offered (`None` when more were claimed than offered).
    pub claim_rate: Option<Rate>,
    /// Used of claimed (`None` when more were used than claimed).
    pub usage_rate: Option<Rate>,
    /// The savings of the group's redeemed coupons.
    pub discount: Money,
    /// What the group's coupon orders paid.
    pub coupon_sales: Money,
    /// What refunds of the group's coupon orders paid back (partial and whole, counted on
    /// the refund's day).
    pub coupon_refunded: Money,
    /// Coupon sales less what their refunds paid back.
    pub net_coupon_sales: Money,
    /// Coupon sales ÷ discount.
    pub roi: Option<Decimal>,
    /// Average paid amount of the group's coupon orders.
    pub aov_with_coupon: Option<Money>,
    /// Average paid amount of orders without a coupon: the group's own when it has any (a
    /// day, a segment), else the whole report's.
    pub aov_without_coupon: Option<Money>,
    /// `aov_with_coupon ÷ aov_without_coupon − 1`.
    pub aov_lift: Option<Decimal>,
    /// New claimers of the claims whose owner's newness is known.
    pub new_user_rate: Option<Rate>,
    /// Coupon orders whose buyer bought again within the window, of those decided.
    pub repurchase_rate: Option<Rate>,
    /// Median time from claim to use.
    pub time_to_use_p50: Option<Percentile>,
    /// 90th percentile of time from claim to use.
    pub time_to_use_p90: Option<Percentile>,
    /// The face value of the expired coupons the lookup valued (`None` when it valued none).
    pub expired_value: Option<Money>,
    /// The face value of the voided coupons the lookup valued (`None` when it valued none).
    pub voided_value: Option<Money>,
    /// What the refunded coupons had saved in their orders (`None` when no event carried it).
    pub refunded_saving: Option<Money>,
    /// The counters.
    pub metrics: Metrics,
}

/// A report added up along one dimension: one [`Row`] per group, sorted by label. Renders as
/// a plain-text table.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Breakdown {
    /// The dimension.
    pub dimension: Dimension,
    /// The currency of every amount.
    pub currency: Currency,
    /// The rows, by label.
    pub rows: Vec<Row>,
}

impl Report {
    /// The report added up along `dimension`.
    pub fn by(&self, dimension: Dimension) -> Breakdown {
        let mut groups: BTreeMap<String, Metrics> = BTreeMap::new();
        for (k, m) in self.groups() {
            groups.entry(label(k, dimension)).or_default().merge(m);
        }
        let total = self.total();
        let currency = self.config().currency();
        let money = |minor: i128| {
            Money::from_minor_i128(minor, currency).unwrap_or_else(|_| Money::zero(currency))
        };
        let baseline = mean_minor(total.plain_sales_minor, total.plain_orders);
        let rows = groups
            .into_iter()
            .map(|(group, m)| {
                let with = mean_minor(m.coupon_sales_minor, m.coupon_orders);
                let without = mean_minor(m.plain_sales_minor, m.plain_orders).or(baseline);
                let aov_lift = match (with, without) {
                    (Some(w), Some(wo)) if wo != 0 => ratio(w - wo, wo),
                    _ => None,
                };
                Row {
                    group,
                    claim_rate: m.claim_rate(),
                    usage_rate: m.usage_rate(),
                    discount: money(m.discount_minor),
                    coupon_sales: money(m.coupon_sales_minor),
                    coupon_refunded: money(m.coupon_refunded_minor),
                    net_coupon_sales: money(
                        m.coupon_sales_minor.saturating_sub(m.coupon_refunded_minor),
                    ),
                    roi: (m.discount_minor != 0)
                        .then(|| ratio(m.coupon_sales_minor, m.discount_minor))
                        .flatten(),
                    aov_with_coupon: with.map(money),
                    aov_without_coupon: without.map(money),
                    aov_lift,
                    new_user_rate: m.new_user_rate().filter(|r| !r.is_empty()),
                    repurchase_rate: m.repurchase_rate().filter(|r| !r.is_empty()),
                    time_to_use_p50: m.time_to_use.percentile(0.5),
                    time_to_use_p90: m.time_to_use.percentile(0.9),
                    expired_value: (m.expired_valued > 0).then(|| money(m.expired_value_minor)),
                    voided_value: (m.voided_valued > 0).then(|| money(m.voided_value_minor)),
                    refunded_saving: (m.refunded_valued > 0)
                        .then(|| money(m.refunded_saving_minor)),
                    metrics: m,
                }
            })
            .collect();
        Breakdown {
            dimension,
            currency,
            rows,
        }
    }
}

fn pct(r: Option<Rate>) -> String {
    r.and_then(|r| r.value())
        .map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl fmt::Display for Breakdown {
    /// A table, one line per group; amounts in the breakdown's currency without its code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = [
            self.dimension.to_string(),
            "offered".into(),
            "claimed".into(),
            "claim%".into(),
            "used".into(),
            "use%".into(),
            format!("discount {}", self.currency),
            format!("sales {}", self.currency),
            "orders".into(),
            "paid back".into(),
            "ROI".into(),
            "AOV".into(),
            "AOV w/o".into(),
            "lift".into(),
            "new%".into(),
            "p50 use".into(),
            "p90 use".into(),
            "expired".into(),
            "value".into(),
            "voided".into(),
            "value".into(),
            "refunded".into(),
            "saving".into(),
            "rebuy%".into(),
        ];
        let amount = |m: &Money| m.amount().to_string();
        let lines: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let m = &r.metrics;
                vec![
                    r.group.clone(),
                    m.offered.to_string(),
                    m.claimed.to_string(),
                    pct(r.claim_rate),
                    m.used.to_string(),
                    pct(r.usage_rate),
                    amount(&r.discount),
                    amount(&r.coupon_sales),
                    m.coupon_orders.to_string(),
                    amount(&r.coupon_refunded),
                    opt(r.roi),
                    opt(r.aov_with_coupon.as_ref().map(amount)),
                    opt(r.aov_without_coupon.as_ref().map(amount)),
                    opt(r
                        .aov_lift
                        .map(|l| format!("{:+.1}%", l * Decimal::ONE_HUNDRED))),
                    pct(r.new_user_rate),
                    opt(r.time_to_use_p50),
                    opt(r.time_to_use_p90),
                    m.expired.to_string(),
                    opt(r.expired_value.as_ref().map(amount)),
                    m.voided.to_string(),
                    opt(r.voided_value.as_ref().map(amount)),
                    m.refunded.to_string(),
                    opt(r.refunded_saving.as_ref().map(amount)),
                    pct(r.repurchase_rate),
                ]
            })
            .collect();
        let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l) {
                *w = (*w).max(c.chars().count());
            }
        }
        let row = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    write!(f, "{c}{}", " ".repeat(pad))?;
                } else {
                    write!(f, "  {}{c}", " ".repeat(pad))?;
                }
            }
            writeln!(f)
        };
        row(f, &head)?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        row(f, &rule)?;
        for l in &lines {
            row(f, l)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_round_half_to_even() {
        assert_eq!(mean_minor(5, 2), Some(2));
        assert_eq!(mean_minor(7, 2), Some(4));
        assert_eq!(mean_minor(-5, 2), Some(-2));
        assert_eq!(mean_minor(10, 3), Some(3));
        assert_eq!(mean_minor(11, 3), Some(4));
        assert_eq!(mean_minor(1, 0), None);
        assert_eq!(ratio(205, 25).map(|d| d.to_string()), Some("8.2".into()));
        assert_eq!(ratio(1, 3).map(|d| d.to_string()), Some("0.3333".into()));
    }
}
