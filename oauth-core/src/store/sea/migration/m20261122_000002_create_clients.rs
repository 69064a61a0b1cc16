use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, big_pk_auto, string_len, string_len_uniq, text, text_null,
    timestamp_with_time_zone,
};

use super::m20261122_000001_create_users::OauthUsers;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthClients::Table)
                    .col(big_pk_auto(OauthClients::Id))
                    .col(string_len_uniq(OauthClients::ClientId, 100))
                    .col(text_null(OauthClients::SecretHash))
                    .col(string_len(OauthClients::Kind, 16))
                    .col(string_len(OauthClients::Name, 255))
                    .col(text(OauthClients::GrantTypes))
                    .col(text(OauthClients::RedirectUris))
                    .col(text(OauthClients::AllowedScope))
                    .col(text(OauthClients::DefaultScope))
                    .col(big_integer_null(OauthClients::OwnerId))
                    .col(timestamp_with_time_zone(OauthClients::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_oauth_clients_owner")
                            .from(OauthClients::Table, OauthClients::OwnerId)
                            .to(OauthUsers::Table, OauthUsers::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthClients::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(super) enum OauthClients {
    Table,
    Id,
    ClientId,
    SecretHash,
    Kind,
    Name,
    GrantTypes,
    RedirectUris,
    AllowedScope,
    DefaultScope,
    OwnerId,
    CreatedAt,
    AllowedOrigins,
    SkipAuthorization,
}
