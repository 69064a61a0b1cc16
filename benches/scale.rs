//! Target 4: introspection latency (p50, p99) with 1,000,000 stored tokens against
//! 10,000, each database loaded with batched inserts in one transaction, both
//! servers running, loads interleaved. Target: ≤ 1.5× for p50 and for p99.
//!
//! Run with: `cargo bench --bench scale` (`QUICK=1` for a smoke run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use oauth_core::sea::entity::token;
use oauth_core::sea::sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{Email, NewUser, TokenHash, UserStore};
use support::{Server, describe, median, ms, pick, verdict};

/// Tokens a client can present; the rest are filler rows with unknown plaintext.
const KNOWN: u64 = 1000;

fn main() {
    let binary = support::example("auth_server");
    let dir = tempfile::tempdir().unwrap();
    let rt = support::runtime();
    let (small, large) = (pick(10_000u64, 2_000), pick(1_000_000u64, 20_000));
    let mut servers = Vec::new();
    for (name, rows) in [("small", small), ("large", large)] {
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("{name}.db")).display()
        );
        // The first start migrates and seeds the client; then the rows go in.
        drop(Server::start(&binary, &[("DATABASE_URL", url.clone())]));
        let started = Instant::now();
        rt.block_on(load_rows(&url, rows));
        println!(
            "{name}: {rows} tokens loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        servers.push(Server::start(&binary, &[("DATABASE_URL", url)]));
    }
    rt.block_on(async {
        let duration = pick(Duration::from_secs(8), Duration::from_secs(1));
        let rounds = pick(3, 1);
        let (mut p50s, mut p99s) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        for round in 1..=rounds {
            println!("round {round}");
            for (k, server) in servers.iter().enumerate() {
                let url = format!("{}/o/introspect/", server.url);
                let l = support::load(8, duration, move |c, i| {
                    // Spread over the known tokens: every lookup is a different row.
                    let n = (i * 7919) % KNOWN;
                    c.post(&url)
                        .basic_auth("rs-id", Some("rs-secret"))
                        .form(&[("token", format!("known-{n}"))])
                })
                .await;
                describe(
                    if k == 0 {
                        "10k-class database"
                    } else {
                        "1M-class database"
                    },
                    &l,
                );
                assert_eq!(l.errors, 0, "a run with errors is invalid");
                p50s[k].push(ms(l.p50));
                p99s[k].push(ms(l.p99));
            }
        }
        let [s50, l50] = p50s.map(median);
        let [s99, l99] = p99s.map(median);
        verdict(
            &format!("introspection p50, {large} vs {small} tokens"),
            l50,
            s50,
            "ms",
            1.5,
            false,
        );
        verdict(
            &format!("introspection p99, {large} vs {small} tokens"),
            l99,
            s99,
            "ms",
            1.5,
            false,
        );
    });
}

/// `rows` access tokens of one user in a single transaction, 2,000 rows per INSERT;
/// `known-{n}` for n < KNOWN are spread among them.
async fn load_rows(url: &str, rows: u64) {
    let store = SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap();
    let user = store
        .create_user(NewUser::new(
            Email::parse("scale@example.com").unwrap(),
            "!".into(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let stride = rows / KNOWN;
    let txn = store.connection().begin().await.unwrap();
    let mut i = 0;
    while i < rows {
        let end = (i + 2000).min(rows);
        let batch = (i..end).map(|j| {
            let plain = if j % stride == 0 && j / stride < KNOWN {
                format!("known-{}", j / stride)
            } else {
                format!("filler-{j}")
            };
            let mut family = [0u8; 16];
            family[..8].copy_from_slice(&j.to_le_bytes());
            token::ActiveModel {
                hash: Set(TokenHash::of(&plain).as_bytes().to_vec()),
                kind: Set(token::ACCESS),
                client_id: Set("rs-id".into()),
                user_id: Set(Some(user.id)),
                scope: Set("read write".into()),
                family: Set(family.to_vec()),
                issued_at: Set(now),
                expires_at: Set(now + 36_000),
                revoked_at: Set(None),
                ..Default::default()
            }
        });
        token::Entity::insert_many(batch).exec(&txn).await.unwrap();
        i = end;
    }
    txn.commit().await.unwrap();
}
