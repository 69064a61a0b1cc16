//! Staff-only scopes (`AuthServer::staff_scopes`, default `admin`): how the auth
//! server tells a resource server that a user is staff. Only staff users get the
//! scope — by the authorization code grant or the password grant, never by client
//! credentials — and introspection drops it as soon as the user is no longer staff.
//! Each scenario runs on SQLite with the inline token reader, on SQLite through the
//! pool, and (with `TEST_DATABASE_URL`) on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine as _;
use common::browser::{Browser, ISSUER};
use common::{Backend, Harness, PASSWORD};
use oauth_core::pages::Pages;
use oauth_core::sea::sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{AuthServer, ClientRegistry as _, GrantType, UserFlags, UserStore as _};
use serde_json::json;
use sha2::Digest as _;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92ZR7gW0pQmUXyA6xKMbbj1kLsVs";
const REDIRECT: &str = "http://127.0.0.1/admin/callback";

/// Where token lookups run.
#[derive(Clone, Copy, Debug)]
enum Reads {
    Inline,
    Pool,
}

/// The harness with its router rebuilt to know the scope `admin`, and the clients
/// of these tests: `console` (confidential, first party, code + password + refresh,
/// `read write admin`, default `read write admin`) and `robot` (client credentials,
/// `read admin`).
async fn harness(backend: Backend, reads: Reads) -> Option<Harness> {
    let mut h = Harness::new(backend, common::lenient()).await?;
    let store = match reads {
        Reads::Inline => h.store.clone(),
        Reads::Pool => {
            // A second store on the same SQLite file, every lookup through sqlx.
            let row = h
                .store
                .connection()
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT file FROM pragma_database_list WHERE name = 'main'",
                ))
                .await
                .unwrap()
                .unwrap();
            let file: String = row.try_get("", "file").unwrap();
            let store = SeaOrmStore::connect(
                StoreConfig::new(format!("sqlite://{file}")).inline_reads(false),
            )
            .await
            .unwrap();
            Arc::new(store)
        }
    };
    h.router = AuthServer::from_store(store.clone())
        .pages(Pages::new(store.as_ref().clone()))
        .scopes("read write introspection admin".parse().unwrap())
        .password_hasher(h.hasher.clone())
        .clock(Arc::new(h.clock.clone()))
        .throttle(common::lenient())
        .issuer_url(ISSUER)
        .router()
        .unwrap();
    let grants = [
        GrantType::AuthorizationCode,
        GrantType::Password,
        GrantType::RefreshToken,
    ];
    let mut console = common::client_record(
        &h.hasher,
        "console",
        Some("console-secret"),
        &grants,
        "read write admin",
        &[REDIRECT],
    )
    .await;
    console.skip_authorization = true;
    h.store.register_client(console).await.unwrap();
    h.client(
        "robot",
        Some("robot-secret"),
        &[GrantType::ClientCredentials],
        "read admin",
    )
    .await;
    Some(h)
}

macro_rules! staff_scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite_inline { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = super::harness(super::Backend::Sqlite, super::Reads::Inline).await.unwrap();
                super::$name(&h).await;
                h.cleanup().await;
            }
        )* }
        mod sqlite_pool { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = super::harness(super::Backend::Sqlite, super::Reads::Pool).await.unwrap();
                super::$name(&h).await;
                h.cleanup().await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(h) = super::harness(super::Backend::Postgres, super::Reads::Inline).await else {
                    $crate::common::postgres_skipped();
                    return;
                };
                super::$name(&h).await;
                h.cleanup().await;
            }
        )* }
    };
}

staff_scenarios!(
    staff_user_gets_admin_by_code_and_by_password,
    non_staff_user_is_refused_admin,
    defaults_never_include_admin,
    client_credentials_never_get_admin,
    demoted_user_loses_admin_at_once,
);

fn authorize_query(scope: &str) -> String {
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER));
    form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", "console")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st-9")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish()
}

/// Signs `email` in and sends the authorization request; the redirect's parameters.
async fn authorize(
    h: &Harness,
    email: &str,
    scope: &str,
) -> std::collections::HashMap<String, String> {
    let mut b = Browser::new(h);
    b.sign_in(email).await;
    let page = b
        .get(&format!("/o/authorize/?{}", authorize_query(scope)))
        .await;
    assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
    assert!(page.location().starts_with(REDIRECT), "{}", page.location());
    page.redirect_params()
}

async fn password_grant(h: &Harness, email: &str, scope: Option<&str>) -> common::Reply {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", email),
        ("password", PASSWORD),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    h.post_form("/o/token/", Some(("console", "console-secret")), &form)
        .await
}

async fn staff_user_gets_admin_by_code_and_by_password(h: &Harness) {
    h.staff_user("boss@example.com").await;
    let params = authorize(h, "boss@example.com", "admin read write").await;
    assert_eq!(params.get("state").map(String::as_str), Some("st-9"));
    let code = params.get("code").expect("a code").clone();
    let r = h
        .post_form(
            "/o/token/",
            Some(("console", "console-secret")),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "admin read write");
    let info = h.introspect(&r.str("access_token")).await;
    assert_eq!(info["scope"], "admin read write");
    assert_eq!(info["username"], "boss@example.com");

    let r = password_grant(h, "boss@example.com", Some("read admin")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "read admin");
    assert_eq!(
        h.introspect(&r.str("access_token")).await["scope"],
        "read admin"
    );
}

async fn non_staff_user_is_refused_admin(h: &Harness) {
    h.user("ann@example.com").await;
    let params = authorize(h, "ann@example.com", "admin read write").await;
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(
        params.get("error_description").map(String::as_str),
        Some("The requested scope is for staff users only.")
    );
    assert_eq!(params.get("state").map(String::as_str), Some("st-9"));
    assert_eq!(params.get("iss").map(String::as_str), Some(ISSUER));
    assert!(!params.contains_key("code"));

    password_grant(h, "ann@example.com", Some("read admin"))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_scope", "error_description": "The requested scope is for staff users only."}),
        );
    // A wrong password says so, whatever the scope: no hint about the account.
    h.post_form(
        "/o/token/",
        Some(("console", "console-secret")),
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", "wrong"),
            ("scope", "admin"),
        ],
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}),
    );
    // Without the staff scope the same user is served.
    let params = authorize(h, "ann@example.com", "read").await;
    assert!(params.contains_key("code"), "{params:?}");
}

async fn defaults_never_include_admin(h: &Harness) {
    h.staff_user("boss@example.com").await;
    h.user("ann@example.com").await;
    for email in ["boss@example.com", "ann@example.com"] {
        let r = password_grant(h, email, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["scope"], "read write", "{email}");
    }
}

async fn client_credentials_never_get_admin(h: &Harness) {
    let r = h
        .post_form(
            "/o/token/",
            Some(("robot", "robot-secret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, &r.json["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_scope"))
    );
    let r = h
        .post_form(
            "/o/token/",
            Some(("robot", "robot-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "read");
}

/// boss@example.com made staff, and the reply (asserted 200) to its password grant
/// asking for `read admin`.
async fn staff_with_admin_token(h: &Harness) -> (i64, common::Reply) {
    let id = h.staff_user("boss@example.com").await;
    let r = password_grant(h, "boss@example.com", Some("read admin")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    (id, r)
}

/// Sets the user's `is_staff` flag straight in the store.
async fn set_staff(h: &Harness, id: i64, staff: bool) {
    h.store
        .set_user_flags(
            id,
            UserFlags {
                is_staff: Some(staff),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
}

async fn demoted_user_loses_admin_at_once(h: &Harness) {
    let (id, r) = staff_with_admin_token(h).await;
    let access = r.str("access_token");
    let refresh = r.str("refresh_token");
    assert_eq!(h.introspect(&access).await["scope"], "read admin");

    set_staff(h, id, false).await;
    let info = h.introspect(&access).await;
    assert_eq!(info["active"], true, "still a valid token: {info}");
    assert_eq!(info["scope"], "read");

    // A refresh keeps the stored scope; introspection still decides.
    let r = h
        .post_form(
            "/o/token/",
            Some(("console", "console-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let renewed = r.str("access_token");
    assert_eq!(h.introspect(&renewed).await["scope"], "read");

    // Made staff again, the tokens show it again.
    set_staff(h, id, true).await;
    assert_eq!(h.introspect(&renewed).await["scope"], "read admin");
}

/// On PostgreSQL, a demotion committed by one instance reaches another
/// instance's token lookup cache at once — through the `token-claims-change`
/// entry the demotion appends to the revocation log and its `NOTIFY` — even
/// with that cache's lifetime set to a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_demotion_on_one_instance_reaches_anothers_lookup_cache() {
    let Some(a) = harness(Backend::Postgres, Reads::Inline).await else {
        common::postgres_skipped();
        return;
    };
    let store = a
        .second_store(|c| c.token_cache(std::time::Duration::from_secs(60)))
        .await;
    let b = AuthServer::from_store(store.clone())
        .pages(Pages::new(store.as_ref().clone()))
        .scopes("read write introspection admin".parse().unwrap())
        .password_hasher(a.hasher.clone())
        .clock(Arc::new(a.clock.clone()))
        .throttle(common::lenient())
        .issuer_url(ISSUER)
        .router()
        .unwrap();
    let scope_on_b = async |token: &str| {
        use tower::ServiceExt as _;
        let req = axum::http::Request::post("/o/introspect/")
            .header("authorization", common::basic_header("rs-id", "rs-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(common::encode(&[("token", token)])))
            .unwrap();
        let res = b.clone().oneshot(req).await.unwrap();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(info["active"], true, "{info}");
        info["scope"].as_str().unwrap().to_owned()
    };
    let (id, r) = staff_with_admin_token(&a).await;
    let access = r.str("access_token");
    // B has looked the token up: its answer is cached for a minute.
    assert_eq!(scope_on_b(&access).await, "read admin");
    assert_eq!(scope_on_b(&access).await, "read admin");

    set_staff(&a, id, false).await;
    let demoted = std::time::Instant::now();
    while scope_on_b(&access).await != "read" {
        assert!(
            demoted.elapsed() < std::time::Duration::from_secs(1),
            "B still reports admin {:?} after the demotion",
            demoted.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    eprintln!("B dropped admin {:?} after the demotion", demoted.elapsed());
    a.cleanup().await;
}
