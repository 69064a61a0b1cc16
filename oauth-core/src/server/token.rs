//! `POST /o/token/` (RFC 6749 §3.2): one dispatcher on `grant_type`.
//!
//! Client authentication, throttling and scope negotiation are shared; the
//! `refresh_token` and `client_credentials` grants are driven through oxide-auth's
//! state machines (request validation, client binding, scope checks), with our async
//! stores answering each step; the `password` grant is ours.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use oxide_auth::code_grant::client_credentials::{
    self, ClientCredentials, Input as CcInput, Output as CcOutput,
};
use oxide_auth::code_grant::error::AccessTokenErrorType;
use oxide_auth::code_grant::refresh::{
    self, Input as RefreshInput, Output as RefreshOutput, Refresh,
};
use oxide_auth::frontends::dev::{NormalizedParameter, QueryParameter};
use oxide_auth::primitives::grant::{Extensions, Grant};
use oxide_auth::primitives::issuer::{RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{BoundClient, PreGrant, RegisteredUrl};
use oxide_auth_axum::{OAuthRequest, WebError};
use serde::Serialize;

use super::client_auth::{self, Presented};
use super::error::{OAuthError, OAuthErrorCode, no_store};
use super::throttle::{Key, Refused, account_key};
use super::{AppState, ClientIp};
use crate::email::Email;
use crate::issuer::{GrantRequest, IssuedTokens, IssuerError, has_any};
use crate::scope::Scope;
use crate::secret::{Password, RefreshToken};
use crate::store::{Client, ClientKind, GrantType, TokenKind};

/// The RFC 6749 §5.1 token answer, in DOT's key order.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse<'a> {
    access_token: &'a str,
    /// Seconds.
    expires_in: i64,
    /// Always `Bearer`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^Bearer$"))]
    token_type: &'static str,
    /// Space-separated scopes.
    scope: String,
    /// Absent for `client_credentials`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    refresh_token: Option<&'a str>,
}

/// The grant types of the token endpoint.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types)]
enum GrantTypeSchema {
    password,
    refresh_token,
    client_credentials,
    authorization_code,
}

/// An RFC 6749 §3.2 token request: which parameters each `grant_type` needs.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct TokenRequest {
    #[schema(inline)]
    grant_type: GrantTypeSchema,
    /// `password`: the user's email.
    #[schema(nullable = false)]
    username: Option<String>,
    /// `password`: the user's password.
    #[schema(nullable = false)]
    password: Option<String>,
    /// `refresh_token`: the refresh token.
    #[schema(nullable = false)]
    refresh_token: Option<String>,
    /// `authorization_code`: the code.
    #[schema(nullable = false)]
    code: Option<String>,
    /// `authorization_code`: the redirect URI of the authorization request.
    #[schema(nullable = false)]
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (RFC 7636).
    #[schema(nullable = false)]
    code_verifier: Option<String>,
    /// Space-separated scopes (RFC 6749 §3.3).
    #[schema(nullable = false)]
    scope: Option<String>,
    /// Client authentication in the body, or a public client's id.
    #[schema(nullable = false)]
    client_id: Option<String>,
    /// Client authentication in the body (instead of Basic).
    #[schema(nullable = false)]
    client_secret: Option<String>,
}

impl std::fmt::Debug for TokenResponse<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn token_response(issued: &IssuedTokens) -> Response {
    let mut response = Json(TokenResponse {
        access_token: issued.access_token.secret(),
        expires_in: issued.expires_in,
        token_type: "Bearer",
        scope: issued.scope.to_string(),
        refresh_token: issued.refresh_token.as_ref().map(RefreshToken::secret),
    })
    .into_response();
    no_store(&mut response);
    response
}

pub(super) fn missing(name: &str) -> OAuthError {
    OAuthError::invalid_request(format!("Missing or repeated parameter: {name}."))
}

/// The form body of an `/o/*` request, or a clear 400.
pub(super) fn form_body(
    req: &Result<OAuthRequest, WebError>,
) -> Result<(&OAuthRequest, &NormalizedParameter), OAuthError> {
    let req = req
        .as_ref()
        .map_err(|_| OAuthError::invalid_request("Send exactly one Authorization header."))?;
    let body = req.body().ok_or_else(|| {
        OAuthError::invalid_request("The body must be application/x-www-form-urlencoded.")
    })?;
    Ok((req, body))
}

/// Authenticates the client of an `/o/*` request, counting failures per (client,
/// source address). A source that is waiting is refused unless it presents a secret
/// already verified: a stranger guessing a client's secret never locks the client out.
/// Such a secret (the remembered-success cache) is not even checked against the
/// counters: a busy resource server's introspections read no counter.
pub(super) async fn authenticate_client(
    state: &AppState,
    ip: &ClientIp,
    presented: Option<Presented>,
) -> Result<(Arc<Client>, Presented), OAuthError> {
    let presented = presented.ok_or_else(|| OAuthError::invalid_client(true))?;
    // The usual request of a busy client: answered from the remembered success
    // without a throttle probe or a second lookup and digest.
    if let Some(client) = state.client_auth.remembered(&presented).await {
        return Ok((client, presented));
    }
    let keys = ip.client_keys(&presented.client_id);
    state.throttle.check(&keys).await.map_err(refused)?;
    match state.client_auth.authenticate(&presented).await {
        Ok(client) => Ok((client, presented)),
        Err(e) => {
            if e.code() == OAuthErrorCode::InvalidClient {
                crate::metrics::auth_failure("client");
                state.throttle.fail(&keys).await;
            }
            Err(e)
        }
    }
}

/// The answer to a throttled request, or to counters that could not be read.
pub(super) fn refused(r: Refused) -> OAuthError {
    match r {
        Refused::Wait(wait) => OAuthError::throttled(wait),
        Refused::Store(e) => OAuthError::internal(&e),
    }
}

/// The token endpoint (RFC 6749 §3.2): one dispatcher on `grant_type`.
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = super::paths::TOKEN,
    tag = "oauth",
    request_body(
        content = TokenRequest,
        content_type = "application/x-www-form-urlencoded",
    ),
    security((), ("client_basic" = [])),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1).", body = TokenResponse),
        crate::openapi::OAuthErrors,
    ),
))]
pub(super) async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    cors: super::cors::CorsClient,
    req: Result<OAuthRequest, WebError>,
) -> Result<Response, OAuthError> {
    let (req, body) = form_body(&req)?;
    let grant_type = body
        .unique_value("grant_type")
        .ok_or_else(|| missing("grant_type"))?;
    let grant = grant_type.parse::<GrantType>().ok();
    let presented = client_auth::presented(
        req.authorization_header(),
        body.unique_value("client_id").as_deref(),
        body.unique_value("client_secret").as_deref(),
    )?;
    let (client, presented) = authenticate_client(&state, &ip, presented).await?;
    cors.authenticated(&client);
    let grant = match grant {
        Some(GrantType::AuthorizationCode) if state.grants.is_none() => {
            return Err(OAuthError::new(OAuthErrorCode::UnsupportedGrantType));
        }
        Some(g) => g,
        None => return Err(OAuthError::new(OAuthErrorCode::UnsupportedGrantType)),
    };
    if !client.allows(grant) {
        return Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient));
    }
    let issued = match grant {
        GrantType::Password => password_grant(&state, &ip, &client, body).await?,
        GrantType::RefreshToken => refresh_grant(&state, &client, &presented, body).await?,
        GrantType::ClientCredentials => {
            client_credentials_grant(&state, &client, &presented, body).await?
        }
        GrantType::AuthorizationCode => {
            super::code_grant::authorization_code_grant(&state, &client, &presented, body).await?
        }
    };
    crate::metrics::token_issued(grant.as_str());
    Ok(token_response(&issued))
}

pub(super) use super::scope_policy::negotiate;

/// Whether `scope` asks for a staff-only scope.
pub(super) fn wants_staff_scope(state: &AppState, scope: &Scope) -> bool {
    has_any(scope, &state.staff_scopes)
}

/// The answer to a non-staff user asking for a staff-only scope.
pub(super) fn staff_only() -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidScope)
        .describe("The requested scope is for staff users only.")
}

pub(super) fn issuer_error(e: IssuerError) -> OAuthError {
    match e {
        IssuerError::InvalidGrant => OAuthError::new(OAuthErrorCode::InvalidGrant),
        IssuerError::InvalidScope => OAuthError::new(OAuthErrorCode::InvalidScope),
        other => OAuthError::internal(&other),
    }
}

/// RFC 6749 §4.3, for first-party clients that are allowed it.
async fn password_grant(
    state: &AppState,
    ip: &ClientIp,
    client: &Client,
    body: &NormalizedParameter,
) -> Result<IssuedTokens, OAuthError> {
    let username = body
        .unique_value("username")
        .ok_or_else(|| missing("username"))?;
    let password = body
        .unique_value("password")
        .ok_or_else(|| missing("password"))?;
    let scope = negotiate(state, client, body.unique_value("scope").as_deref(), true)?;
    let account = account_key(&username);
    let keys = ip.account_keys(&account);
    let checked = state.throttle.check(&keys).await.map_err(refused)?;

    let user = match Email::parse(&username) {
        Ok(email) => state
            .users
            .user_by_email(&email)
            .await
            .map_err(|e| OAuthError::internal(&e))?,
        Err(_) => None,
    };
    let stored = user
        .as_ref()
        .filter(|u| u.is_active)
        .and_then(|u| u.password_hash.clone());
    let password = Password::new(password.into_owned());
    // An unknown email pays for one verification too.
    let ok = state
        .hasher
        .verify(&password, stored.as_deref())
        .await
        .map_err(|e| OAuthError::internal(&e))?;
    let user = match user {
        Some(user) if ok => user,
        _ => {
            crate::metrics::auth_failure("password");
            state.throttle.fail(&keys).await;
            return Err(OAuthError::new(OAuthErrorCode::InvalidGrant)
                .describe("Invalid credentials given."));
        }
    };
    state
        .throttle
        .succeeded(&checked, Key::AccountFrom(&account, ip.0))
        .await;
    // Checked once the password is: a wrong password answers invalid_grant alike.
    if wants_staff_scope(state, &scope) && !user.is_staff {
        return Err(staff_only());
    }
    if let Err(e) = state.users.record_login(user.id, state.clock.now()).await {
        tracing::warn!(error = %e, "could not record the login time");
    }
    if stored.is_some_and(|h| state.hasher.needs_rehash(&h)) {
        upgrade_hash(state, user.id, password);
    }
    state
        .issuer
        .issue(GrantRequest {
            client_id: client.client_id.clone(),
            user_id: Some(user.id),
            scope,
            with_refresh_token: client.allows(GrantType::RefreshToken),
            family: None,
        })
        .await
        .map_err(issuer_error)
}

/// Re-hashes a password made with old parameters, after the answer has gone out.
fn upgrade_hash(state: &AppState, user_id: i64, password: Password) {
    let state = state.clone();
    tokio::spawn(async move {
        match state.hasher.hash(&password).await {
            Ok(hash) => {
                if let Err(e) = state.users.set_password_hash(user_id, &hash).await {
                    tracing::warn!(error = %e, "could not upgrade a password hash");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not upgrade a password hash"),
        }
    });
}

/// The request as oxide-auth's grant machines read it. Client authentication has
/// already happened, over Basic or the body, so both machines see the verified
/// credentials as if they came from the Authorization header.
struct MachineRequest<'a> {
    body: &'a NormalizedParameter,
    presented: &'a Presented,
}

impl MachineRequest<'_> {
    fn credentials(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        let secret = self
            .presented
            .secret
            .as_ref()
            .map_or(&b""[..], |s| s.secret().as_bytes());
        Some((
            Cow::Borrowed(self.presented.client_id.as_str()),
            Cow::Borrowed(secret),
        ))
    }
}

impl refresh::Request for MachineRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn refresh_token(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("refresh_token")
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("scope")
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("grant_type")
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        self.credentials()
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.body.unique_value(key)
    }
}

impl client_credentials::Request for MachineRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        self.credentials()
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("scope")
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("grant_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        // Body credentials were consumed by our client authentication.
        match key {
            "client_id" | "client_secret" => None,
            _ => self.body.unique_value(key),
        }
    }
}

/// Grants that never redirect still carry a redirect URI in oxide-auth's types.
pub(super) fn no_redirect() -> Result<RegisteredUrl, OAuthError> {
    "urn:ietf:wg:oauth:2.0:oob"
        .parse::<oxide_auth::frontends::dev::Url>()
        .map(RegisteredUrl::from)
        .map_err(|e| OAuthError::internal(&e))
}

pub(super) fn oxide_scope(
    scope: &Scope,
) -> Result<oxide_auth::primitives::scope::Scope, OAuthError> {
    scope
        .to_string()
        .parse()
        .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidScope))
}

pub(super) fn machine_error(kind: Option<AccessTokenErrorType>) -> OAuthError {
    let code = match kind {
        Some(AccessTokenErrorType::InvalidRequest) => OAuthErrorCode::InvalidRequest,
        Some(AccessTokenErrorType::InvalidClient) => OAuthErrorCode::InvalidClient,
        Some(AccessTokenErrorType::InvalidGrant) => OAuthErrorCode::InvalidGrant,
        Some(AccessTokenErrorType::UnauthorizedClient) => OAuthErrorCode::UnauthorizedClient,
        Some(AccessTokenErrorType::UnsupportedGrantType) => OAuthErrorCode::UnsupportedGrantType,
        Some(AccessTokenErrorType::InvalidScope) => OAuthErrorCode::InvalidScope,
        None => return OAuthError::internal(&"grant state machine failed"),
    };
    OAuthError::new(code)
}

/// RFC 6749 §6, through oxide-auth's `Refresh` machine.
async fn refresh_grant(
    state: &AppState,
    client: &Client,
    presented: &Presented,
    body: &NormalizedParameter,
) -> Result<IssuedTokens, OAuthError> {
    enum Step {
        Start,
        Authenticate(String),
        Recover(String),
        Refresh(String),
    }
    let request = MachineRequest { body, presented };
    if refresh::Request::refresh_token(&request).is_none() {
        return Err(missing("refresh_token"));
    }
    let mut machine = Refresh::new(&request);
    let mut step = Step::Start;
    let mut issued = None;
    loop {
        let input = match step {
            Step::Start => RefreshInput::None,
            Step::Authenticate(id) => {
                if id != client.client_id {
                    return Err(OAuthError::invalid_client(false));
                }
                RefreshInput::Authenticated {
                    scope: refresh::Request::scope(&request),
                }
            }
            Step::Recover(token) => {
                let record = state.issuer.lookup(&token).await.map_err(issuer_error)?;
                // A revoked refresh token is still handed to the machine: the rotation
                // below must see the replay to revoke the token's whole grant.
                let grant = match record.filter(|r| r.kind == TokenKind::Refresh) {
                    Some(r) => Some(Box::new(Grant {
                        owner_id: r.user_id.map(|u| u.to_string()).unwrap_or_default(),
                        client_id: r.client_id,
                        scope: oxide_scope(&r.scope)?,
                        redirect_uri: no_redirect()?.into(),
                        until: chrono::DateTime::from_timestamp(r.expires_at, 0)
                            .unwrap_or_default(),
                        extensions: Extensions::new(),
                    })),
                    None => None,
                };
                // The scope policy holds at every refresh too: a token issued before a
                // scope became privileged, or before the client lost it, is not
                // renewed with it. (Another client's token is left to the machine:
                // `invalid_grant`.)
                if let Some(g) = grant.as_ref().filter(|g| g.client_id == client.client_id) {
                    let carried = match refresh::Request::scope(&request) {
                        Some(s) => s
                            .parse::<Scope>()
                            .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidScope))?,
                        None => g.scope.iter().collect(),
                    };
                    super::scope_policy::check(state, client, &carried, !g.owner_id.is_empty())?;
                }
                RefreshInput::Recovered {
                    scope: refresh::Request::scope(&request),
                    grant,
                }
            }
            Step::Refresh(token) => {
                // The machine has checked the requested scope against the grant; take
                // it from the request in its own order (oxide-auth's scope is a set).
                let scope = refresh::Request::scope(&request)
                    .map(|s| s.parse::<Scope>())
                    .transpose()
                    .map_err(|_| OAuthError::new(OAuthErrorCode::InvalidScope))?;
                let tokens = state
                    .issuer
                    .refresh(&client.client_id, &RefreshToken::new(token), scope.as_ref())
                    .await
                    .map_err(issuer_error)?;
                let refreshed = RefreshedToken {
                    token: tokens.access_token.secret().to_owned(),
                    refresh: tokens.refresh_token.as_ref().map(|r| r.secret().to_owned()),
                    until: state.clock.now() + chrono::Duration::seconds(tokens.expires_in),
                    token_type: TokenType::Bearer,
                };
                issued = Some(tokens);
                RefreshInput::Refreshed(refreshed)
            }
        };
        step = match machine.advance(input) {
            RefreshOutput::Unauthenticated { client, .. } => Step::Authenticate(client.to_owned()),
            RefreshOutput::RecoverRefresh { token } => Step::Recover(token.to_owned()),
            RefreshOutput::Refresh { token, .. } => Step::Refresh(token.to_owned()),
            RefreshOutput::Ok(_) => {
                return issued
                    .ok_or_else(|| OAuthError::internal(&"refresh finished without tokens"));
            }
            RefreshOutput::Err(mut e) => {
                return Err(match e {
                    refresh::Error::Unauthorized(..) => OAuthError::invalid_client(false),
                    _ => machine_error(e.description().map(|d| d.kind())),
                });
            }
        };
    }
}

/// RFC 6749 §4.4, through oxide-auth's `ClientCredentials` machine. No refresh token
/// is issued (§4.4.3).
async fn client_credentials_grant(
    state: &AppState,
    client: &Client,
    presented: &Presented,
    body: &NormalizedParameter,
) -> Result<IssuedTokens, OAuthError> {
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::new(OAuthErrorCode::UnauthorizedClient));
    }
    enum Step {
        Start,
        Authenticate(String),
        Bind,
        Extend,
        Negotiate,
    }
    let request = MachineRequest { body, presented };
    let mut machine = ClientCredentials::new(&request);
    let mut step = Step::Start;
    let mut scope = None;
    loop {
        let input = match step {
            Step::Start => CcInput::None,
            Step::Authenticate(id) => {
                if id != client.client_id {
                    return Err(OAuthError::invalid_client(false));
                }
                CcInput::Authenticated
            }
            Step::Bind => CcInput::Bound {
                bound_client: BoundClient {
                    client_id: Cow::Owned(client.client_id.clone()),
                    redirect_uri: Cow::Owned(no_redirect()?),
                },
            },
            Step::Extend => CcInput::Extended {
                extensions: Extensions::new(),
            },
            Step::Negotiate => {
                let negotiated = negotiate(
                    state,
                    client,
                    client_credentials::Request::scope(&request).as_deref(),
                    false,
                )?;
                let pre_grant = PreGrant {
                    client_id: client.client_id.clone(),
                    redirect_uri: no_redirect()?,
                    scope: oxide_scope(&negotiated)?,
                };
                scope = Some(negotiated);
                CcInput::Negotiated { pre_grant }
            }
        };
        step = match machine.advance(input) {
            CcOutput::Authenticate { client, .. } => Step::Authenticate(client.to_owned()),
            CcOutput::Binding { .. } => Step::Bind,
            CcOutput::Extend => Step::Extend,
            CcOutput::Negotiate { .. } => Step::Negotiate,
            CcOutput::Ok { .. } => break,
            CcOutput::Err(mut e) => {
                return Err(match *e {
                    client_credentials::Error::Unauthorized(..) => {
                        OAuthError::invalid_client(false)
                    }
                    _ => machine_error(e.description().map(|d| d.kind())),
                });
            }
        };
    }
    let scope = scope.ok_or_else(|| OAuthError::internal(&"client credentials without scope"))?;
    // Staff-only scopes belong to staff users; a client acting for itself has none.
    if wants_staff_scope(state, &scope) {
        return Err(OAuthError::new(OAuthErrorCode::InvalidScope)
            .describe("The requested scope is for staff users only; this grant has no user."));
    }
    state
        .issuer
        .issue(GrantRequest {
            client_id: client.client_id.clone(),
            user_id: None,
            scope,
            with_refresh_token: false,
            family: None,
        })
        .await
        .map_err(issuer_error)
}
