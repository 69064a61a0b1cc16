//! The proxy names its callers to the auth server: through the real proxy, with
//! both servers on real sockets and the callers on distinct loopback addresses
//! (127.0.0.2 and 127.0.0.3), one caller's failed logins do not lock out another.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use oauth_core::resource::IntrospectionCredentials;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    AuthServer, Client, ClientKind, ClientRegistry, Email, GrantType, NewUser, Password,
    PasswordHasher, ScryptParams, ThrottleConfig, UserStore,
};
use reqwest::StatusCode;
use serde_json::json;

use crate::config::Config;
use crate::items::Paging;
use crate::tests::PASSWORD;

/// The auth server, trusting the resource server's address (127.0.0.1) as a proxy,
/// with a strict per-(account, source) limit of 3.
async fn auth_server(dir: &tempfile::TempDir) -> String {
    let url = format!("sqlite://{}", dir.path().join("as.db").display());
    let store = Arc::new(SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap());
    store.migrate().await.unwrap();
    let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap();
    store
        .register_client(Client {
            client_id: "rs-id".into(),
            secret_hash: Some(hasher.hash(&Password::new("rs-secret")).await.unwrap()),
            kind: ClientKind::Confidential,
            name: "resource server".into(),
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            redirect_uris: vec![],
            allowed_origins: vec![],
            skip_authorization: true,
            allowed_scope: "read write introspection".parse().unwrap(),
            default_scope: "read write".parse().unwrap(),
            owner: None,
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    store
        .create_user(NewUser::new(
            Email::parse("ann@example.com").unwrap(),
            hasher.hash(&Password::new(PASSWORD)).await.unwrap(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = AuthServer::from_store(store)
        .issuer_url(url.clone())
        .password_hasher(hasher)
        .throttle(ThrottleConfig {
            per_account_source: 3,
            ..ThrottleConfig::default()
        })
        .trusted_proxies(vec!["127.0.0.1/32".parse().unwrap()])
        .router()
        .unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    url
}

async fn resource_server(dir: &tempfile::TempDir, auth: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}", dir.path().join("rs.db").display()),
        addr,
        auth_server_url: auth.to_owned(),
        introspection_url: format!("{auth}/o/introspect/"),
        credentials: IntrospectionCredentials::Client {
            id: "rs-id".into(),
            secret: "rs-secret".into(),
        },
        cache_cap: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(5),
        timeout: Duration::from_secs(2),
        revocation_stream: None,
        disconnected_cache: Duration::from_secs(5),
        paging: Paging { default: 2, max: 3 },
        bench_unauthenticated: false,
        public_url: format!("http://{addr}"),
        auth_server_issuer: auth.to_owned(),
        session_idle: Duration::from_secs(1800),
        session_key: None,
    };
    let db = crate::db::open(&config.database_url).await.unwrap();
    let app = crate::app(db, &config).unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// An HTTP client whose connections come from `ip`.
fn caller(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_behind_the_proxy_does_not_lock_out_other_callers() {
    oauth_core::resource::ensure_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_server(&dir).await;
    let rs = resource_server(&dir, &auth).await;
    let login = |client: reqwest::Client, password: &'static str| {
        let url = format!("{rs}/users/token/");
        async move {
            client
                .post(url)
                .json(&json!({"email": "ann@example.com", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let (guesser, owner) = (caller([127, 0, 0, 2]), caller([127, 0, 0, 3]));
    for _ in 0..3 {
        let r = login(guesser.clone(), "wrong-guess-1").await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let r = login(guesser.clone(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");
    // Another caller of the same proxy, same account: not held back.
    let r = login(owner.clone(), PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string(), "{body}");
}
