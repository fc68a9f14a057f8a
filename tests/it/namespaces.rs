//! `/api/admin/namespaces` through the real server, on SQLite and (when `DATABASE_URL` is set)
//! PostgreSQL: CRUD by id and slug, validation, audit, another organization's namespaces (404),
//! roles, servers moved in and out, deletion with `force`, keys confined to a namespace, and a
//! namespace's sessions from the store and the live hub (against a real MCP server).

use gateway_e2e::TestApp;
use gateway_e2e::process::McpEcho;
use gateway_types::model::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::servers::{admin_of, http_server, on_every_backend, send, spawn, token};

async fn create_ns(app: &TestApp, admin: &str, slug: &str) -> Value {
    let (status, _, ns) = send(
        app,
        Method::POST,
        "/api/admin/namespaces",
        admin,
        Some(json!({"name": format!("NS {slug}"), "slug": slug, "description": "d"})),
    )
    .await;
    assert_eq!(status, 201, "{ns}");
    ns
}

async fn audit_actions(app: &TestApp, admin: &str) -> Vec<String> {
    app.flush_audit().await;
    let (_, _, logs) = send(app, Method::GET, "/admin/logs?kind=audit&limit=500", admin, None).await;
    logs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn crud_by_id_and_slug_validated_and_audited() {
    on_every_backend(async |app: &TestApp| {
        let (_, admin) = admin_of(app, "acme").await;
        let prod = create_ns(app, &admin, "prod").await;
        assert_eq!(
            (
                prod["slug"].clone(),
                prod["source"].clone(),
                prod["description"].clone()
            ),
            (json!("prod"), json!("api"), json!("d"))
        );
        let id = prod["id"].as_str().unwrap().to_owned();
        create_ns(app, &admin, "dev").await;

        let (status, _, err) = send(
            app,
            Method::POST,
            "/api/admin/namespaces",
            &admin,
            Some(json!({"name": "again", "slug": "prod"})),
        )
        .await;
        assert_eq!(
            (status, err["error"]["code"].clone()),
            (409, json!("conflict")),
            "{err}"
        );
        let (status, _, err) = send(
            app,
            Method::POST,
            "/api/admin/namespaces",
            &admin,
            Some(json!({"name": "", "slug": "Not A Slug"})),
        )
        .await;
        let msg = err["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 422, "{err}");
        assert!(msg.contains("slug:") && msg.contains("name:"), "{msg}");
        let (status, _, _) = send(
            app,
            Method::POST,
            "/api/admin/namespaces",
            &admin,
            Some(json!({"name": "x", "slug": "x", "owner": "me"})),
        )
        .await;
        assert_eq!(status, 400, "unknown fields are refused");

        for path in [
            format!("/api/admin/namespaces/{id}"),
            "/api/admin/namespaces/prod".to_owned(),
        ] {
            let (status, _, got) = send(app, Method::GET, &path, &admin, None).await;
            assert_eq!((status, got["id"].as_str()), (200, Some(id.as_str())));
        }
        let (_, _, list) = send(
            app,
            Method::GET,
            "/api/admin/namespaces?limit=1&offset=1",
            &admin,
            None,
        )
        .await;
        assert_eq!(
            (list["total"].clone(), list["items"][0]["slug"].clone()),
            (json!(2), json!("prod")),
            "ordered by slug: dev, prod"
        );

        let (status, _, updated) = send(
            app,
            Method::PUT,
            "/api/admin/namespaces/prod",
            &admin,
            Some(json!({"name": "Production", "description": null})),
        )
        .await;
        assert_eq!(
            (
                status,
                updated["name"].clone(),
                updated["description"].clone(),
                updated["slug"].clone()
            ),
            (200, json!("Production"), Value::Null, json!("prod"))
        );
        let (status, _, _) = send(
            app,
            Method::PUT,
            "/api/admin/namespaces/prod",
            &admin,
            Some(json!({"slug": "dev"})),
        )
        .await;
        assert_eq!(status, 409, "slugs are unique in the organization");

        let (status, _, _) = send(app, Method::DELETE, "/api/admin/namespaces/dev", &admin, None).await;
        assert_eq!(status, 204);
        let (status, _, _) = send(app, Method::GET, "/api/admin/namespaces/dev", &admin, None).await;
        assert_eq!(status, 404);

        let actions = audit_actions(app, &admin).await;
        for want in ["namespace.create", "namespace.update", "namespace.delete"] {
            assert!(
                actions.iter().any(|a| a == want),
                "{want} missing from {actions:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn other_organizations_get_404_and_only_admins_write() {
    on_every_backend(async |app: &TestApp| {
        let (acme, admin) = admin_of(app, "acme").await;
        let (_, intruder) = admin_of(app, "globex").await;
        let ns = create_ns(app, &admin, "prod").await;
        let id = ns["id"].as_str().unwrap();
        for (method, path, body) in [
            (Method::GET, format!("/api/admin/namespaces/{id}"), None),
            (
                Method::PUT,
                format!("/api/admin/namespaces/{id}"),
                Some(json!({"name": "mine"})),
            ),
            (
                Method::DELETE,
                format!("/api/admin/namespaces/{id}?force=true"),
                None,
            ),
            (Method::GET, format!("/api/admin/namespaces/{id}/servers"), None),
            (Method::GET, format!("/api/admin/namespaces/{id}/sessions"), None),
            (
                Method::POST,
                format!("/api/admin/namespaces/{id}/servers"),
                Some(json!({"server": "x"})),
            ),
            (Method::GET, "/api/admin/namespaces/prod".to_owned(), None),
        ] {
            let (status, _, body) = send(app, method.clone(), &path, &intruder, body).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
        }
        let (_, _, list) = send(app, Method::GET, "/api/admin/namespaces", &intruder, None).await;
        assert_eq!(list["total"], 0);

        // Reading is for every role; writing for admins.
        let viewer = token(app, acme, "viewer@acme.example", Role::Viewer).await;
        let user = token(app, acme, "user@acme.example", Role::User).await;
        let (status, _, list) = send(app, Method::GET, "/api/admin/namespaces", &viewer, None).await;
        assert_eq!((status, list["total"].clone()), (200, json!(1)));
        for who in [&viewer, &user] {
            let (status, _, _) = send(
                app,
                Method::POST,
                "/api/admin/namespaces",
                who,
                Some(json!({"name": "x", "slug": "x"})),
            )
            .await;
            assert_eq!(status, 403);
            let (status, _, _) = send(app, Method::DELETE, "/api/admin/namespaces/prod", who, None).await;
            assert_eq!(status, 403);
        }
        // Sessions name who is connected: not for viewers.
        let (status, _, _) = send(
            app,
            Method::GET,
            "/api/admin/namespaces/prod/sessions",
            &viewer,
            None,
        )
        .await;
        assert_eq!(status, 403);
        let (status, _, _) = send(app, Method::GET, "/api/admin/namespaces/prod", &viewer, None).await;
        assert_eq!(status, 200);
    })
    .await;
}

#[tokio::test]
async fn servers_move_in_and_out_and_force_deletes_detach_them() {
    on_every_backend(async |app: &TestApp| {
        let (_, admin) = admin_of(app, "acme").await;
        let ns = create_ns(app, &admin, "prod").await;
        let ns_id = ns["id"].as_str().unwrap().to_owned();
        for name in ["alpha", "beta"] {
            let (status, _, _) = send(
                app,
                Method::POST,
                "/gateway/servers",
                &admin,
                Some(http_server(name)),
            )
            .await;
            assert_eq!(status, 201);
        }
        for name in ["alpha", "beta"] {
            let (status, _, moved) = send(
                app,
                Method::POST,
                "/api/admin/namespaces/prod/servers",
                &admin,
                Some(json!({"server": name})),
            )
            .await;
            assert_eq!(
                (status, moved["namespace_id"].as_str()),
                (200, Some(ns_id.as_str())),
                "{moved}"
            );
        }
        let (_, _, listed) = send(
            app,
            Method::GET,
            "/api/admin/namespaces/prod/servers",
            &admin,
            None,
        )
        .await;
        assert_eq!(listed["total"], 2);
        let (status, _, _) = send(
            app,
            Method::DELETE,
            "/api/admin/namespaces/prod/servers/beta",
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (_, _, beta) = send(app, Method::GET, "/gateway/servers/beta", &admin, None).await;
        assert_eq!(beta["namespace_id"], Value::Null);
        let (status, _, _) = send(
            app,
            Method::DELETE,
            "/api/admin/namespaces/prod/servers/beta",
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 404, "not in this namespace");

        // A key confined to the namespace.
        let (status, _, key) = send(
            app,
            Method::POST,
            "/auth/api-keys",
            &admin,
            Some(json!({"name": "prod-only", "namespace_id": ns_id})),
        )
        .await;
        assert_eq!(status, 201, "{key}");
        let key = key["key"].as_str().unwrap().to_owned();
        let (status, _, _) = send(app, Method::GET, "/gateway/servers/alpha", &key, None).await;
        assert_eq!(status, 200);

        let (status, _, err) = send(app, Method::DELETE, "/api/admin/namespaces/prod", &admin, None).await;
        assert_eq!(status, 409, "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("force=true"),
            "{err}"
        );
        let (status, _, _) = send(
            app,
            Method::DELETE,
            "/api/admin/namespaces/prod?force=true",
            &admin,
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (status, _, alpha) = send(app, Method::GET, "/gateway/servers/alpha", &admin, None).await;
        assert_eq!(
            (status, alpha["namespace_id"].clone()),
            (200, Value::Null),
            "detached, still registered"
        );
        // Keys confined to it went with it, at once.
        let (status, _, _) = send(app, Method::GET, "/gateway/servers", &key, None).await;
        assert_eq!(status, 401);
    })
    .await;
}

#[tokio::test]
async fn a_confined_key_sees_only_its_namespace() {
    let app = spawn(None).await;
    let (_, admin) = admin_of(&app, "acme").await;
    let prod = create_ns(&app, &admin, "prod").await;
    let dev = create_ns(&app, &admin, "dev").await;
    let (_, _, key) = send(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "prod-only", "namespace_id": prod["id"]})),
    )
    .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let (_, _, list) = send(&app, Method::GET, "/api/admin/namespaces", &key, None).await;
    assert_eq!(
        (
            list["total"].clone(),
            list["items"].as_array().unwrap().len(),
            list["items"][0]["slug"].clone()
        ),
        (json!(1), 1, json!("prod"))
    );
    let dev_id = dev["id"].as_str().unwrap();
    for path in [
        format!("/api/admin/namespaces/{dev_id}"),
        "/api/admin/namespaces/dev/servers".to_owned(),
    ] {
        let (status, _, _) = send(&app, Method::GET, &path, &key, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = send(&app, Method::GET, "/api/admin/namespaces/prod", &key, None).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/api/admin/namespaces",
        &key,
        Some(json!({"name": "n", "slug": "n"})),
    )
    .await;
    assert_eq!(status, 403, "a confined key creates no namespaces");
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        "/api/admin/namespaces/prod?force=true",
        &key,
        None,
    )
    .await;
    assert_eq!(status, 403);
    // A server outside its namespace cannot be moved in by it: it cannot see it.
    let (_, _, _) = send(
        &app,
        Method::POST,
        "/gateway/servers",
        &admin,
        Some(http_server("outside")),
    )
    .await;
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/api/admin/namespaces/prod/servers",
        &key,
        Some(json!({"server": "outside"})),
    )
    .await;
    assert_eq!(status, 404);
}

/// Opens an MCP session on `server` through the gateway; returns its session id.
async fn open_mcp_session(app: &TestApp, token: &str, server: &str) -> String {
    let res = app
        .client
        .post(app.url(&format!("/servers/{server}/mcp")))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    let session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap();
    assert!(body["result"]["serverInfo"].is_object(), "{body}");
    session.unwrap()
}

#[tokio::test]
async fn sessions_of_a_namespace_from_the_store_and_the_hub() {
    let echo = McpEcho::start("127.0.0.1:0").await;
    on_every_backend(async |app: &TestApp| {
        let (acme, admin) = admin_of(app, "acme").await;
        let ns = create_ns(app, &admin, "prod").await;
        let mut body = json!({"name": "echo", "protocol": "http", "url": echo.url()});
        body["namespace_id"] = ns["id"].clone();
        let (status, _, _) = send(app, Method::POST, "/gateway/servers", &admin, Some(body)).await;
        assert_eq!(status, 201);
        let (status, _, _) = send(
            app,
            Method::POST,
            "/gateway/servers",
            &admin,
            Some(json!({"name": "elsewhere", "protocol": "http", "url": echo.url()})),
        )
        .await;
        assert_eq!(status, 201);
        let user = token(app, acme, "dev@acme.example", Role::User).await;
        let inside = open_mcp_session(app, &user, "echo").await;
        let outside = open_mcp_session(app, &user, "elsewhere").await;

        // Sessions are recorded off the request path: wait for the record.
        let mut listed = Value::Null;
        for _ in 0..200 {
            let (status, _, got) = send(
                app,
                Method::GET,
                "/api/admin/namespaces/prod/sessions",
                &admin,
                None,
            )
            .await;
            assert_eq!(status, 200, "{got}");
            listed = got;
            if listed["total"] == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(listed["total"], 1, "{listed}");
        assert_eq!(listed["items"][0]["id"], inside.as_str());
        assert_eq!(listed["items"][0]["live"], true);
        assert_eq!(listed["items"][0]["protocol"], "streamable_http");
        let live: Vec<&str> = listed["live"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap())
            .collect();
        assert_eq!(live, [inside.as_str()], "never the other namespace's {outside}");

        // Ended: still recorded, no longer live, not open.
        let res = app
            .client
            .delete(app.url("/servers/echo/mcp"))
            .bearer_auth(&user)
            .header("mcp-session-id", &inside)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let mut open = Value::Null;
        for _ in 0..200 {
            let (_, _, got) = send(
                app,
                Method::GET,
                "/api/admin/namespaces/prod/sessions?open=true",
                &admin,
                None,
            )
            .await;
            open = got;
            if open["total"] == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert_eq!(
            (open["total"].clone(), open["live"].clone()),
            (json!(0), json!([])),
            "{open}"
        );
        let (_, _, all) = send(
            app,
            Method::GET,
            "/api/admin/namespaces/prod/sessions",
            &admin,
            None,
        )
        .await;
        assert_eq!(
            (all["total"].clone(), all["items"][0]["live"].clone()),
            (json!(1), json!(false))
        );
    })
    .await;
    echo.stop().await;
}
