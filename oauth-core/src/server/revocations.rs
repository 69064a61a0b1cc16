//! `GET /o/revocations/`: the revocation log as Server-Sent Events, for resource
//! servers (and other auth server instances) that cache introspection answers.
//! The wire format is documented in docs/revocation-events.md.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::bearer::bearer_token;
use super::error::{OAuthError, no_store};
use super::introspect::{Caller, authorize_caller};
use super::{AppState, ClientIp, ServerState};
use crate::store::{RevocationEvent, RevocationKind, RevocationLog, RevokedTokens};
use crate::token::TokenHash;

/// A comment line this often while nothing happens, so that a receiver notices a
/// dead or stopped server within a few seconds.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often the instance's feed re-reads the log with no wake-up: the backstop
/// behind PostgreSQL `LISTEN`.
const POLL: Duration = Duration::from_secs(1);

/// Entries read per query.
const BATCH: u64 = 256;

/// Entries the shared feed keeps for subscribers that are behind; one further
/// behind reads what it missed from the log.
const FEED_CAPACITY: usize = 1024;

/// Who may hold `GET /o/revocations/` open, and for how long without asking again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamLimits {
    /// How often an open stream re-checks its caller's credentials.
    pub(crate) recheck: Duration,
    /// Open streams per client (the authenticating client, or the bearer token's).
    pub(crate) per_client: usize,
    /// Open streams in all, on this instance.
    pub(crate) total: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            recheck: Duration::from_secs(5),
            per_client: 8,
            total: 256,
        }
    }
}

/// What the feed hands its subscribers.
enum Item {
    Entry(RevocationEvent),
    /// The log is not the one followed, or entries were purged under the feed:
    /// every receiver forgets everything and continues from this id.
    Reset(i64),
}

/// The instance's one reader of the log: a single task reads new entries once a
/// second (or when the store wakes it) and hands them to every open stream, and
/// keeps this instance's cached client registrations in step with the log (a
/// client deleted, or given a new secret, on another instance sharing the
/// database is forgotten here as soon as the entry arrives).
pub(crate) struct Feed {
    log: Arc<dyn RevocationLog>,
    /// The sender and the feed's position, changed together: a subscriber that
    /// joins gets every item after the position it read.
    shared: Mutex<Shared>,
    /// Whether the feed has read the log once (it has a position).
    primed: tokio::sync::watch::Sender<bool>,
    started: AtomicBool,
    open: Arc<Mutex<OpenStreams>>,
}

struct Shared {
    tx: broadcast::Sender<Arc<Item>>,
    position: Option<i64>,
}

#[derive(Default)]
struct OpenStreams {
    per_client: HashMap<String, usize>,
    total: usize,
}

/// One open stream's place under the caps, given back when the stream ends.
struct Slot {
    open: Arc<Mutex<OpenStreams>>,
    client_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_client.remove(&self.client_id);
            }
        }
    }
}

impl Feed {
    pub(crate) fn new(log: Arc<dyn RevocationLog>) -> Self {
        Self {
            log,
            shared: Mutex::new(Shared {
                tx: broadcast::channel(FEED_CAPACITY).0,
                position: None,
            }),
            primed: tokio::sync::watch::channel(false).0,
            started: AtomicBool::new(false),
            open: Arc::default(),
        }
    }

    /// Starts the feed's task, once per server (the first call in a runtime).
    pub(crate) fn start(&self, state: Weak<ServerState>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(run_feed(self.log.clone(), state));
            }
            Err(_) => self.started.store(false, Ordering::Release),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `items` to the subscribers and moves the feed to `position`.
    fn publish(&self, position: Option<i64>, items: Vec<Item>) {
        let mut shared = self.shared();
        for item in items {
            // No receiver is no error: nobody listens at the moment.
            let _ = shared.tx.send(Arc::new(item));
        }
        shared.position = position;
        drop(shared);
        self.primed
            .send_if_modified(|primed| !std::mem::replace(primed, true));
    }

    /// A receiver of every item after the returned position (once the feed has one).
    async fn join(&self) -> Option<(broadcast::Receiver<Arc<Item>>, i64)> {
        let mut primed = self.primed.subscribe();
        loop {
            {
                let shared = self.shared();
                if let Some(position) = shared.position {
                    return Some((shared.tx.subscribe(), position));
                }
            }
            primed.wait_for(|p| *p).await.ok()?;
        }
    }

    /// A place for one more stream of `client_id`, or the refusal.
    fn admit(&self, client_id: &str, limits: StreamLimits) -> Result<Slot, OAuthError> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let of_client = open.per_client.get(client_id).copied().unwrap_or(0);
        if of_client >= limits.per_client {
            return Err(OAuthError::too_many(
                limits.recheck,
                "This client holds as many revocation streams as it may.",
            ));
        }
        if open.total >= limits.total {
            return Err(OAuthError::unavailable(limits.recheck));
        }
        open.total += 1;
        *open.per_client.entry(client_id.to_owned()).or_default() += 1;
        Ok(Slot {
            open: self.open.clone(),
            client_id: client_id.to_owned(),
        })
    }
}

/// The feed's task: reads the log after the newest id seen, forgets changed
/// clients, publishes. Ends when the server is dropped.
async fn run_feed(log: Arc<dyn RevocationLog>, state: Weak<ServerState>) {
    let mut wake = log.subscribe();
    let mut position: Option<i64> = None;
    loop {
        let Some(server) = state.upgrade() else {
            return;
        };
        let Some(feed) = &server.feed else {
            return;
        };
        let mut more = false;
        match log
            .revocations_after(position.unwrap_or(i64::MAX), BATCH)
            .await
        {
            Ok(batch) => {
                let at = *position.get_or_insert(batch.latest);
                let mut items = Vec::new();
                if at < batch.purged_through || at > batch.latest {
                    server.client_auth.forget_all();
                    position = Some(batch.latest);
                    items.push(Item::Reset(batch.latest));
                    more = true;
                } else {
                    more = batch.events.len() as u64 == BATCH;
                    for event in batch.events {
                        if let RevokedTokens::Client(client_id) = &event.tokens {
                            // Before the streams hear of it: their re-check reads
                            // the registration anew.
                            server.client_auth.forget(client_id);
                        }
                        position = Some(event.id);
                        items.push(Item::Entry(event));
                    }
                }
                feed.publish(position, items);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the revocation log"),
        }
        drop(server);
        if !more {
            let _ = tokio::time::timeout(POLL, wake.changed()).await;
        }
    }
}

/// `GET /o/revocations/`: the log from `Last-Event-ID` on, then live.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = super::paths::REVOCATIONS,
    tag = "oauth",
    params(
        ("Last-Event-ID" = Option<i64>, Header,
         description = "The last log id the receiver applied; without it the stream starts at the end of the log."),
    ),
    security(("client_basic" = []), ("bearer" = []), ()),
    responses(
        (status = 200,
         description = "Server-Sent Events, endless: `token-revoked`, `session-revoked`, `credential-change`, `sync`, `reset` (docs/revocation-events.md); a comment line every second. The stream ends when the caller's credentials no longer pass (re-checked every few seconds and on entries that name the caller). 429 / 503 past the per-client / total cap of open streams.",
         content_type = "text/event-stream", body = String),
        crate::openapi::OAuthErrors,
        crate::openapi::BearerScopeError,
    ),
))]
pub(super) async fn stream(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let (Some(log), Some(feed)) = (state.revocations.clone(), state.feed.as_ref()) else {
        return Err(OAuthError::invalid_request(
            "This server keeps no revocation log.",
        ));
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| OAuthError::invalid_request("Malformed Authorization header."))?
        .map(str::to_owned);
    let caller = authorize_caller(&state, &ip, authorization.as_deref(), None, None).await?;
    // A resuming receiver sends the last id it applied (the SSE standard's header).
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| OAuthError::invalid_request("Last-Event-ID must be a log id."))?,
        ),
    };
    let watch = Watch::of(&caller, authorization.as_deref());
    let slot = feed.admit(&watch.client_id, state.stream_limits)?;
    feed.start(Arc::downgrade(&state));
    let recheck = state.stream_limits.recheck;
    let follow = Follow {
        state: state.clone(),
        log,
        rx: None,
        position: resume,
        pending: VecDeque::new(),
        synced: false,
        caller: Recheck {
            ip,
            authorization,
            watch,
        },
        next_check: Instant::now() + recheck,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok::<_, Infallible>(event), f))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response();
    no_store(&mut response);
    Ok(response)
}

/// What about the caller the log may say: entries that concern it are re-checked
/// at once.
struct Watch {
    /// The authenticated client, or the bearer token's client.
    client_id: String,
    /// The bearer token's digest and user.
    token: Option<(TokenHash, Option<crate::store::UserId>)>,
}

impl Watch {
    fn of(caller: &Caller, authorization: Option<&str>) -> Self {
        match caller {
            Caller::Client(client) => Self {
                client_id: client.client_id.clone(),
                token: None,
            },
            Caller::Bearer(info) => Self {
                client_id: info.client_id.clone(),
                token: Some((
                    TokenHash::of(authorization.and_then(bearer_token).unwrap_or_default()),
                    info.user.as_ref().map(|u| u.id),
                )),
            },
        }
    }

    fn concerns(&self, event: &RevocationEvent) -> bool {
        match &event.tokens {
            RevokedTokens::Client(client_id) => *client_id == self.client_id,
            RevokedTokens::Token(hash) => self.token.as_ref().is_some_and(|(h, _)| h == hash),
            RevokedTokens::User { user_id, .. } => self
                .token
                .as_ref()
                .is_some_and(|(_, user)| *user == Some(*user_id)),
        }
    }
}

/// The caller's credentials as presented, to present them again.
struct Recheck {
    ip: ClientIp,
    authorization: Option<String>,
    watch: Watch,
}

/// One receiver's position in the log.
struct Follow {
    state: AppState,
    log: Arc<dyn RevocationLog>,
    /// The feed, once joined (`None` before the first event, and after falling
    /// behind it).
    rx: Option<broadcast::Receiver<Arc<Item>>>,
    /// The last id sent; `None` before the first read of a receiver that did not
    /// resume (it starts at the end: an empty cache has nothing to evict).
    position: Option<i64>,
    pending: VecDeque<Event>,
    /// Whether `sync` was sent: everything up to the log's end at connection time
    /// has been delivered, and from now on entries come as they are written.
    synced: bool,
    caller: Recheck,
    next_check: Instant,
    _slot: Slot,
}

impl Follow {
    /// The next event to send; `None` ends the stream (the receiver reconnects, and
    /// is answered as any new caller).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let Some(rx) = self.rx.as_mut() else {
                // First, or behind the feed: what the log holds up to the feed's
                // position, then `sync`, then the feed.
                self.join().await?;
                continue;
            };
            let item = tokio::select! {
                item = rx.recv() => item,
                () = tokio::time::sleep_until(self.next_check) => {
                    if !self.still_authorized().await {
                        return None;
                    }
                    continue;
                }
            };
            match item {
                Ok(item) => match &*item {
                    Item::Entry(event) => {
                        if self.position.is_some_and(|p| event.id <= p) {
                            continue;
                        }
                        if self.caller.watch.concerns(event) && !self.still_authorized().await {
                            return None;
                        }
                        self.position = Some(event.id);
                        self.pending.push_back(to_sse(event));
                    }
                    Item::Reset(latest) => {
                        self.position = Some(*latest);
                        self.pending
                            .push_back(control("reset", *latest, "entries were purged"));
                    }
                },
                // Behind by more than the feed keeps: read the rest from the log.
                Err(broadcast::error::RecvError::Lagged(_)) => self.rx = None,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Joins the feed: the log's entries after this receiver's position up to the
    /// feed's (read from the store, once), `sync` the first time, then the feed.
    async fn join(&mut self) -> Option<()> {
        let feed = self.state.feed.as_ref()?;
        // A feed that has not read the log yet (the database is out) is waited
        // for no longer than a re-check period: the stream ends, the receiver
        // reconnects, and its caller is checked again.
        let (rx, upto) = tokio::time::timeout(self.state.stream_limits.recheck, feed.join())
            .await
            .ok()??;
        let mut position = match self.position {
            Some(p) => p,
            None => {
                // Not resuming: start at the feed's position.
                self.position = Some(upto);
                self.rx = Some(rx);
                self.synced = true;
                self.pending.push_back(control("sync", upto, "up to date"));
                return Some(());
            }
        };
        loop {
            let batch = match self.log.revocations_after(position, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream: cannot read the log");
                    return None;
                }
            };
            if position < batch.purged_through || position > batch.latest {
                // Entries this receiver has not seen are gone (purged), or the log
                // is not the one it followed: it must forget everything it cached.
                position = batch.latest;
                self.pending
                    .push_back(control("reset", batch.latest, "entries were purged"));
                break;
            }
            let full = batch.events.len() as u64 == BATCH;
            let mut past_feed = false;
            for event in &batch.events {
                if event.id > upto {
                    // The feed brings it.
                    past_feed = true;
                    break;
                }
                if self.caller.watch.concerns(event) && !self.still_authorized().await {
                    return None;
                }
                position = event.id;
                self.pending.push_back(to_sse(event));
            }
            if past_feed || !full {
                break;
            }
        }
        self.position = Some(position);
        if !self.synced {
            self.synced = true;
            self.pending
                .push_back(control("sync", position, "up to date"));
        }
        self.rx = Some(rx);
        Some(())
    }

    /// Presents the caller's credentials again, against the current registration
    /// (client) or token record (bearer); schedules the next check.
    async fn still_authorized(&mut self) -> bool {
        if self.caller.watch.token.is_none() {
            // Read the registration anew: a secret rotated or a client deleted on
            // another instance may not be in this one's cache yet.
            self.state.client_auth.forget(&self.caller.watch.client_id);
        }
        let verdict = authorize_caller(
            &self.state,
            &self.caller.ip,
            self.caller.authorization.as_deref(),
            None,
            None,
        )
        .await;
        self.next_check = Instant::now() + self.state.stream_limits.recheck;
        match verdict {
            Ok(_) => true,
            Err(e) => {
                tracing::info!(
                    client_id = %self.caller.watch.client_id,
                    error = e.code().as_str(),
                    "revocation stream closed: its caller no longer passes"
                );
                false
            }
        }
    }
}

fn control(kind: &str, id: i64, why: &str) -> Event {
    Event::default()
        .id(id.to_string())
        .event(kind)
        .data(json!({ "type": kind, "reason": why }).to_string())
}

fn opaque(id: impl ToString) -> Value {
    json!({ "format": "opaque", "id": id.to_string() })
}

/// One log entry as an SSE event: `id`, `event` = its type, `data` = JSON after
/// the Shared Signals / CAEP event shapes.
fn to_sse(e: &RevocationEvent) -> Event {
    let subject = match &e.tokens {
        RevokedTokens::Token(hash) => {
            json!({ "format": "token_hash", "alg": "sha-256", "hash": hash.to_hex() })
        }
        RevokedTokens::User {
            user_id,
            client_id: None,
        } => opaque(user_id),
        RevokedTokens::User {
            user_id,
            client_id: Some(client),
        } => json!({ "format": "complex", "user": opaque(user_id), "application": opaque(client) }),
        RevokedTokens::Client(client) => {
            json!({ "format": "complex", "application": opaque(client) })
        }
    };
    let mut data = json!({
        "type": e.kind.as_str(),
        "event_timestamp": e.at,
        "subject": subject,
    });
    // A claims change applies to every token of the user, whenever issued.
    if !matches!(e.tokens, RevokedTokens::Token(_)) && e.kind != RevocationKind::TokenClaimsChange {
        data["issued_before"] = json!(e.at);
    }
    if e.kind == RevocationKind::TokenClaimsChange {
        // CAEP: the claims that changed, with their new values.
        data["claims"] = json!({ "is_staff": false });
    }
    if e.kind == RevocationKind::CredentialChange {
        data["credential_type"] = json!("password");
        data["change_type"] = json!("update");
    }
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.as_str())
        .data(data.to_string())
}
