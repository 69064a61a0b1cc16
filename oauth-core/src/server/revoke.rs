//! `POST /o/revoke_token/` (RFC 7009).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oxide_auth::frontends::dev::QueryParameter;
use oxide_auth_axum::{OAuthRequest, WebError};

use super::client_auth;
use super::error::{OAuthError, OAuthErrorCode};
use super::token::{authenticate_client, form_body, missing};
use super::{AppState, ClientIp};
use crate::issuer::Revocation;

/// Revokes the token's whole grant: an access token takes its refresh token with it
/// and vice versa (RFC 7009 §2.1). `token_type_hint` is accepted and not needed, since
/// one digest lookup finds either kind.
pub(super) async fn revoke(
    State(state): State<AppState>,
    ip: ClientIp,
    req: Result<OAuthRequest, WebError>,
) -> Result<Response, OAuthError> {
    let (req, body) = form_body(&req)?;
    let presented = client_auth::presented(
        req.authorization_header(),
        body.unique_value("client_id").as_deref(),
        body.unique_value("client_secret").as_deref(),
    )?;
    let (client, _) = authenticate_client(&state, &ip, presented).await?;
    let token = body.unique_value("token").ok_or_else(|| missing("token"))?;
    match state
        .issuer
        .revoke(&client.client_id, &token)
        .await
        .map_err(|e| OAuthError::internal(&e))?
    {
        // §2.2: an unknown token is answered like a revoked one.
        Revocation::Revoked | Revocation::Unknown => Ok(StatusCode::OK.into_response()),
        Revocation::OtherClient => Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient)
            .describe("The token was issued to another client.")),
    }
}
