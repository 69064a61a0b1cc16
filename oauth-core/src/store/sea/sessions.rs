//! tower-sessions' [`SessionStore`] over the store's own connection, so that every
//! auth server instance sharing the database serves every browser session.
//!
//! Rows are keyed by the SHA-256 of the session id, like tokens: a copy of the table
//! does not let anyone take over a session. The signed-in user's id is kept in a
//! column of its own so that all of a user's sessions can be ended at once.

use async_trait::async_trait;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use sha2::{Digest as _, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use super::SeaOrmStore;
use super::entity::session;
use crate::store::{StoreError, UserId};

use crate::pages::session::USER_KEY;

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
impl SessionStore for SeaOrmStore {
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

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        session::Entity::insert(row(record)?)
            .on_conflict(
                OnConflict::column(session::Column::IdHash)
                    .update_columns([
                        session::Column::Data,
                        session::Column::UserId,
                        session::Column::ExpiresAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
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
impl ExpiredDeletion for SeaOrmStore {
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
    /// Ends every browser session of a user; returns how many there were.
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
