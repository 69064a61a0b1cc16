//! [`GrantStore`] over SQL: authorization codes and consents.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, TransactionTrait as _,
};

use super::entity::{code, consent};
use super::{SeaOrmStore, backend, corrupt, parse_scope};
use crate::store::{
    AuthorizationCode, Consent, GrantStore, Redemption, StoreError, TokenFamily, UnixTime, UserId,
};
use crate::token::TokenHash;

impl TryFrom<code::Model> for AuthorizationCode {
    type Error = StoreError;

    fn try_from(m: code::Model) -> Result<Self, StoreError> {
        Ok(AuthorizationCode {
            hash: TokenHash::try_from(m.hash.as_slice()).map_err(|_| corrupt("code hash"))?,
            client_id: m.client_id,
            user_id: m.user_id,
            redirect_uri: m.redirect_uri,
            redirect_uri_sent: m.redirect_uri_sent,
            scope: parse_scope(&m.scope)?,
            code_challenge: m.code_challenge,
            family: TokenFamily::from_bytes(
                m.family
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("code family"))?,
            ),
            issued_at: m.issued_at,
            expires_at: m.expires_at,
            consumed_at: m.consumed_at,
            replayed_at: m.replayed_at,
        })
    }
}

impl TryFrom<consent::Model> for Consent {
    type Error = StoreError;

    fn try_from(m: consent::Model) -> Result<Self, StoreError> {
        Ok(Consent {
            user_id: m.user_id,
            client_id: m.client_id,
            scope: parse_scope(&m.scope)?,
            granted_at: m.granted_at,
        })
    }
}

impl SeaOrmStore {
    /// [`GrantStore::void_codes`] for the codes `theirs` picks: the unredeemed
    /// deleted (how many is returned), the redeemed marked replayed.
    async fn void_where(
        &self,
        theirs: sea_orm::Condition,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        // Delete the unredeemed first, then mark the redeemed: a redemption that
        // commits in between turns a code from the first kind into the second,
        // which the mark still finds (the other order could miss it). A code
        // issued in between is left alone: it was authorized after the withdrawal.
        let deleted = code::Entity::delete_many()
            .filter(theirs.clone())
            .filter(code::Column::ConsumedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(backend)?
            .rows_affected;
        code::Entity::update_many()
            .col_expr(code::Column::ReplayedAt, Expr::value(now))
            .filter(theirs)
            .filter(code::Column::ConsumedAt.is_not_null())
            .filter(code::Column::ReplayedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(deleted)
    }
}

#[async_trait]
impl GrantStore for SeaOrmStore {
    async fn insert_code(&self, c: &AuthorizationCode) -> Result<(), StoreError> {
        code::ActiveModel {
            hash: Set(c.hash.as_bytes().to_vec()),
            client_id: Set(c.client_id.clone()),
            user_id: Set(c.user_id),
            redirect_uri: Set(c.redirect_uri.clone()),
            redirect_uri_sent: Set(c.redirect_uri_sent),
            scope: Set(c.scope.to_string()),
            code_challenge: Set(c.code_challenge.clone()),
            family: Set(c.family.as_bytes().to_vec()),
            issued_at: Set(c.issued_at),
            expires_at: Set(c.expires_at),
            consumed_at: Set(c.consumed_at),
            replayed_at: Set(c.replayed_at),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn redeem_code(&self, hash: &TokenHash, now: UnixTime) -> Result<Redemption, StoreError> {
        let txn = self.db.begin().await.map_err(backend)?;
        let is_code = code::Column::Hash.eq(hash.as_bytes().to_vec());
        // The conditional write decides the race, as for refresh rotation: one
        // caller changes the row; it is the first statement, so SQLite's write lock
        // is taken at once.
        let won = code::Entity::update_many()
            .col_expr(code::Column::ConsumedAt, Expr::value(now))
            .filter(is_code.clone())
            .filter(code::Column::ConsumedAt.is_null())
            .filter(code::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await
            .map_err(backend)?
            .rows_affected
            == 1;
        if !won {
            // A second redemption: mark it, so that a winner still storing its
            // tokens sees the replay (`code_replayed`).
            code::Entity::update_many()
                .col_expr(code::Column::ReplayedAt, Expr::value(now))
                .filter(is_code.clone())
                .filter(code::Column::ConsumedAt.is_not_null())
                .filter(code::Column::ReplayedAt.is_null())
                .exec(&txn)
                .await
                .map_err(backend)?;
        }
        let row = code::Entity::find()
            .filter(is_code)
            .one(&txn)
            .await
            .map_err(backend)?;
        txn.commit().await.map_err(backend)?;
        let Some(row) = row else {
            return Ok(Redemption::Invalid);
        };
        let mut code = AuthorizationCode::try_from(row)?;
        Ok(if won {
            code.consumed_at = None;
            Redemption::Redeemed(code)
        } else if code.consumed_at.is_some() {
            Redemption::Replayed(code)
        } else {
            Redemption::Invalid
        })
    }

    async fn code_replayed(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        Ok(code::Entity::find()
            .filter(code::Column::Hash.eq(hash.as_bytes().to_vec()))
            .filter(code::Column::ReplayedAt.is_not_null())
            .one(&self.db)
            .await
            .map_err(backend)?
            .is_some())
    }

    async fn void_codes(
        &self,
        user_id: UserId,
        client_id: Option<&str>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut theirs = sea_orm::Condition::all().add(code::Column::UserId.eq(user_id));
        if let Some(id) = client_id {
            theirs = theirs.add(code::Column::ClientId.eq(id));
        }
        self.void_where(theirs, now).await
    }

    async fn void_client_codes(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError> {
        let theirs = sea_orm::Condition::all().add(code::Column::ClientId.eq(client_id));
        self.void_where(theirs, now).await
    }

    async fn retain_code(&self, hash: &TokenHash, until: UnixTime) -> Result<(), StoreError> {
        let redeemed = || {
            code::Entity::update_many()
                .filter(code::Column::Hash.eq(hash.as_bytes().to_vec()))
                .filter(code::Column::ConsumedAt.is_not_null())
        };
        redeemed()
            .col_expr(code::Column::CodeChallenge, Expr::value(""))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        redeemed()
            .col_expr(code::Column::ExpiresAt, Expr::value(until))
            .filter(code::Column::ExpiresAt.lt(until))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn purge_codes(&self, before: UnixTime) -> Result<u64, StoreError> {
        let res = code::Entity::delete_many()
            .filter(code::Column::ExpiresAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected)
    }

    async fn consent(
        &self,
        user_id: UserId,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        consent::Entity::find()
            .filter(consent::Column::UserId.eq(user_id))
            .filter(consent::Column::ClientId.eq(client_id))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(Consent::try_from)
            .transpose()
    }

    async fn save_consent(&self, c: &Consent) -> Result<(), StoreError> {
        // Read, merge, upsert. Two racing consents of one user to one client may
        // keep only one's extra scope: the user is then asked again, nothing worse.
        let old = consent::Entity::find()
            .filter(consent::Column::UserId.eq(c.user_id))
            .filter(consent::Column::ClientId.eq(c.client_id.as_str()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        let scope = match old {
            Some(old) => parse_scope(&old.scope)?.union(&c.scope),
            None => c.scope.clone(),
        };
        consent::Entity::insert(consent::ActiveModel {
            user_id: Set(c.user_id),
            client_id: Set(c.client_id.clone()),
            scope: Set(scope.to_string()),
            granted_at: Set(c.granted_at),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([consent::Column::UserId, consent::Column::ClientId])
                .update_columns([consent::Column::Scope, consent::Column::GrantedAt])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn consents(&self, user_id: UserId) -> Result<Vec<Consent>, StoreError> {
        consent::Entity::find()
            .filter(consent::Column::UserId.eq(user_id))
            .order_by_desc(consent::Column::GrantedAt)
            .order_by_desc(consent::Column::Id)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(Consent::try_from)
            .collect()
    }

    async fn forget_consent(&self, user_id: UserId, client_id: &str) -> Result<bool, StoreError> {
        let res = consent::Entity::delete_many()
            .filter(consent::Column::UserId.eq(user_id))
            .filter(consent::Column::ClientId.eq(client_id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(res.rows_affected > 0)
    }
}
