//! The admin console's change log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_pk_auto, string_len, text, timestamp_with_time_zone,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to the actor: the log outlives deleted accounts, as
        // Django's does not (it cascades); who did what must stay on record.
        manager
            .create_table(
                Table::create()
                    .table(OauthAdminLog::Table)
                    .col(big_pk_auto(OauthAdminLog::Id))
                    .col(timestamp_with_time_zone(OauthAdminLog::At))
                    .col(big_integer(OauthAdminLog::ActorId))
                    .col(string_len(OauthAdminLog::Action, 32))
                    .col(string_len(OauthAdminLog::ObjectType, 32))
                    .col(string_len(OauthAdminLog::ObjectId, 128))
                    .col(text(OauthAdminLog::ObjectRepr))
                    .col(text(OauthAdminLog::Detail))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthAdminLog::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum OauthAdminLog {
    Table,
    Id,
    At,
    ActorId,
    Action,
    ObjectType,
    ObjectId,
    ObjectRepr,
    Detail,
}
