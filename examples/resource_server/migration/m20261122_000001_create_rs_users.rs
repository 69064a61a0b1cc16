use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_pk_auto, string_len, string_len_uniq};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RsUsers::Table)
                    .col(big_pk_auto(RsUsers::Id))
                    .col(string_len_uniq(RsUsers::AuthSub, 100))
                    .col(string_len(RsUsers::Email, 254))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RsUsers::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum RsUsers {
    Table,
    Id,
    AuthSub,
    Email,
}
