//! `oauth_revocations`: the revocation log. Times are Unix seconds.

use sea_orm::entity::prelude::*;

/// One log entry: exactly one of `token_hash`, `user_id` (with an optional
/// `client_id`) or `client_id` names what was revoked.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_revocations")]
pub struct Model {
    /// Position in the log.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When; user and client entries end tokens issued at or before it.
    pub at: i64,
    /// The event type (`token-revoked`, `session-revoked`, `credential-change`).
    pub kind: String,
    /// SHA-256 of one access token.
    pub token_hash: Option<Vec<u8>>,
    /// A user whose tokens ended.
    pub user_id: Option<i64>,
    /// A client whose tokens ended (or, with `user_id`, that user's tokens of it).
    pub client_id: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
