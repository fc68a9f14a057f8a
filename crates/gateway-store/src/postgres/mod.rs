//! The PostgreSQL backend: diesel-async's `AsyncPgConnection` (tokio-postgres; no libpq) and a
//! deadpool pool with acquire and connect timeouts, a per-connection `statement_timeout`, a
//! liveness check on checkout and a maximum connection age.
//!
//! Two PostgreSQL-specific rules of the shared query code:
//! - audit appends lock the organization's chain head row (`SELECT … FOR UPDATE`);
//! - every transaction that appends to `change_log` first takes one transaction-scoped
//!   advisory lock, so change-log ids are assigned in commit order and a poller reading
//!   `id > last seen` can never skip an id that commits late.

#[rustfmt::skip]
pub(crate) mod schema;

use std::time::Duration;

use diesel::dsl::sql;
use diesel::sql_types::{BigInt, Bool, Jsonb};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use gateway_types::config::DatabaseConfig;
use gateway_types::store::{JobLock, JobLocks, StoreError, StoreResult};
use secrecy::ExposeSecret;

use crate::checkout::Checkout;
use crate::error::{ConnectError, DbError, DbResult};
use crate::types::{DbJson, DbUuid};

type Backend = diesel::pg::Pg;
type Conn = AsyncPgConnection;
type Store = PgStore;
const BACKEND_NAME: &str = "postgres";

/// Advisory lock key serializing change-log appends ("gwchange").
const CHANGE_LOG_LOCK: i64 = 0x6777_6368_616e_6765;

/// The PostgreSQL implementation of every storage trait.
///
/// Only binaries and tests name this type; everything else sees the traits through
/// [`gateway_types::store::Stores`] ([`PgStore::into_stores`]).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<Conn>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Builds the pool for `cfg.url` (`postgres://…`) and opens one connection. Does not
    /// migrate: run [`crate::migrate::run_pending`] first.
    ///
    /// # Errors
    /// The pool cannot be built or the first connection fails (timeout included).
    pub async fn connect(cfg: &DatabaseConfig) -> Result<Self, ConnectError> {
        let url = cfg.url.expose_secret().to_owned();
        let connect_timeout = Duration::from_secs(cfg.connect_timeout_seconds);
        let statement_timeout_ms = cfg.statement_timeout_seconds.saturating_mul(1000);
        let runtime = tokio::runtime::Handle::try_current().map_err(ConnectError::NoRuntime)?;
        let mut manager = ManagerConfig::<Conn>::default();
        // A cheap round trip on checkout: connections broken by a server restart are
        // replaced before a query fails on them.
        manager.recycling_method = RecyclingMethod::Verified;
        manager.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            // The connection's driver task is spawned on the runtime that built the store, so
            // it outlives short-lived runtimes of callers (e.g. an HTTP worker's).
            let opened = runtime.spawn(establish(url, connect_timeout, statement_timeout_ms));
            Box::pin(async move {
                opened.await.map_err(|e| {
                    diesel::ConnectionError::BadConnection(format!("connect task failed: {e}"))
                })?
            })
        });
        let max_lifetime = Duration::from_secs(cfg.max_lifetime_seconds);
        let pool = Pool::builder(AsyncDieselConnectionManager::new_with_config(url, manager))
            .max_size(usize::try_from(cfg.max_connections).unwrap_or(usize::MAX).max(1))
            .wait_timeout(Some(Duration::from_secs(cfg.acquire_timeout_seconds)))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
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

async fn establish(
    url: String,
    timeout: Duration,
    statement_timeout_ms: u64,
) -> diesel::ConnectionResult<Conn> {
    let mut conn = tokio::time::timeout(timeout, Conn::establish(&url))
        .await
        .map_err(|_| diesel::ConnectionError::BadConnection(format!("no connection within {timeout:?}")))??;
    conn.batch_execute(&format!("SET statement_timeout = {statement_timeout_ms}"))
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Runs `$f` (an `async move |c| -> DbResult<_>` closure) in a transaction.
macro_rules! write_tx {
    ($store:expr, $f:expr) => {{
        let mut checkout = $store.conn().await?;
        let result =
            <Conn as diesel_async::AsyncConnection>::transaction::<_, DbError, _>(checkout.conn()?, $f).await;
        checkout.finish();
        result
    }};
}

/// Inserts the rows of a slice with one multi-row `INSERT`.
macro_rules! insert_many {
    ($c:expr, $table:expr, $rows:expr) => {{
        diesel::insert_into($table).values($rows).execute($c).await?;
    }};
}

/// Locks and reads the organization's audit chain head until the transaction ends.
async fn lock_chain_head(c: &mut Conn, org: DbUuid) -> DbResult<(i64, String)> {
    use schema::audit_chain_heads as h;
    h::table
        .filter(h::org_id.eq(org))
        .select((h::last_seq, h::last_hash))
        .for_update()
        .first(c)
        .await
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Locks the organization's row until the transaction ends (serializing its server creates,
/// so a count and the insert after it cannot race) and reads its `max_servers`.
async fn lock_organization(c: &mut Conn, org: DbUuid) -> DbResult<i32> {
    use schema::organizations as o;
    o::table
        .filter(o::id.eq(org))
        .select(o::max_servers)
        .for_update()
        .first(c)
        .await
        .optional()?
        .ok_or(DbError::NotFound)
}

/// Every server's roll-up mark, the rows locked until the transaction ends: a concurrent
/// roll-up waits, then reads the marks this one moved.
async fn lock_roll_up_marks(c: &mut Conn) -> DbResult<Vec<(DbUuid, Option<crate::types::DbTime>)>> {
    use schema::server_stats as s;
    Ok(s::table
        .select((s::server_id, s::rolled_up_to))
        .order(s::server_id.asc())
        .for_update()
        .load(c)
        .await?)
}

/// Session-level advisory locks on connections of the store's pool.
fn job_locks(store: &std::sync::Arc<Store>) -> std::sync::Arc<dyn JobLocks> {
    std::sync::Arc::clone(store) as std::sync::Arc<dyn JobLocks>
}

/// A held advisory lock and the connection that holds it.
struct PgJobLock {
    checkout: Option<Checkout<AsyncDieselConnectionManager<Conn>>>,
    key: i64,
}

#[async_trait::async_trait]
impl JobLock for PgJobLock {
    async fn release(mut self: Box<Self>) {
        let Some(mut checkout) = self.checkout.take() else {
            return;
        };
        let unlocked = match checkout.conn() {
            Ok(c) => diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(self.key)
                .execute(c)
                .await
                .is_ok(),
            Err(_) => false,
        };
        if unlocked {
            checkout.finish();
        }
        // Otherwise the checkout is dropped unfinished: its connection closes, and the lock
        // with it.
    }
}

#[async_trait::async_trait]
impl JobLocks for PgStore {
    async fn try_lock(&self, key: &str) -> StoreResult<Option<Box<dyn JobLock>>> {
        let key = crate::job_locks::lock_key(key);
        let mut checkout = self.conn().await?;
        let locked: bool = diesel::select(
            sql::<Bool>("pg_try_advisory_lock(")
                .bind::<BigInt, _>(key)
                .sql(")"),
        )
        .get_result(checkout.conn()?)
        .await
        .map_err(DbError::from)?;
        if locked {
            Ok(Some(Box::new(PgJobLock {
                checkout: Some(checkout),
                key,
            })))
        } else {
            checkout.finish();
            Ok(None)
        }
    }
}

/// Serializes change-log appends until commit (see the module docs).
async fn serialize_changes(c: &mut Conn) -> DbResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(CHANGE_LOG_LOCK)
        .execute(c)
        .await?;
    Ok(())
}

/// Servers whose JSONB `tags` array contains `tag`.
fn filter_tag(
    q: schema::mcp_servers::BoxedQuery<'static, Backend>,
    tag: String,
) -> schema::mcp_servers::BoxedQuery<'static, Backend> {
    q.filter(sql::<Bool>("\"mcp_servers\".\"tags\" @> ").bind::<Jsonb, _>(DbJson(serde_json::json!([tag]))))
}

mod imp {
    include!("../shared/prelude.rs");
    include!("../shared/rows.rs");
    include!("../shared/stores.rs");
}
