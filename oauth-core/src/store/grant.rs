//! Authorization codes and remembered consents: the state of the authorization code
//! grant (RFC 6749 §4.1) between the browser's visit and the client's exchange.

use async_trait::async_trait;

use super::{StoreError, TokenFamily, UnixTime, UserId};
use crate::scope::Scope;
use crate::token::TokenHash;

/// An issued authorization code, by digest: the code itself is never stored.
///
/// It is bound to everything the token request must match: the client, the redirect
/// URI, the user, the scope and the PKCE challenge (RFC 6749 §4.1.3, RFC 7636 §4.6).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    /// SHA-256 of the code; unique.
    pub hash: TokenHash,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who authorized it.
    pub user_id: UserId,
    /// The redirect URI the code was delivered to.
    pub redirect_uri: String,
    /// Whether the authorization request named `redirect_uri` (RFC 6749 §4.1.3: then
    /// the token request must repeat it).
    pub redirect_uri_sent: bool,
    /// The scope the user granted.
    pub scope: Scope,
    /// The PKCE `S256` challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    /// The family the tokens issued for this code will belong to, so that a replay
    /// of the code can revoke them (RFC 6749 §4.1.2).
    pub family: TokenFamily,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it stops being redeemable.
    pub expires_at: UnixTime,
    /// When it was redeemed, if it was.
    pub consumed_at: Option<UnixTime>,
    /// When a second redemption was refused, if one was — or when the code was
    /// voided after its redemption ([`GrantStore::void_codes`]).
    pub replayed_at: Option<UnixTime>,
}

/// The result of [`GrantStore::redeem_code`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Redemption {
    /// This call consumed the code; carries it as it was before.
    Redeemed(AuthorizationCode),
    /// The code had already been redeemed: a replay. The caller must revoke the
    /// tokens of its family (RFC 6749 §4.1.2).
    Replayed(AuthorizationCode),
    /// Unknown or expired: nothing changed.
    Invalid,
}

/// A user's remembered consent to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Consent {
    /// The user.
    pub user_id: UserId,
    /// The client.
    pub client_id: String,
    /// Everything the user has granted the client so far.
    pub scope: Scope,
    /// When the consent was last given.
    pub granted_at: UnixTime,
}

/// Storage of authorization codes and consents.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a newly issued code (RFC 6749 §4.1.2).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the digest is already stored.
    async fn insert_code(&self, code: &AuthorizationCode) -> Result<(), StoreError>;

    /// Consumes a code (RFC 6749 §4.1.3), atomically: of any number of concurrent
    /// calls with one code — in this process or another sharing the database —
    /// exactly one returns [`Redemption::Redeemed`], and only while the code has not
    /// expired at `now`. Every later call returns [`Redemption::Replayed`] and marks
    /// the code as replayed.
    async fn redeem_code(&self, hash: &TokenHash, now: UnixTime) -> Result<Redemption, StoreError>;

    /// Whether a redemption of this code has been refused as a replay since it was
    /// redeemed. The winner of a redemption asks this after storing its tokens: a
    /// replay that came in between revoked the family before those tokens existed.
    async fn code_replayed(&self, hash: &TokenHash) -> Result<bool, StoreError>;

    /// Voids the codes `user_id` authorized for `client_id` (for every client when
    /// `None`): the user withdrew that grant, or lost the right to make it (a new
    /// password, a deactivated account). RFC 6749 §4.1.2 lets a code be revoked; it
    /// must be here, or a code issued just before the withdrawal could still be
    /// exchanged for fresh tokens within its lifetime.
    ///
    /// A code not redeemed yet is deleted: a later exchange finds nothing. A code
    /// already redeemed is marked replayed, so that an exchange that redeemed it but
    /// is still storing its tokens revokes them when it checks
    /// [`code_replayed`](Self::code_replayed). Call this *before* revoking the
    /// user's tokens: a racing exchange then either stored its tokens before the
    /// revocation (which revokes them) or checks after this call (and revokes them
    /// itself). Returns how many codes not yet redeemed were deleted.
    async fn void_codes(
        &self,
        user_id: UserId,
        client_id: Option<&str>,
        now: UnixTime,
    ) -> Result<u64, StoreError>;

    /// Voids every code of `client_id`, whoever authorized it, as
    /// [`void_codes`](Self::void_codes) does for one user's: the client's grants
    /// are all withdrawn (every token of it revoked by an administrator) or its
    /// credentials changed (a new secret, another type), so that whoever held a
    /// code issued just before cannot exchange it afterwards. Call it *before*
    /// [`TokenStore::revoke_client_tokens`](super::TokenStore::revoke_client_tokens),
    /// for the same reason. Returns how many codes not yet redeemed were deleted.
    async fn void_client_codes(&self, client_id: &str, now: UnixTime) -> Result<u64, StoreError>;

    /// Turns a redeemed code into a tombstone kept until `until`: its PKCE
    /// challenge is cleared and it is not purged ([`purge_codes`](Self::purge_codes),
    /// `cleartokens`) before `until`, so that a replay long after the code expired
    /// is still recognised and revokes the tokens issued from it (RFC 6749 §4.1.2).
    /// The exchange calls it after storing its tokens, with the time the longest of
    /// them can live (the refresh token's lifetime; the access token's when no
    /// refresh token was issued). A code not redeemed is left alone; `until`
    /// earlier than the code's expiry does not shorten it.
    async fn retain_code(&self, hash: &TokenHash, until: UnixTime) -> Result<(), StoreError>;

    /// Deletes codes that expired before `before` (a redeemed code: whose
    /// tombstone, [`retain_code`](Self::retain_code), ended before); returns how many.
    async fn purge_codes(&self, before: UnixTime) -> Result<u64, StoreError>;

    /// The user's remembered consent to the client, if any.
    async fn consent(
        &self,
        user_id: UserId,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError>;

    /// Remembers a consent, adding its scope to what the user granted the client
    /// before.
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;

    /// Every consent of a user, newest first (DOT's authorized-tokens page).
    async fn consents(&self, user_id: UserId) -> Result<Vec<Consent>, StoreError>;

    /// Forgets a consent; `false` when there was none. The caller revokes the tokens
    /// (see [`TokenStore::revoke_user_client_tokens`](super::TokenStore::revoke_user_client_tokens)).
    async fn forget_consent(&self, user_id: UserId, client_id: &str) -> Result<bool, StoreError>;
}
