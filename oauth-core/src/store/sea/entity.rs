//! sea-orm entities of the store's tables. Table names carry an `oauth_` prefix so the
//! store can share a database with the embedding application's own tables.

pub mod admin_log;
pub mod client;
pub mod code;
pub mod consent;
pub mod import_ledger;
pub mod revocation;
pub mod revocation_purged;
pub mod session;
pub mod throttle;
pub mod token;
pub mod user;
