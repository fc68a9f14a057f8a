//! WebSocket upstreams: one JSON-RPC message per text frame, subprotocol `mcp`.
//!
//! Not built yet: connecting to a `ws` server answers with a configuration error that names
//! the gap (tracked in issue 5's closing note), never a silent failure.

use async_trait::async_trait;

use crate::error::TransportError;
use crate::link::{Connector, Link, UpstreamSpec};

/// The WebSocket connector.
#[derive(Clone, Debug, Default)]
pub struct WsConnector;

#[async_trait]
impl Connector for WsConnector {
    async fn connect(&self, _spec: &UpstreamSpec) -> Result<Link, TransportError> {
        Err(TransportError::Config(
            "WebSocket upstreams are not supported yet".into(),
        ))
    }
}
