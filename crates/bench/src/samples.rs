//! The soak's periodic readings of the daemon: one CSV line each, the SVG
//! drawn from them, and the first-against-last comparison that says whether
//! they stayed flat.

use std::fmt::Write as _;

use crate::plot::{self, Series};

pub const CSV_HEADER: &str = "time_s,rss_mib,fds,pool_connections,pool_active,pg_backends,published,delivered,delivered_per_s,queue_depth,deliveries_pending,in_flight,waiting,breakers_open";

/// Share of the samples at each end compared by [`flatness`].
const END_SHARE: f64 = 0.2;

/// One reading. The `Option`s come from the daemon's `/metrics`, which may
/// not answer (or not yet have sampled) at a given moment.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub time_s: f64,
    pub rss_mib: f64,
    pub fds: usize,
    /// `webhookd_db_pool_connections`, idle + active.
    pub pool_connections: Option<f64>,
    pub pool_active: Option<f64>,
    /// Rows of `pg_stat_activity` in the scenario's database other than the
    /// benchmark's own: every connection the daemon holds, whatever pool.
    pub pg_backends: Option<i64>,
    pub published: u64,
    /// Events received by the receivers that answer 200.
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub queue_depth: Option<u32>,
    pub deliveries_pending: Option<f64>,
    pub in_flight: Option<f64>,
    pub waiting: Option<f64>,
    pub breakers_open: Option<f64>,
}

impl Sample {
    pub fn csv_line(&self) -> String {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        format!(
            "{:.1},{:.2},{},{},{},{},{},{},{:.1},{},{},{},{},{}",
            self.time_s,
            self.rss_mib,
            self.fds,
            opt(self.pool_connections),
            opt(self.pool_active),
            self.pg_backends.map_or(String::new(), |n| n.to_string()),
            self.published,
            self.delivered,
            self.delivered_per_s,
            self.queue_depth.map_or(String::new(), |n| n.to_string()),
            opt(self.deliveries_pending),
            opt(self.in_flight),
            opt(self.waiting),
            opt(self.breakers_open),
        )
    }
}

/// The value of `name` (with `label="value"` when given) in a Prometheus
/// text exposition.
pub fn metric(text: &str, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let matches = match label {
                None => series == name,
                Some((key, wanted)) => {
                    let labels = series.strip_prefix(name)?.strip_prefix('{')?;
                    labels
                        .trim_end_matches('}')
                        .split(',')
                        .any(|pair| pair == format!("{key}=\"{wanted}\""))
                }
            };
            if matches {
                value.trim().parse().ok()
            } else {
                None
            }
        })
}

/// Means of the first and last fifth of `values`: equal (within noise)
/// when a figure stays flat.
pub fn ends(values: &[f64]) -> Option<(f64, f64)> {
    let n = ((values.len() as f64 * END_SHARE).ceil() as usize).max(1);
    if values.len() < 2 * n {
        return None;
    }
    let mean = |slice: &[f64]| slice.iter().sum::<f64>() / slice.len() as f64;
    Some((mean(&values[..n]), mean(&values[values.len() - n..])))
}

/// A Markdown summary: first against last fifth of the samples for RSS, fds
/// and pool connections. The reading at 0 s, taken before any traffic, is
/// left out: it would make an idle start look like growth.
pub fn flatness(samples: &[Sample]) -> String {
    let samples = samples.get(1..).unwrap_or_default();
    let mut out =
        String::from("| figure | first 20 % mean | last 20 % mean | change |\n|---|---|---|---|\n");
    let rows: [(&str, Vec<f64>); 4] = [
        ("RSS MiB", samples.iter().map(|s| s.rss_mib).collect()),
        ("open fds", samples.iter().map(|s| s.fds as f64).collect()),
        (
            "pool connections",
            samples
                .iter()
                .map(|s| s.pool_connections.unwrap_or(0.0))
                .collect(),
        ),
        (
            "Postgres backends",
            samples
                .iter()
                .map(|s| s.pg_backends.unwrap_or(0) as f64)
                .collect(),
        ),
    ];
    for (label, values) in rows {
        match ends(&values) {
            Some((first, last)) => {
                let change = if first > 0.0 {
                    format!("{:+.1} %", (last - first) / first * 100.0)
                } else {
                    "–".to_owned()
                };
                let _ = writeln!(out, "| {label} | {first:.1} | {last:.1} | {change} |");
            }
            None => {
                let _ = writeln!(out, "| {label} | – | – | too few samples |");
            }
        }
    }
    out
}

pub fn svg(title: &str, samples: &[Sample]) -> String {
    let times: Vec<f64> = samples.iter().map(|s| s.time_s).collect();
    let series = [
        Series {
            label: "webhookd RSS (MiB)",
            values: samples.iter().map(|s| s.rss_mib).collect(),
        },
        Series {
            label: "webhookd open file descriptors",
            values: samples.iter().map(|s| s.fds as f64).collect(),
        },
        Series {
            label: "Postgres pool connections (webhookd_db_pool_connections)",
            values: samples
                .iter()
                .map(|s| s.pool_connections.unwrap_or(0.0))
                .collect(),
        },
        Series {
            label: "deliveries received per second (9 answering webhooks)",
            values: samples.iter().map(|s| s.delivered_per_s).collect(),
        },
        Series {
            label: "broker queue depth (ready messages)",
            values: samples
                .iter()
                .map(|s| f64::from(s.queue_depth.unwrap_or(0)))
                .collect(),
        },
        Series {
            label: "deliveries pending (slow and failing webhooks' backlog)",
            values: samples
                .iter()
                .map(|s| s.deliveries_pending.unwrap_or(0.0))
                .collect(),
        },
    ];
    plot::render(title, &times, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# HELP webhookd_db_pool_connections x\n\
        # TYPE webhookd_db_pool_connections gauge\n\
        webhookd_db_pool_connections{state=\"active\"} 3\n\
        webhookd_db_pool_connections{state=\"idle\"} 7\n\
        webhookd_breakers_open 1\n\
        webhookd_breakers_open_total 9\n";

    #[test]
    fn reads_gauges_by_name_and_label() {
        assert_eq!(
            metric(
                METRICS,
                "webhookd_db_pool_connections",
                Some(("state", "idle"))
            ),
            Some(7.0)
        );
        assert_eq!(metric(METRICS, "webhookd_breakers_open", None), Some(1.0));
        assert_eq!(metric(METRICS, "webhookd_missing", None), None);
    }

    #[test]
    fn compares_the_first_and_last_fifth() {
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(ends(&values), Some((1.5, 9.5)));
        assert_eq!(ends(&[1.0]), None);
    }

    #[test]
    fn csv_lines_match_the_header() {
        let line = Sample::default().csv_line();
        assert_eq!(line.split(',').count(), CSV_HEADER.split(',').count());
    }
}
