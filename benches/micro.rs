//! Target 6, micro-benchmarks (criterion): one scrypt hash at the production
//! parameters; token generation with its SHA-256; client authentication on a
//! request once the secret has been verified (must be microseconds, not a KDF);
//! a cache hit in the introspector; and a token lookup on SQLite, inline (the
//! default) against through sqlx's pool.
//!
//! Run with: `cargo bench --bench micro`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use oauth_core::memory::{MemoryClientRegistry, MemoryTokenStore, MemoryUserStore};
use oauth_core::resource::{
    Authenticator, IntrospectionCredentials, Introspector, IntrospectorConfig,
};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    AuthServer, Client, ClientKind, ClientRegistry, Password, PasswordHasher, ScryptParams,
    TokenFamily, TokenHash, TokenKind, TokenRecord, TokenStore, generate_token,
};
use tower::ServiceExt as _;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn scrypt_hash(c: &mut Criterion) {
    let rt = rt();
    let hasher = PasswordHasher::new(ScryptParams::PRODUCTION).unwrap();
    let mut g = c.benchmark_group("password");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("scrypt hash ln=15 r=8 p=3", |b| {
        b.to_async(&rt).iter(|| async {
            hasher
                .hash(&Password::new("correct horse battery"))
                .await
                .unwrap()
        })
    });
    g.finish();
}

fn tokens(c: &mut Criterion) {
    c.bench_function("token generation + SHA-256", |b| {
        b.iter(|| {
            let t = generate_token().unwrap();
            TokenHash::of(&t)
        })
    });
}

/// `POST /o/revoke_token/` of an unknown token: body parsing, client authentication
/// (cached verification) and one token lookup in the in-memory store — the whole
/// per-request cost of a client-authenticated endpoint without a database.
fn client_authentication(c: &mut Criterion) {
    let rt = rt();
    let clients = Arc::new(MemoryClientRegistry::default());
    let router = rt.block_on(async {
        let hasher = PasswordHasher::new(ScryptParams::PRODUCTION).unwrap();
        clients
            .register_client(support::bench_client(
                hasher.hash(&Password::new("rs-secret")).await.unwrap(),
                "read",
                "read",
            ))
            .await
            .unwrap();
        AuthServer::new(
            Arc::new(MemoryUserStore::default()),
            clients,
            Arc::new(MemoryTokenStore::default()),
        )
        .password_hasher(hasher)
        .router()
        .unwrap()
    });
    let request = || {
        Request::post("/o/revoke_token/")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", "Basic cnMtaWQ6cnMtc2VjcmV0")
            .body(Body::from("token=unknown"))
            .unwrap()
    };
    // The first request pays the KDF once.
    assert!(
        rt.block_on(router.clone().oneshot(request()))
            .unwrap()
            .status()
            .is_success()
    );
    c.bench_function(
        "client-authenticated request (verified secret cached)",
        |b| {
            b.to_async(&rt)
                .iter(|| async { router.clone().oneshot(request()).await.unwrap().status() })
        },
    );
}

fn introspector_cache_hit(c: &mut Criterion) {
    let rt = rt();
    let introspector = rt.block_on(async {
        let stub = axum::Router::new().route(
            "/o/introspect/",
            axum::routing::post(|| async {
                ([("content-type", "application/json")], r#"{"active":true,"scope":"read write","client_id":"rs-id","username":"u@example.com","sub":"1"}"#)
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, stub).await.unwrap() });
        let i = Introspector::new(IntrospectorConfig::new(
            format!("http://{addr}/o/introspect/"),
            IntrospectionCredentials::Client { id: "rs-id".into(), secret: "rs-secret".into() },
        ))
        .unwrap();
        i.authenticate("cached-token").await.unwrap();
        i
    });
    c.bench_function("introspector cache hit", |b| {
        b.to_async(&rt)
            .iter(|| async { introspector.authenticate("cached-token").await.unwrap() })
    });
}

/// `token_with_owner` on a SQLite file holding 10,000 tokens: on the caller's thread
/// (the default) and through sqlx's pool, which hands each statement to a worker
/// thread and back.
fn sqlite_token_lookup(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("micro.db").display());
    let (inline, pooled, hash) = rt.block_on(async {
        let inline = SeaOrmStore::open(&url).await.unwrap();
        let pooled = SeaOrmStore::connect(StoreConfig::new(&url).inline_reads(false))
            .await
            .unwrap();
        inline
            .register_client(Client {
                client_id: "rs-id".into(),
                secret_hash: None,
                kind: ClientKind::Public,
                name: "bench".into(),
                grant_types: vec![],
                redirect_uris: vec![],
                allowed_origins: vec![],
                skip_authorization: false,
                allowed_scope: "read".parse().unwrap(),
                default_scope: "read".parse().unwrap(),
                owner: None,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        let family = TokenFamily::generate().unwrap();
        let records: Vec<_> = (0..10_000)
            .map(|i| TokenRecord {
                hash: TokenHash::of(&format!("token-{i}")),
                kind: TokenKind::Access,
                client_id: "rs-id".into(),
                user_id: None,
                scope: "read".parse().unwrap(),
                family,
                issued_at: 0,
                expires_at: i64::MAX,
                revoked_at: None,
            })
            .collect();
        for chunk in records.chunks(1_000) {
            inline.insert_tokens(chunk).await.unwrap();
        }
        (inline, pooled, TokenHash::of("token-4321"))
    });
    let mut g = c.benchmark_group("sqlite token lookup");
    g.bench_function("inline", |b| {
        b.to_async(&rt)
            .iter(|| async { inline.token_with_owner(&hash).await.unwrap().unwrap() })
    });
    g.bench_function("through the pool", |b| {
        b.to_async(&rt)
            .iter(|| async { pooled.token_with_owner(&hash).await.unwrap().unwrap() })
    });
    g.finish();
}

criterion_group!(
    benches,
    scrypt_hash,
    tokens,
    client_authentication,
    introspector_cache_hit,
    sqlite_token_lookup
);
criterion_main!(benches);
