//! Namespace endpoints: `/mcp`, `/sse`, `/ws`, `/rpc` and `/namespaces/{slug}/…` present every
//! server of a namespace as one MCP server (`gateway_transport::federation`). The namespace
//! comes from the path, else the `X-MCP-Namespace` header, else the API key's namespace scope.
//! A key scoped to one namespace reaches no other (another namespace is "not found").

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use gateway_auth::principal::Principal;
use gateway_transport::client::{ClientSession, ClientTransport, Owner};
use gateway_transport::error::codes;
use gateway_transport::federation::{MemberSpec, Naming};
use gateway_transport::hub::OpenError;
use gateway_transport::link::UpstreamSpec;
use gateway_types::error::ErrorCode;
use gateway_types::ids::ServerId;
use gateway_types::jsonrpc::ErrorObject;
use gateway_types::model::{Namespace, Page, ServerFilter, ServerProtocol, ServerStatus};

use super::{LogGuard, PolicyGuard, SessionGuard};
use crate::error::ApiError;
use crate::ratelimit::McpLimiter;
use crate::state::AppState;

/// The header naming the namespace on `/mcp`, `/sse`, `/ws` and `/rpc`.
pub(crate) const NAMESPACE_HEADER: &str = "x-mcp-namespace";

/// Most servers one federation presents.
const MAX_MEMBERS: u32 = 100;

/// The namespace a request addresses: `slug` from the path or header, else the credential's
/// scope. Another organization's namespace, or one outside the credential's scope, is
/// "not found"; none at all is a 400 that says how to choose.
pub(super) async fn resolve_namespace(
    state: &AppState,
    principal: &Principal,
    slug: Option<&str>,
) -> Result<Namespace, ApiError> {
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such namespace");
    let ns = match (slug, principal.namespace) {
        (Some(slug), _) => state
            .stores
            .namespaces
            .get_by_slug(principal.org_id, slug)
            .await
            .map_err(ApiError::internal)?,
        (None, Some(id)) => state
            .stores
            .namespaces
            .get(principal.org_id, id)
            .await
            .map_err(ApiError::internal)?,
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "choose a namespace: /namespaces/{slug}/mcp, the X-MCP-Namespace header, or an API key scoped to one",
            ));
        }
    }
    .ok_or_else(not_found)?;
    if principal.namespace.is_some_and(|scope| scope != ns.id) {
        return Err(not_found());
    }
    Ok(ns)
}

/// The name a federated session's upstream goes by (sessions are matched to paths by it).
pub(super) fn federation_name(slug: &str) -> String {
    format!("namespace:{slug}")
}

/// Opens a federated client session on `ns` for the caller: every active server of the
/// namespace is a member, each behind the caller's policy and rate limits on it (requests
/// routed to a member are checked with the member's own tool names, as on the server's own
/// endpoints; what the federation answers itself — `initialize`, the merged lists — is not
/// counted against method limits).
pub(super) async fn open_federation(
    state: &AppState,
    req: &HttpRequest,
    principal: &Principal,
    ns: &Namespace,
    transport: ClientTransport,
) -> Result<Arc<ClientSession>, ErrorObject> {
    let internal = || ErrorObject::new(codes::INTERNAL_ERROR, "internal error");
    let max = state
        .org_limits
        .max_sessions(state, principal.org_id)
        .await
        .map_err(|_| internal())?;
    let filter = ServerFilter {
        namespace_id: Some(ns.id),
        ..ServerFilter::default()
    };
    let page = Page {
        offset: 0,
        limit: MAX_MEMBERS,
    };
    let records = state
        .stores
        .servers
        .list(principal.org_id, filter, page)
        .await
        .map_err(|_| internal())?;
    let mut members = Vec::new();
    let mut timeout = Duration::from_secs(1);
    let ip = crate::client_ip::client_ip(req);
    for record in records.items {
        if record.status == ServerStatus::Inactive {
            continue;
        }
        let Ok(Some(server)) = state
            .servers
            .resolve(principal.org_id, &record.id.to_string())
            .await
        else {
            continue;
        };
        let spec = crate::upstreams::spec_of(&server, state.config.server.max_body_bytes);
        timeout = timeout.max(spec.timeout);
        let policy = PolicyGuard::new(
            Arc::clone(&state.policies),
            state.auditor.clone(),
            principal,
            Some(ns.slug.clone()),
            server.record.name.clone(),
            ip,
        )
        // A member that is down (health checks) has its calls refused at once.
        .with_availability(server.record.id, Arc::clone(&state.servers));
        let pins = super::guard::PinGuard::new(
            server.record.id,
            server.record.name.clone(),
            Arc::clone(&state.catalogs),
        );
        let guard =
            Arc::new(SessionGuard::new(policy, McpLimiter::new(state, principal, ip)).with_pins(pins));
        members.push(MemberSpec {
            name: server.record.name.clone(),
            spec,
            guard,
        });
    }
    let spec = UpstreamSpec {
        server_id: ns.id.to_string(),
        name: federation_name(&ns.slug),
        org_id: principal.org_id.to_string(),
        protocol: ServerProtocol::Stdio,
        url: None,
        command: None,
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        headers: Vec::new(),
        // Longer than any member's, so a member's own timeout error arrives first.
        timeout: timeout + Duration::from_secs(5),
        max_retries: 0,
        max_message_bytes: state.config.server.max_body_bytes,
        legacy_only: false,
    };
    let naming = Naming {
        separator: state.config.mcp.federation_separator.clone(),
    };
    let owner = Owner {
        namespace_id: Some(ns.id),
        ..super::owner_of_principal(principal)
    };
    state
        .hub
        .open_federated(
            owner,
            spec,
            members,
            naming,
            ServerId::from_uuid(*ns.id.as_uuid()),
            transport,
            Arc::new(LogGuard(super::session_log(
                state,
                req,
                principal,
                Some(ns.id),
                None,
                &federation_name(&ns.slug),
                None,
            ))),
            max,
        )
        .map_err(|e| match e {
            OpenError::SessionLimit { limit } => ErrorObject::new(
                codes::LIMIT_REACHED,
                format!("the organization's limit of {limit} open MCP sessions is reached"),
            ),
            OpenError::ShuttingDown => {
                ErrorObject::new(codes::UPSTREAM_UNAVAILABLE, "the gateway is shutting down")
            }
        })
}
