//! Signing operators in at the auth server: the authorization request with
//! `state` and PKCE, the callback (`state`, `iss`, the code exchange, the `admin`
//! check) and signing out.
//!
//! Until the callback, the attempt (state, verifier, where to come back to) waits
//! in a sealed cookie that lives 10 minutes, not in the session table: a visit
//! without a session stores nothing, however many there are.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_core::pages::tower_sessions::Session;
use oauth_core::resource::AuthError;
use sha2::{Digest as _, Sha256};

use super::{
    ADMIN_SCOPE, Admin, CSRF_KEY, CheckedForm, REFUSED_TOKEN_KEY, REQUESTED_SCOPE, TOKEN_KEY,
    internal, keep_token, kept_token, message, random, refuse, same, sign_in_failed, staff_only,
    unavailable,
};
use crate::AppState;

/// How long a sign-in attempt may take, from the redirect to the callback.
const ATTEMPT_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// What the attempt's cookie is sealed for.
const ATTEMPT_PURPOSE: &str = "sign-in attempt";

/// A sign-in attempt, kept in its sealed cookie until the callback.
#[derive(serde::Serialize, serde::Deserialize)]
struct Attempt {
    state: String,
    verifier: String,
    next: String,
    /// Unix seconds after which the callback refuses it.
    expires: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The attempt cookie's name: `__Secure-` on https (Secure required); its path is
/// the console's, as the session's.
fn attempt_cookie(admin: &Admin) -> &'static str {
    if admin.0.https {
        "__Secure-rs_admin_signin"
    } else {
        "rs_admin_signin"
    }
}

/// The `Set-Cookie` of the attempt cookie: `value` for `max_age`, or its removal.
fn set_attempt_cookie(admin: &Admin, value: &str, max_age: Duration) -> Option<HeaderValue> {
    use oauth_core::pages::tower_sessions::cookie::{Cookie, SameSite, time};
    let cookie = Cookie::build((attempt_cookie(admin), value))
        .path("/admin/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(admin.0.https)
        .max_age(time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(0),
        ))
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// 302 to the auth server's authorization endpoint, remembering `state`, the PKCE
/// verifier and where to come back to in the sealed attempt cookie.
pub(super) fn start(admin: &Admin, uri: &OriginalUri) -> Response {
    let (Some(state), Some(verifier)) = (random(), random()) else {
        return internal(&"no randomness");
    };
    let next = match uri.0.query() {
        Some(q) => format!("{}?{q}", uri.0.path()),
        None => uri.0.path().to_owned(),
    };
    let attempt = Attempt {
        state: state.clone(),
        verifier: verifier.clone(),
        next,
        expires: unix_now() + ATTEMPT_LIFETIME.as_secs(),
    };
    let sealed = serde_json::to_vec(&attempt)
        .ok()
        .and_then(|json| admin.0.sealer.seal(ATTEMPT_PURPOSE, &json));
    let Some(cookie) = sealed.and_then(|s| set_attempt_cookie(admin, &s, ATTEMPT_LIFETIME)) else {
        return internal(&"could not seal the sign-in attempt");
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &admin.0.client_id)
        .append_pair("redirect_uri", &admin.0.redirect_uri)
        .append_pair("scope", REQUESTED_SCOPE)
        .append_pair("state", &state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let url = format!("{}/o/authorize/?{query}", admin.0.auth_server);
    let mut response = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The attempt of this browser's cookie: sealed by this process's key for an
/// attempt, and not expired.
fn attempt_of(admin: &Admin, headers: &HeaderMap) -> Option<Attempt> {
    let name = attempt_cookie(admin);
    let sealed = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)?;
    let json = admin.0.sealer.open(ATTEMPT_PURPOSE, sealed)?;
    let attempt: Attempt = serde_json::from_slice(&json).ok()?;
    (unix_now() < attempt.expires).then_some(attempt)
}

/// `GET /admin/callback`: [`callback`] with this browser's attempt, whose cookie
/// every answer removes — whatever the outcome, the attempt is over.
pub(super) async fn callback_once(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    query: Query<HashMap<String, String>>,
) -> Response {
    let Some(admin) = state.admin.clone() else {
        return staff_only();
    };
    let attempt = attempt_of(&admin, &headers);
    let mut response = callback(State(state), session, attempt, query).await;
    if let Some(clear) = set_attempt_cookie(&admin, "", Duration::ZERO) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// A `next` that stays in the console.
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with("/admin/") && !n.chars().any(|c| c.is_control() || c == '\\') => n,
        _ => "/admin/".to_owned(),
    }
}

/// The authorization response, for the browser's `attempt`.
async fn callback(
    State(state): State<AppState>,
    session: Session,
    attempt: Option<Attempt>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return staff_only();
    };
    let Some(Attempt {
        state: expected,
        verifier,
        next,
        ..
    }) = attempt
    else {
        return sign_in_failed("No sign-in was started from this browser, or it took too long.");
    };
    if !q.get("state").is_some_and(|s| same(s, &expected)) {
        return sign_in_failed("The answer does not belong to the sign-in started here.");
    }
    // RFC 9207: the answer must come from our auth server (mix-up defence).
    if q.get("iss").map(String::as_str) != Some(admin.0.issuer.as_str()) {
        return sign_in_failed("The answer does not come from the expected auth server.");
    }
    if let Some(error) = q.get("error") {
        if error == "access_denied" {
            return refuse(admin, &session, None, None).await;
        }
        return sign_in_failed("The auth server refused the sign-in.");
    }
    let Some(code) = q.get("code") else {
        return sign_in_failed("The answer has no authorization code.");
    };
    let token = match exchange(admin, code, &verifier).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match state.auth.0.authenticate(&token).await {
        Ok(p) if p.has_scope(ADMIN_SCOPE) => {}
        Ok(p) => return refuse(admin, &session, p.username, Some(token)).await,
        Err(AuthError::InvalidToken) => {
            return sign_in_failed("The auth server's token is not valid.");
        }
        Err(_) => return unavailable(),
    }
    // A new session id at sign-in (no fixation), a new CSRF token.
    let Some(csrf) = random() else {
        return internal(&"no randomness");
    };
    if let Err(e) = session.cycle_id().await {
        return internal(&e);
    }
    if let Err(r) = keep_token(admin, &session, TOKEN_KEY, &token).await {
        return r;
    }
    if let Err(e) = session.insert(CSRF_KEY, &csrf).await {
        return internal(&e);
    }
    Redirect::to(&safe_next(Some(next))).into_response()
}

/// The code for an access token at `/o/token/`, with Basic client credentials
/// (form-encoded, RFC 6749 §2.3.1) and the PKCE verifier.
async fn exchange(admin: &Admin, code: &str, verifier: &str) -> Result<String, Response> {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let response = admin
        .0
        .http
        .post(format!("{}/o/token/", admin.0.auth_server))
        .basic_auth(
            enc(&admin.0.client_id),
            Some(enc(admin.0.client_secret.secret())),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &admin.0.redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "auth server unreachable");
            unavailable()
        })?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        tracing::warn!(%status, error = %body["error"], "the code exchange was refused");
        return Err(sign_in_failed(
            "The auth server did not accept the sign-in. Start again.",
        ));
    }
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| internal(&"token response without access_token"))
}

/// `POST /admin/logout/`: revokes the console's token (RFC 7009) — or the one
/// of a user refused as not staff — and ends the session.
pub(super) async fn logout(
    State(state): State<AppState>,
    session: Session,
    _: CheckedForm,
) -> Response {
    let token = match state.admin.as_ref() {
        Some(admin) => match kept_token(admin, &session, TOKEN_KEY).await {
            Ok(Some(t)) => Some(t),
            Ok(None) => kept_token(admin, &session, REFUSED_TOKEN_KEY)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        },
        None => None,
    };
    if let (Some(admin), Some(token)) = (state.admin.as_ref(), token) {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let revoked = admin
            .0
            .http
            .post(format!("{}/o/revoke_token/", admin.0.auth_server))
            .basic_auth(
                enc(&admin.0.client_id),
                Some(enc(admin.0.client_secret.secret())),
            )
            .form(&[("token", token.as_str())])
            .send()
            .await;
        if let Err(e) = revoked {
            tracing::warn!(error = %e, "could not revoke the console's token");
        }
    }
    if let Err(e) = session.flush().await {
        return internal(&e);
    }
    message(
        StatusCode::OK,
        "Signed out",
        "You are signed out of the items console. Your session at the auth server is its own: sign out there too on a shared computer.",
        Some(("/admin/", "Sign in again")),
    )
}
