//! Following the auth server's revocation stream (`GET /o/revocations/`,
//! docs/revocation-events.md): cached introspection answers are dropped as soon as
//! their token is revoked, and trusted only briefly while the stream is down.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::introspector::{IntrospectionCredentials, Verdict, authorize};
use crate::token::TokenHash;

/// What the cache may trust, shared by the introspector and the follower task.
#[derive(Debug)]
pub(super) struct StreamState {
    /// Reference point of the millisecond clocks below.
    origin: Instant,
    /// Until when (ms after `origin`) the stream counts as live: caught up and
    /// heard from recently. 0: not live.
    live_until: AtomicI64,
    /// Bumped before every eviction: an introspection call that saw it change may
    /// have raced a revocation, and its answer is not cached.
    pub(super) epoch: AtomicU64,
    /// Entries applied since start (for tests and metrics).
    pub(super) applied: AtomicU64,
}

impl StreamState {
    pub(super) fn new() -> Self {
        Self {
            origin: Instant::now(),
            live_until: AtomicI64::new(0),
            epoch: AtomicU64::new(0),
            applied: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// True while the stream is caught up and was heard from within the silence limit.
    pub(super) fn is_live(&self) -> bool {
        self.now_ms() < self.live_until.load(Relaxed)
    }

    fn heard(&self, silence: Duration) {
        if !self.is_live() {
            crate::metrics::stream_connected(true);
        }
        let until = self.now_ms() + i64::try_from(silence.as_millis()).unwrap_or(i64::MAX);
        self.live_until.store(until, Relaxed);
    }

    fn down(&self) {
        crate::metrics::stream_connected(false);
        self.live_until.store(0, Relaxed);
    }
}

/// Settings of the follower.
#[derive(Debug, Clone)]
pub(super) struct FollowConfig {
    pub(super) url: String,
    pub(super) silence: Duration,
    pub(super) connect_timeout: Duration,
}

type Cache = moka::future::Cache<TokenHash, Verdict>;

/// The follower task: connects, applies entries, reconnects with backoff resuming
/// where it left off. Runs until aborted.
pub(super) async fn run(
    config: FollowConfig,
    credentials: IntrospectionCredentials,
    cache: Cache,
    state: Arc<StreamState>,
) {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "revocation stream: cannot build an HTTP client");
            return;
        }
    };
    let mut position: Option<i64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let (outcome, was_live) =
            follow_once(&http, &config, &credentials, &cache, &state, &mut position).await;
        state.down();
        if was_live {
            // Logged when it is lost, not at every failed attempt after.
            tracing::warn!(reason = %outcome, "revocation stream lost; cached answers are trusted briefly until it is back");
            backoff = Duration::from_millis(200);
        } else {
            tracing::debug!(reason = %outcome, "revocation stream not connected");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection: returns why it ended, and whether it had caught up.
async fn follow_once(
    http: &reqwest::Client,
    config: &FollowConfig,
    credentials: &IntrospectionCredentials,
    cache: &Cache,
    state: &StreamState,
    position: &mut Option<i64>,
) -> (String, bool) {
    let mut request = authorize(http.get(&config.url), credentials)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(id) = position {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let mut response = match tokio::time::timeout(config.silence, request.send()).await {
        Ok(Ok(r)) if r.status().is_success() => r,
        Ok(Ok(r)) => return (format!("answered {}", r.status()), false),
        Ok(Err(e)) => return (format!("unreachable: {e}"), false),
        Err(_) => return ("timed out".into(), false),
    };
    let mut parser = Parser::default();
    loop {
        let chunk = match tokio::time::timeout(config.silence, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return ("closed by the server".into(), parser.synced),
            Ok(Err(e)) => return (format!("broke off: {e}"), parser.synced),
            Err(_) => return (format!("silent for {:?}", config.silence), parser.synced),
        };
        if parser.buffer.len() + chunk.len() > MAX_LINE {
            return ("an event is too large".into(), parser.synced);
        }
        parser.buffer.extend_from_slice(&chunk);
        while let Some(event) = parser.next_event() {
            apply(&event, cache, state, position).await;
        }
        // Anything at all — an entry or a heartbeat — after the catch-up shows the
        // stream is alive and current.
        if parser.synced {
            state.heard(config.silence);
        }
    }
}

/// The longest event accepted (entries are a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;

/// One event off the wire.
#[derive(Debug, Default)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// A minimal `text/event-stream` reader (the fields this stream uses).
#[derive(Debug, Default)]
struct Parser {
    buffer: Vec<u8>,
    current: SseEvent,
    /// A `sync` was seen on this connection.
    synced: bool,
}

impl Parser {
    fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if event.event.is_some() || !event.data.is_empty() {
                    if event.event.as_deref() == Some("sync") {
                        self.synced = true;
                    }
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = Some(value.to_owned()),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        None
    }
}

#[derive(Deserialize)]
struct Entry {
    subject: Subject,
    issued_before: Option<i64>,
}

/// The entry's time, for the lag metric.
fn event_timestamp(data: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Stamp {
        event_timestamp: Option<i64>,
    }
    serde_json::from_str::<Stamp>(data).ok()?.event_timestamp
}

#[derive(Deserialize)]
struct Subject {
    format: String,
    hash: Option<String>,
    id: Option<String>,
    user: Option<Box<Subject>>,
    application: Option<Box<Subject>>,
}

/// Which cached answers an entry ends.
enum Evict {
    Token(TokenHash),
    Matching {
        sub: Option<String>,
        client_id: Option<String>,
        issued_before: Option<i64>,
    },
    All,
}

fn parse_entry(data: &str) -> Evict {
    let Ok(entry) = serde_json::from_str::<Entry>(data) else {
        return Evict::All;
    };
    let s = entry.subject;
    match s.format.as_str() {
        "token_hash" => s
            .hash
            .as_deref()
            .and_then(TokenHash::from_hex)
            .map_or(Evict::All, Evict::Token),
        "opaque" if s.id.is_some() => Evict::Matching {
            sub: s.id,
            client_id: None,
            issued_before: entry.issued_before,
        },
        "complex" if s.user.is_some() || s.application.is_some() => Evict::Matching {
            sub: s.user.and_then(|u| u.id),
            client_id: s.application.and_then(|a| a.id),
            issued_before: entry.issued_before,
        },
        // Something this version does not know: forget everything rather than
        // keep honouring a token the server says is gone.
        _ => Evict::All,
    }
}

async fn apply(event: &SseEvent, cache: &Cache, state: &StreamState, position: &mut Option<i64>) {
    match event.event.as_deref() {
        Some("sync") => {
            if position.is_none() {
                // A first connection starts at the log's end: answers cached
                // before it may have missed entries. Start clean.
                state.epoch.fetch_add(1, Relaxed);
                cache.invalidate_all();
            }
        }
        Some("reset") => {
            state.epoch.fetch_add(1, Relaxed);
            cache.invalidate_all();
        }
        _ => {
            state.epoch.fetch_add(1, Relaxed);
            evict(cache, parse_entry(&event.data)).await;
            state.applied.fetch_add(1, Relaxed);
            crate::metrics::revocation_applied(event_timestamp(&event.data));
        }
    }
    if let Some(id) = event.id.as_deref().and_then(|id| id.parse().ok()) {
        *position = Some(id);
    }
}

async fn evict(cache: &Cache, what: Evict) {
    match what {
        Evict::Token(hash) => cache.invalidate(&hash).await,
        Evict::All => cache.invalidate_all(),
        Evict::Matching {
            sub,
            client_id,
            issued_before,
        } => {
            let matches = move |_: &TokenHash, v: &Verdict| {
                let Some(p) = &v.principal else {
                    return false;
                };
                sub.as_ref().is_none_or(|s| p.sub.as_ref() == Some(s))
                    && client_id
                        .as_ref()
                        .is_none_or(|c| p.client_id.as_ref() == Some(c))
                    // Without an `iat` the answer may predate the entry: drop it.
                    && issued_before.is_none_or(|t| v.issued_at.is_none_or(|iat| iat <= t))
            };
            if cache.invalidate_entries_if(matches).is_err() {
                cache.invalidate_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks_and_skips_comments() {
        let mut p = Parser::default();
        p.buffer
            .extend_from_slice(b": heartbeat\n\nid: 4\nevent: token-rev");
        assert!(p.next_event().is_none());
        p.buffer.extend_from_slice(
            b"oked\r\ndata: {\"a\":\ndata: 1}\n\nid: 5\nevent: sync\ndata: x\n\n",
        );
        let e = p.next_event().expect("one event");
        assert_eq!(e.id.as_deref(), Some("4"));
        assert_eq!(e.event.as_deref(), Some("token-revoked"));
        assert_eq!(e.data, "{\"a\":\n1}");
        assert!(!p.synced);
        let e = p.next_event().expect("the sync");
        assert_eq!(e.event.as_deref(), Some("sync"));
        assert!(p.synced);
        assert!(p.next_event().is_none());
    }

    #[test]
    fn unknown_or_malformed_entries_evict_everything() {
        assert!(matches!(parse_entry("not json"), Evict::All));
        assert!(matches!(
            parse_entry(r#"{"subject":{"format":"email","email":"a@b.c"}}"#),
            Evict::All
        ));
        assert!(matches!(
            parse_entry(r#"{"subject":{"format":"token_hash","hash":"zz"}}"#),
            Evict::All
        ));
        let hash = TokenHash::of("t").to_hex();
        assert!(matches!(
            parse_entry(&format!(r#"{{"subject":{{"format":"token_hash","alg":"sha-256","hash":"{hash}"}}}}"#)),
            Evict::Token(h) if h == TokenHash::of("t")
        ));
        assert!(matches!(
            parse_entry(r#"{"subject":{"format":"complex","user":{"format":"opaque","id":"7"},"application":{"format":"opaque","id":"rs"}},"issued_before":9}"#),
            Evict::Matching { sub: Some(s), client_id: Some(c), issued_before: Some(9) } if s == "7" && c == "rs"
        ));
    }
}
