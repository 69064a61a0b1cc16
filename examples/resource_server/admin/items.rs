//! The console's item pages: the list (search on the name, pages), the change form
//! (the API's own validation, errors beside the fields with what was typed) and
//! deletion after a confirmation page. Each action ends with a flash message.

use std::collections::{BTreeMap, HashMap, HashSet};

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use axum::routing::get;
use oauth_core::api::{ApiError, Fields};
use oauth_core::pages::tower_sessions::Session;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, EntityTrait as _, PaginatorTrait as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, Set,
};
use serde::Deserialize;
use serde_json::Value;

use super::{CheckedForm, Frame, Operator, done, frame, html, internal, operator};
use crate::AppState;
use crate::db::{item, user};
use crate::price::Price;

/// Items on a page of the list.
const PAGE_SIZE: u64 = 25;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/", get(list))
        .route("/admin/items/", get(|| async { Redirect::to("/admin/") }))
        .route("/admin/items/{id}/", get(edit).post(save))
        .route(
            "/admin/items/{id}/delete/",
            get(confirm_delete).post(delete),
        )
}

/// One line of the list.
struct Row {
    id: i64,
    name: String,
    price: String,
    owner: String,
}

#[derive(Template)]
#[template(
    path = "items.html",
    config = "examples/resource_server/templates/askama.toml"
)]
struct ListPage {
    frame: Frame,
    q: String,
    rows: Vec<Row>,
    total: u64,
    page: u64,
    pages: u64,
    prev: Option<String>,
    next: Option<String>,
}

/// The change form: what was typed, and the errors of each field.
#[derive(Template)]
#[template(
    path = "item.html",
    config = "examples/resource_server/templates/askama.toml"
)]
struct EditPage {
    frame: Frame,
    id: i64,
    title: String,
    owner: String,
    name: String,
    description: String,
    price: String,
    errors: BTreeMap<String, Vec<String>>,
}

impl EditPage {
    /// The messages of one field (empty when it is fine).
    fn errors_of(&self, field: &str) -> &[String] {
        self.errors.get(field).map_or(&[], Vec::as_slice)
    }
}

#[derive(Template)]
#[template(
    path = "confirm_delete.html",
    config = "examples/resource_server/templates/askama.toml"
)]
struct DeletePage {
    frame: Frame,
    id: i64,
    name: String,
    owner: String,
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    p: Option<u64>,
}

/// `GET /admin/`: every item with its owner, by id; `q` searches the names.
async fn list(
    State(state): State<AppState>,
    session: Session,
    uri: OriginalUri,
    Query(query): Query<ListQuery>,
) -> Result<Response, Response> {
    let me = operator(&state, &session, &uri).await?;
    let q = query.q.trim().to_owned();
    let mut select = item::Entity::find().order_by_asc(item::Column::Id);
    if !q.is_empty() {
        select = select.filter(item::Column::Name.contains(&q));
    }
    let total = select
        .clone()
        .count(&state.db)
        .await
        .map_err(|e| internal(&e))?;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = query.p.unwrap_or(1).clamp(1, pages);
    let items = select
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
        .all(&state.db)
        .await
        .map_err(|e| internal(&e))?;
    let owner_ids: HashSet<i64> = items.iter().map(|i| i.owner_id).collect();
    let owners: HashMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(owner_ids))
        .all(&state.db)
        .await
        .map_err(|e| internal(&e))?
        .into_iter()
        .map(|u| (u.id, u.email))
        .collect();
    let rows = items
        .into_iter()
        .map(|i| Row {
            id: i.id,
            owner: owners.get(&i.owner_id).cloned().unwrap_or_default(),
            price: Price(i.price_cents).to_text(),
            name: i.name,
        })
        .collect();
    let link = |n: u64| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            s.append_pair("q", &q);
        }
        s.append_pair("p", &n.to_string());
        format!("/admin/?{}", s.finish())
    };
    let page_data = ListPage {
        frame: frame(&session, &me).await?,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
        q: q.clone(),
        rows,
        total,
        page,
        pages,
    };
    Ok(html(StatusCode::OK, &page_data))
}

/// The 404 page of an item that is not there (or no longer).
fn not_found() -> Response {
    super::message(
        StatusCode::NOT_FOUND,
        "No such item",
        "There is no item with this id; it may have been deleted.",
        Some(("/admin/", "Back to the items")),
    )
}

async fn find(state: &AppState, id: &str) -> Result<(item::Model, String), Response> {
    let id = id.parse::<i64>().map_err(|_| not_found())?;
    let found = item::Entity::find_by_id(id)
        .one(&state.db)
        .await
        .map_err(|e| internal(&e))?
        .ok_or_else(not_found)?;
    let owner = user::Entity::find_by_id(found.owner_id)
        .one(&state.db)
        .await
        .map_err(|e| internal(&e))?
        .map(|u| u.email)
        .unwrap_or_default();
    Ok((found, owner))
}

/// `GET /admin/items/{id}/`.
async fn edit(
    State(state): State<AppState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let me = operator(&state, &session, &uri).await?;
    let (found, owner) = find(&state, &id).await?;
    Ok(html(
        StatusCode::OK,
        &EditPage {
            frame: frame(&session, &me).await?,
            id: found.id,
            title: found.name.clone(),
            owner,
            price: Price(found.price_cents).to_text(),
            name: found.name,
            description: found.description,
            errors: BTreeMap::new(),
        },
    ))
}

/// The field errors of a validation failure, by field.
fn field_errors(e: &ApiError) -> Option<BTreeMap<String, Vec<String>>> {
    match e {
        ApiError::Fields(f) => serde_json::from_value(serde_json::to_value(f).ok()?).ok(),
        _ => None,
    }
}

/// `POST /admin/items/{id}/`: the API's PUT, from a form.
async fn save(
    State(state): State<AppState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<String>,
    CheckedForm(form): CheckedForm,
) -> Result<Response, Response> {
    let me = operator(&state, &session, &uri).await?;
    let (found, owner) = find(&state, &id).await?;
    let typed = |k: &str| form.get(k).cloned().unwrap_or_default();
    let fields: Fields = ["name", "description", "price"]
        .into_iter()
        .map(|k| (k.to_owned(), Value::String(typed(k))))
        .collect();
    let input = match crate::items::validate(&state.db, &fields, false, Some(found.id)).await {
        Ok(input) => input,
        Err(e) => {
            return match field_errors(&e) {
                Some(errors) => rejected(&session, &me, &found, owner, &form, errors).await,
                None => Err(internal(&"item validation failed")),
            };
        }
    };
    let (Some(name), Some(description), Some(price)) = (input.name, input.description, input.price)
    else {
        return Err(internal(&"validated item without fields"));
    };
    let mut row: item::ActiveModel = found.clone().into();
    row.name = Set(name);
    row.description = Set(description);
    row.price_cents = Set(price.0);
    let updated = match row.update(&state.db).await {
        Ok(u) => u,
        // Deleted since it was found (the API's PATCH had this race; schemathesis
        // found it there): the same page as an item that was never there.
        Err(sea_orm::DbErr::RecordNotUpdated) => return Err(not_found()),
        Err(e) => {
            return match field_errors(&crate::items::write_error(e)) {
                Some(errors) => rejected(&session, &me, &found, owner, &form, errors).await,
                None => Err(internal(&"item update failed")),
            };
        }
    };
    tracing::info!(item = updated.id, by = %me.email, "item changed in the console");
    Ok(done(
        &session,
        format!("The item “{}” was changed.", updated.name),
        "/admin/",
    )
    .await)
}

/// The change form again, with what was typed and the errors beside the fields.
async fn rejected(
    session: &Session,
    me: &Operator,
    found: &item::Model,
    owner: String,
    form: &HashMap<String, String>,
    errors: BTreeMap<String, Vec<String>>,
) -> Result<Response, Response> {
    let typed = |k: &str| form.get(k).cloned().unwrap_or_default();
    Ok(html(
        StatusCode::BAD_REQUEST,
        &EditPage {
            frame: frame(session, me).await?,
            id: found.id,
            title: found.name.clone(),
            owner,
            name: typed("name"),
            description: typed("description"),
            price: typed("price"),
            errors,
        },
    ))
}

/// `GET /admin/items/{id}/delete/`: are you sure?
async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let me = operator(&state, &session, &uri).await?;
    let (found, owner) = find(&state, &id).await?;
    Ok(html(
        StatusCode::OK,
        &DeletePage {
            frame: frame(&session, &me).await?,
            id: found.id,
            name: found.name,
            owner,
        },
    ))
}

/// `POST /admin/items/{id}/delete/`.
async fn delete(
    State(state): State<AppState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<String>,
    _: CheckedForm,
) -> Result<Response, Response> {
    let me = operator(&state, &session, &uri).await?;
    let (found, _) = find(&state, &id).await?;
    item::Entity::delete_by_id(found.id)
        .exec(&state.db)
        .await
        .map_err(|e| internal(&e))?;
    tracing::info!(item = found.id, by = %me.email, "item deleted in the console");
    Ok(done(
        &session,
        format!("The item “{}” was deleted.", found.name),
        "/admin/",
    )
    .await)
}
