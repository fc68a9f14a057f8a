//! One health check of one server.
//!
//! - A server with a `health_check_url`: `GET` it (no credentials); any 2xx within the timeout
//!   is healthy.
//! - Otherwise the MCP handshake over the server's own transport, through the same connectors
//!   the gateway proxies with: `initialize`, `notifications/initialized`, `ping`; both answered
//!   (not with an error) within the timeout is healthy. A stdio server is started for it and
//!   stopped afterwards (the worker runs in its own process and cannot see the api's processes).
//!
//! Failure texts are the gateway's own words ("cannot connect", "timed out after 10 s",
//! "initialize answered error -32603"): an upstream's error text is never stored.

use std::time::{Duration, Instant};

use gateway_transport::link::{Connectors, LinkEvent, UpstreamSpec};
use gateway_types::jsonrpc::{Message, Notification, Request, RequestId, Version};
use gateway_types::model::HealthStatus;
use serde_json::{Map, json};

/// The protocol revision the check offers in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Healthy or unhealthy.
    pub status: HealthStatus,
    /// Time to the answer (or to the failure).
    pub latency: Duration,
    /// Why it failed, in the gateway's words.
    pub error: Option<String>,
}

impl CheckOutcome {
    fn healthy(latency: Duration) -> Self {
        Self {
            status: HealthStatus::Healthy,
            latency,
            error: None,
        }
    }

    fn failed(latency: Duration, why: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            latency,
            error: Some(why.into()),
        }
    }
}

/// Runs checks: the upstream connectors and an HTTP client for health URLs.
#[derive(Clone, Debug)]
pub struct Checker {
    connectors: Connectors,
    http: reqwest::Client,
    timeout: Duration,
}

impl Checker {
    /// A checker whose checks fail after `timeout`.
    #[must_use]
    pub fn new(connectors: Connectors, http: reqwest::Client, timeout: Duration) -> Self {
        Self {
            connectors,
            http,
            timeout,
        }
    }

    /// Checks a server: its `health_check_url` when it has one, the MCP handshake otherwise.
    pub async fn check(&self, spec: &UpstreamSpec, health_check_url: Option<&str>) -> CheckOutcome {
        let started = Instant::now();
        let run = async {
            match health_check_url {
                Some(url) => self.http_check(url).await,
                None => self.mcp_check(spec).await,
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(())) => CheckOutcome::healthy(started.elapsed()),
            Ok(Err(why)) => CheckOutcome::failed(started.elapsed(), why),
            Err(_) => CheckOutcome::failed(
                started.elapsed(),
                format!("no answer within {} s", self.timeout.as_secs()),
            ),
        }
    }

    async fn http_check(&self, url: &str) -> Result<(), String> {
        let res = self.http.get(url).send().await.map_err(|e| {
            if e.is_connect() {
                "cannot connect to the health URL"
            } else {
                "the health URL request failed"
            }
            .to_owned()
        })?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the health URL answered HTTP {}", status.as_u16()))
        }
    }

    async fn mcp_check(&self, spec: &UpstreamSpec) -> Result<(), String> {
        let mut link = self
            .connectors
            .for_protocol(spec.protocol)
            .connect(spec)
            .await
            .map_err(|e| {
                tracing::debug!(server.id = %spec.server_id, error = %e, "health check cannot connect");
                "cannot connect".to_owned()
            })?;
        let init = Message::Request(Request {
            jsonrpc: Version,
            id: RequestId::Number(1),
            method: "initialize".into(),
            params: Some(json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-gateway-health", "version": env!("CARGO_PKG_VERSION")},
            })),
            extra: Map::new(),
        });
        exchange(&mut link, init, 1, "initialize").await?;
        let initialized = Message::Notification(Notification {
            jsonrpc: Version,
            method: "notifications/initialized".into(),
            params: None,
            extra: Map::new(),
        });
        link.tx
            .send(initialized)
            .await
            .map_err(|_| "the connection closed".to_owned())?;
        let ping = Message::Request(Request {
            jsonrpc: Version,
            id: RequestId::Number(2),
            method: "ping".into(),
            params: None,
            extra: Map::new(),
        });
        exchange(&mut link, ping, 2, "ping").await
        // Dropping the link closes it: the process is stopped, the HTTP session deleted.
    }
}

/// Sends `request` and waits for the answer with `id`, skipping anything else the server sends.
async fn exchange(
    link: &mut gateway_transport::link::Link,
    request: Message,
    id: i64,
    what: &str,
) -> Result<(), String> {
    link.tx
        .send(request)
        .await
        .map_err(|_| "the connection closed".to_owned())?;
    loop {
        match link.rx.recv().await {
            None | Some(LinkEvent::Closed { .. }) => {
                return Err(format!("the connection closed before {what} was answered"));
            }
            Some(LinkEvent::Exited { .. }) => {
                return Err(format!("the process exited before {what} was answered"));
            }
            Some(LinkEvent::Message { message, .. }) => match message {
                Message::Response(r) if r.id == RequestId::Number(id) => return Ok(()),
                Message::Error(e) if e.id == Some(RequestId::Number(id)) => {
                    return Err(format!("{what} answered error {}", e.error.code));
                }
                _ => {}
            },
        }
    }
}
