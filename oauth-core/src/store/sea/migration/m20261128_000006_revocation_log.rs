//! The revocation log that caches follow (`RevocationLog`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, binary_len_null, integer, string_len,
    string_len_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign keys: an entry outlives the user, client or token it names.
        manager
            .create_table(
                Table::create()
                    .table(OauthRevocations::Table)
                    .col(big_pk_auto(OauthRevocations::Id))
                    .col(big_integer(OauthRevocations::At))
                    .col(string_len(OauthRevocations::Kind, 32))
                    .col(binary_len_null(OauthRevocations::TokenHash, 32))
                    .col(big_integer_null(OauthRevocations::UserId))
                    .col(string_len_null(OauthRevocations::ClientId, 100))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("oauth_revocations_at")
                    .table(OauthRevocations::Table)
                    .col(OauthRevocations::At)
                    .to_owned(),
            )
            .await?;
        // One row: the newest id purged, so that a reader resuming before it learns
        // it missed entries.
        manager
            .create_table(
                Table::create()
                    .table(OauthRevocationsPurged::Table)
                    .col(integer(OauthRevocationsPurged::Id).primary_key())
                    .col(big_integer(OauthRevocationsPurged::Through))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(OauthRevocationsPurged::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(OauthRevocations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthRevocations {
    Table,
    Id,
    At,
    Kind,
    TokenHash,
    UserId,
    ClientId,
}

#[derive(DeriveIden)]
enum OauthRevocationsPurged {
    Table,
    Id,
    Through,
}
