//! OAuth 2.0 scopes (RFC 6749 §3.3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set of scope tokens, kept in the order they were first given.
///
/// The wire form is the RFC 6749 §3.3 list of tokens separated by single spaces.
/// Duplicates are dropped; order does not matter for comparisons.
///
/// ```
/// # use oauth_core::Scope;
/// let granted: Scope = "read write".parse()?;
/// let asked: Scope = "write".parse()?;
/// assert!(asked.is_subset(&granted));
/// assert_eq!(granted.to_string(), "read write");
/// assert!("read\u{7f}".parse::<Scope>().is_err());
/// # Ok::<_, oauth_core::InvalidScope>(())
/// ```
#[derive(Clone, Default, Eq)]
pub struct Scope(
    /// The wire form itself: valid tokens, each once, separated by single spaces.
    /// One allocation for the whole scope, and written out as it is.
    String,
);

/// A scope string that is not a valid RFC 6749 §3.3 `scope` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope: tokens are printable ASCII without spaces, quotes or backslashes")]
pub struct InvalidScope;

impl Scope {
    /// The empty scope.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// True when the scope holds no token.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of distinct tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when `token` is one of the scope's tokens.
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.iter().any(|t| t == token)
    }

    /// True when every token of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.iter().all(|t| other.contains(t))
    }

    /// Every token of `self`, then those of `other` that `self` lacks.
    #[must_use]
    pub fn union(&self, other: &Scope) -> Scope {
        let mut all = self.clone();
        for t in other.iter() {
            all.push_new(t);
        }
        all
    }

    /// The tokens, in the order they were first given.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        // `split` of the empty string yields one empty piece: no token.
        self.0.split(' ').filter(|t| !t.is_empty())
    }

    /// Adds a token (RFC 6749 §3.3 `scope-token`); a duplicate is ignored.
    ///
    /// # Errors
    /// [`InvalidScope`] when the token is empty or holds a forbidden character.
    pub fn insert(&mut self, token: &str) -> Result<(), InvalidScope> {
        if !is_scope_token(token) {
            return Err(InvalidScope);
        }
        self.push_new(token);
        Ok(())
    }

    /// Appends a valid token unless the scope has it.
    fn push_new(&mut self, token: &str) {
        if !self.contains(token) {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(token);
        }
    }

    /// The wire form: the tokens separated by single spaces.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`
fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

impl FromStr for Scope {
    type Err = InvalidScope;

    /// Parses a space-separated list. Runs of spaces are tolerated, as most
    /// servers do; an all-blank string is the empty scope.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The usual input (a stored scope, a client's request) is in wire form
        // already: checked, then taken in one copy.
        // (A leading, trailing or doubled space makes an empty token: not a token.)
        let canonical = s
            .split(' ')
            .enumerate()
            .all(|(i, t)| is_scope_token(t) && !s.split(' ').take(i).any(|u| u == t));
        if canonical {
            return Ok(Self(s.to_owned()));
        }
        let mut scope = Scope::empty();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            scope.insert(token)?;
        }
        Ok(scope)
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.is_subset(other)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({:?})", self.0)
    }
}

impl<'a> FromIterator<&'a str> for Scope {
    /// Collects tokens, silently skipping any that are not valid scope tokens.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut scope = Scope::empty();
        for token in iter {
            let _ = scope.insert(token);
        }
        scope
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dedups_and_keeps_order() {
        let s: Scope = "write  read write".parse().unwrap();
        assert_eq!(s.to_string(), "write read");
        assert_eq!(s.len(), 2);
        assert_eq!(s, "read write".parse().unwrap());
    }

    #[test]
    fn wire_form_whatever_the_spacing() {
        for (given, wire) in [
            ("read write", "read write"),
            ("read  write", "read write"),
            (" read", "read"),
            ("read ", "read"),
            ("a b a", "a b"),
            ("b a b a", "b a"),
            ("", ""),
            ("   ", ""),
        ] {
            let scope: Scope = given.parse().unwrap();
            assert_eq!(scope.as_str(), wire, "{given:?}");
            assert_eq!(scope.iter().collect::<Vec<_>>().join(" "), wire);
            assert_eq!(serde_json::to_string(&scope).unwrap(), format!("{wire:?}"));
        }
        let mut s = Scope::empty();
        s.insert("read").unwrap();
        s.insert("read").unwrap();
        s.insert("write").unwrap();
        assert_eq!(s.as_str(), "read write");
        assert_eq!(s.len(), 2);
        assert_eq!(Scope::empty().len(), 0);
        assert!(!Scope::empty().contains(""));
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
            assert_eq!(bad.parse::<Scope>(), Err(InvalidScope), "{bad}");
        }
        assert!("".parse::<Scope>().unwrap().is_empty());
    }

    #[test]
    fn subset() {
        let all: Scope = "read write introspection".parse().unwrap();
        assert!(Scope::empty().is_subset(&all));
        assert!("read".parse::<Scope>().unwrap().is_subset(&all));
        assert!(!"read admin".parse::<Scope>().unwrap().is_subset(&all));
    }
}
