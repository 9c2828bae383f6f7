//! Charts as inline SVG, written by hand: grouped bars with a y axis of round ticks and a unit,
//! and horizontal meters (used of a limit). No script and no chart library: the page draws
//! from the server's numbers, and a test reads them back from the markup.
//!
//! Every bar is a `<rect>` carrying its exact figures as data attributes (`data-series`,
//! `data-category`, `data-value`, and `data-limit` for meters) beside a `<title>` tooltip and a
//! visible label, so what a person reads, what a test parses and what is drawn are one number.

use std::fmt::Write as _;

use crate::pages::esc;

/// One bar's figure: `size` decides its height; `text` is the exact value shown and written to
/// `data-value` (e.g. `25.00` for money).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The magnitude drawn (never negative; negative values draw as zero).
    pub size: f64,
    /// The exact value, as shown.
    pub text: String,
    /// A note shown under the value, above the bar (e.g. a rate, `60.0%`), if any.
    pub note: Option<String>,
}

impl Value {
    /// A count.
    pub fn count(n: u64) -> Value {
        Value {
            size: n as f64,
            text: n.to_string(),
            note: None,
        }
    }

    /// An exact decimal amount (money in major units).
    pub fn amount(a: rust_decimal::Decimal) -> Value {
        use rust_decimal::prelude::ToPrimitive;
        Value {
            size: a.to_f64().unwrap_or(0.0).max(0.0),
            text: a.to_string(),
            note: None,
        }
    }

    /// The same value with a note above its bar.
    pub fn noted(mut self, note: impl Into<String>) -> Value {
        self.note = Some(note.into());
        self
    }
}

/// One series of bars.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its name, in the legend and in `data-series`.
    pub name: String,
    /// Its fill colour.
    pub color: &'static str,
    /// One value per category.
    pub values: Vec<Value>,
}

/// A grouped bar chart: one group per category (a day, a template), one bar per series.
#[derive(Clone, Debug)]
pub struct Bars {
    /// The `id` of the `<svg>` element.
    pub id: String,
    /// The title.
    pub title: String,
    /// Under the x axis.
    pub x_label: String,
    /// Beside the y axis, with its unit.
    pub y_label: String,
    /// The categories, left to right.
    pub categories: Vec<String>,
    /// The series.
    pub series: Vec<Series>,
}

/// A round step giving at most about 5 ticks up to `max` (1, 2 or 5 times a power of ten;
/// whole numbers when `whole`).
pub fn tick_step(max: f64, whole: bool) -> f64 {
    let raw = if max > 0.0 { max / 5.0 } else { 1.0 };
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-12))
        .unwrap_or(10.0 * mag);
    if whole { step.max(1.0).round() } else { step }
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()) as usize;
        format!("{v:.decimals$}")
    }
}

/// Opens an `<svg>` with its accessible title.
fn open(s: &mut String, id: &str, title: &str, w: f64, h: f64) {
    let id = esc(id);
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" class="chart" role="img" aria-labelledby="{id}-title" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<title id="{id}-title">{}</title><rect width="{w}" height="{h}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        esc(title),
        w / 2.0,
        esc(title)
    );
}

/// A grouped bar chart as an `<svg>` element.
pub fn bar_chart(c: &Bars) -> String {
    let per_group = c.series.len().max(1) as f64 * 18.0 + 14.0;
    let (left, right, top, bottom) = (70.0, 20.0, 76.0, 86.0);
    let w = (left + right + c.categories.len().max(1) as f64 * per_group).max(640.0);
    let h = 380.0;
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = c
        .series
        .iter()
        .flat_map(|s| s.values.iter().map(|v| v.size))
        .fold(0.0f64, f64::max);
    let whole = c
        .series
        .iter()
        .flat_map(|s| &s.values)
        .all(|v| !v.text.contains('.'));
    let step = tick_step(max, whole);
    let top_value = ((max / step).ceil().max(1.0)) * step;
    let y = |v: f64| top + plot_h - plot_h * v.max(0.0) / top_value;
    let mut s = String::new();
    open(&mut s, &c.id, &c.title, w, h);
    // Grid lines and ticks.
    let ticks = (top_value / step).round() as u64;
    for i in 0..=ticks {
        let v = step * i as f64;
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{yy:.2}" x2="{:.2}" y2="{yy:.2}" stroke="#e4e4e4"/><text x="{:.2}" y="{:.2}" text-anchor="end" class="tick">{}</text>"##,
            left + plot_w,
            left - 6.0,
            yy + 4.0,
            fmt_tick(v, step)
        );
    }
    let base = top + plot_h;
    let _ = write!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="black"/><line x1="{left}" y1="{base}" x2="{:.2}" y2="{base}" stroke="black"/>"#,
        left + plot_w
    );
    let _ = write!(
        s,
        r#"<text transform="translate(18 {:.2}) rotate(-90)" text-anchor="middle" font-size="13">{}</text><text x="{:.2}" y="{:.2}" text-anchor="middle" font-size="13">{}</text>"#,
        top + plot_h / 2.0,
        esc(&c.y_label),
        left + plot_w / 2.0,
        h - 8.0,
        esc(&c.x_label)
    );
    // Bars, with their figures.
    let group_w = plot_w / c.categories.len().max(1) as f64;
    let n = c.series.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / n).min(48.0);
    for (i, cat) in c.categories.iter().enumerate() {
        let x0 = left + group_w * i as f64 + (group_w - bar_w * n) / 2.0;
        for (j, se) in c.series.iter().enumerate() {
            let zero = Value::count(0);
            let v = se.values.get(i).unwrap_or(&zero);
            let x = x0 + bar_w * j as f64;
            let yy = y(v.size);
            let _ = write!(
                s,
                r#"<rect x="{x:.2}" y="{yy:.2}" width="{:.2}" height="{:.2}" fill="{}" data-series="{}" data-category="{}" data-value="{}"><title>{} {}: {}</title></rect>"#,
                (bar_w - 2.0).max(1.0),
                base - yy,
                se.color,
                esc(&se.name),
                esc(cat),
                esc(&v.text),
                esc(cat),
                esc(&se.name),
                esc(&v.text)
            );
            let cx = x + (bar_w - 2.0) / 2.0;
            let (value_y, note_y) = if v.note.is_some() {
                (yy - 15.0, yy - 4.0)
            } else {
                (yy - 4.0, yy)
            };
            let _ = write!(
                s,
                r#"<text x="{cx:.2}" y="{value_y:.2}" text-anchor="middle" font-size="10" class="value">{}</text>"#,
                esc(&v.text)
            );
            if let Some(note) = &v.note {
                let _ = write!(
                    s,
                    r#"<text x="{cx:.2}" y="{note_y:.2}" text-anchor="middle" font-size="9" class="note">{}</text>"#,
                    esc(note)
                );
            }
        }
        let cx = left + group_w * (i as f64 + 0.5);
        let cy = base + 14.0;
        let _ = write!(
            s,
            r#"<text x="{cx:.2}" y="{cy:.2}" text-anchor="end" transform="rotate(-30 {cx:.2} {cy:.2})" class="category">{}</text>"#,
            esc(cat)
        );
    }
    // Legend.
    for (j, se) in c.series.iter().enumerate() {
        let x = left + 8.0 + 170.0 * j as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="36" width="12" height="12" fill="{}" class="key"/><text x="{}" y="46">{}</text>"#,
            se.color,
            x + 17.0,
            esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// One meter: `used` of `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    /// What is measured (a template).
    pub label: String,
    /// How much is used.
    pub used: u64,
    /// Of how much (at least 1).
    pub limit: u64,
}

/// `used ÷ limit` as a percentage with one decimal, e.g. `12.5%`.
pub fn percent(used: u64, limit: u64) -> String {
    if limit == 0 {
        return "-".to_owned();
    }
    // Exact to one decimal, rounded half up: tenths of a percent.
    let tenths = (u128::from(used) * 2000 + u128::from(limit)) / (2 * u128::from(limit));
    format!("{}.{}%", tenths / 10, tenths % 10)
}

/// Horizontal meters: one bar per row, filled to `used ÷ limit` (at most full), labelled
/// `used / limit (percent)`.
pub fn meter_chart(id: &str, title: &str, meters: &[Meter]) -> String {
    let (left, right, top, row) = (190.0, 150.0, 44.0, 30.0);
    let w = 640.0;
    let h = top + row * meters.len().max(1) as f64 + 16.0;
    let track = w - left - right;
    let mut s = String::new();
    open(&mut s, id, title, w, h);
    for (i, m) in meters.iter().enumerate() {
        let y = top + row * i as f64;
        let share = if m.limit == 0 {
            0.0
        } else {
            (m.used as f64 / m.limit as f64).min(1.0)
        };
        let _ = write!(
            s,
            r##"<text x="{:.2}" y="{:.2}" text-anchor="end" class="category">{}</text><rect x="{left}" y="{y:.2}" width="{track:.2}" height="18" fill="#eeeeee"/><rect x="{left}" y="{y:.2}" width="{:.2}" height="18" fill="{}" data-series="stock used" data-category="{}" data-value="{}" data-limit="{}"><title>{}: {} of {} issued</title></rect><text x="{:.2}" y="{:.2}" class="value">{} / {} ({})</text>"##,
            left - 8.0,
            y + 13.0,
            esc(&m.label),
            track * share,
            if share >= 0.9 { "#d62728" } else { "#2ca02c" },
            esc(&m.label),
            m.used,
            m.limit,
            esc(&m.label),
            m.used,
            m.limit,
            left + track + 8.0,
            y + 13.0,
            m.used,
            m.limit,
            percent(m.used, m.limit)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(0.0, true), 1.0);
        assert_eq!(tick_step(7.0, true), 2.0);
        assert_eq!(tick_step(55.0, true), 20.0);
        assert_eq!(tick_step(1234.0, true), 500.0);
        assert_eq!(tick_step(0.3, false), 0.1);
        assert_eq!(tick_step(0.3, true), 1.0);
        assert_eq!(fmt_tick(0.2, 0.1), "0.2");
        assert_eq!(fmt_tick(500.0, 500.0), "500");
    }

    #[test]
    fn percentages_are_exact_to_a_tenth() {
        assert_eq!(percent(1, 8), "12.5%");
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(10, 10), "100.0%");
        assert_eq!(percent(0, 10), "0.0%");
        assert_eq!(percent(1, 0), "-");
    }

    #[test]
    fn a_bar_chart_has_its_axes_labels_and_figures() {
        let svg = bar_chart(&Bars {
            id: "c".into(),
            title: "T & co".into(),
            x_label: "day".into(),
            y_label: "coupons".into(),
            categories: vec!["a".into(), "b<".into()],
            series: vec![Series {
                name: "claimed".into(),
                color: "#1f77b4",
                values: vec![Value::count(3), Value::count(5).noted("50.0%")],
            }],
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("T &amp; co") && svg.contains(">coupons<") && svg.contains(">day<"));
        assert_eq!(svg.matches("data-series=\"claimed\"").count(), 2);
        assert!(svg.contains("data-category=\"b&lt;\" data-value=\"5\""));
        assert!(svg.contains("class=\"value\">5<") && svg.contains("class=\"note\">50.0%<"));
    }

    #[test]
    fn a_meter_is_filled_to_its_share_and_no_further() {
        let svg = meter_chart(
            "m",
            "Stock",
            &[
                Meter {
                    label: "a".into(),
                    used: 1,
                    limit: 4,
                },
                Meter {
                    label: "b".into(),
                    used: 9,
                    limit: 4,
                },
            ],
        );
        assert!(
            svg.contains("width=\"75.00\" height=\"18\" fill=\"#2ca02c\""),
            "{svg}"
        );
        assert!(
            svg.contains("width=\"300.00\" height=\"18\" fill=\"#d62728\""),
            "{svg}"
        );
        assert!(svg.contains(">1 / 4 (25.0%)<") && svg.contains(">9 / 4 (225.0%)<"));
    }
}
