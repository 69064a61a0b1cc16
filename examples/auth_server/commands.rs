//! The management commands and the demo seed.

use std::io::BufRead;

use oauth_core::sea::SeaOrmStore;
use oauth_core::{
    Client, ClientKind, ClientRegistry, Email, GrantType, NewUser, Password, PasswordHasher, Scope,
    StoreError, UserStore, generate_token,
};

use crate::Error;
use crate::config::Config;
use crate::demo_seed::{self, DEMO_APP, DEMO_REDIRECT};

/// The value after `--name` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn prompt(question: &str) -> Result<String, Error> {
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `createsuperuser [--email EMAIL]`: a staff superuser. The password comes from
/// `SUPERUSER_PASSWORD` or the next line of standard input.
pub async fn create_superuser(
    store: &SeaOrmStore,
    config: &Config,
    args: &[String],
) -> Result<(), Error> {
    let email = match flag(args, "--email") {
        Some(e) => e.to_owned(),
        None => prompt("Email address: ")?,
    };
    let email = Email::parse(&email).map_err(|e| format!("email: {e}"))?;
    let password = match std::env::var("SUPERUSER_PASSWORD") {
        Ok(p) => p,
        Err(_) => prompt("Password (shown as typed; pipe it in to keep it off screen): ")?,
    };
    let problems = oauth_core::PasswordPolicy::default().check(&password, Some(email.as_str()));
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("password: {}", list.join(" ")).into());
    }
    let hash = PasswordHasher::new(config.scrypt)?
        .hash(&Password::new(password))
        .await?;
    let mut user = NewUser::new(email, hash, chrono::Utc::now());
    user.is_staff = true;
    user.is_superuser = true;
    match store.create_user(user).await {
        Ok(u) => {
            println!("Superuser {} created (id {}).", u.email, u.id);
            Ok(())
        }
        Err(StoreError::Conflict) => Err("a user with that email already exists".into()),
        Err(e) => Err(e.into()),
    }
}

/// Every value of a repeatable flag.
fn flags<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .collect()
}

/// Refuses flags `createclient` does not know, so a typo is not silently ignored.
fn known_flags(args: &[String]) -> Result<(), Error> {
    const WITH_VALUE: [&str; 7] = [
        "--id",
        "--name",
        "--grant",
        "--grant-types",
        "--redirect-uri",
        "--allowed-origin",
        "--scope",
    ];
    const SWITCHES: [&str; 2] = ["--public", "--skip-authorization"];
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        if WITH_VALUE.contains(&arg.as_str()) {
            if args.get(i + 1).is_none() {
                return Err(format!("{arg} needs a value").into());
            }
            i += 2;
        } else if SWITCHES.contains(&arg.as_str()) {
            i += 1;
        } else {
            return Err(format!(
                "unknown argument {arg:?}; createclient takes {} VALUE and {}",
                WITH_VALUE.join(" VALUE, "),
                SWITCHES.join(", ")
            )
            .into());
        }
    }
    Ok(())
}

/// `createclient`: registers a client and prints its secret once.
///
/// `--grant G` (repeatable; also `--grant-types a,b`) — default `password` and
/// `refresh_token`, or `authorization_code` and `refresh_token` when a redirect URI
/// is given; `--redirect-uri URI` and `--allowed-origin ORIGIN` are repeatable;
/// `--scope` defaults to the ordinary scopes (`SCOPES` less `PRIVILEGED_SCOPES`),
/// and a public client is refused a privileged one.
pub async fn create_client(
    store: &SeaOrmStore,
    config: &Config,
    args: &[String],
) -> Result<(), Error> {
    known_flags(args)?;
    let public = args.iter().any(|a| a == "--public");
    let client_id = match flag(args, "--id") {
        Some(id) => id.to_owned(),
        // Letters and digits only, so the id never looks like a command-line flag.
        None => generate_token()?
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect(),
    };
    let redirect_uris: Vec<String> = flags(args, "--redirect-uri")
        .into_iter()
        .map(|u| {
            oauth_core::server::authorization::validate_redirect_uri(u)
                .map(|()| u.to_owned())
                .map_err(|e| format!("--redirect-uri {u}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let allowed_origins: Vec<String> = flags(args, "--allowed-origin")
        .into_iter()
        .map(|o| {
            let valid = (o.starts_with("https://") || o.starts_with("http://"))
                && o.matches('/').count() == 2;
            valid
                .then(|| o.to_owned())
                .ok_or_else(|| format!("--allowed-origin {o}: an origin is scheme://host[:port]"))
        })
        .collect::<Result<_, _>>()?;
    let mut named: Vec<&str> = flags(args, "--grant");
    for list in flags(args, "--grant-types") {
        named.extend(list.split(',').map(str::trim));
    }
    if named.is_empty() {
        named = if redirect_uris.is_empty() {
            vec!["password", "refresh_token"]
        } else {
            vec!["authorization_code", "refresh_token"]
        };
    }
    let mut grant_types = Vec::new();
    for g in named {
        let grant = g
            .parse::<GrantType>()
            .map_err(|_| format!("unknown grant type {g:?}"))?;
        if !grant_types.contains(&grant) {
            grant_types.push(grant);
        }
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err("the authorization_code grant needs at least one --redirect-uri".into());
    }
    // Without --scope: the ordinary scopes. A privileged one (PRIVILEGED_SCOPES) only
    // by name, and never for a public client.
    let scope: Scope = flag(args, "--scope")
        .map_or_else(|| Ok(config.ordinary_scopes()), str::parse)
        .map_err(|e| format!("--scope: {e}"))?;
    if let Some(t) = scope
        .iter()
        .find(|t| public && config.privileged_scopes.contains(t))
    {
        return Err(format!(
            "--scope: {t} is a privileged scope (PRIVILEGED_SCOPES): a public client never gets it"
        )
        .into());
    }
    let secret = (!public).then(generate_token).transpose()?;
    let secret_hash = match &secret {
        Some(s) => Some(
            PasswordHasher::new(config.scrypt)?
                .hash(&Password::new(s.as_str()))
                .await?,
        ),
        None => None,
    };
    store
        .register_client(Client {
            client_id: client_id.clone(),
            secret_hash,
            kind: if public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            name: flag(args, "--name").unwrap_or(&client_id).to_owned(),
            grant_types,
            redirect_uris,
            allowed_origins,
            skip_authorization: args.iter().any(|a| a == "--skip-authorization"),
            allowed_scope: scope.clone(),
            default_scope: scope,
            owner: None,
            created_at: chrono::Utc::now(),
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict => "a client with that id already exists".into(),
            other => Error::from(other),
        })?;
    println!("client_id:     {client_id}");
    match secret {
        Some(s) => println!("client_secret: {s}\n(shown once: only its hash is stored)"),
        None => println!("public client: no secret"),
    }
    Ok(())
}

/// On an empty database, registers the demo clients ([`demo_seed::demo_clients`]):
/// the confidential `rs-id` / `rs-secret` (password and refresh grants, every
/// configured scope, as the reference system has; also the authorization code grant
/// with the redirect URI of the resource server's items console under
/// `RESOURCE_SERVER_URL`, first-party), and
/// the public `demo-app` (authorization code + PKCE, redirect URI
/// `http://127.0.0.1:8765/callback`, scopes `read write`, consent asked).
pub async fn seed_demo_clients(store: &SeaOrmStore, config: &Config) -> Result<(), Error> {
    if !store.list_clients(0, 1).await?.is_empty() {
        return Ok(());
    }
    let hash = PasswordHasher::new(config.scrypt)?
        .hash(&Password::new(demo_seed::RS_SECRET))
        .await?;
    let clients = demo_seed::demo_clients(
        hash,
        &config.scopes,
        &config.resource_server_url,
        chrono::Utc::now(),
    );
    for client in clients {
        match store.register_client(client).await {
            // Another instance seeded it first.
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(
        "empty database: registered the demo clients rs-id / rs-secret (password and refresh grants; authorization code for the resource server's console) and demo-app (public, authorization code + PKCE). Try:\n  \
         curl -s -X POST {base}/users/signup/ -H 'Content-Type: application/json' -d '{{\"email\":\"ann@example.com\",\"password\":\"plum-violet-92\",\"password2\":\"plum-violet-92\"}}'\n  \
         curl -s -X POST {base}/o/token/ -u rs-id:rs-secret -d grant_type=password -d username=ann@example.com -d password=plum-violet-92",
        base = config.issuer_url
    );
    Ok(())
}

/// When `demo-app` is registered, logs an authorization URL to open in a browser,
/// with a fresh PKCE pair (RFC 7636) and the matching token request.
pub async fn log_demo_authorization(store: &SeaOrmStore, config: &Config) -> Result<(), Error> {
    if store.client(DEMO_APP).await?.is_none() {
        return Ok(());
    }
    let verifier = generate_token()?;
    let challenge = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()))
    };
    let state = &generate_token()?[..16];
    let base = config.issuer_url.trim_end_matches('/');
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", DEMO_APP),
            ("redirect_uri", DEMO_REDIRECT),
            ("scope", "read write"),
            ("state", state),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    tracing::info!(
        "demo authorization code flow: open\n  {base}/o/authorize/?{query}\n\
         sign in, allow, copy `code` from the address bar (the page itself will not load), then:\n  \
         curl -s -X POST {base}/o/token/ -d grant_type=authorization_code -d client_id={DEMO_APP} \
         -d redirect_uri={DEMO_REDIRECT} -d code_verifier={verifier} -d code=CODE"
    );
    Ok(())
}
