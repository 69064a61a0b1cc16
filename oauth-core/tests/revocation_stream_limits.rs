//! Issue 19, hole 6: the revocation stream (`GET /o/revocations/`) re-checks its
//! caller while it is open, caps its subscribers, and shares one read of the log
//! among all of them.
//!
//! - a stream held by a client whose secret was rotated, or that was deleted, or
//!   by a bearer token that was revoked, ends within the re-check period (5 s by
//!   default; at once when the log names the caller);
//! - a client past its subscriber cap gets 429, anyone past the total cap 503,
//!   both RFC 6749-shaped with `Retry-After`;
//! - with many subscribers the log is read about once a second, not once per
//!   subscriber per second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Harness, basic_header};
use http_body_util::BodyExt as _;
use oauth_core::{
    ClientRegistry as _, Clock as _, Password, RevocationBatch, RevocationLog, StoreError,
    TokenStore as _, UnixTime,
};
use tower::ServiceExt as _;

/// The default re-check period of a stream's caller.
const RECHECK: Duration = Duration::from_secs(5);

fn stream_request(auth: &str) -> Request<Body> {
    Request::builder()
        .uri("/o/revocations/")
        .header(header::AUTHORIZATION, auth)
        .body(Body::empty())
        .unwrap()
}

/// Opens a stream and reads up to its `sync` event.
async fn open(router: &axum::Router, auth: &str) -> Body {
    let res = router.clone().oneshot(stream_request(auth)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("event: sync") {
        let frame = tokio::time::timeout_at(deadline.into(), body.frame())
            .await
            .expect("no sync within 10 s")
            .expect("the stream ended before sync")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    body
}

/// The status, JSON body and `Retry-After` of a refused stream request (an
/// accepted one is an endless body: read only its status).
async fn refusal(
    router: &axum::Router,
    auth: &str,
) -> (StatusCode, serde_json::Value, Option<String>) {
    let res = router.clone().oneshot(stream_request(auth)).await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        return (status, serde_json::Value::Null, None);
    }
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap(), retry)
}

/// How long after `since` the stream ended; panics if it is still open `limit`
/// after `since`.
async fn ended_after(body: &mut Body, since: Instant, limit: Duration) -> Duration {
    loop {
        match tokio::time::timeout_at((since + limit).into(), body.frame()).await {
            Err(_) => panic!("the stream is still open {limit:?} later"),
            Ok(None | Some(Err(_))) => return since.elapsed(),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A client's secret rotated in the registry (as the console and the API do,
/// here without any token of the client to revoke, so no log entry names it):
/// its open stream ends within the re-check period.
async fn a_rotated_secret_ends_the_stream(h: &Harness) {
    let mut stream = open(&h.router, &basic_header("rs-id", "rs-secret")).await;
    let mut rs = h.store.client("rs-id").await.unwrap().unwrap();
    rs.secret_hash = Some(h.hasher.hash(&Password::new("rotated")).await.unwrap());
    let rotated = Instant::now();
    h.store.update_client(rs).await.unwrap();
    let took = ended_after(&mut stream, rotated, RECHECK + Duration::from_secs(2)).await;
    eprintln!("secret rotated: the stream ended after {took:.2?}");
    // And the old secret cannot open a new one.
    let res = h
        .router
        .clone()
        .oneshot(stream_request(&basic_header("rs-id", "rs-secret")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// A token of `other` for a user, so that revoking the client's tokens logs an
/// entry that names it.
async fn a_token_of_other(h: &Harness, email: &str) {
    h.user(email).await;
    let login = h
        .post_form(
            "/o/token/",
            Some(("other", "other-secret")),
            &[
                ("grant_type", "password"),
                ("username", email),
                ("password", common::PASSWORD),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.json);
}

/// A secret rotated as the console does it — new secret, then the client's
/// tokens revoked, which logs an entry naming the client: the stream ends at
/// once, not at the next periodic check.
async fn a_rotated_secret_named_in_the_log_ends_the_stream_at_once(h: &Harness) {
    a_token_of_other(h, "rot@example.com").await;
    let mut stream = open(&h.router, &basic_header("other", "other-secret")).await;
    // Past the check made at connection time, so that only the entry can end it early.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut other = h.store.client("other").await.unwrap().unwrap();
    other.secret_hash = Some(h.hasher.hash(&Password::new("rotated")).await.unwrap());
    let rotated = Instant::now();
    h.store.update_client(other).await.unwrap();
    let n = h
        .store
        .revoke_client_tokens("other", h.clock.unix())
        .await
        .unwrap();
    assert!(n > 0);
    let took = ended_after(&mut stream, rotated, Duration::from_secs(2)).await;
    eprintln!("secret rotated, client's tokens revoked: the stream ended after {took:.2?}");
}

/// A client deleted as the console does it (its tokens revoked first, then the
/// registration deleted): its stream ends within the re-check period.
async fn a_deleted_client_ends_the_stream(h: &Harness) {
    a_token_of_other(h, "del@example.com").await;
    let mut stream = open(&h.router, &basic_header("other", "other-secret")).await;
    let deleted = Instant::now();
    h.store
        .revoke_client_tokens("other", h.clock.unix())
        .await
        .unwrap();
    assert!(h.store.delete_client("other").await.unwrap());
    let took = ended_after(&mut stream, deleted, RECHECK + Duration::from_secs(2)).await;
    eprintln!("client deleted: the stream ended after {took:.2?}");
}

/// A bearer token (client credentials, scope `introspection`) revoked through
/// RFC 7009: the stream it opened ends at once.
async fn a_revoked_bearer_token_ends_the_stream(h: &Harness) {
    let token = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "introspection"),
            ],
        )
        .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.json);
    let token = token.str("access_token");
    let mut stream = open(&h.router, &format!("Bearer {token}")).await;
    let revoked = Instant::now();
    let r = h
        .post_form(
            "/o/revoke_token/",
            Some(("svc", "svc-secret")),
            &[("token", &token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!h.active(&token).await);
    let took = ended_after(&mut stream, revoked, RECHECK + Duration::from_secs(2)).await;
    eprintln!("bearer token revoked: the stream ended after {took:.2?}");
}

/// Past the per-client cap (8 by default): 429 with `Retry-After`, in the RFC 6749
/// error shape; another client still gets in, and a closed stream frees its slot.
async fn a_client_past_its_cap_gets_429(h: &Harness) {
    let rs = basic_header("rs-id", "rs-secret");
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(open(&h.router, &rs).await);
    }
    let refused = refusal(&h.router, &rs).await;
    assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.1["error"], "temporarily_unavailable");
    assert!(refused.2.is_some(), "Retry-After");
    // Another client is not affected.
    let _other = open(&h.router, &basic_header("other", "other-secret")).await;
    // A closed stream frees its slot.
    drop(held.pop());
    let again = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let res = h.router.clone().oneshot(stream_request(&rs)).await.unwrap();
            if res.status() == StatusCode::OK {
                return res;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slot of a closed stream is freed");
    drop(again);
}

scenarios!(
    a_rotated_secret_ends_the_stream,
    a_rotated_secret_named_in_the_log_ends_the_stream_at_once,
    a_deleted_client_ends_the_stream,
    a_revoked_bearer_token_ends_the_stream,
    a_client_past_its_cap_gets_429,
);

/// The store's log, counting the reads of it.
struct Counting {
    inner: Arc<oauth_core::sea::SeaOrmStore>,
    reads: Arc<AtomicU64>,
}

#[async_trait]
impl RevocationLog for Counting {
    async fn revocations_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<RevocationBatch, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.revocations_after(after, limit).await
    }

    async fn purge_revocations(&self, before: UnixTime) -> Result<u64, StoreError> {
        self.inner.purge_revocations(before).await
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe()
    }
}

/// 18 subscribers (6 for each of three clients): the log is still read about
/// once a second by the instance, not once a second by each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_share_one_read_of_the_log() {
    let reads = Arc::new(AtomicU64::new(0));
    let h = Harness::build(common::Backend::Sqlite, common::lenient(), |server| server)
        .await
        .unwrap();
    // The same server over the counting log (the harness's router reads the store's).
    let router = oauth_core::AuthServer::from_store(h.store.clone())
        .password_hasher(h.hasher.clone())
        .revocation_log(Arc::new(Counting {
            inner: h.store.clone(),
            reads: reads.clone(),
        }))
        .router()
        .unwrap();
    let mut streams = Vec::new();
    for (id, secret) in [
        ("rs-id", "rs-secret"),
        ("other", "other-secret"),
        ("svc", "svc-secret"),
    ] {
        for _ in 0..6 {
            streams.push(open(&router, &basic_header(id, secret)).await);
        }
    }
    // Keep every stream drained, so that none stalls.
    let drained: Vec<_> = streams
        .into_iter()
        .map(|mut body| tokio::spawn(async move { while body.frame().await.is_some() {} }))
        .collect();
    let window = Duration::from_secs(4);
    let before = reads.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    let per_second = (reads.load(Ordering::Relaxed) - before) as f64 / window.as_secs_f64();
    eprintln!("18 subscribers: {per_second:.2} reads of the log per second");
    assert!(per_second <= 2.5, "{per_second} reads per second");
    for task in drained {
        task.abort();
    }
}

/// The settings: per-client and total caps (429, then 503 past the total, both
/// with `Retry-After`), and a shorter re-check period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_caps_and_recheck_period() {
    let recheck = Duration::from_secs(1);
    let h = Harness::build(common::Backend::Sqlite, common::lenient(), |server| {
        server
            .revocation_stream_subscribers(2, 3)
            .revocation_stream_recheck(recheck)
    })
    .await
    .unwrap();
    let rs = basic_header("rs-id", "rs-secret");
    let _a = open(&h.router, &rs).await;
    let _b = open(&h.router, &rs).await;
    let refused = refusal(&h.router, &rs).await;
    assert_eq!(refused.0, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    let mut other = open(&h.router, &basic_header("other", "other-secret")).await;
    let full = refusal(&h.router, &basic_header("svc", "svc-secret")).await;
    assert_eq!(full.0, StatusCode::SERVICE_UNAVAILABLE, "{full:?}");
    assert_eq!(full.1["error"], "temporarily_unavailable");
    assert!(full.2.is_some(), "Retry-After");
    // Bad credentials are refused as before, whatever the caps.
    let bad = refusal(&h.router, &basic_header("svc", "wrong")).await;
    assert_eq!(bad.0, StatusCode::UNAUTHORIZED, "{bad:?}");

    // A rotation no log entry names ends the stream within the configured period.
    let mut c = h.store.client("other").await.unwrap().unwrap();
    c.secret_hash = Some(h.hasher.hash(&Password::new("rotated")).await.unwrap());
    let rotated = Instant::now();
    h.store.update_client(c).await.unwrap();
    let took = ended_after(&mut other, rotated, recheck + Duration::from_secs(1)).await;
    eprintln!("re-check every {recheck:?}: the stream ended {took:.2?} after the rotation");
    // Its slot is free again.
    drop(other);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if refusal(&h.router, &basic_header("svc", "svc-secret"))
                .await
                .0
                == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slot of an ended stream is freed");
}

/// A stream that falls further behind the shared feed than it keeps (1,024
/// entries) reads what it missed from the log: every entry arrives once, in
/// order, without a `reset`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_behind_the_feed_misses_nothing() {
    use oauth_core::UserStore as _;
    let h = Harness::new(common::Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    let user = h.user("lag@example.com").await;
    let res = h
        .router
        .clone()
        .oneshot(stream_request(&basic_header("rs-id", "rs-secret")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    // Up to `sync`: the stream has joined the feed; then it is not read while
    // 1,200 entries are written (a staff user demoted, 1,200 times).
    let mut text = String::new();
    while !text.contains("event: sync") {
        let frame = body.frame().await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let flags = |staff| oauth_core::UserFlags {
        is_staff: Some(staff),
        ..Default::default()
    };
    let start = h.store.revocations_after(0, 1).await.unwrap().latest;
    const N: usize = 1200;
    for _ in 0..N {
        h.store.set_user_flags(user, flags(true)).await.unwrap();
        h.store.set_user_flags(user, flags(false)).await.unwrap();
    }
    let written: Vec<i64> = h
        .store
        .revocations_after(start, 10_000)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(written.len(), N);
    // Let the feed publish them all (it reads 256 a query).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut received = Vec::new();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < N {
        let frame = tokio::time::timeout_at(deadline.into(), body.frame())
            .await
            .expect("entries missing")
            .expect("the stream ended")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            assert!(!block.contains("event: reset"), "{block}");
            if block.contains("event: token-claims-change") {
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .unwrap()
                    .trim()
                    .parse::<i64>()
                    .unwrap();
                received.push(id);
            }
        }
    }
    assert_eq!(received, written);
}
