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

/// The local user's key for a principal: the auth server's `sub`, or — for an
/// auth server that sends none, as Django OAuth Toolkit does — `username:` and the
/// username (its SHA-256 when that would not fit the column).
fn user_key(p: &Principal) -> Option<String> {
    match p.sub.as_deref() {
        Some(sub) => Some(sub.to_owned()),
        None => username_key(p),
    }
}

/// `username:` and the principal's username (or its SHA-256, when long).
fn username_key(p: &Principal) -> Option<String> {
    let username = p.username.as_deref().filter(|u| !u.is_empty())?;
    let key = format!("username:{username}");
    Some(if key.len() <= 100 {
        key
    } else {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(username.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("username-sha256:{hex}")
    })
}

/// The local user for an introspected principal, created on first sight. One
/// upsert, so concurrent first requests agree on one row; the email follows the
/// auth server's.
///
/// Users are filed under the introspection answer's `sub`, or its `username`
/// when it has no `sub` (a Django OAuth Toolkit auth server). A user first seen
/// through DOT and later through an auth server that sends `sub` (after the
/// import, `auth_server import-django`) keeps their row and their items: the row
/// filed under the username is adopted by the `sub` on first sight.
pub async fn local_user(
    db: &DatabaseConnection,
    p: &Principal,
) -> Result<Option<user::Model>, sea_orm::DbErr> {
    let Some(key) = user_key(p) else {
        return Ok(None);
    };
    if p.sub.is_some()
        && let Some(old) = username_key(p)
        && user::Entity::find()
            .filter(user::Column::AuthSub.eq(key.as_str()))
            .one(db)
            .await?
            .is_none()
    {
        // Adopted only while no row has the sub (a racing first request may have
        // made one: the unique key then refuses this, and the DOT row stays).
        let _ = user::Entity::update_many()
            .col_expr(
                user::Column::AuthSub,
                sea_orm::sea_query::Expr::value(key.clone()),
            )
            .filter(user::Column::AuthSub.eq(old))
            .exec(db)
            .await;
    }
    let row = user::ActiveModel {
        auth_sub: Set(key.clone()),
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
        .filter(user::Column::AuthSub.eq(key))
        .one(db)
        .await
}
