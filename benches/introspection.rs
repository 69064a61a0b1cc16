//! Target 1: introspection throughput of the auth server (SQLite, release build,
//! client Basic auth, 32 keep-alive connections) against the ceiling — a route of
//! the same server that reads the same form body and answers a constant JSON body
//! of the same size. Target: ≥ 50 % of the ceiling.
//!
//! Run with: `cargo bench --bench introspection` (`QUICK=1` for a smoke run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Server, describe, median, pick, verdict};

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
            ("BENCH_CEILING", "true".into()),
        ],
    );
    let rt = support::runtime();
    rt.block_on(async {
        let tokens =
            support::user_tokens(&server.url, "bench@example.com", "bench-passphrase-41").await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let introspect = format!("{}/o/introspect/", server.url);
        let ceiling = format!("{}/bench/ceiling", server.url);

        // The two answers must be the same size for the comparison to be fair.
        let client = reqwest::Client::new();
        let a = client
            .post(&introspect)
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", &token)])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let b = client
            .post(&ceiling)
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", &token)])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        println!(
            "answer sizes: introspection {} bytes, ceiling {} bytes",
            a.len(),
            b.len()
        );
        assert!(
            a.starts_with(b"{\"active\":true"),
            "{}",
            String::from_utf8_lossy(&a)
        );

        let connections = 32;
        let duration = pick(Duration::from_secs(10), Duration::from_secs(1));
        let rounds = pick(3, 1);
        println!("{connections} connections, {rounds} interleaved rounds of {duration:?} each");
        let (mut xs, mut cs) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let token = token.clone();
            let url = introspect.clone();
            let x = support::load(connections, duration, move |c, _| {
                c.post(&url)
                    .basic_auth("rs-id", Some("rs-secret"))
                    .form(&[("token", &token)])
            })
            .await;
            let token = tokens["access_token"].as_str().unwrap().to_owned();
            let url = ceiling.clone();
            let c = support::load(connections, duration, move |c, _| {
                c.post(&url)
                    .basic_auth("rs-id", Some("rs-secret"))
                    .form(&[("token", &token)])
            })
            .await;
            println!("round {round}");
            describe("introspection", &x);
            describe("ceiling", &c);
            assert_eq!((x.errors, c.errors), (0, 0), "a run with errors is invalid");
            xs.push(x.rps);
            cs.push(c.rps);
        }
        verdict(
            "introspection throughput (median)",
            median(xs),
            median(cs),
            "req/s",
            0.5,
            true,
        );
    });
}
