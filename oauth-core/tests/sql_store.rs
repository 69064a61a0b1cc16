//! Behaviour specific to the SQL store: what reaches the disk, re-opening, pragmas,
//! foreign keys, and rotation races between independent connection pools (as between
//! two server processes sharing one database).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use chrono::Utc;
use oauth_core::sea::sea_orm::{ConnectionTrait, DbBackend, Statement};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    Client, ClientKind, ClientRegistry, ClientSecret, Email, GrantType, NewUser, Password,
    PasswordHasher, RotatedToken, Rotation, ScryptParams, TokenFamily, TokenHash, TokenKind,
    TokenRecord, TokenStore, UserStore, generate_token,
};

const NOW: i64 = 1_800_000_000;

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("oauth.db").display())
}

fn hasher() -> PasswordHasher {
    PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap()
}

struct Plain {
    password: String,
    client_secret: String,
    access: String,
    refresh: String,
}

/// Stores a user, a client and a token pair the way a server would: only hashes.
async fn populate(store: &SeaOrmStore) -> Plain {
    let h = hasher();
    let plain = Plain {
        password: "a-very-distinctive-passphrase".into(),
        client_secret: generate_token().unwrap(),
        access: generate_token().unwrap(),
        refresh: generate_token().unwrap(),
    };
    let user = store
        .create_user(NewUser::new(
            Email::parse("disk@example.com").unwrap(),
            h.hash(&Password::new(plain.password.as_str()))
                .await
                .unwrap(),
            Utc::now(),
        ))
        .await
        .unwrap();
    let secret = ClientSecret::new(plain.client_secret.as_str());
    store
        .register_client(Client {
            client_id: "disk-client".into(),
            secret_hash: Some(h.hash(&Password::new(secret.secret())).await.unwrap()),
            kind: ClientKind::Confidential,
            name: "disk".into(),
            grant_types: vec![GrantType::Password, GrantType::RefreshToken],
            redirect_uris: vec![],
            allowed_origins: vec![],
            skip_authorization: false,
            allowed_scope: "read write".parse().unwrap(),
            default_scope: "read".parse().unwrap(),
            owner: Some(user.id),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    let family = TokenFamily::generate().unwrap();
    let rec = |plain: &str, kind| TokenRecord {
        hash: TokenHash::of(plain),
        kind,
        client_id: "disk-client".into(),
        user_id: Some(user.id),
        scope: "read".parse().unwrap(),
        family,
        issued_at: NOW,
        expires_at: NOW + 60,
        revoked_at: None,
    };
    store
        .insert_tokens(&[
            rec(&plain.access, TokenKind::Access),
            rec(&plain.refresh, TokenKind::Refresh),
        ])
        .await
        .unwrap();
    plain
}

fn assert_absent(haystack: &[u8], plain: &Plain) {
    for (what, needle) in [
        ("password", &plain.password),
        ("client secret", &plain.client_secret),
        ("access token", &plain.access),
        ("refresh token", &plain.refresh),
    ] {
        assert!(
            !haystack
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "the {what} is stored in clear"
        );
    }
}

#[tokio::test]
async fn sqlite_files_hold_no_secret_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeaOrmStore::open(&sqlite_url(&dir)).await.unwrap();
    let plain = populate(&store).await;
    // Every byte the database wrote: the main file and the write-ahead log.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        bytes.windows(16).any(|w| w == b"disk@example.com"),
        "scan sees stored rows"
    );
    assert!(
        bytes.windows(8).any(|w| w == b"$scrypt$"),
        "secrets are stored as PHC hashes"
    );
    assert_absent(&bytes, &plain);
}

#[tokio::test]
async fn postgres_rows_hold_no_secret_in_clear() {
    let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
        common::postgres_skipped();
        return;
    };
    let schema = format!("test_plain_{}", std::process::id());
    let store = SeaOrmStore::connect(StoreConfig::new(&url).schema(&schema))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let plain = populate(&store).await;
    let mut text = String::new();
    for table in ["oauth_users", "oauth_clients", "oauth_tokens"] {
        let rows = store
            .connection()
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT CAST(t AS TEXT) AS row FROM {table} t"),
            ))
            .await
            .unwrap();
        assert!(!rows.is_empty(), "{table}");
        for row in rows {
            text.push_str(&row.try_get::<String>("", "row").unwrap());
        }
    }
    assert!(text.contains("disk@example.com"));
    store
        .connection()
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    assert_absent(text.as_bytes(), &plain);
}

#[tokio::test]
async fn hashes_verify_after_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let plain = {
        let store = SeaOrmStore::open(&url).await.unwrap();
        let plain = populate(&store).await;
        store.connection().clone().close().await.unwrap();
        plain
    };
    let store = SeaOrmStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let user = store
        .user_by_email(&Email::parse("DISK@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    let h = hasher();
    let stored = user.password_hash.as_deref();
    assert!(
        h.verify(&Password::new(plain.password.as_str()), stored)
            .await
            .unwrap()
    );
    assert!(!h.verify(&Password::new("not it"), stored).await.unwrap());
    let client = store.client("disk-client").await.unwrap().unwrap();
    assert!(
        h.verify(
            &Password::new(plain.client_secret.as_str()),
            client.secret_hash.as_deref()
        )
        .await
        .unwrap()
    );
    let access = store
        .token(&TokenHash::of(&plain.access))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.user_id, Some(user.id));
}

async fn pragma(store: &SeaOrmStore, name: &str) -> String {
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {name}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get_by_index::<String>(0))
        .unwrap()
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeaOrmStore::open(&sqlite_url(&dir)).await.unwrap();
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "busy_timeout").await, "5000");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
    assert_eq!(pragma(&store, "synchronous").await, "1", "NORMAL");
    assert!(
        dir.path().join("oauth.db").exists(),
        "file created on first open"
    );
}

#[tokio::test]
async fn deleting_a_user_or_client_deletes_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeaOrmStore::open(&sqlite_url(&dir)).await.unwrap();
    let plain = populate(&store).await;
    let user = store
        .user_by_email(&Email::parse("disk@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(store.delete_user(user.id).await.unwrap());
    assert!(
        store
            .token(&TokenHash::of(&plain.access))
            .await
            .unwrap()
            .is_none()
    );
    let client = store.client("disk-client").await.unwrap().unwrap();
    assert_eq!(client.owner, None, "owner set to NULL, client kept");

    let cc = TokenRecord {
        hash: TokenHash::of("cc"),
        kind: TokenKind::Access,
        client_id: "disk-client".into(),
        user_id: None,
        scope: "read".parse().unwrap(),
        family: TokenFamily::generate().unwrap(),
        issued_at: NOW,
        expires_at: NOW + 60,
        revoked_at: None,
    };
    store
        .insert_tokens(std::slice::from_ref(&cc))
        .await
        .unwrap();
    assert!(store.delete_client("disk-client").await.unwrap());
    assert!(store.token(&cc.hash).await.unwrap().is_none());
}

/// Two connection pools on one SQLite file behave like two server processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_exclusive_across_independent_pools() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let a = Arc::new(SeaOrmStore::open(&url).await.unwrap());
    let b = Arc::new(SeaOrmStore::open(&url).await.unwrap());
    let plain = populate(&a).await;
    let old = TokenHash::of(&plain.refresh);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        set.spawn(async move {
            let new = [RotatedToken {
                hash: TokenHash::of(&generate_token().unwrap()),
                kind: TokenKind::Refresh,
                scope: "read".parse().unwrap(),
                expires_at: NOW + 60,
            }];
            store
                .rotate_refresh(
                    &old,
                    "disk-client",
                    NOW + 1,
                    &new,
                    oauth_core::RefreshGrace::default(),
                )
                .await
                .unwrap()
        });
    }
    let mut wins = 0;
    while let Some(out) = set.join_next().await {
        match out.unwrap() {
            Rotation::Rotated(_) => wins += 1,
            Rotation::Replayed => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// A store reading SQLite inline (the default) answers token lookups exactly as one
/// that goes through the pool, owner included, and sees changes made by another
/// store on the same file at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_token_lookups_match_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let inline = SeaOrmStore::open(&url).await.unwrap();
    let pooled = SeaOrmStore::connect(StoreConfig::new(&url).inline_reads(false))
        .await
        .unwrap();
    let plain = populate(&inline).await;
    let cc = TokenRecord {
        hash: TokenHash::of("client-credentials"),
        kind: TokenKind::Access,
        client_id: "disk-client".into(),
        user_id: None,
        scope: "read write".parse().unwrap(),
        family: TokenFamily::generate().unwrap(),
        issued_at: NOW,
        expires_at: NOW + 60,
        revoked_at: Some(NOW + 5),
    };
    inline
        .insert_tokens(std::slice::from_ref(&cc))
        .await
        .unwrap();
    let hashes = [
        TokenHash::of(&plain.access),
        TokenHash::of(&plain.refresh),
        cc.hash,
        TokenHash::of("never issued"),
    ];
    let same = || async {
        for hash in &hashes {
            assert_eq!(
                inline.token_with_owner(hash).await.unwrap(),
                pooled.token_with_owner(hash).await.unwrap()
            );
            assert_eq!(
                inline.token(hash).await.unwrap(),
                pooled.token(hash).await.unwrap()
            );
        }
    };
    same().await;
    let (access, owner) = inline.token_with_owner(&hashes[0]).await.unwrap().unwrap();
    assert_eq!(access.kind, TokenKind::Access);
    assert_eq!(owner.unwrap().email.as_str(), "disk@example.com");
    assert_eq!(
        inline.token_with_owner(&cc.hash).await.unwrap(),
        Some((cc.clone(), None))
    );

    // Changes through the other store are visible to the next inline lookup.
    let user = pooled
        .user_by_email(&Email::parse("disk@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    pooled
        .set_user_flags(
            user.id,
            oauth_core::UserFlags {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        pooled.revoke_family(&access.family, NOW + 9).await.unwrap(),
        2
    );
    let (revoked, owner) = inline.token_with_owner(&hashes[0]).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 9));
    assert!(!owner.unwrap().is_active);
    same().await;
}
