//! The admin console at `/admin/`: who may see each page and send each form, the
//! CSRF check, the users section (list, add, change, password, delete), the
//! tokens section and its revocations, and the log — each change checked where it
//! matters: introspection, the token endpoint and the user's browser session.
//! Applications are tested with their own pages. Each scenario runs on SQLite
//! and, with `TEST_DATABASE_URL`, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use chrono::Duration;
use common::browser::{Browser, Page, pairs};
use common::{Harness, PASSWORD};
use oauth_core::{
    AdminLog, ClientRegistry as _, Clock as _, Consent, Email, GrantStore as _, NewLogEntry,
    NewUser, Password, TokenHash, TokenQuery, TokenStore, UserQuery, UserStore,
};

scenarios!(
    every_page_and_form_is_for_staff_only,
    the_staff_only_page_offers_a_way_on,
    every_form_needs_its_csrf_token,
    users_list_searches_filters_orders_and_pages,
    add_form_validates_like_signup,
    added_user_can_sign_in,
    values_are_escaped_everywhere,
    deactivating_takes_effect_at_once,
    setting_a_password_revokes_tokens,
    deleting_asks_first_then_removes_user_and_tokens,
    staff_cannot_deactivate_or_delete_themselves,
    tokens_page_lists_and_filters_without_tokens,
    revoking_from_the_tokens_page_takes_effect_at_once,
    revocation_returns_only_inside_the_console,
    every_change_is_logged_with_its_actor,
    revoking_an_application_from_a_users_page_takes_effect_at_once,
    staff_grants_and_staff_passwords_need_recent_authentication,
);

const STAFF: &str = "boss@example.com";
const NEW_PASSWORD: &str = "lantern-quartz-meadow-57";

/// A browser signed in as the staff user [`STAFF`], and that user's id.
async fn admin(h: &Harness) -> (Browser<'_>, i64) {
    let id = h.staff_user(STAFF).await;
    let mut b = Browser::new(h);
    b.sign_in(STAFF).await;
    (b, id)
}

/// The session's CSRF token, from a page the browser may see.
async fn csrf(b: &mut Browser<'_>) -> String {
    for path in ["/admin/users/", "/o/authorized_tokens/", "/accounts/login/"] {
        let p = b.get(path).await;
        if p.status == StatusCode::OK {
            return p.field("csrfmiddlewaretoken");
        }
    }
    panic!("no page with a CSRF token");
}

/// A form POST from a console page, with the session's CSRF token.
async fn submit(b: &mut Browser<'_>, path: &str, form: &[(&str, &str)]) -> Page {
    let token = csrf(b).await;
    let mut fields = pairs(&[("csrfmiddlewaretoken", &token)]);
    fields.extend(pairs(form));
    b.post(path, &fields).await
}

/// A password-grant access token (and its refresh token) for `email`.
async fn tokens_of(h: &Harness, email: &str, password: &str) -> (String, String) {
    let r = h.login(email, password).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    (r.str("access_token"), r.str("refresh_token"))
}

fn hash(token: &str) -> String {
    TokenHash::of(token).to_hex()
}

/// The Location of a redirect to the login page, coming back to `path`.
fn login_for(path: &str) -> String {
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    format!("/accounts/login/?next={next}")
}

#[track_caller]
fn assert_safe_headers(p: &Page, what: &str) {
    let header = |n: &str| p.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        header("cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(header("x-frame-options").as_deref(), Some("DENY"), "{what}");
}

/// The flash message the next page shows.
async fn flash(b: &mut Browser<'_>, to: &str) -> String {
    let p = b.get(to).await;
    let start = p
        .body
        .find(r#"<p class="message" role="status">"#)
        .unwrap_or_else(|| panic!("no message on {to}: {}", p.body))
        + 33;
    let end = start + p.body[start..].find("</p>").unwrap();
    p.body[start..end].to_owned()
}

/// The emails of the users page's rows, in order.
fn listed(p: &Page) -> Vec<String> {
    let mut out = vec![];
    let mut rest = p.body.as_str();
    while let Some(i) = rest.find(r#"<td><a href="/admin/users/"#) {
        rest = &rest[i..];
        let start = rest.find("\">").unwrap() + 2;
        let end = rest.find("</a>").unwrap();
        out.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    out
}

/// How many users the list says match.
fn total(p: &Page) -> String {
    let start = p.body.find(r#"<p class="muted">"#).unwrap() + 17;
    let end = start + p.body[start..].find(' ').unwrap();
    p.body[start..end].to_owned()
}

/// What askama makes of `s` in text and attributes.
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

async fn log_entries(h: &Harness) -> u64 {
    h.store.entries(0, 1).await.unwrap().total
}

async fn every_page_and_form_is_for_staff_only(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    h.user("carl@example.com").await;
    let (access, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let access_hash = hash(&access);
    let pages = [
        "/admin/users/".to_owned(),
        "/admin/users/?q=ann&staff=0&active=1&o=-date_joined&p=1".to_owned(),
        "/admin/users/add/".to_owned(),
        format!("/admin/users/{ann}/"),
        format!("/admin/users/{ann}/delete/"),
        "/admin/tokens/".to_owned(),
        format!("/admin/tokens/?user={ann}&client=rs-id"),
        "/admin/log/".to_owned(),
    ];
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/users/add/".into(),
            vec![
                ("email", "new@example.com"),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
                ("is_active", "on"),
                ("is_staff", "on"),
            ],
        ),
        (format!("/admin/users/{ann}/"), vec![("is_staff", "on")]),
        (
            format!("/admin/users/{ann}/password/"),
            vec![("password", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
        ),
        (
            format!("/admin/users/{ann}/applications/revoke/"),
            vec![("client_id", "rs-id")],
        ),
        ("/admin/tokens/revoke/".into(), vec![("hash", &access_hash)]),
        ("/admin/tokens/revoke/".into(), vec![("client", "rs-id")]),
        // Last: the staff run deletes ann.
        (format!("/admin/users/{ann}/delete/"), vec![]),
    ];
    let unchanged = async || {
        let u = h.store.user_by_id(ann).await.unwrap().unwrap();
        assert!(u.is_active && !u.is_staff, "{u:?}");
        assert!(h.active(&access).await);
        let new = Email::parse("new@example.com").unwrap();
        assert!(h.store.user_by_email(&new).await.unwrap().is_none());
        assert_eq!(log_entries(h).await, 0);
    };

    // Anonymous: to the login page, and back here afterwards.
    let mut anon = Browser::new(h);
    for path in &pages {
        let p = anon.get(path).await;
        assert_eq!(p.status, StatusCode::FOUND, "{path}");
        assert_eq!(p.location(), login_for(path));
        assert_safe_headers(&p, path);
    }
    for (path, form) in &forms {
        // With a valid CSRF token of the anonymous session: the form is fine,
        // the visitor is not. A redirect after a POST is a 303 (RFC 9700 §4.12).
        // It comes back to the page of the form, not to a POST-only action.
        let p = submit(&mut anon, path, form).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}: {}", p.body);
        let page = path
            .strip_suffix("applications/revoke/")
            .or_else(|| path.strip_suffix("password/"))
            .or_else(|| path.strip_suffix("revoke/"))
            .unwrap_or(path);
        assert_eq!(p.location(), login_for(page), "{path}");
        assert_safe_headers(&p, path);
    }
    unchanged().await;

    // Signed in, not staff: the 403 page.
    let mut carl = Browser::new(h);
    carl.sign_in("carl@example.com").await;
    for path in &pages {
        let p = carl.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        assert!(p.body.contains("Staff only"), "{}", p.body);
        assert_safe_headers(&p, path);
    }
    for (path, form) in &forms {
        let p = submit(&mut carl, path, form).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
        assert!(p.body.contains("Staff only"), "{}", p.body);
        assert_safe_headers(&p, path);
    }
    unchanged().await;

    // Staff: every page.
    let (mut boss, _) = admin(h).await;
    for path in &pages {
        let p = boss.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "{path}: {}", p.body);
        assert!(p.body.contains(r#"<nav class="admin-nav""#), "{path}");
        assert_safe_headers(&p, path);
    }
    let p = boss.get("/admin/").await;
    assert_eq!(p.location(), "/admin/users/");
    // …and every form (the effects are checked scenario by scenario).
    for (path, form) in &forms {
        let p = submit(&mut boss, path, form).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}: {}", p.body);
        assert_safe_headers(&p, path);
    }
    assert!(h.store.user_by_id(ann).await.unwrap().is_none());
    assert!(!h.active(&access).await);
}

/// The 403 page is no dead end: it says who is signed in, signs them out with the
/// session's CSRF token, and links to the pages every user may see.
async fn the_staff_only_page_offers_a_way_on(h: &Harness) {
    h.user("carl@example.com").await;
    let mut carl = Browser::new(h);
    carl.sign_in("carl@example.com").await;
    let token = csrf(&mut carl).await;
    let p = carl.get("/admin/users/").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let main = &p.body[p.body.find("<main>").unwrap()..];
    assert!(main.contains("Staff only"), "{main}");
    assert!(
        main.contains("You are signed in as <strong class=\"client\">carl@example.com</strong>"),
        "{main}"
    );
    assert!(
        main.contains(r#"<form method="post" action="/accounts/logout/""#),
        "{main}"
    );
    let form = &main[main.find("action=\"/accounts/logout/\"").unwrap()..];
    assert_eq!(p.field_after(form), token, "the sign-out form's CSRF token");
    for link in ["/o/applications/", "/o/authorized_tokens/"] {
        assert!(
            main.contains(&format!("<a href=\"{link}\">")),
            "{link}: {main}"
        );
        let there = carl.get(link).await;
        assert_eq!(there.status, StatusCode::OK, "{link}: {}", there.body);
    }
    // The form as the page has it signs carl out.
    let out = carl
        .post(
            "/accounts/logout/",
            &pairs(&[("csrfmiddlewaretoken", &token)]),
        )
        .await;
    assert!(out.status.is_redirection(), "{}", out.body);
    assert_eq!(out.location(), "/accounts/login/");
    let after = carl.get("/admin/users/").await;
    assert_eq!(after.status, StatusCode::FOUND, "{}", after.body);
    assert!(
        after.location().starts_with("/accounts/login/"),
        "{}",
        after.location()
    );
}

async fn every_form_needs_its_csrf_token(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let (access, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let (access_hash, ann_id) = (hash(&access), ann.to_string());
    let (mut boss, _) = admin(h).await;
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/admin/users/add/".into(),
            vec![
                ("email", "new@example.com"),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
            ],
        ),
        (format!("/admin/users/{ann}/"), vec![("is_staff", "on")]),
        (
            format!("/admin/users/{ann}/password/"),
            vec![("password", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
        ),
        (format!("/admin/users/{ann}/delete/"), vec![]),
        (
            format!("/admin/users/{ann}/applications/revoke/"),
            vec![("client_id", "rs-id")],
        ),
        ("/admin/tokens/revoke/".into(), vec![("hash", &access_hash)]),
        ("/admin/tokens/revoke/".into(), vec![("user", &ann_id)]),
        ("/admin/tokens/revoke/".into(), vec![("client", "rs-id")]),
    ];
    let mut other = Browser::new(h);
    other.sign_in(STAFF).await;
    let foreign = csrf(&mut other).await;
    for (path, form) in &forms {
        let without = pairs(form);
        let p = boss.post(path, &without).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
        assert!(p.body.contains("Form expired"), "{}", p.body);
        assert_safe_headers(&p, path);
        // Another session's token is no better.
        let mut with_foreign = pairs(&[("csrfmiddlewaretoken", &foreign)]);
        with_foreign.extend(pairs(form));
        let p = boss.post(path, &with_foreign).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
        // Nor is the right token sent from another site.
        let mut good = pairs(&[("csrfmiddlewaretoken", &csrf(&mut boss).await)]);
        good.extend(pairs(form));
        let p = boss
            .post_with(path, &good, &[("origin", "https://evil.example")])
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Nothing changed.
    let u = h.store.user_by_id(ann).await.unwrap().unwrap();
    assert!(u.is_active && !u.is_staff);
    assert!(h.active(&access).await);
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
    let new = Email::parse("new@example.com").unwrap();
    assert!(h.store.user_by_email(&new).await.unwrap().is_none());
    assert_eq!(log_entries(h).await, 0);
}

async fn users_list_searches_filters_orders_and_pages(h: &Harness) {
    let (mut b, _) = admin(h).await;
    let hash = h.hasher.hash(&Password::new(PASSWORD)).await.unwrap();
    let day_ago = chrono::Utc::now() - Duration::days(1);
    for i in 0..30 {
        let mut u = NewUser::new(
            Email::parse(&format!("u{i:02}@example.com")).unwrap(),
            hash.clone(),
            day_ago + Duration::minutes(i),
        );
        u.is_staff = i % 5 == 0;
        u.is_active = i % 3 != 0;
        h.store.create_user(u).await.unwrap();
    }

    // 31 users by email: 25, then 6.
    let p = b.get("/admin/users/").await;
    assert_eq!(total(&p), "31");
    let first = listed(&p);
    assert_eq!(first.len(), 25);
    assert_eq!(first[0], STAFF);
    assert_eq!(first[1], "u00@example.com");
    assert!(p.body.contains("Page 1 of 2"));
    assert!(
        p.body
            .contains(r#"<a href="/admin/users/?o=email&#38;p=2" rel="next">"#),
        "{}",
        p.body
    );
    let p = b.get("/admin/users/?o=email&p=2").await;
    assert_eq!(
        listed(&p),
        ["u24", "u25", "u26", "u27", "u28", "u29"].map(|u| format!("{u}@example.com"))
    );
    assert!(p.body.contains("Page 2 of 2"));
    assert!(p.body.contains(r#"rel="prev""#));
    assert!(!p.body.contains(r#"rel="next""#));

    // Search on part of the email, case-insensitively, with the filters.
    let p = b.get("/admin/users/?q=U1").await;
    assert_eq!(total(&p), "10");
    assert!(listed(&p).iter().all(|e| e.starts_with("u1")));
    let p = b.get("/admin/users/?q=u1&staff=1").await;
    assert_eq!(listed(&p), ["u10@example.com", "u15@example.com"]);
    // The filter links keep the search.
    assert!(
        p.body
            .contains("/admin/users/?q=u1&#38;staff=1&#38;active=0"),
        "{}",
        p.body
    );
    let p = b.get("/admin/users/?staff=1").await;
    assert_eq!(total(&p), "7");
    let p = b.get("/admin/users/?active=0").await;
    assert_eq!(total(&p), "10");
    assert!(listed(&p).iter().all(|e| {
        let i: u32 = e[1..3].parse().unwrap();
        i.is_multiple_of(3)
    }));
    let p = b.get("/admin/users/?staff=0&active=1").await;
    assert_eq!(total(&p), "16");
    let p = b.get("/admin/users/?q=nobody").await;
    assert!(p.body.contains("No user matches."));

    // Newest first; oldest first; email Z to A.
    let p = b.get("/admin/users/?o=-date_joined").await;
    let rows = listed(&p);
    assert_eq!(&rows[..3], [STAFF, "u29@example.com", "u28@example.com"]);
    let p = b.get("/admin/users/?o=date_joined").await;
    assert_eq!(&listed(&p)[..2], ["u00@example.com", "u01@example.com"]);
    let p = b.get("/admin/users/?o=-email&q=u2").await;
    assert_eq!(listed(&p)[0], "u29@example.com");
    // An unknown order is the default one.
    let p = b.get("/admin/users/?o=password_hash").await;
    assert_eq!(listed(&p)[0], STAFF);

    // Each column header sorts by it: the first click ascending, the next one
    // descending; the marker says which, on that column only.
    let sorted = |p: &Page| -> Vec<(String, String)> {
        p.body
            .split("<th scope=\"col\">")
            .skip(1)
            .filter_map(|th| {
                let th = &th[..th.find("</th>")?];
                let marker = th.find("<span class=\"sort\">(")?;
                let label_end = th.find("</a>")?;
                let label = &th[th[..label_end].rfind('>')? + 1..label_end];
                let dir = &th[marker + 20..th[marker..].find(')')? + marker];
                Some((label.to_owned(), dir.to_owned()))
            })
            .collect()
    };
    for (column, asc, desc) in [
        ("Email", "email", "-email"),
        ("Staff", "is_staff", "-is_staff"),
        ("Active", "is_active", "-is_active"),
        ("Date joined", "date_joined", "-date_joined"),
        ("Last login", "last_login", "-last_login"),
    ] {
        let p = b.get(&format!("/admin/users/?o={asc}")).await;
        assert_eq!(sorted(&p), [(column.to_owned(), "asc".to_owned())], "{asc}");
        assert!(
            p.body.contains(&format!("/admin/users/?o={desc}\"")),
            "{asc}"
        );
        let p = b.get(&format!("/admin/users/?o={desc}")).await;
        assert_eq!(
            sorted(&p),
            [(column.to_owned(), "desc".to_owned())],
            "{desc}"
        );
        assert!(
            p.body.contains(&format!("/admin/users/?o={asc}\"")),
            "{desc}"
        );
    }
    // Staff first, by email; non-staff first.
    let p = b.get("/admin/users/?o=-is_staff").await;
    assert_eq!(
        &listed(&p)[..3],
        [STAFF, "u00@example.com", "u05@example.com"]
    );
    let p = b.get("/admin/users/?o=is_staff").await;
    assert_eq!(&listed(&p)[..2], ["u01@example.com", "u02@example.com"]);
    // Inactive first.
    let p = b.get("/admin/users/?o=is_active").await;
    assert_eq!(&listed(&p)[..2], ["u00@example.com", "u03@example.com"]);
    // Only the console's user has signed in: first when the most recent come
    // first, last the other way (never signed in first, by id).
    let p = b.get("/admin/users/?o=-last_login").await;
    assert_eq!(listed(&p)[0], STAFF);
    let p = b.get("/admin/users/?o=last_login&p=2").await;
    assert_eq!(listed(&p).last().map(String::as_str), Some(STAFF));
    assert_eq!(
        &listed(&b.get("/admin/users/?o=last_login").await)[..2],
        ["u00@example.com", "u01@example.com"]
    );
}

async fn add_form_validates_like_signup(h: &Harness) {
    h.user("ann@example.com").await;
    let (mut b, _) = admin(h).await;
    let before = h
        .store
        .search_users(&UserQuery {
            limit: 100,
            ..UserQuery::default()
        })
        .await
        .unwrap()
        .total;
    let form = b.get("/admin/users/add/").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"name="password2""#));

    let good = "unique-Passphrase-9171";
    for (email, password, password2, field, message) in [
        ("", good, good, "email", "This field may not be blank."),
        ("   ", good, good, "email", "This field may not be blank."),
        (
            "not-an-email",
            good,
            good,
            "email",
            "Enter a valid email address.",
        ),
        (
            "ann@example.com",
            good,
            good,
            "email",
            "This field must be unique.",
        ),
        (
            "Ann@Example.COM",
            good,
            good,
            "email",
            "This field must be unique.",
        ),
        (
            "new@example.com",
            "Zq1x",
            "Zq1x",
            "password",
            "This password is too short. It must contain at least 8 characters.",
        ),
        (
            "new@example.com",
            "qwertyuiop",
            "qwertyuiop",
            "password",
            "This password is too common.",
        ),
        (
            "new@example.com",
            "84920175639",
            "84920175639",
            "password",
            "This password is entirely numeric.",
        ),
        (
            "newperson@example.com",
            "newperson@example",
            "newperson@example",
            "password",
            "The password is too similar to the email address.",
        ),
        (
            "new@example.com",
            "",
            "",
            "password",
            "This field may not be blank.",
        ),
        (
            "new@example.com",
            good,
            "",
            "password2",
            "This field may not be blank.",
        ),
        (
            "new@example.com",
            good,
            "unique-Passphrase-9172",
            "password2",
            "Password fields did not match",
        ),
    ] {
        let p = submit(
            &mut b,
            "/admin/users/add/",
            &[
                ("email", email),
                ("password", password),
                ("password2", password2),
                ("is_staff", "on"),
            ],
        )
        .await;
        let case = format!("{email:?} {password:?} {password2:?}");
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{case}");
        assert!(
            p.body.contains(&format!(
                r#"<p class="field-error" id="err_{field}">{}</p>"#,
                escaped(message)
            )),
            "{case}: {}",
            p.body
        );
        assert!(p.body.contains(&format!(r#"id="id_{field}""#)));
        // What was typed comes back, never a password.
        assert!(
            p.body
                .contains(&format!(r#"value="{}""#, escaped(email.trim()))),
            "{case}"
        );
        for secret in [password, password2] {
            if !secret.is_empty() && secret != "newperson@example" {
                assert!(!p.body.contains(secret), "{case} echoes a password");
            }
        }
        assert!(
            !p.body
                .contains(r#"type="password" name="password" id="id_password" value"#)
        );
        assert!(
            p.body.contains(r#"name="is_staff" value="on" checked"#),
            "{case}"
        );
        assert!(
            !p.body.contains(r#"name="is_active" value="on" checked"#),
            "{case}"
        );
    }
    let after = h
        .store
        .search_users(&UserQuery {
            limit: 100,
            ..UserQuery::default()
        })
        .await
        .unwrap()
        .total;
    assert_eq!(after, before);
    assert_eq!(log_entries(h).await, 0);
}

async fn added_user_can_sign_in(h: &Harness) {
    let (mut b, _) = admin(h).await;
    let p = submit(
        &mut b,
        "/admin/users/add/",
        &[
            ("email", " Zoe@Example.COM "),
            ("password", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
            ("is_active", "on"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let zoe = h
        .store
        .user_by_email(&Email::parse("zoe@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(zoe.email.as_str(), "Zoe@example.com");
    assert!(zoe.is_active && !zoe.is_staff);
    assert_eq!(p.location(), format!("/admin/users/{}/", zoe.id));
    assert!(flash(&mut b, p.location()).await.contains("was added"));
    // The message shows once.
    assert!(
        !b.get(p.location())
            .await
            .body
            .contains(r#"class="message""#)
    );
    assert_eq!(
        h.login("Zoe@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

/// A user signed up through the public API as `"<script>alert(1)</script>"@example.com`
/// (a quoted local part, which Django's email validator accepts too) is shown
/// as text on every console page that displays their email.
async fn values_are_escaped_everywhere(h: &Harness) {
    let evil = r#""<script>alert(1)</script>"@example.com"#;
    let r = h
        .json(
            axum::http::Method::POST,
            "/users/signup/",
            None,
            serde_json::json!({"email": evil, "password": PASSWORD, "password2": PASSWORD}),
        )
        .await;
    r.expect(StatusCode::CREATED, serde_json::json!({ "email": evil }));
    let id = h
        .store
        .user_by_email(&Email::parse(evil).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    let (access, _) = tokens_of(h, evil, PASSWORD).await;
    // An application of theirs: its pages show the owner's email.
    let mut owned = h.store.client("other").await.unwrap().unwrap();
    owned.owner = Some(id);
    h.store.update_client(owned).await.unwrap();
    let (mut b, _) = admin(h).await;
    let shown = escaped(evil);
    let check = |p: &Page, what: &str| {
        assert_eq!(p.status, StatusCode::OK, "{what}");
        assert!(!p.body.contains("<script>"), "{what}: {}", p.body);
        assert!(p.body.contains(&shown), "{what}: {}", p.body);
    };
    check(&b.get("/admin/users/").await, "list");
    check(&b.get("/admin/tokens/").await, "all tokens");
    check(&b.get("/admin/applications/").await, "applications");
    check(
        &b.get("/admin/applications/other/").await,
        "application's owner",
    );
    check(&b.get("/admin/users/?q=%3Cscript").await, "search");
    check(&b.get(&format!("/admin/users/{id}/")).await, "change page");
    check(
        &b.get(&format!("/admin/users/{id}/delete/")).await,
        "confirmation",
    );
    check(&b.get(&format!("/admin/tokens/?user={id}")).await, "tokens");
    let evil_q: String = form_urlencoded::byte_serialize(evil.as_bytes()).collect();
    check(
        &b.get(&format!("/admin/tokens/?email={evil_q}")).await,
        "tokens by email",
    );
    // A change: the flash message and the log show it as text too.
    let p = submit(
        &mut b,
        &format!("/admin/users/{id}/"),
        &[("is_active", "on"), ("is_staff", "on")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    check(&b.get(p.location()).await, "flash");
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("hash", &hash(&access)), ("next", "/admin/tokens/")],
    )
    .await;
    check(&b.get(p.location()).await, "revocation flash");
    check(&b.get("/admin/log/").await, "log");
    // Made staff above: signed in, their own email in the console's frame.
    let mut them = Browser::new(h);
    them.sign_in(evil).await;
    check(&them.get("/admin/users/").await, "signed in as");
    check(&them.get("/admin/log/").await, "signed in as, log");
    // A search typed with markup comes back escaped in the field.
    let p = b.get("/admin/users/?q=%22%3E%3Cb%3Ex").await;
    assert!(
        p.body.contains(r#"value="&#34;&#62;&#60;b&#62;x""#),
        "{}",
        p.body
    );
}

async fn deactivating_takes_effect_at_once(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let (access, refresh) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let mut ann_browser = Browser::new(h);
    ann_browser.sign_in("ann@example.com").await;
    assert_eq!(
        ann_browser.get("/o/authorized_tokens/").await.status,
        StatusCode::OK
    );
    assert!(h.active(&access).await);

    let (mut b, _) = admin(h).await;
    // The change form without `is_active`.
    let p = submit(&mut b, &format!("/admin/users/{ann}/"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), format!("/admin/users/{ann}/"));
    assert!(flash(&mut b, p.location()).await.contains("deactivated"));

    assert!(!h.store.user_by_id(ann).await.unwrap().unwrap().is_active);
    assert_eq!(
        h.introspect(&access).await,
        serde_json::json!({"active": false})
    );
    let r = h.login("ann@example.com", PASSWORD).await;
    assert_eq!(
        (r.status, r.str("error").as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let r = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(r.str("error"), "invalid_grant");
    // Their browser is signed out at its next request.
    let p = ann_browser.get("/o/authorized_tokens/").await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert!(
        p.location().starts_with("/accounts/login/"),
        "{}",
        p.location()
    );

    // Active again: they may sign in anew; the old tokens stay revoked.
    let p = submit(
        &mut b,
        &format!("/admin/users/{ann}/"),
        &[("is_active", "on")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!h.active(&access).await);
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn setting_a_password_revokes_tokens(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let (access, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let mut ann_browser = Browser::new(h);
    ann_browser.sign_in("ann@example.com").await;
    let (mut b, _) = admin(h).await;
    let path = format!("/admin/users/{ann}/password/");

    // Refused passwords change nothing and are not echoed.
    for (password, password2, message) in [
        ("qwertyuiop", "qwertyuiop", "This password is too common."),
        (
            NEW_PASSWORD,
            "lantern-quartz-meadow-58",
            "Password fields did not match",
        ),
        ("", "", "This field may not be blank."),
    ] {
        let p = submit(
            &mut b,
            &path,
            &[("password", password), ("password2", password2)],
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{password}");
        assert!(p.body.contains(message), "{}", p.body);
        if !password.is_empty() {
            assert!(!p.body.contains(password));
        }
        assert!(h.active(&access).await);
    }

    let p = submit(
        &mut b,
        &path,
        &[("password", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(flash(&mut b, p.location()).await.contains("tokens revoked"));
    assert!(!h.active(&access).await);
    let r = h.login("ann@example.com", PASSWORD).await;
    assert_eq!(r.str("error"), "invalid_grant");
    assert_eq!(
        h.login("ann@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    // The browser session made with the old password ends.
    let p = ann_browser.get("/o/authorized_tokens/").await;
    assert_eq!(p.status, StatusCode::FOUND);
}

async fn deleting_asks_first_then_removes_user_and_tokens(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let (access, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    tokens_of(h, "ann@example.com", PASSWORD).await;
    let mut ann_browser = Browser::new(h);
    ann_browser.sign_in("ann@example.com").await;
    assert_eq!(
        ann_browser.get("/o/authorized_tokens/").await.status,
        StatusCode::OK
    );
    let (mut b, _) = admin(h).await;
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert!(
        page.body
            .contains(&format!(r#"href="/admin/users/{ann}/delete/""#))
    );

    let confirm = b.get(&format!("/admin/users/{ann}/delete/")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("Delete the user “ann@example.com”?"),
        "{}",
        confirm.body
    );
    assert!(
        confirm
            .body
            .contains(&format!(r#"action="/admin/users/{ann}/delete/""#))
    );
    // Seeing the confirmation deletes nothing.
    assert!(h.store.user_by_id(ann).await.unwrap().is_some());
    assert!(h.active(&access).await);

    let p = submit(&mut b, &format!("/admin/users/{ann}/delete/"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/admin/users/");
    assert!(flash(&mut b, "/admin/users/").await.contains("was deleted"));
    assert!(h.store.user_by_id(ann).await.unwrap().is_none());
    assert!(!h.active(&access).await);
    let left = h
        .store
        .list_tokens(&TokenQuery {
            user_id: Some(ann),
            limit: 10,
            ..TokenQuery::default()
        })
        .await
        .unwrap();
    assert!(
        left.items.iter().all(|t| t.revoked_at.is_some()),
        "{left:?}"
    );
    assert_eq!(
        h.login("ann@example.com", PASSWORD).await.str("error"),
        "invalid_grant"
    );
    // Its pages are gone.
    assert_eq!(
        b.get(&format!("/admin/users/{ann}/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        submit(&mut b, &format!("/admin/users/{ann}/delete/"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Their browser is anonymous at its next request, as after deactivation…
    let p = ann_browser.get("/o/authorized_tokens/").await;
    assert_eq!(p.status, StatusCode::FOUND);
    assert_eq!(p.location(), login_for("/o/authorized_tokens/"));
    // …and stays so when an account with the same email is made again (on
    // SQLite it may even get the same id).
    h.user("ann@example.com").await;
    for path in ["/o/authorized_tokens/", "/o/applications/"] {
        let p = ann_browser.get(path).await;
        assert_eq!(p.status, StatusCode::FOUND, "{path}");
        assert_eq!(p.location(), login_for(path), "{path}");
    }
}

async fn staff_cannot_deactivate_or_delete_themselves(h: &Harness) {
    let (mut b, me) = admin(h).await;
    let (access, _) = tokens_of(h, STAFF, PASSWORD).await;
    let page = b.get(&format!("/admin/users/{me}/")).await;
    assert!(!page.body.contains(&format!("/admin/users/{me}/delete/")));

    for form in [vec![("is_staff", "on")], vec![("is_active", "on")], vec![]] {
        let p = submit(&mut b, &format!("/admin/users/{me}/"), &form).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(
            p.body
                .contains("You cannot take your own staff status or deactivate yourself")
        );
    }
    let p = submit(&mut b, &format!("/admin/users/{me}/delete/"), &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(
        flash(&mut b, p.location())
            .await
            .contains("You cannot delete your own account")
    );

    let u = h.store.user_by_id(me).await.unwrap().unwrap();
    assert!(u.is_active && u.is_staff);
    assert!(h.active(&access).await);
    assert_eq!(b.get("/admin/users/").await.status, StatusCode::OK);
    assert_eq!(log_entries(h).await, 0);
}

async fn tokens_page_lists_and_filters_without_tokens(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let bob = h.user("bob@example.com").await;
    let (ann_access, ann_refresh) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let (bob_access, _) = tokens_of(h, "bob@example.com", PASSWORD).await;
    let r = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let svc_access = r.str("access_token");
    let (mut b, _) = admin(h).await;

    let p = b.get("/admin/tokens/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("5 tokens"), "{}", p.body);
    for t in [&ann_access, &ann_refresh, &bob_access, &svc_access] {
        assert!(!p.body.contains(t.as_str()), "a token is shown");
        assert!(p.body.contains(&hash(t)[..12]));
    }
    assert!(p.body.contains(&format!(
        r#"<a href="/admin/users/{ann}/">ann@example.com</a>"#
    )));
    assert!(p.body.contains("none (client credentials)"));
    assert!(p.body.contains("<td>refresh</td>") && p.body.contains("<td>access</td>"));
    // Newest first: svc's token was issued last (ids break the tie of a second).
    let at = |t: &str| p.body.find(&hash(t)[..12]).unwrap();
    assert!(at(&svc_access) < at(&bob_access) && at(&bob_access) < at(&ann_access));

    // By user id, by email (which resolves to the id), by client.
    for path in [
        format!("/admin/tokens/?user={ann}"),
        "/admin/tokens/?email=ANN%40example.com".into(),
    ] {
        let p = b.get(&path).await;
        assert!(p.body.contains("2 tokens of"), "{path}: {}", p.body);
        assert!(p.body.contains(&hash(&ann_access)[..12]));
        assert!(!p.body.contains(&hash(&bob_access)[..12]));
        assert!(p.body.contains(r#"value="ann@example.com""#));
        assert!(p.body.contains(&format!(r#"name="user" value="{ann}""#)));
    }
    let p = b.get("/admin/tokens/?client=svc").await;
    assert!(p.body.contains("1 token issued to svc"), "{}", p.body);
    assert!(p.body.contains(&hash(&svc_access)[..12]));
    assert!(p.body.contains(r#"name="client" value="svc""#));
    let p = b
        .get(&format!("/admin/tokens/?user={bob}&client=svc"))
        .await;
    assert!(p.body.contains("0 tokens"));
    // A user filter that names nobody shows nothing, and says why.
    for (path, message) in [
        (
            "/admin/tokens/?email=nobody%40example.com",
            "No user has this email.",
        ),
        (
            "/admin/tokens/?email=nonsense",
            "Enter a valid email address.",
        ),
        ("/admin/tokens/?user=999999", "No user has this email."),
        ("/admin/tokens/?user=x", "No such user."),
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(p.body.contains(message), "{path}: {}", p.body);
        assert!(p.body.contains("No token matches."));
    }

    // Pages of 25, newest first.
    for _ in 0..12 {
        tokens_of(h, "bob@example.com", PASSWORD).await;
    }
    let p = b.get(&format!("/admin/tokens/?user={bob}")).await;
    assert!(p.body.contains("26 tokens"));
    assert!(p.body.contains("Page 1 of 2"));
    assert!(
        p.body.contains(&format!(
            r#"<a href="/admin/tokens/?user={bob}&#38;p=2" rel="next">"#
        )),
        "{}",
        p.body
    );
    let p = b.get(&format!("/admin/tokens/?user={bob}&p=2")).await;
    assert!(p.body.contains("Page 2 of 2"));
    assert!(p.body.contains(&hash(&bob_access)[..12]));
    assert_eq!(p.body.matches(r#"name="hash""#).count(), 1);
}

async fn revoking_from_the_tokens_page_takes_effect_at_once(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let bob = h.user("bob@example.com").await;
    let (ann1, ann1_refresh) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let (ann2, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let (bob1, _) = tokens_of(h, "bob@example.com", PASSWORD).await;
    let (bob2, _) = tokens_of(h, "bob@example.com", PASSWORD).await;
    let r = h
        .post_form(
            "/o/token/",
            Some(("svc", "svc-secret")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    let svc_token = r.str("access_token");
    let (mut b, _) = admin(h).await;

    // One token: the rest of its grant goes too (RFC 7009 §2.1), nothing else.
    let list = b.get("/admin/tokens/").await;
    assert!(
        list.body
            .contains(&format!(r#"name="hash" value="{}""#, hash(&ann1)))
    );
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("hash", &hash(&ann1)), ("next", "/admin/tokens/")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/admin/tokens/");
    let message = flash(&mut b, "/admin/tokens/").await;
    assert!(
        message.contains(&hash(&ann1)[..12]) && message.contains("tokens revoked: 2"),
        "{message}"
    );
    assert!(!h.active(&ann1).await);
    let r = h
        .post_form(
            "/o/token/",
            Some(("rs-id", "rs-secret")),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &ann1_refresh),
            ],
        )
        .await;
    assert_eq!(r.str("error"), "invalid_grant");
    assert!(h.active(&ann2).await && h.active(&bob1).await);
    // The revoked token shows as such, without a button.
    let list = b.get(&format!("/admin/tokens/?user={ann}")).await;
    assert!(list.body.contains("revoked 20"), "{}", list.body);
    assert!(
        !list
            .body
            .contains(&format!(r#"name="hash" value="{}""#, hash(&ann1)))
    );
    // By its refresh token's hash as well; an unknown hash changes nothing.
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("hash", &"ab".repeat(32))],
    )
    .await;
    assert_eq!(p.location(), "/admin/tokens/");
    assert!(
        flash(&mut b, "/admin/tokens/")
            .await
            .contains("No such token.")
    );
    assert!(h.active(&ann2).await);

    // Every token of a user.
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[
            ("user", &bob.to_string()),
            ("next", &format!("/admin/users/{bob}/")),
        ],
    )
    .await;
    assert_eq!(p.location(), format!("/admin/users/{bob}/"));
    assert!(
        flash(&mut b, p.location())
            .await
            .contains("tokens revoked: 4")
    );
    assert!(!h.active(&bob1).await && !h.active(&bob2).await);
    assert!(h.active(&ann2).await);
    // Bob himself may still sign in: revoking tokens is not deactivating.
    assert_eq!(
        h.login("bob@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    // Every token of a client.
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("client", "svc"), ("next", "/admin/tokens/?client=svc")],
    )
    .await;
    assert_eq!(p.location(), "/admin/tokens/?client=svc");
    assert!(
        flash(&mut b, p.location())
            .await
            .contains("tokens revoked: 1")
    );
    assert!(!h.active(&svc_token).await);
    assert!(h.active(&ann2).await);
    let p = submit(&mut b, "/admin/tokens/revoke/", &[("client", "rs-id")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!h.active(&ann2).await);

    // The buttons of the user's page post here too.
    let (ann3, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert!(
        page.body
            .contains(&format!(r#"name="hash" value="{}""#, hash(&ann3)))
    );
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[
            ("hash", &hash(&ann3)),
            ("next", &format!("/admin/users/{ann}/")),
        ],
    )
    .await;
    assert_eq!(p.location(), format!("/admin/users/{ann}/"));
    assert!(!h.active(&ann3).await);

    // Nothing named: nothing done.
    let p = submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("next", "/admin/tokens/")],
    )
    .await;
    assert!(
        flash(&mut b, p.location())
            .await
            .contains("Nothing to revoke")
    );
}

async fn revocation_returns_only_inside_the_console(h: &Harness) {
    let (mut b, me) = admin(h).await;
    let mine = me.to_string();
    for (next, to) in [
        ("/admin/users/", "/admin/users/"),
        ("/admin/tokens/?user=1&p=2", "/admin/tokens/?user=1&p=2"),
        ("https://evil.example/admin/", "/admin/tokens/"),
        ("//evil.example/admin/", "/admin/tokens/"),
        ("/o/authorized_tokens/", "/admin/tokens/"),
        ("/admin/\r\nSet-Cookie: a=b", "/admin/tokens/"),
        ("", "/admin/tokens/"),
    ] {
        let p = submit(
            &mut b,
            "/admin/tokens/revoke/",
            &[("user", &mine), ("next", next)],
        )
        .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(p.location(), to, "{next:?}");
    }
}

async fn every_change_is_logged_with_its_actor(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let (access, _) = tokens_of(h, "ann@example.com", PASSWORD).await;
    tokens_of(h, "ann@example.com", PASSWORD).await;
    let (mut b, me) = admin(h).await;
    let deputy = h.staff_user("deputy@example.com").await;
    let mut d = Browser::new(h);
    d.sign_in("deputy@example.com").await;

    let p = b.get("/admin/log/").await;
    assert!(
        p.body
            .contains("Nothing was changed through the console yet.")
    );

    // Changes by the deputy, then by the boss, who then deletes the deputy.
    let p = submit(
        &mut d,
        "/admin/users/add/",
        &[
            ("email", "zoe@example.com"),
            ("password", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
            ("is_active", "on"),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    submit(
        &mut d,
        &format!("/admin/users/{ann}/"),
        &[("is_active", "on"), ("is_staff", "on")],
    )
    .await;
    submit(&mut b, "/admin/tokens/revoke/", &[("hash", &hash(&access))]).await;
    submit(
        &mut b,
        "/admin/tokens/revoke/",
        &[("user", &ann.to_string())],
    )
    .await;
    submit(&mut b, "/admin/tokens/revoke/", &[("client", "svc")]).await;
    submit(
        &mut b,
        &format!("/admin/users/{ann}/password/"),
        &[("password", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
    )
    .await;
    submit(
        &mut b,
        &format!("/admin/users/{ann}/"),
        &[("is_active", "on")],
    )
    .await;
    submit(&mut b, &format!("/admin/users/{deputy}/delete/"), &[]).await;
    // Refused forms and non-changes are not logged.
    submit(
        &mut b,
        "/admin/users/add/",
        &[("email", "x"), ("password", "1"), ("password2", "2")],
    )
    .await;
    submit(
        &mut b,
        &format!("/admin/users/{ann}/"),
        &[("is_active", "on")],
    )
    .await;

    let entries = h.store.entries(0, 50).await.unwrap();
    assert_eq!(entries.total, 8, "{entries:?}");
    let actions: Vec<_> = entries
        .items
        .iter()
        .map(|e| {
            (
                e.entry.action.as_str(),
                e.entry.object_type.as_str(),
                e.entry.actor_id,
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("delete", "user", me),
            ("change", "user", me),
            ("change", "user", me),
            ("revoke", "application", me),
            ("revoke", "user", me),
            ("revoke", "token", me),
            ("change", "user", deputy),
            ("create", "user", deputy),
        ]
    );
    assert_eq!(entries.items[5].entry.object_id, hash(&access));
    assert!(
        entries
            .items
            .iter()
            .all(|e| !e.entry.detail.contains(NEW_PASSWORD))
    );

    let p = b.get("/admin/log/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.body.contains("8 changes"));
    assert!(!p.body.contains(NEW_PASSWORD));
    let rows: Vec<&str> = p.body.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 8);
    // Newest first, each with its actor's email (linked) or the deleted actor.
    assert!(
        rows[0].contains(&format!(r#"<a href="/admin/users/{me}/">{STAFF}</a>"#)),
        "{}",
        rows[0]
    );
    assert!(rows[0].contains("<td>delete</td>") && rows[0].contains("deputy@example.com"));
    // A deleted user is no longer linked.
    assert!(
        !rows[0].contains(&format!("/admin/users/{deputy}/")),
        "{}",
        rows[0]
    );
    assert!(rows[1].contains(&format!(
        r#"<a href="/admin/users/{ann}/">ann@example.com</a>"#
    )));
    assert!(rows[1].contains("staff: true → false"), "{}", rows[1]);
    assert!(rows[2].contains("password set"), "{}", rows[2]);
    assert!(rows[3].contains("<td>application</td>") && rows[3].contains("svc"));
    assert!(rows[4].contains("all tokens revoked: 2"), "{}", rows[4]);
    assert!(rows[5].contains(&hash(&access)[..12]) && rows[5].contains("ann@example.com"));
    for row in &rows[6..] {
        assert!(row.contains(&format!("deleted user #{deputy}")), "{row}");
    }
    assert!(rows[7].contains("<td>create</td>") && rows[7].contains("zoe@example.com"));

    // Pages of 25.
    for i in 0..20 {
        h.store
            .record(NewLogEntry {
                at: chrono::Utc::now(),
                actor_id: me,
                action: "change".into(),
                object_type: "user".into(),
                object_id: ann.to_string(),
                object_repr: format!("entry {i}"),
                detail: String::new(),
            })
            .await
            .unwrap();
    }
    let p = b.get("/admin/log/").await;
    assert!(p.body.contains("Page 1 of 2"));
    assert!(p.body.contains("entry 19") && p.body.contains("entry 0<"));
    let p = b.get("/admin/log/?p=2").await;
    assert!(p.body.contains("Page 2 of 2"));
    assert_eq!(p.body.split("<tr>").count() - 2, 3);
    assert!(p.body.contains("zoe@example.com"));
}

/// Revoking an authorized application from a user's page in the console ends
/// that user's tokens for the client at once (introspection inactive, refresh
/// refused) and forgets the remembered consent; the user's tokens for other
/// clients, and other users' tokens for the client, live on.
async fn revoking_an_application_from_a_users_page_takes_effect_at_once(h: &Harness) {
    let ann = h.user("ann@example.com").await;
    let bob = h.user("bob@example.com").await;
    let (access, refresh) = tokens_of(h, "ann@example.com", PASSWORD).await;
    let (bobs, _) = tokens_of(h, "bob@example.com", PASSWORD).await;
    let password_grant = |client: (&'static str, &'static str)| async move {
        let r = h
            .post_form(
                "/o/token/",
                Some(client),
                &[
                    ("grant_type", "password"),
                    ("username", "ann@example.com"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.str("access_token")
    };
    let elsewhere = password_grant(("other", "other-secret")).await;
    for (user, client) in [(ann, "rs-id"), (ann, "other"), (bob, "rs-id")] {
        h.store
            .save_consent(&Consent {
                user_id: user,
                client_id: client.into(),
                scope: "read".parse().unwrap(),
                granted_at: h.clock.unix(),
            })
            .await
            .unwrap();
    }
    let (mut b, _) = admin(h).await;
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert_eq!(page.status, StatusCode::OK);
    let form = format!(r#"action="/admin/users/{ann}/applications/revoke/""#);
    assert_eq!(page.body.matches(&form).count(), 2, "{}", page.body);
    assert!(page.body.contains(r#"name="client_id" value="rs-id""#));
    assert!(h.active(&access).await);

    let p = submit(
        &mut b,
        &format!("/admin/users/{ann}/applications/revoke/"),
        &[("client_id", "rs-id")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), format!("/admin/users/{ann}/"));
    assert!(flash(&mut b, p.location()).await.contains("was revoked"));

    assert_eq!(
        h.introspect(&access).await,
        serde_json::json!({"active": false})
    );
    let r = h.refresh(&refresh).await;
    assert_eq!(
        (r.status, r.str("error").as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    assert!(h.store.consent(ann, "rs-id").await.unwrap().is_none());
    // Only that application of that user.
    assert!(h.active(&elsewhere).await);
    assert!(h.active(&bobs).await);
    assert!(h.store.consent(ann, "other").await.unwrap().is_some());
    assert!(h.store.consent(bob, "rs-id").await.unwrap().is_some());
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert_eq!(page.body.matches(&form).count(), 1, "{}", page.body);
    assert!(!page.body.contains(r#"name="client_id" value="rs-id""#));
    let log = h.store.entries(0, 1).await.unwrap();
    assert_eq!(log.items[0].entry.action, "revoke");
    assert!(log.items[0].entry.detail.contains("application rs-id"));
}

/// The stored password hash of `id`.
async fn password_hash_of(h: &Harness, id: i64) -> Option<String> {
    h.store.user_by_id(id).await.unwrap().unwrap().password_hash
}

/// Issue 19: setting another staff user's password and granting staff (on the
/// flags form and by adding a staff user) need the acting user's password
/// proved within 5 minutes: at sign-in, or typed again in "Your password".
async fn staff_grants_and_staff_passwords_need_recent_authentication(h: &Harness) {
    let (mut b, _) = admin(h).await;
    let ann = h.staff_user("ann@example.com").await;
    let bob = h.user("bob@example.com").await;
    let carol = h.user("carol@example.com").await;
    let set_ann = format!("/admin/users/{ann}/password/");
    let new_pw = [("password", NEW_PASSWORD), ("password2", NEW_PASSWORD)];

    // Signed in just now: no re-entry asked, none needed.
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert!(!page.body.contains("current_password"), "{}", page.body);
    let before = password_hash_of(h, ann).await;
    let p = submit(&mut b, &set_ann, &new_pw).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_ne!(password_hash_of(h, ann).await, before);
    let p = submit(
        &mut b,
        &format!("/admin/users/{bob}/"),
        &[("is_active", "on"), ("is_staff", "on")],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(h.store.user_by_id(bob).await.unwrap().unwrap().is_staff);

    // Signed in more than 5 minutes ago.
    h.clock.advance(301);
    let page = b.get(&format!("/admin/users/{ann}/")).await;
    assert!(
        page.body.contains("name=\"current_password\""),
        "{}",
        page.body
    );
    let before = password_hash_of(h, ann).await;
    for (typed, message) in [
        ("", "enter your own password"),
        ("not-my-password-at-all", "Your password was not right."),
    ] {
        let mut form = new_pw.to_vec();
        form.push(("current_password", typed));
        let p = submit(&mut b, &set_ann, &form).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{typed:?}: {}", p.body);
        assert!(p.body.contains(message), "{typed:?}: {}", p.body);
        assert!(!p.body.contains(NEW_PASSWORD));
        assert_eq!(password_hash_of(h, ann).await, before, "{typed:?}");
    }
    // The same for granting staff, on the flags form and the add form.
    let grant = format!("/admin/users/{carol}/");
    for (typed, message) in [
        ("", "enter your own password"),
        ("not-my-password-at-all", "Your password was not right."),
    ] {
        let p = submit(
            &mut b,
            &grant,
            &[
                ("is_active", "on"),
                ("is_staff", "on"),
                ("current_password", typed),
            ],
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{typed:?}: {}", p.body);
        assert!(p.body.contains(message), "{typed:?}: {}", p.body);
        assert!(!h.store.user_by_id(carol).await.unwrap().unwrap().is_staff);
        let p = submit(
            &mut b,
            "/admin/users/add/",
            &[
                ("email", "dave@example.com"),
                ("password", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
                ("is_active", "on"),
                ("is_staff", "on"),
                ("current_password", typed),
            ],
        )
        .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{typed:?}: {}", p.body);
        assert!(p.body.contains(message), "{typed:?}: {}", p.body);
        let dave = Email::parse("dave@example.com").unwrap();
        assert!(h.store.user_by_email(&dave).await.unwrap().is_none());
    }
    // Changes that grant nothing still need no re-entry: deactivating a user.
    let p = submit(&mut b, &grant, &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = submit(&mut b, &grant, &[("is_active", "on")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);

    // The right password: done, and good for the next 5 minutes.
    let mut form = new_pw.to_vec();
    form.push(("current_password", PASSWORD));
    let p = submit(&mut b, &set_ann, &form).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_ne!(password_hash_of(h, ann).await, before);
    h.clock.advance(200);
    let p = submit(&mut b, &grant, &[("is_active", "on"), ("is_staff", "on")]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(h.store.user_by_id(carol).await.unwrap().unwrap().is_staff);

    // And the grant with the right password once that has passed too.
    h.clock.advance(301);
    let p = submit(
        &mut b,
        "/admin/users/add/",
        &[
            ("email", "dave@example.com"),
            ("password", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
            ("is_active", "on"),
            ("is_staff", "on"),
            ("current_password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let dave = Email::parse("dave@example.com").unwrap();
    assert!(
        h.store
            .user_by_email(&dave)
            .await
            .unwrap()
            .unwrap()
            .is_staff
    );
}

/// Wrong re-entered passwords count as failed sign-ins of the acting account:
/// past the threshold even the right one waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_reentered_passwords_are_throttled_as_sign_ins() {
    let h = Harness::new(
        common::Backend::Sqlite,
        oauth_core::ThrottleConfig {
            per_account_source: 2,
            ..common::lenient()
        },
    )
    .await
    .unwrap();
    let (mut b, _) = admin(&h).await;
    let bob = h.user("bob@example.com").await;
    h.clock.advance(301);
    let grant = format!("/admin/users/{bob}/");
    for _ in 0..2 {
        let p = submit(
            &mut b,
            &grant,
            &[
                ("is_staff", "on"),
                ("current_password", "wrong-wrong-wrong"),
            ],
        )
        .await;
        assert!(
            p.body.contains("Your password was not right."),
            "{}",
            p.body
        );
    }
    let p = submit(
        &mut b,
        &grant,
        &[("is_staff", "on"), ("current_password", PASSWORD)],
    )
    .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("Too many failed attempts"), "{}", p.body);
    assert!(!h.store.user_by_id(bob).await.unwrap().unwrap().is_staff);
    // The sign-in page counts the same failures.
    let r = h.login(STAFF, PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
}
