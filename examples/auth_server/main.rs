//! Run with: `cargo run --example auth_server`
//!
//! The authorization server: SQLite by default (`auth_server.db`, created and
//! migrated on start), `http://127.0.0.1:8000`. On an empty database it registers the
//! demo clients `rs-id` / `rs-secret` (password grant) and `demo-app` (public,
//! authorization code + PKCE), and logs a ready-to-open authorization URL.
//! Configuration is read from the environment; see the README's table.
//!
//! Subcommands:
//! - `createsuperuser [--email EMAIL]` — password from `SUPERUSER_PASSWORD`, else
//!   read from standard input;
//! - `createclient [--id ID] [--name NAME] [--public] [--grant GRANT]…
//!   [--redirect-uri URI]… [--allowed-origin ORIGIN]… [--skip-authorization]
//!   [--scope "read write"]` — prints the client id, and the secret once;
//! - `import-django --from sqlite:///path/db.sqlite3|postgres://… [--user-table T]
//!   [--dry-run] [--default-scope "read write"] [--refresh-token-expire-seconds N]`
//!   — users, applications and live tokens of a Django OAuth Toolkit database,
//!   re-runnable (docs/migrating-from-dot.md).

mod commands;
mod config;
#[path = "../common/demo_seed.rs"]
mod demo_seed;
#[path = "../common/env.rs"]
mod env;
mod import_django;
#[path = "../common/ops.rs"]
mod ops;
#[path = "../common/serve.rs"]
mod serve;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use oauth_core::pages::Pages;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{AuthServer, PasswordHasher};

use crate::config::Config;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Errors are printed as their message (`error: …`), not as `main`'s `Debug`
/// form, which quotes the message and escapes every quote inside it.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    env::init_logging();
    let config = Config::from_env()?;
    let store = SeaOrmStore::connect(
        StoreConfig::new(&config.database_url)
            .max_connections(config.pool_size)
            .acquire_timeout(config.pool_timeout)
            .inline_reads(config.inline_reads),
    )
    .await?;
    store.migrate().await?;
    let store = Arc::new(store);

    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("createsuperuser") => {
            return commands::create_superuser(&store, &config, &args[1..]).await;
        }
        Some("createclient") => return commands::create_client(&store, &config, &args[1..]).await,
        Some("cleartokens") => {
            let cleared = store.clear_expired(config.cleanup()).await?;
            println!("deleted {cleared}");
            return Ok(());
        }
        Some("import-django") => return import_django::run(&store, &config, &args[1..]).await,
        Some(other) => return Err(format!("unknown command {other:?}").into()),
        None => {}
    }

    if config.seed_demo {
        commands::seed_demo_clients(&store, &config).await?;
        commands::log_demo_authorization(&store, &config).await?;
    }
    if !config.cleartokens_every.is_zero() {
        tokio::spawn(housekeeping(store.clone(), config.clone()));
    }
    let metrics = ops::start_metrics(store.connection()).await?;
    let mut app = app(store, &config)?;
    if metrics {
        app = app.layer(axum::middleware::from_fn(
            oauth_core::metrics::track_requests,
        ));
    }
    let timeouts = serve::Timeouts::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!("auth server listening on http://{}", listener.local_addr()?);
    serve::serve(listener, app, timeouts, env::shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The server's router over `store`, as configured.
fn app(store: Arc<SeaOrmStore>, config: &Config) -> Result<axum::Router, Error> {
    let pages = Pages::new(store.as_ref().clone())
        .admin(store.clone())
        .site_name(config.site_name.clone())
        .idle_timeout(config.session_idle)
        .absolute_timeout(config.session_max_age);
    let pages = match config.csrf_key {
        Some(key) => pages.csrf_key(key),
        None => pages,
    };
    let db = store.connection().clone();
    let (router, mut doc) = AuthServer::from_store(store)
        .pages(pages)
        .code_ttl(config.code_ttl)
        .issuer_url(config.issuer_url.clone())
        .scopes(config.scopes.clone())
        .privileged_scopes(config.privileged_scopes.clone())
        .access_token_ttl(config.access_ttl)
        .refresh_token_ttl(config.refresh_ttl)
        .refresh_grace(config.refresh_grace, config.refresh_grace_max_reuse)
        .password_hasher(PasswordHasher::with_limits(
            config.scrypt,
            config.kdf_threads,
            config
                .kdf_queue
                .unwrap_or_else(|| PasswordHasher::default_queue(config.kdf_threads)),
        )?)
        .throttle(config.throttle)
        .trusted_proxies(config.trusted_proxies.clone())
        .forwarded_header(config.forwarded_header)
        .body_limit(config.body_limit)
        .revocation_stream_recheck(config.stream_recheck)
        .revocation_stream_subscribers(config.streams_per_client, config.streams_total)
        .router_and_openapi()?;
    // Readiness, beside the liveness probe /healthz: the database answers.
    let (ready, ready_doc) = OpenApiRouter::new()
        .routes(routes!(readyz))
        .with_state(db)
        .split_for_parts();
    doc.merge(ready_doc);
    // The OpenAPI 3.1 document of the JSON endpoints, generated from their handlers.
    let mut router = router.merge(ready).merge(oauth_core::openapi::serve(doc));
    if config.bench_ceiling {
        router = router.merge(bench_ceiling());
    }
    Ok(router)
}

/// `cleartokens` every `CLEARTOKENS_INTERVAL_SECONDS`: expired and dead tokens,
/// codes, sessions and old revocation log entries (`SeaOrmStore::clear_expired`).
async fn housekeeping(store: Arc<SeaOrmStore>, config: Config) {
    let mut every = tokio::time::interval(config.cleartokens_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.clear_expired(config.cleanup()).await {
            Ok(cleared) => tracing::info!(%cleared, "cleartokens"),
            Err(e) => {
                tracing::warn!(error = %e, "cleartokens failed; retrying at the next interval")
            }
        }
    }
}

/// `GET /readyz`: ready when the database answers (`/healthz` only says the
/// process does).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready.", body = ops::Readiness),
        (status = 503, description = "The database does not answer.", body = ops::Readiness),
    ),
)]
async fn readyz(
    axum::extract::State(db): axum::extract::State<oauth_core::sea::sea_orm::DatabaseConnection>,
) -> (axum::http::StatusCode, axum::Json<ops::Readiness>) {
    let ready = ops::database_ready(&db).await;
    ops::readiness((!ready).then_some("the database does not answer"))
}

/// `POST /bench/ceiling`, for `cargo bench --bench introspection` only (set
/// `BENCH_CEILING=1`): reads the form body and answers a constant JSON body of the
/// size of an active introspection answer — the most any endpoint of this server
/// could do per request.
fn bench_ceiling() -> axum::Router {
    const BODY: &str = r#"{"active":true,"scope":"read write introspection","exp":1795415940,"iat":1795379940,"client_id":"rs-id","username":"bench@example.com","sub":"1","token_type":"Bearer"}"#;
    axum::Router::new().route(
        "/bench/ceiling",
        axum::routing::post(|_form: String| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                BODY,
            )
        }),
    )
}

#[cfg(test)]
#[path = "../common/route_check.rs"]
mod route_check;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use oauth_core::sea::{SeaOrmStore, StoreConfig};

    use crate::config::Config;

    /// The browser pages (feature `pages`) and the admin console (`admin`): HTML
    /// forms, not in the OpenAPI document. A new page must be added here, or
    /// documented.
    const BROWSER_ONLY: &[&str] = &[
        // pages: sign-in, consent, authorized applications, the stylesheet
        "/o/authorize/",
        "/o/authorize",
        "/accounts/login/",
        "/accounts/login",
        "/accounts/logout/",
        "/accounts/logout",
        "/o/authorized_tokens/",
        "/o/authorized_tokens",
        "/o/authorized_tokens/revoke/",
        "/o/authorized_tokens/revoke",
        "/static/oauth/style.css",
        // pages + admin: DOT's self-service application pages
        "/o/applications/",
        "/o/applications",
        "/o/applications/register/",
        "/o/applications/{client_id}/",
        "/o/applications/{client_id}/update/",
        "/o/applications/{client_id}/rotate/",
        "/o/applications/{client_id}/delete/",
        // admin: the console
        "/admin/",
        "/admin",
        "/admin/users/",
        "/admin/users/add/",
        "/admin/users/{id}/",
        "/admin/users/{id}/password/",
        "/admin/users/{id}/delete/",
        "/admin/users/{id}/applications/revoke/",
        "/admin/applications/",
        "/admin/applications/add/",
        "/admin/applications/{client_id}/",
        "/admin/applications/{client_id}/rotate/",
        "/admin/applications/{client_id}/delete/",
        "/admin/tokens/",
        "/admin/tokens/revoke/",
        "/admin/log/",
    ];

    /// `/openapi.json` names every JSON route of the server as it is served (the
    /// example's own router, with the pages and the console), and nothing else.
    #[tokio::test]
    async fn openapi_document_matches_the_router() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("as.db").display());
        let store = SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap();
        store.migrate().await.unwrap();
        let router = crate::app(Arc::new(store), &Config::from_env().unwrap()).unwrap();
        crate::route_check::assert_document_matches_router(&router, BROWSER_ONLY).await;
    }
}
