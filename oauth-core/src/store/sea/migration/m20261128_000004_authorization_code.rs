//! The authorization code grant: two client columns, codes, consents, sessions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, binary_len, boolean, string_len, text,
};

use super::m20261122_000001_create_users::OauthUsers;
use super::m20261122_000002_create_clients::OauthClients;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn to_user<T: IntoIden>(table: T, column: T, name: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(OauthUsers::Table, OauthUsers::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            text(OauthClients::AllowedOrigins).default("").to_owned(),
            boolean(OauthClients::SkipAuthorization)
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OauthClients::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(OauthCodes::Table)
                    .col(big_pk_auto(OauthCodes::Id))
                    .col(binary_len(OauthCodes::Hash, 32).unique_key())
                    .col(string_len(OauthCodes::ClientId, 100))
                    .col(big_integer(OauthCodes::UserId))
                    .col(text(OauthCodes::RedirectUri))
                    .col(boolean(OauthCodes::RedirectUriSent))
                    .col(text(OauthCodes::Scope))
                    .col(string_len(OauthCodes::CodeChallenge, 128))
                    .col(binary_len(OauthCodes::Family, 16))
                    .col(big_integer(OauthCodes::IssuedAt))
                    .col(big_integer(OauthCodes::ExpiresAt))
                    .col(big_integer_null(OauthCodes::ConsumedAt))
                    .col(big_integer_null(OauthCodes::ReplayedAt))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_oauth_codes_client")
                            .from(OauthCodes::Table, OauthCodes::ClientId)
                            .to(OauthClients::Table, OauthClients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .foreign_key(&mut to_user(
                        OauthCodes::Table,
                        OauthCodes::UserId,
                        "fk_oauth_codes_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_oauth_codes_expires")
                    .table(OauthCodes::Table)
                    .col(OauthCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OauthConsents::Table)
                    .col(big_pk_auto(OauthConsents::Id))
                    .col(big_integer(OauthConsents::UserId))
                    .col(string_len(OauthConsents::ClientId, 100))
                    .col(text(OauthConsents::Scope))
                    .col(big_integer(OauthConsents::GrantedAt))
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_oauth_consents_client")
                            .from(OauthConsents::Table, OauthConsents::ClientId)
                            .to(OauthClients::Table, OauthClients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade)
                            .to_owned(),
                    )
                    .foreign_key(&mut to_user(
                        OauthConsents::Table,
                        OauthConsents::UserId,
                        "fk_oauth_consents_user",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_oauth_consents_user_client")
                    .table(OauthConsents::Table)
                    .col(OauthConsents::UserId)
                    .col(OauthConsents::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OauthSessions::Table)
                    .col(binary_len(OauthSessions::IdHash, 32).primary_key())
                    .col(text(OauthSessions::Data))
                    .col(big_integer_null(OauthSessions::UserId))
                    .col(big_integer(OauthSessions::ExpiresAt))
                    .foreign_key(&mut to_user(
                        OauthSessions::Table,
                        OauthSessions::UserId,
                        "fk_oauth_sessions_user",
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_oauth_sessions_user", OauthSessions::UserId),
            ("ix_oauth_sessions_expires", OauthSessions::ExpiresAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(OauthSessions::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OauthSessions::Table.into_iden(),
            OauthConsents::Table.into_iden(),
            OauthCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            OauthClients::SkipAuthorization,
            OauthClients::AllowedOrigins,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OauthClients::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum OauthCodes {
    Table,
    Id,
    Hash,
    ClientId,
    UserId,
    RedirectUri,
    RedirectUriSent,
    Scope,
    CodeChallenge,
    Family,
    IssuedAt,
    ExpiresAt,
    ConsumedAt,
    ReplayedAt,
}

#[derive(DeriveIden)]
enum OauthConsents {
    Table,
    Id,
    UserId,
    ClientId,
    Scope,
    GrantedAt,
}

#[derive(DeriveIden)]
enum OauthSessions {
    Table,
    IdHash,
    Data,
    UserId,
    ExpiresAt,
}
