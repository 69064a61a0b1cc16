//! CORS for the endpoints a browser app calls itself — token, revocation and
//! metadata — limited to the origins clients registered (DOT's `allowed_origins`).
//! The authorization endpoint never answers CORS: it is navigated to, not fetched.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::AppState;

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
