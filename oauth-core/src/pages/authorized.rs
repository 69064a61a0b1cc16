//! `GET /o/authorized_tokens/` (DOT's page): the applications a user authorized,
//! each with a button that withdraws it — its tokens stop working at once, a code
//! issued to it but not yet exchanged can no longer be, and its remembered consent
//! is forgotten, so the next authorization asks again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use tower_sessions::Session;

use super::view::{AuthorizedApp, AuthorizedPage};
use super::{CheckedForm, PagesState, to_login};

const PATH: &str = "/o/authorized_tokens/";

/// The session key of a one-time message for the next page (a flash message, so
/// no link can make the page say something the server did not).
const FLASH: &str = "flash";

pub(crate) async fn list(State(pages): State<PagesState>, session: Session) -> Response {
    let user = match pages.user(&session).await {
        Ok(Some(u)) => u,
        Ok(None) => return to_login(PATH),
        Err(e) => return pages.internal(&e).await,
    };
    let Some(grants) = pages.app.grants.as_ref() else {
        return pages.internal(&"no grant store").await;
    };
    let consents = page_try!(pages.ok(grants.consents(user.id).await).await);
    let mut apps = Vec::with_capacity(consents.len());
    for c in consents {
        let name = match pages.app.client_auth.client(&c.client_id).await {
            Ok(Some(client)) => client.name.clone(),
            Ok(None) => continue,
            Err(_) => c.client_id.clone(),
        };
        apps.push(AuthorizedApp {
            granted_at: chrono::DateTime::from_timestamp(c.granted_at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            scopes: pages.describe(&c.scope),
            client_id: c.client_id,
            name,
        });
    }
    let message = page_try!(pages.ok(session.remove::<String>(FLASH).await).await);
    let build = |csrf_token| AuthorizedPage {
        csrf_token,
        apps,
        message,
    };
    pages
        .render(&session, Some(&user), StatusCode::OK, build, |r, f, p| {
            r.authorized(f, p)
        })
        .await
}

pub(crate) async fn revoke(
    State(pages): State<PagesState>,
    session: Session,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let app = &pages.app;
    let user = match pages.user(&session).await {
        Ok(Some(u)) => u,
        Ok(None) => return to_login(PATH),
        Err(e) => return pages.internal(&e).await,
    };
    let Some(client_id) = fields.get("client_id") else {
        return Redirect::to(PATH).into_response();
    };
    let Some(grants) = app.grants.as_ref() else {
        return pages.internal(&"no grant store").await;
    };
    // Codes first, then tokens (see `GrantStore::void_codes`: an exchange racing
    // with this revokes its own tokens), then the consent: if forgetting the
    // consent failed after, the user can retry and nothing they asked to stop
    // keeps working meanwhile.
    if let Err(e) = app.void_codes(user.id, Some(client_id)).await {
        return pages.internal(&e).await;
    }
    if let Err(e) = app
        .tokens
        .revoke_user_client_tokens(user.id, client_id, app.clock.unix())
        .await
    {
        return pages.internal(&e).await;
    }
    if let Err(e) = grants.forget_consent(user.id, client_id).await {
        return pages.internal(&e).await;
    }
    let name = match app.client_auth.client(client_id).await {
        Ok(Some(c)) => c.name.clone(),
        _ => client_id.to_owned(),
    };
    if let Err(e) = session
        .insert(FLASH, format!("Access of {name} was revoked."))
        .await
    {
        return pages.internal(&e).await;
    }
    Redirect::to(PATH).into_response()
}
