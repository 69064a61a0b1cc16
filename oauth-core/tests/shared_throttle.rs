//! Failure counters shared by server instances (issue 12, "Many instances"): on
//! PostgreSQL two `AuthServer`s over two connection pools to one schema count
//! failures together, so the thresholds hold across instances; successes write
//! nothing; known-good client secrets read nothing. On SQLite the counters stay in
//! each process. The `ThrottleStore` contract on memory, SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use common::{Backend, Harness, PASSWORD};
use oauth_core::sea::entity::throttle;
use oauth_core::sea::sea_orm::{ConnectionTrait as _, EntityTrait as _, Statement};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::store::MemoryThrottleStore;
use oauth_core::{FailureCount, StoreError, ThrottleConfig, ThrottleStore, UnixTime};
use tower::ServiceExt as _;

const RESET: i64 = 600;

/// Five guesses per (account, source), then 60 s, doubling; forgotten after 10 minutes.
fn five_then_wait() -> ThrottleConfig {
    ThrottleConfig {
        per_account_source: 5,
        wait_increment: Duration::from_secs(60),
        max_wait: Duration::from_secs(900),
        failure_reset: Duration::from_secs(RESET.unsigned_abs()),
        ..common::lenient()
    }
}

fn from(ip: [u8; 4], mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    req
}

fn form(ip: [u8; 4], path: &str, basic: (&str, &str), form: &[(&str, &str)]) -> Request<Body> {
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

fn login(ip: [u8; 4], user: &str, password: &str) -> Request<Body> {
    form(
        ip,
        "/o/token/",
        ("rs-id", "rs-secret"),
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ],
    )
}

/// Status and `Retry-After` of one request.
async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Option<u64>) {
    let res = router.clone().oneshot(req).await.unwrap();
    let retry = res
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (res.status(), retry)
}

/// Every counter row, with PostgreSQL's `xmin` (the transaction that last wrote
/// it): an update that rewrote the same values would still show.
async fn table(store: &SeaOrmStore) -> Vec<String> {
    let db = store.connection();
    if db.get_database_backend() == oauth_core::sea::sea_orm::DbBackend::Postgres {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT xmin::text AS x, encode(key_hash, 'hex') AS k, failures, last_failure \
                 FROM oauth_throttle ORDER BY key_hash",
            ))
            .await
            .unwrap();
        return rows
            .iter()
            .map(|r| {
                let x: String = r.try_get("", "x").unwrap();
                let k: String = r.try_get("", "k").unwrap();
                let f: i32 = r.try_get("", "failures").unwrap();
                let l: i64 = r.try_get("", "last_failure").unwrap();
                format!("{x} {k} {f} {l}")
            })
            .collect();
    }
    throttle::Entity::find()
        .all(db)
        .await
        .unwrap()
        .iter()
        .map(|m| format!("{:?}", m))
        .collect()
}

/// Threshold 5 per (account, source), failures split across instances A and B:
/// 3 on A and 2 on B, and the 6th attempt — even with the right password — is
/// refused on both; the owner, from another address, signs in on either. One
/// more failure after the wait doubles it on both. After the reset period the
/// guesser's count starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_split_across_instances_reach_the_threshold() {
    let Some(h) = Harness::new(Backend::Postgres, five_then_wait()).await else {
        common::postgres_skipped();
        return;
    };
    let a = h.router.clone();
    let b = h.second_instance_with(five_then_wait()).await;
    h.user("ann@example.com").await;
    let (guesser, owner) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    for (router, n) in [(&a, 3), (&b, 2)] {
        for _ in 0..n {
            let (status, _) = send(router, login(guesser, "ann@example.com", "wrong")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
        }
    }
    for router in [&a, &b] {
        let r = send(router, login(guesser, "ann@example.com", PASSWORD)).await;
        assert_eq!(r, (StatusCode::TOO_MANY_REQUESTS, Some(60)));
    }
    for router in [&a, &b] {
        let (status, _) = send(router, login(owner, "ann@example.com", PASSWORD)).await;
        assert_eq!(status, StatusCode::OK, "the owner from another source");
    }
    // The counters hold digests only: no email, no address in clear.
    let rows = table(&h.store).await;
    assert_eq!(
        rows.len(),
        3,
        "(account, source), account, source: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| !r.contains("ann") && !r.contains("10.0.0"))
    );

    h.clock.advance(60);
    let (status, _) = send(&b, login(guesser, "ann@example.com", "wrong")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "one try after the wait");
    for router in [&a, &b] {
        let r = send(router, login(guesser, "ann@example.com", PASSWORD)).await;
        assert_eq!(r, (StatusCode::TOO_MANY_REQUESTS, Some(120)), "doubled");
    }

    // Forgotten after the reset period: five more guesses before the wait.
    h.clock.advance(RESET);
    for router in [&a, &b, &a, &b] {
        let (status, _) = send(router, login(guesser, "ann@example.com", "wrong")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "counted from 1 again");
    }
    let (status, _) = send(&b, login(guesser, "ann@example.com", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK, "the fifth attempt is still checked");
    h.cleanup().await;
}

/// Client-secret guesses from one source through both instances add up too; the
/// client itself, with its right secret, keeps working on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_guesses_split_across_instances_add_up() {
    let config = ThrottleConfig {
        per_client: 4,
        ..common::lenient()
    };
    let Some(h) = Harness::new(Backend::Postgres, config).await else {
        common::postgres_skipped();
        return;
    };
    let a = h.router.clone();
    let b = h.second_instance_with(config).await;
    let (guesser, rs) = ([203, 0, 113, 9], [10, 0, 0, 2]);
    let introspect = |ip, secret| form(ip, "/o/introspect/", ("rs-id", secret), &[("token", "x")]);
    for router in [&a, &b, &a, &b] {
        let (status, _) = send(router, introspect(guesser, "guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for router in [&a, &b] {
        let r = send(router, introspect(guesser, "guess")).await;
        assert_eq!(r, (StatusCode::TOO_MANY_REQUESTS, Some(60)));
        let (status, _) = send(router, introspect(rs, "rs-secret")).await;
        assert_eq!(status, StatusCode::OK, "the right secret from elsewhere");
    }
    h.cleanup().await;
}

/// A `ThrottleStore` that counts the calls made to it.
#[derive(Default)]
struct Counting {
    inner: Option<Arc<SeaOrmStore>>,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl Counting {
    fn calls(&self) -> (usize, usize) {
        (
            self.reads.load(Ordering::SeqCst),
            self.writes.load(Ordering::SeqCst),
        )
    }

    fn store(&self) -> &SeaOrmStore {
        self.inner.as_ref().unwrap()
    }
}

#[async_trait]
impl ThrottleStore for Counting {
    async fn failure_counts(
        &self,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<FailureCount>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.store().failure_counts(keys).await
    }

    async fn record_failure(
        &self,
        keys: &[&[u8]],
        now_ms: i64,
        reset_ms: i64,
    ) -> Result<Vec<FailureCount>, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store().record_failure(keys, now_ms, reset_ms).await
    }

    async fn clear_failures(&self, key: &[u8]) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store().clear_failures(key).await
    }

    async fn purge_throttle(&self, before: UnixTime) -> Result<u64, StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.store().purge_throttle(before).await
    }

    fn shared(&self) -> bool {
        true
    }
}

/// Successful sign-ins write no counter — one read each, no write, the table
/// untouched (on PostgreSQL not even rewritten: `xmin` unchanged) — except the
/// one success after failures from the same source, which deletes that counter.
/// A secret already verified reads no counter at all.
async fn successes_write_nothing(backend: Backend) {
    let Some(h) = Harness::new(backend, five_then_wait()).await else {
        common::postgres_skipped();
        return;
    };
    // A router whose counters are the harness's store, wrapped to count the calls.
    let counter = Arc::new(Counting {
        inner: Some(h.store.clone()),
        ..Counting::default()
    });
    let router = oauth_core::AuthServer::from_store(h.store.clone())
        .password_hasher(h.hasher.clone())
        .clock(Arc::new(h.clock.clone()))
        .throttle(five_then_wait())
        .throttle_store(counter.clone())
        .router()
        .unwrap();
    h.user("ann@example.com").await;
    let (guesser, owner) = ([10, 0, 0, 1], [10, 0, 0, 2]);

    // Failures from the guesser: one write each.
    for _ in 0..2 {
        let (status, _) = send(&router, login(guesser, "ann@example.com", "wrong")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let before = table(counter.store()).await;
    assert_eq!(before.len(), 3, "{before:?}");
    let calls = counter.calls();

    // The owner signs in again and again: reads only, the table as it was.
    for _ in 0..5 {
        let (status, _) = send(&router, login(owner, "ann@example.com", PASSWORD)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let after = counter.calls();
    assert_eq!(after.1, calls.1, "no write for a success");
    // rs-id's secret was verified by the guesser's first request: from then on it
    // is known good and only the password check reads its keys.
    assert_eq!(after.0 - calls.0, 5, "one read per password check");
    assert_eq!(
        table(counter.store()).await,
        before,
        "the table is untouched"
    );

    // Known-good client secrets read nothing: introspection at full speed.
    let calls = counter.calls();
    for _ in 0..5 {
        let (status, _) = send(
            &router,
            form(
                owner,
                "/o/introspect/",
                ("rs-id", "rs-secret"),
                &[("token", "x")],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        counter.calls(),
        calls,
        "no counter read for a known-good secret"
    );

    // The guesser's own success clears its (account, source) counter: one delete;
    // then successes write nothing again.
    let (status, _) = send(&router, login(guesser, "ann@example.com", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counter.calls().1, calls.1 + 1, "one delete");
    let cleared = table(counter.store()).await;
    assert_eq!(
        cleared.len(),
        2,
        "account and source counters stay: {cleared:?}"
    );
    let calls = counter.calls();
    let (status, _) = send(&router, login(guesser, "ann@example.com", PASSWORD)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counter.calls().1, calls.1, "nothing left to clear");
    assert_eq!(table(counter.store()).await, cleared);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_write_nothing_postgres() {
    successes_write_nothing(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_write_nothing_sqlite() {
    successes_write_nothing(Backend::Sqlite).await;
}

/// `from_store` on SQLite counts in the process (the table stays empty): each
/// process sharing a SQLite file has its own counters, as documented. On
/// PostgreSQL the same failures land in the table.
async fn from_store_picks_the_counters_by_backend(backend: Backend) {
    let Some(h) = Harness::new(backend, five_then_wait()).await else {
        common::postgres_skipped();
        return;
    };
    for _ in 0..5 {
        send(&h.router, login([10, 0, 0, 1], "bob@example.com", "wrong")).await;
    }
    let (status, _) = send(&h.router, login([10, 0, 0, 1], "bob@example.com", "wrong")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let rows = table(&h.store).await.len();
    if h.store.shared() {
        assert_eq!(rows, 3);
    } else {
        assert_eq!(rows, 0, "SQLite: counted in memory");
    }
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_store_picks_the_counters_by_backend_sqlite() {
    from_store_picks_the_counters_by_backend(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_store_picks_the_counters_by_backend_postgres() {
    from_store_picks_the_counters_by_backend(Backend::Postgres).await;
}

/// The contract every `ThrottleStore` keeps.
async fn contract(store: &dyn ThrottleStore) {
    let (a, b): (&[u8], &[u8]) = (b"as:10.0.0.1|ann@x.com", b"a:ann@x.com");
    assert_eq!(store.failure_counts(&[a, b]).await.unwrap(), [None, None]);
    let c = |failures, last_failure| FailureCount {
        failures,
        last_failure,
    };
    let reset = 60_000;
    let t0 = 1_800_000_000_000;
    assert_eq!(
        store.record_failure(&[a, b], t0, reset).await.unwrap(),
        [c(1, t0), c(1, t0)]
    );
    assert_eq!(
        store.record_failure(&[b], t0 + 1000, reset).await.unwrap(),
        [c(2, t0 + 1000)]
    );
    assert_eq!(
        store.failure_counts(&[b, a]).await.unwrap(),
        [Some(c(2, t0 + 1000)), Some(c(1, t0))]
    );
    // A count whose latest failure is `reset` old starts over.
    assert_eq!(
        store
            .record_failure(&[a, b], t0 + reset, reset)
            .await
            .unwrap(),
        [c(1, t0 + reset), c(3, t0 + reset)]
    );
    store.clear_failures(a).await.unwrap();
    assert_eq!(
        store.failure_counts(&[a, b]).await.unwrap(),
        [None, Some(c(3, t0 + reset))]
    );
    // Purged: counters whose latest failure is before the given second.
    store.record_failure(&[a], t0, reset).await.unwrap();
    assert_eq!(store.purge_throttle((t0 + 1000) / 1000).await.unwrap(), 1);
    assert_eq!(
        store.failure_counts(&[a, b]).await.unwrap(),
        [None, Some(c(3, t0 + reset))]
    );
}

#[tokio::test]
async fn contract_memory() {
    contract(&MemoryThrottleStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_sqlite() {
    let h = Harness::new(Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    assert!(!h.store.shared());
    contract(h.store.as_ref()).await;
    h.cleanup().await;
}

/// On PostgreSQL, with 64 failures at once through two connection pools (two
/// instances), on overlapping keys in both orders: every one counted, no deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_postgres_and_concurrent_failures() {
    let Some(h) = Harness::new(Backend::Postgres, common::lenient()).await else {
        common::postgres_skipped();
        return;
    };
    assert!(h.store.shared());
    contract(h.store.as_ref()).await;
    let url = std::env::var("TEST_DATABASE_URL").unwrap();
    let schema = h
        .store
        .connection()
        .query_one_raw(Statement::from_string(
            h.store.connection().get_database_backend(),
            "SELECT current_schema() AS s",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "s")
        .unwrap();
    let other = Arc::new(
        SeaOrmStore::connect(StoreConfig::new(url).schema(schema))
            .await
            .unwrap(),
    );
    let mut set = tokio::task::JoinSet::new();
    let now = 1_800_000_000_000;
    for i in 0..64 {
        let store = if i % 2 == 0 {
            h.store.clone()
        } else {
            other.clone()
        };
        set.spawn(async move {
            let keys: &[&[u8]] = if i % 3 == 0 {
                &[b"i:10.9.9.9", b"cs:10.9.9.9|rs-id"]
            } else {
                &[b"cs:10.9.9.9|rs-id", b"i:10.9.9.9"]
            };
            store.record_failure(keys, now, 60_000).await.unwrap()
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
    let counts = other
        .failure_counts(&[b"i:10.9.9.9", b"cs:10.9.9.9|rs-id"])
        .await
        .unwrap();
    assert_eq!(
        counts,
        [Some(FailureCount {
            failures: 64,
            last_failure: now
        }); 2]
    );
    h.cleanup().await;
}
