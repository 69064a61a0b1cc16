//! User endpoints that forward to the auth server with this server's own client
//! credentials, so clients never hold the secret. Each answers with the auth
//! server's real status and body; a missing field is a 400 here, an unreachable
//! auth server a 503.
//!
//! Each request names its caller in `X-Forwarded-For` — set to this server's own
//! peer address, never appended to what the caller sent (this server trusts no
//! proxy in front of it) — so that an auth server that lists this server in its
//! `TRUSTED_PROXIES` throttles each caller on its own instead of all as one.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth_core::ClientSecret;
use oauth_core::api::{self, ApiError, CharField, FieldErrors};
use oauth_core::openapi::{
    DetailBody, DrfAuthErrors, DrfErrors, OAuthErrorBody, PasswordChangeRequest, PasswordChanged,
    SignedUp, SignupRequest, TokenResponse, field_errors_schema, slash_optional,
};
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::schema::AnyOfBuilder;
use utoipa::openapi::{Content, RefOr, Schema};
use utoipa::{IntoResponses, PartialSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::{AppState, Error};

/// The address of the caller of this server (its socket's peer), when the server
/// runs with connect info.
#[derive(Debug, Clone, Copy)]
pub struct Caller(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        ))
    }
}

impl Caller {
    /// `request` naming the caller in `X-Forwarded-For`.
    fn forward(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.0 {
            Some(ip) => request.header("x-forwarded-for", ip.to_string()),
            None => request,
        }
    }
}

/// An HTTP client bound to the auth server.
#[derive(Clone)]
pub struct Proxy {
    http: reqwest::Client,
    base: String,
    client: Option<(String, ClientSecret)>,
}

impl Proxy {
    pub fn new(config: &Config) -> Result<Self, Error> {
        oauth_core::resource::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            http,
            base: config.auth_server_url.clone(),
            client: config
                .client()
                .map(|(id, secret)| (id.to_owned(), ClientSecret::new(secret))),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends and relays the answer: status, body and the headers that matter.
    async fn relay(&self, request: reqwest::RequestBuilder) -> Response {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "auth server unreachable");
                let mut r = ApiError::Detail(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The authorization server is unavailable. Try again later.".into(),
                )
                .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return r;
            }
        };
        let status = response.status();
        let mut headers = HeaderMap::new();
        for name in [
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            header::PRAGMA,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
        ] {
            if let Some(v) = response.headers().get(&name) {
                headers.insert(name, v.clone());
            }
        }
        match response.bytes().await {
            Ok(body) => (status, headers, Body::from(body)).into_response(),
            Err(_) => ApiError::Detail(
                StatusCode::BAD_GATEWAY,
                "The authorization server's answer was cut short.".into(),
            )
            .into_response(),
        }
    }

    /// A token request (RFC 6749 §3.2) with this server's client credentials.
    async fn token(&self, caller: Caller, form: &[(&str, &str)]) -> Response {
        let mut request = caller.forward(self.http.post(self.url("/o/token/")).form(form));
        if let Some((id, secret)) = &self.client {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(id), Some(enc(secret.secret())));
        }
        self.relay(request).await
    }
}

/// The proxy endpoints, documented (and answering without the trailing slash too).
pub fn routes() -> OpenApiRouter<AppState> {
    let router = slash_optional(OpenApiRouter::new(), routes!(signup));
    let router = slash_optional(router, routes!(token));
    let router = slash_optional(router, routes!(refresh));
    slash_optional(router, routes!(password))
}

/// `{email, password}` for the password grant.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct TokenRequest {
    email: String,
    password: String,
}

/// `{refresh}` for the refresh grant.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RefreshRequest {
    /// The refresh token.
    refresh: String,
}

/// 502: the auth server's answer was cut short.
struct BadGateway;

impl IntoResponses for BadGateway {
    fn responses() -> BTreeMap<String, RefOr<DocResponse>> {
        BTreeMap::from([(
            "502".to_owned(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("The auth server's answer was cut short.")
                    .content("application/json", Content::new(Some(DetailBody::schema())))
                    .build(),
            ),
        )])
    }
}

/// The token proxies' errors: the auth server's RFC 6749 errors passed through, and
/// this server's own DRF ones (a missing field, a body it cannot read, the auth
/// server out of reach).
struct ProxiedTokenErrors;

impl IntoResponses for ProxiedTokenErrors {
    fn responses() -> BTreeMap<String, RefOr<DocResponse>> {
        let either = |description: &str, drf: Vec<RefOr<Schema>>, retry: bool| {
            let mut any = AnyOfBuilder::new().item(OAuthErrorBody::schema());
            for s in drf {
                any = any.item(s);
            }
            let mut r = ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Schema::AnyOf(any.build()))),
            );
            if retry {
                r = r.header(
                    "Retry-After",
                    utoipa::openapi::header::HeaderBuilder::new()
                        .schema(Some(
                            utoipa::openapi::schema::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::Integer),
                        ))
                        .description(Some("Seconds to wait before trying again."))
                        .build(),
                );
            }
            RefOr::T(r.build())
        };
        let detail = || DetailBody::schema();
        let fields = || RefOr::T(field_errors_schema());
        let mut map = DrfErrors::responses();
        map.insert(
            "400".to_owned(),
            either(
                "The auth server's RFC 6749 error, or a missing field here.",
                vec![fields(), detail()],
                false,
            ),
        );
        map.insert(
            "401".to_owned(),
            either(
                "The auth server refused this server's client.",
                vec![],
                false,
            ),
        );
        map.insert(
            "429".to_owned(),
            either("Throttled at the auth server.", vec![detail()], true),
        );
        map.insert(
            "503".to_owned(),
            either(
                "The auth server is out of reach or overloaded.",
                vec![detail()],
                true,
            ),
        );
        map.extend(BadGateway::responses());
        map
    }
}

/// `POST /users/signup/` → the auth server's `/users/signup/`.
#[utoipa::path(
    post,
    path = "/users/signup/",
    tag = "users",
    request_body(content(
        (SignupRequest = "application/json"),
        (SignupRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 201, description = "Signed up at the auth server.", body = SignedUp),
        DrfErrors,
        BadGateway,
    ),
)]
async fn signup(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = api::parse_body(&headers, body)?;
    let proxy = &state.proxy;
    Ok(proxy
        .relay(caller.forward(proxy.http.post(proxy.url("/users/signup/")).json(&fields)))
        .await)
}

/// `POST /users/token/` `{email, password}` → the password grant.
#[utoipa::path(
    post,
    path = "/users/token/",
    tag = "users",
    request_body(content(
        (TokenRequest = "application/json"),
        (TokenRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1).", body = TokenResponse),
        ProxiedTokenErrors,
    ),
)]
async fn token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = api::parse_body(&headers, body)?;
    let mut errors = FieldErrors::default();
    let email = CharField::new("email").trim().read(&fields, &mut errors);
    let password = CharField::new("password").read(&fields, &mut errors);
    errors.into_result()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::internal(
            &"token fields vanished after validation",
        ));
    };
    Ok(state
        .proxy
        .token(
            caller,
            &[
                ("grant_type", "password"),
                ("username", &email),
                ("password", &password),
            ],
        )
        .await)
}

/// `POST /users/token/refresh/` `{refresh}` → the refresh grant.
#[utoipa::path(
    post,
    path = "/users/token/refresh/",
    tag = "users",
    request_body(content(
        (RefreshRequest = "application/json"),
        (RefreshRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "New tokens; the refresh token rotates.", body = TokenResponse),
        ProxiedTokenErrors,
    ),
)]
async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = api::parse_body(&headers, body)?;
    let mut errors = FieldErrors::default();
    let refresh = CharField::new("refresh").trim().read(&fields, &mut errors);
    errors.into_result()?;
    let Some(refresh) = refresh else {
        return Err(ApiError::internal(
            &"refresh field vanished after validation",
        ));
    };
    Ok(state
        .proxy
        .token(
            caller,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await)
}

/// `PUT|PATCH /users/password/` → the auth server's, with the caller's own token.
#[utoipa::path(
    method(put, patch),
    path = "/users/password/",
    tag = "users",
    request_body(content(
        (PasswordChangeRequest = "application/json"),
        (PasswordChangeRequest = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed at the auth server.", body = PasswordChanged),
        DrfErrors,
        DrfAuthErrors,
        BadGateway,
    ),
)]
async fn password(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fields = api::parse_body(&headers, body)?;
    let proxy = &state.proxy;
    let mut request = caller.forward(proxy.http.put(proxy.url("/users/password/")).json(&fields));
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request = request.header(header::AUTHORIZATION, auth.clone());
    }
    Ok(proxy.relay(request).await)
}
