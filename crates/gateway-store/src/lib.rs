//! # gateway-store
//!
//! Owns the SQL storage of the MCP Gateway: the SQLite (embedded default) and PostgreSQL
//! implementations of every storage trait of [`gateway_types::store`], their connection pools,
//! and the embedded migrations of `migrations/sqlite` and `migrations/postgres` ([`migrate`]).
//!
//! It depends on `gateway-types` only (plus diesel, diesel-async and their drivers) and must not
//! depend on any other workspace crate. Nothing but binaries and tests should name its types:
//! the application sees [`Stores`], a bundle of `Arc<dyn …Store>`.
//!
//! ```no_run
//! use gateway_types::config::DatabaseConfig;
//! use secrecy::SecretString;
//!
//! // Migrations are synchronous: run them before building the tokio runtime.
//! let cfg = DatabaseConfig { url: SecretString::from("sqlite://data/gateway.db"), ..Default::default() };
//! let applied = gateway_store::migrate::run_pending("sqlite://data/gateway.db")?;
//! println!("applied {applied:?}");
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let stores = gateway_store::connect(&cfg).await?;
//!     let orgs = stores.organizations.list().await?;
//!     println!("{} organizations on {}", orgs.len(), stores.status.backend());
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Layout
//! - `sqlite/` and `postgres/`: per backend, the generated `schema.rs` (see `diesel.toml` and
//!   `regenerate-schema.sh`), the pool and the few backend-specific statements;
//! - `shared/`: row structs, row ↔ domain conversion and the trait implementations, written once
//!   and `include!`d into both backend modules (diesel-async has no async `MultiConnection`);
//! - `types.rs`: column types whose SQL type differs per backend (UUID, JSON, timestamps).
//!
//! ## Contracts beyond the trait docs
//! - Every create/update/delete of organizations, namespaces, users, API keys, servers, virtual
//!   servers and rate limits appends a `change_log` row in the same transaction, with `kind`
//!   one of `organization`, `namespace`, `user`, `api_key`, `server`, `virtual_server`,
//!   `rate_limit` and `op` one of `create`, `update`, `delete`. Rows changed by a cascade are
//!   logged too (deleting a namespace logs its deleted keys and its detached servers). Login
//!   bookkeeping, key `last_used_at`, refresh tokens, sessions, logs and health are not
//!   configuration and are not logged. Deleting an organization logs only the organization.
//! - Change-log ids are assigned in commit order on both backends (see `postgres/`).
//! - Timestamps are stored with microsecond precision; values read back equal what the store
//!   returned when writing.
//! - A reference from a tenant row to another (a server's namespace, a key's user, a session's
//!   server…) must be to a row of the same organization, else `NotFound`.
//! - Rotating a refresh token keeps the old token's user and family.
//! - Usage rows whose rule was deleted (or is not the organization's) are kept, unlinked.

mod checkout;
mod convert;
mod error;
pub mod job_locks;
pub mod migrate;
mod postgres;
pub mod shared_state;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;
mod types;

use gateway_types::config::{DatabaseBackend, DatabaseConfig};
pub use gateway_types::store::Stores;

pub use crate::error::ConnectError;
pub use crate::postgres::PgStore;
pub use crate::sqlite::SqliteStore;

/// Builds the stores of the backend named by `cfg.url`'s scheme (`sqlite://` or
/// `postgres://`/`postgresql://`) and opens one connection. Must be called inside a tokio
/// runtime; connections are opened on that runtime. Does not migrate.
///
/// # Errors
/// An unsupported URL scheme, or a store that cannot be opened.
pub async fn connect(cfg: &DatabaseConfig) -> Result<Stores, ConnectError> {
    match cfg
        .backend()
        .map_err(|issue| ConnectError::UnsupportedUrl(issue.message))?
    {
        DatabaseBackend::Sqlite => Ok(SqliteStore::connect(cfg).await?.into_stores()),
        DatabaseBackend::Postgres => Ok(PgStore::connect(cfg).await?.into_stores()),
    }
}

/// [`connect`], plus the shared state on Redis when `redis.url` is set (otherwise the stores'
/// in-memory deny-list stays: a single node needs nothing else).
///
/// # Errors
/// As [`connect`], or Redis configured but not answering.
pub async fn connect_all(
    db: &DatabaseConfig,
    redis: &gateway_types::config::RedisConfig,
) -> Result<Stores, ConnectError> {
    let mut stores = connect(db).await?;
    if redis.url.is_some() {
        stores.denylist = std::sync::Arc::new(shared_state::RedisDenyList::connect(redis).await?);
    }
    Ok(stores)
}
