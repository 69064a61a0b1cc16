//! tower-sessions' [`SessionStore`] over a sea-orm connection, so that every
//! server instance sharing the database serves every browser session.
//!
//! [`SqlSessionStore`] is the store on its own: one table, `oauth_sessions`, which
//! [`SqlSessionStore::migrate`] creates when missing — for an application (such as
//! the example resource server) that wants database sessions without the rest of
//! the auth server's schema. [`SeaOrmStore`] is a `SessionStore` too, delegating
//! to it over its own connection (its migrations create the same table, with a
//! foreign key to the users).
//!
//! Rows are keyed by the SHA-256 of the session id, like tokens: a copy of the table
//! does not let anyone take over a session. The signed-in user's id is kept in a
//! column of its own so that all of a user's sessions can be ended at once.

use async_trait::async_trait;
use sea_orm::sea_query::{Index, Table};
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, DatabaseConnection, EntityTrait as _, QueryFilter as _,
};
use sea_orm_migration::SchemaManager;
use sea_orm_migration::schema::{big_integer, big_integer_null, binary_len, text};
use sha2::{Digest as _, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use super::SeaOrmStore;
use super::entity::session;
use crate::store::{SESSION_USER_KEY as USER_KEY, StoreError, UserId};

/// Browser sessions in the table `oauth_sessions` of any sea-orm connection
/// (SQLite or PostgreSQL).
///
/// ```
/// # use oauth_core::sea::SqlSessionStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let db = oauth_core::sea::sea_orm::Database::connect("sqlite::memory:").await?;
/// let sessions = SqlSessionStore::new(db);
/// sessions.migrate().await?; // creates oauth_sessions if missing; safe on every start
/// let layer = oauth_core::pages::tower_sessions::SessionManagerLayer::new(sessions)
///     .with_name("my_session");
/// # let _ = layer; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    db: DatabaseConnection,
}

impl SqlSessionStore {
    /// Sessions kept over `db`.
    #[must_use]
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Creates the table `oauth_sessions` and its indexes when they are missing
    /// (idempotent). A database migrated by [`SeaOrmStore`] has them already.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database refuses.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let manager = SchemaManager::new(&self.db);
        manager
            .create_table(
                Table::create()
                    .table(session::Entity)
                    .if_not_exists()
                    .col(binary_len(session::Column::IdHash, 32).primary_key())
                    .col(text(session::Column::Data))
                    .col(big_integer_null(session::Column::UserId))
                    .col(big_integer(session::Column::ExpiresAt))
                    .to_owned(),
            )
            .await
            .map_err(super::backend)?;
        for (name, col) in [
            ("ix_oauth_sessions_user", session::Column::UserId),
            ("ix_oauth_sessions_expires", session::Column::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(session::Entity)
                        .col(col)
                        .to_owned(),
                )
                .await
                .map_err(super::backend)?;
        }
        Ok(())
    }

    /// Ends every session of a user; returns how many there were.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn end_user_sessions(&self, user_id: UserId) -> Result<u64, StoreError> {
        let res = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await
            .map_err(super::backend)?;
        Ok(res.rows_affected)
    }
}

fn id_hash(id: &Id) -> Vec<u8> {
    Sha256::digest(id.to_string().as_bytes()).to_vec()
}

fn failed(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn row(record: &Record) -> Result<session::ActiveModel, session_store::Error> {
    Ok(session::ActiveModel {
        id_hash: Set(id_hash(&record.id)),
        data: Set(serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?),
        user_id: Set(record
            .data
            .get(USER_KEY)
            .and_then(serde_json::Value::as_i64)),
        expires_at: Set(record.expiry_date.unix_timestamp()),
    })
}

fn now() -> i64 {
    tower_sessions::cookie::time::OffsetDateTime::now_utc().unix_timestamp()
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A colliding id (2^-128) gets a new one instead of overwriting a session.
        loop {
            match session::Entity::insert(row(record)?)
                .exec_without_returning(&self.db)
                .await
                .map_err(super::backend)
            {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => record.id = Id::default(),
                Err(e) => return Err(failed(e)),
            }
        }
    }

    /// Updates the session's row, never creates it: tower-sessions calls `save` only
    /// for a session it loaded (a new one goes through `create`), so a missing row
    /// was deleted meanwhile — a sign-out, [`end_user_sessions`](Self::end_user_sessions),
    /// expiry — and a request that was in flight must not bring it back (the pages
    /// save every session they answer, to count idle time from the last use).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let row = row(record)?;
        session::Entity::update_many()
            .set(row)
            .filter(session::Column::IdHash.eq(id_hash(&record.id)))
            .exec(&self.db)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(found) = session::Entity::find_by_id(id_hash(id))
            .filter(session::Column::ExpiresAt.gt(now()))
            .one(&self.db)
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&found.data)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?,
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::from_unix_timestamp(
                found.expires_at,
            )
            .map_err(|e| session_store::Error::Decode(e.to_string()))?,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        session::Entity::delete_by_id(id_hash(id))
            .exec(&self.db)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(now()))
            .exec(&self.db)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

impl SeaOrmStore {
    /// The session store over this store's connection.
    #[must_use]
    pub fn sessions(&self) -> SqlSessionStore {
        SqlSessionStore::new(self.db.clone())
    }

    /// Ends every browser session of a user; returns how many there were.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database fails.
    pub async fn end_user_sessions(&self, user_id: UserId) -> Result<u64, StoreError> {
        self.sessions().end_user_sessions(user_id).await
    }
}

#[async_trait]
impl SessionStore for SeaOrmStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.sessions().create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.sessions().save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.sessions().load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.sessions().delete(id).await
    }
}

#[async_trait]
impl ExpiredDeletion for SeaOrmStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.sessions().delete_expired().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// On its own, the store creates just its table, twice without complaint, and
    /// keeps, loads and deletes sessions.
    #[tokio::test]
    async fn standalone_table_is_idempotent_and_works() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let store = SqlSessionStore::new(db.clone());
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        let mut record = Record {
            id: Id::default(),
            data: [("k".to_owned(), serde_json::json!(1))]
                .into_iter()
                .collect(),
            expiry_date: tower_sessions::cookie::time::OffsetDateTime::now_utc()
                + tower_sessions::cookie::time::Duration::hours(1),
        };
        store.create(&mut record).await.unwrap();
        let loaded = store.load(&record.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, record.data);
        // Saved again: updated in place.
        record.data.insert("k".to_owned(), serde_json::json!(2));
        store.save(&record).await.unwrap();
        let loaded = store.load(&record.id).await.unwrap().unwrap();
        assert_eq!(loaded.data["k"], 2);
        store.delete(&record.id).await.unwrap();
        assert!(store.load(&record.id).await.unwrap().is_none());
        // A save of a deleted session (a request in flight during a sign-out) does
        // not bring it back.
        store.save(&record).await.unwrap();
        assert!(store.load(&record.id).await.unwrap().is_none());
        let tables = sea_orm::ConnectionTrait::query_all_raw(
            &db,
            sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'table'",
            ),
        )
        .await
        .unwrap();
        let names: Vec<String> = tables
            .iter()
            .map(|r| r.try_get::<String>("", "name").unwrap())
            .collect();
        assert_eq!(names, ["oauth_sessions"]);
    }
}
