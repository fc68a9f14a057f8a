//! Secrets at rest: AES-256-GCM with a master key from configuration.
//!
//! Upstream credentials and server environments are stored sealed, as text:
//!
//! ```text
//! v1:<key id>:<base64(nonce || ciphertext || tag)>
//! ```
//!
//! - a fresh random 96-bit nonce per seal (never a counter: several replicas seal concurrently);
//! - the version and key id are also the associated data, so a value cannot be re-labelled with
//!   another key id or format without failing authentication;
//! - the key id names the key that sealed the value, so keys rotate: the current key
//!   (`secrets.key_id` / `secrets.master_key`) seals, it and every key of
//!   `secrets.previous_keys` open. Values sealed with an old key are re-sealed with the current
//!   one whenever they are written again.
//!
//! Neither [`Sealer`]'s `Debug` nor any [`SealError`] shows a key or a plaintext; errors name
//! at most the key id, which is not secret.
//!
//! ```
//! use gateway_auth::sealing::Sealer;
//! use gateway_types::config::SecretsConfig;
//! use secrecy::SecretString;
//!
//! let cfg = SecretsConfig {
//!     key_id: "2026-11".into(),
//!     master_key: Some(SecretString::from("cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0=")),
//!     ..SecretsConfig::default()
//! };
//! let sealer = Sealer::from_config(&cfg).unwrap();
//! let sealed = sealer.seal("ghp_upstream-token").unwrap();
//! assert!(sealed.0.starts_with("v1:2026-11:"));
//! assert_eq!(sealer.open(&sealed).unwrap(), "ghp_upstream-token");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gateway_types::config::{ConfigErrors, ConfigIssue, SecretsConfig, valid_key_id};
use gateway_types::model::Sealed;
use secrecy::ExposeSecret;

/// The format tag of the sealed text form.
pub const FORMAT_VERSION: &str = "v1";
/// Bytes of a master key (AES-256).
pub const KEY_BYTES: usize = 32;
/// Bytes of a nonce (96 bits, the GCM standard size).
pub const NONCE_BYTES: usize = 12;
/// Bytes of the authentication tag appended to every ciphertext.
const TAG_BYTES: usize = 16;

/// Why a value could not be sealed or opened. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Not of the form `v1:<key id>:<base64>`.
    #[error("sealed value is malformed (expected v1:<key id>:<base64>)")]
    Malformed,
    /// Sealed in a format this version does not know.
    #[error("sealed value has an unsupported format version")]
    UnsupportedVersion,
    /// Sealed with a key that is neither `secrets.key_id` nor one of `secrets.previous_keys`.
    #[error(
        "sealed with key {0:?}, which is not configured (neither secrets.key_id nor in secrets.previous_keys)"
    )]
    UnknownKey(String),
    /// Authentication failed: the ciphertext was altered, or the key under that id is not the
    /// one that sealed it.
    #[error("cannot open sealed value: it was altered or the key {0:?} is not the one that sealed it")]
    Tampered(String),
    /// The opened bytes are not UTF-8 (they were never sealed by [`Sealer::seal`]).
    #[error("sealed value does not hold text")]
    NotText,
    /// The operating system's random source failed.
    #[error("random source failed")]
    Random(#[source] getrandom::Error),
    /// The plaintext is too long for AES-GCM.
    #[error("value too long to seal")]
    TooLong,
}

/// Seals and opens secrets with the configured keys. Cheap to share (`Arc`); `Debug` lists
/// key ids only.
pub struct Sealer {
    current_id: String,
    current: Aes256Gcm,
    previous: BTreeMap<String, Aes256Gcm>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.current_id)
            .field("previous_key_ids", &self.previous.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Decodes a base64 key of exactly [`KEY_BYTES`] bytes.
fn decode_key(key: &str, config_key: &str) -> Result<Aes256Gcm, ConfigIssue> {
    let bytes = STANDARD.decode(key.trim()).map_err(|_| {
        ConfigIssue::new(
            config_key,
            "is not valid base64; use base64 of 32 random bytes (e.g. `openssl rand -base64 32`)",
        )
    })?;
    if bytes.len() != KEY_BYTES {
        return Err(ConfigIssue::new(
            config_key,
            format!(
                "decodes to {} bytes; AES-256 needs exactly {KEY_BYTES} (e.g. `openssl rand -base64 32`)",
                bytes.len()
            ),
        ));
    }
    let key = Key::<Aes256Gcm>::try_from(bytes.as_slice())
        .map_err(|_| ConfigIssue::new(config_key, "is not a valid AES-256 key"))?;
    Ok(Aes256Gcm::new(&key))
}

/// The associated data that binds a ciphertext to its format and key id.
fn associated_data(key_id: &str) -> String {
    format!("{FORMAT_VERSION}:{key_id}")
}

impl Sealer {
    /// Builds the sealer from `secrets.*`.
    ///
    /// # Errors
    /// Every problem at once, keyed like the configuration: a missing `master_key`, a key that
    /// is not base64 of exactly 32 bytes, an invalid or repeated key id.
    pub fn from_config(cfg: &SecretsConfig) -> Result<Self, ConfigErrors> {
        let mut issues = Vec::new();
        if !valid_key_id(&cfg.key_id) {
            issues.push(ConfigIssue::new(
                "secrets.key_id",
                "must be 1-64 characters of [A-Za-z0-9-_.]",
            ));
        }
        let current = match &cfg.master_key {
            None => {
                issues.push(ConfigIssue::new(
                    "secrets.master_key",
                    "is not set; set GATEWAY__SECRETS__MASTER_KEY to base64 of 32 random bytes (e.g. `openssl rand -base64 32`)",
                ));
                None
            }
            Some(key) => decode_key(key.expose_secret(), "secrets.master_key")
                .map_err(|issue| issues.push(issue))
                .ok(),
        };
        let mut previous = BTreeMap::new();
        for (id, key) in &cfg.previous_keys {
            let config_key = format!("secrets.previous_keys.{id}");
            if !valid_key_id(id) {
                issues.push(ConfigIssue::new(
                    config_key.clone(),
                    "key ids must be 1-64 characters of [A-Za-z0-9-_.]",
                ));
            }
            if *id == cfg.key_id {
                issues.push(ConfigIssue::new(
                    config_key.clone(),
                    "repeats secrets.key_id; a key id names one key",
                ));
            }
            match decode_key(key.expose_secret(), &config_key) {
                Ok(cipher) => {
                    previous.insert(id.clone(), cipher);
                }
                Err(issue) => issues.push(issue),
            }
        }
        match current {
            Some(current) if issues.is_empty() => Ok(Self {
                current_id: cfg.key_id.clone(),
                current,
                previous,
            }),
            _ => Err(ConfigErrors(issues)),
        }
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.current_id
    }

    /// Seals `plaintext` with the current key and a fresh random nonce.
    ///
    /// # Errors
    /// The operating system's random source failed, or the value exceeds AES-GCM's limit
    /// (64 GiB); neither happens in practice, but neither may panic.
    pub fn seal(&self, plaintext: &str) -> Result<Sealed, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let aad = associated_data(&self.current_id);
        let ciphertext = self
            .current
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::TooLong)?;
        let mut blob = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(Sealed(format!("{aad}:{}", STANDARD.encode(blob))))
    }

    /// Opens a value sealed with the current key or any previous key.
    ///
    /// # Errors
    /// Malformed text, an unknown format or key id, or a ciphertext that fails
    /// authentication (altered, or sealed under another key with the same id).
    pub fn open(&self, sealed: &Sealed) -> Result<String, SealError> {
        let mut parts = sealed.0.splitn(3, ':');
        let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        if version != FORMAT_VERSION {
            return Err(SealError::UnsupportedVersion);
        }
        if !valid_key_id(key_id) {
            return Err(SealError::Malformed);
        }
        let cipher = if key_id == self.current_id {
            &self.current
        } else {
            self.previous
                .get(key_id)
                .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?
        };
        let blob = STANDARD.decode(body).map_err(|_| SealError::Malformed)?;
        if blob.len() < NONCE_BYTES + TAG_BYTES {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Malformed)?;
        let aad = associated_data(key_id);
        let plain = cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SealError::Tampered(key_id.to_owned()))?;
        String::from_utf8(plain).map_err(|_| SealError::NotText)
    }

    /// Seals a JSON value (its compact text).
    ///
    /// # Errors
    /// As [`Sealer::seal`].
    pub fn seal_json(&self, value: &serde_json::Value) -> Result<Sealed, SealError> {
        self.seal(&value.to_string())
    }

    /// Opens a value sealed by [`Sealer::seal_json`].
    ///
    /// # Errors
    /// As [`Sealer::open`], or [`SealError::NotText`] when the plaintext is not JSON.
    pub fn open_json(&self, sealed: &Sealed) -> Result<serde_json::Value, SealError> {
        serde_json::from_str(&self.open(sealed)?).map_err(|_| SealError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const KEY_A: &str = "cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0=";
    const KEY_B: &str = "c2Vjb25kLWtleS1vZi0zMi1ieXRlcy0tLS0tLS0tLS0=";

    fn config(id: &str, key: &str, previous: &[(&str, &str)]) -> SecretsConfig {
        SecretsConfig {
            key_id: id.into(),
            master_key: Some(SecretString::from(key)),
            previous_keys: previous
                .iter()
                .map(|(i, k)| ((*i).to_owned(), SecretString::from(*k)))
                .collect(),
        }
    }

    fn sealer(id: &str, key: &str, previous: &[(&str, &str)]) -> Sealer {
        Sealer::from_config(&config(id, key, previous)).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = sealer("k1", KEY_A, &[]);
        for text in [
            "",
            "x",
            "Bearer ghp_0123456789",
            "ünïcödé ✓",
            &"long".repeat(10_000),
        ] {
            let sealed = s.seal(text).unwrap();
            assert!(sealed.0.starts_with("v1:k1:"), "{}", sealed.0);
            assert!(!sealed.0.contains(text) || text.is_empty() || text == "x");
            assert_eq!(s.open(&sealed).unwrap(), text);
        }
        let json = serde_json::json!({"API_TOKEN": "s3cret", "N": "1"});
        assert_eq!(s.open_json(&s.seal_json(&json).unwrap()).unwrap(), json);
    }

    #[test]
    fn nonces_differ() {
        let s = sealer("k1", KEY_A, &[]);
        let a = s.seal("same").unwrap();
        let b = s.seal("same").unwrap();
        assert_ne!(a, b, "the same plaintext seals differently each time");
        let nonce =
            |v: &Sealed| STANDARD.decode(v.0.rsplit(':').next().unwrap()).unwrap()[..NONCE_BYTES].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let s = sealer("k1", KEY_A, &[]);
        let sealed = s.seal("secret").unwrap();
        let body = sealed.0.rsplit(':').next().unwrap();
        let mut blob = STANDARD.decode(body).unwrap();
        for i in [0, NONCE_BYTES, blob.len() - 1] {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            let err = s
                .open(&Sealed(format!("v1:k1:{}", STANDARD.encode(&bad))))
                .unwrap_err();
            assert!(matches!(err, SealError::Tampered(ref id) if id == "k1"), "{err}");
        }
        blob.truncate(NONCE_BYTES + TAG_BYTES - 1);
        let err = s
            .open(&Sealed(format!("v1:k1:{}", STANDARD.encode(&blob))))
            .unwrap_err();
        assert!(matches!(err, SealError::Malformed), "{err}");
        for bad in ["", "v1", "v1:k1", "v1:k1:!!!", "plain text", "v1::AAAA"] {
            assert!(
                matches!(s.open(&Sealed(bad.into())), Err(SealError::Malformed)),
                "{bad}"
            );
        }
        assert!(matches!(
            s.open(&Sealed(sealed.0.replacen("v1:", "v2:", 1))),
            Err(SealError::UnsupportedVersion)
        ));
    }

    #[test]
    fn relabelling_the_key_id_fails() {
        // Two keys configured; a value sealed with k2 relabelled as k1 must not open.
        let s = sealer("k2", KEY_B, &[("k1", KEY_A)]);
        let sealed = s.seal("secret").unwrap();
        let relabelled = Sealed(sealed.0.replacen("v1:k2:", "v1:k1:", 1));
        assert!(matches!(s.open(&relabelled), Err(SealError::Tampered(_))));
    }

    #[test]
    fn wrong_key_id_fails_clearly() {
        let old = sealer("k1", KEY_A, &[]);
        let sealed = old.seal("secret").unwrap();
        let new = sealer("k2", KEY_B, &[]);
        let err = new.open(&sealed).unwrap_err();
        assert!(matches!(err, SealError::UnknownKey(ref id) if id == "k1"));
        let text = err.to_string();
        assert!(
            text.contains("\"k1\"") && text.contains("secrets.previous_keys"),
            "{text}"
        );

        // Same id, different key: refused as not authentic, naming the id.
        let impostor = sealer("k1", KEY_B, &[]);
        let err = impostor.open(&sealed).unwrap_err();
        assert!(matches!(err, SealError::Tampered(ref id) if id == "k1"), "{err}");
    }

    #[test]
    fn rotation() {
        let old = sealer("k1", KEY_A, &[]);
        let sealed_old = old.seal("before rotation").unwrap();
        let rotated = sealer("k2", KEY_B, &[("k1", KEY_A)]);
        assert_eq!(rotated.key_id(), "k2");
        assert_eq!(rotated.open(&sealed_old).unwrap(), "before rotation");
        let sealed_new = rotated.seal("after rotation").unwrap();
        assert!(sealed_new.0.starts_with("v1:k2:"), "{}", sealed_new.0);
        assert_eq!(rotated.open(&sealed_new).unwrap(), "after rotation");
        // The old configuration cannot open what the new key sealed.
        assert!(matches!(old.open(&sealed_new), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn bad_configuration_reports_every_key() {
        let mut cfg = config("bad:id", "not base64!", &[("k0", "c2hvcnQ="), ("bad:id", KEY_A)]);
        let err = Sealer::from_config(&cfg).unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|i| i.key.as_str()).collect();
        for want in [
            "secrets.key_id",
            "secrets.master_key",
            "secrets.previous_keys.k0",
            "secrets.previous_keys.bad:id",
        ] {
            assert!(keys.contains(&want), "missing {want} in {keys:?}");
        }
        let short = err
            .0
            .iter()
            .find(|i| i.key == "secrets.previous_keys.k0")
            .unwrap();
        assert!(short.message.contains("5 bytes"), "{}", short.message);
        assert!(!err.to_string().contains(KEY_A), "keys are never printed");

        cfg = config("k1", KEY_A, &[]);
        cfg.master_key = None;
        let err = Sealer::from_config(&cfg).unwrap_err();
        assert_eq!(err.0[0].key, "secrets.master_key");
        assert!(err.0[0].message.contains("not set"));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let s = sealer("k2", KEY_B, &[("k1", KEY_A)]);
        let debug = format!("{s:?}");
        assert!(debug.contains("k2") && debug.contains("k1"), "{debug}");
        assert!(!debug.contains(KEY_A) && !debug.contains(KEY_B), "{debug}");
    }
}
