//! The store operations behind the registration form's actions — register,
//! update, rotate the secret, delete — and the end of each: the admin log, the
//! generated secret kept for the next page, the flash message and the redirect.

use axum::response::Response;
use tower_sessions::Session;

use super::{SecretChange, Valid};
use crate::admin::{Change, FormErrors, done, log_and_done};
use crate::pages::PagesState;
use crate::pages::session::SessionError;
use crate::scope::Scope;
use crate::secret::{ClientSecret, Password};
use crate::store::{Client, ClientKind, StoreError, User, UserId};
use crate::token::generate_token;

/// A saved registration, with the generated secret to show once, if any.
#[derive(Debug)]
pub(crate) struct Saved {
    pub(crate) client: Client,
    pub(crate) generated: Option<ClientSecret>,
    /// Tokens revoked because the credentials changed.
    pub(crate) revoked: u64,
    /// What changed, for the log (never a secret).
    pub(crate) changes: Vec<String>,
}

/// The new secret and its hash for a change, or `None` to keep the stored one.
async fn new_secret(
    pages: &PagesState,
    change: SecretChange,
) -> Result<Option<(Option<String>, Option<ClientSecret>)>, Response> {
    let secret = match change {
        SecretChange::Keep => return Ok(None),
        SecretChange::None => return Ok(Some((None, None))),
        SecretChange::Typed(s) => (s, false),
        SecretChange::Generate => match generate_token() {
            Ok(s) => (ClientSecret::new(s), true),
            Err(e) => return Err(pages.internal(&e).await),
        },
    };
    let hash = match pages
        .app
        .hasher
        .hash(&Password::new(secret.0.secret()))
        .await
    {
        Ok(h) => h,
        Err(e) => return Err(pages.internal(&e).await),
    };
    Ok(Some((Some(hash), secret.1.then_some(secret.0))))
}

/// A client id of letters and digits, as `createclient` makes them.
fn generated_id() -> Result<String, crate::token::RandomnessUnavailable> {
    Ok(generate_token()?
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect())
}

/// Registers a validated add form for `owner`. A taken client id is a field
/// error; anything else that fails is the 500 page.
pub(crate) async fn register(
    pages: &PagesState,
    valid: Valid,
    owner: Option<UserId>,
) -> Result<Result<Saved, FormErrors>, Response> {
    let registry = pages.app.client_auth.registry();
    let client_id = match valid.client_id {
        Some(id) => id,
        None => match generated_id() {
            Ok(id) => id,
            Err(e) => return Err(pages.internal(&e).await),
        },
    };
    let taken = || {
        let mut errors = FormErrors::default();
        errors.add(
            "client_id",
            "An application with this client id already exists.",
        );
        errors
    };
    match registry.client(&client_id).await {
        Ok(Some(_)) => return Ok(Err(taken())),
        Ok(None) => {}
        Err(e) => return Err(pages.internal(&e).await),
    }
    let Some((secret_hash, generated)) = new_secret(pages, valid.secret).await? else {
        return Err(pages.internal(&"an add form kept a secret").await);
    };
    let client = Client {
        client_id: client_id.clone(),
        secret_hash,
        kind: valid.kind,
        name: valid.name,
        grant_types: valid.grant_types,
        redirect_uris: valid.redirect_uris,
        allowed_origins: valid.allowed_origins,
        skip_authorization: valid.skip_authorization,
        allowed_scope: valid.scope.clone(),
        default_scope: valid.scope,
        owner,
        created_at: pages.app.clock.now(),
    };
    match registry.register_client(client.clone()).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Ok(Err(taken())),
        Err(e) => return Err(pages.internal(&e).await),
    }
    // An unknown id is never cached, but a lookup racing this insert may be.
    pages.app.client_auth.forget(&client_id);
    let secret = match (&generated, client.kind) {
        (Some(_), _) => "secret generated",
        (None, ClientKind::Confidential) => "secret typed",
        (None, ClientKind::Public) => "no secret",
    };
    let changes = vec![format!("{}; {secret}", summary(&client))];
    Ok(Ok(Saved {
        client,
        generated,
        revoked: 0,
        changes,
    }))
}

/// A registration in a line of the log.
fn summary(c: &Client) -> String {
    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    format!(
        "{}; grants: {}; scope: {}; redirect URIs: {}; origins: {}; skip authorization: {}",
        c.kind.as_str(),
        grants.join(" "),
        c.allowed_scope,
        c.redirect_uris.join(" "),
        c.allowed_origins.join(" "),
        c.skip_authorization
    )
}

/// `default` narrowed to `allowed`; all of `allowed` when nothing is left.
fn narrow(default: &Scope, allowed: &Scope) -> Scope {
    let kept: Vec<&str> = default.iter().filter(|t| allowed.contains(t)).collect();
    if kept.is_empty() {
        return allowed.clone();
    }
    kept.join(" ").parse().unwrap_or_else(|_| allowed.clone())
}

/// Saves a validated change form over `old`. A new secret (typed, or generated
/// for a client made confidential) or a change of type revokes the client's
/// tokens.
pub(crate) async fn update(
    pages: &PagesState,
    old: &Client,
    valid: Valid,
) -> Result<Saved, Response> {
    let secret = new_secret(pages, valid.secret).await?;
    let mut client = Client {
        client_id: old.client_id.clone(),
        secret_hash: old.secret_hash.clone(),
        kind: valid.kind,
        name: valid.name,
        grant_types: valid.grant_types,
        redirect_uris: valid.redirect_uris,
        allowed_origins: valid.allowed_origins,
        skip_authorization: valid.skip_authorization,
        default_scope: narrow(&old.default_scope, &valid.scope),
        allowed_scope: valid.scope,
        owner: old.owner,
        created_at: old.created_at,
    };
    let mut generated = None;
    let mut changes = changed(old, &client);
    if let Some((hash, fresh)) = secret
        && (hash.is_some() || old.secret_hash.is_some())
    {
        client.secret_hash = hash;
        changes.push(
            match (&fresh, client.kind) {
                (Some(_), _) => "secret generated",
                (None, ClientKind::Confidential) => "secret replaced",
                (None, ClientKind::Public) => "secret removed",
            }
            .to_owned(),
        );
        generated = fresh;
    }
    let registry = pages.app.client_auth.registry();
    if let Err(e) = registry.update_client(client.clone()).await {
        return Err(pages.internal(&e).await);
    }
    pages.app.client_auth.forget(&client.client_id);
    let credentials_changed = client.secret_hash != old.secret_hash || client.kind != old.kind;
    let revoked = if credentials_changed {
        let n = revoke_tokens(pages, &client.client_id).await?;
        changes.push(format!("{n} tokens revoked"));
        n
    } else {
        0
    };
    Ok(Saved {
        client,
        generated,
        revoked,
        changes,
    })
}

/// The fields that differ, as `field: old → new` (no secret among them).
fn changed(old: &Client, new: &Client) -> Vec<String> {
    let mut out = vec![];
    let mut diff = |field: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{field}: {a} → {b}"));
        }
    };
    diff("name", old.name.clone(), new.name.clone());
    diff("type", old.kind.as_str().into(), new.kind.as_str().into());
    let grants = |c: &Client| {
        c.grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    diff("grants", grants(old), grants(new));
    diff(
        "redirect URIs",
        old.redirect_uris.join(" "),
        new.redirect_uris.join(" "),
    );
    diff(
        "origins",
        old.allowed_origins.join(" "),
        new.allowed_origins.join(" "),
    );
    diff(
        "scope",
        old.allowed_scope.to_string(),
        new.allowed_scope.to_string(),
    );
    diff(
        "skip authorization",
        old.skip_authorization.to_string(),
        new.skip_authorization.to_string(),
    );
    out
}

async fn revoke_tokens(pages: &PagesState, client_id: &str) -> Result<u64, Response> {
    let now = pages.app.clock.unix();
    match pages.app.tokens.revoke_client_tokens(client_id, now).await {
        Ok(n) => Ok(n),
        Err(e) => Err(pages.internal(&e).await),
    }
}

/// Gives a confidential client a new generated secret: the old one stops working
/// at once and every token of the client is revoked. The new secret and the
/// number of tokens revoked; `Ok(None)` for a public client, which has none.
pub(crate) async fn rotate(
    pages: &PagesState,
    client: &Client,
) -> Result<Option<(ClientSecret, u64)>, Response> {
    if client.kind != ClientKind::Confidential {
        return Ok(None);
    }
    let Some((hash, Some(secret))) = new_secret(pages, SecretChange::Generate).await? else {
        return Err(pages.internal(&"no secret generated").await);
    };
    let mut updated = client.clone();
    updated.secret_hash = hash;
    if let Err(e) = pages
        .app
        .client_auth
        .registry()
        .update_client(updated)
        .await
    {
        return Err(pages.internal(&e).await);
    }
    pages.app.client_auth.forget(&client.client_id);
    let revoked = revoke_tokens(pages, &client.client_id).await?;
    Ok(Some((secret, revoked)))
}

/// The end of a change form's POST on both the console and the owner's pages:
/// saves, then logs (`detail_prefix` says who) and goes to `detail_path` of the
/// client, showing a newly generated secret there once.
pub(crate) async fn update_and_finish(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    valid: Valid,
    detail_prefix: &str,
    detail_path: fn(&str) -> String,
) -> Response {
    let saved = match update(pages, client, valid).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if saved.changes.is_empty() {
        let to = detail_path(&client.client_id);
        return done(pages, session, "No fields changed.".into(), &to).await;
    }
    let mut message = format!("The application “{}” was changed.", saved.client.name);
    if saved.revoked > 0 {
        message.push_str(&format!(" Its {} tokens were revoked.", saved.revoked));
    }
    let outcome = Outcome {
        action: "change",
        client: &saved.client,
        secret: saved.generated.as_ref(),
        detail: format!("{detail_prefix}{}", saved.changes.join("; ")),
        message,
        to: detail_path(&saved.client.client_id),
    };
    finish(pages, session, me, outcome).await
}

/// The end of a delete confirmation on both the console and the owner's pages:
/// deletes, logs (`detail_prefix` says who), then goes to `to`.
pub(crate) async fn delete_and_finish(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    detail_prefix: &str,
    to: &str,
) -> Response {
    let revoked = match delete(pages, client).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let outcome = Outcome {
        action: "delete",
        client,
        secret: None,
        detail: format!("{detail_prefix}{revoked} tokens revoked"),
        message: format!("The application “{}” was deleted.", client.name),
        to: to.to_owned(),
    };
    finish(pages, session, me, outcome).await
}

/// `POST …/rotate/` of both the console and the owner's pages: rotates, then logs
/// (`detail_prefix` says who), shows the new secret once on `to`.
pub(crate) async fn rotate_and_finish(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    detail_prefix: &str,
    to: String,
) -> Response {
    match rotate(pages, client).await {
        Ok(Some((secret, revoked))) => {
            let outcome = Outcome {
                action: "rotate",
                client,
                secret: Some(&secret),
                detail: format!("{detail_prefix}secret rotated; {revoked} tokens revoked"),
                message: format!(
                    "The secret of “{}” was rotated: the old one no longer works, {revoked} tokens were revoked.",
                    client.name
                ),
                to,
            };
            finish(pages, session, me, outcome).await
        }
        Ok(None) => {
            done(
                pages,
                session,
                "A public client has no secret to rotate.".into(),
                &to,
            )
            .await
        }
        Err(r) => r,
    }
}

/// Revokes the client's tokens, then deletes it (the SQL store deletes its
/// tokens, codes and consents with it). The number of tokens revoked.
pub(crate) async fn delete(pages: &PagesState, client: &Client) -> Result<u64, Response> {
    // Revoke first: a store without cascades (the in-memory one) keeps the rows.
    let revoked = revoke_tokens(pages, &client.client_id).await?;
    if let Err(e) = pages
        .app
        .client_auth
        .registry()
        .delete_client(&client.client_id)
        .await
    {
        return Err(pages.internal(&e).await);
    }
    pages.app.client_auth.forget(&client.client_id);
    Ok(revoked)
}

/// The end of an action: what to log, the secret to show once, the message and
/// where to go.
#[derive(Debug)]
pub(crate) struct Outcome<'a> {
    /// `create`, `change`, `rotate` or `delete`.
    pub(crate) action: &'static str,
    pub(crate) client: &'a Client,
    /// A generated secret, for the next page of the client.
    pub(crate) secret: Option<&'a ClientSecret>,
    /// The log's detail (never a secret).
    pub(crate) detail: String,
    /// The flash message.
    pub(crate) message: String,
    /// Where to go next.
    pub(crate) to: String,
}

/// Keeps a generated secret for the next page, records the change in the admin
/// log with `actor`, and answers 303 with the message.
pub(crate) async fn finish(
    pages: &PagesState,
    session: &Session,
    actor: &User,
    outcome: Outcome<'_>,
) -> Response {
    let client = outcome.client;
    if let Some(s) = outcome.secret
        && let Err(e) = stash_secret(session, &client.client_id, s).await
    {
        return pages.internal(&e).await;
    }
    log_and_done(
        pages,
        session,
        actor,
        Change {
            action: outcome.action,
            object_type: "application",
            object_id: &client.client_id,
            object_repr: &client.name,
            detail: outcome.detail,
        },
        outcome.message,
        &outcome.to,
    )
    .await
}

/// The session key of a secret waiting to be shown.
const NEW_SECRET: &str = "new_client_secret";

/// Keeps a generated secret for the next page of `client_id`.
async fn stash_secret(
    session: &Session,
    client_id: &str,
    secret: &ClientSecret,
) -> Result<(), SessionError> {
    session
        .insert(NEW_SECRET, (client_id, secret.secret()))
        .await?;
    Ok(())
}

/// The waiting secret of `client_id`, removed from the session: it is shown once.
/// A secret waiting for another client is dropped too (it is never shown then).
pub(crate) async fn take_secret(
    session: &Session,
    client_id: &str,
) -> Result<Option<ClientSecret>, SessionError> {
    let waiting = session.remove::<(String, String)>(NEW_SECRET).await?;
    Ok(waiting
        .filter(|(id, _)| id == client_id)
        .map(|(_, secret)| ClientSecret::new(secret)))
}
