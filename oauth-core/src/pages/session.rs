//! The browser session (tower-sessions, stored in the database) and what the pages
//! keep in it: the signed-in user, when they signed in, and the CSRF token.
//!
//! A visitor who is not signed in has no stored session: their forms (the sign-in
//! form) carry the CSRF token of a signed double-submit cookie ([`CsrfKey`],
//! [`AnonymousCsrf`]) instead, so that showing a page writes nothing to the
//! database. A stored session is made at sign-in.

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use crate::store::UserId;
use crate::token::fill_random;

pub(crate) use crate::store::SESSION_USER_KEY as USER_KEY;
const AUTH_AT_KEY: &str = "auth_at";
#[cfg(feature = "admin")]
/// When the user last typed their password again (a re-entry on a sensitive
/// console form); the sign-in's `auth_at` stays what the absolute expiry counts from.
const REAUTH_AT_KEY: &str = "reauth_at";
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

/// Checks a POST: the form's token equals the session's — or, for a session
/// without a signed-in user, the visitor's signed CSRF cookie (`anonymous`, only
/// when its signature holds) — and the browser's own signals — `Sec-Fetch-Site`,
/// `Origin`, `Referer`, when present — say the form was submitted from this
/// server's pages. `Origin: null` (what browsers send under `Referrer-Policy:
/// no-referrer`) carries no information and is ignored. A signed-in session never
/// accepts the cookie's token: only its own.
pub(crate) async fn check_csrf(
    session: &Session,
    headers: &HeaderMap,
    submitted: Option<&str>,
    own_origin: &str,
    anonymous: Option<&str>,
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
    let expected = if has_user(session).await? {
        session.get::<String>(CSRF_KEY).await?
    } else {
        anonymous.map(str::to_owned)
    };
    Ok(match (expected, submitted) {
        (Some(e), Some(s)) => same(&e, s),
        _ => false,
    })
}

/// Whether the session holds a signed-in user (whether or not still valid): its
/// forms carry the session's CSRF token, anyone else's the cookie's.
pub(crate) async fn has_user(session: &Session) -> Result<bool, SessionError> {
    Ok(session.get::<UserId>(USER_KEY).await?.is_some())
}

/// The key of the signed double-submit CSRF cookie (HMAC-SHA256), held by the
/// process (`Pages::csrf_key`, else random at start).
#[derive(Clone)]
pub(crate) struct CsrfKey(std::sync::Arc<[u8; 32]>);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What the cookie's MAC covers besides its random part: no other use of the key
/// can produce a valid cookie.
const CSRF_COOKIE_CONTEXT: &[u8] = b"oauth-core anonymous csrf v1\0";

impl CsrfKey {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        Self(std::sync::Arc::new(key))
    }

    /// The MAC state after the context (HMAC takes a key of any length: `None`
    /// never happens, and would fail closed).
    fn mac(&self) -> Option<HmacSha256> {
        use hmac::Mac as _;
        let mut mac = <HmacSha256 as hmac::Mac>::new_from_slice(self.0.as_slice()).ok()?;
        mac.update(CSRF_COOKIE_CONTEXT);
        Some(mac)
    }

    /// A new cookie value (and form token): `random.mac`, 32 random bytes and their
    /// HMAC-SHA256, URL-safe base64.
    pub(crate) fn issue(&self) -> Result<String, SessionError> {
        use hmac::Mac as _;
        let mut random = [0u8; 32];
        fill_random(&mut random).map_err(|e| SessionError(e.to_string()))?;
        let mut mac = self
            .mac()
            .ok_or_else(|| SessionError("csrf key".to_owned()))?;
        mac.update(&random);
        let tag = mac.finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(random),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Whether `value` is a cookie this key issued (the MAC compared in constant
    /// time).
    pub(crate) fn verify(&self, value: &str) -> bool {
        use hmac::Mac as _;
        let Some((random, tag)) = value.split_once('.') else {
            return false;
        };
        let (Ok(random), Ok(tag)) = (URL_SAFE_NO_PAD.decode(random), URL_SAFE_NO_PAD.decode(tag))
        else {
            return false;
        };
        if random.len() != 32 {
            return false;
        }
        let Some(mut mac) = self.mac() else {
            return false;
        };
        mac.update(&random);
        mac.verify_slice(&tag).is_ok()
    }
}

/// The anonymous visitor's CSRF token of one request: the one of their cookie when
/// its signature holds, else a new one made on first use (and then sent as a
/// cookie with the answer, see `pages::anonymous_csrf`).
#[derive(Debug, Clone)]
pub(crate) struct AnonymousCsrf(std::sync::Arc<AnonymousInner>);

#[derive(Debug)]
struct AnonymousInner {
    key: CsrfKey,
    /// The request's cookie, when this key signed it.
    sent: Option<String>,
    /// A token made for this answer, to be set as the cookie.
    issued: std::sync::Mutex<Option<String>>,
}

impl AnonymousCsrf {
    /// From the request's cookie value (any; kept only when signed by `key`).
    pub(crate) fn new(key: CsrfKey, cookie: Option<&str>) -> Self {
        let sent = cookie.filter(|v| key.verify(v)).map(str::to_owned);
        Self(std::sync::Arc::new(AnonymousInner {
            key,
            sent,
            issued: std::sync::Mutex::new(None),
        }))
    }

    /// The token a POST must carry: the request's signed cookie, or none.
    pub(crate) fn sent(&self) -> Option<&str> {
        self.0.sent.as_deref()
    }

    /// The token for a form shown to an anonymous visitor: the cookie's, or a new
    /// one that the answer sets.
    pub(crate) fn token(&self) -> Result<String, SessionError> {
        if let Some(t) = &self.0.sent {
            return Ok(t.clone());
        }
        let mut issued = self
            .0
            .issued
            .lock()
            .map_err(|_| SessionError("csrf cookie lock".to_owned()))?;
        if let Some(t) = issued.as_ref() {
            return Ok(t.clone());
        }
        let t = self.0.key.issue()?;
        *issued = Some(t.clone());
        Ok(t)
    }

    /// The token made during this request, if any: the cookie to set.
    pub(crate) fn issued(&self) -> Option<String> {
        self.0.issued.lock().ok().and_then(|mut i| i.take())
    }
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

#[cfg(feature = "admin")]
/// When the signed-in user last proved their password in this session: at sign-in,
/// or by typing it again since ([`password_proved`]); `None` for no sign-in.
pub(crate) async fn password_proved_at(session: &Session) -> Result<Option<i64>, SessionError> {
    let signed_in = session.get::<i64>(AUTH_AT_KEY).await?;
    let again = session.get::<i64>(REAUTH_AT_KEY).await?;
    Ok(signed_in.max(again))
}

#[cfg(feature = "admin")]
/// Records that the signed-in user typed their password again at `now`.
pub(crate) async fn password_proved(session: &Session, now: i64) -> Result<(), SessionError> {
    session.insert(REAUTH_AT_KEY, now).await?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::CsrfKey;

    /// A cookie verifies under the key that issued it, not under another (another
    /// instance without the shared key, or after a restart with a random one), and
    /// not once any character changed.
    #[test]
    fn csrf_cookie_is_signed_by_its_key() {
        let key = CsrfKey::new([7; 32]);
        let value = key.issue().unwrap();
        assert!(key.verify(&value));
        assert!(
            CsrfKey::new([7; 32]).verify(&value),
            "same key, other process"
        );
        assert!(!CsrfKey::new([8; 32]).verify(&value));
        assert_ne!(key.issue().unwrap(), value, "random each time");
        for i in 0..value.len() {
            let mut bytes = value.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert!(!key.verify(&altered), "{altered}");
        }
        for junk in ["", ".", "a.b", "AAAA.AAAA", &value.replace('.', "")] {
            assert!(!key.verify(junk), "{junk}");
        }
    }
}
