//! Run with: `cargo run --example resource_server`
//!
//! The resource server: an items API whose bearer tokens are checked by
//! introspection at the auth server (cached), and proxy endpoints for sign-up,
//! tokens and password change that keep this server's client secret server-side,
//! and the items console at `/admin/` for the auth server's staff users.
//! SQLite by default (`resource_server.db`), `http://127.0.0.1:8001`; the defaults
//! work with `cargo run --example auth_server` and its demo client.

mod admin;
#[cfg(test)]
mod admin_browser_tests;
#[cfg(test)]
mod admin_tests;
#[cfg(test)]
mod browser_tests;
#[cfg(test)]
mod chromium;
mod config;
mod db;
#[path = "../common/env.rs"]
mod env;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod instances_tests;
mod items;
mod migration;
mod price;
#[cfg(test)]
mod process;
mod proxy;
#[cfg(test)]
mod proxy_tests;
#[path = "../common/serve.rs"]
mod serve;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::extract::FromRef;
use oauth_core::resource::{Introspector, ResourceAuth};
use sea_orm::DatabaseConnection;

use crate::config::Config;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    db: DatabaseConnection,
    auth: ResourceAuth,
    proxy: proxy::Proxy,
    pages: items::Paging,
    /// The items console; `None` without client credentials to sign in with.
    admin: Option<admin::Admin>,
}

impl FromRef<AppState> for ResourceAuth {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    env::init_logging();
    let config = Config::from_env()?;
    let db = db::open(&config.database_url).await?;
    tokio::spawn(housekeeping(db.clone()));
    let app = app(db, &config)?.layer(oauth_core::server::trace_layer());
    let timeouts = serve::Timeouts::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(
        "resource server listening on http://{}, introspecting at {}",
        listener.local_addr()?,
        config.introspection_url
    );
    serve::serve(listener, app, timeouts, env::shutdown()).await?;
    Ok(())
}

/// Every ten minutes: deletes expired console sessions.
async fn housekeeping(db: DatabaseConnection) {
    use oauth_core::pages::tower_sessions::ExpiredDeletion as _;
    let sessions = oauth_core::sea::SqlSessionStore::new(db);
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        if let Err(e) = sessions.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired console sessions");
        }
    }
}

/// The router: items, the user proxy and the items console.
fn app(db: DatabaseConnection, config: &Config) -> Result<Router, Error> {
    let introspector = Introspector::new(config.introspector())?;
    let admin = admin::Admin::new(config)?;
    let state = AppState {
        db: db.clone(),
        auth: ResourceAuth::new(introspector),
        proxy: proxy::Proxy::new(config)?,
        pages: config.paging,
        admin: admin.clone(),
    };
    let mut router = Router::new();
    if let Some(admin) = &admin {
        router = router.merge(admin::routes(
            admin,
            oauth_core::sea::SqlSessionStore::new(db),
        ));
    } else {
        tracing::warn!("no client credentials (INTROSPECTION_TOKEN is set): no items console");
    }
    if config.bench_unauthenticated {
        router = router.route(
            "/bench/items/{id}/",
            axum::routing::get(items::retrieve_unauthenticated),
        );
    }
    Ok(router
        .merge(items::routes())
        .merge(proxy::routes())
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state))
}
