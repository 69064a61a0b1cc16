//! `oauth_sessions`: browser sessions of the sign-in pages, by digest of their id.

use sea_orm::entity::prelude::*;

/// One session row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_sessions")]
pub struct Model {
    /// SHA-256 of the session id (32 bytes): the cookie's value is never stored.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: Vec<u8>,
    /// The session's data, as JSON.
    pub data: String,
    /// The signed-in user, if any (to end a user's sessions at once).
    pub user_id: Option<i64>,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// Foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
