//! The built binaries as separate processes: configuration errors and signals.

use gateway_e2e::process::{Running, command, run_to_exit};

#[tokio::test]
async fn production_with_the_default_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command("gateway-api", dir.path());
    cmd.env("GATEWAY_ENV", "production");
    let out = run_to_exit(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("auth.jwt_secret"), "{}", out.stderr);
    assert!(
        out.stderr.contains("secrets.master_key"),
        "production needs its own master key too: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(gateway_types::config::DEFAULT_JWT_SECRET),
        "the secret itself is never printed"
    );
}

#[tokio::test]
async fn production_refuses_the_development_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command("gateway-api", dir.path());
    cmd.env("GATEWAY_ENV", "production")
        .env("GATEWAY__AUTH__JWT_SECRET", "k".repeat(40))
        .env(
            "GATEWAY__SECRETS__MASTER_KEY",
            gateway_types::config::DEVELOPMENT_MASTER_KEY,
        );
    let out = run_to_exit(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("secrets.master_key"), "{}", out.stderr);
    assert!(out.stderr.contains("development key"), "{}", out.stderr);
    assert!(
        !out.stderr.contains(gateway_types::config::DEVELOPMENT_MASTER_KEY),
        "the key itself is never printed"
    );
}

#[tokio::test]
async fn an_invalid_port_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command("gateway-api", dir.path());
    cmd.env("GATEWAY__SERVER__PORT", "abc");
    let out = run_to_exit(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("server.port"), "{}", out.stderr);
}

#[tokio::test]
async fn the_worker_validates_configuration_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command("gateway-worker", dir.path());
    cmd.env("GATEWAY_ENV", "production");
    let out = run_to_exit(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("auth.jwt_secret"), "{}", out.stderr);
}

#[tokio::test]
async fn sigterm_stops_gracefully() {
    let api = Running::api(&[]).await;
    api.signal("TERM").await;
    let out = api.wait().await;
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("SIGTERM"), "{}", out.stdout);
    assert!(out.stdout.contains("gateway-api stopped"), "{}", out.stdout);
}

#[tokio::test]
async fn sigint_stops_gracefully() {
    let api = Running::api(&[]).await;
    api.signal("INT").await;
    let out = api.wait().await;
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("SIGINT"), "{}", out.stdout);
}

#[tokio::test]
async fn the_worker_stops_on_sigterm() {
    let worker = Running::worker(&[]).await;
    worker.signal("TERM").await;
    let out = worker.wait().await;
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.contains("gateway-worker stopped"), "{}", out.stdout);
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let mut setup = command("gateway-api", dir.path());
    setup
        .args(["setup-admin"])
        .env("GATEWAY__DATABASE__URL", &db)
        .env("GATEWAY__AUTH__BCRYPT_COST", "4");
    let out = run_to_exit(setup).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("admin admin@admin.com: created"),
        "{}",
        out.stdout
    );

    // Debug logs everywhere, as an operator chasing a problem would run it.
    let api = Running::api(&[
        ("GATEWAY__DATABASE__URL", &db),
        ("GATEWAY__AUTH__BCRYPT_COST", "4"),
        ("RUST_LOG", "debug"),
    ])
    .await;
    let base = format!("http://{}", api.address.unwrap());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
        let mut req = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let pair = post(
        "/auth/login",
        None,
        serde_json::json!({"email": "admin@admin.com", "password": "qwerty123"}),
    )
    .await;
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let key = post("/auth/api-keys", Some(&access), serde_json::json!({"name": "k"})).await;
    let key_secret = key["key"].as_str().unwrap().to_owned();
    let app_key = post(
        "/auth/api-keys",
        Some(&access),
        serde_json::json!({"name": "a", "type": "a2a"}),
    )
    .await;
    let app_secret = app_key["key"].as_str().unwrap().to_owned();
    let a2a = post(
        "/auth/a2a/token",
        None,
        serde_json::json!({"client_secret": app_secret}),
    )
    .await;
    let rotated = post(
        "/auth/refresh",
        None,
        serde_json::json!({"refresh_token": refresh}),
    )
    .await;
    // Servers with sealed secrets: created, and one refused for a bad token.
    let remote = post(
        "/gateway/servers",
        Some(&access),
        serde_json::json!({
            "name": "logged-remote", "protocol": "http", "url": "https://mcp.example.com/mcp",
            "credentials": {"headers": {"X-Api-Key": "hdr-logged-secret-1"}, "bearer_token": "bearer-logged-secret-2"}
        }),
    )
    .await;
    assert_eq!(remote["has_credentials"], true, "{remote}");
    let local = post(
        "/gateway/servers",
        Some(&access),
        serde_json::json!({
            "name": "logged-stdio", "protocol": "stdio", "command": "true",
            "environment": {"TOKEN": "env-logged-secret-3"}
        }),
    )
    .await;
    assert_eq!(local["environment_keys"], serde_json::json!(["TOKEN"]), "{local}");
    let refused = post(
        "/gateway/servers",
        Some(&access),
        serde_json::json!({
            "name": "logged-refused", "protocol": "http", "url": "https://mcp.example.com/mcp",
            "credentials": {"bearer_token": "bad token-logged-secret-4"}
        }),
    )
    .await;
    assert_eq!(refused["error"]["code"], "validation_failed", "{refused}");
    let res = client
        .get(format!("{base}/auth/profile"))
        .header("x-api-key", &key_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Failed attempts log too: wrong password, a garbage token.
    post(
        "/auth/login",
        None,
        serde_json::json!({"email": "admin@admin.com", "password": "Wrong-secret-9"}),
    )
    .await;
    let _ = client
        .get(format!("{base}/auth/profile"))
        .bearer_auth("mcpgw_forged-and-logged?")
        .send()
        .await;

    api.signal("TERM").await;
    let out = api.wait().await;
    let logs = format!("{}\n{}", out.stdout, out.stderr);
    assert!(logs.contains("login"), "the flows were logged at all:\n{logs}");
    for (what, secret) in [
        ("admin password", "qwerty123".to_owned()),
        ("wrong password", "Wrong-secret-9".to_owned()),
        ("access token", access),
        ("refresh token", refresh),
        (
            "rotated refresh token",
            rotated["refresh_token"].as_str().unwrap().to_owned(),
        ),
        ("API key", key_secret.clone()),
        ("API key hash", gateway_auth::secret::hash_secret(&key_secret)),
        ("a2a key", app_secret),
        ("a2a token", a2a["access_token"].as_str().unwrap().to_owned()),
        ("JWT secret", gateway_types::config::DEFAULT_JWT_SECRET.to_owned()),
        ("bcrypt hash", "$2b$04$".to_owned()),
        ("server header", "hdr-logged-secret-1".to_owned()),
        ("server bearer token", "bearer-logged-secret-2".to_owned()),
        ("server environment", "env-logged-secret-3".to_owned()),
        ("refused bearer token", "logged-secret-4".to_owned()),
        ("sealed value", "v1:k1:".to_owned()),
        (
            "master key",
            gateway_types::config::DEVELOPMENT_MASTER_KEY.to_owned(),
        ),
    ] {
        assert!(!logs.contains(&secret), "{what} appears in the logs");
    }
}
