//! The authorization code grant with PKCE, rule by rule: the authorization
//! endpoint's validation and error answers, the login and consent pages, CSRF,
//! remembered consent, the code exchange with its replay and expiry rules, the
//! authorized-applications page, and CORS. Each scenario runs on SQLite and, with
//! `TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use common::{Backend, Harness, PASSWORD};
use oauth_core::{
    Client, ClientRegistry, GrantStore, GrantType, Redemption, TokenQuery, TokenStore, UserFlags,
    UserStore,
};
use serde_json::{Value, json};
use sha2::Digest as _;

use common::browser::{Browser, ISSUER, Page, pairs};

/// The consent step of a browser.
trait Consent {
    /// GET /o/authorize/ with the consent page expected; Allow it; the redirect.
    async fn allow(&mut self, query: &str) -> Page;
}

impl Consent for Browser<'_> {
    async fn allow(&mut self, query: &str) -> Page {
        let consent = self.get(&format!("/o/authorize/?{query}")).await;
        assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
        let mut form = consent.hidden_fields();
        form.push(("allow".into(), "Authorize".into()));
        self.post("/o/authorize/", &form).await
    }
}

scenarios!(
    unknown_client_or_redirect_uri_is_an_error_page,
    loopback_redirect_uris_match_any_port,
    loopback_any_port_only_for_public_clients,
    omitted_redirect_uri_needs_exactly_one_registered,
    other_errors_redirect_with_state_and_iss,
    errors_never_bounce_to_self_registered_clients,
    pkce_is_required_s256_only_with_rfc_syntax,
    s256_challenge_is_exactly_43_base64url_characters,
    anonymous_user_is_sent_to_login_and_back,
    consent_page_shows_client_and_scopes_with_safe_headers,
    allow_issues_a_code_and_cancel_is_access_denied,
    consent_post_needs_csrf_and_same_origin,
    tampered_consent_form_is_validated_again,
    first_party_clients_skip_consent,
    remembered_consent_only_for_assured_clients,
    public_client_exchanges_and_refreshes_with_rotation,
    confidential_client_must_authenticate,
    replayed_code_revokes_its_tokens,
    late_replay_after_the_purge_still_revokes,
    wrong_verifier_expired_or_foreign_code_is_invalid_grant,
    redirect_uri_at_the_token_endpoint,
    concurrent_redemptions_one_wins,
    login_page_checks_credentials_without_telling_which,
    login_rotates_the_session_and_honours_only_local_next,
    logout_ends_the_session,
    session_ends_after_its_absolute_lifetime,
    deactivated_user_is_signed_out,
    new_password_ends_browser_sessions,
    authorized_tokens_page_lists_and_revokes,
    cors_only_for_registered_origins,
    cors_origin_only_for_the_client_that_registered_it,
    session_cookie_flags_on_https,
    anonymous_posts_are_sent_to_login_with_303,
    revoke_answers_without_trailing_slash,
    withdrawing_an_application_voids_its_unexchanged_codes,
    staff_withdrawal_voids_the_users_codes_for_that_client,
    console_client_revocation_voids_its_unexchanged_codes,
    secret_rotation_voids_the_clients_unexchanged_codes,
    type_change_voids_the_clients_unexchanged_codes,
    codes_of_deactivated_or_deleted_users_are_refused,
    new_password_voids_unexchanged_codes,
    custom_scheme_public_client_is_asked_every_time,
    ipv6_loopback_redirect_uris_match_any_port,
    anonymous_csrf_cookie_is_signed_bound_and_checked,
);

/// Scenarios that need a server configured otherwise than [`scenarios!`]'s: each
/// builds its own harness on the backend it is given (PostgreSQL only with
/// `TEST_DATABASE_URL`).
macro_rules! configured_scenarios {
    ($($name:ident),* $(,)?) => {
        mod configured_sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::common::Backend::Sqlite).await;
            }
        )* }
        mod configured_postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        )* }
    };
}

configured_scenarios!(
    session_cookie_flags_on_plain_http,
    idle_expiry_counts_from_last_use,
    configured_code_lifetime_is_enforced,
);

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92ZR7gW0pQmUXyA6xKMbbj1kLsVs";
const LOOPBACK: &str = "http://127.0.0.1/callback";
const WEB: &str = "https://app.example.com/cb";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// An authorization request's query string.
fn authorize_query(client_id: &str, redirect_uri: Option<&str>, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("scope", "read")
        .append_pair("state", "st-123")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(r) = redirect_uri {
        q.append_pair("redirect_uri", r);
    }
    let mut s = q.finish();
    for (k, v) in extra {
        // Later values replace earlier ones: rebuild without the key.
        let kept: Vec<(String, String)> = form_urlencoded::parse(s.as_bytes())
            .into_owned()
            .filter(|(key, _)| key != k)
            .collect();
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(kept);
        if !v.is_empty() {
            q.append_pair(k, v);
        }
        s = q.finish();
    }
    s
}

async fn register(
    h: &Harness,
    id: &str,
    secret: Option<&str>,
    redirect_uris: &[&str],
    skip_authorization: bool,
) {
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    let mut client =
        common::client_record(&h.hasher, id, secret, &grants, "read write", redirect_uris).await;
    client.name = format!("App <{id}>");
    client.allowed_origins = vec!["https://spa.example.com".into()];
    client.skip_authorization = skip_authorization;
    client.default_scope = "read".parse().unwrap();
    h.store.register_client(client).await.unwrap();
}

/// The common set-up: a loopback public client, an https public client, a
/// confidential client, a first-party client, and a signed-in user.
async fn setup(h: &Harness) -> Browser<'_> {
    register(h, "native", None, &[LOOPBACK], false).await;
    register(h, "webapp", None, &[WEB], false).await;
    register(h, "conf", Some("conf-secret"), &[LOOPBACK, WEB], false).await;
    register(h, "first", None, &[LOOPBACK], true).await;
    h.user("ann@example.com").await;
    let mut b = Browser::new(h);
    b.sign_in("ann@example.com").await;
    b
}

/// Exchanges a code; returns the JSON reply.
async fn exchange(
    h: &Harness,
    code: &str,
    client: &str,
    secret: Option<&str>,
    extra: &[(&str, &str)],
) -> common::Reply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", VERIFIER),
    ];
    if secret.is_none() {
        form.push(("client_id", client));
    }
    for (k, v) in extra {
        form.retain(|(key, _)| key != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    let basic = secret.map(|s| (client, s));
    h.post_form("/o/token/", basic, &form).await
}

/// A fresh code for `client`, through the consent page when one is shown.
async fn code_for(b: &mut Browser<'_>, client: &str, redirect_uri: Option<&str>) -> String {
    let query = authorize_query(client, redirect_uri, &[]);
    let first = b.get(&format!("/o/authorize/?{query}")).await;
    let answer = if first.status == StatusCode::OK {
        b.allow(&query).await
    } else {
        first
    };
    answer.redirect_params()["code"].clone()
}

/// Exchanges `code` for `client` with the loopback redirect URI the tests authorize with.
async fn redeem(h: &Harness, code: &str, client: &str, secret: Option<&str>) -> common::Reply {
    exchange(h, code, client, secret, &[("redirect_uri", LOOPBACK)]).await
}

/// The exchange answered 200.
fn assert_exchanged(r: &common::Reply) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

/// The exchange answered 400 `invalid_grant`.
fn assert_invalid_grant(r: &common::Reply) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.str("error"), "invalid_grant");
}

/// A browser signed in as `email` (the user must exist).
async fn signed_in<'h>(h: &'h Harness, email: &str) -> Browser<'h> {
    let mut b = Browser::new(h);
    b.sign_in(email).await;
    b
}

/// A browser signed in as a new staff user.
async fn staff_browser(h: &Harness) -> Browser<'_> {
    h.staff_user("staff@example.com").await;
    signed_in(h, "staff@example.com").await
}

/// Posts `fields` to `action` with the CSRF token of the form shown on `page`.
async fn post_form_of(
    b: &mut Browser<'_>,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let csrf = b.get(page).await.field("csrfmiddlewaretoken");
    let mut form = vec![("csrfmiddlewaretoken", csrf.as_str())];
    form.extend_from_slice(fields);
    b.post(action, &pairs(&form)).await
}

/// The id of ann@example.com, whom `setup` creates.
async fn ann_id(h: &Harness) -> i64 {
    h.store
        .user_by_email(&oauth_core::Email::parse("ann@example.com").unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Sets a user's `is_active` flag straight in the store.
async fn set_active(h: &Harness, user: i64, active: bool) {
    h.store
        .set_user_flags(
            user,
            UserFlags {
                is_active: Some(active),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
}

fn assert_error_page(p: &Page) {
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.headers.get(header::LOCATION).is_none());
    assert!(
        p.body.contains("<h1>Authorization failed</h1>"),
        "{}",
        p.body
    );
}

async fn unknown_client_or_redirect_uri_is_an_error_page(h: &Harness) {
    let mut b = setup(h).await;
    for query in [
        authorize_query("nobody", Some(LOOPBACK), &[]),
        authorize_query("native", Some("https://evil.example/cb"), &[]),
        authorize_query("native", Some("http://127.0.0.1/callback/"), &[]),
        authorize_query("native", Some("http://localhost:9000/callback"), &[]),
        authorize_query("webapp", Some("https://app.example.com:8443/cb"), &[]),
        authorize_query("webapp", Some("https://app.example.com/cb?x=1"), &[]),
        authorize_query("native", Some(LOOPBACK), &[("client_id", "")]),
        // Errors that would otherwise redirect are not sent to an unchecked URI.
        authorize_query(
            "native",
            Some("https://evil.example/cb"),
            &[("response_type", "token")],
        ),
    ] {
        assert_error_page(&b.get(&format!("/o/authorize/?{query}")).await);
    }
    // Anonymous visitors get the same page: no login detour for a bad client.
    let mut anon = Browser::new(h);
    assert_error_page(
        &anon
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query("nobody", Some(LOOPBACK), &[])
            ))
            .await,
    );
}

async fn loopback_redirect_uris_match_any_port(h: &Harness) {
    let mut b = setup(h).await;
    for uri in ["http://127.0.0.1:53123/callback", LOOPBACK] {
        let p = b.allow(&authorize_query("native", Some(uri), &[])).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert!(
            p.location().starts_with(&format!("{uri}?code=")),
            "{}",
            p.location()
        );
    }
}

/// RFC 8252 §7.3's any-port rule is for native apps: a confidential client (a web
/// server, here one that skips consent like the demo's `rs-id`) must name the exact
/// registered port, or anyone listening on another loopback port gets its codes.
async fn loopback_any_port_only_for_public_clients(h: &Harness) {
    let mut b = setup(h).await;
    const CONSOLE: &str = "http://127.0.0.1:8001/admin/callback";
    register(h, "rs-like", Some("rs-like-secret"), &[CONSOLE], true).await;
    for (client, uri) in [
        ("rs-like", "http://127.0.0.1:8002/admin/callback"),
        ("rs-like", "http://127.0.0.1/admin/callback"),
        ("conf", "http://127.0.0.1:53123/callback"),
    ] {
        let p = b
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query(client, Some(uri), &[])
            ))
            .await;
        assert_error_page(&p);
    }
    let p = b
        .get(&format!(
            "/o/authorize/?{}",
            authorize_query("rs-like", Some(CONSOLE), &[])
        ))
        .await;
    assert_eq!(p.status, StatusCode::FOUND, "{}", p.body);
    assert!(
        p.location().starts_with(&format!("{CONSOLE}?code=")),
        "{}",
        p.location()
    );
    let p = b.allow(&authorize_query("conf", Some(LOOPBACK), &[])).await;
    assert!(p.location().starts_with(&format!("{LOOPBACK}?code=")));
    // A public client keeps the rule (see loopback_redirect_uris_match_any_port).
    let p = b
        .allow(&authorize_query(
            "native",
            Some("http://127.0.0.1:53123/callback"),
            &[],
        ))
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
}

async fn omitted_redirect_uri_needs_exactly_one_registered(h: &Harness) {
    let mut b = setup(h).await;
    let p = b.allow(&authorize_query("native", None, &[])).await;
    assert!(p.location().starts_with(&format!("{LOOPBACK}?code=")));
    // `conf` registered two: it must say which.
    assert_error_page(
        &b.get(&format!(
            "/o/authorize/?{}",
            authorize_query("conf", None, &[])
        ))
        .await,
    );
}

async fn other_errors_redirect_with_state_and_iss(h: &Harness) {
    let mut b = setup(h).await;
    h.client("pw-only", None, &[GrantType::Password], "read")
        .await;
    h.store
        .update_client(Client {
            redirect_uris: vec![LOOPBACK.into()],
            ..h.store.client("pw-only").await.unwrap().unwrap()
        })
        .await
        .unwrap();
    for (client, extra, error) in [
        (
            "native",
            ("response_type", "token"),
            "unsupported_response_type",
        ),
        ("native", ("response_type", ""), "unsupported_response_type"),
        ("native", ("scope", "admin"), "invalid_scope"),
        ("native", ("scope", "introspection"), "invalid_scope"),
        ("native", ("scope", "read\u{7f}"), "invalid_scope"),
        ("pw-only", ("scope", "read"), "unauthorized_client"),
    ] {
        let p = b
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query(client, Some(LOOPBACK), &[extra])
            ))
            .await;
        assert_eq!(p.status, StatusCode::FOUND, "{extra:?}: {}", p.body);
        assert!(p.location().starts_with(LOOPBACK));
        let q = p.redirect_params();
        assert_eq!(
            q.get("error").map(String::as_str),
            Some(error),
            "{extra:?} {q:?}"
        );
        assert!(
            q.get("error_description").is_some_and(|d| !d.is_empty()),
            "{extra:?} {q:?}"
        );
        assert_eq!(q["state"], "st-123");
        assert_eq!(q["iss"], ISSUER);
        assert!(!q.contains_key("code"));
    }
}

/// RFC 9700 §4.11.2: `/o/authorize/` must not be an open redirector. An ordinary
/// user registers an https app on a host of theirs through the self-service form;
/// every authorization error for it is our error page (400, no `Location`) for an
/// anonymous visitor and for a signed-in user alike. A trusted client (no owner,
/// or a staff owner) gets the RFC 6749 §4.1.2.1 redirect, but only after sign-in.
async fn errors_never_bounce_to_self_registered_clients(h: &Harness) {
    const EVIL: &str = "https://attacker.example/landing";
    let mut ann = setup(h).await;
    h.user("mallory@example.com").await;
    let mut mallory = signed_in(h, "mallory@example.com").await;
    let registered = post_form_of(
        &mut mallory,
        "/o/applications/register/",
        "/o/applications/register/",
        &[
            ("name", "Totally legit"),
            ("client_id", "bounce"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", EVIL),
        ],
    )
    .await;
    assert_eq!(
        registered.status,
        StatusCode::SEE_OTHER,
        "{}",
        registered.body
    );
    assert!(
        h.store
            .client("bounce")
            .await
            .unwrap()
            .unwrap()
            .owner
            .is_some()
    );
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("scope", "nonsense")], "invalid_scope"),
        (&[("code_challenge", "")], "invalid_request"),
        (
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
    ];
    let mut anon = Browser::new(h);
    for (who, browser) in [
        ("anonymous", &mut anon),
        ("owner", &mut mallory),
        ("ann", &mut ann),
    ] {
        for (extra, error) in &cases {
            let p = browser
                .get(&format!(
                    "/o/authorize/?{}",
                    authorize_query("bounce", Some(EVIL), extra)
                ))
                .await;
            assert_error_page(&p);
            assert!(p.body.contains(error), "{who} {extra:?}: {}", p.body);
            assert!(!p.body.contains("attacker.example"), "{who} {extra:?}");
        }
    }
    // A trusted client (registered without owner) is told, once the user signed in...
    let bad_scope = authorize_query("native", Some(LOOPBACK), &[("scope", "nonsense")]);
    let p = ann.get(&format!("/o/authorize/?{bad_scope}")).await;
    assert_eq!(p.status, StatusCode::FOUND, "{}", p.body);
    assert!(p.location().starts_with(LOOPBACK), "{}", p.location());
    let q = p.redirect_params();
    assert_eq!(q["error"], "invalid_scope");
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], ISSUER);
    // ...but not before: no sign-in, no redirect, whoever the client.
    assert_error_page(&anon.get(&format!("/o/authorize/?{bad_scope}")).await);
    // A client a staff user registered is trusted too.
    let mut staff = staff_browser(h).await;
    let staffs = post_form_of(
        &mut staff,
        "/o/applications/register/",
        "/o/applications/register/",
        &[
            ("name", "Staff app"),
            ("client_id", "staff-app"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", WEB),
        ],
    )
    .await;
    assert_eq!(staffs.status, StatusCode::SEE_OTHER, "{}", staffs.body);
    let p = ann
        .get(&format!(
            "/o/authorize/?{}",
            authorize_query("staff-app", Some(WEB), &[("scope", "nonsense")])
        ))
        .await;
    assert_eq!(p.status, StatusCode::FOUND, "{}", p.body);
    assert_eq!(p.redirect_params()["error"], "invalid_scope");
    // Cancel on our consent page stays a redirect, even to an untrusted client: the
    // user saw the client and chose.
    let consent = ann
        .get(&format!(
            "/o/authorize/?{}",
            authorize_query("bounce", Some(EVIL), &[])
        ))
        .await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    let mut form = consent.hidden_fields();
    form.push(("cancel".into(), "Cancel".into()));
    let p = ann.post("/o/authorize/", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.location().starts_with(EVIL), "{}", p.location());
    assert_eq!(p.redirect_params()["error"], "access_denied");
}

async fn pkce_is_required_s256_only_with_rfc_syntax(h: &Harness) {
    let mut b = setup(h).await;
    for extra in [
        vec![("code_challenge", ""), ("code_challenge_method", "")],
        vec![("code_challenge_method", "")],
        vec![("code_challenge_method", "plain")],
        vec![("code_challenge_method", "S512")],
        vec![("code_challenge", "short")],
        vec![("code_challenge", &*format!("{}=", "a".repeat(43)))],
        vec![("code_challenge", &*"a".repeat(129))],
    ] {
        let p = b
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query("native", Some(LOOPBACK), &extra)
            ))
            .await;
        let q = p.redirect_params();
        assert_eq!(q["error"], "invalid_request", "{extra:?}");
        assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-123", ISSUER));
    }
}

/// RFC 7636 §4.2: an S256 challenge is `BASE64URL(SHA256(verifier))`, exactly 43
/// characters of the base64url alphabet; anything else could never verify and is
/// `invalid_request` at once.
async fn s256_challenge_is_exactly_43_base64url_characters(h: &Harness) {
    let mut b = setup(h).await;
    let good = challenge(VERIFIER);
    assert_eq!(good.len(), 43);
    for bad in [
        good[..42].to_owned(),
        format!("{good}A"),
        "A".repeat(128),
        format!("{}.", &good[..42]),
        format!("{}~", &good[..42]),
    ] {
        let p = b
            .get(&format!(
                "/o/authorize/?{}",
                authorize_query("native", Some(LOOPBACK), &[("code_challenge", &bad)])
            ))
            .await;
        assert_eq!(p.status, StatusCode::FOUND, "{bad}: {}", p.body);
        let q = p.redirect_params();
        assert_eq!(q["error"], "invalid_request", "{bad}");
        assert_eq!(q["state"], "st-123");
    }
    let p = b
        .get(&format!(
            "/o/authorize/?{}",
            authorize_query("native", Some(LOOPBACK), &[("code_challenge", &good)])
        ))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
}

async fn anonymous_user_is_sent_to_login_and_back(h: &Harness) {
    register(h, "native", None, &[LOOPBACK], false).await;
    h.user("ann@example.com").await;
    let mut b = Browser::new(h);
    let query = authorize_query("native", Some(LOOPBACK), &[]);
    let p = b.get(&format!("/o/authorize/?{query}")).await;
    assert_eq!(p.status, StatusCode::FOUND);
    let next = p.location().strip_prefix("/accounts/login/?next=").unwrap();
    let next: String = form_urlencoded::parse(format!("n={next}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    assert_eq!(next, format!("/o/authorize/?{query}"));
    let form = b.get(p.location()).await;
    assert_eq!(form.field("next"), next);
    let done = b
        .post(
            "/accounts/login/",
            &pairs(&[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
                ("next", &next),
            ]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), next);
    let consent = b.get(&next).await;
    assert_eq!(consent.status, StatusCode::OK);
}

async fn consent_page_shows_client_and_scopes_with_safe_headers(h: &Harness) {
    let mut b = setup(h).await;
    let query = authorize_query("native", Some(LOOPBACK), &[("scope", "read write")]);
    let p = b
        .send(
            Request::get(format!("/o/authorize/?{query}"))
                .header(header::ORIGIN, "https://spa.example.com")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    // The name is escaped, never markup.
    assert!(
        p.body.contains("App &#60;native&#62;") || p.body.contains("App &lt;native&gt;"),
        "{}",
        p.body
    );
    assert!(!p.body.contains("App <native>"));
    assert!(p.body.contains("<code>read</code> Read your data"));
    assert!(
        p.body
            .contains("<code>write</code> Create, change and delete your data")
    );
    assert!(p.body.contains(r#"name="allow""#));
    assert!(p.body.contains(r#"name="csrfmiddlewaretoken""#));
    let h_ = |n: &str| p.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert!(
        h_("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h_("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(h_("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(h_("cache-control").as_deref(), Some("no-store"));
    assert!(h_("content-type").unwrap().starts_with("text/html"));
    // Never CORS on the authorization endpoint.
    assert!(h_("access-control-allow-origin").is_none());
}

/// Signs ann@example.com in from a fresh browser whose pages come from `origin`; the
/// `Set-Cookie` of the sign-in's answer (which sets the new session's cookie).
async fn sign_in_cookie(h: &Harness, origin: &str) -> String {
    let mut b = Browser::new(h);
    let form = b.get("/accounts/login/").await;
    let p = b
        .post_with(
            "/accounts/login/",
            &pairs(&[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
            ]),
            &[("origin", origin)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let set: Vec<_> = p
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    set[0].clone()
}

/// The attributes of a `Set-Cookie` value, after its name=value pair.
fn cookie_attributes(set: &str) -> Vec<&str> {
    set.split(';').skip(1).map(str::trim).collect()
}

async fn session_cookie_flags_on_https(h: &Harness) {
    h.user("ann@example.com").await;
    // https issuer: `__Host-` name, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain.
    let set = sign_in_cookie(h, ISSUER).await;
    assert!(set.starts_with("__Host-oauth_session="), "{set}");
    let attrs = cookie_attributes(&set);
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr}: {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
}

/// A plain-http issuer (a developer's machine): the cookie cannot be `Secure`, so
/// it cannot have the `__Host-` name either; the other flags stay.
async fn session_cookie_flags_on_plain_http(backend: Backend) {
    const HTTP_ISSUER: &str = "http://127.0.0.1:8000";
    let Some(h) = Harness::build(backend, common::lenient(), |s| s.issuer_url(HTTP_ISSUER)).await
    else {
        return;
    };
    h.user("ann@example.com").await;
    let set = sign_in_cookie(&h, HTTP_ISSUER).await;
    assert!(set.starts_with("oauth_session="), "{set}");
    let attrs = cookie_attributes(&set);
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr}: {set}");
    }
    assert!(!attrs.contains(&"Secure"), "{set}");
    h.cleanup().await;
}

/// Idle expiry counts from the last use of the session, not from its last change:
/// a user who keeps using the pages stays signed in past the idle time; one who
/// stops is signed out once it has passed. Sessions expire on the wall clock (the
/// store compares whole seconds), hence real, short sleeps: a 2 s idle time, so an
/// idle session ends between 1 and 2 s after its last use.
async fn idle_expiry_counts_from_last_use(backend: Backend) {
    let idle = Duration::from_secs(2);
    let Some(h) =
        Harness::build_with_pages(backend, common::lenient(), |p| p.idle_timeout(idle), |s| s)
            .await
    else {
        return;
    };
    register(&h, "native", None, &[LOOPBACK], false).await;
    h.user("ann@example.com").await;
    let mut b = Browser::new(&h);
    b.sign_in("ann@example.com").await;
    // The consent page: it reads the session and changes nothing in it.
    let consent = format!(
        "/o/authorize/?{}",
        authorize_query("native", Some(LOOPBACK), &[])
    );
    // Used every 0.4 s for 2.4 s in all, longer than the idle time since sign-in
    // (the last change): still signed in, and every answer sends the cookie again
    // with a fresh Max-Age, so the browser keeps it as long as the server does.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let p = b.get(&consent).await;
        assert_eq!(p.status, StatusCode::OK, "signed out while in use");
        let set = p
            .headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned())
            .expect("the cookie is sent again");
        assert!(cookie_attributes(&set).contains(&"Max-Age=2"), "{set}");
    }
    // Then unused for longer than the idle time: signed out.
    tokio::time::sleep(idle + Duration::from_millis(100)).await;
    let p = b.get(&consent).await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(p.location().starts_with("/accounts/login/"));
    h.cleanup().await;
}

async fn allow_issues_a_code_and_cancel_is_access_denied(h: &Harness) {
    let mut b = setup(h).await;
    let query = authorize_query("native", Some(LOOPBACK), &[]);
    let p = b.allow(&query).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let q = p.redirect_params();
    assert!(q["code"].len() >= 43, "≥ 256 bits: {}", q["code"]);
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-123", ISSUER));

    let consent = b.get(&format!("/o/authorize/?{query}")).await;
    let mut form = consent.hidden_fields();
    form.push(("cancel".into(), "Cancel".into()));
    let p = b.post("/o/authorize/", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let q = p.redirect_params();
    assert_eq!(q["error"], "access_denied");
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-123", ISSUER));
    assert!(!q.contains_key("code"));
}

async fn consent_post_needs_csrf_and_same_origin(h: &Harness) {
    let mut b = setup(h).await;
    let query = authorize_query("native", Some(LOOPBACK), &[]);
    let consent = b.get(&format!("/o/authorize/?{query}")).await;
    let mut good = consent.hidden_fields();
    good.push(("allow".into(), "Authorize".into()));
    let without: Vec<_> = good
        .iter()
        .filter(|(k, _)| k != "csrfmiddlewaretoken")
        .cloned()
        .collect();
    let mut wrong = without.clone();
    wrong.push(("csrfmiddlewaretoken".into(), "x".repeat(43)));
    for (form, headers) in [
        (&without, vec![("origin", ISSUER)]),
        (&wrong, vec![("origin", ISSUER)]),
        (&good, vec![("origin", "https://evil.example")]),
        (&good, vec![("referer", "https://evil.example/page")]),
        (&good, vec![("sec-fetch-site", "cross-site")]),
    ] {
        let p = b.post_with("/o/authorize/", form, &headers).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(p.headers.get(header::LOCATION).is_none());
    }
    // `Origin: null` (no-referrer) carries no information; the token decides.
    let p = b
        .post_with("/o/authorize/", &good, &[("origin", "null")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    // Another session's token does not work here.
    let mut other = Browser::new(h);
    other.sign_in("ann@example.com").await;
    let p = other.post("/o/authorize/", &good).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

async fn tampered_consent_form_is_validated_again(h: &Harness) {
    let mut b = setup(h).await;
    let query = authorize_query("native", Some(LOOPBACK), &[]);
    let consent = b.get(&format!("/o/authorize/?{query}")).await;
    let tamper = |key: &str, value: &str| {
        let mut form: Vec<(String, String)> = consent
            .hidden_fields()
            .into_iter()
            .filter(|(k, _)| k != key)
            .collect();
        form.push((key.into(), value.into()));
        form.push(("allow".into(), "Authorize".into()));
        form
    };
    let p = b
        .post(
            "/o/authorize/",
            &tamper("redirect_uri", "https://evil.example/cb"),
        )
        .await;
    assert_error_page(&p);
    let p = b
        .post("/o/authorize/", &tamper("scope", "read admin"))
        .await;
    assert_eq!(p.redirect_params()["error"], "invalid_scope");
}

async fn first_party_clients_skip_consent(h: &Harness) {
    let mut b = setup(h).await;
    let p = b
        .get(&format!(
            "/o/authorize/?{}",
            authorize_query("first", Some(LOOPBACK), &[])
        ))
        .await;
    assert_eq!(p.status, StatusCode::FOUND, "{}", p.body);
    let q = p.redirect_params();
    assert_eq!((q["state"].as_str(), q["iss"].as_str()), ("st-123", ISSUER));
    let r = exchange(h, &q["code"], "first", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

async fn remembered_consent_only_for_assured_clients(h: &Harness) {
    let mut b = setup(h).await;
    // Confidential: asked once, then remembered.
    let q = authorize_query("conf", Some(LOOPBACK), &[]);
    b.allow(&q).await;
    let again = b.get(&format!("/o/authorize/?{q}")).await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert!(again.redirect_params().contains_key("code"));
    // A wider scope than was granted is asked again.
    let wider = authorize_query("conf", Some(LOOPBACK), &[("scope", "read write")]);
    assert_eq!(
        b.get(&format!("/o/authorize/?{wider}")).await.status,
        StatusCode::OK
    );
    // Public with https redirect URIs: assured, remembered.
    let q = authorize_query("webapp", Some(WEB), &[]);
    b.allow(&q).await;
    assert_eq!(
        b.get(&format!("/o/authorize/?{q}")).await.status,
        StatusCode::FOUND
    );
    // Public with a loopback redirect URI: any app can claim it, asked every time.
    let q = authorize_query("native", Some(LOOPBACK), &[]);
    b.allow(&q).await;
    assert_eq!(
        b.get(&format!("/o/authorize/?{q}")).await.status,
        StatusCode::OK
    );
}

async fn public_client_exchanges_and_refreshes_with_rotation(h: &Harness) {
    let mut b = setup(h).await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let r = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "read");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let info = h.introspect(&r.str("access_token")).await;
    assert_eq!(
        (
            info["active"].as_bool(),
            info["client_id"].as_str(),
            info["username"].as_str()
        ),
        (Some(true), Some("native"), Some("ann@example.com"))
    );
    // Refresh with rotation, public client identified by client_id alone.
    let refresh = r.str("refresh_token");
    let rotated = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "native"),
                ("refresh_token", &refresh),
            ],
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.json);
    // Reuse of the rotated refresh token: the whole grant is revoked.
    let reuse = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "native"),
                ("refresh_token", &refresh),
            ],
        )
        .await;
    assert_eq!(reuse.str("error"), "invalid_grant");
    assert!(!h.active(&rotated.str("access_token")).await);
}

async fn confidential_client_must_authenticate(h: &Harness) {
    let mut b = setup(h).await;
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    // No secret: a confidential client cannot pass as public.
    let r = exchange(h, &code, "conf", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.str("error"), "invalid_client");
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let r = exchange(
        h,
        &code,
        "conf",
        Some("wrong"),
        &[("redirect_uri", LOOPBACK)],
    )
    .await;
    assert_eq!(r.str("error"), "invalid_client");
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let r = exchange(
        h,
        &code,
        "conf",
        Some("conf-secret"),
        &[("redirect_uri", LOOPBACK)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json["refresh_token"].is_string());
}

async fn replayed_code_revokes_its_tokens(h: &Harness) {
    let mut b = setup(h).await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let first = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.str("access_token");
    assert!(h.active(&access).await);
    let second = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);
    assert_eq!(second.str("error"), "invalid_grant");
    assert!(
        !h.active(&access).await,
        "tokens from a replayed code are revoked"
    );
    let refresh = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "native"),
                ("refresh_token", &first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refresh.str("error"), "invalid_grant");
}

/// Replay detection outlives the code's expiry and the purge: the redeemed code is
/// kept as a tombstone for as long as its tokens can live, so a replay after
/// `cleartokens` (and `purge_codes`) still revokes what it issued.
async fn late_replay_after_the_purge_still_revokes(h: &Harness) {
    use oauth_core::Clock as _;
    let mut b = setup(h).await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let first = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    let access = first.str("access_token");
    // Well past the code's 60 s, well within the tokens' lifetimes.
    h.clock.advance(600);
    let now = h.clock.unix();
    h.store
        .clear_expired(oauth_core::sea::Cleanup {
            now,
            token_retention: Duration::from_secs(0),
            revocation_retention: Duration::from_secs(3600),
            failure_reset: Duration::from_secs(3600),
            batch_size: 1000,
            batch_pause: Duration::ZERO,
        })
        .await
        .unwrap();
    h.store.purge_codes(now).await.unwrap();
    assert!(h.active(&access).await);
    let replay = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_invalid_grant(&replay);
    assert_eq!(
        replay.str("error_description"),
        "The code has already been used."
    );
    assert!(
        !h.active(&access).await,
        "a late replay revokes the tokens issued from the code"
    );
    let refresh = h
        .post_form(
            "/o/token/",
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "native"),
                ("refresh_token", &first.str("refresh_token")),
            ],
        )
        .await;
    assert_eq!(refresh.str("error"), "invalid_grant");
}

async fn wrong_verifier_expired_or_foreign_code_is_invalid_grant(h: &Harness) {
    let mut b = setup(h).await;
    let uri = ("redirect_uri", LOOPBACK);
    // Wrong verifier: nothing issued, and the code is spent.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let other = "x".repeat(43);
    let r = exchange(h, &code, "native", None, &[uri, ("code_verifier", &other)]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    let r = exchange(h, &code, "native", None, &[uri]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    // A verifier without RFC 7636 syntax is malformed.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let r = exchange(h, &code, "native", None, &[uri, ("code_verifier", "short")]).await;
    assert_eq!(r.str("error"), "invalid_request");
    let r = exchange(h, &code, "native", None, &[uri, ("code_verifier", "")]).await;
    assert_eq!(r.str("error"), "invalid_request");
    // Another client's code.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let r = exchange(h, &code, "first", None, &[uri]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    // Unknown code.
    let r = exchange(h, &"c".repeat(43), "native", None, &[uri]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    // Expired: the lifetime is 60 s by default, on the server's clock.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.clock.advance(61);
    let r = exchange(h, &code, "native", None, &[uri]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.clock.advance(59);
    let r = exchange(h, &code, "native", None, &[uri]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

async fn redirect_uri_at_the_token_endpoint(h: &Harness) {
    let mut b = setup(h).await;
    // Sent at /o/authorize/: required and equal.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let r = exchange(h, &code, "native", None, &[]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    let code = code_for(&mut b, "native", Some("http://127.0.0.1:4000/callback")).await;
    let r = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(r.str("error"), "invalid_grant");
    let code = code_for(&mut b, "native", Some("http://127.0.0.1:4000/callback")).await;
    let r = exchange(
        h,
        &code,
        "native",
        None,
        &[("redirect_uri", "http://127.0.0.1:4000/callback")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Not sent: may be omitted (OAuth 2.1), or repeated as registered.
    let code = code_for(&mut b, "native", None).await;
    assert_eq!(
        exchange(h, &code, "native", None, &[]).await.status,
        StatusCode::OK
    );
    let code = code_for(&mut b, "native", None).await;
    let r = exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await;
    assert_eq!(r.status, StatusCode::OK);
}

async fn concurrent_redemptions_one_wins(h: &Harness) {
    let mut b = setup(h).await;
    // In the store: of 16 racing redemptions exactly one wins.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let hash = oauth_core::TokenHash::of(&code);
    let now = oauth_core::Clock::unix(&h.clock);
    let store = &*h.store;
    let outcomes =
        futures_join_all((0..16).map(|_| GrantStore::redeem_code(store, &hash, now))).await;
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Redemption::Redeemed(_))))
        .count();
    let replays = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Redemption::Replayed(_))))
        .count();
    assert_eq!((won, replays), (1, 15), "{outcomes:?}");

    // Over HTTP: at most one exchange gets tokens, and since the others were
    // replays, whatever was issued from the code ends up revoked.
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let attempts = (0..16).map(|_| {
        let code = code.clone();
        async move { exchange(h, &code, "native", None, &[("redirect_uri", LOOPBACK)]).await }
    });
    let results = futures_join_all(attempts).await;
    let ok: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert!(ok.len() <= 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|r| r.status != StatusCode::OK)
            .all(|r| r.str("error") == "invalid_grant")
    );
    for r in ok {
        assert!(!h.active(&r.str("access_token")).await);
    }
}

/// Polls every future to completion concurrently (on this task).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(Option::unwrap));
    out
}

async fn login_page_checks_credentials_without_telling_which(h: &Harness) {
    h.user("ann@example.com").await;
    let inactive = h.user("off@example.com").await;
    set_active(h, inactive, false).await;
    let mut b = Browser::new(h);
    let form = b.get("/accounts/login/").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"name="username""#) && form.body.contains(r#"name="password""#));
    assert!(form.body.contains(r#"<label for="id_username">"#));
    let csrf = form.field("csrfmiddlewaretoken");
    let mut answers = vec![];
    for (user, pw) in [
        ("ann@example.com", "wrong-password-1"),
        ("nobody@example.com", PASSWORD),
        ("off@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let p = b
            .post(
                "/accounts/login/",
                &pairs(&[
                    ("csrfmiddlewaretoken", &csrf),
                    ("username", user),
                    ("password", pw),
                ]),
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{user}");
        assert!(
            p.body
                .contains("Please enter a correct email and password.")
        );
        answers.push(p.body.replace(user, "USER"));
    }
    // Identical pages whatever was wrong.
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    // Without the CSRF token: refused before any password check.
    let p = b
        .post(
            "/accounts/login/",
            &pairs(&[("username", "ann@example.com"), ("password", PASSWORD)]),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Throttling: the same limits as the password grant, per account and source;
    // a guesser waits while the owner signs in from elsewhere.
    let strict = Harness::new(
        common::Backend::Sqlite,
        oauth_core::ThrottleConfig {
            per_account_source: 3,
            ..common::lenient()
        },
    )
    .await
    .unwrap();
    strict.user("ann@example.com").await;
    let mut b = Browser::new(&strict);
    b.peer = Some(([203, 0, 113, 9], 40000).into());
    let csrf = b.get("/accounts/login/").await.field("csrfmiddlewaretoken");
    let attempt = |pw: &'static str| {
        pairs(&[
            ("csrfmiddlewaretoken", &csrf),
            ("username", "ann@example.com"),
            ("password", pw),
        ])
    };
    for _ in 0..3 {
        assert_eq!(
            b.post("/accounts/login/", &attempt("nope-nope-1"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let p = b.post("/accounts/login/", &attempt(PASSWORD)).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.body.contains("Too many failed attempts"), "{}", p.body);
    let mut owner = Browser::new(&strict);
    owner.peer = Some(([10, 0, 0, 2], 40000).into());
    owner.sign_in("ann@example.com").await;
    strict.cleanup().await;
}

async fn login_rotates_the_session_and_honours_only_local_next(h: &Harness) {
    h.user("ann@example.com").await;
    let mut b = Browser::new(h);
    let form = b.get("/accounts/login/").await;
    // No stored session before the sign-in (issue 19, hole 5): nothing to fixate.
    assert!(b.cookie.is_none(), "{:?}", b.cookie);
    let mut cookies = vec![];
    for (next, expected) in [
        ("/o/authorize/?client_id=x", "/o/authorize/?client_id=x"),
        ("//evil.example/", "/o/authorized_tokens/"),
        ("https://evil.example/", "/o/authorized_tokens/"),
        ("/\\evil.example", "/o/authorized_tokens/"),
    ] {
        let csrf = b.get("/accounts/login/").await.field("csrfmiddlewaretoken");
        let p = b
            .post(
                "/accounts/login/",
                &pairs(&[
                    ("csrfmiddlewaretoken", &csrf),
                    ("username", "ann@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ]),
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert_eq!(p.location(), expected);
        cookies.push(b.cookie.clone().unwrap());
    }
    // The session id changes at each sign-in (no fixation): the old cookie is
    // anonymous.
    let before = cookies[0].clone();
    assert!(cookies.windows(2).all(|w| w[0] != w[1]), "{cookies:?}");
    let mut attacker = Browser::new(h);
    attacker.cookie = Some(before);
    let p = attacker.get("/o/authorized_tokens/").await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(p.location().starts_with("/accounts/login/"));
    let _ = form;
}

async fn logout_ends_the_session(h: &Harness) {
    let mut b = setup(h).await;
    let page = b.get("/o/authorized_tokens/").await;
    assert_eq!(page.status, StatusCode::OK);
    let cookie = b.cookie.clone();
    let csrf = page.field("csrfmiddlewaretoken");
    // Only by POST with the token.
    assert_eq!(
        b.get("/accounts/logout/").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        b.post("/accounts/logout/", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    let p = b
        .post(
            "/accounts/logout/",
            &pairs(&[("csrfmiddlewaretoken", &csrf)]),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.get("/o/authorized_tokens/").await.status,
        StatusCode::FOUND
    );
    // The old cookie is dead on the server too.
    let mut replay = Browser::new(h);
    replay.cookie = cookie;
    assert_eq!(
        replay.get("/o/authorized_tokens/").await.status,
        StatusCode::FOUND
    );
}

async fn session_ends_after_its_absolute_lifetime(h: &Harness) {
    let mut b = setup(h).await;
    assert_eq!(b.get("/o/authorized_tokens/").await.status, StatusCode::OK);
    h.clock.advance(10 * 3600 - 1);
    assert_eq!(b.get("/o/authorized_tokens/").await.status, StatusCode::OK);
    h.clock.advance(1);
    let p = b.get("/o/authorized_tokens/").await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(p.location().starts_with("/accounts/login/"));
}

async fn deactivated_user_is_signed_out(h: &Harness) {
    let mut b = setup(h).await;
    let query = authorize_query("native", Some(LOOPBACK), &[]);
    assert_eq!(
        b.get(&format!("/o/authorize/?{query}")).await.status,
        StatusCode::OK
    );
    let ann = h
        .store
        .user_by_email(&oauth_core::Email::parse("ann@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    set_active(h, ann.id, false).await;
    let p = b.get(&format!("/o/authorize/?{query}")).await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(p.location().starts_with("/accounts/login/"));
}

/// A new password for ann@example.com, set through the API (asserted 200).
async fn change_anns_password(h: &Harness, new: &str) {
    let token = h
        .login("ann@example.com", PASSWORD)
        .await
        .str("access_token");
    let r = h
        .json(
            Method::PUT,
            "/users/password/",
            Some(&token),
            json!({"old_password": PASSWORD, "password": new, "password2": new}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

const NEW_PASSWORD: &str = "quartz-lantern-51";

async fn new_password_ends_browser_sessions(h: &Harness) {
    let mut b = setup(h).await;
    assert_eq!(b.get("/o/authorized_tokens/").await.status, StatusCode::OK);
    change_anns_password(h, NEW_PASSWORD).await;
    let p = b.get("/o/authorized_tokens/").await;
    assert_eq!(
        p.status,
        StatusCode::FOUND,
        "the old password's session ended"
    );
}

async fn authorized_tokens_page_lists_and_revokes(h: &Harness) {
    let mut b = setup(h).await;
    let empty = b.get("/o/authorized_tokens/").await;
    assert!(
        empty
            .body
            .contains("You have not authorized any application.")
    );
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let tokens = redeem(h, &code, "conf", Some("conf-secret")).await;
    let access = tokens.str("access_token");
    // Another user's grant to the same client must survive.
    h.user("bob@example.com").await;
    let mut bob = signed_in(h, "bob@example.com").await;
    let bob_code = code_for(&mut bob, "conf", Some(LOOPBACK)).await;
    let bob_tokens = redeem(h, &bob_code, "conf", Some("conf-secret")).await;

    let page = b.get("/o/authorized_tokens/").await;
    assert!(page.body.contains("App &#60;conf&#62;") || page.body.contains("App &lt;conf&gt;"));
    assert!(page.body.contains("<code>read</code> Read your data"));
    let csrf = page.field("csrfmiddlewaretoken");
    let p = b
        .post(
            "/o/authorized_tokens/revoke/",
            &pairs(&[("csrfmiddlewaretoken", &csrf), ("client_id", "conf")]),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!h.active(&access).await, "its tokens stop working");
    assert!(h.active(&bob_tokens.str("access_token")).await);
    let after = b.get("/o/authorized_tokens/").await;
    assert!(after.body.contains("was revoked"));
    assert!(
        after
            .body
            .contains("You have not authorized any application.")
    );
    // The consent is forgotten: the next authorization asks again.
    let q = authorize_query("conf", Some(LOOPBACK), &[]);
    assert_eq!(
        b.get(&format!("/o/authorize/?{q}")).await.status,
        StatusCode::OK
    );
    // Without the token, nothing happens.
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let again = redeem(h, &code, "conf", Some("conf-secret")).await;
    let p = b
        .post(
            "/o/authorized_tokens/revoke/",
            &pairs(&[("client_id", "conf")]),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(h.active(&again.str("access_token")).await);
}

async fn cors_only_for_registered_origins(h: &Harness) {
    register(h, "native", None, &[LOOPBACK], false).await;
    let preflight = |origin: &'static str, path: &'static str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let mut b = Browser::new(h);
    for path in [
        "/o/token/",
        "/o/revoke_token/",
        "/.well-known/oauth-authorization-server",
    ] {
        let ok = b.send(preflight("https://spa.example.com", path)).await;
        assert_eq!(
            ok.headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            Some("https://spa.example.com"),
            "{path}"
        );
        let no = b.send(preflight("https://evil.example", path)).await;
        assert!(
            no.headers.get("access-control-allow-origin").is_none(),
            "{path}"
        );
    }
    let authorize = b
        .send(preflight("https://spa.example.com", "/o/authorize/"))
        .await;
    assert!(
        authorize
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );
    // An actual token request from the registered origin is readable by the app.
    let r = b
        .send(
            Request::post("/o/token/")
                .header(header::ORIGIN, "https://spa.example.com")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=authorization_code&client_id=native&code=x&code_verifier="
                        .to_owned()
                        + VERIFIER,
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.headers.get("access-control-allow-origin").is_some());
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "The code is invalid or expired."})
    );
}

/// An origin one client registered opens the token and revocation endpoints only to
/// that client: client B's request from client A's origin gets no
/// `Access-Control-Allow-Origin`, so A's page cannot read B's answers. The
/// preflight (no credentials) and the public metadata answer any registered origin.
async fn cors_origin_only_for_the_client_that_registered_it(h: &Harness) {
    for (id, origin) in [
        ("a-app", "https://a.example"),
        ("b-app", "https://b.example"),
    ] {
        let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
        let mut client =
            common::client_record(&h.hasher, id, None, &grants, "read write", &[LOOPBACK]).await;
        client.allowed_origins = vec![origin.into()];
        h.store.register_client(client).await.unwrap();
    }
    let mut b = Browser::new(h);
    let post = |path: &'static str, origin: &'static str, body: &str| {
        Request::post(path)
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let acao = |r: &Page| {
        r.headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let token_by_b =
        format!("grant_type=authorization_code&client_id=b-app&code=x&code_verifier={VERIFIER}");
    let revoke_by_b = "client_id=b-app&token=whatever";
    // B's requests from B's origin: readable.
    let r = b
        .send(post("/o/token/", "https://b.example", &token_by_b))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(acao(&r).as_deref(), Some("https://b.example"));
    let r = b
        .send(post("/o/revoke_token/", "https://b.example", revoke_by_b))
        .await;
    assert_eq!(acao(&r).as_deref(), Some("https://b.example"));
    // B's requests from A's origin: not readable there.
    let r = b
        .send(post("/o/token/", "https://a.example", &token_by_b))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(acao(&r), None, "token by b-app from a.example");
    let r = b
        .send(post("/o/revoke_token/", "https://a.example", revoke_by_b))
        .await;
    assert_eq!(acao(&r), None, "revocation by b-app from a.example");
    // A request that authenticates no client: no CORS answer either.
    let r = b
        .send(post(
            "/o/token/",
            "https://a.example",
            "grant_type=authorization_code",
        ))
        .await;
    assert_eq!(acao(&r), None, "no client");
    // The preflight names no client: any registered origin passes it.
    for origin in ["https://a.example", "https://b.example"] {
        let r = b
            .send(
                Request::builder()
                    .method(Method::OPTIONS)
                    .uri("/o/token/")
                    .header(header::ORIGIN, origin)
                    .header("access-control-request-method", "POST")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(acao(&r).as_deref(), Some(origin));
    }
    // The metadata is public: any registered origin reads it.
    let r = b
        .send(
            Request::get("/.well-known/oauth-authorization-server")
                .header(header::ORIGIN, "https://a.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(acao(&r).as_deref(), Some("https://a.example"));
}

/// Every POST of the pages answers a redirect with 303 (RFC 9700 §4.12), also when
/// it sends a visitor whose session has no user — never signed in, or signed out
/// since the form was shown — to the login page.
async fn anonymous_posts_are_sent_to_login_with_303(h: &Harness) {
    register(h, "conf", Some("conf-secret"), &[LOOPBACK], false).await;
    let ann = h.user("ann@example.com").await;
    // A visitor without a user (and with the CSRF cookie of the login form).
    let mut anon = Browser::new(h);
    let csrf = anon
        .get("/accounts/login/")
        .await
        .field("csrfmiddlewaretoken");
    let form = pairs(&[("csrfmiddlewaretoken", &csrf), ("client_id", "conf")]);
    for path in [
        "/o/authorized_tokens/revoke/",
        "/o/authorized_tokens/revoke",
        "/o/applications/register/",
        "/o/applications/conf/update/",
        "/o/applications/conf/rotate/",
        "/o/applications/conf/delete/",
    ] {
        let p = anon.post(path, &form).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}: {}", p.body);
        assert!(p.location().starts_with("/accounts/login/?next="), "{path}");
    }
    // The other POSTs: sign-out answers 303 too; a consent without a user is a
    // 403 page, not a redirect.
    let p = anon.post("/accounts/logout/", &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let csrf = anon
        .get("/accounts/login/")
        .await
        .field("csrfmiddlewaretoken");
    let p = anon
        .post(
            "/o/authorize/",
            &pairs(&[("csrfmiddlewaretoken", &csrf), ("allow", "Authorize")]),
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Signed out since the page was shown (its absolute lifetime passed): the
    // revoke button sends the user to sign in again with a 303, and revokes nothing.
    let mut b = signed_in(h, "ann@example.com").await;
    code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let csrf = b
        .get("/o/authorized_tokens/")
        .await
        .field("csrfmiddlewaretoken");
    h.clock.advance(10 * 3600);
    let p = b
        .post(
            "/o/authorized_tokens/revoke/",
            &pairs(&[("csrfmiddlewaretoken", &csrf), ("client_id", "conf")]),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location(),
        "/accounts/login/?next=%2Fo%2Fauthorized_tokens%2F"
    );
    assert!(h.store.consent(ann, "conf").await.unwrap().is_some());
}

/// `/o/authorized_tokens/revoke` answers as `/o/authorized_tokens/revoke/` does
/// (the trailing slash is optional on every path of the flow).
async fn revoke_answers_without_trailing_slash(h: &Harness) {
    let mut b = setup(h).await;
    let code = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let tokens = redeem(h, &code, "conf", Some("conf-secret")).await;
    let p = post_form_of(
        &mut b,
        "/o/authorized_tokens",
        "/o/authorized_tokens/revoke",
        &[("client_id", "conf")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/o/authorized_tokens/");
    assert!(!h.active(&tokens.str("access_token")).await);
    assert!(
        b.get("/o/authorized_tokens/")
            .await
            .body
            .contains("was revoked")
    );
}

/// A code issued but not yet exchanged when the user withdraws the application
/// from /o/authorized_tokens/ can no longer be exchanged (within its lifetime it
/// otherwise could: tokens issued after the withdrawal). The user's codes for
/// other clients, and another user's for this one, still work.
async fn withdrawing_an_application_voids_its_unexchanged_codes(h: &Harness) {
    let mut b = setup(h).await;
    let pending = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let other_client = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.user("bob@example.com").await;
    let mut bob = signed_in(h, "bob@example.com").await;
    let bobs = code_for(&mut bob, "conf", Some(LOOPBACK)).await;

    let p = post_form_of(
        &mut b,
        "/o/authorized_tokens/",
        "/o/authorized_tokens/revoke/",
        &[("client_id", "conf")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);

    assert_invalid_grant(&redeem(h, &pending, "conf", Some("conf-secret")).await);
    assert_exchanged(&redeem(h, &other_client, "native", None).await);
    assert_exchanged(&redeem(h, &bobs, "conf", Some("conf-secret")).await);
    // Authorized again after the withdrawal: a new code works.
    let fresh = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    assert_eq!(
        redeem(h, &fresh, "conf", Some("conf-secret")).await.status,
        StatusCode::OK
    );
}

/// The admin console's per-application revoke on a user's page voids that user's
/// unexchanged codes for the application as the user's own revoke does.
async fn staff_withdrawal_voids_the_users_codes_for_that_client(h: &Harness) {
    let mut b = setup(h).await;
    let ann = ann_id(h).await;
    let pending = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let other_client = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let mut staff = staff_browser(h).await;
    let p = post_form_of(
        &mut staff,
        &format!("/admin/users/{ann}/"),
        &format!("/admin/users/{ann}/applications/revoke/"),
        &[("client_id", "conf")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let r = redeem(h, &pending, "conf", Some("conf-secret")).await;
    assert_eq!(r.str("error"), "invalid_grant");
    assert_exchanged(&redeem(h, &other_client, "native", None).await);
}

/// How many tokens the store holds for `client_id`, active or not.
async fn tokens_of_client(h: &Harness, client_id: &str) -> u64 {
    h.store
        .list_tokens(&TokenQuery {
            client_id: Some(client_id.into()),
            limit: 10,
            ..TokenQuery::default()
        })
        .await
        .unwrap()
        .total
}

/// The console's "revoke every token of this client" (/admin/tokens/) voids the
/// client's codes not yet exchanged, whoever authorized them: without it, a code
/// issued a moment before still bought working tokens. Other clients' codes, and
/// the client's codes issued afterwards, still work.
async fn console_client_revocation_voids_its_unexchanged_codes(h: &Harness) {
    let mut b = setup(h).await;
    let pending = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let other_client = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.user("bob@example.com").await;
    let mut bob = signed_in(h, "bob@example.com").await;
    let bobs = code_for(&mut bob, "conf", Some(LOOPBACK)).await;

    let mut staff = staff_browser(h).await;
    let p = post_form_of(
        &mut staff,
        "/admin/tokens/?client=conf",
        "/admin/tokens/revoke/",
        &[("client", "conf")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);

    for code in [pending, bobs] {
        let r = redeem(h, &code, "conf", Some("conf-secret")).await;
        assert_invalid_grant(&r);
        assert!(r.json.get("access_token").is_none());
    }
    assert_eq!(tokens_of_client(h, "conf").await, 0);
    let r = redeem(h, &other_client, "native", None).await;
    assert_exchanged(&r);
    assert!(h.active(&r.str("access_token")).await);
    // Authorized after the revocation: a new code works.
    let fresh = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    assert_exchanged(&redeem(h, &fresh, "conf", Some("conf-secret")).await);
}

/// A confidential client's secret rotated on the console voids its codes not yet
/// exchanged: the rotation cuts off whoever held the old secret, and a code issued
/// to them just before must not buy tokens with the new one either. Another
/// client's code still works, and so does a code issued after the rotation.
async fn secret_rotation_voids_the_clients_unexchanged_codes(h: &Harness) {
    let mut b = setup(h).await;
    let pending = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    let other_client = code_for(&mut b, "native", Some(LOOPBACK)).await;

    let mut staff = staff_browser(h).await;
    let p = post_form_of(
        &mut staff,
        "/admin/applications/conf/",
        "/admin/applications/conf/rotate/",
        &[],
    )
    .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let marker = "id=\"client_secret\">";
    let start = p.body.find(marker).expect("the new secret") + marker.len();
    let secret = p.body[start..start + p.body[start..].find('<').unwrap()].to_owned();
    assert_ne!(secret, "conf-secret");

    assert_invalid_grant(&redeem(h, &pending, "conf", Some(&secret)).await);
    assert_eq!(tokens_of_client(h, "conf").await, 0);
    assert_exchanged(&redeem(h, &other_client, "native", None).await);
    let fresh = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    assert_exchanged(&redeem(h, &fresh, "conf", Some(&secret)).await);
}

/// A confidential client made public on its change form loses its secret, so
/// its codes not yet exchanged are voided too: otherwise a code issued to the
/// confidential client could now be exchanged with no secret at all.
async fn type_change_voids_the_clients_unexchanged_codes(h: &Harness) {
    let mut b = setup(h).await;
    let pending = code_for(&mut b, "conf", Some(LOOPBACK)).await;

    let mut staff = staff_browser(h).await;
    let uris = format!("{LOOPBACK}\n{WEB}");
    let p = post_form_of(
        &mut staff,
        "/admin/applications/conf/",
        "/admin/applications/conf/",
        &[
            ("name", "App <conf>"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("grant_types", "refresh_token"),
            ("redirect_uris", &uris),
            ("scope", "read write"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(
        h.store
            .client("conf")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .is_none()
    );

    assert_invalid_grant(&redeem(h, &pending, "conf", None).await);
    assert_eq!(tokens_of_client(h, "conf").await, 0);
    let fresh = code_for(&mut b, "conf", Some(LOOPBACK)).await;
    assert_exchanged(&redeem(h, &fresh, "conf", None).await);
}

/// A code whose user was deactivated or deleted after it was issued is refused at
/// the exchange, whichever way the account changed (here straight in the store, as
/// a script or another service would: no page voided anything).
async fn codes_of_deactivated_or_deleted_users_are_refused(h: &Harness) {
    let mut b = setup(h).await;
    let ann = ann_id(h).await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    set_active(h, ann, false).await;
    assert_invalid_grant(&redeem(h, &code, "native", None).await);
    // Reactivated, the spent code stays spent.
    set_active(h, ann, true).await;
    let r = redeem(h, &code, "native", None).await;
    assert_eq!(r.str("error"), "invalid_grant");

    // Deactivated through the console: refused too.
    let mut b = signed_in(h, "ann@example.com").await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let mut staff = staff_browser(h).await;
    let p = post_form_of(
        &mut staff,
        &format!("/admin/users/{ann}/"),
        &format!("/admin/users/{ann}/"),
        &[],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(!h.store.user_by_id(ann).await.unwrap().unwrap().is_active);
    let r = redeem(h, &code, "native", None).await;
    assert_eq!(r.str("error"), "invalid_grant");

    // Deleted.
    let bob = h.user("bob@example.com").await;
    let mut b = signed_in(h, "bob@example.com").await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.store.delete_user(bob).await.unwrap();
    assert_invalid_grant(&redeem(h, &code, "native", None).await);
}

/// A new password — through the API or set by staff — voids the user's codes not
/// yet exchanged, as it ends their sessions and other tokens.
async fn new_password_voids_unexchanged_codes(h: &Harness) {
    let mut b = setup(h).await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let new = NEW_PASSWORD;
    change_anns_password(h, new).await;
    assert_invalid_grant(&redeem(h, &code, "native", None).await);

    // Set by staff on the console.
    let bob = h.user("bob@example.com").await;
    let mut b = signed_in(h, "bob@example.com").await;
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    let mut staff = staff_browser(h).await;
    let p = post_form_of(
        &mut staff,
        &format!("/admin/users/{bob}/"),
        &format!("/admin/users/{bob}/password/"),
        &[("password", new), ("password2", new)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let r = redeem(h, &code, "native", None).await;
    assert_eq!(r.str("error"), "invalid_grant");
}

/// A public client whose redirect URI is a private-use scheme (RFC 8252 §7.1) is
/// asked for consent every time: any app on the device can claim the scheme, so a
/// remembered consent proves nothing about who is asking (OAuth 2.1 §7.4.2,
/// RFC 8252 §8.6). The consent is remembered all the same (the page lists it).
async fn custom_scheme_public_client_is_asked_every_time(h: &Harness) {
    const APP: &str = "com.example.app:/cb";
    let mut b = setup(h).await;
    register(h, "mobile", None, &[APP], false).await;
    let query = authorize_query("mobile", Some(APP), &[]);
    for _ in 0..2 {
        let p = b.allow(&query).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER);
        assert!(
            p.location().starts_with(&format!("{APP}?code=")),
            "{}",
            p.location()
        );
        let q = p.redirect_params();
        let r = exchange(h, &q["code"], "mobile", None, &[("redirect_uri", APP)]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    let ann = ann_id(h).await;
    assert!(h.store.consent(ann, "mobile").await.unwrap().is_some());
    let again = b.get(&format!("/o/authorize/?{query}")).await;
    assert_eq!(again.status, StatusCode::OK, "the consent page, not a code");
    assert!(again.body.contains(r#"name="allow""#));
}

/// RFC 8252 §7.3 for IPv6: a registered `http://[::1]/…` accepts the same URI on
/// any port (the app picks a free one at run time), and the code is bound to the
/// port it was sent to; the path must still match exactly.
async fn ipv6_loopback_redirect_uris_match_any_port(h: &Harness) {
    const REGISTERED: &str = "http://[::1]/callback";
    let mut b = setup(h).await;
    register(h, "native6", None, &[REGISTERED], false).await;
    for uri in [
        "http://[::1]:53123/callback",
        "http://[::1]:8/callback",
        REGISTERED,
    ] {
        let p = b.allow(&authorize_query("native6", Some(uri), &[])).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{uri}: {}", p.body);
        assert!(
            p.location().starts_with(&format!("{uri}?code=")),
            "{uri}: {}",
            p.location()
        );
        let code = p.redirect_params()["code"].clone();
        let r = exchange(h, &code, "native6", None, &[("redirect_uri", uri)]).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.json);
    }
    // Another port at the token endpoint than at /o/authorize/: refused.
    let p = b
        .allow(&authorize_query(
            "native6",
            Some("http://[::1]:53123/callback"),
            &[],
        ))
        .await;
    let code = p.redirect_params()["code"].clone();
    let r = exchange(
        h,
        &code,
        "native6",
        None,
        &[("redirect_uri", "http://[::1]:53124/callback")],
    )
    .await;
    assert_eq!(r.str("error"), "invalid_grant");
    // Only the port is free: another path, another loopback address, or the IPv4
    // loopback for an IPv6 registration is the error page.
    for uri in [
        "http://[::1]:53123/other",
        "http://[::1]:53123/callback/",
        "http://[::2]:53123/callback",
        "http://127.0.0.1:53123/callback",
        "https://[::1]:53123/callback",
    ] {
        assert_error_page(
            &b.get(&format!(
                "/o/authorize/?{}",
                authorize_query("native6", Some(uri), &[])
            ))
            .await,
        );
    }
}

/// A code lifetime other than the default (`AuthServer::code_ttl`, here 5 s) is
/// the one enforced, on the server's clock: a code 4 s old is exchanged, one 6 s
/// old is refused.
async fn configured_code_lifetime_is_enforced(backend: Backend) {
    let Some(h) = Harness::build(backend, common::lenient(), |s| {
        s.code_ttl(Duration::from_secs(5))
    })
    .await
    else {
        return;
    };
    let mut b = setup(&h).await;
    let uri = ("redirect_uri", LOOPBACK);
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.clock.advance(6);
    let r = exchange(&h, &code, "native", None, &[uri]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.str("error"), "invalid_grant");
    let code = code_for(&mut b, "native", Some(LOOPBACK)).await;
    h.clock.advance(4);
    let r = exchange(&h, &code, "native", None, &[uri]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    h.cleanup().await;
}

/// The rows of the browser session table.
async fn session_rows(h: &Harness) -> i64 {
    use oauth_core::sea::sea_orm::{self, ConnectionTrait as _};
    let conn = h.store.connection();
    let row = conn
        .query_one_raw(sea_orm::Statement::from_string(
            conn.get_database_backend(),
            "SELECT COUNT(*) AS n FROM oauth_sessions",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// Issue 19, hole 5: a cookie-less GET of a sign-in page stores nothing. 10,000
/// GETs of `/accounts/login/`, 1,000 of an authorization request (sent on to sign
/// in, the request in `next`) and 100 of each other page that sends a visitor to
/// sign in add no session row; a sign-in then adds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_less_sign_in_pages_store_no_session() {
    let h = Harness::new(Backend::Sqlite, common::lenient())
        .await
        .unwrap();
    register(&h, "native", None, &[LOOPBACK], false).await;
    h.user("ann@example.com").await;
    let before = session_rows(&h).await;
    let authorize = format!(
        "/o/authorize/?{}",
        authorize_query("native", Some(LOOPBACK), &[])
    );
    let started = std::time::Instant::now();
    let mut session_cookies = 0;
    for n in 0..11_000 {
        let mut b = Browser::new(&h);
        if n < 10_000 {
            let p = b.get("/accounts/login/").await;
            assert_eq!(p.status, StatusCode::OK);
        } else {
            let p = b.get(&authorize).await;
            assert_eq!(p.status, StatusCode::FOUND);
            assert!(p.location().starts_with("/accounts/login/?next="));
        }
        session_cookies += usize::from(b.cookie.is_some());
    }
    // The other pages that send a visitor to sign in.
    for path in [
        "/o/authorized_tokens/",
        "/o/applications/",
        "/o/applications/register/",
        "/admin/",
        "/admin/users/",
    ] {
        for _ in 0..100 {
            let mut b = Browser::new(&h);
            let p = b.get(path).await;
            assert!(p.status.is_redirection(), "{path}: {}", p.status);
            session_cookies += usize::from(b.cookie.is_some());
        }
    }
    let after = session_rows(&h).await;
    eprintln!(
        "oauth_sessions: {before} rows before, {after} after 10,000 GETs of /accounts/login/, \
         1,000 of /o/authorize/ and 500 of other pages without a cookie ({:?})",
        started.elapsed()
    );
    assert_eq!(after, before);
    assert_eq!(session_cookies, 0, "session cookies set");

    // The pending request went in `next`: sign in from the login page it names,
    // and come back to the consent page. The sign-in makes the one session.
    let mut b = Browser::new(&h);
    let to_login = b.get(&authorize).await;
    let form = b.get(to_login.location()).await;
    let done = b
        .post(
            "/accounts/login/",
            &pairs(&[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("next", &form.field("next")),
                ("username", "ann@example.com"),
                ("password", PASSWORD),
            ]),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), authorize);
    assert_eq!(b.get(&authorize).await.status, StatusCode::OK);
    assert_eq!(session_rows(&h).await, before + 1);
    h.cleanup().await;
}

/// The login form of a visitor without a session carries the token of a signed
/// double-submit cookie (`__Host-`, Secure, HttpOnly, SameSite=Lax, Path=/); its
/// POST is refused without the cookie, with a wrong token, with a forged or
/// another visitor's cookie; a signed-in session accepts only its own token.
async fn anonymous_csrf_cookie_is_signed_bound_and_checked(h: &Harness) {
    h.user("ann@example.com").await;
    let mut b = Browser::new(h);
    let form = b.get("/accounts/login/").await;
    let set: Vec<_> = form
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 1, "only the CSRF cookie: {set:?}");
    assert!(set[0].starts_with("__Host-oauth_csrf="), "{set:?}");
    let attrs = cookie_attributes(&set[0]);
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr}: {set:?}");
    }
    assert!(!set[0].contains("Domain"), "{set:?}");
    let csrf = form.field("csrfmiddlewaretoken");
    let cookie = b.csrf_cookie.clone().unwrap();
    // The same cookie serves the next form: no new cookie, the same token.
    let again = b.get("/accounts/login/").await;
    assert!(again.headers.get(header::SET_COOKIE).is_none());
    assert_eq!(again.field("csrfmiddlewaretoken"), csrf);

    let login = |token: &str| {
        pairs(&[
            ("csrfmiddlewaretoken", token),
            ("username", "ann@example.com"),
            ("password", PASSWORD),
        ])
    };
    let mut other = Browser::new(h);
    let other_token = other
        .get("/accounts/login/")
        .await
        .field("csrfmiddlewaretoken");
    let (random, _) = csrf.split_once('.').unwrap();
    let forged = format!("{random}.{}", "A".repeat(43));
    for (case, cookie, token) in [
        ("no cookie", None, csrf.clone()),
        ("no token", Some(cookie.clone()), String::new()),
        ("wrong token", Some(cookie.clone()), "x".repeat(87)),
        ("another visitor's token", Some(cookie.clone()), other_token),
        (
            "forged cookie",
            Some(format!("__Host-oauth_csrf={forged}")),
            forged.clone(),
        ),
    ] {
        let mut attacker = Browser::new(h);
        attacker.csrf_cookie = cookie;
        let p = attacker.post("/accounts/login/", &login(&token)).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{case}");
        assert!(attacker.cookie.is_none(), "{case}: signed in");
    }
    let p = b.post("/accounts/login/", &login(&csrf)).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(b.cookie.is_some());

    // Signed in, the anonymous cookie's token opens nothing: only the session's.
    let page = b.get("/o/authorized_tokens/").await;
    let session_token = page.field("csrfmiddlewaretoken");
    assert_ne!(session_token, csrf);
    assert_eq!(
        b.post(
            "/accounts/logout/",
            &pairs(&[("csrfmiddlewaretoken", &csrf)])
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/o/authorized_tokens/").await.status, StatusCode::OK);
    let out = b
        .post(
            "/accounts/logout/",
            &pairs(&[("csrfmiddlewaretoken", &session_token)]),
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
}
