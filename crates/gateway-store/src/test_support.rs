//! Per-test databases (feature `test-support`, for tests only; never a default feature).
//!
//! - [`TestDb::sqlite`]: a migrated SQLite file in a temporary directory, removed on drop.
//! - [`TestDb::postgres`]: `None` when `DATABASE_URL` is unset; when it is set the server
//!   must be reachable, or the test fails with a message saying so (a configured backend is
//!   never silently skipped). Each test gets its own database, cloned with
//!   `CREATE DATABASE … TEMPLATE` from a template named after a hash of the PostgreSQL
//!   migration files (migrated once, by whichever test process gets there first, under an
//!   advisory lock), and dropped on drop from a plain thread. Databases left by test processes
//!   that died are swept when a process first needs the template.
//!
//! ```no_run
//! # async fn example() {
//! use gateway_store::test_support::TestDb;
//!
//! let db = TestDb::sqlite().await;
//! let orgs = db.stores().organizations.list().await.unwrap();
//! assert!(orgs.is_empty());
//! if let Some(pg) = TestDb::postgres().await {
//!     pg.stores().status.ping().await.unwrap();
//! }
//! # }
//! ```

#![expect(
    clippy::panic,
    reason = "test helper: a test database that cannot be set up must fail the test loudly"
)]

use std::path::Path;
use std::sync::OnceLock;

use diesel::connection::SimpleConnection;
use diesel::sql_types::Text;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use gateway_types::config::{DatabaseBackend, DatabaseConfig};
use gateway_types::store::Stores;
use secrecy::SecretString;

use crate::migrate;

/// The environment variable naming the PostgreSQL server for tests.
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";

/// Prefix of per-test PostgreSQL databases: `gwt_<pid>_<random>`.
const TEST_DB_PREFIX: &str = "gwt_";
/// Prefix of a template being built: `gw_tpl_tmp_<pid>`.
const TEMPLATE_TMP_PREFIX: &str = "gw_tpl_tmp_";
/// Advisory lock key for template setup ("gwtmplt!").
const TEMPLATE_LOCK: i64 = 0x6777_746d_706c_7421;

/// A database for one test, with its stores. Dropping it deletes the database.
pub struct TestDb {
    config: DatabaseConfig,
    url: String,
    backend: DatabaseBackend,
    stores: Stores,
    _cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[expect(dead_code, reason = "held for its Drop, which removes the directory")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl std::fmt::Debug for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl TestDb {
    /// A fresh, migrated SQLite database in a temporary directory.
    ///
    /// # Panics
    /// If the file cannot be created, migrated or opened.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        migrate::run_pending(&url)
            .unwrap_or_else(|e| panic!("cannot migrate the test SQLite database: {}", chain(&e)));
        let config = test_config(&url);
        let stores = crate::connect(&config)
            .await
            .unwrap_or_else(|e| panic!("cannot open the test SQLite database: {}", chain(&e)));
        Self {
            config,
            url,
            backend: DatabaseBackend::Sqlite,
            stores,
            _cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// A fresh, migrated PostgreSQL database of its own, or `None` when `DATABASE_URL` is unset.
    ///
    /// # Panics
    /// If `DATABASE_URL` is set but the server cannot be reached or the database cannot be
    /// created, migrated or opened.
    pub async fn postgres() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let template = template(&admin_url);
        let name = format!(
            "{TEST_DB_PREFIX}{}_{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            on_plain_thread(move || {
                let mut conn = admin(&admin_url);
                conn.batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""))
                    .unwrap_or_else(|e| panic!("cannot create test database {name} from {template}: {e}"));
            });
        }
        let url = with_database(&admin_url, &name);
        let config = test_config(&url);
        // From here on, `Drop` removes the database even if connecting fails.
        let cleanup = Cleanup::Postgres { admin_url, name };
        let stores = match crate::connect(&config).await {
            Ok(stores) => stores,
            Err(e) => {
                drop(cleanup);
                panic!("cannot open the test PostgreSQL database: {}", chain(&e));
            }
        };
        Some(Self {
            config,
            url,
            backend: DatabaseBackend::Postgres,
            stores,
            _cleanup: cleanup,
        })
    }

    /// The stores of this database.
    #[must_use]
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Its configuration (pool of 8 connections, short timeouts).
    #[must_use]
    pub fn config(&self) -> &DatabaseConfig {
        &self.config
    }

    /// Its URL (`sqlite://…` or `postgres://…`).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend it is.
    #[must_use]
    pub fn backend(&self) -> DatabaseBackend {
        self.backend
    }

    /// Runs one raw SQL statement against this database on a connection of its own, outside
    /// the stores (for tests that tamper with rows behind the application's back), and returns
    /// the number of rows it affected. The statement is written for this [`Self::backend`].
    ///
    /// # Panics
    /// If the connection or the statement fails.
    pub fn execute(&self, sql: &str) -> usize {
        let (url, backend) = (self.url.clone(), self.backend);
        let sql = sql.to_owned();
        on_plain_thread(move || match backend {
            DatabaseBackend::Sqlite => {
                let path = url.strip_prefix("sqlite://").unwrap_or(&url);
                let mut conn = diesel::SqliteConnection::establish(path)
                    .unwrap_or_else(|e| panic!("cannot open the test SQLite database: {e}"));
                conn.batch_execute("PRAGMA busy_timeout = 30000;")
                    .unwrap_or_else(|e| panic!("cannot set busy_timeout: {e}"));
                diesel::sql_query(&sql)
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("raw SQL failed ({sql}): {e}"))
            }
            DatabaseBackend::Postgres => {
                let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)
                    .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL database: {e}"));
                diesel::sql_query(&sql)
                    .execute(&mut conn)
                    .unwrap_or_else(|e| panic!("raw SQL failed ({sql}): {e}"))
            }
        })
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // A plain thread: the synchronous connection wrapper cannot run inside the test's
            // runtime. FORCE ends the pool's connections.
            let dropped = std::thread::spawn(move || {
                AsyncConnectionWrapper::<AsyncPgConnection>::establish(&admin_url)
                    .map_err(|e| e.to_string())?
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .map_err(|e| e.to_string())
            })
            .join();
            match dropped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    eprintln!("warning: could not drop a test database (swept on a later run): {e}")
                }
                Err(_) => eprintln!("warning: the thread dropping a test database panicked"),
            }
        }
    }
}

/// `DATABASE_URL`, if set and not empty.
#[must_use]
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
}

fn test_config(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        max_connections: 8,
        connect_timeout_seconds: 10,
        acquire_timeout_seconds: 30,
        ..DatabaseConfig::default()
    }
}

/// The name of the migrated template database, creating it on first use in this process.
fn template(admin_url: &str) -> String {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    let admin_url = admin_url.to_owned();
    TEMPLATE
        .get_or_init(|| on_plain_thread(move || build_template(&admin_url)))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_template(admin_url: &str) -> Result<String, String> {
    let name = format!("gw_tpl_{}", env!("GATEWAY_STORE_POSTGRES_MIGRATIONS_HASH"));
    let mut conn = admin(admin_url);
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("PostgreSQL test template: cannot {what}: {e}");
    conn.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .map_err(|e| fail("take the lock", &e))?;
    let result = (|| {
        sweep(&mut conn).map_err(|e| fail("sweep old test databases", &e))?;
        if database_names(&mut conn, &name)
            .map_err(|e| fail("list databases", &e))?
            .contains(&name)
        {
            return Ok(name.clone());
        }
        let tmp = format!("{TEMPLATE_TMP_PREFIX}{}", std::process::id());
        // One statement each: several in one batch would form a transaction block.
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{tmp}\" WITH (FORCE)"))
            .map_err(|e| fail("drop a leftover", &e))?;
        conn.batch_execute(&format!("CREATE DATABASE \"{tmp}\""))
            .map_err(|e| fail("create it", &e))?;
        migrate::run_pending(&with_database(admin_url, &tmp)).map_err(|e| fail("migrate it", &chain(&e)))?;
        conn.batch_execute(&format!("ALTER DATABASE \"{tmp}\" RENAME TO \"{name}\""))
            .map_err(|e| fail("rename it", &e))?;
        Ok(name.clone())
    })();
    conn.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .map_err(|e| fail("release the lock", &e))?;
    result
}

/// Drops the test databases and unfinished templates of processes that no longer run.
fn sweep(conn: &mut AsyncConnectionWrapper<AsyncPgConnection>) -> diesel::QueryResult<()> {
    for db in database_names(conn, "")? {
        let Some(rest) = db
            .strip_prefix(TEST_DB_PREFIX)
            .or_else(|| db.strip_prefix(TEMPLATE_TMP_PREFIX))
        else {
            continue;
        };
        let pid = rest.split('_').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))?;
        }
    }
    Ok(())
}

#[derive(QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = Text)]
    datname: String,
}

/// Database names, all (`exact` empty) or the one named `exact`.
fn database_names(
    conn: &mut AsyncConnectionWrapper<AsyncPgConnection>,
    exact: &str,
) -> diesel::QueryResult<Vec<String>> {
    let rows: Vec<DatabaseName> =
        diesel::sql_query("SELECT datname FROM pg_database WHERE $1 = '' OR datname = $1")
            .bind::<Text, _>(exact)
            .load(conn)?;
    Ok(rows.into_iter().map(|r| r.datname).collect())
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

/// A connection to the server's `DATABASE_URL` database; panics with a clear message when the
/// server cannot be reached.
fn admin(admin_url: &str) -> AsyncConnectionWrapper<AsyncPgConnection> {
    AsyncConnectionWrapper::<AsyncPgConnection>::establish(admin_url).unwrap_or_else(|e| {
        panic!(
            "{DATABASE_URL_VAR} is set but PostgreSQL cannot be reached ({e}); start the server or unset \
             {DATABASE_URL_VAR} to run the SQLite tests only"
        )
    })
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let mut parsed =
        url::Url::parse(url).unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is not a valid URL: {e}"));
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Runs `f` on a thread without a tokio runtime and waits for it (propagating a panic).
fn on_plain_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    gateway_types::error::error_chain(err)
}

/// The `(table, column)` pairs declared by a backend's generated `schema.rs`: tests compare
/// them with the migrated database to catch a forgotten `regenerate-schema.sh`.
#[must_use]
pub fn declared_columns(backend: DatabaseBackend) -> std::collections::BTreeSet<(String, String)> {
    use diesel::QueryDsl;

    macro_rules! select_all {
        ($schema:path, $db:ty, $($table:ident),+ $(,)?) => {{
            use $schema as s;
            vec![$(
                diesel::debug_query::<$db, _>(&s::$table::table.select(s::$table::all_columns)).to_string()
            ),+]
        }};
    }
    let queries = match backend {
        DatabaseBackend::Sqlite => select_all!(
            crate::sqlite::schema,
            diesel::sqlite::Sqlite,
            api_keys,
            audit_chain_heads,
            audit_logs,
            change_log,
            health_checks,
            log_aggregates,
            log_index,
            mcp_servers,
            mcp_sessions,
            namespaces,
            organizations,
            policies,
            rate_limit_usage,
            rate_limits,
            refresh_tokens,
            server_catalogs,
            server_stats,
            users,
            virtual_servers
        ),
        DatabaseBackend::Postgres => select_all!(
            crate::postgres::schema,
            diesel::pg::Pg,
            api_keys,
            audit_chain_heads,
            audit_logs,
            change_log,
            health_checks,
            log_aggregates,
            log_index,
            mcp_servers,
            mcp_sessions,
            namespaces,
            organizations,
            policies,
            rate_limit_usage,
            rate_limits,
            refresh_tokens,
            server_catalogs,
            server_stats,
            users,
            virtual_servers
        ),
    };
    // `SELECT "t"."a", "t"."b" FROM "t" -- binds: []` (backticks on SQLite).
    let mut out = std::collections::BTreeSet::new();
    for sql in queries {
        let columns = sql
            .strip_prefix("SELECT ")
            .and_then(|rest| rest.split(" FROM ").next())
            .unwrap_or_default();
        for qualified in columns.split(", ") {
            let unquoted = qualified.replace(['"', '`'], "");
            if let Some((table, column)) = unquoted.split_once('.') {
                out.insert((table.to_owned(), column.to_owned()));
            }
        }
    }
    out
}
