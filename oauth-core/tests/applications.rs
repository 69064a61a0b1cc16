//! Applications: the console's `/admin/applications/` and DOT's self-service
//! `/o/applications/` — who may see each page and send each form, the CSRF check,
//! every validation rule of the registration form, escaping, the secret shown
//! once, the seed's client registered through the form, and rotation and deletion
//! taking effect at once on `/o/token/` and `/o/introspect/`. Each scenario runs
//! on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::browser::{Browser, ISSUER, Page, pairs};
use common::{Harness, PASSWORD};
use oauth_core::{AdminLog, ClientKind, ClientRegistry, GrantType, UserStore as _};

scenarios!(
    admin_pages_are_for_staff_only,
    self_service_pages_are_for_their_owner_only,
    every_form_needs_its_csrf_token,
    each_validation_error_keeps_what_was_typed_but_the_secret,
    names_are_shown_as_text,
    generated_secret_is_shown_once_and_works,
    the_seed_client_registered_through_the_console_gets_tokens,
    self_service_registers_updates_and_deletes_its_own,
    changes_take_effect_at_once,
    rotation_refuses_the_old_secret_at_once,
    self_service_rotation_refuses_the_old_secret_at_once,
    deletion_revokes_tokens_and_removes_the_client,
    no_store_holds_a_generated_secret,
    a_form_sent_signed_out_comes_back_to_its_page,
    privileged_scopes_are_marked_and_never_given_by_default,
);

const STAFF: &str = "boss@example.com";
const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";

/// A browser signed in as a new staff user.
async fn admin(h: &Harness) -> Browser<'_> {
    h.staff_user(STAFF).await;
    let mut b = Browser::new(h);
    b.sign_in(STAFF).await;
    b
}

/// A browser signed in as a new, unprivileged user.
async fn user<'h>(h: &'h Harness, email: &str) -> (Browser<'h>, i64) {
    let id = h.user(email).await;
    let mut b = Browser::new(h);
    b.sign_in(email).await;
    (b, id)
}

/// The page's CSRF token, from a page that carries one.
async fn csrf(b: &mut Browser<'_>, page: &str) -> String {
    let p = b.get(page).await;
    assert_eq!(p.status, StatusCode::OK, "{page}: {}", p.body);
    p.field("csrfmiddlewaretoken")
}

/// POSTs `form` with the CSRF token of `page`.
async fn submit(b: &mut Browser<'_>, page: &str, to: &str, form: &[(&str, &str)]) -> Page {
    let token = csrf(b, page).await;
    let mut all = pairs(&[("csrfmiddlewaretoken", &token)]);
    all.extend(pairs(form));
    b.post(to, &all).await
}

/// The seed's own client, as the issue asks to register it.
const SEED: [(&str, &str); 6] = [
    ("name", "resource-server"),
    ("client_id", "rs-id"),
    ("client_secret", "rs-secret"),
    ("client_type", "confidential"),
    ("grant_types", "password"),
    ("scope", "read write introspection"),
];

/// The secret a page shows once, if any.
fn shown_secret(p: &Page) -> Option<String> {
    let marker = "id=\"client_secret\">";
    let start = p.body.find(marker)? + marker.len();
    let end = start + p.body[start..].find('<')?;
    Some(p.body[start..end].to_owned())
}

/// A password grant token through `client`.
async fn token_via(h: &Harness, client: (&str, &str), email: &str) -> String {
    let r = h
        .post_form(
            "/o/token/",
            Some(client),
            &[
                ("grant_type", "password"),
                ("username", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    r.str("access_token")
}

/// The status of a password grant through `client`.
async fn token_status(h: &Harness, client: (&str, &str), email: &str) -> StatusCode {
    h.post_form(
        "/o/token/",
        Some(client),
        &[
            ("grant_type", "password"),
            ("username", email),
            ("password", PASSWORD),
        ],
    )
    .await
    .status
}

/// A client-credentials token of `client`.
async fn cc_token(h: &Harness, client: (&str, &str)) -> common::Reply {
    h.post_form(
        "/o/token/",
        Some(client),
        &[("grant_type", "client_credentials")],
    )
    .await
}

/// The status of an introspection request authenticated as `client`.
async fn introspect_status(h: &Harness, client: (&str, &str), token: &str) -> StatusCode {
    h.post_form("/o/introspect/", Some(client), &[("token", token)])
        .await
        .status
}

fn assert_login(p: &Page, path: &str) {
    assert_eq!(p.status, StatusCode::FOUND, "{path}: {}", p.body);
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    assert_eq!(
        p.location(),
        format!("/accounts/login/?next={next}"),
        "{path}"
    );
}

async fn admin_pages_are_for_staff_only(h: &Harness) {
    let gets = [
        "/admin/applications/",
        "/admin/applications/?q=rs",
        "/admin/applications/add/",
        "/admin/applications/rs-id/",
        "/admin/applications/rs-id/delete/",
    ];
    let mut anon = Browser::new(h);
    for path in gets {
        let p = anon.get(path).await;
        assert_login(&p, path);
    }
    let (mut ann, _) = user(h, ANN).await;
    let token = csrf(&mut ann, "/o/authorized_tokens/").await;
    for path in gets {
        let p = ann.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(p.body.contains("Staff only"), "{path}");
    }
    for path in [
        "/admin/applications/add/",
        "/admin/applications/rs-id/",
        "/admin/applications/rs-id/rotate/",
        "/admin/applications/rs-id/delete/",
    ] {
        let form = pairs(&[
            ("csrfmiddlewaretoken", &token),
            ("name", "x"),
            ("client_type", "public"),
            ("grant_types", "password"),
        ]);
        let p = ann.post(path, &form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing changed: rs-id still works with its secret.
    assert!(h.store.client("rs-id").await.unwrap().is_some());
    assert_eq!(
        token_status(h, ("rs-id", "rs-secret"), ANN).await,
        StatusCode::OK
    );

    let mut staff = admin(h).await;
    for path in gets {
        let p = staff.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert_eq!(p.headers["cache-control"], "no-store", "{path}");
        assert_eq!(p.headers["x-frame-options"], "DENY", "{path}");
    }
    let list = staff.get("/admin/applications/").await;
    for id in ["rs-id", "other", "svc", "spa"] {
        assert!(
            list.body.contains(&format!("/admin/applications/{id}/")),
            "{id}"
        );
    }
    let found = staff.get("/admin/applications/?q=SV").await;
    assert!(found.body.contains("/admin/applications/svc/"));
    assert!(!found.body.contains("/admin/applications/rs-id/"));
    let missing = staff.get("/admin/applications/nope/").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Registers an application through the self-service form; its client id.
/// A registration without a generated secret redirects to the client's page.
async fn register_own(b: &mut Browser<'_>, form: &[(&str, &str)]) -> String {
    let p = submit(
        b,
        "/o/applications/register/",
        "/o/applications/register/",
        form,
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let loc = p.location().to_owned();
    let id = loc
        .strip_prefix("/o/applications/")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{loc}"));
    id.to_owned()
}

/// The client id of a client's page, from its "Rotate secret" form, whose
/// action is `{prefix}{id}/rotate/`.
fn page_client_id(p: &Page, prefix: &str) -> String {
    let marker = format!("action=\"{prefix}");
    let end = p
        .body
        .find("/rotate/\"")
        .unwrap_or_else(|| panic!("{}", p.body));
    let start = p.body[..end].rfind(&marker).unwrap() + marker.len();
    p.body[start..end].to_owned()
}

/// Asserts that `p` is the page answering a POST that generated a secret: the
/// client's page itself (no redirect, so the secret never waits in the
/// session), not cached; the secret.
fn secret_answer(p: &Page) -> String {
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.headers.get("location").is_none());
    assert_eq!(p.headers["cache-control"], "no-store");
    shown_secret(p).expect("the new secret, in the POST's answer")
}

async fn self_service_pages_are_for_their_owner_only(h: &Harness) {
    let mut anon = Browser::new(h);
    for path in [
        "/o/applications/",
        "/o/applications/register/",
        "/o/applications/rs-id/",
        "/o/applications/rs-id/update/",
        "/o/applications/rs-id/delete/",
    ] {
        let p = anon.get(path).await;
        assert_login(&p, path);
    }
    let (mut bob, bob_id) = user(h, BOB).await;
    let bobs = register_own(
        &mut bob,
        &[
            ("name", "Bob's app"),
            ("client_id", "bobs-app"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "https://bob.example/cb"),
        ],
    )
    .await;
    assert_eq!(bobs, "bobs-app");
    let stored = h.store.client("bobs-app").await.unwrap().unwrap();
    assert_eq!(stored.owner, Some(bob_id));

    let (mut ann, _) = user(h, ANN).await;
    let mine = ann.get("/o/applications/").await;
    assert_eq!(mine.status, StatusCode::OK);
    assert!(!mine.body.contains("bobs-app"));
    assert!(
        mine.body
            .contains("You have not registered any application.")
    );
    // Another user's client, a server client (no owner) and an unknown id all
    // answer 404 alike.
    for id in ["bobs-app", "rs-id", "no-such-app"] {
        for path in [
            format!("/o/applications/{id}/"),
            format!("/o/applications/{id}/update/"),
            format!("/o/applications/{id}/delete/"),
        ] {
            let p = ann.get(&path).await;
            assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
        }
        for path in [
            format!("/o/applications/{id}/update/"),
            format!("/o/applications/{id}/rotate/"),
            format!("/o/applications/{id}/delete/"),
        ] {
            let p = submit(
                &mut ann,
                "/o/applications/",
                &path,
                &[
                    ("name", "taken over"),
                    ("client_type", "public"),
                    ("grant_types", "password"),
                ],
            )
            .await;
            assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let still = h.store.client("bobs-app").await.unwrap().unwrap();
    assert_eq!(still.name, "Bob's app");
    let theirs = bob.get("/o/applications/").await;
    assert!(theirs.body.contains("/o/applications/bobs-app/"));
}

/// Every POST form of both page families — the console's add, change, rotate
/// and delete, and the self-service register, update, rotate and delete — is
/// refused without the session's CSRF token, with a wrong one, with another
/// session's, and with the right one sent from another site; nothing changes.
async fn every_form_needs_its_csrf_token(h: &Harness) {
    let mut staff = admin(h).await;
    // `other` is the staff user's own application too, so that the self-service
    // forms reach their CSRF check on a client its sender may change.
    let boss = oauth_core::Email::parse(STAFF).unwrap();
    let boss = h.store.user_by_email(&boss).await.unwrap().unwrap().id;
    let mut other = h.store.client("other").await.unwrap().unwrap();
    other.owner = Some(boss);
    h.store.update_client(other).await.unwrap();
    let token = csrf(&mut staff, "/admin/applications/add/").await;
    let mut second = Browser::new(h);
    second.sign_in(STAFF).await;
    let foreign = csrf(&mut second, "/admin/applications/add/").await;
    assert_ne!(foreign, token);
    let form = |with: Option<&str>| {
        let mut f = pairs(&[
            ("name", "x"),
            ("client_type", "public"),
            ("grant_types", "password"),
        ]);
        if let Some(t) = with {
            f.push(("csrfmiddlewaretoken".into(), t.into()));
        }
        f
    };
    for path in [
        "/admin/applications/add/",
        "/admin/applications/other/",
        "/admin/applications/other/rotate/",
        "/admin/applications/other/delete/",
        "/o/applications/register/",
        "/o/applications/other/update/",
        "/o/applications/other/rotate/",
        "/o/applications/other/delete/",
    ] {
        let p = staff.post(path, &form(None)).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(p.body.contains("Form expired"), "{path}");
        let p = staff.post(path, &form(Some("wrong"))).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        // Another session's token is no better.
        let p = staff.post(path, &form(Some(&foreign))).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        // The right token from another site's page.
        let p = staff
            .post_with(
                path,
                &form(Some(&token)),
                &[("origin", "https://evil.example")],
            )
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    let other = h.store.client("other").await.unwrap().unwrap();
    assert_eq!(other.name, "other");
    assert_eq!(
        other.grant_types,
        [GrantType::Password, GrantType::RefreshToken]
    );
    assert_eq!(
        token_status(h, ("other", "other-secret"), STAFF).await,
        StatusCode::OK
    );
    assert!(h.store.client("x").await.unwrap().is_none());
    assert_eq!(h.store.entries(0, 10).await.unwrap().items.len(), 0);
    // The forms do work with the right token: the table is not refusing for
    // another reason (here, an owner's change of their own application).
    let p = submit(
        &mut staff,
        "/o/applications/other/update/",
        "/o/applications/other/update/",
        &[
            ("name", "other, renamed"),
            ("client_type", "confidential"),
            ("grant_types", "password"),
            ("grant_types", "refresh_token"),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let other = h.store.client("other").await.unwrap().unwrap();
    assert_eq!(other.name, "other, renamed");
}

async fn each_validation_error_keeps_what_was_typed_but_the_secret(h: &Harness) {
    let mut staff = admin(h).await;
    let base = [
        ("name", "Typed name"),
        ("client_id", "typed-id"),
        ("client_secret", "typed-secret-xyz"),
        ("client_type", "confidential"),
        ("grant_types", "authorization_code"),
        ("redirect_uris", "https://app.example.com/cb"),
        ("scope", "read"),
    ];
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut f: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .copied()
            .collect();
        f.extend(changes.iter().filter(|(_, v)| !v.is_empty()));
        f
    };
    let cases: [(&[(&str, &str)], &str); 9] = [
        (
            &[("redirect_uris", "javascript:alert(1)")],
            "Use https, http on 127.0.0.1",
        ),
        (
            &[("redirect_uris", "http://evil.example/cb")],
            "Plain http is allowed only for the loopback",
        ),
        (
            &[("redirect_uris", "https://app.example.com/cb#frag")],
            "must not contain a fragment",
        ),
        (&[("scope", "read admin")], "Unknown scope “admin”"),
        (
            &[("client_id", "rs-id")],
            "An application with this client id already exists.",
        ),
        (
            &[("redirect_uris", "")],
            "The authorization code grant needs at least one redirect URI.",
        ),
        (
            &[("client_type", "public")],
            "A public client has no secret: leave this empty.",
        ),
        (&[("client_id", "bad id!")], "Use letters, digits"),
        (
            &[("allowed_origins", "https://app.example.com/path")],
            "an origin is scheme://host[:port]",
        ),
    ];
    for (changes, message) in cases {
        let form = with(changes);
        for (page, to) in [
            ("/admin/applications/add/", "/admin/applications/add/"),
            ("/o/applications/register/", "/o/applications/register/"),
        ] {
            let p = submit(&mut staff, page, to, &form).await;
            assert_eq!(p.status, StatusCode::BAD_REQUEST, "{to} {changes:?}");
            assert!(
                p.body.contains(message),
                "{to} {changes:?}: {message} not in {}",
                p.body
            );
            assert!(p.body.contains("aria-invalid=\"true\""), "{changes:?}");
            assert!(p.body.contains("value=\"Typed name\""), "{changes:?}");
            assert!(!p.body.contains("typed-secret-xyz"), "{changes:?}");
        }
    }
    // No grant at all.
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &[("name", "x"), ("client_type", "public")],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("Tick at least one grant type."));
    assert!(h.store.client("typed-id").await.unwrap().is_none());
    // The change form checks the same rules and keeps the client as it was.
    let p = submit(
        &mut staff,
        "/admin/applications/other/",
        "/admin/applications/other/",
        &[
            ("name", "other"),
            ("client_type", "confidential"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "http://evil.example/cb"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(
        p.body
            .contains("Plain http is allowed only for the loopback")
    );
    assert!(p.body.contains("http://evil.example/cb"));
    let other = h.store.client("other").await.unwrap().unwrap();
    assert_eq!(
        other.grant_types,
        [GrantType::Password, GrantType::RefreshToken]
    );
}

async fn names_are_shown_as_text(h: &Harness) {
    const EVIL: &str = "<script>alert(1)</script>";
    let mut staff = admin(h).await;
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &[
            ("name", EVIL),
            ("client_id", "evil"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "https://app.example.com/cb?a=<b>&c=\"d\""),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    h.store
        .update_client({
            let mut c = h.store.client("evil").await.unwrap().unwrap();
            c.owner = Some(h.user(ANN).await);
            c
        })
        .await
        .unwrap();
    let mut ann = Browser::new(h);
    ann.sign_in(ANN).await;
    let check = |path: &str, p: Page| {
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert!(!p.body.contains("<script>"), "{path}: {}", p.body);
        assert!(!p.body.contains("<b>"), "{path}");
        assert!(p.body.contains("alert(1)"), "{path}");
    };
    for path in [
        "/admin/applications/",
        "/admin/applications/evil/",
        "/admin/applications/evil/delete/",
    ] {
        check(path, staff.get(path).await);
    }
    for path in [
        "/o/applications/",
        "/o/applications/evil/",
        "/o/applications/evil/update/",
        "/o/applications/evil/delete/",
    ] {
        check(path, ann.get(path).await);
    }
}

async fn generated_secret_is_shown_once_and_works(h: &Harness) {
    let mut staff = admin(h).await;
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &[
            ("name", "Batch job"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    let secret = secret_answer(&p);
    assert!(p.body.contains("was added"));
    assert!(secret.len() >= 43, "{secret}");
    let client_id = page_client_id(&p, "/admin/applications/");
    assert_eq!(client_id.len(), 32, "{client_id}");
    let page = format!("/admin/applications/{client_id}/");
    let again = staff.get(&page).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(shown_secret(&again), None);
    assert!(!again.body.contains(&secret));
    // Only a hash is stored; the log never holds the secret.
    let stored = h.store.client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.kind, ClientKind::Confidential);
    assert!(!stored.secret_hash.as_deref().unwrap().contains(&secret));
    assert_eq!(stored.owner, None);
    let log = h.store.entries(0, 50).await.unwrap();
    let created = log
        .items
        .iter()
        .find(|e| e.entry.object_id == client_id)
        .expect("a log entry");
    assert_eq!(created.entry.action, "create");
    assert!(log.items.iter().all(|e| !e.entry.detail.contains(&secret)));

    let r = h
        .post_form(
            "/o/token/",
            Some((&client_id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(r.str("scope"), "read");

    // The self-service form shows its generated secret once too.
    let (mut ann, ann_id) = user(h, ANN).await;
    let first = submit(
        &mut ann,
        "/o/applications/register/",
        "/o/applications/register/",
        &[
            ("name", "Ann's tool"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    let secret = secret_answer(&first);
    assert!(first.body.contains("was registered"));
    let id = page_client_id(&first, "/o/applications/");
    let again = ann.get(&format!("/o/applications/{id}/")).await;
    assert_eq!(shown_secret(&again), None);
    assert_eq!(
        h.store.client(&id).await.unwrap().unwrap().owner,
        Some(ann_id)
    );
    let token = cc_token(h, (&id, &secret)).await.str("access_token");
    assert!(h.active(&token).await);
    // An application a user registered may not read other users' tokens, nor be
    // given their passwords.
    let r = h
        .post_form("/o/introspect/", Some((&id, &secret)), &[("token", &token)])
        .await;
    assert_eq!(
        (r.status, r.str("error")),
        (StatusCode::BAD_REQUEST, "unauthorized_client".to_owned())
    );
    for (field, value, error) in [
        (
            "grant_types",
            "password",
            "Only staff may allow the password grant",
        ),
        (
            "scope",
            "read introspection",
            "“introspection” is a privileged scope: only staff can give it to an application.",
        ),
        ("scope", "admin", "Unknown scope “admin”"),
    ] {
        let mut form = vec![
            ("name", "Sneaky"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let p = submit(
            &mut ann,
            "/o/applications/register/",
            "/o/applications/register/",
            &form,
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{field}={value}");
        assert!(p.body.contains(error), "{field}={value}: {}", p.body);
    }
}

async fn the_seed_client_registered_through_the_console_gets_tokens(h: &Harness) {
    // A fresh server without the seed's client.
    for id in ["rs-id", "other", "svc", "spa"] {
        h.store.delete_client(id).await.unwrap();
    }
    let mut staff = admin(h).await;
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &SEED,
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/admin/applications/rs-id/");
    let page = staff.get("/admin/applications/rs-id/").await;
    // A typed secret is known to its author: it is not shown back.
    assert_eq!(shown_secret(&page), None);
    assert!(!page.body.contains("rs-secret"));
    let c = h.store.client("rs-id").await.unwrap().unwrap();
    assert_eq!(c.name, "resource-server");
    assert_eq!(c.kind, ClientKind::Confidential);
    assert_eq!(c.grant_types, [GrantType::Password]);
    assert_eq!(c.allowed_scope.to_string(), "read write introspection");
    assert!(!c.skip_authorization);

    h.user(ANN).await;
    let r = h.login(ANN, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    // A user's token gets `introspection` only when it is asked for by name.
    assert_eq!(r.str("scope"), "read write");
    assert!(h.active(&r.str("access_token")).await);
}

async fn self_service_registers_updates_and_deletes_its_own(h: &Harness) {
    let (mut ann, ann_id) = user(h, ANN).await;
    let blank = ann.get("/o/applications/register/").await;
    assert_eq!(blank.status, StatusCode::OK);
    // Owners do not get the first-party switch, and posting it is ignored.
    assert!(!blank.body.contains("skip_authorization"));
    let id = register_own(
        &mut ann,
        &[
            ("name", "Ann's SPA"),
            ("client_id", "anns-spa"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("grant_types", "refresh_token"),
            (
                "redirect_uris",
                "https://ann.example/cb\r\nhttp://127.0.0.1/cb\r\n",
            ),
            ("allowed_origins", "https://ann.example"),
            ("scope", "read"),
            ("skip_authorization", "on"),
        ],
    )
    .await;
    assert_eq!(id, "anns-spa");
    let c = h.store.client("anns-spa").await.unwrap().unwrap();
    assert_eq!(c.owner, Some(ann_id));
    assert_eq!(c.kind, ClientKind::Public);
    assert!(c.secret_hash.is_none());
    assert!(!c.skip_authorization);
    assert_eq!(
        c.redirect_uris,
        ["https://ann.example/cb", "http://127.0.0.1/cb"]
    );
    assert_eq!(c.allowed_origins, ["https://ann.example"]);
    let page = ann.get("/o/applications/anns-spa/").await;
    assert!(page.body.contains("was registered"));
    assert_eq!(shown_secret(&page), None);
    let list = ann.get("/o/applications/").await;
    assert!(list.body.contains("Ann&#39;s SPA") || list.body.contains("Ann&#x27;s SPA"));

    let edit = ann.get("/o/applications/anns-spa/update/").await;
    assert_eq!(edit.status, StatusCode::OK);
    assert!(edit.body.contains("https://ann.example/cb"));
    let p = submit(
        &mut ann,
        "/o/applications/anns-spa/update/",
        "/o/applications/anns-spa/update/",
        &[
            ("name", "Ann's new SPA"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "https://ann.example/cb"),
            ("scope", "read write"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/o/applications/anns-spa/");
    let c = h.store.client("anns-spa").await.unwrap().unwrap();
    assert_eq!(c.name, "Ann's new SPA");
    assert_eq!(c.grant_types, [GrantType::AuthorizationCode]);
    assert_eq!(c.allowed_scope.to_string(), "read write");
    assert_eq!(c.owner, Some(ann_id));

    let confirm = ann.get("/o/applications/anns-spa/delete/").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Yes, delete"));
    // A public client has no secret to lose.
    assert!(
        confirm
            .body
            .contains("the client id <code>anns-spa</code> stops working</li>"),
        "{}",
        confirm.body
    );
    assert!(!confirm.body.contains("secret"), "{}", confirm.body);
    let p = submit(
        &mut ann,
        "/o/applications/anns-spa/delete/",
        "/o/applications/anns-spa/delete/",
        &[],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location(), "/o/applications/");
    assert!(h.store.client("anns-spa").await.unwrap().is_none());
    let list = ann.get("/o/applications/").await;
    assert!(list.body.contains("was deleted"));
    let log = h.store.entries(0, 50).await.unwrap();
    let actions: Vec<&str> = log
        .items
        .iter()
        .filter(|e| e.entry.object_id == "anns-spa")
        .map(|e| e.entry.action.as_str())
        .collect();
    assert_eq!(actions, ["delete", "change", "create"]);
}

async fn changes_take_effect_at_once(h: &Harness) {
    h.user(ANN).await;
    // The registration is now in the authenticator's cache.
    assert_eq!(
        token_status(h, ("other", "other-secret"), ANN).await,
        StatusCode::OK
    );
    let mut staff = admin(h).await;
    let p = submit(
        &mut staff,
        "/admin/applications/other/",
        "/admin/applications/other/",
        &[
            ("name", "other"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let r = h
        .post_form(
            "/o/token/",
            Some(("other", "other-secret")),
            &[
                ("grant_type", "password"),
                ("username", ANN),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    assert_eq!(r.str("error"), "unauthorized_client");
    // The secret was kept: an empty field leaves it.
    let r = h
        .post_form(
            "/o/token/",
            Some(("other", "other-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let page = staff.get("/admin/applications/other/").await;
    assert!(page.body.contains("was changed"));
}

async fn rotation_refuses_the_old_secret_at_once(h: &Harness) {
    h.user(ANN).await;
    let token = token_via(h, ("other", "other-secret"), ANN).await;
    // Both the registration and the secret check are now cached.
    assert_eq!(
        introspect_status(h, ("other", "other-secret"), &token).await,
        StatusCode::OK
    );
    assert!(h.active(&token).await);
    let mut staff = admin(h).await;
    let page = staff.get("/admin/applications/other/").await;
    assert!(page.body.contains("Rotate secret"));
    let p = submit(
        &mut staff,
        "/admin/applications/other/",
        "/admin/applications/other/rotate/",
        &[],
    )
    .await;
    let secret = secret_answer(&p);
    assert!(p.body.contains("was rotated"));
    assert_eq!(page_client_id(&p, "/admin/applications/"), "other");

    assert_eq!(
        token_status(h, ("other", "other-secret"), ANN).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        introspect_status(h, ("other", "other-secret"), &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!h.active(&token).await);

    assert_eq!(
        shown_secret(&staff.get("/admin/applications/other/").await),
        None
    );
    let fresh = token_via(h, ("other", &secret), ANN).await;
    assert!(h.active(&fresh).await);
    let log = h.store.entries(0, 10).await.unwrap();
    assert_eq!(log.items[0].entry.action, "rotate");
    assert!(!log.items[0].entry.detail.contains(&secret));
    // A public client has nothing to rotate.
    let p = submit(
        &mut staff,
        "/admin/applications/spa/",
        "/admin/applications/spa/rotate/",
        &[],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let page = staff.get("/admin/applications/spa/").await;
    assert!(
        page.body
            .contains("A public client has no secret to rotate.")
    );
    assert!(
        h.store
            .client("spa")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .is_none()
    );
}

async fn self_service_rotation_refuses_the_old_secret_at_once(h: &Harness) {
    let (mut ann, _) = user(h, ANN).await;
    let id = register_own(
        &mut ann,
        &[
            ("name", "Ann's backend"),
            ("client_id", "ann-backend"),
            ("client_secret", "ann-backend-secret"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    let old = (id.as_str(), "ann-backend-secret");
    let token = cc_token(h, old).await.str("access_token");
    assert!(h.active(&token).await);
    let p = submit(
        &mut ann,
        "/o/applications/ann-backend/",
        "/o/applications/ann-backend/rotate/",
        &[],
    )
    .await;
    let secret = secret_answer(&p);
    assert_eq!(cc_token(h, old).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        introspect_status(h, old, &token).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(!h.active(&token).await);
    assert!(shown_secret(&ann.get("/o/applications/ann-backend/").await).is_none());
    let fresh = cc_token(h, (&id, &secret)).await.str("access_token");
    assert!(h.active(&fresh).await);
}

async fn deletion_revokes_tokens_and_removes_the_client(h: &Harness) {
    h.user(ANN).await;
    let token = token_via(h, ("other", "other-secret"), ANN).await;
    assert!(h.active(&token).await);
    let mut staff = admin(h).await;
    let confirm = staff.get("/admin/applications/other/delete/").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Delete the application “other”?"));
    // A confidential client: its secret goes too; the id in code font, as on the
    // self-service page.
    assert!(
        confirm.body.contains(
            "the client id <code>other</code> stops working, and so does its secret</li>"
        ),
        "{}",
        confirm.body
    );
    // Still there until the confirmation is sent.
    assert!(h.store.client("other").await.unwrap().is_some());
    let p = submit(
        &mut staff,
        "/admin/applications/other/delete/",
        "/admin/applications/other/delete/",
        &[],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/admin/applications/");
    assert!(!h.active(&token).await);
    assert!(h.store.client("other").await.unwrap().is_none());
    assert_eq!(
        token_status(h, ("other", "other-secret"), ANN).await,
        StatusCode::UNAUTHORIZED
    );
    let list = staff.get("/admin/applications/").await;
    assert!(list.body.contains("was deleted"));
    assert!(!list.body.contains("/admin/applications/other/"));
    let gone = staff.get("/admin/applications/other/").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let log = h.store.entries(0, 10).await.unwrap();
    assert_eq!(log.items[0].entry.action, "delete");
    assert_eq!(log.items[0].entry.object_id, "other");
}

/// A generated secret is shown once and stored nowhere: after registering and
/// rotating through the console and the self-service pages, no table of the
/// database (sessions included) and no byte of the SQLite files holds any of
/// the secrets shown.
async fn no_store_holds_a_generated_secret(h: &Harness) {
    let mut secrets = vec![];
    let mut staff = admin(h).await;
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &[
            ("name", "Console job"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    secrets.push(secret_answer(&p));
    let id = page_client_id(&p, "/admin/applications/");
    let p = submit(
        &mut staff,
        &format!("/admin/applications/{id}/"),
        &format!("/admin/applications/{id}/rotate/"),
        &[],
    )
    .await;
    secrets.push(secret_answer(&p));
    // The change form generates one when a public client becomes confidential.
    let p = submit(
        &mut staff,
        "/admin/applications/spa/",
        "/admin/applications/spa/",
        &[
            ("name", "spa"),
            ("client_type", "confidential"),
            ("grant_types", "password"),
            ("scope", "read"),
        ],
    )
    .await;
    secrets.push(secret_answer(&p));
    let (mut ann, _) = user(h, ANN).await;
    let p = submit(
        &mut ann,
        "/o/applications/register/",
        "/o/applications/register/",
        &[
            ("name", "Ann's job"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("scope", "read"),
        ],
    )
    .await;
    secrets.push(secret_answer(&p));
    let own = page_client_id(&p, "/o/applications/");
    let p = submit(
        &mut ann,
        &format!("/o/applications/{own}/"),
        &format!("/o/applications/{own}/rotate/"),
        &[],
    )
    .await;
    secrets.push(secret_answer(&p));
    // Each works (so each is what was hashed), and the pages were visited after.
    for (client, secret) in [(&id, &secrets[1]), (&own, &secrets[4])] {
        assert_eq!(cc_token(h, (client, secret)).await.status, StatusCode::OK);
    }
    staff.get(&format!("/admin/applications/{id}/")).await;
    ann.get(&format!("/o/applications/{own}/")).await;

    let stored = h.stored_text().await;
    assert!(stored.contains(ANN), "the scan sees stored rows");
    assert!(stored.contains("$scrypt$"), "secrets are stored as hashes");
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "a generated secret is stored in clear"
        );
    }
}

/// The `next` of a redirect to the login page.
fn next_of(p: &Page) -> String {
    let q = p
        .location()
        .strip_prefix("/accounts/login/?")
        .unwrap_or_else(|| panic!("not to the login page: {}", p.location()));
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no next: {}", p.location()))
}

/// A form sent by a browser no longer signed in (here: an anonymous session with
/// a valid CSRF token) is answered with the login page, coming back afterwards
/// to the page that holds the form — never to a POST-only action, whose GET
/// after the sign-in would be a 405. Each kind of form: the authorized
/// applications' revoke, the self-service pages', the console's. A `Referer` of
/// this site's page is where the form was, and wins; one of another origin, or
/// naming a POST-only action, is not used.
async fn a_form_sent_signed_out_comes_back_to_its_page(h: &Harness) {
    let mut boss = admin(h).await;
    let ann = h.user(ANN).await;
    let app = register_own(
        &mut boss,
        &[
            ("name", "Boss's app"),
            ("client_id", "boss-app"),
            ("client_type", "public"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "https://boss.example/cb"),
        ],
    )
    .await;
    let same = |p: &str| (p.to_owned(), p.to_owned());
    let cases = [
        (
            "/o/authorized_tokens/revoke/".to_owned(),
            "/o/authorized_tokens/".to_owned(),
        ),
        (
            "/o/authorized_tokens/revoke".to_owned(),
            "/o/authorized_tokens/".to_owned(),
        ),
        (
            format!("/o/applications/{app}/rotate/"),
            format!("/o/applications/{app}/"),
        ),
        same(&format!("/o/applications/{app}/update/")),
        same(&format!("/o/applications/{app}/delete/")),
        same("/o/applications/register/"),
        (
            "/admin/tokens/revoke/".to_owned(),
            "/admin/tokens/".to_owned(),
        ),
        (
            format!("/admin/users/{ann}/password/"),
            format!("/admin/users/{ann}/"),
        ),
        (
            format!("/admin/users/{ann}/applications/revoke/"),
            format!("/admin/users/{ann}/"),
        ),
        (
            format!("/admin/applications/{app}/rotate/"),
            format!("/admin/applications/{app}/"),
        ),
        same(&format!("/admin/applications/{app}/")),
        same(&format!("/admin/users/{ann}/delete/")),
        same("/admin/users/add/"),
        same("/admin/applications/add/"),
    ];
    for (action, page) in &cases {
        let mut anon = Browser::new(h);
        let token = csrf(&mut anon, "/accounts/login/").await;
        let p = anon
            .post(action, &pairs(&[("csrfmiddlewaretoken", &token)]))
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{action}: {}", p.body);
        assert_eq!(&next_of(&p), page, "{action}");
        // Signing in on that login page lands on the form's page, which opens.
        let login = anon.get(p.location()).await;
        assert_eq!(login.status, StatusCode::OK, "{action}: {}", login.body);
        assert_eq!(&login.field("next"), page, "{action}");
        let done = anon
            .post(
                "/accounts/login/",
                &pairs(&[
                    ("csrfmiddlewaretoken", &login.field("csrfmiddlewaretoken")),
                    ("username", STAFF),
                    ("password", PASSWORD),
                    ("next", &login.field("next")),
                ]),
            )
            .await;
        assert_eq!(
            done.status,
            StatusCode::SEE_OTHER,
            "{action}: {}",
            done.body
        );
        assert_eq!(done.location(), page, "{action}");
        let back = anon.get(page).await;
        assert_eq!(
            back.status,
            StatusCode::OK,
            "{action} -> {page}: {}",
            back.body
        );
        if action != page {
            // What a `next` of the action itself would have given.
            let get = anon.get(action).await;
            assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{action}");
        }
    }

    // The Referer: this site's page wins. One of another origin (or a look-alike
    // host) has the form refused before any detour; a `//host` path, a POST-only
    // action or the login page of this origin is not used.
    let with_referer = async |referer: &str| {
        let mut anon = Browser::new(h);
        let token = csrf(&mut anon, "/accounts/login/").await;
        anon.post_with(
            "/o/authorized_tokens/revoke/",
            &pairs(&[("csrfmiddlewaretoken", &token)]),
            &[("origin", ISSUER), ("referer", referer)],
        )
        .await
    };
    let p = with_referer(&format!("{ISSUER}/o/applications/{app}/?x=1#top")).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(next_of(&p), format!("/o/applications/{app}/?x=1"));
    for foreign in [
        "https://evil.example/o/applications/".to_owned(),
        format!("{ISSUER}.evil.example/o/applications/"),
        format!("{ISSUER}:8443/o/applications/"),
        "/o/applications/".to_owned(),
        "not a url".to_owned(),
    ] {
        let p = with_referer(&foreign).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{foreign}: {}", p.body);
        assert!(p.headers.get("location").is_none(), "{foreign}");
    }
    for unused in [
        format!("{ISSUER}//evil.example/"),
        format!("{ISSUER}/\\evil.example/"),
        format!("{ISSUER}/admin/tokens/revoke/"),
        format!("{ISSUER}/accounts/login/?next=/admin/"),
    ] {
        let p = with_referer(&unused).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{unused}: {}", p.body);
        assert_eq!(next_of(&p), "/o/authorized_tokens/", "{unused}");
    }
}

/// Issue 19: the forms and pages mark the privileged scopes; an empty scope gives
/// the ordinary ones only; a public client is refused a privileged scope.
async fn privileged_scopes_are_marked_and_never_given_by_default(h: &Harness) {
    const MARKED: &str =
        "<code>introspection</code> <strong class=\"privileged\">privileged</strong>";
    let mut staff = admin(h).await;
    let add = staff.get("/admin/applications/add/").await;
    assert!(add.body.contains(MARKED), "{}", add.body);
    assert!(
        add.body.contains("<code>read</code>, <code>write</code>, "),
        "{}",
        add.body
    );
    assert!(
        add.body
            .contains("Leave empty for the ordinary scopes: read write."),
        "{}",
        add.body
    );
    // The seed's resource server lists introspection: its page marks it.
    let rs = staff.get("/admin/applications/rs-id/").await;
    assert!(rs.body.contains(MARKED), "{}", rs.body);

    // An empty scope: the ordinary scopes, and no privileged one by name.
    let p = submit(
        &mut staff,
        "/admin/applications/add/",
        "/admin/applications/add/",
        &[
            ("name", "Robot"),
            ("client_id", "robot"),
            ("client_secret", "robot-secret"),
            ("client_type", "confidential"),
            ("grant_types", "client_credentials"),
            ("grant_types", "password"),
            ("scope", ""),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let c = h.store.client("robot").await.unwrap().unwrap();
    assert_eq!(c.allowed_scope.to_string(), "read write");
    let page = staff.get("/admin/applications/robot/").await;
    assert!(
        !page
            .body
            .contains("class=\"privileged\">privileged</strong></dd>")
    );
    let r = h
        .post_form(
            "/o/token/",
            Some(("robot", "robot-secret")),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "introspection"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    assert_eq!(r.json["error"], "invalid_scope");

    // A public client never gets one, from either form.
    for (page, to) in [
        ("/admin/applications/add/", "/admin/applications/add/"),
        ("/admin/applications/rs-id/", "/admin/applications/rs-id/"),
    ] {
        let p = submit(
            &mut staff,
            page,
            to,
            &[
                ("name", "Leaky"),
                ("client_type", "public"),
                ("grant_types", "authorization_code"),
                ("redirect_uris", "https://app.example.com/cb"),
                ("scope", "read introspection"),
            ],
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{to}: {}", p.body);
        assert!(
            p.body
                .contains("“introspection” is a privileged scope: a public client never gets it"),
            "{to}: {}",
            p.body
        );
    }
    let rs = h.store.client("rs-id").await.unwrap().unwrap();
    assert_eq!(rs.kind, ClientKind::Confidential);

    // The self-service form offers the ordinary scopes only.
    let (mut ann, _) = user(h, ANN).await;
    let own = ann.get("/o/applications/register/").await;
    assert!(
        own.body.contains("from: <code>read</code>, <code>write</code>. Leave empty for the ordinary scopes: read write."),
        "{}",
        own.body
    );
    assert!(!own.body.contains("introspection"), "{}", own.body);
}

/// Issue 19, hole 7: a signed-in user flooding registrations and rotations (each a
/// production-like KDF run) while someone signs in. With 2 KDF threads and a small
/// queue, the sign-in succeeds — it is neither refused 503 nor stuck behind the
/// flood — and the flood is refused with 429 (the form again, with a message) once
/// the user's budget of secret hashes (10 per window) is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_secret_hashes_is_throttled_and_never_starves_sign_ins() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use http_body_util::BodyExt as _;
    use oauth_core::{PasswordHasher, ScryptParams};
    use tower::ServiceExt as _;

    // About a production hash's shape, cheaper: 8 MiB, some tens of milliseconds.
    let slow = PasswordHasher::with_limits(
        ScryptParams {
            log_n: 13,
            r: 8,
            p: 1,
        },
        2,
        8,
    )
    .unwrap();
    let throttle = oauth_core::ThrottleConfig {
        secret_hashes_per_user: 10,
        secret_hashes_per_ip: 30,
        ..common::lenient()
    };
    let hasher = slow.clone();
    let h = Harness::build(common::Backend::Sqlite, throttle, move |s| {
        s.password_hasher(hasher)
    })
    .await
    .unwrap();
    h.user(BOB).await;
    let (mut ann, _) = user(&h, ANN).await;
    let id = register_own(
        &mut ann,
        &[
            ("name", "Ann's app"),
            ("client_type", "confidential"),
            ("client_secret", "a typed secret of Ann's, long enough"),
            ("grant_types", "authorization_code"),
            ("redirect_uris", "https://ann.example/cb"),
            ("scope", "read"),
        ],
    )
    .await;
    let token = csrf(&mut ann, "/o/applications/register/").await;
    let cookie = ann.cookie.clone().unwrap();
    let post = |uri: String, form: Vec<(&'static str, String)>| {
        let mut all = vec![("csrfmiddlewaretoken", token.clone())];
        all.extend(form);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(all)
            .finish();
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, ISSUER)
            .header(header::COOKIE, cookie.clone())
            .body(Body::from(body))
            .unwrap();
        let router = h.router.clone();
        async move {
            let res = router.oneshot(req).await.unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let mut flood = Vec::new();
    for i in 0..30 {
        flood.push(tokio::spawn(post(
            "/o/applications/register/".into(),
            vec![
                ("name", format!("flood {i}")),
                ("client_type", "confidential".into()),
                ("grant_types", "authorization_code".into()),
                ("redirect_uris", "https://ann.example/cb".into()),
                ("scope", "read".into()),
            ],
        )));
        if i % 3 == 0 {
            flood.push(tokio::spawn(post(
                format!("/o/applications/{id}/rotate/"),
                vec![],
            )));
        }
    }
    // Sign in while the flood is under way.
    for _ in 0..2000 {
        if slow.stats().running > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let started = std::time::Instant::now();
    let login = h.login(BOB, PASSWORD).await;
    let login_took = started.elapsed();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for f in flood {
        let (status, body) = f.await.unwrap();
        *by_status.entry(status.as_u16()).or_default() += 1;
        assert!(!status.is_server_error(), "{status}: {body}");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(body.contains("try again in"), "{body}");
        }
    }
    let stats = slow.stats();
    eprintln!(
        "flood of {} secret-hashing POSTs: {by_status:?}; concurrent sign-in {} in {login_took:?}; \
         KDF peak {} running, {} secrets at once, {} refused",
        by_status.values().sum::<usize>(),
        login.status,
        stats.peak_running,
        stats.peak_secrets,
        stats.refused,
    );
    assert_eq!(login.status, StatusCode::OK, "{}", login.json);
    // The first registration took one of the 10; the flood got the other 9.
    let done =
        by_status.get(&200).copied().unwrap_or(0) + by_status.get(&303).copied().unwrap_or(0);
    assert_eq!(done, 9, "{by_status:?}");
    assert_eq!(by_status.get(&429).copied(), Some(40 - 9), "{by_status:?}");
    assert!(stats.peak_secrets <= 1, "{stats:?}");
    // The next one, a while later, still refused: the window is 10 minutes.
    h.clock.advance(60);
    let (status, body) = post(format!("/o/applications/{id}/rotate/"), vec![]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    h.clock.advance(600);
    let (status, body) = post(format!("/o/applications/{id}/rotate/"), vec![]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
