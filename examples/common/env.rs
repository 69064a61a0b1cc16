//! What both example servers share: reading the environment, logging, and waiting
//! for a shutdown signal.

use crate::Error;

/// A set, non-blank environment variable.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable parsed as `T`, or `default` when unset; a clear error when malformed.
pub fn parsed<T: std::str::FromStr>(name: &str, default: T) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?}: {e}").into()),
        None => Ok(default),
    }
}

/// A 32-byte key given as standard or URL-safe base64 (`openssl rand -base64 32`),
/// or `None` when unset; an error when it is not 32 bytes.
pub fn key(name: &str) -> Result<Option<[u8; 32]>, Error> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let Some(v) = var(name) else {
        return Ok(None);
    };
    let v = v.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(v)
        .or_else(|_| URL_SAFE_NO_PAD.decode(v))
        .map_err(|_| format!("{name}: not base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Some)
        .map_err(|_| format!("{name}: {} bytes, 32 expected", bytes.len()).into())
}

/// Logs to standard error — standard output stays free for what a command prints
/// (`createclient`'s id and secret) — filtered by `RUST_LOG` (default `info`).
/// `LOG_FORMAT=json` writes one JSON object per line; otherwise text, coloured only
/// when standard error is a terminal (no escape codes in log files).
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match var("LOG_FORMAT").as_deref().map(str::trim) {
        Some("json") => builder.json().with_current_span(false).init(),
        Some("text") | None => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Some(other) => {
            builder.with_ansi(false).init();
            tracing::warn!(
                LOG_FORMAT = other,
                "unknown LOG_FORMAT (text or json); logging text"
            );
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
