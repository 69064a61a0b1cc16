//! The items console over real HTTP: sign-in through the auth server
//! (authorization code + PKCE, this server as a confidential client), staff only,
//! the list, the change form with the API's validation, deletion with
//! confirmation, CSRF, and the callback's checks. A reqwest client with redirects
//! off and a cookie jar of its own plays the browser, following each redirect by
//! hand.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use oauth_core::{
    Email, TokenKind, TokenQuery, TokenRecord, TokenStore as _, UserFlags, UserStore as _,
};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::tests::{PASSWORD, World, world};

/// A response as a browser sees it.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
    /// The URL it answered.
    url: String,
}

impl Page {
    /// The absolute URL of the Location header.
    pub(crate) fn location(&self) -> String {
        let loc = self
            .headers
            .get(LOCATION)
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.body))
            .to_str()
            .unwrap();
        if loc.starts_with('/') {
            let origin_end = self.url.find("://").unwrap() + 3;
            let host_end = self.url[origin_end..]
                .find('/')
                .map_or(self.url.len(), |i| i + origin_end);
            format!("{}{loc}", &self.url[..host_end])
        } else {
            loc.to_owned()
        }
    }

    /// The query of the Location header.
    pub(crate) fn query(&self) -> HashMap<String, String> {
        let loc = self.location();
        let q = loc.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    /// The value of the first input called `name`.
    pub(crate) fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\"");
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body));
        let tag = &self.body[at..at + self.body[at..].find('>').unwrap()];
        let start = at + tag.find("value=\"").unwrap() + 7;
        let end = start + self.body[start..].find('"').unwrap();
        unescape(&self.body[start..end])
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

/// A browser: cookies by name (both servers are on 127.0.0.1, and cookies are
/// per host), no automatic redirects.
pub(crate) struct Agent {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    /// Every `Set-Cookie` seen, for attribute checks.
    set_cookies: Vec<String>,
}

impl Agent {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
            set_cookies: vec![],
        }
    }

    async fn send(&mut self, url: &str, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("cookie", cookie)
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            let pair = set.split(';').next().unwrap().trim();
            let (name, value) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(set);
        }
        Page {
            status,
            headers,
            body: res.text().await.unwrap(),
            url: url.to_owned(),
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(url, req).await
    }

    pub(crate) async fn post(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self.http.post(url).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(url, req).await
    }

    /// Signs in at the auth server's login page that `login` (a 302 to it) sends to;
    /// returns the answer of the page it goes back to.
    pub(crate) async fn sign_in_at(&mut self, login: &Page, email: &str) -> Page {
        assert_eq!(login.status, StatusCode::FOUND, "{}", login.body);
        let login_url = login.location();
        assert!(login_url.contains("/accounts/login/"), "{login_url}");
        let form = self.get(&login_url).await;
        let action = format!("{}/accounts/login/", origin(&login_url));
        let done = self
            .post(
                &action,
                &[
                    ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                    ("next", &form.field("next")),
                    ("username", email),
                    ("password", PASSWORD),
                ],
                &[],
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        self.get(&done.location()).await
    }
}

/// Undoes HTML escaping (named or numeric entities) in an attribute value.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').unwrap() + i;
        out.push(match &rest[i + 1..end] {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => {
                char::from_u32(u32::from_str_radix(&e[2..], 16).unwrap()).unwrap()
            }
            e if e.starts_with('#') => char::from_u32(e[1..].parse().unwrap()).unwrap(),
            e => panic!("entity {e}"),
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn origin(url: &str) -> String {
    let start = url.find("://").unwrap() + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| i + start);
    url[..end].to_owned()
}

/// Signs a user up (and makes them staff when asked).
async fn account(w: &World, email: &str, staff: bool) -> String {
    let token = w.user(email).await.str("access_token");
    if staff {
        set_staff(w, email, true).await;
    }
    token
}

/// The id of the user signed up as `email`.
pub(crate) async fn user_id(w: &World, email: &str) -> oauth_core::UserId {
    w.auth
        .store
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

/// Sets the user's `is_staff` flag straight in the auth server's store.
pub(crate) async fn set_staff(w: &World, email: &str, staff: bool) {
    let user = user_id(w, email).await;
    w.auth
        .store
        .set_user_flags(
            user,
            UserFlags {
                is_staff: Some(staff),
                ..UserFlags::default()
            },
        )
        .await
        .unwrap();
}

/// A user's unrevoked access tokens of the console's client (`rs-id`).
async fn console_tokens(w: &World, email: &str) -> Vec<TokenRecord> {
    let user = user_id(w, email).await;
    let page = w
        .auth
        .store
        .list_tokens(&TokenQuery {
            user_id: Some(user),
            client_id: Some("rs-id".to_owned()),
            offset: 0,
            limit: 100,
        })
        .await
        .unwrap();
    page.items
        .into_iter()
        .filter(|t| t.kind == TokenKind::Access && t.revoked_at.is_none())
        .collect()
}

/// The whole sign-in: `/admin/` → authorize → login → authorize → callback →
/// `/admin/`; returns the console's first page.
async fn console_sign_in(w: &World, agent: &mut Agent, email: &str) -> Page {
    let start = agent.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.body);
    let to_login = agent.get(&start.location()).await;
    let answer = agent.sign_in_at(&to_login, email).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    let callback = answer.location();
    assert!(
        callback.starts_with(&format!("{}/admin/callback?", w.rs.url)),
        "{callback}"
    );
    let back = agent.get(&callback).await;
    if back.status != StatusCode::SEE_OTHER {
        return back;
    }
    assert_eq!(back.location(), format!("{}/admin/", w.rs.url));
    agent.get(&back.location()).await
}

fn item(name: &str, price: &str) -> Value {
    json!({"name": name, "description": format!("the {name}"), "price": price})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_is_sent_to_the_auth_server_with_pkce_and_state() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    let mut agent = Agent::new();
    let page = agent.get(&format!("{}/admin/items/1/", w.rs.url)).await;
    assert_eq!(page.status, StatusCode::FOUND);
    let to = page.location();
    assert!(
        to.starts_with(&format!("{}/o/authorize/?", w.auth.url())),
        "{to}"
    );
    let q = page.query();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "rs-id");
    assert_eq!(q["redirect_uri"], format!("{}/admin/callback", w.rs.url));
    assert_eq!(q["scope"], "admin read write");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    // The attempt waits in a sealed cookie of 10 minutes; no session is made
    // before someone has signed in (issue 19, hole 5).
    let cookie = agent
        .set_cookies
        .iter()
        .find(|c| c.starts_with("rs_admin_signin="))
        .expect("a sign-in attempt cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/admin/", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !agent
            .set_cookies
            .iter()
            .any(|c| c.starts_with("rs_admin_session=")),
        "{:?}",
        agent.set_cookies
    );
    let sealed = cookie.split(';').next().unwrap();
    assert!(
        !sealed.contains(&q["state"]),
        "the state is sealed: {cookie}"
    );
    // A second visit starts a new attempt with a new state and challenge.
    let again = agent.get(&format!("{}/admin/", w.rs.url)).await.query();
    assert_ne!(again["state"], q["state"]);
    assert_ne!(again["code_challenge"], q["code_challenge"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_user_signs_in_edits_and_deletes() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    let ann = account(&w, "ann@example.com", false).await;
    account(&w, "boss@example.com", true).await;
    let mut ids = vec![];
    for (name, price) in [("lamp", "12.5"), ("desk", "80"), ("<b>bold</b>", "1")] {
        let r = w.post("/items/", Some(&ann), item(name, price)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        ids.push(r.json["id"].as_i64().unwrap());
    }

    let mut agent = Agent::new();
    let list = console_sign_in(&w, &mut agent, "boss@example.com").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for text in [
        "lamp",
        "desk",
        "12.50",
        "ann@example.com",
        "boss@example.com",
    ] {
        assert!(list.body.contains(text), "{text} missing: {}", list.body);
    }
    assert!(list.body.contains("&#60;b&#62;bold&#60;/b&#62;"), "escaped");
    assert!(!list.body.contains("<b>bold"));
    assert!(
        list.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(list.header("x-frame-options"), "DENY");
    assert_eq!(list.header("referrer-policy"), "no-referrer");
    assert_eq!(list.header("cache-control"), "no-store");
    let css = agent
        .get(&format!("{}/admin/static/style.css", w.rs.url))
        .await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.body.contains("--accent"));

    // Search by name.
    let found = agent.get(&format!("{}/admin/?q=lam", w.rs.url)).await;
    assert!(found.body.contains("lamp") && !found.body.contains("desk"));
    assert!(found.body.contains("1 item matching"));

    // Invalid values: the API's messages beside the fields, with what was typed.
    let url = format!("{}/admin/items/{}/", w.rs.url, ids[0]);
    let form = agent.get(&url).await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.field("name"), "lamp");
    assert_eq!(form.field("price"), "12.50");
    let csrf = form.field("csrfmiddlewaretoken");
    let long = "d".repeat(251);
    let bad = agent
        .post(
            &url,
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("name", "desk"),
                ("description", &long),
                ("price", "1.234"),
            ],
            &[("origin", &w.rs.url)],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    for message in [
        "item with this name already exists.",
        "Ensure this field has no more than 250 characters.",
        "Ensure that there are no more than 2 decimal places.",
    ] {
        assert!(bad.body.contains(message), "{message}: {}", bad.body);
    }
    assert_eq!(bad.field("name"), "desk");
    assert_eq!(bad.field("price"), "1.234");
    assert!(bad.body.contains(&long));
    let bad = agent
        .post(
            &url,
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("name", &"n".repeat(51)),
                ("description", "x"),
                ("price", "abc"),
            ],
            &[],
        )
        .await;
    assert!(
        bad.body
            .contains("Ensure this field has no more than 50 characters.")
    );
    assert!(bad.body.contains("A valid number is required."));

    // Valid: saved, a message, visible through the API.
    let saved = agent
        .post(
            &url,
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("name", "brass lamp"),
                ("description", "polished"),
                ("price", "14.2"),
            ],
            &[],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let after = agent.get(&saved.location()).await;
    assert!(
        after.body.contains("The item “brass lamp” was changed."),
        "{}",
        after.body
    );
    let again = agent.get(&saved.location()).await;
    assert!(!again.body.contains("was changed"), "a flash is shown once");
    let api = w.get(&format!("/items/{}/", ids[0]), &ann).await;
    assert_eq!(
        (
            &api.json["name"],
            &api.json["description"],
            &api.json["price"]
        ),
        (&json!("brass lamp"), &json!("polished"), &json!("14.20"))
    );

    // CSRF: no token, a wrong token, another origin — refused, nothing changed.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let tries: [(Pairs, Pairs); 3] = [
        (&[("name", "x"), ("description", "x"), ("price", "1")], &[]),
        (
            &[
                ("csrfmiddlewaretoken", "forged"),
                ("name", "x"),
                ("description", "x"),
                ("price", "1"),
            ],
            &[],
        ),
        (
            &[
                ("csrfmiddlewaretoken", &csrf),
                ("name", "x"),
                ("description", "x"),
                ("price", "1"),
            ],
            &[("origin", "http://evil.example")],
        ),
    ];
    for (fields, headers) in tries {
        let r = agent.post(&url, fields, headers).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert!(r.body.contains("Form expired"));
    }
    let r = agent
        .post(
            &format!("{}/admin/items/{}/delete/", w.rs.url, ids[1]),
            &[("csrfmiddlewaretoken", &csrf)],
            &[("sec-fetch-site", "same-site")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the auth server's port is another origin"
    );
    assert_eq!(
        w.get(&format!("/items/{}/", ids[0]), &ann).await.json["name"],
        "brass lamp"
    );

    // Delete: a confirmation page, then gone.
    let delete_url = format!("{}/admin/items/{}/delete/", w.rs.url, ids[1]);
    let confirm = agent.get(&delete_url).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("Delete the item “desk”?"),
        "{}",
        confirm.body
    );
    assert_eq!(
        w.get(&format!("/items/{}/", ids[1]), &ann).await.status,
        StatusCode::OK,
        "not deleted by looking"
    );
    let deleted = agent
        .post(&delete_url, &[("csrfmiddlewaretoken", &csrf)], &[])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.body);
    let after = agent.get(&deleted.location()).await;
    assert!(after.body.contains("The item “desk” was deleted."));
    assert_eq!(
        w.get(&format!("/items/{}/", ids[1]), &ann).await.status,
        StatusCode::NOT_FOUND
    );
    let missing = agent.get(&delete_url).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Sign out: the token is revoked, the next visit signs in again.
    let out = agent
        .post(
            &format!("{}/admin/logout/", w.rs.url),
            &[("csrfmiddlewaretoken", &csrf)],
            &[],
        )
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("Signed out"));
    let next = agent.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(next.status, StatusCode::FOUND);
    assert!(
        next.location()
            .starts_with(&format!("{}/o/authorize/", w.auth.url()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_staff_user_gets_the_403_page() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    account(&w, "ann@example.com", false).await;
    let mut agent = Agent::new();
    let page = console_sign_in(&w, &mut agent, "ann@example.com").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("Only staff users"), "{}", page.body);
    // Still not in.
    let again = agent.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(again.status, StatusCode::FOUND);
}

/// The 403 page is no dead end. A user the auth server refuses `admin`
/// (`access_denied`) gets links to the auth server's pages every user has, and no
/// sign-out form: the console holds nothing for them. A user made non-staff while
/// signed in is shown as who they are, and the form (with a CSRF token, as the
/// console's other forms) ends the console's session and revokes its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_staff_only_page_offers_a_way_on() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    let auth = w.auth.url();
    let links = |body: &str| {
        for link in ["/o/applications/", "/o/authorized_tokens/"] {
            let href = format!("<a href=\"{auth}{link}\">");
            assert!(body.contains(&href), "{href}: {body}");
        }
    };
    let form = r#"<form method="post" action="/admin/logout/" class="actions">"#;

    // Refused at sign-in: links, nothing to sign out of.
    account(&w, "ann@example.com", false).await;
    let mut ann = Agent::new();
    let page = console_sign_in(&w, &mut ann, "ann@example.com").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    links(&page.body);
    assert!(!page.body.contains(form), "{}", page.body);
    assert!(!page.body.contains("csrfmiddlewaretoken"), "{}", page.body);
    for link in ["/o/applications/", "/o/authorized_tokens/"] {
        let there = ann.get(&format!("{auth}{link}")).await;
        assert_eq!(there.status, StatusCode::OK, "{link}: {}", there.body);
    }

    // Made non-staff while signed in: who, links and the sign-out form.
    account(&w, "boss@example.com", true).await;
    // The API's own token of boss's account, also `rs-id`'s.
    let before = console_tokens(&w, "boss@example.com").await.len();
    let mut boss = Agent::new();
    let list = console_sign_in(&w, &mut boss, "boss@example.com").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(
        console_tokens(&w, "boss@example.com").await.len(),
        before + 1
    );
    set_staff(&w, "boss@example.com", false).await;
    let since = std::time::Instant::now();
    let page = loop {
        let page = boss.get(&format!("{}/admin/", w.rs.url)).await;
        if page.status != StatusCode::OK {
            break page;
        }
        assert!(since.elapsed() < Duration::from_secs(5), "still in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let main = &page.body[page.body.find("<main").unwrap()..];
    assert!(main.contains("<h1>Staff only</h1>"), "{main}");
    assert!(
        main.contains("You are signed in as <strong class=\"client\">boss@example.com</strong>"),
        "{main}"
    );
    links(main);
    assert!(main.contains(form), "{main}");
    let csrf = page.field("csrfmiddlewaretoken");
    assert!(csrf.len() >= 32, "a CSRF token: {csrf:?}");
    // The token is kept (not usable in the console) until the sign-out.
    assert_eq!(
        console_tokens(&w, "boss@example.com").await.len(),
        before + 1
    );
    let logout = format!("{}/admin/logout/", w.rs.url);
    let forged = boss
        .post(&logout, &[("csrfmiddlewaretoken", "not-the-token")], &[])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let out = boss
        .post(&logout, &[("csrfmiddlewaretoken", &csrf)], &[])
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out.body.contains("Signed out"), "{}", out.body);
    assert!(!out.body.contains("boss@example.com"), "{}", out.body);
    assert_eq!(
        console_tokens(&w, "boss@example.com").await.len(),
        before,
        "the console's token is revoked"
    );
    // The session is over: its form no longer passes, the console signs in anew.
    let replay = boss
        .post(&logout, &[("csrfmiddlewaretoken", &csrf)], &[])
        .await;
    assert_eq!(replay.status, StatusCode::FORBIDDEN, "{}", replay.body);
    let next = boss.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(next.status, StatusCode::FOUND);
    assert!(next.location().starts_with(&format!("{auth}/o/authorize/")));
}

/// With the introspection cache at its longest (300 s), a staff user made
/// non-staff is out of the console within a second: the demotion is logged as a
/// `token-claims-change` for the user, the resource server's follower drops
/// their cached answers, and introspection answers again without `admin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demoted_staff_is_out_within_a_second_despite_the_cache() {
    let w = world(Duration::from_secs(300), Duration::from_secs(3600)).await;
    account(&w, "boss@example.com", true).await;
    let mut agent = Agent::new();
    let list = console_sign_in(&w, &mut agent, "boss@example.com").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    // The answer is cached: the console keeps working while nothing changes.
    let again = agent.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    set_staff(&w, "boss@example.com", false).await;
    let demoted = std::time::Instant::now();
    loop {
        let page = agent.get(&format!("{}/admin/", w.rs.url)).await;
        if page.status == StatusCode::FORBIDDEN {
            break;
        }
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            demoted.elapsed() < Duration::from_millis(1500),
            "still in the console {:?} after the demotion",
            demoted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("demoted staff refused after {:?}", demoted.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_refuses_a_foreign_state_or_issuer() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    account(&w, "boss@example.com", true).await;
    let mut agent = Agent::new();

    // No sign-in started in this browser.
    let r = agent
        .get(&format!(
            "{}/admin/callback?code=x&state=y&iss={}",
            w.rs.url,
            w.auth.url()
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A real code, but with another state: refused, and the code not redeemed.
    let start = agent.get(&format!("{}/admin/", w.rs.url)).await;
    let to_login = agent.get(&start.location()).await;
    let answer = agent.sign_in_at(&to_login, "boss@example.com").await;
    let params = answer.query();
    let forged = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &params["code"])
        .append_pair("state", "someone-elses-state")
        .append_pair("iss", &params["iss"])
        .finish();
    let r = agent
        .get(&format!("{}/admin/callback?{forged}", w.rs.url))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body
            .contains("does not belong to the sign-in started here")
    );
    // The attempt is used up: the right state no longer works either.
    let r = agent.get(&answer.location()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // The wrong issuer (RFC 9207).
    let start = agent.get(&format!("{}/admin/", w.rs.url)).await;
    let answer = agent.get(&start.location()).await;
    assert_eq!(
        answer.status,
        StatusCode::FOUND,
        "signed in at the auth server already"
    );
    let params = answer.query();
    let mixed = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &params["code"])
        .append_pair("state", &params["state"])
        .append_pair("iss", "http://127.0.0.1:1")
        .finish();
    let r = agent
        .get(&format!("{}/admin/callback?{mixed}", w.rs.url))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("expected auth server"));
}

/// The rows of the resource server's session table.
async fn session_rows(w: &World) -> i64 {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(format!("sqlite://{}", w.rs.dir().join("rs.db").display()))
        .await
        .unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT COUNT(*) AS n FROM oauth_sessions",
        ))
        .await
        .unwrap()
        .unwrap();
    let n = row.try_get::<i64>("", "n").unwrap();
    db.close().await.unwrap();
    n
}

/// Issue 19, hole 5: 10,000 cookie-less visits of the console's sign-in (`/admin/`,
/// a 302 to the auth server) add no session row; the sign-in then makes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_less_console_visits_store_no_session() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    account(&w, "boss@example.com", true).await;
    let before = session_rows(&w).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let url = format!("{}/admin/", w.rs.url);
    let mut session_cookies = 0;
    for _ in 0..10_000 {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        session_cookies += r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter(|c| c.to_str().unwrap().starts_with("rs_admin_session="))
            .count();
    }
    let after = session_rows(&w).await;
    eprintln!(
        "resource server oauth_sessions: {before} rows before, {after} after 10,000 GETs of /admin/ without a cookie ({:?})",
        started.elapsed()
    );
    assert_eq!(after, before);
    assert_eq!(session_cookies, 0);

    let mut agent = Agent::new();
    let page = console_sign_in(&w, &mut agent, "boss@example.com").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(session_rows(&w).await, before + 1);
}

/// A sign-in attempt's cookie opens only with this server's key, for an attempt,
/// unchanged: a forged or altered cookie is "no sign-in started".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_altered_attempt_cookie_is_refused() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    account(&w, "boss@example.com", true).await;
    let mut agent = Agent::new();
    let start = agent.get(&format!("{}/admin/", w.rs.url)).await;
    let to_login = agent.get(&start.location()).await;
    let answer = agent.sign_in_at(&to_login, "boss@example.com").await;
    let sealed = agent.cookies["rs_admin_signin"].clone();
    let mut altered = sealed.into_bytes();
    let last = altered.len() - 2;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    for value in [
        String::from_utf8(altered).unwrap(),
        "AAAA".to_owned(),
        "not base64!".to_owned(),
    ] {
        let mut forger = Agent::new();
        forger
            .cookies
            .insert("rs_admin_signin".to_owned(), value.clone());
        let r = forger.get(&answer.location()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{value}");
        assert!(r.body.contains("No sign-in was started"), "{}", r.body);
    }
    // The real one still works (the code was not spent by the refusals).
    let back = agent.get(&answer.location()).await;
    assert_eq!(back.status, StatusCode::SEE_OTHER, "{}", back.body);
}

/// Every maximal run of URL-safe base64 characters of exactly `len` characters in
/// `bytes`: the shape of an opaque token.
fn token_shaped(bytes: &[u8], len: usize) -> Vec<String> {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    bytes
        .split(|b| !is_b64(b))
        .filter(|run| run.len() == len)
        .map(|run| String::from_utf8(run.to_vec()).unwrap())
        .collect()
}

/// Issue 19, hole 8: the console's access token is sealed in the session table. A
/// byte dump of the resource server's SQLite files (the database, its `-wal` and
/// `-shm`) after a staff sign-in holds no token the auth server calls active —
/// before the fix the 43-character `admin read write` token was there in clear —
/// and the console still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_session_table_holds_no_usable_token() {
    let w = world(Duration::from_secs(60), Duration::from_secs(3600)).await;
    account(&w, "boss@example.com", true).await;
    let mut agent = Agent::new();
    let page = console_sign_in(&w, &mut agent, "boss@example.com").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);

    let mut dump = vec![];
    let mut files = vec![];
    for entry in std::fs::read_dir(w.rs.dir()).unwrap() {
        let path = entry.unwrap().path();
        files.push(path.file_name().unwrap().to_string_lossy().into_owned());
        dump.extend(std::fs::read(&path).unwrap());
    }
    assert!(
        files.iter().any(|f| f == "rs.db-wal") || files.iter().any(|f| f == "rs.db"),
        "{files:?}"
    );
    let text = String::from_utf8_lossy(&dump);
    assert!(
        text.contains("access_token"),
        "the session row is in the dump"
    );
    let candidates = token_shaped(&dump, 43);
    let mut active = vec![];
    for candidate in &candidates {
        let r = w
            .http
            .post(format!("{}/o/introspect/", w.auth.url()))
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[("token", candidate.as_str())])
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        if body["active"] == json!(true) {
            active.push(candidate.clone());
        }
    }
    eprintln!(
        "dump of {files:?}: {} bytes, {} token-shaped strings, {} active",
        dump.len(),
        candidates.len(),
        active.len()
    );
    assert!(active.is_empty(), "usable tokens in the dump: {active:?}");

    // The console still works with the sealed token.
    let again = agent.get(&format!("{}/admin/", w.rs.url)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert!(again.body.contains("boss@example.com"), "{}", again.body);
}
