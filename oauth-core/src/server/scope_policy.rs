//! Which scopes a client may be granted: one rule, called by every grant (the
//! password and client credentials grants, the authorization endpoint whose code
//! the authorization code grant redeems, and the refresh grant).
//!
//! The server's scopes are ordinary or privileged ([`AuthServer::privileged_scopes`],
//! default `introspection admin`). A client registered without a scope (an empty
//! stored scope) may have the server's ordinary scopes. A privileged scope is
//! granted only to a confidential client whose registration lists it by name —
//! never as a default, never to a public client, whatever its registration says.
//! Asking for one the client may not have is `invalid_scope` (RFC 6749 §5.2,
//! §4.1.2.1); a request that names no scope gets the client's default without any
//! privileged scope.
//!
//! [`AuthServer::privileged_scopes`]: super::AuthServer::privileged_scopes

use super::AppState;
use super::error::{OAuthError, OAuthErrorCode};
use crate::issuer::without;
use crate::scope::Scope;
use crate::store::{Client, ClientKind};

/// The server's ordinary scopes: those it knows, less the privileged ones.
pub(crate) fn ordinary(state: &AppState) -> Scope {
    without(&state.scopes, &state.privileged_scopes)
}

#[cfg(feature = "admin")]
/// The server's privileged scopes that it knows.
pub(crate) fn privileged(state: &AppState) -> Scope {
    state
        .scopes
        .iter()
        .filter(|t| state.privileged_scopes.contains(t))
        .collect()
}

/// Whether `token` is one of the server's privileged scopes.
pub(crate) fn is_privileged(state: &AppState, token: &str) -> bool {
    state.privileged_scopes.contains(token)
}

/// The scopes `client` may be granted: its registered scope (empty: the server's
/// ordinary scopes), within those the server knows, with a privileged scope only
/// when the client is confidential and lists it.
pub(crate) fn allowed(state: &AppState, client: &Client) -> Scope {
    if client.allowed_scope.is_empty() {
        return ordinary(state);
    }
    client
        .allowed_scope
        .iter()
        .filter(|t| state.scopes.contains(t))
        .filter(|t| !is_privileged(state, t) || client.kind == ClientKind::Confidential)
        .collect()
}

/// `Ok` when `client` may have every token of `scope`; otherwise `invalid_scope`,
/// saying which privileged scope was refused when that is the reason.
/// `for_user`: the token would act for a user (only the wording changes).
pub(crate) fn check(
    state: &AppState,
    client: &Client,
    scope: &Scope,
    for_user: bool,
) -> Result<(), OAuthError> {
    let allowed = allowed(state, client);
    match scope.iter().find(|t| !allowed.contains(t)) {
        None => Ok(()),
        Some(t) if is_privileged(state, t) && state.scopes.contains(t) => {
            let whose = if for_user {
                "a user's token"
            } else {
                "this client"
            };
            Err(
                OAuthError::new(OAuthErrorCode::InvalidScope).describe(format!(
                    "The scope {t} is privileged: it is granted to {whose} only when the client is \
                 confidential and registered with it."
                )),
            )
        }
        Some(_) => Err(OAuthError::new(OAuthErrorCode::InvalidScope)),
    }
}

/// RFC 6749 §3.3: no scope asked → the client's default (its registered default,
/// else its allowed scope) without any privileged or staff-only scope; otherwise
/// the scope asked, when [`check`] allows all of it. A staff-only scope asked for by
/// name is then checked against the user by the caller.
pub(crate) fn negotiate(
    state: &AppState,
    client: &Client,
    requested: Option<&str>,
    for_user: bool,
) -> Result<Scope, OAuthError> {
    let invalid = || OAuthError::new(OAuthErrorCode::InvalidScope);
    let requested: Scope = match requested {
        Some(s) => s.parse().map_err(|_| invalid())?,
        None => Scope::empty(),
    };
    let scope = if requested.is_empty() {
        let registered = if client.default_scope.is_empty() {
            &client.allowed_scope
        } else {
            &client.default_scope
        };
        let default = if registered.is_empty() {
            ordinary(state)
        } else {
            registered.clone()
        };
        let scope = without(
            &without(&default, &state.privileged_scopes),
            &state.staff_scopes,
        );
        if scope.is_empty() && !default.is_empty() {
            return Err(invalid());
        }
        scope
    } else {
        requested
    };
    check(state, client, &scope, for_user)?;
    Ok(scope)
}
