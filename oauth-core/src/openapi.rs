//! OpenAPI 3.1 documents generated from the handlers (feature `openapi`).
//!
//! Every JSON endpoint carries a `#[utoipa::path]` attribute and is routed through
//! [`utoipa_axum`]'s `OpenApiRouter`, which registers the handler at the path the
//! attribute names *and* records the operation in the document: a route and its
//! documentation come from one registration and cannot drift apart.
//! [`AuthServer::router_and_openapi`](crate::AuthServer::router_and_openapi) returns
//! the auth server's document; an application documents its own endpoints the same
//! way and reuses the error responses below.
//!
//! Paths are documented in their canonical form, with the trailing slash (DOT's);
//! the same handler also answers without it ([`slash_optional`]), an alias the
//! document does not repeat.
//!
//! | responses | status codes | body |
//! |---|---|---|
//! | [`OAuthErrors`] | 400, 401, 413, 429, 503 | RFC 6749 §5.2 `{"error", "error_description"}` |
//! | [`BearerScopeError`] | 403 | RFC 6749 body with an RFC 6750 challenge |
//! | [`DrfErrors`] | 400, 413, 415, 429, 503 | DRF `{"field": ["message"]}` or `{"detail"}` |
//! | [`DrfAuthErrors`] | 401, 403 | DRF `{"detail"}` with an RFC 6750 challenge |
//! | [`DrfNotFound`] | 404 | DRF `{"detail"}` |
//! | [`DrfUnavailable`] | 503 | DRF `{"detail"}` |
//!
//! 401 answers carry `WWW-Authenticate`, 429 and 503 answers `Retry-After`.

use std::collections::BTreeMap;

use axum::Router;
use axum::routing::get;
use utoipa::openapi::path::{Operation, OperationBuilder};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, HttpMethod, OpenApi, PathItem, RefOr, Schema, header::HeaderBuilder,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

pub use utoipa;
pub use utoipa_axum;

#[cfg(feature = "server")]
pub use crate::server::token::TokenResponse;
#[cfg(feature = "server")]
pub use crate::server::users::{PasswordChangeRequest, PasswordChanged, SignedUp, SignupRequest};

/// The name of the HTTP Basic client-authentication scheme (RFC 6749 §2.3.1) in
/// `components.securitySchemes`.
pub const CLIENT_BASIC: &str = "client_basic";
/// The name of the bearer-token scheme (RFC 6750) in `components.securitySchemes`.
pub const BEARER: &str = "bearer";
/// Where [`serve`] answers.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The RFC 6749 §5.2 error body (also used for RFC 6750 and RFC 7009 errors).
#[derive(Debug, ToSchema)]
#[schema(as = OAuthError)]
#[allow(dead_code)]
pub struct OAuthErrorBody {
    #[schema(inline)]
    error: OAuthErrorCodeSchema,
    /// A human-readable explanation.
    #[schema(required = false, nullable = false)]
    error_description: Option<String>,
}

/// The error codes this toolkit answers with.
#[derive(Debug, ToSchema)]
#[schema(as = OAuthErrorCode)]
#[allow(non_camel_case_types, missing_docs)]
pub enum OAuthErrorCodeSchema {
    invalid_request,
    invalid_client,
    invalid_grant,
    unauthorized_client,
    unsupported_grant_type,
    invalid_scope,
    invalid_token,
    insufficient_scope,
    temporarily_unavailable,
    server_error,
}

/// Django REST framework's `{"detail": "…"}`.
#[derive(Debug, ToSchema)]
#[schema(as = Detail)]
pub struct DetailBody {
    /// The message.
    pub detail: String,
}

/// Django REST framework's field errors, `{"field": ["message", …]}`: at least one
/// field, each with at least one message.
#[must_use]
pub fn field_errors_schema() -> Schema {
    ObjectBuilder::new()
        .description(Some(
            "Django REST framework's field errors: each invalid field with its messages.",
        ))
        .additional_properties(Some(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .min_items(Some(1)),
        ))
        .min_properties(Some(1))
        .build()
        .into()
}

fn json(schema: impl Into<RefOr<Schema>>) -> Content {
    Content::new(Some(schema))
}

fn header(description: &str, ty: Type) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(ty)))
        .description(Some(description))
        .build()
}

fn www_authenticate() -> utoipa::openapi::header::Header {
    header(
        "The challenge (RFC 6750 §3 `Bearer …`, or `Basic realm=\"oauth\"` for client authentication).",
        Type::String,
    )
}

fn retry_after() -> utoipa::openapi::header::Header {
    header("Seconds to wait before trying again.", Type::Integer)
}

fn oauth(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json(OAuthErrorBody::schema()))
}

fn detail(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json(DetailBody::schema()))
}

fn map(entries: Vec<(&str, ResponseBuilder)>) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, r)| (status.to_owned(), RefOr::T(r.build())))
        .collect()
}

/// The errors of an RFC 6749 endpoint that authenticates its client: 400, 401
/// (`invalid_client`, or `invalid_token` for a bearer caller), 413, 429 and 503.
#[derive(Debug)]
pub struct OAuthErrors;

impl IntoResponses for OAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![
            ("400", oauth("RFC 6749 §5.2 error.")),
            (
                "401",
                oauth("Client authentication failed (`invalid_client`), or the bearer token is not active (`invalid_token`).")
                    .header("WWW-Authenticate", www_authenticate()),
            ),
            ("413", detail("The request body is over the server's limit.")),
            (
                "429",
                oauth("Too many failed attempts from this source (`temporarily_unavailable`).")
                    .header("Retry-After", retry_after()),
            ),
            (
                "503",
                oauth("Overloaded or a dependency briefly out (`temporarily_unavailable`).")
                    .header("Retry-After", retry_after()),
            ),
        ])
    }
}

/// 403 `insufficient_scope` (RFC 6750 §3.1) in an RFC 6749 body.
#[derive(Debug)]
pub struct BearerScopeError;

impl IntoResponses for BearerScopeError {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![(
            "403",
            oauth("The bearer token lacks the needed scope (`insufficient_scope`).")
                .header("WWW-Authenticate", www_authenticate()),
        )])
    }
}

/// The errors of a Django REST framework endpoint that reads a body: 400 (field
/// errors, or `{"detail"}` for a body that is not a JSON object or a form), 413,
/// 415, 429 and 503.
#[derive(Debug)]
pub struct DrfErrors;

impl IntoResponses for DrfErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let bad_request = AnyOfBuilder::new()
            .item(field_errors_schema())
            .item(DetailBody::schema())
            .build();
        map(vec![
            (
                "400",
                ResponseBuilder::new()
                    .description("Field errors, or a body that could not be parsed.")
                    .content("application/json", json(Schema::AnyOf(bad_request))),
            ),
            (
                "413",
                detail("The request body is over the server's limit."),
            ),
            (
                "415",
                detail("A body that is neither `application/json` nor a form."),
            ),
            (
                "429",
                detail("Throttled.").header("Retry-After", retry_after()),
            ),
            (
                "503",
                detail("Overloaded or a dependency briefly out.")
                    .header("Retry-After", retry_after()),
            ),
        ])
    }
}

/// 401 (no or bad bearer token, with its RFC 6750 challenge) and 403 (not allowed)
/// as Django REST framework answers them.
#[derive(Debug)]
pub struct DrfAuthErrors;

impl IntoResponses for DrfAuthErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![
            (
                "401",
                detail("No bearer token, or one that is not active.")
                    .header("WWW-Authenticate", www_authenticate()),
            ),
            (
                "403",
                detail("The token lacks the needed scope, or the caller may not do this.")
                    .header("WWW-Authenticate", www_authenticate()),
            ),
        ])
    }
}

/// 404 `{"detail"}`.
#[derive(Debug)]
pub struct DrfNotFound;

impl IntoResponses for DrfNotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![("404", detail("Not found."))])
    }
}

/// 503 `{"detail"}` with `Retry-After`: a resource server whose auth server is out
/// of reach, or load shed.
#[derive(Debug)]
pub struct DrfUnavailable;

impl IntoResponses for DrfUnavailable {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        map(vec![(
            "503",
            detail("Overloaded or a dependency briefly out.").header("Retry-After", retry_after()),
        )])
    }
}

/// Adds the security schemes the operations name: [`CLIENT_BASIC`] and [`BEARER`].
pub fn add_security_schemes(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        CLIENT_BASIC,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Basic)
                .description(Some(
                    "Client authentication (RFC 6749 §2.3.1): the form-encoded client id \
                     and secret. The same may be sent as `client_id` and `client_secret` \
                     in the form body instead.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An opaque access token (RFC 6750 §2.1)."))
                .build(),
        ),
    );
}

/// Gives every operation a unique `operationId`: a handler that serves several
/// methods (`PUT` and `PATCH`) is one operation id in utoipa, which OpenAPI forbids.
pub fn unique_operation_ids(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let ops: [(&str, &mut Option<Operation>); 5] = [
            ("get", &mut item.get),
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
        ];
        let mut seen = std::collections::HashSet::new();
        for (method, op) in ops {
            if let Some(op) = op
                && let Some(id) = &mut op.operation_id
                && !seen.insert(id.clone())
            {
                *id = format!("{id}_{method}");
            }
        }
    }
}

/// Routes `operations` at the path their `#[utoipa::path]` names, documented, and at
/// the same path without its trailing slash, undocumented: DOT's paths end in `/`,
/// clients also call them without it, and the document names each operation once.
pub fn slash_optional<S>(
    router: OpenApiRouter<S>,
    operations: UtoipaMethodRouter<S>,
) -> OpenApiRouter<S>
where
    S: Send + Sync + Clone + 'static,
{
    let aliases: Vec<String> = operations
        .1
        .paths
        .keys()
        .filter(|p| p.len() > 1 && p.ends_with('/'))
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect();
    let method_router = operations.2.clone();
    let mut router = router.routes(operations);
    for alias in aliases {
        router = router.route(&alias, method_router.clone());
    }
    router
}

/// `GET /openapi.json`: the document, which gains that operation too.
pub fn serve(mut doc: OpenApi) -> Router {
    let op = OperationBuilder::new()
        .operation_id(Some("openapi"))
        .summary(Some("This document"))
        .response(
            "200",
            ResponseBuilder::new()
                .description("The OpenAPI 3.1 document of this server.")
                .content(
                    "application/json",
                    json(ObjectBuilder::new().schema_type(Type::Object)),
                ),
        )
        .build();
    doc.paths
        .paths
        .insert(OPENAPI_PATH.to_owned(), PathItem::new(HttpMethod::Get, op));
    let body = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document could not be serialized");
        b"{}".to_vec()
    }));
    Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    )
}
