//! JSON-RPC message handling shared by the HTTP and stdio front ends: parse one message, answer it.
//!
//! Answers are written by hand as bytes (the request id, the echoed text and the progress token are
//! copied verbatim from the request as raw JSON), so a call costs one borrowed parse and a few
//! `memcpy`s.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The legacy (session-based) revisions this server negotiates in `initialize`, newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26"];
/// The modern (stateless) revision served with `--stateless`.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The one tool.
pub const TOOL_NAME: &str = "echo";

const SERVER_NAME: &str = "mcp-echo";
const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// JSON-RPC and MCP error codes used here.
pub mod code {
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    /// Streamable HTTP (legacy): the session is unknown or ended.
    pub const SESSION_NOT_FOUND: i32 = -32001;
    /// 2026-07-28: HTTP headers disagree with the body, or a required one is missing.
    pub const HEADER_MISMATCH: i32 = -32020;
    /// 2026-07-28: the requested protocol version is not served.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
}

/// Which protocol era a message is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 and earlier: inside an `initialize`d session.
    Legacy,
    /// 2026-07-28: per-request `_meta`, results carry `resultType`.
    Modern,
}

/// One incoming JSON-RPC message (request, notification or response), borrowed from the input.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(default, borrow)]
    pub jsonrpc: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub params: Option<Params<'a>>,
}

/// The union of the `params` fields of every method served here.
#[derive(Debug, Default, Deserialize)]
pub struct Params<'a> {
    /// `tools/call`: the tool.
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    /// `tools/call`: its arguments.
    #[serde(default, borrow)]
    pub arguments: Option<Arguments<'a>>,
    #[serde(default, borrow, rename = "_meta")]
    pub meta: Option<Meta<'a>>,
    /// `initialize`: the client's preferred revision.
    #[serde(default, borrow, rename = "protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
}

/// Arguments of `echo`.
#[derive(Debug, Deserialize)]
pub struct Arguments<'a> {
    /// Kept raw: it is copied into the answer as it came.
    #[serde(default, borrow)]
    pub text: Option<&'a RawValue>,
}

/// The request `_meta` fields used here.
#[derive(Debug, Deserialize)]
pub struct Meta<'a> {
    #[serde(default, borrow, rename = "progressToken")]
    pub progress_token: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// Parses one message; the error is the JSON-RPC parse-error answer.
    pub fn parse(input: &'a [u8]) -> Result<Self, Vec<u8>> {
        serde_json::from_slice(input).map_err(|_| error(None, code::PARSE_ERROR, "parse error", None))
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    /// A request has both a method and an id; a notification only a method; a response neither.
    pub fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
    }

    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`.
    pub fn meta_protocol_version(&self) -> Option<&str> {
        self.params
            .as_ref()
            .and_then(|p| p.meta.as_ref())
            .and_then(|m| m.protocol_version.as_deref())
    }

    /// `params.name`.
    pub fn name(&self) -> Option<&str> {
        self.params.as_ref().and_then(|p| p.name.as_deref())
    }

    fn progress_token(&self) -> Option<&'a RawValue> {
        self.params
            .as_ref()
            .and_then(|p| p.meta.as_ref())
            .and_then(|m| m.progress_token)
    }
}

/// How one message is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A notification or a response: nothing to answer (HTTP 202).
    Accepted,
    /// One JSON-RPC response, with the HTTP status that goes with it.
    Single { status: u16, body: Vec<u8> },
    /// `tools/call` as a stream: progress notifications, then the response (always last).
    Stream(Vec<Vec<u8>>),
}

impl Reply {
    fn ok(body: Vec<u8>) -> Self {
        Self::Single { status: 200, body }
    }
}

/// What `handle` needs to know besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub era: Era,
    /// `--stateless`: the modern revision (and `server/discover`) is served.
    pub stateless: bool,
    /// `--sse-progress N`: answer `tools/call` as a stream with N progress notifications
    /// (sent only when the request carries a progress token).
    pub sse_progress: Option<u32>,
}

/// Answers one message. `initialize` is answered here too; creating the session is the
/// transport's business.
pub fn handle(msg: &Message<'_>, ctx: Context) -> Reply {
    if msg.jsonrpc.as_deref() != Some("2.0") {
        return Reply::Single {
            status: 400,
            body: error(msg.id, code::INVALID_REQUEST, "jsonrpc must be \"2.0\"", None),
        };
    }
    let (Some(method), Some(id)) = (msg.method(), msg.id) else {
        return Reply::Accepted;
    };
    if !is_scalar(id) {
        return Reply::Single {
            status: 400,
            body: error(
                None,
                code::INVALID_REQUEST,
                "id must be a string or a number",
                None,
            ),
        };
    }
    let modern = ctx.era == Era::Modern;
    match method {
        "tools/call" => call(msg, id, ctx),
        "tools/list" => {
            let mut r = Vec::with_capacity(256);
            r.extend_from_slice(br#"{"tools":[{"name":"echo","description":"Returns its text argument.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}]"#);
            if modern {
                r.extend_from_slice(br#","resultType":"complete","ttlMs":3600000,"cacheScope":"public""#);
            }
            r.push(b'}');
            Reply::ok(response(id, &r))
        }
        "ping" => Reply::ok(response(
            id,
            if modern {
                br#"{"resultType":"complete"}"#
            } else {
                b"{}"
            },
        )),
        "initialize" => {
            let requested = msg.params.as_ref().and_then(|p| p.protocol_version.as_deref());
            let version = requested
                .filter(|v| LEGACY_VERSIONS.contains(v))
                .unwrap_or(LEGACY_VERSIONS[0]);
            let result = format!(
                r#"{{"protocolVersion":"{version}","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"{SERVER_NAME}","version":"{SERVER_VERSION}"}}}}"#
            );
            Reply::ok(response(id, result.as_bytes()))
        }
        "server/discover" if ctx.stateless => {
            let mut versions = format!(r#""{MODERN_VERSION}""#);
            for v in LEGACY_VERSIONS {
                versions.push_str(&format!(r#","{v}""#));
            }
            let result = format!(
                r#"{{"resultType":"complete","supportedVersions":[{versions}],"capabilities":{{"tools":{{}}}},"_meta":{{"io.modelcontextprotocol/serverInfo":{{"name":"{SERVER_NAME}","version":"{SERVER_VERSION}"}}}},"instructions":"Benchmark echo server: the echo tool returns its text.","ttlMs":3600000,"cacheScope":"public"}}"#
            );
            Reply::ok(response(id, result.as_bytes()))
        }
        _ => Reply::Single {
            // 2026-07-28 over HTTP: an unknown method is 404 with -32601; legacy: a 200 answer.
            status: if modern { 404 } else { 200 },
            body: error(Some(id), code::METHOD_NOT_FOUND, "method not found", None),
        },
    }
}

fn call(msg: &Message<'_>, id: &RawValue, ctx: Context) -> Reply {
    let invalid = |message: &str| Reply::ok(error(Some(id), code::INVALID_PARAMS, message, None));
    if msg.name() != Some(TOOL_NAME) {
        return invalid("unknown tool: only \"echo\" exists");
    }
    let Some(text) = msg
        .params
        .as_ref()
        .and_then(|p| p.arguments.as_ref())
        .and_then(|a| a.text)
        .filter(|t| t.get().starts_with('"'))
    else {
        return invalid("echo takes {\"text\": string}");
    };
    let mut result = Vec::with_capacity(text.get().len() + 80);
    result.extend_from_slice(br#"{"content":[{"type":"text","text":"#);
    result.extend_from_slice(text.get().as_bytes());
    result.extend_from_slice(b"}]");
    if ctx.era == Era::Modern {
        result.extend_from_slice(br#","resultType":"complete""#);
    }
    result.push(b'}');
    let answer = response(id, &result);
    let Some(n) = ctx.sse_progress else {
        return Reply::ok(answer);
    };
    let mut messages = Vec::with_capacity(n as usize + 1);
    match msg.progress_token() {
        Some(token) if !is_scalar(token) => {
            return invalid("progressToken must be a string or an integer");
        }
        Some(token) => {
            for i in 1..=n {
                messages.push(progress(token, i, n));
            }
        }
        // Progress may only reference a token the client gave: no token, no progress.
        None => {}
    }
    messages.push(answer);
    Reply::Stream(messages)
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`.
pub fn response(id: &RawValue, result: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(result.len() + id.get().len() + 32);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(br#","result":"#);
    out.extend_from_slice(result);
    out.push(b'}');
    out
}

/// A JSON-RPC error response; `data` is raw JSON.
pub fn error(id: Option<&RawValue>, code: i32, message: &str, data: Option<&str>) -> Vec<u8> {
    let message = serde_json::Value::String(message.to_owned()).to_string();
    let id = id.map_or("null", RawValue::get);
    let data = data.map(|d| format!(r#","data":{d}"#)).unwrap_or_default();
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}{data}}}}}"#)
        .into_bytes()
}

/// The 2026-07-28 `UnsupportedProtocolVersionError`.
pub fn unsupported_version(id: Option<&RawValue>, requested: &str) -> Vec<u8> {
    let mut supported = vec![MODERN_VERSION];
    supported.extend_from_slice(LEGACY_VERSIONS);
    let data = serde_json::json!({ "supported": supported, "requested": requested }).to_string();
    error(
        id,
        code::UNSUPPORTED_PROTOCOL_VERSION,
        "unsupported protocol version",
        Some(&data),
    )
}

fn progress(token: &RawValue, progress: u32, total: u32) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{},"progress":{progress},"total":{total}}}}}"#,
        token.get()
    )
    .into_bytes()
}

/// Ids and progress tokens are strings or numbers (never objects that could span lines).
fn is_scalar(v: &RawValue) -> bool {
    matches!(v.get().as_bytes().first(), Some(b'"' | b'-' | b'0'..=b'9'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: Context = Context {
        era: Era::Legacy,
        stateless: false,
        sse_progress: None,
    };

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn answer(input: &str, ctx: Context) -> Reply {
        handle(&Message::parse(input.as_bytes()).unwrap(), ctx)
    }

    fn single(reply: Reply) -> (u16, serde_json::Value) {
        match reply {
            Reply::Single { status, body } => (status, json(&body)),
            other => panic!("expected one answer, got {other:?}"),
        }
    }

    #[test]
    fn echo_copies_id_and_text_verbatim() {
        let (status, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"echo","arguments":{"text":"h\u00e9\"llo"}}}"#,
            LEGACY,
        ));
        assert_eq!(status, 200);
        assert_eq!(
            v,
            serde_json::json!({"jsonrpc":"2.0","id":"a-1","result":{"content":[{"type":"text","text":"hé\"llo"}]}})
        );
    }

    #[test]
    fn modern_results_carry_result_type() {
        let ctx = Context {
            era: Era::Modern,
            ..LEGACY
        };
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#,
            ctx,
        ));
        assert_eq!(v["result"]["resultType"], "complete");
        let (_, v) = single(answer(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#, ctx));
        assert_eq!(v["result"]["cacheScope"], "public");
        let (status, v) = single(answer(r#"{"jsonrpc":"2.0","id":9,"method":"nope"}"#, ctx));
        assert_eq!((status, v["error"]["code"].as_i64()), (404, Some(-32601)));
    }

    #[test]
    fn progress_only_with_a_token() {
        let ctx = Context {
            sse_progress: Some(3),
            ..LEGACY
        };
        let with = answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"},"_meta":{"progressToken":"t1"}}}"#,
            ctx,
        );
        let Reply::Stream(messages) = with else {
            panic!("expected a stream")
        };
        assert_eq!(messages.len(), 4);
        assert_eq!(json(&messages[2])["params"]["progress"], 3);
        assert_eq!(json(&messages[0])["params"]["progressToken"], "t1");
        assert_eq!(json(&messages[3])["id"], 1);
        let without = answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}"#,
            ctx,
        );
        assert!(matches!(without, Reply::Stream(m) if m.len() == 1));
    }

    #[test]
    fn bad_calls_and_notifications() {
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"other"}}"#,
            LEGACY,
        ));
        assert_eq!(v["error"]["code"], -32602);
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":5}}}"#,
            LEGACY,
        ));
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(
            answer(
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                LEGACY
            ),
            Reply::Accepted
        );
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
            LEGACY,
        ));
        assert_eq!(v["error"]["code"], -32601);
        assert!(Message::parse(b"{nope").is_err());
    }

    #[test]
    fn initialize_negotiates_a_legacy_version() {
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
            LEGACY,
        ));
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}"#,
            LEGACY,
        ));
        assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    }

    #[test]
    fn discover_follows_the_2026_schema() {
        let ctx = Context {
            era: Era::Modern,
            stateless: true,
            sse_progress: None,
        };
        let (_, v) = single(answer(
            r#"{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{}}"#,
            ctx,
        ));
        let r = &v["result"];
        for field in [
            "cacheScope",
            "capabilities",
            "resultType",
            "supportedVersions",
            "ttlMs",
        ] {
            assert!(!r[field].is_null(), "{field} missing");
        }
        assert_eq!(r["supportedVersions"][0], MODERN_VERSION);
        assert_eq!(
            r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "mcp-echo"
        );
        let e = json(&unsupported_version(None, "1900-01-01"));
        assert_eq!(e["error"]["code"], -32022);
        assert_eq!(e["error"]["data"]["requested"], "1900-01-01");
    }
}
