//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use crate::store::GrantType;

/// RFC 8414 §2 authorization server metadata.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AuthorizationServerMetadata))]
pub(super) struct Metadata {
    issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    authorization_endpoint: Option<String>,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    scopes_supported: Vec<String>,
    response_types_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    response_modes_supported: Option<[&'static str; 1]>,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: [&'static str; 3],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 3],
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    code_challenge_methods_supported: Option<[&'static str; 1]>,
    authorization_response_iss_parameter_supported: bool,
    service_documentation: &'static str,
}

/// `GET /.well-known/oauth-authorization-server`.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = super::paths::METADATA,
    tag = "oauth",
    responses((status = 200, description = "RFC 8414 metadata.", body = Metadata)),
))]
pub(super) async fn metadata(State(state): State<AppState>) -> Json<Metadata> {
    let base = state.issuer_url.as_str();
    let browser = state.browser;
    let mut grants = vec![];
    if browser {
        grants.push(GrantType::AuthorizationCode);
    }
    grants.extend([
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ]);
    Json(Metadata {
        issuer: base.to_owned(),
        authorization_endpoint: browser.then(|| format!("{base}/o/authorize/")),
        token_endpoint: format!("{base}/o/token/"),
        introspection_endpoint: format!("{base}/o/introspect/"),
        revocation_endpoint: format!("{base}/o/revoke_token/"),
        scopes_supported: state.scopes.iter().map(str::to_owned).collect(),
        // Without the browser pages no authorization endpoint is served, so no
        // response type is supported.
        response_types_supported: if browser { vec!["code"] } else { vec![] },
        response_modes_supported: browser.then_some(["query"]),
        grant_types_supported: grants.iter().map(|g| g.as_str()).collect(),
        // `none`: public clients identify themselves with `client_id` alone.
        token_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        introspection_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
        ],
        revocation_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        code_challenge_methods_supported: browser.then_some(["S256"]),
        authorization_response_iss_parameter_supported: browser,
        service_documentation: "https://docs.rs/oauth-core",
    })
}
