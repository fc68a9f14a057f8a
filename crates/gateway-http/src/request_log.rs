//! Request-log and MCP-metrics glue: turns completed MCP exchanges ([`McpLog`], attached to a
//! session's guard) and completed REST requests ([`log_rest`], called by the edge middleware)
//! into [`LogRecord`]s for the [`RequestLogger`], and records the MCP metrics.
//!
//! Both run on the request path, so they only copy what is at hand into the record and
//! `try_send` it; the logger's writer task does everything else (redaction, sinks, batching).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gateway_auth::principal::Principal;
use gateway_logging::request_log::{BodyParts, RequestLogger};
use gateway_transport::exchange::{Exchange, Outcome};
use gateway_types::ids::{LogId, NamespaceId, OrgId, ServerId};
use gateway_types::jsonrpc::Message;
use gateway_types::model::LogRecord;

/// MCP calls answered, by `server`, `method`, `tool` and `outcome`.
pub const MCP_REQUESTS_TOTAL: &str = "gateway_mcp_requests_total";
/// MCP call latency through the gateway (upstream included), by `server` and `method`.
pub const MCP_REQUEST_DURATION_SECONDS: &str = "gateway_mcp_request_duration_seconds";

/// MCP methods that get their own `method` label; anything else is `other`.
const KNOWN_METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/get",
    "prompts/list",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
];

/// Longest tool name used as a label value; longer names are `other`.
const MAX_TOOL_LABEL: usize = 64;

fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// The `tool` label: the name of a tool that was actually called successfully (a name a
/// client merely sent could be anything, so it never becomes a label), else `-`.
fn tool_label(ex: &Exchange<'_>) -> metrics::SharedString {
    match (ex.method, ex.name, ex.outcome) {
        ("tools/call", Some(name), Outcome::Ok) if name.len() <= MAX_TOOL_LABEL => name.to_owned().into(),
        ("tools/call", Some(_), Outcome::Ok) => metrics::SharedString::const_str("other"),
        _ => metrics::SharedString::const_str("-"),
    }
}

/// `legacy` for the session-based revisions, `modern` for 2026-07-28 and later.
fn era(version: Option<&str>) -> Option<String> {
    version.map(|v| {
        if v >= "2026-07-28" {
            "modern".to_owned()
        } else {
            "legacy".to_owned()
        }
    })
}

/// Everything an MCP session's records share, fixed when the session opens.
#[derive(Debug)]
pub(crate) struct McpLog {
    logger: Option<RequestLogger>,
    org_id: OrgId,
    namespace_id: Option<NamespaceId>,
    server_id: Option<ServerId>,
    /// The `server` metric label: the server's (or federation's) name.
    server_label: Arc<str>,
    principal_type: &'static str,
    principal_id: String,
    client_ip: Option<IpAddr>,
    /// Headers of the session-opening request, kept only when bodies are.
    headers: Option<Arc<Vec<(String, String)>>>,
    bodies: bool,
    /// Exports each exchange's span (OpenTelemetry), when tracing is on.
    traces: Option<crate::traces::SpanExporter>,
}

impl McpLog {
    /// The log of a session `principal` opens. `bodies`: keep full bodies for it.
    #[expect(clippy::too_many_arguments, reason = "the fixed facts of a session")]
    pub(crate) fn new(
        logger: Option<RequestLogger>,
        principal: &Principal,
        namespace_id: Option<NamespaceId>,
        server_id: Option<ServerId>,
        server_label: &str,
        client_ip: Option<IpAddr>,
        headers: Option<Vec<(String, String)>>,
        bodies: bool,
    ) -> Self {
        let (principal_type, principal_id) = principal.actor();
        let bodies = bodies && logger.as_ref().is_some_and(RequestLogger::keeps_bodies);
        Self {
            logger,
            org_id: principal.org_id,
            namespace_id,
            server_id,
            server_label: Arc::from(server_label),
            principal_type,
            principal_id,
            client_ip,
            headers: headers.filter(|_| bodies).map(Arc::new),
            bodies,
            traces: None,
        }
    }

    /// Exports each exchange's span through `traces`.
    pub(crate) fn with_traces(mut self, traces: Option<crate::traces::SpanExporter>) -> Self {
        self.traces = traces;
        self
    }

    /// The request id in scope where an exchange starts.
    pub(crate) fn request_tag() -> Option<Box<str>> {
        crate::request_id::current().map(|id| id.as_str().into())
    }

    /// Whether bodies are kept (the pipeline keeps request params only then).
    pub(crate) fn wants_bodies(&self) -> bool {
        self.bodies
    }

    /// Records one completed exchange: metrics, then the request-log record.
    pub(crate) fn completed(&self, ex: Exchange<'_>) {
        let method = method_label(ex.method);
        metrics::counter!(
            MCP_REQUESTS_TOTAL,
            "server" => Arc::clone(&self.server_label),
            "method" => method,
            "tool" => tool_label(&ex),
            "outcome" => ex.outcome.as_str(),
        )
        .increment(1);
        metrics::histogram!(
            MCP_REQUEST_DURATION_SECONDS,
            "server" => Arc::clone(&self.server_label),
            "method" => method,
        )
        .record(ex.latency.as_secs_f64());
        if let Some(traces) = &self.traces
            && traces.samples(&ex)
        {
            traces.export(crate::traces::SpanRecord::of_exchange(&ex, &self.server_label));
        }

        let Some(logger) = &self.logger else { return };
        let body = self.bodies.then(|| {
            let (result, error) = match ex.response {
                Some(Message::Response(r)) => (Some(r.result.clone()), None),
                Some(Message::Error(e)) => (None, serde_json::to_value(&e.error).ok()),
                _ => (None, None),
            };
            BodyParts {
                headers: self.headers.clone(),
                request: ex.params,
                result,
                error,
            }
        });
        let record = LogRecord {
            id: LogId::new(),
            org_id: self.org_id,
            namespace_id: self.namespace_id,
            server_id: self.server_id,
            principal_type: Some(self.principal_type.to_owned()),
            principal_id: Some(self.principal_id.clone()),
            transport: ex.transport.as_str().to_owned(),
            protocol_era: era(ex.protocol_version),
            method: ex.method.to_owned(),
            name: ex.name.map(str::to_owned),
            status: ex.outcome.as_str().to_owned(),
            http_status: None,
            error_code: ex.error_code.and_then(|c| i32::try_from(c).ok()),
            latency_ms: millis(ex.latency),
            request_bytes: i64::try_from(ex.request_bytes).unwrap_or(i64::MAX),
            response_bytes: i64::try_from(ex.response_bytes).unwrap_or(i64::MAX),
            client_ip: self.client_ip.map(|ip| ip.to_string()),
            request_id: ex.tag.map(str::to_owned),
            trace_id: Some(ex.trace_id.to_owned()),
            body_ref: None,
            created_at: Utc::now(),
        };
        logger.log(record, body);
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// What the edge middleware knows of a finished REST request.
#[derive(Debug)]
pub(crate) struct RestRequest<'a> {
    pub principal: &'a Principal,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub client_ip: Option<IpAddr>,
    pub request_id: &'a str,
    /// The trace id of the request's W3C `traceparent` header, when it sent a valid one.
    pub trace_id: Option<String>,
}

/// Records one REST request (index only; REST bodies are never kept).
pub(crate) fn log_rest(logger: &RequestLogger, r: &RestRequest<'_>) {
    let status = match r.status {
        s if s < 400 => "ok",
        401 | 403 => "denied",
        429 => "rate_limited",
        _ => "error",
    };
    let (principal_type, principal_id) = r.principal.actor();
    logger.log(
        LogRecord {
            id: LogId::new(),
            org_id: r.principal.org_id,
            namespace_id: r.principal.namespace,
            server_id: None,
            principal_type: Some(principal_type.to_owned()),
            principal_id: Some(principal_id),
            transport: "rest".to_owned(),
            protocol_era: None,
            method: format!("{} {}", r.method, r.route),
            name: None,
            status: status.to_owned(),
            http_status: Some(i32::from(r.status)),
            error_code: None,
            latency_ms: millis(r.latency),
            request_bytes: i64::try_from(r.request_bytes).unwrap_or(i64::MAX),
            response_bytes: i64::try_from(r.response_bytes).unwrap_or(i64::MAX),
            client_ip: r.client_ip.map(|ip| ip.to_string()),
            request_id: Some(r.request_id.to_owned()),
            trace_id: r.trace_id.clone(),
            body_ref: None,
            created_at: Utc::now(),
        },
        None,
    );
}

/// Describes the MCP metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        MCP_REQUESTS_TOTAL,
        "MCP requests answered, by server, method, tool (successful tools/call only) and outcome"
    );
    metrics::describe_histogram!(
        MCP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "MCP request latency through the gateway, upstream included, by server and method"
    );
    gateway_logging::request_log::describe_metrics();
    crate::traces::describe_metrics();
}
