//! The current time, injected so that tests control it.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Seconds since the Unix epoch, the unit of token times (as `exp` and `iat` in RFC 7662).
pub type UnixTime = i64;

/// A source of the current time. Protocol code asks this instead of the system clock.
pub trait Clock: Send + Sync + Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Now, in Unix seconds.
    fn unix(&self) -> UnixTime {
        self.now().timestamp()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved, for tests.
///
/// ```
/// # use oauth_core::{Clock, ManualClock};
/// let clock = ManualClock::at(1_800_000_000);
/// clock.advance(60);
/// assert_eq!(clock.unix(), 1_800_000_060);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `unix` seconds.
    #[must_use]
    pub fn at(unix: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(unix)))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.load(Ordering::SeqCst), 0).unwrap_or_default()
    }
}
