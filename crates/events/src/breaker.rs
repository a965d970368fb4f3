//! The circuit breaker of a webhook: after `failures` consecutive failed
//! attempts its pending deliveries stop being attempted one by one (they are
//! parked); after a cooldown one probe tests the receiver; the probe's
//! success closes the breaker (the backlog resumes), its failure opens it
//! again for twice the cooldown, up to a maximum.
//!
//! The rules are here, pure; storage applies the same rules in the statement
//! that records attempts (`webhookd_store::breakers`), with the numbers this
//! policy gives it, so a transition costs no extra round trip.

use std::time::Duration;

/// The breaker's configuration (`delivery.breaker_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed attempts that open the breaker; 0: never opens.
    pub failures: u32,
    /// The wait before the first probe.
    pub cooldown: Duration,
    /// The longest wait between probes.
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            failures: 10,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

impl BreakerPolicy {
    /// Whether a breaker can open at all.
    pub fn enabled(&self) -> bool {
        self.failures > 0
    }

    /// The cooldown after a failed probe that followed `current`: doubled,
    /// at most the maximum, never below the first one.
    pub fn next_cooldown(&self, current: Duration) -> Duration {
        current
            .saturating_mul(2)
            .min(self.max_cooldown)
            .max(self.cooldown.min(self.max_cooldown))
    }

    /// The first cooldown, within the maximum.
    pub fn first_cooldown(&self) -> Duration {
        self.cooldown.min(self.max_cooldown)
    }

    /// The transition after an attempt of the webhook ended `ok` or not;
    /// `probe`: the attempt was the breaker's probe.
    pub fn after(&self, state: BreakerState, ok: bool, probe: bool) -> BreakerState {
        match state {
            BreakerState::Closed { .. } if ok => BreakerState::Closed { failures: 0 },
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if self.enabled() && failures >= self.failures {
                    BreakerState::Open {
                        cooldown: self.first_cooldown(),
                    }
                } else {
                    BreakerState::Closed { failures }
                }
            }
            BreakerState::HalfOpen { cooldown } if probe => match ok {
                true => BreakerState::Closed { failures: 0 },
                false => BreakerState::Open {
                    cooldown: self.next_cooldown(cooldown),
                },
            },
            // An attempt that was already under way when the breaker opened
            // (not the probe) changes nothing: only the probe decides.
            open @ (BreakerState::Open { .. } | BreakerState::HalfOpen { .. }) => open,
        }
    }

    /// The probe's claim: an open breaker whose cooldown is over lets one
    /// delivery through.
    pub fn probe(&self, state: BreakerState) -> BreakerState {
        match state {
            BreakerState::Open { cooldown } => BreakerState::HalfOpen { cooldown },
            other => other,
        }
    }
}

/// Where a webhook's breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Deliveries are attempted; `failures` consecutive ones have failed.
    Closed { failures: u32 },
    /// Deliveries are parked until the cooldown is over.
    Open { cooldown: Duration },
    /// One probe is being attempted; the rest stay parked.
    HalfOpen { cooldown: Duration },
}

impl BreakerState {
    /// The state as the API shows it (`breaker.state`).
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }

    /// The state's name from a webhook row: open since some time or not,
    /// and a probe in flight or not.
    pub fn name_of(open: bool, probing: bool) -> &'static str {
        match (open, probing) {
            (false, _) => "closed",
            (true, false) => "open",
            (true, true) => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        cooldown: Duration::from_secs(5),
        max_cooldown: Duration::from_secs(60),
    };

    fn open(secs: u64) -> BreakerState {
        BreakerState::Open {
            cooldown: Duration::from_secs(secs),
        }
    }

    fn half_open(secs: u64) -> BreakerState {
        BreakerState::HalfOpen {
            cooldown: Duration::from_secs(secs),
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker_at_the_threshold() {
        let mut state = BreakerState::Closed { failures: 0 };
        state = POLICY.after(state, false, false);
        state = POLICY.after(state, false, false);
        assert_eq!(state, BreakerState::Closed { failures: 2 });
        state = POLICY.after(state, false, false);
        assert_eq!(state, open(5));
        assert_eq!(state.name(), "open");
    }

    #[test]
    fn a_success_resets_the_count_of_a_closed_breaker() {
        let state = POLICY.after(BreakerState::Closed { failures: 2 }, true, false);
        assert_eq!(state, BreakerState::Closed { failures: 0 });
        let state = POLICY.after(state, false, false);
        assert_eq!(
            state,
            BreakerState::Closed { failures: 1 },
            "counted afresh"
        );
    }

    #[test]
    fn a_threshold_of_zero_never_opens() {
        let off = BreakerPolicy {
            failures: 0,
            ..POLICY
        };
        assert!(!off.enabled());
        let mut state = BreakerState::Closed { failures: 0 };
        for _ in 0..1000 {
            state = off.after(state, false, false);
        }
        assert_eq!(state, BreakerState::Closed { failures: 1000 });
    }

    #[test]
    fn an_open_breaker_lets_one_probe_through() {
        assert_eq!(POLICY.probe(open(5)), half_open(5));
        let closed = BreakerState::Closed { failures: 1 };
        assert_eq!(POLICY.probe(closed), closed, "nothing to probe");
        assert_eq!(POLICY.probe(half_open(5)), half_open(5), "one at a time");
        assert_eq!(half_open(5).name(), "half_open");
    }

    #[test]
    fn a_successful_probe_closes_the_breaker() {
        let state = POLICY.after(half_open(20), true, true);
        assert_eq!(state, BreakerState::Closed { failures: 0 });
        assert_eq!(state.name(), "closed");
    }

    #[test]
    fn a_failed_probe_reopens_with_twice_the_cooldown_up_to_the_maximum() {
        assert_eq!(POLICY.after(half_open(5), false, true), open(10));
        assert_eq!(POLICY.after(half_open(40), false, true), open(60));
        assert_eq!(POLICY.after(half_open(60), false, true), open(60));
    }

    #[test]
    fn attempts_other_than_the_probe_do_not_move_an_open_breaker() {
        for ok in [true, false] {
            assert_eq!(POLICY.after(open(5), ok, false), open(5));
            assert_eq!(POLICY.after(half_open(5), ok, false), half_open(5));
        }
    }

    #[test]
    fn cooldowns_stay_within_the_maximum_even_when_misconfigured() {
        let odd = BreakerPolicy {
            failures: 1,
            cooldown: Duration::from_secs(90),
            max_cooldown: Duration::from_secs(60),
        };
        assert_eq!(odd.first_cooldown(), Duration::from_secs(60));
        assert_eq!(odd.next_cooldown(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(
            POLICY.next_cooldown(Duration::MAX),
            Duration::from_secs(60),
            "no overflow"
        );
        assert_eq!(POLICY.next_cooldown(Duration::ZERO), Duration::from_secs(5));
    }

    #[test]
    fn the_api_names_follow_the_row() {
        assert_eq!(BreakerState::name_of(false, false), "closed");
        assert_eq!(BreakerState::name_of(false, true), "closed");
        assert_eq!(BreakerState::name_of(true, false), "open");
        assert_eq!(BreakerState::name_of(true, true), "half_open");
    }
}
