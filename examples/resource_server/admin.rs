//! The items console at `/admin/`, for the auth server's staff users.
//!
//! Operators sign in at the auth server, not here: this server is a confidential
//! client of it (the demo `rs-id`) using the authorization code grant with PKCE.
//! Only staff get in, and the auth server conveys that as a scope: `admin` is
//! granted only to staff users, and introspection leaves it out as soon as a user
//! is no longer staff (`AuthServer::staff_scopes`, docs/architecture.md §8).
//!
//! | path | what |
//! |---|---|
//! | `GET /admin/` | the items, with owner; search `?q=` on the name, pages `?p=` |
//! | `GET`/`POST /admin/items/{id}/` | the change form, with the API's validation |
//! | `GET`/`POST /admin/items/{id}/delete/` | confirmation, then deletion |
//! | `GET /admin/callback` | the authorization response (RFC 6749 §4.1.2) |
//! | `POST /admin/logout/` | signs out (and revokes the console's token) |
//!
//! - **Sign-in**: without a session, any console page answers 302 to the auth
//!   server's `/o/authorize/` (`scope=admin read write`, a random `state`, an S256
//!   `code_challenge`; state, verifier and the page to come back to wait for 10
//!   minutes in a sealed cookie, `rs_admin_signin`, not in the session table: a
//!   visit stores nothing until someone has signed in). The callback checks
//!   `state` and `iss` (RFC 9207), exchanges the code server-side with the client's
//!   Basic credentials and the verifier, and introspects the access token: only a
//!   token whose scope has `admin` opens a session; anyone else — or an
//!   `error=access_denied` answer — gets a 403 page with links to the auth
//!   server's pages every user has. When the console got a token (a user made
//!   non-staff while signed in), the page also says who it is and has a sign-out
//!   form that ends the console's session and revokes that token.
//! - **Every request** re-checks the session's token with the same cached
//!   [`Introspector`](oauth_core::resource::Introspector) the API uses, so a
//!   revoked token or a demoted user is out within `TOKEN_CACHE_SECONDS`.
//! - **Sessions** live in this server's own database (`oauth_sessions`, created by
//!   [`SqlSessionStore::migrate`](oauth_core::sea::SqlSessionStore::migrate),
//!   nothing else of the auth server's schema), made at sign-in. The console's
//!   access token in it is sealed ([`Sealer`]: ChaCha20-Poly1305 with `SESSION_KEY`,
//!   or a key random at start), so a copy of the table holds no usable token. The
//!   cookie is `rs_admin_session`,
//!   `HttpOnly`, `SameSite=Lax`, `Path=/admin/`: cookies are per host, not per port,
//!   so on 127.0.0.1 it must not share its name with the auth server's
//!   `oauth_session`.
//! - **CSRF**: a token per session in every form (`csrfmiddlewaretoken`, as the
//!   auth server's pages), and `Sec-Fetch-Site` / `Origin` checked when sent. It
//!   is a few lines here rather than an export of the auth server's pages module,
//!   whose session keys and errors belong to its own sign-in.
//! - **Headers**: the auth server pages' CSP (`frame-ancestors 'none'`),
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cache-Control:
//!   no-store`, `nosniff`; the stylesheet is the auth server's own file, compiled in.
//! - **Templates**: askama, from `examples/resource_server/templates/`. askama looks
//!   for templates in a `templates/` folder at the crate root (here: the
//!   workspace root) unless a crate-root `askama.toml` says otherwise; rather than
//!   add either at the root, each `#[template]` names the `askama.toml` beside the
//!   templates with `config = …`, and that file points askama at its folder.
//!   `{% extends "base.html" %}` resolves next to the including file.

mod items;
mod sign_in;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use oauth_core::ClientSecret;
use oauth_core::pages::tower_sessions::cookie::SameSite;
use oauth_core::pages::tower_sessions::{Expiry, Session, SessionManagerLayer};
use oauth_core::resource::AuthError;
use oauth_core::sea::SqlSessionStore;

use crate::config::Config;
use crate::{AppState, Error};

/// The scope that marks staff (granted to staff users only).
pub const ADMIN_SCOPE: &str = "admin";
/// What the console asks for.
const REQUESTED_SCOPE: &str = "admin read write";
const COOKIE: &str = "rs_admin_session";
const STYLESHEET_PATH: &str = "/admin/static/style.css";
/// The auth server's stylesheet: one file for both servers' pages.
const STYLESHEET: &str = include_str!("../../oauth-core/templates/oauth/style.css");
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's access token, sealed ([`Sealer`]).
const TOKEN_KEY: &str = "access_token";
/// The token of a user refused as not staff, kept only to be revoked at sign-out
/// (sealed too).
const REFUSED_TOKEN_KEY: &str = "refused_token";
const CSRF_KEY: &str = "csrf";
const FLASH_KEY: &str = "flash";
/// The form field of the CSRF token (Django's name, as on the auth server).
const CSRF_FIELD: &str = "csrfmiddlewaretoken";

/// The console's settings and its HTTP client for the auth server.
#[derive(Clone)]
pub struct Admin(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    auth_server: String,
    issuer: String,
    client_id: String,
    client_secret: ClientSecret,
    redirect_uri: String,
    /// `scheme://host[:port]` of this server, for the Origin check.
    origin: String,
    https: bool,
    idle: Duration,
    sealer: Sealer,
}

/// Seals what the console keeps outside its process — the access token in the
/// session table, the sign-in's `state` and PKCE verifier in a cookie — with
/// ChaCha20-Poly1305 (an AEAD: secret and tamper-evident), a random nonce per
/// value, and what the value is for as associated data (a value sealed for one
/// use opens for no other). The key is `SESSION_KEY` or random at start (then a
/// restart signs console users out).
struct Sealer(chacha20poly1305::ChaCha20Poly1305);

impl Sealer {
    fn new(key: Option<[u8; 32]>) -> Result<Self, Error> {
        use chacha20poly1305::KeyInit as _;
        use chacha20poly1305::aead::rand_core::RngCore as _;
        let key = match key {
            Some(k) => k,
            None => {
                let mut k = [0u8; 32];
                chacha20poly1305::aead::OsRng.try_fill_bytes(&mut k)?;
                tracing::info!(
                    "SESSION_KEY unset: a random key seals the console's sessions; a restart signs console users out"
                );
                k
            }
        };
        Ok(Self(chacha20poly1305::ChaCha20Poly1305::new(&key.into())))
    }

    /// `nonce ‖ ciphertext ‖ tag`, URL-safe base64.
    fn seal(&self, purpose: &str, plain: &[u8]) -> Option<String> {
        use base64::Engine as _;
        use chacha20poly1305::aead::rand_core::RngCore as _;
        use chacha20poly1305::aead::{Aead as _, Payload};
        let mut nonce = [0u8; 12];
        chacha20poly1305::aead::OsRng
            .try_fill_bytes(&mut nonce)
            .inspect_err(|e| tracing::error!(error = %e, "no randomness"))
            .ok()?;
        let sealed = self
            .0
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plain,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
    }

    /// The value sealed for `purpose` with this key; `None` for anything else
    /// (another key — before a restart —, another purpose, a changed byte).
    fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        use chacha20poly1305::aead::{Aead as _, Payload};
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .ok()?;
        let nonce: [u8; 12] = raw.get(..12)?.try_into().ok()?;
        let sealed = raw.get(12..)?;
        self.0
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: sealed,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()
    }
}

/// Keeps `token` sealed under `key` in the session.
async fn keep_token(
    admin: &Admin,
    session: &Session,
    key: &str,
    token: &str,
) -> Result<(), Response> {
    let sealed = admin
        .0
        .sealer
        .seal(key, token.as_bytes())
        .ok_or_else(|| internal(&"could not seal the token"))?;
    session.insert(key, sealed).await.map_err(|e| internal(&e))
}

/// The token kept under `key`; `None` when there is none or it does not open
/// (sealed before a restart with a random key: the user signs in again).
async fn kept_token(
    admin: &Admin,
    session: &Session,
    key: &str,
) -> Result<Option<String>, Response> {
    let sealed = session.get::<String>(key).await.map_err(|e| internal(&e))?;
    Ok(sealed
        .and_then(|s| admin.0.sealer.open(key, &s))
        .and_then(|t| String::from_utf8(t).ok()))
}

impl Admin {
    /// `None` when the server introspects with a bearer token instead of client
    /// credentials: the console needs a client to sign operators in with.
    pub fn new(config: &Config) -> Result<Option<Self>, Error> {
        let Some((id, secret)) = config.client() else {
            return Ok(None);
        };
        oauth_core::resource::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Self(Arc::new(Inner {
            http,
            auth_server: config.auth_server_url.clone(),
            issuer: config.auth_server_issuer.clone(),
            client_id: id.to_owned(),
            client_secret: ClientSecret::new(secret),
            redirect_uri: format!("{}/admin/callback", config.public_url),
            origin: config.public_url.clone(),
            https: config.public_url.starts_with("https://"),
            idle: config.session_idle,
            sealer: Sealer::new(config.session_key)?,
        }))))
    }
}

/// The console's routes, with their session layer and headers.
pub fn routes(admin: &Admin, sessions: SqlSessionStore) -> Router<AppState> {
    let idle = oauth_core::pages::tower_sessions::cookie::time::Duration::seconds(
        i64::try_from(admin.0.idle.as_secs()).unwrap_or(i64::MAX),
    );
    let layer = SessionManagerLayer::new(sessions)
        .with_name(if admin.0.https {
            "__Secure-rs_admin_session"
        } else {
            COOKIE
        })
        .with_secure(admin.0.https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/admin/")
        .with_expiry(Expiry::OnInactivity(idle))
        // Idle expiry from the last use, not the last change (see oauth-core's pages).
        .with_always_save(true);
    Router::new()
        .route("/admin/callback", get(sign_in::callback_once))
        .route("/admin/logout/", post(sign_in::logout))
        .merge(items::routes())
        .layer(layer)
        .layer(axum::middleware::map_response(security_headers))
        .route("/admin", get(|| async { Redirect::to("/admin/") }))
        .route(
            STYLESHEET_PATH,
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    STYLESHEET,
                )
            }),
        )
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What every console page shows around its content.
pub struct Frame {
    pub stylesheet: &'static str,
    pub signed_in: Option<String>,
    pub csrf_token: String,
    pub flash: Option<String>,
}

/// A page with a heading, a sentence and maybe a link: errors, "signed out".
#[derive(Template)]
#[template(
    path = "message.html",
    config = "examples/resource_server/templates/askama.toml"
)]
struct MessagePage<'a> {
    frame: Frame,
    /// A success (shown as a message) rather than an error.
    ok: bool,
    title: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

/// An HTML answer from a template; a rendering failure is a logged 500.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
        }
    }
}

fn message(status: StatusCode, title: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    let frame = Frame {
        stylesheet: STYLESHEET_PATH,
        signed_in: None,
        csrf_token: String::new(),
        flash: None,
    };
    html(
        status,
        &MessagePage {
            frame,
            ok: status.is_success(),
            title,
            message: text,
            link,
        },
    )
}

/// The 403 page of a user who is not staff.
#[derive(Template)]
#[template(
    path = "staff_only.html",
    config = "examples/resource_server/templates/askama.toml"
)]
struct StaffOnlyPage<'a> {
    frame: Frame,
    /// Who the auth server signed in, when the console knows.
    email: Option<&'a str>,
    /// The console holds a session for them (with a token to revoke).
    can_sign_out: bool,
    /// The auth server's base URL, for links to its pages.
    auth_server: &'a str,
}

/// The 403 page when the console has no client to sign anyone in with.
fn staff_only() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Staff only",
        "Only staff users of the auth server may use this console. Ask an administrator to make your account staff.",
        None,
    )
}

/// The 403 page of a user who is not staff: who they are (when known), a
/// sign-out form (when the console holds a session for them), links to the auth
/// server's pages every user has.
///
/// With a `token` (the auth server issued one without `admin`, or its user was
/// made non-staff), the session is ended and a new one holds only what signing
/// out needs: a new CSRF token and that token, which the sign-out revokes.
/// Nothing in it lets the user into the console: their next visit signs in anew
/// at the auth server. Without one (the auth server answered `access_denied`),
/// the console knows nobody and has nothing to sign out of.
async fn refuse(
    admin: &Admin,
    session: &Session,
    email: Option<String>,
    token: Option<String>,
) -> Response {
    let email = email.filter(|e| !e.is_empty());
    let mut frame = Frame {
        stylesheet: STYLESHEET_PATH,
        signed_in: None,
        csrf_token: String::new(),
        flash: None,
    };
    if let Some(token) = token {
        let Some(csrf) = random() else {
            return internal(&"no randomness");
        };
        if let Err(e) = session.flush().await {
            return internal(&e);
        }
        if let Err(e) = session.insert(CSRF_KEY, &csrf).await {
            return internal(&e);
        }
        if let Err(r) = keep_token(admin, session, REFUSED_TOKEN_KEY, &token).await {
            return r;
        }
        frame.signed_in = Some(email.clone().unwrap_or_else(|| "Signed in".to_owned()));
        frame.csrf_token = csrf;
    }
    html(
        StatusCode::FORBIDDEN,
        &StaffOnlyPage {
            can_sign_out: !frame.csrf_token.is_empty(),
            frame,
            email: email.as_deref(),
            auth_server: &admin.0.auth_server,
        },
    )
}

/// The 500 page; the cause is logged, never shown.
pub fn internal(cause: &dyn std::fmt::Display) -> Response {
    tracing::error!(%cause, "console failed");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not complete the request. Please try again later.",
        None,
    )
}

fn unavailable() -> Response {
    let mut r = message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Auth server unavailable",
        "The auth server cannot be reached to check your sign-in. Try again in a moment.",
        None,
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn sign_in_failed(text: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "Sign-in failed",
        text,
        Some(("/admin/", "Start again")),
    )
}

/// Constant-time equality of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// 256 random bits, URL-safe: a `state`, a PKCE verifier (43 characters, RFC 7636
/// §4.1) or a CSRF token.
fn random() -> Option<String> {
    oauth_core::generate_token()
        .inspect_err(|e| tracing::error!(error = %e, "no randomness"))
        .ok()
}

/// The signed-in operator of a console request.
pub struct Operator {
    pub email: String,
}

/// The operator of this request, or the answer for anyone else: a redirect to the
/// auth server to sign in (no session, or its token no longer active), the 403
/// page (signed in, but the token has no `admin` — e.g. the user was made
/// non-staff), the 503 page (the auth server cannot be asked).
pub async fn operator(
    state: &AppState,
    session: &Session,
    uri: &OriginalUri,
) -> Result<Operator, Response> {
    let admin = state.admin.as_ref().ok_or_else(staff_only)?;
    let Some(token) = kept_token(admin, session, TOKEN_KEY).await? else {
        return Err(sign_in::start(admin, uri));
    };
    match state.auth.0.authenticate(&token).await {
        Ok(p) if p.has_scope(ADMIN_SCOPE) => Ok(Operator {
            email: p.username.unwrap_or_default(),
        }),
        Ok(p) => Err(refuse(admin, session, p.username, Some(token)).await),
        Err(AuthError::InvalidToken) => {
            session
                .remove::<String>(TOKEN_KEY)
                .await
                .map_err(|e| internal(&e))?;
            Err(sign_in::start(admin, uri))
        }
        Err(_) => Err(unavailable()),
    }
}

/// The frame of a console page: the session's CSRF token (made on first use) and
/// flash message (consumed).
pub async fn frame(session: &Session, operator: &Operator) -> Result<Frame, Response> {
    let csrf_token = match session
        .get::<String>(CSRF_KEY)
        .await
        .map_err(|e| internal(&e))?
    {
        Some(t) => t,
        None => {
            let t = random().ok_or_else(|| internal(&"no randomness"))?;
            session
                .insert(CSRF_KEY, &t)
                .await
                .map_err(|e| internal(&e))?;
            t
        }
    };
    let flash = session
        .remove::<String>(FLASH_KEY)
        .await
        .map_err(|e| internal(&e))?;
    Ok(Frame {
        stylesheet: STYLESHEET_PATH,
        signed_in: Some(operator.email.clone()),
        csrf_token,
        flash,
    })
}

/// Sets the message the next page shows, then answers 303 to `to`.
pub async fn done(session: &Session, text: String, to: &str) -> Response {
    if let Err(e) = session.insert(FLASH_KEY, text).await {
        return internal(&e);
    }
    Redirect::to(to).into_response()
}

/// A POSTed form that passed the CSRF check: the session's token in the form, and
/// no browser signal (`Sec-Fetch-Site`, `Origin`) of another site. Rejected with a
/// 403 page otherwise.
pub struct CheckedForm(pub HashMap<String, String>);

impl FromRequest<AppState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts as _;
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        // axum's extractor, under the router's limits (RequestBodyLimitLayer and
        // DefaultBodyLimit): a body over the limit, declared or chunked, is a 413
        // after at most that many bytes read.
        let headers = parts.headers.clone();
        let body = axum::body::Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut fields = HashMap::new();
        for (k, v) in form_urlencoded::parse(&body) {
            fields
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
        let expected = session
            .get::<String>(CSRF_KEY)
            .await
            .map_err(|e| internal(&e))?;
        let origin = state.admin.as_ref().map_or("", |a| a.0.origin.as_str());
        let ok = same_site_request(&headers, origin)
            && match (expected, fields.get(CSRF_FIELD)) {
                (Some(e), Some(s)) => same(&e, s),
                _ => false,
            };
        if ok {
            Ok(Self(fields))
        } else {
            Err(message(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was not sent from this site, or your session ended. Go back, reload the page and try again.",
                Some(("/admin/", "Back to the console")),
            ))
        }
    }
}

/// The browser's own signals, when it sends them, say the form came from here.
/// `Origin: null` (sent under `Referrer-Policy: no-referrer`) tells nothing.
fn same_site_request(headers: &HeaderMap, own_origin: &str) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return false;
    }
    header(header::ORIGIN.as_str())
        .filter(|o| *o != "null")
        .is_none_or(|o| o == own_origin)
}

#[cfg(test)]
mod tests {
    use super::Sealer;

    /// A sealed value opens only with its key, for its purpose, unaltered; each
    /// sealing is different (random nonce).
    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let sealer = Sealer::new(Some([1; 32])).unwrap();
        let sealed = sealer.seal("access_token", b"the-token").unwrap();
        assert!(!sealed.contains("the-token"));
        assert_eq!(
            sealer.open("access_token", &sealed).as_deref(),
            Some(&b"the-token"[..])
        );
        assert_ne!(sealer.seal("access_token", b"the-token").unwrap(), sealed);
        assert_eq!(sealer.open("refused_token", &sealed), None);
        let restarted = Sealer::new(None).unwrap();
        assert_eq!(restarted.open("access_token", &sealed), None);
        let mut altered = sealed.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(sealer.open("access_token", &altered), None);
        assert_eq!(sealer.open("access_token", ""), None);
    }
}
