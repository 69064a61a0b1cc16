//! The authorization server as an axum [`Router`]: build an [`AuthServer`], set what
//! differs from the defaults, and call [`AuthServer::router`].
//!
//! | path (also without the trailing slash) | what |
//! |---|---|
//! | `POST /o/token/` | RFC 6749 token endpoint: `password`, `refresh_token`, `client_credentials` |
//! | `POST`/`GET /o/introspect/` | RFC 7662 introspection |
//! | `POST /o/revoke_token/` | RFC 7009 revocation |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//! | `POST /users/signup/` | sign-up (JSON or form) |
//! | `PUT`/`PATCH /users/password/` | password change (bearer token) |
//! | `GET /healthz` | liveness |
//!
//! Embedding in an existing axum application:
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use oauth_core::memory::{MemoryClientRegistry, MemoryTokenStore, MemoryUserStore};
//! use oauth_core::{AuthServer, ScryptParams};
//!
//! # fn main() -> Result<(), oauth_core::AuthServerError> {
//! let oauth = AuthServer::new(
//!     Arc::new(MemoryUserStore::default()),
//!     Arc::new(MemoryClientRegistry::default()),
//!     Arc::new(MemoryTokenStore::default()),
//! )
//! .issuer_url("https://auth.example.com")
//! .access_token_ttl(std::time::Duration::from_secs(3600))
//! .scrypt_params(ScryptParams::PRODUCTION)
//! .router()?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "my app" }))
//!     .merge(oauth);
//! # let _ = app;
//! # Ok(()) }
//! ```

#[cfg_attr(not(feature = "pages"), allow(dead_code))]
pub mod authorization;
mod bearer;
mod client_auth;
mod client_ip;
mod code_grant;
mod cors;
mod error;
mod form;
mod introspect;
mod metadata;
mod revocations;
mod revoke;
pub(crate) mod throttle;
pub(crate) mod token;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, DefaultOnResponse, MakeSpan, OnFailure,
    TraceLayer,
};

pub use error::{OAuthError, OAuthErrorCode};
pub use introspect::INTROSPECTION_SCOPE;
pub use ipnet::IpNet;
pub use throttle::ThrottleConfig;

use self::client_auth::ClientAuthenticator;
pub(crate) use self::client_ip::ClientIp;
use self::throttle::Throttle;
use crate::api::ApiError;
use crate::clock::{Clock, SystemClock};
use crate::issuer::{OpaqueTokenIssuer, STAFF_SCOPE, TokenIssuer, TokenLifetimes};
use crate::password::{PasswordError, PasswordHasher, PasswordPolicy, ScryptParams};
use crate::scope::Scope;
use crate::store::{
    ClientRegistry, GrantStore, RefreshGrace, RevocationLog, TokenStore, UserStore,
};

/// Why an [`AuthServer`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthServerError {
    /// The password hasher's parameters are invalid.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The issuer URL is not an absolute `http(s)` URL.
    #[error("the issuer URL must be an absolute http or https URL without query or fragment")]
    IssuerUrl,
    /// The browser pages need a grant store ([`AuthServer::grant_store`]).
    #[error("the browser pages need a grant store for codes and consents")]
    NoGrantStore,
}

/// Builder of the authorization server's router. `new(stores)` plus setters; every
/// setting has a default a development server can run with.
#[must_use]
pub struct AuthServer {
    users: Arc<dyn UserStore>,
    clients: Arc<dyn ClientRegistry>,
    tokens: Arc<dyn TokenStore>,
    grants: Option<Arc<dyn GrantStore>>,
    revocations: Option<Arc<dyn RevocationLog>>,
    code_ttl: Duration,
    #[cfg(feature = "pages")]
    pages: Option<crate::pages::Pages>,
    issuer: Option<Arc<dyn TokenIssuer>>,
    hasher: Option<PasswordHasher>,
    scrypt: ScryptParams,
    policy: PasswordPolicy,
    throttle: ThrottleConfig,
    trusted_proxies: Vec<IpNet>,
    lifetimes: TokenLifetimes,
    refresh_grace: RefreshGrace,
    scopes: Scope,
    staff_scopes: Scope,
    issuer_url: String,
    body_limit: usize,
    clock: Arc<dyn Clock>,
    client_cache_ttl: Duration,
    client_record_ttl: Duration,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer_url", &self.issuer_url)
            .field("scopes", &self.scopes)
            .field("staff_scopes", &self.staff_scopes)
            .field("lifetimes", &self.lifetimes)
            .field("throttle", &self.throttle)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// A server over these stores, with the defaults: scopes `read write introspection`
    /// (and `admin` as the staff-only scope, see [`staff_scopes`](Self::staff_scopes)),
    /// access tokens for 36000 s and refresh tokens for 30 days (both as DOT's),
    /// [`ScryptParams::PRODUCTION`], Django's password rules, [`ThrottleConfig::default`],
    /// 64 KiB request bodies, issuer `http://127.0.0.1:8000`.
    pub fn new(
        users: Arc<dyn UserStore>,
        clients: Arc<dyn ClientRegistry>,
        tokens: Arc<dyn TokenStore>,
    ) -> Self {
        Self {
            users,
            clients,
            tokens,
            grants: None,
            revocations: None,
            code_ttl: Duration::from_secs(60),
            #[cfg(feature = "pages")]
            pages: None,
            issuer: None,
            hasher: None,
            scrypt: ScryptParams::PRODUCTION,
            policy: PasswordPolicy::default(),
            throttle: ThrottleConfig::default(),
            trusted_proxies: Vec::new(),
            lifetimes: TokenLifetimes::default(),
            refresh_grace: RefreshGrace::default(),
            scopes: ["read", "write", INTROSPECTION_SCOPE].into_iter().collect(),
            staff_scopes: [STAFF_SCOPE].into_iter().collect(),
            issuer_url: "http://127.0.0.1:8000".to_owned(),
            body_limit: 64 * 1024,
            clock: Arc::new(SystemClock),
            client_cache_ttl: Duration::from_secs(600),
            client_record_ttl: Duration::from_secs(30),
        }
    }

    /// A server over one store that keeps users, clients, tokens, codes, consents
    /// and the revocation log (such as [`SeaOrmStore`](crate::sea::SeaOrmStore)).
    pub fn from_store<S>(store: Arc<S>) -> Self
    where
        S: UserStore + ClientRegistry + TokenStore + GrantStore + RevocationLog + 'static,
    {
        Self::new(store.clone(), store.clone(), store.clone())
            .grant_store(store.clone())
            .revocation_log(store)
    }

    /// The log the token store appends its revocations to (usually the token store
    /// itself). Enables `GET /o/revocations/`, the stream resource servers follow
    /// to drop cached answers at once, and lets this server drop its own cached
    /// client registrations when another instance deletes a client or rotates its
    /// secret.
    pub fn revocation_log(mut self, log: Arc<dyn RevocationLog>) -> Self {
        self.revocations = Some(log);
        self
    }

    /// Where authorization codes and consents are kept; enables
    /// `grant_type=authorization_code` at the token endpoint.
    pub fn grant_store(mut self, grants: Arc<dyn GrantStore>) -> Self {
        self.grants = Some(grants);
        self
    }

    /// Lets a client present a just-rotated refresh token again within `period`
    /// (at most `max_reuse` times) and get new tokens instead of losing the grant
    /// (default: no grace; see [`RefreshGrace`] for the rules and docs/security.md
    /// for the trade-off). Applies to the built-in issuer.
    pub fn refresh_grace(mut self, period: Duration, max_reuse: Option<u32>) -> Self {
        self.refresh_grace = RefreshGrace {
            period: i64::try_from(period.as_secs()).unwrap_or(i64::MAX),
            max_reuse,
        };
        self
    }

    /// How long an authorization code may be redeemed (default 60 s; RFC 6749
    /// §4.1.2 recommends at most 10 minutes).
    pub fn code_ttl(mut self, ttl: Duration) -> Self {
        self.code_ttl = ttl;
        self
    }

    /// Serves the browser half: `/o/authorize/` with the login and consent pages,
    /// `/accounts/login/`, `/accounts/logout/` and `/o/authorized_tokens/`. Needs a
    /// grant store (given by [`from_store`](Self::from_store)).
    #[cfg(feature = "pages")]
    pub fn pages(mut self, pages: crate::pages::Pages) -> Self {
        self.pages = Some(pages);
        self
    }

    /// The public base URL, used as RFC 8414 `issuer` and to build endpoint URLs.
    pub fn issuer_url(mut self, url: impl Into<String>) -> Self {
        self.issuer_url = url.into();
        self
    }

    /// The scopes this server knows (DOT `SCOPES`).
    pub fn scopes(mut self, scopes: Scope) -> Self {
        self.scopes = scopes;
        self
    }

    /// Scopes a token may carry only while its user is staff (default: `admin`).
    ///
    /// They are how this server tells a resource server "this user is staff": a
    /// non-staff user asking for one is refused (`access_denied` at the
    /// authorization endpoint, `invalid_scope` in the password grant), the
    /// client-credentials grant never gets one (there is no user), a request that
    /// names no scope gets the client's default *without* them, and introspection
    /// leaves them out of the answer as soon as the token's user is no longer
    /// staff. List them in [`scopes`](Self::scopes) too, or no one gets them. A
    /// [`token_issuer`](Self::token_issuer) of your own applies its own rule at
    /// introspection.
    pub fn staff_scopes(mut self, scopes: Scope) -> Self {
        self.staff_scopes = scopes;
        self
    }

    /// Access token lifetime (DOT `ACCESS_TOKEN_EXPIRE_SECONDS`).
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.lifetimes.access = ttl;
        self
    }

    /// Refresh token lifetime, counted from each rotation (DOT `REFRESH_TOKEN_EXPIRE_SECONDS`).
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.lifetimes.refresh = ttl;
        self
    }

    /// scrypt parameters for new password and client-secret hashes.
    pub fn scrypt_params(mut self, params: ScryptParams) -> Self {
        self.scrypt = params;
        self
    }

    /// Uses an existing hasher (sharing its concurrency limit with other code).
    pub fn password_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Password rules for sign-up and password change.
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Brute-force limits and the sign-up rate limit.
    pub fn throttle(mut self, config: ThrottleConfig) -> Self {
        self.throttle = config;
        self
    }

    /// Reverse proxies whose word on the caller's address is believed (default: none).
    ///
    /// Throttling counts per caller address. A request whose peer is in one of these
    /// networks is counted under the address the proxy forwarded — the rightmost
    /// address in `X-Forwarded-For` (or `Forwarded: for=`) that is not itself a
    /// trusted proxy; from any other peer those headers are ignored, so a caller
    /// cannot pick the address it is counted under.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use oauth_core::{AuthServer, IpNet, memory::*};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let app = AuthServer::new(
    ///     Arc::new(MemoryUserStore::default()),
    ///     Arc::new(MemoryClientRegistry::default()),
    ///     Arc::new(MemoryTokenStore::default()),
    /// )
    /// .trusted_proxies(vec!["10.0.0.0/8".parse::<IpNet>()?, "::1/128".parse()?])
    /// .router()?;
    /// # let _ = app; Ok(()) }
    /// ```
    pub fn trusted_proxies(mut self, networks: Vec<IpNet>) -> Self {
        self.trusted_proxies = networks;
        self
    }

    /// Largest accepted request body; larger ones get 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The clock (tests use [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the opaque-token issuer.
    pub fn token_issuer(mut self, issuer: Arc<dyn TokenIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// How long a verified client secret is remembered (default 10 minutes).
    pub fn client_secret_cache_ttl(mut self, ttl: Duration) -> Self {
        self.client_cache_ttl = ttl;
        self
    }

    /// How long a client's registration is reused without asking the registry
    /// (default 30 seconds; zero: every request asks). Changes to a client — a new
    /// secret, its deletion — take effect within this time.
    pub fn client_cache_ttl(mut self, ttl: Duration) -> Self {
        self.client_record_ttl = ttl;
        self
    }

    /// Builds the router. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: failures are counted per
    /// caller address, and without connect info every caller is one and the same
    /// source (see [`trusted_proxies`](Self::trusted_proxies) behind a proxy).
    ///
    /// # Errors
    /// [`AuthServerError::Password`] for invalid scrypt parameters.
    pub fn router(self) -> Result<axum::Router, AuthServerError> {
        let hasher = match self.hasher {
            Some(h) => h,
            None => PasswordHasher::new(self.scrypt)?,
        };
        let issuer = self.issuer.unwrap_or_else(|| {
            Arc::new(
                OpaqueTokenIssuer::new(
                    self.tokens.clone(),
                    self.users.clone(),
                    self.clock.clone(),
                    self.lifetimes,
                )
                .staff_scopes(self.staff_scopes.clone())
                .refresh_grace(self.refresh_grace),
            )
        });
        let issuer_url = self.issuer_url.trim_end_matches('/').to_owned();
        match oxide_auth::frontends::dev::Url::parse(&issuer_url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.query().is_none()
                    && u.fragment().is_none() => {}
            _ => return Err(AuthServerError::IssuerUrl),
        }
        #[cfg(feature = "pages")]
        if self.pages.is_some() && self.grants.is_none() {
            return Err(AuthServerError::NoGrantStore);
        }
        #[cfg(feature = "pages")]
        let browser = self.pages.is_some();
        #[cfg(not(feature = "pages"))]
        let browser = false;
        let state: AppState = Arc::new(ServerState {
            users: self.users,
            tokens: self.tokens,
            grants: self.grants,
            revocations: self.revocations,
            code_ttl: self.code_ttl,
            browser,
            client_auth: ClientAuthenticator::new(
                self.clients,
                hasher.clone(),
                self.client_cache_ttl,
                self.client_record_ttl,
            ),
            issuer,
            hasher,
            policy: self.policy,
            throttle: Throttle::new(self.throttle, self.clock.clone()),
            clock: self.clock,
            scopes: self.scopes,
            staff_scopes: self.staff_scopes,
            issuer_url,
        });
        if let (Some(log), Ok(runtime)) = (
            state.revocations.clone(),
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(revocations::forget_changed_clients(
                log,
                Arc::downgrade(&state),
            ));
        }
        let limit = self.body_limit;
        #[cfg(feature = "pages")]
        let browser_routes = self.pages.map(|p| crate::pages::routes(state.clone(), p));
        // Browser apps (PKCE public clients) call these from their own origin: CORS
        // for the origins clients registered, and never for /o/authorize/.
        let cors = cors::layer(state.clone());
        let router = Router::new();
        let router = both(router, "/o/token/", post(token::token).layer(cors.clone()));
        let router = both(
            router,
            "/o/introspect/",
            post(introspect::introspect).get(introspect::introspect),
        );
        let router = both(
            router,
            "/o/revoke_token/",
            post(revoke::revoke).layer(cors.clone()),
        );
        let router = both(router, "/o/revocations/", get(revocations::stream));
        let router = both(router, "/users/signup/", post(users::signup));
        let router = both(
            router,
            "/users/password/",
            axum::routing::put(users::change_password).patch(users::change_password),
        );
        let router: Router = router
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata::metadata).layer(cors),
            )
            .with_state(state);
        #[cfg(feature = "pages")]
        let router = match browser_routes {
            Some(pages) => router.merge(pages),
            None => router,
        };
        let trusted: Arc<[IpNet]> = self.trusted_proxies.into();
        Ok(router
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                client_ip::resolve(req, next, trusted.clone())
            }))
            .route(
                "/healthz",
                get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
            )
            .layer(DefaultBodyLimit::max(limit))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                reject_large(req, next, limit)
            })))
    }
}

/// A span per request that records the method and the path but never the query
/// string or headers: `GET /o/introspect/?token=…` must not put a token in the logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathOnlySpan;

impl<B> MakeSpan<B> for PathOnlySpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        tracing::info_span!("request", method = %request.method(), path = request.uri().path())
    }
}

/// Logs a failed request (5xx) at ERROR — except 503, which is load shed or a
/// dependency out: those are logged where the condition starts and ends (once per
/// outage, e.g. the introspector's "auth server unreachable"), not once per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietUnavailable;

impl OnFailure<ServerErrorsFailureClass> for QuietUnavailable {
    fn on_failure(
        &mut self,
        class: ServerErrorsFailureClass,
        latency: std::time::Duration,
        _span: &tracing::Span,
    ) {
        let latency = format!("{} ms", latency.as_millis());
        match class {
            ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
                tracing::debug!(%latency, "response failed: 503");
            }
            other => tracing::error!(classification = %other, %latency, "response failed"),
        }
    }
}

/// `tower_http`'s `TraceLayer` with [`PathOnlySpan`]: request logging that is safe for
/// an OAuth server, and quiet about 503s ([`QuietUnavailable`]).
///
/// ```
/// # use std::sync::Arc;
/// # use oauth_core::{AuthServer, memory::*};
/// # fn main() -> Result<(), oauth_core::AuthServerError> {
/// let app = AuthServer::new(
///     Arc::new(MemoryUserStore::default()),
///     Arc::new(MemoryClientRegistry::default()),
///     Arc::new(MemoryTokenStore::default()),
/// )
/// .router()?
/// .layer(oauth_core::server::trace_layer());
/// # let _ = app; Ok(()) }
/// ```
#[must_use]
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    PathOnlySpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    QuietUnavailable,
> {
    TraceLayer::new_for_http()
        .make_span_with(PathOnlySpan)
        .on_failure(QuietUnavailable)
}

/// Routes `path` with and without its trailing slash.
fn both(router: Router<AppState>, path: &str, route: MethodRouter<AppState>) -> Router<AppState> {
    router
        .route(path, route.clone())
        .route(path.trim_end_matches('/'), route)
}

/// Refuses a body over the limit with a JSON 413 — declared or not: a declared
/// length is checked at once, a body without one (chunked) is read up front and
/// counted as it arrives. Every endpoint reads its whole body anyway; doing it here
/// gives one clear answer instead of a parse failure.
async fn reject_large(req: Request, next: Next, limit: usize) -> Response {
    let too_large = || {
        ApiError::Detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body is larger than {limit} bytes.").into(),
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > limit => return too_large(),
        // A declared length within the limit: the server reading the request stops
        // at that length (hyper fails a body that claims more), so there is nothing
        // to count and the body goes on as it came, uncopied. (DefaultBodyLimit
        // still bounds every extractor.)
        Some(_) => return next.run(req).await,
        None => {}
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => too_large(),
    }
}

pub(crate) type AppState = Arc<ServerState>;

pub(crate) struct ServerState {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) grants: Option<Arc<dyn GrantStore>>,
    pub(crate) revocations: Option<Arc<dyn RevocationLog>>,
    pub(crate) code_ttl: Duration,
    /// Whether `/o/authorize/` is served.
    pub(crate) browser: bool,
    pub(crate) client_auth: ClientAuthenticator,
    pub(crate) issuer: Arc<dyn TokenIssuer>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) policy: PasswordPolicy,
    pub(crate) throttle: Throttle,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) scopes: Scope,
    /// Scopes only staff users' tokens may carry.
    pub(crate) staff_scopes: Scope,
    /// Without a trailing slash.
    pub(crate) issuer_url: String,
}
