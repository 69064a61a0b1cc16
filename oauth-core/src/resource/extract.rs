//! axum extractors and a tower layer for bearer-token authentication.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer};

use super::{AuthError, Principal, ResourceAuth};

/// Why a request was refused, as RFC 6750 §3 and DRF word it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No bearer token: 401.
    MissingToken,
    /// The token is not active: 401 `invalid_token`.
    InvalidToken,
    /// The token lacks the scope: 403 `insufficient_scope`.
    InsufficientScope(&'static str),
    /// The authorization server cannot be asked: 503 with `Retry-After`.
    Unavailable,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> axum::response::Response {
        let (status, challenge, detail) = match &self {
            Self::MissingToken => (
                StatusCode::UNAUTHORIZED,
                Some("Bearer realm=\"api\"".to_owned()),
                "Authentication credentials were not provided.",
            ),
            Self::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                Some(
                    "Bearer realm=\"api\",error=\"invalid_token\",error_description=\"The access token is invalid.\""
                        .to_owned(),
                ),
                "The access token is invalid.",
            ),
            Self::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                Some(format!(
                    "Bearer realm=\"api\",error=\"insufficient_scope\",scope=\"{scope}\""
                )),
                "You do not have permission to perform this action.",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "The authorization server is unavailable. Try again later.",
            ),
        };
        let mut response = (status, Json(serde_json::json!({ "detail": detail }))).into_response();
        let headers = response.headers_mut();
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        if self == Self::Unavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The one bearer token of a request (RFC 6750 §2.1), or why there is none.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(AuthRejection::MissingToken);
    };
    let value = value.to_str().map_err(|_| AuthRejection::InvalidToken)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthRejection::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthRejection::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthRejection::InvalidToken);
    }
    Ok(token)
}

async fn authenticate(
    auth: &ResourceAuth,
    headers: &HeaderMap,
) -> Result<Principal, AuthRejection> {
    let token = bearer(headers)?;
    auth.0.authenticate(token).await.map_err(|e| match e {
        AuthError::InvalidToken => AuthRejection::InvalidToken,
        AuthError::Unavailable(reason) => {
            // Per request, so debug: the introspector logs the outage once.
            tracing::debug!(%reason, "cannot check a bearer token");
            AuthRejection::Unavailable
        }
    })
}

/// A request with an active bearer token. Reuses the principal found by
/// [`ResourceAuth::layer`] when the router has one, else authenticates itself.
///
/// ```
/// use oauth_core::resource::Authenticated;
///
/// async fn whoami(Authenticated(p): Authenticated) -> String {
///     p.username.unwrap_or_default()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    ResourceAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Self(p.clone()));
        }
        let auth = ResourceAuth::from_ref(state);
        let principal = authenticate(&auth, &parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// A scope a handler requires, as a type: see [`required_scope!`](crate::required_scope).
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope token.
    const SCOPE: &'static str;
}

/// Declares marker types for [`Scoped`].
///
/// ```
/// oauth_core::required_scope!(pub Read = "read", pub Write = "write");
/// ```
#[macro_export]
macro_rules! required_scope {
    ($($vis:vis $name:ident = $scope:literal),+ $(,)?) => {$(
        #[doc = concat!("The `", $scope, "` scope.")]
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::resource::RequiredScope for $name {
            const SCOPE: &'static str = $scope;
        }
    )+};
}

/// A request whose bearer token is active and carries `R::SCOPE`, checked on every
/// request against the (possibly cached) token information.
///
/// ```
/// use oauth_core::resource::Scoped;
/// oauth_core::required_scope!(Write = "write");
///
/// async fn create(Scoped(p, ..): Scoped<Write>) -> String {
///     format!("{:?} may write", p.sub)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Scoped<R: RequiredScope>(pub Principal, pub PhantomData<R>);

impl<S, R> FromRequestParts<S> for Scoped<R>
where
    ResourceAuth: FromRef<S>,
    S: Send + Sync,
    R: RequiredScope,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, state).await?;
        if p.has_scope(R::SCOPE) {
            Ok(Self(p, PhantomData))
        } else {
            Err(AuthRejection::InsufficientScope(R::SCOPE))
        }
    }
}

/// The authorizer behind [`ResourceAuth::layer`].
#[derive(Debug, Clone)]
pub struct BearerAuthorizer {
    auth: ResourceAuth,
    scope: Option<&'static str>,
}

impl<B: Send + 'static> AsyncAuthorizeRequest<B> for BearerAuthorizer {
    type RequestBody = B;
    type ResponseBody = Body;
    type Future = Pin<Box<dyn Future<Output = Result<Request<B>, Response<Body>>> + Send>>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let principal = authenticate(&this.auth, request.headers())
                .await
                .map_err(IntoResponse::into_response)?;
            if let Some(scope) = this.scope
                && !principal.has_scope(scope)
            {
                return Err(AuthRejection::InsufficientScope(scope).into_response());
            }
            request.extensions_mut().insert(principal);
            Ok(request)
        })
    }
}

impl ResourceAuth {
    /// A layer that lets through only requests with an active bearer token (carrying
    /// `scope`, if given) and hands the [`Principal`] to [`Authenticated`].
    ///
    /// ```
    /// # use axum::{Router, routing::get};
    /// # use oauth_core::resource::{Authenticator, AuthError, Principal, ResourceAuth};
    /// # struct Nobody;
    /// # #[async_trait::async_trait]
    /// # impl Authenticator for Nobody {
    /// #     async fn authenticate(&self, _: &str) -> Result<Principal, AuthError> { Err(AuthError::InvalidToken) }
    /// # }
    /// let auth = ResourceAuth::new(Nobody);
    /// let admin: Router = Router::new()
    ///     .route("/stats", get(|| async { "secret stats" }))
    ///     .layer(auth.layer(Some("admin")));
    /// ```
    #[must_use]
    pub fn layer(
        &self,
        scope: Option<&'static str>,
    ) -> AsyncRequireAuthorizationLayer<BearerAuthorizer> {
        AsyncRequireAuthorizationLayer::new(BearerAuthorizer {
            auth: self.clone(),
            scope,
        })
    }
}
