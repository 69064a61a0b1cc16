//! Fault tests over real processes (issue 14): the example binaries, killed with
//! SIGKILL, stopped with SIGSTOP, run side by side on one database and flooded with
//! concurrent KDF-bound requests. SQLite in temporary directories; PostgreSQL in a
//! database of its own per test when `TEST_DATABASE_URL` is set (the PostgreSQL
//! variants are skipped, with a note, otherwise). Scrypt is cheap here
//! (`SCRYPT_LOG_N=10`, `SCRYPT_P=1`); the counts are the issue's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::process::{Example, PgDatabase, Process, client, client_from};
use crate::tests::PASSWORD;

/// The fault tests run one at a time: each starts processes that want both cores,
/// and the timing bounds below assume they are not competing with each other.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The auth server's settings for these tests: cheap scrypt, a KDF queue deep
/// enough for every concurrent request below (none is shed), and throttle limits no
/// test but the lock-out one reaches.
pub(crate) fn auth_env(database_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("SCRYPT_LOG_N", "10".into()),
        ("SCRYPT_P", "1".into()),
        ("KDF_QUEUE", "512".into()),
        ("SIGNUPS_PER_IP", "100000".into()),
        ("LOGIN_FAILURES_PER_SOURCE", "100000".into()),
        ("LOGIN_FAILURES_PER_ACCOUNT", "100000".into()),
        ("AUTH_FAILURES_PER_CLIENT", "100000".into()),
        ("AUTH_FAILURES_PER_IP", "100000".into()),
    ]
}

pub(crate) fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// One HTTP answer: status and body (JSON when it parses).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) async fn read(r: reqwest::Response) -> Self {
        let status = r.status();
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Self {
            status,
            retry_after,
            body: r.text().await.unwrap_or_default(),
        }
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub(crate) fn str(&self, key: &str) -> String {
        self.json()[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key:?} in {} {}", self.status, self.body))
            .to_owned()
    }
}

/// The auth server's JSON endpoints, as the demo client `rs-id` calls them.
#[derive(Clone)]
pub(crate) struct As {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
}

impl As {
    pub(crate) fn new(url: String) -> Self {
        Self::with_client(url, client())
    }

    pub(crate) fn with_client(url: String, http: reqwest::Client) -> Self {
        Self { http, url }
    }

    pub(crate) async fn signup(&self, email: &str) -> reqwest::Result<Answer> {
        let r = self
            .http
            .post(format!("{}/users/signup/", self.url))
            .json(&json!({"email": email, "password": PASSWORD, "password2": PASSWORD}))
            .send()
            .await?;
        Ok(Answer::read(r).await)
    }

    pub(crate) async fn token(
        &self,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Result<Answer> {
        let r = self
            .http
            .post(format!("{}/o/token/", self.url))
            .basic_auth("rs-id", Some(secret))
            .form(form)
            .send()
            .await?;
        Ok(Answer::read(r).await)
    }

    pub(crate) async fn password_grant(
        &self,
        email: &str,
        password: &str,
    ) -> reqwest::Result<Answer> {
        self.token(
            "rs-secret",
            &[
                ("grant_type", "password"),
                ("username", email),
                ("password", password),
            ],
        )
        .await
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> reqwest::Result<Answer> {
        self.token(
            "rs-secret",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// Whether `token` introspects active (panics on anything but a 200).
    pub(crate) async fn active(&self, token: &str) -> bool {
        let r = self
            .http
            .post(format!("{}/o/introspect/", self.url))
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        let a = Answer::read(r).await;
        assert_eq!(a.status, StatusCode::OK, "introspection: {}", a.body);
        a.json()["active"].as_bool().unwrap()
    }

    /// Revokes `token` (RFC 7009) and returns the status answered.
    pub(crate) async fn revoke(&self, token: &str) -> reqwest::Result<StatusCode> {
        let r = self
            .http
            .post(format!("{}/o/revoke_token/", self.url))
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", token)])
            .send()
            .await?;
        Ok(r.status())
    }
}

/// What the clients of the kill -9 test were told had happened.
#[derive(Default)]
struct Ledger {
    /// Sign-ups answered 201.
    signups: Vec<String>,
    /// Token pairs answered 200 (password grant or refresh), with whether a refresh
    /// of the pair was sent (then the pair may rightly be retired, answered or not).
    pairs: Vec<Pair>,
    /// Refreshes answered 200: the access token they retired.
    retired: Vec<String>,
    /// Any answer that was not a success, before the kill.
    unexpected: Vec<String>,
}

struct Pair {
    access: String,
    refresh_sent: bool,
}

/// A client of the kill -9 test: sign up, sign in, and every other round refresh,
/// over and over; every answer is recorded; the first failed request (the server is gone) ends it.
async fn kill_9_worker(auth: As, worker: usize, ledger: Arc<Mutex<Ledger>>) {
    let unexpected = |what: &str, a: &Answer| {
        ledger
            .lock()
            .unwrap()
            .unexpected
            .push(format!("{what}: {} {}", a.status, a.body));
    };
    for round in 0.. {
        let email = format!("w{worker}-{round}@example.com");
        let Ok(a) = auth.signup(&email).await else {
            return;
        };
        if a.status != StatusCode::CREATED {
            return unexpected("signup", &a);
        }
        ledger.lock().unwrap().signups.push(email.clone());
        let Ok(a) = auth.password_grant(&email, PASSWORD).await else {
            return;
        };
        if a.status != StatusCode::OK {
            return unexpected("password grant", &a);
        }
        // Every other round the pair is refreshed at once.
        let refresh_sent = round % 2 == 1;
        let index = {
            let mut l = ledger.lock().unwrap();
            l.pairs.push(Pair {
                access: a.str("access_token"),
                refresh_sent,
            });
            l.pairs.len() - 1
        };
        if !refresh_sent {
            continue;
        }
        let Ok(r) = auth.refresh(&a.str("refresh_token")).await else {
            return;
        };
        if r.status != StatusCode::OK {
            return unexpected("refresh", &r);
        }
        let mut l = ledger.lock().unwrap();
        let old = l.pairs[index].access.clone();
        l.retired.push(old);
        l.pairs.push(Pair {
            access: r.str("access_token"),
            refresh_sent: false,
        });
    }
}

/// 32 clients sign up, sign in and refresh against one auth server; it is killed
/// with SIGKILL in the middle of that, then started again on the same database.
/// Every sign-up answered 201 signs in; every token answered 200 and not since sent
/// to be refreshed introspects active; every access token retired by a refresh
/// answered 200 stays inactive.
async fn acknowledged_writes_survive_kill_9(database_url: &str, dir: &Path) {
    const WORKERS: usize = 32;
    let mut server = Process::start(
        Example::AuthServer,
        &auth_env(database_url),
        &dir.join("as.log"),
    )
    .await;
    let auth = As::new(server.url());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut workers = JoinSet::new();
    for worker in 0..WORKERS {
        workers.spawn(kill_9_worker(auth.clone(), worker, ledger.clone()));
    }
    // Killed once a fair amount was acknowledged, with every worker mid-request.
    let started = Instant::now();
    loop {
        {
            let l = ledger.lock().unwrap();
            assert!(l.unexpected.is_empty(), "{:?}", l.unexpected);
            if l.signups.len() >= 96 && l.retired.len() >= 32 {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "too slow: {} sign-ups in 60 s",
            ledger.lock().unwrap().signups.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    let load = started.elapsed();
    while let Some(done) = workers.join_next().await {
        done.unwrap();
    }
    let ledger = Arc::into_inner(ledger).unwrap().into_inner().unwrap();
    assert!(
        ledger.unexpected.is_empty(),
        "answers before the kill: {:?}",
        ledger.unexpected
    );

    server.restart().await;
    let auth = As::new(server.url());
    let mut checks = JoinSet::new();
    for email in ledger.signups.clone() {
        let auth = auth.clone();
        checks.spawn(async move {
            let a = auth.password_grant(&email, PASSWORD).await.unwrap();
            assert_eq!(a.status, StatusCode::OK, "{email} signed up: {}", a.body);
        });
    }
    let settled: Vec<String> = ledger
        .pairs
        .iter()
        .filter(|p| !p.refresh_sent)
        .map(|p| p.access.clone())
        .collect();
    for token in settled.clone() {
        let auth = auth.clone();
        checks.spawn(async move {
            assert!(auth.active(&token).await, "an acknowledged token is lost");
        });
    }
    for token in ledger.retired.clone() {
        let auth = auth.clone();
        checks.spawn(async move {
            assert!(
                !auth.active(&token).await,
                "an acknowledged refresh lost its rotation"
            );
        });
    }
    while let Some(done) = checks.join_next().await {
        done.unwrap();
    }
    let log = server.log_text();
    assert!(!log.contains("database is locked"), "{log}");
    eprintln!(
        "kill -9 after {load:?}: {} sign-ups, {} settled tokens, {} refreshes acknowledged; all there after the restart",
        ledger.signups.len(),
        settled.len(),
        ledger.retired.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_sqlite() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_kill_9(&sqlite_url(dir.path(), "as.db"), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    acknowledged_writes_survive_kill_9(&db.url, dir.path()).await;
}

/// The resource server behind an auth server that is killed, then restarted, then
/// stopped (SIGSTOP), then resumed: tokens it introspected before keep working;
/// a token it has not seen gets 503 with `Retry-After` within the configured
/// introspection timeout (plus scheduling slack); once the auth server answers
/// again the same resource server process serves that token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_server_killed_or_stopped_behind_the_resource_server() {
    const TIMEOUT: Duration = Duration::from_millis(500);
    // What a loaded CI machine may add to the timeout.
    const SLACK: Duration = Duration::from_millis(1000);
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut auth_server = Process::start(
        Example::AuthServer,
        &auth_env(&sqlite_url(dir.path(), "as.db")),
        &dir.path().join("as.log"),
    )
    .await;
    let mut rs = Process::start(
        Example::ResourceServer,
        &[
            ("DATABASE_URL", sqlite_url(dir.path(), "rs.db")),
            ("AUTH_SERVER_URL", auth_server.url()),
            ("CLIENT_ID", "rs-id".into()),
            ("CLIENT_SECRET", "rs-secret".into()),
            ("TOKEN_CACHE_SECONDS", "300".into()),
            ("NEGATIVE_CACHE_SECONDS", "1".into()),
            ("AUTH_SERVER_TIMEOUT_MS", TIMEOUT.as_millis().to_string()),
            // The revocation stream goes down with the auth server; cached answers
            // then live DISCONNECTED_CACHE_SECONDS (default 5 s, the bound on a token
            // revoked meanwhile on another instance). Long enough for this test.
            ("DISCONNECTED_CACHE_SECONDS", "120".into()),
        ],
        &dir.path().join("rs.log"),
    )
    .await;
    let rs_pid = rs.pid();
    let auth = As::new(auth_server.url());
    assert_eq!(
        auth.signup("ann@example.com").await.unwrap().status,
        StatusCode::CREATED
    );
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let a = auth
            .password_grant("ann@example.com", PASSWORD)
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        tokens.push(a.str("access_token"));
    }
    let [cached, unseen_at_kill, unseen_at_stop] = <[String; 3]>::try_from(tokens).unwrap();
    let http = client();
    let items = |token: &str| {
        let request = http
            .get(format!("{}/items/", rs.url()))
            .bearer_auth(token)
            .send();
        async move {
            let started = Instant::now();
            let a = Answer::read(request.await.unwrap()).await;
            (a, started.elapsed())
        }
    };
    let (a, _) = items(&cached).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Killed: refused connections.
    auth_server.kill9();
    let (a, _) = items(&cached).await;
    assert_eq!(a.status, StatusCode::OK, "a cached token, auth server dead");
    let (a, killed_took) = items(&unseen_at_kill).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(a.retry_after.is_some(), "503 with Retry-After");
    assert!(
        killed_took < TIMEOUT + SLACK,
        "503 after {killed_took:?}, timeout {TIMEOUT:?}"
    );

    auth_server.restart().await;
    let (a, _) = items(&unseen_at_kill).await;
    assert_eq!(a.status, StatusCode::OK, "recovered: {}", a.body);

    // Stopped: the kernel accepts connections, nothing answers.
    auth_server.stop();
    for token in [&cached, &unseen_at_kill] {
        let (a, _) = items(token).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "a cached token, auth server stopped"
        );
    }
    let (a, stopped_took) = items(&unseen_at_stop).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.body);
    assert!(a.retry_after.is_some(), "503 with Retry-After");
    assert!(
        stopped_took >= TIMEOUT.mul_f32(0.9) && stopped_took < TIMEOUT + SLACK,
        "503 after {stopped_took:?}, timeout {TIMEOUT:?}"
    );

    auth_server.resume();
    let (a, _) = items(&unseen_at_stop).await;
    assert_eq!(a.status, StatusCode::OK, "recovered: {}", a.body);

    assert!(rs.running(), "the resource server never restarted");
    assert_eq!(rs.pid(), rs_pid);
    let log = rs.log_text();
    assert!(
        log.matches("auth server unreachable: uncached tokens get 503")
            .count()
            == 2
            && log.matches("auth server reachable again").count() == 2,
        "each outage logged once as it begins and once as it ends:\n{log}"
    );
    eprintln!(
        "503 with the auth server killed after {killed_took:?}, stopped after {stopped_took:?} (timeout {TIMEOUT:?})"
    );
}

/// 64 sign-ups and, at the same moment, 64 password grants of other users, on
/// SQLite: every one succeeds (no 5xx, no 503 — the KDF queue holds them all), and
/// "database is locked" is neither in an answer nor in the log. (With the default
/// `KDF_QUEUE`, 64 on two cores, some of the 128 would be shed with 503 by design;
/// `auth_env` makes room for all.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signups_and_password_grants_on_sqlite() {
    const N: usize = 64;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(
        Example::AuthServer,
        &auth_env(&sqlite_url(dir.path(), "as.db")),
        &dir.path().join("as.log"),
    )
    .await;
    let auth = As::new(server.url());
    let started = Instant::now();
    // The users who sign in below, signed up 64 at once too.
    let answers = all_at_once((0..N).map(|i| {
        let auth = auth.clone();
        async move {
            (
                "signup",
                auth.signup(&format!("old{i}@example.com")).await.unwrap(),
            )
        }
    }))
    .await;
    let mut everything = answers;
    let answers = all_at_once((0..2 * N).map(|i| {
        let auth = auth.clone();
        async move {
            if i % 2 == 0 {
                let email = format!("new{i}@example.com");
                ("signup", auth.signup(&email).await.unwrap())
            } else {
                let email = format!("old{}@example.com", i / 2);
                let a = auth.password_grant(&email, PASSWORD).await.unwrap();
                ("password grant", a)
            }
        }
    }))
    .await;
    everything.extend(answers);
    let took = started.elapsed();
    let log = server.log_text();
    for (what, a) in &everything {
        let expected = if *what == "signup" {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        assert_eq!(a.status, expected, "{what}: {}\nlog:\n{log}", a.body);
        assert!(!a.body.to_lowercase().contains("locked"), "{}", a.body);
    }
    assert_eq!(everything.len(), 3 * N);
    assert!(!log.to_lowercase().contains("database is locked"), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");
    eprintln!(
        "{N} sign-ups, then {N} sign-ups and {N} password grants at once, on SQLite: all succeeded in {took:?}"
    );
}

/// Runs every future on its own task, released together, and returns the outputs.
pub(crate) async fn all_at_once<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let futures: Vec<F> = futures.collect();
    let barrier = Arc::new(Barrier::new(futures.len()));
    let mut set = JoinSet::new();
    for f in futures {
        let barrier = barrier.clone();
        set.spawn(async move {
            barrier.wait().await;
            f.await
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        out.push(done.unwrap());
    }
    out
}

/// Two auth server processes on one database; one refresh token sent 64 times at
/// once, alternately to each: exactly one 200, 63 `invalid_grant`, no 5xx.
async fn one_of_64_concurrent_refreshes_wins_across_two_processes(database_url: &str, dir: &Path) {
    let env = auth_env(database_url);
    // One after the other: the first creates the schema and the demo clients.
    let first = Process::start(Example::AuthServer, &env, &dir.join("as1.log")).await;
    let second = Process::start(Example::AuthServer, &env, &dir.join("as2.log")).await;
    let servers = [As::new(first.url()), As::new(second.url())];
    assert_eq!(
        servers[0].signup("ann@example.com").await.unwrap().status,
        StatusCode::CREATED
    );
    let logs = || format!("{}\n{}", first.log_text(), second.log_text());
    one_of_64_refreshes_wins(&servers, "ann@example.com", &logs).await;
    let logs = logs();
    assert!(!logs.contains(" ERROR "), "{logs}");
}

/// One refresh token of `email` (signed up already), issued by the second server,
/// sent 64 times at once, alternately to each server: exactly one 200, 63
/// `invalid_grant`, no 5xx (`logs` shows the servers' logs when not).
pub(crate) async fn one_of_64_refreshes_wins(
    servers: &[As; 2],
    email: &str,
    logs: &dyn Fn() -> String,
) {
    const N: usize = 64;
    let a = servers[1].password_grant(email, PASSWORD).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let refresh = a.str("refresh_token");
    // Both have verified the client's secret once, so the race is the refresh's.
    assert!(servers[0].active(&a.str("access_token")).await);
    let answers = all_at_once((0..N).map(|i| {
        let auth = servers[i % 2].clone();
        let refresh = refresh.clone();
        async move { auth.refresh(&refresh).await.unwrap() }
    }))
    .await;
    let wins = answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    for a in &answers {
        if a.status != StatusCode::OK {
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}\n{}", a.body, logs());
            assert_eq!(a.str("error"), "invalid_grant", "{}", a.body);
        }
    }
    assert_eq!(wins, 1, "exactly one refresh wins");
    eprintln!(
        "{N} concurrent refreshes through two processes: 1 won, {} invalid_grant",
        N - 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_64_concurrent_refreshes_wins_across_two_processes_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    one_of_64_concurrent_refreshes_wins_across_two_processes(&db.url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_64_concurrent_refreshes_wins_across_two_processes_sqlite() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    one_of_64_concurrent_refreshes_wins_across_two_processes(
        &sqlite_url(dir.path(), "as.db"),
        dir.path(),
    )
    .await;
}

/// Lock-out over real sockets, the sources told apart by their loopback address:
/// a source guessing the client's secret, then one guessing a user's password, is
/// made to wait (429 with `Retry-After`, even once it sends the right value), while
/// the right secret and the right password from another source still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_guesser_does_not_lock_out_the_right_secret_or_password() {
    const LIMIT: usize = 3;
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = auth_env(&sqlite_url(dir.path(), "as.db"));
    env.retain(|(k, _)| !k.starts_with("LOGIN_FAILURES") && !k.starts_with("AUTH_FAILURES"));
    env.push(("LOGIN_FAILURES_PER_SOURCE", LIMIT.to_string()));
    env.push(("AUTH_FAILURES_PER_CLIENT", LIMIT.to_string()));
    let server = Process::start(Example::AuthServer, &env, &dir.path().join("as.log")).await;
    let owner = As::new(server.url());
    let secret_guesser = As::with_client(server.url(), client_from(Ipv4Addr::new(127, 0, 0, 2)));
    let password_guesser = As::with_client(server.url(), client_from(Ipv4Addr::new(127, 0, 0, 3)));
    assert_eq!(
        owner.signup("ann@example.com").await.unwrap().status,
        StatusCode::CREATED
    );
    let grant = [
        ("grant_type", "password"),
        ("username", "ann@example.com"),
        ("password", PASSWORD),
    ];

    // The client's secret, never verified yet, guessed from 127.0.0.2.
    for n in 0..LIMIT {
        let a = secret_guesser
            .token(&format!("guess-{n}"), &grant)
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
        assert_eq!(a.str("error"), "invalid_client");
    }
    for secret in ["guess-again", "rs-secret"] {
        let a = secret_guesser.token(secret, &grant).await.unwrap();
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert!(a.retry_after.is_some());
    }
    let a = owner.token("rs-secret", &grant).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "the right secret from 127.0.0.1");
    assert!(owner.active(&a.str("access_token")).await);

    // Ann's password guessed from 127.0.0.3.
    for n in 0..LIMIT {
        let a = password_guesser
            .password_grant("ann@example.com", &format!("guess-{n}"))
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        assert_eq!(a.str("error"), "invalid_grant");
    }
    for password in ["guess-again", PASSWORD] {
        let a = password_guesser
            .password_grant("ann@example.com", password)
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert_eq!(a.str("error"), "temporarily_unavailable");
        assert!(a.retry_after.is_some());
    }
    let a = owner
        .password_grant("ann@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the right password from 127.0.0.1"
    );
    // The guessers are still waiting.
    let a = secret_guesser.token("guess-later", &grant).await.unwrap();
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    let a = password_guesser
        .password_grant("ann@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
}
