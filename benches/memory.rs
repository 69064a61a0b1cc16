//! Target 5: peak resident memory of the idle auth server (≤ 30 MiB) and of the
//! resource server holding 100,000 cached introspection results (≤ 100 MiB), both
//! release builds, read from `/proc/PID/status` (`VmHWM`).
//!
//! Run with: `cargo bench --bench memory` (`QUICK=1` for a smoke run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    Email, NewUser, TokenFamily, TokenHash, TokenKind, TokenRecord, TokenStore, UserStore,
};
use support::{Server, limit, pick};

fn main() {
    let auth_bin = support::example("auth_server");
    let rs_bin = support::example("resource_server");
    let dir = tempfile::tempdir().unwrap();
    let as_db = format!("sqlite://{}", dir.path().join("as.db").display());
    let rt = support::runtime();

    // First start seeds the demo client (one scrypt hash); the figure is of a
    // second, idle start, as a server spends its life.
    drop(Server::start(&auth_bin, &[("DATABASE_URL", as_db.clone())]));
    let n = pick(100_000u64, 2_000);
    rt.block_on(tokens(&as_db, n));
    let auth = Server::start(&auth_bin, &[("DATABASE_URL", as_db.clone())]);
    std::thread::sleep(Duration::from_secs(2));
    let idle = support::proc_kib(auth.pid(), "VmHWM") as f64 / 1024.0;
    println!(
        "auth server idle: VmHWM {idle:.1} MiB, VmRSS {:.1} MiB",
        support::proc_kib(auth.pid(), "VmRSS") as f64 / 1024.0
    );

    let rs = Server::start(
        &rs_bin,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("rs.db").display()),
            ),
            ("AUTH_SERVER_URL", auth.url.clone()),
        ],
    );
    let before = support::proc_kib(rs.pid(), "VmHWM") as f64 / 1024.0;
    rt.block_on(async {
        let url = format!("{}/items/?page_size=1", rs.url);
        let clients = Arc::new(support::clients(32));
        let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for c in 0..32 {
            let (clients, next, url) = (clients.clone(), next.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        break errors;
                    }
                    let r = clients[c]
                        .get(&url)
                        .bearer_auth(format!("bench-token-{i}"))
                        .send()
                        .await
                        .unwrap();
                    if !r.status().is_success() {
                        errors += 1;
                    }
                }
            }));
        }
        let mut errors = 0;
        for t in tasks {
            errors += t.await.unwrap();
        }
        assert_eq!(
            errors, 0,
            "every token was accepted, so every answer is cached"
        );
    });
    let after = support::proc_kib(rs.pid(), "VmHWM") as f64 / 1024.0;
    println!(
        "resource server: VmHWM {before:.1} MiB at start, {after:.1} MiB after caching {n} introspection results"
    );
    limit("auth server idle peak RSS", idle, 30.0, "MiB");
    limit(
        &format!("resource server peak RSS with {n} cached results"),
        after,
        100.0,
        "MiB",
    );
}

/// `n` active access tokens `bench-token-{i}` of one user, inserted directly.
async fn tokens(url: &str, n: u64) {
    let store = SeaOrmStore::connect(StoreConfig::new(url)).await.unwrap();
    let user = store
        .create_user(NewUser::new(
            Email::parse("mem@example.com").unwrap(),
            "!".into(),
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(TokenRecord {
            hash: TokenHash::of(&format!("bench-token-{i}")),
            kind: TokenKind::Access,
            client_id: "rs-id".into(),
            user_id: Some(user.id),
            scope: "read write".parse().unwrap(),
            family: TokenFamily::generate().unwrap(),
            issued_at: now,
            expires_at: now + 36_000,
            revoked_at: None,
        });
        if batch.len() == 1000 || i + 1 == n {
            store.insert_tokens(&batch).await.unwrap();
            batch.clear();
        }
    }
}
