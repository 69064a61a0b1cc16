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

/// The throttling tests, on SQLite (counters in the process) and on PostgreSQL
/// (counters in the shared database): one policy, whichever keeps the counters.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_counters { $(
            #[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await;
            }
        )* }
        mod shared_counters { $(
            #[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Postgres).await;
            }
        )* }
    };
}

on_both_backends!(
    a_guessing_source_waits_longer_each_time_and_the_owner_still_signs_in,
    failed_logins_are_throttled_per_source,
    every_spelling_of_an_account_counts_against_one_counter,
    a_client_secret_guesser_does_not_lock_the_client_out,
    password_guesses_through_password_change_are_throttled
);

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

fn form_request(
    ip: [u8; 4],
    path: &str,
    basic: (&str, &str),
    form: &[(&str, &str)],
) -> Request<Body> {
    from(
        ip,
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                header::AUTHORIZATION,
                common::basic_header(basic.0, basic.1),
            )
            .body(Body::from(common::encode(form)))
            .unwrap(),
    )
}

fn retry_after(r: &common::Reply) -> u64 {
    r.header("retry-after").unwrap().parse().unwrap()
}

/// Per (account, source): the guessing source waits, the wait doubles with each
/// failure past the threshold up to the ceiling, and the owner signs in from
/// another source meanwhile. Per account, from all sources: a higher ceiling.
async fn a_guessing_source_waits_longer_each_time_and_the_owner_still_signs_in(backend: Backend) {
    let throttle = ThrottleConfig {
        per_account_source: 3,
        per_account: 8,
        wait_increment: Duration::from_secs(60),
        max_wait: Duration::from_secs(200),
        ..common::lenient()
    };
    let Some(h) = Harness::new(backend, throttle).await else {
        return;
    };
    h.user("ann@example.com").await;
    let (guesser, owner) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    for _ in 0..3 {
        let r = h
            .send(login_request(guesser, "ann@example.com", "wrong"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    // The guessing source waits, even with the right password, and is told how long.
    let r = h
        .send(login_request(guesser, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.json);
    assert_eq!(r.str("error"), "temporarily_unavailable");
    assert_eq!(retry_after(&r), 60);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // The owner, from elsewhere, is not held back.
    let r = h
        .send(login_request(owner, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    // One more try after the wait; a failure doubles it, up to the ceiling.
    let mut wait = 60;
    for expected in [120, 200] {
        h.clock.advance(wait);
        let r = h
            .send(login_request(guesser, "ann@example.com", "wrong"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = h
            .send(login_request(guesser, "ann@example.com", "wrong"))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&r), expected);
        wait = i64::try_from(expected).unwrap();
    }
    // Guessing spread over sources: 5 failures so far, 3 more reach the account's
    // ceiling of 8, and then every source waits, the owner's too.
    for last in 3..6 {
        let r = h
            .send(login_request([10, 0, 1, last], "ann@example.com", "wrong"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = h
        .send(login_request(owner, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 60);
    h.clock.advance(60);
    let r = h
        .send(login_request(owner, "ann@example.com", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    h.cleanup().await;
}

/// Failures for many accounts from one source add up per source.
async fn failed_logins_are_throttled_per_source(backend: Backend) {
    let throttle = ThrottleConfig {
        per_ip: 5,
        ..common::lenient()
    };
    let Some(h) = Harness::new(backend, throttle).await else {
        return;
    };
    h.user("ann@example.com").await;
    h.user("bob@example.com").await;
    let ip = [10, 0, 0, 1];
    for user in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        for _ in 0..2 {
            h.send(login_request(ip, user, "wrong")).await;
        }
    }
    let r = h.send(login_request(ip, "bob@example.com", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "per-source limit");
    assert_eq!(
        h.send(login_request([10, 0, 0, 3], "bob@example.com", PASSWORD))
            .await
            .status,
        StatusCode::OK
    );
    h.cleanup().await;
}

/// Spellings of one account (blanks, case) share one counter: the counter cannot be
/// walked around by typing the address differently.
async fn every_spelling_of_an_account_counts_against_one_counter(backend: Backend) {
    let throttle = ThrottleConfig {
        per_account_source: 2,
        ..common::lenient()
    };
    let Some(h) = Harness::new(backend, throttle).await else {
        return;
    };
    h.user("ann@x.com").await;
    let ip = [10, 0, 0, 1];
    for spelling in [" ann@x.com", "ANN@x.com "] {
        let r = h.send(login_request(ip, spelling, "wrong")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    for spelling in ["ann@x.com", " ann@x.com", "Ann@X.com\t"] {
        let r = h.send(login_request(ip, spelling, PASSWORD)).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{spelling:?}");
    }
    // Names that are no email address are normalized alike.
    for spelling in [" Not-An-Email", "not-an-email "] {
        h.send(login_request(ip, spelling, "wrong")).await;
    }
    let r = h.send(login_request(ip, "NOT-AN-EMAIL", "wrong")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    h.cleanup().await;
}

/// A stranger guessing `rs-id`'s secret slows down only itself: the real resource
/// server, from another address, keeps working, and a secret already verified is
/// never refused, whatever its source.
async fn a_client_secret_guesser_does_not_lock_the_client_out(backend: Backend) {
    let throttle = ThrottleConfig {
        per_client: 3,
        ..common::lenient()
    };
    let Some(h) = Harness::new(backend, throttle).await else {
        return;
    };
    let (guesser, rs) = ([203, 0, 113, 9], [10, 0, 0, 2]);
    let introspect =
        |ip, secret| form_request(ip, "/o/introspect/", ("rs-id", secret), &[("token", "x")]);
    // The resource server introspects before and during the guessing.
    assert_eq!(
        h.send(introspect(rs, "rs-secret")).await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let r = h.send(introspect(guesser, "guess")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = h.send(introspect(guesser, "guess")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 60);
    for _ in 0..3 {
        assert_eq!(
            h.send(introspect(rs, "rs-secret")).await.status,
            StatusCode::OK
        );
    }
    // A known-good secret passes even from the guessing source.
    assert_eq!(
        h.send(introspect(guesser, "rs-secret")).await.status,
        StatusCode::OK
    );
    // A correct secret not verified yet does not, from the waiting source; from
    // another source it is counted apart and works.
    let cc = |ip, secret| {
        form_request(
            ip,
            "/o/token/",
            ("svc", secret),
            &[("grant_type", "client_credentials")],
        )
    };
    for _ in 0..3 {
        assert_eq!(
            h.send(cc(guesser, "guess")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        h.send(cc(guesser, "svc-secret")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(h.send(cc(rs, "svc-secret")).await.status, StatusCode::OK);
    h.cleanup().await;
}

async fn password_guesses_through_password_change_are_throttled(backend: Backend) {
    let throttle = ThrottleConfig {
        per_account_source: 2,
        ..common::lenient()
    };
    let Some(h) = Harness::new(backend, throttle).await else {
        return;
    };
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

/// Sign-ups are rate-limited per source, in DRF's shape.
#[tokio::test]
async fn signups_are_rate_limited_per_source() {
    let throttle = ThrottleConfig {
        signups_per_ip: 2,
        signup_window: Duration::from_secs(600),
        ..common::lenient()
    };
    let h = Harness::new(Backend::Sqlite, throttle).await.unwrap();
    let signup = |ip, email: &str| {
        from(
            ip,
            Request::post("/users/signup/")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"email": email, "password": PASSWORD, "password2": PASSWORD})
                        .to_string(),
                ))
                .unwrap(),
        )
    };
    let ip = [10, 0, 0, 1];
    assert_eq!(
        h.send(signup(ip, "a@example.com")).await.status,
        StatusCode::CREATED
    );
    // A refused sign-up counts too: it ran the same checks.
    assert_eq!(
        h.send(signup(ip, "not-an-email")).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = h.send(signup(ip, "b@example.com")).await;
    r.expect(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"detail": "Request was throttled. Expected available in 600 seconds."}),
    );
    assert_eq!(retry_after(&r), 600);
    assert_eq!(
        h.send(signup([10, 0, 0, 2], "b@example.com")).await.status,
        StatusCode::CREATED
    );
    h.clock.advance(600);
    assert_eq!(
        h.send(signup(ip, "c@example.com")).await.status,
        StatusCode::CREATED
    );
    h.cleanup().await;
}

/// `X-Forwarded-For` and `Forwarded` are believed from trusted proxies only.
#[tokio::test]
async fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
    let throttle = ThrottleConfig {
        per_account_source: 2,
        ..common::lenient()
    };
    let h = Harness::build(Backend::Sqlite, throttle, |s| {
        s.trusted_proxies(vec!["10.9.0.0/16".parse().unwrap()])
    })
    .await
    .unwrap();
    h.user("ann@example.com").await;
    let via = |peer, header: (&str, &str), password| {
        let mut req = login_request(peer, "ann@example.com", password);
        req.headers_mut().insert(
            header::HeaderName::from_bytes(header.0.as_bytes()).unwrap(),
            header.1.parse().unwrap(),
        );
        req
    };
    // An untrusted peer cannot pick the address it is counted under.
    let stranger = [192, 0, 2, 1];
    for n in 0..2 {
        let spoof = format!("198.51.100.{n}");
        let r = h
            .send(via(stranger, ("x-forwarded-for", &spoof), "wrong"))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = h
        .send(via(
            stranger,
            ("x-forwarded-for", "198.51.100.77"),
            PASSWORD,
        ))
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "spoofed header ignored"
    );
    // Through a trusted proxy each forwarded caller counts on its own.
    let proxy = [10, 9, 0, 1];
    for _ in 0..2 {
        let r = h
            .send(via(
                proxy,
                ("x-forwarded-for", "6.6.6.6, 198.51.100.5"),
                "wrong",
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = h
        .send(via(proxy, ("x-forwarded-for", "198.51.100.5"), PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "the guesser waits");
    let r = h
        .send(via(
            proxy,
            ("forwarded", "for=\"198.51.100.6:4711\""),
            PASSWORD,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "another caller behind the proxy");
    let r = h
        .send(via(proxy, ("x-forwarded-for", "198.51.100.7"), PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::OK, "another caller behind the proxy");
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
