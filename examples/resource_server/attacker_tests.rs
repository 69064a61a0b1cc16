//! An attacker's walk through both example servers as shipped (issue 19's
//! acceptance): the binaries run as processes with their defaults (demo seed,
//! SQLite), and an ordinary user, Mallory, tries what a real attacker reaches for
//! first. Each step is refused or bounded; the figures are printed (`cargo test
//! attacker -- --nocapture`).
//!
//! 1. Register an application as an ordinary user and bounce through
//!    `/o/authorize/` to its off-site redirect URI.
//! 2. Ask for the privileged scopes (`introspection`, `admin`) from every kind of
//!    client and grant.
//! 3. Post an endless chunked body to each console form of both servers.
//! 4. Send 1,000 distinct request methods and count the metrics' series.
//! 5. GET the sign-in pages 10,000 times and count the stored sessions.
//! 6. Hold the revocation stream open past a rotation of its client's secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait as _, Database};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::admin_tests::{Agent, Page};
use crate::fault_tests::{auth_env, sqlite_url};
use crate::process::{Example, Process, client, free_port, run};
use crate::tests::PASSWORD;

const STAFF: &str = "boss@example.com";
const MALLORY: &str = "mallory@example.com";
const EVIL: &str = "https://evil.example/cb";

/// What one endless chunked upload achieved.
#[derive(Debug)]
struct Upload {
    /// Body bytes the server took before it answered or stopped reading.
    sent: u64,
    /// Its status line, or `None` when it closed without one.
    status: Option<String>,
}

/// Posts an endless chunked body to `path` (a form, with `cookie`): 64 KiB
/// chunks until the server answers, closes, or stops reading for a second, or
/// `cap` bytes have gone (an unbounded server reads them all).
async fn endless_upload(addr: SocketAddr, path: &str, cookie: &str, cap: u64) -> Upload {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\nCookie: {cookie}\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) | Err(_) => break,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(2).any(|w| w == b"\r\n") {
                        break;
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .filter(|l| l.starts_with("HTTP/"))
            .map(str::to_owned)
    });
    let data = vec![b'a'; 64 * 1024];
    let frame = [format!("{:x}\r\n", data.len()).as_bytes(), &data, b"\r\n"].concat();
    let mut sent = 0u64;
    while sent < cap && !reader.is_finished() {
        match tokio::time::timeout(Duration::from_secs(1), wr.write_all(&frame)).await {
            Ok(Ok(())) => sent += data.len() as u64,
            // Closed, or not read for a second.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    Upload { sent, status }
}

/// Signs `email` in at the auth server's own login page; the agent keeps the
/// session cookie.
async fn sign_in(agent: &mut Agent, auth: &str, email: &str) {
    let form = agent.get(&format!("{auth}/accounts/login/")).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let done = agent
        .post(
            &format!("{auth}/accounts/login/"),
            &[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("next", "/o/applications/"),
                ("username", email),
                ("password", PASSWORD),
            ],
            &[],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
}

/// The agent's cookies as one `Cookie` header value, for the raw uploads.
fn cookie_of(page: &Page) -> String {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The secret a page shows once (`<p class="secret" id="client_secret">`).
fn shown_secret(p: &Page) -> String {
    let marker = "id=\"client_secret\">";
    let start = p.body.find(marker).unwrap_or_else(|| panic!("{}", p.body)) + marker.len();
    let end = start + p.body[start..].find('<').unwrap();
    p.body[start..end].to_owned()
}

/// The secret `createclient` printed once.
fn secret_printed(out: &crate::process::Finished) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap_or_else(|| panic!("{out:?}"))
        .trim()
        .to_owned()
}

/// Rows of `table` in the SQLite database at `url`.
async fn rows(url: &str, table: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The distinct values of `label` among the series of `metric` on a Prometheus page.
fn label_values(page: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let key = format!("{label}=\"");
    page.lines()
        .filter(|l| l.starts_with(metric))
        .filter_map(|l| {
            let at = l.find(&key)? + key.len();
            Some(l[at..at + l[at..].find('"')?].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attackers_walk_is_refused_or_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let as_db = sqlite_url(dir, "as.db");
    let rs_db = sqlite_url(dir, "rs.db");
    let mut env = auth_env(&as_db);
    let staff = run(
        Example::AuthServer,
        &["createsuperuser", "--email", STAFF],
        &[
            env.clone(),
            vec![("SUPERUSER_PASSWORD", PASSWORD.to_owned())],
        ]
        .concat(),
    )
    .await;
    assert!(staff.success, "{staff:?}");
    // A resource server's own confidential client that may follow the stream.
    let watcher = run(
        Example::AuthServer,
        &[
            "createclient",
            "--id",
            "watcher",
            "--grant",
            "client_credentials",
            "--scope",
            "introspection",
        ],
        &env,
    )
    .await;
    assert!(watcher.success, "{watcher:?}");
    let watcher_secret = secret_printed(&watcher);
    // First-party clients registered by the operator without `--scope`: a
    // confidential and a public one with the password grant.
    let cli_app = run(
        Example::AuthServer,
        &[
            "createclient",
            "--id",
            "cli-app",
            "--grant",
            "password",
            "--grant",
            "client_credentials",
        ],
        &env,
    )
    .await;
    assert!(cli_app.success, "{cli_app:?}");
    let cli_app_secret = secret_printed(&cli_app);
    let cli_public = run(
        Example::AuthServer,
        &[
            "createclient",
            "--id",
            "cli-public",
            "--public",
            "--grant",
            "password",
        ],
        &env,
    )
    .await;
    assert!(cli_public.success, "{cli_public:?}");
    let as_metrics = format!("127.0.0.1:{}", free_port());
    let rs_metrics = format!("127.0.0.1:{}", free_port());
    env.push(("METRICS_ADDR", as_metrics.clone()));
    let auth = Process::start(Example::AuthServer, &env, &dir.join("as.log")).await;
    let rs = Process::start(
        Example::ResourceServer,
        &[
            ("DATABASE_URL", rs_db.clone()),
            ("AUTH_SERVER_URL", auth.url()),
            ("METRICS_ADDR", rs_metrics.clone()),
        ],
        &dir.join("rs.log"),
    )
    .await;
    let (auth_url, rs_url) = (auth.url(), rs.url());
    let http = client();
    // Every step runs; what got through is collected and asserted at the end.
    let mut through: Vec<String> = Vec::new();

    // Mallory signs up and in, and registers an application of her own whose
    // redirect URI is on her host.
    let signup = http
        .post(format!("{auth_url}/users/signup/"))
        .json(&serde_json::json!({"email": MALLORY, "password": PASSWORD, "password2": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let mut mallory = Agent::new();
    sign_in(&mut mallory, &auth_url, MALLORY).await;
    let form = mallory
        .get(&format!("{auth_url}/o/applications/register/"))
        .await;
    let registered = mallory
        .post(
            &format!("{auth_url}/o/applications/register/"),
            &[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("name", "Totally legit"),
                ("client_id", "legit"),
                ("client_type", "confidential"),
                ("grant_types", "authorization_code"),
                ("grant_types", "client_credentials"),
                ("redirect_uris", EVIL),
                ("scope", ""),
            ],
            &[],
        )
        .await;
    let legit_secret = shown_secret(&registered);
    // The same, asking for the privileged scopes by name in the form.
    let form = mallory
        .get(&format!("{auth_url}/o/applications/register/"))
        .await;
    let greedy = mallory
        .post(
            &format!("{auth_url}/o/applications/register/"),
            &[
                ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                ("name", "Greedy"),
                ("client_id", "greedy"),
                ("client_type", "confidential"),
                ("grant_types", "client_credentials"),
                ("scope", "read introspection admin"),
            ],
            &[],
        )
        .await;
    let greedy_secret = greedy
        .body
        .contains("id=\"client_secret\">")
        .then(|| shown_secret(&greedy));
    println!(
        "setup: an ordinary user's registration asking for `read introspection admin`: {} ({})",
        greedy.status,
        if greedy_secret.is_some() {
            "registered"
        } else {
            "refused"
        }
    );

    // 1. The bounce: requests that fail validation, anonymous and signed in.
    let bounces = [
        "response_type=code&scope=nope",
        "response_type=code&scope=read",
        "response_type=code&scope=read&code_challenge_method=plain&code_challenge=abc",
        "response_type=code&scope=read&code_challenge=short&code_challenge_method=S256",
        "response_type=token&scope=read",
    ];
    let mut off_site = 0;
    let mut tried = 0;
    for agent in [&mut Agent::new(), &mut mallory] {
        for q in bounces {
            let url = format!(
                "{auth_url}/o/authorize/?client_id=legit&redirect_uri={}&state=s&{q}",
                form_urlencoded::byte_serialize(EVIL.as_bytes()).collect::<String>()
            );
            let page = agent.get(&url).await;
            tried += 1;
            let location = page
                .headers
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            if location
                .as_deref()
                .is_some_and(|l| l.starts_with("https://evil.example"))
            {
                off_site += 1;
            }
            assert_ne!(page.status, StatusCode::INTERNAL_SERVER_ERROR, "{q}");
        }
    }
    println!(
        "walk 1: {tried} bounce attempts through /o/authorize/, {off_site} redirected off-site"
    );
    if off_site > 0 {
        through.push(format!("{off_site} bounces off-site"));
    }

    // 2. Privileged scopes, by name, from every kind of client.
    let token =
        async |client: (&str, Option<&str>), form: &[(&str, &str)]| -> (StatusCode, Value) {
            let mut all = form.to_vec();
            all.push(("client_id", client.0));
            if let Some(secret) = client.1 {
                all.push(("client_secret", secret));
            }
            let r = http
                .post(format!("{auth_url}/o/token/"))
                .form(&all)
                .send()
                .await
                .unwrap();
            (r.status(), r.json().await.unwrap_or(Value::Null))
        };
    let mut asked = 0;
    let mut granted = Vec::new();
    for scope in ["introspection", "admin", "read introspection", "read admin"] {
        // Mallory's own confidential client, client credentials.
        let (status, body) = token(
            ("legit", Some(&legit_secret)),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        asked += 1;
        if status.is_success() {
            granted.push(format!("legit/client_credentials: {}", body["scope"]));
        }
        // Mallory's client that asked for them at registration (if it exists).
        if let Some(secret) = &greedy_secret {
            let (status, body) = token(
                ("greedy", Some(secret)),
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
            asked += 1;
            if status.is_success() {
                granted.push(format!("greedy/client_credentials: {}", body["scope"]));
            }
        }
        // Operator-registered clients without an explicit scope: the password
        // grant for an ordinary user, and client credentials.
        for (client, secret) in [
            ("cli-app", Some(cli_app_secret.as_str())),
            ("cli-public", None),
        ] {
            let (status, body) = token(
                (client, secret),
                &[
                    ("grant_type", "password"),
                    ("username", MALLORY),
                    ("password", PASSWORD),
                    ("scope", scope),
                ],
            )
            .await;
            asked += 1;
            if status.is_success() {
                granted.push(format!("{client}/password: {}", body["scope"]));
            }
        }
        let (status, body) = token(
            ("cli-app", Some(&cli_app_secret)),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
        asked += 1;
        if status.is_success() {
            granted.push(format!("cli-app/client_credentials: {}", body["scope"]));
        }
        // The resource server's own client, for a user who is not staff.
        let (status, body) = token(
            ("rs-id", Some("rs-secret")),
            &[
                ("grant_type", "password"),
                ("username", MALLORY),
                ("password", PASSWORD),
                ("scope", scope),
            ],
        )
        .await;
        asked += 1;
        if status.is_success() && body["scope"].as_str().unwrap_or("").contains("admin") {
            granted.push(format!(
                "rs-id/password for a non-staff user: {}",
                body["scope"]
            ));
        }
        // The demo public client, through the authorization endpoint: refused
        // before any consent is asked.
        let page = mallory
            .get(&format!(
                "{auth_url}/o/authorize/?client_id=demo-app&response_type=code&redirect_uri={}\
                 &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256\
                 &scope={}",
                form_urlencoded::byte_serialize(crate::demo_seed::DEMO_REDIRECT.as_bytes())
                    .collect::<String>(),
                form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
            ))
            .await;
        asked += 1;
        if page.status == StatusCode::OK && page.body.contains("name=\"allow\"") {
            granted.push(format!("demo-app/authorize consent offered for {scope}"));
        }
    }
    println!(
        "walk 2: {asked} requests for privileged scopes, {} granted: {granted:?}",
        granted.len()
    );
    through.extend(granted);

    // 3. Endless chunked bodies to every console form of both servers.
    let staff_agent = &mut Agent::new();
    sign_in(staff_agent, &auth_url, STAFF).await;
    let staff_cookie = cookie_of(&staff_agent.get(&format!("{auth_url}/admin/users/")).await);
    let forms = [
        (auth.addr, "/accounts/login/", ""),
        (auth.addr, "/users/signup/", ""),
        (auth.addr, "/o/token/", ""),
        (
            auth.addr,
            "/o/applications/register/",
            staff_cookie.as_str(),
        ),
        (auth.addr, "/admin/users/add/", staff_cookie.as_str()),
        (auth.addr, "/admin/applications/add/", staff_cookie.as_str()),
        (auth.addr, "/admin/tokens/revoke/", staff_cookie.as_str()),
        (rs.addr, "/admin/logout/", ""),
        (rs.addr, "/admin/items/1/", ""),
        (rs.addr, "/admin/items/1/delete/", ""),
    ];
    const CAP: u64 = 64 * 1024 * 1024;
    for (addr, path, cookie) in forms {
        let up = endless_upload(addr, path, cookie, CAP).await;
        println!(
            "walk 3: endless chunked POST {path}: {} KiB taken, then {:?}",
            up.sent / 1024,
            up.status
        );
        if up.sent >= 8 * 1024 * 1024 {
            through.push(format!("{path} read {} bytes of an endless body", up.sent));
        }
    }

    // 4. 1,000 distinct methods to each server; the metrics' method labels stay few.
    for base in [&auth_url, &rs_url] {
        for i in 0..1000 {
            let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
            let _ = http.request(method, format!("{base}/healthz")).send().await;
        }
    }
    for addr in [&as_metrics, &rs_metrics] {
        let (page, _) = crate::ops_tests::scrape(addr).await;
        let methods = label_values(&page, "http_requests_total", "method");
        println!(
            "walk 4: 1,000 requests with made-up methods each; {addr} has {} method labels, e.g. {:?}",
            methods.len(),
            methods.iter().take(4).collect::<Vec<_>>()
        );
        if methods.len() > 10 {
            through.push(format!("{addr}: {} method labels", methods.len()));
        }
    }

    // 5. 10,000 cookie-less GETs of the sign-in pages (5,000 each), eight at a time.
    let before = (
        rows(&as_db, "oauth_sessions").await,
        rows(&rs_db, "oauth_sessions").await,
    );
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for url in [
        format!("{auth_url}/accounts/login/"),
        format!("{rs_url}/admin/"),
    ] {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (http, url) = (no_redirects.clone(), url.clone());
            workers.spawn(async move {
                let mut seen = Vec::with_capacity(625);
                for _ in 0..625 {
                    seen.push(http.get(&url).send().await.unwrap().status().as_u16());
                }
                seen
            });
        }
        while let Some(seen) = workers.join_next().await {
            for status in seen.unwrap() {
                *statuses.entry(status).or_default() += 1;
            }
        }
    }
    if statuses.contains_key(&500) {
        through.push(format!("anonymous GETs answered 500: {statuses:?}"));
    }
    let after = (
        rows(&as_db, "oauth_sessions").await,
        rows(&rs_db, "oauth_sessions").await,
    );
    println!(
        "walk 5: 10,000 anonymous GETs of the sign-in pages in {:.1} s (statuses {statuses:?}); stored sessions (auth, resource) {before:?} -> {after:?}",
        started.elapsed().as_secs_f64()
    );
    if after.0 - before.0 > 1 || after.1 - before.1 > 1 {
        through.push(format!(
            "anonymous GETs stored sessions: {before:?} -> {after:?}"
        ));
    }

    // 6. The stream held past a rotation of its client's secret.
    let stream = http
        .get(format!("{auth_url}/o/revocations/"))
        .basic_auth("watcher", Some(&watcher_secret))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let detail = staff_agent
        .get(&format!("{auth_url}/admin/applications/watcher/"))
        .await;
    let rotated = staff_agent
        .post(
            &format!("{auth_url}/admin/applications/watcher/rotate/"),
            &[("csrfmiddlewaretoken", &detail.field("csrfmiddlewaretoken"))],
            &[],
        )
        .await;
    let _ = shown_secret(&rotated);
    let at = Instant::now();
    let mut body = stream;
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = body.chunk().await {}
    })
    .await;
    println!(
        "walk 6: the stream of a client whose secret was rotated ended {:.1} s after the rotation",
        at.elapsed().as_secs_f64()
    );
    if ended.is_err() {
        through.push("the stream outlived the rotation by 30 s".into());
    }
    drop((auth, rs));
    assert!(through.is_empty(), "got through: {through:#?}");
}
