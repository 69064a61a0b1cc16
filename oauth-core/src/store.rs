//! Storage traits for users, clients and tokens, with the records they exchange.
//!
//! Each trait is async, `Send + Sync` and object safe, so a server holds its stores
//! as `Arc<dyn UserStore>` and friends. Two implementations ship with the crate:
//! [`memory`] (for docs and unit tests) and, with the `sea-orm` feature, [`sea`]
//! (SQLite or PostgreSQL). Both pass the same contract tests.

mod admin;
mod grant;
pub mod memory;
mod revocations;
#[cfg(feature = "sea-orm")]
pub mod sea;
mod throttle;

pub use admin::{AdminLog, LogEntry, NewLogEntry, Page, TokenQuery, UserOrder, UserQuery};
pub use grant::{AuthorizationCode, Consent, GrantStore, Redemption};
pub use revocations::{
    RevocationBatch, RevocationEvent, RevocationKind, RevocationLog, RevokedTokens,
};
#[cfg(feature = "server")]
pub use throttle::MemoryThrottleStore;
pub use throttle::{DEFAULT_FAILURE_RESET, FailureCount, ThrottleStore};

/// The key under which a browser session stores its signed-in user's id: the
/// pages write it, the session stores read it to end a user's sessions.
#[cfg(feature = "pages")]
pub(crate) const SESSION_USER_KEY: &str = "user_id";

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::email::Email;
use crate::scope::Scope;
use crate::token::{RandomnessUnavailable, TokenHash, fill_random};

/// A user's numeric id (the `sub` of the tokens issued to them).
pub type UserId = i64;

pub use crate::clock::UnixTime;

/// Errors of every store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A unique key is taken (an email, a client id, a token digest).
    #[error("a record with this key already exists")]
    Conflict,
    /// The record to change does not exist.
    #[error("no such record")]
    NotFound,
    /// A stored value could not be read back (a column holds something invalid).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No database connection could be had within the pool's wait (the database is
    /// down, unreachable or saturated): a transient failure, answered 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// How long a client should wait before retrying, when the failure is transient
    /// ([`Unavailable`](Self::Unavailable): 5 s) rather than a fault.
    #[must_use]
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Unavailable(_) => Some(std::time::Duration::from_secs(5)),
            _ => None,
        }
    }
}

/// A user account. The email is the user name.
#[derive(Clone, PartialEq)]
pub struct User {
    /// Database id.
    pub id: UserId,
    /// Normalized email; unique case-insensitively.
    pub email: Email,
    /// scrypt PHC string, or `None` for an account that cannot sign in with a password.
    pub password_hash: Option<String>,
    /// Inactive users cannot sign in and their tokens are not honoured.
    pub is_active: bool,
    /// May use the admin.
    pub is_staff: bool,
    /// Has every permission.
    pub is_superuser: bool,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_login: Option<DateTime<Utc>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("has_password", &self.password_hash.is_some())
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .field("date_joined", &self.date_joined)
            .field("last_login", &self.last_login)
            .finish()
    }
}

/// What is needed to create a [`User`].
#[derive(Clone)]
pub struct NewUser {
    /// Normalized email.
    pub email: Email,
    /// scrypt PHC string from [`PasswordHasher::hash`](crate::PasswordHasher::hash).
    pub password_hash: Option<String>,
    /// See [`User::is_active`].
    pub is_active: bool,
    /// See [`User::is_staff`].
    pub is_staff: bool,
    /// See [`User::is_superuser`].
    pub is_superuser: bool,
    /// See [`User::date_joined`].
    pub date_joined: DateTime<Utc>,
}

impl NewUser {
    /// An active, unprivileged user.
    #[must_use]
    pub fn new(email: Email, password_hash: String, date_joined: DateTime<Utc>) -> Self {
        Self {
            email,
            password_hash: Some(password_hash),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            date_joined,
        }
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

/// Flags an administrator may change on a user; `None` leaves a flag as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserFlags {
    /// New [`User::is_active`].
    pub is_active: Option<bool>,
    /// New [`User::is_staff`].
    pub is_staff: Option<bool>,
    /// New [`User::is_superuser`].
    pub is_superuser: Option<bool>,
}

/// Storage of user accounts: the resource owners of RFC 6749 §1.1.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the email is taken (compared case-insensitively).
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// The user with this email (case-insensitively), for the password grant (RFC 6749 §4.3.2).
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this id, for introspection (RFC 7662 §2.2 `sub`, `username`).
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<(), StoreError>;

    /// A password change: replaces the user's password hash and revokes every active
    /// token of the user in `tokens` except those of `keep` (the session that made
    /// the change), so that a stolen session ends with the old password (their
    /// families revoked as in RFC 7009 §2.1). Returns how many tokens were revoked.
    ///
    /// A store that also holds the tokens does both in one transaction, and orders
    /// it against refresh rotations as [`TokenStore::revoke_user_tokens`] does. The
    /// default revokes first, then stores the hash: a failure in between leaves the
    /// old password with the other sessions ended, never the new password with them
    /// still alive.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn set_password_hash_and_revoke(
        &self,
        id: UserId,
        password_hash: &str,
        tokens: &dyn TokenStore,
        keep: Option<&TokenFamily>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let revoked = tokens.revoke_user_tokens(id, keep, now).await?;
        self.set_password_hash(id, password_hash).await?;
        Ok(revoked)
    }

    /// The password hashes still in a legacy (Django) format — `pbkdf2_…`,
    /// `argon2$…`, `bcrypt…`, `scrypt$…`, kept by an import until each user's next
    /// sign-in — so that the hasher makes an unknown email cost as much as the
    /// slowest of them
    /// ([`PasswordHasher::learn_legacy_hashes`](crate::PasswordHasher::learn_legacy_hashes)).
    /// Read once at start-up; empty once every imported user has signed in. The
    /// default: none.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be read.
    async fn legacy_password_hashes(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// Records a successful sign-in.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<(), StoreError>;

    /// Changes administrative flags and returns the updated user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn set_user_flags(&self, id: UserId, flags: UserFlags) -> Result<User, StoreError>;

    /// Users ordered by id, for the admin.
    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError>;

    /// Users matching a search, ordered and counted, for the admin's list.
    async fn search_users(&self, query: &UserQuery) -> Result<Page<User>, StoreError>;

    /// Deletes a user with their tokens; `false` when there was no such user.
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;
}

/// RFC 6749 §2.1 client types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// Can keep a secret: authenticates at the token endpoint.
    Confidential,
    /// Cannot keep a secret (browser or native apps): identified by `client_id` only.
    Public,
}

impl ClientKind {
    /// The name used in storage and configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }
}

impl FromStr for ClientKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "confidential" => Ok(Self::Confidential),
            "public" => Ok(Self::Public),
            other => Err(StoreError::Corrupt(format!(
                "unknown client kind {other:?}"
            ))),
        }
    }
}

/// The grant types a client may be allowed (RFC 6749 §4, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE (RFC 7636).
    AuthorizationCode,
    /// RFC 6749 §4.3, for first-party clients only.
    Password,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §6.
    RefreshToken,
}

impl GrantType {
    /// Every grant type, in the order metadata lists them.
    pub const ALL: [GrantType; 4] = [
        Self::AuthorizationCode,
        Self::Password,
        Self::ClientCredentials,
        Self::RefreshToken,
    ];

    /// The `grant_type` parameter value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `grant_type` value this toolkit does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown grant type")]
pub struct UnknownGrantType;

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or(UnknownGrantType)
    }
}

/// A registered client (RFC 6749 §2).
#[derive(Clone, PartialEq)]
pub struct Client {
    /// RFC 6749 §2.2 identifier; unique.
    pub client_id: String,
    /// scrypt PHC string of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// Confidential or public.
    pub kind: ClientKind,
    /// Human-readable name.
    pub name: String,
    /// Grants this client may use; anything else answers `unauthorized_client`.
    pub grant_types: Vec<GrantType>,
    /// Registered redirection endpoints (RFC 6749 §3.1.2), compared exactly (but for
    /// the port of a loopback IP address of a public client, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// Web origins (`https://app.example.com`) whose scripts may call the token,
    /// revocation and metadata endpoints (CORS; DOT's `allowed_origins`).
    pub allowed_origins: Vec<String>,
    /// First-party client: the user is not asked to consent (DOT's `skip_authorization`).
    pub skip_authorization: bool,
    /// The most a token for this client may carry.
    pub allowed_scope: Scope,
    /// Granted when a request names no scope (RFC 6749 §3.3).
    pub default_scope: Scope,
    /// The user who registered the client, if any.
    pub owner: Option<UserId>,
    /// When the client was registered.
    pub created_at: DateTime<Utc>,
}

impl Client {
    /// True when the client may use `grant`.
    #[must_use]
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether a redirect to this client can only reach the client itself, so that a
    /// remembered consent may be reused without asking (RFC 9700 §2.1, OAuth 2.1
    /// §7.3): a confidential client authenticates at the token endpoint; a public
    /// client is assured only when every redirect URI it registered is `https`.
    /// Public clients with loopback or custom-scheme redirect URIs can be
    /// impersonated by any native app, so they are asked every time.
    #[must_use]
    pub fn identity_assured(&self) -> bool {
        match self.kind {
            ClientKind::Confidential => true,
            ClientKind::Public => {
                !self.redirect_uris.is_empty()
                    && self.redirect_uris.iter().all(|u| u.starts_with("https://"))
            }
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("has_secret", &self.secret_hash.is_some())
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("grant_types", &self.grant_types)
            .field("redirect_uris", &self.redirect_uris)
            .field("allowed_origins", &self.allowed_origins)
            .field("skip_authorization", &self.skip_authorization)
            .field("allowed_scope", &self.allowed_scope)
            .field("default_scope", &self.default_scope)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Storage of registered clients (RFC 6749 §2).
#[async_trait]
pub trait ClientRegistry: Send + Sync {
    /// Registers a client (RFC 6749 §2).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the `client_id` is taken.
    async fn register_client(&self, client: Client) -> Result<(), StoreError>;

    /// The client with this id, for client authentication (RFC 6749 §2.3).
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Replaces a client's registration (all fields but `client_id` and `created_at`).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    async fn update_client(&self, client: Client) -> Result<(), StoreError>;

    /// Clients ordered by id, for the admin.
    async fn list_clients(&self, offset: u64, limit: u64) -> Result<Vec<Client>, StoreError>;

    /// Deletes a client with its tokens; `false` when there was no such client.
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError>;

    /// The clients a user registered ([`Client::owner`]), for DOT's self-service
    /// application pages. The default walks [`list_clients`](Self::list_clients).
    async fn clients_of(&self, owner: UserId) -> Result<Vec<Client>, StoreError> {
        const PAGE: u64 = 200;
        let mut offset = 0;
        let mut found = Vec::new();
        loop {
            let page = self.list_clients(offset, PAGE).await?;
            let n = page.len() as u64;
            found.extend(page.into_iter().filter(|c| c.owner == Some(owner)));
            if n < PAGE {
                return Ok(found);
            }
            offset += PAGE;
        }
    }

    /// Whether some client registered this web origin (`https://app.example.com`)
    /// in [`Client::allowed_origins`], for CORS. The default walks
    /// [`list_clients`](Self::list_clients).
    async fn origin_allowed(&self, origin: &str) -> Result<bool, StoreError> {
        const PAGE: u64 = 200;
        let mut offset = 0;
        loop {
            let page = self.list_clients(offset, PAGE).await?;
            if page
                .iter()
                .any(|c| c.allowed_origins.iter().any(|o| o == origin))
            {
                return Ok(true);
            }
            if (page.len() as u64) < PAGE {
                return Ok(false);
            }
            offset += PAGE;
        }
    }
}

/// Access or refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// RFC 6749 §1.4.
    Access,
    /// RFC 6749 §1.5.
    Refresh,
}

impl TokenKind {
    /// The RFC 7009 `token_type_hint` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access_token",
            Self::Refresh => "refresh_token",
        }
    }
}

/// The tokens descending from one grant: an access token, its refresh token and
/// everything later rotated from them. Revocation works on whole families.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenFamily([u8; 16]);

impl TokenFamily {
    /// A new random family id.
    ///
    /// # Errors
    /// [`RandomnessUnavailable`] when the OS has no entropy to give.
    pub fn generate() -> Result<Self, RandomnessUnavailable> {
        let mut b = [0u8; 16];
        fill_random(&mut b)?;
        Ok(Self(b))
    }

    /// Wraps a stored id.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw id.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Debug for TokenFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenFamily(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// A stored token: its digest and what it grants, never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// SHA-256 of the token; unique.
    pub hash: TokenHash,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: String,
    /// The resource owner, or `None` for a client-credentials token.
    pub user_id: Option<UserId>,
    /// What it grants.
    pub scope: Scope,
    /// Its grant family.
    pub family: TokenFamily,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it stops being valid.
    pub expires_at: UnixTime,
    /// When it was revoked or rotated away, if it was.
    pub revoked_at: Option<UnixTime>,
}

impl TokenRecord {
    /// True when the token is neither revoked nor expired at `now`.
    #[must_use]
    pub fn is_active(&self, now: UnixTime) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What introspection needs of a token's resource owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    /// The owner's email (RFC 7662 `username`).
    pub email: Email,
    /// Whether the account may still act.
    pub is_active: bool,
    /// Whether the account is staff: its tokens keep their staff-only scopes.
    pub is_staff: bool,
}

/// A token to issue in place of a rotated refresh token; it inherits the old token's
/// client, user and family.
#[derive(Debug, Clone, PartialEq)]
pub struct RotatedToken {
    /// SHA-256 of the new token.
    pub hash: TokenHash,
    /// Access or refresh.
    pub kind: TokenKind,
    /// What it grants: the old scope or a subset of it (RFC 6749 §6).
    pub scope: Scope,
    /// When it stops being valid.
    pub expires_at: UnixTime,
}

/// The result of [`TokenStore::rotate_refresh`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Rotation {
    /// This call consumed the refresh token; the new tokens are stored. Carries the
    /// consumed token's record as it was before rotation.
    Rotated(TokenRecord),
    /// The refresh token had already been used or revoked: a replay. The whole family,
    /// including tokens issued by the rotation that won, is now revoked
    /// (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
    Replayed,
    /// No active refresh token of this client has that digest (unknown, expired,
    /// an access token, or another client's): nothing changed.
    Invalid,
    /// The refresh token was rotated moments ago and is presented again by the
    /// same client within the [`RefreshGrace`] period (a response lost on the way,
    /// two tabs refreshing at once): another set of successors is stored and
    /// nothing is revoked. Carries the token's record.
    Reissued(TokenRecord),
}

/// How long a just-rotated refresh token may be presented again by the same client
/// and still get new tokens instead of revoking its family (DOT's
/// `REFRESH_TOKEN_GRACE_PERIOD_SECONDS`, Hydra's `rotation_grace_period`, Auth0's
/// reuse interval). The default, zero, allows no reuse: every second use is a
/// replay (RFC 9700 §4.14.2).
///
/// A reuse is granted only while the family is otherwise intact — a token revoked
/// by RFC 7009, a password change or any other revocation is never revived — and at
/// most [`max_reuse`](Self::max_reuse) times; past either limit it is a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshGrace {
    /// Seconds after a rotation during which the rotated token may be reused.
    pub period: i64,
    /// How many extra sets of successors one rotated token may get; `None`: no cap.
    pub max_reuse: Option<u32>,
}

impl RefreshGrace {
    /// Whether a token rotated at `rotated_at` is still within the period at `now`.
    #[must_use]
    pub fn covers(&self, rotated_at: UnixTime, now: UnixTime) -> bool {
        self.period > 0 && now >= rotated_at && now - rotated_at <= self.period
    }

    /// Whether one more reuse is allowed when `issued` successors (the first
    /// rotation's included) already descend from the token.
    #[must_use]
    pub fn allows_another(&self, issued: u64) -> bool {
        self.max_reuse.is_none_or(|max| issued <= u64::from(max))
    }
}

/// Storage of issued tokens, by digest.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores newly issued tokens (an access token and its refresh token), all or none
    /// (RFC 6749 §5.1).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a digest is already stored.
    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError>;

    /// The token with this digest, active or not, for introspection (RFC 7662 §2.2).
    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;

    /// The token with this digest and, where the store can join, its owner — one
    /// lookup for an introspection instead of two. `None` as the owner means "not
    /// looked up here": ask the [`UserStore`]. The default does exactly that.
    async fn token_with_owner(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(TokenRecord, Option<TokenOwner>)>, StoreError> {
        Ok(self.token(hash).await?.map(|t| (t, None)))
    }

    /// Consumes a refresh token of `client_id` and issues its successors (RFC 6749 §6),
    /// atomically: of any number of concurrent calls with one token — in this process
    /// or another sharing the database — exactly one returns [`Rotation::Rotated`].
    /// The consumed token and every other active token of its family are revoked.
    /// Within `grace` of its rotation, the same token gets [`Rotation::Reissued`]
    /// instead of [`Rotation::Replayed`] (see [`RefreshGrace`]).
    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        client_id: &str,
        now: UnixTime,
        new: &[RotatedToken],
        grace: RefreshGrace,
    ) -> Result<Rotation, StoreError>;

    /// Revokes every active token of a family (RFC 7009 §2.1); returns how many changed.
    ///
    /// Every revocation below holds against a concurrent [`rotate_refresh`](Self::rotate_refresh)
    /// of the same tokens: the rotation happens entirely before it (and its new
    /// tokens are revoked too) or fails as [`Rotation::Replayed`].
    async fn revoke_family(&self, family: &TokenFamily, now: UnixTime) -> Result<u64, StoreError>;

    /// Revokes every active token of a user except those of `keep` (after a password
    /// change, the session that made it may stay); returns how many changed.
    async fn revoke_user_tokens(
        &self,
        user_id: UserId,
        keep: Option<&TokenFamily>,
        now: UnixTime,
    ) -> Result<u64, StoreError>;

    /// Revokes every active token of `user_id` issued to `client_id` (the user withdrew
    /// their consent to that client); returns how many changed.
    async fn revoke_user_client_tokens(
        &self,
        user_id: UserId,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError>;

    /// Revokes every active token of a client (its deletion or a new secret);
    /// returns how many changed.
    async fn revoke_client_tokens(&self, client_id: &str, now: UnixTime)
    -> Result<u64, StoreError>;

    /// Tokens, newest first, for the admin's list; never the tokens themselves.
    async fn list_tokens(&self, query: &TokenQuery) -> Result<Page<TokenRecord>, StoreError>;

    /// Deletes tokens that expired before `before`; returns how many.
    ///
    /// Revoked tokens are kept until they expire, so a replayed refresh token is
    /// still recognised as a replay (and revokes its family) for its whole lifetime.
    async fn purge_tokens(&self, before: UnixTime) -> Result<u64, StoreError>;
}
