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

/// An RFC 7009 §2.1 revocation request.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct RevocationRequest {
    /// The token to revoke.
    token: String,
    /// `access_token` or `refresh_token`; accepted, not needed.
    #[schema(nullable = false)]
    token_type_hint: Option<String>,
    /// Client authentication in the body, or a public client's id.
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// Client authentication in the body (instead of Basic).
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

/// Revokes the token's whole grant: an access token takes its refresh token with it
/// and vice versa (RFC 7009 §2.1). `token_type_hint` is accepted and not needed, since
/// one digest lookup finds either kind.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = super::paths::REVOKE,
    tag = "oauth",
    request_body(
        content = RevocationRequest,
        content_type = "application/x-www-form-urlencoded",
    ),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or no such token (RFC 7009 §2.2): an empty body."),
        crate::openapi::OAuthErrors,
    ),
))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    ip: ClientIp,
    cors: super::cors::CorsClient,
    req: Result<OAuthRequest, WebError>,
) -> Result<Response, OAuthError> {
    let (req, body) = form_body(&req)?;
    let presented = client_auth::presented(
        req.authorization_header(),
        body.unique_value("client_id").as_deref(),
        body.unique_value("client_secret").as_deref(),
    )?;
    let (client, _) = authenticate_client(&state, &ip, presented).await?;
    cors.authenticated(&client);
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
