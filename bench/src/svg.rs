//! Grouped bar charts as standalone SVG: one group per category (a message
//! size, say), one bar per series (an implementation), a linear y axis from
//! zero, and a legend.

use std::fmt::Write;

/// One chart.
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) y_label: String,
    pub(crate) categories: Vec<String>,
    /// Series name and one value per category (None: not measured).
    pub(crate) series: Vec<(String, Vec<Option<f64>>)>,
}

const COLORS: [&str; 6] = [
    "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and step for values up to `max`.
fn axis(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// A figure in a few characters: 1.23M, 456k, 789, 12.3.
pub(crate) fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Chart {
    /// The SVG document.
    pub(crate) fn render(&self) -> String {
        let (w, h) = (860.0, 420.0);
        let (left, right, top, bottom) = (80.0, 170.0, 40.0, 50.0);
        let plot_w = w - left - right;
        let plot_h = h - top - bottom;
        let max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .fold(0.0f64, |a, b| a.max(*b));
        let (ymax, step) = axis(max);
        let y = |v: f64| top + plot_h - v / ymax * plot_h;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r#"<rect width="{w}" height="{h}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            left + plot_w / 2.0,
            esc(&self.title)
        );
        let mut v = 0.0;
        while v <= ymax + step / 2.0 {
            let yy = y(v);
            let _ = write!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                human(v)
            );
            v += step;
        }
        let _ = write!(
            s,
            r#"<text transform="translate(18,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + plot_h / 2.0,
            esc(&self.y_label)
        );
        let groups = self.categories.len().max(1) as f64;
        let group_w = plot_w / groups;
        let n = self.series.len().max(1) as f64;
        let bar_w = group_w * 0.8 / n;
        for (g, cat) in self.categories.iter().enumerate() {
            let gx = left + g as f64 * group_w;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0,
                top + plot_h + 18.0,
                esc(cat)
            );
            for (i, (_, vals)) in self.series.iter().enumerate() {
                let x = gx + group_w * 0.1 + i as f64 * bar_w;
                match vals.get(g).copied().flatten() {
                    Some(v) => {
                        let _ = write!(
                            s,
                            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                            y(v),
                            bar_w * 0.9,
                            (top + plot_h - y(v)).max(0.0),
                            COLORS[i % COLORS.len()],
                            human(v)
                        );
                    }
                    None => {
                        let _ = write!(
                            s,
                            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#999" font-size="10">–</text>"##,
                            x + bar_w * 0.45,
                            top + plot_h - 4.0
                        );
                    }
                }
            }
        }
        let _ = write!(
            s,
            r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="black"/>"#,
            top + plot_h
        );
        for (i, (name, _)) in self.series.iter().enumerate() {
            let ly = top + 10.0 + i as f64 * 20.0;
            let lx = left + plot_w + 16.0;
            let _ = write!(
                s,
                r#"<rect x="{lx}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
                ly - 10.0,
                COLORS[i % COLORS.len()],
                lx + 18.0,
                ly,
                esc(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_round_and_covers_the_maximum() {
        assert_eq!(axis(9.3), (10.0, 2.0));
        assert_eq!(axis(2967.0), (3000.0, 1000.0));
        assert_eq!(axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn renders_every_bar_and_a_gap_for_missing_values() {
        let c = Chart {
            title: "t <1>".into(),
            y_label: "MB/s".into(),
            categories: vec!["16 B".into(), "4 KiB".into()],
            series: vec![
                ("a".into(), vec![Some(1.0), Some(2.0)]),
                ("b".into(), vec![None, Some(3.0)]),
            ],
        };
        let svg = c.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("t &lt;1&gt;"));
        // Three bars plus two legend swatches plus the background.
        assert_eq!(svg.matches("<rect").count(), 6);
        assert_eq!(svg.matches(">–</text>").count(), 1);
    }
}
