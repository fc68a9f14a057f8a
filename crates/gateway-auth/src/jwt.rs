//! Access tokens: JSON Web Tokens signed by the gateway.
//!
//! Claims: `jti`, `sub` (user id, or API key id for app tokens), `org`, `role`, `iat`, `nbf`,
//! `exp`, `iss`, `aud`, plus `typ` (`access` or `a2a`), `scope` (permissions of an app token)
//! and `ns` (namespace scope). Verification pins everything: the algorithm comes from the key
//! the `kid` names, never from the token, so `alg: none` and HS/RS confusion cannot work; issuer,
//! audience, expiry and not-before are always checked (30 s leeway).
//!
//! Keys rotate: [`JwtKeys::with_previous`] keeps old keys verifying until their tokens expire
//! while only the current key signs.

use std::sync::Once;

use chrono::Utc;
use gateway_types::config::{AuthConfig, SigningAlgorithm};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AuthError;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Installs jsonwebtoken's RustCrypto provider as the process default. Idempotent; call it in
/// `main` and in test harnesses before any token is signed or verified.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

/// Kind of access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A user's token from login or refresh.
    Access,
    /// An app-to-app token from `POST /auth/a2a/token`.
    A2a,
}

/// The claims of every access token the gateway issues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Unique token id (deny-listed on logout).
    pub jti: String,
    /// User id, or the A2A key id.
    pub sub: String,
    /// Organization id.
    pub org: String,
    /// Role of the subject.
    pub role: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Kind.
    pub typ: TokenType,
    /// Permissions of an app token (empty for user tokens: the role decides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    /// Namespace the token is confined to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns: Option<String>,
    /// The login (refresh-token family) a user token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// What the caller decides about a new token; the issuer fills in the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSubject {
    /// `sub`.
    pub subject: String,
    /// `org`.
    pub org: String,
    /// `role`.
    pub role: String,
    /// `typ`.
    pub typ: TokenType,
    /// `scope`.
    pub scope: Vec<String>,
    /// `ns`.
    pub ns: Option<String>,
    /// `sid`.
    pub session: Option<String>,
}

struct Key {
    kid: String,
    alg: Algorithm,
    /// `None` for verify-only keys whose private half we do not hold.
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    /// The public JWK, for asymmetric keys (never for HMAC secrets).
    public_jwk: Option<Jwk>,
}

impl Key {
    fn hs256(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // The kid names the key without revealing it: a truncated hash of a hash.
        let kid = format!("hs-{}", &hex::encode(Sha256::digest(Sha256::digest(bytes)))[..16]);
        Self {
            kid,
            alg: Algorithm::HS256,
            encoding: Some(EncodingKey::from_secret(bytes)),
            decoding: DecodingKey::from_secret(bytes),
            public_jwk: None,
        }
    }

    fn from_pem(kid: &str, alg: SigningAlgorithm, pem: &[u8]) -> Result<Self, AuthError> {
        install_crypto_provider();
        let crypto = |e: jsonwebtoken::errors::Error| AuthError::Crypto(Box::new(e));
        let (alg, encoding) = match alg {
            SigningAlgorithm::Rs256 => (Algorithm::RS256, EncodingKey::from_rsa_pem(pem).map_err(crypto)?),
            SigningAlgorithm::EdDsa => (Algorithm::EdDSA, EncodingKey::from_ed_pem(pem).map_err(crypto)?),
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).map_err(crypto)?;
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(crypto)?;
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            encoding: Some(encoding),
            decoding,
            public_jwk: Some(jwk),
        })
    }
}

/// The signing key and the keys still accepted for verification.
pub struct JwtKeys {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("current_kid", &self.current.kid)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl JwtKeys {
    /// HS256 with one shared secret.
    #[must_use]
    pub fn hs256(secret: &SecretString) -> Self {
        Self {
            current: Key::hs256(secret),
            previous: Vec::new(),
        }
    }

    /// An asymmetric signing key from a PKCS#8 PEM private key.
    ///
    /// # Errors
    /// The PEM does not hold a key of that algorithm.
    pub fn from_pem(kid: &str, alg: SigningAlgorithm, pem: &[u8]) -> Result<Self, AuthError> {
        Ok(Self {
            current: Key::from_pem(kid, alg, pem)?,
            previous: Vec::new(),
        })
    }

    /// The keys configured in `auth`: the first of `signing_keys` signs when there are any,
    /// otherwise `jwt_secret` (HS256). Every other configured key and secret still verifies.
    ///
    /// # Errors
    /// An unreadable or invalid key file, named by its kid (the file's content is never shown).
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, KeyFileError> {
        let mut asymmetric = Vec::new();
        for k in &cfg.signing_keys {
            let pem = std::fs::read(&k.private_key_file).map_err(|source| KeyFileError {
                kid: k.kid.clone(),
                source: Box::new(source),
            })?;
            let key = Key::from_pem(&k.kid, k.algorithm, &pem).map_err(|source| KeyFileError {
                kid: k.kid.clone(),
                source: Box::new(source),
            })?;
            asymmetric.push(key);
        }
        let mut keys = if asymmetric.is_empty() {
            Self::hs256(&cfg.jwt_secret)
        } else {
            let current = asymmetric.remove(0);
            let mut keys = Self {
                current,
                previous: asymmetric,
            };
            keys = keys.with_previous(&cfg.jwt_secret);
            keys
        };
        for secret in &cfg.previous_jwt_secrets {
            keys = keys.with_previous(secret);
        }
        Ok(keys)
    }

    /// Keeps `secret` verifying (but not signing) after a rotation.
    #[must_use]
    pub fn with_previous(mut self, secret: &SecretString) -> Self {
        let mut key = Key::hs256(secret);
        key.encoding = None;
        if self.find(&key.kid).is_none() {
            self.previous.push(key);
        }
        self
    }

    /// Keeps another asymmetric key verifying (but not signing).
    ///
    /// # Errors
    /// The PEM does not hold a key of that algorithm.
    pub fn with_previous_pem(
        mut self,
        kid: &str,
        alg: SigningAlgorithm,
        pem: &[u8],
    ) -> Result<Self, AuthError> {
        let mut key = Key::from_pem(kid, alg, pem)?;
        key.encoding = None;
        if self.find(kid).is_none() {
            self.previous.push(key);
        }
        Ok(self)
    }

    /// The id of the signing key.
    #[must_use]
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// The public keys as a JWK Set (`/.well-known/jwks.json`); HMAC secrets are never included.
    #[must_use]
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: std::iter::once(&self.current)
                .chain(&self.previous)
                .filter_map(|k| k.public_jwk.clone())
                .collect(),
        }
    }

    fn find(&self, kid: &str) -> Option<&Key> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
    }
}

/// A signing key file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("signing key {kid:?} could not be loaded")]
pub struct KeyFileError {
    /// The key's id.
    pub kid: String,
    /// Why.
    #[source]
    pub source: gateway_types::error::BoxError,
}

/// Issues and verifies access tokens.
#[derive(Debug)]
pub struct TokenIssuer {
    keys: JwtKeys,
    issuer: String,
    audience: String,
    ttl_seconds: i64,
}

impl TokenIssuer {
    /// A new issuer.
    #[must_use]
    pub fn new(
        keys: JwtKeys,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl_seconds: u64,
    ) -> Self {
        install_crypto_provider();
        Self {
            keys,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl_seconds: i64::try_from(ttl_seconds).unwrap_or(i64::MAX),
        }
    }

    /// The `iss` of issued tokens.
    #[must_use]
    pub fn issuer_name(&self) -> &str {
        &self.issuer
    }

    /// The keys.
    #[must_use]
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// Lifetime of issued tokens.
    #[must_use]
    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// Signs a token for `subject`, valid from now for the configured lifetime.
    ///
    /// # Errors
    /// Signing failed.
    pub fn issue(&self, subject: TokenSubject) -> Result<(String, AccessClaims), AuthError> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            jti: uuid::Uuid::new_v4().to_string(),
            sub: subject.subject,
            org: subject.org,
            role: subject.role,
            iat: now,
            nbf: now,
            exp: now.saturating_add(self.ttl_seconds),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            typ: subject.typ,
            scope: subject.scope,
            ns: subject.ns,
            sid: subject.session,
        };
        let current = &self.keys.current;
        let mut header = Header::new(current.alg);
        header.kid = Some(current.kid.clone());
        let encoding = current.encoding.as_ref().ok_or(AuthError::InvalidToken)?;
        let token = encode(&header, &claims, encoding).map_err(|e| AuthError::Crypto(Box::new(e)))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and not-before.
    ///
    /// # Errors
    /// [`AuthError::TokenExpired`] for an expired token, [`AuthError::InvalidToken`] for anything else.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.find(kid),
            None => None,
        }
        .ok_or(AuthError::InvalidToken)?;
        // The key decides the algorithm; a token claiming another one is forged.
        if header.alg != key.alg {
            return Err(AuthError::InvalidToken);
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::InvalidToken,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn issuer(keys: JwtKeys) -> TokenIssuer {
        TokenIssuer::new(keys, "mcp-gateway", "mcp-gateway", 900)
    }

    fn subject() -> TokenSubject {
        TokenSubject {
            subject: "user-1".into(),
            org: "org-1".into(),
            role: "admin".into(),
            typ: TokenType::Access,
            scope: vec![],
            ns: None,
            session: None,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn forge(keys_secret: &str, header: serde_json::Value, claims: serde_json::Value) -> String {
        use hmac_sign::sign;
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        format!(
            "{signing_input}.{}",
            sign(keys_secret.as_bytes(), signing_input.as_bytes())
        )
    }

    /// HMAC-SHA256 written out, so forged tokens do not depend on the code under test.
    mod hmac_sign {
        use super::*;
        pub fn sign(key: &[u8], msg: &[u8]) -> String {
            let mut k = [0u8; 64];
            if key.len() > 64 {
                k[..32].copy_from_slice(&Sha256::digest(key));
            } else {
                k[..key.len()].copy_from_slice(key);
            }
            let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
            let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
            let inner = Sha256::digest([ipad.as_slice(), msg].concat());
            let outer = Sha256::digest([opad.as_slice(), &inner[..]].concat());
            URL_SAFE_NO_PAD.encode(outer)
        }
    }

    fn valid_claims(now: i64) -> serde_json::Value {
        json!({"jti":"j","sub":"user-1","org":"org-1","role":"admin","iat":now,"nbf":now,"exp":now+600,
               "iss":"mcp-gateway","aud":"mcp-gateway","typ":"access"})
    }

    #[test]
    fn issues_and_verifies() {
        let iss = issuer(JwtKeys::hs256(&secret("s3cret-s3cret-s3cret-s3cret-s3cret!")));
        let (token, claims) = iss.issue(subject()).unwrap();
        let back = iss.verify(&token).unwrap();
        assert_eq!(back, claims);
        assert_eq!(back.exp - back.iat, 900);
        assert!(!token.contains("s3cret"));
    }

    #[test]
    fn the_forging_helper_matches_real_signatures() {
        // Guards the attack tests below: a correctly forged token with the right key verifies.
        let key = "k".repeat(40);
        let iss = issuer(JwtKeys::hs256(&secret(&key)));
        let kid = iss.keys.current_kid().to_owned();
        let now = Utc::now().timestamp();
        let token = forge(
            &key,
            json!({"alg":"HS256","typ":"JWT","kid":kid}),
            valid_claims(now),
        );
        assert!(iss.verify(&token).is_ok());
    }

    #[test]
    fn rejects_attacks() {
        let key = "k".repeat(40);
        let iss = issuer(JwtKeys::hs256(&secret(&key)));
        let kid = iss.keys.current_kid().to_owned();
        let now = Utc::now().timestamp();
        let good_header = json!({"alg":"HS256","typ":"JWT","kid":kid});

        // alg: none, unsigned
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg":"none","kid":kid})),
            b64(&valid_claims(now))
        );
        assert!(matches!(iss.verify(&none), Err(AuthError::InvalidToken)));
        // algorithm confusion: claims RS256 / HS512 with our kid
        for alg in ["RS256", "HS512", "EdDSA"] {
            let t = forge(&key, json!({"alg":alg,"kid":kid}), valid_claims(now));
            assert!(matches!(iss.verify(&t), Err(AuthError::InvalidToken)), "{alg}");
        }
        // tampered payload, original signature
        let (token, _) = iss.issue(subject()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut evil = valid_claims(now);
        evil["role"] = json!("admin");
        evil["org"] = json!("other-org");
        let tampered = format!("{}.{}.{}", parts[0], b64(&evil), parts[2]);
        assert!(matches!(iss.verify(&tampered), Err(AuthError::InvalidToken)));
        // wrong key
        let t = forge(
            "another-secret-another-secret-12345",
            good_header.clone(),
            valid_claims(now),
        );
        assert!(matches!(iss.verify(&t), Err(AuthError::InvalidToken)));
        // unknown / missing kid
        let t = forge(&key, json!({"alg":"HS256","kid":"hs-unknown"}), valid_claims(now));
        assert!(iss.verify(&t).is_err());
        let t = forge(&key, json!({"alg":"HS256"}), valid_claims(now));
        assert!(iss.verify(&t).is_err());
        // wrong audience / issuer
        let mut c = valid_claims(now);
        c["aud"] = json!("someone-else");
        assert!(iss.verify(&forge(&key, good_header.clone(), c)).is_err());
        let mut c = valid_claims(now);
        c["iss"] = json!("evil");
        assert!(iss.verify(&forge(&key, good_header.clone(), c)).is_err());
        // expired, beyond leeway
        let mut c = valid_claims(now);
        c["exp"] = json!(now - 120);
        assert!(matches!(
            iss.verify(&forge(&key, good_header.clone(), c)),
            Err(AuthError::TokenExpired)
        ));
        // not yet valid
        let mut c = valid_claims(now);
        c["nbf"] = json!(now + 600);
        c["exp"] = json!(now + 1200);
        assert!(matches!(
            iss.verify(&forge(&key, good_header.clone(), c)),
            Err(AuthError::InvalidToken)
        ));
        // garbage
        for junk in ["", "a.b.c", "not-a-token", "....."] {
            assert!(iss.verify(junk).is_err(), "{junk}");
        }
    }

    const RSA_PEM: &[u8] = include_bytes!("../testdata/test-only-rsa.pem");
    const ED_PEM: &[u8] = include_bytes!("../testdata/test-only-ed25519.pem");

    #[test]
    fn asymmetric_keys_sign_verify_and_publish_only_public_halves() {
        for (alg, pem, name) in [
            (SigningAlgorithm::Rs256, RSA_PEM, "RS256"),
            (SigningAlgorithm::EdDsa, ED_PEM, "EdDSA"),
        ] {
            let iss = issuer(
                JwtKeys::from_pem("k1", alg, pem)
                    .unwrap()
                    .with_previous(&secret(&"h".repeat(40))),
            );
            let (token, _) = iss.issue(subject()).unwrap();
            let header = decode_header(&token).unwrap();
            assert_eq!(format!("{:?}", header.alg), name);
            assert!(iss.verify(&token).is_ok());
            let jwks = serde_json::to_value(iss.keys().jwks()).unwrap();
            let keys = jwks["keys"].as_array().unwrap();
            assert_eq!(keys.len(), 1, "HMAC secrets are never published: {jwks}");
            assert_eq!(keys[0]["kid"], "k1");
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(keys[0].get(private).is_none(), "{private} leaked in {jwks}");
            }
        }
    }

    #[test]
    fn a_token_signed_with_hs256_using_the_public_key_is_rejected() {
        // Classic RS/HS confusion: the attacker HMACs with the published public key.
        let iss = issuer(JwtKeys::from_pem("k1", SigningAlgorithm::Rs256, RSA_PEM).unwrap());
        let jwks = serde_json::to_value(iss.keys().jwks()).unwrap();
        let public_n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
        let now = Utc::now().timestamp();
        for key_material in [public_n.as_str(), std::str::from_utf8(RSA_PEM).unwrap()] {
            let t = forge(key_material, json!({"alg":"HS256","kid":"k1"}), valid_claims(now));
            assert!(matches!(iss.verify(&t), Err(AuthError::InvalidToken)));
        }
    }

    #[test]
    fn asymmetric_rotation() {
        let old = issuer(JwtKeys::from_pem("old", SigningAlgorithm::Rs256, RSA_PEM).unwrap());
        let (old_token, _) = old.issue(subject()).unwrap();
        let new = issuer(
            JwtKeys::from_pem("new", SigningAlgorithm::EdDsa, ED_PEM)
                .unwrap()
                .with_previous_pem("old", SigningAlgorithm::Rs256, RSA_PEM)
                .unwrap(),
        );
        assert!(new.verify(&old_token).is_ok());
        let (new_token, _) = new.issue(subject()).unwrap();
        assert_eq!(decode_header(&new_token).unwrap().kid.as_deref(), Some("new"));
        let kids: Vec<_> = new
            .keys()
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        assert_eq!(kids, ["new", "old"]);
        assert!(
            JwtKeys::from_pem("bad", SigningAlgorithm::EdDsa, RSA_PEM).is_err(),
            "wrong algorithm for the key"
        );
    }

    #[test]
    fn from_config_reports_bad_files_by_kid() {
        let cfg = AuthConfig {
            signing_keys: vec![gateway_types::config::SigningKeyConfig {
                kid: "k9".into(),
                algorithm: SigningAlgorithm::Rs256,
                private_key_file: "/no/such/key.pem".into(),
            }],
            ..AuthConfig::default()
        };
        let err = JwtKeys::from_config(&cfg).unwrap_err();
        assert_eq!(err.kid, "k9");
        let keys = JwtKeys::from_config(&AuthConfig::default()).unwrap();
        assert!(keys.current_kid().starts_with("hs-"));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_but_signs_with_the_new_key() {
        let old = secret(&"o".repeat(40));
        let new = secret(&"n".repeat(40));
        let before = issuer(JwtKeys::hs256(&old));
        let (old_token, _) = before.issue(subject()).unwrap();

        let after = issuer(JwtKeys::hs256(&new).with_previous(&old));
        assert!(after.verify(&old_token).is_ok());
        let (new_token, _) = after.issue(subject()).unwrap();
        assert!(before.verify(&new_token).is_err(), "signed with the new key");

        let dropped = issuer(JwtKeys::hs256(&new));
        assert!(dropped.verify(&old_token).is_err(), "old key no longer accepted");
    }
}
