//! Where an introspection's cost goes: the auth server's router (SQLite store, the
//! example's layers) driven in process, without sockets, one request at a time, by
//! stages — each variant does one stage more than the one before:
//!
//! | variant | what it does |
//! |---|---|
//! | `ceiling` | the server's middleware, form body read, a constant JSON answer |
//! | `auth` | + form parsing and client authentication (no `token`: a 400) |
//! | `unknown` | + the token's hash and the SQLite lookup, a miss (`{"active":false}`) |
//! | `active` | + the owner, scope handling and the full answer |
//!
//! Each prints microseconds (noisy on a shared machine) and heap allocations per
//! request: dhat's allocator counts them once its profiler runs, after the timed
//! runs, and adds its own bookkeeping to each. Instruction counts come from running
//! one variant under callgrind, which counts them whatever the machine's load
//! (total instructions ÷ (`REQUESTS` + 100 warm-up requests)):
//!
//! ```sh
//! cargo bench --bench breakdown --no-run   # prints the binary's path
//! VARIANT=active REQUESTS=2000 ALLOCATIONS=false valgrind --tool=callgrind \
//!   --collect-atstart=no --toggle-collect='breakdown::measure*' \
//!   target/release/deps/breakdown-…
//! callgrind_annotate --inclusive=yes callgrind.out.*
//! ```
//!
//! Run with: `cargo bench --bench breakdown` (`QUICK=1`: few requests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{AuthServer, ClientRegistry, Password, PasswordHasher, ScryptParams};
use tower::ServiceExt as _;

// Counts nothing (and costs next to nothing) until a profiler runs.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const BASIC: &str = "Basic cnMtaWQ6cnMtc2VjcmV0"; // rs-id:rs-secret

fn request(path: &str, body: String) -> Request<Body> {
    let mut req = Request::post(path)
        .header("host", "127.0.0.1:8000")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", BASIC)
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

/// `n` requests made by `make`, one after the other; kept out of line so that
/// callgrind's `--toggle-collect` can find it.
#[inline(never)]
fn measure(
    rt: &tokio::runtime::Runtime,
    router: &Router,
    n: u64,
    make: &dyn Fn() -> Request<Body>,
    expect: StatusCode,
) -> Duration {
    let started = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            let response = router.clone().oneshot(make()).await.unwrap();
            assert_eq!(response.status(), expect);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            std::hint::black_box(body);
        }
    });
    started.elapsed()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var("QUICK").is_ok_and(|v| v == "1" || v == "true");
    let n: u64 = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 200 } else { 20_000 });
    let only = std::env::var("VARIANT").ok();
    // One worker thread: the figures are per request, not per machine.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (router, token) = rt.block_on(setup(&dir));

    let variants: [(&str, &str, String, StatusCode); 4] = [
        (
            "ceiling",
            "/bench/ceiling",
            format!("token={token}"),
            StatusCode::OK,
        ),
        (
            "auth",
            "/o/introspect/",
            format!("tokem={token}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown",
            "/o/introspect/",
            format!("token={}", "x".repeat(token.len())),
            StatusCode::OK,
        ),
        (
            "active",
            "/o/introspect/",
            format!("token={token}"),
            StatusCode::OK,
        ),
    ];
    println!("{n} requests per variant, one at a time, in process (no sockets)");
    let variants: Vec<_> = variants
        .into_iter()
        .filter(|(name, ..)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    let mut times = Vec::new();
    for (_, path, body, status) in &variants {
        let make = || request(path, body.clone());
        // Warm-up: caches filled, statements prepared.
        measure(&rt, &router, 100.min(n), &make, *status);
        times.push(measure(&rt, &router, n, &make, *status));
    }
    // Allocations, with the profiler on (which slows every allocation: not timed).
    let profiler = (std::env::var("ALLOCATIONS").as_deref() != Ok("false"))
        .then(|| dhat::Profiler::builder().testing().build());
    for ((name, path, body, status), took) in variants.iter().zip(times) {
        let make = || request(path, body.clone());
        let allocations = profiler.as_ref().map(|_| {
            let before = dhat::HeapStats::get();
            let m = 1_000.min(n);
            measure(&rt, &router, m, &make, *status);
            let after = dhat::HeapStats::get();
            (
                (after.total_blocks - before.total_blocks) as f64 / m as f64,
                (after.total_bytes - before.total_bytes) as f64 / m as f64,
            )
        });
        // The request itself (`make`) is counted too: the same in every variant.
        let (blocks, bytes) = allocations.unwrap_or((f64::NAN, f64::NAN));
        println!(
            "{name:<8} {:>8.2} µs/request  {blocks:>6.1} allocations/request  {bytes:>7.0} bytes/request",
            took.as_secs_f64() * 1e6 / n as f64,
        );
    }
}

/// The example auth server's router over a fresh SQLite file, with a confidential
/// client `rs-id` and a user's active access token (password grant).
async fn setup(dir: &tempfile::TempDir) -> (Router, String) {
    let url = format!("sqlite://{}", dir.path().join("as.db").display());
    let store = SeaOrmStore::connect(StoreConfig::new(&url)).await.unwrap();
    store.migrate().await.unwrap();
    let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap();
    store
        .register_client(support::bench_client(
            hasher.hash(&Password::new("rs-secret")).await.unwrap(),
            "read write introspection",
            "read write",
        ))
        .await
        .unwrap();
    let store = Arc::new(store);
    const BODY: &str = r#"{"active":true,"scope":"read write","exp":1795415940,"iat":1795379940,"client_id":"rs-id","username":"bench@example.com","sub":"1","token_type":"Bearer"}"#;
    let ceiling = Router::new().route(
        "/bench/ceiling",
        axum::routing::post(|_form: String| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                BODY,
            )
        }),
    );
    // As the example builds it (examples/auth_server/main.rs); the request timeout
    // is tower-http's, which arms its timer on every request where the example's
    // (examples/common/serve.rs) arms it only for an answer that is not ready at once.
    let router = AuthServer::from_store(store)
        .password_hasher(hasher)
        .router()
        .unwrap()
        .merge(ceiling)
        .layer(oauth_core::server::trace_layer())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ));
    let signup = Request::post("/users/signup/")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"email":"bench@example.com","password":"bench-passphrase-41","password2":"bench-passphrase-41"}"#,
        ))
        .unwrap();
    let r = router.clone().oneshot(signup).await.unwrap();
    assert!(r.status().is_success(), "signup: {}", r.status());
    let r = router
        .clone()
        .oneshot(request(
            "/o/token/",
            "grant_type=password&username=bench%40example.com&password=bench-passphrase-41".into(),
        ))
        .await
        .unwrap();
    assert!(r.status().is_success(), "token: {}", r.status());
    let body = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    (router, json["access_token"].as_str().unwrap().to_owned())
}
