//! Authentication and authorization through the real HTTP server: flows and attacks.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use gateway_e2e::TestApp;
use gateway_types::ids::OrgId;
use gateway_types::model::{ApiKeyType, NewApiKey, NewOrganization, NewUser, Plan, Role};
use reqwest::{Method, Response};
use secrecy::SecretString;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-1";

async fn app() -> TestApp {
    TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .env("GATEWAY__AUTH__MAX_FAILED_LOGINS", "3")
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

async fn user(app: &TestApp, org: OrgId, email: &str, role: Role) -> String {
    user_with_cost(app, org, email, role, app.config.auth.bcrypt_cost).await
}

/// A user whose password hash has `cost`, as the gateway itself would have hashed it.
async fn user_with_cost(app: &TestApp, org: OrgId, email: &str, role: Role, cost: u32) -> String {
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), cost).unwrap();
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

async fn login(app: &TestApp, email: &str) -> Value {
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login {email}");
    res.json().await.unwrap()
}

async fn token_for(app: &TestApp, org: OrgId, email: &str, role: Role) -> String {
    user(app, org, email, role).await;
    login(app, email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

fn without_request_id(mut v: Value) -> Value {
    v["error"]["request_id"] = json!("-");
    v
}

#[tokio::test]
async fn login_profile_refresh_logout() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    user(&app, acme, "Alice@Example.com", Role::User).await;

    let pair = login(&app, "alice@example.COM ").await;
    let keys: Vec<&str> = pair.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let access = pair["access_token"].as_str().unwrap();

    let res = call(&app, Method::GET, "/auth/profile", access, None).await;
    assert_eq!(res.status(), 200);
    let profile: Value = res.json().await.unwrap();
    assert_eq!(profile["email"], "alice@example.com");
    assert_eq!(profile["role"], "user");
    assert!(profile.get("password_hash").is_none());

    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": pair["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    assert_ne!(rotated["refresh_token"], pair["refresh_token"]);
    let new_access = rotated["access_token"].as_str().unwrap();
    assert_eq!(
        call(&app, Method::GET, "/auth/profile", new_access, None)
            .await
            .status(),
        200
    );

    let res = call(&app, Method::POST, "/auth/logout", new_access, None).await;
    assert_eq!(res.status(), 204);
    let res = call(&app, Method::GET, "/auth/profile", new_access, None).await;
    assert_eq!(res.status(), 401, "a logged-out access token is deny-listed");
    let res = app
        .client
        .post(app.url("/auth/refresh"))
        .json(&json!({"refresh_token": rotated["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "logout ends the login's refresh tokens");
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_login() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    user(&app, acme, "bob@example.com", Role::User).await;
    let first = login(&app, "bob@example.com").await;
    let refresh = |t: &Value| {
        let body = json!({"refresh_token": t["refresh_token"]});
        let req = app.client.post(app.url("/auth/refresh")).json(&body);
        async move { req.send().await.unwrap() }
    };
    let second: Value = refresh(&first).await.json().await.unwrap();
    // The attacker replays the first token: refused, and the legitimate second one dies too.
    let res = refresh(&first).await;
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    assert_eq!(refresh(&second).await.status(), 401);
    // Another login is unaffected.
    let other = login(&app, "bob@example.com").await;
    assert_eq!(refresh(&other).await.status(), 200);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "8")
        .spawn()
        .await;
    let acme = org(&app, "acme").await;
    user(&app, acme, "carol@example.com", Role::User).await;
    let attempt = |email: &'static str, password: &'static str| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .json(&json!({"email": email, "password": password}));
        async move {
            let start = Instant::now();
            let res = req.send().await.unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap();
            (status, without_request_id(body), start.elapsed())
        }
    };
    // Warm-up: the first unknown-email attempt also prepares the dummy hash.
    attempt("warm-up@example.com", "Whatever-123").await;
    let mut unknown = Duration::ZERO;
    let mut wrong = Duration::ZERO;
    for _ in 0..2 {
        let (s1, b1, t1) = attempt("nobody@example.com", "Whatever-123").await;
        let (s2, b2, t2) = attempt("carol@example.com", "Whatever-123").await;
        assert_eq!((s1, &b1), (s2, &b2), "same status and body");
        assert_eq!(s1, 401);
        unknown += t1;
        wrong += t2;
    }
    // Both paths run one bcrypt verification; a missing one would differ by orders of magnitude.
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.2..5.0).contains(&ratio),
        "unknown {unknown:?} vs wrong {wrong:?}"
    );
}

#[tokio::test]
async fn brute_force_locks_the_account_out() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    user(&app, acme, "dave@example.com", Role::User).await;
    let attempt = |password: &'static str| {
        let req = app
            .client
            .post(app.url("/auth/login"))
            .json(&json!({"email": "dave@example.com", "password": password}));
        async move { req.send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(attempt("Wrong-pass-1").await.status(), 401);
    }
    let res = attempt(PASSWORD).await;
    assert_eq!(res.status(), 429, "locked even with the right password");
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 900);
    // The lock is per account: an unknown email is answered as before (no enumeration either way).
    let other = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": "erin@example.com", "password": "Wrong-pass-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
}

#[tokio::test]
async fn api_keys_are_shown_once_and_work_until_revoked() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let token = token_for(&app, acme, "frank@example.com", Role::User).await;

    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &token,
        Some(json!({"name": "ci", "permissions": ["servers:read"], "expires_in_days": 30})),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let created: Value = res.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("mcpgw_"));
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));

    let listing = call(&app, Method::GET, "/auth/api-keys", &token, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(&secret), "the secret is never listed");
    assert!(!listing.contains("key_hash") && !listing.contains(&gateway_auth::secret::hash_secret(&secret)));
    let listed: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listed["items"][0]["name"], "ci");

    // Works as bearer and as X-API-Key, limited to its permissions.
    assert_eq!(
        call(&app, Method::GET, "/auth/profile", &secret, None)
            .await
            .status(),
        200
    );
    let res = app
        .client
        .get(app.url("/auth/profile"))
        .header("x-api-key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &secret,
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(res.status(), 403, "the key lacks keys:own");

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("/auth/api-keys/{id}"),
            &token,
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        call(&app, Method::GET, "/auth/profile", &secret, None)
            .await
            .status(),
        401
    );

    // An expired key fails (created directly: the API refuses past expiry dates).
    let expired = gateway_auth::secret::generate_api_key().unwrap();
    app.stores
        .api_keys
        .create(
            acme,
            NewApiKey {
                user_id: Some(
                    app.stores
                        .users
                        .find_by_email("frank@example.com")
                        .await
                        .unwrap()
                        .unwrap()
                        .id,
                ),
                key_type: ApiKeyType::User,
                name: "old".into(),
                prefix: expired.display_prefix.clone(),
                key_hash: expired.hash.clone(),
                namespace_id: None,
                permissions: vec![],
                expires_at: Some(Utc::now() - chrono::Duration::minutes(1)),
            },
        )
        .await
        .unwrap();
    let res = call(
        &app,
        Method::GET,
        "/auth/profile",
        secrecy::ExposeSecret::expose_secret(&expired.secret),
        None,
    )
    .await;
    assert_eq!(res.status(), 401);

    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &token,
        Some(json!({"name": "x", "permissions": ["users:write"]})),
    )
    .await;
    assert_eq!(res.status(), 403, "a key cannot exceed its owner's role");
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &token,
        Some(json!({"name": "x", "type": "a2a"})),
    )
    .await;
    assert_eq!(res.status(), 403, "a2a keys need keys:manage");
}

#[tokio::test]
async fn app_to_app_tokens() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let admin = token_for(&app, acme, "grace@example.com", Role::Admin).await;
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "billing-bot", "type": "a2a"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let key: Value = res.json().await.unwrap();
    assert_eq!(key["type"], "a2a");
    assert_eq!(key["user_id"], Value::Null);
    assert_eq!(key["permissions"], json!(["mcp:use"]));

    let res = app
        .client
        .post(app.url("/auth/a2a/token"))
        .json(&json!({"grant_type": "client_credentials", "client_secret": key["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tok: Value = res.json().await.unwrap();
    assert!(tok.get("refresh_token").is_none());
    let access = tok["access_token"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["typ"], "a2a");
    assert_eq!(claims["scope"], json!(["mcp:use"]));
    assert_eq!(claims["org"], acme.to_string());
    // An app has no profile and no user permissions.
    assert_eq!(
        call(&app, Method::GET, "/auth/profile", access, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        call(&app, Method::GET, "/api/admin/users", access, None)
            .await
            .status(),
        403
    );

    // A user key is not an app credential.
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "mine"})),
    )
    .await;
    let user_key: Value = res.json().await.unwrap();
    let res = app
        .client
        .post(app.url("/auth/a2a/token"))
        .json(&json!({"client_secret": user_key["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .post(app.url("/auth/a2a/token"))
        .json(&json!({"grant_type": "password", "client_secret": key["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn every_protected_route_enforces_its_permission() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let target = user(&app, acme, "target@example.com", Role::Viewer).await;
    let admin = token_for(&app, acme, "admin@example.com", Role::Admin).await;
    let member = token_for(&app, acme, "member@example.com", Role::User).await;
    let viewer = token_for(&app, acme, "viewer@example.com", Role::Viewer).await;
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &admin,
        Some(json!({"name": "bot", "type": "a2a"})),
    )
    .await;
    let app_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // (method, path, body, [admin, user, viewer, a2a app] may pass the permission check)
    let users_path = format!("/api/admin/users/{target}");
    let routes: Vec<(Method, &str, Option<Value>, [bool; 4])> = vec![
        (Method::GET, "/api/admin/users", None, [true, false, false, false]),
        (
            Method::POST,
            "/api/admin/users",
            Some(
                json!({"email": "n@example.com", "name": "N", "password": "Passw0rd-new", "role": "viewer"}),
            ),
            [true, false, false, false],
        ),
        (Method::GET, &users_path, None, [true, false, false, false]),
        (
            Method::PUT,
            &users_path,
            Some(json!({"name": "Renamed"})),
            [true, false, false, false],
        ),
        (Method::GET, "/auth/api-keys", None, [true, true, true, false]),
        (
            Method::POST,
            "/auth/api-keys",
            Some(json!({"name": "k"})),
            [true, true, true, false],
        ),
        (Method::GET, "/auth/profile", None, [true, true, true, false]),
        (
            Method::GET,
            "/api/admin/policies",
            None,
            [true, true, true, false],
        ),
        (
            Method::POST,
            "/api/admin/policies",
            Some(json!({"name": "p", "effect": "deny", "actions": ["call"]})),
            [true, false, false, false],
        ),
        (Method::GET, "/gateway/servers", None, [true, true, true, false]),
        (
            Method::POST,
            "/api/admin/policies/evaluate",
            Some(json!({"subject": {"role": "user"}, "action": "call", "target": {}})),
            [true, true, true, false],
        ),
        (
            Method::GET,
            "/api/admin/rate-limits",
            None,
            [true, true, true, false],
        ),
        (
            Method::GET,
            "/api/admin/rate-limits/usage",
            None,
            [true, true, true, false],
        ),
        (
            Method::POST,
            "/api/admin/rate-limits",
            Some(json!({"name": "r", "scope": "tool", "limit": 5})),
            [true, false, false, false],
        ),
    ];
    for (method, path, body, allowed) in routes {
        for (who, token) in [
            ("admin", &admin),
            ("user", &member),
            ("viewer", &viewer),
            ("app", &app_key),
        ] {
            let i = ["admin", "user", "viewer", "app"]
                .iter()
                .position(|w| *w == who)
                .unwrap();
            let status = call(&app, method.clone(), path, token, body.clone())
                .await
                .status();
            if allowed[i] {
                assert!(status.is_success(), "{who} {method} {path}: {status}");
            } else {
                assert_eq!(status, 403, "{who} {method} {path}");
            }
        }
        // Without credentials: 401 with the RFC 9728 challenge.
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "anonymous {method} {path}");
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("resource_metadata=")
        );
    }
    // Delete last: the target must exist for the table above.
    assert_eq!(
        call(&app, Method::DELETE, &users_path, &viewer, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        call(&app, Method::DELETE, &users_path, &admin, None)
            .await
            .status(),
        204
    );
}

#[tokio::test]
async fn another_organizations_resources_answer_404() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let globex = org(&app, "globex").await;
    let acme_user = user(&app, acme, "a-user@acme.example", Role::User).await;
    let acme_admin = token_for(&app, acme, "a-admin@acme.example", Role::Admin).await;
    let globex_admin = token_for(&app, globex, "g-admin@globex.example", Role::Admin).await;
    let res = call(
        &app,
        Method::POST,
        "/auth/api-keys",
        &acme_admin,
        Some(json!({"name": "acme-key"})),
    )
    .await;
    let acme_key = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let path = format!("/api/admin/users/{acme_user}");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"name": "pwned"}))),
        (Method::DELETE, None),
    ] {
        let res = call(&app, method.clone(), &path, &globex_admin, body).await;
        assert_eq!(res.status(), 404, "{method} another org's user");
    }
    let res = call(
        &app,
        Method::DELETE,
        &format!("/auth/api-keys/{acme_key}"),
        &globex_admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    let listed: Value = call(&app, Method::GET, "/api/admin/users", &globex_admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1, "only globex's own admin: {listed}");
    // Untouched.
    let acme_view: Value = call(&app, Method::GET, &path, &acme_admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme_view["name"], "Test");
    // A key of acme still works (it was not revoked by globex).
    let keys: Value = call(&app, Method::GET, "/auth/api-keys", &acme_admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["items"][0]["revoked_at"], Value::Null);
}

#[tokio::test]
async fn forged_tokens_are_refused_with_a_challenge() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let token = token_for(&app, acme, "heidi@example.com", Role::Viewer).await;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    let elevated = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let none_header =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": "none", "kid": header["kid"]})).unwrap());

    for (what, forged) in [
        (
            "tampered payload",
            format!("{}.{elevated}.{}", parts[0], parts[2]),
        ),
        ("alg none", format!("{none_header}.{elevated}.")),
        ("garbage", "not.a.token".to_owned()),
        ("unknown api key", format!("mcpgw_{}", "A".repeat(43))),
    ] {
        let res = call(&app, Method::GET, "/api/admin/users", &forged, None).await;
        assert_eq!(res.status(), 401, "{what}");
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn well_known_documents() {
    let app = app().await;
    let res = app.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["resource"], app.url(""));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    let doc: Value = app
        .get("/.well-known/oauth-protected-resource/mcp")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], app.url("/mcp"));
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.unwrap();
    assert_eq!(jwks, json!({"keys": []}), "HS256 secrets are never published");
}

#[tokio::test]
async fn users_admin_and_profile_changes() {
    let app = app().await;
    let acme = org(&app, "acme").await;
    let admin = token_for(&app, acme, "ivan@example.com", Role::Admin).await;

    let res = call(
        &app,
        Method::POST,
        "/api/admin/users",
        &admin,
        Some(json!({"email": "judy@example.com", "name": "Judy", "password": "short", "role": "user"})),
    )
    .await;
    assert_eq!(res.status(), 422, "password policy");
    let res = call(
        &app,
        Method::POST,
        "/api/admin/users",
        &admin,
        Some(json!({"email": "judy@example.com", "name": "Judy", "password": PASSWORD, "role": "user"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let judy: Value = res.json().await.unwrap();
    let text = judy.to_string();
    assert!(!text.contains("$2") && !text.contains("password"), "{text}");
    let res = call(
        &app,
        Method::POST,
        "/api/admin/users",
        &admin,
        Some(json!({"email": "JUDY@example.com", "name": "J2", "password": PASSWORD, "role": "user"})),
    )
    .await;
    assert_eq!(res.status(), 409, "emails are unique, case-insensitively");

    // Judy changes her password: her other logins end, the current one goes on.
    let first = login(&app, "judy@example.com").await;
    let second = login(&app, "judy@example.com").await;
    let t2 = second["access_token"].as_str().unwrap();
    let res = call(
        &app,
        Method::PUT,
        "/auth/profile",
        t2,
        Some(json!({"new_password": "Another-pass-2"})),
    )
    .await;
    assert_eq!(res.status(), 422, "the current password is required");
    let res = call(
        &app,
        Method::PUT,
        "/auth/profile",
        t2,
        Some(json!({"current_password": "nope-nope-1", "new_password": "Another-pass-2"})),
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = call(
        &app,
        Method::PUT,
        "/auth/profile",
        t2,
        Some(json!({"name": "Judy B.", "current_password": PASSWORD, "new_password": "Another-pass-2"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Judy B.");
    let refresh = |t: &Value| {
        let req = app
            .client
            .post(app.url("/auth/refresh"))
            .json(&json!({"refresh_token": t["refresh_token"]}));
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(refresh(&first).await, 401, "the other login was revoked");
    assert_eq!(refresh(&second).await, 200, "the current login survives");

    // Admins cannot lock themselves out.
    let me = call(&app, Method::GET, "/auth/profile", &admin, None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let path = format!("/api/admin/users/{}", me["id"].as_str().unwrap());
    assert_eq!(
        call(&app, Method::PUT, &path, &admin, Some(json!({"role": "viewer"})))
            .await
            .status(),
        409
    );
    assert_eq!(
        call(&app, Method::DELETE, &path, &admin, None).await.status(),
        409
    );
    // Disabling a user stops their logins.
    let jpath = format!("/api/admin/users/{}", judy["id"].as_str().unwrap());
    assert_eq!(
        call(
            &app,
            Method::PUT,
            &jpath,
            &admin,
            Some(json!({"is_active": false}))
        )
        .await
        .status(),
        200
    );
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": "judy@example.com", "password": "Another-pass-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
