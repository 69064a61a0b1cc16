//! [`RevocationLog`] on SQLite and PostgreSQL: entries written in the revoking
//! transaction, PostgreSQL `NOTIFY` (sent at commit) to wake other processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait as _, TransactionTrait,
};

use super::entity::{revocation, revocation_purged, token};
use super::token_cache::TokenCache;
use super::{SeaOrmStore, backend, corrupt};
use crate::store::revocations::Signal;
use crate::store::{
    RevocationBatch, RevocationEvent, RevocationKind, RevocationLog, RevokedTokens, StoreError,
    UnixTime,
};
use crate::token::TokenHash;

/// The PostgreSQL channel every revocation notifies at commit.
const CHANNEL: &str = "oauth_revocations";

/// The store's side of [`RevocationLog::subscribe`]: an in-process signal, and on
/// PostgreSQL one `LISTEN` connection feeding it, started by the first subscriber.
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    signal: Signal,
    listening: AtomicBool,
    /// Emptied before every wake-up: a revocation here, or notified from elsewhere.
    pub(super) tokens: Option<TokenCache>,
    /// The database URL, for the `LISTEN` connection (PostgreSQL only): a
    /// connection of its own, outside the pool.
    pub(super) listen_url: Option<String>,
    /// The newest log id a reader of this store has seen.
    seen: std::sync::atomic::AtomicI64,
}

impl Wakeups {
    /// With a cache of token lookups to empty at every wake-up.
    pub(super) fn new(tokens: Option<TokenCache>, listen_url: Option<String>) -> Self {
        Self {
            tokens,
            listen_url,
            ..Self::default()
        }
    }

    /// After a revocation committed here, or was notified from another process:
    /// cached lookups go first, then the streams wake (and re-read the log).
    pub(super) fn wake(&self) {
        self.forget_tokens();
        self.signal.wake();
    }

    /// Empties the lookup cache, if there is one (a user changed).
    pub(super) fn forget_tokens(&self) {
        if let Some(cache) = &self.tokens {
            cache.flush();
        }
    }

    /// Starts relaying PostgreSQL notifications, once.
    pub(super) fn listen(self: &Arc<Self>) {
        let Some(url) = &self.listen_url else {
            return;
        };
        if !self.listening.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(listen(url.clone(), Arc::clone(self)));
                }
                Err(_) => self.listening.store(false, Ordering::Release),
            }
        }
    }
}

/// Revokes the active tokens matching `filter` and logs it in the same transaction:
/// one entry naming `what`, or with `what` `None` one entry per access token
/// revoked (the key a resource server caches it under). Returns how many tokens
/// changed. `db` must be a transaction for the entry to be atomic with the change.
pub(crate) async fn revoke_logged<C: ConnectionTrait>(
    db: &C,
    now: UnixTime,
    filter: sea_orm::Condition,
    kind: RevocationKind,
    what: Option<RevokedTokens>,
) -> Result<u64, StoreError> {
    // `UPDATE … RETURNING` (PostgreSQL, and SQLite since 3.35; the bundled one is
    // newer): exactly the rows this statement revoked, in the same statement that
    // takes the write lock.
    let mut update = token::Entity::update_many()
        .col_expr(token::Column::RevokedAt, Expr::value(now))
        .filter(token::Column::RevokedAt.is_null())
        .filter(filter)
        .into_query();
    update.returning(Query::returning().columns([token::Column::Hash, token::Column::Kind]));
    let rows = db.query_all(&update).await.map_err(backend)?;
    let n = rows.len() as u64;
    if n == 0 {
        return Ok(0);
    }
    let entries = match what {
        Some(what) => vec![what],
        None => {
            let mut access = Vec::new();
            for row in rows {
                let kind: i16 = row.try_get("", "kind").map_err(backend)?;
                if kind == token::ACCESS {
                    let hash: Vec<u8> = row.try_get("", "hash").map_err(backend)?;
                    let hash =
                        <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| corrupt("token hash"))?;
                    access.push(RevokedTokens::Token(TokenHash::from_bytes(hash)));
                }
            }
            access
        }
    };
    append(db, now, kind, entries).await?;
    Ok(n)
}

/// Appends `entries` to the log (with the `NOTIFY` on PostgreSQL). `db` must be
/// the transaction of the change the entries describe.
pub(crate) async fn append<C: ConnectionTrait>(
    db: &C,
    now: UnixTime,
    kind: RevocationKind,
    entries: Vec<RevokedTokens>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows = entries.into_iter().map(|what| {
        let (token_hash, user_id, client_id) = match what {
            RevokedTokens::Token(h) => (Some(h.as_bytes().to_vec()), None, None),
            RevokedTokens::User { user_id, client_id } => (None, Some(user_id), client_id),
            RevokedTokens::Client(c) => (None, None, Some(c)),
        };
        revocation::ActiveModel {
            at: Set(now),
            kind: Set(kind.as_str().to_owned()),
            token_hash: Set(token_hash),
            user_id: Set(user_id),
            client_id: Set(client_id),
            ..Default::default()
        }
    });
    revocation::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(backend)?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Delivered when (and only if) the transaction commits.
        db.execute_unprepared(&format!("NOTIFY {CHANNEL}"))
            .await
            .map_err(backend)?;
    }
    Ok(())
}

impl TryFrom<revocation::Model> for RevocationEvent {
    type Error = StoreError;

    fn try_from(m: revocation::Model) -> Result<Self, StoreError> {
        let kind = RevocationKind::parse(&m.kind).ok_or_else(|| corrupt("revocation kind"))?;
        let tokens = match (m.token_hash, m.user_id, m.client_id) {
            (Some(h), None, None) => RevokedTokens::Token(TokenHash::from_bytes(
                h.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("revocation token hash"))?,
            )),
            (None, Some(user_id), client_id) => RevokedTokens::User { user_id, client_id },
            (None, None, Some(c)) => RevokedTokens::Client(c),
            _ => return Err(corrupt("revocation subject")),
        };
        Ok(Self {
            id: m.id,
            at: m.at,
            kind,
            tokens,
        })
    }
}

#[async_trait]
impl RevocationLog for SeaOrmStore {
    async fn revocations_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<RevocationBatch, StoreError> {
        let events = revocation::Entity::find()
            .filter(revocation::Column::Id.gt(after))
            .order_by_asc(revocation::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(RevocationEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        // A reader may find an entry before this process hears its notification:
        // the lookup cache must not answer for a token the entry names once the
        // entry is out (a resource server re-asks as soon as it applies it).
        if let Some(newest) = events.last().map(|e| e.id)
            && self.wakeups.seen.fetch_max(newest, Ordering::AcqRel) < newest
        {
            self.wakeups.forget_tokens();
        }
        let latest = match events.last() {
            Some(e) if (events.len() as u64) < limit => e.id,
            _ => revocation::Entity::find()
                .select_only()
                .column_as(revocation::Column::Id.max(), "max")
                .into_tuple::<Option<i64>>()
                .one(&self.db)
                .await
                .map_err(backend)?
                .flatten()
                .unwrap_or(0),
        };
        let purged_through = revocation_purged::Entity::find_by_id(1)
            .one(&self.db)
            .await
            .map_err(backend)?
            .map_or(0, |r| r.through);
        Ok(RevocationBatch {
            events,
            purged_through,
            latest: latest.max(purged_through),
        })
    }

    async fn purge_revocations(&self, before: UnixTime) -> Result<u64, StoreError> {
        let txn = self.db.begin().await.map_err(backend)?;
        let newest_old = revocation::Entity::find()
            .select_only()
            .column_as(revocation::Column::Id.max(), "max")
            .filter(revocation::Column::At.lt(before))
            .into_tuple::<Option<i64>>()
            .one(&txn)
            .await
            .map_err(backend)?
            .flatten();
        let Some(through) = newest_old else {
            txn.rollback().await.map_err(backend)?;
            return Ok(0);
        };
        let gone = revocation::Entity::delete_many()
            .filter(revocation::Column::Id.lte(through))
            .exec(&txn)
            .await
            .map_err(backend)?
            .rows_affected;
        revocation_purged::Entity::insert(revocation_purged::ActiveModel {
            id: Set(1),
            through: Set(through),
        })
        .on_conflict(
            OnConflict::column(revocation_purged::Column::Id)
                .update_column(revocation_purged::Column::Through)
                .to_owned(),
        )
        .exec(&txn)
        .await
        .map_err(backend)?;
        txn.commit().await.map_err(backend)?;
        Ok(gone)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        let receiver = self.wakeups.signal.subscribe();
        self.wakeups.listen();
        receiver
    }
}

/// Relays PostgreSQL notifications of [`CHANNEL`] to the in-process signal, for as
/// long as the process runs; reconnects after a failure (and wakes the readers, who
/// may have missed something meanwhile).
async fn listen(url: String, wakeups: Arc<Wakeups>) {
    use sea_orm::sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut l = PgListener::connect(&url).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(l)
        };
        match listener.await {
            Ok(mut l) => {
                wakeups.wake();
                while l.recv().await.is_ok() {
                    wakeups.wake();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for revocations; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
