use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_pk_auto, boolean, string_len, string_len_uniq, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthUsers::Table)
                    .col(big_pk_auto(OauthUsers::Id))
                    .col(string_len(OauthUsers::Email, 254))
                    .col(string_len_uniq(OauthUsers::EmailKey, 254))
                    .col(text_null(OauthUsers::PasswordHash))
                    .col(boolean(OauthUsers::IsActive))
                    .col(boolean(OauthUsers::IsStaff))
                    .col(boolean(OauthUsers::IsSuperuser))
                    .col(timestamp_with_time_zone(OauthUsers::DateJoined))
                    .col(timestamp_with_time_zone_null(OauthUsers::LastLogin))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthUsers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub(super) enum OauthUsers {
    Table,
    Id,
    Email,
    EmailKey,
    PasswordHash,
    IsActive,
    IsStaff,
    IsSuperuser,
    DateJoined,
    LastLogin,
}
