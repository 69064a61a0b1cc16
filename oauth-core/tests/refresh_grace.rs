//! `REFRESH_TOKEN_GRACE_PERIOD_SECONDS` over HTTP: a refresh token presented again
//! within the grace period gets a new pair; past it, the reuse is a replay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{Backend, Harness, PASSWORD, lenient};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_refresh_response_can_be_retried_within_the_grace_period() {
    let h = Harness::build(Backend::Sqlite, lenient(), |server| {
        server.refresh_grace(Duration::from_secs(30), None)
    })
    .await
    .unwrap();
    h.user("ann@example.com").await;
    let refresh = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("refresh_token");
    let use_it = async |token: &str| {
        h.post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
    };
    // The first answer is "lost"; the retry gets another pair, and both work.
    let first = use_it(&refresh).await;
    assert_eq!(first.status, StatusCode::OK);
    h.clock.advance(20);
    let retry = use_it(&refresh).await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.json);
    assert_ne!(retry.str("access_token"), first.str("access_token"));
    assert!(h.active(&first.str("access_token")).await);
    assert!(h.active(&retry.str("access_token")).await);

    // Past the period the old token is a replay: the whole grant is revoked.
    h.clock.advance(11);
    use_it(&refresh)
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    assert!(!h.active(&first.str("access_token")).await);
    assert!(!h.active(&retry.str("access_token")).await);
    assert_eq!(
        use_it(&retry.str("refresh_token")).await.status,
        StatusCode::BAD_REQUEST
    );
}
