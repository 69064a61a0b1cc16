//! `GET`/`POST /accounts/login/` and `POST /accounts/logout/`.
//!
//! Sign-in is the password grant's check behind a form: the same throttle (per
//! account and source address, per account, per source address), one KDF run whether or not the email exists,
//! inactive users refused with the same message. Success rotates the session id
//! and answers 303 to a same-site `next` (RFC 9700 §4.12).
//!
//! The form shown to a visitor who is not signed in stores nothing: its CSRF token
//! is the signed cookie's ([`session::AnonymousCsrf`]), and the pending
//! authorization request travels in `next`. The stored session is made by a
//! successful sign-in.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::session;
use super::view::LoginPage;
use super::{CheckedForm, PagesState, safe_next};
use crate::email::Email;
use crate::secret::Password;
use crate::server::ClientIp;
use crate::server::throttle::{Key, Refused, account_key};

#[derive(Debug, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

const BAD_CREDENTIALS: &str =
    "Please enter a correct email and password. Note that both fields may be case-sensitive.";

async fn render(
    pages: &PagesState,
    session: &Session,
    anonymous: &session::AnonymousCsrf,
    status: StatusCode,
    next: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let user = page_try!(pages.ok(pages.user(session).await).await);
    // Signed in: the session's token; anyone else: the cookie's (the check on the
    // POST makes the same choice, see `session::check_csrf`).
    let csrf_token = if page_try!(pages.ok(session::has_user(session).await).await) {
        session::csrf_token(session).await
    } else {
        anonymous.token()
    };
    let csrf_token = page_try!(pages.ok(csrf_token).await);
    let build = |csrf_token| LoginPage {
        csrf_token,
        next: next.to_owned(),
        username: username.to_owned(),
        error,
    };
    pages.render_with(csrf_token, user.as_ref(), status, build, |r, f, p| {
        r.login(f, p)
    })
}

pub(crate) async fn form(
    State(pages): State<PagesState>,
    session: Session,
    Extension(anonymous): Extension<session::AnonymousCsrf>,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    render(
        &pages,
        &session,
        &anonymous,
        StatusCode::OK,
        &next,
        "",
        None,
    )
    .await
}

pub(crate) async fn submit(
    State(pages): State<PagesState>,
    ip: ClientIp,
    session: Session,
    Extension(anonymous): Extension<session::AnonymousCsrf>,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let get = |k: &str| fields.get(k).map(String::as_str);
    let next = safe_next(get("next")).to_owned();
    let username = get("username").unwrap_or("").trim().to_owned();
    let password = get("password").unwrap_or("");
    if username.is_empty() || password.is_empty() {
        return render(
            &pages,
            &session,
            &anonymous,
            StatusCode::OK,
            &next,
            &username,
            Some("Enter your email and your password.".to_owned()),
        )
        .await;
    }

    let app = &pages.app;
    let account = account_key(&username);
    let keys = ip.account_keys(&account);
    let checked = match app.throttle.check(&keys).await {
        Ok(checked) => checked,
        Err(Refused::Store(e)) => return pages.internal(&e).await,
        Err(Refused::Wait(wait)) => {
            crate::metrics::throttled();
            let minutes = wait.as_secs().div_ceil(60).max(1);
            return render(
                &pages,
                &session,
                &anonymous,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                &username,
                Some(format!(
                    "Too many failed attempts. Please wait {minutes} minute{} and try again.",
                    if minutes == 1 { "" } else { "s" }
                )),
            )
            .await;
        }
    };
    let user = match Email::parse(&username) {
        Ok(email) => page_try!(pages.ok(app.users.user_by_email(&email).await).await),
        Err(_) => None,
    };
    let stored = user
        .as_ref()
        .filter(|u| u.is_active)
        .and_then(|u| u.password_hash.clone());
    // An unknown or inactive account pays for one verification too.
    let ok = page_try!(
        pages
            .ok(app
                .hasher
                .verify(&Password::new(password), stored.as_deref())
                .await)
            .await
    );
    let user = match user {
        Some(u) if ok => u,
        _ => {
            crate::metrics::auth_failure("password");
            app.throttle.fail(&keys).await;
            return render(
                &pages,
                &session,
                &anonymous,
                StatusCode::OK,
                &next,
                &username,
                Some(BAD_CREDENTIALS.to_owned()),
            )
            .await;
        }
    };
    app.throttle
        .succeeded(&checked, Key::AccountFrom(&account, ip.0))
        .await;
    // An old-format hash is replaced before the session is made, so the session's
    // credential fingerprint is the new hash's.
    let mut password_hash = user.password_hash.clone();
    if stored
        .as_deref()
        .is_some_and(|h| app.hasher.needs_rehash(h))
    {
        match app.hasher.hash(&Password::new(password)).await {
            Ok(new) if app.users.set_password_hash(user.id, &new).await.is_ok() => {
                password_hash = Some(new);
            }
            _ => tracing::warn!("could not upgrade a password hash"),
        }
    }
    let credential = session::credential(password_hash.as_deref());
    if let Err(e) = session::sign_in(&session, user.id, credential, app.clock.unix()).await {
        return pages.internal(&e).await;
    }
    if let Err(e) = app.users.record_login(user.id, app.clock.now()).await {
        tracing::warn!(error = %e, "could not record the login time");
    }
    Redirect::to(&next).into_response()
}

pub(crate) async fn logout(
    State(pages): State<PagesState>,
    session: Session,
    _checked: CheckedForm,
) -> Response {
    if let Err(e) = session::sign_out(&session).await {
        return pages.internal(&e).await;
    }
    Redirect::to("/accounts/login/").into_response()
}
