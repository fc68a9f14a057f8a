//! `/api/admin/policies`: access policy rules of the caller's organization, and the dry run.
//!
//! Writes validate the rule (and the organization's whole rule set with it), store it, and
//! swap this replica's in-memory snapshot at once; other replicas pick the change up from the
//! change log.

use actix_web::{HttpResponse, web};
use gateway_auth::policy::{Decision, PolicyRequest, PolicyRule, stored_rule};
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::ids::PolicyId;
use gateway_types::model::{NewPolicy, PolicyPatch, RecordSource, StoredPolicy};
use serde::Serialize;
use serde_json::Value;

use gateway_logging::audit::{AuditEvent, actions};

use crate::audit::{self, ClientContext, policy_summary};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such policy")
}

#[derive(Serialize)]
struct PolicyView {
    id: String,
    name: String,
    enabled: bool,
    source: &'static str,
    rule: Value,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<StoredPolicy> for PolicyView {
    fn from(p: StoredPolicy) -> Self {
        let rule = stored_rule(&p)
            .ok()
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or(p.rule);
        Self {
            id: p.id.to_string(),
            name: p.name,
            enabled: p.enabled,
            source: p.source.as_str(),
            rule,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

async fn slug(state: &AppState, p: &Principal) -> Result<String, ApiError> {
    Ok(state
        .stores
        .organizations
        .get(p.org_id)
        .await?
        .ok_or_else(|| ApiError::from_code(ErrorCode::NotFound))?
        .slug)
}

async fn refresh(state: &AppState, p: &Principal) -> Result<(), ApiError> {
    state
        .policies
        .refresh(
            p.org_id,
            state.stores.organizations.as_ref(),
            state.stores.policies.as_ref(),
        )
        .await
        .map_err(GatewayError::from)?;
    Ok(())
}

/// Parses a rule document from a request body; `id` is assigned by the gateway.
fn parse_rule(body: Value, id: PolicyId) -> Result<PolicyRule, ApiError> {
    let mut body = body;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "a policy rule is a JSON object",
        ));
    };
    obj.insert("id".into(), Value::String(id.to_string()));
    serde_json::from_value(body)
        .map_err(|e| ApiError::new(ErrorCode::Validation, format!("invalid rule: {e}")))
}

/// `GET /api/admin/policies`: stored rules, the rules declared in configuration, and the default.
pub(crate) async fn list(state: web::Data<AppState>, who: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesRead)?;
    let stored = state.stores.policies.list(p.org_id).await?;
    let slug = slug(&state, p).await?;
    let items: Vec<PolicyView> = stored.into_iter().map(PolicyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "declared": state.policies.declared(&slug),
        "default_effect": state.policies.default_effect(),
    })))
}

/// `POST /api/admin/policies`: body is a rule document (`name`, `effect`, `subjects`,
/// `resources`, `actions`, `conditions`, `enabled`).
pub(crate) async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesWrite)?;
    let id = PolicyId::new();
    let rule = parse_rule(body.into_inner(), id)?;
    let stored = state.stores.policies.list(p.org_id).await?;
    state
        .policies
        .check_candidate(&slug(&state, p).await?, &stored, &rule)
        .map_err(GatewayError::from)?;
    let doc = serde_json::to_value(&rule).map_err(ApiError::internal)?;
    let created = state
        .stores
        .policies
        .create(
            p.org_id,
            NewPolicy {
                id,
                name: rule.name.clone(),
                rule: doc,
                enabled: rule.enabled,
                source: RecordSource::Api,
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::POLICY_CREATE, audit::actor(p))
            .target("policy", created.id)
            .after(policy_summary(&created))
            .context(&ctx.0),
    );
    refresh(&state, p).await?;
    Ok(HttpResponse::Created().json(PolicyView::from(created)))
}

/// `GET /api/admin/policies/{id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesRead)?;
    let id: PolicyId = id.parse().map_err(|_| not_found())?;
    let policy = state
        .stores
        .policies
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(PolicyView::from(policy)))
}

/// `PUT /api/admin/policies/{id}`: replaces the rule document.
pub(crate) async fn update(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesWrite)?;
    let id: PolicyId = id.parse().map_err(|_| not_found())?;
    let before = state
        .stores
        .policies
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    let rule = parse_rule(body.into_inner(), id)?;
    let stored = state.stores.policies.list(p.org_id).await?;
    state
        .policies
        .check_candidate(&slug(&state, p).await?, &stored, &rule)
        .map_err(GatewayError::from)?;
    let doc = serde_json::to_value(&rule).map_err(ApiError::internal)?;
    let updated = state
        .stores
        .policies
        .update(
            p.org_id,
            id,
            PolicyPatch {
                name: Some(rule.name.clone()),
                rule: Some(doc),
                enabled: Some(rule.enabled),
            },
        )
        .await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::POLICY_UPDATE, audit::actor(p))
            .target("policy", id)
            .before(policy_summary(&before))
            .after(policy_summary(&updated))
            .context(&ctx.0),
    );
    refresh(&state, p).await?;
    Ok(HttpResponse::Ok().json(PolicyView::from(updated)))
}

/// `DELETE /api/admin/policies/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesWrite)?;
    let id: PolicyId = id.parse().map_err(|_| not_found())?;
    let before = state
        .stores
        .policies
        .get(p.org_id, id)
        .await?
        .ok_or_else(not_found)?;
    state.stores.policies.delete(p.org_id, id).await?;
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::POLICY_DELETE, audit::actor(p))
            .target("policy", id)
            .before(policy_summary(&before))
            .context(&ctx.0),
    );
    refresh(&state, p).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/admin/policies/evaluate`: the dry run. Body: a policy request (`subject`,
/// `action`, `target`, optional `arguments` and `client_ip`); answer: the decision and the rule
/// that made it, against the organization's live snapshot. A dry run denies nothing, so it is
/// never audited (unlike real denials, see [`crate::audit::policy_denied`]).
pub(crate) async fn evaluate(
    state: web::Data<AppState>,
    who: Authenticated,
    body: web::Json<PolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::PoliciesRead)?;
    let decision: Decision = state.policies.snapshot(p.org_id).evaluate(&body);
    Ok(HttpResponse::Ok().json(decision))
}
