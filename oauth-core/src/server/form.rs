//! The fields of an `/o/*` request, read where they lie.
//!
//! oxide-auth-axum's `OAuthRequest` copies every field of the query and of the body
//! into a map of owned strings (and the `Authorization` header into a `String`)
//! before the handler looks at any. Introspection, the server's hottest endpoint,
//! reads three or four fields once each, so [`FormRequest`] keeps the raw bytes and
//! finds a field when asked: no map, and no copy of a field that needs no decoding.
//! The rules are `OAuthRequest`'s: at most one `Authorization` header (a header that
//! is not text is ignored), the query of a `GET`, the body of a request that declares
//! `application/x-www-form-urlencoded`, and a field given twice counts as absent.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};

use super::error::OAuthError;

/// The `Authorization` header and the form (query or body) of a request.
#[derive(Debug)]
pub(crate) struct FormRequest {
    authorization: Option<HeaderValue>,
    /// `None`: a body that is not a form (or could not be read).
    form: Option<Bytes>,
}

impl FormRequest {
    /// The `Authorization` header, when it is text.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The value of `name`, decoded, when the form has it exactly once. Only the
    /// value asked for is decoded; a key is decoded only when it holds an escape.
    pub(crate) fn unique(&self, name: &str) -> Option<Cow<'_, str>> {
        let key_is_name = |raw: &[u8]| {
            raw == name.as_bytes()
                || (raw.iter().any(|&b| b == b'%' || b == b'+')
                    && form_urlencoded::parse(raw)
                        .next()
                        .is_some_and(|(key, _)| key == name))
        };
        let mut found: Option<&[u8]> = None;
        for pair in self.form.as_deref()?.split(|&b| b == b'&') {
            let key = pair.split(|&b| b == b'=').next().unwrap_or_default();
            if !pair.is_empty() && key_is_name(key) {
                if found.is_some() {
                    return None;
                }
                found = Some(pair);
            }
        }
        // The pair found, decoded as `form_urlencoded` decodes every pair.
        form_urlencoded::parse(found?)
            .next()
            .map(|(_, value)| value)
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

impl<S: Send + Sync> FromRequest<S> for FormRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, OAuthError> {
        let mut all = req.headers().get_all(header::AUTHORIZATION).iter();
        let authorization = all.next().cloned();
        if all.next().is_some() {
            return Err(OAuthError::invalid_request(
                "Send exactly one Authorization header.",
            ));
        }
        let form = if req.method() == Method::GET {
            Some(Bytes::copy_from_slice(
                req.uri().query().unwrap_or_default().as_bytes(),
            ))
        } else if is_form(req.headers()) {
            Bytes::from_request(req, state).await.ok()
        } else {
            None
        };
        Ok(Self {
            authorization,
            form,
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    async fn read(req: axum::http::Request<Body>) -> Result<FormRequest, OAuthError> {
        FormRequest::from_request(req, &()).await
    }

    fn post(content_type: &str, body: &'static str) -> axum::http::Request<Body> {
        axum::http::Request::post("/")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn fields_as_oauth_request_reads_them() {
        let f = read(post(
            "application/x-www-form-urlencoded; charset=UTF-8",
            "token=a%2Bb+c&twice=1&twi%63e=2&empty=&&bare&%74oken2=x+y",
        ))
        .await
        .unwrap();
        assert_eq!(f.unique("token").as_deref(), Some("a+b c"));
        assert_eq!(f.unique("twice"), None);
        assert_eq!(f.unique("empty").as_deref(), Some(""));
        assert_eq!(f.unique("missing"), None);
        assert_eq!(f.unique("bare").as_deref(), Some(""));
        assert_eq!(f.unique("token2").as_deref(), Some("x y"));
        assert!(f.authorization().is_none());

        let json = read(post("application/json", "token=a")).await.unwrap();
        assert_eq!(json.unique("token"), None);

        let get = axum::http::Request::get("/?token=q")
            .header("authorization", "Basic eDp5")
            .body(Body::from("token=body"))
            .unwrap();
        let get = read(get).await.unwrap();
        assert_eq!(get.unique("token").as_deref(), Some("q"));
        assert_eq!(get.authorization(), Some("Basic eDp5"));

        let two = axum::http::Request::post("/")
            .header("authorization", "Basic eDp5")
            .header("authorization", "Bearer z")
            .body(Body::empty())
            .unwrap();
        assert!(read(two).await.is_err());
    }
}
