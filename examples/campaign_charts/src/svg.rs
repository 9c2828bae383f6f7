//! Grouped bar charts as SVG, written by hand: a title, a y axis with round ticks and a unit,
//! labelled categories, a legend, and the value above every bar.

use std::fmt::Write;

/// One series of bars.
pub struct Series<'a> {
    /// Its name, in the legend.
    pub name: &'a str,
    /// Its fill colour.
    pub color: &'a str,
    /// One value per category.
    pub values: Vec<u64>,
    /// An optional note above each bar (e.g. a conversion rate), instead of the value.
    pub notes: Option<Vec<String>>,
}

/// A chart's texts.
pub struct Labels<'a> {
    /// The title.
    pub title: &'a str,
    /// Under the x axis.
    pub x: &'a str,
    /// Beside the y axis, with its unit.
    pub y: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step giving at most about 6 ticks up to `max`.
fn step(max: u64) -> u64 {
    let raw = (max.max(1) as f64 / 6.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    step.max(1.0) as u64
}

/// A grouped bar chart: one group of bars per category, one bar per series.
pub fn bar_chart(labels: &Labels<'_>, categories: &[String], series: &[Series<'_>]) -> String {
    let (w, h) = (
        (160 + categories.len() * (series.len() * 22 + 18)).max(640) as f64,
        440.0,
    );
    let (left, right, top, bottom) = (80.0, 30.0, 70.0, 90.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let step = step(max);
    let top_value = (max.div_ceil(step).max(1)) * step;
    let y = |v: u64| top + plot_h - plot_h * v as f64 / top_value as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{}</text>"#,
        w / 2.0,
        escape(labels.title)
    );
    // Y axis: grid lines and ticks.
    let mut v = 0;
    while v <= top_value {
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##,
            left + plot_w,
            left - 6.0,
            yy + 4.0
        );
        v += step;
    }
    let _ = writeln!(
        s,
        r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#,
        top + plot_h,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" font-size="13">{}</text>"#,
        top + plot_h / 2.0,
        escape(labels.y)
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">{}</text>"#,
        left + plot_w / 2.0,
        h - 18.0,
        escape(labels.x)
    );
    // Bars.
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).min(60.0);
    for (i, cat) in categories.iter().enumerate() {
        let x0 = left + group_w * i as f64 + (group_w - bar_w * series.len() as f64) / 2.0;
        for (j, se) in series.iter().enumerate() {
            let value = se.values.get(i).copied().unwrap_or(0);
            let x = x0 + bar_w * j as f64;
            let yy = y(value);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {} {value}</title></rect>"#,
                bar_w - 2.0,
                top + plot_h - yy,
                se.color,
                escape(cat),
                escape(se.name)
            );
            let note = se
                .notes
                .as_ref()
                .and_then(|n| n.get(i).cloned())
                .unwrap_or_else(|| value.to_string());
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                x + (bar_w - 2.0) / 2.0,
                yy - 4.0,
                escape(&note)
            );
        }
        let cx = left + group_w * (i as f64 + 0.5);
        let cy = top + plot_h + 16.0;
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="end" transform="rotate(-35 {cx:.1} {cy:.1})">{}</text>"#,
            escape(cat)
        );
    }
    // Legend.
    for (j, se) in series.iter().enumerate() {
        let x = left + 10.0 + 190.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="44" width="12" height="12" fill="{}"/><text x="{}" y="54">{}</text>"#,
            se.color,
            x + 18.0,
            escape(se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(step(0), 1);
        assert_eq!(step(7), 2);
        assert_eq!(step(55), 10);
        assert_eq!(step(1234), 500);
    }

    #[test]
    fn a_chart_has_its_axes_labels_and_bars() {
        let svg = bar_chart(
            &Labels {
                title: "T & co",
                x: "day",
                y: "coupons",
            },
            &["a".into(), "b".into()],
            &[Series {
                name: "claimed",
                color: "#1f77b4",
                values: vec![3, 5],
                notes: None,
            }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("T &amp; co") && svg.contains(">coupons<") && svg.contains(">day<"));
        assert_eq!(svg.matches("<rect x=").count(), 3); // 2 bars + 1 legend key
    }
}
