//! Whole flows: the reference system's seed flow end to end, 64 racing refreshes,
//! brute-force throttling, and what reaches the logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{Backend, Harness, PASSWORD};
use oauth_core::ThrottleConfig;
use serde_json::json;
use tower::ServiceExt as _;

scenarios!(
    seed_flow_end_to_end,
    sixty_four_concurrent_refreshes_one_wins
);

/// signup → password token → refresh → password change → old password refused →
/// new password works → introspection active → revocation → introspection inactive.
async fn seed_flow_end_to_end(h: &Harness) {
    let email = "flow@example.com";
    let new_password = "quartz-lantern-51";
    h.json(
        Method::POST,
        "/users/signup/",
        None,
        json!({"email": email, "password": PASSWORD, "password2": PASSWORD}),
    )
    .await
    .expect(StatusCode::CREATED, json!({"email": email}));

    let first = h.login(email, PASSWORD).await;
    assert_eq!(first.status, StatusCode::OK);
    let refreshed = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let token = refreshed.str("access_token");

    h.json(
        Method::PUT,
        "/users/password/",
        Some(&token),
        json!({"old_password": PASSWORD, "password": new_password, "password2": new_password}),
    )
    .await
    .expect(StatusCode::OK, json!({}));

    h.login(email, PASSWORD).await.expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}),
    );
    let fresh = h.login(email, new_password).await;
    assert_eq!(fresh.status, StatusCode::OK);
    let access = fresh.str("access_token");

    let info = h.introspect(&access).await;
    assert_eq!(
        (info["active"].as_bool(), info["username"].as_str()),
        (Some(true), Some(email))
    );

    let r = h
        .post_form(
            "/o/revoke_token/",
            Some(("rs-id", "rs-secret")),
            &[("token", &access)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.introspect(&access).await, json!({"active": false}));
}

async fn sixty_four_concurrent_refreshes_one_wins(h: &Harness) {
    h.user("race@example.com").await;
    let rt = h
        .login("race@example.com", PASSWORD)
        .await
        .str("refresh_token");
    let body = common::encode(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let router = h.router.clone();
        let body = body.clone();
        set.spawn(async move {
            let req = Request::post("/o/token/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(
                    header::AUTHORIZATION,
                    common::basic_header("rs-id", "rs-secret"),
                )
                .body(Body::from(body))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        });
    }
    let mut ok = 0;
    while let Some(status) = set.join_next().await {
        match status.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one refresh succeeds");
}

fn from(ip: [u8; 4], mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    req
}

fn login_request(ip: [u8; 4], user: &str, password: &str) -> Request<Body> {
    let body = common::encode(&[
        ("grant_type", "password"),
        ("username", user),
        ("password", password),
    ]);
    from(
        ip,
        Request::post("/o/token/")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::AUTHORIZATION,
                common::basic_header("rs-id", "rs-secret"),
            )
            .body(Body::from(body))
            .unwrap(),
    )
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_and_per_ip() {
    let throttle = ThrottleConfig {
        per_account: 3,
        per_client: 1000,
        per_ip: 5,
        window: Duration::from_secs(600),
    };
    let h = Harness::new(Backend::Sqlite, throttle).await.unwrap();
    h.user("ann@example.com").await;
    h.user("bob@example.com").await;
    let ip = [10, 0, 0, 1];
    for _ in 0..3 {
        let r = h.send(login_request(ip, "ann@example.com", "wrong")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // The account is locked, even for the right password, and says for how long.
    let r = h
        .send(login_request([10, 0, 0, 2], "ann@example.com", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.json);
    assert_eq!(r.str("error"), "temporarily_unavailable");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // Another account from the same IP still works until the IP's own limit.
    assert_eq!(
        h.send(login_request(ip, "bob@example.com", PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
    for _ in 0..2 {
        h.send(login_request(ip, "bob@example.com", "wrong")).await;
    }
    let r = h.send(login_request(ip, "bob@example.com", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "per-IP limit");
    assert_eq!(
        h.send(login_request([10, 0, 0, 3], "bob@example.com", PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
    h.cleanup().await;
}

#[tokio::test]
async fn failed_client_authentication_is_throttled() {
    let throttle = ThrottleConfig {
        per_account: 1000,
        per_client: 3,
        per_ip: 1000,
        window: Duration::from_secs(600),
    };
    let h = Harness::new(Backend::Sqlite, throttle).await.unwrap();
    for _ in 0..3 {
        let r = h
            .post_form(
                "/o/introspect/",
                Some(("rs-id", "guess")),
                &[("token", "x")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    for basic in [("rs-id", "guess"), ("rs-id", "rs-secret")] {
        let r = h
            .post_form(
                "/o/token/",
                Some(basic),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.header("retry-after").is_some());
    }
    // Other clients are unaffected.
    let r = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    h.cleanup().await;
}

#[tokio::test]
async fn password_guesses_through_password_change_are_throttled() {
    let throttle = ThrottleConfig {
        per_account: 2,
        per_client: 1000,
        per_ip: 1000,
        window: Duration::from_secs(600),
    };
    let h = Harness::new(Backend::Sqlite, throttle).await.unwrap();
    h.user("ann@example.com").await;
    let token = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    let body = json!({"old_password": "guess", "password": "quartz-lantern-51", "password2": "quartz-lantern-51"});
    for _ in 0..2 {
        let r = h
            .json(Method::PUT, "/users/password/", Some(&token), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = h
        .json(Method::PUT, "/users/password/", Some(&token), body)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("Request was throttled.")
    );
    h.cleanup().await;
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the whole flow with every log level on, through the request-logging layer the
/// example uses, and searches the output for every secret that went over the wire.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut h = Harness::new(Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    h.router = h.router.clone().layer(oauth_core::server::trace_layer());
    let new_password = "quartz-lantern-51";
    h.json(
        Method::POST,
        "/users/signup/",
        None,
        json!({"email": "log@example.com", "password": PASSWORD, "password2": PASSWORD}),
    )
    .await;
    let login = h.login("log@example.com", PASSWORD).await;
    let (access, refresh) = (login.str("access_token"), login.str("refresh_token"));
    h.login("log@example.com", "wrong-guess-123").await;
    let get = Request::get(format!("/o/introspect/?token={access}"))
        .header(
            header::AUTHORIZATION,
            common::basic_header("rs-id", "rs-secret"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(get).await.status, StatusCode::OK);
    h.json(
        Method::PUT,
        "/users/password/",
        Some(&access),
        json!({"old_password": PASSWORD, "password": new_password, "password2": new_password}),
    )
    .await;
    let rotated = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    // Replay, which logs a warning about the family.
    h.post_form(
        "/o/token/",
        Some(("rs-id", "rs-secret")),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    drop(_guard);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/o/token/"),
        "the request layer logged: {}",
        &logs[..logs.len().min(500)]
    );
    assert!(logs.contains("replayed"), "the replay warning was logged");
    let mut secrets = vec![
        PASSWORD,
        new_password,
        "wrong-guess-123",
        "rs-secret",
        access.as_str(),
        refresh.as_str(),
    ];
    let rotated_access = rotated.json["access_token"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    if !rotated_access.is_empty() {
        secrets.push(&rotated_access);
    }
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
    let basic = common::basic_header("rs-id", "rs-secret");
    assert!(
        !logs.contains(basic.trim_start_matches("Basic ")),
        "an Authorization header reached the logs"
    );
}

/// Concurrent first requests of one client share one KDF run for its secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_client_authentications_share_one_kdf_run() {
    let h = Harness::new(Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    let before = h.hasher.stats().completed;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let router = h.router.clone();
        set.spawn(async move {
            let req = Request::post("/o/introspect/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(
                    header::AUTHORIZATION,
                    common::basic_header("rs-id", "rs-secret"),
                )
                .body(Body::from("token=unknown"))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(h.hasher.stats().completed - before, 1);
    // A wrong secret is never remembered: each attempt pays its own run.
    for _ in 0..2 {
        let r = h
            .post_form(
                "/o/introspect/",
                Some(("rs-id", "wrong")),
                &[("token", "x")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.hasher.stats().completed - before, 3);
    h.cleanup().await;
}
