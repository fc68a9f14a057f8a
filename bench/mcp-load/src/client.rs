//! A minimal MCP Streamable HTTP client on one keep-alive HTTP/1.1 connection (hyper 1 directly):
//! initialize + initialized, `tools/call echo` with every answer checked, DELETE; or 2026-07-28
//! stateless calls with the mirrored headers.

use std::borrow::Cow;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::sse;

/// The legacy revision negotiated in `initialize`.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// The stateless revision of `--stateless` runs.
pub const MODERN_VERSION: &str = "2026-07-28";
const ACCEPT: &str = "application/json, text/event-stream";

/// Where and how to send requests; shared by all virtual clients.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub authority: HeaderValue,
    pub path: String,
    /// `--header` pairs added to every request (e.g. `Authorization: Bearer …`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Speak 2026-07-28 stateless requests instead of sessions.
    pub stateless: bool,
    /// Limit for one whole exchange (request sent, answer read).
    pub timeout: Duration,
}

impl Target {
    /// `url` must be `http://host:port/path`; `headers` are `Name: value`.
    pub fn new(url: &str, headers: &[String], stateless: bool, timeout: Duration) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("only http:// URLs are supported, not {url:?}"));
        }
        let authority = uri.authority().ok_or_else(|| format!("no host in {url:?}"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = (authority.host().trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", authority.host()))?
            .next()
            .ok_or_else(|| format!("{} resolves to nothing", authority.host()))?;
        let mut parsed = Vec::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?} is not `Name: value`"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("header name {name:?}: {e}"))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|e| format!("header value of {name}: {e}"))?;
            parsed.push((name, value));
        }
        Ok(Self {
            url: url.to_owned(),
            addr,
            authority: HeaderValue::from_str(authority.as_str()).map_err(|e| format!("authority: {e}"))?,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            headers: parsed,
            stateless,
            timeout,
        })
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum CallError {
    Connect(std::io::Error),
    Transport(hyper::Error),
    Timeout,
    /// An unexpected HTTP status.
    Status(u16),
    /// A JSON-RPC error answer.
    Rpc(i64),
    /// The answer does not match the request (id, text, progress) or cannot be read.
    Invalid(String),
}

impl CallError {
    /// A short, bounded label for counting.
    pub fn kind(&self) -> String {
        match self {
            Self::Connect(_) => "connect".into(),
            Self::Transport(_) => "transport".into(),
            Self::Timeout => "timeout".into(),
            Self::Status(s) => format!("status_{s}"),
            Self::Rpc(c) => format!("rpc_{c}"),
            Self::Invalid(_) => "invalid_answer".into(),
        }
    }

    /// The connection can no longer be trusted: open a new one.
    pub fn breaks_connection(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Transport(_) | Self::Timeout)
    }

    /// The server no longer knows the session (404): initialize again.
    pub fn loses_session(&self) -> bool {
        matches!(self, Self::Status(404))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Transport(e) => write!(f, "transport: {e}"),
            Self::Timeout => write!(f, "no complete answer within the timeout"),
            Self::Status(s) => write!(f, "HTTP status {s}"),
            Self::Rpc(c) => write!(f, "JSON-RPC error {c}"),
            Self::Invalid(m) => write!(f, "invalid answer: {m}"),
        }
    }
}

/// An MCP session: its id (none when the server assigns none) and negotiated version.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Option<HeaderValue>,
    pub version: HeaderValue,
}

/// The messages of one answer: one JSON body, or each SSE event's data.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    session: Option<HeaderValue>,
    messages: Vec<Bytes>,
    sse_events: u32,
}

/// One virtual client's connection. Requests go one at a time (HTTP/1.1, no pipelining).
#[derive(Debug)]
pub struct Client {
    conn: Option<SendRequest<Full<Bytes>>>,
    next_id: u64,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        Self {
            conn: None,
            next_id: 1,
        }
    }

    /// Drops the connection; the next request opens a new one.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn connection(&mut self, target: &Target) -> Result<&mut SendRequest<Full<Bytes>>, CallError> {
        if self.conn.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = tokio::net::TcpStream::connect(target.addr)
                .await
                .map_err(CallError::Connect)?;
            stream.set_nodelay(true).map_err(CallError::Connect)?;
            let (sender, conn) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(CallError::Transport)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some(sender);
        }
        let sender = self
            .conn
            .as_mut()
            .ok_or_else(|| CallError::Invalid("no connection".into()))?;
        sender.ready().await.map_err(CallError::Transport)?;
        Ok(sender)
    }

    /// Sends one request and reads the whole answer, within the target's timeout.
    async fn exchange(&mut self, target: &Target, req: Request<Full<Bytes>>) -> Result<Answer, CallError> {
        let result = tokio::time::timeout(target.timeout, async {
            let sender = self.connection(target).await?;
            let res = sender.send_request(req).await.map_err(CallError::Transport)?;
            read_answer(res).await
        })
        .await;
        let result = result.unwrap_or(Err(CallError::Timeout));
        if result.as_ref().is_err_and(CallError::breaks_connection) {
            self.reset();
        }
        result
    }

    fn request(
        target: &Target,
        method: Method,
        session: Option<&Session>,
        with_body: bool,
    ) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(target.path.as_str())
            .header(header::HOST, target.authority.clone());
        if with_body {
            b = b
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, ACCEPT);
        }
        if let Some(s) = session {
            if let Some(id) = &s.id {
                b = b.header("mcp-session-id", id.clone());
            }
            b = b.header("mcp-protocol-version", s.version.clone());
        }
        for (name, value) in &target.headers {
            b = b.header(name, value);
        }
        b
    }

    fn build(b: hyper::http::request::Builder, body: Vec<u8>) -> Result<Request<Full<Bytes>>, CallError> {
        b.body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Invalid(format!("building the request: {e}")))
    }

    /// `initialize` then `notifications/initialized`; returns the session.
    pub async fn open_session(&mut self, target: &Target) -> Result<Session, CallError> {
        let id = self.next_id();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"initialize","params":{{"protocolVersion":"{LEGACY_VERSION}","capabilities":{{}},"clientInfo":{{"name":"mcp-load","version":"{}"}}}}}}"#,
            env!("CARGO_PKG_VERSION")
        );
        let req = Self::build(Self::request(target, Method::POST, None, true), body.into_bytes())?;
        let answer = self.exchange(target, req).await?;
        if answer.status != StatusCode::OK {
            return Err(CallError::Status(answer.status.as_u16()));
        }
        let mut version = None;
        for m in &answer.messages {
            let msg = parse_message(m)?;
            if msg.id.is_some() {
                check_id(&msg, id)?;
                if let Some(code) = msg.error.as_ref().map(|e| e.code) {
                    return Err(CallError::Rpc(code));
                }
                version = msg
                    .result
                    .as_ref()
                    .and_then(|r| r.protocol_version.as_deref())
                    .map(str::to_owned);
            }
        }
        let version = version
            .ok_or_else(|| CallError::Invalid("initialize answered without a protocolVersion".into()))?;
        let session = Session {
            id: answer.session,
            version: HeaderValue::from_str(&version)
                .map_err(|_| CallError::Invalid(format!("protocolVersion {version:?}")))?,
        };
        let req = Self::build(
            Self::request(target, Method::POST, Some(&session), true),
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec(),
        )?;
        let answer = self.exchange(target, req).await?;
        if answer.status != StatusCode::ACCEPTED {
            return Err(CallError::Status(answer.status.as_u16()));
        }
        Ok(session)
    }

    /// Ends a session with DELETE (2xx, or 405 from a server that does not allow it).
    pub async fn close_session(&mut self, target: &Target, session: &Session) -> Result<(), CallError> {
        let req = Self::build(
            Self::request(target, Method::DELETE, Some(session), false),
            Vec::new(),
        )?;
        let answer = self.exchange(target, req).await?;
        if answer.status.is_success() || answer.status == StatusCode::METHOD_NOT_ALLOWED {
            Ok(())
        } else {
            Err(CallError::Status(answer.status.as_u16()))
        }
    }

    /// `tools/call echo` with `text`; checks the answer (same id, same text) and, when
    /// `progress` is given, sends a progress token and checks that exactly that many
    /// progress notifications came. Returns the number of progress notifications seen.
    pub async fn call_echo(
        &mut self,
        target: &Target,
        session: Option<&Session>,
        text: &str,
        progress: Option<u32>,
        tag: usize,
    ) -> Result<u32, CallError> {
        let id = self.next_id();
        let token = progress.map(|_| format!("c{tag}-{id}"));
        let mut body = Vec::with_capacity(text.len() + 200);
        body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        body.extend_from_slice(id.to_string().as_bytes());
        body.extend_from_slice(br#","method":"tools/call","params":{"name":"echo","arguments":{"text":"#);
        // The generated text is plain ASCII: no escaping needed.
        body.push(b'"');
        body.extend_from_slice(text.as_bytes());
        body.extend_from_slice(b"\"}");
        if target.stateless || token.is_some() {
            body.extend_from_slice(br#","_meta":{"#);
            let mut first = true;
            if target.stateless {
                body.extend_from_slice(
                    br#""io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}"#,
                );
                first = false;
            }
            if let Some(t) = &token {
                if !first {
                    body.push(b',');
                }
                body.extend_from_slice(br#""progressToken":""#);
                body.extend_from_slice(t.as_bytes());
                body.push(b'"');
            }
            body.push(b'}');
        }
        body.extend_from_slice(b"}}");

        let mut b = Self::request(target, Method::POST, session, true);
        if target.stateless {
            b = b
                .header("mcp-protocol-version", MODERN_VERSION)
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo");
        }
        let answer = self.exchange(target, Self::build(b, body)?).await?;
        if answer.status != StatusCode::OK {
            return Err(CallError::Status(answer.status.as_u16()));
        }
        check_echo(&answer, id, text, token.as_deref(), progress)
    }
}

async fn read_answer(res: Response<Incoming>) -> Result<Answer, CallError> {
    let status = res.status();
    let session = res.headers().get("mcp-session-id").cloned();
    let is_sse = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let mut body = res.into_body();
    let mut messages = Vec::new();
    let mut sse_events = 0;
    if is_sse {
        let mut parser = sse::Parser::new();
        let mut events = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(CallError::Transport)?;
            if let Some(data) = frame.data_ref() {
                parser.feed(data, &mut events);
                for e in events.drain(..) {
                    sse_events += 1;
                    // Priming events carry only an id.
                    if !e.data.is_empty() {
                        messages.push(Bytes::from(e.data));
                    }
                }
            }
        }
        if !parser.is_idle() {
            return Err(CallError::Invalid("SSE stream ended inside an event".into()));
        }
    } else {
        let bytes = body.collect().await.map_err(CallError::Transport)?.to_bytes();
        if !bytes.is_empty() {
            messages.push(bytes);
        }
    }
    Ok(Answer {
        status,
        session,
        messages,
        sse_events,
    })
}

/// The fields of any server message that are checked here.
#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    params: Option<ProgressParams<'a>>,
    #[serde(default, borrow)]
    result: Option<ResultFields<'a>>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Debug, Deserialize)]
struct ProgressParams<'a> {
    #[serde(default, borrow, rename = "progressToken")]
    progress_token: Option<Cow<'a, str>>,
    #[serde(default)]
    progress: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct ResultFields<'a> {
    #[serde(default, borrow)]
    content: Option<Vec<Content<'a>>>,
    #[serde(default, borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Content<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct RpcError {
    code: i64,
}

fn parse_message(bytes: &[u8]) -> Result<Message<'_>, CallError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        CallError::Invalid(format!("not a JSON-RPC message ({e}): {start}"))
    })
}

fn check_id(msg: &Message<'_>, id: u64) -> Result<(), CallError> {
    let got = msg.id.map(RawValue::get).unwrap_or("null");
    if got.parse::<u64>().ok() == Some(id) {
        Ok(())
    } else {
        Err(CallError::Invalid(format!("answer id {got}, expected {id}")))
    }
}

/// Checks a `tools/call echo` answer: progress notifications (token, increasing), then exactly
/// one response with our id and our text.
fn check_echo(
    answer: &Answer,
    id: u64,
    text: &str,
    token: Option<&str>,
    expect_progress: Option<u32>,
) -> Result<u32, CallError> {
    let mut progress = 0;
    let mut last = f64::NEG_INFINITY;
    let mut answered = false;
    for m in &answer.messages {
        let msg = parse_message(m)?;
        if msg.method.as_deref() == Some("notifications/progress") {
            let p = msg
                .params
                .as_ref()
                .ok_or_else(|| CallError::Invalid("progress without params".into()))?;
            if p.progress_token.as_deref() != token {
                return Err(CallError::Invalid(format!(
                    "progress for token {:?}, expected {token:?}",
                    p.progress_token
                )));
            }
            let value = p.progress.unwrap_or(f64::NAN);
            if value.is_nan() || value <= last {
                return Err(CallError::Invalid("progress values must increase".into()));
            }
            last = value;
            progress += 1;
            continue;
        }
        if msg.method.is_some() {
            continue; // other notifications (logging...) are allowed
        }
        if answered {
            return Err(CallError::Invalid("two responses to one request".into()));
        }
        answered = true;
        check_id(&msg, id)?;
        if let Some(e) = &msg.error {
            return Err(CallError::Rpc(e.code));
        }
        let content = msg
            .result
            .as_ref()
            .and_then(|r| r.content.as_ref())
            .and_then(|c| c.first())
            .ok_or_else(|| CallError::Invalid("result without content".into()))?;
        if content.kind.as_deref() != Some("text") || content.text.as_deref() != Some(text) {
            return Err(CallError::Invalid(format!(
                "echoed {:?}, expected {text:?}",
                content.text
            )));
        }
    }
    if !answered {
        return Err(CallError::Invalid(format!(
            "no response among {} message(s) ({} SSE events)",
            answer.messages.len(),
            answer.sse_events
        )));
    }
    if let Some(n) = expect_progress
        && progress != n
    {
        return Err(CallError::Invalid(format!(
            "{progress} progress notifications, expected {n}"
        )));
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(messages: &[&str]) -> Answer {
        Answer {
            status: StatusCode::OK,
            session: None,
            messages: messages
                .iter()
                .map(|m| Bytes::copy_from_slice(m.as_bytes()))
                .collect(),
            sse_events: 0,
        }
    }

    const OK: &str = r#"{"jsonrpc":"2.0","id":5,"result":{"content":[{"type":"text","text":"hi"}]}}"#;

    #[test]
    fn echo_answers_are_checked() {
        assert_eq!(check_echo(&answer(&[OK]), 5, "hi", None, None).unwrap(), 0);
        assert!(check_echo(&answer(&[OK]), 6, "hi", None, None).is_err());
        assert!(check_echo(&answer(&[OK]), 5, "ho", None, None).is_err());
        assert!(check_echo(&answer(&[OK, OK]), 5, "hi", None, None).is_err());
        assert!(check_echo(&answer(&[]), 5, "hi", None, None).is_err());
        let err = r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"x"}}"#;
        assert_eq!(
            check_echo(&answer(&[err]), 5, "hi", None, None)
                .unwrap_err()
                .kind(),
            "rpc_-32602"
        );
    }

    #[test]
    fn progress_is_counted_and_checked() {
        let p = |n: u32, token: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":"{token}","progress":{n},"total":2}}}}"#
            )
        };
        let (p1, p2) = (p(1, "t"), p(2, "t"));
        let good = answer(&[&p1, &p2, OK]);
        assert_eq!(check_echo(&good, 5, "hi", Some("t"), Some(2)).unwrap(), 2);
        assert!(check_echo(&good, 5, "hi", Some("t"), Some(3)).is_err());
        assert!(check_echo(&answer(&[&p2, &p1, OK]), 5, "hi", Some("t"), None).is_err());
        let other = p(1, "other");
        assert!(check_echo(&answer(&[&other, OK]), 5, "hi", Some("t"), None).is_err());
    }

    #[test]
    fn targets() {
        let t = Target::new(
            "http://127.0.0.1:8080/servers/echo/mcp?x=1",
            &["Authorization: Bearer abc".into()],
            false,
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(t.addr.port(), 8080);
        assert_eq!(t.path, "/servers/echo/mcp?x=1");
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.headers[0].1, "Bearer abc");
        assert!(Target::new("https://x/mcp", &[], false, Duration::ZERO).is_err());
        assert!(Target::new("http://127.0.0.1:1/", &["nocolon".into()], false, Duration::ZERO).is_err());
    }
}
