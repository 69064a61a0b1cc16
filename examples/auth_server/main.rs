//! Run with: `cargo run --example auth_server`
//!
//! Opens (creating and migrating) the auth server's database. The HTTP endpoints
//! are being built on top of this store.

use oauth_core::sea::SeaOrmStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://auth_server.db".into());
    SeaOrmStore::open(&url).await?;
    tracing::info!("database ready");
    Ok(())
}
