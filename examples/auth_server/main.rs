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
//!   [--scope "read write"]` — prints the client id, and the secret once.

mod commands;
mod config;
#[path = "../common/env.rs"]
mod env;
#[path = "../common/serve.rs"]
mod serve;

use std::sync::Arc;

use oauth_core::RevocationLog as _;
use oauth_core::pages::Pages;
use oauth_core::pages::tower_sessions::ExpiredDeletion as _;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{AuthServer, GrantStore as _, PasswordHasher, ThrottleStore as _};

use crate::config::Config;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
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
        Some(other) => return Err(format!("unknown command {other:?}").into()),
        None => {}
    }

    if config.seed_demo {
        commands::seed_demo_clients(&store, &config).await?;
        commands::log_demo_authorization(&store, &config).await?;
    }
    tokio::spawn(housekeeping(
        store.clone(),
        config.revocation_retention,
        config.throttle.failure_reset,
    ));
    let app = app(store, &config)?;
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
    let mut router = AuthServer::from_store(store)
        .pages(pages)
        .code_ttl(config.code_ttl)
        .issuer_url(config.issuer_url.clone())
        .scopes(config.scopes.clone())
        .access_token_ttl(config.access_ttl)
        .refresh_token_ttl(config.refresh_ttl)
        .password_hasher(PasswordHasher::with_limits(
            config.scrypt,
            config.kdf_threads,
            config
                .kdf_queue
                .unwrap_or_else(|| PasswordHasher::default_queue(config.kdf_threads)),
        )?)
        .throttle(config.throttle)
        .trusted_proxies(config.trusted_proxies.clone())
        .body_limit(config.body_limit)
        .router()?;
    if config.bench_ceiling {
        router = router.merge(bench_ceiling());
    }
    Ok(router.layer(oauth_core::server::trace_layer()))
}

/// Every ten minutes: deletes expired browser sessions and authorization codes,
/// revocation log entries older than the retention (a resource server resuming
/// from before it flushes its cache instead), and failure counters past
/// `AUTH_FAILURE_RESET_SECONDS` (they count as zero already; on SQLite the
/// counters are in memory and the table stays empty).
async fn housekeeping(
    store: Arc<SeaOrmStore>,
    revocation_retention: std::time::Duration,
    failure_reset: std::time::Duration,
) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "could not delete expired sessions");
        }
        if let Err(e) = store.purge_codes(chrono::Utc::now().timestamp()).await {
            tracing::warn!(error = %e, "could not delete expired authorization codes");
        }
        let retention = i64::try_from(revocation_retention.as_secs()).unwrap_or(i64::MAX);
        let before = chrono::Utc::now().timestamp().saturating_sub(retention);
        if let Err(e) = store.purge_revocations(before).await {
            tracing::warn!(error = %e, "could not delete old revocation log entries");
        }
        let reset = i64::try_from(failure_reset.as_secs()).unwrap_or(i64::MAX);
        let before = chrono::Utc::now().timestamp().saturating_sub(reset);
        if let Err(e) = store.purge_throttle(before).await {
            tracing::warn!(error = %e, "could not delete old failure counters");
        }
    }
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
