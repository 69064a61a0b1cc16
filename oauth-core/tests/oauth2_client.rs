//! The authorization-code + PKCE flow over real HTTP, with the `oauth2` crate as the
//! client, used as a service embedding it would: the server listens on a loopback
//! port, a reqwest "browser" (no redirects followed, the session cookie carried by
//! hand) signs in and consents, and `oauth2`'s `BasicClient`, over an
//! `AsyncHttpClient` built on the workspace's reqwest, exchanges the code, refreshes,
//! and introspects. Runs on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use common::{Backend, PASSWORD};
use oauth_core::pages::Pages;
use oauth_core::sea::sea_orm::ConnectionTrait as _;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    AuthServer, ClientRegistry, Email, GrantType, NewUser, Password, PasswordHasher, ScryptParams,
    UserStore,
};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::url::Url;
use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    HttpClientError, HttpRequest, HttpResponse, IntrospectionUrl, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenIntrospectionResponse as _,
    TokenResponse as _, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};

const PUBLIC_CLIENT: &str = "native-app";
const REGISTERED_REDIRECT: &str = "http://127.0.0.1/callback";
/// What the app actually listens on: a loopback redirect with a port of its own
/// (RFC 8252 §7.3), which the registered URI without a port must accept.
const APP_REDIRECT: &str = "http://127.0.0.1:48123/callback";
const RESOURCE_SERVER: &str = "resource-server";
const RESOURCE_SECRET: &str = "rs-secret-for-introspection";
const EMAIL: &str = "pkce@example.com";

macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let server = super::Server::start(super::Backend::Sqlite).await.unwrap();
                super::$name(&server).await;
                server.stop().await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(server) = super::Server::start(super::Backend::Postgres).await else {
                    $crate::common::postgres_skipped();
                    return;
                };
                super::$name(&server).await;
                server.stop().await;
            }
        )* }
    };
}

on_each_backend!(authorization_code_pkce_refresh_and_introspection);

// ---------------------------------------------------------------------------------
// The server, on a real loopback listener.

struct Server {
    issuer: String,
    store: Arc<SeaOrmStore>,
    hasher: PasswordHasher,
    task: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Server {
    /// `None` for PostgreSQL when `TEST_DATABASE_URL` is unset.
    async fn start(backend: Backend) -> Option<Self> {
        let (store, dir, pg) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("as.db").display());
                let store = SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap();
                (store, Some(dir), None)
            }
            Backend::Postgres => {
                let url = std::env::var("TEST_DATABASE_URL").ok()?;
                let schema = common::unique_schema();
                let store = SeaOrmStore::connect(StoreConfig::new(&url).schema(&schema))
                    .await
                    .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but unusable: {e}"));
                (store, None, Some((url, schema)))
            }
        };
        store.migrate().await.unwrap();
        let store = Arc::new(store);
        let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let router = AuthServer::from_store(store.clone())
            .pages(Pages::new(store.as_ref().clone()))
            .password_hasher(hasher.clone())
            .issuer_url(issuer.clone())
            .router()
            .unwrap();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        let server = Self {
            issuer,
            store,
            hasher,
            task,
            _dir: dir,
            pg,
        };
        server
            .register(
                PUBLIC_CLIENT,
                None,
                &[GrantType::AuthorizationCode, GrantType::RefreshToken],
                &[REGISTERED_REDIRECT],
                "read write",
            )
            .await;
        server
            .register(
                RESOURCE_SERVER,
                Some(RESOURCE_SECRET),
                &[GrantType::ClientCredentials],
                &[],
                "introspection",
            )
            .await;
        let hash = server.hasher.hash(&Password::new(PASSWORD)).await.unwrap();
        server
            .store
            .create_user(NewUser::new(
                Email::parse(EMAIL).unwrap(),
                hash,
                chrono::Utc::now(),
            ))
            .await
            .unwrap();
        Some(server)
    }

    async fn register(
        &self,
        id: &str,
        secret: Option<&str>,
        grants: &[GrantType],
        redirect_uris: &[&str],
        scope: &str,
    ) {
        let mut client =
            common::client_record(&self.hasher, id, secret, grants, scope, redirect_uris).await;
        client.name = format!("The {id}");
        self.store.register_client(client).await.unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        if let Some((url, schema)) = self.pg {
            let admin = SeaOrmStore::connect(StoreConfig::new(url).max_connections(1))
                .await
                .unwrap();
            admin
                .connection()
                .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------
// oauth2's HTTP client, on the workspace's reqwest.

/// `oauth2::AsyncHttpClient` over reqwest 0.13 (oauth2 5 ships an impl only for its own
/// optional reqwest 0.12). Redirects are never followed (RFC 6749 §3.2 endpoints
/// answer directly; following one could send credentials elsewhere). Keeps the last
/// response body, so the test can see what the server sent where oauth2 is lenient.
#[derive(Clone, Debug)]
struct Http {
    client: reqwest::Client,
    last_body: Arc<Mutex<Vec<u8>>>,
}

impl Http {
    fn new() -> Self {
        Self {
            client: no_redirects(),
            last_body: Arc::default(),
        }
    }

    fn last_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.last_body.lock().unwrap()).unwrap()
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(Box::new)?;
            let response = self.client.execute(request).await.map_err(Box::new)?;
            let mut builder = oauth2::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await.map_err(Box::new)?.to_vec();
            body.clone_into(&mut self.last_body.lock().unwrap());
            builder.body(body).map_err(HttpClientError::Http)
        })
    }
}

fn no_redirects() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`: the library's helper installs ring.
    oauth_core::resource::ensure_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------
// The browser: reqwest without redirects, cookies carried by hand.

struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: HashMap<String, String>,
}

#[derive(Debug)]
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new(origin: &str) -> Self {
        Self {
            http: no_redirects(),
            origin: origin.to_owned(),
            cookies: HashMap::new(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.origin)
        } else {
            url.to_owned()
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(self.absolute(url));
        self.send(req).await
    }

    /// A form submission as a browser sends it: with `Origin` (the server checks it).
    async fn post(&mut self, url: &str, fields: &[(String, String)]) -> Page {
        let req = self
            .http
            .post(self.absolute(url))
            .header(header::ORIGIN, self.origin.clone())
            .form(fields);
        self.send(req).await
    }

    async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Page {
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(header::COOKIE, cookie);
        }
        let res = req.send().await.unwrap();
        for set in res.headers().get_all(header::SET_COOKIE) {
            self.remember(set);
        }
        Page {
            status: res.status(),
            location: res
                .headers()
                .get(header::LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: res.text().await.unwrap(),
        }
    }

    fn remember(&mut self, set_cookie: &HeaderValue) {
        let set_cookie = set_cookie.to_str().unwrap();
        let mut parts = set_cookie.split(';').map(str::trim);
        let (name, value) = parts.next().unwrap().split_once('=').unwrap();
        let expired = parts.any(|a| {
            let a = a.to_ascii_lowercase();
            a == "max-age=0" || a.starts_with("max-age=-")
        });
        if expired || value.is_empty() {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }
}

/// The hidden inputs of the page's form that posts to `action`, in order, unescaped
/// (signed-in pages also carry a sign-out form).
fn hidden_inputs(html: &str, action: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let marker = format!("action=\"{action}\"");
    let form = html
        .split("<form")
        .find(|f| f.split('>').next().unwrap().contains(&marker))
        .unwrap_or_else(|| panic!("no form posting to {action} in {html}"));
    let form = form.split("</form>").next().unwrap();
    for tag in form.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap();
        if attr(tag, "type").as_deref() != Some("hidden") {
            continue;
        }
        out.push((attr(tag, "name").unwrap(), attr(tag, "value").unwrap()));
    }
    out
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or_else(|| panic!("no {name} in {fields:?}"), |(_, v)| v.as_str())
}

/// The query parameters of the redirect back to the app.
fn callback(location: &str) -> HashMap<String, String> {
    let url = Url::parse(location).unwrap();
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path(),
        APP_REDIRECT,
        "the code goes to the redirect URI the app sent"
    );
    url.query_pairs().into_owned().collect()
}

/// Signs in on the login page that `login_location` points to and follows its `next`.
async fn sign_in(browser: &mut Browser, login_location: &str) -> Page {
    let form = browser.get(login_location).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    // The form's CSRF token is bound to a signed cookie; no session is stored
    // before the sign-in (issue 19, hole 5).
    assert!(
        browser.cookies.contains_key("oauth_csrf")
            && !browser.cookies.contains_key("oauth_session"),
        "the login page sets the CSRF cookie, not a session: {:?}",
        browser.cookies
    );
    let mut fields = hidden_inputs(&form.body, "/accounts/login/");
    let next = field(&fields, "next").to_owned();
    fields.push(("username".into(), EMAIL.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let before = browser.cookies.clone();
    let done = browser.post("/accounts/login/", &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some(next.as_str()));
    assert_ne!(
        browser.cookies.get("oauth_session"),
        before.get("oauth_session"),
        "signing in rotates the session id"
    );
    browser.get(&next).await
}

/// Submits the consent page with Allow; the 303's `Location`.
async fn allow(browser: &mut Browser, consent: &Page) -> String {
    assert_eq!(consent.status, StatusCode::OK, "{consent:?}");
    let mut fields = hidden_inputs(&consent.body, "/o/authorize/");
    assert!(!field(&fields, "csrfmiddlewaretoken").is_empty());
    fields.push(("allow".into(), "Authorize".into()));
    let answer = browser.post("/o/authorize/", &fields).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{answer:?}");
    answer.location.unwrap()
}

#[track_caller]
fn assert_invalid_grant<T: std::fmt::Debug>(
    result: Result<
        T,
        RequestTokenError<
            HttpClientError<reqwest::Error>,
            oauth2::StandardErrorResponse<BasicErrorResponseType>,
        >,
    >,
    what: &str,
) {
    match result {
        Err(RequestTokenError::ServerResponse(e))
            if *e.error() == BasicErrorResponseType::InvalidGrant => {}
        other => panic!("{what}: expected invalid_grant, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------

async fn authorization_code_pkce_refresh_and_introspection(server: &Server) {
    let http = Http::new();
    let client = BasicClient::new(ClientId::new(PUBLIC_CLIENT.into()))
        .set_auth_uri(AuthUrl::new(server.url("/o/authorize/")).unwrap())
        .set_token_uri(TokenUrl::new(server.url("/o/token/")).unwrap())
        .set_redirect_uri(RedirectUrl::new(APP_REDIRECT.into()).unwrap());
    let mut browser = Browser::new(&server.issuer);

    // 1. The app sends the browser to the authorization endpoint.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .add_scope(Scope::new("write".into()))
        .set_pkce_challenge(challenge)
        .url();
    let first = browser.get(auth_url.as_str()).await;
    assert_eq!(first.status, StatusCode::FOUND, "{first:?}");
    let login = first.location.clone().unwrap();
    let path_and_query = format!("{}?{}", auth_url.path(), auth_url.query().unwrap());
    let login_url = Url::parse(&server.url(&login)).unwrap();
    assert_eq!(login_url.path(), "/accounts/login/");
    assert_eq!(
        login_url.query_pairs().collect::<Vec<_>>(),
        vec![("next".into(), path_and_query.into())],
        "no session: to the login page, coming back to the same request"
    );

    // 2. Sign in, come back, consent.
    let consent = sign_in(&mut browser, &login).await;
    let hidden = hidden_inputs(&consent.body, "/o/authorize/");
    assert_eq!(field(&hidden, "client_id"), PUBLIC_CLIENT);
    assert_eq!(field(&hidden, "state"), csrf.secret());
    assert_eq!(field(&hidden, "redirect_uri"), APP_REDIRECT);
    let location = allow(&mut browser, &consent).await;
    let back = callback(&location);
    assert_eq!(back.get("state"), Some(csrf.secret()), "state comes back");
    assert_eq!(
        back.get("iss"),
        Some(&server.issuer),
        "RFC 9207 iss is the issuer"
    );
    let code = back["code"].clone();

    // 3. The app exchanges the code with its verifier.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange failed: {e:?} {:?}", http.last_json()));
    assert_eq!(*tokens.token_type(), BasicTokenType::Bearer);
    assert_eq!(
        http.last_json()["token_type"],
        "Bearer",
        "as RFC 6750 spells it (oauth2 would also accept other cases)"
    );
    let scopes: Vec<&str> = tokens
        .scopes()
        .expect("the token response names the scope")
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(scopes, ["read", "write"]);
    assert!(tokens.expires_in().is_some_and(|d| d.as_secs() > 0));
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();

    // 4. A second, fresh code redeemed with the wrong verifier is refused; the code
    // is used up by that attempt, so the right verifier is refused afterwards too.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .set_pkce_challenge(challenge)
        .url();
    let page = browser.get(auth_url.as_str()).await;
    let location = match page.status {
        // Signed in already: the consent page again (a loopback public client's
        // consent is not remembered), or straight back with a code.
        StatusCode::OK => allow(&mut browser, &page).await,
        StatusCode::FOUND => page.location.clone().unwrap(),
        _ => panic!("{page:?}"),
    };
    let back = callback(&location);
    assert_eq!(back.get("state"), Some(csrf.secret()));
    let code = back["code"].clone();
    let (_, wrong) = PkceCodeChallenge::new_random_sha256();
    assert_invalid_grant(
        client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .set_pkce_verifier(wrong)
            .request_async(&http)
            .await,
        "wrong PKCE verifier",
    );
    assert_invalid_grant(
        client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.secret().clone()))
            .request_async(&http)
            .await,
        "a code after a failed attempt",
    );

    // 5. Refresh: new tokens, a new refresh token.
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh failed: {e:?} {:?}", http.last_json()));
    assert_eq!(*refreshed.token_type(), BasicTokenType::Bearer);
    assert_eq!(http.last_json()["token_type"], "Bearer");
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    let second_refresh = refreshed
        .refresh_token()
        .expect("a rotated refresh token")
        .clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());

    // 6. A resource server introspects the new access token with Basic auth.
    let resource_server = BasicClient::new(ClientId::new(RESOURCE_SERVER.into()))
        .set_client_secret(ClientSecret::new(RESOURCE_SECRET.into()))
        .set_introspection_url(IntrospectionUrl::new(server.url("/o/introspect/")).unwrap());
    let introspect = async |token: &oauth2::AccessToken| {
        resource_server
            .introspect(token)
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("introspection failed: {e:?} {:?}", http.last_json()))
    };
    let info = introspect(refreshed.access_token()).await;
    assert!(info.active(), "{:?}", http.last_json());
    assert_eq!(info.client_id().map(|c| c.as_str()), Some(PUBLIC_CLIENT));
    assert_eq!(info.username(), Some(EMAIL));
    assert_eq!(info.token_type(), Some(&BasicTokenType::Bearer));
    let scopes: Vec<&str> = info.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["read", "write"]);

    // 7. The rotated-out refresh token is refused, and its replay is taken as theft
    // (RFC 9700 §4.14.2): every token of the grant stops working.
    assert_invalid_grant(
        client
            .exchange_refresh_token(&first_refresh)
            .request_async(&http)
            .await,
        "the rotated-out refresh token",
    );
    assert!(
        !introspect(refreshed.access_token()).await.active(),
        "a replayed refresh token revokes its grant's access tokens"
    );
    assert_invalid_grant(
        client
            .exchange_refresh_token(&second_refresh)
            .request_async(&http)
            .await,
        "a refresh token of a grant revoked by a replay",
    );
}
