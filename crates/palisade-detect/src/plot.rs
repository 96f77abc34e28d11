//! The ROC plot (like the paper's Figure 11): every detector's curve on one chart, as a
//! hand-written SVG (no plotting dependency; any browser shows it).

use std::fmt::Write;

use crate::metrics::RocPoint;

/// One curve: name, points, area.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    /// Legend name.
    pub name: &'a str,
    /// ROC points from (0, 0) to (1, 1).
    pub points: &'a [RocPoint],
    /// Area under it.
    pub auc: Option<f64>,
}

const COLORS: [&str; 4] = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
const SIZE: f64 = 400.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// At most about `max` points, always keeping the first and last.
fn thin(points: &[RocPoint], max: usize) -> Vec<RocPoint> {
    if points.len() <= max {
        return points.to_vec();
    }
    let step = points.len().div_ceil(max);
    let mut out: Vec<RocPoint> = points.iter().step_by(step).copied().collect();
    if let Some(&last) = points.last() {
        out.push(last);
    }
    out
}

/// The chart.
pub fn roc_svg(title: &str, curves: &[Curve<'_>]) -> String {
    let (w, h) = (LEFT + SIZE + 30.0, TOP + SIZE + 60.0);
    let x = |fpr: f64| LEFT + fpr * SIZE;
    let y = |tpr: f64| TOP + (1.0 - tpr) * SIZE;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + SIZE / 2.0,
        esc(title)
    );
    for i in 0..=5 {
        let v = f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r##"<line x1="{x1}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#ddd"/><line x1="{x0}" y1="{y2}" x2="{x2}" y2="{y2}" stroke="#ddd"/>"##,
            x1 = x(v),
            y0 = y(0.0),
            y1 = y(1.0),
            x0 = x(0.0),
            x2 = x(1.0),
            y2 = y(v)
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{v:.1}</text>"#, x(v), y(0.0) + 18.0);
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{v:.1}</text>"#, x(0.0) - 6.0, y(v) + 4.0);
    }
    let _ = writeln!(s, r##"<rect x="{LEFT}" y="{TOP}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#333"/>"##);
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 4"/>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">False positive rate</text>"#,
        LEFT + SIZE / 2.0,
        h - 12.0
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">True positive rate</text>"#,
        TOP + SIZE / 2.0,
        TOP + SIZE / 2.0
    );
    // Legend inside the plot, lower right (where ROC curves never are).
    let (lx, ly0) = (LEFT + SIZE * 0.22, TOP + SIZE - 14.0 - 24.0 * curves.len() as f64);
    let _ = writeln!(
        s,
        r##"<rect x="{lx}" y="{}" width="{}" height="{}" fill="white" stroke="#999"/>"##,
        ly0 - 6.0,
        SIZE * 0.78 - 6.0,
        24.0 * curves.len() as f64 + 8.0
    );
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> =
            thin(c.points, 4000).iter().map(|p| format!("{:.2},{:.2}", x(p.fpr), y(p.tpr))).collect();
        let _ = writeln!(s, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        let ly = ly0 + 10.0 + 24.0 * i as f64;
        let auc = c.auc.map_or_else(|| "n/a".to_owned(), |a| format!("{a:.4}"));
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{} (AUC {auc})</text>"#,
            lx + 8.0,
            lx + 32.0,
            lx + 38.0,
            ly + 4.0,
            esc(c.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_each_curve_with_its_legend_at_the_right_coordinates() {
        let pts = [
            RocPoint { fpr: 0.0, tpr: 0.0, threshold: f64::INFINITY },
            RocPoint { fpr: 0.0, tpr: 0.5, threshold: 0.9 },
            RocPoint { fpr: 1.0, tpr: 1.0, threshold: 0.1 },
        ];
        let svg = roc_svg("t <1>", &[Curve { name: "LSTM-NAD", points: &pts, auc: Some(0.75) }]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        // (0, 0.5) maps to x = 70, y = 50 + 0.5 * 400 = 250.
        assert!(svg.contains(r#"points="70.00,450.00 70.00,250.00 470.00,50.00""#), "{svg}");
        assert!(svg.contains("LSTM-NAD (AUC 0.7500)"));
        assert!(svg.contains("t &lt;1&gt;"));
    }

    #[test]
    fn long_curves_are_thinned_but_keep_their_ends() {
        let pts: Vec<RocPoint> =
            (0..=10_000).map(|i| RocPoint { fpr: i as f64 / 1e4, tpr: i as f64 / 1e4, threshold: 0.0 }).collect();
        let t = thin(&pts, 100);
        assert!(t.len() <= 102);
        assert_eq!(t.first().unwrap().fpr, 0.0);
        assert_eq!(t.last().unwrap().fpr, 1.0);
    }
}
