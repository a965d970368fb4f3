//! The live attempt feed behind `subscription { deliveryAttempts }` and the
//! web UI's live logs page.
//!
//! Attempts are written by worker processes, any replica, so this process
//! polls `webhook_logs`: one query per tick for every webhook somebody here
//! watches, only while somebody does. `created_at` is the recording
//! transaction's start, so a row may commit after rows stamped later than
//! it; each poll therefore re-reads an overlap window
//! (`graphql.attempts_overlap_ms`) and rows are de-duplicated by id. A
//! watcher gets the rows stamped at or after it joined (by the database's
//! clock, the one that stamps them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use webhookd_store::attempt_feed::{database_now, recent_attempts, RecordedAttempt};
use webhookd_store::page::After;
use webhookd_store::StorageError;

use super::feed::Feed;
use super::metrics::{GraphqlMetrics, ItemsStreamed, Kind, SubscriberTooSlow};

/// Rows read per poll at most; a longer backlog is read over later polls.
const POLL_LIMIT: i64 = 1000;

/// How the feed polls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollSettings {
    pub(crate) interval: Duration,
    pub(crate) overlap: Duration,
    /// Each watcher's buffer, in attempts.
    pub(crate) buffer: usize,
}

#[derive(Clone)]
pub struct LiveAttempts {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    settings: PollSettings,
    metrics: GraphqlMetrics,
    shutdown: CancellationToken,
    state: Mutex<Watchers>,
}

#[derive(Default)]
struct Watchers {
    next_id: u64,
    watchers: HashMap<u64, Watcher>,
    /// The running poller's stop switch.
    poller: Option<CancellationToken>,
}

struct Watcher {
    webhook_id: i64,
    user_id: i64,
    since: DateTime<Utc>,
    items: mpsc::Sender<Arc<RecordedAttempt>>,
    cut_off: CancellationToken,
}

impl LiveAttempts {
    pub(crate) fn new(
        pool: PgPool,
        settings: PollSettings,
        metrics: GraphqlMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        LiveAttempts {
            inner: Arc::new(Inner {
                pool,
                settings,
                metrics,
                shutdown,
                state: Mutex::default(),
            }),
        }
    }

    /// Cancelled when the process shuts down.
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Watches webhook `webhook_id` (the caller has checked that `user_id`
    /// may): every attempt recorded from now on. Cancels `cut_off` if the
    /// watcher falls a whole buffer behind.
    pub(crate) async fn watch(
        &self,
        webhook_id: i64,
        user_id: i64,
        cut_off: CancellationToken,
    ) -> Result<Feed<Arc<RecordedAttempt>>, StorageError> {
        let since = database_now(&self.inner.pool).await?;
        let (sender, receiver) = mpsc::channel(self.inner.settings.buffer);
        let mut state = self.inner.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.watchers.insert(
            id,
            Watcher {
                webhook_id,
                user_id,
                since,
                items: sender,
                cut_off,
            },
        );
        if state.poller.is_none() {
            let stop = self.inner.shutdown.child_token();
            state.poller = Some(stop.clone());
            tokio::spawn(poll(self.inner.clone(), stop));
        }
        drop(state);
        let membership = Membership {
            inner: self.inner.clone(),
            id,
        };
        Ok(Feed::new(receiver, membership))
    }
}

struct Membership {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.watchers.remove(&self.id);
        if state.watchers.is_empty() {
            if let Some(stop) = state.poller.take() {
                stop.cancel();
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watchers> {
        // Plain maps: usable whatever a panicking holder was doing.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The webhooks watched and the earliest time any watcher needs.
    fn watched(&self) -> Option<(Vec<i64>, DateTime<Utc>)> {
        let state = self.lock();
        let since = state.watchers.values().map(|w| w.since).min()?;
        let mut ids: Vec<i64> = state.watchers.values().map(|w| w.webhook_id).collect();
        ids.sort_unstable();
        ids.dedup();
        Some((ids, since))
    }

    /// Hands new rows to their webhooks' watchers.
    fn dispatch(&self, rows: Vec<Arc<RecordedAttempt>>) {
        let mut streamed = 0;
        let mut too_slow = Vec::new();
        let mut gone = Vec::new();
        let mut state = self.lock();
        for row in rows {
            for (id, watcher) in &state.watchers {
                if watcher.webhook_id != row.webhook_id || row.created_at < watcher.since {
                    continue;
                }
                match watcher.items.try_send(row.clone()) {
                    Ok(()) => streamed += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                    Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
                }
            }
            for id in gone.drain(..) {
                state.watchers.remove(&id);
            }
            for id in too_slow.drain(..) {
                if let Some(watcher) = state.watchers.remove(&id) {
                    watcher.cut_off.cancel();
                    SubscriberTooSlow {
                        feed: Kind::DeliveryAttempts,
                        user_id: watcher.user_id,
                        buffer: self.settings.buffer,
                    }
                    .emit(&self.metrics);
                }
            }
        }
        drop(state);
        if streamed > 0 {
            ItemsStreamed {
                feed: Kind::DeliveryAttempts,
                count: streamed,
            }
            .emit(&self.metrics);
        }
    }
}

/// What the poller remembers between ticks.
#[derive(Default)]
struct Window {
    /// Ids already handed out, with their stamps, to skip them when the
    /// overlap reads them again; forgotten once out of the window.
    seen: HashMap<i64, DateTime<Utc>>,
    /// The database's clock at the last poll.
    polled_at: Option<DateTime<Utc>>,
    /// Where a poll cut short by the row limit stopped.
    resume: Option<After<i64>>,
}

impl Window {
    /// Where the next poll starts: the overlap before the last poll, never
    /// before the earliest watcher joined, and past a cut-short poll's end.
    fn start(&self, since: DateTime<Utc>, overlap: Duration) -> After<i64> {
        let overlap = chrono::Duration::from_std(overlap).unwrap_or(chrono::Duration::MAX);
        let mut from = After {
            created_at: since,
            id: i64::MIN,
        };
        if let Some(polled_at) = self.polled_at {
            let window = polled_at.checked_sub_signed(overlap).unwrap_or(since);
            if window > from.created_at {
                from.created_at = window;
            }
        }
        if let Some(resume) = &self.resume {
            if (resume.created_at, resume.id) > (from.created_at, from.id) {
                from = resume.clone();
            }
        }
        from
    }

    /// The rows not handed out before; remembers them.
    fn fresh(
        &mut self,
        from: &After<i64>,
        rows: Vec<RecordedAttempt>,
    ) -> Vec<Arc<RecordedAttempt>> {
        self.seen.retain(|_, at| *at >= from.created_at);
        rows.into_iter()
            .filter(|row| self.seen.insert(row.id, row.created_at).is_none())
            .map(Arc::new)
            .collect()
    }
}

async fn poll(inner: Arc<Inner>, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(inner.settings.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut window = Window::default();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some((webhooks, since)) = inner.watched() else {
            continue;
        };
        let from = window.start(since, inner.settings.overlap);
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = recent_attempts(&inner.pool, &webhooks, &from, POLL_LIMIT) => read,
        };
        match read {
            Ok(read) => {
                let limited = i64::try_from(read.attempts.len()).unwrap_or(i64::MAX) >= POLL_LIMIT;
                window.resume = read.attempts.last().filter(|_| limited).map(|last| After {
                    created_at: last.created_at,
                    id: last.id,
                });
                window.polled_at = Some(read.now);
                let fresh = window.fresh(&from, read.attempts);
                if !fresh.is_empty() {
                    inner.dispatch(fresh);
                }
            }
            Err(e) => warn!(error = %e, "attempt feed: polling webhook_logs failed; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn row(id: i64, at: DateTime<Utc>) -> RecordedAttempt {
        RecordedAttempt {
            id,
            webhook_id: 1,
            delivery_id: Uuid::nil(),
            event: "task.created".to_owned(),
            attempt: 1,
            status_code: Some(200),
            response_time_ms: 1,
            is_success: true,
            error_message: None,
            created_at: at,
        }
    }

    #[test]
    fn the_window_overlaps_the_last_poll_and_hands_out_each_row_once() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let overlap = Duration::from_secs(10);
        let mut window = Window::default();
        let from = window.start(t0, overlap);
        assert_eq!(from.created_at, t0);
        let first = window.fresh(&from, vec![row(1, t0), row(2, t0)]);
        assert_eq!(first.len(), 2);
        window.polled_at = Some(t0 + chrono::Duration::seconds(60));
        let from = window.start(t0, overlap);
        assert_eq!(from.created_at, t0 + chrono::Duration::seconds(50));
        // A row stamped inside the window that committed late is new; one
        // handed out before is not.
        let late = t0 + chrono::Duration::seconds(55);
        window.seen.insert(3, late);
        let second = window.fresh(&from, vec![row(3, late), row(4, late)]);
        assert_eq!(second.iter().map(|r| r.id).collect::<Vec<_>>(), vec![4]);
        assert!(
            !window.seen.contains_key(&1),
            "rows out of the window are forgotten"
        );
    }

    #[test]
    fn a_poll_cut_short_resumes_after_its_last_row() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let window = Window {
            resume: Some(After {
                created_at: t0,
                id: 42,
            }),
            ..Window::default()
        };
        let from = window.start(t0, Duration::from_secs(10));
        assert_eq!((from.created_at, from.id), (t0, 42));
    }
}
