//! `/api/admin/policies` and the dry run, through the real server.

use gateway_e2e::TestApp;
use gateway_types::model::{NewOrganization, NewUser, Plan, Role};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-1";

async fn token(app: &TestApp, org: gateway_types::ids::OrgId, email: &str, role: Role) -> String {
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

async fn org(app: &TestApp, slug: &str) -> gateway_types::ids::OrgId {
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

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn dry_run(role: &str, tool: &str, args: Option<Value>) -> Value {
    let mut req = json!({
        "subject": {"role": role},
        "action": "call",
        "target": {"namespace": "prod", "server": "everything", "item": {"kind": "tool", "name": tool}},
    });
    if let Some(a) = args {
        req["arguments"] = a;
    }
    req
}

#[tokio::test]
async fn manage_rules_and_dry_run_them() {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .spawn()
        .await;
    let acme = org(&app, "acme").await;
    let admin = token(&app, acme, "admin@acme.example", Role::Admin).await;
    let viewer = token(&app, acme, "viewer@acme.example", Role::Viewer).await;

    let (status, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({})))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(d["allowed"], true, "no rules: default allow");
    assert_eq!(d["reason"], "allowed: no policy applies");

    let rule = json!({
        "name": "no-env-dump",
        "description": "env leaks secrets",
        "effect": "deny",
        "subjects": [{"role": "user"}],
        "resources": [{"server": "everything*", "kind": "tool", "name": "get-env"}],
        "actions": ["list", "call"]
    });
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/admin/policies",
        &viewer,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 403, "viewers read policies but do not write them");
    let (status, created) = send(
        &app,
        Method::POST,
        "/api/admin/policies",
        &admin,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["rule"]["id"], id.as_str());
    assert_eq!(created["source"], "api");

    // Applied at once: the dry run names the deciding rule.
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({})))),
    )
    .await;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("denied by policy 'no-env-dump'"))
    );
    assert_eq!(d["rule"]["id"], id.as_str());
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("admin", "get-env", None)),
    )
    .await;
    assert_eq!(d["allowed"], true, "the rule names users only");

    let (status, dup) = send(
        &app,
        Method::POST,
        "/api/admin/policies",
        &admin,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 409, "{dup}");
    let mut bad = rule.clone();
    bad["name"] = json!("bad");
    bad["conditions"] =
        json!({"client_ips": ["10.0.0.1/8"], "arguments": [{"path": "no-slash", "op": "exists"}]});
    let (status, err) = send(&app, Method::POST, "/api/admin/policies", &admin, Some(bad)).await;
    assert_eq!(status, 422);
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("conditions.client_ips[0]") && msg.contains("conditions.arguments[0].path"),
        "{msg}"
    );

    // Update: only calls with a dangerous argument are denied now.
    let mut narrowed = rule.clone();
    narrowed["actions"] = json!(["call"]);
    narrowed["conditions"] = json!({"arguments": [{"path": "/mode", "op": "equals", "value": "all"}]});
    let (status, _) = send(
        &app,
        Method::PUT,
        &format!("/api/admin/policies/{id}"),
        &admin,
        Some(narrowed),
    )
    .await;
    assert_eq!(status, 200);
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({"mode": "all"})))),
    )
    .await;
    assert_eq!(d["allowed"], false);
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({"mode": "one"})))),
    )
    .await;
    assert_eq!(d["allowed"], true);

    let (status, listed) = send(&app, Method::GET, "/api/admin/policies", &viewer, None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["default_effect"], "allow");

    // Another organization sees nothing and changes nothing.
    let globex = org(&app, "globex").await;
    let other = token(&app, globex, "admin@globex.example", Role::Admin).await;
    let (status, _) = send(
        &app,
        Method::GET,
        &format!("/api/admin/policies/{id}"),
        &other,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/policies/{id}"),
        &other,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &other,
        Some(dry_run("user", "get-env", Some(json!({"mode": "all"})))),
    )
    .await;
    assert_eq!(d["allowed"], true, "acme's rule does not apply to globex");

    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/policies/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({"mode": "all"})))),
    )
    .await;
    assert_eq!(d["allowed"], true, "deleted rules stop applying at once");
}

#[tokio::test]
async fn rules_from_configuration_apply_and_are_listed() {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .config_yaml(
            "policies:\n  default_effect: deny\n  organizations:\n    acme:\n      - id: tools-for-users\n        name: tools-for-users\n        effect: allow\n        subjects: [{ role: user }]\n        resources: [{ kind: tool, name: \"echo*\" }]\n        actions: [list, call]\n",
        )
        .spawn()
        .await;
    let acme = org(&app, "acme").await;
    let viewer = token(&app, acme, "v@acme.example", Role::Viewer).await;
    let (_, listed) = send(&app, Method::GET, "/api/admin/policies", &viewer, None).await;
    assert_eq!(listed["default_effect"], "deny");
    assert_eq!(listed["declared"][0]["name"], "tools-for-users");
    // The organization was created after start; its snapshot is built on its first policy
    // write (in production, by the change-log refresh). A disabled rule changes nothing else.
    let admin = token(&app, acme, "a@acme.example", Role::Admin).await;
    let noop = json!({"name": "noop", "effect": "deny", "actions": ["admin"], "enabled": false});
    assert_eq!(
        send(&app, Method::POST, "/api/admin/policies", &admin, Some(noop))
            .await
            .0,
        201
    );
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "echo", Some(json!({})))),
    )
    .await;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(true), json!("allowed by policy 'tools-for-users'"))
    );
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("user", "get-env", Some(json!({})))),
    )
    .await;
    assert_eq!(
        (d["allowed"].clone(), d["reason"].clone()),
        (json!(false), json!("denied: no policy allows this"))
    );
    let (_, d) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &viewer,
        Some(dry_run("viewer", "echo", Some(json!({})))),
    )
    .await;
    assert_eq!(d["allowed"], false);
}

#[tokio::test]
async fn organizations_created_while_running_get_their_declared_rules() {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .env("GATEWAY__POLICIES__RELOAD_INTERVAL_SECONDS", "1")
        .config_yaml(
            "policies:\n  organizations:\n    late:\n      - id: no-env\n        name: no-env\n        effect: deny\n        resources: [{ kind: tool, name: get-env }]\n        actions: [call]\n",
        )
        .spawn()
        .await;
    let late = org(&app, "late").await;
    let viewer = token(&app, late, "v@late.example", Role::Viewer).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, d) = send(
            &app,
            Method::POST,
            "/api/admin/policies/evaluate",
            &viewer,
            Some(dry_run("user", "get-env", Some(json!({})))),
        )
        .await;
        if d["allowed"] == false {
            assert_eq!(d["reason"], "denied by policy 'no-env'");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the periodic reload never applied the declared rule"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
