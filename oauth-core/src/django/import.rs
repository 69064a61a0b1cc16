//! Planning and writing an import: each source row becomes a decision (import,
//! update, unchanged, skip) and the writes go in batches, one transaction each.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, DatabaseTransaction,
    EntityTrait as _, QueryFilter as _, TransactionTrait as _,
};
use sha2::{Digest as _, Sha256};

use super::ImportError;
use super::report::ImportReport;
use super::source::{DjangoSource, SourceAccessToken, SourceApplication, SourceUser};
use crate::issuer::without;
use crate::password::{PasswordHasher, django_algorithm};
use crate::scope::Scope;
use crate::secret::Password;
use crate::store::sea::entity::{client, import_ledger, token, user};
use crate::store::sea::{SeaOrmStore, backend, client_columns, revoke_logged, token_row};
use crate::store::{
    Client, ClientKind, GrantType, TokenFamily, TokenKind, TokenRecord, UnixTime, UserId,
};
use crate::{Email, TokenHash};

const LEDGER_USER: &str = "django_user";
const LEDGER_APPLICATION: &str = "django_application";
/// Imported access tokens by digest (hex), so a later run can revoke those Django
/// deleted since (DOT deletes an access token when it is refreshed or revoked).
const LEDGER_ACCESS_TOKEN: &str = "django_access_token";

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Report what would be done, write nothing.
    pub dry_run: bool,
    /// Hashes secrets DOT kept in clear (with the server's parameters).
    pub hasher: PasswordHasher,
    /// Imported applications' `allowed_scope` (DOT's `SCOPES` keys), less
    /// [`privileged_scopes`](Self::privileged_scopes).
    pub allowed_scope: Scope,
    /// Imported applications' `default_scope` (DOT's `DEFAULT_SCOPES`), less
    /// [`privileged_scopes`](Self::privileged_scopes).
    pub default_scope: Scope,
    /// The server's privileged scopes
    /// ([`AuthServer::privileged_scopes`](crate::AuthServer::privileged_scopes),
    /// default `introspection admin`): never given to an imported application,
    /// which gets the ordinary scopes only. Give the resource server's own
    /// client its privileged scopes by name afterwards (the console's application
    /// page), as DOT knows no per-application scope.
    pub privileged_scopes: Scope,
    /// DOT's `REFRESH_TOKEN_EXPIRE_SECONDS`: a refresh token expires that long after
    /// it was created. `None` (DOT's default: they never expire) gives each imported
    /// refresh token [`refresh_token_ttl`](Self::refresh_token_ttl) from now.
    pub dot_refresh_token_expire: Option<Duration>,
    /// Lifetime from now of refresh tokens DOT would keep for ever (default 30 days).
    pub refresh_token_ttl: Duration,
    /// Rows written per transaction (default 500).
    pub batch_size: usize,
    /// The time tokens are judged expired against (default: now).
    pub now: DateTime<Utc>,
}

impl ImportOptions {
    /// Options with `scope` as applications' allowed and default scope (less the
    /// privileged scopes).
    #[must_use]
    pub fn new(hasher: PasswordHasher, scope: Scope) -> Self {
        Self {
            dry_run: false,
            hasher,
            allowed_scope: scope.clone(),
            default_scope: scope,
            privileged_scopes: [
                crate::server::INTROSPECTION_SCOPE,
                crate::issuer::STAFF_SCOPE,
            ]
            .into_iter()
            .collect(),
            dot_refresh_token_expire: None,
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            batch_size: 500,
            now: Utc::now(),
        }
    }
}

/// One write, replayable on its own when its batch fails.
#[derive(Clone)]
enum Write {
    NewUser {
        key: String,
        fingerprint: String,
        row: user::ActiveModel,
    },
    UpdateUser {
        key: String,
        fingerprint: String,
        row: user::ActiveModel,
    },
    NewClient {
        key: String,
        fingerprint: String,
        row: client::ActiveModel,
    },
    UpdateClient {
        key: String,
        fingerprint: String,
        client_id: String,
        row: client::ActiveModel,
    },
    Token(token::ActiveModel),
    AccessToken(token::ActiveModel, TokenHash),
    /// An imported access token gone from Django: revoked here, forgotten.
    Gone(TokenHash),
    Revoke {
        hash: TokenHash,
        at: UnixTime,
    },
}

/// A planned write and the row it reports as.
struct Planned {
    kind: &'static str,
    row: String,
    updated: bool,
    write: Write,
}

/// Imports `source` into `target` (see the [module docs](super)).
///
/// # Errors
/// [`ImportError`] when either database fails outside a row's own write; every
/// batch committed before then stays (a re-run picks up the rest).
pub async fn import(
    source: &DjangoSource,
    target: &SeaOrmStore,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        dry_run: options.dry_run,
        user_table: source.user_table().to_owned(),
        ..ImportReport::default()
    };
    let db = target.connection();
    let now = options.now.timestamp();

    // Users.
    let ledger = load_ledger(db, LEDGER_USER).await?;
    let mut planned = Vec::new();
    let mut planned_users = HashSet::new();
    let mut seen_emails = HashSet::new();
    for row in source.users().await? {
        let u = match row {
            Ok(u) => u,
            Err((id, why)) => {
                report.skip("user", row_name(id), why);
                continue;
            }
        };
        let name = format!("#{} ({})", u.id, u.email);
        match plan_user(db, &u, &ledger, &mut seen_emails).await? {
            Decision::Write(write, updated) => {
                planned_users.insert(u.id);
                planned.push(Planned {
                    kind: "user",
                    row: name,
                    updated,
                    write: *write,
                });
            }
            Decision::Unchanged => report.users.unchanged += 1,
            Decision::Skip(why) => report.skip("user", name, why),
        }
    }
    apply(db, planned, options, &mut report).await?;
    if !options.dry_run {
        // Unknown emails now cost what the slowest imported hash costs (issue 19);
        // a server in another process learns it at its next start-up.
        let present = crate::store::UserStore::legacy_password_hashes(target).await?;
        options.hasher.learn_legacy_hashes(present).await;
    }
    let mut users: HashMap<i64, UserId> = load_ledger(db, LEDGER_USER)
        .await?
        .into_iter()
        .filter_map(|(k, (target, _))| Some((k.parse().ok()?, target.parse().ok()?)))
        .collect();
    if options.dry_run {
        // Stand-ins for the users a real run would have created.
        for id in planned_users {
            users.entry(id).or_insert(0);
        }
    }

    // Applications.
    let ledger = load_ledger(db, LEDGER_APPLICATION).await?;
    let mut planned = Vec::new();
    let mut planned_apps = HashMap::new();
    for row in source.applications().await? {
        let a = match row {
            Ok(a) => a,
            Err((id, why)) => {
                report.skip("application", row_name(id), why);
                continue;
            }
        };
        let name = format!("#{} ({})", a.id, a.client_id);
        match plan_application(db, &a, &ledger, &users, options, &mut report).await? {
            Decision::Write(write, updated) => {
                planned_apps.insert(a.id, a.client_id.clone());
                planned.push(Planned {
                    kind: "application",
                    row: name,
                    updated,
                    write: *write,
                });
            }
            Decision::Unchanged => report.applications.unchanged += 1,
            Decision::Skip(why) => report.skip("application", name, why),
        }
    }
    apply(db, planned, options, &mut report).await?;
    let mut apps: HashMap<i64, String> = load_ledger(db, LEDGER_APPLICATION)
        .await?
        .into_iter()
        .filter_map(|(k, (target, _))| Some((k.parse().ok()?, target)))
        .collect();
    if options.dry_run {
        for (id, client_id) in planned_apps {
            apps.entry(id).or_insert(client_id);
        }
    }

    // Access tokens: every row's digest is needed, live or not, for the families and
    // scopes of the refresh tokens issued with them.
    let mut access_rows = Vec::new();
    for row in source.access_tokens().await? {
        match row {
            Ok(t) => access_rows.push(t),
            Err((id, why)) => report.skip("access token", row_name(id), why),
        }
    }
    let mut access_by_id: HashMap<i64, (TokenHash, String)> = HashMap::new();
    for t in &access_rows {
        if let Some(h) = digest(t.checksum.as_deref(), t.token.as_deref()) {
            access_by_id.insert(t.id, (h, t.scope.clone()));
        }
    }
    let refresh_rows: Vec<_> = source
        .refresh_tokens()
        .await?
        .into_iter()
        .filter_map(|row| match row {
            Ok(t) => Some(t),
            Err((id, why)) => {
                report.skip("refresh token", row_name(id), why);
                None
            }
        })
        .collect();
    let mut hashes: Vec<TokenHash> = access_by_id.values().map(|(h, _)| *h).collect();
    hashes.extend(
        refresh_rows
            .iter()
            .filter_map(|t| digest(t.checksum.as_deref(), t.token.as_deref())),
    );
    let existing = existing_tokens(db, &hashes).await?;

    let mut planned = Vec::new();
    for t in &access_rows {
        let name = format!("#{}", t.id);
        match plan_access(t, &access_by_id, &users, &apps, &existing, now) {
            Ok(Some(record)) => planned.push(Planned {
                kind: "access token",
                row: name,
                updated: false,
                write: Write::AccessToken(token_row(&record), record.hash),
            }),
            Ok(None) => report.access_tokens.unchanged += 1,
            Err(why) => report.skip("access token", name, why),
        }
    }
    // Access tokens imported before and deleted in Django since.
    let present: HashSet<String> = access_by_id.values().map(|(h, _)| h.to_hex()).collect();
    let mut gone = 0;
    for key in load_ledger(db, LEDGER_ACCESS_TOKEN).await?.into_keys() {
        if present.contains(&key) {
            continue;
        }
        if let Some(hash) = digest(Some(&key), None) {
            gone += 1;
            planned.push(Planned {
                kind: "access token",
                row: format!("(digest {}…)", key.get(..12).unwrap_or_default()),
                updated: true,
                write: Write::Gone(hash),
            });
        }
    }
    if gone > 0 {
        report.notes.push(format!(
            "{gone} access token(s) imported before and deleted in Django since (refreshed or revoked there) are revoked here"
        ));
    }
    for t in &refresh_rows {
        let name = format!("#{}", t.id);
        let Some(hash) = digest(t.checksum.as_deref(), t.token.as_deref()) else {
            report.skip("refresh token", name, "neither a token nor a checksum");
            continue;
        };
        if let Some(revoked) = t.revoked {
            match existing.get(&hash) {
                Some(None) => planned.push(Planned {
                    kind: "refresh token",
                    row: name,
                    updated: true,
                    write: Write::Revoke { hash, at: revoked },
                }),
                Some(Some(_)) => report.refresh_tokens.unchanged += 1,
                None => report.skip("refresh token", name, "revoked"),
            }
            continue;
        }
        if existing.contains_key(&hash) {
            report.refresh_tokens.unchanged += 1;
            continue;
        }
        let Some(client_id) = t.application_id.and_then(|a| apps.get(&a)) else {
            report.skip("refresh token", name, "its application was not imported");
            continue;
        };
        let user_id = match t.user_id {
            Some(u) => match users.get(&u) {
                Some(id) => Some(*id),
                None => {
                    report.skip("refresh token", name, "its user was not imported");
                    continue;
                }
            },
            None => None,
        };
        let Some((access_hash, scope)) = t.access_token_id.and_then(|a| access_by_id.get(&a))
        else {
            report.skip(
                "refresh token",
                name,
                "no access token to take its scope from",
            );
            continue;
        };
        let Ok(scope) = scope.parse::<Scope>() else {
            report.skip("refresh token", name, "its scope is not valid here");
            continue;
        };
        let created = t.created.unwrap_or(now);
        let expires_at = match options.dot_refresh_token_expire {
            Some(d) => created.saturating_add(secs(d)),
            None => now.saturating_add(secs(options.refresh_token_ttl)),
        };
        if expires_at <= now {
            report.skip("refresh token", name, "expired");
            continue;
        }
        planned.push(Planned {
            kind: "refresh token",
            row: name,
            updated: false,
            write: Write::Token(token_row(&TokenRecord {
                hash,
                kind: TokenKind::Refresh,
                client_id: client_id.clone(),
                user_id,
                scope,
                family: family_of(access_hash),
                issued_at: created,
                expires_at,
                revoked_at: None,
            })),
        });
    }
    apply(db, planned, options, &mut report).await?;
    Ok(report)
}

enum Decision {
    Write(Box<Write>, bool),
    Unchanged,
    Skip(String),
}

fn row_name(id: Option<i64>) -> String {
    id.map_or_else(|| "(no id)".to_owned(), |id| format!("#{id}"))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn time(t: Option<UnixTime>, default: DateTime<Utc>) -> DateTime<Utc> {
    t.and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(default)
}

/// SHA-256 (hex) of the imported columns, separated so that no two rows collide.
fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A token's digest: DOT ≥ 3's checksum (the SHA-256 of the token, in hex) when it
/// has one, else the digest of the token DOT stored.
fn digest(checksum: Option<&str>, token: Option<&str>) -> Option<TokenHash> {
    if let Some(hex) = checksum.filter(|c| c.len() == 64) {
        let bytes: Option<Vec<u8>> = (0..32)
            .map(|i| {
                hex.get(2 * i..2 * i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        if let Some(h) = bytes.and_then(|b| TokenHash::try_from(b.as_slice()).ok()) {
            return Some(h);
        }
    }
    token.filter(|t| !t.is_empty()).map(TokenHash::of)
}

/// The family of an imported access token and the refresh token issued with it:
/// derived from the access token's digest, so every run derives the same.
fn family_of(access: &TokenHash) -> TokenFamily {
    let d = Sha256::new()
        .chain_update(b"django-import-family")
        .chain_update(access.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    TokenFamily::from_bytes(b)
}

async fn load_ledger(
    db: &impl ConnectionTrait,
    kind: &str,
) -> Result<HashMap<String, (String, String)>, ImportError> {
    Ok(import_ledger::Entity::find()
        .filter(import_ledger::Column::Kind.eq(kind))
        .all(db)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|r| (r.source_key, (r.target_key, r.fingerprint)))
        .collect())
}

/// Our tokens among `hashes`, with their revocation time.
async fn existing_tokens(
    db: &impl ConnectionTrait,
    hashes: &[TokenHash],
) -> Result<HashMap<TokenHash, Option<UnixTime>>, ImportError> {
    let mut found = HashMap::new();
    for chunk in hashes.chunks(500) {
        let rows = token::Entity::find()
            .filter(token::Column::Hash.is_in(chunk.iter().map(|h| h.as_bytes().to_vec())))
            .all(db)
            .await
            .map_err(backend)?;
        for r in rows {
            if let Ok(h) = TokenHash::try_from(r.hash.as_slice()) {
                found.insert(h, r.revoked_at);
            }
        }
    }
    Ok(found)
}

async fn plan_user(
    db: &impl ConnectionTrait,
    u: &SourceUser,
    ledger: &HashMap<String, (String, String)>,
    seen: &mut HashSet<String>,
) -> Result<Decision, ImportError> {
    let Ok(email) = Email::parse(u.email.trim()) else {
        return Ok(Decision::Skip("no valid email address".into()));
    };
    if !seen.insert(email.key()) {
        return Ok(Decision::Skip(
            "another user of the Django database has the same email (compared case-insensitively)"
                .into(),
        ));
    }
    let password_hash = if u.password.is_empty() || u.password.starts_with('!') {
        None
    } else if django_algorithm(&u.password).is_some() {
        Some(u.password.clone())
    } else {
        let algorithm = u.password.split('$').next().unwrap_or_default();
        return Ok(Decision::Skip(format!(
            "password hashed with {algorithm:?}, a hasher not verified here"
        )));
    };
    let fp = fingerprint(&[
        &u.email,
        &u.password,
        &u.is_active.to_string(),
        &u.is_staff.to_string(),
        &u.is_superuser.to_string(),
        &format!("{:?}", u.date_joined),
        &format!("{:?}", u.last_login),
    ]);
    let key = u.id.to_string();
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let mut row = user::ActiveModel {
        id: NotSet,
        email: Set(email.as_str().to_owned()),
        email_key: Set(email.key()),
        password_hash: Set(password_hash),
        is_active: Set(u.is_active),
        is_staff: Set(u.is_staff),
        is_superuser: Set(u.is_superuser),
        date_joined: Set(time(u.date_joined, epoch)),
        last_login: Set(u.last_login.and_then(|s| DateTime::from_timestamp(s, 0))),
    };
    let holder = user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.key()))
        .one(db)
        .await
        .map_err(backend)?;
    match ledger.get(&key) {
        Some((_, old)) if *old == fp => Ok(Decision::Unchanged),
        Some((target, _)) => {
            let Ok(id) = target.parse::<UserId>() else {
                return Ok(Decision::Skip("the import ledger is damaged".into()));
            };
            if holder.as_ref().is_some_and(|h| h.id != id) {
                return Ok(Decision::Skip(
                    "its new email belongs to another user here".into(),
                ));
            }
            row.id = Set(id);
            Ok(Decision::Write(
                Box::new(Write::UpdateUser {
                    key,
                    fingerprint: fp,
                    row,
                }),
                true,
            ))
        }
        None if holder.is_some() => Ok(Decision::Skip(
            "a user with this email already exists here and was not imported".into(),
        )),
        None => Ok(Decision::Write(
            Box::new(Write::NewUser {
                key,
                fingerprint: fp,
                row,
            }),
            false,
        )),
    }
}

async fn plan_application(
    db: &impl ConnectionTrait,
    a: &SourceApplication,
    ledger: &HashMap<String, (String, String)>,
    users: &HashMap<i64, UserId>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<Decision, ImportError> {
    let client_id = a.client_id.trim();
    if client_id.is_empty() || client_id.len() > 255 {
        return Ok(Decision::Skip("no usable client_id".into()));
    }
    let key = a.id.to_string();
    let owner = a.user_id.and_then(|u| users.get(&u).copied());
    // Imported applications get the ordinary scopes only (issue 19).
    let allowed_scope = without(&options.allowed_scope, &options.privileged_scopes);
    let default_scope = without(&options.default_scope, &options.privileged_scopes);
    let fp = fingerprint(&[
        client_id,
        &a.client_secret,
        &format!("{:?}", a.hash_client_secret),
        &a.client_type,
        &a.grant_type,
        &a.redirect_uris,
        &a.allowed_origins,
        &a.skip_authorization.to_string(),
        &a.name,
        &format!("{owner:?}"),
        &allowed_scope.to_string(),
        &default_scope.to_string(),
    ]);
    let previous = ledger.get(&key);
    if previous.is_some_and(|(_, old)| *old == fp) {
        return Ok(Decision::Unchanged);
    }
    let kind = match a.client_type.as_str() {
        "confidential" => ClientKind::Confidential,
        "public" => ClientKind::Public,
        other => return Ok(Decision::Skip(format!("unknown client type {other:?}"))),
    };
    let grant_types = match a.grant_type.as_str() {
        "authorization-code" => vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        "password" => vec![GrantType::Password, GrantType::RefreshToken],
        "client-credentials" => vec![GrantType::ClientCredentials],
        other => {
            return Ok(Decision::Skip(format!(
                "grant type {other:?} is not served here"
            )));
        }
    };
    let mut redirect_uris = Vec::new();
    for uri in a.redirect_uris.split_whitespace() {
        match crate::server::authorization::validate_redirect_uri(uri) {
            Ok(()) => redirect_uris.push(uri.to_owned()),
            Err(why) => report.notes.push(format!(
                "application {client_id}: redirect URI {uri} dropped: {why}"
            )),
        }
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Ok(Decision::Skip(
            "the authorization code grant without a usable redirect URI".into(),
        ));
    }
    let secret_hash = match kind {
        ClientKind::Public => None,
        ClientKind::Confidential => {
            let secret = a.client_secret.as_str();
            let hashed = django_algorithm(secret).is_some();
            match a.hash_client_secret {
                _ if secret.is_empty() => {
                    return Ok(Decision::Skip(
                        "a confidential application without a secret".into(),
                    ));
                }
                Some(true) if !hashed => {
                    return Ok(Decision::Skip(
                        "its secret is hashed with a hasher not verified here".into(),
                    ));
                }
                // DOT < 2 kept every secret in clear; DOT ≥ 2 says which.
                Some(true) | None if hashed => Some(secret.to_owned()),
                _ if options.dry_run => Some(String::new()),
                _ => Some(options.hasher.hash(&Password::new(secret)).await?),
            }
        }
    };
    let client = Client {
        client_id: client_id.to_owned(),
        secret_hash,
        kind,
        name: if a.name.trim().is_empty() {
            client_id.to_owned()
        } else {
            a.name.clone()
        },
        grant_types,
        redirect_uris,
        allowed_origins: a
            .allowed_origins
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        skip_authorization: a.skip_authorization,
        allowed_scope,
        default_scope,
        owner,
        created_at: time(a.created, options.now),
    };
    let mut row = client_columns(&client);
    let holder = client::Entity::find()
        .filter(client::Column::ClientId.eq(client_id))
        .one(db)
        .await
        .map_err(backend)?;
    match (previous, holder) {
        (Some(_), Some(h)) => {
            row.id = Set(h.id);
            Ok(Decision::Write(
                Box::new(Write::UpdateClient {
                    key,
                    fingerprint: fp,
                    client_id: client_id.to_owned(),
                    row,
                }),
                true,
            ))
        }
        (None, Some(_)) => Ok(Decision::Skip(
            "a client with this client_id already exists here and was not imported".into(),
        )),
        (_, None) => {
            row.client_id = Set(client_id.to_owned());
            row.created_at = Set(client.created_at);
            Ok(Decision::Write(
                Box::new(Write::NewClient {
                    key,
                    fingerprint: fp,
                    row,
                }),
                previous.is_some(),
            ))
        }
    }
}

/// The record to insert for a live access token; `Ok(None)` when it is here already.
fn plan_access(
    t: &SourceAccessToken,
    access_by_id: &HashMap<i64, (TokenHash, String)>,
    users: &HashMap<i64, UserId>,
    apps: &HashMap<i64, String>,
    existing: &HashMap<TokenHash, Option<UnixTime>>,
    now: UnixTime,
) -> Result<Option<TokenRecord>, String> {
    let Some((hash, _)) = access_by_id.get(&t.id) else {
        return Err("neither a token nor a checksum".into());
    };
    if existing.contains_key(hash) {
        return Ok(None);
    }
    let expires_at = t.expires.ok_or("no expiry")?;
    if expires_at <= now {
        return Err("expired".into());
    }
    let client_id = t
        .application_id
        .and_then(|a| apps.get(&a))
        .ok_or("its application was not imported")?;
    let user_id = match t.user_id {
        Some(u) => Some(*users.get(&u).ok_or("its user was not imported")?),
        None => None,
    };
    let scope = t
        .scope
        .parse::<Scope>()
        .map_err(|_| "its scope is not valid here")?;
    Ok(Some(TokenRecord {
        hash: *hash,
        kind: TokenKind::Access,
        client_id: client_id.clone(),
        user_id,
        scope,
        family: family_of(hash),
        issued_at: t.created.unwrap_or(now),
        expires_at,
        revoked_at: None,
    }))
}

/// Writes `planned` in transactions of `batch_size`; a failing batch is retried row
/// by row, and a row that fails alone is reported and skipped.
async fn apply(
    db: &sea_orm::DatabaseConnection,
    planned: Vec<Planned>,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let count = |report: &mut ImportReport, p: &Planned| {
        let c = report.counts(p.kind);
        if p.updated {
            c.updated += 1;
        } else {
            c.imported += 1;
        }
    };
    if options.dry_run {
        for p in &planned {
            count(report, p);
        }
        return Ok(());
    }
    let now = options.now;
    for batch in planned.chunks(options.batch_size.max(1)) {
        let txn = db.begin().await.map_err(backend)?;
        let mut ok = true;
        for p in batch {
            if write(&txn, &p.write, now).await.is_err() {
                ok = false;
                break;
            }
        }
        if ok && txn.commit().await.is_ok() {
            for p in batch {
                count(report, p);
            }
            continue;
        }
        // One of them is bad: find it (them), keep the others.
        for p in batch {
            let txn = db.begin().await.map_err(backend)?;
            let done = match write(&txn, &p.write, now).await {
                Ok(()) => txn.commit().await.map_err(backend),
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => count(report, p),
                Err(e) => report.skip(p.kind, p.row.clone(), format!("not written: {e}")),
            }
        }
    }
    Ok(())
}

async fn write(
    txn: &DatabaseTransaction,
    w: &Write,
    now: DateTime<Utc>,
) -> Result<(), crate::StoreError> {
    match w.clone() {
        Write::NewUser {
            key,
            fingerprint,
            row,
        } => {
            let id = row.insert(txn).await.map_err(backend)?.id;
            remember(txn, LEDGER_USER, key, id.to_string(), fingerprint, now).await
        }
        Write::UpdateUser {
            key,
            fingerprint,
            row,
        } => {
            let id = row.update(txn).await.map_err(backend)?.id;
            remember(txn, LEDGER_USER, key, id.to_string(), fingerprint, now).await
        }
        Write::NewClient {
            key,
            fingerprint,
            row,
        } => {
            let client_id = row.insert(txn).await.map_err(backend)?.client_id;
            remember(txn, LEDGER_APPLICATION, key, client_id, fingerprint, now).await
        }
        Write::UpdateClient {
            key,
            fingerprint,
            client_id,
            row,
        } => {
            row.update(txn).await.map_err(backend)?;
            remember(txn, LEDGER_APPLICATION, key, client_id, fingerprint, now).await
        }
        Write::Token(row) => token::Entity::insert(row)
            .exec(txn)
            .await
            .map(|_| ())
            .map_err(backend),
        Write::AccessToken(row, hash) => {
            token::Entity::insert(row)
                .exec(txn)
                .await
                .map_err(backend)?;
            let hex = hash.to_hex();
            remember(txn, LEDGER_ACCESS_TOKEN, hex.clone(), hex.clone(), hex, now).await
        }
        Write::Gone(hash) => {
            revoke(txn, &hash, now.timestamp()).await?;
            import_ledger::Entity::delete_many()
                .filter(import_ledger::Column::Kind.eq(LEDGER_ACCESS_TOKEN))
                .filter(import_ledger::Column::SourceKey.eq(hash.to_hex()))
                .exec(txn)
                .await
                .map(|_| ())
                .map_err(backend)
        }
        Write::Revoke { hash, at } => revoke(txn, &hash, at).await,
    }
}

/// Revokes one token, if it is not revoked already, and logs it for the caches
/// that follow the revocation log (an access token DOT deleted may be cached at a
/// resource server).
async fn revoke(
    txn: &DatabaseTransaction,
    hash: &TokenHash,
    at: UnixTime,
) -> Result<(), crate::StoreError> {
    let this = sea_orm::Condition::all().add(token::Column::Hash.eq(hash.as_bytes().to_vec()));
    revoke_logged(txn, at, this, crate::RevocationKind::TokenRevoked, None)
        .await
        .map(|_| ())
}

async fn remember(
    txn: &DatabaseTransaction,
    kind: &str,
    key: String,
    target: String,
    fingerprint: String,
    now: DateTime<Utc>,
) -> Result<(), crate::StoreError> {
    import_ledger::Entity::insert(import_ledger::ActiveModel {
        kind: Set(kind.to_owned()),
        source_key: Set(key),
        target_key: Set(target),
        fingerprint: Set(fingerprint),
        imported_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            import_ledger::Column::Kind,
            import_ledger::Column::SourceKey,
        ])
        .update_columns([
            import_ledger::Column::TargetKey,
            import_ledger::Column::Fingerprint,
            import_ledger::Column::ImportedAt,
        ])
        .to_owned(),
    )
    .exec(txn)
    .await
    .map(|_| ())
    .map_err(backend)
}
