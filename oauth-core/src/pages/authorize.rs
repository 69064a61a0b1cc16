//! `GET`/`POST /o/authorize/`: the authorization endpoint (RFC 6749 §4.1.1).
//!
//! GET validates the request ([`authorization::validate`]); an unknown client or
//! redirect URI gets an error page. Other errors go back to the client only when
//! the user has signed in and the client is trusted (registered by the operators
//! or by staff); otherwise they too get the error page (RFC 9700 §4.11.2). Without a
//! session the browser goes to the login page and returns. A first-party client or
//! a remembered consent is answered at once with a code; otherwise the consent page
//! is shown. Its POST re-validates the request from the form fields, checks the
//! CSRF token, and answers 303 with a code (Allow) or `access_denied` (Cancel).

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use oxide_auth::frontends::dev::{NormalizedParameter, Url};
use tower_sessions::Session;

use super::view::ConsentPage;
use super::{CheckedForm, PagesState, found, to_login_back};
use crate::server::authorization::{self, ClientError, Refusal, ValidRequest};
use crate::store::User;

/// A query or form body as oxide-auth's parameters; a repeated key is poisoned
/// (it then reads as absent, and the request is refused as malformed).
fn params(raw: &[u8]) -> NormalizedParameter {
    form_urlencoded::parse(raw)
        .map(|(k, v)| {
            (
                std::borrow::Cow::Owned(k.into_owned()),
                std::borrow::Cow::Owned(v.into_owned()),
            )
        })
        .collect()
}

/// Answers a refused request. An error for the client ([`Refusal::Redirect`]) is
/// redirected (RFC 6749 §4.1.2.1) only to a signed-in `user` and a trusted client
/// ([`ClientError::trusted`]); before sign-in, or for a client an ordinary user
/// registered, it is shown on the error page, so that `/o/authorize/` is never a
/// bounce to a URI anyone could have registered (RFC 9700 §4.11.2).
async fn refusal(
    pages: &PagesState,
    refusal: Refusal,
    user: Option<&User>,
    after_post: bool,
) -> Response {
    match refusal {
        Refusal::Page(message) => {
            pages
                .error(StatusCode::BAD_REQUEST, "Authorization failed", message)
                .await
        }
        Refusal::Redirect(e) => {
            let trusted = match user {
                None => false,
                Some(u) => match e.owner {
                    Some(owner) if owner != u.id => {
                        let record =
                            page_try!(pages.ok(pages.app.users.user_by_id(owner).await).await);
                        e.trusted(u, record.as_ref())
                    }
                    _ => e.trusted(u, None),
                },
            };
            if trusted {
                to_client(&e, after_post)
            } else {
                pages
                    .error(
                        StatusCode::BAD_REQUEST,
                        "Authorization failed",
                        format!("{}: {}", e.error, e.description),
                    )
                    .await
            }
        }
        Refusal::Internal => pages.internal(&"authorization request").await,
    }
}

/// The error redirect itself: 302 after a GET, 303 after the consent form's POST.
fn to_client(e: &ClientError, after_post: bool) -> Response {
    if after_post {
        Redirect::to(e.url.as_str()).into_response()
    } else {
        found(e.url.as_str())
    }
}

/// The redirect URI without its query, as the consent page names it.
fn shown_target(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(mut u) => {
            u.set_query(None);
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

pub(crate) async fn show(
    State(pages): State<PagesState>,
    session: Session,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let query = uri.query().unwrap_or("");
    let params = params(query.as_bytes());
    let validated = authorization::validate(&pages.app, &params).await;
    let user = match pages.user(&session).await {
        Ok(u) => u,
        Err(e) => return pages.internal(&e).await,
    };
    let request = match validated {
        Ok(r) => r,
        Err(r) => return refusal(&pages, r, user.as_ref(), false).await,
    };
    let Some(user) = user else {
        return to_login_back(&uri);
    };
    if let Err(r) = authorization::check_staff(&pages.app, &request, &user) {
        return refusal(&pages, r, Some(&user), false).await;
    }
    let Some(grants) = pages.app.grants.as_ref() else {
        return pages.internal(&"no grant store").await;
    };
    let remembered = page_try!(
        pages
            .ok(grants.consent(user.id, &request.client.client_id).await)
            .await
    );
    if !authorization::needs_consent(&request, remembered.as_ref()) {
        return match authorization::grant(&pages.app, &request, &user).await {
            Ok(url) => found(url.as_str()),
            Err(r) => refusal(&pages, r, Some(&user), false).await,
        };
    }
    consent_page(&pages, &session, &user, &request).await
}

async fn consent_page(
    pages: &PagesState,
    session: &Session,
    user: &User,
    request: &ValidRequest,
) -> Response {
    let mut hidden = vec![
        ("response_type".to_owned(), "code".to_owned()),
        ("client_id".to_owned(), request.client.client_id.clone()),
        ("scope".to_owned(), request.scope.to_string()),
        ("code_challenge".to_owned(), request.code_challenge.clone()),
        ("code_challenge_method".to_owned(), "S256".to_owned()),
    ];
    if request.redirect_uri_sent {
        hidden.push(("redirect_uri".to_owned(), request.redirect_uri.clone()));
    }
    if let Some(s) = &request.state {
        hidden.push(("state".to_owned(), s.clone()));
    }
    let build = |csrf_token| ConsentPage {
        csrf_token,
        client_name: request.client.name.clone(),
        client_id: request.client.client_id.clone(),
        scopes: pages.describe(&request.scope),
        redirect_to: shown_target(&request.redirect_uri),
        hidden,
    };
    pages
        .render(session, Some(user), StatusCode::OK, build, |r, f, p| {
            r.consent(f, p)
        })
        .await
}

pub(crate) async fn decide(
    State(pages): State<PagesState>,
    session: Session,
    CheckedForm { fields, body }: CheckedForm,
) -> Response {
    let user = match pages.user(&session).await {
        Ok(Some(u)) => u,
        Ok(None) => return pages.forbidden_form().await,
        Err(e) => return pages.internal(&e).await,
    };
    // The hidden fields are the user's to edit: validate them as a new request.
    let params = params(&body);
    let request = match authorization::validate(&pages.app, &params).await {
        Ok(r) => r,
        Err(r) => return refusal(&pages, r, Some(&user), true).await,
    };
    if !fields.contains_key("allow") {
        // The user saw the client on our consent page and chose: redirected for
        // every client (RFC 6749 §4.1.2.1).
        return match authorization::deny(&pages.app, &request) {
            Refusal::Redirect(e) => to_client(&e, true),
            other => refusal(&pages, other, Some(&user), true).await,
        };
    }
    match authorization::grant(&pages.app, &request, &user).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(r) => refusal(&pages, r, Some(&user), true).await,
    }
}
