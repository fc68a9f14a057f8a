//! Authentication endpoints: login, refresh, logout, profile, API keys, A2A tokens, and the
//! public key and protected-resource metadata documents.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use gateway_auth::AuthError;
use gateway_auth::principal::Subject;
use gateway_auth::rbac::Permission;
use gateway_auth::service::{Account, KeyRequest, TokenPair, normalize_email};
use gateway_logging::audit::{Actor, AuditEvent, actions};
use gateway_types::error::ErrorCode;
use gateway_types::ids::{ApiKeyId, NamespaceId};
use gateway_types::model::{ApiKey, ApiKeyType, User, UserPatch};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::audit::{self, ClientContext, key_summary};
use crate::authn::{Authenticated, auth_error, credential, public_base};
use crate::error::ApiError;
use crate::state::AppState;

/// Longest key name.
const MAX_NAME_CHARS: usize = 100;
/// Longest key lifetime.
const MAX_KEY_DAYS: i64 = 3650;

fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn tokens(pair: &TokenPair) -> HttpResponse {
    no_store(HttpResponse::Ok().json(pair))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: SecretString,
}

/// `POST /auth/login`.
pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let LoginBody { email, password } = body.into_inner();
    if email.len() > 320 {
        return Err(ApiError::new(ErrorCode::Validation, "email is too long"));
    }
    let ctx = audit::context(&req);
    let ip = ctx.ip;
    match state.auth.login_detailed(&email, password, ip).await {
        Ok((pair, user)) => {
            tracing::info!(org.id = %user.org_id, user.id = %user.id, "login");
            state.auditor.record(
                user.org_id,
                AuditEvent::new(actions::AUTH_LOGIN, Actor::new("user", user.id.to_string()))
                    .target("user", user.id)
                    .context(&ctx),
            );
            Ok(tokens(&pair))
        }
        Err(refusal) => {
            tracing::info!(client.ip = ?ip, reason = refusal.reason, "login refused");
            // An unknown email belongs to no organization, so to no audit chain.
            if let Some(Account::User { org_id, user_id }) = refusal.account {
                state.auditor.record(
                    org_id,
                    AuditEvent::new(actions::AUTH_LOGIN_FAILED, Actor::anonymous())
                        .target("user", user_id)
                        .after(serde_json::json!({
                            "email": normalize_email(&email),
                            "reason": refusal.reason,
                        }))
                        .context(&ctx),
                );
            }
            Err(auth_error(&req, &state, refusal.error, false))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: SecretString,
}

/// `POST /auth/refresh`: rotates the refresh token.
pub(crate) async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    let pair = state
        .auth
        .refresh(&body.refresh_token)
        .await
        .map_err(|e| auth_error(&req, &state, e, true))?;
    Ok(tokens(&pair))
}

/// `POST /auth/logout`: deny-lists the access token and ends its login.
pub(crate) async fn logout(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .logout(&who.0)
        .await
        .map_err(gateway_types::error::GatewayError::from)?;
    let mut event = AuditEvent::new(actions::AUTH_LOGOUT, audit::actor(&who.0)).context(&ctx.0);
    if let Some(user) = who.0.user_id() {
        event = event.target("user", user);
    }
    state.auditor.record(who.0.org_id, event);
    Ok(HttpResponse::NoContent().finish())
}

/// A user as the API shows it.
#[derive(Serialize)]
pub(crate) struct UserView {
    id: String,
    org_id: String,
    email: String,
    name: String,
    role: &'static str,
    is_active: bool,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            org_id: u.org_id.to_string(),
            email: u.email,
            name: u.name,
            role: u.role.as_str(),
            is_active: u.is_active,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

async fn own_user(state: &AppState, who: &Authenticated) -> Result<User, ApiError> {
    let user_id = who
        .0
        .user_id()
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "only user credentials have a profile"))?;
    state
        .stores
        .users
        .get(who.0.org_id, user_id)
        .await?
        .ok_or_else(|| ApiError::from_code(ErrorCode::NotFound))
}

/// `GET /auth/profile`.
pub(crate) async fn profile(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(UserView::from(own_user(&state, &who).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileBody {
    name: Option<String>,
    current_password: Option<SecretString>,
    new_password: Option<SecretString>,
}

/// `PUT /auth/profile`: the name, and the password (which needs the current one and ends
/// every other login).
pub(crate) async fn update_profile(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, ApiError> {
    let ProfileBody {
        name,
        current_password,
        new_password,
    } = body.into_inner();
    if !matches!(who.0.subject, Subject::User { .. }) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "sign in with a password to change the profile",
        ));
    }
    let user = own_user(&state, &who).await?;
    if let Some(name) = &name {
        validate_name(name, "name")?;
    }
    let audit_event = |action: &'static str| {
        AuditEvent::new(action, audit::actor(&who.0))
            .target("user", user.id)
            .context(&ctx.0)
    };
    match (current_password, new_password) {
        (Some(current), Some(new)) => match state.auth.change_password(&who.0, current, new).await {
            Ok(()) => {
                state
                    .auditor
                    .record(user.org_id, audit_event(actions::AUTH_PASSWORD_CHANGE));
            }
            Err(err) => {
                if matches!(err, AuthError::InvalidCredentials) {
                    state.auditor.record(
                        user.org_id,
                        audit_event(actions::AUTH_PASSWORD_CHANGE_FAILED)
                            .after(serde_json::json!({"reason": "wrong_current_password"})),
                    );
                }
                return Err(gateway_types::error::GatewayError::from(err).into());
            }
        },
        (None, Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "current_password is required to change the password",
            ));
        }
        (Some(_), None) => return Err(ApiError::new(ErrorCode::Validation, "new_password is missing")),
        (None, None) => {}
    }
    let user = match name {
        Some(name) => {
            let updated = state
                .stores
                .users
                .update(
                    user.org_id,
                    user.id,
                    UserPatch {
                        name: Some(name.trim().to_owned()),
                        ..UserPatch::default()
                    },
                )
                .await?;
            if updated.name != user.name {
                state.auditor.record(
                    user.org_id,
                    audit_event(actions::USER_UPDATE)
                        .before(serde_json::json!({"name": user.name}))
                        .after(serde_json::json!({"name": updated.name})),
                );
            }
            updated
        }
        None => state
            .stores
            .users
            .get(user.org_id, user.id)
            .await?
            .unwrap_or(user),
    };
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

pub(crate) fn validate_name(name: &str, field: &str) -> Result<(), ApiError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::Validation,
            format!("{field} must be 1-{MAX_NAME_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// An API key as listed: never the secret, never the hash.
#[derive(Serialize)]
pub(crate) struct KeyView {
    id: String,
    name: String,
    #[serde(rename = "type")]
    key_type: &'static str,
    prefix: String,
    user_id: Option<String>,
    namespace_id: Option<String>,
    permissions: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            key_type: k.key_type.as_str(),
            prefix: k.prefix,
            user_id: k.user_id.map(|u| u.to_string()),
            namespace_id: k.namespace_id.map(|n| n.to_string()),
            permissions: k.permissions,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            created_at: k.created_at,
        }
    }
}

/// `GET /auth/api-keys`: the caller's keys; with `keys:manage`, every key of the organization.
pub(crate) async fn list_keys(
    state: web::Data<AppState>,
    who: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let p = &who.0;
    let owner = if p.allows(Permission::KeysManage) {
        None
    } else {
        who.require(Permission::KeysOwn)?;
        Some(
            p.user_id()
                .ok_or_else(|| ApiError::from_code(ErrorCode::Forbidden))?,
        )
    };
    let keys = state.stores.api_keys.list(p.org_id, owner).await?;
    let items: Vec<KeyView> = keys.into_iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyBody {
    name: String,
    #[serde(default, rename = "type")]
    key_type: Option<ApiKeyType>,
    namespace_id: Option<NamespaceId>,
    permissions: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
    expires_in_days: Option<i64>,
}

#[derive(Serialize)]
struct CreatedKeyView {
    #[serde(flatten)]
    key: KeyView,
    /// The secret, shown only in this response.
    #[serde(rename = "key")]
    key_secret: String,
}

/// `POST /auth/api-keys`: creates a key; the secret is in this response only.
pub(crate) async fn create_key(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<CreateKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    validate_name(&b.name, "name")?;
    let key_type = b.key_type.unwrap_or(ApiKeyType::User);
    match key_type {
        ApiKeyType::User => who.require(Permission::KeysOwn)?,
        ApiKeyType::A2a => who.require(Permission::KeysManage)?,
    };
    let permissions = match b.permissions {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|p| {
                    Permission::parse(p).ok_or_else(|| {
                        ApiError::new(ErrorCode::Validation, format!("unknown permission {p:?}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let now = Utc::now();
    let expires_at = match (b.expires_at, b.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(at), None) if at <= now => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "expires_at must be in the future",
            ));
        }
        (Some(at), None) => Some(at),
        (None, Some(days)) if !(1..=MAX_KEY_DAYS).contains(&days) => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                format!("expires_in_days must be between 1 and {MAX_KEY_DAYS}"),
            ));
        }
        (None, Some(days)) => Some(now + Duration::days(days)),
        (None, None) => None,
    };
    let org = who.0.org_id;
    if let Some(ns) = b.namespace_id
        && state.stores.namespaces.get(org, ns).await?.is_none()
    {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "namespace_id names no namespace of this organization",
        ));
    }
    // A namespace-confined caller cannot mint a key reaching beyond its namespace.
    if let Some(own_ns) = who.0.namespace
        && b.namespace_id != Some(own_ns)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this credential may only create keys for its namespace",
        ));
    }
    let req = KeyRequest {
        name: b.name.trim().to_owned(),
        namespace_id: b.namespace_id,
        permissions,
        expires_at,
    };
    let created = match key_type {
        ApiKeyType::User => state.auth.create_user_key(&who.0, req).await,
        ApiKeyType::A2a => state.auth.create_app_key(org, req).await,
    }
    .map_err(gateway_types::error::GatewayError::from)?;
    state.auditor.record(
        org,
        AuditEvent::new(actions::API_KEY_CREATE, audit::actor(&who.0))
            .target("api_key", created.key.id)
            .after(key_summary(&created.key))
            .context(&ctx.0),
    );
    let view = CreatedKeyView {
        key: KeyView::from(created.key),
        key_secret: created.secret.expose_secret().to_owned(),
    };
    Ok(no_store(HttpResponse::Created().json(view)))
}

/// `DELETE /auth/api-keys/{id}`: revokes a key (one's own; any of the organization with
/// `keys:manage`). Another organization's key, or a key the caller may not see, is a 404.
pub(crate) async fn revoke_key(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such API key");
    let id: ApiKeyId = id.parse().map_err(|_| not_found())?;
    let p = &who.0;
    let key = state
        .stores
        .api_keys
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let own = key.user_id.is_some() && key.user_id == p.user_id();
    if !(p.allows(Permission::KeysManage) || (own && p.allows(Permission::KeysOwn))) {
        return Err(not_found());
    }
    state
        .auth
        .revoke_key(p.org_id, id)
        .await
        .map_err(gateway_types::error::GatewayError::from)?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::API_KEY_REVOKE, audit::actor(p))
            .target("api_key", id)
            .before(key_summary(&key))
            .context(&ctx.0),
    );
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct A2aBody {
    grant_type: Option<String>,
    client_secret: Option<SecretString>,
}

/// `POST /auth/a2a/token`: exchanges an A2A key (client-credentials style: JSON
/// `{"grant_type":"client_credentials","client_secret":"mcpgw_…"}`, or the key as bearer /
/// `X-API-Key`) for a short-lived access token with the key's scopes.
pub(crate) async fn a2a_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Option<web::Json<A2aBody>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    if body
        .grant_type
        .as_deref()
        .is_some_and(|g| g != "client_credentials")
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "grant_type must be client_credentials",
        ));
    }
    let secret = match body.client_secret {
        Some(s) => s,
        None => SecretString::from(
            credential(&req)
                .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "client_secret is missing"))?
                .to_owned(),
        ),
    };
    match state.auth.a2a_token_detailed(&secret).await {
        Ok(pair) => Ok(tokens(&pair)),
        Err(refusal) => {
            // A secret that names no key belongs to no organization, so to no audit chain.
            if let Some(Account::Key { org_id, key_id }) = refusal.account {
                state.auditor.record(
                    org_id,
                    AuditEvent::new(actions::AUTH_A2A_TOKEN_FAILED, Actor::anonymous())
                        .target("api_key", key_id)
                        .after(serde_json::json!({"reason": refusal.reason}))
                        .context(&audit::context(&req)),
                );
            }
            Err(auth_error(&req, &state, refusal.error, true))
        }
    }
}

/// `GET /.well-known/jwks.json`: the public halves of the asymmetric signing keys.
pub(crate) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(300),
        ]))
        .json(state.auth.issuer().keys().jwks())
}

/// `GET /.well-known/oauth-protected-resource[/{resource path}]` (RFC 9728).
pub(crate) async fn protected_resource(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let base = public_base(&req, &state);
    let suffix = req
        .match_info()
        .get("resource")
        .map(|r| format!("/{}", r.trim_start_matches('/')));
    let authorization_servers: Vec<String> = state.auth.oidc().map(|o| o.issuer_urls()).unwrap_or_default();
    let scopes: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(300),
        ]))
        .json(serde_json::json!({
            "resource": format!("{base}{}", suffix.unwrap_or_default()),
            "authorization_servers": authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_name": "MCP Gateway",
        }))
}
