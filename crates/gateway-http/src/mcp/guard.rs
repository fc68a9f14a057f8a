//! The MCP pipeline's hooks for one client session: [`SessionGuard`] composes the policy
//! ([`PolicyGuard`]: decides every request and filters every list result with the same
//! evaluation function, so what a client sees listed and what it may use never disagree) and
//! the per-method and per-tool rate limits ([`McpLimiter`]), checked in that order: a request
//! the policy denies is never counted against a limit.
//! The policy guard also refuses every request at once while the session's server is down
//! (health checks failing), with `-32000`. The pin check ([`PinGuard`], first of all) withholds
//! the tools whose definition changed and is not approved under `pinning: enforce`: they are
//! removed from `tools/list` results and `tools/call` on them is refused with
//! [`TOOL_WITHHELD`]; it reads the in-memory catalogs only.

use std::net::IpAddr;
use std::sync::Arc;

use gateway_auth::policy::{Action, ItemKind, PolicyRegistry, PolicyRequest, SubjectFacts, Target};
use gateway_auth::principal::Principal;
use gateway_logging::audit::{Auditor, RequestContext};
use gateway_transport::client::{Admission, Guard};
use gateway_transport::error::codes;
use gateway_transport::exchange::{Exchange, ExchangeObserver};
use gateway_transport::upstream::ResultFilter;
use gateway_types::ids::{OrgId, ServerId};
use gateway_types::jsonrpc::{ErrorObject, Request};
use serde_json::Value;

use crate::catalog::Catalogs;
use crate::ratelimit::McpLimiter;
use crate::request_log::McpLog;
use crate::servers_cache::ServerCache;

/// The JSON-RPC error code of a call to a withheld tool (changed definition, not approved).
pub(crate) const TOOL_WITHHELD: i64 = -32005;

/// Pins, then policy, then rate limits, for one client session; and its request log.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    pins: Option<PinGuard>,
    policy: PolicyGuard,
    limits: McpLimiter,
    log: Option<McpLog>,
}

impl SessionGuard {
    pub(crate) fn new(policy: PolicyGuard, limits: McpLimiter) -> Self {
        Self {
            pins: None,
            policy,
            limits,
            log: None,
        }
    }

    /// Withholds the server's changed tools (see [`PinGuard`]).
    pub(crate) fn with_pins(mut self, pins: PinGuard) -> Self {
        self.pins = Some(pins);
        self
    }

    /// Logs (and counts) every exchange of the session.
    pub(crate) fn with_log(mut self, log: McpLog) -> Self {
        self.log = Some(log);
        self
    }
}

impl ExchangeObserver for SessionGuard {
    fn observes(&self) -> bool {
        self.log.is_some()
    }

    fn wants_bodies(&self) -> bool {
        self.log.as_ref().is_some_and(McpLog::wants_bodies)
    }

    fn request_tag(&self) -> Option<Box<str>> {
        McpLog::request_tag()
    }

    fn completed(&self, exchange: Exchange<'_>) {
        if let Some(log) = &self.log {
            log.completed(exchange);
        }
    }
}

/// The guard of a namespace federation's client session: members have their own policy and
/// limits (their [`SessionGuard`]s), so this one only logs what the client asked.
#[derive(Debug)]
pub(crate) struct LogGuard(pub(crate) McpLog);

impl ResultFilter for LogGuard {
    fn filter(&self, _method: &str, _result: &mut Value) {}
}

impl ExchangeObserver for LogGuard {
    fn observes(&self) -> bool {
        true
    }

    fn wants_bodies(&self) -> bool {
        self.0.wants_bodies()
    }

    fn request_tag(&self) -> Option<Box<str>> {
        McpLog::request_tag()
    }

    fn completed(&self, exchange: Exchange<'_>) {
        self.0.completed(exchange);
    }
}

impl Guard for LogGuard {
    fn check(&self, _request: &Request) -> Result<(), ErrorObject> {
        Ok(())
    }
}

impl ResultFilter for SessionGuard {
    fn filter(&self, method: &str, result: &mut Value) {
        if let Some(pins) = &self.pins
            && method == "tools/list"
        {
            pins.catalogs.filter_tools(pins.server, result);
        }
        self.policy.filter(method, result);
    }
}

impl Guard for SessionGuard {
    fn check(&self, request: &Request) -> Result<(), ErrorObject> {
        if let Some(pins) = &self.pins {
            pins.check(request)?;
        }
        self.policy.check(request)
    }

    fn admit(&self, request: &Request) -> Option<Admission> {
        self.limits.admit(request)
    }
}

/// The pin check of one server: its tools withheld under `pinning: enforce`, from memory.
pub(crate) struct PinGuard {
    server: ServerId,
    name: String,
    catalogs: Arc<Catalogs>,
}

impl PinGuard {
    pub(crate) fn new(server: ServerId, name: String, catalogs: Arc<Catalogs>) -> Self {
        Self {
            server,
            name,
            catalogs,
        }
    }

    fn check(&self, request: &Request) -> Result<(), ErrorObject> {
        if request.method != "tools/call" {
            return Ok(());
        }
        let tool = request
            .params
            .as_ref()
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if self.catalogs.is_withheld(self.server, tool) {
            tracing::info!(server.id = %self.server, tool = %tool, "call to a withheld tool refused");
            return Err(ErrorObject::new(
                TOOL_WITHHELD,
                format!(
                    "tool '{tool}' of server '{}' changed its definition and is withheld until an administrator approves the change",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for PinGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinGuard")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Policy for one client session on one server.
pub(crate) struct PolicyGuard {
    registry: Arc<PolicyRegistry>,
    org: OrgId,
    subject: SubjectFacts,
    namespace: Option<String>,
    server: String,
    client_ip: Option<IpAddr>,
    principal: Principal,
    auditor: Auditor,
    /// The server and the cache that knows whether it is down.
    availability: Option<(ServerId, Arc<ServerCache>)>,
}

impl PolicyGuard {
    pub(crate) fn new(
        registry: Arc<PolicyRegistry>,
        auditor: Auditor,
        principal: &Principal,
        namespace: Option<String>,
        server: String,
        client_ip: Option<IpAddr>,
    ) -> Self {
        Self {
            principal: principal.clone(),
            auditor,
            registry,
            org: principal.org_id,
            subject: SubjectFacts::from_principal(principal),
            namespace,
            server,
            client_ip,
            availability: None,
        }
    }

    /// Refuses every request while `server` is down (as `cache` knows it).
    pub(crate) fn with_availability(mut self, server: ServerId, cache: Arc<ServerCache>) -> Self {
        self.availability = Some((server, cache));
        self
    }

    fn request(&self, action: Action, kind: ItemKind, name: &str) -> PolicyRequest {
        let target = Target::item(self.namespace.as_deref(), &self.server, kind, name);
        let mut req = PolicyRequest::new(self.subject.clone(), action, target);
        if let Some(ip) = self.client_ip {
            req = req.with_client_ip(ip);
        }
        req
    }
}

impl std::fmt::Debug for PolicyGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyGuard")
            .field("org", &self.org)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl ResultFilter for PolicyGuard {
    fn filter(&self, method: &str, result: &mut Value) {
        let (field, key, kind) = match method {
            "tools/list" => ("tools", "name", ItemKind::Tool),
            "resources/list" => ("resources", "uri", ItemKind::Resource),
            "resources/templates/list" => ("resourceTemplates", "uriTemplate", ItemKind::Resource),
            "prompts/list" => ("prompts", "name", ItemKind::Prompt),
            _ => return,
        };
        let snapshot = self.registry.snapshot(self.org);
        if snapshot.allows_everything() {
            return;
        }
        if let Some(items) = result.get_mut(field).and_then(Value::as_array_mut) {
            items.retain(|item| {
                let name = item.get(key).and_then(Value::as_str).unwrap_or("");
                snapshot.visible(&self.request(Action::List, kind, name)).allowed
            });
        }
    }
}

/// The answer to a call on a server that is down.
pub(crate) fn server_down(name: &str) -> ErrorObject {
    ErrorObject::new(
        codes::UPSTREAM_UNAVAILABLE,
        format!(
            "server '{name}' is down (its health checks are failing); calls are refused until it recovers"
        ),
    )
}

impl ExchangeObserver for PolicyGuard {}

impl Guard for PolicyGuard {
    fn check(&self, request: &Request) -> Result<(), ErrorObject> {
        if let Some((server, cache)) = &self.availability
            && cache.is_down(*server)
        {
            return Err(server_down(&self.server));
        }
        let params = request.params.as_ref();
        let text = |k: &str| {
            params
                .and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let (action, kind, name, args) = match request.method.as_str() {
            "tools/call" => (
                Action::Call,
                ItemKind::Tool,
                text("name"),
                params.and_then(|p| p.get("arguments")),
            ),
            "resources/read" | "resources/subscribe" => (Action::Read, ItemKind::Resource, text("uri"), None),
            "prompts/get" => (
                Action::Get,
                ItemKind::Prompt,
                text("name"),
                params.and_then(|p| p.get("arguments")),
            ),
            _ => return Ok(()),
        };
        let snapshot = self.registry.snapshot(self.org);
        if snapshot.allows_everything() {
            return Ok(());
        }
        let mut req = self.request(action, kind, name);
        if let Some(args) = args {
            req = req.with_arguments(args.clone());
        }
        let decision = snapshot.evaluate(&req);
        if decision.allowed {
            Ok(())
        } else {
            tracing::info!(
                org.id = %self.org,
                server.name = %self.server,
                mcp.method = %request.method,
                mcp.item = %name,
                rule = decision.rule.as_ref().map_or("default", |r| r.id.as_str()),
                "MCP request denied by policy"
            );
            let ctx = RequestContext {
                ip: self.client_ip,
                request_id: None,
            };
            crate::audit::policy_denied(&self.auditor, &self.principal, &req, &decision, &ctx);
            Err(ErrorObject::new(codes::POLICY_DENIED, decision.reason))
        }
    }
}
