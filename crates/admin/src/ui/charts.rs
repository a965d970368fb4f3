//! Charts as inline SVG drawn on the server: no script, no chart library.
//!
//! Text stays in HTML around the SVG rather than inside it: an SVG scaled to
//! a phone's width would shrink its text below readable sizes, while HTML
//! text keeps its size and wraps. The SVGs stretch to the width available
//! (`preserveAspectRatio="none"`), and each carries a text equivalent.

use maud::{html, Markup};

use super::i18n::{Lang, Tr};
use webhookd_store::stats::HourCount;

/// Attempts per hour, stacked by outcome (successes below, failures above).
pub(crate) fn hourly_chart(tr: &Tr, id: &str, hours: &[HourCount]) -> Markup {
    let slots = hours.len().max(1);
    let peak = hours
        .iter()
        .map(|h| h.successes + h.failures)
        .max()
        .unwrap_or(0);
    let scale = nice_ceiling(peak);
    let width = slots * 10;
    let successes: i64 = hours.iter().map(|h| h.successes).sum();
    let failures: i64 = hours.iter().map(|h| h.failures).sum();
    let summary = tr.t_with(
        "stats-chart-summary",
        &[
            ("bars", hours.len().into()),
            ("successes", successes.into()),
            ("failures", failures.into()),
            ("peak", peak.into()),
        ],
    );
    let ticks = x_ticks(tr, hours);
    html! {
        figure class="chart" aria-labelledby={ (id) "-caption" } {
            figcaption id={ (id) "-caption" } {
                (tr.t_with("stats-chart-caption", &[("scale", scale.into())]))
                // The zone's IANA name is an identifier, not words to translate.
                " (" code translate="no" { (tr.tz.name()) } ")"
            }
            div class="chart-frame" {
                svg class="hourly" viewBox={ "0 0 " (width) " 100" } preserveAspectRatio="none"
                    role="img" aria-label=(summary) {
                    line class="grid" x1="0" y1="50" x2=(width) y2="50" {}
                    line class="grid" x1="0" y1="0.5" x2=(width) y2="0.5" {}
                    @for (i, hour) in hours.iter().enumerate() {
                        @let x = i * 10 + 1;
                        @let ok = bar_height(hour.successes, scale);
                        @let failed = bar_height(hour.failures, scale);
                        g {
                            title {
                                (tr.t_with("stats-hour-title", &[
                                    ("hour", hour_label(tr, hour, true).into()),
                                    ("successes", hour.successes.into()),
                                    ("failures", hour.failures.into()),
                                ]))
                            }
                            // An invisible full-height target, so the tooltip
                            // shows for empty hours too.
                            rect class="hit" x=(i * 10) y="0" width="10" height="100" {}
                            @if ok > 0.0 {
                                rect class="bar-ok" x=(x) y=(fmt(100.0 - ok)) width="8" height=(fmt(ok)) {}
                            }
                            @if failed > 0.0 {
                                rect class="bar-fail" x=(x) y=(fmt(100.0 - ok - failed)) width="8" height=(fmt(failed)) {}
                            }
                        }
                    }
                }
            }
            div class="x-axis" aria-hidden="true" {
                @for tick in &ticks { span { (tick) } }
            }
            (legend(tr))
        }
    }
}

pub(crate) fn legend(tr: &Tr) -> Markup {
    html! {
        p class="legend" {
            span class="swatch ok" aria-hidden="true" {} (tr.t("stats-legend-ok"))
            span class="swatch fail" aria-hidden="true" {} (tr.t("stats-legend-failed"))
        }
    }
}

/// One row of a horizontal bar list.
pub(crate) struct BarRow {
    pub(crate) label: String,
    /// The label is a technical name (an event), shown as code.
    pub(crate) code: bool,
    /// Bars of the row: the length as a fraction of the longest possible
    /// (0 to 1), a CSS class, and the value in words.
    pub(crate) bars: Vec<(f64, &'static str, String)>,
}

/// Labelled horizontal bars, in HTML with a stretched SVG per bar: readable
/// at any width.
pub(crate) fn bar_list(label: &str, rows: &[BarRow]) -> Markup {
    html! {
        ul class="bar-list" aria-label=(label) {
            @for row in rows {
                li {
                    span class="bar-label" {
                        @if row.code { code { (row.label) } } @else { (row.label) }
                    }
                    @for (fraction, class, text) in &row.bars {
                        span class="bar-line" {
                            svg viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true" {
                                rect class="track" x="0" y="0" width="100" height="8" {}
                                rect class=(class) x="0" y="0" width=(fmt(fraction.clamp(0.0, 1.0) * 100.0)) height="8" {}
                            }
                            span class="bar-value" { (text) }
                        }
                    }
                }
            }
        }
    }
}

/// An hour in the viewer's zone: `14:00`, with the day for a week's axis
/// and for tooltips.
fn hour_label(tr: &Tr, hour: &HourCount, with_day: bool) -> String {
    let local = hour.hour.with_timezone(&tr.tz);
    let format = match (with_day, tr.lang) {
        (false, _) => "%H:00",
        (true, Lang::Ru) => "%d.%m %H:00",
        (true, Lang::En) => "%m-%d %H:00",
    };
    local.format(format).to_string()
}

fn bar_height(count: i64, scale: i64) -> f64 {
    if scale <= 0 {
        return 0.0;
    }
    (count as f64 / scale as f64 * 99.0).max(if count > 0 { 1.0 } else { 0.0 })
}

fn fmt(value: f64) -> String {
    format!("{value:.2}")
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `peak`,
/// so the scale reads as a round number.
pub(crate) fn nice_ceiling(peak: i64) -> i64 {
    let mut magnitude = 1_i64;
    loop {
        for step in [1, 2, 5] {
            let candidate = step * magnitude;
            if candidate >= peak {
                return candidate;
            }
        }
        magnitude = match magnitude.checked_mul(10) {
            Some(m) => m,
            None => return peak,
        };
    }
}

/// Five labels spread along the time axis: the first hour, three between,
/// and the last (which is the current, partial hour).
fn x_ticks(tr: &Tr, hours: &[HourCount]) -> Vec<String> {
    let Some(last) = hours.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut indexes: Vec<usize> = (0..=4).map(|k| last * k / 4).collect();
    indexes.dedup();
    indexes
        .into_iter()
        .map(|i| hour_label(tr, &hours[i], hours.len() > 24))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn hours(counts: &[(i64, i64)]) -> Vec<HourCount> {
        let start = Utc
            .with_ymd_and_hms(2026, 2, 20, 0, 0, 0)
            .single()
            .expect("a time");
        counts
            .iter()
            .enumerate()
            .map(|(i, (ok, failed))| HourCount {
                hour: start + Duration::hours(i as i64),
                successes: *ok,
                failures: *failed,
            })
            .collect()
    }

    #[test]
    fn scales_are_round_numbers_at_least_the_peak() {
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 5),
            (7, 10),
            (11, 20),
            (120, 200),
            (501, 1000),
        ];
        for (peak, scale) in cases {
            assert_eq!(nice_ceiling(peak), scale, "{peak}");
        }
    }

    #[test]
    fn bars_are_stacked_with_tooltips_and_a_text_summary() {
        let chart =
            hourly_chart(&Tr::default(), "h", &hours(&[(3, 1), (0, 0), (10, 0)])).into_string();
        assert_eq!(chart.matches("class=\"bar-ok\"").count(), 2, "{chart}");
        assert_eq!(chart.matches("class=\"bar-fail\"").count(), 1);
        assert_eq!(chart.matches("<title>").count(), 3);
        assert!(
            chart.contains("13 successful and 1 failed attempts in all; at most 10 in one hour")
        );
        assert!(chart.contains("the chart's top is 10 attempts"), "{chart}");
    }

    #[test]
    fn the_time_axis_has_five_labels_spread_over_the_period() {
        let en = Tr::default();
        let day = hours(&[(0, 0); 24]);
        assert_eq!(
            x_ticks(&en, &day),
            ["00:00", "05:00", "11:00", "17:00", "23:00"]
        );
        let week = hours(&[(0, 0); 168]);
        assert_eq!(x_ticks(&en, &week).len(), 5);
        assert_eq!(x_ticks(&en, &week)[0], "02-20 00:00");
        assert!(x_ticks(&en, &[]).is_empty());
        let moscow = Tr {
            lang: Lang::Ru,
            tz: chrono_tz::Tz::Europe__Moscow,
        };
        assert_eq!(x_ticks(&moscow, &week)[0], "20.02 03:00");
    }
}
