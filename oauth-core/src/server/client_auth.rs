//! Client authentication (RFC 6749 §2.3): HTTP Basic or `client_id`/`client_secret`
//! in the body, checked against the registry's scrypt hash — once. A successful check
//! is remembered for a while under a digest of (client id, secret, stored hash), so
//! the per-request cost is a SHA-256 and a cache probe, not a KDF; changing the
//! secret changes the stored hash and so retires every remembered success.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::error::OAuthError;
use crate::password::PasswordHasher;
use crate::secret::{ClientSecret, Password};
use crate::store::{Client, ClientKind, ClientRegistry};

/// How the client presented itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Basic,
    Body,
}

/// Credentials as presented, not yet checked.
#[derive(Debug, Clone)]
pub(crate) struct Presented {
    pub(crate) client_id: String,
    pub(crate) secret: Option<ClientSecret>,
    pub(crate) method: Method,
}

/// Decodes one RFC 6749 §2.3.1 component (`application/x-www-form-urlencoded`).
fn form_decode(s: &str) -> String {
    // Nothing to decode (the usual case): the component as it is.
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return s.to_owned();
    }
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Reads client credentials from the `Authorization: Basic` header and the body.
///
/// `header` is the raw `Authorization` value; other schemes than Basic are ignored
/// here. Returns `Ok(None)` when the request carries no client identification.
pub(crate) fn presented(
    header: Option<&str>,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<Option<Presented>, OAuthError> {
    let basic = header
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, creds)| creds.trim());
    if let Some(encoded) = basic {
        let decoded = STANDARD
            .decode(encoded)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| OAuthError::invalid_client(true))?;
        let (id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| OAuthError::invalid_client(true))?;
        let id = form_decode(id);
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "Use only one client authentication method.",
            ));
        }
        if body_id.is_some_and(|b| b != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the authenticated client.",
            ));
        }
        return Ok(Some(Presented {
            client_id: id,
            secret: Some(ClientSecret::new(form_decode(secret))),
            method: Method::Basic,
        }));
    }
    Ok(body_id.map(|id| Presented {
        client_id: id.to_owned(),
        secret: body_secret.map(ClientSecret::from),
        method: Method::Body,
    }))
}

/// Checks presented credentials against the registry.
///
/// Registrations are remembered for a short while too (30 s by default), so a busy
/// client costs no registry query per request; a changed secret, a deleted client
/// or a new grant type take effect within that time.
#[derive(Clone)]
pub(crate) struct ClientAuthenticator {
    registry: Arc<dyn ClientRegistry>,
    hasher: PasswordHasher,
    verified: moka::future::Cache<[u8; 32], ()>,
    clients: Option<moka::sync::Cache<String, Arc<Client>>>,
}

/// Why a secret check did not succeed (never cached).
#[derive(Debug)]
enum Check {
    Mismatch,
    /// Kept typed: a full KDF queue is answered 503, not 500.
    Failed(crate::password::PasswordError),
}

impl std::fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("cached", &self.verified.entry_count())
            .finish_non_exhaustive()
    }
}

impl ClientAuthenticator {
    pub(crate) fn new(
        registry: Arc<dyn ClientRegistry>,
        hasher: PasswordHasher,
        remember: Duration,
        registrations: Duration,
    ) -> Self {
        Self {
            registry,
            hasher,
            verified: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(remember)
                .build(),
            clients: (!registrations.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(10_000)
                    .time_to_live(registrations)
                    .build()
            }),
        }
    }

    /// The registration, from the short-lived cache or the registry. Unknown ids are
    /// not cached, so random ids cannot fill the cache. Shared, not copied: a
    /// registration holds a dozen strings.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, OAuthError> {
        if let Some(c) = self.clients.as_ref().and_then(|cache| cache.get(client_id)) {
            return Ok(Some(c));
        }
        let client = self
            .registry
            .client(client_id)
            .await
            .map_err(|e| OAuthError::internal(&e))?
            .map(Arc::new);
        if let (Some(cache), Some(c)) = (&self.clients, &client) {
            cache.insert(client_id.to_owned(), c.clone());
        }
        Ok(client)
    }

    /// The registry itself, for the pages that register, change and delete clients;
    /// they call [`forget`](Self::forget) after each change.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn registry(&self) -> &dyn ClientRegistry {
        self.registry.as_ref()
    }

    /// Drops the cached registration of `client_id`, so a changed or deleted client
    /// (a new secret, fewer grant types) is read from the registry at its next
    /// request on this instance instead of up to the cache's lifetime later.
    /// Remembered secret checks need no purge: their key holds the stored hash.
    pub(crate) fn forget(&self, client_id: &str) {
        if let Some(cache) = &self.clients {
            cache.invalidate(client_id);
        }
    }

    /// Forgets every cached registration.
    pub(crate) fn forget_all(&self) {
        if let Some(cache) = &self.clients {
            cache.invalidate_all();
        }
    }

    /// See [`ClientRegistry::origin_allowed`]; a failing registry is logged and
    /// answers no.
    pub(crate) async fn origin_allowed(&self, origin: &str) -> Result<bool, ()> {
        self.registry.origin_allowed(origin).await.map_err(|e| {
            tracing::error!(error = %e, "origin lookup failed");
        })
    }

    fn cache_key(client_id: &str, secret: &ClientSecret, stored: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [client_id, secret.secret(), stored] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// The client, when these very credentials were verified a moment ago (the
    /// remembered-success cache): no KDF run, no throttle probe, one registration
    /// lookup (usually cached) and one digest. `None` means "not known": the caller
    /// goes on to [`authenticate`](Self::authenticate), which decides.
    pub(crate) async fn remembered(&self, p: &Presented) -> Option<Arc<Client>> {
        let secret = p.secret.as_ref()?;
        let client = self.client(&p.client_id).await.ok()??;
        if client.kind != ClientKind::Confidential {
            return None;
        }
        let stored = client.secret_hash.as_deref()?;
        let key = Self::cache_key(&client.client_id, secret, stored);
        self.verified.contains_key(&key).then_some(client)
    }

    /// The authenticated client, or `invalid_client`. Unknown client and wrong secret
    /// are answered alike, and both pay one KDF run.
    pub(crate) async fn authenticate(&self, p: &Presented) -> Result<Arc<Client>, OAuthError> {
        let fail = || OAuthError::invalid_client(p.method == Method::Basic);
        let client = self.client(&p.client_id).await?;
        let (client, secret) = match (client, &p.secret) {
            // A public client identifies itself without a secret (RFC 6749 §2.1).
            (Some(c), None) if c.kind == ClientKind::Public => return Ok(c),
            (Some(c), Some(secret))
                if c.kind == ClientKind::Confidential && c.secret_hash.is_some() =>
            {
                (c, secret)
            }
            (_, Some(secret)) => {
                self.burn(secret).await;
                return Err(fail());
            }
            (_, None) => return Err(fail()),
        };
        let stored = client.secret_hash.as_deref().unwrap_or_default();
        let key = Self::cache_key(&client.client_id, secret, stored);
        // A success remembered was answered by `remembered` before this; one
        // remembered since is returned by `try_get_with` without a KDF run.
        // Concurrent first requests of one client wait for a single KDF run instead
        // of each paying one (a herd of them would otherwise queue for seconds).
        let check = self
            .verified
            .try_get_with(key, async {
                match self
                    .hasher
                    .verify(&Password::new(secret.secret()), Some(stored))
                    .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Check::Mismatch),
                    Err(e) => Err(Check::Failed(e)),
                }
            })
            .await;
        match check {
            Ok(()) => {
                // Only a secret in another format (imported from Django) is
                // replaced: a generated secret's entropy, not its KDF cost, is
                // what protects it, so older scrypt parameters can stay.
                if !stored.starts_with("$scrypt$") && self.hasher.needs_rehash(stored) {
                    self.upgrade_secret(&client.client_id, secret, stored.to_owned());
                }
                Ok(client)
            }
            Err(e) => match &*e {
                Check::Mismatch => Err(fail()),
                Check::Failed(cause) => Err(OAuthError::internal(cause)),
            },
        }
    }

    /// Replaces a secret hash of another format (a secret imported from Django)
    /// with the configured scrypt, after the answer has gone out — unless the
    /// secret changed meanwhile.
    fn upgrade_secret(&self, client_id: &str, secret: &ClientSecret, stored: String) {
        let this = self.clone();
        let client_id = client_id.to_owned();
        let secret = Password::new(secret.secret());
        tokio::spawn(async move {
            let new = match this.hasher.hash_client_secret(&secret).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "could not upgrade a client secret hash");
                    return;
                }
            };
            match this.registry.client(&client_id).await {
                Ok(Some(mut c)) if c.secret_hash.as_deref() == Some(stored.as_str()) => {
                    c.secret_hash = Some(new);
                    match this.registry.update_client(c).await {
                        Ok(()) => this.forget(&client_id),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not upgrade a client secret hash")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not upgrade a client secret hash"),
            }
        });
    }

    /// One dummy KDF run, so a failure for an unknown client costs what a wrong secret costs.
    async fn burn(&self, secret: &ClientSecret) {
        let _ = self
            .hasher
            .verify(&Password::new(secret.secret()), None)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::OAuthErrorCode;

    #[test]
    fn basic_components_are_form_decoded() {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
        let header = format!("Basic {}", STANDARD.encode("my%20client:p%3Ass+word"));
        let p = presented(Some(&header), None, None).unwrap().unwrap();
        assert_eq!(p.client_id, "my client");
        assert_eq!(p.secret.unwrap().secret(), "p:ss word");
        assert_eq!(p.method, Method::Basic);
    }

    #[test]
    fn one_method_only() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let e = presented(Some(&header), Some("a"), Some("b")).unwrap_err();
        assert_eq!(e.code(), OAuthErrorCode::InvalidRequest);
        assert!(presented(Some(&header), Some("a"), None).is_ok());
        let e = presented(Some(&header), Some("other"), None).unwrap_err();
        assert_eq!(e.code(), OAuthErrorCode::InvalidRequest);
        let e = presented(Some("Basic !!!"), None, None).unwrap_err();
        assert_eq!(e.code(), OAuthErrorCode::InvalidClient);
        assert!(presented(Some("Bearer xyz"), None, None).unwrap().is_none());
        let body = presented(None, Some("id"), Some("s")).unwrap().unwrap();
        assert_eq!(body.method, Method::Body);
    }
}

#[cfg(test)]
mod properties {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::{Method, presented};
    use crate::test_inputs::{CASES, nasty_string};

    fn form_encode(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Any `Authorization` header and body fields: an answer, never a panic.
        #[test]
        fn any_header_is_answered(
            header in prop_oneof![
                nasty_string(),
                nasty_string().prop_map(|s| format!("Basic {s}")),
                prop::collection::vec(any::<u8>(), 0..256)
                    .prop_map(|b| format!("basic  {} ", STANDARD.encode(b))),
            ],
            body_id in proptest::option::of(nasty_string()),
            body_secret in proptest::option::of(nasty_string()),
        ) {
            let _ = presented(Some(&header), body_id.as_deref(), body_secret.as_deref());
        }

        /// RFC 6749 §2.3.1: id and secret form-encoded, joined by `:`, base64 — decoded
        /// back to the same id and secret.
        #[test]
        fn basic_credentials_round_trip(id in nasty_string(), secret in nasty_string()) {
            let header = format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", form_encode(&id), form_encode(&secret)))
            );
            let p = presented(Some(&header), None, None)
                .expect("well-formed Basic credentials")
                .expect("credentials present");
            prop_assert_eq!(p.method, Method::Basic);
            prop_assert_eq!(&p.client_id, &id);
            prop_assert_eq!(p.secret.as_ref().map(|s| s.secret()), Some(secret.as_str()));
            // The same id in the body as well is allowed.
            prop_assert!(presented(Some(&header), Some(&id), None).is_ok());
        }
    }
}
