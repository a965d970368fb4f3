//! The retry schedule: exponential backoff with jitter, or a webhook's own
//! list of delays; `Retry-After` clamped either way.
//!
//! Pure: the caller passes the random sample, so the schedule is testable
//! exhaustively and the daemon stores its result durably (`next_attempt_at`)
//! instead of sleeping it out in memory.

use std::sync::Arc;
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

/// A webhook's own delays (SPEC §13 `retry_schedule`), in seconds: attempt
/// n+1 waits the n-th, so there are `len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Arc<[u32]>);

impl RetrySchedule {
    pub const MAX_DELAYS: usize = 30;
    /// One week: a longer wait outlives any sensible retention of the event.
    pub const MAX_DELAY_SECS: u32 = 604_800;

    /// The schedule, if `delays` is one: 1 to [`Self::MAX_DELAYS`] delays,
    /// each 1 s to [`Self::MAX_DELAY_SECS`].
    pub fn new(delays: &[i64]) -> Result<Self, ScheduleError> {
        if delays.is_empty() || delays.len() > Self::MAX_DELAYS {
            return Err(ScheduleError::Length(delays.len()));
        }
        let checked = delays
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                u32::try_from(d)
                    .ok()
                    .filter(|d| (1..=Self::MAX_DELAY_SECS).contains(d))
                    .ok_or(ScheduleError::Delay { index: i, value: d })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        Ok(RetrySchedule(checked.into()))
    }

    pub fn delays(&self) -> &[u32] {
        &self.0
    }

    /// Attempts in all, the first one included.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.0.len()).map_or(u32::MAX, |n| n.saturating_add(1))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("must list 1 to {max} delays, not {0}", max = RetrySchedule::MAX_DELAYS)]
    Length(usize),
    #[error("delay {index} is {value}: each delay is 1 to {max} seconds", max = RetrySchedule::MAX_DELAY_SECS)]
    Delay { index: usize, value: i64 },
}

impl RetryPolicy {
    /// The decision after attempt `attempt` failed, by `schedule` when the
    /// webhook has one, else by this policy. A schedule's delays get ±10 %
    /// of jitter (none with [`Jitter::None`]), so a burst of failures does
    /// not come back at one instant yet the owner's delays stay what they
    /// said. `Retry-After` is clamped to the longer of `max_backoff` and the
    /// schedule's longest delay.
    pub(crate) fn decide(
        &self,
        schedule: Option<&RetrySchedule>,
        attempt: u32,
        sample: f64,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        let Some(schedule) = schedule else {
            return self.after_failure(attempt, sample, retry_after);
        };
        let Some(&delay) = usize::try_from(attempt)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| schedule.delays().get(i))
        else {
            return RetryDecision::GiveUp;
        };
        if let Some(wait) = retry_after {
            let longest = schedule.delays().iter().copied().max().unwrap_or(delay);
            let clamp = self
                .max_backoff
                .max(Duration::from_secs(u64::from(longest)));
            return RetryDecision::RetryAfter(wait.min(clamp));
        }
        let delay = Duration::from_secs(u64::from(delay));
        RetryDecision::RetryAfter(match self.jitter {
            Jitter::None => delay,
            Jitter::Full | Jitter::Equal => delay.mul_f64(0.9 + 0.2 * unit(sample)),
        })
    }

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
        let sample = unit(sample);
        let delay = match self.jitter {
            Jitter::Full => cap.mul_f64(sample),
            Jitter::Equal => cap / 2 + (cap / 2).mul_f64(sample),
            Jitter::None => cap,
        };
        RetryDecision::RetryAfter(delay)
    }
}

/// A sample forced into `[0, 1]`: the caller's random number is not trusted.
fn unit(sample: f64) -> f64 {
    if sample.is_finite() {
        sample.clamp(0.0, 1.0)
    } else {
        0.0
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

    fn schedule(delays: &[i64]) -> RetrySchedule {
        RetrySchedule::new(delays).unwrap()
    }

    #[test]
    fn a_schedule_waits_its_own_delays_then_gives_up_after_len_plus_one_attempts() {
        let p = policy(Jitter::None);
        let s = schedule(&[5, 300, 1800]);
        assert_eq!(s.max_attempts(), 4);
        let gaps: Vec<RetryDecision> = (1..=4).map(|a| p.decide(Some(&s), a, 0.5, None)).collect();
        assert_eq!(
            gaps,
            [
                RetryDecision::RetryAfter(Duration::from_secs(5)),
                RetryDecision::RetryAfter(Duration::from_secs(300)),
                RetryDecision::RetryAfter(Duration::from_secs(1800)),
                RetryDecision::GiveUp,
            ]
        );
        assert_eq!(p.decide(Some(&s), 0, 0.5, None), RetryDecision::GiveUp);
    }

    #[test]
    fn a_schedule_ignores_the_policys_attempt_count_and_backoff() {
        // The policy allows 5 attempts capped at 1 s; the schedule 2, of 60 s.
        let p = policy(Jitter::None);
        let s = schedule(&[60]);
        assert_eq!(
            p.decide(Some(&s), 1, 0.5, None),
            RetryDecision::RetryAfter(Duration::from_secs(60))
        );
        assert_eq!(p.decide(Some(&s), 2, 0.5, None), RetryDecision::GiveUp);
        assert_eq!(p.decide(None, 2, 0.5, None), p.after_failure(2, 0.5, None));
    }

    #[test]
    fn a_schedules_jitter_stays_within_ten_percent() {
        let s = schedule(&[100]);
        for jitter in [Jitter::Full, Jitter::Equal] {
            let p = policy(jitter);
            for i in 0..=100 {
                let d = delay(p.decide(Some(&s), 1, f64::from(i) / 100.0, None));
                assert!(
                    d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                    "{d:?}"
                );
            }
            let low = delay(p.decide(Some(&s), 1, 0.0, None));
            let high = delay(p.decide(Some(&s), 1, 1.0, None));
            assert!(low < high, "the sample moves the delay");
        }
    }

    #[test]
    fn retry_after_with_a_schedule_is_clamped_to_its_longest_delay_or_the_policys_cap() {
        let p = policy(Jitter::None); // max_backoff 1 s
        let s = schedule(&[5, 120]);
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(
            delay(p.decide(Some(&s), 1, 0.5, day)),
            Duration::from_secs(120)
        );
        let short = Some(Duration::from_secs(7));
        assert_eq!(
            delay(p.decide(Some(&s), 1, 0.5, short)),
            Duration::from_secs(7)
        );
        let tiny = schedule(&[1]);
        assert_eq!(
            delay(p.decide(Some(&tiny), 1, 0.5, day)),
            p.max_backoff.max(Duration::from_secs(1))
        );
    }

    #[test]
    fn schedules_are_checked() {
        assert_eq!(RetrySchedule::new(&[]), Err(ScheduleError::Length(0)));
        assert_eq!(RetrySchedule::new(&[1; 31]), Err(ScheduleError::Length(31)));
        assert!(RetrySchedule::new(&[1; 30]).is_ok());
        assert_eq!(
            RetrySchedule::new(&[5, 0]),
            Err(ScheduleError::Delay { index: 1, value: 0 })
        );
        assert_eq!(
            RetrySchedule::new(&[-3]),
            Err(ScheduleError::Delay {
                index: 0,
                value: -3
            })
        );
        assert!(RetrySchedule::new(&[604_800]).is_ok());
        assert!(RetrySchedule::new(&[604_801]).is_err());
        assert!(RetrySchedule::new(&[i64::MAX]).is_err());
    }
}
