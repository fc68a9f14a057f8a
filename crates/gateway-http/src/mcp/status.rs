//! Status endpoints: what the MCP endpoints are serving right now, for the caller's
//! organization (and only its namespace, for a namespace-confined credential).

use std::collections::HashSet;

use actix_web::{HttpResponse, web};
use gateway_auth::principal::Principal;
use gateway_transport::client::ClientTransport;
use gateway_transport::hub::SessionScope;
use serde_json::json;

use super::SUPPORTED_VERSIONS;
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use gateway_auth::rbac::Permission;

/// What the caller may see of this replica's sessions.
struct Counts {
    sessions: usize,
    streamable_http: usize,
    sse: usize,
    websocket: usize,
    shared_upstreams: usize,
    processes: usize,
}

fn counts(state: &AppState, p: &Principal) -> Counts {
    let scope = SessionScope {
        namespace_id: p.namespace,
        ..SessionScope::org(p.org_id)
    };
    let sessions = state.hub.sessions_in(&scope);
    let by = |t: ClientTransport| sessions.iter().filter(|s| s.transport() == t).count();
    let shared: HashSet<_> = sessions
        .iter()
        .filter(|s| !s.owns_upstream())
        .map(|s| s.server_id())
        .collect();
    Counts {
        sessions: sessions.len(),
        streamable_http: by(ClientTransport::StreamableHttp),
        sse: by(ClientTransport::Sse),
        websocket: by(ClientTransport::WebSocket),
        shared_upstreams: shared.len(),
        processes: state.hub.stdio_processes(p.org_id, p.namespace).len(),
    }
}

/// `GET /mcp/status`.
pub(super) async fn mcp(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = auth.require(Permission::ServersRead)?;
    let c = counts(&state, p);
    Ok(HttpResponse::Ok().json(json!({
        "sessions": c.sessions,
        "streamable_http_sessions": c.streamable_http,
        "shared_upstreams": c.shared_upstreams,
        "processes": c.processes,
    })))
}

/// `GET /sse/status`.
pub(super) async fn sse(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = auth.require(Permission::ServersRead)?;
    Ok(HttpResponse::Ok().json(json!({ "sessions": counts(&state, p).sse })))
}

/// `GET /ws/status`.
pub(super) async fn ws(state: web::Data<AppState>, auth: Authenticated) -> Result<HttpResponse, ApiError> {
    let p = auth.require(Permission::ServersRead)?;
    Ok(HttpResponse::Ok().json(json!({ "connections": counts(&state, p).websocket })))
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
