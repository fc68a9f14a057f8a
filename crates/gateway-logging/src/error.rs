//! The crate's error type.

use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::store::StoreError;

/// Errors of logging and audit operations.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The audit writer task is gone (its runtime shut down); nothing more can be recorded.
    #[error("the audit writer has stopped")]
    AuditWriterStopped,
    /// The request-log writer task is gone.
    #[error("the request-log writer has stopped")]
    RequestLogWriterStopped,
    /// A log sink failed.
    #[error("log sink failure")]
    Sink(#[from] crate::sink::SinkError),
    /// Storage failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

impl From<LoggingError> for GatewayError {
    fn from(err: LoggingError) -> Self {
        match err {
            LoggingError::Store(e) => e.into(),
            e @ (LoggingError::AuditWriterStopped
            | LoggingError::RequestLogWriterStopped
            | LoggingError::Sink(_)) => Self::from_code(ErrorCode::Unavailable).with_source(e),
        }
    }
}
