//! Password hashing (scrypt, PHC strings) and Django-compatible password validation.
//!
//! The front door is three calls on [`PasswordHasher`]: [`hash`](PasswordHasher::hash),
//! [`verify`](PasswordHasher::verify) and [`needs_rehash`](PasswordHasher::needs_rehash).
//! Hashing runs on a pool of low-priority threads as wide as the machine has CPUs,
//! never on the async runtime: each scrypt call holds `128·r·N` bytes for its whole
//! run, so a burst of a hundred logins queues instead of allocating gigabytes, and
//! the runtime keeps serving other requests first meanwhile. The queue is bounded
//! ([`PasswordHasher::with_limits`]; by default 8 waiting jobs per thread, at least
//! 64): past it a call fails at once with [`PasswordError::Overloaded`], which the
//! endpoints answer with 503 and `Retry-After` — load shedding instead of unbounded
//! memory and latency.
//!
//! Sign-ins keep a share of the pool of their own: client secrets, hashed when an
//! application is registered or its secret changed or rotated
//! ([`hash_client_secret`](PasswordHasher::hash_client_secret)), run on at most
//! `width − 1` of the threads (one when the width is one), behind any waiting
//! password check, and wait in a queue of their own; so a flood of them can never
//! make a sign-in wait for more than the one run it finds under way, nor answer 503.

#[cfg(feature = "django")]
mod django;
mod pool;
mod validation;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use password_hash::phc::{Output, PasswordHash, Salt};
use password_hash::{CustomizedPasswordHasher as _, PasswordVerifier as _};
use scrypt::Scrypt;

#[cfg(feature = "django")]
pub use django::django_algorithm;
pub use validation::{PasswordPolicy, PasswordProblem};

use crate::secret::Password;
use crate::token::{RandomnessUnavailable, fill_random};

/// scrypt cost parameters (RFC 7914 §2).
///
/// Memory per hash is `128 · r · 2^log_n` bytes; time grows linearly with `2^log_n · r · p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    /// log₂ of the CPU/memory cost `N`.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelization (computed sequentially here).
    pub p: u32,
}

impl ScryptParams {
    /// The production default: `N = 2^15, r = 8, p = 3`.
    ///
    /// This is one of the equivalent settings of the OWASP Password Storage Cheat
    /// Sheet: 32 MiB per hash (the 128 MiB of `Params::RECOMMENDED` times a few
    /// concurrent logins is too much for a small server) with the time made up by
    /// `p = 3`, about 0.2 s per hash on a current x86-64 core — less than Django's
    /// default PBKDF2 at 1,000,000 iterations.
    pub const PRODUCTION: Self = Self {
        log_n: 15,
        r: 8,
        p: 3,
    };

    /// Cheap parameters for tests and examples that create many users.
    /// Never use them for real passwords.
    pub const INSECURE_FAST: Self = Self {
        log_n: 4,
        r: 8,
        p: 1,
    };

    /// Bytes of memory one hash holds while it runs.
    #[must_use]
    pub fn memory_bytes(&self) -> u64 {
        (128u64 * u64::from(self.r)) << self.log_n
    }

    fn to_scrypt(self) -> Result<scrypt::Params, PasswordError> {
        scrypt::Params::new(self.log_n, self.r, self.p).map_err(|_| PasswordError::InvalidParams)
    }
}

impl Default for ScryptParams {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

/// Failures of the password hasher itself (a wrong password is not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The configured scrypt parameters are out of range.
    #[error("invalid scrypt parameters")]
    InvalidParams,
    /// No randomness for a salt.
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
    /// The KDF job panicked, or its threads could not be started.
    #[error("password hashing task failed")]
    TaskFailed,
    /// The hasher produced something that is not a PHC string (a bug).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// Too many hashes are already waiting for a KDF thread; try again shortly.
    #[error("password hashing queue is full")]
    Overloaded,
}

impl PasswordError {
    /// How long a client should wait before retrying, when the failure is load
    /// shedding rather than a fault ([`Overloaded`](Self::Overloaded): 1 s).
    #[must_use]
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Overloaded => Some(std::time::Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Live figures of a [`PasswordHasher`], for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HasherStats {
    /// KDF runs executing right now.
    pub running: usize,
    /// The most KDF runs ever executing at once.
    pub peak_running: usize,
    /// The configured concurrency limit.
    pub width: usize,
    /// KDF runs finished since the hasher was made (dummy runs included).
    pub completed: u64,
    /// The most KDF runs that may wait for a thread.
    pub queue_bound: usize,
    /// Calls refused because that many were already waiting.
    pub refused: u64,
    /// The most client-secret hashes ever executing at once
    /// ([`hash_client_secret`](PasswordHasher::hash_client_secret); at most
    /// `width − 1`, or one when the width is one).
    pub peak_secrets: usize,
}

/// Hashes and verifies passwords with scrypt, off the async runtime and with bounded
/// concurrency. Cheap to clone; clones share the pool of KDF threads.
///
/// ```
/// # use oauth_core::{Password, PasswordHasher, ScryptParams};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), oauth_core::PasswordError> {
/// let hasher = PasswordHasher::new(ScryptParams::INSECURE_FAST)?;
/// let phc = hasher.hash(&Password::new("s3cret-passphrase")).await?;
/// assert!(phc.starts_with("$scrypt$ln=4,r=8,p=1$"));
/// assert!(hasher.verify(&Password::new("s3cret-passphrase"), Some(&phc)).await?);
/// assert!(!hasher.verify(&Password::new("wrong"), Some(&phc)).await?);
/// // An unknown user still pays for one verification, so timing reveals nothing.
/// assert!(!hasher.verify(&Password::new("anything"), None).await?);
/// assert!(!hasher.needs_rehash(&phc));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: ScryptParams,
    params: scrypt::Params,
    pool: pool::KdfPool,
    width: usize,
    queue: usize,
    /// A PHC string with the configured parameters that no password matches; verified
    /// in place of a missing user's hash so both paths cost one KDF run.
    dummy: String,
    running: AtomicUsize,
    peak: AtomicUsize,
    secrets_running: AtomicUsize,
    peak_secrets: AtomicUsize,
    /// The legacy (Django) hashes known to be present, and the check an unknown
    /// email pays for when one of them is slower than scrypt.
    #[cfg(feature = "django")]
    legacy: std::sync::Mutex<LegacyCost>,
    completed: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.config)
            .field("width", &self.inner.width)
            .field("queue", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher running at most one KDF per available CPU at a time.
    ///
    /// # Errors
    /// [`PasswordError::InvalidParams`] for out-of-range parameters.
    pub fn new(params: ScryptParams) -> Result<Self, PasswordError> {
        let width = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(params, width)
    }

    /// A hasher running at most `width` (at least one) KDFs at a time, with the
    /// default queue bound ([`default_queue`](Self::default_queue)).
    ///
    /// # Errors
    /// [`PasswordError::InvalidParams`] for out-of-range parameters.
    pub fn with_concurrency(params: ScryptParams, width: usize) -> Result<Self, PasswordError> {
        Self::with_limits(params, width, Self::default_queue(width))
    }

    /// The default bound of the queue for `width` threads: 8 per thread, at least 64.
    /// At about 0.2 s per production hash that is under two seconds of waiting.
    #[must_use]
    pub fn default_queue(width: usize) -> usize {
        width.max(1).saturating_mul(8).max(64)
    }

    /// A hasher running at most `width` (at least one) KDFs at a time, with at most
    /// `queue` (at least one) more waiting for a thread — password checks and
    /// [client secrets](Self::hash_client_secret) each in a queue of that bound; a
    /// call past that fails at once with [`PasswordError::Overloaded`]. (With no room at all, a login's second
    /// KDF run could be refused in the instant its thread takes to come back from
    /// the first.)
    ///
    /// ```
    /// # use oauth_core::{PasswordHasher, ScryptParams};
    /// let hasher = PasswordHasher::with_limits(ScryptParams::INSECURE_FAST, 2, 16)?;
    /// assert_eq!(hasher.stats().queue_bound, 16);
    /// # Ok::<(), oauth_core::PasswordError>(())
    /// ```
    ///
    /// # Errors
    /// [`PasswordError::InvalidParams`] for out-of-range parameters.
    pub fn with_limits(
        params: ScryptParams,
        width: usize,
        queue: usize,
    ) -> Result<Self, PasswordError> {
        let width = width.max(1);
        let queue = queue.max(1);
        let scrypt_params = params.to_scrypt()?;
        let dummy = dummy_hash(scrypt_params)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: params,
                params: scrypt_params,
                pool: pool::KdfPool::new(width, queue).map_err(|_| PasswordError::TaskFailed)?,
                width,
                queue,
                dummy,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                secrets_running: AtomicUsize::new(0),
                peak_secrets: AtomicUsize::new(0),
                #[cfg(feature = "django")]
                legacy: std::sync::Mutex::new(LegacyCost::default()),
                completed: AtomicU64::new(0),
                refused: AtomicU64::new(0),
            }),
        })
    }

    /// The configured parameters.
    #[must_use]
    pub fn params(&self) -> ScryptParams {
        self.inner.config
    }

    /// Current and peak KDF concurrency.
    #[must_use]
    pub fn stats(&self) -> HasherStats {
        HasherStats {
            running: self.inner.running.load(Ordering::Relaxed),
            peak_running: self.inner.peak.load(Ordering::Relaxed),
            width: self.inner.width,
            completed: self.inner.completed.load(Ordering::Relaxed),
            queue_bound: self.inner.queue,
            refused: self.inner.refused.load(Ordering::Relaxed),
            peak_secrets: self.inner.peak_secrets.load(Ordering::Relaxed),
        }
    }

    /// Hashes a password with a fresh random salt into a PHC string
    /// (`$scrypt$ln=…,r=…,p=…$salt$hash`).
    ///
    /// # Errors
    /// [`PasswordError`] when no salt can be drawn or the blocking task fails.
    pub async fn hash(&self, password: &Password) -> Result<String, PasswordError> {
        self.hash_in(pool::Lane::SignIn, password).await
    }

    /// As [`hash`](Self::hash), for a client secret: the run takes at most
    /// `width − 1` of the KDF threads (one when the width is one), after any waiting
    /// password check, and waits in a queue of its own; so hashing secrets, however
    /// many are asked for at once, never delays a sign-in by more than the one run
    /// it finds under way, and never fills the queue sign-ins wait in.
    ///
    /// # Errors
    /// As [`hash`](Self::hash); [`PasswordError::Overloaded`] when the secrets'
    /// own queue is full.
    pub async fn hash_client_secret(&self, secret: &Password) -> Result<String, PasswordError> {
        self.hash_in(pool::Lane::Secrets, secret).await
    }

    async fn hash_in(
        &self,
        lane: pool::Lane,
        password: &Password,
    ) -> Result<String, PasswordError> {
        let mut salt = [0u8; 16];
        fill_random(&mut salt)?;
        let params = self.inner.params;
        let password = password.clone();
        self.run(lane, move || {
            Scrypt::default()
                .hash_password_customized(password.secret().as_bytes(), &salt, None, None, params)
                .map(|h| h.to_string())
                .map_err(hash_error)
        })
        .await?
    }

    /// Checks a password against a stored PHC string.
    ///
    /// Pass `None` when there is no such user (or the user has no usable password):
    /// a dummy hash is verified instead, so the answer takes as long as a real one.
    /// With the `django` feature, Django's own formats (`pbkdf2_sha256$…`, `argon2$…`,
    /// `bcrypt_sha256$…`, `scrypt$…`, see [`django_algorithm`]) are verified too, for
    /// imported accounts; [`needs_rehash`](Self::needs_rehash) is then true, so the
    /// caller replaces them after this success. Any other stored value never matches.
    ///
    /// # Errors
    /// [`PasswordError::TaskFailed`] when the blocking task fails.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let check = match stored.map(PasswordHash::new) {
            None => None,
            Some(Ok(h)) if h.algorithm.as_str() == "scrypt" => Some(Check::Scrypt(h)),
            Some(_) => {
                #[cfg(feature = "django")]
                let legacy = stored.and_then(django::parse).map(Check::Django);
                #[cfg(not(feature = "django"))]
                let legacy = None;
                if legacy.is_none() {
                    tracing::warn!(
                        "stored password hash is in no format verified here; refusing it"
                    );
                }
                legacy
            }
        };
        let (check, real) = match check {
            Some(c) => (c, true),
            None => (self.dummy_check()?, false),
        };
        let password = password.clone();
        let matched = self
            .run(pool::Lane::SignIn, move || match check {
                Check::Scrypt(hash) => Scrypt::default()
                    .verify_password(password.secret().as_bytes(), &hash)
                    .is_ok(),
                #[cfg(feature = "django")]
                Check::Django(legacy) => legacy.verify(password.secret().as_bytes()),
            })
            .await?;
        Ok(real && matched)
    }

    /// What a check for an unknown user (or an unusable stored value) runs: the
    /// slowest legacy family present when it is slower than scrypt
    /// ([`learn_legacy_hashes`](Self::learn_legacy_hashes)), else the scrypt dummy.
    /// Its answer is discarded.
    fn dummy_check(&self) -> Result<Check, PasswordError> {
        #[cfg(feature = "django")]
        if let Some((legacy, _)) = &self
            .inner
            .legacy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .dummy
        {
            return Ok(Check::Django(legacy.clone()));
        }
        Ok(Check::Scrypt(
            PasswordHash::new(&self.inner.dummy).map_err(hash_error)?,
        ))
    }

    /// Tells the hasher which legacy (Django) hashes are present — at start-up, from
    /// the store ([`UserStore::legacy_password_hashes`](crate::UserStore::legacy_password_hashes),
    /// which [`AuthServer`](crate::AuthServer) does by itself), and after an import.
    ///
    /// A check for an unknown email must cost what a check of a real account costs,
    /// or timing tells "imported, not yet signed in" from "unknown": so once the
    /// slowest of these (per family by its parameters, across families and against
    /// scrypt by timing one run of each on the KDF threads) is slower than the
    /// scrypt dummy, the unknown-email check runs that family with those parameters
    /// instead — the max of the two, never both. Only ever raised while the process
    /// runs; the next start-up, with no legacy hash left, is back to scrypt alone.
    /// Values in no legacy format are ignored.
    #[cfg(feature = "django")]
    pub async fn learn_legacy_hashes<I, S>(&self, hashes: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // The slowest of each family among these, slower than any seen before.
        let mut fresh: Vec<django::Legacy> = Vec::new();
        for h in hashes {
            let Some(l) = django::parse(h.as_ref()) else {
                continue;
            };
            match fresh.iter_mut().find(|f| f.algorithm() == l.algorithm()) {
                Some(f) if f.nominal_cost() >= l.nominal_cost() => {}
                Some(f) => *f = l,
                None => fresh.push(l),
            }
        }
        {
            let mut known = self.legacy();
            fresh.retain(|l| {
                match known
                    .seen
                    .iter_mut()
                    .find(|s| s.algorithm() == l.algorithm())
                {
                    Some(s) if s.nominal_cost() >= l.nominal_cost() => false,
                    Some(s) => {
                        *s = l.clone();
                        true
                    }
                    None => {
                        known.seen.push(l.clone());
                        true
                    }
                }
            });
        }
        if fresh.is_empty() {
            return;
        }
        let measured = self.legacy().scrypt;
        let scrypt = match measured {
            Some(t) => t,
            None => {
                let Ok(Check::Scrypt(dummy)) = self.dummy_scrypt() else {
                    return;
                };
                let Some(t) = self
                    .time_one(move |p| {
                        let _ = Scrypt::default().verify_password(p, &dummy);
                    })
                    .await
                else {
                    return;
                };
                self.legacy().scrypt = Some(t);
                t
            }
        };
        for l in fresh {
            let check = l.clone();
            let Some(t) = self
                .time_one(move |p| {
                    let _ = check.verify(p);
                })
                .await
            else {
                continue;
            };
            let mut known = self.legacy();
            let slowest = known.dummy.as_ref().map_or(scrypt, |(_, d)| *d).max(scrypt);
            if t > slowest {
                tracing::info!(
                    algorithm = l.algorithm(),
                    cost = l.nominal_cost(),
                    ms = t.as_millis(),
                    "unknown emails now pay for the slowest legacy password hash present"
                );
                known.dummy = Some((l, t));
            }
        }
    }

    /// The algorithm an unknown email's check runs: `"scrypt"`, or the legacy
    /// family that [`learn_legacy_hashes`](Self::learn_legacy_hashes) found slower.
    #[must_use]
    pub fn unknown_user_check(&self) -> &'static str {
        #[cfg(feature = "django")]
        if let Some((l, _)) = &self.legacy().dummy {
            return l.algorithm();
        }
        "scrypt"
    }

    #[cfg(feature = "django")]
    fn legacy(&self) -> std::sync::MutexGuard<'_, LegacyCost> {
        self.inner
            .legacy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(feature = "django")]
    fn dummy_scrypt(&self) -> Result<Check, PasswordError> {
        Ok(Check::Scrypt(
            PasswordHash::new(&self.inner.dummy).map_err(hash_error)?,
        ))
    }

    /// The time of one run of `f` (with a random password) on a KDF thread, queue
    /// wait excluded; `None` when the pool refused it.
    #[cfg(feature = "django")]
    async fn time_one<F>(&self, f: F) -> Option<std::time::Duration>
    where
        F: FnOnce(&[u8]) + Send + 'static,
    {
        let mut password = [0u8; 16];
        fill_random(&mut password).ok()?;
        match self
            .run(pool::Lane::SignIn, move || {
                let started = std::time::Instant::now();
                f(&password);
                started.elapsed()
            })
            .await
        {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "could not time a legacy password hash");
                None
            }
        }
    }

    /// True when a stored hash was made with other parameters or another algorithm,
    /// so it should be replaced by [`hash`](Self::hash) after the next successful login.
    #[must_use]
    pub fn needs_rehash(&self, stored: &str) -> bool {
        let Ok(hash) = PasswordHash::new(stored) else {
            return true;
        };
        if hash.algorithm.as_str() != "scrypt" {
            return true;
        }
        let Ok(params) = scrypt::Params::try_from(&hash) else {
            return true;
        };
        let want = self.inner.params;
        params.log_n() != want.log_n()
            || params.r() != want.r()
            || params.p() != want.p()
            || hash
                .hash
                .is_none_or(|h| h.len() != scrypt::Params::RECOMMENDED_LEN)
    }

    /// Runs `f` on the KDF pool. A caller that gives up early (a dropped request)
    /// cannot push concurrency past the pool's width: the job runs on one of its
    /// threads, or is skipped if the caller is gone by the time a thread takes it.
    /// A full queue refuses the job at once ([`PasswordError::Overloaded`]).
    async fn run<T, F>(&self, lane: pool::Lane, f: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = Arc::clone(&self.inner);
        let queued = std::time::Instant::now();
        self.inner
            .pool
            .submit(
                lane,
                Box::new(move || {
                    // The caller gave up while the job was queued: nobody wants the hash.
                    if tx.is_closed() {
                        return;
                    }
                    crate::metrics::kdf_queue_wait(queued.elapsed());
                    let now = inner.running.fetch_add(1, Ordering::Relaxed) + 1;
                    inner.peak.fetch_max(now, Ordering::Relaxed);
                    let secret = lane == pool::Lane::Secrets;
                    if secret {
                        let n = inner.secrets_running.fetch_add(1, Ordering::Relaxed) + 1;
                        inner.peak_secrets.fetch_max(n, Ordering::Relaxed);
                    }
                    let out = f();
                    if secret {
                        inner.secrets_running.fetch_sub(1, Ordering::Relaxed);
                    }
                    inner.running.fetch_sub(1, Ordering::Relaxed);
                    inner.completed.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(out);
                }),
            )
            .map_err(|pool::Refused::Full| {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                PasswordError::Overloaded
            })?;
        rx.await.map_err(|_| PasswordError::TaskFailed)
    }
}

/// The legacy hashes known to be present and what an unknown email pays for.
#[cfg(feature = "django")]
#[derive(Default)]
struct LegacyCost {
    /// The slowest hash seen of each family (by its parameters).
    seen: Vec<django::Legacy>,
    /// One scrypt dummy run, timed.
    scrypt: Option<std::time::Duration>,
    /// The unknown-email check when a legacy family is slower than scrypt, with
    /// its time.
    dummy: Option<(django::Legacy, std::time::Duration)>,
}

/// What [`PasswordHasher::verify`] runs on the KDF pool (one per call, moved once:
/// the size difference of its variants costs nothing).
#[allow(clippy::large_enum_variant)]
enum Check {
    Scrypt(PasswordHash),
    #[cfg(feature = "django")]
    Django(django::Legacy),
}

fn hash_error(e: impl std::fmt::Display) -> PasswordError {
    PasswordError::Hash(e.to_string())
}

/// A PHC string with random salt and random output: verifying any password against it
/// runs the full KDF and fails.
fn dummy_hash(params: scrypt::Params) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    let mut out = [0u8; scrypt::Params::RECOMMENDED_LEN];
    fill_random(&mut salt)?;
    fill_random(&mut out)?;
    let hash = PasswordHash {
        algorithm: scrypt::phc::ALG_ID,
        version: None,
        params: (&params).try_into().map_err(hash_error)?,
        salt: Some(Salt::new(&salt).map_err(hash_error)?),
        hash: Some(Output::new(&out).map_err(hash_error)?),
    };
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests;
