//! Load shedding and short waits: a full password-hashing queue and an unreachable
//! database are answered 503 with `Retry-After`, quickly, instead of queueing without
//! bound or answering 500 after a long wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse as _;
use common::{Backend, Harness, PASSWORD};
use oauth_core::api::ApiError;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::server::OAuthError;
use oauth_core::{Password, PasswordHasher, ScryptParams, StoreError};
use serde_json::json;

/// About a second per hash: long enough to hold the one KDF thread while the
/// requests below are refused.
const SLOW: ScryptParams = ScryptParams {
    log_n: 15,
    r: 8,
    p: 16,
};

/// One KDF thread and room for one waiting run: while a slow hash holds the thread
/// and another waits, the password grant answers RFC 6749 JSON 503 `temporarily_unavailable` and sign-up DRF
/// `{"detail"}` 503, both with `Retry-After`, at once; afterwards both work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_kdf_queue_is_answered_503_with_retry_after() {
    let slow = PasswordHasher::with_limits(SLOW, 1, 1).unwrap();
    let h = Harness::build(Backend::Sqlite, common::lenient(), |server| {
        server.password_hasher(slow.clone())
    })
    .await
    .unwrap();
    h.user("ann@example.com").await;

    let hold = |what: &'static str| {
        let slow = slow.clone();
        tokio::spawn(async move { slow.hash(&Password::new(what)).await })
    };
    let busy = hold("holds the thread");
    while slow.stats().running == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiting = hold("fills the queue");
    tokio::time::sleep(Duration::from_millis(50)).await;

    let started = Instant::now();
    let token = h.login("ann@example.com", PASSWORD).await;
    token.expect(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({
            "error": "temporarily_unavailable",
            "error_description": "The server is busy. Retry in 1 seconds.",
        }),
    );
    assert_eq!(token.header("retry-after"), Some("1"));
    assert_eq!(token.header("cache-control"), Some("no-store"));

    let signup = h
        .json(
            Method::POST,
            "/users/signup/",
            None,
            json!({"email": "bob@example.com", "password": "a fine passphrase", "password2": "a fine passphrase"}),
        )
        .await;
    signup.expect(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"detail": "Service temporarily unavailable, try again later."}),
    );
    assert_eq!(signup.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused, not queued: {:?}",
        started.elapsed()
    );
    assert!(slow.stats().refused >= 2, "{:?}", slow.stats());
    assert!(!busy.is_finished(), "the slow hash was still running");

    busy.await.unwrap().unwrap();
    waiting.await.unwrap().unwrap();
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    h.cleanup().await;
}

/// PostgreSQL on a closed port: connecting gives up after the configured pool wait
/// with `StoreError::Unavailable` (Retry-After 5 s), not after 10 s or a hang.
#[tokio::test]
async fn an_unreachable_database_fails_fast_as_unavailable() {
    let started = Instant::now();
    let result = SeaOrmStore::connect(
        StoreConfig::new("postgres://nobody:secret@127.0.0.1:1/none")
            .acquire_timeout(Duration::from_millis(500)),
    )
    .await;
    let elapsed = started.elapsed();
    let err = result.expect_err("nothing listens on port 1");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

/// An unavailable store is 503 + `Retry-After` on both error shapes; any other store
/// failure stays 500.
#[test]
fn an_unavailable_store_is_503_on_both_error_shapes() {
    let down = || StoreError::Unavailable("pool timed out".into());
    let oauth = OAuthError::internal(&down()).into_response();
    assert_eq!(oauth.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(oauth.headers()[header::RETRY_AFTER], "5");
    let api = ApiError::internal(&down()).into_response();
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.headers()[header::RETRY_AFTER], "5");
    let broken = StoreError::Backend("disk I/O error".into());
    assert_eq!(
        ApiError::internal(&broken).into_response().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// A `MakeWriter` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An unreachable auth server is logged once (ERROR "auth server unreachable") for
/// three failed calls, which are counted.
#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_auth_server_is_logged_once_and_counted() {
    use oauth_core::resource::{
        AuthError, Authenticator as _, IntrospectionCredentials, Introspector, IntrospectorConfig,
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let introspector = Introspector::new(IntrospectorConfig::new(
        "http://127.0.0.1:1/o/introspect/",
        IntrospectionCredentials::Client {
            id: "rs-id".into(),
            secret: "rs-secret".into(),
        },
    ))
    .unwrap();
    for token in ["a", "b", "c"] {
        let e = introspector.authenticate(token).await.unwrap_err();
        assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    }
    assert_eq!(introspector.unreachable_calls(), 3);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("auth server unreachable").count(), 1, "{text}");
    assert_eq!(text.matches("ERROR").count(), 1, "{text}");
}
