//! `GET /o/revocations/`: the revocation log as Server-Sent Events, for resource
//! servers (and other auth server instances) that cache introspection answers.
//! The wire format is documented in docs/revocation-events.md.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::{OAuthError, no_store};
use super::introspect::authorize_caller;
use super::{AppState, ClientIp, ServerState};
use crate::store::{RevocationEvent, RevocationKind, RevocationLog, RevokedTokens};

/// A comment line this often while nothing happens, so that a receiver notices a
/// dead or stopped server within a few seconds.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How often a stream re-reads the log with no wake-up: the backstop behind
/// PostgreSQL `LISTEN`.
const POLL: Duration = Duration::from_secs(1);

/// Entries read per query.
const BATCH: u64 = 256;

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
         description = "Server-Sent Events, endless: `token-revoked`, `session-revoked`, `credential-change`, `sync`, `reset` (docs/revocation-events.md); a comment line every second.",
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
    let Some(log) = state.revocations.clone() else {
        return Err(OAuthError::invalid_request(
            "This server keeps no revocation log.",
        ));
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| OAuthError::invalid_request("Malformed Authorization header."))?;
    authorize_caller(&state, &ip, authorization, None, None).await?;
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
    let follow = Follow {
        wake: log.subscribe(),
        log,
        position: resume,
        pending: VecDeque::new(),
        synced: false,
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

/// One receiver's position in the log.
struct Follow {
    log: Arc<dyn RevocationLog>,
    wake: tokio::sync::watch::Receiver<u64>,
    /// The last id sent; `None` before the first read of a receiver that did not
    /// resume (it starts at the end: an empty cache has nothing to evict).
    position: Option<i64>,
    pending: VecDeque<Event>,
    /// Whether `sync` was sent: everything up to the log's end at connection time
    /// has been delivered, and from now on entries come as they are written.
    synced: bool,
}

impl Follow {
    /// The next event to send; `None` ends the stream (the receiver reconnects).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let batch = match self
                .log
                .revocations_after(self.position.unwrap_or(i64::MAX), BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation stream: cannot read the log");
                    return None;
                }
            };
            let position = *self.position.get_or_insert(batch.latest);
            if position < batch.purged_through || position > batch.latest {
                // Entries this receiver has not seen are gone (purged), or the log
                // is not the one it followed: it must forget everything it cached.
                self.position = Some(batch.latest);
                self.pending
                    .push_back(control("reset", batch.latest, "entries were purged"));
                continue;
            }
            let full = batch.events.len() as u64 == BATCH;
            for event in &batch.events {
                self.position = Some(event.id);
                self.pending.push_back(to_sse(event));
            }
            if full {
                continue;
            }
            if !self.synced {
                self.synced = true;
                let at = self.position.unwrap_or(batch.latest);
                self.pending.push_back(control("sync", at, "up to date"));
                continue;
            }
            if self.pending.is_empty() {
                // Woken by a revocation here or (PostgreSQL) elsewhere, or re-read.
                let _ = tokio::time::timeout(POLL, self.wake.changed()).await;
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

/// Keeps this instance's cached client registrations in step with the log: a
/// client deleted, or given a new secret, on another instance sharing the database
/// is forgotten here as soon as the entry arrives. Ends when the server is dropped.
pub(super) async fn forget_changed_clients(log: Arc<dyn RevocationLog>, state: Weak<ServerState>) {
    let mut wake = log.subscribe();
    let mut position: Option<i64> = None;
    loop {
        let Some(server) = state.upgrade() else {
            return;
        };
        match log
            .revocations_after(position.unwrap_or(i64::MAX), BATCH)
            .await
        {
            Ok(batch) => {
                let at = *position.get_or_insert(batch.latest);
                if at < batch.purged_through || at > batch.latest {
                    server.client_auth.forget_all();
                    position = Some(batch.latest);
                }
                for event in &batch.events {
                    if let RevokedTokens::Client(client_id) = &event.tokens {
                        server.client_auth.forget(client_id);
                    }
                    position = Some(event.id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the revocation log"),
        }
        drop(server);
        let _ = tokio::time::timeout(POLL, wake.changed()).await;
    }
}
