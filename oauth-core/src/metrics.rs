//! What the servers count, through the [`metrics`](https://docs.rs/metrics) facade:
//! nothing is recorded until the application installs a recorder (the examples
//! install the Prometheus one when `METRICS_ADDR` is set), and without one each
//! call costs an atomic load. docs/deployment.md says what each metric means.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_requests_total` | counter | `method` (standard methods or `other`), `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` |
//! | `oauth_tokens_issued_total` | counter | `grant` |
//! | `oauth_introspections_total` | counter | `result` = `active` / `inactive` |
//! | `oauth_auth_failures_total` | counter | `kind` = `password` / `client` |
//! | `oauth_throttled_total` | counter | — (requests answered 429) |
//! | `oauth_kdf_queue_wait_seconds` | histogram | — |
//! | `oauth_db_pool_connections` | gauge | `state` = `idle` / `in_use` |
//! | `oauth_introspection_cache_total` | counter | `result` = `hit` / `miss` / `coalesced` |
//! | `oauth_introspection_call_seconds` | histogram | — (the auth server's latency) |
//! | `oauth_introspection_unavailable_total` | counter | — (answered 503) |
//! | `oauth_revocation_stream_connected` | gauge | — (1 while caught up) |
//! | `oauth_revocation_stream_lag_seconds` | gauge | — (age of the last entry applied) |
//! | `oauth_revocations_applied_total` | counter | — |

// Each half of the crate records its own metrics.
#![cfg_attr(not(all(feature = "server", feature = "resource")), allow(dead_code))]

use std::time::Duration;

/// The per-request metrics as an axum middleware: add it with `Router::layer` so
/// that the route template (`/items/{id}/`), never the path itself, labels the
/// series. Only worth adding when a recorder is installed.
///
/// ```
/// # use axum::{Router, routing::get, middleware};
/// let app: Router = Router::new()
///     .route("/items/{id}/", get(|| async { "item" }))
///     .layer(middleware::from_fn(oauth_core::metrics::track_requests));
/// ```
#[cfg(any(feature = "server", feature = "resource"))]
pub async fn track_requests(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method,
        "route" => route.clone()
    )
    .record(started.elapsed());
    metrics::counter!(
        "http_requests_total",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .increment(1);
    response
}

/// The `method` label: one of the nine methods of RFC 9110 (and PATCH), or `other`
/// — never the client's own token, which would make a new series per invented
/// method (`FOO1`, `FOO2`, …) kept until the process ends. The other request-derived
/// label, `route`, is the matched route template or `unmatched`, and `status` a
/// three-digit code: all bounded.
#[cfg(any(feature = "server", feature = "resource"))]
#[must_use]
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub(crate) fn token_issued(grant: &'static str) {
    metrics::counter!("oauth_tokens_issued_total", "grant" => grant).increment(1);
}

pub(crate) fn introspected(active: bool) {
    let result = if active { "active" } else { "inactive" };
    metrics::counter!("oauth_introspections_total", "result" => result).increment(1);
}

pub(crate) fn auth_failure(kind: &'static str) {
    metrics::counter!("oauth_auth_failures_total", "kind" => kind).increment(1);
}

pub(crate) fn throttled() {
    metrics::counter!("oauth_throttled_total").increment(1);
}

pub(crate) fn kdf_queue_wait(waited: Duration) {
    metrics::histogram!("oauth_kdf_queue_wait_seconds").record(waited);
}

/// Records a connection pool's state (`oauth_db_pool_connections`).
pub fn db_pool(idle: usize, in_use: usize) {
    #[allow(clippy::cast_precision_loss)] // connection counts
    {
        metrics::gauge!("oauth_db_pool_connections", "state" => "idle").set(idle as f64);
        metrics::gauge!("oauth_db_pool_connections", "state" => "in_use").set(in_use as f64);
    }
}

pub(crate) fn cache(result: &'static str) {
    metrics::counter!("oauth_introspection_cache_total", "result" => result).increment(1);
}

pub(crate) fn introspection_call(took: Duration) {
    metrics::histogram!("oauth_introspection_call_seconds").record(took);
}

pub(crate) fn introspection_unavailable() {
    metrics::counter!("oauth_introspection_unavailable_total").increment(1);
}

pub(crate) fn stream_connected(live: bool) {
    metrics::gauge!("oauth_revocation_stream_connected").set(if live { 1.0 } else { 0.0 });
}

pub(crate) fn revocation_applied(event_timestamp: Option<i64>) {
    metrics::counter!("oauth_revocations_applied_total").increment(1);
    if let Some(at) = event_timestamp {
        #[allow(clippy::cast_precision_loss)] // seconds
        let lag = (chrono::Utc::now().timestamp() - at).max(0) as f64;
        metrics::gauge!("oauth_revocation_stream_lag_seconds").set(lag);
    }
}
