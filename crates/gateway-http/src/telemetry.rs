//! Logs: one place builds the subscriber, another installs it (so tests can capture).
//!
//! The filter comes from `RUST_LOG` when set, else `logging.level`. Format is pretty in
//! development and one JSON object per line in production, unless `logging.format` says
//! otherwise. Messages never carry secrets, tokens or bodies. Lines are written by a dedicated
//! thread ([`crate::logwriter`]), never by the thread that logs; [`flush`] before exiting.

use gateway_types::config::{Environment, LogFormat, LoggingConfig};
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::ParseError;
use tracing_subscriber::fmt;

use crate::logwriter::LogWriter;
use tracing_subscriber::layer::SubscriberExt;

/// Errors of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The filter directive does not parse.
    #[error("invalid log filter")]
    Filter(#[from] ParseError),
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing::subscriber::SetGlobalDefaultError),
    /// The log writer thread cannot be started.
    #[error("cannot start the log writer thread")]
    Writer(#[source] std::io::Error),
}

/// Parses an `EnvFilter` directive.
///
/// # Errors
/// A directive that does not parse.
pub fn filter(directive: &str) -> Result<EnvFilter, ParseError> {
    EnvFilter::builder().parse(directive)
}

/// Builds the subscriber without installing it.
///
/// # Errors
/// An invalid filter (from `RUST_LOG` or `logging.level`).
pub fn subscriber(
    cfg: &LoggingConfig,
    env: Environment,
) -> Result<Box<dyn Subscriber + Send + Sync + 'static>, TelemetryError> {
    let directive = std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty());
    let filter = filter(directive.as_deref().unwrap_or(&cfg.level))?;
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => env == Environment::Production,
    };
    let registry = tracing_subscriber::registry().with(filter);
    let writer = log_writer()?;
    Ok(if json {
        Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(writer),
            ),
        )
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Box::new(registry.with(fmt::layer().with_target(true).with_ansi(ansi).with_writer(writer)))
    })
}

/// The process's log writer thread (started on first use).
static LOG_WRITER: std::sync::OnceLock<LogWriter> = std::sync::OnceLock::new();

fn log_writer() -> Result<LogWriter, TelemetryError> {
    if let Some(w) = LOG_WRITER.get() {
        return Ok(w.clone());
    }
    let w = LogWriter::stdout().map_err(TelemetryError::Writer)?;
    Ok(LOG_WRITER.get_or_init(|| w).clone())
}

/// Writes out every log line queued so far (waits at most two seconds): call it before the
/// process exits.
pub fn flush() {
    if let Some(w) = LOG_WRITER.get() {
        w.flush(std::time::Duration::from_secs(2));
    }
}

/// Builds and installs the global subscriber (once per process).
///
/// # Errors
/// An invalid filter, or a subscriber already installed.
pub fn init(cfg: &LoggingConfig, env: Environment) -> Result<(), TelemetryError> {
    let sub = subscriber(cfg, env)?;
    tracing::subscriber::set_global_default(sub)?;
    Ok(())
}

/// The trace id (32 lower-case hex digits, not all zero) of a W3C `traceparent` of version
/// `00`; `None` when the header is not one.
#[must_use]
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    (parts.next().is_none() && version == "00" && hex(trace, 32) && hex(parent, 16) && flags.len() == 2)
        .then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::trace_id_of;

    #[test]
    fn reads_the_trace_id_of_a_valid_traceparent_only() {
        assert_eq!(
            trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "garbage",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }
}
