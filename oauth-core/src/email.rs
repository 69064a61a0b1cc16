//! Email addresses as user names.

use std::fmt;

/// A validated, normalized email address: the user name of this toolkit.
///
/// Validation follows Django's `EmailValidator` (dot-atom or quoted local part,
/// host name with a top-level label, or `localhost`); normalization follows
/// Django's `normalize_email` (surrounding blanks dropped, domain lower-cased).
/// Two addresses that differ only in case name the same account: compare them by
/// [`Email::key`].
///
/// ```
/// # use oauth_core::Email;
/// let e = Email::parse(" Ada.Lovelace@Example.COM ")?;
/// assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
/// assert_eq!(e.key(), "ada.lovelace@example.com");
/// assert!(Email::parse("not-an-email").is_err());
/// # Ok::<_, oauth_core::InvalidEmail>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why an email address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEmail {
    /// Not an address (Django: `invalid`).
    #[error("Enter a valid email address.")]
    Malformed,
    /// Longer than [`Email::MAX_LEN`] (Django: `max_length`).
    #[error("Ensure this field has no more than 254 characters.")]
    TooLong,
}

impl Email {
    /// The longest address accepted, as Django's `EmailField`.
    pub const MAX_LEN: usize = 254;

    /// Validates and normalizes an address.
    ///
    /// # Errors
    /// [`InvalidEmail`] with Django's message for the failure.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        let input = input.trim();
        if input.chars().count() > Self::MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(InvalidEmail::Malformed)?;
        if !(is_dot_atom(local) || is_quoted(local)) {
            return Err(InvalidEmail::Malformed);
        }
        let domain = domain.to_ascii_lowercase();
        if !(domain == "localhost" || is_host_name(&domain)) {
            return Err(InvalidEmail::Malformed);
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    /// An address read back from storage, where only parsed (normalized) addresses
    /// are written: checked as [`parse`](Self::parse) checks, and kept as it is,
    /// without a copy, when it is in normal form already (else normalized).
    #[cfg_attr(not(feature = "sea-orm"), allow(dead_code))]
    pub(crate) fn from_stored(stored: String) -> Result<Self, InvalidEmail> {
        let normal = stored.chars().count() <= Self::MAX_LEN
            && stored.trim().len() == stored.len()
            && stored.rsplit_once('@').is_some_and(|(local, domain)| {
                (is_dot_atom(local) || is_quoted(local))
                    && !domain.bytes().any(|b| b.is_ascii_uppercase())
                    && (domain == "localhost" || is_host_name(domain))
            });
        if normal {
            Ok(Self(stored))
        } else {
            Self::parse(&stored)
        }
    }

    /// The normalized address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive identity of the address: what uniqueness is checked on.
    #[must_use]
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-!#$%&'*+/=?^_`{}|~".contains(&b)
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(is_atext))
}

/// RFC 5322 quoted string, as Django accepts it.
fn is_quoted(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return false;
    };
    let plain = |b: u8| matches!(b, 1..=8 | 11 | 12 | 14..=31 | b'!' | b'#'..=b'[' | b']'..=127);
    let escapable = |b: u8| matches!(b, 1..=9 | 11 | 12 | 14..=127);
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        let ok = if b == b'\\' {
            bytes.next().is_some_and(escapable)
        } else {
            plain(b)
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Django's `hostname_re + domain_re + tld_no_fqdn_re` on a lower-cased domain:
/// labels of letters (any character from U+00A1 up counts as one), digits and inner
/// hyphens, at most 63 characters each; at least two labels; the last one either
/// letters and hyphens (two or more) or a punycode `xn--` label.
fn is_host_name(domain: &str) -> bool {
    let letter = |c: char| c.is_ascii_lowercase() || ('\u{a1}'..='\u{ffff}').contains(&c);
    let label_ok = |l: &str, allowed: &dyn Fn(char) -> bool| {
        (1..=63).contains(&l.chars().count())
            && l.chars().all(|c| allowed(c) || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    let tld_ok = match tld.strip_prefix("xn--") {
        Some(puny) => {
            (1..=59).contains(&puny.len())
                && puny
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }
        None => tld.chars().count() >= 2 && label_ok(tld, &letter),
    };
    !rest.is_empty()
        && rest
            .iter()
            .all(|l| label_ok(l, &|c| letter(c) || c.is_ascii_digit()))
        && tld_ok
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_addresses_are_checked_as_parsed_ones() {
        for s in [
            "ann@example.com",
            "Ann.B@example.com",
            "x@localhost",
            " ann@Example.COM",
        ] {
            assert_eq!(Email::from_stored(s.to_owned()), Email::parse(s), "{s:?}");
        }
        assert!(Email::from_stored("not an address".to_owned()).is_err());
    }

    #[test]
    fn accepts_what_django_accepts() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x@localhost",
            "\"quoted.local\"@example.com",
            "a@b.xn--p1ai",
            "jose@caf\u{e9}.fr",
            "x@1.example.com",
            "o'brien@example.ie",
            "u@xn--bcher-kva.example",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_django_refuses() {
        for bad in [
            "",
            "not-an-email",
            "@example.com",
            "a@",
            "a@b",
            "a@b.c",
            "a..b@example.com",
            ".a@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example-.com",
            "a@exa_mple.com",
            "a@example.com-",
            "\"quoted local\"@example.com",
            "a@sub.123",
            "a@1.2.3.4",
            "a@example.c0m",
            "jos\u{e9}@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail::Malformed), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn normalizes_domain_only() {
        let e = Email::parse("\tMiXed@ExAmple.Com\n").unwrap();
        assert_eq!(e.as_str(), "MiXed@example.com");
        assert_eq!(e.key(), "mixed@example.com");
        assert_eq!(e.key(), Email::parse("mixed@EXAMPLE.com").unwrap().key());
    }
}
