//! The admin console (feature `admin`): users, applications, tokens and the log of
//! every change made here, for staff users, at `/admin/`.
//!
//! It is part of the browser pages ([`Pages::admin`](crate::pages::Pages::admin))
//! and shares their sessions, sign-in, CSRF check, headers and stylesheet.
//! Anonymous visitors are sent to the login page; signed-in users who are not
//! staff get a 403 page that says who is signed in, with a sign-out form and
//! links to their own applications and the ones they authorized. Staff users
//! may do everything here (there are no per-model permissions). Every change is
//! recorded in the [`AdminLog`].

mod applications;
mod log;
mod tokens;
mod users;

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_sessions::Session;

use crate::pages::app_form::Facts;
use crate::pages::{PagesState, to_login_back};
use crate::store::{NewLogEntry, User};

pub use crate::store::AdminLog;

/// Items on a page of every list.
pub(crate) const PAGE_SIZE: u64 = 25;

/// The console's routes, under `/admin/`.
pub(crate) fn routes() -> Router<PagesState> {
    Router::new()
        .route("/admin/", get(|| async { Redirect::to("/admin/users/") }))
        .route("/admin", get(|| async { Redirect::to("/admin/users/") }))
        .merge(users::routes())
        .merge(applications::routes())
        .merge(tokens::routes())
        .merge(log::routes())
}

/// What every console page shows around its content.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) site_name: String,
    pub(crate) stylesheet: String,
    pub(crate) signed_in: Option<String>,
    pub(crate) csrf_token: String,
    /// A one-time message after an action.
    pub(crate) flash: Option<String>,
    /// The section of the navigation to mark as current.
    pub(crate) section: &'static str,
}

/// The confirmation page before a deletion.
#[derive(Template)]
#[template(path = "admin/confirm_delete.html")]
pub(crate) struct ConfirmPage<'a> {
    pub(crate) chrome: &'a Chrome,
    /// `user`, `application`.
    pub(crate) kind: &'static str,
    pub(crate) name: &'a str,
    /// Where the form posts.
    pub(crate) action: String,
    /// Where "No" goes.
    pub(crate) back: String,
    /// What the deletion also does.
    pub(crate) consequences: Vec<String>,
    /// An application's facts: its consequences are then the self-service
    /// confirmation's (`oauth/application_consequences.html`), not `consequences`.
    pub(crate) application: Option<Facts>,
}

/// The staff user of a console request, or the answer for anyone else: the login
/// page for anonymous visitors (with `next` back here), a 403 page for users who
/// are not staff.
pub(crate) async fn staff(
    pages: &PagesState,
    session: &Session,
    uri: &OriginalUri,
) -> Result<User, Response> {
    match pages.user(session).await {
        Ok(Some(u)) if u.is_staff => Ok(u),
        Ok(Some(u)) => Err(staff_only(pages, session, &u).await),
        Ok(None) => Err(to_login_back(&uri.0)),
        Err(e) => Err(pages.internal(&e).await),
    }
}

/// The 403 page of a signed-in user who is not staff.
#[derive(Template)]
#[template(path = "admin/staff_only.html")]
struct StaffOnlyPage<'a> {
    site_name: &'a str,
    stylesheet: &'a str,
    signed_in: Option<&'a str>,
    csrf_token: &'a str,
    email: &'a str,
}

/// The console's 403 page for `user`: who is signed in, a way to sign out, and
/// links to the pages every user has (their applications, the ones they
/// authorized).
async fn staff_only(pages: &PagesState, session: &Session, user: &User) -> Response {
    let csrf_token = match crate::pages::session::csrf_token(session).await {
        Ok(t) => t,
        Err(e) => return pages.internal(&e).await,
    };
    let email = user.email.as_str();
    page(
        pages,
        StatusCode::FORBIDDEN,
        &StaffOnlyPage {
            site_name: &pages.site_name,
            stylesheet: crate::pages::STYLESHEET_PATH,
            signed_in: Some(email),
            csrf_token: &csrf_token,
            email,
        },
    )
}

/// The chrome of a console page for `user`, consuming the flash message.
pub(crate) async fn chrome(
    pages: &PagesState,
    session: &Session,
    user: &User,
    section: &'static str,
) -> Result<Chrome, Response> {
    let csrf_token = match crate::pages::session::csrf_token(session).await {
        Ok(t) => t,
        Err(e) => return Err(pages.internal(&e).await),
    };
    let flash = match session.remove::<String>(FLASH).await {
        Ok(f) => f,
        Err(e) => return Err(pages.internal(&e).await),
    };
    Ok(Chrome {
        site_name: pages.site_name.clone(),
        stylesheet: crate::pages::STYLESHEET_PATH.to_owned(),
        signed_in: Some(user.email.as_str().to_owned()),
        csrf_token,
        flash,
        section,
    })
}

const FLASH: &str = "flash";

/// Sets the message the next page shows, then answers 303 to `to`.
pub(crate) async fn done(
    pages: &PagesState,
    session: &Session,
    message: String,
    to: &str,
) -> Response {
    if let Err(e) = session.insert(FLASH, message).await {
        return pages.internal(&e).await;
    }
    Redirect::to(to).into_response()
}

/// Renders an askama template as an HTML page.
pub(crate) fn page(pages: &PagesState, status: StatusCode, template: &impl Template) -> Response {
    pages.html(status, template.render().map_err(Into::into))
}

/// One change made through the console, as the admin log records it.
#[derive(Debug)]
pub(crate) struct Change<'a> {
    /// `create`, `change`, `delete`, `revoke`, `rotate`.
    pub(crate) action: &'a str,
    /// `user`, `application`, `token`, `client`.
    pub(crate) object_type: &'a str,
    pub(crate) object_id: &'a str,
    /// What the object is called now.
    pub(crate) object_repr: &'a str,
    /// Which fields changed; never a secret.
    pub(crate) detail: String,
}

/// The end of every console action: records `change` in the admin log, then sets
/// `message` as the next page's flash and answers 303 to `to`. A failure to write
/// the log is logged and said on the page, never hidden from the operator.
pub(crate) async fn log_and_done(
    pages: &PagesState,
    session: &Session,
    actor: &User,
    change: Change<'_>,
    message: String,
    to: &str,
) -> Response {
    let message = log(pages, actor, change, message).await;
    done(pages, session, message, to).await
}

/// Records `change` in the admin log with `actor`; `message`, with a note when
/// the log could not be written (logged, and said on the page).
pub(crate) async fn log(
    pages: &PagesState,
    actor: &User,
    change: Change<'_>,
    message: String,
) -> String {
    let mut message = message;
    if let Some(log) = pages.admin_log.as_ref() {
        let entry = NewLogEntry {
            at: pages.app.clock.now(),
            actor_id: actor.id,
            action: change.action.to_owned(),
            object_type: change.object_type.to_owned(),
            object_id: change.object_id.to_owned(),
            object_repr: change.object_repr.to_owned(),
            detail: change.detail,
        };
        if let Err(e) = log.record(entry).await {
            tracing::error!(error = %e, "could not write the admin log");
            message.push_str(" (The change could not be written to the log.)");
        }
    }
    message
}

/// Field errors of a form: field name → messages, shown beside each field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FormErrors(BTreeMap<String, Vec<String>>);

impl FormErrors {
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages of one field (empty when it is fine).
    pub(crate) fn of(&self, field: &str) -> &[String] {
        self.0.get(field).map_or(&[], Vec::as_slice)
    }
}

/// Page links of a list: `(offset, label)` of previous and next, and the counts.
#[derive(Debug, Clone)]
pub(crate) struct Pager {
    pub(crate) page: u64,
    pub(crate) pages: u64,
    pub(crate) total: u64,
    pub(crate) prev: Option<String>,
    pub(crate) next: Option<String>,
}

impl Pager {
    /// The pager of page `page` (1-based) of `total` items, with links built by
    /// `link(page)`.
    pub(crate) fn new(page: u64, total: u64, link: impl Fn(u64) -> String) -> Self {
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        Self {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }

    /// The offset of a 1-based page number.
    pub(crate) fn offset(page: u64) -> u64 {
        page.saturating_sub(1).saturating_mul(PAGE_SIZE)
    }
}

/// A query string from pairs, skipping empty values.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    q.finish()
}

/// A time as the console shows it.
pub(crate) fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A Unix time as the console shows it.
pub(crate) fn when_unix(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(String::new, when)
}
