use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, binary_len, small_integer, string_len, text,
};

use super::m20261122_000001_create_users::OauthUsers;
use super::m20261122_000002_create_clients::OauthClients;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthTokens::Table)
                    .col(big_pk_auto(OauthTokens::Id))
                    .col(binary_len(OauthTokens::Hash, 32))
                    .col(small_integer(OauthTokens::Kind))
                    .col(string_len(OauthTokens::ClientId, 100))
                    .col(big_integer_null(OauthTokens::UserId))
                    .col(text(OauthTokens::Scope))
                    .col(binary_len(OauthTokens::Family, 16))
                    .col(big_integer(OauthTokens::IssuedAt))
                    .col(big_integer(OauthTokens::ExpiresAt))
                    .col(big_integer_null(OauthTokens::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_oauth_tokens_client")
                            .from(OauthTokens::Table, OauthTokens::ClientId)
                            .to(OauthClients::Table, OauthClients::ClientId)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_oauth_tokens_user")
                            .from(OauthTokens::Table, OauthTokens::UserId)
                            .to(OauthUsers::Table, OauthUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The digest is the lookup key of every introspection: one unique-index probe.
        for (name, col, unique) in [
            ("ux_oauth_tokens_hash", OauthTokens::Hash, true),
            ("ix_oauth_tokens_family", OauthTokens::Family, false),
            ("ix_oauth_tokens_user", OauthTokens::UserId, false),
            ("ix_oauth_tokens_expires", OauthTokens::ExpiresAt, false),
        ] {
            let mut index = Index::create();
            index.name(name).table(OauthTokens::Table).col(col);
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthTokens {
    Table,
    Id,
    Hash,
    Kind,
    ClientId,
    UserId,
    Scope,
    Family,
    IssuedAt,
    ExpiresAt,
    RevokedAt,
}
