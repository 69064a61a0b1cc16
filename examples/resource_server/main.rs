//! Run with: `cargo run --example resource_server`
//!
//! The resource server: an items API whose bearer tokens are checked by
//! introspection at the auth server (cached), and proxy endpoints for sign-up,
//! tokens and password change that keep this server's client secret server-side.
//! SQLite by default (`resource_server.db`), `http://127.0.0.1:8001`; the defaults
//! work with `cargo run --example auth_server` and its demo client.

#[cfg(test)]
mod browser_tests;
mod config;
mod db;
#[path = "../common/env.rs"]
mod env;
mod items;
mod migration;
mod price;
mod proxy;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

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
    let app = app(db, &config)?.layer(oauth_core::server::trace_layer());
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(
        "resource server listening on http://{}, introspecting at {}",
        listener.local_addr()?,
        config.introspection_url
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(env::shutdown())
    .await?;
    Ok(())
}

/// The router: items and the user proxy.
fn app(db: DatabaseConnection, config: &Config) -> Result<Router, Error> {
    let introspector = Introspector::new(config.introspector())?;
    let state = AppState {
        db,
        auth: ResourceAuth::new(introspector),
        proxy: proxy::Proxy::new(config)?,
        pages: config.paging,
    };
    let mut router = Router::new();
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
