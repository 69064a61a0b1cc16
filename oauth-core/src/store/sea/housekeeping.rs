//! Deleting what has served its time (DOT's `cleartokens`), in bounded batches so
//! that no statement holds the tables for long.

use std::time::Duration;

use sea_orm::sea_query::{Alias, Expr, ExprTrait as _, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::entity::{code, session, token};
use super::{SeaOrmStore, backend};
use crate::store::{RevocationLog as _, StoreError, ThrottleStore as _, UnixTime};

/// What [`SeaOrmStore::clear_expired`] deletes, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanup {
    /// The current time.
    pub now: UnixTime,
    /// Tokens are deleted this long after they expired, or after they were revoked
    /// once nothing of their grant is active any more (a revoked refresh token of a
    /// live grant is kept until it expires: a replay of it must still be
    /// recognised, and revoke the grant).
    pub token_retention: Duration,
    /// Revocation log entries older than this are deleted; a receiver resuming
    /// from before them gets a reset.
    pub revocation_retention: Duration,
    /// Failure counters (PostgreSQL's shared throttle) quiet for this long are
    /// deleted: they count as zero already
    /// (the server's `ThrottleConfig::failure_reset`, by default
    /// [`DEFAULT_FAILURE_RESET`](crate::store::DEFAULT_FAILURE_RESET)).
    pub failure_reset: Duration,
    /// Rows deleted per statement (DOT's `CLEAR_EXPIRED_TOKENS_BATCH_SIZE`).
    pub batch_size: u64,
    /// Pause between two batches (DOT's `CLEAR_EXPIRED_TOKENS_BATCH_INTERVAL`).
    pub batch_pause: Duration,
}

impl Cleanup {
    /// DOT's defaults where it has them: batches of 10,000, no pause; tokens kept a
    /// day past their end, revocation log entries a day.
    #[must_use]
    pub fn at(now: UnixTime) -> Self {
        Self {
            now,
            token_retention: Duration::from_secs(24 * 3600),
            revocation_retention: Duration::from_secs(24 * 3600),
            failure_reset: crate::store::DEFAULT_FAILURE_RESET,
            batch_size: 10_000,
            batch_pause: Duration::ZERO,
        }
    }
}

/// How many rows [`SeaOrmStore::clear_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleared {
    /// Access and refresh tokens.
    pub tokens: u64,
    /// Authorization codes.
    pub codes: u64,
    /// Browser sessions.
    pub sessions: u64,
    /// Revocation log entries.
    pub revocations: u64,
    /// Failure counters.
    pub failure_counters: u64,
}

impl std::fmt::Display for Cleared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tokens, {} authorization codes, {} sessions, {} revocation log entries, \
             {} failure counters",
            self.tokens, self.codes, self.sessions, self.revocations, self.failure_counters
        )
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl SeaOrmStore {
    /// Deletes expired and dead tokens past the retention, expired authorization
    /// codes and sessions, and old revocation log entries (see [`Cleanup`]); tokens
    /// go in batches of `batch_size` rows, each its own statement.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a statement fails; what was deleted before stays
    /// deleted.
    pub async fn clear_expired(&self, c: Cleanup) -> Result<Cleared, StoreError> {
        let cutoff = c.now.saturating_sub(secs(c.token_retention));
        let mut cleared = Cleared::default();
        loop {
            let n = self.delete_token_batch(c.now, cutoff, c.batch_size).await?;
            cleared.tokens += n;
            if n < c.batch_size {
                break;
            }
            if !c.batch_pause.is_zero() {
                tokio::time::sleep(c.batch_pause).await;
            }
        }
        cleared.codes = code::Entity::delete_many()
            .filter(code::Column::ExpiresAt.lt(c.now))
            .exec(&self.db)
            .await
            .map_err(backend)?
            .rows_affected;
        cleared.sessions = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(c.now))
            .exec(&self.db)
            .await
            .map_err(backend)?
            .rows_affected;
        cleared.revocations = self
            .purge_revocations(c.now.saturating_sub(secs(c.revocation_retention)))
            .await?;
        cleared.failure_counters = self
            .purge_throttle(c.now.saturating_sub(secs(c.failure_reset)))
            .await?;
        Ok(cleared)
    }

    /// One `DELETE … WHERE id IN (SELECT id … LIMIT n)`: tokens expired before
    /// `cutoff`, or revoked before it with no active token left in their family.
    async fn delete_token_batch(
        &self,
        now: UnixTime,
        cutoff: UnixTime,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let kin = Alias::new("kin");
        let family_alive = Query::select()
            .expr(Expr::val(1))
            .from_as(token::Entity, kin.clone())
            .and_where(
                Expr::col((kin.clone(), token::Column::Family))
                    .equals((token::Entity, token::Column::Family)),
            )
            .and_where(Expr::col((kin.clone(), token::Column::RevokedAt)).is_null())
            .and_where(Expr::col((kin, token::Column::ExpiresAt)).gt(now))
            .to_owned();
        let victims = Query::select()
            .column(token::Column::Id)
            .from(token::Entity)
            .cond_where(
                Condition::any()
                    .add(Expr::col(token::Column::ExpiresAt).lt(cutoff))
                    .add(
                        Condition::all()
                            .add(Expr::col(token::Column::RevokedAt).lt(cutoff))
                            .add(Expr::exists(family_alive).not()),
                    ),
            )
            .limit(limit)
            .to_owned();
        Ok(token::Entity::delete_many()
            .filter(token::Column::Id.in_subquery(victims))
            .exec(&self.db)
            .await
            .map_err(backend)?
            .rows_affected)
    }
}
