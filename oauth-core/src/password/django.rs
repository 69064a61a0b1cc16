//! Django's password hash formats, verified as they are (feature `django`).
//!
//! Users and client secrets imported from a Django database keep Django's hash
//! until their next successful sign-in, when [`PasswordHasher`](super::PasswordHasher)
//! replaces it with scrypt (the legacy string is then gone). Recognised, as Django's
//! `make_password` writes them:
//!
//! | prefix | Django hasher | verified with |
//! |---|---|---|
//! | `pbkdf2_sha256$iterations$salt$hash` | `PBKDF2PasswordHasher` (the default) | RustCrypto `pbkdf2` + `sha2` |
//! | `pbkdf2_sha1$iterations$salt$hash` | `PBKDF2SHA1PasswordHasher` | RustCrypto `pbkdf2` + `sha1` |
//! | `argon2$argon2id$v=19$m=…,t=…,p=…$salt$hash` | `Argon2PasswordHasher` | RustCrypto `argon2` |
//! | `bcrypt_sha256$$2b$12$…` | `BCryptSHA256PasswordHasher` | `bcrypt` over the hex SHA-256 |
//! | `bcrypt$$2b$12$…` | `BCryptPasswordHasher` | `bcrypt` |
//! | `scrypt$N$salt$r$p$hash` | `ScryptPasswordHasher` (Django ≥ 4.0) | RustCrypto `scrypt` |
//!
//! Anything else — an unusable password (`!…`), the unsalted MD5 and SHA-1 hashers
//! Django itself dropped, a malformed string — never matches. Costs are bounded (a
//! stored string cannot make one check allocate gigabytes or run for minutes), and
//! derived keys are compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq as _;

/// Most PBKDF2 iterations accepted (Django 5.2 writes 1,000,000; 6.0 1,200,000).
const MAX_PBKDF2_ITERATIONS: u32 = 20_000_000;
/// Most memory one argon2 or scrypt check may take: 1 GiB.
const MAX_MEMORY_BYTES: u64 = 1 << 30;
/// Most argon2 passes.
const MAX_ARGON2_TIME: u32 = 64;
/// Highest bcrypt cost accepted (Django writes 12).
const MAX_BCRYPT_COST: u32 = 16;

/// A Django hash parsed into what its check needs.
#[derive(Clone)]
pub(crate) enum Legacy {
    Pbkdf2 {
        sha1: bool,
        iterations: u32,
        salt: String,
        expected: Vec<u8>,
    },
    Argon2(Box<argon2::password_hash::phc::PasswordHash>),
    Bcrypt {
        prehash: bool,
        hash: String,
    },
    Scrypt {
        params: scrypt::Params,
        salt: String,
        expected: Vec<u8>,
    },
}

impl std::fmt::Debug for Legacy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.algorithm())
    }
}

/// The Django algorithm name of `stored` when it is a hash this module verifies.
///
/// ```
/// # use oauth_core::password::django_algorithm;
/// assert_eq!(
///     django_algorithm("pbkdf2_sha256$1000000$salt$DlmCKJ4PuqZ0lkdqpW7VPK8CPNPyzTDFZlyTuTcEt7I="),
///     Some("pbkdf2_sha256")
/// );
/// assert_eq!(django_algorithm("!unusable"), None);
/// assert_eq!(django_algorithm("md5$salt$0123"), None);
/// ```
#[must_use]
pub fn django_algorithm(stored: &str) -> Option<&'static str> {
    parse(stored).map(|l| l.algorithm())
}

impl Legacy {
    /// The cost of one check within its family, in that family's own unit
    /// (iterations; argon2's KiB × passes × lanes; 2^cost; scrypt's N·r·p): which
    /// of two hashes of one family is slower. Families are compared by timing.
    pub(crate) fn nominal_cost(&self) -> u64 {
        match self {
            Self::Pbkdf2 { iterations, .. } => u64::from(*iterations),
            Self::Argon2(hash) => argon2::Params::try_from(hash.as_ref()).map_or(0, |p| {
                u64::from(p.m_cost()) * u64::from(p.t_cost()) * u64::from(p.p_cost())
            }),
            Self::Bcrypt { hash, .. } => hash
                .split('$')
                .nth(2)
                .and_then(|c| c.parse::<u32>().ok())
                .map_or(0, |c| 1u64 << c.min(63)),
            Self::Scrypt { params, .. } => {
                (1u64 << params.log_n().min(63)) * u64::from(params.r()) * u64::from(params.p())
            }
        }
    }

    pub(crate) fn algorithm(&self) -> &'static str {
        match self {
            Self::Pbkdf2 { sha1: false, .. } => "pbkdf2_sha256",
            Self::Pbkdf2 { sha1: true, .. } => "pbkdf2_sha1",
            Self::Argon2(_) => "argon2",
            Self::Bcrypt { prehash: true, .. } => "bcrypt_sha256",
            Self::Bcrypt { prehash: false, .. } => "bcrypt",
            Self::Scrypt { .. } => "scrypt",
        }
    }

    /// Whether `password` matches. Runs the KDF: call it off the async runtime.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Pbkdf2 {
                sha1,
                iterations,
                salt,
                expected,
            } => {
                let mut out = vec![0u8; expected.len()];
                if *sha1 {
                    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut out,
                    );
                } else {
                    // The non-generic entry point runs the loop compiled inside
                    // `pbkdf2` (optimised even in debug builds, see the workspace's
                    // profile), not instantiated at this crate's optimisation level.
                    match pbkdf2::Params::new(*iterations) {
                        Ok(params) => pbkdf2::pbkdf2_hmac_with_params(
                            password,
                            salt.as_bytes(),
                            pbkdf2::Algorithm::Pbkdf2Sha256,
                            params,
                            &mut out,
                        ),
                        Err(_) => pbkdf2::pbkdf2_hmac::<pbkdf2::sha2::Sha256>(
                            password,
                            salt.as_bytes(),
                            *iterations,
                            &mut out,
                        ),
                    }
                }
                bool::from(out.ct_eq(expected))
            }
            Self::Argon2(hash) => {
                use argon2::password_hash::PasswordVerifier as _;
                argon2::Argon2::default()
                    .verify_password(password, hash.as_ref())
                    .is_ok()
            }
            Self::Bcrypt { prehash, hash } => {
                if *prehash {
                    // Django: bcrypt over the hex SHA-256 of the password.
                    use sha2::Digest as _;
                    let hex: String = sha2::Sha256::digest(password)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    bcrypt::verify(hex.as_bytes(), hash).unwrap_or(false)
                } else {
                    bcrypt::verify(password, hash).unwrap_or(false)
                }
            }
            Self::Scrypt {
                params,
                salt,
                expected,
            } => {
                let mut out = vec![0u8; expected.len()];
                scrypt::scrypt(password, salt.as_bytes(), params, &mut out).is_ok()
                    && bool::from(out.ct_eq(expected))
            }
        }
    }
}

/// Parses a Django hash; `None` for anything this module does not verify.
pub(crate) fn parse(stored: &str) -> Option<Legacy> {
    let (algorithm, rest) = stored.split_once('$')?;
    match algorithm {
        "pbkdf2_sha256" | "pbkdf2_sha1" => {
            let mut parts = rest.split('$');
            let iterations: u32 = parts.next()?.parse().ok()?;
            let salt = parts.next()?;
            let expected = STANDARD.decode(parts.next()?).ok()?;
            let sha1 = algorithm == "pbkdf2_sha1";
            let len_ok = expected.len() == if sha1 { 20 } else { 32 };
            (parts.next().is_none()
                && (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations)
                && !salt.is_empty()
                && len_ok)
                .then(|| Legacy::Pbkdf2 {
                    sha1,
                    iterations,
                    salt: salt.to_owned(),
                    expected,
                })
        }
        "argon2" => {
            // `argon2` + the PHC string, whose leading `$` was the split's.
            let hash = argon2::password_hash::phc::PasswordHash::new(&format!("${rest}")).ok()?;
            let params = argon2::Params::try_from(&hash).ok()?;
            let algorithm_known = argon2::Algorithm::try_from(hash.algorithm.as_str()).is_ok();
            (algorithm_known
                && hash.hash.is_some()
                && u64::from(params.m_cost()) * 1024 <= MAX_MEMORY_BYTES
                && params.t_cost() <= MAX_ARGON2_TIME)
                .then(|| Legacy::Argon2(Box::new(hash)))
        }
        "bcrypt_sha256" | "bcrypt" => {
            // `bcrypt_sha256$$2b$12$<53 characters>`: the bcrypt string follows the
            // algorithm's `$`.
            let hash = rest;
            let mut parts = hash.split('$');
            let (empty, version, cost, body) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let cost: u32 = cost.parse().ok()?;
            (empty.is_empty()
                && matches!(version, "2a" | "2b" | "2y")
                && (4..=MAX_BCRYPT_COST).contains(&cost)
                && body.len() == 53
                && parts.next().is_none())
            .then(|| Legacy::Bcrypt {
                prehash: algorithm == "bcrypt_sha256",
                hash: hash.to_owned(),
            })
        }
        "scrypt" => {
            // Django: `scrypt$N$salt$r$p$hash`.
            let mut parts = rest.split('$');
            let n: u64 = parts.next()?.parse().ok()?;
            let salt = parts.next()?;
            let r: u32 = parts.next()?.parse().ok()?;
            let p: u32 = parts.next()?.parse().ok()?;
            let expected = STANDARD.decode(parts.next()?).ok()?;
            if parts.next().is_some() || !n.is_power_of_two() || n < 2 || salt.is_empty() {
                return None;
            }
            let log_n = u8::try_from(n.trailing_zeros()).ok()?;
            let memory = 128u64
                .checked_mul(u64::from(r))?
                .checked_mul(n)?
                .checked_mul(u64::from(p).max(1))?;
            if memory > MAX_MEMORY_BYTES || p > 64 || expected.is_empty() || expected.len() > 256 {
                return None;
            }
            let params = scrypt::Params::new(log_n, r, p).ok()?;
            Some(Legacy::Scrypt {
                params,
                salt: salt.to_owned(),
                expected,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made by Django 5.2's `make_password` (tests/fixtures/django/make_fixture.py):
    // the password is the hasher's name + "-pass-1234".
    const PBKDF2_SHA256: &str =
        "pbkdf2_sha256$1000000$fixturesaltpbkdf2$DlmCKJ4PuqZ0lkdqpW7VPK8CPNPyzTDFZlyTuTcEt7I=";
    const PBKDF2_SHA1: &str = "pbkdf2_sha1$1000000$fixturesaltpbkdf2$0Ti5wxfo0K97uwg+SHWOuW8LOww=";
    const ARGON2: &str = "argon2$argon2id$v=19$m=102400,t=2,p=8$Zml4dHVyZXNhbHRhcmdvbjI$sRaUkIzyH5VczeE/ET8Qnwcn5tmL8s1w0ep1n51XY74";
    const BCRYPT_SHA256: &str =
        "bcrypt_sha256$$2b$12$ypQujMWn2zGJwJSPP4nACeAh/5ETnRs7KBhtTjcUDUY6Jn0vlwc1O";
    const SCRYPT: &str = "scrypt$16384$fixturesaltscrypt$8$5$f7rU90gTvKFY8o+PEIeAx1QfDOFTPUo48Bz1yoZa3AYLMN9UPoD2R0HQx0abF7H7iY7wfdFpfk5QjLDtEobBLQ==";

    fn check(stored: &str, algorithm: &str) {
        let legacy = parse(stored).unwrap_or_else(|| panic!("{algorithm} not parsed"));
        assert_eq!(legacy.algorithm(), algorithm);
        assert!(legacy.verify(format!("{algorithm}-pass-1234").as_bytes()));
        assert!(!legacy.verify(b"wrong-password"));
    }

    #[test]
    fn django_known_answers() {
        check(PBKDF2_SHA256, "pbkdf2_sha256");
        check(PBKDF2_SHA1, "pbkdf2_sha1");
        check(ARGON2, "argon2");
        check(BCRYPT_SHA256, "bcrypt_sha256");
        check(SCRYPT, "scrypt");
    }

    #[test]
    fn malformed_and_unsupported_hashes_are_refused() {
        for bad in [
            "",
            "!",
            "!SWmgW6g8wBDcFwUKgU5yqfxcwUOMEkQMtvThFZtQ",
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99",
            "sha1$salt$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8",
            "unsalted_md5$$5f4dcc3b5aa765d61d8327deb882cf99",
            "pbkdf2_sha256$0$salt$DlmCKJ4PuqZ0lkdqpW7VPK8CPNPyzTDFZlyTuTcEt7I=",
            "pbkdf2_sha256$99999999999$salt$DlmCKJ4PuqZ0lkdqpW7VPK8CPNPyzTDFZlyTuTcEt7I=",
            "pbkdf2_sha256$1000$salt$not base64",
            "pbkdf2_sha256$1000$salt$AAAA",
            "pbkdf2_sha256$1000$$DlmCKJ4PuqZ0lkdqpW7VPK8CPNPyzTDFZlyTuTcEt7I=",
            "pbkdf2_sha256$1000",
            "argon2$argon2id$v=19$m=99999999,t=2,p=8$Zml4dHVyZXNhbHRhcmdvbjI$sRaUkIzyH5VczeE/ET8Qnwcn5tmL8s1w0ep1n51XY74",
            "argon2$garbage",
            "bcrypt_sha256$$2b$31$ypQujMWn2zGJwJSPP4nACeAh/5ETnRs7KBhtTjcUDUY6Jn0vlwc1O",
            "bcrypt_sha256$$2b$12$short",
            "scrypt$16385$salt$8$5$AAAA",
            "scrypt$1073741824$salt$8$1$AAAA",
            "scrypt$16384$salt$8$5$",
        ] {
            assert!(parse(bad).is_none(), "{bad:?} parsed");
        }
    }
}
