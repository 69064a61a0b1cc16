//! Both example binaries as shipped, with no setup but a staff user: the auth
//! server with its demo seed, the resource server with its defaults pointing at
//! it. A staff user made by `auth_server createsuperuser` signs in to the items
//! console through the auth server (authorization code + PKCE, `rs-id` as the
//! seed registers it), lists the items and changes one; a user who is not staff
//! is refused. A reqwest client plays the browser ([`Agent`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use reqwest::StatusCode;
use serde_json::json;

use crate::admin_tests::{Agent, Page};
use crate::fault_tests::{Answer, auth_env, sqlite_url};
use crate::process::{Example, Process, client, free_port, run};
use crate::tests::PASSWORD;

const STAFF: &str = "boss@example.com";
const ANN: &str = "ann@example.com";

/// `/admin/` → the auth server's `/o/authorize/` → its sign-in → `/o/authorize/`
/// again (first party: no consent page) → `/admin/callback` (with a code, or
/// `access_denied` for a user who is not staff) → `/admin/`; returns the last
/// answer.
async fn console_sign_in(agent: &mut Agent, rs: &str, auth: &str, email: &str) -> Page {
    let start = agent.get(&format!("{rs}/admin/")).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
    assert!(
        start
            .location()
            .starts_with(&format!("{auth}/o/authorize/?")),
        "{}",
        start.location()
    );
    let q = start.query();
    assert_eq!(q["client_id"], "rs-id");
    assert_eq!(q["redirect_uri"], format!("{rs}/admin/callback"));
    let to_login = agent.get(&start.location()).await;
    let answer = agent.sign_in_at(&to_login, email).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let callback = answer.location();
    assert!(
        callback.starts_with(&format!("{rs}/admin/callback?")),
        "{callback}"
    );
    let back = agent.get(&callback).await;
    if back.status != StatusCode::SEE_OTHER {
        return back;
    }
    assert_eq!(back.location(), format!("{rs}/admin/"));
    agent.get(&back.location()).await
}

async fn createsuperuser(
    dir: &Path,
    email: &str,
    password: Option<&str>,
) -> crate::process::Finished {
    let mut env = auth_env(&sqlite_url(dir, "as.db"));
    if let Some(p) = password {
        env.push(("SUPERUSER_PASSWORD", p.to_owned()));
    }
    run(
        Example::AuthServer,
        &["createsuperuser", "--email", email],
        &env,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_examples_sign_staff_into_the_items_console() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // The first staff user, before the first start. Without SUPERUSER_PASSWORD the
    // password is read from standard input: closed here, so refused.
    let no_password = createsuperuser(dir, STAFF, None).await;
    assert!(!no_password.success, "{no_password:?}");
    assert!(
        no_password.stderr.contains("error: password: "),
        "{no_password:?}"
    );
    let created = createsuperuser(dir, STAFF, Some(PASSWORD)).await;
    assert!(created.success, "{created:?}");
    assert!(
        created
            .stdout
            .starts_with(&format!("Superuser {STAFF} created")),
        "{created:?}"
    );

    // Both servers with their defaults: the seed runs (the database has no client
    // yet), the resource server uses rs-id / rs-secret. The seed registers rs-id's
    // console redirect URI under RESOURCE_SERVER_URL (the resource server's real
    // port: rs-id is confidential, so no other loopback port matches).
    let rs_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut env = auth_env(&sqlite_url(dir, "as.db"));
    env.push(("RESOURCE_SERVER_URL", format!("http://{rs_addr}")));
    let auth = Process::start(Example::AuthServer, &env, &dir.join("as.log")).await;
    assert!(auth.log_text().contains("registered the demo clients"));
    let rs = Process::start_at(
        Example::ResourceServer,
        rs_addr,
        &[
            ("DATABASE_URL", sqlite_url(dir, "rs.db")),
            ("AUTH_SERVER_URL", auth.url()),
        ],
        &dir.join("rs.log"),
    )
    .await;
    let (rs_url, auth_url) = (rs.url(), auth.url());
    assert!(
        !rs.log_text().contains("no items console"),
        "{}",
        rs.log_text()
    );

    // Ann, not staff, signs up and makes items through the resource server's API.
    let http = client();
    let signup = http
        .post(format!("{rs_url}/users/signup/"))
        .json(&json!({"email": ANN, "password": PASSWORD, "password2": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let tokens = Answer::read(
        http.post(format!("{rs_url}/users/token/"))
            .json(&json!({"email": ANN, "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ann = tokens.str("access_token");
    let mut ids = vec![];
    for (name, price) in [("desk lamp", "30"), ("tea tin", "6.50")] {
        let made = Answer::read(
            http.post(format!("{rs_url}/items/"))
                .bearer_auth(&ann)
                .json(&json!({"name": name, "description": format!("a {name}"), "price": price}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        ids.push(made.json()["id"].as_i64().unwrap());
    }

    // The staff user: in, the items with their owner, one changed.
    let mut staff = Agent::new();
    let list = console_sign_in(&mut staff, &rs_url, &auth_url, STAFF).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for text in ["desk lamp", "tea tin", "30.00", "6.50", ANN, STAFF] {
        assert!(list.body.contains(text), "{text} missing: {}", list.body);
    }
    let url = format!("{rs_url}/admin/items/{}/", ids[0]);
    let form = staff.get(&url).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert_eq!(form.field("name"), "desk lamp");
    let csrf = form.field("csrfmiddlewaretoken");
    let saved = staff
        .post(
            &url,
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("name", "brass desk lamp"),
                ("description", "a brass desk lamp"),
                ("price", "14.5"),
            ],
            &[("origin", &rs_url)],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let after = staff.get(&saved.location()).await;
    assert!(
        after
            .body
            .contains("The item “brass desk lamp” was changed."),
        "{}",
        after.body
    );
    let item = Answer::read(
        http.get(format!("{rs_url}/items/{}/", ids[0]))
            .bearer_auth(&ann)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (&item.json()["name"], &item.json()["price"]),
        (&json!("brass desk lamp"), &json!("14.50")),
        "{}",
        item.body
    );
    // Without the form's token: refused.
    let forged = staff
        .post(
            &url,
            &[("name", "x"), ("description", ""), ("price", "1")],
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Ann is signed in at the auth server like anyone, but the console refuses her.
    let mut ann_browser = Agent::new();
    let refused = console_sign_in(&mut ann_browser, &rs_url, &auth_url, ANN).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("Staff only"), "{}", refused.body);
    let again = ann_browser.get(&format!("{rs_url}/admin/")).await;
    assert_eq!(again.status, StatusCode::FOUND, "still not in");
}
