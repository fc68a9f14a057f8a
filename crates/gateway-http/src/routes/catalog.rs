//! `/gateway/servers/{id}/catalog`: what a server offers, as the gateway discovered it
//! ([`crate::catalog`]), and its tool-definition pins.
//!
//! - `GET …/catalog` (`servers:read`): the catalog from memory, with `pending_changes` (tools
//!   whose definition differs from the pinned one), `withheld` (those hidden from clients under
//!   `pinning: enforce`) and the recent `changes`.
//! - `POST …/catalog/refresh` (`servers:write`): discovers the server now and answers the
//!   catalog (a server that cannot be reached keeps its catalog and gets `last_error`).
//! - `POST …/catalog/approve` (`catalog:manage`): `{"tools": [names]}` or `{"all": true}` pins
//!   the new definitions of those tools; audited as `catalog.approve`.
//!
//! The id or the name names the server; another organization's server is 404.

use actix_web::{HttpResponse, web};
use gateway_auth::rbac::Permission;
use gateway_logging::audit::AuditEvent;
use gateway_types::error::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use crate::audit::{self, ClientContext};
use crate::authn::Authenticated;
use crate::catalog::{self, RefreshError};
use crate::error::ApiError;
use crate::state::AppState;

fn refresh_error(err: RefreshError) -> ApiError {
    match err {
        RefreshError::NotFound => ApiError::new(ErrorCode::NotFound, "no such server"),
        RefreshError::Store(e) => e.into(),
    }
}

/// `GET /gateway/servers/{id}/catalog`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersRead)?;
    let server = super::servers::find(&state, p, &id).await?;
    let entry = state.catalogs.get(p.org_id, server.id);
    Ok(HttpResponse::Ok().json(catalog::view(&server, entry.as_deref())))
}

/// `POST /gateway/servers/{id}/catalog/refresh`.
pub(crate) async fn refresh(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersWrite)?;
    let server = super::servers::find(&state, p, &id).await?;
    // On the shared runtime: the discovery's connection outlives no actix worker.
    let task_state = state.get_ref().clone();
    let (org, sid) = (p.org_id, server.id);
    let entry = state
        .runtime
        .spawn(async move { catalog::refresh_now(&task_state, org, sid).await })
        .await
        .map_err(ApiError::internal)?
        .map_err(refresh_error)?;
    Ok(HttpResponse::Ok().json(catalog::view(&server, entry.as_deref())))
}

/// The body of `POST …/catalog/approve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    /// The tools whose pending changes are approved.
    #[serde(default)]
    tools: Option<Vec<String>>,
    /// Approve every pending change.
    #[serde(default)]
    all: bool,
}

/// `POST /gateway/servers/{id}/catalog/approve`.
pub(crate) async fn approve(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<ApproveBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::CatalogManage)?;
    let server = super::servers::find(&state, p, &id).await?;
    let body = body.into_inner();
    let tools = match (body.all, body.tools) {
        (true, None) => None,
        (false, Some(tools)) if !tools.is_empty() => Some(tools),
        _ => {
            return Err(ApiError::new(
                ErrorCode::Validation,
                "name the tools to approve (\"tools\": [...]) or approve all (\"all\": true)",
            ));
        }
    };
    let (kind, actor_id) = p.actor();
    let by = format!("{kind}:{actor_id}");
    let (approved, entry) = catalog::approve(&state, &server, tools.as_deref(), &by)
        .await
        .map_err(refresh_error)?;
    let names: Vec<&str> = approved.iter().map(|c| c.tool.as_str()).collect();
    if !approved.is_empty() {
        tracing::info!(
            org.id = %p.org_id,
            server.id = %server.id,
            tools = ?names,
            "changed tool definitions approved"
        );
        state.auditor.record(
            p.org_id,
            AuditEvent::new(catalog::actions::APPROVE, audit::actor(p))
                .target("server", server.id)
                .after(json!({
                    "tools": approved.iter().map(|c| json!({
                        "tool": c.tool,
                        "old_fingerprint": c.old_fingerprint,
                        "new_fingerprint": c.new_fingerprint,
                    })).collect::<Vec<_>>(),
                }))
                .context(&ctx.0),
        );
    }
    Ok(HttpResponse::Ok().json(json!({
        "approved": names,
        "catalog": catalog::view(&server, entry.as_deref()),
    })))
}
