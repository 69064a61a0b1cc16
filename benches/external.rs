//! Targets 1 and 2 measured from outside the process, the way a user would: Debian's
//! `wrk` (`-t2 -c32`, HTTP/1.1 keep-alive) against the release servers, rounds
//! interleaved in one run, medians and ratios printed.
//!
//! 1. `POST /o/introspect/` (client Basic auth, active token, SQLite) against a bare
//!    axum server — this binary, re-run as `external ceiling-server`: no middleware,
//!    it reads the same form body and answers a constant JSON body of exactly the
//!    introspection answer's bytes. The auth server's own `/bench/ceiling` route
//!    (`BENCH_CEILING=true`) runs in the same rounds, to show what its middleware
//!    costs. Targets: ≥ 0.5 of the bare server's throughput; p99 ≤ 2× its p99.
//! 2. The resource server's `GET /items/{id}/` with a cached bearer token against
//!    the same handler without authentication (`BENCH_UNAUTHENTICATED=true`).
//!    Target: ≥ 0.85.
//!
//! The in-process generator of the other benches (`support::load`) saturates near
//! 21k req/s on a 2-core machine, which compresses the ratios; `wrk` does not
//! (docs/benchmarks.md). `wrk` is installed by `benches/install-wrk.sh`; without it
//! the bench says so and skips — unless `CI` is set, where that is a failure.
//!
//! Run with: `cargo bench --bench external` (`QUICK=1`: one short round, a smoke
//! run; `ONLY=introspection` or `ONLY=resource` for one half; `SECONDS_PER_RUN`,
//! `ROUNDS` to change the defaults of 8 s and 3; `BENCH_POSTGRES=postgres://…/db`
//! runs the auth server on a fresh PostgreSQL database made beside that one;
//! `BASELINE_AUTH_SERVER=path/to/auth_server`, another build of the example — say
//! the commit before a change — adds its introspection to the same rounds, on a
//! SQLite database of its own: the change's A/B in one run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, median, pick};

const CONNECTIONS: u32 = 32;
const THREADS: u32 = 2;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ceiling-server") {
        return serve_ceiling();
    }
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let Some(wrk) = find_wrk() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "wrk is not installed (benches/install-wrk.sh installs it); CI must run this bench"
            );
        }
        println!(
            "SKIPPED: wrk is not installed; run `bash benches/install-wrk.sh` (apt-get install wrk)"
        );
        return;
    };
    let only = std::env::var("ONLY").unwrap_or_default();
    let auth_bin = support::example("auth_server");
    let dir = tempfile::tempdir().unwrap();
    let rt = support::runtime();
    // BENCH_POSTGRES=postgres://…/db: the auth server on a fresh PostgreSQL database
    // made beside that one (several instances' setup), dropped afterwards.
    let postgres = std::env::var("BENCH_POSTGRES")
        .ok()
        .map(|admin| rt.block_on(Scratch::create(admin)));
    let database_url = postgres.as_ref().map_or_else(
        || format!("sqlite://{}", dir.path().join("as.db").display()),
        |pg| pg.url.clone(),
    );
    println!(
        "auth server on {}",
        if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let auth = Server::start(
        &auth_bin,
        &[
            ("DATABASE_URL", database_url),
            ("BENCH_CEILING", "true".into()),
            // The example's default level, as a user runs it (the other benches
            // run their servers at WARN).
            ("RUST_LOG", "info".into()),
        ],
    );
    let token = rt.block_on(async {
        let tokens =
            support::user_tokens(&auth.url, "bench@example.com", "bench-passphrase-41").await;
        tokens["access_token"].as_str().unwrap().to_owned()
    });
    let runs = Runs {
        wrk,
        duration: pick(
            Duration::from_secs(env_u64("SECONDS_PER_RUN", 8)),
            Duration::from_secs(1),
        ),
        rounds: pick(env_u64("ROUNDS", 3) as usize, 1),
        dir: dir.path().to_owned(),
    };
    println!(
        "wrk -t{THREADS} -c{CONNECTIONS} -d{}s, {} interleaved rounds",
        runs.duration.as_secs(),
        runs.rounds
    );
    // Another build of the auth server, for an A/B in the same rounds.
    let baseline = std::env::var_os("BASELINE_AUTH_SERVER").map(|bin| {
        let server = Server::start(
            &PathBuf::from(bin),
            &[
                (
                    "DATABASE_URL",
                    format!("sqlite://{}", dir.path().join("baseline.db").display()),
                ),
                ("RUST_LOG", "info".into()),
            ],
        );
        let token = rt.block_on(async {
            let tokens =
                support::user_tokens(&server.url, "bench@example.com", "bench-passphrase-41").await;
            tokens["access_token"].as_str().unwrap().to_owned()
        });
        (server, token)
    });
    if only.is_empty() || only == "introspection" {
        introspection(
            &runs,
            &rt,
            &auth,
            &token,
            baseline.as_ref().map(|(s, t)| (s, t.as_str())),
        );
    }
    if only.is_empty() || only == "resource" {
        resource(&runs, &rt, &auth, &token, dir.path());
    }
}

/// A PostgreSQL database of the bench's own, next to the one `admin` names.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(admin: String) -> Self {
        use oauth_core::sea::sea_orm::{ConnectionTrait as _, Database};
        let name = format!("oauth_bench_{}", std::process::id());
        let db = Database::connect(&admin).await.unwrap();
        db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Self { admin, name, url }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        use oauth_core::sea::sea_orm::{ConnectionTrait as _, Database};
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // On a thread of its own: the bench's runtime may be gone by now.
        let _ = std::thread::spawn(move || {
            support::runtime().block_on(async {
                if let Ok(db) = Database::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = db.execute_unprepared(&sql).await;
                }
            });
        })
        .join();
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn introspection(
    runs: &Runs,
    rt: &tokio::runtime::Runtime,
    auth: &Server,
    token: &str,
    baseline: Option<(&Server, &str)>,
) {
    let introspect = format!("{}/o/introspect/", auth.url);
    let form = format!("token={token}");
    let answer = rt.block_on(async {
        let client = support::clients(1).remove(0);
        let post = |url: String| {
            client
                .post(url)
                .basic_auth("rs-id", Some("rs-secret"))
                .form(&[("token", token)])
                .send()
        };
        let a = post(introspect.clone()).await.unwrap();
        assert!(a.status().is_success(), "{}", a.status());
        let a = a.bytes().await.unwrap();
        assert!(
            a.starts_with(b"{\"active\":true"),
            "{}",
            String::from_utf8_lossy(&a)
        );
        let c = post(format!("{}/bench/ceiling", auth.url)).await.unwrap();
        let c = c.bytes().await.unwrap();
        println!(
            "answer sizes: introspection {} bytes, the auth server's /bench/ceiling {} bytes",
            a.len(),
            c.len()
        );
        String::from_utf8(a.to_vec()).unwrap()
    });
    // The bare server answers the introspection's own bytes.
    let bare = Server::start_with_args(
        &std::env::current_exe().unwrap(),
        &["ceiling-server"],
        &[("CEILING_BODY", answer.clone())],
    );
    let bare_answer = rt.block_on(async {
        support::clients(1)
            .remove(0)
            .post(format!("{}/bench/ceiling", bare.url))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(
        bare_answer, answer,
        "the bare server answers the same bytes"
    );

    let basic = "Basic cnMtaWQ6cnMtc2VjcmV0"; // rs-id:rs-secret
    let post = |url: String, auth: bool| Target {
        url,
        method: "POST",
        body: Some(form.clone()),
        headers: if auth {
            vec![("Authorization", basic.to_owned())]
        } else {
            vec![]
        },
    };
    let mut targets = vec![
        (
            "bare axum",
            post(format!("{}/bench/ceiling", bare.url), false),
        ),
        (
            "auth server /bench/ceiling",
            post(format!("{}/bench/ceiling", auth.url), true),
        ),
        ("introspection", post(introspect, true)),
    ];
    if let Some((server, token)) = baseline {
        targets.push((
            "baseline introspection",
            Target {
                url: format!("{}/o/introspect/", server.url),
                method: "POST",
                body: Some(format!("token={token}")),
                headers: vec![("Authorization", basic.to_owned())],
            },
        ));
    }
    let results = runs.interleaved(&targets);
    let [bare_r, ceiling_r, ours, rest @ ..] = &results[..] else {
        unreachable!()
    };
    if let [before] = rest {
        report(
            "introspection, this build",
            ours,
            "the baseline build",
            before,
            0.0,
        );
        report("baseline introspection", before, "bare axum", bare_r, 0.0);
    }
    report("introspection", ours, "bare axum", bare_r, 0.5);
    report(
        "auth server /bench/ceiling",
        ceiling_r,
        "bare axum",
        bare_r,
        0.0,
    );
    p99_report("introspection", ours, "bare axum", bare_r, 2.0);
    p99_report(
        "introspection",
        ours,
        "auth server /bench/ceiling",
        ceiling_r,
        2.0,
    );
}

fn resource(
    runs: &Runs,
    rt: &tokio::runtime::Runtime,
    auth: &Server,
    token: &str,
    dir: &std::path::Path,
) {
    let rs_bin = support::example("resource_server");
    let rs = Server::start(
        &rs_bin,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("rs.db").display()),
            ),
            ("AUTH_SERVER_URL", auth.url.clone()),
            ("BENCH_UNAUTHENTICATED", "true".into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let id = rt.block_on(async {
        let client = support::clients(1).remove(0);
        let item: serde_json::Value = client
            .post(format!("{}/items/", rs.url))
            .bearer_auth(token)
            .json(&serde_json::json!({"name": "lamp", "description": "a brass desk lamp", "price": "12.50"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = item["id"].as_i64().unwrap();
        let a = client
            .get(format!("{}/items/{id}/", rs.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let b = client
            .get(format!("{}/bench/items/{id}/", rs.url))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(a, b, "both routes answer the same item");
        id
    });
    let get = |url: String, bearer: Option<&str>| Target {
        url,
        method: "GET",
        body: None,
        headers: bearer
            .map(|t| vec![("Authorization", format!("Bearer {t}"))])
            .unwrap_or_default(),
    };
    let targets = [
        (
            "unauthenticated",
            get(format!("{}/bench/items/{id}/", rs.url), None),
        ),
        (
            "authenticated (cached)",
            get(format!("{}/items/{id}/", rs.url), Some(token)),
        ),
    ];
    let results = runs.interleaved(&targets);
    report(
        "authenticated GET /items/{id}/",
        &results[1],
        "unauthenticated",
        &results[0],
        0.85,
    );
    p99_report(
        "authenticated GET /items/{id}/",
        &results[1],
        "unauthenticated",
        &results[0],
        2.0,
    );
}

/// One request, repeated by wrk.
struct Target {
    url: String,
    method: &'static str,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
}

/// One wrk run.
#[derive(Debug, Clone, Copy)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

struct Runs {
    wrk: PathBuf,
    duration: Duration,
    rounds: usize,
    dir: PathBuf,
}

impl Runs {
    /// `rounds` rounds, each running every target once in turn.
    fn interleaved(&self, targets: &[(&str, Target)]) -> Vec<Vec<Run>> {
        let mut results = vec![Vec::new(); targets.len()];
        for round in 1..=self.rounds {
            println!("round {round}");
            for (i, (name, target)) in targets.iter().enumerate() {
                let run = self.wrk(target);
                println!(
                    "  {name:<28} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms",
                    run.rps,
                    run.p50_us / 1000.0,
                    run.p99_us / 1000.0
                );
                results[i].push(run);
            }
        }
        results
    }

    fn wrk(&self, target: &Target) -> Run {
        let quote = |s: &str| format!("{s:?}");
        let mut script = format!("wrk.method = {}\n", quote(target.method));
        if let Some(body) = &target.body {
            script += &format!(
                "wrk.body = {}\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\n",
                quote(body)
            );
        }
        for (k, v) in &target.headers {
            script += &format!("wrk.headers[{}] = {}\n", quote(k), quote(v));
        }
        // Exact figures (requests, µs) instead of wrk's rounded, unit-suffixed summary.
        script += r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#;
        let path = self.dir.join("wrk.lua");
        std::fs::write(&path, script).unwrap();
        let out = Command::new(&self.wrk)
            .args([
                format!("-t{THREADS}"),
                format!("-c{CONNECTIONS}"),
                format!("-d{}s", self.duration.as_secs()),
                "-s".into(),
                path.display().to_string(),
                target.url.clone(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("run wrk");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wrk failed: {stdout}");
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("WRK "))
            .unwrap_or_else(|| panic!("no summary from wrk: {stdout}"));
        let n: Vec<f64> = line
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        let [requests, duration_us, p50, p99, errors, status] = n[..] else {
            panic!("wrk summary: {line}")
        };
        assert_eq!(
            (errors, status),
            (0.0, 0.0),
            "a run with socket errors or non-2xx answers is invalid: {stdout}"
        );
        Run {
            rps: requests / (duration_us / 1e6),
            p50_us: p50,
            p99_us: p99,
        }
    }
}

fn report(what: &str, ours: &[Run], base_name: &str, base: &[Run], target: f64) {
    let rps = |rs: &[Run]| median(rs.iter().map(|r| r.rps).collect());
    let (a, b) = (rps(ours), rps(base));
    let ratio = a / b;
    let verdict = if target == 0.0 {
        String::new()
    } else if ratio >= target {
        format!(" (target ≥ {target}) MET")
    } else {
        format!(" (target ≥ {target}) MISSED")
    };
    println!(
        "RESULT wrk {what}: median {a:.0} req/s vs {base_name} {b:.0} req/s: ours/ceiling = {ratio:.3}{verdict}"
    );
}

fn p99_report(what: &str, ours: &[Run], base_name: &str, base: &[Run], target: f64) {
    let p99 = |rs: &[Run]| median(rs.iter().map(|r| r.p99_us / 1000.0).collect());
    let (a, b) = (p99(ours), p99(base));
    let ratio = a / b;
    println!(
        "RESULT wrk {what} p99: median {a:.3} ms vs {base_name} {b:.3} ms = {ratio:.2}× (target ≤ {target}×) {}",
        if ratio <= target { "MET" } else { "MISSED" }
    );
}

/// `wrk` on the `PATH`.
fn find_wrk() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("wrk"))
        .find(|p| p.is_file())
}

/// The bare ceiling: plain `axum::serve` (TCP_NODELAY, as the example servers set),
/// one route, no middleware. It reads the form body as the auth server's handlers do
/// and answers `CEILING_BODY` as JSON.
fn serve_ceiling() {
    let addr = std::env::var("BIND_ADDR").expect("BIND_ADDR");
    let body: &'static str = std::env::var("CEILING_BODY").expect("CEILING_BODY").leak();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use axum::serve::ListenerExt as _;
        let router = axum::Router::new().route(
            "/bench/ceiling",
            axum::routing::post(move |_form: String| async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap()
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        axum::serve(listener, router).await.unwrap();
    });
}
