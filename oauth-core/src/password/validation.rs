//! Password strength rules equal to Django's four default validators.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;

/// Django's list of 20,000 common passwords (lower-cased, deduplicated), created by
/// Royce Williams and shipped with Django under its BSD licence.
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// One reason a password is refused. `Display` gives Django's exact message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordProblem {
    /// Django `UserAttributeSimilarityValidator` on the email address.
    TooSimilarToEmail,
    /// Django `MinimumLengthValidator`.
    TooShort {
        /// The configured minimum.
        min_length: usize,
    },
    /// Django `CommonPasswordValidator`.
    TooCommon,
    /// Django `NumericPasswordValidator`.
    EntirelyNumeric,
}

impl fmt::Display for PasswordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSimilarToEmail => {
                f.write_str("The password is too similar to the email address.")
            }
            Self::TooShort { min_length: 1 } => {
                f.write_str("This password is too short. It must contain at least 1 character.")
            }
            Self::TooShort { min_length } => write!(
                f,
                "This password is too short. It must contain at least {min_length} characters."
            ),
            Self::TooCommon => f.write_str("This password is too common."),
            Self::EntirelyNumeric => f.write_str("This password is entirely numeric."),
        }
    }
}

/// Which password rules apply. The default is Django's `AUTH_PASSWORD_VALIDATORS`
/// from `startproject`: similarity 0.7, minimum length 8, common list, not numeric.
///
/// ```
/// # use oauth_core::PasswordPolicy;
/// let policy = PasswordPolicy::default();
/// let problems = policy.check("123", Some("ann@example.com"));
/// let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
/// assert_eq!(messages, [
///     "This password is too short. It must contain at least 8 characters.",
///     "This password is too common.",
///     "This password is entirely numeric.",
/// ]);
/// assert!(policy.check("plum-violet-anchor-92", Some("ann@example.com")).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PasswordPolicy {
    /// Refuse passwords whose similarity to the email (or one of its parts) reaches
    /// this ratio (Django's `max_similarity`); `None` turns the rule off.
    pub max_similarity: Option<f64>,
    /// Minimum number of characters; `0` turns the rule off.
    pub min_length: usize,
    /// Refuse passwords on the common-password list.
    pub reject_common: bool,
    /// Refuse passwords made only of digits.
    pub reject_numeric: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            max_similarity: Some(0.7),
            min_length: 8,
            reject_common: true,
            reject_numeric: true,
        }
    }
}

impl PasswordPolicy {
    /// Every rule the password breaks, in Django's validator order (empty when it passes).
    #[must_use]
    pub fn check(&self, password: &str, email: Option<&str>) -> Vec<PasswordProblem> {
        let mut problems = Vec::new();
        if let (Some(max), Some(email)) = (self.max_similarity, email)
            && too_similar(password, email, max)
        {
            problems.push(PasswordProblem::TooSimilarToEmail);
        }
        if password.chars().count() < self.min_length {
            problems.push(PasswordProblem::TooShort {
                min_length: self.min_length,
            });
        }
        if self.reject_common && COMMON_PASSWORDS.contains(password.trim().to_lowercase().as_str())
        {
            problems.push(PasswordProblem::TooCommon);
        }
        if self.reject_numeric && !password.is_empty() && password.chars().all(char::is_numeric) {
            problems.push(PasswordProblem::EntirelyNumeric);
        }
        problems
    }
}

/// Django's `UserAttributeSimilarityValidator` for one attribute: the whole value and
/// each of its `\W+`-separated parts are compared with `SequenceMatcher.quick_ratio`.
fn too_similar(password: &str, value: &str, max_similarity: f64) -> bool {
    let password: Vec<char> = password.to_lowercase().chars().collect();
    let value = value.to_lowercase();
    let parts = value
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .chain(std::iter::once(value.as_str()));
    parts.into_iter().any(|part| {
        let part: Vec<char> = part.chars().collect();
        !exceeds_maximum_length_ratio(password.len(), part.len(), max_similarity)
            && quick_ratio(&password, &part) >= max_similarity
    })
}

/// Skips values so much shorter than the password that they cannot reach the ratio.
#[allow(clippy::cast_precision_loss)] // lengths are far below 2^52
fn exceeds_maximum_length_ratio(pwd_len: usize, value_len: usize, max_similarity: f64) -> bool {
    let bound = max_similarity / 2.0 * pwd_len as f64;
    pwd_len >= 10 * value_len && (value_len as f64) < bound
}

/// Python's `difflib.SequenceMatcher(a, b).quick_ratio()`: `2·M / (|a| + |b|)` where
/// `M` is the size of the multiset intersection of the two strings' characters.
#[allow(clippy::cast_precision_loss)]
fn quick_ratio(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut avail: HashMap<char, usize> = HashMap::new();
    for &c in b {
        *avail.entry(c).or_default() += 1;
    }
    let mut matches = 0usize;
    for c in a {
        if let Some(n) = avail.get_mut(c)
            && *n > 0
        {
            *n -= 1;
            matches += 1;
        }
    }
    2.0 * matches as f64 / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(pw: &str, email: Option<&str>) -> Vec<String> {
        PasswordPolicy::default()
            .check(pw, email)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const SHORT: &str = "This password is too short. It must contain at least 8 characters.";
    const COMMON: &str = "This password is too common.";
    const NUMERIC: &str = "This password is entirely numeric.";
    const SIMILAR: &str = "The password is too similar to the email address.";

    #[test]
    fn the_common_list_is_djangos() {
        assert!(
            COMMON_PASSWORDS.len() >= 19_000,
            "{}",
            COMMON_PASSWORDS.len()
        );
        assert!(COMMON_PASSWORDS.contains("password"));
    }

    #[test]
    fn each_rule_alone() {
        assert_eq!(messages("xk#9", None), [SHORT]);
        assert_eq!(messages("password", None), [COMMON]);
        assert_eq!(
            messages("  PassWord ", None),
            [COMMON],
            "lower-cased and trimmed"
        );
        assert_eq!(messages("73910284651", None), [NUMERIC]);
        assert_eq!(
            messages("margaret.h@example.org", Some("margaret.h@example.org")),
            [SIMILAR]
        );
        assert_eq!(
            messages("hamilton-77", Some("margaret.hamilton@nasa.gov")),
            [SIMILAR]
        );
        assert!(messages("plum-violet-anchor-92", Some("margaret@nasa.gov")).is_empty());
    }

    #[test]
    fn rules_combine_in_django_order() {
        // The seed's capture for "123".
        assert_eq!(messages("123", None), [SHORT, COMMON, NUMERIC]);
        assert_eq!(
            messages("1234567", Some("x@example.com")),
            [SHORT, COMMON, NUMERIC]
        );
        assert_eq!(messages("annx", Some("ann@example.com")), [SIMILAR, SHORT]);
        assert_eq!(messages("", None), [SHORT]);
    }

    #[test]
    fn quick_ratio_matches_python() {
        // difflib.SequenceMatcher(a="abcd", b="bcde").quick_ratio() == 0.75
        let r = quick_ratio(&['a', 'b', 'c', 'd'], &['b', 'c', 'd', 'e']);
        assert!((r - 0.75).abs() < 1e-12);
        // a long password against a short part is skipped, as in Django
        assert!(exceeds_maximum_length_ratio(40, 3, 0.7));
        assert!(!exceeds_maximum_length_ratio(8, 3, 0.7));
    }

    #[test]
    fn min_length_is_configurable() {
        let policy = PasswordPolicy {
            min_length: 12,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check("correct-h0rse", None),
            Vec::<PasswordProblem>::new()
        );
        assert_eq!(
            policy.check("kx9-plum", None)[0].to_string(),
            "This password is too short. It must contain at least 12 characters."
        );
    }
}
