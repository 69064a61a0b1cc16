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
