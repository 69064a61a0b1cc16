//! A Django OAuth Toolkit resource server in front of our auth server (issue 13,
//! "interop both ways"): our introspection answer read with DOT 3.4's own rules
//! (`OAuth2Validator._get_token_from_authentication_server` and
//! `AccessToken.is_valid`), transcribed here so the test needs no Python.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Harness, PASSWORD};
use serde_json::Value;

/// What DOT makes of an introspection answer: `None` when it refuses the token,
/// else (username, scopes, expiry) as it stores them.
fn dot_reads(
    status: StatusCode,
    body: &Value,
    now: i64,
) -> Option<(Option<String>, Vec<String>, i64)> {
    // `response.status_code != 200` → None; `response.json()` must parse.
    if status != StatusCode::OK {
        return None;
    }
    let content = body.as_object()?;
    // `if "active" in content and content["active"] is True` — a JSON true only.
    if content.get("active") != Some(&Value::Bool(true)) {
        return None;
    }
    // `if "username" in content: get_or_create(USERNAME_FIELD=content["username"])`.
    let username = match content.get("username") {
        Some(Value::String(u)) => Some(u.clone()),
        Some(_) => return None,
        None => None,
    };
    // `datetime.fromtimestamp(content["exp"])`: a number of seconds.
    let expires = match content.get("exp") {
        Some(Value::Number(n)) => n.as_i64()?,
        Some(_) => return None,
        None => now + 36_000,
    };
    // `scope = content.get("scope", "")`, later `.split()`.
    let scope = match content.get("scope") {
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        None => vec![],
        Some(_) => return None,
    };
    // `aud`: absent, a string or a list of strings; DOT 3.4.1 then checks it
    // against the request URL: ours must leave it out.
    if content.contains_key("aud") {
        return None;
    }
    Some((username, scope, expires))
}

/// `AccessToken.is_valid(scopes)`: not expired, and every required scope held.
fn dot_is_valid(read: &(Option<String>, Vec<String>, i64), required: &[&str], now: i64) -> bool {
    read.2 > now && required.iter().all(|r| read.1.iter().any(|s| s == r))
}

async fn a_dot_resource_server_accepts_our_tokens(h: &Harness) {
    let id = h.user("ann@example.com").await;
    let r = h.login("ann@example.com", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let token = r.str("access_token");
    let now = chrono::Utc::now().timestamp();

    // RESOURCE_SERVER_INTROSPECTION_CREDENTIALS: a form `token=…` with Basic.
    let basic = h
        .post_form(
            "/o/introspect/",
            Some(("rs-id", "rs-secret")),
            &[("token", &token)],
        )
        .await;
    let read = dot_reads(basic.status, &basic.json, now).expect("DOT accepts the answer");
    assert_eq!(read.0.as_deref(), Some("ann@example.com"));
    assert!(dot_is_valid(&read, &["read", "write"], now), "{:?}", read);
    assert!(!dot_is_valid(&read, &["admin"], now));
    // Our extra fields do not disturb DOT, and `sub` is ours.
    assert_eq!(basic.json["sub"], id.to_string());

    // RESOURCE_SERVER_AUTH_TOKEN: a bearer token with the introspection scope.
    let rs = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("scope", "introspection"),
            ],
        )
        .await;
    assert_eq!(rs.status, StatusCode::OK, "{}", rs.json);
    let bearer = rs.str("access_token");
    let req = axum::http::Request::post("/o/introspect/")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Bearer {bearer}"))
        .body(axum::body::Body::from(format!("token={token}")))
        .unwrap();
    let by_bearer = h.send(req).await;
    let read = dot_reads(by_bearer.status, &by_bearer.json, now).expect("DOT accepts it");
    assert_eq!(read.0.as_deref(), Some("ann@example.com"));

    // A revoked token: DOT sees `active` false and refuses it.
    let revoked = h
        .post_form(
            "/o/revoke_token/",
            Some(("rs-id", "rs-secret")),
            &[("token", &token)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after = h
        .post_form(
            "/o/introspect/",
            Some(("rs-id", "rs-secret")),
            &[("token", &token)],
        )
        .await;
    assert_eq!(dot_reads(after.status, &after.json, now), None);
}

scenarios!(a_dot_resource_server_accepts_our_tokens);
