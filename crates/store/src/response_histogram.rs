//! Response-time histograms with fixed, log-scaled buckets: what the hourly
//! statistics rollup stores instead of every response time, and what
//! percentiles are interpolated from.
//!
//! Bucket `k` holds the whole milliseconds `lower(k)..=upper(k)`. Below
//! 25 ms every bucket is one value wide; above, each is less than 4 % of its
//! lower bound wide. An estimate of the `j`-th smallest value lies in that
//! value's bucket, so it is off by less than 4 % of the value (exact below
//! 25 ms), and a percentile interpolated between two such estimates, as
//! `percentile_cont` interpolates between two values, is off by less than
//! 4 % of the exact percentile: [`RELATIVE_ERROR`].

use std::sync::OnceLock;

/// The bound on `|estimate - exact| / exact` of [`Histogram::percentile`].
pub const RELATIVE_ERROR: f64 = 0.04;

/// Bucket lower bounds, ascending, the first 0. They are part of the stored
/// format: changing them would misread every rolled-up hour, so a change
/// needs a migration that rebuilds `webhook_stats_hourly`.
pub fn bounds() -> &'static [i32] {
    static BOUNDS: OnceLock<Vec<i32>> = OnceLock::new();
    BOUNDS.get_or_init(|| {
        let mut bounds = vec![0_i64];
        loop {
            let last = bounds[bounds.len() - 1];
            // ceil(last * 1.04) in integers: the width stays under 4 % of
            // the lower bound (see the module comment).
            let next = (last + 1).max((last * 104 + 99) / 100);
            if next > i64::from(i32::MAX) {
                break;
            }
            bounds.push(next);
        }
        bounds
            .into_iter()
            .map(|b| i32::try_from(b).unwrap_or(i32::MAX))
            .collect()
    })
}

/// The bucket of `ms` (negative times count as 0).
pub fn bucket_of(ms: i32) -> usize {
    bounds().partition_point(|&b| b <= ms.max(0)) - 1
}

fn lower(bucket: usize) -> f64 {
    f64::from(bounds()[bucket])
}

fn upper(bucket: usize) -> f64 {
    match bounds().get(bucket + 1) {
        Some(&next) => f64::from(next) - 1.0,
        None => f64::from(i32::MAX),
    }
}

/// The statement summarising the attempts of `webhook_logs l` (joined to
/// their webhook `w`) that satisfy `condition` into rows of
/// `webhook_stats_hourly`'s shape: `webhook_id, hour, event, attempts,
/// successes, buckets, counts`. `$1` is the bucket bounds
/// ([`bounds`]); attempts without a response have no
/// bucket. Stats reads run it over the hours not rolled up yet.
pub(crate) fn summary_sql(condition: &str) -> String {
    grouped_summary_sql(
        &[
            ("l.webhook_id", "webhook_id"),
            ("date_trunc('hour', l.created_at, 'UTC')", "hour"),
            ("l.event", "event"),
        ],
        condition,
    )
}

/// [`summary_sql`] grouped by `keys` instead, each `(expression, name)`
/// over `l` and `w`: the result has the names, then `attempts, successes,
/// buckets, counts`.
pub(crate) fn grouped_summary_sql(keys: &[(&str, &str)], condition: &str) -> String {
    let selected = keys
        .iter()
        .map(|(expression, name)| format!("{expression} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let positions = (1..=keys.len() + 1)
        .map(|position| position.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let names = keys
        .iter()
        .map(|(_, name)| format!("s.{name}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {names},
                sum(s.n)::int4 AS attempts, sum(s.ok)::int4 AS successes,
                COALESCE(array_agg(s.bucket ORDER BY s.bucket)
                         FILTER (WHERE s.bucket IS NOT NULL), '{{}}') AS buckets,
                COALESCE(array_agg(s.n ORDER BY s.bucket)
                         FILTER (WHERE s.bucket IS NOT NULL), '{{}}') AS counts
         FROM (
             SELECT {selected},
                    CASE WHEN l.status_code IS NOT NULL
                         THEN (width_bucket(greatest(l.response_time_ms, 0), $1::int4[]) - 1)::int2
                    END AS bucket,
                    count(*)::int4 AS n,
                    count(*) FILTER (WHERE l.is_success)::int4 AS ok
             FROM webhook_logs l
             JOIN webhooks w ON w.id = l.webhook_id
             WHERE {condition}
             GROUP BY {positions}
         ) s
         GROUP BY {names}"
    )
}

/// The statement merging summary rows: `source` selects `keys` (a column
/// list) and `attempts, successes, buckets, counts`; the result has one row
/// per distinct `keys`, counts summed and histograms merged bucket by
/// bucket.
pub(crate) fn merged_sql(keys: &str, source: &str) -> String {
    format!(
        "WITH src AS ({source}),
         totals AS (
             SELECT {keys}, sum(attempts)::int4 AS attempts, sum(successes)::int4 AS successes
             FROM src GROUP BY {keys}),
         cells AS (
             SELECT {keys}, u.bucket, sum(u.n)::int4 AS n
             FROM src, unnest(src.buckets, src.counts) AS u(bucket, n)
             GROUP BY {keys}, u.bucket),
         histograms AS (
             SELECT {keys}, array_agg(bucket ORDER BY bucket) AS buckets,
                    array_agg(n ORDER BY bucket) AS counts
             FROM cells GROUP BY {keys})
         SELECT {keys}, t.attempts, t.successes,
                COALESCE(h.buckets, '{{}}') AS buckets, COALESCE(h.counts, '{{}}') AS counts
         FROM totals t LEFT JOIN histograms h USING ({keys})"
    )
}

/// Counts per bucket; merged from the stored rows' sparse form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    /// Adds stored buckets: `buckets[i]` holds `counts[i]` more values.
    /// Buckets out of range (not written by this version) are ignored.
    pub fn add_sparse(&mut self, buckets: &[i16], counts: &[i32]) {
        for (&bucket, &count) in buckets.iter().zip(counts) {
            let (Ok(bucket), Ok(count)) = (usize::try_from(bucket), u64::try_from(count)) else {
                continue;
            };
            if bucket >= bounds().len() {
                continue;
            }
            if self.counts.len() <= bucket {
                self.counts.resize(bucket + 1, 0);
            }
            self.counts[bucket] += count;
            self.total += count;
        }
    }

    pub fn record(&mut self, ms: i32) {
        let Ok(bucket) = i16::try_from(bucket_of(ms)) else {
            return;
        };
        self.add_sparse(&[bucket], &[1]);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// Takes out values `other` holds and `self` held: what merging a
    /// histogram into `self` added (a day's minus some of its hours).
    pub fn remove(&mut self, other: &Histogram) {
        let mut removed = 0;
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            let take = (*mine).min(*theirs);
            *mine -= take;
            removed += take;
        }
        self.total -= removed;
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The `p` quantile (0 to 1) as `percentile_cont` defines it, over
    /// values estimated from their buckets; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let position = p.clamp(0.0, 1.0) * (self.total - 1) as f64;
        let below = position.floor();
        let low = self.estimate(below as u64);
        let high = self.estimate(position.ceil() as u64);
        Some(low + (high - low) * (position - below))
    }

    /// The `rank`-th smallest value (from 0), assuming a bucket's values are
    /// spread evenly over it.
    fn estimate(&self, rank: u64) -> f64 {
        let mut before = 0;
        for (bucket, &count) in self.counts.iter().enumerate() {
            if rank < before + count {
                let (lo, hi) = (lower(bucket), upper(bucket));
                let within = (rank - before) as f64 + 0.5;
                return lo + (hi - lo) * within / count as f64;
            }
            before += count;
        }
        self.counts.len().checked_sub(1).map_or(0.0, upper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(sorted: &[f64], p: f64) -> f64 {
        let position = p * (sorted.len() - 1) as f64;
        let (low, high) = (position.floor() as usize, position.ceil() as usize);
        sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
    }

    #[test]
    fn buckets_are_narrower_than_the_bound() {
        let b = bounds();
        assert_eq!(b[0], 0);
        assert!(b.len() < i16::MAX as usize);
        for k in 0..b.len() {
            let width = upper(k) - lower(k);
            assert!(width <= RELATIVE_ERROR * lower(k), "bucket {k}");
        }
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(bucket_of(24), 24);
        assert_eq!(bucket_of(i32::MAX), b.len() - 1);
    }

    #[test]
    fn percentiles_stay_within_the_bound() {
        let mut state = 12345_u64;
        for n in [1_usize, 2, 3, 10, 97, 1000] {
            let mut values = Vec::new();
            let mut hist = Histogram::default();
            for _ in 0..n {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                let ms = ((state >> 33) % 20_000) as i32;
                values.push(f64::from(ms));
                hist.record(ms);
            }
            values.sort_by(f64::total_cmp);
            for p in [0.0, 0.5, 0.95, 1.0] {
                let (want, got) = (exact(&values, p), hist.percentile(p).unwrap_or(-1.0));
                assert!(
                    (got - want).abs() <= RELATIVE_ERROR * want,
                    "n={n} p={p}: {got} vs {want}"
                );
            }
        }
        assert_eq!(Histogram::default().percentile(0.5), None);
    }
}
