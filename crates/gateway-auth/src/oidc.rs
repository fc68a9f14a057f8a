//! Bearer tokens from external OpenID Connect providers (the MCP authorization spec's
//! "authorization server" role played by the customer's IdP).
//!
//! For each configured issuer the gateway fetches its JWKS (from `jwks_url`, or the
//! `jwks_uri` of `<issuer>/.well-known/openid-configuration`), caches it for
//! [`JWKS_MAX_AGE`], and refetches when a token names a key it does not know — at most once
//! per [`MIN_REFRESH_INTERVAL`], so forged key ids cannot turn the gateway into a load
//! generator against the IdP. Only asymmetric algorithms are accepted, the algorithm must fit
//! the key, and `iss`, `aud`, `exp` and `nbf` are always checked. Claims map to an
//! organization (fixed, or a claim holding its slug) and a role (`role_claim` through
//! `role_map`, else `default_role`, else the token is refused).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_types::config::OidcIssuerConfig;
use gateway_types::ids::OrgId;
use gateway_types::model::Role;
use gateway_types::store::OrganizationStore;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

use crate::error::AuthError;
use crate::jwt::{LEEWAY_SECONDS, install_crypto_provider};
use crate::principal::{Principal, Subject};

/// A fetched JWKS is trusted this long.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Unknown key ids trigger at most one refetch per this interval.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Time allowed for one fetch from the identity provider.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS or discovery document accepted.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Fetches JSON documents from identity providers.
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// GETs `url` and parses its JSON body.
    async fn get_json(&self, url: &str) -> Result<Value, AuthError>;
}

/// [`JwksFetcher`] over HTTPS (rustls, the system's trust store), with a timeout and a size cap.
#[derive(Debug, Clone)]
pub struct HttpJwksFetcher {
    client: reqwest::Client,
}

impl HttpJwksFetcher {
    /// A fetcher with [`FETCH_TIMEOUT`].
    ///
    /// # Errors
    /// The HTTP client could not be built (no TLS roots).
    pub fn new() -> Result<Self, AuthError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| AuthError::ProviderUnavailable(Box::new(e)))?;
        Ok(Self { client })
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn get_json(&self, url: &str) -> Result<Value, AuthError> {
        let unavailable = |e: reqwest::Error| AuthError::ProviderUnavailable(Box::new(e));
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(unavailable)?
            .error_for_status()
            .map_err(unavailable)?;
        let body = resp.bytes().await.map_err(unavailable)?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(AuthError::ProviderUnavailable(
                "identity provider document too large".into(),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| AuthError::ProviderUnavailable(Box::new(e)))
    }
}

/// Resolves an organization slug to its id.
#[async_trait]
pub trait OrgResolver: Send + Sync {
    /// The id of the organization with this slug.
    async fn org_id(&self, slug: &str) -> Result<Option<OrgId>, AuthError>;
}

/// [`OrgResolver`] over the organization store, with a small in-memory cache so a token
/// costs no query once its organization is known.
pub struct StoreOrgResolver {
    store: Arc<dyn OrganizationStore>,
    cache: Mutex<BTreeMap<String, (OrgId, Instant)>>,
}

impl std::fmt::Debug for StoreOrgResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOrgResolver").finish_non_exhaustive()
    }
}

impl StoreOrgResolver {
    /// A resolver over `store`.
    #[must_use]
    pub fn new(store: Arc<dyn OrganizationStore>) -> Self {
        Self {
            store,
            cache: Mutex::new(BTreeMap::new()),
        }
    }
}

#[async_trait]
impl OrgResolver for StoreOrgResolver {
    async fn org_id(&self, slug: &str) -> Result<Option<OrgId>, AuthError> {
        const TTL: Duration = Duration::from_secs(60);
        let lock = || {
            self.cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((id, at)) = lock().get(slug).copied()
            && at.elapsed() < TTL
        {
            return Ok(Some(id));
        }
        let found = self.store.get_by_slug(slug).await?.map(|o| o.id);
        if let Some(id) = found {
            let mut cache = lock();
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(slug.to_owned(), (id, Instant::now()));
        }
        Ok(found)
    }
}

struct IssuerState {
    cfg: OidcIssuerConfig,
    keys: RwLock<Option<(JwkSet, Instant)>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// Verifies tokens of the configured external issuers.
pub struct OidcVerifier {
    issuers: Vec<IssuerState>,
    fetcher: Arc<dyn JwksFetcher>,
    orgs: Arc<dyn OrgResolver>,
    min_refresh: Duration,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.cfg.issuer).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The `iss` of a JWT, read WITHOUT verifying anything: only to choose the verifier.
#[must_use]
pub fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

impl OidcVerifier {
    /// A verifier for `issuers`.
    #[must_use]
    pub fn new(
        issuers: &[OidcIssuerConfig],
        fetcher: Arc<dyn JwksFetcher>,
        orgs: Arc<dyn OrgResolver>,
    ) -> Self {
        install_crypto_provider();
        Self {
            issuers: issuers
                .iter()
                .map(|cfg| IssuerState {
                    cfg: cfg.clone(),
                    keys: RwLock::new(None),
                    last_fetch: Mutex::new(None),
                })
                .collect(),
            fetcher,
            orgs,
            min_refresh: MIN_REFRESH_INTERVAL,
        }
    }

    /// Overrides [`MIN_REFRESH_INTERVAL`] (tests exercise key rotation with zero).
    #[must_use]
    pub fn with_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    /// Whether `iss` is a configured issuer.
    #[must_use]
    pub fn knows_issuer(&self, iss: &str) -> bool {
        self.issuers.iter().any(|i| i.cfg.issuer == iss)
    }

    /// The configured issuers' URLs (for the protected-resource metadata).
    #[must_use]
    pub fn issuer_urls(&self) -> Vec<String> {
        self.issuers.iter().map(|i| i.cfg.issuer.clone()).collect()
    }

    /// Verifies a token of the issuer it names and maps it to a principal.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`]/[`AuthError::TokenExpired`] for bad tokens,
    /// [`AuthError::ProviderUnavailable`] when keys cannot be fetched.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let iss = peek_issuer(token).ok_or(AuthError::InvalidToken)?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.cfg.issuer == iss)
            .ok_or(AuthError::InvalidToken)?;
        let header = decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(AuthError::InvalidToken);
        }
        let key = self.key_for(issuer, header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.cfg.issuer]);
        validation.set_audience(&[&issuer.cfg.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::TokenExpired,
                _ => AuthError::InvalidToken,
            })?
            .claims;
        self.principal(issuer, &claims).await
    }

    async fn key_for(
        &self,
        issuer: &IssuerState,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let fresh = issuer
            .keys
            .read()
            .await
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < JWKS_MAX_AGE);
        if fresh && let Some(key) = find_key(&*issuer.keys.read().await, kid, alg)? {
            return Ok(key);
        }
        // Unknown kid or stale set: refetch, unless we did so moments ago.
        let may_fetch = {
            let mut last = issuer
                .last_fetch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let ok = !fresh || last.is_none_or(|t| t.elapsed() >= self.min_refresh);
            if ok {
                *last = Some(Instant::now());
            }
            ok
        };
        if may_fetch {
            match self.fetch_keys(&issuer.cfg).await {
                Ok(set) => *issuer.keys.write().await = Some((set, Instant::now())),
                Err(e) => {
                    tracing::warn!(oidc.issuer = %issuer.cfg.issuer, error = %gateway_types::error::error_chain(&e), "cannot fetch identity provider keys");
                    // Keep serving from a stale set rather than failing every token.
                    if issuer.keys.read().await.is_none() {
                        return Err(e);
                    }
                }
            }
        }
        find_key(&*issuer.keys.read().await, kid, alg)?.ok_or(AuthError::InvalidToken)
    }

    async fn fetch_keys(&self, cfg: &OidcIssuerConfig) -> Result<JwkSet, AuthError> {
        let url = match &cfg.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    cfg.issuer.trim_end_matches('/')
                );
                let doc = self.fetcher.get_json(&discovery).await?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        AuthError::ProviderUnavailable("discovery document has no jwks_uri".into())
                    })?
            }
        };
        let doc = self.fetcher.get_json(&url).await?;
        serde_json::from_value(doc).map_err(|e| AuthError::ProviderUnavailable(Box::new(e)))
    }

    async fn principal(
        &self,
        issuer: &IssuerState,
        claims: &Map<String, Value>,
    ) -> Result<Principal, AuthError> {
        let cfg = &issuer.cfg;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(AuthError::InvalidToken)?;
        let slug = match (&cfg.organization, &cfg.organization_claim) {
            (Some(fixed), _) => Some(fixed.clone()),
            (None, Some(claim)) => claims.get(claim).and_then(Value::as_str).map(str::to_owned),
            (None, None) => None,
        }
        .ok_or(AuthError::InvalidToken)?;
        let org_id = self
            .orgs
            .org_id(&slug)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        let role = map_role(cfg, claims).ok_or(AuthError::Forbidden)?;
        let token = claims
            .get("jti")
            .and_then(Value::as_str)
            .zip(claims.get("exp").and_then(Value::as_i64))
            .map(|(j, e)| (j.to_owned(), e));
        Ok(Principal {
            org_id,
            subject: Subject::External {
                issuer: cfg.issuer.clone(),
                subject: sub.to_owned(),
            },
            role,
            namespace: None,
            scope: None,
            token,
            claims: string_claims(claims),
        })
    }
}

fn find_key(
    set: &Option<(JwkSet, Instant)>,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Option<DecodingKey>, AuthError> {
    let Some((set, _)) = set else { return Ok(None) };
    let jwk = match kid {
        Some(kid) => set.find(kid),
        // Without a kid only an unambiguous single key is acceptable.
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    let Some(jwk) = jwk else { return Ok(None) };
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg.to_string() != format!("{alg:?}")
    {
        return Err(AuthError::InvalidToken);
    }
    DecodingKey::from_jwk(jwk)
        .map(Some)
        .map_err(|_| AuthError::InvalidToken)
}

/// The most privileged mapped role, else the default.
fn map_role(cfg: &OidcIssuerConfig, claims: &Map<String, Value>) -> Option<Role> {
    let values: Vec<&str> = match cfg.role_claim.as_ref().and_then(|c| claims.get(c)) {
        Some(Value::String(s)) => s.split([' ', ',']).filter(|s| !s.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let mapped: Vec<Role> = values
        .iter()
        .filter_map(|v| cfg.role_map.get(*v))
        .filter_map(|r| r.parse().ok())
        .collect();
    [Role::Admin, Role::User, Role::Viewer, Role::ApiUser]
        .into_iter()
        .find(|r| mapped.contains(r))
        .or_else(|| cfg.default_role.as_deref().and_then(|r| r.parse().ok()))
}

fn string_claims(claims: &Map<String, Value>) -> BTreeMap<String, Vec<String>> {
    claims
        .iter()
        .filter_map(|(k, v)| {
            let vals: Vec<String> = match v {
                Value::String(s) => vec![s.clone()],
                Value::Bool(b) => vec![b.to_string()],
                Value::Number(n) => vec![n.to_string()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => return None,
            };
            Some((k.clone(), vals))
        })
        .collect()
}
