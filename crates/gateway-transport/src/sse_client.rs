//! Legacy HTTP+SSE upstreams (MCP 2024-11-05): a GET opens an SSE stream whose first event,
//! `endpoint`, names the URL to POST messages to; every message from the server, answers
//! included, arrives on the stream. The stream closing ends the link.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use gateway_types::jsonrpc::Message;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::sync::mpsc;

use crate::error::{TransportError, codes, error_reply};
use crate::http::{spec_headers, spec_url};
use crate::link::{Connector, LINK_QUEUE, Link, LinkEvent, LinkTx, UpstreamSpec, emit};
use crate::sse::SseParser;

/// How long the server has to send its `endpoint` event.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds legacy SSE links.
#[derive(Clone, Debug)]
pub struct SseConnector {
    client: reqwest::Client,
}

impl SseConnector {
    /// A connector on the shared HTTP client.
    #[must_use]
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Connector for SseConnector {
    async fn connect(&self, spec: &UpstreamSpec) -> Result<Link, TransportError> {
        let url = spec_url(spec)?;
        let headers = spec_headers(spec)?;
        let response = self
            .client
            .get(url.clone())
            .headers(headers.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(TransportError::Http)?;
        if !response.status().is_success() {
            return Err(TransportError::Status {
                status: response.status().as_u16(),
            });
        }
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new(spec.max_message_bytes);
        let mut events = Vec::new();
        // Wait for the endpoint event; messages before it are kept.
        let endpoint = tokio::time::timeout(ENDPOINT_TIMEOUT, async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(TransportError::Http)?;
                parser
                    .feed(&chunk, &mut events)
                    .map_err(|_| TransportError::Protocol("SSE event over the size limit".into()))?;
                if let Some(pos) = events.iter().position(|e| e.event.as_deref() == Some("endpoint")) {
                    let ev = events.remove(pos);
                    return url
                        .join(ev.data.trim())
                        .map_err(|_| TransportError::Protocol("invalid endpoint event".into()));
                }
            }
            Err(TransportError::Protocol(
                "stream ended before the endpoint event".into(),
            ))
        })
        .await
        .map_err(|_| TransportError::Timeout(ENDPOINT_TIMEOUT))??;
        if endpoint.origin() != url.origin() {
            // Posting our messages (and credentials) elsewhere is never acceptable.
            return Err(TransportError::Protocol("endpoint on another origin".into()));
        }

        let (out_tx, mut out_rx) = mpsc::channel::<Message>(LINK_QUEUE);
        let (in_tx, in_rx) = mpsc::channel::<LinkEvent>(LINK_QUEUE);
        let name = spec.name.clone();
        let reader_tx = in_tx.clone();
        let reader = tokio::spawn(async move {
            let mut pending = events;
            loop {
                for ev in pending.drain(..) {
                    if !ev.is_message() || ev.data.is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Message>(&ev.data) {
                        Ok(m) => {
                            if !emit(&reader_tx, m, None).await {
                                return;
                            }
                        }
                        Err(_) => {
                            tracing::warn!(server.name = %name, "upstream SSE event is not JSON-RPC; ignored")
                        }
                    }
                }
                match body.next().await {
                    Some(Ok(chunk)) => {
                        if parser.feed(&chunk, &mut pending).is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let _ = reader_tx
                .send(LinkEvent::Closed {
                    reason: "upstream SSE stream ended".into(),
                })
                .await;
        });
        let client = self.client.clone();
        let writer_tx = in_tx;
        tokio::spawn(async move {
            let shared = Arc::new((client, endpoint, headers));
            while let Some(msg) = out_rx.recv().await {
                let shared = Arc::clone(&shared);
                let events = writer_tx.clone();
                tokio::spawn(async move {
                    let (client, endpoint, headers) = &*shared;
                    let id = match &msg {
                        Message::Request(r) => Some(r.id.clone()),
                        _ => None,
                    };
                    let Ok(body) = serde_json::to_vec(&msg) else {
                        return;
                    };
                    let mut h: HeaderMap = headers.clone();
                    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    let ok = client
                        .post(endpoint.clone())
                        .headers(h)
                        .body(body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok && let Some(id) = id {
                        let _ = emit(
                            &events,
                            error_reply(id, codes::UPSTREAM_UNAVAILABLE, "upstream server unavailable"),
                            None,
                        )
                        .await;
                    }
                });
            }
            reader.abort();
        });
        Ok(Link {
            tx: LinkTx::channel(out_tx),
            rx: in_rx,
            pid: None,
            inbox: None,
        })
    }
}
