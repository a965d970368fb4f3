//! Failed sign-ins counted per client, in memory: after
//! [`MAX_FAILURES`] unknown tokens within [`WINDOW`] from one address, the
//! sign-in form answers 429 with `Retry-After` until the window ends. A
//! token carries 256 bits, so this is not what keeps it from being guessed;
//! it keeps one client from turning the form into a database load or a log
//! flood. The client is the socket's peer (the code trusts no forwarded
//! address); behind a proxy every client shares the proxy's address, see
//! docs/OPERATIONS.md. IPv6 clients are counted per /64, which one host
//! usually holds whole. Per process; the map is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) const MAX_FAILURES: u32 = 10;
pub(crate) const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Clients tracked at most; past it, expired windows are dropped, then the
/// oldest.
const MAX_CLIENTS: usize = 10_000;

#[derive(Clone, Default)]
pub(crate) struct LoginThrottle {
    clients: Arc<Mutex<HashMap<IpAddr, Failures>>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl LoginThrottle {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Failures>> {
        // Each change is one insert, remove or counter update: consistent
        // whatever panicked while holding the lock.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err(wait)` while `client` has used up its failures.
    pub(crate) fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        match self.lock().get(&client_key(client)) {
            Some(f) if f.count >= MAX_FAILURES && now < f.since + WINDOW => {
                Err(f.since + WINDOW - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in. Successes reset nothing: holding one valid
    /// token must not buy unlimited guesses.
    pub(crate) fn record_failure(&self, client: IpAddr) {
        let now = Instant::now();
        let key = client_key(client);
        let mut clients = self.lock();
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.retain(|_, f| now < f.since + WINDOW);
            if clients.len() >= MAX_CLIENTS {
                let oldest = clients.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    clients.remove(&oldest);
                }
            }
        }
        let entry = clients.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now >= entry.since + WINDOW {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_eleventh_failure_within_the_window_is_refused_per_client() {
        let throttle = LoginThrottle::default();
        let client: IpAddr = "192.0.2.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        for _ in 0..MAX_FAILURES {
            assert!(throttle.check(client).is_ok());
            throttle.record_failure(client);
        }
        let wait = throttle.check(client).expect_err("throttled");
        assert!(wait <= WINDOW && wait > WINDOW / 2);
        let other: IpAddr = "192.0.2.8".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(
            throttle.check(other).is_ok(),
            "other clients are not affected"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::from([0; 16]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(client_key(mapped), IpAddr::from([192, 0, 2, 1]));
    }
}
