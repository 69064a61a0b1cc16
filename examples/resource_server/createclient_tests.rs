//! The example auth server's `createclient` subcommand over real processes: each
//! flag, what it prints, what it refuses, and how the clients it registers behave
//! at the running server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;

use crate::admin_tests::Agent;
use crate::fault_tests::As;
use crate::process::client;
use crate::seed_tests::{VERIFIER, auth_server, authorize_url, manage, token, word_after};

/// `createclient` with every flag: a public first-party browser app (loopback and
/// https redirect URIs, an allowed origin, no consent), a confidential
/// machine-to-machine client whose printed secret works, and a refused redirect
/// URI. Each behaves at the running server as its flags say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createclient_flags_shape_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let spa = manage(
        dir,
        &[
            "createclient",
            "--id",
            "spa",
            "--name",
            "Single page",
            "--public",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1:9000/cb",
            "--redirect-uri",
            "https://spa.example.com/cb",
            "--allowed-origin",
            "https://spa.example.com",
            "--skip-authorization",
            "--scope",
            "read",
        ],
    )
    .await;
    assert!(spa.success, "{spa:?}");
    assert!(spa.stdout.contains("client_id:     spa\n"), "{spa:?}");
    assert!(spa.stdout.contains("public client: no secret"), "{spa:?}");
    assert!(!spa.stdout.contains("client_secret"), "{spa:?}");

    let ledger = manage(
        dir,
        &[
            "createclient",
            "--name",
            "Ledger",
            "--grant",
            "client_credentials",
            "--scope",
            "read write",
        ],
    )
    .await;
    assert!(ledger.success, "{ledger:?}");
    let ledger_id = word_after(&ledger.stdout, "client_id:").to_owned();
    let ledger_secret = word_after(&ledger.stdout, "client_secret:").to_owned();
    assert_eq!(ledger_id.len(), 24, "{ledger:?}");
    assert!(ledger_id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(ledger_secret.len() >= 32, "{ledger:?}");
    assert_eq!(
        ledger.stdout.matches(&ledger_secret).count(),
        1,
        "printed once"
    );
    assert!(ledger.stdout.contains("shown once"), "{ledger:?}");

    // A refused redirect URI: a clear message, a failure status, nothing stored.
    for (uri, says) in [
        (
            "http://example.com/cb",
            "Plain http is allowed only for the loopback addresses",
        ),
        (
            "https://app.example.com/cb#x",
            "must not contain a fragment",
        ),
        ("/cb", "Enter an absolute URI."),
    ] {
        let bad = manage(
            dir,
            &[
                "createclient",
                "--id",
                "bad",
                "--public",
                "--redirect-uri",
                uri,
            ],
        )
        .await;
        assert!(!bad.success, "{uri}: {bad:?}");
        assert!(
            bad.stderr.contains(&format!("--redirect-uri {uri}: ")) && bad.stderr.contains(says),
            "{uri}: {bad:?}"
        );
        assert!(bad.stdout.is_empty(), "{bad:?}");
    }
    let unknown = manage(dir, &["createclient", "--redirect", "https://a.example/cb"]).await;
    assert!(
        !unknown.success && unknown.stderr.contains("unknown argument \"--redirect\""),
        "{unknown:?}"
    );
    let later = manage(dir, &["createclient", "--id", "bad", "--scope", "read"]).await;
    assert!(later.success, "the refused `bad` was not stored: {later:?}");

    let auth = auth_server(dir, &[("SEED_DEMO", "false")]).await;
    let base = auth.url();
    assert!(!auth.log_text().contains("registered the demo clients"));

    // Confidential: the printed secret gets a client-credentials token; a wrong one
    // does not.
    let cc = [("grant_type", "client_credentials"), ("scope", "read")];
    let granted = token(&base, Some((&ledger_id, &ledger_secret)), &cc).await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.body);
    assert_eq!(granted.json()["scope"], "read");
    let wrong = token(&base, Some((&ledger_id, "not-the-secret")), &cc).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    // It has only the grant it was given.
    let password = token(
        &base,
        Some((&ledger_id, &ledger_secret)),
        &[
            ("grant_type", "password"),
            ("username", "a@example.com"),
            ("password", "x"),
        ],
    )
    .await;
    assert_eq!(
        password.json()["error"],
        "unauthorized_client",
        "{}",
        password.body
    );

    // Public, first party: no consent page, any port on the loopback redirect
    // URI, the https one exactly, nothing else; code exchanged without a secret.
    assert_eq!(
        As::new(base.clone())
            .signup("ann@example.com")
            .await
            .unwrap()
            .status,
        201
    );
    let mut agent = Agent::new();
    let to_login = agent
        .get(&authorize_url(
            &base,
            "spa",
            "http://127.0.0.1:5555/cb",
            "read",
        ))
        .await;
    let answer = agent.sign_in_at(&to_login, "ann@example.com").await;
    assert_eq!(
        answer.status,
        StatusCode::FOUND,
        "no consent page: {}",
        answer.body
    );
    assert!(answer.location().starts_with("http://127.0.0.1:5555/cb?"));
    let code = answer.query()["code"].clone();
    let exchanged = token(
        &base,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("redirect_uri", "http://127.0.0.1:5555/cb"),
            ("code_verifier", VERIFIER),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.body);
    assert_eq!(exchanged.json()["scope"], "read");
    let https = agent
        .get(&authorize_url(
            &base,
            "spa",
            "https://spa.example.com/cb",
            "read",
        ))
        .await;
    assert_eq!(https.status, StatusCode::FOUND);
    assert!(
        https
            .location()
            .starts_with("https://spa.example.com/cb?code=")
    );
    for other in ["https://spa.example.com/other", "https://evil.example/cb"] {
        let refused = agent.get(&authorize_url(&base, "spa", other, "read")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{other}");
    }

    // CORS on /o/token/ for the allowed origin only.
    let preflight = |origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, format!("{base}/o/token/"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://spa.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://spa.example.com"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let post = client()
        .post(format!("{base}/o/token/"))
        .header("origin", "https://spa.example.com")
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.headers()["access-control-allow-origin"],
        "https://spa.example.com"
    );
}

/// Issue 19: `createclient` without `--scope` gives the ordinary scopes (`SCOPES`
/// less `PRIVILEGED_SCOPES`); a privileged one only by name, and never to a public
/// client (refused with a clear message, nothing stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createclient_gives_privileged_scopes_only_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let created = |out: &crate::process::Finished| {
        assert!(out.success, "{out:?}");
        (
            word_after(&out.stdout, "client_id:").to_owned(),
            word_after(&out.stdout, "client_secret:").to_owned(),
        )
    };
    let plain = created(
        &manage(
            dir,
            &[
                "createclient",
                "--grant",
                "client_credentials",
                "--grant",
                "password",
            ],
        )
        .await,
    );
    let named = created(
        &manage(
            dir,
            &[
                "createclient",
                "--grant",
                "client_credentials",
                "--scope",
                "read introspection",
            ],
        )
        .await,
    );
    let leaky = manage(
        dir,
        &[
            "createclient",
            "--id",
            "leaky",
            "--public",
            "--scope",
            "read introspection",
        ],
    )
    .await;
    assert!(!leaky.success, "{leaky:?}");
    assert!(
        leaky
            .stderr
            .contains("--scope: introspection is a privileged scope (PRIVILEGED_SCOPES): a public client never gets it"),
        "{leaky:?}"
    );
    let later = manage(dir, &["createclient", "--id", "leaky", "--public"]).await;
    assert!(
        later.success,
        "the refused `leaky` was not stored: {later:?}"
    );

    let auth = auth_server(dir, &[("SEED_DEMO", "false")]).await;
    let base = auth.url();
    let cc = |scope: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|s| ("scope", s)));
        form
    };
    let plain_auth = Some((plain.0.as_str(), plain.1.as_str()));
    let r = token(&base, plain_auth, &cc(None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "read write");
    for scope in ["introspection", "admin", "read introspection"] {
        let r = token(&base, plain_auth, &cc(Some(scope))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{scope}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_scope", "{scope}");
    }
    let named_auth = Some((named.0.as_str(), named.1.as_str()));
    let r = token(&base, named_auth, &cc(Some("introspection"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "introspection");
    // Its default leaves the privileged scope out.
    let r = token(&base, named_auth, &cc(None)).await;
    assert_eq!(r.json()["scope"], "read", "{}", r.body);
}
