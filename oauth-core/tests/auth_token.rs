//! `POST /o/token/`: every grant and every error, over `Router::oneshot`, on SQLite
//! and (with `TEST_DATABASE_URL`) PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Harness, PASSWORD};
use oauth_core::{UserFlags, UserStore};
use serde_json::json;

scenarios!(
    password_grant_with_basic_and_body_credentials,
    wrong_password_and_unknown_user_look_alike,
    unknown_email_pays_one_kdf_run_like_a_wrong_password,
    inactive_user_cannot_sign_in,
    client_authentication_failures,
    request_errors,
    scope_negotiation,
    grant_not_allowed_for_client,
    refresh_rotates_and_replay_revokes_the_family,
    refresh_errors,
    client_credentials_grant,
    public_client_uses_client_id_only,
    trailing_slash_is_optional_and_bodies_are_limited,
);

async fn password_grant_with_basic_and_body_credentials(h: &Harness) {
    h.user("ann@example.com").await;
    let r = h.login("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    let keys: Vec<&str> = r
        .json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["expires_in"], 36000);
    assert_eq!(r.json["scope"], "read write");
    assert_eq!(r.str("access_token").len(), 43);
    assert_ne!(r.str("access_token"), r.str("refresh_token"));

    // Credentials in the body, and the email in another case.
    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "password"),
                ("username", "ANN@example.COM"),
                ("password", PASSWORD),
                ("client_id", "rs-id"),
                ("client_secret", "rs-secret"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let info = h.introspect(&r.str("access_token")).await;
    assert_eq!(info["username"], "ann@example.com");
    let user = h
        .store
        .user_by_email(&oauth_core::Email::parse("ann@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(user.last_login.is_some(), "login time recorded");
}

async fn wrong_password_and_unknown_user_look_alike(h: &Harness) {
    h.user("ann@example.com").await;
    let wrong = h.login("ann@example.com", "not-the-password").await;
    let unknown = h.login("nobody@example.com", PASSWORD).await;
    let garbage = h.login("not an email", PASSWORD).await;
    let expected =
        json!({"error": "invalid_grant", "error_description": "Invalid credentials given."});
    for r in [&wrong, &unknown, &garbage] {
        r.expect(StatusCode::BAD_REQUEST, expected.clone());
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}

async fn unknown_email_pays_one_kdf_run_like_a_wrong_password(h: &Harness) {
    h.user("ann@example.com").await;
    // The first request verifies the client secret with the KDF; later ones hit the cache.
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let before = h.hasher.stats().completed;
    h.login("ann@example.com", "wrong-password").await;
    let after_wrong = h.hasher.stats().completed;
    h.login("nobody@example.com", "wrong-password").await;
    let after_unknown = h.hasher.stats().completed;
    // Client secret checks are remembered, so each login costs exactly the password check.
    assert_eq!(after_wrong - before, after_unknown - after_wrong);
    assert!(after_unknown - after_wrong >= 1);
}

async fn inactive_user_cannot_sign_in(h: &Harness) {
    let id = h.user("ann@example.com").await;
    let token = h
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
    h.login("ann@example.com", PASSWORD).await.expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}),
    );
    assert!(
        !h.active(&token).await,
        "an inactive user's tokens are not honoured"
    );
}

async fn client_authentication_failures(h: &Harness) {
    h.user("ann@example.com").await;
    let form = [
        ("grant_type", "password"),
        ("username", "ann@example.com"),
        ("password", PASSWORD),
    ];
    // Basic: 401 with a Basic challenge; unknown client and wrong secret alike.
    for (id, secret) in [("rs-id", "wrong"), ("nope", "rs-secret"), ("rs-id", "")] {
        let r = h.post_form("/o/token/", Some((id, secret)), &form).await;
        r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth\""));
    }
    // Body: 401, no Basic challenge.
    let mut body = form.to_vec();
    body.extend([("client_id", "rs-id"), ("client_secret", "wrong")]);
    let r = h.post_form("/o/token/", None, &body).await;
    r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    assert_eq!(r.header("www-authenticate"), None);
    // No credentials at all.
    let r = h.post_form("/o/token/", None, &form).await;
    r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    // A confidential client without its secret.
    let mut body = form.to_vec();
    body.push(("client_id", "rs-id"));
    h.post_form("/o/token/", None, &body)
        .await
        .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    // Two methods at once.
    let mut body = form.to_vec();
    body.extend([("client_id", "rs-id"), ("client_secret", "rs-secret")]);
    let r = h
        .post_form("/o/token/", Some(("rs-id", "rs-secret")), &body)
        .await;
    assert_eq!(
        (r.status, r.str("error").as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Malformed Basic.
    let req = Request::post("/o/token/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Basic ###")
        .body(Body::from(common::encode(&form)))
        .unwrap();
    h.send(req)
        .await
        .expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
}

async fn request_errors(h: &Harness) {
    let basic = Some(("rs-id", "rs-secret"));
    let r = h
        .post_form("/o/token/", basic, &[("username", "a@b.co")])
        .await;
    r.expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": "Missing or repeated parameter: grant_type."}),
    );
    let r = h
        .post_form(
            "/o/token/",
            basic,
            &[("grant_type", "password"), ("grant_type", "password")],
        )
        .await;
    assert_eq!(r.str("error"), "invalid_request");
    h.post_form("/o/token/", basic, &[("grant_type", "urn:unknown")])
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    h.post_form(
        "/o/token/",
        basic,
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "unauthorized_client"}),
    );
    let r = h
        .post_form(
            "/o/token/",
            basic,
            &[("grant_type", "password"), ("username", "a@b.co")],
        )
        .await;
    r.expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": "Missing or repeated parameter: password."}),
    );
    // A JSON body is not what RFC 6749 §3.2 asks for.
    let req = Request::post("/o/token/")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            common::basic_header("rs-id", "rs-secret"),
        )
        .body(Body::from(r#"{"grant_type":"password"}"#))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(
        (r.status, r.str("error").as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // Invalid UTF-8 and garbage never produce a 500.
    let req = Request::post("/o/token/")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(vec![0xff, 0xfe, b'=', 0x00]))
        .unwrap();
    assert!(h.send(req).await.status.is_client_error());
}

async fn scope_negotiation(h: &Harness) {
    h.user("ann@example.com").await;
    let login = |scope: &'static str| async move {
        h.post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", scope),
            ],
        )
        .await
    };
    let r = login("read").await;
    assert_eq!(
        (r.status, r.json["scope"].as_str()),
        (StatusCode::OK, Some("read"))
    );
    let r = login("write read").await;
    assert_eq!(r.json["scope"], "write read");
    assert_eq!(
        h.introspect(&r.str("access_token")).await["scope"],
        "write read"
    );
    for bad in ["admin", "read admin", "read\\write"] {
        login(bad)
            .await
            .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_scope"}));
    }
    // The public client is allowed "read" only.
    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("client_id", "spa"),
                ("scope", "write"),
            ],
        )
        .await;
    r.expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_scope"}));
}

async fn grant_not_allowed_for_client(h: &Harness) {
    h.post_form(
        "/o/token/",
        Some(("rs-id", "rs-secret")),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "unauthorized_client"}),
    );
    h.user("ann@example.com").await;
    h.post_form(
        "/o/token/",
        Some(("svc", "svc-secret")),
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", PASSWORD),
        ],
    )
    .await
    .expect(
        StatusCode::BAD_REQUEST,
        json!({"error": "unauthorized_client"}),
    );
}

async fn refresh(h: &Harness, client: (&str, &str), token: &str) -> common::Reply {
    h.post_form(
        "/o/token/",
        Some(client),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}

async fn refresh_rotates_and_replay_revokes_the_family(h: &Harness) {
    h.user("ann@example.com").await;
    let first = h.login("ann@example.com", PASSWORD).await;
    let second = refresh(h, ("rs-id", "rs-secret"), &first.str("refresh_token")).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.json);
    assert_eq!(second.header("cache-control"), Some("no-store"));
    assert_eq!(second.json["token_type"], "Bearer");
    assert_eq!(second.json["scope"], "read write");
    assert!(
        !h.active(&first.str("access_token")).await,
        "old access token retired"
    );
    assert!(h.active(&second.str("access_token")).await);

    // Body credentials work for refresh too (oxide-auth alone only reads Basic).
    let third = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &second.str("refresh_token")),
                ("client_id", "rs-id"),
                ("client_secret", "rs-secret"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(third.status, StatusCode::OK, "{:?}", third.json);
    assert_eq!(third.json["scope"], "read", "narrowed scope (RFC 6749 §6)");

    // Replaying the first refresh token: refused, and the whole family dies.
    refresh(h, ("rs-id", "rs-secret"), &first.str("refresh_token"))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    assert!(!h.active(&third.str("access_token")).await);
    refresh(h, ("rs-id", "rs-secret"), &third.str("refresh_token"))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
}

async fn refresh_errors(h: &Harness) {
    h.user("ann@example.com").await;
    let login = h.login("ann@example.com", PASSWORD).await;
    let rt = login.str("refresh_token");
    // Another client cannot use it, and trying does not consume it.
    refresh(h, ("other", "other-secret"), &rt)
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    // An access token is not a refresh token; unknown tokens are invalid.
    refresh(h, ("rs-id", "rs-secret"), &login.str("access_token"))
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    refresh(h, ("rs-id", "rs-secret"), "nope")
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
    // More scope than granted.
    let r = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "read admin"),
            ],
        )
        .await;
    r.expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_scope"}));
    h.post_form("/o/token/", Some(("rs-id", "rs-secret")), &[("grant_type", "refresh_token")])
        .await
        .expect(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "Missing or repeated parameter: refresh_token."}),
        );
    // Still usable after all the refusals.
    assert_eq!(
        refresh(h, ("rs-id", "rs-secret"), &rt).await.status,
        StatusCode::OK
    );
    // Expiry follows the server's clock.
    let rt = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("refresh_token");
    h.clock.advance(31 * 24 * 3600);
    refresh(h, ("rs-id", "rs-secret"), &rt)
        .await
        .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_grant"}));
}

async fn client_credentials_grant(h: &Harness) {
    let r = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert!(
        r.json.get("refresh_token").is_none(),
        "no refresh token (RFC 6749 §4.4.3)"
    );
    assert_eq!(
        r.json["expires_in"], 36000,
        "our expiry, not oxide-auth's ten minutes"
    );
    // The default leaves out the privileged `introspection`: asked for by name only.
    assert_eq!(r.json["scope"], "read");
    let info = h.introspect(&r.str("access_token")).await;
    assert_eq!(info["client_id"], "svc");
    assert!(
        info.get("username").is_none() && info.get("sub").is_none(),
        "{info}"
    );

    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "svc"),
                ("client_secret", "svc-secret"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.json["scope"].as_str()),
        (StatusCode::OK, Some("read"))
    );
    let r = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read introspection"),
            ],
        )
        .await;
    assert_eq!(r.json["scope"], "read introspection", "{:?}", r.json);
    h.post_form(
        "/o/token/",
        Some(("svc", "svc-secret")),
        &[("grant_type", "client_credentials"), ("scope", "write")],
    )
    .await
    .expect(StatusCode::BAD_REQUEST, json!({"error": "invalid_scope"}));
}

async fn public_client_uses_client_id_only(h: &Harness) {
    h.user("ann@example.com").await;
    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("client_id", "spa"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.json["scope"].as_str()),
        (StatusCode::OK, Some("read")),
        "{:?}",
        r.json
    );
    // A public client presenting a secret it does not have is refused.
    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("client_id", "spa"),
                ("client_secret", "x"),
            ],
        )
        .await;
    r.expect(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client"}));
    let rt = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("client_id", "spa"),
            ],
        )
        .await
        .str("refresh_token");
    let r = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "spa"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
}

async fn trailing_slash_is_optional_and_bodies_are_limited(h: &Harness) {
    h.user("ann@example.com").await;
    let r = h
        .post_form(
            "/o/token",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let big = "x".repeat(5000);
    let r = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[("grant_type", "password"), ("username", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json["error"], "invalid_request");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("4096")
    );
    let r = h
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
