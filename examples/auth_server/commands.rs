//! The management commands and the demo seed.

use std::io::BufRead;

use oauth_core::sea::SeaOrmStore;
use oauth_core::{
    Client, ClientKind, ClientRegistry, Email, GrantType, NewUser, Password, PasswordHasher, Scope,
    StoreError, UserStore, generate_token,
};

use crate::Error;
use crate::config::Config;

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

/// `createclient`: registers a client and prints its secret once.
pub async fn create_client(
    store: &SeaOrmStore,
    config: &Config,
    args: &[String],
) -> Result<(), Error> {
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
    let grant_types = flag(args, "--grant-types")
        .unwrap_or("password,refresh_token")
        .split(',')
        .map(|g| {
            g.trim()
                .parse::<GrantType>()
                .map_err(|_| format!("unknown grant type {g:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let scope: Scope = flag(args, "--scope")
        .map_or_else(|| Ok(config.scopes.clone()), str::parse)
        .map_err(|e| format!("--scope: {e}"))?;
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
            redirect_uris: vec![],
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

/// On an empty database, registers the demo confidential client `rs-id` / `rs-secret`
/// (password and refresh grants, every configured scope), as the reference system has.
pub async fn seed_demo_client(store: &SeaOrmStore, config: &Config) -> Result<(), Error> {
    if !store.list_clients(0, 1).await?.is_empty() {
        return Ok(());
    }
    let hash = PasswordHasher::new(config.scrypt)?
        .hash(&Password::new("rs-secret"))
        .await?;
    let client = Client {
        client_id: "rs-id".into(),
        secret_hash: Some(hash),
        kind: ClientKind::Confidential,
        name: "Demo resource server".into(),
        grant_types: vec![GrantType::Password, GrantType::RefreshToken],
        redirect_uris: vec![],
        allowed_scope: config.scopes.clone(),
        default_scope: config.scopes.clone(),
        owner: None,
        created_at: chrono::Utc::now(),
    };
    match store.register_client(client).await {
        // Another instance seeded it first.
        Ok(()) | Err(StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        "empty database: registered the demo client rs-id / rs-secret (password and refresh grants). Try:\n  \
         curl -s -X POST {base}/users/signup/ -H 'Content-Type: application/json' -d '{{\"email\":\"ann@example.com\",\"password\":\"plum-violet-92\",\"password2\":\"plum-violet-92\"}}'\n  \
         curl -s -X POST {base}/o/token/ -u rs-id:rs-secret -d grant_type=password -d username=ann@example.com -d password=plum-violet-92",
        base = config.issuer_url
    );
    Ok(())
}
