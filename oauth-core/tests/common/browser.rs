//! A cookie-keeping browser over `Router::oneshot`, for the HTML pages.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::{Harness, PASSWORD};

/// The origin of the test server's issuer URL.
pub const ISSUER: &str = "https://auth.example.test";

/// A response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no Location ({}): {}", self.status, self.body))
    }

    /// The query parameters of the Location.
    pub fn redirect_params(&self) -> std::collections::HashMap<String, String> {
        let loc = self.location();
        let query = loc.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The value of the first hidden input called `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        unescape(&self.body[start..end])
    }

    /// Every hidden input of the page's main form, as sent back by a browser.
    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        let mut out = vec![];
        let mut rest = &self.body[self.body.find("<main>").unwrap()..];
        while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
            rest = &rest[i + 27..];
            let name = &rest[..rest.find('"').unwrap()];
            out.push((name.to_owned(), self.field_after(rest)));
        }
        out
    }

    pub fn field_after(&self, rest: &str) -> String {
        let start = rest.find("value=\"").unwrap() + 7;
        let end = start + rest[start..].find('"').unwrap();
        unescape(&rest[start..end])
    }
}

/// Undoes HTML escaping (named or numeric entities) in an attribute value.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').unwrap() + i;
        let entity = &rest[i + 1..end];
        out.push(match entity {
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

/// A cookie-keeping client of the router.
pub struct Browser<'h> {
    pub h: &'h Harness,
    /// The session cookie (`name=value`).
    pub cookie: Option<String>,
    /// The anonymous visitor's signed CSRF cookie (`name=value`).
    pub csrf_cookie: Option<String>,
    /// The socket address the server sees the browser at (none: no connect info).
    pub peer: Option<std::net::SocketAddr>,
}

impl<'h> Browser<'h> {
    pub fn new(h: &'h Harness) -> Self {
        Self {
            h,
            cookie: None,
            csrf_cookie: None,
            peer: None,
        }
    }

    pub async fn send(&mut self, mut req: Request<Body>) -> Page {
        let sent: Vec<&str> = [&self.cookie, &self.csrf_cookie]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !sent.is_empty() {
            req.headers_mut()
                .insert(header::COOKIE, sent.join("; ").parse().unwrap());
        }
        if let Some(peer) = self.peer {
            req.extensions_mut()
                .insert(axum::extract::connect_info::ConnectInfo(peer));
        }
        let res = self.h.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().trim();
            let jar = if pair.contains("oauth_csrf=") {
                &mut self.csrf_cookie
            } else {
                &mut self.cookie
            };
            if set.contains("Max-Age=0") || pair.ends_with('=') {
                *jar = None;
            } else {
                *jar = Some(pair.to_owned());
            }
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&mut self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// A form POST as a browser sends it from this server's page.
    pub async fn post(&mut self, uri: &str, form: &[(String, String)]) -> Page {
        self.post_with(uri, form, &[(header::ORIGIN.as_str(), ISSUER)])
            .await
    }

    pub async fn post_with(
        &mut self,
        uri: &str,
        form: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn sign_in(&mut self, email: &str) {
        let form = self.get("/accounts/login/").await;
        let page = self
            .post(
                "/accounts/login/",
                &pairs(&[
                    ("csrfmiddlewaretoken", &form.field("csrfmiddlewaretoken")),
                    ("username", email),
                    ("password", PASSWORD),
                    ("next", "/o/authorized_tokens/"),
                ]),
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
}

pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
