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
//!
//! `http.max_connections_per_client` applies the same rule per client
//! address first: a client at its share gives up its own longest-idle
//! connection (never another client's), or has the new one refused when all
//! of its connections are busy. So one address cannot fill the table with
//! busy streams and keep everyone else out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Clone)]
pub(crate) struct ConnectionTable {
    inner: Arc<Mutex<Table>>,
    max: usize,
    /// 0: no per-client share.
    max_per_client: usize,
    idle_timeout: Duration,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// Ticks at each admission and each end of a response: orders idle
    /// connections by when they were last used, without comparing clocks.
    next_tick: u64,
    open: HashMap<u64, Entry>,
    /// Open connections per client address.
    per_client: HashMap<IpAddr, usize>,
}

impl Table {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// The idle connection unused longest, among `client`'s or everyone's.
    fn longest_idle(&self, client: Option<IpAddr>) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, entry)| entry.busy == 0 && client.is_none_or(|c| entry.client == c))
            .min_by_key(|(_, entry)| entry.last_used)
            .map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(count) = self.per_client.get_mut(&entry.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_client.remove(&entry.client);
            }
        }
        Some(entry)
    }

    /// Closes the longest-idle connection (of `client`, or anyone's); false
    /// when every candidate is busy.
    fn evict_longest_idle(&mut self, client: Option<IpAddr>) -> bool {
        let Some(entry) = self.longest_idle(client).and_then(|id| self.remove(id)) else {
            return false;
        };
        // `notify_one` keeps the wake-up if the task is not waiting yet.
        entry.close.notify_one();
        true
    }
}

struct Entry {
    client: IpAddr,
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
    /// `max_per_client` 0: no per-client share.
    pub(crate) fn new(max: usize, max_per_client: usize, idle_timeout: Duration) -> Self {
        ConnectionTable {
            inner: Arc::default(),
            max: max.max(1),
            max_per_client,
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent whatever panicked while holding it:
        // every change is a single insert, remove or counter update.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection from `client`, closing the client's
    /// longest-idle one when it is at its share and then the longest-idle
    /// one of all when the table is full; `None` when those are all busy.
    pub(crate) fn admit(&self, client: IpAddr) -> Option<Admitted> {
        let mut table = self.lock();
        let held = table.per_client.get(&client).copied().unwrap_or(0);
        if self.max_per_client > 0
            && held >= self.max_per_client
            && !table.evict_longest_idle(Some(client))
        {
            return None;
        }
        if table.open.len() >= self.max && !table.evict_longest_idle(None) {
            return None;
        }
        *table.per_client.entry(client).or_insert(0) += 1;
        let id = table.next_id;
        table.next_id += 1;
        let evicted = Arc::new(Notify::new());
        let last_used = table.tick();
        table.open.insert(
            id,
            Entry {
                client,
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
        self.table.lock().remove(self.id);
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
    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

    #[tokio::test]
    async fn a_full_table_closes_the_connection_unused_for_longest() {
        let table = ConnectionTable::new(2, 0, IDLE);
        let first = table.admit(A).expect("room");
        let second = table.admit(A).expect("room");
        // `first` answers a request: `second` is now the one unused longest.
        drop(first.begin_request());
        let third = table.admit(A).expect("an idle connection gives way");
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
        let table = ConnectionTable::new(1, 0, IDLE);
        let only = table.admit(A).expect("room");
        let busy = only.begin_request();
        assert!(only.idle_deadline() > Instant::now() + IDLE / 2);
        assert!(table.admit(A).is_none(), "every connection is busy");
        drop(busy);
        assert!(
            only.idle_deadline() > Instant::now(),
            "idle, not yet overdue"
        );
        assert!(table.admit(A).is_some(), "now idle: it gives way");
        assert!(only.idle_deadline() <= Instant::now());
    }

    #[tokio::test]
    async fn a_client_at_its_share_gives_up_its_own_idle_connection_never_anothers() {
        let table = ConnectionTable::new(100, 2, IDLE);
        let b = table.admit(B).expect("room");
        let a1 = table.admit(A).expect("room");
        let a2 = table.admit(A).expect("room");
        // B's connection is the longest idle of all, but A pays for A.
        let a3 = table.admit(A).expect("A's idle one gives way");
        assert!(a1.idle_deadline() <= Instant::now(), "A's oldest evicted");
        assert!(b.idle_deadline() > Instant::now(), "B's untouched");
        assert_eq!(table.open_connections(), 3);
        // All of A's busy: A is refused, B still gets in.
        let _busy2 = a2.begin_request();
        let _busy3 = a3.begin_request();
        assert!(table.admit(A).is_none());
        assert!(table.admit(B).is_some());
        drop(a1);
        assert_eq!(
            table.open_connections(),
            3,
            "an evicted one is not counted twice"
        );
    }
}
