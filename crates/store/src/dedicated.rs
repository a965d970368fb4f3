//! One pooled connection held by one hot-path task (the consumer, the
//! recorder) across its statements.
//!
//! Why: sqlx pings a connection every time it goes back to the pool, so a
//! statement run on the pool costs two round trips and two wake-ups. At a
//! steady, low event rate every statement is a batch of one, and that ping
//! was a large share of webhookd's CPU. A held connection pays it only when
//! it is given up: after an error (it may be broken or mid-transaction, so it
//! is closed, not reused) or when it is recycled.

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio_util::sync::CancellationToken;

use crate::StorageError;

/// A held connection is given back and a fresh one taken after this long, so
/// server-side state (caches, prepared statements) does not grow forever and
/// a failover to a new primary is picked up even without an error.
const RECYCLE_AFTER: Duration = Duration::from_secs(15 * 60);
/// Waits between tries of a failed statement ([`DedicatedConnection::until_done`]).
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// See [`DedicatedConnection::until_done`].
pub(crate) type Outlives<'c, 'a> = PhantomData<&'c &'a ()>;

pub struct DedicatedConnection {
    pool: PgPool,
    held: Option<(PoolConnection<Postgres>, Instant)>,
}

impl DedicatedConnection {
    /// Holds nothing yet: the first statement acquires.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, held: None }
    }

    /// The held connection, acquiring one if none is held. Pass what the
    /// statement returned to [`DedicatedConnection::checked`].
    pub async fn connection(&mut self) -> Result<&mut PgConnection, StorageError> {
        if self
            .held
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= RECYCLE_AFTER)
        {
            // Back to the pool, which closes it if it is past its lifetime.
            self.held = None;
        }
        let held = match self.held.take() {
            Some(held) => held,
            None => (self.pool.acquire().await?, Instant::now()),
        };
        Ok(&mut self.held.insert(held).0)
    }

    /// Passes a statement's result through; after an error the connection
    /// is closed rather than reused.
    pub fn checked<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if result.is_err() {
            if let Some((mut conn, _)) = self.held.take() {
                conn.close_on_drop();
            }
        }
        result
    }

    /// Runs `statement` until it succeeds, so nothing is dropped while the
    /// database is briefly away: after each failure `failed` reports it and
    /// the next try waits longer (100 ms, doubling, at most 5 s). `None` when
    /// `stop` fires during a wait.
    ///
    /// `statement` gets the connection and a marker whose only use is to
    /// tell the compiler that what the closure borrows (`'a`) outlives the
    /// connection's borrow (`'c`).
    pub async fn until_done<'a, T>(
        &mut self,
        stop: &CancellationToken,
        mut failed: impl FnMut(&StorageError),
        mut statement: impl for<'c> FnMut(
            &'c mut PgConnection,
            Outlives<'c, 'a>,
        ) -> BoxFuture<'c, Result<T, StorageError>>,
    ) -> Option<T> {
        let mut pause = FIRST_PAUSE;
        loop {
            let result = match self.connection().await {
                Ok(conn) => statement(conn, PhantomData).await,
                Err(e) => Err(e),
            };
            match self.checked(result) {
                Ok(done) => return Some(done),
                Err(e) => failed(&e),
            }
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// Whether a connection is held (for tests).
    pub fn is_holding(&self) -> bool {
        self.held.is_some()
    }
}
