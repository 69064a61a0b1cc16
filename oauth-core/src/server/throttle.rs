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
//!
//! The counters live in a [`ThrottleStore`]: this process's memory by default, or
//! a database every instance shares (PostgreSQL), so that the thresholds hold
//! across instances. A check is one read of the keys involved; only failures write.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use crate::clock::Clock;
use crate::email::Email;
use crate::store::{MemoryThrottleStore, StoreError, ThrottleStore};

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
/// 15 minutes. Client secrets hashed by the application pages (register, change,
/// rotate): 10 per user and 30 per source address per 10 minutes.
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
    /// Client secrets one signed-in user may have hashed (registering an
    /// application, changing or rotating its secret) per
    /// [`secret_hash_window`](Self::secret_hash_window): each is a production KDF
    /// run on the pool that sign-ins share.
    pub secret_hashes_per_user: u32,
    /// Client secrets hashed for the requests of one source address, all users
    /// together, per [`secret_hash_window`](Self::secret_hash_window).
    pub secret_hashes_per_ip: u32,
    /// The fixed window of the client-secret limits.
    pub secret_hash_window: Duration,
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
            failure_reset: crate::store::DEFAULT_FAILURE_RESET,
            signups_per_ip: 20,
            signup_window: Duration::from_secs(15 * 60),
            secret_hashes_per_user: 10,
            secret_hashes_per_ip: 30,
            secret_hash_window: Duration::from_secs(10 * 60),
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
struct Window {
    taken: AtomicU32,
    /// Unix milliseconds of the window's start.
    started: AtomicI64,
}

/// Why [`Throttle::check`] refused.
#[derive(Debug)]
pub(crate) enum Refused {
    /// A key is waiting this long yet.
    Wait(Duration),
    /// The counters could not be read (answered like any store failure: 503 when
    /// the database is unavailable, else 500).
    Store(StoreError),
}

/// What [`Throttle::check`] saw: the keys that had failures counted, so that a
/// success clears a counter only where there is one (a success writes nothing).
#[derive(Debug, Default)]
pub(crate) struct Checked(Vec<Vec<u8>>);

/// The detector: the policy ([`ThrottleConfig`]) over failure counters kept in a
/// [`ThrottleStore`] — this process's memory, or a database shared by every
/// instance. Rate windows (sign-ups, client secrets hashed) are always counted in
/// this process: they guard this process's password-hashing threads.
#[derive(Clone)]
pub(crate) struct Throttle {
    counters: Arc<dyn ThrottleStore>,
    /// Fixed rate windows by key (`s:` sign-ups per source, `u:` secrets per user,
    /// `h:` secrets per source).
    windows: moka::sync::Cache<String, Arc<Window>>,
    config: ThrottleConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("config", &self.config)
            .field("shared", &self.counters.shared())
            .finish_non_exhaustive()
    }
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
    /// The detector over `counters`, or over counters in this process's memory.
    pub(crate) fn new(
        config: ThrottleConfig,
        clock: Arc<dyn Clock>,
        counters: Option<Arc<dyn ThrottleStore>>,
    ) -> Self {
        Self {
            counters: counters
                .unwrap_or_else(|| Arc::new(MemoryThrottleStore::new(config.failure_reset))),
            windows: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(
                    config
                        .signup_window
                        .max(config.secret_hash_window)
                        .max(Duration::from_secs(1)),
                )
                .build(),
            config,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// The counter's key and the threshold of `key`: a tag, the source address as its
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

    /// `Err(Refused::Wait(retry_after))` while any of the keys is waiting. One read
    /// of the counters (one indexed query when they are in a database).
    pub(crate) async fn check(&self, keys: &[Key<'_>]) -> Result<Checked, Refused> {
        let named: Vec<(Vec<u8>, u32)> = keys.iter().map(|&k| self.key(k)).collect();
        let texts: Vec<&[u8]> = named.iter().map(|(k, _)| k.as_slice()).collect();
        let counts = self
            .counters
            .failure_counts(&texts)
            .await
            .map_err(Refused::Store)?;
        let now = self.now();
        let reset = millis(self.config.failure_reset);
        let mut wait: Option<Duration> = None;
        let mut counted = Vec::new();
        for ((key, threshold), count) in named.into_iter().zip(counts) {
            let Some(c) = count else {
                continue;
            };
            if now.saturating_sub(c.last_failure) >= reset {
                continue;
            }
            counted.push(key);
            let Some(w) = self.wait(c.failures, threshold) else {
                continue;
            };
            let left = c.last_failure.saturating_add(millis(w)).saturating_sub(now);
            if let Ok(left @ 1..) = u64::try_from(left) {
                let left = whole_seconds(left);
                wait = Some(wait.map_or(left, |d| d.max(left)));
            }
        }
        wait.map_or(Ok(Checked(counted)), |w| Err(Refused::Wait(w)))
    }

    /// Counts one failure against each key (one statement when the counters are in
    /// a database). A failure to count is logged: the request fails anyway.
    pub(crate) async fn fail(&self, keys: &[Key<'_>]) {
        let named: Vec<Vec<u8>> = keys.iter().map(|&k| self.key(k).0).collect();
        let texts: Vec<&[u8]> = named.iter().map(Vec::as_slice).collect();
        if let Err(e) = self
            .counters
            .record_failure(&texts, self.now(), millis(self.config.failure_reset))
            .await
        {
            tracing::error!(error = %e, "could not count an authentication failure");
        }
    }

    /// After a success: forgets the failures of `key` (an account's from the source
    /// it signed in from) — only if [`check`](Self::check) saw some, so a success
    /// with nothing to forget writes nothing.
    pub(crate) async fn succeeded(&self, checked: &Checked, key: Key<'_>) {
        let (key, _) = self.key(key);
        if !checked.0.contains(&key) {
            return;
        }
        if let Err(e) = self.counters.clear_failures(&key).await {
            tracing::warn!(error = %e, "could not clear a failure counter");
        }
    }

    /// Takes one sign-up from the source's window, or `Err(retry_after)` when the
    /// window is used up. Counted in this process: the limit guards this process's
    /// password-hashing threads, and a sign-up request adds no write of its own.
    pub(crate) fn take_signup(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let (limit, window) = (self.config.signups_per_ip, self.config.signup_window);
        self.take(format!("s:{}", source(ip)), limit, window)
    }

    #[cfg(feature = "admin")]
    /// Takes one client-secret hash from the user's window and from the source's,
    /// or `Err(retry_after)` when either is used up (the source's is not touched
    /// when the user's refuses). Counted in this process, as sign-ups.
    pub(crate) fn take_secret_hash(&self, user: i64, ip: Option<IpAddr>) -> Result<(), Duration> {
        let c = &self.config;
        self.take(
            format!("u:{user}"),
            c.secret_hashes_per_user,
            c.secret_hash_window,
        )?;
        self.take(
            format!("h:{}", source(ip)),
            c.secret_hashes_per_ip,
            c.secret_hash_window,
        )
    }

    /// Takes one from the fixed window of `key` (`limit` per `window`), or
    /// `Err(retry_after)` when it is used up.
    fn take(&self, key: String, limit: u32, window: Duration) -> Result<(), Duration> {
        let now = self.now();
        let window = millis(window);
        let c = self.windows.get_with(key, || {
            Arc::new(Window {
                taken: AtomicU32::new(0),
                started: AtomicI64::new(now),
            })
        });
        let started = c.started.load(Ordering::Relaxed);
        if now.saturating_sub(started) >= window {
            c.started.store(now, Ordering::Relaxed);
            c.taken.store(1, Ordering::Relaxed);
            return Ok(());
        }
        if c.taken.fetch_add(1, Ordering::Relaxed) < limit {
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
                secret_hashes_per_user: 2,
                secret_hashes_per_ip: 3,
                secret_hash_window: Duration::from_secs(600),
            },
            Arc::new(clock.clone()),
            None,
        )
    }

    async fn waiting(t: &Throttle, keys: &[Key<'_>]) -> Result<(), Duration> {
        match t.check(keys).await {
            Ok(_) => Ok(()),
            Err(Refused::Wait(w)) => Err(w),
            Err(Refused::Store(e)) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn waits_double_past_the_threshold_up_to_the_ceiling() {
        let clock = ManualClock::at(1_800_000_000);
        let t = throttle(&clock);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let keys = [Key::AccountFrom("ann@example.com", Some(ip))];
        t.fail(&keys).await;
        assert!(waiting(&t, &keys).await.is_ok());
        t.fail(&keys).await;
        assert_eq!(waiting(&t, &keys).await, Err(Duration::from_secs(60)));
        // Another source is not held back.
        let other = [Key::AccountFrom("ann@example.com", None)];
        assert!(waiting(&t, &other).await.is_ok());
        clock.advance(60);
        assert!(waiting(&t, &keys).await.is_ok());
        t.fail(&keys).await;
        assert_eq!(waiting(&t, &keys).await, Err(Duration::from_secs(120)));
        clock.advance(120);
        t.fail(&keys).await;
        assert_eq!(waiting(&t, &keys).await, Err(Duration::from_secs(200)));
        // Forgotten after the quiet period.
        clock.advance(3600);
        assert!(waiting(&t, &keys).await.is_ok());
        t.fail(&keys).await;
        assert!(waiting(&t, &keys).await.is_ok());
        let checked = t.check(&keys).await.ok().unwrap();
        t.succeeded(&checked, keys[0]).await;
        t.fail(&keys).await;
        assert!(waiting(&t, &keys).await.is_ok());
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

    #[cfg(feature = "admin")]
    #[test]
    fn secret_hashes_take_from_the_user_and_the_source() {
        let clock = ManualClock::at(1_800_000_000);
        let t = throttle(&clock);
        let ip = Some([10, 0, 0, 1].into());
        assert!(t.take_secret_hash(1, ip).is_ok());
        assert!(t.take_secret_hash(1, ip).is_ok());
        assert_eq!(t.take_secret_hash(1, ip), Err(Duration::from_secs(600)));
        // The user's refusal took nothing from the source: one more for another user.
        assert!(t.take_secret_hash(2, ip).is_ok());
        clock.advance(60);
        assert_eq!(t.take_secret_hash(3, ip), Err(Duration::from_secs(540)));
        assert!(t.take_secret_hash(3, Some([10, 0, 0, 2].into())).is_ok());
        // Sign-ups have windows of their own.
        assert!(t.take_signup(ip).is_ok());
        clock.advance(540);
        assert!(t.take_secret_hash(1, ip).is_ok());
    }
}
