//! CORS for the endpoints a browser app calls itself — token, revocation and
//! metadata — limited to the origins clients registered (DOT's `allowed_origins`).
//! The authorization endpoint never answers CORS: it is navigated to, not fetched.
//!
//! An origin is allowed for the client that registered it, not for every client:
//! a preflight (which carries no credentials) is answered for an origin some
//! client registered, and the actual request to the token or revocation endpoint
//! gets `Access-Control-Allow-Origin` only when the client that request
//! authenticated registered that origin (as DOT's `is_origin_allowed(client_id,
//! origin)`). The metadata is public: any registered origin may read it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;
use crate::store::Client;

/// The origins of the client an endpoint authenticated, for the CORS decision on
/// its answer: the handler fills it ([`CorsClient::authenticated`]), the layer of
/// [`per_client_layer`] reads it. An extractor that never fails: outside that
/// layer it is a slot no one reads.
#[derive(Clone, Default)]
pub(super) struct CorsClient(Arc<OnceLock<Vec<String>>>);

impl CorsClient {
    /// `client` is the one this request authenticated.
    pub(super) fn authenticated(&self, client: &Client) {
        let _ = self.0.set(client.allowed_origins.clone());
    }

    fn allows(&self, origin: &str) -> bool {
        self.0
            .get()
            .is_some_and(|origins| origins.iter().any(|o| o == origin))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorsClient {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

/// The per-client check as a plain function, so that its layer has a type to name.
type CheckFn = fn(Request, Next) -> futures_util::future::BoxFuture<'static, Response>;

/// [`per_client_layer`]'s layers: the check outside, tower-http's CORS inside.
pub(super) type PerClientLayer = tower::ServiceBuilder<
    tower::layer::util::Stack<
        CorsLayer,
        tower::layer::util::Stack<
            axum::middleware::FromFnLayer<CheckFn, (), (Request,)>,
            tower::layer::util::Identity,
        >,
    >,
>;

/// CORS for the endpoints that authenticate a client (token, revocation): [`layer`]
/// and, around it, the per-client decision on the actual request.
pub(super) fn per_client_layer(state: AppState) -> PerClientLayer {
    let check: CheckFn = |req, next| Box::pin(only_the_authenticated_clients_origin(req, next));
    tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(check))
        .layer(layer(state))
}

/// Lets an actual (non-preflight) request's CORS answer stand only when the client
/// the handler authenticated registered the request's `Origin`.
async fn only_the_authenticated_clients_origin(mut req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if origin.is_none() || req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let client = CorsClient::default();
    req.extensions_mut().insert(client.clone());
    let mut response = next.run(req).await;
    let allowed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| client.allows(o));
    if !allowed {
        let headers = response.headers_mut();
        headers.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
    }
    response
}

/// The layer. Answers are remembered per origin for 30 seconds, so a preflight
/// costs a registry query at most that often.
pub(super) fn layer(state: AppState) -> CorsLayer {
    let known: moka::future::Cache<HeaderValue, bool> = moka::future::Cache::builder()
        .max_capacity(1_000)
        .time_to_live(Duration::from_secs(30))
        .build();
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, _parts: &Parts| {
                let state = state.clone();
                let known = known.clone();
                async move {
                    let Ok(text) = origin.to_str().map(str::to_owned) else {
                        return false;
                    };
                    known
                        .get_with(origin, async {
                            state
                                .client_auth
                                .origin_allowed(&text)
                                .await
                                .unwrap_or(false)
                        })
                        .await
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("dpop"),
        ])
        .max_age(Duration::from_secs(600))
}
