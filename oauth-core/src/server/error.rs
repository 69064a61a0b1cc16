//! RFC 6749 §5.2 errors of the OAuth endpoints (`/o/*`); the JSON APIs' DRF-shaped
//! errors live in [`crate::api`].

use std::borrow::Cow;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::{retry_after_of, retry_secs};

/// RFC 6749 §5.2 error codes, plus the few other RFCs add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// Malformed request.
    InvalidRequest,
    /// Client authentication failed (401).
    InvalidClient,
    /// The grant (password, refresh token) is invalid.
    InvalidGrant,
    /// The client may not use this grant type, or act on this token.
    UnauthorizedClient,
    /// Unknown `grant_type`.
    UnsupportedGrantType,
    /// Scope unknown or larger than allowed.
    InvalidScope,
    /// RFC 6750 §3.1: the bearer token presented is not active (401).
    InvalidToken,
    /// RFC 6750 §3.1: the bearer token lacks a needed scope (403).
    InsufficientScope,
    /// Too many failed attempts (429 with `Retry-After`), or load shed / a
    /// dependency briefly out (503 with `Retry-After`, RFC 6749 §4.1.2.1).
    TemporarilyUnavailable,
    /// An internal failure (500); the cause is logged, never sent.
    ServerError,
}

impl OAuthErrorCode {
    /// The wire value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// An error answer of the OAuth endpoints (`/o/*`).
#[derive(Debug, Clone)]
pub struct OAuthError {
    code: OAuthErrorCode,
    description: Option<Cow<'static, str>>,
    basic_challenge: bool,
    retry_after: Option<Duration>,
    /// 503 rather than 429 for `temporarily_unavailable`.
    overloaded: bool,
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl OAuthError {
    /// An error with no description.
    #[must_use]
    pub fn new(code: OAuthErrorCode) -> Self {
        Self {
            code,
            description: None,
            basic_challenge: false,
            retry_after: None,
            overloaded: false,
        }
    }

    /// Adds a human-readable `error_description`.
    #[must_use]
    pub fn describe(mut self, description: impl Into<Cow<'static, str>>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// `invalid_request` with a description.
    #[must_use]
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest).describe(description)
    }

    /// `invalid_client`; with `basic` the answer carries `WWW-Authenticate: Basic`.
    #[must_use]
    pub fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(OAuthErrorCode::InvalidClient)
        }
    }

    /// `invalid_token` for a bearer token that is not active.
    #[must_use]
    pub fn invalid_token() -> Self {
        Self::new(OAuthErrorCode::InvalidToken)
    }

    /// 429 after too many failures.
    #[must_use]
    pub fn throttled(retry_after: Duration) -> Self {
        crate::metrics::throttled();
        Self {
            retry_after: Some(retry_after),
            ..Self::new(OAuthErrorCode::TemporarilyUnavailable).describe(format!(
                "Too many failed attempts. Retry in {} seconds.",
                retry_secs(retry_after)
            ))
        }
    }

    /// 429 `temporarily_unavailable` with `Retry-After` and this description: a
    /// limit on what one caller may hold at a time (not a failure count).
    #[must_use]
    pub(crate) fn too_many(
        retry_after: Duration,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(OAuthErrorCode::TemporarilyUnavailable).describe(description)
        }
    }

    /// 503 `temporarily_unavailable` with `Retry-After`: load shed, or a dependency
    /// briefly out.
    #[must_use]
    pub fn unavailable(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            overloaded: true,
            ..Self::new(OAuthErrorCode::TemporarilyUnavailable).describe(format!(
                "The server is busy. Retry in {} seconds.",
                retry_secs(retry_after)
            ))
        }
    }

    /// A 500 whose cause is logged here and not sent — or a 503
    /// ([`unavailable`](Self::unavailable)) when the cause is load shedding or a
    /// transient outage (a full password-hashing queue, no database connection).
    #[must_use]
    pub fn internal<E: std::fmt::Display + std::any::Any>(cause: &E) -> Self {
        if let Some(after) = retry_after_of(cause) {
            tracing::debug!(%cause, "token endpoint unavailable");
            return Self::unavailable(after);
        }
        tracing::error!(%cause, "token endpoint failure");
        Self::new(OAuthErrorCode::ServerError)
    }

    /// The error code.
    #[must_use]
    pub fn code(&self) -> OAuthErrorCode {
        self.code
    }
}

/// Headers every token-endpoint answer carries (RFC 6749 §5.1).
pub(crate) fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            OAuthErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthErrorCode::TemporarilyUnavailable if self.overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            OAuthErrorCode::TemporarilyUnavailable => StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = OAuthErrorBody {
            error: self.code.as_str(),
            error_description: self.description.as_deref(),
        };
        let mut response = (status, Json(body)).into_response();
        no_store(&mut response);
        if matches!(
            self.code,
            OAuthErrorCode::InvalidToken | OAuthErrorCode::InsufficientScope
        ) {
            let challenge = format!("Bearer error=\"{}\"", self.code.as_str());
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\""),
            );
        }
        if let Some(after) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
        }
        response
    }
}
