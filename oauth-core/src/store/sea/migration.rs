//! Schema migrations (sea-orm-migration), one file each, applied in order.
//! The same migrations run on SQLite and PostgreSQL.

use sea_orm_migration::{MigrationTrait, MigratorTrait};

mod m20261122_000001_create_users;
mod m20261122_000002_create_clients;
mod m20261122_000003_create_tokens;
mod m20261128_000004_authorization_code;
mod m20261128_000005_admin_log;
mod m20261128_000006_revocation_log;
mod m20261128_000007_import_ledger;
mod m20261128_000008_throttle;

/// Runs the store's migrations: `Migrator::up(&db, None)`, or let
/// [`SeaOrmStore::open`](super::SeaOrmStore::open) do it.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_users::Migration),
            Box::new(m20261122_000002_create_clients::Migration),
            Box::new(m20261122_000003_create_tokens::Migration),
            Box::new(m20261128_000004_authorization_code::Migration),
            Box::new(m20261128_000005_admin_log::Migration),
            Box::new(m20261128_000006_revocation_log::Migration),
            Box::new(m20261128_000007_import_ledger::Migration),
            Box::new(m20261128_000008_throttle::Migration),
        ]
    }

    fn migration_table_name() -> sea_orm_migration::sea_orm::DynIden {
        "oauth_migrations".into()
    }
}
