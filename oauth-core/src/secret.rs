//! Newtypes for secret values.
//!
//! Every secret the toolkit handles — passwords, client secrets, access and refresh
//! tokens — travels in one of these types. Their `Debug` prints `[redacted]`, they
//! have no `Display`, and the value is only reachable through an explicit
//! [`secret()`](Password::secret) call, so a stray `{:?}` in a log line cannot leak it.

use std::fmt;

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            #[must_use]
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value. Call this only where the value is really needed.
            #[must_use]
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Unwraps the secret value.
            #[must_use]
            pub fn into_secret(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

secret_type!(
    /// A user's password in clear, as typed at sign-in or sign-up.
    ///
    /// ```
    /// # use oauth_core::Password;
    /// let pw = Password::new("correct horse battery staple");
    /// assert_eq!(format!("{pw:?}"), "Password([redacted])");
    /// assert_eq!(pw.secret(), "correct horse battery staple");
    /// ```
    Password
);
secret_type!(
    /// A client secret in clear (RFC 6749 §2.3.1), as presented by a confidential client.
    ClientSecret
);
secret_type!(
    /// An opaque access token in clear (RFC 6749 §1.4), as handed to a client.
    AccessToken
);
secret_type!(
    /// An opaque refresh token in clear (RFC 6749 §1.5), as handed to a client.
    RefreshToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let values = [
            format!("{:?}", Password::new("hunter2")),
            format!("{:?}", ClientSecret::new("hunter2")),
            format!("{:?}", AccessToken::new("hunter2")),
            format!("{:?}", RefreshToken::new("hunter2")),
            format!("{:#?}", Some(Password::new("hunter2"))),
        ];
        for v in values {
            assert!(!v.contains("hunter2"), "{v}");
            assert!(v.contains("[redacted]"), "{v}");
        }
    }
}
