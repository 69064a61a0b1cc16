//! The resource server's own database: local users, items and console sessions.

use oauth_core::resource::Principal;
use oauth_core::sea::{SeaOrmStore, SqlSessionStore, StoreConfig};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sea_orm_migration::MigratorTrait;

use crate::Error;

pub mod user {
    //! `rs_users`: users of the auth server, as first seen here.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rs_users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The auth server's id for the user (RFC 7662 `sub`).
        #[sea_orm(unique)]
        pub auth_sub: String,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod item {
    //! `items`: the API's resource. Prices are whole cents: exact, never a float.
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "items")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub name: String,
        pub description: String,
        pub price_cents: i64,
        pub owner_id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Opens (creating and migrating) the database, with the same SQLite settings as
/// the auth server's store, and the console's session table (only that table of
/// the library's schema).
pub async fn open(url: &str) -> Result<DatabaseConnection, Error> {
    let store = SeaOrmStore::connect(StoreConfig::new(url)).await?;
    let db = store.connection().clone();
    crate::migration::Migrator::up(&db, None).await?;
    SqlSessionStore::new(db.clone()).migrate().await?;
    Ok(db)
}

/// The local user for an introspected principal, created on first sight. One
/// upsert, so concurrent first requests agree on one row; the email follows the
/// auth server's.
pub async fn local_user(
    db: &DatabaseConnection,
    p: &Principal,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    let Some(sub) = p.sub.as_deref() else {
        return Ok(None);
    };
    let row = user::ActiveModel {
        auth_sub: Set(sub.to_owned()),
        email: Set(p.username.clone().unwrap_or_default()),
        ..Default::default()
    };
    user::Entity::insert(row)
        .on_conflict(
            OnConflict::column(user::Column::AuthSub)
                .update_column(user::Column::Email)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    user::Entity::find()
        .filter(user::Column::AuthSub.eq(sub))
        .one(db)
        .await
}
