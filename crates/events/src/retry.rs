//! The retry schedule: exponential backoff with jitter, `Retry-After` clamped.
//!
//! Pure: the caller passes the random sample, so the schedule is testable
//! exhaustively and the daemon stores its result durably (`next_attempt_at`)
//! instead of sleeping it out in memory.

use std::time::Duration;

/// How the random part of a delay is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    /// Uniform in `[0, cap]`: spreads a burst of failures the most (AWS "full jitter").
    Full,
    /// Uniform in `[cap/2, cap]`: never retries much sooner than the schedule.
    Equal,
    /// Exactly `cap`: a deterministic schedule.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: Jitter,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// The exponential cap for the delay after attempt number `attempt` (1-based):
    /// `initial * 2^(attempt-1)`, at most `max_backoff`.
    pub(crate) fn cap(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let initial_ms = u64::try_from(self.initial_backoff.as_millis()).unwrap_or(u64::MAX);
        let cap_ms = initial_ms.saturating_mul(factor);
        Duration::from_millis(cap_ms).min(self.max_backoff)
    }

    /// Decides the next step after attempt `attempt` failed.
    ///
    /// `sample` is a uniform random number in `[0, 1)`. `retry_after` is the
    /// receiver's `Retry-After` (429/503): honoured, but clamped to
    /// `max_backoff` so a receiver cannot park a delivery for days.
    pub(crate) fn after_failure(
        &self,
        attempt: u32,
        sample: f64,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        if let Some(wait) = retry_after {
            return RetryDecision::RetryAfter(wait.min(self.max_backoff));
        }
        let cap = self.cap(attempt);
        let sample = if sample.is_finite() {
            sample.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = match self.jitter {
            Jitter::Full => cap.mul_f64(sample),
            Jitter::Equal => cap / 2 + (cap / 2).mul_f64(sample),
            Jitter::None => cap,
        };
        RetryDecision::RetryAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            jitter,
        }
    }

    fn delay(d: RetryDecision) -> Duration {
        match d {
            RetryDecision::RetryAfter(d) => d,
            RetryDecision::GiveUp => panic!("gave up"),
        }
    }

    #[test]
    fn caps_double_from_the_initial_backoff_up_to_the_maximum() {
        let p = policy(Jitter::None);
        let caps: Vec<u128> = (1..=6).map(|a| p.cap(a).as_millis()).collect();
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.cap(0).as_millis(), 100);
        assert_eq!(
            p.cap(u32::MAX),
            p.max_backoff,
            "no overflow on huge attempt numbers"
        );
    }

    #[test]
    fn the_last_attempt_gives_up_whatever_the_receiver_asks() {
        let p = policy(Jitter::Full);
        assert_eq!(p.after_failure(5, 0.5, None), RetryDecision::GiveUp);
        assert_eq!(
            p.after_failure(6, 0.5, Some(Duration::ZERO)),
            RetryDecision::GiveUp
        );
        assert!(matches!(
            p.after_failure(4, 0.5, None),
            RetryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn without_jitter_the_gaps_grow_exponentially() {
        let p = policy(Jitter::None);
        let gaps: Vec<u128> = (1..5)
            .map(|a| delay(p.after_failure(a, 0.3, None)).as_millis())
            .collect();
        assert_eq!(gaps, [100, 200, 400, 800]);
    }

    #[test]
    fn full_jitter_stays_between_zero_and_the_cap() {
        let p = policy(Jitter::Full);
        for attempt in 1..5 {
            for i in 0..=100 {
                let sample = f64::from(i) / 100.0;
                let d = delay(p.after_failure(attempt, sample, None));
                assert!(d <= p.cap(attempt));
                assert_eq!(d, p.cap(attempt).mul_f64(sample));
            }
        }
    }

    #[test]
    fn equal_jitter_keeps_at_least_half_the_cap_so_gaps_still_grow() {
        let p = policy(Jitter::Equal);
        for attempt in 1..4 {
            let longest_now = delay(p.after_failure(attempt, 1.0, None));
            let shortest_next = delay(p.after_failure(attempt + 1, 0.0, None));
            assert!(shortest_next >= longest_now || p.cap(attempt + 1) == p.max_backoff);
            assert!(delay(p.after_failure(attempt, 0.0, None)) >= p.cap(attempt) / 2);
        }
    }

    #[test]
    fn odd_samples_are_clamped_not_trusted() {
        let p = policy(Jitter::Full);
        for sample in [f64::NAN, f64::INFINITY, -1.0, 7.0] {
            assert!(delay(p.after_failure(1, sample, None)) <= p.cap(1));
        }
    }

    #[test]
    fn retry_after_is_honoured_but_clamped_to_the_maximum() {
        let p = policy(Jitter::Full);
        let asked = Duration::from_millis(300);
        assert_eq!(delay(p.after_failure(1, 0.0, Some(asked))), asked);
        let greedy = Duration::from_secs(86_400);
        assert_eq!(delay(p.after_failure(1, 0.0, Some(greedy))), p.max_backoff);
    }
}
