//! The introspector's log when the auth server's answers are refused (issue 19):
//! one line per change of cause, never one per request. A test binary of its own:
//! the capture is the process's global subscriber (a thread-local one misses events
//! whose callsites another test's thread registered first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::StatusCode;
use oauth_core::resource::{AuthError, Authenticator as _};

/// A stub introspection endpoint answering with `answer`.
async fn stub(answer: axum::routing::MethodRouter) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/introspect", answer);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

/// Log lines captured by a test's own subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Each kind of refused introspection answer is logged once (WARN, ERROR when the
/// auth server did not answer) naming its
/// cause, however many requests meet it, and the recovery once at INFO: a
/// redirect, an answer over the size cap, bad JSON, a 500, a closed port.
#[tokio::test]
async fn refused_introspection_answers_are_logged_once_per_change_with_their_cause() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use oauth_core::resource::{IntrospectionCredentials, Introspector, IntrospectorConfig};
    // What the stub answers: 0 redirect, 1 too large, 2 not JSON, 3 a 500, else fine.
    let mode = Arc::new(AtomicUsize::new(0));
    let answering = mode.clone();
    let url = stub(axum::routing::post(move || {
        let mode = answering.load(Ordering::SeqCst);
        async move {
            use axum::response::IntoResponse as _;
            match mode {
                0 => axum::response::Redirect::temporary("/elsewhere").into_response(),
                1 => axum::Json(serde_json::json!({"active": true, "pad": "x".repeat(1 << 20)}))
                    .into_response(),
                2 => "<html>a login page</html>".into_response(),
                3 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                _ => {
                    axum::Json(serde_json::json!({"active": true, "scope": "read"})).into_response()
                }
            }
        }
    }))
    .await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let introspector = Introspector::new(
        IntrospectorConfig::new(
            url,
            IntrospectionCredentials::Client {
                id: "rs-id".into(),
                secret: "rs-secret".into(),
            },
        )
        // Every call reaches the stub: nothing is cached between the requests.
        .cache_cap(std::time::Duration::ZERO)
        .negative_ttl(std::time::Duration::ZERO),
    )
    .unwrap();
    let causes = [
        "redirect (307), not followed",
        "answer larger than",
        "not RFC 7662 JSON",
        "status 500",
    ];
    for (m, cause) in causes.iter().enumerate() {
        mode.store(m, Ordering::SeqCst);
        for i in 0..50 {
            let verdict = introspector.authenticate(&format!("token-{m}-{i}")).await;
            assert!(matches!(verdict, Err(AuthError::Unavailable(_))), "{cause}");
        }
        let warned = captured
            .lines()
            .into_iter()
            .filter(|l| logged(l) && l.contains(cause))
            .count();
        assert_eq!(warned, 1, "{cause}: {:#?}", captured.lines());
    }
    mode.store(99, Ordering::SeqCst);
    for i in 0..10 {
        introspector
            .authenticate(&format!("good-{i}"))
            .await
            .unwrap();
    }
    let lines = captured.lines();
    println!("{}", lines.join("\n"));
    assert_eq!(lines.iter().filter(|l| logged(l)).count(), 4);
    let recovered: Vec<_> = lines.iter().filter(|l| l.contains("INFO")).collect();
    assert_eq!(recovered.len(), 1, "{lines:#?}");
    assert!(recovered[0].contains("failed_calls=200"), "{lines:#?}");
    assert!(lines.iter().all(|l| !l.contains("rs-secret")));

    // A closed port: one line for the whole outage.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let down = Introspector::new(IntrospectorConfig::new(
        format!("http://{closed}/introspect"),
        IntrospectionCredentials::Bearer("t".into()),
    ))
    .unwrap();
    for i in 0..20 {
        assert!(down.authenticate(&format!("x{i}")).await.is_err());
    }
    let connect = captured
        .lines()
        .into_iter()
        .filter(|l| l.contains("ERROR") && l.contains("connection failed"))
        .count();
    assert_eq!(connect, 1, "{:#?}", captured.lines());
}

/// A refusal's line: WARN for a wrong answer, ERROR for an auth server that did
/// not answer (connection, timeout, 5xx).
fn logged(line: &str) -> bool {
    line.contains("WARN") || line.contains("ERROR")
}
