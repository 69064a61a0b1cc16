//! Revocation racing refresh rotation, through two independent stores (two
//! connection pools, as two server processes) on one database: PostgreSQL when
//! `TEST_DATABASE_URL` is set, and SQLite always. A revocation that returned Ok must
//! hold: no token of the family survives it, whichever of the two ran first, and
//! neither side fails with anything but `invalid_grant`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    Client, ClientKind, ClientRegistry, Email, GrantRequest, GrantType, IssuerError, NewUser,
    OpaqueTokenIssuer, RefreshToken, SystemClock, TokenHash, TokenIssuer, TokenLifetimes,
    TokenStore, UserId, UserStore,
};

const TRIALS: usize = 150;
const CLIENT: &str = "race-client";

/// Two stores over one database; the tempdir keeps a SQLite file alive.
async fn two_stores(
    pg: bool,
) -> Option<(
    Arc<SeaOrmStore>,
    Arc<SeaOrmStore>,
    Option<tempfile::TempDir>,
)> {
    let (config, dir) = if pg {
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("pg_races: TEST_DATABASE_URL unset, PostgreSQL variant skipped");
            return None;
        };
        (StoreConfig::new(url).schema(common::unique_schema()), None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("race.db").display());
        (StoreConfig::new(url), Some(dir))
    };
    let a = SeaOrmStore::connect(config.clone()).await.unwrap();
    a.migrate().await.unwrap();
    let b = SeaOrmStore::connect(config).await.unwrap();
    Some((Arc::new(a), Arc::new(b), dir))
}

fn issuer(store: &Arc<SeaOrmStore>) -> OpaqueTokenIssuer {
    OpaqueTokenIssuer::new(
        store.clone(),
        store.clone(),
        Arc::new(SystemClock),
        TokenLifetimes::default(),
    )
}

async fn setup(store: &SeaOrmStore) -> UserId {
    let user = store
        .create_user(NewUser::new(
            Email::parse("race@example.com").unwrap(),
            "$scrypt$unused".into(),
            Utc::now(),
        ))
        .await
        .unwrap();
    store
        .register_client(Client {
            client_id: CLIENT.into(),
            secret_hash: None,
            kind: ClientKind::Public,
            name: "race".into(),
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            redirect_uris: vec![],
            allowed_origins: vec![],
            skip_authorization: false,
            allowed_scope: "read write".parse().unwrap(),
            default_scope: "read".parse().unwrap(),
            owner: None,
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    user.id
}

#[derive(Clone, Copy)]
enum Revoker {
    /// RFC 7009 revocation of the refresh token being rotated.
    Token,
    /// Every token of the user (deactivation, an admin's "sign out everywhere").
    User,
    /// A password change from another session: new hash and revocation together.
    Password,
}

#[derive(Debug, Default)]
struct Tally {
    refreshed: usize,
    revoked_ok: usize,
    survivors: usize,
    errors: Vec<String>,
}

async fn race(pg: bool, revoker: Revoker) {
    let Some((a, b, _dir)) = two_stores(pg).await else {
        return;
    };
    let user = setup(&a).await;
    let (ia, ib) = (Arc::new(issuer(&a)), Arc::new(issuer(&b)));
    let started = Instant::now();
    let mut tally = Tally::default();
    for _ in 0..TRIALS {
        let issued = ia
            .issue(GrantRequest {
                client_id: CLIENT.into(),
                user_id: Some(user),
                scope: "read".parse().unwrap(),
                with_refresh_token: true,
                family: None,
            })
            .await
            .unwrap();
        let refresh = issued.refresh_token.unwrap();
        let plain = refresh.secret().to_owned();
        let refresher = {
            let ia = ia.clone();
            tokio::spawn(async move { ia.refresh(CLIENT, &RefreshToken::new(plain), None).await })
        };
        let plain = refresh.secret().to_owned();
        let (ib, b2) = (ib.clone(), b.clone());
        let revocation = tokio::spawn(async move {
            match revoker {
                Revoker::Token => ib.revoke(CLIENT, &plain).await.map(|_| ()),
                Revoker::User => ib.revoke_user_tokens(user, None).await.map(|_| ()),
                Revoker::Password => b2
                    .set_password_hash_and_revoke(
                        user,
                        "$scrypt$new",
                        b2.as_ref(),
                        None,
                        Utc::now().timestamp(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(IssuerError::from),
            }
        });
        let (refreshed, revoked) = (refresher.await.unwrap(), revocation.await.unwrap());
        let mut hashes = vec![
            TokenHash::of(issued.access_token.secret()),
            TokenHash::of(refresh.secret()),
        ];
        match refreshed {
            Ok(new) => {
                tally.refreshed += 1;
                hashes.push(TokenHash::of(new.access_token.secret()));
                hashes.push(TokenHash::of(new.refresh_token.unwrap().secret()));
            }
            Err(IssuerError::InvalidGrant) => {}
            Err(e) => tally.errors.push(format!("refresh: {e}")),
        }
        match revoked {
            Ok(()) => {
                tally.revoked_ok += 1;
                let now = Utc::now().timestamp();
                for h in &hashes {
                    if a.token(h).await.unwrap().is_some_and(|t| t.is_active(now)) {
                        tally.survivors += 1;
                    }
                }
            }
            Err(e) => tally.errors.push(format!("revoke: {e}")),
        }
    }
    eprintln!(
        "pg_races {} {}: {TRIALS} trials in {:.1?}: {} refreshed, {} revocations ok, {} survivors, {} errors",
        if pg { "postgres" } else { "sqlite" },
        match revoker {
            Revoker::Token => "refresh vs revoke",
            Revoker::User => "refresh vs user-wide revocation",
            Revoker::Password => "refresh vs password change",
        },
        started.elapsed(),
        tally.refreshed,
        tally.revoked_ok,
        tally.survivors,
        tally.errors.len(),
    );
    assert_eq!(tally.survivors, 0, "{tally:?}");
    assert!(tally.errors.is_empty(), "{tally:?}");
    assert_eq!(tally.revoked_ok, TRIALS, "{tally:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refresh_vs_revoke() {
    race(true, Revoker::Token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refresh_vs_user_revocation() {
    race(true, Revoker::User).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refresh_vs_password_change() {
    race(true, Revoker::Password).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refresh_vs_revoke() {
    race(false, Revoker::Token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refresh_vs_user_revocation() {
    race(false, Revoker::User).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_refresh_vs_password_change() {
    race(false, Revoker::Password).await;
}
