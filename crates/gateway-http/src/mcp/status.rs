//! Status endpoints: what the MCP endpoints are serving right now.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::SUPPORTED_VERSIONS;
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use gateway_auth::rbac::Permission;

/// `GET /mcp/status`.
pub(super) async fn mcp(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ServersRead)?;
    let stats = state.hub.stats();
    Ok(HttpResponse::Ok().json(json!({
        "sessions": stats.sessions,
        "streamable_http_sessions": stats.streamable_http,
        "shared_upstreams": stats.shared_upstreams,
        "processes": stats.processes,
    })))
}

/// `GET /sse/status`.
pub(super) async fn sse(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ServersRead)?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": state.hub.stats().sse })))
}

/// `GET /ws/status`.
pub(super) async fn ws(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::ServersRead)?;
    Ok(HttpResponse::Ok().json(json!({ "connections": state.hub.stats().websocket })))
}

/// `GET /mcp/capabilities`: what the gateway speaks.
pub(super) async fn capabilities(auth: Authenticated) -> Result<HttpResponse, ApiError> {
    auth.require(Permission::McpUse)?;
    Ok(HttpResponse::Ok().json(json!({
        "protocol_versions": SUPPORTED_VERSIONS,
        "client_transports": ["streamable_http", "sse", "websocket", "jsonrpc"],
        "upstream_transports": ["stdio", "http", "sse", "ws"],
        "session_modes": ["per_client", "shared"],
    })))
}
