//! A short-lived cache of introspection lookups, for PostgreSQL, where each lookup
//! is a round trip through the pool (SQLite reads inline instead).
//!
//! It keeps positive answers only (a token issued on another instance a moment
//! ago is never "unknown" here) for at most its lifetime (1 s by default), and is
//! emptied:
//! - at once by every revocation this process commits, and every change to a
//!   user (deactivation, staff flag, password, deletion) — so on this instance a
//!   revoked token is inactive at once, as without the cache;
//! - when PostgreSQL notifies a revocation committed by another instance (the
//!   revocation log's `NOTIFY`), within milliseconds;
//!   A user made non-staff is such an entry too (`token-claims-change`);
//! - and in any case by the lifetime: a change that sends no notification (a
//!   user deactivated on another instance without revoking, through the store)
//!   shows within it.
//!
//! A lookup that raced a flush — read from the database before a revocation
//! committed, stored after the flush — takes itself out again: every flush bumps
//! an epoch, and a lookup that sees it moved after storing its answer removes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use crate::store::{TokenOwner, TokenRecord};
use crate::token::TokenHash;

type Found = (TokenRecord, Option<TokenOwner>);

#[derive(Debug)]
pub(super) struct TokenCache {
    entries: moka::sync::Cache<TokenHash, Arc<Found>>,
    epoch: AtomicU64,
}

impl TokenCache {
    pub(super) fn new(lifetime: Duration, max_entries: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(lifetime)
                .build(),
            epoch: AtomicU64::new(0),
        }
    }

    pub(super) fn get(&self, hash: &TokenHash) -> Option<Found> {
        self.entries.get(hash).map(|found| (*found).clone())
    }

    /// The epoch to pass to [`keep`](Self::keep), read before the lookup.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Stores what a lookup that started at `epoch` found, unless a flush happened
    /// meanwhile.
    pub(super) fn keep(&self, hash: TokenHash, found: &Found, epoch: u64) {
        self.entries.insert(hash, Arc::new(found.clone()));
        if self.epoch.load(SeqCst) != epoch {
            self.entries.invalidate(&hash);
        }
    }

    /// Forgets everything (after a revocation or a user change committed).
    pub(super) fn flush(&self) {
        self.epoch.fetch_add(1, SeqCst);
        self.entries.invalidate_all();
    }
}
