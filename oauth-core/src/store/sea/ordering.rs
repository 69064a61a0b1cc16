//! One order for rotation and revocation on PostgreSQL.
//!
//! SQLite runs one writer at a time, so a rotation and a revocation cannot
//! interleave there. PostgreSQL runs them side by side, and at READ COMMITTED a
//! revocation's `UPDATE` that waited for a rotation's row lock does not see the
//! tokens the rotation inserted: they would outlive a revocation that answered
//! 200. So every writer that rotates or revokes a family first takes transaction-
//! scoped advisory locks, as the first statement of its transaction:
//!
//! - a rotation takes its client's and user's keys *shared* and its family's key
//!   *exclusive*, in that order;
//! - a revocation takes one key exclusive: the family's (RFC 7009, replay), the
//!   user's (password change, deactivation, withdrawn consent) or the client's.
//!
//! Whichever comes second waits for the first to commit, and its next statement
//! (a new snapshot) sees everything the first wrote: a revocation then revokes the
//! rotation's new tokens too, and a rotation finds its token revoked and fails with
//! `invalid_grant`. Revocations taking different keys can still deadlock on token
//! rows; PostgreSQL aborts one with `40P01`, and [`retry`] runs it again.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, Statement};
use sha2::{Digest as _, Sha256};

use super::backend;
use crate::store::{StoreError, TokenFamily, UserId};

/// What an advisory lock key stands for.
#[derive(Clone, Copy)]
pub(super) enum Key<'a> {
    Client(&'a str),
    User(UserId),
    Family(&'a TokenFamily),
}

impl Key<'_> {
    /// A 64-bit key: the first 8 bytes of SHA-256 of a tag and the value. A
    /// collision only makes two unrelated writers wait for each other.
    fn id(self) -> i64 {
        let mut h = Sha256::new();
        match self {
            Key::Client(id) => {
                h.update(b"oauth_tokens client\0");
                h.update(id.as_bytes());
            }
            Key::User(id) => {
                h.update(b"oauth_tokens user\0");
                h.update(id.to_be_bytes());
            }
            Key::Family(f) => {
                h.update(b"oauth_tokens family\0");
                h.update(f.as_bytes());
            }
        }
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        i64::from_be_bytes(b)
    }
}

/// Takes `shared` keys shared, then `exclusive` keys exclusive, until the
/// transaction ends. Nothing on SQLite, whose writers are already serialized.
pub(super) async fn lock<C: ConnectionTrait>(
    txn: &C,
    shared: &[Key<'_>],
    exclusive: &[Key<'_>],
) -> Result<(), StoreError> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let calls = shared
        .iter()
        .map(|k| ("pg_advisory_xact_lock_shared", k.id()))
        .chain(exclusive.iter().map(|k| ("pg_advisory_xact_lock", k.id())));
    // One statement; PostgreSQL evaluates a select list left to right.
    let mut sql = String::from("SELECT ");
    let mut values = Vec::new();
    for (i, (f, id)) in calls.enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("{f}(${})", i + 1));
        values.push(id.into());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map_err(backend)?;
    Ok(())
}

/// How many times a transaction PostgreSQL aborted for a deadlock or a
/// serialization failure is run again before its error is returned.
const RETRIES: u32 = 8;

/// Whether `e` is a deadlock (`40P01`) or serialization failure (`40001`) that
/// deserves another attempt, the `attempt`-th; waits a little before saying yes.
pub(super) async fn retry(e: &StoreError, attempt: &mut u32) -> bool {
    if *attempt >= RETRIES || !transient(e) {
        return false;
    }
    *attempt += 1;
    tracing::debug!(attempt = *attempt, error = %e, "transaction aborted by the database; retrying");
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(*attempt))).await;
    true
}

fn transient(e: &StoreError) -> bool {
    let StoreError::Backend(e) = e else {
        return false;
    };
    let Some(DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) =
        e.downcast_ref::<DbErr>()
    else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(e) = e.as_ref() else {
        return false;
    };
    matches!(e.code().as_deref(), Some("40001" | "40P01"))
}
