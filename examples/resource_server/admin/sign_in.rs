//! Signing operators in at the auth server: the authorization request with
//! `state` and PKCE, the callback (`state`, `iss`, the code exchange, the `admin`
//! check) and signing out.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_core::pages::tower_sessions::Session;
use oauth_core::resource::AuthError;
use sha2::{Digest as _, Sha256};

use super::{
    ADMIN_SCOPE, Admin, CSRF_KEY, CheckedForm, NEXT_KEY, REFUSED_TOKEN_KEY, REQUESTED_SCOPE,
    STATE_KEY, TOKEN_KEY, VERIFIER_KEY, internal, message, random, refuse, same, sign_in_failed,
    staff_only, unavailable,
};
use crate::AppState;

/// 302 to the auth server's authorization endpoint, remembering `state`, the PKCE
/// verifier and where to come back to.
pub(super) async fn start(admin: &Admin, session: &Session, uri: &OriginalUri) -> Response {
    let (Some(state), Some(verifier)) = (random(), random()) else {
        return internal(&"no randomness");
    };
    let next = match uri.0.query() {
        Some(q) => format!("{}?{q}", uri.0.path()),
        None => uri.0.path().to_owned(),
    };
    for (key, value) in [
        (STATE_KEY, &state),
        (VERIFIER_KEY, &verifier),
        (NEXT_KEY, &next),
    ] {
        if let Err(e) = session.insert(key, value).await {
            return internal(&e);
        }
    }
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
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// A `next` that stays in the console.
fn safe_next(next: Option<String>) -> String {
    match next {
        Some(n) if n.starts_with("/admin/") && !n.chars().any(|c| c.is_control() || c == '\\') => n,
        _ => "/admin/".to_owned(),
    }
}

/// `GET /admin/callback`: the authorization response.
pub(super) async fn callback(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(admin) = state.admin.as_ref() else {
        return staff_only();
    };
    // One use: whatever the outcome, this sign-in attempt is over.
    let (expected, verifier, next) = match (
        session.remove::<String>(STATE_KEY).await,
        session.remove::<String>(VERIFIER_KEY).await,
        session.remove::<String>(NEXT_KEY).await,
    ) {
        (Ok(s), Ok(v), Ok(n)) => (s, v, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return internal(&e),
    };
    let (Some(expected), Some(verifier)) = (expected, verifier) else {
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
    for (key, value) in [(TOKEN_KEY, &token), (CSRF_KEY, &csrf)] {
        if let Err(e) = session.insert(key, value).await {
            return internal(&e);
        }
    }
    Redirect::to(&safe_next(next)).into_response()
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
    let token = match session.get::<String>(TOKEN_KEY).await {
        Ok(Some(t)) => Ok(Some(t)),
        Ok(None) => session.get::<String>(REFUSED_TOKEN_KEY).await,
        Err(e) => Err(e),
    };
    if let (Some(admin), Ok(Some(token))) = (state.admin.as_ref(), token) {
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
