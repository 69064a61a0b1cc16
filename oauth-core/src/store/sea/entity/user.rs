//! `oauth_users`: user accounts.

use sea_orm::entity::prelude::*;

/// One user row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_users")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Normalized email as given.
    pub email: String,
    /// Lower-cased email: the unique key.
    #[sea_orm(unique)]
    pub email_key: String,
    /// scrypt PHC string.
    pub password_hash: Option<String>,
    /// See [`crate::User::is_active`].
    pub is_active: bool,
    /// See [`crate::User::is_staff`].
    pub is_staff: bool,
    /// See [`crate::User::is_superuser`].
    pub is_superuser: bool,
    /// Account creation time.
    pub date_joined: DateTimeUtc,
    /// Last sign-in.
    pub last_login: Option<DateTimeUtc>,
}

/// No relations are navigated through the ORM; foreign keys live in the migrations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
