//! `/admin/applications/`: every registered client, with DOT's registration form
//! to add one (client id and secret generated or typed, as the seed's `rs-id` /
//! `rs-secret`), a change page with "Rotate secret", and deletion after a
//! confirmation page.
//!
//! The form, its validation and the store operations are the self-service pages'
//! too ([`crate::pages::app_form`]). A generated secret is shown once, on the
//! page that answers the POST which saved it; only its hash is stored. Rotating a secret or deleting a
//! client revokes its tokens, and the old secret is refused at once.

use crate::pages::page_try;
use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Chrome, ConfirmPage, FormErrors, PAGE_SIZE, Pager, chrome, page, query, staff};
use crate::pages::app_form::{
    self, AppForm, Audience, Facts, FormView, Next, Outcome, Shown, finish, path_segment, too_many,
};
use crate::pages::{CheckedForm, PagesState};
use crate::secret::ClientSecret;
use crate::server::ClientIp;
use crate::store::{Client, ClientKind, User};

pub(super) fn routes() -> Router<PagesState> {
    Router::new()
        .route("/admin/applications/", get(list))
        .route("/admin/applications/add/", get(add_form).post(add))
        .route("/admin/applications/{client_id}/", get(detail).post(change))
        .route("/admin/applications/{client_id}/rotate/", post(rotate))
        .route(
            "/admin/applications/{client_id}/delete/",
            get(confirm_delete).post(delete),
        )
}

const SECTION: &str = "applications";
const LIST: &str = "/admin/applications/";

fn detail_path(client_id: &str) -> String {
    format!("{LIST}{}/", path_segment(client_id))
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    p: Option<u64>,
}

struct Row {
    facts: Facts,
    owner: String,
}

#[derive(Template)]
#[template(path = "admin/applications.html")]
struct ListPage<'a> {
    chrome: &'a Chrome,
    rows: Vec<Row>,
    q: &'a str,
    pager: Pager,
}

/// Every client, in pages of the registry's order. Registrations are few (they
/// are made by hand), so the list reads them all and searches name and client id
/// here.
async fn all_clients(pages: &PagesState) -> Result<Vec<Client>, Response> {
    const BATCH: u64 = 200;
    let registry = pages.app.client_auth.registry();
    let mut all = vec![];
    loop {
        let batch = match registry.list_clients(all.len() as u64, BATCH).await {
            Ok(b) => b,
            Err(e) => return Err(pages.internal(&e).await),
        };
        let n = batch.len() as u64;
        all.extend(batch);
        if n < BATCH {
            return Ok(all);
        }
    }
}

async fn list(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Query(lq): Query<ListQuery>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let search = lq.q.trim();
    let needle = search.to_lowercase();
    let mut clients = page_try!(all_clients(&pages).await);
    clients.retain(|c| {
        needle.is_empty()
            || c.name.to_lowercase().contains(&needle)
            || c.client_id.to_lowercase().contains(&needle)
    });
    let page_no = lq.p.unwrap_or(1).max(1);
    let pager = Pager::new(page_no, clients.len() as u64, |p| {
        format!("{LIST}?{}", query(&[("q", search), ("p", &p.to_string())]))
    });
    let start = usize::try_from(Pager::offset(page_no)).unwrap_or(usize::MAX);
    let mut rows = vec![];
    for c in clients
        .iter()
        .skip(start)
        .take(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX))
    {
        let owner = match c.owner {
            Some(id) => match pages.app.users.user_by_id(id).await {
                Ok(Some(u)) => u.email.as_str().to_owned(),
                Ok(None) => format!("user {id} (deleted)"),
                Err(e) => return pages.internal(&e).await,
            },
            None => String::new(),
        };
        rows.push(Row {
            facts: Facts::of(c, &pages.app),
            owner,
        });
    }
    let chrome = page_try!(chrome(&pages, &session, &me, SECTION).await);
    page(
        &pages,
        StatusCode::OK,
        &ListPage {
            chrome: &chrome,
            rows,
            q: search,
            pager,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/application_add.html")]
struct AddPage<'a> {
    chrome: &'a Chrome,
    f: FormView,
}

async fn add_page(
    pages: &PagesState,
    session: &Session,
    me: &User,
    form: AppForm,
    errors: FormErrors,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let chrome = page_try!(chrome(pages, session, me, SECTION).await);
    let f = FormView::new(pages, form, errors, None, Audience::Staff);
    page(pages, status, &AddPage { chrome: &chrome, f })
}

async fn add_form(State(pages): State<PagesState>, session: Session, uri: OriginalUri) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    add_page(
        &pages,
        &session,
        &me,
        AppForm::default(),
        FormErrors::default(),
    )
    .await
}

async fn add(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    ip: ClientIp,
    CheckedForm { body, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let (form, secret) = AppForm::parse(&body);
    let valid = match app_form::validate(
        &form,
        &secret,
        None,
        &pages.app.scopes,
        &crate::server::scope_policy::privileged(&pages.app),
        Audience::Staff,
    ) {
        Ok(v) => v,
        Err(errors) => return add_page(&pages, &session, &me, form, errors).await,
    };
    if valid.hashes_secret()
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut errors = FormErrors::default();
        errors.add("client_secret", message);
        return too_many(add_page(&pages, &session, &me, form, errors).await, wait);
    }
    let saved = match app_form::register(&pages, valid, None).await {
        Ok(Ok(s)) => s,
        Ok(Err(errors)) => return add_page(&pages, &session, &me, form, errors).await,
        Err(r) => return r,
    };
    let outcome = Outcome {
        action: "create",
        client: &saved.client,
        secret: saved.generated,
        detail: saved.changes.join("; "),
        message: format!("The application “{}” was added.", saved.client.name),
        to: detail_path(&saved.client.client_id),
    };
    let next = finish(&pages, &session, &me, outcome).await;
    answer(&pages, &session, &me, next).await
}

/// The answer of an action: its redirect, or the client's page showing the
/// secret it generated.
async fn answer(pages: &PagesState, session: &Session, me: &User, next: Next) -> Response {
    match next {
        Next::Go(r) => r,
        Next::Show(shown) => {
            let form = AppForm::of(&shown.client);
            let client = shown.client.clone();
            detail_page(
                pages,
                session,
                me,
                &client,
                form,
                FormErrors::default(),
                Some(shown),
            )
            .await
        }
    }
}

/// The client of a path, or the 404 page. Read from the registry, not the
/// authenticator's cache, so the page shows what is stored.
async fn load(pages: &PagesState, client_id: &str) -> Result<Client, Response> {
    match pages.app.client_auth.registry().client(client_id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(pages
            .error(
                StatusCode::NOT_FOUND,
                "No such application",
                "The application does not exist; it may have been deleted.",
            )
            .await),
        Err(e) => Err(pages.internal(&e).await),
    }
}

#[derive(Template)]
#[template(path = "admin/application.html")]
struct DetailPage<'a> {
    chrome: &'a Chrome,
    facts: Facts,
    owner: String,
    new_secret: Option<ClientSecret>,
    confidential: bool,
    f: FormView,
}

/// The page of `client`; with `shown`, the answer to the POST that generated a
/// secret, showing it and the action's message.
async fn detail_page(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    form: AppForm,
    errors: FormErrors,
    shown: Option<Shown>,
) -> Response {
    let owner = match client.owner {
        Some(id) => match pages.app.users.user_by_id(id).await {
            Ok(Some(u)) => u.email.as_str().to_owned(),
            Ok(None) => format!("user {id} (deleted)"),
            Err(e) => return pages.internal(&e).await,
        },
        None => String::new(),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut chrome = page_try!(chrome(pages, session, me, SECTION).await);
    let new_secret = shown.map(|s| {
        chrome.flash = Some(s.message);
        s.secret
    });
    page(
        pages,
        status,
        &DetailPage {
            chrome: &chrome,
            facts: Facts::of(client, &pages.app),
            owner,
            new_secret,
            confidential: client.kind == ClientKind::Confidential,
            f: FormView::new(pages, form, errors, Some(client), Audience::Staff),
        },
    )
}

async fn detail(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let client = page_try!(load(&pages, &client_id).await);
    let form = AppForm::of(&client);
    detail_page(
        &pages,
        &session,
        &me,
        &client,
        form,
        FormErrors::default(),
        None,
    )
    .await
}

/// `POST /admin/applications/{client_id}/`: the change form.
async fn change(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    ip: ClientIp,
    CheckedForm { body, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let client = page_try!(load(&pages, &client_id).await);
    let (mut form, secret) = AppForm::parse(&body);
    form.client_id.clone_from(&client.client_id);
    let valid = match app_form::validate(
        &form,
        &secret,
        Some(&client),
        &pages.app.scopes,
        &crate::server::scope_policy::privileged(&pages.app),
        Audience::Staff,
    ) {
        Ok(v) => v,
        Err(errors) => {
            return detail_page(&pages, &session, &me, &client, form, errors, None).await;
        }
    };
    if valid.hashes_secret()
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut errors = FormErrors::default();
        errors.add("client_secret", message);
        let page = detail_page(&pages, &session, &me, &client, form, errors, None).await;
        return too_many(page, wait);
    }
    let next =
        app_form::update_and_finish(&pages, &session, &me, &client, valid, "", detail_path).await;
    answer(&pages, &session, &me, next).await
}

/// `POST /admin/applications/{client_id}/rotate/`: a new generated secret, shown
/// once; the old one stops working and the client's tokens are revoked.
async fn rotate(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    ip: ClientIp,
    _form: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let client = page_try!(load(&pages, &client_id).await);
    if client.kind == ClientKind::Confidential
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut errors = FormErrors::default();
        errors.add("client_secret", message);
        let form = AppForm::of(&client);
        let page = detail_page(&pages, &session, &me, &client, form, errors, None).await;
        return too_many(page, wait);
    }
    let to = detail_path(&client.client_id);
    let next = app_form::rotate_and_finish(&pages, &session, &me, &client, "", to).await;
    answer(&pages, &session, &me, next).await
}

async fn confirm_delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let client = page_try!(load(&pages, &client_id).await);
    let chrome = page_try!(chrome(&pages, &session, &me, SECTION).await);
    let back = detail_path(&client.client_id);
    page(
        &pages,
        StatusCode::OK,
        &ConfirmPage {
            chrome: &chrome,
            kind: "application",
            name: &client.name,
            action: format!("{back}delete/"),
            back,
            consequences: Vec::new(),
            application: Some(Facts::of(&client, &pages.app)),
        },
    )
}

async fn delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    _form: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let client = page_try!(load(&pages, &client_id).await);
    app_form::delete_and_finish(&pages, &session, &me, &client, "", LIST).await
}
