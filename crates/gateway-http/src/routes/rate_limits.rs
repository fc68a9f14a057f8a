//! `/api/admin/rate-limits`: the caller's organization's own rate-limit rules
//! (`rate_limits:read`, `rate_limits:write`), the rules of the configuration (read-only), and
//! the usage summaries.
//!
//! Writes are validated as a whole (every problem reported at once, 422), stored, audited,
//! and applied at once on this replica (its snapshot of the organization is rebuilt); other
//! replicas apply them within `rate_limit.reload_interval_seconds`.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_logging::audit::{AuditEvent, actions};
use gateway_ratelimit::Rule;
use gateway_ratelimit::rules::{Problem, RuleHome, RuleInput, validate};
use gateway_types::error::ErrorCode;
use gateway_types::ids::RateLimitId;
use gateway_types::model::{NewRateLimitRule, RateLimitRule, RateLimitRulePatch, RateLimitScope};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use crate::audit::{self, ClientContext};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such rate limit")
}

fn parse_id(raw: &str) -> Result<RateLimitId, ApiError> {
    raw.parse().map_err(|_| not_found())
}

/// A stored rule as answered.
#[derive(Serialize)]
struct RuleView {
    id: String,
    name: String,
    scope: RateLimitScope,
    #[serde(rename = "match")]
    match_value: Option<String>,
    limit: i32,
    window_seconds: i32,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<RateLimitRule> for RuleView {
    fn from(r: RateLimitRule) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name,
            scope: r.scope,
            match_value: r.match_value,
            limit: r.limit_count,
            window_seconds: r.window_seconds,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A rule of the configuration as answered.
fn declared_view(r: &Rule) -> Value {
    json!({
        "name": r.name,
        "scope": r.scope,
        "match": r.matcher.as_text(),
        "limit": r.quota.limit,
        "window_seconds": r.quota.window_seconds(),
        "source": r.origin.as_str(),
    })
}

/// A rule as audited (rules hold no secrets).
fn summary(r: &RateLimitRule) -> Value {
    json!({
        "name": r.name,
        "scope": r.scope,
        "match": r.match_value,
        "limit": r.limit_count,
        "window_seconds": r.window_seconds,
        "enabled": r.enabled,
    })
}

fn validation(problems: &[Problem]) -> ApiError {
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    ApiError::new(ErrorCode::Validation, text.join("; "))
}

fn check(rule: RuleInput<'_>) -> Result<(), ApiError> {
    validate(rule, RuleHome::Organization)
        .map(|_| ())
        .map_err(|p| validation(&p))
}

/// Applies a change to the organization's rules on this replica at once.
async fn apply(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    state
        .limits
        .reload_org(
            p.org_id,
            state.stores.organizations.as_ref(),
            state.stores.rate_limits.as_ref(),
        )
        .await?;
    Ok(())
}

/// `GET /api/admin/rate-limits`: the organization's rules, and those of the configuration
/// (declared rules and defaults), which apply to every organization.
pub(crate) async fn list(state: web::Data<AppState>, who: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsRead)?;
    let items: Vec<RuleView> = state
        .stores
        .rate_limits
        .list(p.org_id)
        .await?
        .into_iter()
        .map(RuleView::from)
        .collect();
    let declared: Vec<Value> = state.limits.declared().iter().map(|r| declared_view(r)).collect();
    Ok(HttpResponse::Ok().json(json!({
        "enabled": state.limits.enabled(),
        "items": items,
        "declared": declared,
    })))
}

/// `POST /api/admin/rate-limits` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    scope: RateLimitScope,
    #[serde(default, rename = "match", alias = "match_value")]
    match_value: Option<String>,
    #[serde(alias = "limit_count")]
    limit: i64,
    #[serde(default = "default_window")]
    window_seconds: i64,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

const fn default_window() -> i64 {
    60
}

const fn enabled_by_default() -> bool {
    true
}

/// `POST /api/admin/rate-limits`.
pub(crate) async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsWrite)?;
    let b = body.into_inner();
    check(RuleInput {
        name: &b.name,
        scope: b.scope,
        match_value: b.match_value.as_deref(),
        limit: b.limit,
        window_seconds: b.window_seconds,
    })?;
    let created = state
        .stores
        .rate_limits
        .create(
            p.org_id,
            NewRateLimitRule {
                name: b.name,
                scope: b.scope,
                match_value: b.match_value,
                limit_count: i32::try_from(b.limit).map_err(ApiError::internal)?,
                window_seconds: i32::try_from(b.window_seconds).map_err(ApiError::internal)?,
                enabled: b.enabled,
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::RATE_LIMIT_CREATE, audit::actor(p))
            .target("rate_limit", created.id)
            .after(summary(&created))
            .context(&ctx.0),
    );
    apply(&state, p).await?;
    Ok(HttpResponse::Created().json(RuleView::from(created)))
}

/// `GET /api/admin/rate-limits/{id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsRead)?;
    let id = parse_id(&id)?;
    let rule = state
        .stores
        .rate_limits
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(RuleView::from(rule)))
}

/// Distinguishes a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /api/admin/rate-limits/{id}` body: absent fields stay, `match: null` means every
/// value. The scope cannot change (a rule of another scope is another rule).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    name: Option<String>,
    scope: Option<RateLimitScope>,
    #[serde(
        default,
        rename = "match",
        alias = "match_value",
        deserialize_with = "present"
    )]
    match_value: Option<Option<String>>,
    #[serde(alias = "limit_count")]
    limit: Option<i64>,
    window_seconds: Option<i64>,
    enabled: Option<bool>,
}

/// `PUT /api/admin/rate-limits/{id}`.
pub(crate) async fn update(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsWrite)?;
    let id = parse_id(&id)?;
    let before = state
        .stores
        .rate_limits
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let b = body.into_inner();
    if b.scope.is_some_and(|s| s != before.scope) {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "scope: cannot change; create a rule of the other scope instead",
        ));
    }
    let name = b.name.unwrap_or_else(|| before.name.clone());
    let match_value = b
        .match_value
        .clone()
        .unwrap_or_else(|| before.match_value.clone());
    let limit = b.limit.unwrap_or_else(|| i64::from(before.limit_count));
    let window_seconds = b
        .window_seconds
        .unwrap_or_else(|| i64::from(before.window_seconds));
    check(RuleInput {
        name: &name,
        scope: before.scope,
        match_value: match_value.as_deref(),
        limit,
        window_seconds,
    })?;
    let updated = state
        .stores
        .rate_limits
        .update(
            p.org_id,
            id,
            RateLimitRulePatch {
                name: Some(name),
                match_value: Some(match_value),
                limit_count: Some(i32::try_from(limit).map_err(ApiError::internal)?),
                window_seconds: Some(i32::try_from(window_seconds).map_err(ApiError::internal)?),
                enabled: b.enabled,
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::RATE_LIMIT_UPDATE, audit::actor(p))
            .target("rate_limit", id)
            .before(summary(&before))
            .after(summary(&updated))
            .context(&ctx.0),
    );
    apply(&state, p).await?;
    Ok(HttpResponse::Ok().json(RuleView::from(updated)))
}

/// `DELETE /api/admin/rate-limits/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsWrite)?;
    let id = parse_id(&id)?;
    let before = state
        .stores
        .rate_limits
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    state.stores.rate_limits.delete(p.org_id, id).await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::RATE_LIMIT_DELETE, audit::actor(p))
            .target("rate_limit", id)
            .before(summary(&before))
            .context(&ctx.0),
    );
    apply(&state, p).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/admin/rate-limits/usage` query: `[from, to)` in RFC 3339, default the last hour.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// `GET /api/admin/rate-limits/usage`: allowed and rejected requests per rule and minute
/// (written every `rate_limit.usage_flush_seconds`).
pub(crate) async fn usage(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::RateLimitsRead)?;
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::hours(1));
    if from >= to || to - from > Duration::days(31) {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "from must be before to, at most 31 days apart",
        ));
    }
    let rows = state.stores.rate_limits.usage(p.org_id, from, to).await?;
    let items: Vec<Value> = rows
        .into_iter()
        .map(|u| {
            json!({
                "rule_key": u.rule_key,
                "rate_limit_id": u.rate_limit_id.map(|id| id.to_string()),
                "window_start": u.window_start,
                "allowed": u.allowed_count,
                "rejected": u.rejected_count,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "from": from, "to": to, "items": items })))
}
