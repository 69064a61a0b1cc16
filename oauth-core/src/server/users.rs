//! The account APIs: `POST /users/signup/` and `PUT|PATCH /users/password/`, with
//! Django REST framework's validation order and error shapes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::ClientIp;
use super::bearer::UserToken;
use super::throttle::Refused;
use crate::api::{ApiError, CharField, FieldErrors, parse_body};
use crate::email::Email;
use crate::secret::Password;
use crate::store::{NewUser, StoreError};

const NOT_UNIQUE: &str = "This field must be unique.";
const MISMATCH: &str = "Password fields did not match";
const WRONG_OLD: &str = "Old password is incorrect";

fn check_password(
    state: &AppState,
    name: &str,
    password: &str,
    email: Option<&str>,
    errors: &mut FieldErrors,
) {
    for problem in state.policy.check(password, email) {
        errors.add(name, problem.to_string());
    }
}

/// A sign-up, as JSON or a form.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignupRequest {
    email: String,
    password: String,
    /// The password again.
    password2: String,
}

/// A password change, as JSON or a form.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PasswordChangeRequest {
    old_password: String,
    password: String,
    /// The new password again.
    password2: String,
}

/// The account created.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SignedUp {
    email: String,
}

/// `{}`: the password was changed.
#[cfg(feature = "openapi")]
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PasswordChanged {}

/// `POST /users/signup/` → 201 `{"email"}`. Rate-limited per source address
/// ([`ThrottleConfig::signups_per_ip`](super::ThrottleConfig::signups_per_ip)), each
/// request counted before any work, as DRF's throttles run before the view.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = super::paths::SIGNUP,
    tag = "users",
    request_body(content(
        (SignupRequest = "application/json"),
        (SignupRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Signed up.", body = SignedUp),
        crate::openapi::DrfErrors,
    ),
))]
pub(super) async fn signup(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state
        .throttle
        .take_signup(ip.0)
        .map_err(ApiError::Throttled)?;
    let fields = parse_body(&headers, body)?;
    let mut errors = FieldErrors::default();
    // Field validation first, object validation (the passwords match) only after.
    let email = CharField::new("email")
        .read(&fields, &mut errors)
        .and_then(|raw| {
            Email::parse(&raw)
                .map_err(|e| errors.add("email", e.to_string()))
                .ok()
        });
    let password = CharField::new("password").read(&fields, &mut errors);
    let password2 = CharField::new("password2").read(&fields, &mut errors);
    if let Some(email) = &email {
        let taken = state
            .users
            .user_by_email(email)
            .await
            .map_err(|e| ApiError::internal(&e))?
            .is_some();
        if taken {
            errors.add("email", NOT_UNIQUE);
        }
    }
    if let Some(pw) = &password {
        check_password(
            &state,
            "password",
            pw,
            email.as_ref().map(Email::as_str),
            &mut errors,
        );
    }
    errors.into_result()?;
    let (Some(email), Some(password), Some(password2)) = (email, password, password2) else {
        return Err(ApiError::internal(
            &"signup fields vanished after validation",
        ));
    };
    if password != password2 {
        return Err(FieldErrors::single("password2", MISMATCH));
    }

    let hash = state
        .hasher
        .hash(&Password::new(password))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let user = state
        .users
        .create_user(NewUser::new(email, hash, state.clock.now()))
        .await
        .map_err(|e| match e {
            // Lost a race with a concurrent sign-up of the same address.
            StoreError::Conflict => FieldErrors::single("email", NOT_UNIQUE),
            other => ApiError::internal(&other),
        })?;
    tracing::info!(user_id = user.id, "user signed up");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "email": user.email.as_str() })),
    )
        .into_response())
}

/// `PUT|PATCH /users/password/` → 200 `{}`. Every token of the user is revoked
/// except those of the grant that made the request: the session that changed the
/// password stays signed in, every other session must sign in again.
#[cfg_attr(feature = "openapi", utoipa::path(
    method(put, patch),
    path = super::paths::PASSWORD,
    tag = "users",
    request_body(content(
        (PasswordChangeRequest = "application/json"),
        (PasswordChangeRequest = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed; the user's other sessions end.", body = PasswordChanged),
        crate::openapi::DrfErrors,
        crate::openapi::DrfAuthErrors,
    ),
))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    ip: ClientIp,
    UserToken(token): UserToken,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = parse_body(&headers, body)?;
    let Some(token_user) = token.user.as_ref() else {
        return Err(ApiError::Unauthenticated {
            invalid_token: true,
        });
    };
    // Changing the password is a write: a read-only token may not do it.
    if !token.scope.contains("write") {
        return Err(ApiError::Detail(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform this action.".into(),
        ));
    }
    let user = state
        .users
        .user_by_id(token_user.id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::Unauthenticated {
            invalid_token: true,
        })?;
    let account = user.email.key();
    let keys = ip.account_keys(&account);
    state.throttle.check(&keys).await.map_err(|r| match r {
        Refused::Wait(wait) => ApiError::Throttled(wait),
        Refused::Store(e) => ApiError::internal(&e),
    })?;

    let mut errors = FieldErrors::default();
    let old = CharField::new("old_password").read(&fields, &mut errors);
    let password = CharField::new("password").read(&fields, &mut errors);
    let password2 = CharField::new("password2").read(&fields, &mut errors);
    if let Some(old) = old {
        let ok = state
            .hasher
            .verify(&Password::new(old), user.password_hash.as_deref())
            .await
            .map_err(|e| ApiError::internal(&e))?;
        if !ok {
            crate::metrics::auth_failure("password");
            state.throttle.fail(&keys).await;
            errors.add("old_password", WRONG_OLD);
        }
    }
    if let Some(pw) = &password {
        check_password(
            &state,
            "password",
            pw,
            Some(user.email.as_str()),
            &mut errors,
        );
    }
    errors.into_result()?;
    let (Some(password), Some(password2)) = (password, password2) else {
        return Err(ApiError::internal(
            &"password fields vanished after validation",
        ));
    };
    if password != password2 {
        return Err(FieldErrors::single("password2", MISMATCH));
    }

    let hash = state
        .hasher
        .hash(&Password::new(password))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    // Codes issued with the old password die first (`GrantStore::void_codes`), then
    // the new hash and the end of the other sessions, in one transaction.
    state
        .void_codes(user.id, None)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let revoked = state
        .users
        .set_password_hash_and_revoke(
            user.id,
            &hash,
            state.tokens.as_ref(),
            Some(&token.family),
            state.clock.unix(),
        )
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(user_id = user.id, revoked, "password changed");
    Ok(Json(serde_json::json!({})).into_response())
}
