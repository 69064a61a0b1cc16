//! The resource-server side: who is calling, checked by token introspection.
//!
//! - [`Authenticator`]: token → [`Principal`] or [`AuthError`]. The main
//!   implementation, [`Introspector`], asks an RFC 7662 endpoint and caches answers.
//! - [`Authenticated`] and [`Scoped`]: axum extractors for handlers; [`ResourceAuth`]
//!   reaches them through `FromRef`.
//! - [`ResourceAuth::layer`]: a tower layer protecting a whole router.
//!
//! Errors follow RFC 6750 §3 with Django REST framework bodies: no token → 401
//! `WWW-Authenticate: Bearer realm="api"`; an inactive token → 401 with
//! `error="invalid_token"`; a missing scope → 403 `insufficient_scope`; the
//! authorization server unreachable → 503 with `Retry-After`, never 401 or 500.

mod extract;
mod follow;
mod introspector;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use extract::{AuthRejection, Authenticated, BearerAuthorizer, RequiredScope, Scoped};
pub use introspector::{
    IntrospectionCredentials, Introspector, IntrospectorConfig, ensure_crypto_provider,
};

use crate::scope::Scope;
use crate::store::UnixTime;

/// What an active bearer token stands for, as the authorization server told it.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The resource owner's id at the authorization server (RFC 7662 `sub`).
    pub sub: Option<String>,
    /// The resource owner's user name, an email here (RFC 7662 `username`).
    pub username: Option<String>,
    /// The client the token was issued to.
    pub client_id: Option<String>,
    /// The token's scope.
    pub scope: Scope,
    /// When the token expires.
    pub expires_at: Option<UnixTime>,
}

impl Principal {
    /// True when the token carries `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.contains(scope)
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is unknown, expired or revoked (RFC 6750 `invalid_token`).
    #[error("the access token is invalid")]
    InvalidToken,
    /// The authorization server could not be asked: unreachable, timed out, failing,
    /// or refusing our credentials. The token may be fine: answer 503, not 401.
    #[error("the authorization server is unavailable: {0}")]
    Unavailable(String),
}

/// Checks bearer tokens (RFC 6750).
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The principal of an active token.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for a token that is not active,
    /// [`AuthError::Unavailable`] when that cannot be known right now.
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError>;
}

/// The authenticator a router's extractors use: put one in your state and implement
/// `FromRef<YourState> for ResourceAuth` (or use it as the state itself).
#[derive(Clone)]
pub struct ResourceAuth(pub Arc<dyn Authenticator>);

impl ResourceAuth {
    /// Wraps an authenticator.
    pub fn new(authenticator: impl Authenticator + 'static) -> Self {
        Self(Arc::new(authenticator))
    }
}

impl fmt::Debug for ResourceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResourceAuth")
    }
}
