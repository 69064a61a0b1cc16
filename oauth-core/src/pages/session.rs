//! The browser session (tower-sessions, stored in the database) and what the pages
//! keep in it: the signed-in user, when they signed in, and the CSRF token.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::store::UserId;
use crate::token::fill_random;

pub(crate) const USER_KEY: &str = "user_id";
const AUTH_AT_KEY: &str = "auth_at";
const CREDENTIAL_KEY: &str = "credential";
const CSRF_KEY: &str = "csrf";
/// The form field of the CSRF token (Django's name).
pub(crate) const CSRF_FIELD: &str = "csrfmiddlewaretoken";

/// A failure of the session store.
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub(crate) struct SessionError(String);

impl SessionError {
    pub(crate) fn store(e: &crate::store::StoreError) -> Self {
        Self(e.to_string())
    }
}

impl From<tower_sessions::session::Error> for SessionError {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self(e.to_string())
    }
}

fn random_token() -> Result<String, SessionError> {
    let mut b = [0u8; 32];
    fill_random(&mut b).map_err(|e| SessionError(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// The session's CSRF token, created on first use.
pub(crate) async fn csrf_token(session: &Session) -> Result<String, SessionError> {
    if let Some(t) = session.get::<String>(CSRF_KEY).await? {
        return Ok(t);
    }
    let t = random_token()?;
    session.insert(CSRF_KEY, &t).await?;
    Ok(t)
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a POST: the form's token equals the session's, and the browser's own
/// signals — `Sec-Fetch-Site`, `Origin`, `Referer`, when present — say the form
/// was submitted from this server's pages. `Origin: null` (what browsers send
/// under `Referrer-Policy: no-referrer`) carries no information and is ignored.
pub(crate) async fn check_csrf(
    session: &Session,
    headers: &HeaderMap,
    submitted: Option<&str>,
    own_origin: &str,
) -> Result<bool, SessionError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return Ok(false);
    }
    if let Some(origin) = header(header::ORIGIN.as_str()).filter(|o| *o != "null")
        && origin != own_origin
    {
        return Ok(false);
    }
    if let Some(referer) = header(header::REFERER.as_str())
        && !(referer == own_origin
            || referer
                .strip_prefix(own_origin)
                .is_some_and(|rest| rest.starts_with('/')))
    {
        return Ok(false);
    }
    let expected = session.get::<String>(CSRF_KEY).await?;
    Ok(match (expected, submitted) {
        (Some(e), Some(s)) => same(&e, s),
        _ => false,
    })
}

/// The signed-in user, or `None`. A session older than `absolute` seconds since
/// sign-in is ended here (idle expiry is the session layer's).
pub(crate) async fn signed_in(
    session: &Session,
    now: i64,
    absolute: i64,
) -> Result<Option<UserId>, SessionError> {
    let Some(user) = session.get::<UserId>(USER_KEY).await? else {
        return Ok(None);
    };
    let auth_at = session.get::<i64>(AUTH_AT_KEY).await?.unwrap_or(0);
    if now.saturating_sub(auth_at) >= absolute {
        session.flush().await?;
        return Ok(None);
    }
    Ok(Some(user))
}

/// A fingerprint of the user's password hash (Django's session auth hash): kept in
/// the session at sign-in, so a new password — set anywhere — ends every session
/// made with the old one.
pub(crate) fn credential(password_hash: Option<&str>) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(password_hash.unwrap_or("").as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Whether the session was made with this credential fingerprint.
pub(crate) async fn same_credential(
    session: &Session,
    current: &str,
) -> Result<bool, SessionError> {
    Ok(session
        .get::<String>(CREDENTIAL_KEY)
        .await?
        .is_some_and(|c| same(&c, current)))
}

/// Signs `user` in: a new session id (no fixation), a new CSRF token.
pub(crate) async fn sign_in(
    session: &Session,
    user: UserId,
    credential: String,
    now: i64,
) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(USER_KEY, user).await?;
    session.insert(AUTH_AT_KEY, now).await?;
    session.insert(CREDENTIAL_KEY, credential).await?;
    session.insert(CSRF_KEY, random_token()?).await?;
    Ok(())
}

/// Ends the session: its row is deleted and the cookie cleared.
pub(crate) async fn sign_out(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}

/// Any [`SessionStore`] behind an `Arc`, so the pages hold one type whatever the
/// embedder's store is.
#[derive(Debug, Clone)]
pub(crate) struct SharedStore(pub(crate) std::sync::Arc<dyn SessionStore>);

#[async_trait::async_trait]
impl SessionStore for SharedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.0.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.0.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.delete(id).await
    }
}
