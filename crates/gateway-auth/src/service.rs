//! The authentication service: login, refresh rotation, logout, API keys, A2A tokens, and
//! turning a bearer credential into a [`Principal`].
//!
//! Request-path work stays off the database: JWTs verify locally, and API keys are cached
//! (by hash, with their owner's role) for [`KEY_CACHE_TTL`]; revocations through this service
//! drop the cache entry at once, and other replicas see them within the TTL. `last_used_at`
//! is collected in memory and written in batches by [`AuthService::flush_key_usage`].

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gateway_types::config::AuthConfig;
use gateway_types::ids::{ApiKeyId, NamespaceId, OrgId, TokenFamilyId, UserId};
use gateway_types::model::{ApiKey, ApiKeyType, NewApiKey, NewRefreshToken, Role, User, UserPatch};
use gateway_types::store::{ApiKeyStore, RefreshTokenStore, StoreError, TokenDenyList, UserStore};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::error::AuthError;
use crate::jwt::{AccessClaims, TokenIssuer, TokenSubject, TokenType};
use crate::oidc::{self, OidcVerifier};
use crate::password;
use crate::principal::{Principal, Subject};
use crate::rbac::Permission;
use crate::secret::{self, GeneratedSecret};
use crate::throttle::{LoginThrottle, ThrottleSettings};

/// How long a resolved API key is trusted without asking the store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most cached API keys.
const KEY_CACHE_MAX: usize = 50_000;

/// The stores the service needs.
#[derive(Clone)]
pub struct AuthStores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Refresh tokens.
    pub refresh_tokens: Arc<dyn RefreshTokenStore>,
    /// Revoked access tokens.
    pub denylist: Arc<dyn TokenDenyList>,
}

impl std::fmt::Debug for AuthStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthStores").finish_non_exhaustive()
    }
}

/// Tokens answered by login and refresh.
#[derive(Clone, Debug, Serialize)]
pub struct TokenPair {
    /// Short-lived JWT.
    pub access_token: String,
    /// Rotating refresh token (absent for A2A tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// A newly created API key: the record and its secret, shown once.
#[derive(Debug)]
pub struct CreatedKey {
    /// The stored record (no secret).
    pub key: ApiKey,
    /// The secret.
    pub secret: SecretString,
}

/// What a new API key should be.
#[derive(Clone, Debug, Default)]
pub struct KeyRequest {
    /// Display name.
    pub name: String,
    /// Namespace scope.
    pub namespace_id: Option<NamespaceId>,
    /// Permission limits (`None` = all of the owner's role for user keys, `mcp:use` for apps).
    pub permissions: Option<Vec<Permission>>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The account a refused login or token exchange concerned, when the credential named one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Account {
    /// A user account (login by email).
    User {
        /// Its organization.
        org_id: OrgId,
        /// The user.
        user_id: UserId,
    },
    /// An API key (A2A token exchange).
    Key {
        /// Its organization.
        org_id: OrgId,
        /// The key.
        key_id: ApiKeyId,
    },
}

impl Account {
    /// The account's organization.
    #[must_use]
    pub const fn org_id(&self) -> OrgId {
        match self {
            Self::User { org_id, .. } | Self::Key { org_id, .. } => *org_id,
        }
    }
}

/// A refused login or A2A token exchange, with what the audit trail needs and the client must
/// never see: the matched account and the precise reason.
#[derive(Debug)]
pub struct Refusal {
    /// The error answered to the client (the same for every kind of bad credential).
    pub error: AuthError,
    /// The account the credential named, if one matched.
    pub account: Option<Account>,
    /// Why, for the audit trail: `unknown_account`, `bad_password`, `inactive`, `locked`,
    /// `throttled`, `unknown_key`, `owner_inactive`, `revoked`, `expired`, `not_an_a2a_key`,
    /// `error` (a store or crypto failure).
    pub reason: &'static str,
}

impl Refusal {
    fn new(error: AuthError, account: Option<Account>, reason: &'static str) -> Self {
        Self {
            error,
            account,
            reason,
        }
    }

    /// A failure of the gateway itself (store, crypto) rather than of the credential.
    fn failure(error: impl Into<AuthError>, account: Option<Account>) -> Self {
        Self::new(error.into(), account, "error")
    }
}

#[derive(Clone)]
struct CachedKey {
    key: ApiKey,
    owner_role: Option<Role>,
    fetched: Instant,
}

/// Authentication and credential management.
pub struct AuthService {
    stores: AuthStores,
    issuer: TokenIssuer,
    throttle: LoginThrottle,
    bcrypt_cost: u32,
    max_failed_logins: i32,
    lockout: chrono::Duration,
    refresh_ttl: chrono::Duration,
    key_cache: Mutex<HashMap<String, CachedKey>>,
    key_usage: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
    oidc: Option<OidcVerifier>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lower-cased, trimmed email: the form stored and throttled.
#[must_use]
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl AuthService {
    /// A service over `stores`, signing with `issuer`, configured by `cfg`.
    #[must_use]
    pub fn new(stores: AuthStores, issuer: TokenIssuer, cfg: &AuthConfig) -> Self {
        Self {
            stores,
            issuer,
            throttle: LoginThrottle::new(ThrottleSettings {
                max_per_account: cfg.max_failed_logins,
                max_per_ip: cfg.max_failed_logins_per_ip,
                window: Duration::from_secs(cfg.failure_window_seconds),
                lockout: Duration::from_secs(cfg.lockout_seconds),
            }),
            bcrypt_cost: cfg.bcrypt_cost,
            max_failed_logins: i32::try_from(cfg.max_failed_logins).unwrap_or(i32::MAX),
            lockout: chrono::Duration::seconds(i64::try_from(cfg.lockout_seconds).unwrap_or(i64::MAX)),
            refresh_ttl: chrono::Duration::seconds(
                i64::try_from(cfg.refresh_token_ttl_seconds).unwrap_or(i64::MAX),
            ),
            key_cache: Mutex::new(HashMap::new()),
            key_usage: Mutex::new(HashMap::new()),
            oidc: None,
        }
    }

    /// Also accepts bearer tokens of external identity providers.
    #[must_use]
    pub fn with_oidc(mut self, verifier: OidcVerifier) -> Self {
        self.oidc = Some(verifier);
        self
    }

    /// The external identity providers, if configured.
    #[must_use]
    pub fn oidc(&self) -> Option<&OidcVerifier> {
        self.oidc.as_ref()
    }

    /// The token issuer (for JWKS and tests).
    #[must_use]
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    /// Hashes a password with the configured cost, after checking the policy.
    ///
    /// # Errors
    /// A weak password or a hashing failure.
    pub async fn hash_new_password(&self, password: SecretString) -> Result<String, AuthError> {
        password::check_policy(password.expose_secret())?;
        password::hash_async(password, self.bcrypt_cost).await
    }

    /// Email + password login. Unknown email and wrong password give the same error in the same
    /// time; repeated failures per account and per IP lock out.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::Throttled`], or a store failure.
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<(TokenPair, User), AuthError> {
        self.login_detailed(email, password, ip)
            .await
            .map_err(|r| r.error)
    }

    /// [`Self::login`], and on refusal the matched account and reason (for the audit trail).
    ///
    /// # Errors
    /// A [`Refusal`] whose `error` is what [`Self::login`] returns.
    pub async fn login_detailed(
        &self,
        email: &str,
        password: SecretString,
        ip: Option<IpAddr>,
    ) -> Result<(TokenPair, User), Refusal> {
        let email = normalize_email(email);
        self.throttle
            .check(&email, ip)
            .map_err(|e| Refusal::new(e, None, "throttled"))?;
        let user = self
            .stores
            .users
            .find_by_email(&email)
            .await
            .map_err(|e| Refusal::failure(e, None))?;
        let now = Utc::now();
        let locked_until = user.as_ref().and_then(|u| u.locked_until).filter(|t| *t > now);
        // Always verify (against a dummy hash when there is no account): same time either way.
        let ok = password::verify_async(
            password,
            user.as_ref().map(|u| u.password_hash.clone()),
            self.bcrypt_cost,
        )
        .await;
        let user = match user {
            Some(u) if ok && u.is_active && locked_until.is_none() => u,
            Some(u) => {
                let account = Some(Account::User {
                    org_id: u.org_id,
                    user_id: u.id,
                });
                self.throttle.record_failure(&email, ip);
                if let Some(until) = locked_until {
                    let left = u64::try_from((until - now).num_seconds()).unwrap_or(1).max(1);
                    return Err(Refusal::new(
                        AuthError::Throttled {
                            retry_after_seconds: left,
                        },
                        account,
                        "locked",
                    ));
                }
                if u.is_active {
                    // Persisted too, so the lock holds across restarts and replicas.
                    let lock = (u.failed_logins.saturating_add(1) >= self.max_failed_logins)
                        .then(|| now + self.lockout);
                    self.stores
                        .users
                        .record_login_failure(u.org_id, u.id, lock)
                        .await
                        .map_err(|e| Refusal::failure(e, account))?;
                }
                let reason = if u.is_active { "bad_password" } else { "inactive" };
                return Err(Refusal::new(AuthError::InvalidCredentials, account, reason));
            }
            None => {
                self.throttle.record_failure(&email, ip);
                return Err(Refusal::new(
                    AuthError::InvalidCredentials,
                    None,
                    "unknown_account",
                ));
            }
        };
        let account = Some(Account::User {
            org_id: user.org_id,
            user_id: user.id,
        });
        self.throttle.record_success(&email);
        self.stores
            .users
            .record_login_success(user.org_id, user.id, now)
            .await
            .map_err(|e| Refusal::failure(e, account))?;
        let pair = self
            .start_session(&user)
            .await
            .map_err(|e| Refusal::failure(e, account))?;
        Ok((pair, user))
    }

    async fn start_session(&self, user: &User) -> Result<TokenPair, AuthError> {
        let family = TokenFamilyId::new();
        let refresh = secret::generate_refresh_token()?;
        self.stores
            .refresh_tokens
            .create(
                user.org_id,
                NewRefreshToken {
                    user_id: user.id,
                    family_id: family,
                    token_hash: refresh.hash.clone(),
                    expires_at: Utc::now() + self.refresh_ttl,
                },
            )
            .await?;
        self.pair_for(user, family, refresh)
    }

    fn pair_for(
        &self,
        user: &User,
        family: TokenFamilyId,
        refresh: GeneratedSecret,
    ) -> Result<TokenPair, AuthError> {
        let (access, _) = self.issuer.issue(TokenSubject {
            subject: user.id.to_string(),
            org: user.org_id.to_string(),
            role: user.role.as_str().to_owned(),
            typ: TokenType::Access,
            scope: vec![],
            ns: None,
            session: Some(family.to_string()),
        })?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: Some(refresh.secret.expose_secret().to_owned()),
            token_type: "Bearer",
            expires_in: self.issuer.ttl_seconds(),
        })
    }

    /// Rotates a refresh token: the presented one is revoked and a new one of the same family
    /// issued. Presenting an already-rotated token revokes the whole family.
    ///
    /// # Errors
    /// [`AuthError::RefreshTokenReuse`], [`AuthError::InvalidCredentials`], or a store failure.
    pub async fn refresh(&self, token: &SecretString) -> Result<TokenPair, AuthError> {
        let hash = secret::hash_secret(token.expose_secret());
        let Some(old) = self.stores.refresh_tokens.find_by_hash(&hash).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        let now = Utc::now();
        if old.revoked_at.is_some() {
            self.stores
                .refresh_tokens
                .revoke_family(old.org_id, old.family_id, now)
                .await?;
            tracing::warn!(org.id = %old.org_id, user.id = %old.user_id, "refresh token reuse: family revoked");
            return Err(AuthError::RefreshTokenReuse);
        }
        if old.expires_at <= now {
            return Err(AuthError::InvalidCredentials);
        }
        let user = match self.stores.users.get(old.org_id, old.user_id).await? {
            Some(u) if u.is_active => u,
            _ => return Err(AuthError::InvalidCredentials),
        };
        let fresh = secret::generate_refresh_token()?;
        let new = NewRefreshToken {
            user_id: user.id,
            family_id: old.family_id,
            token_hash: fresh.hash.clone(),
            expires_at: now + self.refresh_ttl,
        };
        match self.stores.refresh_tokens.rotate(old.org_id, old.id, new).await {
            Ok(_) => self.pair_for(&user, old.family_id, fresh),
            Err(StoreError::Conflict { .. }) => {
                // Lost a race with another use of the same token: that is reuse too.
                self.stores
                    .refresh_tokens
                    .revoke_family(old.org_id, old.family_id, now)
                    .await?;
                Err(AuthError::RefreshTokenReuse)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ends a login: deny-lists the access token until it expires and revokes the refresh
    /// token's family.
    ///
    /// # Errors
    /// A store failure.
    pub async fn logout(&self, principal: &Principal) -> Result<(), AuthError> {
        if let Some((jti, exp)) = &principal.token {
            let until = DateTime::from_timestamp(*exp, 0).unwrap_or_else(Utc::now);
            self.stores.denylist.deny(jti, until).await?;
        }
        if let Subject::User {
            session: Some(family),
            ..
        } = &principal.subject
            && let Ok(family) = family.parse::<TokenFamilyId>()
        {
            self.stores
                .refresh_tokens
                .revoke_family(principal.org_id, family, Utc::now())
                .await?;
        }
        Ok(())
    }

    /// Changes a password after checking the current one, and revokes every other login.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] for a wrong current password, a weak new one, or a store failure.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: SecretString,
        new: SecretString,
    ) -> Result<(), AuthError> {
        let Subject::User { user_id, session } = &principal.subject else {
            return Err(AuthError::Forbidden);
        };
        let user = self
            .stores
            .users
            .get(principal.org_id, *user_id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !password::verify_async(current, Some(user.password_hash.clone()), self.bcrypt_cost).await {
            return Err(AuthError::InvalidCredentials);
        }
        let hash = self.hash_new_password(new).await?;
        self.stores
            .users
            .update(
                principal.org_id,
                user.id,
                UserPatch {
                    password_hash: Some(hash),
                    ..UserPatch::default()
                },
            )
            .await?;
        let keep = session.as_deref().and_then(|s| s.parse::<TokenFamilyId>().ok());
        self.stores
            .refresh_tokens
            .revoke_user(principal.org_id, user.id, keep, Utc::now())
            .await?;
        Ok(())
    }

    /// Creates a user API key for the principal's user.
    ///
    /// # Errors
    /// [`AuthError::Forbidden`] for non-user principals or permissions beyond the owner's role.
    pub async fn create_user_key(
        &self,
        principal: &Principal,
        req: KeyRequest,
    ) -> Result<CreatedKey, AuthError> {
        let user_id = principal.user_id().ok_or(AuthError::Forbidden)?;
        if let Some(perms) = &req.permissions
            && perms.iter().any(|p| !principal.allows(*p))
        {
            return Err(AuthError::Forbidden);
        }
        self.create_key(principal.org_id, Some(user_id), ApiKeyType::User, req)
            .await
    }

    /// Creates an organization-owned A2A key (admins).
    ///
    /// # Errors
    /// A store failure.
    pub async fn create_app_key(&self, org: OrgId, mut req: KeyRequest) -> Result<CreatedKey, AuthError> {
        if req.permissions.is_none() {
            req.permissions = Some(vec![Permission::McpUse]);
        }
        self.create_key(org, None, ApiKeyType::A2a, req).await
    }

    async fn create_key(
        &self,
        org: OrgId,
        user_id: Option<UserId>,
        key_type: ApiKeyType,
        req: KeyRequest,
    ) -> Result<CreatedKey, AuthError> {
        let generated = secret::generate_api_key()?;
        let key = self
            .stores
            .api_keys
            .create(
                org,
                NewApiKey {
                    user_id,
                    key_type,
                    name: req.name,
                    prefix: generated.display_prefix,
                    key_hash: generated.hash,
                    namespace_id: req.namespace_id,
                    permissions: req
                        .permissions
                        .unwrap_or_default()
                        .iter()
                        .map(|p| p.as_str().to_owned())
                        .collect(),
                    expires_at: req.expires_at,
                },
            )
            .await?;
        Ok(CreatedKey {
            key,
            secret: generated.secret,
        })
    }

    /// Forgets a cached key (it changed elsewhere: revoked, rescoped, deleted); the next use
    /// reads it from the store.
    pub fn forget_key(&self, id: ApiKeyId) {
        lock(&self.key_cache).retain(|_, c| c.key.id != id);
    }

    /// Revokes a key of the organization and forgets it from the cache at once.
    ///
    /// # Errors
    /// NotFound for another organization's key, or a store failure.
    pub async fn revoke_key(&self, org: OrgId, id: ApiKeyId) -> Result<(), AuthError> {
        self.stores.api_keys.revoke(org, id, Utc::now()).await?;
        lock(&self.key_cache).retain(|_, c| c.key.id != id);
        Ok(())
    }

    /// Forgets every cached key confined to `namespace` (its keys were deleted with it), so
    /// they stop working at once on this replica.
    pub fn forget_namespace_keys(&self, namespace: NamespaceId) {
        lock(&self.key_cache).retain(|_, c| c.key.namespace_id != Some(namespace));
    }

    /// Exchanges an A2A key for a short-lived access token carrying the key's scopes.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] for anything but a live A2A key.
    pub async fn a2a_token(&self, key_secret: &SecretString) -> Result<TokenPair, AuthError> {
        self.a2a_token_detailed(key_secret).await.map_err(|r| r.error)
    }

    /// [`Self::a2a_token`], and on refusal the matched key and reason (for the audit trail).
    ///
    /// # Errors
    /// A [`Refusal`] whose `error` is what [`Self::a2a_token`] returns.
    pub async fn a2a_token_detailed(&self, key_secret: &SecretString) -> Result<TokenPair, Refusal> {
        let cached = self.resolve_key_detailed(key_secret.expose_secret()).await?;
        let account = Some(Account::Key {
            org_id: cached.key.org_id,
            key_id: cached.key.id,
        });
        if cached.key.key_type != ApiKeyType::A2a {
            return Err(Refusal::new(
                AuthError::InvalidCredentials,
                account,
                "not_an_a2a_key",
            ));
        }
        let (access, _) = self
            .issuer
            .issue(TokenSubject {
                subject: cached.key.id.to_string(),
                org: cached.key.org_id.to_string(),
                role: Role::ApiUser.as_str().to_owned(),
                typ: TokenType::A2a,
                scope: cached.key.permissions.clone(),
                ns: cached.key.namespace_id.map(|n| n.to_string()),
                session: None,
            })
            .map_err(|e| Refusal::failure(e, account))?;
        Ok(TokenPair {
            access_token: access,
            refresh_token: None,
            token_type: "Bearer",
            expires_in: self.issuer.ttl_seconds(),
        })
    }

    /// Turns a bearer credential (access token, A2A token or API key) into a principal.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`], [`AuthError::TokenExpired`], [`AuthError::Revoked`],
    /// [`AuthError::InvalidCredentials`], or a store failure (deny-list, first key lookup).
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthError> {
        if credential.is_empty() {
            return Err(AuthError::MissingCredentials);
        }
        if secret::looks_like_api_key(credential) {
            let cached = self.resolve_key(credential).await?;
            self.note_key_use(cached.key.id);
            return principal_for_key(&cached);
        }
        if let Some(oidc) = &self.oidc
            && let Some(iss) = oidc::peek_issuer(credential)
            && iss != self.issuer.issuer_name()
            && oidc.knows_issuer(&iss)
        {
            let principal = oidc.verify(credential).await?;
            if let Some((jti, _)) = &principal.token
                && self.stores.denylist.is_denied(jti).await?
            {
                return Err(AuthError::Revoked);
            }
            return Ok(principal);
        }
        let claims = self.issuer.verify(credential)?;
        if self.stores.denylist.is_denied(&claims.jti).await? {
            return Err(AuthError::Revoked);
        }
        principal_for_claims(claims)
    }

    async fn resolve_key(&self, secret_text: &str) -> Result<CachedKey, AuthError> {
        self.resolve_key_detailed(secret_text).await.map_err(|r| r.error)
    }

    async fn resolve_key_detailed(&self, secret_text: &str) -> Result<CachedKey, Refusal> {
        let hash = secret::hash_secret(secret_text);
        let hit = lock(&self.key_cache)
            .get(&hash)
            .filter(|c| c.fetched.elapsed() < KEY_CACHE_TTL)
            .cloned();
        let cached = match hit {
            Some(c) => c,
            None => {
                let key = self
                    .stores
                    .api_keys
                    .find_by_hash(&hash)
                    .await
                    .map_err(|e| Refusal::failure(e, None))?
                    .ok_or_else(|| Refusal::new(AuthError::InvalidCredentials, None, "unknown_key"))?;
                let account = Some(Account::Key {
                    org_id: key.org_id,
                    key_id: key.id,
                });
                let owner_role = match key.user_id {
                    Some(uid) => match self
                        .stores
                        .users
                        .get(key.org_id, uid)
                        .await
                        .map_err(|e| Refusal::failure(e, account))?
                    {
                        Some(u) if u.is_active => Some(u.role),
                        _ => {
                            return Err(Refusal::new(
                                AuthError::InvalidCredentials,
                                account,
                                "owner_inactive",
                            ));
                        }
                    },
                    None => None,
                };
                let entry = CachedKey {
                    key,
                    owner_role,
                    fetched: Instant::now(),
                };
                let mut cache = lock(&self.key_cache);
                if cache.len() >= KEY_CACHE_MAX {
                    cache.retain(|_, c| c.fetched.elapsed() < KEY_CACHE_TTL);
                    if cache.len() >= KEY_CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(hash.clone(), entry.clone());
                entry
            }
        };
        // The lookup was by hash; compare again in constant time before trusting it.
        if !secret::matches(&SecretString::from(secret_text.to_owned()), &cached.key.key_hash) {
            return Err(Refusal::new(AuthError::InvalidCredentials, None, "unknown_key"));
        }
        let account = Some(Account::Key {
            org_id: cached.key.org_id,
            key_id: cached.key.id,
        });
        let now = Utc::now();
        if cached.key.revoked_at.is_some() {
            return Err(Refusal::new(AuthError::Revoked, account, "revoked"));
        }
        if cached.key.expires_at.is_some_and(|t| t <= now) {
            return Err(Refusal::new(AuthError::TokenExpired, account, "expired"));
        }
        Ok(cached)
    }

    fn note_key_use(&self, id: ApiKeyId) {
        lock(&self.key_usage).insert(id, Utc::now());
    }

    /// Writes collected `last_used_at` times in one batch. Call periodically (the application
    /// runs it every few seconds on its background runtime) and at shutdown.
    ///
    /// # Errors
    /// A store failure; the batch is kept for the next attempt.
    pub async fn flush_key_usage(&self) -> Result<usize, AuthError> {
        let batch: Vec<(ApiKeyId, DateTime<Utc>)> = lock(&self.key_usage).drain().collect();
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.stores.api_keys.touch_last_used(&batch).await {
            let mut usage = lock(&self.key_usage);
            for (id, at) in batch {
                usage.entry(id).or_insert(at);
            }
            return Err(e.into());
        }
        Ok(batch.len())
    }
}

fn principal_for_key(cached: &CachedKey) -> Result<Principal, AuthError> {
    let key = &cached.key;
    let scope: Vec<Permission> = key
        .permissions
        .iter()
        .filter_map(|p| Permission::parse(p))
        .collect();
    let (subject, role) = match (key.key_type, key.user_id, cached.owner_role) {
        (ApiKeyType::User, Some(user_id), Some(role)) => (
            Subject::ApiKey {
                key_id: key.id,
                user_id,
            },
            role,
        ),
        (ApiKeyType::A2a, None, None) => (Subject::App { key_id: key.id }, Role::ApiUser),
        _ => return Err(AuthError::InvalidCredentials),
    };
    Ok(Principal {
        org_id: key.org_id,
        subject,
        role,
        namespace: key.namespace_id,
        scope: if scope.is_empty() && key.key_type == ApiKeyType::User {
            None
        } else {
            Some(scope)
        },
        token: None,
        claims: BTreeMap::new(),
    })
}

fn principal_for_claims(claims: AccessClaims) -> Result<Principal, AuthError> {
    let org_id: OrgId = claims.org.parse().map_err(|_| AuthError::InvalidToken)?;
    let role: Role = claims.role.parse().map_err(|_| AuthError::InvalidToken)?;
    let namespace = claims
        .ns
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| AuthError::InvalidToken)?;
    let (subject, scope) = match claims.typ {
        TokenType::Access => {
            let user_id = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
            (
                Subject::User {
                    user_id,
                    session: claims.sid.clone(),
                },
                None,
            )
        }
        TokenType::A2a => {
            let key_id = claims.sub.parse().map_err(|_| AuthError::InvalidToken)?;
            let scope = claims.scope.iter().filter_map(|p| Permission::parse(p)).collect();
            (Subject::App { key_id }, Some(scope))
        }
    };
    Ok(Principal {
        org_id,
        subject,
        role,
        namespace,
        scope,
        token: Some((claims.jti, claims.exp)),
        claims: BTreeMap::new(),
    })
}
