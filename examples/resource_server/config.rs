//! Configuration from environment variables; the defaults pair with the auth_server
//! example and its demo client.

use std::net::SocketAddr;
use std::time::Duration;

use oauth_core::resource::{IntrospectionCredentials, IntrospectorConfig};

use crate::Error;
use crate::env::{parsed, var};
use crate::items::Paging;

pub struct Config {
    pub database_url: String,
    pub addr: SocketAddr,
    pub auth_server_url: String,
    pub introspection_url: String,
    pub credentials: IntrospectionCredentials,
    pub cache_cap: Duration,
    pub negative_ttl: Duration,
    pub timeout: Duration,
    /// The auth server's revocation stream, when followed.
    pub revocation_stream: Option<String>,
    /// How long a cached answer is used while the stream is down.
    pub disconnected_cache: Duration,
    pub paging: Paging,
    pub bench_unauthenticated: bool,
    /// This server's public base URL (the console's redirect URI is under it).
    pub public_url: String,
    /// The auth server's RFC 8414 `issuer`, checked against `iss` (RFC 9207).
    pub auth_server_issuer: String,
    /// How long an unused console session lives.
    pub session_idle: Duration,
    /// The key that seals the console's token in its session and the sign-in's
    /// cookie (`SESSION_KEY`); `None`: random at start.
    pub session_key: Option<[u8; 32]>,
}

impl Config {
    pub fn from_env() -> Result<Self, Error> {
        let auth_server_url = var("AUTH_SERVER_URL")
            .unwrap_or_else(|| "http://127.0.0.1:8000".into())
            .trim_end_matches('/')
            .to_owned();
        let credentials = match var("INTROSPECTION_TOKEN") {
            Some(token) => IntrospectionCredentials::Bearer(token.into()),
            None => IntrospectionCredentials::Client {
                id: var("CLIENT_ID").unwrap_or_else(|| "rs-id".into()),
                secret: var("CLIENT_SECRET")
                    .unwrap_or_else(|| "rs-secret".into())
                    .into(),
            },
        };
        let auth_server_issuer = var("AUTH_SERVER_ISSUER")
            .unwrap_or_else(|| auth_server_url.clone())
            .trim_end_matches('/')
            .to_owned();
        // On by default; off for an auth server without one (DOT).
        let revocation_stream = parsed("FOLLOW_REVOCATIONS", true)?.then(|| {
            var("REVOCATION_STREAM_URL")
                .unwrap_or_else(|| format!("{auth_server_url}/o/revocations/"))
        });
        let addr: SocketAddr = parsed("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8001)))?;
        Ok(Self {
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://resource_server.db".into()),
            addr,
            introspection_url: var("INTROSPECTION_URL")
                .unwrap_or_else(|| format!("{auth_server_url}/o/introspect/")),
            auth_server_url,
            credentials,
            cache_cap: Duration::from_secs(parsed("TOKEN_CACHE_SECONDS", 300)?),
            negative_ttl: Duration::from_secs(parsed("NEGATIVE_CACHE_SECONDS", 5)?),
            timeout: Duration::from_millis(parsed("AUTH_SERVER_TIMEOUT_MS", 2000)?),
            revocation_stream,
            disconnected_cache: Duration::from_secs(parsed("DISCONNECTED_CACHE_SECONDS", 5)?),
            paging: Paging {
                default: parsed("PAGE_SIZE", 10)?,
                max: parsed("MAX_PAGE_SIZE", 100)?,
            },
            bench_unauthenticated: parsed("BENCH_UNAUTHENTICATED", false)?,
            public_url: var("PUBLIC_URL")
                .unwrap_or_else(|| format!("http://{addr}"))
                .trim_end_matches('/')
                .to_owned(),
            auth_server_issuer,
            session_idle: Duration::from_secs(parsed("SESSION_IDLE_SECONDS", 30 * 60)?),
            session_key: crate::env::key("SESSION_KEY")?,
        })
    }

    pub fn introspector(&self) -> IntrospectorConfig {
        let config =
            IntrospectorConfig::new(self.introspection_url.clone(), self.credentials.clone())
                .cache_cap(self.cache_cap)
                .negative_ttl(self.negative_ttl)
                .timeout(self.timeout)
                .connect_timeout(self.timeout.min(Duration::from_secs(1)));
        match &self.revocation_stream {
            Some(url) => config
                .follow_revocations(url.clone())
                .disconnected_cache_cap(self.disconnected_cache),
            None => config,
        }
    }

    /// The client credentials the proxy uses at the token endpoint.
    pub fn client(&self) -> Option<(&str, &str)> {
        match &self.credentials {
            IntrospectionCredentials::Client { id, secret } => Some((id, secret.secret())),
            IntrospectionCredentials::Bearer(_) => None,
        }
    }
}
