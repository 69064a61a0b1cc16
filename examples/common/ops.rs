//! What both example servers offer operators: Prometheus metrics on a listener of
//! their own (`METRICS_ADDR`), and the readiness probe's database check.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use oauth_core::sea::sea_orm::{ConnectionTrait as _, DatabaseConnection, DbBackend};

use crate::Error;
use crate::env::var;

/// When `METRICS_ADDR` is set: installs the Prometheus recorder, serves its text at
/// `GET /metrics` on that address (keep it off the public interface), samples the
/// database pool every few seconds, and returns true — the caller then adds
/// [`oauth_core::metrics::track_requests`] to its router. Unset: false, and nothing
/// is recorded.
pub async fn start_metrics(db: &DatabaseConnection) -> Result<bool, Error> {
    let Some(addr) = var("METRICS_ADDR") else {
        return Ok(false);
    };
    let public = crate::env::parsed("METRICS_PUBLIC", false)?;
    let addr = metrics_addr(&addr, public)?;
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    let upkeep = handle.clone();
    let db = db.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
            sample_pool(&db);
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(true)
}

/// `METRICS_ADDR` as an address to bind: `host:port`, or a bare port for
/// `127.0.0.1:port`. A non-loopback address is refused unless `public`
/// (`METRICS_PUBLIC=true`), and then logged at WARN: the page tells anyone who can
/// reach it the server's traffic, routes and failure counts.
fn metrics_addr(value: &str, public: bool) -> Result<SocketAddr, Error> {
    let value = value.trim();
    let addr: SocketAddr = match value.parse::<u16>() {
        Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
        Err(_) => value
            .parse()
            .map_err(|e| format!("METRICS_ADDR={value:?}: {e}"))?,
    };
    if !addr.ip().is_loopback() {
        if !public {
            return Err(format!(
                "METRICS_ADDR={value:?} is not a loopback address: the metrics page would be \
                 reachable from other hosts. Use 127.0.0.1:<port>, or set METRICS_PUBLIC=true \
                 to serve it there anyway (behind a firewall)"
            )
            .into());
        }
        tracing::warn!(
            %addr,
            "METRICS_PUBLIC=true: the metrics page is served on a non-loopback address; keep it \
             off the public interface"
        );
    }
    Ok(addr)
}

/// Records the connection pool's idle and busy connections.
fn sample_pool(db: &DatabaseConnection) {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size() as usize, pool.num_idle())
        }
        _ => return,
    };
    oauth_core::metrics::db_pool(idle, size.saturating_sub(idle));
}

/// Whether the database answers a trivial query within a second.
pub async fn database_ready(db: &DatabaseConnection) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), db.execute_unprepared("SELECT 1")).await,
        Ok(Ok(_))
    )
}

/// The readiness answer (`GET /readyz`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// 200 `{"status":"ready"}`, or 503 `{"status":"unavailable","reason":…}`.
pub fn readiness(problem: Option<&'static str>) -> (StatusCode, axum::Json<Readiness>) {
    let (code, status) = match problem {
        None => (StatusCode::OK, "ready"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let answer = Readiness {
        status,
        reason: problem,
    };
    (code, axum::Json(answer))
}

#[cfg(test)]
mod tests {
    use super::metrics_addr;

    /// The metrics listener is loopback unless `METRICS_PUBLIC=true` says otherwise.
    #[test]
    fn metrics_listen_on_loopback_unless_public_is_asked_for() {
        assert_eq!(
            metrics_addr("9464", false).unwrap().to_string(),
            "127.0.0.1:9464"
        );
        assert!(metrics_addr("127.0.0.1:9464", false).is_ok());
        assert!(metrics_addr("[::1]:9464", false).is_ok());
        let refused = metrics_addr("0.0.0.0:9464", false).unwrap_err().to_string();
        assert!(refused.contains("METRICS_PUBLIC"), "{refused}");
        assert!(metrics_addr("10.1.2.3:9464", false).is_err());
        assert_eq!(
            metrics_addr("0.0.0.0:9464", true).unwrap().to_string(),
            "0.0.0.0:9464"
        );
        assert!(metrics_addr("nonsense", true).is_err());
    }
}
