//! Both admin consoles in a real browser (headless Chromium, see
//! [`crate::chromium`]): a staff user finds a user by search and deactivates
//! them, and deletes another; registers the resource server's client as the demo
//! seed does on an auth server with no client at all; rotates a client's secret
//! and sees it once; a user registers an application of their own; a user who is
//! not staff gets the console's 403 page, then registers, views, edits and
//! deletes their applications; and, on this resource server, a staff user signs
//! in through the auth server, edits an item and deletes one, and once made
//! non-staff gets the console's 403 page and signs out there. Each test takes
//! the screenshots of the pages it visits (`docs/images/admin-*.png`,
//! `self-service-*.png`, `rs-admin-*.png` with `UPDATE_SCREENSHOTS=1`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oauth_core::{
    Client, ClientKind, ClientRegistry, Email, GrantType, NewUser, Password, PasswordHasher,
    ScryptParams, UserFlags, UserStore as _,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_tests::{set_staff, user_id};
use crate::chromium::{Chromium, Web};
use crate::tests::{PASSWORD, World, world, world_with};

/// Each test's browser steps must end within this, or it fails.
const STEPS_LIMIT: Duration = Duration::from_secs(60);
/// The screenshots' desktop window.
const DESKTOP: (u32, u32) = (1100, 800);

const STAFF: &str = "admin@example.com";
const ANN: &str = "ann@example.com";
const LEDGER_ID: &str = "ledger";
const LEDGER_SECRET: &str = "ledger-secret-for-tests";

/// A user created straight in the auth server's store, with the tests' password.
async fn create_user(w: &World, email: &str, staff: bool) -> oauth_core::User {
    let hash = PasswordHasher::new(ScryptParams::INSECURE_FAST)
        .unwrap()
        .hash(&Password::new(PASSWORD))
        .await
        .unwrap();
    let mut user = NewUser::new(Email::parse(email).unwrap(), hash, chrono::Utc::now());
    user.is_staff = staff;
    w.auth.store.create_user(user).await.unwrap()
}

/// `POST /o/token/` with the client's Basic credentials: status and body.
async fn token_request(
    w: &World,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let res = w
        .http
        .post(format!("{}/o/token/", w.auth.url()))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

async fn password_grant(w: &World, client: (&str, &str), email: &str) -> (StatusCode, Value) {
    token_request(
        w,
        client,
        &[
            ("grant_type", "password"),
            ("username", email),
            ("password", PASSWORD),
        ],
    )
    .await
}

/// Whether introspection (as `rs-id`) calls `token` active.
async fn introspect(w: &World, token: &str) -> bool {
    let json: Value = w
        .http
        .post(format!("{}/o/introspect/", w.auth.url()))
        .basic_auth("rs-id", Some("rs-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json["active"].as_bool().unwrap()
}

/// Signs in at the auth server's login page, which the browser is being sent to.
async fn sign_in(web: &Web, issuer: &str, email: &str) {
    web.wait_url(&format!("{issuer}/accounts/login/?next="))
        .await;
    assert_eq!(web.h1().await, "Sign in");
    web.fill("input[name=username]", email).await;
    web.fill("input[name=password]", PASSWORD).await;
    web.submit("Sign in").await;
}

/// The flash message of the page (waiting for it).
async fn message(web: &Web) -> String {
    web.find("p.message").await.text().await.unwrap()
}

/// Submits the form with `button` and checks the flash message it answers with.
async fn submit_expecting(web: &Web, button: &str, said: &str) {
    web.submit(button).await;
    assert_eq!(message(web).await, said);
}

/// A password grant of `email` through `client` answers `expected`.
async fn assert_grant_status(w: &World, client: (&str, &str), email: &str, expected: StatusCode) {
    let (status, _) = password_grant(w, client, email).await;
    assert_eq!(status, expected);
}

/// Launches Chromium (or skips), runs `steps`, reports how long it all took.
async fn in_chromium<Fut>(
    name: &str,
    setup: impl Future<Output = World>,
    steps: fn(Web, World) -> Fut,
) where
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Instant::now();
    let Some(chromium) = Chromium::launch(DESKTOP).await else {
        return;
    };
    let w = setup.await;
    chromium.run(STEPS_LIMIT, |web| steps(web, w)).await;
    eprintln!("{name} took {:.1?}", started.elapsed());
}

// 1. Users: sign in, search, deactivate; the add form's errors; tokens and log.

async fn users_setup() -> World {
    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    create_user(&w, STAFF, true).await;
    for email in [ANN, "bob@example.com", "carol@example.org"] {
        w.user(email).await;
    }
    let dave = create_user(&w, "dave@example.net", false).await;
    w.auth
        .store
        .set_user_flags(
            dave.id,
            UserFlags {
                is_active: Some(false),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
    w
}

async fn users_steps(web: Web, w: World) {
    let issuer = w.auth.url();
    let rs = ("rs-id", "rs-secret");
    let (status, tokens) = password_grant(&w, rs, ANN).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(introspect(&w, &token).await);

    // Anonymous: the login page, then back to the console.
    web.goto(&format!("{issuer}/admin/")).await;
    sign_in(&web, &issuer, STAFF).await;
    web.wait_url_is(&format!("{issuer}/admin/users/")).await;
    assert_eq!(web.h1().await, "Users");
    let mut emails = web.texts("tbody td:first-child").await;
    emails.sort();
    assert_eq!(
        emails,
        [
            STAFF,
            ANN,
            "bob@example.com",
            "carol@example.org",
            "dave@example.net"
        ]
    );
    web.screenshot_page("admin-users.png").await;
    web.phone().await;
    web.screenshot("admin-users-phone.png").await;
    web.desktop().await;

    // Search by part of the email, open the user, untick Active.
    web.fill("#id_q", "nn@exam").await;
    web.submit("Search").await;
    assert!(
        web.url().await.contains("q=nn%40exam"),
        "{}",
        web.url().await
    );
    assert_eq!(web.texts("tbody td:first-child").await, [ANN]);
    web.follow(ANN).await;
    assert_eq!(web.h1().await, ANN);
    web.set_checked("input[name=is_active]", false).await;
    web.submit("Save").await;
    let said = message(&web).await;
    assert!(
        said.starts_with(&format!("The user “{ANN}” was deactivated:")),
        "{said}"
    );
    assert!(
        !web.find("input[name=is_active]")
            .await
            .is_selected()
            .await
            .unwrap()
    );
    web.screenshot_page("admin-user.png").await;

    // At once: introspection calls the token inactive, the password grant fails.
    assert!(!introspect(&w, &token).await, "deactivated user's token");
    let (status, refused) = password_grant(&w, rs, ANN).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{refused}"
    );

    // The add form: errors beside the fields, the email kept, never a password.
    web.follow("Users").await;
    web.follow("Add user").await;
    assert_eq!(web.h1().await, "Add user");
    web.fill("#id_email", ANN).await;
    web.fill("#id_password", "12345").await;
    web.fill("#id_password2", "12346").await;
    web.submit("Save").await;
    assert_eq!(web.h1().await, "Add user");
    let errors = web.texts(".field-error").await;
    assert!(errors.len() >= 2, "{errors:?}");
    assert!(web.has("#err_email").await, "{errors:?}");
    assert!(web.has("#err_password2").await, "{errors:?}");
    assert_eq!(web.value("#id_email").await, ANN);
    assert_eq!(web.value("#id_password").await, "");
    web.screenshot_page("admin-user-add.png").await;
    web.fill("#id_email", "erin@example.com").await;
    web.fill("#id_password", PASSWORD).await;
    web.fill("#id_password2", PASSWORD).await;
    submit_expecting(&web, "Save", "The user “erin@example.com” was added.").await;
    assert_grant_status(&w, rs, "erin@example.com", StatusCode::OK).await;

    // The tokens, and the log of both changes, newest first.
    web.follow("Tokens").await;
    assert_eq!(web.h1().await, "Tokens");
    assert!(web.texts("tbody tr").await.len() >= 4);
    web.screenshot_page("admin-tokens.png").await;
    web.follow("Log").await;
    assert_eq!(web.h1().await, "Log");
    let actions = web.texts("tbody td:nth-child(3)").await;
    assert_eq!(actions, ["create", "change"]);
    let objects = web.texts("tbody td:nth-child(5)").await;
    assert!(objects[0].starts_with("erin@example.com"), "{objects:?}");
    assert!(objects[1].starts_with(ANN), "{objects:?}");
    web.screenshot_page("admin-log.png").await;

    // Deleting asks first: a user (confirmed), an application (taken back).
    web.follow("Users").await;
    web.follow("bob@example.com").await;
    web.follow("Delete user…").await;
    assert_eq!(web.h1().await, "Delete the user “bob@example.com”?");
    web.screenshot_page("admin-user-delete.png").await;
    submit_expecting(
        &web,
        "Yes, delete",
        "The user “bob@example.com” was deleted.",
    )
    .await;
    assert_grant_status(&w, rs, "bob@example.com", StatusCode::BAD_REQUEST).await;
    web.goto(&format!("{issuer}/admin/applications/rs-id/"))
        .await;
    web.follow("Delete application…").await;
    assert!(web.h1().await.starts_with("Delete the application “"));
    web.screenshot_page("admin-application-delete.png").await;
    web.follow("No, take me back").await;
    web.wait_url_is(&format!("{issuer}/admin/applications/rs-id/"))
        .await;
    assert!(
        introspect(&w, &tokens_of_erin(&w).await).await,
        "rs-id kept"
    );
}

/// A fresh token of erin's, through `rs-id`.
async fn tokens_of_erin(w: &World) -> String {
    let (status, tokens) = password_grant(w, ("rs-id", "rs-secret"), "erin@example.com").await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_deactivates_a_user_found_by_search_in_chromium() {
    in_chromium("users console", users_setup(), users_steps).await;
}

// 2. The resource server's client registered by hand, as the demo seed would.

async fn register_setup() -> World {
    // No client at all: what `SEED_DEMO=false` gives the example.
    let w = world_with(Duration::from_secs(1), Duration::from_secs(3600), false).await;
    assert!(w.auth.store.list_clients(0, 10).await.unwrap().is_empty());
    create_user(&w, STAFF, true).await;
    create_user(&w, ANN, false).await;
    w
}

async fn register_steps(web: Web, w: World) {
    let issuer = w.auth.url();
    let (status, refused) = password_grant(&w, ("rs-id", "rs-secret"), ANN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");

    web.goto(&format!("{issuer}/admin/applications/add/")).await;
    sign_in(&web, &issuer, STAFF).await;
    web.wait_url_is(&format!("{issuer}/admin/applications/add/"))
        .await;
    assert_eq!(web.h1().await, "Add application");
    web.fill("#id_name", "resource-server").await;
    web.fill("#id_client_id", "rs-id").await;
    web.set_checked("input[name=client_type][value=confidential]", true)
        .await;
    web.fill("#id_client_secret", "rs-secret").await;
    for (grant, on) in [
        ("authorization_code", false),
        ("password", true),
        ("client_credentials", false),
        ("refresh_token", false),
    ] {
        web.set_checked(&format!("input[name=grant_types][value={grant}]"), on)
            .await;
    }
    web.fill("#id_scope", "read write introspection").await;
    web.screenshot_page("admin-application-add.png").await;
    web.submit("Save").await;
    web.wait_url_is(&format!("{issuer}/admin/applications/rs-id/"))
        .await;
    assert_eq!(
        message(&web).await,
        "The application “resource-server” was added."
    );
    assert!(
        !web.has("#client_secret").await,
        "a typed secret is not shown"
    );
    let facts = web.text("dl.facts").await;
    for fact in [
        "rs-id",
        "confidential",
        "password",
        "read, write, introspection privileged",
    ] {
        assert!(facts.contains(fact), "{fact} not in {facts}");
    }

    // The seed's client works: a password-grant token, accepted by this server.
    let (status, tokens) = password_grant(&w, ("rs-id", "rs-secret"), ANN).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap();
    assert!(introspect(&w, token).await);
    assert_eq!(w.get("/items/", token).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_registers_the_seed_client_on_an_unseeded_server_in_chromium() {
    in_chromium("application registration", register_setup(), register_steps).await;
}

// 3. Rotating a secret; a user's own applications.

async fn rotate_setup() -> World {
    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    create_user(&w, STAFF, true).await;
    w.user(ANN).await;
    let ann = user_id(&w, ANN).await;
    let hash = PasswordHasher::new(ScryptParams::INSECURE_FAST)
        .unwrap()
        .hash(&Password::new(LEDGER_SECRET))
        .await
        .unwrap();
    for (id, name, secret_hash, grants, redirect, owner) in [
        (
            LEDGER_ID,
            "Ledger",
            Some(hash),
            vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
            "https://ledger.example.com/callback",
            None,
        ),
        (
            "pocket-notes",
            "Pocket Notes",
            None,
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            "http://127.0.0.1/callback",
            Some(ann),
        ),
    ] {
        w.auth
            .store
            .register_client(Client {
                client_id: id.into(),
                kind: if secret_hash.is_some() {
                    ClientKind::Confidential
                } else {
                    ClientKind::Public
                },
                secret_hash,
                name: name.into(),
                grant_types: grants,
                redirect_uris: vec![redirect.into()],
                allowed_origins: vec![],
                skip_authorization: false,
                allowed_scope: "read write".parse().unwrap(),
                default_scope: "read".parse().unwrap(),
                owner,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
    w
}

async fn client_credentials(w: &World, secret: &str) -> (StatusCode, Value) {
    token_request(
        w,
        (LEDGER_ID, secret),
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await
}

async fn rotate_steps(web: Web, w: World) {
    let issuer = w.auth.url();
    let (status, before) = client_credentials(&w, LEDGER_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{before}");

    web.goto(&format!("{issuer}/admin/applications/")).await;
    sign_in(&web, &issuer, STAFF).await;
    web.wait_url_is(&format!("{issuer}/admin/applications/"))
        .await;
    let mut names = web.texts("tbody td:first-child").await;
    names.sort();
    assert_eq!(
        names,
        ["Demo app", "Demo resource server", "Ledger", "Pocket Notes"]
    );
    web.screenshot_page("admin-applications.png").await;
    web.follow("Ledger").await;
    assert_eq!(web.h1().await, "Ledger");
    assert!(!web.has("#client_secret").await);
    web.submit("Rotate secret").await;
    // The POST itself answers the page with the secret: no redirect, so the
    // secret never waits in the session (a row of the database).
    web.wait_url_is(&format!("{issuer}/admin/applications/{LEDGER_ID}/rotate/"))
        .await;
    assert_eq!(web.h1().await, "Ledger");
    let said = message(&web).await;
    assert!(
        said.starts_with("The secret of “Ledger” was rotated"),
        "{said}"
    );
    let secret = web.find("#client_secret").await.text().await.unwrap();
    assert!(secret.len() >= 32, "{secret}");
    web.screenshot_page("admin-application-secret.png").await;
    // Shown once: the application's page does not show it again.
    web.goto(&format!("{issuer}/admin/applications/{LEDGER_ID}/"))
        .await;
    assert_eq!(web.h1().await, "Ledger");
    assert!(!web.has("#client_secret").await, "the secret shown twice");
    assert!(!web.has("p.message").await);

    let (status, refused) = client_credentials(&w, LEDGER_SECRET).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{refused}"
    );
    let (status, tokens) = client_credentials(&w, &secret).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // A user's own applications at DOT's self-service pages.
    web.submit("Sign out").await;
    web.goto(&format!("{issuer}/o/applications/")).await;
    sign_in(&web, &issuer, ANN).await;
    web.wait_url_is(&format!("{issuer}/o/applications/")).await;
    assert_eq!(web.texts("ul.apps h2").await, ["Pocket Notes"]);
    web.follow("Register a new application").await;
    web.fill("#id_name", "Notes sync").await;
    web.fill("#id_redirect_uris", "https://notes.example.com/callback")
        .await;
    web.fill("#id_scope", "read").await;
    web.submit("Save").await;
    assert_eq!(web.h1().await, "Notes sync");
    assert!(web.find("#client_secret").await.text().await.unwrap().len() >= 32);
    web.goto(&format!("{issuer}/o/applications/")).await;
    let mut mine = web.texts("ul.apps h2").await;
    mine.sort();
    assert_eq!(mine, ["Notes sync", "Pocket Notes"]);
    web.screenshot_page("self-service-applications.png").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_rotates_a_secret_and_sees_it_once_in_chromium() {
    in_chromium("secret rotation", rotate_setup(), rotate_steps).await;
}

// 4. The resource server's items console.

async fn items_setup() -> World {
    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    w.user(STAFF).await;
    set_staff(&w, STAFF, true).await;
    let ann = w.user(ANN).await.str("access_token");
    let bob = w.user("bob@example.com").await.str("access_token");
    for (who, name, price) in [
        (&ann, "desk lamp", "30"),
        (&ann, "reading chair", "149.90"),
        (&bob, "tea tin", "6.50"),
        (&bob, "wool blanket", "58"),
    ] {
        let r = w
            .post(
                "/items/",
                Some(who),
                json!({"name": name, "description": format!("a {name}"), "price": price}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    }
    w
}

async fn items_steps(web: Web, w: World) {
    let issuer = w.auth.url();
    let rs = w.rs.url.clone();
    // Through the auth server's sign-in; first party: no consent page.
    web.goto(&format!("{rs}/admin/")).await;
    sign_in(&web, &issuer, STAFF).await;
    web.wait_url_is(&format!("{rs}/admin/")).await;
    assert_eq!(web.h1().await, "Items");
    let mut names = web.texts("tbody td:first-child").await;
    names.sort();
    assert_eq!(
        names,
        ["desk lamp", "reading chair", "tea tin", "wool blanket"]
    );
    web.screenshot_page("rs-admin-items.png").await;

    web.follow("desk lamp").await;
    assert_eq!(web.h1().await, "Change the item “desk lamp”");
    let path = web.url().await;
    let id: i64 = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    web.fill("#id_name", "brass desk lamp").await;
    web.fill("#id_price", "12.345").await;
    web.submit("Save").await;
    assert_eq!(
        web.find("#err_price").await.text().await.unwrap(),
        "Ensure that there are no more than 2 decimal places."
    );
    assert_eq!(web.value("#id_name").await, "brass desk lamp");
    assert_eq!(web.value("#id_price").await, "12.345");
    web.screenshot_page("rs-admin-item.png").await;
    web.fill("#id_price", "14.5").await;
    submit_expecting(&web, "Save", "The item “brass desk lamp” was changed.").await;

    // The API sees the change.
    let ann = w.user_token(ANN).await;
    let item = w.get(&format!("/items/{id}/"), &ann).await;
    assert_eq!(item.status, StatusCode::OK);
    assert_eq!(
        (&item.json["name"], &item.json["price"]),
        (&json!("brass desk lamp"), &json!("14.50"))
    );

    // Deleting asks first.
    web.goto(&format!("{rs}/admin/")).await;
    web.follow("Delete tea tin").await;
    assert_eq!(web.h1().await, "Delete the item “tea tin”?");
    web.screenshot_page("rs-admin-item-delete.png").await;
    web.submit("Yes, delete").await;
    web.wait_url_is(&format!("{rs}/admin/")).await;
    let said = message(&web).await;
    assert!(said.contains("tea tin"), "{said}");
    let mut names = web.texts("tbody td:first-child").await;
    names.sort();
    assert_eq!(names, ["brass desk lamp", "reading chair", "wool blanket"]);

    // Made non-staff: the console's 403 page says who is signed in, links to the
    // auth server's pages, and signs them out of the console.
    set_staff(&w, STAFF, false).await;
    let demoted = Instant::now();
    loop {
        web.goto(&format!("{rs}/admin/")).await;
        if web.h1().await == "Staff only" {
            break;
        }
        assert!(demoted.elapsed() < Duration::from_secs(5), "still in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let card = web.find(".card").await.text().await.unwrap();
    assert!(
        card.contains(&format!("You are signed in as {STAFF}")),
        "{card}"
    );
    assert_eq!(
        web.texts(".card li a").await,
        ["Your applications", "Applications you authorized"]
    );
    web.screenshot_page("rs-admin-staff-only.png").await;
    web.submit("Sign out of the console").await;
    assert_eq!(web.h1().await, "Signed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_edits_an_item_in_the_resource_servers_console_in_chromium() {
    in_chromium("items console", items_setup(), items_steps).await;
}

// 5. A user who is not staff: the console's 403 page, and their own applications
// at DOT's self-service pages (register, view, edit, delete).

async fn self_service_setup() -> World {
    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    w.user(ANN).await;
    let ann = user_id(&w, ANN).await;
    w.auth
        .store
        .register_client(Client {
            client_id: "pocket-notes".into(),
            secret_hash: None,
            kind: ClientKind::Public,
            name: "Pocket Notes".into(),
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            allowed_origins: vec![],
            skip_authorization: false,
            allowed_scope: "read write".parse().unwrap(),
            default_scope: "read".parse().unwrap(),
            owner: Some(ann),
            created_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    w
}

async fn self_service_steps(web: Web, w: World) {
    let issuer = w.auth.url();
    web.goto(&format!("{issuer}/admin/")).await;
    sign_in(&web, &issuer, ANN).await;
    web.wait_url_is(&format!("{issuer}/admin/users/")).await;
    assert_eq!(web.h1().await, "Staff only");
    web.screenshot_page("admin-staff-only.png").await;

    // Register a public application (no secret to show).
    web.goto(&format!("{issuer}/o/applications/")).await;
    assert_eq!(web.texts("ul.apps h2").await, ["Pocket Notes"]);
    web.follow("Register a new application").await;
    assert_eq!(web.h1().await, "Register a new application");
    web.fill("#id_name", "Notes web").await;
    web.set_checked("input[name=client_type][value=public]", true)
        .await;
    for (grant, on) in [
        ("authorization_code", true),
        ("client_credentials", false),
        ("refresh_token", true),
    ] {
        web.set_checked(&format!("input[name=grant_types][value={grant}]"), on)
            .await;
    }
    web.fill("#id_redirect_uris", "https://notes.example.com/callback")
        .await;
    web.fill("#id_allowed_origins", "https://notes.example.com")
        .await;
    web.fill("#id_scope", "read write").await;
    web.screenshot_page("self-service-application-register.png")
        .await;
    web.phone().await;
    web.screenshot("self-service-application-register-phone.png")
        .await;
    web.desktop().await;
    web.submit("Save").await;
    assert_eq!(web.h1().await, "Notes web");
    assert!(!web.has("#client_secret").await, "a public client has none");

    // Its page, its edit form, its deletion.
    web.goto(&format!("{issuer}/o/applications/")).await;
    web.follow("Pocket Notes").await;
    assert_eq!(web.h1().await, "Pocket Notes");
    let facts = web.text("dl.facts").await;
    assert!(
        facts.contains("pocket-notes") && facts.contains("public"),
        "{facts}"
    );
    web.screenshot_page("self-service-application.png").await;
    web.follow("Edit").await;
    assert_eq!(web.h1().await, "Edit application");
    web.fill("#id_scope", "read").await;
    web.screenshot_page("self-service-application-update.png")
        .await;
    web.submit("Save").await;
    assert_eq!(web.h1().await, "Pocket Notes");
    assert!(web.text("dl.facts").await.contains("read"));
    web.follow("Delete…").await;
    assert_eq!(web.h1().await, "Delete the application “Pocket Notes”?");
    web.screenshot_page("self-service-application-delete.png")
        .await;
    web.submit("Yes, delete").await;
    web.wait_url_is(&format!("{issuer}/o/applications/")).await;
    assert_eq!(web.texts("ul.apps h2").await, ["Notes web"]);
    assert!(w.auth.store.client("pocket-notes").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_manages_their_own_applications_and_is_kept_out_of_the_console_in_chromium() {
    in_chromium(
        "self-service applications",
        self_service_setup(),
        self_service_steps,
    )
    .await;
}
