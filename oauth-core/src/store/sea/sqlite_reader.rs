//! Token lookups on SQLite without leaving the calling thread.
//!
//! sqlx runs every SQLite statement on a worker thread of its own per connection and
//! sends the rows back over a channel: two thread hand-offs per query. On a busy
//! machine those hand-offs (futex wake-ups, context switches) cost many times the
//! query itself — they were most of an introspection's time (docs/benchmarks.md).
//! The hottest read, a token by its hash with its owner (once per introspection and
//! per bearer-authenticated request), is a unique-index point lookup that SQLite
//! answers in microseconds from its page cache, so it runs here on the caller's
//! thread, over a few connections kept with the statement prepared.
//!
//! Why this is safe to run inline:
//! - the database is in WAL mode (set by the pool), where a reader never waits for a
//!   writer; these connections have no busy handler, so the rare `SQLITE_BUSY` (another
//!   connection recovering the WAL index) returns at once and the caller falls back to
//!   the pool, which waits;
//! - each lookup is its own read transaction (the statement is reset when its rows are
//!   dropped), so a revocation committed through the pool is seen by the next lookup;
//! - the connections are `query_only`: this path cannot write.
//!
//! Both this module (rusqlite) and sqlx link the one `libsqlite3-sys` of the build
//! (Cargo allows a single crate with `links = "sqlite3"`), so they share one SQLite
//! library and its in-process file-lock bookkeeping.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use sea_orm::sea_query::{Expr, ExprTrait as _, Query, SqliteQueryBuilder};

use super::entity::{token, user};
use crate::store::{TokenFamily, TokenKind, TokenRecord};
use crate::token::TokenHash;

/// The owner columns read with a token: email, `is_active` and `is_staff`.
pub(super) type OwnerColumns = (String, bool, bool);

/// A token's record and, when it has an owner, the owner's columns.
pub(super) type TokenRow = (TokenRecord, Option<OwnerColumns>);

/// A few read-only connections to one SQLite file, handed out one caller at a time.
pub(super) struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    /// Set when a connection cannot be opened: the file is somewhere this reader
    /// cannot follow (an unusual VFS, permissions), so every lookup uses the pool.
    unusable: AtomicBool,
    token_with_owner: String,
}

impl std::fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReader")
            .field("path", &self.path)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

const TOKEN_COLUMNS: [token::Column; 10] = [
    token::Column::Id,
    token::Column::Hash,
    token::Column::Kind,
    token::Column::ClientId,
    token::Column::UserId,
    token::Column::Scope,
    token::Column::Family,
    token::Column::IssuedAt,
    token::Column::ExpiresAt,
    token::Column::RevokedAt,
];

impl SqliteReader {
    /// A reader of the database file at `path`; connections open on first use.
    /// Each caller holds one for the length of a lookup, so as many are open as
    /// threads look up at once (the runtime's workers); at most `max_idle` are kept.
    pub(super) fn new(path: PathBuf, max_idle: usize) -> Self {
        // Built from the entities, so a renamed column cannot drift from the ORM's view.
        let token_with_owner = Query::select()
            .columns(TOKEN_COLUMNS.map(|c| (token::Entity, c)))
            .column((user::Entity, user::Column::Email))
            .column((user::Entity, user::Column::IsActive))
            .column((user::Entity, user::Column::IsStaff))
            .from(token::Entity)
            .left_join(
                user::Entity,
                Expr::col((user::Entity, user::Column::Id))
                    .equals((token::Entity, token::Column::UserId)),
            )
            .and_where(Expr::col((token::Entity, token::Column::Hash)).eq(Expr::cust("?1")))
            .to_string(SqliteQueryBuilder);
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle,
            unusable: AtomicBool::new(false),
            token_with_owner,
        }
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one) and puts the connection back.
    /// `None` when this reader cannot open the database.
    fn with<R>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R>,
    ) -> Option<rusqlite::Result<R>> {
        if self.unusable.load(Ordering::Relaxed) {
            return None;
        }
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match taken {
            Some(conn) => conn,
            None => match self.connect() {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open SQLite for inline reads; token lookups use the pool");
                    self.unusable.store(true, Ordering::Relaxed);
                    return None;
                }
            },
        };
        let result = f(&conn);
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        Some(result)
    }

    /// The token whose hash is `hash`, and its owner's email, `is_active` and
    /// `is_staff` when it has one; `None` when this reader cannot open the database.
    pub(super) fn token_with_owner(
        &self,
        hash: &[u8],
    ) -> Option<rusqlite::Result<Option<TokenRow>>> {
        self.with(|conn| {
            conn.prepare_cached(&self.token_with_owner)?
                .query_row([hash], |row| {
                    // Read in place into the record: the hash is the one asked for,
                    // the blobs and the scope are not copied into owned columns first.
                    // A value this cannot read is an error, and the caller asks the
                    // pool, whose reading reports the corruption.
                    let record = TokenRecord {
                        hash: TokenHash::try_from(hash).map_err(|_| bad(1))?,
                        kind: match row.get::<_, i16>(2)? {
                            token::ACCESS => TokenKind::Access,
                            token::REFRESH => TokenKind::Refresh,
                            _ => return Err(bad(2)),
                        },
                        client_id: row.get(3)?,
                        user_id: row.get(4)?,
                        scope: row.get_ref(5)?.as_str()?.parse().map_err(|_| bad(5))?,
                        family: TokenFamily::from_bytes(
                            row.get_ref(6)?.as_blob()?.try_into().map_err(|_| bad(6))?,
                        ),
                        issued_at: row.get(7)?,
                        expires_at: row.get(8)?,
                        revoked_at: row.get(9)?,
                    };
                    let email: Option<String> = row.get(10)?;
                    let is_active: Option<bool> = row.get(11)?;
                    let is_staff: Option<bool> = row.get(12)?;
                    Ok((
                        record,
                        email
                            .zip(is_active)
                            .zip(is_staff)
                            .map(|((e, a), s)| (e, a, s)),
                    ))
                })
                .optional()
        })
    }
}

/// Column `i` holds a value no record can have.
fn bad(i: usize) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        i,
        rusqlite::types::Type::Blob,
        "not a value of this column".into(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use sea_orm::{ConnectionTrait as _, EntityTrait as _, TransactionTrait as _};

    use super::*;
    use crate::sea::{SeaOrmStore, StoreConfig};
    use crate::store::{
        Client, ClientKind, ClientRegistry as _, TokenFamily, TokenKind, TokenRecord,
        TokenStore as _,
    };
    use crate::token::TokenHash;

    fn record(plain: &str) -> TokenRecord {
        TokenRecord {
            hash: TokenHash::of(plain),
            kind: TokenKind::Access,
            client_id: "c".into(),
            user_id: None,
            scope: "read".parse().unwrap(),
            family: TokenFamily::generate().unwrap(),
            issued_at: 1,
            expires_at: 2,
            revoked_at: None,
        }
    }

    /// The reader returns the ORM's row, and answers at once while a writer holds
    /// SQLite's write lock (WAL: readers never wait), seeing the last committed state.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_the_orm_row_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = SeaOrmStore::connect(
            StoreConfig::new(format!("sqlite://{}", path.display())).inline_reads(false),
        )
        .await
        .unwrap();
        store.migrate().await.unwrap();
        store
            .register_client(Client {
                client_id: "c".into(),
                secret_hash: None,
                kind: ClientKind::Public,
                name: "c".into(),
                grant_types: vec![],
                redirect_uris: vec![],
                allowed_origins: vec![],
                skip_authorization: false,
                allowed_scope: "read".parse().unwrap(),
                default_scope: "read".parse().unwrap(),
                owner: None,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        store.insert_tokens(&[record("a")]).await.unwrap();
        let reader = SqliteReader::new(path, 2);

        let orm = token::Entity::find()
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        let lookup = |plain: &str| {
            reader
                .token_with_owner(TokenHash::of(plain).as_bytes())
                .expect("the reader opens the file")
                .unwrap()
        };
        let (record, owner) = lookup("a").unwrap();
        assert_eq!(record, TokenRecord::try_from(orm).unwrap());
        assert_eq!(owner, None);
        assert!(lookup("b").is_none());

        // A write transaction holds the lock with a revocation not yet committed.
        let txn = store.connection().begin().await.unwrap();
        txn.execute_unprepared("UPDATE oauth_tokens SET revoked_at = 5")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let (during, _) = lookup("a").unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(during.revoked_at, None, "uncommitted writes are not seen");
        txn.commit().await.unwrap();
        let (after, _) = lookup("a").unwrap();
        assert_eq!(
            after.revoked_at,
            Some(5),
            "a commit is seen by the next read"
        );
        assert!(reader.idle.lock().unwrap().len() <= 2);

        // A value no record can have is an error here (the store then asks the
        // pool, which reports the corruption), never a record.
        store
            .connection()
            .execute_unprepared("UPDATE oauth_tokens SET kind = 9")
            .await
            .unwrap();
        assert!(
            reader
                .token_with_owner(TokenHash::of("a").as_bytes())
                .unwrap()
                .is_err()
        );
        assert!(store.token(&TokenHash::of("a")).await.is_err());
    }

    /// It neither creates a database nor writes to one; one that it cannot open
    /// turns it off (the store then asks the pool).
    #[test]
    fn cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let reader = SqliteReader::new(path.clone(), 1);
        assert!(reader.token_with_owner(b"x").is_none());
        assert!(reader.unusable.load(Ordering::Relaxed));
        assert!(!path.exists());
        Connection::open(&path).unwrap();
        let conn = reader.connect().unwrap();
        let err = conn.execute("CREATE TABLE t (x)", []).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
