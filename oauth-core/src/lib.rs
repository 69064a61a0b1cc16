//! OAuth 2.0 building blocks for axum services: the authorization-server side
//! (users, clients, token issuance and introspection) and the resource-server side.
//!
//! # Layers
//! | module | what it holds |
//! |---|---|
//! | [`Scope`], [`Password`], [`ClientSecret`], [`AccessToken`], [`RefreshToken`], [`Email`] | value types; secrets print as `[redacted]` |
//! | [`password`] | scrypt hashing off the async runtime, Django's password rules |
//! | [`store`] | the [`UserStore`], [`ClientRegistry`] and [`TokenStore`] traits |
//! | [`memory`] | in-memory stores for tests and docs |
//! | [`sea`] | SQLite / PostgreSQL stores (feature `sea-orm`) |
//! | [`issuer`] | [`TokenIssuer`]: issue, refresh with rotation, introspect, revoke |
//! | [`server`] | [`AuthServer`]: the authorization server as an axum router (feature `server`) |
//! | [`pages`] | login, consent and authorized-applications pages: the authorization code grant in a browser (feature `pages`) |
//! | [`resource`] | [`resource::Introspector`] and extractors for resource servers (feature `resource`) |
//! | [`django`] | importing a Django + django-oauth-toolkit database (feature `django-import`) |
//! | [`openapi`] | OpenAPI 3.1 documents generated from the handlers, the shared error responses (feature `openapi`) |
//!
//! # Features
//! | feature | default | enables |
//! |---|---|---|
//! | `sea-orm` | yes | [`sea::SeaOrmStore`] with its migrations |
//! | `server` | yes | [`AuthServer`] (axum, oxide-auth) |
//! | `pages` | yes | [`pages`]: the browser half (askama templates, tower-sessions) |
//! | `resource` | yes | [`resource`]: introspection client with cache (reqwest, moka) |
//! | `django` | yes | verifying Django's password hashes (pbkdf2, argon2, bcrypt, scrypt) for imported users and client secrets |
//! | `django-import` | yes | [`django`]: `import` of a Django + DOT database into [`sea::SeaOrmStore`] |
//! | `openapi` | yes | [`openapi`] and [`AuthServer::router_and_openapi`] (utoipa, utoipa-axum) |

#![warn(missing_docs)]

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(any(feature = "server", feature = "resource"))]
pub mod api;
mod clock;
#[cfg(feature = "django-import")]
pub mod django;
mod email;
pub mod issuer;
pub mod metrics;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "pages")]
pub mod pages;
pub mod password;
#[cfg(feature = "resource")]
pub mod resource;
mod scope;
mod secret;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
#[cfg(test)]
mod test_inputs;
mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{Email, InvalidEmail};
pub use issuer::{
    GrantRequest, IssuedTokens, IssuerError, OpaqueTokenIssuer, Revocation, TokenInfo, TokenIssuer,
    TokenLifetimes, TokenUser,
};
pub use password::{
    HasherStats, PasswordError, PasswordHasher, PasswordPolicy, PasswordProblem, ScryptParams,
};
pub use scope::{InvalidScope, Scope};
pub use secret::{AccessToken, ClientSecret, Password, RefreshToken};
#[cfg(feature = "server")]
pub use server::{AuthServer, AuthServerError, ForwardedHeader, IpNet, ThrottleConfig};
#[cfg(feature = "sea-orm")]
pub use store::sea;
pub use store::{
    AdminLog, AuthorizationCode, Client, ClientKind, ClientRegistry, Consent, GrantStore,
    GrantType, LogEntry, NewLogEntry, NewUser, Page, Redemption, RefreshGrace, RevocationBatch,
    RevocationEvent, RevocationKind, RevocationLog, RevokedTokens, RotatedToken, Rotation,
    StoreError, TokenFamily, TokenKind, TokenOwner, TokenQuery, TokenRecord, TokenStore, UnixTime,
    UnknownGrantType, User, UserFlags, UserId, UserOrder, UserQuery, UserStore, memory,
};
pub use store::{FailureCount, ThrottleStore};
pub use token::{RandomnessUnavailable, TOKEN_BYTES, TokenHash, generate_token};
