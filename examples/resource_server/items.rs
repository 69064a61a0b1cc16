//! The items API: `GET/POST /items/`, `GET/PUT/PATCH/DELETE /items/{id}/`.
//! Reads need scope `read`, writes `write`; only an item's owner may change it.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth_core::api::{self, ApiError, CharField, FieldErrors, Fields};
use oauth_core::openapi::{DrfAuthErrors, DrfErrors, DrfNotFound, DrfUnavailable, slash_optional};
use oauth_core::resource::{Principal, Scoped};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::Serialize;
use serde_json::Value;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::db::{self, item, user};
use crate::price::Price;

oauth_core::required_scope!(pub Read = "read", pub Write = "write");

const NOT_FOUND: &str = "No Item matches the given query.";
const FORBIDDEN: &str = "You do not have permission to perform this action.";
const NAME_TAKEN: &str = "item with this name already exists.";

/// Page sizes of the list (DRF `PAGE_SIZE` and `max_page_size`).
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub default: u64,
    pub max: u64,
}

/// The items API, documented: each handler is routed at the path its
/// `#[utoipa::path]` names (and without the trailing slash).
pub fn routes() -> OpenApiRouter<AppState> {
    let router = slash_optional(OpenApiRouter::new(), routes!(list, create));
    slash_optional(router, routes!(retrieve, change, destroy))
}

fn internal(e: DbErr) -> ApiError {
    ApiError::internal(&e)
}

fn detail(status: StatusCode, message: &'static str) -> ApiError {
    ApiError::Detail(status, message.into())
}

/// An item as DOT serialized it, in its key order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Item)]
struct ItemJson<'a> {
    id: i64,
    name: &'a str,
    description: &'a str,
    /// A decimal with two places, as text (`"12.50"`).
    price: String,
    /// The owner (`null` if the owner's row is gone).
    user: Option<UserJson<'a>>,
}

/// An item's owner.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ItemOwner)]
struct UserJson<'a> {
    id: i64,
    email: &'a str,
}

/// An item's writable fields (all of them for `POST` and `PUT`, some for `PATCH`),
/// as JSON or a form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ItemInput {
    /// Unique, at most 50 characters.
    #[schema(max_length = 50)]
    name: String,
    /// At most 250 characters.
    #[schema(max_length = 250)]
    description: String,
    /// At most 12 digits before the point and 2 after (`"12.5"`, `12.5`).
    price: String,
}

/// The list's query.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQuery {
    /// The page, from 1.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Items per page (capped at `MAX_PAGE_SIZE`).
    #[param(minimum = 1)]
    page_size: Option<u64>,
    /// Only the caller's items (`true` or `1`).
    mine: Option<bool>,
}

fn item_json<'a>(item: &'a item::Model, owner: Option<&'a user::Model>) -> ItemJson<'a> {
    ItemJson {
        id: item.id,
        name: &item.name,
        description: &item.description,
        price: Price(item.price_cents).to_text(),
        user: owner.map(|u| UserJson {
            id: u.id,
            email: &u.email,
        }),
    }
}

/// DRF's `PageNumberPagination` answer.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ItemPage)]
struct Page<'a> {
    count: u64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<ItemJson<'a>>,
}

/// The local user of the caller, who must be a user (not a client acting alone).
async fn caller(db: &DatabaseConnection, p: &Principal) -> Result<user::Model, ApiError> {
    db::local_user(db, p)
        .await
        .map_err(internal)?
        .ok_or_else(|| detail(StatusCode::FORBIDDEN, FORBIDDEN))
}

/// The item id a path segment names: only the canonical form of an id does, so
/// `+1`, `01` or ` 1` do not (Django's `<int:pk>` converter takes digits only).
fn canonical_id(id: &str) -> Option<i64> {
    let canonical = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (id == "0" || !id.starts_with('0'));
    canonical.then(|| id.parse::<i64>().ok()).flatten()
}

async fn find(db: &DatabaseConnection, id: &str) -> Result<item::Model, ApiError> {
    let Some(id) = canonical_id(id) else {
        return Err(detail(StatusCode::NOT_FOUND, NOT_FOUND));
    };
    item::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(internal)?
        .ok_or_else(|| detail(StatusCode::NOT_FOUND, NOT_FOUND))
}

async fn owner_of(
    db: &DatabaseConnection,
    item: &item::Model,
) -> Result<Option<user::Model>, ApiError> {
    user::Entity::find_by_id(item.owner_id)
        .one(db)
        .await
        .map_err(internal)
}

/// The item's owner, or 403.
async fn owned(
    db: &DatabaseConnection,
    p: &Principal,
    item: &item::Model,
) -> Result<user::Model, ApiError> {
    let me = caller(db, p).await?;
    if me.id == item.owner_id {
        Ok(me)
    } else {
        Err(detail(StatusCode::FORBIDDEN, FORBIDDEN))
    }
}

/// The writable fields; with `partial` (PATCH) absent fields stay `None`.
pub struct Input {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Price>,
}

/// The API's validation of an item's fields, shared with the admin console's form:
/// name required, unique, at most 50 characters; description at most 250; price
/// DRF's `DecimalField(14, 2)` (see [`Price`]). `this` is the item being changed,
/// which may keep its own name.
pub async fn validate(
    db: &DatabaseConnection,
    fields: &Fields,
    partial: bool,
    this: Option<i64>,
) -> Result<Input, ApiError> {
    let mut errors = FieldErrors::default();
    let present = |name: &str| !partial || fields.contains_key(name);
    let name = present("name")
        .then(|| {
            CharField::new("name")
                .trim()
                .max_length(50)
                .read(fields, &mut errors)
        })
        .flatten();
    let description = present("description")
        .then(|| {
            CharField::new("description")
                .trim()
                .max_length(250)
                .read(fields, &mut errors)
        })
        .flatten();
    let price = if present("price") {
        match fields.get("price") {
            None => {
                errors.add("price", api::REQUIRED);
                None
            }
            Some(Value::Null) => {
                errors.add("price", api::NULL);
                None
            }
            Some(v) => Price::parse(v).map_err(|m| errors.add("price", m)).ok(),
        }
    } else {
        None
    };
    if let Some(name) = &name {
        let mut taken = Condition::all().add(item::Column::Name.eq(name.as_str()));
        if let Some(id) = this {
            taken = taken.add(item::Column::Id.ne(id));
        }
        if item::Entity::find()
            .filter(taken)
            .count(db)
            .await
            .map_err(internal)?
            > 0
        {
            errors.add("name", NAME_TAKEN);
        }
    }
    errors.into_result()?;
    Ok(Input {
        name,
        description,
        price,
    })
}

/// A unique-name race lost between the check and the write is the same field error;
/// an item deleted between its lookup and the update (a racing `DELETE`) is the same
/// 404 as one that was never there.
pub fn write_error(e: DbErr) -> ApiError {
    if matches!(e, DbErr::RecordNotUpdated) {
        return detail(StatusCode::NOT_FOUND, NOT_FOUND);
    }
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => FieldErrors::single("name", NAME_TAKEN),
        _ => internal(e),
    }
}

#[utoipa::path(
    get,
    path = "/items/",
    tag = "items",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of items (scope `read`).", body = Page),
        (status = 404, description = "No such page.", body = oauth_core::openapi::DetailBody),
        DrfAuthErrors,
        DrfUnavailable,
    ),
)]
async fn list(
    State(state): State<AppState>,
    Scoped(p, ..): Scoped<Read>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let invalid_page = || detail(StatusCode::NOT_FOUND, "Invalid page.");
    let page = match query.get("page") {
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(invalid_page)?,
        None => 1,
    };
    let size = query
        .get("page_size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s >= 1)
        .map_or(state.pages.default, |s| s.min(state.pages.max));
    let mine = query
        .get("mine")
        .is_some_and(|m| matches!(m.as_str(), "true" | "1"));

    let mut select = item::Entity::find().order_by_asc(item::Column::Id);
    if mine {
        let me = db::local_user(&state.db, &p).await.map_err(internal)?;
        // A client acting for itself owns nothing.
        select = select.filter(item::Column::OwnerId.eq(me.map_or(-1, |u| u.id)));
    }
    let count = select.clone().count(&state.db).await.map_err(internal)?;
    let offset = (page - 1).saturating_mul(size);
    if page > 1 && offset >= count {
        return Err(invalid_page());
    }
    let items = select
        .offset(offset)
        .limit(size)
        .all(&state.db)
        .await
        .map_err(internal)?;
    let owner_ids: HashSet<i64> = items.iter().map(|i| i.owner_id).collect();
    let owners: HashMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(owner_ids))
        .all(&state.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let results = items
        .iter()
        .map(|i| item_json(i, owners.get(&i.owner_id)))
        .collect();

    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let link = |n: u64| {
        let mut url = format!("http://{host}/items/?page={n}");
        if query.contains_key("page_size") {
            url.push_str(&format!("&page_size={size}"));
        }
        if mine {
            url.push_str("&mine=true");
        }
        url
    };
    Ok(Json(Page {
        count,
        next: (offset + size < count).then(|| link(page + 1)),
        previous: (page > 1).then(|| link(page - 1)),
        results,
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/items/",
    tag = "items",
    request_body(content(
        (ItemInput = "application/json"),
        (ItemInput = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created (scope `write`); the caller owns it.", body = ItemJson),
        DrfErrors,
        DrfAuthErrors,
    ),
)]
async fn create(
    State(state): State<AppState>,
    Scoped(p, ..): Scoped<Write>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let me = caller(&state.db, &p).await?;
    let fields = api::parse_body(&headers, body)?;
    let input = validate(&state.db, &fields, false, None).await?;
    let (Some(name), Some(description), Some(price)) = (input.name, input.description, input.price)
    else {
        return Err(ApiError::internal(&"validated item without fields"));
    };
    let created = item::ActiveModel {
        name: Set(name),
        description: Set(description),
        price_cents: Set(price.0),
        owner_id: Set(me.id),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(write_error)?;
    Ok((StatusCode::CREATED, Json(item_json(&created, Some(&me)))).into_response())
}

#[utoipa::path(
    get,
    path = "/items/{id}/",
    tag = "items",
    params(("id" = i64, Path, minimum = 0, description = "The item's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The item (scope `read`).", body = ItemJson),
        DrfNotFound,
        DrfAuthErrors,
        DrfUnavailable,
    ),
)]
async fn retrieve(
    State(state): State<AppState>,
    Scoped(..): Scoped<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    retrieve_unauthenticated(State(state), Path(id)).await
}

/// [`retrieve`] without authentication: mounted at `/bench/items/{id}/` only for
/// `cargo bench --bench resource` (`BENCH_UNAUTHENTICATED=1`), as its baseline.
pub async fn retrieve_unauthenticated(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let item = find(&state.db, &id).await?;
    let owner = owner_of(&state.db, &item).await?;
    Ok(Json(item_json(&item, owner.as_ref())).into_response())
}

/// `PUT` replaces every field, `PATCH` (DRF's partial update) the ones given.
#[utoipa::path(
    method(put, patch),
    path = "/items/{id}/",
    tag = "items",
    params(("id" = i64, Path, minimum = 0, description = "The item's id.")),
    request_body(content(
        (ItemInput = "application/json"),
        (ItemInput = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed (scope `write`, the owner only).", body = ItemJson),
        DrfErrors,
        DrfAuthErrors,
        DrfNotFound,
    ),
)]
async fn change(
    State(state): State<AppState>,
    Scoped(p, ..): Scoped<Write>,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // DRF's order: 404, then 403, then 400.
    let item = find(&state.db, &id).await?;
    let me = owned(&state.db, &p, &item).await?;
    let fields = api::parse_body(&headers, body)?;
    let partial = method == Method::PATCH;
    let input = validate(&state.db, &fields, partial, Some(item.id)).await?;
    let mut row: item::ActiveModel = item.into();
    if let Some(name) = input.name {
        row.name = Set(name);
    }
    if let Some(description) = input.description {
        row.description = Set(description);
    }
    if let Some(price) = input.price {
        row.price_cents = Set(price.0);
    }
    let updated = row.update(&state.db).await.map_err(write_error)?;
    Ok(Json(item_json(&updated, Some(&me))).into_response())
}

#[utoipa::path(
    delete,
    path = "/items/{id}/",
    tag = "items",
    params(("id" = i64, Path, minimum = 0, description = "The item's id.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted (scope `write`, the owner only)."),
        DrfNotFound,
        DrfAuthErrors,
        DrfUnavailable,
    ),
)]
async fn destroy(
    State(state): State<AppState>,
    Scoped(p, ..): Scoped<Write>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let item = find(&state.db, &id).await?;
    owned(&state.db, &p, &item).await?;
    item::Entity::delete_by_id(item.id)
        .exec(&state.db)
        .await
        .map_err(internal)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod write_errors {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use sea_orm::DbErr;

    use super::write_error;

    /// Found by schemathesis: `PATCH /items/1/` racing a `DELETE /items/1/` had the
    /// update touch no row, and sea-orm's `RecordNotUpdated` was answered 500.
    #[tokio::test]
    async fn an_item_deleted_before_its_update_is_not_found() {
        let response = write_error(DbErr::RecordNotUpdated).into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"detail": "No Item matches the given query."})
        );
    }
}

#[cfg(test)]
mod id_properties {
    use proptest::prelude::*;

    use super::canonical_id;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every non-negative i64 is named by its decimal rendering.
        #[test]
        fn renderings_are_accepted(n in 0..=i64::MAX) {
            prop_assert_eq!(canonical_id(&n.to_string()), Some(n));
        }

        /// Nothing else is accepted: an accepted id is the rendering of what it names
        /// (so no sign, leading zero, blank, or value past i64::MAX).
        #[test]
        fn only_renderings_are_accepted(
            id in prop_oneof![
                any::<String>(),
                "[-+ 0]{0,2}[0-9]{0,21}[ \\t.]{0,1}",
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
            ],
        ) {
            if let Some(n) = canonical_id(&id) {
                prop_assert!(n >= 0);
                prop_assert_eq!(n.to_string(), id);
            }
        }
    }
}
