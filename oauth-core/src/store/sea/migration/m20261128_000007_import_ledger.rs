//! The import ledger (`auth_server import-django`): one row per imported source row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, timestamp_with_time_zone};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthImportLedger::Table)
                    .col(string_len(OauthImportLedger::Kind, 32))
                    .col(string_len(OauthImportLedger::SourceKey, 255))
                    .col(string_len(OauthImportLedger::TargetKey, 255))
                    .col(string_len(OauthImportLedger::Fingerprint, 64))
                    .col(timestamp_with_time_zone(OauthImportLedger::ImportedAt))
                    .primary_key(
                        Index::create()
                            .col(OauthImportLedger::Kind)
                            .col(OauthImportLedger::SourceKey),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthImportLedger::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthImportLedger {
    Table,
    Kind,
    SourceKey,
    TargetKey,
    Fingerprint,
    ImportedAt,
}
