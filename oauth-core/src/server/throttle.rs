//! Brute-force protection (RFC 6749 §4.3.2, §10.10): failures are counted per key
//! (an account, a client, an IP address) in fixed windows; past the limit the key
//! is refused until its window ends.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Limits on failed attempts. `Default`: 10 per account, 20 per client, 50 per IP
/// address, in windows of 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed password checks (sign-in, password change) per account.
    pub per_account: u32,
    /// Failed client authentications per `client_id`.
    pub per_client: u32,
    /// Failures of either kind per client IP address.
    pub per_ip: u32,
    /// How long failures are remembered, counted from the first one.
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_account: 10,
            per_client: 20,
            per_ip: 50,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: AtomicU32,
}

/// What a failure counter is kept for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    Account(&'a str),
    Client(&'a str),
    Ip(IpAddr),
}

/// Failure counters in a bounded in-memory cache. Each server process counts on its
/// own: behind a load balancer with N instances an attacker gets N times the budget.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    windows: moka::sync::Cache<String, Arc<Window>>,
    config: ThrottleConfig,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        Self {
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.window)
                .build(),
            config,
        }
    }

    fn key(key: Key<'_>) -> (String, u32) {
        match key {
            // Account names are compared case-insensitively, like the accounts.
            Key::Account(email) => (format!("a:{}", email.to_lowercase()), 0),
            Key::Client(id) => (format!("c:{id}"), 1),
            Key::Ip(ip) => (format!("i:{ip}"), 2),
        }
    }

    fn limit(&self, kind: u32) -> u32 {
        match kind {
            0 => self.config.per_account,
            1 => self.config.per_client,
            _ => self.config.per_ip,
        }
    }

    /// `Err(retry_after)` when any of the keys is over its limit.
    pub(crate) fn check(&self, keys: &[Key<'_>]) -> Result<(), Duration> {
        let mut wait = None;
        for &k in keys {
            let (key, kind) = Self::key(k);
            if let Some(w) = self.windows.get(&key)
                && w.failures.load(Ordering::Relaxed) >= self.limit(kind)
            {
                let left = self.config.window.saturating_sub(w.started.elapsed());
                wait = Some(wait.map_or(left, |d: Duration| d.max(left)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts one failure against each key.
    pub(crate) fn fail(&self, keys: &[Key<'_>]) {
        for &k in keys {
            let (key, _) = Self::key(k);
            self.windows
                .get_with(key, || {
                    Arc::new(Window {
                        started: Instant::now(),
                        failures: AtomicU32::new(0),
                    })
                })
                .failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets an account's failures after it signs in.
    pub(crate) fn clear(&self, key: Key<'_>) {
        self.windows.invalidate(&Self::key(key).0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_cleared() {
        let t = Throttle::new(ThrottleConfig {
            per_account: 2,
            per_client: 5,
            per_ip: 3,
            window: Duration::from_secs(60),
        });
        let ip: IpAddr = [127, 0, 0, 1].into();
        let keys = [Key::Account("Ann@Example.com"), Key::Ip(ip)];
        assert!(t.check(&keys).is_ok());
        t.fail(&keys);
        t.fail(&keys);
        let wait = t.check(&[Key::Account("ann@example.com")]).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50));
        assert!(
            t.check(&[Key::Account("bob@example.com"), Key::Ip(ip)])
                .is_ok()
        );
        t.fail(&[Key::Ip(ip)]);
        assert!(
            t.check(&[Key::Account("bob@example.com"), Key::Ip(ip)])
                .is_err()
        );
        t.clear(Key::Account("ANN@example.com"));
        assert!(t.check(&[Key::Account("ann@example.com")]).is_ok());
    }
}
