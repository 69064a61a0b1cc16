//! Moving from Django OAuth Toolkit without logging anyone out (feature
//! `django-import`): [`import`] reads a Django + DOT database ([`DjangoSource`]) and
//! writes its users, applications and live tokens into a [`SeaOrmStore`].
//!
//! - Users keep their Django password hashes, which the
//!   [`PasswordHasher`](crate::PasswordHasher) verifies as they are and replaces with
//!   scrypt at the next successful sign-in; unusable passwords (`!…`) stay unusable.
//! - Applications keep their `client_id` and secret: DOT's hashed secrets are
//!   verified the same way (and re-hashed at the next successful authentication),
//!   secrets DOT kept in clear are hashed now.
//! - Unexpired access tokens and unrevoked refresh tokens are stored as their
//!   SHA-256 only (DOT ≥ 3's `token_checksum` is exactly that), each refresh token
//!   in the family of the access token it was issued with.
//! - A second run imports only what is new or changed in the source since the
//!   last (a ledger table remembers each imported row's fingerprint), so it never
//!   duplicates and never undoes a hash upgraded here; a refresh token DOT
//!   revoked since, or an access token it deleted since (refreshed or revoked
//!   there), is revoked here. `dry_run` writes nothing.
//! - A row that cannot be imported is reported in the [`ImportReport`] and
//!   skipped; writes go in transactions of [`ImportOptions::batch_size`] rows, and a
//!   batch that fails is retried row by row. No secret is ever logged or reported.
//!
//! ```no_run
//! # use oauth_core::django::{DjangoSource, ImportOptions, import};
//! # use oauth_core::{PasswordHasher, ScryptParams, sea::SeaOrmStore};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = DjangoSource::connect("sqlite:///srv/django/db.sqlite3", None).await?;
//! let target = SeaOrmStore::open("sqlite://auth_server.db").await?;
//! let options = ImportOptions::new(PasswordHasher::new(ScryptParams::PRODUCTION)?, "read write".parse()?);
//! let report = import(&source, &target, &options).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

mod import;
mod report;
mod source;

pub use import::{ImportOptions, import};
pub use report::{Counts, ImportReport, Skipped};
pub use source::DjangoSource;

/// Failures that stop an import before or between batches (a bad row never does).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The Django database could not be opened or read.
    #[error("{0}")]
    Source(String),
    /// Our database failed.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// Hashing a clear-text client secret failed.
    #[error(transparent)]
    Password(#[from] crate::PasswordError),
}

#[cfg(doc)]
use crate::sea::SeaOrmStore;
