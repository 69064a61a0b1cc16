//! Property tests of the public parsers and validators: whatever the input (control
//! characters, non-ASCII, `%` sequences, a few KiB of it) an answer and never a
//! panic; round-trips where there is one; the invariants the server relies on.
//! Crate-private parsers have theirs beside them (`mod properties` blocks).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../src/test_inputs.rs"]
mod test_inputs;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use oauth_core::api::{CharField, FieldErrors, parse_body};
use oauth_core::server::authorization::{
    is_pkce_value, redirect_uri_matches, validate_redirect_uri,
};
use oauth_core::{Email, PasswordPolicy, PasswordProblem, Scope};
use proptest::prelude::*;
use serde_json::Value;
use test_inputs::{CASES, nasty_bytes, nasty_string};

/// RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
const SCOPE_TOKEN: &str = "[!#-\\[\\]-~]{1,16}";

/// The path and query after a loopback authority.
fn loopback_rest() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "/[a-zA-Z0-9/._~%-]{0,24}",
        "(/[a-z]{0,8})?\\?[a-z0-9=&]{0,12}",
    ]
}

/// Redirect URIs: arbitrary text, near-misses of the loopback form, and real ones.
fn redirect_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        nasty_string(),
        (
            prop::sample::select(vec![
                "http://127.0.0.1",
                "http://[::1]",
                "https://127.0.0.1"
            ]),
            "(:[0-9]{0,7})?",
            prop_oneof![loopback_rest(), nasty_string()],
        )
            .prop_map(|(host, port, rest)| format!("{host}{port}{rest}")),
        (
            prop::sample::select(vec![
                "https://",
                "http://",
                "com.example.app:",
                "javascript:"
            ]),
            "[a-z0-9.@:-]{0,20}",
            "[/?#a-z0-9 ]{0,16}",
        )
            .prop_map(|(scheme, host, rest)| format!("{scheme}{host}{rest}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    // ---- Scope ----

    /// Display then parse is the same scope, and the display is canonical.
    #[test]
    fn scope_display_parse_round_trip(tokens in prop::collection::vec(SCOPE_TOKEN, 0..8)) {
        let scope: Scope = tokens.iter().map(String::as_str).collect();
        prop_assert_eq!(scope.len(), tokens.iter().collect::<std::collections::HashSet<_>>().len());
        let shown = scope.to_string();
        let back: Scope = shown.parse().unwrap();
        prop_assert_eq!(&back, &scope);
        prop_assert_eq!(back.to_string(), shown);
        // Through JSON as well.
        let json = serde_json::to_string(&scope).unwrap();
        prop_assert_eq!(serde_json::from_str::<Scope>(&json).unwrap(), scope);
    }

    /// Any text is a scope or refused; an accepted one round-trips.
    #[test]
    fn scope_parse_any(s in nasty_string()) {
        if let Ok(scope) = s.parse::<Scope>() {
            let shown = scope.to_string();
            prop_assert!(!shown.starts_with(' ') && !shown.ends_with(' ') && !shown.contains("  "));
            prop_assert_eq!(shown.parse::<Scope>().unwrap(), scope);
        }
    }

    // ---- Email ----

    /// Any text parses or is refused; an address that parses re-parses to itself, and
    /// its key is stable (the same from the re-parse, from a case variant, and
    /// already lower-case).
    #[test]
    fn email_parse_is_idempotent(
        s in prop_oneof![
            nasty_string(),
            "[ \t]?[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,12}@[A-Za-z0-9.-]{1,12}\\.[A-Za-z]{2,4}[ \n]?",
            "\"[ -~]{0,10}\"@[a-z\u{e9}\u{130}]{1,8}\\.(XN--[a-z0-9]{1,5}|[A-Z\u{3000}]{2,3})",
            "[a-z]{1,3}@(localhost|LocalHost|[a-z]{1,70}\\.com)",
        ],
    ) {
        if let Ok(e) = Email::parse(&s) {
            prop_assert!(e.as_str().chars().count() <= Email::MAX_LEN);
            let again = Email::parse(e.as_str()).unwrap();
            prop_assert_eq!(&again, &e);
            prop_assert_eq!(again.key(), e.key());
            prop_assert_eq!(e.key().to_lowercase(), e.key());
            if let Ok(upper) = Email::parse(&e.as_str().to_ascii_uppercase()) {
                prop_assert_eq!(upper.key(), e.key());
            }
        }
    }

    // ---- Request bodies and CharField ----

    /// Any body under any content type is parsed or answered with DRF's error.
    #[test]
    fn parse_body_any(
        body in nasty_bytes(),
        content_type in prop_oneof![
            Just(None),
            Just(Some("application/json".to_owned())),
            Just(Some("application/x-www-form-urlencoded; charset=utf-8".to_owned())),
            Just(Some("APPLICATION/JSON ; x=y".to_owned())),
            nasty_string().prop_map(Some),
        ],
    ) {
        let mut headers = HeaderMap::new();
        if let Some(v) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        let _ = parse_body(&headers, Ok(Bytes::from(body)));
    }

    /// What a form body sent is read back field by field.
    #[test]
    fn form_bodies_round_trip(
        pairs in prop::collection::btree_map(nasty_string(), nasty_string(), 0..6),
    ) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let fields = parse_body(&HeaderMap::new(), Ok(Bytes::from(body))).unwrap();
        let want: Vec<(String, Value)> =
            pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        prop_assert_eq!(fields.into_iter().collect::<Vec<_>>(), want);
    }

    /// A value `CharField` accepts is not blank, has no NUL, fits, and is trimmed
    /// when asked; a refused one says why.
    #[test]
    fn char_field_invariants(
        value in prop_oneof![
            nasty_string().prop_map(Value::String),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            Just(Value::Null),
            Just(serde_json::json!([])),
        ],
        max in proptest::option::of(0usize..64),
        trim in any::<bool>(),
    ) {
        let mut field = CharField::new("f");
        if let Some(max) = max {
            field = field.max_length(max);
        }
        if trim {
            field = field.trim();
        }
        let mut errors = FieldErrors::default();
        match field.read_value(Some(&value), &mut errors) {
            Some(v) => {
                prop_assert!(errors.is_empty());
                prop_assert!(!v.is_empty() && !v.contains('\0'));
                prop_assert!(max.is_none_or(|m| v.chars().count() <= m));
                prop_assert!(!trim || v.trim() == v);
            }
            None => prop_assert!(errors.has("f")),
        }
    }

    // ---- Passwords ----

    /// Any password and email: Django's verdicts, never a panic; the length and
    /// numeric rules say exactly what they mean; the email itself is too similar.
    #[test]
    fn password_policy_any(password in nasty_string(), email in proptest::option::of(nasty_string())) {
        let policy = PasswordPolicy::default();
        let problems = policy.check(&password, email.as_deref());
        prop_assert_eq!(
            problems.contains(&PasswordProblem::TooShort { min_length: 8 }),
            password.chars().count() < 8
        );
        prop_assert_eq!(
            problems.contains(&PasswordProblem::EntirelyNumeric),
            !password.is_empty() && password.chars().all(char::is_numeric)
        );
        prop_assert!(policy.check(&password, Some(&password)).contains(&PasswordProblem::TooSimilarToEmail));
    }

    // ---- Redirect URIs and PKCE ----

    /// A loopback redirect URI matches itself with any port, or none.
    #[test]
    fn loopback_matches_any_port(
        host in prop::sample::select(vec!["http://127.0.0.1", "http://[::1]"]),
        a in proptest::option::of(any::<u16>()),
        b in proptest::option::of(any::<u16>()),
        rest in loopback_rest(),
    ) {
        let with = |port: Option<u16>| match port {
            Some(p) => format!("{host}:{p}{rest}"),
            None => format!("{host}{rest}"),
        };
        prop_assert!(redirect_uri_matches(&with(a), &with(b)), "{} {}", with(a), with(b));
    }

    /// Only a loopback registration matches anything but itself, and then only a
    /// loopback URI on the same host.
    #[test]
    fn non_loopback_matches_exactly(registered in redirect_uri(), requested in redirect_uri()) {
        prop_assert!(redirect_uri_matches(&registered, &registered));
        if redirect_uri_matches(&registered, &requested) && registered != requested {
            let host = |u: &str| {
                ["http://127.0.0.1", "http://[::1]"].into_iter().find(|h| u.starts_with(h))
            };
            prop_assert!(host(&registered).is_some(), "{registered:?} ~ {requested:?}");
            prop_assert_eq!(host(&registered), host(&requested));
        }
    }

    /// A redirect URI that may be registered is absolute, has no fragment and no
    /// white space or control character, and is https, loopback http or a
    /// private-use scheme.
    #[test]
    fn validated_redirect_uris(uri in redirect_uri()) {
        if validate_redirect_uri(&uri).is_ok() {
            let url = url_parse(&uri);
            prop_assert!(!uri.contains('#') && url.fragment.is_none(), "{uri:?}");
            prop_assert!(!uri.chars().any(|c| c.is_whitespace() || c.is_control()), "{uri:?}");
            prop_assert!(
                url.scheme == "https"
                    || uri.starts_with("http://127.0.0.1")
                    || uri.starts_with("http://[::1]")
                    || url.scheme.contains('.'),
                "{uri:?}"
            );
        }
    }

    /// An accepted PKCE value has 43 to 128 unreserved characters (RFC 7636
    /// `unreserved`: `[A-Za-z0-9._~-]`); every such value is accepted.
    #[test]
    fn pkce_values(
        s in prop_oneof![
            nasty_string(),
            "[A-Za-z0-9._~-]{40,131}",
            "[A-Za-z0-9._~-]{20,60}[+/= \u{e9}][A-Za-z0-9._~-]{20,60}",
        ],
    ) {
        let syntax = (43..=128).contains(&s.chars().count())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        prop_assert_eq!(is_pkce_value(&s), syntax, "{:?}", s);
    }
}

/// The parts of a parsed URL the redirect checks care about.
struct Parsed {
    scheme: String,
    fragment: Option<String>,
}

fn url_parse(uri: &str) -> Parsed {
    let url = oxide_auth::frontends::dev::Url::parse(uri).unwrap();
    Parsed {
        scheme: url.scheme().to_owned(),
        fragment: url.fragment().map(str::to_owned),
    }
}
