//! The browser half of the authorization server (feature `pages`): the
//! authorization endpoint with its login and consent pages, sign-out, and the
//! user's list of authorized applications.
//!
//! | path | what |
//! |---|---|
//! | `GET`/`POST /o/authorize/` | RFC 6749 §4.1 with PKCE: consent page, then a redirect with `code`, `state`, `iss` |
//! | `GET`/`POST /accounts/login/` | sign-in form (Django's path) |
//! | `POST /accounts/logout/` | ends the session |
//! | `GET /o/authorized_tokens/` | the applications the user authorized (DOT's page) |
//! | `POST /o/authorized_tokens/revoke/` | withdraws one: its tokens and unexchanged codes stop working, its consent is forgotten |
//! | `/o/applications/…` | DOT's self-service application pages, served with the console (feature `admin`, `Pages::admin`) |
//!
//! Sessions live in a [`SessionStore`] — with the `sea-orm` feature, the
//! [`SeaOrmStore`](crate::sea::SeaOrmStore) itself, so every instance sharing the
//! database serves every browser. Pages are server-rendered, need no JavaScript,
//! load nothing from another origin, and carry `Content-Security-Policy`,
//! `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-store`. Every form carries a CSRF token bound to the session,
//! or — for a visitor not signed in, who has no stored session — to a signed
//! double-submit cookie (`__Host-oauth_csrf` on https, HMAC-SHA256 with
//! [`Pages::csrf_key`]): showing the sign-in form stores nothing.
//!
//! ```
//! use std::sync::Arc;
//! use oauth_core::pages::Pages;
//! use oauth_core::{AuthServer, sea::SeaOrmStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(SeaOrmStore::open("sqlite::memory:").await?);
//! let app = AuthServer::from_store(store.clone())
//!     .issuer_url("https://auth.example.com")
//!     .pages(
//!         Pages::new(store.as_ref().clone())
//!             .site_name("Example ID")
//!             .scope_description("read", "Read your items"),
//!     )
//!     .router()?;
//! # let _ = app; Ok(()) }
//! ```

/// `page_try!(expr)`: the value of an `Ok`, or return the `Err` — a ready
/// response (a redirect to the login page, an error page) — from the handler.
macro_rules! page_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return response,
        }
    };
}
#[cfg(feature = "admin")]
pub(crate) use page_try;

/// The session crate the pages are built on, for embedders that bring their own
/// [`SessionStore`] or run [`ExpiredDeletion`](tower_sessions::ExpiredDeletion).
pub use tower_sessions;

#[cfg(feature = "admin")]
pub(crate) mod app_form;
#[cfg(feature = "admin")]
mod applications;
mod authorize;
mod authorized;
mod login;
pub(crate) mod session;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

use self::session::SharedStore;
pub use self::view::{DefaultRenderer, Renderer};
use self::view::{ErrorPage, Frame, ScopeLine};
use crate::scope::Scope;
use crate::server::AppState;

/// Configuration of the browser pages: `new(session store)` plus setters.
#[must_use]
pub struct Pages {
    sessions: Arc<dyn SessionStore>,
    idle: Duration,
    absolute: Duration,
    site_name: String,
    scope_descriptions: HashMap<String, String>,
    renderer: Arc<dyn Renderer>,
    stylesheet: Option<String>,
    #[cfg(feature = "admin")]
    admin_log: Option<Arc<dyn crate::store::AdminLog>>,
    csrf_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages")
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("site_name", &self.site_name)
            .finish_non_exhaustive()
    }
}

impl Pages {
    /// Pages whose sessions live in `sessions`. Defaults: sessions end after 30
    /// minutes without use and 10 hours after sign-in; site name "Accounts"; the
    /// built-in templates and stylesheet; descriptions for `read`, `write` and
    /// `introspection`.
    pub fn new(sessions: impl SessionStore) -> Self {
        let scope_descriptions = [
            ("read", "Read your data"),
            ("write", "Create, change and delete your data"),
            ("introspection", "Check tokens issued by this server"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Self {
            sessions: Arc::new(sessions),
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(10 * 3600),
            site_name: "Accounts".to_owned(),
            scope_descriptions,
            renderer: Arc::new(DefaultRenderer),
            stylesheet: None,
            #[cfg(feature = "admin")]
            admin_log: None,
            csrf_key: None,
        }
    }

    /// The key of the signed CSRF cookie that the forms of visitors not signed in
    /// (the sign-in form) carry (HMAC-SHA256). Default: random when the router is
    /// built — then a sign-in form shown before a restart, or by another instance
    /// behind the same load balancer, is refused ("Form expired") and must be
    /// reloaded: give every instance the same key.
    pub fn csrf_key(mut self, key: [u8; 32]) -> Self {
        self.csrf_key = Some(key);
        self
    }

    /// A session unused for this long ends (default 30 minutes).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// A session ends this long after sign-in, used or not (default 10 hours).
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// The name shown in titles and the top bar.
    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site_name = name.into();
        self
    }

    /// The sentence the consent page shows for a scope.
    pub fn scope_description(
        mut self,
        scope: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.scope_descriptions
            .insert(scope.into(), description.into());
        self
    }

    /// Replaces the look: every page goes through `renderer`.
    pub fn renderer(mut self, renderer: impl Renderer + 'static) -> Self {
        self.renderer = Arc::new(renderer);
        self
    }

    /// Serves the admin console at `/admin/` for staff users, recording every
    /// change in `log` (feature `admin`).
    #[cfg(feature = "admin")]
    pub fn admin(mut self, log: Arc<dyn crate::store::AdminLog>) -> Self {
        self.admin_log = Some(log);
        self
    }

    /// Serves this stylesheet instead of the built-in one.
    pub fn stylesheet(mut self, css: impl Into<String>) -> Self {
        self.stylesheet = Some(css.into());
        self
    }
}

/// What every page handler needs.
pub(crate) struct PagesInner {
    pub(crate) app: AppState,
    pub(crate) renderer: Arc<dyn Renderer>,
    pub(crate) site_name: String,
    pub(crate) scope_descriptions: HashMap<String, String>,
    /// Seconds after sign-in when a session ends.
    pub(crate) absolute: i64,
    /// `scheme://host[:port]` of the issuer, for the Origin check.
    pub(crate) origin: String,
    /// The key of the anonymous visitors' CSRF cookie.
    pub(crate) csrf_key: session::CsrfKey,
    /// Its name: `__Host-oauth_csrf` on https (Secure, Path=/, no Domain), else
    /// `oauth_csrf`.
    csrf_cookie: &'static str,
    https: bool,
    /// Where the console records changes; `None` when it is not served.
    #[cfg(feature = "admin")]
    pub(crate) admin_log: Option<Arc<dyn crate::store::AdminLog>>,
}

pub(crate) type PagesState = Arc<PagesInner>;

pub(crate) const STYLESHEET_PATH: &str = "/static/oauth/style.css";
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The pages' routes, with sessions and the security headers.
///
/// # Errors
/// No randomness for the CSRF cookie's key (when none was given).
pub(crate) fn routes(
    app: AppState,
    pages: Pages,
) -> Result<Router, crate::token::RandomnessUnavailable> {
    let https = app.issuer_url.starts_with("https://");
    let csrf_key = match pages.csrf_key {
        Some(k) => k,
        None => {
            let mut k = [0u8; 32];
            crate::token::fill_random(&mut k)?;
            k
        }
    };
    let origin = oxide_auth::frontends::dev::Url::parse(&app.issuer_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let state: PagesState = Arc::new(PagesInner {
        app,
        renderer: pages.renderer,
        site_name: pages.site_name,
        scope_descriptions: pages.scope_descriptions,
        absolute: i64::try_from(pages.absolute.as_secs()).unwrap_or(i64::MAX),
        origin,
        csrf_key: session::CsrfKey::new(csrf_key),
        csrf_cookie: if https {
            "__Host-oauth_csrf"
        } else {
            "oauth_csrf"
        },
        https,
        #[cfg(feature = "admin")]
        admin_log: pages.admin_log.clone(),
    });
    let idle = tower_sessions::cookie::time::Duration::seconds(
        i64::try_from(pages.idle.as_secs()).unwrap_or(i64::MAX),
    );
    // `__Host-`: the browser accepts the cookie only with Secure, Path=/ and no
    // Domain, so no sibling subdomain can set or shadow it.
    let sessions = SessionManagerLayer::new(SharedStore(pages.sessions))
        .with_name(if https {
            "__Host-oauth_session"
        } else {
            "oauth_session"
        })
        .with_secure(https)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
        // Idle expiry counts from the last use: every answer saves the session with
        // a new expiry and sends the cookie again. Without this, tower-sessions saves
        // only a changed session, and a user who keeps using the pages is signed out
        // `idle` after the last change (their sign-in). Pages are few and low volume;
        // the store's `save` never brings back a session ended meanwhile.
        .with_always_save(true);
    let css = pages
        .stylesheet
        .unwrap_or_else(|| view::STYLESHEET.to_owned());
    let routes = Router::new()
        .route(
            "/o/authorize/",
            get(authorize::show).post(authorize::decide),
        )
        .route("/o/authorize", get(authorize::show).post(authorize::decide))
        .route("/accounts/login/", get(login::form).post(login::submit))
        .route("/accounts/login", get(login::form).post(login::submit))
        .route("/accounts/logout/", post(login::logout))
        .route("/accounts/logout", post(login::logout))
        .route("/o/authorized_tokens/", get(authorized::list))
        .route("/o/authorized_tokens", get(authorized::list))
        .route("/o/authorized_tokens/revoke/", post(authorized::revoke))
        .route("/o/authorized_tokens/revoke", post(authorized::revoke));
    // DOT's self-service application pages share the console's form and log.
    #[cfg(feature = "admin")]
    let routes = if state.admin_log.is_some() {
        routes
            .merge(crate::admin::routes())
            .merge(applications::routes())
    } else {
        routes
    };
    let routes = routes
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            see_other_after_post,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            anonymous_csrf,
        ))
        .layer(sessions)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state);
    Ok(routes.route(
        STYLESHEET_PATH,
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                ],
                css,
            )
        }),
    ))
}

/// The anonymous visitor's CSRF token ([`session::AnonymousCsrf`]) for the
/// handlers: the request's signed cookie, if any; a token made while answering is
/// sent as the cookie — `HttpOnly`, `SameSite=Lax`, `Path=/`, and on https `Secure`
/// with the `__Host-` name, as the session's. Nothing is stored.
async fn anonymous_csrf(
    axum::extract::State(pages): axum::extract::State<PagesState>,
    mut req: axum::extract::Request,
    next: Next,
) -> Response {
    let sent = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == pages.csrf_cookie)
        .map(|(_, value)| value.to_owned());
    let csrf = session::AnonymousCsrf::new(pages.csrf_key.clone(), sent.as_deref());
    req.extensions_mut().insert(csrf.clone());
    let mut response = next.run(req).await;
    if let Some(token) = csrf.issued() {
        let cookie = tower_sessions::cookie::Cookie::build((pages.csrf_cookie, token))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(pages.https)
            .build();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Every redirect answering a POST is a 303 (RFC 9700 §4.12): the browser follows
/// it with a GET and never re-sends the form — a 307 or 308 would post the password
/// or the consent on to wherever it points. The shared answers ([`to_login`],
/// [`found`]) are 302s, right for a GET; this makes them right after a POST too,
/// for every handler of the pages and the console.
///
/// A POST answered with the login page (its sender is no longer signed in) comes
/// back after the sign-in to the page that holds the form ([`next_after_post`]),
/// not to the action it was sent to: that may answer only POST (405 to the GET
/// after the sign-in).
async fn see_other_after_post(
    axum::extract::State(pages): axum::extract::State<PagesState>,
    req: axum::extract::Request,
    next: Next,
) -> Response {
    let post = req.method() == Method::POST;
    let sent = post.then(|| {
        let referer = req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (req.uri().path().to_owned(), referer)
    });
    let mut response = next.run(req).await;
    if let Some((path, referer)) = sent
        && matches!(
            response.status(),
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        )
    {
        *response.status_mut() = StatusCode::SEE_OTHER;
        let detour = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.strip_prefix(LOGIN_NEXT))
            .map(|n| {
                form_urlencoded::parse(format!("n={n}").as_bytes())
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default()
            });
        if let Some(given) = detour {
            let back = next_after_post(&path, referer.as_deref(), &pages.origin, &given);
            if back != given {
                let back: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
                if let Ok(v) = HeaderValue::from_str(&format!("{LOGIN_NEXT}{back}")) {
                    response.headers_mut().insert(header::LOCATION, v);
                }
            }
        }
    }
    response
}

/// The start of a detour to the login page (see [`to_login`]).
const LOGIN_NEXT: &str = "/accounts/login/?next=";

/// Where the sign-in that a POST to `path` was answered with comes back to
/// (`given`: what its handler said, the action itself or a page of its own).
///
/// 1. The page that sent the form: the `Referer`, when it is of this `origin`, a
///    path [`safe_next`] keeps, not a sign-in page and not a POST-only action. (The
///    pages send `Referrer-Policy: no-referrer`, so browsers usually leave it out.)
/// 2. Else, for a POST-only action, the page that holds its form
///    ([`page_of_action`]).
/// 3. Else `given`: the action's path answers GET with its form.
pub(crate) fn next_after_post(
    path: &str,
    referer: Option<&str>,
    origin: &str,
    given: &str,
) -> String {
    let from_referer = referer
        .and_then(|r| r.strip_prefix(origin))
        .filter(|_| !origin.is_empty())
        .map(|r| r.split('#').next().unwrap_or(""))
        .filter(|r| r.starts_with('/') && safe_next(Some(r)) == *r)
        .filter(|r| {
            let p = r.split('?').next().unwrap_or("");
            !p.starts_with("/accounts/") && page_of_action(p).is_none()
        });
    if let Some(r) = from_referer {
        return r.to_owned();
    }
    if let Some(page) = page_of_action(path) {
        return page;
    }
    given.to_owned()
}

/// The page that holds the form of a POST-only path of this server (`None` for
/// a path that also answers GET): an action's page, or its listing.
pub(crate) fn page_of_action(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["", "o", "authorized_tokens", "revoke"] => "/o/authorized_tokens/".to_owned(),
        ["", "o", "applications", id, "rotate"] => format!("/o/applications/{id}/"),
        ["", "admin", "tokens", "revoke"] => "/admin/tokens/".to_owned(),
        ["", "admin", "users", id, "password"]
        | ["", "admin", "users", id, "applications", "revoke"] => format!("/admin/users/{id}/"),
        ["", "admin", "applications", id, "rotate"] => format!("/admin/applications/{id}/"),
        // Sign-out and the API's endpoints: no page holds their form here.
        ["", "accounts", "logout"] | ["", "o", "token" | "revoke_token" | "introspect"] => {
            "/o/authorized_tokens/".to_owned()
        }
        _ => return None,
    })
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

impl PagesInner {
    /// The signed-in user, when the session has one that is within its absolute
    /// lifetime, the account still exists and is active, and its password is the
    /// one the session was made with; otherwise the session is ended and `None`
    /// returned (a deactivated user, or one whose password changed, is signed out
    /// at their next request).
    pub(crate) async fn user(
        &self,
        session: &tower_sessions::Session,
    ) -> Result<Option<crate::store::User>, session::SessionError> {
        let now = self.app.clock.unix();
        match session::signed_in(session, now, self.absolute).await? {
            Some(id) => self.user_record(session, id).await,
            None => Ok(None),
        }
    }

    /// The user `id` of the session, if the account is active and its password is
    /// the one the session was made with; otherwise the session ends.
    async fn user_record(
        &self,
        session: &tower_sessions::Session,
        id: i64,
    ) -> Result<Option<crate::store::User>, session::SessionError> {
        let user = self
            .app
            .users
            .user_by_id(id)
            .await
            .map_err(|e| session::SessionError::store(&e))?;
        let valid = match &user {
            Some(u) if u.is_active => {
                let current = session::credential(u.password_hash.as_deref());
                session::same_credential(session, &current).await?
            }
            _ => false,
        };
        if valid {
            Ok(user)
        } else {
            session::sign_out(session).await?;
            Ok(None)
        }
    }

    /// The frame of a page: site name, stylesheet, who is signed in.
    pub(crate) fn frame(&self, user: Option<&crate::store::User>, csrf_token: &str) -> Frame {
        Frame {
            site_name: self.site_name.clone(),
            stylesheet: STYLESHEET_PATH.to_owned(),
            signed_in: user.map(|u| u.email.as_str().to_owned()),
            csrf_token: csrf_token.to_owned(),
        }
    }

    /// Each token of `scope` with its description.
    pub(crate) fn describe(&self, scope: &Scope) -> Vec<ScopeLine> {
        scope
            .iter()
            .map(|s| ScopeLine {
                name: s.to_owned(),
                description: self.scope_descriptions.get(s).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Renders a page for the session's user: `build` receives the session's CSRF
    /// token, `render` is the [`Renderer`] method of the page.
    pub(crate) async fn render<P>(
        &self,
        session: &tower_sessions::Session,
        user: Option<&crate::store::User>,
        status: StatusCode,
        build: impl FnOnce(String) -> P,
        render: impl FnOnce(&dyn Renderer, &Frame, &P) -> Result<String, view::RenderError>,
    ) -> Response {
        let csrf_token = match session::csrf_token(session).await {
            Ok(t) => t,
            Err(e) => return self.internal(&e).await,
        };
        self.render_with(csrf_token, user, status, build, render)
    }

    /// [`render`](Self::render) with a given CSRF token.
    pub(crate) fn render_with<P>(
        &self,
        csrf_token: String,
        user: Option<&crate::store::User>,
        status: StatusCode,
        build: impl FnOnce(String) -> P,
        render: impl FnOnce(&dyn Renderer, &Frame, &P) -> Result<String, view::RenderError>,
    ) -> Response {
        let frame = self.frame(user, &csrf_token);
        let page = build(csrf_token);
        self.html(status, render(self.renderer.as_ref(), &frame, &page))
    }

    /// An HTML response from a rendered page, or a plain 500 if rendering failed.
    pub(crate) fn html(
        &self,
        status: StatusCode,
        rendered: Result<String, view::RenderError>,
    ) -> Response {
        match rendered {
            Ok(body) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "page rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error").into_response()
            }
        }
    }

    /// An error page.
    pub(crate) async fn error(
        &self,
        status: StatusCode,
        title: &str,
        message: impl Into<String>,
    ) -> Response {
        let frame = self.frame(None, "");
        let page = ErrorPage {
            title: title.to_owned(),
            message: message.into(),
        };
        self.html(status, self.renderer.error(&frame, &page))
    }

    /// `Ok` as it is; an error as the 500 page (logged, never shown).
    pub(crate) async fn ok<T, E: std::fmt::Display + Sync + 'static>(
        &self,
        result: Result<T, E>,
    ) -> Result<T, Response> {
        match result {
            Ok(v) => Ok(v),
            Err(e) => Err(self.internal(&e).await),
        }
    }

    /// The 500 page, its cause logged — or the 503 page with `Retry-After` when the
    /// cause is load shedding or a transient outage.
    pub(crate) async fn internal<E: std::fmt::Display + Sync + std::any::Any>(
        &self,
        cause: &E,
    ) -> Response {
        if let Some(after) = crate::api::retry_after_of(cause) {
            tracing::debug!(%cause, "page unavailable");
            let mut response = self
                .error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    "The server is busy right now. Please try again in a moment.",
                )
                .await;
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::api::retry_secs(after)),
            );
            return response;
        }
        tracing::error!(%cause, "page failed");
        self.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not complete the request. Please try again later.",
        )
        .await
    }

    /// The 403 page of a form whose CSRF check failed.
    pub(crate) async fn forbidden_form(&self) -> Response {
        self.error(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not sent from this site, or your session ended. Go back, reload the page and try again.",
        )
        .await
    }
}

/// 302 to the login page, to come back to `next` afterwards (a 303 when it answers
/// a POST: see [`see_other_after_post`]).
pub(crate) fn to_login(next: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
    found(&format!("{LOGIN_NEXT}{next}"))
}

/// [`to_login`], coming back to the page of `uri` (its path and query).
pub(crate) fn to_login_back(uri: &axum::http::Uri) -> Response {
    match uri.query() {
        Some(q) => to_login(&format!("{}?{q}", uri.path())),
        None => to_login(uri.path()),
    }
}

/// 302 Found: the answer to a GET that sends the browser elsewhere.
pub(crate) fn found(url: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

/// A `next` value that stays on this site: a path, not `//host` or `/\host`
/// (which browsers read as another host), without control characters.
pub(crate) fn safe_next(next: Option<&str>) -> &str {
    const HOME: &str = "/o/authorized_tokens/";
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n
        }
        _ => HOME,
    }
}

/// A form body's fields; a repeated field is kept once (its first value).
pub(crate) fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    fields
}

/// A POSTed form that passed the CSRF check: its fields, and its raw body (for
/// oxide-auth's parameter parsing). Rejected with the 403 page otherwise.
pub(crate) struct CheckedForm {
    pub(crate) fields: HashMap<String, String>,
    pub(crate) body: axum::body::Bytes,
}

impl axum::extract::FromRequest<PagesState> for CheckedForm {
    type Rejection = Response;

    async fn from_request(
        req: axum::extract::Request,
        pages: &PagesState,
    ) -> Result<Self, Response> {
        use axum::extract::FromRequestParts as _;
        let (mut parts, body) = req.into_parts();
        let session = tower_sessions::Session::from_request_parts(&mut parts, pages)
            .await
            .map_err(IntoResponse::into_response)?;
        // axum's extractor, under the router's limits (the server's body limit and
        // DefaultBodyLimit): a body over the limit is a 413, never read further.
        let headers = parts.headers.clone();
        let cookie = parts
            .extensions
            .get::<session::AnonymousCsrf>()
            .and_then(session::AnonymousCsrf::sent)
            .map(str::to_owned);
        let body =
            axum::body::Bytes::from_request(axum::extract::Request::from_parts(parts, body), pages)
                .await
                .map_err(IntoResponse::into_response)?;
        let fields = form_fields(&body);
        let submitted = fields.get(session::CSRF_FIELD).map(String::as_str);
        match session::check_csrf(
            &session,
            &headers,
            submitted,
            &pages.origin,
            cookie.as_deref(),
        )
        .await
        {
            Ok(true) => Ok(Self { fields, body }),
            Ok(false) => Err(pages.forbidden_form().await),
            Err(e) => Err(pages.internal(&e).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{next_after_post, page_of_action, safe_next};

    const ORIGIN: &str = "https://auth.example";

    /// A detour from a POST comes back to the form's page: the Referer when it is
    /// a page of this origin, else the page of a POST-only action, else the
    /// handler's own `next`. No other origin's Referer is used, whatever the CSRF
    /// check let through.
    #[test]
    fn next_after_a_post_is_the_forms_page() {
        let next = |path, referer| next_after_post(path, referer, ORIGIN, path);
        assert_eq!(
            next("/o/authorized_tokens/revoke/", None),
            "/o/authorized_tokens/"
        );
        assert_eq!(
            next("/admin/users/7/applications/revoke/", None),
            "/admin/users/7/"
        );
        assert_eq!(
            next("/admin/users/7/delete/", None),
            "/admin/users/7/delete/"
        );
        assert_eq!(
            next(
                "/admin/tokens/revoke/",
                Some("https://auth.example/admin/tokens/?user=7#x")
            ),
            "/admin/tokens/?user=7"
        );
        for hostile in [
            "https://evil.example/admin/users/",
            "https://auth.example.evil.example/admin/users/",
            "https://auth.example:8443/admin/users/",
            "http://auth.example/admin/users/",
            "https://auth.example//evil.example/",
            "https://auth.example/\\evil.example/",
            "https://auth.example/ok\tx",
            "https://auth.example",
            "https://auth.example/o/authorized_tokens/revoke/",
            "https://auth.example/accounts/login/?next=/admin/",
            "/admin/users/",
            "",
        ] {
            assert_eq!(
                next("/admin/tokens/revoke/", Some(hostile)),
                "/admin/tokens/",
                "{hostile}"
            );
        }
        // Without an origin of its own, no Referer is trusted.
        assert_eq!(
            next_after_post("/admin/tokens/revoke/", Some("/admin/users/"), "", "x"),
            "/admin/tokens/"
        );
    }

    #[test]
    fn pages_that_answer_get_hold_their_own_form() {
        for path in [
            "/admin/users/add/",
            "/admin/users/7/",
            "/admin/applications/x/delete/",
            "/o/applications/register/",
            "/o/applications/x/update/",
            "/o/authorize/",
        ] {
            assert_eq!(page_of_action(path), None, "{path}");
        }
        assert_eq!(
            page_of_action("/o/applications/x/rotate").as_deref(),
            Some("/o/applications/x/")
        );
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/o/authorize/?a=b")), "/o/authorize/?a=b");
        for evil in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "evil",
            "/ok\\..",
            "/\tx",
        ] {
            assert_eq!(safe_next(Some(evil)), "/o/authorized_tokens/", "{evil}");
        }
        assert_eq!(safe_next(None), "/o/authorized_tokens/");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::safe_next;
    use crate::test_inputs::{CASES, nasty_string};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Whatever `next` says, the redirect stays on this site: one leading `/`,
        /// no backslash, no control character; a `next` is kept whole or not at all.
        #[test]
        fn next_is_always_a_local_path(
            next in proptest::option::of(prop_oneof![
                nasty_string(),
                nasty_string().prop_map(|s| format!("/{s}")),
            ]),
        ) {
            let out = safe_next(next.as_deref());
            prop_assert!(out.starts_with('/') && !out.starts_with("//"), "{out:?}");
            prop_assert!(!out.contains('\\') && !out.chars().any(char::is_control), "{out:?}");
            prop_assert!(Some(out) == next.as_deref() || out == "/o/authorized_tokens/");
        }
    }
}
