//! `/admin/users/`: Django admin's user list (search on email, staff and active
//! filters, ordering, pages), the add form, the change page (flags, a new
//! password, the user's tokens and authorized applications) and deletion.
//!
//! Deactivating, deleting or setting a password revokes every token of the user
//! at once; their browser sessions end at their next request (the pages check the
//! account and its password on every request).
//!
//! Granting staff (the flags form, or adding a staff user) and setting the
//! password of another staff user need recent authentication: the acting user
//! proved their password within [`REAUTH_WINDOW`] (at sign-in, or by typing it
//! again in the form's "Your password" field, counted by the login-failure
//! throttle when wrong), so a session left open, or taken over, cannot make
//! itself a second staff account or lock another out.

use crate::pages::page_try;
use askama::Template;
use axum::Router;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tower_sessions::Session;

use super::{
    Change, Chrome, ConfirmPage, FormErrors, PAGE_SIZE, Pager, chrome, done, log_and_done, page,
    query, staff, when, when_unix,
};
use crate::email::Email;
use crate::pages::session;
use crate::pages::view::ScopeLine;
use crate::pages::{CheckedForm, PagesState};
use crate::secret::Password;
use crate::server::ClientIp;
use crate::server::throttle::{Key, Refused, account_key};
use crate::store::{
    Consent, NewUser, StoreError, TokenKind, TokenQuery, TokenRecord, User, UserFlags, UserOrder,
    UserQuery,
};

pub(super) fn routes() -> Router<PagesState> {
    Router::new()
        .route("/admin/users/", get(list))
        .route("/admin/users/add/", get(add_form).post(add))
        .route("/admin/users/{id}/", get(detail).post(change))
        .route(
            "/admin/users/{id}/password/",
            axum::routing::post(set_password),
        )
        .route(
            "/admin/users/{id}/delete/",
            get(confirm_delete).post(delete),
        )
        .route(
            "/admin/users/{id}/applications/revoke/",
            axum::routing::post(revoke_application),
        )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    staff: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    o: String,
    #[serde(default)]
    p: Option<u64>,
}

fn flag(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "true" => Some(true),
        "0" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// A filter link of the list's side bar.
struct FilterLink {
    label: &'static str,
    href: String,
    current: bool,
}

/// A sortable column heading.
struct Column {
    label: &'static str,
    href: String,
    /// `asc`, `desc` or empty.
    sorted: &'static str,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct ListPage<'a> {
    chrome: &'a Chrome,
    users: Vec<Row>,
    q: &'a str,
    staff: &'a str,
    active: &'a str,
    o: &'a str,
    staff_filters: Vec<FilterLink>,
    active_filters: Vec<FilterLink>,
    columns: Vec<Column>,
    pager: Pager,
}

struct Row {
    id: i64,
    email: String,
    is_staff: bool,
    is_active: bool,
    date_joined: String,
    last_login: String,
}

async fn list(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Query(lq): Query<ListQuery>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let order = UserOrder::parse(&lq.o);
    let page_no = lq.p.unwrap_or(1).max(1);
    let search = lq.q.trim();
    let found = page_try!(
        pages
            .ok(pages
                .app
                .users
                .search_users(&UserQuery {
                    search: (!search.is_empty()).then(|| search.to_owned()),
                    is_staff: flag(&lq.staff),
                    is_active: flag(&lq.active),
                    order,
                    offset: Pager::offset(page_no),
                    limit: PAGE_SIZE,
                })
                .await)
            .await
    );
    let link = |staff: &str, active: &str, o: &str, p: &str| {
        format!(
            "/admin/users/?{}",
            query(&[
                ("q", search),
                ("staff", staff),
                ("active", active),
                ("o", o),
                ("p", p)
            ])
        )
    };
    let o = order.as_str();
    let filters = |current: Option<bool>, make: &dyn Fn(&str) -> String| {
        [("All", ""), ("Yes", "1"), ("No", "0")]
            .into_iter()
            .map(|(label, v)| FilterLink {
                label,
                href: make(v),
                current: flag(v) == current,
            })
            .collect()
    };
    let staff_filters = filters(flag(&lq.staff), &|v| link(v, &lq.active, o, ""));
    let active_filters = filters(flag(&lq.active), &|v| link(&lq.staff, v, o, ""));
    let column = |label, asc: UserOrder, desc: UserOrder| {
        let (next, sorted) = if order == asc {
            (desc, "asc")
        } else if order == desc {
            (asc, "desc")
        } else {
            (asc, "")
        };
        Column {
            label,
            href: link(&lq.staff, &lq.active, next.as_str(), ""),
            sorted,
        }
    };
    let columns = vec![
        // In the table's order.
        column("Email", UserOrder::Email, UserOrder::EmailDesc),
        column("Staff", UserOrder::Staff, UserOrder::StaffDesc),
        column("Active", UserOrder::Active, UserOrder::ActiveDesc),
        column("Date joined", UserOrder::Joined, UserOrder::JoinedDesc),
        column("Last login", UserOrder::LastLogin, UserOrder::LastLoginDesc),
    ];
    let pager = Pager::new(page_no, found.total, |p| {
        link(&lq.staff, &lq.active, o, &p.to_string())
    });
    let chrome = page_try!(chrome(&pages, &session, &me, "users").await);
    let users = found
        .items
        .into_iter()
        .map(|u| Row {
            id: u.id,
            email: u.email.as_str().to_owned(),
            is_staff: u.is_staff,
            is_active: u.is_active,
            date_joined: when(u.date_joined),
            last_login: u.last_login.map(when).unwrap_or_default(),
        })
        .collect();
    page(
        &pages,
        StatusCode::OK,
        &ListPage {
            chrome: &chrome,
            users,
            q: search,
            staff: &lq.staff,
            active: &lq.active,
            o,
            staff_filters,
            active_filters,
            columns,
            pager,
        },
    )
}

#[derive(Template)]
#[template(path = "admin/user_add.html")]
struct AddPage<'a> {
    chrome: &'a Chrome,
    email: &'a str,
    is_staff: bool,
    is_active: bool,
    errors: FormErrors,
    /// Show the "Your password" field (needed to add a staff user).
    reauth: bool,
}

async fn add_form(State(pages): State<PagesState>, session: Session, uri: OriginalUri) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let reauth = !page_try!(recently_authenticated(&pages, &session).await);
    let chrome = page_try!(chrome(&pages, &session, &me, "users").await);
    page(
        &pages,
        StatusCode::OK,
        &AddPage {
            chrome: &chrome,
            email: "",
            is_staff: false,
            is_active: true,
            errors: FormErrors::default(),
            reauth,
        },
    )
}

/// How recently the acting user must have proved their password to grant staff
/// or set another staff user's password: 5 minutes.
pub(crate) const REAUTH_WINDOW: i64 = 5 * 60;

/// The field of the acting user's own password on the forms that need recent
/// authentication.
const OWN_PASSWORD: &str = "current_password";

/// Whether the acting user proved their password (signed in, or typed it again)
/// within [`REAUTH_WINDOW`].
async fn recently_authenticated(pages: &PagesState, session: &Session) -> Result<bool, Response> {
    let proved = match session::password_proved_at(session).await {
        Ok(p) => p,
        Err(e) => return Err(pages.internal(&e).await),
    };
    let now = pages.app.clock.unix();
    Ok(proved.is_some_and(|at| now.saturating_sub(at) < REAUTH_WINDOW))
}

/// Recent authentication for a sensitive action: `Ok(true)` when the acting user
/// proved their password within [`REAUTH_WINDOW`] or typed it correctly in the
/// form's "Your password" field (then recorded in the session). Otherwise a field
/// error on that field and `Ok(false)`: missing, wrong (counted against the
/// account from this source, as a failed sign-in), or the throttle's wait.
async fn confirm_identity(
    pages: &PagesState,
    session: &Session,
    me: &User,
    ip: ClientIp,
    typed: &str,
    errors: &mut FormErrors,
) -> Result<bool, Response> {
    if recently_authenticated(pages, session).await? {
        return Ok(true);
    }
    if typed.is_empty() {
        errors.add(
            OWN_PASSWORD,
            "For this change, enter your own password: you signed in more than 5 minutes ago.",
        );
        return Ok(false);
    }
    let app = &pages.app;
    let account = account_key(me.email.as_str());
    let keys = ip.account_keys(&account);
    let checked = match app.throttle.check(&keys).await {
        Ok(c) => c,
        Err(Refused::Store(e)) => return Err(pages.internal(&e).await),
        Err(Refused::Wait(wait)) => {
            crate::metrics::throttled();
            let minutes = wait.as_secs().div_ceil(60).max(1);
            errors.add(
                OWN_PASSWORD,
                format!(
                    "Too many failed attempts. Please wait {minutes} minute{} and try again.",
                    if minutes == 1 { "" } else { "s" }
                ),
            );
            return Ok(false);
        }
    };
    let ok = pages
        .ok(app
            .hasher
            .verify(&Password::new(typed), me.password_hash.as_deref())
            .await)
        .await?;
    if !ok {
        crate::metrics::auth_failure("password");
        app.throttle.fail(&keys).await;
        errors.add(OWN_PASSWORD, "Your password was not right.");
        return Ok(false);
    }
    app.throttle
        .succeeded(&checked, Key::AccountFrom(&account, ip.0))
        .await;
    if let Err(e) = session::password_proved(session, app.clock.unix()).await {
        return Err(pages.internal(&e).await);
    }
    Ok(true)
}

/// Checks a new password and its confirmation with the server's rules; the
/// messages are signup's.
fn check_new_password(
    pages: &PagesState,
    password: &str,
    password2: &str,
    email: Option<&str>,
    errors: &mut FormErrors,
) {
    if password.is_empty() {
        errors.add("password", "This field may not be blank.");
    } else {
        for problem in pages.app.policy.check(password, email) {
            errors.add("password", problem.to_string());
        }
    }
    if password2.is_empty() {
        errors.add("password2", "This field may not be blank.");
    } else if !password.is_empty() && password != password2 {
        errors.add("password2", "Password fields did not match");
    }
}

async fn add(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    ip: ClientIp,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let get = |k: &str| fields.get(k).map_or("", String::as_str);
    let raw_email = get("email").trim();
    let is_staff = fields.contains_key("is_staff");
    let is_active = fields.contains_key("is_active");
    let mut errors = FormErrors::default();
    let email = if raw_email.is_empty() {
        errors.add("email", "This field may not be blank.");
        None
    } else {
        match Email::parse(raw_email) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.add("email", e.to_string());
                None
            }
        }
    };
    if let Some(email) = &email {
        match pages.app.users.user_by_email(email).await {
            Ok(Some(_)) => errors.add("email", "This field must be unique."),
            Ok(None) => {}
            Err(e) => return pages.internal(&e).await,
        }
    }
    check_new_password(
        &pages,
        get("password"),
        get("password2"),
        email.as_ref().map(Email::as_str),
        &mut errors,
    );
    // Adding a staff user grants staff: recent authentication first (checked last,
    // so a form with other errors costs no password check).
    if is_staff && errors.is_empty() {
        let typed = get(OWN_PASSWORD);
        page_try!(confirm_identity(&pages, &session, &me, ip, typed, &mut errors).await);
    }
    let email = match email {
        Some(e) if errors.is_empty() => e,
        _ => {
            let reauth = !page_try!(recently_authenticated(&pages, &session).await);
            let chrome = page_try!(chrome(&pages, &session, &me, "users").await);
            // Typed values come back, never the passwords.
            return page(
                &pages,
                StatusCode::BAD_REQUEST,
                &AddPage {
                    chrome: &chrome,
                    email: raw_email,
                    is_staff,
                    is_active,
                    errors,
                    reauth,
                },
            );
        }
    };
    let hash = page_try!(
        pages
            .ok(pages.app.hasher.hash(&Password::new(get("password"))).await)
            .await
    );
    let mut new = NewUser::new(email, hash, pages.app.clock.now());
    new.is_staff = is_staff;
    new.is_active = is_active;
    let user = match pages.app.users.create_user(new).await {
        Ok(u) => u,
        Err(StoreError::Conflict) => {
            return done(
                &pages,
                &session,
                "A user with that email was added meanwhile.".into(),
                "/admin/users/add/",
            )
            .await;
        }
        Err(e) => return pages.internal(&e).await,
    };
    let flags = format!("staff: {is_staff}, active: {is_active}");
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "create",
            object_type: "user",
            object_id: &user.id.to_string(),
            object_repr: user.email.as_str(),
            detail: flags,
        },
        format!("The user “{}” was added.", user.email.as_str()),
        &format!("/admin/users/{}/", user.id),
    )
    .await
}

/// One token on the user's page.
pub(super) struct TokenRow {
    pub(super) hash: String,
    pub(super) kind: &'static str,
    pub(super) client_id: String,
    pub(super) scope: String,
    pub(super) issued: String,
    pub(super) expires: String,
    pub(super) revoked: String,
    pub(super) active: bool,
}

impl TokenRow {
    pub(super) fn new(t: &TokenRecord, now: i64) -> Self {
        Self {
            hash: t.hash.to_hex(),
            kind: match t.kind {
                TokenKind::Access => "access",
                TokenKind::Refresh => "refresh",
            },
            client_id: t.client_id.clone(),
            scope: t.scope.to_string(),
            issued: when_unix(t.issued_at),
            expires: when_unix(t.expires_at),
            revoked: t.revoked_at.map(when_unix).unwrap_or_default(),
            active: t.is_active(now),
        }
    }
}

struct AppRow {
    client_id: String,
    name: String,
    scopes: Vec<ScopeLine>,
    granted: String,
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct DetailPage<'a> {
    chrome: &'a Chrome,
    user: &'a User,
    date_joined: String,
    last_login: String,
    tokens: Vec<TokenRow>,
    token_total: u64,
    apps: Vec<AppRow>,
    errors: FormErrors,
    is_self: bool,
    /// Show the "Your password" field on the forms that need recent authentication.
    reauth: bool,
}

async fn load(pages: &PagesState, id: i64) -> Result<User, Response> {
    match pages.app.users.user_by_id(id).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(pages
            .error(
                StatusCode::NOT_FOUND,
                "No such user",
                "The user does not exist; it may have been deleted.",
            )
            .await),
        Err(e) => Err(pages.internal(&e).await),
    }
}

async fn detail_page(
    pages: &PagesState,
    session: &Session,
    me: &User,
    user: &User,
    errors: FormErrors,
) -> Response {
    let tokens = page_try!(
        pages
            .ok(pages
                .app
                .tokens
                .list_tokens(&TokenQuery {
                    user_id: Some(user.id),
                    limit: PAGE_SIZE,
                    ..TokenQuery::default()
                })
                .await)
            .await
    );
    let consents: Vec<Consent> = match pages.app.grants.as_ref() {
        Some(g) => page_try!(pages.ok(g.consents(user.id).await).await),
        None => vec![],
    };
    let mut apps = Vec::with_capacity(consents.len());
    for c in consents {
        let name = match pages.app.client_auth.client(&c.client_id).await {
            Ok(Some(client)) => client.name.clone(),
            _ => c.client_id.clone(),
        };
        apps.push(AppRow {
            scopes: pages.describe(&c.scope),
            granted: when_unix(c.granted_at),
            client_id: c.client_id,
            name,
        });
    }
    let reauth = !page_try!(recently_authenticated(pages, session).await);
    let chrome = page_try!(chrome(pages, session, me, "users").await);
    let now = pages.app.clock.unix();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    page(
        pages,
        status,
        &DetailPage {
            chrome: &chrome,
            user,
            date_joined: when(user.date_joined),
            last_login: user.last_login.map(when).unwrap_or_default(),
            tokens: tokens.items.iter().map(|t| TokenRow::new(t, now)).collect(),
            token_total: tokens.total,
            apps,
            errors,
            is_self: me.id == user.id,
            reauth,
        },
    )
}

async fn detail(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    detail_page(&pages, &session, &me, &user, FormErrors::default()).await
}

/// Voids every code and revokes every token of a user (codes first, see
/// `GrantStore::void_codes`); the number of tokens, or the error page.
async fn revoke_all(pages: &PagesState, user_id: i64) -> Result<u64, Response> {
    if let Err(e) = pages.app.void_codes(user_id, None).await {
        return Err(pages.internal(&e).await);
    }
    match pages.app.issuer.revoke_user_tokens(user_id, None).await {
        Ok(n) => Ok(n),
        Err(e) => Err(pages.internal(&e).await),
    }
}

/// `POST /admin/users/{id}/`: the staff and active flags.
async fn change(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
    ip: ClientIp,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    let is_staff = fields.contains_key("is_staff");
    let is_active = fields.contains_key("is_active");
    if me.id == user.id && (!is_staff || !is_active) {
        let mut errors = FormErrors::default();
        errors.add(
            "flags",
            "You cannot take your own staff status or deactivate yourself: ask another staff user.",
        );
        return detail_page(&pages, &session, &me, &user, errors).await;
    }
    if is_staff && !user.is_staff {
        let mut errors = FormErrors::default();
        let typed = fields.get(OWN_PASSWORD).map_or("", String::as_str);
        if !page_try!(confirm_identity(&pages, &session, &me, ip, typed, &mut errors).await) {
            return detail_page(&pages, &session, &me, &user, errors).await;
        }
    }
    let flags = UserFlags {
        is_staff: Some(is_staff),
        is_active: Some(is_active),
        is_superuser: None,
    };
    if let Err(e) = pages.app.users.set_user_flags(user.id, flags).await {
        return pages.internal(&e).await;
    }
    let mut changed = vec![];
    if user.is_staff != is_staff {
        changed.push(format!("staff: {} → {is_staff}", user.is_staff));
    }
    if user.is_active != is_active {
        changed.push(format!("active: {} → {is_active}", user.is_active));
    }
    let mut message = format!("The user “{}” was changed.", user.email.as_str());
    if user.is_active && !is_active {
        match revoke_all(&pages, user.id).await {
            Ok(n) => {
                changed.push(format!("tokens revoked: {n}"));
                message = format!(
                    "The user “{}” was deactivated: tokens revoked: {n}, their sessions ended.",
                    user.email.as_str()
                );
            }
            Err(r) => return r,
        }
    }
    if changed.is_empty() {
        return done(
            &pages,
            &session,
            "No fields changed.".into(),
            &format!("/admin/users/{id}/"),
        )
        .await;
    }
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "change",
            object_type: "user",
            object_id: &id.to_string(),
            object_repr: user.email.as_str(),
            detail: changed.join(", "),
        },
        message,
        &format!("/admin/users/{id}/"),
    )
    .await
}

/// `POST /admin/users/{id}/password/`: a new password, validated; every token of
/// the user is revoked and their sessions end.
async fn set_password(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
    ip: ClientIp,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    let get = |k: &str| fields.get(k).map_or("", String::as_str);
    let mut errors = FormErrors::default();
    check_new_password(
        &pages,
        get("password"),
        get("password2"),
        Some(user.email.as_str()),
        &mut errors,
    );
    // Another staff user's password: recent authentication first.
    if errors.is_empty() && user.is_staff && user.id != me.id {
        let typed = get(OWN_PASSWORD);
        page_try!(confirm_identity(&pages, &session, &me, ip, typed, &mut errors).await);
    }
    if !errors.is_empty() {
        return detail_page(&pages, &session, &me, &user, errors).await;
    }
    let hash = page_try!(
        pages
            .ok(pages.app.hasher.hash(&Password::new(get("password"))).await)
            .await
    );
    // The user's codes are voided first, then the new hash and the revocation of
    // every token, in one transaction where the store can, as for the
    // password-change API.
    page_try!(pages.ok(pages.app.void_codes(user.id, None).await).await);
    let revoked = page_try!(
        pages
            .ok(pages
                .app
                .users
                .set_password_hash_and_revoke(
                    user.id,
                    &hash,
                    pages.app.tokens.as_ref(),
                    None,
                    pages.app.clock.unix(),
                )
                .await)
            .await
    );
    // Setting one's own password ends one's own session too: sign in again.
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "change",
            object_type: "user",
            object_id: &id.to_string(),
            object_repr: user.email.as_str(),
            detail: format!("password set; tokens revoked: {revoked}"),
        },
        format!(
            "The password of “{}” was set: tokens revoked: {revoked}, their sessions ended.",
            user.email.as_str()
        ),
        &format!("/admin/users/{id}/"),
    )
    .await
}

async fn confirm_delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    let chrome = page_try!(chrome(&pages, &session, &me, "users").await);
    page(
        &pages,
        StatusCode::OK,
        &ConfirmPage {
            chrome: &chrome,
            kind: "user",
            name: user.email.as_str(),
            action: format!("/admin/users/{id}/delete/"),
            back: format!("/admin/users/{id}/"),
            consequences: vec![
                "every token of theirs is revoked and deleted".into(),
                "their browser sessions end".into(),
                "their authorized applications are forgotten".into(),
            ],
            application: None,
        },
    )
}

async fn delete(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
    _form: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    if me.id == user.id {
        return done(
            &pages,
            &session,
            "You cannot delete your own account here: ask another staff user.".into(),
            &format!("/admin/users/{id}/"),
        )
        .await;
    }
    // Revoke first: a store without cascades (the in-memory one) keeps the rows.
    if let Err(r) = revoke_all(&pages, user.id).await {
        return r;
    }
    match pages.app.users.delete_user(user.id).await {
        Ok(_) => {}
        Err(e) => return pages.internal(&e).await,
    }
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "delete",
            object_type: "user",
            object_id: &id.to_string(),
            object_repr: user.email.as_str(),
            detail: String::new(),
        },
        format!("The user “{}” was deleted.", user.email.as_str()),
        "/admin/users/",
    )
    .await
}

/// `POST /admin/users/{id}/applications/revoke/`: withdraws one authorized
/// application of the user, as they could themselves.
async fn revoke_application(
    State(pages): State<PagesState>,
    session: Session,
    uri: OriginalUri,
    Path(id): Path<i64>,
    CheckedForm { fields, .. }: CheckedForm,
) -> Response {
    let me = page_try!(staff(&pages, &session, &uri).await);
    let user = page_try!(load(&pages, id).await);
    let back = format!("/admin/users/{id}/");
    let Some(client_id) = fields.get("client_id") else {
        return done(&pages, &session, "No application named.".into(), &back).await;
    };
    // Codes before tokens, as on the user's own page (`GrantStore::void_codes`).
    page_try!(
        pages
            .ok(pages.app.void_codes(user.id, Some(client_id)).await)
            .await
    );
    let now = pages.app.clock.unix();
    let revoked = page_try!(
        pages
            .ok(pages
                .app
                .tokens
                .revoke_user_client_tokens(user.id, client_id, now)
                .await)
            .await
    );
    if let Some(g) = pages.app.grants.as_ref()
        && let Err(e) = g.forget_consent(user.id, client_id).await
    {
        return pages.internal(&e).await;
    }
    log_and_done(
        &pages,
        &session,
        &me,
        Change {
            action: "revoke",
            object_type: "user",
            object_id: &id.to_string(),
            object_repr: user.email.as_str(),
            detail: format!(
                "application {client_id}: tokens revoked: {revoked}, consent forgotten"
            ),
        },
        format!(
            "Access of {client_id} for “{}” was revoked.",
            user.email.as_str()
        ),
        &back,
    )
    .await
}
