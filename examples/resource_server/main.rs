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
mod attacker_tests;
#[cfg(test)]
mod browser_tests;
#[cfg(test)]
mod chromium;
mod config;
#[cfg(test)]
mod createclient_tests;
mod db;
#[cfg(test)]
#[path = "../common/demo_seed.rs"]
mod demo_seed;
#[cfg(test)]
mod edge_tests;
#[path = "../common/env.rs"]
mod env;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod instances_tests;
mod items;
mod migration;
#[path = "../common/ops.rs"]
mod ops;
#[cfg(test)]
mod ops_tests;
mod price;
#[cfg(test)]
mod process;
mod proxy;
#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod seed_tests;
#[path = "../common/serve.rs"]
mod serve;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod together_tests;

use axum::Router;
use axum::extract::FromRef;
use oauth_core::resource::{Introspector, ResourceAuth};
use sea_orm::DatabaseConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    db: DatabaseConnection,
    /// The one behind `auth`, for the readiness probe.
    introspector: Introspector,
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
    let metrics = ops::start_metrics(&db).await?;
    let mut app = app(db, &config)?;
    if metrics {
        app = app.layer(axum::middleware::from_fn(
            oauth_core::metrics::track_requests,
        ));
    }
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
        introspector: introspector.clone(),
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
    let (api, doc) = api().split_for_parts();
    Ok(router
        .merge(api)
        .with_state(state)
        .merge(oauth_core::openapi::serve(document(doc)))
        // Every body, whoever reads it: a declared length over the limit gets 413
        // before any handler runs, a chunked body fails its reader at the limit
        // (axum's extractors answer 413). `DefaultBodyLimit` alone bounds only
        // axum's own extractors.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT)))
}

/// The largest request body either server part accepts (bytes).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// The JSON API: each operation routed and documented from its handler's
/// `#[utoipa::path]` (the console's HTML pages are not in the document).
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(items::routes())
        .merge(proxy::routes())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The OpenAPI 3.1 document served at `/openapi.json`.
fn document(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.info.title = "oauth-core example resource server".to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "The items API (bearer tokens checked by introspection at the auth server) and the \
         proxy endpoints to the auth server. Paths are listed with their trailing slash; \
         each also answers without it. The items console (`/admin/…`) is HTML and not \
         described here."
            .to_owned(),
    );
    oauth_core::openapi::add_security_schemes(&mut doc);
    oauth_core::openapi::unique_operation_ids(&mut doc);
    doc
}

/// `GET /readyz`: ready when the database answers and tokens can be checked — the
/// auth server answers, or the cache holds answers to serve meanwhile.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready.", body = ops::Readiness),
        (status = 503, description = "Not ready; `reason` says why.", body = ops::Readiness),
    ),
)]
async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, axum::Json<ops::Readiness>) {
    let problem = if !ops::database_ready(&state.db).await {
        Some("the database does not answer")
    } else if !state.introspector.auth_server_reachable()
        && state.introspector.cached_entries() == 0
    {
        Some("the auth server does not answer and nothing is cached")
    } else {
        None
    };
    ops::readiness(problem)
}

/// The health answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok`.
    status: &'static str,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Alive.", body = Health)),
)]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

#[cfg(test)]
#[path = "../common/route_check.rs"]
mod route_check;

#[cfg(test)]
mod openapi_tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use oauth_core::resource::IntrospectionCredentials;

    use crate::config::Config;
    use crate::items::Paging;

    /// The items console: HTML pages, not in the OpenAPI document. A new page must
    /// be added here, or documented.
    const BROWSER_ONLY: &[&str] = &[
        "/admin/",
        "/admin",
        "/admin/items/",
        "/admin/items/{id}/",
        "/admin/items/{id}/delete/",
        "/admin/callback",
        "/admin/logout/",
        "/admin/static/style.css",
    ];

    /// `/openapi.json` names every JSON route of the server as it is served (with
    /// the console), and nothing else.
    #[tokio::test]
    async fn openapi_document_matches_the_router() {
        oauth_core::resource::ensure_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 8001));
        // No auth server: requests without a token never reach it.
        let auth_server = "http://127.0.0.1:9".to_owned();
        let config = Config {
            database_url: format!("sqlite://{}", dir.path().join("rs.db").display()),
            addr,
            introspection_url: format!("{auth_server}/o/introspect/"),
            auth_server_issuer: auth_server.clone(),
            auth_server_url: auth_server,
            credentials: IntrospectionCredentials::Client {
                id: "rs-id".into(),
                secret: "rs-secret".into(),
            },
            cache_cap: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            timeout: Duration::from_millis(200),
            revocation_stream: None,
            disconnected_cache: Duration::from_secs(5),
            paging: Paging {
                default: 10,
                max: 100,
            },
            bench_unauthenticated: false,
            public_url: format!("http://{addr}"),
            session_idle: Duration::from_secs(1800),
            session_key: None,
        };
        let db = crate::db::open(&config.database_url).await.unwrap();
        let router = crate::app(db, &config).unwrap();
        crate::route_check::assert_document_matches_router(&router, BROWSER_ONLY).await;
    }
}
