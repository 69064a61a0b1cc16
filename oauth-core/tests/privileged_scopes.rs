//! Privileged scopes (issue 19, hole 2): `introspection` and `admin` are granted
//! only to a confidential client registered with them by name — never as a
//! default, never to a public client, never through an empty registration. Every
//! kind of client asks for each of them by name in every grant; what is refused is
//! `invalid_scope`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use base64::Engine as _;
use common::browser::{Browser, Page};
use common::{Backend, Harness, PASSWORD, Reply};
use oauth_core::{
    ClientRegistry as _, GrantType, TokenFamily, TokenHash, TokenKind, TokenRecord,
    TokenStore as _, UserStore as _,
};
use serde_json::json;
use sha2::Digest as _;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92ZR7gW0pQmUXyA6xKMbbj1kLsVs";
const REDIRECT: &str = "http://127.0.0.1/cb";
const BOSS: &str = "boss@example.com";
const PRIVILEGED: [&str; 2] = ["introspection", "admin"];

/// The clients of these tests, each with every grant its kind may use:
/// - `pub-all`: public, registered with every scope (as a client imported or
///   registered before the fix may be);
/// - `conf-plain`: confidential, `read write`;
/// - `conf-empty`: confidential, registered with no scope;
/// - `conf-priv`: confidential, `read write introspection admin`, first party.
const PUBLIC: &str = "pub-all";
const CONF_CLIENTS: [&str; 3] = ["conf-plain", "conf-empty", "conf-priv"];

fn secret_of(id: &str) -> Option<String> {
    (id != PUBLIC).then(|| format!("{id}-secret"))
}

/// The server knows `read write introspection admin` (the example's `SCOPES`), with
/// the default privileged scopes; `boss@example.com` is staff, so a refusal of
/// `admin` below is the scope rule's, not the staff rule's.
async fn harness() -> Harness {
    let h = Harness::build(Backend::Sqlite, common::lenient(), |s| {
        s.scopes("read write introspection admin".parse().unwrap())
    })
    .await
    .unwrap();
    let all = [
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
    ];
    let conf = [
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
        GrantType::ClientCredentials,
    ];
    for (id, grants, scope) in [
        (PUBLIC, &all[..], "read write introspection admin"),
        ("conf-plain", &conf[..], "read write"),
        ("conf-empty", &conf[..], ""),
        ("conf-priv", &conf[..], "read write introspection admin"),
    ] {
        let secret = secret_of(id);
        let mut c = common::client_record(
            &h.hasher,
            id,
            secret.as_deref(),
            grants,
            "read",
            &[REDIRECT],
        )
        .await;
        c.allowed_scope = scope.parse().unwrap();
        c.default_scope = scope.parse().unwrap();
        c.skip_authorization = true;
        h.store.register_client(c).await.unwrap();
    }
    h.staff_user(BOSS).await;
    h
}

/// A token request by `id`: Basic auth for a confidential client, `client_id` in
/// the body for the public one.
async fn token(h: &Harness, id: &str, form: &[(&str, &str)]) -> Reply {
    let secret = secret_of(id);
    let mut form = form.to_vec();
    if secret.is_none() {
        form.push(("client_id", id));
    }
    h.post_form("/o/token/", secret.as_deref().map(|s| (id, s)), &form)
        .await
}

async fn password(h: &Harness, id: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", BOSS),
        ("password", PASSWORD),
    ];
    form.extend(scope.map(|s| ("scope", s)));
    token(h, id, &form).await
}

async fn client_credentials(h: &Harness, id: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(scope.map(|s| ("scope", s)));
    token(h, id, &form).await
}

fn assert_invalid_scope(r: &Reply, what: &str) {
    assert_eq!(
        (r.status, &r.json["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_scope")),
        "{what}: {}",
        r.json
    );
    assert!(r.json.get("access_token").is_none(), "{what}");
}

fn assert_granted(r: &Reply, scope: &str, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.json);
    assert_eq!(r.json["scope"], scope, "{what}");
}

#[tokio::test]
async fn password_grant_gives_privileged_scopes_only_to_a_confidential_client_registered_with_them()
{
    let h = harness().await;
    for scope in PRIVILEGED {
        for id in [PUBLIC, "conf-plain", "conf-empty"] {
            let r = password(&h, id, Some(scope)).await;
            assert_invalid_scope(&r, &format!("{id} asking for {scope}"));
            let r = password(&h, id, Some(&format!("read {scope}"))).await;
            assert_invalid_scope(&r, &format!("{id} asking for read {scope}"));
        }
        let r = password(&h, "conf-priv", Some(scope)).await;
        assert_granted(&r, scope, "conf-priv");
    }
    // The refusal says why.
    let r = password(&h, PUBLIC, Some("introspection")).await;
    assert!(
        r.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("privileged")),
        "{}",
        r.json
    );
    h.cleanup().await;
}

#[tokio::test]
async fn a_request_without_scope_gets_the_ordinary_default() {
    let h = harness().await;
    // An empty registration means the server's ordinary scopes.
    for id in [PUBLIC, "conf-plain", "conf-empty", "conf-priv"] {
        let r = password(&h, id, None).await;
        assert_granted(&r, "read write", id);
    }
    for id in CONF_CLIENTS {
        let r = client_credentials(&h, id, None).await;
        assert_granted(&r, "read write", &format!("client credentials, {id}"));
    }
    let r = password(&h, "conf-empty", Some("read write")).await;
    assert_granted(
        &r,
        "read write",
        "conf-empty asking for its ordinary scopes",
    );
    h.cleanup().await;
}

#[tokio::test]
async fn client_credentials_give_privileged_scopes_only_when_registered() {
    let h = harness().await;
    for id in ["conf-plain", "conf-empty"] {
        for scope in PRIVILEGED {
            let r = client_credentials(&h, id, Some(scope)).await;
            assert_invalid_scope(&r, &format!("{id} asking for {scope}"));
        }
    }
    let r = client_credentials(&h, "conf-priv", Some("introspection")).await;
    assert_granted(&r, "introspection", "conf-priv");
    // That token may introspect; a plain one may not.
    let plain = client_credentials(&h, "conf-plain", Some("read")).await;
    assert_granted(&plain, "read", "conf-plain");
    let ask = |bearer: String| {
        let h = &h;
        async move {
            use axum::body::Body;
            use axum::http::{Request, header};
            h.send(
                Request::post("/o/introspect/")
                    .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("token=x"))
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(ask(r.str("access_token")).await.status, StatusCode::OK);
    assert_ne!(ask(plain.str("access_token")).await.status, StatusCode::OK);
    // `admin` is also staff-only: a client acting for itself never has it.
    let r = client_credentials(&h, "conf-priv", Some("admin")).await;
    assert_invalid_scope(&r, "conf-priv asking for admin by client credentials");
    // A public client has no client credentials grant at all.
    let r = client_credentials(&h, PUBLIC, Some("introspection")).await;
    assert_ne!(r.status, StatusCode::OK, "{}", r.json);
    h.cleanup().await;
}

fn authorize_query(client_id: &str, scope: &str) -> String {
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER));
    form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish()
}

/// The authorization endpoint's refusal: no code, `invalid_scope` — by a redirect
/// to the client or on the server's own error page.
fn assert_refused_at_authorize(page: &Page, what: &str) {
    if page.status.is_redirection() {
        let params = page.redirect_params();
        assert!(!params.contains_key("code"), "{what}: {params:?}");
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("invalid_scope"),
            "{what}: {params:?}"
        );
    } else {
        assert!(page.status.is_client_error(), "{what}: {}", page.status);
        assert!(page.body.contains("invalid_scope"), "{what}: {}", page.body);
    }
}

#[tokio::test]
async fn authorization_code_grant_gives_privileged_scopes_only_to_a_confidential_client_registered_with_them()
 {
    let h = harness().await;
    let mut b = Browser::new(&h);
    b.sign_in(BOSS).await;
    for scope in PRIVILEGED {
        for id in [PUBLIC, "conf-plain", "conf-empty"] {
            let page = b
                .get(&format!("/o/authorize/?{}", authorize_query(id, scope)))
                .await;
            assert_refused_at_authorize(&page, &format!("{id} asking for {scope}"));
        }
        // The resource server's own confidential client, registered with it.
        let page = b
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query("conf-priv", &format!("{scope} read"))
            ))
            .await;
        assert_eq!(page.status, StatusCode::FOUND, "{}", page.body);
        let code = page.redirect_params().get("code").cloned().expect("a code");
        let r = token(
            &h,
            "conf-priv",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_granted(&r, &format!("{scope} read"), "conf-priv by code");
    }
    h.cleanup().await;
}

/// A refresh token of `client_id` for boss carrying `scope`, put straight in the
/// store: what a token issued before the fix (or before the client lost the scope)
/// is.
async fn stored_refresh_token(h: &Harness, client_id: &str, scope: &str) -> String {
    let user = h
        .store
        .user_by_email(&oauth_core::Email::parse(BOSS).unwrap())
        .await
        .unwrap()
        .unwrap();
    let plain = oauth_core::generate_token().unwrap();
    let now = chrono::Utc::now().timestamp();
    h.store
        .insert_tokens(&[TokenRecord {
            hash: TokenHash::of(&plain),
            kind: TokenKind::Refresh,
            client_id: client_id.into(),
            user_id: Some(user.id),
            scope: scope.parse().unwrap(),
            family: TokenFamily::generate().unwrap(),
            issued_at: now,
            expires_at: now + 3600,
            revoked_at: None,
        }])
        .await
        .unwrap();
    plain
}

async fn refresh(h: &Harness, id: &str, refresh_token: &str, scope: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    form.extend(scope.map(|s| ("scope", s)));
    token(h, id, &form).await
}

#[tokio::test]
async fn refresh_grant_renews_privileged_scopes_only_for_a_client_that_may_have_them() {
    let h = harness().await;
    for scope in PRIVILEGED {
        for id in [PUBLIC, "conf-plain", "conf-empty"] {
            let rt = stored_refresh_token(&h, id, &format!("read {scope}")).await;
            let r = refresh(&h, id, &rt, Some(scope)).await;
            assert_invalid_scope(&r, &format!("{id} refreshing {scope} by name"));
            let r = refresh(&h, id, &rt, None).await;
            assert_invalid_scope(&r, &format!("{id} refreshing read {scope}"));
            // What the client may have is renewed.
            let r = refresh(&h, id, &rt, Some("read")).await;
            assert_granted(&r, "read", &format!("{id} refreshing read"));
        }
        let r = password(&h, "conf-priv", Some(&format!("read {scope}"))).await;
        assert_granted(&r, &format!("read {scope}"), "conf-priv");
        let r = refresh(&h, "conf-priv", &r.str("refresh_token"), Some(scope)).await;
        assert_granted(&r, scope, "conf-priv refreshing");
    }
    h.cleanup().await;
}
