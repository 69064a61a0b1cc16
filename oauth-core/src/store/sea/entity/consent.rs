//! `oauth_consents`: what each user has allowed each client.

use sea_orm::entity::prelude::*;

/// One consent row; (`user_id`, `client_id`) is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_consents")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The user.
    pub user_id: i64,
    /// The client's `client_id`.
    pub client_id: String,
    /// Space-separated scope tokens granted so far.
    pub scope: String,
    /// When consent was last given (Unix seconds).
    pub granted_at: i64,
}

/// Foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
