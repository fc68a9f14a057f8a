//! `/gateway/servers` through the real server, on SQLite and (when `DATABASE_URL` is set) on
//! PostgreSQL: CRUD by id and by name, validation, sealed secrets that are never answered,
//! tenancy, RBAC, the organization's server limit and the session mode.

use gateway_auth::sealing::Sealer;
use gateway_e2e::TestApp;
use gateway_store::test_support::TestDb;
use gateway_types::ids::{OrgId, ServerId};
use gateway_types::model::{NewNamespace, NewOrganization, NewUser, OrganizationPatch, Plan, Role};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

pub(crate) const PASSWORD: &str = "correct-horse-1";
const ENV_SECRET: &str = "env-secret-4f1c9a";
const HEADER_SECRET: &str = "header-secret-77d2e0";
const BEARER_SECRET: &str = "bearer-secret-b03e5d";

pub(crate) async fn spawn(database_url: Option<&str>) -> TestApp {
    let mut builder = TestApp::builder().env("GATEWAY__AUTH__BCRYPT_COST", "4");
    if let Some(url) = database_url {
        builder = builder.database_url(url);
    }
    builder.spawn().await
}

/// Runs `scenario` against a fresh gateway on SQLite, then on a fresh PostgreSQL database when
/// `DATABASE_URL` is set (set but unreachable fails in `TestDb`).
pub(crate) async fn on_every_backend(scenario: impl AsyncFn(&TestApp)) {
    let app = spawn(None).await;
    scenario(&app).await;
    drop(app);
    if let Some(db) = TestDb::postgres().await {
        let app = spawn(Some(db.url())).await;
        scenario(&app).await;
        drop(app);
    } else {
        eprintln!("DATABASE_URL is not set: PostgreSQL skipped");
    }
}

pub(crate) async fn org(app: &TestApp, slug: &str) -> OrgId {
    app.stores
        .organizations
        .create(NewOrganization {
            name: slug.into(),
            slug: slug.into(),
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id
}

pub(crate) async fn token(app: &TestApp, org: OrgId, email: &str, role: Role) -> String {
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    app.stores
        .users
        .create(
            org,
            NewUser {
                email: email.into(),
                name: "T".into(),
                password_hash: hash,
                role,
            },
        )
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `(status, raw body, parsed body)`.
pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, String, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, text, json)
}

fn stdio_server(name: &str) -> Value {
    json!({
        "name": name,
        "protocol": "stdio",
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-everything"],
        "environment": {"API_TOKEN": ENV_SECRET, "LOG_LEVEL": "debug"},
        "working_dir": "/srv/mcp",
        "tags": ["demo", "local"],
        "description": "the reference server"
    })
}

pub(crate) fn http_server(name: &str) -> Value {
    json!({
        "name": name,
        "protocol": "http",
        "url": "https://mcp.example.com/mcp",
        "credentials": {"headers": {"X-Api-Key": HEADER_SECRET}, "bearer_token": BEARER_SECRET},
        "timeout_seconds": 60,
        "max_retries": 5,
        "tags": ["remote"],
        "metadata": {"team": "platform"}
    })
}

/// An admin of a fresh organization `slug`.
pub(crate) async fn admin_of(app: &TestApp, slug: &str) -> (OrgId, String) {
    let org = org(app, slug).await;
    let admin = token(app, org, &format!("admin@{slug}.example"), Role::Admin).await;
    (org, admin)
}

#[tokio::test]
async fn create_read_list_update_delete_by_id_and_name() {
    on_every_backend(async |app: &TestApp| {
        let (_, admin) = admin_of(app, "acme").await;
        let (status, _, stdio) = send(app, Method::POST, "/gateway/servers", &admin, Some(stdio_server("everything"))).await;
        assert_eq!(status, 201, "{stdio}");
        let id = stdio["id"].as_str().unwrap().to_owned();
        id.parse::<ServerId>().unwrap();
        assert_eq!(stdio["name"], "everything");
        assert_eq!(stdio["protocol"], "stdio");
        assert_eq!(stdio["command"], "npx");
        assert_eq!(stdio["args"], json!(["-y", "@modelcontextprotocol/server-everything"]));
        assert_eq!(stdio["working_dir"], "/srv/mcp");
        assert_eq!(stdio["timeout_seconds"], 30, "default");
        assert_eq!(stdio["max_retries"], 3, "default");
        assert_eq!(stdio["status"], "active");
        assert_eq!(stdio["source"], "api");
        assert_eq!(stdio["session_mode"], "per_client", "default");
        assert_eq!(stdio["metadata"], json!({}));
        assert_eq!(stdio["environment_keys"], json!(["API_TOKEN", "LOG_LEVEL"]));
        assert_eq!(stdio["has_credentials"], false);
        assert_eq!(stdio["url"], Value::Null);

        let (status, _, remote) = send(app, Method::POST, "/gateway/servers", &admin, Some(http_server("github"))).await;
        assert_eq!(status, 201, "{remote}");
        assert_eq!(remote["has_credentials"], true);
        assert_eq!(remote["environment_keys"], json!([]));
        assert_eq!(remote["timeout_seconds"], 60);
        assert_eq!(remote["metadata"], json!({"team": "platform"}));

        // By id and by name: the same record.
        let (status, _, by_id) = send(app, Method::GET, &format!("/gateway/servers/{id}"), &admin, None).await;
        assert_eq!(status, 200);
        let (status, _, by_name) = send(app, Method::GET, "/gateway/servers/everything", &admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(by_id, by_name);
        assert_eq!(by_id, stdio);

        // Listing: ordered by name, paginated, filtered.
        let (status, _, list) = send(app, Method::GET, "/gateway/servers", &admin, None).await;
        assert_eq!(status, 200);
        assert_eq!(list["total"], 2);
        let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["everything", "github"]);
        let (_, _, page) = send(app, Method::GET, "/gateway/servers?offset=1&limit=1", &admin, None).await;
        assert_eq!((page["total"].clone(), page["items"][0]["name"].clone()), (json!(2), json!("github")));
        let (_, _, only) = send(app, Method::GET, "/gateway/servers?protocol=http", &admin, None).await;
        assert_eq!((only["total"].clone(), only["items"][0]["name"].clone()), (json!(1), json!("github")));
        let (_, _, tagged) = send(app, Method::GET, "/gateway/servers?tag=local", &admin, None).await;
        assert_eq!(tagged["items"][0]["name"], "everything");
        let (status, _, err) = send(app, Method::GET, "/gateway/servers?colour=red", &admin, None).await;
        assert_eq!(status, 400, "{err}");
        let (status, _, err) = send(app, Method::GET, "/gateway/servers?protocol=tcp", &admin, None).await;
        assert_eq!(status, 400, "{err}");

        // Update by name: only the named fields change; the name is the new handle.
        let (status, _, updated) = send(
            app,
            Method::PUT,
            "/gateway/servers/everything",
            &admin,
            Some(json!({"name": "everything-v2", "timeout_seconds": 120, "description": null, "status": "inactive"})),
        )
        .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["id"], id.as_str());
        assert_eq!(updated["name"], "everything-v2");
        assert_eq!(updated["timeout_seconds"], 120);
        assert_eq!(updated["description"], Value::Null);
        assert_eq!(updated["status"], "inactive");
        assert_eq!(updated["command"], "npx", "unchanged");
        assert_eq!(updated["environment_keys"], json!(["API_TOKEN", "LOG_LEVEL"]), "kept");
        let (status, _, _) = send(app, Method::GET, "/gateway/servers/everything", &admin, None).await;
        assert_eq!(status, 404, "the old name is gone");
        let (status, _, _) = send(app, Method::GET, "/gateway/servers/everything-v2", &admin, None).await;
        assert_eq!(status, 200);

        // A taken name is a conflict, on create and on rename.
        let (status, _, dup) = send(app, Method::POST, "/gateway/servers", &admin, Some(http_server("github"))).await;
        assert_eq!(status, 409, "{dup}");
        assert_eq!(dup["error"]["code"], "conflict");
        assert_eq!(dup["error"]["message"], "server name already exists");
        let (status, _, dup) = send(app, Method::PUT, &format!("/gateway/servers/{id}"), &admin, Some(json!({"name": "github"}))).await;
        assert_eq!(status, 409, "{dup}");

        // Delete by name, then by id; both answer 404 afterwards.
        let (status, text, _) = send(app, Method::DELETE, "/gateway/servers/everything-v2", &admin, None).await;
        assert_eq!((status, text.as_str()), (204, ""));
        for path in [format!("/gateway/servers/{id}"), "/gateway/servers/everything-v2".to_owned()] {
            let (status, _, _) = send(app, Method::GET, &path, &admin, None).await;
            assert_eq!(status, 404, "{path}");
            let (status, _, _) = send(app, Method::DELETE, &path, &admin, None).await;
            assert_eq!(status, 404, "{path}");
        }
        let remote_id = remote["id"].as_str().unwrap();
        let (status, _, _) = send(app, Method::DELETE, &format!("/gateway/servers/{remote_id}"), &admin, None).await;
        assert_eq!(status, 204);
        let (_, _, list) = send(app, Method::GET, "/gateway/servers", &admin, None).await;
        assert_eq!(list, json!({"items": [], "total": 0}));

        // Wrong methods list the allowed ones.
        let res = app.client.patch(app.url("/gateway/servers/x")).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()["allow"], "GET, PUT, DELETE");
    })
    .await;
}

#[tokio::test]
async fn secrets_are_sealed_at_rest_and_never_answered() {
    on_every_backend(async |app: &TestApp| {
        let (org, admin) = admin_of(app, "acme").await;
        let mut bodies = Vec::new();
        let (status, text, stdio) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(stdio_server("local")),
        )
        .await;
        assert_eq!(status, 201);
        bodies.push(text);
        let (status, text, remote) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(http_server("remote")),
        )
        .await;
        assert_eq!(status, 201);
        bodies.push(text);
        for path in [
            "/gateway/servers",
            "/gateway/servers/local",
            "/gateway/servers/remote",
        ] {
            let (status, text, _) = send(app, Method::GET, path, &admin, None).await;
            assert_eq!(status, 200);
            bodies.push(text);
        }

        // At rest: sealed with the configured key, not the plaintext.
        let sealer = Sealer::from_config(&app.config.secrets).unwrap();
        let stdio_id: ServerId = stdio["id"].as_str().unwrap().parse().unwrap();
        let remote_id: ServerId = remote["id"].as_str().unwrap().parse().unwrap();
        let row = app.stores.servers.get(org, stdio_id).await.unwrap().unwrap();
        let env = row.environment.clone().unwrap();
        assert!(env.0.starts_with("v1:k1:"), "{}", env.0);
        assert!(!env.0.contains(ENV_SECRET));
        assert_eq!(
            sealer.open_json(&env).unwrap(),
            json!({"API_TOKEN": ENV_SECRET, "LOG_LEVEL": "debug"})
        );
        assert!(row.credentials.is_none());
        let row = app.stores.servers.get(org, remote_id).await.unwrap().unwrap();
        let creds = row.credentials.clone().unwrap();
        assert!(creds.0.starts_with("v1:k1:"), "{}", creds.0);
        for secret in [HEADER_SECRET, BEARER_SECRET] {
            assert!(!creds.0.contains(secret));
        }
        assert_eq!(
            sealer.open_json(&creds).unwrap(),
            json!({"headers": {"X-Api-Key": HEADER_SECRET}, "bearer_token": BEARER_SECRET})
        );
        assert!(!row.metadata.to_string().contains(BEARER_SECRET));

        // Replacing credentials re-seals them; the old ones are gone.
        let (status, text, updated) = send(
            app,
            Method::PUT,
            "/gateway/servers/remote",
            &admin,
            Some(json!({"credentials": {"bearer_token": "rotated-token-1"}})),
        )
        .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["has_credentials"], true);
        bodies.push(text);
        let row = app.stores.servers.get(org, remote_id).await.unwrap().unwrap();
        assert_ne!(row.credentials.as_ref(), Some(&creds));
        assert_eq!(
            sealer.open_json(row.credentials.as_ref().unwrap()).unwrap(),
            json!({"bearer_token": "rotated-token-1"})
        );
        // Clearing.
        let (status, text, cleared) = send(
            app,
            Method::PUT,
            "/gateway/servers/remote",
            &admin,
            Some(json!({"credentials": null})),
        )
        .await;
        assert_eq!((status, cleared["has_credentials"].clone()), (200, json!(false)));
        bodies.push(text);
        assert!(
            app.stores
                .servers
                .get(org, remote_id)
                .await
                .unwrap()
                .unwrap()
                .credentials
                .is_none()
        );
        let (status, text, cleared) = send(
            app,
            Method::PUT,
            "/gateway/servers/local",
            &admin,
            Some(json!({"environment": {}})),
        )
        .await;
        assert_eq!((status, cleared["environment_keys"].clone()), (200, json!([])));
        bodies.push(text);
        assert!(
            app.stores
                .servers
                .get(org, stdio_id)
                .await
                .unwrap()
                .unwrap()
                .environment
                .is_none()
        );

        // A refused value is not echoed either.
        let (status, text, err) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(json!({
                "name": "bad", "protocol": "http", "url": "https://x.example",
                "credentials": {"headers": {"X-Key": format!("{HEADER_SECRET}\r\nInjected: 1")}}
            })),
        )
        .await;
        assert_eq!(status, 422, "{err}");
        assert!(text.contains("credentials.headers.X-Key"), "{text}");
        bodies.push(text);

        for body in &bodies {
            for secret in [ENV_SECRET, HEADER_SECRET, BEARER_SECRET, "rotated-token-1"] {
                assert!(!body.contains(secret), "{secret} answered in {body}");
            }
            assert!(
                !body.contains("v1:k1:"),
                "sealed values are not answered either: {body}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_servers_are_refused_with_precise_errors() {
    let app = spawn(None).await;
    let (_, admin) = admin_of(&app, "acme").await;
    let foreign_ns = app
        .stores
        .namespaces
        .create(
            org(&app, "initech").await,
            NewNamespace {
                name: "x".into(),
                slug: "x".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap()
        .id;

    let many_args: Vec<String> = (0..65).map(|i| i.to_string()).collect();
    let many_env: serde_json::Map<String, Value> = (0..101).map(|i| (format!("V{i}"), json!("x"))).collect();
    // (body, status, what the message must name)
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"name": "Bad Name", "protocol": "stdio", "command": "x"}),
            422,
            "name: must be 1-64 characters",
        ),
        (
            json!({"name": "0190a1b2-0000-7000-8000-000000000000", "protocol": "stdio", "command": "x"}),
            422,
            "name:",
        ),
        (
            json!({"name": "a", "protocol": "stdio"}),
            422,
            "command: is required for stdio servers",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": ""}),
            422,
            "command: is required",
        ),
        (
            json!({"name": "a", "protocol": "http"}),
            422,
            "url: is required for http servers",
        ),
        (
            json!({"name": "a", "protocol": "sse", "url": "/relative"}),
            422,
            "url: must be an absolute http:// or https:// URL",
        ),
        (
            json!({"name": "a", "protocol": "ws", "url": "https://x.example/ws"}),
            422,
            "url: must be an absolute ws:// or wss:// URL",
        ),
        (
            json!({"name": "a", "protocol": "http", "url": "https://u:p@x.example"}),
            422,
            "url: must not carry credentials",
        ),
        (
            json!({"name": "a", "protocol": "http", "url": "https://x.example", "command": "x"}),
            422,
            "command: applies to stdio servers only",
        ),
        (
            json!({"name": "a", "protocol": "http", "url": "https://x.example", "environment": {"A": "b"}}),
            422,
            "environment: applies to stdio servers only",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "url": "https://x.example"}),
            422,
            "url: applies to http, sse and ws servers only",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "credentials": {"bearer_token": "t"}}),
            422,
            "credentials: applies to http, sse and ws",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "timeout_seconds": 0}),
            422,
            "timeout_seconds: must be between 1 and 600",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "timeout_seconds": 601}),
            422,
            "timeout_seconds: must be between 1 and 600",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "max_retries": -1}),
            422,
            "max_retries: must be between 0 and 10",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "max_retries": 11}),
            422,
            "max_retries: must be between 0 and 10",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "args": many_args}),
            422,
            "args: at most 64 arguments",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "environment": many_env}),
            422,
            "environment: at most 100 variables",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "environment": {"1BAD": "x"}}),
            422,
            "\\\"1BAD\\\" is not a variable name",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "working_dir": "relative/dir"}),
            422,
            "working_dir: must be an absolute path",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "metadata": [1]}),
            422,
            "metadata: must be a JSON object",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "metadata": {"session_mode": "sometimes"}}),
            422,
            "metadata.session_mode: must be per_client or shared",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "status": "unhealthy"}),
            422,
            "status: must be active or inactive",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "tags": ["t", "t"]}),
            422,
            "tags[1]: repeats",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "health_check_url": "ftp://x"}),
            422,
            "health_check_url:",
        ),
        (
            json!({"name": "a", "protocol": "http", "url": "https://x.example", "credentials": {"headers": {"Host": "evil"}}}),
            422,
            "credentials.headers.Host: is set by the gateway itself",
        ),
        (
            json!({"name": "a", "protocol": "http", "url": "https://x.example", "credentials": {"headers": {"Authorization": "Basic x"}, "bearer_token": "t"}}),
            422,
            "not both",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "namespace_id": foreign_ns.to_string()}),
            422,
            "namespace_id: no such namespace in this organization",
        ),
        // Shape errors are 400.
        (
            json!({"name": "a", "protocol": "tcp", "url": "https://x.example"}),
            400,
            "unknown variant `tcp`",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "session_mode": "sometimes"}),
            400,
            "unknown variant `sometimes`",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "colour": "red"}),
            400,
            "unknown field `colour`",
        ),
        (
            json!({"protocol": "stdio", "command": "x"}),
            400,
            "missing field `name`",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "environment": {"A": 8_675_309}}),
            400,
            "environment values, header values and bearer_token must be strings",
        ),
        (
            json!({"name": "a", "protocol": "stdio", "command": "x", "namespace_id": "nope"}),
            400,
            "invalid JSON body",
        ),
    ];
    for (body, want_status, want) in cases {
        let (status, text, err) =
            send(&app, Method::POST, "/gateway/servers", &admin, Some(body.clone())).await;
        assert_eq!(status, want_status, "{body} -> {text}");
        let code = if want_status == 422 {
            "validation_failed"
        } else {
            "bad_request"
        };
        assert_eq!(err["error"]["code"], code, "{text}");
        assert!(text.contains(want), "{body}: expected {want:?} in {text}");
        assert!(
            !text.contains("8675309"),
            "a refused secret value is not echoed: {text}"
        );
    }

    // Every problem at once, each with its field.
    let (status, _, err) = send(
        &app,
        Method::POST,
        "/gateway/servers",
        &admin,
        Some(json!({"name": "Nope!", "protocol": "http", "timeout_seconds": 0, "max_retries": 99})),
    )
    .await;
    assert_eq!(status, 422);
    insta::assert_json_snapshot!(err, { ".error.request_id" => "[request_id]" });

    // Updates are validated as the whole resulting record.
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/gateway/servers",
        &admin,
        Some(stdio_server("local")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, err) = send(
        &app,
        Method::PUT,
        "/gateway/servers/local",
        &admin,
        Some(json!({"protocol": "http", "url": "https://x.example/mcp"})),
    )
    .await;
    assert_eq!(status, 422);
    let msg = err["error"]["message"].as_str().unwrap();
    for field in ["command:", "args:", "working_dir:", "environment:"] {
        assert!(
            msg.contains(field) && msg.contains("set it to null"),
            "{field} in {msg}"
        );
    }
    let (status, _, err) = send(
        &app,
        Method::PUT,
        "/gateway/servers/local",
        &admin,
        Some(json!({"name": null, "timeout_seconds": null})),
    )
    .await;
    assert_eq!(status, 422);
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("name: cannot be null") && msg.contains("timeout_seconds: cannot be null"),
        "{msg}"
    );
    let (status, _, moved) = send(
        &app,
        Method::PUT,
        "/gateway/servers/local",
        &admin,
        Some(json!({"protocol": "sse", "url": "https://x.example/sse", "command": null, "args": [], "working_dir": null, "environment": null})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["protocol"].clone(), moved["environment_keys"].clone()),
        (json!("sse"), json!([]))
    );
}

#[tokio::test]
async fn other_organizations_see_404_and_viewers_cannot_write() {
    on_every_backend(async |app: &TestApp| {
        let (acme, admin) = admin_of(app, "acme").await;
        let (_, globex_admin) = admin_of(app, "globex").await;
        let viewer = token(app, acme, "viewer@acme.example", Role::Viewer).await;
        let member = token(app, acme, "member@acme.example", Role::User).await;
        let (status, _, created) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(stdio_server("private")),
        )
        .await;
        assert_eq!(status, 201);
        let id = created["id"].as_str().unwrap().to_owned();

        for path in [
            format!("/gateway/servers/{id}"),
            "/gateway/servers/private".to_owned(),
        ] {
            for (method, body) in [
                (Method::GET, None),
                (Method::PUT, Some(json!({"description": "pwned"}))),
                (Method::DELETE, None),
            ] {
                let (status, _, err) = send(app, method.clone(), &path, &globex_admin, body).await;
                assert_eq!(status, 404, "{method} {path}: {err}");
                assert_eq!(err["error"]["message"], "no such server");
            }
        }
        let (_, _, list) = send(app, Method::GET, "/gateway/servers", &globex_admin, None).await;
        assert_eq!(list["total"], 0);
        // The same name is free in another organization.
        let (status, _, _) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &globex_admin,
            Some(stdio_server("private")),
        )
        .await;
        assert_eq!(status, 201);

        // Viewers read; they do not write.
        let (status, _, seen) = send(app, Method::GET, "/gateway/servers/private", &viewer, None).await;
        assert_eq!(
            (status, seen["description"].clone()),
            (200, json!("the reference server")),
            "untouched"
        );
        let (status, _, _) = send(app, Method::GET, "/gateway/servers", &viewer, None).await;
        assert_eq!(status, 200);
        for (method, path, body) in [
            (Method::POST, "/gateway/servers", Some(stdio_server("mine"))),
            (
                Method::PUT,
                "/gateway/servers/private",
                Some(json!({"description": "x"})),
            ),
            (Method::DELETE, "/gateway/servers/private", None),
        ] {
            let (status, _, err) = send(app, method.clone(), path, &viewer, body).await;
            assert_eq!(status, 403, "viewer {method} {path}");
            assert_eq!(
                err["error"]["message"],
                "this requires the servers:write permission"
            );
        }
        // Users write.
        let (status, _, _) = send(
            app,
            Method::PUT,
            "/gateway/servers/private",
            &member,
            Some(json!({"tags": ["x"]})),
        )
        .await;
        assert_eq!(status, 200);
        // Anonymous: 401.
        let res = app.client.get(app.url("/gateway/servers")).send().await.unwrap();
        assert_eq!(res.status(), 401);
    })
    .await;
}

#[tokio::test]
async fn the_organizations_server_limit_is_enforced() {
    on_every_backend(async |app: &TestApp| {
        let (acme, admin) = admin_of(app, "acme").await;
        app.stores
            .organizations
            .update(
                acme,
                OrganizationPatch {
                    max_servers: Some(2),
                    ..OrganizationPatch::default()
                },
            )
            .await
            .unwrap();
        for name in ["one", "two"] {
            let (status, _, _) = send(
                app,
                Method::POST,
                "/gateway/servers",
                &admin,
                Some(http_server(name)),
            )
            .await;
            assert_eq!(status, 201, "{name}");
        }
        let (status, _, err) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(http_server("three")),
        )
        .await;
        assert_eq!(status, 409, "{err}");
        assert_eq!(err["error"]["code"], "conflict");
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(msg.contains("limit of 2 servers"), "{msg}");
        // Updates are not creations; after a delete there is room again.
        let (status, _, _) = send(
            app,
            Method::PUT,
            "/gateway/servers/two",
            &admin,
            Some(json!({"max_retries": 0})),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _, _) = send(app, Method::DELETE, "/gateway/servers/one", &admin, None).await;
        assert_eq!(status, 204);
        let (status, _, _) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(http_server("three")),
        )
        .await;
        assert_eq!(status, 201);
    })
    .await;
}

#[tokio::test]
async fn session_mode_round_trips_through_metadata() {
    on_every_backend(async |app: &TestApp| {
        let (acme, admin) = admin_of(app, "acme").await;
        let mut body = http_server("shared-one");
        body["session_mode"] = json!("shared");
        let (status, _, created) = send(app, Method::POST, "/gateway/servers", &admin, Some(body)).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["session_mode"], "shared");
        assert_eq!(
            created["metadata"],
            json!({"team": "platform"}),
            "shown top-level only"
        );
        let id: ServerId = created["id"].as_str().unwrap().parse().unwrap();
        let row = app.stores.servers.get(acme, id).await.unwrap().unwrap();
        assert_eq!(
            row.metadata,
            json!({"team": "platform", "session_mode": "shared"})
        );

        // Replacing metadata keeps the mode; setting the mode keeps the metadata.
        let (_, _, updated) = send(
            app,
            Method::PUT,
            "/gateway/servers/shared-one",
            &admin,
            Some(json!({"metadata": {"team": "infra"}})),
        )
        .await;
        assert_eq!(
            (updated["session_mode"].clone(), updated["metadata"].clone()),
            (json!("shared"), json!({"team": "infra"}))
        );
        let (_, _, updated) = send(
            app,
            Method::PUT,
            "/gateway/servers/shared-one",
            &admin,
            Some(json!({"session_mode": "per_client"})),
        )
        .await;
        assert_eq!(
            (updated["session_mode"].clone(), updated["metadata"].clone()),
            (json!("per_client"), json!({"team": "infra"}))
        );
        let row = app.stores.servers.get(acme, id).await.unwrap().unwrap();
        assert_eq!(row.metadata["session_mode"], "per_client");
        // Given inside metadata, it is taken from there.
        let mut body = http_server("via-metadata");
        body["metadata"] = json!({"session_mode": "shared"});
        let (status, _, created) = send(app, Method::POST, "/gateway/servers", &admin, Some(body)).await;
        assert_eq!(
            (
                status,
                created["session_mode"].clone(),
                created["metadata"].clone()
            ),
            (201, json!("shared"), json!({}))
        );
    })
    .await;
}

#[tokio::test]
async fn namespaces_scope_servers() {
    let app = spawn(None).await;
    let (acme, admin) = admin_of(&app, "acme").await;
    let ns = app
        .stores
        .namespaces
        .create(
            acme,
            NewNamespace {
                name: "Prod".into(),
                slug: "prod".into(),
                description: None,
                source: gateway_types::model::RecordSource::Api,
            },
        )
        .await
        .unwrap()
        .id;
    let mut body = http_server("in-prod");
    body["namespace_id"] = json!(ns.to_string());
    let (status, _, created) = send(&app, Method::POST, "/gateway/servers", &admin, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["namespace_id"], ns.to_string().as_str());
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/gateway/servers",
        &admin,
        Some(http_server("nowhere")),
    )
    .await;
    assert_eq!(status, 201);
    let (_, _, list) = send(
        &app,
        Method::GET,
        &format!("/gateway/servers?namespace_id={ns}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (list["total"].clone(), list["items"][0]["name"].clone()),
        (json!(1), json!("in-prod"))
    );

    // A key confined to the namespace sees and creates only there.
    let (status, _, key) = send(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "prod-only", "namespace_id": ns.to_string()})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let (_, _, list) = send(&app, Method::GET, "/gateway/servers", &key, None).await;
    assert_eq!(
        (list["total"].clone(), list["items"][0]["name"].clone()),
        (json!(1), json!("in-prod"))
    );
    let (status, _, _) = send(&app, Method::GET, "/gateway/servers/nowhere", &key, None).await;
    assert_eq!(status, 404);
    let (status, _, created) = send(
        &app,
        Method::POST,
        "/gateway/servers",
        &key,
        Some(http_server("by-key")),
    )
    .await;
    assert_eq!(
        (status, created["namespace_id"].clone()),
        (201, json!(ns.to_string())),
        "{created}"
    );
    let (status, _, err) = send(
        &app,
        Method::PUT,
        "/gateway/servers/by-key",
        &key,
        Some(json!({"namespace_id": null})),
    )
    .await;
    assert_eq!(status, 403, "{err}");
}
