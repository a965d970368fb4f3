//! One row per scenario, printed as a Markdown table (so a run can be pasted
//! into docs/PERFORMANCE.md as it is).

#[derive(Clone, Debug, Default)]
pub struct Row {
    pub scenario: String,
    /// Deliveries the figures are about (for the fairness scenario, those to
    /// the fast webhooks).
    pub deliveries: u64,
    pub seconds: f64,
    /// Publish→receipt latencies, microseconds (steady scenarios).
    pub latencies_micros: Vec<u64>,
    /// webhookd's CPU seconds over the measured window.
    pub cpu_secs: f64,
    /// CPU seconds of all Postgres and RabbitMQ processes over the window.
    pub postgres_cpu_secs: Option<f64>,
    pub broker_cpu_secs: Option<f64>,
    pub peak_rss_kib: u64,
    /// Rows inserted, updated or deleted in Postgres over the window.
    pub rows_written: Option<i64>,
    /// Transactions committed in the scenario's database over the window:
    /// how well fan-out and outcome writes are batched.
    pub commits: Option<i64>,
    pub webhook_logs: Option<i64>,
    /// Publish scenario: events per second instead of deliveries.
    pub unit: &'static str,
}

impl Row {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.deliveries as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The value at quantile `q` (nearest rank) of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn millis(micros: Option<u64>) -> String {
    micros.map_or("–".to_owned(), |m| format!("{:.2}", m as f64 / 1000.0))
}

pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | deliveries | seconds | per second | p50 ms | p90 ms | p99 ms | max ms | CPU s per 1k | cores | Postgres CPU s per 1k | RabbitMQ CPU s per 1k | peak RSS MiB | rows written per delivery | commits per 1k deliveries | webhook_logs |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let mut sorted = row.latencies_micros.clone();
        sorted.sort_unstable();
        let per_1k = |cpu: Option<f64>| match cpu {
            Some(cpu) if row.deliveries > 0 => {
                format!("{:.3}", cpu * 1000.0 / row.deliveries as f64)
            }
            _ => "–".to_owned(),
        };
        let cores = if row.seconds > 0.0 {
            format!("{:.3}", row.cpu_secs / row.seconds)
        } else {
            "–".to_owned()
        };
        let rows_per = row.rows_written.map_or("–".to_owned(), |r| {
            format!("{:.2}", r as f64 / row.deliveries.max(1) as f64)
        });
        let commits = row.commits.map_or("–".to_owned(), |c| {
            format!("{:.0}", c as f64 * 1000.0 / row.deliveries.max(1) as f64)
        });
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} |\n",
            row.scenario,
            row.deliveries,
            row.seconds,
            row.rate(),
            row.unit,
            millis(quantile(&sorted, 0.50)),
            millis(quantile(&sorted, 0.90)),
            millis(quantile(&sorted, 0.99)),
            millis(sorted.last().copied()),
            per_1k(Some(row.cpu_secs)),
            cores,
            per_1k(row.postgres_cpu_secs),
            per_1k(row.broker_cpu_secs),
            row.peak_rss_kib as f64 / 1024.0,
            rows_per,
            commits,
            row.webhook_logs.map_or("–".to_owned(), |n| n.to_string()),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.50), Some(50));
        assert_eq!(quantile(&values, 0.99), Some(99));
        assert_eq!(quantile(&values, 1.0), Some(100));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn renders_one_line_per_row() {
        let row = Row {
            scenario: "drain".into(),
            deliveries: 2000,
            seconds: 0.5,
            latencies_micros: vec![1500, 2500],
            cpu_secs: 0.1,
            postgres_cpu_secs: Some(0.2),
            broker_cpu_secs: None,
            peak_rss_kib: 2048,
            rows_written: Some(5000),
            commits: Some(10),
            webhook_logs: Some(2000),
            unit: "deliveries/s",
        };
        let table = render(&[row]);
        let line = table.lines().nth(2).expect("a row after the header");
        assert_eq!(
            line,
            "| drain | 2000 | 0.50 | 4000 deliveries/s | 1.50 | 2.50 | 2.50 | 2.50 | 0.050 | 0.200 | 0.100 | – | 2.0 | 2.50 | 5 | 2000 |"
        );
    }
}
