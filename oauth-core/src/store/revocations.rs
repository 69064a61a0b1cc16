//! The revocation log: every revocation, appended in the transaction that made it,
//! so that caches elsewhere — resource servers, other auth server instances — can
//! follow it (`GET /o/revocations/`, docs/revocation-events.md). A staff user
//! demoted is logged too, as a re-evaluation of their tokens
//! ([`RevocationKind::TokenClaimsChange`]).

use std::fmt;

use async_trait::async_trait;

use super::{StoreError, UnixTime, UserId};
use crate::token::TokenHash;

/// Why tokens were revoked, as the event type a receiver sees: the OpenID Shared
/// Signals / CAEP vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationKind {
    /// `token-revoked`: RFC 7009, a rotated or replayed refresh token's family, a
    /// replayed authorization code, or a client's tokens (deletion, new secret).
    TokenRevoked,
    /// `session-revoked`: a user's tokens — deactivation, deletion, an admin's
    /// "revoke all", or the user withdrawing consent to one client.
    SessionRevoked,
    /// `credential-change`: the user's password changed; their other tokens end.
    CredentialChange,
    /// `token-claims-change`: a user lost their staff status. Their tokens stay
    /// valid but what introspection says of them changed (staff-only scopes such
    /// as `admin` are no longer reported): receivers drop their cached answers
    /// and ask again. Nothing is revoked.
    TokenClaimsChange,
}

impl RevocationKind {
    /// The event type on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenRevoked => "token-revoked",
            Self::SessionRevoked => "session-revoked",
            Self::CredentialChange => "credential-change",
            Self::TokenClaimsChange => "token-claims-change",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::TokenRevoked,
            Self::SessionRevoked,
            Self::CredentialChange,
            Self::TokenClaimsChange,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Which tokens an event ends.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokedTokens {
    /// One access token, by its SHA-256 (the key an RFC 7662 cache keeps it under).
    Token(TokenHash),
    /// The tokens of a user — of one client only when `client_id` is set — issued
    /// at or before the event's time.
    User {
        /// The user (RFC 7662 `sub`).
        user_id: UserId,
        /// Only this client's tokens, if set.
        client_id: Option<String>,
    },
    /// A client's tokens issued at or before the event's time.
    Client(String),
}

impl fmt::Debug for RevokedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The digest is no secret, but a shortened one reads better in logs.
            Self::Token(h) => write!(f, "Token({}…)", &h.to_hex()[..12]),
            Self::User { user_id, client_id } => f
                .debug_struct("User")
                .field("user_id", user_id)
                .field("client_id", client_id)
                .finish(),
            Self::Client(c) => f.debug_tuple("Client").field(c).finish(),
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in the log: increasing, not necessarily dense.
    pub id: i64,
    /// When it happened; for user and client events, tokens issued at or before it end.
    pub at: UnixTime,
    /// Why.
    pub kind: RevocationKind,
    /// What ended.
    pub tokens: RevokedTokens,
}

/// A slice of the log after a position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationBatch {
    /// Entries after the requested position, oldest first.
    pub events: Vec<RevocationEvent>,
    /// Entries up to this id were purged: a reader positioned before it has missed
    /// some and must start over (flush what it cached).
    pub purged_through: i64,
    /// The newest id in the log (0 when it was never written).
    pub latest: i64,
}

/// A log of revocations that readers follow by position.
///
/// Stores append to it inside their revocations ([`TokenStore`](super::TokenStore)'s
/// `revoke_*` and `rotate_refresh`): an entry exists exactly when its revocation
/// committed.
#[async_trait]
pub trait RevocationLog: Send + Sync {
    /// Up to `limit` entries with ids greater than `after`, oldest first.
    async fn revocations_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<RevocationBatch, StoreError>;

    /// Deletes entries older than `before`; returns how many.
    async fn purge_revocations(&self, before: UnixTime) -> Result<u64, StoreError>;

    /// A receiver that changes when entries may have been appended — by this process
    /// at once, by another one sharing the database as soon as the store hears of
    /// it (PostgreSQL `LISTEN`). Readers still re-read periodically: a wake-up is a
    /// hint, the log is the truth.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// The in-process wake-up behind [`RevocationLog::subscribe`].
#[derive(Debug)]
pub(crate) struct Signal(tokio::sync::watch::Sender<u64>);

impl Default for Signal {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(0).0)
    }
}

impl Signal {
    /// Tells every subscriber that the log may have grown.
    pub(crate) fn wake(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}
