//! In-memory stores, for documentation, unit tests and throw-away servers.
//!
//! They keep everything in one process and lose it on exit. Each store holds one
//! mutex, taken for the few microseconds a call needs and never across an `.await`,
//! which also gives [`TokenStore::rotate_refresh`] its atomicity.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::revocations::Signal;
use super::{
    AdminLog, AuthorizationCode, Client, ClientRegistry, Consent, GrantStore, LogEntry,
    NewLogEntry, NewUser, Page, Redemption, RefreshGrace, RevocationBatch, RevocationEvent,
    RevocationKind, RevocationLog, RevokedTokens, RotatedToken, Rotation, StoreError, TokenFamily,
    TokenKind, TokenQuery, TokenRecord, TokenStore, UnixTime, User, UserFlags, UserId, UserOrder,
    UserQuery, UserStore,
};
use crate::email::Email;
use crate::token::TokenHash;

const TOKEN: RevocationKind = RevocationKind::TokenRevoked;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave our maps half-updated (every
    // mutation is a single insert or field write), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn page<T: Clone>(items: impl Iterator<Item = T>, offset: u64, limit: u64) -> Vec<T> {
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    items.skip(offset).take(limit).collect()
}

/// Users in memory.
///
/// ```
/// # use oauth_core::{Email, NewUser, UserStore, memory::MemoryUserStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = MemoryUserStore::default();
/// let email = Email::parse("ann@example.com")?;
/// let ann = users.create_user(NewUser::new(email, "$scrypt$…".into(), chrono::Utc::now())).await?;
/// let found = users.user_by_email(&Email::parse("ANN@example.com")?).await?;
/// assert_eq!(found.map(|u| u.id), Some(ann.id));
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    inner: Mutex<Users>,
}

#[derive(Debug, Default)]
struct Users {
    next_id: UserId,
    by_id: BTreeMap<UserId, User>,
    by_key: HashMap<String, UserId>,
}

impl Users {
    fn get_mut(&mut self, id: UserId) -> Result<&mut User, StoreError> {
        self.by_id.get_mut(&id).ok_or(StoreError::NotFound)
    }
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let mut users = lock(&self.inner);
        let key = user.email.key();
        if users.by_key.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        users.next_id += 1;
        let created = User {
            id: users.next_id,
            email: user.email,
            password_hash: user.password_hash,
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            date_joined: user.date_joined,
            last_login: None,
        };
        users.by_key.insert(key, created.id);
        users.by_id.insert(created.id, created.clone());
        Ok(created)
    }

    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let users = lock(&self.inner);
        Ok(users
            .by_key
            .get(&email.key())
            .and_then(|id| users.by_id.get(id))
            .cloned())
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(lock(&self.inner).by_id.get(&id).cloned())
    }

    async fn legacy_password_hashes(&self) -> Result<Vec<String>, StoreError> {
        let users = lock(&self.inner);
        Ok(users
            .by_id
            .values()
            .filter_map(|u| u.password_hash.clone())
            .filter(|h| !h.starts_with('$') && !h.starts_with('!') && h.contains('$'))
            .collect())
    }

    async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<(), StoreError> {
        lock(&self.inner).get_mut(id)?.password_hash = Some(password_hash.to_owned());
        Ok(())
    }

    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<(), StoreError> {
        lock(&self.inner).get_mut(id)?.last_login = Some(at);
        Ok(())
    }

    async fn set_user_flags(&self, id: UserId, flags: UserFlags) -> Result<User, StoreError> {
        let mut users = lock(&self.inner);
        let user = users.get_mut(id)?;
        user.is_active = flags.is_active.unwrap_or(user.is_active);
        user.is_staff = flags.is_staff.unwrap_or(user.is_staff);
        user.is_superuser = flags.is_superuser.unwrap_or(user.is_superuser);
        Ok(user.clone())
    }

    async fn list_users(&self, offset: u64, limit: u64) -> Result<Vec<User>, StoreError> {
        Ok(page(
            lock(&self.inner).by_id.values().cloned(),
            offset,
            limit,
        ))
    }

    async fn search_users(&self, q: &UserQuery) -> Result<Page<User>, StoreError> {
        let users = lock(&self.inner);
        let needle = q.search.as_deref().map(str::to_lowercase);
        let mut found: Vec<User> = users
            .by_id
            .values()
            .filter(|u| {
                needle
                    .as_deref()
                    .is_none_or(|n| u.email.as_str().to_lowercase().contains(n))
                    && q.is_staff.is_none_or(|s| u.is_staff == s)
                    && q.is_active.is_none_or(|a| u.is_active == a)
            })
            .cloned()
            .collect();
        match q.order {
            UserOrder::Email => found.sort_by_key(|u| (u.email.key(), u.id)),
            UserOrder::EmailDesc => {
                found.sort_by_key(|u| std::cmp::Reverse((u.email.key(), u.id)));
            }
            UserOrder::Joined => found.sort_by_key(|u| (u.date_joined, u.id)),
            UserOrder::JoinedDesc => {
                found.sort_by_key(|u| std::cmp::Reverse((u.date_joined, u.id)));
            }
            UserOrder::LastLoginDesc => {
                found.sort_by_key(|u| (std::cmp::Reverse(u.last_login), u.id));
            }
            // `None` sorts first: never signed in, then the oldest sign-in.
            UserOrder::LastLogin => found.sort_by_key(|u| (u.last_login, u.id)),
            UserOrder::Staff => found.sort_by_key(|u| (u.is_staff, u.email.key(), u.id)),
            UserOrder::StaffDesc => {
                found.sort_by_key(|u| (std::cmp::Reverse(u.is_staff), u.email.key(), u.id));
            }
            UserOrder::Active => found.sort_by_key(|u| (u.is_active, u.email.key(), u.id)),
            UserOrder::ActiveDesc => {
                found.sort_by_key(|u| (std::cmp::Reverse(u.is_active), u.email.key(), u.id));
            }
        }
        let total = found.len() as u64;
        Ok(Page {
            items: page(found.into_iter(), q.offset, q.limit),
            total,
        })
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        let mut users = lock(&self.inner);
        let Some(user) = users.by_id.remove(&id) else {
            return Ok(false);
        };
        users.by_key.remove(&user.email.key());
        Ok(true)
    }
}

/// Clients in memory.
#[derive(Debug, Default)]
pub struct MemoryClientRegistry {
    inner: Mutex<BTreeMap<String, Client>>,
}

#[async_trait]
impl ClientRegistry for MemoryClientRegistry {
    async fn register_client(&self, client: Client) -> Result<(), StoreError> {
        let mut clients = lock(&self.inner);
        if clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict);
        }
        clients.insert(client.client_id.clone(), client);
        Ok(())
    }

    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(lock(&self.inner).get(client_id).cloned())
    }

    async fn update_client(&self, client: Client) -> Result<(), StoreError> {
        let mut clients = lock(&self.inner);
        let stored = clients
            .get_mut(&client.client_id)
            .ok_or(StoreError::NotFound)?;
        *stored = Client {
            created_at: stored.created_at,
            ..client
        };
        Ok(())
    }

    async fn list_clients(&self, offset: u64, limit: u64) -> Result<Vec<Client>, StoreError> {
        Ok(page(lock(&self.inner).values().cloned(), offset, limit))
    }

    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).remove(client_id).is_some())
    }
}

/// Tokens in memory, by digest.
///
/// Deleting a user or client here does not cascade to their tokens; the sea-orm store
/// does that with foreign keys.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    inner: Mutex<HashMap<TokenHash, TokenRecord>>,
    log: Mutex<MemoryRevocations>,
    signal: Signal,
}

#[derive(Debug, Default)]
struct MemoryRevocations {
    events: Vec<RevocationEvent>,
    latest: i64,
    purged_through: i64,
}

/// Revokes the active tokens matching `pred`; returns the access tokens revoked.
fn revoke_where(
    tokens: &mut HashMap<TokenHash, TokenRecord>,
    now: UnixTime,
    pred: impl Fn(&TokenRecord) -> bool,
) -> (u64, Vec<TokenHash>) {
    let mut n = 0;
    let mut access = Vec::new();
    for t in tokens.values_mut() {
        if t.revoked_at.is_none() && pred(t) {
            t.revoked_at = Some(now);
            n += 1;
            if t.kind == TokenKind::Access {
                access.push(t.hash);
            }
        }
    }
    (n, access)
}

impl MemoryTokenStore {
    /// Revokes the active tokens matching `pred` and logs it, under the tokens'
    /// lock: `what` is the one entry to log, or `None` for one entry per access
    /// token revoked. Returns how many tokens changed.
    fn revoke_logged(
        &self,
        tokens: &mut HashMap<TokenHash, TokenRecord>,
        now: UnixTime,
        kind: RevocationKind,
        what: Option<RevokedTokens>,
        pred: impl Fn(&TokenRecord) -> bool,
    ) -> u64 {
        let (n, access) = revoke_where(tokens, now, pred);
        let entries: Vec<RevokedTokens> = match what {
            Some(what) if n > 0 => vec![what],
            Some(_) => Vec::new(),
            None => access.into_iter().map(RevokedTokens::Token).collect(),
        };
        if !entries.is_empty() {
            let mut log = lock(&self.log);
            for tokens in entries {
                log.latest += 1;
                let id = log.latest;
                log.events.push(RevocationEvent {
                    id,
                    at: now,
                    kind,
                    tokens,
                });
            }
            drop(log);
            self.signal.wake();
        }
        n
    }
}

#[async_trait]
impl RevocationLog for MemoryTokenStore {
    async fn revocations_after(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<RevocationBatch, StoreError> {
        let log = lock(&self.log);
        let start = log.events.partition_point(|e| e.id <= after);
        Ok(RevocationBatch {
            events: page(log.events[start..].iter().cloned(), 0, limit),
            purged_through: log.purged_through,
            latest: log.latest,
        })
    }

    async fn purge_revocations(&self, before: UnixTime) -> Result<u64, StoreError> {
        let mut log = lock(&self.log);
        let old = log.events.partition_point(|e| e.at < before);
        if let Some(last) = old.checked_sub(1).map(|i| log.events[i].id) {
            log.purged_through = last;
        }
        log.events.drain(..old);
        Ok(old as u64)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal.subscribe()
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn insert_tokens(&self, tokens: &[TokenRecord]) -> Result<(), StoreError> {
        let mut stored = lock(&self.inner);
        let mut seen = std::collections::HashSet::new();
        if tokens
            .iter()
            .any(|t| stored.contains_key(&t.hash) || !seen.insert(t.hash))
        {
            return Err(StoreError::Conflict);
        }
        stored.extend(tokens.iter().map(|t| (t.hash, t.clone())));
        Ok(())
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        Ok(lock(&self.inner).get(hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        old: &TokenHash,
        client_id: &str,
        now: UnixTime,
        new: &[RotatedToken],
        grace: RefreshGrace,
    ) -> Result<Rotation, StoreError> {
        let mut tokens = lock(&self.inner);
        let Some(record) = tokens
            .get(old)
            .filter(|t| t.kind == TokenKind::Refresh && t.client_id == client_id)
            .cloned()
        else {
            return Ok(Rotation::Invalid);
        };
        let family = record.family;
        if let Some(rotated_at) = record.revoked_at {
            let reuse = grace.covers(rotated_at, now) && now < record.expires_at && {
                let kin = || tokens.values().filter(|t| t.family == family);
                let intact = kin().any(|t| t.is_active(now));
                let issued = kin()
                    .filter(|t| t.kind == TokenKind::Refresh)
                    .filter(|t| (rotated_at..=rotated_at + grace.period).contains(&t.issued_at))
                    .count() as u64;
                intact && grace.allows_another(issued)
            };
            if !reuse {
                self.revoke_logged(&mut tokens, now, TOKEN, None, |t| t.family == family);
                return Ok(Rotation::Replayed);
            }
        } else if now >= record.expires_at {
            return Ok(Rotation::Invalid);
        }
        if new.iter().any(|n| tokens.contains_key(&n.hash)) {
            return Err(StoreError::Conflict);
        }
        let reissue = record.revoked_at.is_some();
        if !reissue {
            self.revoke_logged(&mut tokens, now, TOKEN, None, |t| t.family == family);
        }
        for n in new {
            tokens.insert(
                n.hash,
                TokenRecord {
                    hash: n.hash,
                    kind: n.kind,
                    client_id: record.client_id.clone(),
                    user_id: record.user_id,
                    scope: n.scope.clone(),
                    family: record.family,
                    issued_at: now,
                    expires_at: n.expires_at,
                    revoked_at: None,
                },
            );
        }
        Ok(if reissue {
            Rotation::Reissued(record)
        } else {
            Rotation::Rotated(record)
        })
    }

    async fn revoke_family(&self, family: &TokenFamily, now: UnixTime) -> Result<u64, StoreError> {
        let mut tokens = lock(&self.inner);
        Ok(self.revoke_logged(&mut tokens, now, TOKEN, None, |t| t.family == *family))
    }

    async fn revoke_user_tokens(
        &self,
        user_id: UserId,
        keep: Option<&TokenFamily>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let what = RevokedTokens::User {
            user_id,
            client_id: None,
        };
        let kind = if keep.is_some() {
            RevocationKind::CredentialChange
        } else {
            RevocationKind::SessionRevoked
        };
        let mut tokens = lock(&self.inner);
        Ok(self.revoke_logged(&mut tokens, now, kind, Some(what), |t| {
            t.user_id == Some(user_id) && Some(&t.family) != keep
        }))
    }

    async fn revoke_user_client_tokens(
        &self,
        user_id: UserId,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let what = RevokedTokens::User {
            user_id,
            client_id: Some(client_id.to_owned()),
        };
        let mut tokens = lock(&self.inner);
        let kind = RevocationKind::SessionRevoked;
        Ok(self.revoke_logged(&mut tokens, now, kind, Some(what), |t| {
            t.user_id == Some(user_id) && t.client_id == client_id
        }))
    }

    async fn revoke_client_tokens(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let what = RevokedTokens::Client(client_id.to_owned());
        let mut tokens = lock(&self.inner);
        Ok(
            self.revoke_logged(&mut tokens, now, TOKEN, Some(what), |t| {
                t.client_id == client_id
            }),
        )
    }

    async fn list_tokens(&self, q: &TokenQuery) -> Result<Page<TokenRecord>, StoreError> {
        let tokens = lock(&self.inner);
        let mut found: Vec<TokenRecord> = tokens
            .values()
            .filter(|t| {
                q.user_id.is_none_or(|u| t.user_id == Some(u))
                    && q.client_id.as_deref().is_none_or(|c| t.client_id == c)
            })
            .cloned()
            .collect();
        found.sort_by_key(|t| std::cmp::Reverse((t.issued_at, t.hash)));
        let total = found.len() as u64;
        Ok(Page {
            items: page(found.into_iter(), q.offset, q.limit),
            total,
        })
    }

    async fn purge_tokens(&self, before: UnixTime) -> Result<u64, StoreError> {
        let mut tokens = lock(&self.inner);
        let len = tokens.len();
        tokens.retain(|_, t| t.expires_at >= before);
        Ok((len - tokens.len()) as u64)
    }
}

/// Authorization codes and consents in memory.
#[derive(Debug, Default)]
pub struct MemoryGrantStore {
    codes: Mutex<HashMap<TokenHash, AuthorizationCode>>,
    consents: Mutex<BTreeMap<(UserId, String), Consent>>,
}

impl MemoryGrantStore {
    /// [`GrantStore::void_codes`] for the codes `theirs` picks: the unredeemed
    /// deleted (how many is returned), the redeemed marked replayed.
    fn void_where(&self, now: UnixTime, theirs: impl Fn(&AuthorizationCode) -> bool) -> u64 {
        let mut codes = lock(&self.codes);
        let len = codes.len();
        codes.retain(|_, c| !theirs(c) || c.consumed_at.is_some());
        let deleted = (len - codes.len()) as u64;
        for c in codes.values_mut().filter(|c| theirs(c)) {
            c.replayed_at.get_or_insert(now);
        }
        deleted
    }
}

#[async_trait]
impl GrantStore for MemoryGrantStore {
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError> {
        let mut codes = lock(&self.codes);
        if codes.contains_key(&code.hash) {
            return Err(StoreError::Conflict);
        }
        codes.insert(code.hash, code.clone());
        Ok(())
    }

    async fn redeem_code(&self, hash: &TokenHash, now: UnixTime) -> Result<Redemption, StoreError> {
        let mut codes = lock(&self.codes);
        let Some(code) = codes.get_mut(hash) else {
            return Ok(Redemption::Invalid);
        };
        if code.consumed_at.is_some() {
            code.replayed_at.get_or_insert(now);
            return Ok(Redemption::Replayed(code.clone()));
        }
        if now >= code.expires_at {
            return Ok(Redemption::Invalid);
        }
        let before = code.clone();
        code.consumed_at = Some(now);
        Ok(Redemption::Redeemed(before))
    }

    async fn code_replayed(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(lock(&self.codes)
            .get(hash)
            .is_some_and(|c| c.replayed_at.is_some()))
    }

    async fn void_codes(
        &self,
        user_id: UserId,
        client_id: Option<&str>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        Ok(self.void_where(now, |c| {
            c.user_id == user_id && client_id.is_none_or(|id| c.client_id == id)
        }))
    }

    async fn void_client_codes(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        Ok(self.void_where(now, |c| c.client_id == client_id))
    }

    async fn retain_code(&self, hash: &TokenHash, until: UnixTime) -> Result<(), StoreError> {
        if let Some(c) = lock(&self.codes).get_mut(hash)
            && c.consumed_at.is_some()
        {
            c.expires_at = c.expires_at.max(until);
            c.code_challenge.clear();
        }
        Ok(())
    }

    async fn purge_codes(&self, before: UnixTime) -> Result<u64, StoreError> {
        let mut codes = lock(&self.codes);
        let len = codes.len();
        codes.retain(|_, c| c.expires_at >= before);
        Ok((len - codes.len()) as u64)
    }

    async fn consent(
        &self,
        user_id: UserId,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        Ok(lock(&self.consents)
            .get(&(user_id, client_id.to_owned()))
            .cloned())
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let mut consents = lock(&self.consents);
        let key = (consent.user_id, consent.client_id.clone());
        let mut merged = consent.clone();
        if let Some(old) = consents.get(&key) {
            merged.scope = old.scope.union(&consent.scope);
        }
        consents.insert(key, merged);
        Ok(())
    }

    async fn consents(&self, user_id: UserId) -> Result<Vec<Consent>, StoreError> {
        let mut list: Vec<Consent> = lock(&self.consents)
            .values()
            .filter(|c| c.user_id == user_id)
            .cloned()
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.granted_at));
        Ok(list)
    }

    async fn forget_consent(&self, user_id: UserId, client_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.consents)
            .remove(&(user_id, client_id.to_owned()))
            .is_some())
    }
}

/// The admin log in memory.
#[derive(Debug, Default)]
pub struct MemoryAdminLog {
    entries: Mutex<Vec<LogEntry>>,
}

#[async_trait]
impl AdminLog for MemoryAdminLog {
    async fn record(&self, entry: NewLogEntry) -> Result<(), StoreError> {
        let mut entries = lock(&self.entries);
        let id = entries.len() as i64 + 1;
        entries.push(LogEntry { id, entry });
        Ok(())
    }

    async fn entries(&self, offset: u64, limit: u64) -> Result<Page<LogEntry>, StoreError> {
        let entries = lock(&self.entries);
        Ok(Page {
            items: page(entries.iter().rev().cloned(), offset, limit),
            total: entries.len() as u64,
        })
    }
}
