//! [`Introspector`]: RFC 7662 calls with a pooled HTTP client and a bounded cache.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use serde::Deserialize;

use super::follow::{self, FollowConfig, StreamState};
use super::{AuthError, Authenticator, Principal};
use crate::scope::Scope;
use crate::secret::{AccessToken, ClientSecret};
use crate::token::TokenHash;

/// How the resource server proves itself to the introspection endpoint (RFC 7662 §2.1).
#[derive(Clone)]
pub enum IntrospectionCredentials {
    /// HTTP Basic with the resource server's client id and secret.
    Client {
        /// Client id.
        id: String,
        /// Client secret.
        secret: ClientSecret,
    },
    /// A bearer token carrying the `introspection` scope.
    Bearer(AccessToken),
}

impl fmt::Debug for IntrospectionCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client { id, .. } => write!(f, "Client({id:?}, [redacted])"),
            Self::Bearer(_) => f.write_str("Bearer([redacted])"),
        }
    }
}

/// Settings of an [`Introspector`]: `new(url, credentials)` plus setters.
#[derive(Debug, Clone)]
pub struct IntrospectorConfig {
    url: String,
    credentials: IntrospectionCredentials,
    cache_cap: Duration,
    negative_ttl: Duration,
    max_entries: u64,
    connect_timeout: Duration,
    timeout: Duration,
    revocation_stream: Option<String>,
    disconnected_cap: Duration,
    stream_silence: Duration,
}

impl IntrospectorConfig {
    /// Introspect at `url` (e.g. `http://127.0.0.1:8000/o/introspect/`). Defaults: an
    /// active answer is cached at most 5 minutes (never past the token's `exp`), an
    /// inactive one 5 seconds, 100,000 entries at most, 1 s to connect, 2 s in all.
    #[must_use]
    pub fn new(url: impl Into<String>, credentials: IntrospectionCredentials) -> Self {
        Self {
            url: url.into(),
            credentials,
            cache_cap: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            max_entries: 100_000,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            revocation_stream: None,
            disconnected_cap: Duration::from_secs(5),
            stream_silence: Duration::from_secs(3),
        }
    }

    /// Follows the auth server's revocation stream at `url` (e.g.
    /// `http://127.0.0.1:8000/o/revocations/`, authenticated with the same
    /// credentials): a cached answer is dropped as soon as its token is revoked,
    /// so [`cache_cap`](Self::cache_cap) no longer bounds how long a revoked token
    /// is honoured. While the stream is down, cached answers are used at most
    /// [`disconnected_cache_cap`](Self::disconnected_cache_cap) after they were
    /// fetched. [`Introspector::new`] must then run inside a Tokio runtime: it
    /// spawns the task that follows the stream.
    #[must_use]
    pub fn follow_revocations(mut self, url: impl Into<String>) -> Self {
        self.revocation_stream = Some(url.into());
        self
    }

    /// How long a cached answer is used while the revocation stream is down
    /// (default 5 s): the longest a token revoked meanwhile is still honoured.
    #[must_use]
    pub fn disconnected_cache_cap(mut self, cap: Duration) -> Self {
        self.disconnected_cap = cap;
        self
    }

    /// How long the stream may stay silent before it counts as down (default 3 s;
    /// our auth server sends a heartbeat every second).
    #[must_use]
    pub fn stream_silence(mut self, silence: Duration) -> Self {
        self.stream_silence = silence;
        self
    }

    /// Longest an active answer is reused; a revoked token is honoured at most this long.
    #[must_use]
    pub fn cache_cap(mut self, cap: Duration) -> Self {
        self.cache_cap = cap;
        self
    }

    /// How long an inactive answer is reused (zero: not cached).
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Most cached answers.
    #[must_use]
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = n;
        self
    }

    /// Connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Whole-request timeout.
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// A cached answer and how long it may live.
#[derive(Clone)]
pub(super) struct Verdict {
    pub(super) principal: Option<Arc<Principal>>,
    /// The token's `iat`, when the server said.
    pub(super) issued_at: Option<i64>,
    ttl: Duration,
    fetched_at: Instant,
}

struct VerdictExpiry;

impl Expiry<TokenHash, Verdict> for VerdictExpiry {
    fn expire_after_create(&self, _: &TokenHash, v: &Verdict, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// RFC 7662 §2.2 answer; unknown members are ignored. Numbers may come as integers
/// or floats, as servers differ.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    active: bool,
    scope: Option<String>,
    exp: Option<serde_json::Number>,
    client_id: Option<String>,
    username: Option<String>,
    sub: Option<serde_json::Value>,
    iat: Option<serde_json::Number>,
}

fn unix(n: &serde_json::Number) -> Option<i64> {
    #[allow(clippy::cast_possible_truncation)] // seconds, floored
    n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64))
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Asks an RFC 7662 endpoint whether tokens are active — our auth server's, DOT's
/// `/o/introspect/`, or any other — and remembers the answers.
///
/// The cache is keyed by the token's SHA-256, never the token; an active answer
/// lives `min(exp − now, cache cap)`, an inactive one the negative TTL; concurrent
/// misses for one token make exactly one call. Failures to reach the server are not
/// cached. Scope is not part of a verdict: callers check it on every request.
///
/// ```no_run
/// # use oauth_core::resource::{Authenticator, IntrospectionCredentials, Introspector, IntrospectorConfig};
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let introspector = Introspector::new(IntrospectorConfig::new(
///     "http://127.0.0.1:8000/o/introspect/",
///     IntrospectionCredentials::Client { id: "rs-id".into(), secret: "rs-secret".into() },
/// ))?;
/// let principal = introspector.authenticate("a-bearer-token").await?;
/// println!("{:?} may {}", principal.username, principal.scope);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Introspector {
    http: reqwest::Client,
    config: Arc<IntrospectorConfig>,
    cache: moka::future::Cache<TokenHash, Verdict>,
    reach: Arc<Reachability>,
    stream: Option<Arc<StreamState>>,
    _follower: Option<Arc<AbortOnDrop>>,
}

/// Stops the follower task when the last clone of its introspector is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why an introspection call gave no usable answer (each is a 503 for an uncached
/// token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No connection (refused, reset, DNS).
    Connect,
    /// No answer within the timeout.
    Timeout,
    /// A redirect, not followed: the answer must come from the configured URL.
    Redirect(u16),
    /// Another status than 200 (5xx, or 4xx: wrong credentials).
    Status(u16),
    /// Longer than the size cap.
    TooLarge,
    /// The body broke off.
    BrokeOff,
    /// Not RFC 7662 JSON.
    BadJson,
}

impl Refusal {
    /// One number per state, 0 being "answering": what [`Reachability`] swaps.
    fn code(self) -> u32 {
        match self {
            Self::Connect => 1,
            Self::Timeout => 2,
            Self::TooLarge => 3,
            Self::BrokeOff => 4,
            Self::BadJson => 5,
            Self::Redirect(status) => 10_000 + u32::from(status),
            Self::Status(status) => 20_000 + u32::from(status),
        }
    }

    /// The auth server is down (as `/readyz` tells), rather than answering wrongly.
    fn unreachable(self) -> bool {
        match self {
            Self::Connect | Self::Timeout => true,
            Self::Status(status) => status >= 500,
            _ => false,
        }
    }

    fn cause(self) -> String {
        match self {
            Self::Connect => "connection failed".to_owned(),
            Self::Timeout => "timed out".to_owned(),
            Self::Redirect(status) => format!("redirect ({status}), not followed"),
            Self::Status(status @ 400..500) => format!(
                "status {status}: the introspection endpoint refused this resource server's \
                 request; check its credentials"
            ),
            Self::Status(status) => format!("status {status}"),
            Self::TooLarge => format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
            Self::BrokeOff => "answer broke off".to_owned(),
            Self::BadJson => "answer is not RFC 7662 JSON".to_owned(),
        }
    }
}

/// The state of the introspection calls, so that each refusal is logged when it
/// starts (at WARN, naming its cause) and when calls succeed again (at INFO) — once
/// per change of state, not once per request: a flood of requests during an outage
/// logs one line. Lock-free: the state is one number, swapped.
#[derive(Default)]
struct Reachability {
    /// The auth server did not answer the last call (connection, timeout, 5xx).
    down: std::sync::atomic::AtomicBool,
    /// Calls that failed to reach it.
    failures: std::sync::atomic::AtomicU64,
    /// [`Refusal::code`] of the last call, 0 when it succeeded.
    state: std::sync::atomic::AtomicU32,
    /// Calls refused since the last success.
    refused: std::sync::atomic::AtomicU64,
}

impl Reachability {
    fn refused(&self, why: Refusal) {
        use std::sync::atomic::Ordering::Relaxed;
        self.refused.fetch_add(1, Relaxed);
        if why.unreachable() {
            self.failures.fetch_add(1, Relaxed);
            self.down.store(true, Relaxed);
        } else {
            // It answered, if wrongly.
            self.down.store(false, Relaxed);
        }
        if self.state.swap(why.code(), Relaxed) != why.code() {
            let cause = why.cause();
            if why.unreachable() {
                tracing::error!(
                    %cause,
                    "auth server unreachable: uncached tokens get 503 until it answers again"
                );
            } else {
                tracing::warn!(
                    %cause,
                    "introspection answer refused: uncached tokens get 503 until the auth server answers properly"
                );
            }
        }
    }

    fn succeeded(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let was_down = self.down.swap(false, Relaxed);
        if self.state.swap(0, Relaxed) != 0 {
            let failed_calls = self.refused.swap(0, Relaxed);
            if was_down {
                tracing::info!(failed_calls, "auth server reachable again");
            } else {
                tracing::info!(failed_calls, "introspection answers accepted again");
            }
        }
    }
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("url", &self.config.url)
            .field("cached", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// Installs the process's one rustls crypto provider (ring, as sqlx uses) unless one
/// is installed already. [`Introspector::new`] calls it; call it before building any
/// other `reqwest::Client` in a process that links this crate, since reqwest built
/// without a provider of its own panics without one.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Introspector {
    /// An introspector with a pooled HTTP client. It follows no redirect and reads
    /// at most 64 KiB of an answer (an RFC 7662 answer is a few hundred bytes).
    ///
    /// # Errors
    /// [`AuthError::Unavailable`] when the HTTP client cannot be built.
    pub fn new(config: IntrospectorConfig) -> Result<Self, AuthError> {
        ensure_crypto_provider();
        // No redirects: the answer must come from the configured endpoint itself,
        // never from wherever a compromised or misconfigured one points.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| AuthError::Unavailable(format!("HTTP client: {e}")))?;
        let mut builder = moka::future::Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(VerdictExpiry);
        if config.revocation_stream.is_some() {
            builder = builder.support_invalidation_closures();
        }
        let cache = builder.build();
        let (stream, follower) = match &config.revocation_stream {
            None => (None, None),
            Some(url) => {
                let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                    AuthError::Unavailable(
                        "following the revocation stream needs a Tokio runtime".into(),
                    )
                })?;
                let state = Arc::new(StreamState::new());
                let task = runtime.spawn(follow::run(
                    FollowConfig {
                        url: url.clone(),
                        silence: config.stream_silence,
                        connect_timeout: config.connect_timeout,
                    },
                    config.credentials.clone(),
                    cache.clone(),
                    state.clone(),
                ));
                (Some(state), Some(Arc::new(AbortOnDrop(task))))
            }
        };
        Ok(Self {
            http,
            config: Arc::new(config),
            cache,
            reach: Arc::default(),
            stream,
            _follower: follower,
        })
    }

    /// Whether the revocation stream is followed and caught up right now.
    #[must_use]
    pub fn revocation_stream_live(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_live())
    }

    /// Revocation entries applied to the cache since this introspector was made.
    #[must_use]
    pub fn revocations_applied(&self) -> u64 {
        self.stream
            .as_ref()
            .map_or(0, |s| s.applied.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Calls that found the auth server unreachable, timed out or failing (5xx),
    /// since this introspector was made. The outage itself is logged once when it
    /// starts and once when it ends.
    #[must_use]
    pub fn unreachable_calls(&self) -> u64 {
        self.reach
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// False from a failed call to the auth server (unreachable, timed out, 5xx)
    /// until the next one that succeeds.
    #[must_use]
    pub fn auth_server_reachable(&self) -> bool {
        !self.reach.down.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Cached answers right now (approximate).
    #[must_use]
    pub fn cached_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.cache.invalidate_all();
    }

    /// A cache miss: one call to the auth server for any number of concurrent
    /// requests with the token.
    async fn fetch(&self, key: TokenHash, token: &str) -> Result<Verdict, AuthError> {
        let ran = std::sync::atomic::AtomicBool::new(false);
        let asked = async {
            ran.store(true, std::sync::atomic::Ordering::Relaxed);
            self.ask(token).await
        };
        let verdict = self.cache.try_get_with(key, asked).await;
        let ran = ran.load(std::sync::atomic::Ordering::Relaxed);
        crate::metrics::cache(if ran { "miss" } else { "coalesced" });
        verdict.map_err(|e| {
            crate::metrics::introspection_unavailable();
            (*e).clone()
        })
    }

    fn epoch(&self) -> Option<u64> {
        self.stream
            .as_ref()
            .map(|s| s.epoch.load(std::sync::atomic::Ordering::Acquire))
    }

    async fn ask(&self, token: &str) -> Result<Verdict, AuthError> {
        let epoch = self.epoch();
        let mut verdict = self.call(token).await?;
        if self.epoch() != epoch {
            // A revocation arrived while the server was answering: this answer may
            // predate it, and its eviction may have run before it is cached. Use
            // it for this request only.
            verdict.ttl = Duration::ZERO;
        }
        Ok(verdict)
    }

    async fn call(&self, token: &str) -> Result<Verdict, AuthError> {
        let request = self.http.post(&self.config.url).form(&[("token", token)]);
        let request = authorize(request, &self.config.credentials);
        let started = Instant::now();
        let response = request.send().await;
        crate::metrics::introspection_call(started.elapsed());
        let refuse = |why: Refusal| {
            self.reach.refused(why);
            AuthError::Unavailable(format!("introspection: {}", why.cause()))
        };
        let response = response.map_err(|e| {
            refuse(if e.is_timeout() {
                Refusal::Timeout
            } else {
                Refusal::Connect
            })
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(refuse(Refusal::Redirect(status.as_u16())));
        }
        if !status.is_success() {
            return Err(refuse(Refusal::Status(status.as_u16())));
        }
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(refuse)?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| refuse(Refusal::BadJson))?;
        self.reach.succeeded();
        let now = now_unix();
        let exp = answer.exp.as_ref().and_then(unix);
        if !answer.active || exp.is_some_and(|e| e <= now) {
            return Ok(Verdict {
                principal: None,
                issued_at: None,
                ttl: self.config.negative_ttl,
                fetched_at: Instant::now(),
            });
        }
        let left = exp.map_or(self.config.cache_cap, |e| {
            Duration::from_secs(u64::try_from(e - now).unwrap_or(0))
        });
        let principal = Principal {
            sub: answer.sub.map(|s| match s {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            }),
            username: answer.username,
            client_id: answer.client_id,
            scope: answer
                .scope
                .as_deref()
                .map(|s| s.split(' ').collect())
                .unwrap_or_else(Scope::empty),
            expires_at: exp,
        };
        Ok(Verdict {
            principal: Some(Arc::new(principal)),
            issued_at: answer.iat.as_ref().and_then(unix),
            ttl: left.min(self.config.cache_cap),
            fetched_at: Instant::now(),
        })
    }
}

#[async_trait]
impl Authenticator for Introspector {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let key = TokenHash::of(token);
        let mut verdict = match self.cache.get(&key).await {
            Some(verdict) => {
                crate::metrics::cache("hit");
                verdict
            }
            None => self.fetch(key, token).await?,
        };
        if let Some(stream) = &self.stream
            && !stream.is_live()
            && verdict.fetched_at.elapsed() > self.config.disconnected_cap
        {
            // Revocations are not reaching us: an older answer may be stale.
            self.cache.invalidate(&key).await;
            verdict = self.fetch(key, token).await?;
        }
        match verdict.principal {
            // The entry's lifetime is bounded by `exp`; the check makes it exact.
            Some(p) if p.expires_at.is_none_or(|e| e > now_unix()) => Ok((*p).clone()),
            Some(_) => {
                self.cache.invalidate(&key).await;
                Err(AuthError::InvalidToken)
            }
            None => Err(AuthError::InvalidToken),
        }
    }
}

/// `request` with the resource server's credentials (RFC 7662 §2.1).
pub(super) fn authorize(
    request: reqwest::RequestBuilder,
    credentials: &IntrospectionCredentials,
) -> reqwest::RequestBuilder {
    match credentials {
        IntrospectionCredentials::Client { id, secret } => {
            // RFC 6749 §2.3.1: form-encode both before Basic.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request.basic_auth(enc(id), Some(enc(secret.secret())))
        }
        IntrospectionCredentials::Bearer(t) => request.bearer_auth(t.secret()),
    }
}

/// The largest introspection answer read; a larger one is refused unread.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The body of `response`, refused past `cap` bytes — declared or streamed.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, Refusal> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Refusal::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            Refusal::Timeout
        } else {
            Refusal::BrokeOff
        }
    })? {
        if body.len() + chunk.len() > cap {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
