//! The two-backend test macro and fixtures shared by the contract cases.

use chrono::{DateTime, Duration, TimeZone, Utc};
pub use gateway_store::test_support::TestDb;
use gateway_types::ids::{NamespaceId, OrgId, UserId};
use gateway_types::model::{
    ApiKey, ApiKeyType, McpServer, Namespace, NewApiKey, NewMcpServer, NewNamespace, NewOrganization,
    NewUser, Organization, Plan, RecordSource, Role, ServerProtocol, ServerStatus, User,
};
use gateway_types::store::StoreError;

/// Generates, for each case `async fn case(db: &TestDb)`, a module with a `sqlite` test and a
/// `postgres` test (which passes without running when `DATABASE_URL` is unset).
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::harness::TestDb::sqlite().await;
                super::$case(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::harness::TestDb::postgres().await {
                    super::$case(&db).await;
                }
            }
        }
    )+};
}
pub(crate) use contract;

/// A fixed, microsecond-precise instant plus `secs` seconds.
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).single().unwrap() + Duration::seconds(secs)
}

/// A unique slug.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn org(db: &TestDb) -> Organization {
    let slug = unique("org");
    db.stores()
        .organizations
        .create(NewOrganization {
            name: slug.clone(),
            slug,
            plan: Plan::Free,
        })
        .await
        .unwrap()
}

pub async fn namespace(db: &TestDb, org: OrgId, slug: &str) -> Namespace {
    db.stores()
        .namespaces
        .create(
            org,
            NewNamespace {
                name: slug.to_uppercase(),
                slug: slug.into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap()
}

pub async fn user(db: &TestDb, org: OrgId, email: &str) -> User {
    db.stores()
        .users
        .create(
            org,
            NewUser {
                email: email.into(),
                name: "U".into(),
                password_hash: "$2b$04$hash".into(),
                role: Role::User,
            },
        )
        .await
        .unwrap()
}

pub fn new_key(hash: &str, user: Option<UserId>, namespace: Option<NamespaceId>) -> NewApiKey {
    NewApiKey {
        user_id: user,
        key_type: if user.is_some() {
            ApiKeyType::User
        } else {
            ApiKeyType::A2a
        },
        name: format!("key {hash}"),
        prefix: "gw_abc".into(),
        key_hash: hash.into(),
        namespace_id: namespace,
        permissions: vec!["servers:read".into(), "tools:call".into()],
        expires_at: Some(at(3600)),
    }
}

pub async fn key(db: &TestDb, org: OrgId, hash: &str, user: Option<UserId>) -> ApiKey {
    db.stores()
        .api_keys
        .create(org, new_key(hash, user, None))
        .await
        .unwrap()
}

pub fn new_server(name: &str) -> NewMcpServer {
    NewMcpServer {
        namespace_id: None,
        name: name.into(),
        description: Some("a server".into()),
        protocol: ServerProtocol::Http,
        url: Some(format!("http://127.0.0.1:9/{name}")),
        command: None,
        args: vec![],
        environment: None,
        credentials: None,
        working_dir: None,
        timeout_seconds: 30,
        max_retries: 2,
        status: ServerStatus::Active,
        health_check_url: None,
        tags: vec![],
        metadata: serde_json::json!({}),
        source: RecordSource::Api,
    }
}

pub async fn server(db: &TestDb, org: OrgId, name: &str) -> McpServer {
    db.stores().servers.create(org, new_server(name)).await.unwrap()
}

/// Asserts a `Conflict` naming `what`.
#[track_caller]
pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { what: got }) => assert_eq!(got, what),
        other => panic!("expected a conflict on {what}, got {other:?}"),
    }
}

/// Asserts `NotFound`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

/// The change-log entries after `after` as `(kind, entity_id, op)`.
pub async fn changes_since(db: &TestDb, after: i64) -> Vec<(String, String, String)> {
    db.stores()
        .changes
        .since(after, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.entity_id, c.op))
        .collect()
}

/// `(kind, entity, op)` with owned strings.
pub fn change(kind: &str, entity: impl ToString, op: &str) -> (String, String, String) {
    (kind.to_owned(), entity.to_string(), op.to_owned())
}
