//! Django REST framework's conventions for JSON APIs: request bodies as JSON or
//! form fields, `CharField` validation, and the error shapes
//! `{"field": ["message"]}` / `{"detail": "…"}`. The auth server's account
//! endpoints use them, and so can an application's own endpoints beside them.

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// DRF's message for a missing field.
pub const REQUIRED: &str = "This field is required.";
/// DRF's message for an empty string.
pub const BLANK: &str = "This field may not be blank.";
/// DRF's message for `null`.
pub const NULL: &str = "This field may not be null.";
/// DRF's message for a value that is not a string.
pub const NOT_A_STRING: &str = "Not a valid string.";

pub(crate) fn retry_secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// The `Retry-After` of a failure that is load shedding or a transient outage — a
/// full password-hashing queue, no database connection within the pool's wait —
/// and `None` for a fault. The handlers' `internal(…)` calls ask it, so such causes
/// are answered 503 instead of 500 wherever they surface.
pub(crate) fn retry_after_of(cause: &dyn Any) -> Option<Duration> {
    if let Some(e) = cause.downcast_ref::<crate::store::StoreError>() {
        return e.retry_after();
    }
    if let Some(e) = cause.downcast_ref::<crate::password::PasswordError>() {
        return e.retry_after();
    }
    if let Some(crate::issuer::IssuerError::Store(e)) =
        cause.downcast_ref::<crate::issuer::IssuerError>()
    {
        return e.retry_after();
    }
    None
}

/// An error answer of the JSON APIs (`/users/*`), shaped as Django REST framework's.
#[derive(Debug, Clone)]
pub enum ApiError {
    /// 400 `{"field": ["message", …]}`.
    Fields(FieldErrors),
    /// `{"detail": "…"}` with a status.
    Detail(StatusCode, Cow<'static, str>),
    /// 401 for a missing or bad bearer token, with the RFC 6750 challenge.
    Unauthenticated {
        /// True when a token was presented but is not valid.
        invalid_token: bool,
    },
    /// 429 with `Retry-After`.
    Throttled(Duration),
    /// 503 with `Retry-After`: shedding load (a full password-hashing queue) or a
    /// dependency briefly out (no database connection in time).
    Unavailable(Duration),
    /// 500; the cause has been logged.
    Internal,
}

impl ApiError {
    /// A 500 whose cause is logged here and not sent — or a 503 with `Retry-After`
    /// when the cause is load shedding or a transient outage (logged at debug: the
    /// store and the hasher count those).
    #[must_use]
    pub fn internal<E: std::fmt::Display + Any>(cause: &E) -> Self {
        if let Some(after) = retry_after_of(cause) {
            tracing::debug!(%cause, "API unavailable");
            return Self::Unavailable(after);
        }
        tracing::error!(%cause, "API failure");
        Self::Internal
    }
}

/// Field errors, collected in a sorted map (the JSON key order of the reference).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// Adds a message for a field.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// True when no field has an error.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `field` has an error.
    #[must_use]
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// `Err(ApiError::Fields)` when any field has an error.
    ///
    /// # Errors
    /// The collected errors.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self))
        }
    }

    /// A single field error.
    #[must_use]
    pub fn single(field: &str, message: impl Into<String>) -> ApiError {
        let mut e = Self::default();
        e.add(field, message);
        ApiError::Fields(e)
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Fields(errors) => (StatusCode::BAD_REQUEST, Json(errors)).into_response(),
            Self::Detail(status, detail) => {
                (status, Json(Detail { detail: &detail })).into_response()
            }
            Self::Unauthenticated { invalid_token } => {
                let (challenge, detail) = if invalid_token {
                    (
                        "Bearer realm=\"api\",error=\"invalid_token\",error_description=\"The access token is invalid.\"",
                        "The access token is invalid.",
                    )
                } else {
                    (
                        "Bearer realm=\"api\"",
                        "Authentication credentials were not provided.",
                    )
                };
                let mut r = (StatusCode::UNAUTHORIZED, Json(Detail { detail })).into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                r
            }
            Self::Throttled(after) => {
                #[cfg(feature = "server")]
                crate::metrics::throttled();
                let detail = format!(
                    "Request was throttled. Expected available in {} seconds.",
                    retry_secs(after)
                );
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(Detail { detail: &detail }),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
                r
            }
            Self::Unavailable(after) => {
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(Detail {
                        detail: "Service temporarily unavailable, try again later.",
                    }),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(after)));
                r
            }
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(Detail {
                    detail: "A server error occurred.",
                }),
            )
                .into_response(),
        }
    }
}

/// A request body as field name → JSON value.
pub type Fields = BTreeMap<String, Value>;

/// Parses an `application/json` object or an `application/x-www-form-urlencoded`
/// body (also assumed when there is no `Content-Type`), with DRF's errors for
/// anything else: 400 for malformed JSON, 415 for other media types, 413 for a body
/// over the router's limit.
///
/// # Errors
/// [`ApiError::Detail`] as described.
pub fn parse_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Fields, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large.".into(),
            )
        } else {
            ApiError::Detail(
                StatusCode::BAD_REQUEST,
                "Could not read the request body.".into(),
            )
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => {
            if body.is_empty() {
                return Ok(Fields::new());
            }
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(map)) => Ok(map.into_iter().collect()),
                Ok(_) => Err(ApiError::Detail(
                    StatusCode::BAD_REQUEST,
                    "Invalid data. Expected a dictionary.".into(),
                )),
                Err(e) => Err(ApiError::Detail(
                    StatusCode::BAD_REQUEST,
                    format!("JSON parse error - {e}").into(),
                )),
            }
        }
        "application/x-www-form-urlencoded" | "" => Ok(strict_form(&body)
            .ok_or_else(|| {
                ApiError::Detail(
                    StatusCode::BAD_REQUEST,
                    "The form body is not valid UTF-8.".into(),
                )
            })?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()),
        other => Err(ApiError::Detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported media type \"{other}\" in request.").into(),
        )),
    }
}

/// Decodes `application/x-www-form-urlencoded` as the URL standard does, but
/// refuses (`None`) a name or value whose bytes are not UTF-8 instead of putting
/// U+FFFD in their place: what is stored is what was sent, or nothing.
fn strict_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        out.push((percent_decode(name)?, percent_decode(value)?));
    }
    Some(out)
}

/// `+` → space, `%XX` → the byte (a `%` not followed by two hex digits stays), then
/// strict UTF-8.
fn percent_decode(part: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut bytes = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        let b = part[i];
        if b == b'+' {
            bytes.push(b' ');
        } else if b == b'%'
            && let (Some(h), Some(l)) = (
                part.get(i + 1).copied().and_then(hex),
                part.get(i + 2).copied().and_then(hex),
            )
        {
            // Two hex digits: at most 255.
            bytes.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
            i += 2;
        } else {
            bytes.push(b);
        }
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

/// DRF's `CharField`: required, not null, not blank, optionally trimmed and with a
/// maximum length; numbers are taken as their text.
///
/// ```
/// # use oauth_core::api::{CharField, FieldErrors, Fields};
/// let fields: Fields = serde_json::from_str(r#"{"name": "  ", "code": 42}"#).unwrap();
/// let mut errors = FieldErrors::default();
/// assert_eq!(CharField::new("name").trim().read(&fields, &mut errors), None);
/// assert_eq!(CharField::new("code").read(&fields, &mut errors).as_deref(), Some("42"));
/// assert_eq!(serde_json::to_value(&errors).unwrap(), serde_json::json!({"name": ["This field may not be blank."]}));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CharField<'a> {
    name: &'a str,
    max_length: Option<usize>,
    trim: bool,
}

impl<'a> CharField<'a> {
    /// A required field called `name`.
    #[must_use]
    pub fn new(name: &'a str) -> Self {
        Self {
            name,
            max_length: None,
            trim: false,
        }
    }

    /// At most `n` characters.
    #[must_use]
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Strips surrounding white space first (DRF's default; passwords should not).
    #[must_use]
    pub fn trim(mut self) -> Self {
        self.trim = true;
        self
    }

    /// The value, or `None` with the reason added to `errors`.
    pub fn read(&self, fields: &Fields, errors: &mut FieldErrors) -> Option<String> {
        self.read_value(fields.get(self.name), errors)
    }

    /// Like [`read`](Self::read), for a value already looked up (`None`: absent).
    pub fn read_value(&self, value: Option<&Value>, errors: &mut FieldErrors) -> Option<String> {
        let name = self.name;
        let value = match value {
            None => {
                errors.add(name, REQUIRED);
                return None;
            }
            Some(Value::Null) => {
                errors.add(name, NULL);
                return None;
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                errors.add(name, NOT_A_STRING);
                return None;
            }
        };
        let value = if self.trim {
            value.trim().to_owned()
        } else {
            value
        };
        if value.is_empty() {
            errors.add(name, BLANK);
            return None;
        }
        if value.contains('\0') {
            errors.add(name, "Null characters are not allowed.");
            return None;
        }
        if let Some(max) = self.max_length
            && value.chars().count() > max
        {
            errors.add(
                name,
                format!("Ensure this field has no more than {max} characters."),
            );
            return None;
        }
        Some(value)
    }
}

#[cfg(test)]
mod form_tests {
    use super::strict_form;

    #[test]
    fn form_bodies_are_decoded_strictly() {
        let pairs = |s: &str| strict_form(s.as_bytes());
        assert_eq!(
            pairs("a=1&b=x+y%21&c&&d=%E2%82%AC&e=100%").unwrap(),
            [
                ("a", "1"),
                ("b", "x y!"),
                ("c", ""),
                ("d", "€"),
                ("e", "100%")
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // The same as form_urlencoded where the bytes are UTF-8.
        let body = "name=caf%C3%A9&x=%2B%26%3D&k%20=v+w";
        let expected: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(pairs(body).unwrap(), expected);
        // Invalid UTF-8 is refused, not replaced.
        assert_eq!(pairs("name=%FF"), None);
        assert_eq!(pairs("%C3=x"), None);
        assert_eq!(strict_form(b"name=\xff"), None);
    }
}

#[cfg(test)]
mod form_properties {
    use proptest::prelude::*;

    use super::{percent_decode, strict_form};
    use crate::test_inputs::{CASES, nasty_bytes, nasty_string};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Never a panic; what is accepted is what `form_urlencoded` reads, and what is
        /// refused is what it would have repaired with U+FFFD.
        #[test]
        fn strict_form_agrees_with_form_urlencoded(body in nasty_bytes()) {
            let lenient: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            match strict_form(&body) {
                Some(pairs) => prop_assert_eq!(pairs, lenient),
                None => {
                    let repaired = lenient
                        .iter()
                        .any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}'));
                    prop_assert!(repaired);
                }
            }
        }

        /// A form encoded by `form_urlencoded::Serializer` decodes to the same pairs.
        #[test]
        fn serialized_forms_round_trip(
            pairs in prop::collection::vec((nasty_string(), nasty_string()), 0..8),
        ) {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            // Every pair is written with its `=`, so even an empty one comes back.
            prop_assert_eq!(strict_form(body.as_bytes()), Some(pairs));
        }

        /// Percent-encoding every byte of a string decodes to the string.
        #[test]
        fn percent_decode_inverts_encoding(s in nasty_string()) {
            let encoded: String = s.bytes().map(|b| format!("%{b:02X}")).collect();
            prop_assert_eq!(percent_decode(encoded.as_bytes()), Some(s));
        }
    }
}
