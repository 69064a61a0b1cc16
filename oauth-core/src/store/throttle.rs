//! Where the brute-force detector keeps its failure counters
//! (`ThrottleConfig` of the server holds the policy, RFC 6749 §4.3.2 and
//! §10.10): in process memory ([`MemoryThrottleStore`]), or in a database every
//! server instance shares, so the thresholds hold across instances
//! ([`SeaOrmStore`](crate::sea::SeaOrmStore) on PostgreSQL).

use async_trait::async_trait;

/// How long a failure counter lives after its last failure unless configured
/// otherwise: 12 hours (the server's `ThrottleConfig::failure_reset` default, and
/// the housekeeping of the stores that keep counters).
pub const DEFAULT_FAILURE_RESET: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

use super::{StoreError, UnixTime};

/// One counter: failures counted since it was last reset, and when the latest was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures counted.
    pub failures: u32,
    /// Unix milliseconds of the latest failure.
    pub last_failure: i64,
}

/// Failure counters by key, for the brute-force detector.
///
/// A key is a short byte string naming what is counted (an account from a source address,
/// a client from a source address, …); it may hold an email address or an IP
/// address, so a store that writes it anywhere lasting should keep only a digest of
/// it. Reads happen on every password check and client authentication that is not
/// already known good; writes only on failures — a successful request writes nothing.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The counters of `keys`, in the same order; `None` where nothing was counted
    /// (or the counter was cleared or purged).
    async fn failure_counts(&self, keys: &[&[u8]])
    -> Result<Vec<Option<FailureCount>>, StoreError>;

    /// Counts one failure at `now_ms` (Unix milliseconds) against each of `keys`,
    /// and returns the counters after, in the same order. A counter whose latest
    /// failure is `reset_ms` or more before `now_ms` starts again from 1. Each key's
    /// update is atomic: concurrent failures — from any process sharing the store —
    /// are all counted.
    async fn record_failure(
        &self,
        keys: &[&[u8]],
        now_ms: i64,
        reset_ms: i64,
    ) -> Result<Vec<FailureCount>, StoreError>;

    /// Forgets the failures of `key` (an account signed in from the source it was
    /// guessed from).
    async fn clear_failures(&self, key: &[u8]) -> Result<(), StoreError>;

    /// Deletes counters whose latest failure is before `before` (Unix seconds);
    /// returns how many. Counters past the reset period count as zero anyway, so
    /// `before` = now − [`failure_reset`](DEFAULT_FAILURE_RESET)
    /// changes no decision.
    async fn purge_throttle(&self, before: UnixTime) -> Result<u64, StoreError>;

    /// Whether every process using this store sees the same counters (a shared
    /// database server). [`AuthServer::from_store`](crate::AuthServer::from_store)
    /// counts in such a store, and in process memory otherwise. Default: `false`.
    fn shared(&self) -> bool {
        false
    }
}

#[cfg(feature = "server")]
pub use self::memory::MemoryThrottleStore;

#[cfg(feature = "server")]
mod memory {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::{FailureCount, ThrottleStore};
    use crate::store::{StoreError, UnixTime};

    #[derive(Debug)]
    struct Counter {
        failures: AtomicU32,
        /// Unix milliseconds of the latest failure.
        at: AtomicI64,
    }

    /// Failure counters in this process's memory: a bounded cache (100,000 keys)
    /// whose entries go after `forget_after` without a failure. Each process counts
    /// on its own: behind a load balancer with N instances an attacker gets up to N
    /// times the budget. The default of an [`AuthServer`](crate::AuthServer) whose
    /// store is not [shared](ThrottleStore::shared).
    ///
    /// ```
    /// # use oauth_core::store::{MemoryThrottleStore, ThrottleStore};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), oauth_core::StoreError> {
    /// let counters = MemoryThrottleStore::new(std::time::Duration::from_secs(3600));
    /// counters.record_failure(&[b"a:ann@example.com"], 1_000, 3_600_000).await?;
    /// let after = counters.record_failure(&[b"a:ann@example.com"], 2_000, 3_600_000).await?;
    /// assert_eq!(after[0].failures, 2);
    /// # Ok(()) }
    /// ```
    #[derive(Debug, Clone)]
    pub struct MemoryThrottleStore {
        counters: moka::sync::Cache<Vec<u8>, Arc<Counter>>,
    }

    impl MemoryThrottleStore {
        /// Counters that are forgotten `forget_after` after their latest failure.
        #[must_use]
        pub fn new(forget_after: Duration) -> Self {
            Self {
                counters: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(forget_after.max(Duration::from_secs(1)))
                    .build(),
            }
        }
    }

    impl Default for MemoryThrottleStore {
        /// Forgotten after 12 hours, as [`DEFAULT_FAILURE_RESET`](crate::store::DEFAULT_FAILURE_RESET).
        fn default() -> Self {
            Self::new(Duration::from_secs(12 * 3600))
        }
    }

    fn read(c: &Counter) -> FailureCount {
        FailureCount {
            failures: c.failures.load(Ordering::Relaxed),
            last_failure: c.at.load(Ordering::Relaxed),
        }
    }

    #[async_trait]
    impl ThrottleStore for MemoryThrottleStore {
        async fn failure_counts(
            &self,
            keys: &[&[u8]],
        ) -> Result<Vec<Option<FailureCount>>, StoreError> {
            Ok(keys
                .iter()
                .map(|k| self.counters.get(*k).map(|c| read(&c)))
                .collect())
        }

        async fn record_failure(
            &self,
            keys: &[&[u8]],
            now_ms: i64,
            reset_ms: i64,
        ) -> Result<Vec<FailureCount>, StoreError> {
            Ok(keys
                .iter()
                .map(|k| {
                    let c = self.counters.get_with((*k).to_owned(), || {
                        Arc::new(Counter {
                            failures: AtomicU32::new(0),
                            at: AtomicI64::new(now_ms),
                        })
                    });
                    let last = c.at.fetch_max(now_ms, Ordering::Relaxed);
                    let failures = if now_ms.saturating_sub(last) >= reset_ms {
                        c.failures.store(1, Ordering::Relaxed);
                        1
                    } else {
                        c.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1)
                    };
                    FailureCount {
                        failures,
                        last_failure: last.max(now_ms),
                    }
                })
                .collect())
        }

        async fn clear_failures(&self, key: &[u8]) -> Result<(), StoreError> {
            self.counters.invalidate(key);
            Ok(())
        }

        async fn purge_throttle(&self, before: UnixTime) -> Result<u64, StoreError> {
            let before_ms = before.saturating_mul(1000);
            let mut n = 0;
            for (key, c) in &self.counters {
                if c.at.load(Ordering::Relaxed) < before_ms {
                    self.counters.invalidate(key.as_ref());
                    n += 1;
                }
            }
            Ok(n)
        }
    }
}
