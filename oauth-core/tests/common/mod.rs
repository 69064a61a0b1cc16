//! Test harness: the auth server router over a real store (SQLite in a temporary
//! directory, or PostgreSQL in a schema of its own when `TEST_DATABASE_URL` is set),
//! driven with `Router::oneshot`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use oauth_core::pages::Pages;
use oauth_core::sea::sea_orm::ConnectionTrait as _;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    AuthServer, Client, ClientKind, ClientRegistry, Email, GrantType, ManualClock, NewUser,
    Password, PasswordHasher, ScryptParams, ThrottleConfig, UserStore,
};
use serde_json::Value;
use tower::ServiceExt as _;

pub const PASSWORD: &str = "plum-violet-anchor-92";

/// Says, once per test binary and past the test harness's output capture, that
/// the PostgreSQL variants did not run: a local `cargo test` without
/// `TEST_DATABASE_URL` must not look like a PostgreSQL pass. (CI sets it and
/// refuses to start without a server.)
pub fn postgres_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "note: TEST_DATABASE_URL is unset: the PostgreSQL variants of these tests were skipped"
        );
    });
}

pub struct Harness {
    pub router: Router,
    pub store: Arc<SeaOrmStore>,
    pub clock: ManualClock,
    pub hasher: PasswordHasher,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL schema name no other test run uses.
pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "as_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Throttle limits high enough that no test but the throttling ones reaches them.
pub fn lenient() -> ThrottleConfig {
    ThrottleConfig {
        per_account_source: 1000,
        per_account: 1000,
        per_client: 1000,
        per_ip: 1000,
        signups_per_ip: 1000,
        secret_hashes_per_user: 1000,
        secret_hashes_per_ip: 1000,
        ..ThrottleConfig::default()
    }
}

impl Harness {
    /// `None` for PostgreSQL when `TEST_DATABASE_URL` is unset (said once on stderr).
    pub async fn new(backend: Backend, throttle: ThrottleConfig) -> Option<Self> {
        Self::build(backend, throttle, |server| server).await
    }

    /// As [`new`](Self::new), with more settings of the server.
    pub async fn build(
        backend: Backend,
        throttle: ThrottleConfig,
        configure: impl FnOnce(AuthServer) -> AuthServer,
    ) -> Option<Self> {
        let h = Self::empty(backend, throttle, configure).await?;
        h.seed_clients().await;
        Some(h)
    }

    /// As [`build`](Self::build), with no client registered.
    pub async fn empty(
        backend: Backend,
        throttle: ThrottleConfig,
        configure: impl FnOnce(AuthServer) -> AuthServer,
    ) -> Option<Self> {
        Self::with_pages(backend, throttle, |pages| pages, configure).await
    }

    /// As [`build`](Self::build), with more settings of the browser pages too
    /// (`pages` receives the harness's: sessions in this store, the console on).
    pub async fn build_with_pages(
        backend: Backend,
        throttle: ThrottleConfig,
        pages: impl FnOnce(Pages) -> Pages,
        configure: impl FnOnce(AuthServer) -> AuthServer,
    ) -> Option<Self> {
        let h = Self::with_pages(backend, throttle, pages, configure).await?;
        h.seed_clients().await;
        Some(h)
    }

    async fn with_pages(
        backend: Backend,
        throttle: ThrottleConfig,
        pages: impl FnOnce(Pages) -> Pages,
        configure: impl FnOnce(AuthServer) -> AuthServer,
    ) -> Option<Self> {
        let (store, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("as.db").display());
                (
                    SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap(),
                    Some(dir),
                    None,
                )
            }
            Backend::Postgres => {
                let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
                    postgres_skipped();
                    return None;
                };
                let schema = unique_schema();
                let store = SeaOrmStore::connect(StoreConfig::new(&url).schema(&schema))
                    .await
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but unusable: {e}"));
                (store, None, Some((url, schema)))
            }
        };
        store.migrate().await.unwrap();
        let store = Arc::new(store);
        let clock = ManualClock::at(chrono::Utc::now().timestamp());
        let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap();
        let router = configure(
            AuthServer::from_store(store.clone())
                .pages(pages(
                    Pages::new(store.as_ref().clone()).admin(store.clone()),
                ))
                .password_hasher(hasher.clone())
                .clock(Arc::new(clock.clone()))
                .throttle(throttle)
                .body_limit(4096)
                .issuer_url("https://auth.example.test"),
        )
        .router()
        .unwrap();
        let h = Self {
            router,
            store,
            clock,
            hasher,
            _dir: dir,
            pg,
        };
        Some(h)
    }

    /// The clients every test but the import's starts with.
    async fn seed_clients(&self) {
        let h = self;
        h.client(
            "rs-id",
            Some("rs-secret"),
            &[GrantType::Password, GrantType::RefreshToken],
            "read write introspection",
        )
        .await;
        h.client(
            "other",
            Some("other-secret"),
            &[GrantType::Password, GrantType::RefreshToken],
            "read write introspection",
        )
        .await;
        h.client(
            "svc",
            Some("svc-secret"),
            &[GrantType::ClientCredentials],
            "read introspection",
        )
        .await;
        h.client(
            "spa",
            None,
            &[GrantType::Password, GrantType::RefreshToken],
            "read",
        )
        .await;
    }

    pub async fn client(&self, id: &str, secret: Option<&str>, grants: &[GrantType], scope: &str) {
        let client = client_record(&self.hasher, id, secret, grants, scope, &[]).await;
        self.store.register_client(client).await.unwrap();
    }

    /// A staff user with [`PASSWORD`], created directly in the store.
    pub async fn staff_user(&self, email: &str) -> i64 {
        let id = self.user(email).await;
        self.store
            .set_user_flags(
                id,
                oauth_core::UserFlags {
                    is_staff: Some(true),
                    ..oauth_core::UserFlags::default()
                },
            )
            .await
            .unwrap();
        id
    }

    /// A user with [`PASSWORD`], created directly in the store.
    pub async fn user(&self, email: &str) -> i64 {
        let hash = self.hasher.hash(&Password::new(PASSWORD)).await.unwrap();
        self.store
            .create_user(NewUser::new(
                Email::parse(email).unwrap(),
                hash,
                chrono::Utc::now(),
            ))
            .await
            .unwrap()
            .id
    }

    /// A second server instance over the same PostgreSQL schema, with its own
    /// connection pool: what another process sharing the database would be.
    pub async fn second_instance(&self) -> Router {
        self.second_instance_with(lenient()).await
    }

    /// A second store over the same PostgreSQL schema, with its own pool and
    /// lookup cache, configured by `configure`: another process's store.
    pub async fn second_store(
        &self,
        configure: impl FnOnce(StoreConfig) -> StoreConfig,
    ) -> Arc<SeaOrmStore> {
        let (url, schema) = self.pg.as_ref().expect("a second store needs PostgreSQL");
        Arc::new(
            SeaOrmStore::connect(configure(StoreConfig::new(url).schema(schema)))
                .await
                .unwrap(),
        )
    }

    /// As [`second_instance`](Self::second_instance), with these throttle limits.
    pub async fn second_instance_with(&self, throttle: ThrottleConfig) -> Router {
        let (url, schema) = self
            .pg
            .as_ref()
            .expect("a second instance needs PostgreSQL");
        let store = Arc::new(
            SeaOrmStore::connect(StoreConfig::new(url).schema(schema))
                .await
                .unwrap(),
        );
        AuthServer::from_store(store)
            .password_hasher(self.hasher.clone())
            .clock(Arc::new(self.clock.clone()))
            .throttle(throttle)
            .issuer_url("https://auth.example.test")
            .router()
            .unwrap()
    }

    /// Everything the database holds, as text: on SQLite every byte of its files
    /// (the main file and the write-ahead log, free pages included); on
    /// PostgreSQL every row of every table of the schema. For tests that a
    /// plaintext secret reached no store.
    pub async fn stored_text(&self) -> String {
        use oauth_core::sea::sea_orm::{DbBackend, Statement};
        if let Some(dir) = &self._dir {
            let mut bytes = vec![];
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        let db = self.store.connection();
        let tables = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT CAST(table_name AS TEXT) AS t FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            ))
            .await
            .unwrap();
        assert!(tables.len() > 5, "the schema's tables are listed");
        let mut text = String::new();
        for table in tables {
            let table: String = table.try_get("", "t").unwrap();
            let rows = db
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!("SELECT CAST(r AS TEXT) AS row FROM \"{table}\" r"),
                ))
                .await
                .unwrap();
            for row in rows {
                text.push_str(&row.try_get::<String>("", "row").unwrap());
                text.push('\n');
            }
        }
        text
    }

    pub async fn cleanup(self) {
        if let Some((url, schema)) = self.pg {
            let admin = SeaOrmStore::connect(StoreConfig::new(url).max_connections(1))
                .await
                .unwrap();
            admin
                .connection()
                .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    /// A form POST, optionally with HTTP Basic client credentials.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            req = req.header(header::AUTHORIZATION, basic_header(id, secret));
        }
        self.send(req.body(Body::from(encode(form))).unwrap()).await
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// The password grant for `email` through `rs-id` with Basic auth.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "password"),
                ("username", email),
                ("password", password),
            ],
        )
        .await
    }

    /// The refresh grant through `rs-id` with Basic auth.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// RFC 7009 revocation by `rs-id` with Basic auth.
    pub async fn revoke(&self, token: &str) -> Reply {
        self.post_form(
            "/o/revoke_token/",
            Some(("rs-id", "rs-secret")),
            &[("token", token)],
        )
        .await
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let r = self
            .post_form(
                "/o/introspect/",
                Some(("rs-id", "rs-secret")),
                &[("token", token)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
        r.json
    }

    pub async fn active(&self, token: &str) -> bool {
        self.introspect(token).await["active"] == Value::Bool(true)
    }
}

/// A client record: confidential with `secret` (hashed with `hasher`), public
/// without; named after its id; default scope = allowed scope.
pub async fn client_record(
    hasher: &PasswordHasher,
    id: &str,
    secret: Option<&str>,
    grants: &[GrantType],
    scope: &str,
    redirect_uris: &[&str],
) -> Client {
    let secret_hash = match secret {
        Some(s) => Some(hasher.hash(&Password::new(s)).await.unwrap()),
        None => None,
    };
    Client {
        client_id: id.into(),
        secret_hash,
        kind: if secret.is_some() {
            ClientKind::Confidential
        } else {
            ClientKind::Public
        },
        name: id.into(),
        grant_types: grants.to_vec(),
        redirect_uris: redirect_uris.iter().map(|u| (*u).to_owned()).collect(),
        allowed_origins: vec![],
        skip_authorization: false,
        allowed_scope: scope.parse().unwrap(),
        default_scope: scope.parse().unwrap(),
        owner: None,
        created_at: chrono::Utc::now(),
    }
}

pub fn encode(form: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

pub fn basic_header(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {}", self.json))
            .to_owned()
    }

    #[track_caller]
    pub fn expect(&self, status: StatusCode, json: Value) {
        assert_eq!(
            (self.status, &self.json),
            (status, &json),
            "headers: {:?}",
            self.headers
        );
    }
}

/// One `#[tokio::test]` per backend for each scenario `async fn name(h: &Harness)`.
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = $crate::common::Harness::new($crate::common::Backend::Sqlite, $crate::common::lenient()).await.unwrap();
                super::$name(&h).await;
                h.cleanup().await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = $crate::common::Harness::new($crate::common::Backend::Postgres, $crate::common::lenient()).await else {
                    $crate::common::postgres_skipped();
                    return;
                };
                super::$name(&h).await;
                h.cleanup().await;
            }
        )* }
    };
}
