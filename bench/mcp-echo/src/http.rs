//! Streamable HTTP on `/mcp`: sessions (2025-11-25) and, with `--stateless`, the 2026-07-28 mode.
//!
//! hyper 1, HTTP/1.1 with keep-alive, one task per connection.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Sleep;

use crate::Options;
use crate::protocol::{self, Era, Message, Reply, code};

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 4 << 20;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

struct Shared {
    opts: Options,
    sessions: Mutex<HashSet<String>>,
}

/// Serves `/mcp` on `listener` until `shutdown` completes. Connections are not drained: this is
/// a benchmark upstream.
pub async fn serve(
    listener: TcpListener,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        opts,
        sessions: Mutex::new(HashSet::new()),
    });
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of descriptors and the like: back off instead of spinning.
                eprintln!("mcp-echo: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Latency matters more than packet count here.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(req, &shared).await) }
            });
            // A client that goes away mid-request is not an error worth reporting.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(req: Request<Incoming>, shared: &Shared) -> Response<EchoBody> {
    if req.uri().path() != "/mcp" {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !local_origin(origin)
    {
        return rpc_error(
            StatusCode::FORBIDDEN,
            None,
            code::INVALID_REQUEST,
            "origin not allowed",
        );
    }
    match *req.method() {
        Method::POST => post(req, shared).await,
        Method::DELETE => delete(req.headers(), shared),
        // No standalone server-to-client stream is offered (allowed by 2025-11-25; the only
        // answer in 2026-07-28).
        _ => {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
            res
        }
    }
}

fn delete(headers: &HeaderMap, shared: &Shared) -> Response<EchoBody> {
    let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
        return if shared.opts.stateless {
            plain(StatusCode::METHOD_NOT_ALLOWED, "no session to end")
        } else {
            plain(StatusCode::BAD_REQUEST, "missing Mcp-Session-Id")
        };
    };
    let removed = shared
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(id);
    if removed {
        plain(StatusCode::OK, "")
    } else {
        plain(StatusCode::NOT_FOUND, "unknown session")
    }
}

async fn post(req: Request<Incoming>, shared: &Shared) -> Response<EchoBody> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let accept = header_str(headers, header::ACCEPT.as_str()).unwrap_or("");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::INVALID_REQUEST,
            "Accept must list application/json and text/event-stream",
        );
    }
    if !header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/json"))
    {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
        );
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let msg = match Message::parse(&bytes) {
        Ok(msg) => msg,
        Err(body) => return json(StatusCode::BAD_REQUEST, body),
    };
    let session = header_str(headers, SESSION_HEADER);
    let opts = &shared.opts;

    if msg.method() == Some("initialize") {
        if session.is_some() {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                msg.id,
                code::INVALID_REQUEST,
                "initialize inside a session",
            );
        }
        let ctx = protocol::Context {
            era: Era::Legacy,
            stateless: opts.stateless,
            sse_progress: None,
        };
        let mut res = to_response(protocol::handle(&msg, ctx), Duration::ZERO);
        if res.status() == StatusCode::OK {
            let id = uuid::Uuid::new_v4().simple().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(SESSION_HEADER, value);
            }
            shared
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id);
        }
        return res;
    }

    let era = if let Some(session) = session {
        let known = shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(session);
        if !known {
            return rpc_error(
                StatusCode::NOT_FOUND,
                msg.id,
                code::SESSION_NOT_FOUND,
                "session not found",
            );
        }
        if let Some(v) = header_str(headers, VERSION_HEADER)
            && !protocol::LEGACY_VERSIONS.contains(&v)
        {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                msg.id,
                code::INVALID_REQUEST,
                "unsupported MCP-Protocol-Version",
            );
        }
        Era::Legacy
    } else if !opts.stateless {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id,
            code::INVALID_REQUEST,
            "missing Mcp-Session-Id: initialize first",
        );
    } else if !msg.is_request() {
        // 2026-07-28 defines no header rules for notification POSTs.
        return to_response(Reply::Accepted, Duration::ZERO);
    } else {
        if let Err(res) = check_modern_headers(headers, &msg) {
            return *res;
        }
        Era::Modern
    };

    let ctx = protocol::Context {
        era,
        stateless: opts.stateless,
        sse_progress: opts.sse_progress,
    };
    let reply = protocol::handle(&msg, ctx);
    let work = msg.method() == Some("tools/call") && !opts.delay.is_zero();
    if work && matches!(reply, Reply::Single { status: 200, .. }) {
        tokio::time::sleep(opts.delay).await;
    }
    to_response(reply, if work { opts.delay } else { Duration::ZERO })
}

/// 2026-07-28 "Server Validation": the version header is present and served, and the mirrored
/// headers equal the body.
fn check_modern_headers(headers: &HeaderMap, msg: &Message<'_>) -> Result<(), Box<Response<EchoBody>>> {
    let mismatch = |what: &str| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id,
            code::HEADER_MISMATCH,
            &format!("header mismatch: {what}"),
        ))
    };
    let Some(version) = header_str(headers, VERSION_HEADER) else {
        return Err(mismatch("missing MCP-Protocol-Version"));
    };
    if protocol::LEGACY_VERSIONS.contains(&version) {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            msg.id,
            code::INVALID_REQUEST,
            "missing Mcp-Session-Id: initialize first",
        )));
    }
    if version != protocol::MODERN_VERSION {
        return Err(Box::new(json(
            StatusCode::BAD_REQUEST,
            protocol::unsupported_version(msg.id, version),
        )));
    }
    if msg.meta_protocol_version() != Some(version) {
        return Err(mismatch(
            "MCP-Protocol-Version differs from _meta io.modelcontextprotocol/protocolVersion",
        ));
    }
    if header_str(headers, "mcp-method") != msg.method() {
        return Err(mismatch("Mcp-Method differs from method"));
    }
    if msg.method() == Some("tools/call") {
        let name = header_str(headers, "mcp-name").and_then(decode_header_value);
        if name.as_deref() != msg.name() {
            return Err(mismatch("Mcp-Name differs from params.name"));
        }
    }
    Ok(())
}

/// Undoes the `=?base64?…?=` sentinel encoding of 2026-07-28 header values.
fn decode_header_value(value: &str) -> Option<String> {
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

fn to_response(reply: Reply, stream_delay: Duration) -> Response<EchoBody> {
    match reply {
        Reply::Accepted => plain(StatusCode::ACCEPTED, ""),
        Reply::Single { status, body } => json(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body),
        Reply::Stream(messages) => {
            let gap = stream_delay / u32::try_from(messages.len()).unwrap_or(1).max(1);
            let events = messages
                .into_iter()
                .map(|m| {
                    let mut event = Vec::with_capacity(m.len() + 24);
                    event.extend_from_slice(b"event: message\ndata: ");
                    event.extend_from_slice(&m);
                    event.extend_from_slice(b"\n\n");
                    Bytes::from(event)
                })
                .collect();
            let mut res = Response::new(EchoBody::Sse(SseBody {
                events,
                gap,
                sleep: None,
            }));
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            res
        }
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn local_origin(origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|h| host == *h || host.strip_prefix(h).is_some_and(|rest| rest.starts_with(':')))
}

fn plain(status: StatusCode, text: &'static str) -> Response<EchoBody> {
    let mut res = Response::new(if text.is_empty() {
        EchoBody::Empty
    } else {
        EchoBody::Full(Some(Bytes::from_static(text.as_bytes())))
    });
    *res.status_mut() = status;
    res
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<EchoBody> {
    let mut res = Response::new(EchoBody::Full(Some(Bytes::from(body))));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn rpc_error(
    status: StatusCode,
    id: Option<&serde_json::value::RawValue>,
    code: i32,
    message: &str,
) -> Response<EchoBody> {
    json(status, protocol::error(id, code, message, None))
}

/// Response bodies: nothing, one buffer, or SSE events (optionally spaced out in time).
#[derive(Debug)]
pub enum EchoBody {
    Empty,
    Full(Option<Bytes>),
    Sse(SseBody),
}

#[derive(Debug)]
pub struct SseBody {
    events: VecDeque<Bytes>,
    /// Waited before each event: the simulated work spread over the stream.
    gap: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Body for EchoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Self::Sse(sse) => {
                if sse.events.is_empty() {
                    return Poll::Ready(None);
                }
                if !sse.gap.is_zero() {
                    let sleep = sse
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(sse.gap)));
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    sse.sleep = None;
                }
                Poll::Ready(sse.events.pop_front().map(|e| Ok(Frame::data(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(data) => data.is_none(),
            Self::Sse(sse) => sse.events.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Self::Sse(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        for ok in ["http://127.0.0.1", "http://localhost:3000", "https://[::1]:8443"] {
            assert!(local_origin(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in ["http://evil.example", "http://localhost.evil.example", "null"] {
            assert!(!local_origin(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn header_values_decode() {
        assert_eq!(decode_header_value("echo").as_deref(), Some("echo"));
        assert_eq!(
            decode_header_value("=?base64?ZWNobw==?=").as_deref(),
            Some("echo")
        );
        assert_eq!(decode_header_value("=?base64?!!?="), None);
    }
}
