//! What the admin console asks of the SQL store: searches, token lists, the log.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, ExprTrait as _, LikeExpr};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait as _, Condition, EntityTrait as _,
    PaginatorTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _,
};

use super::entity::{admin_log, token, user};
use super::{SeaOrmStore, backend};
use crate::store::{
    AdminLog, LogEntry, NewLogEntry, Page, StoreError, TokenQuery, TokenRecord, User, UserOrder,
    UserQuery,
};

/// `%needle%` with LIKE's own wildcards escaped.
fn contains(needle: &str) -> LikeExpr {
    let mut escaped = String::with_capacity(needle.len() + 2);
    escaped.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    LikeExpr::new(escaped).escape('\\')
}

impl SeaOrmStore {
    pub(super) async fn search_users_sql(&self, q: &UserQuery) -> Result<Page<User>, StoreError> {
        let mut filter = Condition::all();
        if let Some(s) = q.search.as_deref().filter(|s| !s.is_empty()) {
            filter =
                filter.add(Expr::col(user::Column::EmailKey).like(contains(&s.to_lowercase())));
        }
        if let Some(staff) = q.is_staff {
            filter = filter.add(user::Column::IsStaff.eq(staff));
        }
        if let Some(active) = q.is_active {
            filter = filter.add(user::Column::IsActive.eq(active));
        }
        let select = user::Entity::find().filter(filter);
        let total = select.clone().count(&self.db).await.map_err(backend)?;
        let select = match q.order {
            UserOrder::Email => select.order_by_asc(user::Column::EmailKey),
            UserOrder::EmailDesc => select.order_by_desc(user::Column::EmailKey),
            UserOrder::Joined => select.order_by_asc(user::Column::DateJoined),
            UserOrder::JoinedDesc => select.order_by_desc(user::Column::DateJoined),
            UserOrder::LastLoginDesc => select.order_by_with_nulls(
                user::Column::LastLogin,
                sea_orm::Order::Desc,
                sea_orm::sea_query::NullOrdering::Last,
            ),
            UserOrder::LastLogin => select.order_by_with_nulls(
                user::Column::LastLogin,
                sea_orm::Order::Asc,
                sea_orm::sea_query::NullOrdering::First,
            ),
            UserOrder::Staff => select
                .order_by_asc(user::Column::IsStaff)
                .order_by_asc(user::Column::EmailKey),
            UserOrder::StaffDesc => select
                .order_by_desc(user::Column::IsStaff)
                .order_by_asc(user::Column::EmailKey),
            UserOrder::Active => select
                .order_by_asc(user::Column::IsActive)
                .order_by_asc(user::Column::EmailKey),
            UserOrder::ActiveDesc => select
                .order_by_desc(user::Column::IsActive)
                .order_by_asc(user::Column::EmailKey),
        }
        .order_by_asc(user::Column::Id);
        let items = select
            .offset(q.offset)
            .limit(q.limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(User::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total })
    }

    pub(super) async fn list_tokens_sql(
        &self,
        q: &TokenQuery,
    ) -> Result<Page<TokenRecord>, StoreError> {
        let mut filter = Condition::all();
        if let Some(u) = q.user_id {
            filter = filter.add(token::Column::UserId.eq(u));
        }
        if let Some(c) = &q.client_id {
            filter = filter.add(token::Column::ClientId.eq(c.as_str()));
        }
        let select = token::Entity::find().filter(filter);
        let total = select.clone().count(&self.db).await.map_err(backend)?;
        let items = select
            .order_by_desc(token::Column::IssuedAt)
            .order_by_desc(token::Column::Id)
            .offset(q.offset)
            .limit(q.limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(TokenRecord::try_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, total })
    }
}

#[async_trait]
impl AdminLog for SeaOrmStore {
    async fn record(&self, e: NewLogEntry) -> Result<(), StoreError> {
        admin_log::ActiveModel {
            at: Set(e.at),
            actor_id: Set(e.actor_id),
            action: Set(e.action),
            object_type: Set(e.object_type),
            object_id: Set(e.object_id),
            object_repr: Set(e.object_repr),
            detail: Set(e.detail),
            ..Default::default()
        }
        .insert(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn entries(&self, offset: u64, limit: u64) -> Result<Page<LogEntry>, StoreError> {
        let total = admin_log::Entity::find()
            .count(&self.db)
            .await
            .map_err(backend)?;
        let items = admin_log::Entity::find()
            .order_by_desc(admin_log::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(|m| LogEntry {
                id: m.id,
                entry: NewLogEntry {
                    at: m.at,
                    actor_id: m.actor_id,
                    action: m.action,
                    object_type: m.object_type,
                    object_id: m.object_id,
                    object_repr: m.object_repr,
                    detail: m.detail,
                },
            })
            .collect();
        Ok(Page { items, total })
    }
}
