//! `oauth_tokens`: digests of issued access and refresh tokens.

use sea_orm::entity::prelude::*;

/// `kind` of an access token.
pub const ACCESS: i16 = 1;
/// `kind` of a refresh token.
pub const REFRESH: i16 = 2;

/// One token row. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_tokens")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// SHA-256 of the token (32 bytes).
    #[sea_orm(unique)]
    pub hash: Vec<u8>,
    /// [`ACCESS`] or [`REFRESH`].
    pub kind: i16,
    /// The client's `client_id`.
    pub client_id: String,
    /// The resource owner.
    pub user_id: Option<i64>,
    /// Space-separated scope tokens.
    pub scope: String,
    /// Grant family (16 bytes).
    pub family: Vec<u8>,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry time.
    pub expires_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
}

/// The owner, joined for introspection; the foreign key itself lives in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `user_id` → `oauth_users.id`.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
