//! The operators' kit over real processes: `/metrics` (METRICS_ADDR) scraped on
//! both servers, every metric of `oauth_core::metrics` present and moving, and
//! `/readyz` following the database and the auth server.

use std::collections::BTreeMap;

use reqwest::StatusCode;

use crate::process::{Example, Process, client, free_port};

/// `name{labels} value` lines of a Prometheus text page, summed by name.
fn totals(page: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let name = series.split(['{', ' ']).next().unwrap_or(series);
        let name = name
            .trim_end_matches("_sum")
            .trim_end_matches("_count")
            .to_owned();
        *out.entry(name).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    out
}

pub(crate) async fn scrape(addr: &str) -> (String, BTreeMap<String, f64>) {
    let page = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let totals = totals(&page);
    (page, totals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_and_move_and_readiness_follows_the_auth_server() {
    let dir = tempfile::tempdir().unwrap();
    let as_metrics = format!("127.0.0.1:{}", free_port());
    let rs_metrics = format!("127.0.0.1:{}", free_port());
    let mut auth = Process::start(
        Example::AuthServer,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("as.db").display()),
            ),
            ("SCRYPT_LOG_N", "10".into()),
            ("SCRYPT_P", "1".into()),
            ("LOGIN_FAILURES_PER_SOURCE", "2".into()),
            ("METRICS_ADDR", as_metrics.clone()),
        ],
        &dir.path().join("as.log"),
    )
    .await;
    let rs = Process::start(
        Example::ResourceServer,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("rs.db").display()),
            ),
            ("AUTH_SERVER_URL", auth.url()),
            ("METRICS_ADDR", rs_metrics.clone()),
        ],
        &dir.path().join("rs.log"),
    )
    .await;
    let http = client();
    let ready = async |url: &str| {
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    let items = async |url: &str, token: &str| {
        http.get(format!("{url}/items/"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready(&auth.url()).await, StatusCode::OK);
    assert_eq!(ready(&rs.url()).await, StatusCode::OK);

    // Traffic: a sign-up and sign-in through the proxy, item calls, a refresh,
    // introspections of good and bad tokens, wrong passwords until 429.
    let signup = http
        .post(format!("{}/users/signup/", rs.url()))
        .json(&serde_json::json!({"email": "ann@example.com", "password": "plum-violet-anchor-92", "password2": "plum-violet-anchor-92"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let tokens: serde_json::Value = http
        .post(format!("{}/users/token/", rs.url()))
        .json(&serde_json::json!({"email": "ann@example.com", "password": "plum-violet-anchor-92"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(items(&rs.url(), &access).await, StatusCode::OK);
    }
    assert_eq!(
        items(&rs.url(), "not-a-token").await,
        StatusCode::UNAUTHORIZED
    );
    let refreshed = http
        .post(format!("{}/o/token/", auth.url()))
        .basic_auth("rs-id", Some("rs-secret"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let mut throttled = false;
    for _ in 0..4 {
        let r = http
            .post(format!("{}/o/token/", auth.url()))
            .basic_auth("rs-id", Some("rs-secret"))
            .form(&[
                ("grant_type", "password"),
                ("username", "ann@example.com"),
                ("password", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        throttled |= r.status() == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(throttled);
    let wrong_client = http
        .post(format!("{}/o/introspect/", auth.url()))
        .basic_auth("rs-id", Some("wrong"))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_client.status(), StatusCode::UNAUTHORIZED);
    // The refresh revoked the first access token: the stream carries it.
    let revoked = tokio::time::Instant::now();
    loop {
        if items(&rs.url(), &access).await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(revoked.elapsed() < std::time::Duration::from_secs(2));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The pool gauge and the upkeep run every 5 s.
    tokio::time::sleep(std::time::Duration::from_millis(5200)).await;

    let (as_page, as_totals) = scrape(&as_metrics).await;
    let (rs_page, rs_totals) = scrape(&rs_metrics).await;
    for (name, page, totals) in [
        ("http_requests_total", &as_page, &as_totals),
        ("http_request_duration_seconds", &as_page, &as_totals),
        ("oauth_tokens_issued_total", &as_page, &as_totals),
        ("oauth_introspections_total", &as_page, &as_totals),
        ("oauth_auth_failures_total", &as_page, &as_totals),
        ("oauth_throttled_total", &as_page, &as_totals),
        ("oauth_kdf_queue_wait_seconds", &as_page, &as_totals),
        ("oauth_db_pool_connections", &as_page, &as_totals),
        ("http_requests_total", &rs_page, &rs_totals),
        ("oauth_introspection_cache_total", &rs_page, &rs_totals),
        ("oauth_introspection_call_seconds", &rs_page, &rs_totals),
        ("oauth_revocation_stream_connected", &rs_page, &rs_totals),
        ("oauth_revocations_applied_total", &rs_page, &rs_totals),
        ("oauth_revocation_stream_lag_seconds", &rs_page, &rs_totals),
        ("oauth_db_pool_connections", &rs_page, &rs_totals),
    ] {
        assert!(totals.contains_key(name), "{name} missing from:\n{page}");
    }
    // Moving: each counted what happened.
    for (name, at_least) in [
        ("oauth_tokens_issued_total", 2.0),
        ("oauth_introspections_total", 2.0),
        ("oauth_auth_failures_total", 3.0),
        ("oauth_throttled_total", 1.0),
    ] {
        assert!(as_totals[name] >= at_least, "{name}: {}", as_totals[name]);
    }
    assert!(
        as_page.contains(r#"grant="password""#) && as_page.contains(r#"grant="refresh_token""#)
    );
    assert!(
        as_page.contains(r#"route="/o/token/""#),
        "routes label by template"
    );
    assert!(rs_page.contains(r#"route="/items/""#));
    assert!(rs_page.contains(r#"result="hit""#) && rs_page.contains(r#"result="miss""#));
    assert_eq!(rs_totals["oauth_revocation_stream_connected"], 1.0);
    assert!(rs_totals["oauth_revocations_applied_total"] >= 1.0);

    // Readiness follows the auth server: down and nothing cached → 503.
    auth.kill9();
    let fresh = Process::start(
        Example::ResourceServer,
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("rs2.db").display()),
            ),
            ("AUTH_SERVER_URL", auth.url()),
        ],
        &dir.path().join("rs2.log"),
    )
    .await;
    assert_eq!(
        items(&fresh.url(), &access).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(ready(&fresh.url()).await, StatusCode::SERVICE_UNAVAILABLE);
    auth.restart().await;
    assert_eq!(ready(&auth.url()).await, StatusCode::OK);
    // The next call reaches it again (the token was revoked by the refresh): ready.
    assert_eq!(items(&fresh.url(), &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(ready(&fresh.url()).await, StatusCode::OK);
}
