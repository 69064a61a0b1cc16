//! One contract, three backends: every test here runs against the in-memory stores,
//! SQLite in a temporary directory, and PostgreSQL when `TEST_DATABASE_URL` is set
//! (each run in a schema of its own, dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use oauth_core::memory::{
    MemoryAdminLog, MemoryClientRegistry, MemoryGrantStore, MemoryTokenStore, MemoryUserStore,
};
use oauth_core::sea::{SeaOrmStore, StoreConfig};
use oauth_core::{
    AdminLog, AuthorizationCode, Client, ClientKind, ClientRegistry, Consent, Email, GrantStore,
    GrantType, NewLogEntry, NewUser, Redemption, RefreshGrace, RotatedToken, Rotation, Scope,
    StoreError, TokenFamily, TokenHash, TokenKind, TokenQuery, TokenRecord, TokenStore, UserFlags,
    UserOrder, UserQuery, UserStore, generate_token,
};
use tokio::task::JoinSet;

mod common;
use common::unique_schema;

struct Backend {
    users: Arc<dyn UserStore>,
    clients: Arc<dyn ClientRegistry>,
    tokens: Arc<dyn TokenStore>,
    grants: Arc<dyn GrantStore>,
    log: Arc<dyn AdminLog>,
    /// Kept alive for the test's duration.
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Backend {
    fn memory() -> Self {
        Self {
            users: Arc::new(MemoryUserStore::default()),
            clients: Arc::new(MemoryClientRegistry::default()),
            tokens: Arc::new(MemoryTokenStore::default()),
            grants: Arc::new(MemoryGrantStore::default()),
            log: Arc::new(MemoryAdminLog::default()),
            _dir: None,
            pg: None,
        }
    }

    fn from_store(
        store: SeaOrmStore,
        dir: Option<tempfile::TempDir>,
        pg: Option<(String, String)>,
    ) -> Self {
        let store = Arc::new(store);
        Self {
            users: store.clone(),
            clients: store.clone(),
            tokens: store.clone(),
            grants: store.clone(),
            log: store,
            _dir: dir,
            pg,
        }
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("oauth.db").display());
        let store = SeaOrmStore::connect(StoreConfig::new(url).max_connections(8))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Self::from_store(store, Some(dir), None)
    }

    /// `None` when `TEST_DATABASE_URL` is unset; panics when it is set but unusable.
    async fn postgres() -> Option<Self> {
        let url = std::env::var("TEST_DATABASE_URL").ok()?;
        let schema = unique_schema();
        let store = SeaOrmStore::connect(StoreConfig::new(&url).schema(&schema).max_connections(8))
            .await
            .unwrap_or_else(|e| panic!("TEST_DATABASE_URL is set but unusable: {e}"));
        store.migrate().await.unwrap();
        Some(Self::from_store(store, None, Some((url, schema))))
    }

    async fn cleanup(self) {
        if let Some((url, schema)) = self.pg {
            let admin = SeaOrmStore::connect(StoreConfig::new(url).max_connections(1))
                .await
                .unwrap();
            use oauth_core::sea::sea_orm::ConnectionTrait as _;
            admin
                .connection()
                .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }
}

const NO_GRACE: RefreshGrace = RefreshGrace {
    period: 0,
    max_reuse: None,
};

const GRACE: RefreshGrace = RefreshGrace {
    period: 30,
    max_reuse: None,
};

/// Within the grace period the rotated token gets more successors and nothing is
/// revoked; past it, the reuse is a replay and the family dies.
async fn grace_period_reissues_then_replays(b: &Backend) {
    let (_, _, refresh) = grant(b, "grace@example.com").await;
    let rotate = |now: i64, grace: RefreshGrace| {
        let tokens = b.tokens.clone();
        async move {
            let new = successors(now);
            let out = tokens
                .rotate_refresh(&refresh.hash, "rs-id", now, &new, grace)
                .await
                .unwrap();
            (out, new)
        }
    };
    let (out, first) = rotate(NOW + 10, GRACE).await;
    assert!(matches!(out, Rotation::Rotated(_)), "{out:?}");
    let (out, again) = rotate(NOW + 40, GRACE).await;
    assert!(
        matches!(&out, Rotation::Reissued(r) if r.hash == refresh.hash),
        "{out:?}"
    );
    for t in first.iter().chain(&again) {
        assert!(active(b, &t.hash, NOW + 40).await, "nothing revoked");
    }
    // Without a grace period the same reuse is a replay; here, past the period.
    let (out, _) = rotate(NOW + 41, GRACE).await;
    assert_eq!(out, Rotation::Replayed);
    for t in first.iter().chain(&again) {
        assert!(!active(b, &t.hash, NOW + 41).await, "family revoked");
    }
}

/// A family revoked on purpose is never revived by a reuse within the period, and
/// reuses stop at the cap.
async fn grace_never_revives_a_revoked_family_and_is_capped(b: &Backend) {
    let (_, _, refresh) = grant(b, "revived@example.com").await;
    let out = b
        .tokens
        .rotate_refresh(
            &refresh.hash,
            "rs-id",
            NOW + 10,
            &successors(NOW + 10),
            GRACE,
        )
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)));
    b.tokens
        .revoke_family(&refresh.family, NOW + 11)
        .await
        .unwrap();
    let out = b
        .tokens
        .rotate_refresh(
            &refresh.hash,
            "rs-id",
            NOW + 12,
            &successors(NOW + 12),
            GRACE,
        )
        .await
        .unwrap();
    assert_eq!(out, Rotation::Replayed, "revoked, not rotated: no reuse");

    let (_, _, refresh) = grant(b, "capped@example.com").await;
    let capped = RefreshGrace {
        max_reuse: Some(2),
        ..GRACE
    };
    let mut outcomes = Vec::new();
    for i in 0..4 {
        let now = NOW + 10 + i;
        let out = b
            .tokens
            .rotate_refresh(&refresh.hash, "rs-id", now, &successors(now), capped)
            .await
            .unwrap();
        outcomes.push(std::mem::discriminant(&out));
    }
    let rotated = std::mem::discriminant(&Rotation::Rotated(refresh.clone()));
    let reissued = std::mem::discriminant(&Rotation::Reissued(refresh.clone()));
    let replayed = std::mem::discriminant(&Rotation::Replayed);
    assert_eq!(outcomes, [rotated, reissued, reissued, replayed]);
}

/// 64 concurrent retries of one refresh within the grace period all get tokens
/// (without one, 63 are replays and the winner's pair dies with them).
async fn sixty_four_concurrent_retries_succeed_within_the_grace_period(b: &Backend) {
    let (_, _, refresh) = grant(b, "retries@example.com").await;
    let mut set = JoinSet::new();
    for _ in 0..64 {
        let tokens = b.tokens.clone();
        set.spawn(async move {
            let new = successors(NOW + 10);
            let out = tokens
                .rotate_refresh(&refresh.hash, "rs-id", NOW + 10, &new, GRACE)
                .await;
            (out.unwrap(), new)
        });
    }
    let (mut rotated, mut reissued) = (0, 0);
    let mut issued = Vec::new();
    while let Some(res) = set.join_next().await {
        let (out, new) = res.unwrap();
        match out {
            Rotation::Rotated(_) => rotated += 1,
            Rotation::Reissued(_) => reissued += 1,
            other => panic!("unexpected {other:?}"),
        }
        issued.extend(new);
    }
    assert_eq!((rotated, reissued), (1, 63));
    for t in &issued {
        assert!(active(b, &t.hash, NOW + 10).await);
    }
}

/// Generates one `#[tokio::test]` per backend for each contract function.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::Backend::memory()).await; }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let b = super::Backend::sqlite().await;
                super::$name(&b).await;
                b.cleanup().await;
            }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(b) = super::Backend::postgres().await else {
                    $crate::common::postgres_skipped();
                    return;
                };
                super::$name(&b).await;
                b.cleanup().await;
            }
        )* }
    };
}

contract!(
    users_are_unique_by_case_insensitive_email,
    user_updates_and_listing,
    clients_register_update_list_delete,
    tokens_insert_lookup_and_revoke,
    sixty_four_concurrent_rotations_exactly_one_wins,
    replayed_rotated_token_revokes_the_family,
    rotation_refuses_what_it_must,
    password_change_revokes_other_sessions,
    codes_redeem_once_then_replay,
    redeemed_code_tombstone_outlives_the_purge,
    codes_are_voided_per_user_and_client,
    codes_are_voided_per_client,
    consents_merge_list_and_forget,
    origins_are_found_across_clients,
    users_search_filter_order_and_count,
    tokens_list_and_client_revocation,
    admin_log_newest_first,
    grace_period_reissues_then_replays,
    grace_never_revives_a_revoked_family_and_is_capped,
    sixty_four_concurrent_retries_succeed_within_the_grace_period,
);

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn scope(s: &str) -> Scope {
    s.parse().unwrap()
}

async fn users_are_unique_by_case_insensitive_email(b: &Backend) {
    let ann = b
        .users
        .create_user(NewUser::new(
            email("Ann@Example.com"),
            "$scrypt$x".into(),
            t0(),
        ))
        .await
        .unwrap();
    assert_eq!(ann.email.as_str(), "Ann@example.com");
    assert!(ann.is_active && !ann.is_staff && !ann.is_superuser);
    assert_eq!(ann.date_joined, t0());
    assert_eq!(ann.last_login, None);

    let dup = b
        .users
        .create_user(NewUser::new(
            email("ann@EXAMPLE.com"),
            "$scrypt$y".into(),
            t0(),
        ))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");

    let found = b
        .users
        .user_by_email(&email("ANN@example.com"))
        .await
        .unwrap();
    assert_eq!(found.as_ref().map(|u| u.id), Some(ann.id));
    assert_eq!(found.unwrap().password_hash.as_deref(), Some("$scrypt$x"));
    assert!(
        b.users
            .user_by_email(&email("bob@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.users.user_by_id(ann.id).await.unwrap(), Some(ann.clone()));
    assert!(b.users.user_by_id(ann.id + 1000).await.unwrap().is_none());
}

async fn user_updates_and_listing(b: &Backend) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let u = b
            .users
            .create_user(NewUser::new(
                email(&format!("u{i}@example.com")),
                "$scrypt$x".into(),
                t0(),
            ))
            .await
            .unwrap();
        ids.push(u.id);
    }
    let id = ids[2];
    b.users.set_password_hash(id, "$scrypt$new").await.unwrap();
    let later = t0() + chrono::Duration::hours(1);
    b.users.record_login(id, later).await.unwrap();
    let u = b
        .users
        .set_user_flags(
            id,
            UserFlags {
                is_staff: Some(true),
                is_active: Some(false),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
    assert!(u.is_staff && !u.is_active && !u.is_superuser);
    assert_eq!(u.password_hash.as_deref(), Some("$scrypt$new"));
    assert_eq!(u.last_login, Some(later));

    assert!(matches!(
        b.users.set_password_hash(-1, "x").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        b.users.record_login(-1, later).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        b.users
            .set_user_flags(
                -1,
                UserFlags {
                    is_staff: Some(true),
                    ..UserFlags::default()
                }
            )
            .await,
        Err(StoreError::NotFound)
    ));

    let page: Vec<_> = b
        .users
        .list_users(1, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(page, ids[1..3]);
    assert!(b.users.delete_user(id).await.unwrap());
    assert!(!b.users.delete_user(id).await.unwrap());
    assert_eq!(b.users.list_users(0, 100).await.unwrap().len(), 4);
    // The email is free again.
    b.users
        .create_user(NewUser::new(
            email("u2@example.com"),
            "$scrypt$x".into(),
            t0(),
        ))
        .await
        .unwrap();
}

fn client(id: &str) -> Client {
    Client {
        client_id: id.to_owned(),
        secret_hash: Some("$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaA".into()),
        kind: ClientKind::Confidential,
        name: format!("client {id}"),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        redirect_uris: vec![
            "https://app.example/cb".into(),
            "http://127.0.0.1:9000/cb".into(),
        ],
        allowed_origins: vec!["https://app.example".into()],
        skip_authorization: true,
        allowed_scope: scope("read write introspection"),
        default_scope: scope("read write"),
        owner: None,
        created_at: t0(),
    }
}

async fn clients_register_update_list_delete(b: &Backend) {
    b.clients.register_client(client("rs-id")).await.unwrap();
    assert!(matches!(
        b.clients.register_client(client("rs-id")).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        b.clients.client("rs-id").await.unwrap(),
        Some(client("rs-id"))
    );
    assert!(b.clients.client("nope").await.unwrap().is_none());

    let owner = b
        .users
        .create_user(NewUser::new(
            email("owner@example.com"),
            "$scrypt$x".into(),
            t0(),
        ))
        .await
        .unwrap();
    let mut changed = client("rs-id");
    changed.kind = ClientKind::Public;
    changed.secret_hash = None;
    changed.grant_types = vec![GrantType::AuthorizationCode];
    changed.allowed_scope = scope("read");
    changed.owner = Some(owner.id);
    changed.created_at = t0() + chrono::Duration::days(3);
    b.clients.update_client(changed.clone()).await.unwrap();
    let stored = b.clients.client("rs-id").await.unwrap().unwrap();
    assert_eq!(stored.created_at, t0(), "registration time is immutable");
    assert_eq!(
        stored,
        Client {
            created_at: t0(),
            ..changed
        }
    );
    assert!(stored.allows(GrantType::AuthorizationCode) && !stored.allows(GrantType::Password));
    assert!(matches!(
        b.clients.update_client(client("ghost")).await,
        Err(StoreError::NotFound)
    ));

    b.clients.register_client(client("second")).await.unwrap();
    let all: Vec<_> = b
        .clients
        .list_clients(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(all, ["rs-id", "second"]);
    assert!(b.clients.delete_client("second").await.unwrap());
    assert!(!b.clients.delete_client("second").await.unwrap());
}

const NOW: i64 = 1_800_000_000;

fn record(
    kind: TokenKind,
    family: TokenFamily,
    user: Option<i64>,
    client_id: &str,
) -> (String, TokenRecord) {
    let plain = generate_token().unwrap();
    let rec = TokenRecord {
        hash: TokenHash::of(&plain),
        kind,
        client_id: client_id.into(),
        user_id: user,
        scope: scope("read write"),
        family,
        issued_at: NOW,
        expires_at: NOW + 3600,
        revoked_at: None,
    };
    (plain, rec)
}

/// A user, the `rs-id` client and one issued access + refresh pair.
async fn grant(b: &Backend, user_email: &str) -> (i64, TokenRecord, TokenRecord) {
    if b.clients.client("rs-id").await.unwrap().is_none() {
        b.clients.register_client(client("rs-id")).await.unwrap();
    }
    let user = b
        .users
        .create_user(NewUser::new(email(user_email), "$scrypt$x".into(), t0()))
        .await
        .unwrap();
    let family = TokenFamily::generate().unwrap();
    let (_, access) = record(TokenKind::Access, family, Some(user.id), "rs-id");
    let (_, refresh) = record(TokenKind::Refresh, family, Some(user.id), "rs-id");
    b.tokens
        .insert_tokens(&[access.clone(), refresh.clone()])
        .await
        .unwrap();
    (user.id, access, refresh)
}

fn successors(now: i64) -> Vec<RotatedToken> {
    [TokenKind::Access, TokenKind::Refresh]
        .into_iter()
        .map(|kind| RotatedToken {
            hash: TokenHash::of(&generate_token().unwrap()),
            kind,
            scope: scope("read write"),
            expires_at: now + 3600,
        })
        .collect()
}

async fn active(b: &Backend, hash: &TokenHash, now: i64) -> bool {
    b.tokens
        .token(hash)
        .await
        .unwrap()
        .is_some_and(|t| t.is_active(now))
}

async fn tokens_insert_lookup_and_revoke(b: &Backend) {
    let (_, access, refresh) = grant(b, "tok@example.com").await;
    assert_eq!(
        b.tokens.token(&access.hash).await.unwrap(),
        Some(access.clone())
    );
    assert!(
        b.tokens
            .token(&TokenHash::of("unknown"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(active(b, &access.hash, NOW).await);
    assert!(
        !active(b, &access.hash, NOW + 3600).await,
        "expired at expires_at"
    );

    // Inserting a digest twice fails and stores nothing of the batch.
    let (_, fresh) = record(TokenKind::Access, access.family, access.user_id, "rs-id");
    let dup = b
        .tokens
        .insert_tokens(&[fresh.clone(), access.clone()])
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
    assert!(b.tokens.token(&fresh.hash).await.unwrap().is_none());

    // A client-credentials token has no user.
    let (_, cc) = record(
        TokenKind::Access,
        TokenFamily::generate().unwrap(),
        None,
        "rs-id",
    );
    b.tokens
        .insert_tokens(std::slice::from_ref(&cc))
        .await
        .unwrap();
    assert_eq!(
        b.tokens.token(&cc.hash).await.unwrap().unwrap().user_id,
        None
    );

    assert_eq!(
        b.tokens
            .revoke_family(&access.family, NOW + 5)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        b.tokens
            .revoke_family(&access.family, NOW + 6)
            .await
            .unwrap(),
        0
    );
    let revoked = b.tokens.token(&refresh.hash).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(NOW + 5));
    assert!(!revoked.is_active(NOW + 5));
    assert!(active(b, &cc.hash, NOW).await, "other families untouched");

    // Purge removes only what expired before the horizon.
    assert_eq!(b.tokens.purge_tokens(NOW + 3600).await.unwrap(), 0);
    assert_eq!(b.tokens.purge_tokens(NOW + 3601).await.unwrap(), 3);
    assert!(b.tokens.token(&access.hash).await.unwrap().is_none());
}

async fn sixty_four_concurrent_rotations_exactly_one_wins(b: &Backend) {
    let (_, access, refresh) = grant(b, "race@example.com").await;
    let mut set = JoinSet::new();
    for _ in 0..64 {
        let tokens = b.tokens.clone();
        let old = refresh.hash;
        set.spawn(async move {
            let new = successors(NOW + 10);
            let out = tokens
                .rotate_refresh(&old, "rs-id", NOW + 10, &new, NO_GRACE)
                .await;
            (out, new)
        });
    }
    let mut won = Vec::new();
    let mut replayed = 0;
    while let Some(res) = set.join_next().await {
        let (out, new) = res.unwrap();
        match out.unwrap() {
            Rotation::Rotated(old) => {
                assert_eq!(old.hash, refresh.hash);
                won.push(new);
            }
            Rotation::Replayed => replayed += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one rotation wins");
    assert_eq!(replayed, 63);
    // The losers were replays, so the winner's tokens are revoked with the family.
    for t in &won[0] {
        let stored = b
            .tokens
            .token(&t.hash)
            .await
            .unwrap()
            .expect("winner's token stored");
        assert_eq!(stored.family, refresh.family);
        assert!(!stored.is_active(NOW + 11));
    }
    assert!(!active(b, &access.hash, NOW + 11).await);
}

async fn replayed_rotated_token_revokes_the_family(b: &Backend) {
    let (user, access, refresh) = grant(b, "replay@example.com").await;
    let first = successors(NOW + 10);
    let out = b
        .tokens
        .rotate_refresh(&refresh.hash, "rs-id", NOW + 10, &first, NO_GRACE)
        .await
        .unwrap();
    let Rotation::Rotated(old) = out else {
        panic!("{out:?}")
    };
    assert_eq!(old.user_id, Some(user));
    // Rotation revokes the old refresh token and its access token, and issues live ones.
    assert!(!active(b, &refresh.hash, NOW + 10).await);
    assert!(!active(b, &access.hash, NOW + 10).await);
    for t in &first {
        let s = b.tokens.token(&t.hash).await.unwrap().unwrap();
        assert!(s.is_active(NOW + 10));
        assert_eq!(
            (s.user_id, s.client_id.as_str(), s.issued_at),
            (Some(user), "rs-id", NOW + 10)
        );
    }
    // A second, legitimate rotation from the new refresh token.
    let second = successors(NOW + 20);
    let out = b
        .tokens
        .rotate_refresh(&first[1].hash, "rs-id", NOW + 20, &second, NO_GRACE)
        .await
        .unwrap();
    assert!(matches!(out, Rotation::Rotated(_)));
    // Now the first refresh token is replayed: the whole family dies.
    let out = b
        .tokens
        .rotate_refresh(
            &refresh.hash,
            "rs-id",
            NOW + 30,
            &successors(NOW + 30),
            NO_GRACE,
        )
        .await
        .unwrap();
    assert_eq!(out, Rotation::Replayed);
    for t in &second {
        assert!(!active(b, &t.hash, NOW + 30).await, "family revoked");
    }
}

async fn rotation_refuses_what_it_must(b: &Backend) {
    let (_, access, refresh) = grant(b, "refuse@example.com").await;
    b.clients.register_client(client("other")).await.unwrap();
    let try_rotate = |hash: TokenHash, client: &'static str, now: i64| {
        let tokens = b.tokens.clone();
        async move {
            tokens
                .rotate_refresh(&hash, client, now, &successors(now), NO_GRACE)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        try_rotate(TokenHash::of("nope"), "rs-id", NOW).await,
        Rotation::Invalid
    );
    assert_eq!(
        try_rotate(access.hash, "rs-id", NOW).await,
        Rotation::Invalid,
        "an access token"
    );
    assert_eq!(
        try_rotate(refresh.hash, "other", NOW).await,
        Rotation::Invalid,
        "another client's"
    );
    assert_eq!(
        try_rotate(refresh.hash, "rs-id", NOW + 3600).await,
        Rotation::Invalid,
        "expired"
    );
    // None of the refusals consumed or revoked anything.
    assert!(active(b, &refresh.hash, NOW).await);
    assert!(active(b, &access.hash, NOW).await);
    assert!(matches!(
        try_rotate(refresh.hash, "rs-id", NOW + 1).await,
        Rotation::Rotated(_)
    ));
}

async fn password_change_revokes_other_sessions(b: &Backend) {
    let (user, a1, r1) = grant(b, "pw@example.com").await;
    let family2 = TokenFamily::generate().unwrap();
    let (_, a2) = record(TokenKind::Access, family2, Some(user), "rs-id");
    b.tokens
        .insert_tokens(std::slice::from_ref(&a2))
        .await
        .unwrap();
    let (_, other_user, _) = grant(b, "someone@example.com").await;

    assert_eq!(
        b.tokens
            .revoke_user_tokens(user, Some(&family2), NOW + 1)
            .await
            .unwrap(),
        2
    );
    assert!(!active(b, &a1.hash, NOW + 1).await && !active(b, &r1.hash, NOW + 1).await);
    assert!(
        active(b, &a2.hash, NOW + 1).await,
        "the session that changed the password stays"
    );
    assert!(
        active(b, &other_user.hash, NOW + 1).await,
        "other users untouched"
    );
    assert_eq!(
        b.tokens
            .revoke_user_tokens(user, None, NOW + 2)
            .await
            .unwrap(),
        1
    );
}

/// A user and a client for the grant-store tests; returns the user's id.
async fn owner_and_client(b: &Backend) -> i64 {
    let user = b
        .users
        .create_user(NewUser::new(
            email("ann@example.com"),
            "$scrypt$x".into(),
            t0(),
        ))
        .await
        .unwrap();
    b.clients.register_client(client("app")).await.unwrap();
    b.clients.register_client(client("other")).await.unwrap();
    user.id
}

fn code(user_id: i64, plain: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        hash: TokenHash::of(plain),
        client_id: "app".into(),
        user_id,
        redirect_uri: "http://127.0.0.1:9000/cb".into(),
        redirect_uri_sent: true,
        scope: scope("read write"),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        family: TokenFamily::generate().unwrap(),
        issued_at: 1_000,
        expires_at,
        consumed_at: None,
        replayed_at: None,
    }
}

async fn codes_redeem_once_then_replay(b: &Backend) {
    let user = owner_and_client(b).await;
    let issued = code(user, "code-1", 1_060);
    b.grants.insert_code(&issued).await.unwrap();
    assert!(matches!(
        b.grants.insert_code(&issued).await,
        Err(StoreError::Conflict)
    ));
    // Expired: refused and left unspent.
    let late = code(user, "code-late", 1_060);
    b.grants.insert_code(&late).await.unwrap();
    assert_eq!(
        b.grants.redeem_code(&late.hash, 1_060).await.unwrap(),
        Redemption::Invalid
    );
    assert_eq!(
        b.grants
            .redeem_code(&TokenHash::of("unknown"), 1_000)
            .await
            .unwrap(),
        Redemption::Invalid
    );
    // 32 racing redemptions: exactly one wins, the rest are replays.
    let mut set = JoinSet::new();
    for _ in 0..32 {
        let grants = b.grants.clone();
        let hash = issued.hash;
        set.spawn(async move { grants.redeem_code(&hash, 1_010).await.unwrap() });
    }
    let mut won = 0;
    let mut replays = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Redemption::Redeemed(c) => {
                assert_eq!(c, issued);
                won += 1;
            }
            Redemption::Replayed(c) => {
                assert_eq!(c.family, issued.family);
                replays += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((won, replays), (1, 31));
    assert!(b.grants.code_replayed(&issued.hash).await.unwrap());
    // A code redeemed once, with no replay, is not marked.
    let clean = code(user, "code-2", 1_060);
    b.grants.insert_code(&clean).await.unwrap();
    assert!(matches!(
        b.grants.redeem_code(&clean.hash, 1_001).await.unwrap(),
        Redemption::Redeemed(_)
    ));
    assert!(!b.grants.code_replayed(&clean.hash).await.unwrap());
    // Purge removes what expired.
    assert_eq!(b.grants.purge_codes(1_061).await.unwrap(), 3);
    assert_eq!(
        b.grants.redeem_code(&clean.hash, 1_002).await.unwrap(),
        Redemption::Invalid
    );
}

/// A redeemed code kept as a tombstone (`retain_code`) survives the purge of
/// expired codes until its end, with its PKCE challenge cleared, so that a late
/// replay is still `Replayed` with its family (to revoke); an unredeemed code is
/// not retained; after the tombstone's end the purge removes it.
async fn redeemed_code_tombstone_outlives_the_purge(b: &Backend) {
    let user = owner_and_client(b).await;
    let used = code(user, "code-used", 1_060);
    let unused = code(user, "code-unused", 1_060);
    b.grants.insert_code(&used).await.unwrap();
    b.grants.insert_code(&unused).await.unwrap();
    assert!(matches!(
        b.grants.redeem_code(&used.hash, 1_010).await.unwrap(),
        Redemption::Redeemed(_)
    ));
    b.grants.retain_code(&used.hash, 5_000).await.unwrap();
    b.grants.retain_code(&unused.hash, 5_000).await.unwrap();
    // Past the codes' expiry: only the unredeemed one goes.
    assert_eq!(b.grants.purge_codes(2_000).await.unwrap(), 1);
    match b.grants.redeem_code(&used.hash, 2_001).await.unwrap() {
        Redemption::Replayed(c) => {
            assert_eq!(c.family, used.family);
            assert_eq!(c.code_challenge, "", "the tombstone keeps no challenge");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        b.grants.redeem_code(&unused.hash, 2_001).await.unwrap(),
        Redemption::Invalid
    );
    // An earlier end does not shorten it.
    b.grants.retain_code(&used.hash, 1_500).await.unwrap();
    assert_eq!(b.grants.purge_codes(4_999).await.unwrap(), 0);
    assert_eq!(b.grants.purge_codes(5_001).await.unwrap(), 1);
    assert_eq!(
        b.grants.redeem_code(&used.hash, 5_002).await.unwrap(),
        Redemption::Invalid
    );
}

/// A second user of the store, besides the one `owner_and_client` creates.
async fn other_user(b: &Backend, address: &str) -> i64 {
    b.users
        .create_user(NewUser::new(email(address), "$scrypt$x".into(), t0()))
        .await
        .unwrap()
        .id
}

/// Stores an unredeemed code of `user` for `client`; its hash.
async fn insert_code_for(b: &Backend, user: i64, plain: &str, client: &str) -> TokenHash {
    let c = AuthorizationCode {
        client_id: client.into(),
        ..code(user, plain, 1_060)
    };
    b.grants.insert_code(&c).await.unwrap();
    c.hash
}

/// The code is gone: redeeming it at `at` is `Invalid`.
async fn assert_voided(b: &Backend, hash: &TokenHash, at: i64) {
    assert_eq!(
        b.grants.redeem_code(hash, at).await.unwrap(),
        Redemption::Invalid
    );
}

/// Redeeming the code at `at` succeeds.
async fn assert_redeems(b: &Backend, hash: &TokenHash, at: i64) {
    assert!(matches!(
        b.grants.redeem_code(hash, at).await.unwrap(),
        Redemption::Redeemed(_)
    ));
}

/// Redeeming the code at `at` succeeds, and leaves it not marked replayed.
async fn assert_redeems_unmarked(b: &Backend, hash: &TokenHash, at: i64) {
    assert_redeems(b, hash, at).await;
    assert!(!b.grants.code_replayed(hash).await.unwrap());
}

/// A withdrawn grant takes the user's codes for that client with it: an unredeemed
/// one is gone, a redeemed one is marked replayed (so an exchange still storing its
/// tokens revokes them); other clients' and other users' codes, and codes issued
/// afterwards, are untouched. With no client, every code of the user goes.
async fn codes_are_voided_per_user_and_client(b: &Backend) {
    let ann = owner_and_client(b).await;
    let bob = other_user(b, "bob@example.com").await;
    let pending = insert_code_for(b, ann, "ann-app-1", "app").await;
    let pending2 = insert_code_for(b, ann, "ann-app-2", "app").await;
    let redeemed = insert_code_for(b, ann, "ann-app-3", "app").await;
    let other_client = insert_code_for(b, ann, "ann-other", "other").await;
    let other_user = insert_code_for(b, bob, "bob-app", "app").await;
    assert_redeems_unmarked(b, &redeemed, 1_001).await;

    assert_eq!(
        b.grants.void_codes(ann, Some("app"), 1_002).await.unwrap(),
        2
    );
    for hash in [pending, pending2] {
        assert_voided(b, &hash, 1_003).await;
    }
    assert!(b.grants.code_replayed(&redeemed).await.unwrap());
    // Issued after the withdrawal (the user authorized the client again): valid.
    let later = insert_code_for(b, ann, "ann-app-later", "app").await;
    for hash in [&other_client, &other_user, &later] {
        assert_redeems_unmarked(b, hash, 1_003).await;
    }
    // Nothing left of the user's for that client: nothing to delete.
    assert_eq!(
        b.grants.void_codes(ann, Some("app"), 1_004).await.unwrap(),
        0
    );

    // Every client of the user (a new password, a deactivated account).
    let app = insert_code_for(b, ann, "ann-app-4", "app").await;
    let other = insert_code_for(b, ann, "ann-other-2", "other").await;
    let bobs = insert_code_for(b, bob, "bob-app-2", "app").await;
    assert_eq!(b.grants.void_codes(ann, None, 1_005).await.unwrap(), 2);
    for hash in [app, other] {
        assert_voided(b, &hash, 1_006).await;
    }
    assert!(b.grants.code_replayed(&other_client).await.unwrap());
    assert_redeems(b, &bobs, 1_006).await;
}

/// Every token of a client revoked, or its credentials changed: every user's code
/// for it goes — the unredeemed deleted, the redeemed marked replayed — while
/// other clients' codes, and the client's codes issued afterwards, are untouched.
async fn codes_are_voided_per_client(b: &Backend) {
    let ann = owner_and_client(b).await;
    let bob = other_user(b, "bob@example.com").await;
    let anns = insert_code_for(b, ann, "ann-app", "app").await;
    let bobs = insert_code_for(b, bob, "bob-app", "app").await;
    let redeemed = insert_code_for(b, bob, "bob-app-2", "app").await;
    let other_client = insert_code_for(b, ann, "ann-other", "other").await;
    let other_redeemed = insert_code_for(b, bob, "bob-other", "other").await;
    for hash in [&redeemed, &other_redeemed] {
        assert_redeems(b, hash, 1_001).await;
    }

    assert_eq!(b.grants.void_client_codes("app", 1_002).await.unwrap(), 2);
    for hash in [anns, bobs] {
        assert_voided(b, &hash, 1_003).await;
    }
    assert!(b.grants.code_replayed(&redeemed).await.unwrap());
    assert!(!b.grants.code_replayed(&other_redeemed).await.unwrap());
    let later = insert_code_for(b, ann, "ann-app-later", "app").await;
    for hash in [other_client, later] {
        assert_redeems_unmarked(b, &hash, 1_003).await;
    }
    assert_eq!(b.grants.void_client_codes("app", 1_004).await.unwrap(), 0);
    assert_eq!(
        b.grants.void_client_codes("nobody", 1_004).await.unwrap(),
        0
    );
}

async fn consents_merge_list_and_forget(b: &Backend) {
    let user = owner_and_client(b).await;
    assert_eq!(b.grants.consent(user, "app").await.unwrap(), None);
    let given = |client: &str, s: &str, at: i64| Consent {
        user_id: user,
        client_id: client.into(),
        scope: scope(s),
        granted_at: at,
    };
    b.grants
        .save_consent(&given("app", "read", 10))
        .await
        .unwrap();
    b.grants
        .save_consent(&given("app", "write", 20))
        .await
        .unwrap();
    b.grants
        .save_consent(&given("other", "read", 15))
        .await
        .unwrap();
    let app = b.grants.consent(user, "app").await.unwrap().unwrap();
    assert_eq!((app.scope, app.granted_at), (scope("read write"), 20));
    let all = b.grants.consents(user).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(),
        ["app", "other"]
    );
    assert!(b.grants.forget_consent(user, "app").await.unwrap());
    assert!(!b.grants.forget_consent(user, "app").await.unwrap());
    assert_eq!(b.grants.consent(user, "app").await.unwrap(), None);
    assert_eq!(b.grants.consents(user).await.unwrap().len(), 1);
}

async fn origins_are_found_across_clients(b: &Backend) {
    b.clients.register_client(client("app")).await.unwrap();
    assert!(
        b.clients
            .origin_allowed("https://app.example")
            .await
            .unwrap()
    );
    assert!(
        !b.clients
            .origin_allowed("https://app.example.evil")
            .await
            .unwrap()
    );
    assert!(
        !b.clients
            .origin_allowed("https://other.example")
            .await
            .unwrap()
    );
}

async fn users_search_filter_order_and_count(b: &Backend) {
    for (i, (mail, staff, active)) in [
        ("carol@example.com", false, true),
        ("Ann@Example.com", true, true),
        ("bob@sample.org", false, false),
        ("a_b%c@example.com", false, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut u = NewUser::new(
            email(mail),
            "$scrypt$x".into(),
            t0() + chrono::Duration::days(i as i64),
        );
        u.is_staff = staff;
        u.is_active = active;
        b.users.create_user(u).await.unwrap();
    }
    let emails = |p: &oauth_core::Page<oauth_core::User>| {
        p.items
            .iter()
            .map(|u| u.email.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let all = UserQuery {
        limit: 10,
        ..UserQuery::default()
    };
    let page = b.users.search_users(&all).await.unwrap();
    assert_eq!(page.total, 4);
    assert_eq!(
        emails(&page),
        [
            "a_b%c@example.com",
            "Ann@example.com",
            "bob@sample.org",
            "carol@example.com"
        ]
    );
    let q = |search: &str| UserQuery {
        search: Some(search.into()),
        ..all.clone()
    };
    assert_eq!(
        emails(&b.users.search_users(&q("EXAMPLE")).await.unwrap()).len(),
        3
    );
    // LIKE's wildcards are literal.
    assert_eq!(
        emails(&b.users.search_users(&q("_b%")).await.unwrap()),
        ["a_b%c@example.com"]
    );
    assert_eq!(b.users.search_users(&q("%")).await.unwrap().total, 1);
    let staff = UserQuery {
        is_staff: Some(true),
        ..all.clone()
    };
    assert_eq!(
        emails(&b.users.search_users(&staff).await.unwrap()),
        ["Ann@example.com"]
    );
    let inactive = UserQuery {
        is_active: Some(false),
        ..all.clone()
    };
    assert_eq!(
        emails(&b.users.search_users(&inactive).await.unwrap()),
        ["bob@sample.org"]
    );
    let newest = UserQuery {
        order: UserOrder::JoinedDesc,
        offset: 1,
        limit: 2,
        ..all.clone()
    };
    let page = b.users.search_users(&newest).await.unwrap();
    assert_eq!(
        (page.total, emails(&page)),
        (
            4,
            vec!["bob@sample.org".to_owned(), "Ann@example.com".to_owned()]
        )
    );
    assert_eq!(UserOrder::parse("-date_joined"), UserOrder::JoinedDesc);
    assert_eq!(UserOrder::parse("nonsense"), UserOrder::Email);

    // Last login both ways, never signed in placed as if longest ago (last when
    // the most recent come first, first the other way; by id among them); the
    // flags, then email.
    for (mail, days) in [("carol@example.com", 10), ("Ann@example.com", 20)] {
        let u = b.users.user_by_email(&email(mail)).await.unwrap().unwrap();
        b.users
            .record_login(u.id, t0() + chrono::Duration::days(days))
            .await
            .unwrap();
    }
    for (order, expected) in [
        (
            UserOrder::LastLoginDesc,
            [
                "Ann@example.com",
                "carol@example.com",
                "bob@sample.org",
                "a_b%c@example.com",
            ],
        ),
        (
            UserOrder::LastLogin,
            [
                "bob@sample.org",
                "a_b%c@example.com",
                "carol@example.com",
                "Ann@example.com",
            ],
        ),
        (
            UserOrder::Staff,
            [
                "a_b%c@example.com",
                "bob@sample.org",
                "carol@example.com",
                "Ann@example.com",
            ],
        ),
        (
            UserOrder::StaffDesc,
            [
                "Ann@example.com",
                "a_b%c@example.com",
                "bob@sample.org",
                "carol@example.com",
            ],
        ),
        (
            UserOrder::Active,
            [
                "bob@sample.org",
                "a_b%c@example.com",
                "Ann@example.com",
                "carol@example.com",
            ],
        ),
        (
            UserOrder::ActiveDesc,
            [
                "a_b%c@example.com",
                "Ann@example.com",
                "carol@example.com",
                "bob@sample.org",
            ],
        ),
    ] {
        let q = UserQuery {
            order,
            ..all.clone()
        };
        assert_eq!(
            emails(&b.users.search_users(&q).await.unwrap()),
            expected,
            "{order:?}"
        );
        assert_eq!(UserOrder::parse(order.as_str()), order);
    }
}

async fn tokens_list_and_client_revocation(b: &Backend) {
    let user = owner_and_client(b).await;
    let record = |client: &str, at: i64, user_id: Option<i64>| TokenRecord {
        hash: TokenHash::of(&generate_token().unwrap()),
        kind: TokenKind::Access,
        client_id: client.into(),
        user_id,
        scope: scope("read"),
        family: TokenFamily::generate().unwrap(),
        issued_at: at,
        expires_at: at + 3600,
        revoked_at: None,
    };
    let tokens = [
        record("app", 10, Some(user)),
        record("app", 20, None),
        record("other", 30, Some(user)),
    ];
    b.tokens.insert_tokens(&tokens).await.unwrap();
    let all = b
        .tokens
        .list_tokens(&TokenQuery {
            limit: 10,
            ..TokenQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.total, 3);
    assert_eq!(
        all.items.iter().map(|t| t.issued_at).collect::<Vec<_>>(),
        [30, 20, 10]
    );
    let mine = TokenQuery {
        user_id: Some(user),
        limit: 10,
        ..TokenQuery::default()
    };
    assert_eq!(b.tokens.list_tokens(&mine).await.unwrap().total, 2);
    let app = TokenQuery {
        client_id: Some("app".into()),
        limit: 1,
        ..TokenQuery::default()
    };
    let page = b.tokens.list_tokens(&app).await.unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert_eq!(b.tokens.revoke_client_tokens("app", 50).await.unwrap(), 2);
    assert_eq!(b.tokens.revoke_client_tokens("app", 51).await.unwrap(), 0);
    assert!(
        b.tokens
            .token(&tokens[2].hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert_eq!(b.clients.clients_of(user).await.unwrap(), vec![]);
}

async fn admin_log_newest_first(b: &Backend) {
    for (i, action) in ["create", "change", "delete"].into_iter().enumerate() {
        b.log
            .record(NewLogEntry {
                at: t0() + chrono::Duration::seconds(i as i64),
                actor_id: 7,
                action: action.into(),
                object_type: "user".into(),
                object_id: "3".into(),
                object_repr: "<b>@example.com".into(),
                detail: "is_active".into(),
            })
            .await
            .unwrap();
    }
    let page = b.log.entries(0, 2).await.unwrap();
    assert_eq!(page.total, 3);
    let actions: Vec<_> = page.items.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(actions, ["delete", "change"]);
    assert!(page.items[0].id > page.items[1].id);
    assert_eq!(page.items[0].entry.object_repr, "<b>@example.com");
}
