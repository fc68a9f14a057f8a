//! The crate's error type.

use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::store::StoreError;

/// Errors of logging and audit operations.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The audit writer task is gone (its runtime shut down); nothing more can be recorded.
    #[error("the audit writer has stopped")]
    AuditWriterStopped,
    /// Storage failed.
    #[error("store failure")]
    Store(#[from] StoreError),
}

impl From<LoggingError> for GatewayError {
    fn from(err: LoggingError) -> Self {
        match err {
            LoggingError::Store(e) => e.into(),
            e @ LoggingError::AuditWriterStopped => Self::from_code(ErrorCode::Unavailable).with_source(e),
        }
    }
}
