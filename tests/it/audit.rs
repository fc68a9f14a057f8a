//! The audit trail through the real server: administrative actions and logins leave chained
//! records with actor, target, IP and request id; `/admin/logs?kind=audit` lists them for the
//! caller's organization only; `/admin/logs/verify` proves the chain or names the row someone
//! edited in the database. Every test runs on SQLite, and on PostgreSQL when `DATABASE_URL`
//! is set.

use gateway_e2e::TestApp;
use gateway_store::test_support::TestDb;
use gateway_types::ids::OrgId;
use gateway_types::model::{NewOrganization, NewUser, Plan, Role};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-1";
const WRONG_PASSWORD: &str = "wrong-horse-987";
const NEW_PASSWORD: &str = "battery-staple-42";

/// SQLite always; PostgreSQL too when `DATABASE_URL` is set.
async fn backends() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    if let Some(pg) = TestDb::postgres().await {
        dbs.push(pg);
    }
    dbs
}

async fn app_on(db: &TestDb) -> TestApp {
    TestApp::builder()
        .database_url(db.url())
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .spawn()
        .await
}

async fn org(app: &TestApp, slug: &str) -> OrgId {
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

/// A user made directly in the store (so not audited), returning its id.
async fn user(app: &TestApp, org: OrgId, email: &str, role: Role) -> String {
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    app.stores
        .users
        .create(
            org,
            NewUser {
                email: email.into(),
                name: "Test".into(),
                password_hash: hash,
                role,
            },
        )
        .await
        .unwrap()
        .id
        .to_string()
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn token(app: &TestApp, email: &str) -> String {
    let res = login_with(app, email, PASSWORD).await;
    assert_eq!(res.status(), 200, "login {email}");
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Status, body and `X-Request-Id` of an authenticated call.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let request_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        request_id,
    )
}

/// Every audit record of the caller's organization, newest first, and the raw listing text.
async fn audit_rows(app: &TestApp, token: &str) -> (Vec<Value>, String) {
    app.flush_audit().await;
    let res = app
        .client
        .get(app.url("/admin/logs?kind=audit&limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["kind"], "audit");
    assert_eq!(body["next_cursor"], Value::Null);
    (body["items"].as_array().unwrap().clone(), text)
}

fn find<'a>(rows: &'a [Value], action: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["action"] == action).collect()
}

fn one<'a>(rows: &'a [Value], action: &str) -> &'a Value {
    let found = find(rows, action);
    assert_eq!(found.len(), 1, "exactly one {action}: {rows:#?}");
    found[0]
}

async fn verify(app: &TestApp, token: &str) -> Value {
    let (status, body, _) = send(app, Method::GET, "/admin/logs/verify", token, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn administrative_actions_and_logins_are_audited() {
    for db in backends().await {
        administrative_actions_and_logins(&db).await;
    }
}

async fn administrative_actions_and_logins(db: &TestDb) {
    let app = app_on(db).await;
    let acme = org(&app, "acme").await;
    let admin_id = user(&app, acme, "admin@acme.example", Role::Admin).await;
    let admin = token(&app, "admin@acme.example").await;

    // Refused logins: a known account is audited (never the password); an unknown email
    // belongs to no organization.
    assert_eq!(
        login_with(&app, "Admin@Acme.example", WRONG_PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(
        login_with(&app, "nobody@acme.example", WRONG_PASSWORD)
            .await
            .status(),
        401
    );

    // Users.
    let (status, created, create_request_id) = send(
        &app,
        Method::POST,
        "/api/admin/users",
        &admin,
        Some(json!({"email": "vera@acme.example", "name": "Vera", "password": PASSWORD, "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let vera = created["id"].as_str().unwrap().to_owned();
    let (status, _, _) = send(
        &app,
        Method::PUT,
        &format!("/api/admin/users/{vera}"),
        &admin,
        Some(json!({"role": "user", "password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);

    // API keys.
    let (status, key, _) = send(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "ci", "permissions": ["servers:read"]})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let (key_id, key_secret) = (
        key["id"].as_str().unwrap().to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    );
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        &format!("/auth/api-keys/{key_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);

    // A2A: a revoked app key cannot get a token, and that refusal is audited.
    let (_, app_key, _) = send(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "robot", "type": "a2a"})),
    )
    .await;
    let (app_key_id, app_secret) = (
        app_key["id"].as_str().unwrap().to_owned(),
        app_key["key"].as_str().unwrap().to_owned(),
    );
    send(
        &app,
        Method::DELETE,
        &format!("/auth/api-keys/{app_key_id}"),
        &admin,
        None,
    )
    .await;
    let res = app
        .client
        .post(app.url("/auth/a2a/token"))
        .json(&json!({"grant_type": "client_credentials", "client_secret": app_secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Policies; the dry run is not audited.
    let rule = json!({
        "name": "no-env-dump",
        "effect": "deny",
        "subjects": [{"role": "user"}],
        "resources": [{"server": "everything*", "kind": "tool", "name": "get-env"}],
        "actions": ["list", "call"]
    });
    let (status, policy, _) = send(
        &app,
        Method::POST,
        "/api/admin/policies",
        &admin,
        Some(rule.clone()),
    )
    .await;
    assert_eq!(status, 201, "{policy}");
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    let mut disabled = rule.clone();
    disabled["enabled"] = json!(false);
    let (status, _, _) = send(
        &app,
        Method::PUT,
        &format!("/api/admin/policies/{policy_id}"),
        &admin,
        Some(disabled),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/api/admin/policies/evaluate",
        &admin,
        Some(json!({
            "subject": {"role": "user"},
            "action": "call",
            "target": {"namespace": "prod", "server": "everything", "item": {"kind": "tool", "name": "get-env"}},
        })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/policies/{policy_id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);

    // Password change (a wrong current password first), then logout of a second login.
    let (status, _, _) = send(
        &app,
        Method::PUT,
        "/auth/profile",
        &admin,
        Some(json!({"current_password": WRONG_PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = send(
        &app,
        Method::PUT,
        "/auth/profile",
        &admin,
        Some(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200);
    let res = login_with(&app, "admin@acme.example", NEW_PASSWORD).await;
    let second: Value = res.json().await.unwrap();
    let (status, _, _) = send(
        &app,
        Method::POST,
        "/auth/logout",
        second["access_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(status, 204);

    let (status, _, _) = send(
        &app,
        Method::DELETE,
        &format!("/api/admin/users/{vera}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 204);

    let (rows, text) = audit_rows(&app, &admin).await;
    let actions: Vec<&str> = rows.iter().rev().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "auth.login",
            "auth.login_failed",
            "user.create",
            "user.update",
            "api_key.create",
            "api_key.revoke",
            "api_key.create",
            "api_key.revoke",
            "auth.a2a_token_failed",
            "policy.create",
            "policy.update",
            "policy.delete",
            "auth.password_change_failed",
            "auth.password_change",
            "auth.login",
            "auth.logout",
            "user.delete",
        ],
        "in order, and nothing for the unknown email or the dry run"
    );
    let seqs: Vec<i64> = rows.iter().rev().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=17).collect::<Vec<_>>());

    for r in &rows {
        assert_eq!(r["ip"], "127.0.0.1", "{r}");
        assert!(r["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
        assert_eq!(r["hash"].as_str().unwrap().len(), 64);
        let anonymous =
            ["auth.login_failed", "auth.a2a_token_failed"].contains(&r["action"].as_str().unwrap());
        if anonymous {
            assert_eq!(
                (r["actor_type"].clone(), r["actor_id"].clone()),
                (json!("anonymous"), Value::Null)
            );
        } else {
            assert_eq!(
                (r["actor_type"].clone(), r["actor_id"].clone()),
                (json!("user"), json!(admin_id)),
                "{r}"
            );
        }
    }
    for secret in [
        PASSWORD,
        WRONG_PASSWORD,
        NEW_PASSWORD,
        key_secret.as_str(),
        "$2b$",
        "password_hash",
    ] {
        assert!(
            !text.contains(secret),
            "the audit trail must not contain {secret:?}"
        );
    }

    let login = &find(&rows, "auth.login")[1];
    assert_eq!(
        (login["target_type"].clone(), login["target_id"].clone()),
        (json!("user"), json!(admin_id))
    );
    let failed = one(&rows, "auth.login_failed");
    assert_eq!(failed["target_id"], admin_id.as_str());
    assert_eq!(
        failed["after_state"],
        json!({"email": "admin@acme.example", "reason": "bad_password"})
    );
    let created = one(&rows, "user.create");
    assert_eq!(
        (created["target_type"].clone(), created["target_id"].clone()),
        (json!("user"), json!(vera))
    );
    assert_eq!(
        created["request_id"],
        create_request_id.as_str(),
        "the response's X-Request-Id"
    );
    assert_eq!(
        created["after_state"],
        json!({"email": "vera@acme.example", "name": "Vera", "role": "viewer", "is_active": true})
    );
    assert_eq!(created["before_state"], Value::Null);
    let updated = one(&rows, "user.update");
    assert_eq!(updated["before_state"]["role"], "viewer");
    assert_eq!(updated["after_state"]["role"], "user");
    assert_eq!(updated["after_state"]["password_changed"], true);
    let deleted = one(&rows, "user.delete");
    assert_eq!(
        (
            deleted["before_state"]["email"].clone(),
            deleted["after_state"].clone()
        ),
        (json!("vera@acme.example"), Value::Null)
    );

    let key_created = &find(&rows, "api_key.create")[1];
    assert_eq!(
        (
            key_created["target_type"].clone(),
            key_created["target_id"].clone()
        ),
        (json!("api_key"), json!(key_id))
    );
    assert_eq!(key_created["after_state"]["permissions"], json!(["servers:read"]));
    let key_revoked = &find(&rows, "api_key.revoke")[1];
    assert_eq!(key_revoked["target_id"], key_id.as_str());
    assert_eq!(key_revoked["before_state"]["name"], "ci");
    let a2a = one(&rows, "auth.a2a_token_failed");
    assert_eq!(
        (a2a["target_id"].clone(), a2a["after_state"].clone()),
        (json!(app_key_id), json!({"reason": "revoked"}))
    );

    let p_created = one(&rows, "policy.create");
    assert_eq!(
        (p_created["target_type"].clone(), p_created["target_id"].clone()),
        (json!("policy"), json!(policy_id))
    );
    assert_eq!(p_created["after_state"]["rule"]["effect"], "deny");
    let p_updated = one(&rows, "policy.update");
    assert_eq!(
        (
            p_updated["before_state"]["enabled"].clone(),
            p_updated["after_state"]["enabled"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(one(&rows, "policy.delete")["before_state"]["name"], "no-env-dump");
    assert_eq!(
        one(&rows, "auth.password_change_failed")["after_state"],
        json!({"reason": "wrong_current_password"})
    );
    assert_eq!(one(&rows, "auth.logout")["target_id"], admin_id.as_str());

    let report = verify(&app, &admin).await;
    assert_eq!(
        report,
        json!({"ok": true, "rows_checked": 17, "first_broken": null})
    );
}

#[tokio::test]
async fn an_edited_row_is_named_by_verify() {
    for db in backends().await {
        an_edited_row(&db).await;
    }
}

async fn an_edited_row(db: &TestDb) {
    let app = app_on(db).await;
    let acme = org(&app, "acme").await;
    user(&app, acme, "admin@acme.example", Role::Admin).await;
    let admin = token(&app, "admin@acme.example").await;
    for name in ["one", "two", "three"] {
        let (status, _, _) = send(
            &app,
            Method::POST,
            "/auth/api-keys",
            &admin,
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (rows, _) = audit_rows(&app, &admin).await;
    assert_eq!(rows.len(), 4);
    assert_eq!(verify(&app, &admin).await["ok"], true);

    // Someone with database access hides who created key "two" (seq 3).
    let victim = rows.iter().find(|r| r["seq"] == 3).unwrap();
    let id = victim["id"].as_str().unwrap();
    assert_eq!(
        db.execute(&format!(
            "UPDATE audit_logs SET actor_id = 'nobody' WHERE org_id = '{acme}' AND seq = 3"
        )),
        1
    );
    let report = verify(&app, &admin).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["rows_checked"], 3);
    assert_eq!(report["first_broken"]["seq"], 3);
    assert_eq!(report["first_broken"]["id"], id);
    let reason = report["first_broken"]["reason"].as_str().unwrap();
    assert!(reason.contains("does not match its hash"), "{reason}");

    // Deleting the newest row instead is named too.
    db.execute(&format!(
        "UPDATE audit_logs SET actor_id = '{}' WHERE org_id = '{acme}' AND seq = 3",
        victim["actor_id"].as_str().unwrap()
    ));
    assert_eq!(verify(&app, &admin).await["ok"], true, "restored");
    db.execute(&format!(
        "DELETE FROM audit_logs WHERE org_id = '{acme}' AND seq = 4"
    ));
    let report = verify(&app, &admin).await;
    assert_eq!(report["first_broken"]["seq"], 4);
    assert_eq!(report["first_broken"]["id"], Value::Null);
}

#[tokio::test]
async fn only_the_organizations_admins_read_its_trail() {
    for db in backends().await {
        tenancy_and_listing(&db).await;
    }
}

async fn tenancy_and_listing(db: &TestDb) {
    let app = app_on(db).await;
    let acme = org(&app, "acme").await;
    let globex = org(&app, "globex").await;
    user(&app, acme, "admin@acme.example", Role::Admin).await;
    let viewer_id = user(&app, acme, "viewer@acme.example", Role::Viewer).await;
    user(&app, globex, "admin@globex.example", Role::Admin).await;
    let admin = token(&app, "admin@acme.example").await;
    let viewer = token(&app, "viewer@acme.example").await;
    for i in 0..4 {
        let (status, _, _) = send(
            &app,
            Method::POST,
            "/auth/api-keys",
            &admin,
            Some(json!({"name": format!("k{i}")})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let other = token(&app, "admin@globex.example").await;
    app.flush_audit().await;

    // Viewers hold no audit:read.
    for path in ["/admin/logs?kind=audit", "/admin/logs/verify"] {
        let (status, body, _) = send(&app, Method::GET, path, &viewer, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }

    // Another organization sees only its own record (its admin's login).
    let (rows, text) = audit_rows(&app, &other).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["action"], "auth.login");
    assert!(
        !text.contains("acme") && !text.contains(&acme.to_string()),
        "{text}"
    );
    assert_eq!(
        verify(&app, &other).await,
        json!({"ok": true, "rows_checked": 1, "first_broken": null})
    );

    // Acme: 2 logins + 4 keys, paged two at a time, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/logs?kind=audit&limit=2&cursor={c}"),
            None => "/admin/logs?kind=audit&limit=2".to_owned(),
        };
        let (status, page, _) = send(&app, Method::GET, &path, &admin, None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, [6, 5, 4, 3, 2, 1]);

    // Filters.
    let (_, page, _) = send(
        &app,
        Method::GET,
        "/admin/logs?kind=audit&action=auth.login",
        &admin,
        None,
    )
    .await;
    let logins: Vec<&Value> = page["items"].as_array().unwrap().iter().collect();
    assert_eq!(logins.len(), 2);
    let (_, page, _) = send(
        &app,
        Method::GET,
        &format!("/admin/logs?kind=audit&actor_id={viewer_id}"),
        &admin,
        None,
    )
    .await;
    let by_viewer = page["items"].as_array().unwrap();
    assert_eq!(by_viewer.len(), 1);
    assert_eq!(by_viewer[0]["action"], "auth.login");
    let (_, page, _) = send(
        &app,
        Method::GET,
        "/admin/logs?kind=audit&from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z",
        &admin,
        None,
    )
    .await;
    assert_eq!(page["items"], json!([]));

    // Bad requests.
    for (path, status) in [
        ("/admin/logs", 400),
        ("/admin/logs?kind=requests", 400),
        ("/admin/logs?kind=audit&cursor=abc", 422),
        ("/admin/logs?kind=audit&cursor=-1", 422),
        (
            "/admin/logs?kind=audit&from=2001-01-01T00:00:00Z&to=2000-01-01T00:00:00Z",
            422,
        ),
        ("/admin/logs?kind=audit&colour=red", 400),
    ] {
        let (got, body, _) = send(&app, Method::GET, path, &admin, None).await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let res = app
        .client
        .get(app.url("/admin/logs/verify"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
