//! The authorization-code + PKCE flow in a real browser: headless Chromium driven
//! over WebDriver (fantoccini talking to a chromedriver this test starts) through
//! the auth server's login, consent and authorized-applications pages, with the
//! code exchanged over HTTP and the token used at this resource server.
//!
//! The browser, the skip rule (no Chromium and no `CI`: skipped) and the
//! screenshots are [`crate::chromium`]'s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oauth_core::{
    Client, ClientKind, ClientRegistry, GrantType, Password, PasswordHasher, ScryptParams,
};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::chromium::{Chromium, Web};
use crate::tests::{PASSWORD, World, world};

/// The whole browser flow must end within this, or the test fails.
const FLOW_LIMIT: Duration = Duration::from_secs(120);
const DESKTOP: (u32, u32) = (1000, 800);

const EMAIL: &str = "ann@example.com";
const PUBLIC_ID: &str = "pocket-notes";
const PUBLIC_NAME: &str = "Pocket Notes";
const CONFIDENTIAL_ID: &str = "ledger";
const CONFIDENTIAL_NAME: &str = "Ledger";
const CONFIDENTIAL_SECRET: &str = "ledger-secret-for-tests";
/// The public client's registered redirect URI: a loopback one, which matches any
/// port for a public (native) client (RFC 8252 §7.3). The confidential client
/// registers the callback's exact URL, port included.
const REGISTERED_REDIRECT: &str = "http://127.0.0.1/callback";

/// A PKCE verifier and its S256 challenge.
fn pkce(label: &str) -> (String, String) {
    let verifier = format!("{label}-verifier-{}", "k".repeat(48));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// One authorization request: its URL and what the client keeps.
struct Request {
    url: String,
    state: String,
    verifier: String,
}

fn authorize(issuer: &str, client_id: &str, redirect: &str, scope: &str, state: &str) -> Request {
    let (verifier, challenge) = pkce(state);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    Request {
        url: format!("{issuer}/o/authorize/?{query}"),
        state: state.to_owned(),
        verifier,
    }
}

/// The client's redirect target: a tiny server answering "ok" at `/callback`.
async fn callback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/callback", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}/callback")
}

/// The browser and what the flow talks to.
struct Flow {
    web: Web,
    w: World,
    issuer: String,
    callback: String,
}

impl std::ops::Deref for Flow {
    type Target = Web;

    fn deref(&self) -> &Web {
        &self.web
    }
}

impl Flow {
    /// Expects the consent page for `client_name` with these scope lines.
    async fn expect_consent(&self, client_name: &str, scopes: &[&str]) {
        self.wait_url(&format!("{}/o/authorize/", self.issuer))
            .await;
        assert_eq!(
            self.find("h1").await.text().await.unwrap(),
            format!("Authorize {client_name}?")
        );
        assert_eq!(self.texts("ul.scopes li").await, scopes);
        let card = self.text("form.card").await;
        assert!(
            card.contains(&format!("You will be sent back to {}", self.callback)),
            "{card}"
        );
    }

    /// Waits for the callback and returns its query, checking `state` and `iss`.
    async fn at_callback(&self, request: &Request) -> Vec<(String, String)> {
        let url = self.wait_url(&format!("{}?", self.callback)).await;
        assert_eq!(self.text("body").await, "ok");
        let raw = url.split_once('?').map_or("", |(_, q)| q);
        let query: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            param(&query, "state"),
            Some(request.state.as_str()),
            "{url}"
        );
        assert_eq!(param(&query, "iss"), Some(self.issuer.as_str()), "{url}");
        query
    }

    /// Exchanges the code; `secret` for the confidential client.
    async fn exchange(
        &self,
        client_id: &str,
        secret: Option<&str>,
        code: &str,
        r: &Request,
    ) -> Value {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.callback.as_str()),
            ("code_verifier", r.verifier.as_str()),
        ];
        let mut req = self.w.http.post(format!("{}/o/token/", self.issuer));
        req = match secret {
            Some(s) => req.basic_auth(client_id, Some(s)).form(&form),
            None => req.form(&[form.as_slice(), &[("client_id", client_id)]].concat()),
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let json: Value = res.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{json}");
        json
    }

    async fn introspect(&self, token: &str) -> bool {
        let res = self
            .w
            .http
            .post(format!("{}/o/introspect/", self.issuer))
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let json: Value = res.json().await.unwrap();
        json["active"].as_bool().unwrap()
    }

    async fn items_status(&self, token: &str) -> StatusCode {
        self.w.get("/items/", token).await.status
    }

    /// Polls (bounded) until the resource server answers 401 for `token`.
    async fn until_refused(&self, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.items_status(token).await {
                StatusCode::UNAUTHORIZED => return,
                StatusCode::OK => {}
                other => panic!("GET /items/ answered {other} for a revoked token"),
            }
            assert!(Instant::now() < deadline, "revoked token still accepted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn access_token(json: &Value) -> String {
    json["access_token"].as_str().unwrap().to_owned()
}

async fn register_clients(w: &World, callback: &str) {
    let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap();
    for (id, name, kind) in [
        (PUBLIC_ID, PUBLIC_NAME, ClientKind::Public),
        (CONFIDENTIAL_ID, CONFIDENTIAL_NAME, ClientKind::Confidential),
    ] {
        let secret_hash = match kind {
            ClientKind::Confidential => Some(
                hasher
                    .hash(&Password::new(CONFIDENTIAL_SECRET))
                    .await
                    .unwrap(),
            ),
            ClientKind::Public => None,
        };
        w.auth
            .store
            .register_client(Client {
                client_id: id.into(),
                secret_hash,
                kind,
                name: name.into(),
                grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                redirect_uris: vec![match kind {
                    ClientKind::Public => REGISTERED_REDIRECT.into(),
                    ClientKind::Confidential => callback.into(),
                }],
                allowed_origins: vec![],
                skip_authorization: false,
                allowed_scope: "read write".parse().unwrap(),
                default_scope: "read".parse().unwrap(),
                owner: None,
                created_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
    }
}

/// The steps, in one browser session.
async fn flow(f: Flow) {
    let issuer = f.issuer.clone();
    let cb = f.callback.clone();

    // 1. Not signed in: the login page, then the consent page, then the callback.
    let r = authorize(&issuer, PUBLIC_ID, &cb, "read write", "s-public-1");
    f.goto(&r.url).await;
    f.wait_url(&format!("{issuer}/accounts/login/?next=")).await;
    assert_eq!(f.find("h1").await.text().await.unwrap(), "Sign in");
    f.find("input[name=username]")
        .await
        .send_keys(EMAIL)
        .await
        .unwrap();
    f.find("input[name=password]")
        .await
        .send_keys(PASSWORD)
        .await
        .unwrap();
    f.screenshot("login.png").await;
    f.click_button("Sign in").await;
    f.expect_consent(
        PUBLIC_NAME,
        &[
            "read Read your data",
            "write Create, change and delete your data",
        ],
    )
    .await;
    f.screenshot("consent.png").await;
    f.phone().await;
    f.screenshot("consent-phone.png").await;
    f.desktop().await;
    f.click_button("Allow").await;
    let query = f.at_callback(&r).await;
    assert_eq!(param(&query, "error"), None);
    let code = param(&query, "code").expect("a code").to_owned();
    let tokens = f.exchange(PUBLIC_ID, None, &code, &r).await;
    assert_eq!(tokens["scope"], "read write", "{tokens}");
    let public_token = access_token(&tokens);
    assert_eq!(f.items_status(&public_token).await, StatusCode::OK);

    // 2. The confidential client: asked once, then remembered.
    let r = authorize(&issuer, CONFIDENTIAL_ID, &cb, "read", "s-ledger-1");
    f.goto(&r.url).await;
    f.expect_consent(CONFIDENTIAL_NAME, &["read Read your data"])
        .await;
    f.click_button("Allow").await;
    let query = f.at_callback(&r).await;
    let code = param(&query, "code").expect("a code");
    let ledger_first = access_token(
        &f.exchange(CONFIDENTIAL_ID, Some(CONFIDENTIAL_SECRET), code, &r)
            .await,
    );
    let r = authorize(&issuer, CONFIDENTIAL_ID, &cb, "read", "s-ledger-2");
    f.goto(&r.url).await;
    // No page in between: the browser is at the callback as soon as it has loaded.
    let landed = f.browser.current_url().await.unwrap();
    assert!(
        landed.as_str().starts_with(&cb),
        "consent asked again: {landed}"
    );
    let query = f.at_callback(&r).await;
    let code = param(&query, "code").expect("a code");
    let ledger_second = access_token(
        &f.exchange(CONFIDENTIAL_ID, Some(CONFIDENTIAL_SECRET), code, &r)
            .await,
    );
    assert_eq!(f.items_status(&ledger_first).await, StatusCode::OK);
    assert_eq!(f.items_status(&ledger_second).await, StatusCode::OK);

    // The loopback public client could be any app on the machine: asked again.
    // 3. Cancel: access_denied at the callback.
    let r = authorize(&issuer, PUBLIC_ID, &cb, "read write", "s-public-2");
    f.goto(&r.url).await;
    f.expect_consent(
        PUBLIC_NAME,
        &[
            "read Read your data",
            "write Create, change and delete your data",
        ],
    )
    .await;
    f.click_button("Cancel").await;
    let query = f.at_callback(&r).await;
    assert_eq!(param(&query, "error"), Some("access_denied"), "{query:?}");
    assert_eq!(param(&query, "code"), None);

    // 4. The authorized applications; revoking Ledger ends its tokens.
    f.goto(&format!("{issuer}/o/authorized_tokens/")).await;
    assert_eq!(
        f.find("h1").await.text().await.unwrap(),
        "Authorized applications"
    );
    let mut apps = f.texts("ul.apps h2").await;
    apps.sort();
    assert_eq!(apps, [CONFIDENTIAL_NAME, PUBLIC_NAME]);
    f.screenshot("authorized.png").await;
    f.click_button(&format!("Revoke access of {CONFIDENTIAL_NAME}"))
        .await;
    assert_eq!(
        f.find("p.message").await.text().await.unwrap(),
        format!("Access of {CONFIDENTIAL_NAME} was revoked.")
    );
    assert_eq!(f.texts("ul.apps h2").await, [PUBLIC_NAME]);
    assert!(!f.introspect(&ledger_first).await);
    assert!(!f.introspect(&ledger_second).await);
    assert!(f.introspect(&public_token).await);
    // The resource server caches a positive answer for at most its cap (1 s here).
    f.until_refused(&ledger_first).await;
    f.until_refused(&ledger_second).await;
    assert_eq!(f.items_status(&public_token).await, StatusCode::OK);

    // The consent was forgotten too: Ledger is asked again.
    let r = authorize(&issuer, CONFIDENTIAL_ID, &cb, "read", "s-ledger-3");
    f.goto(&r.url).await;
    f.expect_consent(CONFIDENTIAL_NAME, &["read Read your data"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_flow_in_chromium() {
    let started = Instant::now();
    let Some(chromium) = Chromium::launch(DESKTOP).await else {
        return;
    };
    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    w.user(EMAIL).await;
    let callback = callback_server().await;
    register_clients(&w, &callback).await;
    let issuer = w.auth.url();
    chromium
        .run(FLOW_LIMIT, |web| {
            flow(Flow {
                web,
                w,
                issuer,
                callback,
            })
        })
        .await;
    eprintln!("browser flow took {:.1?}", started.elapsed());
}
