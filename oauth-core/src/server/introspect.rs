//! `POST /o/introspect/` (RFC 7662), also answering `GET ?token=` as DOT does.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::bearer::bearer_token;
use super::client_auth;
use super::error::{OAuthError, OAuthErrorCode, no_store};
use super::form::FormRequest;
use super::token::authenticate_client;
use super::{AppState, ClientIp};
use crate::issuer::TokenInfo;
use crate::scope::Scope;
use crate::store::{ClientKind, UserId};

/// The scope a bearer token needs to call the endpoint.
pub const INTROSPECTION_SCOPE: &str = "introspection";

/// RFC 7662 §2.2 for an active token: DOT's fields plus `iat`, `sub`, `token_type`.
/// Serialised straight from the token's record: no field is copied first.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ActiveToken))]
pub(super) struct Active<'a> {
    /// Always `true`.
    #[cfg_attr(feature = "openapi", schema(value_type = bool))]
    active: bool,
    /// Space-separated scopes.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    scope: &'a Scope,
    /// Expiry, seconds since the epoch.
    exp: i64,
    /// Issue time, seconds since the epoch.
    iat: i64,
    client_id: &'a str,
    /// The user's email; absent for a client's own token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    username: Option<&'a str>,
    /// The user's id; absent for a client's own token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = false))]
    sub: Option<Subject>,
    /// Always `Bearer`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    token_type: &'static str,
}

/// `value` as a JSON response, written once into a buffer that holds an active
/// answer (axum's `Json` starts at 128 bytes and grows).
fn json(value: &impl Serialize) -> Response {
    let mut body = Vec::with_capacity(256);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => OAuthError::internal(&e).into_response(),
    }
}

/// A user id as RFC 7662's `sub`: a string.
struct Subject(UserId);

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// An inactive, unknown or revoked token: exactly `{"active": false}`.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = InactiveToken))]
#[serde(deny_unknown_fields)]
pub(super) struct Inactive {
    /// Always `false`.
    #[cfg_attr(feature = "openapi", schema(value_type = bool))]
    active: bool,
}

/// The introspection answer: active or not.
#[cfg(feature = "openapi")]
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
#[schema(as = Introspection)]
pub(super) enum IntrospectionAnswer<'a> {
    Active(Active<'a>),
    Inactive(Inactive),
}

/// An RFC 7662 §2.1 introspection request.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct IntrospectionRequest {
    /// The token to look at.
    token: String,
    /// `access_token` or `refresh_token`; accepted, not needed.
    #[schema(nullable = false)]
    #[param(required = false)]
    token_type_hint: Option<String>,
    /// Client authentication in the body (instead of Basic).
    #[schema(nullable = false)]
    #[param(required = false)]
    client_id: Option<String>,
    /// Client authentication in the body (instead of Basic).
    #[schema(nullable = false)]
    #[param(required = false)]
    client_secret: Option<String>,
}

/// `POST /o/introspect/`: the caller is a confidential client allowed the
/// `introspection` scope, or holds a bearer token with that scope.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = super::paths::INTROSPECT,
    tag = "oauth",
    request_body(
        content = IntrospectionRequest,
        content_type = "application/x-www-form-urlencoded",
    ),
    security(("client_basic" = []), ("bearer" = []), ()),
    responses(
        (status = 200, description = "RFC 7662 §2.2.", body = IntrospectionAnswer),
        crate::openapi::OAuthErrors,
        crate::openapi::BearerScopeError,
    ),
))]
pub(super) async fn introspect_post(
    state: State<AppState>,
    ip: ClientIp,
    req: Result<FormRequest, OAuthError>,
) -> Result<Response, OAuthError> {
    introspect(state, ip, req).await
}

/// `GET /o/introspect/?token=…`, as DOT answers it.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = super::paths::INTROSPECT,
    tag = "oauth",
    params(IntrospectionRequest),
    security(("client_basic" = []), ("bearer" = []), ()),
    responses(
        (status = 200, description = "RFC 7662 §2.2.", body = IntrospectionAnswer),
        crate::openapi::OAuthErrors,
        crate::openapi::BearerScopeError,
    ),
))]
pub(super) async fn introspect_get(
    state: State<AppState>,
    ip: ClientIp,
    req: Result<FormRequest, OAuthError>,
) -> Result<Response, OAuthError> {
    introspect(state, ip, req).await
}

fn answer(info: Option<&TokenInfo>) -> Response {
    let mut response = match info {
        Some(info) => json(&Active {
            active: true,
            scope: &info.scope,
            exp: info.expires_at,
            iat: info.issued_at,
            client_id: &info.client_id,
            username: info.user.as_ref().map(|u| u.email.as_str()),
            sub: info.user.as_ref().map(|u| Subject(u.id)),
            token_type: "Bearer",
        }),
        None => Json(Inactive { active: false }).into_response(),
    };
    no_store(&mut response);
    response
}

async fn introspect(
    State(state): State<AppState>,
    ip: ClientIp,
    req: Result<FormRequest, OAuthError>,
) -> Result<Response, OAuthError> {
    // The query of a GET (as DOT answers it), else the form body.
    let req = req?;
    let client_id = req.unique("client_id");
    let client_secret = req.unique("client_secret");
    authorize_caller(
        &state,
        &ip,
        req.authorization(),
        client_id.as_deref(),
        client_secret.as_deref(),
    )
    .await?;

    let token = req
        .unique("token")
        .ok_or_else(|| OAuthError::invalid_request("Token parameter is missing."))?;
    let info = state
        .issuer
        .introspect(&token)
        .await
        .map_err(|e| OAuthError::internal(&e))?;
    crate::metrics::introspected(info.is_some());
    Ok(answer(info.as_ref()))
}

/// Who passed [`authorize_caller`].
pub(super) enum Caller {
    /// A confidential client allowed the introspection scope.
    Client(std::sync::Arc<crate::store::Client>),
    /// The holder of this active token with the introspection scope.
    Bearer(Box<TokenInfo>),
}

/// Whether the caller may look at other parties' tokens: a confidential client
/// allowed the introspection scope (a resource server), or the holder of a token
/// with that scope. Also guards the revocation stream, which tells the same (and
/// asks again while it is open).
pub(super) async fn authorize_caller(
    state: &AppState,
    ip: &ClientIp,
    authorization: Option<&str>,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<Caller, OAuthError> {
    if let Some(token) = authorization.and_then(bearer_token) {
        let caller = state
            .issuer
            .introspect(token)
            .await
            .map_err(|e| OAuthError::internal(&e))?
            .ok_or_else(OAuthError::invalid_token)?;
        if !caller.scope.contains(INTROSPECTION_SCOPE) {
            return Err(OAuthError::new(OAuthErrorCode::InsufficientScope));
        }
        return Ok(Caller::Bearer(Box::new(caller)));
    }
    let presented = client_auth::presented(authorization, client_id, client_secret)?;
    let (client, _) = authenticate_client(state, ip, presented).await?;
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::invalid_client(true));
    }
    // RFC 7662 §4: not every client may look at every token. Only those allowed
    // the introspection scope (resource servers) may; an application a user
    // registered for themselves may not read other users' tokens.
    if !client.allowed_scope.contains(INTROSPECTION_SCOPE) {
        return Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient)
            .describe("This client may not introspect tokens."));
    }
    Ok(Caller::Client(client))
}
