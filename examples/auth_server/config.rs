//! Configuration from environment variables (names after DOT's settings where one exists).

use std::net::SocketAddr;
use std::time::Duration;

use oauth_core::sea::Cleanup;
use oauth_core::{IpNet, Scope, ScryptParams, ThrottleConfig};

use crate::Error;
use crate::env::{parsed, var};

#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub pool_size: u32,
    pub pool_timeout: Duration,
    pub inline_reads: bool,
    pub addr: SocketAddr,
    pub issuer_url: String,
    pub scopes: Scope,
    /// Granted only to a confidential client registered with them by name.
    pub privileged_scopes: Scope,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a just-rotated refresh token may be presented again.
    pub refresh_grace: Duration,
    /// How many times, at most (`None`: no cap).
    pub refresh_grace_max_reuse: Option<u32>,
    pub scrypt: ScryptParams,
    pub kdf_threads: usize,
    /// `None`: the hasher's default (8 per thread, at least 64).
    pub kdf_queue: Option<usize>,
    pub throttle: ThrottleConfig,
    pub trusted_proxies: Vec<IpNet>,
    /// `FORWARDED_HEADER`: the one header the trusted proxies name the caller in.
    pub forwarded_header: oauth_core::ForwardedHeader,
    pub body_limit: usize,
    pub bench_ceiling: bool,
    pub code_ttl: Duration,
    pub session_idle: Duration,
    pub session_max_age: Duration,
    /// The key of the sign-in form's signed CSRF cookie (`CSRF_KEY`); `None`:
    /// random at start.
    pub csrf_key: Option<[u8; 32]>,
    pub site_name: String,
    pub seed_demo: bool,
    /// The resource server's public URL (`RESOURCE_SERVER_URL`): the demo seed
    /// registers `rs-id`'s console redirect URI under it.
    pub resource_server_url: String,
    /// How long revocation log entries are kept for resource servers to resume.
    pub revocation_retention: Duration,
    /// How often an open revocation stream re-checks its caller.
    pub stream_recheck: Duration,
    /// Open revocation streams per client, and in all.
    pub streams_per_client: usize,
    pub streams_total: usize,
    /// How often the server runs `cleartokens` itself (zero: never).
    pub cleartokens_every: Duration,
    /// How long tokens are kept after they expired, or were revoked with their grant.
    pub token_retention: Duration,
    /// Rows per delete statement, and the pause between two.
    pub clear_batch_size: u64,
    pub clear_batch_pause: Duration,
}

impl Config {
    /// The scopes a client registered without naming any gets: `scopes` less
    /// `privileged_scopes`.
    pub fn ordinary_scopes(&self) -> Scope {
        self.scopes
            .iter()
            .filter(|s| !self.privileged_scopes.contains(s))
            .collect()
    }

    /// What one `cleartokens` run deletes, from now.
    pub fn cleanup(&self) -> Cleanup {
        Cleanup {
            token_retention: self.token_retention,
            revocation_retention: self.revocation_retention,
            failure_reset: self.throttle.failure_reset,
            batch_size: self.clear_batch_size.max(1),
            batch_pause: self.clear_batch_pause,
            ..Cleanup::at(chrono::Utc::now().timestamp())
        }
    }

    pub fn from_env() -> Result<Self, Error> {
        let addr: SocketAddr = parsed("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?;
        let throttle = ThrottleConfig::default();
        let production = ScryptParams::PRODUCTION;
        Ok(Self {
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite://auth_server.db".into()),
            pool_size: parsed("DATABASE_POOL_SIZE", 8)?,
            pool_timeout: Duration::from_secs(parsed("DATABASE_POOL_TIMEOUT_SECONDS", 3)?),
            inline_reads: parsed("SQLITE_INLINE_READS", true)?,
            issuer_url: var("ISSUER_URL").unwrap_or_else(|| format!("http://{addr}")),
            addr,
            scopes: var("SCOPES")
                .unwrap_or_else(|| "read write introspection admin".into())
                .parse()
                .map_err(|e| format!("SCOPES: {e}"))?,
            privileged_scopes: var("PRIVILEGED_SCOPES")
                .unwrap_or_else(|| "introspection admin".into())
                .parse()
                .map_err(|e| format!("PRIVILEGED_SCOPES: {e}"))?,
            access_ttl: Duration::from_secs(parsed("ACCESS_TOKEN_EXPIRE_SECONDS", 36_000)?),
            refresh_ttl: Duration::from_secs(parsed(
                "REFRESH_TOKEN_EXPIRE_SECONDS",
                30 * 24 * 3600,
            )?),
            refresh_grace: Duration::from_secs(parsed("REFRESH_TOKEN_GRACE_PERIOD_SECONDS", 0)?),
            refresh_grace_max_reuse: var("REFRESH_TOKEN_GRACE_MAX_REUSE")
                .map(|v| v.trim().parse())
                .transpose()
                .map_err(|e| format!("REFRESH_TOKEN_GRACE_MAX_REUSE: {e}"))?,
            scrypt: ScryptParams {
                log_n: parsed("SCRYPT_LOG_N", production.log_n)?,
                r: parsed("SCRYPT_R", production.r)?,
                p: parsed("SCRYPT_P", production.p)?,
            },
            kdf_threads: parsed(
                "KDF_THREADS",
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )?,
            kdf_queue: var("KDF_QUEUE")
                .map(|v| v.trim().parse())
                .transpose()
                .map_err(|e| format!("KDF_QUEUE: {e}"))?,
            throttle: ThrottleConfig {
                per_account_source: parsed(
                    "LOGIN_FAILURES_PER_SOURCE",
                    throttle.per_account_source,
                )?,
                per_account: parsed("LOGIN_FAILURES_PER_ACCOUNT", throttle.per_account)?,
                per_client: parsed("AUTH_FAILURES_PER_CLIENT", throttle.per_client)?,
                per_ip: parsed("AUTH_FAILURES_PER_IP", throttle.per_ip)?,
                wait_increment: seconds("AUTH_FAILURE_WAIT_SECONDS", throttle.wait_increment)?,
                max_wait: seconds("AUTH_FAILURE_MAX_WAIT_SECONDS", throttle.max_wait)?,
                failure_reset: seconds("AUTH_FAILURE_RESET_SECONDS", throttle.failure_reset)?,
                signups_per_ip: parsed("SIGNUPS_PER_IP", throttle.signups_per_ip)?,
                signup_window: seconds("SIGNUP_WINDOW_SECONDS", throttle.signup_window)?,
                secret_hashes_per_user: parsed(
                    "SECRET_HASHES_PER_USER",
                    throttle.secret_hashes_per_user,
                )?,
                secret_hashes_per_ip: parsed(
                    "SECRET_HASHES_PER_IP",
                    throttle.secret_hashes_per_ip,
                )?,
                secret_hash_window: seconds(
                    "SECRET_HASH_WINDOW_SECONDS",
                    throttle.secret_hash_window,
                )?,
            },
            trusted_proxies: trusted_proxies()?,
            forwarded_header: parsed("FORWARDED_HEADER", oauth_core::ForwardedHeader::default())?,
            body_limit: parsed("MAX_BODY_BYTES", 64 * 1024)?,
            bench_ceiling: parsed("BENCH_CEILING", false)?,
            code_ttl: Duration::from_secs(parsed("AUTHORIZATION_CODE_EXPIRE_SECONDS", 60)?),
            session_idle: Duration::from_secs(parsed("SESSION_IDLE_SECONDS", 30 * 60)?),
            session_max_age: Duration::from_secs(parsed("SESSION_MAX_AGE_SECONDS", 10 * 3600)?),
            csrf_key: crate::env::key("CSRF_KEY")?,
            site_name: var("SITE_NAME").unwrap_or_else(|| "oauth-core".into()),
            seed_demo: parsed("SEED_DEMO", true)?,
            // The resource server's default `BIND_ADDR`.
            resource_server_url: var("RESOURCE_SERVER_URL")
                .unwrap_or_else(|| "http://127.0.0.1:8001".into()),
            revocation_retention: Duration::from_secs(parsed(
                "REVOCATION_LOG_RETENTION_SECONDS",
                24 * 3600,
            )?),
            stream_recheck: Duration::from_secs(parsed("REVOCATION_STREAM_RECHECK_SECONDS", 5)?),
            streams_per_client: parsed("REVOCATION_STREAMS_PER_CLIENT", 8)?,
            streams_total: parsed("REVOCATION_STREAMS_TOTAL", 256)?,
            cleartokens_every: Duration::from_secs(parsed("CLEARTOKENS_INTERVAL_SECONDS", 600)?),
            token_retention: Duration::from_secs(parsed(
                "CLEARTOKENS_RETENTION_SECONDS",
                24 * 3600,
            )?),
            clear_batch_size: parsed("CLEAR_EXPIRED_TOKENS_BATCH_SIZE", 10_000)?,
            clear_batch_pause: Duration::from_millis(parsed(
                "CLEAR_EXPIRED_TOKENS_BATCH_INTERVAL_MS",
                0,
            )?),
        })
    }
}

fn seconds(name: &str, default: Duration) -> Result<Duration, Error> {
    Ok(Duration::from_secs(parsed(name, default.as_secs())?))
}

/// `TRUSTED_PROXIES`: networks (`10.0.0.0/8`) or addresses, separated by commas or
/// blanks; empty by default.
fn trusted_proxies() -> Result<Vec<IpNet>, Error> {
    let Some(list) = var("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    list.split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("TRUSTED_PROXIES: {s:?} is no address or CIDR network").into())
        })
        .collect()
}
