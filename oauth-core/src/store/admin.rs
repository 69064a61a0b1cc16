//! What the admin console asks of the stores: filtered, ordered, counted lists, and
//! a log of every change made through the console.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreError, UserId};

/// One page of a list, with the number of items across all pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// How many items match, on every page.
    pub total: u64,
}

/// The order of the admin's user list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UserOrder {
    /// By email, A to Z (the default).
    #[default]
    Email,
    /// By email, Z to A.
    EmailDesc,
    /// Newest accounts first.
    JoinedDesc,
    /// Oldest accounts first.
    Joined,
    /// Most recent sign-in first; never signed in last.
    LastLoginDesc,
    /// Never signed in first, then the oldest sign-in first: exactly the
    /// reverse of [`LastLoginDesc`](Self::LastLoginDesc) but for ties.
    LastLogin,
    /// Non-staff first, then by email.
    Staff,
    /// Staff first, then by email.
    StaffDesc,
    /// Inactive first, then by email.
    Active,
    /// Active first, then by email.
    ActiveDesc,
}

impl UserOrder {
    /// Every order, with its query-string value (`?o=`).
    pub const ALL: [(Self, &'static str); 10] = [
        (Self::Email, "email"),
        (Self::EmailDesc, "-email"),
        (Self::Joined, "date_joined"),
        (Self::JoinedDesc, "-date_joined"),
        (Self::LastLoginDesc, "-last_login"),
        (Self::LastLogin, "last_login"),
        (Self::Staff, "is_staff"),
        (Self::StaffDesc, "-is_staff"),
        (Self::Active, "is_active"),
        (Self::ActiveDesc, "-is_active"),
    ];

    /// The order for a query-string value; unknown values give the default.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == s)
            .map_or(Self::default(), |(o, _)| *o)
    }

    /// The query-string value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("email", |(_, n)| n)
    }
}

/// A search of the user list (Django admin's `?q=`, filters and ordering).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Part of the email, matched case-insensitively.
    pub search: Option<String>,
    /// Only staff (`Some(true)`) or only non-staff users.
    pub is_staff: Option<bool>,
    /// Only active or only inactive users.
    pub is_active: Option<bool>,
    /// The order.
    pub order: UserOrder,
    /// Items to skip.
    pub offset: u64,
    /// Items on the page.
    pub limit: u64,
}

/// A filter of the token list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenQuery {
    /// Only this user's tokens.
    pub user_id: Option<UserId>,
    /// Only this client's tokens.
    pub client_id: Option<String>,
    /// Items to skip.
    pub offset: u64,
    /// Items on the page.
    pub limit: u64,
}

/// A change to record in the admin log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLogEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who (the staff user).
    pub actor_id: UserId,
    /// What: `create`, `change`, `delete`, `revoke`, `rotate secret`, …
    pub action: String,
    /// The kind of object: `user`, `application`, `token`.
    pub object_type: String,
    /// The object's id.
    pub object_id: String,
    /// What the object was called then (an email, an application name).
    pub object_repr: String,
    /// Which fields changed, in words; never a secret.
    pub detail: String,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its id, increasing.
    pub id: i64,
    /// The change.
    pub entry: NewLogEntry,
}

/// The admin console's log of changes (Django admin's `LogEntry`).
#[async_trait]
pub trait AdminLog: Send + Sync {
    /// Records a change.
    async fn record(&self, entry: NewLogEntry) -> Result<(), StoreError>;

    /// Changes, newest first.
    async fn entries(&self, offset: u64, limit: u64) -> Result<Page<LogEntry>, StoreError>;
}
