//! Broker acks: the only place a consumed message is acked.
//!
//! A message is acked once its events and deliveries are committed in
//! Postgres, never before: a crash before that has the broker redeliver it,
//! which is harmless because the fan-out is idempotent. The batch writer
//! (`commit.rs`) commits batches in consumption order and hands each written
//! batch here; one ack with `multiple` then covers it and every batch before
//! it.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::time::Instant;

use crate::metrics::events::AckFailed;

/// Written batches are acked together, at most this long after the first
/// of them was written: at a low rate each ack was a round of thread
/// wake-ups in webhookd and work in RabbitMQ for a single message. A crash
/// meanwhile only has the broker redeliver written messages, which find
/// their rows and are not attempted again.
const ACK_DELAY: Duration = Duration::from_millis(20);

/// The written messages of one broker session not acked yet.
pub(crate) struct Acks {
    /// Acked at once when this many messages wait (half the prefetch, so the
    /// broker never waits for an ack to send more).
    every: usize,
    /// The last written message, how many wait, and when the ack is due at
    /// the latest.
    unacked: Option<(Delivery, usize, Instant)>,
}

impl Acks {
    pub(crate) fn new(every: usize) -> Self {
        Acks {
            every: every.max(1),
            unacked: None,
        }
    }

    /// When the messages waiting must be acked at the latest.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.unacked.as_ref().map(|(_, _, due)| *due)
    }

    /// Notes a written batch (`last` is its last message, of `messages`) for
    /// the next ack, and acks at once when enough messages wait.
    pub(crate) async fn written(&mut self, last: Option<Delivery>, messages: usize) {
        let Some(last) = last else { return };
        let (count, due) = match self.unacked.take() {
            Some((_, count, due)) => (count + messages, due),
            None => (messages, Instant::now() + ACK_DELAY),
        };
        self.unacked = Some((last, count, due));
        if count >= self.every {
            self.flush().await;
        }
    }

    /// Acks every written batch noted so far.
    pub(crate) async fn flush(&mut self) {
        if let Some((last, messages, _)) = self.unacked.take() {
            if let Err(error) = last.ack(BasicAckOptions { multiple: true }).await {
                // Written: the redelivered messages will find their rows.
                AckFailed {
                    error: &error,
                    messages,
                }
                .emit();
            }
        }
    }
}
