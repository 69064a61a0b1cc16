//! `ResourceAuth::layer` and the extractors, over `Router::oneshot`, with an
//! authenticator that knows two tokens (the introspecting one is tested against
//! real servers in the resource_server example).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use oauth_core::Scope;
use oauth_core::resource::{AuthError, Authenticated, Authenticator, Principal, ResourceAuth};
use tower::ServiceExt as _;

struct TwoTokens;

#[async_trait]
impl Authenticator for TwoTokens {
    async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let scope: Scope = match token {
            "admin-token" => "read admin".parse().unwrap(),
            "reader-token" => "read".parse().unwrap(),
            "down" => return Err(AuthError::Unavailable("test".into())),
            _ => return Err(AuthError::InvalidToken),
        };
        Ok(Principal {
            sub: Some("7".into()),
            username: Some("ann@example.com".into()),
            client_id: Some("rs-id".into()),
            scope,
            expires_at: None,
        })
    }
}

async fn status(router: &Router, token: Option<&str>) -> (StatusCode, Option<String>, String) {
    let mut req = Request::get("/stats");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let challenge = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let status = res.status();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_layer_protects_a_whole_router_and_hands_the_principal_on() {
    let auth = ResourceAuth::new(TwoTokens);
    let router: Router = Router::new()
        .route(
            "/stats",
            get(|Authenticated(p): Authenticated| async move { p.username.unwrap_or_default() }),
        )
        .layer(auth.layer(Some("admin")))
        .with_state(auth);

    let (s, c, body) = status(&router, Some("admin-token")).await;
    assert_eq!(
        (s, c, body.as_str()),
        (StatusCode::OK, None, "ann@example.com")
    );

    let (s, c, body) = status(&router, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(c.as_deref(), Some("Bearer realm=\"api\""));
    assert_eq!(
        body,
        r#"{"detail":"Authentication credentials were not provided."}"#
    );

    let (s, c, _) = status(&router, Some("nope")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(c.unwrap().contains("error=\"invalid_token\""));

    let (s, c, body) = status(&router, Some("reader-token")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        c.as_deref(),
        Some("Bearer realm=\"api\",error=\"insufficient_scope\",scope=\"admin\"")
    );
    assert_eq!(
        body,
        r#"{"detail":"You do not have permission to perform this action."}"#
    );

    let (s, _, _) = status(&router, Some("down")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

/// A stub introspection endpoint answering `answer` to every request.
async fn stub(answer: axum::routing::MethodRouter) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/introspect", answer).route(
        "/elsewhere",
        axum::routing::post(|| async {
            axum::Json(serde_json::json!({"active": true, "scope": "read", "username": "mallory"}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/introspect")
}

async fn verdict(url: String) -> Result<Principal, AuthError> {
    use oauth_core::resource::{IntrospectionCredentials, Introspector, IntrospectorConfig};
    let introspector = Introspector::new(IntrospectorConfig::new(
        url,
        IntrospectionCredentials::Client {
            id: "rs-id".into(),
            secret: "rs-secret".into(),
        },
    ))
    .unwrap();
    introspector.authenticate("some-token").await
}

#[tokio::test]
async fn the_introspector_follows_no_redirect_and_reads_no_huge_answer() {
    // A redirect is not followed, even to an answer that would say "active".
    let url = stub(axum::routing::post(|| async {
        axum::response::Redirect::temporary("/elsewhere")
    }))
    .await;
    assert!(matches!(verdict(url).await, Err(AuthError::Unavailable(_))));

    // A declared huge answer is refused unread; a streamed one at the cap.
    let url = stub(axum::routing::post(|| async {
        let padding = "x".repeat(1 << 20);
        axum::Json(serde_json::json!({"active": true, "scope": "read", "pad": padding}))
    }))
    .await;
    assert!(matches!(verdict(url).await, Err(AuthError::Unavailable(_))));
    let url = raw_stub_without_length().await;
    assert!(matches!(verdict(url).await, Err(AuthError::Unavailable(_))));

    // A normal answer still works.
    let url = stub(axum::routing::post(|| async {
        axum::Json(
            serde_json::json!({"active": true, "scope": "read", "username": "ann@example.com"}),
        )
    }))
    .await;
    let p = verdict(url).await.unwrap();
    assert_eq!(p.username.as_deref(), Some("ann@example.com"));
}

/// A raw HTTP server that answers 200 with no Content-Length and 256 KiB of JSON,
/// read until the connection closes.
async fn raw_stub_without_length() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
                if conn.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // Valid JSON that says "active": only its size gives it away.
                let _ = conn
                    .write_all(br#"{"active":true,"scope":"read","pad":""#)
                    .await;
                for _ in 0..64 {
                    if conn.write_all(&[b'x'; 4096]).await.is_err() {
                        return;
                    }
                }
                let _ = conn.write_all(br#""}"#).await;
            });
        }
    });
    format!("http://{addr}/introspect")
}
