//! Introspection (RFC 7662), revocation (RFC 7009), metadata (RFC 8414), sign-up and
//! password change, over `Router::oneshot` on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Harness, PASSWORD};
use oauth_core::{UserFlags, UserStore};
use serde_json::{Value, json};

scenarios!(
    introspection_of_an_active_token,
    introspection_inactive_cases,
    introspection_caller_authentication,
    revocation,
    metadata_document,
    signup_success_json_and_form,
    signup_errors,
    password_change_errors,
    password_change_revokes_other_sessions,
    password_change_needs_the_write_scope,
);

const SHORT: &str = "This password is too short. It must contain at least 8 characters.";
const COMMON: &str = "This password is too common.";
const NUMERIC: &str = "This password is entirely numeric.";

async fn introspection_of_an_active_token(h: &Harness) {
    let id = h.user("ann@example.com").await;
    let now = oauth_core::Clock::unix(&h.clock);
    let r = h.login("ann@example.com", PASSWORD).await;
    let info = h.introspect(&r.str("access_token")).await;
    assert_eq!(
        info,
        json!({
            "active": true,
            "scope": "read write",
            "exp": now + 36000,
            "iat": now,
            "client_id": "rs-id",
            "username": "ann@example.com",
            "sub": id.to_string(),
            "token_type": "Bearer",
        })
    );
    // Any confidential client may introspect, by Basic or body credentials, and by GET.
    let r2 = h
        .post_form(
            "/o/introspect/",
            None,
            &[
                ("token", &r.str("access_token")),
                ("client_id", "other"),
                ("client_secret", "other-secret"),
            ],
        )
        .await;
    assert_eq!(r2.json, info);
    let get = Request::get(format!("/o/introspect/?token={}", r.str("access_token")))
        .header(
            header::AUTHORIZATION,
            common::basic_header("rs-id", "rs-secret"),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(get).await.json, info);
}

async fn introspection_inactive_cases(h: &Harness) {
    let id = h.user("ann@example.com").await;
    let inactive = json!({"active": false});
    assert_eq!(h.introspect("does-not-exist").await, inactive, "unknown");

    let login = h.login("ann@example.com", PASSWORD).await;
    assert_eq!(
        h.introspect(&login.str("refresh_token")).await,
        inactive,
        "a refresh token"
    );

    let revoked = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    h.post_form(
        "/o/revoke_token/",
        Some(("rs-id", "rs-secret")),
        &[("token", &revoked)],
    )
    .await;
    assert_eq!(h.introspect(&revoked).await, inactive, "revoked");

    let rotated = h.login("ann@example.com", PASSWORD).await;
    h.post_form(
        "/o/token/",
        Some(("rs-id", "rs-secret")),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rotated.str("refresh_token")),
        ],
    )
    .await;
    assert_eq!(
        h.introspect(&rotated.str("access_token")).await,
        inactive,
        "refreshed away"
    );

    let live = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    h.store
        .set_user_flags(
            id,
            UserFlags {
                is_active: Some(false),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(h.introspect(&live).await, inactive, "user deactivated");
    h.store
        .set_user_flags(
            id,
            UserFlags {
                is_active: Some(true),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
    assert!(h.active(&live).await);

    h.clock.advance(36_000);
    assert_eq!(h.introspect(&live).await, inactive, "expired");
}

/// A password-grant access token of `email` through rs-id with exactly `scope`.
async fn scoped_token(h: &Harness, email: &str, scope: &str) -> String {
    h.post_form(
        "/o/token/",
        Some(("rs-id", "rs-secret")),
        &[
            ("grant_type", "password"),
            ("username", email),
            ("password", PASSWORD),
            ("scope", scope),
        ],
    )
    .await
    .str("access_token")
}

fn bearer_req(bearer: &str, token: &str) -> Request<Body> {
    Request::post("/o/introspect/")
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap()
}

async fn introspection_caller_authentication(h: &Harness) {
    h.user("ann@example.com").await;
    let token = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    // No credentials: 401 JSON with a Basic challenge (DOT answered a bare 403 page).
    let r = h
        .post_form("/o/introspect/", None, &[("token", &token)])
        .await;
    r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth\""));
    h.post_form(
        "/o/introspect/",
        Some(("rs-id", "wrong")),
        &[("token", &token)],
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    // Public clients cannot introspect.
    h.post_form(
        "/o/introspect/",
        None,
        &[("token", &token), ("client_id", "spa")],
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    // A user's token gets the introspection scope only when it asks for it by
    // name; then it may introspect.
    let r = h.send(bearer_req(&token, &token)).await;
    r.expect(
        StatusCode::FORBIDDEN,
        json!({"error": "insufficient_scope"}),
    );
    let token = scoped_token(h, "ann@example.com", "read introspection").await;
    let bearer = |t: &str| bearer_req(t, &token);
    let r = h.send(bearer(&token)).await;
    assert_eq!(
        (r.status, &r.json["active"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    let read_only = scoped_token(h, "ann@example.com", "read").await;
    let r = h.send(bearer(&read_only)).await;
    r.expect(
        StatusCode::FORBIDDEN,
        json!({"error": "insufficient_scope"}),
    );
    let r = h.send(bearer("bogus")).await;
    r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"}));
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    // Missing token parameter, as DOT words it.
    h.post_form("/o/introspect/", Some(("rs-id", "rs-secret")), &[])
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Token parameter is missing."}),
        );
}

async fn revocation(h: &Harness) {
    h.user("ann@example.com").await;
    let basic = Some(("rs-id", "rs-secret"));
    // Revoking the access token takes the refresh token with it...
    let a = h.login("ann@example.com", PASSWORD).await;
    let r = h
        .post_form(
            "/o/revoke_token/",
            basic,
            &[("token", &a.str("access_token"))],
        )
        .await;
    assert_eq!((r.status, &r.json), (StatusCode::OK, &Value::Null));
    let refresh = h
        .post_form(
            "/o/token/",
            basic,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &a.str("refresh_token")),
            ],
        )
        .await;
    refresh.expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    // ...and the refresh token takes the access token.
    let b = h.login("ann@example.com", PASSWORD).await;
    let r = h
        .post_form(
            "/o/revoke_token/",
            basic,
            &[
                ("token", &b.str("refresh_token")),
                ("token_type_hint", "refresh_token"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!h.active(&b.str("access_token")).await);
    // Unknown tokens: 200 (RFC 7009 §2.2).
    assert_eq!(
        h.post_form("/o/revoke_token/", basic, &[("token", "nope")])
            .await
            .status,
        StatusCode::OK
    );
    // Another client's token: refused, and still active.
    let c = h.login("ann@example.com", PASSWORD).await;
    let r = h
        .post_form(
            "/o/revoke_token/",
            Some(("other", "other-secret")),
            &[("token", &c.str("access_token"))],
        )
        .await;
    assert_eq!(
        (r.status, r.str("error").as_str()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    assert!(h.active(&c.str("access_token")).await);
    // Client authentication is required; the token parameter too.
    h.post_form(
        "/o/revoke_token/",
        None,
        &[("token", &c.str("access_token"))],
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    h.post_form(
        "/o/revoke_token/",
        Some(("rs-id", "bad")),
        &[("token", &c.str("access_token"))],
    )
    .await
    .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    let r = h.post_form("/o/revoke_token/", basic, &[]).await;
    assert_eq!(r.str("error"), "invalid_request");
    assert!(h.active(&c.str("access_token")).await);
}

async fn metadata_document(h: &Harness) {
    let r = h
        .send(
            Request::get("/.well-known/oauth-authorization-server")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let base = "https://auth.example.test";
    assert_eq!(
        r.json,
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/o/authorize/"),
            "token_endpoint": format!("{base}/o/token/"),
            "introspection_endpoint": format!("{base}/o/introspect/"),
            "revocation_endpoint": format!("{base}/o/revoke_token/"),
            "scopes_supported": ["read", "write", "introspection"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "password", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "service_documentation": "https://docs.rs/oauth-core",
        })
    );
}

async fn signup_success_json_and_form(h: &Harness) {
    let body =
        json!({"email": "New.User@Example.COM", "password": PASSWORD, "password2": PASSWORD});
    let r = h.json(Method::POST, "/users/signup/", None, body).await;
    r.expect(
        StatusCode::CREATED,
        json!({"email": "New.User@example.com"}),
    );
    assert_eq!(
        h.login("new.user@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    let form = common::encode(&[
        ("email", "form@example.com"),
        ("password", PASSWORD),
        ("password2", PASSWORD),
    ]);
    let req = Request::post("/users/signup")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    h.send(req)
        .await
        .expect(StatusCode::CREATED, json!({"email": "form@example.com"}));
}

async fn signup_errors(h: &Harness) {
    let signup = |body: Value| h.json(Method::POST, "/users/signup/", None, body);
    signup(
        json!({"email": "a@example.com", "password": PASSWORD, "password2": "other-password-1"}),
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"password2": ["Password fields did not match"]}),
    );
    signup(json!({"email": "dup@example.com", "password": PASSWORD, "password2": PASSWORD})).await;
    signup(json!({"email": "DUP@example.com", "password": PASSWORD, "password2": PASSWORD}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field must be unique."]}),
        );
    signup(json!({"email": "b@example.com", "password": "123", "password2": "123"}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"password": [SHORT, COMMON, NUMERIC]}),
        );
    signup(json!({"email": "b@example.com", "password": "password", "password2": "password"}))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"password": [COMMON]}));
    signup(json!({"email": "margaret.hamilton@nasa.gov", "password": "hamilton-77", "password2": "hamilton-77"}))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"password": ["The password is too similar to the email address."]}));
    signup(json!({}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field is required."], "password": ["This field is required."], "password2": ["This field is required."]}),
        );
    // A bad email stops validation before the passwords are compared.
    signup(json!({"email": "not-an-email", "password": PASSWORD, "password2": "x"}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"email": ["Enter a valid email address."]}),
        );
    signup(json!({"email": "", "password": PASSWORD, "password2": null}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"email": ["This field may not be blank."], "password2": ["This field may not be null."]}),
        );
    signup(json!({"email": ["x"], "password": PASSWORD, "password2": PASSWORD}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"email": ["Not a valid string."]}),
        );
    // Bodies that are not objects, not JSON, or not a supported type.
    let r = signup(json!([1, 2])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let raw = |ct: &str, body: &str| {
        Request::post("/users/signup/")
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let r = h.send(raw("application/json", "{\"email\": ")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );
    let r = h.send(raw("text/plain", "hello")).await;
    r.expect(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        json!({"detail": "Unsupported media type \"text/plain\" in request."}),
    );
    let r = h
        .send(raw(
            "application/json",
            &format!("{{\"email\": \"{}\"}}", "x".repeat(5000)),
        ))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

async fn password_change_errors(h: &Harness) {
    h.user("ann@example.com").await;
    let token = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    async fn put(h: &Harness, t: Option<&str>, body: Value) -> common::Reply {
        h.json(Method::PUT, "/users/password/", t, body).await
    }
    let change = |t, body| put(h, t, body);
    let r = change(None, json!({})).await;
    r.expect(
        StatusCode::UNAUTHORIZED,
        json!({"detail": "Authentication credentials were not provided."}),
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let r = change(Some("bogus"), json!({})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // The reference nests this error; ours is DRF's flat shape.
    change(Some(&token), json!({"old_password": "wrong", "password": "new-plum-anchor-7", "password2": "new-plum-anchor-7"}))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"old_password": ["Old password is incorrect"]}));
    change(Some(&token), json!({"old_password": PASSWORD, "password": "new-plum-anchor-7", "password2": "new-plum-anchor-8"}))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"password2": ["Password fields did not match"]}));
    change(
        Some(&token),
        json!({"old_password": PASSWORD, "password": "123", "password2": "123"}),
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"password": [SHORT, COMMON, NUMERIC]}),
    );
    change(Some(&token), json!({"old_password": "wrong", "password": "123", "password2": "123"}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"old_password": ["Old password is incorrect"], "password": [SHORT, COMMON, NUMERIC]}),
        );
    change(Some(&token), json!({}))
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"old_password": ["This field is required."], "password": ["This field is required."], "password2": ["This field is required."]}),
        );
    // A client-credentials token has no user to change.
    let svc = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await
        .str("access_token");
    assert_eq!(
        change(Some(&svc), json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Nothing changed.
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn password_change_revokes_other_sessions(h: &Harness) {
    h.user("ann@example.com").await;
    let this = h.login("ann@example.com", PASSWORD).await;
    let other = h.login("ann@example.com", PASSWORD).await;
    let new = "new-plum-anchor-7";
    let r = h
        .json(
            Method::PATCH,
            "/users/password",
            Some(&this.str("access_token")),
            json!({"old_password": PASSWORD, "password": new, "password2": new}),
        )
        .await;
    r.expect(StatusCode::OK, json!({}));
    assert!(
        h.active(&this.str("access_token")).await,
        "the session that changed it stays"
    );
    assert!(
        !h.active(&other.str("access_token")).await,
        "other sessions end"
    );
    let r = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &other.str("refresh_token")),
            ],
        )
        .await;
    r.expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.login("ann@example.com", new).await.status, StatusCode::OK);
}

async fn password_change_needs_the_write_scope(h: &Harness) {
    h.user("ann@example.com").await;
    let read_only = scoped_token(h, "ann@example.com", "read").await;
    let new = "quartz-lantern-51";
    h.json(
        Method::PUT,
        "/users/password/",
        Some(&read_only),
        json!({"old_password": PASSWORD, "password": new, "password2": new}),
    )
    .await
    .expect(
        StatusCode::FORBIDDEN,
        json!({"detail": "You do not have permission to perform this action."}),
    );
    // Nothing changed: the old password still signs in.
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}
