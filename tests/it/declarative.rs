//! Namespaces and servers declared in configuration, reconciled into the store each time the
//! gateway starts (SQLite, and PostgreSQL when `DATABASE_URL` is set): created, left alone when
//! unchanged, updated, removed when gone from the file; records created through the API are
//! never touched; declared records cannot be changed through the API.

use gateway_auth::sealing::Sealer;
use gateway_e2e::TestApp;
use gateway_store::test_support::TestDb;
use gateway_types::ids::OrgId;
use gateway_types::model::{McpServer, NewNamespace, RecordSource, ServerStatus};
use gateway_types::store::Stores;
use reqwest::Method;
use serde_json::{Value, json};

use crate::servers::{org, send, token};

const TOKEN_V1: &str = "declared-token-1f0c";
const TOKEN_V2: &str = "declared-token-2b7e";
const BEARER: &str = "declared-bearer-9a4d";

const V1: &str = r#"
declarative:
  organizations:
    acme:
      namespaces:
        - { slug: tools, name: Tools, description: shared tools }
        - { slug: old, name: Old }
        - { slug: gone, name: Gone }
      servers:
        - name: everything
          namespace: tools
          protocol: stdio
          command: /usr/bin/env
          args: ["true"]
          environment: { API_TOKEN: "${DECL_TOKEN}" }
          tags: [demo]
        - name: remote
          protocol: http
          url: https://mcp.example.com/mcp
          credentials: { bearer_token: "${DECL_BEARER}" }
          session_mode: shared
        - name: manual
          protocol: http
          url: https://declared.example.com/mcp
    newco:
      servers:
        - { name: solo, protocol: http, url: "https://solo.example.com/mcp" }
"#;

const V2: &str = r#"
declarative:
  organizations:
    acme:
      namespaces:
        - { slug: tools, name: Tools, description: tools for everyone }
      servers:
        - name: everything
          namespace: tools
          protocol: stdio
          command: /usr/bin/env
          args: ["true"]
          environment: { API_TOKEN: "${DECL_TOKEN}" }
          tags: [demo, v2]
        - name: fresh
          namespace: apps
          protocol: ws
          url: wss://ws.example.com/mcp
    newco:
      servers:
        - { name: solo, protocol: http, url: "https://solo.example.com/mcp" }
"#;

async fn start(db: &TestDb, yaml: &str, token: &str) -> TestApp {
    TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .env("DECL_TOKEN", token)
        .env("DECL_BEARER", BEARER)
        .database_url(db.url())
        .config_yaml(yaml)
        .spawn()
        .await
}

async fn server(stores: &Stores, org: OrgId, name: &str) -> Option<McpServer> {
    stores.servers.get_by_name(org, name).await.unwrap()
}

async fn slugs(stores: &Stores, org: OrgId) -> Vec<(String, RecordSource)> {
    stores
        .namespaces
        .list_all(org)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.slug, n.source))
        .collect()
}

#[tokio::test]
async fn declarations_are_created_updated_and_removed_and_api_records_left_alone() {
    run(TestDb::sqlite().await).await;
    match TestDb::postgres().await {
        Some(db) => run(db).await,
        None => eprintln!("DATABASE_URL is not set: PostgreSQL skipped"),
    }
}

async fn run(db: TestDb) {
    let stores = db.stores().clone();
    // Before any file: an organization with records of its own.
    let acme = {
        let app = start(&db, "{}", TOKEN_V1).await;
        let acme = org(&app, "acme").await;
        let admin = token(
            &app,
            acme,
            "admin@acme.example",
            gateway_types::model::Role::Admin,
        )
        .await;
        let (status, _, _) = send(
            &app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(json!({"name": "manual", "protocol": "http", "url": "https://manual.example.com/mcp"})),
        )
        .await;
        assert_eq!(status, 201);
        stores
            .namespaces
            .create(
                acme,
                NewNamespace {
                    name: "Apps".into(),
                    slug: "apps".into(),
                    description: None,
                    source: RecordSource::Api,
                },
            )
            .await
            .unwrap();
        app.stop().await.unwrap();
        acme
    };

    // First file: everything is created, except what collides with the API's records.
    let app = start(&db, V1, TOKEN_V1).await;
    let sealer = Sealer::from_config(&app.config.secrets).unwrap();
    let everything = server(&stores, acme, "everything").await.unwrap();
    let tools = stores
        .namespaces
        .get_by_slug(acme, "tools")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            everything.source,
            everything.namespace_id,
            everything.tags.clone()
        ),
        (RecordSource::Config, Some(tools.id), vec!["demo".to_owned()])
    );
    let env = everything.environment.clone().unwrap();
    assert!(!env.0.contains(TOKEN_V1), "sealed at rest");
    assert_eq!(sealer.open_json(&env).unwrap(), json!({"API_TOKEN": TOKEN_V1}));
    let remote = server(&stores, acme, "remote").await.unwrap();
    assert_eq!(
        sealer.open_json(remote.credentials.as_ref().unwrap()).unwrap(),
        json!({"bearer_token": BEARER})
    );
    assert_eq!(remote.metadata["session_mode"], "shared");
    let manual = server(&stores, acme, "manual").await.unwrap();
    assert_eq!(
        (manual.source, manual.url.as_deref()),
        (RecordSource::Api, Some("https://manual.example.com/mcp")),
        "a server of that name created through the API is never changed"
    );
    assert_eq!(
        slugs(&stores, acme).await,
        [
            ("apps".to_owned(), RecordSource::Api),
            ("gone".to_owned(), RecordSource::Config),
            ("old".to_owned(), RecordSource::Config),
            ("tools".to_owned(), RecordSource::Config),
        ]
    );
    let newco = stores.organizations.get_by_slug("newco").await.unwrap().unwrap();
    assert!(
        server(&stores, newco.id, "solo").await.is_some(),
        "a missing organization is created"
    );

    // Declared records are changed in the file, not through the API; the API's are unaffected.
    let admin = {
        let res = app
            .client
            .post(app.url("/auth/login"))
            .json(&json!({"email": "admin@acme.example", "password": crate::servers::PASSWORD}))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (_, _, view) = send(&app, Method::GET, "/gateway/servers/everything", &admin, None).await;
    assert_eq!(
        (view["source"].clone(), view["environment_keys"].clone()),
        (json!("config"), json!(["API_TOKEN"]))
    );
    assert!(!view.to_string().contains(TOKEN_V1));
    for (method, path, body) in [
        (
            Method::PUT,
            "/gateway/servers/everything",
            Some(json!({"timeout_seconds": 5})),
        ),
        (Method::DELETE, "/gateway/servers/everything", None),
        (
            Method::PUT,
            "/api/admin/namespaces/tools",
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, "/api/admin/namespaces/tools?force=true", None),
        (
            Method::POST,
            "/api/admin/namespaces/apps/servers",
            Some(json!({"server": "everything"})),
        ),
    ] {
        let (status, _, err) = send(&app, method.clone(), path, &admin, body).await;
        assert_eq!(status, 409, "{method} {path}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("configuration"),
            "{err}"
        );
    }
    // An API server may live in a declared namespace.
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/api/admin/namespaces/old/servers",
        &admin,
        Some(json!({"server": "manual"})),
    )
    .await;
    assert_eq!(status, 200);
    app.flush_audit().await;
    let (_, _, logs) = send(
        &app,
        Method::GET,
        "/admin/logs?kind=audit&action=server.create&limit=100",
        &admin,
        None,
    )
    .await;
    let system: Vec<&Value> = logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor_type"] == "system")
        .collect();
    assert_eq!(
        system.len(),
        2,
        "everything and remote, audited as the system: {logs}"
    );
    assert!(!logs.to_string().contains(BEARER));
    app.stop().await.unwrap();

    // The same file again: nothing is written.
    let before = stores.changes.latest_id().await.unwrap();
    let app = start(&db, V1, TOKEN_V1).await;
    assert_eq!(
        stores.changes.latest_id().await.unwrap(),
        before,
        "an unchanged file changes nothing"
    );
    app.stop().await.unwrap();

    // A health check took the server down meanwhile: a reconcile leaves that to the checks.
    assert!(
        stores
            .servers
            .set_status(acme, everything.id, ServerStatus::Active, ServerStatus::Down)
            .await
            .unwrap()
    );

    // Second file: updated, created, removed.
    let app = start(&db, V2, TOKEN_V2).await;
    let updated = server(&stores, acme, "everything").await.unwrap();
    assert_eq!(updated.id, everything.id, "updated in place");
    assert_eq!(updated.tags, ["demo", "v2"]);
    assert_eq!(updated.status, ServerStatus::Down);
    assert_eq!(
        sealer.open_json(updated.environment.as_ref().unwrap()).unwrap(),
        json!({"API_TOKEN": TOKEN_V2})
    );
    assert!(
        server(&stores, acme, "remote").await.is_none(),
        "gone from the file"
    );
    let fresh = server(&stores, acme, "fresh").await.unwrap();
    let apps = stores
        .namespaces
        .get_by_slug(acme, "apps")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (fresh.source, fresh.namespace_id),
        (RecordSource::Config, Some(apps.id)),
        "declared servers may use namespaces created through the API"
    );
    assert_eq!(
        stores
            .namespaces
            .get_by_slug(acme, "tools")
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("tools for everyone")
    );
    assert_eq!(
        slugs(&stores, acme).await,
        [
            ("apps".to_owned(), RecordSource::Api),
            ("old".to_owned(), RecordSource::Config),
            ("tools".to_owned(), RecordSource::Config),
        ],
        "gone is removed; old is kept while a server created through the API is in it"
    );
    let manual = server(&stores, acme, "manual").await.unwrap();
    assert_eq!(
        (manual.source, manual.url.as_deref()),
        (RecordSource::Api, Some("https://manual.example.com/mcp"))
    );
    app.stop().await.unwrap();

    // No declarations at all: everything that came from the file goes.
    let app = start(&db, "declarative: { organizations: {} }", TOKEN_V2).await;
    for (org, name) in [(acme, "everything"), (acme, "fresh"), (newco.id, "solo")] {
        assert!(server(&stores, org, name).await.is_none(), "{name}");
    }
    assert!(server(&stores, acme, "manual").await.is_some());
    assert_eq!(
        slugs(&stores, acme)
            .await
            .into_iter()
            .map(|(s, _)| s)
            .collect::<Vec<_>>(),
        ["apps", "old"]
    );
    app.stop().await.unwrap();
}
