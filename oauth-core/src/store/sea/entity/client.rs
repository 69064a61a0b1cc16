//! `oauth_clients`: registered clients.

use sea_orm::entity::prelude::*;

/// One client row. List-valued fields are space-separated.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_clients")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// RFC 6749 §2.2 identifier.
    #[sea_orm(unique)]
    pub client_id: String,
    /// scrypt PHC string of the secret.
    pub secret_hash: Option<String>,
    /// `confidential` or `public`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Space-separated `grant_type` values.
    pub grant_types: String,
    /// Space-separated redirect URIs.
    pub redirect_uris: String,
    /// Space-separated web origins allowed to call the token endpoint (CORS).
    pub allowed_origins: String,
    /// First-party client: no consent page.
    pub skip_authorization: bool,
    /// Space-separated scope tokens.
    pub allowed_scope: String,
    /// Space-separated scope tokens.
    pub default_scope: String,
    /// Registering user.
    pub owner_id: Option<i64>,
    /// Registration time.
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through the ORM; foreign keys live in the migrations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
