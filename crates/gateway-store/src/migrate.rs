//! Schema migrations, embedded per backend from `migrations/sqlite` and `migrations/postgres`
//! (the same directory names in both: one logical change each).
//!
//! These functions are **synchronous** and block the calling thread. Call them before building
//! the tokio runtime (the api binary does), or from a plain thread. PostgreSQL migrations run on
//! a thread of their own with a private single-threaded runtime (diesel-async's
//! `AsyncConnectionWrapper`), so calling them from inside a runtime does not panic, but it does
//! block that runtime's thread until they finish.
//!
//! Concurrent callers (several replicas starting at once) are serialized: SQLite migrates inside
//! one `IMMEDIATE` transaction, PostgreSQL under a session advisory lock, and each computes
//! what is pending only once it holds the lock. Consequences for migration authors: a SQLite
//! migration always runs inside that transaction (so it cannot toggle `PRAGMA foreign_keys`;
//! foreign keys are off on the migrating connection), while a PostgreSQL migration may opt out
//! of its own transaction with diesel's `metadata.toml` (`run_in_transaction = false`) for
//! `CREATE INDEX CONCURRENTLY`.
//!
//! Database URLs may carry passwords: nothing here logs or formats them into errors.

use std::collections::HashSet;
use std::path::Path;

use diesel::backend::Backend;
use diesel::connection::SimpleConnection;
use diesel::migration::{Migration, MigrationSource, MigrationVersion};
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use gateway_types::config::DatabaseBackend;
use gateway_types::error::BoxError;

/// The SQLite migrations.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
/// The PostgreSQL migrations.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// How long a migrating SQLite connection waits for another writer.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 30_000;
/// Advisory lock key serializing PostgreSQL migrations ("gwmigrat").
const PG_MIGRATION_LOCK: i64 = 0x6777_6d69_6772_6174;

/// One migration and whether the database has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationState {
    /// Directory name, e.g. `2026-11-24-000001_tenancy`. An applied version unknown to this
    /// build is listed by its version with the suffix ` (unknown to this build)`.
    pub name: String,
    /// Applied to the database.
    pub applied: bool,
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The URL names no supported backend.
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
    /// No connection.
    #[error("cannot connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    /// A migration, or the bookkeeping around it, failed.
    #[error("migration failed")]
    Migration(#[source] BoxError),
    /// The PostgreSQL migration thread panicked.
    #[error("the migration thread panicked")]
    Panicked,
}

impl From<diesel::result::Error> for MigrateError {
    fn from(err: diesel::result::Error) -> Self {
        Self::Migration(Box::new(err))
    }
}

/// Applies every pending migration, oldest first; returns the names applied.
///
/// # Errors
/// See [`MigrateError`]. Migrations applied before a failing one stay applied.
pub fn run_pending(url: &str) -> Result<Vec<String>, MigrateError> {
    with_harness(url, |h| h.apply_pending())
}

/// Reverts the `n` most recent migrations (fewer if fewer are applied); returns the names
/// reverted, newest first.
///
/// # Errors
/// See [`MigrateError`].
pub fn revert(url: &str, n: usize) -> Result<Vec<String>, MigrateError> {
    with_harness(url, |h| h.revert(n))
}

/// Every migration known to this build, oldest first, with whether it is applied; then any
/// applied version this build does not know.
///
/// # Errors
/// See [`MigrateError`].
pub fn status(url: &str) -> Result<Vec<MigrationState>, MigrateError> {
    with_harness(url, |h| h.status())
}

/// Reverts every applied migration, then applies all; returns the names applied.
/// Destroys all data.
///
/// # Errors
/// See [`MigrateError`].
pub fn reset(url: &str) -> Result<Vec<String>, MigrateError> {
    with_harness(url, |h| {
        let applied = h.status()?.iter().filter(|m| m.applied).count();
        h.revert(applied)?;
        h.apply_pending()
    })
}

/// The names of the migrations of a backend, oldest first.
///
/// # Errors
/// The embedded migrations cannot be listed (a build problem).
pub fn names(backend: DatabaseBackend) -> Result<Vec<String>, MigrateError> {
    fn list<DB: Backend>(source: &EmbeddedMigrations) -> Result<Vec<String>, MigrateError> {
        let mut migrations = MigrationSource::<DB>::migrations(source).map_err(MigrateError::Migration)?;
        migrations.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
        Ok(migrations.iter().map(|m| m.name().to_string()).collect())
    }
    match backend {
        DatabaseBackend::Sqlite => list::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS),
        DatabaseBackend::Postgres => list::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS),
    }
}

/// A connection and its backend's migrations, with the operations all commands share.
struct Harness<'c, C, DB: Backend> {
    conn: &'c mut C,
    source: &'static EmbeddedMigrations,
    _backend: std::marker::PhantomData<DB>,
}

impl<C, DB> Harness<'_, C, DB>
where
    DB: Backend,
    C: MigrationHarness<DB>,
{
    fn sorted_source(&self) -> Result<Vec<Box<dyn Migration<DB>>>, MigrateError> {
        let mut migrations =
            MigrationSource::<DB>::migrations(self.source).map_err(MigrateError::Migration)?;
        migrations.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
        Ok(migrations)
    }

    fn apply_pending(&mut self) -> Result<Vec<String>, MigrateError> {
        let pending = self
            .conn
            .pending_migrations(Source(self.source))
            .map_err(MigrateError::Migration)?;
        let mut names = Vec::with_capacity(pending.len());
        for migration in pending {
            self.conn
                .run_migration(migration.as_ref())
                .map_err(MigrateError::Migration)?;
            names.push(migration.name().to_string());
        }
        Ok(names)
    }

    fn revert(&mut self, n: usize) -> Result<Vec<String>, MigrateError> {
        let source = self.sorted_source()?;
        let mut names = Vec::new();
        for _ in 0..n {
            if self
                .conn
                .applied_migrations()
                .map_err(MigrateError::Migration)?
                .is_empty()
            {
                break;
            }
            let version = self
                .conn
                .revert_last_migration(Source(self.source))
                .map_err(MigrateError::Migration)?;
            names.push(name_of(&source, &version));
        }
        Ok(names)
    }

    fn status(&mut self) -> Result<Vec<MigrationState>, MigrateError> {
        let source = self.sorted_source()?;
        let applied: HashSet<String> = self
            .conn
            .applied_migrations()
            .map_err(MigrateError::Migration)?
            .into_iter()
            .map(|v| v.to_string())
            .collect();
        let known: HashSet<String> = source.iter().map(|m| m.name().version().to_string()).collect();
        let mut states: Vec<MigrationState> = source
            .iter()
            .map(|m| MigrationState {
                name: m.name().to_string(),
                applied: applied.contains(&m.name().version().to_string()),
            })
            .collect();
        let mut unknown: Vec<&String> = applied.iter().filter(|v| !known.contains(*v)).collect();
        unknown.sort();
        states.extend(unknown.into_iter().map(|v| MigrationState {
            name: format!("{v} (unknown to this build)"),
            applied: true,
        }));
        Ok(states)
    }
}

/// Borrows the embedded migrations where diesel wants a source by value.
struct Source(&'static EmbeddedMigrations);

impl<DB: Backend> MigrationSource<DB> for Source {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        MigrationSource::<DB>::migrations(self.0)
    }
}

fn name_of<DB: Backend>(source: &[Box<dyn Migration<DB>>], version: &MigrationVersion<'_>) -> String {
    source
        .iter()
        .find(|m| m.name().version() == *version)
        .map_or_else(|| version.to_string(), |m| m.name().to_string())
}

/// Connects to `url`, takes the migration lock and runs `f`.
fn with_harness<T: Send>(
    url: &str,
    f: impl for<'c> Fn(&mut dyn HarnessOps) -> Result<T, MigrateError> + Send + Sync,
) -> Result<T, MigrateError> {
    match DatabaseBackend::from_url(url).map_err(|issue| MigrateError::UnsupportedUrl(issue.message))? {
        DatabaseBackend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap_or_default();
            if path.is_empty() {
                return Err(MigrateError::UnsupportedUrl(
                    "expected sqlite://<path>".to_owned(),
                ));
            }
            crate::sqlite::create_parent_dir(Path::new(path))
                .map_err(|(path, source)| MigrateError::CreateDir { path, source })?;
            let mut conn = SqliteConnection::establish(path).map_err(MigrateError::Connect)?;
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL;"
            ))?;
            conn.immediate_transaction(|conn| {
                let mut harness = Harness::<_, diesel::sqlite::Sqlite> {
                    conn,
                    source: &SQLITE_MIGRATIONS,
                    _backend: std::marker::PhantomData,
                };
                f(&mut harness)
            })
        }
        DatabaseBackend::Postgres => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // A thread without a runtime: the wrapper builds its own.
                    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
                        .map_err(MigrateError::Connect)?;
                    diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))
                        .execute(&mut conn)?;
                    let result = {
                        let mut harness = Harness::<_, diesel::pg::Pg> {
                            conn: &mut conn,
                            source: &POSTGRES_MIGRATIONS,
                            _backend: std::marker::PhantomData,
                        };
                        f(&mut harness)
                    };
                    // Closing the connection would release the lock too; unlock explicitly
                    // so a failure here is visible.
                    diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))
                        .execute(&mut conn)?;
                    result
                })
                .join()
                .unwrap_or(Err(MigrateError::Panicked))
        }),
    }
}

/// The backend-independent operations, as an object so `with_harness` takes one closure.
trait HarnessOps {
    fn apply_pending(&mut self) -> Result<Vec<String>, MigrateError>;
    fn revert(&mut self, n: usize) -> Result<Vec<String>, MigrateError>;
    fn status(&mut self) -> Result<Vec<MigrationState>, MigrateError>;
}

impl<C, DB> HarnessOps for Harness<'_, C, DB>
where
    DB: Backend,
    C: MigrationHarness<DB>,
{
    fn apply_pending(&mut self) -> Result<Vec<String>, MigrateError> {
        Harness::apply_pending(self)
    }
    fn revert(&mut self, n: usize) -> Result<Vec<String>, MigrateError> {
        Harness::revert(self, n)
    }
    fn status(&mut self) -> Result<Vec<MigrationState>, MigrateError> {
        Harness::status(self)
    }
}
