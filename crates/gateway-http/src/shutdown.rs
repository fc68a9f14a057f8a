//! The process's stop signal: SIGINT (Ctrl-C) or SIGTERM.

use std::io;

/// Registers the SIGINT and SIGTERM handlers now and returns a future that resolves on the
/// first of them. Register before binding the listener, so a signal that arrives during
/// start-up stops the process gracefully instead of killing it.
///
/// Must be called inside a tokio runtime.
///
/// # Errors
/// The handlers cannot be registered.
#[cfg(unix)]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "stop signal received");
    })
}

/// Registers the Ctrl-C handler now and returns a future that resolves on it.
///
/// # Errors
/// Never on this platform; the signature matches the Unix one.
#[cfg(not(unix))]
pub fn signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!(signal = "ctrl-c", "stop signal received");
        } else {
            std::future::pending::<()>().await;
        }
    })
}
