//! A TCP proxy a test can cut, to cause a real outage of a dependency.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Forwards `127.0.0.1:<port>` to a target until [`TcpProxy::cut`].
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (`host:port`).
    ///
    /// # Panics
    /// The listener cannot be bound.
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&connections);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(task.abort_handle());
            }
        });
        Self {
            address,
            accept,
            connections,
        }
    }

    /// Where clients connect.
    #[must_use]
    pub const fn address(&self) -> SocketAddr {
        self.address
    }

    /// Closes the listener and every open connection: new connections are refused, existing
    /// ones are reset.
    pub fn cut(&self) {
        self.accept.abort();
        for conn in self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            conn.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
