//! `oauth_codes`: digests of issued authorization codes.

use sea_orm::entity::prelude::*;

/// One code row. Times are Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_codes")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// SHA-256 of the code (32 bytes).
    #[sea_orm(unique)]
    pub hash: Vec<u8>,
    /// The client's `client_id`.
    pub client_id: String,
    /// The user who authorized it.
    pub user_id: i64,
    /// The redirect URI it was delivered to.
    pub redirect_uri: String,
    /// Whether the authorization request named the redirect URI.
    pub redirect_uri_sent: bool,
    /// Space-separated scope tokens.
    pub scope: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// Family of the tokens issued for it (16 bytes).
    pub family: Vec<u8>,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry time.
    pub expires_at: i64,
    /// Redemption time.
    pub consumed_at: Option<i64>,
    /// Time of the first refused second redemption.
    pub replayed_at: Option<i64>,
}

/// Foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
