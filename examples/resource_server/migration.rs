//! The resource server's migrations, one file each.

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20261122_000001_create_rs_users;
mod m20261122_000002_create_items;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_rs_users::Migration),
            Box::new(m20261122_000002_create_items::Migration),
        ]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        "rs_migrations".into()
    }
}
