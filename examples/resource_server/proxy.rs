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

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use oauth_core::ClientSecret;
use oauth_core::api::{self, ApiError, CharField, FieldErrors};

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

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/signup/", post(signup))
        .route("/users/signup", post(signup))
        .route("/users/token/", post(token))
        .route("/users/token", post(token))
        .route("/users/token/refresh/", post(refresh))
        .route("/users/token/refresh", post(refresh))
        .route(
            "/users/password/",
            axum::routing::put(password).patch(password),
        )
        .route(
            "/users/password",
            axum::routing::put(password).patch(password),
        )
}

/// `POST /users/signup/` → the auth server's `/users/signup/`.
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
