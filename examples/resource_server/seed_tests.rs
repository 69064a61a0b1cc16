//! The example auth server as shipped, over real processes: its demo seed
//! (issue 10) on a fresh SQLite database, and `SEED_DEMO=false`. A reqwest
//! client plays the browser ([`Agent`]: cookies, redirects followed by hand).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

use crate::admin_tests::{Agent, Page};
use crate::fault_tests::{Answer, As, auth_env, sqlite_url};
use crate::process::{Example, Process, client, run};

/// The demo public client and its redirect URI, as issue 10 names them.
const DEMO_APP: &str = "demo-app";
const DEMO_REDIRECT: &str = "http://127.0.0.1:8765/callback";

/// The auth server on a fresh database in `dir`, with `extra` settings.
pub(crate) async fn auth_server(dir: &Path, extra: &[(&'static str, &str)]) -> Process {
    let mut env = auth_env(&sqlite_url(dir, "as.db"));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Process::start(Example::AuthServer, &env, &dir.join("as.log")).await
}

/// `auth_server <args>` on the database in `dir`.
pub(crate) async fn manage(dir: &Path, args: &[&str]) -> crate::process::Finished {
    run(
        Example::AuthServer,
        args,
        &auth_env(&sqlite_url(dir, "as.db")),
    )
    .await
}

/// The PKCE verifier of the requests `authorize_url` makes.
pub(crate) const VERIFIER: &str = "a-fixed-verifier-for-these-tests-0123456789";

/// The S256 challenge of `verifier` (RFC 7636 §4.2).
fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// An authorization request of `client_id` with the challenge of [`VERIFIER`].
pub(crate) fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
) -> String {
    let challenge = s256(VERIFIER);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", "xyz-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    format!("{base}/o/authorize/?{query}")
}

/// The query parameters of `url`.
fn query_of(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// Every hidden input of the form posting to `action`, in order.
pub(crate) fn hidden_fields(page: &Page, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"{action}\"");
    let at = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no form to {action}: {}", page.body));
    let form = &page.body[at..];
    let mut rest = &form[..form.find("</form>").unwrap()];
    let mut out = vec![];
    while let Some(at) = rest.find("<input type=\"hidden\"") {
        let tag = &rest[at..at + rest[at..].find('>').unwrap()];
        let attr = |name: &str| {
            let marker = format!("{name}=\"");
            let start = tag.find(&marker).unwrap() + marker.len();
            let end = start + tag[start..].find('"').unwrap();
            crate::admin_tests::unescape(&tag[start..end])
        };
        out.push((attr("name"), attr("value")));
        rest = &rest[at + tag.len()..];
    }
    out
}

/// Allows the consent page `consent`; returns the authorization response (a 302).
async fn allow(agent: &mut Agent, base: &str, consent: &Page) -> Page {
    let mut form = hidden_fields(consent, "/o/authorize/");
    form.push(("allow".into(), "Authorize".into()));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (&**k, &**v)).collect();
    agent
        .post(&format!("{base}/o/authorize/"), &form, &[])
        .await
}

pub(crate) async fn token(
    base: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> Answer {
    let mut req = client().post(format!("{base}/o/token/")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    Answer::read(req.send().await.unwrap()).await
}

/// With `SEED_DEMO=false` a fresh database has no client: neither `rs-id` nor
/// `demo-app` exists, and no authorization URL is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_false_registers_no_client() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_server(dir.path(), &[("SEED_DEMO", "false")]).await;
    let base = auth.url();
    let as_rs = As::new(base.clone());
    assert_eq!(as_rs.signup("ann@example.com").await.unwrap().status, 201);

    for form in [
        &[("grant_type", "client_credentials")][..],
        &[
            ("grant_type", "password"),
            ("username", "ann@example.com"),
            ("password", crate::tests::PASSWORD),
        ][..],
    ] {
        let refused = as_rs.token("rs-secret", form).await.unwrap();
        assert_eq!(
            (refused.status, refused.json()["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{}",
            refused.body
        );
    }
    // The unknown demo-app: the 400 error page, never a redirect.
    let page = client()
        .get(authorize_url(&base, DEMO_APP, DEMO_REDIRECT, "read write"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.headers().get("location").is_none());
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let refused = token(
        &base,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEMO_APP),
            ("code", "x"),
            ("redirect_uri", DEMO_REDIRECT),
            ("code_verifier", &"v".repeat(43)),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    let log = auth.log_text();
    assert!(!log.contains("registered the demo clients"), "{log}");
    assert!(!log.contains("/o/authorize/?"), "{log}");
}

/// The word after `marker` in `text`, up to white space.
pub(crate) fn word_after<'a>(text: &'a str, marker: &str) -> &'a str {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"))
        + marker.len();
    text[at..].split_whitespace().next().unwrap()
}

/// On a fresh database the shipped seed registers `demo-app` as issue 10 says,
/// and the authorization URL and verifier the server logs complete the flow:
/// sign in, consent (asked each time: a public client on a loopback redirect),
/// the code, its exchange by the public client with the logged verifier, a
/// refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_demo_authorization_url_completes_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_server(dir.path(), &[]).await;
    let base = auth.url();
    let log = auth.log_text();
    let url = format!("{base}/o/authorize/?{}", word_after(&log, "/o/authorize/?"));
    let verifier = word_after(&log, "code_verifier=").to_owned();

    // The logged URL: demo-app's registration and a fresh S256 pair.
    let q = query_of(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], DEMO_APP);
    assert_eq!(q["redirect_uri"], DEMO_REDIRECT);
    assert_eq!(q["scope"], "read write");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 16, "{url}");
    let challenge = s256(&verifier);
    assert_eq!(q["code_challenge"], challenge, "the logged verifier's");
    assert!((43..=128).contains(&verifier.len()));

    // Exactly the registered redirect URI: another one is the 400 page.
    let elsewhere = client()
        .get(authorize_url(
            &base,
            DEMO_APP,
            "http://127.0.0.1:8765/other",
            "read",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::BAD_REQUEST);

    let as_rs = As::new(base.clone());
    assert_eq!(as_rs.signup("ann@example.com").await.unwrap().status, 201);
    let mut agent = Agent::new();
    let to_login = agent.get(&url).await;
    let consent = agent.sign_in_at(&to_login, "ann@example.com").await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    for text in [
        "Authorize <span class=\"client\">Demo app</span>?",
        "<code>read</code>",
        "<code>write</code>",
        DEMO_REDIRECT,
    ] {
        assert!(consent.body.contains(text), "{text}: {}", consent.body);
    }
    let answer = allow(&mut agent, &base, &consent).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let callback = answer.location();
    assert!(
        callback.starts_with(&format!("{DEMO_REDIRECT}?")),
        "{callback}"
    );
    let back = answer.query();
    assert_eq!(back["state"], q["state"]);
    assert_eq!(back["iss"], base);

    // A public client: its id, the code and the logged verifier, no secret.
    let exchange = |code: String| {
        let (base, verifier) = (base.clone(), verifier.clone());
        async move {
            token(
                &base,
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", DEMO_APP),
                    ("redirect_uri", DEMO_REDIRECT),
                    ("code_verifier", &verifier),
                    ("code", &code),
                ],
            )
            .await
        }
    };
    let tokens = exchange(back["code"].clone()).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let json: Value = tokens.json();
    assert_eq!(json["scope"], "read write");
    assert!(as_rs.active(&tokens.str("access_token")).await);
    let refreshed = token(
        &base,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEMO_APP),
            ("refresh_token", &tokens.str("refresh_token")),
        ],
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    // Single use.
    let replayed = exchange(back["code"].clone()).await;
    assert_eq!(
        replayed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        replayed.body
    );

    // Consent required, every time (loopback public client), for the same URL.
    let again = agent.get(&url).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("name=\"allow\""));
    // A scope demo-app is not allowed: back to the client with invalid_scope.
    let wider = agent
        .get(&authorize_url(&base, DEMO_APP, DEMO_REDIRECT, "admin"))
        .await;
    assert_eq!(wider.status, StatusCode::FOUND, "{}", wider.body);
    assert_eq!(wider.query()["error"], "invalid_scope");
}
