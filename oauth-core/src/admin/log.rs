//! `/admin/log/`: every change made through the console, newest first — when,
//! which staff user, what was done, to which object and which fields changed
//! (Django admin's history).

use crate::pages::page_try;
use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use super::{Chrome, PAGE_SIZE, Pager, chrome, page, staff, when};
use crate::pages::PagesState;
use crate::store::UserId;

pub(super) fn routes() -> Router<PagesState> {
    Router::new().route("/admin/log/", get(list))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    p: Option<u64>,
}

/// One change of the list.
struct Row {
    at: String,
    actor_id: UserId,
    /// The actor's email; `None` when the account is gone.
    actor: Option<String>,
    action: String,
    object_type: String,
    object_id: String,
    object_repr: String,
    /// The object's page, when it still exists.
    object_href: Option<String>,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin/log.html")]
struct ListPage<'a> {
    chrome: &'a Chrome,
    entries: Vec<Row>,
    pager: Pager,
}

/// The users of a page, each looked up once; `None` for an account that is gone.
struct Users<'a> {
    pages: &'a PagesState,
    seen: HashMap<UserId, Option<String>>,
}

impl Users<'_> {
    async fn email(&mut self, id: UserId) -> Result<Option<String>, Response> {
        if let Some(e) = self.seen.get(&id) {
            return Ok(e.clone());
        }
        let email = match self.pages.app.users.user_by_id(id).await {
            Ok(u) => u.map(|u| u.email.as_str().to_owned()),
            Err(e) => return Err(self.pages.internal(&e).await),
        };
        self.seen.insert(id, email.clone());
        Ok(email)
    }
}

async fn list(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Query(lq): Query<ListQuery>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    // The console's routes are served only with a log.
    let Some(log) = pages.admin_log.as_ref() else {
        return pages
            .error(
                StatusCode::NOT_FOUND,
                "No log",
                "This server keeps no admin log.",
            )
            .await;
    };
    let page_no = lq.p.unwrap_or(1).max(1);
    let found = page_try!(
        pages
            .ok(log.entries(Pager::offset(page_no), PAGE_SIZE).await)
            .await
    );
    let mut users = Users {
        pages: &pages,
        seen: HashMap::new(),
    };
    let mut entries = Vec::with_capacity(found.items.len());
    for item in found.items {
        let e = item.entry;
        let actor = page_try!(users.email(e.actor_id).await);
        let object_href = match e.object_id.parse::<UserId>() {
            Ok(id) if e.object_type == "user" => match users.email(id).await {
                Ok(Some(_)) => Some(format!("/admin/users/{id}/")),
                Ok(None) => None,
                Err(r) => return r,
            },
            _ => None,
        };
        entries.push(Row {
            at: when(e.at),
            actor_id: e.actor_id,
            actor,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            object_repr: e.object_repr,
            object_href,
            detail: e.detail,
        });
    }
    let pager = Pager::new(page_no, found.total, |p| format!("/admin/log/?p={p}"));
    let chrome = page_try!(chrome(&pages, &session, &me, "log").await);
    page(
        &pages,
        StatusCode::OK,
        &ListPage {
            chrome: &chrome,
            entries,
            pager,
        },
    )
}
