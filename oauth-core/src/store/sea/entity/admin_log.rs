//! `oauth_admin_log`: changes made through the admin console.

use sea_orm::entity::prelude::*;

/// One log row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_admin_log")]
pub struct Model {
    /// Primary key, increasing.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When.
    pub at: DateTimeUtc,
    /// The staff user who made the change.
    pub actor_id: i64,
    /// What was done.
    pub action: String,
    /// The kind of object.
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// What the object was called.
    pub object_repr: String,
    /// Which fields changed.
    pub detail: String,
}

/// Foreign keys live in the migration.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
