//! `grant_type=authorization_code` at the token endpoint (RFC 6749 §4.1.3, RFC 7636
//! §4.5–4.6), through oxide-auth's `AccessToken` machine with our stores answering
//! each step.
//!
//! Departures from the machine's own rules, where the RFCs say otherwise:
//! - the code is consumed by one conditional write (any attempt uses it up), and a
//!   second use revokes every token issued from it (RFC 6749 §4.1.2);
//! - its expiry is checked against the server's clock in that write;
//! - the user who authorized it must still exist and be active;
//! - `redirect_uri` is required only when the authorization request carried it
//!   (RFC 6749 §4.1.3; OAuth 2.1 drops it), the machine always wants one;
//! - the verifier must have RFC 7636 §4.1's syntax before it is hashed.

use std::borrow::Cow;

use oxide_auth::code_grant::accesstoken::{self, AccessToken, Authorization, Input, Output};
use oxide_auth::code_grant::error::AccessTokenErrorType;
use oxide_auth::code_grant::extensions::Pkce;
use oxide_auth::frontends::dev::{NormalizedParameter, QueryParameter as _, Url};
use oxide_auth::primitives::grant::{Extensions, Grant, Value};
use oxide_auth::primitives::issuer::{IssuedToken, TokenType};

use super::AppState;
use super::authorization::is_pkce_value;
use super::client_auth::Presented;
use super::error::{OAuthError, OAuthErrorCode};
use super::token::{issuer_error, machine_error, missing, no_redirect, oxide_scope};
use crate::issuer::{GrantRequest, IssuedTokens};
use crate::store::{AuthorizationCode, Client, GrantType, Redemption};
use crate::token::TokenHash;

/// The token request as the machine reads it: the client has already been
/// authenticated (Basic, body, or a public client's bare `client_id`).
struct MachineRequest<'a> {
    body: &'a NormalizedParameter,
    presented: &'a Presented,
}

/// Stands for "no redirect_uri in the token request" in the machine's comparison.
fn absent_redirect() -> Result<Url, OAuthError> {
    no_redirect().map(Url::from)
}

impl accesstoken::Request for MachineRequest<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("code")
    }
    fn authorization(&self) -> Authorization<'_> {
        match &self.presented.secret {
            Some(secret) => Authorization::UsernamePassword(
                Cow::Borrowed(self.presented.client_id.as_str()),
                Cow::Borrowed(secret.secret().as_bytes()),
            ),
            None => Authorization::Username(Cow::Borrowed(self.presented.client_id.as_str())),
        }
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        // Already part of `authorization`; naming it twice would be a duplicate.
        None
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.body
            .unique_value("redirect_uri")
            .or_else(|| absent_redirect().ok().map(|u| Cow::Owned(u.to_string())))
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.body.unique_value("grant_type")
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        match key {
            "client_id" | "client_secret" => None,
            _ => self.body.unique_value(key),
        }
    }
}

/// The stored code as the machine's `Grant`. When the authorization request named no
/// redirect URI and the token request names none either, both sides carry the same
/// stand-in, so the machine's equality check passes; in every other case it compares
/// the real URIs.
fn machine_grant(
    state: &AppState,
    code: &AuthorizationCode,
    body: &NormalizedParameter,
) -> Result<Grant, OAuthError> {
    let redirect_uri = if !code.redirect_uri_sent && body.unique_value("redirect_uri").is_none() {
        absent_redirect()?
    } else {
        Url::parse(&code.redirect_uri).map_err(|e| OAuthError::internal(&e))?
    };
    let pkce = Pkce::required();
    let mut extensions = Extensions::new();
    // The challenge in the encoding oxide-auth's `Pkce` stores (`S` marks S256).
    extensions.set(
        &pkce,
        Value::private(Some(format!("{}S", code.code_challenge))),
    );
    // Expiry was checked in the store against our clock; give the machine (which
    // reads the system clock) the code's remaining lifetime.
    let remaining = code.expires_at.saturating_sub(state.clock.unix()).max(1);
    Ok(Grant {
        owner_id: code.user_id.to_string(),
        client_id: code.client_id.clone(),
        scope: oxide_scope(&code.scope)?,
        redirect_uri,
        until: chrono::Utc::now() + chrono::Duration::seconds(remaining),
        extensions,
    })
}

fn invalid_grant(description: &'static str) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidGrant).describe(description)
}

/// RFC 6749 §4.1.3 through oxide-auth's `AccessToken` machine.
pub(super) async fn authorization_code_grant(
    state: &AppState,
    client: &Client,
    presented: &Presented,
    body: &NormalizedParameter,
) -> Result<IssuedTokens, OAuthError> {
    let grants = state
        .grants
        .as_ref()
        .ok_or_else(|| OAuthError::new(OAuthErrorCode::UnsupportedGrantType))?;
    let code = body.unique_value("code").ok_or_else(|| missing("code"))?;
    let verifier = body
        .unique_value("code_verifier")
        .ok_or_else(|| missing("code_verifier"))?;
    if !is_pkce_value(&verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~.",
        ));
    }
    let request = MachineRequest { body, presented };
    let mut machine = AccessToken::new(&request);
    let mut redeemed: Option<AuthorizationCode> = None;
    let mut issued: Option<IssuedTokens> = None;
    let mut output = machine.advance(Input::None);
    loop {
        let input = match output {
            Output::Authenticate { client: id, .. } => {
                if id != client.client_id {
                    return Err(OAuthError::invalid_client(false));
                }
                Input::Authenticated
            }
            Output::Recover { .. } => {
                let now = state.clock.unix();
                match grants
                    .redeem_code(&TokenHash::of(&code), now)
                    .await
                    .map_err(|e| OAuthError::internal(&e))?
                {
                    Redemption::Redeemed(c) => {
                        // The user may have been deactivated or deleted since the
                        // code was issued: then it is worth nothing.
                        let user = state
                            .users
                            .user_by_id(c.user_id)
                            .await
                            .map_err(|e| OAuthError::internal(&e))?;
                        if !user.is_some_and(|u| u.is_active) {
                            return Err(invalid_grant("The code is invalid or expired."));
                        }
                        let grant = machine_grant(state, &c, body)?;
                        redeemed = Some(c);
                        Input::Recovered(Some(Box::new(grant)))
                    }
                    Redemption::Replayed(c) => {
                        // RFC 6749 §4.1.2: revoke what the code has issued.
                        let revoked = state
                            .tokens
                            .revoke_family(&c.family, now)
                            .await
                            .map_err(|e| OAuthError::internal(&e))?;
                        if revoked > 0 {
                            tracing::warn!(
                                client_id = %c.client_id,
                                revoked,
                                "authorization code used again: revoked the tokens issued from it"
                            );
                        } else {
                            tracing::info!(
                                client_id = %c.client_id,
                                "authorization code used again; no token had been issued from it"
                            );
                        }
                        return Err(invalid_grant("The code has already been used."));
                    }
                    _ => return Err(invalid_grant("The code is invalid or expired.")),
                }
            }
            Output::Extend { extensions } => {
                let pkce = Pkce::required();
                let stored = extensions.remove(&pkce);
                pkce.verify(stored, Some(Cow::Borrowed(verifier.as_ref())))
                    .map_err(|()| {
                        invalid_grant("The code_verifier does not match the challenge.")
                    })?;
                Input::Extended {
                    access_extensions: Extensions::new(),
                }
            }
            Output::Issue { grant } => {
                let c = redeemed
                    .as_ref()
                    .ok_or_else(|| OAuthError::internal(&"issue before redemption"))?;
                let tokens = state
                    .issuer
                    .issue(GrantRequest {
                        client_id: c.client_id.clone(),
                        user_id: Some(c.user_id),
                        scope: c.scope.clone(),
                        with_refresh_token: client.allows(GrantType::RefreshToken),
                        family: Some(c.family),
                    })
                    .await
                    .map_err(issuer_error)?;
                let token = IssuedToken {
                    token: tokens.access_token.secret().to_owned(),
                    refresh: tokens.refresh_token.as_ref().map(|r| r.secret().to_owned()),
                    until: grant.until,
                    token_type: TokenType::Bearer,
                };
                issued = Some(tokens);
                Input::Issued(token)
            }
            Output::Ok(_) => break,
            Output::Err(mut e) => {
                return Err(match *e {
                    accesstoken::Error::Unauthorized(..) => OAuthError::invalid_client(false),
                    ref mut inner => match inner.description().map(|d| d.kind()) {
                        Some(AccessTokenErrorType::InvalidGrant) => invalid_grant(
                            "The redirect_uri or client does not match the authorization request.",
                        ),
                        kind => machine_error(kind),
                    },
                });
            }
        };
        output = machine.advance(input);
    }
    let issued =
        issued.ok_or_else(|| OAuthError::internal(&"code exchange finished without tokens"))?;
    // A replay may have come in after our redemption but before our tokens were
    // stored; its family revocation then found nothing to revoke. Look again.
    let hash = TokenHash::of(&code);
    if grants
        .code_replayed(&hash)
        .await
        .map_err(|e| OAuthError::internal(&e))?
    {
        state
            .tokens
            .revoke_family(&issued.family, state.clock.unix())
            .await
            .map_err(|e| OAuthError::internal(&e))?;
        return Err(invalid_grant("The code has already been used."));
    }
    // Keep the redeemed code as a tombstone for as long as its tokens can live,
    // past the code's own expiry and the purge, so that a late replay still
    // revokes them.
    let lifetime = if issued.refresh_token.is_some() {
        state.lifetimes.refresh.max(state.lifetimes.access)
    } else {
        state.lifetimes.access
    };
    let until = state
        .clock
        .unix()
        .saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    grants
        .retain_code(&hash, until)
        .await
        .map_err(|e| OAuthError::internal(&e))?;
    Ok(issued)
}
