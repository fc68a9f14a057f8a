//! `/api/admin/users`: user accounts of the caller's organization (`users:read`, `users:write`).

use actix_web::{HttpResponse, web};
use gateway_auth::rbac::Permission;
use gateway_types::error::ErrorCode;
use gateway_types::ids::UserId;
use gateway_types::model::{NewUser, Page, Role, UserPatch};
use secrecy::SecretString;
use serde::Deserialize;

use gateway_logging::audit::{AuditEvent, actions};

use super::auth::{UserView, validate_name};
use crate::audit::{self, ClientContext, user_summary};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    offset: Option<u32>,
    limit: Option<u32>,
}

impl PageQuery {
    pub(crate) fn page(&self) -> Page {
        let d = Page::default();
        Page {
            offset: self.offset.unwrap_or(d.offset),
            limit: self.limit.unwrap_or(d.limit).clamp(1, Page::MAX_LIMIT),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such user")
}

fn parse_id(raw: &str) -> Result<UserId, ApiError> {
    raw.parse().map_err(|_| not_found())
}

fn valid_email(email: &str) -> bool {
    let e = email.trim();
    e.len() <= 320
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `GET /api/admin/users`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::UsersRead)?;
    let page = state.stores.users.list(p.org_id, q.page()).await?;
    let items: Vec<UserView> = page.items.into_iter().map(UserView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "total": page.total })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    email: String,
    name: String,
    password: SecretString,
    role: Role,
}

/// `POST /api/admin/users`.
pub(crate) async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::UsersWrite)?;
    let CreateBody {
        email,
        name,
        password,
        role,
    } = body.into_inner();
    if !valid_email(&email) {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "email is not a valid address",
        ));
    }
    validate_name(&name, "name")?;
    let password_hash = state
        .auth
        .hash_new_password(password)
        .await
        .map_err(gateway_types::error::GatewayError::from)?;
    let user = state
        .stores
        .users
        .create(
            p.org_id,
            NewUser {
                email: email.trim().to_lowercase(),
                name: name.trim().to_owned(),
                password_hash,
                role,
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::USER_CREATE, audit::actor(p))
            .target("user", user.id)
            .after(user_summary(&user))
            .context(&ctx.0),
    );
    Ok(HttpResponse::Created().json(UserView::from(user)))
}

/// `GET /api/admin/users/{id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::UsersRead)?;
    let user = state
        .stores
        .users
        .get(p.org_id, parse_id(&id)?)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    name: Option<String>,
    role: Option<Role>,
    is_active: Option<bool>,
    password: Option<SecretString>,
}

/// `PUT /api/admin/users/{id}`. Admins cannot demote or disable themselves (the organization
/// would risk losing its last admin).
pub(crate) async fn update(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::UsersWrite)?;
    let id = parse_id(&id)?;
    let UpdateBody {
        name,
        role,
        is_active,
        password,
    } = body.into_inner();
    if p.user_id() == Some(id) && (role.is_some_and(|r| r != p.role) || is_active == Some(false)) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "you cannot change your own role or disable yourself",
        ));
    }
    if let Some(name) = &name {
        validate_name(name, "name")?;
    }
    let password_hash = match password {
        Some(pw) => Some(
            state
                .auth
                .hash_new_password(pw)
                .await
                .map_err(gateway_types::error::GatewayError::from)?,
        ),
        None => None,
    };
    let password_changed = password_hash.is_some();
    let patch = UserPatch {
        name: name.map(|n| n.trim().to_owned()),
        password_hash,
        role,
        is_active,
    };
    let before = state
        .stores
        .users
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let user = state.stores.users.update(p.org_id, id, patch).await?;
    let mut after = user_summary(&user);
    if password_changed {
        // That it changed, never what to.
        after["password_changed"] = serde_json::Value::Bool(true);
    }
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::USER_UPDATE, audit::actor(p))
            .target("user", id)
            .before(user_summary(&before))
            .after(after)
            .context(&ctx.0),
    );
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// `DELETE /api/admin/users/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::UsersWrite)?;
    let id = parse_id(&id)?;
    if p.user_id() == Some(id) {
        return Err(ApiError::new(ErrorCode::Conflict, "you cannot delete yourself"));
    }
    let before = state
        .stores
        .users
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    state.stores.users.delete(p.org_id, id).await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::USER_DELETE, audit::actor(p))
            .target("user", id)
            .before(user_summary(&before))
            .context(&ctx.0),
    );
    Ok(HttpResponse::NoContent().finish())
}
