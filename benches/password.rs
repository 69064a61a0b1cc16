//! Target 3: the password grant at saturation against the limit
//! `CPU count ÷ t(one scrypt verify)`, t measured in this run at the production
//! parameters (target ≥ 90 %); and introspection p99 while logins saturate the
//! server against its idle p99 (target ≤ 3×: the KDF must not starve the runtime).
//!
//! Run with: `cargo bench --bench password` (`QUICK=1` for a smoke run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use oauth_core::{Password, PasswordHasher, ScryptParams};
use support::{Server, describe, median, ms, pick, verdict};

const PASSWORD: &str = "bench-passphrase-41";

fn main() {
    let binary = support::example("auth_server");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &binary,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("as.db").display()),
            ),
            // Logins must not be throttled: every one of them succeeds anyway.
            ("LOGIN_FAILURES_PER_ACCOUNT", "1000000".into()),
        ],
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = support::runtime();
    rt.block_on(async {
        // t: one verification at the production parameters, in this process.
        let hasher = PasswordHasher::with_concurrency(ScryptParams::PRODUCTION, 1).unwrap();
        let phc = hasher.hash(&Password::new(PASSWORD)).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..pick(7, 2) {
            let started = Instant::now();
            assert!(hasher.verify(&Password::new(PASSWORD), Some(&phc)).await.unwrap());
            times.push(started.elapsed().as_secs_f64());
        }
        let t = median(times);
        let limit = cores as f64 / t;
        println!("one scrypt verify (ln=15, r=8, p=3): {:.1} ms; {cores} CPUs → limit {limit:.2} logins/s", t * 1000.0);

        let tokens = support::user_tokens(&server.url, "bench@example.com", PASSWORD).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let token_url = format!("{}/o/token/", server.url);
        let introspect_url = format!("{}/o/introspect/", server.url);
        let login = move |c: &reqwest::Client, _| {
            c.post(&token_url).basic_auth("rs-id", Some("rs-secret")).form(&[
                ("grant_type", "password"),
                ("username", "bench@example.com"),
                ("password", PASSWORD),
            ])
        };
        let introspect = move |c: &reqwest::Client, _| {
            c.post(&introspect_url).basic_auth("rs-id", Some("rs-secret")).form(&[("token", &access)])
        };
        let introspect = std::sync::Arc::new(introspect);

        let duration = pick(Duration::from_secs(15), Duration::from_secs(2));
        let rounds = pick(3, 1);
        let pace = Some(Duration::from_millis(10));
        let (mut logins, mut idle_p99, mut busy_p99) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            // Throughput: logins alone, enough connections to keep every KDF slot busy.
            let saturated = support::load(4 * cores, duration, login.clone()).await;
            // Latency: a light probe (100 introspections/s), idle and under the same logins.
            let i = introspect.clone();
            let idle = support::paced(1, duration, pace, move |c, n| i(c, n)).await;
            let i = introspect.clone();
            let (busy, _) = tokio::join!(
                support::paced(1, duration, pace, move |c, n| i(c, n)),
                support::load(4 * cores, duration, login.clone()),
            );
            println!("round {round}");
            describe("password grant", &saturated);
            describe("introspection probe, idle", &idle);
            describe("introspection probe, logins", &busy);
            assert_eq!((idle.errors, busy.errors, saturated.errors), (0, 0, 0), "a run with errors is invalid");
            logins.push(saturated.rps);
            idle_p99.push(ms(idle.p99));
            busy_p99.push(ms(busy.p99));
        }
        verdict("password grant throughput (median)", median(logins), limit, "logins/s", 0.9, true);
        verdict("introspection p99 under login saturation (median)", median(busy_p99), median(idle_p99), "ms", 3.0, false);
    });
}
