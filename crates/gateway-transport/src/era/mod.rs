//! Protocol eras and the bridging between them (see `README.md` beside this file).
//!
//! MCP has two live eras: the session-based **legacy** revisions (2024-11-05 … 2025-11-25:
//! `initialize` handshake, `Mcp-Session-Id`, server-to-client requests) and the stateless
//! **modern** revision 2026-07-28 (per-request `_meta`, `server/discover`, mirrored request
//! headers, Multi Round-Trip Requests). This module holds what is era-specific and
//! framework-free:
//!
//! - classifying a request's era and validating the modern request headers ([`classify`],
//!   [`validate_headers`], the Base64 sentinel of [`decode_header_value`]);
//! - the modern errors ([`header_mismatch`], [`unsupported_version`]);
//! - the translations of a modern client's request for a legacy upstream
//!   ([`legacy_initialize_params`], [`strip_modern_meta`]) and of a legacy upstream's answers
//!   for a modern client ([`discover_result`], [`to_modern_result`], [`input_required`]);
//! - [`carrier`]: the pooled, initialized legacy upstream session modern requests ride on, and
//!   one modern call over it;
//! - [`mrtr`]: the pending input requests behind gateway-minted `requestState` tokens.

pub mod carrier;
pub mod mrtr;
pub mod upstream;

use base64::Engine as _;
use gateway_types::jsonrpc::{ErrorObject, Request};
use serde_json::{Map, Value, json};

/// The modern revision the gateway speaks.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Every modern revision the gateway speaks.
pub const MODERN_VERSIONS: [&str; 1] = [MODERN_VERSION];

/// The legacy revision the gateway negotiates with a legacy upstream on a modern client's behalf.
pub const LEGACY_BRIDGE_VERSION: &str = "2025-11-25";

/// `_meta` keys of the modern revision.
pub mod meta {
    /// The request's protocol version.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities for this request.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The client's identity.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The log level the client opts in to for this request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// The server's identity, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The prefix of the keys the protocol reserves.
    pub const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";
}

/// Error codes of the modern revision (the range the specification reserves).
pub mod codes {
    /// The mirrored headers do not match the body, or are missing or malformed.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The request needs a client capability the client did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
    /// The requested protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// Methods whose result is a `CacheableResult` (`ttlMs` and `cacheScope` are required).
pub const CACHEABLE_METHODS: [&str; 5] = [
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Methods on which a server may answer `InputRequiredResult`.
pub const INPUT_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

/// Freshness the gateway advertises on the cacheable results it produces: short, because a
/// modern client learns of list changes only by re-fetching.
pub const DEFAULT_TTL_MS: u64 = 30_000;

/// The era of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Session-based (handshake) revisions.
    Legacy,
    /// Stateless revisions (2026-07-28 and later).
    Modern,
}

/// The `_meta` of a modern request, as far as the gateway reads it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub protocol_version: Option<String>,
    /// `io.modelcontextprotocol/clientCapabilities` (an empty object when absent).
    pub client_capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`.
    pub client_info: Option<Value>,
    /// `io.modelcontextprotocol/logLevel`.
    pub log_level: Option<String>,
}

impl RequestMeta {
    /// Reads the `_meta` of a request's params.
    #[must_use]
    pub fn of(req: &Request) -> Self {
        let meta = req
            .params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(Value::as_object);
        let Some(meta) = meta else {
            return Self {
                client_capabilities: Value::Object(Map::new()),
                ..Self::default()
            };
        };
        Self {
            protocol_version: meta
                .get(meta::PROTOCOL_VERSION)
                .and_then(Value::as_str)
                .map(str::to_owned),
            client_capabilities: meta
                .get(meta::CLIENT_CAPABILITIES)
                .filter(|v| v.is_object())
                .cloned()
                .unwrap_or_else(|| Value::Object(Map::new())),
            client_info: meta.get(meta::CLIENT_INFO).filter(|v| v.is_object()).cloned(),
            log_level: meta
                .get(meta::LOG_LEVEL)
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// Whether the client declared the capability an input request of `method` needs.
    #[must_use]
    pub fn supports_input(&self, method: &str) -> bool {
        let capability = match method {
            "sampling/createMessage" => "sampling",
            "elicitation/create" => "elicitation",
            "roots/list" => "roots",
            _ => return false,
        };
        self.client_capabilities.get(capability).is_some()
    }
}

/// Decides a POST's era, as the specification's backward-compatibility section describes: a
/// request that is not `initialize` and carries a protocol version in `_meta`, or an
/// `MCP-Protocol-Version` header naming no legacy revision, is modern; everything else is
/// legacy (its `Mcp-Session-Id`, if any, decides the rest).
#[must_use]
pub fn classify(req: Option<&Request>, header_version: Option<&str>, legacy_versions: &[&str]) -> Era {
    let Some(req) = req else {
        return Era::Legacy;
    };
    if req.method == "initialize" {
        return Era::Legacy;
    }
    let meta_version = req
        .params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(meta::PROTOCOL_VERSION))
        .is_some();
    let header_modern = header_version.is_some_and(|v| !legacy_versions.contains(&v.trim()));
    if meta_version || header_modern {
        Era::Modern
    } else {
        Era::Legacy
    }
}

/// The request headers the modern transport mirrors from the body (values as received).
#[derive(Clone, Copy, Debug, Default)]
pub struct MirroredHeaders<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Method`.
    pub method: Option<&'a str>,
    /// `Mcp-Name`.
    pub name: Option<&'a str>,
}

/// The body value `Mcp-Name` mirrors, for the methods that require it.
#[must_use]
pub fn mirrored_name(req: &Request) -> Option<&str> {
    let key = match req.method.as_str() {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    req.params.as_ref()?.get(key)?.as_str()
}

/// Decodes a mirrored header value: the Base64 sentinel form `=?base64?…?=` is decoded (UTF-8),
/// anything else is taken as is. `None` when the value is not a valid header value or a
/// malformed sentinel.
#[must_use]
pub fn decode_header_value(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(inner).ok()?;
        return String::from_utf8(bytes).ok();
    }
    let valid = raw.bytes().all(|b| b == b'\t' || (0x20..=0x7e).contains(&b));
    valid.then(|| raw.to_owned())
}

/// Encodes a value for a mirrored header: as is when it is plain visible ASCII (spaces inside
/// allowed), else (non-ASCII, control characters, leading or trailing whitespace, or a value that
/// looks like the sentinel) in the Base64 sentinel form.
#[must_use]
pub fn encode_header_value(value: &str) -> String {
    let visible = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let padded = value.starts_with(' ') || value.ends_with(' ');
    let sentinel = value.starts_with("=?base64?") && value.ends_with("?=");
    let plain = visible && !padded && !sentinel;
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// The headers a modern request must carry on Streamable HTTP (`MCP-Protocol-Version`,
/// `Mcp-Method`, and `Mcp-Name` where required), or nothing for a request without a modern
/// `_meta` protocol version.
#[must_use]
pub fn request_headers(req: &Request) -> Vec<(&'static str, String)> {
    let Some(version) = RequestMeta::of(req).protocol_version else {
        return Vec::new();
    };
    let mut h = vec![
        ("mcp-protocol-version", version),
        ("mcp-method", req.method.clone()),
    ];
    if let Some(name) = mirrored_name(req) {
        h.push(("mcp-name", encode_header_value(name)));
    }
    h
}

/// Validates a modern request's mirrored headers against its body: `MCP-Protocol-Version`
/// equals the `_meta` protocol version, `Mcp-Method` equals `method`, and `Mcp-Name` (for
/// `tools/call`, `prompts/get`, `resources/read`) equals `params.name` / `params.uri` after
/// decoding. Any missing, malformed or different value is a `HeaderMismatch`.
///
/// # Errors
/// The `HeaderMismatch` error to answer with (HTTP 400).
pub fn validate_headers(headers: &MirroredHeaders<'_>, req: &Request) -> Result<(), ErrorObject> {
    let meta = RequestMeta::of(req);
    let Some(header_version) = headers.protocol_version.map(str::trim) else {
        return Err(header_mismatch("the MCP-Protocol-Version header is required"));
    };
    match meta.protocol_version.as_deref() {
        None => {
            return Err(header_mismatch(format!(
                "the request's _meta carries no {} (the header says '{header_version}')",
                meta::PROTOCOL_VERSION
            )));
        }
        Some(body) if body != header_version => {
            return Err(header_mismatch(format!(
                "MCP-Protocol-Version header value '{header_version}' does not match body value '{body}'"
            )));
        }
        Some(_) => {}
    }
    match headers.method {
        None => return Err(header_mismatch("the Mcp-Method header is required")),
        Some(m) if m != req.method => {
            return Err(header_mismatch(format!(
                "Mcp-Method header value '{m}' does not match body value '{}'",
                req.method
            )));
        }
        Some(_) => {}
    }
    let required = matches!(
        req.method.as_str(),
        "tools/call" | "prompts/get" | "resources/read"
    );
    if required {
        let Some(raw) = headers.name else {
            return Err(header_mismatch("the Mcp-Name header is required for this method"));
        };
        let Some(decoded) = decode_header_value(raw) else {
            return Err(header_mismatch("the Mcp-Name header value is malformed"));
        };
        let body = mirrored_name(req).unwrap_or_default();
        if decoded != body {
            return Err(header_mismatch(format!(
                "Mcp-Name header value '{}' does not match body value '{}'",
                printable(&decoded),
                printable(body)
            )));
        }
    }
    Ok(())
}

/// A value shown in an error message: at most 100 characters, control characters escaped.
fn printable(text: &str) -> String {
    text.chars().take(100).flat_map(char::escape_default).collect()
}

/// A `HeaderMismatch` error (HTTP 400).
#[must_use]
pub fn header_mismatch(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(codes::HEADER_MISMATCH, message)
}

/// An `UnsupportedProtocolVersion` error listing what is supported (HTTP 400).
#[must_use]
pub fn unsupported_version(requested: &str, supported: &[&str]) -> ErrorObject {
    let mut e = ErrorObject::new(
        codes::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
    );
    e.data = Some(json!({ "supported": supported, "requested": requested }));
    e
}

/// The `initialize` params the gateway sends a legacy upstream on a modern client's behalf:
/// the client's declared capabilities and identity, at [`LEGACY_BRIDGE_VERSION`].
#[must_use]
pub fn legacy_initialize_params(meta: &RequestMeta) -> Value {
    let mut capabilities = meta.client_capabilities.clone();
    if let Some(caps) = capabilities.as_object_mut() {
        // Modern-only capability fields mean nothing to a legacy server.
        caps.remove("extensions");
    }
    json!({
        "protocolVersion": LEGACY_BRIDGE_VERSION,
        "capabilities": capabilities,
        "clientInfo": meta.client_info.clone().unwrap_or_else(|| json!({"name": "mcp-gateway-modern-bridge", "version": env!("CARGO_PKG_VERSION")})),
    })
}

/// Removes the modern-only parts of a request before it goes to a legacy upstream: the
/// reserved `_meta` keys (an empty `_meta` is dropped) and MRTR's `inputResponses` and
/// `requestState`. Other `_meta` keys (`progressToken`, trace context) pass through.
pub fn strip_modern_meta(req: &mut Request) {
    let Some(params) = req.params.as_mut().and_then(Value::as_object_mut) else {
        return;
    };
    params.remove("inputResponses");
    params.remove("requestState");
    let empty = match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(m) => {
            m.retain(|k, _| !k.starts_with(meta::RESERVED_PREFIX));
            m.is_empty()
        }
        None => false,
    };
    if empty {
        params.remove("_meta");
    }
}

/// Capability fields of the modern `ServerCapabilities`; a legacy server's others (say
/// `tasks`) are not advertised to a modern client.
const MODERN_SERVER_CAPABILITIES: [&str; 7] = [
    "completions",
    "experimental",
    "extensions",
    "logging",
    "prompts",
    "resources",
    "tools",
];

/// The `DiscoverResult` the gateway answers for a legacy upstream, from its `initialize`
/// result: capabilities (modern fields only), instructions, the server's identity in `_meta`,
/// the versions the gateway's endpoint speaks, and cache hints.
#[must_use]
pub fn discover_result(initialize: &Value, supported: &[&str]) -> Value {
    let mut capabilities = Map::new();
    if let Some(caps) = initialize.get("capabilities").and_then(Value::as_object) {
        for (k, v) in caps {
            if MODERN_SERVER_CAPABILITIES.contains(&k.as_str()) {
                capabilities.insert(k.clone(), v.clone());
            }
        }
    }
    let mut result = json!({
        "resultType": "complete",
        "supportedVersions": supported,
        "capabilities": capabilities,
        "ttlMs": DEFAULT_TTL_MS,
        "cacheScope": "private",
    });
    if let Some(obj) = result.as_object_mut() {
        if let Some(instructions) = initialize.get("instructions").and_then(Value::as_str) {
            obj.insert("instructions".into(), Value::from(instructions));
        }
        if let Some(info) = initialize.get("serverInfo").filter(|v| v.is_object()) {
            obj.insert("_meta".into(), json!({ meta::SERVER_INFO: info }));
        }
    }
    result
}

/// Turns a legacy upstream's result into a modern one: `resultType: "complete"`, and on
/// cacheable results `ttlMs` / `cacheScope` (`private`: the gateway filters lists per
/// principal) unless the upstream set them.
pub fn to_modern_result(method: &str, result: &mut Value) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    obj.entry("resultType").or_insert_with(|| Value::from("complete"));
    if CACHEABLE_METHODS.contains(&method) {
        obj.entry("ttlMs").or_insert_with(|| Value::from(DEFAULT_TTL_MS));
        obj.entry("cacheScope").or_insert_with(|| Value::from("private"));
    }
}

/// Maps a legacy upstream's error code to the modern one where they differ (resource not
/// found: -32002 → -32602).
pub fn to_modern_error(method: &str, error: &mut ErrorObject) {
    if method == "resources/read" && error.code == -32002 {
        error.code = gateway_types::jsonrpc::codes::INVALID_PARAMS;
    }
}

/// An `InputRequiredResult` carrying `input_requests` and `request_state`.
#[must_use]
pub fn input_required(input_requests: Map<String, Value>, request_state: &str) -> Value {
    json!({
        "resultType": "input_required",
        "inputRequests": input_requests,
        "requestState": request_state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> Request {
        serde_json::from_value(v).unwrap()
    }

    const LEGACY: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

    fn call(name: &str) -> Request {
        request(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
            "name": name, "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}}}))
    }

    #[test]
    fn classify_follows_meta_and_header() {
        let modern = call("echo");
        assert_eq!(classify(Some(&modern), None, &LEGACY), Era::Modern);
        let legacy = request(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
        assert_eq!(classify(Some(&legacy), Some("2025-11-25"), &LEGACY), Era::Legacy);
        assert_eq!(classify(Some(&legacy), None, &LEGACY), Era::Legacy);
        assert_eq!(classify(Some(&legacy), Some("2026-07-28"), &LEGACY), Era::Modern);
        let init = request(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}));
        assert_eq!(classify(Some(&init), Some("2026-07-28"), &LEGACY), Era::Legacy);
        assert_eq!(classify(None, Some("2026-07-28"), &LEGACY), Era::Legacy);
    }

    #[test]
    fn headers_must_mirror_the_body() {
        let req = call("echo");
        let ok = MirroredHeaders {
            protocol_version: Some("2026-07-28"),
            method: Some("tools/call"),
            name: Some("echo"),
        };
        assert!(validate_headers(&ok, &req).is_ok());
        let cases = [
            MirroredHeaders {
                protocol_version: None,
                ..ok
            },
            MirroredHeaders {
                protocol_version: Some("2025-11-25"),
                ..ok
            },
            MirroredHeaders { method: None, ..ok },
            MirroredHeaders {
                method: Some("tools/list"),
                ..ok
            },
            MirroredHeaders { name: None, ..ok },
            MirroredHeaders {
                name: Some("other"),
                ..ok
            },
            MirroredHeaders {
                name: Some("=?base64?not base64?="),
                ..ok
            },
        ];
        for h in cases {
            assert_eq!(
                validate_headers(&h, &req).unwrap_err().code,
                codes::HEADER_MISMATCH,
                "{h:?}"
            );
        }
    }

    #[test]
    fn base64_sentinel_names_are_decoded() {
        let req = call("Hello, 世界");
        let h = MirroredHeaders {
            protocol_version: Some("2026-07-28"),
            method: Some("tools/call"),
            name: Some("=?base64?SGVsbG8sIOS4lueVjA==?="),
        };
        assert!(validate_headers(&h, &req).is_ok());
        assert_eq!(
            decode_header_value("=?base64?IHBhZGRlZCA=?=").unwrap(),
            " padded "
        );
        assert_eq!(decode_header_value("us-west1").unwrap(), "us-west1");
        assert!(decode_header_value("bad\u{1}value").is_none());
        // A literal that looks like the sentinel arrives encoded.
        assert_eq!(
            decode_header_value("=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=").unwrap(),
            "=?base64?literal?="
        );
    }

    #[test]
    fn header_values_round_trip() {
        for v in [
            "echo",
            "Hello, 世界",
            " padded ",
            "line1\nline2",
            "=?base64?literal?=",
        ] {
            assert_eq!(decode_header_value(&encode_header_value(v)).unwrap(), v);
        }
        assert_eq!(encode_header_value("us-west1"), "us-west1");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        let h = request_headers(&call("echo"));
        assert_eq!(h.len(), 3);
        assert!(request_headers(&request(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))).is_empty());
    }

    #[test]
    fn meta_is_stripped_for_legacy_upstreams() {
        let mut req = request(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
            "name": "echo", "inputResponses": {}, "requestState": "x",
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 5}}}));
        strip_modern_meta(&mut req);
        assert_eq!(
            req.params.unwrap(),
            json!({"name": "echo", "_meta": {"progressToken": 5}})
        );
        let mut req = call("echo");
        strip_modern_meta(&mut req);
        assert_eq!(req.params.unwrap(), json!({"name": "echo", "arguments": {}}));
    }

    #[test]
    fn results_become_modern() {
        let mut r = json!({"tools": []});
        to_modern_result("tools/list", &mut r);
        assert_eq!(
            r,
            json!({"tools": [], "resultType": "complete", "ttlMs": DEFAULT_TTL_MS, "cacheScope": "private"})
        );
        let mut r = json!({"content": []});
        to_modern_result("tools/call", &mut r);
        assert_eq!(r, json!({"content": [], "resultType": "complete"}));
        let d = discover_result(
            &json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "tasks": {}},
                    "serverInfo": {"name": "s", "version": "1"}, "instructions": "hi"}),
            &["2026-07-28"],
        );
        assert_eq!(d["capabilities"], json!({"tools": {}}));
        assert_eq!(d["_meta"][meta::SERVER_INFO]["name"], "s");
        assert_eq!(d["instructions"], "hi");
        assert_eq!(d["resultType"], "complete");
    }
}
