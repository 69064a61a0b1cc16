//! The revocation log and its stream (`GET /o/revocations/`): every revocation
//! source appends its entry, the stream serves, resumes and resets, and an
//! `Introspector` following it drops revoked tokens within a second — on SQLite
//! and, with `TEST_DATABASE_URL`, on PostgreSQL across two server instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, PASSWORD, basic_header};
use http_body_util::BodyExt as _;
use oauth_core::resource::{
    AuthError, Authenticator, IntrospectionCredentials, Introspector, IntrospectorConfig,
};
use oauth_core::{
    Clock as _, RevocationEvent, RevocationKind, RevocationLog, RevokedTokens, TokenHash,
    TokenStore, UserStore as _,
};
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;

async fn log_after(h: &Harness, after: i64) -> Vec<RevocationEvent> {
    h.store.revocations_after(after, 1000).await.unwrap().events
}

async fn latest(h: &Harness) -> i64 {
    h.store.revocations_after(0, 1).await.unwrap().latest
}

/// The one entry logged after `mark`, which must name one token.
async fn one_token_entry(h: &Harness, mark: i64) -> TokenHash {
    let events = log_after(h, mark).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, RevocationKind::TokenRevoked);
    match &events[0].tokens {
        RevokedTokens::Token(h) => *h,
        other => panic!("expected a token entry, got {other:?}"),
    }
}

/// Each revocation source appends what a cache needs to drop the right answers.
async fn every_revocation_source_is_logged(h: &Harness) {
    let user = h.user("ann@example.com").await;
    let login = h.login("ann@example.com", PASSWORD).await;
    let (access, refresh) = (login.str("access_token"), login.str("refresh_token"));

    // Refresh rotation: the rotated-away access token ends.
    let mark = latest(h).await;
    let rotated = h.refresh(&refresh).await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(one_token_entry(h, mark).await, TokenHash::of(&access));

    // Replay of the old refresh token: the family's live access token ends.
    let mark = latest(h).await;
    let replay = h.refresh(&refresh).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        one_token_entry(h, mark).await,
        TokenHash::of(&rotated.str("access_token"))
    );

    // RFC 7009, by the refresh token: the family's access token ends.
    let second = h.login("ann@example.com", PASSWORD).await;
    let mark = latest(h).await;
    let revoked = h.revoke(&second.str("refresh_token")).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        one_token_entry(h, mark).await,
        TokenHash::of(&second.str("access_token"))
    );

    // Password change: the user's other tokens, as one credential-change entry.
    let third = h.login("ann@example.com", PASSWORD).await;
    let _other_session = h.login("ann@example.com", PASSWORD).await;
    let mark = latest(h).await;
    let changed = h
        .json(
            Method::PUT,
            "/users/password/",
            Some(&third.str("access_token")),
            json!({"old_password": PASSWORD, "password": "a-new-one-43-quince",
                   "password2": "a-new-one-43-quince"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.json);
    let events = log_after(h, mark).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, RevocationKind::CredentialChange);
    assert_eq!(
        events[0].tokens,
        RevokedTokens::User {
            user_id: user,
            client_id: None
        }
    );

    // Consent withdrawn for one client; deactivation; a client's tokens.
    let now = h.clock.unix();
    let mark = latest(h).await;
    let n = h
        .store
        .revoke_user_client_tokens(user, "rs-id", now)
        .await
        .unwrap();
    assert!(n > 0);
    h.login("ann@example.com", "a-new-one-43-quince").await;
    h.store.revoke_user_tokens(user, None, now).await.unwrap();
    h.login("ann@example.com", "a-new-one-43-quince").await;
    h.store.revoke_client_tokens("rs-id", now).await.unwrap();
    let events = log_after(h, mark).await;
    let summary: Vec<_> = events.iter().map(|e| (e.kind, e.tokens.clone())).collect();
    assert_eq!(
        summary,
        vec![
            (
                RevocationKind::SessionRevoked,
                RevokedTokens::User {
                    user_id: user,
                    client_id: Some("rs-id".into())
                }
            ),
            (
                RevocationKind::SessionRevoked,
                RevokedTokens::User {
                    user_id: user,
                    client_id: None
                }
            ),
            (
                RevocationKind::TokenRevoked,
                RevokedTokens::Client("rs-id".into())
            ),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));

    // Nothing revoked, nothing logged.
    let mark = latest(h).await;
    assert_eq!(h.store.revoke_client_tokens("rs-id", now).await.unwrap(), 0);
    assert!(log_after(h, mark).await.is_empty());

    // Staff status taken away: one token-claims-change entry for the user, no
    // token revoked (introspection answers again, without the staff scopes).
    // Making a user staff, or "demoting" one who is not, logs nothing.
    let flags = |staff| oauth_core::UserFlags {
        is_staff: Some(staff),
        ..Default::default()
    };
    let token = h
        .login("ann@example.com", "a-new-one-43-quince")
        .await
        .str("access_token");
    let mark = latest(h).await;
    h.store.set_user_flags(user, flags(false)).await.unwrap();
    h.store.set_user_flags(user, flags(true)).await.unwrap();
    assert!(log_after(h, mark).await.is_empty());
    h.store.set_user_flags(user, flags(false)).await.unwrap();
    let events = log_after(h, mark).await;
    let summary: Vec<_> = events.iter().map(|e| (e.kind, e.tokens.clone())).collect();
    assert_eq!(
        summary,
        vec![(
            RevocationKind::TokenClaimsChange,
            RevokedTokens::User {
                user_id: user,
                client_id: None
            }
        )]
    );
    assert!(h.active(&token).await, "re-evaluated, not revoked");
}

/// Reads the stream's body until `want` events (not comments) have arrived.
async fn read_events(body: &mut Body, want: usize) -> Vec<(String, String, serde_json::Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < want {
        let frame = tokio::time::timeout_at(deadline.into(), body.frame())
            .await
            .expect("the stream went quiet")
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !event.is_empty() {
                events.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

fn stream_request(last_event_id: Option<i64>, auth: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().uri("/o/revocations/");
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    req.body(Body::empty()).unwrap()
}

/// The first `n` events of the stream for `rs-id` resuming after `last`.
async fn first_events(
    h: &Harness,
    last: Option<i64>,
    n: usize,
) -> Vec<(String, String, serde_json::Value)> {
    let rs = basic_header("rs-id", "rs-secret");
    let res = h
        .router
        .clone()
        .oneshot(stream_request(last, Some(&rs)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    read_events(&mut res.into_body(), n).await
}

/// The stream: who may read it, live entries, resume, and reset after a purge.
async fn the_stream_serves_resumes_and_resets(h: &Harness) {
    let rs = basic_header("rs-id", "rs-secret");
    // Only introspection-capable callers.
    for auth in [
        None,
        Some(basic_header("rs-id", "wrong")),
        Some(basic_header("spa", "")),
    ] {
        let res = h
            .router
            .clone()
            .oneshot(stream_request(None, auth.as_deref()))
            .await
            .unwrap();
        assert!(res.status().is_client_error(), "{auth:?}: {}", res.status());
    }

    h.user("bob@example.com").await;
    let res = h
        .router
        .clone()
        .oneshot(stream_request(None, Some(&rs)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let sync = read_events(&mut body, 1).await;
    assert_eq!(sync[0].1, "sync");
    let start: i64 = sync[0].0.parse().unwrap();

    let login = h.login("bob@example.com", PASSWORD).await;
    let access = login.str("access_token");
    h.revoke(&access).await;
    let live = read_events(&mut body, 1).await;
    assert_eq!(live[0].1, "token-revoked");
    assert_eq!(
        live[0].2["subject"],
        json!({"format": "token_hash", "alg": "sha-256", "hash": TokenHash::of(&access).to_hex()})
    );
    let revoked_id: i64 = live[0].0.parse().unwrap();
    assert!(revoked_id > start);

    // A staff user made non-staff: their cached answers are to be asked again,
    // whatever their issue time (no `issued_before`).
    let bob = h
        .store
        .user_by_email(&oauth_core::Email::parse("bob@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    for staff in [true, false] {
        let flags = oauth_core::UserFlags {
            is_staff: Some(staff),
            ..Default::default()
        };
        h.store.set_user_flags(bob, flags).await.unwrap();
    }
    let claims = read_events(&mut body, 1).await;
    assert_eq!(claims[0].1, "token-claims-change");
    let data = &claims[0].2;
    assert_eq!(data["type"], "token-claims-change");
    assert_eq!(
        data["subject"],
        json!({"format": "opaque", "id": bob.to_string()})
    );
    assert_eq!(data["claims"], json!({"is_staff": false}));
    assert!(data.get("issued_before").is_none(), "{data}");
    let claims_id: i64 = claims[0].0.parse().unwrap();

    // Resuming from before them replays them, then says it is caught up.
    let replay = first_events(h, Some(start), 3).await;
    assert_eq!(replay[0].0, revoked_id.to_string());
    assert_eq!(replay[0].1, "token-revoked");
    assert_eq!(replay[1].1, "token-claims-change");
    assert_eq!(replay[2].1, "sync");

    // Purged past the receiver's position: a reset, then caught up.
    h.store
        .purge_revocations(h.clock.unix() + 60)
        .await
        .unwrap();
    let reset = first_events(h, Some(start), 2).await;
    assert_eq!(reset[0].1, "reset");
    assert_eq!(reset[1].1, "sync");
    // …and a receiver already past the purge resumes without one.
    assert_eq!(first_events(h, Some(claims_id), 1).await[0].1, "sync");

    // A malformed Last-Event-ID is refused.
    let res = h
        .router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/o/revocations/")
                .header(header::AUTHORIZATION, &rs)
                .header("Last-Event-ID", "x")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

scenarios!(
    every_revocation_source_is_logged,
    the_stream_serves_resumes_and_resets
);

/// A TCP proxy whose connections can be cut and refused, to take the revocation
/// stream down without touching the server.
struct Cuttable {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    _accept: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    async fn to(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
        let accept = tokio::spawn({
            let (open, connections) = (open.clone(), connections.clone());
            async move {
                loop {
                    let Ok((mut down, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        let _ = down.shutdown().await;
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Self {
            addr,
            open,
            connections,
            _accept: accept,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn follower(introspect_at: SocketAddr, stream_at: SocketAddr, cap: Duration) -> Introspector {
    Introspector::new(
        IntrospectorConfig::new(
            format!("http://{introspect_at}/o/introspect/"),
            IntrospectionCredentials::Client {
                id: "rs-id".into(),
                secret: "rs-secret".into(),
            },
        )
        .follow_revocations(format!("http://{stream_at}/o/revocations/"))
        .disconnected_cache_cap(cap)
        .stream_silence(Duration::from_millis(1500)),
    )
    .unwrap()
}

async fn until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Revokes on instance A, and measures how long instance B's follower keeps
/// accepting the token: 50 revocations, p50/p99 printed; p99 must be ≤ 1 s.
async fn revocations_reach_a_follower(a: &Harness, b_router: Router, label: &str) {
    let b = serve(b_router).await;
    let rs = follower(b, b, Duration::from_secs(5));
    until("the stream is live", Duration::from_secs(10), async || {
        rs.revocation_stream_live()
    })
    .await;
    a.user("carol@example.com").await;
    let mut delays = Vec::new();
    for _ in 0..50 {
        let token = a
            .login("carol@example.com", PASSWORD)
            .await
            .str("access_token");
        rs.authenticate(&token).await.expect("active on B");
        let revoked_at = Instant::now();
        let r = a.revoke(&token).await;
        assert_eq!(r.status, StatusCode::OK);
        until(
            "the revocation reaches B's cache",
            Duration::from_secs(5),
            async || matches!(rs.authenticate(&token).await, Err(AuthError::InvalidToken)),
        )
        .await;
        delays.push(revoked_at.elapsed());
    }
    delays.sort();
    let (p50, p99) = (delays[24], delays[49]);
    eprintln!(
        "{label}: revocation on A refused through B's follower: p50 {p50:?}, p99 {p99:?}, max {:?} (50 revocations)",
        delays[49]
    );
    assert!(p99 <= Duration::from_secs(1), "p99 {p99:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocations_reach_a_follower_within_a_second() {
    let h = Harness::new(common::Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    let router = h.router.clone();
    revocations_reach_a_follower(&h, router, "SQLite, one instance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_revocations_on_one_instance_reach_another_within_a_second() {
    let Some(a) = Harness::new(common::Backend::Postgres, common::lenient()).await else {
        common::postgres_skipped();
        return;
    };
    // Instance B: its own pool on the same schema, its own router.
    let b = a.second_instance().await;
    revocations_reach_a_follower(&a, b, "PostgreSQL, two instances").await;
    a.cleanup().await;
}

/// With the stream cut, cached answers are used at most the cap; entries written
/// meanwhile are applied when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_stream_is_down_the_cap_holds_and_missed_entries_follow() {
    let h = Harness::new(common::Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    let server = serve(h.router.clone()).await;
    let proxy = Cuttable::to(server).await;
    let cap = Duration::from_secs(2);
    let rs = follower(server, proxy.addr, cap);
    until("the stream is live", Duration::from_secs(10), async || {
        rs.revocation_stream_live()
    })
    .await;
    h.user("dan@example.com").await;
    let login = async || {
        h.login("dan@example.com", PASSWORD)
            .await
            .str("access_token")
    };
    let (t1, t2) = (login().await, login().await);
    rs.authenticate(&t1).await.unwrap();
    let t1_fetched = Instant::now();

    proxy.cut();
    until(
        "the stream counts as down",
        Duration::from_secs(5),
        async || !rs.revocation_stream_live(),
    )
    .await;
    rs.authenticate(&t2).await.unwrap();
    let revoke = async |t: &str| {
        let r = h.revoke(t).await;
        assert_eq!(r.status, StatusCode::OK);
    };
    revoke(&t1).await;
    // t1 was fetched before the cut, longer ago than the cap: asked again, refused.
    tokio::time::sleep_until((t1_fetched + cap + Duration::from_millis(100)).into()).await;
    assert_eq!(rs.authenticate(&t1).await, Err(AuthError::InvalidToken));
    // t2, revoked now, is honoured at most the cap after it was fetched.
    revoke(&t2).await;
    let honoured = until("t2 refused", cap + Duration::from_secs(2), async || {
        rs.authenticate(&t2).await.is_err()
    })
    .await;
    assert!(honoured <= cap, "{honoured:?}");

    // Back up: a token cached and revoked while the stream was down — its entry
    // is replayed on reconnection, well before any cap would drop it.
    let rs_long = follower(server, proxy.addr, Duration::from_secs(3600));
    proxy.restore();
    until(
        "the second follower is live",
        Duration::from_secs(10),
        async || rs_long.revocation_stream_live(),
    )
    .await;
    let t3 = login().await;
    rs_long.authenticate(&t3).await.unwrap();
    proxy.cut();
    until("down again", Duration::from_secs(5), async || {
        !rs_long.revocation_stream_live()
    })
    .await;
    revoke(&t3).await;
    let applied = rs_long.revocations_applied();
    proxy.restore();
    until(
        "the missed entry is applied",
        Duration::from_secs(10),
        async || rs_long.revocations_applied() > applied,
    )
    .await;
    assert_eq!(
        rs_long.authenticate(&t3).await,
        Err(AuthError::InvalidToken)
    );
}

/// PostgreSQL's short cache of token lookups: a revocation or a user change on
/// this instance shows at once; one committed by another instance as soon as
/// PostgreSQL notifies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cached_lookups_follow_revocations_and_user_changes() {
    let Some(a) = Harness::new(common::Backend::Postgres, common::lenient()).await else {
        common::postgres_skipped();
        return;
    };
    let b = a.second_instance().await;
    let introspect_b = async |token: &str| {
        let res = b
            .clone()
            .oneshot(
                Request::builder()
                    .method(Method::POST)
                    .uri("/o/introspect/")
                    .header(header::AUTHORIZATION, basic_header("rs-id", "rs-secret"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(common::encode(&[("token", token)])))
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["active"] == true
    };
    let user = a.user("erin@example.com").await;
    let login = async || {
        a.login("erin@example.com", PASSWORD)
            .await
            .str("access_token")
    };

    // Revoked on A: B's (cached) answer follows within the notification.
    let token = login().await;
    assert!(introspect_b(&token).await && introspect_b(&token).await);
    let started = Instant::now();
    assert_eq!(a.revoke(&token).await.status, StatusCode::OK);
    let took = until(
        "B sees the revocation",
        Duration::from_secs(1),
        async || !introspect_b(&token).await,
    )
    .await;
    eprintln!(
        "revoked on A, inactive on B after {took:?} ({:?} since the request)",
        started.elapsed()
    );

    // On the instance itself: at once, for revocations and user changes alike.
    let token = login().await;
    assert!(a.active(&token).await && a.active(&token).await);
    a.revoke(&token).await;
    assert!(!a.active(&token).await, "revoked here: inactive at once");
    let token = login().await;
    assert!(a.active(&token).await);
    a.store
        .set_user_flags(
            user,
            oauth_core::UserFlags {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        !a.active(&token).await,
        "deactivated here: inactive at once"
    );
    a.cleanup().await;
}
