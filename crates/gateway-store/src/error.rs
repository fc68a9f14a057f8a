//! Errors: the crate-internal [`DbError`] and its single mapping to the public
//! [`StoreError`], plus [`ConnectError`] for building a store.
//!
//! Mapping (the only place that looks at driver errors):
//! - unique violation → `Conflict { what }`, `what` chosen from the table in client-safe words;
//! - foreign-key violation, no row → `NotFound` (the referenced row does not exist);
//! - pool timeout, closed pool, failed connect, lost connection, SQLite "database is locked",
//!   PostgreSQL statement timeout or administrator shutdown → `Unavailable`;
//! - everything else → `Internal`, with the driver error kept as the source for logs.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use gateway_types::error::BoxError;
use gateway_types::model::UnknownVariant;
use gateway_types::store::StoreError;

/// Result of the internal query code.
pub(crate) type DbResult<T> = Result<T, DbError>;

/// What the internal query code can fail with. Converted to [`StoreError`] at the trait
/// boundary (`?` does it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// A query failed.
    #[error("query failed")]
    Query(#[source] DieselError),
    /// No pooled connection could be had.
    #[error("no database connection available")]
    Pool(#[source] diesel_async::pooled_connection::deadpool::PoolError),
    /// A row holds a value the domain model cannot represent.
    #[error("stored row is invalid")]
    Corrupt(#[source] BoxError),
    /// The row does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// A bug in this crate.
    #[error("{0}")]
    Internal(&'static str),
    /// A uniqueness rule the code checks itself (not a constraint) was violated.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// An organization's limit would be exceeded.
    #[error("limit of {limit} {what} reached")]
    Limit {
        /// What is limited.
        what: &'static str,
        /// The limit.
        limit: i64,
    },
}

impl From<DieselError> for DbError {
    fn from(err: DieselError) -> Self {
        Self::Query(err)
    }
}

impl From<UnknownVariant> for DbError {
    fn from(err: UnknownVariant) -> Self {
        Self::Corrupt(Box::new(err))
    }
}

impl From<serde_json::Error> for DbError {
    fn from(err: serde_json::Error) -> Self {
        Self::Corrupt(Box::new(err))
    }
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        use diesel_async::pooled_connection::deadpool::PoolError;
        match err {
            DbError::NotFound => Self::NotFound,
            DbError::Conflict(what) => Self::Conflict {
                what: what.to_owned(),
            },
            DbError::Limit { what, limit } => Self::LimitReached {
                what: what.to_owned(),
                limit,
            },
            DbError::Pool(err @ PoolError::NoRuntimeSpecified) => Self::Internal(Box::new(err)),
            DbError::Pool(err) => Self::Unavailable(Box::new(err)),
            DbError::Corrupt(err) => Self::Internal(err),
            err @ DbError::Internal(_) => Self::Internal(Box::new(err)),
            DbError::Query(err) => from_diesel(err),
        }
    }
}

fn from_diesel(err: DieselError) -> StoreError {
    match &err {
        DieselError::NotFound => StoreError::NotFound,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => StoreError::Conflict {
            what: conflict_words(info.as_ref()).to_owned(),
        },
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => StoreError::NotFound,
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => StoreError::Unavailable(Box::new(err)),
        DieselError::DatabaseError(_, info) if is_transient(info.message()) => {
            StoreError::Unavailable(Box::new(err))
        }
        _ => StoreError::Internal(Box::new(err)),
    }
}

/// Messages of errors that say "try again later" rather than "this is wrong".
fn is_transient(message: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        // SQLite SQLITE_BUSY / SQLITE_LOCKED after busy_timeout.
        "database is locked",
        "database table is locked",
        // PostgreSQL statement_timeout, lock_timeout, pg_cancel_backend.
        "canceling statement due to",
        // PostgreSQL shutdown, pg_terminate_backend, failover.
        "terminating connection",
        "the database system is starting up",
        "the database system is shutting down",
        "connection closed",
    ];
    TRANSIENT.iter().any(|t| message.contains(t))
}

/// Tables with a uniqueness rule a client can hit, and how to name the collision.
const CONFLICT_WORDS: &[(&str, &str)] = &[
    ("organizations", "organization slug"),
    ("namespaces", "namespace slug"),
    ("users", "email"),
    ("api_keys", "api key"),
    ("refresh_tokens", "refresh token"),
    ("mcp_servers", "server name"),
    ("virtual_servers", "virtual server name"),
    ("mcp_sessions", "session id"),
    ("rate_limits", "rate limit name"),
    ("policies", "policy name"),
    ("rate_limit_usage", "rate limit usage"),
    ("audit_logs", "audit record"),
    ("log_index", "log record"),
    ("log_aggregates", "log aggregate"),
    ("health_checks", "health check"),
];

/// The words for a unique violation, from the table it happened in. PostgreSQL reports the
/// table (and a constraint named `<table>_…`); SQLite says `UNIQUE constraint failed: <table>.<column>`.
fn conflict_words(info: &dyn DatabaseErrorInformation) -> &'static str {
    let sqlite_table = info
        .message()
        .split_once("constraint failed: ")
        .and_then(|(_, rest)| rest.split_once('.'))
        .map(|(table, _)| table);
    let table = info.table_name().or(sqlite_table);
    if let Some(table) = table
        && let Some((_, words)) = CONFLICT_WORDS.iter().find(|(t, _)| *t == table)
    {
        return words;
    }
    if let Some(constraint) = info.constraint_name() {
        // Longest table name first: `rate_limit_usage_…` must not match `rate_limits`… nor the reverse.
        let mut best: Option<(&str, &'static str)> = None;
        for (t, words) in CONFLICT_WORDS {
            if constraint.starts_with(&format!("{t}_")) && best.is_none_or(|(b, _)| t.len() > b.len()) {
                best = Some((t, words));
            }
        }
        if let Some((_, words)) = best {
            return words;
        }
    }
    "record"
}

/// Why a store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL names no supported backend (`sqlite://…`, `postgres://…`).
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// The directory of the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database")]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection pool could not be built.
    #[error("cannot build the database connection pool")]
    Pool(#[source] diesel_async::pooled_connection::deadpool::BuildError),
    /// The first connection failed.
    #[error("cannot connect to the database")]
    Connect(#[source] StoreError),
    /// Redis could not be used.
    #[error("cannot connect to Redis")]
    Redis(#[source] BoxError),
    /// `connect` was called outside a tokio runtime.
    #[error("the store must be built inside a tokio runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Info {
        message: &'static str,
        table: Option<&'static str>,
        constraint: Option<&'static str>,
    }

    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            self.table
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    #[test]
    fn conflict_words_come_from_the_table() {
        let sqlite = Info {
            message: "UNIQUE constraint failed: namespaces.org_id, namespaces.slug",
            table: None,
            constraint: None,
        };
        assert_eq!(conflict_words(&sqlite), "namespace slug");
        let pg = Info {
            message: "duplicate key",
            table: Some("users"),
            constraint: Some("users_email_key"),
        };
        assert_eq!(conflict_words(&pg), "email");
        let pg = Info {
            message: "duplicate key",
            table: None,
            constraint: Some("rate_limit_usage_org_id_rule_key_key"),
        };
        assert_eq!(conflict_words(&pg), "rate limit usage");
        let unknown = Info {
            message: "duplicate key",
            table: None,
            constraint: None,
        };
        assert_eq!(conflict_words(&unknown), "record");
    }

    #[test]
    fn store_errors_never_leak_sql() {
        let err: StoreError = DbError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(Info {
                message: "UNIQUE constraint failed: users.email",
                table: None,
                constraint: None,
            }),
        ))
        .into();
        assert_eq!(err.to_string(), "conflict: email already exists");
        let err: StoreError = DbError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(Info {
                message: "database is locked",
                table: None,
                constraint: None,
            }),
        ))
        .into();
        assert!(matches!(err, StoreError::Unavailable(_)));
        let err: StoreError = DbError::Query(DieselError::NotFound).into();
        assert!(matches!(err, StoreError::NotFound));
    }
}
