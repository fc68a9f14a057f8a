//! Capability discovery and tool-definition pinning.
//!
//! [`discover`] connects to a server through the same connectors and [`UpstreamSession`] the
//! gateway proxies with, learns what it is and what it offers, and closes the connection (a
//! stdio server is started for it and stopped afterwards):
//!
//! 1. `server/discover` (2026-07-28) first, as the stdio transport's backward-compatibility
//!    probe prescribes: a `DiscoverResult` means a modern server (its version, capabilities,
//!    `serverInfo` from `_meta`, instructions); `UnsupportedProtocolVersionError` (`-32022`)
//!    means a modern server that wants another version (the probe is repeated once with the
//!    first it names); any other error or no answer within a few seconds means a legacy server.
//! 2. Legacy: the `initialize` handshake and `notifications/initialized`.
//! 3. `tools/list`, `resources/list`, `resources/templates/list` and `prompts/list` for each
//!    capability the server declares, following `nextCursor` (at most [`MAX_PAGES`] pages each).
//!
//! Failure texts are the gateway's own words ("cannot connect", "initialize answered error
//! -32603"); an upstream's error text is never kept.
//!
//! Pinning ([`apply_pins`], [`approve`], [`withheld`]): the first definition seen of each
//! tool (`description`, `inputSchema`, `outputSchema`, `annotations`; canonical JSON, sha256)
//! is pinned; a later, different definition is a pending [`ToolChange`] until approved.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gateway_transport::link::{Connector, UpstreamSpec};
use gateway_transport::upstream::{RestartPolicy, UpstreamSession};
use gateway_types::jsonrpc::{Message, Notification, Request, RequestId, Version};
use gateway_types::model::{PinningMode, ServerCatalog, ToolChange, ToolChangeStatus, ToolPin};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// The modern protocol revision the probe asks for.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The legacy revision offered in `initialize`.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// Pages read per list, at most (a server whose cursors never end is cut off).
pub const MAX_PAGES: usize = 100;
/// Approved changes kept in a catalog (pending ones are all kept).
pub const APPROVED_KEPT: usize = 50;
/// `UnsupportedProtocolVersionError`.
const UNSUPPORTED_VERSION: i64 = -32022;

/// What a server told the gateway about itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discovered {
    /// The protocol revision it speaks with the gateway.
    pub protocol_version: Option<String>,
    /// `serverInfo`.
    pub server_info: Option<Value>,
    /// Its capabilities.
    pub capabilities: Option<Value>,
    /// Its instructions.
    pub instructions: Option<String>,
    /// Every tool.
    pub tools: Vec<Value>,
    /// Every resource.
    pub resources: Vec<Value>,
    /// Every resource template.
    pub resource_templates: Vec<Value>,
    /// Every prompt.
    pub prompts: Vec<Value>,
}

/// Why a discovery failed, in the gateway's words (stored as `last_error`, shown to clients).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The connection failed or closed.
    #[error("cannot connect to the server")]
    Unreachable,
    /// The whole discovery took too long.
    #[error("no complete answer within {0} s")]
    Timeout(u64),
    /// A request was answered with an error.
    #[error("{method} answered error {code}")]
    Refused {
        /// The request.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
    },
    /// An answer was not what the protocol says.
    #[error("{0} answered with an invalid result")]
    Invalid(String),
}

/// One discovery connection: a private upstream session with one client attached.
struct Probe {
    session: UpstreamSession,
    tx: mpsc::Sender<Message>,
    rx: mpsc::Receiver<Message>,
    next: i64,
    call_timeout: Duration,
    modern: Option<String>,
}

const CLIENT: u64 = 1;

impl Probe {
    fn meta(&self) -> Option<Value> {
        self.modern.as_ref().map(|v| {
            json!({
                "io.modelcontextprotocol/protocolVersion": v,
                "io.modelcontextprotocol/clientInfo": client_info(),
                "io.modelcontextprotocol/clientCapabilities": {},
            })
        })
    }

    /// Sends a request and waits for its answer: `Ok(result)` or `Err((code, data))`.
    async fn call(&mut self, method: &str, params: Option<Value>, wait: Duration) -> Result<Value, Failure> {
        self.next += 1;
        let id = RequestId::Number(self.next);
        let mut params = params.unwrap_or_else(|| Value::Object(Map::new()));
        if let (Some(meta), Some(obj)) = (self.meta(), params.as_object_mut()) {
            obj.insert("_meta".into(), meta);
        }
        let request = Request {
            jsonrpc: Version,
            id: id.clone(),
            method: method.into(),
            params: Some(params),
            extra: Map::new(),
        };
        let session = self.session.clone();
        let tx = self.tx.clone();
        // `request` waits for the link (connecting, starting a process): bounded too.
        let sent = tokio::time::timeout(wait, session.request(CLIENT, request, tx, None, None)).await;
        if sent.is_err() {
            return Err(Failure::NoAnswer);
        }
        let answer = async {
            loop {
                match self.rx.recv().await {
                    None => return Err(Failure::Closed),
                    Some(Message::Response(r)) if r.id == id => return Ok(r.result),
                    Some(Message::Error(e)) if e.id.as_ref() == Some(&id) => {
                        return Err(Failure::Error {
                            code: e.error.code,
                            data: e.error.data.clone(),
                        });
                    }
                    Some(_) => {}
                }
            }
        };
        tokio::time::timeout(wait, answer)
            .await
            .unwrap_or(Err(Failure::NoAnswer))
    }

    /// Every page of a list.
    async fn list(&mut self, method: &str, field: &str) -> Result<Vec<Value>, DiscoveryError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let result = self
                .call(method, params, self.call_timeout)
                .await
                .map_err(|f| f.into_error(method))?;
            let page = result
                .get(field)
                .and_then(Value::as_array)
                .ok_or_else(|| DiscoveryError::Invalid(method.into()))?;
            items.extend(page.iter().cloned());
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(items)
    }
}

/// How one request failed.
#[derive(Debug)]
enum Failure {
    Error { code: i64, data: Option<Value> },
    Closed,
    NoAnswer,
}

impl Failure {
    fn into_error(self, method: &str) -> DiscoveryError {
        match self {
            Self::Error { code, .. } if code == gateway_transport::error::codes::UPSTREAM_UNAVAILABLE => {
                DiscoveryError::Unreachable
            }
            Self::Error { code, .. } => DiscoveryError::Refused {
                method: method.into(),
                code,
            },
            Self::Closed => DiscoveryError::Unreachable,
            Self::NoAnswer => DiscoveryError::Refused {
                method: method.into(),
                code: gateway_transport::error::codes::UPSTREAM_TIMEOUT,
            },
        }
    }
}

fn client_info() -> Value {
    json!({"name": "mcp-gateway-discovery", "version": env!("CARGO_PKG_VERSION")})
}

/// Discovers a server (see the module docs); fails after `timeout`.
///
/// # Errors
/// The server cannot be reached, answers with errors, or not within `timeout`.
pub async fn discover(
    spec: UpstreamSpec,
    connector: Arc<dyn Connector>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
) -> Result<Discovered, DiscoveryError> {
    let restart = RestartPolicy {
        max_failures: 2,
        window: timeout,
        ..RestartPolicy::default()
    };
    let legacy_only = spec.legacy_only;
    let session = UpstreamSession::new(spec, connector, restart, runtime);
    let (tx, rx) = mpsc::channel(64);
    session.attach(CLIENT, tx.clone());
    let mut probe = Probe {
        session: session.clone(),
        tx,
        rx,
        next: 0,
        call_timeout: timeout,
        modern: None,
    };
    let result = tokio::time::timeout(timeout, run(&mut probe, timeout, legacy_only)).await;
    session.close();
    result.unwrap_or(Err(DiscoveryError::Timeout(timeout.as_secs())))
}

/// `legacy_only`: the server is spoken to in the session-based revisions only (server
/// metadata `protocol_era: legacy`): no `server/discover`.
async fn run(probe: &mut Probe, timeout: Duration, legacy_only: bool) -> Result<Discovered, DiscoveryError> {
    let probe_wait = (timeout / 3).clamp(Duration::from_millis(500), Duration::from_secs(5));
    let mut found = Discovered::default();
    let mut version = MODERN_VERSION.to_owned();
    let mut modern = None;
    let attempts = if legacy_only { 0 } else { 2 };
    for _ in 0..attempts {
        probe.modern = Some(version.clone());
        match probe.call("server/discover", None, probe_wait).await {
            Ok(result) if result.get("supportedVersions").is_some() => {
                modern = Some(result);
                break;
            }
            Err(Failure::Error {
                code: UNSUPPORTED_VERSION,
                data,
            }) => {
                let other = data
                    .as_ref()
                    .and_then(|d| d.get("supported"))
                    .and_then(Value::as_array)
                    .and_then(|v| v.first())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                match other {
                    Some(v) if v != version => version = v,
                    _ => {
                        return Err(DiscoveryError::Refused {
                            method: "server/discover".into(),
                            code: UNSUPPORTED_VERSION,
                        });
                    }
                }
            }
            // Anything else: a legacy server.
            _ => break,
        }
    }
    if let Some(result) = modern {
        let supported: Vec<&str> = result
            .get("supportedVersions")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let chosen = if supported.contains(&version.as_str()) {
            version
        } else {
            supported.first().map_or(version, |v| (*v).to_owned())
        };
        probe.modern = Some(chosen.clone());
        found.protocol_version = Some(chosen);
        found.capabilities = result.get("capabilities").cloned();
        found.server_info = result
            .get("_meta")
            .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
            .or_else(|| result.get("serverInfo"))
            .cloned();
        found.instructions = result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
    } else {
        probe.modern = None;
        let params = json!({
            "protocolVersion": LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": client_info(),
        });
        let result = probe
            .call("initialize", Some(params), probe.call_timeout)
            .await
            .map_err(|f| f.into_error("initialize"))?;
        found.protocol_version = Some(
            result
                .get("protocolVersion")
                .and_then(Value::as_str)
                .ok_or_else(|| DiscoveryError::Invalid("initialize".into()))?
                .to_owned(),
        );
        found.capabilities = result.get("capabilities").cloned();
        found.server_info = result.get("serverInfo").cloned();
        found.instructions = result
            .get("instructions")
            .and_then(Value::as_str)
            .map(str::to_owned);
        probe
            .session
            .notify(
                CLIENT,
                Notification {
                    jsonrpc: Version,
                    method: "notifications/initialized".into(),
                    params: None,
                    extra: Map::new(),
                },
            )
            .await;
    }
    let has = |cap: &str| found.capabilities.as_ref().and_then(|c| c.get(cap)).is_some();
    let (tools, resources, prompts) = (has("tools"), has("resources"), has("prompts"));
    if tools {
        found.tools = probe.list("tools/list", "tools").await?;
    }
    if resources {
        found.resources = probe.list("resources/list", "resources").await?;
        // Templates are optional even for servers with resources.
        found.resource_templates = probe
            .list("resources/templates/list", "resourceTemplates")
            .await
            .unwrap_or_default();
    }
    if prompts {
        found.prompts = probe.list("prompts/list", "prompts").await?;
    }
    Ok(found)
}

/// Compact JSON with every object's keys sorted: the same value always gives the same text.
#[must_use]
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// sha256 (hex) of a value's canonical JSON.
#[must_use]
pub fn fingerprint(value: &Value) -> String {
    let digest = Sha256::digest(canonical_json(value).as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// What is pinned of a tool: `description`, `inputSchema`, `outputSchema`, `annotations`
/// (the ones it has).
#[must_use]
pub fn tool_definition(tool: &Value) -> Value {
    let mut def = Map::new();
    for key in ["description", "inputSchema", "outputSchema", "annotations"] {
        if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
            def.insert(key.into(), v.clone());
        }
    }
    Value::Object(def)
}

/// A tool's name.
#[must_use]
pub fn tool_name(tool: &Value) -> Option<&str> {
    tool.get("name").and_then(Value::as_str)
}

/// The fingerprint of the whole discovered catalog.
#[must_use]
pub fn catalog_fingerprint(d: &Discovered) -> String {
    fingerprint(&json!({
        "protocol_version": d.protocol_version,
        "server_info": d.server_info,
        "capabilities": d.capabilities,
        "instructions": d.instructions,
        "tools": d.tools,
        "resources": d.resources,
        "resource_templates": d.resource_templates,
        "prompts": d.prompts,
    }))
}

/// Checks `tools` (as a server lists them now) against the catalog's pins: a tool seen for
/// the first time is pinned; one whose definition differs from its pin gets a pending change
/// (one per tool: a newer definition replaces an older pending one); one back at its pinned
/// definition loses its pending change. Returns the changes detected now. `off` pins nothing.
pub fn apply_pins(
    catalog: &mut ServerCatalog,
    tools: &[Value],
    mode: PinningMode,
    now: DateTime<Utc>,
) -> Vec<ToolChange> {
    let mut detected = Vec::new();
    if mode == PinningMode::Off {
        return detected;
    }
    for tool in tools {
        let Some(name) = tool_name(tool) else { continue };
        let definition = tool_definition(tool);
        let fp = fingerprint(&definition);
        let pending_of = |c: &ToolChange| c.tool == name && c.status == ToolChangeStatus::Pending;
        match catalog.pins.get(name) {
            None => {
                catalog.pins.insert(
                    name.to_owned(),
                    ToolPin {
                        fingerprint: fp,
                        definition,
                        pinned_at: now,
                    },
                );
            }
            Some(pin) if pin.fingerprint == fp => {
                catalog.changes.retain(|c| !pending_of(c));
            }
            Some(pin) => {
                if catalog
                    .changes
                    .iter()
                    .any(|c| pending_of(c) && c.new_fingerprint == fp)
                {
                    continue;
                }
                let change = ToolChange {
                    tool: name.to_owned(),
                    old_fingerprint: pin.fingerprint.clone(),
                    new_fingerprint: fp,
                    old_definition: pin.definition.clone(),
                    new_definition: definition,
                    detected_at: now,
                    status: ToolChangeStatus::Pending,
                    approved_at: None,
                    approved_by: None,
                };
                catalog.changes.retain(|c| !pending_of(c));
                catalog.changes.push(change.clone());
                detected.push(change);
            }
        }
    }
    detected
}

/// Approves the pending changes of the tools named (`None`: all): their new definitions are
/// pinned. Returns the approved changes.
pub fn approve(
    catalog: &mut ServerCatalog,
    tools: Option<&[String]>,
    by: &str,
    now: DateTime<Utc>,
) -> Vec<ToolChange> {
    let mut approved = Vec::new();
    for change in &mut catalog.changes {
        if change.status != ToolChangeStatus::Pending || tools.is_some_and(|t| !t.contains(&change.tool)) {
            continue;
        }
        change.status = ToolChangeStatus::Approved;
        change.approved_at = Some(now);
        change.approved_by = Some(by.to_owned());
        catalog.pins.insert(
            change.tool.clone(),
            ToolPin {
                fingerprint: change.new_fingerprint.clone(),
                definition: change.new_definition.clone(),
                pinned_at: now,
            },
        );
        approved.push(change.clone());
    }
    let approved_count = catalog
        .changes
        .iter()
        .filter(|c| c.status == ToolChangeStatus::Approved)
        .count();
    let mut excess = approved_count.saturating_sub(APPROVED_KEPT);
    catalog.changes.retain(|c| {
        if excess > 0 && c.status == ToolChangeStatus::Approved {
            excess -= 1;
            false
        } else {
            true
        }
    });
    approved
}

/// The tools withheld from clients: those with a pending change, under `enforce`.
#[must_use]
pub fn withheld(catalog: &ServerCatalog, mode: PinningMode) -> BTreeSet<String> {
    if mode != PinningMode::Enforce {
        return BTreeSet::new();
    }
    catalog
        .changes
        .iter()
        .filter(|c| c.status == ToolChangeStatus::Pending)
        .map(|c| c.tool.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use gateway_types::ids::{OrgId, ServerId};

    use super::*;

    fn tool(name: &str, description: &str) -> Value {
        json!({"name": name, "description": description, "inputSchema": {"type": "object", "properties": {"a": {"type": "string"}}}})
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"d": [1, {"y": 2, "x": 1}], "c": "é"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"é","d":[1,{"x":1,"y":2}]},"b":1}"#
        );
        let b: Value =
            serde_json::from_str(r#"{"a":{"d":[1,{"x":1,"y":2}],"c":"é"},"b":1}"#).unwrap_or_default();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a).len(), 64);
    }

    #[test]
    fn the_name_and_other_fields_are_not_part_of_the_definition() {
        let mut t = tool("x", "d");
        t["title"] = json!("ignored");
        t["outputSchema"] = Value::Null;
        assert_eq!(
            tool_definition(&t),
            json!({"description": "d", "inputSchema": t["inputSchema"].clone()})
        );
    }

    #[test]
    fn first_sight_pins_a_change_is_pending_until_approved() {
        let now = Utc::now();
        let mut c = ServerCatalog::empty(OrgId::new(), ServerId::new(), now);
        assert!(
            apply_pins(
                &mut c,
                &[tool("a", "one"), tool("b", "x")],
                PinningMode::Enforce,
                now
            )
            .is_empty()
        );
        assert_eq!(c.pins.len(), 2);
        let found = apply_pins(
            &mut c,
            &[tool("a", "two"), tool("b", "x")],
            PinningMode::Enforce,
            now,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].tool, "a");
        assert_eq!(
            withheld(&c, PinningMode::Enforce),
            BTreeSet::from(["a".to_owned()])
        );
        assert!(withheld(&c, PinningMode::Warn).is_empty());
        // Seen again: not detected twice.
        assert!(apply_pins(&mut c, &[tool("a", "two")], PinningMode::Enforce, now).is_empty());
        assert_eq!(c.changes.len(), 1);
        let approved = approve(&mut c, None, "user:1", now);
        assert_eq!(approved.len(), 1);
        assert!(withheld(&c, PinningMode::Enforce).is_empty());
        assert!(apply_pins(&mut c, &[tool("a", "two")], PinningMode::Enforce, now).is_empty());
        assert_eq!(
            c.pins["a"].fingerprint,
            fingerprint(&tool_definition(&tool("a", "two")))
        );
    }

    #[test]
    fn a_tool_back_at_its_pin_loses_its_pending_change_and_off_pins_nothing() {
        let now = Utc::now();
        let mut c = ServerCatalog::empty(OrgId::new(), ServerId::new(), now);
        apply_pins(&mut c, &[tool("a", "one")], PinningMode::Warn, now);
        apply_pins(&mut c, &[tool("a", "two")], PinningMode::Warn, now);
        assert_eq!(c.changes.len(), 1);
        apply_pins(&mut c, &[tool("a", "one")], PinningMode::Warn, now);
        assert!(c.changes.is_empty());
        let mut off = ServerCatalog::empty(OrgId::new(), ServerId::new(), now);
        apply_pins(&mut off, &[tool("a", "one")], PinningMode::Off, now);
        assert!(off.pins.is_empty());
    }

    #[test]
    fn approving_named_tools_leaves_the_others_pending() {
        let now = Utc::now();
        let mut c = ServerCatalog::empty(OrgId::new(), ServerId::new(), now);
        apply_pins(
            &mut c,
            &[tool("a", "1"), tool("b", "1")],
            PinningMode::Enforce,
            now,
        );
        apply_pins(
            &mut c,
            &[tool("a", "2"), tool("b", "2")],
            PinningMode::Enforce,
            now,
        );
        let approved = approve(&mut c, Some(&["b".to_owned()]), "user:1", now);
        assert_eq!(approved.len(), 1);
        assert_eq!(
            withheld(&c, PinningMode::Enforce),
            BTreeSet::from(["a".to_owned()])
        );
    }
}
