//! Bounded polling: the one way these tests wait for something to become
//! true.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long [`eventually`] sleeps between two checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Some`, at most
/// `within`; panics naming `what` when time runs out.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
