//! `oauth_core::django::import` against the fixture made by the real Django 5.2 and
//! django-oauth-toolkit 3.4.1 (tests/fixtures/django/make_fixture.sh; no Python is
//! needed here). Its test data, all in clear:
//!
//! - users `pbkdf2@`, `sha1@`, `argon2@`, `bcrypt@`, `scrypt@example.com`, each hashed
//!   by that Django hasher, password = the hasher's name + `-pass-1234`
//!   (`pbkdf2_sha256-pass-1234`, `pbkdf2_sha1-pass-1234`, `argon2-pass-1234`,
//!   `bcrypt_sha256-pass-1234`, `scrypt-pass-1234`); `inactive@example.com`
//!   (pbkdf2_sha256, inactive); `nopass@example.com` (unusable password);
//! - applications `rs-id` / `rs-secret` (password grant) and `conf-app` /
//!   `conf-app-secret` (authorization code), secrets hashed by DOT; `clear-app` /
//!   `clear-app-secret` (client credentials), secret in clear; `public-app`;
//! - tokens named by their value: `live-access-pbkdf2` + `live-refresh-pbkdf2`,
//!   `live-access-argon2` + `live-refresh-argon2`, `live-access-client`,
//!   `live-access-inactive` (all expiring in 2100), `expired-access-bcrypt` (2020) +
//!   `refresh-bcrypt`, `revoked-refresh-sha1`.
//!
//! The source is the SQLite file, or the same rows copied into a PostgreSQL
//! database of the test's own when `TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use common::browser::{Browser, pairs};
use common::{Backend, Harness, Reply, lenient};
use oauth_core::django::{DjangoSource, ImportOptions, ImportReport, import};
use oauth_core::sea::sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DbBackend, Statement, Value as SqlValue,
};
use oauth_core::{ClientRegistry as _, Email, User, UserStore as _};
use serde_json::json;

/// Users who can sign in, with their plaintext passwords.
const USERS: [(&str, &str); 5] = [
    ("pbkdf2@example.com", "pbkdf2_sha256-pass-1234"),
    ("sha1@example.com", "pbkdf2_sha1-pass-1234"),
    ("argon2@example.com", "argon2-pass-1234"),
    ("bcrypt@example.com", "bcrypt_sha256-pass-1234"),
    ("scrypt@example.com", "scrypt-pass-1234"),
];

/// Confidential applications with their plaintext secrets.
const APPS: [(&str, &str); 3] = [
    ("rs-id", "rs-secret"),
    ("conf-app", "conf-app-secret"),
    ("clear-app", "clear-app-secret"),
];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django/dot.sqlite3")
}

fn sqlite_source_url() -> String {
    format!("sqlite://{}", fixture().display())
}

async fn run(h: &Harness, source_url: &str, dry_run: bool) -> ImportReport {
    let source = DjangoSource::connect(source_url, None).await.unwrap();
    assert_eq!(source.user_table(), "users_customuser");
    let mut options = ImportOptions::new(
        h.hasher.clone(),
        "read write introspection".parse().unwrap(),
    );
    options.default_scope = "read write".parse().unwrap();
    options.dry_run = dry_run;
    let report = import(&source, &h.store, &options).await.unwrap();
    if !dry_run {
        give_rs_id_introspection(h).await;
    }
    report
}

/// What the operator does after an import (docs/migrating-from-dot.md): imported
/// applications get the ordinary scopes only, so the resource server's own client
/// is given the privileged `introspection` by name (here straight in the store,
/// before anything cached the registration).
async fn give_rs_id_introspection(h: &Harness) {
    let mut rs = h.store.client("rs-id").await.unwrap().unwrap();
    if !rs.allowed_scope.contains("introspection") {
        rs.allowed_scope.insert("introspection").unwrap();
        h.store.update_client(rs).await.unwrap();
    }
}

/// Issue 19: every imported application has the ordinary scopes only, though the
/// import was given `read write introspection`; asking for `introspection` by name
/// is refused.
async fn imported_applications_get_ordinary_scopes_only(h: &Harness) {
    for id in ["conf-app", "clear-app", "public-app"] {
        let c = h.store.client(id).await.unwrap().unwrap();
        assert_eq!(c.allowed_scope.to_string(), "read write", "{id}");
        assert_eq!(c.default_scope.to_string(), "read write", "{id}");
    }
    let r = h
        .post_form(
            "/o/token/",
            Some(("clear-app", "clear-app-secret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "introspection"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.json["error"], "invalid_scope");
}

fn assert_first_import(r: &ImportReport) {
    let text = r.to_string();
    assert_eq!((r.users.imported, r.users.skipped), (7, 0), "{text}");
    assert_eq!(
        (r.applications.imported, r.applications.skipped),
        (4, 0),
        "{text}"
    );
    // Four live access tokens; the expired one is skipped.
    assert_eq!(
        (r.access_tokens.imported, r.access_tokens.skipped),
        (4, 1),
        "{text}"
    );
    // Two live refresh tokens and the one of the expired access token (DOT's never
    // expire); the revoked one is skipped.
    assert_eq!(
        (r.refresh_tokens.imported, r.refresh_tokens.skipped),
        (3, 1),
        "{text}"
    );
    assert!(text.contains("access token #5: expired"), "{text}");
    assert!(text.contains("refresh token #4: revoked"), "{text}");
    // No secret in the summary.
    for (_, secret) in APPS {
        assert!(!text.contains(secret), "{text}");
    }
    for (_, password) in USERS {
        assert!(!text.contains(password), "{text}");
    }
    assert!(!text.contains("pbkdf2_sha256$"), "{text}");
    assert!(!text.contains("live-access"), "{text}");
}

/// Waits for a background re-hash to land: `read` must turn `$scrypt$…`.
async fn eventually_scrypt<F, Fut>(what: &str, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    for _ in 0..200 {
        if read().await.is_some_and(|h| h.starts_with("$scrypt$")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: its hash was not replaced by ours");
}

async fn user(h: &Harness, email: &str) -> User {
    h.store
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
}

async fn password_hash(h: &Harness, email: &str) -> Option<String> {
    user(h, email).await.password_hash
}

/// The status of the password grant for `email` and `password`.
async fn login_status(h: &Harness, email: &str, password: &str) -> StatusCode {
    h.login(email, password).await.status
}

/// The refresh grant with `refresh_token`, by `rs-id`.
async fn refresh(h: &Harness, refresh_token: &str) -> Reply {
    h.post_form(
        "/o/token/",
        Some(("rs-id", "rs-secret")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A copy of the fixture in `dir`; returns its URL.
fn copy_of_fixture(dir: &std::path::Path) -> String {
    let copy = dir.join("dot.sqlite3");
    std::fs::copy(fixture(), &copy).unwrap();
    format!("sqlite://{}", copy.display())
}

/// Runs `changes` on the SQLite database at `url`, as DOT (or damage) would.
async fn change_sqlite(url: &str, changes: &[&str]) {
    let mut opts = ConnectOptions::new(format!("{url}?mode=rw"));
    opts.sqlx_logging(false);
    let db = Database::connect(opts).await.unwrap();
    for sql in changes {
        db.execute_unprepared(sql).await.unwrap();
    }
    db.close().await.unwrap();
}

/// Signs in at `/accounts/login/` as a browser does.
async fn page_login(h: &Harness, email: &str, password: &str) -> StatusCode {
    let mut b = Browser::new(h);
    let form = b.get("/accounts/login/").await;
    let page = b
        .post(
            "/accounts/login/",
            &pairs(&[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("username", email),
                ("password", password),
                ("next", "/o/authorized_tokens/"),
            ]),
        )
        .await;
    page.status
}

async fn users_sign_in_with_the_token_endpoint(h: &Harness) {
    for (email, password) in USERS {
        let r = h.login(email, password).await;
        assert_eq!(r.status, StatusCode::OK, "{email}: {}", r.json);
        eventually_scrypt(email, || password_hash(h, email)).await;
        // And again, now with our hash.
        assert_eq!(login_status(h, email, password).await, StatusCode::OK);
        assert_eq!(
            login_status(h, email, "wrong-password").await,
            StatusCode::BAD_REQUEST
        );
    }
}

async fn users_sign_in_on_the_login_page(h: &Harness) {
    for (email, password) in USERS {
        assert_eq!(
            page_login(h, email, password).await,
            StatusCode::SEE_OTHER,
            "{email}"
        );
        let hash = password_hash(h, email).await.unwrap();
        assert!(hash.starts_with("$scrypt$"), "{email}: {hash}");
        assert_eq!(page_login(h, email, password).await, StatusCode::SEE_OTHER);
        assert_eq!(page_login(h, email, "wrong-password").await, StatusCode::OK);
    }
}

async fn the_inactive_and_the_unusable_cannot_sign_in(h: &Harness) {
    for (email, password) in [
        ("inactive@example.com", "pbkdf2_sha256-pass-1234"),
        ("nopass@example.com", ""),
        ("nopass@example.com", "!"),
    ] {
        let r = h.login(email, password).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{email}: {}", r.json);
        assert_eq!(r.json["error"], "invalid_grant");
        assert_eq!(page_login(h, email, password).await, StatusCode::OK);
    }
    assert!(!user(h, "inactive@example.com").await.is_active);
    let admin = user(h, "pbkdf2@example.com").await;
    assert!(admin.is_staff && admin.is_superuser && admin.is_active);
    assert_eq!(admin.date_joined.to_rfc3339(), "2024-01-02T03:04:05+00:00");
    assert!(admin.last_login.is_some());
}

async fn applications_authenticate_with_their_secrets(h: &Harness) {
    for (id, secret) in APPS {
        // Revocation authenticates the client and answers 200 for any token.
        let revoke = |secret| {
            h.post_form(
                "/o/revoke_token/",
                Some((id, secret)),
                &[("token", "nothing")],
            )
        };
        let r = revoke(secret).await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {:?}", r.json);
        assert_eq!(
            revoke("wrong").await.status,
            StatusCode::UNAUTHORIZED,
            "{id}"
        );
        eventually_scrypt(id, || async {
            h.store.client(id).await.unwrap().unwrap().secret_hash
        })
        .await;
    }
    let public = h.store.client("public-app").await.unwrap().unwrap();
    assert!(public.secret_hash.is_none());
    let conf = h.store.client("conf-app").await.unwrap().unwrap();
    assert!(conf.skip_authorization);
    assert_eq!(conf.redirect_uris, ["https://app.example.com/callback"]);
    // The client credentials grant with the secret DOT kept in clear.
    let r = h
        .post_form(
            "/o/token/",
            Some(("clear-app", "clear-app-secret")),
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

async fn live_tokens_keep_working(h: &Harness) {
    let owned = |scope: &str, user: &str| json!({"active": true, "scope": scope, "client_id": "rs-id", "username": user});
    for (token, want) in [
        (
            "live-access-pbkdf2",
            owned("read write", "pbkdf2@example.com"),
        ),
        ("live-access-argon2", owned("read", "argon2@example.com")),
    ] {
        let got = h.introspect(token).await;
        for key in ["active", "scope", "client_id", "username"] {
            assert_eq!(got[key], want[key], "{token}: {got}");
        }
        assert_eq!(got["exp"], 4_102_444_800_i64, "{token}");
        // And it is a bearer token the server itself honours.
        let r = h
            .json(
                axum::http::Method::PUT,
                "/users/password/",
                Some(token),
                json!({}),
            )
            .await;
        assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{token}: {:?}", r.json);
    }
    let client = h.introspect("live-access-client").await;
    assert_eq!(client["active"], true);
    assert_eq!(client["client_id"], "clear-app");
    assert_eq!(client.get("username"), None);
    for dead in [
        "expired-access-bcrypt",
        "live-access-inactive",
        "revoked-refresh-sha1",
    ] {
        assert_eq!(h.introspect(dead).await, json!({"active": false}), "{dead}");
    }
    // A refresh token rotates as in DOT, within its family.
    let r = refresh(h, "live-refresh-pbkdf2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "read write");
    assert!(
        !h.active("live-access-pbkdf2").await,
        "the family's old access token ends"
    );
    // The refresh token of an expired access token still works, as in DOT.
    let r = refresh(h, "refresh-bcrypt").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = refresh(h, "revoked-refresh-sha1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
}

async fn full_import(h: &Harness, source_url: &str) {
    let first = run(h, source_url, false).await;
    assert_first_import(&first);
    // Issue 19: unknown emails now pay for the slowest imported hash family,
    // not for the (here very cheap) scrypt.
    let present = oauth_core::UserStore::legacy_password_hashes(h.store.as_ref())
        .await
        .unwrap();
    let imported_legacy = present.len();
    assert!(imported_legacy >= USERS.len(), "{present:?}");
    assert_ne!(h.hasher.unknown_user_check(), "scrypt");
    imported_applications_get_ordinary_scopes_only(h).await;
    users_sign_in_with_the_token_endpoint(h).await;
    the_inactive_and_the_unusable_cannot_sign_in(h).await;
    applications_authenticate_with_their_secrets(h).await;
    live_tokens_keep_working(h).await;

    // A second run changes nothing, and keeps the hashes upgraded meanwhile.
    let second = run(h, source_url, false).await;
    assert!(second.changed_nothing(), "{second}");
    assert_eq!(second.users.unchanged, 7, "{second}");
    assert_eq!(second.applications.unchanged, 4, "{second}");
    for (email, _) in USERS {
        assert!(
            password_hash(h, email)
                .await
                .unwrap()
                .starts_with("$scrypt$")
        );
    }
    // Those who signed in are no longer legacy: once none is left, the next
    // start-up's unknown-email check is scrypt alone.
    let present = oauth_core::UserStore::legacy_password_hashes(h.store.as_ref())
        .await
        .unwrap();
    assert_eq!(present.len(), imported_legacy - USERS.len(), "{present:?}");
    assert!(
        h.store
            .client("rs-id")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .unwrap()
            .starts_with("$scrypt$")
    );
}

async fn page_logins_after_import(h: &Harness, source_url: &str) {
    assert_first_import(&run(h, source_url, false).await);
    users_sign_in_on_the_login_page(h).await;
}

async fn dry_run_writes_nothing(h: &Harness, source_url: &str) {
    let dry = run(h, source_url, true).await;
    assert!(dry.dry_run);
    assert_first_import(&dry);
    assert!(dry.to_string().starts_with("dry run"));
    assert!(h.store.list_users(0, 10).await.unwrap().is_empty());
    assert!(h.store.list_clients(0, 10).await.unwrap().is_empty());
    let token = oauth_core::TokenHash::of("live-access-pbkdf2");
    assert!(
        oauth_core::TokenStore::token(h.store.as_ref(), &token)
            .await
            .unwrap()
            .is_none()
    );
    // The real run after it imports everything.
    assert_first_import(&run(h, source_url, false).await);
}

async fn harness(backend: Backend) -> Option<Harness> {
    Harness::empty(backend, lenient(), |s| s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_source_into_sqlite() {
    let h = harness(Backend::Sqlite).await.unwrap();
    full_import(&h, &sqlite_source_url()).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_source_login_page() {
    let h = harness(Backend::Sqlite).await.unwrap();
    page_logins_after_import(&h, &sqlite_source_url()).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_source_dry_run() {
    let h = harness(Backend::Sqlite).await.unwrap();
    dry_run_writes_nothing(&h, &sqlite_source_url()).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_past_dot_expiry_are_not_imported() {
    let h = harness(Backend::Sqlite).await.unwrap();
    let source = DjangoSource::connect(&sqlite_source_url(), None)
        .await
        .unwrap();
    let mut options = ImportOptions::new(h.hasher.clone(), "read write".parse().unwrap());
    // DOT's REFRESH_TOKEN_EXPIRE_SECONDS = one day: the fixture's are from 2024.
    options.dot_refresh_token_expire = Some(Duration::from_secs(86_400));
    let r = import(&source, &h.store, &options).await.unwrap();
    assert_eq!(r.refresh_tokens.imported, 0, "{r}");
    assert_eq!(r.refresh_tokens.skipped, 4, "{r}");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_source_rows_are_skipped_not_fatal() {
    // A copy of the fixture with a damaged user, application and token, and with
    // DOT 1.x's columns only (no token_checksum, no hash_client_secret).
    let dir = tempfile::tempdir().unwrap();
    let url = copy_of_fixture(dir.path());
    change_sqlite(
        &url,
        &[
            "PRAGMA foreign_keys = OFF",
            "UPDATE users_customuser SET email = 'not an email' WHERE email = 'sha1@example.com'",
            "UPDATE users_customuser SET password = 'md5$salt$5f4dcc3b5aa765d61d8327deb882cf99' WHERE email = 'scrypt@example.com'",
            "UPDATE oauth2_provider_application SET authorization_grant_type = 'implicit' WHERE client_id = 'conf-app'",
            "UPDATE oauth2_provider_accesstoken SET scope = 'read wr\"ite' WHERE token = 'live-access-argon2'",
            // (A UNIQUE column cannot be dropped: the table is copied without it,
            // and without its foreign keys, so the user table must be named.)
            "CREATE TABLE dot1_access AS SELECT id, token, expires, scope, application_id, user_id, created, updated FROM oauth2_provider_accesstoken",
            "DROP TABLE oauth2_provider_accesstoken",
            "ALTER TABLE dot1_access RENAME TO oauth2_provider_accesstoken",
            "DROP INDEX oauth2_provider_refreshtoken_token_checksum_revoked_46c81d1d_uniq",
            "ALTER TABLE oauth2_provider_refreshtoken DROP COLUMN token_checksum",
            "ALTER TABLE oauth2_provider_application DROP COLUMN hash_client_secret",
        ],
    )
    .await;
    let h = harness(Backend::Sqlite).await.unwrap();
    assert!(DjangoSource::connect(&url, None).await.is_err());
    let source = DjangoSource::connect(&url, Some("users_customuser"))
        .await
        .unwrap();
    let options = ImportOptions::new(
        h.hasher.clone(),
        "read write introspection".parse().unwrap(),
    );
    let r = import(&source, &h.store, &options).await.unwrap();
    give_rs_id_introspection(&h).await;
    let text = r.to_string();
    assert_eq!((r.users.imported, r.users.skipped), (5, 2), "{text}");
    assert!(text.contains("no valid email address"), "{text}");
    assert!(
        text.contains("\"md5\", a hasher not verified here"),
        "{text}"
    );
    assert_eq!(r.applications.imported, 3, "{text}");
    assert!(
        text.contains("grant type \"implicit\" is not served here"),
        "{text}"
    );
    assert!(text.contains("its scope is not valid here"), "{text}");
    // Without DOT 3's checksum the token itself is digested; DOT 1.x secrets in
    // clear are hashed, hashed ones recognised.
    assert!(h.active("live-access-pbkdf2").await);
    assert_eq!(
        login_status(&h, "pbkdf2@example.com", "pbkdf2_sha256-pass-1234").await,
        StatusCode::OK
    );
    h.cleanup().await;
}

/// Copies the fixture's four tables into a new PostgreSQL database, with the types
/// Django gives them there; returns its URL. `None` without `TEST_DATABASE_URL`.
async fn postgres_copy_of_fixture() -> Option<(String, String)> {
    let base = std::env::var("TEST_DATABASE_URL").ok()?;
    let name = format!(
        "dot_import_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let admin = Database::connect(base.clone()).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    let url = format!("{prefix}/{name}");
    let pg = Database::connect(url.clone()).await.unwrap();
    let sqlite = rusqlite::Connection::open(fixture()).unwrap();
    for table in [
        "users_customuser",
        "oauth2_provider_application",
        "oauth2_provider_accesstoken",
        "oauth2_provider_refreshtoken",
    ] {
        let mut stmt = sqlite
            .prepare(&format!(
                "SELECT name, type FROM pragma_table_info('{table}')"
            ))
            .unwrap();
        let columns: Vec<(String, String)> = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get::<_, String>(1)?.to_lowercase()))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let ddl: Vec<String> = columns
            .iter()
            .map(|(c, t)| {
                let ty = match t.as_str() {
                    "integer" | "bigint" => "BIGINT",
                    "bool" => "BOOLEAN",
                    "datetime" => "TIMESTAMP WITH TIME ZONE",
                    _ => "TEXT",
                };
                let extra = match (c.as_str(), table) {
                    ("id", _) => " PRIMARY KEY",
                    ("user_id", t) if t != "users_customuser" => {
                        " REFERENCES users_customuser (id)"
                    }
                    _ => "",
                };
                format!("\"{c}\" {ty}{extra}")
            })
            .collect();
        pg.execute_unprepared(&format!("CREATE TABLE {table} ({})", ddl.join(", ")))
            .await
            .unwrap();
        let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            marks.join(", ")
        );
        let mut rows = sqlite
            .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
            .unwrap();
        let values: Vec<Vec<SqlValue>> = rows
            .query_map([], |r| {
                Ok(columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t))| {
                        let v: rusqlite::types::Value = r.get(i).unwrap();
                        use rusqlite::types::Value as V;
                        match (t.as_str(), v) {
                            ("bool", V::Integer(n)) => SqlValue::Bool(Some(n != 0)),
                            ("bool", _) => SqlValue::Bool(None),
                            ("integer" | "bigint", V::Integer(n)) => SqlValue::BigInt(Some(n)),
                            ("integer" | "bigint", _) => SqlValue::BigInt(None),
                            ("datetime", V::Text(s)) => SqlValue::ChronoDateTimeUtc(Some(
                                chrono::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f")
                                    .unwrap()
                                    .and_utc(),
                            )),
                            ("datetime", _) => SqlValue::ChronoDateTimeUtc(None),
                            (_, V::Text(s)) => SqlValue::String(Some(s)),
                            (_, V::Integer(n)) => SqlValue::String(Some(n.to_string())),
                            _ => SqlValue::String(None),
                        }
                    })
                    .collect())
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for row in values {
            pg.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                insert.clone(),
                row,
            ))
            .await
            .unwrap();
        }
    }
    pg.close().await.unwrap();
    Some((url, name))
}

async fn drop_database(name: &str) {
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let admin = Database::connect(base).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_into_postgres() {
    let Some(h) = harness(Backend::Postgres).await else {
        common::postgres_skipped();
        return;
    };
    let (url, name) = postgres_copy_of_fixture().await.unwrap();
    full_import(&h, &url).await;
    drop_database(&name).await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source_login_page_and_dry_run() {
    let Some(h) = harness(Backend::Postgres).await else {
        common::postgres_skipped();
        return;
    };
    let (url, name) = postgres_copy_of_fixture().await.unwrap();
    dry_run_writes_nothing(&h, &url).await;
    users_sign_in_on_the_login_page(&h).await;
    drop_database(&name).await;
    h.cleanup().await;
}

/// The cutover's second import: what DOT did meanwhile reaches us. A token pair
/// refreshed at DOT (the old access token deleted, the old refresh token marked
/// revoked, a new pair issued) and a changed password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_brings_what_changed_in_django() {
    let dir = tempfile::tempdir().unwrap();
    let h = harness(Backend::Sqlite).await.unwrap();
    let url = copy_of_fixture(dir.path());
    assert_first_import(&run(&h, &url, false).await);
    // argon2@ signs in here first: their hash is ours now.
    assert_eq!(
        login_status(&h, "argon2@example.com", "argon2-pass-1234").await,
        StatusCode::OK
    );
    eventually_scrypt("argon2@", || password_hash(&h, "argon2@example.com")).await;
    // What DOT does on a refresh, by hand; and bcrypt@ changes their password
    // at DOT (to "sha1@"'s hash, whose password is known).
    change_sqlite(
        &url,
        &[
            "PRAGMA foreign_keys = OFF",
            "UPDATE oauth2_provider_refreshtoken SET revoked = '2026-01-01 00:00:00', access_token_id = NULL WHERE token = 'live-refresh-pbkdf2'",
            "DELETE FROM oauth2_provider_accesstoken WHERE token = 'live-access-pbkdf2'",
            "INSERT INTO oauth2_provider_accesstoken (token, token_checksum, expires, scope, application_id, user_id, created, updated, resource) VALUES ('new-access-pbkdf2', '', '2100-01-01 00:00:00', 'read write', 1, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '[]')",
            "UPDATE users_customuser SET password = (SELECT password FROM users_customuser WHERE email = 'sha1@example.com') WHERE email = 'bcrypt@example.com'",
        ],
    )
    .await;
    let second = run(&h, &url, false).await;
    let text = second.to_string();
    assert_eq!(second.users.updated, 1, "{text}");
    assert_eq!(second.users.unchanged, 6, "{text}");
    assert_eq!(
        (second.access_tokens.imported, second.access_tokens.updated),
        (1, 1),
        "{text}"
    );
    assert_eq!(second.refresh_tokens.updated, 1, "{text}");
    assert!(!text.contains("live-access"), "{text}");
    assert!(!h.active("live-access-pbkdf2").await);
    assert!(h.active("new-access-pbkdf2").await);
    assert!(h.active("live-access-argon2").await);
    let r = refresh(&h, "live-refresh-pbkdf2").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    // The password changed at DOT is the one that works now; the hash upgraded
    // here for a user unchanged there stays.
    assert_eq!(
        login_status(&h, "bcrypt@example.com", "pbkdf2_sha1-pass-1234").await,
        StatusCode::OK
    );
    assert_eq!(
        login_status(&h, "bcrypt@example.com", "bcrypt_sha256-pass-1234").await,
        StatusCode::BAD_REQUEST
    );
    assert!(
        password_hash(&h, "argon2@example.com")
            .await
            .unwrap()
            .starts_with("$scrypt$")
    );
    // And a third run has nothing left to do.
    assert!(run(&h, &url, false).await.changed_nothing());
    h.cleanup().await;
}
