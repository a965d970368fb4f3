//! When this process last saw a Postgres connection break, so the pool can
//! retire connections opened before it (see `pool_options` in `lib.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The process's reference instant; marks are microseconds after it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Microseconds after `EPOCH` of the last lost connection; 0: none yet.
static LAST_LOSS_MICROS: AtomicU64 = AtomicU64::new(0);

fn micros_since_epoch(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_micros()).unwrap_or(u64::MAX)
}

/// Records that a connection was found broken now.
pub(crate) fn lost_now() {
    // +1 keeps the mark non-zero even at the epoch itself.
    let now = micros_since_epoch(Instant::now()).saturating_add(1);
    LAST_LOSS_MICROS.fetch_max(now, Ordering::Relaxed);
}

/// Whether a connection `age` old was opened after the last loss (or no
/// loss was seen): `false` retires it.
pub(crate) fn opened_after_last_loss(age: Duration) -> bool {
    let last = LAST_LOSS_MICROS.load(Ordering::Relaxed);
    if last == 0 {
        return true;
    }
    let opened = Instant::now()
        .checked_sub(age)
        .map_or(0, micros_since_epoch)
        .saturating_add(1);
    opened > last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_a_loss_are_retired_and_later_ones_kept() {
        // Runs in this test binary's own statics; other unit tests here do
        // not lose connections.
        std::thread::sleep(Duration::from_millis(5));
        lost_now();
        assert!(!opened_after_last_loss(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(opened_after_last_loss(Duration::from_millis(1)));
        assert!(!opened_after_last_loss(Duration::from_millis(50)));
    }
}
