//! The merchant's campaign page: the library's campaign report (`coupons::analytics::report`),
//! folded from the event feed and kept up to date by [`App::report`], drawn as inline SVG
//! charts ([`charts`](crate::charts)) and a table of the metrics per template.
//!
//! - coupons claimed and used per day (in the report's UTC offset);
//! - the funnel offered → claimed → used per template, with the claim rate (claimed ÷ offered)
//!   and the usage rate (used ÷ claimed);
//! - the discount given and the coupon-driven sales (what coupon orders paid) per day;
//! - the same funnel per experiment arm, when coupons carry one (offers are put in the arm
//!   [`App::with_offer_arms`]'s experiment assigns their user);
//! - stock used per template: coupons issued of the template's total stock (the store's
//!   issued counter, the number the stock limit is enforced on);
//! - the totals: claim and usage rates, discount, coupon sales and orders, ROI (sales ÷
//!   discount), the average coupon order.
//!
//! `?campaign=ID` keeps only the groups of that campaign (coupons claimed in it; refusals and
//! orders without a coupon belong to no campaign).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use coupons::analytics::report::{Metrics, Report};
use coupons::id::{CampaignId, TemplateId};
use coupons::money::{Currency, Money};
use coupons::repository::{CounterKey, Repository};
use rust_decimal::{Decimal, RoundingStrategy};

use crate::app::{App, Reporting};
use crate::charts::{Bars, Meter, Series, Value, bar_chart, meter_chart, percent};
use crate::error::ApiError;
use crate::pages::{Names, error_page, esc, names, page, pairs};

/// Most days the per-day charts draw (the latest ones); the table counts every day.
pub const MAX_DAYS: i64 = 31;

/// The colours of the series, one per metric across charts.
const OFFERED: &str = "#9e9e9e";
const CLAIMED: &str = "#1f77b4";
const USED: &str = "#ff7f0e";
const DISCOUNT: &str = "#d62728";
const SALES: &str = "#2ca02c";

/// The report's groups added up for the page: per day, per template and in total, keeping
/// only one campaign's groups when asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// Per day, in the report's offset.
    pub by_day: BTreeMap<NaiveDate, Metrics>,
    /// Per template (groups without a template — orders without a coupon — are left out).
    pub by_template: BTreeMap<TemplateId, Metrics>,
    /// Per experiment arm (groups in no arm are left out).
    pub by_arm: BTreeMap<String, Metrics>,
    /// Everything kept.
    pub total: Metrics,
    /// The campaigns the report has seen (for the page's links).
    pub campaigns: BTreeSet<CampaignId>,
}

impl View {
    /// The report's groups, only `campaign`'s if given.
    pub fn of(report: &Report, campaign: Option<&str>) -> View {
        let mut v = View::default();
        for (key, m) in report.groups() {
            if let Some(c) = &key.campaign {
                v.campaigns.insert(c.clone());
            }
            if let Some(want) = campaign {
                if key.campaign.as_ref().map(CampaignId::as_str) != Some(want) {
                    continue;
                }
            }
            v.by_day.entry(key.day).or_default().merge(m);
            if let Some(t) = &key.template {
                v.by_template.entry(t.clone()).or_default().merge(m);
            }
            if let Some(a) = &key.arm {
                v.by_arm.entry(a.as_str().to_owned()).or_default().merge(m);
            }
            v.total.merge(m);
        }
        v
    }

    /// The days the per-day charts draw: every day from the first with events (at most
    /// [`MAX_DAYS`] back) to `today`, or to the last day with events if later; the last
    /// week when there are none.
    pub fn days(&self, today: NaiveDate) -> Vec<NaiveDate> {
        let last = self
            .by_day
            .keys()
            .next_back()
            .copied()
            .unwrap_or(today)
            .max(today);
        let earliest = last - Duration::days(MAX_DAYS - 1);
        let first = self
            .by_day
            .keys()
            .next()
            .copied()
            .unwrap_or(today - Duration::days(6))
            .clamp(earliest, last);
        first.iter_days().take_while(|d| *d <= last).collect()
    }
}

/// `minor` minor units of `currency` as an amount at its scale.
fn amount(minor: i128, currency: Currency) -> Decimal {
    Money::from_minor_i128(minor, currency)
        .map(|m| m.amount())
        .unwrap_or_default()
}

/// `num ÷ den` rounded half to even to `dp` decimals, when `den` is not zero.
fn ratio(num: i128, den: i128, dp: u32) -> Option<Decimal> {
    let n = Decimal::try_from_i128_with_scale(num, 0).ok()?;
    let d = Decimal::try_from_i128_with_scale(den, 0).ok()?;
    n.checked_div(d)
        .map(|q| q.round_dp_with_strategy(dp, RoundingStrategy::MidpointNearestEven))
}

/// Sales ÷ discount, rounded half to even to two decimals (and written with two).
pub fn roi(m: &Metrics) -> Option<Decimal> {
    let mut r = ratio(m.coupon_sales_minor, m.discount_minor, 2)?;
    r.rescale(2);
    Some(r)
}

/// What a coupon order paid on average, rounded half to even to the minor unit.
pub fn average_coupon_order(m: &Metrics, currency: Currency) -> Option<Decimal> {
    use rust_decimal::prelude::ToPrimitive;
    let minor = ratio(m.coupon_sales_minor, i128::from(m.coupon_orders), 0)?;
    Some(amount(minor.to_i128()?, currency))
}

/// `a of b` as a percentage, or `-` when `b` is zero.
fn rate(num: u64, den: u64) -> String {
    percent(num, den)
}

fn label(t: &TemplateId, names: &Names) -> String {
    names.get(t).cloned().unwrap_or_else(|| t.to_string())
}

/// Every figure the page shows, ready to render.
pub struct Page<'a> {
    /// The groups.
    pub view: &'a View,
    /// Where the report stands.
    pub reporting: &'a Reporting,
    /// Template names.
    pub names: &'a Names,
    /// Stock used of each template with a total stock.
    pub stock: Vec<Meter>,
    /// Templates shown that have no stock limit.
    pub unlimited: Vec<TemplateId>,
    /// The campaign asked for, and its name when known.
    pub campaign: Option<(String, Option<String>)>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The claimed-and-used chart.
pub fn claimed_used_chart(view: &View, days: &[NaiveDate]) -> String {
    let of = |d: &NaiveDate| view.by_day.get(d).cloned().unwrap_or_default();
    bar_chart(&Bars {
        id: "chart-claimed-used".into(),
        title: "Coupons claimed and used per day".into(),
        x_label: "day".into(),
        y_label: "coupons".into(),
        categories: days.iter().map(ToString::to_string).collect(),
        series: vec![
            Series {
                name: "claimed".into(),
                color: CLAIMED,
                values: days.iter().map(|d| Value::count(of(d).claimed)).collect(),
            },
            Series {
                name: "used".into(),
                color: USED,
                values: days.iter().map(|d| Value::count(of(d).used)).collect(),
            },
        ],
    })
}

/// A funnel chart: offered, claimed (with the claim rate) and used (with the usage rate) per
/// row.
pub fn funnel_chart(id: &str, title: &str, x_label: &str, rows: &[(String, &Metrics)]) -> String {
    let noted = |n: u64, of: u64| {
        let v = Value::count(n);
        if of == 0 { v } else { v.noted(rate(n, of)) }
    };
    bar_chart(&Bars {
        id: id.into(),
        title: title.into(),
        x_label: format!("{x_label} (claimed: % of offered; used: % of claimed)"),
        y_label: "coupons".into(),
        categories: rows.iter().map(|(l, _)| l.clone()).collect(),
        series: vec![
            Series {
                name: "offered".into(),
                color: OFFERED,
                values: rows.iter().map(|(_, m)| Value::count(m.offered)).collect(),
            },
            Series {
                name: "claimed".into(),
                color: CLAIMED,
                values: rows
                    .iter()
                    .map(|(_, m)| noted(m.claimed, m.offered))
                    .collect(),
            },
            Series {
                name: "used".into(),
                color: USED,
                values: rows.iter().map(|(_, m)| noted(m.used, m.claimed)).collect(),
            },
        ],
    })
}

/// The money chart: discount given and coupon-driven sales per day.
pub fn money_chart(view: &View, days: &[NaiveDate], currency: Currency) -> String {
    let of = |d: &NaiveDate| view.by_day.get(d).cloned().unwrap_or_default();
    bar_chart(&Bars {
        id: "chart-money".into(),
        title: format!("Discount given and coupon-driven sales per day ({currency})"),
        x_label: "day".into(),
        y_label: currency.to_string(),
        categories: days.iter().map(ToString::to_string).collect(),
        series: vec![
            Series {
                name: "discount".into(),
                color: DISCOUNT,
                values: days
                    .iter()
                    .map(|d| Value::amount(amount(of(d).discount_minor, currency)))
                    .collect(),
            },
            Series {
                name: "coupon sales".into(),
                color: SALES,
                values: days
                    .iter()
                    .map(|d| Value::amount(amount(of(d).coupon_sales_minor, currency)))
                    .collect(),
            },
        ],
    })
}

/// The page's body.
pub fn render(p: &Page<'_>) -> String {
    let report = &p.reporting.report;
    let currency = report.config().currency();
    let offset = report.config().offset();
    let today = p.now.with_timezone(&offset).date_naive();
    let view = p.view;
    let days = view.days(today);
    let t = &view.total;
    let mut b = String::new();
    let title = match &p.campaign {
        None => "All campaigns".to_owned(),
        Some((id, Some(name))) => format!("Campaign {name} ({id})"),
        Some((id, None)) => format!("Campaign {id}"),
    };
    let _ = write!(b, "<h1>{}</h1>", esc(&title));
    let _ = write!(
        b,
        "<p id=\"position\">{} events counted through sequence {}; days in UTC{offset}, amounts in {currency}.",
        report.events(),
        p.reporting.position
    );
    if p.reporting.skipped > 0 {
        let _ = write!(
            b,
            " {} events not counted ({}).",
            p.reporting.skipped,
            esc(p.reporting.first_skip.as_deref().unwrap_or(""))
        );
    }
    b.push_str("</p><p>");
    b.push_str(if p.campaign.is_some() {
        "<a href=\"/merchant/campaign\">All campaigns</a>"
    } else {
        "All campaigns"
    });
    for c in &view.campaigns {
        let _ = write!(
            b,
            " · <a href=\"/merchant/campaign?campaign={}\">{}</a>",
            esc(c.as_str()),
            esc(c.as_str())
        );
    }
    b.push_str("</p>");
    // The totals (seed 001 §7's figures).
    let money = |minor: i128| format!("{} {currency}", amount(minor, currency));
    let _ = write!(
        b,
        "<ul id=\"totals\">\
<li>Claimed <b data-metric=\"claimed\">{}</b> of <b data-metric=\"offered\">{}</b> offered (claim rate <b data-metric=\"claim_rate\">{}</b>)</li>\
<li>Used <b data-metric=\"used\">{}</b> (usage rate <b data-metric=\"usage_rate\">{}</b> of claimed)</li>\
<li>Discount given <b data-metric=\"discount\">{}</b>; coupon-driven sales <b data-metric=\"coupon_sales\">{}</b> in <b data-metric=\"coupon_orders\">{}</b> orders</li>\
<li>ROI (sales ÷ discount) <b data-metric=\"roi\">{}</b>; average coupon order <b data-metric=\"aov\">{}</b></li>\
<li>Released <b data-metric=\"released\">{}</b>, expired <b data-metric=\"expired\">{}</b>, voided <b data-metric=\"voided\">{}</b>, refunded <b data-metric=\"refunded\">{}</b>, claims refused <b data-metric=\"refused\">{}</b></li>\
</ul>",
        t.claimed,
        t.offered,
        rate(t.claimed, t.offered),
        t.used,
        rate(t.used, t.claimed),
        money(t.discount_minor),
        money(t.coupon_sales_minor),
        t.coupon_orders,
        roi(t).map_or_else(|| "-".to_owned(), |r| r.to_string()),
        average_coupon_order(t, currency)
            .map_or_else(|| "-".to_owned(), |a| format!("{a} {currency}")),
        t.released,
        t.expired,
        t.voided,
        t.refunded,
        t.refused,
    );
    b.push_str("<h2>Over time</h2>");
    b.push_str(&claimed_used_chart(view, &days));
    b.push_str(&money_chart(view, &days, currency));
    if let (Some(first), Some(shown)) = (view.by_day.keys().next(), days.first()) {
        if first < shown {
            let _ = write!(
                b,
                "<p>Days before {shown} are counted in the totals, not drawn.</p>"
            );
        }
    }
    b.push_str("<h2>By template</h2>");
    let rows: Vec<(String, &Metrics)> = view
        .by_template
        .iter()
        .map(|(t, m)| (label(t, p.names), m))
        .collect();
    b.push_str(&funnel_chart(
        "chart-funnel",
        "Offered → claimed → used, by template",
        "template",
        &rows,
    ));
    if !p.stock.is_empty() {
        b.push_str(&meter_chart(
            "chart-stock",
            "Stock used: coupons issued of the total stock",
            &p.stock,
        ));
    }
    if !p.unlimited.is_empty() {
        let list: Vec<String> = p
            .unlimited
            .iter()
            .map(|t| esc(&label(t, p.names)))
            .collect();
        let _ = write!(
            b,
            "<p id=\"unlimited\">No stock limit: {}.</p>",
            list.join(", ")
        );
    }
    b.push_str(
        "<div style=\"overflow-x:auto\"><table id=\"metrics\"><tr><th>Template</th><th>offered</th><th>claimed</th><th>claim rate</th>\
<th>used</th><th>usage rate</th><th>discount</th><th>coupon sales</th><th>orders</th><th>ROI</th>\
<th>released</th><th>expired</th><th>voided</th><th>refunded</th><th>refused</th></tr>",
    );
    for (id, m) in &view.by_template {
        let _ = write!(
            b,
            "<tr data-template=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(id.as_str()),
            esc(&label(id, p.names)),
            m.offered,
            m.claimed,
            rate(m.claimed, m.offered),
            m.used,
            rate(m.used, m.claimed),
            amount(m.discount_minor, currency),
            amount(m.coupon_sales_minor, currency),
            m.coupon_orders,
            roi(m).map_or_else(|| "-".to_owned(), |r| r.to_string()),
            m.released,
            m.expired,
            m.voided,
            m.refunded,
            m.refused,
        );
    }
    b.push_str("</table></div>");
    if !view.by_arm.is_empty() {
        let rows: Vec<(String, &Metrics)> =
            view.by_arm.iter().map(|(a, m)| (a.clone(), m)).collect();
        b.push_str("<h2>By experiment arm</h2>");
        b.push_str(&funnel_chart(
            "chart-funnel-arm",
            "Offered → claimed → used, by experiment arm",
            "arm",
            &rows,
        ));
    }
    b
}

/// Stock used of the templates the view shows and the campaign offers: the store's issued
/// counter against each template's total stock.
#[derive(Debug, Default)]
pub struct Stock {
    /// Templates with a total stock.
    pub meters: Vec<Meter>,
    /// Templates without one.
    pub unlimited: Vec<TemplateId>,
}

fn stock<R: Repository>(
    app: &App<R>,
    templates: BTreeSet<TemplateId>,
    names: &Names,
) -> Result<Stock, ApiError> {
    let repo = app.service.repository();
    let mut out = Stock::default();
    for t in templates {
        let Some(rec) = repo.template(&t).map_err(ApiError::internal)? else {
            continue;
        };
        match rec.value.template.limits().total_stock() {
            Some(limit) => out.meters.push(Meter {
                label: label(&t, names),
                used: repo
                    .counter(&CounterKey::Issued(t.clone()))
                    .map_err(ApiError::internal)?,
                limit,
            }),
            None => out.unlimited.push(t),
        }
    }
    Ok(out)
}

/// `GET /merchant/campaign[?campaign=ID]`.
pub async fn campaign_page<R: Repository + 'static>(
    State(app): State<Arc<App<R>>>,
    RawQuery(query): RawQuery,
) -> Response {
    let filter = pairs(query.as_deref().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "campaign")
        .map(|(_, v)| v);
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let campaign = filter.as_deref().and_then(|c| CampaignId::new(c).ok());
        let names = names(&app)?;
        let now = app.now();
        let reporting = app.report()?;
        let view = View::of(&reporting.report, filter.as_deref());
        let mut templates: BTreeSet<TemplateId> = view.by_template.keys().cloned().collect();
        let mut name = None;
        if let Some(c) = &campaign {
            if let Some(rec) = app
                .service
                .repository()
                .campaign(c)
                .map_err(ApiError::internal)?
            {
                templates.extend(rec.value.templates.iter().cloned());
                name = Some(rec.value.name);
            }
        }
        let Stock { meters, unlimited } = stock(&app, templates, &names)?;
        Ok(render(&Page {
            view: &view,
            reporting: &reporting,
            names: &names,
            stock: meters,
            unlimited,
            campaign: filter.map(|c| (c, name)),
            now,
        }))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Campaign", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}
