//! The demo seed's clients: what the example auth server registers on an empty
//! database (unless `SEED_DEMO=false`), and what the resource server's tests
//! register on the library's auth server — one definition, so that the tests run
//! against the seed as shipped.

use oauth_core::{Client, ClientKind, GrantType, Scope};

/// The resource server's confidential client.
pub const RS_ID: &str = "rs-id";
pub const RS_SECRET: &str = "rs-secret";
/// Where the resource server at `rs_url` receives its console's sign-ins. `rs-id`
/// is confidential, so the port must be the real one: the any-port rule of
/// loopback redirect URIs (RFC 8252 §7.3) is for native (public) clients only.
pub fn rs_console_redirect(rs_url: &str) -> String {
    format!("{}/admin/callback", rs_url.trim_end_matches('/'))
}
/// The demo public client's id and redirect URI.
pub const DEMO_APP: &str = "demo-app";
pub const DEMO_REDIRECT: &str = "http://127.0.0.1:8765/callback";

/// The two demo clients, for a server offering `scopes`:
///
/// - `rs-id` / `rs-secret` (`rs_secret_hash` is the hash of [`RS_SECRET`]),
///   confidential: the password and refresh grants for the resource server's
///   proxy and every configured scope, as the reference system has — listed by
///   name, since the privileged `introspection` (its introspection calls) and
///   `admin` (its items console) are granted only to a confidential client
///   registered with them; also the authorization code grant for its items
///   console at `rs_url` (redirect URI [`rs_console_redirect`]), first party (no
///   consent page). Users' tokens carry `read write`
///   unless more is asked for by name.
/// - `demo-app`, public: authorization code + PKCE, redirect URI
///   [`DEMO_REDIRECT`], scopes `read write`, consent asked.
pub fn demo_clients(
    rs_secret_hash: String,
    scopes: &Scope,
    rs_url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> [Client; 2] {
    let read_write: Scope = ["read", "write"]
        .into_iter()
        .filter(|s| scopes.contains(s))
        .collect();
    let rs = Client {
        client_id: RS_ID.into(),
        secret_hash: Some(rs_secret_hash),
        kind: ClientKind::Confidential,
        name: "Demo resource server".into(),
        grant_types: vec![
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::AuthorizationCode,
        ],
        redirect_uris: vec![rs_console_redirect(rs_url)],
        allowed_origins: vec![],
        skip_authorization: true,
        allowed_scope: scopes.clone(),
        // Introspection belongs to the resource server's own credentials.
        default_scope: read_write.clone(),
        owner: None,
        created_at: now,
    };
    let demo = Client {
        client_id: DEMO_APP.into(),
        secret_hash: None,
        kind: ClientKind::Public,
        name: "Demo app".into(),
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: vec![DEMO_REDIRECT.into()],
        allowed_origins: vec![],
        skip_authorization: false,
        allowed_scope: read_write.clone(),
        default_scope: read_write,
        owner: None,
        created_at: now,
    };
    [rs, demo]
}
