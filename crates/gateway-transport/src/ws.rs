//! WebSocket upstreams: the server record's `ws://` or `wss://` URL, subprotocol `mcp`, one
//! JSON-RPC message (or batch) per text frame.
//!
//! - **Handshake**: `Sec-WebSocket-Protocol: mcp` plus the record's extra headers (credentials:
//!   marked sensitive, never logged). The server must select `mcp`: a server that answers
//!   without a subprotocol fails the handshake (RFC 6455 §4.1 lets the client fail it, and an
//!   endpoint that does not say it speaks MCP is not one we want to feed). The handshake's own
//!   headers (`Connection`, `Upgrade`, `Sec-WebSocket-*`) cannot be overridden by the record.
//!   A non-101 answer is [`TransportError::Status`]; the whole connect is bounded by
//!   [`CONNECT_TIMEOUT`].
//! - **TLS** (`wss`): rustls on the `ring` provider with the system's root certificates,
//!   loaded once per connector, off the runtime's threads.
//! - **Frames**: every incoming text frame is parsed as a message or a batch (each member is
//!   delivered); a frame that is not JSON-RPC is logged and ignored, like a stray stdio line;
//!   binary frames are ignored (MCP over WebSocket is text). Incoming messages and frames are
//!   limited to `max_message_bytes`: a larger one closes the connection with 1009 (Message Too
//!   Big) and ends the link.
//! - **Liveness**: pings are answered (tungstenite does it while reading); the gateway sends a
//!   ping every [`PING_INTERVAL`] and treats [`IDLE_TIMEOUT`] without any frame as a dead
//!   connection.
//! - **Closing**: dropping the link's `tx` sends a normal close frame (1000) and waits up to
//!   [`CLOSE_GRACE`] for the server's; the link then reports `Closed`, as it does when the
//!   server closes the socket or the connection fails.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use gateway_types::error::error_chain;
use gateway_types::jsonrpc::{Message, Payload};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::TransportError;
use crate::http::spec_headers;
use crate::link::{Connector, LINK_QUEUE, Link, LinkEvent, LinkTx, UpstreamSpec, emit};

/// The subprotocol offered and required.
pub const SUBPROTOCOL: &str = "mcp";
/// How often the gateway pings the upstream.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long without any frame from the upstream before the connection counts as dead.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest TCP connect + TLS + upgrade handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing handshake may take before the socket is simply dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Headers of the WebSocket handshake itself, which a server record may not set.
const HANDSHAKE_HEADERS: [&str; 6] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
];

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Builds WebSocket links.
#[derive(Debug)]
pub struct WsConnector {
    ping_interval: Duration,
    idle_timeout: Duration,
    /// The `wss` client configuration, built on first use (reading the system's roots).
    tls: OnceLock<Arc<ClientConfig>>,
}

impl Default for WsConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl WsConnector {
    /// A connector with the default keep-alive ([`PING_INTERVAL`], [`IDLE_TIMEOUT`]).
    #[must_use]
    pub fn new() -> Self {
        Self {
            ping_interval: PING_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            tls: OnceLock::new(),
        }
    }

    /// The same connector pinging every `ping_interval` and giving up on a connection after
    /// `idle_timeout` without any frame (tests use short ones).
    #[must_use]
    pub fn with_keepalive(mut self, ping_interval: Duration, idle_timeout: Duration) -> Self {
        self.ping_interval = ping_interval;
        self.idle_timeout = idle_timeout;
        self
    }

    async fn tls(&self) -> Result<Arc<ClientConfig>, TransportError> {
        if let Some(config) = self.tls.get() {
            return Ok(Arc::clone(config));
        }
        let config = tokio::task::spawn_blocking(tls_config)
            .await
            .map_err(|_| TransportError::Config("loading the TLS roots failed".into()))??;
        // Two first connections may both build one; either is fine.
        Ok(Arc::clone(self.tls.get_or_init(|| config)))
    }
}

/// rustls on `ring` (never the process default provider, which another crate's features could
/// change) with the system's root certificates. Fails when no root certificate is usable.
fn tls_config() -> Result<Arc<ClientConfig>, TransportError> {
    let loaded = rustls_native_certs::load_native_certs();
    if !loaded.errors.is_empty() {
        tracing::warn!(
            errors = loaded.errors.len(),
            "some system root certificates could not be loaded"
        );
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        return Err(TransportError::Config(
            "no usable TLS root certificate on this system".into(),
        ));
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TransportError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[async_trait]
impl Connector for WsConnector {
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let url = spec
            .url
            .as_deref()
            .ok_or_else(|| TransportError::Config("a WebSocket server needs a url".into()))?;
        let url = url::Url::parse(url).map_err(|_| TransportError::Config("invalid upstream url".into()))?;
        let connector = match url.scheme() {
            "ws" => tokio_tungstenite::Connector::Plain,
            "wss" => tokio_tungstenite::Connector::Rustls(self.tls().await?),
            _ => {
                return Err(TransportError::Config(
                    "a WebSocket server's url must be ws:// or wss://".into(),
                ));
            }
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|_| TransportError::Config("invalid upstream url".into()))?;
        for (name, value) in spec_headers(spec)? {
            let Some(name) = name else { continue };
            if HANDSHAKE_HEADERS.contains(&name.as_str()) {
                return Err(TransportError::Config(format!(
                    "header {name} belongs to the WebSocket handshake and cannot be set"
                )));
            }
            request.headers_mut().insert(name, value);
        }
        request
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
        let config = WebSocketConfig::default()
            .max_message_size(Some(spec.max_message_bytes))
            .max_frame_size(Some(spec.max_message_bytes));

        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector));
        let (socket, _response) = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| TransportError::Timeout(CONNECT_TIMEOUT))?
            .map_err(|err| match err {
                tungstenite::Error::Http(response) => TransportError::Status {
                    status: response.status().as_u16(),
                },
                other => TransportError::WebSocket(Box::new(other)),
            })?;
        tracing::info!(server.name = %spec.name, server.id = %spec.server_id, "connected to the WebSocket upstream");

        let (out_tx, out_rx) = mpsc::channel::<Message>(LINK_QUEUE);
        let (in_tx, in_rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
        let keepalive = Keepalive {
            ping_interval: self.ping_interval,
            idle_timeout: self.idle_timeout,
        };
        tokio::spawn(run(socket, out_rx, in_tx, keepalive, spec.name.clone()));
        Ok(Link {
            tx: LinkTx::channel(out_tx),
            rx: in_rx,
            pid: None,
            inbox: None,
        })
    }
}

#[derive(Clone, Copy, Debug)]
struct Keepalive {
    ping_interval: Duration,
    idle_timeout: Duration,
}

/// Why the pump stopped, and so how the socket is closed.
#[derive(Debug)]
enum End {
    /// The gateway is done with the link: close normally.
    Gateway(&'static str),
    /// The socket closed or failed: nothing left to do.
    Ended(String),
    /// The upstream sent a message over the limit: close with 1009.
    TooLarge(String),
    /// No frame within the idle timeout: the connection is dead.
    Idle(Duration),
}

/// Pumps messages both ways until either side ends, closes the socket, reports `Closed`.
async fn run(
    socket: Socket,
    mut out: mpsc::Receiver<Message>,
    events: mpsc::Sender<LinkEvent>,
    keepalive: Keepalive,
    name: String,
) {
    let (mut sink, mut stream) = socket.split();
    let end = {
        let read = read_frames(&mut stream, &events, keepalive.idle_timeout, &name);
        let write = write_messages(&mut sink, &mut out, keepalive.ping_interval);
        tokio::pin!(read, write);
        tokio::select! {
            end = &mut read => end,
            end = &mut write => end,
        }
    };
    drop(out);
    let reason = match end {
        End::Gateway(why) => {
            close(&mut sink, &mut stream, CloseCode::Normal, "").await;
            why.to_owned()
        }
        End::TooLarge(why) => {
            close(&mut sink, &mut stream, CloseCode::Size, "message too big").await;
            why
        }
        End::Idle(after) => {
            // Dead peer: try a close frame, but do not wait for an answer that will not come.
            let _ = tokio::time::timeout(Duration::from_millis(100), sink.close()).await;
            format!("no frame from the upstream for {} s", after.as_secs_f32())
        }
        End::Ended(why) => why,
    };
    tracing::info!(server.name = %name, reason = %reason, "WebSocket upstream closed");
    let _ = events.send(LinkEvent::Closed { reason }).await;
}

/// Sends a close frame, then reads (and discards) until the server's close ends the stream.
async fn close(
    sink: &mut SplitSink<Socket, Frame>,
    stream: &mut SplitStream<Socket>,
    code: CloseCode,
    reason: &'static str,
) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        if sink.send(Frame::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Delivers every message of every text frame until the socket ends.
async fn read_frames(
    stream: &mut SplitStream<Socket>,
    events: &mpsc::Sender<LinkEvent>,
    idle_timeout: Duration,
    name: &str,
) -> End {
    let mut closed_by_peer: Option<String> = None;
    loop {
        let frame = match tokio::time::timeout(idle_timeout, stream.next()).await {
            Err(_) => return End::Idle(idle_timeout),
            Ok(Some(Ok(frame))) => frame,
            Ok(None)
            | Ok(Some(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed))) => {
                return End::Ended(
                    closed_by_peer.unwrap_or_else(|| "upstream WebSocket connection ended".into()),
                );
            }
            Ok(Some(Err(err @ tungstenite::Error::Capacity(_)))) => {
                tracing::warn!(server.name = %name, error = %err, "upstream sent a WebSocket message over the size limit");
                return End::TooLarge(format!("upstream message over the size limit: {err}"));
            }
            Ok(Some(Err(err))) => {
                return End::Ended(format!("upstream WebSocket failed: {}", error_chain(&err)));
            }
        };
        match frame {
            Frame::Text(text) => match serde_json::from_str::<Payload>(text.as_str()) {
                Ok(Payload::Single(message)) => {
                    if !emit(events, message, None).await {
                        return End::Gateway("the link's receiver is gone");
                    }
                }
                Ok(Payload::Batch(messages)) => {
                    for message in messages {
                        if !emit(events, message, None).await {
                            return End::Gateway("the link's receiver is gone");
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(server.name = %name, error = %err, "upstream WebSocket frame is not JSON-RPC; ignored");
                }
            },
            Frame::Binary(_) => {
                tracing::warn!(server.name = %name, "upstream sent a binary WebSocket frame; ignored");
            }
            Frame::Close(frame) => {
                closed_by_peer = Some(match frame {
                    Some(f) if f.reason.is_empty() => {
                        format!("upstream closed the WebSocket ({})", u16::from(f.code))
                    }
                    Some(f) => format!(
                        "upstream closed the WebSocket ({}: {})",
                        u16::from(f.code),
                        f.reason.as_str()
                    ),
                    None => "upstream closed the WebSocket".into(),
                });
            }
            // Pings are answered by tungstenite; pongs and pings only prove liveness.
            Frame::Ping(_) | Frame::Pong(_) | Frame::Frame(_) => {}
        }
    }
}

/// Sends every message as one text frame, and a ping every `ping_interval`, until the link is
/// dropped or the socket fails.
async fn write_messages(
    sink: &mut SplitSink<Socket, Frame>,
    out: &mut mpsc::Receiver<Message>,
    ping_interval: Duration,
) -> End {
    let mut ticker = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let frame = tokio::select! {
            message = out.recv() => {
                let Some(message) = message else {
                    return End::Gateway("closed by the gateway");
                };
                match serde_json::to_string(&message) {
                    Ok(text) => Frame::text(text),
                    Err(_) => continue,
                }
            }
            _ = ticker.tick() => Frame::Ping(bytes::Bytes::new()),
        };
        if let Err(err) = sink.send(frame).await {
            return End::Ended(format!(
                "cannot write to the upstream WebSocket: {}",
                error_chain(&err)
            ));
        }
    }
}
