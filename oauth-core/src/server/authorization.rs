//! The authorization request (RFC 6749 §4.1.1 with PKCE, RFC 7636) as protocol logic:
//! validation through oxide-auth's `Authorization` machine with our async registry
//! answering its steps, the consent decision, and the code's issuance. No HTTP here:
//! the pages translate requests and outcomes.
//!
//! Where oxide-auth departs from RFC 8252 / RFC 9700 the RFC wins, and the step is
//! answered here instead (see docs/architecture.md, "Authorization code"):
//! redirect URIs match character for character except for the port of a loopback
//! IP literal registered by a public (native) client; PKCE values must have RFC 7636's syntax.

use std::borrow::Cow;

use oxide_auth::code_grant::authorization::{
    self, Authorization, Error as MachineError, Input, Output,
};
use oxide_auth::code_grant::error::AuthorizationErrorType;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::frontends::dev::{NormalizedParameter, QueryParameter as _, Url};
use oxide_auth::primitives::grant::Extensions;
use oxide_auth::primitives::registrar::{BoundClient, ExactUrl, PreGrant, RegisteredUrl};

use super::AppState;
use super::token::{negotiate, wants_staff_scope};
use crate::scope::Scope;
use crate::store::{AuthorizationCode, Client, ClientKind, Consent, GrantType, TokenFamily, User};
use crate::token::{TokenHash, generate_token};

/// An authorization request that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct ValidRequest {
    pub(crate) client: Client,
    /// The redirect URI the answer goes to (the requested one, or the only one
    /// registered when the request named none).
    pub(crate) redirect_uri: String,
    pub(crate) redirect_uri_sent: bool,
    pub(crate) scope: Scope,
    pub(crate) state: Option<String>,
    pub(crate) code_challenge: String,
}

/// Why an authorization request cannot be granted.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The client or its redirect URI cannot be trusted: show an error page and
    /// never redirect (RFC 6749 §4.1.2.1, no open redirector).
    Page(Cow<'static, str>),
    /// Everything else: an error for the client (RFC 6749 §4.1.2.1). Whether it is
    /// redirected or shown depends on who asks ([`ClientError`]).
    Redirect(Box<ClientError>),
    /// The store failed (logged; the page says so).
    Internal,
}

/// An error the client could be told by redirect (RFC 6749 §4.1.2.1). The pages
/// redirect it only when the user has signed in and the client is trusted
/// ([`ClientError::trusted`]); otherwise they show it on the error page, so the
/// endpoint is never a bounce to a URI anyone could have registered (RFC 9700
/// §4.11.2).
#[derive(Debug)]
pub(crate) struct ClientError {
    /// The redirect URI with `error`, `error_description`, `state` and `iss`.
    pub(crate) url: Url,
    /// The `error` code.
    pub(crate) error: &'static str,
    /// The `error_description`.
    pub(crate) description: &'static str,
    /// The user who registered the client ([`Client::owner`]).
    pub(crate) owner: Option<crate::store::UserId>,
}

impl ClientError {
    /// Whether a redirect to this client may carry an error for `user` (signed in):
    /// the client was registered by the server's operators (no owner: the CLI, the
    /// console, an import) or by a staff user. `owner_record` is the owner's record
    /// when it is not `user`.
    pub(crate) fn trusted(&self, user: &User, owner_record: Option<&User>) -> bool {
        match self.owner {
            None => true,
            Some(id) if id == user.id => user.is_staff && user.is_active,
            Some(_) => owner_record.is_some_and(|o| o.is_staff && o.is_active),
        }
    }
}

/// `RFC 7636 §4.1`: `code-verifier = 43*128unreserved`; the challenge (§4.2) has the
/// same syntax.
#[must_use]
pub fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `RFC 7636 §4.2`: an S256 challenge is `BASE64URL(SHA256(code_verifier))`
/// without padding, so exactly 43 characters of the base64url alphabet
/// (`A-Z a-z 0-9 - _`). Any other value could never verify.
#[must_use]
pub fn is_s256_challenge(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The part of a loopback redirect URI after the port: `Some(rest)` for
/// `http://127.0.0.1[:port]rest` or `http://[::1][:port]rest`, where the port may be
/// any (RFC 8252 §7.3).
fn loopback_rest(uri: &str) -> Option<(&'static str, &str)> {
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let Some(after) = uri.strip_prefix(host) {
            let rest = match after.strip_prefix(':') {
                Some(port) => {
                    let digits = port.bytes().take_while(u8::is_ascii_digit).count();
                    if digits == 0 || digits > 5 {
                        return None;
                    }
                    &port[digits..]
                }
                None => after,
            };
            if rest.is_empty() || rest.starts_with(['/', '?']) {
                return Some((host, rest));
            }
        }
    }
    None
}

/// Whether `requested` may receive the answer for a client that registered
/// `registered`: equal character for character, or — for a loopback IP literal over
/// `http` — equal but for the port (RFC 8252 §7.3; oxide-auth's
/// `IgnorePortOnLocalhost` only does this for the host name `localhost`).
#[must_use]
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (loopback_rest(registered), loopback_rest(requested)) {
        (Some((host_a, rest_a)), Some((host_b, rest_b))) => host_a == host_b && rest_a == rest_b,
        _ => false,
    }
}

/// Whether `client` may have its answer sent to `requested`: a registered URI
/// character for character; the any-port rule of loopback redirect URIs
/// ([`redirect_uri_matches`], RFC 8252 §7.3) is for native apps, so it applies
/// to public clients only. A confidential client — a web server, possibly one
/// that skips consent — must name the exact registered port.
#[must_use]
pub fn client_redirect_uri_matches(client: &Client, requested: &str) -> bool {
    client.redirect_uris.iter().any(|r| match client.kind {
        ClientKind::Public => redirect_uri_matches(r, requested),
        ClientKind::Confidential => r == requested,
    })
}

/// Checks a redirect URI a client wants to register (RFC 6749 §3.1.2, RFC 8252 §7,
/// RFC 9700 §2.1): absolute, without fragment; `https`, or `http` only on a loopback
/// IP literal, or a private-use scheme of a native app (reverse domain name, so it
/// contains a dot: `com.example.app:/callback`).
///
/// # Errors
/// A sentence saying what is wrong.
pub fn validate_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let parsed = Url::parse(uri).map_err(|_| "Enter an absolute URI.")?;
    if uri.contains('#') {
        return Err("A redirect URI must not contain a fragment.");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("A redirect URI must not contain spaces.");
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(()),
        "http" if loopback_rest(uri).is_some() => Ok(()),
        "http" => Err("Plain http is allowed only for the loopback addresses 127.0.0.1 and [::1]."),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(
            "Use https, http on 127.0.0.1 or [::1], or a private-use scheme such as com.example.app:/callback.",
        ),
    }
}

/// The request as oxide-auth's `Authorization` machine reads it.
struct MachineRequest<'a>(&'a NormalizedParameter);

impl authorization::Request for MachineRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.0.unique_value("client_id")
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.0.unique_value("scope")
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.0.unique_value("redirect_uri")
    }
    fn state(&self) -> Option<Cow<'_, str>> {
        self.0.unique_value("state")
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.0.unique_value("response_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.unique_value(key)
    }
}

/// Adds `iss` (RFC 9207) to an answer for the client.
fn with_iss(mut url: Url, issuer: &str) -> Url {
    url.query_pairs_mut().append_pair("iss", issuer);
    url
}

fn error_code(kind: AuthorizationErrorType) -> &'static str {
    match kind {
        AuthorizationErrorType::InvalidRequest => "invalid_request",
        AuthorizationErrorType::UnauthorizedClient => "unauthorized_client",
        AuthorizationErrorType::AccessDenied => "access_denied",
        AuthorizationErrorType::UnsupportedResponseType => "unsupported_response_type",
        AuthorizationErrorType::InvalidScope => "invalid_scope",
        AuthorizationErrorType::ServerError => "server_error",
        AuthorizationErrorType::TemporarilyUnavailable => "temporarily_unavailable",
    }
}

/// The error redirect of RFC 6749 §4.1.2.1, with `state` and `iss` (RFC 9207).
/// Built here rather than by oxide-auth's `ErrorUrl`, which names the description
/// parameter `description` instead of `error_description`.
pub(crate) fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    kind: AuthorizationErrorType,
    description: &'static str,
    issuer: &str,
    owner: Option<crate::store::UserId>,
) -> Refusal {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return Refusal::Page("The redirect URI is not valid.".into());
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", error_code(kind))
            .append_pair("error_description", description);
        if let Some(state) = state {
            q.append_pair("state", state);
        }
    }
    Refusal::Redirect(Box::new(ClientError {
        url: with_iss(url, issuer),
        error: error_code(kind),
        description,
        owner,
    }))
}

/// An error of oxide-auth's machine: a redirect (unsupported response type,
/// malformed scope) goes to the bound redirect URI; an ignored request (no valid
/// `client_id` or `redirect_uri`) gets the error page.
fn machine_refusal(
    e: MachineError,
    bound: Option<&(String, bool)>,
    state: Option<&str>,
    issuer: &str,
    owner: Option<crate::store::UserId>,
) -> Refusal {
    match (e, bound) {
        (MachineError::Redirect(mut url), Some((uri, _))) => {
            let kind = url.description().kind();
            let description = match kind {
                AuthorizationErrorType::UnsupportedResponseType => {
                    "Only response_type=code is supported."
                }
                AuthorizationErrorType::InvalidScope => "The scope is malformed.",
                _ => "The request is invalid.",
            };
            error_redirect(uri, state, kind, description, issuer, owner)
        }
        (MachineError::PrimitiveError, _) | (MachineError::Redirect(_), None) => {
            tracing::error!("authorization state machine failed");
            Refusal::Internal
        }
        (MachineError::Ignore, _) => {
            Refusal::Page("The request is missing a valid client_id or redirect_uri.".into())
        }
    }
}

/// Validates an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3) by driving
/// oxide-auth's `Authorization` machine: our registry binds the client and redirect
/// URI, our PKCE check extends it, our scope rules negotiate it.
pub(crate) async fn validate(
    state: &AppState,
    params: &NormalizedParameter,
) -> Result<ValidRequest, Refusal> {
    let issuer = state.issuer_url.as_str();
    let request = MachineRequest(params);
    let mut machine = Authorization::new(&request);
    let mut client: Option<Client> = None;
    let mut bound: Option<(String, bool)> = None;
    let mut challenge: Option<String> = None;
    let mut scope: Option<Scope> = None;
    let state_param = params.unique_value("state").map(Cow::into_owned);
    let mut output = machine.advance(Input::None);
    loop {
        let input = match output {
            Output::Bind {
                client_id,
                redirect_uri,
            } => {
                let found = state
                    .client_auth
                    .client(&client_id)
                    .await
                    .map_err(|_| Refusal::Internal)?
                    .ok_or(Refusal::Page(
                        "This application is not registered here.".into(),
                    ))?;
                let uri = match &redirect_uri {
                    Some(requested) => client_redirect_uri_matches(&found, requested.as_str())
                        .then(|| requested.as_str().to_owned()),
                    None if found.redirect_uris.len() == 1 => found.redirect_uris.first().cloned(),
                    None => None,
                }
                .ok_or(Refusal::Page(
                    "The redirect URI does not match any registered for this application.".into(),
                ))?;
                let exact = ExactUrl::new(uri.clone())
                    .map_err(|_| Refusal::Page("The redirect URI is not valid.".into()))?;
                bound = Some((uri, redirect_uri.is_some()));
                client = Some(std::sync::Arc::unwrap_or_clone(found));
                Input::Bound {
                    request: &request,
                    bound_client: BoundClient {
                        client_id: Cow::Owned(client_id),
                        redirect_uri: Cow::Owned(RegisteredUrl::Exact(exact)),
                    },
                }
            }
            Output::Extend => {
                let (uri, _) = bound.as_ref().ok_or(Refusal::Internal)?;
                let c = client.as_ref().ok_or(Refusal::Internal)?;
                let refuse = |kind, text| {
                    error_redirect(uri, state_param.as_deref(), kind, text, issuer, c.owner)
                };
                if !c.allows(GrantType::AuthorizationCode) {
                    return Err(refuse(
                        AuthorizationErrorType::UnauthorizedClient,
                        "This client may not use the authorization code grant.",
                    ));
                }
                let method = params.unique_value("code_challenge_method");
                let value = params.unique_value("code_challenge");
                let Some(value) = value else {
                    return Err(refuse(
                        AuthorizationErrorType::InvalidRequest,
                        "PKCE is required: send code_challenge and code_challenge_method=S256.",
                    ));
                };
                match method.as_deref() {
                    Some("S256") => {}
                    None => {
                        return Err(refuse(
                            AuthorizationErrorType::InvalidRequest,
                            "code_challenge_method is required and must be S256.",
                        ));
                    }
                    Some(_) => {
                        return Err(refuse(
                            AuthorizationErrorType::InvalidRequest,
                            "Transform algorithm not supported: use code_challenge_method=S256.",
                        ));
                    }
                }
                if !is_s256_challenge(&value) {
                    return Err(refuse(
                        AuthorizationErrorType::InvalidRequest,
                        "An S256 code_challenge is exactly 43 characters of A-Z a-z 0-9 - _.",
                    ));
                }
                let pkce = Pkce::required();
                let stored = pkce
                    .challenge(method, Some(Cow::Borrowed(value.as_ref())))
                    .map_err(|()| {
                        refuse(
                            AuthorizationErrorType::InvalidRequest,
                            "The PKCE challenge is not acceptable.",
                        )
                    })?;
                let mut extensions = Extensions::new();
                if let Some(stored) = stored {
                    extensions.set(&pkce, stored);
                }
                challenge = Some(value.into_owned());
                Input::Extended(extensions)
            }
            Output::Negotiate { bound_client, .. } => {
                let (uri, _) = bound.as_ref().ok_or(Refusal::Internal)?;
                let c = client.as_ref().ok_or(Refusal::Internal)?;
                let negotiated = negotiate(state, c, params.unique_value("scope").as_deref(), true)
                    .map_err(|_| {
                        error_redirect(
                            uri,
                            state_param.as_deref(),
                            AuthorizationErrorType::InvalidScope,
                            "The requested scope is unknown or not allowed for this client.",
                            issuer,
                            c.owner,
                        )
                    })?;
                let pre_grant = PreGrant {
                    client_id: bound_client.client_id.to_string(),
                    redirect_uri: bound_client.redirect_uri.as_ref().clone(),
                    scope: negotiated
                        .to_string()
                        .parse()
                        .map_err(|_| Refusal::Internal)?,
                };
                scope = Some(negotiated);
                Input::Negotiated {
                    pre_grant,
                    state: state_param.clone(),
                }
            }
            Output::Ok { .. } => break,
            Output::Err(e) => {
                return Err(machine_refusal(
                    e,
                    bound.as_ref(),
                    state_param.as_deref(),
                    issuer,
                    client.as_ref().and_then(|c| c.owner),
                ));
            }
        };
        output = machine.advance(input);
    }
    let (client, (redirect_uri, redirect_uri_sent), scope, code_challenge) =
        match (client, bound, scope, challenge) {
            (Some(c), Some(b), Some(s), Some(ch)) => (c, b, s, ch),
            _ => return Err(Refusal::Internal),
        };
    Ok(ValidRequest {
        client,
        redirect_uri,
        redirect_uri_sent,
        scope,
        state: state_param,
        code_challenge,
    })
}

/// Whether the user must be asked (the consent page), or the request may be granted
/// at once: a first-party client, or a remembered consent covering the scope for a
/// client whose identity is assured (see [`Client::identity_assured`]).
pub(crate) fn needs_consent(request: &ValidRequest, remembered: Option<&Consent>) -> bool {
    if request.client.skip_authorization {
        return false;
    }
    let covered = remembered.is_some_and(|c| request.scope.is_subset(&c.scope));
    !(covered && request.client.identity_assured())
}

/// A request for a staff-only scope (`AuthServer::staff_scopes`) by a user who is
/// not staff is answered `access_denied` (RFC 6749 §4.1.2.1). Checked before the
/// consent page (so nobody is asked to allow what they cannot get) and again when
/// the code is issued, on the user record the request's session check just read.
pub(crate) fn check_staff(
    state: &AppState,
    request: &ValidRequest,
    user: &User,
) -> Result<(), Refusal> {
    if !wants_staff_scope(state, &request.scope) || (user.is_staff && user.is_active) {
        return Ok(());
    }
    Err(error_redirect(
        &request.redirect_uri,
        request.state.as_deref(),
        AuthorizationErrorType::AccessDenied,
        "The requested scope is for staff users only.",
        &state.issuer_url,
        request.client.owner,
    ))
}

/// Issues a code for the request and returns where to send the browser: the
/// redirect URI with `code`, `state` and `iss` (RFC 6749 §4.1.2, RFC 9207). The
/// consent is remembered. Staff-only scopes are checked first ([`check_staff`]).
pub(crate) async fn grant(
    state: &AppState,
    request: &ValidRequest,
    user: &User,
) -> Result<Url, Refusal> {
    let grants = state.grants.as_ref().ok_or(Refusal::Internal)?;
    check_staff(state, request, user)?;
    let user_id = user.id;
    let code = generate_token().map_err(|e| internal(&e))?;
    let now = state.clock.unix();
    let ttl = i64::try_from(state.code_ttl.as_secs()).unwrap_or(i64::MAX);
    grants
        .insert_code(&AuthorizationCode {
            hash: TokenHash::of(&code),
            client_id: request.client.client_id.clone(),
            user_id,
            redirect_uri: request.redirect_uri.clone(),
            redirect_uri_sent: request.redirect_uri_sent,
            scope: request.scope.clone(),
            code_challenge: request.code_challenge.clone(),
            family: TokenFamily::generate().map_err(|e| internal(&e))?,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            consumed_at: None,
            replayed_at: None,
        })
        .await
        .map_err(|e| internal(&e))?;
    grants
        .save_consent(&Consent {
            user_id,
            client_id: request.client.client_id.clone(),
            scope: request.scope.clone(),
            granted_at: now,
        })
        .await
        .map_err(|e| internal(&e))?;
    let mut url = Url::parse(&request.redirect_uri)
        .map_err(|_| Refusal::Page("The redirect URI is not valid.".into()))?;
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = &request.state {
        url.query_pairs_mut().append_pair("state", s);
    }
    Ok(with_iss(url, &state.issuer_url))
}

/// The user said no on our consent page: `access_denied` (RFC 6749 §4.1.2.1). The
/// user saw the client and chose, so this is redirected for every client.
pub(crate) fn deny(state: &AppState, request: &ValidRequest) -> Refusal {
    error_redirect(
        &request.redirect_uri,
        request.state.as_deref(),
        AuthorizationErrorType::AccessDenied,
        "The user denied the request.",
        &state.issuer_url,
        request.client.owner,
    )
}

fn internal(cause: &dyn std::fmt::Display) -> Refusal {
    tracing::error!(%cause, "authorization failed");
    Refusal::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_ports_are_free_everything_else_is_exact() {
        let reg = "http://127.0.0.1/callback";
        assert!(redirect_uri_matches(reg, "http://127.0.0.1:8765/callback"));
        assert!(redirect_uri_matches(reg, "http://127.0.0.1/callback"));
        assert!(redirect_uri_matches(
            "http://127.0.0.1:8765/callback",
            "http://127.0.0.1:1/callback"
        ));
        assert!(redirect_uri_matches("http://[::1]/cb", "http://[::1]:9/cb"));
        assert!(!redirect_uri_matches(
            reg,
            "http://127.0.0.1:8765/callback/"
        ));
        assert!(!redirect_uri_matches(reg, "http://127.0.0.1:8765/Callback"));
        assert!(!redirect_uri_matches(reg, "http://[::1]:8765/callback"));
        assert!(!redirect_uri_matches(reg, "http://localhost:8765/callback"));
        assert!(!redirect_uri_matches(
            reg,
            "http://127.0.0.1.evil.com/callback"
        ));
        assert!(!redirect_uri_matches(
            reg,
            "http://127.0.0.1:80@evil.com/callback"
        ));
        assert!(!redirect_uri_matches(reg, "http://127.0.0.1:/callback"));
        let https = "https://app.example.com/cb";
        assert!(!redirect_uri_matches(
            https,
            "https://app.example.com:443/cb"
        ));
        assert!(!redirect_uri_matches(
            https,
            "https://app.example.com/cb?x=1"
        ));
        assert!(redirect_uri_matches(https, https));
    }

    #[test]
    fn registrable_redirect_uris() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8765/callback",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(validate_redirect_uri(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/relative",
            "https://app.example.com/cb#frag",
            "http://app.example.com/cb",
            "http://localhost/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pkce_syntax_rfc7636() {
        // RFC 7636 Appendix B.
        assert!(is_pkce_value("dBjftJeZ4CVP-mJ92ZR7gW0pQmUXyA6xKMbbj1kLsVs"));
        assert!(is_pkce_value("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_pkce_value(&"a".repeat(42)));
        assert!(is_pkce_value(&"a".repeat(128)));
        assert!(!is_pkce_value(&"a".repeat(129)));
        assert!(!is_pkce_value(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn s256_challenge_syntax_rfc7636() {
        // RFC 7636 Appendix B.
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(is_s256_challenge(&"_".repeat(43)));
        assert!(!is_s256_challenge(&"a".repeat(42)));
        assert!(!is_s256_challenge(&"a".repeat(44)));
        assert!(!is_s256_challenge(&"a".repeat(128)));
        assert!(!is_s256_challenge(&format!("{}.", "a".repeat(42))));
        assert!(!is_s256_challenge(&format!("{}~", "a".repeat(42))));
        assert!(!is_s256_challenge(&format!("{}=", "a".repeat(42))));
    }
}
