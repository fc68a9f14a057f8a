//! Password hashing and policy.
//!
//! bcrypt with a configured cost (production at least 12). bcrypt reads only the first 72
//! bytes of a password, so longer passwords are rejected rather than silently truncated.
//! Hashing and verification are CPU-heavy: the async helpers run them on the blocking pool.
//! [`verify_or_dummy`] spends the same time when the account does not exist, so an attacker
//! cannot tell unknown emails from wrong passwords by timing.

use std::sync::OnceLock;

use secrecy::{ExposeSecret, SecretString};

use crate::error::AuthError;

/// bcrypt's input limit.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Checks the password policy: 8 characters to 72 bytes, with at least one letter and one digit,
/// not one repeated character.
///
/// # Errors
/// [`AuthError::WeakPassword`] naming the rule that failed.
pub fn check_policy(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AuthError::WeakPassword("must be at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::WeakPassword("must be at most 72 bytes"));
    }
    if !password.chars().any(char::is_alphabetic) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err(AuthError::WeakPassword(
            "must contain at least one letter and one digit",
        ));
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return Err(AuthError::WeakPassword("must not repeat a single character"));
    }
    Ok(())
}

/// Hashes a password (blocking; see [`hash_async`]).
///
/// # Errors
/// Passwords over 72 bytes, or a bcrypt failure.
pub fn hash(password: &SecretString, cost: u32) -> Result<String, AuthError> {
    let p = password.expose_secret();
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::WeakPassword("must be at most 72 bytes"));
    }
    bcrypt::hash(p, cost).map_err(|e| AuthError::Crypto(Box::new(e)))
}

/// Whether `password` matches `hash` (blocking). Malformed hashes and over-long passwords do not match.
#[must_use]
pub fn verify(password: &SecretString, hash: &str) -> bool {
    let p = password.expose_secret();
    p.len() <= MAX_PASSWORD_BYTES && bcrypt::verify(p, hash).unwrap_or(false)
}

/// Verifies against `hash`, or, when there is no account, against a dummy hash of the same
/// cost, so both paths take the same time. Returns false for the dummy.
#[must_use]
pub fn verify_or_dummy(password: &SecretString, hash: Option<&str>, cost: u32) -> bool {
    match hash {
        Some(h) => verify(password, h),
        None => {
            let _ = verify(password, dummy_hash(cost));
            false
        }
    }
}

fn dummy_hash(cost: u32) -> &'static str {
    static DUMMIES: OnceLock<std::sync::Mutex<Vec<(u32, &'static str)>>> = OnceLock::new();
    let cell = DUMMIES.get_or_init(Default::default);
    let mut guard = match cell.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((_, h)) = guard.iter().find(|(c, _)| *c == cost) {
        return h;
    }
    let h: &'static str = bcrypt::hash("dummy-password-for-timing-0", cost)
        .map(|s| &*Box::leak(s.into_boxed_str()))
        .unwrap_or("$2b$04$invalidinvalidinvalidinuJ0kq3e5cQ8gG0Kf5m5h1c8Q1s9Vd2");
    guard.push((cost, h));
    h
}

/// [`hash`] on the blocking pool.
///
/// # Errors
/// As [`hash`], or the blocking task failed.
pub async fn hash_async(password: SecretString, cost: u32) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash(&password, cost))
        .await
        .map_err(|e| AuthError::Crypto(Box::new(e)))?
}

/// [`verify_or_dummy`] on the blocking pool.
pub async fn verify_async(password: SecretString, hash: Option<String>, cost: u32) -> bool {
    tokio::task::spawn_blocking(move || verify_or_dummy(&password, hash.as_deref(), cost))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn policy() {
        assert!(check_policy("qwerty123").is_ok());
        assert!(check_policy("short1").is_err());
        assert!(check_policy("onlyletters").is_err());
        assert!(check_policy("1234567890").is_err());
        assert!(
            check_policy(&format!("a1{}", "x".repeat(71))).is_err(),
            "73 bytes"
        );
        assert!(check_policy("aaaaaaaa").is_err());
    }

    #[test]
    fn hash_and_verify() {
        let h = hash(&s("correct horse 1"), 4).unwrap();
        assert!(h.starts_with("$2"));
        assert!(verify(&s("correct horse 1"), &h));
        assert!(!verify(&s("correct horse 2"), &h));
        assert!(!verify(&s("x"), "not a hash"));
    }

    #[test]
    fn overlong_passwords_are_rejected_not_truncated() {
        let base = "a1".repeat(36); // 72 bytes
        let h = hash(&s(&base), 4).unwrap();
        let longer = format!("{base}EXTRA");
        assert!(hash(&s(&longer), 4).is_err());
        assert!(!verify(&s(&longer), &h), "bcrypt would accept this by truncation");
    }

    #[test]
    fn dummy_never_matches() {
        assert!(!verify_or_dummy(&s("dummy-password-for-timing-0"), None, 4));
    }
}
