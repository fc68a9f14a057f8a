//! Namespaces and servers declared in configuration (`declarative.organizations.<slug>`),
//! checked by the loader ([`config_issues`]) and reconciled into the store when the api starts
//! ([`reconcile`]), so a deployment can be managed from version control.
//!
//! - A declared server takes the fields of `POST /gateway/servers`, validated by the same
//!   rules, with `namespace` (a slug) instead of `namespace_id`. Its secrets (`environment`
//!   values, `credentials.headers` values, `credentials.bearer_token`) may be written as
//!   `${VARIABLE}`, taken from the process environment when the configuration is loaded (`$$`
//!   is a literal `$`); a variable that is not set is a configuration error naming the key,
//!   never the value.
//! - Records created from configuration carry `source: config`. Reconciling creates what is
//!   missing, updates what differs (secrets are compared opened, so an unchanged file writes
//!   nothing) and deletes the `config` records the file no longer declares. Records created
//!   through the API are never changed: a declaration whose name or slug one of them already
//!   holds is skipped with an error in the log (a namespace of that slug can still be named by
//!   declared servers). A namespace no longer declared is kept while API-created servers or
//!   API keys are in it. The status of a declared server is `active` unless the file says
//!   `inactive`; the health checks' `degraded` and `down` are left alone.
//! - An organization named in the file that does not exist is created (plan `free`).
//! - Every change is audited with the `system` actor. Several api replicas starting at once
//!   reconcile one after the other (a job lock).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use gateway_logging::audit::{Actor, AuditEvent, actions};
use gateway_types::config::{ConfigIssue, DeclarativeConfig, DeclaredServer};
use gateway_types::ids::OrgId;
use gateway_types::model::{
    McpServer, McpServerPatch, Namespace, NamespacePatch, NewMcpServer, NewNamespace, NewOrganization, Plan,
    RecordSource, ServerStatus,
};
use gateway_types::store::StoreError;
use serde_json::Value;

use crate::routes::{
    Draft, ServerCreateBody, ServerView, namespace_problems, namespace_summary, server_summary,
};
use crate::state::AppState;

/// How long a starting api waits for another replica's reconciliation.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// The job lock's name.
const LOCK: &str = "declarative-config";

/// A declared server's document split into its namespace slug and the create body.
fn parse_server(doc: &Value) -> Result<(Option<String>, ServerCreateBody), String> {
    let Value::Object(map) = doc else {
        return Err("must be a mapping of server fields".to_owned());
    };
    let mut map = map.clone();
    if map.contains_key("namespace_id") {
        return Err("namespace_id: name the namespace by its slug, as namespace".to_owned());
    }
    let namespace = match map.remove("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(slug)) => Some(slug),
        Some(_) => return Err("namespace: must be a namespace slug".to_owned()),
    };
    let body = serde_json::from_value::<ServerCreateBody>(Value::Object(map)).map_err(|e| e.to_string())?;
    Ok((namespace, body))
}

/// Replaces `${NAME}` in `text` with the variable's value (`$$` is `$`).
fn interpolate(text: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let end = tail
                .find('}')
                .ok_or_else(|| "has an unterminated ${".to_owned())?;
            let name = &tail[..end];
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("names an invalid variable {name:?}"));
            }
            let value = vars
                .get(name)
                .ok_or_else(|| format!("names ${{{name}}}, which is not set"))?;
            out.push_str(value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Interpolates the secret fields of one server document in place; problems are keyed.
fn interpolate_secrets(
    doc: &mut Value,
    key: &str,
    vars: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) {
    let mut apply = |value: &mut Value, field: String| {
        if let Value::String(text) = value {
            match interpolate(text, vars) {
                Ok(done) => *text = done,
                Err(why) => issues.push(ConfigIssue::new(format!("{key}.{field}"), why)),
            }
        }
    };
    if let Some(Value::Object(env)) = doc.get_mut("environment") {
        for (name, value) in env.iter_mut() {
            apply(value, format!("environment.{name}"));
        }
    }
    if let Some(Value::Object(creds)) = doc.get_mut("credentials") {
        if let Some(Value::Object(headers)) = creds.get_mut("headers") {
            for (name, value) in headers.iter_mut() {
                apply(value, format!("credentials.headers.{name}"));
            }
        }
        if let Some(token) = creds.get_mut("bearer_token") {
            apply(token, "credentials.bearer_token".to_owned());
        }
    }
}

/// Checks every declaration (and interpolates `${VARIABLE}` in secrets from `vars`), keyed
/// `declarative.organizations.<slug>.<list>[i].<field>`.
pub(crate) fn config_issues(cfg: &mut DeclarativeConfig, vars: &HashMap<String, String>) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    for (org, decl) in &mut cfg.organizations {
        let base = format!("declarative.organizations.{org}");
        if org.is_empty() || org.len() > 64 || org.chars().any(|c| c.is_whitespace() || c.is_control()) {
            issues.push(ConfigIssue::new(
                base.clone(),
                "an organization slug must be 1-64 visible characters",
            ));
        }
        let mut slugs = HashSet::new();
        for (i, ns) in decl.namespaces.iter().enumerate() {
            let key = format!("{base}.namespaces[{i}]");
            let name = ns.name.clone().unwrap_or_else(|| ns.slug.clone());
            for p in namespace_problems(&ns.slug, &name, ns.description.as_deref()) {
                issues.push(ConfigIssue::new(key.clone(), p));
            }
            if !slugs.insert(ns.slug.clone()) {
                issues.push(ConfigIssue::new(format!("{key}.slug"), "repeats a declared slug"));
            }
        }
        let mut names = HashSet::new();
        for (i, server) in decl.servers.iter_mut().enumerate() {
            let key = format!("{base}.servers[{i}]");
            interpolate_secrets(&mut server.0, &key, vars, &mut issues);
            match parse_server(&server.0) {
                Err(why) => issues.push(ConfigIssue::new(key, why)),
                Ok((_, body)) => {
                    let draft = Draft::create(body);
                    let mut problems = Vec::new();
                    draft.problems(&mut problems);
                    for p in problems {
                        issues.push(ConfigIssue::new(key.clone(), p));
                    }
                    if !names.insert(draft.name().to_owned()) {
                        issues.push(ConfigIssue::new(
                            format!("{key}.name"),
                            "repeats a declared server name",
                        ));
                    }
                }
            }
        }
    }
    issues
}

/// Why reconciling failed (the api then refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error("the store failed while applying the declarative configuration")]
    Store(#[from] StoreError),
    /// Another replica held the lock for too long.
    #[error("another replica is still applying the declarative configuration after {0:?}")]
    Locked(Duration),
    /// A declared server could not be prepared (its secrets could not be sealed).
    #[error("a declared server could not be prepared")]
    Prepare(#[source] crate::error::ApiError),
}

/// What reconciling did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Records created.
    pub created: usize,
    /// Records changed.
    pub updated: usize,
    /// Records deleted.
    pub deleted: usize,
    /// Declarations not applied (see the log).
    pub skipped: usize,
}

fn audit(state: &AppState, org: OrgId, event: AuditEvent) {
    state.auditor.record(org, event);
}

fn event(action: &str) -> AuditEvent {
    AuditEvent::new(action, Actor::system())
}

/// Reconciles the declarative configuration into the store; see the module docs.
///
/// # Errors
/// The store failed, another replica held the lock for over a minute, or a secret could not
/// be sealed. Declarations that collide with API-created records are skipped, not errors.
pub async fn reconcile(state: &AppState) -> Result<ReconcileReport, ReconcileError> {
    let started = tokio::time::Instant::now();
    let lock = loop {
        if let Some(lock) = state.stores.locks.try_lock(LOCK).await? {
            break lock;
        }
        if started.elapsed() > LOCK_WAIT {
            return Err(ReconcileError::Locked(LOCK_WAIT));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let result = reconcile_locked(state).await;
    lock.release().await;
    let report = result?;
    if report != ReconcileReport::default() {
        tracing::info!(
            created = report.created,
            updated = report.updated,
            deleted = report.deleted,
            skipped = report.skipped,
            "declarative configuration applied"
        );
    }
    Ok(report)
}

async fn reconcile_locked(state: &AppState) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport::default();
    let declared = &state.config.declarative.organizations;
    // Organizations with declarations, and those holding records from an earlier file.
    let mut orgs: BTreeMap<OrgId, String> = BTreeMap::new();
    for slug in declared.keys() {
        let org = match state.stores.organizations.get_by_slug(slug).await? {
            Some(org) => org,
            None => {
                let org = state
                    .stores
                    .organizations
                    .create(NewOrganization {
                        name: slug.clone(),
                        slug: slug.clone(),
                        plan: Plan::Free,
                    })
                    .await?;
                tracing::info!(org.id = %org.id, org.slug = %slug, "organization created from the declarative configuration");
                report.created += 1;
                org
            }
        };
        orgs.insert(org.id, slug.clone());
    }
    let all_servers = state.stores.servers.list_all().await?;
    for org in state.stores.organizations.list().await? {
        if orgs.contains_key(&org.id) {
            continue;
        }
        let has_servers = all_servers
            .iter()
            .any(|s| s.org_id == org.id && s.source == RecordSource::Config);
        let has_namespaces = state
            .stores
            .namespaces
            .list_all(org.id)
            .await?
            .iter()
            .any(|n| n.source == RecordSource::Config);
        if has_servers || has_namespaces {
            orgs.insert(org.id, org.slug.clone());
        }
    }
    for (org, slug) in orgs {
        let decl = declared.get(&slug).cloned().unwrap_or_default();
        let servers: Vec<McpServer> = all_servers.iter().filter(|s| s.org_id == org).cloned().collect();
        reconcile_org(
            state,
            org,
            &slug,
            &decl.namespaces,
            &decl.servers,
            servers,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

async fn reconcile_org(
    state: &AppState,
    org: OrgId,
    slug: &str,
    namespaces: &[gateway_types::config::DeclaredNamespace],
    servers: &[DeclaredServer],
    existing_servers: Vec<McpServer>,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    let existing_ns = state.stores.namespaces.list_all(org).await?;
    let mut by_slug: HashMap<String, Namespace> =
        existing_ns.iter().map(|n| (n.slug.clone(), n.clone())).collect();

    // Namespaces: create and update.
    for decl in namespaces {
        let name = decl.name.clone().unwrap_or_else(|| decl.slug.clone());
        match by_slug.get(&decl.slug) {
            Some(ns) if ns.source == RecordSource::Api => {
                tracing::warn!(
                    org.slug = %slug,
                    namespace.slug = %decl.slug,
                    "a declared namespace exists and was created through the API; it is left as it is"
                );
            }
            Some(ns) => {
                if ns.name != name || ns.description != decl.description {
                    let updated = state
                        .stores
                        .namespaces
                        .update(
                            org,
                            ns.id,
                            NamespacePatch {
                                name: Some(name),
                                slug: None,
                                description: Some(decl.description.clone()),
                            },
                        )
                        .await?;
                    audit(
                        state,
                        org,
                        event(actions::NAMESPACE_UPDATE)
                            .target("namespace", updated.id)
                            .before(namespace_summary(ns))
                            .after(namespace_summary(&updated)),
                    );
                    report.updated += 1;
                    by_slug.insert(updated.slug.clone(), updated);
                }
            }
            None => {
                let created = state
                    .stores
                    .namespaces
                    .create(
                        org,
                        NewNamespace {
                            name,
                            slug: decl.slug.clone(),
                            description: decl.description.clone(),
                            source: RecordSource::Config,
                        },
                    )
                    .await?;
                audit(
                    state,
                    org,
                    event(actions::NAMESPACE_CREATE)
                        .target("namespace", created.id)
                        .after(namespace_summary(&created)),
                );
                report.created += 1;
                by_slug.insert(created.slug.clone(), created);
            }
        }
    }

    // Servers: create, update, delete.
    let mut declared_names = HashSet::new();
    for (i, doc) in servers.iter().enumerate() {
        let Ok((namespace, body)) = parse_server(&doc.0) else {
            // The loader refuses such a file; nothing to apply.
            report.skipped += 1;
            continue;
        };
        let mut draft = Draft::create(body);
        declared_names.insert(draft.name().to_owned());
        let namespace_id = match &namespace {
            None => None,
            Some(ns) => match by_slug.get(ns) {
                Some(n) => Some(n.id),
                None => {
                    tracing::error!(
                        org.slug = %slug,
                        server.name = %draft.name(),
                        namespace.slug = %ns,
                        "declarative.organizations.{slug}.servers[{i}]: no such namespace; the server is not applied"
                    );
                    report.skipped += 1;
                    continue;
                }
            },
        };
        draft.set_namespace(namespace_id);
        let new = new_server(state, &draft)?;
        match existing_servers.iter().find(|s| s.name == new.name) {
            Some(current) if current.source == RecordSource::Api => {
                tracing::error!(
                    org.slug = %slug,
                    server.name = %new.name,
                    "declarative.organizations.{slug}.servers[{i}]: a server of that name was created through the API; the declaration is not applied"
                );
                report.skipped += 1;
            }
            Some(current) => {
                if let Some(patch) = differences(state, current, &new, &draft) {
                    let updated = state.stores.servers.update(org, current.id, patch).await?;
                    state.servers.invalidate(org, current.id);
                    state.hub.drop_server(current.id);
                    let before = ServerView::new(state, current.clone());
                    let after = ServerView::new(state, updated.clone());
                    audit(
                        state,
                        org,
                        event(actions::SERVER_UPDATE)
                            .target("server", updated.id)
                            .before(server_summary(&before))
                            .after(server_summary(&after)),
                    );
                    report.updated += 1;
                }
            }
            None => {
                let created = state.stores.servers.create(org, new).await?;
                state.servers.invalidate(org, created.id);
                let view = ServerView::new(state, created.clone());
                audit(
                    state,
                    org,
                    event(actions::SERVER_CREATE)
                        .target("server", created.id)
                        .after(server_summary(&view)),
                );
                report.created += 1;
            }
        }
    }
    for server in existing_servers {
        if server.source == RecordSource::Config && !declared_names.contains(&server.name) {
            state.stores.servers.delete(org, server.id).await?;
            state.servers.invalidate(org, server.id);
            state.hub.drop_server(server.id);
            let view = ServerView::new(state, server.clone());
            audit(
                state,
                org,
                event(actions::SERVER_DELETE)
                    .target("server", server.id)
                    .before(server_summary(&view)),
            );
            report.deleted += 1;
        }
    }

    // Namespaces no longer declared.
    let declared_slugs: HashSet<&str> = namespaces.iter().map(|n| n.slug.as_str()).collect();
    let keys = state.stores.api_keys.list(org, None).await?;
    for ns in existing_ns {
        if ns.source != RecordSource::Config || declared_slugs.contains(ns.slug.as_str()) {
            continue;
        }
        // Servers in it now (those just created or moved included).
        let in_use = state
            .stores
            .servers
            .list(
                org,
                gateway_types::model::ServerFilter {
                    namespace_id: Some(ns.id),
                    ..Default::default()
                },
                gateway_types::model::Page { offset: 0, limit: 1 },
            )
            .await?
            .total
            > 0
            || keys.iter().any(|k| k.namespace_id == Some(ns.id));
        if in_use {
            tracing::warn!(
                org.slug = %slug,
                namespace.slug = %ns.slug,
                "a namespace no longer declared still holds servers or API keys created through the API; it is kept"
            );
            continue;
        }
        state.stores.namespaces.delete(org, ns.id).await?;
        audit(
            state,
            org,
            event(actions::NAMESPACE_DELETE)
                .target("namespace", ns.id)
                .before(namespace_summary(&ns)),
        );
        report.deleted += 1;
    }
    Ok(())
}

fn new_server(state: &AppState, draft: &Draft) -> Result<NewMcpServer, ReconcileError> {
    crate::routes::new_server(state, draft, RecordSource::Config).map_err(ReconcileError::Prepare)
}

/// The patch that makes `current` what `new` declares, or `None` when nothing differs.
fn differences(
    state: &AppState,
    current: &McpServer,
    new: &NewMcpServer,
    draft: &Draft,
) -> Option<McpServerPatch> {
    // The health checks own degraded and down; the file decides only inactive or not.
    let status = match (new.status, current.status) {
        (ServerStatus::Inactive, _) => ServerStatus::Inactive,
        (_, ServerStatus::Inactive) => ServerStatus::Active,
        (_, other) => other,
    };
    let opened = |sealed: &Option<gateway_types::model::Sealed>| -> Option<Value> {
        sealed.as_ref().and_then(|s| state.sealer.open_json(s).ok())
    };
    let (environment, credentials) = draft.secret_documents();
    let same_environment = opened(&current.environment) == environment;
    let same_credentials = opened(&current.credentials) == credentials;
    let same = current.namespace_id == new.namespace_id
        && current.description == new.description
        && current.protocol == new.protocol
        && current.url == new.url
        && current.command == new.command
        && current.args == new.args
        && current.working_dir == new.working_dir
        && current.timeout_seconds == new.timeout_seconds
        && current.max_retries == new.max_retries
        && current.health_check_url == new.health_check_url
        && current.tags == new.tags
        && current.metadata == new.metadata
        && current.status == status
        && same_environment
        && same_credentials;
    if same {
        return None;
    }
    Some(McpServerPatch {
        namespace_id: Some(new.namespace_id),
        name: None,
        description: Some(new.description.clone()),
        protocol: Some(new.protocol),
        url: Some(new.url.clone()),
        command: Some(new.command.clone()),
        args: Some(new.args.clone()),
        environment: (!same_environment).then(|| new.environment.clone()),
        credentials: (!same_credentials).then(|| new.credentials.clone()),
        working_dir: Some(new.working_dir.clone()),
        timeout_seconds: Some(new.timeout_seconds),
        max_retries: Some(new.max_retries),
        status: Some(status),
        health_check_url: Some(new.health_check_url.clone()),
        tags: Some(new.tags.clone()),
        metadata: Some(new.metadata.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([
            ("TOKEN".to_owned(), "s3cret".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ])
    }

    #[test]
    fn interpolation() {
        assert_eq!(interpolate("Bearer ${TOKEN}", &vars()).unwrap(), "Bearer s3cret");
        assert_eq!(interpolate("a$$b${EMPTY}c", &vars()).unwrap(), "a$bc");
        assert_eq!(interpolate("cost $5", &vars()).unwrap(), "cost $5");
        assert!(
            interpolate("${MISSING}", &vars())
                .unwrap_err()
                .contains("${MISSING}, which is not set")
        );
        assert!(
            interpolate("${TOKEN", &vars())
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            interpolate("${1X}", &vars())
                .unwrap_err()
                .contains("invalid variable")
        );
    }

    #[test]
    fn declared_servers_are_checked_like_api_ones_and_secrets_never_shown() {
        let mut cfg = DeclarativeConfig::default();
        cfg.organizations.insert(
            "acme".into(),
            gateway_types::config::DeclaredOrganization {
                namespaces: vec![gateway_types::config::DeclaredNamespace {
                    slug: "Bad Slug".into(),
                    name: None,
                    description: None,
                }],
                servers: vec![
                    DeclaredServer(serde_json::json!({
                        "name": "remote", "protocol": "http", "url": "https://mcp.example.com/mcp",
                        "namespace": "tools",
                        "credentials": {"bearer_token": "${TOKEN}", "headers": {"X-Key": "${NOPE}"}}
                    })),
                    DeclaredServer(serde_json::json!({"name": "remote", "protocol": "stdio"})),
                    DeclaredServer(serde_json::json!({"name": "x", "protocol": "http", "namespace_id": "y"})),
                ],
            },
        );
        let issues = config_issues(&mut cfg, &vars());
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        let text = text.join("\n");
        for want in [
            "declarative.organizations.acme.namespaces[0]: slug:",
            "declarative.organizations.acme.servers[0].credentials.headers.X-Key: names ${NOPE}, which is not set",
            "declarative.organizations.acme.servers[1]: command: is required for stdio servers",
            "declarative.organizations.acme.servers[1].name: repeats a declared server name",
            "declarative.organizations.acme.servers[2]: namespace_id: name the namespace by its slug",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("s3cret"), "{text}");
        let token = &cfg.organizations["acme"].servers[0].0["credentials"]["bearer_token"];
        assert_eq!(token, "s3cret", "interpolated in place");
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cret") && debug.contains("remote"), "{debug}");
    }
}
