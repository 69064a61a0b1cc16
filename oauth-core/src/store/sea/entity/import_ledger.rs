//! `oauth_import_ledger`: what each imported row of another server's database
//! (Django) looked like when it was last imported, so a second run imports only
//! what changed there since — and never overwrites what changed here (a password
//! re-hashed at sign-in) with a row that did not change there.

use sea_orm::entity::prelude::*;

/// One imported row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_import_ledger")]
pub struct Model {
    /// What was imported: `django_user` or `django_application`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    /// The row's key in the source database (its primary key).
    #[sea_orm(primary_key, auto_increment = false)]
    pub source_key: String,
    /// The record it became here: a user id or a `client_id`.
    pub target_key: String,
    /// SHA-256 (hex) of the source row's imported columns.
    pub fingerprint: String,
    /// When it was last imported or updated.
    pub imported_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
