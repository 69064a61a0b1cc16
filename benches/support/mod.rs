//! What the load benchmarks share: building the example servers in release mode,
//! running them as separate processes on loopback, a keep-alive load generator,
//! interleaved A/B rounds, and reporting ratios.
//!
//! `QUICK=1` shortens every phase so a whole bench finishes in seconds (CI runs
//! that); the figures of a quick run are not meaningful.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "../../examples/common/cargo_env.rs"]
mod cargo_env;

pub fn quick() -> bool {
    std::env::var("QUICK").is_ok_and(|v| v == "1" || v == "true")
}

/// `full` normally, `short` with `QUICK=1`.
pub fn pick<T>(full: T, short: T) -> T {
    if quick() { short } else { full }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The profile this bench was built with, and its output directory: `bench`
/// (optimised, what `cargo bench` uses) or, when built with `cargo bench --profile
/// dev` as CI's smoke run is, `dev` — whose artifacts `cargo test` reuses.
fn profile() -> (&'static str, &'static str) {
    if cfg!(debug_assertions) {
        ("dev", "debug")
    } else {
        ("bench", "release")
    }
}

/// Builds both example servers with this bench's own profile (so the two builds
/// share their artifacts instead of rebuilding each other's) and returns the path
/// of `name`. Figures are only meaningful from the optimised `bench` profile.
pub fn example(name: &str) -> PathBuf {
    let (profile, dir) = profile();
    if profile != "bench" {
        eprintln!("note: unoptimised build (profile {profile}); the figures below mean nothing");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    // Without it this build and the next `cargo bench` rebuilt each other's
    // dependencies every time: 3 minutes each way.
    cargo_env::remove_cargo_run_vars(&mut build);
    let status = build
        .args(["build", "--quiet", "--profile", profile, "--examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the examples failed");
    target_dir().join(dir).join("examples").join(name)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    /// Starts `binary` with `env` on a free loopback port and waits for `/healthz`.
    pub fn start(binary: &PathBuf, env: &[(&str, String)]) -> Self {
        Self::start_with_args(binary, &[], env)
    }

    /// [`start`](Self::start) with command-line arguments.
    pub fn start_with_args(binary: &PathBuf, args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start server");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A memory figure of a process, from `/proc/PID/status` (`VmHWM` peak, `VmRSS` now), in KiB.
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The result of one load run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// One HTTP/1.1 client per connection, so `connections` keep-alive connections
/// exist for the whole run.
pub fn clients(connections: usize) -> Vec<reqwest::Client> {
    oauth_core::resource::ensure_crypto_provider();
    (0..connections)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap()
        })
        .collect()
}

/// Sends requests made by `make(client, i)` over `connections` keep-alive
/// connections for `duration`, one request in flight per connection.
pub async fn load<F>(connections: usize, duration: Duration, make: F) -> Load
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    paced(connections, duration, None, make).await
}

/// Like [`load`], but each connection waits `pace` between its requests: a probe
/// that measures latency without adding load of its own.
pub async fn paced<F>(
    connections: usize,
    duration: Duration,
    pace: Option<Duration>,
    make: F,
) -> Load
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (n, client) in clients(connections).into_iter().enumerate() {
        let make = make.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0u64;
            let mut i = n as u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match make(&client, i).send().await {
                    Ok(r) => {
                        let ok = r.status().is_success();
                        let _ = r.bytes().await;
                        if !ok {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                latencies.push(started.elapsed());
                i += connections as u64;
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    Load {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn describe(name: &str, l: &Load) {
    println!(
        "  {name:<28} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  requests {:>7}  errors {}",
        l.rps,
        ms(l.p50),
        ms(l.p99),
        l.requests,
        l.errors
    );
}

/// Prints a target line: `figure` against `baseline`, the ratio, and whether it meets
/// `target` (`at_least`: ratio ≥ target, else ratio ≤ target).
pub fn verdict(
    what: &str,
    figure: f64,
    baseline: f64,
    unit: &str,
    target: f64,
    at_least: bool,
) -> bool {
    let ratio = figure / baseline;
    let met = if at_least {
        ratio >= target
    } else {
        ratio <= target
    };
    println!(
        "RESULT {what}: {figure:.2} {unit} vs baseline {baseline:.2} {unit} = ratio {ratio:.3} (target {} {target}) {}",
        if at_least { "≥" } else { "≤" },
        if met { "MET" } else { "MISSED" }
    );
    met
}

/// Prints an absolute target (memory): `figure` against a limit.
pub fn limit(what: &str, figure: f64, max: f64, unit: &str) -> bool {
    let met = figure <= max;
    println!(
        "RESULT {what}: {figure:.1} {unit} (target ≤ {max} {unit}) {}",
        if met { "MET" } else { "MISSED" }
    );
    met
}

/// A multi-threaded runtime for the load generator.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Posts a form and returns the JSON answer.
pub async fn post_form(
    url: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> serde_json::Value {
    let mut req = clients(1).remove(0).post(url).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// A user signed up at the auth server, and a token pair from the password grant.
pub async fn user_tokens(auth: &str, email: &str, password: &str) -> serde_json::Value {
    let signup = clients(1)
        .remove(0)
        .post(format!("{auth}/users/signup/"))
        .json(&serde_json::json!({"email": email, "password": password, "password2": password}))
        .send()
        .await
        .unwrap();
    assert!(signup.status().is_success(), "signup: {}", signup.status());
    post_form(
        &format!("{auth}/o/token/"),
        Some(("rs-id", "rs-secret")),
        &[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ],
    )
    .await
}

/// The benches' confidential client `rs-id` (password grant), with this secret
/// hash, allowed scope and default scope.
pub fn bench_client(secret_hash: String, allowed: &str, default: &str) -> oauth_core::Client {
    oauth_core::Client {
        client_id: "rs-id".into(),
        secret_hash: Some(secret_hash),
        kind: oauth_core::ClientKind::Confidential,
        name: "bench".into(),
        grant_types: vec![oauth_core::GrantType::Password],
        redirect_uris: vec![],
        allowed_origins: vec![],
        skip_authorization: false,
        allowed_scope: allowed.parse().unwrap(),
        default_scope: default.parse().unwrap(),
        owner: None,
        created_at: chrono::Utc::now(),
    }
}
