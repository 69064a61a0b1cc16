//! A harness for tests over real processes: the example binaries (built once per
//! test run, with the profile and target directory of the running test), started on
//! a free loopback port with a configuration in environment variables, their output
//! in a log file, and signals to kill (SIGKILL), stop (SIGSTOP) and resume (SIGCONT)
//! them. A process is killed when its guard drops, a panicking test included.
//! Management subcommands (`createsuperuser`, `createclient`) run to completion.
//! PostgreSQL databases of their own for tests that share one between processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

#[path = "../common/cargo_env.rs"]
mod cargo_env;

/// The two example servers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Example {
    AuthServer,
    ResourceServer,
}

impl Example {
    fn name(self) -> &'static str {
        match self {
            Self::AuthServer => "auth_server",
            Self::ResourceServer => "resource_server",
        }
    }
}

/// The running test's output directory (`target/debug`): an example's test binary
/// lives in its `examples/` (beside the example binaries), other tests in `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .filter(|dir| dir.ends_with("examples") || dir.ends_with("deps"))
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "{} is not in <target>/<profile>/examples or deps",
                exe.display()
            )
        })
        .to_owned()
}

/// The path of an example binary, built (or found fresh) by `cargo build` once per
/// test run with this test's profile and target directory: `cargo test` builds the
/// examples too, so this is a check taking a second, but `cargo test --example
/// resource_server` alone would otherwise run an old `auth_server`, or none.
pub(crate) fn binary(example: Example) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let dir = profile_dir();
    if let Err(e) = BUILT.get_or_init(|| build_examples(&dir)) {
        panic!("{e}");
    }
    let path = dir.join("examples").join(example.name());
    assert!(
        path.is_file(),
        "{} is missing after building the examples; run `cargo build --examples`",
        path.display()
    );
    path
}

fn build_examples(dir: &Path) -> Result<(), String> {
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => return Err(format!("no profile directory in {}", dir.display())),
    };
    let target_dir = dir
        .parent()
        .ok_or_else(|| format!("no target directory above {}", dir.display()))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(&cargo);
    cargo_env::remove_cargo_run_vars(&mut build);
    let out = build
        .args(["build", "--quiet", "--profile", &profile])
        .args(["--example", "auth_server", "--example", "resource_server"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("could not run {cargo} to build the example servers: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "building the example servers failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A loopback port nobody listens on at the moment.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client whose connections leave from `source` (any address of 127/8 is
/// the loopback interface on Linux), so the servers see distinct callers.
pub(crate) fn client_from(source: Ipv4Addr) -> reqwest::Client {
    oauth_core::resource::ensure_crypto_provider();
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An HTTP client from 127.0.0.1.
pub(crate) fn client() -> reqwest::Client {
    client_from(Ipv4Addr::LOCALHOST)
}

/// What a finished command printed, and whether it succeeded.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `example` with `args` (a management subcommand such as `createclient`) and
/// `env` to completion, standard input closed; bounded by 60 s.
pub(crate) async fn run(example: Example, args: &[&str], env: &[(&str, String)]) -> Finished {
    let mut cmd = Command::new(binary(example));
    cmd.args(args)
        .env("LOG_FORMAT", "text")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!("{} {}", example.name(), args.join(" "));
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
    .unwrap()
    .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    Finished {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running example server; SIGKILLed (resumed first if stopped) when dropped.
pub(crate) struct Process {
    example: Example,
    env: Vec<(String, String)>,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Process {
    /// Starts `example` on a free port with `env` (on top of this process's
    /// environment), logging into `log` (appended, across restarts), and waits until
    /// it answers `/healthz`.
    pub(crate) async fn start(example: Example, env: &[(&str, String)], log: &Path) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_at(example, addr, env, log).await
    }

    /// [`Process::start`] on `addr` (chosen beforehand, e.g. so that another
    /// process can be told the URL first).
    pub(crate) async fn start_at(
        example: Example,
        addr: SocketAddr,
        env: &[(&str, String)],
        log: &Path,
    ) -> Self {
        let mut process = Self {
            example,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            addr,
            log: log.to_owned(),
            child: None,
            stopped: false,
        };
        process.spawn().await;
        process
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process runs").id()
    }

    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(binary(self.example));
        cmd.env("BIND_ADDR", self.addr.to_string())
            .env("LOG_FORMAT", "text")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| {
            panic!("could not start {}: {e}", self.example.name());
        }));
        self.stopped = false;
        self.wait_ready().await;
    }

    /// Polls `/healthz` for up to 60 s; panics with the log if the process exits or
    /// never answers.
    async fn wait_ready(&mut self) {
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = http
                .get(format!("{}/healthz", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{} exited ({status}) before answering /healthz:\n{}",
                    self.example.name(),
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer /healthz at {} within 60 s:\n{}",
                self.example.name(),
                self.url(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.stopped = false;
    }

    /// Starts the same binary again, on the same port, database and settings.
    pub(crate) async fn restart(&mut self) {
        self.spawn().await;
    }

    /// SIGSTOP: the process holds its sockets (the kernel still accepts
    /// connections) but answers nothing.
    pub(crate) fn stop(&mut self) {
        self.signal("STOP");
        self.stopped = true;
    }

    /// SIGCONT.
    pub(crate) fn resume(&mut self) {
        self.signal("CONT");
        self.stopped = false;
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Whether the process is still alive (not exited).
    pub(crate) fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Everything the process (every run of it) wrote so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.stopped {
                let _ = Command::new("kill")
                    .arg("-CONT")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Says once per test binary, past the harness's output capture, that the
/// PostgreSQL variants did not run: a `cargo test` without `TEST_DATABASE_URL`
/// must not look like a PostgreSQL pass. (CI sets it.)
pub(crate) fn postgres_skipped() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "note: TEST_DATABASE_URL is unset: the PostgreSQL variants of the fault tests were skipped"
        );
    });
}

/// A PostgreSQL database of its own, created on the server of `TEST_DATABASE_URL`
/// and dropped (its connections closed) when this value drops.
pub(crate) struct PgDatabase {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    /// `None` (with a note) when `TEST_DATABASE_URL` is unset.
    pub(crate) async fn create() -> Option<Self> {
        use sea_orm::ConnectionTrait as _;
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            postgres_skipped();
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "faults_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but unusable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Dropped inside a test's runtime, which cannot block on a future: a
        // thread of its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            use sea_orm::ConnectionTrait as _;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await?;
                admin.execute_unprepared(&sql).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not drop the test database {}",
                self.name
            );
        }
    }
}

/// `url` with its database name replaced by `name` (the query string kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[test]
fn database_name_is_replaced() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
