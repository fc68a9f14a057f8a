//! The SQLite backend: diesel's `SqliteConnection` behind diesel-async's
//! `SyncConnectionWrapper` (queries run on tokio's blocking pool) and a deadpool pool.
//!
//! Every new connection sets `busy_timeout` (from configuration), `journal_mode=WAL`,
//! `synchronous=NORMAL` and `foreign_keys=ON`. Write transactions begin `IMMEDIATE`: they take
//! the write lock up front, so a writer waits (up to `busy_timeout`) for another instead of
//! failing with `SQLITE_BUSY` when a deferred read transaction tries to upgrade. This holds
//! across processes (api and worker on one file) too. Reads need no transaction (WAL readers
//! never block).

#[rustfmt::skip]
pub(crate) mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::dsl::sql;
use diesel::sql_types::{Bool, Text};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway_types::config::DatabaseConfig;
use gateway_types::store::StoreError;
use secrecy::ExposeSecret;

use crate::checkout::Checkout;
use crate::error::{ConnectError, DbError, DbResult};
use crate::types::DbUuid;

type Backend = diesel::sqlite::Sqlite;
type Conn = SyncConnectionWrapper<SqliteConnection>;
type Store = SqliteStore;
const BACKEND_NAME: &str = "sqlite";

/// The SQLite implementation of every storage trait.
///
/// Only binaries and tests name this type; everything else sees the traits through
/// [`gateway_types::store::Stores`] ([`SqliteStore::into_stores`]).
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Conn>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if missing) the SQLite file named by
    /// `cfg.url` (`sqlite://<path>`, relative paths from the working directory). Does not
    /// migrate: run [`crate::migrate::run_pending`] first.
    ///
    /// # Errors
    /// A URL that is not `sqlite://…`, a directory that cannot be created, or a file that
    /// cannot be opened.
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Self, ConnectError> {
        let url = cfg.url.expose_secret();
        let path = url
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ConnectError::UnsupportedUrl("expected sqlite://<path>".to_owned()))?
            .to_owned();
        create_parent_dir(Path::new(&path))
            .map_err(|(path, source)| ConnectError::CreateDir { path, source })?;

        let busy_timeout_ms = cfg.sqlite_busy_timeout_ms;
        let runtime = tokio::runtime::Handle::try_current().map_err(ConnectError::NoRuntime)?;
        let mut manager = ManagerConfig::<Conn>::default();
        // A file cannot go stale under us: recycling checks only for an open transaction.
        manager.recycling_method = RecyclingMethod::Fast;
        manager.custom_setup = Box::new(move |path| {
            let path = path.to_owned();
            // Connections are opened on the runtime that built the store, so their blocking
            // work never depends on a short-lived runtime of whoever asked first.
            let opened = runtime.spawn(establish(path, busy_timeout_ms));
            Box::pin(async move {
                opened.await.map_err(|e| {
                    diesel::ConnectionError::BadConnection(format!("connect task failed: {e}"))
                })?
            })
        });
        let max_lifetime = Duration::from_secs(cfg.max_lifetime_seconds);
        let pool = Pool::builder(AsyncDieselConnectionManager::new_with_config(path, manager))
            .max_size(usize::try_from(cfg.max_connections).unwrap_or(usize::MAX).max(1))
            .wait_timeout(Some(Duration::from_secs(cfg.acquire_timeout_seconds)))
            .create_timeout(Some(Duration::from_secs(cfg.connect_timeout_seconds)))
            .recycle_timeout(Some(Duration::from_secs(cfg.connect_timeout_seconds)))
            .runtime(deadpool::Runtime::Tokio1)
            .pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.age() > max_lifetime {
                    Err(HookError::message("connection reached its maximum lifetime"))
                } else {
                    Ok(())
                }
            }))
            .build()
            .map_err(ConnectError::Pool)?;
        let store = Self { pool };
        // Open one connection now: a bad path fails at start, not at the first request.
        drop(
            store
                .conn()
                .await
                .map_err(|e| ConnectError::Connect(StoreError::from(e)))?,
        );
        Ok(store)
    }

    async fn conn(&self) -> DbResult<Checkout<AsyncDieselConnectionManager<Conn>>> {
        self.pool.get().await.map(Checkout::new).map_err(DbError::Pool)
    }
}

/// Creates the directory of the database file when missing.
pub(crate) fn create_parent_dir(path: &Path) -> Result<(), (std::path::PathBuf, std::io::Error)> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))
        }
        _ => Ok(()),
    }
}

/// The per-connection settings, in order: wait for locks first (switching to WAL needs the
/// lock), then WAL, then durability, then referential integrity.
pub(crate) fn connection_pragmas(busy_timeout_ms: u64) -> String {
    format!(
        "PRAGMA busy_timeout = {busy_timeout_ms}; PRAGMA journal_mode = WAL; \
         PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
    )
}

async fn establish(path: String, busy_timeout_ms: u64) -> diesel::ConnectionResult<Conn> {
    let mut conn = Conn::establish(&path).await?;
    conn.batch_execute(&connection_pragmas(busy_timeout_ms))
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Runs `$f` (an `async move |c| -> DbResult<_>` closure) in an `IMMEDIATE` transaction.
macro_rules! write_tx {
    ($store:expr, $f:expr) => {{
        let mut checkout = $store.conn().await?;
        let result = checkout.conn()?.immediate_transaction::<_, DbError, _>($f).await;
        checkout.finish();
        result
    }};
}

/// Inserts the rows of a slice. diesel's multi-row `INSERT` for SQLite is implemented for the
/// synchronous connection only, so rows go one by one (inside the caller's transaction, that
/// costs little).
macro_rules! insert_many {
    ($c:expr, $table:expr, $rows:expr) => {{
        for row in $rows {
            diesel::insert_into($table).values(row).execute(&mut *$c).await?;
        }
    }};
}

/// The organization's audit chain head. The `IMMEDIATE` transaction already holds SQLite's
/// single write lock, which serializes appends.
async fn lock_chain_head(c: &mut Conn, org: DbUuid) -> DbResult<(i64, String)> {
    use schema::audit_chain_heads as h;
    h::table
        .filter(h::org_id.eq(org))
        .select((h::last_seq, h::last_hash))
        .first(c)
        .await
        .optional()?
        .ok_or(DbError::NotFound)
}

/// The organization's `max_servers`. The `IMMEDIATE` transaction already holds SQLite's single
/// write lock, which serializes creates.
async fn lock_organization(c: &mut Conn, org: DbUuid) -> DbResult<i32> {
    use schema::organizations as o;
    o::table
        .filter(o::id.eq(org))
        .select(o::max_servers)
        .first(c)
        .await
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Every server's roll-up mark (the write lock is already held).
async fn lock_roll_up_marks(c: &mut Conn) -> DbResult<Vec<(DbUuid, Option<crate::types::DbTime>)>> {
    use schema::server_stats as s;
    Ok(s::table.select((s::server_id, s::rolled_up_to)).load(c).await?)
}

/// Job locks of this process (a SQLite database serves one node).
fn job_locks(_store: &std::sync::Arc<Store>) -> std::sync::Arc<dyn gateway_types::store::JobLocks> {
    std::sync::Arc::new(crate::job_locks::MemoryJobLocks::new())
}

/// Change-log ids already follow commit order: SQLite has one writer at a time.
async fn serialize_changes(_c: &mut Conn) -> DbResult<()> {
    Ok(())
}

/// Servers whose JSON `tags` array contains `tag`.
fn filter_tag(
    q: schema::mcp_servers::BoxedQuery<'static, Backend>,
    tag: String,
) -> schema::mcp_servers::BoxedQuery<'static, Backend> {
    q.filter(
        sql::<Bool>("EXISTS (SELECT 1 FROM json_each(\"mcp_servers\".\"tags\") WHERE json_each.value = ")
            .bind::<Text, _>(tag)
            .sql(")"),
    )
}

mod imp {
    include!("../shared/prelude.rs");
    include!("../shared/rows.rs");
    include!("../shared/stores.rs");
}
