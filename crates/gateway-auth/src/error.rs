//! Errors of authentication and authorization, and their client-safe faces.

use gateway_types::error::{BoxError, ErrorCode, GatewayError};
use gateway_types::store::StoreError;

/// Why authentication or authorization failed.
///
/// Variants carry no secret and no detail an attacker could use: "unknown email" and "wrong
/// password" are the same [`AuthError::InvalidCredentials`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password, unknown or revoked credential.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No credential was presented.
    #[error("missing credentials")]
    MissingCredentials,
    /// The token is malformed, badly signed, of the wrong issuer or audience, or not yet valid.
    #[error("invalid token")]
    InvalidToken,
    /// The token has expired.
    #[error("token expired")]
    TokenExpired,
    /// The credential was revoked (logout, rotation, key revocation).
    #[error("credential revoked")]
    Revoked,
    /// A refresh token was used twice; its whole family has been revoked.
    #[error("refresh token reuse detected")]
    RefreshTokenReuse,
    /// Too many failed attempts; try again later.
    #[error("too many failed attempts")]
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after_seconds: u64,
    },
    /// The principal lacks a permission.
    #[error("permission denied")]
    Forbidden,
    /// A new password does not meet the policy.
    #[error("password {0}")]
    WeakPassword(&'static str),
    /// An external identity provider's keys could not be fetched.
    #[error("identity provider unavailable")]
    ProviderUnavailable(#[source] BoxError),
    /// Storage failed.
    #[error("store failure")]
    Store(#[from] StoreError),
    /// A cryptographic primitive or the random source failed.
    #[error("crypto failure")]
    Crypto(#[source] BoxError),
}

impl From<AuthError> for GatewayError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::InvalidCredentials => Self::new(ErrorCode::Unauthorized, "invalid credentials"),
            AuthError::MissingCredentials => Self::from_code(ErrorCode::Unauthorized),
            AuthError::InvalidToken => Self::new(ErrorCode::Unauthorized, "invalid token"),
            AuthError::TokenExpired => Self::new(ErrorCode::Unauthorized, "token expired"),
            AuthError::Revoked => Self::new(ErrorCode::Unauthorized, "credential revoked"),
            AuthError::RefreshTokenReuse => Self::new(
                ErrorCode::Unauthorized,
                "refresh token already used; all sessions of this login were revoked",
            ),
            AuthError::Throttled { retry_after_seconds } => Self::new(
                ErrorCode::RateLimited,
                format!("too many failed attempts; retry in {retry_after_seconds} seconds"),
            ),
            AuthError::Forbidden => Self::from_code(ErrorCode::Forbidden),
            AuthError::WeakPassword(rule) => Self::new(ErrorCode::Validation, format!("password {rule}")),
            e @ AuthError::ProviderUnavailable(_) => Self::new(
                ErrorCode::Unavailable,
                "the identity provider cannot be reached to verify this token",
            )
            .with_source(e),
            AuthError::Store(e) => e.into(),
            e @ AuthError::Crypto(_) => Self::internal(e),
        }
    }
}
