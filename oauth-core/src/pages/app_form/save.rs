//! The store operations behind the registration form's actions — register,
//! update, rotate the secret, delete — and the end of each: the admin log, then
//! either the flash message and the redirect or, when a secret was generated,
//! the secret handed back for the POST's own answer.

use axum::response::Response;
use tower_sessions::Session;

use super::{SecretChange, Valid};
use crate::admin::{Change, FormErrors, done, log, log_and_done};
use crate::pages::PagesState;
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
        .hash_client_secret(&Password::new(secret.0.secret()))
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
        changes.push(format!("tokens revoked: {n}"));
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

/// Voids the client's unexchanged codes, then revokes its tokens (a new secret,
/// another type, a deletion): a code issued just before, held by whoever held
/// the old credentials, must not buy tokens afterwards
/// (`GrantStore::void_client_codes`). The number of tokens revoked.
async fn revoke_tokens(pages: &PagesState, client_id: &str) -> Result<u64, Response> {
    if let Err(e) = pages.app.void_client_codes(client_id).await {
        return Err(pages.internal(&e).await);
    }
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
/// client, or hands back a newly generated secret for the caller to show.
pub(crate) async fn update_and_finish(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    valid: Valid,
    detail_prefix: &str,
    detail_path: fn(&str) -> String,
) -> Next {
    let saved = match update(pages, client, valid).await {
        Ok(s) => s,
        Err(r) => return Next::Go(r),
    };
    if saved.changes.is_empty() {
        let to = detail_path(&client.client_id);
        return Next::Go(done(pages, session, "No fields changed.".into(), &to).await);
    }
    let mut message = format!("The application “{}” was changed.", saved.client.name);
    if saved.revoked > 0 {
        message.push_str(&format!(" Tokens revoked: {}.", saved.revoked));
    }
    let outcome = Outcome {
        action: "change",
        client: &saved.client,
        secret: saved.generated,
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
    log_and_done(
        pages,
        session,
        me,
        Change {
            action: "delete",
            object_type: "application",
            object_id: &client.client_id,
            object_repr: &client.name,
            detail: format!("{detail_prefix}tokens revoked: {revoked}"),
        },
        format!("The application “{}” was deleted.", client.name),
        to,
    )
    .await
}

/// `POST …/rotate/` of both the console and the owner's pages: rotates, logs
/// (`detail_prefix` says who) and hands back the new secret for the caller to
/// show; a public client goes back to `to`.
pub(crate) async fn rotate_and_finish(
    pages: &PagesState,
    session: &Session,
    me: &User,
    client: &Client,
    detail_prefix: &str,
    to: String,
) -> Next {
    match rotate(pages, client).await {
        Ok(Some((secret, revoked))) => {
            let outcome = Outcome {
                action: "rotate",
                client,
                secret: Some(secret),
                detail: format!("{detail_prefix}secret rotated; tokens revoked: {revoked}"),
                message: format!(
                    "The secret of “{}” was rotated: the old one no longer works, tokens revoked: {revoked}.",
                    client.name
                ),
                to,
            };
            finish(pages, session, me, outcome).await
        }
        Ok(None) => Next::Go(
            done(
                pages,
                session,
                "A public client has no secret to rotate.".into(),
                &to,
            )
            .await,
        ),
        Err(r) => Next::Go(r),
    }
}

/// Voids the client's codes and revokes its tokens, then deletes it (the SQL
/// store deletes its tokens, codes and consents with it). The number of tokens
/// revoked.
pub(crate) async fn delete(pages: &PagesState, client: &Client) -> Result<u64, Response> {
    // Revoke first: a store without cascades (the in-memory one) keeps the rows,
    // and an exchange that authenticated the client just before the deletion
    // finds its code voided (or its tokens revoked) rather than live tokens.
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
    /// `create`, `change` or `rotate`.
    pub(crate) action: &'static str,
    pub(crate) client: &'a Client,
    /// A generated secret, to show in the answer to this POST.
    pub(crate) secret: Option<ClientSecret>,
    /// The log's detail (never a secret).
    pub(crate) detail: String,
    /// The flash message.
    pub(crate) message: String,
    /// Where to go next when there is no secret to show.
    pub(crate) to: String,
}

/// What answers an action's POST.
#[derive(Debug)]
pub(crate) enum Next {
    /// The redirect after a change (its message waits in the session as the
    /// next page's flash), or an error page.
    Go(Response),
    /// A secret was generated: the POST answers the client's page itself,
    /// showing it, so it is never written to the session or any other store.
    Show(Shown),
}

/// A generated secret to show once, with the client's page it belongs on.
#[derive(Debug)]
pub(crate) struct Shown {
    /// The client as saved.
    pub(crate) client: Client,
    /// The page's message (the action's flash).
    pub(crate) message: String,
    pub(crate) secret: ClientSecret,
}

/// Records the change in the admin log with `actor`, then either answers 303
/// with the message or, when a secret was generated, hands it back for the
/// caller to render the client's page with it ([`Next::Show`]).
pub(crate) async fn finish(
    pages: &PagesState,
    session: &Session,
    actor: &User,
    outcome: Outcome<'_>,
) -> Next {
    let client = outcome.client;
    let message = log(
        pages,
        actor,
        Change {
            action: outcome.action,
            object_type: "application",
            object_id: &client.client_id,
            object_repr: &client.name,
            detail: outcome.detail,
        },
        outcome.message,
    )
    .await;
    match outcome.secret {
        Some(secret) => Next::Show(Shown {
            client: client.clone(),
            message,
            secret,
        }),
        None => Next::Go(done(pages, session, message, &outcome.to).await),
    }
}
