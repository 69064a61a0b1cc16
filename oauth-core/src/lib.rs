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
//!
//! # Features
//! | feature | default | enables |
//! |---|---|---|
//! | `sea-orm` | yes | [`sea::SeaOrmStore`] with its migrations |

mod email;
pub mod password;
mod scope;
mod secret;
pub mod store;
mod token;

pub use email::{Email, InvalidEmail};
pub use password::{
    HasherStats, PasswordError, PasswordHasher, PasswordPolicy, PasswordProblem, ScryptParams,
};
pub use scope::{InvalidScope, Scope};
pub use secret::{AccessToken, ClientSecret, Password, RefreshToken};
#[cfg(feature = "sea-orm")]
pub use store::sea;
pub use store::{
    Client, ClientKind, ClientRegistry, GrantType, NewUser, RotatedToken, Rotation, StoreError,
    TokenFamily, TokenKind, TokenRecord, TokenStore, UnixTime, UnknownGrantType, User, UserFlags,
    UserId, UserStore, memory,
};
pub use token::{RandomnessUnavailable, TOKEN_BYTES, TokenHash, generate_token};
