//! `SeaOrmStore::clear_expired` (the example's `cleartokens`): what goes, what
//! stays, in batches, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Harness;
use oauth_core::sea::Cleanup;
use oauth_core::{
    Clock as _, RefreshGrace, RevocationLog as _, RotatedToken, Rotation, TokenFamily, TokenHash,
    TokenKind, TokenRecord, TokenStore as _, generate_token,
};

const DAY: i64 = 24 * 3600;

fn token(kind: TokenKind, family: TokenFamily, issued: i64, expires: i64) -> TokenRecord {
    TokenRecord {
        hash: TokenHash::of(&generate_token().unwrap()),
        kind,
        client_id: "rs-id".into(),
        user_id: None,
        scope: "read".parse().unwrap(),
        family,
        issued_at: issued,
        expires_at: expires,
        revoked_at: None,
    }
}

async fn present(h: &Harness, t: &TokenRecord) -> bool {
    h.store.token(&t.hash).await.unwrap().is_some()
}

async fn what_goes_and_what_stays(h: &Harness) {
    let now = h.clock.unix();
    let family = || TokenFamily::generate().unwrap();
    // Expired two days ago, and an hour ago (inside the one-day retention).
    let long_expired: Vec<_> = (0..5)
        .map(|_| token(TokenKind::Access, family(), now - 3 * DAY, now - 2 * DAY))
        .collect();
    let recently_expired = token(TokenKind::Access, family(), now - DAY, now - 3600);
    h.store.insert_tokens(&long_expired).await.unwrap();
    h.store
        .insert_tokens(std::slice::from_ref(&recently_expired))
        .await
        .unwrap();

    // A grant revoked two days ago, still unexpired: nothing of it is active.
    let dead = family();
    let dead_pair = [
        token(TokenKind::Access, dead, now - 3 * DAY, now + DAY),
        token(TokenKind::Refresh, dead, now - 3 * DAY, now + 30 * DAY),
    ];
    h.store.insert_tokens(&dead_pair).await.unwrap();
    h.store.revoke_family(&dead, now - 2 * DAY).await.unwrap();

    // A live grant whose first refresh token was rotated two days ago: the rotated
    // token stays (a replay of it must still revoke the grant).
    let live = family();
    let first = [
        token(TokenKind::Access, live, now - 3 * DAY, now - 2 * DAY),
        token(TokenKind::Refresh, live, now - 3 * DAY, now + 30 * DAY),
    ];
    h.store.insert_tokens(&first).await.unwrap();
    let next = RotatedToken {
        hash: TokenHash::of(&generate_token().unwrap()),
        kind: TokenKind::Refresh,
        scope: "read".parse().unwrap(),
        expires_at: now + 30 * DAY,
    };
    let rotated = h
        .store
        .rotate_refresh(
            &first[1].hash,
            "rs-id",
            now - 2 * DAY,
            std::slice::from_ref(&next),
            RefreshGrace::default(),
        )
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(_)));

    let mark = h.store.revocations_after(0, 1).await.unwrap().latest;
    let cleared = h
        .store
        .clear_expired(Cleanup {
            batch_size: 2,
            revocation_retention: Duration::from_secs(3600),
            ..Cleanup::at(now)
        })
        .await
        .unwrap();
    // 5 long expired + the dead grant's 2 + the live grant's expired access token.
    assert_eq!(cleared.tokens, 8, "{cleared}");
    for t in long_expired.iter().chain(&dead_pair) {
        assert!(!present(h, t).await);
    }
    assert!(!present(h, &first[0]).await, "expired two days ago");
    assert!(present(h, &recently_expired).await, "within the retention");
    assert!(present(h, &first[1]).await, "rotated, grant alive: kept");
    assert!(
        h.store
            .token(&next.hash)
            .await
            .unwrap()
            .unwrap()
            .is_active(now)
    );
    // The revocations happened two days ago (the clock is the harness's), so their
    // log entries are past an hour's retention.
    assert!(cleared.revocations >= 2, "{cleared}");
    assert!(mark > 0);

    // The replay of the kept rotated token still revokes the grant.
    let replay = h
        .store
        .rotate_refresh(&first[1].hash, "rs-id", now, &[], RefreshGrace::default())
        .await
        .unwrap();
    assert_eq!(replay, Rotation::Replayed);

    // Now the grant is dead: the rotated token, revoked two days ago, goes; its
    // successor, revoked just now, stays for the retention.
    let again = h.store.clear_expired(Cleanup::at(now)).await.unwrap();
    assert_eq!(again.tokens, 1, "{again}");
    assert!(!present(h, &first[1]).await);
    assert!(h.store.token(&next.hash).await.unwrap().is_some());
    let third = h.store.clear_expired(Cleanup::at(now)).await.unwrap();
    assert_eq!(third.tokens, 0, "{third}");
}

scenarios!(what_goes_and_what_stays);
