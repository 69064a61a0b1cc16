//! [`ThrottleStore`] in the database: one row per counter, keyed by the SHA-256 of
//! its key. A failure is one statement for all its keys (`INSERT … ON CONFLICT DO
//! UPDATE … RETURNING`), atomic per row across every process on the database; a
//! check is one primary-key lookup of the keys involved.

use std::collections::HashMap;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait as _, Func, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter};
use sha2::{Digest as _, Sha256};

use super::entity::throttle::{self, Column};
use super::{SeaOrmStore, backend};
use crate::store::{FailureCount, StoreError, ThrottleStore, UnixTime};

fn digest(key: &[u8]) -> Vec<u8> {
    Sha256::digest(key).to_vec()
}

fn count(m: &throttle::Model) -> FailureCount {
    FailureCount {
        failures: u32::try_from(m.failures).unwrap_or(0),
        last_failure: m.last_failure,
    }
}

#[async_trait]
impl ThrottleStore for SeaOrmStore {
    async fn failure_counts(
        &self,
        keys: &[&[u8]],
    ) -> Result<Vec<Option<FailureCount>>, StoreError> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|k| digest(k)).collect();
        let rows: HashMap<Vec<u8>, FailureCount> = throttle::Entity::find()
            .filter(Column::KeyHash.is_in(hashes.clone()))
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|m| (m.key_hash.clone(), count(&m)))
            .collect();
        Ok(hashes.iter().map(|h| rows.get(h).copied()).collect())
    }

    async fn record_failure(
        &self,
        keys: &[&[u8]],
        now_ms: i64,
        reset_ms: i64,
    ) -> Result<Vec<FailureCount>, StoreError> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|k| digest(k)).collect();
        // Rows in one order in every statement, so that two concurrent failures
        // with overlapping keys lock them in the same order (no deadlock); each
        // key once (PostgreSQL refuses to update a row twice in one statement).
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        let mut insert = Query::insert();
        insert.into_table(throttle::Entity).columns([
            Column::KeyHash,
            Column::Failures,
            Column::LastFailure,
        ]);
        for hash in sorted {
            insert
                .values([hash.into(), 1i32.into(), now_ms.into()])
                .map_err(|e| StoreError::Backend(Box::new(e)))?;
        }
        let table = throttle::Entity;
        let cutoff = now_ms.saturating_sub(reset_ms);
        insert
            .on_conflict(
                OnConflict::column(Column::KeyHash)
                    .value(
                        Column::Failures,
                        Expr::case(Expr::col((table, Column::LastFailure)).lte(cutoff), 1i32)
                            .finally(Expr::col((table, Column::Failures)).add(1i32)),
                    )
                    .value(
                        Column::LastFailure,
                        Func::greatest([
                            Expr::col((table, Column::LastFailure)),
                            Expr::val(now_ms),
                        ]),
                    )
                    .to_owned(),
            )
            .returning(Query::returning().columns([
                Column::KeyHash,
                Column::Failures,
                Column::LastFailure,
            ]));
        let mut after = HashMap::new();
        for row in self.db.query_all(&insert).await.map_err(backend)? {
            let hash: Vec<u8> = row.try_get("", "key_hash").map_err(backend)?;
            let failures: i32 = row.try_get("", "failures").map_err(backend)?;
            let last_failure: i64 = row.try_get("", "last_failure").map_err(backend)?;
            after.insert(
                hash,
                FailureCount {
                    failures: u32::try_from(failures).unwrap_or(0),
                    last_failure,
                },
            );
        }
        hashes
            .iter()
            .map(|h| {
                after
                    .get(h)
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt("a failure counter was not returned".into()))
            })
            .collect()
    }

    async fn clear_failures(&self, key: &[u8]) -> Result<(), StoreError> {
        throttle::Entity::delete_many()
            .filter(Column::KeyHash.eq(digest(key)))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn purge_throttle(&self, before: UnixTime) -> Result<u64, StoreError> {
        let r = throttle::Entity::delete_many()
            .filter(Column::LastFailure.lt(before.saturating_mul(1000)))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(r.rows_affected)
    }

    /// PostgreSQL: the instances on the database share these counters. SQLite
    /// serves one process (or a few on one machine): counting in memory there
    /// costs no write on the database's single writer.
    fn shared(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }
}
