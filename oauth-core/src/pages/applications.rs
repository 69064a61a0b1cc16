//! DOT's self-service application pages, for any signed-in user:
//!
//! | path | what |
//! |---|---|
//! | `GET /o/applications/` | the user's own clients |
//! | `GET`/`POST /o/applications/register/` | the registration form |
//! | `GET /o/applications/{client_id}/` | one client (a generated secret is shown once, on the page answering the POST that made it) |
//! | `GET`/`POST /o/applications/{client_id}/update/` | the change form |
//! | `POST /o/applications/{client_id}/rotate/` | a new secret, shown once; the client's tokens are revoked |
//! | `GET`/`POST /o/applications/{client_id}/delete/` | confirmation, then deletion |
//!
//! The form is the console's ([`app_form`](super::app_form)), without
//! `skip_authorization`, which only staff set. A user sees and changes only the
//! clients they own: another user's client id answers 404, exactly as an unknown
//! one, so ids cannot be probed. Anonymous visitors go to the login page and come
//! back. Changes are recorded in the admin log with the owner as the actor.
//!
//! These pages are rendered with askama directly, as the console is, not through
//! the [`Renderer`](super::Renderer) trait: they extend the built-in
//! `oauth/base.html`, and a custom renderer does not restyle them.

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use tower_sessions::Session;

use super::app_form::{
    self, AppForm, Audience, Facts, FormView, Next, Outcome, Shown, finish, path_segment, too_many,
};
use super::{CheckedForm, PagesState, to_login_back};
use crate::admin::{Chrome, FormErrors, chrome, page};
use crate::secret::ClientSecret;
use crate::server::ClientIp;
use crate::store::{Client, ClientKind, User};

const LIST: &str = "/o/applications/";
const REGISTER: &str = "/o/applications/register/";

pub(crate) fn routes() -> Router<PagesState> {
    Router::new()
        .route(LIST, get(list))
        .route("/o/applications", get(list))
        .route(REGISTER, get(register_form).post(register))
        .route("/o/applications/{client_id}/", get(detail))
        .route(
            "/o/applications/{client_id}/update/",
            get(update_form).post(update),
        )
        .route("/o/applications/{client_id}/rotate/", post(rotate))
        .route(
            "/o/applications/{client_id}/delete/",
            get(confirm_delete).post(delete),
        )
}

fn detail_path(client_id: &str) -> String {
    format!("{LIST}{}/", path_segment(client_id))
}

/// A page extending `oauth/base.html`: the frame's fields from the console's
/// [`Chrome`] (its flash message becomes `message`), then the page's own.
macro_rules! plain_page {
    ($name:ident, $path:literal, $($field:ident: $ty:ty),* $(,)?) => {
        #[derive(Template)]
        #[template(path = $path)]
        struct $name<'a> {
            site_name: &'a str,
            stylesheet: &'a str,
            signed_in: Option<&'a str>,
            csrf_token: &'a str,
            message: Option<&'a str>,
            $($field: $ty,)*
        }

        impl<'a> $name<'a> {
            fn new(chrome: &'a Chrome, $($field: $ty),*) -> Self {
                Self {
                    site_name: &chrome.site_name,
                    stylesheet: &chrome.stylesheet,
                    signed_in: chrome.signed_in.as_deref(),
                    csrf_token: &chrome.csrf_token,
                    message: chrome.flash.as_deref(),
                    $($field,)*
                }
            }
        }
    };
}

plain_page!(ListPage, "oauth/applications.html", apps: Vec<Facts>);
plain_page!(FormPage, "oauth/application_form.html", f: FormView, action: String, back: String);
plain_page!(
    DetailPage,
    "oauth/application.html",
    facts: Facts,
    new_secret: Option<ClientSecret>,
    confidential: bool,
);
plain_page!(ConfirmPage, "oauth/application_delete.html", facts: Facts);

/// The signed-in user, or the login page (coming back to this page).
async fn owner(pages: &PagesState, session: &Session, uri: &OriginalUri) -> Result<User, Response> {
    match pages.user(session).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(to_login_back(&uri.0)),
        Err(e) => Err(pages.internal(&e).await),
    }
}

/// The user's client of a path; the 404 page for an unknown id and for another
/// user's client alike.
async fn load(pages: &PagesState, me: &User, client_id: &str) -> Result<Client, Response> {
    match pages.app.client_auth.registry().client(client_id).await {
        Ok(Some(c)) if c.owner == Some(me.id) => Ok(c),
        Ok(_) => Err(pages
            .error(
                StatusCode::NOT_FOUND,
                "No such application",
                "You have no application with this id.",
            )
            .await),
        Err(e) => Err(pages.internal(&e).await),
    }
}

/// The user and their client, or the answer for anyone else.
async fn mine(
    pages: &PagesState,
    session: &Session,
    uri: &OriginalUri,
    client_id: &str,
) -> Result<(User, Client), Response> {
    let me = owner(pages, session, uri).await?;
    let client = load(pages, &me, client_id).await?;
    Ok((me, client))
}

async fn list(State(pages): State<PagesState>, session: Session, uri: OriginalUri) -> Response {
    let me = page_try!(owner(&pages, &session, &uri).await);
    let apps = match pages.app.client_auth.registry().clients_of(me.id).await {
        Ok(c) => c.iter().map(|c| Facts::of(c, &pages.app)).collect(),
        Err(e) => return pages.internal(&e).await,
    };
    let chrome = page_try!(chrome(&pages, &session, &me, "").await);
    page(&pages, StatusCode::OK, &ListPage::new(&chrome, apps))
}

/// The register or update form, with `errors` (400 when there are any).
async fn form_page(
    pages: &PagesState,
    session: &Session,
    me: &User,
    form: AppForm,
    errors: FormErrors,
    existing: Option<&Client>,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (action, back) = match existing {
        Some(c) => (
            format!("{}update/", detail_path(&c.client_id)),
            detail_path(&c.client_id),
        ),
        None => (REGISTER.to_owned(), LIST.to_owned()),
    };
    let chrome = page_try!(chrome(pages, session, me, "").await);
    let f = FormView::new(pages, form, errors, existing, Audience::Owner);
    page(pages, status, &FormPage::new(&chrome, f, action, back))
}

async fn register_form(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
) -> Response {
    let me = page_try!(owner(&pages, &session, &uri).await);
    form_page(
        &pages,
        &session,
        &me,
        AppForm::default(),
        FormErrors::default(),
        None,
    )
    .await
}

async fn register(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    ip: ClientIp,
    CheckedForm { body, .. }: CheckedForm,
) -> Response {
    let me = page_try!(owner(&pages, &session, &uri).await);
    let (form, secret) = AppForm::parse(&body);
    let valid = match app_form::validate(
        &form,
        &secret,
        None,
        &owner_scopes(&pages),
        &crate::server::scope_policy::privileged(&pages.app),
        Audience::Owner,
    ) {
        Ok(v) => v,
        Err(errors) => return form_page(&pages, &session, &me, form, errors, None).await,
    };
    if valid.hashes_secret()
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut errors = FormErrors::default();
        errors.add("client_secret", message);
        return too_many(
            form_page(&pages, &session, &me, form, errors, None).await,
            wait,
        );
    }
    let saved = match app_form::register(&pages, valid, Some(me.id)).await {
        Ok(Ok(s)) => s,
        Ok(Err(errors)) => return form_page(&pages, &session, &me, form, errors, None).await,
        Err(r) => return r,
    };
    let outcome = Outcome {
        action: "create",
        client: &saved.client,
        secret: saved.generated,
        detail: format!("by its owner: {}", saved.changes.join("; ")),
        message: format!("The application “{}” was registered.", saved.client.name),
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
            let client = shown.client.clone();
            detail_page(pages, session, me, &client, Some(shown)).await
        }
    }
}

/// The page of `client`; with `shown`, the answer to the POST that generated a
/// secret, showing it and the action's message.
async fn detail_page(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    shown: Option<Shown>,
) -> Response {
    let mut chrome = page_try!(chrome(pages, session, me, "").await);
    let new_secret = shown.map(|s| {
        chrome.flash = Some(s.message);
        s.secret
    });
    let confidential = client.kind == ClientKind::Confidential;
    page(
        pages,
        StatusCode::OK,
        &DetailPage::new(
            &chrome,
            Facts::of(client, &pages.app),
            new_secret,
            confidential,
        ),
    )
}

async fn detail(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    detail_page(&pages, &session, &me, &client, None).await
}

async fn update_form(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    let form = AppForm::of(&client);
    form_page(
        &pages,
        &session,
        &me,
        form,
        FormErrors::default(),
        Some(&client),
    )
    .await
}

async fn update(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    ip: ClientIp,
    CheckedForm { body, .. }: CheckedForm,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    let (mut form, secret) = AppForm::parse(&body);
    form.client_id.clone_from(&client.client_id);
    let valid = match app_form::validate(
        &form,
        &secret,
        Some(&client),
        &owner_scopes(&pages),
        &crate::server::scope_policy::privileged(&pages.app),
        Audience::Owner,
    ) {
        Ok(v) => v,
        Err(errors) => {
            return form_page(&pages, &session, &me, form, errors, Some(&client)).await;
        }
    };
    if valid.hashes_secret()
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut errors = FormErrors::default();
        errors.add("client_secret", message);
        let page = form_page(&pages, &session, &me, form, errors, Some(&client)).await;
        return too_many(page, wait);
    }
    let next = app_form::update_and_finish(
        &pages,
        &session,
        &me,
        &client,
        valid,
        "by its owner: ",
        detail_path,
    )
    .await;
    answer(&pages, &session, &me, next).await
}

async fn rotate(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    ip: ClientIp,
    _form: CheckedForm,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    if client.kind == ClientKind::Confidential
        && let Err((message, wait)) = app_form::secret_budget(&pages, &me, ip)
    {
        let mut chrome = page_try!(chrome(&pages, &session, &me, "").await);
        chrome.flash = Some(message);
        let facts = Facts::of(&client, &pages.app);
        let page = page(
            &pages,
            StatusCode::OK,
            &DetailPage::new(&chrome, facts, None, true),
        );
        return too_many(page, wait);
    }
    let to = detail_path(&client.client_id);
    let next =
        app_form::rotate_and_finish(&pages, &session, &me, &client, "by its owner: ", to).await;
    answer(&pages, &session, &me, next).await
}

async fn confirm_delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    let chrome = page_try!(chrome(&pages, &session, &me, "").await);
    page(
        &pages,
        StatusCode::OK,
        &ConfirmPage::new(&chrome, Facts::of(&client, &pages.app)),
    )
}

async fn delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(client_id): Path<String>,
    _form: CheckedForm,
) -> Response {
    let (me, client) = page_try!(mine(&pages, &session, &uri, &client_id).await);
    app_form::delete_and_finish(&pages, &session, &me, &client, "by its owner: ", LIST).await
}

/// The scopes an owner may give their own application: the ordinary ones less the
/// staff-only ones (a privileged scope such as `introspection` would let the client
/// read any user's tokens).
fn owner_scopes(pages: &PagesState) -> crate::scope::Scope {
    app_form::scopes_for(pages, Audience::Owner)
}
