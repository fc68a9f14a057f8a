//! Migrations and schema: both backends have the same migrations and the same logical schema,
//! every migration reverts cleanly, and every tenant table is scoped by `org_id`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use gateway_store::migrate;
use gateway_types::config::DatabaseBackend;

use crate::harness::TestDb;

/// Tables that are not tenant-owned, and why.
const NOT_TENANT_OWNED: &[(&str, &str)] = &[("organizations", "the tenant itself")];
/// Tenant tables without a foreign key to `organizations`, and why.
const NO_ORG_FOREIGN_KEY: &[(&str, &str)] = &[(
    "change_log",
    "the record of an organization's deletion must outlive the organization",
)];

fn migrations_dir(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend)
}

fn dir_names(backend: &str) -> BTreeSet<String> {
    std::fs::read_dir(migrations_dir(backend))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = dir_names("sqlite");
    let postgres = dir_names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "one logical change = the same directory name in both folders"
    );
    for backend in ["sqlite", "postgres"] {
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                assert!(
                    migrations_dir(backend).join(name).join(file).is_file(),
                    "{backend}/{name}/{file} missing"
                );
            }
        }
    }
    let embedded = migrate::names(DatabaseBackend::Sqlite).unwrap();
    assert_eq!(
        embedded,
        sqlite.iter().cloned().collect::<Vec<_>>(),
        "the build embeds the current files"
    );
    assert_eq!(migrate::names(DatabaseBackend::Postgres).unwrap(), embedded);
}

// ---------------------------------------------------------------------------------------------
// Introspection

#[derive(QueryableByName)]
struct Row1 {
    #[diesel(sql_type = Text)]
    a: String,
}

#[derive(QueryableByName)]
struct Row3 {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Nullable<Text>)]
    c: Option<String>,
}

/// A SQL connection to a test database, of either backend (PostgreSQL through the synchronous
/// wrapper, so only on a plain thread: see [`blocking`]).
enum Sql {
    Sqlite(SqliteConnection),
    Pg(Box<AsyncConnectionWrapper<AsyncPgConnection>>),
}

impl Sql {
    fn open(url: &str) -> Self {
        match url.strip_prefix("sqlite://") {
            Some(path) => Self::Sqlite(SqliteConnection::establish(path).unwrap()),
            None => Self::Pg(Box::new(AsyncConnectionWrapper::establish(url).unwrap())),
        }
    }

    fn strings(&mut self, sql: &str) -> Vec<String> {
        let rows: Vec<Row1> = match self {
            Self::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
            Self::Pg(c) => diesel::sql_query(sql).load(c.as_mut()).unwrap(),
        };
        rows.into_iter().map(|r| r.a).collect()
    }

    fn triples(&mut self, sql: &str) -> Vec<(String, String, Option<String>)> {
        let rows: Vec<Row3> = match self {
            Self::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
            Self::Pg(c) => diesel::sql_query(sql).load(c.as_mut()).unwrap(),
        };
        rows.into_iter().map(|r| (r.a, r.b, r.c)).collect()
    }
}

/// Runs `f` on a thread without a tokio runtime (the synchronous PostgreSQL wrapper and the
/// migration functions need one).
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

const SQLITE_TABLES: &str = "SELECT name AS a FROM sqlite_master WHERE type = 'table' \
     AND name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations' ORDER BY name";
const PG_TABLES: &str = "SELECT table_name::text AS a FROM information_schema.tables WHERE table_schema = 'public' \
     AND table_type = 'BASE TABLE' AND table_name <> '__diesel_schema_migrations' ORDER BY 1";

fn tables(sql: &mut Sql) -> Vec<String> {
    match sql {
        Sql::Sqlite(_) => sql.strings(SQLITE_TABLES),
        Sql::Pg(_) => sql.strings(PG_TABLES),
    }
}

/// `(table, column, "NULL" | "NOT NULL")` of every column.
fn columns(sql: &mut Sql) -> BTreeSet<(String, String, String)> {
    let rows = match sql {
        Sql::Sqlite(_) => sql.triples(
            "SELECT m.name AS a, p.name AS b, CASE WHEN p.\"notnull\" = 1 THEN 'NOT NULL' ELSE 'NULL' END AS c \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' \
             AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'",
        ),
        Sql::Pg(_) => sql.triples(
            "SELECT table_name::text AS a, column_name::text AS b, \
             CASE WHEN is_nullable = 'NO' THEN 'NOT NULL' ELSE 'NULL' END AS c \
             FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name <> '__diesel_schema_migrations'",
        ),
    };
    rows.into_iter()
        .map(|(t, c, n)| (t, c, n.unwrap_or_default()))
        .collect()
}

/// Everything that defines the schema, as sorted text.
fn dump(sql: &mut Sql) -> Vec<String> {
    let rows = match sql {
        Sql::Sqlite(_) => sql.triples(
            "SELECT type AS a, name AS b, sql AS c FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' AND name <> '__diesel_schema_migrations'",
        ),
        Sql::Pg(_) => sql.triples(
            "SELECT 'column' AS a, table_name || '.' || column_name AS b, \
                    data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity AS c \
               FROM information_schema.columns WHERE table_schema = 'public' \
             UNION ALL \
             SELECT 'index', indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
             UNION ALL \
             SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid) \
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        ),
    };
    let mut out: Vec<String> = rows
        .into_iter()
        .filter(|(_, name, _)| !name.contains("__diesel_schema_migrations"))
        .map(|(kind, name, def)| format!("{kind} {name}: {}", def.unwrap_or_default()))
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Both migrated schemas have the same tables, columns and nullability.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_have_the_same_schema() {
    let sqlite = TestDb::sqlite().await;
    let Some(pg) = TestDb::postgres().await else {
        return;
    };
    let (lite_url, pg_url) = (sqlite.url().to_owned(), pg.url().to_owned());
    let (lite, postgres) = blocking(move || {
        (
            columns(&mut Sql::open(&lite_url)),
            columns(&mut Sql::open(&pg_url)),
        )
    });
    assert!(lite.len() > 100, "{lite:?}");
    let only_sqlite: Vec<_> = lite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&lite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
}

async fn down_and_up_again(db: &TestDb) {
    let url = db.url().to_owned();
    blocking(move || {
        let mut sql = Sql::open(&url);
        let migrated = dump(&mut sql);
        assert!(migrated.len() > 30, "{migrated:#?}");
        let names = migrate::names(if url.starts_with("sqlite") {
            DatabaseBackend::Sqlite
        } else {
            DatabaseBackend::Postgres
        })
        .unwrap();
        assert!(migrate::status(&url).unwrap().iter().all(|m| m.applied));

        let reverted = migrate::revert(&url, 1).unwrap();
        assert_eq!(reverted, names[names.len() - 1..]);
        let status = migrate::status(&url).unwrap();
        assert_eq!(
            status
                .iter()
                .filter(|m| !m.applied)
                .map(|m| m.name.clone())
                .collect::<Vec<_>>(),
            reverted
        );

        let reverted_rest = migrate::revert(&url, usize::MAX).unwrap();
        assert_eq!(reverted_rest.len(), names.len() - 1, "stops when nothing is left");
        assert_eq!(
            tables(&mut sql),
            Vec::<String>::new(),
            "down.sql removes everything up.sql made"
        );
        assert!(migrate::status(&url).unwrap().iter().all(|m| !m.applied));
        assert_eq!(migrate::revert(&url, 1).unwrap(), Vec::<String>::new());

        assert_eq!(migrate::run_pending(&url).unwrap(), names);
        assert_eq!(dump(&mut sql), migrated, "up, down, up gives the same schema");
        assert_eq!(
            migrate::run_pending(&url).unwrap(),
            Vec::<String>::new(),
            "nothing left to apply"
        );

        assert_eq!(migrate::reset(&url).unwrap(), names);
        assert_eq!(dump(&mut sql), migrated);
    });
    // A store opened on the re-created schema works (the test's own pool may hold statements
    // prepared against the dropped tables; resetting a database under a running gateway is
    // not supported).
    let fresh = gateway_store::connect(db.config()).await.unwrap();
    assert_eq!(
        fresh.changes.latest_id().await.unwrap(),
        0,
        "reset emptied the database"
    );
    fresh
        .organizations
        .create(gateway_types::model::NewOrganization {
            name: "after".into(),
            slug: "after".into(),
            plan: gateway_types::model::Plan::Free,
        })
        .await
        .unwrap();
    assert_eq!(fresh.organizations.list().await.unwrap().len(), 1);
}

/// Both generated `schema.rs` files declare exactly the migrated tables and columns (a
/// forgotten `regenerate-schema.sh` fails here). The two logical schemas are equal (see
/// `both_backends_have_the_same_schema`), so the SQLite database is the reference for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_schemas_match_the_migrations() {
    let db = TestDb::sqlite().await;
    let url = db.url().to_owned();
    let migrated: BTreeSet<(String, String)> = blocking(move || columns(&mut Sql::open(&url)))
        .into_iter()
        .map(|(t, c, _)| (t, c))
        .collect();
    for backend in [DatabaseBackend::Sqlite, DatabaseBackend::Postgres] {
        let declared = gateway_store::test_support::declared_columns(backend);
        assert_eq!(
            declared, migrated,
            "{backend:?} schema.rs is out of date: run crates/gateway-store/regenerate-schema.sh"
        );
    }
}

/// Every tenant table has `org_id NOT NULL`, an index led by `org_id` and a foreign key to
/// `organizations` (exemptions above, each with its reason).
async fn tenant_tables_are_scoped_by_org_id(db: &TestDb) {
    let url = db.url().to_owned();
    blocking(move || {
        let mut sql = Sql::open(&url);
        let tables = tables(&mut sql);
        assert_eq!(tables.len(), 19, "{tables:?}");
        let cols = columns(&mut sql);
        let mut problems = Vec::new();
        for table in &tables {
            if NOT_TENANT_OWNED.iter().any(|(t, _)| t == table) {
                continue;
            }
            if !cols.contains(&(table.clone(), "org_id".into(), "NOT NULL".into())) {
                problems.push(format!("{table}: no org_id NOT NULL column"));
            }
            let (index_sql, fk_sql) = match sql {
                Sql::Sqlite(_) => (
                    format!(
                        "SELECT il.name AS a FROM pragma_index_list('{table}') il \
                         JOIN pragma_index_info(il.name) ii WHERE ii.seqno = 0 AND ii.name = 'org_id'"
                    ),
                    format!(
                        "SELECT \"table\" AS a FROM pragma_foreign_key_list('{table}') \
                         WHERE \"table\" = 'organizations' AND \"from\" = 'org_id' AND \"to\" = 'id'"
                    ),
                ),
                Sql::Pg(_) => (
                    format!(
                        "SELECT i.indexrelid::regclass::text AS a FROM pg_index i \
                         JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = i.indkey[0] \
                         WHERE i.indrelid = '{table}'::regclass AND att.attname = 'org_id'"
                    ),
                    format!(
                        "SELECT c.conname::text AS a FROM pg_constraint c \
                         JOIN pg_attribute att ON att.attrelid = c.conrelid AND att.attnum = c.conkey[1] \
                         WHERE c.contype = 'f' AND c.conrelid = '{table}'::regclass \
                         AND c.confrelid = 'organizations'::regclass AND array_length(c.conkey, 1) = 1 \
                         AND att.attname = 'org_id'"
                    ),
                ),
            };
            if sql.strings(&index_sql).is_empty() {
                problems.push(format!("{table}: no index whose first column is org_id"));
            }
            let exempt = NO_ORG_FOREIGN_KEY.iter().any(|(t, _)| t == table);
            match (sql.strings(&fk_sql).is_empty(), exempt) {
                (true, false) => {
                    problems.push(format!("{table}: no foreign key org_id -> organizations(id)"))
                }
                (false, true) => {
                    problems.push(format!("{table}: exempt from the org_id foreign key but has one"))
                }
                _ => {}
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

/// The SQLite file is configured as documented on every pooled connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_are_configured() {
    let db = TestDb::sqlite().await;
    let path = db.url().strip_prefix("sqlite://").unwrap().to_owned();
    // WAL is persistent in the file: a plain connection sees it.
    let mut conn = SqliteConnection::establish(&path).unwrap();
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    let mode: Vec<Mode> = diesel::sql_query("PRAGMA journal_mode").load(&mut conn).unwrap();
    assert_eq!(mode[0].journal_mode, "wal");
    // Foreign keys are enforced through the store (a per-connection setting): a namespace in a
    // missing organization is refused.
    let err = db
        .stores()
        .namespaces
        .create(
            gateway_types::ids::OrgId::new(),
            gateway_types::model::NewNamespace {
                name: "x".into(),
                slug: "x".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await;
    assert!(
        matches!(err, Err(gateway_types::store::StoreError::NotFound)),
        "{err:?}"
    );
    conn.batch_execute("SELECT 1").unwrap();
}

/// A relative `sqlite://` path is created with its directory; other schemes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_picks_the_backend_from_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/gw.db", dir.path().display());
    migrate::run_pending(&url).unwrap();
    let cfg = gateway_types::config::DatabaseConfig {
        url: url.clone().into(),
        ..Default::default()
    };
    let stores = gateway_store::connect(&cfg).await.unwrap();
    assert_eq!(stores.status.backend(), "sqlite");
    stores.status.ping().await.unwrap();

    let bad = gateway_types::config::DatabaseConfig {
        url: "mysql://localhost/x".to_owned().into(),
        ..Default::default()
    };
    let err = gateway_store::connect(&bad).await.unwrap_err();
    assert!(err.to_string().contains("mysql"), "{err}");
    assert!(matches!(
        migrate::run_pending("mysql://x/y"),
        Err(migrate::MigrateError::UnsupportedUrl(_))
    ));
}

/// Counting rows with a 64-bit column reads back on both backends.
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_status_lists_applied_and_pending() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url().to_owned();
    blocking(move || {
        let mut sql = Sql::open(&url);
        let Sql::Pg(conn) = &mut sql else { unreachable!() };
        let applied: Vec<Count> = diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
            .load(conn.as_mut())
            .unwrap();
        assert_eq!(
            applied[0].n as usize,
            migrate::names(DatabaseBackend::Postgres).unwrap().len()
        );
    });
}

crate::harness::contract!(down_and_up_again, tenant_tables_are_scoped_by_org_id);
