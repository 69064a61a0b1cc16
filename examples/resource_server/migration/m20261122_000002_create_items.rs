use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_pk_auto, string_len, string_len_uniq};

use super::m20261122_000001_create_rs_users::RsUsers;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Items::Table)
                    .col(big_pk_auto(Items::Id))
                    .col(string_len_uniq(Items::Name, 50))
                    .col(string_len(Items::Description, 250))
                    .col(big_integer(Items::PriceCents))
                    .col(big_integer(Items::OwnerId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_items_owner")
                            .from(Items::Table, Items::OwnerId)
                            .to(RsUsers::Table, RsUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_items_owner")
                    .table(Items::Table)
                    .col(Items::OwnerId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Items::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Items {
    Table,
    Id,
    Name,
    Description,
    PriceCents,
    OwnerId,
}
