//! Target 2: resource-server overhead. `GET /items/{id}/` with a bearer token whose
//! introspection is cached, against the same handler mounted without
//! authentication, both on the resource server example (release build).
//! Target: ≥ 85 % of the unauthenticated throughput.
//!
//! Run with: `cargo bench --bench resource` (`QUICK=1` for a smoke run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use support::{Server, describe, median, pick, verdict};

fn main() {
    let auth_bin = support::example("auth_server");
    let rs_bin = support::example("resource_server");
    let dir = tempfile::tempdir().unwrap();
    let auth = Server::start(
        &auth_bin,
        &[(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("as.db").display()),
        )],
    );
    let rs = Server::start(
        &rs_bin,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("rs.db").display()),
            ),
            ("AUTH_SERVER_URL", auth.url.clone()),
            ("BENCH_UNAUTHENTICATED", "true".into()),
        ],
    );
    let rt = support::runtime();
    rt.block_on(async {
        let tokens = support::user_tokens(&auth.url, "bench@example.com", "bench-passphrase-41").await;
        let token = tokens["access_token"].as_str().unwrap().to_owned();
        let client = reqwest::Client::new();
        let item: serde_json::Value = client
            .post(format!("{}/items/", rs.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({"name": "lamp", "description": "a brass desk lamp", "price": "12.50"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = item["id"].as_i64().unwrap();
        let authed = format!("{}/items/{id}/", rs.url);
        let open = format!("{}/bench/items/{id}/", rs.url);
        let a = client.get(&authed).bearer_auth(&token).send().await.unwrap().bytes().await.unwrap();
        let b = client.get(&open).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(a, b, "both routes answer the same item");

        let connections = 32;
        let duration = pick(Duration::from_secs(10), Duration::from_secs(1));
        let rounds = pick(3, 1);
        println!("{connections} connections, {rounds} interleaved rounds of {duration:?} each");
        let (mut xs, mut bs) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (url, t) = (authed.clone(), token.clone());
            let x = support::load(connections, duration, move |c, _| c.get(&url).bearer_auth(&t)).await;
            let url = open.clone();
            let b = support::load(connections, duration, move |c, _| c.get(&url)).await;
            println!("round {round}");
            describe("authenticated (cached)", &x);
            describe("unauthenticated", &b);
            assert_eq!((x.errors, b.errors), (0, 0), "a run with errors is invalid");
            xs.push(x.rps);
            bs.push(b.rps);
        }
        verdict("authenticated GET /items/{id}/ (median)", median(xs), median(bs), "req/s", 0.85, true);
    });
}
