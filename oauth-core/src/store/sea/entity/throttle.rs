//! `oauth_throttle`: the brute-force detector's failure counters, shared by every
//! server instance on the database.

use sea_orm::entity::prelude::*;

/// One counter.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_throttle")]
pub struct Model {
    /// SHA-256 of the counter's key (which names an account or an address: never
    /// stored in clear).
    #[sea_orm(primary_key, auto_increment = false)]
    pub key_hash: Vec<u8>,
    /// Failures counted since the counter was last reset.
    pub failures: i32,
    /// Unix milliseconds of the latest failure.
    pub last_failure: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
