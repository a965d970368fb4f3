//! A hand-written SVG of time series, one panel per series stacked over a
//! shared time axis: enough to see whether a soak's figures stay flat,
//! without a plotting dependency.

use std::fmt::Write as _;

const WIDTH: f64 = 860.0;
const PANEL_HEIGHT: f64 = 120.0;
const PANEL_GAP: f64 = 42.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 40.0;
const X_TICKS: usize = 6;
const Y_TICKS: usize = 4;

/// One panel: a label (with its unit) and one value per time.
pub struct Series<'a> {
    pub label: &'a str,
    pub values: Vec<f64>,
}

/// An SVG of `series` against `times` (seconds). Each panel's y axis starts
/// at 0, so a flat line looks flat and not like noise blown up to full
/// height.
pub fn render(title: &str, times: &[f64], series: &[Series<'_>]) -> String {
    let height = TOP + BOTTOM + series.len() as f64 * (PANEL_HEIGHT + PANEL_GAP);
    let plot_width = WIDTH - LEFT - RIGHT;
    let t_max = times.iter().copied().fold(0.0_f64, f64::max).max(1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" text-anchor="middle" font-size="14">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    for (i, one) in series.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        panel(&mut svg, top, plot_width, t_max, times, one);
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">time since start (minutes)</text>"#,
        LEFT + plot_width / 2.0,
        height - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn panel(
    svg: &mut String,
    top: f64,
    plot_width: f64,
    t_max: f64,
    times: &[f64],
    series: &Series<'_>,
) {
    let y_max = nice_ceiling(series.values.iter().copied().fold(0.0_f64, f64::max));
    let x = |t: f64| LEFT + t / t_max * plot_width;
    let y = |v: f64| top + PANEL_HEIGHT - v / y_max * PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-weight="bold">{}</text>"#,
        top - 8.0,
        escape(series.label)
    );
    for k in 0..=Y_TICKS {
        let v = y_max * k as f64 / Y_TICKS as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_width,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            y = y(v),
        );
    }
    for k in 0..=X_TICKS {
        let t = t_max * k as f64 / X_TICKS as f64;
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{:.1}</text>"##,
            top + PANEL_HEIGHT,
            top + PANEL_HEIGHT + 14.0,
            t / 60.0,
            x = x(t),
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" fill="none" stroke="black"/>"#
    );
    let points: Vec<String> = times
        .iter()
        .zip(&series.values)
        .map(|(&t, &v)| format!("{:.1},{:.1}", x(t), y(v)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        points.join(" ")
    );
}

/// The smallest 1, 2 or 5 × 10^n at or above `v` (1 for 0 or less), so tick
/// labels are round numbers.
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|&ceiling| ceiling >= v)
        .unwrap_or(10.0 * magnitude)
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
    }

    #[test]
    fn one_polyline_per_series() {
        let svg = render(
            "soak <test>",
            &[0.0, 10.0, 20.0],
            &[
                Series {
                    label: "RSS MiB",
                    values: vec![10.0, 11.0, 10.5],
                },
                Series {
                    label: "fds",
                    values: vec![30.0, 30.0, 31.0],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("soak &lt;test&gt;"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
