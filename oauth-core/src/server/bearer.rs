//! Bearer tokens presented to the auth server itself (RFC 6750 §2.1).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use crate::api::ApiError;
use crate::issuer::TokenInfo;

/// The token of an `Authorization: Bearer …` value.
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A request made with an active access token of an active user.
#[derive(Debug, Clone)]
pub(crate) struct UserToken(pub(crate) TokenInfo);

impl FromRequestParts<AppState> for UserToken {
    type Rejection = ApiError;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(ApiError::Unauthenticated {
                invalid_token: false,
            });
        };
        let token =
            value
                .to_str()
                .ok()
                .and_then(bearer_token)
                .ok_or(ApiError::Unauthenticated {
                    invalid_token: false,
                })?;
        let info = state
            .issuer
            .introspect(token)
            .await
            .map_err(|e| ApiError::internal(&e))?
            .filter(|info| info.user.is_some())
            .ok_or(ApiError::Unauthenticated {
                invalid_token: true,
            })?;
        Ok(Self(info))
    }
}
