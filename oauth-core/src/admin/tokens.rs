//! `/admin/tokens/`: access and refresh tokens, newest first, filtered by user or
//! by client, and their revocation — one token with the rest of its grant
//! (RFC 7009 §2.1), every token of a user, or every token of a client.
//!
//! Only digests of tokens are stored, so no page can show a token; a token is
//! named by the first characters of its digest.

use crate::pages::page_try;
use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tower_sessions::Session;

use super::users::TokenRow;
use super::{
    Change, Chrome, FormErrors, PAGE_SIZE, Pager, chrome, done, log_and_done, page, query, staff,
};
use crate::email::Email;
use crate::pages::{CheckedForm, PagesState};
use crate::store::{TokenQuery, UserId};
use crate::token::TokenHash;

pub(super) fn routes() -> Router<PagesState> {
    Router::new()
        .route("/admin/tokens/", get(list))
        .route("/admin/tokens/revoke/", post(revoke))
}

/// Hex digits of a digest shown to name a token.
const SHORT: usize = 12;

/// The start of a digest's hex form, naming a token on pages and in the log.
fn short(hex: &str) -> &str {
    hex.get(..SHORT).unwrap_or(hex)
}

/// The list's query: `user` (an id) or `email` (resolved to an id), `client`, `p`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    client: String,
    #[serde(default)]
    p: Option<u64>,
}

/// One token of the list, with its user.
struct Row {
    token: TokenRow,
    short: String,
    user_id: Option<UserId>,
    /// The user's email; `None` when the account is gone.
    user_email: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct ListPage<'a> {
    chrome: &'a Chrome,
    tokens: Vec<Row>,
    /// The email in the user filter's field.
    email: String,
    /// The user the list is filtered on.
    user: Option<(UserId, String)>,
    client: &'a str,
    errors: FormErrors,
    /// This list's own address, where each revocation comes back to.
    here: String,
    pager: Pager,
}

/// The user of the filter: `email` when given, else `user`. `Ok(None)` when the
/// list is not filtered by user; field errors when the filter names nobody.
async fn filter_user(
    pages: &PagesState,
    lq: &ListQuery,
    errors: &mut FormErrors,
) -> Result<Option<(UserId, String)>, Response> {
    let typed = lq.email.trim();
    let found = if !typed.is_empty() {
        let email = match Email::parse(typed) {
            Ok(e) => e,
            Err(e) => {
                errors.add("email", e.to_string());
                return Ok(None);
            }
        };
        pages.app.users.user_by_email(&email).await
    } else if !lq.user.is_empty() {
        let Ok(id) = lq.user.trim().parse::<UserId>() else {
            errors.add("email", "No such user.");
            return Ok(None);
        };
        pages.app.users.user_by_id(id).await
    } else {
        return Ok(None);
    };
    match found {
        Ok(Some(u)) => Ok(Some((u.id, u.email.as_str().to_owned()))),
        Ok(None) => {
            errors.add("email", "No user has this email.");
            Ok(None)
        }
        Err(e) => Err(pages.internal(&e).await),
    }
}

async fn list(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Query(lq): Query<ListQuery>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let mut errors = FormErrors::default();
    let user = page_try!(filter_user(&pages, &lq, &mut errors).await);
    let client = lq.client.trim();
    let page_no = lq.p.unwrap_or(1).max(1);
    let user_param = user.as_ref().map(|(id, _)| id.to_string());
    let user_param = user_param.as_deref().unwrap_or("");
    let link = |p: &str| {
        format!(
            "/admin/tokens/?{}",
            query(&[("user", user_param), ("client", client), ("p", p)])
        )
    };
    let (records, total) = if errors.is_empty() {
        match pages
            .app
            .tokens
            .list_tokens(&TokenQuery {
                user_id: user.as_ref().map(|(id, _)| *id),
                client_id: (!client.is_empty()).then(|| client.to_owned()),
                offset: Pager::offset(page_no),
                limit: PAGE_SIZE,
            })
            .await
        {
            Ok(found) => (found.items, found.total),
            Err(e) => return pages.internal(&e).await,
        }
    } else {
        // A filter that names nobody shows nothing rather than everything.
        (vec![], 0)
    };
    let mut emails: HashMap<UserId, Option<String>> = HashMap::new();
    let now = pages.app.clock.unix();
    let mut tokens = Vec::with_capacity(records.len());
    for t in &records {
        let user_email = match t.user_id {
            Some(id) => match emails.get(&id) {
                Some(e) => e.clone(),
                None => {
                    let e = match pages.app.users.user_by_id(id).await {
                        Ok(u) => u.map(|u| u.email.as_str().to_owned()),
                        Err(e) => return pages.internal(&e).await,
                    };
                    emails.insert(id, e.clone());
                    e
                }
            },
            None => None,
        };
        let token = TokenRow::new(t, now);
        tokens.push(Row {
            short: short(&token.hash).to_owned(),
            token,
            user_id: t.user_id,
            user_email,
        });
    }
    let pager = Pager::new(page_no, total, |p| link(&p.to_string()));
    let here = link(&if page_no > 1 {
        page_no.to_string()
    } else {
        String::new()
    });
    let chrome = page_try!(chrome(&pages, &session, &me, "tokens").await);
    let email = match &user {
        Some((_, e)) => e.clone(),
        None => lq.email.trim().to_owned(),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page(
        &pages,
        status,
        &ListPage {
            chrome: &chrome,
            tokens,
            email,
            user,
            client,
            errors,
            here,
            pager,
        },
    )
}

/// Where to go after a revocation: `next` when it is a console path, else the
/// token list. Only visible ASCII passes, so it is always a valid `Location`.
fn admin_next(next: Option<&String>) -> &str {
    const LIST: &str = "/admin/tokens/";
    match next {
        Some(n) if n.starts_with("/admin/") && n.chars().all(|c| c.is_ascii_graphic()) => n,
        _ => LIST,
    }
}

/// A digest from its hex form.
fn parse_hash(hex: &str) -> Option<TokenHash> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(TokenHash::from_bytes(bytes))
}

/// `POST /admin/tokens/revoke/`: one token with its grant (`hash`), every token
/// of a user (`user`) or of a client (`client`); then back to `next`.
async fn revoke(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let next = admin_next(fields.get("next"));
    let field = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let now = pages.app.clock.unix();
    // (object type, object id, what it is called, log detail, message)
    let (object_type, object_id, repr, detail, message) = if let Some(hex) = field("hash") {
        let record = match parse_hash(hex) {
            Some(hash) => page_try!(pages.ok(pages.app.tokens.token(&hash).await).await),
            None => None,
        };
        let Some(record) = record else {
            return done(&pages, &session, "No such token.".into(), next).await;
        };
        let revoked = page_try!(
            pages
                .ok(pages.app.tokens.revoke_family(&record.family, now).await)
                .await
        );
        let hex = record.hash.to_hex();
        let owner = match record.user_id {
            Some(id) => match pages.app.users.user_by_id(id).await {
                Ok(Some(u)) => format!(" of {}", u.email.as_str()),
                Ok(None) => format!(" of deleted user #{id}"),
                Err(e) => return pages.internal(&e).await,
            },
            None => String::new(),
        };
        let kind = TokenRow::new(&record, now).kind;
        let repr = format!(
            "{kind} token {}…{owner} for {}",
            short(&hex),
            record.client_id
        );
        let message = format!(
            "The {repr} was revoked with the rest of its grant: tokens revoked: {revoked}."
        );
        (
            "token",
            hex,
            repr,
            format!("its grant revoked; tokens revoked: {revoked}"),
            message,
        )
    } else if let Some(id) = field("user") {
        let user = match id.parse::<UserId>() {
            Ok(id) => page_try!(pages.ok(pages.app.users.user_by_id(id).await).await),
            Err(_) => None,
        };
        let Some(user) = user else {
            return done(&pages, &session, "No such user.".into(), next).await;
        };
        // Their unexchanged codes too, first (`GrantStore::void_codes`).
        page_try!(pages.ok(pages.app.void_codes(user.id, None).await).await);
        let revoked = page_try!(
            pages
                .ok(pages.app.issuer.revoke_user_tokens(user.id, None).await)
                .await
        );
        let email = user.email.as_str().to_owned();
        let message = format!("Every token of “{email}” was revoked (tokens revoked: {revoked}).");
        (
            "user",
            user.id.to_string(),
            email,
            format!("all tokens revoked: {revoked}"),
            message,
        )
    } else if let Some(client_id) = field("client") {
        let name = match pages.app.client_auth.client(client_id).await {
            Ok(Some(c)) => c.name.clone(),
            _ => client_id.to_owned(),
        };
        // Its unexchanged codes too, first (`GrantStore::void_client_codes`): a
        // code issued a moment before would otherwise still buy working tokens.
        page_try!(pages.ok(pages.app.void_client_codes(client_id).await).await);
        let revoked = page_try!(
            pages
                .ok(pages.app.tokens.revoke_client_tokens(client_id, now).await)
                .await
        );
        let message = format!(
            "Every token of the client {client_id} was revoked (tokens revoked: {revoked})."
        );
        (
            "application",
            client_id.to_owned(),
            name,
            format!("all tokens revoked: {revoked}"),
            message,
        )
    } else {
        return done(
            &pages,
            &session,
            "Nothing to revoke: name a token, a user or a client.".into(),
            next,
        )
        .await;
    };
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "revoke",
            object_type,
            object_id: &object_id,
            object_repr: &repr,
            detail,
        },
        message,
        next,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::{admin_next, parse_hash};
    use crate::token::TokenHash;

    #[test]
    fn next_stays_in_the_console() {
        for good in ["/admin/users/3/", "/admin/tokens/?user=3&p=2"] {
            assert_eq!(admin_next(Some(&good.to_owned())), good);
        }
        for evil in [
            "//evil.example/admin/",
            "https://evil.example/admin/",
            "/o/authorize/",
            "/admin/\r\nSet-Cookie: x=1",
            "/admin/ x",
            "/admin/é",
        ] {
            assert_eq!(
                admin_next(Some(&evil.to_owned())),
                "/admin/tokens/",
                "{evil:?}"
            );
        }
        assert_eq!(admin_next(None), "/admin/tokens/");
    }

    #[test]
    fn hashes_round_trip_from_hex() {
        let h = TokenHash::of("abc");
        assert_eq!(parse_hash(&h.to_hex()), Some(h));
        assert_eq!(parse_hash(&h.to_hex().to_uppercase()), Some(h));
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &"é".repeat(32),
            &"+f".repeat(32),
        ] {
            assert_eq!(parse_hash(bad), None, "{bad}");
        }
    }
}
