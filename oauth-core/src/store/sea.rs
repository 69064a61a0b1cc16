//! The persistent store: SQLite or PostgreSQL through sea-orm.
//!
//! One [`SeaOrmStore`] implements [`UserStore`], [`ClientRegistry`] and [`TokenStore`]
//! over one connection pool. The backend is chosen by URL: `sqlite://…` (the embedded
//! default) or `postgres://…` (several server instances sharing one database).

mod admin;
pub mod entity;
mod grants;
mod housekeeping;
pub mod migration;
mod ordering;
mod revocations;
#[cfg(feature = "pages")]
mod sessions;
mod sqlite_reader;
mod throttle;
mod token_cache;

pub use housekeeping::{Cleanup, Cleared};
/// The sea-orm this store is built on, for embedders that add tables of their own.
pub use sea_orm;
#[cfg(feature = "pages")]
pub use sessions::SqlSessionStore;

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database,
    DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    SqlErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use self::entity::{client, token, user};
use self::migration::Migrator;
use self::ordering::{Key, lock, retry};
use self::revocations::Wakeups;
pub(crate) use self::revocations::{append, revoke_logged};
use self::sqlite_reader::{SqliteReader, TokenRow};
use self::token_cache::TokenCache;
use super::{
    Client, ClientRegistry, GrantType, NewUser, Page, RefreshGrace, RevocationKind, RevokedTokens,
    RotatedToken, Rotation, StoreError, TokenFamily, TokenKind, TokenOwner, TokenQuery,
    TokenRecord, TokenStore, UnixTime, User, UserFlags, UserId, UserQuery, UserStore,
};
use crate::email::Email;
use crate::scope::Scope;
use crate::token::TokenHash;

/// How to open the database. `new(url)` plus setters.
///
/// ```
/// # use oauth_core::sea::StoreConfig;
/// let config = StoreConfig::new("sqlite://oauth.db")
///     .max_connections(8)
///     .busy_timeout(std::time::Duration::from_secs(5))
///     .acquire_timeout(std::time::Duration::from_secs(3));
/// ```
#[derive(Clone)]
pub struct StoreConfig {
    url: String,
    max_connections: u32,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    schema: Option<String>,
    inline_reads: bool,
    token_cache: Duration,
}

impl StoreConfig {
    /// Connection settings for `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…`).
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(3),
            schema: None,
            inline_reads: true,
            token_cache: Duration::from_secs(1),
        }
    }

    /// Pool size (default 8). An in-memory SQLite database always uses one connection,
    /// since each connection would otherwise see a database of its own.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// How long a SQLite writer waits for another to finish (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Longest a query waits for a pooled connection, including connecting (default
    /// 3 s). Past it the call fails with [`StoreError::Unavailable`], which the
    /// endpoints answer with 503 and `Retry-After`: an unreachable database costs a
    /// client this long, not a hung request.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Whether a SQLite file database answers token lookups on the calling thread
    /// (default `true`). sqlx hands every statement to a worker thread and back;
    /// for the one query per introspection those two hand-offs cost more than the
    /// lookup, so by default it runs inline over a few read-only connections of its
    /// own — microseconds while the database's pages are in the OS cache, and never
    /// waiting on a writer (WAL). Turn it off to keep every statement off the async
    /// runtime, e.g. for a database on a slow network filesystem. PostgreSQL and
    /// in-memory SQLite always use the pool.
    #[must_use]
    pub fn inline_reads(mut self, on: bool) -> Self {
        self.inline_reads = on;
        self
    }

    /// How long a PostgreSQL store reuses a token lookup for introspection
    /// (default 1 s; zero: never). Revocations and user changes made through this
    /// store empty the cache at once, revocations committed by other instances
    /// when PostgreSQL notifies them (milliseconds), anything else within this
    /// lifetime. Only found tokens are kept: a token issued a moment ago on
    /// another instance is never "unknown" here. SQLite reads inline instead
    /// ([`inline_reads`](Self::inline_reads)) and has no such cache.
    #[must_use]
    pub fn token_cache(mut self, lifetime: Duration) -> Self {
        self.token_cache = lifetime;
        self
    }

    /// PostgreSQL schema to use (created if missing) instead of the connection's default.
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }
}

/// Users, clients and tokens in one SQL database.
///
/// ```
/// # use oauth_core::{Email, NewUser, UserStore, sea::SeaOrmStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SeaOrmStore::open("sqlite::memory:").await?;
/// let user = store
///     .create_user(NewUser::new(Email::parse("ann@example.com")?, "$scrypt$…".into(), chrono::Utc::now()))
///     .await?;
/// assert_eq!(store.user_by_id(user.id).await?.map(|u| u.email), Some(user.email));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SeaOrmStore {
    db: DatabaseConnection,
    reader: Option<Arc<SqliteReader>>,
    wakeups: Arc<Wakeups>,
}

impl SeaOrmStore {
    /// Connects with default settings and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be opened or migrated.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(StoreConfig::new(url)).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating.
    ///
    /// SQLite gets WAL journaling (readers never block the writer), `synchronous=NORMAL`
    /// (durable across a process crash; a power loss may drop the last transactions),
    /// a busy timeout, foreign keys on, and the file is created if missing.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be opened.
    pub async fn connect(config: StoreConfig) -> Result<Self, StoreError> {
        if let Some(schema) = &config.schema {
            create_schema(&config.url, schema).await?;
        }
        let in_memory = config.url.contains(":memory:") || config.url.contains("mode=memory");
        let mut opts = ConnectOptions::new(config.url.clone());
        opts.sqlx_logging(false)
            .max_connections(if in_memory { 1 } else { config.max_connections })
            .acquire_timeout(config.acquire_timeout);
        if in_memory {
            // The database lives as long as its one connection: never let it idle out.
            opts.min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        if let Some(schema) = &config.schema {
            opts.set_schema_search_path(schema.clone());
        }
        let busy = config.busy_timeout;
        opts.map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
        let db = Database::connect(opts).await.map_err(backend)?;
        let reader = if config.inline_reads
            && !in_memory
            && db.get_database_backend() == DbBackend::Sqlite
        {
            let options = SqliteConnectOptions::from_str(&config.url)
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
            let max_idle = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
            Some(Arc::new(SqliteReader::new(
                options.get_filename().to_owned(),
                max_idle,
            )))
        } else {
            None
        };
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        let wakeups = Arc::new(Wakeups::new(
            (postgres && !config.token_cache.is_zero())
                .then(|| TokenCache::new(config.token_cache, 100_000)),
            postgres.then(|| config.url.clone()),
        ));
        if wakeups.tokens.is_some() {
            // Revocations committed elsewhere must empty the cache.
            wakeups.listen();
        }
        Ok(Self {
            db,
            reader,
            wakeups,
        })
    }

    /// Applies pending migrations. Safe to call on every start, from any number of
    /// processes at once: on PostgreSQL they take turns on a session advisory lock
    /// (the second finds nothing left to do); SQLite serializes them itself.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Migrator::up(&self.db, None).await.map_err(backend);
        }
        use sea_orm::sqlx::Executor as _;
        // A key of this crate's own.
        const LOCK: &str = "SELECT pg_advisory_lock(2124672417727213313)";
        const UNLOCK: &str = "SELECT pg_advisory_unlock(2124672417727213313)";
        let sqlx = |e: sea_orm::sqlx::Error| StoreError::Backend(Box::new(e));
        let mut conn = self
            .db
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(sqlx)?;
        conn.execute(LOCK).await.map_err(sqlx)?;
        let migrated = Migrator::up(&self.db, None).await.map_err(backend);
        conn.execute(UNLOCK).await.map_err(sqlx)?;
        migrated
    }

    /// A token row (and its owner's columns) read on the calling thread; `None` when
    /// this store has no inline reader or the read failed, and the pool must answer
    /// (it waits out what made the inline read fail, or reports it).
    fn read_inline(&self, hash: &TokenHash) -> Option<Option<TokenRow>> {
        self.reader
            .as_ref()?
            .token_with_owner(hash.as_bytes())?
            .inspect_err(
                |e| tracing::debug!(error = %e, "inline token lookup failed; using the pool"),
            )
            .ok()
    }

    /// The underlying connection, for applications that keep their own tables beside ours.
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

async fn create_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    if !schema
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StoreError::Corrupt(format!(
            "schema name {schema:?} must be letters, digits and underscores"
        )));
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false).max_connections(1);
    let db = Database::connect(opts).await.map_err(backend)?;
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(backend)?;
    }
    db.close().await.map_err(backend)
}

pub(crate) fn backend(e: DbErr) -> StoreError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => StoreError::Conflict,
        _ if pool_timed_out(&e) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// No connection within the pool's acquire timeout: from a query
/// (`ConnectionAcquire`) or from connecting (`Conn` wrapping sqlx's `PoolTimedOut`).
fn pool_timed_out(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout) => true,
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(inner)) => {
            matches!(**inner, sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    }
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(super) fn parse_scope(s: &str) -> Result<Scope, StoreError> {
    s.parse().map_err(|_| corrupt("scope"))
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(' ').filter(|t| !t.is_empty())
}

impl TryFrom<user::Model> for User {
    type Error = StoreError;

    fn try_from(m: user::Model) -> Result<Self, StoreError> {
        Ok(User {
            id: m.id,
            email: Email::parse(&m.email).map_err(|_| corrupt("user email"))?,
            password_hash: m.password_hash,
            is_active: m.is_active,
            is_staff: m.is_staff,
            is_superuser: m.is_superuser,
            date_joined: m.date_joined,
            last_login: m.last_login,
        })
    }
}

impl TryFrom<client::Model> for Client {
    type Error = StoreError;

    fn try_from(m: client::Model) -> Result<Self, StoreError> {
        Ok(Client {
            client_id: m.client_id,
            secret_hash: m.secret_hash,
            kind: m.kind.parse()?,
            name: m.name,
            grant_types: split(&m.grant_types)
                .map(|g| g.parse::<GrantType>().map_err(|_| corrupt("grant type")))
                .collect::<Result<_, _>>()?,
            redirect_uris: split(&m.redirect_uris).map(str::to_owned).collect(),
            allowed_origins: split(&m.allowed_origins).map(str::to_owned).collect(),
            skip_authorization: m.skip_authorization,
            allowed_scope: parse_scope(&m.allowed_scope)?,
            default_scope: parse_scope(&m.default_scope)?,
            owner: m.owner_id,
            created_at: m.created_at,
        })
    }
}

pub(crate) fn client_columns(c: &Client) -> client::ActiveModel {
    let join = |items: &mut dyn Iterator<Item = &str>| items.collect::<Vec<_>>().join(" ");
    client::ActiveModel {
        secret_hash: Set(c.secret_hash.clone()),
        kind: Set(c.kind.as_str().to_owned()),
        name: Set(c.name.clone()),
        grant_types: Set(join(&mut c.grant_types.iter().map(|g| g.as_str()))),
        redirect_uris: Set(join(&mut c.redirect_uris.iter().map(String::as_str))),
        allowed_origins: Set(join(&mut c.allowed_origins.iter().map(String::as_str))),
        skip_authorization: Set(c.skip_authorization),
        allowed_scope: Set(c.allowed_scope.to_string()),
        default_scope: Set(c.default_scope.to_string()),
        owner_id: Set(c.owner),
        ..Default::default()
    }
}

impl TryFrom<token::Model> for TokenRecord {
    type Error = StoreError;

    fn try_from(m: token::Model) -> Result<Self, StoreError> {
        Ok(TokenRecord {
            hash: TokenHash::try_from(m.hash.as_slice()).map_err(|_| corrupt("token hash"))?,
            kind: match m.kind {
                token::ACCESS => TokenKind::Access,
                token::REFRESH => TokenKind::Refresh,
                _ => return Err(corrupt("token kind")),
            },
            client_id: m.client_id,
            user_id: m.user_id,
            scope: parse_scope(&m.scope)?,
            family: TokenFamily::from_bytes(
                m.family
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("token family"))?,
            ),
            issued_at: m.issued_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
        })
    }
}

fn kind_column(kind: TokenKind) -> i16 {
    match kind {
        TokenKind::Access => token::ACCESS,
        TokenKind::Refresh => token::REFRESH,
    }
}

pub(crate) fn token_row(t: &TokenRecord) -> token::ActiveModel {
    token::ActiveModel {
        hash: Set(t.hash.as_bytes().to_vec()),
        kind: Set(kind_column(t.kind)),
        client_id: Set(t.client_id.clone()),
        user_id: Set(t.user_id),
        scope: Set(t.scope.to_string()),
        family: Set(t.family.as_bytes().to_vec()),
        issued_at: Set(t.issued_at),
        expires_at: Set(t.expires_at),
        revoked_at: Set(t.revoked_at),
        ..Default::default()
    }
}

#[async_trait]
impl UserStore for SeaOrmStore {
    async fn create_user(&self, u: NewUser) -> Result<User, StoreError> {
        let row = user::ActiveModel {
            email: Set(u.email.as_str().to_owned()),
            email_key: Set(u.email.key()),
            password_hash: Set(u.password_hash),
            is_active: Set(u.is_active),
            is_staff: Set(u.is_staff),
            is_superuser: Set(u.is_superuser),
            date_joined: Set(u.date_joined),
            last_login: Set(None),
            ..Default::default()
        };
        row.insert(&self.db).await.map_err(backend)?.try_into()
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        user::Entity::find()
            .filter(user::Column::EmailKey.eq(email.key()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(User::try_from)
            .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        user::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(User::try_from)
            .transpose()
    }

    /// One query over the legacy prefixes (the user table is small next to the
    /// token table, and only rows not yet rehashed match).
    async fn legacy_password_hashes(&self) -> Result<Vec<String>, StoreError> {
        use sea_orm::{Condition, QuerySelect as _};
        let legacy = ["pbkdf2_%", "argon2$%", "bcrypt%", "scrypt$%"]
            .into_iter()
            .fold(Condition::any(), |c, p| {
                c.add(user::Column::PasswordHash.like(p))
            });
        let rows: Vec<Option<String>> = user::Entity::find()
            .select_only()
            .column(user::Column::PasswordHash)
            .filter(legacy)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(backend)?;
        Ok(rows.into_iter().flatten().collect())
    }

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        let res = user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .filter(user::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        found(res.rows_affected)
    }

    /// One transaction: the user row and the tokens live in this database (`tokens`
    /// is expected to be this store; the foreign keys say so), so either both
    /// change or neither does.
    async fn set_password_hash_and_revoke(
        &self,
        id: UserId,
        password_hash: &str,
        _tokens: &dyn TokenStore,
        keep: Option<&TokenFamily>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut attempt = 0;
        loop {
            let once = async {
                let txn = self.db.begin().await.map_err(backend)?;
                lock(&txn, &[], &[Key::User(id)]).await?;
                let res = user::Entity::update_many()
                    .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
                    .filter(user::Column::Id.eq(id))
                    .exec(&txn)
                    .await
                    .map_err(backend)?;
                found(res.rows_affected)?;
                let what = RevokedTokens::User {
                    user_id: id,
                    client_id: None,
                };
                let kind = RevocationKind::CredentialChange;
                let n = revoke_logged(&txn, now, user_filter(id, keep), kind, Some(what)).await?;
                txn.commit().await.map_err(backend)?;
                self.wakeups.wake();
                Ok(n)
            };
            match once.await {
                Err(e) if retry(&e, &mut attempt).await => {}
                outcome => return outcome,
            }
        }
    }

    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<(), StoreError> {
        let res = user::Entity::update_many()
            .col_expr(user::Column::LastLogin, Expr::value(at))
            .filter(user::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        found(res.rows_affected)
    }

    async fn set_user_flags(&self, id: UserId, flags: UserFlags) -> Result<User, StoreError> {
        let mut update = user::Entity::update_many().filter(user::Column::Id.eq(id));
        for (col, value) in [
            (user::Column::IsActive, flags.is_active),
            (user::Column::IsStaff, flags.is_staff),
            (user::Column::IsSuperuser, flags.is_superuser),
        ] {
            if let Some(v) = value {
                update = update.col_expr(col, Expr::value(v));
            }
        }
        if flags != UserFlags::default() {
            let txn = self.db.begin().await.map_err(backend)?;
            lock(&txn, &[], &[Key::User(id)]).await?;
            // A write first (SQLite takes its write lock at once): whether this
            // change takes the staff status away.
            let demoted = flags.is_staff == Some(false)
                && user::Entity::update_many()
                    .col_expr(user::Column::IsStaff, Expr::value(false))
                    .filter(user::Column::Id.eq(id))
                    .filter(user::Column::IsStaff.eq(true))
                    .exec(&txn)
                    .await
                    .map_err(backend)?
                    .rows_affected
                    > 0;
            found(update.exec(&txn).await.map_err(backend)?.rows_affected)?;
            if demoted {
                // Introspection stops reporting the staff-only scopes: tell the
                // followers (resource servers caching answers, other instances'
                // lookup caches) to ask again, in the transaction of the change.
                // The trait gives no time; the entry's is only for retention and
                // the lag metric (a claims change applies whatever the issue time).
                let what = RevokedTokens::User {
                    user_id: id,
                    client_id: None,
                };
                let now = Utc::now().timestamp();
                append(&txn, now, RevocationKind::TokenClaimsChange, vec![what]).await?;
            }
            txn.commit().await.map_err(backend)?;
            // Introspection reports the owner's activity and staff scopes.
            if demoted {
                self.wakeups.wake();
            } else {
                self.wakeups.forget_tokens();
            }
        }
        self.user_by_id(id).await?.ok_or(StoreError::NotFound)
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        user::Entity::find()
            .order_by_asc(user::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(User::try_from)
            .collect()
    }

    async fn search_users(&self, query: &UserQuery) -> Result<Page<User>, StoreError> {
        self.search_users_sql(query).await
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        let res = user::Entity::delete_by_id(id)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        // Its tokens went with it (foreign keys).
        self.wakeups.forget_tokens();
        Ok(res.rows_affected > 0)
    }
}

fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl ClientRegistry for SeaOrmStore {
    async fn register_client(&self, c: Client) -> Result<(), StoreError> {
        let mut row = client_columns(&c);
        row.client_id = Set(c.client_id);
        row.created_at = Set(c.created_at);
        row.insert(&self.db).await.map_err(backend)?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        client::Entity::find()
            .filter(client::Column::ClientId.eq(client_id))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(Client::try_from)
            .transpose()
    }

    async fn update_client(&self, c: Client) -> Result<(), StoreError> {
        let res = client::Entity::update_many()
            .set(client_columns(&c))
            .filter(client::Column::ClientId.eq(c.client_id.as_str()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        found(res.rows_affected)
    }

    async fn list_clients(&self, offset: u64, limit: u64) -> Result<Vec<Client>, StoreError> {
        client::Entity::find()
            .order_by_asc(client::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(Client::try_from)
            .collect()
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let res = client::Entity::delete_many()
            .filter(client::Column::ClientId.eq(client_id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected > 0)
    }
}

/// `UPDATE oauth_tokens SET revoked_at = now WHERE revoked_at IS NULL AND <filter>`
pub(super) async fn revoke_where<C: ConnectionTrait>(
    db: &C,
    now: UnixTime,
    filter: sea_orm::Condition,
) -> Result<u64, StoreError> {
    let res = token::Entity::update_many()
        .col_expr(token::Column::RevokedAt, Expr::value(now))
        .filter(token::Column::RevokedAt.is_null())
        .filter(filter)
        .exec(db)
        .await
        .map_err(backend)?;
    Ok(res.rows_affected)
}

pub(super) fn family_is(family: &TokenFamily) -> sea_orm::Condition {
    sea_orm::Condition::all().add(token::Column::Family.eq(family.as_bytes().to_vec()))
}

/// The tokens of a user, but for the family `keep`.
fn user_filter(user_id: UserId, keep: Option<&TokenFamily>) -> sea_orm::Condition {
    let mut filter = sea_orm::Condition::all().add(token::Column::UserId.eq(user_id));
    if let Some(keep) = keep {
        filter = filter.add(token::Column::Family.ne(keep.as_bytes().to_vec()));
    }
    filter
}

#[async_trait]
impl TokenStore for SeaOrmStore {
    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        token::Entity::insert_many(tokens.iter().map(token_row))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        if let Some(found) = self.read_inline(hash) {
            return Ok(found.map(|(t, _)| t));
        }
        token::Entity::find()
            .filter(token::Column::Hash.eq(hash.as_bytes().to_vec()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(TokenRecord::try_from)
            .transpose()
    }

    async fn token_with_owner(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(TokenRecord, Option<TokenOwner>)>, StoreError> {
        let cache = self.wakeups.tokens.as_ref();
        if let Some(hit) = cache.and_then(|c| c.get(hash)) {
            return Ok(Some(hit));
        }
        let epoch = cache.map(TokenCache::epoch);
        let found = match self.read_inline(hash) {
            Some(found) => found,
            None => token::Entity::find()
                .filter(token::Column::Hash.eq(hash.as_bytes().to_vec()))
                .find_also_related(user::Entity)
                .one(&self.db)
                .await
                .map_err(backend)?
                .map(|(token, user)| -> Result<_, StoreError> {
                    Ok((
                        token.try_into()?,
                        user.map(|u| (u.email, u.is_active, u.is_staff)),
                    ))
                })
                .transpose()?,
        };
        let Some((record, owner)) = found else {
            return Ok(None);
        };
        let owner = owner
            .map(
                |(email, is_active, is_staff)| -> Result<TokenOwner, StoreError> {
                    Ok(TokenOwner {
                        email: Email::from_stored(email).map_err(|_| corrupt("user email"))?,
                        is_active,
                        is_staff,
                    })
                },
            )
            .transpose()?;
        let found = (record, owner);
        if let (Some(cache), Some(epoch)) = (cache, epoch) {
            cache.keep(*hash, &found, epoch);
        }
        Ok(Some(found))
    }

    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        client_id: &str,
        now: UnixTime,
        new: &[RotatedToken],
        grace: RefreshGrace,
    ) -> Result<Rotation, StoreError> {
        let mut attempt = 0;
        loop {
            match self.rotate_once(old, client_id, now, new, grace).await {
                Err(e) if retry(&e, &mut attempt).await => {}
                outcome => return outcome,
            }
        }
    }

    async fn revoke_family(&self, family: &TokenFamily, now: UnixTime) -> Result<u64, StoreError> {
        let kind = RevocationKind::TokenRevoked;
        self.revoke_under(Key::Family(family), now, family_is(family), kind, None)
            .await
    }

    async fn revoke_user_tokens(
        &self,
        user_id: UserId,
        keep: Option<&TokenFamily>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        // A kept family means a password change: the session that made it stays.
        let kind = if keep.is_some() {
            RevocationKind::CredentialChange
        } else {
            RevocationKind::SessionRevoked
        };
        let what = RevokedTokens::User {
            user_id,
            client_id: None,
        };
        let filter = user_filter(user_id, keep);
        self.revoke_under(Key::User(user_id), now, filter, kind, Some(what))
            .await
    }

    async fn revoke_user_client_tokens(
        &self,
        user_id: UserId,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let filter = sea_orm::Condition::all()
            .add(token::Column::UserId.eq(user_id))
            .add(token::Column::ClientId.eq(client_id));
        let what = RevokedTokens::User {
            user_id,
            client_id: Some(client_id.to_owned()),
        };
        let kind = RevocationKind::SessionRevoked;
        self.revoke_under(Key::User(user_id), now, filter, kind, Some(what))
            .await
    }

    async fn revoke_client_tokens(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let filter = sea_orm::Condition::all().add(token::Column::ClientId.eq(client_id));
        let what = RevokedTokens::Client(client_id.to_owned());
        let kind = RevocationKind::TokenRevoked;
        self.revoke_under(Key::Client(client_id), now, filter, kind, Some(what))
            .await
    }

    async fn list_tokens(&self, query: &TokenQuery) -> Result<Page<TokenRecord>, StoreError> {
        self.list_tokens_sql(query).await
    }

    async fn purge_tokens(&self, before: UnixTime) -> Result<u64, StoreError> {
        let res = token::Entity::delete_many()
            .filter(token::Column::ExpiresAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected)
    }
}

impl SeaOrmStore {
    /// One attempt at [`TokenStore::rotate_refresh`], in one transaction.
    async fn rotate_once(
        &self,
        old: &TokenHash,
        client_id: &str,
        now: UnixTime,
        new: &[RotatedToken],
        grace: RefreshGrace,
    ) -> Result<Rotation, StoreError> {
        let txn = self.db.begin().await.map_err(backend)?;
        let old_hash = old.as_bytes().to_vec();
        let is_old = sea_orm::Condition::all()
            .add(token::Column::Hash.eq(old_hash.clone()))
            .add(token::Column::Kind.eq(token::REFRESH))
            .add(token::Column::ClientId.eq(client_id));
        if txn.get_database_backend() == DbBackend::Postgres {
            // The order every rotation and revocation agrees on (`ordering`): the
            // family, user and client of a token never change, so reading them
            // before the locks is safe; every statement after the locks sees what
            // a revocation that held them committed.
            let Some(row) = token::Entity::find()
                .filter(is_old.clone())
                .one(&txn)
                .await
                .map_err(backend)?
            else {
                txn.rollback().await.map_err(backend)?;
                return Ok(Rotation::Invalid);
            };
            let record = TokenRecord::try_from(row)?;
            let mut shared = vec![Key::Client(client_id)];
            shared.extend(record.user_id.map(Key::User));
            lock(&txn, &shared, &[Key::Family(&record.family)]).await?;
        }
        // The conditional write that decides the race: it changes one row for exactly
        // one caller. Being the transaction's first statement on SQLite, it also takes
        // the write lock at once, so concurrent rotations queue behind the busy timeout
        // instead of failing on a stale read snapshot.
        let won = revoke_where(
            &txn,
            now,
            is_old.clone().add(token::Column::ExpiresAt.gt(now)),
        )
        .await?
            == 1;
        let Some(row) = token::Entity::find()
            .filter(is_old)
            .one(&txn)
            .await
            .map_err(backend)?
        else {
            txn.rollback().await.map_err(backend)?;
            return Ok(Rotation::Invalid);
        };
        let mut record = TokenRecord::try_from(row)?;
        let kind = RevocationKind::TokenRevoked;
        let family = family_is(&record.family);
        let outcome = if won {
            // The rotated-away access token ends here too: caches must hear of it.
            revoke_logged(&txn, now, family, kind, None).await?;
            insert_successors(&txn, &record, now, new).await?;
            record.revoked_at = None;
            Rotation::Rotated(record)
        } else if let Some(rotated_at) = record.revoked_at {
            if grace.covers(rotated_at, now)
                && now < record.expires_at
                && grace_reuse_allowed(&txn, &record, rotated_at, now, grace).await?
            {
                insert_successors(&txn, &record, now, new).await?;
                Rotation::Reissued(record)
            } else {
                revoke_logged(&txn, now, family, kind, None).await?;
                Rotation::Replayed
            }
        } else {
            // Expired, never used: refuse without touching anything.
            Rotation::Invalid
        };
        txn.commit().await.map_err(backend)?;
        self.wakeups.wake();
        Ok(outcome)
    }

    /// Revokes the active tokens matching `filter` and logs it (`revoke_logged`),
    /// in one transaction holding `key` exclusive, so that a rotation of one of them
    /// happens entirely before or after (`ordering`). A deadlock with another
    /// revocation is retried.
    async fn revoke_under(
        &self,
        key: Key<'_>,
        now: UnixTime,
        filter: sea_orm::Condition,
        kind: RevocationKind,
        what: Option<RevokedTokens>,
    ) -> Result<u64, StoreError> {
        let mut attempt = 0;
        loop {
            let once = async {
                // On SQLite the UPDATE, first, takes the write lock at once.
                let txn = self.db.begin().await.map_err(backend)?;
                lock(&txn, &[], &[key]).await?;
                let n = revoke_logged(&txn, now, filter.clone(), kind, what.clone()).await?;
                txn.commit().await.map_err(backend)?;
                self.wakeups.wake();
                Ok(n)
            };
            match once.await {
                Err(e) if retry(&e, &mut attempt).await => {}
                outcome => return outcome,
            }
        }
    }
}

/// Stores `new` as successors of the refresh token `of` (same client, user, family).
async fn insert_successors<C: ConnectionTrait>(
    db: &C,
    of: &TokenRecord,
    now: UnixTime,
    new: &[RotatedToken],
) -> Result<(), StoreError> {
    if new.is_empty() {
        return Ok(());
    }
    let rows = new.iter().map(|n| {
        token_row(&TokenRecord {
            hash: n.hash,
            kind: n.kind,
            client_id: of.client_id.clone(),
            user_id: of.user_id,
            scope: n.scope.clone(),
            family: of.family,
            issued_at: now,
            expires_at: n.expires_at,
            revoked_at: None,
        })
    });
    token::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Whether the refresh token `of`, rotated at `rotated_at`, may get successors
/// once more: its family still has an active token (it was rotated, not revoked),
/// and fewer than `grace.max_reuse` extra sets were issued from it.
async fn grace_reuse_allowed<C: ConnectionTrait>(
    db: &C,
    of: &TokenRecord,
    rotated_at: UnixTime,
    now: UnixTime,
    grace: RefreshGrace,
) -> Result<bool, StoreError> {
    use sea_orm::PaginatorTrait as _;
    let intact = token::Entity::find()
        .filter(family_is(&of.family))
        .filter(token::Column::RevokedAt.is_null())
        .filter(token::Column::ExpiresAt.gt(now))
        .count(db)
        .await
        .map_err(backend)?
        > 0;
    if !intact || grace.max_reuse.is_none() {
        return Ok(intact);
    }
    let issued = token::Entity::find()
        .filter(family_is(&of.family))
        .filter(token::Column::Kind.eq(token::REFRESH))
        .filter(token::Column::IssuedAt.between(rotated_at, rotated_at + grace.period))
        .count(db)
        .await
        .map_err(backend)?;
    Ok(grace.allows_another(issued))
}

/// The URL without its password: `postgres://app:[redacted]@db/oauth`.
fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[redacted]@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// Prints the database URL without its password, so a logged configuration does
/// not leak it.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redacted_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .field("inline_reads", &self.inline_reads)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod config_tests {
    use super::{StoreConfig, redacted_url};

    #[test]
    fn debug_hides_the_database_password() {
        let c = StoreConfig::new("postgres://app:s3cr%40t@db.internal:5432/oauth?sslmode=require");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(shown.contains("postgres://app:[redacted]@db.internal:5432/oauth?sslmode=require"));
        assert_eq!(redacted_url("sqlite://oauth.db"), "sqlite://oauth.db");
        assert_eq!(redacted_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redacted_url("postgres://a:b@c@d/x"),
            "postgres://a:[redacted]@d/x"
        );
    }
}
