//! The brute-force detector's failure counters (`ThrottleStore`), shared by the
//! server instances on one database.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, binary_len, integer};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Keyed by the SHA-256 of the counter's key (an email or an address is
        // never stored in clear). No index on `last_failure`: every failure
        // rewrites it, and only the periodic purge reads by it (a scan of a small
        // table every few minutes).
        manager
            .create_table(
                Table::create()
                    .table(OauthThrottle::Table)
                    .col(binary_len(OauthThrottle::KeyHash, 32).primary_key())
                    .col(integer(OauthThrottle::Failures))
                    .col(big_integer(OauthThrottle::LastFailure))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthThrottle::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthThrottle {
    Table,
    KeyHash,
    Failures,
    LastFailure,
}
