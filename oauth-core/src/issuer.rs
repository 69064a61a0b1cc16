//! Token issuance, refresh, introspection and revocation: protocol logic over the
//! stores, with no HTTP in it.
//!
//! [`TokenIssuer`] is the role; [`OpaqueTokenIssuer`] is the implementation that hands
//! out random opaque tokens and keeps only their SHA-256 in a [`TokenStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::scope::Scope;
use crate::secret::{AccessToken, RefreshToken};
use crate::store::{
    RefreshGrace, RotatedToken, Rotation, StoreError, TokenFamily, TokenKind, TokenOwner,
    TokenRecord, TokenStore, UnixTime, UserId, UserStore,
};
use crate::token::{RandomnessUnavailable, TokenHash, generate_token};

/// The default staff-only scope: a token carries it only while its user is staff
/// (see [`OpaqueTokenIssuer::staff_scopes`] and `AuthServer::staff_scopes`).
pub const STAFF_SCOPE: &str = "admin";

/// `scope` without the tokens in `staff`.
pub(crate) fn without(scope: &Scope, staff: &Scope) -> Scope {
    scope.iter().filter(|s| !staff.contains(s)).collect()
}

/// Whether `scope` names any token of `staff`.
pub(crate) fn has_any(scope: &Scope, staff: &Scope) -> bool {
    scope.iter().any(|s| staff.contains(s))
}

/// What to issue tokens for.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRequest {
    /// The client the tokens are issued to.
    pub client_id: String,
    /// The resource owner; `None` for the client-credentials grant.
    pub user_id: Option<UserId>,
    /// The negotiated scope.
    pub scope: Scope,
    /// Whether to issue a refresh token too.
    pub with_refresh_token: bool,
    /// The family the tokens join; `None` starts a new one. An authorization code
    /// fixes its family when it is issued, so that a replay of the code can revoke
    /// the tokens issued from it.
    pub family: Option<TokenFamily>,
}

/// Tokens just issued (RFC 6749 §5.1), in clear: hand them to the client and drop them.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<RefreshToken>,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// The scope of the access token.
    pub scope: Scope,
    /// The grant family of the tokens.
    pub family: TokenFamily,
}

/// What an active access token stands for (RFC 7662 §2.2).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner, absent for client-credentials tokens.
    pub user: Option<TokenUser>,
    /// Its scope.
    pub scope: Scope,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires.
    pub expires_at: UnixTime,
    /// Its grant family (to keep a session alive when revoking the others).
    pub family: TokenFamily,
}

/// The resource owner of an active token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUser {
    /// User id (`sub`).
    pub id: UserId,
    /// Email (`username`).
    pub email: String,
}

/// The result of a revocation request (RFC 7009 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The token's family is now revoked (or already was).
    Revoked,
    /// No such token: nothing to do, and the client is told it went fine.
    Unknown,
    /// The token belongs to another client: refused, nothing changed.
    OtherClient,
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// RFC 6749 §5.2 `invalid_grant`: the refresh token is unknown, expired, revoked,
    /// replayed or another client's.
    #[error("the refresh token is invalid")]
    InvalidGrant,
    /// RFC 6749 §5.2 `invalid_scope`: more scope asked than the refresh token carries.
    #[error("the requested scope exceeds the granted scope")]
    InvalidScope,
    /// No randomness for a token.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token-issuing role of an authorization server.
#[async_trait]
pub trait TokenIssuer: Send + Sync {
    /// Issues an access token, and a refresh token when asked (RFC 6749 §5.1).
    async fn issue(&self, grant: GrantRequest) -> Result<IssuedTokens, IssuerError>;

    /// Exchanges a refresh token of `client_id` for new tokens (RFC 6749 §6), rotating
    /// it: the old refresh token and its access token stop working. A refresh token
    /// used twice revokes every token of its grant (RFC 9700 §4.14.2).
    async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &RefreshToken,
        scope: Option<&Scope>,
    ) -> Result<IssuedTokens, IssuerError>;

    /// The stored record of a token, active or not (for the refresh grant's checks).
    async fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, IssuerError>;

    /// What an access token stands for, or `None` when it is not an active access token
    /// of an active user (RFC 7662 §2.2).
    async fn introspect(&self, token: &str) -> Result<Option<TokenInfo>, IssuerError>;

    /// Revokes a token and every other token of its grant (RFC 7009 §2.1).
    async fn revoke(&self, client_id: &str, token: &str) -> Result<Revocation, IssuerError>;

    /// Revokes a user's tokens, except those of the `keep` grant; returns how many.
    async fn revoke_user_tokens(
        &self,
        user_id: UserId,
        keep: Option<&TokenFamily>,
    ) -> Result<u64, IssuerError>;
}

/// Lifetimes of issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Access tokens (DOT's `ACCESS_TOKEN_EXPIRE_SECONDS`, default 36000 s).
    pub access: Duration,
    /// Refresh tokens, counted again from each rotation (default 30 days).
    pub refresh: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(36_000),
            refresh: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Opaque random tokens, stored as SHA-256 digests.
///
/// ```
/// # use std::sync::Arc;
/// # use oauth_core::{GrantRequest, OpaqueTokenIssuer, SystemClock, TokenIssuer, TokenLifetimes};
/// # use oauth_core::memory::{MemoryTokenStore, MemoryUserStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let issuer = OpaqueTokenIssuer::new(
///     Arc::new(MemoryTokenStore::default()),
///     Arc::new(MemoryUserStore::default()),
///     Arc::new(SystemClock),
///     TokenLifetimes::default(),
/// );
/// let issued = issuer
///     .issue(GrantRequest {
///         client_id: "svc".into(),
///         user_id: None,
///         scope: "read".parse()?,
///         with_refresh_token: false,
///         family: None,
///     })
///     .await?;
/// let info = issuer.introspect(issued.access_token.secret()).await?.expect("active");
/// assert_eq!(info.client_id, "svc");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpaqueTokenIssuer {
    tokens: Arc<dyn TokenStore>,
    users: Arc<dyn UserStore>,
    clock: Arc<dyn Clock>,
    lifetimes: TokenLifetimes,
    staff_scopes: Scope,
    refresh_grace: RefreshGrace,
}

impl std::fmt::Debug for OpaqueTokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaqueTokenIssuer")
            .field("clock", &self.clock)
            .field("lifetimes", &self.lifetimes)
            .field("staff_scopes", &self.staff_scopes)
            .finish_non_exhaustive()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl OpaqueTokenIssuer {
    /// An issuer over these stores, with [`STAFF_SCOPE`] as the one staff-only scope.
    #[must_use]
    pub fn new(
        tokens: Arc<dyn TokenStore>,
        users: Arc<dyn UserStore>,
        clock: Arc<dyn Clock>,
        lifetimes: TokenLifetimes,
    ) -> Self {
        Self {
            tokens,
            users,
            clock,
            lifetimes,
            staff_scopes: [STAFF_SCOPE].into_iter().collect(),
            refresh_grace: RefreshGrace::default(),
        }
    }

    /// Lets a just-rotated refresh token be presented again by its client within a
    /// grace period (default: none; see [`RefreshGrace`]).
    #[must_use]
    pub fn refresh_grace(mut self, grace: RefreshGrace) -> Self {
        self.refresh_grace = grace;
        self
    }

    /// Scopes that [`introspect`](TokenIssuer::introspect) reports only while the
    /// token's user is staff (default: `admin`). A user made non-staff loses them at
    /// their tokens' next introspection; a token without a user never shows them.
    #[must_use]
    pub fn staff_scopes(mut self, scopes: Scope) -> Self {
        self.staff_scopes = scopes;
        self
    }
}

#[async_trait]
impl TokenIssuer for OpaqueTokenIssuer {
    async fn issue(&self, grant: GrantRequest) -> Result<IssuedTokens, IssuerError> {
        let now = self.clock.unix();
        let family = match grant.family {
            Some(f) => f,
            None => TokenFamily::generate()?,
        };
        let access = generate_token()?;
        let refresh = grant.with_refresh_token.then(generate_token).transpose()?;
        let record = |plain: &str, kind, ttl| TokenRecord {
            hash: TokenHash::of(plain),
            kind,
            client_id: grant.client_id.clone(),
            user_id: grant.user_id,
            scope: grant.scope.clone(),
            family,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            revoked_at: None,
        };
        let mut records = vec![record(
            &access,
            TokenKind::Access,
            secs(self.lifetimes.access),
        )];
        if let Some(refresh) = &refresh {
            records.push(record(
                refresh,
                TokenKind::Refresh,
                secs(self.lifetimes.refresh),
            ));
        }
        self.tokens.insert_tokens(&records).await?;
        Ok(IssuedTokens {
            access_token: AccessToken::new(access),
            refresh_token: refresh.map(RefreshToken::new),
            expires_in: secs(self.lifetimes.access),
            scope: grant.scope,
            family,
        })
    }

    async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &RefreshToken,
        scope: Option<&Scope>,
    ) -> Result<IssuedTokens, IssuerError> {
        let now = self.clock.unix();
        let old_hash = TokenHash::of(refresh_token.secret());
        let old = self
            .tokens
            .token(&old_hash)
            .await?
            .filter(|t| t.kind == TokenKind::Refresh && t.client_id == client_id)
            .ok_or(IssuerError::InvalidGrant)?;
        // RFC 6749 §6: the new access token may carry less scope, never more; the new
        // refresh token keeps the scope of the old one.
        let access_scope = match scope {
            Some(s) if !s.is_subset(&old.scope) => return Err(IssuerError::InvalidScope),
            Some(s) if !s.is_empty() => s.clone(),
            _ => old.scope.clone(),
        };
        let access = generate_token()?;
        let refresh = generate_token()?;
        let successors = [
            RotatedToken {
                hash: TokenHash::of(&access),
                kind: TokenKind::Access,
                scope: access_scope.clone(),
                expires_at: now.saturating_add(secs(self.lifetimes.access)),
            },
            RotatedToken {
                hash: TokenHash::of(&refresh),
                kind: TokenKind::Refresh,
                scope: old.scope.clone(),
                expires_at: now.saturating_add(secs(self.lifetimes.refresh)),
            },
        ];
        match self
            .tokens
            .rotate_refresh(&old_hash, client_id, now, &successors, self.refresh_grace)
            .await?
        {
            rotation @ (Rotation::Rotated(_) | Rotation::Reissued(_)) => {
                if matches!(rotation, Rotation::Reissued(_)) {
                    tracing::info!(
                        client_id,
                        family = ?old.family,
                        "refresh token reused within the grace period: new tokens issued"
                    );
                }
                Ok(IssuedTokens {
                    access_token: AccessToken::new(access),
                    refresh_token: Some(RefreshToken::new(refresh)),
                    expires_in: secs(self.lifetimes.access),
                    scope: access_scope,
                    family: old.family,
                })
            }
            Rotation::Replayed => {
                tracing::warn!(
                    client_id,
                    family = ?old.family,
                    "refresh token replayed: revoked every token of its grant"
                );
                Err(IssuerError::InvalidGrant)
            }
            _ => Err(IssuerError::InvalidGrant),
        }
    }

    async fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, IssuerError> {
        Ok(self.tokens.token(&TokenHash::of(token)).await?)
    }

    async fn introspect(&self, token: &str) -> Result<Option<TokenInfo>, IssuerError> {
        let now = self.clock.unix();
        let Some((record, owner)) = self
            .tokens
            .token_with_owner(&TokenHash::of(token))
            .await?
            .filter(|(t, _)| t.kind == TokenKind::Access && t.is_active(now))
        else {
            return Ok(None);
        };
        let user = match record.user_id {
            None => None,
            Some(id) => {
                // One joined lookup where the store can; else ask the user store.
                let owner = match owner {
                    Some(owner) => Some(owner),
                    None => self.users.user_by_id(id).await?.map(|u| TokenOwner {
                        email: u.email,
                        is_active: u.is_active,
                        is_staff: u.is_staff,
                    }),
                };
                match owner.filter(|o| o.is_active) {
                    Some(o) => Some((
                        TokenUser {
                            id,
                            email: o.email.into(),
                        },
                        o.is_staff,
                    )),
                    None => return Ok(None),
                }
            }
        };
        // Staff-only scopes hold while the user is staff: decided here, at every
        // introspection, so a demotion takes effect at once.
        let (user, is_staff) = match user {
            Some((u, staff)) => (Some(u), staff),
            None => (None, false),
        };
        // (The scope is rebuilt only when it names a staff scope to remove.)
        let scope = if is_staff || !has_any(&record.scope, &self.staff_scopes) {
            record.scope
        } else {
            without(&record.scope, &self.staff_scopes)
        };
        Ok(Some(TokenInfo {
            client_id: record.client_id,
            user,
            scope,
            issued_at: record.issued_at,
            expires_at: record.expires_at,
            family: record.family,
        }))
    }

    async fn revoke(&self, client_id: &str, token: &str) -> Result<Revocation, IssuerError> {
        let Some(record) = self.tokens.token(&TokenHash::of(token)).await? else {
            return Ok(Revocation::Unknown);
        };
        if record.client_id != client_id {
            return Ok(Revocation::OtherClient);
        }
        self.tokens
            .revoke_family(&record.family, self.clock.unix())
            .await?;
        Ok(Revocation::Revoked)
    }

    async fn revoke_user_tokens(
        &self,
        user_id: UserId,
        keep: Option<&TokenFamily>,
    ) -> Result<u64, IssuerError> {
        Ok(self
            .tokens
            .revoke_user_tokens(user_id, keep, self.clock.unix())
            .await?)
    }
}
