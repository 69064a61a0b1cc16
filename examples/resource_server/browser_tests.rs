//! The authorization-code + PKCE flow in a real browser: headless Chromium driven
//! over WebDriver (fantoccini talking to a chromedriver this test starts) through
//! the auth server's login, consent and authorized-applications pages, with the
//! code exchanged over HTTP and the token used at this resource server.
//!
//! Without Chromium or chromedriver the test is skipped with a note on standard
//! error, unless `CI` is set: then it fails. Screenshots of the pages go to
//! `target/screenshots/`, and also to `docs/images/` with `UPDATE_SCREENSHOTS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fantoccini::{ClientBuilder, Locator};
use oauth_core::{
    Client, ClientKind, ClientRegistry, GrantType, Password, PasswordHasher, ScryptParams,
};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tests::{PASSWORD, World, world};

/// The whole browser flow must end within this, or the test fails.
const FLOW_LIMIT: Duration = Duration::from_secs(120);
/// One page to appear, one redirect to land.
const STEP_LIMIT: Duration = Duration::from_secs(15);
const DESKTOP: (u32, u32) = (1000, 800);
const PHONE: (u32, u32) = (390, 844);

const EMAIL: &str = "ann@example.com";
const PUBLIC_ID: &str = "pocket-notes";
const PUBLIC_NAME: &str = "Pocket Notes";
const CONFIDENTIAL_ID: &str = "ledger";
const CONFIDENTIAL_NAME: &str = "Ledger";
const CONFIDENTIAL_SECRET: &str = "ledger-secret-for-tests";
/// Registered redirect URI: a loopback one, which matches any port (RFC 8252).
const REGISTERED_REDIRECT: &str = "http://127.0.0.1/callback";

/// `program` on `PATH` (or in `/usr/bin`), or the path in the env var `over`.
fn find_program(over: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(over) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// A chromedriver child process, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn spawn(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", program.display()));
        Self { child, port }
    }

    /// Waits (bounded) until the driver accepts connections.
    async fn ready(&mut self) {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {} within {STEP_LIMIT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

fn save_screenshot(name: &str, png: &[u8]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/screenshots")];
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        dirs.push(root.join("docs/images"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// The browser and what the flow talks to.
struct Flow {
    browser: fantoccini::Client,
    w: World,
    issuer: String,
    callback: String,
}

impl Flow {
    /// Polls (bounded) until the browser's URL starts with `prefix`.
    async fn wait_url(&self, prefix: &str) -> String {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let url = self.browser.current_url().await.unwrap().to_string();
            if url.starts_with(prefix) {
                return url;
            }
            if Instant::now() >= deadline {
                let body = self.text("body").await;
                panic!("expected a page under {prefix}, still at {url}: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.browser
            .wait()
            .at_most(STEP_LIMIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        match self.browser.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(e) => format!("<no {css}: {e}>"),
        }
    }

    async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = vec![];
        for e in self.browser.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap());
        }
        out
    }

    async fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.browser
            .wait()
            .at_most(STEP_LIMIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) {
        save_screenshot(name, &self.browser.screenshot().await.unwrap());
    }

    async fn goto(&self, url: &str) {
        self.browser.goto(url).await.unwrap();
    }

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

async fn register_clients(w: &World) {
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
                redirect_uris: vec![REGISTERED_REDIRECT.into()],
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
    f.browser.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    f.screenshot("consent-phone.png").await;
    f.browser
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .unwrap();
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
    let chromium = find_program(
        "CHROME_BIN",
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
    );
    let chromedriver = find_program("CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium/chromedriver were not found: install the Debian packages \
             chromium and chromium-driver (or set CHROME_BIN and CHROMEDRIVER)"
        );
        // Straight to the process's stderr: the test harness would capture eprintln!.
        let _ = writeln!(
            std::io::stderr(),
            "browser tests skipped: chromium/chromedriver not found"
        );
        return;
    };

    let w = world(Duration::from_secs(1), Duration::from_secs(3600)).await;
    w.user(EMAIL).await;
    register_clients(&w).await;
    let callback = callback_server().await;
    let issuer = w.auth.url();

    let mut driver = Driver::spawn(&chromedriver);
    driver.ready().await;
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--hide-scrollbars".to_owned(),
        format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": chromium, "args": args}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = tokio::time::timeout(
        Duration::from_secs(30),
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port)),
    )
    .await
    .expect("chromedriver did not open a session within 30 s")
    .unwrap_or_else(|e| panic!("could not open a Chromium session: {e}"));
    browser
        .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
            Some(STEP_LIMIT),
            Some(STEP_LIMIT),
            Some(Duration::ZERO),
        ))
        .await
        .unwrap();
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    let f = Flow {
        browser: browser.clone(),
        w,
        issuer,
        callback,
    };
    // In a task of its own, so that a failed step still closes the browser.
    let outcome = tokio::spawn(tokio::time::timeout(FLOW_LIMIT, flow(f))).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), browser.close()).await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the browser flow took longer than {FLOW_LIMIT:?}"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    eprintln!("browser flow took {:.1?}", started.elapsed());
}
