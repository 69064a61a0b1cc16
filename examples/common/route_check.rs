//! Test support: the check that a server's `/openapi.json` matches its router — no
//! route without a schema, no schema without a route.
//!
//! axum has no API that lists a router's routes, but its `Debug` output names every
//! path; the methods of each path are found by asking the router itself (a method a
//! path does not serve is answered 405 by axum). A route passes when its path and
//! method are in the document, or its path is the slash-less alias of a documented
//! path (the document lists the canonical form, with the slash), or its path is in
//! the server's list of browser-only (HTML) routes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The paths `router` routes, read from its `Debug` output: the path router's
/// `node: Node { paths: {RouteId(0): "/a", …} }` (not the fallback router's).
pub fn router_paths(router: &Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let start = debug.find("path_router:").expect("a path router");
    let end = debug.find("fallback_router:").expect("a fallback router");
    let section = &debug[start..end];
    let table = section.find("paths: {").expect("the node's paths");
    let mut rest = &section[table + "paths: {".len()..];
    let mut paths = BTreeSet::new();
    while let Some(entry) = rest
        .strip_prefix("RouteId(")
        .or_else(|| rest.strip_prefix(", RouteId("))
    {
        let open = entry.find(": \"").expect("a quoted path");
        let after = &entry[open + 3..];
        let close = after.find('"').expect("the path's closing quote");
        paths.insert(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    assert!(
        rest.starts_with('}') && !paths.is_empty(),
        "could not read the routes from the router's Debug output: has axum changed its format?"
    );
    paths
}

/// `/items/{id}/` → `/items/1/`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('1');
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// The methods `router` serves at `path` (a request without a body or credentials;
/// any answer but 405 means the method is routed).
async fn routed_methods(router: &Router, path: &str) -> Vec<Method> {
    let mut methods = Vec::new();
    for method in METHODS {
        let response = router
            .clone()
            .oneshot(
                Request::builder()
                    .method(method.clone())
                    .uri(concrete(path))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        if response.status() != StatusCode::METHOD_NOT_ALLOWED {
            methods.push(method);
        }
    }
    methods
}

/// The document `router` serves at `/openapi.json`.
pub async fn served_document(router: &Router) -> Value {
    let response = router
        .clone()
        .oneshot(
            Request::builder()
                .uri("/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET /openapi.json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_refs_resolve(&doc, &doc);
    doc
}

/// Every `$ref` of the document names a schema it holds.
fn assert_refs_resolve(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let pointer = target.strip_prefix('#').expect("a local $ref");
                assert!(doc.pointer(pointer).is_some(), "unresolved $ref {target}");
            }
            map.values().for_each(|v| assert_refs_resolve(doc, v));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(doc, v)),
        _ => {}
    }
}

fn documented(doc: &Value, path: &str, method: &Method) -> bool {
    let method = method.as_str().to_ascii_lowercase();
    doc["paths"][path].get(&method).is_some()
}

/// Panics with the list of differences unless every route of `router` is documented
/// (or browser-only) and every documented operation is routed. `browser_only` must
/// name only paths the router has.
pub async fn assert_document_matches_router(router: &Router, browser_only: &[&str]) {
    let doc = served_document(router).await;
    let paths = router_paths(router);
    let mut problems = Vec::new();
    for stale in browser_only.iter().filter(|p| !paths.contains(**p)) {
        problems.push(format!("{stale}: in the browser-only list but not routed"));
    }
    for path in &paths {
        let browser = browser_only.contains(&path.as_str());
        let canonical = if doc["paths"].get(path.as_str()).is_some() {
            path.clone()
        } else {
            format!("{path}/")
        };
        for method in routed_methods(router, path).await {
            let ok = browser || documented(&doc, &canonical, &method);
            if !ok {
                problems.push(format!("{method} {path}: routed but not in the document"));
            }
        }
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(!browser_only.contains(&path.as_str()));
        let routed = if paths.contains(path) {
            routed_methods(router, path).await
        } else {
            Vec::new()
        };
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_ascii_uppercase().parse().unwrap();
            if !routed.contains(&method) {
                problems.push(format!("{method} {path}: in the document but not routed"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "/openapi.json does not match the router:\n{}",
        problems.join("\n")
    );
}

/// The check itself: an undocumented route is found.
#[tokio::test]
#[should_panic(expected = "GET /undocumented: routed but not in the document")]
async fn an_undocumented_route_is_reported() {
    let doc = serde_json::json!({"openapi": "3.1.0", "paths": {}}).to_string();
    let router = Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || async move { doc.clone() }),
        )
        .route("/undocumented", axum::routing::get(|| async { "" }));
    assert_document_matches_router(&router, &["/openapi.json"]).await;
}
