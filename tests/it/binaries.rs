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
        !out.stderr.contains(gateway_types::config::DEFAULT_JWT_SECRET),
        "the secret itself is never printed"
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
