//! The HTTP server's table of open connections: what `http.max_connections`
//! counts, and which connection gives way when the table is full.
//!
//! A connection is *busy* while a response of its is being produced or
//! streamed (the guard lives in the response body, so a live log stream is
//! busy for its whole life) and *idle* otherwise, including while its
//! request's headers trickle in. When the table is full, a new connection
//! closes the idle connection that has been idle longest: sockets that dribble
//! one header byte at a time can never hold the port, while a connection with
//! a request in flight is never cut. Only when every connection is busy is the
//! new one refused (closed at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone)]
pub(crate) struct ConnectionTable {
    inner: Arc<Mutex<Table>>,
    max: usize,
    idle_timeout: Duration,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Ticks at each admission and each end of a response: orders idle
    /// connections by when they were last used, without comparing clocks.
    next_tick: u64,
    open: HashMap<u64, Entry>,
}

impl Table {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }
}

struct Entry {
    busy: usize,
    idle_since: Instant,
    last_used: u64,
    close: Arc<Notify>,
}

/// A connection's place in the table; leaving it (drop) frees the place.
pub(crate) struct Admitted {
    table: ConnectionTable,
    id: u64,
    /// Notified when a newer connection takes this idle one's place.
    pub(crate) evicted: Arc<Notify>,
}

/// Held while a response is produced and streamed.
pub(crate) struct Busy {
    table: ConnectionTable,
    id: u64,
}

impl ConnectionTable {
    pub(crate) fn new(max: usize, idle_timeout: Duration) -> Self {
        ConnectionTable {
            inner: Arc::default(),
            max: max.max(1),
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it:
        // every change is a single insert, remove or counter update.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection, closing the longest-idle one when the
    /// table is full; `None` when every open connection is busy.
    pub(crate) fn admit(&self) -> Option<Admitted> {
        let mut table = self.lock();
        if table.open.len() >= self.max {
            let oldest_idle = table
                .open
                .iter()
                .filter(|(_, entry)| entry.busy == 0)
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, _)| *id);
            let entry = oldest_idle.and_then(|id| table.open.remove(&id))?;
            // `notify_one` keeps the wake-up if the task is not waiting yet.
            entry.close.notify_one();
        }
        let id = table.next_id;
        table.next_id += 1;
        let evicted = Arc::new(Notify::new());
        let last_used = table.tick();
        table.open.insert(
            id,
            Entry {
                busy: 0,
                idle_since: Instant::now(),
                last_used,
                close: evicted.clone(),
            },
        );
        Some(Admitted {
            table: self.clone(),
            id,
            evicted,
        })
    }

    #[cfg(test)]
    fn open_connections(&self) -> usize {
        self.lock().open.len()
    }
}

impl Admitted {
    /// Marks the connection busy until the returned guard is dropped.
    pub(crate) fn begin_request(&self) -> Busy {
        if let Some(entry) = self.table.lock().open.get_mut(&self.id) {
            entry.busy += 1;
        }
        Busy {
            table: self.table.clone(),
            id: self.id,
        }
    }

    /// When this connection will have been idle for `http.idle_timeout_secs`.
    /// While it is busy: a timeout from now, the time to look again. A
    /// connection evicted from the table is overdue at once.
    pub(crate) fn idle_deadline(&self) -> Instant {
        let now = Instant::now();
        match self.table.lock().open.get(&self.id) {
            Some(entry) if entry.busy > 0 => now + self.table.idle_timeout,
            Some(entry) => entry.idle_since + self.table.idle_timeout,
            None => now,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.id);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut table = self.table.lock();
        let tick = table.tick();
        if let Some(entry) = table.open.get_mut(&self.id) {
            entry.busy = entry.busy.saturating_sub(1);
            if entry.busy == 0 {
                entry.idle_since = Instant::now();
                entry.last_used = tick;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn a_full_table_closes_the_connection_unused_for_longest() {
        let table = ConnectionTable::new(2, IDLE);
        let first = table.admit().expect("room");
        let second = table.admit().expect("room");
        // `first` answers a request: `second` is now the one unused longest.
        drop(first.begin_request());
        let third = table.admit().expect("an idle connection gives way");
        assert_eq!(table.open_connections(), 2);
        assert!(
            second.idle_deadline() <= Instant::now(),
            "evicted: overdue at once"
        );
        assert!(first.idle_deadline() > Instant::now());
        drop(third);
        assert_eq!(table.open_connections(), 1);
    }

    #[tokio::test]
    async fn a_busy_connection_is_never_evicted_and_a_full_busy_table_refuses() {
        let table = ConnectionTable::new(1, IDLE);
        let only = table.admit().expect("room");
        let busy = only.begin_request();
        assert!(only.idle_deadline() > Instant::now() + IDLE / 2);
        assert!(table.admit().is_none(), "every connection is busy");
        drop(busy);
        assert!(
            only.idle_deadline() > Instant::now(),
            "idle, not yet overdue"
        );
        assert!(table.admit().is_some(), "now idle: it gives way");
        assert!(only.idle_deadline() <= Instant::now());
    }
}
