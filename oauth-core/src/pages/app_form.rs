//! The application registration form (DOT's `ApplicationForm`), shared by the
//! console's `/admin/applications/` and the self-service `/o/applications/`:
//! what was typed, its validation, the data its fields are rendered from
//! (`templates/oauth/application_fields.html`), and the store operations behind
//! each action — register, update, rotate the secret, delete.
//!
//! A client secret is stored only as its scrypt hash. A generated one is shown
//! once, in the answer to the POST that made it (register, change, rotate): that
//! POST renders the client's page with it (200, `no-store`) instead of
//! redirecting ([`finish`], [`Next::Show`]). It is never written to the session
//! (sessions are rows of the database), a URL, a log entry or a redisplayed form.
//!
//! Every change forgets the cached registration
//! ([`ClientAuthenticator::forget`](crate::server::client_auth::ClientAuthenticator::forget)),
//! so a new secret, a narrower grant list or a deletion holds at once on the token
//! and introspection endpoints of this instance.

mod save;

pub(crate) use save::{
    Next, Outcome, Shown, delete_and_finish, finish, register, rotate_and_finish, update_and_finish,
};

use super::PagesState;
use crate::admin::FormErrors;
use crate::issuer::without;
use crate::scope::Scope;
use crate::secret::ClientSecret;
use crate::server::AppState;
use crate::server::authorization::validate_redirect_uri;
use crate::server::scope_policy;
use crate::store::{Client, ClientKind, GrantType};

/// The longest client id (the column's length).
const MAX_CLIENT_ID: usize = 100;
/// Ids that are the last segment of a page's path (`/admin/applications/add/`,
/// `/o/applications/register/`), so a client so named could not be reached.
const RESERVED: [&str; 2] = ["add", "register"];
/// The longest name (the column's length).
const MAX_NAME: usize = 255;
/// The longest typed secret.
const MAX_SECRET: usize = 255;

/// One grant type checkbox.
#[derive(Debug)]
pub(crate) struct GrantChoice {
    pub(crate) value: &'static str,
    pub(crate) label: &'static str,
}

/// The grant type checkboxes, in metadata order.
pub(crate) const GRANTS: [GrantChoice; 4] = [
    GrantChoice {
        value: "authorization_code",
        label: "Authorization code (with PKCE)",
    },
    GrantChoice {
        value: "password",
        label: "Resource owner password",
    },
    GrantChoice {
        value: "client_credentials",
        label: "Client credentials",
    },
    GrantChoice {
        value: "refresh_token",
        label: "Refresh token",
    },
];

/// Who fills the form in: staff may also mark a client first-party
/// (`skip_authorization`); owners may not, as in DOT, whose self-service form has
/// no such field — a client that skips consent gets tokens for anyone who follows
/// its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Staff,
    Owner,
}

/// The form as typed, for redisplay. The secret is not part of it, so a form
/// shown again never carries one.
#[derive(Debug, Clone)]
pub(crate) struct AppForm {
    pub(crate) name: String,
    pub(crate) client_id: String,
    /// `confidential` or `public`.
    pub(crate) client_type: String,
    pub(crate) grant_types: Vec<String>,
    /// One per line.
    pub(crate) redirect_uris: String,
    /// One per line.
    pub(crate) allowed_origins: String,
    /// Space-separated.
    pub(crate) scope: String,
    pub(crate) skip_authorization: bool,
}

impl Default for AppForm {
    /// The empty add form: confidential, authorization code and refresh token.
    fn default() -> Self {
        Self {
            name: String::new(),
            client_id: String::new(),
            client_type: ClientKind::Confidential.as_str().to_owned(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            redirect_uris: String::new(),
            allowed_origins: String::new(),
            scope: String::new(),
            skip_authorization: false,
        }
    }
}

impl AppForm {
    /// A POSTed form body: the form and the typed secret (empty when none).
    /// `grant_types` is a repeated field, so the body is read whole.
    pub(crate) fn parse(body: &[u8]) -> (Self, ClientSecret) {
        let mut form = Self {
            grant_types: vec![],
            client_type: String::new(),
            ..Self::default()
        };
        let mut secret = String::new();
        for (k, v) in form_urlencoded::parse(body) {
            let v = v.into_owned();
            match &*k {
                "name" => form.name = v,
                "client_id" => form.client_id = v,
                "client_secret" => secret = v,
                "client_type" => form.client_type = v,
                "grant_types" if !form.grant_types.contains(&v) => form.grant_types.push(v),
                "redirect_uris" => form.redirect_uris = v,
                "allowed_origins" => form.allowed_origins = v,
                "scope" => form.scope = v,
                "skip_authorization" => form.skip_authorization = true,
                _ => {}
            }
        }
        (form, ClientSecret::new(secret))
    }

    /// The change form of a registered client.
    pub(crate) fn of(client: &Client) -> Self {
        Self {
            name: client.name.clone(),
            client_id: client.client_id.clone(),
            client_type: client.kind.as_str().to_owned(),
            grant_types: client
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            redirect_uris: client.redirect_uris.join("\n"),
            allowed_origins: client.allowed_origins.join("\n"),
            scope: client.allowed_scope.to_string(),
            skip_authorization: client.skip_authorization,
        }
    }

    /// Whether the checkbox of `grant` is ticked (for the template).
    pub(crate) fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

/// What the fields template needs.
#[derive(Debug)]
pub(crate) struct FormView {
    pub(crate) form: AppForm,
    pub(crate) errors: FormErrors,
    /// The add form (the client id is typed) rather than a change form.
    pub(crate) adding: bool,
    /// Show the `skip_authorization` checkbox.
    pub(crate) staff: bool,
    /// A change form of a client with a stored secret (an empty field keeps it).
    pub(crate) has_secret: bool,
    /// The scopes this form may give, each marked privileged or not (help text).
    pub(crate) scopes: Vec<ScopeMark>,
    /// What an empty field gives: the ordinary ones of [`scopes`](Self::scopes).
    pub(crate) ordinary_scopes: String,
    pub(crate) grants: &'static [GrantChoice],
}

impl FormView {
    pub(crate) fn new(
        pages: &PagesState,
        form: AppForm,
        errors: FormErrors,
        existing: Option<&Client>,
        audience: Audience,
    ) -> Self {
        Self {
            form,
            errors,
            adding: existing.is_none(),
            staff: audience == Audience::Staff,
            has_secret: existing.is_some_and(|c| c.secret_hash.is_some()),
            scopes: ScopeMark::all(&scopes_for(pages, audience), &pages.app),
            ordinary_scopes: without(&scopes_for(pages, audience), &pages.app.privileged_scopes)
                .to_string(),
            grants: &GRANTS,
        }
    }
}

/// A scope as the pages show it: its name, and whether it is privileged
/// ([`AuthServer::privileged_scopes`](crate::AuthServer::privileged_scopes)).
#[derive(Debug, Clone)]
pub(crate) struct ScopeMark {
    pub(crate) name: String,
    pub(crate) privileged: bool,
}

impl ScopeMark {
    pub(crate) fn all(scope: &Scope, app: &AppState) -> Vec<Self> {
        scope
            .iter()
            .map(|t| Self {
                name: t.to_owned(),
                privileged: scope_policy::is_privileged(app, t),
            })
            .collect()
    }
}

/// The scopes a form of `audience` may give: every scope of the server for staff;
/// for an owner's own application, the ordinary ones less the staff-only ones.
pub(crate) fn scopes_for(pages: &PagesState, audience: Audience) -> Scope {
    match audience {
        Audience::Staff => pages.app.scopes.clone(),
        Audience::Owner => without(&scope_policy::ordinary(&pages.app), &pages.app.staff_scopes),
    }
}

/// What becomes of the secret.
#[derive(Debug)]
enum SecretChange {
    /// A change form left it empty: the stored hash stays.
    Keep,
    /// Generate one, shown once after saving.
    Generate,
    /// The one typed (not shown again: its author knows it).
    Typed(ClientSecret),
    /// A public client has none.
    None,
}

/// A form that passed validation.
#[derive(Debug)]
pub(crate) struct Valid {
    name: String,
    /// `None`: generate one (add form left it empty).
    client_id: Option<String>,
    kind: ClientKind,
    grant_types: Vec<GrantType>,
    redirect_uris: Vec<String>,
    allowed_origins: Vec<String>,
    scope: Scope,
    skip_authorization: bool,
    secret: SecretChange,
}

impl Valid {
    /// Whether saving it hashes a new secret (one KDF run).
    pub(crate) fn hashes_secret(&self) -> bool {
        matches!(self.secret, SecretChange::Generate | SecretChange::Typed(_))
    }
}

/// Takes one client-secret hash from the budgets of `me` and of the source
/// ([`ThrottleConfig::secret_hashes_per_user`](crate::ThrottleConfig::secret_hashes_per_user)):
/// each is a production KDF run on the threads sign-ins share, so a signed-in
/// user cannot keep them busy by registering applications or rotating secrets in
/// a loop. When used up: the message to show (on the secret's field) and the wait.
pub(crate) fn secret_budget(
    pages: &PagesState,
    me: &crate::store::User,
    ip: crate::server::ClientIp,
) -> Result<(), (String, std::time::Duration)> {
    pages
        .app
        .throttle
        .take_secret_hash(me.id, ip.0)
        .map_err(|wait| {
            crate::metrics::throttled();
            let minutes = wait.as_secs().div_ceil(60).max(1);
            (
                format!(
                    "Too many application secrets were made or changed from here recently: try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
                wait,
            )
        })
}

/// `response` (a form page showing the refusal of [`secret_budget`]) as 429 Too
/// Many Requests with `Retry-After`; an error page it turned out to be stays as it is.
pub(crate) fn too_many(
    mut response: axum::response::Response,
    wait: std::time::Duration,
) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let status = response.status();
    if status.is_client_error() || status.is_success() {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::api::retry_secs(wait)),
        );
    }
    response
}

/// The non-empty trimmed lines of a text area, each once.
fn lines(s: &str) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for l in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.iter().any(|o| o == l) {
            out.push(l.to_owned());
        }
    }
    out
}

/// Whether `s` is exactly a web origin, `scheme://host[:port]` with http(s).
fn is_origin(s: &str) -> bool {
    match oxide_auth::frontends::dev::Url::parse(s) {
        Ok(u) => matches!(u.scheme(), "https" | "http") && u.origin().ascii_serialization() == s,
        Err(_) => false,
    }
}

/// Checks a submitted form. `existing` is the client a change form edits; `known`
/// the scopes the form may give ([`scopes_for`]), of which `privileged` are given
/// only by name and never to a public client (an empty field means the ordinary
/// ones).
pub(crate) fn validate(
    form: &AppForm,
    secret: &ClientSecret,
    existing: Option<&Client>,
    known: &Scope,
    privileged: &Scope,
    audience: Audience,
) -> Result<Valid, FormErrors> {
    let mut errors = FormErrors::default();
    let name = form.name.trim();
    if name.is_empty() {
        errors.add("name", "This field may not be blank.");
    } else if name.chars().count() > MAX_NAME {
        errors.add("name", format!("At most {MAX_NAME} characters."));
    } else if name.chars().any(char::is_control) {
        errors.add("name", "The name may not contain control characters.");
    }

    let client_id = match existing {
        Some(c) => Some(c.client_id.clone()),
        None => {
            let id = form.client_id.trim();
            if id.is_empty() {
                None
            } else if id.len() > MAX_CLIENT_ID {
                errors.add("client_id", format!("At most {MAX_CLIENT_ID} characters."));
                None
            } else if RESERVED.contains(&id) {
                errors.add(
                    "client_id",
                    "This id is the address of a page: choose another.",
                );
                None
            } else if !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                errors.add("client_id", "Use letters, digits, “-”, “_” and “.” only.");
                None
            } else {
                Some(id.to_owned())
            }
        }
    };

    let kind = match form.client_type.as_str() {
        "confidential" => Some(ClientKind::Confidential),
        "public" => Some(ClientKind::Public),
        _ => {
            errors.add("client_type", "Select confidential or public.");
            None
        }
    };

    let mut grant_types = vec![];
    for g in &form.grant_types {
        match g.parse::<GrantType>() {
            Ok(grant) => grant_types.push(grant),
            Err(_) => errors.add("grant_types", "Select a valid grant type."),
        }
    }
    if form.grant_types.is_empty() {
        errors.add("grant_types", "Tick at least one grant type.");
    }
    if audience == Audience::Owner
        && grant_types.contains(&GrantType::Password)
        && !existing.is_some_and(|c| c.allows(GrantType::Password))
    {
        errors.add(
            "grant_types",
            "Only staff may allow the password grant: it hands users' passwords to the application.",
        );
    }
    if kind == Some(ClientKind::Public) && grant_types.contains(&GrantType::ClientCredentials) {
        errors.add(
            "grant_types",
            "The client credentials grant needs a confidential client (RFC 6749 §4.4).",
        );
    }

    let typed = secret.secret();
    let secret = match kind {
        Some(ClientKind::Public) if !typed.is_empty() => {
            errors.add(
                "client_secret",
                "A public client has no secret: leave this empty.",
            );
            SecretChange::None
        }
        Some(ClientKind::Public) | None => SecretChange::None,
        Some(ClientKind::Confidential) if typed.is_empty() => {
            if existing.is_some_and(|c| c.secret_hash.is_some()) {
                SecretChange::Keep
            } else {
                SecretChange::Generate
            }
        }
        Some(ClientKind::Confidential) => {
            if typed.chars().count() > MAX_SECRET {
                errors.add("client_secret", format!("At most {MAX_SECRET} characters."));
            } else if typed.chars().any(char::is_control) {
                errors.add(
                    "client_secret",
                    "The secret may not contain control characters.",
                );
            }
            SecretChange::Typed(ClientSecret::new(typed))
        }
    };

    let redirect_uris = lines(&form.redirect_uris);
    for uri in &redirect_uris {
        if let Err(why) = validate_redirect_uri(uri) {
            errors.add("redirect_uris", format!("{uri}: {why}"));
        }
    }
    if redirect_uris.is_empty() && grant_types.contains(&GrantType::AuthorizationCode) {
        errors.add(
            "redirect_uris",
            "The authorization code grant needs at least one redirect URI.",
        );
    }

    let allowed_origins = lines(&form.allowed_origins);
    for origin in &allowed_origins {
        if !is_origin(origin) {
            errors.add(
                "allowed_origins",
                format!(
                    "{origin}: an origin is scheme://host[:port] with https or http, in lower case and without a path, as https://app.example.com."
                ),
            );
        }
    }

    let scope = if form.scope.trim().is_empty() {
        without(known, privileged)
    } else {
        match form
            .scope
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .parse::<Scope>()
        {
            Ok(s) => {
                for t in s.iter().filter(|t| !known.contains(t)) {
                    if privileged.contains(t) {
                        errors.add(
                            "scope",
                            format!("“{t}” is a privileged scope: only staff can give it to an application."),
                        );
                    } else {
                        errors.add(
                            "scope",
                            format!("Unknown scope “{t}”: choose from {known}."),
                        );
                    }
                }
                if kind == Some(ClientKind::Public) {
                    for t in s.iter().filter(|t| privileged.contains(t)) {
                        errors.add(
                            "scope",
                            format!("“{t}” is a privileged scope: a public client never gets it (it cannot keep a secret)."),
                        );
                    }
                }
                s
            }
            Err(e) => {
                errors.add("scope", e.to_string());
                Scope::empty()
            }
        }
    };

    let skip_authorization = match audience {
        Audience::Staff => form.skip_authorization,
        Audience::Owner => existing.is_some_and(|c| c.skip_authorization),
    };

    match kind {
        Some(kind) if errors.is_empty() => Ok(Valid {
            name: name.to_owned(),
            client_id,
            kind,
            grant_types,
            redirect_uris,
            allowed_origins,
            scope,
            skip_authorization,
            secret,
        }),
        _ => Err(errors),
    }
}

/// A client id as one path segment: letters, digits, `-`, `_`, `.` and `~` as
/// they are, anything else percent-encoded (ids registered elsewhere may hold any
/// character).
pub(crate) fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A registration's fields as the pages show them.
#[derive(Debug)]
pub(crate) struct Facts {
    pub(crate) name: String,
    pub(crate) client_id: String,
    pub(crate) kind: &'static str,
    pub(crate) grants: String,
    pub(crate) redirect_uris: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
    /// The registered scopes, each marked privileged or not.
    pub(crate) scopes: Vec<ScopeMark>,
    /// What an empty registration gives: the server's ordinary scopes.
    pub(crate) ordinary: String,
    pub(crate) skip_authorization: bool,
    pub(crate) created: String,
    /// The path segment of the client id.
    pub(crate) segment: String,
}

impl Facts {
    pub(crate) fn of(c: &Client, app: &AppState) -> Self {
        Self {
            name: c.name.clone(),
            client_id: c.client_id.clone(),
            kind: c.kind.as_str(),
            grants: c
                .grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            redirect_uris: c.redirect_uris.clone(),
            allowed_origins: c.allowed_origins.clone(),
            scopes: ScopeMark::all(&c.allowed_scope, app),
            ordinary: scope_policy::ordinary(app).to_string(),
            skip_authorization: c.skip_authorization,
            created: crate::admin::when(c.created_at),
            segment: path_segment(&c.client_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Scope {
        "read write introspection".parse().unwrap_or_default()
    }

    fn privileged() -> Scope {
        "introspection admin".parse().unwrap_or_default()
    }

    fn form(pairs: &[(&str, &str)]) -> (AppForm, ClientSecret) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        AppForm::parse(body.as_bytes())
    }

    fn errors_of(pairs: &[(&str, &str)]) -> FormErrors {
        let (f, s) = form(pairs);
        match validate(&f, &s, None, &known(), &privileged(), Audience::Staff) {
            Ok(_) => FormErrors::default(),
            Err(e) => e,
        }
    }

    #[test]
    fn the_seed_client_is_valid() {
        let (f, s) = form(&[
            ("name", "resource-server"),
            ("client_id", "rs-id"),
            ("client_secret", "rs-secret"),
            ("client_type", "confidential"),
            ("grant_types", "password"),
            ("scope", "read write introspection"),
        ]);
        let v = validate(&f, &s, None, &known(), &privileged(), Audience::Staff);
        assert!(v.is_ok(), "{v:?}");
    }

    #[test]
    fn each_rule() {
        let base = [
            ("name", "x"),
            ("client_type", "confidential"),
            ("grant_types", "authorization_code"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = base.to_vec();
            p.extend_from_slice(extra);
            errors_of(&p)
        };
        assert!(!with(&[]).of("redirect_uris").is_empty());
        for bad in [
            "javascript:alert(1)",
            "http://evil.example/cb",
            "https://a.example/cb#f",
        ] {
            assert!(
                !with(&[("redirect_uris", bad)])
                    .of("redirect_uris")
                    .is_empty(),
                "{bad}"
            );
        }
        let ok = [(
            "redirect_uris",
            "https://a.example/cb\r\nhttp://127.0.0.1/cb",
        )];
        assert!(with(&ok).is_empty());
        assert!(
            !with(&[
                ("redirect_uris", "https://a.example/cb"),
                ("scope", "read admin")
            ])
            .of("scope")
            .is_empty()
        );
        assert!(
            !with(&[
                ("redirect_uris", "https://a.example/cb"),
                ("client_id", "a b")
            ])
            .of("client_id")
            .is_empty()
        );
        for bad in [
            "https://a.example/",
            "https://a.example/x",
            "ftp://a.example",
            "a.example",
        ] {
            assert!(
                !with(&[
                    ("redirect_uris", "https://a.example/cb"),
                    ("allowed_origins", bad)
                ])
                .of("allowed_origins")
                .is_empty(),
                "{bad}"
            );
        }
        let public = errors_of(&[
            ("name", "x"),
            ("client_type", "public"),
            ("grant_types", "password"),
            ("client_secret", "s"),
        ]);
        assert!(!public.of("client_secret").is_empty());
        assert!(
            !errors_of(&[("name", "x"), ("client_type", "public")])
                .of("grant_types")
                .is_empty()
        );
    }

    #[test]
    fn owners_cannot_skip_consent() {
        let (f, s) = form(&[
            ("name", "x"),
            ("client_type", "public"),
            ("grant_types", "refresh_token"),
            ("skip_authorization", "on"),
        ]);
        let v = validate(&f, &s, None, &known(), &privileged(), Audience::Owner);
        assert!(v.is_ok_and(|v| !v.skip_authorization));
    }

    #[test]
    fn owners_cannot_allow_the_password_grant() {
        let (f, s) = form(&[
            ("name", "x"),
            ("client_type", "confidential"),
            ("grant_types", "password"),
        ]);
        let Err(errors) = validate(&f, &s, None, &known(), &privileged(), Audience::Owner) else {
            panic!("accepted");
        };
        assert!(errors.of("grant_types")[0].starts_with("Only staff may allow the password grant"));
        assert!(validate(&f, &s, None, &known(), &privileged(), Audience::Staff).is_ok());
    }

    #[test]
    fn segments() {
        assert_eq!(path_segment("rs-id_1.x~"), "rs-id_1.x~");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}
