//! Brute-force protection (RFC 6749 §4.3.2, §10.10), after Keycloak's brute-force
//! detector: failures are counted per key, and once a key reaches its threshold
//! every further attempt waits, the wait doubling with each failure past the
//! threshold up to a ceiling (a temporary lock-out that grows, never one long lock).
//! A key's failures are forgotten after a quiet period.
//!
//! The keys are chosen so that a guesser slows down only itself: failed password
//! checks count per (account, source address), and per account only against a much
//! higher ceiling (guessing spread over many addresses); failed client
//! authentications count per (client, source address). Every failure also counts
//! per source address. Sign-ups are rate-limited per source address in fixed windows.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::email::Email;

/// Brute-force limits. `Default` (Keycloak's brute-force detector's wait numbers):
///
/// | what | threshold |
/// |---|---|
/// | failed password checks per (account, source address) | 5 |
/// | failed password checks per account, all sources together | 100 |
/// | failed client authentications per (client, source address) | 10 |
/// | failures of either kind per source address | 50 |
///
/// Past a threshold the key waits 60 s ([`wait_increment`](Self::wait_increment)),
/// then 120 s, 240 s, … after each further failure, at most 15 minutes
/// ([`max_wait`](Self::max_wait)); failures are forgotten after 12 hours without one
/// ([`failure_reset`](Self::failure_reset)). Sign-ups: 20 per source address per
/// 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failed password checks (sign-in, password change) per account from one
    /// source address before waits begin.
    pub per_account_source: u32,
    /// Failed password checks per account from all sources together: the ceiling
    /// against guessing spread over many addresses.
    pub per_account: u32,
    /// Failed client authentications per (`client_id`, source address).
    pub per_client: u32,
    /// Failures of either kind per source address.
    pub per_ip: u32,
    /// The wait after a key reaches its threshold; it doubles with each further failure.
    pub wait_increment: Duration,
    /// The longest wait.
    pub max_wait: Duration,
    /// A key's failures are forgotten this long after its last one.
    pub failure_reset: Duration,
    /// Sign-up requests per source address per [`signup_window`](Self::signup_window).
    pub signups_per_ip: u32,
    /// The fixed window of the sign-up limit.
    pub signup_window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            per_account_source: 5,
            per_account: 100,
            per_client: 10,
            per_ip: 50,
            wait_increment: Duration::from_secs(60),
            max_wait: Duration::from_secs(15 * 60),
            failure_reset: Duration::from_secs(12 * 3600),
            signups_per_ip: 20,
            signup_window: Duration::from_secs(15 * 60),
        }
    }
}

/// The throttle's name for an account: the normalized email's [`Email::key`], or for
/// a name that is no email address its trimmed, lower-cased form. Every spelling
/// that signs in to one account counts against one counter.
pub(crate) fn account_key(name: &str) -> String {
    Email::parse(name).map_or_else(|_| name.trim().to_lowercase(), |e| e.key())
}

/// What a failure counter is kept for. `None` as a source: the server runs without
/// connect info, and every caller shares one source.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Key<'a> {
    /// An account (an [`account_key`]) from one source.
    AccountFrom(&'a str, Option<IpAddr>),
    /// An account from every source.
    Account(&'a str),
    /// A client from one source.
    ClientFrom(&'a str, Option<IpAddr>),
    /// A source.
    Ip(IpAddr),
}

#[derive(Debug)]
struct Counter {
    failures: AtomicU32,
    /// Unix milliseconds of the last failure (or of the window's start, for sign-ups).
    at: AtomicI64,
}

/// Failure counters in a bounded in-memory cache. Each server process counts on its
/// own: behind a load balancer with N instances an attacker gets N times the budget.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    /// Keyed by [`Throttle::key`]'s bytes.
    counters: moka::sync::Cache<Vec<u8>, Arc<Counter>>,
    signups: moka::sync::Cache<String, Arc<Counter>>,
    config: ThrottleConfig,
    clock: Arc<dyn Clock>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whole seconds, rounded up: a client that waits the `Retry-After` it was given
/// is not refused again for the fraction of a second left.
fn whole_seconds(ms: u64) -> Duration {
    Duration::from_secs(ms.div_ceil(1000))
}

fn source(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            counters: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(config.failure_reset.max(Duration::from_secs(1)))
                .build(),
            signups: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(config.signup_window.max(Duration::from_secs(1)))
                .build(),
            config,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The cache key and the threshold of `key`: a tag, the source address as its
    /// octets (a tag of its own says which kind, so the length is known), then the
    /// account or client. Bytes, not text: no address is formatted for the check
    /// that every client authentication makes.
    fn key(&self, key: Key<'_>) -> (Vec<u8>, u32) {
        let c = &self.config;
        let (tag, ip, name, threshold) = match key {
            Key::AccountFrom(a, ip) => (b'S', ip, a, c.per_account_source),
            Key::Account(a) => (b'A', None, a, c.per_account),
            Key::ClientFrom(id, ip) => (b'C', ip, id, c.per_client),
            Key::Ip(ip) => (b'I', Some(ip), "", c.per_ip),
        };
        let mut k = Vec::with_capacity(2 + 16 + name.len());
        k.push(tag);
        match ip {
            None => k.push(0),
            Some(IpAddr::V4(v4)) => {
                k.push(4);
                k.extend_from_slice(&v4.octets());
            }
            Some(IpAddr::V6(v6)) => {
                k.push(6);
                k.extend_from_slice(&v6.octets());
            }
        }
        k.extend_from_slice(name.as_bytes());
        (k, threshold)
    }

    /// The wait after `failures` failures of a key with this threshold.
    fn wait(&self, failures: u32, threshold: u32) -> Option<Duration> {
        let past = failures.checked_sub(threshold)?;
        let doubled = self.config.wait_increment.saturating_mul(1 << past.min(20));
        Some(doubled.min(self.config.max_wait))
    }

    /// `Err(retry_after)` while any of the keys is waiting.
    pub(crate) fn check(&self, keys: &[Key<'_>]) -> Result<(), Duration> {
        let now = self.now();
        let mut wait: Option<Duration> = None;
        for &k in keys {
            let (key, threshold) = self.key(k);
            let Some(c) = self.counters.get(&key) else {
                continue;
            };
            let last = c.at.load(Ordering::Relaxed);
            if now.saturating_sub(last) >= millis(self.config.failure_reset) {
                continue;
            }
            let Some(w) = self.wait(c.failures.load(Ordering::Relaxed), threshold) else {
                continue;
            };
            let left = last.saturating_add(millis(w)).saturating_sub(now);
            if let Ok(left @ 1..) = u64::try_from(left) {
                let left = whole_seconds(left);
                wait = Some(wait.map_or(left, |d| d.max(left)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts one failure against each key.
    pub(crate) fn fail(&self, keys: &[Key<'_>]) {
        let now = self.now();
        for &k in keys {
            let (key, _) = self.key(k);
            let c = self.counters.get_with(key, || {
                Arc::new(Counter {
                    failures: AtomicU32::new(0),
                    at: AtomicI64::new(now),
                })
            });
            let last = c.at.swap(now, Ordering::Relaxed);
            if now.saturating_sub(last) >= millis(self.config.failure_reset) {
                c.failures.store(1, Ordering::Relaxed);
            } else {
                c.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets a key's failures (an account's from the source it signed in from).
    pub(crate) fn clear(&self, key: Key<'_>) {
        self.counters.invalidate(&self.key(key).0);
    }

    /// Takes one sign-up from the source's window, or `Err(retry_after)` when the
    /// window is used up.
    pub(crate) fn take_signup(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = self.now();
        let window = millis(self.config.signup_window);
        let c = self.signups.get_with(source(ip), || {
            Arc::new(Counter {
                failures: AtomicU32::new(0),
                at: AtomicI64::new(now),
            })
        });
        let started = c.at.load(Ordering::Relaxed);
        if now.saturating_sub(started) >= window {
            c.at.store(now, Ordering::Relaxed);
            c.failures.store(1, Ordering::Relaxed);
            return Ok(());
        }
        if c.failures.fetch_add(1, Ordering::Relaxed) < self.config.signups_per_ip {
            return Ok(());
        }
        let left = started.saturating_add(window).saturating_sub(now);
        Err(whole_seconds(u64::try_from(left).unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn throttle(clock: &ManualClock) -> Throttle {
        Throttle::new(
            ThrottleConfig {
                per_account_source: 2,
                per_account: 4,
                per_client: 5,
                per_ip: 3,
                wait_increment: Duration::from_secs(60),
                max_wait: Duration::from_secs(200),
                failure_reset: Duration::from_secs(3600),
                signups_per_ip: 2,
                signup_window: Duration::from_secs(600),
            },
            Arc::new(clock.clone()),
        )
    }

    #[test]
    fn waits_double_past_the_threshold_up_to_the_ceiling() {
        let clock = ManualClock::at(1_800_000_000);
        let t = throttle(&clock);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let keys = [Key::AccountFrom("ann@example.com", Some(ip))];
        t.fail(&keys);
        assert!(t.check(&keys).is_ok());
        t.fail(&keys);
        assert_eq!(t.check(&keys), Err(Duration::from_secs(60)));
        // Another source is not held back.
        let other = [Key::AccountFrom("ann@example.com", None)];
        assert!(t.check(&other).is_ok());
        clock.advance(60);
        assert!(t.check(&keys).is_ok());
        t.fail(&keys);
        assert_eq!(t.check(&keys), Err(Duration::from_secs(120)));
        clock.advance(120);
        t.fail(&keys);
        assert_eq!(t.check(&keys), Err(Duration::from_secs(200)));
        // Forgotten after the quiet period.
        clock.advance(3600);
        assert!(t.check(&keys).is_ok());
        t.fail(&keys);
        assert!(t.check(&keys).is_ok());
        t.clear(keys[0]);
        t.fail(&keys);
        assert!(t.check(&keys).is_ok());
    }

    #[test]
    fn account_keys_are_normalized() {
        for name in [" ann@x.com", "ANN@x.com ", "Ann@X.COM", "\tann@x.com\n"] {
            assert_eq!(account_key(name), "ann@x.com", "{name:?}");
        }
        assert_eq!(account_key("  Not An Email "), "not an email");
    }

    #[test]
    fn signups_take_from_a_fixed_window() {
        let clock = ManualClock::at(1_800_000_000);
        let t = throttle(&clock);
        let ip = Some([10, 0, 0, 1].into());
        assert!(t.take_signup(ip).is_ok());
        assert!(t.take_signup(ip).is_ok());
        clock.advance(100);
        assert_eq!(t.take_signup(ip), Err(Duration::from_secs(500)));
        assert!(t.take_signup(Some([10, 0, 0, 2].into())).is_ok());
        clock.advance(500);
        assert!(t.take_signup(ip).is_ok());
    }
}
