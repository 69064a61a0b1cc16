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
//! With feature `openapi`, [`AuthServer::router_and_openapi`] also returns the
//! OpenAPI 3.1 document of these endpoints (see [`crate::openapi`]).
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
pub(crate) mod scope_policy;
pub(crate) mod throttle;
pub(crate) mod token;
pub(crate) mod users;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
#[cfg(not(feature = "openapi"))]
use axum::routing::MethodRouter;
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
pub use self::client_ip::ForwardedHeader;
use self::throttle::Throttle;
use crate::api::ApiError;
use crate::clock::{Clock, SystemClock};
use crate::issuer::{OpaqueTokenIssuer, STAFF_SCOPE, TokenIssuer, TokenLifetimes};
use crate::password::{PasswordError, PasswordHasher, PasswordPolicy, ScryptParams};
use crate::scope::Scope;
use crate::store::{
    ClientRegistry, GrantStore, RefreshGrace, RevocationLog, ThrottleStore, TokenStore, UserStore,
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
    /// The operating system gave no random bytes (for the pages' CSRF key).
    #[error(transparent)]
    Randomness(#[from] crate::token::RandomnessUnavailable),
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
    throttle_store: Option<Arc<dyn ThrottleStore>>,
    trusted_proxies: Vec<IpNet>,
    forwarded_header: ForwardedHeader,
    lifetimes: TokenLifetimes,
    refresh_grace: RefreshGrace,
    scopes: Scope,
    staff_scopes: Scope,
    privileged_scopes: Scope,
    issuer_url: String,
    body_limit: usize,
    clock: Arc<dyn Clock>,
    client_cache_ttl: Duration,
    client_record_ttl: Duration,
    stream_limits: revocations::StreamLimits,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer_url", &self.issuer_url)
            .field("scopes", &self.scopes)
            .field("staff_scopes", &self.staff_scopes)
            .field("privileged_scopes", &self.privileged_scopes)
            .field("lifetimes", &self.lifetimes)
            .field("throttle", &self.throttle)
            .field(
                "shared_throttle",
                &self.throttle_store.as_ref().is_some_and(|s| s.shared()),
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// A server over these stores, with the defaults: scopes `read write introspection`
    /// (and `admin` as the staff-only scope, see [`staff_scopes`](Self::staff_scopes);
    /// `introspection` and `admin` privileged, see
    /// [`privileged_scopes`](Self::privileged_scopes)),
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
            throttle_store: None,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            lifetimes: TokenLifetimes::default(),
            refresh_grace: RefreshGrace::default(),
            scopes: ["read", "write", INTROSPECTION_SCOPE].into_iter().collect(),
            staff_scopes: [STAFF_SCOPE].into_iter().collect(),
            privileged_scopes: [INTROSPECTION_SCOPE, STAFF_SCOPE].into_iter().collect(),
            issuer_url: "http://127.0.0.1:8000".to_owned(),
            body_limit: 64 * 1024,
            clock: Arc::new(SystemClock),
            client_cache_ttl: Duration::from_secs(600),
            client_record_ttl: Duration::from_secs(30),
            stream_limits: revocations::StreamLimits::default(),
        }
    }

    /// A server over one store that keeps users, clients, tokens, codes, consents
    /// and the revocation log (such as [`SeaOrmStore`](crate::sea::SeaOrmStore)).
    /// When the store is [shared](ThrottleStore::shared) between instances
    /// (`SeaOrmStore` on PostgreSQL), the brute-force detector's failure counters
    /// are kept there too; otherwise (SQLite) in this process's memory.
    pub fn from_store<S>(store: Arc<S>) -> Self
    where
        S: UserStore
            + ClientRegistry
            + TokenStore
            + GrantStore
            + RevocationLog
            + ThrottleStore
            + 'static,
    {
        let server = Self::new(store.clone(), store.clone(), store.clone())
            .grant_store(store.clone())
            .revocation_log(store.clone());
        if store.shared() {
            server.throttle_store(store)
        } else {
            server
        }
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

    /// The privileged scopes (default: `introspection admin`): granted only to a
    /// confidential client whose registration lists them by name, never as a
    /// default and never to a public client. A client registered without a scope
    /// (an empty stored scope) may have the other, *ordinary* scopes; so may a
    /// request that names no scope. Asking for a privileged scope the client may not
    /// have is `invalid_scope`. See docs/security.md.
    pub fn privileged_scopes(mut self, scopes: Scope) -> Self {
        self.privileged_scopes = scopes;
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

    /// Where the brute-force detector keeps its failure counters (default: this
    /// process's memory, or the store given to [`from_store`](Self::from_store)
    /// when it is shared between instances). A store shared by every instance
    /// makes the thresholds hold across them; it is read once per password check
    /// and per client authentication not already known good, and written only on
    /// failures. Sign-up windows stay in each process.
    pub fn throttle_store(mut self, counters: Arc<dyn ThrottleStore>) -> Self {
        self.throttle_store = Some(counters);
        self
    }

    /// Reverse proxies whose word on the caller's address is believed (default: none).
    ///
    /// Throttling counts per caller address. A request whose peer is in one of these
    /// networks is counted under the address the proxy forwarded — the rightmost
    /// address in `X-Forwarded-For` (or `Forwarded: for=`, see
    /// [`forwarded_header`](Self::forwarded_header)) that is not itself a trusted
    /// proxy; from any other peer those headers are ignored, so a caller
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

    /// The one header the [trusted proxies](Self::trusted_proxies) name the caller
    /// in (default [`ForwardedHeader::XForwardedFor`]). The other is never read: a
    /// proxy that writes `Forwarded` passes on an `X-Forwarded-For` the client
    /// forged, and the other way round.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.forwarded_header = header;
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

    /// How often an open revocation stream (`GET /o/revocations/`) presents its
    /// caller's credentials again (default 5 s): a client deleted or given a new
    /// secret, or a bearer token revoked or expired, loses its stream within this
    /// time — at once when the log names it (its client's tokens revoked, its
    /// token, its user).
    pub fn revocation_stream_recheck(mut self, every: Duration) -> Self {
        self.stream_limits.recheck = every.max(Duration::from_millis(100));
        self
    }

    /// How many revocation streams one client may hold open at a time on this
    /// instance (default 8; a bearer token counts for its client), and how many
    /// all callers together (default 256). Past the first: 429, past the second:
    /// 503, both `temporarily_unavailable` with `Retry-After`. Only callers allowed
    /// the `introspection` scope get that far; any of them can fill the total, so
    /// keep it above what your resource servers need.
    pub fn revocation_stream_subscribers(mut self, per_client: usize, total: usize) -> Self {
        self.stream_limits.per_client = per_client;
        self.stream_limits.total = total;
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
        #[cfg(feature = "openapi")]
        return self.router_and_openapi().map(|(router, _)| router);
        #[cfg(not(feature = "openapi"))]
        self.build()
    }

    /// [`router`](Self::router) and the OpenAPI 3.1 document of its JSON endpoints,
    /// generated from the same registrations (feature `openapi`). Serve the document
    /// with [`openapi::serve`](crate::openapi::serve), or merge it into your own.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use oauth_core::{AuthServer, memory::*};
    /// # fn main() -> Result<(), oauth_core::AuthServerError> {
    /// let (router, doc) = AuthServer::new(
    ///     Arc::new(MemoryUserStore::default()),
    ///     Arc::new(MemoryClientRegistry::default()),
    ///     Arc::new(MemoryTokenStore::default()),
    /// )
    /// .router_and_openapi()?;
    /// assert!(doc.paths.paths.contains_key("/o/token/"));
    /// let app = router.merge(oauth_core::openapi::serve(doc));
    /// # let _ = app; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`router`](Self::router).
    #[cfg(feature = "openapi")]
    pub fn router_and_openapi(
        self,
    ) -> Result<(axum::Router, utoipa::openapi::OpenApi), AuthServerError> {
        self.build()
    }

    /// The router, and with feature `openapi` its document.
    fn build(self) -> Result<Built, AuthServerError> {
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
            feed: self.revocations.clone().map(revocations::Feed::new),
            revocations: self.revocations,
            stream_limits: self.stream_limits,
            code_ttl: self.code_ttl,
            lifetimes: self.lifetimes,
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
            throttle: Throttle::new(self.throttle, self.clock.clone(), self.throttle_store),
            clock: self.clock,
            scopes: self.scopes,
            staff_scopes: self.staff_scopes,
            privileged_scopes: self.privileged_scopes,
            issuer_url,
        });
        // The log's one reader on this instance: it keeps cached client
        // registrations in step with the log from now on, and feeds every
        // revocation stream (built outside a runtime: from the first stream on).
        if let Some(feed) = &state.feed {
            feed.start(Arc::downgrade(&state));
        }
        // Unknown emails pay for the slowest password hash family present: learn
        // which legacy (Django) hashes the store still holds (issue 19).
        #[cfg(feature = "django")]
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (users, hasher) = (state.users.clone(), state.hasher.clone());
            runtime.spawn(async move {
                match users.legacy_password_hashes().await {
                    Ok(hashes) => hasher.learn_legacy_hashes(hashes).await,
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not read which legacy password hashes are present"
                    ),
                }
            });
        }
        let limit = self.body_limit;
        #[cfg(feature = "pages")]
        let browser_routes = self
            .pages
            .map(|p| crate::pages::routes(state.clone(), p))
            .transpose()?;
        // Browser apps (PKCE public clients) call these from their own origin: CORS
        // for the origins clients registered, and never for /o/authorize/.
        let cors = cors::layer(state.clone());
        let cors_per_client = cors::per_client_layer(state.clone());
        let router = ApiRouter::default();
        let router = operations!(
            router,
            paths::TOKEN,
            [post token::token],
            layer = cors_per_client.clone()
        );
        let router = operations!(
            router,
            paths::INTROSPECT,
            [post introspect::introspect_post, get introspect::introspect_get]
        );
        let router = operations!(
            router,
            paths::REVOKE,
            [post revoke::revoke],
            layer = cors_per_client
        );
        let router = operations!(router, paths::SIGNUP, [post users::signup]);
        let router = operations!(
            router,
            paths::PASSWORD,
            [put | patch users::change_password]
        );
        let router = operations!(router, paths::REVOCATIONS, [get revocations::stream]);
        let router = operations!(router, paths::METADATA, [get metadata::metadata], layer = cors);
        #[cfg(feature = "openapi")]
        let (router, mut doc) = router.with_state(state).split_for_parts();
        #[cfg(not(feature = "openapi"))]
        let router: Router = router.with_state(state);
        #[cfg(feature = "pages")]
        let router = match browser_routes {
            Some(pages) => router.merge(pages),
            None => router,
        };
        let router = operations!(ApiRouter::<()>::from(router), paths::HEALTHZ, [get healthz]);
        #[cfg(feature = "openapi")]
        let (router, health) = router.split_for_parts();
        // One `Router::layer` for the three: each call wraps every route in one more
        // boxed service, cloned and called through on every request.
        let trusted: Arc<[IpNet]> = self.trusted_proxies.into();
        let router = router.layer(
            tower::ServiceBuilder::new()
                .layer(RejectLargeLayer { limit })
                .layer(DefaultBodyLimit::max(limit))
                .layer(client_ip::resolve_layer(trusted, self.forwarded_header)),
        );
        #[cfg(feature = "openapi")]
        {
            doc.merge(health);
            finish_document(&mut doc);
            Ok((router, doc))
        }
        #[cfg(not(feature = "openapi"))]
        Ok(router)
    }
}

/// The canonical paths of the JSON endpoints (each also answers without its
/// trailing slash).
pub(crate) mod paths {
    pub(crate) const TOKEN: &str = "/o/token/";
    pub(crate) const INTROSPECT: &str = "/o/introspect/";
    pub(crate) const REVOKE: &str = "/o/revoke_token/";
    pub(crate) const SIGNUP: &str = "/users/signup/";
    pub(crate) const PASSWORD: &str = "/users/password/";
    pub(crate) const REVOCATIONS: &str = "/o/revocations/";
    pub(crate) const METADATA: &str = "/.well-known/oauth-authorization-server";
    pub(crate) const HEALTHZ: &str = "/healthz";
}

/// The health answer.
#[derive(serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Health {
    /// `ok`.
    status: &'static str,
}

/// `GET /healthz`: the process answers.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = paths::HEALTHZ,
    tag = "health",
    responses((status = 200, description = "Alive.", body = Health)),
))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// The router the JSON endpoints are registered on: with feature `openapi` one that
/// records each operation's `#[utoipa::path]` in the document as it routes it.
/// What [`AuthServer::build`] makes.
#[cfg(feature = "openapi")]
type Built = (Router, utoipa::openapi::OpenApi);
#[cfg(not(feature = "openapi"))]
type Built = Router;

#[cfg(feature = "openapi")]
type ApiRouter<S = AppState> = utoipa_axum::router::OpenApiRouter<S>;
#[cfg(not(feature = "openapi"))]
type ApiRouter<S = AppState> = Router<S>;

/// Routes handlers at `$path` and at `$path` without its trailing slash, each for
/// the methods named before it (`[post a, put | patch b]`). With feature `openapi` the path and methods are the
/// ones the handlers' `#[utoipa::path]` attributes name (checked against these in
/// debug builds) and the operations go into the document; without it, a plain route.
macro_rules! operations {
    ($router:expr, $path:expr, [$($($method:ident)|+ $handler:path),+] $(, layer = $layer:expr)?) => {{
        #[cfg(feature = "openapi")]
        {
            let ops = utoipa_axum::routes!($($handler),+);
            debug_assert_eq!(
                operation_keys(&ops.1),
                expected_keys($path, &[$($(stringify!($method)),+),+]),
                "a handler's #[utoipa::path] disagrees with its route"
            );
            $(let ops = utoipa_axum::router::UtoipaMethodRouterExt::layer(ops, $layer);)?
            crate::openapi::slash_optional($router, ops)
        }
        #[cfg(not(feature = "openapi"))]
        {
            let route = axum::routing::MethodRouter::new()$($(.$method($handler))+)+;
            $(let route = route.layer($layer);)?
            both($router, $path, route)
        }
    }};
}
use operations;

#[cfg(feature = "openapi")]
fn operation_keys(paths: &utoipa::openapi::path::Paths) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            [
                ("get", item.get.is_some()),
                ("post", item.post.is_some()),
                ("put", item.put.is_some()),
                ("patch", item.patch.is_some()),
                ("delete", item.delete.is_some()),
            ]
            .into_iter()
            .filter(|(_, present)| *present)
            .map(|(m, _)| (path.clone(), m.to_owned()))
        })
        .collect();
    keys.sort();
    keys
}

#[cfg(feature = "openapi")]
fn expected_keys(path: &str, methods: &[&str]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = methods
        .iter()
        .map(|m| (path.to_owned(), (*m).to_owned()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Title, security schemes, unique operation ids.
#[cfg(feature = "openapi")]
fn finish_document(doc: &mut utoipa::openapi::OpenApi) {
    doc.info.title = "oauth-core authorization server".to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "RFC 6749 token endpoint, RFC 7662 introspection, RFC 7009 revocation, RFC 8414 \
         metadata and the account endpoints. Paths are listed with their trailing slash; \
         each also answers without it. The browser pages (`/o/authorize/`, \
         `/accounts/…`, `/o/applications/…`, `/admin/…`) are HTML and not described here."
            .to_owned(),
    );
    crate::openapi::add_security_schemes(doc);
    crate::openapi::unique_operation_ids(doc);
}

/// A span per request that records the method and the path but never the query
/// string or headers: `GET /o/introspect/?token=…` must not put a token in the logs.
///
/// The span is at INFO, except for introspection, whose span is at DEBUG: at the
/// default level a span costs its endpoint about 5 % of its throughput (creating,
/// formatting and closing it), and introspection is the endpoint resource servers
/// call all the time and that logs nothing at INFO of its own. Its failures are still
/// logged ([`QuietUnavailable`]), without the span's fields unless DEBUG is on.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathOnlySpan;

impl<B> MakeSpan<B> for PathOnlySpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let path = request.uri().path();
        if path.trim_end_matches('/') == paths::INTROSPECT.trim_end_matches('/') {
            tracing::debug_span!("request", method = %request.method(), path)
        } else {
            tracing::info_span!("request", method = %request.method(), path)
        }
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

/// Routes `path`, and `path` without its trailing slash when it has one.
#[cfg(not(feature = "openapi"))]
fn both<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &str,
    route: MethodRouter<S>,
) -> Router<S> {
    let router = router.route(path, route.clone());
    match path.strip_suffix('/') {
        Some(alias) if !alias.is_empty() => router.route(alias, route),
        _ => router,
    }
}

/// Refuses a body over the limit with a JSON 413 — declared or not: a declared
/// length is checked at once, a body without one (chunked) is read up front and
/// counted as it arrives. Every endpoint reads its whole body anyway; doing it here
/// gives one clear answer instead of a parse failure.
///
/// A plain service rather than `axum::middleware::from_fn`: a request with a
/// declared length (nearly all) goes on with no boxed copy of the router and no
/// boxed future; only the chunked body and the refusal take the boxed path.
#[derive(Clone, Copy)]
struct RejectLargeLayer {
    limit: usize,
}

impl<S> tower::Layer<S> for RejectLargeLayer {
    type Service = RejectLarge<S>;

    fn layer(&self, inner: S) -> RejectLarge<S> {
        RejectLarge {
            inner,
            limit: self.limit,
        }
    }
}

#[derive(Clone)]
struct RejectLarge<S> {
    inner: S,
    limit: usize,
}

type BoxedAnswer = futures_util::future::BoxFuture<'static, Result<Response, Infallible>>;

impl<S> tower::Service<Request> for RejectLarge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = futures_util::future::Either<S::Future, BoxedAnswer>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::future::Either;
        let limit = self.limit;
        // The OAuth endpoints (`/o/…`) answer in RFC 6749's shape, the others in
        // DRF's (`detail`); the status is 413 either way.
        let oauth = req.uri().path().starts_with("/o/");
        let too_large = move || {
            let description = format!("Request body is larger than {limit} bytes.");
            if oauth {
                let mut response = OAuthError::invalid_request(description).into_response();
                *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                response
            } else {
                ApiError::Detail(StatusCode::PAYLOAD_TOO_LARGE, description.into()).into_response()
            }
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        match declared {
            Some(n) if n > limit => return Either::Right(Box::pin(async move { Ok(too_large()) })),
            // A declared length within the limit: the server reading the request
            // stops at that length (hyper fails a body that claims more), so there is
            // nothing to count and the body goes on as it came, uncopied.
            // (DefaultBodyLimit still bounds every extractor.)
            Some(_) => return Either::Left(self.inner.call(req)),
            None => {}
        }
        // The service that was made ready goes with the request; a fresh clone
        // stays for the next one (tower's rule for services moved into futures).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Either::Right(Box::pin(async move {
            let (parts, body) = req.into_parts();
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => {
                    inner
                        .call(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Err(_) => Ok(too_large()),
            }
        }))
    }
}

pub(crate) type AppState = Arc<ServerState>;

pub(crate) struct ServerState {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) grants: Option<Arc<dyn GrantStore>>,
    pub(crate) revocations: Option<Arc<dyn RevocationLog>>,
    /// The one reader of the log for this instance's streams (with a log).
    pub(crate) feed: Option<revocations::Feed>,
    pub(crate) stream_limits: revocations::StreamLimits,
    pub(crate) code_ttl: Duration,
    /// Token lifetimes: how long a redeemed code's tombstone is kept.
    pub(crate) lifetimes: TokenLifetimes,
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
    /// Scopes granted only to confidential clients registered with them.
    pub(crate) privileged_scopes: Scope,
    /// Without a trailing slash.
    pub(crate) issuer_url: String,
}

impl ServerState {
    /// [`GrantStore::void_codes`] at the server's clock, when there is a grant
    /// store (without one no code is ever issued). Call it before the token
    /// revocation it goes with.
    pub(crate) async fn void_codes(
        &self,
        user_id: crate::store::UserId,
        client_id: Option<&str>,
    ) -> Result<u64, crate::store::StoreError> {
        match &self.grants {
            Some(grants) => {
                grants
                    .void_codes(user_id, client_id, self.clock.unix())
                    .await
            }
            None => Ok(0),
        }
    }

    #[cfg(feature = "admin")]
    /// [`GrantStore::void_client_codes`] at the server's clock, when there is a
    /// grant store. Call it before revoking the client's tokens.
    pub(crate) async fn void_client_codes(
        &self,
        client_id: &str,
    ) -> Result<u64, crate::store::StoreError> {
        match &self.grants {
            Some(grants) => grants.void_client_codes(client_id, self.clock.unix()).await,
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tower_http::trace::MakeSpan as _;

    use super::PathOnlySpan;

    /// At the default level (INFO) every request has its span but introspection's.
    #[test]
    fn introspection_span_is_at_debug_the_others_at_info() {
        let at = |level| {
            let subscriber = tracing_subscriber::fmt().with_max_level(level).finish();
            tracing::subscriber::with_default(subscriber, || {
                [
                    "/o/introspect/",
                    "/o/introspect",
                    "/o/token/",
                    "/users/signup/",
                ]
                .map(|path| {
                    let request = axum::http::Request::post(path).body(()).unwrap();
                    !PathOnlySpan.make_span(&request).is_disabled()
                })
            })
        };
        assert_eq!(at(tracing::Level::INFO), [false, false, true, true]);
        assert_eq!(at(tracing::Level::DEBUG), [true, true, true, true]);
    }
}
