//! The account APIs: `POST /users/signup/` and `PUT|PATCH /users/password/`, with
//! Django REST framework's validation order and error shapes.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AppState;
use super::ClientIp;
use super::bearer::UserToken;
use super::error::{ApiError, FieldErrors};
use super::throttle::Key;
use crate::email::Email;
use crate::secret::Password;
use crate::store::{NewUser, StoreError};

const REQUIRED: &str = "This field is required.";
const BLANK: &str = "This field may not be blank.";
const NULL: &str = "This field may not be null.";
const NOT_A_STRING: &str = "Not a valid string.";
const NOT_UNIQUE: &str = "This field must be unique.";
const MISMATCH: &str = "Password fields did not match";
const WRONG_OLD: &str = "Old password is incorrect";

/// A JSON object or form body as field name → value.
type Fields = BTreeMap<String, Value>;

/// Parses `application/json` or `application/x-www-form-urlencoded` into fields,
/// answering DRF's errors for anything else.
fn parse_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fields, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large.".into(),
            )
        } else {
            ApiError::Detail(
                StatusCode::BAD_REQUEST,
                "Could not read the request body.".into(),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => {
            if body.is_empty() {
                return Ok(Fields::new());
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
                Ok(_) => Err(ApiError::Detail(
                    StatusCode::BAD_REQUEST,
                    "Invalid data. Expected a dictionary.".into(),
                )),
                Err(e) => Err(ApiError::Detail(
                    StatusCode::BAD_REQUEST,
                    format!("JSON parse error - {e}").into(),
                )),
            }
        }
        "application/x-www-form-urlencoded" | "" => Ok(form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()),
        other => Err(ApiError::Detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type \"{other}\" in request.").into(),
        )),
    }
}

/// DRF `CharField`: required, not null, not blank; numbers are taken as strings.
fn char_field(fields: &Fields, name: &str, errors: &mut FieldErrors) -> Option<String> {
    let value = match fields.get(name) {
        None => {
            errors.add(name, REQUIRED);
            return None;
        }
        Some(Value::Null) => {
            errors.add(name, NULL);
            return None;
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            errors.add(name, NOT_A_STRING);
            return None;
        }
    };
    if value.is_empty() {
        errors.add(name, BLANK);
        return None;
    }
    Some(value)
}

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

/// `POST /users/signup/` → 201 `{"email"}`.
pub(super) async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = parse_body(&headers, body)?;
    let mut errors = FieldErrors::default();
    // Field validation first, object validation (the passwords match) only after.
    let email = char_field(&fields, "email", &mut errors).and_then(|raw| {
        Email::parse(&raw)
            .map_err(|e| errors.add("email", e.to_string()))
            .ok()
    });
    let password = char_field(&fields, "password", &mut errors);
    let password2 = char_field(&fields, "password2", &mut errors);
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
    let user = state
        .users
        .user_by_id(token_user.id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or(ApiError::Unauthenticated {
            invalid_token: true,
        })?;
    let keys = ip.with(Key::Account(user.email.as_str()));
    state.throttle.check(&keys).map_err(ApiError::Throttled)?;

    let mut errors = FieldErrors::default();
    let old = char_field(&fields, "old_password", &mut errors);
    let password = char_field(&fields, "password", &mut errors);
    let password2 = char_field(&fields, "password2", &mut errors);
    if let Some(old) = old {
        let ok = state
            .hasher
            .verify(&Password::new(old), user.password_hash.as_deref())
            .await
            .map_err(|e| ApiError::internal(&e))?;
        if !ok {
            state.throttle.fail(&keys);
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
    state
        .users
        .set_password_hash(user.id, &hash)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let revoked = state
        .issuer
        .revoke_user_tokens(user.id, Some(&token.family))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(user_id = user.id, revoked, "password changed");
    Ok(Json(serde_json::json!({})).into_response())
}
