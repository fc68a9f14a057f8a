//! What an audit record says: who ([`Actor`]) did what ([`AuditEvent::new`]'s action, from
//! [`actions`]) to which target, with which before/after summary, from where
//! ([`RequestContext`]).
//!
//! Summaries are chosen by the caller and must never contain a secret (password, password
//! hash, API key, token, client secret) nor request bodies or tool arguments: audit rows are
//! readable by every admin of the organization and are kept forever.

use std::net::IpAddr;

use gateway_types::model::NewAuditLog;
use serde_json::Value;

/// The stable action names. A name is `<target kind>.<verb>`; they are part of the API
/// (filters, dashboards), so they never change meaning.
pub mod actions {
    /// A successful password login (actor and target: the user).
    pub const AUTH_LOGIN: &str = "auth.login";
    /// A refused password login of a known account (actor: anonymous; target: the account).
    pub const AUTH_LOGIN_FAILED: &str = "auth.login_failed";
    /// A logout.
    pub const AUTH_LOGOUT: &str = "auth.logout";
    /// A user changed their own password.
    pub const AUTH_PASSWORD_CHANGE: &str = "auth.password_change";
    /// A refused password change (wrong current password).
    pub const AUTH_PASSWORD_CHANGE_FAILED: &str = "auth.password_change_failed";
    /// A refused A2A token exchange with a key of the organization.
    pub const AUTH_A2A_TOKEN_FAILED: &str = "auth.a2a_token_failed";
    /// An API key was created.
    pub const API_KEY_CREATE: &str = "api_key.create";
    /// An API key was revoked.
    pub const API_KEY_REVOKE: &str = "api_key.revoke";
    /// A user account was created.
    pub const USER_CREATE: &str = "user.create";
    /// A user account was updated.
    pub const USER_UPDATE: &str = "user.update";
    /// A user account was deleted.
    pub const USER_DELETE: &str = "user.delete";
    /// A policy rule was created.
    pub const POLICY_CREATE: &str = "policy.create";
    /// A policy rule was updated.
    pub const POLICY_UPDATE: &str = "policy.update";
    /// A policy rule was deleted.
    pub const POLICY_DELETE: &str = "policy.delete";
    /// A request was denied by policy.
    pub const POLICY_DENIED: &str = "policy.denied";
    /// A server was registered.
    pub const SERVER_CREATE: &str = "server.create";
    /// A server was updated.
    pub const SERVER_UPDATE: &str = "server.update";
    /// A server was deleted.
    pub const SERVER_DELETE: &str = "server.delete";
    /// A namespace was created.
    pub const NAMESPACE_CREATE: &str = "namespace.create";
    /// A namespace was updated.
    pub const NAMESPACE_UPDATE: &str = "namespace.update";
    /// A namespace was deleted.
    pub const NAMESPACE_DELETE: &str = "namespace.delete";
    /// A rate-limit rule was created.
    pub const RATE_LIMIT_CREATE: &str = "rate_limit.create";
    /// A rate-limit rule was updated.
    pub const RATE_LIMIT_UPDATE: &str = "rate_limit.update";
    /// A rate-limit rule was deleted.
    pub const RATE_LIMIT_DELETE: &str = "rate_limit.delete";
    /// An administrator broadcast a notification to MCP sessions (`/sse/broadcast`,
    /// `/ws/broadcast`).
    pub const ADMIN_BROADCAST: &str = "admin.broadcast";
    /// An administrator sent a notification to one WebSocket session (`/ws/send`).
    pub const ADMIN_WS_SEND: &str = "admin.ws_send";
    /// An administrator ran a request on a stdio server (`/stdio/execute`).
    pub const ADMIN_STDIO_EXECUTE: &str = "admin.stdio_execute";
    /// An administrator sent a notification to a stdio server's process (`/stdio/send`).
    pub const ADMIN_STDIO_SEND: &str = "admin.stdio_send";
}

/// Who acted: a kind (`user`, `api_key`, `app`, `external`, `anonymous`, `system`) and an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The kind, stored as `actor_type`.
    pub kind: String,
    /// The id within the kind, stored as `actor_id`.
    pub id: Option<String>,
}

impl Actor {
    /// An actor of `kind` with `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: Some(id.into()),
        }
    }

    /// Someone not (yet) authenticated, e.g. a failed login.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            kind: "anonymous".into(),
            id: None,
        }
    }

    /// The gateway itself (configuration, background jobs).
    #[must_use]
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: None,
        }
    }
}

/// Where a request came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The request id (`X-Request-Id`).
    pub request_id: Option<String>,
}

/// One audit event, built fluently and recorded with [`crate::audit::Auditor::record`].
///
/// ```
/// use gateway_logging::audit::{Actor, AuditEvent, RequestContext, actions};
/// use serde_json::json;
///
/// let event = AuditEvent::new(actions::POLICY_UPDATE, Actor::new("user", "0192…"))
///     .target("policy", "no-env-dump")
///     .before(json!({"enabled": true}))
///     .after(json!({"enabled": false}))
///     .context(&RequestContext { ip: "10.0.0.1".parse().ok(), request_id: Some("req-1".into()) });
/// assert_eq!(event.log().target_type.as_deref(), Some("policy"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent(NewAuditLog);

impl AuditEvent {
    /// `actor` did `action` (one of [`actions`], or a new `<kind>.<verb>` name).
    pub fn new(action: impl Into<String>, actor: Actor) -> Self {
        Self(NewAuditLog {
            actor_type: actor.kind,
            actor_id: actor.id,
            action: action.into(),
            target_type: None,
            target_id: None,
            before_state: None,
            after_state: None,
            ip: None,
            request_id: None,
        })
    }

    /// The target's kind (`user`, `policy`, `api_key`…) and id.
    #[must_use]
    pub fn target(mut self, kind: impl Into<String>, id: impl ToString) -> Self {
        self.0.target_type = Some(kind.into());
        self.0.target_id = Some(id.to_string());
        self
    }

    /// The summary before the change (no secrets). JSON `null` means "none".
    #[must_use]
    pub fn before(mut self, summary: Value) -> Self {
        self.0.before_state = (!summary.is_null()).then_some(summary);
        self
    }

    /// The summary after the change (no secrets). JSON `null` means "none".
    #[must_use]
    pub fn after(mut self, summary: Value) -> Self {
        self.0.after_state = (!summary.is_null()).then_some(summary);
        self
    }

    /// Client IP and request id.
    #[must_use]
    pub fn context(mut self, ctx: &RequestContext) -> Self {
        self.0.ip = ctx.ip.map(|ip| ip.to_string());
        self.0.request_id.clone_from(&ctx.request_id);
        self
    }

    /// The record as it will be appended.
    #[must_use]
    pub fn log(&self) -> &NewAuditLog {
        &self.0
    }

    /// The record to append, made storable: NUL characters (which PostgreSQL text and `jsonb`
    /// refuse) become U+FFFD, so no input can make an append fail and an event vanish.
    #[must_use]
    pub fn into_log(self) -> NewAuditLog {
        let mut log = self.0;
        for text in [&mut log.actor_type, &mut log.action] {
            scrub(text);
        }
        for text in [
            &mut log.actor_id,
            &mut log.target_type,
            &mut log.target_id,
            &mut log.ip,
            &mut log.request_id,
        ]
        .into_iter()
        .flatten()
        {
            scrub(text);
        }
        for value in [&mut log.before_state, &mut log.after_state]
            .into_iter()
            .flatten()
        {
            scrub_json(value);
        }
        log
    }
}

fn scrub(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{FFFD}");
    }
}

fn scrub_json(value: &mut Value) {
    match value {
        Value::String(s) => scrub(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (mut k, v) in entries {
                    scrub(&mut k);
                    map.insert(k, v);
                }
            }
            map.values_mut().for_each(scrub_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A request the policy engine denied, as the MCP pipeline reports it to
/// [`crate::audit::Auditor::policy_denied`]. Never carries the request's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDenial {
    /// Who asked.
    pub actor: Actor,
    /// The policy action (`list`, `call`, `read`, `get`, `admin`).
    pub action: String,
    /// Namespace slug of the target, if any.
    pub namespace: Option<String>,
    /// Server name of the target, if any.
    pub server: Option<String>,
    /// Item kind (`tool`, `resource`, `prompt`), if the target is an item.
    pub item_kind: Option<String>,
    /// Item name (tool or prompt name, resource URI), if the target is an item.
    pub item_name: Option<String>,
    /// Id of the deciding rule; `None` when the default effect decided.
    pub rule_id: Option<String>,
    /// Name of the deciding rule.
    pub rule_name: Option<String>,
    /// The reason given to the client (`denied by policy 'no-env-dump'`).
    pub reason: String,
    /// Where the request came from.
    pub context: RequestContext,
}

impl PolicyDenial {
    /// The audit event: action [`actions::POLICY_DENIED`]; the target is the item (kind and
    /// name), else the server, else the namespace; `after_state` holds the request summary and
    /// the decision (`action`, `namespace`, `server`, `item`, `rule`, `reason`).
    #[must_use]
    pub fn into_event(self) -> AuditEvent {
        let target = match (&self.item_kind, &self.item_name, &self.server, &self.namespace) {
            (Some(kind), Some(name), _, _) => Some((kind.clone(), name.clone())),
            (_, _, Some(server), _) => Some(("server".to_owned(), server.clone())),
            (_, _, None, Some(ns)) => Some(("namespace".to_owned(), ns.clone())),
            _ => None,
        };
        let item = match (&self.item_kind, &self.item_name) {
            (Some(kind), Some(name)) => serde_json::json!({"kind": kind, "name": name}),
            _ => Value::Null,
        };
        let rule = match (&self.rule_id, &self.rule_name) {
            (None, None) => Value::Null,
            (id, name) => serde_json::json!({"id": id, "name": name}),
        };
        let summary = serde_json::json!({
            "action": self.action,
            "namespace": self.namespace,
            "server": self.server,
            "item": item,
            "rule": rule,
            "reason": self.reason,
        });
        let mut event = AuditEvent::new(actions::POLICY_DENIED, self.actor)
            .after(summary)
            .context(&self.context);
        if let Some((kind, id)) = target {
            event = event.target(kind, id);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn builder_fills_every_field() {
        let log = AuditEvent::new(actions::USER_UPDATE, Actor::new("user", "u1"))
            .target("user", 42)
            .before(json!({"role": "user"}))
            .after(json!({"role": "admin"}))
            .context(&RequestContext {
                ip: "::1".parse().ok(),
                request_id: Some("r".into()),
            })
            .into_log();
        assert_eq!(
            log,
            NewAuditLog {
                actor_type: "user".into(),
                actor_id: Some("u1".into()),
                action: "user.update".into(),
                target_type: Some("user".into()),
                target_id: Some("42".into()),
                before_state: Some(json!({"role": "user"})),
                after_state: Some(json!({"role": "admin"})),
                ip: Some("::1".into()),
                request_id: Some("r".into()),
            }
        );
        let none = AuditEvent::new("x.y", Actor::anonymous())
            .before(Value::Null)
            .into_log();
        assert_eq!(
            (none.actor_type.as_str(), none.actor_id, none.before_state),
            ("anonymous", None, None)
        );
    }

    #[test]
    fn nul_characters_cannot_make_an_append_fail() {
        let log = AuditEvent::new("auth.login_failed", Actor::anonymous())
            .target("user\0", "a\0b")
            .after(json!({"email": "x\0@y", "k\0": ["\0"]}))
            .into_log();
        assert_eq!(log.target_type.as_deref(), Some("user\u{FFFD}"));
        assert_eq!(log.target_id.as_deref(), Some("a\u{FFFD}b"));
        assert_eq!(
            log.after_state,
            Some(json!({"email": "x\u{FFFD}@y", "k\u{FFFD}": ["\u{FFFD}"]}))
        );
    }

    #[test]
    fn a_denial_names_its_target_and_rule_but_no_arguments() {
        let denial = PolicyDenial {
            actor: Actor::new("api_key", "k1"),
            action: "call".into(),
            namespace: Some("prod".into()),
            server: Some("everything".into()),
            item_kind: Some("tool".into()),
            item_name: Some("get-env".into()),
            rule_id: Some("r1".into()),
            rule_name: Some("no-env-dump".into()),
            reason: "denied by policy 'no-env-dump'".into(),
            context: RequestContext::default(),
        };
        let log = denial.clone().into_event().into_log();
        assert_eq!(log.action, "policy.denied");
        assert_eq!(
            (log.target_type.as_deref(), log.target_id.as_deref()),
            (Some("tool"), Some("get-env"))
        );
        assert_eq!(
            log.after_state,
            Some(json!({
                "action": "call", "namespace": "prod", "server": "everything",
                "item": {"kind": "tool", "name": "get-env"},
                "rule": {"id": "r1", "name": "no-env-dump"},
                "reason": "denied by policy 'no-env-dump'",
            }))
        );
        let by_default = PolicyDenial {
            item_kind: None,
            item_name: None,
            rule_id: None,
            rule_name: None,
            ..denial
        }
        .into_event()
        .into_log();
        assert_eq!(by_default.target_type.as_deref(), Some("server"));
        assert_eq!(by_default.after_state.unwrap()["rule"], Value::Null);
    }
}
