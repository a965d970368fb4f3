//! Delivery statistics: attempts per hour by outcome, and success rate and
//! response-time percentiles per webhook and per event.
//!
//! The window's hours that are rolled up (`stats_rollup`) are read from
//! their summaries. When those hours are a window summarised ahead
//! (`stats_windows`: the offered periods, normally), from its rows (one per
//! webhook, one per owner and event) and the hourly series' counts.
//! Otherwise at the coarsest level that answers each part: the
//! hourly series, the total and the per-event summaries from
//! `user_stats_hourly` (per owner, hour and event), the per-webhook
//! summaries from `webhook_stats_daily` for the window's UTC days held from
//! their start (the last one partial) and from `webhook_stats_hourly` for
//! the hours before the first. The others (normally the
//! current hour and the one before) are summarised from `webhook_logs` on
//! the spot, in the same shape, by an index range scan: on `(created_at)`
//! for everyone's webhooks, on `(webhook_id, created_at)` for one user's.
//! Both are read in one repeatable-read snapshot, so an hour the rollup
//! commits meanwhile is counted once. The summaries are merged here;
//! percentiles come from the merged response-time histograms
//! (`response_histogram`), within [`RELATIVE_ERROR`] of the exact value.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;

use crate::response_histogram::{self, Histogram};
use crate::stats_rollup::{self, day_ceil, day_floor, RolledRange};
use crate::webhooks::Scope;
use crate::StorageError;
use crate::{stats_recent, stats_windows};

pub use crate::response_histogram::RELATIVE_ERROR;
pub use crate::stats_windows::PERIOD_HOURS;

/// Attempts in one hour, by outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    pub successes: i64,
    pub failures: i64,
}

/// Attempts of one group (a webhook, an event, or all of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub attempts: i64,
    pub successes: i64,
    pub failures: i64,
    /// Median and 95th percentile of `response_time_ms`, over the attempts
    /// that got an HTTP response: connection errors and timeouts are failures,
    /// not response times. `None` when there were none. Interpolated from a
    /// histogram: within [`RELATIVE_ERROR`] of `percentile_cont`'s value.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl Summary {
    /// Successes over attempts; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSummary {
    pub webhook_id: i64,
    pub name: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub event: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The window: from the start of the first hour up to now.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every hour of the window, oldest first, zeros included.
    pub hourly: Vec<HourCount>,
    pub total: Summary,
    /// Webhooks with at least one attempt in the window, by id.
    pub webhooks: Vec<WebhookSummary>,
    /// Events with at least one attempt in the window, by name.
    pub events: Vec<EventSummary>,
}

/// One summary row: a webhook's attempts of one event in one hour, rolled
/// up or summarised on the spot.
#[derive(sqlx::FromRow)]
struct Row {
    webhook_id: i64,
    hour: DateTime<Utc>,
    event: String,
    attempts: i32,
    successes: i32,
    buckets: Vec<i16>,
    counts: Vec<i32>,
}

/// Statistics of the webhooks in `scope` over the last `hours` hours (the
/// current, partial hour being the last of them).
pub async fn load_stats(
    pool: &PgPool,
    scope: Scope,
    hours: u32,
    now: DateTime<Utc>,
) -> Result<Stats, StorageError> {
    let current_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let from = current_hour - Duration::hours(i64::from(hours.max(1)) - 1);
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rolled = stats_rollup::rolled_range(&mut *tx).await?;
    let recent = match rolled {
        Some(range) => stats_recent::summarised_until(&mut tx, range.until).await?,
        None => None,
    };
    let parts = parts(from, rolled, recent);
    let summarised = match parts.iter().find_map(Part::rolled) {
        Some((start, end)) => stats_windows::is_summarised(&mut tx, start, end).await?,
        None => false,
    };
    let mut rows = Vec::new();
    for (source, start, end) in reads(parts, rolled, summarised) {
        let sql = source.sql(scope);
        let mut query = sqlx::query_as::<_, Row>(&sql)
            .bind(response_histogram::bounds())
            .bind(start)
            .bind(end);
        if let Scope::User(owner) = scope {
            query = query.bind(owner);
        }
        let counts = source.counts();
        rows.extend(
            query
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|row| (counts, row)),
        );
    }
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|(counts, _)| counts.webhooks)
        .map(|(_, r)| r.webhook_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM webhooks WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(assemble(
        from,
        now,
        hours,
        rows,
        names.into_iter().collect(),
    ))
}

/// A part of the window and where it is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Rolled {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// The complete minutes after the rolled range, summarised
    /// (`stats_recent`).
    Recent {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// `end` `None`: up to now.
    Live {
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
    },
}

impl Part {
    fn rolled(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match *self {
            Part::Rolled { start, end } => Some((start, end)),
            Part::Recent { .. } | Part::Live { .. } => None,
        }
    }
}

/// The window from `from` on, cut into the hours rolled up and those that
/// are not (before the range, when the backfill has not reached them yet,
/// and after it), the latter after the range up to `recent` (the end of the
/// minutes summarised after it, if any) summarised.
fn parts(
    from: DateTime<Utc>,
    rolled: Option<RolledRange>,
    recent: Option<DateTime<Utc>>,
) -> Vec<Part> {
    let Some(RolledRange {
        from: rolled_from,
        until,
    }) = rolled
    else {
        return vec![Part::Live {
            start: from,
            end: None,
        }];
    };
    let mut parts = Vec::new();
    if from < rolled_from {
        parts.push(Part::Live {
            start: from,
            end: Some(rolled_from),
        });
    }
    let start = from.max(rolled_from);
    if start < until {
        parts.push(Part::Rolled { start, end: until });
    }
    match recent {
        Some(end) if from <= until && until < end => {
            parts.push(Part::Recent { start: until, end });
            parts.push(Part::Live {
                start: end,
                end: None,
            });
        }
        _ => parts.push(Part::Live {
            start: from.max(until),
            end: None,
        }),
    }
    parts
}

/// Where a read's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `webhook_logs`, summarised on the spot: every figure.
    Live,
    /// `user_stats_hourly`: the hourly series, total and events.
    Owners,
    /// `webhook_stats_daily`: the per-webhook summaries.
    Days,
    /// `webhook_stats_hourly`: the per-webhook summaries.
    Hours,
    /// `webhook_stats_hourly`: hours of a day read from the day level that
    /// precede the window, taken out of the per-webhook summaries.
    HoursOut,
    /// `user_stats_hourly`'s counts only: the hourly series of a window
    /// summarised ahead.
    Series,
    /// `user_stats_window`: the total and events of a window summarised ahead.
    OwnersWindow,
    /// `webhook_stats_window`: the per-webhook summaries of a window
    /// summarised ahead.
    WebhooksWindow,
    /// `user_stats_recent`: the hourly series, total and events of the
    /// minutes summarised after the rolled range.
    OwnersRecent,
    /// `webhook_stats_recent`: their per-webhook summaries.
    WebhooksRecent,
}

/// Which figures a row counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    /// The hourly series.
    series: bool,
    /// The total and the per-event summaries.
    summaries: bool,
    /// The per-webhook summaries.
    webhooks: bool,
    /// Taken out instead of added.
    out: bool,
}

impl Source {
    fn counts(self) -> Counts {
        Counts {
            series: matches!(
                self,
                Source::Live | Source::Owners | Source::Series | Source::OwnersRecent
            ),
            summaries: matches!(
                self,
                Source::Live | Source::Owners | Source::OwnersWindow | Source::OwnersRecent
            ),
            webhooks: matches!(
                self,
                Source::Live
                    | Source::Days
                    | Source::Hours
                    | Source::HoursOut
                    | Source::WebhooksWindow
                    | Source::WebhooksRecent
            ),
            out: self == Source::HoursOut,
        }
    }

    /// The statement reading this source's rows: `$1` the bucket bounds
    /// (unused by the summaries, so every read binds alike), `$2`..`$3`
    /// the part of the window, `$4` the owner for [`Scope::User`].
    fn sql(self, scope: Scope) -> String {
        match self {
            Source::Live => live_sql(scope),
            Source::Owners => owners_sql(scope),
            Source::Days => rolled_sql(scope, "webhook_stats_daily", "day", "''::text"),
            Source::Hours | Source::HoursOut => {
                rolled_sql(scope, "webhook_stats_hourly", "hour", "r.event")
            }
            Source::Series => series_sql(scope),
            Source::OwnersWindow => owners_window_sql(scope),
            Source::WebhooksWindow => webhooks_window_sql(scope),
            Source::OwnersRecent => owners_recent_sql(scope),
            Source::WebhooksRecent => webhooks_recent_sql(scope),
        }
    }
}

/// The reads answering the window's parts, each `(source, start, end)`,
/// `end` `None` up to now: each figure of each hour comes from exactly one
/// of them. A rolled part's per-webhook summaries come from the day rows of
/// the days it holds from their start (the last one's row ends where the
/// rolled part does: see `stats_rollup`), and for the hours before the
/// first of them, whichever reads fewer hours: their hourly rows, or the
/// row of their day minus the hourly rows of the day's hours before them.
/// With `summarised`, the rolled part is a window summarised ahead
/// (`stats_windows`), read from its rows and the hourly series.
fn reads(
    parts: Vec<Part>,
    rolled: Option<RolledRange>,
    summarised: bool,
) -> Vec<(Source, DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut reads = Vec::new();
    for part in parts {
        match part {
            Part::Live { start, end } => reads.push((Source::Live, start, end)),
            Part::Recent { start, end } => {
                reads.push((Source::OwnersRecent, start, Some(end)));
                reads.push((Source::WebhooksRecent, start, Some(end)));
            }
            Part::Rolled { start, end } if summarised => {
                for source in [Source::Series, Source::OwnersWindow, Source::WebhooksWindow] {
                    reads.push((source, start, Some(end)));
                }
            }
            Part::Rolled { start, end } => {
                reads.push((Source::Owners, start, Some(end)));
                let first_day = day_ceil(start);
                let day = day_floor(start);
                let day_is_held = rolled.is_some_and(|range| range.from <= day);
                if first_day <= end && day_is_held && first_day - start > start - day {
                    reads.push((Source::Days, day, Some(end)));
                    reads.push((Source::HoursOut, day, Some(start)));
                    continue;
                }
                if first_day < end {
                    reads.push((Source::Days, first_day, Some(end)));
                }
                let hours_end = first_day.min(end);
                if start < hours_end {
                    reads.push((Source::Hours, start, Some(hours_end)));
                }
            }
        }
    }
    reads
}

/// Summary rows of an owner-level `table` (`user_id` and the histogram
/// columns) in [`Row`]'s shape with no webhook, `hour` and `event` the
/// columns' expressions, `condition` choosing the rows. The parameters of
/// every read: `$1` the bucket bounds (unused here, so every read binds
/// alike), `$2`..`$3` the part of the window, `$4` the owner for
/// [`Scope::User`].
fn owner_rows_sql(scope: Scope, table: &str, hour: &str, event: &str, condition: &str) -> String {
    let owner = match scope {
        Scope::User(_) => "AND r.user_id = $4",
        Scope::All => "",
    };
    format!(
        "SELECT 0::int8 AS webhook_id, {hour} AS hour, {event} AS event, r.attempts,
                r.successes, r.buckets, r.counts
         FROM {table} r
         WHERE $1::int4[] IS NOT NULL AND {condition} {owner}"
    )
}

/// Summary rows of a webhook-level `table` (`webhook_id` and the
/// histogram columns) in [`Row`]'s shape; as [`owner_rows_sql`].
fn webhook_rows_sql(scope: Scope, table: &str, hour: &str, event: &str, condition: &str) -> String {
    let (join, owner) = match scope {
        Scope::User(_) => (
            "JOIN webhooks w ON w.id = r.webhook_id",
            "AND w.user_id = $4",
        ),
        Scope::All => ("", ""),
    };
    format!(
        "SELECT r.webhook_id, {hour} AS hour, {event} AS event, r.attempts, r.successes,
                r.buckets, r.counts
         FROM {table} r {join}
         WHERE $1::int4[] IS NOT NULL AND {condition} {owner}"
    )
}

/// The rows of `table` keyed by `time` in `$2`..`$3`.
fn in_part(time: &str) -> String {
    format!("r.{time} >= $2 AND r.{time} < $3")
}

/// The per-owner summaries of the hours rolled up.
fn owners_sql(scope: Scope) -> String {
    owner_rows_sql(
        scope,
        "user_stats_hourly",
        "r.hour",
        "r.event",
        &in_part("hour"),
    )
}

/// The per-webhook summaries of `table` (keyed by `time`) in `$2`..`$3`.
fn rolled_sql(scope: Scope, table: &str, time: &str, event: &str) -> String {
    webhook_rows_sql(scope, table, &format!("r.{time}"), event, &in_part(time))
}

/// The hourly series of the rolled hours: counts only (the index holds
/// them); parameters as [`owner_rows_sql`]'s.
fn series_sql(scope: Scope) -> String {
    let owner = match scope {
        Scope::User(_) => "AND r.user_id = $4",
        Scope::All => "",
    };
    format!(
        "SELECT 0::int8 AS webhook_id, r.hour, ''::text AS event,
                sum(r.attempts)::int4 AS attempts, sum(r.successes)::int4 AS successes,
                '{{}}'::int2[] AS buckets, '{{}}'::int4[] AS counts
         FROM user_stats_hourly r
         WHERE $1::int4[] IS NOT NULL AND {} {owner}
         GROUP BY r.hour",
        in_part("hour")
    )
}

/// The condition selecting the window `$2`..`$3`'s rows of `r`.
const WINDOW: &str = "r.until = $3
    AND r.hours = (extract(epoch FROM $3::timestamptz - $2::timestamptz) / 3600)::int4";

/// The per-owner and event summaries of the window summarised ahead.
fn owners_window_sql(scope: Scope) -> String {
    owner_rows_sql(scope, "user_stats_window", "r.until", "r.event", WINDOW)
}

/// The per-webhook summaries of the window summarised ahead.
fn webhooks_window_sql(scope: Scope) -> String {
    webhook_rows_sql(scope, "webhook_stats_window", "r.until", "''::text", WINDOW)
}

/// The condition that the minutes summarised after the rolled range are
/// `$2`..`$3` (checked by the read as well, in the same snapshot).
const RECENT: &str = "EXISTS (SELECT 1 FROM stats_recent s, stats_generation g
                               WHERE s.rolled_until = $2 AND s.until = $3
                                 AND s.generation = g.n)";

/// The per-owner, hour and event summaries of the minutes after the rolled
/// range.
fn owners_recent_sql(scope: Scope) -> String {
    owner_rows_sql(scope, "user_stats_recent", "r.hour", "r.event", RECENT)
}

/// The per-webhook summaries of the minutes after the rolled range.
fn webhooks_recent_sql(scope: Scope) -> String {
    webhook_rows_sql(
        scope,
        "webhook_stats_recent",
        "$2::timestamptz",
        "''::text",
        RECENT,
    )
}

/// The statement summarising the attempts not rolled up yet: `$1` the
/// bucket bounds, `$2` the start, `$3` the end or NULL (up to now), `$4`
/// the owner for [`Scope::User`]. Public so a test can check its plan.
///
/// The scope is a condition in the text, not `$n IS NULL OR ...`, so the
/// plan is made for it: with a user, the index on their webhooks' logs;
/// without, the `created_at` index.
pub fn live_sql(scope: Scope) -> String {
    let owner = match scope {
        Scope::User(_) => "AND w.user_id = $4",
        Scope::All => "",
    };
    response_histogram::summary_sql(&format!(
        "l.created_at >= $2 AND ($3::timestamptz IS NULL OR l.created_at < $3) {owner}"
    ))
}

/// Counts and response times of one group, merged from summary rows.
#[derive(Default)]
struct Tally {
    attempts: i64,
    successes: i64,
    times: Histogram,
    /// Taken out of `times` once everything is added.
    times_out: Histogram,
}

impl Tally {
    // The sparse rows are added as they are: merging a dense histogram per
    // row cost more than the rest of a read.
    fn add(&mut self, row: &Row) {
        self.attempts += i64::from(row.attempts);
        self.successes += i64::from(row.successes);
        self.times.add_sparse(&row.buckets, &row.counts);
    }

    fn take_out(&mut self, row: &Row) {
        self.attempts -= i64::from(row.attempts);
        self.successes -= i64::from(row.successes);
        self.times_out.add_sparse(&row.buckets, &row.counts);
    }

    fn summary(&mut self) -> Summary {
        self.times.remove(&self.times_out);
        self.times_out = Histogram::default();
        Summary {
            attempts: self.attempts,
            successes: self.successes,
            failures: self.attempts - self.successes,
            p50_ms: self.times.percentile(0.5),
            p95_ms: self.times.percentile(0.95),
        }
    }
}

fn assemble(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    hours: u32,
    rows: Vec<(Counts, Row)>,
    names: BTreeMap<i64, String>,
) -> Stats {
    let mut hourly: Vec<HourCount> = (0..i64::from(hours.max(1)))
        .map(|i| HourCount {
            hour: from + Duration::hours(i),
            successes: 0,
            failures: 0,
        })
        .collect();
    let mut total = Tally::default();
    let mut webhooks: BTreeMap<i64, Tally> = BTreeMap::new();
    let mut events: BTreeMap<String, Tally> = BTreeMap::new();
    for (counts, row) in rows {
        if counts.webhooks {
            let tally = webhooks.entry(row.webhook_id).or_default();
            if counts.out {
                tally.take_out(&row);
            } else {
                tally.add(&row);
            }
        }
        if counts.series {
            let index = (row.hour - from).num_hours();
            if let Some(slot) = usize::try_from(index).ok().and_then(|i| hourly.get_mut(i)) {
                slot.successes += i64::from(row.successes);
                slot.failures += i64::from(row.attempts - row.successes);
            }
        }
        if !counts.summaries {
            continue;
        }
        total.add(&row);
        match events.get_mut(&row.event) {
            Some(tally) => tally.add(&row),
            None => {
                let mut tally = Tally::default();
                tally.add(&row);
                events.insert(row.event, tally);
            }
        }
    }
    Stats {
        from,
        to,
        hourly,
        total: total.summary(),
        webhooks: webhooks
            .into_iter()
            // Attempts only in a day's hours before the window: none left.
            .filter(|(_, tally)| tally.attempts > 0)
            .map(|(webhook_id, mut tally)| WebhookSummary {
                webhook_id,
                name: names.get(&webhook_id).cloned().unwrap_or_default(),
                summary: tally.summary(),
            })
            .collect(),
        events: events
            .into_iter()
            .map(|(event, mut tally)| EventSummary {
                event,
                summary: tally.summary(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_cut_at_the_rolled_range() {
        let at = |h: i64| DateTime::UNIX_EPOCH + Duration::hours(h);
        let range = |from, until| {
            Some(RolledRange {
                from: at(from),
                until: at(until),
            })
        };
        let live = |start, end: Option<i64>| Part::Live {
            start: at(start),
            end: end.map(at),
        };
        let rolled = |start, end| Part::Rolled {
            start: at(start),
            end: at(end),
        };
        assert_eq!(parts(at(10), None, None), vec![live(10, None)]);
        assert_eq!(
            parts(at(10), range(5, 20), None),
            vec![rolled(10, 20), live(20, None)]
        );
        assert_eq!(
            parts(at(10), range(12, 20), None),
            vec![live(10, Some(12)), rolled(12, 20), live(20, None)]
        );
        assert_eq!(parts(at(10), range(2, 8), None), vec![live(10, None)]);
        assert_eq!(
            parts(at(10), range(30, 30), None),
            vec![live(10, Some(30)), live(30, None)]
        );
        // The minutes summarised after the range, then the scan.
        let minutes = at(20) + Duration::minutes(50);
        assert_eq!(
            parts(at(10), range(5, 20), Some(minutes)),
            vec![
                rolled(10, 20),
                Part::Recent {
                    start: at(20),
                    end: minutes
                },
                Part::Live {
                    start: minutes,
                    end: None
                }
            ]
        );
        // Not when the window starts after the range's end: they would
        // count minutes before it.
        assert_eq!(
            parts(at(21), range(5, 20), Some(at(22))),
            vec![live(21, None)]
        );
    }

    #[test]
    fn days_held_from_their_start_are_read_from_the_day_level() {
        let at = |h: i64| DateTime::UNIX_EPOCH + Duration::hours(h);
        let range = Some(RolledRange {
            from: at(0),
            until: at(77),
        });
        let reads = reads(
            vec![
                Part::Rolled {
                    start: at(14),
                    end: at(24 * 3 + 5),
                },
                Part::Live {
                    start: at(24 * 3 + 5),
                    end: None,
                },
            ],
            range,
            false,
        );
        assert_eq!(
            reads,
            vec![
                (Source::Owners, at(14), Some(at(77))),
                (Source::Days, at(24), Some(at(77))),
                (Source::Hours, at(14), Some(at(24))),
                (Source::Live, at(77), None),
            ]
        );
        // Most of the first day in the window: its row minus its hours
        // before the window.
        let late_start = super::reads(
            vec![Part::Rolled {
                start: at(26),
                end: at(77),
            }],
            range,
            false,
        );
        assert_eq!(
            late_start,
            vec![
                (Source::Owners, at(26), Some(at(77))),
                (Source::Days, at(24), Some(at(77))),
                (Source::HoursOut, at(24), Some(at(26))),
            ]
        );
        let summarised = super::reads(
            vec![
                Part::Rolled {
                    start: at(14),
                    end: at(77),
                },
                Part::Live {
                    start: at(77),
                    end: None,
                },
            ],
            range,
            true,
        );
        assert_eq!(
            summarised,
            vec![
                (Source::Series, at(14), Some(at(77))),
                (Source::OwnersWindow, at(14), Some(at(77))),
                (Source::WebhooksWindow, at(14), Some(at(77))),
                (Source::Live, at(77), None),
            ]
        );
        let within_a_day = super::reads(
            vec![Part::Rolled {
                start: at(25),
                end: at(30),
            }],
            range,
            false,
        );
        assert_eq!(
            within_a_day,
            vec![
                (Source::Owners, at(25), Some(at(30))),
                (Source::Hours, at(25), Some(at(30))),
            ]
        );
        let from_midnight = super::reads(
            vec![Part::Rolled {
                start: at(24),
                end: at(30),
            }],
            range,
            false,
        );
        assert_eq!(
            from_midnight,
            vec![
                (Source::Owners, at(24), Some(at(30))),
                (Source::Days, at(24), Some(at(30))),
            ]
        );
    }
}
