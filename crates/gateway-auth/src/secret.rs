//! Opaque high-entropy secrets: API keys, A2A keys and refresh tokens.
//!
//! A secret is 32 random bytes, base64url-encoded behind a recognisable prefix (`mcpgw_` for
//! API keys, `mcpgw_rt_` for refresh tokens) so secret scanners and humans can tell what
//! leaked. Only its SHA-256 is stored; lookups go by hash and the final comparison is
//! constant-time. They are never bcrypted: 256 bits of entropy need no key stretching, and
//! a bcrypt per request would put ~50 ms of CPU on the hot path.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Prefix of every API key (user and A2A).
pub const API_KEY_PREFIX: &str = "mcpgw_";
/// Prefix of every refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "mcpgw_rt_";
/// Characters of a key shown in listings (prefix plus the first random characters).
pub const DISPLAY_PREFIX_LEN: usize = 14;
const RANDOM_BYTES: usize = 32;

/// A freshly generated secret: shown once to its owner, then only its hash remains.
#[derive(Debug)]
pub struct GeneratedSecret {
    /// The full secret. Return it to the client once; never log or store it.
    pub secret: SecretString,
    /// Hex SHA-256 of the secret, for storage and lookup.
    pub hash: String,
    /// The non-secret start of the secret, for listings.
    pub display_prefix: String,
}

/// Generates a secret with the given prefix.
///
/// # Errors
/// The operating system's random source failed.
pub fn generate(prefix: &str) -> Result<GeneratedSecret, AuthError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Crypto(e.to_string().into()))?;
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_secret(&secret);
    let display_prefix = secret
        .chars()
        .take(DISPLAY_PREFIX_LEN.max(prefix.len() + 4))
        .collect();
    Ok(GeneratedSecret {
        secret: SecretString::from(secret),
        hash,
        display_prefix,
    })
}

/// A new API key.
///
/// # Errors
/// The random source failed.
pub fn generate_api_key() -> Result<GeneratedSecret, AuthError> {
    generate(API_KEY_PREFIX)
}

/// A new refresh token.
///
/// # Errors
/// The random source failed.
pub fn generate_refresh_token() -> Result<GeneratedSecret, AuthError> {
    generate(REFRESH_TOKEN_PREFIX)
}

/// Hex SHA-256 of a secret.
#[must_use]
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `candidate` hashes to `stored_hash`, compared in constant time.
#[must_use]
pub fn matches(candidate: &SecretString, stored_hash: &str) -> bool {
    let computed = hash_secret(candidate.expose_secret());
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Whether a bearer credential is shaped like one of our API keys (not a JWT).
#[must_use]
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(API_KEY_PREFIX)
        && !credential.starts_with(REFRESH_TOKEN_PREFIX)
        && credential.len() == API_KEY_PREFIX.len() + 43
        && credential[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_unique_and_hashed() {
        let a = generate_api_key().unwrap();
        let b = generate_api_key().unwrap();
        assert!(a.secret.expose_secret().starts_with("mcpgw_"));
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_eq!(a.hash.len(), 64);
        assert!(!a.hash.contains(a.secret.expose_secret()));
        assert!(matches(&a.secret, &a.hash));
        assert!(!matches(&b.secret, &a.hash));
        assert!(a.secret.expose_secret().starts_with(&a.display_prefix));
        assert_eq!(a.display_prefix.len(), DISPLAY_PREFIX_LEN);
        assert!(looks_like_api_key(a.secret.expose_secret()));
    }

    #[test]
    fn refresh_tokens_are_not_api_keys() {
        let t = generate_refresh_token().unwrap();
        assert!(t.secret.expose_secret().starts_with(REFRESH_TOKEN_PREFIX));
        assert!(!looks_like_api_key(t.secret.expose_secret()));
        assert!(!looks_like_api_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        assert!(!looks_like_api_key("mcpgw_short"));
    }

    #[test]
    fn debug_does_not_reveal_the_secret() {
        let a = generate_api_key().unwrap();
        assert!(!format!("{a:?}").contains(a.secret.expose_secret()));
    }
}
