//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use crate::store::GrantType;

#[derive(Serialize)]
pub(super) struct Metadata {
    issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<&'static str>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: [&'static str; 2],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    service_documentation: &'static str,
}

pub(super) async fn metadata(State(state): State<AppState>) -> Json<Metadata> {
    let base = state.issuer_url.trim_end_matches('/');
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    Json(Metadata {
        issuer: base.to_owned(),
        token_endpoint: format!("{base}/o/token/"),
        introspection_endpoint: format!("{base}/o/introspect/"),
        revocation_endpoint: format!("{base}/o/revoke_token/"),
        scopes_supported: state.scopes.iter().map(str::to_owned).collect(),
        // No authorization endpoint is served: no response type is supported.
        response_types_supported: vec![],
        grant_types_supported: [
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::ClientCredentials,
        ]
        .iter()
        .map(|g| g.as_str())
        .collect(),
        token_endpoint_auth_methods_supported: auth_methods,
        introspection_endpoint_auth_methods_supported: auth_methods,
        revocation_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        service_documentation: "https://docs.rs/oauth-core",
    })
}
